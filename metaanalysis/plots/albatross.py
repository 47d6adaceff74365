"""Albatross plot of p-value-only results: a pure layout, then an SVG renderer.

x = the two-sided p-value on a log scale, split by the direction of effect: p = 1 in the centre,
smaller p-values towards the left (the result points to harm) or the right (it points to
benefit); y = total sample size on a log scale (Harrison et al. 2017, Res Synth Methods 8:281,
doi:10.1002/jrsm.1239). A p-value reported only as a bound ("p < 0.0001") is drawn at the bound
with an arrow outwards: the true p lies further out. Dashed lines mark p = 0.05 on both sides.
Points are numbered; the key under the plot (texts given by the caller) says which result each
number is, so coincident results stay legible. Effect contours need an effect measure and a
test; the caller draws none where the source states neither.

The page is narrow (3.7 in by default, 355 CSS px) so the plot is readable on a 390 px phone
without sideways scrolling; every text is measured (:mod:`._text`) and nothing overlaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._scale import Ticks, choose_ticks, tick_label
from ._text import line_height, text_width, typeset, wrap

__all__ = ["AlbatrossMark", "AlbatrossSpec", "AlbatrossLayout", "layout_albatross", "render_albatross"]


@dataclass(frozen=True)
class AlbatrossMark:
    """One result: ``key`` (its number on the plot), total sample size ``n`` (> 0), two-sided ``p`` in
    (0, 1], ``side`` +1 (benefit, right) or -1 (harm, left), ``bound``: p is an upper bound."""

    key: str
    n: float
    p: float
    side: int
    bound: bool = False


@dataclass(frozen=True)
class AlbatrossSpec:
    """Everything an albatross plot shows (texts are the caller's words)."""

    marks: tuple[AlbatrossMark, ...]
    left: str = "← Harm"
    right: str = "Benefit →"
    xlabel: str = "Two-sided p-value (log scale)"
    ylabel: str = "Sample size (log scale)"
    key: tuple[str, ...] = ()
    alpha: float = 0.05
    width: float = 3.7
    panel_height: float = 2.2
    font_size: float = 8.5


@dataclass(frozen=True)
class AlbatrossLayout:
    """Page geometry (inches, origin top-left, y down). ``panel`` is (x0, y0, x1, y1); ``dots`` are
    marker centres, ``arrows`` (x0, y, x1) run from a bound's marker outwards, ``guides`` are the
    vertical lines (x, style) with style "null" or "alpha"."""

    width: float
    height: float
    panel: tuple[float, float, float, float]
    xlim: float                                   # the axis runs from -xlim to +xlim decades
    yticks: Ticks
    tick_x: tuple[float, ...]
    tick_y: tuple[float, ...]
    dots: tuple[tuple[float, float], ...]
    arrows: tuple[tuple[float, float, float], ...]
    guides: tuple[tuple[float, str], ...]
    texts: tuple                                  # of forest.TextItem
    ylabel: object                                # TextItem, drawn turned 90° counter-clockwise


_MARGIN = 0.12
_TICK = 0.05
_DOT_R = 3.2 / 72          # marker radius, inches
_ARROW = 0.16              # length of a bound's arrow, inches
INK, MUTED, DOT, GUIDE = "#1a1a1a", "#444444", "#24466e", "#9e9e9e"


def _decades(spec: AlbatrossSpec) -> float:
    """Half-width of the x axis in decades of p: past the smallest p (room for a bound's arrow)."""
    most = max([-math.log10(m.p) for m in spec.marks] + [-math.log10(spec.alpha)])
    return max(2.0, math.ceil(most - 1e-9) + (1.0 if any(m.bound for m in spec.marks) else 0.5))


def _x_ticks(lim: float, to_x, size: float) -> list[tuple[float, str]]:
    """p = 1 in the centre and every n-th decade on both sides, n as small as lets labels not touch."""
    for step in (1, 2, 3, 5):
        decs = [d for d in range(step, int(math.floor(lim)) + 1, step)]
        ticks = [(0.0, "1")] + [(s * d, tick_label(10.0 ** -d)) for d in decs for s in (-1, 1)]
        ticks.sort()
        boxes = [(to_x(v) - text_width(t, size) / 2, to_x(v) + text_width(t, size) / 2) for v, t in ticks]
        if all(a[1] + 0.04 < b[0] for a, b in zip(boxes, boxes[1:])):
            return ticks
    return [(0.0, "1")]


def _marker_labels(dots, keys, panel, size):
    """Each dot's number beside it (left of it on the right half, right of it on the left half),
    coincident dots sharing one label; labels moved down where they would overlap."""
    from .forest import TextItem

    groups: dict[tuple[float, float], list[str]] = {}
    for d, k in zip(dots, keys):
        groups.setdefault((round(d[0], 4), round(d[1], 4)), []).append(k)
    items, placed = [], []
    for (x, y), ks in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        right_half = x >= (panel[0] + panel[2]) / 2
        tx = x - _DOT_R - 0.04 if right_half else x + _DOT_R + 0.04
        it = TextItem(tx, y, ", ".join(ks), "right" if right_half else "left", size, True, color=DOT, role="mark")
        while any(_overlap(it.bbox, b) for b in placed):
            it = TextItem(it.x, it.y + line_height(size) * 0.5, it.text, it.ha, size, True, color=DOT, role="mark")
        placed.append(it.bbox)
        items.append(it)
    return items


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _y_axis(spec: AlbatrossSpec) -> Ticks:
    ns = [math.log(m.n) for m in spec.marks]
    lo, hi = min(ns), max(ns)
    return choose_ticks(lo, hi, lo - 0.3, hi + 0.3, log=True, min_n=3, max_n=6)


def layout_albatross(spec: AlbatrossSpec) -> AlbatrossLayout:
    """Compute an albatross plot's geometry without drawing it.

    Parameters
    ----------
    spec : AlbatrossSpec

    Returns
    -------
    AlbatrossLayout
        Measured texts (tick labels, point numbers, side labels, axis titles, key), markers,
        bound arrows and guide lines, in inches; the page is ``spec.width`` wide.
    """
    from .forest import TextItem

    if not spec.marks:
        raise ValueError("an albatross plot needs at least one result")
    if any(not (0 < m.p <= 1) or m.n <= 0 or m.side not in (-1, 1) for m in spec.marks):
        raise ValueError("each mark needs 0 < p <= 1, n > 0 and side -1 or +1")
    fs, small = spec.font_size, spec.font_size - 0.5
    lh = line_height(fs)
    yt = _y_axis(spec)
    left = _MARGIN + lh + 0.06 + max(text_width(t, small) for t in yt.labels) + _TICK + 0.03
    panel = (left, _MARGIN + 0.05, spec.width - _MARGIN - 0.1, _MARGIN + 0.05 + spec.panel_height)
    lim = _decades(spec)

    def to_x(v: float) -> float:
        return panel[0] + (v + lim) / (2 * lim) * (panel[2] - panel[0])

    def to_y(logn: float) -> float:
        return panel[3] - (logn - yt.lo) / (yt.hi - yt.lo) * (panel[3] - panel[1])

    dots = tuple((to_x(m.side * -math.log10(m.p)), to_y(math.log(m.n))) for m in spec.marks)
    # a bound's arrow stays inside the decade of room _decades() left (its head is 0.05 in long)
    arrow = max(_DOT_R + 0.03, min(_ARROW, (panel[2] - panel[0]) / (2 * lim) - 0.06))
    arrows = tuple((x + m.side * _DOT_R, y, x + m.side * arrow) for m, (x, y) in zip(spec.marks, dots) if m.bound)
    a = -math.log10(spec.alpha)
    guides = ((to_x(0.0), "null"), (to_x(-a), "alpha"), (to_x(a), "alpha"))
    texts = _marker_labels(dots, [m.key for m in spec.marks], panel, fs)
    xt = _x_ticks(lim, to_x, small)
    y = panel[3] + _TICK + 0.03 + line_height(small) / 2
    texts += [TextItem(to_x(v), y, typeset(t), "center", small, color=INK, role="tick") for v, t in xt]
    texts += [TextItem(panel[0] - _TICK - 0.03, to_y(v), t, "right", small, color=INK, role="tick")
              for v, t in zip(yt.values, yt.labels)]
    y += line_height(small) / 2 + 0.04 + lh / 2
    texts += [TextItem(to_x(0.0) - 0.08, y, spec.left, "right", fs, color=MUTED, role="side"),
              TextItem(to_x(0.0) + 0.08, y, spec.right, "left", fs, color=MUTED, role="side")]
    y += lh
    texts.append(TextItem((panel[0] + panel[2]) / 2, y, spec.xlabel, "center", small, color=MUTED, role="axis_label"))
    y += lh / 2 + 0.08
    for line in (ln for k in spec.key for ln in wrap(k, spec.width - 2 * _MARGIN, small)):
        texts.append(TextItem(_MARGIN, y + line_height(small) / 2, line, "left", small, color=INK, role="key"))
        y += line_height(small) + 0.01
    ylabel = TextItem(_MARGIN + lh / 2, (panel[1] + panel[3]) / 2, spec.ylabel, "center", small, color=MUTED,
                      role="axis_label")
    return AlbatrossLayout(spec.width, y + _MARGIN, panel, lim, yt, tuple(to_x(v) for v, _ in xt),
                           tuple(to_y(v) for v in yt.values), dots, arrows, guides, tuple(texts), ylabel)


def render_albatross(layout: AlbatrossLayout, *, embed_font: bool = False) -> bytes:
    """The SVG of an :class:`AlbatrossLayout` (deterministic bytes; text as ``<text>``)."""
    from ._svg import SvgWriter

    svg = SvgWriter(layout.width, layout.height, embed_font=embed_font)
    x0, y0, x1, y1 = layout.panel
    for x, style in layout.guides:
        dash = None if style == "null" else "3 2.5"
        svg.line(x, y0, x, y1, stroke=GUIDE, stroke_width=0.8, stroke_dasharray=dash)
    axis = {"stroke": INK, "stroke_width": 0.8, "stroke_linecap": "square"}
    svg.line(x0, y1, x1, y1, **axis)
    svg.line(x0, y0, x0, y1, **axis)
    for x in layout.tick_x:
        svg.line(x, y1, x, y1 + _TICK, **axis)
    for y in layout.tick_y:
        svg.line(x0 - _TICK, y, x0, y, **axis)
    for xa, y, xb in layout.arrows:
        svg.line(xa, y, xb, y, stroke=DOT, stroke_width=1.0)
        d = 1 if xb > xa else -1
        svg.polygon([(xb + d * 0.05, y), (xb, y - 0.03), (xb, y + 0.03)], fill=DOT)
    for x, y in layout.dots:
        svg.circle(x, y, _DOT_R * 72, fill=DOT, stroke="#ffffff", stroke_width=0.6)
    for t in layout.texts:
        svg.text(t)
    svg.text(layout.ylabel, rotate=True)
    return svg.to_bytes()
