"""Command-line interface: ``metaanalysis validate | pool | report | batch``.

Exit codes: 0 success (warnings allowed), 1 data problems (or an OS error such as a full
disk), 2 usage errors, 3 an internal error (a bug; ``METAANALYSIS_DEBUG=1`` shows the
traceback), 130 interrupted.
Data problems are printed as ``PATH:LINE:COLUMN: error|warning: message (hint)``;
a Python traceback means a bug in this package, never a problem in your data.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .problems import ProblemError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: exit 2 with a one-line hint, no traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: usage error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="metaanalysis", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"metaanalysis {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, required=True)

    v = sub.add_parser("validate", help="check a registry CSV (and an analysis plan) and list every problem")
    v.add_argument("path", nargs="?", default="trials/registry.csv")
    v.add_argument("--plan", default=None, help="analysis plan TOML to check against the registry")

    pl = sub.add_parser("pool", help="pool one CSV of yi, vi (or sei) [, study]")
    pl.add_argument("file")
    pl.add_argument("--method", default="REML")
    pl.add_argument("--test", default="z", choices=["z", "knha", "adhoc"])
    pl.add_argument("--level", type=float, default=0.95)
    pl.add_argument("--pi", default="metafor", choices=["metafor", "riley"])
    pl.add_argument("--format", default="text", choices=["text", "json"])

    r = sub.add_parser("report", help="build the HTML/JSON/CSV reports")
    r.add_argument("--registry", default="trials/registry.csv")
    r.add_argument("--plan", default="trials/analyses.toml")
    r.add_argument("--out", default="reports")

    b = sub.add_parser("batch", help="build reports for many registry directories")
    b.add_argument("dirs", nargs="+")
    b.add_argument("--out", default="reports/batch")
    b.add_argument("-j", "--jobs", type=int, default=1)
    b.add_argument("--scheduler", default=None, help="Dask scheduler address (needs the 'dask' extra)")
    b.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            from .validate_cli import cli_validate

            return cli_validate(args)
        if args.command == "pool":
            from .pooling_cli import cli_pool

            return cli_pool(args)
        if args.command == "report":
            from .report.build import cli_report

            return cli_report(args)
        if args.command == "batch":
            from .batch import cli_batch

            return cli_batch(args)
    except ProblemError as e:
        for prob in e.problems:
            print(prob.format(), file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `metaanalysis pool x.csv | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("metaanalysis: interrupted; outputs left as they were", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permission denied, ...: the machine, not the data
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"metaanalysis: error:{where}: {e.strerror or e} (nothing was replaced; check "
              f"permissions and free space, then run again)", file=sys.stderr)
        return 1
    except Exception as e:  # a bug in this package: one line, the traceback on request
        if os.environ.get("METAANALYSIS_DEBUG"):
            raise
        print(f"metaanalysis: internal error: {type(e).__name__}: {e}\n"
              f"This is a bug in metaanalysis, not a problem in your data; nothing was replaced. "
              f"Run again with METAANALYSIS_DEBUG=1 for the traceback and report it.", file=sys.stderr)
        return 3
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
