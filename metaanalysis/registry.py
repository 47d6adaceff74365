"""The edge: the trial registry CSV -> checked, typed rows (and every problem with file:line:column).

``load_registry(path)`` returns a frozen :class:`Registry` (a pandas DataFrame with proper
dtypes, each row's source line, the warnings, the file's SHA-256) or raises
:class:`~metaanalysis.problems.ProblemError` with *all* problems at once.
``validate_registry(path)`` returns the problems and never raises for data problems.
``effects_table(registry)`` gives per row ``yi, vi`` via :mod:`metaanalysis.effects`.

The column contract is the Frictionless Table Schema ``trials/schema.json``
(https://specs.frictionlessdata.io/table-schema/). Lines are 1-based physical lines as an
editor shows them (the header is line 1; a quoted field spanning lines counts every line);
columns are 1-based CSV field numbers (0 = the whole line or file).

Spreadsheet-export policy (each accepted quirk gives one warning, never silence):

- UTF-8 with or without BOM, LF or CRLF: accepted silently.
- Not UTF-8: decoded as Windows-1252 (Excel's "CSV" on Windows) with a warning naming the
  first non-UTF-8 byte's line and column; bytes cp1252 cannot decode, or NUL bytes
  (binary files), are an error. UTF-16 with a BOM (Excel "Unicode text") is decoded with a warning.
- ``;``- or tab-separated files: detected from the header (the separator whose fields
  match the schema's column names) and read with a warning. With ``;`` a decimal comma
  in a numeric column (``0,82``) is read as 0.82 with one warning.
- Leading/trailing spaces in cells and headers are stripped (one warning with the count).
- Header names differing only in case, spaces/hyphens vs underscores, or surrounding
  spaces (``"Estimate "``) are read as the schema column with a warning; other unknown
  columns are warnings; a missing required column is an error with a did-you-mean hint.
- Blank lines and lines of only separators are ignored. Excel scientific notation
  (``1.5E-05``) is a number; whole numbers written ``12.0`` are integers.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from . import effects as ef
from .problems import Problem, ProblemError, has_errors, suggest

__all__ = [
    "Registry",
    "SchemaField",
    "load_schema",
    "load_registry",
    "validate_registry",
    "effects_table",
    "cli_validate",
    "MAX_FIELD_LENGTH",
]

#: Longest accepted cell, in characters (a registry cell is a number or a note, not a document).
MAX_FIELD_LENGTH = 2000
_SCHEMA_CANDIDATES = (
    Path(__file__).resolve().parent / "data" / "registry_schema.json",
    Path(__file__).resolve().parent.parent / "trials" / "schema.json",
)
# Line breaks and tabs are allowed inside quoted cells; other C0/C1 control characters never.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_DOI_PREFIX_RE = re.compile(r"(?i)^(?:https?://)?(?:dx\.)?doi\.org/|^doi:\s*")
_DECIMAL_COMMA_RE = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")
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
    df : pandas.DataFrame
        One row per data row, schema columns in schema order with dtypes ``string``
        (missing = ``<NA>``), ``float64`` (numbers, missing = NaN) and ``Int64`` (integers),
        plus ``source_line`` (int): the physical line the row starts on.
    problems : tuple of Problem
        Warnings (a Registry never holds errors).
    columns : Mapping[str, int]
        Schema column -> its 1-based column number in the file (0 when absent).
    delimiter : str
    """

    path: str
    sha256: str
    df: pd.DataFrame
    problems: tuple[Problem, ...] = ()
    columns: Mapping[str, int] = field(default_factory=dict)
    delimiter: str = ","

    def __len__(self) -> int:
        return len(self.df)

    def line_of(self, row_id: str) -> int:
        """Source line of the row with this ``row_id`` (KeyError if there is none)."""
        hit = self.df.index[self.df["row_id"] == row_id]
        if len(hit) == 0:
            raise KeyError(row_id)
        return int(self.df.loc[hit[0], "source_line"])

    def problem(self, row_id: str | None, column: str | None, severity: str, message: str, hint: str = "") -> Problem:
        """A Problem located at a row's cell (for layers above, e.g. the analysis plan)."""
        line = self.line_of(row_id) if row_id is not None else 1
        col = self.columns.get(column, 0) if column else 0
        return Problem(self.path, line, col, severity, message, hint, column or "")


# --- problem collection --------------------------------------------------------------------


class _Sink:
    def __init__(self, path: str):
        self.path = path
        self.items: list[Problem] = []

    def add(self, line: int, col: int, severity: str, message: str, hint: str = "", name: str = "") -> None:
        self.items.append(Problem(self.path, int(line), int(col), severity, message, hint, name))

    def error(self, line, col, message, hint="", name=""):
        self.add(line, col, "error", message, hint, name)

    def warning(self, line, col, message, hint="", name=""):
        self.add(line, col, "warning", message, hint, name)


class _Once:
    """Count occurrences of a quirk, remember the first; emit one warning at the end."""

    def __init__(self):
        self.n = 0
        self.first: tuple[int, int, str] | None = None

    def hit(self, line: int, col: int, name: str = "") -> None:
        self.n += 1
        if self.first is None:
            self.first = (line, col, name)


def _norm_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().casefold())


# --- reading bytes -> text -> records --------------------------------------------------------


@dataclass
class _Parsed:
    text: str | None = None
    delimiter: str = ","
    records: list[tuple[int, list[str]]] = field(default_factory=list)  # (start line, fields)
    cp1252_at: tuple[int, int] | None = None  # (line, character) of the first non-UTF-8 byte


def _decode(raw: bytes, sink: _Sink, parsed: _Parsed) -> str | None:
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            sink.error(1, 0, "file starts with a UTF-16 byte-order mark but is not valid UTF-16",
                       "save the sheet as 'CSV UTF-8'")
            return None
        sink.warning(1, 0, "file is UTF-16 (Excel 'Unicode text'); read as such", "save the sheet as 'CSV UTF-8'")
        return text.lstrip("\ufeff")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        sink.error(line, 0, "this is not a text file (NUL byte found)",
                   "export the registry as CSV (UTF-8), not as .xlsx or another binary format")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        pos = e.start
        line = raw.count(b"\n", 0, pos) + 1
        char = pos - (raw.rfind(b"\n", 0, pos) + 1) + 1
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as e2:
            pos = e2.start  # report the byte that neither encoding can read
            line = raw.count(b"\n", 0, pos) + 1
            char = pos - (raw.rfind(b"\n", 0, pos) + 1) + 1
            col = raw.decode("latin-1").splitlines()[line - 1][: char - 1].count(",") + 1
            sink.error(line, col, f"not UTF-8 text: byte 0x{raw[pos]:02X} at character {char} cannot be decoded "
                       "(nor as Windows-1252)", "save the file as 'CSV UTF-8'")
            return None
        parsed.cp1252_at = (line, char)
        return text


def _split_header_line(text: str) -> str:
    # The header never holds quoted line breaks in practice; use the first non-blank line.
    for ln in text.splitlines():
        if ln.strip():
            return ln
    return ""


def _detect_delimiter(text: str, schema_names: set[str]) -> tuple[str, int]:
    """Pick the separator whose header fields match the most schema columns -> (delimiter, matches)."""
    header = _split_header_line(text)
    norm = {_norm_header(n) for n in schema_names}
    best, best_hits = ",", -1
    for d in (",", ";", "\t"):
        if d != "," and d not in header:
            continue
        try:
            fields = next(csv.reader([header], delimiter=d))
        except (csv.Error, StopIteration):
            continue
        hits = sum(_norm_header(f.lstrip("\ufeff")) in norm for f in fields)
        if hits > best_hits:
            best, best_hits = d, hits
    return best, best_hits


def _records(text: str, delimiter: str, sink: _Sink) -> list[tuple[int, list[str]]] | None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    out = []
    prev = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            msg = str(e)
            if "field larger than field limit" in msg:
                sink.error(prev + 1, 0, f"a field longer than {csv.field_size_limit()} characters",
                           f"cells hold at most {MAX_FIELD_LENGTH} characters; an unclosed quote?")
            elif "unexpected end of data" in msg:
                sink.error(prev + 1, 0, "a quoted field is never closed (the file ends inside quotes)",
                           'close the quote; a literal " inside a quoted field is written ""')
            else:
                sink.error(reader.line_num, 0, f"malformed CSV: {msg}",
                           'quote fields that contain the separator, and write a literal " as ""')
            return None
        start = prev + 1
        prev = reader.line_num
        out.append((start, fields))
    return out


# --- cell parsing --------------------------------------------------------------------------


def _parse_number(s: str, decimal_comma: bool) -> tuple[float | None, str | None, bool]:
    """-> (value, error message, used decimal comma)."""
    if _NUMBER_RE.match(s):
        return float(s), None, False
    if decimal_comma and _DECIMAL_COMMA_RE.match(s):
        return float(s.replace(",", ".")), None, True
    return None, f"{s!r} is not a number", False


def _number_hint(s: str, decimal_comma: bool) -> str:
    if s.endswith("%"):
        return "write the number without '%' (95, not 95%)"
    if "," in s:
        return "use a decimal point (0.82), no thousands separators" if not decimal_comma else "no thousands separators"
    if s.lower() in ("nan", "inf", "-inf", "infinity", "na", "n/a", "nr", "-", "none"):
        return "leave the cell empty when the value is unknown"
    return "a plain number such as 0.82 or 1.5E-05"


# --- the validator -----------------------------------------------------------------------


class _Checker:
    def __init__(self, path: str, schema: tuple[SchemaField, ...]):
        self.path = path
        self.schema = schema
        self.by_name = {f.name: f for f in schema}
        self.sink = _Sink(path)
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
    def run(self, raw: bytes) -> None:
        parsed = _Parsed()
        text = _decode(raw, self.sink, parsed)
        if text is None:
            return
        if not text.strip():
            self.sink.error(1, 0, "the file is empty",
                            "the first line must be the header: " + ",".join(f.name for f in self.schema[:4]) + ",...")
            return
        d, hits = _detect_delimiter(text, set(self.by_name))
        self.delimiter = d
        records = _records(text, d, self.sink)
        if records is None:
            return
        records = [(ln, f) for ln, f in records if any(x.strip() for x in f)]
        if not records:
            self.sink.error(1, 0, "the file has no header and no rows")
            return
        hline, header = records[0]
        if d != ",":
            name = {";": "';'", "\t": "tab"}[d]
            self.sink.warning(hline, 0, f"fields are separated by {name}, not ','; read as {name}-separated",
                              "export as 'CSV UTF-8 (comma delimited)'")
        if parsed.cp1252_at:
            line, char = parsed.cp1252_at
            col = self._col_at(text, line, char, d)
            self.sink.warning(line, col, f"not UTF-8: the first non-UTF-8 byte is at line {line}, character {char}; "
                              "read the file as Windows-1252 (cp1252)", "save the file as 'CSV UTF-8' to be sure of accents")
        if not self._header(hline, header):
            return
        self.ok_header = True
        data = records[1:]
        if not data:
            self.sink.error(hline + 1, 0, "the registry has a header but no data rows", "add one row per reported result")
            return
        self._rows(data, len(header))
        self._cross_row()
        self._effects()

    @staticmethod
    def _col_at(text: str, line: int, char: int, d: str) -> int:
        lines = text.splitlines()
        if line - 1 >= len(lines):
            return 0
        return lines[line - 1][: max(char - 1, 0)].count(d) + 1

    def _header(self, hline: int, header: list[str]) -> bool:
        sink = self.sink
        names = [h.lstrip("\ufeff") for h in header]
        norm_schema = {_norm_header(f.name): f.name for f in self.schema}
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
            target = s if s in self.by_name else norm_schema.get(_norm_header(s))
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
            close = difflib.get_close_matches(_norm_header(u), missing_names, n=1, cutoff=0.6)
            if close:
                continue  # reported with the missing column, with this one as the hint
            sink.warning(hline, j, f"unknown column '{u}' (ignored)", "not in trials/schema.json", u)
        return not any(f.required for f in missing) and not has_errors(sink.items)

    def _rows(self, data: list[tuple[int, list[str]]], width: int) -> None:
        sink = self.sink
        spaces, commas, ragged, unnamed = _Once(), _Once(), _Once(), _Once()
        decimal_comma = self.delimiter == ";"
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
                self._cell(r, name, s, j, lines[name], decimal_comma, commas)
        if spaces.n:
            line, col, name = spaces.first
            sink.warning(line, col, f"{spaces.n} cell(s) have leading/trailing spaces; stripped (first here)", "", name)
        if commas.n:
            line, col, name = commas.first
            sink.warning(line, col, f"{commas.n} number(s) written with a decimal comma (first here); read as decimal points",
                         "export with '.' as the decimal separator", name)
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

    def _cell(self, r: int, name: str, s: str, col: int, line: int, decimal_comma: bool, commas: _Once) -> None:
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
        if f.type == "string":
            if s[0] in "=@" or (s[0] in "+-" and not _NUMBER_RE.match(s)):
                sink.warning(line, col, f"text starts with {s[0]!r} and may run as a spreadsheet formula",
                             "prefix it with an apostrophe in the sheet or reword it", name)
            if name == "p_value":
                self._p_value(r, s, err, line, col)
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
        v, msg, used_comma = _parse_number(s, decimal_comma)
        if v is None:
            err(f"{msg} ({name} is {'a whole number' if f.type == 'integer' else 'numeric'})", _number_hint(s, decimal_comma))
            return
        if used_comma:
            commas.hit(line, col, name)
        if not math.isfinite(v):
            err(f"{s!r} is not a finite number", "leave the cell empty when the value is unknown")
            return
        if f.type == "integer":
            if v != int(v):
                err(f"{s!r} is not a whole number", f"{name} counts or codes are integers")
                return
            v = int(v)
        if f.enum is not None and v not in f.enum:
            err(f"{s!r} is not an allowed {name}", "allowed: " + ", ".join(str(e) for e in f.enum))
            return
        if f.minimum is not None and v < f.minimum:
            err(f"{s} is below the minimum {f.minimum:g}")
            return
        if f.maximum is not None and v > f.maximum:
            err(f"{s} is above the maximum {f.maximum:g}")
            return
        if f.exclusive_minimum is not None and v <= f.exclusive_minimum:
            err(f"{s} must be greater than {f.exclusive_minimum:g}")
            return
        if f.exclusive_maximum is not None and v >= f.exclusive_maximum:
            err(f"{s} must be less than {f.exclusive_maximum:g}",
                "ci_level is in percent: 95 for a 95% CI" if name == "ci_level" else "")
            return
        if name == "ci_level" and v < 1:
            err(f"ci_level {s} looks like a fraction; the registry stores percent", f"write {v * 100:g} for a {v:.0%} CI")
            return
        row[name] = v

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
        n = len(self.rows)
        # unique columns (row_id)
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
        row_ids = {self.rows[r]["row_id"] for r in range(n) if self.present(r, "row_id")}
        trial_ids = {self.rows[r]["trial_id"] for r in range(n) if self.present(r, "trial_id")}
        # duplicate rows (all but row_id equal)
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
        for r in range(n):
            row = self.rows[r]
            # parent_row_id
            if self.present(r, "parent_row_id"):
                p = row["parent_row_id"]
                if p == row.get("row_id"):
                    self.at(r, "parent_row_id", "error", "a row cannot be its own parent", "leave parent_row_id empty")
                elif p not in row_ids and p not in trial_ids:
                    self.at(r, "parent_row_id", "error", f"parent_row_id {p!r} is neither a row_id nor a trial_id in this registry",
                            suggest(p, sorted(row_ids | trial_ids), quote=True))
            # status rules
            st = row.get("status")
            has_est = self.present(r, "estimate")
            has_p = self.present(r, "p_value")
            if st == "missing" and has_est:
                self.at(r, "estimate", "error", "status is 'missing' but an estimate is given",
                        "leave estimate empty for a result that was not extracted, or set status to confirmed/unconfirmed")
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
        self._pooling_rule()

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
            key = (row["patient_set"], row["endpoint"], (row.get("endpoint_detail") or "").casefold() if row["endpoint"] == "OTHER" else "")
            if key in first:
                o = first[key]
                self.at(r, "use_for_pooling", "error",
                        f"two rows for patient_set {key[0]!r} and endpoint {key[1]} say use_for_pooling = yes "
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
        idx = [r for r in range(len(self.rows)) if self.rows[r].get("measure") in ef.EFFECT_MEASURES]
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
                np.nan_to_num(col("p_sided", pidx), nan=2.0), [self.rows[r]["measure"] for r in pidx])
            for issue in issues:
                self.at(pidx[issue.index], issue.field, issue.severity, issue.message, issue.hint)
        # what cannot be pooled, said early
        for r in idx:
            row = self.rows[r]
            if row.get("status") == "missing" or {"estimate", "ci_lower", "p_value"} & self.bad[r]:
                continue
            if not self.present(r, "estimate") and not self.present(r, "events_int"):
                continue  # nothing extracted: the status rules speak for it
            reason = _not_poolable_reason(row, self.present, r)
            if reason:
                self.at(r, "estimate", "warning", f"not poolable: {reason}",
                        "add the CI, an exact p-value or the 2x2 counts if the source has them")

    # -- output
    def frame(self) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for f in self.schema:
            vals = [row.get(f.name) for row in self.rows]
            if f.type == "number":
                data[f.name] = pd.array([np.nan if v is None else v for v in vals], dtype="float64")
            elif f.type == "integer":
                data[f.name] = pd.array(vals, dtype="Int64")
            else:
                data[f.name] = pd.array(vals, dtype="string")
        data["source_line"] = pd.array(self.lines, dtype="int64")
        return pd.DataFrame(data)


def _not_poolable_reason(row: Mapping[str, Any], present, r: int) -> str | None:
    """Why a row with an effect measure cannot give (yi, vi), or None."""
    m = row.get("measure")
    has_est = present(r, "estimate")
    if has_est and present(r, "ci_lower") and present(r, "ci_upper") and present(r, "ci_level"):
        return None
    pv = row.get("_p")
    if has_est and pv is not None:
        if pv.relation in (">", ">="):
            return f"the p-value {row['p_value']!r} is only a lower bound"
        if pv.value >= 1.0:
            return "p = 1 carries no information about the standard error"
        if ef.to_analysis_scale(row["estimate"], m) == 0.0:
            return f"{m} {row['estimate']:g} with only a p-value gives no standard error"
        return None
    counts = all(present(r, k) for k in ("events_int", "n_int", "events_ctl", "n_ctl"))
    if counts and m in ("OR", "RR", "RD"):
        return None
    if counts:
        return f"{m} needs a CI or p-value; 2x2 counts give OR, RR or RD only"
    if not has_est:
        return "no estimate"
    return "no CI, p-value or 2x2 counts"


# --- public API -------------------------------------------------------------------------------


def _check(path: str | Path, schema_path=None) -> tuple[_Checker, bytes | None]:
    shown = str(path)
    chk = _Checker(shown, load_schema(schema_path))
    p = Path(path)
    try:
        if p.is_dir():
            chk.sink.error(0, 0, "is a directory, not a registry CSV", "give the path of the .csv file")
            return chk, None
        raw = p.read_bytes()
    except FileNotFoundError:
        chk.sink.error(0, 0, "no such file", "check the path (default: trials/registry.csv)")
        return chk, None
    except PermissionError:
        chk.sink.error(0, 0, "permission denied: cannot read the file")
        return chk, None
    except OSError as e:
        chk.sink.error(0, 0, f"cannot read the file: {e.strerror or e}")
        return chk, None
    chk.run(raw)
    return chk, raw


def validate_registry(path: str | Path, schema_path: str | Path | None = None) -> list[Problem]:
    """Every problem in the registry (errors and warnings), sorted by line and column; never raises for data problems."""
    chk, _ = _check(path, schema_path)
    return sorted(chk.sink.items)


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
        With ``.df``, ``.problems`` (warnings only), ``.sha256``, ``.path``.

    Raises
    ------
    ProblemError
        With all problems (errors and warnings) when there is at least one error.
    """
    chk, raw = _check(path, schema_path)
    problems = sorted(chk.sink.items)
    if has_errors(problems) or raw is None:
        raise ProblemError(problems)
    return Registry(
        path=str(path),
        sha256=hashlib.sha256(raw).hexdigest(),
        df=chk.frame(),
        problems=tuple(problems),
        columns=dict(chk.colnum),
        delimiter=chk.delimiter,
    )


def effects_table(registry: Registry) -> pd.DataFrame:
    """Per registry row: the effect on the analysis scale and how it was obtained.

    Source order: estimate + CI (``se_source = "ci"``, :func:`effects.from_ci`), else estimate
    + p-value (``"p"``, :func:`effects.from_p`; ``derived`` and possibly ``imprecise``), else
    2x2 counts for OR / RR / RD (``"2x2"``, :func:`effects.from_2x2`, metafor's ``add=1/2,
    to="only0"``; double-zero studies are not poolable), else not poolable (``reason``).
    Rows with status ``missing`` or measure PROP / PVAL are never poolable.

    Returns
    -------
    pandas.DataFrame
        Columns ``row_id, measure, yi, vi, se_source, derived, imprecise, reason,
        source_line`` in registry order; ``yi``/``vi`` NaN and ``se_source`` None when not poolable.
    """
    df = registry.df
    k = len(df)
    yi = np.full(k, np.nan)
    vi = np.full(k, np.nan)
    source: list[str | None] = [None] * k
    derived = np.zeros(k, dtype=bool)
    imprecise = np.zeros(k, dtype=bool)
    reason: list[str | None] = [None] * k

    def num(c):
        return df[c].to_numpy(dtype=float, na_value=np.nan)

    est, lo, hi, lev = num("estimate"), num("ci_lower"), num("ci_upper"), num("ci_level")
    sided = df["p_sided"].to_numpy(dtype=float, na_value=np.nan)
    counts = {c: df[c].to_numpy(dtype=float, na_value=np.nan) for c in ("events_int", "n_int", "events_ctl", "n_ctl")}
    for i in range(k):
        m = df.at[i, "measure"]
        st = df.at[i, "status"]
        if st == "missing":
            reason[i] = "result not extracted (status missing)"
            continue
        if m not in ef.EFFECT_MEASURES:
            reason[i] = {"PROP": "single-arm proportion: no comparative effect",
                         "GMR": "within-group geometric mean ratio: no comparative effect",
                         "PVAL": "p-value only: no effect estimate"}.get(m, f"measure {m}")
            continue
        if not math.isnan(est[i]) and not math.isnan(lo[i]) and not math.isnan(hi[i]) and not math.isnan(lev[i]):
            y, v = ef.from_ci(est[i], lo[i], hi[i], level=lev[i] / 100.0, measure=m)
            yi[i], vi[i], source[i] = float(y), float(v), "ci"
            continue
        ptext = df.at[i, "p_value"]
        if not math.isnan(est[i]) and not pd.isna(ptext):
            pv = ef.parse_p_value(str(ptext))
            if pv.relation in (">", ">="):
                reason[i] = f"the p-value {ptext!r} is only a lower bound"
                continue
            try:
                y, v, flags = ef.from_p(est[i], pv.value, sided=2 if math.isnan(sided[i]) else int(sided[i]),
                                        measure=m, p_is_inequality=pv.is_inequality, p_decimals=pv.decimals)
            except ValueError as e:
                reason[i] = str(e)
                continue
            yi[i], vi[i], source[i] = float(y), float(v), "p"
            derived[i] = True
            imprecise[i] = bool(flags[ef.IMPRECISE])
            continue
        c = [counts[n][i] for n in ("events_int", "n_int", "events_ctl", "n_ctl")]
        if m in ("OR", "RR", "RD") and not any(math.isnan(x) for x in c):
            ai, n1, ci, n2 = c
            if ef.is_double_zero(ai, n1 - ai, ci, n2 - ci) and m != "RD":
                reason[i] = "no events (or only events) in both arms: the ratio is not estimable"
                continue
            y, v = ef.from_2x2(ai, n1 - ai, ci, n2 - ci, measure=m)
            yi[i], vi[i], source[i] = float(y), float(v), "2x2"
            derived[i] = True
            continue
        reason[i] = "no CI, p-value or 2x2 counts" if not math.isnan(est[i]) else "no estimate"
    return pd.DataFrame({
        "row_id": df["row_id"].astype(str).to_numpy(),
        "measure": df["measure"].astype(str).to_numpy(),
        "yi": yi,
        "vi": vi,
        "se_source": pd.Series(source, dtype=object),
        "derived": derived,
        "imprecise": imprecise,
        "reason": pd.Series(reason, dtype=object),
        "source_line": df["source_line"].to_numpy(),
    })


def cli_validate(args) -> int:
    """``metaanalysis validate [PATH] [--plan PLAN]``.

    Prints every problem as ``PATH:LINE:COLUMN: error|warning: message (hint)`` to stderr and
    a one-line summary to stdout. Returns 0 when there are no errors (warnings allowed),
    1 on data errors, 2 when the path does not exist or is a directory.
    """
    import sys

    path = args.path
    p = Path(path)
    if not p.exists() or p.is_dir():
        what = "is a directory" if p.is_dir() else "does not exist"
        print(f"metaanalysis validate: {path} {what}; give the registry CSV (default trials/registry.csv)", file=sys.stderr)
        return 2
    chk, raw = _check(path)
    problems = sorted(chk.sink.items)
    plan_problems: list[Problem] = []
    plan_note = ""
    validate_plan = None
    if getattr(args, "plan", None):
        validate_plan = _plan_validator()
        if validate_plan is not None:
            if has_errors(problems) or raw is None:
                plan_note = f"; plan {args.plan} not checked (fix the registry first)"
            else:
                reg = Registry(path=str(path), sha256=hashlib.sha256(raw).hexdigest(), df=chk.frame(),
                               problems=tuple(problems), columns=dict(chk.colnum), delimiter=chk.delimiter)
                try:
                    plan_problems = list(validate_plan(args.plan, reg) or [])
                except ProblemError as e:
                    plan_problems = list(e.problems)
    for prob in problems + sorted(plan_problems):
        print(prob.format(), file=sys.stderr)

    def counts(ps):
        e = sum(q.severity == "error" for q in ps)
        w = len(ps) - e
        return e, f"{e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}"

    n_reg, reg_text = counts(problems)
    summary = f"{path}: {chk.n_rows} rows, {reg_text}"
    n_plan = 0
    if getattr(args, "plan", None) and validate_plan is not None and not plan_note:
        n_plan, plan_text = counts(plan_problems)
        summary += f"; plan {args.plan}: {plan_text}"
    print(summary + plan_note)
    n_err = n_reg + n_plan
    return 1 if n_err else 0


def _plan_validator():
    """``metaanalysis.plan.validate_plan`` if that module exists yet, else None."""
    # TODO: drop the fallback once metaanalysis/plan.py (another helper) has landed.
    try:
        from . import plan as _plan  # type: ignore[attr-defined]
    except ModuleNotFoundError as e:
        if e.name in ("metaanalysis.plan", f"{__package__}.plan"):
            return None
        raise
    return getattr(_plan, "validate_plan", None)
