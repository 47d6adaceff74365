"""Layouts of the narrative figures (albatross plot, proportions plot), tested without drawing.

Geometry only: no two texts overlap, marks lie in the panel where the axis says, texts stay on
the page, the page fits a 390 px phone (3.81 in of content: 390 px minus the 12 px page padding
each side, at 96 px per inch), and the SVG is deterministic with text as <text>.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaanalysis.plots import (AlbatrossMark, AlbatrossSpec, ProportionRow, ProportionSpec, layout_albatross,
                                layout_proportions, render_albatross, render_proportions)

PHONE_CONTENT_IN = (390 - 2 * 12) / 96   # style.css: .wrap padding 12px under 700px


def _no_overlap(texts):
    boxes = [t.bbox for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] - 1e-9 and b[0] < a[2] - 1e-9 and a[1] < b[3] - 1e-9 and b[1] < a[3] - 1e-9), \
                (a, b, [t.text for t in texts if t.bbox in (a, b)])


def _on_page(layout):
    for t in layout.texts:
        x0, y0, x1, y1 = t.bbox
        assert -1e-9 <= x0 and x1 <= layout.width + 1e-9 and -1e-9 <= y0 and y1 <= layout.height + 1e-9, t


# the shipped Flatiron results (trials/registry.csv): n, two-sided p, bound
FLATIRON = (AlbatrossMark("1", 307, 1e-4, 1, True), AlbatrossMark("2", 66, 0.0172, 1),
            AlbatrossMark("3", 241, 1e-4, 1, True), AlbatrossMark("4", 307, 1e-4, 1, True))


def test_albatross_places_p_values_by_direction_and_sample_size():
    lay = layout_albatross(AlbatrossSpec(marks=FLATIRON, key=("1 · a", "2 · b", "3 · c", "4 · d")))
    x0, y0, x1, y1 = lay.panel
    centre = (x0 + x1) / 2
    per_decade = (x1 - x0) / (2 * lay.xlim)
    for m, (x, y) in zip(FLATIRON, lay.dots):
        assert x == pytest.approx(centre + m.side * -math.log10(m.p) * per_decade)     # log10 p, by side
        assert x0 < x < x1 and y0 < y < y1
    assert lay.dots[0] == lay.dots[3]                  # same n and p: same place ...
    marks = [t.text for t in lay.texts if t.role == "mark"]
    assert sorted(marks) == ["1, 4", "2", "3"]         # ... and one label
    # bigger samples higher up (log scale)
    assert lay.dots[0][1] < lay.dots[2][1] < lay.dots[1][1]
    # bounds: an arrow outwards (to smaller p) from three dots, inside the panel
    assert len(lay.arrows) == 3 and all(xb > xa and xb < x1 for xa, _, xb in lay.arrows)
    # p = 0.05 guides symmetric about the centre
    alpha = sorted(x for x, s in lay.guides if s == "alpha")
    assert alpha[0] - x0 == pytest.approx(x1 - alpha[1]) and [s for _, s in lay.guides].count("null") == 1
    ticks = [t.text for t in lay.texts if t.role == "tick" and t.y > y1]
    assert ticks == ["0.0001", "0.01", "1", "0.01", "0.0001"]
    _no_overlap(lay.texts)
    _on_page(lay)
    assert lay.width <= PHONE_CONTENT_IN


def test_albatross_harm_side_and_no_arrow_without_bound():
    lay = layout_albatross(AlbatrossSpec(marks=(AlbatrossMark("1", 40, 0.2, -1), AlbatrossMark("2", 900, 0.003, 1))))
    centre = (lay.panel[0] + lay.panel[2]) / 2
    assert lay.dots[0][0] < centre < lay.dots[1][0] and lay.arrows == ()
    assert lay.xlim == 3.5                   # smallest p 0.003: 3 decades, half a decade of room
    _no_overlap(lay.texts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(5, 20000), st.floats(1e-8, 1.0), st.sampled_from([-1, 1]), st.booleans()),
                min_size=1, max_size=8))
def test_albatross_texts_never_overlap(marks):
    spec = AlbatrossSpec(marks=tuple(AlbatrossMark(str(i + 1), n, p, s, b) for i, (n, p, s, b) in enumerate(marks)),
                         key=tuple(f"{i + 1} · a study with a long label that has to wrap (n = {n})"
                                   for i, (n, _, _, _) in enumerate(marks)))
    lay = layout_albatross(spec)
    _no_overlap([t for t in lay.texts if t.role != "mark"])     # numbers may sit over the panel's dots
    _no_overlap([t for t in lay.texts if t.role == "mark"])
    x0, y0, x1, y1 = lay.panel
    assert all(x0 <= x <= x1 and y0 - 1e-9 <= y <= y1 + 1e-9 for x, y in lay.dots)
    assert all(x0 <= xb - 0.05 and xb + 0.05 <= x1 for _, _, xb in lay.arrows)       # with the arrow's head


def test_albatross_refuses_bad_marks():
    for bad in (AlbatrossMark("1", 10, 0.0, 1), AlbatrossMark("1", 10, 1.5, 1), AlbatrossMark("1", 0, 0.1, 1),
                AlbatrossMark("1", 10, 0.1, 0)):
        with pytest.raises(ValueError):
            layout_albatross(AlbatrossSpec(marks=(bad,)))
    with pytest.raises(ValueError):
        layout_albatross(AlbatrossSpec(marks=()))


SINGLE_ARM = (ProportionRow("GCTB-PH2 (Thomas 2010): tumour response", 0.86, 0.6974, 0.9519, "exact",
                            "30/35 · 86% (95% CI 70–95%, exact)"),
              ProportionRow("AOST1321 (Children's Oncology Group (AOST1321 investigators) 2021): ORR, osteosarcoma",
                            0.0, 0.0, 0.218, "exact", "0/15 · 0% (95% CI 0–22%, exact)"),
              ProportionRow("A reported interval", 0.5, 0.3, 0.7, "reported", "50% (95% CI 30–70%, as reported)"),
              ProportionRow("No interval", 0.56, None, None, "none", "56%, no CI"))


def test_proportions_put_dots_and_intervals_on_the_percent_axis():
    lay = layout_proportions(ProportionSpec(rows=SINGLE_ARM))
    x0, y0, x1, y1 = lay.panel
    assert lay.tick_x[0] == pytest.approx(x0) and lay.tick_x[-1] == pytest.approx(x1)
    for r, (x, y, style) in zip(SINGLE_ARM, lay.marks):
        assert x == pytest.approx(x0 + r.estimate * (x1 - x0)) and style == r.style and y0 < y < y1
    assert len(lay.intervals) == 3                      # the row without a CI has none
    for (a, b, y), r in zip(lay.intervals, SINGLE_ARM):
        assert a == pytest.approx(x0 + r.lower * (x1 - x0)) and b == pytest.approx(x0 + r.upper * (x1 - x0))
    # each row's label runs above its interval: the grid never crosses a label
    labels = [t for t in lay.texts if t.role == "label"]
    for g0, g1 in lay.grid:
        assert not any(t.bbox[1] < g1 - 1e-9 and g0 < t.bbox[3] - 1e-9 and t.bbox[2] > x0 for t in labels)
    assert [t.text for t in lay.texts if t.role == "tick"] == ["0%", "25%", "50%", "75%", "100%"]
    _no_overlap(lay.texts)
    _on_page(lay)
    assert lay.width <= PHONE_CONTENT_IN
    assert lay.bands == tuple(sorted(lay.bands)) and len(lay.bands) == 2       # every other row shaded


def test_proportions_refuse_bad_rows():
    for bad in (ProportionRow("x", 1.2), ProportionRow("x", 0.5, 0.2, None), ProportionRow("x", 0.5, style="odd")):
        with pytest.raises(ValueError):
            layout_proportions(ProportionSpec(rows=(bad,)))


def test_narrative_svgs_are_deterministic_text_as_text():
    a = render_albatross(layout_albatross(AlbatrossSpec(marks=FLATIRON, key=("1 · ORR",))))
    p = render_proportions(layout_proportions(ProportionSpec(rows=SINGLE_ARM)))
    assert a == render_albatross(layout_albatross(AlbatrossSpec(marks=FLATIRON, key=("1 · ORR",))))
    assert p == render_proportions(layout_proportions(ProportionSpec(rows=SINGLE_ARM)))
    assert b">1, 4</text>" in a and b">0.0001</text>" in a and a.count(b"<circle") == 4
    assert b">100%</text>" in p and p.count(b"<circle") == 3 and b"@font-face" not in p
    assert b"@font-face" in render_proportions(layout_proportions(ProportionSpec(rows=SINGLE_ARM)), embed_font=True)
