"""Command-line interface: ``metaanalysis validate | pool | report | batch | diff | pack``.

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

from .. import vocab
from ..problems import ProblemError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: exit 2 with a one-line hint, no traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: usage error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _codes(kind: str, table) -> str:
    return f"{kind}:\n" + "\n".join(f"  {m.code:<8} {m.name}" for m in table.values())


def _checked(convert):
    """An argparse ``type`` from a vocabulary converter: its ValueError becomes a usage error."""
    def check(value: str):
        try:
            return convert(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    check.__name__ = convert.__name__
    return check


_method = _checked(vocab.canonical_method)     # "reml" -> "REML"
_test = _checked(vocab.canonical_test)
_pi = _checked(vocab.canonical_pi)
_level = _checked(vocab.as_level)


def _jobs(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number >= 1, got {value!r}")
    return int(value)


def _measure(value: str) -> str:
    """A poolable measure code in any case (``hr`` -> ``HR``)."""
    low = {m.lower(): m for m in vocab.POOLABLE_MEASURES}
    hit = low.get(value.strip().lower())
    if hit is None:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(vocab.POOLABLE_MEASURES)}; got {value!r}")
    return hit


def _add_pool(sub) -> None:
    from ..plan import DEFAULT_SETTINGS as D  # the reports' defaults: one default for both

    pl = sub.add_parser("pool", help="pool one CSV of yi, vi (or sei), or of estimate + CI (or p) with --measure",
                        description="Pool one CSV: columns yi and vi (or sei), or estimate with ci_lower and\n"
                                    "ci_upper (or p_value) and --measure; optionally study (and ci_level, in percent).\n"
                                    "Defaults are the reports' (trials/README.md, 'The analysis plan').",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="\n\n".join((_codes("methods", vocab.METHODS), _codes("tests", vocab.TESTS),
                                            _codes("prediction intervals", vocab.PREDICTION_INTERVALS))))
    pl.add_argument("file", help="CSV with yi and vi (or sei), or estimate, ci_lower, ci_upper (or p_value) [, study]")
    pl.add_argument("--method", default=D["method"], type=_method, metavar="METHOD",
                    help=f"τ² estimator or FE, any case: {', '.join(vocab.METHODS)} (default {D['method']}, as the reports)")
    pl.add_argument("--test", default=D["test"], type=_test, metavar="TEST",
                    help=f"test and CI: {', '.join(vocab.TESTS)} (default {D['test']}, as the reports)")
    pl.add_argument("--level", type=_level, default=D["level"],
                    help=f"confidence level: 0.95 or 95 (default {D['level']})")
    pl.add_argument("--pi", default=D["pi"], type=_pi, metavar="PI",
                    help=f"prediction interval convention: {', '.join(vocab.PREDICTION_INTERVALS)} (default {D['pi']})")
    pl.add_argument("--measure", default=None, type=_measure, metavar="MEASURE",
                    help=f"measure of an estimate column, any case: {', '.join(vocab.POOLABLE_MEASURES)} "
                         "(needed with estimate; ratios are pooled on the log scale)")
    pl.add_argument("--ci-level", dest="ci_level", type=_level, default=0.95,
                    help="level of the CIs in the file when it has no ci_level column: 0.95 or 95 (default 0.95)")
    pl.add_argument("--transform", default=None, choices=["none", "exp"],
                    help="show the estimate and intervals as exp(.) (default: exp for a ratio --measure, else none)")
    pl.add_argument("--format", default="text", choices=["text", "json"], help="output format (default text)")


class _Version(argparse.Action):
    """``--version``: argparse's version action, reading the version only when asked for it."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .. import __version__  # importlib.metadata: ~20 ms that no other command needs

        print(f"metaanalysis {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="metaanalysis", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", parser_class=_Parser, required=True)

    v = sub.add_parser("validate", help="check a registry CSV (and an analysis plan) and list every problem")
    v.add_argument("path", nargs="?", default="trials/registry.csv", help="registry CSV (default trials/registry.csv)")
    v.add_argument("--plan", default=None, help="analysis plan TOML to check against the registry")

    _add_pool(sub)

    r = sub.add_parser("report", help="build the HTML/JSON/CSV reports")
    r.add_argument("--registry", default="trials/registry.csv", help="registry CSV (default trials/registry.csv)")
    r.add_argument("--plan", default="trials/analyses.toml", help="analysis plan (default trials/analyses.toml)")
    r.add_argument("--out", default="reports", help="output directory (default reports)")
    r.add_argument("-j", "--jobs", type=_jobs, default=None,
                   help="worker processes for the plots (default: up to 4, one per CPU)")

    d = sub.add_parser("diff", help="what changed in the conclusions between two registries, report folders "
                                    "or git revisions (exit 0: no conclusion changed; 1: one did; 2: nothing could "
                                    "be compared)")
    d.add_argument("old", nargs="?", help="registry CSV or report folder before")
    d.add_argument("new", nargs="?", help="registry CSV or report folder after")
    d.add_argument("--plan", default="trials/analyses.toml", help="analysis plan (default trials/analyses.toml)")
    d.add_argument("--registry", default="trials/registry.csv",
                   help="with --rev: the registry's path in the repository (default trials/registry.csv)")
    d.add_argument("--rev", default=None, metavar="A..B", help="compare two git revisions of the registry and plan")
    d.add_argument("--format", default="text", choices=["text", "json"], help="output format (default text)")

    k = sub.add_parser("pack", help="print a built report (overview and every page) to one PDF for a panel",
                       description="The panel pack: one PDF of the overview and every analysis and narrative "
                                   "page of a built report, printed by headless Chromium; each page starts a new sheet.")
    k.add_argument("--reports", default="reports", help="folder of a built report (default reports)")
    k.add_argument("--out", default="panel-pack.pdf", help="PDF to write, outside the report folder (default panel-pack.pdf)")
    k.add_argument("--html", default=None, help="also write the printable HTML document here")
    k.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable (default /usr/bin/chromium)")

    b = sub.add_parser("batch", help="build reports for many registry directories")
    b.add_argument("dirs", nargs="+", help="directories each holding registry.csv and analyses.toml")
    b.add_argument("--out", default="batch-reports",
                   help="output directory (default batch-reports; not inside reports/, which `report` replaces whole)")
    b.add_argument("-j", "--jobs", type=int, default=1, help="directories built in parallel (default 1)")
    b.add_argument("--scheduler", default=None, help="Dask scheduler address (needs the 'dask' extra)")
    b.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    return p


_COMMANDS = {"validate": ".validate:cli_validate", "pool": ".pool:cli_pool", "report": ".report:cli_report",
             "batch": ".batch:cli_batch", "diff": ".diff:cli_diff",
             "pack": ".pack:cli_pack"}


def _command(name: str):
    """The subcommand's function, imported on use (``validate`` must start without scipy)."""
    import importlib

    module, func = _COMMANDS[name].split(":")
    return getattr(importlib.import_module(module, __name__), func)


def main(argv: Sequence[str] | None = None) -> int:
    from ..runtime import single_threaded_blas

    single_threaded_blas()   # before numpy loads: this process and its workers (runtime.py)
    args = build_parser().parse_args(argv)
    try:
        return _command(args.command)(args)
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
        where = f" {e.filename}:" if getattr(e, "filename", None) else ""
        print(f"metaanalysis: error:{where} {e.strerror or e} (nothing was replaced; check "
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
