"""The one table reader: a CSV file -> physical-line-numbered records and every problem.

Used by the registry (:mod:`metaanalysis.registry`) and able to serve any small CSV the
package reads (the ``pool`` command's ``yi, vi [, study]``). It knows nothing about what
the columns mean: ``known_columns`` only helps it pick the separator.

Spreadsheet-export policy (each accepted quirk gives one warning, never silence):

- UTF-8 with or without BOM, LF or CRLF: accepted silently.
- Not UTF-8: decoded as Windows-1252 (Excel's "CSV" on Windows) with a warning naming the
  first non-UTF-8 byte's line and column; bytes cp1252 cannot decode, or NUL bytes
  (binary files), are an error. UTF-16 with a BOM (Excel "Unicode text"), or without one when the
  text is plainly UTF-16 (every second byte NUL), is decoded with a warning.
- ``;``- or tab-separated files: detected from the header (the separator whose fields
  match the known column names) and read with a warning. With ``;`` or tab, numbers may use a
  decimal comma (:func:`parse_number` with ``decimal_comma=Table.decimal_comma``); in a
  ``,``-separated file the registry reports decimal commas once for the whole file.
- Blank lines and lines of only separators (also trailing ones) are dropped.
- An Excel ``sep=;`` first line is skipped with a warning, and names the separator.

Lines are 1-based physical lines as an editor shows them (the header is line 1; a quoted
field spanning lines counts every line); columns are 1-based field numbers (0 = the whole
line or file).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .problems import Problem, ProblemSink, has_errors, suggest

__all__ = ["Table", "read_table", "header_columns", "read_file_bytes", "parse_number", "is_plain_number", "norm_header",
           "MAX_FIELD_LENGTH", "identity_key", "lookalike_character", "DECIMAL_COMMA", "NON_ASCII_DIGITS"]

#: Longest accepted cell, in characters (a registry cell is a number or a note, not a document).
MAX_FIELD_LENGTH = 2000
# ASCII digits only: Python's float() also takes '1_000', '١٢' (Arabic-Indic) and '１２' (full width).
_NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_DECIMAL_COMMA_RE = re.compile(r"^[+-]?[0-9]+,[0-9]+(?:[eE][+-]?[0-9]+)?$")
#: Quirk codes of :func:`parse_number` (each accepted quirk is warned about by the caller).
DECIMAL_COMMA = "decimal-comma"
NON_ASCII_DIGITS = "non-ascii-digits"
_SEPARATOR_NAMES = {";": "';'", "\t": "tab"}


@dataclass(frozen=True)
class Table:
    """A CSV file read into records.

    Attributes
    ----------
    path : str
        The path as given (used in every problem).
    raw : bytes or None
        The file's bytes (None when the file could not be read).
    delimiter : str
        ``","``, ``";"`` or ``"\\t"``.
    records : tuple of (int, tuple of str)
        ``(physical start line, fields)`` of every non-blank record; the first is the header.
        Empty when the file could not be read or parsed.
    problems : tuple of Problem
        Errors (unreadable, binary, malformed CSV, empty) and the quirk warnings.
    """

    path: str
    raw: bytes | None
    delimiter: str = ","
    records: tuple[tuple[int, tuple[str, ...]], ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there is a header to work with (no reading or parsing error)."""
        return bool(self.records) and not has_errors(self.problems)

    @property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes (hex); '' when unreadable."""
        return hashlib.sha256(self.raw).hexdigest() if self.raw is not None else ""

    @property
    def header_line(self) -> int:
        return self.records[0][0]

    @property
    def header(self) -> tuple[str, ...]:
        """Header fields as written (a UTF-8 BOM removed, spaces kept)."""
        return tuple(h.lstrip("\ufeff") for h in self.records[0][1])

    @property
    def rows(self) -> tuple[tuple[int, tuple[str, ...]], ...]:
        """The data records after the header."""
        return self.records[1:]

    @property
    def decimal_comma(self) -> bool:
        """Numbers may be written with a decimal comma (``;``- and tab-separated files)."""
        return self.delimiter != ","


def norm_header(name: str) -> str:
    """Header name folded for matching: case, surrounding spaces, spaces/hyphens vs underscores."""
    return re.sub(r"[\s\-]+", "_", name.strip().casefold())


def _invisible(ch: str) -> bool:
    """Format characters (Unicode category Cf: U+200B..U+200D, U+2060, U+FEFF, soft hyphen U+00AD,
    bidirectional marks...): they print as nothing, yet make two codes differ."""
    return unicodedata.category(ch) == "Cf"


def identity_key(s: str) -> str:
    """An identifier as compared for identity (NCT ids, ``patient_set``, ``trial_id``).

    NFKC normalisation (full-width ``ＡＢ`` and ligatures become ``AB``), invisible format
    characters removed, case folded and surrounding spaces stripped, so that two spellings
    of one trial can never count as two trials (Unicode Standard Annex #15 and #31).
    """
    if s.isascii():  # the usual cell: NFKC leaves ASCII as it is and no ASCII character is Cf
        return s.casefold().strip()
    return "".join(ch for ch in unicodedata.normalize("NFKC", s) if not _invisible(ch)).casefold().strip()


_CONFUSABLE_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ", 1)[0]


def lookalike_character(s: str) -> tuple[int, str, str] | None:
    """The first character of a code that reads like another: ``(1-based position, char, kind)``.

    ``kind`` is ``"invisible"`` (a Cf format character such as U+200B), ``"compatibility"``
    (a character NFKC rewrites: full-width letters or digits, ligatures, non-breaking spaces)
    or ``"mixed-script"`` (a Cyrillic/Greek letter in a word with Latin letters: ``plаcebo``
    with a Cyrillic ``а``). None when every character is what it looks like.
    """
    if s.isascii():  # no ASCII character is Cf, changed by NFKC or outside Latin: skip the per-character lookups
        return None
    for i, ch in enumerate(s, start=1):
        if _invisible(ch):
            return i, ch, "invisible"
        if unicodedata.normalize("NFKC", ch) != ch:
            return i, ch, "compatibility"
    if any(ch.isalpha() and _script(ch) == "LATIN" for ch in s):
        for i, ch in enumerate(s, start=1):
            if ch.isalpha() and _script(ch) in _CONFUSABLE_SCRIPTS:
                return i, ch, "mixed-script"
    return None


def _ascii_digits(s: str) -> str:
    """``s`` with every decimal digit of any script as 0-9 and full-width signs and points
    (U+FF01..U+FF5E) as their ASCII forms; anything else (superscripts, U+2212) is kept."""
    out = []
    for ch in s:
        d = unicodedata.decimal(ch, None)
        out.append(str(d) if d is not None else chr(ord(ch) - 0xFEE0) if "\uff01" <= ch <= "\uff5e" else ch)
    return "".join(out)


def parse_number(s: str, decimal_comma: bool = False) -> tuple[float | None, str | None, str]:
    """A stripped cell -> ``(value, error message, quirk)``.

    Plain decimals and scientific notation (``1.5E-05``) in ASCII digits; with
    ``decimal_comma`` also ``0,82`` (quirk :data:`DECIMAL_COMMA`). Digits of other scripts
    (full-width ``１２``, Arabic-Indic ``١٢``) are read with the quirk :data:`NON_ASCII_DIGITS`;
    ``1_000``, ``nan``, ``inf`` and ``0x1p3`` are not numbers. ``value`` is None (and the
    message says why) when the cell is not a number; ``quirk`` is '' for a plain number.
    """
    if _NUMBER_RE.match(s):
        return float(s), None, ""
    if decimal_comma and _DECIMAL_COMMA_RE.match(s):
        return float(s.replace(",", ".")), None, DECIMAL_COMMA
    if not s.isascii():
        folded = _ascii_digits(s)
        if folded != s and folded.isascii():
            value = parse_number(folded, decimal_comma)[0]
            if value is not None:
                return value, None, NON_ASCII_DIGITS
    return None, f"{s!r} is not a number", ""


def is_plain_number(s: str) -> bool:
    """True for a number written with a decimal point (``-0.5``, ``1e-4``)."""
    return bool(_NUMBER_RE.match(s))


def read_file_bytes(path: str | Path, sink: ProblemSink, *, what: str, missing_hint: str,
                    directory_hint: str = "give the path of the .csv file") -> bytes | None:
    """The bytes of an input file, or None with the reason in ``sink`` (line and column 0).

    Shared by every reader of an input file (registry and pool CSVs, the TOML plan), so a
    missing file, a directory or an unreadable file is reported the same way everywhere.
    """
    p = Path(path)
    try:
        if p.is_dir():
            sink.error(0, 0, f"is a directory, not {what}", directory_hint)
            return None
        return p.read_bytes()
    except FileNotFoundError:
        sink.error(0, 0, "no such file", missing_hint)
    except PermissionError:
        sink.error(0, 0, "permission denied: cannot read the file")
    except OSError as e:
        sink.error(0, 0, f"cannot read the file: {e.strerror or e}")
    return None


def _decode(raw: bytes, sink: ProblemSink) -> tuple[str | None, tuple[int, int] | None]:
    """Bytes -> (text, (line, character) of the first non-UTF-8 byte when read as cp1252)."""
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            sink.error(1, 0, "file starts with a UTF-16 byte-order mark but is not valid UTF-16",
                       "save the sheet as 'CSV UTF-8'")
            return None, None
        sink.warning(1, 0, "file is UTF-16 (Excel 'Unicode text'); read as such", "save the sheet as 'CSV UTF-8'")
        return text.lstrip("\ufeff"), None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    bare = _utf16_without_bom(raw)
    if bare:
        try:
            text = raw.decode(bare)
        except UnicodeDecodeError:
            text = None
        if text is not None:
            sink.warning(1, 0, f"file is UTF-16 ({bare.upper()}) without a byte-order mark; read as such",
                         "save the sheet as 'CSV UTF-8'")
            return text, None
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        sink.error(line, 0, "this is not a text file (NUL byte found)",
                   "export the registry as CSV (UTF-8), not as .xlsx or another binary format")
        return None, None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line, char = _position(raw, e.start)
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as e2:
            pos = e2.start  # report the byte that neither encoding can read
            line, char = _position(raw, pos)
            col = raw.decode("latin-1").splitlines()[line - 1][: char - 1].count(",") + 1
            sink.error(line, col, f"not UTF-8 text: byte 0x{raw[pos]:02X} at character {char} cannot be decoded "
                       "(nor as Windows-1252)", "save the file as 'CSV UTF-8'")
            return None, None
        return text, (line, char)


def _utf16_without_bom(raw: bytes) -> str | None:
    """``"utf-16-le"`` / ``"utf-16-be"`` when the first 512 bytes look like UTF-16 text without a
    byte-order mark (ASCII-range characters: every second byte NUL, the others not), else None."""
    head = raw[:512] if len(raw) % 2 == 0 else None
    if not head or len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) == len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) == len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _position(raw: bytes, pos: int) -> tuple[int, int]:
    """(1-based line, 1-based character) of byte offset ``pos``."""
    return raw.count(b"\n", 0, pos) + 1, pos - (raw.rfind(b"\n", 0, pos) + 1) + 1


def _first_nonblank_line(text: str) -> str:
    # The header never holds quoted line breaks in practice; use the first non-blank line.
    for ln in text.splitlines():
        if ln.strip():
            return ln
    return ""


def _detect_delimiter(text: str, known: Iterable[str]) -> str:
    """The separator whose header fields match the most known column names."""
    header = _first_nonblank_line(text)
    norm = {norm_header(n) for n in known}
    best, best_hits = ",", -1
    for d in (",", ";", "\t"):
        if d != "," and d not in header:
            continue
        try:
            fields = next(csv.reader([header], delimiter=d))
        except (csv.Error, StopIteration):
            continue
        hits = sum(norm_header(f.lstrip("\ufeff")) in norm for f in fields)
        if hits > best_hits:
            best, best_hits = d, hits
    return best


def _records(text: str, delimiter: str, sink: ProblemSink) -> list[tuple[int, tuple[str, ...]]] | None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    out = []
    prev = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            msg = str(e)
            if "field larger than field limit" in msg:
                sink.error(prev + 1, 0, f"a field longer than {csv.field_size_limit()} characters",
                           f"cells hold at most {MAX_FIELD_LENGTH} characters; an unclosed quote?")
            elif "unexpected end of data" in msg:
                line, col = _unclosed_quote(text, prev + 1, delimiter)
                sink.error(line, col, f"a quoted field opened on line {line} is never closed (the file ends inside quotes)",
                           'close the quote; a literal " inside a quoted field is written ""')
            else:
                sink.error(reader.line_num, 0, f"malformed CSV: {msg}",
                           'quote fields that contain the separator, and write a literal " as ""')
            return None
        out.append((prev + 1, tuple(fields)))
        prev = reader.line_num
    return out


def _unclosed_quote(text: str, start: int, delimiter: str) -> tuple[int, int]:
    """(line, field number) where the quote that is never closed opened, reading from line ``start``.

    Follows the CSV quoting rules of :func:`csv.reader` (a quote opens a field only at its
    start; ``""`` inside a quoted field is a literal quote).
    """
    line, field, at_start, quoted = start, 1, True, False
    opened = (start, 0)
    rest = "\n".join(text.split("\n")[start - 1:])
    i = 0
    while i < len(rest):
        ch = rest[i]
        if quoted:
            if ch == '"' and rest[i + 1:i + 2] == '"':
                i += 1
            elif ch == '"':
                quoted, at_start = False, False
        elif ch == '"' and at_start:
            quoted, opened = True, (line, field)
        elif ch == delimiter:
            field, at_start = field + 1, True
        elif ch == "\n":
            field, at_start = 1, True
        elif ch != "\r":
            at_start = False
        line += ch == "\n"
        i += 1
    return opened


_SEP_LINE_RE = re.compile(r"^sep=(.)?\r?$")


def _excel_sep_line(text: str, sink: ProblemSink) -> tuple[str, str | None]:
    """Excel's ``sep=;`` first line (written by some exports to name the separator): blanked (line
    numbers stay those of the file) with one warning; -> (text, the separator it names or None)."""
    first, nl, rest = text.partition("\n")
    m = _SEP_LINE_RE.match(first.lstrip("\ufeff"))
    if not m:
        return text, None
    sep = m.group(1) if m.group(1) in (",", ";", "\t") else None
    sink.warning(1, 0, f"line 1 is Excel's {first.strip()!r} line, not the header; skipped",
                 "delete the first line (the header must be line 1)")
    return nl + rest, sep


def _column_at(text: str, line: int, char: int, d: str) -> int:
    lines = text.splitlines()
    if line - 1 >= len(lines):
        return 0
    return lines[line - 1][: max(char - 1, 0)].count(d) + 1


def read_table(path: str | Path, known_columns: Iterable[str], *,
               missing_hint: str = "check the path", what: str = "a CSV file") -> Table:
    """Read a CSV exported from a spreadsheet (see the module docstring for the accepted quirks).

    Parameters
    ----------
    path : str or Path
    known_columns : iterable of str
        The column names the caller expects; they pick the separator and the empty-file hint.
    missing_hint : str
        Hint of the "no such file" error (e.g. the default path).
    what : str
        What the file should be, for the "is a directory" error (``"a registry CSV"``).

    Returns
    -------
    Table
        Never raises for data problems: they are in ``Table.problems``.
    """
    shown = str(path)
    known = list(known_columns)
    sink = ProblemSink(shown)
    raw = read_file_bytes(path, sink, what=what, missing_hint=missing_hint)
    if raw is None:
        return Table(shown, None, problems=tuple(sink.items))
    text, cp1252_at = _decode(raw, sink)
    if text is None:
        return Table(shown, raw, problems=tuple(sink.items))
    if not text.strip():
        sink.error(1, 0, "the file is empty", "the first line must be the header: " + ",".join(known[:4]) + ",...")
        return Table(shown, raw, problems=tuple(sink.items))
    text, d = _excel_sep_line(text, sink)
    d = d or _detect_delimiter(text, known)
    records = _records(text, d, sink)
    if records is None:
        return Table(shown, raw, d, problems=tuple(sink.items))
    records = [(ln, f) for ln, f in records if any(x.strip() for x in f)]
    if not records:
        sink.error(1, 0, "the file has no header and no rows")
        return Table(shown, raw, d, problems=tuple(sink.items))
    if d != ",":
        name = _SEPARATOR_NAMES[d]
        sink.warning(records[0][0], 0, f"fields are separated by {name}, not ','; read as {name}-separated",
                     "export as 'CSV UTF-8 (comma delimited)'")
    if cp1252_at:
        line, char = cp1252_at
        sink.warning(line, _column_at(text, line, char, d),
                     f"not UTF-8: the first non-UTF-8 byte is at line {line}, character {char}; "
                     "read the file as Windows-1252 (cp1252)", "save the file as 'CSV UTF-8' to be sure of accents")
    return Table(shown, raw, d, tuple(records), tuple(sink.items))


def header_columns(table: Table, sink: ProblemSink, known: tuple[str, ...], required: Iterable[str]) -> dict[str, int]:
    """Column name -> index of a small side file's header (``rob.csv``, ``searches.csv``), with an
    error at the header line for each unknown column (with the nearest known name) and each
    missing ``required`` one; the caller stops when ``sink`` then holds errors."""
    header = [norm_header(h) for h in table.header]
    for i, h in enumerate(header):
        if h not in known:
            sink.error(table.header_line, i + 1, f"unknown column {table.header[i]!r}", suggest(h, known))
    cols = {h: i for i, h in enumerate(header)}
    for name in required:
        if name not in cols:
            sink.error(table.header_line, 0, f"missing column {name!r}", "columns: " + ",".join(known))
    return cols
