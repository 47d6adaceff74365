"""Issue #13: published syntheses as checks, one clinical question per pooled analysis, exploratory
analyses, the evidence date (trials/searches.csv) and the removed rob_overall column.

Every refusal is asserted at its file:line:column. Reference numbers: the published integrated
analysis (registry row DMABZA-SRE-2012-POOLED: HR 0.83, 95% CI 0.76-0.90, read in the Lipton 2012
abstract, Findings) and metafor 4 on the three SRE rows (HR 0.82 (0.71-0.95), 0.82 (0.71-0.95),
0.84 (0.71-0.98), registry lines 22-24, SE from the CI):
``rma.uni(yi, sei, method = "REML", test = "adhoc")`` gives HR 0.825748 (0.682547 to 0.998993) and
``rma.uni(yi, sei, method = "FE")`` gives 0.825748 (0.757127 to 0.900588).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from metaanalysis.analysis import analyse
from metaanalysis.batch import inputs_hash
from metaanalysis.plan import validate_plan
from metaanalysis.registry import load_registry, validate_registry
from metaanalysis.render.words import evidence_date_text
from metaanalysis.report.build import build_reports
from metaanalysis.searches import check_searches, load_searches

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
SYNTH = "DMABZA-SRE-2012-POOLED"


def _rows():
    rows = list(csv.reader(io.StringIO(REGISTRY.read_text(encoding="utf-8"))))
    return rows[0], rows[1:]


def _write(path: Path, header, rows) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header] + rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _edited(tmp_path: Path, changes: dict[tuple[str, str], str]) -> tuple[Path, dict[str, int], dict[str, int]]:
    """A copy of the shipped registry with cells changed; -> (path, line of each row, column numbers)."""
    header, rows = _rows()
    col = {h: i for i, h in enumerate(header)}
    for r in rows:
        for (rid, c), v in changes.items():
            if r[0] == rid:
                r[col[c]] = v
    line = {r[0]: i for i, r in enumerate(rows, start=2)}
    return _write(tmp_path / "registry.csv", header, rows), line, {h: i + 1 for h, i in col.items()}


@pytest.fixture(scope="module")
def registry():
    return load_registry(REGISTRY)


@pytest.fixture(scope="module")
def ev():
    return analyse(REGISTRY, PLAN)


# -- published syntheses: the registry ---------------------------------------------------------

def test_synthesis_row_must_not_be_for_pooling(tmp_path):
    path, line, col = _edited(tmp_path, {(SYNTH, "use_for_pooling"): "yes"})
    hits = [p for p in validate_registry(path) if p.severity == "error"]
    assert [(p.line, p.column) for p in hits] == [(line[SYNTH], col["use_for_pooling"])]
    assert "would count twice" in hits[0].message


def test_synthesis_needs_pooled_from_and_only_it_may_have_one(tmp_path):
    path, line, col = _edited(tmp_path, {(SYNTH, "pooled_from"): "", ("ZABREAST-SRE-2010", "pooled_from"): "X"})
    got = {(p.line, p.column, p.severity): p.message for p in validate_registry(path)}
    assert "needs pooled_from" in got[(line[SYNTH], col["pooled_from"], "error")]
    assert "design is not 'published synthesis'" in got[(line["ZABREAST-SRE-2010"], col["pooled_from"], "error")]


def test_pooled_from_trial_outside_the_registry_is_a_warning(tmp_path):
    path, line, col = _edited(tmp_path, {(SYNTH, "pooled_from"): "DMAB-ZA-BREAST; DMAB-ZA-CRPX; DMAB-ZA-SOLID"})
    (p,) = validate_registry(path)
    assert (p.line, p.column, p.severity) == (line[SYNTH], col["pooled_from"], "warning")
    assert "'DMAB-ZA-CRPX'" in p.message and "DMAB-ZA-CRPC" in p.hint


def test_removed_rob_overall_column_is_a_warning_that_points_to_rob_csv(tmp_path):
    header, rows = _rows()
    path = _write(tmp_path / "registry.csv", header + ["rob_overall"], [r + ["not assessed"] for r in rows])
    (p,) = validate_registry(path)
    assert (p.line, p.column, p.severity) == (1, len(header) + 1, "warning")
    assert "unknown column 'rob_overall'" in p.message and "trials/rob.csv" in p.hint


# -- published syntheses: the plan -------------------------------------------------------------

def _plan(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(body, encoding="utf-8")
    return p


SRE = ('[[analysis]]\nid = "sre"\ntitle = "SRE"\nendpoint = "SRE"\nmeasure = "HR"\n'
       'select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]\n')


def test_plan_refuses_to_pool_a_synthesis(tmp_path, registry):
    plan = _plan(tmp_path, SRE + f'include = [{{ row = "{SYNTH}", reason = "more patients" }}]\n')
    probs = [p for p in validate_plan(plan, registry) if p.severity == "error"]
    assert [(p.line, p.column) for p in probs if "published synthesis" in p.message] == [(7, 20)]   # the row id
    assert any(f'published = ["{SYNTH}"]' in p.hint for p in probs)
    plan = _plan(tmp_path, SRE + f'swap = [{{ replace = "ZABREAST-SRE-2010", with = "{SYNTH}", reason = "x" }}]\n')
    (p,) = validate_plan(plan, registry)
    assert (p.line, p.severity) == (7, "error") and "never pooled" in p.message


def test_published_must_be_a_synthesis_of_the_same_endpoint(tmp_path, registry):
    plan = _plan(tmp_path, SRE + 'published = ["ZABREAST-SRE-2010"]\n')
    (p,) = validate_plan(plan, registry)
    assert (p.line, p.column, p.severity) == (7, 14, "error") and "not 'published synthesis'" in p.message
    plan = _plan(tmp_path, SRE.replace('"SRE"\nmeasure', '"OS"\nmeasure')
                 .replace('select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]',
                          'select.trial_id = ["SPLENDOUR"]') + f'published = ["{SYNTH}"]\n')
    (p,) = validate_plan(plan, registry)
    assert p.line == 7 and "is SRE/HR, the analysis is OS/HR" in p.message


def test_selection_leaves_a_synthesis_out_with_its_reason(ev):
    sre = ev.analysis("sre-zoledronic")
    assert SYNTH not in sre.analysis.rows
    why = {c.row_id: c.reason for c in sre.analysis.left_out}[SYNTH]
    assert "never pooled" in why


def test_shipped_sre_page_compares_the_published_integrated_analysis(ev, shipped_build):
    (pc,) = ev.analysis("sre-zoledronic").published
    assert pc.row_id == SYNTH
    assert (math.exp(pc.yi), math.exp(pc.ci_lower), math.exp(pc.ci_upper)) == pytest.approx((0.83, 0.76, 0.90))
    ours, common = pc.ours, pc.common
    assert [math.exp(x) for x in (ours.estimate, ours.ci_lower, ours.ci_upper)] == \
        pytest.approx([0.825748, 0.682547, 0.998993], abs=5e-7)          # metafor REML, adhoc
    assert [math.exp(x) for x in (common.estimate, common.ci_lower, common.ci_upper)] == \
        pytest.approx([0.825748, 0.757127, 0.900588], abs=5e-7)          # metafor FE
    assert math.exp(pc.difference) == pytest.approx(0.825748 / 0.83, abs=1e-6)
    assert pc.width_ratio == pytest.approx((math.log(0.998993) - math.log(0.682547))
                                           / (math.log(0.90) - math.log(0.76)), rel=1e-5)
    assert pc.trials_both == ("DMAB-ZA-BREAST", "DMAB-ZA-CRPC", "DMAB-ZA-SOLID")
    assert pc.trials_published_only == pc.trials_ours_only == ()
    out, _ = shipped_build
    html = (out / "sre-zoledronic.html").read_text(encoding="utf-8")
    box = html[html.index('id="h-published"'):html.index("</section>", html.index('id="h-published"'))]
    assert "HR 0.83 (95% CI 0.76 to 0.90)" in box and "HR 0.83 (95% CI 0.68 to 1.00)" in box
    assert "0.995 times the published one" in box and "2.25 times as wide" in box
    assert "patient-level data" in box and "aggregate data" in box
    assert "HR 0.83 (95% CI 0.76 to 0.90)." in box        # our common-effect z result, like for like
    assert "Both combine the same 3 trials" in box
    (pj,) = json.loads((out / "sre-zoledronic.json").read_text(encoding="utf-8"))["published"]
    assert pj["row_id"] == SYNTH and pj["width_ratio"] == pc.width_ratio and pj["difference"] == pc.difference


# -- one clinical question ---------------------------------------------------------------------

OS_MIX = ('[[analysis]]\nid = "os"\ntitle = "OS"\nendpoint = "OS"\nmeasure = "HR"\nselect.design = ["RCT"]\n'
          'include = [{ row = "NMCRPC-OS-2012", reason = "taken explicitly" }]\n')


def test_primary_analysis_mixing_questions_is_refused_where_it_happens(tmp_path, registry):
    probs = validate_plan(_plan(tmp_path, OS_MIX), registry)
    got = {(p.line, p.column): p.message for p in probs if p.severity == "error"}
    # SPLENDOUR (metastatic, chemotherapy comparator, 120 mg q3-4w) is selected; the include brings in
    # nmCRPC (non-metastatic, placebo, 120 mg q4w): the mix is reported at the include (line 7)
    assert set(got) == {(7, 20)}      # at the included row id
    assert "different setting values" in got[(7, 20)] or "different comparator values" in got[(7, 20)]
    texts = [p.message for p in probs]
    for col in ("setting", "comparator", "regimen"):
        assert any(f"different {col} values" in m for m in texts), col
    assert all(p.path.endswith("p.toml") for p in probs)


def test_post_hoc_subgroup_is_never_a_primary_result(tmp_path, registry):
    plan = ('[[analysis]]\nid = "os"\ntitle = "OS"\nendpoint = "OS"\nmeasure = "HR"\n'
            'select.trial_id = ["DMAB-ZA-SOLID"]\n')
    (p,) = validate_plan(_plan(tmp_path, plan), registry)
    assert (p.line, p.column, p.severity) == (4, 1, "error")
    assert "ZASOLID-OS-2012-LUNG (RCT post hoc subgroup)" in p.message and "exploratory" in p.hint


def test_exploratory_analysis_may_mix_and_needs_its_reason(tmp_path, registry):
    ok = OS_MIX.replace('select.design', 'exploratory = true\nexploratory_reason = "two questions"\nselect.design')
    assert validate_plan(_plan(tmp_path, ok), registry) == []
    no_reason = OS_MIX.replace('select.design', 'exploratory = true\nselect.design')
    probs = validate_plan(_plan(tmp_path, no_reason), registry)
    assert [(p.line, p.column) for p in probs] == [(6, 1)] and "needs an exploratory_reason" in probs[0].message
    stray = OS_MIX.replace('select.design', 'exploratory_reason = "x"\nselect.design')
    probs = validate_plan(_plan(tmp_path, stray), registry)
    assert (6, 1) in [(p.line, p.column) for p in probs]
    assert any("exploratory_reason without exploratory" in p.message for p in probs)


def test_exploratory_analysis_is_labelled_and_not_a_primary_result(shipped_build):
    out, summary = shipped_build
    index = (out / "index.html").read_text(encoding="utf-8")
    primary = index[index.index('id="h-overview"'):index.index('id="h-exploratory"')]
    exploratory = index[index.index('id="h-exploratory"'):index.index('id="h-flags"')]
    assert 'href="os-any-comparator.html"' in exploratory and 'href="os-any-comparator.html"' not in primary
    for aid in ("dfs", "sre-zoledronic", "fracture"):
        assert f'href="{aid}.html"' in primary
    page = (out / "os-any-comparator.html").read_text(encoding="utf-8")
    assert "Exploratory analysis — not a primary result." in page and "post hoc subgroup" in page


# -- the evidence date -------------------------------------------------------------------------

def _log(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "searches.csv"
    p.write_text("date,activity,scope,notes\n" + text, encoding="utf-8")
    return p


def test_search_log_problems_are_located(tmp_path):
    p = _log(tmp_path, "46357,searched,pages,\n01/12/2026,extracted,rows,\n2026-02-30,searched,x,\n"
                       "2026-12-01,serched,x,\n2026-12-01,extracted,,\n1949-12-31,searched,x,\n")
    got = {(q.line, q.column): q for q in check_searches(p).problems}
    assert "Excel date serial of 2026-12-01" in got[(2, 1)].hint      # 46357 days after 1899-12-30
    assert "YYYY-MM-DD" in got[(3, 1)].message
    assert "not a calendar date" in got[(4, 1)].message
    assert "did you mean 'searched'" in got[(5, 2)].hint.lower() or "searched" in got[(5, 2)].hint
    assert "scope is empty" in got[(6, 3)].message
    assert "before 1950" in got[(7, 1)].message
    assert all(q.severity == "error" for q in got.values())


def test_search_log_without_a_search_is_a_warning(tmp_path):
    (q,) = check_searches(_log(tmp_path, "2026-12-01,extracted,rows,\n")).problems
    assert (q.line, q.column, q.severity) == (1, 0, "warning") and "evidence date is unknown" in q.message


def test_evidence_date_comes_from_the_log_not_the_clock(tmp_path):
    log = load_searches(_log(tmp_path, "2026-11-23,searched,a,\n2026-12-01,extracted,b,\n2026-11-30,searched,c,\n"))
    assert str(log.searched_to) == "2026-11-30" and str(log.extracted_to) == "2026-12-01"
    assert evidence_date_text(log) == ("2026-11-30 (sources last searched; results extracted to 2026-12-01; "
                                       "searches.csv)")
    assert evidence_date_text(None).startswith("not recorded")


def test_every_page_states_the_shipped_evidence_date(shipped_build):
    out, _ = shipped_build
    # trials/searches.csv: last 'searched' and 'extracted' rows are both dated 2026-12-01
    want = ("Evidence current to</dt><dd class=\"evidence-date\">2026-12-01 (sources last searched; "
            "results extracted to 2026-12-01; searches.csv)")
    pages = sorted(out.glob("*.html"))     # 4 analyses, 7 narratives, index, glossary
    assert len(pages) == 13 and all(want in p.read_text(encoding="utf-8") for p in pages)
    for p in out.glob("*.json"):     # analysis and narrative JSON carry the date too
        d = json.loads(p.read_text(encoding="utf-8"))
        if "registry_sha256" in d and "title" in d:
            assert d["evidence_current_to"] == "2026-12-01", p.name


def test_build_without_a_log_says_not_recorded_and_the_log_is_an_input(tmp_path):
    d = tmp_path / "trials"
    d.mkdir()
    (d / "registry.csv").write_bytes(REGISTRY.read_bytes())
    (d / "analyses.toml").write_bytes(PLAN.read_bytes())
    before = inputs_hash(d / "registry.csv", d / "analyses.toml", toolkit="t")
    build_reports(d / "registry.csv", d / "analyses.toml", tmp_path / "out")
    assert "Evidence current to</dt><dd class=\"evidence-date\">not recorded" in \
        (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    (d / "searches.csv").write_bytes((ROOT / "trials" / "searches.csv").read_bytes())
    assert inputs_hash(d / "registry.csv", d / "analyses.toml", toolkit="t") != before   # batch rebuilds


def test_validate_reports_search_log_problems(tmp_path, capsys):
    from metaanalysis.cli import main

    d = tmp_path / "trials"
    d.mkdir()
    (d / "registry.csv").write_bytes(REGISTRY.read_bytes())
    (d / "searches.csv").write_text("date,activity,scope,notes\n2026-12-01,searched,pages,\n46357,extracted,rows,\n",
                                    encoding="utf-8")
    assert main(["validate", str(d / "registry.csv")]) == 1
    err = capsys.readouterr().err
    assert f"{d / 'searches.csv'}:3:1: error: [date] '46357' is not a date written YYYY-MM-DD" in err
    assert "Excel date serial of 2026-12-01" in err


@pytest.mark.parametrize("kind", ["rob", "searches"])
def test_side_file_header_errors_are_located(tmp_path, kind):
    """rob.csv and searches.csv share one header check (table.header_columns): an unknown column is
    an error at its header cell with the nearest known name; a missing required column at the line."""
    from metaanalysis.rob import check_rob
    from metaanalysis.searches import check_searches

    path = tmp_path / f"{kind}.csv"
    if kind == "rob":
        path.write_text("row_id,D1,D2,D3,D4,D5,overal,source\nX,low,low,low,low,low,low,s\n", encoding="utf-8")
        problems = check_rob(path).problems
    else:
        path.write_text("date,activty,notes\n2026-12-01,searched,n\n", encoding="utf-8")
        problems = check_searches(path).problems
    got = [(p.line, p.column, p.message, p.hint) for p in problems if p.severity == "error"]
    typo, missing = ("overal", "overall") if kind == "rob" else ("activty", "activity")
    col = path.read_text(encoding="utf-8").split("\n")[0].split(",").index(typo) + 1
    assert (1, col, f"unknown column {typo!r}") == got[0][:3] and missing in got[0][3]
    assert (1, 0, f"missing column {missing!r}") in [g[:3] for g in got]
