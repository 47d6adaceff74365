"""The analysis layer: run_plan(registry, plan) -> Evidence, a typed frozen result tree.

Pooled numbers are checked against ``metaanalysis.pool`` on the same registry rows (itself checked
against metafor 3.8-1 in tests/test_conformance.py); every caveat against the numbers it describes;
captions and methods text against the measure and model they describe.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest

from metaanalysis import pool, vocab
from metaanalysis.analysis import AnalysisResult, Evidence, analyse, run_plan
from metaanalysis.plan import Settings, load_plan
from metaanalysis.registry import load_registry
from metaanalysis.render import words
from metaanalysis.report.build import render_files
from metaanalysis.vocab import Flag, StudyFlag

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
# The feature tests use the plan as it was before the one-clinical-question re-cut (issue #13): its
# cross-question analyses, declared exploratory there, give the k = 2 (dfs, ttbm) and k = 3 (bmfs,
# os-placebo) pages these tests need; every number below is unchanged by the re-cut (same rows).
PLAN = ROOT / "tests" / "plans" / "cross_question.toml"
SHIPPED_PLAN = ROOT / "trials" / "analyses.toml"


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return analyse(REGISTRY, PLAN)


def test_tree_is_frozen_and_in_plan_order(ev):
    assert [a.id for a in ev.analyses] == [a.id for a in ev.plan.analyses]
    assert [n.id for n in ev.narratives] == [n.id for n in ev.plan.narratives]
    a = ev.analyses[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.result = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.studies[0].weight = 1.0


def test_main_result_is_pool_on_the_studies(ev):
    for a in ev.analyses:
        yi = np.array([s.yi for s in a.studies])
        vi = np.array([s.vi for s in a.studies])
        for s in a.studies:   # each study's effect is the registry row's effect
            assert (s.yi, s.vi) == (ev.effects[s.row_id].yi, ev.effects[s.row_id].vi)
        if a.k < 2:
            assert a.result is None
            continue
        st = a.settings
        ref = pool(yi, vi, method=st.method, test=st.test, level=st.level, pi=st.pi)
        assert a.result.to_dict() == ref.to_dict(), a.id
        if a.headline_result is not None:   # weights are the headline model's
            assert sum(s.weight for s in a.studies) == pytest.approx(100.0, abs=1e-9)
            assert [s.weight for s in a.studies] == pytest.approx(list(a.headline_result.weights), abs=0)
        if st.test != "z":
            assert a.z_result.to_dict() == pool(yi, vi, method=st.method, test="z", level=st.level,
                                                pi=st.pi).to_dict()


def test_flags_are_codes_not_text(ev):
    for a in ev.analyses:
        assert all(isinstance(c.flag, Flag) for c in a.caveats)
        for s in a.studies:
            assert all(isinstance(f, StudyFlag) for f in s.flags)


def test_every_caveat_is_computed_from_its_numbers(ev):
    """Each flag appears exactly when the numbers say it is true (Cochrane Handbook ch. 10)."""
    for a in ev.analyses:
        k, res, z = a.k, a.result, a.z_result
        f = set(a.flags)
        assert (Flag.SINGLE_STUDY in f) == (k == 1), a.id
        assert (Flag.FEW_STUDIES in f) == (2 <= k < 5), a.id
        assert (Flag.K2_T1 in f) == (k == 2 and a.settings.test in ("knha", "adhoc")
                                     and a.headline is vocab.Headline.RANDOM), a.id
        assert (Flag.NO_POOLED_HEADLINE in f) == (k >= 2 and a.headline is vocab.Headline.NONE), a.id
        assert (Flag.TAU2_ZERO in f) == (res is not None and res.tau2 <= 1e-10), a.id
        narrower = (res is not None and z is not None
                    and res.ci_upper - res.ci_lower < z.ci_upper - z.ci_lower - 1e-12)
        assert (Flag.HKSJ_NARROWER in f) == narrower, a.id
        derived = [s.row_id for s in a.studies if StudyFlag.SE_FROM_P in s.flags]
        assert (a.caveat(Flag.DERIVED_SE).rows if derived else ()) == tuple(derived)


def test_shipped_analyses_carry_the_expected_flags(ev):
    # dfs, ttbm: k = 2, so no frequentist random-effects headline (Bender et al. 2018): the Bayesian
    # posterior leads; sre: tau2 = 0, and under the ad hoc test the CI is never narrower than z
    # (HKSJ alone would be: q < 1)
    for k2 in ("dfs", "ttbm"):
        assert not {Flag.NO_POOLED_HEADLINE, Flag.K2_T1} & set(ev.analysis(k2).flags)
    assert Flag.TAU2_ZERO in ev.analysis("ttbm").flags
    sre = ev.analysis("sre-zoledronic")
    assert Flag.TAU2_ZERO in sre.flags and Flag.HKSJ_NARROWER not in sre.flags
    assert sre.result.ci_upper - sre.result.ci_lower >= sre.z_result.ci_upper - sre.z_result.ci_lower
    assert ev.analysis("fracture").flags[0] is Flag.SINGLE_STUDY


def test_evidence_frame_matches_results_csv(ev):
    files, _ = render_files(ev)
    rows = list(csv.DictReader(io.StringIO(files["results.csv"].decode("utf-8"))))
    frame = ev.to_frame()
    assert list(frame["analysis_id"]) == [r["analysis_id"] for r in rows]
    for (_, f), r in zip(frame.iterrows(), rows):
        for col in ("k", "estimate", "ci_lower", "ci_upper", "tau2", "i2"):
            if r[col] == "":
                assert f.get(col) is None or (isinstance(f[col], float) and math.isnan(f[col]))
            else:
                assert float(r[col]) == pytest.approx(float(f[col]), rel=1e-15), (r["analysis_id"], col)
        assert r["flags"] == f["flags"]
    bmfs = frame.set_index("analysis_id").loc["bmfs"]
    assert bmfs["estimate"] == pytest.approx(math.exp(ev.analysis("bmfs").result.estimate), rel=1e-15)


def test_analysis_frame_per_study(ev):
    a = ev.analysis("bmfs")
    df = a.to_frame()
    assert list(df["row_id"]) == [s.row_id for s in a.studies]
    assert df["weight"].sum() == pytest.approx(100.0, abs=1e-9)
    z = 1.959963984540054   # R: qnorm(0.975)
    s0 = a.studies[0]
    assert df["ci_upper"].iloc[0] == pytest.approx(math.exp(s0.yi + z * math.sqrt(s0.vi)), rel=1e-14)


def test_flatiron_combination_uses_typed_p_values(ev):
    from scipy.stats import combine_pvalues

    c = ev.narratives[0].combinations[0] if ev.narratives[0].combinations else None
    c = c or next(x for n in ev.narratives for x in n.combinations)
    # registry lines 29-30: melanoma p = 0.0172, NSCLC p < 0.0001, both two-sided -> halved
    assert c.p_one_sided == (0.0172 / 2, 0.0001 / 2)
    assert c.upper_bound is True and c.fisher_df == 4
    ref = combine_pvalues(list(c.p_one_sided), method="fisher")
    assert c.fisher_stat == pytest.approx(ref.statistic, rel=1e-13)
    assert c.fisher_p == pytest.approx(ref.pvalue, rel=1e-12)


def _as(a: AnalysisResult, **kw) -> AnalysisResult:
    return dataclasses.replace(a, analysis=dataclasses.replace(a.analysis, **kw))


def test_caption_follows_measure_and_model(ev):
    a = ev.analysis("bmfs")
    cap = words.forest_caption(a)
    assert "pooled random-effects estimate" in cap and "Log scale; HR < 1 favours denosumab." in cap
    md = _as(a, measure="MD")
    assert words.forest_caption(md).endswith("MD < 0 favours denosumab.") and "Log scale" not in \
        words.forest_caption(md)
    yi = np.array([s.yi for s in a.studies])
    vi = np.array([s.vi for s in a.studies])
    fe_fit = pool(yi, vi, method="FE", test="z")
    fe = dataclasses.replace(_as(a, settings=Settings(method="FE", test="z")), result=fe_fit,
                             headline_result=fe_fit)
    cap = words.forest_caption(fe)
    assert "pooled common-effect estimate" in cap and "prediction interval" not in cap   # FE has no PI


def test_methods_text_follows_measure_and_model():
    t = words.methods_text("REML", "knha", "metafor", 0.95, "HR")
    assert "random-effects model on the log scale" in t and "restricted maximum-likelihood" in t
    assert "on the natural scale" in words.methods_text("REML", "z", "metafor", 0.9, "MD")
    fe = words.methods_text("FE", "z", "metafor", 0.95, "SMD")
    assert "common-effect (fixed-effect)" in fe and "τ²" not in fe


def test_common_effect_page_says_so(tmp_path):
    """A plan with method = "FE" gets a common-effect key result and caption (no random-effects words)."""
    plan_text = PLAN.read_text(encoding="utf-8")
    marker = 'id = "bmfs"'
    assert marker in plan_text
    plan_text = plan_text.replace(marker, marker + '\nmethod = "FE"\ntest = "z"', 1)
    p = tmp_path / "analyses.toml"
    p.write_text(plan_text, encoding="utf-8")
    reg = load_registry(REGISTRY)
    ev = run_plan(reg, load_plan(str(p), reg))
    files, _ = render_files(ev)
    html = files["bmfs.html"].decode("utf-8")
    assert "Pooled HR (common effect)" in html and "pooled common-effect estimate" in html
    assert "Why these settings" not in html   # the REML + HKSJ rationale would be false here


def test_lower_bound_p_never_reaches_a_combination():
    from types import SimpleNamespace

    from metaanalysis.analysis import _combine
    from metaanalysis.effects import PValue

    pv = PValue(value=0.05, relation=">", decimals=2, sided=2)
    reg = SimpleNamespace(p_values={"R1": pv, "R2": pv})
    with pytest.raises(ValueError, match="lower bound"):
        _combine(reg, SimpleNamespace(rows=("R1", "R2"), label="x"))


def test_vocab_codes_are_case_insensitive():
    assert vocab.canonical_method("reml") == "REML" and vocab.canonical_test("KNHA") == "knha"
    assert vocab.canonical_pi("Riley") == "riley"
    with pytest.raises(ValueError, match="did you mean 'REML'"):
        vocab.canonical_method("REMLL")
    assert vocab.as_level(95) == 0.95 and vocab.as_level(0.9) == 0.9
    for bad in (0, 0.3, 1, 1.5, 100, 150, float("nan")):
        with pytest.raises(ValueError, match="level"):
            vocab.as_level(bad)


def test_readme_notebook_example_runs(monkeypatch, capsys):
    """Every Python block of the README runs (in order, one namespace), and the flag list the
    notebook block prints in a comment is true."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(ROOT)
    ns: dict = {}
    for b in blocks:
        exec(compile(b, "README.md", "exec"), ns)
    block = next(b for b in blocks if "analyse(" in b)
    claimed = re.search(r"\[c\.flag\.value for c in sre\.caveats\]\s+# (\[.*?\])", block).group(1)
    assert [c.flag.value for c in ns["sre"].caveats] == eval(claimed)


def test_headline_rule(ev):
    """k = 1: the study; k = 2: no pooled headline (Bender et al. 2018); k >= 3: the plan's model."""
    for a in ev.analyses:
        want = vocab.default_headline(a.k, a.bayes is not None) if not a.analysis.headline else None
        if want is not None:
            assert a.headline is want, a.id
        if a.headline is vocab.Headline.RANDOM:
            assert a.headline_result is a.result
        elif a.headline in (vocab.Headline.NONE, vocab.Headline.BAYES):
            assert a.headline_result is None
            # the plan's model is still reported, as the first sensitivity scenario
            assert a.scenarios[0].kind.value == "random-effects" and a.scenarios[0].result is a.result
    assert ev.analysis("ttbm").headline is vocab.Headline.BAYES   # HR: half-normal(0.5) prior by default
    assert ev.analysis("bmfs").headline is vocab.Headline.RANDOM


def test_sre_headline_is_the_ad_hoc_interval(ev):
    """SRE vs zoledronic acid, three near-identical trials: REML + Knapp-Hartung ad hoc gives
    0.83 (0.68 to 1.00) (issue #12: "The Knapp-Hartung ad hoc variant gives 0.83 (0.68-1.00)"),
    never narrower than the common-effect Wald interval (0.76 to 0.90)."""
    sre = ev.analysis("sre-zoledronic")
    r = sre.headline_result
    assert (r.method, r.test) == ("REML", "adhoc")
    assert [round(math.exp(x), 2) for x in (r.estimate, r.ci_lower, r.ci_upper)] == [0.83, 0.68, 1.00]
    yi = np.array([s.yi for s in sre.studies])
    vi = np.array([s.vi for s in sre.studies])
    fe = pool(yi, vi, method="FE", test="z")
    assert [round(math.exp(x), 2) for x in (fe.ci_lower, fe.ci_upper)] == [0.76, 0.90]
    assert r.ci_upper - r.ci_lower > fe.ci_upper - fe.ci_lower


def test_plan_can_lead_with_the_common_effect_model(tmp_path):
    plan_text = PLAN.read_text(encoding="utf-8")
    marker = 'id = "ttbm"'
    plan_text = plan_text.replace(marker, marker + '\nheadline = "common"\nheadline_reason = "same endpoint '
                                  'definition and schedule: one true effect assumed"', 1)
    p = tmp_path / "analyses.toml"
    p.write_text(plan_text, encoding="utf-8")
    reg = load_registry(REGISTRY)
    ev = run_plan(reg, load_plan(str(p), reg))
    a = ev.analysis("ttbm")
    yi = np.array([s.yi for s in a.studies])
    vi = np.array([s.vi for s in a.studies])
    assert a.headline is vocab.Headline.COMMON
    assert a.headline_result.to_dict() == pool(yi, vi, method="FE", test="z").to_dict()
    html = render_files(ev)[0]["ttbm.html"].decode("utf-8")
    assert "Pooled HR (common effect)" in html and "one true effect assumed" in html
    assert "pooled common-effect estimate" in html


@pytest.mark.parametrize("lines,message", [
    ('headline = "common"', "headline needs a headline_reason"),
    ('headline = "bayesian-ish"\nheadline_reason = "x"', "is not supported"),
    ('headline_reason = "why"', "headline_reason without headline"),
])
def test_plan_headline_errors_are_located(tmp_path, lines, message):
    from metaanalysis.problems import ProblemError

    plan_text = PLAN.read_text(encoding="utf-8").replace('id = "ttbm"', 'id = "ttbm"\n' + lines, 1)
    p = tmp_path / "analyses.toml"
    p.write_text(plan_text, encoding="utf-8")
    reg = load_registry(REGISTRY)
    with pytest.raises(ProblemError) as ei:
        load_plan(str(p), reg)
    line = plan_text.splitlines().index('id = "ttbm"') + 2
    assert any(message in q.message and q.line >= line for q in ei.value.errors), ei.value


def test_missing_evidence_text_is_true_of_the_pooled_rows(ev, tmp_path):
    """An analysis that pools unconfirmed rows through includes must not say none is.

    Since the 2026-12-01 curation round the shipped SRE rows (Fizazi 2011, Henry 2011) are confirmed
    in the Xgeva US prescribing information (section 14, Table 2), so the shipped SRE page says none
    is; the test re-marks both rows unconfirmed and includes them, as the plan did before.
    """
    from metaanalysis.render.labels import RowText

    shipped = words.no_missing_text(ev.analysis("sre-zoledronic"), RowText(ev.registry))
    assert shipped == "No registry row for this question is marked missing or unconfirmed."
    lines = REGISTRY.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(("ZACRPC-SRE-2011,", "ZASOLID-SRE-2011,")):
            assert line.count(",confirmed,") == 1
            lines[i] = line.replace(",confirmed,", ",unconfirmed,")
    reg = tmp_path / "registry.csv"
    reg.write_text("".join(lines), encoding="utf-8")
    plan_text = PLAN.read_text(encoding="utf-8").replace(
        'select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]\n',
        'select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]\ninclude = ['
        '{ row = "ZACRPC-SRE-2011", reason = "r" }, { row = "ZASOLID-SRE-2011", reason = "r" }]\n', 1)
    plan = tmp_path / "analyses.toml"
    plan.write_text(plan_text, encoding="utf-8")
    ev2 = analyse(reg, plan)
    rows = RowText(ev2.registry)
    sre = words.no_missing_text(ev2.analysis("sre-zoledronic"), rows)
    assert "unconfirmed (‡): DMAB-ZA-CRPC (Fizazi 2011), DMAB-ZA-SOLID (Henry 2011)" in sre
    assert "confirmed results only" in sre
    # TTBM pools two confirmed rows (D-CARE Adv Ther 2021, Smith 2012 abstracts); since the
    # 2026-12-01 curation round BMFS pools two unconfirmed ones through includes
    ttbm = words.no_missing_text(ev2.analysis("ttbm"), rows)
    assert ttbm == "No registry row for this question is marked missing or unconfirmed."
    bmfs = words.no_missing_text(ev2.analysis("bmfs"), rows)
    assert "unconfirmed (‡): D-CARE (Coleman 2020), ABCSG-18 (Gnant 2022)" in bmfs


def test_every_pooled_analysis_has_its_coverage_table(ev):
    """Design-specific coverage (issue #12 item 3): for each pooled design, every interval method (the
    Bayesian central credible interval under the page's prior included) at tau2 = 0, the estimate,
    the Q-profile upper bound and the prior median of tau2, up to 10,000 replicates (each row until its
    Monte-Carlo SE is at most the vocabulary's target), fixed seeds."""
    from functools import partial

    from metaanalysis.bayesian import central_intervals_many
    from metaanalysis.coverage import coverage

    for a in ev.analyses:
        if a.result is None:
            assert a.coverage is None
            continue
        grid = [t2 for _, t2 in a.coverage_grid]
        assert grid[0] == 0.0 and a.result.tau2_ci_upper in grid and a.result.tau2 in grid
        assert a.coverage.n_sim == 10_000 and a.coverage.vi == a.result.vi
        assert a.coverage.intervals == ("z", "knha", "adhoc", "FE") + (("bayes",) if a.bayes else ())
        if a.bayes is not None:    # half-normal(0.5) on the log scale: median tau = 0.5 Phi^-1(3/4)
            assert (vocab.GridRole.PRIOR_MEDIAN, (0.5 * 0.6744897501960817) ** 2) in a.coverage_grid
    sre = ev.analysis("sre-zoledronic")
    assert sre.bayes.tau_prior == "halfnormal" and sre.bayes.tau_scale == (0.5,)
    bayes = partial(central_intervals_many, tau_prior="halfnormal", tau_scale=0.5, level=0.95)
    again = coverage(sre.result.vi, [t2 for _, t2 in sre.coverage_grid], level=0.95, extra={"bayes": bayes},
                     mcse_target=vocab.COVERAGE_MCSE_TARGET)
    assert again == sre.coverage   # deterministic: the same table in a fresh call
    # the headline (ad hoc) interval is never narrower than HKSJ, so it covers at least as often
    # (on the same replicates; rows may stop at different stages, hence the MCSE allowance)
    for _, t2 in sre.coverage_grid:
        ah, kn = sre.coverage.get("adhoc", t2), sre.coverage.get("knha", t2)
        assert ah.coverage >= kn.coverage - 3 * max(ah.mcse, kn.mcse)


def test_undercoverage_flag_is_computed_from_the_table(ev):
    from metaanalysis.analysis import undercovers
    from metaanalysis.coverage import CoverageRow

    a = ev.analysis("bmfs")
    assert a.headline is vocab.Headline.RANDOM and not undercovers(a, a.coverage)
    assert Flag.UNDERCOVERAGE not in a.flags
    low = tuple(dataclasses.replace(r, coverage=0.90, mcse=0.003) if r.interval == "adhoc" else r
                for r in a.coverage.rows)
    assert undercovers(a, dataclasses.replace(a.coverage, rows=low))
    # within 3 Monte-Carlo SEs of the level is not under-coverage
    near = tuple(dataclasses.replace(r, coverage=0.945, mcse=0.0022) if r.interval == "adhoc" else r
                 for r in a.coverage.rows)
    assert not undercovers(a, dataclasses.replace(a.coverage, rows=near))


def test_undercoverage_flag_of_a_bayesian_headline(ev):
    """k = 2 pages lead with the Bayesian posterior: the flag follows its central credible interval's
    row of the coverage table, and the text says where it fell short."""
    from metaanalysis.analysis import headline_interval, undercovers

    a = ev.analysis("dfs")
    assert a.headline is vocab.Headline.BAYES and headline_interval(a) == vocab.BAYES_INTERVAL
    rows = [r for r in a.coverage.rows if r.interval == vocab.BAYES_INTERVAL]
    short = any(0.95 - r.coverage > max(vocab.UNDERCOVERAGE_MARGIN, 3 * r.mcse) for r in rows)
    assert undercovers(a, a.coverage) is short and (Flag.UNDERCOVERAGE in a.flags) is short
    nominal = tuple(dataclasses.replace(r, coverage=0.95) if r.interval == vocab.BAYES_INTERVAL else r
                    for r in a.coverage.rows)
    assert not undercovers(a, dataclasses.replace(a.coverage, rows=nominal))
    if short:
        worst = min(rows, key=lambda r: r.coverage)
        text = words._undercoverage_text(a)
        assert "headline Bayesian central credible interval" in text
        assert f"{100 * worst.coverage:.1f}%" in text and "on average over its prior" in text


def test_methods_paragraph_says_what_was_run(ev):
    ttbm = words.analysis_methods_text(ev.analysis("ttbm"))
    assert "HKSJ with the variance multiplier floored at 1" in ttbm      # the plan's test: adhoc
    assert "half-normal prior on τ (scale 0.50), flat prior on μ" in ttbm and "leads the page" in ttbm
    table = ev.analysis("ttbm").coverage
    used = sorted({r.n_sim for r in table.rows})   # with control variates every cell stops at 1,000 here
    assert used == [1000] and "1,000 of them per interval and τ² (at most 10,000)" in ttbm
    assert "conditional Monte Carlo, Ross 2013" in ttbm and "Monte-Carlo SE was at most 0.2 percentage points" in ttbm
    assert "adjusted by control variates of exactly known mean (Nelson 1990)" in ttbm
    assert "including the Bayesian central credible interval under the same prior" in ttbm
    assert "the upper Q-profile bound and the prior median of τ²" in ttbm
    cites = [c.code for c in words.analysis_citations(ev.analysis("ttbm"))]
    assert "ross2013" in cites and "morris2019" in cites and "nelson1990" in cites
    assert {"bender2018", "morris2019", "friede2017", "adhoc", "bayes", "halfnormal"} <= set(cites)
    bmfs = words.analysis_methods_text(ev.analysis("bmfs"))
    assert "Bender" not in bmfs and "bender2018" not in [c.code for c in words.analysis_citations(ev.analysis("bmfs"))]


def test_bayesian_analysis_of_the_sre_trials(ev):
    """Issue #12: "a Bayesian analysis with a half-normal(0.5) prior on τ gives 0.83 (0.67-1.02)"
    for SRE vs zoledronic acid; the prior-sensitivity rows use half-normal scales 0.25 and 1."""
    from metaanalysis import bayes

    sre = ev.analysis("sre-zoledronic")
    b = sre.bayes
    assert (b.tau_prior, b.tau_scale, b.mu_prior) == ("halfnormal", (0.5,), None)
    assert [round(math.exp(x), 2) for x in (b.mu_median, b.mu_ci_lower, b.mu_ci_upper)] == [0.83, 0.67, 1.02]
    yi = np.array([s.yi for s in sre.studies])
    vi = np.array([s.vi for s in sre.studies])
    assert b == bayes(yi, vi, tau_prior="halfnormal", tau_scale=0.5)
    assert [x.tau_scale for x in sre.bayes_sensitivity] == [(0.25,), (1.0,)]
    assert sre.headline is vocab.Headline.RANDOM   # k = 3: the plan's frequentist model leads


def test_k2_pages_lead_with_the_bayesian_posterior(ev):
    ttbm = ev.analysis("ttbm")
    files, _ = render_files(ev)
    html = files["ttbm.html"].decode("utf-8")
    med = math.exp(ttbm.bayes.mu_median)
    assert f"Pooled HR (Bayesian random-effects, posterior median)" in html
    assert f'<span class="kr-value">{med:.2f}</span>' in html
    assert "no pooled diamond: the page leads with the Bayesian posterior" in html


def test_plan_tau_prior_is_checked_and_used(tmp_path):
    from metaanalysis.problems import ProblemError

    reg = load_registry(REGISTRY)
    base = PLAN.read_text(encoding="utf-8")
    p = tmp_path / "analyses.toml"
    p.write_text(base.replace('id = "ttbm"', 'id = "ttbm"\ntau_prior = "HalfCauchy"\ntau_scale = 0.25', 1),
                 encoding="utf-8")
    ev = run_plan(reg, load_plan(str(p), reg), coverage=False)
    b = ev.analysis("ttbm").bayes
    assert (b.tau_prior, b.tau_scale) == ("halfcauchy", (0.25,))
    for bad, msg in (('tau_prior = "gamma"\ntau_scale = 1', "is not supported"),
                     ('tau_prior = "lognormal"\ntau_scale = 0.5', "does not fit"),
                     ('tau_prior = "halfnormal"\ntau_scale = -1', "does not fit")):
        p.write_text(base.replace('id = "ttbm"', 'id = "ttbm"\n' + bad, 1), encoding="utf-8")
        with pytest.raises(ProblemError) as ei:
            load_plan(str(p), reg)
        assert any(msg in q.message for q in ei.value.errors), ei.value


def test_narrative_results_side_by_side(ev):
    """SWiM: a narrative section with comparative results gets a forest plot without a diamond, and
    results of one trial are told apart by what the registry says of each (endpoint detail)."""
    files, _ = render_files(ev)
    html = files["subgroups-not-pooled.html"].decode("utf-8")
    assert "Results side by side" in html and "no diamond and no weights" in html
    assert "D-CARE (Coleman 2021): time to first bone metastasis, patients aged &lt; 50 years" in html
    assert "D-CARE (Coleman 2021): time to first bone metastasis, premenopausal patients" in html
    # p-value-only and proportion sections draw no effect-size forest
    assert "Results side by side" not in files["flatiron-ici.html"].decode("utf-8")


def test_registry_warnings_travel_with_the_rows(tmp_path):
    """Issue #11 item 5: a row the registry check warns about flags every analysis that pools it.
    NMCRPC-BMFS-2012 (trials/registry.csv line 19) reports HR 0.85 (0.73 to 0.98); entering 0.93
    gives two located warnings (estimate off-centre in its CI, p-value disagreeing with the CI)."""
    import csv as _csv

    rows = list(_csv.reader(io.StringIO(REGISTRY.read_text(encoding="utf-8"))))
    i = [r[0] for r in rows].index("NMCRPC-BMFS-2012")
    assert rows[i][rows[0].index("estimate")] == "0.85"
    rows[i][rows[0].index("estimate")] = "0.93"
    buf = io.StringIO()
    _csv.writer(buf, lineterminator="\n").writerows(rows)
    reg_path = tmp_path / "registry.csv"
    reg_path.write_text(buf.getvalue(), encoding="utf-8")
    reg = load_registry(reg_path)
    warned = [p for p in reg.problems if p.line == 19]
    assert len(warned) == 2 and all(p.severity == "warning" for p in warned)
    ev = run_plan(reg, load_plan(str(PLAN), reg), coverage=False)
    for a in ev.analyses:
        pooled = "NMCRPC-BMFS-2012" in [s.row_id for s in a.studies]
        assert (Flag.ROW_WARNING in a.flags) == pooled, a.id
    bmfs = ev.analysis("bmfs")
    assert bmfs.caveat(Flag.ROW_WARNING).problems == tuple(warned)
    assert StudyFlag.REGISTRY_WARNING in next(s for s in bmfs.studies if s.row_id == "NMCRPC-BMFS-2012").flags
    html = render_files(ev)[0]["bmfs.html"].decode("utf-8")
    assert f"{reg_path}:19:18: warning: [estimate] estimate 0.93 is not halfway" in html


# A small plan for the coverage setting (issue #15): the three denosumab vs zoledronic acid SRE
# trials (k = 3, random-effects headline), once with the simulation off and once on.
_SRE = ('[[analysis]]\nid = "{aid}"\ntitle = "SRE"\nendpoint = "SRE"\nmeasure = "HR"\n'
        'favours = ["denosumab", "zoledronic acid"]\n'
        'select.comparator = ["zoledronic acid 4 mg i.v. every 4 weeks"]\n')
COVERAGE_PLAN = "[defaults]\ncoverage = false\n\n" + _SRE.format(aid="sre-off") + "\n" \
    + _SRE.format(aid="sre-on") + "coverage = true\n"


@pytest.fixture(scope="module")
def coverage_ev(tmp_path_factory) -> Evidence:
    p = tmp_path_factory.mktemp("cov") / "analyses.toml"
    p.write_text(COVERAGE_PLAN, encoding="utf-8")
    reg = load_registry(REGISTRY)
    return run_plan(reg, load_plan(str(p), reg))


def test_coverage_false_skips_the_simulation_only_for_that_analysis(coverage_ev):
    off, on = coverage_ev.analysis("sre-off"), coverage_ev.analysis("sre-on")
    assert off.k == on.k == 3 and off.headline is on.headline is vocab.Headline.RANDOM
    assert off.coverage is None and off.coverage_grid == () and Flag.UNDERCOVERAGE not in off.flags
    assert on.coverage is not None and on.coverage.n_sim == vocab.COVERAGE_N_SIM
    assert off.result == on.result          # the pooled model itself does not depend on the setting


def test_coverage_off_is_said_on_the_page_and_not_cited(coverage_ev):
    off, on = coverage_ev.analysis("sre-off"), coverage_ev.analysis("sre-on")
    said = words.coverage_off_text(off)
    assert said == ("The design-specific coverage simulation was not run: the plan turned it off (coverage = false), "
                    "so no check was made of whether the Knapp–Hartung ad hoc interval this page leads with "
                    "under-covers with these 3 studies' standard errors.")
    assert words.coverage_off_text(on) == ""                       # no boilerplate when it ran
    m_off, m_on = words.analysis_methods_text(off), words.analysis_methods_text(on)
    assert "Morris" not in m_off and "not simulated (the plan turned it off)" in m_off
    assert "Morris et al. 2019" in m_on and "not simulated" not in m_on
    assert vocab.COVERAGE_SIMULATION not in words.analysis_citations(off)
    assert vocab.COVERAGE_SIMULATION in words.analysis_citations(on)
    files, _ = render_files(coverage_ev)
    page_off, page_on = files["sre-off.html"].decode("utf-8"), files["sre-on.html"].decode("utf-8")
    assert said.replace("'", "&#39;") in page_off and "Monte-Carlo SE in brackets" not in page_off
    assert "was not run" not in page_on and "Monte-Carlo SE in brackets" in page_on
    import json

    assert json.loads(files["sre-off.json"])["coverage"] is None
    assert json.loads(files["sre-on.json"])["coverage"]["n_sim"] == vocab.COVERAGE_N_SIM
