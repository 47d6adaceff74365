"""The analysis plan (``trials/analyses.toml``): which registry rows are pooled, how, and why.

The plan is an edge file like the registry: reviewers edit it, and every problem is
reported at once as ``PATH:LINE:COLUMN: error|warning: message (hint)``.

``load_plan(path, registry) -> Plan`` raises :class:`~metaanalysis.problems.ProblemError`
with every problem when there is at least one error; ``validate_plan(path, registry)``
returns the problems and never raises for data problems (``metaanalysis validate --plan``).

Row selection of an ``[[analysis]]`` (in this order; the first rule that applies decides):

1. ``exclude = [{row = ..., reason = ...}]`` removes a row (the reason is shown).
2. ``include = [{row = ..., reason = ...}]`` takes a row even when it is unconfirmed,
   ``use_for_pooling = "no"`` or outside the filters (the reason is shown).
3. Rows of another ``measure`` are never pooled (they are listed with the reason).
4. ``select.<column> = [...]`` filters on ``design``, ``comparator``, ``population``,
   ``tumour_type``, ``setting``, ``trial_id`` (exact values, case-insensitive).
5. Rows with ``status != "confirmed"`` or ``use_for_pooling = "no"`` are left out.

Published syntheses (registry design ``published synthesis``) are never selected and refused in
``include`` and ``swap``; ``published = ["ROW", ...]`` shows them beside the result as checks.

One clinical question per primary analysis: the pooled rows share ``setting``, ``comparator`` and
``regimen`` (:data:`~metaanalysis.vocab.QUESTION_COLUMNS`) and hold no post hoc subgroup or
observational result (errors located at the include that brought the row in, else at
``endpoint``); ``exploratory = true`` with an ``exploratory_reason`` exempts an analysis, which is
then labelled and left out of the primary results.

The plan refuses (errors) an analysis that would pool two rows of one ``patient_set``
(the same patients counted twice), one that mixes measures, one left with no rows, and
one of more than :data:`~metaanalysis.vocab.MAX_K_REFITS` (1000) studies with the
``leave-one-out`` or ``cumulative`` sensitivity analyses (their memory and output grow
with k²). A single row is shown as a single-study result without pooling. Ids may not be
``index``, ``results`` or a Windows device name (``con``, ``aux``, ``nul``, ``com1``, ...);
arrays and inline tables may nest at most 16 levels; ``title`` and ``description`` are strings.

``method = "MH"`` or ``"Peto"`` pools each row's 2x2 table (``events_int``, ``n_int``, ``events_ctl``,
``n_ctl``) with :func:`metaanalysis.pool_mh` / :func:`metaanalysis.pool_peto` instead of (yi, vi): every
pooled row needs all four counts, Peto takes measure OR only (MH: OR, RR, RD), the test is z, and
``subgroup``, ``swap``, ``tau_prior``/``tau_scale`` and a ``headline`` other than "common" are refused.

``coverage = false`` (in ``[defaults]`` or one ``[[analysis]]``; default true) turns off the
design-specific coverage simulation (:mod:`metaanalysis.coverage`, about a second of CPU per pooled
random-effects analysis): the page then says it was not run and no under-coverage check was made.

``[analysis.grade]`` (optional, below its ``[[analysis]]``) feeds the GRADE summary of findings
(:mod:`metaanalysis.grade`): ``baseline_risk = [{risk, label, source}]`` (risk a proportion in
(0, 1) at the time point the label names, with where it was read), ``indirectness`` and
``publication_bias`` (``"not serious"``, ``"serious"``, ``"very serious"`` or ``"not assessed"``),
each with its ``indirectness_reason`` / ``publication_bias_reason``; ``threshold`` (a
natural-scale effect whose crossing by the CI suggests imprecision) and ``ois_ratio`` (the
hazard ratio the optimal information size is computed for; default 0.75).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cells import text as _s
from .problems import Problem, ProblemError, ProblemSink, has_errors, suggest
from .table import identity_key, read_file_bytes
from .vocab import (BINARY_METHOD_MEASURES, BINARY_METHODS, DECLARED_DIRECTIONS, DESIGN_FLAGS, HEADLINE_CHOICES,
                    MAX_K_REFITS, MEASURES, METHODS, POOLABLE_MEASURES, PREDICTION_INTERVALS, PUBLISHED_SYNTHESIS,
                    QUADRATIC_SENSITIVITY, QUESTION_COLUMNS, TAU_PRIORS, TESTS, StudyFlag, as_level,
                    canonical_binary_method, canonical_method, canonical_pi, canonical_tau_prior, canonical_test,
                    default_tau_prior)

__all__ = [
    "Plan", "Analysis", "Narrative", "Combination", "DeclaredDirection", "Settings", "Swap", "RowChoice",
    "load_plan", "validate_plan", "SENSITIVITY_OPTIONS", "SELECT_COLUMNS", "DEFAULT_SETTINGS",
]

#: Settings used when neither ``[defaults]`` nor the analysis sets them: REML for tau², the
#: Knapp-Hartung interval with the ad hoc floor (``test = "adhoc"``: HKSJ's coverage with few
#: studies, never narrower than the Wald z interval; Röver et al. 2015, doi:10.1186/s12874-015-0091-1;
#: Jackson et al. 2017, doi:10.1002/sim.7411; Bender et al. 2018, doi:10.1002/jrsm.1319) for the
#: CI of the mean, prediction interval shown.
DEFAULT_SETTINGS = {"method": "REML", "test": "adhoc", "pi": "metafor", "level": 0.95}

SENSITIVITY_OPTIONS: dict[str, str] = {
    "leave-one-out": "refit with each study left out in turn",
    "cumulative": "cumulative meta-analysis by publication year",
    "estimators": "every tau² estimator with z and HKSJ tests side by side",
    "exclude-derived": "without studies whose SE was derived from a p-value",
    "exclude-post-hoc": "without post hoc subgroup and observational results",
    "exclude-unconfirmed": "without results whose numbers are unconfirmed",
    "common-effect": "common-effect (fixed-effect) model",
}
#: Registry columns an analysis may filter on (``select.<column> = [values]``).
SELECT_COLUMNS = ("design", "comparator", "population", "tumour_type", "setting", "trial_id")


def _canonical_any_method(value: str) -> str:
    """A τ² estimator or "FE" (inverse-variance pooling of yi, vi), or "MH" / "Peto" (2x2 counts)."""
    try:
        return canonical_method(value)
    except ValueError:
        return canonical_binary_method(value)


#: Settings keys -> (canonical code of a case-insensitive name, the vocabulary table).
_CODES = {"method": (_canonical_any_method, {**METHODS, **BINARY_METHODS}), "test": (canonical_test, TESTS),
          "pi": (canonical_pi, PREDICTION_INTERVALS)}
#: Registry columns a Mantel-Haenszel or Peto analysis pools (the 2x2 table of each row).
COUNT_COLUMNS = ("events_int", "n_int", "events_ctl", "n_ctl")
#: Plan options a Mantel-Haenszel or Peto analysis cannot take (they refit inverse-variance models).
_NOT_WITH_BINARY = ("subgroup", "swap", "tau_prior", "tau_scale")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_RESERVED_IDS = {"index", "results", "readme", "style"}
#: Device names Windows reserves in every directory, with any extension ("con.html" opens the console).
_NOT_IDS = "not index, results, nor a Windows device name (con, aux, nul, prn, com1, lpt1, ...)"
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}

_TOP_KEYS = ("title", "description", "defaults", "analysis", "narrative")
_DEFAULT_KEYS = ("method", "test", "pi", "level", "sensitivity", "favours", "tau_prior", "tau_scale", "coverage")
_ANALYSIS_KEYS = ("id", "title", "endpoint", "measure", "description", "select", "include",
                  "exclude", "method", "test", "pi", "level", "subgroup", "sensitivity", "swap",
                  "favours", "headline", "headline_reason", "tau_prior", "tau_scale", "grade", "exploratory",
                  "exploratory_reason", "published", "coverage")
_GRADE_KEYS = ("baseline_risk", "indirectness", "indirectness_reason", "publication_bias",
               "publication_bias_reason", "threshold", "ois_ratio")
_BASELINE_KEYS = ("risk", "label", "source")
_CHOICE_KEYS = ("row", "reason")
_SWAP_KEYS = ("replace", "with", "reason")
_NARRATIVE_KEYS = ("id", "title", "rows", "reason", "text", "combine", "directions")
_DIRECTION_KEYS = ("row", "points_to", "source")
_COMBINE_KEYS = ("label", "rows", "direction", "independent", "note")


# --------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """Pooling settings of one analysis (``pool(..., method=, test=, level=, pi=)``)."""

    method: str = DEFAULT_SETTINGS["method"]
    test: str = DEFAULT_SETTINGS["test"]
    pi: str = DEFAULT_SETTINGS["pi"]
    level: float = DEFAULT_SETTINGS["level"]
    tau_prior: str = ""                    # Bayesian analysis: "" = the measure's default (vocab)
    tau_scale: tuple[float, ...] = ()


@dataclass(frozen=True)
class RowChoice:
    """A registry row and why the plan took it or left it out."""

    row_id: str
    reason: str
    explicit: bool = False     # named in include/exclude (the reason is the reviewer's)


@dataclass(frozen=True)
class Swap:
    """Sensitivity analysis: replace one report of a trial by another."""

    replace: str
    with_: str
    reason: str


@dataclass(frozen=True)
class Analysis:
    """One analysis of the plan, with its rows resolved against the registry."""

    id: str
    title: str
    endpoint: str
    measure: str
    description: str
    settings: Settings
    rows: tuple[str, ...]                  # row ids to pool, in registry order
    included: tuple[RowChoice, ...]        # explicit includes (subset of rows)
    left_out: tuple[RowChoice, ...]        # rows of this endpoint not pooled, with why
    missing: tuple[str, ...]               # status missing/unconfirmed rows of the question, not pooled
    select: dict[str, tuple[str, ...]]
    subgroup: tuple[str, ...]
    sensitivity: tuple[str, ...]
    swaps: tuple[Swap, ...]
    favours: tuple[str, str]
    line: int
    headline: str = ""                     # "random" | "common" | "none"; "" = the rule by k (vocab)
    headline_reason: str = ""              # the reviewer's reason for the plan's headline choice
    grade: Any = None                      # metaanalysis.grade.GradeSettings of [analysis.grade]
    exploratory: bool = False              # labelled exploratory; never among the primary results
    exploratory_reason: str = ""           # the reviewer's reason (required with exploratory = true)
    published: tuple[str, ...] = ()        # published syntheses shown beside the result as checks
    coverage: bool = True                  # simulate the design-specific coverage (``coverage = false``: not)


@dataclass(frozen=True)
class Combination:
    """A p-value combination (Fisher and Stouffer) over independent non-poolable results."""

    label: str
    rows: tuple[str, ...]
    direction: str
    independent: str
    note: str


@dataclass(frozen=True)
class DeclaredDirection:
    """The direction of a result without an effect estimate (a bare p-value), as read in its source."""

    row: str
    direction: str          # a value of DECLARED_DIRECTIONS
    source: str             # where and how the source says so


@dataclass(frozen=True)
class Narrative:
    """Evidence shown but not pooled, with the reason; optional p-value combinations and the
    declared directions of results that have no estimate."""

    id: str
    title: str
    rows: tuple[str, ...]
    reason: str
    text: str
    combine: tuple[Combination, ...]
    line: int
    directions: tuple[DeclaredDirection, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A checked analysis plan.

    Attributes
    ----------
    path : str
    sha256 : str
        SHA-256 of the plan file's bytes (hex).
    title, description : str
    defaults : Settings
    analyses : tuple of Analysis
    narratives : tuple of Narrative
    problems : tuple of Problem
        Warnings only (a Plan never holds errors).
    """

    path: str
    sha256: str
    title: str
    description: str
    defaults: Settings
    analyses: tuple[Analysis, ...]
    narratives: tuple[Narrative, ...]
    problems: tuple[Problem, ...] = field(default=())


# --------------------------------------------------------------------------------------
# Locating keys in the TOML text (tomllib gives values, not positions)
# --------------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*(\[\[|\[)\s*([^\]\[#]+?)\s*(\]\]|\])\s*(?:#.*)?$")
_KEY_RE = re.compile(r"^(\s*)((?:[A-Za-z0-9_-]+|\"[^\"]*\")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"))*)\s*=")


def _split_dotted(s: str) -> list[str]:
    return [p.strip().strip('"') for p in s.split(".")]


class _Locator:
    """Map TOML paths such as ``("analysis", 2, "select", "design")`` to (line, column)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.pos: dict[tuple, tuple[int, int]] = {}
        self.blocks: dict[tuple, tuple[int, int]] = {}   # ("analysis", i) -> (first, last) line
        counts: dict[tuple, int] = {}
        cur: tuple = ()
        top_starts: list[tuple[tuple, int]] = []
        in_multiline = False
        for n, raw in enumerate(self.lines, start=1):
            # skip the inside of multi-line strings (description = """ ... """)
            if in_multiline:
                if raw.count('"""') % 2 == 1:
                    in_multiline = False
                continue
            if raw.count('"""') % 2 == 1:
                in_multiline = True
            m = _HEADER_RE.match(raw)
            if m and not raw.lstrip().startswith("#"):
                parts = _split_dotted(m.group(2))
                is_array = m.group(1) == "[["
                path: list = []
                # resolve each prefix to the latest index of an array of tables
                for j, p in enumerate(parts):
                    path.append(p)
                    key = tuple(path)
                    last = j == len(parts) - 1
                    if last and is_array:
                        counts[key] = counts.get(key, -1) + 1
                        path.append(counts[key])
                    elif key in counts:
                        path.append(counts[key])
                cur = tuple(path)
                col = raw.index("[") + 1
                self.pos.setdefault(cur, (n, col))
                if len(parts) == 1:
                    top_starts.append((cur, n))
                continue
            km = _KEY_RE.match(raw)
            if km and not raw.lstrip().startswith("#"):
                keys = _split_dotted(km.group(2))
                col = len(km.group(1)) + 1
                for j in range(1, len(keys) + 1):
                    self.pos.setdefault(cur + tuple(keys[:j]), (n, col))
        for i, (p, start) in enumerate(top_starts):
            end = top_starts[i + 1][1] - 1 if i + 1 < len(top_starts) else len(self.lines)
            self.blocks[p] = (start, end)

    def at(self, *path) -> tuple[int, int]:
        """Position of the key at ``path``, else of its nearest located parent, else (1, 0)."""
        p = tuple(path)
        while p:
            if p in self.pos:
                return self.pos[p]
            p = p[:-1]
        return (1, 0)

    def find(self, block: tuple, needle: str, after: tuple | None = None) -> tuple[int, int]:
        """First occurrence of ``needle`` (e.g. a quoted row id) inside a top-level block."""
        first, last = self.blocks.get(block, (1, len(self.lines)))
        if after is not None and after in self.pos:
            first = max(first, self.pos[after][0])
        for n in range(first, last + 1):
            line = self.lines[n - 1]
            c = line.find(needle)
            if c >= 0 and not line.lstrip().startswith("#"):
                return n, c + 1
        return self.at(*block) if after is None else self.at(*after)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

#: Why a row of the question is left out, by its registry status (trials/README.md, Rules, status).
_NOT_CONFIRMED_WHY: dict[str, str] = {
    "missing": "result not extracted (status missing)",
    "secondary": "numbers read only in a secondary source (status secondary); include it with a reason to pool it",
    "unconfirmed": "numbers unconfirmed (status unconfirmed); include it with a reason to pool it",
}


def _norm(s: str) -> str:
    """A select value or cell as compared: spaces collapsed, then :func:`~metaanalysis.table.identity_key`."""
    return identity_key(" ".join(s.split()))


class _Checker:
    def __init__(self, path: str, text: str, registry):
        self.path = path
        self.loc = _Locator(text)
        self.problems: list[Problem] = []
        self.reg = registry
        self.rows: dict[str, dict[str, str]] = {}
        self.order: dict[str, int] = {}
        for i, rec in enumerate(registry.records):  # the typed rows, no DataFrame: validate starts without pandas
            rid = _s(rec.get("row_id"))
            self.rows[rid] = {k: _s(v) for k, v in rec.items()}
            self.order[rid] = i
        self.columns = [f.name for f in registry.schema]
        self.endpoints = self._schema_enum("endpoint") or sorted({r["endpoint"] for r in self.rows.values()})

    def _schema_enum(self, name: str) -> list[str]:
        """The enumeration of a registry column in the schema the registry was checked against."""
        for f in getattr(self.reg, "schema", ()):
            if f.name == name and f.enum:
                return list(f.enum)
        return []  # no schema at hand: the caller falls back to the registry's values

    # -- problem helpers -----------------------------------------------------------------
    def err(self, where: tuple[int, int], msg: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, where[0], where[1], "error", msg, hint))

    def warn(self, where: tuple[int, int], msg: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, where[0], where[1], "warning", msg, hint))

    def keys(self, table: dict, allowed: tuple[str, ...], path: tuple, what: str) -> None:
        for k in table:
            if k not in allowed:
                self.err(self.loc.at(*path, k), f"unknown key {k!r} in {what}", suggest(k, allowed))

    def string(self, table: dict, key: str, path: tuple, what: str, required=True) -> str | None:
        if key not in table:
            if required:
                self.err(self.loc.at(*path), f"{what} has no {key!r}", f"add {key} = \"...\"")
            return None
        v = table[key]
        if not isinstance(v, str) or not v.strip():
            self.err(self.loc.at(*path, key), f"{key!r} must be a non-empty string, got {v!r}")
            return None
        return v.strip()

    def strings(self, table: dict, key: str, path: tuple, *, allow_single=True) -> list[str] | None:
        if key not in table:
            return None
        v = table[key]
        if isinstance(v, str) and allow_single:
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            self.err(self.loc.at(*path, key), f"{key!r} must be a list of non-empty strings, got {v!r}",
                     f'e.g. {key} = ["..."]')
            return None
        return [x.strip() for x in v]

    # -- settings ------------------------------------------------------------------------
    def settings(self, table: dict, path: tuple, base: dict) -> dict:
        out = dict(base)
        for key, (canonical, table_) in _CODES.items():
            if key in table:
                v = table[key]
                try:
                    if not isinstance(v, str):
                        raise ValueError(v)
                    out[key] = canonical(v)
                except ValueError:  # method, test and pi names are matched case-insensitively
                    self.err(self.loc.at(*path, key), f"{key} = {v!r} is not supported",
                             suggest(str(v), tuple(table_)))
        self.tau_prior(table, path, out)
        if "level" in table:
            v = table["level"]
            try:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(v)
                out["level"] = as_level(v)  # the one level rule: 0.95 or 95
            except ValueError:
                self.err(self.loc.at(*path, "level"), f"level = {v!r} must be a confidence level",
                         "e.g. level = 0.95 or 95")
        return out

    def tau_prior(self, table: dict, path: tuple, out: dict) -> None:
        """``tau_prior`` (vocab.TAU_PRIORS, any case) and its ``tau_scale``: one positive number,
        or [m, s] (mean and SD of log τ²) for "lognormal"; both or neither."""
        if "tau_prior" not in table and "tau_scale" not in table:
            return
        prior, scale = table.get("tau_prior"), table.get("tau_scale")
        try:
            code = canonical_tau_prior(prior) if isinstance(prior, str) else None
        except ValueError:
            code = None
        if code is None:
            self.err(self.loc.at(*path, "tau_prior" if "tau_prior" in table else "tau_scale"),
                     f"tau_prior = {prior!r} is not supported", suggest(str(prior), tuple(TAU_PRIORS)))
            return
        vals = scale if isinstance(scale, list) else [scale]
        want = 2 if code == "lognormal" else 1
        ok = len(vals) == want and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if not ok or (want == 1 and not vals[0] > 0) or (want == 2 and not vals[1] > 0):
            self.err(self.loc.at(*path, "tau_scale" if "tau_scale" in table else "tau_prior"),
                     f"tau_scale = {scale!r} does not fit tau_prior = {code!r}",
                     "lognormal: tau_scale = [m, s] of log tau^2, e.g. [-2.56, 1.74]; otherwise one "
                     "number > 0, e.g. tau_scale = 0.5")
            return
        out["tau_prior"], out["tau_scale"] = code, tuple(float(v) for v in vals)

    def sensitivity(self, table: dict, path: tuple, base: tuple[str, ...]) -> tuple[str, ...]:
        vals = self.strings(table, "sensitivity", path)
        if vals is None:
            return base
        out = []
        for v in vals:
            if v not in SENSITIVITY_OPTIONS:
                self.err(self.loc.find(path[:2], f'"{v}"', path + ("sensitivity",)),
                         f"unknown sensitivity option {v!r}", suggest(v, SENSITIVITY_OPTIONS))
            elif v not in out:
                out.append(v)
        return tuple(out)

    def favours(self, table: dict, path: tuple, base: tuple[str, str]) -> tuple[str, str]:
        if "favours" not in table:
            return base
        v = table["favours"]
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) and x.strip() for x in v):
            return (v[0].strip(), v[1].strip())
        self.err(self.loc.at(*path, "favours"), f"favours must be two strings, got {v!r}",
                 'e.g. favours = ["denosumab", "placebo"]')
        return base

    def coverage(self, table: dict, path: tuple, base: bool) -> bool:
        """``coverage = true | false``: simulate the design-specific coverage (``base`` when absent)."""
        if "coverage" not in table:
            return base
        v = table["coverage"]
        if not isinstance(v, bool):
            self.err(self.loc.at(*path, "coverage"), f"coverage = {v!r} must be true or false",
                     "coverage = false turns the design-specific coverage simulation off (default true)")
            return base
        return v

    def headline(self, table: dict, path: tuple) -> tuple[str, str]:
        """``headline`` (one of vocab.HEADLINE_CHOICES) and the ``headline_reason`` it needs."""
        v, reason = table.get("headline"), table.get("headline_reason", "")
        if not isinstance(reason, str):
            self.err(self.loc.at(*path, "headline_reason"), "headline_reason must be a string")
            reason = ""
        if v is None:
            if reason.strip():
                self.err(self.loc.at(*path, "headline_reason"), "headline_reason without headline",
                         f"add headline = one of {', '.join(HEADLINE_CHOICES)}, or remove the reason")
            return "", ""
        if not isinstance(v, str) or v.strip().lower() not in HEADLINE_CHOICES:
            self.err(self.loc.at(*path, "headline"), f"headline = {v!r} is not supported",
                     suggest(str(v), tuple(HEADLINE_CHOICES)))
            return "", ""
        if not reason.strip():
            self.err(self.loc.at(*path, "headline"), "headline needs a headline_reason",
                     'say why, e.g. headline_reason = "same design, dose and population: one true effect"')
        return v.strip().lower(), " ".join(reason.split())

    def grade(self, t: dict, path: tuple):
        """``[analysis.grade]``: judged GRADE domains with reasons, baseline risks with sources,
        the imprecision threshold and the OIS effect (:mod:`metaanalysis.grade`); None when absent."""
        from .grade import BaselineRisk, GradeSettings

        g = t.get("grade")
        if g is None:
            return None
        gpath = path + ("grade",)
        if not isinstance(g, dict):
            self.err(self.loc.at(*gpath), "grade must be a table", "write [analysis.grade] below the [[analysis]]")
            return None
        self.keys(g, _GRADE_KEYS, gpath, "[analysis.grade]")
        out: dict[str, Any] = {}
        for key in ("indirectness", "publication_bias"):
            out.update(self.grade_judgement(g, key, gpath))
        for key in ("threshold", "ois_ratio"):
            v = g.get(key)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1e6 or v == 1:
                    self.err(self.loc.at(*gpath, key), f"{key} = {v!r} must be a positive ratio other than 1",
                             f"a natural-scale effect, e.g. {key} = 0.8")
                else:
                    out[key] = float(v)
        risks = g.get("baseline_risk", [])
        risks = [risks] if isinstance(risks, dict) else risks
        if not isinstance(risks, list):
            self.err(self.loc.at(*gpath, "baseline_risk"), "baseline_risk must be a list of {risk, label, source}")
            risks = []
        good = []
        for r in risks:
            where = self.loc.at(*gpath, "baseline_risk")
            ok = isinstance(r, dict) and set(r) <= set(_BASELINE_KEYS) and \
                isinstance(r.get("risk"), (int, float)) and not isinstance(r.get("risk"), bool) and \
                0 < r["risk"] < 1 and all(isinstance(r.get(k), str) and r[k].strip() for k in ("label", "source"))
            if not ok:
                self.err(where, f"baseline_risk entry {r!r} needs risk (a proportion in (0, 1)), label and source",
                         'e.g. {risk = 0.10, label = "10-year risk, ...", source = "where the risk was read"}')
            else:
                good.append(BaselineRisk(float(r["risk"]), r["label"].strip(), r["source"].strip()))
        return GradeSettings(baseline_risk=tuple(good), **out)

    def grade_judgement(self, g: dict, key: str, gpath: tuple) -> dict[str, Any]:
        """A judged GRADE domain (vocab.GradeRating) and the ``<key>_reason`` it needs."""
        from .vocab import GradeRating

        v, reason = g.get(key), g.get(f"{key}_reason")
        if v is None:
            if reason is not None:
                self.err(self.loc.at(*gpath, f"{key}_reason"), f"{key}_reason without {key}")
            return {}
        ratings = {r.value: r for r in GradeRating}
        if not isinstance(v, str) or " ".join(v.split()).lower() not in ratings:
            self.err(self.loc.at(*gpath, key), f"{key} = {v!r} is not a GRADE rating", suggest(str(v), ratings, quote=True))
            return {}
        if not isinstance(reason, str) or not reason.strip():
            self.err(self.loc.at(*gpath, key), f"{key} needs a {key}_reason", "say why, in words a panel can check")
            return {}
        return {key: ratings[" ".join(v.split()).lower()], f"{key}_reason": " ".join(reason.split())}

    # -- rows ----------------------------------------------------------------------------
    def row_ref(self, rid: Any, where: tuple[int, int]) -> str | None:
        if not isinstance(rid, str) or not rid.strip():
            self.err(where, f"row must be a registry row_id string, got {rid!r}")
            return None
        rid = rid.strip()
        if rid not in self.rows:
            self.err(where, f"unknown registry row {rid!r}", suggest(rid, self.rows))
            return None
        return rid

    def choices(self, table: dict, key: str, path: tuple) -> list[tuple[str, str, tuple[int, int]]]:
        if key not in table:
            return []
        items = table[key]
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            self.err(self.loc.at(*path, key), f"{key} must be a list of {{row = \"...\", reason = \"...\"}}")
            return []
        out = []
        for j, it in enumerate(items):
            ipath = path + (key, j)
            if isinstance(it, str):
                where = self.loc.find(path[:2], f'"{it}"', path + (key,))
                self.err(where, f"{key} entry {it!r} has no reason",
                         f'write {{row = "{it}", reason = "why"}}: every {key} needs a reason')
                continue
            if not isinstance(it, dict):
                self.err(self.loc.at(*path, key), f"{key} entries must be tables {{row, reason}}, got {it!r}")
                continue
            rid = it.get("row")
            where = self.loc.find(path[:2], f'"{rid}"', path + (key,)) if isinstance(rid, str) \
                else self.loc.at(*ipath)
            if ipath in self.loc.pos and isinstance(rid, str):
                where = self.loc.at(*ipath, "row")
            for k in it:
                if k not in _CHOICE_KEYS:
                    self.err(where, f"unknown key {k!r} in {key} entry", suggest(k, _CHOICE_KEYS))
            if "row" not in it:
                self.err(where, f"{key} entry without 'row'", 'write {row = "ROW-ID", reason = "why"}')
                continue
            rid = self.row_ref(rid, where)
            reason = it.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                self.err(where, f"{key} of {it.get('row')!r} has no reason",
                         f"every {key} needs a reason a reviewer can read")
                continue
            if rid is not None:
                out.append((rid, reason.strip(), where))
        return out

    # -- one analysis --------------------------------------------------------------------
    def analysis(self, i: int, t: dict, defaults: dict, dsens: tuple, dfav: tuple, seen: dict, dcov: bool = True):
        path = ("analysis", i)
        here = self.loc.at(*path)
        if not isinstance(t, dict):
            self.err(here, "[[analysis]] must be a table")
            return None
        self.keys(t, _ANALYSIS_KEYS, path, "[[analysis]]")
        aid = self.identifier(t, path, seen, here[0], "lower-case letters, digits and '-', e.g. \"os-placebo\"; " + _NOT_IDS,
                              "ids name the report files and must be unique")
        name = aid or f"analysis #{i + 1}"
        what = f"analysis {name!r}" if aid else name
        title = self.string(t, "title", path, what)
        endpoint = self.endpoint(t, path, what)
        measure = self.measure(t, path, what)
        desc = self.optional_text(t, "description", path, "")
        settings = self.settings(t, path, defaults)
        sens = self.sensitivity(t, path, dsens)
        fav = self.favours(t, path, dfav)
        headline, headline_reason = self.headline(t, path)
        grade = self.grade(t, path)
        if headline == "bayes" and measure is not None and not settings.get("tau_prior") \
                and default_tau_prior(measure) is None:
            self.err(self.loc.at(*path, "headline"), f"headline = \"bayes\" needs a tau prior for {measure}",
                     "set tau_prior and tau_scale (the scale of tau depends on the outcome's unit)")
        select = self.select(t, path)
        subgroup = self.subgroup(t, path)
        includes = self.choices(t, "include", path)
        excludes = self.choices(t, "exclude", path)
        exc_ids = {r for r, _, _ in excludes}
        for rid, _, where in includes:
            if rid in exc_ids:
                self.err(where, f"row {rid!r} is both included and excluded", "keep one of the two")
        if endpoint is None or measure is None:
            return None
        inc_map = self.fitting_includes(includes, excludes, endpoint, measure)
        rows, left, missing = self.resolve_rows(endpoint, measure, select, inc_map,
                                                {rid: reason for rid, reason, _ in excludes})
        self.patients_once(rows, inc_map, path, name)
        exploratory, exploratory_reason = self.exploratory(t, path)
        self.one_question(rows, inc_map, path, name, exploratory)
        published = self.published(t, path, endpoint, measure)
        self.refits_bounded(t, path, name, len(rows), sens)
        if not rows:
            self.err(self.loc.at(*path, "endpoint"),
                     f"analysis {name!r} has no rows to pool (endpoint {endpoint}, measure {measure})",
                     "check select/exclude, or include a row with a reason")
        swaps = self.swaps(t, path, rows, endpoint, measure, name)
        if settings["method"] in BINARY_METHODS:
            self.binary(t, path, name, measure, rows, settings, headline)
        return Analysis(
            id=aid or "", title=title or "", endpoint=endpoint, measure=measure, description=desc.strip(),
            settings=Settings(**settings), rows=tuple(rows),
            included=tuple(RowChoice(r, inc_map[r][0], True) for r in rows if r in inc_map),
            left_out=tuple(left), missing=tuple(missing), select=select, subgroup=subgroup,
            sensitivity=sens, swaps=tuple(swaps), favours=fav, line=here[0], headline=headline,
            headline_reason=headline_reason, grade=grade, exploratory=exploratory,
            exploratory_reason=exploratory_reason, published=published, coverage=self.coverage(t, path, dcov),
        )

    def binary(self, t: dict, path: tuple, name: str, measure: str, rows: list[str], settings: dict,
               headline: str) -> None:
        """Checks of a Mantel-Haenszel or Peto analysis (they pool 2x2 counts, not yi/vi); sets test "z"."""
        method = settings["method"]
        where = self.loc.at(*path, "method") if "method" in t else self.loc.at(*path, "measure")
        ok = BINARY_METHOD_MEASURES[method]
        if measure not in ok:
            self.err(where, f"method {method} pools {' or '.join(ok)}, not {measure} (analysis {name!r})",
                     "Peto's method estimates odds ratios: use measure = \"OR\", or method = \"MH\""
                     if method == "Peto" else "use an inverse-variance method (e.g. method = \"REML\") for this measure")
        for rid in rows:
            gaps = [c for c in COUNT_COLUMNS if not self.rows[rid].get(c)]
            if gaps:
                line = self.rows[rid].get("source_line", "")
                self.err(where, f"method {method} pools 2x2 counts, but row {rid!r} (registry line {line}) has no "
                         f"{', '.join(gaps)} (analysis {name!r})",
                         "fill in events_int, n_int, events_ctl and n_ctl in the registry, exclude the row with a "
                         "reason, or use an inverse-variance method (method = \"REML\")")
        if "test" in t and settings["test"] != "z":
            self.err(self.loc.at(*path, "test"), f"method {method} uses a z test, not test = {t['test']!r}",
                     "remove test from this analysis")
        settings["test"] = "z"       # the defaults' HKSJ test does not apply to MH/Peto
        for key in _NOT_WITH_BINARY:
            if key in t:
                self.err(self.loc.at(*path, key), f"{key} is not available with method {method} (analysis {name!r})",
                         "remove it, or pool with an inverse-variance method (method = \"REML\")")
        if headline and headline != "common":
            self.err(self.loc.at(*path, "headline"), f"method {method} is a common-effect model: headline = "
                     f"{headline!r} does not apply", "remove headline (the page leads with the pooled estimate)")
    def exploratory(self, t: dict, path: tuple) -> tuple[bool, str]:
        """``exploratory = true`` and the ``exploratory_reason`` it needs (both or neither)."""
        v, reason = t.get("exploratory", False), t.get("exploratory_reason")
        if not isinstance(v, bool):
            self.err(self.loc.at(*path, "exploratory"), f"exploratory = {v!r} must be true or false")
            return False, ""
        if reason is not None and (not isinstance(reason, str) or not v):
            self.err(self.loc.at(*path, "exploratory_reason"),
                     "exploratory_reason without exploratory = true" if v is False else
                     "exploratory_reason must be a string")
        if v and not (isinstance(reason, str) and reason.strip()):
            self.err(self.loc.at(*path, "exploratory"), "exploratory = true needs an exploratory_reason",
                     "say what makes it exploratory, e.g. a post hoc subgroup or populations pooled across questions")
            return True, ""
        return v, " ".join(reason.split()) if v else ""

    def one_question(self, rows: list[str], inc_map: dict, path: tuple, name: str, exploratory: bool) -> None:
        """A primary analysis answers one clinical question: its pooled rows share the question
        columns (:data:`vocab.QUESTION_COLUMNS`: setting, comparator, dose regimen) and pool no
        post hoc subgroup or observational result (errors). An analysis declared ``exploratory``
        with its reason is exempt: the page and the index label it, and it is never a primary result."""
        if exploratory:
            return
        hint = ("split it: one analysis per question, and a [[narrative]] showing the questions side by side "
                "without a pooled estimate; or set exploratory = true with an exploratory_reason")

        def where(rids):
            explicit = [r for r in rids if r in inc_map]
            return inc_map[explicit[0]][1] if explicit else self.loc.at(*path, "endpoint")

        for col in QUESTION_COLUMNS:
            groups: dict[str, list[str]] = {}
            for rid in rows:
                groups.setdefault(_norm(self.rows[rid].get(col, "")), []).append(rid)
            if "" in groups and len(rows) > 1:
                self.warn(where(groups[""]), f"analysis {name!r}: {col} is empty for {', '.join(groups[''])}, so "
                          "the one-question rule cannot check it", f"fill in {col} in the registry")
            groups.pop("", None)
            if len(groups) > 1:
                rids = [g[0] for g in groups.values()]
                parts = "; ".join(f"{self.rows[g[0]][col]!r} ({', '.join(g)})" for g in groups.values())
                self.err(where(rids[1:]), f"analysis {name!r} pools different {col} values: {parts}: "
                         "they answer different clinical questions", hint)
        odd = [r for r in rows if DESIGN_FLAGS.get(self.rows[r]["design"]) in (StudyFlag.POST_HOC,
                                                                              StudyFlag.OBSERVATIONAL)]
        if odd:
            self.err(where(odd), f"analysis {name!r} pools {', '.join(odd)} ({self.rows[odd[0]]['design']}): "
                     "a post hoc or observational result is exploratory, never a primary result",
                     "set exploratory = true with an exploratory_reason, or exclude the row with a reason")

    def published(self, t: dict, path: tuple, endpoint: str, measure: str) -> tuple[str, ...]:
        """``published = ["ROW", ...]``: published syntheses (design ``published synthesis``) of
        the same endpoint and measure, shown beside the result as checks, never pooled."""
        out = []
        for rid in self.strings(t, "published", path) or []:
            where = self.loc.find(path, f'"{rid}"', path + ("published",))
            ok = self.row_ref(rid, where)
            if ok is None:
                continue
            r = self.rows[ok]
            if r["design"] != PUBLISHED_SYNTHESIS:
                self.err(where, f"published {ok!r}: its design is {r['design']!r}, not {PUBLISHED_SYNTHESIS!r}",
                         "list only pooled results published by others; pool a trial's own result with include")
            elif (r["endpoint"], r["measure"]) != (endpoint, measure):
                self.err(where, f"published {ok!r} is {r['endpoint']}/{r['measure']}, the analysis is "
                         f"{endpoint}/{measure}", "a check must answer the analysis's endpoint on its measure")
            elif ok not in out:
                out.append(ok)
        return tuple(out)

    def refits_bounded(self, t: dict, path: tuple, name: str, k: int, sens: tuple[str, ...]) -> None:
        """Refuse the per-study refits (:data:`vocab.QUADRATIC_SENSITIVITY`) above
        :data:`vocab.MAX_K_REFITS` studies: their memory and output grow with k²."""
        heavy = [s for s in sens if s in QUADRATIC_SENSITIVITY]
        if heavy and k > MAX_K_REFITS:
            where = self.loc.at(*path, "sensitivity") if "sensitivity" in t else self.loc.at(*path, "endpoint")
            self.err(where, f"analysis {name!r} has {k} studies: {' and '.join(heavy)} refit it once per study, "
                     f"which needs memory growing with k² (at most {MAX_K_REFITS} studies)",
                     "list the sensitivity analyses of this analysis without " + " and ".join(heavy))

    def optional_text(self, t: dict, key: str, path: tuple, default: str) -> str:
        """An optional string key (``title``, ``description``): ``default`` when absent; any
        other type is an error at the key (``title = 5`` is never silently replaced)."""
        v = t.get(key, default)
        if not isinstance(v, str):
            self.err(self.loc.at(*path, key), f"{key} must be a string in double quotes, not {type(v).__name__} {v!r}",
                     f'e.g. {key} = "{v}"')
            return default
        return v

    def identifier(self, t: dict, path: tuple, seen: dict, line: int, usable: str, unique: str = "") -> str | None:
        """The ``id`` of an [[analysis]] or [[narrative]]: a usable, unique file name."""
        what = f"{path[0]} #{path[1] + 1}"
        tid = self.string(t, "id", path, what)
        if tid is None:
            return None
        if not _SLUG.match(tid) or tid in _RESERVED_IDS or tid.split(".")[0].casefold() in _WINDOWS_DEVICES:
            self.err(self.loc.at(*path, "id"), f"id {tid!r} is not a usable file name", usable)
        elif tid in seen:
            self.err(self.loc.at(*path, "id"), f"duplicate id {tid!r} (also on line {seen[tid]})", unique)
        else:
            seen[tid] = line
        return tid

    def endpoint(self, t: dict, path: tuple, what: str) -> str | None:
        endpoint = self.string(t, "endpoint", path, what)
        if endpoint is not None and endpoint not in self.endpoints:
            self.err(self.loc.at(*path, "endpoint"), f"unknown endpoint code {endpoint!r}",
                     suggest(endpoint, self.endpoints))
            return None
        return endpoint

    def measure(self, t: dict, path: tuple, what: str) -> str | None:
        measure = self.string(t, "measure", path, what)
        if measure is None:
            return None
        if measure not in MEASURES:
            self.err(self.loc.at(*path, "measure"), f"unknown measure {measure!r}",
                     suggest(measure, POOLABLE_MEASURES))
            return None
        if measure not in POOLABLE_MEASURES:
            self.err(self.loc.at(*path, "measure"),
                     f"measure {measure!r} cannot be pooled (no comparative effect with an SE)",
                     "show such rows in a [[narrative]] section instead")
            return None
        return measure

    def select(self, t: dict, path: tuple) -> dict[str, tuple[str, ...]]:
        select: dict[str, tuple[str, ...]] = {}
        if "select" not in t:
            return select
        sel = t["select"]
        if not isinstance(sel, dict):
            self.err(self.loc.at(*path, "select"), "select must be a table of column = [values]",
                     'e.g. select.design = ["RCT"]')
            return select
        for col, vals in sel.items():
            if col not in SELECT_COLUMNS:
                self.err(self.loc.at(*path, "select", col), f"cannot select on {col!r}",
                         suggest(col, SELECT_COLUMNS))
                continue
            vs = self.strings(sel, col, path + ("select",))
            if vs is None:
                continue
            known = sorted({r[col] for r in self.rows.values() if r.get(col)})
            knorm = {_norm(k) for k in known}
            for v in vs:
                if _norm(v) not in knorm:
                    self.err(self.loc.find(path, f'"{v}"', path + ("select", col)),
                             f"select.{col}: no registry row has {col} = {v!r}", suggest(v, known))
            select[col] = tuple(vs)
        return select

    def subgroup(self, t: dict, path: tuple) -> tuple[str, ...]:
        sg = self.strings(t, "subgroup", path)
        if sg is None:
            return ()
        good = []
        for c in sg:
            if c not in self.columns:
                self.err(self.loc.find(path, f'"{c}"', path + ("subgroup",)),
                         f"subgroup {c!r} is not a registry column", suggest(c, self.columns))
            else:
                good.append(c)
        return tuple(good)

    def fitting_includes(self, includes, excludes, endpoint: str, measure: str) -> dict[str, tuple]:
        """Explicit includes that fit the question (same endpoint and measure, with numbers):
        ``row_id -> (reason, where)``; also warns about excludes of another endpoint."""
        inc_map: dict[str, tuple] = {}
        for rid, reason, where in includes:
            r = self.rows[rid]
            if r["endpoint"] != endpoint:
                self.err(where, f"include {rid!r}: its endpoint is {r['endpoint']}, the analysis is {endpoint}",
                         "an analysis pools one endpoint")
            elif r["measure"] != measure:
                self.err(where, f"include {rid!r} would mix measures: {r['measure']} in an analysis of {measure}",
                         "pool one measure per analysis; convert in the registry or use another analysis")
            elif r["status"] == "missing":
                self.err(where, f"include {rid!r}: the row has status 'missing' (no numbers to pool)",
                         "extract the result into the registry first")
            elif r["design"] == PUBLISHED_SYNTHESIS:
                self.err(where, f"include {rid!r}: the row is a published synthesis (pooled_from "
                         f"{r['pooled_from']}): pooled with its own trials, their patients would count twice",
                         f'show it as a check instead: published = ["{rid}"]')
            else:
                inc_map[rid] = (reason, where)
        for rid, reason, where in excludes:
            if self.rows[rid]["endpoint"] != endpoint:
                self.warn(where, f"exclude {rid!r} has no effect: its endpoint is {self.rows[rid]['endpoint']}")
        return inc_map

    def resolve_rows(self, endpoint: str, measure: str, select: dict, inc_map: dict, exc_map: dict):
        """Row selection (module docstring, rules 1-5) -> (rows, left out with why, missing evidence)."""
        rows: list[str] = []
        left: list[RowChoice] = []
        missing: list[str] = []
        for rid, r in self.rows.items():
            if r["endpoint"] != endpoint:
                continue
            if rid in exc_map:
                left.append(RowChoice(rid, f"excluded by the plan: {exc_map[rid]}", True))
                continue
            if rid in inc_map:
                rows.append(rid)
                continue
            if r["design"] == PUBLISHED_SYNTHESIS:
                left.append(RowChoice(rid, "published synthesis of other trials' patients: shown as a check, "
                                           "never pooled"))
                continue
            if r["measure"] != measure:
                left.append(RowChoice(rid, f"measure {r['measure']}: not poolable with {measure}"))
                continue
            failed = [c for c, vs in select.items() if _norm(r.get(c, "")) not in {_norm(v) for v in vs}]
            if failed:
                c = failed[0]
                left.append(RowChoice(rid, f"outside the question: {c} is {r.get(c, '')!r}"))
                continue
            if r["status"] != "confirmed":
                why = _NOT_CONFIRMED_WHY.get(r["status"], _NOT_CONFIRMED_WHY["unconfirmed"])
                left.append(RowChoice(rid, why))
                if r["use_for_pooling"] == "yes":
                    missing.append(rid)
                continue
            if r["use_for_pooling"] != "yes":
                left.append(RowChoice(rid, "marked in the registry as not for pooling: another report or a "
                                           "subgroup of this trial"))
                continue
            rows.append(rid)
        return rows, left, missing

    def patients_once(self, rows: list[str], inc_map: dict, path: tuple, name: str) -> None:
        """The same patients may enter an analysis once (one row per patient_set)."""
        by_set: dict[str, list[str]] = {}
        for rid in rows:
            by_set.setdefault(identity_key(self.rows[rid]["patient_set"]), []).append(rid)
        for rids in by_set.values():
            if len(rids) > 1:
                explicit = [r for r in rids if r in inc_map]
                where = inc_map[explicit[-1]][1] if explicit else self.loc.at(*path, "endpoint")
                self.err(where,
                         f"analysis {name!r} would pool {len(rids)} rows of patient_set {self.rows[rids[0]]['patient_set']!r} "
                         f"({', '.join(rids)}): the same patients would count twice",
                         "keep one: exclude the others with a reason; use swap for a sensitivity analysis")

    def swaps(self, t: dict, path: tuple, rows: list[str], endpoint: str, measure: str, name: str) -> list[Swap]:
        sw = t.get("swap", [])
        if isinstance(sw, dict):
            sw = [sw]
        if not isinstance(sw, list):
            self.err(self.loc.at(*path, "swap"), "swap must be a list of {replace, with, reason}")
            sw = []
        out = []
        for it in sw:
            swap = self.swap(it, path, rows, endpoint, measure, name)
            if swap is not None:
                out.append(swap)
        return out

    def swap(self, it: Any, path: tuple, rows: list[str], endpoint: str, measure: str, name: str) -> Swap | None:
        where = self.loc.at(*path, "swap")
        if not isinstance(it, dict):
            self.err(where, f"swap entries must be tables {{replace, with, reason}}, got {it!r}")
            return None
        if isinstance(it.get("replace"), str):
            where = self.loc.find(path, f'"{it["replace"]}"', path + ("swap",))
        for k in it:
            if k not in _SWAP_KEYS:
                self.err(where, f"unknown key {k!r} in swap entry", suggest(k, _SWAP_KEYS))
        a = self.row_ref(it.get("replace"), where)
        b = self.row_ref(it.get("with"), where)
        reason = it.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            self.err(where, "swap entry has no reason", "say why the other report is a sensible alternative")
            return None
        if a is None or b is None:
            return None
        if a not in rows:
            self.err(where, f"swap: {a!r} is not among the pooled rows of {name!r}",
                     f"pooled rows: {', '.join(rows)}")
            return None
        rb = self.rows[b]
        if rb["endpoint"] != endpoint or rb["measure"] != measure:
            self.err(where, f"swap: {b!r} is {rb['endpoint']}/{rb['measure']}, not {endpoint}/{measure}")
            return None
        if rb["design"] == PUBLISHED_SYNTHESIS:
            self.err(where, f"swap: {b!r} is a published synthesis, never pooled",
                     f'show it as a check instead: published = ["{b}"]')
            return None
        if identity_key(rb["patient_set"]) != identity_key(self.rows[a]["patient_set"]):
            self.err(where, f"swap: {b!r} and {a!r} are not reports of the same patients (patient_set)",
                     "swap replaces one report of a trial by another report of the same trial")
            return None
        if rb["status"] == "missing":
            self.err(where, f"swap: {b!r} has status 'missing'")
            return None
        return Swap(a, b, reason.strip())

    # -- narrative -----------------------------------------------------------------------
    def narrative(self, i: int, t: dict, seen: dict):
        path = ("narrative", i)
        here = self.loc.at(*path)
        if not isinstance(t, dict):
            self.err(here, "[[narrative]] must be a table")
            return None
        self.keys(t, _NARRATIVE_KEYS, path, "[[narrative]]")
        nid = self.identifier(t, path, seen, here[0], "lower-case letters, digits and '-'; " + _NOT_IDS)
        title = self.string(t, "title", path, nid or f"narrative #{i + 1}")
        reason = self.string(t, "reason", path, nid or f"narrative #{i + 1}")
        text = t.get("text", "")
        if not isinstance(text, str):
            self.err(self.loc.at(*path, "text"), "text must be a string")
            text = ""
        rows = []
        for rid in self.strings(t, "rows", path) or []:
            ok = self.row_ref(rid, self.loc.find(path, f'"{rid}"', path + ("rows",)))
            if ok and ok not in rows:
                rows.append(ok)
        if "rows" not in t:
            self.err(here, f"narrative {nid!r} has no 'rows'", 'rows = ["ROW-ID", ...]')
        cl = t.get("combine", [])
        if isinstance(cl, dict):
            cl = [cl]
        if not isinstance(cl, list):
            self.err(self.loc.at(*path, "combine"), "combine must be a list of tables")
            cl = []
        combos = [c for c in (self.combination(path, j, c) for j, c in enumerate(cl)) if c is not None]
        return Narrative(id=nid or "", title=title or "", rows=tuple(rows), reason=reason or "",
                         text=text.strip(), combine=tuple(combos), line=here[0],
                         directions=self.directions(t, path, rows))

    def directions(self, t: dict, path: tuple, rows: list[str]) -> tuple[DeclaredDirection, ...]:
        """``directions = [{row, points_to, source}]``: the direction of a section's result that has
        no effect estimate (a bare p-value), as its source states it; one entry per row."""
        items = t.get("directions", [])
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            self.err(self.loc.at(*path, "directions"), "directions must be a list of tables",
                     'directions = [{row = "ROW-ID", points_to = "benefit", source = "..."}]')
            return ()
        out: dict[str, DeclaredDirection] = {}
        for j, it in enumerate(items):
            if not isinstance(it, dict):
                self.err(self.loc.at(*path, "directions"), f"directions entries must be tables, got {it!r}")
                continue
            # inline tables have no position of their own: locate each entry by its row id
            where = self.loc.find(path, f'"{it.get("row")}"', path + ("directions",))
            for k in it:
                if k not in _DIRECTION_KEYS:
                    self.err(where, f"unknown key {k!r} in a directions entry", suggest(k, _DIRECTION_KEYS))
            rid = self.row_ref(it.get("row"), where)
            d = it.get("points_to")
            source = it.get("source").strip() if isinstance(it.get("source"), str) else ""
            if not source:
                self.err(where, "a directions entry needs a non-empty 'source'",
                         'say where the direction was read: source = "abstract: ..."')
                source = None
            if d not in DECLARED_DIRECTIONS:
                self.err(where, f"points_to must be one of {', '.join(DECLARED_DIRECTIONS)}, got {d!r}",
                         "the direction the source reports for this result")
                continue
            if rid is None or source is None:
                continue
            if rid not in rows:
                self.err(where, f"{rid} is not one of this section's rows", "add it to rows or remove the entry")
            elif self.rows[rid].get("estimate", "").strip():
                self.err(where, f"{rid} has an estimate: its direction is read from it, not declared",
                         "declare directions only for results reported without an estimate (measure PVAL)")
            elif rid in out:
                self.err(where, f"a second direction for {rid}")
            else:
                out[rid] = DeclaredDirection(rid, d, source)
        return tuple(out.values())

    def combination(self, path: tuple, j: int, c: Any) -> Combination | None:
        """One ``[[narrative.combine]]``: independent results with exact (or upper-bound) p-values."""
        cpath = path + ("combine", j)
        if not isinstance(c, dict):
            self.err(self.loc.at(*cpath), "combine entries must be tables")
            return None
        self.keys(c, _COMBINE_KEYS, cpath, "[[narrative.combine]]")
        label = self.string(c, "label", cpath, "combine entry")
        direction = self.string(c, "direction", cpath, "combine entry")
        crow: list[str] = []
        ref: dict[str, tuple[int, int]] = {}
        for rid in self.strings(c, "rows", cpath) or []:
            where = self.loc.find(path, f'"{rid}"', cpath + ("rows",))
            ok = self.row_ref(rid, where)
            if ok:
                crow.append(ok)
                ref.setdefault(ok, where)
        rwhere = self.loc.at(*cpath, "rows")
        if len(crow) < 2:
            self.err(rwhere, "a p-value combination needs at least two results")
            return None
        eps = {self.rows[r]["endpoint"] for r in crow}
        if len(eps) > 1:
            self.err(rwhere, f"combined results must share one endpoint, got {', '.join(sorted(eps))}")
        p_values = self.reg.p_values
        nop = [r for r in crow if r not in p_values]
        if nop:
            self.err(rwhere, f"no p-value in the registry for {', '.join(nop)}")
        for r in dict.fromkeys(crow):
            if r in p_values and p_values[r].is_lower_bound:
                self.err(ref[r], f"p-value {self.rows[r]['p_value']!r} of {r} is a lower bound: it cannot be combined",
                         "Fisher and Stouffer need the p-value itself; 'p > x' only says it is at least x: "
                         "find the exact p-value in the source or leave the result out of the combination")
        sets = [identity_key(self.rows[r]["patient_set"]) for r in crow]
        indep = c.get("independent")
        if len(set(sets)) < len(sets) and not (isinstance(indep, str) and indep.strip()):
            self.err(rwhere, "results of one patient_set are combined as if independent",
                     'state why they are disjoint patients: independent = "..."')
        note = c.get("note", "")
        if not (label and direction):
            return None
        return Combination(label, tuple(crow), direction, indep.strip() if isinstance(indep, str) else "",
                           note.strip() if isinstance(note, str) else "")

    # -- whole file ----------------------------------------------------------------------
    def run(self, doc: dict):
        self.keys(doc, _TOP_KEYS, (), "the plan")
        d = doc.get("defaults", {})
        if not isinstance(d, dict):
            self.err(self.loc.at("defaults"), "[defaults] must be a table")
            d = {}
        self.keys(d, _DEFAULT_KEYS, ("defaults",), "[defaults]")
        defaults = self.settings(d, ("defaults",), DEFAULT_SETTINGS)
        dsens = self.sensitivity(d, ("defaults",), tuple(SENSITIVITY_OPTIONS)[:5])
        dfav = self.favours(d, ("defaults",), ("denosumab", "control"))
        dcov = self.coverage(d, ("defaults",), True)
        seen: dict[str, int] = {}
        analyses, narratives = [], []
        al = doc.get("analysis", [])
        if not isinstance(al, list):
            self.err(self.loc.at("analysis"), "use [[analysis]] (an array of tables)")
            al = []
        for i, t in enumerate(al):
            a = self.analysis(i, t, defaults, dsens, dfav, seen, dcov)
            if a is not None:
                analyses.append(a)
        nl = doc.get("narrative", [])
        if not isinstance(nl, list):
            self.err(self.loc.at("narrative"), "use [[narrative]] (an array of tables)")
            nl = []
        for i, t in enumerate(nl):
            n = self.narrative(i, t, seen)
            if n is not None:
                narratives.append(n)
        if not al and not nl:
            self.err((1, 0), "the plan has no [[analysis]] and no [[narrative]]")
        return (self.optional_text(doc, "title", (), "Evidence reports"), self.optional_text(doc, "description", (), ""),
                Settings(**defaults), tuple(analyses), tuple(narratives))


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
#: Deepest nesting of arrays / inline tables accepted (the plan needs 2: a list of inline tables);
#: Python's TOML parser recurses once per level and fails with RecursionError near 1000.
MAX_TOML_DEPTH = 16


def _nesting_too_deep(text: str, limit: int = MAX_TOML_DEPTH) -> tuple[int, int] | None:
    """(line, column) of the first ``[`` or ``{`` nested deeper than ``limit``, outside strings and
    comments; None when the text stays within it (a scan before parsing, so it cannot recurse)."""
    depth, quote, line, line_start, i = 0, "", 1, 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote in ('"', '"""'):
                i += 1
            elif text.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote) - 1
        elif ch == "#":
            while i + 1 < len(text) and text[i + 1] != "\n":
                i += 1
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line, i - line_start + 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        if ch == "\n":
            line, line_start = line + 1, i + 1
        i += 1
    return None


def _read(path: str | Path) -> tuple[bytes | None, list[Problem]]:
    sink = ProblemSink(str(path))
    raw = read_file_bytes(path, sink, what="a plan file", missing_hint="check the path (default: trials/analyses.toml)",
                          directory_hint="give the path of the .toml file")
    return raw, sink.items


def _check(path: str | Path, registry) -> tuple[list[Problem], tuple | None, str]:
    shown = str(path)
    raw, probs = _read(path)
    if raw is None:
        return probs, None, ""
    sha = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        return [Problem(shown, line, col, "error", "the plan is not UTF-8 text",
                        "save it as UTF-8")], None, sha
    deep = _nesting_too_deep(text)
    if deep:
        return [Problem(shown, *deep, "error", f"arrays or tables nested more than {MAX_TOML_DEPTH} levels deep",
                        "a plan nests at most a list of inline tables: include = [{ row = ..., reason = ... }]")], None, sha
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 0)
        msg = _TOML_POS.sub("", msg).strip()
        return [Problem(shown, line, col, "error", f"TOML syntax: {msg}",
                        "see https://toml.io; strings need double quotes, tables [name]")], None, sha
    chk = _Checker(shown, text, registry)
    out = chk.run(doc)
    return sorted(chk.problems), out, sha


def validate_plan(path: str | Path, registry) -> list[Problem]:
    """Every problem of the plan against a loaded registry; never raises for data problems.

    Parameters
    ----------
    path : str or Path
        The TOML plan.
    registry : metaanalysis.registry.Registry
        A checked registry (``load_registry``).
    """
    probs, _, _ = _check(path, registry)
    return probs


def load_plan(path: str | Path, registry) -> Plan:
    """Read and check the plan; resolve every analysis's rows against the registry.

    Returns
    -------
    Plan

    Raises
    ------
    ProblemError
        With every problem (errors and warnings) when there is at least one error.
    """
    probs, out, sha = _check(path, registry)
    if out is None or has_errors(probs):
        raise ProblemError(probs)
    title, desc, defaults, analyses, narratives = out
    return Plan(path=str(path), sha256=sha, title=title, description=desc.strip(), defaults=defaults,
                analyses=analyses, narratives=narratives, problems=tuple(probs))
