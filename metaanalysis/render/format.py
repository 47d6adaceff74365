"""The one formatter for numbers, intervals, p-values and levels (every renderer uses it).

Numbers keep the ASCII '-' so text, CSV and JSON output can be parsed back (the plots typeset
U+2212 themselves); intervals are written "0.71 to 0.97" (Cochrane style, unambiguous with
negative numbers).
"""

from __future__ import annotations

import math


def fmt_num(x: float | None, digits: int = 2) -> str:
    """Format a number with fixed decimals; ``None``/NaN as an en dash, ±inf as ±∞.

    Negative numbers keep the ASCII '-' so text, CSV and JSON output can be parsed back
    (the plots typeset U+2212 themselves); ``-0.00`` is printed as ``0.00``.
    """
    if x is None:
        return "–"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(xf):
        return "–" if math.isnan(xf) else ("∞" if xf > 0 else "−∞")
    s = f"{xf:.{digits}f}"
    if s.startswith("-") and float(s) == 0.0:
        s = s[1:]  # no "-0.00"
    return s


def fmt_p(p: float | None, threshold: float = 0.001) -> str:
    """Format a p-value: ``<0.001`` below ``threshold``, else 3 decimals (2 above 0.1)."""
    if p is None:
        return "–"
    pf = float(p)
    if not math.isfinite(pf):
        return "–"
    if pf < threshold:
        return f"<{threshold:g}"
    if pf >= 0.1:
        return f"{pf:.2f}"
    return f"{pf:.3f}"


def fmt_p_eq(p: float | None, threshold: float = 0.001) -> str:
    """``"p = 0.026"`` or ``"p < 0.001"`` (for running text)."""
    s = fmt_p(p, threshold)
    return f"p < {s[1:]}" if s.startswith("<") else f"p = {s}"


def fmt_ci(lo: float | None, hi: float | None, digits: int = 2) -> str:
    """``"0.71 to 0.97"`` (Cochrane style; avoids ambiguity with negative numbers)."""
    return f"{fmt_num(lo, digits)} to {fmt_num(hi, digits)}"


def pct(level: float) -> str:
    """``0.95 -> "95%"``."""
    v = 100 * float(level)
    return f"{v:.0f}%" if abs(v - round(v)) < 1e-9 else f"{v:g}%"
