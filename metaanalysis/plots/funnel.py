"""Contour-enhanced funnel plot: a pure layout and frame, then an SVG (or PNG) renderer.

x = effect on the analysis scale (log scale for ratio measures, labelled on the
natural scale), y = standard error, inverted (precise studies at the top).
Shaded contours mark where a study would be significant at p < 0.10, 0.05 and
0.01 against the null (Peters et al. 2008, J Clin Epidemiol 61:991,
doi:10.1016/j.jclinepi.2007.11.010); dashed pseudo-confidence lines fan out
from the pooled estimate; an optional Egger regression line is drawn from
coefficients computed elsewhere (:mod:`metaanalysis.sensitivity`).

Funnel plots and asymmetry tests need enough studies: the Cochrane Handbook
(v6.4, section 13.3.5.4) and Sterne et al. 2011 (BMJ 343:d4002,
doi:10.1136/bmj.d4002) advise at least 10; :func:`funnel_allowed` encodes that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._dist import z_crit
from ..render.format import fmt_num
from ..results import MetaResult
from ._scale import Ticks, axis_title, choose_ticks, is_ratio, null_value
from ._canvas import render
from ._text import finite, typeset


def funnel_allowed(k: int, min_k: int = 10) -> tuple[bool, str]:
    """Whether a funnel plot / asymmetry test is meaningful for ``k`` studies.

    Returns
    -------
    (bool, str)
        ``(True, "")`` or ``(False, reason)``; threshold from Sterne et al. 2011
        (doi:10.1136/bmj.d4002).
    """
    if k >= min_k:
        return True, ""
    return False, (f"funnel plot not drawn: {k} studies, fewer than {min_k} (tests for funnel "
                   f"asymmetry have too little power; Sterne et al. 2011, BMJ 343:d4002)")


@dataclass(frozen=True)
class FunnelSpec:
    """Input of a funnel plot (analysis scale).

    Attributes
    ----------
    yi, vi : tuple of float, length k
        Effects and sampling variances.
    measure : str
        "HR", "OR", "RR" (log scale) or "RD", "MD", "SMD".
    result : MetaResult, optional
        Pooled result; its ``estimate`` centres the pseudo-CI lines.
    egger_intercept, egger_slope : float, optional
        Egger line in funnel coordinates, ``yi = egger_intercept +
        egger_slope * sei`` (metafor ``regtest(..., predictor="sei")``
        coefficients: the intercept is the limit estimate as SE -> 0, the slope
        the asymmetry) -- i.e. ``e.intercept``, ``e.slope`` of
        ``e = metaanalysis.sensitivity.egger(yi, vi)`` (either form). From the
        classic Egger fit ``yi/sei = b0 + b1/sei`` pass
        ``egger_intercept=b1, egger_slope=b0``.
    contours : tuple of float
        Significance levels of the shaded contours (two-sided p).
    level : float
        Level of the pseudo-confidence lines.
    labels : tuple of str, optional
        Not drawn by default; kept for hover/tooltips in the HTML report.
    """

    yi: tuple[float, ...]
    vi: tuple[float, ...]
    measure: str = "HR"
    result: MetaResult | None = None
    title: str = ""
    egger_intercept: float | None = None
    egger_slope: float | None = None
    contours: tuple[float, ...] = (0.10, 0.05, 0.01)
    level: float = 0.95
    labels: tuple[str, ...] = ()
    width: float = 6.8
    height: float = 4.6


@dataclass(frozen=True)
class FunnelLayout:
    """Computed funnel geometry (data coordinates: x analysis scale, y = SE).

    ``regions`` are ``(label, colour, polygon)`` with polygon vertices in data
    coordinates; ``lines`` are ``(label, style, [(x, y), ...])``.
    """

    width: float
    height: float
    title: str
    log: bool
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xticks: Ticks
    yticks: tuple[float, ...]
    ytick_labels: tuple[str, ...]
    points: tuple[tuple[float, float], ...]
    regions: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...]
    lines: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...]
    xlabel: str
    ylabel: str = "Standard error"


_SHADES = ("#c8c8c8", "#dedede", "#f0f0f0")  # p in (.05,.10], (.01,.05], <= .01


def layout_funnel(spec: FunnelSpec) -> FunnelLayout:
    """Compute a contour-enhanced funnel plot without drawing it.

    Parameters
    ----------
    spec : FunnelSpec

    Returns
    -------
    FunnelLayout
    """
    log = is_ratio(spec.measure)
    c = null_value(spec.measure)  # contours are significance against the null, centred on it
    if len(spec.yi) != len(spec.vi) or not spec.yi:
        raise ValueError("yi and vi must be non-empty and of equal length")
    se = [math.sqrt(v) for v in spec.vi]
    yi = list(spec.yi)
    se_max = max(se)
    yt = choose_ticks(0.0, se_max, 0.0, se_max * 1.05, log=False, min_n=3, max_n=6)
    ytop = yt.hi
    est = spec.result.estimate if spec.result is not None else None
    zc = z_crit(spec.level)
    req = [c] + yi + ([est] if est is not None else [])
    des = list(req)
    if est is not None:
        des += [est - zc * ytop, est + zc * ytop]
    zmax = z_crit(1 - min(spec.contours))
    des += [c - zmax * ytop, c + zmax * ytop]
    xt = choose_ticks(min(req), max(req), min(des), max(des), log)
    lo, hi = xt.lo, xt.hi

    regions = []
    levels = sorted(spec.contours, reverse=True)  # 0.10, 0.05, 0.01
    zs = [z_crit(1 - a) for a in levels] + [None]
    for i, a in enumerate(levels):
        z_in, z_out = zs[i], zs[i + 1]
        lab = (f"{fmt_num(levels[i + 1], 2)} < p ≤ {fmt_num(a, 2)}" if z_out is not None
               else f"p ≤ {fmt_num(a, 2)}")
        for sgn in (-1, 1):
            inner = [(c, 0.0), (c + sgn * z_in * ytop, ytop)]
            if z_out is None:
                edge = lo if sgn < 0 else hi
                outer = [(c + sgn * max(abs(edge - c), z_in * ytop), ytop), (edge, 0.0)]
                poly = inner + outer
            else:
                poly = inner + [(c + sgn * z_out * ytop, ytop), (c, 0.0)]
            regions.append((lab, _SHADES[min(i, len(_SHADES) - 1)], tuple(poly)))

    lines = [("null", "null", ((c, 0.0), (c, ytop)))]
    if est is not None:
        lines.append(("Pooled estimate", "estimate", ((est, 0.0), (est, ytop))))
        lines.append((f"Pseudo {round(spec.level * 100)}% CI", "pseudo",
                      ((est - zc * ytop, ytop), (est, 0.0), (est + zc * ytop, ytop))))
    if finite(spec.egger_intercept) and finite(spec.egger_slope):
        b0, b1 = float(spec.egger_intercept), float(spec.egger_slope)
        lines.append(("Egger regression", "egger", ((b0, 0.0), (b0 + b1 * ytop, ytop))))

    return FunnelLayout(
        width=spec.width, height=spec.height, title=spec.title, log=log, xlim=(lo, hi),
        ylim=(0.0, ytop), xticks=xt, yticks=yt.values, ytick_labels=yt.labels,
        points=tuple(zip(yi, se)), regions=tuple(regions), lines=tuple(lines),
        xlabel=axis_title(spec.measure))


# --------------------------------------------------------------------------
# Frame: where panel, axes, texts and legend go on the page (inches, origin top-left, y down)
# --------------------------------------------------------------------------

_MARGINS = (0.75, 2.05, 0.65)  # left, right, bottom; top: 0.5 with a title, else 0.2 (inches)
_TICK = 3.0 / 72               # tick length, inches
_TICK_PAD = 3.5 / 72           # tick to label
_LABEL_PAD = 4.0 / 72          # tick labels to axis title
_TICK_SIZE, _LABEL_SIZE, _LEGEND_SIZE, _TITLE_SIZE = 8.5, 9.0, 8.0, 10.5
AXIS_INK = "#555555"
TICK_INK = "#333333"
EDGE = "#9e9e9e"
#: Line styles: colour, width (pt), dash pattern in multiples of the width (None: solid).
LINE_STYLES = {"null": ("#7a7a7a", 0.9, None), "estimate": ("#24466e", 1.0, None),
               "pseudo": ("#24466e", 0.9, (4, 3)), "egger": ("#b2182b", 1.2, (6, 2, 1, 2))}


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: a swatch (``kind`` "patch", ``style`` = fill colour) or a line sample
    (``kind`` "line", ``style`` = a key of :data:`LINE_STYLES`) from x0 to x1 at height y."""

    kind: str
    style: str
    x0: float
    x1: float
    y: float
    half_height: float


@dataclass(frozen=True)
class FunnelFrame:
    """The page geometry of a :class:`FunnelLayout` (inches, origin top-left, y down).

    ``panel`` is the plot area ``(x0, y0, x1, y1)``; :meth:`to_page` maps (effect, SE) into it.
    ``texts`` are the title, tick labels, x axis title and legend labels; ``ylabel`` is drawn
    turned 90° counter-clockwise about its (x, y).
    """

    panel: tuple[float, float, float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xtick_x: tuple[float, ...]
    ytick_y: tuple[float, ...]
    texts: tuple  # of TextItem
    ylabel: object  # TextItem
    legend: tuple[LegendEntry, ...]

    def to_page(self, x: float, se: float) -> tuple[float, float]:
        return _page_xy(self.panel, self.xlim, self.ylim, x, se)


def _page_xy(panel, xlim, ylim, x: float, se: float) -> tuple[float, float]:
    """(effect, SE) -> page inches in ``panel``; SE 0 at the top."""
    x0, y0, x1, y1 = panel
    (lo, hi), (s0, s1) = xlim, ylim
    return x0 + (x - lo) / (hi - lo) * (x1 - x0), y0 + (se - s0) / (s1 - s0) * (y1 - y0)


def legend_items(layout: FunnelLayout) -> list[tuple[str, str, str]]:
    """(kind, style, label) of the legend rows: non-significant area, contours, lines."""
    rows = [("patch", "#ffffff", f"p > {layout.regions[0][0].split('≤ ')[-1]}"
             if layout.regions else "p > 0.10")]
    for lab, col, _poly in layout.regions:
        if all(r[2] != lab for r in rows):
            rows.append(("patch", col, lab))
    rows += [("line", style, lab) for lab, style, _pts in layout.lines if style != "null"]
    return rows


def funnel_frame(layout: FunnelLayout) -> FunnelFrame:
    """Place the panel, tick labels, axis titles, title and legend of a funnel plot.

    Matplotlib's default spacing (ticks 3 pt, label pad 3.5 pt, axis title pad 4 pt; legend
    rows 0.5 em apart, swatches 2.2 em long) with text measured as the forest layout does.
    """
    from .forest import TextItem
    from ._text import line_height, text_width

    W, H = layout.width, layout.height
    left, right, bottom = _MARGINS
    top = 0.5 if layout.title else 0.2
    panel = (left, top, W - right, H - bottom)
    xs = tuple(_page_xy(panel, layout.xlim, layout.ylim, v, 0.0)[0] for v in layout.xticks.values)
    ys = tuple(_page_xy(panel, layout.xlim, layout.ylim, layout.xlim[0], v)[1] for v in layout.yticks)
    off = _TICK + _TICK_PAD
    lh_tick = line_height(_TICK_SIZE)
    texts = [TextItem(x, panel[3] + off + lh_tick / 2, typeset(lab), "center", _TICK_SIZE,
                      color=TICK_INK, role="tick")
             for x, lab in zip(xs, layout.xticks.labels)]
    texts += [TextItem(panel[0] - off, y, lab, "right", _TICK_SIZE, color=TICK_INK, role="tick")
              for y, lab in zip(ys, layout.ytick_labels)]
    lh_label = line_height(_LABEL_SIZE)
    texts.append(TextItem((panel[0] + panel[2]) / 2,
                          panel[3] + off + lh_tick + _LABEL_PAD + lh_label / 2, layout.xlabel,
                          "center", _LABEL_SIZE, role="axis_label"))
    widest = max([text_width(lab, _TICK_SIZE) for lab in layout.ytick_labels] + [0.0])
    ylabel = TextItem(panel[0] - off - widest - _LABEL_PAD - lh_label / 2, (panel[1] + panel[3]) / 2,
                      layout.ylabel, "center", _LABEL_SIZE, role="axis_label")
    if layout.title:
        texts.append(TextItem(left, 0.22, layout.title, "left", _TITLE_SIZE, True, role="title"))
    em = _LEGEND_SIZE / 72
    lx = panel[2] + 0.03 * (panel[2] - panel[0]) + 0.4 * em
    pitch = line_height(_LEGEND_SIZE) + 0.5 * em  # rows 0.5 em apart
    legend = []
    for i, (kind, style, lab) in enumerate(legend_items(layout)):
        y = panel[1] + 0.4 * em + line_height(_LEGEND_SIZE) / 2 + i * pitch
        legend.append(LegendEntry(kind, style, lx, lx + 2.2 * em, y, 0.35 * em))
        texts.append(TextItem(lx + 3.0 * em, y, lab, "left", _LEGEND_SIZE, role="legend"))
    return FunnelFrame(panel, layout.xlim, layout.ylim, xs, ys, tuple(texts), ylabel, tuple(legend))


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def render_funnel(layout: FunnelLayout, path=None, format: str | None = None,
                  dpi: int = 200, *, embed_font: bool = False) -> bytes:
    """Draw a :class:`FunnelLayout`; return deterministic SVG or PNG bytes.

    Parameters
    ----------
    layout : FunnelLayout
    path : str or os.PathLike, optional
        Also write the bytes here.
    format : {"svg", "png"}, optional
        Default: from ``path``'s suffix, else "svg".
    dpi : int
        PNG resolution (dots per inch).
    embed_font : bool
        SVG only: carry the plot font's ``@font-face`` rules in the file (a standalone file).

    Returns
    -------
    bytes
        Byte-identical for identical input. SVG is written directly from :func:`funnel_frame`
        (text as ``<text>``); PNG is the same painting on a Pillow canvas
        (:mod:`metaanalysis.plots._raster`). Neither imports matplotlib.
    """
    return render(_paint_funnel, layout, path, format, dpi, embed_font)


def _line_style(style: str) -> dict:
    color, width, dashes = LINE_STYLES[style]
    return {"stroke": color, "stroke_width": width,
            "stroke_dasharray": None if dashes is None else " ".join(str(d * width) for d in dashes)}


def _paint_funnel(layout: FunnelLayout, svg) -> None:
    """Paint a funnel plot on ``svg`` (an SvgWriter or a RasterWriter: the same calls, in z-order):
    contours and lines clipped to the panel, the studies, axes, ticks, legend, then the text."""
    fr = funnel_frame(layout)
    x0, y0, x1, y1 = fr.panel
    svg.begin_clip(x0, y0, x1, y1)
    for _lab, col, poly in layout.regions:
        svg.polygon([fr.to_page(*p) for p in poly], fill=col)
    for _lab, style, pts in layout.lines:
        svg.polyline([fr.to_page(*p) for p in pts], **_line_style(style))
    svg.end_clip()
    for x, se in layout.points:
        svg.circle(*fr.to_page(x, se), 22 ** 0.5 / 2, fill="#24466e", stroke="#ffffff",
                   stroke_width=0.6)
    axis = {"stroke": AXIS_INK, "stroke_width": 0.8, "stroke_linecap": "square"}
    svg.line(x0, y0, x0, y1, **axis)
    svg.line(x0, y1, x1, y1, **axis)
    tick = {"stroke": TICK_INK, "stroke_width": 0.8}
    for x in fr.xtick_x:
        svg.line(x, y1, x, y1 + _TICK, **tick)
    for y in fr.ytick_y:
        svg.line(x0 - _TICK, y, x0, y, **tick)
    for e in fr.legend:
        if e.kind == "patch":
            svg.rect(e.x0, e.y - e.half_height, e.x1, e.y + e.half_height, fill=e.style,
                     stroke=EDGE, stroke_width=0.5)
        else:
            svg.line(e.x0, e.y, e.x1, e.y, **_line_style(e.style))
    for t in fr.texts:
        svg.text(t)
    svg.text(fr.ylabel, rotate=True)
