"""The one vocabulary: measures, τ² methods, tests, prediction-interval conventions, citations,
minimum-k rules, the confidence-level rule and the flag codes.

Every other layer reads these tables: the registry schema's enumerations (a test proves they
agree), plan validation, the command line's choices and help, the pooling engine's argument
checks, the methods text, plot captions and the report templates. Nothing here formats a
number for display or knows about files.

Codes are canonical in the case shown (``"REML"``, ``"knha"``); user input is matched
case-insensitively by :func:`canonical_method`, :func:`canonical_test` and
:func:`canonical_pi`.

References
----------
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
J Stat Softw 36(3). doi:10.18637/jss.v036.i03 (the method and test codes are metafor's).
"""

from __future__ import annotations

import difflib
import enum
import math
from dataclasses import dataclass
from typing import Iterable

# ---------------------------------------------------------------------------------------------
# measures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One effect measure.

    Attributes
    ----------
    code : str
        Registry / plan code (``"HR"``).
    name : str
        Full name, capitalised as an axis title (``"Hazard ratio"``).
    log_scale : bool
        Analysed on the natural-log scale (ratios and GMR); else on the natural scale.
    comparative : bool
        A between-group effect a CI or p-value can be converted for (so it can be pooled).
    null : float or None
        The no-effect value on the natural scale (1 for ratios, 0 for differences); None
        where "no effect" has no meaning (a proportion, a bare p-value).
    lower_is : {"benefit", "harm", ""}
        Which side of the null a value below it usually means for time-to-event harms
        (deaths, relapses): only a default for "favours" wording the plan can override.
    """

    code: str
    name: str
    log_scale: bool
    comparative: bool
    null: float | None
    lower_is: str = ""

    @property
    def scale(self) -> str:
        """``"log"`` or ``"identity"``: the scale pooling works on."""
        return "log" if self.log_scale else "identity"


MEASURES: dict[str, Measure] = {m.code: m for m in (
    Measure("HR", "Hazard ratio", True, True, 1.0, "benefit"),
    Measure("OR", "Odds ratio", True, True, 1.0, "benefit"),
    Measure("RR", "Risk ratio", True, True, 1.0, "benefit"),
    Measure("RD", "Risk difference", False, True, 0.0, "benefit"),
    Measure("MD", "Mean difference", False, True, 0.0),
    Measure("SMD", "Standardised mean difference", False, True, 0.0),
    Measure("GMR", "Geometric mean ratio (within group)", True, False, 1.0),
    Measure("PROP", "Proportion", False, False, None),
    Measure("PVAL", "p-value only", False, False, None),
)}
#: Comparative ratio measures (log scale, null 1).
RATIO_MEASURES = frozenset(c for c, m in MEASURES.items() if m.comparative and m.log_scale)
#: Measures analysed on the log scale: the ratios and GMR (descriptive, never pooled).
LOG_MEASURES = frozenset(c for c, m in MEASURES.items() if m.log_scale)
#: Comparative difference measures (natural scale, null 0).
DIFFERENCE_MEASURES = frozenset(c for c, m in MEASURES.items() if m.comparative and not m.log_scale)
#: Measures a CI or p-value can be converted for, and so the ones a plan may pool.
EFFECT_MEASURES = RATIO_MEASURES | DIFFERENCE_MEASURES
#: Measures computed from 2x2 counts (metafor ``escalc``: log OR, log RR, RD).
TWO_BY_TWO_MEASURES: tuple[str, ...] = ("OR", "RR", "RD")
#: Pooled measures in the order plans and help list them.
POOLABLE_MEASURES: tuple[str, ...] = tuple(c for c, m in MEASURES.items() if m.comparative)


def measure(code: str) -> Measure:
    """The :class:`Measure` of ``code`` (case-insensitive); ValueError naming the known codes."""
    m = MEASURES.get(str(code).upper())
    if m is None:
        raise ValueError(f"unknown measure {code!r}; use one of {', '.join(MEASURES)}")
    return m


def is_log_scale(code: str) -> bool:
    """True for measures analysed on the log scale; ValueError for measures without a scale."""
    m = measure(code)
    if not (m.comparative or m.log_scale):
        raise ValueError(f"measure {code!r} has no analysis scale here; use one of "
                         f"{', '.join(sorted(EFFECT_MEASURES))}")
    return m.log_scale


def to_natural(code: str, x: float | None) -> float | None:
    """Analysis scale → natural scale (exp for log-scale measures); None/NaN/inf → None."""
    if x is None or not math.isfinite(x):
        return None
    return math.exp(x) if measure(code).log_scale else float(x)


def to_analysis(code: str, x: float | None) -> float | None:
    """Natural scale → analysis scale (log for log-scale measures); None, NaN or a ratio ≤ 0 → None."""
    if x is None or not math.isfinite(x) or (measure(code).log_scale and x <= 0):
        return None
    return math.log(x) if measure(code).log_scale else float(x)


# ---------------------------------------------------------------------------------------------
# methods, tests, prediction intervals (with citations)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodInfo:
    """A method with its full name, one citation and the metafor argument that selects it."""

    code: str
    name: str
    citation: str
    doi: str
    metafor: str
    short: str = ""     # the short name tables use ("HKSJ"); the code where empty

    @property
    def label(self) -> str:
        return self.short or self.code


TAU2_ESTIMATORS: dict[str, MethodInfo] = {m.code: m for m in [
    MethodInfo("REML", "restricted maximum-likelihood estimator",
               "Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the "
               "random-effects model. J Educ Behav Stat 2005;30:261-93.",
               "10.3102/10769986030003261", 'method = "REML"'),
    MethodInfo("DL", "DerSimonian-Laird method-of-moments estimator",
               "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-88.",
               "10.1016/0197-2456(86)90046-2", 'method = "DL"'),
    MethodInfo("ML", "maximum-likelihood estimator",
               "Hardy RJ, Thompson SG. A likelihood approach to meta-analysis with random effects. "
               "Stat Med 1996;15:619-29.",
               "10.1002/(SICI)1097-0258(19960330)15:6<619::AID-SIM188>3.0.CO;2-A", 'method = "ML"'),
    MethodInfo("PM", "Paule-Mandel estimator",
               "Paule RC, Mandel J. Consensus values and weighting factors. "
               "J Res Natl Bur Stand 1982;87:377-85.",
               "10.6028/jres.087.022", 'method = "PM"'),
    MethodInfo("EB", "empirical Bayes estimator (identical to Paule-Mandel without moderators)",
               "Morris CN. Parametric empirical Bayes inference: theory and applications. "
               "J Am Stat Assoc 1983;78:47-55.",
               "10.1080/01621459.1983.10477920", 'method = "EB"'),
    MethodInfo("HS", "Hunter-Schmidt estimator",
               "Hunter JE, Schmidt FL. Methods of Meta-Analysis. 2nd ed. Sage; 2004.",
               "", 'method = "HS"'),
    MethodInfo("SJ", "Sidik-Jonkman estimator",
               "Sidik K, Jonkman JN. Simple heterogeneity variance estimation for meta-analysis. "
               "J R Stat Soc C 2005;54:367-84.",
               "10.1111/j.1467-9876.2005.00489.x", 'method = "SJ"'),
    MethodInfo("HE", "Hedges (unweighted method-of-moments) estimator",
               "Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press; 1985.",
               "", 'method = "HE"'),
]}
COMMON_EFFECT = MethodInfo("FE", "common-effect (fixed-effect) inverse-variance model",
                           "Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press; 1985.",
                           "", 'method = "FE"')
#: Every ``method=`` code: the τ² estimators (random effects) and ``"FE"`` (common effect).
METHODS: dict[str, MethodInfo] = {**TAU2_ESTIMATORS, "FE": COMMON_EFFECT}
#: τ² estimators side by side in the estimator-sensitivity panel (the plan's own first).
ESTIMATOR_PANEL: tuple[str, ...] = ("DL", "REML", "ML", "PM", "EB", "HS", "SJ", "HE")

TESTS: dict[str, MethodInfo] = {m.code: m for m in [
    MethodInfo("z", "Wald-type z test and confidence interval",
               "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw 2010;36(3).",
               "10.18637/jss.v036.i03", 'test = "z"', "z"),
    MethodInfo("knha", "Hartung-Knapp-Sidik-Jonkman (HKSJ) adjustment with a t distribution on k-1 df",
               "Knapp G, Hartung J. Improved tests for a random effects meta-regression with a single "
               "covariate. Stat Med 2003;22:2693-710.",
               "10.1002/sim.1482", 'test = "knha"', "HKSJ"),
    MethodInfo("adhoc", "HKSJ with the variance multiplier floored at 1 (ad hoc variant)",
               "Knapp G, Hartung J. Stat Med 2003;22:2693-710; Jackson D et al. Stat Med 2017;36:3923-34.",
               "10.1002/sim.7411", 'test = "adhoc"', "HKSJ ad hoc"),
]}
#: Tests shown side by side in the estimator panel.
PANEL_TESTS: tuple[str, ...] = ("z", "knha", "adhoc")
#: Tests that use a t distribution on k − 1 df (the HKSJ family).
T_TESTS = frozenset({"knha", "adhoc"})

PREDICTION_INTERVALS: dict[str, MethodInfo] = {m.code: m for m in [
    MethodInfo("metafor", "prediction interval using the test's critical value (t with k-1 df under HKSJ, "
               "normal under z; metafor's default)",
               "Viechtbauer W. J Stat Softw 2010;36(3).", "10.18637/jss.v036.i03", "predict(res)"),
    MethodInfo("riley", "prediction interval using a t distribution with k-2 df (Higgins/Riley; "
               "Cochrane Handbook 10.10.4.3)",
               "Riley RD, Higgins JPT, Deeks JJ. Interpretation of random effects meta-analyses. BMJ 2011;342:d549.",
               "10.1136/bmj.d549", 'predict(res, pi.type = "riley")'),
]}

HETEROGENEITY = MethodInfo(
    "qprofile", "Q-profile confidence intervals for τ², I² and H²",
    "Viechtbauer W. Confidence intervals for the amount of heterogeneity in meta-analysis. "
    "Stat Med 2007;26:37-52.", "10.1002/sim.2514", "confint(res)")

I2_DEFINITION = MethodInfo(
    "i2", "I² = τ² / (τ² + s²) with s² the typical within-study variance",
    "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med 2002;21:1539-58.",
    "10.1002/sim.1186", "")

I2_FROM_Q = MethodInfo(
    "i2q", "I² = (Q − df) / Q, floored at 0, for common-effect models of 2x2 tables (Mantel-Haenszel, Peto)",
    I2_DEFINITION.citation, I2_DEFINITION.doi, "")

EGGER = MethodInfo(
    "egger", "Egger's regression test for funnel-plot asymmetry",
    "Egger M, Davey Smith G, Schneider M, Minder C. Bias in meta-analysis detected by a simple, "
    "graphical test. BMJ 1997;315:629-34.", "10.1136/bmj.315.7109.629", "regtest(res)")

SMALL_STUDY = MethodInfo(
    "sterne2011", "funnel plots and asymmetry tests need at least 10 studies",
    "Sterne JAC et al. Recommendations for examining and interpreting funnel plot asymmetry in "
    "meta-analyses of randomised controlled trials. BMJ 2011;343:d4002.", "10.1136/bmj.d4002", "")

HKSJ_NARROW = MethodInfo(
    "rover2015", "the HKSJ interval can be narrower than the Wald z interval when q < 1",
    "Röver C, Knapp G, Friede T. Hartung-Knapp-Sidik-Jonkman approach and its modification for "
    "random-effects meta-analysis with few studies. BMC Med Res Methodol 2015;15:99.",
    "10.1186/s12874-015-0091-1", 'test = "adhoc"')

# ---------------------------------------------------------------------------------------------
# binary outcomes pooled from 2x2 tables (metaanalysis.binary; metafor rma.mh / rma.peto)
# ---------------------------------------------------------------------------------------------

#: Pooling methods that work on the 2x2 counts themselves rather than on (yi, vi): a plan's
#: ``method = "MH"`` or ``"Peto"`` (both common-effect models, no τ²).
BINARY_METHODS: dict[str, MethodInfo] = {m.code: m for m in [
    MethodInfo("MH", "Mantel-Haenszel common-effect method",
               "Mantel N, Haenszel W. Statistical aspects of the analysis of data from retrospective studies of "
               "disease. J Natl Cancer Inst 1959;22:719-48.", "10.1093/jnci/22.4.719", "rma.mh()"),
    MethodInfo("Peto", "Peto's one-step odds ratio method",
               "Yusuf S, Peto R, Lewis J, Collins R, Sleight P. Beta blockade during and after myocardial "
               "infarction: an overview of the randomized trials. Prog Cardiovasc Dis 1985;27:335-71.",
               "10.1016/S0033-0620(85)80003-7", "rma.peto()"),
]}
#: Measures each binary method pools (Peto's method estimates an odds ratio only).
BINARY_METHOD_MEASURES: dict[str, tuple[str, ...]] = {"MH": ("OR", "RR", "RD"), "Peto": ("OR",)}
#: The variance estimator of the Mantel-Haenszel estimate, per measure (metafor's choices).
MH_VARIANCE: dict[str, MethodInfo] = {
    "OR": MethodInfo("RBG", "Robins-Breslow-Greenland variance of the log Mantel-Haenszel odds ratio",
                     "Robins J, Breslow N, Greenland S. Estimators of the Mantel-Haenszel variance consistent in "
                     "both sparse data and large-strata limiting models. Biometrics 1986;42:311-23.",
                     "10.2307/2531052", ""),
    "RR": MethodInfo("GR", "Greenland-Robins variance of the log Mantel-Haenszel risk ratio",
                     "Greenland S, Robins JM. Estimation of a common effect parameter from sparse follow-up data. "
                     "Biometrics 1985;41:55-68.", "10.2307/2530643", ""),
    "RD": MethodInfo("SGR", "Sato-Greenland-Robins variance of the Mantel-Haenszel risk difference",
                     "Sato T, Greenland S, Robins JM. On the variance estimator for the Mantel-Haenszel risk "
                     "difference. Biometrics 1989;45:1323-4.", "", ""),
}
#: The Cochran-Mantel-Haenszel test of no association (odds ratios; continuity-corrected by default).
CMH_TEST = MethodInfo(
    "cmh", "Cochran-Mantel-Haenszel test", "Cochran WG. Some methods for strengthening the common chi-square "
    "tests. Biometrics 1954;10:417-51.", "10.2307/3001616", "res$MH")
#: Tarone's test for heterogeneity of odds ratios (the Breslow-Day statistic, corrected).
TARONE_TEST = MethodInfo(
    "tarone", "Tarone's test for heterogeneity of odds ratios", "Tarone RE. On heterogeneity tests based on "
    "efficient scores. Biometrika 1985;72:91-5.", "10.1093/biomet/72.1.91", "res$TA")
#: metafor's ``to=`` codes: which 2x2 tables get ``add`` added to every cell.
ZERO_CELL_TO: tuple[str, ...] = ("only0", "all", "if0all", "none")
#: metafor's zero-cell defaults for rma.mh / rma.peto: (for the per-study yi/vi, for the pooling itself).
ZERO_CELL_DEFAULTS = {"add": (0.5, 0.0), "to": ("only0", "none"), "drop00": (True, False)}


def canonical_binary_method(value: str) -> str:
    """Canonical binary pooling method (``"mh"`` → ``"MH"``, ``"PETO"`` → ``"Peto"``)."""
    return _code("method", value, BINARY_METHODS)


# ---------------------------------------------------------------------------------------------
# minimum-k rules and other thresholds
# ---------------------------------------------------------------------------------------------

#: Below this many studies τ² (and so I², the PI and HKSJ) is very imprecise: with 2–4 studies
#: the Q-profile CI of τ² typically spans 0 to several times the estimate
#: (Cochrane Handbook v6.4 ch. 10.10.4; Veroniki et al. 2016, doi:10.1002/jrsm.1164).
FEW_STUDIES = 5
#: Funnel plots and Egger's test need >= 10 studies (Sterne et al. 2011, doi:10.1136/bmj.d4002).
FUNNEL_MIN_K = 10
EGGER_MIN_K = FUNNEL_MIN_K
#: Riley's prediction interval uses t(k − 2): not estimable below 3 studies.
RILEY_MIN_K = 3
#: Leave-one-out needs at least 3 studies (each refit must still pool 2).
LEAVE_ONE_OUT_MIN_K = 3
#: τ² at or below this is reported as zero (the estimators' own floor is exactly 0).
TAU2_ZERO = 1e-10

# ---------------------------------------------------------------------------------------------
# the one confidence-level rule
# ---------------------------------------------------------------------------------------------

#: Lowest confidence level accepted (as a fraction): anything lower is a typo, not a CI.
LEVEL_MIN = 0.5


def as_level(level: float) -> float:
    """The one level rule: a fraction in [0.5, 1), or a percentage in [50, 100) (as metafor
    accepts ``level = 95``), returned as a fraction.

    Parameters
    ----------
    level : float
        0.95 or 95.

    Returns
    -------
    float
        The level as a fraction (0.95).

    Raises
    ------
    ValueError
        Outside both ranges (0, 1, 1.5, 100, NaN, ...), with what to write instead.
    """
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a number such as 0.95 or 95, got {level!r}") from None
    if 100 * LEVEL_MIN <= lv < 100:
        lv /= 100
    if not LEVEL_MIN <= lv < 1:
        raise ValueError(f"level must be a confidence level in [{LEVEL_MIN:g}, 1) or a percentage in "
                         f"[{100 * LEVEL_MIN:g}, 100), e.g. 0.95 or 95; got {level!r}")
    return lv


# ---------------------------------------------------------------------------------------------
# case-insensitive codes
# ---------------------------------------------------------------------------------------------


def _code(kind: str, value: str, table: Iterable[str]) -> str:
    options = list(table)
    low = {o.lower(): o for o in options}
    hit = low.get(str(value).strip().lower())
    if hit is not None:
        return hit
    close = difflib.get_close_matches(str(value).lower(), list(low), n=1, cutoff=0.6)
    hint = f"; did you mean {low[close[0]]!r}?" if close else ""
    raise ValueError(f"{kind} must be one of {', '.join(options)}; got {value!r}{hint}")


def canonical_method(value: str) -> str:
    """Canonical ``method=`` code (``"reml"`` → ``"REML"``); ValueError listing the valid ones."""
    return _code("method", value, METHODS)


def canonical_test(value: str) -> str:
    """Canonical ``test=`` code (``"KNHA"`` → ``"knha"``); ValueError listing the valid ones."""
    return _code("test", value, TESTS)


def canonical_pi(value: str) -> str:
    """Canonical ``pi=`` code (``"Riley"`` → ``"riley"``); ValueError listing the valid ones."""
    return _code("pi", value, PREDICTION_INTERVALS)


# ---------------------------------------------------------------------------------------------
# flag codes: what an analysis says about itself (the render layer owns the words)
# ---------------------------------------------------------------------------------------------


class Flag(str, enum.Enum):
    """Stable codes of the caveats an analysis carries; values are what JSON and CSV write."""

    SINGLE_STUDY = "single-study"
    FEW_STUDIES = "few-studies"
    NO_FUNNEL = "no-funnel"
    DERIVED_SE = "derived-se"
    POST_HOC = "post-hoc"
    UNCONFIRMED = "unconfirmed"
    TAU2_ZERO = "tau2-zero"
    HKSJ_NARROWER = "hksj-narrower"
    K2_T1 = "k2-t1"
    NOT_POOLABLE = "not-poolable"
    MISSING_EVIDENCE = "missing-evidence"
    NO_POOLED_HEADLINE = "no-pooled-headline"
    UNDERCOVERAGE = "undercoverage"
    ROW_WARNING = "row-warning"       # the registry check warned about a row pooled here


#: Flags that inform rather than caution (shown in a neutral style).
INFO_FLAGS = frozenset({Flag.SINGLE_STUDY, Flag.NO_FUNNEL, Flag.NO_POOLED_HEADLINE})


class StudyFlag(str, enum.Enum):
    """Stable codes of what is special about one study row in an analysis."""

    SE_FROM_P = "se-from-p"                # SE derived from a reported p-value
    EFFECT_DERIVED = "effect-derived"      # effect derived from another source (e.g. a 2x2 table)
    IMPRECISE_P = "imprecise-p"            # rounded or bounded p-value
    UNCONFIRMED = "unconfirmed"            # registry status is not "confirmed"
    POST_HOC = "post-hoc"                  # post hoc subgroup
    OBSERVATIONAL = "observational"
    NO_BASELINE_RISK = "no-baseline-risk"
    NO_ABSOLUTE_FOR_MEASURE = "no-absolute-for-measure"
    NO_RELATIVE_EFFECT = "no-relative-effect"
    PRESPECIFIED_SUBGROUP = "prespecified-subgroup"
    NOT_FOR_POOLING = "not-for-pooling"    # use_for_pooling = no
    INCLUDED_BY_PLAN = "included-by-plan"  # an explicit include line with a reason
    REGISTRY_WARNING = "registry-warning"  # the registry check warned about this row


#: Registry design values → the study flag they raise (designs not listed raise none).
DESIGN_FLAGS: dict[str, StudyFlag] = {
    "RCT post hoc subgroup": StudyFlag.POST_HOC,
    "observational": StudyFlag.OBSERVATIONAL,
    "RCT prespecified subgroup": StudyFlag.PRESPECIFIED_SUBGROUP,
}
#: Registry ``design`` values (the schema's enumeration must equal this).
DESIGNS: tuple[str, ...] = ("RCT", "RCT post hoc subgroup", "RCT prespecified subgroup", "observational",
                            "single-arm", "published synthesis")
#: The ``design`` of a pooled result published by others (an IPD pooled analysis or a
#: meta-analysis): shown beside an analysis as a check, never pooled (its trials would count twice).
PUBLISHED_SYNTHESIS = "published synthesis"
#: Registry columns that define a primary analysis's clinical question besides its endpoint and
#: measure: the pooled rows must share each (population setting, comparator, dose regimen).
QUESTION_COLUMNS: tuple[str, ...] = ("setting", "comparator", "regimen")
#: Registry ``status`` values: the evidence rule of trials/README.md.
STATUSES: tuple[str, ...] = ("confirmed", "secondary", "unconfirmed", "missing")


# ---------------------------------------------------------------------------------------------
# the headline rule: which model a page leads with
# ---------------------------------------------------------------------------------------------


class Headline(str, enum.Enum):
    """The model an analysis page leads with (its key result, forest-plot diamond and overview row)."""

    RANDOM = "random-effects"      # the plan's random-effects model (REML + Knapp-Hartung ad hoc by default)
    COMMON = "common-effect"       # the plan judged the designs identical (inverse-variance, z)
    BAYES = "bayesian"             # the exact Bayesian random-effects posterior (metaanalysis.bayes)
    NONE = "none"                  # studies side by side, no pooled estimate leads
    SINGLE = "single-study"        # one study, shown as reported


#: What a plan may write: ``headline = "random" | "common" | "none"`` (with ``headline_reason``).
HEADLINE_CHOICES: dict[str, Headline] = {"random": Headline.RANDOM, "common": Headline.COMMON,
                                         "bayes": Headline.BAYES, "none": Headline.NONE}
#: Below this many studies no frequentist random-effects interval leads a page: with two studies
#: τ² cannot be estimated usefully and a t(1) interval is either absurdly wide or, under HKSJ with
#: q < 1, spuriously narrow (Bender et al. 2018, Res Synth Methods 9:382, doi:10.1002/jrsm.1319;
#: Gonnermann et al. 2015, doi:10.1002/bimj.201300288).
RANDOM_HEADLINE_MIN_K = 3

BENDER2018 = MethodInfo(
    "bender2018", "methods for few studies: no random-effects interval from two studies",
    "Bender R, Friede T, Koch A, et al. Methods for evidence synthesis in the case of very few studies. "
    "Res Synth Methods 2018;9:382-92.", "10.1002/jrsm.1319", "")


def default_headline(k: int, has_prior: bool = False) -> Headline:
    """The headline model when the plan does not name one: the single study; with two studies the
    Bayesian posterior under a weakly informative τ prior when there is one (Friede et al. 2017;
    Röver et al. 2021), else none; from three studies the plan's random-effects model."""
    if k == 1:
        return Headline.SINGLE
    if k < RANDOM_HEADLINE_MIN_K:
        return Headline.BAYES if has_prior else Headline.NONE
    return Headline.RANDOM


# ---------------------------------------------------------------------------------------------
# design-specific coverage (metaanalysis.coverage)
# ---------------------------------------------------------------------------------------------

#: Most simulated meta-analyses per design, τ² and interval method (a 0/1 count of 10,000 would
#: have a Monte-Carlo SE of ≈ 0.0022 at 95%; Morris, White & Crowther 2019, doi:10.1002/sim.8086).
COVERAGE_N_SIM = 10_000
#: A coverage row stops at the first stage (1,000, 2,000, 4,000, 8,000, 10,000 replicates) whose
#: Monte-Carlo SEs are at most this: never less precise than a 0/1 count of 10,000 at 95%
#: (metaanalysis.coverage: the conditional estimator with control variates needs far fewer
#: replicates for that, most rows 1,000).
COVERAGE_MCSE_TARGET = 0.002
#: A headline interval "under-covers" when its simulated coverage falls this far below the level
#: and the shortfall is beyond 3 Monte-Carlo SEs.
UNDERCOVERAGE_MARGIN = 0.01


COVERAGE_SIMULATION = MethodInfo(
    "morris2019", "design-specific coverage by simulation, with Monte-Carlo standard errors",
    "Morris TP, White IR, Crowther MJ. Using simulation studies to evaluate statistical methods. "
    "Stat Med 2019;38:2074-102.", "10.1002/sim.8086", "")
CONDITIONAL_MONTE_CARLO = MethodInfo(
    "ross2013", "coverage estimated by conditioning on each simulated meta-analysis's residuals "
    "(variance reduction by conditioning)",
    "Ross SM. Simulation. 5th ed. Academic Press; 2013 (chapter on variance reduction techniques).", "", "")
CONTROL_VARIATES = MethodInfo(
    "nelson1990", "control variates with exactly known means, their coefficients estimated on the other "
    "half of the simulated meta-analyses (splitting), so the estimate stays unbiased",
    "Nelson BL. Control variate remedies. Oper Res 1990;38(6):974-92.", "", "")


class GridRole(str, enum.Enum):
    """Why a τ² value is on an analysis's coverage grid."""

    ZERO = "zero"                    # no heterogeneity
    ESTIMATE = "estimate"            # the plan's τ² estimate
    QPROFILE_UPPER = "qprofile-upper"   # the upper Q-profile confidence bound
    PRIOR_MEDIAN = "prior-median"    # the square of the τ prior's median (analyses with a Bayesian model)


#: Interval code, in a coverage table, of the Bayesian random-effects model's central credible
#: interval of μ (:func:`metaanalysis.bayesian.central_intervals_many`, the analysis's own prior).
BAYES_INTERVAL = "bayes"

BAYES_COVERAGE = MethodInfo(
    "friede2017", "frequentist coverage of Bayesian random-effects intervals with few studies, by simulation",
    "Friede T, Röver C, Wandel S, Neuenschwander B. Meta-analysis of two studies in the presence of "
    "heterogeneity with applications in rare diseases. Biom J 2017;59:658-71.", "10.1002/bimj.201500236", "")
# ---------------------------------------------------------------------------------------------
# Bayesian random effects: priors on the heterogeneity τ, and notes on posterior moments
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TauPrior:
    """A prior family for the between-study SD τ of :func:`metaanalysis.bayesian.bayes`.

    Attributes
    ----------
    code : str
        The ``tau_prior=`` code.
    name : str
        Full name.
    scale : str
        What ``tau_scale=`` means for this family (its parametrisation).
    citation, doi : str
        Where the family is recommended or its parameters come from.
    """

    code: str
    name: str
    scale: str
    citation: str
    doi: str


_ROVER_2021 = ("Röver C, Bender R, Dias S, Schmid CH, Schmidli H, Sturtz S, Weber S, Friede T. On weakly "
               "informative prior distributions for the heterogeneity parameter in Bayesian random-effects "
               "meta-analysis. Res Synth Methods 2021;12:448-74.")

#: τ priors offered, with the meaning of ``tau_scale``. Densities are for τ >= 0.
TAU_PRIORS: dict[str, TauPrior] = {p.code: p for p in [
    TauPrior("halfnormal", "half-normal prior on τ",
             "tau_scale = σ, the scale of the half-normal: p(τ) = 2 φ(τ/σ)/σ (median 0.674σ); "
             "σ = 0.5 is weakly informative for log odds, risk and hazard ratios",
             _ROVER_2021, "10.1002/jrsm.1475"),
    TauPrior("halfcauchy", "half-Cauchy prior on τ",
             "tau_scale = γ, the scale of the half-Cauchy: p(τ) = 2 / (π γ (1 + (τ/γ)²)) (median γ); "
             "heavy-tailed, so some posterior moments do not exist for k <= 2 with a flat prior on μ",
             _ROVER_2021, "10.1002/jrsm.1475"),
    TauPrior("lognormal", "log-normal prior on τ²",
             "tau_scale = (m, s): log τ² ~ N(m, s²), i.e. log τ ~ N(m/2, (s/2)²); Turner et al.'s "
             "predictive distributions for log odds ratios by outcome and comparison type use this form "
             "(marginal, any outcome: m = -2.56, s = 1.74)",
             "Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT. Predictive distributions for "
             "between-study heterogeneity and simple methods for their application in Bayesian "
             "meta-analysis. Stat Med 2015;34:984-98.", "10.1002/sim.6381"),
    TauPrior("uniform", "uniform prior on τ over [0, A]",
             "tau_scale = A, the upper end of the support: p(τ) = 1/A on [0, A]",
             "Röver C. Bayesian random-effects meta-analysis using the bayesmeta R package. "
             "J Stat Softw 2020;93(6).", "10.18637/jss.v093.i06"),
]}


def canonical_tau_prior(value: str) -> str:
    """Canonical ``tau_prior=`` code (``"HalfNormal"`` → ``"halfnormal"``); ValueError listing the valid ones."""
    return _code("tau_prior", value, TAU_PRIORS)


class BayesNote(str, enum.Enum):
    """Why a posterior moment of a Bayesian meta-analysis is reported as inf or NaN.

    With a flat prior on μ the marginal likelihood of τ (μ integrated out) falls like τ^-(k-1), so
    under a half-Cauchy prior the posterior of τ has a tail ∝ τ^-(k+1); SD(μ | τ) grows like τ/√k,
    so E|μ| is infinite for k = 1 and E μ² for k <= 2. The lighter-tailed priors (and any normal
    prior on μ) have all moments.
    """

    MU_MEAN_UNDEFINED = "mu-mean-undefined"   # E|μ| = ∞: posterior mean reported as NaN
    MU_SD_INFINITE = "mu-sd-infinite"         # E μ² = ∞: posterior SD reported as inf

#: The Bayesian analysis each pooled page shows when the plan sets no prior: a half-normal prior
#: on τ with scale 0.5 for log-scale ratio measures (Röver et al. 2021, doi:10.1002/jrsm.1475;
#: Friede et al. 2017, doi:10.1002/bimj.201500236), a flat prior on μ. Difference measures have no
#: default (τ's scale depends on the outcome's unit): the plan must set ``tau_prior`` and ``tau_scale``.
DEFAULT_TAU_PRIOR = ("halfnormal", (0.5,))
#: Scales of the half-normal prior shown side by side as a prior-sensitivity table.
TAU_SCALE_SENSITIVITY: tuple[float, ...] = (0.25, 0.5, 1.0)


def default_tau_prior(measure_code: str) -> tuple[str, tuple[float, ...]] | None:
    """The default (prior code, parameters) for a measure, or None where the plan must choose."""
    return DEFAULT_TAU_PRIOR if measure_code in RATIO_MEASURES else None

BAYESMETA = MethodInfo(
    "bayes", "exact Bayesian random-effects meta-analysis (normal-normal model) by quadrature, as bayesmeta",
    "Röver C. Bayesian random-effects meta-analysis using the bayesmeta R package. J Stat Softw 2020;93(6).",
    "10.18637/jss.v093.i06", "bayesmeta(y, sigma, tau.prior = ...)")
# --- plausibility of extracted numbers (the registry's rules; trials/README.md) ------------------
#: Ratio estimates (HR, OR, RR) outside this range are warned about: a percentage or a count
#: entered as a ratio (an HR written as "17.7" for a 17.7% reduction) is the usual cause.
RATIO_PLAUSIBLE: tuple[float, float] = (1e-3, 1e3)
#: Ratio estimates and CI bounds outside this range are errors: no published ratio is that far
#: from 1, and the analysis scale (log) would reach exp() overflow in prediction intervals.
RATIO_LIMITS: tuple[float, float] = (1e-6, 1e6)
#: Smallest CI width on the analysis scale (log for ratios), relative to max(1, |bound|): narrower
#: CIs carry more digits than any publication prints and make the inverse-variance weights
#: degenerate (1/vi beyond 1e12 next to ordinary studies).
MIN_CI_WIDTH = 1e-6
#: Longest plausible median follow-up in months (50 years); larger values are errors (Excel date
#: serials such as 44927 = 2023-01-01 are the usual cause).
MAX_FOLLOWUP_MONTHS = 600
#: Excel's serial day numbers of the years 1950-2100 (a date-formatted cell read as a number).
EXCEL_SERIAL_RANGE: tuple[int, int] = (18264, 73051)
#: Most studies an analysis may have for the sensitivity analyses that refit it once per study
#: ("leave-one-out", "cumulative"): their results hold k fits of up to k studies, so memory and
#: the JSON grow with k² (k = 1500 needed 2.4 GB and a 470 MB JSON file).
MAX_K_REFITS = 1000
#: The sensitivity options whose cost grows with k² (see :data:`MAX_K_REFITS`).
QUADRATIC_SENSITIVITY: tuple[str, ...] = ("leave-one-out", "cumulative")
#: Largest |effect| on the analysis scale accepted (differences in the registry, yi in ``pool``):
#: squares and inverse-variance sums of such numbers stay far from float overflow (1.8e308).
EFFECT_LIMIT = 1e50


# ---------------------------------------------------------------------------------------------
# living evidence: what changed between two builds (metaanalysis.changes)
# ---------------------------------------------------------------------------------------------

#: Registry columns of a pooled row whose change the changelog reports (besides the row's yi, vi).
CHANGE_FIELDS: tuple[str, ...] = (
    "estimate", "ci_lower", "ci_upper", "ci_level", "p_value", "p_sided", "n_int", "n_ctl",
    "events_int", "events_ctl", "followup_months", "status", "use_for_pooling", "design", "year", "report")
#: Two numbers of two builds are "the same" within this relative tolerance (and 1e-12 absolute):
#: builds on one machine are bit-identical; this only absorbs last-digit noise across platforms.
CHANGE_REL_TOL = 1e-9


class Change(str, enum.Enum):
    """Stable codes of what changed in an analysis's conclusions between two builds."""

    ANALYSIS_ADDED = "analysis-added"
    ANALYSIS_REMOVED = "analysis-removed"
    CI_NOW_CROSSES_NULL = "ci-now-crosses-null"
    CI_NO_LONGER_CROSSES_NULL = "ci-no-longer-crosses-null"
    PI_NOW_CROSSES_NULL = "pi-now-crosses-null"
    PI_NO_LONGER_CROSSES_NULL = "pi-no-longer-crosses-null"
    NOW_SIGNIFICANT = "now-significant"                  # p < 1 - level, at the plan's level
    NO_LONGER_SIGNIFICANT = "no-longer-significant"
    DIRECTION_CHANGED = "direction-changed"              # the estimate moved to the other side of the null
    HEADLINE_CHANGED = "headline-changed"                # the model the page leads with (vocab.Headline)
    THRESHOLD_CROSSED = "threshold-crossed"              # a plan-set threshold on the natural scale
    SETTINGS_CHANGED = "settings-changed"                # the plan's method, test, PI or level
    CAVEAT_ADDED = "caveat-added"                        # a vocab.Flag the analysis now carries
    CAVEAT_REMOVED = "caveat-removed"


#: Changes that alter what an analysis concludes (``metaanalysis diff`` exits 1 on any of them);
#: the others change how a result is read, and the numbers that moved show their effect.
CONCLUSION_CHANGES = frozenset({
    Change.ANALYSIS_ADDED, Change.ANALYSIS_REMOVED, Change.CI_NOW_CROSSES_NULL, Change.CI_NO_LONGER_CROSSES_NULL,
    Change.PI_NOW_CROSSES_NULL, Change.PI_NO_LONGER_CROSSES_NULL, Change.NOW_SIGNIFICANT,
    Change.NO_LONGER_SIGNIFICANT, Change.DIRECTION_CHANGED, Change.HEADLINE_CHANGED, Change.THRESHOLD_CROSSED})


# ---------------------------------------------------------------------------------------------
# risk of bias (RoB 2) and GRADE certainty
# ---------------------------------------------------------------------------------------------

#: RoB 2: Sterne JAC et al. (2019). RoB 2: a revised tool for assessing risk of bias in
#: randomised trials. BMJ 366:l4898. doi:10.1136/bmj.l4898. Judgements are per result.
ROB2 = MethodInfo("RoB2", "Cochrane risk-of-bias tool for randomised trials (RoB 2)",
                  "Sterne JAC et al. (2019). RoB 2: a revised tool for assessing risk of bias in randomised "
                  "trials. BMJ 366:l4898.", "10.1136/bmj.l4898", "")
#: The five RoB 2 domains: (column code of ``trials/rob.csv``, name as the tool words it).
ROB_DOMAINS: tuple[tuple[str, str], ...] = (
    ("d1", "Bias arising from the randomisation process"),
    ("d2", "Bias due to deviations from intended interventions"),
    ("d3", "Bias due to missing outcome data"),
    ("d4", "Bias in measurement of the outcome"),
    ("d5", "Bias in selection of the reported result"),
)


class RobJudgement(str, enum.Enum):
    """A RoB 2 judgement; values are the spelling ``trials/rob.csv`` uses."""

    LOW = "low"
    SOME_CONCERNS = "some concerns"
    HIGH = "high"
    NOT_ASSESSED = "not assessed"


#: Judgements that come from an assessment (all but "not assessed").
ROB_ASSESSED = frozenset({RobJudgement.LOW, RobJudgement.SOME_CONCERNS, RobJudgement.HIGH})

#: GRADE: Guyatt GH et al. (2011). GRADE guidelines: 1. Introduction - GRADE evidence profiles and
#: summary of findings tables. J Clin Epidemiol 64(4):383-394. doi:10.1016/j.jclinepi.2010.04.026.
GRADE = MethodInfo("GRADE", "GRADE certainty of evidence and summary of findings",
                   "Guyatt GH et al. (2011). GRADE guidelines: 1. Introduction - GRADE evidence profiles and "
                   "summary of findings tables. J Clin Epidemiol 64(4):383-394.", "10.1016/j.jclinepi.2010.04.026", "")
#: Imprecision: Zeng L et al. (2022). GRADE Guidance 34: update on rating imprecision using a minimally
#: contextualized approach. J Clin Epidemiol 150:216-224. doi:10.1016/j.jclinepi.2022.07.014.
GRADE_IMPRECISION = MethodInfo(
    "GRADE-imprecision", "GRADE imprecision: CI against thresholds, optimal information size",
    "Zeng L et al. (2022). GRADE Guidance 34: update on rating imprecision using a minimally contextualized "
    "approach. J Clin Epidemiol 150:216-224.", "10.1016/j.jclinepi.2022.07.014", "")


class GradeDomain(str, enum.Enum):
    """The five GRADE domains that can lower certainty, in the SoF table's order."""

    RISK_OF_BIAS = "risk-of-bias"
    INCONSISTENCY = "inconsistency"
    INDIRECTNESS = "indirectness"
    IMPRECISION = "imprecision"
    PUBLICATION_BIAS = "publication-bias"


class GradeRating(str, enum.Enum):
    """A domain's rating; values are the plan's spelling. NOT_ASSESSED lowers nothing but makes
    the certainty provisional (an upper bound), so an unassessed domain is never shown as fine."""

    NOT_SERIOUS = "not serious"
    SERIOUS = "serious"
    VERY_SERIOUS = "very serious"
    NOT_ASSESSED = "not assessed"


#: Levels a rating lowers certainty by.
GRADE_DOWNGRADE = {GradeRating.NOT_SERIOUS: 0, GradeRating.SERIOUS: 1, GradeRating.VERY_SERIOUS: 2,
                   GradeRating.NOT_ASSESSED: 0}


class Certainty(enum.IntEnum):
    """GRADE certainty of evidence (the number of filled circles)."""

    VERY_LOW = 1
    LOW = 2
    MODERATE = 3
    HIGH = 4


class GradeReason(str, enum.Enum):
    """Why a computed or judged domain rating is what it is (footnote codes)."""

    CI_CROSSES_NULL = "ci-crosses-null"
    CI_CROSSES_THRESHOLD = "ci-crosses-threshold"
    OIS_NOT_MET = "ois-not-met"
    OIS_MET = "ois-met"
    OIS_NOT_COMPUTABLE = "ois-not-computable"
    NO_INTERVAL = "no-interval"
    I2_HIGH = "i2-high"
    PI_CROSSES_NULL = "pi-crosses-null"
    SINGLE_STUDY = "single-study"
    ROB_NOT_ASSESSED = "rob-not-assessed"
    ROB_PARTLY_ASSESSED = "rob-partly-assessed"
    ROB_HIGH_WEIGHT = "rob-high-weight"
    ROB_CONCERNS_WEIGHT = "rob-concerns-weight"
    PLAN_JUDGEMENT = "plan-judgement"
    NOT_IN_PLAN = "not-in-plan"
    OBSERVATIONAL = "observational"
    NO_BASELINE_RISK = "no-baseline-risk"
    NO_ABSOLUTE_FOR_MEASURE = "no-absolute-for-measure"
    NO_RELATIVE_EFFECT = "no-relative-effect"


#: Inconsistency is suggested as serious at I² at or above this (%): "may represent substantial
#: heterogeneity" (Cochrane Handbook 10.10.2; GRADE guidelines 7, Guyatt 2011 J Clin Epidemiol 64:1294).
GRADE_I2_SERIOUS = 50.0
#: Optimal information size: two-sided alpha and power of the conventional sample-size rule
#: (Guyatt GH et al. 2011, GRADE guidelines 6: imprecision. J Clin Epidemiol 64:1283).
OIS_ALPHA = 0.05
OIS_POWER = 0.80
#: Relative effect the OIS is computed for when the plan sets none: a 25% relative risk
#: reduction (HR/RR 0.75), GRADE's conventional default (Guyatt 2011, GRADE guidelines 6).
OIS_DEFAULT_RATIO = 0.75
#: Weight share (%) of high-risk (or high plus some-concerns) results above which risk of bias is
#: suggested as very serious (serious); a simple, documented rule (Cochrane Handbook 14.2.2).
ROB_WEIGHT_SHARE = 50.0


# ---------------------------------------------------------------------------------------------
# evidence that is not pooled: synthesis without meta-analysis (SWiM)
# ---------------------------------------------------------------------------------------------

SWIM = MethodInfo(
    "swim", "synthesis without meta-analysis (SWiM) reporting guideline",
    "Campbell M, McKenzie JE, Sowden A, et al. Synthesis without meta-analysis (SWiM) in systematic "
    "reviews: reporting guideline. BMJ 2020;368:l6890.", "10.1136/bmj.l6890", "")
ALBATROSS = MethodInfo(
    "albatross", "albatross plot: p-value by direction of effect against sample size",
    "Harrison S, Jones HE, Martin RM, Lewis SJ, Higgins JPT. The albatross plot: a novel graphical tool "
    "for presenting results of diversely reported studies in a systematic review. Res Synth Methods "
    "2017;8:281-9.", "10.1002/jrsm.1239", "")
EFFECT_DIRECTION = MethodInfo(
    "effect-direction", "effect direction and the sign test over independent studies",
    "Hilton Boon M, Thomson H. The effect direction plot revisited: application of the 2019 Cochrane "
    "Handbook guidance on alternative synthesis methods. Res Synth Methods 2021;12:29-33.",
    "10.1002/jrsm.1458", "")
CLOPPER_PEARSON = MethodInfo(
    "clopper-pearson", "exact (Clopper-Pearson) confidence interval of a proportion",
    "Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case of the "
    "binomial. Biometrika 1934;26:404-13.", "10.1093/biomet/26.4.404", "binom.test")
#: Two-sided level at which a sign test could show a direction at all: below the number of
#: independent results whose smallest attainable p reaches it, the test is not run.
SIGN_TEST_ALPHA = 0.05


class EffectDirection(str, enum.Enum):
    """Direction of one result (Thomson & Thomas 2013; Hilton Boon & Thomson 2021): for the intervention (more exposure), against
    it, no difference (an estimate at the null), or, for a set of results of one patient set, mixed."""

    BENEFIT = "benefit"
    HARM = "harm"
    NONE = "none"
    MIXED = "mixed"


#: What a plan may declare for a result without an effect estimate (``directions`` of a narrative).
DECLARED_DIRECTIONS = (EffectDirection.BENEFIT.value, EffectDirection.HARM.value)


class NarrativeFigure(str, enum.Enum):
    """The figure a narrative section's results support (one section may have several)."""

    FOREST = "forest"            # ratio estimates with reported CIs, side by side without a diamond
    ALBATROSS = "albatross"      # p-values with sample size and a direction, no estimate (Harrison 2017)
    PROPORTIONS = "proportions"  # single-group proportions with exact or reported CIs


class SignTestNote(str, enum.Enum):
    """Why a sign test on effect direction was not run for an outcome (SWiM item 5)."""

    NO_DIRECTION = "no-direction"            # no independent result has a direction
    TOO_FEW_INDEPENDENT = "too-few-independent"   # even all in one direction could not reach SIGN_TEST_ALPHA


class IntervalSource(str, enum.Enum):
    """Where a proportion's CI on a figure comes from."""

    EXACT = "clopper-pearson"    # computed from the registry's numerator and denominator
    REPORTED = "reported"        # the registry's reported CI (no counts to compute one)
    NONE = "none"                # neither: the point alone
