"""Rendering tests: files, formats and byte-for-byte determinism."""

from __future__ import annotations

import hashlib
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
    # text drawn as glyph outlines (svg.fonttype='path'), so no <text> elements
    assert "<text" not in text
    assert len(data) < 400_000  # 13 rows, glyphs stored once and reused


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


def test_forest_render_identical_across_processes(bcg_layout):
    here = hashlib.sha256(render_forest(bcg_layout, format="svg")).hexdigest()
    code = ("import hashlib; from metaanalysis.plots import layout_forest, render_forest; "
            "from metaanalysis.plots.examples import bcg_spec; "
            "print(hashlib.sha256(render_forest(layout_forest(bcg_spec()), format='svg'))"
            ".hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
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


_BACKEND_PROBE = """
import matplotlib
{select}
before = {read}
import metaanalysis.plots
from metaanalysis.plots import layout_forest, layout_funnel, render_forest, render_funnel
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
