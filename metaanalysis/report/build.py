"""Build the evidence reports: one self-contained HTML page (+ JSON) per analysis, an index, a CSV.

``build_reports(registry_path, plan_path, out_dir, *, jobs=None) -> BuildSummary`` is the library entry
point (the CLI's ``metaanalysis report`` and the batch command call it). It orchestrates:

1. load and check the registry and the plan (a :class:`~metaanalysis.problems.ProblemError`
   propagates before anything is written),
2. :func:`metaanalysis.analysis.run_plan` computes the typed result tree,
3. :mod:`metaanalysis.render` turns it into pages, JSON, CSV and figures (figures in worker
   processes where that is safe), all in memory, with ``changes.json`` and a "What changed"
   section comparing with the previous build still in ``out_dir`` (:mod:`metaanalysis.changes`), then
4. the tree is written into a temporary directory next to ``out_dir`` and swapped in, so a
   failed or killed build leaves the previous reports untouched.

Outputs are byte-identical for identical inputs: no wall-clock dates (``SOURCE_DATE_EPOCH``
is shown when set), sorted JSON keys, deterministic SVG from the plot layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..problems import Problem
from ..render.figures import FIGURE_FILES, figure_input, narrative_figures, render_figures
from ..runtime import fork_workers, run_forked
from .output import check_inputs_outside, check_out_dir, write_tree_atomic

__all__ = ["BuildSummary", "build_reports", "render_files"]


@dataclass(frozen=True)
class BuildSummary:
    """What a build produced.

    Attributes
    ----------
    out_dir : str
    analyses : tuple of str
        Analysis ids built (one HTML + JSON page each), in plan order.
    narratives : tuple of str
        Narrative section ids built (HTML + JSON).
    files : tuple of str
        Every file written, relative to ``out_dir``, sorted.
    warnings : tuple of str
        ``"<analysis-id>: <warning>"`` for every warning shown in the reports.
    warning_labels : tuple of (str, str)
        ``(analysis id, short label)`` of the same warnings, in the same order (what the page's
        Warnings section shows in front of each text).
    problems : tuple of Problem
        Registry and plan warnings (a successful build has no errors).
    registry_sha256, plan_sha256 : str
    """

    out_dir: str
    analyses: tuple[str, ...]
    narratives: tuple[str, ...]
    files: tuple[str, ...]
    warnings: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default=())
    warning_labels: tuple[tuple[str, str], ...] = field(default=())
    registry_sha256: str = ""
    plan_sha256: str = ""


def _plot_jobs(n_tasks: int, jobs: int | None = None) -> int:
    """Worker processes for plot rendering (the slow part of a build): ``jobs`` if given, else
    up to min(CPUs, 4); 1 where forking is unsafe (see :func:`metaanalysis.runtime.fork_workers`)."""
    return fork_workers(n_tasks, jobs)


def _render_plots_all(inputs: list, jobs: int | None = None) -> list[dict]:
    """SVG markup of every analysis's plots; the same bytes serially or in forked workers."""
    return run_forked(render_figures, inputs, _plot_jobs(len(inputs), jobs))


def _worker_map(jobs: int | None):
    """``mapper(fn, items)`` for :func:`~metaanalysis.analysis.run_plan`: the coverage simulations
    in forked workers where that is safe (same results in any number of processes)."""
    def mapper(fn, items):
        items = list(items)
        return run_forked(fn, items, _plot_jobs(len(items), jobs))
    return mapper


def render_files(ev, jobs: int | None = None, changes=None) -> tuple[dict[str, bytes], list[tuple[str, str, str]]]:
    """Every output file of an :class:`~metaanalysis.analysis.Evidence` tree as bytes, and the
    report warnings as ``(analysis id, short label, text)`` (nothing is written here). ``jobs``: plot
    worker processes (None: chosen by :func:`metaanalysis.runtime.fork_workers`). ``changes``:
    the :class:`~metaanalysis.changes.Changelog` since the previous build (None: there was none)."""
    from ..changes import CHANGES_FILE, Baseline, Changelog
    from ..render import data, view
    from ..render.html import Pages, nav_entries
    from ..render.labels import RowText

    if changes is None:
        changes = Changelog(Baseline.NONE, new_shas=(ev.registry.sha256, ev.plan.sha256))
    rows, pages = RowText(ev.registry, ev.rob), Pages(ev.registry, ev.plan, ev.searches)
    views = [view.analysis_view(a, rows, ev.effects) for a in ev.analyses]
    short = {i: s for i, s, _ in nav_entries(ev.plan)}
    for a, v in zip(ev.analyses, views):
        v.update(view.plain_words_view(a, v, short[a.id]))
    figures = _render_plots_all([figure_input(a, v) for a, v in zip(ev.analyses, views)], jobs)
    files: dict[str, bytes] = {}
    for a, v, svgs in zip(ev.analyses, views, figures):
        figure_files = {k: svgs.pop(k, b"") for k in FIGURE_FILES}
        v.update(svgs, changes=view.page_changes_view(changes, a.id, rows),
                 downloads=view.downloads_view(a, {k for k, data in figure_files.items() if data}))
        v["rob"] = view.rob_view(a, rows)
        files.update(_download_files(a, v, rows, figure_files))
        files[f"{a.id}.html"] = pages.analysis(v)
        files[f"{a.id}.json"] = data.analysis_json(a, v, ev)
    nviews = []
    for nr in ev.narratives:
        nv = view.narrative_view(nr, rows, ev.effects)
        nv["short_title"] = short[nr.id]
        nv["figures"] = narrative_figures(nr, nv, rows, ev.plan.defaults.level)
        nviews.append(nv)
        files[f"{nr.id}.html"] = pages.narrative(nv)
        files[f"{nr.id}.json"] = data.narrative_json(nr, nv, ev, rows)
    files["results.csv"] = data.results_csv(ev, views)
    files["summary_of_findings.csv"] = data.sof_csv(ev)
    files["summary_of_findings.json"] = data.sof_json(ev)
    files.update(_reference_files(ev, rows))
    rob_problems = list(ev.rob.problems) if ev.rob is not None else []
    problems = [p.format() for p in list(ev.registry.problems) + list(ev.plan.problems) + rob_problems]
    files["index.html"] = pages.index(views, nviews, problems,
                                      view.changes_view(changes, rows, [a.id for a in ev.analyses]),
                                      [view.sof_view(a) for a in ev.primary])
    files[CHANGES_FILE] = data.changes_json(changes)
    files["glossary.html"] = pages.glossary()
    warnings = [(a.id, w["short"], w["text"]) for a, v in zip(ev.analyses, views) for w in v["warnings"]]
    return files, warnings


#: Figure file key of :func:`~metaanalysis.render.figures.render_figures` -> download kind.
_FIGURE_DOWNLOADS = {"forest_file": "forest_svg", "forest_png": "forest_png",
                     "funnel_file": "funnel_svg", "funnel_png": "funnel_png"}


def _download_files(a, v: dict, rows, figure_files: dict[str, bytes]) -> dict[str, bytes]:
    """An analysis's files to take away: studies CSV, figures (standalone SVG and PNG), R script
    (each where :func:`~metaanalysis.render.view.downloads_view` named one)."""
    from ..render import data
    from ..render.rscript import r_script

    d, out = v["downloads"], {}
    if d["studies_csv"]:
        out[d["studies_csv"]] = data.studies_csv(a, v, rows)
    for key, name in _FIGURE_DOWNLOADS.items():
        if d[name]:
            out[d[name]] = figure_files[key]
    if d["r_script"]:
        out[d["r_script"]] = r_script(a, v)
    return out


def _reference_files(ev, rows) -> dict[str, bytes]:
    """``references.ris`` and ``references.bib``: the publications of every pooled study."""
    from ..render.references import included_references, references_bib, references_ris

    refs = included_references([st.row_id for a in ev.analyses for st in a.studies], rows)
    return {"references.ris": references_ris(refs), "references.bib": references_bib(refs)}


def build_reports(registry_path: str | os.PathLike, plan_path: str | os.PathLike,
                  out_dir: str | os.PathLike, *, jobs: int | None = None) -> BuildSummary:
    """Build ``index.html``, one HTML + JSON page per analysis and narrative, and ``results.csv``.

    Parameters
    ----------
    registry_path : path of the registry CSV (``trials/registry.csv``)
    plan_path : path of the analysis plan TOML (``trials/analyses.toml``)
    out_dir : directory to (re)create; ``README.md`` already in it is kept; a previous build in
        it is compared with this one (``changes.json``, "What changed" on the pages)
    jobs : worker processes for the plots (>= 1; 1 renders in this process); None chooses
        up to min(CPUs, 4). Forked workers are used only where forking is safe, and the
        outputs are the same bytes whatever the number.

    Returns
    -------
    BuildSummary

    Raises
    ------
    ProblemError
        Bad registry or plan, an ``out_dir`` that is not ours to replace, or an input inside
        ``out_dir``; nothing is written.
    ValueError
        ``jobs`` < 1.
    """
    from ..analysis import run_plan
    from ..changes import since_previous_build, snapshot_from_evidence
    from ..plan import load_plan
    from ..registry import load_registry
    from ..rob import default_rob_path, load_rob
    from ..searches import default_searches_path, load_searches

    # refuse before any work: an input the build would delete, a --out that is not ours
    check_inputs_outside(Path(out_dir), {"--registry": Path(registry_path), "--plan": Path(plan_path)})
    check_out_dir(Path(out_dir))
    registry = load_registry(registry_path)
    plan = load_plan(plan_path, registry)
    rob = load_rob(default_rob_path(registry_path), registry.df["row_id"].astype(str))
    searches = load_searches(default_searches_path(registry_path))
    ev = run_plan(registry, plan, mapper=_worker_map(jobs), rob=rob, searches=searches)
    # the previous build is still in out_dir: what changed since it goes into this one
    changes = since_previous_build(out_dir, snapshot_from_evidence(ev))
    files, warnings = render_files(ev, jobs, changes)
    write_tree_atomic(files, Path(out_dir))
    return BuildSummary(
        out_dir=str(out_dir), analyses=tuple(a.id for a in plan.analyses),
        narratives=tuple(n.id for n in plan.narratives), files=tuple(sorted(files)),
        warnings=tuple(f"{i}: {text}" for i, _, text in warnings),
        warning_labels=tuple((i, short) for i, short, _ in warnings),
        problems=tuple(registry.problems) + tuple(plan.problems),
        registry_sha256=registry.sha256, plan_sha256=plan.sha256,
    )
