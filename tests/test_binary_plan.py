"""Mantel-Haenszel and Peto analyses from a plan: validation, the result tree, the page, the R script.

Registry: tests/corpus/binary/registry.csv, the 9 trials of metadat's dat.collins1985b (diuretics in
pregnancy; Collins, Yusuf & Peto 1985, BMJ 290:17, doi:10.1136/bmj.290.6461.17): pre-eclampsia as OR,
perinatal death as RR (2 double-zero trials), neonatal death as RD (Landesman 1965 has no counts and is
not in the registry). Plan: tests/corpus/binary/analyses.toml.

Reference values: metafor 3.8.1 (R 4.2.2), on metadat's dat.collins1985b (``d``):

    rma.mh(ai=pre.xti, n1i=pre.nti, ci=pre.xci, n2i=pre.nci, data=d)                       # preecl-mh
    rma.peto(ai=pre.xti, n1i=pre.nti, ci=pre.xci, n2i=pre.nci, data=d)                     # preecl-peto
    rma.mh(ai=ped.xti, n1i=fup.nti, ci=ped.xci, n2i=fup.nci, data=d, measure="RR")         # perinatal-mh
    rma.mh(ai=ned.xti, n1i=fup.nti, ci=ned.xci, n2i=fup.nci, data=d, measure="RD",
           drop00=FALSE, subset=!is.na(ned.xti))                                           # neonatal-mh
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from metaanalysis import vocab
from metaanalysis.analysis import analyse
from metaanalysis.plan import validate_plan
from metaanalysis.registry import load_registry

CORPUS = Path(__file__).parent / "corpus" / "binary"
REGISTRY, PLAN = CORPUS / "registry.csv", CORPUS / "analyses.toml"

# (estimate, se, ci.lb, ci.ub, pval, QE, QEp, I2, MH, MHp, TA, TAp) printed with %.15g by metafor 3.8.1
METAFOR = {
    "preecl-mh": (-0.403915463674085, 0.0878841795031377, -0.576165290311088, -0.231665637037081,
                  4.30683993263927e-06, 27.2692873201658, 0.00063512473151689, 70.6629663398502,
                  21.2265928092841, 4.08063330508235e-06, 28.7907122069083, 0.000345057721650522),
    "preecl-peto": (-0.409477813513215, 0.0880360660583868, -0.582025332328242, -0.236930294698188,
                    3.29927955831766e-06, 29.3423550239491, 0.000276082052864288, 72.7356580837822),
    "perinatal-mh": (-0.0894237733468142, 0.179444557353036, -0.441128642980496, 0.262281096286868,
                     0.61824688279643, 3.2591707098131, 0.775685342542172, 0.0),
    "neonatal-mh": (-0.00150346265663811, 0.00322584690680231, -0.00782600641361057, 0.00481908110033435,
                    0.64116712930643, 1.85017640893014, 0.96766534638453, 0.0),
}
FIELDS = ("estimate", "se", "ci_lower", "ci_upper", "pvalue", "q", "q_pvalue", "i2", "cmh", "cmh_pvalue", "tarone",
          "tarone_pvalue")


@pytest.fixture(scope="module")
def ev():
    return analyse(REGISTRY, PLAN)


def _close(a, e):
    return abs(a - e) <= 1e-6 or abs(a - e) <= 1e-6 * abs(e)


@pytest.mark.parametrize("aid", sorted(METAFOR))
def test_plan_analyses_match_metafor(ev, aid):
    a = ev.analysis(aid)
    for name, expected in zip(FIELDS, METAFOR[aid]):
        assert _close(getattr(a.binary, name), expected), (aid, name, getattr(a.binary, name), expected)
        if name in ("estimate", "se", "ci_lower", "ci_upper", "pvalue", "q", "q_pvalue", "i2"):
            assert _close(getattr(a.result, name), expected), (aid, name)   # the MetaResult the page renders
    assert a.result.method == a.settings.method and a.result.test == "z" and a.result.tau2 == 0.0
    assert a.result.pi_lower is None and a.result.tau2_ci_upper is None
    assert a.headline is vocab.Headline.COMMON and a.headline_result is a.result
    assert a.bayes is None and a.coverage is None and a.subgroups == ()


def test_tree_holds_counts_weights_and_double_zero_tables(ev):
    pre = ev.analysis("preecl-mh")
    assert pre.studies[0].counts == (14, 131, 14, 136)      # Weseley & Douglas 1962, dat.collins1985b row 1
    assert math.isclose(sum(st.weight for st in pre.studies), 100.0)
    assert [st.weight for st in pre.studies] == list(pre.binary.weights)
    assert all(vocab.StudyFlag.EFFECT_DERIVED not in st.flags for st in pre.studies)
    peri = ev.analysis("perinatal-mh")
    # Tervila 1971 and Campbell 1975: 0/108 vs 0/103 and 0/153 vs 0/102 perinatal deaths
    assert [e.row_id for e in peri.not_pooled] == ["COLLINS85-8-PERIDEATH", "COLLINS85-9-PERIDEATH"]
    assert peri.k == peri.result.k == 7 and vocab.Flag.NOT_POOLABLE in peri.flags
    neo = ev.analysis("neonatal-mh")                       # RD: double-zero tables are pooled
    assert neo.k == 8 and neo.not_pooled == () and neo.binary.drop00 == (False, False)
    assert vocab.Flag.TAU2_ZERO not in pre.flags           # tau2 = 0 is the model, not an estimate


def test_refits_use_the_counts(ev):
    from metaanalysis.binary import pool_mh

    pre = ev.analysis("preecl-mh")
    assert len(pre.leave_one_out) == pre.k and len(pre.cumulative) == pre.k
    rest = [st for st in pre.studies if st.row_id != pre.leave_one_out[5].omitted]
    ref = pool_mh([s.counts[0] for s in rest], [s.counts[1] - s.counts[0] for s in rest],
                  [s.counts[2] for s in rest], [s.counts[3] - s.counts[2] for s in rest])
    assert pre.leave_one_out[5].result.estimate == ref.estimate
    assert pre.cumulative[-1].result.estimate == pre.result.estimate
    assert pre.cumulative[0].result.k == 1
    # the estimator panel and the common-effect scenario pool the escalc effects by inverse variance
    assert {r.method for r in pre.panel} == set(vocab.ESTIMATOR_PANEL)
    ce = next(s for s in pre.scenarios if s.kind.value == "common-effect")
    assert ce.result.method == "FE" and not math.isclose(ce.result.estimate, pre.result.estimate)


def test_forest_plot_shows_events_per_arm(ev):
    from metaanalysis.plots import layout_forest
    from metaanalysis.render import figures, view
    from metaanalysis.render.labels import RowText

    a = ev.analysis("preecl-mh")
    spec = figures.forest_spec(a, view.analysis_view(a, RowText(ev.registry), ev.effects))
    assert spec.columns == ("Events/N diuretics", "Events/N control")
    assert spec.rows[0].cells == ("14/131", "14/136")
    assert all(r.ci is None for r in spec.rows)             # the counts' effect, not a reported CI
    texts = [t.text for t in layout_forest(spec).texts]
    assert "Mantel–Haenszel model" in texts and "138/1370" in texts
    assert any(t.startswith("Heterogeneity: I² = 70.7%") for t in texts)


def test_report_pages_and_r_scripts(tmp_path):
    from metaanalysis.report.build import build_reports

    out = tmp_path / "reports"
    build_reports(REGISTRY, PLAN, out)
    page = (out / "preecl-mh.html").read_text(encoding="utf-8")
    assert "Cochran–Mantel–Haenszel test of no association: χ² = 21.23 (1 df), p &lt; 0.001" in page
    assert "Tarone&#39;s test" in page or "Tarone's test" in page
    assert "Events/N" in page and "Mantel–Haenszel method" in page and "Robins-Breslow-Greenland" in page
    assert "doi:10.1093/jnci/22.4.719" in page and "doi:10.2307/2531052" in page
    peto = (out / "preecl-peto.html").read_text(encoding="utf-8")
    assert "Peto&#39;s one-step method" in peto or "Peto's one-step method" in peto
    assert "Cochran–Mantel–Haenszel" not in peto and "τ² =" not in peto.split('id="h-het"')[0].rsplit("kr-main", 1)[1]
    data = json.loads((out / "preecl-mh.json").read_text(encoding="utf-8"))
    assert data["binary"]["method"] == "MH" and _close(data["binary"]["cmh"], METAFOR["preecl-mh"][8])
    assert data["binary"]["exp_estimate"] == pytest.approx(math.exp(METAFOR["preecl-mh"][0]), rel=1e-9)
    assert data["settings"]["method"] == "MH" and data["settings"]["test"] == "z"
    script = (out / "perinatal-mh.R").read_text(encoding="utf-8")
    assert 'res <- rma.mh(ai=ai, bi=bi, ci=ci, di=di, data=dat, measure="RR"' in script
    assert "dat <- data.frame(ai = ai, bi = n1i - ai, ci = ci, di = n2i - ci)" in script


def _plan(tmp_path, body: str) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text('[[analysis]]\nid = "x"\ntitle = "x"\nendpoint = "OTHER"\n' + body, encoding="utf-8")
    return p


@pytest.mark.parametrize("body,line,message", [
    ('measure = "RR"\nmethod = "Peto"\n', 6, "method Peto pools OR, not RR"),
    ('measure = "OR"\nmethod = "MH"\ntest = "knha"\n', 7, "method MH uses a z test"),
    ('measure = "OR"\nmethod = "MH"\nsubgroup = ["design"]\n', 7, "subgroup is not available with method MH"),
    ('measure = "OR"\nmethod = "MH"\nheadline = "random"\nheadline_reason = "r"\n', 7,
     "headline = 'random' does not apply"),
    ('measure = "OR"\nmethod = "MHX"\n', 6, "method = 'MHX' is not supported"),
])
def test_plan_errors_are_located(tmp_path, body, line, message):
    probs = [p for p in validate_plan(_plan(tmp_path, body), load_registry(REGISTRY)) if p.severity == "error"]
    assert any(message in p.message and p.line == line for p in probs), [(p.line, p.message) for p in probs]


def test_rows_without_counts_are_refused(tmp_path):
    lines = REGISTRY.read_text(encoding="utf-8").splitlines(keepends=True)
    hdr = lines[0].rstrip("\n").split(",")
    cells = lines[1].split(",")          # COLLINS85-1-PREECL: no commas inside its fields
    assert cells[0] == "COLLINS85-1-PREECL"
    cells[hdr.index("events_ctl")] = ""
    cells[hdr.index("status")] = "secondary"
    reg = tmp_path / "registry.csv"
    reg.write_text(lines[0] + ",".join(cells) + "".join(lines[2:]), encoding="utf-8")
    plan = _plan(tmp_path, 'measure = "OR"\nmethod = "MH"\n'
                 'include = [{row = "COLLINS85-1-PREECL", reason = "test"}]\n')
    probs = [p for p in validate_plan(plan, load_registry(reg)) if p.severity == "error"]
    assert any("row 'COLLINS85-1-PREECL' (registry line 2) has no events_ctl" in p.message and p.line == 6
               for p in probs), [(p.line, p.message) for p in probs]
    assert all("fill in events_int, n_int, events_ctl and n_ctl" in p.hint for p in probs if "events_ctl" in p.message)


def test_plan_codes_are_case_insensitive_and_documented():
    assert vocab.canonical_binary_method("mh") == "MH" and vocab.canonical_binary_method("PETO") == "Peto"
    doc = (Path(__file__).resolve().parents[1] / "trials" / "README.md").read_text(encoding="utf-8")
    assert "`MH` (Mantel–Haenszel; OR, RR, RD) or `Peto` (OR)" in doc


def test_exclusion_scenario_refits_the_tables(tmp_path):
    """exclude-unconfirmed on an MH analysis: the scenario is rma.mh on the other tables."""
    from metaanalysis.binary import pool_mh

    lines = REGISTRY.read_text(encoding="utf-8").splitlines(keepends=True)
    hdr = lines[0].rstrip("\n").split(",")
    cells = lines[1].split(",")
    cells[hdr.index("status")] = "secondary"        # COLLINS85-1-PREECL, counts unchanged
    reg = tmp_path / "registry.csv"
    reg.write_text(lines[0] + ",".join(cells) + "".join(lines[2:]), encoding="utf-8")
    plan = _plan(tmp_path, 'measure = "OR"\nmethod = "MH"\nsensitivity = ["exclude-unconfirmed"]\n'
                 'include = [{row = "COLLINS85-1-PREECL", reason = "test"}]\n')
    a = analyse(reg, plan).analysis("x")
    assert a.k == 9 and a.result.estimate == pytest.approx(METAFOR["preecl-mh"][0], abs=1e-12)
    sc = next(s for s in a.scenarios if s.kind.value == "exclude-unconfirmed")
    rest = [st.counts for st in a.studies if st.row_id != "COLLINS85-1-PREECL"]
    ref = pool_mh(*zip(*((e, n - e, c, m - c) for e, n, c, m in rest)))
    assert sc.k == 8 and sc.result.estimate == ref.estimate and sc.result.method == "MH"
