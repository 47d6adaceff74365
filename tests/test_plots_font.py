"""The shipped plot font: the DejaVu Sans subset, its metrics, and text measured from them.

``tools/make_font_subset.py`` makes ``metaanalysis/plots/fonts/`` from matplotlib's DejaVu Sans;
:mod:`metaanalysis.plots._text` measures text from the metrics alone. These tests hold the
measure to the one the layouts were made with before (matplotlib's ``TextToPath``: FreeType
advances shaped by HarfBuzz), the files to the script, and the subset to the plots' text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metaanalysis.plots import layout_forest
from metaanalysis.plots._text import raw_width, text_width
from metaanalysis.plots.examples import bcg_spec, denosumab_spec

ROOT = Path(__file__).resolve().parents[1]
FONTS = ROOT / "metaanalysis" / "plots" / "fonts"

#: Strings beyond the example plots: kerning pairs (AV, To, Wa), ligatures (ff, fi, fl, ffi —
#: DejaVu Sans's 'liga'), the plots' symbols, soft hyphen and zero-width space (no width),
#: Latin Extended-A names, combining accents, Greek, digits and signs.
SPECIALS = [
    "AVAVA To Wa Ty", "Office effect differences affluent fiction flow", "ffi ffl fff",
    "Heterogeneity: τ² = 0.31; I² = 92.2%; Q = 152.23, df = 12, p < 0.001",
    "Test for overall effect: z = −3.97, p < 0.001", "← Favours denosumab", "Favours control →",
    "† SE derived from p (z = Φ⁻¹(1 − p/2)) ‡ § ≤ ≥ ∞ × ±", "Łopuszańska–Şahin Ørsted Müller",
    "José Jose\u0301", "soft\u00adhyphen zero\u200bwidth", "αβγδ χ² μ σ", "0123456789 [0.64, 1.01]",
    "  two  spaces  ", "x",
]


def _example_texts() -> list[tuple[str, float, bool]]:
    out = set()
    for spec in (bcg_spec(), denosumab_spec(), denosumab_spec(subgroups=True)):
        out.update((t.text, t.size, t.bold) for t in layout_forest(spec).texts)
    return sorted(out)


def _t2p_width(s: str, size: float, bold: bool) -> float:
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(family="DejaVu Sans", size=size, weight="bold" if bold else "normal")
    return TextToPath().get_text_width_height_descent(s, prop, ismath=False)[0]


def test_widths_equal_the_matplotlib_measure_they_replace():
    """To 1e-6 pt (in fact to the last bit): same advances, kerning, ligatures and rounding."""
    cases = _example_texts() + [(s, size, bold) for s in SPECIALS for size in (7.5, 9.0, 11.0)
                                for bold in (False, True)]
    assert len(cases) > 150
    worst = max(abs(raw_width(s, size, bold) - _t2p_width(s, size, bold)) for s, size, bold in cases)
    assert worst <= 1e-6, worst


def test_text_width_pads_the_advance_width():
    # the reserved width: advance x 1.03 + 0.5 pt, in inches (WIDTH_SLACK, unchanged)
    w = raw_width("Weight", 9.0, True)
    assert text_width("Weight", 9.0, True) == (w * 1.03 + 0.5) / 72
    assert text_width("", 9.0) == 0.0
    # kerning counts: "AV" is narrower than "A" + "V" (kern pair A,V = -131 units in DejaVu
    # Sans 2.35, fontTools: TTFont(...)["kern"].kernTables[0][("A", "V")])
    assert raw_width("AV", 100.0) == pytest.approx(raw_width("A", 100.0) + raw_width("V", 100.0)
                                                    - 131 * 100 / 2048, abs=1 / 64)


def test_missing_characters_count_as_notdef():
    # DejaVu Sans has no CJK; .notdef is 1229 units wide (rounded to 1/64 px at 100 pt)
    assert raw_width("中", 100.0) == round(1229 * 100 / 2048 * 64) / 64


def test_subset_covers_every_drawn_character():
    from fontTools.ttLib import TTFont

    for name, bold in (("DejaVuSans-subset.woff", False), ("DejaVuSans-Bold-subset.woff", True)):
        font = TTFont(FONTS / name)
        assert font.flavor == "woff" and font["name"].getDebugName(1) == "DejaVu Sans"
        cmap = set(font.getBestCmap())
        drawn = {ord(c) for s, _size, b in _example_texts() if b == bold for c in s}
        assert drawn <= cmap, sorted(chr(c) for c in drawn - cmap)
        assert {ord(c) for c in "τ²−∞≤≥†‡§–×←→ΦŁő"} <= cmap
        assert "hdmx" not in font and "fpgm" not in font  # unhinted
        assert 300 < len(cmap) < 700


def test_font_files_are_what_the_script_makes():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "make_font_subset.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
