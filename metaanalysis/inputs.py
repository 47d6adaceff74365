"""Validation of the inputs together: the registry, then the analysis plan against it.

The library face of ``metaanalysis validate``: :func:`validate_inputs` reads both files
once and returns a :class:`ValidationReport`; :mod:`metaanalysis.cli.validate` only prints
it. This module sits above :mod:`metaanalysis.registry` and :mod:`metaanalysis.plan`
(neither imports it), so the two never need to import each other for validation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from . import plan as _plan
from .problems import Problem, ProblemError
from .registry import check_registry

__all__ = ["ValidationReport", "validate_inputs", "PLAN_NOT_CHECKED_REGISTRY_ERRORS"]

#: ``ValidationReport.plan_not_checked`` when the registry has errors (the plan is checked
#: against the registry's rows, so it cannot be checked against a broken one).
PLAN_NOT_CHECKED_REGISTRY_ERRORS = "registry-errors"


@dataclass(frozen=True)
class ValidationReport:
    """What ``validate`` found in the registry and (optionally) the plan.

    Attributes
    ----------
    registry_path : str
    registry_problems : tuple of Problem
        Errors and warnings of the registry, sorted by line and column.
    n_rows : int
        Data rows read from the registry.
    plan_path : str or None
        The plan asked for (None when no plan was given).
    plan_checked : bool
        True when the plan was checked against the registry.
    plan_not_checked : str
        Why a plan that was asked for was not checked (a code, e.g.
        :data:`PLAN_NOT_CHECKED_REGISTRY_ERRORS`); '' when checked or not asked for.
    plan_problems : tuple of Problem
        Errors and warnings of the plan, sorted (empty when not checked).
    """

    registry_path: str
    registry_problems: tuple[Problem, ...]
    n_rows: int
    plan_path: str | None = None
    plan_checked: bool = False
    plan_not_checked: str = ""
    plan_problems: tuple[Problem, ...] = ()
    rob_problems: tuple[Problem, ...] = ()   # of rob.csv next to the registry (metaanalysis.rob), if present
    searches_problems: tuple[Problem, ...] = ()  # of searches.csv next to the registry (metaanalysis.searches)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Registry problems, then plan problems, then those of the RoB 2 file and the search log."""
        return self.registry_problems + self.plan_problems + self.rob_problems + self.searches_problems

    @property
    def n_errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return self.n_errors == 0


def validate_inputs(registry_path: str | Path, plan_path: str | Path | None = None) -> ValidationReport:
    """Check the registry and, when it has no errors, the plan against it; never raises for data problems.

    Parameters
    ----------
    registry_path : str or Path
        The registry CSV.
    plan_path : str or Path, optional
        The TOML analysis plan.

    Returns
    -------
    ValidationReport
    """
    from .rob import check_rob, default_rob_path
    from .searches import check_searches, default_searches_path

    checked = check_registry(registry_path)
    rob_path = default_rob_path(registry_path)
    rob_problems = () if checked.registry is None or not rob_path.exists() else \
        check_rob(rob_path, checked.registry.row_ids).problems
    log_path = default_searches_path(registry_path)
    searches_problems = check_searches(log_path).problems if log_path.exists() else ()
    report = ValidationReport(str(registry_path), checked.problems, checked.n_rows,
                              None if plan_path is None else str(plan_path), rob_problems=tuple(rob_problems),
                              searches_problems=tuple(searches_problems))
    if plan_path is None:
        return report
    if checked.registry is None:
        return replace(report, plan_not_checked=PLAN_NOT_CHECKED_REGISTRY_ERRORS)
    try:
        plan_problems = list(_plan.validate_plan(plan_path, checked.registry) or [])
    except ProblemError as e:
        plan_problems = list(e.problems)
    return replace(report, plan_checked=True, plan_problems=tuple(sorted(plan_problems)))
