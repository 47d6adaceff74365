"""Axis scales and readable tick choice for forest and funnel plots.

Which measures are ratios, their names and null values come from :mod:`metaanalysis.vocab`.
Ratio measures (HR, OR, RR) are drawn on the log scale and labelled on the
natural scale with plain decimals from fixed "nice" ladders (0.25, 0.5, 1, 2,
4 or 0.5, 0.75, 1, 1.5, 2, ...), never in scientific notation. Difference
measures (RD, MD, SMD) use a linear axis with 1-2-2.5-5 steps. The null (1 or
0) is always inside the axis. Whiskers beyond the chosen range are clipped by
the caller and marked with arrows, so one very wide interval does not squash
the rest (Cochrane Handbook v6.4, section 10.2.1, figure 10.2.a shows the same
convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import vocab
from ..render.format import fmt_num

#: Measures a forest or funnel plot can show: those with a no-effect value to draw.
PLOTTED_MEASURES = frozenset(c for c, m in vocab.MEASURES.items() if m.null is not None)


def plotted_measure(code: str) -> vocab.Measure:
    """The vocabulary's :class:`~metaanalysis.vocab.Measure` of ``code`` (any case).

    Raises
    ------
    ValueError
        For codes the vocabulary does not know and for measures without a null value
        (a proportion, a bare p-value): a plot has nothing to centre on.
    """
    m = vocab.measure(code)
    if m.null is None:
        raise ValueError(f"measure {code!r} has no null value to plot against; use one of "
                         f"{', '.join(sorted(PLOTTED_MEASURES))}")
    return m


def is_ratio(measure: str) -> bool:
    """True for measures drawn on a log axis (the ratios, null at 1)."""
    return plotted_measure(measure).log_scale


def null_value(measure: str) -> float:
    """The no-effect value on the analysis scale (log 1 = 0 for ratios, 0 for differences)."""
    m = plotted_measure(measure)
    return math.log(m.null) if m.log_scale else float(m.null)


def axis_title(measure: str) -> str:
    """Default axis title: the measure's name, with "(log scale)" for log-scale measures."""
    m = plotted_measure(measure)
    return f"{m.name} (log scale)" if m.log_scale else m.name


def _ladder(mantissas, e_lo=-6, e_hi=6):
    vals = sorted({round(m * 10.0 ** e, 12) for e in range(e_lo, e_hi + 1) for m in mantissas})
    return np.log(np.array(vals))


def _steps(lo, hi, step, base=None):
    a = math.floor(lo / step + 1e-9) - 1
    b = math.ceil(hi / step - 1e-9) + 1
    return np.round(np.arange(a, b + 1) * step, 12)


# Log-scale ladders (natural values), most preferred first.
_LOG_TIERS: tuple[np.ndarray, ...] = (
    np.log(np.array([0.125, 0.25, 0.5, 1, 2, 4, 8])),             # powers of 2
    _ladder((1, 2, 5)),                                            # 1-2-5
    np.log(np.array([0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10])),
    _ladder((1,)),                                                 # decades
    np.log(np.round(np.arange(1, 16) * 0.2, 10)),                  # 0.2 steps
    np.log(np.round(np.arange(1, 31) * 0.1, 10)),                  # 0.1 steps
    np.log(np.round(np.arange(10, 41) * 0.05, 10)),                # 0.05 steps
    np.log(np.round(np.arange(50, 201) * 0.01, 10)),               # 0.01 steps
)


@dataclass(frozen=True)
class Ticks:
    """Chosen axis: limits and tick positions on the analysis scale.

    Attributes
    ----------
    lo, hi : float
        Axis limits on the analysis scale (log for ratios); equal to the first
        and last tick.
    values : tuple of float
        Tick positions on the analysis scale.
    labels : tuple of str
        Tick labels on the natural scale (``"0.5"``, ``"1"``, ``"1.5"``).
    """

    lo: float
    hi: float
    values: tuple[float, ...]
    labels: tuple[str, ...]


def tick_label(v: float) -> str:
    """Shortest plain-decimal label of a natural-scale tick (no sci. notation)."""
    for d in range(0, 6):
        s = fmt_num(v, d)
        if abs(float(s) - v) <= 1e-9 * max(1.0, abs(v)):
            return s
    return fmt_num(v, 6)


def choose_ticks(req_lo: float, req_hi: float, des_lo: float, des_hi: float,
                 log: bool, min_n: int = 4, max_n: int = 7) -> Ticks:
    """Choose axis limits and 4-7 nice ticks.

    Parameters
    ----------
    req_lo, req_hi : float
        Range that must be covered (analysis scale): point estimates, pooled
        interval, the null.
    des_lo, des_hi : float
        Range that should be covered if affordable (all whiskers).
    log : bool
        Ratio measure (analysis scale is natural log).

    Returns
    -------
    Ticks
        The cheapest candidate, where cost = wasted axis fraction +
        1.5 x uncovered desired fraction + a small preference for simpler
        ladders and about five ticks.
    """
    req_lo, req_hi = min(req_lo, req_hi), max(req_lo, req_hi)
    des_lo, des_hi = min(des_lo, req_lo), max(des_hi, req_hi)
    if req_hi - req_lo < 1e-9:
        pad = 0.05 if log else 0.05 * max(1.0, abs(req_lo))
        req_lo, req_hi = req_lo - pad, req_hi + pad
        des_lo, des_hi = min(des_lo, req_lo), max(des_hi, req_hi)
    des_span = des_hi - des_lo
    if log:
        tiers = _LOG_TIERS
    else:
        span = des_hi - des_lo
        e = math.floor(math.log10(span)) if span > 0 else 0
        steps = [m * 10.0 ** k for k in range(e - 2, e + 2) for m in (5, 2.5, 2, 1)]
        steps.sort(reverse=True)
        tiers = tuple(_steps(des_lo, des_hi, s) for s in steps)
    best = None
    eps = 1e-9
    for ti, tier in enumerate(tiers):
        lo_cands = np.nonzero(tier <= req_lo + eps)[0]
        hi_cands = np.nonzero(tier >= req_hi - eps)[0]
        if len(lo_cands) == 0 or len(hi_cands) == 0:
            continue
        for i in lo_cands[-4:]:
            for j in hi_cands[:4]:
                n = j - i + 1
                if not (min_n <= n <= max_n):
                    continue
                a, b = tier[i], tier[j]
                covered = max(0.0, min(b, des_hi) - max(a, des_lo))
                cost = ((b - a) - covered) / des_span \
                    + 1.5 * (des_span - covered) / des_span \
                    + 0.04 * ti + 0.02 * abs(n - 5)
                if best is None or cost < best[0] - 1e-12:
                    best = (cost, tier[i:j + 1])
    if best is None and log and req_hi - req_lo > 1:
        # very wide: every n-th decade
        a = math.floor(req_lo / math.log(10) + 1e-9)
        b = math.ceil(req_hi / math.log(10) - 1e-9)
        step = max(1, math.ceil((b - a) / (max_n - 1)))
        a = step * math.floor(a / step)
        best = (0.0, np.arange(a, b + step, step) * math.log(10))
    if best is None:  # extremely narrow: fall back to evenly spaced
        vals = np.linspace(req_lo, req_hi, 5)
    else:
        vals = best[1]
    labels = tuple(tick_label(math.exp(v) if log else v) for v in vals)
    return Ticks(float(vals[0]), float(vals[-1]), tuple(float(v) for v in vals), labels)
