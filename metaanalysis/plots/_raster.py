"""A small raster writer with the :class:`~metaanalysis.plots._svg.SvgWriter` drawing calls, so a
PNG is painted by the same code, in the same order, from the same layout as the SVG.

Pillow paints on a canvas at the output resolution, each kind of mark the cheapest way that
still looks right at 150 dpi:

* axis-parallel rectangles and lines are snapped to whole pixels (crisp edges, as
  matplotlib's Agg snaps them);
* slanted or curved marks (diamonds, arrow heads, markers, slanted lines) are filled on a
  mask :data:`SUPERSAMPLE` times finer, only as large as the mark, and averaged down
  (anti-aliased edges);
* what a clip region holds (a funnel plot's contours and lines) is painted on a layer of the
  region :data:`LAYER_SUPERSAMPLE` times finer, averaged down and put in place: the layer's
  edge is the clip;
* text is set glyph by glyph at the positions the layout measured (the shipped metrics'
  advances and kerning, :meth:`~metaanalysis.plots._text.FaceMetrics.pen_positions`), each
  glyph rendered once by FreeType in the shipped DejaVu Sans subset and kept (per size,
  weight and quarter-pixel offset), its baseline on a whole pixel; turned text is set on its
  own line mask and turned by 90°.

Importing Pillow costs ~10 ms, against ~0.4 s for matplotlib. The palette is the image's own
most frequent colours (Heckbert 1982, "Color image quantization for frame buffer display",
SIGGRAPH '82, doi:10.1145/800064.801294: the popularity algorithm), ties broken by colour, so
equal canvases give equal palettes. The PNG carries only IHDR, PLTE, pHYs (the dpi), IDAT and
IEND: no time or text chunk, so identical layouts give identical bytes (W3C, "Portable Network
Graphics (PNG) Specification (Second Edition)", 2003, sections 11.3.5.3 pHYs and 11.3.6.1 tIME).
"""

from __future__ import annotations

import io
import math
import threading
from functools import lru_cache

from ._svg import FONT_FILES
from ._text import FONT_DIR, face_metrics

__all__ = ["RasterWriter", "SUPERSAMPLE", "LAYER_SUPERSAMPLE", "PALETTE", "COMPRESS_LEVEL"]

#: Mask resolution / output resolution for a slanted or curved mark (4 x 4 samples per pixel).
SUPERSAMPLE = 4
#: Layer resolution / output resolution inside a clip region (large areas: 3 x 3 samples).
LAYER_SUPERSAMPLE = 3
#: Most colours of the PNG's palette.
PALETTE = 256
#: zlib level of the PNG: 4 writes files ~5-6 % larger than the default 6 in two thirds of its
#: time (and ~10 % smaller than 3; 9 takes eight times as long for 5 % less).
COMPRESS_LEVEL = 4
#: Glyphs are placed to a quarter of a pixel (each glyph rendered at 4 offsets at most).
_PHASES = 4
_PT = 72.0


@lru_cache(maxsize=64)
def _font(bold: bool, px: float):
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT_DIR / FONT_FILES["bold" if bold else "normal"]), px,
                              layout_engine=ImageFont.Layout.BASIC)


@lru_cache(maxsize=8192)
def _glyph(bold: bool, px: float, cp: int, phase: int):
    """A glyph's coverage mask ("L" image) and where its top-left goes relative to the pen on
    the baseline, rendered with its pen ``phase / 4`` px right of a whole pixel; None if blank."""
    from PIL import Image, ImageDraw

    font, ch = _font(bold, px), chr(cp)
    left, top, right, bottom = font.getbbox(ch, anchor="ls")
    if right <= left or bottom <= top:
        return None
    mask = Image.new("L", (right - left + 2, bottom - top + 1), 0)
    ImageDraw.Draw(mask).text((-left + phase / _PHASES, -top), ch, fill=255, font=font, anchor="ls")
    return mask, left, top


def _dashes(pts, pattern):
    """Segments of the polyline ``pts`` (inches) that a dash ``pattern`` (on, off, ... lengths in
    inches; an odd list is repeated, as in SVG) leaves drawn, running on across the vertices. A
    pattern SVG ignores (a negative length, or all zero) draws the line solid, as SVG does (W3C,
    "Scalable Vector Graphics (SVG) 1.1 (Second Edition)", 2011, section 11.4 stroke-dasharray)."""
    if not pattern or min(pattern) < 0 or sum(pattern) <= 0:
        return list(zip(pts, pts[1:]))
    if len(pattern) % 2:
        pattern = pattern * 2
    out, i, left = [], 0, pattern[0]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        seg = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while pos < seg:
            step = min(left, seg - pos)
            if i % 2 == 0 and step > 1e-9:  # not the float residue of a dash that ended here
                a, b = pos / seg, (pos + step) / seg
                out.append(((x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)))
            pos += step
            left -= step
            if left <= 1e-12:
                i = (i + 1) % len(pattern)
                left = pattern[i]
    return out


def _stroke_quad(x0, y0, x1, y1, half, ext=0.0):
    """The four corners of a straight stroke ``half`` wide each side, ``ext`` past both ends."""
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return None
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    x0, y0, x1, y1 = x0 - ux * ext, y0 - uy * ext, x1 + ux * ext, y1 + uy * ext
    nx, ny = -uy * half, ux * half
    return [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)]


class RasterWriter:
    """A ``width`` x ``height`` inch page at ``dpi`` dots per inch (white background).

    Coordinates are inches (origin top-left, y down) and stroke widths points, as for
    :class:`~metaanalysis.plots._svg.SvgWriter`.
    """

    def __init__(self, width: float, height: float, dpi: int):
        from PIL import Image, ImageDraw

        self.dpi = dpi
        self.size = (max(1, round(width * dpi)), max(1, round(height * dpi)))
        self.image = Image.new("RGB", self.size, "#ffffff")
        self.draw = ImageDraw.Draw(self.image)
        self._layer = None  # (image, draw, (X0, Y0)) while a clip region is open

    # --- geometry helpers -------------------------------------------------------------------

    def _snap(self, v: float) -> int:
        return round(v * self.dpi)

    def _fill_shape(self, color: str, bbox, paint) -> None:
        """Anti-aliased ``paint(draw, ink, xy)`` in ``color``: inside a clip region on its layer (``ink``
        the colour), else on a :data:`SUPERSAMPLE` mask over ``bbox`` (inches; ``ink`` 255, the mask
        then painted in ``color``). ``xy(x, y)`` maps inches to the drawing's pixels."""
        from PIL import Image, ImageDraw

        if self._layer is not None:
            layer_draw, (X0, Y0), s = self._layer[1], self._layer[2], LAYER_SUPERSAMPLE
            paint(layer_draw, color, lambda x, y: ((x * self.dpi - X0) * s, (y * self.dpi - Y0) * s))
            return
        s = SUPERSAMPLE
        X0, Y0 = math.floor(bbox[0] * self.dpi) - 1, math.floor(bbox[1] * self.dpi) - 1
        X1, Y1 = math.ceil(bbox[2] * self.dpi) + 1, math.ceil(bbox[3] * self.dpi) + 1
        mask = Image.new("L", ((X1 - X0) * s, (Y1 - Y0) * s), 0)
        paint(ImageDraw.Draw(mask), 255, lambda x, y: ((x * self.dpi - X0) * s, (y * self.dpi - Y0) * s))
        self.draw.bitmap((X0, Y0), mask.reduce(s), fill=color)

    def _fill_polygon(self, pts, color: str) -> None:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        self._fill_shape(color, (min(xs), min(ys), max(xs), max(ys)),
                         lambda d, ink, xy: d.polygon([xy(x, y) for x, y in pts], fill=ink))

    def _fill_ring(self, x: float, y: float, r0: float, r1: float, color: str) -> None:
        """The disc of radius ``r1`` (inches) around (x, y) less the disc of radius ``r0``."""
        def paint(d, ink, xy):
            d.ellipse([*xy(x - r1, y - r1), *xy(x + r1, y + r1)], fill=ink)
            if r0 > 0:
                d.ellipse([*xy(x - r0, y - r0), *xy(x + r0, y + r0)], fill=0)  # on a mask only

        if r0 > 0 and self._layer is not None:
            raise NotImplementedError("stroked markers inside a clip region")
        self._fill_shape(color, (x - r1, y - r1, x + r1, y + r1), paint)

    def _axis_rect(self, x0: float, y0: float, x1: float, y1: float, color: str) -> None:
        """An axis-parallel filled rectangle snapped to whole pixels (at least one pixel)."""
        X0, X1 = sorted((self._snap(x0), self._snap(x1)))
        Y0, Y1 = sorted((self._snap(y0), self._snap(y1)))
        self.draw.rectangle([X0, Y0, max(X1, X0 + 1) - 1, max(Y1, Y0 + 1) - 1], fill=color)

    def _stroke_px(self, stroke_width: float) -> int:
        return max(1, round(stroke_width / _PT * self.dpi))

    # --- the SvgWriter calls ------------------------------------------------------------------

    def begin_clip(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Marks until :meth:`end_clip` are painted only inside this rectangle (inches)."""
        from PIL import Image, ImageDraw

        X0, Y0, X1, Y1 = self._snap(x0), self._snap(y0), self._snap(x1), self._snap(y1)
        s = LAYER_SUPERSAMPLE
        layer = self.image.crop((X0, Y0, X1, Y1)).resize(((X1 - X0) * s, (Y1 - Y0) * s), Image.Resampling.NEAREST)
        self._layer = (layer, ImageDraw.Draw(layer), (X0, Y0))

    def end_clip(self) -> None:
        layer, _draw, origin = self._layer
        self._layer = None
        self.image.paste(layer.reduce(LAYER_SUPERSAMPLE), origin)

    def rect(self, x0: float, y0: float, x1: float, y1: float, *, fill: str | None = None,
             stroke: str | None = None, stroke_width: float = 1.0) -> None:
        """Rectangle between two corners; a stroke is centred on the edge (as in SVG)."""
        if self._layer is not None:
            pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            if fill:
                self._fill_polygon(pts, fill)
            if stroke:
                for a, b in zip(pts, pts[1:] + pts[:1]):
                    self.line(*a, *b, stroke=stroke, stroke_width=stroke_width, stroke_linecap="square")
            return
        if fill:
            self._axis_rect(x0, y0, x1, y1, fill)
        if stroke:
            w = self._stroke_px(stroke_width)
            X0, X1 = sorted((self._snap(x0), self._snap(x1)))
            Y0, Y1 = sorted((self._snap(y0), self._snap(y1)))
            lo = w // 2  # the stroke straddles the edge: lo pixels outside, w - lo inside
            self.draw.rectangle([X0 - lo, Y0 - lo, X1 - lo + w - 1, Y1 - lo + w - 1], outline=stroke, width=w)

    def line(self, x0: float, y0: float, x1: float, y1: float, *, stroke: str, stroke_width: float = 1.0,
             stroke_linecap: str = "butt", stroke_dasharray: str | None = None) -> None:
        """A straight line; ``stroke_linecap="square"`` extends both ends by half the width."""
        self.polyline([(x0, y0), (x1, y1)], stroke=stroke, stroke_width=stroke_width,
                      stroke_linecap=stroke_linecap, stroke_dasharray=stroke_dasharray)

    def polyline(self, pts, *, stroke: str, stroke_width: float = 1.0, stroke_linecap: str = "butt",
                 stroke_dasharray: str | None = None, fill: str | None = None) -> None:
        """An open polyline, solid or dashed (``stroke_dasharray`` in points, as in SVG)."""
        half = stroke_width / _PT / 2
        ext = half if stroke_linecap == "square" else 0.0
        segs = list(zip(pts, pts[1:]))
        if stroke_dasharray:
            segs = _dashes(list(pts), [float(v) / _PT for v in stroke_dasharray.split()])
        for (ax, ay), (bx, by) in segs:
            if self._layer is None and (ax == bx or ay == by):
                w = self._stroke_px(stroke_width)
                if ay == by:
                    X0, X1 = sorted((self._snap(min(ax, bx) - ext), self._snap(max(ax, bx) + ext)))
                    Y0 = round(ay * self.dpi - w / 2)
                    self.draw.rectangle([X0, Y0, max(X1, X0 + 1) - 1, Y0 + w - 1], fill=stroke)
                else:
                    Y0, Y1 = sorted((self._snap(min(ay, by) - ext), self._snap(max(ay, by) + ext)))
                    X0 = round(ax * self.dpi - w / 2)
                    self.draw.rectangle([X0, Y0, X0 + w - 1, max(Y1, Y0 + 1) - 1], fill=stroke)
                continue
            quad = _stroke_quad(ax, ay, bx, by, half, ext)
            if quad is not None:
                self._fill_polygon(quad, stroke)

    def polygon(self, pts, *, fill: str | None = None, stroke: str | None = None,
                stroke_width: float = 1.0) -> None:
        if fill:
            self._fill_polygon(list(pts), fill)
        if stroke:
            ring = list(pts) + [pts[0]]
            for a, b in zip(ring, ring[1:]):
                self.line(*a, *b, stroke=stroke, stroke_width=stroke_width, stroke_linecap="square")

    def circle(self, x: float, y: float, r_pt: float, *, fill: str | None = None, stroke: str | None = None,
               stroke_width: float = 1.0) -> None:
        """A disc of radius ``r_pt`` points; a stroke is centred on its edge (as in SVG)."""
        r, half = r_pt / _PT, (stroke_width / _PT / 2 if stroke else 0.0)
        if fill:
            self._fill_ring(x, y, 0.0, r, fill)
        if stroke:
            self._fill_ring(x, y, r - half, r + half, stroke)

    def text(self, item, *, rotate: bool = False) -> None:
        """A layout text item: anchored at ``item.x`` as ``item.ha`` says, its baseline where the
        SVG puts it (:meth:`SvgWriter.text`), each glyph where the layout's metrics put it;
        ``rotate``: turned 90° counter-clockwise about (``item.x``, ``item.y``)."""
        if self._layer is not None:
            raise NotImplementedError("text inside a clip region")
        fm = face_metrics(item.bold)
        cps, offsets, width = fm.pen_positions(item.text, item.size)
        px = item.size / _PT * self.dpi
        shift = fm.baseline_shift * item.size / _PT
        start = {"left": 0.0, "center": -width / 2, "right": -width}[item.ha] / _PT * self.dpi
        if rotate:
            self._turned_text(item, cps, [start + o / _PT * self.dpi for o in offsets], px, shift)
            return
        x0, base = item.x * self.dpi + start, round((item.y + shift) * self.dpi)
        scale, bold, bitmap, color = self.dpi / _PT, bool(item.bold), self.draw.bitmap, item.color
        for cp, off in zip(cps, offsets):
            pen = x0 + off * scale
            ix = math.floor(pen)
            phase = round((pen - ix) * _PHASES)
            g = _glyph(bold, px, cp, phase % _PHASES)
            if g is not None:
                bitmap((ix + phase // _PHASES + g[1], base + g[2]), g[0], fill=color)

    def _turned_text(self, item, cps, pens, px: float, shift: float) -> None:
        """Set a line on its own mask (pen positions in px from the anchor), turn it 90°
        counter-clockwise about the item's (x, y) and paint it."""
        from PIL import Image

        font = _font(bool(item.bold), px)
        _l, top, _r, bottom = font.getbbox("Ág", anchor="ls")
        lo = math.floor(min(pens, default=0.0)) - 2
        hi = math.ceil(max(pens, default=0.0) + px * 2) + 2
        base = -top + 1
        line = Image.new("L", (hi - lo, bottom - top + 2), 0)
        for cp, pen in zip(cps, pens):
            ix = math.floor(pen)
            phase = round((pen - ix) * _PHASES)
            g = _glyph(bool(item.bold), px, cp, phase % _PHASES)
            if g is not None:
                line.paste(255, (ix + phase // _PHASES + g[1] - lo, base + g[2]), g[0])
        turned = line.transpose(Image.Transpose.ROTATE_90)
        # a mask pixel (u, v) is (u + lo, v - base) from the pen origin on the baseline, which
        # lies ``shift`` below the centre (x, y); turning maps an offset (dx, dy) from the
        # centre to (dy, -dx), and ROTATE_90 puts (u, v) at (v, width - 1 - u)
        cx, cy = item.x * self.dpi, item.y * self.dpi
        ox = round(cx + shift * self.dpi - base)
        oy = round(cy - lo - line.width + 1)
        self.draw.bitmap((ox, oy), turned, fill=item.color)

    def to_bytes(self) -> bytes:
        """The PNG: the canvas as a palette image (:func:`palette_image`), ``dpi`` recorded in pHYs."""
        buf = io.BytesIO()
        palette_image(self.image).save(buf, format="PNG", dpi=(self.dpi, self.dpi), optimize=False,
                                       compress_level=COMPRESS_LEVEL)
        return buf.getvalue()


_LOCAL = threading.local()


def _lookup_table():
    """This thread's 16 MiB colour -> palette index table, kept between images (making a new one
    costs more than the rest of the lookup); entries left from an earlier image are never read."""
    import numpy as np

    lut = getattr(_LOCAL, "lut", None)
    if lut is None:
        lut = _LOCAL.lut = np.zeros(1 << 24, dtype=np.uint8)
    return lut


def palette_image(img):
    """An RGB image as a palette ("P") image of its :data:`PALETTE` most frequent colours, ties
    broken by colour: those stay exact (the white page, the inks), a rarer colour (an
    anti-aliased blend) becomes the nearest of them in RGB. A plot has a few inks and their
    blends, so this loses nothing visible and writes a third of the RGB file's size.

    Pillow's own mapping onto a given palette goes through a cache of 6-bit colour cells, which
    turns the white page into (251, 251, 251); this one is exact, by a lookup table indexed by
    the 24-bit colour (only the pages of the table the image's colours touch are written; one
    table per thread, reused).
    """
    import numpy as np
    from PIL import Image

    colors = img.getcolors(1 << 16)
    if colors is None:  # not a plot's colours: octree quantisation
        return img.quantize(colors=PALETTE, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    ranked = [rgb for _n, rgb in sorted(colors, key=lambda c: (-c[0], c[1]))]
    pal = np.array(ranked[:PALETTE], dtype=np.int32).reshape(-1, 3)
    index = np.arange(len(ranked), dtype=np.int64)
    if len(ranked) > PALETTE:  # the rarer colours: the nearest palette colour
        rare = np.array(ranked[PALETTE:], dtype=np.int32)
        index[PALETTE:] = ((rare[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    every = np.array(ranked, dtype=np.int64)
    lut = _lookup_table()
    lut[every[:, 0] | every[:, 1] << 8 | every[:, 2] << 16] = index  # every colour read below is set here
    # each pixel's 24-bit colour: its three bytes read as a little-endian 32-bit word (the 4th
    # byte, the next pixel's red, masked off), without a copy per channel
    raw = img.tobytes() + b"\0"
    keys = np.ndarray(shape=(img.size[0] * img.size[1],), dtype="<u4", buffer=raw, strides=(3,)) & 0xFFFFFF
    out = Image.frombytes("P", img.size, np.take(lut, keys).tobytes())
    out.putpalette(pal.astype(np.uint8).tobytes())
    return out
