"""Registry loader/validator: every rule has a corpus file (tests/corpus/registry/, made by
make_corpus.py from valid_minimal.csv) and an expected exit code, line, column and message.

valid_minimal.csv: header = line 1; rows ABCSG18-DFS-2019 (line 2), ABCSG18-DFS-2022 (3),
DCARE-DFS-2020 (4), DCARE-OS-2020 (5). Columns (1-based): row_id 1, trial_id 2, trial_name 3,
nct_id 4, parent_row_id 6, design 7, population 8, endpoint 14, measure 16, estimate 18,
ci_lower 19, ci_upper 20, ci_level 21, p_value 22, events_int 26, use_for_pooling 31,
status 32, year 35, pmid 36, doi 37, regimen 39, pooled_from 40, notes 41.
"""

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis import cli
from metaanalysis import effects as ef
from metaanalysis import plan as plan_module
from metaanalysis import registry as reg
from metaanalysis.problems import Problem, ProblemError

CORPUS = Path(__file__).parent / "corpus" / "registry"
ROOT = Path(__file__).resolve().parents[1]

# (file, exit code, severity, line, column, fragment of "message (hint)")
CASES = [
    ("valid_minimal.csv", 0, None, 0, 0, ""),
    ("bom.csv", 0, None, 0, 0, ""),
    ("crlf.csv", 0, None, 0, 0, ""),
    ("html_script.csv", 0, None, 0, 0, ""),  # HTML is allowed (escaped by the report)
    ("blank_and_separator_rows.csv", 0, None, 0, 0, ""),
    ("scientific_notation.csv", 0, None, 0, 0, ""),
    ("semicolon_decimal_comma.csv", 0, "warning", 1, 0, "separated by ';'"),
    ("semicolon_decimal_comma.csv", 0, "warning", 2, 18, "decimal comma"),
    ("tab_separated.csv", 0, "warning", 1, 0, "separated by tab"),
    ("cp1252.csv", 0, "warning", 3, 41, "Windows-1252"),
    ("utf16.csv", 0, "warning", 1, 0, "UTF-16"),
    ("renamed_column.csv", 0, "warning", 1, 0, "'Estimate' -> 'estimate'"),
    ("renamed_column.csv", 0, "warning", 1, 0, "leading/trailing spaces"),
    ("unknown_column.csv", 0, "warning", 1, 42, "unknown column 'reviewer'"),
    ("trailing_spaces.csv", 0, "warning", 2, 18, "2 cell(s) have leading/trailing spaces"),
    ("formula.csv", 0, "warning", 2, 41, "spreadsheet formula"),
    ("not_centred.csv", 0, "warning", 2, 18, "not halfway between the CI bounds"),
    ("p_disagrees.csv", 0, "warning", 2, 22, "disagrees with the p = 0.03"),
    ("one_sided_as_two.csv", 0, "warning", 2, 22, "set p_sided = 1"),
    ("p_noncanonical.csv", 0, "warning", 2, 22, "write it as '0.026'"),
    ("trailing_empty_column.csv", 0, "warning", 1, 42, "empty column(s) without a name; ignored"),
    ("unnamed_column_with_value.csv", 1, "error", 3, 42, "value(s) in a column without a name"),
    ("not_text_bytes.csv", 1, "error", 3, 41, "byte 0x81"),
    ("binary_xlsx.csv", 1, "error", 1, 0, "not a text file"),
    ("empty.csv", 1, "error", 1, 0, "the file is empty"),
    ("header_only.csv", 1, "error", 2, 0, "no data rows"),
    ("long_field.csv", 1, "error", 3, 41, "2500 characters long (at most 2000)"),
    ("missing_column.csv", 1, "error", 1, 0, "required column 'measure' is missing"),
    ("misspelled_column.csv", 1, "error", 1, 0, "did you mean column 'endpiont' (column 14)"),
    ("misspelled_optional_column.csv", 1, "error", 1, 0, "column 'ci_lower' is missing (did you mean column 'ci_lowr'"),
    ("duplicate_column.csv", 1, "error", 1, 42, "column 'notes' appears twice"),
    ("unknown_endpoint.csv", 1, "error", 2, 14, "did you mean 'DFS'?"),
    ("enum_case.csv", 1, "error", 3, 7, "did you mean 'RCT'?"),
    ("nonnumeric_estimate.csv", 1, "error", 2, 18, "'NR' is not a number"),
    ("decimal_comma_in_comma_file.csv", 1, "error", 2, 18, "use a decimal point"),
    ("bad_nct.csv", 1, "error", 2, 4, "NCT followed by 8 digits"),
    ("bad_doi.csv", 1, "error", 2, 37, "drop the prefix: '10.1016/S1470-2045(18)30862-3'"),
    ("bad_pmid.csv", 1, "error", 4, 36, "not a valid pmid"),
    ("bad_row_id.csv", 1, "error", 2, 1, "not a valid row_id"),
    ("duplicate_row_id.csv", 1, "error", 3, 1, "used twice (first on line 2)"),
    ("required_empty.csv", 1, "error", 4, 3, "required value is empty"),
    ("ci_level_missing.csv", 1, "error", 2, 21, "a CI is given but ci_level is empty"),
    ("ci_level_fraction.csv", 1, "error", 2, 21, "looks like a fraction"),
    ("ci_level_100.csv", 1, "error", 3, 21, "must be less than 100"),
    ("p_out_of_range.csv", 1, "error", 2, 22, "outside (0, 1]"),
    ("p_zero.csv", 1, "error", 2, 22, "outside (0, 1]"),
    ("p_text.csv", 1, "error", 4, 22, "cannot read 'NS' as a p-value"),
    ("ci_reversed.csv", 1, "error", 2, 19, "not below the upper bound"),
    ("estimate_outside_ci.csv", 1, "error", 2, 18, "outside its CI"),
    ("nonpositive_ratio.csv", 1, "error", 3, 19, "is not positive"),
    ("ci_one_bound.csv", 1, "error", 2, 20, "only one CI bound"),
    ("status_missing_with_estimate.csv", 1, "error", 5, 18, "status is 'missing' but an estimate is given"),
    ("status_confirmed_empty.csv", 1, "error", 4, 32, "neither an estimate, a p-value nor 2x2 counts"),
    ("pval_with_estimate.csv", 1, "error", 4, 18, "measure PVAL"),
    ("pooling_twice.csv", 1, "error", 3, 31, "use_for_pooling = yes (also 'ABCSG18-DFS-2019', line 2)"),
    ("parent_unknown.csv", 1, "error", 3, 6, "did you mean 'ABCSG-18'?"),
    ("duplicate_rows.csv", 1, "error", 6, 1, "repeats row 'ABCSG18-DFS-2022' (line 3)"),
    ("control_char.csv", 1, "error", 3, 41, "control character U+0007"),
    ("multiline.csv", 1, "error", 4, 18, "'NR' is not a number"),  # row 2's population spans lines 2-4
    ("multiline.csv", 1, "error", 5, 14, "'DSF'"),
    ("wrong_field_count.csv", 1, "error", 3, 42, "42 fields but the header has 41"),
    ("unclosed_quote.csv", 1, "error", 4, 41, "opened on line 4 is never closed"),  # notes
    ("events_exceed_n.csv", 1, "error", 2, 26, "events_int 2000 exceeds n_int 1711"),
    ("year_not_integer.csv", 1, "error", 2, 35, "not a whole number"),
    ("year_below_minimum.csv", 1, "error", 4, 35, "below the minimum 1950"),
]


def _rc(path, capsys) -> tuple[int, str, str]:
    rc = cli.main(["validate", str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name, code, severity, line, column, fragment", CASES,
                         ids=[f"{c[0]}:{c[3]}:{c[4]}" for c in CASES])
def test_corpus_case(name, code, severity, line, column, fragment, capsys):
    path = CORPUS / name
    problems = reg.validate_registry(path)
    rc, out, err = _rc(path, capsys)
    assert rc == code, err
    assert "Traceback" not in err
    if severity is None:
        assert problems == [] and err == ""
        assert out.strip().endswith("rows, 0 errors, 0 warnings")
        return
    hits = [p for p in problems if (p.severity, p.line, p.column) == (severity, line, column)
            and fragment in f"{p.message} ({p.hint})"]
    assert hits, "\n".join(p.format() for p in problems)
    # printed as PATH:LINE:COLUMN: severity: ...
    assert f"{path}:{line}:{column}: {severity}: " in err


def test_corpus_has_a_file_per_rule():
    files = {c[0] for c in CASES}
    assert len(files) >= 30
    on_disk = {p.name for p in CORPUS.glob("*.csv")}
    assert files <= on_disk
    assert on_disk - files == set(), "every corpus file needs an expectation"


def test_errors_are_reported_all_at_once():
    with pytest.raises(ProblemError) as e:
        reg.load_registry(CORPUS / "multiline.csv")
    assert [(p.line, p.column) for p in e.value.errors] == [(4, 18), (5, 14)]


def test_clean_file_has_only_the_expected_problems_and_no_others():
    # A warning-only file: exactly the quirk, nothing invented around it.
    probs = reg.validate_registry(CORPUS / "semicolon_decimal_comma.csv")
    assert [(p.severity, p.line, p.column) for p in probs] == [("warning", 1, 0), ("warning", 2, 18)]
    assert "8 number(s)" in probs[1].message  # 4 columns x 2 rows with values


def test_load_registry_types_lines_and_hash():
    path = CORPUS / "valid_minimal.csv"
    r = reg.load_registry(path)
    assert len(r) == 4 and r.problems == ()
    assert r.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert r.path == str(path)
    df = r.df
    assert str(df["estimate"].dtype) == "float64"
    assert str(df["year"].dtype) == "Int64"
    assert str(df["row_id"].dtype) == "string"
    assert df["source_line"].tolist() == [2, 3, 4, 5]
    assert df["estimate"].iloc[0] == 0.823 and math.isnan(df["estimate"].iloc[3])
    assert df["notes"].iloc[3] == "<b>OS</b> not extracted"  # HTML kept verbatim
    assert r.columns["estimate"] == 18 and r.line_of("DCARE-DFS-2020") == 4
    p = r.problem("DCARE-DFS-2020", "p_value", "error", "x")
    assert (p.line, p.column, p.column_name) == (4, 22, "p_value")


def test_semicolon_file_reads_the_same_values():
    a = reg.load_registry(CORPUS / "valid_minimal.csv").df
    b = reg.load_registry(CORPUS / "semicolon_decimal_comma.csv").df
    for c in ("estimate", "ci_lower", "ci_upper", "followup_months"):
        assert np.array_equal(a[c].to_numpy(), b[c].to_numpy(), equal_nan=True)
    assert b["journal"].iloc[0] == "Lancet Oncol 2019;20(3)"


def test_renamed_and_scientific_values():
    r = reg.load_registry(CORPUS / "renamed_column.csv")
    assert r.df["estimate"].iloc[0] == 0.823 and r.df["use_for_pooling"].iloc[0] == "yes"
    s = reg.load_registry(CORPUS / "scientific_notation.csv")
    assert s.df["followup_months"].iloc[0] == 72.0 and s.df["p_value"].iloc[0] == "2.6E-02"


def test_cp1252_text_decoded():
    r = reg.load_registry(CORPUS / "cp1252.csv")
    assert r.df["notes"].iloc[1] == "Gnant é descriptive"


def test_effects_table_on_valid_minimal():
    t = reg.effects_table(reg.load_registry(CORPUS / "valid_minimal.csv"))
    assert t["row_id"].tolist() == ["ABCSG18-DFS-2019", "ABCSG18-DFS-2022", "DCARE-DFS-2020", "DCARE-OS-2020"]
    assert t["se_source"].tolist() == ["ci", "ci", "p", None]
    # ABCSG-18 DFS HR 0.823 (0.69-0.98): by hand ((log .98 - log .69) / (2 * 1.959963984540054))^2
    assert t["yi"][0] == pytest.approx(math.log(0.823), abs=1e-15)
    assert t["vi"][0] == pytest.approx(((math.log(0.98) - math.log(0.69)) / (2 * 1.959963984540054)) ** 2, rel=1e-12)
    # D-CARE DFS HR 1.04, p = 0.57 -> R: (log(1.04)/qnorm(0.57/2, lower.tail=FALSE))^2
    assert t["vi"][2] == pytest.approx(0.0047671141680627107, rel=1e-12)
    assert t["derived"].tolist() == [False, False, True, False]
    assert t["imprecise"].tolist() == [False, False, True, False]  # "0.57": two significant digits
    assert t["reason"][3] == "result not extracted (status missing)" and t["reason"][0] is None
    assert math.isnan(t["yi"][3])


def test_effects_table_2x2_and_lower_bound_p(tmp_path):
    text = (CORPUS / "valid_minimal.csv").read_text()
    # row 2 -> an OR from counts only; row 3 -> p reported as a lower bound
    lines = text.splitlines()
    import csv
    import io
    rows = list(csv.DictReader(io.StringIO(text)))
    rows[1].update(measure="OR", estimate="", ci_lower="", ci_upper="", ci_level="", p_value="", p_sided="",
                   n_int="100", n_ctl="100", events_int="12", events_ctl="20", direction="OR < 1 favours denosumab")
    rows[2].update(p_value=">0.05")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=lines[0].split(","), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    f = tmp_path / "r.csv"
    f.write_text(buf.getvalue())
    r = reg.load_registry(f)
    t = reg.effects_table(r)
    # R: escalc("OR", ai=12, bi=88, ci=20, di=80) -> yi -0.606135803570316, vi 0.15719696969697
    assert t["se_source"][1] == "2x2"
    assert t["yi"][1] == pytest.approx(-0.606135803570316, rel=1e-12)
    assert t["vi"][1] == pytest.approx(0.15719696969697, rel=1e-12)
    assert t["se_source"][2] is None and "lower bound" in t["reason"][2]
    assert any("not poolable" in p.message and p.line == 4 for p in r.problems)


def test_validate_registry_never_raises_for_io(tmp_path, monkeypatch):
    assert reg.validate_registry(tmp_path / "nope.csv")[0].message == "no such file"
    assert "directory" in reg.validate_registry(tmp_path)[0].message
    f = tmp_path / "r.csv"
    shutil.copy(CORPUS / "valid_minimal.csv", f)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    probs = reg.validate_registry(f)
    assert [p.message for p in probs] == ["permission denied: cannot read the file"]
    with pytest.raises(ProblemError):
        reg.load_registry(f)


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    rc, out, err = _rc(tmp_path / "missing.csv", capsys)
    assert rc == 2 and "does not exist" in err and "Traceback" not in err
    rc, out, err = _rc(tmp_path, capsys)
    assert rc == 2 and "is a directory" in err


def test_cli_summary_line(capsys):
    rc, out, err = _rc(CORPUS / "multiline.csv", capsys)
    assert rc == 1
    assert out == f"{CORPUS / 'multiline.csv'}: 4 rows, 2 errors, 0 warnings\n"
    assert err.count("error:") == 2


def test_cli_calls_plan_validator_when_present(monkeypatch, capsys):
    calls = []

    def validate_plan(plan_path, registry):
        calls.append((plan_path, len(registry)))
        return [Problem(plan_path, 3, 1, "error", "unknown row_id 'X'", "did you mean 'Y'?")]

    monkeypatch.setattr(plan_module, "validate_plan", validate_plan)  # what metaanalysis.inputs calls
    rc = cli.main(["validate", str(CORPUS / "valid_minimal.csv"), "--plan", "plan.toml"])
    out, err = capsys.readouterr()
    assert calls == [("plan.toml", 4)]
    assert rc == 1 and "plan.toml:3:1: error: unknown row_id 'X' (did you mean 'Y'?)" in err
    assert out.endswith("4 rows, 0 errors, 0 warnings; plan plan.toml: 1 error, 0 warnings\n")


def test_plan_not_checked_when_registry_has_errors(monkeypatch, capsys):
    monkeypatch.setattr(plan_module, "validate_plan", lambda p, r: pytest.fail("plan checked"))
    rc = cli.main(["validate", str(CORPUS / "empty.csv"), "--plan", "plan.toml"])
    out, _ = capsys.readouterr()
    assert rc == 1 and "plan plan.toml not checked (fix the registry first)" in out


def test_project_registry_validates():
    """trials/registry.csv (curated by another helper) must pass: exit 0."""
    path = ROOT / "trials" / "registry.csv"
    assert path.is_file(), "trials/registry.csv is part of the project"
    assert cli.main(["validate", str(path)]) == 0


def _valid_with(tmp_path, column: str, value: str, row: int = 0) -> Path:
    """valid_minimal.csv with one cell changed (row 0 is on line 2)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO((CORPUS / "valid_minimal.csv").read_text(encoding="utf-8"), newline="")))
    rows[row + 1][rows[0].index(column)] = value
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path = tmp_path / "registry.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.mark.parametrize("level", ["30", "1", "49.9"])
def test_ci_level_follows_the_one_level_rule(tmp_path, level):
    # vocab.as_level: a confidence level is 50 to below 100 percent (a 30% CI is a typo, and
    # from_ci could not use it); ci_level is column 21, row 0 on line 2
    probs = reg.validate_registry(_valid_with(tmp_path, "ci_level", level))
    errors = [(p.line, p.column, p.message) for p in probs if p.severity == "error"]
    assert errors == [(2, 21, f"ci_level {level} is not a confidence level (50 to below 100 percent)")]


def test_ci_level_50_and_90_are_levels(tmp_path):
    for level in ("50", "90"):
        assert not [p for p in reg.validate_registry(_valid_with(tmp_path, "ci_level", level))
                    if p.severity == "error" and p.column_name == "ci_level"]


def test_p_values_are_typed_once_with_sidedness(tmp_path):
    path = _valid_with(tmp_path, "p_sided", "1", row=1)
    r = reg.load_registry(path)
    # valid_minimal.csv: ABCSG18-DFS-2019 p 0.026 (two-sided), ABCSG18-DFS-2022 p 0.016 made one-sided
    assert r.p_values["ABCSG18-DFS-2019"] == ef.PValue(0.026, "=", 3, 2)
    assert r.p_values["ABCSG18-DFS-2022"].sided == 1
    assert set(r.p_values) == {rid for rid, p in zip(r.df["row_id"], r.df["p_value"]) if not pd.isna(p)}


@pytest.mark.parametrize("text, relation", [(">0.05", ">"), (">=0.05", ">="), ("≥0.05", ">="), ("=>0.05", ">="),
                                            ("p>0.05", ">"), ("p > .05", ">"), ("<0.05", "<"), ("≤0.05", "<=")])
def test_p_value_bounds_are_typed(text, relation):
    pv = ef.parse_p_value(text)
    assert (pv.value, pv.relation) == (0.05, relation)
    assert pv.is_lower_bound == (relation in (">", ">="))
    assert pv.is_upper_bound == (relation in ("<", "<="))


def test_validate_inputs_report(tmp_path):
    from metaanalysis.inputs import PLAN_NOT_CHECKED_REGISTRY_ERRORS, validate_inputs

    ok = validate_inputs(ROOT / "trials" / "registry.csv", ROOT / "trials" / "analyses.toml")
    assert ok.plan_checked and ok.ok and ok.problems == () and ok.n_rows == 42  # trials/registry.csv: 42 rows (3 added in the 2026-12-01 curation round, and the published integrated SRE analysis)
    broken = validate_inputs(CORPUS / "empty.csv", "plan.toml")
    assert not broken.plan_checked and broken.plan_not_checked == PLAN_NOT_CHECKED_REGISTRY_ERRORS
    assert broken.n_errors == 1 and not broken.ok
    alone = validate_inputs(CORPUS / "valid_minimal.csv")
    assert alone.plan_path is None and not alone.plan_checked and alone.plan_not_checked == ""
