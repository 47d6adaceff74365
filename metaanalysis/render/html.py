"""HTML pages from the view model (jinja2, autoescaped, self-contained: inline CSS and SVG)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import format as fmt

_HERE = Path(__file__).resolve().parent
TEMPLATES = _HERE / "templates"
STYLE = _HERE / "style.css"
#: Packages whose versions every page's footer names.
#: (pillow paints the PNG downloads; matplotlib draws nothing in a report since issue #15.)
PACKAGES = ("metaanalysis", "numpy", "scipy", "pandas", "pillow", "jinja2")


@lru_cache(maxsize=1)
def environment():
    """The jinja2 environment: autoescape on, undefined names are errors.

    One per process: compiling the templates costs ~0.08 s of CPU, which a batch build would otherwise
    pay again for every registry directory. Nothing changes it after it is made (the pages'
    context is passed to each render), and jinja2 reloads a template whose file changed.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(str(TEMPLATES)),
                       autoescape=select_autoescape(enabled_extensions=("html", "j2", "html.j2"),
                                                    default_for_string=True, default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True)


def versions() -> list[tuple[str, str]]:
    from importlib import metadata

    out = []
    for p in PACKAGES:
        try:
            out.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            out.append((p, "not installed"))
    return out


def build_date() -> str:
    """``SOURCE_DATE_EPOCH`` as a date (reproducible builds); '' when unset or unreadable."""
    sde = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not sde:
        return ""
    try:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(int(sde), tz=timezone.utc).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


def common_context(registry, plan, searches=None) -> dict[str, Any]:
    """What every page's header and footer show; the evidence date comes from the search log
    (:mod:`metaanalysis.searches`), never from the clock."""
    from markupsafe import Markup

    from .words import evidence_date_text

    return {
        "css": Markup(STYLE.read_text(encoding="utf-8")), "plan_title": plan.title,
        "plan_description": plan.description, "registry_sha256": registry.sha256, "plan_sha256": plan.sha256,
        "registry_path": Path(registry.path).name, "plan_path": Path(plan.path).name,
        "versions": versions(), "build_date": build_date(), "defaults": plan.defaults,
        "fmt_num": fmt.fmt_num, "fmt_p": fmt.fmt_p, "pct": fmt.pct,
        "nav": nav_entries(plan), "evidence_date": evidence_date_text(searches),
    }


def nav_entries(plan) -> list[tuple[str, str, str]]:
    """(id, short title, full title) of every page of the plan, analyses first: the navigation
    shows the short title (:func:`metaanalysis.render.words.short_titles`), URLs keep the id."""
    pages = [(a.id, a.title) for a in plan.analyses] + [(n.id, n.title) for n in plan.narratives]
    from .words import short_titles

    return [(i, short, t) for (i, t), short in zip(pages, short_titles([t for _, t in pages]))]


class Pages:
    """Renders the three page kinds with one environment and one common context."""

    def __init__(self, registry, plan, searches=None):
        self.env = environment()
        self.common = common_context(registry, plan, searches)

    def _render(self, template: str, page_id: str, font_css: str = "", **kw) -> bytes:
        from markupsafe import Markup

        return self.env.get_template(template).render(**self.common, **kw, page_id=page_id,
                                                      font_css=Markup(font_css)).encode("utf-8")

    def analysis(self, view: dict) -> bytes:
        """An analysis page; with figures, it declares their font once (``@font-face``)."""
        from .figures import plot_font_css

        has_figure = bool(view.get("forest_svg") or view.get("funnel_svg"))
        return self._render("analysis.html.j2", view["id"], a=view,
                            font_css=plot_font_css() if has_figure else "")

    def narrative(self, view: dict) -> bytes:
        """A narrative page; with figures, it declares their font once."""
        from .figures import plot_font_css

        return self._render("narrative.html.j2", view["id"], n=view,
                            font_css=plot_font_css() if view.get("figures") else "")

    def glossary(self) -> bytes:
        """The glossary page: plain words and the methods terms they stand for (:data:`~.words.GLOSSARY`)."""
        from .words import GLOSSARY

        return self._render("glossary.html.j2", "glossary", glossary=GLOSSARY)

    def index(self, analyses: list[dict], narratives: list[dict], input_problems: list[str],
              changes: dict | None = None, sof: list[dict] | None = None) -> bytes:
        from .view import flag_legend
        from .words import REFERENCES_TEXTS

        return self._render("index.html.j2", "index", analyses=analyses, narratives=narratives,
                            input_problems=input_problems, changes=changes, sof=sof or [],
                            flag_legend=flag_legend(analyses),
                            reference_files=[{"href": f, "text": t} for f, t in REFERENCES_TEXTS.items()])
