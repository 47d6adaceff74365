"""Machine-readable outputs written from the result tree: one JSON per page, ``results.csv``.

Numbers are written as numbers (NaN/inf as null), flags as their stable codes
(:class:`metaanalysis.vocab.Flag`, :class:`~metaanalysis.vocab.StudyFlag`); the human-readable
warning sentences are carried alongside for readers of the JSON. CSV cells are neutralised
against spreadsheet formula injection.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

from .. import vocab
from ..analysis import AnalysisResult, Evidence, NarrativeResult, summary_record
from ..results import jsonable

__all__ = ["analysis_json", "narrative_json", "results_csv", "changes_json", "neutralise_cell", "CSV_FIELDS",
           "studies_csv", "STUDY_CSV_FIELDS"]


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


def dumps(obj: dict) -> bytes:
    """Deterministic JSON (sorted keys, 2-space indent, UTF-8, no NaN)."""
    return (json.dumps(jsonable(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
            + "\n").encode("utf-8")


def _rd(r) -> dict | None:
    return r.to_dict() if r is not None else None


def analysis_json(a: AnalysisResult, view: dict, ev: Evidence) -> bytes:
    """Every number of one analysis: the main result, each study, each sensitivity analysis."""
    from ..changes import registry_fields

    s = a.settings
    labels = {st["row_id"]: st["label"] for st in view["studies"]}
    fields = registry_fields(ev.registry)
    return dumps({
        "id": a.id, "title": a.analysis.title, "endpoint": a.analysis.endpoint, "measure": a.measure,
        "scale": vocab.measure(a.measure).scale,
        "settings": {"method": s.method, "test": s.test, "pi": s.pi, "level": s.level},
        "k": a.k, "single_study": a.k == 1, "result": _rd(a.result),
        "headline": a.headline.value, "headline_reason": a.analysis.headline_reason,
        "headline_result": _rd(a.headline_result),
        "bayes": _rd(a.bayes), "bayes_sensitivity": [b.to_dict() for b in a.bayes_sensitivity],
        "binary": _rd(a.binary),
        "coverage": None if a.coverage is None else {
            **a.coverage.to_dict(), "grid": [{"role": role.value, "tau2": t2} for role, t2 in a.coverage_grid]},
        "studies": [{"row_id": st.row_id, "label": labels[st.row_id], "yi": st.yi, "vi": st.vi,
                     "weight": st.weight, "flags": [f.value for f in st.flags], "se_source": st.se_source,
                     "registry": fields.get(st.row_id)}
                    for st in a.studies],
        "not_poolable": view["not_poolable"],
        "warnings": [w["text"] for w in view["warnings"]],
        "warning_codes": [c.flag.value for c in a.caveats],
        "estimator_panel": [{"method": p.method, **{t: _rd(r) for t, r in p.results.items()}} for p in a.panel],
        "leave_one_out": [{"omitted": lab["omitted"], "omitted_row_id": x.omitted, "result": _rd(x.result)}
                          for x, lab in zip(a.leave_one_out, view["loo"])],
        "cumulative": [{"added": lab["added"], "added_row_id": x.added, "year": x.year, "result": _rd(x.result)}
                       for x, lab in zip(a.cumulative, view["cum"])],
        "subgroups": [_subgroup_json(g, v) for g, v in zip(a.subgroups, view["subgroups"])],
        "sensitivity": [{"name": v["name"], "kind": sc.kind.value, "description": v["description"], "k": sc.k,
                         "rows": list(sc.rows), "result": _rd(sc.result), "note": v.get("note", "")}
                        for sc, v in zip(a.scenarios, view["scenarios"])],
        "left_out": view["left_out"],
        "missing_evidence": list(a.analysis.missing),
        "exploratory": a.analysis.exploratory, "exploratory_reason": a.analysis.exploratory_reason,
        "published": [_published_json(pc) for pc in a.published],
        "evidence_current_to": _evidence_date(ev),
        "registry_sha256": ev.registry.sha256, "plan_sha256": ev.plan.sha256,
    })


def _evidence_date(ev: Evidence) -> str | None:
    """The latest 'searched' date of the search log (ISO), or None when not recorded."""
    d = ev.searches.searched_to if ev.searches is not None else None
    return None if d is None else d.isoformat()


def _published_json(pc) -> dict[str, Any]:
    """A published synthesis beside the result (analysis scale), with the computed comparison."""
    return {"row_id": pc.row_id, "yi": pc.yi, "ci_lower": pc.ci_lower, "ci_upper": pc.ci_upper,
            "ci_level": pc.ci_level, "difference": pc.difference, "width_ratio": pc.width_ratio,
            "common_effect": _rd(pc.common), "trials_both": list(pc.trials_both),
            "trials_published_only": list(pc.trials_published_only), "trials_ours_only": list(pc.trials_ours_only)}


def _subgroup_json(g, v: dict) -> dict:
    r = g.result
    return {"variable": g.variable, "note": v["note"],
            "groups": {name: _rd(x) for name, x in r.groups.items()} if r else {},
            "q_between": r.q_between if r else None, "q_between_df": r.q_between_df if r else None,
            "q_between_pvalue": r.q_between_pvalue if r else None}


def narrative_json(nr: NarrativeResult, view: dict, ev: Evidence, rows) -> bytes:
    """A narrative section: each row's reported numbers and each combination's statistics.

    ``rows`` is the build's :class:`~metaanalysis.render.labels.RowText` (one index of the registry).
    """
    n = nr.narrative
    labels = {r["row_id"]: r["label"] for r in view["rows"]}
    return dumps({
        "id": n.id, "title": n.title, "reason": n.reason, "text": n.text,
        "rows": [_narrative_row(ev, rows, rid, labels[rid]) for rid in n.rows],
        "combinations": [{
            "label": c.combination.label, "rows": list(c.combination.rows), "direction": c.combination.direction,
            "independent": c.combination.independent, "note": c.combination.note,
            "p_one_sided": list(c.p_one_sided), "sided": list(c.sided), "upper_bound": c.upper_bound,
            "fisher": {"statistic": c.fisher_stat, "df": c.fisher_df, "pvalue": c.fisher_p},
            "stouffer": {"z": c.stouffer_z, "pvalue": c.stouffer_p},
        } for c in nr.combinations],
        "synthesis": _synthesis_json(nr.synthesis),
        "evidence_current_to": _evidence_date(ev),
        "registry_sha256": ev.registry.sha256, "plan_sha256": ev.plan.sha256,
    })


def _synthesis_json(syn) -> dict[str, Any] | None:
    """A narrative section's synthesis without pooling: figures drawn, each row's direction, the
    sign tests (p None when not run, with the note's code), albatross points and proportions."""
    if syn is None:
        return None
    return {
        "figures": [f.value for f in syn.figures],
        "directions": {rid: d.value for rid, d in syn.directions},
        "sign_tests": [{"endpoint": st.endpoint, "n": st.n, "k_benefit": st.k, "pvalue": st.pvalue,
                        "min_pvalue": st.min_p, "min_n": st.min_n, "note": st.note.value if st.note else None,
                        "units": [{"patient_set": u.patient_set, "rows": list(u.rows), "direction": u.direction.value}
                                  for u in st.units]} for st in syn.sign_tests],
        "albatross": [{"row_id": p.row_id, "n": p.n, "p_two_sided": p.p, "upper_bound": p.bound,
                       "direction": p.direction.value} for p in syn.albatross],
        "albatross_omitted": list(syn.albatross_omitted),
        "not_in_a_figure": list(syn.undrawn),
        "proportions": [{"row_id": p.row_id, "estimate": p.estimate, "ci_lower": p.lower, "ci_upper": p.upper,
                         "ci_source": p.source.value, "events": p.events, "n": p.n} for p in syn.proportions],
    }


def _narrative_row(ev: Evidence, rows, rid: str, label: str) -> dict[str, Any]:
    pv = ev.registry.p_values.get(rid)
    return {"row_id": rid, "label": label, "measure": rows.get(rid, "measure"),
            "estimate": rows.number(rid, "estimate"), "ci_lower": rows.number(rid, "ci_lower"),
            "ci_upper": rows.number(rid, "ci_upper"), "ci_level": rows.number(rid, "ci_level"),
            "p_value": rows.get(rid, "p_value") or None,
            "p": None if pv is None else {"value": pv.value, "relation": pv.relation, "sided": pv.sided},
            "n_int": rows.integer(rid, "n_int"), "events_int": rows.integer(rid, "events_int"),
            "status": rows.get(rid, "status"), "design": rows.get(rid, "design"),
            "not_pooled_because": ev.effects[rid].reason or "not pooled by the plan"}


CSV_FIELDS = ("analysis_id", "title", "endpoint", "measure", "k", "method", "test", "pi", "level",
              "estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "pvalue", "yi", "se",
              "tau2", "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper", "q", "q_df",
              "q_pvalue", "single_study", "rows", "warnings", "flags", "headline")


def results_csv(ev: Evidence, views: list[dict]) -> bytes:
    """One row per analysis: natural-scale estimate, CI and PI; τ², I², Q with their CIs; flags."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for a, view in zip(ev.analyses, views):
        rec = {**summary_record(a), "warnings": " | ".join(x["text"] for x in view["warnings"])}
        w.writerow([neutralise_cell(rec.get(f)) for f in CSV_FIELDS])
    return buf.getvalue().encode("utf-8")


def changes_json(changelog) -> bytes:
    """``changes.json``: the :class:`~metaanalysis.changes.Changelog` of this build (always written;
    its ``status`` says whether there was a previous build and whether anything changed)."""
    return dumps(changelog.to_dict())


# ---------------------------------------------------------------------------------------------
# the GRADE summary of findings: summary_of_findings.csv and .json
# ---------------------------------------------------------------------------------------------

SOF_CSV_FIELDS = ("analysis_id", "title", "measure", "k", "participants", "events", "headline", "level",
                  "estimate", "ci_lower", "ci_upper", "baseline_label", "baseline_source", "baseline_risk",
                  "risk_intervention", "risk_intervention_lower", "risk_intervention_upper", "per_1000_control",
                  "per_1000_intervention", "per_1000_difference", "absolute_missing",
                  *(f"{d.value}" for d in vocab.GradeDomain), *(f"{d.value}_reasons" for d in vocab.GradeDomain),
                  "certainty_start", "certainty", "certainty_level", "provisional", "ois_events")


def sof_record(a: AnalysisResult) -> dict[str, Any]:
    """Every number and code of one summary-of-findings row (JSON; domain ratings as codes)."""
    from dataclasses import asdict

    sof = a.sof
    rec = {k: v for k, v in asdict(sof).items() if k not in ("absolute", "domains")}
    rec.update(title=a.analysis.title, headline=sof.headline.value, start=sof.start.name.lower(),
               start_reason=sof.start_reason.value if sof.start_reason else None,
               certainty=sof.certainty.name.lower(), certainty_level=int(sof.certainty),
               provisional=sof.provisional,
               absolute_missing=sof.absolute_missing.value if sof.absolute_missing else None,
               absolute=[{"baseline_risk": x.baseline.risk, "baseline_label": x.baseline.label,
                          "baseline_source": x.baseline.source, "baseline_rows": list(x.baseline.rows),
                          "risk_intervention": x.risk, "risk_intervention_lower": x.lower,
                          "risk_intervention_upper": x.upper, "per_1000_difference": 1000 * x.difference}
                         for x in sof.absolute],
               domains={d.domain.value: {"rating": d.rating.value, "reasons": [r.value for r in d.reasons],
                                         "note": d.note, "value": d.value} for d in sof.domains},
               risk_of_bias=[{"row_id": e.row_id, "overall": e.overall.value, "source": e.source,
                              "source_location": e.source_location,
                              **{code: j.value for (code, _), j in zip(vocab.ROB_DOMAINS, e.domains)}}
                             for e in a.rob])
    return rec


def sof_json(ev: Evidence) -> bytes:
    """``summary_of_findings.json``: one record per analysis, with the method citations."""
    return dumps({"method": {"grade": vocab.GRADE.citation, "imprecision": vocab.GRADE_IMPRECISION.citation,
                             "risk_of_bias": vocab.ROB2.citation},
                  "rob_file": ev.rob.path if ev.rob is not None else "",
                  "outcomes": [sof_record(a) for a in ev.primary]})


def sof_csv(ev: Evidence) -> bytes:
    """``summary_of_findings.csv``: one row per analysis and baseline risk (one row when none)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SOF_CSV_FIELDS)
    for a in ev.primary:
        rec = sof_record(a)
        base = {**rec, "certainty_start": rec["start"]}
        for d, v in rec["domains"].items():
            base[d], base[f"{d}_reasons"] = v["rating"], ";".join(v["reasons"])
        for x in rec["absolute"] or [{}]:
            row = {**base, **x}
            if x:
                row.update(per_1000_control=1000 * x["baseline_risk"], per_1000_intervention=1000 * x["risk_intervention"])
            w.writerow([neutralise_cell(row.get(f)) for f in SOF_CSV_FIELDS])
    return buf.getvalue().encode("utf-8")


STUDY_CSV_FIELDS = ("row_id", "label", "measure", "estimate", "ci_lower", "ci_upper", "ci_level", "p_value",
                    "n_int", "n_ctl", "events_int", "events_ctl", "yi", "vi", "se", "se_source", "weight",
                    "flags")


def studies_csv(a: AnalysisResult, view: dict, rows) -> bytes:
    """One row per pooled study of an analysis (``<id>-studies.csv``).

    ``estimate``, ``ci_lower``, ``ci_upper``, ``ci_level`` (%) and ``p_value`` are as the registry
    reports them (natural scale; the p-value as text, e.g. ``<0.001``); ``yi``, ``vi`` and ``se``
    are the analysis-scale effect, its variance and SE (log scale for ratio measures); ``weight``
    is the percentage weight in the main model (empty for a single study); ``flags`` the study's
    :class:`~metaanalysis.vocab.StudyFlag` codes separated by ``;``. Numbers are written as
    numbers; every cell is neutralised against formula injection.
    """
    labels = {st["row_id"]: st["label"] for st in view["studies"]}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(STUDY_CSV_FIELDS)
    for st in a.studies:
        rid = st.row_id
        rec = {"row_id": rid, "label": labels[rid], "measure": a.measure,
               **{c: rows.number(rid, c) for c in ("estimate", "ci_lower", "ci_upper", "ci_level")},
               "p_value": rows.get(rid, "p_value") or None,
               **{c: rows.integer(rid, c) for c in ("n_int", "n_ctl", "events_int", "events_ctl")},
               "yi": st.yi, "vi": st.vi, "se": st.se, "se_source": st.se_source, "weight": st.weight,
               "flags": ";".join(f.value for f in st.flags)}
        w.writerow([neutralise_cell(rec[f]) for f in STUDY_CSV_FIELDS])
    return buf.getvalue().encode("utf-8")
