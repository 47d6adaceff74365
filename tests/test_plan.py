"""The analysis plan (metaanalysis.plan): validation rules and row selection.

Every file in tests/corpus/plan/ is a broken plan whose ``# expect: LINE:COL: severity: message``
header lines list exactly the problems the validator must report (against the shipped
registry, trials/registry.csv). Row ids and their statuses in the selection tests come from
trials/registry.csv (use_for_pooling / status columns).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metaanalysis.cli import main
from metaanalysis.plan import load_plan, validate_plan
from metaanalysis.problems import ProblemError
from metaanalysis.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
CORPUS = sorted((ROOT / "tests" / "corpus" / "plan").glob("*.toml"))


@pytest.fixture(scope="module")
def registry():
    return load_registry(REGISTRY)


def _expectations(path: Path) -> list[str]:
    return [ln[len("# expect: "):].rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.startswith("# expect: ")]


def test_corpus_is_there():
    assert len(CORPUS) >= 15


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_problems(path, registry):
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' lines"
    got = [p.format()[len(str(path)) + 1:] for p in validate_plan(str(path), registry)]
    assert len(got) == len(expected), got
    for e in expected:
        assert any(g.startswith(e) for g in got), f"{e!r} not in {got!r}"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_load_raises_with_every_problem(path, registry):
    with pytest.raises(ProblemError) as ei:
        load_plan(str(path), registry)
    assert len(ei.value.errors) == len(_expectations(path))
    assert all(p.path == str(path) for p in ei.value.problems)


@pytest.mark.parametrize("name", ["same_patient_set", "syntax_error", "unknown_row"])
def test_cli_validate_exit_code_and_location(name, capsys):
    path = ROOT / "tests" / "corpus" / "plan" / f"{name}.toml"
    rc = main(["validate", str(REGISTRY), "--plan", str(path)])
    err = capsys.readouterr().err
    assert rc == 1
    first = _expectations(path)[0]
    assert f"{path}:{first}" in err


def test_shipped_plan_is_clean(registry):
    assert validate_plan(str(PLAN), registry) == []
    assert main(["validate", str(REGISTRY), "--plan", str(PLAN)]) == 0


def test_shipped_plan_rows(registry):
    plan = load_plan(str(PLAN), registry)
    by_id = {a.id: a for a in plan.analyses}
    narr = {n.id: n for n in plan.narratives}
    # one clinical question per pooled analysis (trials/README.md): the primary analyses
    assert [a.id for a in plan.analyses if not a.exploratory] == ["dfs", "sre-zoledronic", "fracture"]
    # questions that differ in setting, dose regimen or comparator are side by side, not pooled
    assert narr["os-placebo"].rows == ("ABCSG18-OS-2022", "NMCRPC-OS-2012", "SPLENDOUR-OS-2020", "DCARE-OS-2020",
                                       "AMG20120249-OS")
    assert narr["bmfs"].rows == ("ABCSG18-BMFS-2022", "DCARE-BMFS-2020", "NMCRPC-BMFS-2012")
    assert narr["ttbm"].rows == ("DCARE-TTBM-2021", "NMCRPC-TTBM-2012")
    assert narr["dfs-questions"].rows == ("ABCSG18-DFS-2019", "DCARE-DFS-2020")
    # the all-comparator OS analysis pools four questions and a post hoc subgroup: exploratory
    anyc = by_id["os-any-comparator"]
    assert anyc.exploratory and "post hoc subgroup" in anyc.exploratory_reason
    assert set(anyc.rows) == {"ABCSG18-OS-2022", "SPLENDOUR-OS-2020", "NMCRPC-OS-2012", "ZASOLID-OS-2012-LUNG"}
    # DFS (ABCSG-18's question: 60 mg every 6 months): the 2019 analysis before cross-over (report
    # rule), the 2022 cross-over-diluted one and the 2015 interim as sensitivity swaps
    assert by_id["dfs"].rows == ("ABCSG18-DFS-2019",)
    assert [(s.replace, s.with_) for s in by_id["dfs"].swaps] == [("ABCSG18-DFS-2019", "ABCSG18-DFS-2022"),
                                                                  ("ABCSG18-DFS-2019", "ABCSG18-DFS-2015")]
    left = {c.row_id: c.reason for c in by_id["dfs"].left_out}
    assert "trial_id is 'D-CARE'" in left["DCARE-DFS-2020"]
    # SRE: all three rows confirmed in the Xgeva US prescribing information (section 14, Table 2;
    # curation round 2026-12-01), so they are pooled without an explicit include; the published
    # integrated analysis of the same trials (Lipton 2012) is a check beside it, never pooled
    sre = by_id["sre-zoledronic"]
    assert set(sre.rows) == {"ZABREAST-SRE-2010", "ZACRPC-SRE-2011", "ZASOLID-SRE-2011"}
    assert sre.included == ()
    assert sre.published == ("DMABZA-SRE-2012-POOLED",)
    assert "published synthesis" in {c.row_id: c.reason for c in sre.left_out}["DMABZA-SRE-2012-POOLED"]
    assert by_id["fracture"].rows == ("ABCSG18-FRACTURE-2015",)
    # defaults: REML + HKSJ + prediction interval (metafor convention), 95%
    s = sre.settings
    assert (s.method, s.test, s.pi, s.level) == ("REML", "adhoc", "metafor", 0.95)
    # Flatiron: narrative with one p-value combination of the two disjoint cohorts
    flat = {n.id: n for n in plan.narratives}["flatiron-ici"]
    assert flat.combine[0].rows == ("FLATIRON-ORR-2018-MEL", "FLATIRON-ORR-2018-NSCLC")


def test_no_analysis_pools_one_patient_set_twice(registry):
    plan = load_plan(str(PLAN), registry)
    ps = dict(zip(registry.df["row_id"].astype(str), registry.df["patient_set"].astype(str)))
    for a in plan.analyses:
        sets = [ps[r] for r in a.rows]
        assert len(sets) == len(set(sets)), a.id


def test_unconfirmed_row_needs_explicit_include(tmp_path):
    # the shipped SRE rows are all confirmed; mark one unconfirmed and one secondary
    text = REGISTRY.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        for rid, status in (("ZACRPC-SRE-2011", "unconfirmed"), ("ZASOLID-SRE-2011", "secondary")):
            if line.startswith(rid + ","):
                assert line.count(",confirmed,") == 1
                lines[i] = line.replace(",confirmed,", f",{status},")
    reg_path = tmp_path / "registry.csv"
    reg_path.write_text("".join(lines), encoding="utf-8")
    plan = tmp_path / "p.toml"
    plan.write_text('[[analysis]]\nid = "sre"\ntitle = "SRE"\nendpoint = "SRE"\nmeasure = "HR"\n',
                    encoding="utf-8")
    a = load_plan(str(plan), load_registry(reg_path)).analyses[0]
    assert a.rows == ("ZABREAST-SRE-2010",)
    reasons = {c.row_id: c.reason for c in a.left_out}
    assert "status unconfirmed" in reasons["ZACRPC-SRE-2011"]
    assert "status secondary" in reasons["ZASOLID-SRE-2011"]
    assert set(a.missing) == {"ZACRPC-SRE-2011", "ZASOLID-SRE-2011"}


def test_exclude_with_reason_and_swap(tmp_path, registry):
    plan = tmp_path / "p.toml"
    plan.write_text(
        '[[analysis]]\nid = "os"\ntitle = "OS"\nendpoint = "OS"\nmeasure = "HR"\n'
        'select.design = ["RCT"]\n'
        'exclude = [{row = "SPLENDOUR-OS-2020", reason = "metastatic NSCLC is another question"}]\n'
        # ABCSG18-OS-2022 and -CENS are status unconfirmed since the 2026-12-01 curation round
        'include = [{row = "ABCSG18-OS-2022", reason = "unconfirmed, taken explicitly"}]\n'
        'swap = [{replace = "ABCSG18-OS-2022", with = "ABCSG18-OS-2022-CENS", reason = "censored at cross-over"}]\n',
        encoding="utf-8")
    a = load_plan(str(plan), registry).analyses[0]
    assert "SPLENDOUR-OS-2020" not in a.rows
    ex = [c for c in a.left_out if c.row_id == "SPLENDOUR-OS-2020"][0]
    assert ex.explicit and "another question" in ex.reason
    assert a.swaps[0].with_ == "ABCSG18-OS-2022-CENS"


def test_swap_must_stay_within_the_trial(tmp_path, registry):
    plan = tmp_path / "p.toml"
    plan.write_text(
        '[[analysis]]\nid = "os"\ntitle = "OS"\nendpoint = "OS"\nmeasure = "HR"\n'
        'include = [{row = "ABCSG18-OS-2022", reason = "unconfirmed since 2026-12-01, taken explicitly"}]\n'
        'swap = [{replace = "ABCSG18-OS-2022", with = "NMCRPC-OS-2012", reason = "x"}]\n'
        'select.trial_id = ["ABCSG-18"]\n',   # one question: ABCSG-18 only (else the question rule speaks too)
        encoding="utf-8")
    probs = validate_plan(str(plan), registry)
    assert [p.line for p in probs] == [7]
    assert "not reports of the same patients" in probs[0].message


def test_missing_file_and_not_utf8(tmp_path, registry):
    probs = validate_plan(str(tmp_path / "nope.toml"), registry)
    assert probs[0].message == "no such file"
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'title = "caf\xe9"\n')
    probs = validate_plan(str(bad), registry)
    assert (probs[0].line, probs[0].column) == (1, 13)
    assert "not UTF-8" in probs[0].message


def test_plan_sha256_is_of_the_bytes(tmp_path, registry):
    import hashlib

    copy = tmp_path / "analyses.toml"
    shutil.copy(PLAN, copy)
    plan = load_plan(str(copy), registry)
    assert plan.sha256 == hashlib.sha256(copy.read_bytes()).hexdigest()


def test_method_test_and_pi_names_are_case_insensitive(tmp_path, registry):
    plan = tmp_path / "p.toml"
    plan.write_text('[defaults]\nmethod = "reml"\ntest = "KNHA"\npi = "Riley"\nlevel = 90\n\n'
                    '[[analysis]]\nid = "bmfs"\ntitle = "BMFS"\nendpoint = "BMFS"\nmeasure = "HR"\nmethod = "dl"\n',
                    encoding="utf-8")
    p = load_plan(str(plan), registry)
    # stored as the vocabulary's canonical codes; level 90 is 0.90 (vocab.as_level)
    assert (p.defaults.method, p.defaults.test, p.defaults.pi, p.defaults.level) == ("REML", "knha", "riley", 0.90)
    assert p.analyses[0].settings.method == "DL"


# Every way the registry accepts of writing a lower bound (p > x): the plan must refuse to
# combine it as if it were the p-value itself (Fisher/Stouffer need exact or upper-bound p).
LOWER_BOUNDS = [">0.05", ">=0.05", "≥0.05", "=>0.05", "p>0.05", "p > .05", "P >= 0.05", "> 0.05", "p-value > 0.05"]
_COMBINE_PLAN = (
    '[[narrative]]\nid = "flatiron"\ntitle = "Flatiron"\n'
    'rows = ["FLATIRON-ORR-2018-MEL", "FLATIRON-ORR-2018-NSCLC"]\nreason = "no comparator arm"\n'
    '[[narrative.combine]]\nlabel = "ORR"\n'
    'rows = ["FLATIRON-ORR-2018-NSCLC", "FLATIRON-ORR-2018-MEL"]\n'
    'direction = "higher response"\nindependent = "disjoint cohorts"\n')


def _registry_with_p(tmp_path, row_id: str, p_text: str):
    """trials/registry.csv with one row's p_value replaced (a CSV copy, read by load_registry)."""
    import csv
    import io

    text = REGISTRY.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    col = rows[0].index("p_value")
    for r in rows[1:]:
        if r and r[0] == row_id:
            r[col] = p_text
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path = tmp_path / "registry.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return load_registry(path)


@pytest.mark.parametrize("p_text", LOWER_BOUNDS)
def test_combine_refuses_a_lower_bound_p_value(tmp_path, p_text):
    reg = _registry_with_p(tmp_path, "FLATIRON-ORR-2018-MEL", p_text)
    pv = reg.p_values["FLATIRON-ORR-2018-MEL"]
    assert pv.is_lower_bound and not pv.is_upper_bound and pv.value == 0.05
    plan = tmp_path / "p.toml"
    plan.write_text(_COMBINE_PLAN, encoding="utf-8")
    probs = validate_plan(str(plan), reg)
    # one error, at the row's reference in the combine's rows (line 8, the second string, column 36)
    assert [(p.severity, p.line, p.column) for p in probs] == [("error", 8, 36)], probs
    assert "FLATIRON-ORR-2018-MEL" in probs[0].message and "lower bound" in probs[0].message
    assert "exact p-value" in probs[0].hint
    with pytest.raises(ProblemError):
        load_plan(str(plan), reg)


@pytest.mark.parametrize("p_text", ["0.05", "<0.05", "≤0.05", "p = 0.05"])
def test_combine_accepts_exact_and_upper_bound_p_values(tmp_path, p_text):
    reg = _registry_with_p(tmp_path, "FLATIRON-ORR-2018-MEL", p_text)
    assert not reg.p_values["FLATIRON-ORR-2018-MEL"].is_lower_bound
    plan = tmp_path / "p.toml"
    plan.write_text(_COMBINE_PLAN, encoding="utf-8")
    assert validate_plan(str(plan), reg) == []


_COVERAGE_ANALYSIS = '[[analysis]]\nid = "{aid}"\ntitle = "BMFS"\nendpoint = "BMFS"\nmeasure = "HR"\n'


def test_coverage_defaults_to_on_and_follows_defaults_then_the_analysis(tmp_path, registry):
    """``coverage`` (issue #15): default true; ``[defaults] coverage = false`` turns it off for every
    analysis that does not set it; an analysis's own ``coverage`` wins."""
    plan = tmp_path / "p.toml"
    plan.write_text(_COVERAGE_ANALYSIS.format(aid="a"), encoding="utf-8")
    assert load_plan(str(plan), registry).analyses[0].coverage is True
    plan.write_text("[defaults]\ncoverage = false\n\n" + _COVERAGE_ANALYSIS.format(aid="a")
                    + _COVERAGE_ANALYSIS.format(aid="b") + "coverage = true\n", encoding="utf-8")
    a, b = load_plan(str(plan), registry).analyses
    assert (a.coverage, b.coverage) == (False, True)


def test_shipped_plan_keeps_coverage_on(registry):
    assert all(a.coverage for a in load_plan(str(PLAN), registry).analyses)


@pytest.mark.parametrize("where,value,message", [("defaults", '"no"', "coverage = 'no' must be true or false"),
                                                  ("analysis", "0", "coverage = 0 must be true or false")])
def test_coverage_must_be_a_boolean_located(tmp_path, registry, where, value, message):
    plan = tmp_path / "p.toml"
    text = (f"[defaults]\ncoverage = {value}\n\n" + _COVERAGE_ANALYSIS.format(aid="a") if where == "defaults"
            else _COVERAGE_ANALYSIS.format(aid="a") + f"coverage = {value}\n")
    plan.write_text(text, encoding="utf-8")
    probs = validate_plan(str(plan), registry)
    line = 2 if where == "defaults" else 6
    assert [(p.line, p.column, p.severity, p.message) for p in probs] == [(line, 1, "error", message)]
    assert "coverage = false" in probs[0].hint
