"""Statistics of evidence that is not pooled: sign test on effect direction, exact binomial CIs.

Pure functions of counts (numpy scalars or arrays in, floats or arrays out), used by the
narrative sections of :mod:`metaanalysis.analysis` (synthesis without meta-analysis, SWiM;
Campbell et al. 2020, BMJ 368:l6890, doi:10.1136/bmj.l6890).

- :func:`sign_test`: the exact two-sided binomial test of ``k`` results in one direction out of
  ``n`` independent results with a direction, against 1/2 (McKenzie & Brennan, Cochrane Handbook
  v6.4 chapter 12; Hilton Boon & Thomson 2021, doi:10.1002/jrsm.1458); the same p-value as
  ``scipy.stats.binomtest(k, n, 0.5).pvalue`` without importing ``scipy.stats``.
- :func:`sign_test_min_p` and :func:`sign_test_min_n`: the smallest p-value ``n`` results can
  give, and the fewest results that can reach a level: why a sign test over one or two
  independent studies says nothing.
- :func:`clopper_pearson`: the exact CI of a proportion ``x / n`` (Clopper & Pearson 1934,
  doi:10.1093/biomet/26.4.404); R's ``binom.test(x, n)$conf.int``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .vocab import as_level

__all__ = ["sign_test", "sign_test_min_p", "sign_test_min_n", "clopper_pearson"]


def sign_test(k: int, n: int) -> float:
    """Exact two-sided sign test: p-value of ``k`` of ``n`` results in one direction, H0: 1/2.

    Parameters
    ----------
    k : int
        Results in one direction (0 <= k <= n).
    n : int
        Independent results with a direction (ties, "no difference" and mixed results excluded).

    Returns
    -------
    float
        min(1, 2 * P(X <= min(k, n - k))) for X ~ Binomial(n, 1/2): with p = 1/2 the distribution
        is symmetric, so this equals the "minlike" two-sided p of ``scipy.stats.binomtest``.

    Raises
    ------
    ValueError
        n < 1 or k outside 0..n.
    """
    k, n = int(k), int(n)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"sign test needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    tail = float(special.bdtr(min(k, n - k), n, 0.5))   # P(X <= min(k, n-k))
    return min(1.0, 2.0 * tail)


def sign_test_min_p(n: int) -> float:
    """Smallest two-sided sign-test p-value ``n`` results can give (all in one direction): 2 / 2**n,
    at most 1."""
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return min(1.0, 2.0 * 0.5 ** int(n))


def sign_test_min_n(alpha: float = 0.05) -> int:
    """Fewest independent results for which a two-sided sign test can give p < ``alpha``
    (6 at 0.05: 2 / 2**6 = 0.031, 2 / 2**5 = 0.0625)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = 1
    while sign_test_min_p(n) >= alpha:
        n += 1
    return n


def clopper_pearson(x, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) confidence interval of the proportion ``x / n``.

    Parameters
    ----------
    x, n : int or array of int, same shape
        Numbers with the outcome and group sizes (0 <= x <= n, n >= 1).
    level : float
        0.95 or 95 (:func:`metaanalysis.vocab.as_level`).

    Returns
    -------
    lower, upper : float arrays of the shape of ``x`` (proportions in [0, 1])
        Beta quantiles: lower = B(a/2; x, n-x+1) (0 when x = 0), upper = B(1-a/2; x+1, n-x)
        (1 when x = n), a = 1 - level.
    """
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(n < 1) or np.any(x < 0) or np.any(x > n) or np.any(x != np.round(x)):
        raise ValueError("clopper_pearson needs whole numbers 0 <= x <= n and n >= 1")
    a = 1.0 - as_level(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(x > 0, special.betaincinv(x, n - x + 1.0, a / 2.0), 0.0)
        hi = np.where(x < n, special.betaincinv(x + 1.0, n - x, 1.0 - a / 2.0), 1.0)
    return lo, hi

