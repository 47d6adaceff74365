"""Figures of an analysis: forest and funnel plot specifications from the result tree, SVG inlining.

:func:`forest_spec` lays the studies, subgroups and pooled result of an
:class:`~metaanalysis.analysis.AnalysisResult` into a :class:`metaanalysis.plots.ForestSpec`;
:func:`render_figures` draws them as SVG (run in worker processes by the report builder) and
returns markup ready to inline in a page; :func:`plot_font_css` is the font every such page
declares once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .. import vocab
from ..results import MetaResult
from . import words

__all__ = ["FigureInput", "figure_input", "forest_spec", "render_figures", "inline_svg", "plot_font_css",
           "narrative_figures", "PNG_DPI", "FIGURE_FILES"]

#: Resolution of the PNG downloads (dots per inch): sharp on slides and in documents at the
#: figure's natural size (a forest plot ~11 in wide is ~1700 px); journals that want more get the SVG.
PNG_DPI = 150
#: The download files of an analysis's figures, by key of :func:`render_figures`' result.
FIGURE_FILES = ("forest_file", "forest_png", "funnel_file", "funnel_png")


@dataclass(frozen=True)
class FigureInput:
    """What drawing one analysis's figures needs (small and picklable for worker processes)."""

    id: str
    title: str
    measure: str
    forest: object | None      # metaanalysis.plots.ForestSpec
    result: MetaResult | None


def figure_input(a, view: dict) -> FigureInput:
    return FigureInput(a.id, a.analysis.title, a.measure, forest_spec(a, view), a.headline_result)


def _forest_row(st: dict, a, rows_ci):
    from ..plots import ForestRow

    lead = a.headline_result
    return ForestRow(label=st["label"], yi=st["yi"], vi=st["vi"],
                     ci=None if a.binary is not None else rows_ci(st["row_id"]),   # MH/Peto: the counts' effect
                     weight=st["weight"] if lead is not None else None,
                     cells=_events_cells(a, st["row_id"]) if a.binary is not None else (st["tumour"], st["design"]),
                     marks=st["marks"], pooled=lead is not None)


def _events_cells(a, rid: str) -> tuple[str, str]:
    """Events/N per arm of a study of a Mantel-Haenszel or Peto analysis (its pooled 2x2 table)."""
    ev_i, n_i, ev_c, n_c = next(st.counts for st in a.studies if st.row_id == rid)
    return f"{ev_i}/{n_i}", f"{ev_c}/{n_c}"


def forest_spec(a, view: dict):
    """The forest plot of an analysis (None without studies); subgroups by its first subgroup variable.

    A study's CI is drawn as reported when it was reported at the analysis's level, else from its SE.
    """
    if a.k == 0:
        return None
    from ..plots import ForestSpec, SubgroupBlock, SubgroupTest

    m, s = a.measure, a.settings
    log = vocab.measure(m).log_scale

    def reported_ci(rid):
        st = next(x for x in view["studies"] if x["row_id"] == rid)
        lo, hi, lev = st["ci_reported"]
        if lo is None or hi is None or lev != 100 * s.level:
            return None
        return (math.log(lo), math.log(hi)) if log else (lo, hi)

    rows = tuple(_forest_row(st, a, reported_ci) for st in view["studies"])
    used = "".join(st["marks"] for st in view["studies"])
    foot = words.footnotes(used)
    fav = (f"Favours {a.analysis.favours[0]}", f"Favours {a.analysis.favours[1]}")
    if a.binary is not None:    # the pooled 2x2 tables: events/N per arm (Cochrane Handbook 10.2.1)
        fav0, fav1 = a.analysis.favours
        return ForestSpec(measure=m, rows=rows, columns=(f"Events/N {fav0}", f"Events/N {fav1}"),
                          result=a.headline_result, favours=fav, level=s.level, footnotes=foot)
    sg = next((g for g in a.subgroups if g.result is not None), None)
    if sg is None or a.headline is not vocab.Headline.RANDOM:   # subgroup diamonds are random-effects fits
        return ForestSpec(measure=m, rows=rows, columns=("Tumour type", "Design"), result=a.headline_result,
                          favours=fav, level=s.level, footnotes=foot)
    cols = ("Tumour type", "Design")
    drop = {"tumour_type": 0, "design": 1}.get(sg.variable)
    if drop is not None:  # the subgroup headers already name it
        cols = cols[:drop] + cols[drop + 1:]
        rows = tuple(replace(rw, cells=rw.cells[:drop] + rw.cells[drop + 1:]) for rw in rows)
    blocks = tuple(SubgroupBlock(g, tuple(rw for rw, lab in zip(rows, sg.labels) if lab == g), r)
                   for g, r in sg.result.groups.items())
    test = SubgroupTest(sg.result.q_between, sg.result.q_between_df, sg.result.q_between_pvalue)
    return ForestSpec(measure=m, columns=cols, result=a.headline_result, subgroups=blocks, favours=fav, level=s.level,
                      footnotes=foot, subgroup_test=test,
                      label_header=f"Study (by {sg.variable.replace('_', ' ')})")


def render_figures(fig: FigureInput) -> dict[str, str | bytes]:
    """Inline SVG markup of the forest plot and, from 10 studies on, the funnel plot, and their
    download files (b'' where there is no such figure): ``forest_file`` / ``funnel_file`` as
    standalone SVG (font embedded), ``forest_png`` / ``funnel_png`` at :data:`PNG_DPI`.

    Runs in the report's worker processes. Each PNG is painted from the same layout as its SVG by
    the Pillow rasteriser (:mod:`metaanalysis.plots._raster`; ~15-30 ms of CPU a figure at
    :data:`PNG_DPI`, no matplotlib import).
    """
    from ..plots import layout_forest, render_forest

    out = {"forest_svg": "", "funnel_svg": "", **{k: b"" for k in FIGURE_FILES}}
    if fig.forest is not None:
        layout = layout_forest(fig.forest)
        svg = render_forest(layout, format="svg")
        out["forest_svg"] = inline_svg(svg, f"forest-{fig.id}", f"Forest plot: {fig.title}")
        # the downloads: a standalone file that carries its own font, and a PNG of the same painting
        out["forest_file"] = render_forest(layout, format="svg", embed_font=True)
        out["forest_png"] = render_forest(layout, format="png", dpi=PNG_DPI)
    res = fig.result
    if res is not None and res.k >= vocab.FUNNEL_MIN_K:
        from ..plots import FunnelSpec, layout_funnel, render_funnel

        spec = FunnelSpec(yi=res.yi, vi=res.vi, measure=fig.measure, result=res, level=res.level)
        layout = layout_funnel(spec)
        svg = render_funnel(layout, format="svg")
        out["funnel_svg"] = inline_svg(svg, f"funnel-{fig.id}", f"Funnel plot: {fig.title}")
        out["funnel_file"] = render_funnel(layout, format="svg", embed_font=True)
        out["funnel_png"] = render_funnel(layout, format="png", dpi=PNG_DPI)
    return out


def inline_svg(svg: bytes, prefix: str, label: str) -> str:
    """SVG bytes of :mod:`metaanalysis.plots` -> markup for inlining in HTML.

    Ids get a per-figure prefix so two figures on one page cannot collide. The figure is a
    labelled group (``role="group"``, not ``"img"``) so that screen readers reach its
    ``<text>``. Its plot font is declared once per page (:func:`plot_font_css`), not here.
    """
    s = svg.decode("utf-8")
    s = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', s)
    s = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', s)
    s = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", s)
    from markupsafe import escape

    s = s.replace("<svg ", f'<svg role="group" aria-label="{escape(label)}" ', 1)
    # natural size in CSS px (1 pt = 4/3 px): the CSS never shrinks a plot below it, so the
    # smallest plot text (7.5 pt) stays 10 px and a wide plot scrolls in its .plot-scroll
    end = s.index(">") + 1  # the root <svg ...> tag only
    s = _SVG_SIZE.sub(lambda m: f'{m.group(1)}="{_pt_to_px(m.group(2))}px"', s[:end]) + s[end:]
    return s


def plot_font_css() -> str:
    """The ``@font-face`` rules of the plot font (``data:`` URLs), for a page with figures."""
    from ..plots import font_face_css

    return font_face_css()


_SVG_SIZE = re.compile(r'(?<=\s)(width|height)="([0-9.]+)pt"')


def _pt_to_px(v: str) -> str:
    return f"{float(v) * 4 / 3:.2f}".rstrip("0").rstrip(".")


def narrative_forest_spec(rows_view: list[dict], rows, level: float = 0.95):
    """Side-by-side forest plot (no diamond) of a narrative section's comparative results with a
    reported CI (SWiM: results shown without pooling; Campbell et al. 2020, doi:10.1136/bmj.l6890).

    Only rows of one ratio measure are drawn (the section's most common); None when fewer than
    one such row has a CI at the given level.
    """
    from ..plots import ForestRow, ForestSpec

    drawable = []
    for r in rows_view:
        rid = r["row_id"]
        m = rows.get(rid, "measure")
        est, lo, hi = rows.number(rid, "estimate"), rows.number(rid, "ci_lower"), rows.number(rid, "ci_upper")
        lev = rows.number(rid, "ci_level")
        if m in vocab.RATIO_MEASURES and None not in (est, lo, hi) and 0 < lo < est < hi and lev == 100 * level:
            drawable.append((m, ForestRow(label=r["label"], yi=math.log(est), ci=(math.log(lo), math.log(hi)),
                                          cells=(r["tumour"],), pooled=False)))
    if not drawable:
        return None
    measures = [m for m, _ in drawable]
    measure = max(sorted(set(measures)), key=measures.count)
    return ForestSpec(measure=measure, rows=tuple(fr for m, fr in drawable if m == measure),
                      columns=("Tumour type",), result=None, level=level,
                      favours=("Favours denosumab", "Favours control"))


def render_narrative_figure(spec, nid: str, title: str) -> str:
    """Inline SVG markup of a narrative section's side-by-side forest plot ('' without one)."""
    if spec is None:
        return ""
    from ..plots import layout_forest, render_forest

    return inline_svg(render_forest(layout_forest(spec), format="svg"), f"forest-{nid}",
                      f"{words.NARRATIVE_FIGURE_LABELS[vocab.NarrativeFigure.FOREST]}: {title}")


def albatross_spec(syn, labels: dict[str, str], rows):
    """The albatross plot of a narrative section's p-value-only results (Harrison et al. 2017,
    doi:10.1002/jrsm.1239): numbered points, the key naming each with its n and reported p."""
    from ..plots import AlbatrossMark, AlbatrossSpec

    marks, key = [], []
    for i, p in enumerate(syn.albatross, start=1):
        side = 1 if p.direction is vocab.EffectDirection.BENEFIT else -1
        marks.append(AlbatrossMark(str(i), p.n, p.p, side, p.bound))
        key.append(words.albatross_key(str(i), labels[p.row_id], p.n, rows.get(p.row_id, "p_value")))
    return AlbatrossSpec(marks=tuple(marks), left=words.ALBATROSS_SIDES[0], right=words.ALBATROSS_SIDES[1],
                         xlabel=words.ALBATROSS_AXES[0], ylabel=words.ALBATROSS_AXES[1], key=tuple(key),
                         alpha=vocab.SIGN_TEST_ALPHA)


_PROPORTION_STYLE = {vocab.IntervalSource.EXACT: "exact", vocab.IntervalSource.REPORTED: "reported",
                     vocab.IntervalSource.NONE: "none"}


def proportions_spec(syn, labels: dict[str, str], rows, level: float):
    """The dot-and-interval plot of a narrative section's single-group proportions."""
    from ..plots import ProportionRow, ProportionSpec

    return ProportionSpec(rows=tuple(
        ProportionRow(words.proportion_label(labels[p.row_id], rows.get(p.row_id, "endpoint_detail")), p.estimate, p.lower, p.upper, _PROPORTION_STYLE[p.source],
                      words.proportion_detail(p, level)) for p in syn.proportions),
        axis_label=words.PROPORTION_AXIS)


def narrative_figures(nr, nv: dict, rows, level: float = 0.95) -> list[dict]:
    """Every figure of a narrative section, in the order of ``synthesis.figures``: ``kind``,
    ``heading``, inline ``svg``, ``caption`` and ``scrolls`` (a wide plot that may scroll sideways)."""
    from ..plots import layout_albatross, layout_proportions, render_albatross, render_proportions

    syn, title = nr.synthesis, nr.narrative.title
    labels = {r["row_id"]: r["label"] for r in nv["rows"]}
    out = []
    for kind in syn.figures:
        if kind is vocab.NarrativeFigure.FOREST:
            svg = render_narrative_figure(narrative_forest_spec(nv["rows"], rows, level), nr.id, title)
            cap = words.NARRATIVE_FOREST_CAPTION
        elif kind is vocab.NarrativeFigure.ALBATROSS:
            layout = layout_albatross(albatross_spec(syn, labels, rows))
            svg = inline_svg(render_albatross(layout), f"albatross-{nr.id}",
                             f"{words.NARRATIVE_FIGURE_LABELS[kind]}: {title}")
            omitted = [labels.get(r, r) for r in syn.albatross_omitted]
            cap = words.albatross_caption(syn.albatross, omitted, vocab.SIGN_TEST_ALPHA)
        else:
            layout = layout_proportions(proportions_spec(syn, labels, rows, level))
            svg = inline_svg(render_proportions(layout), f"proportions-{nr.id}",
                             f"{words.NARRATIVE_FIGURE_LABELS[kind]}: {title}")
            cap = words.proportions_caption(syn.proportions, level)
        if svg:
            out.append({"kind": kind.value, "heading": words.NARRATIVE_FIGURE_HEADINGS[kind], "svg": svg,
                        "caption": cap, "scrolls": kind is vocab.NarrativeFigure.FOREST})
    return out
