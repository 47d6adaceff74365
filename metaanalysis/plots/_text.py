"""Canvas-free text measurement, wrapping and shared plot helpers.

Text extents come from the font file itself (FreeType via
:class:`matplotlib.textpath.TextToPath`), not from a drawing canvas, so a layout
is deterministic, fast and identical whatever backend later draws it. Every
plot uses one font, DejaVu Sans (shipped inside matplotlib, so always present).

No backend is selected, at import or later: renderers draw on a bare
:class:`matplotlib.figure.Figure` and :func:`save_figure` attaches an explicit SVG or
Agg canvas to it, so importing the plots never changes ``matplotlib.get_backend()``
of the program that imports them.

Reference: Hunter JD (2007). Matplotlib: A 2D graphics environment.
Computing in Science & Engineering 9(3):90-95, doi:10.1109/MCSE.2007.55.
"""

from __future__ import annotations

import io
import math
import threading
from functools import lru_cache

import matplotlib
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

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

    The figure gets its own canvas (:class:`~matplotlib.backends.backend_svg.FigureCanvasSVG`
    or :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`), so no global backend is
    involved. Determinism: fixed SVG hash salt, no date/creator metadata, no PNG
    'Software' chunk. ``svg.fonttype='path'`` draws glyphs as outlines so the
    text looks exactly as measured by the layout, whatever fonts the viewer
    has (a substituted font would change widths and could make labels
    collide); each glyph is stored once and reused, so files stay small.
    """
    fmt = fmt.lower()
    if fmt not in ("svg", "png"):
        raise ValueError(f"format must be 'svg' or 'png', not {fmt!r}")
    if fmt == "svg":
        from matplotlib.backends.backend_svg import FigureCanvasSVG as Canvas
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg as Canvas
    Canvas(fig)  # attaches itself as fig.canvas
    buf = io.BytesIO()
    if fmt == "svg":
        meta = {"Date": None, "Creator": None, "Format": None, "Type": None}
    else:
        meta = {"Software": None}
    # rc_context touches process-global rcParams; the lock keeps two threads
    # from interleaving their temporary settings.
    with _SAVE_LOCK, matplotlib.rc_context({
        "svg.hashsalt": "metaanalysis",
        "svg.fonttype": "path",
        "svg.image_inline": True,
        "path.simplify": False,
    }):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white")
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def finite(x) -> bool:
    return x is not None and math.isfinite(float(x))
