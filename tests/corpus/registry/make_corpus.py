"""Regenerate the bad-input corpus from valid_minimal.csv: ``python tests/corpus/registry/make_corpus.py``.

Each file breaks one rule (see tests/test_registry.py for the expected line, column and message).
valid_minimal.csv: header on line 1, rows on lines 2-5 (ABCSG18-DFS-2019, ABCSG18-DFS-2022,
DCARE-DFS-2020, DCARE-OS-2020).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

HERE = Path(__file__).resolve().parent


def base() -> tuple[list[str], list[dict[str, str]]]:
    with open(HERE / "valid_minimal.csv", newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames), [dict(row) for row in r]


def render(header, rows, delimiter=",", lineterminator="\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=lineterminator)
    w.writerow(header)
    for row in rows:
        w.writerow([row.get(h, "") for h in header])
    return buf.getvalue()


def edit(changes: dict[int, dict[str, str]], header=None, extra_rows=()):
    h, rows = base()
    for i, ch in changes.items():
        rows[i].update(ch)
    rows.extend(extra_rows)
    return render(header or h, rows)


def write(name: str, content: str | bytes) -> None:
    p = HERE / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    p.write_bytes(content)


def main() -> None:
    h, rows = base()
    valid = render(h, rows)
    write("bom.csv", b"\xef\xbb\xbf" + valid.encode())
    write("crlf.csv", render(h, rows, lineterminator="\r\n"))
    semi = [dict(r) for r in rows]
    for r in semi:
        for k in ("estimate", "ci_lower", "ci_upper", "followup_months"):
            r[k] = r[k].replace(".", ",")
    write("semicolon_decimal_comma.csv", render(h, semi, delimiter=";"))
    write("tab_separated.csv", render(h, rows, delimiter="\t"))
    write("cp1252.csv", edit({1: {"notes": "Gnant é descriptive"}}).encode("cp1252"))
    write("not_text_bytes.csv", edit({1: {"notes": "XX"}}).encode().replace(b"XX", b"\x81\x8d"))
    write("binary_xlsx.csv", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"\x00" * 40)
    write("utf16.csv", valid.encode("utf-16"))
    write("empty.csv", "")
    write("header_only.csv", ",".join(h) + "\n")
    write("long_field.csv", edit({1: {"notes": "x" * 2500}}))
    write("missing_column.csv", render([c for c in h if c != "measure"], rows))
    write("renamed_column.csv", render([("Estimate " if c == "estimate" else "Use For Pooling" if c == "use_for_pooling" else c) for c in h],
                                       [{("Estimate " if k == "estimate" else "Use For Pooling" if k == "use_for_pooling" else k): v for k, v in r.items()} for r in rows]))
    write("misspelled_column.csv", render([("endpiont" if c == "endpoint" else c) for c in h],
                                          [{("endpiont" if k == "endpoint" else k): v for k, v in r.items()} for r in rows]))
    write("misspelled_optional_column.csv", render([("ci_lowr" if c == "ci_lower" else c) for c in h],
                                                   [{("ci_lowr" if k == "ci_lower" else k): v for k, v in r.items()} for r in rows]))
    write("unknown_column.csv", render(h + ["reviewer"], [dict(r, reviewer="AB") for r in rows]))
    write("duplicate_column.csv", render(h + ["notes"], rows))
    write("unknown_endpoint.csv", edit({0: {"endpoint": "DSF"}}))
    write("enum_case.csv", edit({1: {"design": "rct"}}))
    write("nonnumeric_estimate.csv", edit({0: {"estimate": "NR"}}))
    write("bad_nct.csv", edit({0: {"nct_id": "NCT0055637"}}))
    write("bad_doi.csv", edit({0: {"doi": "https://doi.org/10.1016/S1470-2045(18)30862-3"}}))
    write("bad_pmid.csv", edit({2: {"pmid": "PMID31806543"}}))
    write("duplicate_row_id.csv", edit({1: {"row_id": "ABCSG18-DFS-2019"}}))
    write("bad_row_id.csv", edit({0: {"row_id": "ABCSG 18/DFS"}}))
    write("required_empty.csv", edit({2: {"trial_name": ""}}))
    write("ci_level_missing.csv", edit({0: {"ci_level": ""}}))
    write("ci_level_fraction.csv", edit({0: {"ci_level": "0.95"}}))
    write("ci_level_100.csv", edit({1: {"ci_level": "100"}}))
    write("p_out_of_range.csv", edit({0: {"p_value": "1.5"}}))
    write("p_zero.csv", edit({0: {"p_value": "0"}}))
    write("p_text.csv", edit({2: {"p_value": "NS"}}))
    write("p_noncanonical.csv", edit({0: {"p_value": "p=0.026"}}))
    write("ci_reversed.csv", edit({0: {"ci_lower": "0.98", "ci_upper": "0.69"}}))
    write("estimate_outside_ci.csv", edit({0: {"estimate": "0.5"}}))
    write("not_centred.csv", edit({0: {"estimate": "0.75", "p_value": "", "p_sided": ""}}))
    write("p_disagrees.csv", edit({0: {"p_value": "0.26"}}))
    write("one_sided_as_two.csv", edit({0: {"estimate": "0.96", "ci_lower": "0.78", "ci_upper": "1.19", "p_value": "0.36"}}))
    write("nonpositive_ratio.csv", edit({1: {"ci_lower": "-0.1"}}))
    write("ci_one_bound.csv", edit({0: {"ci_upper": ""}}))
    write("status_missing_with_estimate.csv", edit({3: {"estimate": "0.9"}}))
    write("status_confirmed_empty.csv", edit({2: {"estimate": "", "p_value": "", "p_sided": ""}}))
    write("pval_with_estimate.csv", edit({2: {"measure": "PVAL"}}))
    write("pooling_twice.csv", edit({1: {"use_for_pooling": "yes"}}))
    write("parent_unknown.csv", edit({1: {"parent_row_id": "ABCSG-81"}}))
    write("duplicate_rows.csv", edit({}, extra_rows=[dict(rows[1], row_id="ABCSG18-DFS-2022b")]))
    write("formula.csv", edit({0: {"notes": '=HYPERLINK("http://example.org","x")'}}))
    write("html_script.csv", edit({0: {"notes": "<script>alert('x')</script> <b>bold</b> & more"}}))
    write("control_char.csv", edit({1: {"notes": "pasted\x07from a PDF"}}))
    write("multiline.csv", edit({0: {"population": "postmenopausal\nHR+ early\nbreast cancer", "estimate": "NR"},
                                 1: {"endpoint": "DSF"}}))
    write("blank_and_separator_rows.csv", valid + "\n" + "," * (len(h) - 1) + "\n,,,\n\n")
    sp = valid.split("\n")
    sp[1] = sp[1].replace(",0.823,", ", 0.823 ,").replace(",yes,", ",yes ,")
    write("trailing_spaces.csv", "\n".join(sp))
    write("scientific_notation.csv", edit({0: {"followup_months": "7.2E+01", "p_value": "2.6E-02"}}))
    write("wrong_field_count.csv", valid.replace("descriptive; placebo patients", "descriptive, placebo patients")
          .replace(',"descriptive, placebo', ',descriptive, placebo').replace('cross over"', "cross over"))
    write("unclosed_quote.csv", valid.replace(",CI not reported", ',"CI not reported'))
    write("events_exceed_n.csv", edit({0: {"events_int": "2000"}}))
    write("year_not_integer.csv", edit({0: {"year": "2019.5"}}))
    write("year_below_minimum.csv", edit({2: {"year": "1899"}}))
    lines = valid.split("\n")
    write("trailing_empty_column.csv", "\n".join(ln + "," if ln else ln for ln in lines))
    write("unnamed_column_with_value.csv", "\n".join(ln + (",oops" if i == 2 else ",") if ln else ln for i, ln in enumerate(lines)))
    write("decimal_comma_in_comma_file.csv", edit({0: {"estimate": "0,823"}}))


if __name__ == "__main__":
    main()
