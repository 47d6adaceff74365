"""Synthesis of a narrative section's results without pooling them (SWiM, Campbell et al. 2020).

:func:`synthesise` turns a plan's ``[[narrative]]`` section into a :class:`NarrativeSynthesis`:
each result's effect direction (read from its estimate, or declared by the plan for a bare
p-value), the points of an albatross plot (p-value, sample size, direction; Harrison et al. 2017,
doi:10.1002/jrsm.1239), a sign test on effect direction per outcome over independent patient sets
(Hilton Boon & Thomson 2021, doi:10.1002/jrsm.1458) and single-group proportions with exact
Clopper-Pearson CIs where the registry holds the counts. Numbers, row ids and codes of
:mod:`metaanalysis.vocab` only; the sentences are :mod:`metaanalysis.render.words`'.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import cells, vocab
from .registry import favoured_below_null
from .synthesis import clopper_pearson, sign_test, sign_test_min_n, sign_test_min_p
from .table import identity_key
from .vocab import EffectDirection, IntervalSource, NarrativeFigure, SignTestNote

__all__ = ["NarrativeSynthesis", "AlbatrossPoint", "SignTestResult", "DirectionUnit", "ProportionPoint",
           "synthesise"]


@dataclass(frozen=True)
class AlbatrossPoint:
    """One p-value of an albatross plot: two-sided ``p`` (the bound when ``bound``), total ``n``."""

    row_id: str
    endpoint: str
    patient_set: str
    n: int
    p: float
    bound: bool                   # p was reported as "p < x": the true p is smaller
    direction: EffectDirection    # BENEFIT or HARM


@dataclass(frozen=True)
class DirectionUnit:
    """One independent unit of a sign test: the results of one patient set on one outcome."""

    patient_set: str
    rows: tuple[str, ...]
    direction: EffectDirection    # all rows agree, else MIXED


@dataclass(frozen=True)
class SignTestResult:
    """Sign test on effect direction for one outcome (endpoint), over independent patient sets.

    ``n`` units have a direction (benefit or harm), ``k`` of them benefit. ``pvalue`` is the
    exact two-sided p (None when ``note`` says why the test was not run); ``min_p`` is the
    smallest p ``n`` units could give, ``min_n`` the fewest units that could reach
    :data:`vocab.SIGN_TEST_ALPHA`.
    """

    endpoint: str
    units: tuple[DirectionUnit, ...]
    n: int
    k: int
    pvalue: float | None
    min_p: float | None
    min_n: int
    note: SignTestNote | None


@dataclass(frozen=True)
class ProportionPoint:
    """A single-group proportion with its interval at the plan's level (``source`` says whence)."""

    row_id: str
    estimate: float
    lower: float | None
    upper: float | None
    source: IntervalSource
    events: int | None
    n: int | None


@dataclass(frozen=True)
class NarrativeSynthesis:
    """What a narrative section's figures and direction synthesis show."""

    figures: tuple[NarrativeFigure, ...]
    directions: tuple[tuple[str, EffectDirection], ...]   # (row id, direction) of rows with one
    albatross: tuple[AlbatrossPoint, ...]
    albatross_omitted: tuple[str, ...]     # p-value-only rows without n or direction
    undrawn: tuple[str, ...]               # rows of the section in no figure
    sign_tests: tuple[SignTestResult, ...]
    proportions: tuple[ProportionPoint, ...]


def _row(registry, rid: str) -> dict:
    return registry.df.loc[registry.df["row_id"].astype(str) == rid].iloc[0].to_dict()


def _estimate_direction(r: dict) -> EffectDirection | None:
    """Direction of an effect row from its estimate and its ``direction`` text (None: no estimate)."""
    m, est = cells.text(r.get("measure")), cells.number(r.get("estimate"))
    if m not in vocab.EFFECT_MEASURES or est is None:
        return None
    null = vocab.measure(m).null
    if est == null:
        return EffectDirection.NONE
    arm = favoured_below_null(cells.text(r.get("direction")), cells.text(r.get("intervention")),
                              cells.text(r.get("comparator")))
    if arm is None:
        return None
    below_helps_intervention = arm == "intervention"
    return EffectDirection.BENEFIT if (est < null) == below_helps_intervention else EffectDirection.HARM


def _sample_size(r: dict) -> int | None:
    ns = [cells.integer(r.get(c)) for c in ("n_int", "n_ctl")]
    return sum(n for n in ns if n is not None) if ns[0] is not None else None


def _albatross(registry, rows: dict, directions: dict) -> tuple[list[AlbatrossPoint], list[str]]:
    """p-value-only rows as albatross points (two-sided p; a one-sided p doubled, Harrison 2017)."""
    points, omitted = [], []
    for rid, r in rows.items():
        if cells.text(r.get("measure")) != "PVAL":
            continue
        pv, n, d = registry.p_values.get(rid), _sample_size(r), directions.get(rid)
        if pv is None or pv.is_lower_bound or n is None or d not in (EffectDirection.BENEFIT, EffectDirection.HARM):
            omitted.append(rid)
            continue
        p2 = min(1.0, 2 * pv.value) if pv.sided == 1 else pv.value
        points.append(AlbatrossPoint(rid, cells.text(r.get("endpoint")), cells.text(r.get("patient_set")), n,
                                     p2, pv.is_upper_bound, d))
    return points, omitted


def _sign_test(endpoint: str, rows: dict, directions: dict) -> SignTestResult:
    """Sign test over the patient sets of one endpoint: several results of one patient set are one
    unit (not independent), its direction theirs when they agree, else mixed (left out)."""
    units: dict[str, list[str]] = {}
    for rid, r in rows.items():
        if cells.text(r.get("endpoint")) == endpoint and rid in directions:
            units.setdefault(identity_key(cells.text(r.get("patient_set"))), []).append(rid)
    out = []
    for rids in units.values():
        ds = {directions[rid] for rid in rids}
        out.append(DirectionUnit(cells.text(rows[rids[0]].get("patient_set")), tuple(rids),
                                 ds.pop() if len(ds) == 1 else EffectDirection.MIXED))
    n = sum(u.direction in (EffectDirection.BENEFIT, EffectDirection.HARM) for u in out)
    k = sum(u.direction is EffectDirection.BENEFIT for u in out)
    min_n = sign_test_min_n(vocab.SIGN_TEST_ALPHA)
    if n == 0:
        return SignTestResult(endpoint, tuple(out), 0, 0, None, None, min_n, SignTestNote.NO_DIRECTION)
    if n < min_n:
        return SignTestResult(endpoint, tuple(out), n, k, None, sign_test_min_p(n), min_n,
                              SignTestNote.TOO_FEW_INDEPENDENT)
    return SignTestResult(endpoint, tuple(out), n, k, sign_test(k, n), sign_test_min_p(n), min_n, None)


def _proportions(rows: dict, level: float) -> list[ProportionPoint]:
    """PROP rows: exact CI from the registry's counts, else the reported CI at ``level``, else none."""
    out = []
    for rid, r in rows.items():
        est = cells.number(r.get("estimate"))
        if cells.text(r.get("measure")) != "PROP" or est is None:
            continue
        x, n = cells.integer(r.get("events_int")), cells.integer(r.get("n_int"))
        lo, hi, lev = (cells.number(r.get(c)) for c in ("ci_lower", "ci_upper", "ci_level"))
        if x is not None and n is not None and n >= 1 and 0 <= x <= n:
            a, b = clopper_pearson(x, n, level)
            out.append(ProportionPoint(rid, est, float(a), float(b), IntervalSource.EXACT, x, n))
        elif lo is not None and hi is not None and lev == 100 * vocab.as_level(level):
            out.append(ProportionPoint(rid, est, lo, hi, IntervalSource.REPORTED, x, n))
        else:
            out.append(ProportionPoint(rid, est, None, None, IntervalSource.NONE, x, n))
    return out


def _forest_rows(rows: dict, level: float) -> list[str]:
    """Rows the side-by-side forest plot draws (:func:`metaanalysis.render.figures.narrative_forest_spec`):
    ratio estimates inside a CI reported at ``level``, of the section's most common such measure."""
    drawn = []
    for rid, r in rows.items():
        est, lo, hi, lev = (cells.number(r.get(c)) for c in ("estimate", "ci_lower", "ci_upper", "ci_level"))
        if cells.text(r.get("measure")) in vocab.RATIO_MEASURES and None not in (est, lo, hi) \
                and 0 < lo < est < hi and lev == 100 * vocab.as_level(level):
            drawn.append(rid)
    measures = [cells.text(rows[rid].get("measure")) for rid in drawn]
    if not measures:
        return []
    top = max(sorted(set(measures)), key=measures.count)
    return [rid for rid, m in zip(drawn, measures) if m == top]


def synthesise(registry, narrative, level: float = 0.95) -> NarrativeSynthesis:
    """The direction synthesis and figure data of one ``[[narrative]]`` section.

    Parameters
    ----------
    registry : metaanalysis.registry.Registry
    narrative : metaanalysis.plan.Narrative
    level : float
        Level of the proportions' exact CIs (the plan's default level).

    Returns
    -------
    NarrativeSynthesis
        Sign tests for each endpoint that has a p-value-only result with a direction (where no
        effect estimate allows any other synthesis; SWiM item 5).
    """
    rows = {rid: _row(registry, rid) for rid in narrative.rows}
    directions = {rid: d for rid, d in ((rid, _estimate_direction(r)) for rid, r in rows.items()) if d is not None}
    directions.update((dd.row, EffectDirection(dd.direction)) for dd in narrative.directions)
    points, omitted = _albatross(registry, rows, directions)
    endpoints = list(dict.fromkeys(p.endpoint for p in points))
    props = _proportions(rows, level)
    forest = _forest_rows(rows, level)
    with_ci = any(p.lower is not None for p in props)
    figures = [f for f, on in ((NarrativeFigure.FOREST, bool(forest)), (NarrativeFigure.ALBATROSS, bool(points)),
                               (NarrativeFigure.PROPORTIONS, with_ci)) if on]
    drawn = set(forest) | {p.row_id for p in points} | ({p.row_id for p in props} if with_ci else set())
    return NarrativeSynthesis(tuple(figures), tuple(directions.items()), tuple(points), tuple(omitted),
                              tuple(r for r in rows if r not in drawn),
                              tuple(_sign_test(e, rows, directions) for e in endpoints), tuple(props))
