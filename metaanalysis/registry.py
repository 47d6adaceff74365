"""The edge: the trial registry CSV -> checked, typed rows (and every problem with file:line:column).

``load_registry(path)`` returns a frozen :class:`Registry` (the typed rows, also as a pandas
DataFrame with proper dtypes built on first use, each row's source line, the warnings, the
file's SHA-256) or raises
:class:`~metaanalysis.problems.ProblemError` with *all* problems at once.
``validate_registry(path)`` returns the problems and never raises for data problems.
``effects_table(registry)`` gives per row ``yi, vi`` via :mod:`metaanalysis.effects`.

The file is read by :func:`metaanalysis.table.read_table` (encodings, separators, physical
line numbers); this module checks the cells against the column contract, the Frictionless
Table Schema ``trials/schema.json``
(https://specs.frictionlessdata.io/table-schema/). Lines are 1-based physical lines as an
editor shows them (the header is line 1; a quoted field spanning lines counts every line);
columns are 1-based CSV field numbers (0 = the whole line or file).

Spreadsheet-export policy (each accepted quirk gives one warning, never silence): encodings,
separators, decimal commas and blank lines as :mod:`metaanalysis.table` says; in addition here:

- Leading/trailing spaces in cells and headers are stripped (one warning with the count).
- Header names differing only in case, spaces/hyphens vs underscores, or surrounding
  spaces (``"Estimate "``) are read as the schema column with a warning; other unknown
  columns are warnings; a missing required column is an error with a did-you-mean hint.
- Excel scientific notation (``1.5E-05``) is a number; whole numbers written ``12.0`` are integers.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import effects as ef
from .problems import Problem, ProblemError, ProblemSink, has_errors, suggest
from .table import (DECIMAL_COMMA, MAX_FIELD_LENGTH, NON_ASCII_DIGITS, Table, identity_key, is_plain_number, lookalike_character, norm_header,
                    parse_number, read_table)
from .vocab import EFFECT_MEASURES, EXCEL_SERIAL_RANGE, PUBLISHED_SYNTHESIS, RATIO_MEASURES, as_level

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: `metaanalysis validate` starts without it

__all__ = [
    "Registry",
    "favoured_below_null",
    "SchemaField",
    "load_schema",
    "load_registry",
    "validate_registry",
    "effects_table",
    "check_registry",
    "RegistryCheck",
    "MAX_FIELD_LENGTH",
]

_SCHEMA_CANDIDATES = (
    Path(__file__).resolve().parent / "data" / "registry_schema.json",
    Path(__file__).resolve().parent.parent / "trials" / "schema.json",
)
# Line breaks and tabs are allowed inside quoted cells; other C0/C1 control characters never.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_DOI_PREFIX_RE = re.compile(r"(?i)^(?:https?://)?(?:dx\.)?doi\.org/|^doi:\s*")
_COUNT_COLUMNS = ("events_int", "n_int", "events_ctl", "n_ctl")
#: Text columns that are codes (compared, grouped or selected on), besides the schema's enum
#: columns: a look-alike character in them (U+200B, a full-width or Cyrillic letter) would make
#: one trial two, or drop a row out of an analysis, in silence -- so it is an error.
_CODE_COLUMNS = ("row_id", "trial_id", "nct_id", "patient_set", "parent_row_id", "design", "tumour_type",
                 "setting", "intervention", "comparator", "endpoint", "measure", "regimen", "pooled_from")
#: Columns an older registry had, with what replaced them (an unknown-column warning says so).
_REMOVED_COLUMNS = {"rob_overall": "risk of bias is read from trials/rob.csv (RoB 2 per result, with the cited "
                                   "published assessment); delete the column"}
#: Free-text columns the plan selects on: an invisible character there drops a row too.
_SELECTED_TEXT_COLUMNS = ("population",)
_LOOKALIKE_HINTS = {
    "invisible": "delete it (often pasted from a web page or a PDF): codes are compared character by character",
    "compatibility": "retype it as the plain character",
    "mixed-script": "retype the word in Latin letters",
}
_PATTERN_HINTS = {
    "row_id": "letters, digits, '-' and '_' only, e.g. ABCSG18-DFS-2019",
    "nct_id": "NCT followed by 8 digits, e.g. NCT00556374 (empty if none)",
    "pmid": "digits only, e.g. 30795951",
    "doi": "the DOI itself, e.g. 10.1016/S1470-2045(18)30862-3, without https://doi.org/",
    "p_value": "as printed: 0.026, <0.0001, 1e-4",
}


# --- schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaField:
    """One column of the Table Schema (only the constraints this project uses)."""

    name: str
    type: str
    required: bool = False
    unique: bool = False
    enum: tuple | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    description: str = ""


def load_schema(path: str | Path | None = None) -> tuple[SchemaField, ...]:
    """Read the Frictionless Table Schema (default: the project's ``trials/schema.json``)."""
    if path is None:
        path = next((p for p in _SCHEMA_CANDIDATES if p.is_file()), _SCHEMA_CANDIDATES[-1])
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for f in spec["fields"]:
        c = f.get("constraints", {})
        out.append(
            SchemaField(
                name=f["name"],
                type=f.get("type", "string"),
                required=bool(c.get("required", False)),
                unique=bool(c.get("unique", False)),
                enum=tuple(c["enum"]) if "enum" in c else None,
                pattern=c.get("pattern"),
                minimum=c.get("minimum"),
                maximum=c.get("maximum"),
                exclusive_minimum=c.get("exclusiveMinimum"),
                exclusive_maximum=c.get("exclusiveMaximum"),
                description=f.get("description", ""),
            )
        )
    return tuple(out)


# --- the result ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Registry:
    """A checked registry.

    Attributes
    ----------
    path : str
        The path as given (used in every problem).
    sha256 : str
        SHA-256 of the file's bytes (hex), for provenance and caching.
    records : tuple of dict
        One dict per data row: every schema column in schema order (``str``, ``float`` or
        ``int``; ``None`` when missing), plus ``source_line`` (int): the physical line the row
        starts on. The validator and the plan checker read these, without pandas.
    df : pandas.DataFrame
        The same rows as a frame, built on first use: dtypes ``string`` (missing = ``<NA>``),
        ``float64`` (numbers, missing = NaN) and ``Int64`` (integers), plus ``source_line``.
    problems : tuple of Problem
        Warnings (a Registry never holds errors).
    columns : Mapping[str, int]
        Schema column -> its 1-based column number in the file (0 when absent).
    delimiter : str
    p_values : Mapping[str, effects.PValue]
        Every ``p_value`` cell parsed once (value, relation, decimals, ``sided`` from
        ``p_sided``), keyed by ``row_id``; rows without a p-value are absent.
    schema : tuple of SchemaField
        The Table Schema the registry was checked against (its enumerations serve the plan).
    """

    path: str
    sha256: str
    records: tuple[Mapping[str, Any], ...]
    problems: tuple[Problem, ...] = ()
    columns: Mapping[str, int] = field(default_factory=dict)
    delimiter: str = ","
    p_values: Mapping[str, ef.PValue] = field(default_factory=dict)
    schema: tuple[SchemaField, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    @cached_property
    def df(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (see the class docstring); built once, on first use."""
        return _frame(self.schema, self.records)

    @property
    def row_ids(self) -> tuple[str, ...]:
        """Every row's ``row_id`` as text, in file order (as ``df["row_id"].astype(str)``)."""
        return tuple("<NA>" if r["row_id"] is None else str(r["row_id"]) for r in self.records)

    def line_of(self, row_id: str) -> int:
        """Source line of the row with this ``row_id`` (KeyError if there is none)."""
        for r in self.records:
            if r["row_id"] == row_id:
                return int(r["source_line"])
        raise KeyError(row_id)

    def problem(self, row_id: str | None, column: str | None, severity: str, message: str, hint: str = "") -> Problem:
        """A Problem located at a row's cell (for layers above, e.g. the analysis plan)."""
        line = self.line_of(row_id) if row_id is not None else 1
        col = self.columns.get(column, 0) if column else 0
        return Problem(self.path, line, col, severity, message, hint, column or "")


# --- problem collection --------------------------------------------------------------------


class _Once:
    """Count occurrences of a quirk, remember the first; emit one warning at the end."""

    def __init__(self):
        self.n = 0
        self.first: tuple[int, int, str] | None = None
        self.value = ""

    def hit(self, line: int, col: int, name: str = "", value: str = "") -> None:
        self.n += 1
        if self.first is None:
            self.first, self.value = (line, col, name), value



# --- cell parsing --------------------------------------------------------------------------

#: Quirk code: a number written with a decimal comma in a ','-separated file (never read: '1,234'
#: may be a thousands separator; reported once for the whole file).
_COMMA_IN_COMMA_FILE = "comma-in-comma-file"
#: Separators a spreadsheet may write that the reader does not accept (named in the header error).
_OTHER_SEPARATORS = ("|", ":", "^", "~", " ")
_P_COMMA_RE = re.compile(r"^\s*(?:[<>≤≥]=?|=)?\s*[0-9]*,[0-9]+\s*$")
_EXPORT_HINT = ("export again with '.' as the decimal separator (in Excel: File > Options > Advanced, untick "
                "'Use system separators'), or save it ';'-separated: that is read with decimal commas")


def _file_wide(sink: ProblemSink, commas: _Once, too_many: _Once, width: int) -> None:
    """One located diagnosis per file-wide problem instead of one error per cell or row.

    ``commas``: cells written with a decimal comma in a ','-separated file (quoted, so each stays one
    field); ``too_many``: rows with more fields than the header (an unquoted decimal comma or a
    comma in text splits a cell). One occurrence keeps the cell's own error.
    """
    if commas.n:
        line, col, name = commas.first
        if commas.n == 1:
            sink.error(line, col, f"{commas.value!r} is not a number: a decimal comma in a ','-separated file",
                       "use a decimal point (0.82), no thousands separators", name)
        else:
            sink.error(line, col, f"{commas.n} number cells are written with a decimal comma (first here: "
                       f"{commas.value!r}): the whole file was exported with ',' as the decimal separator, "
                       "which a ','-separated file cannot hold", _EXPORT_HINT, name)
    if too_many.n:
        line, col, _ = too_many.first
        if too_many.n == 1:
            sink.error(line, col, f"this row has {too_many.value} fields but the header has {width}",
                       "quote text that contains the separator; check for a missing or extra separator")
        else:
            sink.error(line, col, f"{too_many.n} rows have more fields than the header's {width} (first here: "
                       f"{too_many.value} fields): a ',' inside a cell splits it in two",
                       "if numbers are written with a decimal comma (0,82), " + _EXPORT_HINT
                       + "; quote text that contains a ','")


def _number_hint(s: str, decimal_comma: bool) -> str:
    if s.endswith("%"):
        return "write the number without '%' (95, not 95%)"
    if "," in s:
        return "use a decimal point (0.82), no thousands separators" if not decimal_comma else "no thousands separators"
    if s.lower() in ("nan", "inf", "-inf", "infinity", "na", "n/a", "nr", "-", "none"):
        return "leave the cell empty when the value is unknown"
    return "a plain number such as 0.82 or 1.5E-05"

_DIRECTION_RE = re.compile(r"^\s*(?P<measure>[A-Za-z]+)\s*(?P<op><=|>=|<|>|≤|≥)\s*(?P<null>[0-9.]+)\s+"
                           r"favou?rs?\s+(?P<arm>.+?)(?:\s+(?:over|versus|vs\.?)\s+.+)?\s*$", re.IGNORECASE)
_ARM_WORDS = {"intervention": "intervention", "experimental": "intervention", "treatment": "intervention",
              "control": "comparator", "comparator": "comparator"}
_FILLER_WORDS = {"and", "with", "the", "arm", "group", "plus"}


def _words(s: str) -> set[str]:
    """The words (letters and digits) of an arm's name, compared by identity key."""
    return set(re.findall(r"\w+", identity_key(s)))


def _arm_named(favoured: str, intervention: str, comparator: str) -> str | None:
    """``"intervention"`` or ``"comparator"``: the arm whose name holds every word of ``favoured``
    (or a generic word such as 'control'); None when neither or both do."""
    words = _words(favoured) - _FILLER_WORDS
    if len(words) == 1 and next(iter(words)) in _ARM_WORDS:
        return _ARM_WORDS[next(iter(words))]
    hits = [arm for arm, name in (("intervention", intervention), ("comparator", comparator))
            if words and words <= _words(name)]
    return hits[0] if len(hits) == 1 else None


def favoured_below_null(direction: str, intervention: str, comparator: str) -> str | None:
    """Which arm (``"intervention"`` or ``"comparator"``) a value below the null favours by an effect
    row's ``direction`` text (``HR < 1 favours denosumab``); None when it cannot be read (the
    validator reports such rows)."""
    d = _DIRECTION_RE.match(direction or "")
    arm = _arm_named(d["arm"], intervention, comparator) if d is not None else None
    return None if arm is None else _below_null_side(arm, d["op"])


def _below_null_side(arm: str, op: str) -> str:
    """The arm a value below the null favours, when ``direction`` says ``<op>`` favours ``arm``."""
    other = "comparator" if arm == "intervention" else "intervention"
    return arm if op in ("<", "<=", "≤") else other


# --- the validator -----------------------------------------------------------------------


class _Checker:
    def __init__(self, path: str, schema: tuple[SchemaField, ...]):
        self.path = path
        self.schema = schema
        self.by_name = {f.name: f for f in schema}
        self.sink = ProblemSink(path)
        self.colnum: dict[str, int] = {f.name: 0 for f in schema}
        self.rows: list[dict[str, Any]] = []
        self.lines: list[int] = []
        self.cell_lines: list[dict[str, int]] = []
        self.bad: list[set[str]] = []
        self.delimiter = ","
        self.n_rows = 0
        self.ok_header = False

    # -- helpers
    def at(self, r: int, name: str, severity: str, message: str, hint: str = "") -> None:
        line = self.cell_lines[r].get(name, self.lines[r])
        self.sink.add(line, self.colnum.get(name, 0), severity, message, hint, name)

    def present(self, r: int, name: str) -> bool:
        return name not in self.bad[r] and self.rows[r].get(name) is not None

    # -- stages
    def run(self, table: Table) -> None:
        self.sink.items.extend(table.problems)
        if not table.ok:
            return
        self.delimiter = table.delimiter
        hline, header = table.records[0]
        if not self._header(hline, header):
            return
        self.ok_header = True
        data = table.rows
        if not data:
            self.sink.error(hline + 1, 0, "the registry has a header but no data rows", "add one row per reported result")
            return
        self._rows(data, len(header))
        self._cross_row()
        self._effects()

    def _header(self, hline: int, header: tuple[str, ...]) -> bool:
        sink = self.sink
        names = [h.lstrip("\ufeff") for h in header]
        norm_schema = {norm_header(f.name): f.name for f in self.schema}
        self.fileindex: dict[int, str | None] = {}
        self.unnamed: list[int] = []
        self.header_line = hline
        seen: dict[str, int] = {}
        unknown: list[tuple[int, str]] = []
        renamed: list[str] = []
        spaced = 0
        for j, raw in enumerate(names, start=1):
            s = raw.strip()
            if s != raw:
                spaced += 1
            target = s if s in self.by_name else norm_schema.get(norm_header(s))
            if target is None:
                if s == "":
                    self.unnamed.append(j)
                else:
                    unknown.append((j, s))
                self.fileindex[j] = None
                continue
            if target != s:
                renamed.append(f"'{s}' -> '{target}'")
            if target in seen:
                sink.error(hline, j, f"column '{target}' appears twice (also column {seen[target]})",
                           "delete or rename one of them", target)
                self.fileindex[j] = None
                continue
            seen[target] = j
            self.colnum[target] = j
            self.fileindex[j] = target
        if spaced:
            sink.warning(hline, 0, f"{spaced} column name(s) have leading/trailing spaces; stripped")
        if renamed:
            sink.warning(hline, 0, "column names read as schema names: " + ", ".join(renamed),
                         "use the exact names from trials/schema.json")
        if not seen:
            self._no_known_column(hline, names)
            return False
        missing = [f for f in self.schema if f.name not in seen]
        unknown_names = [u for _, u in unknown]
        for f in missing:
            close = difflib.get_close_matches(f.name, unknown_names, n=1, cutoff=0.6)
            if close:
                hint = f"did you mean column '{close[0]}' (column {dict((u, j) for j, u in unknown)[close[0]]})? rename it to '{f.name}'"
            else:
                hint = f"add a column named '{f.name}'" + ("" if f.required else " (may be left empty)")
            if f.required:
                sink.error(hline, 0, f"required column '{f.name}' is missing", hint, f.name)
            elif close:  # a misspelt optional column would silently drop its data
                sink.error(hline, 0, f"column '{f.name}' is missing", hint, f.name)
            else:
                sink.warning(hline, 0, f"optional column '{f.name}' is missing; treated as empty", hint, f.name)
        missing_names = [f.name for f in missing]
        for j, u in unknown:
            close = difflib.get_close_matches(norm_header(u), missing_names, n=1, cutoff=0.6)
            if close:
                continue  # reported with the missing column, with this one as the hint
            sink.warning(hline, j, f"unknown column '{u}' (ignored)",
                         _REMOVED_COLUMNS.get(norm_header(u), "not in trials/schema.json"), u)
        return not any(f.required for f in missing) and not has_errors(sink.items)

    def _no_known_column(self, hline: int, names: list[str]) -> None:
        """One error for a header without a single registry column (instead of one per missing
        column): the file uses another separator, or line 1 is not the header."""
        line = self.delimiter.join(names)
        norm = {norm_header(f.name) for f in self.schema}
        hits = {d: sum(norm_header(x) in norm for x in line.split(d)) for d in _OTHER_SEPARATORS if d in line}
        best = max(hits, key=hits.get, default=None)
        if best is not None and hits[best] > 0:
            self.sink.error(hline, 0, f"fields are separated by {best!r}, which is not read: no column of the "
                            f"registry was found in the header ({hits[best]} names appear between {best!r})",
                            "export as CSV with ',' between fields (';' and tab are read too)")
            return
        self.sink.error(hline, 0, f"line {hline} is not a registry header: none of its {len(names)} field(s) "
                        f"is a column name (it starts {line[:40]!r})",
                        f"the first line must be the header: {','.join(f.name for f in self.schema[:4])},... "
                        "(trials/schema.json lists every column)")

    def _rows(self, data: tuple[tuple[int, tuple[str, ...]], ...], width: int) -> None:
        sink = self.sink
        spaces, ragged, unnamed = _Once(), _Once(), _Once()
        quirks = {DECIMAL_COMMA: _Once(), NON_ASCII_DIGITS: _Once(), _COMMA_IN_COMMA_FILE: _Once()}
        decimal_comma = self.delimiter != ","  # ';' and tab: European exports write 0,82
        too_many = _Once()
        for start, fields in data:
            if len(fields) > width and not any(f.strip() for f in fields[width:]):
                ragged.hit(start, width + 1)
                fields = fields[:width]
            r = len(self.rows)
            row: dict[str, Any] = {f.name: None for f in self.schema}
            lines: dict[str, int] = {}
            bad: set[str] = set()
            self.rows.append(row)
            self.lines.append(start)
            self.cell_lines.append(lines)
            self.bad.append(bad)
            self.n_rows += 1
            line = start
            line_of_field = []
            for j, raw in enumerate(fields, start=1):
                line_of_field.append(line)
                name = self.fileindex.get(j)
                if name is not None:
                    lines[name] = line
                line += raw.count("\n")
            if len(fields) != width:
                where = min(len(fields), width) + 1 if len(fields) < width else width + 1
                if len(fields) > width:
                    too_many.hit(start, where, value=f"{len(fields)}")
                else:
                    sink.error(start, where, f"this row has {len(fields)} fields but the header has {width}",
                               "quote text that contains the separator; check for a missing or extra separator")
                bad.update(row)
                continue
            for j, raw in enumerate(fields, start=1):
                name = self.fileindex.get(j)
                if name is None:
                    if j in self.unnamed and raw.strip():
                        unnamed.hit(line_of_field[j - 1], j)
                    continue
                s = raw.strip()
                if s != raw and s:
                    spaces.hit(lines[name], j, name)
                self._cell(r, name, s, j, lines[name], decimal_comma, quirks)
        if spaces.n:
            line, col, name = spaces.first
            sink.warning(line, col, f"{spaces.n} cell(s) have leading/trailing spaces; stripped (first here)", "", name)
        _file_wide(sink, quirks[_COMMA_IN_COMMA_FILE], too_many, width)
        commas, digits = quirks[DECIMAL_COMMA], quirks[NON_ASCII_DIGITS]
        if commas.n:
            line, col, name = commas.first
            sink.warning(line, col, f"{commas.n} number(s) written with a decimal comma (first here); read as decimal points",
                         "export with '.' as the decimal separator", name)
        if digits.n:
            line, col, name = digits.first
            sink.warning(line, col, f"{digits.n} number(s) written with non-ASCII digits (full-width or another "
                         "script; first here); read as 0-9", "retype the numbers with the digits 0-9", name)
        if unnamed.n:
            line, col, _ = unnamed.first
            sink.error(line, col, f"{unnamed.n} value(s) in a column without a name (first here)",
                       "name the column (see trials/schema.json) or delete it")
        elif self.unnamed:
            sink.warning(self.header_line, self.unnamed[0],
                         f"{len(self.unnamed)} empty column(s) without a name; ignored")
        if ragged.n:
            line, col, _ = ragged.first
            sink.warning(line, col, f"{ragged.n} row(s) end with extra empty fields (first here); ignored")

    def _cell(self, r: int, name: str, s: str, col: int, line: int, decimal_comma: bool,
              quirks: dict[str, _Once]) -> None:
        f = self.by_name[name]
        sink = self.sink
        row, bad = self.rows[r], self.bad[r]

        def err(msg, hint=""):
            sink.error(line, col, msg, hint, name)
            bad.add(name)

        if len(s) > MAX_FIELD_LENGTH:
            err(f"cell is {len(s)} characters long (at most {MAX_FIELD_LENGTH})",
                "move long text to a separate document and cite it; an unclosed quote?")
            return
        m = _CONTROL_RE.search(s)
        if m:
            err(f"control character U+{ord(m.group()):04X} at character {m.start() + 1}",
                "delete it (often pasted from a PDF)")
            return
        if s == "":
            if f.required:
                err("required value is empty", f"fill in {name}" + (f": {f.description}" if f.description else ""))
            return
        if f.type == "string" and self._lookalike(name, s, err):
            return
        if f.type == "string":
            if s[0] in "=@" or (s[0] in "+-" and not is_plain_number(s)):
                sink.warning(line, col, f"text starts with {s[0]!r} and may run as a spreadsheet formula",
                             "prefix it with an apostrophe in the sheet or reword it", name)
            if name == "p_value":
                s = self._p_comma(s, line, col, decimal_comma, quirks)
                if s is not None:
                    self._p_value(r, s, err, line, col)
                else:
                    bad.add(name)
                return
            if f.enum is not None and s not in f.enum:
                err(f"{s!r} is not an allowed {name}", suggest(s, f.enum, quote=True, limit=len(f.enum)))
                return
            if f.pattern and not re.fullmatch(f.pattern, s):
                hint = _PATTERN_HINTS.get(name, f"must match {f.pattern}")
                if name == "doi" and _DOI_PREFIX_RE.match(s):
                    hint = f"drop the prefix: '{_DOI_PREFIX_RE.sub('', s)}'"
                err(f"{s!r} is not a valid {name}", hint)
                return
            row[name] = s
            return
        # numbers and integers
        v, msg, quirk = parse_number(s, decimal_comma)
        if v is None and parse_number(s, True)[0] is not None:  # '0,82' in a ','-separated file
            quirks[_COMMA_IN_COMMA_FILE].hit(line, col, name, s)
            bad.add(name)
            return
        if v is None:
            err(f"{msg} ({name} is {'a whole number' if f.type == 'integer' else 'numeric'})", _number_hint(s, decimal_comma))
            return
        if quirk:
            quirks[quirk].hit(line, col, name)
        if not math.isfinite(v):
            err(f"{s!r} is not a finite number", "leave the cell empty when the value is unknown")
            return
        if f.type == "integer":
            if v != int(v):
                err(f"{s!r} is not a whole number", f"{name} counts or codes are integers")
                return
            v = int(v)
        bad_value = _schema_range_error(f, v, s)
        if bad_value:
            err(*bad_value)
            return
        if name == "ci_level" and v < 1:
            err(f"ci_level {s} looks like a fraction; the registry stores percent", f"write {v * 100:g} for a {v:.0%} CI")
            return
        if name == "ci_level" and not _is_level(v):
            err(f"ci_level {s} is not a confidence level (50 to below 100 percent)", "ci_level is in percent: 95 for a 95% CI")
            return
        row[name] = v

    def _lookalike(self, name: str, s: str, err) -> bool:
        """Report a look-alike character in a code cell (see :data:`_CODE_COLUMNS`); True if found."""
        if not (name in _CODE_COLUMNS or self.by_name[name].enum is not None or name in _SELECTED_TEXT_COLUMNS):
            return False
        hit = lookalike_character(s)
        if hit is None or (name in _SELECTED_TEXT_COLUMNS and hit[2] != "invisible"):
            return False
        pos, ch, kind = hit
        what = {"invisible": "invisible character", "compatibility": "look-alike character",
                "mixed-script": "non-Latin letter"}[kind]
        reads = f" (reads as {identity_key(ch)!r})" if kind == "compatibility" else ""
        err(f"{what} U+{ord(ch):04X} {unicodedata.name(ch, '')} at character {pos} of {s!r}{reads}",
            _LOOKALIKE_HINTS[kind])
        return True

    @staticmethod
    def _p_comma(s: str, line: int, col: int, decimal_comma: bool, quirks: dict[str, _Once]) -> str | None:
        """A p-value written with a decimal comma (``0,026``, ``<0,001``): with a decimal point in a
        ';'/tab file (one quirk warning), None (counted for the file-wide error) in a ','-separated one."""
        m = _P_COMMA_RE.match(s)
        if not m:
            return s
        if decimal_comma:
            quirks[DECIMAL_COMMA].hit(line, col, "p_value")
            return s.replace(",", ".")
        quirks[_COMMA_IN_COMMA_FILE].hit(line, col, "p_value", s)
        return None

    def _p_value(self, r, s, err, line, col) -> None:
        try:
            pv = ef.parse_p_value(s)
        except ValueError as e:
            err(str(e), "" if "cannot read" in str(e) else "a p-value is in (0, 1]")
            return
        f = self.by_name["p_value"]
        if f.pattern and not re.fullmatch(f.pattern, s):
            canon = ("" if pv.relation == "=" else pv.relation.replace("<=", "≤").replace(">=", "≥")) + (
                s.split("=")[-1].strip().lstrip("<>≤≥ ") if "=" in s else re.sub(r"^[^0-9.]*", "", s))
            self.sink.warning(line, col, f"p-value {s!r} read as {pv.relation} {pv.value:g}", f"write it as '{canon}'", "p_value")
        self.rows[r]["p_value"] = s
        self.rows[r]["_p"] = pv

    # -- rules across columns and rows
    def _cross_row(self) -> None:
        self._unique_columns()
        n = len(self.rows)
        row_ids = {self.rows[r]["row_id"] for r in range(n) if self.present(r, "row_id")}
        trial_ids = {self.rows[r]["trial_id"] for r in range(n) if self.present(r, "trial_id")}
        self._duplicate_rows()
        for r in range(n):
            self._row_rules(r, row_ids | trial_ids)
            self._synthesis_rules(r, trial_ids)
        self._pooling_rule()
        self._one_trial_one_identity()
        self._directions()

    def _synthesis_rules(self, r: int, trial_ids: set) -> None:
        """A published synthesis (design ``published synthesis``) is a check, never pooled: it says
        ``use_for_pooling = no`` and names the trials it combined in ``pooled_from`` (``trial_id``
        values; one this registry lacks is a warning); ``pooled_from`` belongs to such rows only."""
        row = self.rows[r]
        synthesis = row.get("design") == PUBLISHED_SYNTHESIS
        if not synthesis:
            if self.present(r, "pooled_from"):
                self.at(r, "pooled_from", "error", "pooled_from is given but the design is not 'published synthesis'",
                        "empty the cell, or set design = published synthesis for a pooled result published by others")
            return
        if row.get("use_for_pooling") == "yes":
            self.at(r, "use_for_pooling", "error", "a published synthesis says use_for_pooling = yes: its patients are "
                    "those of the trials it combined, which would count twice",
                    "set use_for_pooling = no; the plan shows it beside an analysis with published = [...]")
        if not self.present(r, "pooled_from"):
            if "pooled_from" not in self.bad[r]:
                self.at(r, "pooled_from", "error", "a published synthesis needs pooled_from: the trials it combined",
                        "list their trial_id values separated by ';', e.g. DMAB-ZA-BREAST; DMAB-ZA-CRPC")
            return
        named = [t.strip() for t in row["pooled_from"].split(";") if t.strip()]
        for t in named:  # a synthesis may combine trials this registry lacks: a warning (a typo is likely)
            if t not in trial_ids:
                self.at(r, "pooled_from", "warning", f"pooled_from names {t!r}, which is not a trial_id in this "
                        "registry: the page will say the published result includes a trial ours lacks",
                        suggest(t, sorted(trial_ids), quote=True))
        if len(set(named)) < 2:
            self.at(r, "pooled_from", "warning", "a published synthesis of fewer than two trials",
                    "a single trial's report is a row of that trial, not a synthesis")

    def _one_trial_one_identity(self) -> None:
        """Rows with one NCT id are one trial: a second ``trial_id`` for it is an error unless the
        rows are linked as the same patients (same ``patient_set``, or ``parent_row_id`` naming
        the other row or its trial). Otherwise the trial would be pooled twice, as two trials.
        NCT ids, trial ids and patient sets are compared by :func:`~metaanalysis.table.identity_key`.
        """
        trials_of: dict[str, dict[str, list[int]]] = {}  # nct key -> trial key -> its rows
        for r, row in enumerate(self.rows):
            if not (self.present(r, "nct_id") and self.present(r, "trial_id") and self.present(r, "patient_set")):
                continue
            trials = trials_of.setdefault(identity_key(row["nct_id"]), {})
            tkey = identity_key(row["trial_id"])
            others = [rows[0] for t, rows in trials.items()
                      if t != tkey and not any(self._linked(r, o) for o in rows)]
            if others:
                o = self.rows[others[0]]
                self.at(r, "nct_id", "error",
                        f"{row['nct_id']} is also trial {o['trial_id']!r} (row {o['row_id']!r}, line {self.lines[others[0]]}), "
                        f"a different trial_id and patient_set: the same patients would be pooled as two trials",
                        f"use trial_id {o['trial_id']!r} and patient_set {o['patient_set']!r} for every report of "
                        "this trial, link the rows with parent_row_id, or correct the NCT id")
            trials.setdefault(tkey, []).append(r)

    def _directions(self) -> None:
        """``direction`` of effect rows: it must name the row's measure, its null value (1 for
        ratios, 0 for differences) and an arm; rows of one endpoint must agree on which arm a
        value below the null favours (pooled together, a row oriented the other way would count
        against its own result). Free text for PROP, GMR and PVAL rows (nothing is pooled)."""
        first: dict[tuple, tuple[int, str]] = {}
        for r, row in enumerate(self.rows):
            m = row.get("measure")
            if m not in EFFECT_MEASURES or not self.present(r, "direction") or not self.present(r, "endpoint"):
                continue
            side = self._direction_side(r, m)
            if side is None:
                continue
            key = (row["endpoint"], identity_key(row.get("endpoint_detail") or "") if row["endpoint"] == "OTHER" else "")
            o, o_side = first.setdefault(key, (r, side))
            if o_side != side:
                null = 1 if m in RATIO_MEASURES else 0
                self.at(r, "direction", "error",
                        f"direction says a {m} below {null} favours the {side}, but row {self.rows[o]['row_id']!r} "
                        f"(line {self.lines[o]}) of endpoint {row['endpoint']} says the {o_side}: pooled together, "
                        "one of them would count in the wrong direction",
                        "re-orient this row (1/ratio with the CI bounds swapped, or the difference negated) "
                        "and its direction, or correct the direction")

    def _direction_side(self, r: int, m: str) -> str | None:
        """Which arm (``"intervention"`` or ``"comparator"``) a value below the null favours, by
        the row's ``direction``; None with the error reported when it cannot be read."""
        row = self.rows[r]
        null = 1 if m in RATIO_MEASURES else 0
        example = f"e.g. '{m} < {null} favours {row.get('intervention') or 'the intervention'}'"
        d = _DIRECTION_RE.match(row["direction"])
        if d is None:
            self.at(r, "direction", "error", f"direction {row['direction']!r} does not say which arm a {m} below "
                    f"{null} favours", example)
        elif d["measure"].upper() != m:
            self.at(r, "direction", "error", f"direction speaks of {d['measure']} but the row's measure is {m}", example)
        elif parse_number(d["null"])[0] != null:
            self.at(r, "direction", "error", f"direction compares the {m} with {d['null']}, not with its null value "
                    f"{null}", example)
        else:
            arm = _arm_named(d["arm"], row.get("intervention") or "", row.get("comparator") or "")
            if arm is None:
                self.at(r, "direction", "error", f"direction favours {d['arm']!r}, which names neither the "
                        f"intervention ({row.get('intervention')!r}) nor the comparator ({row.get('comparator')!r})",
                        example)
                return None
            return _below_null_side(arm, d["op"])
        return None

    def _linked(self, r: int, o: int) -> bool:
        """Rows ``r`` and ``o`` are declared the same patients (patient_set or parent_row_id)."""
        a, b = self.rows[r], self.rows[o]
        if identity_key(a["patient_set"]) == identity_key(b["patient_set"]):
            return True
        def names(x):
            return {identity_key(x.get("row_id") or ""), identity_key(x["trial_id"])}

        def parent(x):
            return identity_key(x.get("parent_row_id") or "")

        return parent(a) in names(b) or parent(b) in names(a)

    def _unique_columns(self) -> None:
        """Columns the schema marks unique (row_id)."""
        n = len(self.rows)
        for f in self.schema:
            if not f.unique:
                continue
            first: dict[Any, int] = {}
            for r in range(n):
                if not self.present(r, f.name):
                    continue
                v = self.rows[r][f.name]
                if v in first:
                    self.at(r, f.name, "error", f"{f.name} {v!r} is used twice (first on line {self.lines[first[v]]})",
                            f"{f.name} must be unique; add a suffix such as -2022")
                    self.bad[r].add(f.name)
                else:
                    first[v] = r

    def _duplicate_rows(self) -> None:
        """Rows equal in every column but row_id."""
        n = len(self.rows)
        seen: dict[tuple, int] = {}
        for r in range(n):
            if self.bad[r] and len(self.bad[r]) == len(self.schema):
                continue
            key = tuple((k, self.rows[r].get(k)) for k in self.by_name if k != "row_id")
            if key in seen:
                o = seen[key]
                self.at(r, "row_id", "error", f"row repeats row {self.rows[o]['row_id']!r} (line {self.lines[o]}) in every column but row_id",
                        "delete the duplicate, or record what distinguishes it (report, analysis_population)")
            else:
                seen[key] = r

    def _row_rules(self, r: int, known_ids: set) -> None:
        """Rules across the columns of one row (parent, status, PVAL, CI completeness, counts)."""
        row = self.rows[r]
        # parent_row_id
        if self.present(r, "parent_row_id"):
            p = row["parent_row_id"]
            if p == row.get("row_id"):
                self.at(r, "parent_row_id", "error", "a row cannot be its own parent", "leave parent_row_id empty")
            elif p not in known_ids:
                self.at(r, "parent_row_id", "error", f"parent_row_id {p!r} is neither a row_id nor a trial_id in this registry",
                        suggest(p, sorted(known_ids), quote=True))
        # status rules
        st = row.get("status")
        has_est = self.present(r, "estimate")
        has_p = self.present(r, "p_value")
        if st == "missing" and has_est:
            self.at(r, "estimate", "error", "status is 'missing' but an estimate is given",
                    "leave estimate empty for a result that was not extracted, or set status to confirmed/secondary/unconfirmed")
        counts = all(self.present(r, k) for k in ("events_int", "n_int", "events_ctl", "n_ctl"))
        if (st == "confirmed" and not has_est and not has_p and not counts
                and "estimate" not in self.bad[r] and "p_value" not in self.bad[r]):
            self.at(r, "status", "error", "status is 'confirmed' but neither an estimate, a p-value nor 2x2 counts are given",
                    "fill in the result, or set status to 'missing'")
        m = row.get("measure")
        if m == "PVAL" and has_est:
            self.at(r, "estimate", "error", "measure PVAL means 'p-value only' but an estimate is given",
                    "set measure to the estimate's measure (HR, OR, ...)")
        if m == "PVAL" and not has_p and st != "missing" and "p_value" not in self.bad[r]:
            self.at(r, "p_value", "error", "measure PVAL but no p-value", "fill in p_value or set status to 'missing'")
        if self.present(r, "p_sided") and not has_p and "p_value" not in self.bad[r]:
            self.at(r, "p_sided", "warning", "p_sided is given but p_value is empty")
        # CI completeness and level
        lo, hi = self.present(r, "ci_lower"), self.present(r, "ci_upper")
        if lo != hi and "ci_lower" not in self.bad[r] and "ci_upper" not in self.bad[r]:
            miss = "ci_upper" if lo else "ci_lower"
            self.at(r, miss, "error", f"only one CI bound is given ({miss} is empty)", "give both bounds or neither")
            self.bad[r].add(miss)
        if lo and hi and not self.present(r, "ci_level") and "ci_level" not in self.bad[r]:
            self.at(r, "ci_level", "error", "a CI is given but ci_level is empty", "ci_level is in percent: 95 for a 95% CI")
            self.bad[r].add("ci_level")
        if (lo or hi) and not has_est and "estimate" not in self.bad[r]:
            self.at(r, "estimate", "error", "a CI is given without an estimate", "fill in the point estimate")
        # counts
        for ev, nn in (("events_int", "n_int"), ("events_ctl", "n_ctl")):
            if self.present(r, ev) and self.present(r, nn) and row[ev] > row[nn]:
                self.at(r, ev, "error", f"{ev} {row[ev]} exceeds {nn} {row[nn]}", "events cannot exceed patients")
                self.bad[r].add(ev)
        if row.get("design") == "single-arm" and self.present(r, "comparator") and row["comparator"].casefold() != "none":
            self.at(r, "comparator", "warning", f"single-arm design with comparator {row['comparator']!r}",
                    "write 'none' for studies without a comparator arm")

    def _pooling_rule(self) -> None:
        """At most one ``use_for_pooling = yes`` row per (patient_set, endpoint[, endpoint_detail for OTHER]).

        Rows sharing a patient_set describe the same patients (all reports of a trial, a
        subgroup and its parent); an analysis may take one of them per endpoint, and
        ``use_for_pooling`` says which by default. For endpoint OTHER the detail tells
        different outcomes apart.
        """
        first: dict[tuple, int] = {}
        for r, row in enumerate(self.rows):
            if row.get("use_for_pooling") != "yes" or not self.present(r, "patient_set") or not self.present(r, "endpoint"):
                continue
            key = (identity_key(row["patient_set"]), row["endpoint"],
                   identity_key(row.get("endpoint_detail") or "") if row["endpoint"] == "OTHER" else "")
            if key in first:
                o = first[key]
                self.at(r, "use_for_pooling", "error",
                        f"two rows for patient_set {row['patient_set']!r} and endpoint {key[1]} say use_for_pooling = yes "
                        f"(also {self.rows[o]['row_id']!r}, line {self.lines[o]})",
                        "an analysis may use one report per trial and endpoint: set the others to 'no'")
            else:
                first[key] = r

    def _effects(self) -> None:
        def col(name, rows):
            return np.array([self.rows[r][name] if self.present(r, name) else np.nan for r in rows], dtype=float)

        # descriptive measures get the CI sanity checks too: GMR all of them (log scale), PROP
        # only the errors (exact/Wilson CIs of a proportion are legitimately asymmetric)
        desc = [r for r in range(len(self.rows)) if self.rows[r].get("measure") in ("GMR", "PROP")]
        if desc:
            meas = [self.rows[r]["measure"] for r in desc]
            for issue in ef.check_ci(col("estimate", desc), col("ci_lower", desc), col("ci_upper", desc),
                                     measure=meas):
                r = desc[issue.index]
                if issue.severity == "error" or self.rows[r]["measure"] == "GMR":
                    self.at(r, issue.field, issue.severity, issue.message, issue.hint)
        self._p_sidedness()
        idx = [r for r in range(len(self.rows)) if self.rows[r].get("measure") in EFFECT_MEASURES]
        if not idx:
            return

        meas = [self.rows[r]["measure"] for r in idx]
        for issue in ef.check_ci(col("estimate", idx), col("ci_lower", idx), col("ci_upper", idx), measure=meas):
            r = idx[issue.index]
            self.at(r, issue.field, issue.severity, issue.message, issue.hint)
            if issue.severity == "error":
                self.bad[r].add("ci_lower")
        pidx = [r for r in idx if "_p" in self.rows[r] and not {"ci_lower", "ci_upper", "estimate", "ci_level"} & self.bad[r]]
        if pidx:
            pv = [self.rows[r]["_p"] for r in pidx]
            issues = ef.check_p_vs_ci(
                col("estimate", pidx), col("ci_lower", pidx), col("ci_upper", pidx), col("ci_level", pidx) / 100.0,
                [p.value for p in pv], [p.relation for p in pv], [p.decimals for p in pv],
                [p.sided for p in pv], [self.rows[r]["measure"] for r in pidx])
            for issue in issues:
                self.at(pidx[issue.index], issue.field, issue.severity, issue.message, issue.hint)
        # what cannot be pooled, said early
        for r in idx:
            row = self.rows[r]
            if row.get("status") == "missing" or {"estimate", "ci_lower", "p_value"} & self.bad[r]:
                continue
            if not self.present(r, "estimate") and not self.present(r, "events_int"):
                continue  # nothing extracted: the status rules speak for it
            reason = self._not_poolable_reason(r)
            if reason:
                self.at(r, "estimate", "warning", f"not poolable: {reason}",
                        "add the CI, an exact p-value or the 2x2 counts if the source has them")

    def _p_sidedness(self) -> None:
        """Give every parsed p-value its sidedness (``p_sided``, 2 when empty or invalid)."""
        for r, row in enumerate(self.rows):
            if "_p" in row and self.present(r, "p_sided"):
                row["_p"] = replace(row["_p"], sided=int(row["p_sided"]))

    def _not_poolable_reason(self, r: int) -> str | None:
        """Why a row with an effect measure cannot give (yi, vi), or None (:func:`effects.effect_source`)."""
        row = self.rows[r]

        def given(*names: str) -> bool:
            return all(self.present(r, n) for n in names)

        return ef.effect_source(row["measure"], row["estimate"] if given("estimate") else None,
                                given("ci_lower", "ci_upper", "ci_level"), row.get("_p"),
                                given(*_COUNT_COLUMNS), row.get("p_value") or "").reason

    # -- output
    def p_values(self) -> dict[str, ef.PValue]:
        """``row_id`` -> typed p-value, for rows with a readable p-value."""
        return {row["row_id"]: row["_p"] for row in self.rows if "_p" in row and row.get("row_id") is not None}

    def records(self) -> tuple[dict[str, Any], ...]:
        """The typed rows of :class:`Registry`: schema columns only, plus ``source_line``."""
        kinds = {"number": float, "integer": int}
        out = []
        for row, line in zip(self.rows, self.lines):
            rec: dict[str, Any] = {}
            for f in self.schema:
                v = row.get(f.name)
                # the types a frame's ``to_dict("records")`` gives back: 95 in a number column is 95.0
                rec[f.name] = None if v is None else kinds.get(f.type, str)(v)
            rec["source_line"] = int(line)
            out.append(rec)
        return tuple(out)


def _frame(schema: tuple[SchemaField, ...], records: tuple[Mapping[str, Any], ...]) -> pd.DataFrame:
    """:attr:`Registry.df`: one column per schema field with the dtype of its type, plus ``source_line``."""
    import pandas as pd

    data: dict[str, Any] = {}
    for f in schema:
        vals = [rec[f.name] for rec in records]
        if f.type == "number":
            data[f.name] = pd.array([np.nan if v is None else v for v in vals], dtype="float64")
        elif f.type == "integer":
            data[f.name] = pd.array(vals, dtype="Int64")
        else:
            data[f.name] = pd.array(vals, dtype="string")
    data["source_line"] = pd.array([rec["source_line"] for rec in records], dtype="int64")
    return pd.DataFrame(data)


def _schema_range_error(f: SchemaField, v: float, s: str) -> tuple[str, str] | None:
    """(message, hint) when the number ``v`` (written ``s``) breaks the column's enum or bounds."""
    if f.enum is not None and v not in f.enum:
        return f"{s!r} is not an allowed {f.name}", "allowed: " + ", ".join(str(e) for e in f.enum)
    if f.minimum is not None and v < f.minimum:
        return f"{s} is below the minimum {f.minimum:g}", ""
    if f.maximum is not None and v > f.maximum:
        return f"{s} is above the maximum {f.maximum:g}", ""
    if f.exclusive_minimum is not None and v <= f.exclusive_minimum:
        return f"{s} must be greater than {f.exclusive_minimum:g}", ""
    if f.exclusive_maximum is not None and v >= f.exclusive_maximum:
        return f"{s} must be less than {f.exclusive_maximum:g}", _above_maximum_hint(f.name, v)
    return None


def _above_maximum_hint(name: str, v: float) -> str:
    """Why a value is too large, when the column has a usual cause (percent, a date cell)."""
    if name == "ci_level":
        return "ci_level is in percent: 95 for a 95% CI"
    if name == "followup_months" and v == int(v) and EXCEL_SERIAL_RANGE[0] <= v <= EXCEL_SERIAL_RANGE[1]:
        day = datetime.date(1899, 12, 30) + datetime.timedelta(days=int(v))
        return (f"{v:g} is the Excel date serial of {day.isoformat()}: the cell was formatted as a date; "
                "format it as a number and enter the follow-up in months")
    if name == "followup_months":
        return "follow-up is in months: years x 12 (and say so in notes)"
    return ""


def _is_level(percent: float) -> bool:
    """``ci_level`` (percent) obeys the one level rule (:func:`metaanalysis.vocab.as_level`)."""
    try:
        as_level(percent)
    except ValueError:
        return False
    return True


# --- public API -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RegistryCheck:
    """Everything one reading of a registry found.

    Attributes
    ----------
    problems : tuple of Problem
        Errors and warnings, sorted by line and column.
    registry : Registry or None
        The checked registry; None when there is at least one error.
    n_rows : int
        Data rows read (also when there are errors; 0 when the file could not be read).
    """

    problems: tuple[Problem, ...]
    registry: Registry | None
    n_rows: int


def check_registry(path: str | Path, schema_path: str | Path | None = None) -> RegistryCheck:
    """Read and check the registry once; never raises for data problems.

    Parameters
    ----------
    path : str or Path
        The CSV (see the module docstring for the accepted spreadsheet quirks).
    schema_path : str or Path, optional
        Table Schema to check against (default: the project's ``trials/schema.json``).
    """
    chk = _Checker(str(path), load_schema(schema_path))
    table = read_table(path, [f.name for f in chk.schema], what="a registry CSV",
                       missing_hint="check the path (default: trials/registry.csv)")
    chk.run(table)
    problems = tuple(sorted(chk.sink.items))
    if has_errors(problems) or table.raw is None:
        return RegistryCheck(problems, None, chk.n_rows)
    registry = Registry(path=str(path), sha256=table.sha256, records=chk.records(), problems=problems,
                        columns=dict(chk.colnum), delimiter=chk.delimiter, p_values=chk.p_values(), schema=chk.schema)
    return RegistryCheck(problems, registry, chk.n_rows)


def validate_registry(path: str | Path, schema_path: str | Path | None = None) -> list[Problem]:
    """Every problem in the registry (errors and warnings), sorted by line and column; never raises for data problems."""
    return list(check_registry(path, schema_path).problems)


def load_registry(path: str | Path, schema_path: str | Path | None = None) -> Registry:
    """Read and check the registry.

    Parameters
    ----------
    path : str or Path
        The CSV (see the module docstring for the accepted spreadsheet quirks).
    schema_path : str or Path, optional
        Table Schema to check against (default: the project's ``trials/schema.json``).

    Returns
    -------
    Registry
        With ``.df``, ``.problems`` (warnings only), ``.sha256``, ``.path``, ``.p_values``.

    Raises
    ------
    ProblemError
        With all problems (errors and warnings) when there is at least one error.
    """
    checked = check_registry(path, schema_path)
    if checked.registry is None:
        raise ProblemError(checked.problems)
    return checked.registry


#: Why rows of the non-comparative measures never give (yi, vi).
_NOT_COMPARATIVE = {"PROP": "single-arm proportion: no comparative effect",
                    "GMR": "within-group geometric mean ratio: no comparative effect",
                    "PVAL": "p-value only: no effect estimate"}


def effects_table(registry: Registry) -> pd.DataFrame:
    """Per registry row: the effect on the analysis scale and how it was obtained.

    The source is decided by :func:`effects.effect_source`: estimate + CI (``se_source =
    "ci"``, :func:`effects.from_ci`), else estimate + p-value (``"p"``, :func:`effects.from_p`;
    ``derived`` and possibly ``imprecise``), else 2x2 counts for OR / RR / RD (``"2x2"``,
    :func:`effects.from_2x2`, metafor's ``add=1/2, to="only0"``; double-zero studies are not
    poolable), else not poolable (``reason``). Rows with status ``missing`` or measure
    PROP / GMR / PVAL are never poolable.

    Returns
    -------
    pandas.DataFrame
        Columns ``row_id, measure, yi, vi, se_source, derived, imprecise, reason,
        source_line`` in registry order; ``yi``/``vi`` NaN and ``se_source`` None when not poolable.
    """
    import pandas as pd

    df = registry.df
    cols = {c: df[c].to_numpy(dtype=float, na_value=np.nan)
            for c in ("estimate", "ci_lower", "ci_upper", "ci_level") + _COUNT_COLUMNS}
    out = [_row_effect(df.at[i, "measure"], df.at[i, "status"],
                       {c: float(v[i]) for c, v in cols.items()}, registry.p_values.get(str(df.at[i, "row_id"])),
                       "" if pd.isna(df.at[i, "p_value"]) else str(df.at[i, "p_value"]))
           for i in range(len(df))]
    return pd.DataFrame({
        "row_id": df["row_id"].astype(str).to_numpy(),
        "measure": df["measure"].astype(str).to_numpy(),
        "yi": np.array([e.yi for e in out], dtype=float),
        "vi": np.array([e.vi for e in out], dtype=float),
        "se_source": pd.Series([e.source for e in out], dtype=object),
        "derived": np.array([e.derived for e in out], dtype=bool),
        "imprecise": np.array([e.imprecise for e in out], dtype=bool),
        "reason": pd.Series([e.reason for e in out], dtype=object),
        "source_line": df["source_line"].to_numpy(),
    })


@dataclass(frozen=True)
class _RowEffect:
    yi: float = math.nan
    vi: float = math.nan
    source: str | None = None
    derived: bool = False
    imprecise: bool = False
    reason: str | None = None


def _row_effect(m: str, status: str, x: Mapping[str, float], pv: ef.PValue | None, ptext: str) -> _RowEffect:
    """One row of :func:`effects_table` (``x``: the numeric cells, NaN when empty; ``ptext``: the p_value cell, '' when empty)."""
    if status == "missing":
        return _RowEffect(reason="result not extracted (status missing)")
    if m not in EFFECT_MEASURES:
        return _RowEffect(reason=_NOT_COMPARATIVE.get(m, f"measure {m}"))
    est = x["estimate"]
    has_ci = not any(math.isnan(x[c]) for c in ("ci_lower", "ci_upper", "ci_level"))
    has_counts = not any(math.isnan(x[c]) for c in _COUNT_COLUMNS)
    choice = ef.effect_source(m, est, has_ci, pv, has_counts, ptext)
    if choice.source == "ci":
        y, v = ef.from_ci(est, x["ci_lower"], x["ci_upper"], level=x["ci_level"] / 100.0, measure=m)
        return _RowEffect(float(y), float(v), "ci")
    if choice.source == "p":
        try:
            y, v, flags = ef.from_p(est, pv.value, sided=pv.sided, measure=m,
                                    p_is_inequality=pv.is_inequality, p_decimals=pv.decimals)
        except ValueError as e:
            return _RowEffect(reason=str(e))
        return _RowEffect(float(y), float(v), "p", True, bool(flags[ef.IMPRECISE]))
    if choice.source == "2x2":
        ai, n1, ci, n2 = (x[c] for c in _COUNT_COLUMNS)
        if ef.is_double_zero(ai, n1 - ai, ci, n2 - ci) and m != "RD":
            return _RowEffect(reason="no events (or only events) in both arms: the ratio is not estimable")
        y, v = ef.from_2x2(ai, n1 - ai, ci, n2 - ci, measure=m)
        return _RowEffect(float(y), float(v), "2x2", True)
    return _RowEffect(reason=choice.reason)
