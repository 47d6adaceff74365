"""Hostile and malformed inputs through ``metaanalysis report`` / ``validate``, end to end.

Every case starts from the SHIPPED registry and plan (trials/registry.csv, trials/analyses.toml),
changes one thing, and runs ``metaanalysis report --registry R --plan P --out OUT`` where OUT
already holds a good build. The contract (README "The command line", metaanalysis/cli.py
docstring, metaanalysis/registry.py "Spreadsheet-export policy", metaanalysis/plan.py):

- a data error exits 1 and names ``PATH:LINE:COLUMN:`` of the offending cell / key,
  with no Python traceback, and OUT (and its parent directory) is left byte-identical;
- an accepted spreadsheet quirk (BOM, CRLF, ``;`` separators, decimal commas, cp1252, UTF-16,
  renamed headers) exits 0 and the report is CORRECT: every pooled number in OUT/<id>.json
  equals the clean build's.

Expected lines and columns are computed from the shipped files by the ``csv`` / plain text
reading below (row -> physical line, column name -> 1-based field number), never copied from
the code under test.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from metaanalysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
CONSOLE = Path(sys.executable).parent / "metaanalysis"

REG_TEXT = REGISTRY.read_text(encoding="utf-8")
PLAN_TEXT = PLAN.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------
# the shipped registry as header + rows, with each row's physical line
# ------------------------------------------------------------------------------------------

def _parse(text: str) -> tuple[list[str], list[list[str]], list[int]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    rows, lines = [], []
    prev = reader.line_num
    for rec in reader:
        rows.append(rec)
        lines.append(prev + 1)
        prev = reader.line_num
    return header, rows, lines


HEADER, ROWS, LINES = _parse(REG_TEXT)
COL = {name: j for j, name in enumerate(HEADER, start=1)}          # 1-based field number
LINE = {r[0]: ln for r, ln in zip(ROWS, LINES)}                      # row_id -> physical line


def render(header: list[str], rows: list[list[str]], delimiter: str = ",", eol: str = "\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=eol)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def reg_with(changes: dict[tuple[str, str], str] | None = None, *, extra: list[list[str]] = (),
             header: list[str] | None = None) -> str:
    """The shipped registry with cells ``(row_id, column) -> value`` replaced."""
    rows = [list(r) for r in ROWS]
    for (rid, name), value in (changes or {}).items():
        i = next(i for i, r in enumerate(rows) if r[0] == rid)
        rows[i][COL[name] - 1] = value
    rows += [list(r) for r in extra]
    return render(header or HEADER, rows)


def row(rid: str) -> list[str]:
    return list(next(r for r in ROWS if r[0] == rid))


def plan_line(text: str, needle: str, start: int = 1) -> tuple[int, int]:
    """(line, 1-based column) of the first occurrence of ``needle`` at or after line ``start``."""
    for n, ln in enumerate(text.splitlines(), start=1):
        if n >= start and needle in ln:
            return n, ln.index(needle) + 1
    raise AssertionError(f"{needle!r} not in the plan")


def analysis_block(aid: str) -> tuple[int, int]:
    """First and last line of the [[analysis]] with this id in the shipped plan."""
    lines = PLAN_TEXT.splitlines()
    idl = plan_line(PLAN_TEXT, f'id = "{aid}"')[0]
    start = max(n for n in range(1, idl + 1) if lines[n - 1].startswith("[["))
    end = next((n - 1 for n in range(idl + 1, len(lines) + 1) if lines[n - 1].startswith("[[")), len(lines))
    return start, end


def plan_insert_after(aid: str, key_line_prefix: str, new: str) -> tuple[str, int]:
    """Insert the line ``new`` after the line starting with ``key_line_prefix`` inside analysis ``aid``."""
    lines = PLAN_TEXT.splitlines(keepends=True)
    s, e = analysis_block(aid)
    at = next(n for n in range(s, e + 1) if lines[n - 1].startswith(key_line_prefix))
    lines.insert(at, new + "\n")
    return "".join(lines), at + 1


def plan_replace_in(aid: str, old: str, new: str) -> tuple[str, int]:
    """Replace the first ``old`` inside analysis ``aid``; -> (text, line of the change)."""
    lines = PLAN_TEXT.splitlines(keepends=True)
    s, e = analysis_block(aid)
    for n in range(s, e + 1):
        if old in lines[n - 1]:
            lines[n - 1] = lines[n - 1].replace(old, new, 1)
            return "".join(lines), n
    raise AssertionError(f"{old!r} not in analysis {aid}")


# ------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One hostile input.

    ``registry`` / ``plan``: the file contents (str is written as UTF-8; None = the shipped file).
    ``exit``: expected exit code. For exit 1, ``where`` names the file ("registry" / "plan"),
    ``line`` / ``col`` the expected position (``col=None``: any column) and ``msg`` a regex the
    problem's text must match. For exit 0, ``warn`` is a regex that must appear among the
    printed warnings (or None), and ``same_numbers`` says the report must equal the clean build.
    """

    name: str
    exit: int
    registry: str | bytes | None = None
    plan: str | bytes | None = None
    where: str = "registry"
    line: int | None = None
    col: int | None = None
    msg: str = ""
    warn: str | None = None
    same_numbers: bool = True
    check: Callable[[Path], None] | None = None


CASES: list[Case] = []


def case(**kw) -> None:
    CASES.append(Case(**kw))


# Rows used below (trials/registry.csv): NMCRPC-OS-2012 (Smith 2012, OS HR 1.01, 0.85-1.20),
# pooled in os-any-comparator (exploratory); ZABREAST-SRE-2010 (Stopeck 2010, SRE HR 0.82, 0.71-0.95) pooled in
# sre-zoledronic; ABCSG18-DFS-2019 pooled in dfs.
OS_ROW = "NMCRPC-OS-2012"
SRE_ROW = "ZABREAST-SRE-2010"

# --- columns ---------------------------------------------------------------------------------
case(name="missing_required_column", exit=1,
     registry=render([h for h in HEADER if h != "measure"], [[c for j, c in enumerate(r, 1) if j != COL["measure"]] for r in ROWS]),
     line=1, col=None, msg=r"required column 'measure' is missing")
case(name="misspelt_required_column", exit=1,
     registry=reg_with(header=[("endpiont" if h == "endpoint" else h) for h in HEADER]),
     line=1, col=None, msg=r"'endpoint' is missing.*endpiont")
case(name="misspelt_optional_column", exit=1,
     registry=reg_with(header=[("ci_lowr" if h == "ci_lower" else h) for h in HEADER]),
     line=1, col=None, msg=r"'ci_lower' is missing.*ci_lowr")
case(name="duplicated_column", exit=1,
     registry=render(HEADER + ["notes"], [r + ["x"] for r in ROWS]),
     line=1, col=len(HEADER) + 1, msg=r"column 'notes' appears twice")
case(name="renamed_columns_case_and_spaces", exit=0,
     registry=reg_with(header=[("Estimate " if h == "estimate" else "Use For Pooling" if h == "use_for_pooling" else h)
                               for h in HEADER]),
     warn=r":1:0: warning: column names read as schema names")

# --- vocabularies ------------------------------------------------------------------------------
case(name="unknown_endpoint", exit=1, registry=reg_with({(OS_ROW, "endpoint"): "OSS"}),
     line=LINE[OS_ROW], col=COL["endpoint"], msg=r"'OSS' is not an allowed endpoint")
case(name="unknown_measure", exit=1, registry=reg_with({(OS_ROW, "measure"): "HRR"}),
     line=LINE[OS_ROW], col=COL["measure"], msg=r"'HRR' is not an allowed measure")

# --- numbers -----------------------------------------------------------------------------------
case(name="nonnumeric_estimate", exit=1, registry=reg_with({(OS_ROW, "estimate"): "1.01x"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"not a number")
case(name="nan_estimate", exit=1, registry=reg_with({(OS_ROW, "estimate"): "NaN"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"not a number|not a finite")
case(name="zero_ratio_estimate", exit=1, registry=reg_with({(OS_ROW, "estimate"): "0"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"HR|ratio|positive|> ?0")
case(name="negative_ratio_estimate", exit=1, registry=reg_with({(OS_ROW, "estimate"): "-1.01"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"HR|ratio|positive|> ?0")
case(name="negative_ratio_ci_lower", exit=1, registry=reg_with({(OS_ROW, "ci_lower"): "-0.85"}),
     line=LINE[OS_ROW], col=COL["ci_lower"], msg=r"HR|ratio|positive|> ?0")
case(name="ci_lower_above_upper", exit=1,
     registry=reg_with({(OS_ROW, "ci_lower"): "1.20", (OS_ROW, "ci_upper"): "0.85"}),
     line=LINE[OS_ROW], col=None, msg=r"lower|upper|revers")
case(name="estimate_outside_ci", exit=1, registry=reg_with({(OS_ROW, "estimate"): "1.50"}),
     line=LINE[OS_ROW], col=None, msg=r"outside|not within|not inside")
# A degenerate CI (lower = estimate = upper) gives a sampling variance of 0: SE 0 is impossible.
case(name="zero_width_ci_zero_variance", exit=1,
     registry=reg_with({(OS_ROW, "estimate"): "1.01", (OS_ROW, "ci_lower"): "1.01", (OS_ROW, "ci_upper"): "1.01"}),
     line=LINE[OS_ROW], col=None, msg=r"width|zero|equal|variance|SE")
case(name="ci_level_0", exit=1, registry=reg_with({(OS_ROW, "ci_level"): "0"}),
     line=LINE[OS_ROW], col=COL["ci_level"], msg=r"greater than 0|ci_level")
case(name="ci_level_100", exit=1, registry=reg_with({(OS_ROW, "ci_level"): "100"}),
     line=LINE[OS_ROW], col=COL["ci_level"], msg=r"less than 100")
case(name="ci_level_fraction", exit=1, registry=reg_with({(OS_ROW, "ci_level"): "0.95"}),
     line=LINE[OS_ROW], col=COL["ci_level"], msg=r"fraction")
case(name="p_value_above_1", exit=1, registry=reg_with({(OS_ROW, "p_value"): "1.5"}),
     line=LINE[OS_ROW], col=COL["p_value"], msg=r"outside \(0, 1\]|cannot read")
case(name="p_value_zero", exit=1, registry=reg_with({(OS_ROW, "p_value"): "0"}),
     line=LINE[OS_ROW], col=COL["p_value"], msg=r"outside \(0, 1\]|cannot read")
case(name="p_value_negative", exit=1, registry=reg_with({(OS_ROW, "p_value"): "-0.05"}),
     line=LINE[OS_ROW], col=COL["p_value"], msg=r"outside \(0, 1\]|cannot read")
case(name="p_sided_3", exit=1, registry=reg_with({(OS_ROW, "p_sided"): "3"}),
     line=LINE[OS_ROW], col=COL["p_sided"], msg=r"not an allowed p_sided")
case(name="events_exceed_n", exit=1,
     registry=reg_with({(OS_ROW, "events_int"): "5000", (OS_ROW, "n_int"): "716"}),
     line=LINE[OS_ROW], col=COL["events_int"], msg=r"exceeds")
case(name="year_not_integer", exit=1, registry=reg_with({(OS_ROW, "year"): "2012.5"}),
     line=LINE[OS_ROW], col=COL["year"], msg=r"whole number")
case(name="status_missing_with_estimate", exit=1, registry=reg_with({(OS_ROW, "status"): "missing"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"status is 'missing'")
case(name="javascript_doi", exit=1, registry=reg_with({(OS_ROW, "doi"): "javascript:alert(1)"}),
     line=LINE[OS_ROW], col=COL["doi"], msg=r"not a valid doi")
case(name="javascript_pmid", exit=1, registry=reg_with({(OS_ROW, "pmid"): "javascript:alert(1)"}),
     line=LINE[OS_ROW], col=COL["pmid"], msg=r"not a valid pmid")

# --- rows --------------------------------------------------------------------------------------
_dup = row(OS_ROW)
_dup[0] = OS_ROW + "-COPY"
case(name="duplicated_row", exit=1, registry=reg_with(extra=[_dup]),
     line=len(REG_TEXT.splitlines()) + 1, col=COL["row_id"], msg=r"repeats row 'NMCRPC-OS-2012'")
case(name="duplicated_row_id", exit=1, registry=reg_with(extra=[row(OS_ROW)]),
     line=len(REG_TEXT.splitlines()) + 1, col=COL["row_id"], msg=r"used twice")
# Second pooled report of one trial: two rows of patient_set nmCRPC-BMFS for OS, both use_for_pooling=yes.
_twice = row(OS_ROW)
_twice[0] = OS_ROW + "-UPDATE"
_twice[COL["estimate"] - 1], _twice[COL["report"] - 1] = "0.99", "long-term update"
case(name="same_trial_pooled_twice_in_registry", exit=1, registry=reg_with(extra=[_twice]),
     line=len(REG_TEXT.splitlines()) + 1, col=COL["use_for_pooling"], msg=r"use_for_pooling = yes")
case(name="parent_row_unknown", exit=1, registry=reg_with({(OS_ROW, "parent_row_id"): "NO-SUCH-ROW"}),
     line=LINE[OS_ROW], col=COL["parent_row_id"], msg=r"neither a row_id nor a trial_id")
_short = row(OS_ROW)[:-3]
case(name="row_with_too_few_fields", exit=1,
     registry=render(HEADER, [(_short if r[0] == OS_ROW else r) for r in ROWS]),
     line=LINE[OS_ROW], col=len(HEADER) - 2, msg=r"fields but the header has")

# --- bytes and layout ----------------------------------------------------------------------------
case(name="empty_file", exit=1, registry="", line=1, col=0, msg=r"empty")
case(name="header_only", exit=1, registry=render(HEADER, []), line=2, col=0, msg=r"no data rows")
case(name="undecodable_bytes", exit=1,
     registry=reg_with({(OS_ROW, "notes"): "XX"}).encode("utf-8").replace(b"XX", b"\x81\x8d"),
     line=LINE[OS_ROW], col=COL["notes"], msg=r"0x81|0x8D|not UTF-8")
case(name="nul_bytes", exit=1, registry=reg_with({(OS_ROW, "notes"): "XX"}).encode("utf-8").replace(b"XX", b"\x00\x00"),
     line=LINE[OS_ROW], col=0, msg=r"NUL")
case(name="control_character", exit=1, registry=reg_with({(OS_ROW, "notes"): "bad \x07 bell"}),
     line=LINE[OS_ROW], col=COL["notes"], msg=r"control character U\+0007")
case(name="unclosed_quote", exit=1, registry=REG_TEXT + 'X,"unclosed\n', line=len(REG_TEXT.splitlines()) + 1,
     col=2, msg=r"opened on line \d+ is never closed")
case(name="very_long_field", exit=1, registry=reg_with({(OS_ROW, "notes"): "x" * 5000}),
     line=LINE[OS_ROW], col=COL["notes"], msg=r"5000 characters")
case(name="huge_field_beyond_csv_limit", exit=1, registry=reg_with({(OS_ROW, "notes"): "y" * 200_000}),
     line=LINE[OS_ROW], col=None, msg=r"longer than|characters")
case(name="bom", exit=0, registry=b"\xef\xbb\xbf" + REG_TEXT.encode("utf-8"))
case(name="crlf", exit=0, registry=render(HEADER, ROWS, eol="\r\n"))
case(name="semicolon_delimiter", exit=0, registry=render(HEADER, ROWS, delimiter=";"),
     warn=r":1:0: warning: fields are separated by ';'")
_NUMERIC = ("estimate", "ci_lower", "ci_upper", "followup_months")
case(name="semicolon_decimal_comma", exit=0,
     registry=render(HEADER, [[(c.replace(".", ",") if HEADER[j] in _NUMERIC else c) for j, c in enumerate(r)] for r in ROWS],
                     delimiter=";", eol="\r\n"),
     warn=r"decimal comma")
case(name="bom_crlf_semicolon", exit=0,
     registry=b"\xef\xbb\xbf" + render(HEADER, ROWS, delimiter=";", eol="\r\n").encode("utf-8"),
     warn=r"separated by ';'")
case(name="tab_delimiter", exit=0, registry=render(HEADER, ROWS, delimiter="\t"), warn=r"separated by tab")
case(name="cp1252_accents", exit=0,
     registry=reg_with({(OS_ROW, "notes"): "Smith é résumé"}).encode("cp1252"),
     warn=rf":{LINE[OS_ROW]}:{COL['notes']}: warning: not UTF-8")
case(name="utf16_with_bom", exit=0, registry=REG_TEXT.encode("utf-16"), warn=r"UTF-16")
case(name="spreadsheet_formula_in_text", exit=0,
     registry=reg_with({(OS_ROW, "notes"): '=HYPERLINK("http://evil.example","click")'}),
     warn=rf":{LINE[OS_ROW]}:{COL['notes']}: warning: \[notes\] text starts with '='")
# Non-ASCII digits (issue #11 item 3): read as 0-9, with the warning every accepted quirk gets.
case(name="full_width_digits", exit=0, registry=reg_with({(OS_ROW, "estimate"): "１.０１"}),
     warn=rf":{LINE[OS_ROW]}:{COL['estimate']}: warning: \[estimate\] 1 number\(s\) written with non-ASCII digits")
case(name="arabic_indic_digits", exit=0, registry=reg_with({(OS_ROW, "ci_upper"): "١.٢٠"}),
     warn=rf":{LINE[OS_ROW]}:{COL['ci_upper']}: warning: \[ci_upper\] 1 number\(s\) written with non-ASCII digits")
case(name="underscore_in_number", exit=1, registry=reg_with({(OS_ROW, "estimate"): "1_01"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"'1_01' is not a number")
# direction (issue #11 item 3): read, checked against the measure, the arms and the endpoint's other rows
case(name="direction_favours_the_comparator", exit=1, registry=reg_with({(OS_ROW, "direction"): "HR < 1 favours placebo"}),
     line=LINE[OS_ROW], col=COL["direction"],
     msg=r"a HR below 1 favours the comparator, but row 'ABCSG18-OS-2022' \(line \d+\) of endpoint OS says the intervention")
case(name="direction_other_measure", exit=1, registry=reg_with({(OS_ROW, "direction"): "OR < 1 favours denosumab"}),
     line=LINE[OS_ROW], col=COL["direction"], msg=r"direction speaks of OR but the row's measure is HR")
case(name="direction_wrong_null", exit=1, registry=reg_with({(OS_ROW, "direction"): "HR < 0 favours denosumab"}),
     line=LINE[OS_ROW], col=COL["direction"], msg=r"not with its null value 1")
case(name="direction_unreadable", exit=1, registry=reg_with({(OS_ROW, "direction"): "lower is better"}),
     line=LINE[OS_ROW], col=COL["direction"], msg=r"does not say which arm a HR below 1 favours")
case(name="direction_names_no_arm", exit=1, registry=reg_with({(OS_ROW, "direction"): "HR < 1 favours zoledronic acid"}),
     line=LINE[OS_ROW], col=COL["direction"], msg=r"names neither the intervention \('denosumab'\) nor the comparator")
case(name="direction_said_the_other_way", exit=0,
     registry=reg_with({(OS_ROW, "direction"): "HR > 1 favours placebo"}))
# plausibility (issue #11 item 3): counts, follow-up, ratios
case(name="n_int_zero", exit=1, registry=reg_with({(OS_ROW, "n_int"): "0"}),
     line=LINE[OS_ROW], col=COL["n_int"], msg=r"0 is below the minimum 1")
case(name="followup_excel_date_serial", exit=1, registry=reg_with({(OS_ROW, "followup_months"): "44927"}),
     line=LINE[OS_ROW], col=COL["followup_months"], msg=r"44927 must be less than 600.*Excel date serial of 2023-01-01")
case(name="followup_zero", exit=1, registry=reg_with({(OS_ROW, "followup_months"): "0"}),
     line=LINE[OS_ROW], col=COL["followup_months"], msg=r"must be greater than 0")
case(name="followup_in_days", exit=1, registry=reg_with({(OS_ROW, "followup_months"): "2190"}),
     line=LINE[OS_ROW], col=COL["followup_months"], msg=r"must be less than 600.*in months")
case(name="hr_entered_as_percentage", exit=0,
     registry=reg_with({(OS_ROW, "estimate"): "1777", (OS_ROW, "ci_lower"): "1500", (OS_ROW, "ci_upper"): "2100"}),
     same_numbers=False, warn=rf":{LINE[OS_ROW]}:{COL['estimate']}: warning: \[estimate\] HR 1777 is outside 0.001 to 1000")
case(name="hr_near_1e300", exit=1,
     registry=reg_with({(OS_ROW, "estimate"): "1e300", (OS_ROW, "ci_lower"): "1e299", (OS_ROW, "ci_upper"): "1e301"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"HR estimate 1e\+300 is outside 1e-06 to 1e\+06")
# numerics (issue #11 item 6): a CI of width 1e-10 gave numpy RuntimeWarnings on the console
case(name="ci_width_1e-10", exit=1,
     registry=reg_with({(OS_ROW, "ci_lower"): "1.00999999995", (OS_ROW, "ci_upper"): "1.01000000005"}),
     line=LINE[OS_ROW], col=COL["ci_lower"], msg=r"narrower than 1e-06")
# Excel's "sep=," first line (issue #11 item 7): skipped with one warning (it gave 41 problems)
case(name="excel_sep_line", exit=0, registry="sep=,\n" + REG_TEXT,
     warn=r":1:0: warning: line 1 is Excel's 'sep=,' line, not the header; skipped \(delete the first line")
case(name="excel_sep_line_semicolon", exit=0, registry="sep=;\r\n" + render(HEADER, ROWS, delimiter=";", eol="\r\n"),
     warn=r":1:0: warning: line 1 is Excel's 'sep=;' line")
case(name="md_near_1e300", exit=1,
     registry=reg_with({(OS_ROW, "measure"): "MD", (OS_ROW, "direction"): "MD < 0 favours denosumab",
                        (OS_ROW, "estimate"): "1e300", (OS_ROW, "ci_lower"): "0.9e300", (OS_ROW, "ci_upper"): "1.1e300"}),
     line=LINE[OS_ROW], col=COL["estimate"], msg=r"MD estimate 1e\+300 is beyond ±1e\+50")
# A decimal comma in a comma-separated file splits the cell: the row has one field too many.
case(name="decimal_comma_in_comma_file", exit=1,
     registry=REG_TEXT.replace(",1.01,0.85,1.20,", ",1,01,0.85,1.20,", 1),
     line=LINE[OS_ROW], col=len(HEADER) + 1, msg=r"fields but the header has")
# File-wide problems (issue #16): one located diagnosis for the file, not one error per cell or row.
_DECIMAL = re.compile(r"^-?[0-9]+\.[0-9]+$")
_P_DECIMAL = re.compile(r"^[<>]?[0-9]*\.[0-9]+$")


def _comma_cells(rows: list[list[str]]) -> list[list[str]]:
    """Every decimal number (and decimal p-value) written with a decimal comma."""
    return [[(c.replace(".", ",") if _DECIMAL.match(c) or (HEADER[j] == "p_value" and _P_DECIMAL.match(c)) else c)
             for j, c in enumerate(r)] for r in rows]


# the first decimal cell in file order (line, then field): where the diagnosis points
_FIRST_DECIMAL = min((LINE[r[0]], j) for r in ROWS for j, c in enumerate(r, 1) if _DECIMAL.match(c))
FILE_WIDE = ("decimal_commas_quoted_in_comma_file", "decimal_commas_unquoted_in_comma_file", "pipe_delimiter")
case(name="decimal_commas_quoted_in_comma_file", exit=1, registry=render(HEADER, _comma_cells(ROWS)),
     line=_FIRST_DECIMAL[0], col=_FIRST_DECIMAL[1],
     msg=r"\d+ number cells are written with a decimal comma \(first here: '[0-9]+,[0-9]+'\).*"
         r"export again with '\.' as the decimal separator")
case(name="decimal_commas_unquoted_in_comma_file", exit=1,
     registry=re.sub(r'"([<>]?-?[0-9]*,[0-9]+)"', r"\1", render(HEADER, _comma_cells(ROWS))),  # numbers unquoted
     line=_FIRST_DECIMAL[0], col=len(HEADER) + 1,
     msg=r"\d+ rows have more fields than the header's \d+ .*decimal comma")
case(name="pipe_delimiter", exit=1, registry=render(HEADER, ROWS, delimiter="|"), line=1, col=0,
     msg=r"fields are separated by '\|', which is not read")
case(name="semicolon_decimal_comma_everywhere", exit=0, registry=render(HEADER, _comma_cells(ROWS), delimiter=";"),
     warn=r"number\(s\) written with a decimal comma")
case(name="tab_decimal_comma", exit=0, registry=render(HEADER, _comma_cells(ROWS), delimiter="\t"),
     warn=r"number\(s\) written with a decimal comma")
case(name="utf16le_without_bom", exit=0, registry=REG_TEXT.encode("utf-16-le"),
     warn=r":1:0: warning: file is UTF-16 \(UTF-16-LE\) without a byte-order mark")
case(name="utf16be_without_bom", exit=0, registry=REG_TEXT.encode("utf-16-be"),
     warn=r":1:0: warning: file is UTF-16 \(UTF-16-BE\) without a byte-order mark")
# A pooled row's measure changed to OR: the plan leaves it out of the HR analysis (rule 3) and says so.


# SPLENDOUR-OS-2020 is pooled in os-any-comparator by selection; NMCRPC-OS-2012 enters through an explicit
# include since the 2026-12-01 curation round (status unconfirmed), and an include of another measure
# is an error, not a silent left-out.
OR_ROW = "SPLENDOUR-OS-2020"


def _or_row_left_out(out: Path) -> None:
    d = json.loads((out / "os-any-comparator.json").read_text(encoding="utf-8"))
    assert OR_ROW not in [s["row_id"] for s in d["studies"]]
    left = {x["row_id"]: x["reason"] for x in d["left_out"]}
    assert OR_ROW in left and "OR" in left[OR_ROW], left


case(name="measure_changed_to_or_is_left_out", exit=0,
     registry=reg_with({(OR_ROW, "measure"): "OR", (OR_ROW, "direction"): "OR < 1 favours denosumab"}),
     same_numbers=False, check=_or_row_left_out)

# --- identity (issue #11 item 2): spellings that must not make one trial two ------------------
_last = len(REG_TEXT.splitlines()) + 1       # line of a row appended to the shipped registry
_case_twice = row(OS_ROW)                   # the same OS result again, patient_set in other case
_case_twice[0], _case_twice[COL["patient_set"] - 1] = OS_ROW + "-UPDATE", "NMCRPC-BMFS"
case(name="patient_set_differing_in_case_pooled_twice", exit=1, registry=reg_with(extra=[_case_twice]),
     line=_last, col=COL["use_for_pooling"], msg=r"patient_set 'NMCRPC-BMFS'.*use_for_pooling = yes")
_zw_twice = row(OS_ROW)
_zw_twice[0], _zw_twice[COL["patient_set"] - 1] = OS_ROW + "-UPDATE", "nmCRPC-BMFS\u200b"
case(name="patient_set_with_zero_width_space", exit=1, registry=reg_with(extra=[_zw_twice]),
     line=_last, col=COL["patient_set"], msg=r"invisible character U\+200B ZERO WIDTH SPACE at character 12")
case(name="comparator_with_zero_width_space", exit=1, registry=reg_with({(OS_ROW, "comparator"): "placebo\u200b"}),
     line=LINE[OS_ROW], col=COL["comparator"], msg=r"invisible character U\+200B")
case(name="comparator_with_soft_hyphen", exit=1, registry=reg_with({(OS_ROW, "comparator"): "pla\u00adcebo"}),
     line=LINE[OS_ROW], col=COL["comparator"], msg=r"invisible character U\+00AD SOFT HYPHEN at character 4")
case(name="endpoint_with_word_joiner", exit=1, registry=reg_with({(OS_ROW, "endpoint"): "OS\u2060"}),
     line=LINE[OS_ROW], col=COL["endpoint"], msg=r"invisible character U\+2060")
case(name="comparator_with_cyrillic_a", exit=1, registry=reg_with({(OS_ROW, "comparator"): "pl\u0430cebo"}),
     line=LINE[OS_ROW], col=COL["comparator"], msg=r"non-Latin letter U\+0430 CYRILLIC SMALL LETTER A at character 3")
case(name="trial_id_full_width", exit=1, registry=reg_with({(OS_ROW, "trial_id"): "ｎｍCRPC-BMFS"}),
     line=LINE[OS_ROW], col=COL["trial_id"], msg=r"look-alike character U\+FF4E .*reads as 'n'")
case(name="tumour_type_with_bom_inside", exit=1, registry=reg_with({(OS_ROW, "tumour_type"): "pro\ufeffstate"}),
     line=LINE[OS_ROW], col=COL["tumour_type"], msg=r"invisible character U\+FEFF")
case(name="population_with_zero_width_joiner", exit=1,
     registry=reg_with({(OS_ROW, "population"): "men with\u200d nmCRPC"}),
     line=LINE[OS_ROW], col=COL["population"], msg=r"invisible character U\+200D")
case(name="invisible_character_in_notes_is_free_text", exit=0,
     registry=reg_with({(OS_ROW, "notes"): "checked\u200b twice"}))
_other_id = row(OS_ROW)                     # the same trial (NCT id) under a second trial_id and patient_set
_other_id[0], _other_id[COL["trial_id"] - 1], _other_id[COL["patient_set"] - 1] = "SMITH-OS-2012", "SMITH-2012", "SMITH-2012"
case(name="same_nct_id_under_second_trial_id", exit=1, registry=reg_with(extra=[_other_id]),
     line=_last, col=COL["nct_id"], msg=r"NCT00286091 is also trial 'nmCRPC-BMFS' \(row 'NMCRPC-BMFS-2012', line \d+\)")
_linked = row(OS_ROW)                       # ... allowed when linked as the same patients
_linked[0], _linked[COL["trial_id"] - 1], _linked[COL["use_for_pooling"] - 1] = "SMITH-OS-2012", "SMITH-2012", "no"
_linked[COL["report"] - 1] = "re-analysis"
case(name="same_nct_id_linked_by_patient_set", exit=0, registry=reg_with(extra=[_linked]))
_linked_parent = list(_other_id)
_linked_parent[COL["parent_row_id"] - 1], _linked_parent[COL["use_for_pooling"] - 1] = OS_ROW, "no"
case(name="same_nct_id_linked_by_parent_row", exit=0, registry=reg_with(extra=[_linked_parent]))

# --- the plan ----------------------------------------------------------------------------------
# (the shipped dfs analysis pools ABCSG-18's 2019 analysis by selection: include its 2022 report too)
_p, _l = plan_insert_after("dfs", "measure", 'include = [{ row = "ABCSG18-DFS-2022", reason = "final analysis" }]')
case(name="plan_same_trial_twice", exit=1, plan=_p, where="plan", line=_l, col=None,
     msg=r"patient_set 'ABCSG-18'.*count twice")
# ... also when the registry spells the second report's patient_set in another case (issue #11 item 2)
case(name="plan_same_trial_twice_patient_set_case", exit=1, plan=_p, where="plan", line=_l, col=None,
     registry=reg_with({("ABCSG18-DFS-2022", "patient_set"): "abcsg-18"}), msg=r"patient_set 'ABCSG-18'.*count twice")
# Overlapping populations: the post hoc lung subgroup (Scagliotti 2012) pooled with the parent
# trial's other subgroup of the same patients (patient_set DMAB-ZA-SOLID, Henry 2011's trial).
_p, _l = plan_replace_in(
    "os-any-comparator", '{ row = "ZASOLID-OS-2012-LUNG"',
    '{ row = "ZASOLID-OS-2012-NSCLC", reason = "NSCLC subgroup" }, { row = "ZASOLID-OS-2012-LUNG"')
case(name="plan_subgroup_pooled_with_parent_population", exit=1, plan=_p, where="plan", line=_l, col=None,
     msg=r"patient_set 'DMAB-ZA-SOLID'.*count twice")
# Henry 2011 (SRE) and Scagliotti 2012 (OS): one trial's two endpoints in one analysis.
_p, _l = plan_insert_after(
    "sre-zoledronic", "subgroup", 'include = [{ row = "ZASOLID-OS-2012-LUNG", reason = "Scagliotti 2012" }]')
case(name="plan_henry_and_scagliotti_in_one_analysis", exit=1, plan=_p, where="plan", line=_l, col=None,
     msg=r"ZASOLID-OS-2012-LUNG': its endpoint is OS")
_reg_or = reg_with({("SPLENDOUR-OS-2020", "measure"): "OR", ("SPLENDOUR-OS-2020", "direction"): "OR < 1 favours denosumab"})
_p, _l = plan_replace_in("os-any-comparator", "include = [", 'include = [{ row = "SPLENDOUR-OS-2020", reason = "as OR" }, ')
case(name="plan_mixing_measures", exit=1, registry=_reg_or, plan=_p, where="plan", line=_l, col=None,
     msg=r"mix measures")
# sre-zoledronic: its three rows are pooled by selection alone (no include)
_p, _l = plan_replace_in("sre-zoledronic", 'select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]',
                         'select.comparator = ["no such comparator"]')
_l_ep = plan_line(_p, 'endpoint = "SRE"')[0]
case(name="plan_no_studies_after_filtering", exit=1, plan=_p, where="plan", line=_l_ep, col=None,
     msg=r"no rows to pool")
_p, _l = plan_replace_in("sre-zoledronic", 'endpoint = "SRE"', 'endpoint = "SRX"')
case(name="plan_unknown_endpoint", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"SRX")
_p, _l = plan_replace_in("sre-zoledronic", 'measure = "HR"', 'measure = "HRR"')
case(name="plan_unknown_measure", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"HRR")
_p, _l = plan_insert_after("sre-zoledronic", "measure", 'methd = "DL"')
case(name="plan_unknown_key", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"unknown key 'methd'.*method")
_p, _l = plan_insert_after("sre-zoledronic", "measure", 'method = "XYZ"')
case(name="plan_unknown_method", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"method = 'XYZ'")
_p, _l = plan_insert_after("sre-zoledronic", "measure", "level = 1.5")
case(name="plan_level_out_of_range", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"level")
_p, _l = plan_replace_in("sre-zoledronic", 'id = "sre-zoledronic"', 'id = "../../escape"')
case(name="plan_id_path_traversal", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"not a usable file name")
_p, _l = plan_replace_in("sre-zoledronic", 'id = "sre-zoledronic"', 'id = "index"')
case(name="plan_reserved_id", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"not a usable file name")
_p, _l = plan_replace_in("sre-zoledronic", 'id = "sre-zoledronic"', 'id = "dfs"')
case(name="plan_duplicate_id", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"duplicate id 'dfs'")
_p, _l = plan_insert_after("sre-zoledronic", "measure", 'exclude = [{ row = "NO-SUCH-ROW", reason = "x" }]')
case(name="plan_unknown_row", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"NO-SUCH-ROW")
_p, _l = plan_insert_after("sre-zoledronic", "measure", 'include = [{ row = "ZABREAST-SRE-2010" }]')
case(name="plan_include_without_reason", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"reason")
_p, _l = plan_replace_in("sre-zoledronic", 'in bone metastases"', "in bone metastases")
case(name="plan_toml_syntax_error", exit=1, plan=_p, where="plan", line=_l, col=None, msg=r"TOML syntax")
case(name="plan_empty", exit=1, plan="", where="plan", line=1, col=0, msg=r"no \[\[analysis\]\]")
case(name="plan_not_utf8", exit=1, plan=PLAN_TEXT.encode("utf-8").replace(b"Hazard ratios below", b"Hazard\xff ratios below", 1),
     where="plan", line=plan_line(PLAN_TEXT, "Hazard ratios below")[0], col=plan_line(PLAN_TEXT, "Hazard ratios below")[1] + 6,
     msg=r"not UTF-8")
# issue #11 item 6: nesting that made Python's TOML parser recurse to death (exit 3)
_deep_line = len(PLAN_TEXT.splitlines()) + 2
case(name="plan_nested_3000_deep", exit=1, plan=PLAN_TEXT + "\nx = " + "[" * 3000 + "]" * 3000 + "\n", where="plan",
     line=_deep_line, col=5 + 16, msg=r"nested more than 16 levels deep")
case(name="plan_inline_tables_3000_deep", exit=1, plan=PLAN_TEXT + "\nx = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
     where="plan", line=_deep_line, col=5 + 16 * 5, msg=r"nested more than 16 levels deep")
case(name="plan_brackets_inside_strings_are_not_nesting", exit=0,
     plan=PLAN_TEXT.replace('title = "', 'title = "' + "[" * 40 + "{" * 40 + " ", 1))
# issue #11 item 7: Windows device names as ids, typed keys
for _dev in ("con", "aux", "nul", "prn", "com1", "lpt9"):
    _p, _l = plan_replace_in("sre-zoledronic", 'id = "sre-zoledronic"', f'id = "{_dev}"')
    case(name=f"plan_windows_device_id_{_dev}", exit=1, plan=_p, where="plan", line=_l, col=None,
         msg=rf"id '{_dev}' is not a usable file name")
_l = plan_line(PLAN_TEXT, 'title = "Denosumab in oncology')[0]
case(name="plan_title_is_a_number", exit=1, plan=PLAN_TEXT.replace('title = "Denosumab in oncology: evidence reports"',
                                                                    "title = 5", 1),
     where="plan", line=_l, col=None, msg=r"title must be a string in double quotes, not int 5")
case(name="plan_bom_crlf", exit=0, plan=b"\xef\xbb\xbf" + PLAN_TEXT.replace("\n", "\r\n").encode("utf-8"))


# ------------------------------------------------------------------------------------------
# machinery
# ------------------------------------------------------------------------------------------

def snapshot(d: Path) -> dict[str, str]:
    """SHA-256 of every file under d (relative path -> hash), plus the names beside d."""
    out = {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(d.rglob("*")) if p.is_file()}
    out["<siblings>"] = ",".join(sorted(p.name for p in d.parent.iterdir()))
    return out


def numbers(out: Path) -> dict[str, dict]:
    """Per analysis JSON: what the pooled numbers are (everything but provenance hashes, and the
    study flags: an accepted quirk warns, and the warning travels with its row as a flag)."""
    res = {}
    for p in sorted(out.glob("*.json")):
        d = json.loads(p.read_text(encoding="utf-8"))
        if "result" in d:
            res[p.stem] = {k: d[k] for k in ("k", "result", "studies", "estimator_panel", "leave_one_out",
                                             "cumulative", "subgroups", "sensitivity")}
            for st in res[p.stem]["studies"]:
                st["flags"] = [f for f in st["flags"] if f != "registry-warning"]
    return res


@pytest.fixture(scope="session")
def good_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good") / "reports"
    assert main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def good_numbers(good_build) -> dict:
    n = numbers(good_build)
    # the shipped plan has 4 analyses (trials/analyses.toml: dfs, sre-zoledronic, fracture and the
    # exploratory os-any-comparator; the other endpoints are narratives across clinical questions)
    assert len(n) == 4
    return n


def write_case(c: Case, d: Path) -> tuple[Path, Path]:
    reg, plan = d / "registry.csv", d / "analyses.toml"
    for path, content, default in ((reg, c.registry, REG_TEXT), (plan, c.plan, PLAN_TEXT)):
        content = default if content is None else content
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return reg, plan


def fresh_out(good_build: Path, tmp_path: Path) -> Path:
    work = tmp_path / "site"
    work.mkdir()
    out = work / "reports"
    shutil.copytree(good_build, out)
    return out


def test_roundtrip_of_the_shipped_registry():
    # the mutations render the registry with csv.writer; unchanged, that must be the file itself
    assert render(HEADER, ROWS) == REG_TEXT
    assert LINE["ABCSG18-FRACTURE-2015"] == 2
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_report(c: Case, tmp_path, good_build, good_numbers, capsys):
    (tmp_path / "in").mkdir()
    reg, plan = write_case(c, tmp_path / "in")
    out = fresh_out(good_build, tmp_path)
    before = snapshot(out)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:   # numpy warnings would reach the console
        warnings.simplefilter("always")
        code = main(["report", "--registry", str(reg), "--plan", str(plan), "--out", str(out)])
    cap = capsys.readouterr()
    err = cap.err
    assert "Traceback" not in err and "Traceback" not in cap.out
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert code == c.exit, f"exit {code}, expected {c.exit}; stderr:\n{err}"
    if c.exit != 0:
        assert snapshot(out) == before, "a failed build changed OUT or left files beside it"
        path = reg if c.where == "registry" else plan
        col = r"\d+" if c.col is None else str(c.col)
        pat = re.compile(rf"^{re.escape(str(path))}:{c.line}:{col}: error: .*(?:{c.msg})", re.M)
        assert pat.search(err), f"no error at {path.name}:{c.line}:{c.col} matching {c.msg!r}; stderr:\n{err}"
        # every line of stderr is a formatted problem
        for ln in err.strip().splitlines():
            assert re.match(r"^.+:\d+:\d+: (error|warning): ", ln), ln
        return
    if c.warn:
        assert re.search(c.warn, err), f"expected a warning matching {c.warn!r}; stderr:\n{err}"
    assert (out / "index.html").is_file()
    if c.same_numbers:
        got = numbers(out)
        assert got == good_numbers
    if c.check:
        c.check(out)
    # nothing left beside OUT (temporary build or backup directories)
    assert sorted(p.name for p in out.parent.iterdir()) == ["reports"]


@pytest.mark.parametrize("c", [c for c in CASES if c.where == "registry" and c.plan is None],
                         ids=[c.name for c in CASES if c.where == "registry" and c.plan is None])
def test_validate(c: Case, tmp_path, capsys):
    """``metaanalysis validate`` reports the same registry problem (exit 0 for accepted quirks)."""
    reg, plan = write_case(c, tmp_path)
    code = main(["validate", str(reg), "--plan", str(plan)])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    assert code == c.exit, cap.err
    if c.exit:
        col = r"\d+" if c.col is None else str(c.col)
        assert re.search(rf"^{re.escape(str(reg))}:{c.line}:{col}: error: .*(?:{c.msg})", cap.err, re.M), cap.err
    assert re.search(r"\d+ rows?, \d+ errors?, \d+ warnings?", cap.out), cap.out


@pytest.mark.parametrize("name", FILE_WIDE)
def test_file_wide_problem_is_one_error(name, tmp_path, capsys):
    """A decimal-comma export, rows split by commas or another separator: exactly one error line
    (it was one per cell: 100 for the shipped registry exported with decimal commas)."""
    c = next(c for c in CASES if c.name == name)
    reg, plan = write_case(c, tmp_path)
    assert main(["validate", str(reg)]) == 1
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ": error: " in ln]
    assert len(errors) == 1, errors


@pytest.mark.parametrize("name", ["ci_lower_above_upper", "plan_toml_syntax_error", "bom", "empty_file"])
def test_console_script(name, tmp_path, good_build):
    """The installed console script behaves as main(): exit code, PATH:LINE:COL, no traceback."""
    assert CONSOLE.is_file(), f"{CONSOLE} missing: run `make test` (installs the package into .venv)"
    c = next(c for c in CASES if c.name == name)
    (tmp_path / "in").mkdir()
    reg, plan = write_case(c, tmp_path / "in")
    out = fresh_out(good_build, tmp_path)
    before = snapshot(out)
    p = subprocess.run([str(CONSOLE), "report", "--registry", str(reg), "--plan", str(plan), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "Traceback" not in p.stderr
    assert p.returncode == c.exit, p.stderr
    if c.exit:
        assert snapshot(out) == before
        path = reg if c.where == "registry" else plan
        assert re.search(rf"^{re.escape(str(path))}:{c.line}:\d+: error: ", p.stderr, re.M), p.stderr
    else:
        assert numbers(out) == numbers(good_build)


def test_missing_inputs(tmp_path, good_build, capsys):
    out = fresh_out(good_build, tmp_path)
    before = snapshot(out)
    for args, bad in ((["--registry", str(tmp_path / "nope.csv"), "--plan", str(PLAN)], tmp_path / "nope.csv"),
                      (["--registry", str(REGISTRY), "--plan", str(tmp_path / "nope.toml")], tmp_path / "nope.toml"),
                      (["--registry", str(tmp_path), "--plan", str(PLAN)], tmp_path)):
        code = main(["report", *args, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1, err
        assert re.search(rf"^{re.escape(str(bad))}:0:0: error: ", err, re.M), err
        assert "Traceback" not in err
    assert snapshot(out) == before


# --- metaanalysis pool: zero / negative variances and SEs -----------------------------------------

@pytest.mark.parametrize("content,line,col,msg", [
    ("yi,vi\n-0.22,0.0139\n0.01,0\n", 3, 2, "vi must be > 0"),
    ("yi,vi\n-0.22,0.0139\n0.01,-0.01\n", 3, 2, "vi must be > 0"),
    ("yi,sei\n-0.22,0.1\n0.01,-0.1\n", 3, 2, "sei must be > 0"),
    ("yi,sei\n-0.22,0.1\n0.01,0\n", 3, 2, "sei must be > 0"),
    ("yi,vi\n-0.22,0.0139\nnan,0.01\n", 3, 1, "yi must be finite"),
    ("yi,vi\n-0.22,0.0139\n=1+1,0.01\n", 3, 1, "yi is not a number"),
    # issue #11 item 4: the registry's strict reader and number parser
    ("yi,vi,yi\n-0.22,0.0139,1\n0.01,0.02,2\n", 1, 3, "column 'yi' appears twice (also column 1)"),
    ("yi,vi,sei\n-0.22,0.0139,0.1179\n0.01,0.02,0.2\n", 3, 3, "sei² = 0.04 disagrees with vi = 0.02"),
    ("yi,vi\n-0.22,0.0139\n0.01,\"0.02\n0.1,0.03\n", 3, 2, "quoted field opened on line 3 is never closed"),
    ('study,yi,vi\n"two\nlines",-0.22,0.0139\n"b,0.01,0.02\n', 4, 1, "quoted field opened on line 4 is never closed"),
    ("yi,vi\n-0.22,0.0139\n-0_2,0.02\n", 3, 1, "yi is not a number: '-0_2'"),
    ("yi,vi\n-0.22,0.0139\n0.1,abc\n", 3, 2, "vi is not a number: 'abc'"),
    # issue #11 item 6: extremes refused at their cell (the sums of the estimators would overflow)
    ("yi,vi\n1e300,0.01\n-1e300,0.02\n0.1,0.03\n", 2, 1, "yi = 1e300 is beyond"),
    ("yi,vi\n0.1,1e-300\n0.2,0.02\n0.3,0.03\n", 2, 2, "vi = 1e-300 is outside"),
    ("yi,sei\n0.1,1e-160\n0.2,0.02\n", 2, 2, "sei = 1e-160 is outside"),
    ("yi,vi\n0.1,0.01\n0.2," + "1" * 200_000 + "\n", 3, 0, "a field longer than"),
    ("yi,vi\n0.1,0.01\n0.2," + "1" * 5000 + "\n", 3, 2, "vi: cell is 5000 characters long"),
    # issue #16: a decimal-comma export is one diagnosis of the file, not one error per cell
    ('yi,vi\n"-0,22","0,0139"\n"0,01","0,02"\n', 2, 1, "[yi] 4 number cell(s) written with a decimal comma"),
], ids=["vi0", "vi_negative", "sei_negative", "sei0", "yi_nan", "yi_formula", "duplicate_column", "vi_sei_disagree",
        "unclosed_quote", "unclosed_quote_after_multiline_field", "underscore_digits", "vi_text",
        "yi_1e300", "vi_1e-300", "sei_1e-160", "cell_200000_characters", "cell_5000_characters",
        "decimal_commas_in_comma_file"])
def test_pool_bad_variances(content, line, col, msg, tmp_path, capsys):
    p = tmp_path / "effects.csv"
    p.write_text(content, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["pool", str(p)])
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert re.search(rf"^{re.escape(str(p))}:{line}:{col}: error: .*{re.escape(msg)}", err, re.M), err
    assert "Warning" not in err
    if "decimal comma" in msg:
        assert err.count(": error: ") == 1, err


@pytest.mark.parametrize("content,warn", [
    ("yi,vi,sei\n-0.22,0.0139,0.11789826\n0.01,0.02,0.14142136\n", None),   # agree to 1e-6
    ("yi,vi\n-0.22,0.0139\n０.０１,0.02\n", r":3:1: warning: \[yi\] 1 number\(s\) written with non-ASCII digits"),
    ("yi,vi\n-0.22,0.0139\n0.01,٠.٠٢\n", r":3:2: warning: \[vi\] 1 number\(s\) written with non-ASCII digits"),
    ("yi;vi\n-0,22;0,0139\n0,01;0,02\n", r":2:1: warning: \[yi\] 4 number\(s\) written with a decimal comma"),
], ids=["vi_sei_agree", "full_width_digits", "arabic_indic_digits", "decimal_comma"])
def test_pool_accepted_quirks_are_warned(content, warn, tmp_path, capsys):
    p = tmp_path / "effects.csv"
    p.write_text(content, encoding="utf-8")
    code = main(["pool", str(p), "--format", "json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert json.loads(cap.out)["k"] == 2
    if warn:
        assert re.search(re.escape(str(p)) + warn, cap.err), cap.err
    else:
        assert cap.err == ""


# --- hostile --out: never destroy what is not a previous report build -----------------------------

def _report(out: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    assert CONSOLE.is_file(), f"{CONSOLE} missing: run `make test` (installs the package into .venv)"
    return subprocess.run([str(CONSOLE), "report", "--registry", str(REGISTRY), "--plan", str(PLAN),
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_out_is_a_directory_of_other_files(tmp_path):
    """``--out`` naming a directory that is not a report build (a typo such as ``--out trials``)
    must not delete its files: refuse (exit 1/2), or build while keeping them."""
    out = tmp_path / "mydata"
    out.mkdir()
    (out / "registry.csv").write_text("precious\n", encoding="utf-8")
    (out / "sub").mkdir()
    (out / "sub" / "notes.txt").write_text("also precious\n", encoding="utf-8")
    p = _report(out)
    assert "Traceback" not in p.stderr
    assert (out / "registry.csv").read_text(encoding="utf-8") == "precious\n", (
        f"exit {p.returncode}: the build deleted a file it did not write; stderr:\n{p.stderr}")
    assert (out / "sub" / "notes.txt").read_text(encoding="utf-8") == "also precious\n"


def test_out_is_an_existing_file(tmp_path):
    """``--out`` naming an existing regular file: an error naming it, the file left in place."""
    f = tmp_path / "notes.txt"
    f.write_text("precious\n", encoding="utf-8")
    p = _report(f)
    assert "Traceback" not in p.stderr
    assert p.returncode in (1, 2), p.stderr
    assert f.is_file() and f.read_text(encoding="utf-8") == "precious\n"
    assert str(f) in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notes.txt"]


def test_out_is_the_current_directory(tmp_path):
    """``--out .``: no traceback, and the directory's own files survive."""
    (tmp_path / "keep.txt").write_text("precious\n", encoding="utf-8")
    p = _report(Path("."), cwd=tmp_path)
    assert "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "precious\n"
    assert p.returncode in (0, 1, 2)
    assert not [x.name for x in tmp_path.parent.iterdir() if x.name.startswith("..")], "stray temp dirs"


# --- issue #11 item 1: report and batch never delete what they did not write ------------------

def _tree(d: Path) -> dict[str, str]:
    """SHA-256 of every file under d, and every directory (as '<dir>')."""
    return {str(p.relative_to(d)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>")
            for p in sorted(d.rglob("*"))}


def _legacy_look_alike(d: Path) -> None:
    """A folder holding index.html and results.csv among other .html/.csv files (no marker)."""
    d.mkdir(parents=True)
    for name in ("index.html", "results.csv", "summary.html", "extra.csv"):
        (d / name).write_text(f"the reviewer's {name}\n", encoding="utf-8")


@pytest.mark.parametrize("way", ["registry_in_legacy_lookalike", "plan_in_legacy_lookalike",
                                 "registry_in_marked_build", "plan_in_marked_build_old_marker"])
def test_report_refuses_inputs_inside_out(way, tmp_path, capsys):
    d = tmp_path / "D"
    if "legacy" in way:
        _legacy_look_alike(d)
    else:
        assert main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(d)]) == 0
        if "old_marker" in way:  # a build marked before markers listed their files
            (d / ".metaanalysis-report").write_text("written by `metaanalysis report`; safe to replace\n")
    reg, plan = REGISTRY, PLAN
    if "registry" in way:
        reg = d / "registry.csv"
        shutil.copy(REGISTRY, reg)
        what = "--registry"
    else:
        plan = d / "analyses.toml"
        shutil.copy(PLAN, plan)
        what = "--plan"
    bad = reg if what == "--registry" else plan
    before = _tree(tmp_path)
    capsys.readouterr()
    code = main(["report", "--registry", str(reg), "--plan", str(plan), "--out", str(d)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert re.search(rf"^{re.escape(str(bad))}:0:0: error: {what} lies inside the output directory", err, re.M), err
    assert _tree(tmp_path) == before


def test_report_refuses_a_legacy_lookalike_out(tmp_path, capsys):
    d = tmp_path / "D"
    _legacy_look_alike(d)
    before = _tree(tmp_path)
    code = main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(d)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert re.search(rf"^{re.escape(str(d))}:0:0: error: refusing to replace .*delete the directory yourself", err, re.M)
    assert _tree(tmp_path) == before


def test_report_refuses_a_marked_build_with_a_foreign_file(tmp_path, capsys):
    d = tmp_path / "D"
    assert main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(d)]) == 0
    (d / "my-notes.txt").write_text("a reviewer's notes\n", encoding="utf-8")
    before = _tree(tmp_path)
    capsys.readouterr()
    code = main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(d)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert re.search(rf"^{re.escape(str(d))}:0:0: error: refusing to replace .*\(my-notes\.txt\)", err, re.M), err
    assert _tree(tmp_path) == before


def _batch_dir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(REGISTRY, d / "registry.csv")
    shutil.copy(PLAN, d / "analyses.toml")
    return d


@pytest.mark.parametrize("way", ["input_is_a_previous_output", "input_inside_a_previous_output",
                                 "out_is_an_input_directory"])
def test_batch_refuses_inputs_inside_out(way, tmp_path, capsys):
    out = tmp_path / "out"
    if way == "input_is_a_previous_output":
        src = out / "D"
        assert main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(src)]) == 0
        (src / ".metaanalysis-report").write_text("written by `metaanalysis report`; safe to replace\n")
        _batch_dir(src)
    elif way == "input_inside_a_previous_output":
        src = out / "D"         # D/trials/registry.csv: the registry lies deeper inside OUT/D
        _batch_dir(src / "trials")
    else:
        src = _batch_dir(tmp_path / "D")
        out = tmp_path          # OUT/D is the input directory itself
    before = _tree(tmp_path)
    capsys.readouterr()
    code = main(["batch", str(src), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(r"^metaanalysis batch: usage error: .*: lies inside .*, which this batch replaces", err, re.M), err
    assert str(src) in err
    assert _tree(tmp_path) == before


# --- issue #11 item 7: a full disk names the path ------------------------------------------------

def test_disk_full_names_the_path(tmp_path, good_build, monkeypatch, capsys):
    import errno

    out = fresh_out(good_build, tmp_path)
    before = snapshot(out)
    real = Path.write_bytes

    def full(self, data):
        if self.name == "index.html":
            raise OSError(errno.ENOSPC, "No space left on device")   # as write() raises it: no file name
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    capsys.readouterr()
    code = main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert re.search(rf"^metaanalysis: error: {re.escape(str(out.parent))}/\.reports\.build-\w+/index\.html: "
                     r"No space left on device \(nothing was replaced", err, re.M), err
    assert "error::" not in err
    assert snapshot(out) == before


# --- issue #11 item 6: one analysis with very many studies ---------------------------------------

def _synthetic(path: Path, k: int, sensitivity) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_synthetic", ROOT / "benchmarks" / "make_synthetic.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    return synth.make_registry_dir(path, 1, seed=3, k_min=k, k_max=k, sensitivity=sensitivity)


@pytest.mark.parametrize("k,exit", [(1000, 0), (1001, 1)])
def test_per_study_refits_are_bounded(k, exit, tmp_path, capsys):
    """leave-one-out and cumulative hold k fits of k studies (memory and JSON ~ k²: k = 1500 needed
    2.4 GB and wrote a 470 MB JSON file): refused above vocab.MAX_K_REFITS, at the plan's line."""
    from metaanalysis.vocab import MAX_K_REFITS

    assert MAX_K_REFITS == 1000
    d = _synthetic(tmp_path / "big", k, ("leave-one-out", "estimators"))
    plan = d / "analyses.toml"
    code = main(["validate", str(d / "registry.csv"), "--plan", str(plan)])
    err = capsys.readouterr().err
    assert code == exit, err
    if exit:
        line = plan_line(plan.read_text(encoding="utf-8"), "[[analysis]]")[0] + 3   # its endpoint line
        assert plan.read_text(encoding="utf-8").splitlines()[line - 1].startswith("endpoint"), line
        assert re.search(rf"^{re.escape(str(plan))}:{line}:\d+: error: analysis 'a0000' has 1001 studies: "
                         r"leave-one-out refit it once per study", err, re.M), err
