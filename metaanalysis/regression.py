"""Mixed-effects meta-regression (metafor ``rma.uni(yi, vi, mods = ...)``) for every τ² estimator.

Used by :func:`metaanalysis.sensitivity.meta_regression`, Egger's ``"rma"`` form and the
common-τ² subgroup model. Every quadratic form is computed from weighted least-squares
residuals of a QR factorisation of ``√W X`` (never as ``yᵀPy`` through an explicit projection
matrix, which loses ~9 significant digits when the effects are nearly identical), and the
effects are centred first whenever the model contains the constant, so the residuals carry
full relative precision. The ML and REML fit statistics (log-likelihood, deviance, AIC, BIC,
AICc) take their log-determinants from QR factorisations too. Formulas follow metafor 3.8-1
``rma.uni`` (see tests/reference/METAFOR_FORMULAS.md, section "Meta-regression").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from . import _dist as dist
from . import vocab

__all__ = ["MetaRegression", "FitStats", "fit_stats", "fit_meta_regression", "design_matrix", "tau2_regression",
           "centre_effects"]

_GRID = np.concatenate([[0.0], np.geomspace(1e-10, 1.0, 64)])


@dataclass(frozen=True)
class FitStats:
    """Fit statistics of one likelihood (metafor's ``fitstats()`` column ``ML`` or ``REML``).

    ``loglik`` is the log-likelihood at the model's τ² (whatever its estimator), ``deviance``
    −2 × (loglik − loglik of the saturated model: ML Σ log N(yᵢ; yᵢ, vᵢ), REML 0), ``aic``,
    ``bic`` and ``aicc`` the information criteria with the model's number of parameters
    (BIC and AICc on k observations for ML, k − p for REML).
    """

    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float


@dataclass(frozen=True, eq=False)
class MetaRegression:
    """Meta-regression fit: the fields of metafor's ``rma.uni`` object with ``mods``.

    Arrays have shape (p,) or (p, p) in the order of ``coef_names``. ``df`` is the t
    tests' residual df k − p (None for z). ``qm`` is the omnibus test of the coefficients
    ``btt`` (all but the intercept when the model has one): χ²(``qm_df``) for test z, an
    F statistic QM/m on (``qm_df``, ``qm_ddf``) df for knha/adhoc, as metafor reports it.
    ``qe`` (with ``qe_df`` = k − p and ``qe_pvalue``) is the residual-heterogeneity test
    with weights 1/vᵢ. ``tau2_se`` is metafor's se.tau2 (None for FE and a fixed τ²).
    ``i2`` and ``r2`` are percentages; ``r2`` (metafor's pseudo-R²,
    100 (τ²₀ − τ²)/τ²₀ clipped at 0, τ²₀ from the intercept-only model; adjusted weighted
    R² for FE) is None without an intercept. ``fit_ml`` and ``fit_reml`` are metafor's
    ``fitstats(res, REML = FALSE)`` and ``fitstats(res, REML = TRUE)`` (both for every
    estimator, evaluated at its τ²); ``n_params`` is metafor's ``parms``, p plus 1 for an
    estimated τ² (not for FE or a fixed τ²).
    """

    method: str
    test: str
    level: float
    k: int
    coef_names: tuple[str, ...]
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pvalue: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    df: float | None
    tau2: float
    tau2_se: float | None
    i2: float
    h2: float
    r2: float | None
    qm: float
    qm_df: int
    qm_ddf: int | None
    qm_pvalue: float
    qe: float
    qe_df: int
    qe_pvalue: float
    btt: tuple[int, ...]
    s2w: float
    fit_ml: FitStats
    fit_reml: FitStats
    n_params: int

    def __eq__(self, other) -> bool:
        # field by field; arrays compare elementwise (NaN equal to NaN), so two identical fits are equal
        if not isinstance(other, MetaRegression):
            return NotImplemented
        return all(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")
                   if isinstance(a, np.ndarray) else (a == b or (a != a and b != b))
                   for a, b in ((getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    __hash__ = None

    @property
    def p(self) -> int:
        """Number of coefficients."""
        return int(self.beta.size)


# ---------------------------------------------------------------------------
# Design matrix
# ---------------------------------------------------------------------------

def _is_numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "iuf"


def design_matrix(mods, k: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Design matrix for ``mods`` as metafor builds it from ``mods = ~ ...``.

    Parameters
    ----------
    mods : mapping of name -> array_like (k,), 1-D array_like (k,), or 2-D array_like (k, p)
        A mapping adds an intercept (``"intrcpt"``) and one column per numeric moderator
        (continuous); a moderator of strings or booleans is a factor, dummy-coded with its
        first level in sorted order as the reference (R's ``factor()`` default), columns
        named name + level as R does. A 1-D array is one continuous moderator (intercept
        added). A 2-D array is used as given (metafor ``mods = X, intercept = FALSE``).
    k : int
        Number of studies.

    Returns
    -------
    X : ndarray, shape (k, p)
    names : tuple of str, length p
    """
    if isinstance(mods, Mapping):
        cols, names = [np.ones(k)], ["intrcpt"]
        for name, values in mods.items():
            a = np.asarray(values)
            if a.shape != (k,):
                raise ValueError(f"moderator {name!r} must have one value per study ({k}), got shape {a.shape}")
            if _is_numeric(a):
                cols.append(a.astype(float))
                names.append(str(name))
                continue
            lab = a.astype(str)
            levels = sorted(set(lab.tolist()))
            if len(levels) < 2:
                raise ValueError(f"factor moderator {name!r} has only one level ({levels[0]!r})")
            for lev in levels[1:]:
                cols.append((lab == lev).astype(float))
                names.append(f"{name}{lev}")
        return np.column_stack(cols), tuple(names)
    X = np.asarray(mods, dtype=float)
    if X.ndim == 1:
        return design_matrix({"mods": X}, k)
    if X.ndim != 2 or X.shape[0] != k:
        raise ValueError(f"design matrix must have shape ({k}, p), got {X.shape}")
    return X, tuple(f"X{j + 1}" for j in range(X.shape[1]))


def _intercept_columns(X) -> np.ndarray:
    return np.flatnonzero(np.all(X == 1.0, axis=0))


# ---------------------------------------------------------------------------
# Weighted least squares by QR
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _WLS:
    beta: np.ndarray      # (p,) for the centred effects
    rw: np.ndarray        # weighted residuals √wᵢ (yᵢ − xᵢβ), shape (k,)
    w: np.ndarray         # weights, shape (k,)
    h: np.ndarray         # leverages of √W X, shape (k,)
    logdet: float         # log |XᵀWX|
    rinv: np.ndarray      # R⁻¹ (XᵀWX = RᵀR), shape (p, p)

    @property
    def rss(self) -> float:
        return float(self.rw @ self.rw)


def _wls(y, X, w) -> _WLS:
    """WLS of ``y`` on ``X`` with weights ``w`` through the QR factorisation of √W X."""
    sw = np.sqrt(w)
    Q, R = np.linalg.qr(sw[:, None] * X)
    A = sw[:, None] * X
    b = sw * y
    rinv = np.linalg.inv(R)
    beta = rinv @ (Q.T @ b)
    # one step of iterative refinement (residuals computed directly, not as b − QQᵀb), so β and
    # the residuals are accurate even when the effects differ only in their last digits
    beta = beta + rinv @ (Q.T @ (b - A @ beta))
    rw = b - A @ beta
    return _WLS(beta=beta, rw=rw, w=w, h=(Q**2).sum(1),
                logdet=2.0 * float(np.log(np.abs(np.diag(R))).sum()), rinv=rinv)


def centre_effects(yi, X):
    """Effects centred at their mean when ``X`` spans the constant (else unchanged).

    Parameters
    ----------
    yi : ndarray, shape (k,)
    X : ndarray, shape (k, p)

    Returns
    -------
    yc : ndarray, shape (k,)
        ``yi − ȳ`` (exact differences: the residuals of a fit on ``yc`` keep full relative
        precision however close the effects are).
    shift : ndarray, shape (p,)
        Add to the coefficients fitted on ``yc`` to get those for ``yi`` (ȳ times the exact
        coefficients of the constant in X).
    """
    ones = np.ones(X.shape[0])
    scale = np.max(np.abs(X), axis=0)
    scale[scale == 0] = 1.0
    cs, *_ = np.linalg.lstsq(X / scale, ones, rcond=None)   # columns scaled: a tiny moderator
    if np.max(np.abs((X / scale) @ cs - ones)) > 1e-10:     # must not blur the solution
        return yi, np.zeros(X.shape[1])
    # an intercept column or dummies summing to 1 give an integer c: use it exactly, or the
    # lstsq rounding (~1e-16) would shift a tiny slope by ȳ·1e-16
    rounded = np.round(cs)
    c = cs / scale
    if np.max(np.abs(rounded - cs)) < 1e-8 and np.array_equal((X / scale) @ rounded, ones):
        c = rounded / scale
    ybar = yi.mean()
    ybar += (yi - ybar).mean()   # second pass, as R's mean()
    return yi - ybar, ybar * c


# ---------------------------------------------------------------------------
# τ² estimators with moderators
# ---------------------------------------------------------------------------

def _moment(method, y, vi, X) -> float:
    k, p = X.shape
    if method == "HE":
        f = _wls(y, X, np.ones(k))
        return max(0.0, (f.rss - float((vi * (1 - f.h)).sum())) / (k - p))
    if method == "SJ":
        t0 = float(((y - y.mean()) ** 2).mean())
        if t0 <= 0:
            return 0.0
        return max(0.0, t0 * _wls(y, X, 1.0 / (vi + t0)).rss / (k - p))
    f = _wls(y, X, 1.0 / vi)
    if method == "DL":
        return max(0.0, (f.rss - (k - p)) / float((f.w * (1 - f.h)).sum()))
    return max(0.0, (f.rss - k) / float(f.w.sum()))   # HS


def _score(method, y, vi, X, t) -> float:
    """Estimating equation, positive below the estimate: REML/ML score or Q(τ²) − (k − p)."""
    f = _wls(y, X, 1.0 / (vi + t))
    if method in ("PM", "EB"):
        return f.rss - (X.shape[0] - X.shape[1])
    py2 = float((f.w * f.rw**2).sum())
    if method == "ML":
        return py2 - float(f.w.sum())
    return py2 - float((f.w * (1 - f.h)).sum())


def _loglik(method, y, vi, X, t) -> float:
    f = _wls(y, X, 1.0 / (vi + t))
    ll = -0.5 * (float(np.log(vi + t).sum()) + f.rss)
    return ll - 0.5 * f.logdet if method == "REML" else ll


def _upper(method, y, vi, X) -> float:
    k, p = X.shape
    u = 1.01 * (k * (y.max() - y.min()) ** 2 + vi.max()) / max(k - p, 1)
    while _score(method, y, vi, X, u) > 0:   # the bound is proven for p = 1; make sure
        u *= 4
    return u


def _root(method, y, vi, X, lo, hi) -> float:
    from scipy import optimize  # lazy: only the iterative estimators need it

    return float(optimize.brentq(lambda t: _score(method, y, vi, X, t), lo, hi, xtol=1e-300,
                                 rtol=4 * np.finfo(float).eps, maxiter=1000))


def _iterative(method, y, vi, X) -> float:
    """PM/EB: root of Q(τ²) = k − p (EB's fixed point is the same equation); ML/REML: the
    global maximiser of the (restricted) likelihood over a grid on [0, U], refined by Brent's
    method on the score (metafor's Fisher scoring can stop at a local optimum)."""
    if _score(method, y, vi, X, 0.0) <= 0 and method in ("PM", "EB"):
        return 0.0
    u = _upper(method, y, vi, X)
    grid = u * _GRID
    if method in ("PM", "EB"):
        sc = np.array([_score(method, y, vi, X, t) for t in grid])
        j = int(np.argmax(sc <= 0))
        return _root(method, y, vi, X, grid[j - 1], grid[j])
    ll = np.array([_loglik(method, y, vi, X, t) for t in grid])
    j = int(np.argmax(ll))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    if j == 0 and _score(method, y, vi, X, 0.0) <= 0:
        return 0.0
    mid = grid[j]
    if j > 0 and _score(method, y, vi, X, mid) > 0:
        lo = mid
    elif j > 0:
        hi = mid
    if _score(method, y, vi, X, lo) > 0 >= _score(method, y, vi, X, hi):
        return _root(method, y, vi, X, lo, hi)
    from scipy import optimize

    return float(optimize.minimize_scalar(lambda t: -_loglik(method, y, vi, X, t), bounds=(lo, hi),
                                          method="bounded", options={"xatol": 1e-15}).x)


def tau2_regression(yi, vi, X, method: str) -> float:
    """τ² of the meta-regression of ``yi`` on ``X`` by ``method`` (any of
    :data:`metaanalysis.vocab.METHODS`; 0 for FE), as metafor ``rma.uni(mods = X)``.

    Parameters
    ----------
    yi, vi : ndarray, shape (k,)
    X : ndarray, shape (k, p), full column rank, k > p
    method : str
        Canonical code.

    Notes
    -----
    Viechtbauer W (2010), doi:10.18637/jss.v036.i03 (the estimators with moderators).
    """
    y, _ = centre_effects(yi, X)
    if method == "FE":
        return 0.0
    if method in ("DL", "HS", "HE", "SJ"):
        return _moment(method, y, vi, X)
    return max(0.0, _iterative(method, y, vi, X))


# ---------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------

def _s2w(rss: float, k: int, p: int, test: str) -> float:
    """Knapp-Hartung scale (metafor: 0 when RSS <= machine eps; adhoc floors at 1)."""
    if test == "z":
        return 1.0
    s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - p)
    return max(s2w, 1.0) if test == "adhoc" else s2w


def _omnibus(beta, vb, btt, test, ddf):
    m = len(btt)
    if m == 0:
        return np.nan, 0, None, np.nan
    b = beta[list(btt)]
    try:
        L = np.linalg.cholesky(vb[np.ix_(btt, btt)])
        z = np.linalg.solve(L, b)
        qm = float(z @ z)
    except np.linalg.LinAlgError:   # s2w = 0 (identical effects): metafor's chol fails -> NA
        return np.nan, m, ddf, np.nan
    if test == "z":
        return qm, m, None, float(dist.chi2_sf(qm, m))
    return qm / m, m, ddf, float(dist.f_sf(qm / m, m, ddf))


def _heterogeneity(y, vi, X, tau2, method):
    """QE (weights 1/vᵢ), its p-value, I² (%) and H² (metafor rma.uni, i2def "1")."""
    k, p = X.shape
    f0 = _wls(y, X, 1.0 / vi)
    qe = max(0.0, f0.rss)
    qe_p = float(dist.chi2_sf(qe, k - p))
    if method == "FE":
        i2 = max(0.0, 100 * (qe - (k - p)) / qe) if qe > 0 else 0.0
        return qe, qe_p, i2, qe / (k - p)
    vt = (k - p) / float((f0.w * (1 - f0.h)).sum())
    return qe, qe_p, 100 * tau2 / (vt + tau2), tau2 / vt + 1


def _proj(X, w) -> np.ndarray:
    """P = W − W X (XᵀWX)⁻¹ XᵀW as √W (I − QQᵀ) √W, shape (k, k): only for the traces of the
    τ² standard errors (quadratic forms in y never go through it)."""
    sw = np.sqrt(w)
    Q, _ = np.linalg.qr(sw[:, None] * X)
    M = np.eye(X.shape[0]) - Q @ Q.T
    return sw[:, None] * M * sw[None, :]


def _tau2_se(method, y, vi, X, t) -> float | None:
    """metafor's ``se.tau2`` with moderators (rma.uni, at the truncated estimate ``t``); None for FE."""
    k, p = X.shape
    if method == "FE":
        return None
    if method in ("ML", "REML", "PM", "EB"):
        w = 1.0 / (vi + t)
        if method == "ML":
            return float(np.sqrt(2 / (w**2).sum()))
        if method == "REML":
            return float(np.sqrt(2 / (_proj(X, w) ** 2).sum()))
        return float(np.sqrt(2 * k**2 / (k - p) / w.sum() ** 2))
    if method == "HE":
        P = _proj(X, np.ones(k))                 # I − H, H the OLS hat matrix
        PV = P * vi[None, :]
        return float(np.sqrt((2 * (PV * PV.T).sum() + 4 * t * np.trace(PV) + 2 * t**2 * (k - p)) / (k - p) ** 2))
    if method == "SJ":
        t0 = float(((y - y.mean()) ** 2).mean())
        P = _proj(X, 1.0 / (vi + t0))
        PV = P * vi[None, :]
        return float(t0 / (k - p) * np.sqrt(2 * (PV * PV.T).sum() + 4 * t * (PV * P).sum() + 2 * t**2 * (P**2).sum()))
    w = 1.0 / vi
    P = _proj(X, w)
    trP = float(np.trace(P))
    denom = trP if method == "DL" else float(w.sum())    # DL, HS
    return float(np.sqrt(2 * (k - p) + 4 * t * trP + 2 * t**2 * (P**2).sum()) / denom)


def _r2(yi, vi, X, tau2, qe, method, int_incl) -> float | None:
    """metafor's pseudo-R² (percent); None for intercept-only models or without intercept."""
    k, p = X.shape
    if not int_incl or p == 1:
        return None
    if method == "FE":
        if np.all(yi == yi[0]):
            return 0.0
        q0 = _wls(centre_effects(yi, np.ones((k, 1)))[0], np.ones((k, 1)), 1.0 / vi).rss
        return max(0.0, 100 * (1 - (qe / (k - p)) / (q0 / (k - 1))))
    t0 = tau2_regression(yi, vi, np.ones((k, 1)), method)
    if t0 == 0:
        return 0.0
    return max(0.0, 100 * ((t0 - tau2) / t0))   # ratio first, as metafor: exactly 100 at tau2 = 0


def _criteria(ll: float, dev: float, n_params: int, n: int) -> FitStats:
    """AIC, BIC and AICc on ``n`` observations (metafor: AICc's n is at least n_params + 2)."""
    m = max(n, n_params + 2)
    return FitStats(loglik=ll, deviance=dev, aic=-2 * ll + 2 * n_params, bic=-2 * ll + n_params * math.log(n),
                    aicc=-2 * ll + 2 * n_params * m / (m - n_params - 1))


def fit_stats(vi, X, tau2: float, rss: float, logdet_xwx: float, n_params: int) -> tuple[FitStats, FitStats]:
    """ML and REML fit statistics of a meta-regression at ``tau2`` (metafor ``rma.uni``'s ``fit.stats``).

    Parameters
    ----------
    vi : ndarray, shape (k,)
        Sampling variances, all > 0.
    X : ndarray, shape (k, p)
        Design matrix, full column rank, k > p.
    tau2 : float
        The model's τ² (any estimator's; 0 for FE).
    rss : float
        Σ wᵢ (yᵢ − xᵢβ)² with wᵢ = 1/(vᵢ + τ²) at the fitted β.
    logdet_xwx : float
        log |XᵀWX| (from the QR factorisation of √W X).
    n_params : int
        Number of parameters (p, plus 1 for an estimated τ²).

    Returns
    -------
    ml, reml : FitStats

    Notes
    -----
    ML: ℓ = −½ (k log 2π + Σ log(vᵢ + τ²) + RSS). REML, with metafor's REMLf convention
    (the constant +½ log |XᵀX| that makes ℓ invariant to rescaling the moderators):
    ℓ_R = −½ ((k − p) log 2π − log |XᵀX| + Σ log(vᵢ + τ²) + log |XᵀWX| + RSS).
    Viechtbauer W (2010), doi:10.18637/jss.v036.i03.
    """
    k, p = X.shape
    slog = float(np.log(vi + tau2).sum())
    logdet_xx = 2.0 * float(np.log(np.abs(np.diag(np.linalg.qr(X, mode="r")))).sum())
    ll_ml = -0.5 * (k * np.log(2 * np.pi) + slog + rss)
    ll_reml = -0.5 * ((k - p) * np.log(2 * np.pi) - logdet_xx + slog + logdet_xwx + rss)
    # the ML deviance −2 (ℓ − Σ log N(yᵢ; yᵢ, vᵢ)) in closed form: no cancellation of the 2π terms
    dev_ml = float(np.log1p(tau2 / vi).sum()) + rss
    return (_criteria(float(ll_ml), dev_ml, n_params, k),
            _criteria(float(ll_reml), float(-2 * ll_reml), n_params, k - p))


def fit_meta_regression(yi, vi, X, names, *, method, test, level, tau2=None) -> MetaRegression:
    """Fit the meta-regression (arguments already validated; see
    :func:`metaanalysis.sensitivity.meta_regression`). ``tau2`` fixes τ² (metafor ``tau2=``).
    """
    k, p = X.shape
    if k <= p:
        raise ValueError(f"meta-regression needs more studies ({k}) than coefficients ({p})")
    if np.linalg.matrix_rank(X) < p:
        raise ValueError("the moderators are collinear (design matrix not of full column rank)")
    y, shift = centre_effects(yi, X)
    t2 = tau2_regression(yi, vi, X, method) if tau2 is None else float(tau2)
    f = _wls(y, X, 1.0 / (vi + t2))
    beta = f.beta + shift
    s2w = _s2w(f.rss, k, p, test)
    vb = s2w * (f.rinv @ f.rinv.T)
    se = np.sqrt(np.diag(vb))
    ddf = k - p if test in vocab.T_TESTS else None
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se
    if ddf is None:
        crit, pval = dist.norm_isf((1 - level) / 2), 2 * dist.norm_sf(np.abs(stat))
    else:
        crit, pval = dist.t_isf((1 - level) / 2, ddf), 2 * dist.t_sf(np.abs(stat), ddf)
    ints = _intercept_columns(X)
    btt = tuple(j for j in range(p) if j not in set(ints.tolist())) if ints.size else tuple(range(p))
    if p == 1:
        btt = (0,)
    qm, qm_df, qm_ddf, qm_p = _omnibus(beta, vb, btt, test, ddf)
    qe, qe_p, i2, h2 = _heterogeneity(y, vi, X, t2, method)
    n_params = p + (0 if method == "FE" or tau2 is not None else 1)
    fit_ml, fit_reml = fit_stats(vi, X, t2, f.rss, f.logdet, n_params)
    return MetaRegression(
        method=method, test=test, level=level, k=k, coef_names=tuple(names), beta=beta, vb=vb, se=se,
        stat=stat, pvalue=np.asarray(pval, dtype=float), ci_lower=beta - crit * se,
        ci_upper=beta + crit * se, df=None if ddf is None else float(ddf), tau2=t2,
        tau2_se=None if tau2 is not None else _tau2_se(method, y, vi, X, t2), i2=float(i2),
        h2=float(h2), r2=_r2(yi, vi, X, t2, qe, method, ints.size > 0), qm=qm, qm_df=qm_df,
        qm_ddf=qm_ddf, qm_pvalue=qm_p, qe=qe, qe_df=k - p, qe_pvalue=qe_p, btt=btt, s2w=s2w,
        fit_ml=fit_ml, fit_reml=fit_reml, n_params=n_params)
