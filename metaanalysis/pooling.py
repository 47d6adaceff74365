"""Common- and random-effects pooling: ``pool`` (one analysis) and ``pool_many`` (m at once).

``pool(yi, vi)`` equals ``pool_many(yi[None], vi[None]).row(0)``: for up to
:data:`metaanalysis.single.MAX_K` studies it runs the same algorithms on plain floats
(:mod:`metaanalysis.single`, ~10x faster for one analysis), and the two paths are checked
against each other field by field (tests/test_pooling.py, benchmarks/robustness_sweep.py).
``pool_many`` computes τ², the estimate, Q and the Q-profile CIs of every row without NaN
padding in a C kernel when it is built (:mod:`metaanalysis._compiled`, the same algorithms;
``fit_many`` returns only τ², the estimate and its SE) and everything else, or everything
when the kernel is missing, with numpy; the two paths agree to rounding (tests/test_kernel.py).
Conventions follow metafor 3.8 ``rma.uni`` / ``predict`` /
``confint`` (Viechtbauer 2010, doi:10.18637/jss.v036.i03):

* ``test="z"``: Wald-type z test and CI; ``"knha"``: Hartung-Knapp-Sidik-Jonkman
  (Knapp & Hartung 2003, doi:10.1002/sim.1482) — SE multiplied by
  √(Σwᵢ(yᵢ−μ̂)²/(k−1)), t with k−1 df; ``"adhoc"``: the same with the multiplier
  floored at 1 (Knapp & Hartung's ad hoc variant; metafor ``test="adhoc"``).
* Prediction interval (random-effects models only; none for ``method="FE"``, as in
  metafor) ``pi="metafor"``: μ̂ ± c·√(SE² + τ̂²) with c the normal quantile
  for ``test="z"`` and t(k−1) for knha/adhoc (metafor's ``predict``);
  ``pi="riley"``: t(k−2) (Riley et al. 2011, doi:10.1136/bmj.d549; Cochrane Handbook
  10.10.4.3), not estimable for k < 3.
* Q is Cochran's Q with inverse-variance (common-effect) weights; I² = 100·τ²/(τ²+s²)
  and H² = (τ²+s²)/s² with s² metafor's "typical" within-study variance
  (Higgins & Thompson 2002, doi:10.1002/sim.1186); for ``method="FE"``, I² and H² come
  from Q as in metafor.
* τ², I², H² CIs: Q-profile (Viechtbauer 2007, doi:10.1002/sim.2514), solved to
  ~1e-15 relative precision with no upper cap (metafor caps its search near
  100·τ̂² by default; our fixtures use tight controls — see tests/reference/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _compiled
from . import _dist as dist
from . import single, vocab
from .single import metafor_call
from .estimators import (_take, estimate_tau2, prepare, q_and_slope, q_gen,
                         solve_convex_decreasing)
from .results import MetaResult

__all__ = ["pool", "pool_many", "fit_many", "interval_bounds_many", "Fit", "PoolArrays", "check_args", "METHODS", "TESTS",
           "PI_TYPES"]

#: ``method=`` codes in their canonical case (the vocabulary's τ² estimators, then "FE").
METHODS: tuple[str, ...] = tuple(vocab.METHODS)
#: ``test=`` codes in their canonical case.
TESTS: tuple[str, ...] = tuple(vocab.TESTS)
#: ``pi=`` prediction-interval conventions.
PI_TYPES: tuple[str, ...] = tuple(vocab.PREDICTION_INTERVALS)
#: Elements (rows × k) of one block of :func:`pool_many`: its temporaries are a few dozen
#: arrays of this size (~256 KiB each), so peak memory does not grow with m.
_CHUNK_ELEMENTS = 2 ** 15


def check_args(method: str, test: str, level: float, pi: str) -> tuple[str, str, float, str]:
    """Validate and canonicalise the arguments shared by pooling and its sensitivity analyses.

    Parameters
    ----------
    method, test, pi : str
        Codes matched case-insensitively (``"reml"`` → ``"REML"``, ``"KNHA"`` → ``"knha"``).
    level : float
        Confidence level as a fraction or a percentage (0.95 or 95).

    Returns
    -------
    (method, test, level, pi)
        Canonical codes and the level as a fraction.

    Raises
    ------
    ValueError
        An unknown code (the message lists the valid ones) or a level outside
        :func:`metaanalysis.vocab.as_level`'s range.
    """
    return (vocab.canonical_method(method), vocab.canonical_test(test), vocab.as_level(level),
            vocab.canonical_pi(pi))


@dataclass(frozen=True)
class PoolArrays:
    """Results of :func:`pool_many`: one entry per analysis (arrays of shape ``(m,)``).

    Field names are those of :class:`~metaanalysis.results.MetaResult`;
    ``weights`` has shape ``(m, k)`` (percent, NaN where a study is absent).
    """

    method: str
    test: str
    level: float
    pi: str
    k: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    df: np.ndarray
    pvalue: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    tau2: np.ndarray
    tau2_se: np.ndarray
    tau2_ci_lower: np.ndarray
    tau2_ci_upper: np.ndarray
    tau: np.ndarray
    i2: np.ndarray
    i2_ci_lower: np.ndarray
    i2_ci_upper: np.ndarray
    h2: np.ndarray
    h2_ci_lower: np.ndarray
    h2_ci_upper: np.ndarray
    q: np.ndarray
    q_df: np.ndarray
    q_pvalue: np.ndarray
    pi_lower: np.ndarray
    pi_upper: np.ndarray
    weights: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    yi: np.ndarray
    vi: np.ndarray
    tau2_fixed: float | np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.k.shape[0])

    def row(self, i: int) -> MetaResult:
        """The :class:`MetaResult` of analysis ``i`` (identical to ``pool`` on that row)."""
        def opt(a):
            v = float(a[i])
            return v if np.isfinite(v) else None

        present = np.isfinite(self.yi[i])
        yi = tuple(float(x) for x in self.yi[i][present])
        vi = tuple(float(x) for x in self.vi[i][present])
        k = int(self.k[i])
        notes = []
        if self.pi == "riley" and k < vocab.RILEY_MIN_K:
            notes.append("prediction interval not estimable with fewer than 3 studies (Riley t(k-2))")
        if self.method != "FE" and k == 1:
            notes.append("k = 1: tau^2 cannot be estimated and is set to 0")
        if self.test != "z" and k == 1:
            notes.append(f"k = 1: test={self.test!r} needs k >= 2; a z test was used (as metafor does)")
        df = float(self.df[i])
        fixed = self.tau2_fixed if np.ndim(self.tau2_fixed) == 0 else float(self.tau2_fixed[i])
        return MetaResult(
            k=k, method=self.method, test=self.test, level=self.level,
            estimate=float(self.estimate[i]), se=float(self.se[i]), stat=float(self.stat[i]),
            df=df if np.isfinite(df) else None, pvalue=float(self.pvalue[i]),
            ci_lower=float(self.ci_lower[i]), ci_upper=float(self.ci_upper[i]),
            tau2=float(self.tau2[i]), tau2_se=opt(self.tau2_se),
            tau2_ci_lower=opt(self.tau2_ci_lower), tau2_ci_upper=opt(self.tau2_ci_upper),
            tau=float(self.tau[i]), i2=float(self.i2[i]),
            i2_ci_lower=opt(self.i2_ci_lower), i2_ci_upper=opt(self.i2_ci_upper),
            h2=float(self.h2[i]), h2_ci_lower=opt(self.h2_ci_lower), h2_ci_upper=opt(self.h2_ci_upper),
            q=float(self.q[i]), q_df=int(self.q_df[i]), q_pvalue=float(self.q_pvalue[i]),
            pi_lower=opt(self.pi_lower), pi_upper=opt(self.pi_upper),
            weights=tuple(float(x) for x in self.weights[i][present]),
            converged=bool(self.converged[i]), iterations=int(self.iterations[i]),
            metafor_call=metafor_call(yi, vi, self.method, self.test, self.level, self.pi, fixed),
            pi=self.pi, yi=yi, vi=vi, notes=tuple(notes),
        )


def _qprofile(Y, V, mask, k, crit):
    """τ² at which the generalised Q equals ``crit`` (0 when Q(0) <= crit), shape (m,).

    Q(τ²) is decreasing and convex (:mod:`metaanalysis.estimators`), so Newton's method from
    τ² = 0 reaches the unique root from below (:func:`solve_convex_decreasing`).
    """
    m = Y.shape[0]
    out = np.zeros(m)
    need = k > 1
    if not need.any():
        return out
    idx = np.flatnonzero(need)
    sub = None if idx.size == m else idx
    Yi, Vi, Mi, ci = _take(Y, sub), _take(V, sub), _take(mask, sub), crit[idx]
    big = np.where(Mi, Yi, -np.inf).max(-1)
    small = np.where(Mi, Yi, np.inf).min(-1)
    # Q(τ²) <= R²·Σw <= k·R²/τ², so Q < crit beyond k·R²/crit
    hi = 1.01 * k[idx] * (big - small) ** 2 / ci + 1e-300
    n = idx.size

    def fd(x, s):
        every = s.size == n
        return q_and_slope(Yi if every else _take(Yi, s), Vi if every else _take(Vi, s),
                           Mi if every else _take(Mi, s), x, ci[s])

    out[idx] = solve_convex_decreasing(fd, np.zeros(n), hi, level=ci)[0]
    return out


def _tau2_fit(Y0, V0, mask, k, method: str, tau2):
    """τ² per analysis: estimated by ``method``, or the fixed ``tau2`` (shape (m,), already
    checked by :func:`_fixed_tau2`).

    Returns
    -------
    Tau2Fit
        Arrays of shape (m,); a fixed τ² keeps the common-effect fit's SE, iterations
        and convergence (none of them apply to a value given by the caller).
    """
    if tau2 is None:
        return estimate_tau2(Y0, V0, mask, k, method)
    fit = estimate_tau2(Y0, V0, mask, k, "FE")
    return type(fit)(np.array(tau2, dtype=float), fit.se, fit.iterations, fit.converged)


def _q_s2(Y0, V0, mask, k):
    """Cochran's Q (0 for k = 1) and metafor's typical within-study variance s², shape (m,).

    s² = (k − 1)Σwᵢ/((Σwᵢ)² − Σwᵢ²) with wᵢ = 1/vᵢ (Higgins & Thompson 2002,
    doi:10.1002/sim.1186). Call inside ``np.errstate(divide="ignore", invalid="ignore")``.
    """
    m = Y0.shape[0]
    w0 = np.where(mask, 1.0 / V0, 0.0)
    # k = 1: Q is 0 by definition (metafor), not the rounding noise of (y − μ̂)²
    q = np.where(k > 1, np.maximum(q_gen(Y0, V0, mask, np.zeros(m)), 0.0), 0.0)
    sw0 = w0.sum(-1)
    return q, (k - 1) * sw0 / (sw0**2 - (w0**2).sum(-1))


def _heterogeneity(q, s2, k, tau2, common_effect: bool):
    """Q's df and p-value, I² (%) and H², each of shape (m,), from Q and s² (:func:`_q_s2`).

    I² and H² are τ²-based with s² metafor's typical within-study variance (Higgins &
    Thompson 2002, doi:10.1002/sim.1186); for the common-effect model they come from Q,
    as in metafor. Call inside ``np.errstate(divide="ignore", invalid="ignore")``.
    """
    q_df = k - 1
    q_p = np.where(q_df > 0, dist.chi2_sf(q, np.maximum(q_df, 1)), 1.0)
    if common_effect:
        i2 = np.where((q > 0) & (k > 1), np.maximum(0.0, 100 * (q - q_df) / q), 0.0)
        h2 = np.where(q_df > 0, q / q_df, 1.0)
    else:
        i2 = np.where(k > 1, 100 * tau2 / (tau2 + s2), 0.0)
        h2 = np.where(k > 1, (tau2 + s2) / s2, 1.0)
    return q_df, q_p, i2, h2


def _by_df(quantile, a: float, df) -> np.ndarray:
    """``quantile(a, df)`` for an array of integer degrees of freedom, evaluated once per
    distinct df >= 1 (a batch has few; the special functions cost ~0.1 µs a call). Shape of df."""
    df = np.asarray(df).astype(int)
    table = quantile(a, np.arange(1, int(df.max(initial=1)) + 1, dtype=float))
    return table[df - 1]


def _inference(est, se, rss, k, test: str, alpha: float):
    """Test of the pooled estimate and its CI, each of shape (m,).

    ``test="z"``: Wald z; ``"knha"``/``"adhoc"``: the SE times √(rss/(k−1)), ``rss`` =
    Σwᵢ(yᵢ−μ̂)² (None is fine for ``test="z"``), the multiplier floored
    at 1 for adhoc, with t on k − 1 df (Knapp & Hartung 2003, doi:10.1002/sim.1482); with
    k = 1 metafor falls back to z, and so do we. Call inside ``np.errstate``.

    Returns
    -------
    se, df, crit, stat, pval, ci_lo, ci_hi
        ``df`` is NaN where the z test is used; ``crit`` is the two-sided critical value.
    """
    se, df, crit, ci_lo, ci_hi = _interval(est, se, rss, k, test, alpha)
    stat = est / se
    if test == "z":
        pval = 2 * dist.norm_sf(np.abs(stat))
    else:
        pval = np.where(np.isnan(df), 2 * dist.norm_sf(np.abs(stat)),
                        2 * dist.t_sf(np.abs(stat), np.where(np.isnan(df), 1.0, df)))
    return se, df, crit, stat, pval, ci_lo, ci_hi


def _interval(est, se, rss, k, test: str, alpha: float):
    """The CI part of :func:`_inference` (no test statistic, no p-value): ``se, df, crit,
    ci_lo, ci_hi``, each of shape (m,)."""
    use_t = (k > 1) if test != "z" else np.zeros(est.shape[0], dtype=bool)
    df = np.where(use_t, k - 1, np.nan).astype(float)
    if test != "z":
        # metafor: s2w = 0 when RSS <= machine epsilon (e.g. identical yi)
        s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / np.maximum(k - 1, 1))
        if test == "adhoc":
            s2w = np.maximum(s2w, 1.0)
        se = np.where(use_t, se * np.sqrt(s2w), se)
    if test == "z":   # (the t branch would cost a t quantile per distinct df)
        crit = np.full(est.shape[0], float(dist.norm_isf(alpha / 2)))
    else:
        crit = np.where(use_t, _by_df(dist.t_isf, alpha / 2, np.where(use_t, df, 1.0)), dist.norm_isf(alpha / 2))
    return se, df, crit, est - crit * se, est + crit * se


def _prediction_interval(est, se, tau2, k, crit, pi: str, common_effect: bool, alpha: float):
    """Prediction-interval bounds ``(lower, upper)``, each of shape (m,) (NaN where none).

    ``pi="metafor"`` uses the test's critical value ``crit``; ``"riley"`` t(k − 2) (Riley et
    al. 2011, doi:10.1136/bmj.d549), NaN below :data:`metaanalysis.vocab.RILEY_MIN_K`.
    The common-effect model has no between-study distribution to predict from (metafor
    gives none). Call inside ``np.errstate``.
    """
    if pi == "metafor":
        pcrit = crit
    else:
        riley = k >= vocab.RILEY_MIN_K
        pcrit = np.where(riley, _by_df(dist.t_isf, alpha / 2, np.where(riley, k - 2, 1)), np.nan)
    half = pcrit * np.sqrt(se**2 + tau2)
    if common_effect:
        half = np.full(est.shape[0], np.nan)
    return est - half, est + half


def _tau2_cis(Y0, V0, mask, k, wanted: bool, alpha: float):
    """Q-profile CI of τ² ``(lower, upper)`` (Viechtbauer 2007, doi:10.1002/sim.2514).

    Shape (m,) each; NaN for k = 1 and everywhere when not ``wanted`` (the common-effect
    model has no τ², or the caller asked for no CIs).
    """
    m = Y0.shape[0]
    if not wanted:
        return np.full(m, np.nan), np.full(m, np.nan)
    dfq = np.maximum(k - 1, 1)
    t_lo = _qprofile(Y0, V0, mask, k, _by_df(dist.chi2_isf, alpha / 2, dfq))
    t_hi = _qprofile(Y0, V0, mask, k, _by_df(dist.chi2_ppf, alpha / 2, dfq))
    return np.where(k > 1, t_lo, np.nan), np.where(k > 1, t_hi, np.nan)


def pool_many(Y, V, *, method: str = "REML", test: str = "z", level: float = 0.95,
              pi: str = "metafor", tau2: float | None = None, tau2_ci: bool = True) -> PoolArrays:
    """Pool m meta-analyses at once.

    Parameters
    ----------
    Y, V : array_like, shape (m, k)
        Effect sizes (analysis scale, e.g. log HR) and sampling variances (squared SE);
        NaN-pad rows with fewer than k studies.
    method : {"REML", "DL", "ML", "PM", "EB", "HS", "SJ", "HE", "FE"}
        τ² estimator, or "FE" for the common-effect model (any case: ``"reml"`` is "REML").
    test : {"z", "knha", "adhoc"}
        Any case.
    level : float
        Confidence level, 0.95 or 95 (:func:`metaanalysis.vocab.as_level`).
    pi : {"metafor", "riley"}
        Prediction-interval convention (see module docstring).
    tau2 : float or array_like of shape (m,), optional
        Use this fixed τ² instead of estimating it (metafor's ``rma(..., tau2=)``): one value
        for every analysis (e.g. a τ² shared across subgroups) or one per analysis (e.g. an
        estimate reused under another test, as :mod:`metaanalysis.coverage` does).
    tau2_ci : bool
        Compute the Q-profile CIs of τ², I² and H² (two root-findings per analysis, most of
        the time of a DL fit). False leaves those six fields NaN, for callers that only need
        the pooled estimate and its intervals (e.g. :mod:`metaanalysis.coverage`); every
        other field is identical. (:func:`fit_many` returns only τ², the estimate and its SE.)

    Returns
    -------
    PoolArrays
        ``.row(i)`` gives the :class:`MetaResult` of analysis i; ``method``/``test``/``pi``
        are the canonical codes and ``level`` a fraction.

    Notes
    -----
    Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
    J Stat Softw 36(3). doi:10.18637/jss.v036.i03
    """
    method, test, level, pi = check_args(method, test, level, pi)
    Y, V = _as_batch(Y, V)
    m = Y.shape[0]
    fixed = None
    if tau2 is not None:
        fixed = _fixed_tau2(tau2, m)
    out: dict = {}
    step = max(1, _CHUNK_ELEMENTS // max(Y.shape[-1], 1))
    for s in range(0, max(m, 1), step):
        # one block of rows at a time: temporaries stay ~_CHUNK_ELEMENTS floats whatever m is
        part = _pool_block(Y[s:s + step], V[s:s + step], method, test, level, pi,
                           None if fixed is None else fixed[s:s + step], tau2_ci)
        for name, arr in part.items():
            if name not in out:
                out[name] = np.empty((m,) + arr.shape[1:], dtype=arr.dtype)
            out[name][s:s + step] = arr
    return PoolArrays(method=method, test=test, level=level, pi=pi, **out,
                      tau2_fixed=None if tau2 is None else (float(tau2) if np.ndim(tau2) == 0 else fixed))


def _fixed_tau2(tau2, m: int) -> np.ndarray:
    """A fixed τ² given to :func:`pool_many` as one value per analysis, shape (m,)."""
    t = np.asarray(tau2, dtype=float)
    if t.ndim == 0:
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"a fixed tau2 must be a finite number >= 0, got {tau2!r}")
        return np.full(m, float(t))
    if t.shape != (m,) or not (np.isfinite(t).all() and (t >= 0).all()):
        raise ValueError(f"a fixed tau2 must be a number or one finite value >= 0 per analysis "
                         f"(shape ({m},)), got shape {t.shape}")
    return t.copy()


def _pool_block(Y, V, method, test, level, pi, tau2, tau2_ci) -> dict:
    """Every :class:`PoolArrays` array field for one block of rows (``Y``, ``V`` (n, k);
    ``tau2`` None or the fixed values, shape (n,))."""
    alpha = 1 - level
    common_effect = method == "FE"
    c = _block_core(Y, V, method, test != "z", tau2_ci and not common_effect, alpha, tau2)
    k, t2, est = c["k"], c["tau2"], c["est"]
    with np.errstate(divide="ignore", invalid="ignore"):
        q_df, q_p, i2, h2 = _heterogeneity(c["q"], c["s2"], k, t2, common_effect)
        se, df, crit, stat, pval, ci_lo, ci_hi = _inference(est, c["se"], c["rss"], k, test, alpha)
        pi_lo, pi_hi = _prediction_interval(est, se, t2, k, crit, pi, common_effect, alpha)
        t_lo, t_hi, s2 = c["ci_lo"], c["ci_hi"], c["s2"]
        i2_lo, i2_hi = 100 * t_lo / (t_lo + s2), 100 * t_hi / (t_hi + s2)
        h2_lo, h2_hi = (t_lo + s2) / s2, (t_hi + s2) / s2
    return dict(
        k=k, estimate=est, se=se, stat=stat, df=df, pvalue=pval, ci_lower=ci_lo, ci_upper=ci_hi,
        tau2=t2, tau2_se=c["tau2_se"], tau2_ci_lower=t_lo, tau2_ci_upper=t_hi, tau=np.sqrt(t2),
        i2=i2, i2_ci_lower=i2_lo, i2_ci_upper=i2_hi, h2=h2, h2_ci_lower=h2_lo, h2_ci_upper=h2_hi,
        q=c["q"], q_df=q_df, q_pvalue=q_p, pi_lower=pi_lo, pi_upper=pi_hi, weights=c["weights"],
        converged=c["conv"], iterations=c["iters"], yi=c["yi"], vi=c["vi"],
    )


def _as_batch(Y, V) -> tuple[np.ndarray, np.ndarray]:
    """``Y``, ``V`` as float arrays of shape (m, k) (one analysis: a single row); ValueError
    unless both have that same shape."""
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    V = np.atleast_2d(np.asarray(V, dtype=float))
    if Y.shape != V.shape or Y.ndim != 2:
        raise ValueError(f"yi and vi must be (m, k) arrays of the same shape, got {Y.shape} and {V.shape}")
    return Y, V


def _block_core(Y, V, method, want_rss, want_ci, alpha, tau2, lean: bool = False) -> dict:
    """The per-analysis sums of one block: by the C kernel where it runs, else by numpy.

    :func:`metaanalysis._compiled.pool_rows` computes the rows it can (every value finite,
    every variance > 0; it flags the rest, e.g. NaN-padded rows) and :func:`_numpy_core` the
    others; both give the keys of :func:`_numpy_core` and agree to rounding
    (tests/test_kernel.py). ``lean``: only ``tau2``, ``est``, ``se`` (and ``rss``) from the
    kernel, the other keys are left out of its rows (:func:`interval_bounds_many`).
    """
    n, width = Y.shape
    want = ["tau2", "est", "se"] if lean else ["tau2", "tau2_se", "iters", "conv", "est", "se", "q", "s2", "weights"]
    want += ["rss"] if want_rss else []
    crit = (np.nan, np.nan)
    if want_ci:
        want += ["ci_lo", "ci_hi"]
        df = np.array([max(width - 1, 1)])
        crit = (_by_df(dist.chi2_isf, alpha / 2, df)[0], _by_df(dist.chi2_ppf, alpha / 2, df)[0])
    c = _compiled.pool_rows(Y, V, method, want, fixed=tau2, crit=crit)
    if c is None:
        return _numpy_core(Y, V, method, want_rss, want_ci, alpha, tau2)
    bad = c.pop("fallback")
    c.update(k=np.full(n, width), rss=c.get("rss"))
    if not lean:
        c.update(yi=np.array(Y, dtype=float), vi=np.array(V, dtype=float),
                 ci_lo=c.get("ci_lo", np.full(n, np.nan)), ci_hi=c.get("ci_hi", np.full(n, np.nan)))
    if bad.any():
        idx = np.flatnonzero(bad)
        sub = _numpy_core(Y[idx], V[idx], method, want_rss, want_ci, alpha,
                          None if tau2 is None else tau2[idx])
        for name, arr in sub.items():
            if arr is not None and name in c:
                c[name][idx] = arr
    return c


def _numpy_core(Y, V, method, want_rss, want_ci, alpha, tau2) -> dict:
    """:func:`_block_core` by the numpy engine: k, the τ² fit (``tau2``, ``tau2_se``,
    ``iters``, ``conv``), ``est``, ``se`` (√(1/Σwᵢ)), ``q``, ``s2``, ``rss`` (None unless
    ``want_rss``), ``weights`` (%), the Q-profile ``ci_lo``/``ci_hi`` (NaN unless ``want_ci``)
    and the NaN-masked ``yi``/``vi``; shapes (n,) and (n, k)."""
    Y0, V0, mask, k = prepare(np.asfortranarray(Y), np.asfortranarray(V))
    fit = _tau2_fit(Y0, V0, mask, k, method, tau2)
    t2 = fit.tau2
    w = np.where(mask, 1.0 / (V0 + t2[:, None]), 0.0)
    sw = w.sum(-1)
    est = (w * Y0).sum(-1) / sw
    with np.errstate(divide="ignore", invalid="ignore"):
        q, s2 = _q_s2(Y0, V0, mask, k)
        rss = (w * (Y0 - est[:, None]) ** 2).sum(-1) if want_rss else None
        t_lo, t_hi = _tau2_cis(Y0, V0, mask, k, want_ci, alpha)
    return dict(k=k, tau2=t2, tau2_se=fit.se, iters=fit.iterations, conv=fit.converged, est=est,
                se=np.sqrt(1.0 / sw), q=q, s2=s2, rss=rss,
                weights=np.where(mask, 100 * w / sw[:, None], np.nan), ci_lo=t_lo, ci_hi=t_hi,
                yi=np.where(mask, Y0, np.nan), vi=np.where(mask, V0, np.nan))


def interval_bounds_many(Y, V, *, method: str = "REML", tests=("z",), level: float = 0.95,
                         pi: str = "metafor") -> dict[str, tuple[np.ndarray, ...]]:
    """The CI and PI bounds of several tests from one τ² fit per analysis: what
    :func:`pool_many` gives as ``ci_lower``, ``ci_upper``, ``pi_lower``, ``pi_upper`` for each
    test, without everything else (p-values, Q, I², H², weights, the Q-profile CIs).

    Parameters
    ----------
    Y, V : array_like, shape (m, k)
        As for :func:`pool_many`.
    method, level, pi
        As for :func:`pool_many` (``"FE"``: the common-effect model, no PI).
    tests : sequence of str
        Tests whose intervals are wanted (any case).

    Returns
    -------
    dict
        Canonical test code → ``(ci_lower, ci_upper, pi_lower, pi_upper)``, each of shape (m,),
        equal to :func:`pool_many`'s fields (the same code computes them; tests/test_pooling.py).

    Notes
    -----
    For simulations (:mod:`metaanalysis.coverage`) that need only the intervals of many
    analyses. Knapp G, Hartung J (2003). Stat Med 22:2693. doi:10.1002/sim.1482
    """
    method, _, level, pi = check_args(method, "z", level, pi)
    tests = [vocab.canonical_test(t) for t in tests]
    Y, V = _as_batch(Y, V)
    alpha = 1 - level
    out: dict[str, list] = {t: [] for t in tests}
    step = max(1, _CHUNK_ELEMENTS // max(Y.shape[-1], 1))
    for s in range(0, max(Y.shape[0], 1), step):
        c = _block_core(Y[s:s + step], V[s:s + step], method, any(t != "z" for t in tests), False, alpha, None,
                        lean=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            for t in tests:
                se, _, crit, lo, hi = _interval(c["est"], c["se"], c["rss"], c["k"], t, alpha)
                out[t].append((lo, hi) + _prediction_interval(c["est"], se, c["tau2"], c["k"], crit, pi,
                                                                method == "FE", alpha))
    return {t: tuple(np.concatenate(part) for part in zip(*parts)) for t, parts in out.items()}


class Fit(NamedTuple):
    """What :func:`fit_many` returns: arrays of shape (m,)."""

    tau2: np.ndarray
    estimate: np.ndarray
    se: np.ndarray


def fit_many(Y, V, *, method: str = "REML") -> Fit:
    """τ², the pooled estimate and its (Wald) SE of m meta-analyses, and nothing else.

    The three numbers PyMARE's estimators return, for callers that need no more (e.g. a
    simulation): equal to the same fields of :func:`pool_many` (``test="z"``), without
    computing the others. Rows that the C kernel does not take (NaN padding, bad values)
    and every row when it is not built go through :func:`pool_many`, so the errors are its.

    Parameters
    ----------
    Y, V : array_like, shape (m, k)
        As :func:`pool_many`.
    method : str
        As :func:`pool_many`.

    Returns
    -------
    Fit
        ``tau2``, ``estimate``, ``se``, each of shape (m,).

    Notes
    -----
    Viechtbauer W (2005). Bias and efficiency of meta-analytic variance estimators in the
    random-effects model. J Educ Behav Stat 30(3):261-93. doi:10.3102/10769986030003261
    """
    method = vocab.canonical_method(method)
    Y, V = _as_batch(Y, V)
    c = _compiled.pool_rows(Y, V, method, ("tau2", "est", "se"))
    if c is None:
        r = pool_many(Y, V, method=method, tau2_ci=False)
        return Fit(r.tau2, r.estimate, r.se)
    if c["fallback"].any():
        idx = np.flatnonzero(c["fallback"])
        r = pool_many(Y[idx], V[idx], method=method, tau2_ci=False)
        c["tau2"][idx], c["est"][idx], c["se"][idx] = r.tau2, r.estimate, r.se
    return Fit(c["tau2"], c["est"], c["se"])


def pool(yi, vi, *, method: str = "REML", test: str = "z", level: float = 0.95,
         pi: str = "metafor", tau2: float | None = None) -> MetaResult:
    """Pool one meta-analysis.

    Parameters
    ----------
    yi : array_like, shape (k,)
        Effect sizes on the analysis scale (log HR / log OR / log RR, or MD, SMD, RD).
    vi : array_like, shape (k,)
        Sampling variances (SE², same scale), all > 0.
    method, test, level, pi, tau2
        See :func:`pool_many`.

    Returns
    -------
    MetaResult

    Examples
    --------
    >>> import numpy as np
    >>> r = pool(np.log([0.8, 1.01, 0.96]), [0.0139, 0.0077, 0.0119], method="DL")
    >>> round(float(np.exp(r.estimate)), 3)
    0.936
    """
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    if yi.ndim != 1 or vi.ndim != 1:
        raise ValueError("pool() takes 1-D yi and vi; use pool_many() for an (m, k) batch")
    if yi.shape != vi.shape:
        raise ValueError(f"yi and vi must have the same length, got {yi.size} and {vi.size}")
    if yi.size == 0:
        raise ValueError("no studies to pool (yi is empty)")
    y, v = yi.tolist(), vi.tolist()
    if not (all(map(math.isfinite, y)) and all(map(math.isfinite, v))):
        raise ValueError("yi and vi must be finite numbers (no NaN/inf) in pool()")
    if len(y) <= single.MAX_K and np.ndim(tau2) == 0:
        # the plain-float path (metaanalysis.single): same algorithms, no numpy overhead
        method, test, level, pi = check_args(method, test, level, pi)
        if min(v) <= 0:
            raise ValueError("sampling variances vi must be > 0")
        fixed = None if tau2 is None else float(_fixed_tau2(tau2, 1)[0])
        r = single.pool_one(y, v, method, test, level, pi, fixed)
        if r is not None:
            return r
    return pool_many(yi[None, :], vi[None, :], method=method, test=test, level=level, pi=pi,
                     tau2=tau2).row(0)
