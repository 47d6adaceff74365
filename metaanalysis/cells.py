"""Registry cell values as Python values: text ('' when missing), finite float or int (None).

The registry frame stores missing values as pandas ``<NA>`` / NaN; every layer that reads a
cell goes through these three functions so that "missing" means the same everywhere.
"""

from __future__ import annotations

import math
from typing import Any


def text(v: Any) -> str:
    """A cell as stripped text; '' for None, NaN and pandas NA."""
    if v is None:
        return ""
    try:
        if v != v:  # NaN, pandas NA
            return ""
    except (TypeError, ValueError):  # pandas NA refuses bool()
        return ""
    return str(v).strip()


def number(v: Any) -> float | None:
    """A cell as a finite float; None for missing, text or ±inf."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def integer(v: Any) -> int | None:
    """A cell as an int (truncated); None where :func:`number` is None."""
    f = number(v)
    return int(f) if f is not None else None
