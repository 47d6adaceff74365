"""Forest/funnel layout tests: geometry only, nothing is rendered.

Reference values: metafor 3.8-1 output for dat.bcg
(/work/shared/reference/metafor_bcg_output.txt and metafor_forest_bcg.png).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaanalysis.plots._scale import choose_ticks, tick_label
from metaanalysis.plots._text import text_width, wrap
from metaanalysis.plots.examples import bcg_result, bcg_spec, denosumab_spec
from metaanalysis.plots.forest import (ForestRow, ForestSpec, SubgroupBlock, SubgroupTest,
                                       heterogeneity_text, layout_forest)
from metaanalysis.plots.funnel import FunnelSpec, funnel_allowed, layout_funnel
from metaanalysis.results import MetaResult

L = math.log


def _result(est=-0.2, lo=-0.35, hi=-0.05, k=5, weights=None, pi=(-0.6, 0.2)) -> MetaResult:
    w = weights if weights is not None else tuple([100.0 / k] * k)
    return MetaResult(
        k=k, method="REML", test="z", level=0.95, estimate=est, se=(hi - lo) / 3.92, stat=-2.5,
        df=None, pvalue=0.012, ci_lower=lo, ci_upper=hi, tau2=0.02, tau2_se=None,
        tau2_ci_lower=None, tau2_ci_upper=None, tau=0.14, i2=40.0, i2_ci_lower=None,
        i2_ci_upper=None, h2=1.67, h2_ci_lower=None, h2_ci_upper=None, q=6.7, q_df=k - 1,
        q_pvalue=0.15, pi_lower=pi[0] if pi else None, pi_upper=pi[1] if pi else None,
        weights=w, converged=True, iterations=5, metafor_call="rma(yi, vi)")


def _rows(n, label="Trial", cells=0, wscale=None):
    rows = []
    for i in range(n):
        yi = -0.4 + 0.8 * (i % 7) / 6
        rows.append(ForestRow(label=f"{label} {i + 1}", yi=yi, vi=0.01 + 0.02 * (i % 5),
                              weight=(wscale or 1.0) * (1 + i % 9),
                              cells=tuple(f"{10 + i}/{100 + 3 * i}" for _ in range(cells))))
    return tuple(rows)


def _overlaps(a, b, eps=1e-6):
    return a[0] < b[2] - eps and b[0] < a[2] - eps and a[1] < b[3] - eps and b[1] < a[3] - eps


def assert_no_text_overlap(lay):
    boxes = [(t, t.bbox) for t in lay.texts if t.text]
    for i in range(len(boxes)):
        ti, bi = boxes[i]
        # on the page
        assert bi[0] >= -1e-9 and bi[2] <= lay.width + 1e-9, ti
        assert bi[1] >= -1e-9 and bi[3] <= lay.height + 1e-9, ti
        for j in range(i + 1, len(boxes)):
            tj, bj = boxes[j]
            assert not _overlaps(bi, bj), f"{ti.text!r} ({ti.role}) overlaps {tj.text!r} ({tj.role})"
    # table texts stay out of the graphical panel
    px0, py0, px1, py1 = lay.panel
    for t, b in boxes:
        if t.role in ("label", "cell", "weight", "estimate", "header", "subgroup"):
            assert b[2] <= px0 + 1e-9 or b[0] >= px1 - 1e-9, (t.text, t.role)


# ---------------------------------------------------------------- ticks ----

@pytest.mark.parametrize("req,des,expected", [
    # denosumab-like HRs 0.64-1.20 around a null of 1
    ((0.8, 1.04), (0.64, 1.2), ("0.6", "0.8", "1", "1.2")),
    # BCG (metafor figure spans 0.05-4): whiskers 0.07-6.53
    ((0.136, 1.76), (0.07, 6.53), ("0.05", "0.1", "0.2", "0.5", "1", "2", "5")),
    ((0.3, 3.0), (0.1, 10.0), ("0.1", "0.2", "0.5", "1", "2", "5", "10")),
    ((0.95, 1.05), (0.9, 1.1), ("0.9", "0.95", "1", "1.05", "1.1")),
    ((0.2, 1.0), (0.1, 1.0), ("0.1", "0.2", "0.5", "1")),
])
def test_log_ticks_known_ranges(req, des, expected):
    t = choose_ticks(L(req[0]), L(req[1]), L(des[0]), L(des[1]), log=True)
    assert t.labels == expected
    assert t.lo <= L(req[0]) + 1e-12 and t.hi >= L(req[1]) - 1e-12


@settings(max_examples=200, deadline=None)
@given(a=st.floats(-4, 4), w=st.floats(0.01, 5), extra=st.floats(0, 3))
def test_log_ticks_properties(a, w, extra):
    req_lo, req_hi = min(a, 0.0), max(a + w, 0.0)  # the null (log 1 = 0) is always required
    t = choose_ticks(req_lo, req_hi, req_lo - extra, req_hi + extra, log=True)
    assert 4 <= len(t.values) <= 7
    assert t.lo <= req_lo + 1e-9 and t.hi >= req_hi - 1e-9
    assert list(t.values) == sorted(t.values)
    for lab in t.labels:
        assert "e" not in lab and "×" not in lab and "^" not in lab
        float(lab)  # plain decimal
        assert len(lab) <= 6, lab


def test_linear_ticks_include_zero_and_are_nice():
    t = choose_ticks(-0.1, 0.05, -0.3, 0.2, log=False)
    assert t.labels == ("-0.3", "-0.2", "-0.1", "0", "0.1", "0.2")
    t = choose_ticks(0.0, 0.4, -0.1, 0.9, log=False)
    assert "0" in t.labels and 4 <= len(t.labels) <= 7


def test_tick_label_no_scientific():
    assert tick_label(0.25) == "0.25" and tick_label(1.0) == "1" and tick_label(0.001) == "0.001"


# ------------------------------------------------------------- forest ------

def test_bcg_texts_match_metafor():
    # metafor_forest_bcg.png: Aronson 0.41 [0.13, 1.26] weight 5.06%; RE 0.49 [0.33, 0.73]
    lay = layout_forest(bcg_spec())
    txt = [t.text for t in lay.texts]
    assert "0.41 [0.13, 1.26]" in txt and "5.1%" in txt
    assert "0.49 [0.33, 0.73]" in txt and "100.0%" in txt
    assert "[0.14, 1.76]" in txt  # predict(res, transf=exp): pi 0.1359 1.7629
    assert heterogeneity_text(bcg_result()) == (
        "Heterogeneity: τ² = 0.31; I² = 92.2%; Q = 152.23, df = 12, p < 0.001")
    assert "Test for overall effect: t(12) = −3.95, p = 0.002" in txt  # tval -3.9522, p 0.0019
    assert_no_text_overlap(lay)


@pytest.mark.parametrize("measure,ys", [("HR", (-1.2, -0.9, -0.5)), ("MD", (2.0, 3.0, 5.0)),
                                        ("OR", (0.4, 0.8, 1.1)), ("SMD", (-0.8, -0.3, -0.1))])
def test_limits_include_null(measure, ys):
    rows = tuple(ForestRow(f"S{i}", y, vi=0.01) for i, y in enumerate(ys))
    lay = layout_forest(ForestSpec(measure=measure, rows=rows))
    lo, hi = lay.xlim
    assert lo <= 0.0 <= hi
    px0, _, px1, _ = lay.panel
    assert px0 - 1e-9 <= lay.null_x <= px1 + 1e-9
    assert_no_text_overlap(lay)


def test_clipping_flags_and_arrows():
    rows = (ForestRow("tight", -0.2, ci=(-0.3, -0.1), weight=60),
            ForestRow("huge", 0.0, ci=(L(0.01), L(100)), weight=5),
            ForestRow("right", 0.1, ci=(-0.05, 0.25), weight=35))
    lay = layout_forest(ForestSpec(rows=rows, result=_result(k=3, weights=(60, 5, 35))))
    w = {r.label: wh for r, wh in zip([r for r in lay.rows if r.kind == "study"], lay.whiskers)}
    assert w["huge"].clip_left and w["huge"].clip_right
    assert not (w["tight"].clip_left or w["tight"].clip_right)
    assert not (w["right"].clip_left or w["right"].clip_right)
    px0, _, px1, _ = lay.panel
    assert w["huge"].x0 == pytest.approx(px0) and w["huge"].x1 == pytest.approx(px1)
    # the axis did not stretch to 0.01-100 for one study
    assert math.exp(lay.xlim[0]) >= 0.1 and math.exp(lay.xlim[1]) <= 10


def test_box_area_proportional_to_weight_and_monotone():
    rows = tuple(ForestRow(f"S{i}", -0.1 * i, vi=0.02, weight=w)
                 for i, w in enumerate([2, 4, 8, 16, 32, 38]))
    lay = layout_forest(ForestSpec(rows=rows))
    halves = [b.half for b in lay.boxes]
    assert halves == sorted(halves) and len(set(halves)) == len(halves)
    # area ∝ weight where the minimum size does not bind: 32 vs 16 -> area ratio 2
    assert (halves[4] / halves[3]) ** 2 == pytest.approx(2.0, rel=1e-9)
    # the biggest box stays inside its row
    assert 2 * halves[-1] < 0.8 * (lay.rows[1].y - lay.rows[0].y)


@pytest.mark.parametrize("n", [1, 5, 40])
def test_no_overlap_many_rows(n):
    spec = ForestSpec(title="A title " * 3, rows=_rows(n, cells=2),
                      columns=("Events/N denosumab", "Events/N control"),
                      result=_result(k=n, weights=tuple([100 / n] * n)),
                      common=replace(_result(k=n), method="FE"),
                      footnotes=("† SE from p-value.",))
    lay = layout_forest(spec)
    assert sum(r.kind == "study" for r in lay.rows) == n
    ys = [r.y for r in lay.rows]
    assert ys == sorted(ys)
    assert_no_text_overlap(lay)


def test_long_label_wraps_without_overlap():
    long = ("A very long study label that keeps going with the trial acronym, the year, the "
            "population, the setting and then some more words")[:120]
    assert len(long) == 120
    rows = (ForestRow(long, -0.2, vi=0.02, weight=50), ForestRow("Short", 0.1, vi=0.03, weight=50))
    spec = ForestSpec(rows=rows, result=_result(k=2, weights=(50, 50)), max_label_width=3.0)
    lay = layout_forest(spec)
    label_lines = [t for t in lay.texts if t.role == "label" and t.text != "Short"
                   and not t.text.startswith(("Random", "Prediction"))]
    assert len(label_lines) >= 2  # wrapped
    assert " ".join(t.text for t in label_lines) == long
    for t in label_lines:
        assert text_width(t.text, t.size) <= 3.0 + 1e-9
    assert_no_text_overlap(lay)
    # an unbreakable 120-character word is broken too
    word = "X" * 120
    lay2 = layout_forest(ForestSpec(rows=(ForestRow(word, 0.0, vi=0.01),)))
    assert "".join(t.text for t in lay2.texts if t.role == "label") == word
    assert_no_text_overlap(lay2)


def test_column_widths_grow_with_label_length():
    xs = []
    for n in (5, 20, 40):
        lay = layout_forest(ForestSpec(rows=(ForestRow("L" * n, 0.0, vi=0.01),),
                                       max_label_width=6.0))
        xs.append(lay.panel[0])
    assert xs[0] < xs[1] < xs[2]
    # an extra column widens with its longest cell
    a = layout_forest(ForestSpec(rows=(ForestRow("S", 0.0, vi=0.01, cells=("12/100",)),),
                                 columns=("Events",)))
    b = layout_forest(ForestSpec(rows=(ForestRow("S", 0.0, vi=0.01, cells=("12345/1000000",)),),
                                 columns=("Events",)))
    assert b.panel[0] > a.panel[0]
    assert_no_text_overlap(b)


def test_subgroup_ordering_and_texts():
    spec = denosumab_spec(subgroups=True)
    lay = layout_forest(spec)
    kinds = [(r.kind, r.group) for r in lay.rows if r.kind != "note"]
    assert kinds == [
        ("subgroup", "Breast"), ("study", "Breast"), ("study", "Breast"), ("subtotal", "Breast"),
        ("subgroup", "Prostate"), ("study", "Prostate"),  # one study: no subtotal
        ("subgroup", "Lung"), ("study", "Lung"), ("study", "Lung"), ("subtotal", "Lung"),
        ("pooled", None), ("pi", None)]
    studies = [r.label for r in lay.rows if r.kind == "study"]
    assert studies == ["ABCSG-18 (2019)", "D-CARE (2020)", "Smith 2012", "SPLENDOUR (2020)",
                       "Scagliotti 2012 (lung subset)"]
    txt = [t.text for t in lay.texts]
    assert any(s.startswith("Test for subgroup differences: Q = ") for s in txt)
    assert "D-CARE (2020)†" in txt
    # reported CIs are shown as reported (brief: ABCSG-18 0.80 (0.64-1.01))
    assert "0.80 [0.64, 1.01]" in txt
    assert len(lay.diamonds) == 3  # two subtotals (Breast, Lung) + overall
    assert_no_text_overlap(lay)


def test_single_study_subgroup_has_no_subtotal_nor_heterogeneity():
    # os-placebo by setting: ABCSG-18 alone in "adjuvant", reported HR 0.80 (0.64-1.01)
    # (trials/registry.csv, ABCSG18-OS-2022); its k = 1 "pooled" CI from the SE is 0.64-1.00
    yi = L(0.80)
    se = (L(1.01) - L(0.64)) / (2 * 1.959964)
    one = MetaResult(
        k=1, method="REML", test="z", level=0.95, estimate=yi, se=se, stat=yi / se, df=None,
        pvalue=0.06, ci_lower=yi - 1.959964 * se, ci_upper=yi + 1.959964 * se, tau2=0.0,
        tau2_se=None, tau2_ci_lower=None, tau2_ci_upper=None, tau=0.0, i2=0.0, i2_ci_lower=None,
        i2_ci_upper=None, h2=1.0, h2_ci_lower=None, h2_ci_upper=None, q=0.0, q_df=0,
        q_pvalue=1.0, pi_lower=None, pi_upper=None, weights=(100.0,), converged=True,
        iterations=0, metafor_call="")
    abcsg = ForestRow("ABCSG-18 (Gnant 2022)", yi, vi=se * se, ci=(L(0.64), L(1.01)), weight=40.0)
    spec = ForestSpec(subgroups=(SubgroupBlock("adjuvant", (abcsg,), one),
                                 SubgroupBlock("metastatic", _rows(2), _result(k=2))),
                      result=_result(k=3), subgroup_test=SubgroupTest(q=1.2, df=1, pvalue=0.27))
    lay = layout_forest(spec)
    adj = [(r.kind, r.label) for r in lay.rows if r.group == "adjuvant"]
    assert adj == [("subgroup", "adjuvant"), ("study", "ABCSG-18 (Gnant 2022)")]
    met = [r.kind for r in lay.rows if r.group == "metastatic"]
    assert met.count("subtotal") == 1 and met.count("note") >= 1  # k = 2 keeps its diamond
    txt = [t.text for t in lay.texts]
    assert "0.80 [0.64, 1.01]" in txt and "0.80 [0.64, 1.00]" not in txt
    assert txt.count("Subtotal") == 1
    assert len(lay.diamonds) == 2
    assert_no_text_overlap(lay)


def test_subgroup_test_text_format():
    spec = ForestSpec(subgroups=(SubgroupBlock("A", _rows(2), _result(k=2)),),
                      subgroup_test=SubgroupTest(q=3.456, df=2, pvalue=0.0004))
    txt = [t.text for t in layout_forest(spec).texts]
    assert "Test for subgroup differences: Q = 3.46, df = 2, p < 0.001" in txt


def test_unpooled_row_open_box_and_dash_weight():
    rows = (ForestRow("pooled", -0.1, vi=0.02, weight=100.0),
            ForestRow("not pooled", 0.2, vi=0.05, pooled=False, marks="‡"))
    lay = layout_forest(ForestSpec(rows=rows))
    assert [b.filled for b in lay.boxes] == [True, False]
    assert "–" in [t.text for t in lay.texts if t.role == "weight"]
    assert "not pooled‡" in [t.text for t in lay.texts]


def test_ratio_axis_labels_and_favours():
    lay = layout_forest(denosumab_spec())
    txt = [t.text for t in lay.texts]
    assert "← Favours denosumab" in txt and "Favours control →" in txt
    assert "Hazard ratio (log scale)" in txt
    ticks = [t.text for t in lay.texts if t.role == "tick"]
    assert "1" in ticks
    fav = [t for t in lay.texts if t.role == "favours"]
    assert fav[0].bbox[2] <= lay.null_x <= fav[1].bbox[0]


def test_favours_near_page_edge_stay_on_page():
    # everything far below the null: null at the right edge of the panel
    rows = tuple(ForestRow(f"S{i}", L(0.2) + 0.05 * i, vi=0.004) for i in range(3))
    lay = layout_forest(ForestSpec(rows=rows, favours=("Favours a much longer treatment label",
                                                       "Favours the control arm, also long")))
    assert_no_text_overlap(lay)


def test_wrap_measures_text():
    width = max(text_width("alpha beta", 9), text_width("gamma delta", 9))
    assert text_width("alpha beta gamma", 9) > width
    lines = wrap("alpha beta gamma delta", width, 9)
    assert lines == ["alpha beta", "gamma delta"]


def test_bad_cell_count_is_an_error():
    with pytest.raises(ValueError, match="cells"):
        layout_forest(ForestSpec(rows=(ForestRow("S", 0.0, vi=0.1, cells=("a",)),),
                                 columns=("A", "B")))


# ------------------------------------------------------------- funnel ------

def test_funnel_allowed_threshold():
    # Sterne et al. 2011 (BMJ 343:d4002): at least 10 studies
    assert funnel_allowed(10) == (True, "")
    ok, why = funnel_allowed(9)
    assert not ok and "9 studies" in why and "10" in why
    assert funnel_allowed(5, min_k=5)[0]


def test_funnel_layout_geometry():
    res = bcg_result()
    spec = FunnelSpec(yi=res.yi, vi=res.vi, measure="RR", result=res,
                      egger_intercept=-0.5, egger_slope=-1.0)
    lay = layout_funnel(spec)
    lo, hi = lay.xlim
    assert lo <= 0.0 <= hi and lo <= min(res.yi) and hi >= max(res.yi)
    ytop = lay.ylim[1]
    assert ytop >= max(math.sqrt(v) for v in res.vi)
    lines = {lab: pts for lab, _, pts in lay.lines}
    pse = lines["Pseudo 95% CI"]
    assert pse[1] == (res.estimate, 0.0)
    assert pse[0][0] == pytest.approx(res.estimate - 1.959964 * ytop, rel=1e-6)
    assert lines["Egger regression"] == ((-0.5, 0.0), (-0.5 - 1.0 * ytop, ytop))
    # contours symmetric about the null: z = 1.645 (p = .10) edge at SE = ytop
    inner = [poly for lab, _, poly in lay.regions if lab.startswith("0.05 <")]
    assert sorted(p[1][0] for p in inner) == pytest.approx([-1.644854 * ytop, 1.644854 * ytop],
                                                          rel=1e-6)
    assert [lab for lab, _, _ in lay.regions][::2] == ["0.05 < p ≤ 0.10", "0.01 < p ≤ 0.05",
                                                       "p ≤ 0.01"]
    assert all("e" not in s for s in lay.xticks.labels)


def test_funnel_without_egger_or_result():
    lay = layout_funnel(FunnelSpec(yi=(0.1, -0.2, 0.3), vi=(0.01, 0.04, 0.09), measure="MD"))
    assert [lab for lab, _, _ in lay.lines] == ["null"]
    assert lay.xlabel == "Mean difference"


def _fav_check(lay):
    fav = [t for t in lay.texts if t.role == "favours"]
    left = [t for t in fav if t.ha == "right"]
    right = [t for t in fav if t.ha == "left"]
    px0, _, px1, _ = lay.panel
    for t in fav:  # inside the figure
        b = t.bbox
        assert 0 <= b[0] and b[2] <= lay.width and 0 <= b[1] and b[3] <= lay.height, t
    for t in left:  # under the left half of the axis
        assert px0 - 1e-9 <= t.bbox[0] and t.bbox[2] <= lay.null_x + 1e-9, (t.text, t.bbox, lay.null_x)
    for t in right:
        assert lay.null_x - 1e-9 <= t.bbox[0] and t.bbox[2] <= px1 + 1e-9, (t.text, t.bbox, px1)
    for a in left:
        for b in right:
            assert not _overlaps(a.bbox, b.bbox), (a.text, b.text)
    # at least one tick strictly on each side of the null (0 on the analysis scale)
    assert min(lay.ticks.values) < -1e-9 and max(lay.ticks.values) > 1e-9, lay.ticks.labels
    return left, right


def test_sre_zoledronic_axis_extends_past_the_null_and_favours_fit():
    # trials/registry.csv (DMAB-ZA-*): HR 0.82 (0.71-0.95), 0.82 (0.71-0.95), 0.84 (0.71-0.98),
    # every interval below 1: the axis used to end exactly at the null (ticks 0.7 ... 1), and
    # "Favours zoledronic acid →" ran past the end of the axis
    rows = tuple(ForestRow(n, L(e), ci=(L(lo), L(hi)), weight=w) for n, e, lo, hi, w in [
        ("DMAB-ZA-BREAST (Stopeck 2010)", 0.82, 0.71, 0.95, 35.5),
        ("DMAB-ZA-CRPC (Fizazi 2011)", 0.82, 0.71, 0.95, 35.5),
        ("DMAB-ZA-SOLID (Henry 2011)", 0.84, 0.71, 0.98, 29.0)])
    res = _result(est=L(0.83), lo=L(0.80), hi=L(0.85), k=3, pi=(L(0.80), L(0.85)))
    lay = layout_forest(ForestSpec(rows=rows, result=res,
                                   favours=("Favours denosumab", "Favours zoledronic acid")))
    left, right = _fav_check(lay)
    assert " ".join(t.text for t in left) == "← Favours denosumab"
    assert " ".join(t.text for t in right) == "Favours zoledronic acid →"
    assert lay.ticks.labels[-1] != "1"
    assert_no_text_overlap(lay)


@pytest.mark.parametrize("hrs", [(0.2, 0.3, 0.45), (0.7, 0.8, 0.9), (1.2, 1.5, 3.0), (0.6, 1.0, 1.4),
                                 (0.97, 0.99, 0.995), (1.001, 1.01, 1.02)])
@pytest.mark.parametrize("fav", [("Favours denosumab", "Favours placebo"),
                                 ("Favours a much longer treatment label", "Favours the control arm, also long"),
                                 ("Favours denosumab", "")])
def test_favours_labels_under_their_half(hrs, fav):
    rows = tuple(ForestRow(f"S{i}", L(h), vi=0.01) for i, h in enumerate(hrs))
    lay = layout_forest(ForestSpec(rows=rows, favours=fav))
    _fav_check(lay)
    assert_no_text_overlap(lay)


@pytest.mark.parametrize("measure,title", [
    ("HR", "Hazard ratio (log scale)"), ("or", "Odds ratio (log scale)"),
    ("RR", "Risk ratio (log scale)"), ("RD", "Risk difference"), ("MD", "Mean difference"),
    ("SMD", "Standardised mean difference"),
])
def test_axis_title_and_null_follow_the_measure(measure, title):
    # issue #10: names, scale and null come from metaanalysis.vocab (not a plot-local table)
    from metaanalysis import vocab

    m = vocab.measure(measure)
    rows = tuple(ForestRow(f"S{i}", y, vi=0.02) for i, y in enumerate((0.3, 0.5, 0.9)))
    lay = layout_forest(ForestSpec(measure=measure, rows=rows))
    assert lay.log is m.log_scale
    assert [t.text for t in lay.texts if t.role == "axis_label"] == [title]
    null = math.log(m.null) if m.log_scale else m.null          # 0 on the analysis scale
    assert lay.null_x == pytest.approx(lay.x_of(null), abs=1e-12)
    tick_at_null = lay.ticks.labels[lay.ticks.values.index(null)]
    assert float(tick_at_null) == m.null                       # "1" for ratios, "0" for differences
    fun = layout_funnel(FunnelSpec(yi=(0.3, 0.5, 0.9), vi=(0.02, 0.03, 0.05), measure=measure))
    assert fun.xlabel == title and fun.log is m.log_scale
    assert dict((lab, pts) for lab, _, pts in fun.lines)["null"] == ((null, 0.0), (null, fun.ylim[1]))


@pytest.mark.parametrize("measure", ["PROP", "PVAL", "IRR", "ROM", "XYZ"])
def test_measures_without_a_null_or_unknown_are_refused(measure):
    # a proportion or a bare p-value has no null to centre a forest or funnel plot on; IRR and
    # ROM are not in the vocabulary (no caller used them)
    rows = (ForestRow("S1", 0.2, vi=0.01),)
    with pytest.raises(ValueError, match="measure"):
        layout_forest(ForestSpec(measure=measure, rows=rows))
    with pytest.raises(ValueError, match="measure"):
        layout_funnel(FunnelSpec(yi=(0.2, 0.3), vi=(0.01, 0.02), measure=measure))
