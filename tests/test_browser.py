"""The built reports in a real browser: Debian's Chromium driven by Playwright.

Builds the reports from the shipped registry and plan into a temporary directory, opens every
HTML page via file:// and checks: a title, no console errors or page errors, no failed
requests, no request to anything but file:// (the reports are self-contained and work
offline, README "Outputs"), every figure (<svg>, <img>) rendered with a non-zero size.
A full-page screenshot of every page goes to tests/output/browser/ (gitignored) for a human look.

Needs the ``browser`` extra (playwright) and /usr/bin/chromium: ``make test`` installs both.
Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from metaanalysis.cli import main

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
SHOTS = ROOT / "tests" / "output" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
MISSING = "run `make test` (it installs the 'browser' extra and Debian's chromium)"
VIEWPORTS = {"desktop": (1280, 900), "narrow": (390, 844)}


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed in this environment: {MISSING}")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} not found: {MISSING}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "reports"
    assert main(["report", "--registry", str(REGISTRY), "--plan", str(PLAN), "--out", str(out)]) == 0
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return out


def pages(out: Path) -> list[Path]:
    return sorted(out.glob("*.html"))


def test_site_has_every_page(site):
    # trials/analyses.toml: 4 analyses + 7 narrative sections, plus index.html and glossary.html
    assert len(pages(site)) == 13


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_in_chromium(site, browser, viewport):
    w, h = VIEWPORTS[viewport]
    problems: list[str] = []
    for path in pages(site):
        ctx = browser.new_context(viewport={"width": w, "height": h}, java_script_enabled=True)
        page = ctx.new_page()
        requests: list[str] = []
        console: list[str] = []
        failed: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        resp = page.goto(path.as_uri(), wait_until="load")
        assert resp is None or resp.ok, f"{path.name}: {resp.status if resp else None}"
        name = path.name
        title = page.title()
        if not title.strip():
            problems.append(f"{name}: empty <title>")
        if console:
            problems.append(f"{name}: console {console}")
        if failed:
            problems.append(f"{name}: failed requests {failed}")
        external = [u for u in requests if not u.startswith("file://")]
        if external:
            problems.append(f"{name}: requests outside file:// {external}")
        # figures: every top-level <svg> (not icons nested in another svg) and <img> has a size
        figs = page.eval_on_selector_all(
            "svg:not(svg svg), img",
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return [e.tagName, e.getAttribute('aria-label') || e.getAttribute('alt') || '', r.width, r.height]; })")
        for tag, label, fw, fh in figs:
            if not (fw > 0 and fh > 0):
                problems.append(f"{name}: <{tag}> {label[:60]!r} rendered {fw}x{fh}")
        # plot text: <text> whose font-size is in viewBox units (pt); rendered size = computed
        # font-size x the text's screen scale. The smallest plot text is 7.5 pt (forest
        # footnotes), which must render at >= 9.5 CSS px whatever the viewport
        sizes = page.eval_on_selector_all(
            "figure.plot svg",
            "els => els.map(e => [e.getAttribute('aria-label') || '', Array.from(e.querySelectorAll('text'),"
            " t => { const m = t.getScreenCTM(); return parseFloat(getComputedStyle(t).fontSize)"
            " * Math.hypot(m.a, m.b); })])")
        for label, px in sizes:
            if not px:
                problems.append(f"{name}: {label[:60]!r} has no <text>")
            elif min(px) < 9.5:
                problems.append(f"{name}: {label[:60]!r} smallest text {min(px):.1f}px (< 9.5px)")
        # nothing wider than the viewport forces the page to scroll sideways, except inside a
        # scroll container (wide tables and plots are wrapped so they scroll on their own)
        sw = page.evaluate("document.documentElement.scrollWidth")
        if sw > w + 1:
            problems.append(f"{name}: page is {sw}px wide in a {w}px viewport (horizontal scrolling)")
        page.screenshot(path=str(SHOTS / f"{path.stem}-{viewport}.png"), full_page=True)
        ctx.close()
    assert not problems, "\n".join(problems)


def test_analysis_pages_show_a_forest_plot(site, browser):
    """Every analysis page (one per [[analysis]] in trials/analyses.toml) draws its forest plot."""
    import json

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    for j in sorted(site.glob("*.json")):
        d = json.loads(j.read_text(encoding="utf-8"))
        if "result" not in d:
            continue  # narrative section
        page.goto((site / f"{j.stem}.html").as_uri())
        boxes = page.eval_on_selector_all(
            "svg[aria-label^='Forest plot']", "els => els.map(e => e.getBoundingClientRect().height)")
        assert len(boxes) == 1 and boxes[0] > 100, (j.stem, boxes)
    ctx.close()


NARRATIVE_FIGURES = {"flatiron-ici": "albatross", "single-arm": "proportions", "subgroups-not-pooled": "forest"}


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_narrative_pages_show_their_figures(site, browser, viewport):
    """Every narrative section of trials/analyses.toml draws the figure its results support, with
    readable text (>= 9.5 CSS px); at 390 px the albatross and proportions plots fit the screen
    (no sideways scrolling, nothing cut off) and the page itself never scrolls sideways."""
    w, h = VIEWPORTS[viewport]
    ctx = browser.new_context(viewport={"width": w, "height": h})
    page = ctx.new_page()
    for nid, kind in NARRATIVE_FIGURES.items():
        page.goto((site / f"{nid}.html").as_uri())
        figs = page.eval_on_selector_all(
            "figure.plot", "els => els.map(f => { const s = f.querySelector('svg'), r = s.getBoundingClientRect(),"
            " c = f.querySelector('.plot-scroll'); return [f.dataset.figure, r.left, r.right, r.width, r.height,"
            " c.scrollWidth, c.clientWidth, Math.min(...Array.from(s.querySelectorAll('text'), t => {"
            " const m = t.getScreenCTM(); return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b); }))]; })")
        assert [f[0] for f in figs] == [kind], (nid, figs)
        _, left, right, fw, fh, scroll_w, client_w, smallest = figs[0]
        assert fw > 200 and fh > 150 and smallest >= 9.5, (nid, figs[0])
        if kind != "forest":      # drawn narrow on purpose: whole on a phone
            assert 0 <= left and right <= w and scroll_w <= client_w, (nid, viewport, figs[0])
        assert page.evaluate("document.documentElement.scrollWidth") <= w, (nid, viewport)
        page.screenshot(path=str(SHOTS / f"{nid}-figure-{viewport}.png"), full_page=True)
    ctx.close()


def test_plots_fit_the_printed_page(site, browser):
    """Print CSS: plots are not scrolled but scaled down to the page width (no clipped plot)."""
    ctx = browser.new_context(viewport={"width": 700, "height": 900})
    page = ctx.new_page()
    page.emulate_media(media="print")
    seen = 0
    for path in pages(site):
        page.goto(path.as_uri())
        rows = page.eval_on_selector_all(
            "figure.plot svg",
            "els => els.map(e => [e.getBoundingClientRect().width, e.closest('main').clientWidth,"
            " e.getBoundingClientRect().height])")
        for w, main_w, h in rows:
            seen += 1
            assert 0 < w <= main_w + 0.5 and h > 0, (path.name, w, main_w, h)
    # a forest plot per analysis of trials/analyses.toml (4), the side-by-side plots of the narratives
    # with effect estimates (os-placebo, bmfs, ttbm, dfs-questions, subgroups-not-pooled), the albatross
    # plot (flatiron-ici) and the proportions (single-arm)
    assert seen == 11
    ctx.close()


# Each plot <text>: its string, size (user units = pt), weight, anchor and x, where the browser
# starts and ends its glyph run (advance positions of the first and last character, in the
# text's own user space) and the px per user unit on screen.
_TEXT_GEOMETRY = """els => els.map(t => {
  const n = t.getNumberOfChars(), a = n ? t.getStartPositionOfChar(0) : {x: NaN, y: NaN},
        b = n ? t.getEndPositionOfChar(n - 1) : {x: NaN}, m = t.getScreenCTM();
  return [t.textContent, parseFloat(t.getAttribute('font-size')), getComputedStyle(t).fontWeight,
          t.getAttribute('text-anchor') || 'start', parseFloat(t.getAttribute('x')),
          parseFloat(t.getAttribute('y')), t.getComputedTextLength(), a.x, a.y, b.x, Math.hypot(m.a, m.b)];
})"""


def _text_problems(page, cdp, selector: str, where: str) -> tuple[int, list[str]]:
    """Every <text> under ``selector`` is set in the embedded subset (a web font, bold face for
    bold text) and its glyph run is where and as wide as the layout measured it: within 0.5 %
    + 0.2 CSS px of metaanalysis.plots._text's advance width, at both ends."""
    from metaanalysis.plots._text import raw_width

    rows = page.eval_on_selector_all(selector, _TEXT_GEOMETRY)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    nodes = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]
    assert len(nodes) == len(rows)
    problems = []
    for node, (s, size, weight, anchor, x, y, length, start_x, start_y, end_x, scale) in zip(nodes, rows):
        bold = weight == "700"
        fonts = [(f["isCustomFont"], f.get("postScriptName")) for f in
                 cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]]
        if fonts != [(True, "DejaVuSans-Bold" if bold else "DejaVuSans")]:
            problems.append(f"{where}: {s!r} drawn with {fonts}")
        w = raw_width(s, size, bold)
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        tol = 0.005 * w + 0.2 / scale  # user units (pt)
        for what, got, want in (("length", length, w), ("start", start_x, x0), ("end", end_x, x0 + w),
                                ("baseline", start_y, y)):
            if not abs(got - want) <= tol:
                problems.append(f"{where}: {s!r} {what} {got:.3f} pt, layout {want:.3f} pt (tol {tol:.3f})")
    cdp.send("DOM.disable")
    return len(rows), problems


def test_plot_text_is_where_the_layout_measured_it(site, browser):
    """Report pages: every plot <text> in the embedded font, glyph positions as the layout's."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    checked, problems = 0, []
    for path in pages(site):
        page.goto(path.as_uri())
        n, p = _text_problems(page, cdp, "figure.plot svg text", path.name)
        checked += n
        problems += p
    assert not problems, "\n".join(problems[:40])
    # every <text> of every page was checked (7 forest plots and 3 narrative figures in trials/analyses.toml)
    assert checked == sum(p.read_text(encoding="utf-8").count("<text ") for p in pages(site)) > 200
    ctx.close()


def test_example_plots_standalone_text_as_measured(browser, tmp_path):
    """The example forest plots and a funnel plot (the shipped registry has none: k < 10) as
    standalone SVG files with the font embedded, in an HTML page: same checks."""
    from metaanalysis.plots import layout_forest, layout_funnel, render_forest, render_funnel
    from metaanalysis.plots.examples import bcg_spec, denosumab_spec, funnel_example

    svgs = [render_forest(layout_forest(s), format="svg", embed_font=True)
            for s in (bcg_spec(), denosumab_spec(subgroups=True))]
    svgs.append(render_funnel(layout_funnel(funnel_example()), format="svg", embed_font=True))
    html = tmp_path / "examples.html"
    html.write_text("<!doctype html><html><head><meta charset='utf-8'><title>plots</title></head><body>"
                    + "".join(f"<figure class='plot'>{s.decode()}</figure>" for s in svgs)
                    + "</body></html>", encoding="utf-8")
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    page.goto(html.as_uri())
    n, problems = _text_problems(page, cdp, "figure.plot svg text", "examples")
    page.screenshot(path=str(SHOTS / "examples.png"), full_page=True) if SHOTS.is_dir() else None
    assert not problems, "\n".join(problems[:40])
    assert n == sum(s.count(b"<text ") for s in svgs) > 150
    ctx.close()


def _boxes(page, selector: str) -> list[list]:
    return page.eval_on_selector_all(
        selector, "els => els.map(e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);"
                  " return [e.textContent.trim(), r.left, r.right, r.width, r.height, s.display, s.visibility]; })")


def test_phone_shows_every_key_result_without_sideways_scrolling(site, browser):
    """At 390 px (a phone) the page does not scroll sideways, and each analysis row of the overview
    shows its estimate, CI and PI inside the viewport (rows become cards, issue #16); each analysis
    page's Studies table shows every study's estimate and CI inside the viewport too."""
    import json

    w, h = VIEWPORTS["narrow"]
    ctx = browser.new_context(viewport={"width": w, "height": h})
    page = ctx.new_page()
    page.goto((site / "index.html").as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= w
    analyses = [j.stem for j in sorted(site.glob("*.json"))
                if "result" in json.loads(j.read_text(encoding="utf-8"))]
    rows = page.eval_on_selector_all("table.overview tbody tr", "els => els.length")
    # trials/analyses.toml: 3 primary analyses and 1 exploratory one, each a row of an overview table
    assert rows == len(analyses) == 4
    cells = _boxes(page, "table.overview tbody td.key")
    assert len(cells) == 3 * rows, cells   # estimate, CI, PI of every analysis (each has a key result)
    for text, left, right, cw, ch, display, vis in cells:
        assert text and cw > 0 and ch > 0 and display != "none" and vis == "visible", (text, display)
        assert 0 <= left and right <= w, (text, left, right)
    for aid in analyses:
        page.goto((site / f"{aid}.html").as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= w, aid
        n = page.eval_on_selector_all("table.studies tbody tr", "els => els.length")
        cells = _boxes(page, "table.studies tbody td.key")
        assert len(cells) == 2 * n, (aid, cells)
        for text, left, right, cw, ch, display, vis in cells:
            assert text and cw > 0 and ch > 0 and vis == "visible", (aid, text)
            assert 0 <= left and right <= w, (aid, text, left, right)
    page.screenshot(path=str(SHOTS / "phone-last-analysis.png"), full_page=True)
    # narrative pages: the "Results as reported" table becomes cards too; every estimate, CI and
    # p-value cell stays inside the viewport (none hidden in a sideways-scrolling table)
    narratives = [j.stem for j in sorted(site.glob("*.json"))
                  if "synthesis" in json.loads(j.read_text(encoding="utf-8"))]
    assert len(narratives) == 7, narratives
    for nid in narratives:
        page.goto((site / f"{nid}.html").as_uri())
        n = page.eval_on_selector_all("table.studies tbody tr", "els => els.length")
        cells = _boxes(page, "table.studies tbody td.key")
        assert n and len(cells) == 3 * n, (nid, n, len(cells))
        for text, left, right, cw, ch, display, vis in cells:
            if display != "none":          # an empty cell ("") is hidden on a card
                assert 0 <= left and right <= w, (nid, text, left, right)
    ctx.close()


def test_desktop_overview_is_a_table(site, browser):
    """At 1280 px the overview stays one table row per analysis with its column headers shown."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto((site / "index.html").as_uri())
    assert page.eval_on_selector("table.overview thead", "e => e.getBoundingClientRect().height") > 10
    # the primary and the exploratory overview tables: in each, the cells of a row side by side
    tops = page.eval_on_selector_all(
        "table.overview tbody tr:first-child",
        "rows => rows.map(r => [...r.children].map(e => Math.round(e.getBoundingClientRect().top)))")
    assert len(tops) == 2 and all(len(set(t)) == 1 for t in tops), tops
    ctx.close()
