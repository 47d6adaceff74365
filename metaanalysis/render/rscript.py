"""An R script per analysis (``<id>.R``) that reproduces its main model with metafor.

The script carries the data (study labels, yi, vi on the analysis scale) inline, fits
``rma.uni`` with the plan's τ² estimator, test and level, prints the fit, the pooled estimate
with its CI and prediction interval (``predict``, on the natural scale for ratio measures),
the Q-profile CIs of τ², I² and H² (``confint``) and draws the forest plot with the same rows
(Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw
2010;36(3), doi:10.18637/jss.v036.i03). Floats are written in their shortest round-trip form,
so the script is byte-identical for identical inputs.
"""

from __future__ import annotations

import json

from .. import vocab
from ..estimators import ITERATIVE_METHODS

__all__ = ["r_script"]


def _r_string(s: str) -> str:
    """An R string literal (JSON's escapes are valid R escapes for text without NUL)."""
    return json.dumps(s.replace("\0", ""), ensure_ascii=False)


def _r_vector(values, fmt) -> str:
    return "c(\n  " + ",\n  ".join(fmt(v) for v in values) + "\n)"


def _comment(s: str) -> str:
    return " ".join(str(s).split())


def _fit_lines(method: str, test: str, level: float, pi: str, log: bool) -> list[str]:
    ctl = ",\n               control = list(threshold = 1e-12, maxiter = 10000)" if method in ITERATIVE_METHODS else ""
    tr = ", transf = exp" if log else ""
    lines = [f'res <- rma.uni(yi = yi, vi = vi, slab = slab, method = "{method}", test = "{test}",',
             f"               level = {100 * level:.10g}{ctl})",
             "print(res)",
             "",
             "# pooled estimate, CI and prediction interval" + (" (natural scale)" if log else ""),
             f"print(predict(res{tr}))"]
    if pi == "riley":
        lines += ["# the plan's prediction interval (Riley et al. 2011, t with k - 2 df), not predict()'s:",
                  f"pi_riley <- coef(res) + c(-1, 1) * qt(1 - (1 - {level!r}) / 2, res$k - 2) *",
                  "  sqrt(res$tau2 + res$se^2)",
                  f"print({'exp(pi_riley)' if log else 'pi_riley'})"]
    if method != "FE":
        lines += ["", "# Q-profile CIs of tau^2, tau, I^2 and H^2", "print(confint(res))"]
    return lines


def r_script(a, view: dict) -> bytes:
    """The R script of an analysis with a pooled main model (``a.result`` not None).

    Parameters
    ----------
    a : metaanalysis.analysis.AnalysisResult
    view : dict
        Its view model (:func:`metaanalysis.render.view.analysis_view`), for the study labels.

    Returns
    -------
    bytes
        UTF-8 R source.
    """
    if a.binary is not None:
        return _binary_script(a, view)
    s, m = a.settings, vocab.measure(a.measure)
    labels = {st["row_id"]: st["label"] for st in view["studies"]}
    studies = a.studies
    head = [f"# {_comment(a.analysis.title)} ({a.id}): {a.measure}, {len(studies)} studies",
            "# Reproduces the main model of the report page with metafor (R); written by metaanalysis report.",
            f"# yi: {'log ' if m.log_scale else ''}{a.measure}; vi: its variance (SE^2).",
            "library(metafor)", ""]
    data = [f"slab <- {_r_vector([labels[st.row_id] for st in studies], _r_string)}",
            f"yi <- {_r_vector([st.yi for st in studies], lambda v: repr(float(v)))}",
            f"vi <- {_r_vector([st.vi for st in studies], lambda v: repr(float(v)))}", ""]
    fav = a.analysis.favours
    forest = ["", "# forest plot with the same rows" + (" (log scale, labelled on the natural scale)" if m.log_scale else ""),
              f"forest(res, {'atransf = exp, ' if m.log_scale else ''}addpred = TRUE,",
              f'       header = c("Study", {_r_string(f"{a.measure} [{100 * s.level:.10g}% CI]")}),',
              f"       xlab = {_r_string(f'Favours {fav[0]} (left) / Favours {fav[1]} (right)')})"]
    text = "\n".join(head + data + _fit_lines(s.method, s.test, s.level, s.pi, m.log_scale) + forest) + "\n"
    return text.encode("utf-8")


def _binary_script(a, view: dict) -> bytes:
    """The R script of a Mantel-Haenszel or Peto analysis: the 2x2 tables inline, then the same
    ``rma.mh`` / ``rma.peto`` call as the page (``a.binary.metafor_call``)."""
    m = vocab.measure(a.measure)
    labels = {st["row_id"]: st["label"] for st in view["studies"]}
    ev_i, n_i, ev_c, n_c = zip(*(st.counts for st in a.studies))
    num = lambda v: str(int(v))   # noqa: E731 -- counts are integers
    head = [f"# {_comment(a.analysis.title)} ({a.id}): {a.measure}, {len(a.studies)} studies, "
            f"{vocab.BINARY_METHODS[a.settings.method].name}",
            "# Reproduces the main model of the report page with metafor (R); written by metaanalysis report.",
            "# ai/bi: events/non-events in the intervention arm; ci/di: in the control arm.",
            "library(metafor)", ""]
    data = [f"slab <- {_r_vector([labels[st.row_id] for st in a.studies], _r_string)}",
            f"ai <- {_r_vector(ev_i, num)}", f"n1i <- {_r_vector(n_i, num)}",
            f"ci <- {_r_vector(ev_c, num)}", f"n2i <- {_r_vector(n_c, num)}",
            "dat <- data.frame(ai = ai, bi = n1i - ai, ci = ci, di = n2i - ci)", ""]
    tr = ", transf = exp" if m.log_scale else ""
    fit = [f"res <- {a.binary.metafor_call}", "print(res)", "",
           "# pooled estimate and CI" + (" (natural scale)" if m.log_scale else ""), f"print(predict(res{tr}))"]
    fav = a.analysis.favours
    forest = ["", "# forest plot with the same rows",
              f"forest(res, slab = slab{', atransf = exp' if m.log_scale else ''},",
              f"       xlab = {_r_string(f'Favours {fav[0]} (left) / Favours {fav[1]} (right)')})"]
    return ("\n".join(head + data + fit + forest) + "\n").encode("utf-8")
