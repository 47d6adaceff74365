"""The panel pack (issue #16): one printable document, and one PDF, of a report's overview and
every page (``metaanalysis pack``, ``make panel-pack``).

The document is checked without a browser (sections in navigation order, ids unique, links local);
the browser tests print it: nothing wider than an A4 sheet, each page of the report on new sheets,
and the command's PDF is A4 with at least a sheet per page.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from metaanalysis.cli import main
from metaanalysis.render.pack import pack_html, page_order

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# A4 (210 mm) minus the print stylesheet's 14 mm side margins, in CSS px (96 per inch)
A4_CONTENT_PX = int((210 - 2 * 14) / 25.4 * 96)


@pytest.fixture(scope="module")
def pack(shipped_build):
    out, summary = shipped_build
    index = (out / "index.html").read_text(encoding="utf-8")
    order = page_order(index)
    pages = {pid: (out / f"{pid}.html").read_text(encoding="utf-8") for pid in order}
    return out, summary, order, pack_html(index, pages)


def test_pack_has_every_page_in_navigation_order(pack):
    _, summary, order, doc = pack
    # trials/analyses.toml: the analyses in plan order, then the narrative sections, then the glossary
    assert order == list(summary.analyses) + list(summary.narratives) + ["glossary"]
    assert re.findall(r'<section class="pack-page" id="pack-([a-z0-9-]+)">', doc) == ["index", *order]
    assert doc.count("<main") == 1 and doc.count("@font-face") == 2  # the plot font once (regular, bold)
    assert "<title>Panel pack: " in doc and "@page { size: A4; }" in doc


def test_pack_ids_are_unique_and_links_stay_inside(pack):
    _, _, order, doc = pack
    ids = re.findall(r'\sid="([^"]+)"', doc)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:5]
    targets = set(ids)
    local = re.findall(r'href="#([^"]+)"', doc)
    assert local and all(t in targets for t in local), [t for t in local if t not in targets][:5]
    refs = re.findall(r'url\(#([^)]+)\)', doc)
    assert all(r in targets for r in refs)
    # no link to another page of the pack is left as a file link
    assert not [p for p in ["index", *order] if f'href="{p}.html' in doc]
    # downloads still link the files of the report folder
    assert 'href="sre-zoledronic-forest.svg"' in doc


def test_pack_command_errors(tmp_path, shipped_build, capsys):
    out, _ = shipped_build
    assert main(["pack", "--reports", str(tmp_path / "none"), "--out", str(tmp_path / "p.pdf")]) == 1
    assert f"{tmp_path / 'none' / 'index.html'}:0:0: error: no report here" in capsys.readouterr().err
    assert main(["pack", "--reports", str(out), "--out", str(out / "p.pdf")]) == 1
    assert "--out lies inside the report folder" in capsys.readouterr().err
    html = tmp_path / "pack.html"
    assert main(["pack", "--reports", str(out), "--out", str(tmp_path / "p.pdf"), "--html", str(html),
                 "--chromium", str(tmp_path / "no-chromium")]) == 1
    assert "Chromium not found" in capsys.readouterr().err
    assert html.read_text(encoding="utf-8").startswith("<!doctype html>") and not (tmp_path / "p.pdf").exists()


@pytest.mark.browser
def test_pack_prints_cleanly(pack, tmp_path):
    """Print media at the A4 content width: no element of any page reaches past the sheet (tables
    wrap, plots scale), every page of the report begins a new sheet, and Chromium's PDF has at
    least one A4 sheet per page."""
    from playwright.sync_api import sync_playwright

    out, _, order, doc = pack
    html = out.parent / "pack-test.html"
    html.write_text(doc, encoding="utf-8")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": A4_CONTENT_PX, "height": 1000})
        page.emulate_media(media="print")
        page.goto(html.as_uri(), wait_until="load")
        wide = page.evaluate("""() => { const edge = document.querySelector('main').getBoundingClientRect().right + 0.5;
            return Array.from(document.querySelectorAll('main *')).filter(e => !e.closest('svg') || e.tagName === 'svg')
              .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > edge; })
              .map(e => e.closest('section').id + ' ' + e.tagName + '.' + e.className).slice(0, 5); }""")
        assert wide == [], wide
        breaks = page.eval_on_selector_all("section.pack-page", "els => els.map(e => getComputedStyle(e).breakBefore)")
        assert breaks == ["auto"] + ["page"] * len(order)
        pdf = page.pdf(format="A4", print_background=True)
        b.close()
    sheets = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert sheets >= 1 + len(order), sheets


@pytest.mark.browser
def test_pack_command_writes_an_a4_pdf(shipped_build, tmp_path, capsys):
    out, summary = shipped_build
    pdf = tmp_path / "panel-pack.pdf"
    assert main(["pack", "--reports", str(out), "--out", str(pdf), "--chromium", CHROMIUM]) == 0, capsys.readouterr().err
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([0-9.]+) ([0-9.]+)\s*\]", data)
    assert boxes and all(abs(float(w) - 595.28) < 1 and abs(float(h) - 841.89) < 1 for w, h in boxes)  # A4 in pt
    assert len(boxes) >= 2 + len(summary.analyses) + len(summary.narratives)  # + overview, glossary
    assert f"{pdf}: panel pack of {out}" in capsys.readouterr().out
