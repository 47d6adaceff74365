"""Shared loading/comparison helpers for the metafor conformance tests.

The fixtures in ``tests/reference/fixtures/*.json`` are written by
``tests/reference/make_fixtures.R`` (R 4.2.2, metafor 3.8-1; see tests/reference/README.md).
Numbers are stored with 17 significant digits; R's ``NA`` is ``null`` and non-finite values are
the strings ``"Inf"``, ``"-Inf"``, ``"NaN"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).parent / "fixtures"

#: Tolerance of the conformance tests: a value passes when it is within 1e-6 absolutely OR
#: relatively of metafor's (fixtures are computed with tight control settings, so metafor
#: itself is accurate to ~1e-10 here; see tests/reference/README.md).
RTOL = 1e-6
ATOL = 1e-6

_SPECIAL = {"Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


def _decode(x: Any) -> Any:
    if isinstance(x, str) and x in _SPECIAL:
        return _SPECIAL[x]
    if isinstance(x, list):
        return [_decode(e) for e in x]
    if isinstance(x, dict):
        return {k: _decode(v) for k, v in x.items()}
    return x


def load_fixtures() -> list[dict]:
    """All fixtures, sorted by dataset name, with Inf/NaN strings decoded."""
    out = []
    for p in sorted(FIXTURE_DIR.glob("*.json")):
        with open(p, encoding="utf-8") as fh:
            out.append(_decode(json.load(fh)))
    return out


FIXTURES = load_fixtures()


def is_missing(v: Any) -> bool:
    """metafor's NA: we accept None or NaN from the Python side."""
    if v is None:
        return True
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def close(actual: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Scalar comparison: None<->None/NaN, inf exact, else abs-or-rel tolerance."""
    if expected is None:
        return is_missing(actual)
    if actual is None:
        return False
    a, e = float(actual), float(expected)
    if math.isnan(e):
        return math.isnan(a)
    if math.isinf(e):
        return a == e
    if not math.isfinite(a):
        return False
    return abs(a - e) <= atol or abs(a - e) <= rtol * abs(e)


def mismatches(actual: dict, expected: dict, keys, *, rtol=RTOL, atol=ATOL) -> list[str]:
    """List of "key: got X, metafor Y" for every key that is not close (vectors elementwise)."""
    bad = []
    for key in keys:
        e, a = expected[key], actual[key]
        if isinstance(e, list):
            if a is None or len(a) != len(e):
                bad.append(f"{key}: length {None if a is None else len(a)} != {len(e)}")
                continue
            for i, (ai, ei) in enumerate(zip(a, e)):
                if not close(ai, ei, rtol, atol):
                    bad.append(f"{key}[{i}]: got {ai!r}, metafor {ei!r}")
        elif not close(a, e, rtol, atol):
            bad.append(f"{key}: got {a!r}, metafor {e!r}")
    return bad
