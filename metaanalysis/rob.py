"""Risk of bias (RoB 2) judgements: ``trials/rob.csv``, read and checked like the registry.

One row per registry result (``row_id``): RoB 2 judges a *result*, not a trial (Sterne et al.
2019, BMJ 366:l4898), so a trial's fracture and survival results may be judged differently.
Columns (:data:`ROB_COLUMNS`): ``row_id``, the five domains ``d1``..``d5``, ``overall``
(each one of :class:`~metaanalysis.vocab.RobJudgement`: ``low``, ``some concerns``, ``high``,
``not assessed``), ``source`` (the published assessment: citation), ``source_location`` (where
in it: table, figure, page), ``status`` (``assessed`` or ``not assessed``) and ``notes``.

Rules (each broken rule is an error at ``rob.csv:LINE:COLUMN``):

- a judgement other than ``not assessed`` needs ``status = assessed``, a ``source`` and a
  ``source_location``: a judgement is shipped only when a published assessment can be cited;
- ``status = not assessed`` rows hold ``not assessed`` in every domain and overall;
- ``overall`` follows RoB 2's algorithm: ``low`` only when every domain is low, at least as
  severe as the worst assessed domain;
- one row per ``row_id``; a ``row_id`` the registry does not hold is a warning (ignored: the
  registry may have been re-curated since the judgements were entered).

The file is optional: absent, every result is "not assessed" (:func:`load_rob` with a path
that does not exist gives an empty :class:`RobTable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .problems import Problem, ProblemError, ProblemSink, has_errors, suggest
from .table import header_columns, read_table
from .vocab import ROB_ASSESSED, ROB_DOMAINS, RobJudgement

__all__ = ["RobEntry", "RobTable", "ROB_COLUMNS", "ROB_STATUSES", "check_rob", "load_rob", "default_rob_path",
           "NOT_ASSESSED_ENTRY"]

#: Columns of ``trials/rob.csv`` in file order.
ROB_COLUMNS = ("row_id", *(code for code, _ in ROB_DOMAINS), "overall", "source", "source_location", "status",
               "notes")
#: ``status`` values: the judgements were read in the cited assessment, or there are none.
ROB_STATUSES = ("assessed", "not assessed")
_REQUIRED = ("row_id", *(code for code, _ in ROB_DOMAINS), "overall", "status")
_JUDGEMENTS = {j.value: j for j in RobJudgement}
#: Severity order of RoB 2 judgements (the overall is at least the worst domain).
_SEVERITY = {RobJudgement.LOW: 0, RobJudgement.SOME_CONCERNS: 1, RobJudgement.HIGH: 2}


@dataclass(frozen=True)
class RobEntry:
    """The RoB 2 judgements of one result (``domains`` in D1..D5 order)."""

    row_id: str
    domains: tuple[RobJudgement, ...]
    overall: RobJudgement
    source: str = ""
    source_location: str = ""
    line: int = 0

    @property
    def assessed(self) -> bool:
        return self.overall in ROB_ASSESSED


#: The judgement of a result the file does not list (or of every result when it is absent).
NOT_ASSESSED_ENTRY = RobEntry("", (RobJudgement.NOT_ASSESSED,) * len(ROB_DOMAINS), RobJudgement.NOT_ASSESSED)


@dataclass(frozen=True)
class RobTable:
    """Checked judgements by registry ``row_id``; ``path`` is '' when no file was read."""

    path: str = ""
    sha256: str = ""
    entries: Mapping[str, RobEntry] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def entry(self, row_id: str) -> RobEntry:
        """The result's judgements; :data:`NOT_ASSESSED_ENTRY` (with its id) when not listed."""
        e = self.entries.get(row_id)
        return e if e is not None else RobEntry(row_id, NOT_ASSESSED_ENTRY.domains, RobJudgement.NOT_ASSESSED)

    @property
    def any_assessed(self) -> bool:
        return any(e.assessed for e in self.entries.values())


def default_rob_path(registry_path: str | Path) -> Path:
    """``rob.csv`` next to the registry (``trials/rob.csv``)."""
    return Path(registry_path).parent / "rob.csv"


def _judgement(sink: ProblemSink, line: int, col: int, name: str, value: str) -> RobJudgement | None:
    j = _JUDGEMENTS.get(" ".join(value.split()).lower())
    if j is None:
        sink.error(line, col, f"{value!r} is not a RoB 2 judgement" if value else "empty judgement",
                   suggest(value, _JUDGEMENTS, quote=True), name)
    return j


def _check_row(sink: ProblemSink, line: int, cells: dict[str, tuple[int, str]]) -> RobEntry | None:
    """One data row -> its entry, or None after reporting why it cannot be used."""
    def at(name: str) -> int:
        return cells.get(name, (0, ""))[0]

    def val(name: str) -> str:
        return cells.get(name, (0, ""))[1]

    judged = {name: _judgement(sink, line, at(name), name, val(name))
              for name in (*(c for c, _ in ROB_DOMAINS), "overall")}
    status = val("status").lower()
    if status not in ROB_STATUSES:
        sink.error(line, at("status"), f"status {val('status')!r} is not one of {', '.join(ROB_STATUSES)}",
                   suggest(val("status"), ROB_STATUSES, quote=True), "status")
    if any(j is None for j in judged.values()) or not val("row_id"):
        if not val("row_id"):
            sink.error(line, at("row_id"), "row_id is empty", "name the registry row this judgement is about",
                       "row_id")
        return None
    assessed = [n for n, j in judged.items() if j in ROB_ASSESSED]
    if assessed and status != "assessed":
        sink.error(line, at(assessed[0]), f"{assessed[0]} is judged ({judged[assessed[0]].value}) but status is "
                   f"{val('status')!r}", "set status = assessed and cite the published assessment", assessed[0])
    if status == "assessed" and len(assessed) < len(judged):
        missing = [n for n in judged if n not in assessed]
        sink.error(line, at(missing[0]), f"status is assessed but {missing[0]} is not assessed",
                   "an assessment judges every domain and the overall", missing[0])
    for name in ("source", "source_location"):
        if status == "assessed" and not val(name):
            sink.error(line, at(name) or at("status"), f"an assessed row needs {name}",
                       "cite the published assessment the judgements were read in, and where in it", name)
    domains = tuple(judged[c] for c, _ in ROB_DOMAINS)
    overall = judged["overall"]
    if overall in ROB_ASSESSED and all(d in ROB_ASSESSED for d in domains):
        worst = max(_SEVERITY[d] for d in domains)
        if _SEVERITY[overall] < worst or (overall is RobJudgement.LOW and worst > 0):
            sink.error(line, at("overall"), f"overall {overall.value!r} is less severe than a domain",
                       "RoB 2: the overall judgement is at least the worst domain judgement", "overall")
    return RobEntry(val("row_id"), domains, overall, val("source"), val("source_location"), line)


def check_rob(path: str | Path, registry_ids=None) -> RobTable:
    """Read and check a RoB 2 file; never raises for data problems (they are in ``problems``).

    Parameters
    ----------
    path : str or Path
        The CSV (``trials/rob.csv``); the registry's spreadsheet quirks are accepted with warnings.
    registry_ids : iterable of str, optional
        The registry's ``row_id`` values; a listed id outside them is a warning.
    """
    table = read_table(path, ROB_COLUMNS, missing_hint="the default is rob.csv next to the registry",
                       what="a RoB 2 CSV")
    sink = ProblemSink(str(path))
    sink.items.extend(table.problems)
    if not table.ok:
        return RobTable(str(path), table.sha256, {}, tuple(sink.items))
    cols = header_columns(table, sink, ROB_COLUMNS, _REQUIRED)
    if has_errors(sink.items):
        return RobTable(str(path), table.sha256, {}, tuple(sink.items))
    known = set(registry_ids) if registry_ids is not None else None
    entries: dict[str, RobEntry] = {}
    seen: dict[str, int] = {}
    for line, fields in table.rows:
        cells = {name: (i + 1, fields[i].strip() if i < len(fields) else "") for name, i in cols.items()}
        rid = cells["row_id"][1]
        if rid and rid in seen:
            sink.error(line, cells["row_id"][0], f"row_id {rid!r} is listed twice (also on line {seen[rid]})",
                       "one row per result", "row_id")
            continue
        seen.setdefault(rid, line)
        e = _check_row(sink, line, cells)
        if e is None:
            continue
        if known is not None and e.row_id not in known:
            sink.warning(line, cells["row_id"][0], f"row_id {e.row_id!r} is not in the registry: ignored",
                         suggest(e.row_id, sorted(known)), "row_id")
        else:
            entries[e.row_id] = e
    return RobTable(str(path), table.sha256, entries, tuple(sorted(sink.items)))


def load_rob(path: str | Path | None, registry_ids=None) -> RobTable:
    """The checked judgements; an empty table (every result "not assessed") when ``path`` is
    None or does not exist.

    Raises
    ------
    ProblemError
        With every problem when the file has at least one error.
    """
    if path is None or not Path(path).exists():
        return RobTable()
    checked = check_rob(path, registry_ids)
    if has_errors(checked.problems):
        raise ProblemError(checked.problems)
    return RobTable(checked.path, checked.sha256, checked.entries,
                    tuple(p for p in checked.problems if p.severity == "warning"))
