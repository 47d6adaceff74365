"""τ² (between-study variance) estimators as pure, vectorised functions of ``(Y, V)``.

Every function takes arrays of shape ``(m, k)`` (m meta-analyses of up to k studies;
missing studies are NaN and masked out) and returns arrays of shape ``(m,)``.
Formulas follow metafor 3.8 ``rma.uni`` (Viechtbauer 2010, doi:10.18637/jss.v036.i03)
so that results agree with it to 1e-6; see tests/reference/ for the fixtures.

Why not PyMARE / statsmodels for these? Measured against metafor (benchmarks/README.md,
2,000 random datasets): PyMARE's DL agrees to 1e-15 and its REML to ~1e-8, but PyMARE has
no PM, EB, HS, SJ, no metafor SE of τ², no Q-profile CIs, and its batches need equal k.
statsmodels' ``combine_effects`` does not floor DL at 0 (398 of the 2,000 came out negative)
and solves PM only to its atol 1e-5. Splitting the estimators between PyMARE (two of them)
and our own code (the rest) would give two code paths to keep in agreement, so all eight
are written here, vectorised over NaN-padded (m, k) arrays, and PyMARE/statsmodels are
compared in ``benchmarks/bench_pool.py``. The iterative estimators use a bracketed, global
search that cannot fail to converge:

1. the objective (REML/ML log-likelihood) or estimating equation (PM, EB) is evaluated
   on a grid over ``[0, U]`` where ``U`` provably bounds every root / maximiser;
2. the best grid cell (global maximum / first sign change) is refined by a bracketed
   Illinois (modified regula falsi) iteration to ~1e-15 relative precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import vocab

__all__ = [
    "TAU2_METHODS", "ITERATIVE_METHODS", "Tau2Fit", "prepare", "estimate_tau2", "q_gen",
    "solve_decreasing",
]

#: Estimators of τ² accepted by ``method=`` (besides "FE", the common-effect model), in the
#: vocabulary's order and canonical case.
TAU2_METHODS: tuple[str, ...] = tuple(vocab.TAU2_ESTIMATORS)
#: The estimators solved iteratively (the rest are closed forms); metafor needs tight
#: ``control`` settings to reproduce them to 1e-12.
ITERATIVE_METHODS = ("ML", "REML", "PM", "EB")

_GRID_POINTS = 48        # grid for locating the global optimum (geometric in τ²)
_GRID_SPAN = 1e-10       # smallest positive grid point, relative to the upper bound
_MAX_ITER = 200
_BLOCK = 2048            # rows per block for the grid evaluation
# Elements of one (rows, g, k) grid temporary (2**22 = 32 MiB of float64): a leave-one-out or
# cumulative batch has m = k rows, so blocks of a fixed row count would need memory ~ k² g.
_BLOCK_ELEMENTS = 2 ** 22


def _row_blocks(n: int, g: int, k: int) -> range:
    """Starts of the row blocks of an (n, g, k) grid evaluation: at most :data:`_BLOCK` rows and
    about :data:`_BLOCK_ELEMENTS` elements per block (rows are independent, so the blocking does
    not change a single bit of the result)."""
    return range(0, n, max(1, min(_BLOCK, _BLOCK_ELEMENTS // max(g * k, 1))))


@dataclass(frozen=True)
class Tau2Fit:
    """τ² estimates for m analyses (arrays of shape ``(m,)``)."""

    tau2: np.ndarray
    se: np.ndarray          # metafor's se.tau2 (NaN where not defined)
    iterations: np.ndarray  # solver iterations (0 for closed forms)
    converged: np.ndarray   # bool


def prepare(yi, vi):
    """Validate and mask inputs.

    Parameters
    ----------
    yi, vi : array_like, shape (k,) or (m, k)
        Effect sizes and their sampling variances; NaN marks an absent study.

    Returns
    -------
    Y, V : ndarray, shape (m, k)
        With absent entries set to 0 (Y) and 1 (V) so arithmetic stays finite.
    mask : ndarray of bool, shape (m, k)
    k : ndarray of int, shape (m,)
    """
    Y = np.atleast_2d(np.asarray(yi, dtype=float))
    V = np.atleast_2d(np.asarray(vi, dtype=float))
    if Y.shape != V.shape:
        raise ValueError(f"yi and vi must have the same shape, got {Y.shape} and {V.shape}")
    if Y.ndim != 2:
        raise ValueError(f"yi must be 1-D (k,) or 2-D (m, k), got {Y.ndim}-D")
    mask = np.isfinite(Y) & np.isfinite(V)
    if np.any(np.isfinite(Y) != np.isfinite(V)):
        raise ValueError("yi and vi must be missing (NaN) in the same places")
    if np.any(V[mask] <= 0):
        raise ValueError("sampling variances vi must be > 0")
    k = mask.sum(axis=1)
    if np.any(k < 1):
        raise ValueError("every analysis needs at least one study with finite yi and vi")
    return np.where(mask, Y, 0.0), np.where(mask, V, 1.0), mask, k


def _w(V, mask, tau2):
    """Inverse-variance weights 1/(v + τ²), zero where masked. Shapes broadcast."""
    return np.where(mask, 1.0 / (V + tau2), 0.0)


def _wmean(w, Y):
    return (w * Y).sum(axis=-1) / w.sum(axis=-1)


def _centred_ss(Y, mask, k):
    """Unweighted mean and Σ(yᵢ − ȳ)², exactly 0 when all yᵢ are equal.

    A second pass corrects the mean's rounding error (as R's ``mean``/``var`` do), so
    identical effects give τ² = 0 exactly rather than ~1e-33.
    """
    u = mask.astype(float)
    ybar = (u * Y).sum(-1) / k
    ybar = ybar + (u * (Y - ybar[:, None])).sum(-1) / k
    big = np.where(mask, Y, -np.inf).max(-1)
    small = np.where(mask, Y, np.inf).min(-1)
    ybar = np.where(big == small, big, ybar)
    ss = (u * (Y - ybar[:, None]) ** 2).sum(-1)
    return ybar, np.where(big == small, 0.0, ss)


def q_gen(Y, V, mask, tau2):
    """Generalised Q statistic Σ wᵢ(yᵢ − μ̂)² with wᵢ = 1/(vᵢ + τ²); shape (m,) (or grid)."""
    w = _w(V, mask, tau2[..., None])
    mu = _wmean(w, Y)
    return (w * (Y - mu[..., None]) ** 2).sum(axis=-1)


def _sum_pp(w):
    """Σᵢⱼ Pᵢⱼ² for P = W − w wᵀ/Σw (metafor's ``sum(P*P)``)."""
    s = w.sum(-1)
    s2 = (w**2).sum(-1)
    return s2 - 2 * (w**3).sum(-1) / s + s2**2 / s**2


def _tr_pvpv(w, V):
    """tr(PVPV) for P = W − w wᵀ/Σw and V = diag(v) (metafor's ``sum(PV*t(PV))``)."""
    s = w.sum(-1)
    return ((w * V) ** 2).sum(-1) - 2 * (w**3 * V**2).sum(-1) / s + ((w**2 * V).sum(-1)) ** 2 / s**2


def _sum_pvp(w, V):
    """Σᵢⱼ (PV)ᵢⱼ Pᵢⱼ (metafor's ``sum(PV*P)``)."""
    s = w.sum(-1)
    return (w**2 * V).sum(-1) - 2 * (w**3 * V).sum(-1) / s + (w**2).sum(-1) * (w**2 * V).sum(-1) / s**2


def _se_moment(tau2, trP, sum_pp, k, denom):
    """SE of a method-of-moments τ² (metafor: DL, HS)."""
    t = np.maximum(tau2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # k = 1: denom 0, masked by caller
        return np.sqrt(1.0 / denom**2 * (2 * (k - 1) + 4 * t * trP + 2 * t**2 * sum_pp))


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------

def _dl(Y, V, mask, k):
    # DerSimonian & Laird (1986), doi:10.1016/0197-2456(86)90046-2
    w = _w(V, mask, 0.0)
    s = w.sum(-1)
    q = q_gen(Y, V, mask, np.zeros(len(k)))
    trP = s - (w**2).sum(-1) / s
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = (q - (k - 1)) / trP
    tau2 = np.where(k > 1, np.maximum(raw, 0.0), 0.0)
    se = _se_moment(tau2, trP, _sum_pp(w), k, trP)
    return tau2, np.where(k > 1, se, np.nan)


def _hs(Y, V, mask, k):
    # Hunter & Schmidt (2004): (Q − k) / Σw
    w = _w(V, mask, 0.0)
    s = w.sum(-1)
    q = q_gen(Y, V, mask, np.zeros(len(k)))
    tau2 = np.where(k > 1, np.maximum((q - k) / s, 0.0), 0.0)
    trP = s - (w**2).sum(-1) / s
    se = _se_moment(tau2, trP, _sum_pp(w), k, s)
    return tau2, np.where(k > 1, se, np.nan)


def _he(Y, V, mask, k):
    # Hedges (1983) / Hedges & Olkin (1985): unweighted method of moments
    u = mask.astype(float)
    _, rss = _centred_ss(Y, mask, k)
    trPV = (u * V).sum(-1) * (k - 1) / k
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = (rss - trPV) / (k - 1)
        tau2 = np.where(k > 1, np.maximum(raw, 0.0), 0.0)
        # tr(PVPV) with P = I − J/k
        vv = (u * V**2).sum(-1)
        sv = (u * V).sum(-1)
        trpvpv = vv - 2 * vv / k + sv**2 / k**2
        se = np.sqrt(1.0 / (k - 1) ** 2 * (2 * trpvpv + 4 * tau2 * trPV + 2 * tau2**2 * (k - 1)))
    return tau2, np.where(k > 1, se, np.nan)


def _sj(Y, V, mask, k):
    # Sidik & Jonkman (2005), doi:10.1080/10543400500347462: one step from τ²₀ = Σ(y−ȳ)²/k
    t0 = _centred_ss(Y, mask, k)[1] / k
    w = _w(V, mask, t0[:, None])
    mu = _wmean(w, Y)
    rss = (w * (Y - mu[:, None]) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = np.where((k > 1) & (t0 > 0), t0 * rss / (k - 1), 0.0)
        t = np.maximum(tau2, 0)
        se = np.sqrt(t0**2 / (k - 1) ** 2 * (2 * _tr_pvpv(w, V) + 4 * t * _sum_pvp(w, V) + 2 * t**2 * _sum_pp(w)))
    return tau2, np.where(k > 1, se, np.nan)


# ---------------------------------------------------------------------------
# Iterative estimators: bracketed global search
# ---------------------------------------------------------------------------

def _upper_bound(Y, V, mask, k):
    """U such that every REML/ML maximiser and PM/EB root lies in [0, U].

    With R = range(y): for τ² > (k R² + max v)/(k − 1) the REML score is negative
    (and so are the ML score, the EB equation and Q − (k − 1)); see the module notes.
    """
    big = np.where(mask, Y, -np.inf).max(-1)
    small = np.where(mask, Y, np.inf).min(-1)
    r2 = (big - small) ** 2
    vmax = np.where(mask, V, 0).max(-1)
    km1 = np.maximum(k - 1, 1)
    return 1.01 * (k * r2 + vmax) / km1 + 1e-300


def _ml_parts(Y, V, mask, tau2):
    w = _w(V, mask, tau2[..., None])
    s = w.sum(-1)
    mu = (w * Y).sum(-1) / s
    r = Y - mu[..., None]
    return w, s, r


def _loglik(kind, Y, V, mask, tau2):
    """Profile log-likelihood (up to a constant) for ML / REML at τ² (broadcast)."""
    # one pass over D = v + τ² (absent studies have v = 1, so D > 0 and log(D) is finite;
    # the mask zeroes them) instead of separate where/log/where passes: this is the hot
    # loop of REML/ML (the grid is (m, 49, k))
    D = V + tau2[..., None]
    w = np.where(mask, 1.0 / D, 0.0)
    s = w.sum(-1)
    mu = (w * Y).sum(-1) / s
    r = Y - mu[..., None]
    logdet = (np.log(D) * mask).sum(-1)
    ll = -0.5 * (logdet + (w * r * r).sum(-1))
    if kind == "REML":
        ll = ll - 0.5 * np.log(s)
    return ll


def _score(kind, Y, V, mask, tau2, k):
    """d/dτ² of the ML/REML log-likelihood (×2), or the PM / EB estimating equation.

    All four are positive below the estimate and negative above it (for PM/EB the
    equation is written so that its root is the estimate).
    """
    w, s, r = _ml_parts(Y, V, mask, tau2)
    w2r2 = (w**2 * r**2).sum(-1)
    if kind == "ML":
        return w2r2 - s
    if kind == "REML":
        return w2r2 - (s - (w**2).sum(-1) / s)
    if kind in ("PM", "EB"):
        # PM (Paule & Mandel 1982): Q(τ²) = k − 1. metafor's EB (Morris 1983) iterates
        # τ² += (Q·k/(k−1) − k)/Σw, whose fixed point is the same equation: EB = PM here.
        return (w * r**2).sum(-1) - (k - 1)
    raise ValueError(kind)


def solve_decreasing(f, lo, hi, flo=None, fhi=None, rtol=1e-15, max_iter=_MAX_ITER):
    """Vectorised root of functions that change sign from + (at lo) to − (at hi).

    Geometric bisection while the bracket spans orders of magnitude, then the
    Illinois variant of regula falsi (superlinear, never leaves the bracket).

    Parameters
    ----------
    f : callable ``f(x, idx) -> ndarray``
        Evaluates the functions of rows ``idx`` (int array) at ``x`` (same length).
    lo, hi : ndarray, shape (n,)
        Bracket with ``f(lo) > 0 >= f(hi)``.

    Returns
    -------
    root, iterations, converged : ndarray, shape (n,)
    """
    lo = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    n = lo.shape[0]
    every = np.arange(n)
    flo = f(lo, every) if flo is None else np.array(flo, dtype=float)
    fhi = f(hi, every) if fhi is None else np.array(fhi, dtype=float)
    it = np.zeros(n, dtype=int)
    done = np.zeros(n, dtype=bool)
    side = np.zeros(n, dtype=int)
    for i in range(max_iter):
        width = hi - lo
        done |= (width <= rtol * np.maximum(hi, 1e-300)) | (fhi == 0)
        if done.all():
            break
        act = ~done
        wide = (hi > 16 * np.maximum(lo, 0)) & act
        x = np.empty(n)
        # geometric bisection (lo may be 0: use a floor 1e-16·hi)
        x[wide] = np.sqrt(np.maximum(lo[wide], hi[wide] * 1e-16) * hi[wide])
        nw = act & ~wide
        with np.errstate(divide="ignore", invalid="ignore"):
            xr = hi[nw] - fhi[nw] * (hi[nw] - lo[nw]) / (fhi[nw] - flo[nw])
        bad = ~np.isfinite(xr) | (xr <= lo[nw]) | (xr >= hi[nw])
        xr[bad] = 0.5 * (lo[nw] + hi[nw])[bad]
        x[nw] = xr
        idx = np.flatnonzero(act)
        fx = f(x[idx], idx)
        it[idx] += 1
        pos = fx > 0
        # update brackets; Illinois: halve the retained end's value when it is kept twice
        up = idx[pos]
        lo[up] = x[up]
        flo[up] = fx[pos]
        fhi[up] = np.where(side[up] == 1, fhi[up] / 2, fhi[up])
        side[up] = 1
        dn = idx[~pos]
        hi[dn] = x[dn]
        fhi[dn] = fx[~pos]
        flo[dn] = np.where(side[dn] == -1, flo[dn] / 2, flo[dn])
        side[dn] = -1
    width = hi - lo
    conv = done | (width <= rtol * np.maximum(hi, 1e-300) * 8)
    # report the bracket end with the smaller |f|: the iterate that satisfies the equation best
    root = np.where(np.abs(flo) < np.abs(fhi), lo, hi)
    root = np.where(fhi == 0, hi, root)
    return root, it, conv


def _iterative(kind, Y, V, mask, k):
    m = Y.shape[0]
    tau2 = np.zeros(m)
    iters = np.zeros(m, dtype=int)
    conv = np.ones(m, dtype=bool)
    todo = np.flatnonzero(k > 1)
    if todo.size == 0:
        return tau2, iters, conv
    Yt, Vt, Mt, kt = Y[todo], V[todo], mask[todo], k[todo]
    U = _upper_bound(Yt, Vt, Mt, kt)
    grid = np.concatenate([[0.0], np.geomspace(_GRID_SPAN, 1.0, _GRID_POINTS)])
    G = U[:, None] * grid[None, :]                      # (n, g)
    Yg, Vg, Mg = Yt[:, None, :], Vt[:, None, :], Mt[:, None, :]
    kg = kt[:, None]
    # in row blocks so the (rows, g, k) temporaries stay small (memory and cache)
    blocks = _row_blocks(len(G), grid.size, Yt.shape[1])
    step = blocks.step
    if kind in ("ML", "REML"):
        obj = np.concatenate([_loglik(kind, Yg[b:b + step], Vg[b:b + step], Mg[b:b + step],
                                      G[b:b + step]) for b in blocks])  # (n, g)
        j = np.nanargmax(obj, axis=1)
    else:
        sc = np.concatenate([_score(kind, Yg[b:b + step], Vg[b:b + step], Mg[b:b + step], G[b:b + step],
                                    kg[b:b + step]) for b in blocks])  # (n, g)
        # Q(τ²) − (k − 1) is decreasing: its root is the first sign change
        neg = sc <= 0
        j = np.where(neg.any(1), neg.argmax(1), grid.size - 1)
    n = todo.size
    rows = np.arange(n)

    def score_at(x, idx):
        return _score(kind, Yt[idx], Vt[idx], Mt[idx], x, kt[idx])

    # candidate bracket around the best grid point: [G[j-1], G[j+1]]
    jl = np.maximum(j - 1, 0)
    jh = np.minimum(j + 1, grid.size - 1)
    sj = score_at(G[rows, j], rows)
    if kind in ("ML", "REML"):
        lo = np.where(sj > 0, G[rows, j], G[rows, jl])
        hi = np.where(sj > 0, G[rows, jh], G[rows, j])
    else:
        lo, hi = G[rows, jl], G[rows, j]
    flo = score_at(lo, rows)
    fhi = score_at(hi, rows)
    at_zero = (lo == 0) & (flo <= 0)                    # boundary maximum / root at 0
    ok = (flo > 0) & (fhi <= 0) & ~at_zero
    res = np.zeros(n)
    it = np.zeros(n, dtype=int)
    cv = np.ones(n, dtype=bool)
    if ok.any():
        idx = np.flatnonzero(ok)

        def f(x, sub):
            return score_at(x, idx[sub])

        r, i2, c2 = solve_decreasing(f, lo[idx], hi[idx], flo[idx], fhi[idx])
        res[idx], it[idx], cv[idx] = r, i2, c2
    other = ~ok & ~at_zero
    if other.any():  # grid too coarse for a sign change: golden-section on the objective
        idx = np.flatnonzero(other)
        r, i2 = _golden(kind, Yt[idx], Vt[idx], Mt[idx], kt[idx], G[idx, jl[idx]], G[idx, jh[idx]])
        res[idx], it[idx] = r, i2
    tau2[todo], iters[todo], conv[todo] = res, it + _GRID_POINTS + 1, cv
    return tau2, iters, conv


def _golden(kind, Y, V, mask, k, a, b, n_iter=120):
    """Golden-section maximisation of the objective (fallback; ML/REML loglik or −|eq|)."""
    def obj(x):
        if kind in ("ML", "REML"):
            return _loglik(kind, Y, V, mask, x)
        return -np.abs(_score(kind, Y, V, mask, x, k))

    g = (np.sqrt(5) - 1) / 2
    c = b - g * (b - a)
    d = a + g * (b - a)
    fc, fd = obj(c), obj(d)
    for _ in range(n_iter):
        left = fc > fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c2 = b - g * (b - a)
        d2 = a + g * (b - a)
        c, d = c2, d2
        fc, fd = obj(c), obj(d)
    x = (a + b) / 2
    # keep the boundary if it is better
    x = np.where(obj(np.zeros_like(x)) >= obj(x), np.where(a == 0, 0.0, x), x)
    return x, np.full(x.shape, n_iter)


def _se_iterative(kind, Y, V, mask, k, tau2):
    w = _w(V, mask, tau2[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "ML":
            se = np.sqrt(2.0 / (w**2).sum(-1))
        elif kind == "REML":
            se = np.sqrt(2.0 / _sum_pp(w))
        else:  # PM, EB: metafor's sqrt(2 k²/(k−1)) / Σw
            se = np.sqrt(2.0 * k**2 / (k - 1)) / w.sum(-1)
    return np.where(k > 1, se, np.nan)


def estimate_tau2(Y, V, mask, k, method: str) -> Tau2Fit:
    """Estimate τ² for every row with ``method`` (one of :data:`TAU2_METHODS` or "FE").

    Parameters
    ----------
    Y, V, mask, k : as returned by :func:`prepare`
    method : str

    Returns
    -------
    Tau2Fit
    """
    m = Y.shape[0]
    zeros = np.zeros(m)
    if method == "FE":
        return Tau2Fit(zeros, np.full(m, np.nan), np.zeros(m, int), np.ones(m, bool))
    closed = {"DL": _dl, "HE": _he, "HS": _hs, "SJ": _sj}
    if method in closed:
        tau2, se = closed[method](Y, V, mask, k)
        return Tau2Fit(tau2, se, np.zeros(m, int), np.ones(m, bool))
    if method in ITERATIVE_METHODS:
        tau2, it, conv = _iterative(method, Y, V, mask, k)
        return Tau2Fit(tau2, _se_iterative(method, Y, V, mask, k, tau2), it, conv)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(vocab.METHODS)}")
