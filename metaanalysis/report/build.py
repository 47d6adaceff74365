"""Build the evidence reports: one self-contained HTML page (+ JSON) per analysis, an index, a CSV.

``build_reports(registry_path, plan_path, out_dir) -> BuildSummary`` is the library entry
point (the CLI's ``metaanalysis report`` and the batch command call it). It

1. loads and checks the registry and the plan (a :class:`~metaanalysis.problems.ProblemError`
   propagates before anything is written),
2. computes every analysis from :func:`metaanalysis.pool` / :mod:`metaanalysis.sensitivity`
   (nothing here re-implements a statistic),
3. renders everything in memory (plots once per analysis), then
4. writes into a temporary directory next to ``out_dir`` and swaps it in with renames, so a
   failed or killed build leaves the previous reports untouched.

Outputs are byte-identical for identical inputs: no wall-clock dates (``SOURCE_DATE_EPOCH``
is shown when set), sorted JSON keys, deterministic SVG from the plot layer.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..problems import Problem
from ..results import fmt_ci, fmt_num, fmt_p, fmt_p_eq, pct
from .._dist import norm_isf
from ..runtime import fork_workers, run_forked
from .output import check_out_dir, write_tree_atomic

__all__ = ["BuildSummary", "build_reports", "cli_report", "neutralise_cell", "ESTIMATOR_PANEL"]

_HERE = Path(__file__).resolve().parent
TEMPLATES = _HERE / "templates"
STYLE = _HERE / "style.css"

#: tau² estimators shown side by side in the estimator-sensitivity panel (metafor's codes).
ESTIMATOR_PANEL = ("DL", "REML", "ML", "PM", "EB", "HS", "SJ", "HE")
PANEL_TESTS = ("z", "knha")
#: Below this many studies tau² (and so I², the PI and HKSJ) is very imprecise: with 2-4
#: studies the Q-profile CI of tau² typically spans 0 to several times the estimate
#: (Cochrane Handbook v6.4 ch. 10.10.4; Veroniki et al. 2016, doi:10.1002/jrsm.1164).
FEW_STUDIES = 5
#: Funnel plots and Egger's test need >= 10 studies (Sterne et al. 2011, doi:10.1136/bmj.d4002).
FUNNEL_MIN_K = 10
RATIO = ("HR", "OR", "RR")
#: Short labels of the warning codes (index flags).
WARNING_LABELS = {
    "single-study": "single study", "few-studies": "few studies", "no-funnel": "no funnel",
    "derived-se": "SE from p-value", "post-hoc": "post hoc input", "unconfirmed": "unconfirmed input",
    "tau2-zero": "τ² = 0", "hksj-narrower": "HKSJ CI < z CI", "k2-t1": "k = 2: t(1)",
    "not-poolable": "row without SE", "missing-evidence": "missing evidence",
}
PACKAGES = ("metaanalysis", "numpy", "scipy", "pandas", "matplotlib", "jinja2")


@dataclass(frozen=True)
class BuildSummary:
    """What a build produced.

    Attributes
    ----------
    out_dir : str
    analyses : tuple of str
        Analysis ids built (one HTML + JSON page each), in plan order.
    narratives : tuple of str
        Narrative section ids built (HTML + JSON).
    files : tuple of str
        Every file written, relative to ``out_dir``, sorted.
    warnings : tuple of str
        ``"<analysis-id>: <warning>"`` for every warning shown in the reports.
    problems : tuple of Problem
        Registry and plan warnings (a successful build has no errors).
    registry_sha256, plan_sha256 : str
    """

    out_dir: str
    analyses: tuple[str, ...]
    narratives: tuple[str, ...]
    files: tuple[str, ...]
    warnings: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default=())
    registry_sha256: str = ""
    plan_sha256: str = ""


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _s(v: Any) -> str:
    if v is None:
        return ""
    try:
        if v != v:
            return ""
    except (TypeError, ValueError):
        return ""
    return str(v).strip()


def _opt_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _opt_int(v: Any) -> int | None:
    f = _opt_float(v)
    return int(f) if f is not None else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu":
        return int(v)
    if hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "b":
        return bool(v)
    return f if math.isfinite(f) else None


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise_cell(v: Any) -> str:
    """A CSV cell safe from spreadsheet formula injection (OWASP "CSV injection").

    Text starting with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return) is prefixed
    with a single quote; plain numbers such as ``-0.22`` stay numbers.
    """
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if s and s[0] in "=+-@\t\r" and not _NUMBER.match(s):
        return "'" + s
    return s


def _short_author(authors: str) -> str:
    a = authors.split(",")[0].strip()
    a = re.sub(r"\s+et al\.?$", "", a).strip()
    parts = a.split()
    # "Gnant M" -> "Gnant"; keep multi-word surnames ("van der Berg M" -> "van der Berg")
    if len(parts) > 1 and len(parts[-1]) <= 3 and parts[-1].replace(".", "").isupper():
        parts = parts[:-1]
    return " ".join(parts) or authors


def _short_design(d: str) -> str:
    return {"RCT": "RCT", "RCT post hoc subgroup": "RCT, post hoc subgroup",
            "RCT prespecified subgroup": "RCT, prespecified subgroup",
            "observational": "observational", "single-arm": "single-arm"}.get(d, d)


def _versions() -> list[tuple[str, str]]:
    from importlib import metadata

    out = []
    for p in PACKAGES:
        try:
            out.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            out.append((p, "not installed"))
    return out


def _build_date() -> str:
    sde = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not sde:
        return ""
    try:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(int(sde), tz=timezone.utc).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


_SVG_HEAD = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.S)
_SVG_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SVG_META = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _inline_svg(svg: bytes, prefix: str, label: str) -> str:
    """SVG bytes -> markup for inlining in HTML (no XML prolog, comments or metadata).

    Comments are removed because matplotlib copies the drawn text into them; ids get a
    per-figure prefix so two figures on one page cannot collide.
    """
    s = svg.decode("utf-8")
    s = _SVG_HEAD.sub("", s, count=1)
    s = _SVG_COMMENT.sub("", s)
    s = _SVG_META.sub("", s)
    s = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', s)
    s = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', s)
    s = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", s)
    from markupsafe import escape

    s = s.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    # natural size in CSS px (1 pt = 4/3 px): the CSS never shrinks a plot below it, so the
    # smallest plot text (7.5 pt) stays 10 px and a wide plot scrolls in its .plot-scroll
    end = s.index(">") + 1  # the root <svg ...> tag only
    s = _SVG_SIZE.sub(lambda m: f'{m.group(1)}="{_pt_to_px(m.group(2))}px"', s[:end]) + s[end:]
    return s


_SVG_SIZE = re.compile(r'(?<=\s)(width|height)="([0-9.]+)pt"')


def _pt_to_px(v: str) -> str:
    return f"{float(v) * 4 / 3:.2f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------------------------
# the model of one analysis (numbers + preformatted strings for the templates)
# ---------------------------------------------------------------------------------------------

class _Ctx:
    """Registry rows, effects and formatting shared by all analyses of one build."""

    def __init__(self, registry, effects):
        self.registry = registry
        recs = registry.df.to_dict("records")
        self.rows = {_s(r["row_id"]): r for r in recs}
        self.order = {_s(r["row_id"]): i for i, r in enumerate(recs)}
        eff = effects.to_dict("records")
        self.eff = {_s(e["row_id"]): e for e in eff}

    def row(self, rid: str) -> dict:
        return self.rows[rid]

    def label(self, rid: str) -> str:
        r = self.rows[rid]
        year = _opt_int(r.get("year"))
        who = _short_author(_s(r.get("authors")))
        base = _s(r.get("trial_id"))
        return f"{base} ({who} {year})" if year else f"{base} ({who})"

    def report_labels(self, a: str, b: str) -> tuple[str, str]:
        """Labels of two reports of one trial that tell them apart (sensitivity swaps).

        ``ABCSG-18 final analysis (Gnant 2022)`` vs ``ABCSG-18 primary DFS analysis (Gnant 2019)``:
        the registry's ``report`` column without its trailing year; where both rows name the same
        report, the part of ``endpoint_detail`` in which they differ (e.g. "censored at
        cross-over ..."); as a last resort the row id.
        """
        ra, rb = self.rows[a], self.rows[b]

        def rep(r):
            return re.sub(r"[\s,;]*\b(19|20)\d\d$", "", _s(r.get("report")).strip())

        def detail(r):
            return re.sub(r"\s*\([^)]*\)", "", _s(r.get("endpoint_detail"))).strip()

        da, db = rep(ra), rep(rb)
        if da == db:
            ta, tb = detail(ra), detail(rb)
            n = len(os.path.commonprefix([ta, tb]))
            if (ta + " ")[n] not in " ,;" or (tb + " ")[n] not in " ,;":
                n = max(ta.rfind(" ", 0, n), 0)  # differ inside a word: keep whole words
            xa, xb = ta[n:].strip(" ,;"), tb[n:].strip(" ,;")
            da, db = ", ".join(x for x in (da, xa) if x), ", ".join(x for x in (db, xb) if x)
        if da == db:
            da, db = f"{da} {a}".strip(), f"{db} {b}".strip()

        def lab(rid, desc):
            r = self.rows[rid]
            year = _opt_int(r.get("year"))
            who = _short_author(_s(r.get("authors")))
            base = " ".join(x for x in (_s(r.get("trial_id")), desc) if x)
            return f"{base} ({who} {year})" if year else f"{base} ({who})"

        return lab(a, da), lab(b, db)


def _tr(measure: str):
    return math.exp if measure in RATIO else (lambda v: v)


def _nat(measure: str, x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return math.exp(x) if measure in RATIO else x


def _est_ci_text(measure: str, est, lo, hi, digits=2) -> tuple[str, str]:
    return fmt_num(_nat(measure, est), digits), fmt_ci(_nat(measure, lo), _nat(measure, hi), digits)


def _study_flags(ctx: _Ctx, rid: str, included_reason: str | None) -> list[str]:
    r, e = ctx.row(rid), ctx.eff.get(rid, {})
    flags = []
    if bool(e.get("derived")) and e.get("se_source") == "p":
        flags.append("SE derived from p-value")
    elif bool(e.get("derived")):
        flags.append(f"effect derived from {e.get('se_source')}")
    if bool(e.get("imprecise")):
        flags.append("rounded or bounded p-value: imprecise SE")
    st = _s(r.get("status"))
    if st != "confirmed":
        flags.append(f"status {st}")
    d = _s(r.get("design"))
    if "post hoc" in d:
        flags.append("post hoc subgroup")
    elif d == "observational":
        flags.append("observational")
    elif "subgroup" in d:
        flags.append("prespecified subgroup")
    if _s(r.get("use_for_pooling")) == "no":
        flags.append("use_for_pooling = no")
    if included_reason:
        flags.append("included by the plan")
    return flags


def _marks(flags: list[str]) -> str:
    m = ""
    if any(f.startswith("SE derived") or f.startswith("effect derived") for f in flags):
        m += "†"
    if any(f.startswith("status ") for f in flags):
        m += "‡"
    if any(f in ("post hoc subgroup", "observational") for f in flags):
        m += "§"
    return m


FOOTNOTE_MARKS = {
    "†": "† SE derived from the reported p-value (no CI available); the interval shown is derived, not reported.",
    "‡": "‡ Numbers not confirmed in a clean source (registry status unconfirmed).",
    "§": "§ Post hoc subgroup or observational result.",
}


def _as_reported(st: dict) -> dict:
    """Estimate, CI and p of a one-study row as in the Studies table (reported, not refitted).

    A k = 1 "pooled" result recomputes the CI from the SE (ABCSG-18 OS: reported 0.64-1.01,
    refitted 0.64-1.00); a table row holding one study shows what the study reported.
    """
    return {"estimate": st["estimate"], "ci": st["ci"] + (f" ({st['ci_note']})" if st["ci_note"] else ""),
            "p": st["p"]}


def _res_summary(res, measure: str) -> dict:
    """Preformatted numbers of one MetaResult for tables."""
    est, ci = _est_ci_text(measure, res.estimate, res.ci_lower, res.ci_upper)
    pi = (fmt_ci(_nat(measure, res.pi_lower), _nat(measure, res.pi_upper))
          if res.pi_lower is not None and res.pi_upper is not None else "–")
    one = res.k == 1   # nothing to say about heterogeneity or prediction with one study
    return {
        "k": res.k, "estimate": est, "ci": ci, "pi": "–" if one else pi, "p": fmt_p(res.pvalue),
        "tau2": "–" if one else fmt_num(res.tau2, 4), "i2": "–" if one else fmt_num(res.i2, 1),
        "method": res.method, "test": res.test, "se": fmt_num(res.se, 4),
    }


def _pool(yi, vi, s, **kw):
    from .. import pool

    return pool(yi, vi, method=kw.get("method", s.method), test=kw.get("test", s.test),
                level=s.level, pi=kw.get("pi", s.pi))


def _pooled_arrays(ctx: _Ctx, a):
    """Rows of analysis ``a`` with a usable (yi, vi), ordered by year; and those without."""
    import numpy as np

    order = sorted(a.rows, key=lambda r: (_opt_int(ctx.row(r).get("year")) or 0, ctx.order[r]))
    pooled_ids, not_poolable = [], []
    for rid in order:
        e = ctx.eff.get(rid, {})
        y, v = _opt_float(e.get("yi")), _opt_float(e.get("vi"))
        if y is not None and v is not None and v > 0:
            pooled_ids.append(rid)
        else:
            not_poolable.append({"row_id": rid, "label": ctx.label(rid),
                                 "reason": _s(e.get("reason")) or "no usable effect and SE"})
    yi = np.array([float(ctx.eff[r]["yi"]) for r in pooled_ids])
    vi = np.array([float(ctx.eff[r]["vi"]) for r in pooled_ids])
    return pooled_ids, not_poolable, yi, vi


def _estimator_panels(ctx: _Ctx, analyses) -> dict:
    """The estimator panel of every analysis at once: one ``pool_many`` per (method, test).

    Returns ``{analysis_id: {(method, test): MetaResult}}``; row i of ``pool_many`` is
    ``pool`` on analysis i (NaN-padded; see :func:`metaanalysis.pool_many`).
    """
    import numpy as np

    from ..pooling import pool_many

    groups: dict[tuple, list] = {}
    for a in analyses:
        if "estimators" not in a.sensitivity:
            continue
        ids, _, yi, vi = _pooled_arrays(ctx, a)
        if len(ids) >= 2:
            groups.setdefault((a.settings.level, a.settings.pi), []).append((a.id, yi, vi))
    out: dict[str, dict] = {}
    for (level, pi), items in groups.items():
        kmax = max(len(y) for _, y, _ in items)
        Y = np.full((len(items), kmax), np.nan)
        V = np.full((len(items), kmax), np.nan)
        for i, (_, y, v) in enumerate(items):
            Y[i, : len(y)], V[i, : len(v)] = y, v
        for m in ESTIMATOR_PANEL:
            for t in PANEL_TESTS:
                res = pool_many(Y, V, method=m, test=t, level=level, pi=pi)
                for i, (aid, _, _) in enumerate(items):
                    out.setdefault(aid, {})[(m, t)] = res.row(i)
    return out


def _analysis_model(ctx: _Ctx, a, plan, registry, panels: dict | None = None) -> dict:
    """Everything one analysis page, its JSON and its CSV row need."""
    import numpy as np

    s = a.settings
    measure = a.measure
    lv = pct(s.level)
    inc_reason = {c.row_id: c.reason for c in a.included}
    pooled_ids, not_poolable, yi, vi = _pooled_arrays(ctx, a)
    k = len(pooled_ids)
    years = [(_opt_int(ctx.row(r).get("year")) or 0) for r in pooled_ids]

    warnings: list[dict] = []

    def warn(code: str, text: str, level: str = "caution"):
        warnings.append({"code": code, "short": WARNING_LABELS.get(code, code), "text": text, "level": level})

    res = zres = None
    if k >= 2:
        res = _pool(yi, vi, s)
        if s.test != "z":
            zres = _pool(yi, vi, s, test="z")
    elif k == 1:
        res = None

    # ---- studies ---------------------------------------------------------------------------
    studies = []
    weights = list(res.weights) if res is not None else []
    z = float(norm_isf((1 - s.level) / 2))
    for i, rid in enumerate(pooled_ids):
        r = ctx.row(rid)
        flags = _study_flags(ctx, rid, inc_reason.get(rid))
        lo_r, hi_r = _opt_float(r.get("ci_lower")), _opt_float(r.get("ci_upper"))
        reported_ci = lo_r is not None and hi_r is not None
        se = math.sqrt(vi[i])
        if reported_ci:
            ci_txt = fmt_ci(lo_r, hi_r)
            ci_level = _opt_float(r.get("ci_level"))
            ci_note = "" if ci_level in (None, 100 * s.level) else f"{fmt_num(ci_level, 0)}% CI as reported"
        else:
            ci_txt = fmt_ci(_nat(measure, yi[i] - z * se), _nat(measure, yi[i] + z * se))
            ci_note = " derived"
        n_i, n_c = _opt_int(r.get("n_int")), _opt_int(r.get("n_ctl"))
        e_i, e_c = _opt_int(r.get("events_int")), _opt_int(r.get("events_ctl"))
        studies.append({
            "row_id": rid, "label": ctx.label(rid), "marks": _marks(flags),
            "yi": float(yi[i]), "vi": float(vi[i]), "se": se,
            "weight": float(weights[i]) if weights else None,
            "weight_txt": f"{fmt_num(weights[i], 1)}%" if weights else "–",
            "estimate": fmt_num(_opt_float(r.get("estimate")) if _opt_float(r.get("estimate")) is not None
                                else _nat(measure, yi[i])),
            "ci": ci_txt, "ci_note": ci_note.strip(), "p": _s(r.get("p_value")) or "–",
            "n": f"{n_i if n_i is not None else '–'} / {n_c if n_c is not None else '–'}",
            "events": (f"{e_i} / {e_c}" if e_i is not None and e_c is not None else "–"),
            "followup": (f"{fmt_num(_opt_float(r.get('followup_months')), 0)} mo"
                         if _opt_float(r.get("followup_months")) is not None else "–"),
            "design": _short_design(_s(r.get("design"))), "tumour": _s(r.get("tumour_type")),
            "setting": _s(r.get("setting")), "comparator": _s(r.get("comparator")),
            "year": years[i], "flags": flags, "se_source": _s(ctx.eff[rid].get("se_source")),
            "included_reason": inc_reason.get(rid, ""),
        })

    # ---- warnings ------------------------------------------------------------------------
    if k == 1:
        warn("single-study", "One study: shown as a single-study result, not pooled; there is no "
             "between-study heterogeneity to estimate.", "info")
    if 2 <= k < FEW_STUDIES:
        warn("few-studies", f"Few studies (k = {k} < {FEW_STUDIES}): τ² is estimated very imprecisely "
             f"(see its {lv} CI below), and so are I², the prediction interval and the HKSJ interval.")
    if 2 <= k < FUNNEL_MIN_K:
        warn("no-funnel", f"k = {k} < {FUNNEL_MIN_K}: no funnel plot and no Egger test (too little power "
             "to detect small-study effects; Sterne et al. 2011, doi:10.1136/bmj.d4002).", "info")
    derived = [st["label"] for st in studies if "SE derived from p-value" in st["flags"]]
    if derived:
        warn("derived-se", f"SE derived from a reported p-value (no CI) for {', '.join(derived)}: "
             "rounded p-values make the SE imprecise; a bound such as p < 0.0001 gives a conservative SE.")
    ph = [st["label"] for st in studies if "post hoc subgroup" in st["flags"] or "observational" in st["flags"]]
    if ph:
        warn("post-hoc", f"Post hoc subgroup or observational input: {', '.join(ph)}.")
    unc = [st["label"] for st in studies if any(f.startswith("status ") for f in st["flags"])]
    if unc:
        warn("unconfirmed", f"Numbers not confirmed in a clean source, included by the plan: {', '.join(unc)}.")
    if res is not None:
        if res.tau2 <= 1e-10 and k < FUNNEL_MIN_K:
            warn("tau2-zero", f"τ² is estimated as 0 with only k = {k}: this does not show the absence of "
                 f"heterogeneity (the {lv} CI of τ² reaches {fmt_num(res.tau2_ci_upper, 4)}).")
        if zres is not None and s.test in ("knha", "adhoc"):
            w_h = res.ci_upper - res.ci_lower
            w_z = zres.ci_upper - zres.ci_lower
            if w_h < w_z - 1e-12:
                warn("hksj-narrower", f"The HKSJ CI is narrower than the Wald z CI ({fmt_ci(*(_nat(measure, x) for x in (res.ci_lower, res.ci_upper)))} vs "
                     f"{fmt_ci(*(_nat(measure, x) for x in (zres.ci_lower, zres.ci_upper)))}): the studies agree more "
                     "than their SEs predict; the ad hoc variant (test = \"adhoc\") would not let the CI shrink "
                     "below the z CI (Röver et al. 2015, doi:10.1186/s12874-015-0091-1).")
        if k == 2 and s.test in ("knha", "adhoc"):
            warn("k2-t1", "With k = 2 the HKSJ interval uses a t distribution with 1 degree of freedom "
                 "(quantile 12.7): the CI and prediction interval are extremely wide by construction.")
    if not_poolable:
        warn("not-poolable", "Selected but without a usable effect and SE: "
             + "; ".join(f"{n['label']} ({n['reason']})" for n in not_poolable) + ".")
    missing_ids = list(a.missing)
    if missing_ids:
        warn("missing-evidence", "Known evidence missing from this analysis: "
             + ", ".join(ctx.label(r) for r in missing_ids) + " (see Missing evidence).")

    # ---- results ---------------------------------------------------------------------------
    main = None
    if res is not None:
        main = {
            **_res_summary(res, measure),
            "z": fmt_num(res.stat, 2), "df": fmt_num(res.df, 0) if res.df is not None else "–",
            "p_eq": fmt_p_eq(res.pvalue),
            "stat_name": "t" if res.df is not None else "z",
            "tau": fmt_num(res.tau, 4),
            "tau2_ci": fmt_ci(res.tau2_ci_lower, res.tau2_ci_upper, 4),
            "tau_ci": fmt_ci(res.tau_ci_lower, res.tau_ci_upper, 4),
            "i2_ci": fmt_ci(res.i2_ci_lower, res.i2_ci_upper, 1),
            "h2": fmt_num(res.h2, 2), "h2_ci": fmt_ci(res.h2_ci_lower, res.h2_ci_upper, 2),
            "q": fmt_num(res.q, 2), "q_df": res.q_df, "q_p": fmt_p(res.q_pvalue),
            "z_ci": (fmt_ci(_nat(measure, zres.ci_lower), _nat(measure, zres.ci_upper))
                     if zres is not None else ""),
        }
    elif k == 1:
        st = studies[0]
        main = {"k": 1, "estimate": st["estimate"],
                "ci": st["ci"] + (f" ({st['ci_note']})" if st["ci_note"] else ""), "pi": "–", "p": st["p"],
                "single": True}

    # ---- estimator panel -------------------------------------------------------------------
    panel = []
    if k >= 2 and "estimators" in a.sensitivity:
        for m in ESTIMATOR_PANEL:
            row = {"method": m, "main": m == s.method}
            for t in PANEL_TESTS:
                r_ = (panels or {}).get(a.id, {}).get((m, t)) or _pool(yi, vi, s, method=m, test=t)
                row[t] = _res_summary(r_, measure)
                row["tau2"] = fmt_num(r_.tau2, 4)
                row["i2"] = fmt_num(r_.i2, 1)
                row[t + "_raw"] = r_
            panel.append(row)

    # ---- leave-one-out, cumulative ---------------------------------------------------------
    from .. import sensitivity as sens

    loo, cum = [], []
    if k >= 3 and "leave-one-out" in a.sensitivity:
        for st, r_ in zip(studies, sens.leave_one_out(yi, vi, method=s.method, test=s.test,
                                                     level=s.level, pi=s.pi)):
            loo.append({"omitted": st["label"], **_res_summary(r_, measure), "raw": r_})
    if k >= 2 and "cumulative" in a.sensitivity:
        idx = np.argsort(np.asarray(years), kind="stable")
        for j, r_ in enumerate(sens.cumulative(yi, vi, order=years, method=s.method, test=s.test,
                                               level=s.level, pi=s.pi)):
            st = studies[int(idx[j])]
            cum.append({"added": st["label"], "year": st["year"], **_res_summary(r_, measure), "raw": r_,
                        **(_as_reported(st) if r_.k == 1 else {})})

    # ---- subgroups ----------------------------------------------------------------------
    subgroups = []
    for var in a.subgroup:
        labels = [_s(ctx.row(r).get(var)) or "(empty)" for r in pooled_ids]
        uniq = list(dict.fromkeys(labels))
        if k < 2 or len(uniq) < 2:
            subgroups.append({"variable": var, "note": f"only one level of {var} among the pooled studies: "
                              "no subgroup analysis", "groups": [], "raw": None})
            continue
        sg = sens.subgroups(yi, vi, labels, method=s.method, test=s.test, level=s.level, pi=s.pi)
        groups = []
        for g, r_ in sg.groups.items():
            members = [st for st, l_ in zip(studies, labels) if l_ == g]
            groups.append({"name": g, **_res_summary(r_, measure),
                           **(_as_reported(members[0]) if r_.k == 1 else {}),
                           "studies": ", ".join(st["label"] for st in members)})
        singles = sum(1 for r_ in sg.groups.values() if r_.k == 1)
        subgroups.append({
            "variable": var, "groups": groups, "q": fmt_num(sg.q_between, 2), "df": sg.q_between_df,
            "p": fmt_p(sg.q_between_pvalue), "labels": labels, "raw": sg,
            "note": (f"{singles} of {len(groups)} subgroups hold a single study: the test for subgroup "
                     "differences then mostly re-expresses between-study heterogeneity, and with this few "
                     "studies it has little power; subgroup findings are observational comparisons "
                     "across trials." if singles else
                     "Subgroup comparisons are across trials (observational), and with this few studies "
                     "the test has little power."),
        })

    # ---- sensitivity scenarios -------------------------------------------------------------
    scenarios = []

    def scenario(name: str, desc: str, ids: list[str], **kw):
        sel = [pooled_ids.index(r) for r in ids if r in pooled_ids]
        kk = len(sel)
        item = {"name": name, "description": desc, "k": kk, "rows": ids}
        if kk == 0:
            item.update(note="no studies left")
        elif kk == 1:
            j = sel[0]
            item.update(pi="–", tau2="–", i2="–", **_as_reported(studies[j]),
                        note=f"single study: {studies[j]['label']}")
        else:
            r_ = _pool(yi[sel], vi[sel], s, **kw)
            item.update(_res_summary(r_, measure), raw=r_)
        scenarios.append(item)

    if k >= 2:
        if "exclude-derived" in a.sensitivity:
            keep = [st["row_id"] for st in studies if "SE derived from p-value" not in st["flags"]]
            if len(keep) < k:
                scenario("Without derived SEs", "studies whose SE was derived from a p-value left out", keep)
        if "exclude-post-hoc" in a.sensitivity:
            keep = [st["row_id"] for st in studies
                    if "post hoc subgroup" not in st["flags"] and "observational" not in st["flags"]]
            if len(keep) < k:
                scenario("Without post hoc / observational", "post hoc subgroup and observational results left out", keep)
        if "exclude-unconfirmed" in a.sensitivity:
            keep = [st["row_id"] for st in studies if not any(f.startswith("status ") for f in st["flags"])]
            if len(keep) < k:
                scenario("Confirmed results only", "results with status unconfirmed left out", keep)
        if "common-effect" in a.sensitivity:
            scenario("Common-effect model", "inverse-variance common-effect (fixed-effect) model, z test",
                     list(pooled_ids), method="FE", test="z")
    for sw in a.swaps:
        if sw.replace not in pooled_ids:
            continue
        e = ctx.eff.get(sw.with_, {})
        y2, v2 = _opt_float(e.get("yi")), _opt_float(e.get("vi"))
        if y2 is None or v2 is None:
            continue
        yy, vv = yi.copy(), vi.copy()
        j = pooled_ids.index(sw.replace)
        yy[j], vv[j] = y2, v2
        item = {"name": "{} instead of {}".format(*ctx.report_labels(sw.with_, sw.replace)),
                "description": sw.reason, "k": k, "rows": [sw.with_ if r == sw.replace else r for r in pooled_ids]}
        if k >= 2:
            r_ = _pool(yy, vv, s)
            item.update(_res_summary(r_, measure), raw=r_)
        else:
            e_, c_ = _est_ci_text(measure, y2, y2 - z * math.sqrt(v2), y2 + z * math.sqrt(v2))
            item.update(estimate=e_, ci=c_, pi="–", tau2="–", i2="–", p="–", note="single study")
        scenarios.append(item)

    # ---- provenance, left out, missing ---------------------------------------------------
    def prov(rid: str) -> dict:
        r = ctx.row(rid)
        pmid, doi = _s(r.get("pmid")), _s(r.get("doi"))
        return {
            "row_id": rid, "label": ctx.label(rid), "authors": _s(r.get("authors")),
            "trial_name": _s(r.get("trial_name")),
            "journal": _s(r.get("journal")), "year": _opt_int(r.get("year")) or "",
            "pmid": pmid, "pmid_url": f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else "",
            "doi": doi, "doi_url": f"https://doi.org/{doi}" if doi else "",
            "nct": _s(r.get("nct_id")), "source_location": _s(r.get("source_location")),
            "status": _s(r.get("status")), "rob": _s(r.get("rob_overall")), "report": _s(r.get("report")),
            "analysis_population": _s(r.get("analysis_population")), "notes": _s(r.get("notes")),
            "population": _s(r.get("population")), "intervention": _s(r.get("intervention")),
            "dose": _s(r.get("dose")), "comparator": _s(r.get("comparator")),
            "endpoint_detail": _s(r.get("endpoint_detail")), "line": int(r.get("source_line") or 0),
            "included_reason": inc_reason.get(rid, ""),
        }

    provenance = [prov(r) for r in pooled_ids + [n["row_id"] for n in not_poolable]]
    left_out = [{"row_id": c.row_id, "label": ctx.label(c.row_id), "reason": c.reason,
                 "explicit": c.explicit, "status": _s(ctx.row(c.row_id).get("status"))} for c in a.left_out]
    missing = [prov(r) for r in missing_ids]

    # ---- forest ----------------------------------------------------------------------------
    forest_spec = None
    if k >= 1:
        from ..plots import ForestRow, ForestSpec, SubgroupBlock, SubgroupTest

        def frow(st):
            r = ctx.row(st["row_id"])
            lo_r, hi_r = _opt_float(r.get("ci_lower")), _opt_float(r.get("ci_upper"))
            ci = None
            if lo_r is not None and hi_r is not None and _opt_float(r.get("ci_level")) == 100 * s.level:
                ci = (math.log(lo_r), math.log(hi_r)) if measure in RATIO else (lo_r, hi_r)
            return ForestRow(label=st["label"], yi=st["yi"], vi=st["vi"], ci=ci,
                             weight=st["weight"] if res is not None else None,
                             cells=(st["tumour"], st["design"]), marks=st["marks"],
                             pooled=res is not None)

        rows = tuple(frow(st) for st in studies)
        marks_used = sorted({c for st in studies for c in st["marks"]}, key="†‡§".index)
        foot = [FOOTNOTE_MARKS[c] for c in marks_used]
        fav = (f"Favours {a.favours[0]}", f"Favours {a.favours[1]}")
        sg0 = next((g for g in subgroups if g["raw"] is not None), None)
        if sg0 is not None and res is not None:
            cols = ("Tumour type", "Design")
            drop = {"tumour_type": 0, "design": 1}.get(sg0["variable"])
            if drop is not None:  # the subgroup headers already name it
                cols = cols[:drop] + cols[drop + 1:]
                rows = tuple(replace(rw, cells=rw.cells[:drop] + rw.cells[drop + 1:]) for rw in rows)
            blocks = tuple(
                SubgroupBlock(g, tuple(rw for rw, l_ in zip(rows, sg0["labels"]) if l_ == g), r_)
                for g, r_ in sg0["raw"].groups.items())
            sgr = sg0["raw"]
            forest_spec = ForestSpec(measure=measure, columns=cols, result=res,
                                     subgroups=blocks, favours=fav, level=s.level, footnotes=tuple(foot),
                                     subgroup_test=SubgroupTest(sgr.q_between, sgr.q_between_df,
                                                                sgr.q_between_pvalue),
                                     label_header=f"Study (by {sg0['variable'].replace('_', ' ')})")
        else:
            forest_spec = ForestSpec(measure=measure, rows=rows, columns=("Tumour type", "Design"),
                                     result=res, favours=fav, level=s.level, footnotes=tuple(foot))

    from ..methods import citations, describe

    methods_text = describe(s.method, s.test, s.pi, s.level) if k >= 2 else ""
    cites = [{"name": c.name, "citation": c.citation, "doi": c.doi,
              "doi_url": f"https://doi.org/{c.doi}" if c.doi else ""}
             for c in citations(s.method, s.test, s.pi)] if k >= 2 else []

    return {
        "id": a.id, "title": a.title, "endpoint": a.endpoint, "measure": measure,
        "description": a.description, "settings": s, "level_txt": lv, "k": k,
        "k_selected": len(a.rows), "studies": studies, "not_poolable": not_poolable,
        "result": res, "main": main, "warnings": warnings, "panel": panel, "loo": loo, "cum": cum,
        "subgroups": subgroups, "scenarios": scenarios, "provenance": provenance,
        "left_out": left_out, "missing": missing, "forest_spec": forest_spec,
        "funnel_note": (f"No funnel plot: k = {k} < {FUNNEL_MIN_K} studies. Funnel plots and tests for "
                        "funnel-plot asymmetry need at least 10 studies to distinguish chance from "
                        "small-study effects (Sterne et al. 2011, BMJ 343:d4002; Cochrane Handbook 13.3.5.4)."
                        if k < FUNNEL_MIN_K else ""),
        "methods_text": methods_text, "citations": cites,
        "metafor_call": res.metafor_call if res is not None else "",
        "sensitivity": a.sensitivity, "favours": a.favours, "subgroup_vars": a.subgroup,
        "swaps": a.swaps, "select": a.select,
    }


def _narrative_model(ctx: _Ctx, n) -> dict:
    from .._dist import combine_pvalues  # noqa: F811
    from ..effects import parse_p_value

    rows = []
    base_labels = [ctx.label(rid) for rid in n.rows]

    def nlabel(rid: str) -> str:
        # several results of one study: say which cohort / subgroup each is
        lab = ctx.label(rid)
        if base_labels.count(lab) > 1 or any(ctx.label(c) == lab for c2 in n.combine for c in c2.rows if c != rid):
            extra = _s(ctx.row(rid).get("tumour_type"))
            ep = _s(ctx.row(rid).get("endpoint"))
            return f"{lab}: {ep}, {extra}" if extra else f"{lab}: {ep}"
        return lab

    for rid in n.rows:
        r, e = ctx.row(rid), ctx.eff.get(rid, {})
        m = _s(r.get("measure"))
        est = _opt_float(r.get("estimate"))
        lo, hi = _opt_float(r.get("ci_lower")), _opt_float(r.get("ci_upper"))
        pmid, doi = _s(r.get("pmid")), _s(r.get("doi"))
        if m == "PROP" and est is not None:
            est_txt = f"{fmt_num(100 * est, 0)}%"
            ci_txt = fmt_ci(100 * lo, 100 * hi, 0) + " %" if lo is not None and hi is not None else "–"
        else:
            est_txt = fmt_num(est) if est is not None else "–"
            ci_txt = fmt_ci(lo, hi) if lo is not None and hi is not None else "–"
        ev, nn = _opt_int(r.get("events_int")), _opt_int(r.get("n_int"))
        rows.append({
            "row_id": rid, "label": nlabel(rid), "endpoint": _s(r.get("endpoint")),
            "trial_name": _s(r.get("trial_name")), "population": _s(r.get("population")),
            "endpoint_detail": _s(r.get("endpoint_detail")), "measure": m, "estimate": est_txt,
            "ci": ci_txt, "p": _s(r.get("p_value")) or "–", "design": _s(r.get("design")),
            "tumour": _s(r.get("tumour_type")), "status": _s(r.get("status")),
            "rob": _s(r.get("rob_overall")), "n": (f"{ev}/{nn}" if ev is not None and nn is not None
                                                   else (str(nn) if nn is not None else "–")),
            "why": _s(e.get("reason")) or "not pooled by the plan",
            "authors": _s(r.get("authors")), "journal": _s(r.get("journal")),
            "year": _opt_int(r.get("year")) or "", "pmid": pmid,
            "pmid_url": f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else "",
            "doi": doi, "doi_url": f"https://doi.org/{doi}" if doi else "",
            "source_location": _s(r.get("source_location")), "notes": _s(r.get("notes")),
            "line": int(r.get("source_line") or 0),
        })
    combos = []
    for c in n.combine:
        ps, bounds, items = [], [], []
        for rid in c.rows:
            r = ctx.row(rid)
            pv = parse_p_value(_s(r.get("p_value")))
            sided = _opt_int(r.get("p_sided")) or 2
            p1 = pv.value / 2 if sided == 2 else pv.value   # one-sided, in the stated direction
            ps.append(p1)
            bounds.append(pv.relation in ("<", "<="))
            items.append({"label": nlabel(rid), "row_id": rid, "p": _s(r.get("p_value")),
                          "sided": sided, "p_one": fmt_p(p1, 0.0001) if p1 >= 0.0001 else f"{p1:.1e}"})
        fisher = combine_pvalues(ps, method="fisher")
        stouffer = combine_pvalues(ps, method="stouffer")
        bound = any(bounds)

        def ptxt(p):
            t = fmt_p(p, 0.0001) if p >= 0.0001 else f"{p:.1e}"
            return ("≤ " + t) if bound else t

        combos.append({
            "label": c.label, "direction": c.direction, "independent": c.independent, "note": c.note,
            "items": items, "k": len(ps), "bound": bound,
            "fisher_stat": fmt_num(fisher[0], 2), "fisher_df": 2 * len(ps),
            "fisher_p": ptxt(fisher[1]), "fisher_p_raw": fisher[1],
            "stouffer_z": fmt_num(stouffer[0], 2), "stouffer_p": ptxt(stouffer[1]),
            "stouffer_p_raw": stouffer[1],
        })
    return {"id": n.id, "title": n.title, "reason": n.reason, "text": n.text, "rows": rows,
            "combos": combos}


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------

def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(enabled_extensions=("html", "j2", "html.j2"),
                                                   default_for_string=True, default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    return env


def _plot_jobs(n_tasks: int, jobs: int | None = None) -> int:
    """Worker processes for plot rendering (the slow part of a build): ``jobs`` if given, else
    up to min(CPUs, 4); 1 where forking is unsafe (see :func:`metaanalysis.runtime.fork_workers`)."""
    return fork_workers(n_tasks, jobs)


def _plot_input(model: dict) -> dict:
    return {k: model[k] for k in ("id", "title", "forest_spec", "k", "result", "measure")}


def _render_plots_all(models: list[dict], jobs: int | None = None) -> list[dict]:
    """SVG markup of every analysis's plots; the same bytes serially or in forked workers."""
    inputs = [_plot_input(m) for m in models]
    return run_forked(_render_plots, inputs, _plot_jobs(len(inputs), jobs))


def _render_plots(model: dict) -> dict:
    from ..plots import layout_forest, render_forest

    out = {"forest_svg": "", "funnel_svg": ""}
    spec = model["forest_spec"]
    if spec is not None:
        svg = render_forest(layout_forest(spec), format="svg")
        out["forest_svg"] = _inline_svg(svg, f"forest-{model['id']}", f"Forest plot: {model['title']}")
    if model["k"] >= FUNNEL_MIN_K and model["result"] is not None:
        from ..plots import FunnelSpec, layout_funnel, render_funnel

        res = model["result"]
        fs = FunnelSpec(yi=res.yi, vi=res.vi, measure=model["measure"], result=res, level=res.level)
        svg = render_funnel(layout_funnel(fs), format="svg")
        out["funnel_svg"] = _inline_svg(svg, f"funnel-{model['id']}", f"Funnel plot: {model['title']}")
    return out


def _analysis_json(model: dict, registry, plan) -> dict:
    res = model["result"]

    def rd(r):
        return r.to_dict() if r is not None else None

    return _jsonable({
        "id": model["id"], "title": model["title"], "endpoint": model["endpoint"],
        "measure": model["measure"], "scale": "log" if model["measure"] in RATIO else "identity",
        "settings": {"method": model["settings"].method, "test": model["settings"].test,
                     "pi": model["settings"].pi, "level": model["settings"].level},
        "k": model["k"], "single_study": model["k"] == 1,
        "result": rd(res),
        "studies": [{"row_id": st["row_id"], "label": st["label"], "yi": st["yi"], "vi": st["vi"],
                     "weight": st["weight"], "flags": st["flags"], "se_source": st["se_source"]}
                    for st in model["studies"]],
        "not_poolable": model["not_poolable"],
        "warnings": [w["text"] for w in model["warnings"]],
        "warning_codes": [w["code"] for w in model["warnings"]],
        "estimator_panel": [{"method": p["method"], **{t: rd(p[t + "_raw"]) for t in PANEL_TESTS}}
                            for p in model["panel"]],
        "leave_one_out": [{"omitted": x["omitted"], "result": rd(x["raw"])} for x in model["loo"]],
        "cumulative": [{"added": x["added"], "year": x["year"], "result": rd(x["raw"])} for x in model["cum"]],
        "subgroups": [{"variable": g["variable"], "note": g["note"],
                       "groups": ({k_: rd(v) for k_, v in g["raw"].groups.items()} if g["raw"] else {}),
                       "q_between": g["raw"].q_between if g["raw"] else None,
                       "q_between_df": g["raw"].q_between_df if g["raw"] else None,
                       "q_between_pvalue": g["raw"].q_between_pvalue if g["raw"] else None}
                      for g in model["subgroups"]],
        "sensitivity": [{"name": x["name"], "description": x["description"], "k": x["k"], "rows": x["rows"],
                         "result": rd(x.get("raw")), "note": x.get("note", "")} for x in model["scenarios"]],
        "left_out": model["left_out"],
        "missing_evidence": [m["row_id"] for m in model["missing"]],
        "registry_sha256": registry.sha256, "plan_sha256": plan.sha256,
    })


_CSV_FIELDS = ("analysis_id", "title", "endpoint", "measure", "k", "method", "test", "pi", "level",
               "estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "pvalue", "yi", "se",
               "tau2", "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper", "q", "q_df",
               "q_pvalue", "single_study", "rows", "warnings")


def _csv_row(model: dict) -> list:
    res, m, s = model["result"], model["measure"], model["settings"]
    row: dict[str, Any] = {"analysis_id": model["id"], "title": model["title"], "endpoint": model["endpoint"],
                           "measure": m, "k": model["k"], "method": s.method, "test": s.test, "pi": s.pi,
                           "level": s.level, "single_study": model["k"] == 1,
                           "rows": ";".join(st["row_id"] for st in model["studies"]),
                           "warnings": " | ".join(w["text"] for w in model["warnings"])}
    if res is not None:
        row.update(estimate=_nat(m, res.estimate), ci_lower=_nat(m, res.ci_lower),
                   ci_upper=_nat(m, res.ci_upper), pi_lower=_nat(m, res.pi_lower),
                   pi_upper=_nat(m, res.pi_upper), pvalue=res.pvalue, yi=res.estimate, se=res.se,
                   tau2=res.tau2, tau2_ci_lower=res.tau2_ci_lower, tau2_ci_upper=res.tau2_ci_upper,
                   i2=res.i2, i2_ci_lower=res.i2_ci_lower, i2_ci_upper=res.i2_ci_upper, q=res.q,
                   q_df=res.q_df, q_pvalue=res.q_pvalue)
    elif model["k"] == 1:
        st = model["studies"][0]
        row.update(estimate=_nat(m, st["yi"]), yi=st["yi"], se=st["se"])
    return [neutralise_cell(row.get(f)) for f in _CSV_FIELDS]


def _render_all(registry, plan, jobs: int | None = None) -> tuple[dict[str, bytes], list[str]]:
    """Every output file as bytes (nothing written yet) and the warning list."""
    from ..registry import effects_table

    ctx = _Ctx(registry, effects_table(registry))
    env = _env()
    css = STYLE.read_text(encoding="utf-8")
    from markupsafe import Markup

    common = {
        "css": Markup(css), "plan_title": plan.title, "plan_description": plan.description,
        "registry_sha256": registry.sha256, "plan_sha256": plan.sha256,
        "registry_path": Path(registry.path).name, "plan_path": Path(plan.path).name,
        "versions": _versions(), "build_date": _build_date(), "defaults": plan.defaults,
        "fmt_num": fmt_num, "fmt_p": fmt_p, "pct": pct,
        "nav": [(a.id, a.title) for a in plan.analyses] + [(n.id, n.title) for n in plan.narratives],
    }
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    panels = _estimator_panels(ctx, plan.analyses)
    models = [_analysis_model(ctx, a, plan, registry, panels) for a in plan.analyses]
    for model, svgs in zip(models, _render_plots_all(models, jobs)):
        model.update(svgs)
    for a, model in zip(plan.analyses, models):
        warnings += [f"{a.id}: {w['text']}" for w in model["warnings"]]
        html = env.get_template("analysis.html.j2").render(**common, a=model, page_id=a.id)
        files[f"{a.id}.html"] = html.encode("utf-8")
        files[f"{a.id}.json"] = (json.dumps(_analysis_json(model, registry, plan), sort_keys=True,
                                            indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    narratives = []
    for n in plan.narratives:
        nm = _narrative_model(ctx, n)
        narratives.append(nm)
        html = env.get_template("narrative.html.j2").render(**common, n=nm, page_id=n.id)
        files[f"{n.id}.html"] = html.encode("utf-8")
        njson = {k_: v for k_, v in nm.items()}
        files[f"{n.id}.json"] = (json.dumps(_jsonable({**njson, "registry_sha256": registry.sha256,
                                                       "plan_sha256": plan.sha256}),
                                            sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
                                 + "\n").encode("utf-8")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_FIELDS)
    for m in models:
        w.writerow(_csv_row(m))
    files["results.csv"] = buf.getvalue().encode("utf-8")
    reg_warnings = [p for p in list(registry.problems) + list(plan.problems)]
    html = env.get_template("index.html.j2").render(**common, analyses=models, narratives=narratives,
                                                    input_problems=[p.format() for p in reg_warnings],
                                                    page_id="index")
    files["index.html"] = html.encode("utf-8")
    return files, warnings


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------

def build_reports(registry_path: str | os.PathLike, plan_path: str | os.PathLike,
                  out_dir: str | os.PathLike, *, jobs: int | None = None) -> BuildSummary:
    """Build ``index.html``, one HTML + JSON page per analysis and narrative, and ``results.csv``.

    Parameters
    ----------
    registry_path : path of the registry CSV (``trials/registry.csv``)
    plan_path : path of the analysis plan TOML (``trials/analyses.toml``)
    out_dir : directory to (re)create; ``README.md`` already in it is kept
    jobs : worker processes for the plots (>= 1; 1 renders in this process); None chooses
        up to min(CPUs, 4). Forked workers are used only where forking is safe, and the
        outputs are the same bytes whatever the number.

    Returns
    -------
    BuildSummary

    Raises
    ------
    ProblemError
        Bad registry or plan; nothing is written.
    ValueError
        ``jobs`` < 1.
    """
    from ..plan import load_plan
    from ..registry import load_registry

    check_out_dir(Path(out_dir))  # refuse a foreign --out before any work
    registry = load_registry(registry_path)
    plan = load_plan(plan_path, registry)
    files, warnings = _render_all(registry, plan, jobs)
    write_tree_atomic(files, Path(out_dir))
    return BuildSummary(
        out_dir=str(out_dir), analyses=tuple(a.id for a in plan.analyses),
        narratives=tuple(n.id for n in plan.narratives), files=tuple(sorted(files)),
        warnings=tuple(warnings), problems=tuple(registry.problems) + tuple(plan.problems),
        registry_sha256=registry.sha256, plan_sha256=plan.sha256,
    )


def cli_report(args) -> int:
    """``metaanalysis report --registry R --plan P --out DIR``: 0 built, 1 data problems.

    Input warnings are printed like ``validate`` prints them; a one-line summary goes to stdout.
    ``ProblemError`` propagates to :func:`metaanalysis.cli.main`, which prints it and exits 1.
    """
    import sys

    summary = build_reports(args.registry, args.plan, args.out)
    for p in summary.problems:
        print(p.format(), file=sys.stderr)
    print(f"{args.out}: {len(summary.analyses)} analyses, {len(summary.narratives)} narrative sections, "
          f"{len(summary.files)} files, {len(summary.warnings)} report warnings")
    return 0
