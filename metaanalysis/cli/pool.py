"""``metaanalysis pool FILE.csv``: pool a CSV of ``yi`` and ``vi`` (or ``sei``) [and ``study``].

The file is read like the registry (:func:`metaanalysis.table.read_table`: encodings,
``;`` exports with decimal commas, physical line numbers, an unclosed quote named where it
opened) and each number by the registry's strict parser (no ``1_000``, ``nan`` or ``inf``;
non-ASCII digits with a warning). A column given twice is an error; with both ``vi`` and
``sei`` every row must agree (``sei² = vi`` to a relative 1e-6). Numbers so extreme that
the estimators' sums would overflow are refused at their cell (:data:`YI_LIMIT`,
:data:`VI_RANGE`).

Output: a metafor-like text summary, or (``--format json``) one JSON object whose keys
are exactly :data:`metaanalysis.results.RESULT_FIELDS` (``weights`` in file order).
Warnings go to stderr as ``PATH:LINE:COLUMN: warning: ...``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass

from ..problems import Problem, ProblemError, has_errors
from ..results import RESULT_FIELDS
from ..table import DECIMAL_COMMA, MAX_FIELD_LENGTH, NON_ASCII_DIGITS, norm_header, parse_number, read_table
from ..vocab import EFFECT_LIMIT

_COLUMNS = ("yi", "vi", "sei", "study")
#: Largest |yi| accepted (:data:`metaanalysis.vocab.EFFECT_LIMIT`).
YI_LIMIT = EFFECT_LIMIT
#: Accepted sampling variances (sei: their square roots): 1/vi and its square stay finite.
VI_RANGE = (1e-50, 1e50)
#: Relative tolerance between ``sei**2`` and ``vi`` when both columns are given.
SEI_VI_RTOL = 1e-6
_QUIRK_TEXT = {DECIMAL_COMMA: "written with a decimal comma; read as decimal points",
               NON_ASCII_DIGITS: "written with non-ASCII digits (full-width or another script); read as 0-9"}


@dataclass(frozen=True)
class PoolInput:
    """What :func:`read_yi_vi` read: one entry per data row, and the warnings."""

    studies: list[str]
    yi: list[float]
    vi: list[float]
    warnings: tuple[Problem, ...] = ()


def read_yi_vi(path: str) -> PoolInput:
    """Read ``yi`` and ``vi``/``sei`` columns from a CSV, reporting problems by line/column.

    Raises
    ------
    ProblemError
        Every error of the file (with its warnings).
    """
    t = read_table(path, _COLUMNS, missing_hint="check the path")
    if not t.ok:
        raise ProblemError(t.problems)
    cols = _columns(path, t.header_line, t.header)
    probs: list[Problem] = list(t.problems)
    quirks: dict[str, list[Problem]] = {}
    studies, yi, vi = [], [], []
    for ln, row in t.rows:
        cell = _Cells(path, ln, row, t.decimal_comma, probs, quirks)
        y = cell.number(cols, "yi")
        v = cell.number(cols, "vi") if "vi" in cols else None
        se = cell.number(cols, "sei") if "sei" in cols else None
        if v is not None and se is not None and not math.isclose(se * se, v, rel_tol=SEI_VI_RTOL):
            cell.error(cols["sei"], "sei", f"sei² = {se * se:.6g} disagrees with vi = {v:.6g} (column "
                       f"{cols['vi'] + 1})", "give one of the two columns, or correct the one that is wrong")
        if "vi" not in cols and se is not None:
            v = se * se
        if y is not None and v is not None and not has_errors(cell.mine):
            yi.append(y)
            vi.append(v)
            studies.append(row[cols["study"]].strip() if "study" in cols and cols["study"] < len(row)
                           else f"study {ln - t.header_line}")
    probs += [Problem(p[0].path, p[0].line, p[0].column, "warning",
                             f"{len(p)} number(s) {_QUIRK_TEXT[q]} (first here)", "retype them as plain numbers",
                             p[0].column_name) for q, p in quirks.items()]
    if not has_errors(probs) and not yi:
        probs.append(Problem(path, t.header_line + 1, 0, "error", "no data rows", "add at least one row with yi and vi"))
    if has_errors(probs):
        raise ProblemError(probs)
    return PoolInput(studies, yi, vi, tuple(sorted(probs)))


def _columns(path: str, line: int, header: tuple[str, ...]) -> dict[str, int]:
    """Column name -> 0-based index; a name given twice, or no yi / no vi nor sei, is an error."""
    cols: dict[str, int] = {}
    probs = []
    for j, h in enumerate(header):
        name = norm_header(h)
        if name in cols:
            probs.append(Problem(path, line, j + 1, "error", f"column '{name}' appears twice (also column {cols[name] + 1})",
                                 "delete or rename one of them", name))
        elif name in _COLUMNS:
            cols[name] = j
    if "yi" not in cols:
        probs.append(Problem(path, line, 0, "error", "no 'yi' column", f"found columns: {', '.join(header)}"))
    if "vi" not in cols and "sei" not in cols:
        probs.append(Problem(path, line, 0, "error", "no 'vi' or 'sei' column",
                             "give sampling variances (vi) or standard errors (sei)"))
    if probs:
        raise ProblemError(probs)
    return cols


class _Cells:
    """The cells of one data row, checked one by one (problems go to the file's list)."""

    def __init__(self, path, line, row, decimal_comma, probs, quirks):
        self.path, self.line, self.row, self.decimal_comma = path, line, row, decimal_comma
        self.probs, self.quirks, self.mine = probs, quirks, []

    def error(self, idx: int, name: str, message: str, hint: str = "") -> None:
        p = Problem(self.path, self.line, idx + 1, "error", message, hint, name)
        self.probs.append(p)
        self.mine.append(p)

    def number(self, cols: dict[str, int], name: str) -> float | None:
        """One cell as a finite number in its accepted range, else None with the problem recorded."""
        idx = cols[name]
        cell = self.row[idx].strip() if idx < len(self.row) else ""
        if len(cell) > MAX_FIELD_LENGTH:
            self.error(idx, name, f"{name}: cell is {len(cell)} characters long (at most {MAX_FIELD_LENGTH})",
                       "a number is a few characters; an unclosed quote?")
            return None
        x, _, quirk = parse_number(cell, self.decimal_comma)
        if x is None or not math.isfinite(x):
            what = f"{name} must be finite" if cell.lower().lstrip("+-") in ("nan", "inf", "infinity") or x is not None \
                else f"{name} is not a number: {cell!r}"
            self.error(idx, name, what, "use a plain number such as -0.22 or 0.0139")
            return None
        if quirk:
            self.quirks.setdefault(quirk, []).append(Problem(self.path, self.line, idx + 1, "warning", "", "", name))
        return self._in_range(idx, name, cell, x)

    def _in_range(self, idx: int, name: str, cell: str, x: float) -> float | None:
        lo, hi = VI_RANGE if name == "vi" else (math.sqrt(VI_RANGE[0]), math.sqrt(VI_RANGE[1]))
        if name == "yi" and abs(x) > YI_LIMIT:
            self.error(idx, name, f"{name} = {cell} is beyond ±{YI_LIMIT:g}",
                       "an effect on the analysis scale (log ratio, difference) is a modest number; check the units")
        elif name != "yi" and x <= 0:
            self.error(idx, name, f"{name} must be > 0, got {cell}", "a variance or standard error of 0 or less is impossible")
        elif name != "yi" and not lo <= x <= hi:
            self.error(idx, name, f"{name} = {cell} is outside {lo:g} to {hi:g}",
                       "the pooled weights (1/vi) would overflow; check the units")
        else:
            return x
        return None


def cli_pool(args) -> int:
    from ..pooling import pool

    data = read_yi_vi(args.file)
    for p in data.warnings:
        print(p.format(), file=sys.stderr)
    try:
        res = pool(data.yi, data.vi, method=args.method, test=args.test, level=args.level, pi=args.pi)
    except ValueError as e:  # bad method name, level, ...
        print(f"metaanalysis pool: usage error: {e}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(res.to_dict(RESULT_FIELDS), indent=2, allow_nan=False))
    else:
        print(res.summary())
        print()
        w = max(len(s) for s in data.studies)
        print(f"{'study':<{w}}  {'yi':>9}  {'vi':>9}  {'weight %':>8}")
        for s, y, v, wt in zip(data.studies, data.yi, data.vi, res.weights):
            print(f"{s:<{w}}  {y:>9.4f}  {v:>9.4f}  {wt:>8.2f}")
    return 0
