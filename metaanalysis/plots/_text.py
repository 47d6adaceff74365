"""Canvas-free text measurement, wrapping and shared plot helpers.

Text extents come from the font file itself (FreeType via
:class:`matplotlib.textpath.TextToPath`), not from a drawing canvas, so a layout
is deterministic, fast and identical whatever backend later draws it. Every
plot uses one font, DejaVu Sans (shipped inside matplotlib, so always present).
SVG output keeps text as ``<text>`` and embeds the subset of that font it
draws (:func:`embed_fonts`), so a browser sets it with the measured metrics.

Reference: Hunter JD (2007). Matplotlib: A 2D graphics environment.
Computing in Science & Engineering 9(3):90-95, doi:10.1109/MCSE.2007.55.
"""

from __future__ import annotations

import io
import math
import re
import threading
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")  # never pick an interactive backend; we only write files

from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402

FONT_FAMILY = "DejaVu Sans"
#: Measured widths are padded by this factor plus 0.5 pt: Agg hints glyphs at
#: draw time, which can make a string up to ~1-2 % wider than the unhinted
#: outline measured here.
WIDTH_SLACK = 1.03
LINE_FACTOR = 1.25  # line box height / font size

_T2P = TextToPath()
_SAVE_LOCK = threading.Lock()


def font(size: float, bold: bool = False, italic: bool = False) -> FontProperties:
    """The one font used by all plots (DejaVu Sans), at ``size`` points."""
    return FontProperties(family=FONT_FAMILY, size=size,
                          weight="bold" if bold else "normal",
                          style="italic" if italic else "normal")


@lru_cache(maxsize=16384)
def text_width(s: str, size: float, bold: bool = False, italic: bool = False) -> float:
    """Advance width of a single-line string, in inches (1 in = 72 pt)."""
    if not s:
        return 0.0
    w, _h, _d = _T2P.get_text_width_height_descent(s, font(size, bold, italic), ismath=False)
    return (w * WIDTH_SLACK + 0.5) / 72.0


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


def save_figure(fig, path, fmt: str, dpi: int) -> bytes:
    """Write ``fig`` as deterministic SVG or PNG bytes (and to ``path`` if given).

    Determinism: fixed SVG hash salt, no date/creator metadata, no PNG
    'Software' chunk. SVG text is real ``<text>`` (``svg.fonttype='none'``:
    selectable, searchable, small) drawn with the very font the layout measured:
    :func:`embed_fonts` puts a subset of DejaVu Sans into the SVG, so no viewer
    substitutes a font with other widths (which could make labels collide).
    """
    fmt = fmt.lower()
    if fmt not in ("svg", "png"):
        raise ValueError(f"format must be 'svg' or 'png', not {fmt!r}")
    buf = io.BytesIO()
    if fmt == "svg":
        meta = {"Date": None, "Creator": None, "Format": None, "Type": None}
    else:
        meta = {"Software": None}
    # rc_context touches process-global rcParams; the lock keeps two threads
    # from interleaving their temporary settings.
    with _SAVE_LOCK, matplotlib.rc_context({
        "svg.hashsalt": "metaanalysis",
        "svg.fonttype": "none",
        "svg.image_inline": True,
        "path.simplify": False,
    }):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white")
    data = buf.getvalue()
    if fmt == "svg":
        data = embed_fonts(data)
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


# ---------------------------------------------------------------------------
# SVG text with an embedded font subset
# ---------------------------------------------------------------------------

#: matplotlib's <text> elements (svg.fonttype='none'): one per line, style first.
_SVG_TEXT = re.compile(r'<text style="([^"]*)"([^>]*)>([^<]*)</text>')
_SVG_STYLE_END = re.compile(r"(<style type=\"text/css\">)(.*?)(</style>)", re.S)
_FAMILY_DECL = f"font-family: '{FONT_FAMILY}'"
#: Name records kept in each subset: 0-6 (copyright, names, version) and 14
#: (license URL); 13, the full license text, would add ~5 kB per face.
_NAME_IDS = (0, 1, 2, 3, 4, 5, 6, 14)
#: Characters of a pre-cut "common" subset (ASCII, Latin-1, Latin Extended-A/B,
#: Greek, general punctuation, super/subscripts, arrows, maths operators):
#: cutting a plot's subset from it takes ~20 ms instead of ~80 ms from the
#: full 6000-glyph font (fontTools 4.68, measured on this machine).
_COMMON = frozenset(
    [*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x370, 0x400),
     *range(0x2010, 0x20A0), *range(0x2190, 0x2200), *range(0x2200, 0x2300)])


def _css(style: str) -> dict[str, str]:
    out = {}
    for decl in style.split(";"):
        k, sep, v = decl.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def _face_key(css: dict[str, str]) -> tuple[int, str]:
    """(CSS font-weight, CSS font-style) of one matplotlib <text> style."""
    w = css.get("font-weight", "400")
    weight = int(w) if w.isdigit() else (700 if w == "bold" else 400)
    return weight, css.get("font-style", "normal")


@lru_cache(maxsize=8)
def _font_file(weight: int, style: str) -> str:
    """The file matplotlib draws this face of DejaVu Sans from (its own copy)."""
    from matplotlib.font_manager import findfont

    return findfont(FontProperties(family=FONT_FAMILY, weight=weight, style=style),
                    fallback_to_default=False)


def _subset_options(flavor: str | None):
    from fontTools import subset

    o = subset.Options()
    o.flavor = flavor
    o.hinting = False  # outlines as drawn by the glyph-path SVG (never hinted)
    o.glyph_names = False
    o.notdef_outline = True  # a character the font lacks shows a box, as in the PNG
    o.name_IDs = list(_NAME_IDS)
    o.drop_tables = [*o.drop_tables, "FFTM", "MATH"]
    return o


def _cut(src, chars: str, flavor: str | None) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    f = TTFont(src, recalcTimestamp=False, recalcBBoxes=True, lazy=True)
    sub = subset.Subsetter(_subset_options(flavor))
    sub.populate(text=chars)
    sub.subset(f)
    f.flavor = flavor
    out = io.BytesIO()
    f.save(out, reorderTables=True)
    f.close()
    return out.getvalue()


@lru_cache(maxsize=8)
def _common_font(path: str) -> bytes:
    """The face cut to :data:`_COMMON` (plain TrueType), once per process."""
    return _cut(path, "".join(map(chr, sorted(_COMMON))), None)


@lru_cache(maxsize=512)
def font_subset(weight: int, style: str, chars: str) -> bytes:
    """WOFF subset of the DejaVu Sans face (``weight`` 400/700, ``style``
    'normal'/'italic') holding the glyphs of ``chars`` (sorted, unique) and the
    kerning/ligature rules among them (GSUB/GPOS, as HarfBuzz shapes them in
    both matplotlib and the browser). Deterministic: the source font's head
    timestamp is kept, no glyph names, fixed table order, zlib at fontTools'
    fixed level. WOFF (zlib) rather than WOFF2, which needs brotli.

    The subset is cut from a pre-cut common subset when every character is in
    :data:`_COMMON`, else from the full font (a pure function of ``chars``,
    so the bytes never depend on what this process rendered before).
    """
    path = _font_file(weight, style)
    if all(ord(c) in _COMMON for c in chars):
        return _cut(io.BytesIO(_common_font(path)), chars, "woff")
    return _cut(path, chars, "woff")


def embed_fonts(svg: bytes) -> bytes:
    """Embed the DejaVu Sans faces used by ``svg``'s ``<text>`` as font subsets.

    For every face (weight, style) used by a ``<text>`` in DejaVu Sans, a WOFF
    subset holding exactly the characters drawn in that face goes into the
    SVG's ``<style>`` as an ``@font-face`` with a base64 ``data:`` URL (no
    request). All faces share one family named ``ma-`` + the first 10 hex
    digits of the SHA-1 of the subsets, so SVGs inlined into one HTML page
    (where ``@font-face`` rules are global) never take each other's glyphs;
    each text asks for it first, then 'DejaVu Sans', then sans-serif. Spaces
    that SVG would collapse (leading, trailing, doubled) are kept with
    ``white-space: pre``. Same input, same bytes.

    Reference: W3C (2011). WOFF File Format 1.0, https://www.w3.org/TR/WOFF/.
    """
    import base64
    import hashlib
    from html import unescape

    s = svg.decode("utf-8")
    faces: dict[tuple[int, str], set[str]] = {}
    for m in _SVG_TEXT.finditer(s):
        css = _css(m.group(1))
        if css.get("font-family") == f"'{FONT_FAMILY}'":
            faces.setdefault(_face_key(css), set()).update(unescape(m.group(3)))
    if not faces:
        return svg
    fonts = {k: font_subset(*k, "".join(sorted(faces[k]))) for k in sorted(faces)}
    digest = hashlib.sha1()
    for k, data in fonts.items():
        digest.update(f"{k[0]} {k[1]} {len(data)}\n".encode())
        digest.update(data)
    family = f"ma-{digest.hexdigest()[:10]}"
    rules = "".join(
        f"@font-face{{font-family:'{family}';font-weight:{w};font-style:{st};"
        f"src:url(data:font/woff;base64,{base64.b64encode(data).decode('ascii')}) format('woff')}}"
        for (w, st), data in fonts.items())

    def text(m: re.Match) -> str:
        style, content = m.group(1), m.group(3)
        if _css(style).get("font-family") != f"'{FONT_FAMILY}'":
            return m.group(0)  # not ours: left as matplotlib wrote it
        style = style.replace(_FAMILY_DECL, f"font-family: '{family}', '{FONT_FAMILY}', sans-serif")
        if re.search(r"^\s|\s$|\s\s", unescape(content)):
            style += "; white-space: pre"
        return f'<text style="{style}"{m.group(2)}>{content}</text>'

    s = _SVG_TEXT.sub(text, s)
    # Scoped to this SVG (presentation attributes, inherited by its text, beaten
    # by no page CSS on ancestors): geometricPrecision lays glyphs out unhinted
    # at fractional positions, as the layout measured them (Chromium 156: every
    # glyph origin within 0.03 pt of the glyph-path SVG; with 'auto', advances
    # drift by up to 0.6 pt over a 120-character line); the other three reset
    # text properties an embedding page may set on ancestors.
    s = s.replace("<svg ", '<svg text-rendering="geometricPrecision" font-variant="normal" '
                  'letter-spacing="normal" word-spacing="normal" ', 1)
    s, n = _SVG_STYLE_END.subn(lambda m: m.group(1) + m.group(2) + rules + m.group(3), s, count=1)
    if n != 1:
        raise RuntimeError("matplotlib's SVG has no <style> element to put the fonts in")
    return s.encode("utf-8")


def z_crit(level: float) -> float:
    """Two-sided standard-normal critical value for a ``level`` interval."""
    from statistics import NormalDist

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level!r}")
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def finite(x) -> bool:
    return x is not None and math.isfinite(float(x))
