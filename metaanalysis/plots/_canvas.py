"""One figure painting, two canvases: the SVG writer or the Pillow raster writer.

A plot module paints its layout with one function, ``paint(layout, canvas)``, whose calls
(rect, line, text, clips, ...) both :class:`~metaanalysis.plots._svg.SvgWriter` and
:class:`~metaanalysis.plots._raster.RasterWriter` accept, so the PNG download is the same
drawing as the SVG (forestplot's layout-apart-from-drawing design).
"""

from __future__ import annotations

from typing import Any, Callable

from ._text import output_format, write_output

__all__ = ["render"]


def render(paint: Callable[[Any, Any], None], layout, path=None, format: str | None = None,
           dpi: int = 200, embed_font: bool = False) -> bytes:
    """Paint ``layout`` on the canvas of the requested format and return (and write) its bytes.

    Parameters
    ----------
    paint : callable
        ``paint(layout, canvas)``: the plot's drawing calls, in z-order.
    layout
        Anything with ``width`` and ``height`` (points) that ``paint`` reads.
    path, format, dpi, embed_font
        As for :func:`metaanalysis.plots.forest.render_forest` (the public entry points
        document them).

    Returns
    -------
    bytes
        Byte-identical for identical input; Pillow is imported only for PNG.
    """
    if output_format(path, format) == "svg":
        from ._svg import SvgWriter

        canvas = SvgWriter(layout.width, layout.height, embed_font=embed_font)
    else:
        from ._raster import RasterWriter

        canvas = RasterWriter(layout.width, layout.height, dpi)
    paint(layout, canvas)
    return write_output(canvas.to_bytes(), path)
