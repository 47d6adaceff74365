"""The one table reader (metaanalysis.table): records with physical line numbers, and problems.

It serves the registry (tests/test_registry.py runs the whole corpus through it) and must be
able to serve the ``pool`` command's ``yi, vi [, study]`` CSV: these tests read such files.
"""

from __future__ import annotations

import pytest

from metaanalysis.table import parse_number, read_table

POOL_COLUMNS = ("yi", "vi", "sei", "study")


def _write(tmp_path, data: bytes, name: str = "yi.csv"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_pool_csv_records_and_physical_lines(tmp_path):
    # a quoted study name spans lines 3-4, so the next record starts on line 5; blank and
    # separator-only trailing rows are dropped
    p = _write(tmp_path, b'yi,vi,study\n-0.22,0.0139,A\n-0.1,0.02,"B\ncohort"\n0.05,0.01,C\n\n,,\n')
    t = read_table(p, POOL_COLUMNS)
    assert t.ok and t.problems == () and t.delimiter == ","
    assert t.header == ("yi", "vi", "study") and t.header_line == 1
    assert [ln for ln, _ in t.rows] == [2, 3, 5]
    assert t.rows[1][1] == ("-0.1", "0.02", "B\ncohort")


def test_semicolon_decimal_comma_and_bom(tmp_path):
    p = _write(tmp_path, "\ufeffyi;vi\n-0,22;0,0139\n".encode("utf-8"))
    t = read_table(p, POOL_COLUMNS)
    assert t.ok and t.delimiter == ";" and t.decimal_comma and t.header == ("yi", "vi")
    assert [(q.severity, q.line, q.column) for q in t.problems] == [("warning", 1, 0)]
    assert "separated by ';'" in t.problems[0].message
    assert [parse_number(c, t.decimal_comma)[0] for c in t.rows[0][1]] == [-0.22, 0.0139]
    assert parse_number("0,5", decimal_comma=False)[0] is None


def test_utf16_and_cp1252_are_read_with_a_warning(tmp_path):
    t = read_table(_write(tmp_path, "yi,vi\n0.1,0.2\n".encode("utf-16")), POOL_COLUMNS)
    assert t.ok and t.rows[0][1] == ("0.1", "0.2") and "UTF-16" in t.problems[0].message
    t = read_table(_write(tmp_path, "yi,vi,study\n0.1,0.2,Müller\n".encode("cp1252"), "c.csv"), POOL_COLUMNS)
    assert t.ok and t.rows[0][1][2] == "Müller"
    # the first non-UTF-8 byte: line 2, character 10 (the 'ü'), field 3
    assert [(q.severity, q.line, q.column) for q in t.problems] == [("warning", 2, 3)]


@pytest.mark.parametrize("data, line, fragment", [
    (b"", 1, "the file is empty"),
    (b"\n,,\n", 1, "no header and no rows"),
    (b'yi,vi\n0.1,"0.2\n', 2, "never closed"),
    (b"PK\x03\x04\x00\x00", 1, "not a text file"),
])
def test_errors(tmp_path, data, line, fragment):
    t = read_table(_write(tmp_path, data), POOL_COLUMNS)
    assert not t.ok and t.records == ()
    assert [(q.severity, q.line) for q in t.problems] == [("error", line)] and fragment in t.problems[0].message


def test_missing_file_and_directory(tmp_path):
    t = read_table(tmp_path / "absent.csv", POOL_COLUMNS, missing_hint="check the path")
    assert t.raw is None and t.sha256 == "" and t.problems[0].message == "no such file"
    assert t.problems[0].hint == "check the path"
    t = read_table(tmp_path, POOL_COLUMNS, what="a CSV of yi and vi")
    assert t.problems[0].message == "is a directory, not a CSV of yi and vi"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_one_warning(tmp_path, codec):
    """Excel 'Unicode text' saved without a byte-order mark: every second byte NUL. Read as UTF-16
    with one warning for the file (it was the NUL-byte error meant for binary files)."""
    t = read_table(_write(tmp_path, "yi\tvi\n-0,22\t0,0139\n".encode(codec)), POOL_COLUMNS)
    assert t.ok and t.delimiter == "\t" and t.decimal_comma and t.rows[0][1] == ("-0,22", "0,0139")
    utf16 = [q for q in t.problems if "UTF-16" in q.message]
    assert [(q.severity, q.line, q.column) for q in utf16] == [("warning", 1, 0)]
    assert f"({codec.upper()}) without a byte-order mark" in utf16[0].message


def test_binary_with_nul_bytes_is_still_an_error(tmp_path):
    # NULs but not in the UTF-16 pattern (an .xlsx is a zip file): the binary-file error stays
    t = read_table(_write(tmp_path, b"PK\x03\x04\x14\x00\x06\x00yi,vi\n"), POOL_COLUMNS)
    assert not t.ok and "NUL byte" in t.problems[0].message


def test_ascii_fast_path_of_identity_and_lookalike_is_the_general_rule():
    # identity_key and lookalike_character skip their per-character Unicode lookups for ASCII
    # text (most cells); that is exact because no ASCII character is a Cf format character,
    # is changed by NFKC or is a letter outside the Latin script (Unicode data of this Python).
    import string
    import unicodedata

    from metaanalysis import table

    for c in map(chr, range(128)):
        assert unicodedata.category(c) != "Cf" and unicodedata.normalize("NFKC", c) == c, repr(c)
        assert not c.isalpha() or table._script(c) == "LATIN", repr(c)
    for s in (string.printable, "  ABCSG-18 ", "NCT00556374", "Denosumab\t", ""):
        general = "".join(ch for ch in unicodedata.normalize("NFKC", s) if unicodedata.category(ch) != "Cf")
        assert table.identity_key(s) == general.casefold().strip()
        assert table.lookalike_character(s) is None
    assert table.lookalike_character("pl\u0430cebo") == (3, "\u0430", "mixed-script")  # not ASCII: checked
    assert table.identity_key("\uff21B\u200b") == "ab"
