"""Plain-text renderings of results (the CLI's ``pool`` output and ``MetaResult.summary()``)."""

from __future__ import annotations

import numpy as np

from .format import fmt_num, fmt_p_eq, pct


def summary_text(res, transform: str | None = None) -> str:
    """metafor-like text summary of a :class:`~metaanalysis.results.MetaResult`.

    Parameters
    ----------
    res : MetaResult
    transform : {None, "exp"}
        ``"exp"`` shows the estimate and intervals on the ratio scale.
    """
    f = fmt_num
    lines = [
        f"{'Common-effect' if res.method == 'FE' else 'Random-effects'} model "
        f"(k = {res.k}; tau^2 estimator: {res.method}; test: {res.test})",
        "",
        f"tau^2 = {f(res.tau2, 4)}"
        + (f" (SE = {f(res.tau2_se, 4)})" if res.tau2_se is not None else "")
        + (f", {pct(res.level)} CI {f(res.tau2_ci_lower, 4)} to {f(res.tau2_ci_upper, 4)}"
           if res.tau2_ci_lower is not None else ""),
        f"I^2 = {f(res.i2, 2)}%   H^2 = {f(res.h2, 2)}",
        f"Q(df = {res.q_df}) = {f(res.q, 4)}, {fmt_p_eq(res.q_pvalue)}",
        "",
    ]
    tr = (lambda x: x) if transform is None else getattr(np, transform)
    lines.append(
        f"estimate = {f(tr(res.estimate), 4)}  "
        f"[{f(tr(res.ci_lower), 4)}, {f(tr(res.ci_upper), 4)}]  "
        f"se = {f(res.se, 4)}  {fmt_p_eq(res.pvalue)}"
    )
    if res.pi_lower is not None:
        lines.append(
            f"prediction interval ({res.pi}): "
            f"[{f(tr(res.pi_lower), 4)}, {f(tr(res.pi_upper), 4)}]"
        )
    for n in res.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
