"""Living evidence: what changed in the conclusions between two builds, and why (issue #17).

Living systematic reviews re-run the synthesis at every update of the evidence (Elliott et al.
2017, J Clin Epidemiol 91:23, doi:10.1016/j.jclinepi.2017.08.010); this module says what such an
update changed. A :class:`Snapshot` holds, per analysis, what its conclusions rest on: the pooled
rows (their registry fields of :data:`vocab.CHANGE_FIELDS` and their yi, vi), k, the settings,
the headline model, the lead result (the headline model's result, else the plan's model) and the
caveat codes. :func:`snapshot_from_evidence` builds it from a result tree and
:func:`snapshot_from_reports` from a report folder's ``<id>.json`` files; for one build the two are
equal (JSON round-trips every float). :func:`compare` turns two snapshots into a :class:`Changelog`
of row ids, numbers and :class:`vocab.Change` codes: no display strings, deterministic order
(analyses and rows by id, fields in a fixed order).

Example
-------
>>> from metaanalysis.changes import compare, snapshot_from_reports
>>> log = compare(snapshot_from_reports("old-reports"), snapshot_from_reports("reports"))  # doctest: +SKIP
>>> log.conclusions_changed, [c.code.value for a in log.analyses for c in a.conclusions]   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import cells, vocab
from .results import jsonable
from .vocab import Change

__all__ = ["Snapshot", "AnalysisSnapshot", "StudySnapshot", "LeadResult", "CumulativePoint", "CumulativeStepChange",
           "cumulative_changes", "Changelog", "AnalysisChange",
           "StudyChange", "StudyChangeKind", "FieldChange", "ConclusionChange", "Baseline", "LEAD_FIELDS",
           "registry_fields", "snapshot_from_evidence", "snapshot_from_reports", "compare",
           "since_previous_build", "CHANGES_FILE"]

#: The changelog file of a report folder (never read as an analysis page).
CHANGES_FILE = "changes.json"
#: Fields of the lead result a snapshot keeps (analysis scale: log for ratio measures).
LEAD_FIELDS: tuple[str, ...] = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2", "i2",
                                "pvalue")
_NATURAL_FIELDS = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")


# ---------------------------------------------------------------------------------------------
# snapshots
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySnapshot:
    """A pooled row: its effect and its registry fields as ``(column, value)`` pairs in
    :data:`vocab.CHANGE_FIELDS` order (missing cells are None; ``()`` when a build did not record them)."""

    row_id: str
    yi: float
    vi: float
    registry: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class LeadResult:
    """The result an analysis leads with, analysis scale (None where the model gives none)."""

    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    pi_lower: float | None
    pi_upper: float | None
    tau2: float | None
    i2: float | None
    pvalue: float | None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> LeadResult | None:
        """From :meth:`MetaResult.to_dict` or its JSON (NaN already None)."""
        return None if d is None else cls(**{f: d.get(f) for f in LEAD_FIELDS})


@dataclass(frozen=True)
class CumulativePoint:
    """One step of the cumulative meta-analysis (studies in publication order): the pooled
    estimate and CI (analysis scale) once ``row_id`` (published in ``year``) was added."""

    row_id: str
    year: int
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class AnalysisSnapshot:
    """What one analysis's conclusions rest on. ``settings`` is ``(method, test, pi, level)``;
    ``lead`` is the headline model's result (the posterior under a Bayesian headline), else the
    plan's model (headline none), else for one study its own Wald estimate and CI, else None (k = 0)."""

    id: str
    title: str
    measure: str
    settings: tuple[str, str, str, float]
    k: int
    headline: vocab.Headline
    studies: tuple[StudySnapshot, ...]
    lead: LeadResult | None
    caveats: tuple[str, ...]
    cumulative: tuple[CumulativePoint, ...] = ()

    @property
    def level(self) -> float:
        return self.settings[3]

    def summary(self) -> dict[str, Any]:
        """k, headline, settings and the lead result on both scales (JSON-ready)."""
        lead = {f: getattr(self.lead, f) if self.lead else None for f in LEAD_FIELDS}
        return {"k": self.k, "headline": self.headline.value, "settings": dict(zip(("method", "test", "pi", "level"),
                                                                                  self.settings)),
                **lead, "natural": {f: vocab.to_natural(self.measure, lead[f]) for f in _NATURAL_FIELDS},
                "rows": [s.row_id for s in self.studies], "caveats": list(self.caveats)}


@dataclass(frozen=True)
class Snapshot:
    """A build's analyses (by id) and the SHA-256 of its registry and plan."""

    analyses: tuple[AnalysisSnapshot, ...]
    registry_sha256: str = ""
    plan_sha256: str = ""

    def get(self, analysis_id: str) -> AnalysisSnapshot | None:
        return next((a for a in self.analyses if a.id == analysis_id), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` gives back an equal snapshot."""
        return jsonable({"registry_sha256": self.registry_sha256, "plan_sha256": self.plan_sha256,
                         "analyses": [dataclasses.asdict(a) for a in self.analyses]})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Snapshot:
        """From :meth:`to_dict` (or its JSON). Raises KeyError/TypeError/ValueError when malformed."""
        def analysis(a):
            lead = a["lead"]
            return AnalysisSnapshot(
                str(a["id"]), str(a["title"]), str(a["measure"]),
                (str(a["settings"][0]), str(a["settings"][1]), str(a["settings"][2]), float(a["settings"][3])),
                int(a["k"]), vocab.Headline(a["headline"]),
                tuple(StudySnapshot(str(st["row_id"]), float(st["yi"]), float(st["vi"]),
                                    tuple((str(c), v) for c, v in st["registry"])) for st in a["studies"]),
                None if lead is None else LeadResult(**{f: lead[f] for f in LEAD_FIELDS}),
                tuple(str(c) for c in a["caveats"]),
                tuple(CumulativePoint(str(x["row_id"]), int(x["year"]), x["estimate"], x["ci_lower"], x["ci_upper"])
                      for x in a["cumulative"]))
        return cls(tuple(analysis(a) for a in d["analyses"]), str(d["registry_sha256"]), str(d["plan_sha256"]))


def registry_fields(registry) -> dict[str, dict[str, Any]]:
    """Row id -> ``{column: value}`` of :data:`vocab.CHANGE_FIELDS` (int, float, text; None when empty).

    The one reading of these cells: the JSON pages record it and :func:`snapshot_from_evidence` uses it.
    Each analysis page asks for it, so the last registry's answer is kept (a 1,000-analysis batch
    would otherwise re-read every registry row once per analysis); treat it as read-only.
    """
    key = (id(registry.df), registry.sha256)
    last = _FIELDS_CACHE.get("last")              # one read: (key, value, frame), thread-safe
    if last is not None and last[0] == key:
        return last[1]
    df = registry.df
    # dtype per column once (a column lookup per cell was most of a build's time)
    kinds = {col: str(df[col].dtype) if col in df.columns else "string" for col in vocab.CHANGE_FIELDS}
    out = {}
    for rec in df.to_dict("records"):
        vals = {}
        for col, kind in kinds.items():
            v = rec.get(col)
            vals[col] = (cells.integer(v) if kind == "Int64" else cells.number(v) if kind.startswith("float")
                         else (cells.text(v) or None))
        out[cells.text(rec["row_id"])] = vals
    # the frame is kept with the key so that its id cannot be reused by another frame
    _FIELDS_CACHE["last"] = (key, out, df)
    return out


_FIELDS_CACHE: dict[str, Any] = {}


def _pairs(fields: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    fields = fields or {}
    return tuple((c, jsonable(fields[c])) for c in vocab.CHANGE_FIELDS if c in fields)


def snapshot_from_evidence(ev) -> Snapshot:
    """The snapshot of an :class:`~metaanalysis.analysis.Evidence` tree."""
    fields = registry_fields(ev.registry)
    out = []
    for a in ev.analyses:
        lead = a.headline_result if a.headline_result is not None else a.result
        s = a.settings
        out.append(AnalysisSnapshot(
            a.id, a.analysis.title, a.measure, (s.method, s.test, s.pi, float(s.level)), a.k, a.headline,
            tuple(StudySnapshot(st.row_id, st.yi, st.vi, _pairs(fields.get(st.row_id))) for st in a.studies),
            _lead(a.headline, lead.to_dict() if lead is not None else None,
                  jsonable(a.bayes.to_dict()) if a.bayes is not None else None, a.studies, s.level),
            tuple(c.flag.value for c in a.caveats),
            tuple(_point(x.added, x.year, x.result.to_dict()) for x in a.cumulative)))
    return Snapshot(tuple(sorted(out, key=lambda x: x.id)), ev.registry.sha256, ev.plan.sha256)


def _from_page(d: Mapping[str, Any]) -> AnalysisSnapshot:
    """One analysis page's JSON (:func:`metaanalysis.render.data.analysis_json`) as a snapshot."""
    s = d["settings"]
    lead = d.get("headline_result") if d.get("headline_result") is not None else d.get("result")
    studies = tuple(StudySnapshot(str(st["row_id"]), float(st["yi"]), float(st["vi"]), _pairs(st.get("registry")))
                    for st in d["studies"])
    headline = vocab.Headline(d["headline"])
    return AnalysisSnapshot(
        str(d["id"]), str(d.get("title", "")), str(d["measure"]),
        (str(s["method"]), str(s["test"]), str(s["pi"]), float(s["level"])), int(d["k"]),
        headline, studies, _lead(headline, lead, d.get("bayes"), studies, float(s["level"])), tuple(str(c) for c in d.get("warning_codes", ())),
        tuple(_point(str(x["added_row_id"]), int(x["year"]), x["result"]) for x in d.get("cumulative", ())))


def _lead(headline: vocab.Headline, result: Mapping[str, Any] | None, bayes: Mapping[str, Any] | None, studies,
          level: float) -> LeadResult | None:
    """The lead result: the frequentist headline (or plan) model's; under a Bayesian headline the
    posterior median of μ, its central credible and predictive intervals, τ² at the median τ (no
    p-value); for one study its own Wald estimate, CI and two-sided p at ``level`` (what
    :meth:`AnalysisResult.to_frame` shows), so a single study's conclusion can change too."""
    if headline is vocab.Headline.BAYES and bayes is not None:
        tau = bayes.get("tau_median")
        return LeadResult(bayes.get("mu_median"), bayes.get("mu_ci_lower"), bayes.get("mu_ci_upper"),
                          bayes.get("pred_lower"), bayes.get("pred_upper"), None if tau is None else tau * tau,
                          None, None)
    if result is not None or len(studies) != 1:
        return LeadResult.from_dict(result)
    from ._dist import norm_sf, z_crit

    yi, se = studies[0].yi, math.sqrt(studies[0].vi)
    half = z_crit(level) * se
    return LeadResult(yi, yi - half, yi + half, None, None, None, None, float(2 * norm_sf(abs(yi) / se)))


def _point(row_id: str, year: int, result: Mapping[str, Any]) -> CumulativePoint:
    return CumulativePoint(row_id, year, result.get("estimate"), result.get("ci_lower"), result.get("ci_upper"))


def snapshot_from_reports(report_dir: str | Path) -> Snapshot:
    """The snapshot of a report folder: every ``<id>.json`` analysis page in it.

    Raises
    ------
    OSError
        The folder or a page cannot be read.
    ValueError
        A page is not valid JSON or lacks a field a snapshot needs.
    """
    out, shas = [], ("", "")
    for path in sorted(Path(report_dir).glob("*.json")):
        if path.name == CHANGES_FILE:
            continue
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(d, dict) or "studies" not in d:
                continue  # a narrative page (or not ours)
            out.append(_from_page(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a readable analysis page ({type(e).__name__}: {e})") from None
        shas = shas if shas[0] else (str(d.get("registry_sha256", "")), str(d.get("plan_sha256", "")))
    return Snapshot(tuple(sorted(out, key=lambda x: x.id)), *shas)


# ---------------------------------------------------------------------------------------------
# the changelog
# ---------------------------------------------------------------------------------------------


class Baseline(str, enum.Enum):
    """What a changelog compares with."""

    NONE = "no-previous-build"
    PREVIOUS = "previous-build"
    UNREADABLE = "previous-build-unreadable"


class StudyChangeKind(str, enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class FieldChange:
    """One field that moved: a registry column, ``yi``/``vi``, ``k`` or a lead-result field."""

    field: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class StudyChange:
    row_id: str
    kind: StudyChangeKind
    fields: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"row_id": self.row_id, "change": self.kind.value, "fields": [f.to_dict() for f in self.fields]}


@dataclass(frozen=True)
class ConclusionChange:
    """A change of conclusion, with the values it rests on (analysis scale).

    ``old``/``new``: the (lower, upper) interval for CI/PI codes, the p-value for significance,
    the estimate for direction and threshold, the headline code, the settings tuple, or the flag
    code (``new`` for an added caveat, ``old`` for a removed one). ``reference``: the null or the
    threshold on the natural scale, where the code compares with one.
    """

    code: Change
    old: Any = None
    new: Any = None
    reference: float | None = None

    @property
    def alters_conclusion(self) -> bool:
        return self.code in vocab.CONCLUSION_CHANGES

    def to_dict(self, measure: str) -> dict[str, Any]:
        """JSON-ready; effect values (intervals, estimates) also on the natural scale of ``measure``."""
        out = {"code": self.code.value, "old": self.old, "new": self.new, "reference": self.reference,
               "alters_conclusion": self.alters_conclusion}
        if self.code in _EFFECT_VALUED:
            out["old_natural"], out["new_natural"] = (_natural(measure, self.old), _natural(measure, self.new))
        return out


#: Codes whose ``old``/``new`` are effects (an interval or an estimate) on the analysis scale.
_EFFECT_VALUED = frozenset({Change.CI_NOW_CROSSES_NULL, Change.CI_NO_LONGER_CROSSES_NULL, Change.PI_NOW_CROSSES_NULL,
                            Change.PI_NO_LONGER_CROSSES_NULL, Change.DIRECTION_CHANGED, Change.THRESHOLD_CROSSED})


def _natural(measure: str, v: Any) -> Any:
    if isinstance(v, tuple):
        return tuple(vocab.to_natural(measure, x) for x in v)
    return vocab.to_natural(measure, v)


@dataclass(frozen=True)
class AnalysisChange:
    """Everything that changed in one analysis (``old`` None: added; ``new`` None: removed)."""

    id: str
    old: AnalysisSnapshot | None
    new: AnalysisSnapshot | None
    studies: tuple[StudyChange, ...]
    numbers: tuple[FieldChange, ...]
    conclusions: tuple[ConclusionChange, ...]

    @property
    def current(self) -> AnalysisSnapshot:
        return self.new if self.new is not None else self.old

    @property
    def conclusions_changed(self) -> bool:
        return any(c.alters_conclusion for c in self.conclusions)

    @property
    def changed(self) -> bool:
        return bool(self.studies or self.numbers or self.conclusions)

    def to_dict(self) -> dict[str, Any]:
        kind = "added" if self.old is None else "removed" if self.new is None else "changed"
        return {"id": self.id, "title": self.current.title, "measure": self.current.measure, "change": kind,
                "conclusions_changed": self.conclusions_changed,
                "conclusions": [c.to_dict(self.current.measure) for c in self.conclusions],
                "studies": [s.to_dict() for s in self.studies], "numbers": [n.to_dict() for n in self.numbers],
                "cumulative": [c.to_dict() for c in cumulative_changes(self)],
                "old": self.old.summary() if self.old else None, "new": self.new.summary() if self.new else None}


@dataclass(frozen=True)
class Changelog:
    """What changed between two builds; ``analyses`` holds the changed ones only, by id."""

    baseline: Baseline
    analyses: tuple[AnalysisChange, ...] = ()
    old_shas: tuple[str, str] = ("", "")      # (registry, plan) SHA-256 of the previous build
    new_shas: tuple[str, str] = ("", "")
    #: The snapshot compared with (kept in ``changes.json`` while something changed, so that a
    #: rebuild from the same inputs can compare with it again: see :func:`since_previous_build`).
    old: Snapshot | None = None
    #: True when the previous build had these same inputs and this changelog is still measured
    #: from the build before it (the last build with another registry or plan).
    carried: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.analyses)

    @property
    def conclusions_changed(self) -> bool:
        return any(a.conclusions_changed for a in self.analyses)

    @property
    def status(self) -> str:
        """``no-previous-build``, ``previous-build-unreadable``, ``unchanged`` or ``changed``."""
        if self.baseline is not Baseline.PREVIOUS:
            return self.baseline.value
        return "changed" if self.changed else "unchanged"

    def get(self, analysis_id: str) -> AnalysisChange | None:
        return next((a for a in self.analyses if a.id == analysis_id), None)

    def to_dict(self) -> dict[str, Any]:
        def shas(pair):
            return {"registry_sha256": pair[0], "plan_sha256": pair[1]}
        return jsonable({"status": self.status, "baseline": self.baseline.value,
                         "conclusions_changed": self.conclusions_changed,
                         "old": shas(self.old_shas) if self.baseline is Baseline.PREVIOUS else None,
                         "new": shas(self.new_shas), "carried_forward": self.carried,
                         "analyses": [a.to_dict() for a in self.analyses],
                         "baseline_snapshot": self.old.to_dict() if self.changed and self.old else None})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=vocab.CHANGE_REL_TOL, abs_tol=1e-12)
    return a == b


def _study_changes(old: AnalysisSnapshot | None, new: AnalysisSnapshot | None) -> tuple[StudyChange, ...]:
    """Rows added, removed, or with fields that moved (registry fields known to both builds, yi, vi)."""
    od = {s.row_id: s for s in old.studies} if old else {}
    nd = {s.row_id: s for s in new.studies} if new else {}
    out = []
    for rid in sorted(set(od) | set(nd)):
        if rid not in nd:
            out.append(StudyChange(rid, StudyChangeKind.REMOVED))
        elif rid not in od:
            out.append(StudyChange(rid, StudyChangeKind.ADDED))
        else:
            o, n = od[rid], nd[rid]
            of, nf = dict(o.registry), dict(n.registry)
            pairs = [(c, of[c], nf[c]) for c in vocab.CHANGE_FIELDS if c in of and c in nf]
            pairs += [("yi", o.yi, n.yi), ("vi", o.vi, n.vi)]
            moved = tuple(FieldChange(f, a, b) for f, a, b in pairs if not _same(a, b))
            if moved:
                out.append(StudyChange(rid, StudyChangeKind.CHANGED, moved))
    return tuple(out)


def _number_changes(old: AnalysisSnapshot, new: AnalysisSnapshot) -> tuple[FieldChange, ...]:
    """k and the lead result's fields that moved (a lead that appears or goes: its fields from/to None)."""
    out = [FieldChange("k", old.k, new.k)] if old.k != new.k else []
    for f in LEAD_FIELDS:
        a = getattr(old.lead, f) if old.lead else None
        b = getattr(new.lead, f) if new.lead else None
        if not _same(a, b):
            out.append(FieldChange(f, a, b))
    return tuple(out)


def _null(measure: str) -> float | None:
    """The no-effect value on the analysis scale (None where the measure has none)."""
    m = vocab.measure(measure)
    if m.null is None:
        return None
    return math.log(m.null) if m.log_scale else float(m.null)


def _crosses(lo: float | None, hi: float | None, null: float | None) -> bool | None:
    if lo is None or hi is None or null is None:
        return None
    return lo <= null <= hi


def _side(x: float | None, ref: float | None) -> int | None:
    """-1, 0 or +1: where ``x`` lies from ``ref`` (None when either is unknown)."""
    if x is None or ref is None:
        return None
    return (x > ref) - (x < ref)


def _interval_changes(o: AnalysisSnapshot, n: AnalysisSnapshot) -> list[ConclusionChange]:
    """CI and PI crossing the null, significance at each build's level, direction of the estimate."""
    out = []
    lo, ln, null_o, null_n = o.lead, n.lead, _null(o.measure), _null(n.measure)
    ref = vocab.measure(n.measure).null
    for lower, upper, now, no_longer in (("ci_lower", "ci_upper", Change.CI_NOW_CROSSES_NULL,
                                          Change.CI_NO_LONGER_CROSSES_NULL),
                                         ("pi_lower", "pi_upper", Change.PI_NOW_CROSSES_NULL,
                                          Change.PI_NO_LONGER_CROSSES_NULL)):
        was = _crosses(getattr(lo, lower), getattr(lo, upper), null_o)
        is_ = _crosses(getattr(ln, lower), getattr(ln, upper), null_n)
        if was is not None and is_ is not None and was != is_:
            out.append(ConclusionChange(now if is_ else no_longer, (getattr(lo, lower), getattr(lo, upper)),
                                        (getattr(ln, lower), getattr(ln, upper)), ref))
    if lo.pvalue is not None and ln.pvalue is not None:
        was_sig, is_sig = lo.pvalue < 1 - o.level, ln.pvalue < 1 - n.level
        if was_sig != is_sig:
            out.append(ConclusionChange(Change.NOW_SIGNIFICANT if is_sig else Change.NO_LONGER_SIGNIFICANT,
                                        lo.pvalue, ln.pvalue))
    was_side, is_side = _side(lo.estimate, null_o), _side(ln.estimate, null_n)
    if was_side and is_side and was_side != is_side:
        out.append(ConclusionChange(Change.DIRECTION_CHANGED, lo.estimate, ln.estimate, ref))
    return out


def _threshold_change(o: AnalysisSnapshot, n: AnalysisSnapshot, threshold: float | None) -> list[ConclusionChange]:
    """The natural-scale estimate moved to the other side of a threshold the plan set."""
    if threshold is None or o.lead is None or n.lead is None:
        return []
    was = _side(vocab.to_natural(o.measure, o.lead.estimate), threshold)
    is_ = _side(vocab.to_natural(n.measure, n.lead.estimate), threshold)
    if was is None or is_ is None or was == is_:
        return []
    return [ConclusionChange(Change.THRESHOLD_CROSSED, o.lead.estimate, n.lead.estimate, threshold)]


def _conclusion_changes(o: AnalysisSnapshot, n: AnalysisSnapshot, threshold: float | None
                        ) -> tuple[ConclusionChange, ...]:
    out = []
    if o.headline is not n.headline:
        out.append(ConclusionChange(Change.HEADLINE_CHANGED, o.headline.value, n.headline.value))
    if o.settings != n.settings:
        out.append(ConclusionChange(Change.SETTINGS_CHANGED, o.settings, n.settings))
    if o.lead is not None and n.lead is not None:
        out += _interval_changes(o, n)
    out += _threshold_change(o, n, threshold)
    out += [ConclusionChange(Change.CAVEAT_ADDED, None, c) for c in sorted(set(n.caveats) - set(o.caveats))]
    out += [ConclusionChange(Change.CAVEAT_REMOVED, c, None) for c in sorted(set(o.caveats) - set(n.caveats))]
    return tuple(out)


def _analysis_change(o: AnalysisSnapshot | None, n: AnalysisSnapshot | None,
                     threshold: float | None) -> AnalysisChange:
    aid = (n or o).id
    if o is None or n is None:
        code = Change.ANALYSIS_ADDED if o is None else Change.ANALYSIS_REMOVED
        return AnalysisChange(aid, o, n, _study_changes(o, n), (), (ConclusionChange(code),))
    return AnalysisChange(aid, o, n, _study_changes(o, n), _number_changes(o, n),
                          _conclusion_changes(o, n, threshold))


def compare(old: Snapshot, new: Snapshot, *, thresholds: Mapping[str, float] | None = None) -> Changelog:
    """The changelog from build ``old`` to build ``new``.

    Parameters
    ----------
    old, new : Snapshot
    thresholds : mapping of analysis id -> float, optional
        A decision threshold per analysis on the natural scale (e.g. HR 0.8); crossing it is
        :attr:`vocab.Change.THRESHOLD_CROSSED`. Plans do not set one yet.

    Returns
    -------
    Changelog
        Changed analyses by id; an empty ``analyses`` when nothing changed.
    """
    thresholds = thresholds or {}
    ids = sorted({a.id for a in old.analyses} | {a.id for a in new.analyses})
    changes = (_analysis_change(old.get(i), new.get(i), thresholds.get(i)) for i in ids)
    return Changelog(Baseline.PREVIOUS, tuple(c for c in changes if c.changed),
                     (old.registry_sha256, old.plan_sha256), (new.registry_sha256, new.plan_sha256), old)


def since_previous_build(report_dir: str | Path, new: Snapshot, *,
                         thresholds: Mapping[str, float] | None = None) -> Changelog:
    """The changelog of a build about to replace ``report_dir`` (read before the swap).

    No previous build (no ``index.html`` there): :attr:`Baseline.NONE`; one whose pages cannot
    be read: :attr:`Baseline.UNREADABLE` (the new build goes ahead; nothing is compared).

    A rebuild from the same registry and plan (``--force``, a new version of this package) does
    not wipe out what the last change of the inputs changed: when the previous build had these
    inputs and its ``changes.json`` holds the snapshot it was compared with, this build is compared
    with that snapshot again (``carried``). Otherwise it is compared with the previous build.
    """
    report_dir = Path(report_dir)
    shas = (new.registry_sha256, new.plan_sha256)
    if not (report_dir / "index.html").is_file():
        return Changelog(Baseline.NONE, new_shas=shas)
    try:
        old = snapshot_from_reports(report_dir)
    except (OSError, ValueError):
        return Changelog(Baseline.UNREADABLE, new_shas=shas)
    earlier = _carried_baseline(report_dir, shas)
    if earlier is not None:
        return dataclasses.replace(compare(earlier, new, thresholds=thresholds), carried=True)
    return compare(old, new, thresholds=thresholds)


def _carried_baseline(report_dir: Path, shas: tuple[str, str]) -> Snapshot | None:
    """The snapshot the previous build was compared with, when that build had inputs ``shas``
    and changed something (None otherwise, or when its ``changes.json`` cannot be read)."""
    try:
        prev = json.loads((report_dir / CHANGES_FILE).read_text(encoding="utf-8"))
        same = (prev["new"]["registry_sha256"], prev["new"]["plan_sha256"]) == shas and all(shas)
        kept = prev.get("baseline_snapshot")
        return Snapshot.from_dict(kept) if same and kept else None
    except (OSError, KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# the cumulative evidence with this build's changes (issue #17, item 3)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CumulativeStepChange:
    """One study's step of the cumulative meta-analysis before and now (None where the study was
    not in that build's analysis), and what this build changed about the study (None: nothing)."""

    row_id: str
    year: int
    old: CumulativePoint | None
    new: CumulativePoint | None
    change: StudyChangeKind | None

    @property
    def moved(self) -> bool:
        """The pooled estimate or CI at this step changed (or the step appeared or went)."""
        if self.old is None or self.new is None:
            return True
        return not all(_same(getattr(self.old, f), getattr(self.new, f)) for f in ("estimate", "ci_lower", "ci_upper"))

    def to_dict(self) -> dict[str, Any]:
        def point(p):
            return None if p is None else {"estimate": p.estimate, "ci_lower": p.ci_lower, "ci_upper": p.ci_upper}
        return {"row_id": self.row_id, "year": self.year, "old": point(self.old), "new": point(self.new),
                "change": self.change.value if self.change else None, "moved": self.moved}


def cumulative_changes(ac: AnalysisChange) -> tuple[CumulativeStepChange, ...]:
    """The cumulative path (publication order) of a changed analysis in both builds, step by step,
    each study marked with this build's change; () when neither build ran a cumulative analysis.

    Steps are paired by the study added at each: a study added or corrected early moves every
    later step, which is how a reader sees which registry change moved the pooled estimate.
    """
    old = {p.row_id: (i, p) for i, p in enumerate(ac.old.cumulative)} if ac.old else {}
    new = {p.row_id: (i, p) for i, p in enumerate(ac.new.cumulative)} if ac.new else {}
    kinds = {sc.row_id: sc.kind for sc in ac.studies}

    def order(rid):
        i, p = new[rid] if rid in new else old[rid]
        return (p.year, rid not in new, i)

    return tuple(CumulativeStepChange(rid, (new.get(rid) or old[rid])[1].year,
                                      old[rid][1] if rid in old else None, new[rid][1] if rid in new else None,
                                      kinds.get(rid)) for rid in sorted(set(old) | set(new), key=order))
