"""``metaanalysis diff OLD NEW``: what changed in the conclusions between two builds of the evidence.

OLD and NEW are each a registry CSV (analysed with ``--plan``) or a report folder (its
``<id>.json`` pages); ``--rev A..B`` compares two git revisions of the registry and plan
instead (``git show REV:PATH``, paths relative to the current directory). Prints the changelog
of :mod:`metaanalysis.changes` as text or JSON; the exit code lets a review repository's CI
gate on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["cli_diff"]


def _usage(message: str) -> int:
    print(f"metaanalysis diff: usage error: {message}", file=sys.stderr)
    return 2


def _snapshot_of_inputs(registry_path, plan_path):
    from ..analysis import analyse
    from ..changes import snapshot_from_evidence

    return snapshot_from_evidence(analyse(registry_path, plan_path))


def _snapshot_of(path: str, plan: str):
    """A report folder's snapshot, or the snapshot of registry ``path`` analysed with ``plan``."""
    from ..changes import snapshot_from_reports

    p = Path(path)
    if p.is_dir():
        return snapshot_from_reports(p)
    return _snapshot_of_inputs(p, plan)


def _git_show(rev: str, path: str, dest: Path) -> None:
    """``git show REV:./PATH`` into ``dest``; ValueError when git refuses (bad revision or path)."""
    rel = Path(os.path.relpath(path)).as_posix()   # git paths: relative to the current directory
    done = subprocess.run(["git", "show", f"{rev}:./{rel}"], capture_output=True)
    if done.returncode != 0:
        raise ValueError(f"git show {rev}:{path}: {done.stderr.decode(errors='replace').strip()}")
    dest.write_bytes(done.stdout)


def _snapshot_at(rev: str, registry: str, plan: str):
    """The snapshot of the registry and plan as they were at git revision ``rev``."""
    with tempfile.TemporaryDirectory(prefix="metaanalysis-diff-") as tmp:
        reg, pl = Path(tmp) / Path(registry).name, Path(tmp) / Path(plan).name
        _git_show(rev, registry, reg)
        _git_show(rev, plan, pl)
        return _snapshot_of_inputs(reg, pl)


def _snapshots(args):
    """(old, new) snapshots from the arguments; ValueError for a usage error."""
    if args.rev:
        if args.old or args.new:
            raise ValueError("give either OLD NEW or --rev A..B, not both")
        a, sep, b = args.rev.partition("..")
        if not sep or not a or not b:
            raise ValueError(f"--rev needs A..B (two git revisions), got {args.rev!r}")
        return _snapshot_at(a, args.registry, args.plan), _snapshot_at(b, args.registry, args.plan)
    if not args.old or not args.new:
        raise ValueError("give OLD and NEW (registries or report folders), or --rev A..B")
    for p in (args.old, args.new):
        if not Path(p).exists():
            raise ValueError(f"{p} does not exist")
    return _snapshot_of(args.old, args.plan), _snapshot_of(args.new, args.plan)


def cli_diff(args) -> int:
    """``metaanalysis diff OLD NEW [--plan P] [--format text|json]`` or ``diff --rev A..B``.

    Returns 0 when no conclusion changed (numbers may have moved), 1 when one did
    (:data:`metaanalysis.vocab.CONCLUSION_CHANGES`), 2 when nothing could be compared: a usage
    error, or a data problem in either registry or plan (printed with its location). A CI gate
    on exit 1 therefore never mistakes a broken registry for a changed conclusion.
    """
    from ..changes import compare
    from ..problems import ProblemError
    from ..render.data import changes_json
    from ..render.words import changes_text

    try:
        old, new = _snapshots(args)
    except ProblemError as e:
        for prob in e.problems:
            print(prob.format(), file=sys.stderr)
        print("metaanalysis diff: nothing compared: fix the problems above (exit 2)", file=sys.stderr)
        return 2
    except ValueError as e:
        return _usage(str(e))
    log = compare(old, new)
    out = changes_json(log).decode("utf-8") if args.format == "json" else changes_text(log)
    sys.stdout.write(out)
    return 1 if log.conclusions_changed else 0
