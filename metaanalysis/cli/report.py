"""``metaanalysis report``: build the reports and print what was built."""

from __future__ import annotations

import sys

from ..report.build import build_reports


def cli_report(args) -> int:
    """``metaanalysis report --registry R --plan P --out DIR``: 0 built, 1 data problems.

    Input warnings are printed like ``validate`` prints them; a one-line summary goes to stdout.
    ``ProblemError`` propagates to :func:`metaanalysis.cli.main`, which prints it and exits 1.
    """
    summary = build_reports(args.registry, args.plan, args.out, jobs=args.jobs)
    for p in summary.problems:
        print(p.format(), file=sys.stderr)
    print(f"{args.out}: {len(summary.analyses)} analyses, {len(summary.narratives)} narrative sections, "
          f"{len(summary.files)} files, {len(summary.warnings)} report warnings")
    return 0
