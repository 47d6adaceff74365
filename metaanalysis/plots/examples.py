"""Example forest/funnel specs for development, tests and the gallery.

* BCG vaccine trials (Colditz et al. 1994, JAMA 271:698; metadat ``dat.bcg``),
  log risk ratios, with the pooled REML/Knapp-Hartung numbers copied from
  metafor 3.8-1 (``/work/shared/reference/metafor_bcg_output.txt``).
* Denosumab overall-survival-like hazard ratios (ABCSG-18, Smith 2012,
  SPLENDOUR, D-CARE, Scagliotti 2012) as given in the team brief; the SE of
  D-CARE and Scagliotti comes from a two-sided p-value (marked †).

Pooled numbers for the denosumab example come from :func:`metaanalysis.pool`
when it exists, otherwise from a DerSimonian-Laird stand-in (DerSimonian &
Laird 1986, doi:10.1016/0197-2456(86)90046-2) that is only good enough to
draw a picture. Run ``python -m metaanalysis.plots.examples OUTDIR`` to render.
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
    """``metaanalysis.pool`` if present, else a DerSimonian-Laird stand-in."""
    try:
        from .. import pool  # type: ignore[attr-defined]
        return pool(np.asarray(yi, float), np.asarray(vi, float), method="REML", level=level)
    except (ImportError, AttributeError):
        pass
    from scipy import stats

    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    k = len(yi)
    w = 1 / vi
    mu_fe = np.sum(w * yi) / w.sum()
    q = float(np.sum(w * (yi - mu_fe) ** 2))
    c = w.sum() - np.sum(w ** 2) / w.sum()
    tau2 = max(0.0, (q - (k - 1)) / c) if k > 1 else 0.0
    ws = 1 / (vi + tau2)
    mu = float(np.sum(ws * yi) / ws.sum())
    se = float(math.sqrt(1 / ws.sum()))
    z = stats.norm.ppf(1 - (1 - level) / 2)
    i2 = max(0.0, (q - (k - 1)) / q * 100) if q > 0 and k > 1 else 0.0
    if k > 2:
        t = stats.t.ppf(1 - (1 - level) / 2, k - 2)
        pil, piu = mu - t * math.sqrt(tau2 + se ** 2), mu + t * math.sqrt(tau2 + se ** 2)
    else:
        pil = piu = None
    return MetaResult(
        k=k, method="DL", test="z", level=level, estimate=mu, se=se, stat=mu / se, df=None,
        pvalue=float(2 * stats.norm.sf(abs(mu / se))), ci_lower=mu - z * se, ci_upper=mu + z * se,
        tau2=tau2, tau2_se=None, tau2_ci_lower=None, tau2_ci_upper=None, tau=math.sqrt(tau2),
        i2=i2, i2_ci_lower=None, i2_ci_upper=None, h2=100 / (100 - i2) if i2 < 100 else math.inf,
        h2_ci_lower=None, h2_ci_upper=None, q=q, q_df=k - 1,
        q_pvalue=float(stats.chi2.sf(q, k - 1)) if k > 1 else 1.0, pi_lower=pil, pi_upper=piu,
        weights=tuple(float(x) for x in 100 * ws / ws.sum()), converged=True, iterations=0,
        metafor_call="rma(yi, vi, method='DL')", yi=tuple(map(float, yi)),
        vi=tuple(map(float, vi)))


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
    all_rows = forest_rows_from_result(labels, res, cells=cells, marks=marks, cis=cis)
    blocks, ests, ses = [], [], []
    for g in dict.fromkeys(groups):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        sub = _pool(yi[idx], vi[idx])
        blocks.append(SubgroupBlock(g, tuple(all_rows[i] for i in idx), sub))
        ests.append(sub.estimate)
        ses.append(sub.se)
    from scipy import stats

    e, s = np.array(ests), np.array(ses)
    w = 1 / s ** 2
    qb = float(np.sum(w * (e - np.sum(w * e) / w.sum()) ** 2))
    test = SubgroupTest(qb, len(blocks) - 1, float(stats.chi2.sf(qb, len(blocks) - 1)))
    return ForestSpec(title="Denosumab and survival, by tumour type", measure="HR",
                      columns=cols, result=res, subgroups=tuple(blocks), subgroup_test=test,
                      footnotes=notes)


def _egger_classic(yi, vi) -> tuple[float, float]:
    """Classic Egger fit ``yi/sei = b0 + b1/sei`` by OLS (Egger et al. 1997,
    doi:10.1136/bmj.315.7109.629); illustration only, the real one lives in
    :mod:`metaanalysis.sensitivity`."""
    sei = np.sqrt(vi)
    X = np.column_stack([np.ones_like(sei), 1 / sei])
    (b0, b1), *_ = np.linalg.lstsq(X, yi / sei, rcond=None)
    return float(b0), float(b1)


def funnel_example() -> FunnelSpec:
    yi, vi = bcg_yi_vi()
    b0, b1 = _egger_classic(yi, vi)
    # funnel coordinates: yi = b1 + b0 * sei
    return FunnelSpec(yi=tuple(map(float, yi)), vi=tuple(map(float, vi)), measure="RR",
                      result=bcg_result(), title="BCG trials: contour-enhanced funnel plot",
                      egger_intercept=b1, egger_slope=b0)


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
