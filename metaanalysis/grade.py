"""GRADE summary of findings, computed from an analysis result (pure: numbers and enum codes).

One :class:`SofRow` per analysis (outcome), in the GRADEpro / RevMan layout (Guyatt et al. 2011,
J Clin Epidemiol 64:383): participants (studies), the relative effect of the model the page
leads with, anticipated absolute effects per baseline risk, and the certainty of evidence with
its five domains. Two domains are *suggested* by computed rules, the others are judgements:

- **imprecision** (Zeng et al. 2022, GRADE guidance 34): one level for each of: the CI crosses
  the null; it crosses the plan's ``threshold`` (a minimal important effect on the natural
  scale); the total events fall short of the optimal information size (OIS). Two or more: very
  serious. The OIS is the Schoenfeld number of events for a hazard ratio of ``ois_ratio``
  (default :data:`vocab.OIS_DEFAULT_RATIO`), two-sided α = 0.05, power 0.8; it cannot be
  computed for other measures or when any pooled study lacks its event counts (said so).
- **inconsistency** (from the plan's random-effects fit, whatever model the page leads with):
  serious when I² ≥ :data:`vocab.GRADE_I2_SERIOUS` % or the prediction
  interval crosses the null while the CI does not; with one study it cannot be assessed.
- **risk of bias**: from ``trials/rob.csv`` (:mod:`metaanalysis.rob`), by weight share: very
  serious when results at high risk carry more than :data:`vocab.ROB_WEIGHT_SHARE` % of the
  weight, serious when high plus some-concerns do. When no pooled result is assessed the
  domain is ``not assessed``.
- **indirectness** and **publication bias**: the plan's judgements with their reasons.

A domain that is ``not assessed`` lowers nothing but makes the certainty *provisional*: it is
an upper bound, never presented as a finished rating. Certainty starts high for randomised
evidence and low when any pooled result is observational or a post hoc subgroup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from . import cells, vocab
from .vocab import Certainty, GradeDomain, GradeRating, GradeReason, RobJudgement, StudyFlag

__all__ = ["BaselineRisk", "GradeSettings", "AbsoluteEffect", "DomainRating", "SofRow", "summary_of_findings",
           "risk_with_intervention", "optimal_information_size"]


@dataclass(frozen=True)
class BaselineRisk:
    """A control-group risk at a time point: the plan's (with its source), or the pooled
    control arms' events / participants (``rows`` names the registry rows it came from)."""

    risk: float
    label: str = ""
    source: str = ""
    rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradeSettings:
    """The plan's ``[analysis.grade]`` table (every field optional)."""

    baseline_risk: tuple[BaselineRisk, ...] = ()
    indirectness: GradeRating = GradeRating.NOT_ASSESSED
    indirectness_reason: str = ""
    publication_bias: GradeRating = GradeRating.NOT_ASSESSED
    publication_bias_reason: str = ""
    threshold: float | None = None          # natural scale (e.g. HR 0.9)
    ois_ratio: float | None = None          # the effect the OIS is computed for (natural scale)


@dataclass(frozen=True)
class AbsoluteEffect:
    """Risks per participant (0-1) without and with the intervention, and the latter's CI."""

    baseline: BaselineRisk
    risk: float
    lower: float
    upper: float

    @property
    def difference(self) -> float:
        return self.risk - self.baseline.risk


@dataclass(frozen=True)
class DomainRating:
    domain: GradeDomain
    rating: GradeRating
    reasons: tuple[GradeReason, ...] = ()
    note: str = ""                           # the plan's reason (reviewer's words), if any
    value: float | None = None               # I² (%), OIS (events) or weight share (%) behind the rule


@dataclass(frozen=True)
class SofRow:
    """One outcome of the summary of findings (natural-scale relative effect)."""

    analysis_id: str
    measure: str
    k: int
    participants: int | None                 # None when any pooled study lacks n
    events: int | None                       # None when any pooled study lacks event counts
    headline: vocab.Headline
    level: float
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    absolute: tuple[AbsoluteEffect, ...]
    absolute_missing: GradeReason | None
    domains: tuple[DomainRating, ...]
    start: Certainty
    certainty: Certainty
    ois_events: float | None = None
    start_reason: GradeReason | None = None  # OBSERVATIONAL when certainty starts low

    @property
    def provisional(self) -> bool:
        """True when a domain was not assessed: the certainty is an upper bound."""
        return any(d.rating is GradeRating.NOT_ASSESSED for d in self.domains)

    def domain(self, d: GradeDomain) -> DomainRating:
        return next(x for x in self.domains if x.domain is d)


def risk_with_intervention(measure: str, p0: float, effect: float) -> float | None:
    """Risk with the intervention from a control risk ``p0`` and a natural-scale ratio.

    HR: 1 − (1 − p0)^HR (proportional hazards over the baseline's time point; GRADE handbook 5.2.2);
    RR: p0·RR (capped at 1); OR: p0·OR / (1 − p0 + p0·OR). None for other measures.
    """
    if measure == "HR":
        return 1.0 - (1.0 - p0) ** effect
    if measure == "RR":
        return min(1.0, p0 * effect)
    if measure == "OR":
        return p0 * effect / (1.0 - p0 + p0 * effect)
    return None


def optimal_information_size(ratio: float, alpha: float = vocab.OIS_ALPHA, power: float = vocab.OIS_POWER) -> float:
    """Events needed to detect hazard ratio ``ratio`` with 1:1 allocation (Schoenfeld 1983,
    Biometrics 39:499): 4 (z_{1−α/2} + z_{power})² / (ln ratio)²."""
    from ._dist import z_crit  # scipy.special: the plan checker imports this module, validate must start without it

    return 4.0 * (z_crit(1 - alpha) + z_crit(2 * power - 1)) ** 2 / math.log(ratio) ** 2


def _total(rows: Mapping[str, Mapping], ids, *cols: str) -> int | None:
    """Sum of the columns over the rows; None when any cell is missing."""
    vals = [cells.number(rows[r].get(c)) for r in ids for c in cols]
    return None if not vals or any(v is None for v in vals) else int(round(sum(vals)))


def _relative(a) -> tuple[float | None, float | None, float | None]:
    """The headline model's estimate and CI on the natural scale (None where it has none)."""
    m, h = a.measure, a.headline
    if h in (vocab.Headline.RANDOM, vocab.Headline.COMMON) and a.headline_result is not None:
        r = a.headline_result
        y = (r.estimate, r.ci_lower, r.ci_upper)
    elif h is vocab.Headline.BAYES and a.bayes is not None:
        y = (a.bayes.mu_median, a.bayes.mu_ci_lower, a.bayes.mu_ci_upper)
    elif h is vocab.Headline.SINGLE and a.studies:
        from ._dist import z_crit

        st, z = a.studies[0], z_crit(a.settings.level)
        y = (st.yi, st.yi - z * st.se, st.yi + z * st.se)
    else:
        return None, None, None
    return tuple(vocab.to_natural(m, v) for v in y)


def _crosses(lo: float, hi: float, value: float) -> bool:
    return lo < value < hi


def _imprecision(a, rel, events: int | None, g: GradeSettings) -> tuple[DomainRating, float | None]:
    est, lo, hi = rel
    if lo is None:
        return DomainRating(GradeDomain.IMPRECISION, GradeRating.NOT_ASSESSED, (GradeReason.NO_INTERVAL,)), None
    null = vocab.measure(a.measure).null
    reasons = []
    if null is not None and _crosses(lo, hi, null):
        reasons.append(GradeReason.CI_CROSSES_NULL)
    if g.threshold is not None and _crosses(lo, hi, g.threshold):
        reasons.append(GradeReason.CI_CROSSES_THRESHOLD)
    ois = None
    if a.measure == "HR" and events is not None:
        ois = optimal_information_size(g.ois_ratio or vocab.OIS_DEFAULT_RATIO)
        reasons.append(GradeReason.OIS_NOT_MET if events < ois else GradeReason.OIS_MET)
    else:
        reasons.append(GradeReason.OIS_NOT_COMPUTABLE)
    levels = sum(r in (GradeReason.CI_CROSSES_NULL, GradeReason.CI_CROSSES_THRESHOLD, GradeReason.OIS_NOT_MET)
                 for r in reasons)
    rating = (GradeRating.NOT_SERIOUS, GradeRating.SERIOUS)[levels] if levels < 2 else GradeRating.VERY_SERIOUS
    return DomainRating(GradeDomain.IMPRECISION, rating, tuple(reasons), value=ois), ois


def _inconsistency(a) -> DomainRating:
    res = a.result
    if a.k < 2 or res is None:
        return DomainRating(GradeDomain.INCONSISTENCY, GradeRating.NOT_ASSESSED, (GradeReason.SINGLE_STUDY,))
    reasons = []
    if res.i2 >= vocab.GRADE_I2_SERIOUS:
        reasons.append(GradeReason.I2_HIGH)
    null = vocab.measure(a.measure).null
    null_y = math.log(null) if vocab.is_log_scale(a.measure) else null
    if res.pi_lower is not None and res.pi_upper is not None and _crosses(res.pi_lower, res.pi_upper, null_y) \
            and not _crosses(res.ci_lower, res.ci_upper, null_y):
        reasons.append(GradeReason.PI_CROSSES_NULL)
    rating = GradeRating.SERIOUS if reasons else GradeRating.NOT_SERIOUS
    return DomainRating(GradeDomain.INCONSISTENCY, rating, tuple(reasons), value=res.i2)


def _risk_of_bias(a, rob) -> DomainRating:
    """Weight shares of results at high risk and at high risk or some concerns (module docstring)."""
    entries = [rob.entry(st.row_id) for st in a.studies]
    if not any(e.assessed for e in entries):
        return DomainRating(GradeDomain.RISK_OF_BIAS, GradeRating.NOT_ASSESSED, (GradeReason.ROB_NOT_ASSESSED,))
    weights = [st.weight if st.weight is not None else 100.0 / len(a.studies) for st in a.studies]
    total = sum(weights)
    high = 100 * sum(w for w, e in zip(weights, entries) if e.overall is RobJudgement.HIGH) / total
    concerns = 100 * sum(w for w, e in zip(weights, entries)
                         if e.overall in (RobJudgement.HIGH, RobJudgement.SOME_CONCERNS)) / total
    reasons, rating, share = [], GradeRating.NOT_SERIOUS, concerns
    if high > vocab.ROB_WEIGHT_SHARE:
        reasons.append(GradeReason.ROB_HIGH_WEIGHT)
        rating, share = GradeRating.VERY_SERIOUS, high
    elif concerns > vocab.ROB_WEIGHT_SHARE:
        reasons.append(GradeReason.ROB_CONCERNS_WEIGHT)
        rating = GradeRating.SERIOUS
    if not all(e.assessed for e in entries):
        reasons.append(GradeReason.ROB_PARTLY_ASSESSED)
        rating = GradeRating.NOT_ASSESSED if rating is GradeRating.NOT_SERIOUS else rating
    return DomainRating(GradeDomain.RISK_OF_BIAS, rating, tuple(reasons), value=share)


def _judged(domain: GradeDomain, rating: GradeRating, reason: str) -> DomainRating:
    code = GradeReason.NOT_IN_PLAN if rating is GradeRating.NOT_ASSESSED and not reason else GradeReason.PLAN_JUDGEMENT
    return DomainRating(domain, rating, (code,), reason)


def _baselines(a, rows: Mapping[str, Mapping], g: GradeSettings) -> tuple[BaselineRisk, ...]:
    """The plan's baseline risks; else the pooled control arms' risk when every study has it."""
    if g.baseline_risk:
        return g.baseline_risk
    ids = [st.row_id for st in a.studies]
    events, n = _total(rows, ids, "events_ctl"), _total(rows, ids, "n_ctl")
    if events is None or not n:
        return ()
    return (BaselineRisk(events / n, rows=tuple(ids)),)


def _absolute(a, rel, baselines) -> tuple[tuple[AbsoluteEffect, ...], GradeReason | None]:
    est, lo, hi = rel
    if est is None:
        return (), GradeReason.NO_RELATIVE_EFFECT
    if risk_with_intervention(a.measure, 0.5, 1.0) is None:
        return (), GradeReason.NO_ABSOLUTE_FOR_MEASURE
    if not baselines:
        return (), GradeReason.NO_BASELINE_RISK
    out = tuple(AbsoluteEffect(b, *(risk_with_intervention(a.measure, b.risk, x) for x in (est, lo, hi)))
                for b in baselines)
    return out, None


def summary_of_findings(a, rows: Mapping[str, Mapping[str, Any]], rob, g: GradeSettings | None) -> SofRow:
    """The summary-of-findings row of one analysis.

    Parameters
    ----------
    a : metaanalysis.analysis.AnalysisResult
    rows : mapping of row_id -> registry record (``n_int``, ``n_ctl``, ``events_int``, ``events_ctl``)
    rob : metaanalysis.rob.RobTable
    g : GradeSettings or None
        The plan's ``[analysis.grade]`` (None: nothing judged, no plan baseline risk).
    """
    g = g or GradeSettings()
    ids = [st.row_id for st in a.studies]
    events = _total(rows, ids, "events_int", "events_ctl")
    rel = _relative(a)
    imprecision, ois = _imprecision(a, rel, events, g)
    domains = (_risk_of_bias(a, rob), _inconsistency(a),
               _judged(GradeDomain.INDIRECTNESS, g.indirectness, g.indirectness_reason),
               imprecision, _judged(GradeDomain.PUBLICATION_BIAS, g.publication_bias, g.publication_bias_reason))
    observational = any(f in st.flags for st in a.studies for f in (StudyFlag.OBSERVATIONAL, StudyFlag.POST_HOC))
    start = Certainty.LOW if observational else Certainty.HIGH
    down = sum(vocab.GRADE_DOWNGRADE[d.rating] for d in domains)
    absolute, missing = _absolute(a, rel, _baselines(a, rows, g))
    return SofRow(a.id, a.measure, a.k, _total(rows, ids, "n_int", "n_ctl"), events, a.headline, a.settings.level,
                  *rel, absolute, missing, domains, start, Certainty(max(Certainty.VERY_LOW, start - down)), ois,
                  GradeReason.OBSERVATIONAL if observational else None)
