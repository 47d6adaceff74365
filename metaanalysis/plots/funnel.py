"""Contour-enhanced funnel plot: a pure layout, then a matplotlib renderer.

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
from ._text import finite, save_figure, typeset


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
        the asymmetry) -- i.e. ``e["intercept"]``, ``e["slope"]`` of
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


def render_funnel(layout: FunnelLayout, path=None, format: str | None = None,
                  dpi: int = 200) -> bytes:
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
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Polygon

    from ._text import font

    if format is None:
        format = str(path).rsplit(".", 1)[-1].lower() if path is not None and "." in str(path) \
            else "svg"
    fig = Figure(figsize=(layout.width, layout.height), dpi=dpi)
    W, H = layout.width, layout.height
    left, right, bottom, top = 0.75, 2.05, 0.65, 0.5 if layout.title else 0.2
    ax = fig.add_axes((left / W, bottom / H, (W - left - right) / W, (H - top - bottom) / H))
    ax.set_xlim(*layout.xlim)
    ax.set_ylim(layout.ylim[1], layout.ylim[0])  # inverted: SE 0 at the top
    ax.set_facecolor("white")
    handles = []
    seen = set()
    for lab, col, poly in layout.regions:
        ax.add_patch(Polygon(poly, closed=True, facecolor=col, edgecolor="none", zorder=0))
        if lab not in seen:
            seen.add(lab)
            handles.append(Patch(facecolor=col, edgecolor="#9e9e9e", lw=0.5, label=lab))
    handles.insert(0, Patch(facecolor="white", edgecolor="#9e9e9e", lw=0.5,
                            label=f"p > {layout.regions[0][0].split('≤ ')[-1]}"
                            if layout.regions else "p > 0.10"))
    styles = {"null": dict(color="#7a7a7a", lw=0.9),
              "estimate": dict(color="#24466e", lw=1.0),
              "pseudo": dict(color="#24466e", lw=0.9, ls=(0, (4, 3))),
              "egger": dict(color="#b2182b", lw=1.2, ls=(0, (6, 2, 1, 2)))}
    for lab, style, pts in layout.lines:
        xs, ys = zip(*pts)
        ln = Line2D(xs, ys, zorder=2, label=lab, **styles[style])
        ax.add_line(ln)
        if style != "null":
            handles.append(ln)
    xs, ys = zip(*layout.points)
    ax.scatter(xs, ys, s=22, facecolor="#24466e", edgecolor="white", lw=0.6, zorder=3,
               clip_on=False)
    ax.set_xticks(layout.xticks.values)
    ax.set_xticklabels([typeset(s) for s in layout.xticks.labels], fontproperties=font(8.5))
    ax.set_yticks(layout.yticks)
    ax.set_yticklabels(layout.ytick_labels, fontproperties=font(8.5))
    ax.minorticks_off()
    ax.set_xlabel(layout.xlabel, fontproperties=font(9))
    ax.set_ylabel(layout.ylabel, fontproperties=font(9))
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    for s in ("left", "bottom"):
        ax.spines[s].set_color("#555555")
        ax.spines[s].set_linewidth(0.8)
    ax.tick_params(colors="#333333", width=0.8, length=3)
    if layout.title:
        fig.text(left / W, 1 - 0.22 / H, layout.title, ha="left", va="center",
                 fontproperties=font(10.5, bold=True), parse_math=False)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False,
              prop=font(8), handlelength=2.2, borderaxespad=0.0)
    return save_figure(fig, path, format, dpi)
