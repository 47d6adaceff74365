"""The Pillow PNG writer (metaanalysis/plots/_raster.py): the funnel plot's PNG painted from the
same drawing calls as its SVG (issue #15: no matplotlib in a report), the palette, the text
placement and determinism.

Reference values come from the layouts themselves (funnel_frame / layout_forest positions, the
shipped font metrics) and from the colours the painters use (funnel.LINE_STYLES, funnel._SHADES);
the example is metafor's dat.bcg (13 trials; plots.examples.funnel_example).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from metaanalysis.plots import funnel_frame, layout_forest, layout_funnel, render_forest, render_funnel
from metaanalysis.plots.examples import bcg_spec, funnel_example
from metaanalysis.plots.forest import TextItem

ROOT = Path(__file__).resolve().parents[1]
DPI = 150


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        out.append((kind, body))
        pos += 12 + n
    return out


@pytest.fixture(scope="module")
def funnel():
    lay = layout_funnel(funnel_example())
    data = render_funnel(lay, format="png", dpi=DPI)
    return lay, data, Image.open(io.BytesIO(data)).convert("RGB")


def test_funnel_png_size_chunks_and_palette(funnel):
    lay, data, _img = funnel
    chunks = _chunks(data)
    kinds = [k for k, _ in chunks]
    assert set(kinds) <= {b"IHDR", b"PLTE", b"pHYs", b"IDAT", b"IEND"}, kinds  # no tIME, tEXt
    w, h, depth, colour_type = struct.unpack(">IIBB", dict(chunks)[b"IHDR"][:10])
    assert (w, h) == (round(lay.width * DPI), round(lay.height * DPI)) == (1020, 690)  # 6.8 x 4.6 in
    assert depth == 8 and colour_type == 3  # 8-bit palette
    ppm = round(DPI / 0.0254)
    assert dict(chunks)[b"pHYs"] == struct.pack(">IIB", ppm, ppm, 1)
    assert len(dict(chunks)[b"PLTE"]) <= 3 * 256
    assert b"Matplotlib" not in data and b"Software" not in data


def test_funnel_png_deterministic_across_renders_and_processes(funnel):
    lay, data, _img = funnel
    assert render_funnel(layout_funnel(funnel_example()), format="png", dpi=DPI) == data
    code = ("import hashlib; from metaanalysis.plots import layout_funnel, render_funnel; "
            "from metaanalysis.plots.examples import funnel_example; "
            f"print(hashlib.sha256(render_funnel(layout_funnel(funnel_example()), format='png', dpi={DPI}))"
            ".hexdigest())")
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == hashlib.sha256(data).hexdigest(), seed


def test_funnel_png_draws_what_the_svg_draws(funnel):
    """Every study's marker at its (effect, SE) position, the contour shades, the pooled-estimate,
    pseudo-CI and Egger lines in their colours, the white page, and the text in its ink."""
    from metaanalysis.plots.funnel import _SHADES, AXIS_INK, LINE_STYLES

    lay, _data, img = funnel
    fr = funnel_frame(lay)
    colours = {c for _n, c in img.getcolors(1 << 16)}
    for x, se in lay.points:  # marker centres: the marker's blue
        px, py = fr.to_page(x, se)
        assert img.getpixel((int(px * DPI), int(py * DPI))) == _rgb("#24466e"), (x, se)
    for shade in _SHADES:
        assert _rgb(shade) in colours
    for style in ("estimate", "egger"):
        assert _rgb(LINE_STYLES[style][0]) in colours, style
    assert _rgb(AXIS_INK) in colours
    assert img.getpixel((2, 2)) == img.getpixel((img.width - 3, img.height - 3)) == (255, 255, 255)
    # the panel's top-left corner (p <= 0.01 at SE 0, far from the null) is the lightest shade
    x0, y0, _x1, _y1 = fr.panel
    assert img.getpixel((int(x0 * DPI) + 4, int(y0 * DPI) + 4)) == _rgb(_SHADES[-1])
    # the title's ink (#1a1a1a) is inside its measured box and nowhere above the panel outside it
    title = next(t for t in fr.texts if t.role == "title")
    bx0, by0, bx1, by1 = (round(v * DPI) for v in title.bbox)
    box = img.crop((bx0, by0, bx1, by1))
    assert _rgb(title.color) in {c for _n, c in box.getcolors(1 << 16)}
    above = img.crop((bx1 + 2, 0, img.width, int(y0 * DPI) - 2))
    assert {c for _n, c in above.getcolors(1 << 16)} == {(255, 255, 255)}


def test_turned_axis_title_is_upright_text_turned(funnel):
    """The y axis title reads bottom to top: its ink is a tall, narrow box centred on (x, y)."""
    lay, _data, img = funnel
    fr = funnel_frame(lay)
    t = fr.ylabel
    cx, cy = t.x * DPI, t.y * DPI
    region = img.crop((0, int(fr.panel[1] * DPI), int((fr.panel[0] - 0.35) * DPI), int(fr.panel[3] * DPI)))
    dark = region.convert("L").point(lambda v: 255 if v < 128 else 0)
    left, top, right, bottom = dark.getbbox()
    top += int(fr.panel[1] * DPI)
    bottom += int(fr.panel[1] * DPI)
    assert bottom - top > 4 * (right - left)
    from metaanalysis.plots._text import raw_width

    length = raw_width(t.text, t.size) / 72 * DPI  # the measured advance width, px
    assert abs((bottom - top) - length) < 0.06 * length
    assert abs((top + bottom) / 2 - cy) < 3 and left <= cx <= right + 2


@pytest.mark.parametrize("ha", ["left", "center", "right"])
def test_text_glyphs_at_the_measured_positions(ha):
    """A line of text spans its measured advance width from where its anchor says (the PNG uses
    the layout's metrics, not the rasteriser's own hinted advances)."""
    from metaanalysis.plots._raster import RasterWriter
    from metaanalysis.plots._text import raw_width

    s = "Random-effects model (REML, Hartung–Knapp) 0.49 [0.33, 0.73]"
    c = RasterWriter(10.0, 0.5, DPI)
    c.text(TextItem(5.0, 0.25, s, ha, 9.0))
    left, _top, right, _bottom = c.image.convert("L").point(lambda v: 255 if v < 200 else 0).getbbox()
    w = raw_width(s, 9.0) / 72 * DPI
    start = {"left": 5.0 * DPI, "center": 5.0 * DPI - w / 2, "right": 5.0 * DPI - w}[ha]
    assert abs(left - start) <= 3 and abs(right - (start + w)) <= 3  # side bearings: a pixel or two


def test_palette_keeps_frequent_colours_exact():
    """The page, inks and shades keep their exact colour (Pillow's own palette mapping would
    shift white to (251, 251, 251)); a rare blend becomes its nearest palette colour."""
    from metaanalysis.plots._raster import PALETTE, palette_image

    img = Image.new("RGB", (400, 300), "#ffffff")
    img.paste((0x24, 0x46, 0x6E), (0, 0, 100, 100))
    for v in range(250):  # 250 frequent greys (3 pixels each) ...
        for y in (200, 201, 202):
            img.putpixel((100 + v, y), (v, v, v))
    for v in range(20):   # ... and 20 rare blends of them (1 pixel each): 272 colours in all
        img.putpixel((100 + v, 250), (v, v, v + 1))
    q = palette_image(img)
    assert q.mode == "P" and len(q.getpalette()) // 3 == PALETTE == 256
    back = q.convert("RGB")
    assert back.getpixel((300, 50)) == (255, 255, 255) and back.getpixel((50, 50)) == (0x24, 0x46, 0x6E)
    assert all(back.getpixel((100 + v, 200)) == (v, v, v) for v in range(250))
    # the four rare colours that fill the palette (ties broken by colour) stay, the rest move by one level
    assert [back.getpixel((100 + v, 250)) for v in range(20)] == (
        [(v, v, v + 1) for v in range(4)] + [(v, v, v) for v in range(4, 20)])
    assert palette_image(img).tobytes() == q.tobytes()


def test_dash_pattern_runs_on_across_vertices():
    """SVG dashing: on/off lengths along the whole polyline; an odd list is repeated."""
    from metaanalysis.plots._raster import _dashes

    segs = _dashes([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)], [0.3, 0.2])
    lengths = [abs(b[0] - a[0]) + abs(b[1] - a[1]) for a, b in segs]
    # 0-0.3, 0.5-0.8, 1.0-1.3 (0.0-0.3 down the second leg), 1.5-1.8
    assert [round(v, 9) for v in lengths] == [0.3, 0.3, 0.3, 0.3]
    assert segs[2] == ((1.0, 0.0), (1.0, pytest.approx(0.3)))
    odd = _dashes([(0.0, 0.0), (1.0, 0.0)], [0.1])
    assert len(odd) == 5 and all(abs(b[0] - a[0] - 0.1) < 1e-12 for a, b in odd)
    # what SVG ignores (all zero, a negative length) is drawn solid, not looped on forever
    line = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
    assert _dashes(line, [0.0, 0.0]) == _dashes(line, [0.2, -0.1]) == list(zip(line, line[1:]))


def test_forest_png_unchanged_contract():
    """The forest PNG keeps its size and white page through the same writer."""
    lay = layout_forest(bcg_spec())
    data = render_forest(lay, format="png", dpi=DPI)
    img = Image.open(io.BytesIO(data))
    assert img.mode == "P" and img.size == (round(lay.width * DPI), round(lay.height * DPI))
    rgb = img.convert("RGB")
    assert rgb.getpixel((1, 1)) == (255, 255, 255)
    assert (0x24, 0x46, 0x6E) in {c for _n, c in rgb.getcolors(1 << 16)}


_NO_MPL = """
import sys
sys.path.insert(0, {bench!r})
import make_synthetic
from metaanalysis.batch import run_batch
d = make_synthetic.make_registry_dir({inp!r}, 2, seed=5, k_min=10, k_max=12,
                                     sensitivity=("leave-one-out",), coverage=False)
summary = run_batch([d], {out!r}, jobs=1, force=True, progress=False)
import pathlib
pngs = sorted(p.name for p in pathlib.Path({out!r}).rglob("*.png"))
print(len(pngs), sum("funnel" in p for p in pngs), sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib"))
"""


def test_batch_build_imports_no_matplotlib(tmp_path):
    """issue #15: a batch build (funnel plots included) never imports matplotlib."""
    code = _NO_MPL.format(bench=str(ROOT / "benchmarks"), inp=str(tmp_path / "in"), out=str(tmp_path / "out"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    n_png, n_funnel, mpl = out.stdout.split(maxsplit=2)
    assert int(n_png) == 4 and int(n_funnel) == 2  # a forest and a funnel PNG per analysis (k >= 10)
    assert mpl.strip() == "[]"


def test_ligatures_are_the_fonts_ligature_glyphs():
    """The layout measures 'ffl', 'fi', ... as the font's ligatures (their own advance); the PNG
    draws those glyphs, which the shipped subset carries, not the missing-glyph box."""
    from metaanalysis.plots._raster import _glyph
    from metaanalysis.plots._text import face_metrics

    cps = face_metrics(False).pen_positions("Effect of fluoride", 9.0)[0]
    assert 0xFB00 in cps and 0xFB02 in cps  # ff and fl
    notdef = _glyph(False, 18.75, 0xE000, 0)[0].tobytes()  # a private-use code point: the box
    for cp in (0xFB00, 0xFB01, 0xFB02, 0xFB03, 0xFB04):
        g = _glyph(False, 18.75, cp, 0)
        assert g is not None and g[0].tobytes() != notdef, hex(cp)
