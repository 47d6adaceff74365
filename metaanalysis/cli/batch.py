"""``metaanalysis batch``: build reports for many registry directories."""

from __future__ import annotations

import os
import sys

from ..batch import BatchUsageError, run_batch


def cli_batch(args) -> int:
    """``metaanalysis batch DIR... [--out OUT] [-j N] [--scheduler ADDRESS] [--force]``.

    Progress goes to stderr; the summary (counts, then one line per problem of each failed
    directory, ``FAILED DIR: PATH:LINE:COLUMN: error: message (hint)``, then the overview page's
    path) to stdout: each problem is printed once. A bug's traceback goes to stderr with
    ``METAANALYSIS_DEBUG=1``. Returns 0, 1 (a directory failed) or 2 (usage error).
    """
    try:
        summary = run_batch(args.dirs, args.out, jobs=args.jobs, scheduler=args.scheduler, force=args.force)
    except BatchUsageError as e:
        for line in str(e).splitlines():
            print(f"metaanalysis batch: usage error: {line}", file=sys.stderr)
        return 2
    if os.environ.get("METAANALYSIS_DEBUG"):
        for r in summary.failed:
            if r.traceback:
                print(r.traceback, file=sys.stderr)
    print(summary.format())
    return summary.exit_code
