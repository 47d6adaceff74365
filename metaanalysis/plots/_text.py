"""Text measurement, wrapping and shared plot helpers, from the plot font's own metrics.

Every plot uses one font, DejaVu Sans, and the package ships it: a subset in ``fonts/`` (WOFF,
embedded in the report pages so the browser draws plot text with it) and the advance widths
and kerning of the full font (``fonts/dejavu-metrics.json``), both made at development time
by ``tools/make_font_subset.py``. Text is measured from those numbers alone, so a layout needs
no drawing library, is deterministic and is what the browser draws: the width of a string is
the sum of its characters' advances plus pair kerning, rounded per glyph to 1/64 px at 100 pt
as FreeType + HarfBuzz (matplotlib's ``TextToPath``, which measured the layouts before) do,
so the numbers are the same as before to the last bit: checked on every character of the
subset and every pair of them (``tools/make_font_subset.py``), so the layouts are unchanged.
Outside the subset a character has its own advance but no kerning or ligature, and one DejaVu
Sans lacks counts as its .notdef box (before: whatever fallback font matplotlib found; the
browser draws it in a fallback font whose width no layout can know).

Reference: the metrics follow the OpenType 'hmtx' and 'kern' tables (OpenType specification
1.9, Microsoft 2022, https://learn.microsoft.com/typography/opentype/spec/).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT_FAMILY = "DejaVu Sans"
#: Measured widths are padded by this factor plus 0.5 pt: a renderer that hints glyphs at
#: draw time can set a string up to ~1-2 % wider than the unhinted outline measured here
#: (the PNG writer places each glyph at its measured position, so it needs none of it).
WIDTH_SLACK = 1.03
LINE_FACTOR = 1.25  # line box height / font size
#: Size (pt) and fixed-point step (1/64 px) at which glyph advances are rounded, as
#: matplotlib's TextToPath measured them (it shapes at 100 pt, 72 dpi, in FreeType's 26.6).
_SHAPE_SIZE = 100.0
_SUBPIXELS = 64
#: Characters a shaper gives no width (default-ignorable code points: soft hyphen, zero-width
#: space and joiners, direction marks, word joiner, byte order mark).
_IGNORABLE = frozenset([0x00AD, 0x034F, *range(0x200B, 0x2010), *range(0x202A, 0x202F),
                        *range(0x2060, 0x2065), 0xFEFF])


@dataclass(frozen=True)
class FaceMetrics:
    """Horizontal metrics of one face, in 1/64 px at 100 pt (what the width sums use).

    Attributes
    ----------
    advance : dict
        Code point -> rounded advance width.
    kerning : dict
        (left code point, right code point) -> rounded pair adjustment.
    ligatures : dict
        First code point -> ((component code points, ligature code point), ...), longest
        first: the font's 'liga' substitutions (ff, fi, fl, ffi, ffl), which the browser and
        the shaper behind the old measure both apply.
    notdef : int
        Rounded advance of the .notdef glyph (characters the font lacks).
    baseline_shift : float
        Em fraction from a line's vertical centre down to its baseline (half the height of
        'l': matplotlib's ``va="center_baseline"``, which the layouts' ``y`` means).
    """

    advance: dict
    kerning: dict
    ligatures: dict
    notdef: int
    baseline_shift: float

    @classmethod
    def from_json(cls, m: dict) -> "FaceMetrics":
        """From one face of ``dejavu-metrics.json`` (font units, as the script wrote them)."""
        upm = m["units_per_em"]

        def rounded(units: int) -> int:
            # FreeType/HarfBuzz round to the nearest 1/64 px, halves up
            return math.floor(units * _SHAPE_SIZE * _SUBPIXELS / upm + 0.5)

        advance = {start + i: rounded(a) for start, advs in m["advance_runs"]
                   for i, a in enumerate(advs)}
        advance.update((c, 0) for c in _IGNORABLE)
        kerning = {(a, b): rounded(v) for a, b, v in m["kerning"]}
        ligatures: dict = {}
        for seq, lig in m["ligatures"]:  # already longest first
            ligatures.setdefault(seq[0], []).append((tuple(seq), lig))
        return cls(advance, kerning, {c: tuple(v) for c, v in ligatures.items()},
                   rounded(m["notdef_advance"]), m["ascent_l"] / upm / 2)

    def _shaped(self, s: str) -> list[int]:
        """Code points of ``s`` after the ligature substitutions (left to right, longest first)."""
        cps = [ord(ch) for ch in s]
        if not any(c in self.ligatures for c in cps):
            return cps
        out, i = [], 0
        while i < len(cps):
            for seq, lig in self.ligatures.get(cps[i], ()):
                if tuple(cps[i:i + len(seq)]) == seq:
                    out.append(lig)
                    i += len(seq)
                    break
            else:
                out.append(cps[i])
                i += 1
        return out

    def width_at(self, s: str, size: float) -> float:
        """Unpadded advance width of ``s`` at ``size`` points, in points."""
        adv, kern, notdef = self.advance, self.kerning, self.notdef
        cps = self._shaped(s)
        total = sum(adv.get(c, notdef) for c in cps)
        if kern:
            total += sum(kern.get(pair, 0) for pair in zip(cps, cps[1:]))
        return total / float(_SUBPIXELS) * (size / _SHAPE_SIZE)

    def pen_positions(self, s: str, size: float) -> tuple[list[int], list[float], float]:
        """Where each glyph of ``s`` starts, as :meth:`width_at` sums the advances: the code
        points after the ligature substitutions, each glyph's pen offset from the start of the
        line and the whole advance width, in points (for painting a string glyph by glyph at
        the positions the layout measured)."""
        adv, kern, notdef = self.advance, self.kerning, self.notdef
        cps = self._shaped(s)
        scale = size / _SHAPE_SIZE / _SUBPIXELS
        offsets, pen = [], 0
        for i, c in enumerate(cps):
            if i and kern:
                pen += kern.get((cps[i - 1], c), 0)
            offsets.append(pen * scale)
            pen += adv.get(c, notdef)
        return cps, offsets, pen * scale


@lru_cache(maxsize=1)
def metrics_data() -> dict:
    """``fonts/dejavu-metrics.json`` as written by ``tools/make_font_subset.py``."""
    return json.loads((FONT_DIR / "dejavu-metrics.json").read_text(encoding="ascii"))


@lru_cache(maxsize=2)
def face_metrics(bold: bool = False) -> FaceMetrics:
    """Metrics of the regular or the bold face."""
    return FaceMetrics.from_json(metrics_data()["faces"]["bold" if bold else "regular"])


def raw_width(s: str, size: float, bold: bool = False) -> float:
    """Advance width of ``s`` as the browser sets it, in points (no padding)."""
    return face_metrics(bold).width_at(s, size)


@lru_cache(maxsize=16384)
def text_width(s: str, size: float, bold: bool = False, italic: bool = False) -> float:
    """Width reserved for a single-line string, in inches (1 in = 72 pt): the advance width
    padded by :data:`WIDTH_SLACK` and 0.5 pt. ``italic`` is measured upright (no plot text is
    italic; DejaVu Sans Oblique has the upright advances)."""
    if not s:
        return 0.0
    return (raw_width(s, size, bold) * WIDTH_SLACK + 0.5) / 72.0


def line_height(size: float) -> float:
    """Height of one line box, in inches."""
    return size * LINE_FACTOR / 72.0


def wrap(s: str, width: float, size: float, bold: bool = False) -> list[str]:
    """Greedy word wrap of ``s`` to ``width`` inches (measured, not counted).

    A word wider than ``width`` is broken between characters. Explicit
    newlines are kept.
    """
    out: list[str] = []
    for para in s.split("\n"):
        words = para.split(" ")
        line = ""
        for word in words:
            cand = word if not line else f"{line} {word}"
            if text_width(cand, size, bold) <= width:
                line = cand
                continue
            if line:
                out.append(line)
                line = ""
            # the word alone may still be too wide: break it
            while text_width(word, size, bold) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and text_width(word[:cut], size, bold) > width:
                    cut -= 1
                out.append(word[:cut])
                word = word[cut:]
            line = word
        out.append(line)
    return out


def typeset(s: str) -> str:
    """Use a true minus sign (U+2212) for negative numbers in drawn text.

    :func:`metaanalysis.results.fmt_num` keeps ASCII '-' so text output parses
    back; plots are not parsed, so we set them properly.
    """
    out = []
    for i, ch in enumerate(s):
        if ch == "-" and (i + 1 < len(s) and (s[i + 1].isdigit() or s[i + 1] == "."))\
                and (i == 0 or s[i - 1] in " [(=,;:"):
            out.append("\u2212")
        else:
            out.append(ch)
    return "".join(out)


def output_format(path, format: str | None) -> str:
    """``format`` lower-cased, else ``path``'s suffix, else "svg"; only "svg" and "png"."""
    if format is None:
        format = str(path).rsplit(".", 1)[-1] if path is not None and "." in str(path) else "svg"
    fmt = format.lower()
    if fmt not in ("svg", "png"):
        raise ValueError(f"format must be 'svg' or 'png', not {format!r}")
    return fmt


def write_output(data: bytes, path) -> bytes:
    """Write ``data`` to ``path`` when one is given; return ``data``."""
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def finite(x) -> bool:
    return x is not None and math.isfinite(float(x))
