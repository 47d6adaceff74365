"""Design-specific coverage of interval methods, by simulation.

For one analysis's own design (its k and within-study variances vᵢ), :func:`coverage`
simulates ``n_sim`` meta-analyses yᵢ ~ N(μ, vᵢ + τ²) at each τ² of a grid given by the caller
and reports, for each interval method, how often the interval contains the true μ, how often
the prediction interval contains a new study's true effect θ_new ~ N(μ, τ²), and the mean
interval width, each with its Monte-Carlo standard error (Morris, White & Crowther 2019).

Interval methods: the random-effects model with the plan's τ² estimator and each of the
tests ``"z"``, ``"knha"`` (HKSJ) and ``"adhoc"`` (HKSJ with the multiplier floored at 1),
the common-effect model with a z interval (code ``"FE"``), and any number of extra methods
given as callables (see ``extra=``): the analysis layer adds the Bayesian random-effects
model's central credible interval under the page's prior this way (code ``"bayes"``,
:func:`metaanalysis.bayesian.central_intervals_many`).
All frequentist fits go through :func:`metaanalysis.pooling.pool_many`, one vectorised call
per (τ², interval method) on an ``(n_sim, k)`` array, with the Q-profile CIs switched off.

Why μ = 0 loses nothing: every interval method here is location-equivariant (adding c to
every yᵢ moves the estimate and both bounds by c and leaves τ̂², the SE and the HKSJ
multiplier unchanged), so coverage and width do not depend on μ.

Reproducibility: the standard-normal draws come from a numpy ``Generator(PCG64(seed))``
whose seed is, unless given, derived from the SHA-256 of the design (vᵢ as little-endian
float64 bytes and ``n_sim``). The same draws serve every τ² and every method (common random
numbers): a row depends only on (vᵢ, n_sim, seed, τ², method), not on the rest of the grid,
comparisons between methods are paired, and the output is identical in every process.

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-102. doi:10.1002/sim.8086
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, NamedTuple

import numpy as np

from . import vocab
from .pooling import pool_many
from .results import jsonable

__all__ = ["coverage", "CoverageTable", "CoverageRow", "Bounds", "simulate", "interval_bounds",
           "design_seed", "COMMON_EFFECT", "MIN_SIM"]

#: Interval code of the common-effect model with a z interval (the vocabulary's method code).
COMMON_EFFECT = vocab.COMMON_EFFECT.code
#: Fewest replicates accepted: below this the Monte-Carlo SE is too large to read a table by.
MIN_SIM = 100
_SEED_TAG = b"metaanalysis.coverage/1"   # change it and every derived seed changes on purpose

#: An extra interval method: ``(Y, V)`` arrays of shape (n_sim, k) →
#: ``(lower, upper)`` or ``(lower, upper, pi_lower, pi_upper)``, each of shape (n_sim,).
IntervalMethod = Callable[[np.ndarray, np.ndarray], tuple]


class Bounds(NamedTuple):
    """Interval bounds of one method over the replicates: arrays of shape (n_sim,).

    ``pi_lower``/``pi_upper`` are NaN where the method gives no prediction interval.
    """

    lower: np.ndarray
    upper: np.ndarray
    pi_lower: np.ndarray
    pi_upper: np.ndarray


@dataclass(frozen=True)
class CoverageRow:
    """One (τ², interval method) cell of a :class:`CoverageTable`.

    Attributes
    ----------
    tau2 : float
        True between-study variance of the simulated meta-analyses (analysis scale²).
    interval : str
        ``"z"``, ``"knha"``, ``"adhoc"`` (random effects with the table's τ² estimator and
        that test), ``"FE"`` (common effect, z) or the name of an ``extra`` method.
    coverage, mcse : float
        Fraction of replicates whose CI contains μ, and its Monte-Carlo SE √(p(1−p)/n_sim).
    pi_coverage, pi_mcse : float
        The same for the prediction interval and θ_new; NaN where the method has none
        (the common-effect model; Riley's t(k−2) with k = 2).
    mean_width, width_mcse : float
        Mean CI width (upper − lower, analysis scale) and its Monte-Carlo SE SD/√n_sim.
    """

    tau2: float
    interval: str
    coverage: float
    mcse: float
    pi_coverage: float
    pi_mcse: float
    mean_width: float
    width_mcse: float


#: Column order of :meth:`CoverageTable.to_frame`.
ROW_FIELDS: tuple[str, ...] = tuple(CoverageRow.__dataclass_fields__)


@dataclass(frozen=True)
class CoverageTable:
    """Result of :func:`coverage`: the design, the settings and one row per (τ², interval).

    Rows are ordered by the τ² grid as given, then by interval method: the tests in the
    order asked, ``"FE"``, then the extra methods in their mapping's order.
    """

    vi: tuple[float, ...]
    tau2: tuple[float, ...]
    method: str
    level: float
    pi: str
    n_sim: int
    seed: int
    intervals: tuple[str, ...]
    rows: tuple[CoverageRow, ...]

    @property
    def k(self) -> int:
        return len(self.vi)

    def get(self, interval: str, tau2: float) -> CoverageRow:
        """The row of ``interval`` at the grid value ``tau2`` (KeyError when absent)."""
        for r in self.rows:
            if r.interval == interval and r.tau2 == tau2:
                return r
        raise KeyError((interval, tau2))

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN → None), ``rows`` a list of dicts with :data:`ROW_FIELDS`."""
        return jsonable(asdict(self))

    def to_frame(self):
        """pandas DataFrame, one row per (τ², interval), columns :data:`ROW_FIELDS`."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows], columns=list(ROW_FIELDS))


def design_seed(vi, n_sim: int) -> int:
    """The default seed of a design: the first 6 bytes of SHA-256(tag, vᵢ as '<f8', n_sim).

    Independent of the platform, the process and Python's hash randomisation; 48 bits so the
    seed written to JSON survives readers that hold numbers as doubles.
    """
    h = hashlib.sha256(_SEED_TAG)
    h.update(np.ascontiguousarray(vi, dtype="<f8").tobytes())
    h.update(int(n_sim).to_bytes(8, "little"))
    return int.from_bytes(h.digest()[:6], "little")


#: glibc malloc: arrays up to this many bytes come from the heap (default: 128 KiB and up), and up
#: to twice as much freed memory stays there; see :func:`_keep_freed_memory`.
_HEAP_ARRAYS = 16 << 20


@functools.cache
def _keep_freed_memory() -> None:
    """Once per process, let glibc's malloc keep freed arrays of up to 16 MiB for reuse.

    A table allocates and frees arrays of 0.1-3 MB (n_sim x k draws, bounds, the Bayesian
    column's node arrays) thousands of times. glibc serves each from a fresh mmap and returns
    it on free (its threshold only grows when a larger block is freed), so every page of every
    such array is faulted in and zeroed again: about a third of a table's CPU time in a fresh
    worker process (benchmarks/README.md, bench_coverage.py). ``mallopt`` raises the mmap and
    trim thresholds (M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1 in malloc.h); a worker then
    keeps up to 32 MiB of freed memory. Results are unchanged; without glibc nothing happens.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is not None:
        mallopt(-3, _HEAP_ARRAYS)
        mallopt(-1, 2 * _HEAP_ARRAYS)


def _standard_draws(k: int, n_sim: int, seed: int) -> np.ndarray:
    """Standard-normal draws of shape (n_sim, k + 1): k studies and one new study per replicate."""
    return np.random.Generator(np.random.PCG64(seed)).standard_normal((n_sim, k + 1))


def simulate(vi, tau2: float, *, n_sim: int = 10_000, seed: int | None = None):
    """Meta-analyses of one design with μ = 0 at one τ².

    Parameters
    ----------
    vi : array_like, shape (k,)
        Within-study sampling variances (analysis scale², > 0).
    tau2 : float
        True between-study variance (>= 0).
    n_sim : int
        Number of replicates.
    seed : int, optional
        Default :func:`design_seed` ``(vi, n_sim)``.

    Returns
    -------
    Y : ndarray, shape (n_sim, k)
        yᵢ = √(vᵢ + τ²)·zᵢ, i.e. yᵢ ~ N(0, vᵢ + τ²) independently.
    theta_new : ndarray, shape (n_sim,)
        True effect of a new study, √τ²·z ~ N(0, τ²).
    """
    vi = _check_vi(vi)
    n_sim, seed = _check_sim(n_sim, seed, vi)
    return _replicates(_standard_draws(vi.size, n_sim, seed), vi, tau2)


def _replicates(z: np.ndarray, vi: np.ndarray, tau2: float):
    """Standard draws (n_sim, k + 1) → ``(Y, theta_new)`` at τ² (see :func:`simulate`)."""
    return z[:, :-1] * np.sqrt(vi + tau2), z[:, -1] * math.sqrt(tau2)


def interval_bounds(Y, V, *, method: str = "REML", tests=("z", "knha", "adhoc"),
                    common_effect: bool = True, level: float = 0.95, pi: str = "metafor",
                    extra: Mapping[str, IntervalMethod] | None = None) -> dict[str, Bounds]:
    """CI and PI bounds of each interval method on each replicate.

    Parameters
    ----------
    Y, V : ndarray, shape (n_sim, k)
        Simulated effects and their sampling variances.
    method, tests, common_effect, level, pi, extra
        As in :func:`coverage` (already canonical here).

    Returns
    -------
    dict
        Interval code → :class:`Bounds`, in table order.
    """
    out: dict[str, Bounds] = {}
    tau2 = None   # the τ² estimates of the first test's fit serve the others: one iterative fit
    for t in tests:
        r = pool_many(Y, V, method=method, test=t, level=level, pi=pi, tau2_ci=False, tau2=tau2)
        tau2 = r.tau2 if method != COMMON_EFFECT else None
        out[t] = Bounds(r.ci_lower, r.ci_upper, r.pi_lower, r.pi_upper)
    if common_effect:
        r = pool_many(Y, V, method=COMMON_EFFECT, test="z", level=level, pi=pi, tau2_ci=False)
        out[COMMON_EFFECT] = Bounds(r.ci_lower, r.ci_upper, r.pi_lower, r.pi_upper)
    for name, fn in (extra or {}).items():
        out[name] = _extra_bounds(name, fn(Y, V), Y.shape[0])
    return out


def _extra_bounds(name: str, got, n_sim: int) -> Bounds:
    """Check an extra method's return value and pad a missing prediction interval with NaN."""
    parts = tuple(got) if isinstance(got, (tuple, list)) else ()
    if len(parts) not in (2, 4):
        raise ValueError(f"extra interval method {name!r} must return (lower, upper) or "
                         "(lower, upper, pi_lower, pi_upper)")
    arrays = [np.asarray(a, dtype=float) for a in parts]
    if any(a.shape != (n_sim,) for a in arrays):
        raise ValueError(f"extra interval method {name!r} must return arrays of shape ({n_sim},), "
                         f"got {[a.shape for a in arrays]}")
    if len(arrays) == 2:
        arrays += [np.full(n_sim, np.nan)] * 2
    return Bounds(*arrays)


def _proportion(hit: np.ndarray) -> tuple[float, float]:
    """Estimate and Monte-Carlo SE √(p(1−p)/n) of a proportion (Morris et al. 2019, Table 6)."""
    p = float(hit.mean())
    return p, math.sqrt(p * (1 - p) / hit.size)


def _summarise(tau2: float, code: str, b: Bounds, theta_new: np.ndarray) -> CoverageRow:
    """One row: CI coverage of μ = 0, PI coverage of θ_new, mean width; with MCSEs.

    A replicate whose CI is NaN counts as not covering (a method that fails, fails); PI
    coverage is NaN when the method gives no prediction interval at all.
    """
    cov, se = _proportion((b.lower <= 0.0) & (0.0 <= b.upper))
    if np.isnan(b.pi_lower).all():
        pcov = pse = math.nan
    else:
        pcov, pse = _proportion((b.pi_lower <= theta_new) & (theta_new <= b.pi_upper))
    width = b.upper - b.lower
    return CoverageRow(tau2=tau2, interval=code, coverage=cov, mcse=se, pi_coverage=pcov, pi_mcse=pse,
                       mean_width=float(width.mean()),
                       width_mcse=float(width.std(ddof=1) / math.sqrt(width.size)))


def coverage(vi, tau2, *, method: str = "REML", tests=("z", "knha", "adhoc"),
             common_effect: bool = True, level: float = 0.95, pi: str = "metafor",
             n_sim: int = 10_000, seed: int | None = None,
             extra: Mapping[str, IntervalMethod] | None = None) -> CoverageTable:
    """Actual coverage of each interval method for one design, at each τ² of a grid.

    Parameters
    ----------
    vi : array_like, shape (k,)
        The analysis's within-study sampling variances (analysis scale², finite, > 0, k >= 2).
    tau2 : float or array_like, shape (g,)
        True between-study variances to simulate at (finite, >= 0), e.g. 0, τ̂², the Q-profile
        upper bound and a prior median; rows follow this order.
    method : str
        τ² estimator of the random-effects intervals (a :data:`metaanalysis.vocab.TAU2_ESTIMATORS`
        code, any case; not ``"FE"``: the common-effect model is ``common_effect=``).
    tests : sequence of str
        Random-effects interval methods (:data:`metaanalysis.vocab.TESTS` codes, any case).
    common_effect : bool
        Also the common-effect model with a z interval (interval code ``"FE"``).
    level : float
        Confidence level, 0.95 or 95 (:func:`metaanalysis.vocab.as_level`).
    pi : {"metafor", "riley"}
        Prediction-interval convention of the random-effects fits.
    n_sim : int
        Replicates per τ² (>= :data:`MIN_SIM`); the MCSE of a coverage near 0.95 is
        ≈ 0.0022 at 10,000.
    seed : int, optional
        Seed of the PCG64 generator; default :func:`design_seed` ``(vi, n_sim)``.
    extra : mapping of str to callable, optional
        More interval methods, e.g. ``{"bayes": f}`` with ``f(Y, V)`` taking arrays of shape
        (n_sim, k) and returning ``(lower, upper)`` or ``(lower, upper, pi_lower,
        pi_upper)`` of shape (n_sim,) at this level (bind the level and prior with
        :func:`functools.partial`). Names must differ from the built-in codes.

    Returns
    -------
    CoverageTable

    Raises
    ------
    ValueError
        Bad vi, τ² grid, codes, level, n_sim or seed; an extra method's name or return value.

    Notes
    -----
    The true μ is 0 without loss of generality (module docstring: the methods are
    location-equivariant). Monte-Carlo SEs follow Morris, White & Crowther (2019), Stat Med
    38:2074, doi:10.1002/sim.8086.

    Examples
    --------
    >>> t = coverage([0.01, 0.02, 0.015], [0.0, 0.05], n_sim=2000)
    >>> [r.interval for r in t.rows[:4]]
    ['z', 'knha', 'adhoc', 'FE']
    """
    vi = _check_vi(vi)
    grid = _check_grid(tau2)
    method, tests, level, pi = _check_codes(method, tests, level, pi)
    n_sim, seed = _check_sim(n_sim, seed, vi)
    extra = dict(extra or {})
    intervals = tuple(tests) + ((COMMON_EFFECT,) if common_effect else ()) + tuple(extra)
    _check_intervals(intervals, extra)
    _keep_freed_memory()
    z = _standard_draws(vi.size, n_sim, seed)
    V = np.tile(vi, (n_sim, 1))
    rows = []
    for t2 in grid:
        Y, theta_new = _replicates(z, vi, t2)
        bounds = interval_bounds(Y, V, method=method, tests=tests, common_effect=common_effect,
                                 level=level, pi=pi, extra=extra)
        rows += [_summarise(t2, code, b, theta_new) for code, b in bounds.items()]
    return CoverageTable(vi=tuple(float(v) for v in vi), tau2=grid, method=method, level=level, pi=pi,
                         n_sim=n_sim, seed=seed, intervals=intervals, rows=tuple(rows))


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def _check_vi(vi) -> np.ndarray:
    v = np.asarray(vi, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"vi must be 1-D (one analysis's k variances), got shape {v.shape}")
    if v.size < 2:
        raise ValueError(f"coverage needs k >= 2 studies, got k = {v.size}")
    if not (np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ValueError("vi must be finite and > 0")
    return v


def _check_grid(tau2) -> tuple[float, ...]:
    g = np.atleast_1d(np.asarray(tau2, dtype=float))
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"tau2 must be a number or a non-empty 1-D grid, got shape {g.shape}")
    if not (np.all(np.isfinite(g)) and np.all(g >= 0)):
        raise ValueError(f"every tau2 must be finite and >= 0, got {g.tolist()}")
    return tuple(float(x) for x in g)


def _check_codes(method, tests, level, pi):
    method = vocab.canonical_method(method)
    if method not in vocab.TAU2_ESTIMATORS:
        raise ValueError(f"method must be a tau2 estimator ({', '.join(vocab.TAU2_ESTIMATORS)}); "
                         "the common-effect model is common_effect=True")
    if isinstance(tests, str):
        tests = (tests,)
    tests = tuple(dict.fromkeys(vocab.canonical_test(t) for t in tests))   # unique, in order
    return method, tests, vocab.as_level(level), vocab.canonical_pi(pi)


def _check_sim(n_sim, seed, vi) -> tuple[int, int]:
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < MIN_SIM:
        raise ValueError(f"n_sim must be an integer >= {MIN_SIM}, got {n_sim!r}")
    if seed is None:
        return int(n_sim), design_seed(vi, n_sim)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    return int(n_sim), int(seed)


def _check_intervals(intervals: tuple[str, ...], extra: dict) -> None:
    if not intervals:
        raise ValueError("no interval method: give tests, common_effect=True or extra")
    builtin = {c.lower() for c in (*vocab.TESTS, COMMON_EFFECT)}
    for name, fn in extra.items():
        if not isinstance(name, str) or not name or name.lower() in builtin:
            raise ValueError(f"extra method names must be non-empty and differ from "
                             f"{', '.join(sorted(builtin))}; got {name!r}")
        if not callable(fn):
            raise ValueError(f"extra method {name!r} must be callable f(Y, V)")
