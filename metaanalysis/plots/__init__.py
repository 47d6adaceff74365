"""Forest, funnel, albatross and proportion plots: layouts computed (and tested) apart from drawing.

``layout_forest(ForestSpec) -> ForestLayout`` and ``render_forest(layout, path=None,
format=None, dpi=200) -> bytes``; ``layout_funnel(FunnelSpec) -> FunnelLayout`` and
``render_funnel(...)``; ``funnel_allowed(k, min_k=10)``; ``layout_albatross(AlbatrossSpec)`` and
``layout_proportions(ProportionSpec)`` for evidence that is not pooled, each with its ``render_``.
SVG is written directly (text as ``<text>`` in the shipped DejaVu Sans subset, declared by
``font_face_css()``); a PNG is the same painting on a Pillow canvas (``_raster``). Nothing here
imports matplotlib.
"""

from .forest import (ForestLayout, ForestRow, ForestSpec, SubgroupBlock, SubgroupTest,
                     forest_rows_from_result, heterogeneity_text, layout_forest, render_forest)
from .funnel import (FunnelFrame, FunnelLayout, FunnelSpec, funnel_allowed, funnel_frame,
                     layout_funnel, render_funnel)
from .albatross import AlbatrossLayout, AlbatrossMark, AlbatrossSpec, layout_albatross, render_albatross
from .proportions import ProportionLayout, ProportionRow, ProportionSpec, layout_proportions, render_proportions
from ._svg import FONT_CSS_FAMILY, font_face_css

__all__ = [
    "ForestLayout", "ForestRow", "ForestSpec", "SubgroupBlock", "SubgroupTest",
    "forest_rows_from_result", "heterogeneity_text", "layout_forest", "render_forest",
    "FunnelFrame", "FunnelLayout", "FunnelSpec", "funnel_allowed", "funnel_frame", "layout_funnel",
    "render_funnel", "AlbatrossLayout", "AlbatrossMark", "AlbatrossSpec", "layout_albatross",
    "render_albatross", "ProportionLayout", "ProportionRow", "ProportionSpec", "layout_proportions",
    "render_proportions", "FONT_CSS_FAMILY", "font_face_css",
]
