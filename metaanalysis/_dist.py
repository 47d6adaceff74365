"""Tail and quantile functions of the normal, t, chi-square and F distributions.

Thin wrappers over ``scipy.special`` (the same routines ``scipy.stats`` calls), because
importing ``scipy.stats`` costs about a second and ``make report`` must start fast.
Each name says what it returns; all are vectorised over numpy arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def norm_sf(x):
    """P(Z > x) for Z ~ N(0, 1)."""
    return special.ndtr(-np.asarray(x, dtype=float))


def norm_isf(a):
    """x with P(Z > x) = a."""
    return -special.ndtri(a)


def t_sf(x, df):
    """P(T > x) for T ~ t(df)."""
    return special.stdtr(df, -np.asarray(x, dtype=float))


def t_isf(a, df):
    """x with P(T > x) = a, T ~ t(df)."""
    return -special.stdtrit(df, a)


def chi2_sf(x, df):
    """P(X > x) for X ~ chi-square(df)."""
    return special.chdtrc(df, x)


def chi2_isf(a, df):
    """x with P(X > x) = a."""
    return special.chdtri(df, a)


def chi2_ppf(a, df):
    """x with P(X <= x) = a (lower quantile; exact for small a)."""
    return 2.0 * special.gammaincinv(np.asarray(df, dtype=float) / 2.0, a)


def f_sf(x, dfn, dfd):
    """P(F > x) for F ~ F(dfn, dfd)."""
    return special.fdtrc(dfn, dfd, x)


def combine_pvalues(p, method: str = "fisher") -> tuple[float, float]:
    """Combine independent one-sided p-values; returns ``(statistic, pvalue)``.

    ``"fisher"``: X = −2 Σ log pᵢ ~ χ²(2n) (Fisher 1932); ``"stouffer"``:
    Z = Σ Φ⁻¹(1 − pᵢ)/√n ~ N(0, 1) (Stouffer et al. 1949). Same results as
    ``scipy.stats.combine_pvalues`` without importing scipy.stats.
    """
    p = np.asarray(p, dtype=float)
    if method == "fisher":
        x = float(-2.0 * np.log(p).sum())
        return x, float(chi2_sf(x, 2 * p.size))
    if method == "stouffer":
        z = float(norm_isf(p).sum() / np.sqrt(p.size))
        return z, float(norm_sf(z))
    raise ValueError(f"method must be 'fisher' or 'stouffer', got {method!r}")


def z_crit(level: float = 0.95) -> float:
    """Two-sided standard-normal critical value z_{1-(1-level)/2} (1.959963984540054 at 0.95).

    The one normal quantile of the package: effects, pooling captions and plots call it.
    ``level`` follows :func:`metaanalysis.vocab.as_level` (0.95 or 95).
    """
    from .vocab import as_level

    return float(norm_isf((1.0 - as_level(level)) / 2.0))
