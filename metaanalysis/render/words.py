"""The sentences behind the codes: caveats, study flags, scenarios, captions and methods text.

Every text is built from the analysis result it describes (its k, level, measure, model and
intervals) and from the vocabulary (:mod:`metaanalysis.vocab`), so a caption or a warning can
only say what is true of the numbers on the same page.
"""

from __future__ import annotations

import math

from .. import vocab
from ..analysis import AnalysisResult, Caveat, Scenario, ScenarioKind, coverage_turned_off, headline_interval
from ..vocab import Flag, StudyFlag
from .format import fmt_ci, fmt_num, fmt_p_eq, pct
from .labels import RowText

#: Short labels of the flags (overview table, warning list).
FLAG_LABELS: dict[Flag, str] = {
    Flag.SINGLE_STUDY: "single study", Flag.FEW_STUDIES: "few studies", Flag.NO_FUNNEL: "no funnel",
    Flag.DERIVED_SE: "uncertainty from p-value", Flag.POST_HOC: "post hoc input", Flag.UNCONFIRMED: "unconfirmed input",
    Flag.TAU2_ZERO: "no spread estimated", Flag.HKSJ_NARROWER: "interval narrower than usual",
    Flag.K2_T1: "two studies: wide interval",
    Flag.NOT_POOLABLE: "row without SE", Flag.MISSING_EVIDENCE: "missing evidence",
    Flag.NO_POOLED_HEADLINE: "k = 2: not pooled for the headline",
    Flag.UNDERCOVERAGE: "headline CI under-covers",
    Flag.ROW_WARNING: "registry warning",
}

STUDY_FLAG_TEXT: dict[StudyFlag, str] = {
    StudyFlag.SE_FROM_P: "SE derived from p-value",
    StudyFlag.IMPRECISE_P: "rounded or bounded p-value: imprecise SE",
    StudyFlag.POST_HOC: "post hoc subgroup",
    StudyFlag.OBSERVATIONAL: "observational",
    StudyFlag.PRESPECIFIED_SUBGROUP: "prespecified subgroup",
    StudyFlag.NOT_FOR_POOLING: "marked not for pooling in the registry",
    StudyFlag.INCLUDED_BY_PLAN: "included by the plan",
    StudyFlag.REGISTRY_WARNING: "registry warning (see Warnings)",
}

#: Footnote marks: the mark, the study flags that raise it, and its footnote.
MARKS: tuple[tuple[str, frozenset, str], ...] = (
    ("†", frozenset({StudyFlag.SE_FROM_P, StudyFlag.EFFECT_DERIVED}),
     "† SE derived from the reported p-value (no CI available); the interval shown is derived, not reported."),
    ("‡", frozenset({StudyFlag.UNCONFIRMED}),
     "‡ Numbers not confirmed in a clean source (registry status unconfirmed)."),
    ("§", frozenset({StudyFlag.POST_HOC, StudyFlag.OBSERVATIONAL}),
     "§ Post hoc subgroup or observational result."),
)

SCENARIO_TEXT: dict[ScenarioKind, tuple[str, str]] = {
    ScenarioKind.EXCLUDE_DERIVED: ("Without derived SEs", "studies whose SE was derived from a p-value left out"),
    ScenarioKind.EXCLUDE_POST_HOC: ("Without post hoc / observational",
                                    "post hoc subgroup and observational results left out"),
    ScenarioKind.EXCLUDE_UNCONFIRMED: ("Confirmed results only", "results with status unconfirmed left out"),
    ScenarioKind.COMMON_EFFECT: ("Common-effect model", "inverse-variance common-effect (fixed-effect) model, z test"),
}


def study_flag_text(flag: StudyFlag, rows: RowText, rid: str, se_source: str) -> str:
    """The words of one study flag (the status and the derivation source come from the row)."""
    if flag is StudyFlag.EFFECT_DERIVED:
        return f"effect derived from {se_source}"
    if flag is StudyFlag.UNCONFIRMED:
        return f"status {rows.get(rid, 'status')}"
    return STUDY_FLAG_TEXT[flag]


def marks(flags) -> str:
    """Footnote marks of a study's flags, in footnote order."""
    return "".join(m for m, raised_by, _ in MARKS if raised_by & set(flags))


def footnotes(used: str) -> tuple[str, ...]:
    return tuple(text for m, _, text in MARKS if m in used)


def model_words(method: str) -> str:
    """``"random-effects"`` or ``"common-effect"``."""
    return "common-effect" if method == "FE" else "random-effects"


def overview_model(a: AnalysisResult) -> str:
    """The overview table's model cell: what the page leads with."""
    if a.headline is vocab.Headline.SINGLE:
        return "single study"
    if a.headline is vocab.Headline.NONE:
        return "not pooled (k = 2)" if a.k == 2 else "not pooled"
    if a.binary is not None:
        return f"{_binary_label(a.settings.method)} · z"
    if a.headline is vocab.Headline.COMMON:
        return "common effect · z"
    if a.headline is vocab.Headline.BAYES:
        return f"Bayesian · {a.bayes.tau_prior} {fmt_num(a.bayes.tau_scale[0], 2)}"
    return f"{a.settings.method} · {vocab.TESTS[a.settings.test].label}"


def plan_model_words(settings) -> str:
    """``"random-effects model (REML, HKSJ ad hoc)"``: the plan's model in words."""
    if settings.method in vocab.BINARY_METHODS:
        return f"{vocab.BINARY_METHODS[settings.method].name} ({settings.method}, z)"
    return f"{model_words(settings.method)} model ({settings.method}, {vocab.TESTS[settings.test].label})"


def scenario_name(sc: Scenario, rows: RowText, settings) -> tuple[str, str]:
    """Name and description of a sensitivity scenario."""
    if sc.kind is ScenarioKind.RANDOM_EFFECTS:
        name = plan_model_words(settings)
        return name[0].upper() + name[1:], "the plan's pooled model, not the headline of this page"
    if sc.kind is ScenarioKind.SWAP:
        return "{} instead of {}".format(*rows.report_labels(sc.swap.with_, sc.swap.replace)), sc.swap.reason
    return SCENARIO_TEXT[sc.kind]


def caveat_text(c: Caveat, a: AnalysisResult, rows: RowText) -> str:
    """The sentence of one caveat, from the numbers of the analysis it belongs to."""
    k, lv = a.k, pct(a.settings.level)
    labels = ", ".join(rows.label(r) for r in c.rows)
    f = c.flag
    if f is Flag.SINGLE_STUDY:
        return ("One study: shown as a single-study result, not pooled; there is no between-study "
                "heterogeneity to estimate.")
    if f is Flag.FEW_STUDIES:
        return (f"Few studies (k = {k} < {vocab.FEW_STUDIES}): τ² is estimated very imprecisely (see its {lv} "
                f"CI below), and so are I², the prediction interval and the HKSJ interval.")
    if f is Flag.NO_FUNNEL:
        return (f"k = {k} < {vocab.FUNNEL_MIN_K}: no funnel plot and no Egger test (too little power to "
                f"detect small-study effects; Sterne et al. 2011, doi:{vocab.SMALL_STUDY.doi}).")
    if f is Flag.DERIVED_SE:
        return (f"SE derived from a reported p-value (no CI) for {labels}: rounded p-values make the SE "
                "imprecise; a bound such as p < 0.0001 gives a conservative SE.")
    if f is Flag.POST_HOC:
        return f"Post hoc subgroup or observational input: {labels}."
    if f is Flag.UNCONFIRMED:
        return f"Numbers not confirmed in a clean source, included by the plan: {labels}."
    if f is Flag.NOT_POOLABLE:
        return ("Selected but without a usable effect and SE: "
                + "; ".join(f"{rows.label(e.row_id)} ({e.reason or 'no usable effect and SE'})"
                            for e in a.not_pooled) + ".")
    if f is Flag.MISSING_EVIDENCE:
        return f"Known evidence missing from this analysis: {labels} (see Missing evidence)."
    if f is Flag.NO_POOLED_HEADLINE:
        return (f"With k = {k} studies no pooled estimate leads this page: τ² cannot be estimated usefully and "
                "a random-effects interval from two studies is either very wide or spuriously narrow (Bender et "
                f"al. 2018, doi:{vocab.BENDER2018.doi}). The studies are shown side by side; the pooled models "
                "are under Sensitivity analyses. A plan can lead with the common-effect model (headline = "
                "\"common\", with a reason) when the trials answer one question with one design.")
    if f is Flag.ROW_WARNING:
        return _row_warning_text(c, a)
    return _model_caveat_text(f, a)


def _model_caveat_text(f: Flag, a: AnalysisResult) -> str:
    res, z, m = a.result, a.z_result, a.measure
    if f is Flag.TAU2_ZERO:
        return (f"τ² is estimated as 0 with only k = {a.k}: this does not show the absence of heterogeneity "
                f"(the {pct(a.settings.level)} CI of τ² reaches {fmt_num(res.tau2_ci_upper, 4)}).")
    if f is Flag.HKSJ_NARROWER:
        return (f"The HKSJ CI is narrower than the Wald z CI ({natural_ci(m, res.ci_lower, res.ci_upper)} vs "
                f"{natural_ci(m, z.ci_lower, z.ci_upper)}): the studies agree more than their SEs predict; "
                "the ad hoc variant (test = \"adhoc\") would not let the CI shrink below the z CI "
                f"(Röver et al. 2015, doi:{vocab.HKSJ_NARROW.doi}).")
    if f is Flag.K2_T1:
        return _k2_text(a)
    if f is Flag.UNDERCOVERAGE:
        return _undercoverage_text(a)
    raise ValueError(f"no text for flag {f!r}")


def _k2_text(a: AnalysisResult) -> str:
    """k = 2 under a t-based interval: what t(1) does, with this analysis's own width ratio."""
    from .._dist import t_isf

    res, z = a.result, a.z_result
    q = float(t_isf((1 - a.settings.level) / 2, 1))
    ratio = (res.ci_upper - res.ci_lower) / (z.ci_upper - z.ci_lower)
    return (f"With k = 2 the {vocab.TESTS[a.settings.test].label} interval uses a t distribution with 1 degree "
            f"of freedom (quantile {fmt_num(q, 1)}): here the CI is {fmt_num(ratio, 1)} times as wide as the Wald "
            "z CI, and its width depends almost entirely on how far apart two estimates happen to fall. With "
            "two studies no frequentist random-effects interval is reliable (Bender et al. 2018, "
            "doi:10.1002/jrsm.1319).")


def natural_ci(measure: str, lo: float | None, hi: float | None, digits: int = 2) -> str:
    """An analysis-scale interval on the natural scale: "0.71 to 0.97"."""
    return fmt_ci(vocab.to_natural(measure, lo), vocab.to_natural(measure, hi), digits)


def funnel_note(k: int) -> str:
    if k >= vocab.FUNNEL_MIN_K:
        return ""
    return (f"No funnel plot: k = {k} < {vocab.FUNNEL_MIN_K} studies. Funnel plots and tests for funnel-plot "
            "asymmetry need at least 10 studies to distinguish chance from small-study effects "
            "(Sterne et al. 2011, BMJ 343:d4002; Cochrane Handbook 13.3.5.4).")


def subgroup_note(variable: str, n_groups: int, singles: int, tested: bool) -> str:
    if not tested:
        return f"only one level of {variable} among the pooled studies: no subgroup analysis"
    if singles:
        return (f"{singles} of {n_groups} subgroups hold a single study: the test for subgroup differences "
                "then mostly re-expresses between-study heterogeneity, and with this few studies it has "
                "little power; subgroup findings are observational comparisons across trials.")
    return ("Subgroup comparisons are across trials (observational), and with this few studies the test has "
            "little power.")


def headline_model(a: AnalysisResult) -> str:
    """The model the page leads with, in words (``random-effects``, ``common-effect``, ``Bayesian ...``)."""
    if a.headline is vocab.Headline.BAYES:
        return "Bayesian random-effects"
    if a.binary is not None:
        return f"{_binary_label(a.settings.method)} common-effect"
    return "common-effect" if a.headline is vocab.Headline.COMMON else model_words(a.settings.method)


def prior_words(b) -> str:
    """``half-normal prior on τ (scale 0.5)``: the τ prior of a Bayesian result, and the μ prior."""
    scale = (f"log τ² ~ N({fmt_num(b.tau_scale[0], 2)}, {fmt_num(b.tau_scale[1], 2)}²)"
             if b.tau_prior == "lognormal" else f"scale {fmt_num(b.tau_scale[0], 2)}")
    mu = "flat prior on μ" if b.mu_prior is None else \
        f"normal prior on μ (mean {fmt_num(b.mu_prior[0], 2)}, SD {fmt_num(b.mu_prior[1], 2)})"
    return f"{vocab.TAU_PRIORS[b.tau_prior].name} ({scale}), {mu}"


def forest_caption(a: AnalysisResult) -> str:
    """What the forest plot shows: boxes, diamond (model), PI, scale and which side favours what."""
    lv, m, lead = pct(a.settings.level), vocab.measure(a.measure), a.headline_result
    text = f"Boxes: study estimates (area ∝ weight) with {lv} CIs" if lead is not None else \
        f"Boxes: study estimates with {lv} CIs"
    if lead is not None:
        text += f"; diamond: pooled {headline_model(a)} estimate and CI"
        if lead.pi_lower is not None:
            text += f"; grey bar: {lv} prediction interval"
    elif a.headline is vocab.Headline.NONE and a.k >= 2:
        text += "; no pooled diamond (see Warnings)"
    elif a.headline is vocab.Headline.BAYES:
        text += "; no pooled diamond: the page leads with the Bayesian posterior (key result above)"
    scale = "Log scale; " if m.log_scale else ""
    return f"{text}. {scale}{m.code} < {fmt_num(m.null, 0)} favours {a.analysis.favours[0]}."


def methods_text(method: str, test: str, pi: str, level: float, measure: str) -> str:
    """One paragraph of methods text for these settings (vocabulary names and citations)."""
    if method in vocab.BINARY_METHODS:
        return binary_methods_text(method, level, measure)
    est, t, p = vocab.METHODS[method], vocab.TESTS[test], vocab.PREDICTION_INTERVALS[pi]
    lv = pct(level)
    scale = "on the log scale for ratio measures" if vocab.measure(measure).log_scale else "on the natural scale"
    if method == "FE":
        return f"Effects were pooled with a {est.name} {scale}; {lv} confidence intervals use the {t.name}."
    return (f"Effects were pooled with an inverse-variance random-effects model {scale}. The between-study "
            f"variance τ² was estimated with the {est.name}; {lv} confidence intervals and p-values use the "
            f"{t.name}. A {lv} {p.name} is shown. {vocab.HETEROGENEITY.name} are reported. "
            f"{vocab.I2_DEFINITION.name}. Computations reproduce metafor (rma.uni) to 1e-6.")


def citations(method: str, test: str, pi: str, measure: str = "OR") -> list[vocab.MethodInfo]:
    """The references a methods section for these settings must cite (no duplicates)."""
    if method in vocab.BINARY_METHODS:
        items = [vocab.BINARY_METHODS[method]] + ([vocab.MH_VARIANCE[measure]] if method == "MH" else []) + \
            ([vocab.CMH_TEST, vocab.TARONE_TEST] if method == "MH" and measure == "OR" else []) + \
            [vocab.TESTS["z"], vocab.I2_FROM_Q]
    else:
        items = [vocab.METHODS[method], vocab.TESTS[test], vocab.PREDICTION_INTERVALS[pi], vocab.HETEROGENEITY,
                 vocab.I2_DEFINITION]
    seen, out = set(), []
    for m in items:
        if m.citation not in seen:
            seen.add(m.citation)
            out.append(m)
    return out


#: Short column headers of the tests in the estimator panel.
PANEL_HEADERS = {"z": "Wald z", "knha": "HKSJ (t, k−1 df)", "adhoc": "Knapp–Hartung ad hoc (t, k−1 df, ≥ z)"}


def panel_note() -> str:
    """What the estimator codes of the panel stand for."""
    return " · ".join(f"{code} {_PANEL_NAMES[code]}" for code in vocab.ESTIMATOR_PANEL)


_PANEL_NAMES = {"DL": "DerSimonian–Laird", "REML": "restricted maximum likelihood", "ML": "maximum likelihood",
                "PM": "Paule–Mandel", "EB": "empirical Bayes (equals PM without moderators)",
                "HS": "Hunter–Schmidt", "SJ": "Sidik–Jonkman", "HE": "Hedges"}


def settings_rationale(method: str, test: str, pi: str) -> str:
    """Why the project's default settings are what they are; '' for settings a plan chose otherwise."""
    if method != "REML" or test not in ("knha", "adhoc"):
        return ""
    interval = ("the Knapp–Hartung interval with the ad hoc floor (variance multiplier max(1, q); Röver et al. "
                "2015; Jackson et al. 2017) keeps the coverage of the Hartung–Knapp–Sidik–Jonkman (HKSJ) interval "
                "with few studies and is never narrower than the Wald z interval, which plain HKSJ can be when "
                "the studies agree more than their SEs predict (q < 1)" if test == "adhoc" else
                "the Hartung–Knapp–Sidik–Jonkman (HKSJ) interval keeps its coverage with few studies, where the "
                "Wald z interval is too narrow")
    pred = ("a t distribution with k − 2 df (Higgins et al. 2009; Riley et al. 2011; Cochrane Handbook "
            "10.10.4.3); it is not estimable with k < 3" if pi == "riley" else
            "the same t quantile (k − 1 df) as the CI (metafor's predict); the Handbook's k − 2 df version "
            "(Riley et al. 2011) is not estimable with two studies and would be wider still")
    return (f"REML estimates τ² with less bias than DerSimonian–Laird, and {interval}; with Q-profile CIs for τ² "
            "and a prediction interval they are the random-effects methods Cochrane endorsed in 2022 and "
            f"implemented in RevMan in 2025. The prediction interval uses {pred}.")


def se_text(measure: str) -> str:
    """How study SEs were obtained, on this measure's scale."""
    m = vocab.measure(measure)
    if m.log_scale:
        return ("Study SEs come from the reported CI (ln(U/L) / (2·z)); where only a p-value is reported, from "
                "z = Φ⁻¹(1 − p/2) (flagged †). Analyses are on the log scale and shown back-transformed.")
    return ("Study SEs come from the reported CI ((U − L) / (2·z)); where only a p-value is reported, from "
            f"z = Φ⁻¹(1 − p/2) (flagged †). Analyses are on the {m.name.lower()} scale.")


def headline_why(a: AnalysisResult) -> str:
    """Why the page leads with its model: the plan's reason, or the few-studies rule."""
    if a.analysis.headline_reason:
        return a.analysis.headline_reason
    if a.headline is vocab.Headline.NONE and a.k >= 2:
        return (f"with {a.k} studies no random-effects interval is reliable (Bender et al. 2018); the plan names "
                "no common-effect judgement, so no pooled estimate leads. Pooled models: Sensitivity analyses.")
    if a.headline is vocab.Headline.BAYES and a.k < vocab.RANDOM_HEADLINE_MIN_K:
        return (f"with {a.k} studies no frequentist random-effects interval is reliable (Bender et al. 2018); the "
                f"Bayesian posterior ({prior_words(a.bayes)}) carries the uncertainty "
                "about τ into the interval (Friede et al. 2017; Röver et al. 2021). Frequentist models: "
                "Sensitivity analyses.")
    return ""


def k_text(a: AnalysisResult) -> str:
    """The subtitle's count: "3 studies pooled", "2 studies, not pooled for the headline", ..."""
    if a.k == 0:
        return "no study to pool"
    if a.k == 1:
        return "1 study, not pooled"
    if a.headline is vocab.Headline.NONE:
        return f"{a.k} studies, not pooled for the headline"
    if a.headline is vocab.Headline.BAYES:
        return f"{a.k} studies, Bayesian random effects"
    return f"{a.k} studies pooled"


def no_missing_text(a: AnalysisResult, rows: RowText) -> str:
    """The Missing-evidence section when nothing is missing: true of the pooled rows too."""
    unconfirmed = [rows.label(st.row_id) for st in a.studies if StudyFlag.UNCONFIRMED in st.flags]
    if not unconfirmed:
        return "No registry row for this question is marked missing or unconfirmed."
    text = f"No registry row for this question is marked missing. Pooled here although unconfirmed (‡): " \
        f"{', '.join(unconfirmed)}"
    if any(sc.kind is ScenarioKind.EXCLUDE_UNCONFIRMED for sc in a.scenarios):
        return text + "; see the sensitivity analysis of confirmed results only."
    return text + "."


#: Names of the interval methods of a coverage table.
INTERVAL_NAMES = {"z": "Wald z", "knha": "HKSJ (t, k−1 df)", "adhoc": "Knapp–Hartung ad hoc",
                  "FE": "common effect (z)", vocab.BAYES_INTERVAL: "Bayesian central credible"}
GRID_LABELS = {vocab.GridRole.ZERO: "τ² = 0", vocab.GridRole.ESTIMATE: "τ² = estimate",
               vocab.GridRole.QPROFILE_UPPER: "τ² = upper Q-profile bound",
               vocab.GridRole.PRIOR_MEDIAN: "τ² = prior median"}
#: The grid's τ² values in a sentence ("at τ² = 0, the estimate and ...").
_GRID_PHRASES = {vocab.GridRole.ZERO: "0", vocab.GridRole.ESTIMATE: "the estimate",
                 vocab.GridRole.QPROFILE_UPPER: "the upper Q-profile bound",
                 vocab.GridRole.PRIOR_MEDIAN: "the prior median of τ²"}


def _undercoverage_text(a: AnalysisResult) -> str:
    code, lv = headline_interval(a), a.settings.level
    worst = min((r for r in a.coverage.rows if r.interval == code), key=lambda r: r.coverage)
    return (f"In {worst.n_sim:,} meta-analyses simulated with these studies' own standard errors, the "
            f"headline {INTERVAL_NAMES[code]} interval covered the true effect only "
            f"{fmt_num(100 * worst.coverage, 1)}% of the time at τ² = {fmt_num(worst.tau2, 4)} (nominal "
            f"{pct(lv)}; see Coverage)." + (" A Bayesian interval keeps its level on average over its prior for τ, "
                                            "not at every τ²." if code == vocab.BAYES_INTERVAL else ""))


def coverage_bayes_note(a: AnalysisResult) -> str:
    """What the coverage table's Bayesian row is ('' when it has none)."""
    if a.bayes is None or vocab.BAYES_INTERVAL not in a.coverage.intervals:
        return ""
    return (f"The Bayesian row is the central {pct(a.settings.level)} credible interval of μ under this page's "
            f"prior ({prior_words(a.bayes)}), computed for every simulated meta-analysis.")


def coverage_summary(a: AnalysisResult) -> str:
    """One sentence on what the coverage table says about the interval the page leads with."""
    code, table = headline_interval(a), a.coverage
    if code is None or code not in table.intervals:
        return ("No pooled interval leads this page; the table shows how each interval method would have "
                "performed for this design.")
    rows = [r for r in table.rows if r.interval == code]
    lo = min(r.coverage for r in rows)
    verdict = ("at or above the nominal level within Monte-Carlo error" if not any(c.flag is Flag.UNDERCOVERAGE
               for c in a.caveats) else "below the nominal level")
    return (f"The interval this page leads with ({INTERVAL_NAMES[code]}) covered the true effect in at least "
            f"{fmt_num(100 * lo, 1)}% of simulated meta-analyses at every τ² shown: {verdict}.")


def coverage_off_text(a: AnalysisResult) -> str:
    """Why a pooled random-effects page has no coverage table: the plan turned the simulation off
    (``coverage = false``); '' when it ran or does not apply."""
    if a.coverage is not None or not coverage_turned_off(a):
        return ""
    code = headline_interval(a)
    what = (f"whether the {INTERVAL_NAMES[code]} interval this page leads with under-covers" if code is not None
            else "how each interval method covers")
    return ("The design-specific coverage simulation was not run: the plan turned it off (coverage = false), "
            f"so no check was made of {what} with these {a.k} studies' standard errors.")


def analysis_methods_text(a: AnalysisResult) -> str:
    """The methods paragraph of what was actually run: the plan's model, then what leads the page
    and why, then the coverage simulation (when there is one)."""
    s = a.settings
    text = methods_text(s.method, s.test, s.pi, s.level, a.measure)
    if a.headline is vocab.Headline.NONE and a.k >= 2:
        text += (f" With {a.k} studies no pooled estimate leads the page (Bender et al. 2018); the pooled "
                 "models are reported as sensitivity analyses.")
    elif a.headline is vocab.Headline.COMMON and a.binary is None:
        text += (" The page leads with the inverse-variance common-effect model (z interval), as the plan "
                 f"judged: {a.analysis.headline_reason}")
    if a.bayes is not None:
        lead = "leads the page" if a.headline is vocab.Headline.BAYES else "is reported alongside"
        text += (f" A Bayesian random-effects analysis ({prior_words(a.bayes)}; posterior by exact quadrature, as "
                 f"bayesmeta) {lead}.")
    if a.coverage is not None:
        text += coverage_methods_text(a)
    elif coverage_turned_off(a):
        text += " The design-specific coverage of the intervals was not simulated (the plan turned it off)."
    return text


def coverage_methods_text(a: AnalysisResult) -> str:
    """The methods paragraph's sentence on the coverage simulation: what was simulated, where."""
    table = a.coverage
    bayes = vocab.BAYES_INTERVAL in table.intervals
    what = ("each interval method for this design, including the Bayesian central credible interval under the "
            "same prior (a frequentist check of a Bayesian interval, as in Friede et al. 2017)," if bayes else
            "each interval method for this design")
    phrases = [_GRID_PHRASES[role] for role, _ in a.coverage_grid]
    grid = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return (f" The coverage of {what} was simulated at τ² = {grid} (fixed seed; Morris et al. 2019): each "
            f"simulated meta-analysis counts with the probability that its interval covers the true effect "
            f"given its residuals (conditional Monte Carlo, Ross 2013)"
            + (", adjusted by control variates of exactly known mean (Nelson 1990)" if table.control_variates else "")
            + ", " + _replicates_text(table) + ".")


def replicate_range(table) -> str:
    """The numbers of simulated meta-analyses a coverage table's rows used: "10,000" or "1,000 to 8,000"."""
    used = sorted({r.n_sim for r in table.rows})
    return f"{used[0]:,}" if len(used) == 1 else f"{used[0]:,} to {used[-1]:,}"


def _replicates_text(table) -> str:
    """How many simulated meta-analyses a coverage table used, and why that many."""
    if table.mcse_target is None:
        return f"{replicate_range(table)} of them per interval and τ²"
    cap = "" if max(r.n_sim for r in table.rows) == table.n_sim else f" (at most {table.n_sim:,})"
    return (f"{replicate_range(table)} of them per interval and τ²{cap}, until the "
            f"Monte-Carlo SE was at most {fmt_num(100 * table.mcse_target, 1)} percentage points")


def analysis_citations(a: AnalysisResult) -> list[vocab.MethodInfo]:
    """The references the methods paragraph of this analysis needs."""
    out = citations(a.settings.method, a.settings.test, a.settings.pi, a.measure)
    if a.headline in (vocab.Headline.NONE, vocab.Headline.BAYES) and a.k < vocab.RANDOM_HEADLINE_MIN_K:
        out.append(vocab.BENDER2018)
    if a.bayes is not None:
        out += [vocab.BAYESMETA, vocab.MethodInfo(a.bayes.tau_prior, vocab.TAU_PRIORS[a.bayes.tau_prior].name,
                                                  vocab.TAU_PRIORS[a.bayes.tau_prior].citation,
                                                  vocab.TAU_PRIORS[a.bayes.tau_prior].doi, "")]
    if a.coverage is not None:
        out += [vocab.COVERAGE_SIMULATION, vocab.CONDITIONAL_MONTE_CARLO]
        if a.coverage.control_variates:
            out.append(vocab.CONTROL_VARIATES)
        if vocab.BAYES_INTERVAL in a.coverage.intervals:
            out.append(vocab.BAYES_COVERAGE)
    return out


# ---------------------------------------------------------------------------------------------
# living evidence: what changed since the previous build (metaanalysis.changes)
# ---------------------------------------------------------------------------------------------

#: Names of the fields a changelog compares (registry columns, the row's effect).
CHANGE_FIELD_NAMES: dict[str, str] = {
    "estimate": "estimate", "ci_lower": "CI lower bound", "ci_upper": "CI upper bound", "ci_level": "CI level",
    "p_value": "p-value", "p_sided": "p sided", "n_int": "n intervention", "n_ctl": "n control",
    "events_int": "events intervention", "events_ctl": "events control", "followup_months": "follow-up (months)",
    "status": "status", "use_for_pooling": "use_for_pooling", "design": "design", "year": "year",
    "report": "report", "yi": "yi", "vi": "vi",
}
#: What a page leads with, as the changelog says it.
HEADLINE_WORDS: dict[str, str] = {
    vocab.Headline.RANDOM.value: "the random-effects model", vocab.Headline.COMMON.value: "the common-effect model",
    vocab.Headline.NONE.value: "no pooled estimate (studies side by side)",
    vocab.Headline.BAYES.value: "the Bayesian random-effects posterior",
    vocab.Headline.SINGLE.value: "a single study as reported",
}


def change_value(v) -> str:
    """A registry value of the changelog: numbers as entered (``0.823``), empty cells as "empty"."""
    if v is None or v == "":
        return "empty"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def study_change_text(sc, label: str) -> str:
    """``"ABCSG-18 (Gnant 2019) added"`` or ``"…: CI upper bound 0.98 → 1.02; status …"``."""
    from ..changes import StudyChangeKind

    if sc.kind is StudyChangeKind.ADDED:
        return f"{label} added"
    if sc.kind is StudyChangeKind.REMOVED:
        return f"{label} removed"
    registry = [f for f in sc.fields if f.field not in ("yi", "vi")]
    if not registry:   # the same registry cells, another effect: the derivation changed
        return f"{label}: effect recomputed (" + "; ".join(
            f"{f.field} {fmt_num(f.old, 4)} → {fmt_num(f.new, 4)}" for f in sc.fields) + ")"
    return f"{label}: " + "; ".join(f"{CHANGE_FIELD_NAMES.get(f.field, f.field)} {change_value(f.old)} → "
                                    f"{change_value(f.new)}" for f in registry)


def lead_text(snap) -> str:
    """An analysis snapshot's lead result: ``"HR 0.88 (95% CI 0.71 to 1.10; PI …), τ² 0.0005, I² 6.1%, k = 3"``."""
    if snap is None:
        return "not in the plan"
    lead, m, lv = snap.lead, snap.measure, pct(snap.level)
    if lead is None:
        return f"k = {snap.k}: no pooled result"
    if snap.k == 1:
        return (f"single study: {m} {fmt_num(vocab.to_natural(m, lead.estimate))} "
                f"({lv} CI {natural_ci(m, lead.ci_lower, lead.ci_upper)})")
    bayes = snap.headline is vocab.Headline.BAYES       # posterior median, credible and predictive intervals
    text = (f"{m} {fmt_num(vocab.to_natural(m, lead.estimate))} ({lv} {'CrI' if bayes else 'CI'} "
            f"{natural_ci(m, lead.ci_lower, lead.ci_upper)}"
            + (f"; PI {natural_ci(m, lead.pi_lower, lead.pi_upper)}" if lead.pi_lower is not None else "") + ")")
    i2 = f", I² {fmt_num(lead.i2, 1)}%" if lead.i2 is not None else ""
    return f"{text}{' (posterior median)' if bayes else ''}, τ² {fmt_num(lead.tau2, 4)}{i2}, k = {snap.k}"


def _settings_words(settings) -> str:
    method, test, pi, level = settings
    return f"{method}, {vocab.TESTS[test].label if test in vocab.TESTS else test}, PI {pi}, level {pct(level)}"


def conclusion_change_text(c, snap) -> str:
    """The sentence of one :class:`~metaanalysis.changes.ConclusionChange` of analysis ``snap`` (its
    newest snapshot: measure and level)."""
    m, lv, code = snap.measure, pct(snap.level), c.code
    alpha = f"{1 - snap.level:.10g}"
    null = f"{m} = {fmt_num(c.reference, 2 if c.reference not in (0, 1) else 0)}" if c.reference is not None else ""
    nat = (lambda x: fmt_num(vocab.to_natural(m, x), 3))
    bayes = snap.headline is vocab.Headline.BAYES
    interval = ("credible interval" if bayes else "CI") if code in (
        vocab.Change.CI_NOW_CROSSES_NULL, vocab.Change.CI_NO_LONGER_CROSSES_NULL) \
        else ("predictive interval" if bayes else "prediction interval")
    texts = {
        vocab.Change.ANALYSIS_ADDED: lambda: "New analysis in the plan.",
        vocab.Change.ANALYSIS_REMOVED: lambda: "No longer in the plan.",
        vocab.Change.HEADLINE_CHANGED: lambda: f"The page now leads with {HEADLINE_WORDS.get(c.new, c.new)} "
                                               f"(before: {HEADLINE_WORDS.get(c.old, c.old)}).",
        vocab.Change.SETTINGS_CHANGED: lambda: f"The plan's model changed: {_settings_words(c.old)} → "
                                               f"{_settings_words(c.new)}.",
        vocab.Change.NOW_SIGNIFICANT: lambda: f"Now statistically significant at α = {alpha} "
                                              f"(p {_p_change(c.old)} → {_p_change(c.new)}).",
        vocab.Change.NO_LONGER_SIGNIFICANT: lambda: f"No longer statistically significant at α = {alpha} "
                                                    f"(p {_p_change(c.old)} → {_p_change(c.new)}).",
        vocab.Change.DIRECTION_CHANGED: lambda: f"The estimate moved to the other side of {null}: "
                                                f"{nat(c.old)} → {nat(c.new)}.",
        vocab.Change.THRESHOLD_CROSSED: lambda: f"The estimate crossed the plan's threshold {null}: "
                                                f"{nat(c.old)} → {nat(c.new)}.",
        vocab.Change.CAVEAT_ADDED: lambda: f"New caveat: {_flag_label(c.new)}.",
        vocab.Change.CAVEAT_REMOVED: lambda: f"Caveat no longer raised: {_flag_label(c.old)}.",
    }
    if code in texts:
        return texts[code]()
    now = code in (vocab.Change.CI_NOW_CROSSES_NULL, vocab.Change.PI_NOW_CROSSES_NULL)
    return (f"The {lv} {interval} {'now includes' if now else 'no longer includes'} {null} (no effect): "
            f"{natural_ci(m, *c.old, digits=3)} → {natural_ci(m, *c.new, digits=3)}.")


def _p_change(p: float | None) -> str:
    """A p-value of a significance change: 4 decimals (0.0495 → 0.0551 must not read 0.050 → 0.055)."""
    from .format import fmt_p

    return fmt_p(p, 0.0001) if p is None or p < 0.0001 else f"{p:.4f}"


def _flag_label(code: str) -> str:
    try:
        return FLAG_LABELS[Flag(code)]
    except (ValueError, KeyError):
        return code


def changes_summary(changelog) -> str:
    """The index's one line on what changed since the previous build ('' when there was none)."""
    from ..changes import Baseline

    if changelog.baseline is Baseline.NONE:
        return ""
    if changelog.baseline is Baseline.UNREADABLE:
        return "The previous build could not be read: no changes are shown."
    if not changelog.analyses:
        return "No result changed since the previous build."
    return f"{_since(changelog)}, {change_count_text(changelog)}"


def _since(changelog) -> str:
    """What a changelog is measured from: the previous build, or (carried forward over a rebuild
    from the same inputs) the last build with another registry or plan."""
    return ("Since the last build with a different registry or plan" if changelog.carried
            else "Since the previous build")


def change_count_text(changelog) -> str:
    """``"2 analyses changed; a conclusion changed in 1 of them."``"""
    n = len(changelog.analyses)
    if not n:
        return "no analysis changed."
    moved = sum(a.conclusions_changed for a in changelog.analyses)
    which = "analysis" if n == 1 else "analyses"
    tail = (f"a conclusion changed in {moved} of them." if moved else "no conclusion changed.") if n > 1 else \
        ("its conclusion changed." if moved else "no conclusion changed.")
    return f"{n} {which} changed; {tail}"


def analysis_change_summary(ac, changelog) -> str:
    """One analysis page's line on what changed since the previous build (or the one carried forward)."""
    return (f"{_since(changelog)}, a conclusion of this analysis changed." if ac.conclusions_changed
            else f"{_since(changelog)}, the numbers of this analysis moved; no conclusion changed.")


def changes_text(changelog) -> str:
    """The changelog as plain text (``metaanalysis diff``): a summary line, then per changed
    analysis its conclusion changes (``!`` alters a conclusion, ``·`` does not), its lead result
    before and now, and its rows that changed (by row id)."""
    head = change_count_text(changelog)
    lines = [head[0].upper() + head[1:]]
    for ac in changelog.analyses:
        snap = ac.current
        lines += ["", f"{ac.id}: {snap.title}"]
        lines += [f"  {'!' if c.alters_conclusion else '·'} {conclusion_change_text(c, snap)}" for c in ac.conclusions]
        if ac.old is not None and ac.new is not None:
            lines += [f"  before: {lead_text(ac.old)}", f"  now:    {lead_text(ac.new)}"]
        lines += [f"  row {study_change_text(sc, sc.row_id)}" for sc in ac.studies]
    return "\n".join(lines) + "\n"


#: What this build changed about a study of the cumulative path.
CUMULATIVE_CHANGE_WORDS: dict[str, str] = {"added": "added in this build", "changed": "corrected in this build",
                                           "removed": "removed in this build"}


def cumulative_point_text(measure: str, p) -> str:
    """A cumulative step's pooled estimate and CI on the natural scale, ``"0.83 (0.68 to 1.00)"``; "–" for none."""
    if p is None:
        return "–"
    return f"{fmt_num(vocab.to_natural(measure, p.estimate))} ({natural_ci(measure, p.ci_lower, p.ci_upper)})"


def _row_warning_text(c: Caveat, a: AnalysisResult) -> str:
    """The registry check's warnings about rows pooled here, each with its file, line and column."""
    return ("The registry check warned about rows pooled here; check them in the source before relying on "
            "this result: " + "; ".join(p.format() for p in c.problems) + ".")


# risk of bias (RoB 2) and the GRADE summary of findings
# ---------------------------------------------------------------------------------------------

SCENARIO_TEXT[ScenarioKind.LOW_RISK_OF_BIAS] = (
    "Low risk of bias only", "only results judged at low risk of bias overall (RoB 2) pooled")

#: Traffic-light cell of a RoB 2 judgement: (letter, CSS class, words); the letter carries the
#: meaning without colour (as robvis does: + low, − some concerns, × high, ? not assessed).
ROB_CELLS = {
    vocab.RobJudgement.LOW: ("+", "rob-low", "low risk of bias"),
    vocab.RobJudgement.SOME_CONCERNS: ("−", "rob-some", "some concerns"),
    vocab.RobJudgement.HIGH: ("×", "rob-high", "high risk of bias"),
    vocab.RobJudgement.NOT_ASSESSED: ("?", "rob-na", "not assessed"),
}

CERTAINTY_WORDS = {vocab.Certainty.HIGH: "High", vocab.Certainty.MODERATE: "Moderate",
                   vocab.Certainty.LOW: "Low", vocab.Certainty.VERY_LOW: "Very low"}
DOMAIN_NAMES = {vocab.GradeDomain.RISK_OF_BIAS: "Risk of bias", vocab.GradeDomain.INCONSISTENCY: "Inconsistency",
                vocab.GradeDomain.INDIRECTNESS: "Indirectness", vocab.GradeDomain.IMPRECISION: "Imprecision",
                vocab.GradeDomain.PUBLICATION_BIAS: "Publication bias"}


def certainty_symbols(c: vocab.Certainty) -> str:
    """``⊕⊕⊕◯`` for moderate: filled circles for the certainty, open ones for the rest."""
    return "⊕" * int(c) + "◯" * (4 - int(c))


def grade_reason_text(r: vocab.GradeReason, sof, rob_path: str = "") -> str:
    """The footnote sentence of one reason code (numbers from the SoF row)."""
    R = vocab.GradeReason
    texts = {
        R.CI_CROSSES_NULL: "the CI includes no effect",
        R.CI_CROSSES_THRESHOLD: "the CI crosses the plan's threshold of a minimal important effect",
        R.OIS_NOT_MET: f"{sof.events} events, fewer than the optimal information size of "
                       f"{fmt_num(sof.ois_events, 0)} (Schoenfeld, α = 0.05, power 0.8)",
        R.OIS_MET: f"{sof.events} events reach the optimal information size of {fmt_num(sof.ois_events, 0)}",
        R.OIS_NOT_COMPUTABLE: ("optimal information size not computed: "
                               + ("event counts are not known for every pooled study" if sof.measure == "HR"
                                  else f"computed for hazard ratios only, not {sof.measure}")),
        R.NO_INTERVAL: "no pooled interval to judge (the page leads with no pooled estimate)",
        R.I2_HIGH: f"I² at or above {fmt_num(vocab.GRADE_I2_SERIOUS, 0)}%",
        R.PI_CROSSES_NULL: "the prediction interval includes no effect while the CI does not",
        R.SINGLE_STUDY: "one study: consistency cannot be assessed",
        R.ROB_NOT_ASSESSED: "no pooled result has a published RoB 2 assessment (trials/rob.csv): risk of bias "
                            "could not be assessed and was not rated down",
        R.ROB_PARTLY_ASSESSED: "some pooled results have no published RoB 2 assessment",
        R.ROB_HIGH_WEIGHT: f"results at high risk of bias carry more than {fmt_num(vocab.ROB_WEIGHT_SHARE, 0)}% of "
                           "the weight",
        R.ROB_CONCERNS_WEIGHT: f"results with some concerns or high risk carry more than "
                               f"{fmt_num(vocab.ROB_WEIGHT_SHARE, 0)}% of the weight",
        R.PLAN_JUDGEMENT: "judged in the plan",
        R.NOT_IN_PLAN: "no judgement recorded in the plan: not assessed",
        R.NO_BASELINE_RISK: "absolute effects not shown: the plan gives no baseline risk and not every pooled "
                            "trial reports its control-arm events and participants",
        R.NO_ABSOLUTE_FOR_MEASURE: f"absolute effects are computed for HR, RR and OR only, not {sof.measure}",
        R.NO_RELATIVE_EFFECT: "absolute effects not shown: the page leads with no pooled estimate",
        R.OBSERVATIONAL: "certainty starts low: a pooled result is a post hoc subgroup or observational",
    }
    return texts.get(r, r.value)


def baseline_words(b) -> tuple[str, str]:
    """Label and source of a baseline risk (a registry-derived one is described from its rows)."""
    if b.rows:
        return ("control arms of the pooled trials (crude proportion at each trial's follow-up)",
                "registry events_ctl / n_ctl of " + ", ".join(b.rows))
    return b.label, b.source


def per_1000(p: float) -> str:
    return fmt_num(1000 * p, 0)


#: What each downloadable file of an analysis holds (index list, links on the page).
DOWNLOAD_TEXTS = {
    "json": "every result field and each study's yi, vi, weight and flags",
    "studies_csv": "one row per study: estimate, CI and p as reported, n and events per arm, yi, vi, "
                   "SE source, weight, flag codes",
    "forest_svg": "the forest plot as a standalone SVG file (font embedded)",
    "forest_png": "the forest plot as a PNG image (150 dpi)",
    "funnel_svg": "the funnel plot as a standalone SVG file (font embedded)",
    "funnel_png": "the funnel plot as a PNG image (150 dpi)",
    "r_script": "R script that reproduces the main model with metafor (data inline, rma.uni, predict, "
                "confint, forest)",
}
#: The combined reference list of the studies pooled in any analysis.
REFERENCES_TEXTS = {
    "references.ris": "reference list of the included studies (RIS, for reference managers)",
    "references.bib": "the same list as BibTeX",
}


#: What each flag means, in general (the index's legend; each page's Warnings give the numbers).
FLAG_EXPLANATIONS: dict[Flag, str] = {
    Flag.SINGLE_STUDY: "Only one study: its own result is shown; nothing is pooled.",
    Flag.FEW_STUDIES: (f"Fewer than {vocab.FEW_STUDIES} studies: how much the studies differ is estimated very "
                       "imprecisely, and so is the prediction interval."),
    Flag.NO_FUNNEL: (f"Fewer than {vocab.FUNNEL_MIN_K} studies: too few to look for small-study effects or "
                     "publication bias."),
    Flag.DERIVED_SE: "A study reported no confidence interval; its uncertainty was worked out from its p-value.",
    Flag.POST_HOC: "A result comes from a subgroup chosen after the fact or from an observational study.",
    Flag.UNCONFIRMED: "Some numbers could not be checked against a clean source.",
    Flag.TAU2_ZERO: ("The studies' spread was estimated as zero; with few studies this does not show that "
                     "they agree."),
    Flag.HKSJ_NARROWER: ("The interval is narrower than the standard one because the studies agree closely; "
                         "it may be too narrow."),
    Flag.K2_T1: "With two studies the interval is very wide and depends on how far apart the two results fall.",
    Flag.NOT_POOLABLE: "A selected study reported too little to be pooled.",
    Flag.MISSING_EVIDENCE: "Results known to exist are not available for this analysis.",
    Flag.NO_POOLED_HEADLINE: "With two studies no pooled number leads the page; the studies are shown side by side.",
    Flag.UNDERCOVERAGE: ("Simulations for this design show the interval misses the true effect more often than "
                         "its level promises."),
    Flag.ROW_WARNING: "The registry check raised a warning about a study pooled here; the warning is quoted.",
}


def short_titles(titles: list[str]) -> list[str]:
    """Navigation titles: each title up to its colon ("Overall survival"); where two titles share
    that, the words after the colon up to a bracket or comma are kept too, to tell them apart."""
    heads = [t.split(":")[0].strip() for t in titles]
    out = []
    for t, h in zip(titles, heads):
        if heads.count(h) > 1 and ":" in t:
            tail = t.split(":", 1)[1].split("(")[0].split(",")[0].strip()
            h = f"{h}: {tail}"
        out.append(h.split(" (")[0].strip() or t)
    return out


def settings_words(settings, k: int) -> str:
    """The model settings in words (the line under an analysis's title)."""
    if k < 2:
        return ""
    if settings.method in vocab.BINARY_METHODS:
        return (f"{vocab.BINARY_METHODS[settings.method].name} on the 2×2 tables; z confidence "
                f"interval; {pct(settings.level)} level")
    model = ("common-effect model" if settings.method == "FE" else
             f"random-effects model ({vocab.METHODS[settings.method].name} of the between-study spread)")
    pi = {"metafor": "prediction interval from the same distribution as the CI",
          "riley": "prediction interval with k − 2 degrees of freedom (Riley)"}.get(settings.pi, settings.pi)
    return f"{model}; {vocab.TESTS[settings.test].label} confidence interval; {pi}; {pct(settings.level)} level"


def mean_test_words(main: dict) -> str:
    """The test of no effect of the key result: "p = 0.42 (t = −1.01, 2 degrees of freedom)"."""
    df = f", {main['df']} degrees of freedom" if main.get("stat_name") == "t" else ""
    return f"{main['p_eq']} ({main['stat_name']} = {main['z']}{df})"


#: Where a study's standard error came from (the Studies table), in words.
SE_SOURCE_WORDS = {"ci": "its reported CI", "p": "its p-value", "2x2": "its 2×2 counts"}


# ---------------------------------------------------------------------------------------------
# binary outcomes pooled from 2x2 tables (Mantel-Haenszel, Peto)
# ---------------------------------------------------------------------------------------------


def _binary_label(method: str) -> str:
    return {"MH": "Mantel–Haenszel", "Peto": "Peto"}[method]


def binary_methods_text(method: str, level: float, measure: str) -> str:
    """The methods paragraph of a Mantel-Haenszel or Peto analysis (metafor rma.mh / rma.peto)."""
    lv, name = pct(level), vocab.measure(measure).name.lower()
    if method == "Peto":
        pooled = ("Odds ratios were pooled from the studies' 2×2 tables with Peto's one-step method (Σ(O − E)/ΣV, "
                  "a common-effect model); heterogeneity is Peto's Q")
    else:
        pooled = (f"The {name} was pooled from the studies' 2×2 tables with the Mantel–Haenszel method (a "
                  f"common-effect model), its variance by the {vocab.MH_VARIANCE[measure].name.split(' variance')[0]} "
                  "estimator; heterogeneity is Cochran's Q of the studies' inverse-variance effects around it")
        if measure == "OR":
            pooled += (", with Tarone's test, and the Cochran–Mantel–Haenszel test of no association "
                       "(continuity-corrected)")
    zero = ("tables without events (or with only events) in both arms carry no information about a ratio and "
            "are not pooled" if measure != "RD" else
            "tables without events (or with only events) in both arms are pooled (a risk difference of 0)")
    return (f"{pooled}. I² = (Q − df)/Q. No continuity correction enters the pooled estimate; the study effects "
            f"shown add 1/2 to every cell of a table with a zero cell, and {zero}. {lv} confidence "
            "intervals and p-values use the Wald z test. Computations reproduce metafor (rma.mh / rma.peto) to "
            "1e-6.")


def binary_tests_text(a: AnalysisResult) -> str:
    """The Mantel-Haenszel tests of odds ratios in words: CMH test of no association and Tarone's test
    ('' for other measures and methods, or where metafor gives none)."""
    b = a.binary
    if b is None or b.method != "MH" or b.measure != "OR" or b.cmh != b.cmh:
        return ""
    text = (f"Cochran–Mantel–Haenszel test of no association: χ² = {fmt_num(b.cmh, 2)} (1 df), "
            f"{fmt_p_eq(b.cmh_pvalue)}.")
    if b.tarone_pvalue == b.tarone_pvalue:    # not NaN: at least two informative tables
        text += (f" Tarone's test for heterogeneity of the odds ratios: χ² = {fmt_num(b.tarone, 2)} "
                 f"({b.k_pos - 1} df), {fmt_p_eq(b.tarone_pvalue)}.")
    return text


def binary_se_text(method: str) -> str:
    """How the study effects of a binary analysis were obtained."""
    what = "Peto's log odds ratio (O − E)/V" if method == "Peto" else "the log odds ratio, log risk ratio or risk difference"
    return (f"Study effects are {what} from each study's 2×2 counts (metafor escalc), shown back-transformed for "
            "ratios; the pooled estimate uses the counts themselves.")


# ---------------------------------------------------------------------------------------------
# evidence that is not pooled: figures and the sign test on effect direction (SWiM)
# ---------------------------------------------------------------------------------------------

#: Headings of a narrative section's figures.
NARRATIVE_FIGURE_HEADINGS = {vocab.NarrativeFigure.FOREST: "Results side by side",
                             vocab.NarrativeFigure.ALBATROSS: "p-values by direction and sample size (albatross plot)",
                             vocab.NarrativeFigure.PROPORTIONS: "Proportions with their confidence intervals"}
#: Accessible names of the figures (``aria-label``; a prefix the tests look for).
NARRATIVE_FIGURE_LABELS = {vocab.NarrativeFigure.FOREST: "Results side by side",
                           vocab.NarrativeFigure.ALBATROSS: "Albatross plot",
                           vocab.NarrativeFigure.PROPORTIONS: "Proportions plot"}
NARRATIVE_FOREST_CAPTION = ("Each result with its reported CI, not pooled: no diamond and no weights (SWiM reporting "
                            "guideline, Campbell et al. 2020). Log scale; values below 1 favour denosumab.")
ALBATROSS_SIDES = ("← Points to harm", "Points to benefit →")
ALBATROSS_AXES = ("Two-sided p-value (log scale)", "Sample size (log scale)")
PROPORTION_AXIS = "Proportion with the outcome (%)"
SIGN_TEST_NOTE = ("Vote counting on the direction of effect, not on statistical significance (SWiM item 5; "
                  "Hilton Boon & Thomson 2021). Only independent results count: results of one patient set "
                  "are one vote.")
DECLARED_INTRO = "These results have a p-value but no estimate; the plan states the direction each source reports."
DIRECTION_WORDS = {vocab.EffectDirection.BENEFIT: "benefit", vocab.EffectDirection.HARM: "harm",
                   vocab.EffectDirection.NONE: "no difference", vocab.EffectDirection.MIXED: "mixed"}


def p_as_reported(text: str) -> str:
    """A registry p-value cell in running text: ``<0.0001`` -> ``p < 0.0001``, ``0.0172`` -> ``p = 0.0172``."""
    t = text.strip()
    for op in ("<=", ">=", "≤", "≥", "<", ">"):
        if t.startswith(op):
            return f"p {op} {t[len(op):].strip()}"
    return f"p = {t}"


def albatross_key(number: str, label: str, n: int, p_text: str) -> str:
    """One line of the albatross plot's key: ``1 · Liede 2018: ORR, melanoma (n = 66, p = 0.0172)``
    (one space each side: SVG text collapses a double space)."""
    return f"{number} · {label} (n = {n}, {p_as_reported(p_text)})"


def albatross_caption(points, omitted_labels: list[str], alpha: float) -> str:
    """The albatross plot's caption, every clause true of the points it describes."""
    parts = [f"Each result's two-sided p-value, on the side of its reported direction, against its sample "
             f"size (Harrison et al. 2017). Dashed lines: p = {fmt_num(alpha, 2)}."]
    if any(p.bound for p in points):
        parts.append("An arrow marks a p-value reported only as a bound (p < x): it is drawn at the bound and "
                     "the true p-value lies further out.")
    sets = sorted({p.patient_set for p in points})
    if len(sets) < len(points):
        parts.append(f"The {len(points)} results come from {len(sets)} patient set{'s' if len(sets) != 1 else ''} "
                     f"({', '.join(sets)}): they are not independent of each other.")
    parts.append("No effect contours: the source reports no effect measure or test for these p-values, so no "
                 "effect size can be attached to a p-value and a sample size.")
    if omitted_labels:
        parts.append(f"Not drawn (no sample size, direction or usable p-value): {'; '.join(omitted_labels)}.")
    return " ".join(parts)


def sign_test_text(st, alpha: float) -> str:
    """What the sign test on effect direction for one outcome found, or why it was not run."""
    from ..synthesis import sign_test_min_p

    units = "; ".join(f"{u.patient_set}: {len(u.rows)} result{'s' if len(u.rows) != 1 else ''}, "
                      f"{DIRECTION_WORDS[u.direction]}" for u in st.units)
    once = "; several results of one patient set count once" if any(len(u.rows) > 1 for u in st.units) else ""
    head = f"{st.endpoint}: {len(st.units)} independent patient set{'s' if len(st.units) != 1 else ''} ({units}){once}."
    if st.note is vocab.SignTestNote.NO_DIRECTION:
        return f"{head} No patient set has a single direction: no sign test."
    if st.note is vocab.SignTestNote.TOO_FEW_INDEPENDENT:
        return (f"{head} Sign test not run: {st.n} independent result{'s' if st.n != 1 else ''} can give a "
                f"two-sided p no smaller than {fmt_num(st.min_p, 2)}, even all pointing one way; it takes at least "
                f"{st.min_n} (smallest p {fmt_num(sign_test_min_p(st.min_n), 3)}) to reach p < {fmt_num(alpha, 2)}.")
    return (f"{head} Sign test: {st.k} of {st.n} point to benefit, two-sided p = {fmt_num(st.pvalue, 3)} "
            f"(exact binomial test against 1/2).")


def undrawn_text(labels: list[str], any_figure: bool) -> str:
    """The section's results that no figure shows (they are in the table), or '' when none."""
    if not labels:
        return ""
    if not any_figure:
        return ("No figure: no result here has a ratio estimate with its CI, a p-value with a sample size and a "
                "direction, or a proportion with a CI. The table below gives each as reported.")
    return f"Not in a figure (no estimate with a CI, nor a p-value with a sample size and a direction): {'; '.join(labels)}."


def proportion_label(label: str, endpoint_detail: str) -> str:
    """A proportion's label on its plot: the row label, with what was counted (the registry's
    endpoint detail up to its first colon) unless the label already says it."""
    what = endpoint_detail.split(":")[0].strip()
    return f"{label}: {what}" if what and ":" not in label else label


def proportion_detail(pt, level: float) -> str:
    """The numbers line under a proportion's label: counts, percentage and where its CI comes from."""
    counts = f"{pt.events}/{pt.n} · " if pt.events is not None and pt.n is not None else ""
    est = f"{fmt_num(100 * pt.estimate, 0)}%"
    if pt.source is vocab.IntervalSource.NONE:
        return f"{counts}{est}, no CI (no denominator or CI in the registry)"
    how = "exact" if pt.source is vocab.IntervalSource.EXACT else "as reported"
    return f"{counts}{est} ({pct(level)} CI {fmt_num(100 * pt.lower, 0)}–{fmt_num(100 * pt.upper, 0)}%, {how})"


def proportions_caption(points, level: float) -> str:
    """The proportions plot's caption, naming only the interval kinds it draws."""
    kinds = {p.source for p in points}
    parts = ["Each proportion as reported, not pooled: no summary row (SWiM, Campbell et al. 2020)."]
    if vocab.IntervalSource.EXACT in kinds:
        parts.append(f"Filled dots: {pct(level)} CI computed exactly (Clopper–Pearson) from the registry's "
                     "numerator and denominator.")
    if vocab.IntervalSource.REPORTED in kinds:
        parts.append("Open squares: the CI as reported (no counts in the registry to compute one).")
    if vocab.IntervalSource.NONE in kinds:
        parts.append("Open dots: the proportion alone (neither counts nor a CI in the registry).")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# the evidence date and published syntheses beside our result
# ---------------------------------------------------------------------------------------------


def evidence_date_text(searches) -> str:
    """"2026-12-01 (sources last searched; results extracted to 2026-12-01; searches.csv)" from the
    search log (:class:`metaanalysis.searches.SearchLog`), never from the clock."""
    from pathlib import Path

    if searches is None or searches.searched_to is None:
        return "not recorded (no search log with a 'searched' row next to the registry: trials/searches.csv)"
    ext = searches.extracted_to
    extracted = f"results extracted to {ext.isoformat()}" if ext is not None else "no extraction date recorded"
    return f"{searches.searched_to.isoformat()} (sources last searched; {extracted}; {Path(searches.path).name})"


def published_difference_text(pc, measure: str) -> str:
    """Our headline estimate against a published synthesis's, in numbers (ratio or difference,
    and how the CI widths compare)."""
    if pc.difference is None:
        return "This page leads with no pooled estimate, so there is no pooled result to compare."
    log = vocab.measure(measure).log_scale
    if log:
        what = (f"Our estimate is {math.exp(pc.difference):.3f} times the published one (difference "
                f"{fmt_num(pc.difference, 3)} on the log scale)")
    else:
        what = f"Our estimate minus the published one: {fmt_num(pc.difference, 3)}"
    if pc.width_ratio is None:
        return what + "; the published result has no CI to compare widths with."
    return f"{what}; our CI is {pc.width_ratio:.2f} times as wide as the published CI" + \
        (" on the log scale." if log else ".")


def published_trials_text(pc, rows: RowText) -> str:
    """Which trials the two results share (by ``trial_id``)."""
    if not pc.trials_published_only and not pc.trials_ours_only:
        return f"Both combine the same {len(pc.trials_both)} trials ({', '.join(pc.trials_both)})."
    parts = []
    if pc.trials_published_only:
        parts.append(f"only the published result includes {', '.join(pc.trials_published_only)}")
    if pc.trials_ours_only:
        parts.append(f"only ours includes {', '.join(pc.trials_ours_only)}")
    return f"The trial sets differ: {'; '.join(parts)}."


def published_model_text(pc, a: AnalysisResult, rows: RowText) -> str:
    """Why the two can differ: how the published result pooled (registry ``analysis_population``)
    against our aggregate-data model, with our common-effect z result as the like-for-like number."""
    theirs = rows.get(pc.row_id, "analysis_population") or "pooling method not recorded"
    model = plan_model_words(a.settings) if a.headline is vocab.Headline.RANDOM else f"a {headline_model(a)} model"
    ours = f"ours pools the trials' reported {a.measure}s (aggregate data) with a {model}"
    if a.headline is vocab.Headline.RANDOM and a.result is not None and a.settings.test != "z":
        ours += f", whose CI uses the t distribution with {a.k - 1} df ({a.k} trials) and allows for " \
                "between-trial heterogeneity"
    if pc.common is None:
        return f"The published result pools {theirs}; {ours}."
    m = a.measure
    lo, hi = (vocab.to_natural(m, x) for x in (pc.common.ci_lower, pc.common.ci_upper))
    return (f"The published result pools {theirs}; {ours}. Pooled with a common-effect model and a Wald z "
            f"interval (no between-trial heterogeneity, like a one-stage IPD model without it), our aggregate "
            f"data give {m} {fmt_num(vocab.to_natural(m, pc.common.estimate))} "
            f"({pct(a.settings.level)} CI {fmt_ci(lo, hi)}).")


#: The glossary page (``glossary.html``): (plain words a page uses, the methods term it stands
#: for, what it means). Definitions follow the Cochrane Handbook for Systematic Reviews of
#: Interventions v6.4 (2023), chapters 6 (effect measures), 10 (meta-analysis) and 14 (GRADE).
GLOSSARY: tuple[tuple[str, str, str], ...] = (
    ("pooled estimate", "summary effect (random-effects mean, μ̂)",
     "The weighted average of the studies' effects; with random effects, the estimated mean of the "
     "distribution of true effects across settings."),
    ("range of plausible values (95%)", "confidence interval (CI)",
     "An interval that, computed the same way in many repetitions, would contain the true mean effect "
     "95% of the time."),
    ("where a new study's effect may fall", "prediction interval (PI)",
     "An interval for the true effect in a new setting like those studied: it adds the spread between "
     "studies (τ²) to the uncertainty of the mean."),
    ("how much the studies differ", "heterogeneity: τ² (tau²), I², Cochran's Q",
     "τ² is the variance of the true effects between studies (on the analysis scale); I² the share of "
     "the observed variation not explained by chance; Q tests whether the studies share one effect."),
    ("no spread estimated", "τ² estimated as 0",
     "The estimator found no variation beyond chance; with few studies this does not show that the "
     "effects are equal."),
    ("mean of the study effects, allowing them to differ", "random-effects model",
     "Assumes each study has its own true effect drawn from a distribution, and estimates its mean."),
    ("one shared effect", "common-effect (fixed-effect) model",
     "Assumes every study estimates the same true effect; weights are the inverse variances."),
    ("how the spread was estimated", "τ² estimator (REML, DL, PM, ...)",
     "The method that estimates τ² from the studies: restricted maximum likelihood (REML), "
     "DerSimonian-Laird (DL), Paule-Mandel (PM) and others."),
    ("interval that allows for few studies", "Hartung-Knapp-Sidik-Jonkman (HKSJ) test, ad hoc variant",
     "A CI for the mean from a t distribution with k − 1 degrees of freedom and a rescaled SE; the ad hoc "
     "variant never lets it be narrower than the usual (Wald z) interval."),
    ("test of no effect", "test of the mean (z or t statistic, p-value)",
     "How surprising the pooled estimate would be if the true mean effect were null (HR 1, difference 0)."),
    ("hazard ratio", "HR",
     "The ratio of event rates over time, intervention vs comparator; below 1 means fewer events with the "
     "intervention."),
    ("log scale", "analysis scale (log ratio)",
     "Ratios are pooled as logarithms, where their sampling distribution is close to normal; pages show them "
     "back on the ratio scale."),
    ("share of the weight", "study weight (%)",
     "How much a study contributes to the pooled estimate: the inverse of its variance plus τ², as a "
     "percentage of the total."),
    ("uncertainty from the p-value", "SE derived from p",
     "A study that reported no CI: its standard error is computed from its estimate and p-value, which is "
     "less precise when the p-value was rounded or reported as a bound."),
    ("each study left out in turn", "leave-one-out analysis",
     "The pooled estimate recomputed without each study, to see whether one study drives the result."),
    ("adding studies by year", "cumulative meta-analysis",
     "The pooled estimate recomputed as studies are added in order of publication."),
    ("groups of studies compared", "subgroup analysis, test for subgroup differences",
     "Pooled estimates within groups (tumour type, design) and a Q test of whether they differ; an "
     "observational comparison, not randomised."),
    ("small-study effects", "funnel plot, Egger's test",
     "Whether smaller studies show different effects (one sign of publication bias); needs at least 10 "
     "studies."),
    ("risk of bias", "RoB 2 judgement",
     "How likely flaws in a trial's design or conduct bias its result (low, some concerns, high), by the "
     "Cochrane RoB 2 tool."),
    ("certainty of the evidence", "GRADE rating (high, moderate, low, very low)",
     "How confident one can be that the true effect is close to the estimate, rated down for risk of bias, "
     "inconsistency, indirectness, imprecision and publication bias."),
    ("post hoc subgroup", "unplanned (post hoc) subgroup analysis",
     "A subgroup result chosen after seeing the data; more likely to be a chance finding."),
    ("how often an interval catches the truth here", "simulated coverage for this design",
     "Meta-analyses simulated with these studies' own standard errors and a known true effect, at several "
     "values of τ²: the share whose interval contains the truth. A 95% interval should reach about 95%; "
     "with few studies some methods fall well short."),
    ("simulation error", "Monte-Carlo standard error (MCSE)",
     "How much a simulated coverage would move if the simulation were repeated with other random numbers; "
     f"the pages simulate until it is at most {fmt_num(100 * vocab.COVERAGE_MCSE_TARGET, 1)} percentage points."),
)
