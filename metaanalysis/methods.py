"""The one table of methods: code -> full name, citation, metafor argument.

The report's methods text, the CLI help and the docs all read from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    code: str
    name: str
    citation: str
    doi: str
    metafor: str


TAU2_ESTIMATORS: dict[str, MethodInfo] = {m.code: m for m in [
    MethodInfo("FE", "common-effect (fixed-effect) inverse-variance model",
               "Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press; 1985.",
               "", 'method = "FE"'),
    MethodInfo("DL", "DerSimonian-Laird method-of-moments estimator",
               "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-88.",
               "10.1016/0197-2456(86)90046-2", 'method = "DL"'),
    MethodInfo("HE", "Hedges (unweighted method-of-moments) estimator",
               "Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press; 1985.",
               "", 'method = "HE"'),
    MethodInfo("HS", "Hunter-Schmidt estimator",
               "Hunter JE, Schmidt FL. Methods of Meta-Analysis. 2nd ed. Sage; 2004.",
               "", 'method = "HS"'),
    MethodInfo("SJ", "Sidik-Jonkman estimator",
               "Sidik K, Jonkman JN. Simple heterogeneity variance estimation for meta-analysis. "
               "J R Stat Soc C 2005;54:367-84.",
               "10.1111/j.1467-9876.2005.00489.x", 'method = "SJ"'),
    MethodInfo("ML", "maximum-likelihood estimator",
               "Hardy RJ, Thompson SG. A likelihood approach to meta-analysis with random effects. "
               "Stat Med 1996;15:619-29.",
               "10.1002/(SICI)1097-0258(19960330)15:6<619::AID-SIM188>3.0.CO;2-A", 'method = "ML"'),
    MethodInfo("REML", "restricted maximum-likelihood estimator",
               "Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the "
               "random-effects model. J Educ Behav Stat 2005;30:261-93.",
               "10.3102/10769986030003261", 'method = "REML"'),
    MethodInfo("EB", "empirical Bayes estimator (identical to Paule-Mandel without moderators)",
               "Morris CN. Parametric empirical Bayes inference: theory and applications. "
               "J Am Stat Assoc 1983;78:47-55.",
               "10.1080/01621459.1983.10477920", 'method = "EB"'),
    MethodInfo("PM", "Paule-Mandel estimator",
               "Paule RC, Mandel J. Consensus values and weighting factors. "
               "J Res Natl Bur Stand 1982;87:377-85.",
               "10.6028/jres.087.022", 'method = "PM"'),
]}

TESTS: dict[str, MethodInfo] = {m.code: m for m in [
    MethodInfo("z", "Wald-type z test and confidence interval",
               "Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw 2010;36(3).",
               "10.18637/jss.v036.i03", 'test = "z"'),
    MethodInfo("knha", "Hartung-Knapp-Sidik-Jonkman (HKSJ) adjustment with a t distribution on k-1 df",
               "Knapp G, Hartung J. Improved tests for a random effects meta-regression with a single "
               "covariate. Stat Med 2003;22:2693-710.",
               "10.1002/sim.1482", 'test = "knha"'),
    MethodInfo("adhoc", "HKSJ with the variance multiplier floored at 1 (ad hoc variant)",
               "Knapp G, Hartung J. Stat Med 2003;22:2693-710; Jackson D et al. Stat Med 2017;36:3923-34.",
               "10.1002/sim.7411", 'test = "adhoc"'),
]}

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

EGGER = MethodInfo(
    "egger", "Egger's regression test for funnel-plot asymmetry",
    "Egger M, Davey Smith G, Schneider M, Minder C. Bias in meta-analysis detected by a simple, "
    "graphical test. BMJ 1997;315:629-34.", "10.1136/bmj.315.7109.629", "regtest(res)")


def describe(method: str, test: str, pi: str, level: float) -> str:
    """One paragraph of methods text for a report."""
    est = TAU2_ESTIMATORS[method]
    t = TESTS[test]
    p = PREDICTION_INTERVALS[pi]
    lv = f"{100 * level:g}%"
    if method == "FE":
        return (f"Effects were pooled with a {est.name} on the log scale for ratio measures; "
                f"{lv} confidence intervals use the {t.name}.")
    return (f"Effects were pooled with an inverse-variance random-effects model on the log scale for "
            f"ratio measures. The between-study variance τ² was estimated with the {est.name}; "
            f"{lv} confidence intervals and p-values use the {t.name}. A {lv} {p.name} is shown. "
            f"{HETEROGENEITY.name} are reported. {I2_DEFINITION.name}. Computations reproduce metafor "
            f"(rma.uni) to 1e-6.")


def citations(method: str, test: str, pi: str) -> list[MethodInfo]:
    """The references a methods section for these settings must cite (no duplicates)."""
    items = [TAU2_ESTIMATORS[method], TESTS[test], PREDICTION_INTERVALS[pi], HETEROGENEITY, I2_DEFINITION]
    seen, out = set(), []
    for m in items:
        if m.citation not in seen:
            seen.add(m.citation)
            out.append(m)
    return out
