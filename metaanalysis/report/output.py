"""Writing a report tree safely: refuse foreign directories, swap atomically, recover from kills.

The rules, in order:

1. ``OUT`` must be a new path, an empty directory, a directory holding only the files we
   keep (``README.md``), or a directory a previous build wrote (it carries :data:`MARKER`).
   Anything else — a file, the working directory, ``trials/`` — is refused, so a typo in
   ``--out`` can never delete somebody's files.
2. The new tree is written into a sibling temporary directory, then exchanged with ``OUT`` in
   one atomic ``renameat2(RENAME_EXCHANGE)`` call (Linux >= 3.15); elsewhere two renames are
   used and a crash between them is repaired by the next build (rule 3).
3. Builds into the same parent directory hold an exclusive ``flock`` on that directory; under
   it, leftovers of killed builds (``.OUT.build-*``, ``.OUT.old-*``) are removed, restoring
   ``OUT`` from ``.OUT.old-*`` first when a kill fell between the two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from ..problems import Problem, ProblemError

#: Written into every build; its presence is what allows a later build to replace the directory.
MARKER = ".metaanalysis-report"
#: Files in OUT that are not ours but may be there (and are carried over into the new tree).
KEEP = ("README.md",)


def check_out_dir(out: Path) -> None:
    """Raise :class:`ProblemError` unless ``out`` may be (re)built; see rule 1."""
    out = Path(out)
    shown = str(out)
    if out.is_symlink():
        raise ProblemError([Problem(shown, 0, 0, "error", "--out is a symbolic link",
                                    "give the real directory path")])
    if out.exists() and not out.is_dir():
        raise ProblemError([Problem(shown, 0, 0, "error", "--out is a file, not a directory",
                                    "give a new or empty directory for the reports")])
    res = out.resolve()
    cwd = Path.cwd().resolve()
    if res == cwd or res in cwd.parents or res == Path(res.anchor):
        raise ProblemError([Problem(shown, 0, 0, "error",
                                    "--out is the current directory or one of its parents",
                                    "give a subdirectory such as reports/")])
    if not out.exists():
        return
    entries = sorted(os.listdir(out))
    if not entries or MARKER in entries or set(entries) <= set(KEEP) or _legacy_build(out, entries):
        return
    foreign = [e for e in entries if e not in KEEP][:3]
    raise ProblemError([Problem(
        shown, 0, 0, "error",
        f"refusing to replace {shown}: it holds files metaanalysis did not write ({', '.join(foreign)}"
        f"{', ...' if len(entries) > 3 else ''})",
        "choose a new or empty directory for --out, or remove this one yourself "
        "(for the project's reports/: make clean)")])


_OUTPUT_SUFFIXES = (".html", ".json", ".csv", ".svg", ".png")


def _legacy_build(out: Path, entries: list[str]) -> bool:
    """A build made before :data:`MARKER` existed: index.html and results.csv, and nothing but
    plain report files (no subdirectories, no other kinds of file)."""
    if "index.html" not in entries or "results.csv" not in entries:
        return False
    return all(e in KEEP or (e.endswith(_OUTPUT_SUFFIXES) and (out / e).is_file()) for e in entries)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(e, os.strerror(e), str(a))


@contextlib.contextmanager
def _locked(parent: Path):
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _recover(out: Path) -> None:
    """Remove leftovers of killed builds (rule 3); call with the parent locked."""
    parent, name = out.parent, out.name
    olds = sorted(parent.glob(f".{name}.old-*"))
    if not out.exists() and olds:
        os.rename(olds[0], out)  # the kill fell between the two renames of the fallback swap
        olds = olds[1:]
    for p in olds + sorted(parent.glob(f".{name}.build-*")):
        shutil.rmtree(p, ignore_errors=True)


def write_tree_atomic(files: dict[str, bytes], out: Path) -> None:
    """Write ``files`` (name -> bytes) as directory ``out``, replacing it atomically.

    Raises
    ------
    ProblemError
        ``out`` may not be replaced (rule 1).
    """
    out = Path(out)
    check_out_dir(out)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    out = parent / out.name
    with _locked(parent):
        _recover(out)
        check_out_dir(out)  # again, under the lock
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=parent))
        try:
            for name, data in sorted(files.items()):
                (tmp / name).write_bytes(data)
            (tmp / MARKER).write_text("written by `metaanalysis report`; safe to replace\n")
            for keep in KEEP:
                src = out / keep
                if src.is_file() and keep not in files:
                    shutil.copy2(src, tmp / keep)
            os.chmod(tmp, 0o755)
            if not out.exists():
                os.rename(tmp, out)
            elif _exchange(tmp, out):
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous tree
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
                old.rmdir()
                os.rename(out, old)
                os.rename(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

