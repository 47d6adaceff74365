"""Typed user-facing problems: every data error names file, line, column and a fix.

A :class:`Problem` is raised (inside :class:`ProblemError`) once and printed by the CLI
as ``PATH:LINE:COLUMN: error|warning: message (hint)``. Tracebacks are for bugs only.
"""

from __future__ import annotations

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


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)
