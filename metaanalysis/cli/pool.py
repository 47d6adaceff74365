"""``metaanalysis pool FILE.csv``: pool a CSV of ``yi`` and ``vi`` (or ``sei``) [and ``study``], or of
``estimate`` with ``ci_lower`` and ``ci_upper`` (or ``p_value``) on the natural scale and ``--measure``.

Estimates with a CI become ``yi, vi`` as the registry's do (:func:`metaanalysis.effects.from_ci`, the
CI's level from a ``ci_level`` column in percent, else ``--ci-level``); an estimate with only a
p-value through :func:`metaanalysis.effects.from_p` (two-sided, with a warning that the SE is
derived). Defaults are the reports' (:data:`metaanalysis.plan.DEFAULT_SETTINGS`: REML, the ad hoc
Knapp-Hartung test, metafor's PI, 95%). ``--transform exp`` (the default for a ratio ``--measure``)
prints the estimate and intervals on the ratio scale.

The file is read like the registry (:func:`metaanalysis.table.read_table`: encodings,
``;`` exports with decimal commas, physical line numbers, an unclosed quote named where it
opened) and each number by the registry's strict parser (no ``1_000``, ``nan`` or ``inf``;
non-ASCII digits with a warning). A column given twice is an error; with both ``vi`` and
``sei`` every row must agree (``sei² = vi`` to a relative 1e-6). Numbers so extreme that
the estimators' sums would overflow are refused at their cell (:data:`YI_LIMIT`,
:data:`VI_RANGE`).

Output: a metafor-like text summary, or (``--format json``) one JSON object whose keys
are exactly :data:`metaanalysis.results.RESULT_FIELDS` (``weights`` in file order; analysis
scale), plus ``"transformed"`` (estimate and intervals after ``--transform exp``) when asked.
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

_COLUMNS = ("yi", "vi", "sei", "study", "estimate", "ci_lower", "ci_upper", "ci_level", "p_value")
#: Largest |yi| accepted (:data:`metaanalysis.vocab.EFFECT_LIMIT`).
YI_LIMIT = EFFECT_LIMIT
#: Accepted sampling variances (sei: their square roots): 1/vi and its square stay finite.
VI_RANGE = (1e-50, 1e50)
#: Relative tolerance between ``sei**2`` and ``vi`` when both columns are given.
SEI_VI_RTOL = 1e-6
_COMMA_IN_COMMA_FILE = "comma-in-comma-file"
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
    return read_effects(path)


def read_effects(path: str, measure: str | None = None, ci_level: float = 0.95) -> PoolInput:
    """Read ``yi`` with ``vi``/``sei``, or (with ``measure``) ``estimate`` with ``ci_lower``/``ci_upper``
    or ``p_value``, from a CSV; problems by line and column.

    Parameters
    ----------
    path : str
    measure : str, optional
        A code of :data:`metaanalysis.vocab.POOLABLE_MEASURES`; needed for ``estimate`` columns.
    ci_level : float
        Level of the CIs (fraction) where the file has no ``ci_level`` column (percent).

    Raises
    ------
    ProblemError
        Every error of the file (with its warnings).
    """
    t = read_table(path, _COLUMNS, missing_hint="check the path")
    if not t.ok:
        raise ProblemError(t.problems)
    cols = _columns(path, t.header_line, t.header, measure)
    probs: list[Problem] = list(t.problems)
    quirks: dict[str, list[Problem]] = {}
    studies, yi, vi = [], [], []
    for ln, row in t.rows:
        cell = _Cells(path, ln, row, t.decimal_comma, probs, quirks)
        y, v = _row_effect(cell, cols, measure, ci_level) if "yi" not in cols else _row_yi_vi(cell, cols)
        if y is not None and v is not None and not has_errors(cell.mine):
            yi.append(y)
            vi.append(v)
            studies.append(row[cols["study"]].strip() if "study" in cols and cols["study"] < len(row)
                           else f"study {ln - t.header_line}")
    commas = quirks.pop(_COMMA_IN_COMMA_FILE, [])
    if commas:  # one diagnosis for the file, not one error per cell
        first = commas[0]
        probs.append(Problem(first.path, first.line, first.column, "error",
                             f"{len(commas)} number cell(s) written with a decimal comma (first here: {first.message!r}) "
                             "in a ','-separated file", "export with '.' as the decimal separator, or save the file "
                             "';'-separated: that is read with decimal commas", first.column_name))
    probs += [Problem(p[0].path, p[0].line, p[0].column, "warning",
                             f"{len(p)} number(s) {_QUIRK_TEXT[q]} (first here)", "retype them as plain numbers",
                             p[0].column_name) for q, p in quirks.items()]
    if not has_errors(probs) and not yi:
        probs.append(Problem(path, t.header_line + 1, 0, "error", "no data rows", "add at least one row with yi and vi"))
    if has_errors(probs):
        raise ProblemError(probs)
    return PoolInput(studies, yi, vi, tuple(sorted(probs)))


def _row_yi_vi(cell: "_Cells", cols: dict[str, int]) -> tuple[float | None, float | None]:
    """``yi`` and ``vi`` (or ``sei²``) of one row; both columns given must agree."""
    y = cell.number(cols, "yi")
    v = cell.number(cols, "vi") if "vi" in cols else None
    se = cell.number(cols, "sei") if "sei" in cols else None
    if v is not None and se is not None and not math.isclose(se * se, v, rel_tol=SEI_VI_RTOL):
        cell.error(cols["sei"], "sei", f"sei² = {se * se:.6g} disagrees with vi = {v:.6g} (column "
                   f"{cols['vi'] + 1})", "give one of the two columns, or correct the one that is wrong")
    return y, (se * se if "vi" not in cols and se is not None else v)


def _row_effect(cell: "_Cells", cols: dict[str, int], measure: str, ci_level: float) -> tuple[float | None, float | None]:
    """``yi, vi`` of one row from its estimate and CI (metafor ``conv.wald``), or its estimate and p-value."""
    from .. import effects as ef
    from ..vocab import as_level

    est = cell.number(cols, "estimate")
    lo, hi = (cell.optional(cols, n) for n in ("ci_lower", "ci_upper"))
    p_text = cell.text(cols, "p_value")
    if est is None or has_errors(cell.mine):
        return None, None
    try:
        if lo is not None and hi is not None:
            lv = cell.optional(cols, "ci_level")
            y, v = ef.from_ci(est, lo, hi, level=as_level(lv) if lv is not None else ci_level, measure=measure)
        elif p_text:
            pv = ef.parse_p_value(p_text)
            y, v, _ = ef.from_p(est, pv.value, measure=measure, p_is_inequality=pv.relation != "=")
            cell.warn(cols["p_value"], "p_value", f"SE derived from p = {p_text} (no CI)",
                      "give ci_lower and ci_upper where the source reports them")
        else:
            cell.error(cols["estimate"], "estimate", "the row has an estimate but neither ci_lower and "
                       "ci_upper nor a p_value", "give its CI (or p-value), or delete the row")
            return None, None
    except ValueError as e:  # non-positive ratio, lower >= upper, p outside (0, 1), bad level
        where = "p_value" if lo is None or hi is None else "ci_lower"
        cell.error(cols[where], where, str(e), "correct the value, as printed in the source")
        return None, None
    return float(y), float(v)


def _columns(path: str, line: int, header: tuple[str, ...], measure: str | None = None) -> dict[str, int]:
    """Column name -> 0-based index; a name given twice, no yi and no estimate, no vi nor sei beside
    yi, no CI nor p-value column beside estimate, or estimate without ``measure`` is an error."""
    cols: dict[str, int] = {}
    probs = []
    for j, h in enumerate(header):
        name = norm_header(h)
        if name in cols:
            probs.append(Problem(path, line, j + 1, "error", f"column '{name}' appears twice (also column {cols[name] + 1})",
                                 "delete or rename one of them", name))
        elif name in _COLUMNS:
            cols[name] = j
    probs += _missing_columns(path, line, header, cols, measure)
    if probs:
        raise ProblemError(probs)
    return cols


def _missing_columns(path: str, line: int, header, cols: dict[str, int], measure: str | None) -> list[Problem]:
    from ..vocab import POOLABLE_MEASURES

    def err(message: str, hint: str) -> Problem:
        return Problem(path, line, 0, "error", message, hint)

    if "yi" in cols:
        return [] if "vi" in cols or "sei" in cols else [
            err("no 'vi' or 'sei' column", "give sampling variances (vi) or standard errors (sei)")]
    if "estimate" not in cols:
        return [err("no 'yi' and no 'estimate' column", f"give yi with vi (or sei), or estimate with ci_lower and "
                    f"ci_upper (or p_value) and --measure; found columns: {', '.join(header)}")]
    out = []
    if not ({"ci_lower", "ci_upper"} <= set(cols) or "p_value" in cols):
        out.append(err("'estimate' needs 'ci_lower' and 'ci_upper' (or 'p_value') columns",
                       "add the CI bounds as reported, on the same scale as the estimate"))
    if measure is None:
        out.append(err("'estimate' is on the natural scale of a measure the file does not name",
                       f"give --measure (one of {', '.join(POOLABLE_MEASURES)})"))
    return out


class _Cells:
    """The cells of one data row, checked one by one (problems go to the file's list)."""

    def __init__(self, path, line, row, decimal_comma, probs, quirks):
        self.path, self.line, self.row, self.decimal_comma = path, line, row, decimal_comma
        self.probs, self.quirks, self.mine = probs, quirks, []

    def error(self, idx: int, name: str, message: str, hint: str = "") -> None:
        p = Problem(self.path, self.line, idx + 1, "error", message, hint, name)
        self.probs.append(p)
        self.mine.append(p)

    def warn(self, idx: int, name: str, message: str, hint: str = "") -> None:
        self.probs.append(Problem(self.path, self.line, idx + 1, "warning", message, hint, name))

    def text(self, cols: dict[str, int], name: str) -> str:
        """A cell's stripped text ('' when the column or the cell is absent)."""
        idx = cols.get(name)
        return self.row[idx].strip() if idx is not None and idx < len(self.row) else ""

    def optional(self, cols: dict[str, int], name: str) -> float | None:
        """An optional number: None when empty or absent (an unreadable one is an error)."""
        if not self.text(cols, name):
            return None
        x, _, quirk = parse_number(self.text(cols, name), self.decimal_comma)
        if x is None or not math.isfinite(x):
            self.error(cols[name], name, f"{name} is not a number: {self.text(cols, name)!r}",
                       "use a plain number such as 0.82, or leave the cell empty")
            return None
        if quirk:
            self.quirks.setdefault(quirk, []).append(Problem(self.path, self.line, cols[name] + 1, "warning", "", "", name))
        return x

    def number(self, cols: dict[str, int], name: str) -> float | None:
        """One cell as a finite number in its accepted range, else None with the problem recorded."""
        idx = cols[name]
        cell = self.row[idx].strip() if idx < len(self.row) else ""
        if len(cell) > MAX_FIELD_LENGTH:
            self.error(idx, name, f"{name}: cell is {len(cell)} characters long (at most {MAX_FIELD_LENGTH})",
                       "a number is a few characters; an unclosed quote?")
            return None
        x, _, quirk = parse_number(cell, self.decimal_comma)
        if x is None and parse_number(cell, True)[0] is not None:  # '0,82' in a ','-separated file
            self.quirks.setdefault(_COMMA_IN_COMMA_FILE, []).append(
                Problem(self.path, self.line, idx + 1, "error", cell, "", name))
            self.mine.append(self.quirks[_COMMA_IN_COMMA_FILE][-1])  # the row is not pooled
            return None
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
        elif name not in ("vi", "sei"):
            return x  # an estimate: its measure's own checks (from_ci, from_p) follow
        elif x <= 0:
            self.error(idx, name, f"{name} must be > 0, got {cell}", "a variance or standard error of 0 or less is impossible")
        elif not lo <= x <= hi:
            self.error(idx, name, f"{name} = {cell} is outside {lo:g} to {hi:g}",
                       "the pooled weights (1/vi) would overflow; check the units")
        else:
            return x
        return None


def transform_of(args) -> str | None:
    """``"exp"`` or None: ``--transform`` when given, else ``"exp"`` for a ratio ``--measure``."""
    from ..vocab import RATIO_MEASURES

    t = getattr(args, "transform", None)
    if t is None:
        return "exp" if getattr(args, "measure", None) in RATIO_MEASURES else None
    return None if t == "none" else t


def _transformed(res, transform: str) -> dict:
    """Estimate, CI and PI after ``transform`` (for the JSON output)."""
    import numpy as np

    f = getattr(np, transform)
    keys = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")
    return {"transform": transform, **{k: (None if getattr(res, k) is None else float(f(getattr(res, k)))) for k in keys}}


def _study_table(data: PoolInput, res, transform: str | None, level: float) -> list[str]:
    """One line per study: yi, vi and weight, or (with a transform) the study's estimate and CI."""
    import numpy as np
    from scipy.special import ndtri  # what scipy.stats.norm.ppf computes (same bits), without importing scipy.stats

    w = max(len(s) for s in data.studies)
    if transform is None:
        out = [f"{'study':<{w}}  {'yi':>9}  {'vi':>9}  {'weight %':>8}"]
        return out + [f"{s:<{w}}  {y:>9.4f}  {v:>9.4f}  {wt:>8.2f}"
                      for s, y, v, wt in zip(data.studies, data.yi, data.vi, res.weights)]
    f, z = getattr(np, transform), ndtri(0.5 + level / 2)
    out = [f"{'study':<{w}}  {'estimate':>9}  {f'{level:.0%} CI':>19}  {'weight %':>8}"]
    for s, y, v, wt in zip(data.studies, data.yi, data.vi, res.weights):
        lo, hi = f(y - z * np.sqrt(v)), f(y + z * np.sqrt(v))
        out.append(f"{s:<{w}}  {f(y):>9.4f}  {f'{lo:.4f} to {hi:.4f}':>19}  {wt:>8.2f}")
    return out


def cli_pool(args) -> int:
    """``metaanalysis pool FILE``: 0 pooled, 1 data problems (printed by the caller), 2 usage errors."""
    from ..pooling import pool

    data = read_effects(args.file, getattr(args, "measure", None), getattr(args, "ci_level", 0.95))
    for p in data.warnings:
        print(p.format(), file=sys.stderr)
    try:
        res = pool(data.yi, data.vi, method=args.method, test=args.test, level=args.level, pi=args.pi)
    except ValueError as e:  # bad method name, level, ...
        print(f"metaanalysis pool: usage error: {e}", file=sys.stderr)
        return 2
    transform = transform_of(args)
    if args.format == "json":
        out = res.to_dict(RESULT_FIELDS)
        if transform:
            out["transformed"] = _transformed(res, transform)
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        print(res.summary(transform))
        print()
        for line in _study_table(data, res, transform, res.level):
            print(line)
    return 0
