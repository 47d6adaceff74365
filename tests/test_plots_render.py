"""Rendering tests: files, formats and byte-for-byte determinism."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from metaanalysis.plots import layout_forest, layout_funnel, render_forest, render_funnel
from metaanalysis.plots.examples import bcg_spec, denosumab_spec, funnel_example

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bcg_layout():
    return layout_forest(bcg_spec())


def test_forest_svg_parses_and_has_no_date(tmp_path, bcg_layout):
    p = tmp_path / "f.svg"
    data = render_forest(bcg_layout, p)
    assert p.read_bytes() == data
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    text = data.decode("utf-8")
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)  # no ISO date anywhere
    assert "<dc:date>" not in text
    # real <text> (svg.fonttype='none') set in an embedded font subset: the 13 study labels
    # of dat.bcg (examples.BCG) are selectable text
    assert "<text" in text and ">Aronson, 1948</text>" in text
    style = re.search(r"<style[^>]*>(.*?)</style>", text, re.S).group(1)
    assert style.count("@font-face") == 2  # DejaVu Sans regular + bold
    assert "http" not in style and re.findall(r"url\(([a-z]+):", style) == ["data", "data"]
    assert "<script" not in text
    assert len(data) < 80_000  # 54 kB measured (was 160 kB with glyph outlines)


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


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_forest_render_identical_across_processes(bcg_layout, seed):
    # another process, another str hash seed: the embedded font subsets are byte-identical too
    here = hashlib.sha256(render_forest(bcg_layout, format="svg")).hexdigest()
    code = ("import hashlib; from metaanalysis.plots import layout_forest, render_forest; "
            "from metaanalysis.plots.examples import bcg_spec; "
            "print(hashlib.sha256(render_forest(layout_forest(bcg_spec()), format='svg'))"
            ".hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == here


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


def test_bad_format_rejected(bcg_layout):
    with pytest.raises(ValueError, match="format"):
        render_forest(bcg_layout, format="pdf")


def test_render_does_not_touch_global_rcparams(bcg_layout):
    import matplotlib

    before = dict(matplotlib.rcParams)
    render_forest(bcg_layout, format="svg")
    assert dict(matplotlib.rcParams) == before


# ---------------------------------------------------------------------------
# embedded fonts (metaanalysis.plots._text.embed_fonts)
# ---------------------------------------------------------------------------

_FACE = re.compile(r"@font-face\{font-family:'([^']+)';font-weight:(\d+);font-style:(\w+);"
                   r"src:url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\) format\('woff'\)\}")
_TEXT = re.compile(r'<text style="([^"]*)"[^>]*>([^<]*)</text>')


def _faces(svg: bytes) -> dict[tuple[int, str], tuple[str, bytes]]:
    return {(int(w), st): (fam, base64.b64decode(b64)) for fam, w, st, b64 in _FACE.findall(svg.decode())}


def _texts(svg: bytes) -> list[tuple[dict[str, str], str]]:
    out = []
    for style, content in _TEXT.findall(svg.decode()):
        css = dict((k.strip(), v.strip()) for k, _, v in (d.partition(":") for d in style.split(";")))
        out.append((css, html.unescape(content)))
    return out


def _check_embedded(svg: bytes) -> str:
    """Every <text> asks for the embedded family first and its face covers its characters."""
    from fontTools.ttLib import TTFont

    faces = _faces(svg)
    families = {fam for fam, _ in faces.values()}
    assert len(families) == 1, families
    family = families.pop()
    assert re.fullmatch(r"ma-[0-9a-f]{10}", family)
    texts = _texts(svg)
    assert texts
    used: dict[tuple[int, str], set[int]] = {}
    for css, content in texts:
        assert css["font-family"] == f"'{family}', 'DejaVu Sans', sans-serif", css
        key = (int(css.get("font-weight", "400")), css.get("font-style", "normal"))
        used.setdefault(key, set()).update(map(ord, content))
    assert set(used) == set(faces)  # one face per (weight, style) drawn, no more
    for key, chars in used.items():
        font = TTFont(io.BytesIO(faces[key][1]))
        assert font.flavor == "woff"
        cmap = font.getBestCmap()
        missing = sorted(chr(c) for c in chars - set(cmap))
        assert not missing, (key, missing)
        # matplotlib's own DejaVu Sans files: the bold face is DejaVuSans-Bold (PostScript name,
        # name ID 6), weight class 700 (OS/2); the regular one DejaVuSans, 400
        ps = font["name"].getDebugName(6)
        assert ps == {400: "DejaVuSans", 700: "DejaVuSans-Bold"}[key[0]], (key, ps)
        assert font["OS/2"].usWeightClass == key[0]
        # a subset, not the font: the characters drawn + .notdef + the few glyphs that GSUB
        # rules reach from them (ligatures such as ff; 5 in the dat.bcg plot); the full
        # DejaVuSans.ttf has 6241 glyphs (fontTools, matplotlib 3.11 mpl-data)
        assert len(font.getGlyphOrder()) <= len(chars) + 1 + 10
    return family


def test_forest_embeds_exactly_the_characters_it_draws(bcg_layout):
    svg = render_forest(bcg_layout, format="svg")
    _check_embedded(svg)
    texts = [c for _css, c in _texts(svg)]
    assert "BCG vaccine and tuberculosis (13 trials)" in texts  # examples.bcg_spec title
    bold = {c for css, c in _texts(svg) if css.get("font-weight") == "700"}
    assert "BCG vaccine and tuberculosis (13 trials)" in bold and "Aronson, 1948" not in bold


def test_funnel_and_subgroup_forest_embed_their_characters():
    _check_embedded(render_funnel(layout_funnel(funnel_example()), format="svg"))
    _check_embedded(render_forest(layout_forest(denosumab_spec(subgroups=True)), format="svg"))


def test_family_name_follows_the_text(bcg_layout):
    a = _check_embedded(render_forest(bcg_layout, format="svg"))
    b = _check_embedded(render_forest(layout_forest(denosumab_spec()), format="svg"))
    assert a != b  # different characters, different subsets: one page can hold both
    assert a == _check_embedded(render_forest(layout_forest(bcg_spec()), format="svg"))


def _figure_svg(*lines: tuple[str, bool]) -> bytes:
    from matplotlib.figure import Figure

    from metaanalysis.plots._text import font, save_figure

    fig = Figure(figsize=(3, 1))
    for i, (s, bold) in enumerate(lines):
        fig.text(0.05, 0.8 - 0.3 * i, s, fontproperties=font(9, bold=bold), parse_math=False)
    return save_figure(fig, None, "svg", 72)


def test_characters_outside_the_common_set_and_spaces():
    # Cyrillic is outside _text._COMMON, so its subset is cut from the full font file
    svg = _figure_svg(("Иванов  2020 ", False), ("Ж & <b>", True))
    _check_embedded(svg)
    texts = {c: css for css, c in _texts(svg)}
    assert set(texts) == {"Иванов  2020 ", "Ж & <b>"}  # escaped, not markup
    assert texts["Иванов  2020 "]["white-space"] == "pre"  # doubled/trailing spaces kept
    assert "white-space" not in texts["Ж & <b>"]
    assert svg == _figure_svg(("Иванов  2020 ", False), ("Ж & <b>", True))


def test_text_rendering_is_pinned_on_the_root_element(bcg_layout):
    svg = render_forest(bcg_layout, format="svg").decode()
    root = re.search(r"<svg [^>]*>", svg).group(0)
    assert 'text-rendering="geometricPrecision"' in root and 'font-variant="normal"' in root
