"""Run an analysis plan on a registry: the typed, frozen result tree.

``run_plan(registry, plan) -> Evidence`` computes every analysis of the plan (main model, its
Wald z companion, estimator panel, leave-one-out, cumulative, subgroups, sensitivity scenarios)
and every narrative section's p-value combinations, from :func:`metaanalysis.pool`,
:func:`metaanalysis.pool_many` and :mod:`metaanalysis.sensitivity`. The tree holds numbers,
registry row ids and enum codes (:class:`metaanalysis.vocab.Flag`, :class:`StudyFlag`,
:class:`ScenarioKind`): no display strings. Reports, JSON, CSV and ``to_frame()`` all render
from it; nothing downstream recomputes a statistic.

Example
-------
>>> from metaanalysis.analysis import analyse
>>> ev = analyse("trials/registry.csv", "trials/analyses.toml")   # doctest: +SKIP
>>> ev.to_frame()[["k", "estimate", "ci_lower", "ci_upper"]]        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import cells, vocab
from .results import MetaResult
from .sensitivity import SubgroupResult
from .vocab import Flag, StudyFlag

__all__ = ["Evidence", "AnalysisResult", "NarrativeResult", "CombinationResult", "StudyEffect",
           "RowEffect", "Caveat", "Scenario", "ScenarioKind", "PanelRow", "LeaveOneOut",
           "CumulativeStep", "SubgroupAnalysis", "run_plan", "analyse"]


# ---------------------------------------------------------------------------------------------
# the result types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowEffect:
    """A registry row's effect on the analysis scale (:func:`metaanalysis.registry.effects_table`).

    ``yi``/``vi`` are None when the row cannot be pooled (``reason`` says why).
    """

    row_id: str
    yi: float | None
    vi: float | None
    se_source: str        # "ci", "p", "2x2" or "" when not poolable
    derived: bool
    imprecise: bool
    reason: str

    @property
    def poolable(self) -> bool:
        return self.yi is not None and self.vi is not None and self.vi > 0


@dataclass(frozen=True)
class StudyEffect:
    """One pooled study of an analysis.

    ``weight`` is the study's percentage weight in the main model (None for a single study);
    ``flags`` are the study's caveats in display order.
    """

    row_id: str
    yi: float
    vi: float
    weight: float | None
    flags: tuple[StudyFlag, ...]
    se_source: str
    year: int
    included_reason: str = ""
    counts: tuple[int, int, int, int] | None = None   # events_int, n_int, events_ctl, n_ctl (MH/Peto)

    @property
    def se(self) -> float:
        return math.sqrt(self.vi)


@dataclass(frozen=True)
class Caveat:
    """A flag an analysis carries, with the registry rows it concerns (if any)."""

    flag: Flag
    rows: tuple[str, ...] = ()
    problems: tuple = ()          # metaanalysis.problems.Problem: the located warnings behind the flag

    @property
    def severity(self) -> str:
        """``"info"`` or ``"caution"`` (:data:`metaanalysis.vocab.INFO_FLAGS`)."""
        return "info" if self.flag in vocab.INFO_FLAGS else "caution"


@dataclass(frozen=True)
class PanelRow:
    """One τ² estimator of the estimator-sensitivity panel: its result under each panel test."""

    method: str
    results: Mapping[str, MetaResult]


@dataclass(frozen=True)
class LeaveOneOut:
    omitted: str          # row id left out
    result: MetaResult


@dataclass(frozen=True)
class CumulativeStep:
    added: str            # row id added at this step
    year: int
    result: MetaResult


@dataclass(frozen=True)
class SubgroupAnalysis:
    """Subgroups by one registry column; ``result`` is None when fewer than 2 levels are pooled.

    ``labels`` holds each pooled study's level, in the order of :attr:`AnalysisResult.studies`.
    """

    variable: str
    labels: tuple[str, ...]
    result: SubgroupResult | None

    @property
    def single_study_groups(self) -> int:
        return 0 if self.result is None else sum(r.k == 1 for r in self.result.groups.values())


class ScenarioKind(str, enum.Enum):
    """Kinds of sensitivity scenario; values are the plan's ``sensitivity`` option names."""

    EXCLUDE_DERIVED = "exclude-derived"
    EXCLUDE_POST_HOC = "exclude-post-hoc"
    EXCLUDE_UNCONFIRMED = "exclude-unconfirmed"
    COMMON_EFFECT = "common-effect"
    SWAP = "swap"
    RANDOM_EFFECTS = "random-effects"   # the plan's model, when the page does not lead with it
    LOW_RISK_OF_BIAS = "low-risk-of-bias"   # only results judged at low risk of bias (RoB 2 overall)


@dataclass(frozen=True)
class Scenario:
    """A sensitivity scenario: the rows it pools and its result.

    ``result`` is None for fewer than 2 rows (one row is shown as reported). ``swap`` names
    the plan's swap for :attr:`ScenarioKind.SWAP`.
    """

    kind: ScenarioKind
    rows: tuple[str, ...]
    result: MetaResult | None
    swap: Any = None

    @property
    def k(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class PublishedCheck:
    """A pooled result published by others (registry design ``published synthesis``) beside ours.

    Never pooled: it is compared. ``difference`` is our headline estimate minus the published
    one on the analysis scale (log HR for a hazard ratio: exp(difference) is the ratio of the two
    hazard ratios); ``width_ratio`` is the width of our CI over the width of the published CI on
    that scale. The two estimates share their patients, so no test of the difference is made.

    Attributes
    ----------
    row_id : str
    yi, ci_lower, ci_upper : float
        The published estimate and CI on the analysis scale (CI at its own ``ci_level``).
    ci_level : float
        The published CI's level (fraction).
    ours : MetaResult or None
        Our headline model (None when the page leads with no pooled model).
    common : MetaResult or None
        Our rows pooled with the common-effect model and the Wald z CI (k >= 2): the aggregate
        counterpart of a one-stage IPD model without between-trial heterogeneity.
    difference, width_ratio : float or None
        None without ``ours``.
    trials_both, trials_published_only, trials_ours_only : tuple of str
        ``trial_id`` values in both, only in the synthesis (``pooled_from``), only in our pooled rows.
    """

    row_id: str
    yi: float
    ci_lower: float | None
    ci_upper: float | None
    ci_level: float | None
    ours: MetaResult | None
    common: MetaResult | None
    difference: float | None
    width_ratio: float | None
    trials_both: tuple[str, ...]
    trials_published_only: tuple[str, ...]
    trials_ours_only: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisResult:
    """Everything computed for one analysis of the plan.

    Attributes
    ----------
    analysis : metaanalysis.plan.Analysis
        The plan entry (id, title, measure, settings, favours, ...).
    studies : tuple of StudyEffect
        Pooled studies, by publication year then registry order.
    not_pooled : tuple of RowEffect
        Selected rows without a usable effect and SE.
    result : MetaResult or None
        The main model (None for k < 2).
    z_result : MetaResult or None
        The same model with the Wald z test, when the plan's test is not z.
    caveats : tuple of Caveat
    headline : vocab.Headline
        The model the page leads with: the plan's ``headline``, else :func:`vocab.default_headline`.
    headline_result : MetaResult or None
        Its result (``result`` for random effects, the common-effect fit, None for none / single).
    coverage : metaanalysis.coverage.CoverageTable or None
        Simulated coverage of every interval method for this design (k >= 2): the frequentist
        ones and, where ``bayes`` is set, the Bayesian central credible interval (code
        :data:`vocab.BAYES_INTERVAL`), at the τ² values of ``coverage_grid`` ((role, τ²) pairs:
        zero, the estimate, the Q-profile upper bound, the square of the prior's median of τ).
    binary : metaanalysis.binary.BinaryResult or None
        For ``method = "MH"`` or ``"Peto"``: the pooled 2x2 tables with every statistic of metafor's
        ``rma.mh`` / ``rma.peto`` (CMH and Tarone's test for OR); ``result`` is the same fit as a
        MetaResult (τ² = 0) and leads the page.
    bayes : metaanalysis.bayesian.BayesResult or None
        The exact Bayesian random-effects posterior under the plan's τ prior (or the measure's
        default, :func:`vocab.default_tau_prior`); ``bayes_sensitivity`` under other half-normal
        scales (:data:`vocab.TAU_SCALE_SENSITIVITY`).
    panel, leave_one_out, cumulative, subgroups, scenarios : tuples of their result types
    """

    analysis: Any
    studies: tuple[StudyEffect, ...]
    not_pooled: tuple[RowEffect, ...]
    result: MetaResult | None
    z_result: MetaResult | None
    caveats: tuple[Caveat, ...]
    panel: tuple[PanelRow, ...]
    leave_one_out: tuple[LeaveOneOut, ...]
    cumulative: tuple[CumulativeStep, ...]
    subgroups: tuple[SubgroupAnalysis, ...]
    scenarios: tuple[Scenario, ...]
    headline: vocab.Headline = vocab.Headline.NONE
    headline_result: MetaResult | None = None
    coverage: Any = None                               # metaanalysis.coverage.CoverageTable
    coverage_grid: tuple[tuple[vocab.GridRole, float], ...] = ()
    bayes: Any = None                                  # metaanalysis.bayesian.BayesResult
    bayes_sensitivity: tuple = ()                      # the same model under other τ priors
    rob: tuple = ()                                    # metaanalysis.rob.RobEntry per study, studies' order
    sof: Any = None                                    # metaanalysis.grade.SofRow
    binary: Any = None                                 # metaanalysis.binary.BinaryResult (method MH or Peto)
    published: tuple[PublishedCheck, ...] = ()         # published syntheses beside our result (checks)

    @property
    def id(self) -> str:
        return self.analysis.id

    @property
    def k(self) -> int:
        return len(self.studies)

    @property
    def measure(self) -> str:
        return self.analysis.measure

    @property
    def settings(self):
        return self.analysis.settings

    @property
    def flags(self) -> tuple[Flag, ...]:
        return tuple(c.flag for c in self.caveats)

    def caveat(self, flag: Flag) -> Caveat | None:
        return next((c for c in self.caveats if c.flag is flag), None)

    def to_frame(self):
        """One row per pooled study: ``row_id, year, yi, vi, se, weight, se_source, flags``
        plus the natural-scale ``estimate, ci_lower, ci_upper`` (normal CI at the plan's level)."""
        import pandas as pd

        from ._dist import z_crit

        z = z_crit(self.settings.level)
        recs = [{"row_id": s.row_id, "year": s.year, "yi": s.yi, "vi": s.vi, "se": s.se,
                 "weight": s.weight, "se_source": s.se_source,
                 "flags": ";".join(f.value for f in s.flags),
                 "estimate": vocab.to_natural(self.measure, s.yi),
                 "ci_lower": vocab.to_natural(self.measure, s.yi - z * s.se),
                 "ci_upper": vocab.to_natural(self.measure, s.yi + z * s.se)} for s in self.studies]
        return pd.DataFrame(recs, columns=["row_id", "year", "yi", "vi", "se", "weight", "se_source",
                                           "flags", "estimate", "ci_lower", "ci_upper"])


@dataclass(frozen=True)
class CombinationResult:
    """Fisher and Stouffer combination of one-sided p-values (:func:`metaanalysis._dist.combine_pvalues`).

    ``p_one_sided`` are in the combination's stated direction, one per row; ``upper_bound`` is
    True when any input p was an upper bound (p < x), so the combined p is one too.
    """

    combination: Any
    p_one_sided: tuple[float, ...]
    sided: tuple[int, ...]
    upper_bound: bool
    fisher_stat: float
    fisher_df: int
    fisher_p: float
    stouffer_z: float
    stouffer_p: float


@dataclass(frozen=True)
class NarrativeResult:
    """A narrative section of the plan (evidence shown, not pooled), its p-value combinations and
    its synthesis without pooling (:class:`metaanalysis.narrative.NarrativeSynthesis`: effect
    directions, sign tests, the data of its figures)."""

    narrative: Any
    combinations: tuple[CombinationResult, ...]
    synthesis: Any = None

    @property
    def id(self) -> str:
        return self.narrative.id


@dataclass(frozen=True, eq=False)
class Evidence:
    """The whole plan run on the registry: the root of the result tree."""

    registry: Any
    plan: Any
    effects: Mapping[str, RowEffect]
    analyses: tuple[AnalysisResult, ...]
    narratives: tuple[NarrativeResult, ...]
    rob: Any = None                                    # metaanalysis.rob.RobTable (None: no file read)
    searches: Any = None                               # metaanalysis.searches.SearchLog: the evidence date

    def analysis(self, analysis_id: str) -> AnalysisResult:
        return next(a for a in self.analyses if a.id == analysis_id)

    @property
    def primary(self) -> tuple[AnalysisResult, ...]:
        """The analyses that are primary results (not ``exploratory``): the summary of findings."""
        return tuple(a for a in self.analyses if not a.analysis.exploratory)

    def to_frame(self):
        """One row per analysis: settings, k, flags and the main result's fields
        (natural-scale ``estimate``/CI/PI for ratio measures, analysis-scale ``yi``)."""
        import pandas as pd

        return pd.DataFrame([summary_record(a) for a in self.analyses])


def summary_record(a: AnalysisResult) -> dict[str, Any]:
    """The flat record of one analysis that ``results.csv`` and :meth:`Evidence.to_frame` share."""
    s, m, res = a.settings, a.measure, a.result
    rec: dict[str, Any] = {"analysis_id": a.id, "title": a.analysis.title, "endpoint": a.analysis.endpoint,
                           "measure": m, "k": a.k, "method": s.method, "test": s.test, "pi": s.pi,
                           "level": s.level, "single_study": a.k == 1,
                           "rows": ";".join(st.row_id for st in a.studies),
                           "flags": ";".join(f.value for f in a.flags), "headline": a.headline.value}
    if res is not None:
        nat = {f: vocab.to_natural(m, getattr(res, f)) for f in ("ci_lower", "ci_upper", "pi_lower", "pi_upper")
               if getattr(res, f) is not None}
        rec.update(estimate=vocab.to_natural(m, res.estimate), **nat, pvalue=res.pvalue, yi=res.estimate,
                   se=res.se, tau2=res.tau2, tau2_ci_lower=res.tau2_ci_lower, tau2_ci_upper=res.tau2_ci_upper,
                   i2=res.i2, i2_ci_lower=res.i2_ci_lower, i2_ci_upper=res.i2_ci_upper, q=res.q,
                   q_df=res.q_df, q_pvalue=res.q_pvalue)
    elif a.k == 1:
        st = a.studies[0]
        rec.update(estimate=vocab.to_natural(m, st.yi), yi=st.yi, se=st.se)
    return rec


# ---------------------------------------------------------------------------------------------
# running the plan
# ---------------------------------------------------------------------------------------------


def analyse(registry_path, plan_path) -> Evidence:
    """Load and check a registry and a plan, then :func:`run_plan` them.

    Raises
    ------
    metaanalysis.problems.ProblemError
        A bad registry or plan (every problem with file, line and column).
    """
    from .plan import load_plan
    from .registry import load_registry
    from .rob import default_rob_path, load_rob
    from .searches import default_searches_path, load_searches

    registry = load_registry(registry_path)
    rob = load_rob(default_rob_path(registry_path), registry.df["row_id"].astype(str))
    searches = load_searches(default_searches_path(registry_path))
    return run_plan(registry, load_plan(plan_path, registry), rob=rob, searches=searches)


def run_plan(registry, plan, *, coverage: bool = True, mapper=map, rob=None, searches=None) -> Evidence:
    """Compute every analysis and narrative section of ``plan`` on ``registry``.

    Parameters
    ----------
    registry : metaanalysis.registry.Registry
    plan : metaanalysis.plan.Plan
        A plan checked against this registry (:func:`metaanalysis.plan.load_plan`).
    coverage : bool
        Simulate each pooled analysis's design-specific coverage (about a second per analysis),
        for the analyses whose plan entry keeps it on (``coverage = false`` turns it off); False
        skips it for every analysis.
    mapper : callable
        ``mapper(fn, items)`` runs the coverage simulations (default the builtin ``map``; the
        report builder passes one that uses worker processes). Results do not depend on it.
    rob : metaanalysis.rob.RobTable, optional
        RoB 2 judgements (:func:`metaanalysis.rob.load_rob`); None: every result "not assessed".
    searches : metaanalysis.searches.SearchLog, optional
        When the sources were searched and extracted (:func:`metaanalysis.searches.load_searches`);
        None: the evidence date is not recorded.

    Returns
    -------
    Evidence
    """
    from .registry import effects_table

    ctx = _Rows(registry, _row_effects(effects_table(registry)))
    selected = {a.id: (_binary_effects(ctx, a)[:4] if _is_binary(a) else _pooled_effects(ctx, a))
                for a in plan.analyses}
    panels = _estimator_panels(plan.analyses, selected)
    warned = row_warnings(registry)
    analyses = [_with_row_warnings((_run_binary if _is_binary(a) else _run_analysis)(
        ctx, a, *selected[a.id], panels.get(a.id, {})), warned) for a in plan.analyses]
    if coverage:
        analyses = _with_coverage(analyses, mapper)
    analyses = with_rob_and_grade(ctx, analyses, rob)
    from .narrative import synthesise

    narratives = tuple(NarrativeResult(n, tuple(_combine(registry, c) for c in n.combine),
                                       synthesise(registry, n, plan.defaults.level))
                       for n in plan.narratives)
    return Evidence(registry, plan, ctx.effects, tuple(analyses), narratives, rob, searches)


def row_warnings(registry) -> dict[str, tuple]:
    """The registry check's warnings by the row they are located in (row id -> Problems)."""
    by_line = {int(line): cells.text(rid) for rid, line in zip(registry.df["row_id"], registry.df["source_line"])}
    out: dict[str, list] = {}
    for p in registry.problems:
        if p.severity == "warning" and p.line in by_line:
            out.setdefault(by_line[p.line], []).append(p)
    return {rid: tuple(ps) for rid, ps in out.items()}


def _with_row_warnings(a: AnalysisResult, warned: dict) -> AnalysisResult:
    """Warnings travel with the data: a row the registry check warned about flags every analysis
    that pools it (and the study row itself)."""
    rows = tuple(st.row_id for st in a.studies if st.row_id in warned)
    if not rows:
        return a
    studies = tuple(dataclasses.replace(st, flags=st.flags + (StudyFlag.REGISTRY_WARNING,))
                    if st.row_id in warned else st for st in a.studies)
    caveat = Caveat(Flag.ROW_WARNING, rows, tuple(p for r in rows for p in warned[r]))
    return dataclasses.replace(a, studies=studies, caveats=a.caveats + (caveat,))


def coverage_grid(res: MetaResult, prior=None) -> tuple[tuple[vocab.GridRole, float], ...]:
    """τ² values to simulate at: 0, the estimate, the Q-profile upper bound and, with a τ prior
    ``(code, params)``, the square of its median (duplicates dropped)."""
    points = [(vocab.GridRole.ZERO, 0.0), (vocab.GridRole.ESTIMATE, res.tau2),
              (vocab.GridRole.QPROFILE_UPPER, res.tau2_ci_upper)]
    if prior is not None:
        from .bayesian import tau_prior_median

        code, params = prior
        points.append((vocab.GridRole.PRIOR_MEDIAN,
                       tau_prior_median(code, params if len(params) > 1 else params[0]) ** 2))
    out, seen = [], set()
    for role, t2 in points:
        if t2 is not None and math.isfinite(t2) and t2 not in seen:
            seen.add(t2)
            out.append((role, float(t2)))
    return tuple(out)


def _coverage_job(job):
    """One analysis's coverage table: the frequentist intervals and, with a τ prior, the Bayesian
    central credible interval under that prior (flat prior on μ, as :func:`_bayes`)."""
    from functools import partial

    from .bayesian import central_intervals_many
    from .coverage import coverage

    vi, grid, s, prior = job
    extra = {}
    if prior is not None:
        code, params = prior
        extra[vocab.BAYES_INTERVAL] = partial(central_intervals_many, tau_prior=code, level=s.level,
                                              tau_scale=params if len(params) > 1 else params[0])
    return coverage(vi, [t2 for _, t2 in grid], method=s.method, level=s.level, pi=s.pi,
                    n_sim=vocab.COVERAGE_N_SIM, extra=extra,
                    mcse_target=vocab.COVERAGE_MCSE_TARGET)


def coverage_applies(a: AnalysisResult) -> bool:
    """True when the design-specific coverage simulation fits ``a``: a pooled random-effects
    model (a τ² estimator; not FE, MH or Peto, not a single study)."""
    return a.result is not None and a.settings.method in vocab.TAU2_ESTIMATORS


def coverage_turned_off(a: AnalysisResult) -> bool:
    """True when the simulation fits ``a`` but its plan entry says ``coverage = false``."""
    return coverage_applies(a) and not a.analysis.coverage


def _with_coverage(analyses: list[AnalysisResult], mapper) -> list[AnalysisResult]:
    """Each pooled analysis whose plan entry keeps the simulation on (``coverage``, default true)
    with its coverage table and the caveat it may raise; the others unchanged."""
    todo = [a for a in analyses if coverage_applies(a) and a.analysis.coverage]
    priors = [tau_prior(a.analysis) if a.bayes is not None else None for a in todo]
    jobs = [(a.result.vi, coverage_grid(a.result, p), a.settings, p) for a, p in zip(todo, priors)]
    tables = dict(zip((a.id for a in todo), mapper(_coverage_job, jobs)))
    out = []
    for a, (_, grid, _, _) in zip(todo, jobs):
        table = tables[a.id]
        extra = (Caveat(Flag.UNDERCOVERAGE),) if undercovers(a, table) else ()
        out.append(dataclasses.replace(a, coverage=table, coverage_grid=grid, caveats=a.caveats + extra))
    done = {a.id: a for a in out}
    return [done.get(a.id, a) for a in analyses]


def headline_interval(a: AnalysisResult) -> str | None:
    """The coverage-table code of the interval the page leads with (None when none leads)."""
    if a.headline is vocab.Headline.RANDOM:
        return a.settings.test
    if a.headline is vocab.Headline.COMMON:
        return vocab.COMMON_EFFECT.code
    if a.headline is vocab.Headline.BAYES:
        return vocab.BAYES_INTERVAL
    return None


def undercovers(a: AnalysisResult, table) -> bool:
    """True when the headline interval's simulated coverage falls short of the level by more than
    :data:`vocab.UNDERCOVERAGE_MARGIN` and 3 Monte-Carlo SEs at some τ² of the grid (for a
    Bayesian headline, its central credible interval under the analysis's prior)."""
    code = headline_interval(a)
    if code is None or code not in table.intervals:
        return False
    level = a.settings.level
    return any(r.interval == code and level - r.coverage > max(vocab.UNDERCOVERAGE_MARGIN, 3 * r.mcse)
               for r in table.rows)


def _row_effects(table) -> dict[str, RowEffect]:
    out = {}
    for e in table.to_dict("records"):
        y, v = cells.number(e.get("yi")), cells.number(e.get("vi"))
        rid = str(e["row_id"])
        out[rid] = RowEffect(rid, y, v, e.get("se_source") or "", bool(e.get("derived")),
                             bool(e.get("imprecise")), cells.text(e.get("reason")))
    return out


class _Rows:
    """Registry rows by id, their registry order and their effects."""

    def __init__(self, registry, effects: dict[str, RowEffect]):
        recs = registry.df.to_dict("records")
        self.rows = {cells.text(r["row_id"]): r for r in recs}
        self.order = {cells.text(r["row_id"]): i for i, r in enumerate(recs)}
        self.effects = effects

    def value(self, rid: str, column: str) -> str:
        return cells.text(self.rows[rid].get(column))

    def year(self, rid: str) -> int:
        y = cells.number(self.rows[rid].get("year"))
        return int(y) if y is not None else 0


def _pooled_effects(ctx: _Rows, a) -> tuple[list[str], list[RowEffect], np.ndarray, np.ndarray]:
    """Rows of analysis ``a`` with a usable (yi, vi), ordered by year; and those without."""
    order = sorted(a.rows, key=lambda r: (ctx.year(r), ctx.order[r]))
    ids = [r for r in order if ctx.effects[r].poolable]
    not_pooled = [ctx.effects[r] for r in order if not ctx.effects[r].poolable]
    yi = np.array([ctx.effects[r].yi for r in ids], dtype=float)
    vi = np.array([ctx.effects[r].vi for r in ids], dtype=float)
    return ids, not_pooled, yi, vi


def _pool(yi, vi, s, **kw) -> MetaResult:
    from .pooling import pool

    return pool(yi, vi, method=kw.get("method", s.method), test=kw.get("test", s.test), level=s.level,
                pi=kw.get("pi", s.pi))


def _estimator_panels(analyses, selected) -> dict[str, dict[tuple[str, str], MetaResult]]:
    """The estimator panel of every analysis at once: one ``pool_many`` per (method, test).

    Row i of ``pool_many`` is ``pool`` on analysis i (NaN-padded), so batching changes no number.
    """
    from .pooling import pool_many

    groups: dict[tuple, list] = {}
    for a in analyses:
        ids, _, yi, vi = selected[a.id]
        if "estimators" in a.sensitivity and len(ids) >= 2:
            groups.setdefault((a.settings.level, a.settings.pi), []).append((a.id, yi, vi))
    out: dict[str, dict] = {}
    for (level, pi), items in groups.items():
        kmax = max(len(y) for _, y, _ in items)
        Y = np.full((len(items), kmax), np.nan)
        V = np.full((len(items), kmax), np.nan)
        for i, (_, y, v) in enumerate(items):
            Y[i, : len(y)], V[i, : len(v)] = y, v
        for m in vocab.ESTIMATOR_PANEL:
            for t in vocab.PANEL_TESTS:
                res = pool_many(Y, V, method=m, test=t, level=level, pi=pi)
                for i, (aid, _, _) in enumerate(items):
                    out.setdefault(aid, {})[(m, t)] = res.row(i)
    return out


def _run_analysis(ctx: _Rows, a, ids, not_pooled, yi, vi, panel) -> AnalysisResult:
    s = a.settings
    res = _pool(yi, vi, s) if len(ids) >= 2 else None
    zres = _pool(yi, vi, s, test="z") if res is not None and s.test != "z" else None
    inc = {c.row_id: c.reason for c in a.included}
    post, post_sens = _bayes(a, yi, vi)
    headline, lead = _headline(a, len(ids), res, yi, vi, post is not None)
    weights = list(lead.weights) if lead is not None else [None] * len(ids)
    studies = tuple(StudyEffect(rid, float(yi[i]), float(vi[i]), weights[i], _study_flags(ctx, rid, rid in inc),
                                ctx.effects[rid].se_source, ctx.year(rid), inc.get(rid, ""))
                    for i, rid in enumerate(ids))
    return AnalysisResult(
        analysis=a, studies=studies, not_pooled=tuple(not_pooled), result=res, z_result=zres,
        caveats=_caveats(a, studies, not_pooled, res, zres, headline),
        panel=_panel(a, yi, vi, panel),
        leave_one_out=_leave_one_out(a, studies, yi, vi),
        cumulative=_cumulative(a, studies, yi, vi),
        subgroups=tuple(_subgroup(ctx, a, studies, yi, vi, var) for var in a.subgroup),
        scenarios=_plan_model_scenario(ids, res, headline) + _scenarios(ctx, a, studies, yi, vi),
        headline=headline, headline_result=lead, bayes=post, bayes_sensitivity=post_sens,
        published=tuple(_published_check(ctx, a, rid, ids, lead, yi, vi) for rid in a.published),
    )


def _published_check(ctx: _Rows, a, rid: str, ids, ours: MetaResult | None, yi_ours, vi_ours) -> PublishedCheck:
    """Our headline result beside a published synthesis of (some of) the same trials
    (Riley et al. 2010, BMJ 340:c221: IPD and aggregate-data pooling can differ)."""
    m = a.measure

    def scale(col: str) -> float | None:
        v = cells.number(ctx.rows[rid].get(col))
        return vocab.to_analysis(m, v)

    yi, lo, hi = scale("estimate"), scale("ci_lower"), scale("ci_upper")
    level = cells.number(ctx.rows[rid].get("ci_level"))
    diff = width = None
    if ours is not None:
        diff = float(ours.estimate - yi)
        if lo is not None and hi is not None and hi > lo:
            width = float((ours.ci_upper - ours.ci_lower) / (hi - lo))
    theirs = [s.strip() for s in ctx.value(rid, "pooled_from").split(";") if s.strip()]
    mine = list(dict.fromkeys(ctx.value(r, "trial_id") for r in ids))
    common = _pool(yi_ours, vi_ours, a.settings, method="FE", test="z") if len(ids) >= 2 else None
    return PublishedCheck(rid, yi, lo, hi, None if level is None else level / 100.0, ours, common, diff, width,
                          tuple(t for t in mine if t in theirs), tuple(t for t in theirs if t not in mine),
                          tuple(t for t in mine if t not in theirs))


def tau_prior(a) -> tuple[str, tuple[float, ...]] | None:
    """The analysis's τ prior: the plan's, else the measure's default (None: no Bayesian analysis)."""
    s = a.settings
    return (s.tau_prior, s.tau_scale) if s.tau_prior else vocab.default_tau_prior(a.measure)


def _bayes(a, yi, vi):
    """The Bayesian posterior under the analysis's τ prior, and under the sensitivity priors."""
    prior = tau_prior(a)
    if prior is None or len(yi) < 2:
        return None, ()
    from .bayesian import bayes

    def fit(code, params):
        return bayes(yi, vi, tau_prior=code, tau_scale=params if len(params) > 1 else params[0],
                     level=a.settings.level)

    main = fit(*prior)
    if a.measure not in vocab.RATIO_MEASURES:   # half-normal scales are on the log-ratio scale
        return main, ()
    others = [("halfnormal", (sc,)) for sc in vocab.TAU_SCALE_SENSITIVITY if ("halfnormal", (sc,)) != prior]
    return main, tuple(fit(*p) for p in others)


def _plan_model_scenario(ids, res, headline) -> tuple[Scenario, ...]:
    """The plan's random-effects model as the first scenario when the page leads with another."""
    if res is None or headline is vocab.Headline.RANDOM:
        return ()
    return (Scenario(ScenarioKind.RANDOM_EFFECTS, tuple(ids), res),)


def _headline(a, k: int, res, yi, vi, has_prior: bool) -> tuple[vocab.Headline, MetaResult | None]:
    """The model the page leads with and its frequentist result (None for Bayesian, none, single)."""
    if k < 2:
        return (vocab.Headline.SINGLE if k == 1 else vocab.Headline.NONE), None
    h = vocab.HEADLINE_CHOICES[a.headline] if a.headline else vocab.default_headline(k, has_prior)
    if h is vocab.Headline.BAYES and not has_prior:   # the plan checks this; a measure without a prior
        h = vocab.Headline.NONE
    if h is vocab.Headline.RANDOM:
        return h, res
    if h is vocab.Headline.COMMON:
        return h, _pool(yi, vi, a.settings, method="FE", test="z")
    return h, None


def _study_flags(ctx: _Rows, rid: str, included: bool) -> tuple[StudyFlag, ...]:
    """A study's caveats in display order: derivation, precision, status, design, plan."""
    e = ctx.effects[rid]
    flags = []
    if e.derived:
        flags.append(StudyFlag.SE_FROM_P if e.se_source == "p" else StudyFlag.EFFECT_DERIVED)
    if e.imprecise:
        flags.append(StudyFlag.IMPRECISE_P)
    if ctx.value(rid, "status") != "confirmed":
        flags.append(StudyFlag.UNCONFIRMED)
    design = vocab.DESIGN_FLAGS.get(ctx.value(rid, "design"))
    if design is not None:
        flags.append(design)
    if ctx.value(rid, "use_for_pooling") == "no":
        flags.append(StudyFlag.NOT_FOR_POOLING)
    if included:
        flags.append(StudyFlag.INCLUDED_BY_PLAN)
    return tuple(flags)


def _with(studies, *flags: StudyFlag) -> tuple[str, ...]:
    return tuple(s.row_id for s in studies if any(f in s.flags for f in flags))


def _caveats(a, studies, not_pooled, res, zres, headline) -> tuple[Caveat, ...]:
    """The analysis's flags, each computed from the numbers it describes (Cochrane Handbook ch. 10)."""
    k, s = len(studies), a.settings
    out = []
    if k == 1:
        out.append(Caveat(Flag.SINGLE_STUDY))
    if 2 <= k < vocab.FEW_STUDIES:
        out.append(Caveat(Flag.FEW_STUDIES))
    if 2 <= k < vocab.FUNNEL_MIN_K:
        out.append(Caveat(Flag.NO_FUNNEL))
    for flag, study_flags in ((Flag.DERIVED_SE, (StudyFlag.SE_FROM_P,)),
                              (Flag.POST_HOC, (StudyFlag.POST_HOC, StudyFlag.OBSERVATIONAL)),
                              (Flag.UNCONFIRMED, (StudyFlag.UNCONFIRMED,))):
        rows = _with(studies, *study_flags)
        if rows:
            out.append(Caveat(flag, rows))
    if res is not None:
        if res.tau2 <= vocab.TAU2_ZERO and k < vocab.FUNNEL_MIN_K and res.method not in vocab.BINARY_METHODS:
            out.append(Caveat(Flag.TAU2_ZERO))
        if zres is not None and s.test in vocab.T_TESTS and \
                res.ci_upper - res.ci_lower < zres.ci_upper - zres.ci_lower - 1e-12:
            out.append(Caveat(Flag.HKSJ_NARROWER))
        if k == 2 and s.test in vocab.T_TESTS and headline is vocab.Headline.RANDOM:
            out.append(Caveat(Flag.K2_T1))
    if headline is vocab.Headline.NONE and k >= 2:
        out.append(Caveat(Flag.NO_POOLED_HEADLINE))
    if not_pooled:
        out.append(Caveat(Flag.NOT_POOLABLE, tuple(e.row_id for e in not_pooled)))
    if a.missing:
        out.append(Caveat(Flag.MISSING_EVIDENCE, tuple(a.missing)))
    return tuple(out)


def _panel(a, yi, vi, batched) -> tuple[PanelRow, ...]:
    if len(yi) < 2 or "estimators" not in a.sensitivity:
        return ()
    s = a.settings
    return tuple(PanelRow(m, {t: batched.get((m, t)) or _pool(yi, vi, s, method=m, test=t)
                              for t in vocab.PANEL_TESTS})
                 for m in vocab.ESTIMATOR_PANEL)


def _leave_one_out(a, studies, yi, vi) -> tuple[LeaveOneOut, ...]:
    if len(studies) < vocab.LEAVE_ONE_OUT_MIN_K or "leave-one-out" not in a.sensitivity:
        return ()
    from .sensitivity import leave_one_out

    s = a.settings
    fits = leave_one_out(yi, vi, method=s.method, test=s.test, level=s.level, pi=s.pi)
    return tuple(LeaveOneOut(st.row_id, r) for st, r in zip(studies, fits))


def _cumulative(a, studies, yi, vi) -> tuple[CumulativeStep, ...]:
    if len(studies) < 2 or "cumulative" not in a.sensitivity:
        return ()
    from .sensitivity import cumulative

    s = a.settings
    years = [st.year for st in studies]
    idx = np.argsort(np.asarray(years), kind="stable")
    fits = cumulative(yi, vi, order=years, method=s.method, test=s.test, level=s.level, pi=s.pi)
    return tuple(CumulativeStep(studies[int(idx[j])].row_id, studies[int(idx[j])].year, r)
                 for j, r in enumerate(fits))


def _subgroup(ctx: _Rows, a, studies, yi, vi, var: str) -> SubgroupAnalysis:
    labels = tuple(ctx.value(st.row_id, var) or "(empty)" for st in studies)
    if len(studies) < 2 or len(set(labels)) < 2:
        return SubgroupAnalysis(var, labels, None)
    from .sensitivity import subgroups

    s = a.settings
    return SubgroupAnalysis(var, labels, subgroups(yi, vi, list(labels), method=s.method, test=s.test,
                                                   level=s.level, pi=s.pi))


#: Exclusion scenarios: the plan option and the study flags whose rows each leaves out.
_EXCLUSIONS = ((ScenarioKind.EXCLUDE_DERIVED, (StudyFlag.SE_FROM_P,)),
               (ScenarioKind.EXCLUDE_POST_HOC, (StudyFlag.POST_HOC, StudyFlag.OBSERVATIONAL)),
               (ScenarioKind.EXCLUDE_UNCONFIRMED, (StudyFlag.UNCONFIRMED,)))


def _scenarios(ctx: _Rows, a, studies, yi, vi) -> tuple[Scenario, ...]:
    """Exclusion, common-effect and swap scenarios in the plan's order of kinds."""
    s, ids = a.settings, [st.row_id for st in studies]
    out = []

    def fit(kind, keep, **kw):
        sel = [ids.index(r) for r in keep]
        res = _pool(yi[sel], vi[sel], s, **kw) if len(sel) >= 2 else None
        out.append(Scenario(kind, tuple(keep), res))

    if len(ids) >= 2:
        for kind, flags in _EXCLUSIONS:
            if kind.value in a.sensitivity:
                keep = [st.row_id for st in studies if not any(f in st.flags for f in flags)]
                if len(keep) < len(ids):
                    fit(kind, keep)
        if ScenarioKind.COMMON_EFFECT.value in a.sensitivity:
            fit(ScenarioKind.COMMON_EFFECT, ids, method="FE", test="z")
    for sw in a.swaps:
        e = ctx.effects.get(sw.with_)
        if sw.replace not in ids or e is None or e.yi is None or e.vi is None:
            continue
        yy, vv = yi.copy(), vi.copy()
        j = ids.index(sw.replace)
        yy[j], vv[j] = e.yi, e.vi
        res = _pool(yy, vv, s) if len(ids) >= 2 else None
        out.append(Scenario(ScenarioKind.SWAP, tuple(sw.with_ if r == sw.replace else r for r in ids), res, sw))
    return tuple(out)


def _combine(registry, c) -> CombinationResult:
    """Fisher and Stouffer over the rows' one-sided p-values (Fisher 1932; Stouffer et al. 1949).

    A two-sided p is halved (the one-sided p in the stated direction); the plan has refused
    rows whose p-value is only a lower bound (p > x), so every input is exact or an upper bound.
    """
    from ._dist import combine_pvalues

    pvs = [registry.p_values[rid] for rid in c.rows]
    if any(pv.is_lower_bound for pv in pvs):  # the plan refuses these: reaching here is a bug
        raise ValueError(f"combination {c.label!r} holds a p-value that is only a lower bound")
    p1 = tuple(pv.value / 2 if pv.sided == 2 else pv.value for pv in pvs)
    fisher = combine_pvalues(p1, method="fisher")
    stouffer = combine_pvalues(p1, method="stouffer")
    return CombinationResult(c, p1, tuple(pv.sided for pv in pvs), any(pv.is_upper_bound for pv in pvs),
                             fisher[0], 2 * len(p1), fisher[1], stouffer[0], stouffer[1])


# ---------------------------------------------------------------------------------------------
# risk of bias and the GRADE summary of findings
# ---------------------------------------------------------------------------------------------


def with_rob_and_grade(ctx: _Rows, analyses: list[AnalysisResult], rob=None) -> list[AnalysisResult]:
    """Each analysis with its studies' RoB 2 judgements, the "low risk of bias only" scenario
    (when any pooled result is assessed and some is not low) and its summary-of-findings row."""
    from .grade import summary_of_findings
    from .rob import RobTable

    rob = rob if rob is not None else RobTable()
    out = []
    for a in analyses:
        entries = tuple(rob.entry(st.row_id) for st in a.studies)
        a = dataclasses.replace(a, rob=entries, scenarios=a.scenarios + _low_rob_scenario(a, entries))
        out.append(dataclasses.replace(a, sof=summary_of_findings(a, ctx.rows, rob, a.analysis.grade)))
    return out


def _low_rob_scenario(a: AnalysisResult, entries) -> tuple[Scenario, ...]:
    """Pool only the results judged at low risk of bias overall (RoB 2; Cochrane Handbook 8.8)."""
    if not any(e.assessed for e in entries):
        return ()
    keep = [i for i, e in enumerate(entries) if e.overall is vocab.RobJudgement.LOW]
    if len(keep) == len(entries):
        return ()
    yi = np.array([a.studies[i].yi for i in keep], dtype=float)
    vi = np.array([a.studies[i].vi for i in keep], dtype=float)
    if len(keep) < 2:
        res = None
    elif _is_binary(a.analysis):
        res = _pool_counts(a.analysis, [a.studies[i] for i in keep]).to_meta_result()
    else:
        res = _pool(yi, vi, a.settings)
    return (Scenario(ScenarioKind.LOW_RISK_OF_BIAS, tuple(a.studies[i].row_id for i in keep), res),)


# ---------------------------------------------------------------------------------------------
# binary outcomes: Mantel-Haenszel and Peto pooling of the rows' 2x2 tables (metaanalysis.binary)
# ---------------------------------------------------------------------------------------------

#: The registry's 2x2 columns, in the order StudyEffect.counts holds them.
_COUNTS = ("events_int", "n_int", "events_ctl", "n_ctl")


def _is_binary(a) -> bool:
    """The plan pools this analysis's 2x2 tables (method "MH" or "Peto") rather than (yi, vi)."""
    return a.settings.method in vocab.BINARY_METHODS


def _double_zero(c: tuple[int, int, int, int]) -> bool:
    """No events in either arm, or only events: such a table does not move an MH or Peto estimate."""
    ev_i, n_i, ev_c, n_c = c
    return (ev_i == 0 and ev_c == 0) or (ev_i == n_i and ev_c == n_c)


def _binary_effects(ctx: _Rows, a):
    """Rows of a binary analysis by year: (ids, not pooled, yi, vi, counts); yi/vi are metafor's escalc
    effects (1/2 added to tables with a zero cell; Peto's log OR for Peto). For ratios a double-zero
    table is listed as not pooled (metafor keeps it in ``k`` but it carries no weight); a risk
    difference of 0 is informative, so for RD it is pooled (``drop00=FALSE``, as ``effects.from_2x2``)."""
    from .binary import escalc_2x2

    order = sorted(a.rows, key=lambda r: (ctx.year(r), ctx.order[r]))
    counts = {r: tuple(int(cells.number(ctx.rows[r].get(c))) for c in _COUNTS) for r in order}
    drop = a.measure != "RD"
    ids = [r for r in order if not (drop and _double_zero(counts[r]))]
    not_pooled = [RowEffect(r, None, None, "2x2", False, False,
                            "no events (or only events) in either arm: contributes nothing to the pooled estimate")
                  for r in order if drop and _double_zero(counts[r])]
    yi = vi = np.zeros(0)
    if ids:
        ai, n1, ci, n2 = (np.array([counts[r][j] for r in ids], dtype=float) for j in range(4))
        yi, vi = escalc_2x2(ai, n1 - ai, ci, n2 - ci, "PETO" if a.settings.method == "Peto" else a.measure,
                            0.5, "only0", drop)
    return ids, not_pooled, yi, vi, counts


def _pool_counts(a, studies):
    """MH or Peto pooling of these studies' tables with metafor's defaults (``add``, ``to``, ``drop00``)."""
    from .binary import pool_mh, pool_peto

    ev_i, n_i, ev_c, n_c = (np.array([st.counts[j] for st in studies], dtype=float) for j in range(4))
    cells_ = (ev_i, n_i - ev_i, ev_c, n_c - ev_c)
    if a.settings.method == "Peto":
        return pool_peto(*cells_, level=a.settings.level)
    return pool_mh(*cells_, measure=a.measure, level=a.settings.level, drop00=a.measure != "RD")


def _run_binary(ctx: _Rows, a, ids, not_pooled, yi, vi, panel) -> AnalysisResult:
    """A Mantel-Haenszel or Peto analysis: the pooled tables lead the page (a common-effect model)."""
    _, _, _, _, counts = _binary_effects(ctx, a)
    inc = {c.row_id: c.reason for c in a.included}
    # the counts are what MH/Peto pool: an effect "derived from 2x2" is no caveat here
    flags = {rid: tuple(f for f in _study_flags(ctx, rid, rid in inc) if f is not StudyFlag.EFFECT_DERIVED)
             for rid in ids}
    studies = tuple(StudyEffect(rid, float(yi[i]), float(vi[i]), None, flags[rid], "2x2", ctx.year(rid),
                                inc.get(rid, ""), counts[rid]) for i, rid in enumerate(ids))
    fit = _pool_counts(a, studies) if len(ids) >= 2 else None
    res = fit.to_meta_result() if fit is not None else None
    if res is not None:
        studies = tuple(dataclasses.replace(st, weight=w) for st, w in zip(studies, res.weights))
    headline = vocab.Headline.COMMON if res is not None else \
        (vocab.Headline.SINGLE if len(ids) == 1 else vocab.Headline.NONE)
    return AnalysisResult(
        analysis=a, studies=studies, not_pooled=tuple(not_pooled), result=res, z_result=None,
        caveats=_caveats(a, studies, not_pooled, res, None, headline), panel=_panel(a, yi, vi, panel),
        leave_one_out=_binary_leave_one_out(a, studies), cumulative=_binary_cumulative(a, studies),
        subgroups=(), scenarios=_binary_scenarios(a, studies, yi, vi), headline=headline, headline_result=res,
        binary=fit)


def _binary_leave_one_out(a, studies) -> tuple[LeaveOneOut, ...]:
    if len(studies) < vocab.LEAVE_ONE_OUT_MIN_K or "leave-one-out" not in a.sensitivity:
        return ()
    return tuple(LeaveOneOut(st.row_id, _pool_counts(a, studies[:i] + studies[i + 1:]).to_meta_result())
                 for i, st in enumerate(studies))


def _binary_cumulative(a, studies) -> tuple[CumulativeStep, ...]:
    """Studies are already in publication order (year, then registry order)."""
    if len(studies) < 2 or "cumulative" not in a.sensitivity:
        return ()
    return tuple(CumulativeStep(st.row_id, st.year, _pool_counts(a, studies[: j + 1]).to_meta_result())
                 for j, st in enumerate(studies))


def _binary_scenarios(a, studies, yi, vi) -> tuple[Scenario, ...]:
    """Exclusion scenarios refit with MH/Peto; the common-effect scenario is the inverse-variance
    model of the studies' escalc effects (how MH/Peto differ from the usual pooling)."""
    out = []
    if len(studies) < 2:
        return ()
    for kind, flags in _EXCLUSIONS:
        keep = tuple(st for st in studies if not any(f in st.flags for f in flags))
        if kind.value in a.sensitivity and len(keep) < len(studies):
            res = _pool_counts(a, keep).to_meta_result() if len(keep) >= 2 else None
            out.append(Scenario(kind, tuple(st.row_id for st in keep), res))
    if ScenarioKind.COMMON_EFFECT.value in a.sensitivity:
        out.append(Scenario(ScenarioKind.COMMON_EFFECT, tuple(st.row_id for st in studies),
                            _pool(yi, vi, a.settings, method="FE", test="z")))
    return tuple(out)
