"""The sentences behind the codes: caveats, study flags, scenarios, captions and methods text.

Every text is built from the analysis result it describes (its k, level, measure, model and
intervals) and from the vocabulary (:mod:`metaanalysis.vocab`), so a caption or a warning can
only say what is true of the numbers on the same page.
"""

from __future__ import annotations

from .. import vocab
from ..analysis import AnalysisResult, Caveat, Scenario, ScenarioKind
from ..vocab import Flag, StudyFlag
from .format import fmt_ci, fmt_num, pct
from .labels import RowText

#: Short labels of the flags (overview table, warning list).
FLAG_LABELS: dict[Flag, str] = {
    Flag.SINGLE_STUDY: "single study", Flag.FEW_STUDIES: "few studies", Flag.NO_FUNNEL: "no funnel",
    Flag.DERIVED_SE: "SE from p-value", Flag.POST_HOC: "post hoc input", Flag.UNCONFIRMED: "unconfirmed input",
    Flag.TAU2_ZERO: "τ² = 0", Flag.HKSJ_NARROWER: "HKSJ CI < z CI", Flag.K2_T1: "k = 2: t(1)",
    Flag.NOT_POOLABLE: "row without SE", Flag.MISSING_EVIDENCE: "missing evidence",
}

STUDY_FLAG_TEXT: dict[StudyFlag, str] = {
    StudyFlag.SE_FROM_P: "SE derived from p-value",
    StudyFlag.IMPRECISE_P: "rounded or bounded p-value: imprecise SE",
    StudyFlag.POST_HOC: "post hoc subgroup",
    StudyFlag.OBSERVATIONAL: "observational",
    StudyFlag.PRESPECIFIED_SUBGROUP: "prespecified subgroup",
    StudyFlag.NOT_FOR_POOLING: "use_for_pooling = no",
    StudyFlag.INCLUDED_BY_PLAN: "included by the plan",
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


def scenario_name(sc: Scenario, rows: RowText) -> tuple[str, str]:
    """Name and description of a sensitivity scenario."""
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
        from .._dist import t_isf

        q = float(t_isf((1 - a.settings.level) / 2, 1))
        return ("With k = 2 the HKSJ interval uses a t distribution with 1 degree of freedom "
                f"(quantile {fmt_num(q, 1)}): the CI and prediction interval are extremely wide by construction.")
    raise ValueError(f"no text for flag {f!r}")


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


def forest_caption(a: AnalysisResult) -> str:
    """What the forest plot shows: boxes, diamond (model), PI, scale and which side favours what."""
    lv, m = pct(a.settings.level), vocab.measure(a.measure)
    text = f"Boxes: study estimates (area ∝ weight) with {lv} CIs"
    if a.result is not None:
        text += f"; diamond: pooled {model_words(a.settings.method)} estimate and CI"
        if a.result.pi_lower is not None:
            text += f"; grey bar: {lv} prediction interval"
    scale = "Log scale; " if m.log_scale else ""
    return f"{text}. {scale}{m.code} < {fmt_num(m.null, 0)} favours {a.analysis.favours[0]}."


def methods_text(method: str, test: str, pi: str, level: float, measure: str) -> str:
    """One paragraph of methods text for these settings (vocabulary names and citations)."""
    est, t, p = vocab.METHODS[method], vocab.TESTS[test], vocab.PREDICTION_INTERVALS[pi]
    lv = pct(level)
    scale = "on the log scale for ratio measures" if vocab.measure(measure).log_scale else "on the natural scale"
    if method == "FE":
        return f"Effects were pooled with a {est.name} {scale}; {lv} confidence intervals use the {t.name}."
    return (f"Effects were pooled with an inverse-variance random-effects model {scale}. The between-study "
            f"variance τ² was estimated with the {est.name}; {lv} confidence intervals and p-values use the "
            f"{t.name}. A {lv} {p.name} is shown. {vocab.HETEROGENEITY.name} are reported. "
            f"{vocab.I2_DEFINITION.name}. Computations reproduce metafor (rma.uni) to 1e-6.")


def citations(method: str, test: str, pi: str) -> list[vocab.MethodInfo]:
    """The references a methods section for these settings must cite (no duplicates)."""
    items = [vocab.METHODS[method], vocab.TESTS[test], vocab.PREDICTION_INTERVALS[pi], vocab.HETEROGENEITY,
             vocab.I2_DEFINITION]
    seen, out = set(), []
    for m in items:
        if m.citation not in seen:
            seen.add(m.citation)
            out.append(m)
    return out
