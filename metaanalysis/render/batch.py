"""The overview page of a ``metaanalysis batch`` output folder: one row per registry directory.

Only state that the same inputs reproduce is shown (up to date or failed, analyses, the plan's
title, the problems of a failed directory), never timings or "built"/"unchanged", so the page
is byte-identical across reruns (reproducible-build rule; Lamb & Zacchiroli, "Reproducible
Builds: Increasing the Integrity of Software Supply Chains", IEEE Software 39(2) 2022,
doi:10.1109/MS.2021.3073045).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OverviewRow", "GENERATOR", "overview_html"]

#: The ``<meta name="generator">`` content that marks an ``index.html`` the batch wrote (and may replace).
GENERATOR = "metaanalysis batch overview"


@dataclass(frozen=True)
class OverviewRow:
    """One registry directory on the overview.

    Attributes
    ----------
    name : str
        Output folder under the batch output (the page links ``name/index.html``).
    src : str
        The directory as given on the command line.
    failed : bool
        The last build of this directory failed.
    title : str
        The plan's ``title`` ('' when unreadable).
    n_analyses : int or None
        Analyses in the report that is in ``name/`` (None when unknown or none).
    has_report : bool
        ``name/index.html`` exists (for a failed directory: the previous report, built from older inputs).
    problems : tuple of str
        For a failed directory: its problem lines ``PATH:LINE:COLUMN: error: message (hint)``.
    """

    name: str
    src: str
    failed: bool
    title: str = ""
    n_analyses: int | None = None
    has_report: bool = False
    problems: tuple[str, ...] = ()


def overview_html(rows: list[OverviewRow], shown_problems: int = 5) -> bytes:
    """The overview page (self-contained HTML, the reports' own stylesheet inline).

    Parameters
    ----------
    rows : list of OverviewRow
        In the order the directories were given.
    shown_problems : int
        Problem lines listed per failed directory; the rest are counted.
    """
    from markupsafe import Markup

    from .html import STYLE, environment

    n_failed = sum(r.failed for r in rows)
    return environment().get_template("batch_index.html.j2").render(
        rows=rows, n_failed=n_failed, generator=GENERATOR, shown=shown_problems,
        n_analyses=sum(r.n_analyses or 0 for r in rows if not r.failed),
        css=Markup(STYLE.read_text(encoding="utf-8"))).encode("utf-8")
