"""Publication-grade forest plots: a pure layout, then a thin SVG (or PNG) renderer.

:func:`layout_forest` turns a :class:`ForestSpec` into a :class:`ForestLayout`:
every text string with its measured bounding box, every box, whisker, diamond
and line, in inches on a page whose origin is the top-left corner (y grows
downwards). Nothing is drawn, so the geometry is unit-tested (no overlapping
text, ticks, limits, clipping) without a canvas. :func:`render_forest` writes
that layout as SVG directly (:mod:`._svg`, text as ``<text>`` in the shipped font) or
paints the same calls on a Pillow canvas for PNG (:mod:`._raster`; no matplotlib); both
deterministic.

What it shows (Cochrane Handbook v6.4, ch. 10.2.1; Lewis & Clarke 2001,
BMJ 322:1479, doi:10.1136/bmj.322.7300.1479): study labels with optional
per-arm/design columns, boxes whose *area* is proportional to the weight,
level-% CI whiskers (arrows where clipped), weights in %, "HR [95% CI]" text,
the pooled random-effects diamond, the prediction interval as a bar under it,
optional common-effect diamond and subgroup blocks with their own diamonds and
the test for subgroup differences, heterogeneity and overall-effect lines,
favours labels and footnotes.

Why not the ``forestplot`` package (0.4.1, checked against its source in
``.venv`` and by drawing with it)?  It is a table plotter:

* markers are one ``ax.scatter(..., s=markersize)`` call with a constant
  ``markersize=40`` default; weight-scaled boxes are only reachable through
  matplotlib's undocumented ``data=`` column indirection, with no size limits;
* there is no pooled diamond and no prediction interval at all, and no
  subgroup summaries (``groupvar`` only inserts header rows);
* ``logscale=True`` only calls ``set_xscale("log")``; the reference line stays
  at ``xline=0`` (drawn at x = 0, i.e. invisible on a log axis), ticks come
  from ``MaxNLocator(5)`` on the log axis and are labelled
  ``6x10^-1, 7.5x10^-1, 9x10^-1, 1.05x10^0`` and overlap each other;
* x limits are exactly ``min(ll)..max(hl)``: the null can fall outside the
  axis and nothing is clipped or marked;
* columns are aligned by padding strings with spaces (``str.ljust`` on
  character counts) in a monospace font, so proportional fonts misalign and
  long labels are never wrapped;
* it draws on ``pyplot`` (``plt.subplots``) and changes the global
  ``rcParams['font.monospace']`` at import time.

So this module uses none of it and draws everything from a measured layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from .._dist import z_crit
from ..render.format import fmt_num, fmt_p, pct
from ..results import MetaResult
from ._scale import Ticks, axis_title, choose_ticks, is_ratio, null_value
from ._canvas import render
from ._text import finite, line_height, text_width, typeset, wrap

# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ForestRow:
    """One study row.

    Attributes
    ----------
    label : str
        Study label (wrapped if wider than ``ForestSpec.max_label_width``).
    yi : float
        Effect on the analysis scale (log HR/OR/RR; MD, SMD, RD as is).
    vi : float, optional
        Sampling variance of ``yi``; the CI is ``yi +/- z * sqrt(vi)``.
    ci : (float, float), optional
        CI bounds on the analysis scale; used instead of ``vi`` when given.
    weight : float, optional
        Weight in percent (``MetaResult.weights``); None for unpooled rows.
    cells : tuple of str
        Values of the extra columns, one per ``ForestSpec.columns`` header.
    marks : str
        Footnote marks appended to the label, e.g. ``"†"``.
    pooled : bool
        False for rows shown but not pooled (drawn as an open box, weight "–").
    """

    label: str
    yi: float
    vi: float | None = None
    ci: tuple[float, float] | None = None
    weight: float | None = None
    cells: tuple[str, ...] = ()
    marks: str = ""
    pooled: bool = True


@dataclass(frozen=True)
class SubgroupTest:
    """Test for subgroup differences (between-groups Q)."""

    q: float
    df: int
    pvalue: float


@dataclass(frozen=True)
class SubgroupBlock:
    """A subgroup: header, its study rows and its own pooled result."""

    name: str
    rows: tuple[ForestRow, ...]
    result: MetaResult | None = None


@dataclass(frozen=True)
class ForestSpec:
    """Everything a forest plot shows. All effects on the analysis scale.

    Attributes
    ----------
    title : str
    measure : str
        "HR", "OR", "RR" (log axis, null 1) or "RD", "MD", "SMD" (null 0).
    rows : tuple of ForestRow
        Ungrouped study rows (drawn before any subgroup block).
    columns : tuple of str
        Headers of extra text columns between label and plot, e.g.
        ("Design", "Events/N denosumab", "Events/N control", "Follow-up").
    result : MetaResult, optional
        Pooled random-effects result (diamond, PI, heterogeneity line).
    common : MetaResult, optional
        Pooled common-effect result (open diamond).
    subgroups : tuple of SubgroupBlock
    subgroup_test : SubgroupTest, optional
    label_header : str
    favours : (str, str)
        Texts under the axis, left and right of the null.
    footnotes : tuple of str
    level : float
        Confidence level of the study whiskers (pooled CIs come from results).
    show_pi : bool
        Draw the prediction interval of ``result`` when it has one.
    xlim : (float, float), optional
        Axis range on the *natural* scale (e.g. (0.25, 4) for HR).
    axis_label : str, optional
        Default: "Hazard ratio (log scale)" etc.
    digits : int
        Decimals of effect texts (``fmt_num``).
    max_label_width : float
        Inches; longer study labels wrap.
    max_cell_width : float
        Inches; longer cells of the extra columns wrap (a single word is never broken).
    plot_width : float
        Inches of the graphical panel.
    font_size : float
        Points, body text.
    banding : bool
        Faint alternate-row shading of study rows.
    """

    title: str = ""
    measure: str = "HR"
    rows: tuple[ForestRow, ...] = ()
    columns: tuple[str, ...] = ()
    result: MetaResult | None = None
    common: MetaResult | None = None
    subgroups: tuple[SubgroupBlock, ...] = ()
    subgroup_test: SubgroupTest | None = None
    label_header: str = "Study"
    favours: tuple[str, str] = ("Favours denosumab", "Favours control")
    footnotes: tuple[str, ...] = ()
    level: float = 0.95
    show_pi: bool = True
    xlim: tuple[float, float] | None = None
    axis_label: str | None = None
    digits: int = 2
    max_label_width: float = 3.0
    max_cell_width: float = 1.6
    plot_width: float = 3.0
    font_size: float = 9.0
    banding: bool = True


# --------------------------------------------------------------------------
# Output (geometry only; inches, origin top-left, y downwards)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TextItem:
    """One single line of text and its box ``(x0, y0, x1, y1)`` in inches."""

    x: float
    y: float
    text: str
    ha: str  # "left" | "center" | "right"
    size: float
    bold: bool = False
    italic: bool = False
    color: str = "#1a1a1a"
    role: str = ""

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        w = text_width(self.text, self.size, self.bold, self.italic)
        x0 = {"left": self.x, "center": self.x - w / 2, "right": self.x - w}[self.ha]
        h = line_height(self.size)
        return (x0, self.y - h / 2, x0 + w, self.y + h / 2)


@dataclass(frozen=True)
class Box:
    """Weight-scaled square centred at (x, y); ``half`` = half the side (in)."""

    x: float
    y: float
    half: float
    filled: bool = True


@dataclass(frozen=True)
class Whisker:
    """Horizontal CI line; ``clip_*`` = the interval runs past the axis."""

    x0: float
    x1: float
    y: float
    clip_left: bool = False
    clip_right: bool = False


@dataclass(frozen=True)
class Diamond:
    """Pooled estimate: tips at (xl, y), (xr, y); centre xc; half-height hh."""

    xl: float
    xc: float
    xr: float
    y: float
    hh: float
    filled: bool = True
    clip_left: bool = False
    clip_right: bool = False


@dataclass(frozen=True)
class Band:
    y0: float
    y1: float


@dataclass(frozen=True)
class Row:
    """Semantic row record (kind: study, subgroup, subtotal, pooled, common, pi, note)."""

    kind: str
    y: float
    label: str
    group: str | None = None


@dataclass(frozen=True)
class ForestLayout:
    """A fully computed forest plot (inches, origin top-left, y down).

    ``xlim``/``ticks`` are on the analysis scale; ``panel`` is the plot area
    ``(x0, y0, x1, y1)``; ``x_of(v)`` maps an analysis-scale value to inches.
    """

    width: float
    height: float
    log: bool
    xlim: tuple[float, float]
    ticks: Ticks
    panel: tuple[float, float, float, float]
    null_x: float
    null_y: tuple[float, float]
    axis_y: float
    texts: tuple[TextItem, ...]
    boxes: tuple[Box, ...]
    whiskers: tuple[Whisker, ...]
    diamonds: tuple[Diamond, ...]
    pi_bars: tuple[Whisker, ...]
    bands: tuple[Band, ...]
    hlines: tuple[tuple[float, float, float], ...]
    rows: tuple[Row, ...]
    tick_x: tuple[float, ...] = field(default=())

    def x_of(self, v: float) -> float:
        x0, _, x1, _ = self.panel
        lo, hi = self.xlim
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)


# --------------------------------------------------------------------------
# Text helpers (compose fmt_num / fmt_p; no new number formatting rules)
# --------------------------------------------------------------------------


def _p_text(p: float | None) -> str:
    s = fmt_p(p)
    return f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}"


def _tau2_digits(t2: float) -> int:
    return 2 if t2 >= 0.1 else 3 if t2 >= 0.01 else 4


def heterogeneity_text(r: MetaResult) -> str:
    """``Heterogeneity: τ² = 0.31; I² = 92.2%; Q = 152.23, df = 12, p < 0.001`` (no τ² for MH/Peto)."""
    if r.method in ("MH", "Peto"):
        return f"Heterogeneity: I² = {fmt_num(r.i2, 1)}%; Q = {fmt_num(r.q, 2)}, df = {r.q_df}, {_p_text(r.q_pvalue)}"
    return (f"Heterogeneity: τ² = {fmt_num(r.tau2, _tau2_digits(r.tau2))}; "
            f"I² = {fmt_num(r.i2, 1)}%; Q = {fmt_num(r.q, 2)}, df = {r.q_df}, "
            f"{_p_text(r.q_pvalue)}")


def overall_test_text(r: MetaResult) -> str:
    """``Test for overall effect: z = −3.97, p < 0.001`` (t with df for knha)."""
    stat = "z" if r.df is None or r.test == "z" else f"t({fmt_num(r.df, 0)})"
    return typeset(f"Test for overall effect: {stat} = {fmt_num(r.stat, 2)}, {_p_text(r.pvalue)}")


def subgroup_test_text(t: SubgroupTest) -> str:
    return (f"Test for subgroup differences: Q = {fmt_num(t.q, 2)}, df = {t.df}, "
            f"{_p_text(t.pvalue)}")


def model_label(r: MetaResult) -> str:
    """Row label of a pooled result, e.g. ``Random-effects model (REML, HKSJ)``."""
    if r.method.upper() in ("FE", "EE", "CE"):
        return "Common-effect model"
    if r.method in ("MH", "Peto"):
        return "Mantel–Haenszel model" if r.method == "MH" else "Peto model"
    extra = {"knha": ", Hartung–Knapp", "adhoc": ", Hartung–Knapp (ad hoc)"}.get(r.test, "")
    return f"Random-effects model ({r.method}{extra})"


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------

_MARGIN = 0.2          # page margin, inches
_GAP = 0.22            # gap between columns, inches
_ROW_PAD = 0.09        # extra height per row beyond the text lines, inches
_BOX_MIN_HALF = 0.025  # inches
_DIAMOND_HH = 0.075    # inches
_FAV_OFF = 0.08        # gap between the null line and a favours label, inches
_FAV_MAX = 0.42        # the most of the panel a favours label may claim for its half


def _row_ci(row: ForestRow, z: float) -> tuple[float, float]:
    if row.ci is not None:
        return float(row.ci[0]), float(row.ci[1])
    if row.vi is None or not finite(row.vi) or row.vi < 0:
        return (math.nan, math.nan)
    se = math.sqrt(row.vi)
    return row.yi - z * se, row.yi + z * se


def _all_rows(spec: ForestSpec) -> list[ForestRow]:
    out = list(spec.rows)
    for b in spec.subgroups:
        out.extend(b.rows)
    return out


def _has_subtotal(b: SubgroupBlock) -> bool:
    """A subgroup gets a subtotal diamond only when it pools two or more studies.

    A one-study "subtotal" only repeats the study with a CI recomputed from its SE (ABCSG-18:
    reported 0.80 [0.64, 1.01], recomputed [0.64, 1.00]); RevMan prints "Not applicable"
    there, we leave the row out.
    """
    return b.result is not None and b.result.k >= 2


def _results(spec: ForestSpec) -> list[MetaResult]:
    out = [r for r in (spec.result, spec.common) if r is not None]
    out += [b.result for b in spec.subgroups if _has_subtotal(b)]
    return out


def _axis(spec: ForestSpec, log: bool, z: float, sides: tuple[float, float] = (0.0, 0.0)) -> Ticks:
    """Axis ticks; ``sides`` = least fractions of the axis left and right of the null.

    Unless ``spec.xlim`` is given, the axis runs past the null on both sides (at least one
    tick each side) and each half is at least ``sides`` of the panel, so that each favours
    label fits under its own half.
    """
    rows = _all_rows(spec)
    null = null_value(spec.measure)
    pts = [null] + [r.yi for r in rows if finite(r.yi)]
    cis = [_row_ci(r, z) for r in rows]
    lows = [c[0] for c in cis if finite(c[0])]
    highs = [c[1] for c in cis if finite(c[1])]
    for res in _results(spec):
        pts += [v for v in (res.estimate, res.ci_lower, res.ci_upper) if finite(v)]
        if spec.show_pi and res is spec.result and finite(res.pi_lower) and finite(res.pi_upper):
            lows.append(res.pi_lower)
            highs.append(res.pi_upper)
    req_lo, req_hi = min(pts), max(pts)
    if spec.xlim is not None:
        a, b = spec.xlim
        if log:
            if a <= 0 or b <= 0:
                raise ValueError("xlim for a ratio measure must be positive (natural scale)")
            a, b = math.log(a), math.log(b)
        return choose_ticks(min(a, null), max(b, null), min(a, null), max(b, null), log)
    # whiskers may widen the axis only up to one core width on each side;
    # anything further is clipped and marked with an arrow
    core_w = max(req_hi - req_lo, math.log(2) if log else abs(req_hi - req_lo) or 1.0)
    des_lo = max(min(lows + [req_lo]), req_lo - core_w)
    des_hi = min(max(highs + [req_hi]), req_hi + core_w)
    f_lo, f_hi = (max(f, 0.05) for f in sides)
    t = choose_ticks(req_lo, req_hi, des_lo, des_hi, log)
    for _ in range(20):  # each pass only widens the required range, so this settles
        span = t.hi - t.lo
        short_lo = (null - t.lo) / span < f_lo - 1e-9
        short_hi = (t.hi - null) / span < f_hi - 1e-9
        if not (short_lo or short_hi):
            break
        if short_lo:  # (null - lo) / (hi - lo) >= f_lo with hi fixed
            req_lo = min(req_lo, null - f_lo / (1 - f_lo) * (t.hi - null) - 1e-6 * span)
        if short_hi:
            req_hi = max(req_hi, null + f_hi / (1 - f_hi) * (null - t.lo) + 1e-6 * span)
        t = choose_ticks(req_lo, req_hi, min(des_lo, req_lo), max(des_hi, req_hi), log)
    return t


def _box_half(weight: float | None, wmax: float, row_h: float) -> float:
    """Half side: area proportional to weight, within [min, 0.34 row height]."""
    hmax = 0.34 * row_h
    if weight is None or not finite(weight) or wmax <= 0:
        return _BOX_MIN_HALF * 1.6
    return max(_BOX_MIN_HALF, hmax * math.sqrt(max(weight, 0.0) / wmax))


@dataclass(frozen=True)
class _Grid:
    """Everything the rows of one forest plot share: text style, columns and the x mapping.

    Built once by :func:`_grid` before any row is laid out; inches, origin top-left.
    """

    spec: ForestSpec
    log: bool
    z: float                          # critical value of the study whiskers
    lh: float                         # line height of body text
    label_x: float
    label_w: float
    col_x: tuple[float, ...]          # centres of the extra columns
    col_w: tuple[float, ...]
    col_head: tuple[tuple[str, ...], ...]
    wt_x: float                       # right edge of the weight column
    est_x: float                      # right edge of the estimate column
    panel_x0: float
    panel_x1: float
    width: float
    ticks: Ticks
    wmax: float                       # largest study weight (box scaling)

    @property
    def fs(self) -> float:
        return self.spec.font_size

    @property
    def small(self) -> float:
        return self.spec.font_size - 1

    def xo(self, v: float) -> float:
        """Analysis-scale value → inches."""
        lo, hi = self.ticks.lo, self.ticks.hi
        return self.panel_x0 + (v - lo) / (hi - lo) * (self.panel_x1 - self.panel_x0)

    def clipx(self, a: float, b: float) -> tuple[float, float, bool, bool]:
        """Interval [a, b] → (x0, x1, clipped left, clipped right) within the panel."""
        lo, hi = self.ticks.lo, self.ticks.hi
        tol = 0.002 * (hi - lo)  # an overshoot this small is invisible: no arrow
        return (max(self.xo(a), self.panel_x0), min(self.xo(b), self.panel_x1),
                a < lo - tol, b > hi + tol)


def _natural(log: bool, v: float) -> float:
    return math.exp(v) if log else v


def _interval_text(log: bool, lo: float, hi: float, nd: int) -> str:
    """``[0.64, 1.01]`` on the natural scale."""
    return typeset(f"[{fmt_num(_natural(log, lo), nd)}, {fmt_num(_natural(log, hi), nd)}]")


def _est_text(log: bool, y: float, lo: float, hi: float, nd: int) -> str:
    """``0.80 [0.64, 1.01]`` on the natural scale."""
    return typeset(f"{fmt_num(_natural(log, y), nd)} [{fmt_num(_natural(log, lo), nd)}, "
                   f"{fmt_num(_natural(log, hi), nd)}]")


def _weight_text(w: float | None) -> str:
    return "–" if w is None or not finite(w) else f"{fmt_num(w, 1)}%"


def _label_width(spec: ForestSpec) -> float:
    """Width of the label column: the widest label, at most ``max_label_width`` (long study
    labels wrap) but never narrower than a bold pooled-row label."""
    fs = spec.font_size
    pooled_labels = [model_label(r) for r in (spec.result, spec.common) if r is not None]
    if spec.result is not None and spec.show_pi and finite(spec.result.pi_lower):
        pooled_labels.append("Prediction interval")
    if any(_has_subtotal(b) for b in spec.subgroups):
        pooled_labels.append("Subtotal")
    label_texts = [r.label + r.marks for r in _all_rows(spec)]
    need = max([text_width(s, fs) for s in label_texts] +
               [text_width(s, fs, True) for s in pooled_labels] +
               [text_width(spec.label_header, fs, True)] +
               [text_width(b.name, fs, True) for b in spec.subgroups] + [0.5])
    return min(need, max(spec.max_label_width,
                         max([text_width(s, fs, True) for s in pooled_labels] + [0.0])))


def _extra_columns(spec: ForestSpec) -> tuple[list[float], list[list[str]]]:
    """Widths and wrapped header lines of the extra text columns (a word is never broken)."""
    fs = spec.font_size
    col_w = []
    col_head: list[list[str]] = []
    for j, h in enumerate(spec.columns):
        cells = [r.cells[j] for r in _all_rows(spec) if r.cells]
        cw = min(max([text_width(c, fs) for c in cells] + [0.3]), spec.max_cell_width)
        words = max(text_width(w, fs, True) for w in (h.split() or [""]))
        cell_words = [text_width(w, fs) for c in cells for w in c.split()]
        cw = max([cw, words] + cell_words)
        lines = wrap(h, cw, fs, True)
        col_w.append(max([cw] + [text_width(s, fs, True) for s in lines]))
        col_head.append(lines)
    return col_w, col_head


def _est_header(spec: ForestSpec) -> str:
    return f"{spec.measure} [{pct(spec.level)} CI]"


def _number_widths(spec: ForestSpec, log: bool, z: float) -> tuple[float, float]:
    """Widths of the weight and the estimate [CI] columns (widest measured cell)."""
    fs, nd = spec.font_size, spec.digits
    est_cells = [_est_text(log, r.yi, *_row_ci(r, z), nd) for r in _all_rows(spec)]
    for res in _results(spec):
        est_cells.append(_est_text(log, res.estimate, res.ci_lower, res.ci_upper, nd))
    if spec.result is not None and finite(spec.result.pi_lower):
        est_cells.append(_interval_text(log, spec.result.pi_lower, spec.result.pi_upper, nd))
    est_w = max([text_width(s, fs) for s in est_cells] + [text_width(_est_header(spec), fs, True)])
    w_cells = [_weight_text(r.weight) for r in _all_rows(spec)] + ["100.0%"]
    wt_w = max([text_width(s, fs) for s in w_cells] + [text_width("Weight", fs, True)])
    return wt_w, est_w


def _favours_texts(spec: ForestSpec) -> tuple[str, str]:
    return (f"← {spec.favours[0]}" if spec.favours[0] else "",
            f"{spec.favours[1]} →" if spec.favours[1] else "")


def _grid(spec: ForestSpec) -> _Grid:
    """Measure the columns, place them left to right and choose the axis."""
    log = is_ratio(spec.measure)
    z = z_crit(spec.level)
    ncol = len(spec.columns)
    for r in _all_rows(spec):
        if len(r.cells) not in (0, ncol):
            raise ValueError(f"row {r.label!r} has {len(r.cells)} cells for {ncol} columns")
    label_w = _label_width(spec)
    col_w, col_head = _extra_columns(spec)
    wt_w, est_w = _number_widths(spec, log, z)
    x = _MARGIN
    label_x = x
    x += label_w + _GAP
    col_x = []
    for cw in col_w:
        col_x.append(x + cw / 2)  # centred
        x += cw + _GAP
    panel_x0 = x
    panel_x1 = panel_x0 + spec.plot_width
    x = panel_x1 + _GAP
    wt_x = x + wt_w  # right-aligned
    x = wt_x + _GAP
    est_x = x + est_w  # right-aligned
    # each favours label under its own half: that half gets at least the label's width (up to
    # _FAV_MAX of the panel; a longer label wraps to that width)
    sides = tuple(min((text_width(t_, spec.font_size - 1) + _FAV_OFF + 0.04) / spec.plot_width,
                      _FAV_MAX) if t_ else 0.0 for t_ in _favours_texts(spec))
    wmax = max([r.weight for r in _all_rows(spec) if r.weight is not None and finite(r.weight)]
               + [0.0])
    return _Grid(spec=spec, log=log, z=z, lh=line_height(spec.font_size), label_x=label_x,
                 label_w=label_w, col_x=tuple(col_x), col_w=tuple(col_w),
                 col_head=tuple(tuple(h) for h in col_head), wt_x=wt_x, est_x=est_x,
                 panel_x0=panel_x0, panel_x1=panel_x1, width=est_x + _MARGIN,
                 ticks=_axis(spec, log, z, sides), wmax=wmax)


@dataclass
class _Page:
    """What the layout has placed so far, top to bottom; ``y`` is the next free line (in)."""

    y: float = _MARGIN
    texts: list[TextItem] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    whiskers: list[Whisker] = field(default_factory=list)
    diamonds: list[Diamond] = field(default_factory=list)
    pi_bars: list[Whisker] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    hlines: list[tuple[float, float, float]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    band_i: int = 0                   # study rows since the last subgroup header (banding)

    def rule(self, g: _Grid) -> None:
        """A full-width horizontal rule with a small gap above and below."""
        self.y += 0.06
        self.hlines.append((_MARGIN, g.width - _MARGIN, self.y))
        self.y += 0.06


def _title_and_headers(page: _Page, g: _Grid) -> None:
    """The title (wrapped to the page) and the column headers, bottom-aligned, then a rule."""
    spec, fs, lh = g.spec, g.fs, g.lh
    tsize = fs + 2
    if spec.title:
        for line in wrap(spec.title, g.width - 2 * _MARGIN, tsize, True):
            page.y += line_height(tsize) / 2
            page.texts.append(TextItem(_MARGIN, page.y, line, "left", tsize, True, role="title"))
            page.y += line_height(tsize) / 2
        page.y += 0.12
    nhead = max([1] + [len(h) for h in g.col_head])
    head_bottom = page.y + nhead * lh
    last = head_bottom - lh / 2
    texts = page.texts
    texts.append(TextItem(g.label_x, last, spec.label_header, "left", fs, True, role="header"))
    for cx, lines in zip(g.col_x, g.col_head):
        for i, s in enumerate(lines):
            texts.append(TextItem(cx, last - (len(lines) - 1 - i) * lh, s, "center", fs, True,
                                  role="header"))
    texts.append(TextItem(g.wt_x, last, "Weight", "right", fs, True, role="header"))
    texts.append(TextItem(g.est_x, last, _est_header(spec), "right", fs, True, role="header"))
    page.y = head_bottom
    page.rule(g)


def _study_row(page: _Page, g: _Grid, r: ForestRow, group: str | None) -> None:
    """One study: wrapped label and cells, weight, estimate text, whisker and box."""
    fs, lh = g.fs, g.lh
    lines = wrap(r.label + r.marks, g.label_w, fs)
    cell_lines = [wrap(c, cw, fs) for c, cw in zip(r.cells, g.col_w)]
    nl = max([len(lines)] + [len(c) for c in cell_lines])
    h = nl * lh + _ROW_PAD
    y = page.y
    yc = y + h / 2
    if g.spec.banding and page.band_i % 2 == 1:
        page.bands.append(Band(y, y + h))
    page.band_i += 1
    texts = page.texts
    top = yc - (len(lines) - 1) * lh / 2
    for i, s in enumerate(lines):
        texts.append(TextItem(g.label_x, top + i * lh, s, "left", fs, role="label"))
    for cx, cl in zip(g.col_x, cell_lines):
        ctop = yc - (len(cl) - 1) * lh / 2
        for i, s in enumerate(cl):
            texts.append(TextItem(cx, ctop + i * lh, s, "center", fs, role="cell"))
    texts.append(TextItem(g.wt_x, yc, _weight_text(r.weight if r.pooled else None), "right", fs,
                          role="weight"))
    a, b = _row_ci(r, g.z)
    if finite(a) and finite(b):
        texts.append(TextItem(g.est_x, yc, _est_text(g.log, r.yi, a, b, g.spec.digits), "right",
                              fs, role="estimate"))
        x0, x1, cl, cr = g.clipx(a, b)
        if x1 > x0 or cl or cr:
            page.whiskers.append(Whisker(x0, x1, yc, cl, cr))
    if g.ticks.lo <= r.yi <= g.ticks.hi:
        page.boxes.append(Box(g.xo(r.yi), yc, _box_half(r.weight if r.pooled else None, g.wmax,
                                                        lh + _ROW_PAD), filled=r.pooled))
    page.rows.append(Row("study", yc, r.label, group))
    page.y += h


def _pooled_row(page: _Page, g: _Grid, res: MetaResult, label: str, kind: str, weight: str,
                bold: bool, filled: bool = True, group: str | None = None) -> None:
    """A pooled result (overall, common-effect or subtotal): label, weight, text and diamond."""
    fs, lh = g.fs, g.lh
    lines = wrap(label, g.label_w, fs, bold)
    h = len(lines) * lh + _ROW_PAD
    yc = page.y + h / 2
    top = yc - (len(lines) - 1) * lh / 2
    for i, s in enumerate(lines):
        page.texts.append(TextItem(g.label_x, top + i * lh, s, "left", fs, bold, role="label"))
    if weight:
        page.texts.append(TextItem(g.wt_x, yc, weight, "right", fs, bold, role="weight"))
    page.texts.append(TextItem(g.est_x, yc, _est_text(g.log, res.estimate, res.ci_lower,
                                                      res.ci_upper, g.spec.digits),
                               "right", fs, bold, role="estimate"))
    x0, x1, cl, cr = g.clipx(res.ci_lower, res.ci_upper)
    xc = min(max(g.xo(res.estimate), g.panel_x0), g.panel_x1)
    page.diamonds.append(Diamond(x0, xc, x1, yc, _DIAMOND_HH, filled, cl, cr))
    page.rows.append(Row(kind, yc, label, group))
    page.y += h


def _note_rows(page: _Page, g: _Grid, s: str, group: str | None, maxw: float) -> None:
    """A small grey note (heterogeneity, tests) wrapped to ``maxw`` inches."""
    small = g.small
    for line in wrap(s, maxw, small):
        h = line_height(small) + 0.03
        page.texts.append(TextItem(g.label_x, page.y + h / 2, line, "left", small,
                                   color="#444444", role="note"))
        page.rows.append(Row("note", page.y + h / 2, line, group))
        page.y += h


def _subgroup_block(page: _Page, g: _Grid, b: SubgroupBlock, body_top: float) -> None:
    """Header, study rows, subtotal diamond and heterogeneity note of one subgroup."""
    if page.y > body_top + 1e-9:
        page.y += 0.08
    for s in wrap(b.name, g.label_w, g.fs, True):
        h = g.lh + _ROW_PAD / 2
        page.texts.append(TextItem(g.label_x, page.y + h / 2, s, "left", g.fs, True,
                                   role="subgroup"))
        page.rows.append(Row("subgroup", page.y + h / 2, s, b.name))
        page.y += h
    page.band_i = 0
    for r in b.rows:
        _study_row(page, g, r, b.name)
    if _has_subtotal(b):
        ws = [r.weight for r in b.rows if r.pooled and r.weight is not None]
        wtxt = f"{fmt_num(sum(ws), 1)}%" if ws else ""
        _pooled_row(page, g, b.result, "Subtotal", "subtotal", wtxt, False, group=b.name)
        _note_rows(page, g, heterogeneity_text(b.result), b.name, g.panel_x0 - _GAP - g.label_x)


def _pooled_rows(page: _Page, g: _Grid) -> None:
    """Under a rule: the random-effects diamond, the common-effect diamond and the PI bar."""
    spec = g.spec
    if spec.result is not None or spec.common is not None:
        page.rule(g)
    if spec.result is not None:
        _pooled_row(page, g, spec.result, model_label(spec.result), "pooled", "100.0%", True)
    if spec.common is not None:
        _pooled_row(page, g, spec.common, model_label(spec.common), "common", "", False,
                    filled=False)
    res = spec.result
    if res is not None and spec.show_pi and finite(res.pi_lower) and finite(res.pi_upper):
        h = g.lh + _ROW_PAD
        yc = page.y + h / 2
        page.texts.append(TextItem(g.label_x, yc, "Prediction interval", "left", g.fs,
                                   role="label"))
        page.texts.append(TextItem(g.est_x, yc, _interval_text(g.log, res.pi_lower, res.pi_upper,
                                                               spec.digits),
                                   "right", g.fs, role="estimate"))
        x0, x1, cl, cr = g.clipx(res.pi_lower, res.pi_upper)
        page.pi_bars.append(Whisker(x0, x1, yc, cl, cr))
        page.rows.append(Row("pi", yc, "Prediction interval"))
        page.y += h


def _tick_labels(page: _Page, g: _Grid, tick_x: tuple[float, ...], null: float) -> None:
    """Tick labels under the axis, every n-th one (counted from the null) where neighbours
    would touch (narrow panels)."""
    ticks = g.ticks
    tick_items = [TextItem(tx, page.y, typeset(lab), "center", g.fs, role="tick")
                  for tx, lab in zip(tick_x, ticks.labels)]
    keep = list(range(len(tick_items)))
    step = 1
    while any(tick_items[keep[i]].bbox[2] + 0.05 > tick_items[keep[i + 1]].bbox[0]
              for i in range(len(keep) - 1)):
        step += 1
        null_i = min(range(len(ticks.values)), key=lambda i: abs(ticks.values[i] - null))
        keep = [i for i in range(len(tick_items)) if (i - null_i) % step == 0]
    page.texts.extend(tick_items[i] for i in keep)


def _favours_lines(t_: str, room: float, small: float) -> list[str]:
    """One favours label as lines no wider than ``room`` where its words allow."""
    if not t_:
        return []
    if text_width(t_, small) <= room:
        return [t_]
    # two lines of about equal width read better than a greedy wrap's long + short
    words = t_.split(" ")
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
    fits = [sp for sp in splits if max(text_width(x_, small) for x_ in sp) <= room]
    if fits:
        return list(min(fits, key=lambda sp: max(text_width(x_, small) for x_ in sp)))
    widest_word = max(text_width(w_, small) for w_ in words)
    return wrap(t_, max(room, widest_word), small)


def _favours(page: _Page, g: _Grid, null_x: float) -> None:
    """Favours labels: abut the null, each under its own half (wrapped to it), on the page;
    stacked if they would still collide (an explicit xlim with the null near an edge)."""
    left_t, right_t = _favours_texts(g.spec)
    if not (left_t or right_t):
        return
    small, y = g.small, page.y
    slh = line_height(small)
    ll = _favours_lines(left_t, null_x - _FAV_OFF - g.panel_x0, small)
    rl = _favours_lines(right_t, g.panel_x1 - null_x - _FAV_OFF, small)
    wl = max([text_width(t_, small) for t_ in ll] + [0.0])
    wr = max([text_width(t_, small) for t_ in rl] + [0.0])
    lx = max(null_x - _FAV_OFF, _MARGIN + wl)
    rx = min(null_x + _FAV_OFF, g.width - _MARGIN - wr)
    y_r = y
    if ll and rl and lx > rx - 0.06:
        y_r = y + len(ll) * slh
    for i, t_ in enumerate(ll):
        page.texts.append(TextItem(lx, y + (i + 0.5) * slh, t_, "right", small, color="#333333",
                                   role="favours"))
    for i, t_ in enumerate(rl):
        page.texts.append(TextItem(rx, y_r + (i + 0.5) * slh, t_, "left", small, color="#333333",
                                   role="favours"))
    page.y = max(y + len(ll) * slh, y_r + len(rl) * slh) + (g.lh - slh)


def _axis_rows(page: _Page, g: _Grid) -> tuple[float, float, tuple[float, ...]]:
    """Axis line position, tick labels, favours labels and the axis title.

    Returns
    -------
    axis_y, null_x, tick_x
        The axis line's y, the null's x and the ticks' x (inches).
    """
    lh = g.lh
    page.y += 0.05
    axis_y = page.y
    null = null_value(g.spec.measure)
    null_x = g.xo(null)
    tick_x = tuple(g.xo(v) for v in g.ticks.values)
    page.y += 0.06 + lh / 2  # tick marks + half a line
    _tick_labels(page, g, tick_x, null)
    page.y += lh / 2 + 0.04
    _favours(page, g, null_x)
    spec = g.spec
    axis_label = axis_title(spec.measure) if spec.axis_label is None else spec.axis_label
    if axis_label:
        page.texts.append(TextItem((g.panel_x0 + g.panel_x1) / 2, page.y + lh / 2, axis_label,
                                   "center", g.small, color="#333333", role="axis_label"))
        page.y += lh
    page.y += 0.1
    return axis_y, null_x, tick_x


def _notes(page: _Page, g: _Grid) -> None:
    """Heterogeneity, overall-effect and subgroup-difference lines, then footnotes, full width."""
    spec = g.spec
    full = g.width - 2 * _MARGIN
    notes: list[str] = []
    if spec.result is not None:
        notes += [heterogeneity_text(spec.result), overall_test_text(spec.result)]
    if spec.subgroup_test is not None:
        notes.append(subgroup_test_text(spec.subgroup_test))
    for s in notes:
        _note_rows(page, g, s, None, full)
    if spec.footnotes:
        page.y += 0.06
        fsize = g.small - 0.5
        for s in spec.footnotes:
            for line in wrap(s, full, fsize):
                h = line_height(fsize) + 0.02
                page.texts.append(TextItem(_MARGIN, page.y + h / 2, line, "left", fsize,
                                           color="#444444", role="footnote"))
                page.y += h


def layout_forest(spec: ForestSpec) -> ForestLayout:
    """Compute the full geometry of a forest plot without drawing it.

    Parameters
    ----------
    spec : ForestSpec

    Returns
    -------
    ForestLayout
        Texts with measured extents, shapes and axis, in inches. Text never
        overlaps: long labels wrap at ``spec.max_label_width`` and every
        column is as wide as its widest measured cell.
    """
    g = _grid(spec)
    page = _Page()
    _title_and_headers(page, g)
    body_top = page.y
    for r in spec.rows:
        _study_row(page, g, r, None)
    for b in spec.subgroups:
        _subgroup_block(page, g, b, body_top)
    _pooled_rows(page, g)
    axis_y, null_x, tick_x = _axis_rows(page, g)
    _notes(page, g)
    return ForestLayout(
        width=g.width, height=page.y + _MARGIN, log=g.log, xlim=(g.ticks.lo, g.ticks.hi),
        ticks=g.ticks, panel=(g.panel_x0, body_top, g.panel_x1, axis_y), null_x=null_x,
        null_y=(body_top, axis_y), axis_y=axis_y, texts=tuple(page.texts),
        boxes=tuple(page.boxes), whiskers=tuple(page.whiskers), diamonds=tuple(page.diamonds),
        pi_bars=tuple(page.pi_bars), bands=tuple(page.bands), hlines=tuple(page.hlines),
        rows=tuple(page.rows), tick_x=tick_x,
    )


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

INK = "#1a1a1a"
BOX = "#24466e"       # dark blue: boxes and diamonds
PI = "#8c8c8c"
GUIDE = "#9e9e9e"     # null line
BAND = "#f2f4f7"
RULE = "#bdbdbd"


_ARROW = 0.055  # length of a clipping arrow, inches


def _arrow_points(x: float, y: float, direction: int, size: float = _ARROW):
    """Triangle of an arrow whose tip is at (x, y), pointing left (-1) or right (+1)."""
    base = x - direction * size
    return [(x, y), (base, y - size * 0.55), (base, y + size * 0.55)]


def _clip_arrows(shape, color: str = INK):
    """(points, colour) of the arrows of a clipped whisker, bar or diamond."""
    x0, x1 = (shape.xl, shape.xr) if isinstance(shape, Diamond) else (shape.x0, shape.x1)
    out = []
    if shape.clip_left:
        out.append((_arrow_points(x0, shape.y, -1), color))
    if shape.clip_right:
        out.append((_arrow_points(x1, shape.y, +1), color))
    return out


_PI_HH = 0.028  # half-height of the prediction-interval bar, inches


def _diamond_points(d: Diamond):
    return [(d.xl, d.y), (d.xc, d.y - d.hh), (d.xr, d.y), (d.xc, d.y + d.hh)]


def render_forest(layout: ForestLayout, path=None, format: str | None = None,
                  dpi: int = 200, *, embed_font: bool = False) -> bytes:
    """Draw a :class:`ForestLayout` and return SVG or PNG bytes.

    Parameters
    ----------
    layout : ForestLayout
    path : str or os.PathLike, optional
        Also write the bytes here.
    format : {"svg", "png"}, optional
        Default: from ``path``'s suffix, else "svg".
    dpi : int
        Raster resolution for PNG (dots per inch).
    embed_font : bool
        SVG only: carry the plot font's ``@font-face`` rules (~90 KB) in the file itself, for a
        standalone file; the report declares the font once per page instead.

    Returns
    -------
    bytes
        Byte-identical for identical input. SVG is written directly (plot text as ``<text>``);
        PNG is the same painting on a Pillow canvas (:mod:`metaanalysis.plots._raster`). Neither
        imports matplotlib.
    """
    return render(_paint_forest, layout, path, format, dpi, embed_font)


def _paint_forest(layout: ForestLayout, svg) -> None:
    """Paint a forest plot on ``svg`` (an SvgWriter or a RasterWriter: the same calls, in z-order)."""
    px0, _py0, px1, _py1 = layout.panel
    for b in layout.bands:
        svg.rect(0.12, b.y0, layout.width - 0.12, b.y1, fill=BAND)
    thin = {"stroke_width": 0.8, "stroke_linecap": "square"}
    for x0, x1, yy in layout.hlines:
        svg.line(x0, yy, x1, yy, stroke=RULE, **thin)
    svg.line(layout.null_x, layout.null_y[0], layout.null_x, layout.null_y[1], stroke=GUIDE,
             stroke_width=0.9, stroke_linecap="square")
    svg.line(px0, layout.axis_y, px1, layout.axis_y, stroke=INK, **thin)
    for tx in layout.tick_x:
        svg.line(tx, layout.axis_y, tx, layout.axis_y + 0.05, stroke=INK, **thin)
    for w in layout.whiskers:
        svg.line(w.x0, w.y, w.x1, w.y, stroke=INK, stroke_width=1.0, stroke_linecap="butt")
    for p in layout.pi_bars:
        svg.rect(p.x0, p.y - _PI_HH, p.x1, p.y + _PI_HH, fill=PI)
    for pts, color in [a for w in layout.whiskers for a in _clip_arrows(w)]:
        svg.polygon(pts, fill=color)
    for b in layout.boxes:
        style = {"fill": BOX} if b.filled else {"fill": "#ffffff", "stroke": BOX, "stroke_width": 0.8}
        svg.rect(b.x - b.half, b.y - b.half, b.x + b.half, b.y + b.half, **style)
    for pts, color in [a for p in layout.pi_bars for a in _clip_arrows(p, PI)]:
        svg.polygon(pts, fill=color)
    for d in layout.diamonds:
        svg.polygon(_diamond_points(d), fill=BOX if d.filled else "#ffffff", stroke=BOX,
                    stroke_width=0.9)
        for pts, color in _clip_arrows(d):
            svg.polygon(pts, fill=color)
    for t in layout.texts:
        svg.text(t)


def forest_rows_from_result(labels: Sequence[str], result: MetaResult, *,
                            cells: Sequence[Sequence[str]] | None = None,
                            marks: Sequence[str] | None = None,
                            cis: Sequence[tuple[float, float] | None] | None = None,
                            ) -> tuple[ForestRow, ...]:
    """Study rows from a pooled result's own ``yi``/``vi``/``weights`` (input order).

    Parameters
    ----------
    labels : sequence of str, length k
    result : MetaResult
        Must carry ``yi``, ``vi`` and ``weights`` (as :func:`metaanalysis.pool` does).
    cells, marks : optional per-row extra column values and footnote marks.
    cis : optional per-row CI (analysis scale) to show as reported instead of
        ``yi +/- z sqrt(vi)`` (a reported 0.64-1.01 is not symmetric around
        a reported 0.80 on the log scale); None entries fall back to ``vi``.
    """
    k = len(result.yi)
    if len(labels) != k or len(result.vi) != k or len(result.weights) != k:
        raise ValueError(f"need {k} labels, yi, vi and weights; got {len(labels)} labels")
    return tuple(
        ForestRow(label=labels[i], yi=float(result.yi[i]), vi=float(result.vi[i]),
                  weight=float(result.weights[i]),
                  ci=tuple(cis[i]) if cis is not None and cis[i] is not None else None,
                  cells=tuple(cells[i]) if cells is not None else (),
                  marks=marks[i] if marks is not None else "")
        for i in range(k))
