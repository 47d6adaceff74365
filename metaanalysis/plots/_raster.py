"""A small raster writer with the :class:`~metaanalysis.plots._svg.SvgWriter` drawing calls, so a
PNG is painted by the same code, in the same order, from the same layout as the SVG.

Pillow (a required dependency of matplotlib, so installed with it; not listed separately) draws
rectangles, lines and polygons on a canvas ``SUPERSAMPLE`` times the target resolution, which is
then averaged down (box filter: anti-aliased edges); text is set by FreeType in the shipped DejaVu
Sans subset (the font the layouts measured), anchored on its baseline exactly where the SVG puts
it. Importing Pillow costs ~10 ms, against ~0.4 s for matplotlib, which is why the report can
afford a PNG of every forest plot.

The PNG carries only IHDR, PLTE, pHYs (the dpi), IDAT and IEND: no time or text chunk, so
identical layouts give identical bytes (W3C, "Portable Network Graphics (PNG) Specification
(Second Edition)", 2003, sections 11.3.5.3 pHYs and 11.3.6.1 tIME).
"""

from __future__ import annotations

import io
from functools import lru_cache

from ._svg import FONT_FILES
from ._text import FONT_DIR, face_metrics

__all__ = ["RasterWriter", "SUPERSAMPLE", "PALETTE"]

#: Canvas resolution / output resolution: 2 gives smooth diagonal edges at a fraction of the cost of 4.
SUPERSAMPLE = 2
#: Colours of the PNG's palette (octree quantisation, no dithering: deterministic).
PALETTE = 128
_PT = 72.0
_ANCHOR = {"left": "ls", "center": "ms", "right": "rs"}


@lru_cache(maxsize=64)
def _font(bold: bool, px: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT_DIR / FONT_FILES["bold" if bold else "normal"]), px)


class RasterWriter:
    """A ``width`` x ``height`` inch page at ``dpi`` dots per inch (white background).

    Coordinates are inches (origin top-left, y down) and stroke widths points, as for
    :class:`~metaanalysis.plots._svg.SvgWriter`.
    """

    def __init__(self, width: float, height: float, dpi: int):
        from PIL import Image, ImageDraw

        self.dpi, self.scale = dpi, dpi * SUPERSAMPLE  # canvas pixels per inch
        self.size = (max(1, round(width * dpi)), max(1, round(height * dpi)))
        self.image = Image.new("RGB", (self.size[0] * SUPERSAMPLE, self.size[1] * SUPERSAMPLE), "#ffffff")
        self.draw = ImageDraw.Draw(self.image)

    def _px(self, v: float) -> float:
        return v * self.scale

    def _width(self, stroke_width_pt: float) -> int:
        return max(1, round(stroke_width_pt / _PT * self.scale))

    def rect(self, x0: float, y0: float, x1: float, y1: float, *, fill: str | None = None,
             stroke: str | None = None, stroke_width: float = 1.0) -> None:
        """Rectangle between two corners; a stroke is centred on the edge (as in SVG)."""
        half = stroke_width / _PT / 2 if stroke else 0.0
        box = [self._px(min(x0, x1) - half), self._px(min(y0, y1) - half),
               self._px(max(x0, x1) + half), self._px(max(y0, y1) + half)]
        self.draw.rectangle(box, fill=fill, outline=stroke, width=self._width(stroke_width) if stroke else 0)

    def line(self, x0: float, y0: float, x1: float, y1: float, *, stroke: str, stroke_width: float = 1.0,
             stroke_linecap: str = "butt") -> None:
        """A straight line; ``stroke_linecap="square"`` extends both ends by half the width."""
        if stroke_linecap == "square":
            length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
            if length > 0:
                ext = stroke_width / _PT / 2 / length
                dx, dy = (x1 - x0) * ext, (y1 - y0) * ext
                x0, y0, x1, y1 = x0 - dx, y0 - dy, x1 + dx, y1 + dy
        self.draw.line([self._px(x0), self._px(y0), self._px(x1), self._px(y1)], fill=stroke,
                       width=self._width(stroke_width))

    def polygon(self, pts, *, fill: str | None = None, stroke: str | None = None,
                stroke_width: float = 1.0) -> None:
        xy = [(self._px(x), self._px(y)) for x, y in pts]
        self.draw.polygon(xy, fill=fill, outline=stroke, width=self._width(stroke_width) if stroke else 0)

    def text(self, item, *, rotate: bool = False) -> None:
        """A layout text item: anchored at ``item.x`` as ``item.ha`` says, its baseline where the
        SVG puts it (:meth:`SvgWriter.text`). Turned text is not drawn here (forest plots have none)."""
        if rotate:
            raise NotImplementedError("turned text: use the matplotlib PNG (funnel plots)")
        shift = face_metrics(item.bold).baseline_shift * item.size / _PT
        font = _font(bool(item.bold), max(1, round(item.size / _PT * self.scale)))
        self.draw.text((self._px(item.x), self._px(item.y + shift)), item.text, fill=item.color, font=font,
                       anchor=_ANCHOR[item.ha])

    def to_bytes(self) -> bytes:
        """The PNG: the canvas averaged down to the output size, reduced to a palette of at most
        :data:`PALETTE` colours (a plot has a few inks and their anti-aliased blends: a third of
        the RGB file's size and half its encoding time), ``dpi`` recorded in pHYs."""
        from PIL import Image

        img = self.image.reduce(SUPERSAMPLE) if SUPERSAMPLE > 1 else self.image
        if img.size != self.size:
            img = img.resize(self.size)
        img = img.quantize(colors=PALETTE, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        img.save(buf, format="PNG", dpi=(self.dpi, self.dpi), optimize=False, compress_level=6)
        return buf.getvalue()
