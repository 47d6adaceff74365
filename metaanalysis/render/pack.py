"""The panel pack: one printable HTML document of a report's overview and every analysis and
narrative page, in navigation order, each page starting a new sheet (``.pack-page``, print CSS).

Built from the pages a report wrote (not from the result tree), so the PDF the browser prints from
it shows exactly what the pages show. Each page's element ids get the page id as prefix, so links
and the figures' internal references stay unique in one document; links between pages become links
to the page's section (``os-placebo.html`` -> ``#pack-os-placebo``). Page breaks follow the CSS
Fragmentation rules (W3C, "CSS Fragmentation Module Level 3", 2018: ``break-before: page``).
"""

from __future__ import annotations

import re

__all__ = ["page_order", "pack_html"]

_MAIN = re.compile(r'<main class="wrap">\n?(.*?)</main>', re.S)
_NAV = re.compile(r'<nav aria-label="Analyses">(.*?)</nav>', re.S)
_IDREF = re.compile(r'\b(id|for|aria-labelledby|aria-describedby)="([^"]+)"|href="#([^"]+)"|url\(#([^)]+)\)')


def page_order(index_html: str) -> list[str]:
    """Page ids in the order of the report's navigation (analyses, then narrative sections), then
    the glossary when the pages link it."""
    nav = _NAV.search(index_html)
    ids = re.findall(r'<a href="([A-Za-z0-9_-]+)\.html"', nav.group(1)) if nav else []
    glossary = ["glossary"] if 'href="glossary.html"' in index_html else []  # linked from the footer
    return [i for i in dict.fromkeys(ids + glossary) if i != "index"]


def _prefixed(html: str, pid: str, pages: set[str]) -> str:
    """``html`` with every id reference prefixed by ``pid`` and links to pack pages made local."""
    def ref(m: re.Match) -> str:
        if m.group(1):
            return f'{m.group(1)}="' + " ".join(f"{pid}--{x}" for x in m.group(2).split()) + '"'
        if m.group(3):
            return f'href="#{pid}--{m.group(3)}"'
        return f"url(#{pid}--{m.group(4)})"

    return _local_links(_IDREF.sub(ref, html), pages)


def _local_links(html: str, pages: set[str]) -> str:
    """Links to a page of the pack (``X.html``, ``X.html#y``) as links inside the document."""
    return re.sub(r'href="([A-Za-z0-9_-]+)\.html(?:#([^"]*))?"',
                  lambda m: (f'href="#{m.group(1)}--{m.group(2)}"' if m.group(2) else f'href="#pack-{m.group(1)}"')
                  if m.group(1) in pages else m.group(0), html)


def pack_html(index_html: str, pages: dict[str, str], title: str = "", paper: str = "A4") -> str:
    """One document: the index's head (plus the plot font of the first page that declares it),
    its header, a ``<section class="pack-page">`` per page (overview first), the index's footer.

    Parameters
    ----------
    index_html : str
        The report's ``index.html``.
    pages : dict of str to str
        Page id -> that page's HTML, in pack order (without the index).
    title : str
        The document title ('' keeps the index's, prefixed "Panel pack: ").
    paper : {"A4", "letter"}
        Sheet size (CSS ``@page size``).
    """
    head = index_html[:index_html.index("</head>")]
    font = next((m.group(0) for h in pages.values()
                 for m in [re.search(r"<style>\n/\* the plot font.*?</style>\n", h, re.S)] if m), "")
    head = re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{title or 'Panel pack: ' + m.group(1)}</title>", head, 1)
    header = re.search(r'<header class="site">.*?</header>', index_html, re.S)
    footer = re.search(r'<footer class="wrap site-footer">.*?</footer>', index_html, re.S)
    ids = set(pages) | {"index"}
    sections = [("index", index_html)] + list(pages.items())
    body = "\n".join(f'<section class="pack-page" id="pack-{pid}">\n'
                     f'{_prefixed(_MAIN.search(html).group(1), pid, ids)}</section>'
                     for pid, html in sections if _MAIN.search(html))
    return (f"{head}{font}<style>@page {{ size: {paper}; }}</style>\n</head>\n<body>\n"
            f"{_local_links(header.group(0), ids) if header else ''}\n<main class=\"wrap\">\n{body}\n"
            f"</main>\n{_local_links(footer.group(0), ids) if footer else ''}\n</body>\n</html>\n")
