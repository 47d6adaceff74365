"""Example forest/funnel specs for development, tests and the gallery.

* BCG vaccine trials (Colditz et al. 1994, JAMA 271:698; metadat ``dat.bcg``),
  log risk ratios, with the pooled REML/Knapp-Hartung numbers copied from
  metafor 3.8-1 (``/work/shared/reference/metafor_bcg_output.txt``).
* Denosumab overall-survival-like hazard ratios (ABCSG-18, Smith 2012,
  SPLENDOUR, D-CARE, Scagliotti 2012) as given in the team brief; the SE of
  D-CARE and Scagliotti comes from a two-sided p-value (marked †).

Pooled numbers for the denosumab example come from :func:`metaanalysis.pool`
(REML), subgroups from :func:`metaanalysis.sensitivity.subgroups`, the funnel's
Egger line from :func:`metaanalysis.sensitivity.egger`. Run ``python -m metaanalysis.plots.examples OUTDIR`` to render.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from ..results import MetaResult
from .forest import ForestRow, ForestSpec, SubgroupBlock, SubgroupTest, forest_rows_from_result
from .funnel import FunnelSpec

Z975 = 1.959963984540054

# dat.bcg: author/year, tpos, tneg, cpos, cneg (metadat 1.2-0)
BCG = (
    ("Aronson, 1948", 4, 119, 11, 128),
    ("Ferguson & Simes, 1949", 6, 300, 29, 274),
    ("Rosenthal et al, 1960", 3, 228, 11, 209),
    ("Hart & Sutherland, 1977", 62, 13536, 248, 12619),
    ("Frimodt-Moller et al, 1973", 33, 5036, 47, 5761),
    ("Stein & Aronson, 1953", 180, 1361, 372, 1079),
    ("Vandiviere et al, 1973", 8, 2537, 10, 619),
    ("TPT Madras, 1980", 505, 87886, 499, 87892),
    ("Coetzee & Berjak, 1968", 29, 7470, 45, 7232),
    ("Rosenthal et al, 1961", 17, 1699, 65, 1600),
    ("Comstock et al, 1974", 186, 50448, 141, 27197),
    ("Comstock & Webster, 1969", 5, 2493, 3, 2338),
    ("Comstock et al, 1976", 27, 16886, 29, 17825),
)


def bcg_yi_vi() -> tuple[np.ndarray, np.ndarray]:
    """Log risk ratios and variances of dat.bcg (metafor ``escalc(measure="RR")``)."""
    a, b, c, d = (np.array([r[i] for r in BCG], float) for i in (1, 2, 3, 4))
    yi = np.log(a / (a + b)) - np.log(c / (c + d))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return yi, vi


def bcg_result() -> MetaResult:
    """REML + Knapp-Hartung result for dat.bcg, numbers from metafor 3.8-1."""
    from scipy import stats

    yi, vi = bcg_yi_vi()
    tau2 = 0.3132
    w = 1 / (vi + tau2)
    return MetaResult(
        k=13, method="REML", test="knha", level=0.95, estimate=-0.7145, se=0.1808,
        stat=-3.9522, df=12, pvalue=0.0019, ci_lower=-1.1084, ci_upper=-0.3206,
        tau2=tau2, tau2_se=0.1664, tau2_ci_lower=0.1197, tau2_ci_upper=1.1115, tau=0.5597,
        i2=92.2214, i2_ci_lower=81.9177, i2_ci_upper=97.6781, h2=12.8558, h2_ci_lower=5.5303,
        h2_ci_upper=43.0680, q=152.2330, q_df=12, q_pvalue=float(stats.chi2.sf(152.2330, 12)),
        pi_lower=math.log(0.1359), pi_upper=math.log(1.7629),
        weights=tuple(float(x) for x in 100 * w / w.sum()), converged=True, iterations=0,
        metafor_call="rma(yi, vi, data=dat, method='REML', test='knha')",
        yi=tuple(map(float, yi)), vi=tuple(map(float, vi)))


def bcg_spec() -> ForestSpec:
    res = bcg_result()
    cells = [(str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in BCG]
    rows = forest_rows_from_result([r[0] for r in BCG], res, cells=cells)
    return ForestSpec(
        title="BCG vaccine and tuberculosis (13 trials)", measure="RR", rows=rows,
        columns=("Vaccinated TB+", "Vaccinated TB−", "Control TB+", "Control TB−"), result=res,
        label_header="Author(s) and year", favours=("Favours vaccine", "Favours control"),
        footnotes=("Data: Colditz et al. 1994 (metadat dat.bcg). REML τ² with Hartung–Knapp "
                   "CI; numbers from metafor 3.8-1.",))


def _pool(yi, vi, level=0.95) -> MetaResult:
    from .. import pool

    return pool(np.asarray(yi, float), np.asarray(vi, float), method="REML", level=level)


def _se_from_ci(lo, hi):
    return (math.log(hi) - math.log(lo)) / (2 * Z975)


def _se_from_p(hr, p):
    from statistics import NormalDist

    return abs(math.log(hr)) / NormalDist().inv_cdf(1 - p / 2)


# label, HR, (lo, hi) or p, design, endpoint, setting, subgroup
DENOSUMAB = (
    ("ABCSG-18 (2019)", 0.80, (0.64, 1.01), "RCT", "OS", "Early BC, adjuvant", "Breast"),
    ("D-CARE (2020)", 1.04, 0.57, "RCT", "DFS", "Early BC, high risk", "Breast"),
    ("Smith 2012", 1.01, (0.85, 1.20), "RCT", "OS", "nmCRPC", "Prostate"),
    ("SPLENDOUR (2020)", 0.96, (0.78, 1.19), "RCT", "OS", "Advanced NSCLC", "Lung"),
    ("Scagliotti 2012 (lung subset)", 0.80, 0.01, "RCT subgroup", "OS", "NSCLC, bone mets",
     "Lung"),
)


def denosumab_data():
    labels, yi, vi, marks, cells, groups, cis = [], [], [], [], [], [], []
    for lab, hr, ci_or_p, design, ep, setting, grp in DENOSUMAB:
        cis.append((math.log(ci_or_p[0]), math.log(ci_or_p[1]))
                   if isinstance(ci_or_p, tuple) else None)
        se = _se_from_ci(*ci_or_p) if isinstance(ci_or_p, tuple) else _se_from_p(hr, ci_or_p)
        labels.append(lab)
        yi.append(math.log(hr))
        vi.append(se * se)
        marks.append("" if isinstance(ci_or_p, tuple) else "†")
        cells.append((design, ep, setting))
        groups.append(grp)
    return labels, np.array(yi), np.array(vi), marks, cells, groups, cis


FOOTNOTE_P = "† SE derived from the reported two-sided p-value (z = Φ⁻¹(1 − p/2))."


def denosumab_spec(subgroups: bool = False) -> ForestSpec:
    labels, yi, vi, marks, cells, groups, cis = denosumab_data()
    res = _pool(yi, vi)
    cols = ("Design", "Endpoint", "Population")
    notes = (FOOTNOTE_P, "Illustrative data for layout development; HR < 1 favours denosumab.")
    if not subgroups:
        rows = forest_rows_from_result(labels, res, cells=cells, marks=marks, cis=cis)
        return ForestSpec(title="Denosumab and survival: randomised evidence", measure="HR",
                          rows=rows, columns=cols, result=res, footnotes=notes)
    from ..sensitivity import subgroups as run_subgroups

    all_rows = forest_rows_from_result(labels, res, cells=cells, marks=marks, cis=cis)
    sg = run_subgroups(yi, vi, groups, method="REML")
    blocks = tuple(SubgroupBlock(g, tuple(all_rows[i] for i, gg in enumerate(groups) if gg == g),
                                 sg.groups[g]) for g in sg.groups)
    test = SubgroupTest(sg.q_between, sg.q_between_df, sg.q_between_pvalue)
    return ForestSpec(title="Denosumab and survival, by tumour type", measure="HR",
                      columns=cols, result=res, subgroups=blocks, subgroup_test=test,
                      footnotes=notes)


def funnel_example() -> FunnelSpec:
    from ..sensitivity import egger

    yi, vi = bcg_yi_vi()
    e = egger(yi, vi, form="rma", method="REML")  # yi = intercept + slope * sei
    return FunnelSpec(yi=tuple(map(float, yi)), vi=tuple(map(float, vi)), measure="RR",
                      result=bcg_result(), title="BCG trials: contour-enhanced funnel plot",
                      egger_intercept=e.intercept, egger_slope=e.slope)


def render_all(outdir: str | Path) -> list[Path]:
    """Render every example as PNG and SVG into ``outdir``; return the paths."""
    from .forest import layout_forest, render_forest
    from .funnel import layout_funnel, render_funnel

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, spec in (("forest_bcg", bcg_spec()), ("forest_denosumab", denosumab_spec()),
                       ("forest_denosumab_subgroups", denosumab_spec(True))):
        lay = layout_forest(spec)
        for fmt in ("png", "svg"):
            p = out / f"{name}.{fmt}"
            render_forest(lay, p, fmt)
            paths.append(p)
    lay = layout_funnel(funnel_example())
    for fmt in ("png", "svg"):
        p = out / f"funnel_bcg.{fmt}"
        render_funnel(lay, p, fmt)
        paths.append(p)
    return paths


if __name__ == "__main__":  # pragma: no cover
    for p in render_all(sys.argv[1] if len(sys.argv) > 1 else "tests/output"):
        print(p)
