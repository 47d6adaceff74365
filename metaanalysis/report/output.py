"""Writing a report tree safely: refuse foreign directories, swap atomically, recover from kills.

The rules, in order:

1. ``OUT`` must be a new path, an empty directory, a directory holding only the files we
   keep (``README.md``), or a directory a previous build wrote: it carries :data:`MARKER`,
   which lists every file that build wrote, and holds nothing else (a file added since, or
   a subdirectory that is not itself such a build, is refused by name). A directory that
   merely looks like a build (``index.html`` and ``results.csv``, no marker) is refused too:
   nothing but the marker proves authorship. Anything else — a file, the working directory,
   ``trials/`` — is refused, so a typo in ``--out`` can never delete somebody's files.
   :func:`check_inputs_outside` refuses inputs (registry, plan) that lie inside ``OUT``.
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

#: Written into every build; it lists the files the build wrote (one per line after
#: :data:`_MARKER_HEAD`), which is what allows a later build to replace the directory.
MARKER = ".metaanalysis-report"
_MARKER_HEAD = "written by `metaanalysis report`; safe to replace"
_LISTING = "files written:"
#: Files in OUT that are not ours but may be there (and are carried over into the new tree).
KEEP = ("README.md",)
#: Written into OUT by ``metaanalysis batch`` after a successful build (its incremental stamp).
BATCH_STAMP = ".inputs.sha256"


def _refuse(out: Path, message: str, hint: str) -> ProblemError:
    return ProblemError([Problem(str(out), 0, 0, "error", message, hint)])


def _marker_text(names) -> str:
    return "\n".join([_MARKER_HEAD, _LISTING, *sorted(names)]) + "\n"


def _written_by_us(out: Path) -> set[str] | None:
    """Names the build that wrote ``out`` listed in its marker; None without a marker.

    A marker from before the listing (its first line only) proves that the directory is a
    build but not which files: every regular file then counts as written by us.
    """
    try:
        lines = (out / MARKER).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != _MARKER_HEAD:
        return None
    if _LISTING not in lines:
        return {e.name for e in out.iterdir() if e.is_file() and not e.is_symlink()}
    return set(lines[lines.index(_LISTING) + 1:])


def _foreign_entries(out: Path) -> list[str]:
    """Entries of an existing ``out`` that no build of ours wrote (sorted; empty: may be replaced)."""
    entries = sorted(os.listdir(out))
    ours = _written_by_us(out)
    if ours is None:
        return [e for e in entries if e not in KEEP]
    allowed = ours | set(KEEP) | {MARKER, BATCH_STAMP}
    foreign = []
    for e in entries:
        p = out / e
        if p.is_dir() and not p.is_symlink():
            if _written_by_us(p) is None or _foreign_entries(p):  # a nested build (reports/batch/x)
                foreign.append(e + "/")
        elif e not in allowed:
            foreign.append(e)
    return foreign


def check_out_dir(out: Path) -> None:
    """Raise :class:`ProblemError` unless ``out`` may be (re)built; see rule 1."""
    out = Path(out)
    shown = str(out)
    if out.is_symlink():
        raise _refuse(out, "--out is a symbolic link", "give the real directory path")
    if out.exists() and not out.is_dir():
        raise _refuse(out, "--out is a file, not a directory", "give a new or empty directory for the reports")
    res = out.resolve()
    cwd = Path.cwd().resolve()
    if res == cwd or res in cwd.parents or res == Path(res.anchor):
        raise _refuse(out, "--out is the current directory or one of its parents", "give a subdirectory such as reports/")
    if not out.exists():
        return
    foreign = _foreign_entries(out)
    if not foreign:
        return
    shown_names = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    if (out / MARKER).exists():
        hint = "move them out of the way (the rest was written by metaanalysis), or choose another --out"
    elif "index.html" in foreign and "results.csv" in foreign:
        hint = ("it looks like a build made before metaanalysis marked its builds, but only the marker "
                "proves that: delete the directory yourself (for the project's reports/: make clean)")
    else:
        hint = ("choose a new or empty directory for --out, or remove this one yourself "
                "(for the project's reports/: make clean)")
    raise _refuse(out, f"refusing to replace {shown}: it holds files metaanalysis did not write ({shown_names})", hint)


def inside(path: Path, directory: Path) -> bool:
    """True when ``path`` (resolved) is ``directory`` or lies below it."""
    p, d = Path(path).resolve(), Path(directory).resolve()
    return p == d or d in p.parents


def check_inputs_outside(out: Path, inputs: dict[str, Path]) -> None:
    """Raise :class:`ProblemError` when an input (``{"--registry": path, ...}``) lies inside ``out``.

    Replacing ``out`` would delete the input being read (and the next build could not run).
    """
    problems = [Problem(str(p), 0, 0, "error", f"{what} lies inside the output directory {out}, "
                        "which the build replaces", "keep inputs outside --out, or choose another --out")
                for what, p in inputs.items() if inside(p, out)]
    if problems:
        raise ProblemError(problems)


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


def _write(path: Path, data: bytes) -> None:
    """Write a file; an OSError without a file name (a full disk fails in write(), not open())
    gets this path, so the message says where."""
    try:
        path.write_bytes(data)
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


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
                _write(tmp / name, data)
            _write(tmp / MARKER, _marker_text(files).encode("utf-8"))
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

