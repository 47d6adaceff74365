"""Dot-and-interval plot of single-group proportions: a pure layout, then an SVG renderer.

One row per result: its label across the width, under it a line of numbers on the left (texts
given by the caller) and on the right the proportion as a dot with its CI on a 0-100 % axis. A CI computed exactly
from the counts is a solid line with a filled dot, a CI as reported a solid line with an open
square, a result without a CI an open dot alone: the reader sees which intervals were
recomputed. Nothing is pooled: there is no summary row (SWiM, Campbell et al. 2020,
doi:10.1136/bmj.l6890).

The page is narrow (3.7 in by default) so the plot is readable on a 390 px phone without
sideways scrolling; labels wrap to their column, measured as drawn (:mod:`._text`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._text import line_height, text_width, wrap

__all__ = ["ProportionRow", "ProportionSpec", "ProportionLayout", "layout_proportions", "render_proportions"]


@dataclass(frozen=True)
class ProportionRow:
    """One proportion in [0, 1]; ``lower``/``upper`` its CI (None: none); ``style`` "exact",
    "reported" or "none" (how the interval is drawn); ``detail`` a second, smaller text line."""

    label: str
    estimate: float
    lower: float | None = None
    upper: float | None = None
    style: str = "exact"
    detail: str = ""


@dataclass(frozen=True)
class ProportionSpec:
    rows: tuple[ProportionRow, ...]
    label_header: str = "Result"
    axis_label: str = "Proportion (%)"
    width: float = 3.7
    label_width: float = 1.35
    font_size: float = 8.5


@dataclass(frozen=True)
class ProportionLayout:
    """Page geometry (inches, origin top-left, y down): ``panel`` (x0, y0, x1, y1); ``marks`` are
    (x, y, style) of the dots, ``intervals`` (x0, x1, y) of the CIs, ``bands`` (y0, y1) shaded rows,
    ``grid`` (y0, y1) the stretches under the labels where the ticks' grid lines are drawn."""

    width: float
    height: float
    panel: tuple[float, float, float, float]
    tick_x: tuple[float, ...]
    marks: tuple[tuple[float, float, str], ...]
    intervals: tuple[tuple[float, float, float], ...]
    bands: tuple[tuple[float, float], ...]
    grid: tuple[tuple[float, float], ...]
    texts: tuple                                   # of forest.TextItem


_MARGIN = 0.12
_GAP = 0.16
_PAD = 0.1
_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
INK, MUTED, DOT, BAND = "#1a1a1a", "#444444", "#24466e", "#f2f4f7"
STYLES = ("exact", "reported", "none")


def layout_proportions(spec: ProportionSpec) -> ProportionLayout:
    """Compute the plot's geometry without drawing it.

    Parameters
    ----------
    spec : ProportionSpec

    Returns
    -------
    ProportionLayout
        Rows top to bottom (label lines, detail lines, dot and CI at the row's centre), the
        0-100 % axis with its ticks and title under them; inches, ``spec.width`` wide.
    """
    from .forest import TextItem

    if not spec.rows:
        raise ValueError("a proportions plot needs at least one row")
    for r in spec.rows:
        vals = [v for v in (r.estimate, r.lower, r.upper) if v is not None]
        if r.style not in STYLES or any(not 0 <= v <= 1 for v in vals) or (r.lower is None) != (r.upper is None):
            raise ValueError(f"row {r.label!r}: proportions in [0, 1], both CI bounds or none, style in {STYLES}")
    fs, small = spec.font_size, spec.font_size - 1
    lh, slh = line_height(fs), line_height(small)
    lx = _MARGIN
    x0 = lx + spec.label_width + _GAP
    x1 = spec.width - _MARGIN - max(text_width("100%", small), text_width("0%", small)) / 2

    def to_x(v: float) -> float:
        return x0 + v * (x1 - x0)

    texts = [TextItem(lx, _MARGIN + lh / 2, spec.label_header, "left", fs, True, role="header")]
    y = _MARGIN + lh + 0.06
    top = y
    marks, intervals, bands, grid = [], [], [], []
    for i, r in enumerate(spec.rows):
        # the label runs the full width above its interval; the numbers sit beside the interval
        lines = wrap(r.label, spec.width - 2 * _MARGIN, fs)
        detail = wrap(r.detail, spec.label_width, small) if r.detail else []
        body = max(len(detail) * slh, lh)
        h = len(lines) * lh + body + 2 * _PAD
        if i % 2 == 1:
            bands.append((y, y + h))
        ty = y + _PAD
        for s in lines:
            texts.append(TextItem(lx, ty + lh / 2, s, "left", fs, role="label"))
            ty += lh
        yc = ty + body / 2
        grid.append((ty, y + h))
        ty = yc - len(detail) * slh / 2
        for s in detail:
            texts.append(TextItem(lx, ty + slh / 2, s, "left", small, color=MUTED, role="detail"))
            ty += slh
        if r.lower is not None:
            intervals.append((to_x(r.lower), to_x(r.upper), yc))
        marks.append((to_x(r.estimate), yc, r.style))
        y += h
    axis_y = y + 0.04
    tick_x = tuple(to_x(v) for v in _TICKS)
    ty = axis_y + 0.05 + 0.03 + slh / 2
    texts += [TextItem(x, ty, f"{round(v * 100)}%", "center", small, color=INK, role="tick")
              for x, v in zip(tick_x, _TICKS)]
    ty += slh / 2 + 0.04 + slh / 2
    texts.append(TextItem((x0 + x1) / 2, ty, spec.axis_label, "center", small, color=MUTED, role="axis_label"))
    return ProportionLayout(spec.width, ty + slh / 2 + _MARGIN, (x0, top, x1, axis_y), tick_x, tuple(marks),
                            tuple(intervals), tuple(bands), tuple(grid), tuple(texts))


def render_proportions(layout: ProportionLayout, *, embed_font: bool = False) -> bytes:
    """The SVG of a :class:`ProportionLayout` (deterministic bytes; text as ``<text>``)."""
    from ._svg import SvgWriter

    svg = SvgWriter(layout.width, layout.height, embed_font=embed_font)
    x0, y0, x1, y1 = layout.panel
    for b0, b1 in layout.bands:
        svg.rect(0.06, b0, layout.width - 0.06, b1, fill=BAND)
    for g0, g1 in layout.grid:       # not through the labels, which run across the panel
        for x in layout.tick_x:
            svg.line(x, g0, x, g1, stroke="#d9d9d9", stroke_width=0.6)
    axis = {"stroke": INK, "stroke_width": 0.8, "stroke_linecap": "square"}
    svg.line(x0, y1, x1, y1, **axis)
    for x in layout.tick_x:
        svg.line(x, y1, x, y1 + 0.05, **axis)
    for a, b, y in layout.intervals:
        svg.line(a, y, b, y, stroke=INK, stroke_width=1.2, stroke_linecap="butt")
        for x in (a, b):
            svg.line(x, y - 0.035, x, y + 0.035, stroke=INK, stroke_width=1.0)
    for x, y, style in layout.marks:
        if style == "reported":
            h = 0.045
            svg.rect(x - h, y - h, x + h, y + h, fill="#ffffff", stroke=DOT, stroke_width=1.0)
        else:
            svg.circle(x, y, 3.4, fill=DOT if style == "exact" else "#ffffff", stroke=DOT, stroke_width=1.0)
    for t in layout.texts:
        svg.text(t)
    return svg.to_bytes()
