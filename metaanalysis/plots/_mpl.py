"""The matplotlib side of the plots, for PNG export only (imported lazily: SVG needs none of it).

No backend is selected, at import or later: the PNG renderers draw on a bare
:class:`matplotlib.figure.Figure` and :func:`save_png` attaches an explicit Agg canvas to it, so
drawing never changes ``matplotlib.get_backend()`` of the program that imports the plots.

Reference: Hunter JD (2007). Matplotlib: A 2D graphics environment.
Computing in Science & Engineering 9(3):90-95, doi:10.1109/MCSE.2007.55.
"""

from __future__ import annotations

import io
import threading

import matplotlib
from matplotlib.font_manager import FontProperties

from ._text import FONT_FAMILY

_SAVE_LOCK = threading.Lock()


def font(size: float, bold: bool = False, italic: bool = False) -> FontProperties:
    """The one font used by all plots (DejaVu Sans), at ``size`` points."""
    return FontProperties(family=FONT_FAMILY, size=size,
                          weight="bold" if bold else "normal",
                          style="italic" if italic else "normal")


def save_png(fig, dpi: int) -> bytes:
    """Deterministic PNG bytes of ``fig`` (no 'Software' chunk), drawn on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    buf = io.BytesIO()
    # rc_context touches process-global rcParams; the lock keeps two threads
    # from interleaving their temporary settings.
    with _SAVE_LOCK, matplotlib.rc_context({"path.simplify": False}):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()
