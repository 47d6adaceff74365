"""Sensitivity analyses: leave-one-out, cumulative, influence, Egger's test, meta-regression, subgroups.

All are pure functions of ``(yi, vi)`` (plus a grouping, an order or moderators) and reuse
:func:`metaanalysis.pooling.pool_many` (intercept-only refits) or
:mod:`metaanalysis.regression` (models with moderators), so every refit uses exactly the
estimator, test and level of the main analysis, as metafor's ``leave1out``/``cumul``/
``influence``/``regtest`` do, for every τ² estimator and test (Viechtbauer & Cheung 2010,
doi:10.1002/jrsm.11). Conformance: tests/test_sensitivity_metafor.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _dist as dist
from . import vocab
from .pooling import check_args, pool, pool_many
from .regression import MetaRegression, centre_effects, design_matrix, fit_meta_regression
from .results import MetaResult

__all__ = [
    "leave_one_out", "cumulative", "influence", "Influence", "egger", "EggerResult", "subgroups",
    "SubgroupResult", "meta_regression", "MetaRegression", "EGGER_MIN_K", "REGRESSION_METHODS",
]

#: Below this many studies Egger's test has too little power to be interpreted
#: (Sterne et al. 2011, doi:10.1136/bmj.d4002; Cochrane Handbook 13.3.5.4): the vocabulary's rule.
EGGER_MIN_K = vocab.EGGER_MIN_K
#: Models :func:`meta_regression` (and so Egger's rma form and common-τ² subgroups) fit: every
#: τ² estimator and the common-effect model.
REGRESSION_METHODS = tuple(vocab.METHODS)


def _arrays(yi, vi):
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    if yi.ndim != 1 or yi.shape != vi.shape:
        raise ValueError("yi and vi must be 1-D arrays of the same length")
    return yi, vi


def leave_one_out(yi, vi, *, method="REML", test="z", level=0.95, pi="metafor") -> list[MetaResult]:
    """Refit with each study left out in turn (metafor ``leave1out``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    method, test, level, pi
        As for :func:`metaanalysis.pooling.pool` (codes in any case; level 0.95 or 95).

    Returns
    -------
    list of MetaResult, length k
        Entry i is the fit without study i.
    """
    method, test, level, pi = check_args(method, test, level, pi)
    yi, vi = _arrays(yi, vi)
    k = yi.size
    if k < 2:
        raise ValueError("leave-one-out needs at least 2 studies")
    Y = np.array([np.delete(yi, i) for i in range(k)])
    V = np.array([np.delete(vi, i) for i in range(k)])
    res = pool_many(Y, V, method=method, test=test, level=level, pi=pi)
    return [res.row(i) for i in range(k)]


def cumulative(yi, vi, *, order=None, method="REML", test="z", level=0.95,
               pi="metafor") -> list[MetaResult]:
    """Cumulative meta-analysis (metafor ``cumul``): step j pools the first j studies.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    order : array_like, shape (k,), optional
        Sort key (e.g. publication year); stable sort, input order by default.
    method, test, level, pi
        As for :func:`metaanalysis.pooling.pool`.

    Returns
    -------
    list of MetaResult, length k, in the sorted order.
    """
    method, test, level, pi = check_args(method, test, level, pi)
    yi, vi = _arrays(yi, vi)
    k = yi.size
    idx = np.arange(k) if order is None else np.argsort(np.asarray(order), kind="stable")
    ys, vs = yi[idx], vi[idx]
    Y = np.full((k, k), np.nan)
    V = np.full((k, k), np.nan)
    for j in range(k):
        Y[j, : j + 1] = ys[: j + 1]
        V[j, : j + 1] = vs[: j + 1]
    res = pool_many(Y, V, method=method, test=test, level=level, pi=pi)
    return [res.row(j) for j in range(k)]


@dataclass(frozen=True)
class Influence:
    """Case-deletion diagnostics of an intercept-only model (metafor ``influence.rma.uni``).

    Every array has shape (k,), in input order. ``hat`` is a fraction, ``weight`` a percent;
    ``dfbetas`` is metafor's ``dfbs`` of the intercept; ``is_influential`` is metafor's
    "*" rule (|DFFITS| > 3√(1/(k−1)), Cook's distance above the χ²(1) median, hat > 3/k
    or |DFBETAS| > 1).
    """

    rstudent: np.ndarray
    dffits: np.ndarray
    cooks_distance: np.ndarray
    cov_r: np.ndarray
    tau2_del: np.ndarray
    q_del: np.ndarray
    hat: np.ndarray
    weight: np.ndarray
    dfbetas: np.ndarray
    is_influential: np.ndarray


def _deletion_scale(V, d):
    """Knapp-Hartung scale s²w of each deletion fit: its (scaled) variance over the unscaled
    1/Σw, so exactly the rule :func:`metaanalysis.pooling.pool_many` applied (1 for test z and
    for a k − 1 = 1 refit, which falls back to z as in metafor)."""
    return d.se**2 * (1.0 / (V + d.tau2[:, None])).sum(1)


def influence(yi, vi, *, method="REML", test="z") -> Influence:
    """Case-deletion diagnostics (metafor ``influence.rma.uni``) for every estimator and test.

    Parameters
    ----------
    yi, vi : array_like, shape (k,), k >= 2
    method, test
        As for :func:`metaanalysis.pooling.pool` (the diagnostics use no level or PI).

    Returns
    -------
    Influence
        With s²w₍₋ᵢ₎ the Knapp-Hartung scale of the fit without study i (1 for test z) and
        vb the full model's (scaled) variance: rstudent = (yᵢ − μ̂₍₋ᵢ₎)/√(s²w₍₋ᵢ₎(vᵢ + τ²₍₋ᵢ₎)
        + vb₍₋ᵢ₎); DFFITS = (μ̂ − μ̂₍₋ᵢ₎)/√(s²w₍₋ᵢ₎ hᵢ (τ²₍₋ᵢ₎ + vᵢ)); Cook's distance
        (μ̂ − μ̂₍₋ᵢ₎)²/vb; cov.r = vb₍₋ᵢ₎/vb; DFBETAS = (μ̂ − μ̂₍₋ᵢ₎)/√(s²w₍₋ᵢ₎/Σⱼ 1/(vⱼ + τ²₍₋ᵢ₎))
        (sum over all k studies), as metafor computes them.

    Notes
    -----
    Viechtbauer W, Cheung MW-L (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125. doi:10.1002/jrsm.11
    """
    method, test, _, _ = check_args(method, test, 0.95, "metafor")
    yi, vi = _arrays(yi, vi)
    k = yi.size
    if k < 2:
        raise ValueError("influence diagnostics need at least 2 studies")
    full = pool_many(yi[None, :], vi[None, :], method=method, test=test, tau2_ci=False)
    Y = np.array([np.delete(yi, i) for i in range(k)])
    V = np.array([np.delete(vi, i) for i in range(k)])
    d = pool_many(Y, V, method=method, test=test, tau2_ci=False)
    s2w = _deletion_scale(V, d)
    w = 1.0 / (vi + full.tau2[0])
    hat = w / w.sum()
    vb = float(full.se[0]) ** 2            # knha-scaled where test != "z", as in metafor
    vb_del = d.se**2
    resid = yi - d.estimate
    resid[np.abs(resid) < 100 * np.finfo(float).eps] = 0.0
    diff = float(full.estimate[0]) - d.estimate
    with np.errstate(divide="ignore", invalid="ignore"):
        rstudent = resid / np.sqrt(s2w * (vi + d.tau2) + vb_del)
        dffits = diff / np.sqrt(s2w * hat * (d.tau2 + vi))
        vb_all = 1.0 / (1.0 / (vi[None, :] + d.tau2[:, None])).sum(1)
        dfbetas = diff / np.sqrt(s2w * vb_all)
        cooks = diff**2 / vb
        cov_r = vb_del / vb
    infl = ((np.abs(dffits) > 3 * np.sqrt(1.0 / (k - 1))) | (dist.chi2_sf(cooks, 1) < 0.5)
            | (hat > 3.0 / k) | (np.abs(dfbetas) > 1))
    return Influence(rstudent=rstudent, dffits=dffits, cooks_distance=cooks, cov_r=cov_r,
                     tau2_del=d.tau2.copy(), q_del=d.q.copy(), hat=hat, weight=100 * hat,
                     dfbetas=dfbetas, is_influential=infl)


# ---------------------------------------------------------------------------
# Meta-regression
# ---------------------------------------------------------------------------

def meta_regression(yi, vi, X, *, method="REML", test="z", level=0.95, tau2=None) -> MetaRegression:
    """Mixed-effects meta-regression (metafor ``rma.uni(yi, vi, mods = ...)``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    X : mapping of name -> array_like (k,), array_like (k,) or array_like (k, p)
        Moderators. A mapping (e.g. ``{"ablat": lat, "alloc": alloc}``) gives metafor's
        ``mods = ~ ablat + alloc``: an intercept plus one column per numeric moderator,
        and string/boolean moderators as factors, dummy-coded with the first level in
        sorted order as the reference (R's default). A 1-D array is one continuous
        moderator. A 2-D array is the design matrix as given (metafor ``mods = X,
        intercept = FALSE``; an all-ones column counts as the intercept).
    method : str
        Every τ² estimator of :data:`metaanalysis.vocab.TAU2_ESTIMATORS` and "FE" (any case);
        ML/REML are the global optimum (metafor's Fisher scoring can stop at a local one).
    test, level
        As for :func:`metaanalysis.pooling.pool`: knha/adhoc give t tests on k − p df and an
        F omnibus test.
    tau2 : float, optional
        Fix τ² instead of estimating it (metafor ``tau2=``).

    Returns
    -------
    MetaRegression
        Coefficients with SE, z/t statistics, p-values and CIs; QM (df, p), QE (df, p),
        τ², I², H² and R² (see :class:`metaanalysis.regression.MetaRegression`).

    Notes
    -----
    Viechtbauer W (2010), doi:10.18637/jss.v036.i03 (rma.uni with ``mods``).
    """
    method, test, level, _ = check_args(method, test, level, "metafor")
    yi, vi = _arrays(yi, vi)
    if np.any(vi <= 0) or not (np.all(np.isfinite(yi)) and np.all(np.isfinite(vi))):
        raise ValueError("meta-regression needs finite yi and vi > 0")
    Xd, names = design_matrix(X, yi.size)
    if not np.all(np.isfinite(Xd)):
        raise ValueError("moderators must be finite numbers (no missing values)")
    return fit_meta_regression(yi, vi, Xd, names, method=method, test=test, level=level, tau2=tau2)


# ---------------------------------------------------------------------------
# Egger's test
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EggerResult:
    """Egger's regression test (metafor ``regtest``, predictor ``sei``).

    ``stat``/``pvalue``: the test of the ``sei`` slope (z for form "rma" with test z, t on
    ``df`` = k − 2 otherwise); ``slope`` and ``intercept`` of yᵢ = intercept + slope·seᵢ;
    ``limit_estimate`` (the intercept: the effect as SE → 0) with its CI at ``level``;
    ``tau2`` the meta-regression's residual τ² (None for form "lm"); ``underpowered``
    k < ``min_k``.
    """

    form: str
    method: str | None     # None for form "lm" (ordinary weighted least squares)
    test: str | None       # None for form "lm" (always a t test on k − 2 df)
    level: float
    k: int
    stat: float
    pvalue: float
    df: float | None
    slope: float
    intercept: float
    limit_estimate: float
    limit_ci_lower: float
    limit_ci_upper: float
    tau2: float | None
    underpowered: bool


def _egger_lm(yi, vi, level):
    """lm(yi ~ sei, weights = 1/vi) by statsmodels WLS on centred effects (the slope, its t
    and the intercept's SE do not change; the residuals keep full relative precision)."""
    import statsmodels.api as sm

    yc, shift = centre_effects(yi, np.ones((yi.size, 1)))
    X = np.column_stack([np.ones(yi.size), np.sqrt(vi)])
    fit = sm.WLS(yc, X, weights=1.0 / vi).fit()
    lo, hi = fit.conf_int(alpha=1 - level)[0]
    b0 = float(fit.params[0] + shift[0])
    return (float(fit.tvalues[1]), float(fit.pvalues[1]), float(fit.df_resid), float(fit.params[1]), b0,
            float(lo + shift[0]), float(hi + shift[0]), None)


def egger(yi, vi, *, form="rma", method="REML", test="z", level=0.95, min_k: int = EGGER_MIN_K,
          enforce_min_k: bool = False) -> EggerResult:
    """Egger's regression test for funnel-plot asymmetry (metafor ``regtest``).

    Parameters
    ----------
    form : {"rma", "lm"}
        ``"rma"``: metafor's ``regtest`` default — mixed-effects meta-regression of yi on
        the standard error with τ² by ``method`` (every estimator, including PM, EB, HS, SJ,
        HE and FE) and ``test`` (z, knha, adhoc). ``"lm"``: the classic Egger et al. (1997)
        weighted regression (``lm(yi ~ sei, weights = 1/vi)``; t test with k − 2 df, whatever
        ``method``/``test``), computed with statsmodels WLS, which matches R's ``lm``.
    method, test, level
        As for :func:`metaanalysis.pooling.pool`; ``level`` sets the limit estimate's CI.
    min_k : int
        Fewest studies for an interpretable test (default :data:`metaanalysis.vocab.EGGER_MIN_K`).
    enforce_min_k : bool
        Refuse (ValueError) below ``min_k`` studies instead of returning with
        ``underpowered=True``.

    Returns
    -------
    EggerResult

    Notes
    -----
    Both forms are computed from QR/weighted residuals on centred effects, so nearly
    identical effects keep full precision. Egger M et al. (1997). BMJ 315:629-634.
    doi:10.1136/bmj.315.7109.629
    """
    method, test, level, _ = check_args(method, test, level, "metafor")
    yi, vi = _arrays(yi, vi)
    k = yi.size
    if k < 3:
        raise ValueError("Egger's test needs at least 3 studies")
    if enforce_min_k and k < min_k:
        raise ValueError(f"Egger's test is not interpretable with k = {k} < {min_k} studies")
    if form == "lm":
        vals = _egger_lm(yi, vi, level)
        method_out, test_out = None, None   # lm: a t test on k − 2 df whatever method/test
    elif form == "rma":
        X = np.column_stack([np.ones(k), np.sqrt(vi)])
        mr = fit_meta_regression(yi, vi, X, ("intrcpt", "sei"), method=method, test=test, level=level)
        vals = (float(mr.stat[1]), float(mr.pvalue[1]), mr.df, float(mr.beta[1]), float(mr.beta[0]),
                float(mr.ci_lower[0]), float(mr.ci_upper[0]), mr.tau2)
        method_out, test_out = method, test
    else:
        raise ValueError("form must be 'rma' or 'lm'")
    stat, pval, df, slope, b0, lo, hi, tau2 = vals
    return EggerResult(form=form, method=method_out, test=test_out, level=level, k=k, stat=stat,
                       pvalue=pval, df=df, slope=slope, intercept=b0, limit_estimate=b0,
                       limit_ci_lower=lo, limit_ci_upper=hi, tau2=tau2, underpowered=k < min_k)

# ---------------------------------------------------------------------------
# Subgroups
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SubgroupResult:
    """Subgroup analysis: one pooled result per subgroup and the test for differences.

    ``q_between`` is the Wald-type test of the subgroup estimates (Σ u_g (μ_g − μ̄)²,
    u_g = 1/SE_g²; Borenstein et al. 2009, ch. 19); with ``common_tau2`` it is
    metafor's QM from ``rma(yi, vi, mods = ~ factor(g))`` (an F statistic QM/df on
    (df, k − G) df for knha/adhoc, as metafor reports it). ``qe`` (df k − G, p-value
    ``qe_pvalue``) is the residual heterogeneity within subgroups, Σ_g Q_g with weights
    1/vᵢ (metafor's QE of the subgroup model; the same for separate and common τ²).
    ``model`` is the common-τ² meta-regression (None with separate τ²).
    """

    groups: dict[str, MetaResult]
    q_between: float
    q_between_df: int
    q_between_pvalue: float
    common_tau2: bool
    tau2_common: float | None = None
    qe: float | None = None
    qe_df: int | None = None
    qe_pvalue: float | None = None
    model: MetaRegression | None = None


def _within_q(yi, vi, g, labels):
    """QE = Σ_g Q_g (fixed-effect weights), df k − G, and its p-value."""
    qe = 0.0
    for lab in labels:
        sel = g == lab
        w = 1.0 / vi[sel]
        yc = yi[sel] - yi[sel].mean()
        qe += float((w * (yc - (w * yc).sum() / w.sum()) ** 2).sum())
    df = yi.size - len(labels)
    return qe, df, float(dist.chi2_sf(qe, df)) if df > 0 else np.nan


def subgroups(yi, vi, groups, *, method="REML", test="z", level=0.95, pi="metafor",
              common_tau2: bool = False) -> SubgroupResult:
    """Pool within subgroups and test whether the subgroup effects differ.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    groups : array_like of str, shape (k,)
        Subgroup label per study; order of first appearance is kept.
    method, test, level, pi
        As for :func:`metaanalysis.pooling.pool` (every estimator and test).
    common_tau2 : bool
        False (default): a separate τ² per subgroup (Cochrane's default); the test is the
        Q test of the subgroup estimates. True: one τ² shared by all subgroups, that of the
        meta-regression on the subgroup factor by ``method`` (metafor ``rma(yi, vi,
        mods = ~ factor(g), method = method)``), and the test is its QM.

    Returns
    -------
    SubgroupResult
    """
    method, test, level, pi = check_args(method, test, level, pi)
    yi, vi = _arrays(yi, vi)
    g = np.asarray(groups).astype(str)
    if g.shape != yi.shape:
        raise ValueError("groups must have one label per study")
    labels = list(dict.fromkeys(g.tolist()))
    if len(labels) < 2:
        raise ValueError("subgroup analysis needs at least 2 subgroups")
    qe, qe_df, qe_p = _within_q(yi, vi, g, labels)
    mr = None
    if common_tau2:
        X, names = design_matrix({"group": g}, yi.size)
        mr = fit_meta_regression(yi, vi, X, names, method=method, test=test, level=level)
    tau2_c = None if mr is None else mr.tau2
    res = {lab: pool(yi[g == lab], vi[g == lab], method=method, test=test, level=level, pi=pi,
                     tau2=tau2_c) for lab in labels}
    df_b = len(labels) - 1
    if mr is not None:
        return SubgroupResult(res, mr.qm, df_b, mr.qm_pvalue, True, tau2_c, qe, qe_df, qe_p, mr)
    mu = np.array([r.estimate for r in res.values()])
    u = 1.0 / np.array([r.se for r in res.values()]) ** 2
    mbar = (u * mu).sum() / u.sum()
    qb = float((u * (mu - mbar) ** 2).sum())
    return SubgroupResult(res, qb, df_b, float(dist.chi2_sf(qb, df_b)), False, None, qe, qe_df, qe_p)
