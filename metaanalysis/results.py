"""The result type of one meta-analysis (formatting lives in :mod:`metaanalysis.render.format`).

Every renderer (text, JSON, HTML, plots) reads these frozen dataclasses; nothing
downstream recomputes a statistic. Field names follow metafor's ``rma.uni``
object (``tau2``, ``i2``, ``ci_lower`` ~ ``ci.lb``, ``pi_lower`` ~ ``pi.lb``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
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
        # fields are scalars, strings and tuples of them: no deep copy (asdict) is needed, and
        # jsonable converts the tuples; asdict's recursion was a tenth of a report's JSON time
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if keys is not None:
            d = {k: d[k] for k in keys}
        return {k: jsonable(v) for k, v in d.items()}

    def summary(self, transform: str | None = None) -> str:
        """metafor-like text summary; ``transform="exp"`` shows ratio scale
        (:func:`metaanalysis.render.text.summary_text`)."""
        from .render.text import summary_text

        return summary_text(self, transform)

    def to_frame(self):
        """One-row pandas DataFrame of the scalar fields (:data:`RESULT_FIELDS` without
        ``weights`` and ``metafor_call``), for notebooks and ``pd.concat`` across results."""
        import pandas as pd

        keys = tuple(k for k in RESULT_FIELDS if k not in ("weights", "metafor_call")) + ("pi",)
        return pd.DataFrame([self.to_dict(keys)], columns=list(keys))


def jsonable(v: Any) -> Any:
    """Plain-Python, JSON-ready value: numpy scalars unwrapped, NaN/inf -> None, dicts and
    sequences converted recursively, anything else not a number kept or stringified."""
    # the plain types a result tree is mostly made of first, by exact type (a report's JSON
    # walks ~10,000 values per analysis); their results are what the general rules below give
    t = type(v)
    if t is float:
        return v if math.isfinite(v) else None
    if t is str or t is int or t is bool or v is None:
        return v
    if t is dict:
        return {k if type(k) is str else str(k): jsonable(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [jsonable(x) for x in v]
    return _jsonable_other(v)


def _jsonable_other(v: Any) -> Any:
    """:func:`jsonable` of anything but a plain float, str, int, bool, None, dict, list or tuple."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else None


def result_field_names() -> tuple[str, ...]:
    """All dataclass field names of :class:`MetaResult` (public + renderer extras)."""
    return tuple(f.name for f in fields(MetaResult))
