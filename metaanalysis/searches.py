"""The evidence date: ``trials/searches.csv``, the log of when the registry's sources were searched
and its results extracted, read and checked like the registry.

One row per activity of a curation round (columns :data:`SEARCH_COLUMNS`): ``date`` (ISO
``YYYY-MM-DD``), ``activity`` (``searched``: sources were searched for new or changed results;
``extracted``: results were read and entered or re-checked), ``scope`` (what was searched or
extracted: corpora, databases, registries, rows) and ``notes``. The evidence is current to the
latest ``searched`` date (a search for trials is what dates a review: Cochrane Handbook ch. 4.5,
"the date of the last search"); every page of a report says so, from this file and never from the
clock, so a rebuild is byte-identical.

Rules (errors at ``searches.csv:LINE:COLUMN``): a date is a real calendar date written
``YYYY-MM-DD`` (an Excel date serial such as 46357 or a locale date such as 01/12/2026 is refused
with the ISO form in the hint), not before 1950; ``activity`` is one of :data:`ACTIVITIES`;
``scope`` is not empty. A log without a ``searched`` row is a warning (the evidence date is then
unknown). The file is optional: absent, pages say that the evidence date is not recorded.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

from .problems import ProblemError, ProblemSink, has_errors, suggest
from .table import header_columns, read_table
from .vocab import EXCEL_SERIAL_RANGE

__all__ = ["SearchRound", "SearchLog", "SEARCH_COLUMNS", "ACTIVITIES", "check_searches", "load_searches",
           "default_searches_path"]

#: Columns of ``trials/searches.csv`` in file order.
SEARCH_COLUMNS = ("date", "activity", "scope", "notes")
#: ``activity`` values: sources searched (dates the evidence), results extracted or re-checked.
ACTIVITIES = ("searched", "extracted")
_REQUIRED = ("date", "activity", "scope")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_EARLIEST = datetime.date(1950, 1, 1)


@dataclass(frozen=True)
class SearchRound:
    """One row of the log."""

    date: datetime.date
    activity: str
    scope: str
    notes: str = ""
    line: int = 0


@dataclass(frozen=True)
class SearchLog:
    """The checked log; ``path`` is '' when no file was read.

    Attributes
    ----------
    rounds : tuple of SearchRound
        In file order.
    searched_to, extracted_to : datetime.date or None
        The latest ``searched`` / ``extracted`` date (None when there is none): the evidence is
        current to ``searched_to``.
    """

    path: str = ""
    sha256: str = ""
    rounds: tuple[SearchRound, ...] = ()
    problems: tuple = ()

    def _latest(self, activity: str) -> datetime.date | None:
        dates = [r.date for r in self.rounds if r.activity == activity]
        return max(dates) if dates else None

    @property
    def searched_to(self) -> datetime.date | None:
        return self._latest("searched")

    @property
    def extracted_to(self) -> datetime.date | None:
        return self._latest("extracted")


def default_searches_path(registry_path: str | Path) -> Path:
    """``searches.csv`` next to the registry (``trials/searches.csv``)."""
    return Path(registry_path).parent / "searches.csv"


def _date(sink: ProblemSink, line: int, col: int, s: str) -> datetime.date | None:
    """An ISO calendar date, or None after an error that says how to write it."""
    m = _ISO.match(s)
    if m:
        try:
            d = datetime.date(*(int(g) for g in m.groups()))
        except ValueError:
            sink.error(line, col, f"{s!r} is not a calendar date", "check the month and the day", "date")
            return None
        if d < _EARLIEST:
            sink.error(line, col, f"date {s} is before {_EARLIEST.year}", "the year has four digits, e.g. 2026",
                       "date")
            return None
        return d
    hint = "write the date as YYYY-MM-DD, e.g. 2026-12-01, and format the column as Text in the spreadsheet"
    if s.isdigit() and EXCEL_SERIAL_RANGE[0] <= int(s) <= EXCEL_SERIAL_RANGE[1]:
        day = datetime.date(1899, 12, 30) + datetime.timedelta(days=int(s))
        hint = f"{s} is the Excel date serial of {day.isoformat()}: write {day.isoformat()}"
    sink.error(line, col, f"{s!r} is not a date written YYYY-MM-DD" if s else "date is empty", hint, "date")
    return None


def _check_row(sink: ProblemSink, line: int, cells: dict[str, tuple[int, str]]) -> SearchRound | None:
    """One data row -> its round, or None after reporting why it cannot be used."""
    col = {name: cells.get(name, (0, ""))[0] for name in SEARCH_COLUMNS}
    val = {name: cells.get(name, (0, ""))[1] for name in SEARCH_COLUMNS}
    d = _date(sink, line, col["date"], val["date"])
    activity = val["activity"].lower()
    if activity not in ACTIVITIES:
        sink.error(line, col["activity"], f"activity {val['activity']!r} is not one of {', '.join(ACTIVITIES)}",
                   suggest(val["activity"], ACTIVITIES, quote=True), "activity")
    if not val["scope"]:
        sink.error(line, col["scope"], "scope is empty",
                   "say what was searched (corpora, databases, registries) or which rows were extracted", "scope")
    if d is None or activity not in ACTIVITIES or not val["scope"]:
        return None
    return SearchRound(d, activity, val["scope"], val["notes"], line)


def check_searches(path: str | Path) -> SearchLog:
    """Read and check a search log; never raises for data problems (they are in ``problems``).

    Parameters
    ----------
    path : str or Path
        The CSV (``trials/searches.csv``); the registry's spreadsheet quirks are accepted with warnings.
    """
    table = read_table(path, SEARCH_COLUMNS, missing_hint="the default is searches.csv next to the registry",
                       what="a search log CSV")
    sink = ProblemSink(str(path))
    sink.items.extend(table.problems)
    if not table.ok:
        return SearchLog(str(path), table.sha256, (), tuple(sink.items))
    cols = header_columns(table, sink, SEARCH_COLUMNS, _REQUIRED)
    if has_errors(sink.items):
        return SearchLog(str(path), table.sha256, (), tuple(sink.items))
    rounds = []
    for line, fields in table.rows:
        cells = {name: (i + 1, fields[i].strip() if i < len(fields) else "") for name, i in cols.items()}
        r = _check_row(sink, line, cells)
        if r is not None:
            rounds.append(r)
    if not has_errors(sink.items) and not any(r.activity == "searched" for r in rounds):
        sink.warning(table.header_line, 0, "no 'searched' row: the evidence date is unknown",
                     "add a row with the date the sources were last searched, activity = searched")
    return SearchLog(str(path), table.sha256, tuple(rounds), tuple(sorted(sink.items)))


def load_searches(path: str | Path | None) -> SearchLog:
    """The checked log; an empty log (evidence date not recorded) when ``path`` is None or does not exist.

    Raises
    ------
    ProblemError
        With every problem when the file has at least one error.
    """
    if path is None or not Path(path).exists():
        return SearchLog()
    checked = check_searches(path)
    if has_errors(checked.problems):
        raise ProblemError(checked.problems)
    return checked
