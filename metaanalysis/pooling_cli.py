"""``metaanalysis pool FILE.csv``: pool a CSV of ``yi`` and ``vi`` (or ``sei``) [and ``study``].

Output: a metafor-like text summary, or (``--format json``) one JSON object whose keys
are exactly :data:`metaanalysis.results.RESULT_FIELDS` (``weights`` in file order).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys

from .problems import Problem, ProblemError
from .results import RESULT_FIELDS


def read_yi_vi(path: str):
    """Read ``yi`` and ``vi``/``sei`` columns from a CSV, reporting problems by line/column.

    Returns
    -------
    studies : list of str
    yi, vi : list of float
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ProblemError([Problem(path, 0, 0, "error", "file not found", "check the path")])
    except IsADirectoryError:
        raise ProblemError([Problem(path, 0, 0, "error", "is a directory, not a CSV file", "")])
    except OSError as e:
        raise ProblemError([Problem(path, 0, 0, "error", f"cannot read: {e.strerror}", "")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ProblemError([Problem(path, line, col, "error", "not UTF-8 text",
                                    "save the file as 'CSV UTF-8' in your spreadsheet")])
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    rows = list(reader)
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if not rows:
        raise ProblemError([Problem(path, 1, 0, "error", "empty file", "expected a header: yi,vi[,study]")])
    header = [h.strip().lower() for h in rows[0]]
    probs: list[Problem] = []
    if "yi" not in header:
        probs.append(Problem(path, 1, 0, "error", "no 'yi' column", f"found columns: {', '.join(header)}"))
    if "vi" not in header and "sei" not in header:
        probs.append(Problem(path, 1, 0, "error", "no 'vi' or 'sei' column",
                             "give sampling variances (vi) or standard errors (sei)"))
    if probs:
        raise ProblemError(probs)
    iy = header.index("yi")
    use_se = "vi" not in header
    iv = header.index("sei" if use_se else "vi")
    ist = header.index("study") if "study" in header else None
    studies, yi, vi = [], [], []
    for ln, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        vals = []
        for idx, name in ((iy, "yi"), (iv, "sei" if use_se else "vi")):
            cell = row[idx].strip() if idx < len(row) else ""
            try:
                x = float(cell.replace(",", ".") if delim == ";" else cell)
            except ValueError:
                probs.append(Problem(path, ln, idx + 1, "error", f"{name} is not a number: {cell!r}",
                                     "use a plain number such as -0.22 or 0.0139", name))
                continue
            if not math.isfinite(x):
                probs.append(Problem(path, ln, idx + 1, "error", f"{name} must be finite", "", name))
            elif name != "yi" and x <= 0:
                probs.append(Problem(path, ln, idx + 1, "error", f"{name} must be > 0, got {cell}",
                                     "a variance or standard error of 0 or less is impossible", name))
            vals.append(x)
        if len(vals) == 2:
            yi.append(vals[0])
            vi.append(vals[1] ** 2 if use_se else vals[1])
            studies.append(row[ist].strip() if ist is not None and ist < len(row) else f"study {ln - 1}")
    if not probs and not yi:
        probs.append(Problem(path, 2, 0, "error", "no data rows", "add at least one row with yi and vi"))
    if probs:
        raise ProblemError(probs)
    return studies, yi, vi


def cli_pool(args) -> int:
    from .pooling import pool

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
