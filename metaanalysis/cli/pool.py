"""``metaanalysis pool FILE.csv``: pool a CSV of ``yi`` and ``vi`` (or ``sei``) [and ``study``].

Output: a metafor-like text summary, or (``--format json``) one JSON object whose keys
are exactly :data:`metaanalysis.results.RESULT_FIELDS` (``weights`` in file order).
"""

from __future__ import annotations

import json
import math
import sys

from ..problems import Problem, ProblemError
from ..results import RESULT_FIELDS
from ..table import parse_number, read_table


def read_yi_vi(path: str):
    """Read ``yi`` and ``vi``/``sei`` columns from a CSV, reporting problems by line/column.

    The file is read by :func:`metaanalysis.table.read_table` (the registry's reader: encodings,
    ``;`` exports with decimal commas, physical line numbers) and each number by its strict
    parser (no ``1_000``, ``nan`` or ``inf``).

    Returns
    -------
    studies : list of str
    yi, vi : list of float
    """
    t = read_table(path, ("yi", "vi", "sei", "study"), missing_hint="check the path")
    if not t.ok:
        raise ProblemError(t.problems)
    header = [h.strip().lower() for h in t.header]
    _check_header(path, t.header_line, header)
    iy, use_se = header.index("yi"), "vi" not in header
    iv = header.index("sei" if use_se else "vi")
    ist = header.index("study") if "study" in header else None
    studies, yi, vi, probs = [], [], [], []
    for ln, row in t.rows:
        vals = [_number(path, ln, row, idx, name, t.decimal_comma, probs)
                for idx, name in ((iy, "yi"), (iv, "sei" if use_se else "vi"))]
        if None not in vals:
            yi.append(vals[0])
            vi.append(vals[1] ** 2 if use_se else vals[1])
            studies.append(row[ist].strip() if ist is not None and ist < len(row) else f"study {ln - t.header_line}")
    if not probs and not yi:
        probs.append(Problem(path, t.header_line + 1, 0, "error", "no data rows",
                             "add at least one row with yi and vi"))
    if probs:
        raise ProblemError(probs)
    return studies, yi, vi


def _check_header(path: str, line: int, header: list[str]) -> None:
    probs = []
    if "yi" not in header:
        probs.append(Problem(path, line, 0, "error", "no 'yi' column", f"found columns: {', '.join(header)}"))
    if "vi" not in header and "sei" not in header:
        probs.append(Problem(path, line, 0, "error", "no 'vi' or 'sei' column",
                             "give sampling variances (vi) or standard errors (sei)"))
    if probs:
        raise ProblemError(probs)


def _number(path, ln, row, idx, name, decimal_comma, probs) -> float | None:
    """One cell as a finite number (> 0 for vi/sei), else None with the problem in ``probs``."""
    cell = row[idx].strip() if idx < len(row) else ""
    x, _, _ = parse_number(cell, decimal_comma)
    if x is None:
        what = "must be finite" if cell.lower().lstrip("+-") in ("nan", "inf", "infinity") else \
            f"is not a number: {cell!r}"
        probs.append(Problem(path, ln, idx + 1, "error", f"{name} {what}",
                             "use a plain number such as -0.22 or 0.0139", name))
        return None
    if not math.isfinite(x):
        probs.append(Problem(path, ln, idx + 1, "error", f"{name} must be finite", "", name))
        return None
    if name != "yi" and x <= 0:
        probs.append(Problem(path, ln, idx + 1, "error", f"{name} must be > 0, got {cell}",
                             "a variance or standard error of 0 or less is impossible", name))
        return None
    return x


def cli_pool(args) -> int:
    from ..pooling import pool

    studies, yi, vi = read_yi_vi(args.file)
    try:
        res = pool(yi, vi, method=args.method, test=args.test, level=args.level, pi=args.pi)
    except ValueError as e:  # bad method name, level, ...
        print(f"metaanalysis pool: usage error: {e}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(res.to_dict(RESULT_FIELDS), indent=2, allow_nan=False))
    else:
        print(res.summary())
        print()
        w = max(len(s) for s in studies)
        print(f"{'study':<{w}}  {'yi':>9}  {'vi':>9}  {'weight %':>8}")
        for s, y, v, wt in zip(studies, yi, vi, res.weights):
            print(f"{s:<{w}}  {y:>9.4f}  {v:>9.4f}  {wt:>8.2f}")
    return 0
