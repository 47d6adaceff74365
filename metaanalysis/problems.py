"""Typed user-facing problems: every data error names file, line, column and a fix.

A :class:`Problem` is raised (inside :class:`ProblemError`) once and printed by the CLI
as ``PATH:LINE:COLUMN: error|warning: message (hint)``. Tracebacks are for bugs only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in an input file.

    ``line`` is 1-based as an editor shows it (the CSV header is line 1);
    ``column`` is the 1-based column number of the CSV field (or 0 for the whole line / file).
    """

    path: str
    line: int
    column: int
    severity: Severity
    message: str
    hint: str = ""
    column_name: str = ""

    def format(self) -> str:
        """``PATH:LINE:COLUMN: severity: message (hint)``."""
        col = f"{self.column}"
        where = f"{self.path}:{self.line}:{col}"
        name = f"[{self.column_name}] " if self.column_name else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}: {self.severity}: {name}{self.message}{hint}"


class ProblemError(Exception):
    """Raised with one or more problems; at least one is an error."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(p.format() for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class ProblemSink:
    """Collects the problems of one file as a reader finds them (``sink.error(line, col, ...)``)."""

    def __init__(self, path: str):
        self.path = path
        self.items: list[Problem] = []

    def add(self, line: int, col: int, severity: Severity, message: str, hint: str = "", name: str = "") -> None:
        self.items.append(Problem(self.path, int(line), int(col), severity, message, hint, name))

    def error(self, line: int, col: int, message: str, hint: str = "", name: str = "") -> None:
        self.add(line, col, "error", message, hint, name)

    def warning(self, line: int, col: int, message: str, hint: str = "", name: str = "") -> None:
        self.add(line, col, "warning", message, hint, name)


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def suggest(word: str, options: Iterable[str], *, quote: bool = False, limit: int = 12) -> str:
    """A hint for an unknown value: ``did you mean 'X'?`` or ``expected one of: a, b, ...``.

    Tries, in order: the same word in another case, a prefix match (``knh`` -> ``knha``),
    then difflib's closest match (case-sensitive, then case-folded).
    """
    opts = [str(o) for o in options]
    low = {o.lower(): o for o in opts}
    w = str(word)
    if w.lower() in low:
        return f"did you mean {low[w.lower()]!r}?"
    pre = [o for o in opts if len(o) > 1 and (w.lower().startswith(o.lower()) or o.lower().startswith(w.lower()))]
    if pre and w:
        return f"did you mean {min(pre, key=lambda o: abs(len(o) - len(w)))!r}?"
    close = difflib.get_close_matches(w, opts, n=1, cutoff=0.6)
    if not close:
        close = [low[c] for c in difflib.get_close_matches(w.lower(), list(low), n=1, cutoff=0.6)]
    if close:
        return f"did you mean {close[0]!r}?"
    shown = [repr(o) if quote else o for o in opts[:limit]]
    return "expected one of: " + ", ".join(shown) + (", ..." if len(opts) > limit else "")
