"""Evidence that is not pooled (issue #12 item 5; SWiM, Campbell et al. 2020, BMJ 368:l6890).

The sign test and the exact binomial CI against reference values with their source; the
synthesis of the shipped narrative sections (trials/analyses.toml, trials/registry.csv); the
plan's ``directions`` key; and that every narrative page of the shipped build carries a figure.
"""

from __future__ import annotations

import html as html_lib
import json
import math
import re
from pathlib import Path

import pytest

from metaanalysis import vocab
from metaanalysis.analysis import run_plan
from metaanalysis.plan import load_plan
from metaanalysis.problems import ProblemError
from metaanalysis.registry import favoured_below_null, load_registry
from metaanalysis.synthesis import clopper_pearson, sign_test, sign_test_min_n, sign_test_min_p
from metaanalysis.vocab import EffectDirection, IntervalSource, NarrativeFigure, SignTestNote

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------

# Two-sided exact binomial p-values against 1/2: scipy.stats.binomtest(k, n, 0.5).pvalue (scipy 1.17.1),
# and by hand: 6/6 -> 2 * 0.5**6 = 0.03125; 3/4 -> 2 * P(X <= 1) = 2 * 5/16 = 0.625;
# 2/10 -> 2 * (1 + 10 + 45) / 1024 = 0.109375.
SIGN_TEST_REFERENCE = [
    (0, 1, 1.0), (1, 1, 1.0), (3, 4, 0.625), (6, 6, 0.03125), (0, 6, 0.03125), (5, 6, 0.21875),
    (2, 10, 0.109375), (7, 12, 0.7744140625), (9, 10, 0.021484375), (15, 20, 0.041389465332031),
]


@pytest.mark.parametrize("k,n,expected", SIGN_TEST_REFERENCE)
def test_sign_test_matches_the_exact_binomial_test(k, n, expected):
    assert sign_test(k, n) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_sign_test_is_symmetric_and_refuses_bad_counts():
    for n in range(1, 15):
        for k in range(n + 1):
            assert sign_test(k, n) == pytest.approx(sign_test(n - k, n), rel=1e-14)
    for k, n in ((0, 0), (-1, 3), (4, 3)):
        with pytest.raises(ValueError):
            sign_test(k, n)


def test_smallest_attainable_p_and_fewest_results():
    # all n in one direction: 2 / 2**n (capped at 1); 5 results give 0.0625, 6 give 0.03125
    assert [sign_test_min_p(n) for n in (1, 2, 5, 6)] == [1.0, 0.5, 0.0625, 0.03125]
    assert sign_test_min_n(0.05) == 6
    assert sign_test_min_n(0.01) == 8      # 2 / 2**7 = 0.0156, 2 / 2**8 = 0.0078
    assert all(sign_test(n, n) == sign_test_min_p(n) for n in range(1, 12))


# Clopper-Pearson: scipy.stats.binomtest(x, n).proportion_ci(method="exact") (scipy 1.17.1), which is
# R's binom.test(x, n)$conf.int; GCTB 30/35 was published as 86% (95% CI 70-95) (Thomas 2010).
CP_REFERENCE = [
    (30, 35, 0.6974286483090485, 0.9519392215963624),
    (1, 15, 0.0016864302413554487, 0.3194845665783033),
    (10, 38, 0.13403372302497368, 0.43100824370224605),
    (0, 15, 0.0, 0.2180193609108388),
]


@pytest.mark.parametrize("x,n,lo,hi", CP_REFERENCE)
def test_clopper_pearson_matches_the_exact_interval(x, n, lo, hi):
    a, b = clopper_pearson(x, n)
    assert float(a) == pytest.approx(lo, abs=1e-12) and float(b) == pytest.approx(hi, abs=1e-12)


def test_clopper_pearson_edges_and_vectorised():
    lo, hi = clopper_pearson([0, 15], [15, 15], level=95)
    # x = n: lower = (a/2)**(1/n), upper = 1 (closed form); x = 0 mirrors it
    assert lo[0] == 0.0 and hi[1] == 1.0
    assert lo[1] == pytest.approx(0.025 ** (1 / 15), rel=1e-12)
    assert hi[0] == pytest.approx(1 - 0.025 ** (1 / 15), rel=1e-12)
    for bad in ((3, 2), (-1, 5), (1.5, 4), (0, 0)):
        with pytest.raises(ValueError):
            clopper_pearson(*bad)


def test_direction_text_is_read_as_the_validator_reads_it():
    assert favoured_below_null("HR < 1 favours denosumab", "denosumab", "placebo") == "intervention"
    assert favoured_below_null("HR > 1 favours denosumab", "denosumab", "placebo") == "comparator"
    assert favoured_below_null("HR < 1 favours placebo", "denosumab", "placebo") == "comparator"
    assert favoured_below_null("p-value for association", "denosumab", "none") is None


# ---------------------------------------------------------------------------------------------
# the shipped narrative sections
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ev():
    reg = load_registry(REGISTRY)
    return run_plan(reg, load_plan(PLAN, reg), coverage=False)


def _narrative(ev, nid):
    return next(n for n in ev.narratives if n.id == nid)


def test_flatiron_albatross_points_are_the_registry_p_values(ev):
    """FLATIRON rows of trials/registry.csv: PVAL, p '<0.0001' (ORR combined, ORR NSCLC, OS) and
    '0.0172' (ORR melanoma), n_int 307 / 241 / 66, two-sided (p_sided empty); directions from the plan."""
    syn = _narrative(ev, "flatiron-ici").synthesis
    assert syn.figures == (NarrativeFigure.ALBATROSS,)
    got = {p.row_id: (p.n, p.p, p.bound, p.direction) for p in syn.albatross}
    b = EffectDirection.BENEFIT
    assert got == {"FLATIRON-ORR-2018": (307, 0.0001, True, b), "FLATIRON-ORR-2018-MEL": (66, 0.0172, False, b),
                   "FLATIRON-ORR-2018-NSCLC": (241, 0.0001, True, b), "FLATIRON-OS-2018": (307, 0.0001, True, b)}
    # the DCR proportions have no denominator: no interval, so no proportions figure
    assert all(p.source is IntervalSource.NONE for p in syn.proportions)


def test_flatiron_sign_test_counts_one_patient_set_once_and_says_why_not_run(ev):
    """All Flatiron rows share patient_set FLATIRON-ICI: ORR has three results (combined, melanoma,
    NSCLC) but one independent unit, so no sign test can reach p < 0.05 (1 unit: smallest p 1.0)."""
    tests = {st.endpoint: st for st in _narrative(ev, "flatiron-ici").synthesis.sign_tests}
    assert set(tests) == {"ORR", "OS"}
    orr = tests["ORR"]
    assert len(orr.units) == 1 and orr.units[0].patient_set == "FLATIRON-ICI" and len(orr.units[0].rows) == 3
    assert (orr.n, orr.k, orr.pvalue, orr.min_p, orr.min_n) == (1, 1, None, 1.0, 6)
    assert orr.note is SignTestNote.TOO_FEW_INDEPENDENT
    from metaanalysis.render.words import sign_test_text

    text = sign_test_text(orr, vocab.SIGN_TEST_ALPHA)
    assert "1 independent patient set" in text and "count once" in text
    assert "no smaller than 1.00" in text and "at least 6 (smallest p 0.031)" in text


def test_single_arm_proportions_use_exact_intervals_from_the_counts(ev):
    """single-arm rows with events_int / n_int: GCTB 30/35, AOST1321 1/15, 10/38, 0/15."""
    syn = _narrative(ev, "single-arm").synthesis
    assert syn.figures == (NarrativeFigure.PROPORTIONS,)
    got = {p.row_id: p for p in syn.proportions}
    assert set(got) == {"GCTB-RESPONSE-2010", "AOST1321-EFS4-C1", "AOST1321-EFS12-C2", "AOST1321-ORR-C1"}
    for x, n, lo, hi in CP_REFERENCE:
        p = next(q for q in got.values() if (q.events, q.n) == (x, n))
        assert p.source is IntervalSource.EXACT
        assert p.lower == pytest.approx(lo, abs=1e-12) and p.upper == pytest.approx(hi, abs=1e-12)
    assert got["GCTB-RESPONSE-2010"].estimate == 0.86          # the registry's estimate, as reported
    assert syn.sign_tests == ()                                 # no p-value-only result with a direction


def test_estimate_directions_follow_the_registry_orientation(ev):
    """subgroups-not-pooled: HR < 1 favours denosumab; SPLENDOUR bone-mets HR 1.02 and the myeloma
    subgroup HR 2.26 point to harm, the rest to benefit."""
    d = dict(_narrative(ev, "subgroups-not-pooled").synthesis.directions)
    assert d["SPLENDOUR-OS-2020-BONEMETS"] is EffectDirection.HARM
    assert d["ZASOLID-OS-2016-MYELOMA"] is EffectDirection.HARM
    assert d["DCARE-TTBM-2021-AGE50"] is EffectDirection.BENEFIT
    assert _narrative(ev, "subgroups-not-pooled").synthesis.figures == (NarrativeFigure.FOREST,)


def test_independent_units_give_a_sign_test(tmp_path):
    """Six disjoint patient sets, one harm: 5 of 6 benefit, p = 0.21875 (scipy.stats.binomtest(5, 6));
    a patient set whose results disagree is mixed and left out."""
    from metaanalysis.narrative import _sign_test

    rows = {f"R{i}": {"endpoint": "ORR", "patient_set": f"S{i}"} for i in range(7)}
    rows["R6"]["patient_set"] = "S5"
    dirs = {f"R{i}": EffectDirection.BENEFIT for i in range(5)}
    dirs.update(R5=EffectDirection.HARM, R6=EffectDirection.BENEFIT)
    st = _sign_test("ORR", rows, dirs)
    assert (st.n, st.k, st.note) == (5, 5, SignTestNote.TOO_FEW_INDEPENDENT)     # S5 is mixed
    dirs["R6"] = EffectDirection.HARM
    st = _sign_test("ORR", rows, dirs)
    assert (st.n, st.k, st.note) == (6, 5, None) and st.pvalue == pytest.approx(0.21875, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# the plan's directions key
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry,message", [
    ('{ row = "FLATIRON-OS-2018", points_to = "better", source = "x" }', "points_to must be one of benefit, harm"),
    ('{ row = "GCTB-RESPONSE-2010", points_to = "benefit", source = "x" }', "is not one of this section's rows"),
    ('{ row = "FLATIRON-DCR-2018-MEL", points_to = "benefit", source = "x" }', "has an estimate"),
    ('{ row = "FLATIRON-OS-2018", points_to = "benefit" }', "needs a non-empty 'source'"),
    ('{ row = "FLATIRON-OS-2018", points_to = "benefit", source = "x", sign = 1 }', "unknown key 'sign'"),
])
def test_bad_directions_are_located_errors(tmp_path, entry, message):
    reg = load_registry(REGISTRY)
    text = PLAN.read_text(encoding="utf-8")
    start = text.index("directions = [")
    end = text.index("]\n", start) + 2
    p = tmp_path / "analyses.toml"
    p.write_text(text[:start] + f"directions = [\n  {entry},\n]\n" + text[end:], encoding="utf-8")
    with pytest.raises(ProblemError) as ei:
        load_plan(str(p), reg)
    hits = [q for q in ei.value.errors if message in q.message]
    assert hits and hits[0].line == text[:start].count("\n") + 2, [q.format() for q in ei.value.errors]


# ---------------------------------------------------------------------------------------------
# the shipped build: every narrative page carries a figure
# ---------------------------------------------------------------------------------------------


def test_every_narrative_page_carries_a_figure(shipped_build):
    out, summary = shipped_build
    # the cross-question comparisons (os-placebo, bmfs, ttbm, dfs-questions) show their estimates side by side
    expected = {"flatiron-ici": "albatross", "single-arm": "proportions", "subgroups-not-pooled": "forest",
                "os-placebo": "forest", "bmfs": "forest", "ttbm": "forest", "dfs-questions": "forest"}
    assert set(summary.narratives) == set(expected)
    for nid, kind in expected.items():
        html = (out / f"{nid}.html").read_text(encoding="utf-8")
        figs = re.findall(r'<figure class="plot" data-figure="(\w+)">\s*<div class="plot-scroll"><svg ', html)
        assert figs == [kind], (nid, figs)
        data = json.loads((out / f"{nid}.json").read_text(encoding="utf-8"))
        assert data["synthesis"]["figures"] == [kind]


def test_flatiron_page_says_why_no_sign_test_and_keys_every_point(shipped_build):
    out, _ = shipped_build
    html = (out / "flatiron-ici.html").read_text(encoding="utf-8")
    assert 'aria-label="Albatross plot: ' in html
    svg = re.search(r'<svg role="group" aria-label="Albatross plot.*?</svg>', html, re.S).group(0)
    drawn = html_lib.unescape(" ".join(re.findall(r">([^<]*)</text>", svg)))     # wrapped lines joined again
    keys = re.findall(r"\b([1-4]) · .*?\(n = (\d+), (p [<=] [0-9.]+)\)", drawn)
    assert [k for k, _, _ in keys] == ["1", "2", "3", "4"]
    assert {(n, p) for _, n, p in keys} == {("307", "p < 0.0001"), ("66", "p = 0.0172"), ("241", "p < 0.0001")}
    assert ">1, 4</text>" in svg           # ORR combined and OS coincide (n = 307, p < 0.0001): one label
    assert html.count("Sign test not run") == 2
    assert "come from 1 patient set (FLATIRON-ICI): they are not independent" in html
    assert "No effect contours" in html and "An arrow marks a p-value reported only as a bound" in html
    data = json.loads((out / "flatiron-ici.json").read_text(encoding="utf-8"))
    assert [(s["endpoint"], s["n"], s["pvalue"], s["note"]) for s in data["synthesis"]["sign_tests"]] == [
        ("ORR", 1, None, "too-few-independent"), ("OS", 1, None, "too-few-independent")]


def test_single_arm_page_names_how_each_interval_was_made(shipped_build):
    out, _ = shipped_build
    html = (out / "single-arm.html").read_text(encoding="utf-8")
    svg = re.search(r'<svg role="group" aria-label="Proportions plot.*?</svg>', html, re.S).group(0)
    drawn = html_lib.unescape(" ".join(re.findall(r">([^<]*)</text>", svg)))     # wrapped lines joined again
    assert "30/35 · 86% (95% CI 70–95%, exact)" in drawn
    assert "0/15 · 0% (95% CI 0–22%, exact)" in drawn
    assert "computed exactly (Clopper–Pearson)" in html
    assert "Open squares" not in html and "Open dots" not in html      # no reported-only or bare points
    assert not math.isnan(json.loads((out / "single-arm.json").read_text(encoding="utf-8"))
                          ["synthesis"]["proportions"][0]["ci_lower"])


def test_results_in_no_figure_are_named(ev):
    """Rows no figure can show are listed: D-BEYOND (GMR without a CI; TILS not extracted), the
    Flatiron DCR proportions (no denominator); a section of only such rows says it has no figure."""
    from metaanalysis.narrative import synthesise
    from metaanalysis.plan import Narrative
    from metaanalysis.render.words import undrawn_text

    assert _narrative(ev, "single-arm").synthesis.undrawn == ("DBEYOND-KI67", "DBEYOND-TILS")
    assert _narrative(ev, "flatiron-ici").synthesis.undrawn == ("FLATIRON-DCR-2018-MEL", "FLATIRON-DCR-2018-NSCLC")
    only = Narrative("x", "x", ("DBEYOND-KI67", "DBEYOND-TILS"), "r", "", (), 1)
    syn = synthesise(ev.registry, only)
    assert syn.figures == () and syn.undrawn == only.rows
    assert undrawn_text(["a", "b"], False).startswith("No figure:")
    assert undrawn_text([], True) == ""
