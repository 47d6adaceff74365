"""Sensitivity analyses: leave-one-out, cumulative, influence, Egger's test, subgroups.

All are pure functions of ``(yi, vi)`` (plus a grouping or an order) and reuse
:func:`metaanalysis.pooling.pool_many`, so every refit uses exactly the estimator,
test and level of the main analysis, as metafor's ``leave1out``/``cumul``/``influence``
do (Viechtbauer & Cheung 2010, doi:10.1002/jrsm.11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _dist as dist
from . import vocab
from .pooling import check_args, pool, pool_many
from .results import MetaResult

__all__ = [
    "leave_one_out", "cumulative", "influence", "egger", "subgroups", "SubgroupResult",
    "meta_regression", "MetaRegression", "EGGER_MIN_K", "REGRESSION_METHODS",
]

#: Below this many studies Egger's test has too little power to be interpreted
#: (Sterne et al. 2011, doi:10.1136/bmj.d4002; Cochrane Handbook 13.3.5.4): the vocabulary's rule.
EGGER_MIN_K = vocab.EGGER_MIN_K
#: τ² estimators :func:`meta_regression` implements (what Egger's test and common-τ² subgroups need).
REGRESSION_METHODS = ("FE", "DL", "ML", "REML")


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


def influence(yi, vi, *, method="REML", test="z") -> dict[str, np.ndarray]:
    """Case-deletion diagnostics (metafor ``influence.rma.uni``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    method, test
        As for :func:`metaanalysis.pooling.pool` (the diagnostics use no level or PI).

    Returns
    -------
    dict of ndarray, each shape (k,)
        ``rstudent`` (externally studentized residual), ``cooks_distance``, ``hat``,
        ``dffits``, ``tau2_del`` and ``q_del`` (τ² and Q with study i deleted).

    Notes
    -----
    Viechtbauer W, Cheung MW-L (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125. doi:10.1002/jrsm.11
    """
    method, test, _, _ = check_args(method, test, 0.95, "metafor")
    yi, vi = _arrays(yi, vi)
    full = pool(yi, vi, method=method, test=test)
    k = yi.size
    Y = np.array([np.delete(yi, i) for i in range(k)])
    V = np.array([np.delete(vi, i) for i in range(k)])
    d = pool_many(Y, V, method=method, test=test)
    w = 1.0 / (vi + full.tau2)
    hat = w / w.sum()
    vb_full = 1.0 / w.sum()
    vb_del = d.se**2                      # knha-scaled where test != "z", as in metafor
    resid = yi - d.estimate
    rstudent = resid / np.sqrt(vi + d.tau2 + vb_del)
    diff = full.estimate - d.estimate
    dffits = diff / np.sqrt(hat * (d.tau2 + vi))
    cooks = diff**2 / vb_full
    return {"rstudent": rstudent, "cooks_distance": cooks, "hat": hat, "dffits": dffits,
            "tau2_del": d.tau2.copy(), "q_del": d.q.copy()}


# ---------------------------------------------------------------------------
# Meta-regression (needed for Egger's rma form and common-τ² subgroups)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MetaRegression:
    """Mixed-effects meta-regression fit (metafor ``rma.uni(yi, vi, mods=X)``)."""

    beta: np.ndarray      # (p,)
    vb: np.ndarray        # (p, p) covariance of beta (knha-scaled where applicable)
    tau2: float
    df: float | None      # residual df for t tests (knha), None for z
    qe: float             # residual heterogeneity Q_E (fixed-effect weights)
    qe_df: int


def _proj(w, X):
    """P = W − W X (XᵀWX)⁻¹ XᵀW."""
    W = np.diag(w)
    XtWX = X.T @ W @ X
    A = np.linalg.solve(XtWX, X.T @ W)
    return W - W @ X @ A, XtWX


def meta_regression(yi, vi, X, *, method="REML", test="z") -> MetaRegression:
    """Meta-regression with design matrix ``X`` (k × p), τ² by ``method``.

    Supports :data:`REGRESSION_METHODS` (FE, DL, ML and REML: the estimators Egger's test
    and subgroup models need; codes in any case); REML/ML are maximised globally over a
    grid, then refined by Brent's method on the score. ``test`` as for
    :func:`metaanalysis.pooling.pool`.

    Notes
    -----
    Viechtbauer W (2010), doi:10.18637/jss.v036.i03 (rma.uni with ``mods``).
    """
    from scipy import optimize  # lazy: only meta-regression needs it

    method, test, _, _ = check_args(method, test, 0.95, "metafor")
    if method not in REGRESSION_METHODS:
        raise ValueError(f"meta_regression supports {', '.join(REGRESSION_METHODS)}; got {method!r}")
    yi, vi = _arrays(yi, vi)
    X = np.asarray(X, dtype=float)
    k, p = X.shape
    if k <= p:
        raise ValueError(f"meta-regression needs more studies ({k}) than coefficients ({p})")
    P0, _ = _proj(1.0 / vi, X)
    qe = float(yi @ P0 @ yi)
    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        trP = np.trace(P0)
        tau2 = max(0.0, (qe - (k - p)) / trP)
    else:  # REML or ML (method is one of REGRESSION_METHODS)
        def ll(t):
            w = 1.0 / (vi + t)
            P, XtWX = _proj(w, X)
            val = -0.5 * (np.log(vi + t).sum() + yi @ P @ yi)
            if method == "REML":
                val -= 0.5 * np.linalg.slogdet(XtWX)[1]
            return val

        def score(t):
            w = 1.0 / (vi + t)
            P, _ = _proj(w, X)
            Py = P @ yi
            if method == "REML":
                return Py @ Py - np.trace(P)
            return Py @ Py - w.sum()

        r2 = (yi.max() - yi.min()) ** 2
        U = 1.01 * (k * r2 + vi.max()) / max(k - p, 1) + 1e-12
        while score(U) > 0:  # guarantee the bracket (the bound is for p = 1)
            U *= 4
        grid = np.concatenate([[0.0], U * np.geomspace(1e-10, 1.0, 48)])
        vals = np.array([ll(t) for t in grid])
        j = int(np.argmax(vals))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        if j == 0 and score(0.0) <= 0:
            tau2 = 0.0
        else:
            if score(grid[j]) > 0:
                lo = grid[j]
            else:
                hi = grid[j]
            if score(lo) > 0 and score(hi) <= 0:
                tau2 = optimize.brentq(score, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps,
                                       maxiter=500)
            else:
                tau2 = optimize.minimize_scalar(lambda t: -ll(t), bounds=(lo, hi), method="bounded",
                                                options={"xatol": 1e-14}).x
    w = 1.0 / (vi + tau2)
    P, XtWX = _proj(w, X)
    vb = np.linalg.inv(XtWX)
    beta = vb @ X.T @ (w * yi)
    df = None
    if test in vocab.T_TESTS:
        s2w = float(yi @ P @ yi) / (k - p)
        if test == "adhoc":
            s2w = max(s2w, 1.0)
        vb = vb * s2w
        df = float(k - p)
    return MetaRegression(beta=beta, vb=vb, tau2=float(tau2), df=df, qe=qe, qe_df=k - p)


def egger(yi, vi, *, form="rma", method="REML", test="z", level=0.95, min_k: int = EGGER_MIN_K,
          enforce_min_k: bool = False) -> dict:
    """Egger's regression test for funnel-plot asymmetry.

    Parameters
    ----------
    form : {"rma", "lm"}
        ``"rma"``: metafor's ``regtest`` default — mixed-effects meta-regression of yi on
        the standard error with τ² by ``method``; the limit estimate (intercept) is the
        effect as SE → 0. ``"lm"``: the classic Egger et al. (1997) weighted regression
        (``lm(yi ~ sei, weights = 1/vi)``; the slope is Egger's intercept), t test with
        k − 2 df — computed with statsmodels WLS, which matches R's ``lm``.
    method, test, level
        As for :func:`metaanalysis.pooling.pool` (the ``"rma"`` form; ``method`` outside
        :data:`REGRESSION_METHODS` is refused); ``level`` sets the limit estimate's CI.
    min_k : int
        Fewest studies for an interpretable test (default :data:`metaanalysis.vocab.EGGER_MIN_K`).
    enforce_min_k : bool
        Refuse (ValueError) below ``min_k`` studies instead of returning with
        ``underpowered=True``.

    Returns
    -------
    dict
        ``stat``, ``pvalue``, ``df`` (None for z), ``slope``, ``intercept``,
        ``limit_estimate`` with ``limit_ci_lower``/``limit_ci_upper`` (the intercept: the
        effect as SE -> 0), ``k``, ``underpowered`` (k < min_k), ``form``.

    Notes
    -----
    Egger M et al. (1997). BMJ 315:629-634. doi:10.1136/bmj.315.7109.629
    """
    method, test, level, _ = check_args(method, test, level, "metafor")
    yi, vi = _arrays(yi, vi)
    k = yi.size
    if k < 3:
        raise ValueError("Egger's test needs at least 3 studies")
    if enforce_min_k and k < min_k:
        raise ValueError(f"Egger's test is not interpretable with k = {k} < {min_k} studies")
    sei = np.sqrt(vi)
    X = np.column_stack([np.ones(k), sei])
    if form == "lm":
        import statsmodels.api as sm

        fit = sm.WLS(yi, X, weights=1.0 / vi).fit()
        lo, hi = fit.conf_int(alpha=1 - level)[0]
        out = {"stat": float(fit.tvalues[1]), "pvalue": float(fit.pvalues[1]), "df": float(fit.df_resid),
               "slope": float(fit.params[1]), "intercept": float(fit.params[0]),
               "limit_estimate": float(fit.params[0]), "limit_ci_lower": float(lo),
               "limit_ci_upper": float(hi)}
    elif form == "rma":
        mr = meta_regression(yi, vi, X, method=method, test=test)
        se = np.sqrt(np.diag(mr.vb))
        z = mr.beta / se
        if mr.df is None:
            p = 2 * dist.norm_sf(np.abs(z[1]))
            crit = dist.norm_isf((1 - level) / 2)
        else:
            p = 2 * dist.t_sf(np.abs(z[1]), mr.df)
            crit = dist.t_isf((1 - level) / 2, mr.df)
        out = {"stat": float(z[1]), "pvalue": float(p), "df": mr.df, "slope": float(mr.beta[1]),
               "intercept": float(mr.beta[0]), "limit_estimate": float(mr.beta[0]),
               "limit_ci_lower": float(mr.beta[0] - crit * se[0]),
               "limit_ci_upper": float(mr.beta[0] + crit * se[0]), "tau2": mr.tau2}
    else:
        raise ValueError("form must be 'rma' or 'lm'")
    out.update(k=k, underpowered=k < min_k, form=form)
    return out


# ---------------------------------------------------------------------------
# Subgroups
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SubgroupResult:
    """Subgroup analysis: one pooled result per subgroup and the test for differences.

    ``q_between`` is the Wald-type test of the subgroup estimates (Σ u_g (μ_g − μ̄)²,
    u_g = 1/SE_g²; Borenstein et al. 2009, ch. 19); with ``common_tau2`` it is
    metafor's QM from ``rma(yi, vi, mods = ~ factor(g))``.
    """

    groups: dict[str, MetaResult]
    q_between: float
    q_between_df: int
    q_between_pvalue: float
    common_tau2: bool
    tau2_common: float | None = None


def subgroups(yi, vi, groups, *, method="REML", test="z", level=0.95, pi="metafor",
              common_tau2: bool = False) -> SubgroupResult:
    """Pool within subgroups and test whether the subgroup effects differ.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    groups : array_like of str, shape (k,)
        Subgroup label per study; order of first appearance is kept.
    method, test, level, pi
        As for :func:`metaanalysis.pooling.pool`.
    common_tau2 : bool
        False (default): a separate τ² per subgroup (Cochrane's default). True: one τ²
        estimated from the mixed-effects model with subgroup as moderator, shared by all
        (by ``method`` where :func:`meta_regression` has it, else REML).
    """
    method, test, level, pi = check_args(method, test, level, pi)
    yi, vi = _arrays(yi, vi)
    g = np.asarray(groups).astype(str)
    if g.shape != yi.shape:
        raise ValueError("groups must have one label per study")
    labels = list(dict.fromkeys(g.tolist()))
    if len(labels) < 2:
        raise ValueError("subgroup analysis needs at least 2 subgroups")
    tau2_c = None
    if common_tau2:
        X = np.column_stack([(g == lab).astype(float) for lab in labels])
        mr = meta_regression(yi, vi, X, method=method if method in REGRESSION_METHODS else "REML",
                             test=test)
        tau2_c = mr.tau2
    res = {}
    for lab in labels:
        sel = g == lab
        res[lab] = pool(yi[sel], vi[sel], method=method, test=test, level=level, pi=pi, tau2=tau2_c)
    if common_tau2:
        # QM: Wald test that all subgroup means are equal (contrasts of beta)
        C = np.column_stack([np.ones(len(labels) - 1), -np.eye(len(labels) - 1)])
        d = C @ mr.beta
        qm = float(d @ np.linalg.solve(C @ mr.vb @ C.T, d))
        df_b = len(labels) - 1
        if mr.df is None:
            p = float(dist.chi2_sf(qm, df_b))
        else:  # metafor reports F = QM/df with (df, k - p) for knha
            qm = qm / df_b
            p = float(dist.f_sf(qm, df_b, mr.df))
        return SubgroupResult(res, qm, df_b, p, True, tau2_c)
    mu = np.array([r.estimate for r in res.values()])
    u = 1.0 / np.array([r.se for r in res.values()]) ** 2
    mbar = (u * mu).sum() / u.sum()
    qb = float((u * (mu - mbar) ** 2).sum())
    df_b = len(labels) - 1
    return SubgroupResult(res, qb, df_b, float(dist.chi2_sf(qb, df_b)), False, None)
