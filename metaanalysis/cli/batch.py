"""``metaanalysis batch``: build reports for many registry directories."""

from __future__ import annotations

import sys

from ..batch import BatchUsageError, run_batch


def cli_batch(args) -> int:
    """``metaanalysis batch DIR... [--out OUT] [-j N] [--scheduler ADDRESS] [--force]``.

    Progress goes to stderr; the summary (counts, then each failed directory with its first
    problem ``PATH:LINE:COLUMN: ...``) to stdout, with every problem of a failed directory on
    stderr. Returns 0, 1 (a directory failed) or 2 (usage error).
    """
    try:
        summary = run_batch(args.dirs, args.out, jobs=args.jobs, scheduler=args.scheduler, force=args.force)
    except BatchUsageError as e:
        for line in str(e).splitlines():
            print(f"metaanalysis batch: usage error: {line}", file=sys.stderr)
        return 2
    for r in summary.failed:
        for line in r.problems:
            print(line, file=sys.stderr)
    print(summary.format())
    return summary.exit_code
