"""``metaanalysis validate [PATH] [--plan PLAN]``: print what :func:`metaanalysis.inputs.validate_inputs` found."""

from __future__ import annotations

import sys
from pathlib import Path

from ..inputs import PLAN_NOT_CHECKED_REGISTRY_ERRORS, validate_inputs

__all__ = ["cli_validate"]


def _counts(problems) -> str:
    e = sum(q.severity == "error" for q in problems)
    w = len(problems) - e
    return f"{e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}"


def cli_validate(args) -> int:
    """``metaanalysis validate [PATH] [--plan PLAN]``.

    Prints every problem as ``PATH:LINE:COLUMN: error|warning: message (hint)`` to stderr and
    a one-line summary to stdout. Returns 0 when there are no errors (warnings allowed),
    1 on data errors, 2 when the path does not exist or is a directory.
    """
    path = args.path
    p = Path(path)
    if not p.exists() or p.is_dir():
        what = "is a directory" if p.is_dir() else "does not exist"
        print(f"metaanalysis validate: {path} {what}; give the registry CSV (default trials/registry.csv)", file=sys.stderr)
        return 2
    plan = getattr(args, "plan", None) or None
    report = validate_inputs(path, plan)
    for prob in report.problems:
        print(prob.format(), file=sys.stderr)
    summary = f"{path}: {report.n_rows} rows, {_counts(report.registry_problems)}"
    if report.plan_checked:
        summary += f"; plan {plan}: {_counts(report.plan_problems)}"
    elif report.plan_not_checked == PLAN_NOT_CHECKED_REGISTRY_ERRORS:
        summary += f"; plan {plan} not checked (fix the registry first)"
    if report.rob_problems:
        summary += f"; {report.rob_problems[0].path}: {_counts(report.rob_problems)}"
    if report.searches_problems:
        summary += f"; {report.searches_problems[0].path}: {_counts(report.searches_problems)}"
    print(summary)
    return 0 if report.ok else 1
