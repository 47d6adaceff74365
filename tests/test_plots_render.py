"""Rendering tests: the SVG writer (text as <text> where the layout put it, the shipped font),
PNG export, files, formats and byte-for-byte determinism."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from metaanalysis.plots import (funnel_frame, layout_forest, layout_funnel, render_forest,
                                render_funnel)
from metaanalysis.plots.examples import bcg_spec, denosumab_spec, funnel_example

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FONTS = Path(__file__).resolve().parents[1] / "metaanalysis" / "plots" / "fonts"


@pytest.fixture(scope="module")
def bcg_layout():
    return layout_forest(bcg_spec())


SVG = "{http://www.w3.org/2000/svg}"


def test_forest_svg_parses_and_has_no_date(tmp_path, bcg_layout):
    p = tmp_path / "f.svg"
    data = render_forest(bcg_layout, p)
    assert p.read_bytes() == data
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    text = data.decode("utf-8")
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)  # no ISO date anywhere
    assert "<?xml" not in text and "<!--" not in text and "<metadata" not in text
    # text is <text>, one per layout text item, no glyph outlines
    assert len(root.findall(f"{SVG}text")) == len(bcg_layout.texts) > 50
    assert "<path" not in text and "@font-face" not in text
    assert len(data) < 40_000  # was ~200 KB of glyph outlines via matplotlib


def _baseline_y(t) -> float:
    """Where a layout text's baseline goes, pt: its centre plus half the height of 'l'
    (DejaVu Sans 'l' is 1556 of 2048 units tall, measured in fontTools: glyf['l'].yMax)."""
    return t.y * 72 + 1556 / 2048 / 2 * t.size


@pytest.mark.parametrize("spec", [bcg_spec, denosumab_spec, lambda: denosumab_spec(subgroups=True)])
def test_forest_svg_text_is_the_layout_text(spec):
    """One <text> per TextItem, in order: its string, anchor point (pt), size, weight, colour."""
    lay = layout_forest(spec())
    root = ET.fromstring(render_forest(lay, format="svg"))
    texts = root.findall(f"{SVG}text")
    assert len(texts) == len(lay.texts)
    anchor = {"left": None, "center": "middle", "right": "end"}
    for el, t in zip(texts, lay.texts):
        assert el.text == t.text
        assert abs(float(el.get("x")) - t.x * 72) <= 5e-4
        assert abs(float(el.get("y")) - _baseline_y(t)) <= 5e-4
        assert float(el.get("font-size")) == t.size
        assert el.get("text-anchor") == anchor[t.ha]
        assert el.get("font-weight") == ("bold" if t.bold else None)
        assert el.get("fill") == t.color
    assert any(t.bold for t in lay.texts) and any(not t.bold for t in lay.texts)


def test_svg_root_names_the_shipped_font_and_pt_units(bcg_layout):
    from metaanalysis.plots import FONT_CSS_FAMILY

    root = ET.fromstring(render_forest(bcg_layout, format="svg"))
    assert root.get("font-family") == f"{FONT_CSS_FAMILY}, DejaVu Sans, sans-serif"
    assert root.get("text-rendering") == "geometricPrecision"
    assert root.get("width") == f"{float(root.get('viewBox').split()[2]):g}pt"
    assert abs(float(root.get("viewBox").split()[2]) - bcg_layout.width * 72) < 1e-3
    assert abs(float(root.get("viewBox").split()[3]) - bcg_layout.height * 72) < 1e-3


def test_svg_attributes_sorted_and_numbers_fixed(bcg_layout):
    text = render_forest(bcg_layout, format="svg").decode()
    for tag in re.findall(r"<[a-zA-Z][^>]*>", text):
        names = re.findall(r'\s([\w:-]+)="', tag)
        assert names == sorted(names), tag
    numbers = re.findall(r'(?:x|y|x1|y1|x2|y2|width|height)="(-?[0-9.e+]+)"', text)
    assert numbers and all(re.fullmatch(r"-?\d+(\.\d{1,3})?", n) and n != "-0" for n in numbers)


def test_embedded_font_for_standalone_files(bcg_layout):
    import base64

    from metaanalysis.plots import FONT_CSS_FAMILY, font_face_css

    css = font_face_css()
    rules = re.findall(r"@font-face\{([^}]*)\}", css)
    assert len(rules) == 2
    for rule, weight, name in zip(rules, ("normal", "bold"), ("DejaVuSans", "DejaVuSans-Bold")):
        assert f'font-family:"{FONT_CSS_FAMILY}"' in rule and f"font-weight:{weight}" in rule
        woff = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", rule).group(1))
        assert woff[:4] == b"wOFF"
        assert woff == (FONTS / f"{name}-subset.woff").read_bytes()
    data = render_forest(bcg_layout, format="svg", embed_font=True)
    ET.fromstring(data)
    assert data.decode().count("@font-face") == 2


def test_forest_png(tmp_path, bcg_layout):
    p = tmp_path / "f.png"
    data = render_forest(bcg_layout, p, dpi=100)
    assert data.startswith(PNG_MAGIC) and p.stat().st_size == len(data) > 10_000
    assert b"Software" not in data and b"Matplotlib" not in data
    # IHDR width/height = layout inches x dpi
    w = int.from_bytes(data[16:20], "big")
    h = int.from_bytes(data[20:24], "big")
    assert abs(w - bcg_layout.width * 100) <= 1 and abs(h - bcg_layout.height * 100) <= 1


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_forest_render_is_byte_identical(fmt, bcg_layout):
    a = render_forest(bcg_layout, format=fmt, dpi=80)
    b = render_forest(layout_forest(bcg_spec()), format=fmt, dpi=80)
    assert a == b


_HASH_SVGS = ("import hashlib; from metaanalysis.plots import *; "
              "from metaanalysis.plots.examples import bcg_spec, denosumab_spec, funnel_example; "
              "print(hashlib.sha256(render_forest(layout_forest(bcg_spec()), format='svg') + "
              "render_forest(layout_forest(denosumab_spec(subgroups=True)), format='svg') + "
              "render_funnel(layout_funnel(funnel_example()), format='svg')).hexdigest())")


def test_svg_identical_across_processes_and_hash_seeds(bcg_layout):
    import os

    here = hashlib.sha256(render_forest(bcg_layout, format="svg")
                          + render_forest(layout_forest(denosumab_spec(subgroups=True)), format="svg")
                          + render_funnel(layout_funnel(funnel_example()), format="svg")).hexdigest()
    for seed in ("0", "1", "12345", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", _HASH_SVGS], capture_output=True, text=True,
                             check=True, env=env)
        assert out.stdout.strip() == here, seed


def test_svg_path_imports_no_matplotlib():
    code = ("import sys; from metaanalysis.plots import *; "
            "from metaanalysis.plots.examples import bcg_spec, funnel_example; "
            "render_forest(layout_forest(bcg_spec()), format='svg'); "
            "render_funnel(layout_funnel(funnel_example()), format='svg'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'fontTools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_subgroup_forest_renders(tmp_path):
    lay = layout_forest(denosumab_spec(subgroups=True))
    data = render_forest(lay, tmp_path / "s.svg")
    ET.fromstring(data)


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_funnel_render_deterministic(tmp_path, fmt):
    lay = layout_funnel(funnel_example())
    a = render_funnel(lay, tmp_path / f"fun.{fmt}")
    b = render_funnel(layout_funnel(funnel_example()), format=fmt)
    assert a == b and (tmp_path / f"fun.{fmt}").stat().st_size > 5_000
    if fmt == "svg":
        ET.fromstring(a)
        assert not re.search(r"\d{4}-\d{2}-\d{2}", a.decode())
    else:
        assert a.startswith(PNG_MAGIC)


def test_funnel_svg_text_is_the_frame_text():
    """Tick labels, axis titles, title and legend are <text> where funnel_frame put them; the
    y axis title is turned 90° counter-clockwise; the 13 studies are 13 circles."""
    lay = layout_funnel(funnel_example())
    fr = funnel_frame(lay)
    root = ET.fromstring(render_funnel(lay, format="svg"))
    texts = root.findall(f"{SVG}text")
    items = list(fr.texts) + [fr.ylabel]
    assert [t.text for t in texts] == [t.text for t in items]
    for el, t in zip(texts, items):
        assert abs(float(el.get("x")) - t.x * 72) <= 5e-4
        assert abs(float(el.get("y")) - _baseline_y(t)) <= 5e-4
    angle, cx, cy = re.fullmatch(r"rotate\((\S+) (\S+) (\S+)\)", texts[-1].get("transform")).groups()
    assert angle == "-90" and cx == texts[-1].get("x") and abs(float(cy) - fr.ylabel.y * 72) <= 5e-4
    assert {"0.125", "1", "8", "Standard error", "Risk ratio (log scale)", "Pseudo 95% CI",
            "Egger regression", "p > 0.10"} <= {t.text for t in texts}
    assert len(root.findall(f"{SVG}circle")) == len(lay.points) == 13
    # contours and lines are clipped to the panel (a fixed id, prefixed when inlined)
    assert root.find(f"{SVG}clipPath").get("id") == "panel"


def test_funnel_frame_text_fits_and_does_not_overlap():
    from metaanalysis.plots._text import line_height, text_width

    lay = layout_funnel(funnel_example())
    fr = funnel_frame(lay)
    boxes = [t.bbox for t in fr.texts]
    for (x0, y0, x1, y1), t in zip(boxes, fr.texts):
        assert 0 <= x0 and x1 <= lay.width and 0 <= y0 and y1 <= lay.height, t
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # the turned y title: left of the widest y tick label, inside the page
    widest = max(text_width(s, 8.5) for s in lay.ytick_labels)
    assert line_height(9) / 2 <= fr.ylabel.x < fr.panel[0] - widest
    assert text_width(fr.ylabel.text, 9) <= fr.panel[3] - fr.panel[1]


def test_bad_format_rejected(bcg_layout):
    with pytest.raises(ValueError, match="format"):
        render_forest(bcg_layout, format="pdf")


def test_render_does_not_touch_global_rcparams(bcg_layout):
    import matplotlib

    before = dict(matplotlib.rcParams)
    render_forest(bcg_layout, format="png", dpi=40)
    assert dict(matplotlib.rcParams) == before


_BACKEND_PROBE = """
import matplotlib
{select}
before = {read}
import metaanalysis.plots
from metaanalysis.plots import (funnel_frame, layout_forest, layout_funnel, render_forest,
                                render_funnel)
from metaanalysis.plots.examples import bcg_spec, funnel_example
render_forest(layout_forest(bcg_spec()), format="svg")
render_forest(layout_forest(bcg_spec()), format="png", dpi=40)
render_funnel(layout_funnel(funnel_example()), format="png", dpi=40)
after = {read}
print(repr(before), repr(after))
assert after is before or after == before, (before, after)
"""


@pytest.mark.parametrize("select,read", [
    # nothing chosen yet: the backend must still be unresolved (the auto sentinel) afterwards
    ("", "dict.__getitem__(matplotlib.rcParams, 'backend')"),
    # a program that chose a backend keeps it
    ("matplotlib.use('pdf')", "matplotlib.get_backend()"),
])
def test_plots_select_no_backend(select, read):
    # issue #10: no matplotlib.use() at import; rendering attaches its own SVG/Agg canvas to the
    # figure, so importing and drawing leave the importing program's backend alone
    import os

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    code = _BACKEND_PROBE.format(select=select, read=read)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    if not select:
        assert "object object" in out.stdout  # really unresolved before and after


def test_report_pages_declare_the_plot_font_once(tmp_path):
    """Pages with figures carry the two @font-face rules once (not once per SVG: an analysis page
    inlines a forest and a funnel plot); pages without figures carry none; inlined SVGs carry
    no font, keep their <text>, and their ids are prefixed per figure."""
    from metaanalysis.cli import main
    from metaanalysis.plots import FONT_CSS_FAMILY, font_face_css

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "reports"
    assert main(["report", "--registry", str(root / "trials" / "registry.csv"), "--plan",
                 str(root / "trials" / "analyses.toml"), "--out", str(out), "-j", "1"]) == 0
    with_figs = 0
    for page in sorted(out.glob("*.html")):
        html = page.read_text(encoding="utf-8")
        svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
        assert html.count("@font-face") == (2 if svgs else 0), page.name
        if not svgs:
            continue
        with_figs += 1
        assert html.count(font_face_css()) == 1
        assert html.index(font_face_css()) < html.index("<svg")  # in the head's CSS
        for s in svgs:
            assert "@font-face" not in s and f'font-family="{FONT_CSS_FAMILY}, ' in s
            assert s.count("<text ") > 10
            assert re.search(r'<svg role="group" aria-label="(Forest plot|Funnel plot|Results side by side|'
                             r'Albatross plot|Proportions plot): ', s)
            for ref in re.findall(r'url\(#([^)]+)\)', s):
                assert ref.startswith(("forest-", "funnel-")) and f'id="{ref}"' in s
        assert len(svgs) == 1 + ("Funnel plot: " in html)
    # one per analysis of trials/analyses.toml (4), the side-by-side figures of the narratives with
    # effect estimates (os-placebo, bmfs, ttbm, dfs-questions, subgroups-not-pooled), the albatross
    # plot (flatiron-ici) and the proportions (single-arm)
    assert with_figs == 11
