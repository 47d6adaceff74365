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

1. REML/ML: the log-likelihood is evaluated on a grid over ``[0, U]`` where ``U`` provably
   bounds every maximiser; the score's sign change next to the best grid point is refined
   by Newton's method kept inside that bracket (:func:`solve_bracketed_newton`) to ~1e-15
   relative precision;
2. PM/EB: the equation Q(τ²) = k − 1 needs no grid. Q(τ²) = min_μ Σ(yᵢ − μ)²/(vᵢ + τ²) is
   decreasing and *convex* in τ² ((μ, τ²) ↦ (y − μ)²/(v + τ²) is the perspective of a
   square, jointly convex, and minimising a jointly convex function over μ keeps it
   convex), so the root is unique and Newton's method from τ² = 0 climbs to it from below
   without overshooting (:func:`solve_convex_decreasing`). The Q-profile CIs of
   :mod:`metaanalysis.pooling` solve the same kind of equation the same way.

The arrays are kept column-major (Fortran order) inside the engine: the reductions over the
k studies then run over contiguous vectors (see :func:`_take`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import vocab

__all__ = [
    "TAU2_METHODS", "ITERATIVE_METHODS", "Tau2Fit", "prepare", "estimate_tau2", "q_gen",
    "q_and_slope", "solve_decreasing", "solve_convex_decreasing", "solve_bracketed_newton",
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
    """Profile log-likelihood (up to a constant) for ML / REML at τ² (broadcast).

    ``mask`` may be boolean or the 0/1 weights it stands for (absent studies have v = 1, so
    D > 0 and log D is finite; the weights zero them). The grid uses :func:`_grid_loglik`.
    """
    D = V + tau2[..., None]
    u = mask if mask.dtype == float else mask.astype(float)
    w = u / D
    s = w.sum(-1)
    mu = (w * Y).sum(-1) / s
    r = Y - mu[..., None]
    logdet = (np.log(D) * u).sum(-1)
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


def _score_slope(kind, Y, V, mask, tau2):
    """The ML/REML score of :func:`_score` and its derivative in τ², shape (n,) each.

    With wᵢ = 1/(vᵢ + τ²), rᵢ = yᵢ − μ̂ and dμ̂/dτ² = −Σwᵢ²rᵢ/Σwᵢ:
    d(Σw²r²) = −2Σw³r² + 2(Σw²r)²/Σw, d(Σw) = −Σw², d(Σw²/Σw) = −2Σw³/Σw + (Σw²/Σw)².
    """
    w = np.where(mask, 1.0 / (V + tau2[:, None]), 0.0)
    s = w.sum(-1)
    r = Y - ((w * Y).sum(-1) / s)[:, None]
    w2 = w * w
    w2r = w2 * r
    s2 = w2.sum(-1)
    w2r2 = (w2r * r).sum(-1)
    dw2r2 = -2 * (w * w2r * r).sum(-1) + 2 * w2r.sum(-1) ** 2 / s
    if kind == "ML":
        return w2r2 - s, dw2r2 + s2
    q = s2 / s
    return w2r2 - s + q, dw2r2 + s2 - 2 * (w2 * w).sum(-1) / s + q * q


def solve_bracketed_newton(fd, x, lo, hi, fx=None, dx=None, max_iter=_MAX_ITER):
    """Vectorised root of functions that change sign from + (at lo) to − (at hi), by
    Newton's method kept inside the bracket (Press et al., Numerical Recipes, ``rtsafe``).

    A Newton step that leaves the current bracket, or a slope that is not negative, is
    replaced by a bisection (geometric while the bracket spans orders of magnitude); every
    evaluation shrinks the bracket, so the iteration cannot leave it or fail to converge.
    Stops one Newton step after a step of at most 1e-9 relative that was also at most 1/100
    of the step before it (quadratic convergence: ~1e-18 left) or reversed it (rounding
    noise), or when the bracket is 1e-15 narrow.

    Parameters
    ----------
    fd : callable ``fd(x, idx) -> (f, dfdx)``
        Function values and derivatives of rows ``idx`` (int array) at ``x``.
    x : ndarray, shape (n,)
        Starting points, inside ``[lo, hi]``.
    lo, hi : ndarray, shape (n,)
        Bracket with ``f(lo) > 0 >= f(hi)``.
    fx, dx : ndarray, shape (n,), optional
        f and its derivative at ``x`` when the caller has them.

    Returns
    -------
    root, iterations, converged : ndarray, shape (n,)
        ``iterations`` counts the evaluations, the one at ``x`` included.
    """
    x = np.array(x, dtype=float)
    lo = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    n = x.shape[0]
    it = np.ones(n, dtype=int)
    conv = np.zeros(n, dtype=bool)
    act = np.arange(n)
    f, d = fd(x, act) if fx is None else (np.asarray(fx, float), np.asarray(dx, float))
    last = np.zeros(n, dtype=bool)
    prev = np.zeros(n)                             # the previous step (signed)
    for _ in range(max_iter):
        if act.size == 0:
            break
        xa, la, ha = x[act], lo[act], hi[act]
        with np.errstate(divide="ignore", invalid="ignore"):
            nx = xa - f / d
        newton = (d < 0) & (nx >= la) & (nx <= ha)
        # converged: the final Newton step after a small one needs no evaluation
        fin = newton & last
        x[act[fin]] = nx[fin]
        conv[act[fin]] = True
        it[act[fin]] += 1
        keep = ~fin
        act, f, d, xa, la, ha, nx, newton, prev = (
            a[keep] for a in (act, f, d, xa, la, ha, nx, newton, prev))
        if act.size == 0:
            break
        wide = ha > 16 * np.maximum(la, 0)
        mid = np.where(wide, np.sqrt(np.maximum(la, ha * 1e-16) * ha), 0.5 * (la + ha))
        nx = np.where(newton, nx, mid)
        f, d = fd(nx, act)
        it[act] += 1
        pos = f > 0
        lo[act] = np.where(pos, nx, la)
        hi[act] = np.where(pos, ha, nx)
        x[act] = nx
        # a Newton step <= 1e-9 (relative) that is also <= 1/100 of the step before it is in
        # the quadratic phase: one more step leaves ~1e-18, so take it and stop. No test sits
        # at the rounding level, so a row alone and the same row padded in a batch (sums in
        # another order) take the same number of steps.
        # (or that reverses the previous step: Newton's iterates approach a simple root from
        # one side, so a reversal is rounding noise in f)
        step = nx - xa
        last = newton & (np.abs(step) <= 1e-9 * nx) & (
            (np.abs(step) <= 0.01 * np.abs(prev)) | (step * prev < 0))
        prev = step
        done = hi[act] - lo[act] <= 1e-15 * hi[act]
        conv[act[done]] = True
        act, f, d, last, prev = act[~done], f[~done], d[~done], last[~done], prev[~done]
    return x, it, conv


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


def _take(A, idx):
    """Rows ``idx`` of an (n, k) array as a Fortran-ordered (column-major) array.

    The engine keeps (rows, k) arrays column-major so that the reductions over the k studies
    (``.sum(-1)``) run over contiguous rows-long vectors: about 1 ns per analysis at k = 6,
    against 12 ns for a row-major array (numpy's reduction over a short inner axis). A plain
    ``A[idx]`` would return a row-major copy.
    """
    return A if idx is None else A.T[:, idx].T


def _grid_best(kind, Y, V, mask, k, U):
    """Index of the best point of the global grid per row (shape (n,)) and the grid (n, g).

    REML/ML: the grid point with the largest log-likelihood; PM/EB never reach here (their
    equation is monotone). Evaluated one grid point at a time over all rows, so the
    temporaries are (n, k), not (n, g, k); see :func:`_grid_loglik` for the arithmetic.
    """
    grid = np.concatenate([[0.0], np.geomspace(_GRID_SPAN, 1.0, _GRID_POINTS)])
    G = U[:, None] * grid[None, :]                      # (n, g)
    obj = np.empty(G.shape)
    u = np.asfortranarray(mask, dtype=float)           # the mask as 0/1 weights, made once
    Vm = np.where(mask, V, 1.0)                         # absent studies: D = 1, log D = 0
    c = (Y * u).sum(-1) / u.sum(-1)                     # centre: Q in one pass stays accurate
    Yc = (Y - c[:, None]) * u
    full = bool(mask.all())
    for j in range(grid.size):
        obj[:, j] = _grid_loglik(kind, Yc, Vm, u, np.ascontiguousarray(G[:, j]), full)
    return np.nanargmax(obj, axis=1), G


def _grid_loglik(kind, Yc, Vm, u, t, full=False):
    """:func:`_loglik` for locating the best grid point, in fewer passes over (n, k).

    D = v + τ² for present studies and 1 for absent ones, so Σ log D is the log of a product
    (one log per 8 studies instead of one per study; products that leave the float range,
    e.g. for vᵢ ~ 1e-300, are redone study by study); Q = Σwy² − (Σwy)²/Σw on effects
    centred at their mean (the grid needs the ranking of the points, which the cancellation
    left after centring does not change; the solver then uses the exact two-pass score).
    """
    # (absent studies need D = 1; with none, v + τ² is the same number in one pass fewer)
    D = Vm + t[:, None] if full else Vm + t[:, None] * u
    w = u / D
    s = w.sum(-1)
    wy = w * Yc
    sy = wy.sum(-1)
    q = (wy * Yc).sum(-1) - sy * sy / s
    k = D.shape[1]
    logdet = np.zeros(D.shape[0])
    for a in range(0, k, 8):
        p = D[:, a:a + 8].prod(-1)
        logdet += np.log(p)
    bad = ~np.isfinite(logdet)
    if bad.any():
        logdet[bad] = np.log(D[bad]).sum(-1)
    ll = -0.5 * (logdet + q)
    if kind == "REML":
        ll = ll - 0.5 * np.log(s)
    return ll


def _iterative(kind, Y, V, mask, k):
    m = Y.shape[0]
    tau2 = np.zeros(m)
    iters = np.zeros(m, dtype=int)
    conv = np.ones(m, dtype=bool)
    todo = np.flatnonzero(k > 1)
    if todo.size == 0:
        return tau2, iters, conv
    sub = None if todo.size == m else todo
    Yt, Vt, Mt, kt = _take(Y, sub), _take(V, sub), _take(mask, sub), k[todo]
    U = _upper_bound(Yt, Vt, Mt, kt)
    if kind in ("PM", "EB"):
        res, it, cv = _pm(Yt, Vt, Mt, kt, U)
        tau2[todo], iters[todo], conv[todo] = res, it, cv
        return tau2, iters, conv
    j, G = _grid_best(kind, Yt, Vt, Mt, kt, U)
    n = todo.size
    rows = np.arange(n)

    # candidate bracket around the best grid point: [G[j-1], G[j+1]]
    last = G.shape[1] - 1
    jl = np.maximum(j - 1, 0)
    jh = np.minimum(j + 1, last)
    x0 = G[rows, j]
    sj, dj = _score_slope(kind, Yt, Vt, Mt, x0)
    lo = np.where(sj > 0, G[rows, j], G[rows, jl])
    hi = np.where(sj > 0, G[rows, jh], G[rows, j])
    # one end of the bracket is x0, whose score is known: evaluate the other end only
    f_other = _score_slope(kind, Yt, Vt, Mt, np.where(sj > 0, hi, lo))[0]
    flo = np.where(sj > 0, sj, f_other)
    fhi = np.where(sj > 0, f_other, sj)
    at_zero = (lo == 0) & (flo <= 0)                    # boundary maximum at 0
    ok = (flo > 0) & (fhi <= 0) & ~at_zero
    res = np.zeros(n)
    it = np.zeros(n, dtype=int)
    cv = np.ones(n, dtype=bool)
    if ok.any():
        idx = np.flatnonzero(ok)

        def fd(x, s):
            rr = idx[s]
            every = rr.size == n
            return _score_slope(kind, Yt if every else _take(Yt, rr), Vt if every else _take(Vt, rr),
                                Mt if every else _take(Mt, rr), x)

        r, i2, c2 = solve_bracketed_newton(fd, x0[idx], lo[idx], hi[idx], sj[idx], dj[idx])
        res[idx], it[idx], cv[idx] = r, i2, c2
    other = ~ok & ~at_zero
    if other.any():  # grid too coarse for a sign change: golden-section on the objective
        idx = np.flatnonzero(other)
        r, i2 = _golden(kind, _take(Yt, idx), _take(Vt, idx), _take(Mt, idx), kt[idx],
                        G[idx, jl[idx]], G[idx, jh[idx]])
        res[idx], it[idx] = r, i2
    tau2[todo], iters[todo], conv[todo] = res, it + _GRID_POINTS + 1, cv
    return tau2, iters, conv


def _pm(Y, V, mask, k, U):
    """Paule-Mandel / empirical-Bayes τ²: the root of Q(τ²) = k − 1 (0 when Q(0) <= k − 1).

    Q(τ²) is decreasing and convex in τ² (module notes), so the root is unique and Newton's
    method started at 0 approaches it from below without overshooting
    (:func:`solve_convex_decreasing`): no grid is needed to find the global solution.
    """
    n = Y.shape[0]
    crit = (k - 1).astype(float)

    def fd(x, idx):
        every = idx.size == n
        return q_and_slope(Y if every else _take(Y, idx), V if every else _take(V, idx),
                           mask if every else _take(mask, idx), x, crit[idx])

    return solve_convex_decreasing(fd, np.zeros(n), U, level=crit)


def q_and_slope(Y, V, mask, tau2, crit):
    """Q(τ²) − crit and its derivative −Σwᵢ²(yᵢ − μ̂)², shape (n,) each.

    ``dQ/dτ² = −Σwᵢ²rᵢ²`` by the envelope theorem (μ̂ minimises Σwᵢ(yᵢ − μ)²).
    """
    w = np.where(mask, 1.0 / (V + tau2[:, None]), 0.0)
    mu = (w * Y).sum(-1) / w.sum(-1)
    wr2 = w * (Y - mu[:, None]) ** 2
    return wr2.sum(-1) - crit, -(w * wr2).sum(-1)


def solve_convex_decreasing(fd, lo, hi, level=None, max_iter=_MAX_ITER):
    """Vectorised root of convex, decreasing functions with ``f(lo) > 0 >= f(hi)``, or ``lo``
    where ``f(lo) <= 0``.

    Newton's method from the left end: for a convex decreasing f the tangent lies below f, so
    every iterate stays at or below the root and the iterates increase to it (quadratically
    once close). It stops one step after a step of at most 1e-9 relative that was also at
    most 1/100 of the step before it (~1e-18 left), or when rounding stalls the iterate or
    puts it at or past the root (the end with the smaller |f| is returned). Rows that are still moving after ``max_iter`` iterations
    (never seen) are finished by :func:`solve_decreasing` on the bracket [iterate, hi].

    Parameters
    ----------
    fd : callable ``fd(x, idx) -> (f, dfdx)``
        Function values and derivatives of rows ``idx`` (int array) at ``x``.
    lo, hi : ndarray, shape (n,)
    level : ndarray, shape (n,), optional
        When f = F − level with F > 0 (Q-profile, Paule-Mandel), steps are first taken by
        Newton's method on 1/F = 1/level, which is exact when F ∝ 1/(b + x) (equal
        variances) and so avoids the slow doubling of plain Newton far from the root; the
        first such step that lands past the root becomes the new ``hi`` and the row continues
        with plain Newton from its last point below the root (one wasted evaluation at most).

    Returns
    -------
    root, iterations, converged : ndarray, shape (n,)
        ``iterations`` counts the evaluations of ``fd`` (1 when ``f(lo) <= 0``).

    Notes
    -----
    Ortega JM, Rheinboldt WC (1970). Iterative Solution of Nonlinear Equations in Several
    Variables, 13.3 (monotone convergence of Newton's method for convex functions).
    """
    x = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    n = x.shape[0]
    it = np.ones(n, dtype=int)
    act = np.arange(n)
    f, d = fd(x, act)
    keep = f > 0
    act, f, d = act[keep], f[keep], d[keep]
    lev = None if level is None else np.asarray(level, dtype=float)
    act, f = _convex_newton(fd, x, hi, it, act, f, d, lev, max_iter)
    conv = np.ones(n, dtype=bool)
    if act.size:  # not reached in the sweep; keep a guaranteed finish
        def g(xx, s):
            return fd(xx, act[s])[0]

        r, i2, c2 = solve_decreasing(g, x[act], hi[act], f, None)
        x[act], conv[act] = r, c2
        it[act] += i2
    return x, it, conv


def _convex_newton(fd, x, hi, it, act, f, d, lev, max_iter):
    """The iteration of :func:`solve_convex_decreasing` on rows ``act`` (f > 0 there); updates
    ``x``, ``hi`` and ``it`` in place and returns the rows still moving and their f."""
    bold = np.full(act.size, lev is not None)
    last = np.zeros(act.size, dtype=bool)
    prev = np.full(act.size, np.inf)
    for _ in range(max_iter):
        if act.size == 0:
            break
        xa = x[act]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -f / d
            if lev is not None:   # Newton on 1/F: the step times F/level (>= 1)
                # (only while F is 0.1 % or more above the level: near the root the two
                # steps agree, and plain Newton cannot pass it)
                bold = bold & (f > 1e-3 * lev[act])
                step = np.where(bold, step * ((f + lev[act]) / lev[act]), step)
        nxt = np.minimum(xa + step, hi[act])
        ok = np.isfinite(nxt) & (nxt > xa)
        # the final step after a small one (below) needs no evaluation; a step that cannot
        # move the iterate (rounding) ends the row as if it had been small and final
        x[act[last & ok]] = nxt[last & ok]
        it[act[last | ~ok]] += np.where(last, 1, 2)[last | ~ok]
        fin = last | ~ok
        act, f, d, bold, prev, xa, step, nxt = (
            a[~fin] for a in (act, f, d, bold, prev, xa, step, nxt))
        if act.size == 0:
            break
        it[act] += 1
        fn, dn = fd(nxt, act)
        over = bold & (fn < 0)                   # a bold step passed the root: back to Newton
        hi[act[over]] = nxt[over]
        bold = bold & ~over
        # rounding reached or crossed the root: keep the end with the smaller |f|; counted
        # as the small step plus the final one it would have been
        past = ~over & (fn <= 0)
        x[act] = np.where(past & (-fn >= f), xa, np.where(over, xa, nxt))
        it[act[past]] += 1
        # a step <= 1e-9 (relative) and <= 1/100 of the one before is in the quadratic
        # phase: one more step leaves ~1e-18. No test sits at the rounding level, so a row
        # alone and the same row padded in a batch take the same number of steps.
        last = ~over & (step <= 1e-9 * nxt) & ((step <= 0.01 * prev) | (step <= 1e-14 * nxt))
        prev = np.where(over, prev, step)
        cont = ~past
        f = np.where(over, f, fn)
        d = np.where(over, d, dn)
        act, f, d, bold, last, prev = act[cont], f[cont], d[cont], bold[cont], last[cont], prev[cont]
    return act, f


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
