"""The optional C kernel of :func:`metaanalysis.pooling.pool_many` (and of the Bayesian quantile
search), loaded with ctypes.

``metaanalysis/_kernel.c`` is built by ``pip install`` as the extension module
``metaanalysis._kernel`` (setup.py; ``optional=True``, so an install without a C compiler
still succeeds). It is not imported as a Python module: this file opens the shared library
at that module's path and passes numpy arrays to it as ``double *``. :data:`LIB` is the
library, or ``None`` when it is missing, cannot be loaded or was built from another version
of the C file; :func:`pool_rows` then returns ``None`` and the numpy engine does the work.
This is the only place that decides which path runs (tests/test_kernel.py forces both).

The kernel runs the algorithms of :mod:`metaanalysis.estimators` row by row (global grid +
bracketed Newton for REML/ML, Newton on the convex Q(τ²) for PM/EB and the Q-profile CIs;
Viechtbauer 2005, doi:10.3102/10769986030003261, for the REML score); results agree with the
numpy engine to rounding. Rows it does not handle (a non-finite value, a variance <= 0, a
REML/ML grid cell without a sign change of the score, an iteration that does not settle) are
flagged, and the caller computes them with the numpy engine.

It also runs the quantile search of :func:`metaanalysis.bayesian.central_intervals_many`
(:func:`central_quantiles`: the two ends of each row's central credible interval of μ, by the
numpy code's algorithm, stopping rules and tolerances; ``None`` without the library, and the
numpy code runs).
"""

from __future__ import annotations

import ctypes
import importlib.util

import numpy as np

from . import estimators as est

__all__ = ["LIB", "pool_rows", "central_quantiles", "common_rule", "common_median",
           "normal_cdf_and_quantile", "cv_estimates", "METHOD_CODES", "OUTPUTS"]

_ABI = 3   # the C file's MA_ABI: a library built from another version is not used
#: ``method=`` → the kernel's method number (enum in _kernel.c).
METHOD_CODES = {"FE": 0, "DL": 1, "HE": 2, "HS": 3, "SJ": 4, "ML": 5, "REML": 6, "PM": 7, "EB": 8}
#: The REML/ML grid relative to the upper bound, exactly as estimators._grid_best makes it.
_GRID = np.concatenate([[0.0], np.geomspace(est._GRID_SPAN, 1.0, est._GRID_POINTS)])

_P = ctypes.c_void_p


class _Args(ctypes.Structure):
    _fields_ = [("method", ctypes.c_int), ("fixed", _P), ("grid", _P), ("ngrid", ctypes.c_long),
                ("crit_lo", ctypes.c_double), ("crit_hi", ctypes.c_double)]


#: Output arrays of the kernel, in the order of ``ma_out`` in _kernel.c.
OUTPUTS = ("tau2", "tau2_se", "est", "se", "q", "s2", "rss", "weights", "ci_lo", "ci_hi",
           "iters", "conv", "fallback")


class _Out(ctypes.Structure):
    _fields_ = [(name, _P) for name in OUTPUTS]


class _QuantileArgs(ctypes.Structure):
    """``mq_args`` in _kernel.c: levels, their probits and the tolerances of the search."""
    _fields_ = [("p", ctypes.c_double * 2), ("zp", ctypes.c_double * 2), ("prune", ctypes.c_double),
                ("coarse_tol", ctypes.c_double), ("tol", ctypes.c_double), ("max_iter", ctypes.c_long),
                ("coarse_min", ctypes.c_long), ("log_sqrt_2pi", ctypes.c_double)]


def _load():
    """The kernel library, or None (missing, not loadable, or another interface version)."""
    try:
        spec = importlib.util.find_spec(__package__ + "._kernel")
        if spec is None or not spec.origin:
            return None
        lib = ctypes.CDLL(spec.origin)
        lib.ma_abi.restype = ctypes.c_int
        if lib.ma_abi() != _ABI:
            return None
        lib.ma_pool.restype = ctypes.c_long
        lib.ma_pool.argtypes = [_P, _P, ctypes.c_long, ctypes.c_long, ctypes.POINTER(_Args),
                                ctypes.POINTER(_Out)]
        lib.ma_central_quantiles.restype = ctypes.c_long
        lib.ma_central_quantiles.argtypes = [_P, _P, _P, _P, ctypes.c_long, _P, _P, ctypes.c_long,
                                             ctypes.c_long, ctypes.POINTER(_QuantileArgs), _P, _P]
        lib.ma_common_rule.restype = ctypes.c_long
        lib.ma_common_rule.argtypes = [_P, ctypes.c_long, ctypes.c_long, _P, ctypes.c_long, _P, _P,
                                       ctypes.c_double, _P, _P, _P]
        lib.ma_common_median.restype = ctypes.c_long
        lib.ma_common_median.argtypes = [_P, ctypes.c_long, ctypes.c_long, _P, ctypes.c_long, _P, _P,
                                         ctypes.c_double, _P, _P, _P]
        for name in ("ma_ndtr", "ma_ndtri"):
            getattr(lib, name).restype = None
            getattr(lib, name).argtypes = [_P, ctypes.c_long, _P]
        # _kernel_cv.c (a library built without it lacks the symbol: AttributeError, not used)
        lib.ma_cv_estimates.restype = ctypes.c_long
        lib.ma_cv_estimates.argtypes = [_P, _P, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_double,
                                        _P, _P]
    except (OSError, AttributeError, ImportError, ValueError):
        return None
    return lib


LIB = _load()

_DTYPES = {"iters": np.int64, "conv": np.bool_, "fallback": np.bool_}


def pool_rows(Y, V, method: str, want, fixed=None, crit=(np.nan, np.nan)):
    """Run the kernel over the rows of ``Y``, ``V``; ``None`` when it is not available.

    Parameters
    ----------
    Y, V : ndarray of float64, shape (m, k), C-contiguous
        Effects and sampling variances. Rows with a non-finite value or a variance <= 0 are
        flagged in ``fallback`` and nothing else is written for them.
    method : str
        A canonical code of :data:`metaanalysis.vocab.METHODS`.
    want : iterable of str
        Names from :data:`OUTPUTS` to compute (others are not computed): ``tau2``,
        ``tau2_se``, ``iters``, ``conv`` (the τ² fit), ``est``, ``se`` (√(1/Σwᵢ)), ``q``
        (Cochran's Q), ``s2`` (metafor's typical within-study variance), ``rss``
        (Σwᵢ(yᵢ − μ̂)², for the Knapp-Hartung multiplier), ``weights`` (percent, (m, k)),
        ``ci_lo``/``ci_hi`` (Q-profile CI of τ² at the levels ``crit``).
    fixed : ndarray, shape (m,), optional
        A fixed τ² per row instead of the estimate.
    crit : (float, float)
        χ²(k − 1) levels of the Q-profile bounds: the upper and the lower α/2 quantile.

    Returns
    -------
    dict or None
        Name → array (shape (m,), ``weights`` (m, k)), plus ``fallback`` (bool, shape (m,)):
        the rows to compute with the numpy engine.

    Notes
    -----
    Viechtbauer W (2005). Bias and efficiency of meta-analytic variance estimators in the
    random-effects model. J Educ Behav Stat 30(3):261-93. doi:10.3102/10769986030003261
    """
    if LIB is None:
        return None
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    V = np.ascontiguousarray(V, dtype=np.float64)
    m, k = Y.shape
    out = {name: np.empty((m, k) if name == "weights" else m, dtype=_DTYPES.get(name, np.float64))
           for name in (*want, "fallback")}
    if fixed is not None:
        fixed = np.ascontiguousarray(fixed, dtype=np.float64)
    args = _Args(METHOD_CODES[method], None if fixed is None else fixed.ctypes.data,
                 _GRID.ctypes.data, _GRID.size, float(crit[0]), float(crit[1]))
    ptrs = _Out(*(out[name].ctypes.data if name in out else None for name in OUTPUTS))
    if LIB.ma_pool(Y.ctypes.data, V.ctypes.data, m, k, ctypes.byref(args), ctypes.byref(ptrs)) < 0:
        raise MemoryError("metaanalysis._kernel: out of memory")
    return out


def central_quantiles(levels, probits, mass, mean, sd, keep, *, prune, coarse_tol, tol, max_iter,
                      coarse_min, log_sqrt_2pi):
    """The two quantiles of each row's normal mixture by the kernel; ``None`` when it is not
    available (then :func:`metaanalysis.bayesian._central_quantiles` runs its numpy code).

    Parameters
    ----------
    levels, probits : (float, float)
        The lower and upper tail levels p and Φ⁻¹(p).
    mass, mean, sd : ndarray of float, shape (m, n)
        The mixtures Σ_j mass_j N(mean_j, sd_j²), one per row (masses sum to 1 over ``keep``).
    keep : ndarray of bool, shape (w,), w >= n
        The columns that make up the mixtures; the even columns among them are the rule of
        twice the step (the accuracy check). Columns n and beyond are massless unit normals
        (mass 0, mean 0, SD 1): a group of rows narrower than the batch's widest, padded
        without making the padded arrays (they add 0, but hold their places in the coarse pass).
    prune, coarse_tol, tol, max_iter, coarse_min, log_sqrt_2pi
        The constants of :func:`metaanalysis.bayesian._central_quantiles` (it passes its own).

    Returns
    -------
    (x, gap) or None
        ``x`` (2m,): the lower ends of the m rows, then the upper ends; ``gap`` (2m,): the
        distance of the check rule's CDF from its level there.

    Notes
    -----
    Newton's method on the probit of the mixture CDF inside a bracket, as in the numpy code
    (Röver 2020, J Stat Softw 93(6), doi:10.18637/jss.v093.i06, for the model). The kernel
    reads the kept columns in place: rows may be a view of wider arrays (no copies).
    """
    if LIB is None:
        return None
    m, n = np.shape(mass)
    arrays = [np.asarray(a, dtype=np.float64) for a in (mass, mean, np.broadcast_to(sd, (m, n)))]
    arrays = [a if a.strides[1] == 8 and a.strides[0] % 8 == 0 else np.ascontiguousarray(a)
              for a in arrays]   # rows may be views of wider arrays, or all one row (stride 0)
    ld = np.array([a.strides[0] // 8 for a in arrays], dtype=f"i{ctypes.sizeof(ctypes.c_long)}")
    cols = np.flatnonzero(keep).astype(f"i{ctypes.sizeof(ctypes.c_long)}")
    even = np.ascontiguousarray(cols % 2 == 0, dtype=np.uint8)
    args = _QuantileArgs((ctypes.c_double * 2)(*levels), (ctypes.c_double * 2)(*probits), prune,
                         coarse_tol, tol, max_iter, coarse_min, log_sqrt_2pi)
    x, gap = np.empty(2 * m), np.empty(2 * m)
    if LIB.ma_central_quantiles(*(a.ctypes.data for a in arrays), ld.ctypes.data, n,
                                cols.ctypes.data, even.ctypes.data, m, cols.size, ctypes.byref(args),
                                x.ctypes.data, gap.ctypes.data) < 0:
        raise MemoryError("metaanalysis._kernel: out of memory")
    return x, gap


def common_rule(Y, Wt, sw, base, w0: float = 0.0, y0=None):
    """Masses and conditional means of μ (m, n) of the rows ``Y`` on one shared τ rule, by the
    kernel; ``None`` when it is not available (then
    :func:`metaanalysis.bayesian._common_rule` runs its numpy code).

    Parameters
    ----------
    Y : ndarray, shape (m, k)
        Effects, centred per row.
    Wt : ndarray, shape (k, n)
        The weights 1 / (vᵢ + τⱼ²) at the n nodes.
    sw, base : ndarray, shape (n,)
        Σᵢ wᵢ (+ w0), and log p(τ) + Σ log wᵢ / 2 + log dτ − log(sw) / 2 at each node.
    w0, y0 : float, ndarray (m,) or None
        A normal prior N(y0, 1/w0) on μ per row (centred like ``Y``), or none.

    Returns
    -------
    (mass, mean) or None
        Per row, the masses exp(l − max l) / Σ exp(l − max l) of the log kernel
        l = base − Q/2, and Σwy / sw, each (m, n).

    Notes
    -----
    The model of Röver 2020 (J Stat Softw 93(6), doi:10.18637/jss.v093.i06), as in the numpy code.
    """
    if LIB is None:
        return None
    Y, Wt, sw, base = (np.ascontiguousarray(a, dtype=np.float64) for a in (Y, Wt, sw, base))
    (m, k), n = Y.shape, sw.size
    y0 = None if y0 is None else np.ascontiguousarray(y0, dtype=np.float64)
    mass, mean = np.empty((m, n)), np.empty((m, n))
    if LIB.ma_common_rule(Y.ctypes.data, m, k, Wt.ctypes.data, n, sw.ctypes.data, base.ctypes.data,
                          float(w0), None if y0 is None else y0.ctypes.data, mass.ctypes.data,
                          mean.ctypes.data) < 0:
        raise MemoryError("metaanalysis._kernel: out of memory")
    return mass, mean


def _rule_args(Y, Wt, sw, base, y0):
    """The arguments of one shared rule as contiguous float64 arrays (see :func:`common_rule`)."""
    Y, Wt, sw, base = (np.ascontiguousarray(a, dtype=np.float64) for a in (Y, Wt, sw, base))
    y0 = None if y0 is None else np.ascontiguousarray(y0, dtype=np.float64)
    return Y, Wt, sw, base, y0


def common_median(Y, Wt, sw, base, w0, y0, tau):
    """Per row of ``Y`` on one shared rule (as :func:`common_rule`), the first node ``tau`` (n,)
    where the cumulative mass reaches 1/2, by the kernel (the same sums as numpy's cumsum of
    :func:`common_rule`'s masses); ``None`` when it is not available."""
    if LIB is None:
        return None
    Y, Wt, sw, base, y0 = _rule_args(Y, Wt, sw, base, y0)
    tau = np.ascontiguousarray(tau, dtype=np.float64)
    (m, k), n = Y.shape, sw.size
    out = np.empty(m)
    if LIB.ma_common_median(Y.ctypes.data, m, k, Wt.ctypes.data, n, sw.ctypes.data, base.ctypes.data,
                            float(w0), None if y0 is None else y0.ctypes.data, tau.ctypes.data,
                            out.ctypes.data) < 0:
        raise MemoryError("metaanalysis._kernel: out of memory")
    return out


def normal_cdf_and_quantile(z, p):
    """Φ(z) and Φ⁻¹(p) (1-D float arrays) as the kernel's quantile search computes them: W. J.
    Cody's rational approximations (ACM TOMS 19:22-32, 1993) and Cephes ``ndtri``; ``None``
    when the kernel is not available. For tests/test_bayes_kernel.py."""
    if LIB is None:
        return None
    z, p = (np.ascontiguousarray(a, dtype=np.float64) for a in (z, p))
    cdf, quantile = np.empty(z.size), np.empty(p.size)
    LIB.ma_ndtr(z.ctypes.data, z.size, cdf.ctypes.data)
    LIB.ma_ndtri(p.ctypes.data, p.size, quantile.ctypes.data)
    return cdf, quantile


def cv_estimates(C, X, ridge: float):
    """Cross-fitted control-variate estimates of the column means of ``X`` (n, r) on the controls
    ``C`` (n, p, minus their exact means): what :class:`metaanalysis.coverage._ControlFit` computes
    with numpy, by ``ma_cv_estimates`` (_kernel_cv.c, sums in index order, no BLAS). Returns
    ``(estimates, mcse)`` (r,), or ``None`` when the kernel is not available or a half's
    correlation matrix is not positive definite (then the numpy code runs).

    Notes
    -----
    Nelson BL (1990). Control variate remedies. Oper Res 38(6):974-92 (splitting).
    """
    if LIB is None:
        return None
    C, X = (np.ascontiguousarray(a, dtype=np.float64) for a in (C, X))
    (n, p), r = C.shape, X.shape[1]
    est, se = np.empty(r), np.empty(r)
    got = LIB.ma_cv_estimates(C.ctypes.data, X.ctypes.data, n, p, r, float(ridge), est.ctypes.data, se.ctypes.data)
    if got == -2:
        raise MemoryError("metaanalysis._kernel: out of memory")
    return None if got < 0 else (est, se)
