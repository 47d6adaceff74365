"""Risk of bias (trials/rob.csv, metaanalysis.rob) and the GRADE summary of findings (metaanalysis.grade).

Reference values are computed by hand from the formulas they implement: risk with intervention
1 − (1 − p0)^HR (GRADE handbook 5.2.2 / Cochrane Handbook 15.4.4); the Schoenfeld (1983,
Biometrics 39:499) number of events 4 (z_0.975 + z_0.8)² / (ln HR)², which for HR 0.75 is the
≈ 380 events quoted in sample-size tables. Judgements in the test RoB files are synthetic test
data, not assessments of the trials.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from metaanalysis import vocab
from metaanalysis.analysis import ScenarioKind, analyse, run_plan
from metaanalysis.grade import optimal_information_size, risk_with_intervention
from metaanalysis.plan import load_plan, validate_plan
from metaanalysis.problems import ProblemError
from metaanalysis.registry import load_registry
from metaanalysis.report.build import render_files
from metaanalysis.rob import ROB_COLUMNS, check_rob, load_rob
from metaanalysis.vocab import Certainty, GradeDomain, GradeRating, GradeReason, RobJudgement

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
HEADER = ",".join(ROB_COLUMNS)
NA6 = ",".join(["not assessed"] * 6)

SRE_PLAN = '''
[[analysis]]
id = "sre"
title = "SRE"
endpoint = "SRE"
measure = "HR"
select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]
include = [
  { row = "ZACRPC-SRE-2011", reason = "test" },
  { row = "ZASOLID-SRE-2011", reason = "test" },
]

[analysis.grade]
baseline_risk = [{ risk = 0.3, label = "1 year", source = "test value" }]
indirectness = "serious"
indirectness_reason = "test reason"
threshold = 0.9
'''

#: Synthetic events per arm for the SRE rows (test data): 100 + 110 per trial, 630 in all.
EVENTS = {"ZABREAST-SRE-2010": ("100", "110"), "ZACRPC-SRE-2011": ("100", "110"), "ZASOLID-SRE-2011": ("100", "110")}


def _registry_with_events(tmp_path: Path, events: dict) -> Path:
    rows = list(csv.DictReader(REGISTRY.open(encoding="utf-8")))
    for r in rows:
        if r["row_id"] in events:
            r["events_int"], r["events_ctl"] = events[r["row_id"]]
    out = tmp_path / "registry.csv"
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return out


def _rob_file(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "rob.csv"
    p.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return p


ASSESSED = [
    "ZABREAST-SRE-2010,low,low,low,low,low,low,Test review 2020,Table 3,assessed,",
    "ZACRPC-SRE-2011,low,high,low,low,low,high,Test review 2020,Table 3,assessed,",
    'ZASOLID-SRE-2011,low,some concerns,low,low,low,some concerns,Test review 2020,"Fig. 2",assessed,',
]


@pytest.fixture(scope="module")
def sre(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sre")
    reg_path = _registry_with_events(tmp, EVENTS)
    (tmp / "plan.toml").write_text(SRE_PLAN, encoding="utf-8")
    _rob_file(tmp, ASSESSED)
    return analyse(reg_path, tmp / "plan.toml")


@pytest.fixture(scope="module")
def shipped():
    return analyse(REGISTRY, PLAN)


# -- the formulas --------------------------------------------------------------------------

def test_absolute_risk_from_hazard_ratio_by_hand():
    # 1 - (1 - 0.2)^0.75 = 1 - exp(0.75 ln 0.8) = 0.154103...
    assert risk_with_intervention("HR", 0.2, 0.75) == pytest.approx(1 - math.exp(0.75 * math.log(0.8)), rel=1e-12)
    assert 1000 * risk_with_intervention("HR", 0.2, 0.75) == pytest.approx(154.103, abs=1e-3)
    assert risk_with_intervention("HR", 0.3, 1.0) == pytest.approx(0.3)
    assert risk_with_intervention("RR", 0.2, 0.5) == pytest.approx(0.1)
    assert risk_with_intervention("OR", 0.5, 2.0) == pytest.approx(2 / 3)
    assert risk_with_intervention("MD", 0.5, 2.0) is None


def test_optimal_information_size_schoenfeld():
    # 4 (1.959964 + 0.841621)^2 / ln(0.75)^2 = 379.3...
    assert optimal_information_size(0.75) == pytest.approx(4 * (1.959964 + 0.841621) ** 2 / math.log(0.75) ** 2,
                                                            rel=1e-5)
    assert 379 < optimal_information_size(0.75) < 380


# -- the summary of findings on a judged analysis -------------------------------------------

def test_sof_numbers_and_computed_downgrades(sre):
    a = sre.analysis("sre")
    sof, res = a.sof, a.headline_result
    hr, lo, hi = (math.exp(x) for x in (res.estimate, res.ci_lower, res.ci_upper))
    assert (sof.estimate, sof.ci_lower, sof.ci_upper) == pytest.approx((hr, lo, hi))
    (x,) = sof.absolute
    assert x.risk == pytest.approx(1 - 0.7 ** hr)
    assert (x.lower, x.upper) == pytest.approx((1 - 0.7 ** lo, 1 - 0.7 ** hi))
    assert sof.events == 630
    imp = sof.domain(GradeDomain.IMPRECISION)
    assert GradeReason.OIS_NOT_MET not in imp.reasons and GradeReason.OIS_MET in imp.reasons  # 630 > 379
    expected = [GradeReason.CI_CROSSES_NULL] if lo < 1 < hi else []
    expected += [GradeReason.CI_CROSSES_THRESHOLD] if lo < 0.9 < hi else []
    assert [r for r in imp.reasons if r not in (GradeReason.OIS_MET,)] == expected
    assert imp.rating is [GradeRating.NOT_SERIOUS, GradeRating.SERIOUS, GradeRating.VERY_SERIOUS][len(expected)]
    assert sof.domain(GradeDomain.INDIRECTNESS).rating is GradeRating.SERIOUS
    assert sof.domain(GradeDomain.INDIRECTNESS).note == "test reason"
    inc = sof.domain(GradeDomain.INCONSISTENCY)
    assert inc.rating is (GradeRating.SERIOUS if a.result.i2 >= 50 else GradeRating.NOT_SERIOUS)


def test_rob_domain_by_weight_share(sre):
    a = sre.analysis("sre")
    w = {s.row_id: s.weight for s in a.studies}
    high = w["ZACRPC-SRE-2011"]
    concerns = high + w["ZASOLID-SRE-2011"]
    rob = a.sof.domain(GradeDomain.RISK_OF_BIAS)
    want = GradeRating.VERY_SERIOUS if high > 50 else GradeRating.SERIOUS if concerns > 50 else GradeRating.NOT_SERIOUS
    assert rob.rating is want
    assert [e.overall for e in a.rob] == [RobJudgement.LOW, RobJudgement.HIGH, RobJudgement.SOME_CONCERNS]
    down = sum(vocab.GRADE_DOWNGRADE[d.rating] for d in a.sof.domains)
    assert a.sof.certainty == Certainty(max(1, 4 - down))
    assert a.sof.provisional   # publication bias not judged in the plan


def test_low_risk_of_bias_scenario(sre):
    a = sre.analysis("sre")
    (sc,) = [s for s in a.scenarios if s.kind is ScenarioKind.LOW_RISK_OF_BIAS]
    assert sc.rows == ("ZABREAST-SRE-2010",) and sc.result is None   # one study left: shown as reported


def test_traffic_light_table_and_outputs(sre):
    files, _ = render_files(sre, jobs=1)
    page = files["sre.html"].decode()
    assert 'id="h-rob"' in page and "Risk of bias not assessed" not in page
    assert page.count('<td class="rob-cell rob-high"') == 2          # D2 and overall of the CRPC trial
    assert page.count('<td class="rob-cell rob-some"') == 2
    assert '<span aria-label="high risk of bias">×</span>' in page
    assert "Test review 2020" in page and "Low risk of bias only" in page
    rows = list(csv.DictReader(io.StringIO(files["summary_of_findings.csv"].decode())))
    (r,) = rows
    a = sre.analysis("sre")
    assert float(r["risk_intervention"]) == pytest.approx(a.sof.absolute[0].risk)
    assert float(r["per_1000_intervention"]) == pytest.approx(1000 * a.sof.absolute[0].risk)
    assert r["indirectness"] == "serious" and r["certainty_level"] == str(int(a.sof.certainty))
    doc = json.loads(files["summary_of_findings.json"])
    assert doc["outcomes"][0]["domains"]["risk-of-bias"]["rating"] == a.sof.domain(GradeDomain.RISK_OF_BIAS).rating.value
    assert [(r["row_id"], r["d2"], r["overall"]) for r in doc["outcomes"][0]["risk_of_bias"]] == [
        ("ZABREAST-SRE-2010", "low", "low"), ("ZACRPC-SRE-2011", "high", "high"),
        ("ZASOLID-SRE-2011", "some concerns", "some concerns")]
    index = files["index.html"].decode()
    assert 'id="h-sof"' in index and "1 year" in index and "test reason" in index


# -- the shipped evidence: nothing judged, said so ------------------------------------------

def test_shipped_rob_is_all_not_assessed(shipped):
    assert shipped.rob.path.endswith("rob.csv") and not shipped.rob.any_assessed
    for a in shipped.analyses:
        assert a.sof.domain(GradeDomain.RISK_OF_BIAS).rating is GradeRating.NOT_ASSESSED
        assert a.sof.provisional
        assert not any(s.kind is ScenarioKind.LOW_RISK_OF_BIAS for s in a.scenarios)


def test_shipped_reports_show_not_assessed_and_sof(shipped):
    files, _ = render_files(shipped, jobs=1)
    assert "Risk of bias not assessed" in files["dfs.html"].decode()
    index = files["index.html"].decode()
    assert 'id="h-sof"' in index and "⊕" in index and "provisional" in index
    dfs = shipped.analysis("dfs").sof
    (x,) = dfs.absolute
    assert x.baseline.risk == 0.168 and x.risk == pytest.approx(1 - 0.832 ** dfs.estimate)
    # fracture: no baseline risk in the plan and no control-arm events in the registry
    assert shipped.analysis("fracture").sof.absolute_missing is GradeReason.NO_BASELINE_RISK
    # exploratory analyses are never among the primary results: not in the summary of findings
    assert [a.id for a in shipped.primary] == ["dfs", "sre-zoledronic", "fracture"]
    assert 'href="os-any-comparator.html"' not in index[index.index('id="h-sof"'):]
    sof_ids = [o["analysis_id"] for o in json.loads(files["summary_of_findings.json"])["outcomes"]]
    assert sof_ids == ["dfs", "sre-zoledronic", "fracture"]


# -- validation, located ----------------------------------------------------------------------

def test_rob_validation_errors_are_located(tmp_path):
    p = _rob_file(tmp_path, [
        "ZABREAST-SRE-2010,low,medium,low,low,low,low,Src,Table 1,assessed,",          # line 2: bad judgement
        "ZACRPC-SRE-2011,low,low,low,low,low,low,,,assessed,",                        # line 3: no source
        "ZASOLID-SRE-2011,low,high,low,low,low,low,Src,Table 1,assessed,",             # line 4: overall too mild
        f"ZABREAST-SRE-2010,{NA6},,,not assessed,",                                       # line 5: duplicate
        "DCARE-DFS-2020,high,not assessed,not assessed,not assessed,not assessed,not assessed,,,not assessed,",
        f"NO-SUCH-ROW,{NA6},,,not assessed,",                                             # line 7: unknown id
    ])
    reg = load_registry(REGISTRY)
    probs = check_rob(p, reg.df["row_id"].astype(str)).problems
    got = {(q.line, q.column, q.severity) for q in probs}
    assert (2, 3, "error") in got                       # d2 is column 3
    assert (3, 8, "error") in got and (3, 9, "error") in got   # source, source_location
    assert (4, 7, "error") in got                       # overall
    assert (5, 1, "error") in got                       # duplicate row_id
    assert (6, 2, "error") in got                       # judged with status not assessed
    assert (7, 1, "warning") in got
    assert all(q.path == str(p) for q in probs)
    with pytest.raises(ProblemError):
        load_rob(p, reg.df["row_id"].astype(str))


def test_rob_file_is_optional(tmp_path):
    t = load_rob(tmp_path / "absent.csv")
    assert t.entries == {} and t.entry("X").overall is RobJudgement.NOT_ASSESSED


def test_plan_grade_errors_are_located(tmp_path):
    reg = load_registry(REGISTRY)
    bad = SRE_PLAN.replace('indirectness_reason = "test reason"\n', "").replace("risk = 0.3", "risk = 1.5") \
        + 'colour = "red"\n'
    p = tmp_path / "plan.toml"
    p.write_text(bad, encoding="utf-8")
    probs = validate_plan(p, reg)
    text = p.read_text().splitlines()
    line_of = {k: next(i + 1 for i, s in enumerate(text) if s.startswith(k)) for k in
               ("indirectness", "baseline_risk", "colour")}
    got = {(q.line, q.message.split()[0]) for q in probs if q.severity == "error"}
    assert (line_of["indirectness"], "indirectness") in got
    assert (line_of["baseline_risk"], "baseline_risk") in got
    assert (line_of["colour"], "unknown") in got
    ok = load_plan(PLAN, reg)
    assert ok.analyses[[a.id for a in ok.analyses].index("dfs")].grade.baseline_risk[0].risk == 0.168


def test_vocab_schema_agree():
    doc = json.loads((ROOT / "trials" / "rob.schema.json").read_text(encoding="utf-8"))
    assert tuple(f["name"] for f in doc["fields"]) == ROB_COLUMNS
    judged = [f for f in doc["fields"] if f["name"] in {c for c, _ in vocab.ROB_DOMAINS} | {"overall"}]
    assert all(f["constraints"]["enum"] == [j.value for j in RobJudgement] for f in judged)


def test_validate_reports_rob_problems_with_locations(tmp_path, capsys):
    from metaanalysis.cli import main

    (tmp_path / "registry.csv").write_bytes(REGISTRY.read_bytes())
    _rob_file(tmp_path, ["DCARE-DFS-2020,low,low,low,low,low,low,,,assessed,"])
    assert main(["validate", str(tmp_path / "registry.csv")]) == 1
    cap = capsys.readouterr()
    assert f"{tmp_path / 'rob.csv'}:2:8: error: [source] an assessed row needs source" in cap.err
    assert cap.out.strip().endswith("rob.csv: 2 errors, 0 warnings")


def test_batch_stamp_changes_with_the_rob_file(tmp_path):
    from metaanalysis.batch import inputs_hash

    reg, plan = tmp_path / "registry.csv", tmp_path / "plan.toml"
    reg.write_bytes(REGISTRY.read_bytes())
    plan.write_bytes(PLAN.read_bytes())
    before = inputs_hash(reg, plan, toolkit="t")
    _rob_file(tmp_path, [f"DCARE-DFS-2020,{NA6},,,not assessed,"])
    assert inputs_hash(reg, plan, toolkit="t") != before
