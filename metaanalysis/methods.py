"""Methods text of a report, from the vocabulary's method tables (:mod:`metaanalysis.vocab`)."""

from __future__ import annotations

from .vocab import HETEROGENEITY, I2_DEFINITION, METHODS, PREDICTION_INTERVALS, TESTS, MethodInfo


def describe(method: str, test: str, pi: str, level: float) -> str:
    """One paragraph of methods text for a report."""
    est = METHODS[method]
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
    items = [METHODS[method], TESTS[test], PREDICTION_INTERVALS[pi], HETEROGENEITY, I2_DEFINITION]
    seen, out = set(), []
    for m in items:
        if m.citation not in seen:
            seen.add(m.citation)
            out.append(m)
    return out
