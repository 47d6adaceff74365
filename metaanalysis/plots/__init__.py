"""Forest and funnel plots: layouts computed (and tested) apart from drawing.

``layout_forest(ForestSpec) -> ForestLayout`` and ``render_forest(layout, path=None,
format=None, dpi=200) -> bytes``; ``layout_funnel(FunnelSpec) -> FunnelLayout`` and
``render_funnel(...)``; ``funnel_allowed(k, min_k=10)``.
"""

from .forest import (ForestLayout, ForestRow, ForestSpec, SubgroupBlock, SubgroupTest,
                     forest_rows_from_result, heterogeneity_text, layout_forest, render_forest)
from .funnel import FunnelLayout, FunnelSpec, funnel_allowed, layout_funnel, render_funnel

__all__ = [
    "ForestLayout", "ForestRow", "ForestSpec", "SubgroupBlock", "SubgroupTest",
    "forest_rows_from_result", "heterogeneity_text", "layout_forest", "render_forest",
    "FunnelLayout", "FunnelSpec", "funnel_allowed", "layout_funnel", "render_funnel",
]
