"""Files to take away from a report (issue #16): per analysis a standalone forest SVG, a studies
CSV and an R script; a reference list (RIS, BibTeX) of the included studies.

The studies CSV is checked against the registry (trials/registry.csv) and the analysis JSON; the
R scripts are run with metafor (3.8-1 here) when R is installed and must print the numbers of
the analysis JSON (which tests/test_report.py checks against ``metaanalysis.pool``, itself
checked against metafor in tests/test_conformance.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from metaanalysis.registry import load_registry
from metaanalysis.render.data import STUDY_CSV_FIELDS
from metaanalysis.report.build import build_reports

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"


@pytest.fixture(scope="module")
def built(shipped_build):
    return shipped_build


def _json(out: Path, aid: str) -> dict:
    return json.loads((out / f"{aid}.json").read_text(encoding="utf-8"))


def test_each_analysis_links_its_downloads_and_the_index_lists_them(built):
    out, summary = built
    index = (out / "index.html").read_text(encoding="utf-8")
    for f in ("references.ris", "references.bib"):
        assert f in summary.files and f'href="{f}"' in index
    for aid in summary.analyses:
        js, page = _json(out, aid), (out / f"{aid}.html").read_text(encoding="utf-8")
        expected = set()
        if js["studies"]:
            expected |= {f"{aid}-studies.csv", f"{aid}-forest.svg", f"{aid}-forest.png"}
        if js["result"] is not None:
            expected.add(f"{aid}.R")
        present = {f for f in summary.files if f.startswith(f"{aid}-") or f == f"{aid}.R"}
        present = {f for f in present if not any(f.startswith(f"{o}-") or f.startswith(f"{o}.")
                                                 for o in (*summary.analyses, *summary.narratives)
                                                 if o != aid and o.startswith(f"{aid}-"))}
        assert present == expected, aid
        for f in expected:
            assert f'href="{f}"' in page and f'href="{f}"' in index, (aid, f)


def test_standalone_forest_svg_embeds_its_font(built):
    out, summary = built
    svg = (out / "os-any-comparator-forest.svg").read_bytes()
    root = ET.fromstring(svg)                       # well-formed XML
    assert root.tag.endswith("svg")
    assert b"@font-face" in svg and b"data:font/" in svg
    assert b"Forest plot" not in svg[:200]          # not the inlined page markup (no aria-label)


def test_forest_png_is_the_forest_plot(built, tmp_path):
    """The PNG download (issue #16): the same layout as the SVG at 150 dpi, a palette image with no
    time or software chunk, byte-identical when the same figure is drawn again."""
    import struct
    import zlib

    from PIL import Image

    from metaanalysis.plots import layout_forest, render_forest
    from metaanalysis.render.figures import PNG_DPI

    out, summary = built
    data = (out / "os-any-comparator-forest.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + n]))
        assert zlib.crc32(kind + data[pos + 8:pos + 8 + n]) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        pos += 12 + n
    kinds = [k for k, _ in chunks]
    assert set(kinds) <= {b"IHDR", b"PLTE", b"pHYs", b"IDAT", b"IEND"}, kinds  # no tIME, tEXt
    ppm = round(PNG_DPI / 0.0254)
    assert dict(chunks)[b"pHYs"] == struct.pack(">IIB", ppm, ppm, 1)
    svg = ET.fromstring((out / "os-any-comparator-forest.svg").read_bytes())
    w_in, h_in = (float(svg.get(k).removesuffix("pt")) / 72 for k in ("width", "height"))
    img = Image.open(out / "os-any-comparator-forest.png")
    assert img.mode == "P" and abs(img.width - w_in * PNG_DPI) <= 1 and abs(img.height - h_in * PNG_DPI) <= 1
    # something is drawn in the plot's blue (boxes, diamond: #24466e) and in near-black text
    colours = {c for _, c in img.convert("RGB").getcolors(1 << 16)}
    assert (0x24, 0x46, 0x6E) in colours and any(max(c) < 0x40 for c in colours)


def test_studies_csv_numbers_are_the_registry_and_json_numbers(built):
    out, _ = built
    reg = {r["row_id"]: r for r in csv.DictReader(REGISTRY.open(encoding="utf-8-sig"))}
    js = _json(out, "os-any-comparator")
    rows = list(csv.DictReader(io.StringIO((out / "os-any-comparator-studies.csv").read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == STUDY_CSV_FIELDS
    assert [r["row_id"] for r in rows] == [s["row_id"] for s in js["studies"]]
    for r, s in zip(rows, js["studies"]):
        assert float(r["yi"]) == s["yi"] and float(r["vi"]) == s["vi"]   # shortest round-trip repr
        assert float(r["weight"]) == s["weight"]
        assert r["label"] == s["label"] and r["flags"].split(";") == (s["flags"] or [""])
        g = reg[r["row_id"]]
        for c in ("estimate", "ci_lower", "ci_upper"):
            assert (r[c], g[c]) == ("", "") or float(r[c]) == float(g[c])   # the lung subgroup has no CI
        assert r["p_value"] == g["p_value"]
    # ABCSG-18 OS (trials/registry.csv): HR 0.80, 95% CI 0.64-1.01, 127 vs 158 deaths
    abcsg = next(r for r in rows if r["row_id"] == "ABCSG18-OS-2022")
    assert (abcsg["estimate"], abcsg["ci_lower"], abcsg["ci_upper"]) == ("0.8", "0.64", "1.01")
    assert (abcsg["events_int"], abcsg["events_ctl"]) == ("127", "158")


def test_references_one_entry_per_publication(built):
    out, summary = built
    reg = {r["row_id"]: r for r in csv.DictReader(REGISTRY.open(encoding="utf-8-sig"))}
    pubs = set()
    for aid in summary.analyses:
        for s in _json(out, aid)["studies"]:
            g = reg[s["row_id"]]
            pubs.add(("pmid", g["pmid"]) if g["pmid"] else ("doi", g["doi"].lower()) if g["doi"]
                     else ("text", g["authors"], g["journal"], g["year"]))
    ris = (out / "references.ris").read_text(encoding="utf-8")
    bib = (out / "references.bib").read_text(encoding="utf-8")
    assert ris.count("TY  - JOUR") == ris.count("ER  - ") == len(pubs)
    keys = re.findall(r"^@article\{([^,]+),", bib, re.M)
    assert len(keys) == len(pubs) == len(set(keys))
    # Gnant 2015 (ABCSG-18 fracture): its PMID was emptied in the 2026-12-01 curation round (two
    # candidate values in one third-party note), its DOI was read on the publisher's page
    assert "doi = {10.1016/S0140-6736(15)60995-3}" in bib and "DO  - 10.1016/S0140-6736(15)60995-3" in ris
    assert "author = {Gnant M and others}" in bib


def test_downloads_are_byte_identical_across_builds(built, tmp_path):
    out, summary = built
    again = tmp_path / "again"
    build_reports(REGISTRY, PLAN, again)
    for f in summary.files:
        assert hashlib.sha256((out / f).read_bytes()).digest() == hashlib.sha256((again / f).read_bytes()).digest(), f


def _has_metafor() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(metafor)"], capture_output=True).returncode == 0


_PRINT = ('\ncat("\\nNUMBERS", sprintf("%.12g", c(res$b, res$ci.lb, res$ci.ub, res$tau2, {pi})), "\\n")\n')


def _run_r(script: Path, pi_expr: str) -> list[float]:
    text = script.read_text(encoding="utf-8") + _PRINT.replace("{pi}", pi_expr)
    script.with_suffix(".check.R").write_text(text, encoding="utf-8")
    done = subprocess.run(["Rscript", script.with_suffix(".check.R").name], cwd=script.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("NUMBERS"))
    return [float(v) for v in line.split()[1:]]


@pytest.mark.skipif(not _has_metafor(), reason="R with metafor is not installed: the R scripts are not run")
@pytest.mark.parametrize("variant", ["plan", "riley"])
def test_r_scripts_reproduce_the_page(tmp_path, variant):
    # the cross-question test plan (tests/plans/cross_question.toml) has more pooled analyses (k = 2, 3)
    # than the shipped one, so more R scripts are checked
    plan = ROOT / "tests" / "plans" / "cross_question.toml"
    if variant == "riley":   # the plan's other prediction interval, and DL with the z test
        text = plan.read_text(encoding="utf-8")
        text = text.replace('pi = "metafor"', 'pi = "riley"', 1).replace('method = "REML"', 'method = "DL"', 1)
        text = text.replace('test = "adhoc"', 'test = "z"', 1)
        plan = tmp_path / "analyses.toml"
        plan.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    summary = build_reports(REGISTRY, plan, out)
    scripts = [aid for aid in summary.analyses if (out / f"{aid}.R").is_file()]
    assert len(scripts) >= 4
    for aid in scripts:
        r = _json(out, aid)["result"]
        pi_expr = "pi_riley" if r["pi"] == "riley" else "predict(res)$pi.lb, predict(res)$pi.ub"
        got = _run_r(out / f"{aid}.R", pi_expr)
        want = [r["estimate"], r["ci_lower"], r["ci_upper"], r["tau2"], r["pi_lower"], r["pi_upper"]]
        if r["pi_lower"] is None:   # Riley's PI with k = 2 has 0 df: none on the page, NaN in R
            assert all(math.isnan(x) for x in got[4:]), aid
            got, want = got[:4], want[:4]
        assert got == pytest.approx(want, rel=1e-6, abs=1e-8), aid


def test_reports_readme_lists_exactly_what_a_build_writes(built):
    """reports/README.md names every file a build writes (patterns with <analysis>/<narrative>)."""
    out, summary = built
    readme = (ROOT / "reports" / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`([^`\s]+\.(?:html|json|csv|svg|png|R|ris|bib)|\.metaanalysis-report)`", readme))
    patterns = [re.compile("^" + re.escape(n).replace("<analysis>", "(?P<a>[a-z0-9-]+)")
                           .replace("<narrative>", "(?P<n>[a-z0-9-]+)") + "$") for n in names]
    for f in list(summary.files) + [".metaanalysis-report"]:
        hits = [p for p in patterns if p.match(f)]
        assert hits, f"{f} is not in reports/README.md"
    for p in patterns:   # and nothing the build does not write
        assert any(p.match(f) for f in list(summary.files) + [".metaanalysis-report"]), p.pattern


def test_funnel_plot_files_from_ten_studies():
    """From 10 studies on, an analysis's figures include the funnel plot as standalone SVG and PNG
    (BCG vaccine trials, k = 13: metafor's dat.bcg, the example of tests/test_plots_render.py)."""
    from metaanalysis.plots.examples import funnel_example
    from metaanalysis.pooling import pool
    from metaanalysis.render.figures import FIGURE_FILES, FigureInput, render_figures

    ex = funnel_example()
    out = render_figures(FigureInput("bcg", "BCG", ex.measure, None, pool(ex.yi, ex.vi)))
    assert set(FIGURE_FILES) <= set(out) and out["forest_file"] == out["forest_png"] == b""
    assert out["funnel_file"].startswith(b"<svg") and b"@font-face" in out["funnel_file"]
    assert out["funnel_png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert out["funnel_svg"].startswith("<svg")
