"""A small, deterministic SVG writer for the plot layouts (no drawing library involved).

Page coordinates come in inches (origin top-left, y down, as the layouts use them) and are
written in points (1 in = 72 pt): the root ``viewBox`` is the page in pt, ``width``/``height``
are in pt, so one user unit is one point and a text's ``font-size`` is its size in points.
Numbers are written with at most 3 decimals (no exponent, no ``-0``), attributes in sorted
order, and the only ids are fixed names given by the caller, so identical layouts give
identical bytes in any process, whatever ``PYTHONHASHSEED``.

Plot text is real ``<text>`` (selectable, searchable, read by screen readers) set in the
shipped DejaVu Sans subset under the family name :data:`FONT_CSS_FAMILY`. The report declares
that family once per page (:func:`font_face_css`); a standalone file can carry the
declaration itself (``embed_font=True``). Elsewhere the text falls back to an installed DejaVu
Sans, then to any sans-serif font.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from ._text import FONT_DIR, FONT_FAMILY, face_metrics

FONT_CSS_FAMILY = "metaanalysis DejaVu Sans"
FONT_FILES = {"normal": "DejaVuSans-subset.woff", "bold": "DejaVuSans-Bold-subset.woff"}
_PT = 72.0  # points per inch
#: On the root element: the font, exact glyph positions (no hinting of sizes or advances), and
#: no spacing a surrounding page could pass on (the layout measured plain, kerned advances).
_ROOT_STYLE = ("font-kerning:normal;font-variant:normal;font-feature-settings:normal;"
               "letter-spacing:normal;word-spacing:normal;white-space:pre")
#: Characters XML 1.0 cannot carry (C0 controls but tab, newline, return; lone surrogates).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ANCHOR = {"left": "start", "center": "middle", "right": "end"}


def num(v: float) -> str:
    """A coordinate as text: at most 3 decimals, trailing zeros dropped, never ``-0``."""
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def pt(v: float) -> str:
    """Inches -> points, as text."""
    return num(v * _PT)


def points(pts) -> str:
    """``[(x, y), ...]`` in inches -> an SVG ``points`` list in pt."""
    return " ".join(f"{pt(x)},{pt(y)}" for x, y in pts)


@lru_cache(maxsize=1)
def font_face_css() -> str:
    """``@font-face`` rules of the plot font (regular and bold) with the WOFF files inlined as
    ``data:`` URLs: what a page, or a standalone SVG, needs to draw plot text as measured."""
    rules = []
    for weight, name in FONT_FILES.items():
        data = base64.b64encode((FONT_DIR / name).read_bytes()).decode("ascii")
        rules.append(f'@font-face{{font-family:"{FONT_CSS_FAMILY}";font-style:normal;'
                     f'font-weight:{weight};font-display:block;'
                     f'src:url(data:font/woff;base64,{data}) format("woff")}}')
    return "\n".join(rules)


def _attrs(attrs: dict) -> str:
    items = sorted((k.replace("_", "-"), num(v) if isinstance(v, float) else str(v))
                   for k, v in attrs.items() if v is not None)
    return "".join(f" {k}={quoteattr(v)}" for k, v in items)


class SvgWriter:
    """Collects SVG elements of one page ``width`` x ``height`` inches; :meth:`to_bytes` ends it."""

    def __init__(self, width: float, height: float, *, embed_font: bool = False):
        self.width, self.height = width, height
        self._parts: list[str] = []
        if embed_font:
            self._parts.append(f"<defs><style>{font_face_css()}</style></defs>")

    def element(self, name: str, attrs: dict, text: str | None = None) -> None:
        """One element; attribute names with ``_`` are written with ``-`` (``stroke_width``),
        floats as :func:`num`, None skipped, in sorted order."""
        self._parts.append(f"<{name}{_attrs(attrs)}/>" if text is None
                           else f"<{name}{_attrs(attrs)}>{escape(text)}</{name}>")

    def open(self, name: str, attrs: dict) -> None:
        """Start a container element (``g``, ``clipPath``); :meth:`close` ends it."""
        self._parts.append(f"<{name}{_attrs(attrs)}>")

    def close(self, name: str) -> None:
        self._parts.append(f"</{name}>")

    def begin_clip(self, x0: float, y0: float, x1: float, y1: float, clip_id: str = "panel") -> None:
        """Elements until :meth:`end_clip` are clipped to this rectangle (inches): a
        ``clipPath`` with the fixed id ``clip_id`` and a group that uses it."""
        self.open("clipPath", {"id": clip_id})
        self.rect(x0, y0, x1, y1)
        self.close("clipPath")
        self.open("g", {"clip_path": f"url(#{clip_id})"})

    def end_clip(self) -> None:
        self.close("g")

    def rect(self, x0: float, y0: float, x1: float, y1: float, **style) -> None:
        """Rectangle between two corners (inches)."""
        self.element("rect", {"x": pt(min(x0, x1)), "y": pt(min(y0, y1)), "width": pt(abs(x1 - x0)),
                              "height": pt(abs(y1 - y0)), **style})

    def line(self, x0: float, y0: float, x1: float, y1: float, **style) -> None:
        self.element("line", {"x1": pt(x0), "y1": pt(y0), "x2": pt(x1), "y2": pt(y1), **style})

    def polygon(self, pts, **style) -> None:
        self.element("polygon", {"points": points(pts), **style})

    def polyline(self, pts, **style) -> None:
        self.element("polyline", {"points": points(pts), "fill": "none", **style})

    def circle(self, x: float, y: float, r_pt: float, **style) -> None:
        self.element("circle", {"cx": pt(x), "cy": pt(y), "r": float(r_pt), **style})

    def text(self, item, *, rotate: bool = False) -> None:
        """A layout :class:`~metaanalysis.plots.forest.TextItem`: anchored at ``item.x`` as its
        ``ha`` says, its vertical centre at ``item.y`` (baseline half an 'l' below), set
        upright or, with ``rotate``, turned 90° counter-clockwise about that point."""
        shift = face_metrics(item.bold).baseline_shift * item.size / _PT
        x, y = item.x, item.y
        attrs = {"x": pt(x), "y": pt(y + shift), "font_size": float(item.size),
                 "text_anchor": _ANCHOR[item.ha] if item.ha != "left" else None,
                 "font_weight": "bold" if item.bold else None, "fill": item.color}
        if rotate:
            attrs["transform"] = f"rotate(-90 {pt(x)} {pt(y)})"
        self.element("text", attrs, _XML_INVALID.sub("\ufffd", item.text))

    def to_bytes(self) -> bytes:
        w, h = pt(self.width), pt(self.height)
        root = {"xmlns": "http://www.w3.org/2000/svg", "version": "1.1", "width": f"{w}pt",
                "height": f"{h}pt", "viewBox": f"0 0 {w} {h}", "style": _ROOT_STYLE,
                "font_family": f"{FONT_CSS_FAMILY}, {FONT_FAMILY}, sans-serif",
                "text_rendering": "geometricPrecision"}
        head = f"<svg{_attrs(root)}>"
        return "\n".join([head, f'<rect fill="#ffffff" height="{h}" width="{w}" x="0" y="0"/>',
                          *self._parts, "</svg>", ""]).encode("utf-8")
