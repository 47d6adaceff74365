"""``metaanalysis report``: build the reports and print what was built."""

from __future__ import annotations

import sys
from pathlib import Path

from ..report.build import build_reports


def warning_lines(summary) -> list[str]:
    """Where to read the report warnings: one line per analysis that has any, naming its page's
    Warnings section and the short labels, then where the full texts are.

    Parameters
    ----------
    summary : metaanalysis.report.build.BuildSummary
    """
    by_id: dict[str, list[str]] = {}
    for aid, short in summary.warning_labels:
        by_id.setdefault(aid, []).append(short)
    out = Path(summary.out_dir)
    lines = [f"  {out / f'{aid}.html'}#h-warn ({len(labels)}): {'; '.join(labels)}" for aid, labels in by_id.items()]
    if lines:
        lines.append(f"  (each is explained in its page's Warnings section, and in {out / 'results.csv'}, "
                     "column warnings)")
    return lines


def cli_report(args) -> int:
    """``metaanalysis report --registry R --plan P --out DIR``: 0 built, 1 data problems.

    Input warnings are printed like ``validate`` prints them; a summary line then, per analysis
    with report warnings, its page and their short labels (:func:`warning_lines`) go to stdout.
    ``ProblemError`` propagates to :func:`metaanalysis.cli.main`, which prints it and exits 1.
    """
    summary = build_reports(args.registry, args.plan, args.out, jobs=args.jobs)
    for p in summary.problems:
        print(p.format(), file=sys.stderr)
    n = len(summary.warnings)
    print(f"{args.out}: {len(summary.analyses)} analyses, {len(summary.narratives)} narrative sections, "
          f"{len(summary.files)} files, {n} report warning{'' if n == 1 else 's'}{':' if n else ''}")
    for line in warning_lines(summary):
        print(line)
    return 0
