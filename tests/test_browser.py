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
    # trials/analyses.toml: 7 analyses + 3 narrative sections, plus index.html
    assert len(pages(site)) == 11


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
        # plot text: glyphs are paths in viewBox units (pt); the smallest plot text is 7.5 pt
        # (forest footnotes), which must render at >= 9.5 CSS px whatever the viewport
        scales = page.eval_on_selector_all(
            "figure.plot svg",
            "els => els.map(e => [e.getAttribute('aria-label') || '',"
            " e.getBoundingClientRect().width / e.viewBox.baseVal.width])")
        for label, scale in scales:
            if 7.5 * scale < 9.5:
                problems.append(f"{name}: {label[:60]!r} smallest text {7.5 * scale:.1f}px (< 9.5px)")
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
    assert seen == 7  # one forest plot per analysis in trials/analyses.toml
    ctx.close()
