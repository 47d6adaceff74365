"""The view model: the analysis result tree as the text the templates print.

:func:`analysis_view` and :func:`narrative_view` turn one :class:`~metaanalysis.analysis.AnalysisResult`
or :class:`~metaanalysis.analysis.NarrativeResult` into plain dicts of strings (and the typed
results the plots need). Templates only place these strings; they decide nothing.
"""

from __future__ import annotations

from typing import Any

from .. import vocab
from .._dist import z_crit
from ..analysis import AnalysisResult, CombinationResult, NarrativeResult, StudyEffect, headline_interval
from ..results import MetaResult
from . import words
from .format import fmt_ci, fmt_num, fmt_p, fmt_p_eq, pct
from .labels import RowText, short_design

_SE_SOURCE_TEXT = {"ci": "CI", "p": "p-value", "2x2": "2×2 counts"}


def natural(measure: str, x: float | None) -> float | None:
    return vocab.to_natural(measure, x)


def result_cells(res: MetaResult, measure: str) -> dict[str, Any]:
    """Preformatted numbers of one MetaResult for a table row."""
    one = res.k == 1   # nothing to say about heterogeneity or prediction with one study
    pi = (words.natural_ci(measure, res.pi_lower, res.pi_upper)
          if res.pi_lower is not None and res.pi_upper is not None else "–")
    return {
        "k": res.k, "estimate": fmt_num(natural(measure, res.estimate)),
        "ci": words.natural_ci(measure, res.ci_lower, res.ci_upper), "pi": "–" if one else pi,
        "p": fmt_p(res.pvalue), "tau2": "–" if one else fmt_num(res.tau2, 4),
        "i2": "–" if one else fmt_num(res.i2, 1), "method": res.method, "test": res.test,
        "se": fmt_num(res.se, 4),
    }


def study_view(st: StudyEffect, a: AnalysisResult, rows: RowText) -> dict[str, Any]:
    """One row of the Studies table: what the study reported, and how its SE was obtained."""
    rid, measure, level = st.row_id, a.measure, a.settings.level
    lo, hi = rows.number(rid, "ci_lower"), rows.number(rid, "ci_upper")
    if lo is not None and hi is not None:
        ci, ci_level = fmt_ci(lo, hi), rows.number(rid, "ci_level")
        ci_note = "" if ci_level in (None, 100 * level) else f"{fmt_num(ci_level, 0)}% CI as reported"
    else:
        z = z_crit(level)
        ci, ci_note = words.natural_ci(measure, st.yi - z * st.se, st.yi + z * st.se), "derived"
    n_i, n_c = rows.integer(rid, "n_int"), rows.integer(rid, "n_ctl")
    e_i, e_c = rows.integer(rid, "events_int"), rows.integer(rid, "events_ctl")
    fu = rows.number(rid, "followup_months")
    est = rows.number(rid, "estimate")
    flags = [words.study_flag_text(f, rows, rid, st.se_source) for f in st.flags]
    return {
        "row_id": rid, "label": rows.label(rid), "marks": words.marks(st.flags),
        "yi": st.yi, "vi": st.vi, "se": st.se, "weight": st.weight,
        "weight_txt": f"{fmt_num(st.weight, 1)}%" if st.weight is not None else "–",
        "estimate": fmt_num(est if est is not None else natural(measure, st.yi)),
        "ci": ci, "ci_note": ci_note, "ci_reported": (lo, hi, rows.number(rid, "ci_level")),
        "p": rows.get(rid, "p_value") or "–",
        "n": f"{n_i if n_i is not None else '–'} / {n_c if n_c is not None else '–'}",
        "events": f"{e_i} / {e_c}" if e_i is not None and e_c is not None else "–",
        "followup": f"{fmt_num(fu, 0)} mo" if fu is not None else "–",
        "design": short_design(rows.get(rid, "design")), "tumour": rows.get(rid, "tumour_type"),
        "setting": rows.get(rid, "setting"), "comparator": rows.get(rid, "comparator"),
        "year": st.year, "flags": flags, "se_source": st.se_source,
        "se_source_txt": _SE_SOURCE_TEXT.get(st.se_source, st.se_source),
        "included_reason": st.included_reason,
    }


def as_reported(st: dict) -> dict[str, str]:
    """Estimate, CI and p of a one-study row as in the Studies table (reported, not refitted).

    A k = 1 "pooled" result recomputes the CI from the SE (ABCSG-18 OS: reported 0.64-1.01,
    refitted 0.64-1.00); a table row holding one study shows what the study reported.
    """
    return {"estimate": st["estimate"], "ci": st["ci"] + (f" ({st['ci_note']})" if st["ci_note"] else ""),
            "p": st["p"]}


def main_view(a: AnalysisResult, studies: list[dict]) -> dict[str, Any] | None:
    """The key result: the headline model, the single study as reported, or the studies side by side."""
    res, m = a.headline_result, a.measure
    if a.headline is vocab.Headline.BAYES:
        return bayes_main_view(a)
    if res is None:
        if a.k == 1:
            return {"k": 1, **as_reported(studies[0]), "pi": "–", "single": True}
        if a.k >= 2:
            return {"k": a.k, "none": True, "estimate": "–", "ci": "–", "pi": "–", "p": "–",
                    "side_by_side": [{"label": st["label"], **as_reported(st)} for st in studies]}
        return None
    return {
        **result_cells(res, m),
        "z": fmt_num(res.stat, 2), "df": fmt_num(res.df, 0) if res.df is not None else "–",
        "p_eq": fmt_p_eq(res.pvalue), "stat_name": "t" if res.df is not None else "z",
        "model": words.headline_model(a).replace("-", " "),
    }


def _bayes_cells(b, measure: str) -> dict[str, Any]:
    null = vocab.measure(measure).null
    p_null = b.prob_below(0.0 if vocab.measure(measure).log_scale else null) if null is not None else None
    return {
        "prior": words.prior_words(b), "estimate": fmt_num(natural(measure, b.mu_median)),
        "ci": words.natural_ci(measure, b.mu_ci_lower, b.mu_ci_upper),
        "hpd": words.natural_ci(measure, b.mu_hpd_lower, b.mu_hpd_upper),
        "pi": words.natural_ci(measure, b.pred_lower, b.pred_upper),
        "tau": fmt_num(b.tau_median, 3), "tau_ci": fmt_ci(b.tau_ci_lower, b.tau_ci_upper, 3),
        "p_below": "–" if p_null is None else fmt_num(100 * float(p_null), 1),
    }


def bayes_main_view(a: AnalysisResult) -> dict[str, Any]:
    """The key result when the page leads with the Bayesian posterior (median, central interval)."""
    return {"k": a.k, "bayes": True, **_bayes_cells(a.bayes, a.measure), "p": "–",
            "model": words.headline_model(a)}


def bayes_view(a: AnalysisResult) -> dict[str, Any] | None:
    """The Bayesian section: the analysis's prior first, then the prior-sensitivity rows."""
    if a.bayes is None:
        return None
    m = vocab.measure(a.measure)
    return {"rows": [{**_bayes_cells(b, a.measure), "main": i == 0}
                     for i, b in enumerate((a.bayes,) + tuple(a.bayes_sensitivity))],
            "null": fmt_num(m.null, 0), "leads": a.headline is vocab.Headline.BAYES}


def heterogeneity_view(res: MetaResult | None) -> dict[str, Any] | None:
    """τ², τ, I², H² with Q-profile CIs and Cochran's Q of the plan's model (descriptive, whatever leads)."""
    if res is None:
        return None
    return {
        "tau2": fmt_num(res.tau2, 4), "tau2_ci": fmt_ci(res.tau2_ci_lower, res.tau2_ci_upper, 4),
        "tau": fmt_num(res.tau, 4), "tau_ci": fmt_ci(res.tau_ci_lower, res.tau_ci_upper, 4),
        "i2": fmt_num(res.i2, 1), "i2_ci": fmt_ci(res.i2_ci_lower, res.i2_ci_upper, 1),
        "h2": fmt_num(res.h2, 2), "h2_ci": fmt_ci(res.h2_ci_lower, res.h2_ci_upper, 2),
        "q": fmt_num(res.q, 2), "q_df": res.q_df, "q_p": fmt_p(res.q_pvalue),
    }


def coverage_view(a: AnalysisResult) -> dict[str, Any] | None:
    """The coverage table: one row per interval method, one column per simulated τ²."""
    table = a.coverage
    if table is None:
        return None
    zero_is_estimate = a.result.tau2 == 0.0
    cols = [{"label": words.GRID_LABELS[role] + (" (the estimate)" if role is vocab.GridRole.ZERO
                                                 and zero_is_estimate else ""),
             "value": fmt_num(t2, 4)} for role, t2 in a.coverage_grid]
    lead = headline_interval(a)
    rows = [{"name": words.INTERVAL_NAMES.get(code, code), "lead": code == lead,
             "cells": [f"{fmt_num(100 * table.get(code, t2).coverage, 1)}"
                       f" ({fmt_num(100 * table.get(code, t2).mcse, 1)})" for _, t2 in a.coverage_grid]}
            for code in table.intervals]
    target = "" if table.mcse_target is None else fmt_num(100 * table.mcse_target, 1)
    return {"columns": cols, "rows": rows, "n_sim": f"{table.n_sim:,}", "k": table.k,
            "n_range": words.replicate_range(table), "mcse_target": target,
            "summary": words.coverage_summary(a), "bayes_note": words.coverage_bayes_note(a),
            "method": table.method, "seed": table.seed, "control_variates": table.control_variates}


def panel_view(a: AnalysisResult) -> list[dict[str, Any]]:
    out = []
    for row in a.panel:
        item: dict[str, Any] = {"method": row.method, "main": row.method == a.settings.method}
        for t, r in row.results.items():
            item[t] = result_cells(r, a.measure)
            item["tau2"], item["i2"] = fmt_num(r.tau2, 4), fmt_num(r.i2, 1)
        out.append(item)
    return out


def sequence_views(a: AnalysisResult, rows: RowText, studies: list[dict]) -> tuple[list, list]:
    """Leave-one-out and cumulative rows (a one-study step shows the study as reported)."""
    by_id = {st["row_id"]: st for st in studies}
    loo = [{"omitted": rows.label(x.omitted), **result_cells(x.result, a.measure)} for x in a.leave_one_out]
    cum = [{"added": rows.label(x.added), "year": x.year, **result_cells(x.result, a.measure),
            **(as_reported(by_id[x.added]) if x.result.k == 1 else {})} for x in a.cumulative]
    return loo, cum


def subgroup_views(a: AnalysisResult, rows: RowText, studies: list[dict]) -> list[dict[str, Any]]:
    out = []
    for sg in a.subgroups:
        if sg.result is None:
            out.append({"variable": sg.variable, "groups": [], "note": words.subgroup_note(sg.variable, 0, 0, False)})
            continue
        groups = []
        for name, r in sg.result.groups.items():
            members = [st for st, lab in zip(studies, sg.labels) if lab == name]
            groups.append({"name": name, **result_cells(r, a.measure),
                           **(as_reported(members[0]) if r.k == 1 else {}),
                           "studies": ", ".join(st["label"] for st in members)})
        out.append({"variable": sg.variable, "groups": groups, "q": fmt_num(sg.result.q_between, 2),
                    "df": sg.result.q_between_df, "p": fmt_p(sg.result.q_between_pvalue),
                    "note": words.subgroup_note(sg.variable, len(groups), sg.single_study_groups, True)})
    return out


def scenario_views(a: AnalysisResult, rows: RowText, studies: list[dict], effects) -> list[dict[str, Any]]:
    by_id = {st["row_id"]: st for st in studies}
    out = []
    for sc in a.scenarios:
        name, desc = words.scenario_name(sc, rows, a.settings)
        item: dict[str, Any] = {"name": name, "description": desc, "k": sc.k}
        if sc.result is not None:
            item.update(result_cells(sc.result, a.measure))
        elif sc.k == 1 and sc.rows[0] in by_id:
            st = by_id[sc.rows[0]]
            item.update(pi="–", tau2="–", i2="–", **as_reported(st), note=f"single study: {st['label']}")
        elif sc.k == 1:  # a one-study swap: the swapped-in report's own estimate and CI
            e, z = effects[sc.rows[0]], z_crit(a.settings.level)
            se = e.vi ** 0.5
            item.update(estimate=fmt_num(natural(a.measure, e.yi)),
                        ci=words.natural_ci(a.measure, e.yi - z * se, e.yi + z * se),
                        pi="–", tau2="–", i2="–", p="–", note="single study")
        else:
            item.update(note="no studies left")
        out.append(item)
    return out


def provenance_view(rows: RowText, rid: str, included_reason: str = "") -> dict[str, Any]:
    return {
        **rows.publication(rid), "label": rows.label(rid), "nct": rows.get(rid, "nct_id"),
        "report": rows.get(rid, "report"), "analysis_population": rows.get(rid, "analysis_population"),
        "intervention": rows.get(rid, "intervention"), "dose": rows.get(rid, "dose"),
        "comparator": rows.get(rid, "comparator"), "endpoint_detail": rows.get(rid, "endpoint_detail"),
        "included_reason": included_reason,
    }


def analysis_view(a: AnalysisResult, rows: RowText, effects) -> dict[str, Any]:
    """Everything one analysis page prints, as text."""
    plan_a, s = a.analysis, a.settings
    studies = [study_view(st, a, rows) for st in a.studies]
    inc = {c.row_id: c.reason for c in plan_a.included}
    loo, cum = sequence_views(a, rows, studies)
    warnings = [{"code": c.flag.value, "short": words.FLAG_LABELS[c.flag], "text": words.caveat_text(c, a, rows),
                 "level": c.severity} for c in a.caveats]
    pooled = a.k >= 2
    return {
        "id": a.id, "title": plan_a.title, "endpoint": plan_a.endpoint, "measure": a.measure,
        "measure_name": vocab.measure(a.measure).name, "log_scale": vocab.measure(a.measure).log_scale,
        "description": plan_a.description, "settings": s, "level_txt": pct(s.level), "k": a.k,
        "test_short": vocab.TESTS[s.test].label, "k_selected": len(plan_a.rows), "studies": studies,
        "headline": a.headline.value, "headline_why": words.headline_why(a),
        "overview_model": words.overview_model(a), "k_text": words.k_text(a),
        "no_missing_text": words.no_missing_text(a, rows),
        "not_poolable": [{"row_id": e.row_id, "label": rows.label(e.row_id),
                          "reason": e.reason or "no usable effect and SE"} for e in a.not_pooled],
        "result": a.result, "main": main_view(a, studies), "het": heterogeneity_view(a.result),
        "coverage": coverage_view(a), "coverage_off": words.coverage_off_text(a), "bayes": bayes_view(a),
        "warnings": warnings,
        "panel": panel_view(a), "loo": loo, "cum": cum,
        "subgroups": subgroup_views(a, rows, studies), "scenarios": scenario_views(a, rows, studies, effects),
        "provenance": [provenance_view(rows, r, inc.get(r, "")) for r in
                       [st.row_id for st in a.studies] + [e.row_id for e in a.not_pooled]],
        "left_out": [{"row_id": c.row_id, "label": rows.label(c.row_id), "reason": c.reason,
                      "explicit": c.explicit, "status": rows.get(c.row_id, "status")} for c in plan_a.left_out],
        "missing": [provenance_view(rows, r) for r in plan_a.missing],
        "forest_caption": words.forest_caption(a),
        "panel_tests": [{"code": t, "header": words.PANEL_HEADERS[t]} for t in vocab.PANEL_TESTS],
        "panel_note": words.panel_note(),
        "rationale": words.settings_rationale(s.method, s.test, s.pi),
        "se_text": words.binary_se_text(s.method) if a.binary is not None else words.se_text(a.measure),
        "binary_tests": words.binary_tests_text(a), "binary": a.binary is not None,
        "funnel_note": words.funnel_note(a.k),
        "methods_text": words.analysis_methods_text(a) if pooled else "",
        "citations": [{"name": c.name, "citation": c.citation, "doi": c.doi,
                       "doi_url": f"https://doi.org/{c.doi}" if c.doi else ""}
                      for c in words.analysis_citations(a)] if pooled else [],
        "metafor_call": a.result.metafor_call if a.result is not None else "",
        "favours": plan_a.favours,
        "exploratory": plan_a.exploratory, "exploratory_reason": plan_a.exploratory_reason,
        "published": published_view(a, rows),
    }


def published_view(a: AnalysisResult, rows: RowText) -> list[dict[str, Any]]:
    """Published syntheses beside our result (never pooled): their numbers as the registry
    holds them, ours, and the computed difference with why the two can differ."""
    out = []
    for pc in a.published:
        rid, m = pc.row_id, a.measure
        ours = a.headline_result
        out.append({
            "row_id": rid, "label": rows.label(rid), "journal": rows.get(rid, "journal"),
            "source_location": rows.get(rid, "source_location"), "status": rows.get(rid, "status"),
            "theirs": f"{m} {fmt_num(rows.number(rid, 'estimate'))}"
                      + (f" ({pct(pc.ci_level)} CI {fmt_ci(rows.number(rid, 'ci_lower'), rows.number(rid, 'ci_upper'))})"
                         if pc.ci_level is not None else ""),
            "ours": "–" if ours is None else
                    f"{m} {fmt_num(natural(m, ours.estimate))} ({pct(ours.level)} CI "
                    f"{fmt_ci(natural(m, ours.ci_lower), natural(m, ours.ci_upper))})",
            "ours_model": words.overview_model(a),
            "difference": words.published_difference_text(pc, m),
            "trials": words.published_trials_text(pc, rows),
            "model": words.published_model_text(pc, a, rows),
        })
    return out


def _p_small(p: float) -> str:
    return fmt_p(p, 0.0001) if p >= 0.0001 else f"{p:.1e}"


def combination_view(c: CombinationResult, label_of, p_text) -> dict[str, Any]:
    """One p-value combination: the inputs as reported and used, and both combined p-values."""
    comb = c.combination

    def combined(p: float) -> str:
        return ("≤ " if c.upper_bound else "") + _p_small(p)

    items = [{"label": label_of(rid), "row_id": rid, "p": p_text(rid), "sided": sided, "p_one": _p_small(p1)}
             for rid, sided, p1 in zip(comb.rows, c.sided, c.p_one_sided)]
    return {
        "label": comb.label, "direction": comb.direction, "independent": comb.independent, "note": comb.note,
        "items": items, "k": len(items), "bound": c.upper_bound,
        "fisher_stat": fmt_num(c.fisher_stat, 2), "fisher_df": c.fisher_df, "fisher_p": combined(c.fisher_p),
        "fisher_p_raw": c.fisher_p, "stouffer_z": fmt_num(c.stouffer_z, 2),
        "stouffer_p": combined(c.stouffer_p), "stouffer_p_raw": c.stouffer_p,
    }


def narrative_view(nr: NarrativeResult, rows: RowText, effects) -> dict[str, Any]:
    """A narrative page: each result as reported, why it is not pooled, and the combinations."""
    n = nr.narrative
    base = [rows.label(rid) for rid in n.rows]

    def cohort(rid: str) -> str:
        # several results of one study: say which cohort / subgroup each is
        lab = rows.label(rid)
        if base.count(lab) > 1 or any(rows.label(r2) == lab for c in n.combine for r2 in c.rows if r2 != rid):
            extra, ep = rows.get(rid, "tumour_type"), rows.get(rid, "endpoint")
            return f"{lab}: {ep}, {extra}" if extra else f"{lab}: {ep}"
        return lab

    first = {rid: cohort(rid) for rid in n.rows}
    seen = list(first.values())

    def label_of(rid: str) -> str:
        # still ambiguous (two subgroups of one endpoint and tumour): the reported endpoint detail
        lab = first.get(rid) or cohort(rid)
        detail = rows.get(rid, "endpoint_detail")
        return f"{rows.label(rid)}: {detail}" if seen.count(lab) > 1 and detail else lab

    return {"id": n.id, "title": n.title, "reason": n.reason, "text": n.text,
            "rows": [_narrative_row(rows, rid, label_of(rid), effects[rid].reason) for rid in n.rows],
            "combos": [combination_view(c, label_of, lambda r: rows.get(r, "p_value"))
                       for c in nr.combinations],
            **direction_view(nr, label_of)}


def direction_view(nr: NarrativeResult, label_of) -> dict[str, Any]:
    """The sign tests on effect direction (one sentence per outcome) and the directions the plan
    declared for results without an estimate, with where each was read."""
    syn = nr.synthesis
    if syn is None:
        return {"sign_tests": [], "declared": [], "sign_test_note": "", "declared_intro": "", "undrawn": ""}
    return {"sign_test_note": words.SIGN_TEST_NOTE, "declared_intro": words.DECLARED_INTRO,
            "undrawn": words.undrawn_text([label_of(r) for r in syn.undrawn], bool(syn.figures)),
            "sign_tests": [words.sign_test_text(st, vocab.SIGN_TEST_ALPHA) for st in syn.sign_tests],
            "declared": [{"label": label_of(d.row), "row_id": d.row,
                          "direction": words.DIRECTION_WORDS[vocab.EffectDirection(d.direction)],
                          "source": d.source} for d in nr.narrative.directions]}


def _narrative_row(rows: RowText, rid: str, label: str, why: str) -> dict[str, Any]:
    m = rows.get(rid, "measure")
    est, lo, hi = rows.number(rid, "estimate"), rows.number(rid, "ci_lower"), rows.number(rid, "ci_upper")
    if m == "PROP" and est is not None:
        est_txt = f"{fmt_num(100 * est, 0)}%"
        ci_txt = fmt_ci(100 * lo, 100 * hi, 0) + " %" if lo is not None and hi is not None else "–"
    else:
        est_txt = fmt_num(est) if est is not None else "–"
        ci_txt = fmt_ci(lo, hi) if lo is not None and hi is not None else "–"
    ev, nn = rows.integer(rid, "events_int"), rows.integer(rid, "n_int")
    return {
        **rows.publication(rid), "label": label, "endpoint": rows.get(rid, "endpoint"),
        "endpoint_detail": rows.get(rid, "endpoint_detail"), "measure": m, "estimate": est_txt, "ci": ci_txt,
        "p": rows.get(rid, "p_value") or "–", "design": rows.get(rid, "design"),
        "tumour": rows.get(rid, "tumour_type"),
        "n": f"{ev}/{nn}" if ev is not None and nn is not None else (str(nn) if nn is not None else "–"),
        "why": why or "not pooled by the plan",
    }


# ---------------------------------------------------------------------------------------------
# living evidence: the "What changed" section (metaanalysis.changes)
# ---------------------------------------------------------------------------------------------


def _row_label(rows: RowText, rid: str) -> str:
    """A row's label; a row no longer in the registry by its id."""
    return rows.label(rid) if rid in rows.rows else rid


def analysis_change_view(ac, rows: RowText) -> dict[str, Any]:
    """One changed analysis: its conclusion changes, its lead result before and now, its rows that changed."""
    snap = ac.current
    return {
        "id": ac.id, "title": snap.title, "href": f"{ac.id}.html" if ac.new is not None else "",
        "conclusions_changed": ac.conclusions_changed,
        "conclusions": [{"code": c.code.value, "alters": c.alters_conclusion,
                         "text": words.conclusion_change_text(c, snap)} for c in ac.conclusions],
        "before": words.lead_text(ac.old) if ac.old is not None and ac.new is not None else "",
        "now": words.lead_text(ac.new) if ac.old is not None and ac.new is not None else "",
        "studies": [words.study_change_text(sc, _row_label(rows, sc.row_id)) for sc in ac.studies],
    }


def changes_view(changelog, rows: RowText, order: list[str]) -> dict[str, Any] | None:
    """The index's "What changed": None without a previous build; else a summary line and the
    changed analyses in plan order (``order``: analysis ids), removed ones last."""
    from ..changes import Baseline

    if changelog.baseline is Baseline.NONE:
        return None
    pos = {aid: i for i, aid in enumerate(order)}
    changed = sorted(changelog.analyses, key=lambda ac: (pos.get(ac.id, len(pos)), ac.id))
    return {"page": False, "summary": words.changes_summary(changelog),
            "analyses": [analysis_change_view(ac, rows) for ac in changed]}


def page_changes_view(changelog, analysis_id: str, rows: RowText) -> dict[str, Any] | None:
    """An analysis page's "What changed": None when it did not change (or there was no previous build)."""
    ac = changelog.get(analysis_id)
    if ac is None:
        return None
    return {"page": True, "summary": words.analysis_change_summary(ac, changelog),
            "analyses": [analysis_change_view(ac, rows)],
            "cumulative": cumulative_change_view(ac, rows), "measure": ac.current.measure,
            "level_txt": pct(ac.current.level)}


def cumulative_change_view(ac, rows: RowText) -> list[dict[str, Any]]:
    """The cumulative path of a changed analysis before and now, each study's change in this build marked."""
    from ..changes import cumulative_changes

    m = ac.current.measure
    return [{"label": _row_label(rows, st.row_id), "year": st.year,
             "before": words.cumulative_point_text(m, st.old), "now": words.cumulative_point_text(m, st.new),
             "change": words.CUMULATIVE_CHANGE_WORDS[st.change.value] if st.change else "", "moved": st.moved}
            for st in cumulative_changes(ac)]


# risk of bias (traffic lights) and the GRADE summary of findings
# ---------------------------------------------------------------------------------------------


def _rob_cell(j: vocab.RobJudgement) -> dict[str, str]:
    letter, cls, text = words.ROB_CELLS[j]
    return {"letter": letter, "cls": cls, "text": text}


def rob_view(a: AnalysisResult, rows: RowText) -> dict[str, Any]:
    """The traffic-light table: one row per pooled study, D1-D5 and overall (robvis layout)."""
    return {
        "domains": [{"code": code.upper(), "name": name} for code, name in vocab.ROB_DOMAINS],
        "rows": [{"row_id": e.row_id, "label": rows.label(e.row_id),
                  "cells": [_rob_cell(j) for j in (*e.domains, e.overall)],
                  "source": e.source, "location": e.source_location} for e in a.rob],
        "none_assessed": not any(e.assessed for e in a.rob),
        "legend": [_rob_cell(j) for j in vocab.RobJudgement],
        "citation": vocab.ROB2.citation,
    }


def _difference(d: float) -> str:
    n = round(1000 * d)
    return f"{abs(n)} {'fewer' if n < 0 else 'more'}"


def _absolute_view(x, interval: str) -> dict[str, str]:
    label, source = words.baseline_words(x.baseline)
    return {"label": label, "source": source, "control": f"{words.per_1000(x.baseline.risk)} per 1000",
            "intervention": f"{words.per_1000(x.risk)} per 1000 ({words.per_1000(x.lower)} to {words.per_1000(x.upper)})",
            "difference": f"{_difference(x.difference)} per 1000 ({_difference(x.lower - x.baseline.risk)} to "
                          f"{_difference(x.upper - x.baseline.risk)}; {interval})"}


def sof_view(a: AnalysisResult) -> dict[str, Any]:
    """One outcome row of the summary of findings, with its domain ratings and footnotes."""
    sof = a.sof
    notes: list[str] = []

    def mark(texts: list[str]) -> str:
        marks = []
        for t in texts:
            if t not in notes:
                notes.append(t)
            marks.append(str(notes.index(t) + 1))
        return ",".join(marks)

    domains = []
    for d in sof.domains:
        texts = [words.grade_reason_text(r, sof) + (f": {d.note}" if d.note else "") for r in d.reasons]
        domains.append({"name": words.DOMAIN_NAMES[d.domain], "rating": d.rating.value, "code": d.domain.value,
                        "marks": mark(texts)})
    interval = f"{pct(sof.level)} {'CrI' if sof.headline is vocab.Headline.BAYES else 'CI'}"
    rel = "–" if sof.estimate is None else \
        f"{sof.measure} {fmt_num(sof.estimate)} ({fmt_num(sof.ci_lower)} to {fmt_num(sof.ci_upper)})"
    return {
        "id": a.id, "title": a.analysis.title, "measure": sof.measure,
        "participants": "not known for every study" if sof.participants is None else str(sof.participants),
        "k": sof.k, "relative": rel, "interval": interval,
        "model": words.overview_model(a),
        "absolute": [_absolute_view(x, interval) for x in sof.absolute],
        "absolute_marks": mark([words.grade_reason_text(sof.absolute_missing, sof)]) if sof.absolute_missing else "",
        "symbols": words.certainty_symbols(sof.certainty), "certainty": words.CERTAINTY_WORDS[sof.certainty],
        "start": words.CERTAINTY_WORDS[sof.start], "provisional": sof.provisional,
        "start_marks": mark([words.grade_reason_text(sof.start_reason, sof)]) if sof.start_reason else "",
        "domains": domains, "notes": notes,
    }


def downloads_view(a: AnalysisResult, figures: set[str]) -> dict[str, Any]:
    """The files the report writes for one analysis, by kind (``""`` where there is none):
    ``json``, ``studies_csv`` (with studies), ``forest_svg`` / ``forest_png`` (with a forest plot),
    ``funnel_svg`` / ``funnel_png`` (with a funnel plot), ``r_script`` (with a pooled main model);
    ``items`` lists the present ones as (file name, description). ``figures``: the figure files
    drawn (keys of :data:`~metaanalysis.render.figures.FIGURE_FILES`)."""
    names = {"json": f"{a.id}.json", "studies_csv": f"{a.id}-studies.csv" if a.studies else "",
             "forest_svg": f"{a.id}-forest.svg" if "forest_file" in figures else "",
             "forest_png": f"{a.id}-forest.png" if "forest_png" in figures else "",
             "funnel_svg": f"{a.id}-funnel.svg" if "funnel_file" in figures else "",
             "funnel_png": f"{a.id}-funnel.png" if "funnel_png" in figures else "",
             "r_script": f"{a.id}.R" if a.result is not None else ""}
    return {**names, "items": [{"href": n, "text": words.DOWNLOAD_TEXTS[k]} for k, n in names.items() if n]}


def plain_words_view(a: AnalysisResult, view: dict[str, Any], short_title: str) -> dict[str, Any]:
    """Words for readers that the page shows beside the exact terms: the short title (navigation),
    the settings line, the test of no effect; each study's ``se_source_words``; ``flag_href``, where
    the overview's flags link to (the page's Warnings)."""
    for st in view["studies"]:
        st["se_source_words"] = words.SE_SOURCE_WORDS.get(st["se_source"], st["se_source"])
    main = view["main"]
    mean_test = words.mean_test_words(main) if main and "stat_name" in main else ""
    return {"short_title": short_title, "settings_words": words.settings_words(a.settings, a.k),
            "mean_test": mean_test, "flag_href": f"{a.id}.html#h-warn"}


def flag_legend(views: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The flags the overview shows (caution level), each once in vocabulary order, with what it means."""
    shown = {w["code"] for v in views for w in v["warnings"] if w["level"] == "caution"}
    return [{"code": f.value, "short": words.FLAG_LABELS[f], "text": words.FLAG_EXPLANATIONS[f]}
            for f in vocab.Flag if f.value in shown]
