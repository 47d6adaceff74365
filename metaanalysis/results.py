"""Result types and the one formatter for numbers and p-values.

Every renderer (text, JSON, HTML, plots) reads these frozen dataclasses; nothing
downstream recomputes a statistic. Field names follow metafor's ``rma.uni``
object (``tau2``, ``i2``, ``ci_lower`` ~ ``ci.lb``, ``pi_lower`` ~ ``pi.lb``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

#: The public result fields, in the order the CLI prints them (issue #3, item 8).
RESULT_FIELDS: tuple[str, ...] = (
    "k", "method", "test", "level", "estimate", "se", "stat", "df", "pvalue",
    "ci_lower", "ci_upper", "tau2", "tau2_se", "tau2_ci_lower", "tau2_ci_upper",
    "tau", "i2", "i2_ci_lower", "i2_ci_upper", "h2", "h2_ci_lower", "h2_ci_upper",
    "q", "q_df", "q_pvalue", "pi_lower", "pi_upper", "weights", "converged",
    "iterations", "metafor_call",
)


@dataclass(frozen=True)
class MetaResult:
    """Result of one univariate meta-analysis (common- or random-effects).

    All effect quantities are on the analysis scale (e.g. log hazard ratio);
    back-transform with :func:`numpy.exp` for ratio measures. ``weights`` are
    percentages summing to 100, in input order. ``tau2_ci_*``, ``i2_ci_*`` and
    ``h2_ci_*`` come from the Q-profile method (Viechtbauer 2007,
    doi:10.1002/sim.2514); I² and H² are τ²-based, as in metafor.
    """

    k: int
    method: str
    test: str
    level: float
    estimate: float
    se: float
    stat: float
    df: float | None
    pvalue: float
    ci_lower: float
    ci_upper: float
    tau2: float
    tau2_se: float | None
    tau2_ci_lower: float | None
    tau2_ci_upper: float | None
    tau: float
    i2: float
    i2_ci_lower: float | None
    i2_ci_upper: float | None
    h2: float
    h2_ci_lower: float | None
    h2_ci_upper: float | None
    q: float
    q_df: int
    q_pvalue: float
    pi_lower: float | None
    pi_upper: float | None
    weights: tuple[float, ...]
    converged: bool
    iterations: int
    metafor_call: str
    # -- beyond metafor's printout: what the renderers need ---------------------
    pi: str = "metafor"
    yi: tuple[float, ...] = ()
    vi: tuple[float, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def tau_ci_lower(self) -> float | None:
        """Q-profile CI for τ: the square root of the τ² bounds (metafor ``confint``)."""
        return None if self.tau2_ci_lower is None else math.sqrt(self.tau2_ci_lower)

    @property
    def tau_ci_upper(self) -> float | None:
        return None if self.tau2_ci_upper is None else math.sqrt(self.tau2_ci_upper)

    def to_dict(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Plain-Python dict (JSON-ready: NaN/inf become None).

        Parameters
        ----------
        keys : tuple of str, optional
            Restrict to these fields (default: every field).
        """
        d = asdict(self)
        if keys is not None:
            d = {k: d[k] for k in keys}
        return {k: _jsonable(v) for k, v in d.items()}

    def summary(self, transform: str | None = None) -> str:
        """metafor-like text summary; ``transform="exp"`` shows ratio scale."""
        f = fmt_num
        lines = [
            f"{'Common-effect' if self.method == 'FE' else 'Random-effects'} model "
            f"(k = {self.k}; tau^2 estimator: {self.method}; test: {self.test})",
            "",
            f"tau^2 = {f(self.tau2, 4)}"
            + (f" (SE = {f(self.tau2_se, 4)})" if self.tau2_se is not None else "")
            + (f", {pct(self.level)} CI {f(self.tau2_ci_lower, 4)} to {f(self.tau2_ci_upper, 4)}"
               if self.tau2_ci_lower is not None else ""),
            f"I^2 = {f(self.i2, 2)}%   H^2 = {f(self.h2, 2)}",
            f"Q(df = {self.q_df}) = {f(self.q, 4)}, {fmt_p_eq(self.q_pvalue)}",
            "",
        ]
        tr = (lambda x: x) if transform is None else getattr(np, transform)
        lines.append(
            f"estimate = {f(tr(self.estimate), 4)}  "
            f"[{f(tr(self.ci_lower), 4)}, {f(tr(self.ci_upper), 4)}]  "
            f"se = {f(self.se, 4)}  {fmt_p_eq(self.pvalue)}"
        )
        if self.pi_lower is not None:
            lines.append(
                f"prediction interval ({self.pi}): "
                f"[{f(tr(self.pi_lower), 4)}, {f(tr(self.pi_upper), 4)}]"
            )
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def result_field_names() -> tuple[str, ...]:
    """All dataclass field names of :class:`MetaResult` (public + renderer extras)."""
    return tuple(f.name for f in fields(MetaResult))


# ---------------------------------------------------------------------------
# The one formatter for numbers and p-values
# ---------------------------------------------------------------------------

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
