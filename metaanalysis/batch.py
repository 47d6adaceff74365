"""Build the reports of many registry directories, incrementally, in parallel.

``metaanalysis batch DIR... [--out OUT] [-j N] [--scheduler ADDRESS] [--force]``

Each ``DIR`` holds ``registry.csv`` and ``analyses.toml`` (or ``DIR/trials/registry.csv`` and
``DIR/trials/analyses.toml``); its reports go to ``OUT/<name of DIR>/`` through
:func:`metaanalysis.report.build.build_reports` (atomic). Directories are built in worker
processes (:class:`concurrent.futures.ProcessPoolExecutor`, "spawn" start method), in-process
with ``-j 1``, or on a Dask distributed cluster with ``--scheduler ADDRESS``.

Incremental: after a successful build the SHA-256 of the inputs (registry bytes, plan bytes,
``metaanalysis.__version__`` and a hash of the package's code/template/data files) is written
to ``OUT/<name>/.inputs.sha256``; a directory whose stamp matches is skipped ("unchanged")
unless ``force``. The stamp is written only after the atomic build succeeded, so an
interrupted or failed build is retried next time and never hides stale reports.

One bad registry never stops the others: each of its problems is one summary line
``FAILED DIR: PATH:LINE:COLUMN: error: message (hint)`` (printed once; the progress line only
counts them). ``OUT/index.html`` is an overview across the registries: a link to each report,
its analyses and its status (:func:`write_overview`). Exit codes (as the rest of the CLI): 0 all built or unchanged,
1 at least one directory failed, 2 usage errors (a DIR that does not exist or has no registry,
``-j`` < 1, the ``dask`` extra missing, an unreachable scheduler).

The design follows the "make"-style rebuild rule (rebuild iff a content hash of every input
changed), as in e.g. Mokhov, Mitchell & Peyton Jones, "Build systems à la carte",
Proc. ACM Program. Lang. 2 (ICFP) 2018, doi:10.1145/3236774 (verifying traces).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from .report.output import BATCH_STAMP, inside

__all__ = [
    "BatchJob",
    "JobResult",
    "BatchSummary",
    "BatchUsageError",
    "STAMP_NAME",
    "DEFAULT_BUILDER",
    "find_inputs",
    "plan_jobs",
    "toolkit_hash",
    "inputs_hash",
    "build_one",
    "run_batch",
    "write_overview",
]

#: File (inside ``OUT/<name>/``) holding the inputs' SHA-256 of the last successful build.
STAMP_NAME = BATCH_STAMP
#: ``module:function`` called as ``f(registry_path, plan_path, out_dir, jobs=plot_jobs)`` for one
#: directory (``jobs``: :attr:`BatchJob.plot_jobs`, worker processes it may use; None = its choice).
DEFAULT_BUILDER = "metaanalysis.report.build:build_reports"
REGISTRY_NAME = "registry.csv"
#: Problem lines listed per failed directory in the summary (the rest are counted).
MAX_LISTED = 10
#: The overview page across registries, written into the batch output folder.
OVERVIEW_NAME = "index.html"
PLAN_NAME = "analyses.toml"
# Package files whose change must invalidate every stamp (same suffixes as the Makefile's SRC, plus a few).
_CODE_SUFFIXES = (".py", ".j2", ".css", ".json", ".js", ".html", ".toml")
_HASH_TAG = b"metaanalysis-batch-stamp-v1\0"


class BatchUsageError(Exception):
    """A usage error (exit 2): a directory that does not exist or has no registry, a bad option."""


# --- jobs and results ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchJob:
    """One directory to build (plain strings only: it travels to worker processes and Dask workers).

    Attributes
    ----------
    name : str
        Output name: reports go to ``out_root/name``.
    src : str
        The directory as given on the command line (shown in messages).
    registry, plan : str
        Paths of ``registry.csv`` and ``analyses.toml``.
    out_dir : str
        ``OUT/<name>``.
    digest : str
        Hex SHA-256 of the inputs (:func:`inputs_hash`) as seen by the caller, compared with the
        stamp to decide "unchanged". The worker hashes the inputs again (with its own toolkit
        hash) just before building and stamps that.
    builder : str
        ``module:function`` that builds one directory (default :data:`DEFAULT_BUILDER`).
    plot_jobs : int, optional
        Processes the report builder may use for plots inside this job (passed to the builder
        as ``jobs=``); None = the builder's choice.
    """

    name: str
    src: str
    registry: str
    plan: str
    out_dir: str
    digest: str
    builder: str = DEFAULT_BUILDER
    plot_jobs: int | None = None


@dataclass(frozen=True)
class JobResult:
    """Outcome of one directory.

    Attributes
    ----------
    name, src, out_dir : str
        As in :class:`BatchJob`.
    status : {"built", "unchanged", "failed"}
    n_analyses : int or None
        Analyses built (None when unknown, unchanged or failed).
    seconds : float
        Wall-clock time of the build in the worker, in seconds (0 for unchanged).
    reason : str
        For "failed": the first problem line ``PATH:LINE:COLUMN: error: message (hint)``, or
        the exception for a bug.
    problems : tuple of str
        For "failed": every problem line (the first is ``reason``).
    traceback : str
        For a bug in the toolkit: its traceback (the CLI prints it with ``METAANALYSIS_DEBUG=1``).
    peak_rss_kib : int
        Peak resident set size of the process that built it, in KiB (``ru_maxrss`` on Linux);
        0 when unknown.
    """

    name: str
    src: str
    out_dir: str
    status: str
    n_analyses: int | None = None
    seconds: float = 0.0
    reason: str = ""
    problems: tuple[str, ...] = ()
    peak_rss_kib: int = 0
    traceback: str = ""


@dataclass(frozen=True)
class BatchSummary:
    """All results, in the order the directories were given.

    Attributes
    ----------
    results : tuple of JobResult
    seconds : float
        Wall-clock time of the whole run, in seconds.
    overview : str
        Path of the overview page written (``OUT/index.html``), or why none was written.
    """

    results: tuple[JobResult, ...]
    seconds: float = 0.0
    overview: str = ""

    def _with(self, status: str) -> list[JobResult]:
        return [r for r in self.results if r.status == status]

    @property
    def built(self) -> list[JobResult]:
        return self._with("built")

    @property
    def unchanged(self) -> list[JobResult]:
        return self._with("unchanged")

    @property
    def failed(self) -> list[JobResult]:
        return self._with("failed")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def format(self, max_problems: int = MAX_LISTED) -> str:
        """The end-of-run summary: one line of counts, then one line per problem of each failed
        directory (``FAILED DIR: PATH:LINE:COLUMN: error: message (hint)``; at most
        ``max_problems`` per directory, then a line saying how to list the rest), then the overview.
        """
        n_an = sum(r.n_analyses or 0 for r in self.built)
        lines = [
            f"batch: {len(self.built)} built ({n_an} analyses), {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed, in {self.seconds:.1f} s"
        ]
        for r in self.failed:
            lines += [f"  FAILED {r.src}: {p}" for p in (r.problems or (r.reason,))[:max_problems]]
            if len(r.problems) > max_problems:
                lines.append(f"  FAILED {r.src}: ... and {len(r.problems) - max_problems} more problems "
                             f"(`metaanalysis validate` on its registry and plan lists them all)")
        if self.overview:
            lines.append(f"overview: {self.overview}")
        return "\n".join(lines)


# --- finding the inputs ----------------------------------------------------------------------


def find_inputs(directory: str | Path) -> tuple[Path, Path]:
    """``(registry.csv, analyses.toml)`` of a batch directory.

    Looks in ``directory`` first, then in ``directory/trials``.

    Raises
    ------
    BatchUsageError
        When the directory does not exist or holds no ``registry.csv`` in either place.
        A missing plan next to an existing registry is *not* a usage error: the builder
        reports it as a data problem for that directory only.
    """
    d = Path(directory)
    if not d.exists():
        raise BatchUsageError(f"{directory}: no such directory")
    if not d.is_dir():
        raise BatchUsageError(f"{directory}: not a directory (give the directory holding {REGISTRY_NAME})")
    for base in (d, d / "trials"):
        if (base / REGISTRY_NAME).is_file():
            return base / REGISTRY_NAME, base / PLAN_NAME
    raise BatchUsageError(
        f"{directory}: no {REGISTRY_NAME} (looked in {d} and {d / 'trials'}); "
        f"each directory needs {REGISTRY_NAME} and {PLAN_NAME}"
    )


def _unique_names(dirs: Sequence[Path]) -> list[str]:
    """Output names: the directory's name; duplicates get parent components (``a__data``, ``b__data``).

    Independent of the order of the arguments (so reordering never swaps outputs);
    the directories must be distinct resolved paths.
    """
    parts = [d.parts[1:] if d.is_absolute() else d.parts for d in dirs]
    depth = [1] * len(dirs)

    def name(i: int) -> str:
        p = parts[i]
        return "__".join(p[-depth[i]:]) if p else "root"

    while True:
        names = [name(i) for i in range(len(dirs))]
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n, []).append(i)
        clash = [i for g in groups.values() if len(g) > 1 for i in g]
        grown = False
        for i in clash:
            if depth[i] < len(parts[i]):
                depth[i] += 1
                grown = True
        if not clash or not grown:
            break
    # Unreachable for distinct resolved paths, but never let two outputs share a directory.
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


@functools.lru_cache(maxsize=None)
def toolkit_hash() -> str:
    """Hex SHA-256 of the toolkit: version, every code/template/data file of the package, and the schema.

    Any change to the code that builds reports must rebuild them; hashing all package
    files (not just ``report/``) is the conservative choice (pooling changes numbers too).
    """
    from . import __version__

    h = hashlib.sha256(_HASH_TAG)
    h.update(__version__.encode() + b"\0")
    pkg = Path(__file__).resolve().parent
    files = sorted(
        p for p in pkg.rglob("*")
        if p.is_file() and p.suffix in _CODE_SUFFIXES and "__pycache__" not in p.parts
    )
    schema = pkg.parent / "trials" / "schema.json"  # registry.py falls back to it in a source tree
    if schema.is_file():
        files.append(schema)
    for p in files:
        rel = p.relative_to(pkg.parent).as_posix().encode()
        data = p.read_bytes()
        h.update(len(rel).to_bytes(8, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def inputs_hash(registry: str | Path, plan: str | Path, toolkit: str | None = None) -> str:
    """Hex SHA-256 of (registry bytes, plan bytes, RoB 2 file and search log bytes, toolkit version + code hash).

    Length-prefixed, so no two different input tuples hash the same stream. A missing
    plan hashes as absent (the build then fails and no stamp is written); so does the optional
    ``rob.csv`` and ``searches.csv`` next to the registry (:func:`metaanalysis.rob.default_rob_path`,
    :func:`metaanalysis.searches.default_searches_path`), which the build reads.
    """
    from .rob import default_rob_path
    from .searches import default_searches_path

    h = hashlib.sha256(_HASH_TAG)
    h.update((toolkit or toolkit_hash()).encode() + b"\0")
    for p in (Path(registry), Path(plan), default_rob_path(registry), default_searches_path(registry)):
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            h.update(b"absent\0")
            continue
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def _read_stamp(out_dir: Path) -> str | None:
    try:
        return (out_dir / STAMP_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _write_stamp(out_dir: Path, digest: str) -> None:
    # Atomic: a half-written stamp must never match.
    tmp = out_dir / f"{STAMP_NAME}.tmp{os.getpid()}"
    tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(tmp, out_dir / STAMP_NAME)


def _size(job: BatchJob) -> int:
    try:
        return os.path.getsize(job.registry) + os.path.getsize(job.plan)
    except OSError:
        return 0


def _is_current(job: BatchJob) -> bool:
    out = Path(job.out_dir)
    if _read_stamp(out) != job.digest:
        return False
    # The stamp alone is not enough if someone deleted the reports next to it.
    return any(p.name != STAMP_NAME for p in out.iterdir())


def plan_jobs(
    dirs: Iterable[str | Path], out: str | Path, builder: str | None = None
) -> list[BatchJob]:
    """Resolve the directories into jobs (inputs found, output names unique, input hashes computed).

    Raises
    ------
    BatchUsageError
        For the first directory that does not exist or has no registry (all are checked first,
        so nothing is built when the command line is wrong).
    """
    given = list(dirs)
    if not given:
        raise BatchUsageError("no directories given")
    errors = []
    found: list[tuple[str, Path, Path, Path]] = []
    seen: set[Path] = set()
    for d in given:
        try:
            reg, plan = find_inputs(d)
        except BatchUsageError as e:
            errors.append(str(e))
            continue
        res = Path(d).resolve()
        if res in seen:  # the same directory twice: build it once
            continue
        seen.add(res)
        found.append((str(d), res, reg, plan))
    if errors:
        raise BatchUsageError("\n".join(errors))
    names = _unique_names([res for _, res, _, _ in found])
    out = Path(out)
    _check_inputs_outside_outputs([(src, reg, plan) for src, _, reg, plan in found], [out / n for n in names])
    tk = toolkit_hash()
    builder = builder or DEFAULT_BUILDER
    return [
        BatchJob(name=n, src=src, registry=str(reg), plan=str(plan), out_dir=str(out / n),
                 digest=inputs_hash(reg, plan, tk), builder=builder)
        for n, (src, _, reg, plan) in zip(names, found)
    ]


def _check_inputs_outside_outputs(inputs: Sequence[tuple[str, Path, Path]], outs: Sequence[Path]) -> None:
    """Refuse (before anything is built) an input directory, registry or plan inside any
    ``OUT/<name>`` that the batch replaces, or an ``OUT/<name>`` that is itself an input
    directory: building would delete the inputs of this or another directory.

    Raises
    ------
    BatchUsageError
        One line per input, naming the input and the output directory it lies in.
    """
    errors = []
    for src, reg, plan in inputs:
        for o in outs:
            hit = next((p for p in (Path(src), reg, plan) if inside(p, o)), None)
            if hit is not None:
                errors.append(f"{hit}: lies inside {o}, which this batch replaces "
                              "(keep inputs outside --out, or choose another --out)")
                break
    if errors:
        raise BatchUsageError("\n".join(errors))


# --- building one directory (runs in a worker) -------------------------------------------------


def _load_builder(spec: str) -> Callable:
    mod, _, fn = spec.partition(":")
    return getattr(importlib.import_module(mod), fn)


def _count_analyses(summary) -> int | None:
    """Number of analyses in whatever the builder returned (BuildSummary), best effort."""
    for attr in ("n_analyses", "analyses", "pages", "results"):
        v = getattr(summary, attr, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if v is not None and hasattr(v, "__len__"):
            return len(v)
    return None


def _peak_rss_kib() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def build_one(job: BatchJob) -> JobResult:
    """Build one directory's reports and, on success, write its stamp. Never raises.

    A top-level function of plain data so that it pickles for "spawn" worker processes and
    Dask workers alike. Data problems (:class:`~metaanalysis.problems.ProblemError`) and any
    other exception become a "failed" :class:`JobResult`; the stamp is written only after the
    builder returned (its output directory is then complete).
    """
    from .problems import ProblemError

    os.environ.setdefault("MPLBACKEND", "Agg")  # workers have no display
    t0 = time.perf_counter()
    base = dict(name=job.name, src=job.src, out_dir=job.out_dir)
    try:
        _require_plan(job)
        # Hashed here, before building, with this worker's own toolkit: a Dask worker running
        # other code, or inputs edited during the build, leave a stamp that will not match.
        digest = inputs_hash(job.registry, job.plan)
        build = _load_builder(job.builder)
        Path(job.out_dir).parent.mkdir(parents=True, exist_ok=True)
        summary = build(job.registry, job.plan, job.out_dir, jobs=job.plot_jobs)
        _write_stamp(Path(job.out_dir), digest)
    except ProblemError as e:
        lines = tuple(p.format() for p in (e.errors or e.problems)) or (str(e),)
        return JobResult(**base, status="failed", seconds=time.perf_counter() - t0, reason=lines[0],
                         problems=lines, peak_rss_kib=_peak_rss_kib())
    except Exception as e:  # a bug in the toolkit: one directory fails, the others go on
        import traceback

        msg = (f"{job.registry}: internal error: {type(e).__name__}: {e} (a bug in metaanalysis, not in "
               "this data: run again with METAANALYSIS_DEBUG=1 for the traceback and report it)")
        return JobResult(**base, status="failed", seconds=time.perf_counter() - t0, reason=msg,
                         problems=(msg,), traceback=traceback.format_exc().rstrip(),
                         peak_rss_kib=_peak_rss_kib())
    return JobResult(**base, status="built", n_analyses=_count_analyses(summary),
                     seconds=time.perf_counter() - t0, peak_rss_kib=_peak_rss_kib())


def _require_plan(job: BatchJob) -> None:
    """A directory without ``analyses.toml`` fails with a batch hint (not the single-registry default path).

    Raises
    ------
    ProblemError
        When ``job.plan`` is not a file.
    """
    from .problems import Problem, ProblemError

    if not Path(job.plan).is_file():
        raise ProblemError([Problem(job.plan, 0, 0, "error", f"no analysis plan next to {REGISTRY_NAME}",
                                    f"each batch directory needs {REGISTRY_NAME} and {PLAN_NAME} side by side: "
                                    f"write {job.plan} (trials/README.md, 'The analysis plan', lists its keys)")])


def _crashed(job: BatchJob, why: str) -> JobResult:
    line = (f"{job.registry}: worker died while building ({why}); out of memory? "
            f"(build this directory alone with -j 1, or free memory, and run again)")
    return JobResult(name=job.name, src=job.src, out_dir=job.out_dir, status="failed", reason=line, problems=(line,))


# --- executors ---------------------------------------------------------------------------------


def _run_inprocess(jobs: Sequence[BatchJob]) -> Iterator[JobResult]:
    for job in jobs:
        yield build_one(job)


def _run_processes(jobs: Sequence[BatchJob], n: int) -> Iterator[JobResult]:
    """Worker processes ("spawn": no forked copies of threads or open plot state).

    Each of the ``n`` workers may use ``CPUs // n`` processes for its plots, so batch workers
    x plot workers never exceed the CPUs. If a worker dies (segfault, OOM kill) the pool is
    broken for every pending job; those are retried one at a time, each in a fresh
    single-worker pool, so only the culprit fails. Ctrl-C kills the workers and raises
    ``KeyboardInterrupt`` (:class:`metaanalysis.runtime.WorkerPool`); a directory whose build
    was killed keeps its previous reports and no stamp, so the next run builds it again.
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    from .runtime import WorkerPool, cpu_count

    n = min(n, len(jobs))
    share = max(1, cpu_count() // n)
    jobs = [dataclasses.replace(j, plot_jobs=share) for j in jobs]
    retry: list[BatchJob] = []
    with WorkerPool(n, "spawn") as pool:
        pending = {pool.submit(build_one, j): j for j in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    retry.append(job)  # unless interrupted: leaving the pool raises then
    for job in retry:
        with WorkerPool(1, "spawn") as solo:
            try:
                yield solo.submit(build_one, job).result()
            except BrokenProcessPool as e:
                if not solo.interrupted:
                    yield _crashed(job, str(e) or "process pool broken")


def _dask_client(address: str):
    try:
        from distributed import Client
    except ImportError as e:
        raise BatchUsageError(
            f"--scheduler needs Dask distributed, which is not installed ({e.name or e}); "
            "install the 'dask' extra: pip install 'metaanalysis[dask]'"
        ) from None
    try:
        return Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise BatchUsageError(f"--scheduler {address}: cannot connect to the Dask scheduler ({e})") from None


def _run_dask(jobs: Sequence[BatchJob], address: str) -> Iterator[JobResult]:
    """The same :func:`build_one` on a Dask distributed cluster (workers must see the same paths)."""
    client = _dask_client(address)
    from distributed import as_completed

    try:
        # Workers have their own working directory: give them absolute paths.
        jobs = [dataclasses.replace(j, registry=os.path.abspath(j.registry), plan=os.path.abspath(j.plan),
                                    out_dir=os.path.abspath(j.out_dir)) for j in jobs]
        futs = {client.submit(build_one, j, key=f"metaanalysis-batch-{j.name}-{j.digest[:16]}", pure=False): j
                for j in jobs}
        for fut in as_completed(list(futs), loop=client.loop):
            job = futs[fut]
            try:
                yield fut.result()
            except Exception as e:  # KilledWorker and friends: build_one itself never raises
                yield _crashed(job, f"{type(e).__name__}: {e}")
    finally:
        client.close()


# --- progress ------------------------------------------------------------------------------------


def _line(i: int, n: int, r: JobResult) -> str:
    if r.status == "built":
        what = f"{r.n_analyses} analyses, " if r.n_analyses is not None else ""
        return f"[{i}/{n}] built {r.name} ({what}{r.seconds:.1f} s)"
    if r.status == "unchanged":
        return f"[{i}/{n}] unchanged {r.name}"
    n_prob = len(r.problems) or 1
    return f"[{i}/{n}] FAILED {r.name} ({n_prob} problem{'s' if n_prob > 1 else ''}: listed in the summary)"


def _width(stream) -> dict:
    # Some pseudo-terminals (CI runners, `script`) report a 0 x 0 size: tqdm then draws nothing.
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return {"ncols": 80, "nrows": 24}
    return {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else {"ncols": 80, "nrows": 24}


class _Progress:
    """tqdm on a terminal, plain log lines otherwise (CI logs, pipes)."""

    def __init__(self, total: int, stream, bar: bool | None = None):
        self.n, self.total, self.stream = 0, total, stream
        if bar is None:
            bar = bool(getattr(stream, "isatty", lambda: False)())
        self.bar = None
        if bar:
            try:
                from tqdm import tqdm
            except ImportError:  # the 'batch' extra is optional: plain lines then
                tqdm = None
            if tqdm is not None:
                # No monitor thread: the report builder renders plots in forked workers only
                # when its process has a single thread.
                tqdm.monitor_interval = 0
                self.bar = tqdm(total=total, file=stream, unit="dir", desc="batch", **_width(stream))

    def update(self, r: JobResult) -> None:
        self.n += 1
        if self.bar is not None:
            if r.status == "failed":
                self.bar.write(_line(self.n, self.total, r), file=self.stream)
            self.bar.set_postfix_str(r.name, refresh=False)
            self.bar.update(1)
        else:
            print(_line(self.n, self.total, r), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- the overview page -------------------------------------------------------------------------


def _plan_title(plan: str) -> str:
    """The plan's ``title`` ('' when the plan is missing or unreadable: its problems are listed anyway)."""
    import tomllib

    try:
        title = tomllib.loads(Path(plan).read_text(encoding="utf-8")).get("title", "")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    return title if isinstance(title, str) else ""


def _report_analyses(out_dir: str, fallback: int | None) -> int | None:
    """Analyses in the report in ``out_dir`` (rows of its ``results.csv``), else ``fallback``."""
    import csv

    try:
        with open(Path(out_dir) / "results.csv", newline="", encoding="utf-8") as f:
            return max(0, sum(1 for _ in csv.reader(f)) - 1)
    except (OSError, UnicodeDecodeError, csv.Error):
        return fallback


def _overview_rows(jobs: Sequence[BatchJob], results: dict[str, JobResult]):
    from .render.batch import OverviewRow

    rows = []
    for job in jobs:
        r = results[job.name]
        has_report = (Path(job.out_dir) / "index.html").is_file()
        rows.append(OverviewRow(
            name=job.name, src=job.src, failed=r.status == "failed", title=_plan_title(job.plan),
            n_analyses=_report_analyses(job.out_dir, r.n_analyses) if has_report else None,
            has_report=has_report, problems=r.problems or ((r.reason,) if r.reason else ())))
    return rows


def write_overview(jobs: Sequence[BatchJob], results: dict[str, JobResult], out: str | Path) -> str:
    """Write ``OUT/index.html``: each directory of this run with a link to its report, its
    analyses and its status (:func:`metaanalysis.render.batch.overview_html`).

    A file of that name that the batch did not write (no :data:`~metaanalysis.render.batch.GENERATOR`
    meta tag in its first 2 KiB) is never replaced.

    Returns
    -------
    str
        The page's path, or why it was not written.
    """
    from .render.batch import GENERATOR, overview_html

    target = Path(out) / OVERVIEW_NAME
    if target.is_symlink() or target.is_dir():
        return f"not written: {target} is not a regular file (move it away to get the overview)"
    if target.exists():
        with open(target, "rb") as f:
            head = f.read(2048)
        if GENERATOR.encode() not in head:
            return f"not written: {target} was not written by metaanalysis batch (move it away to get the overview)"
    page = overview_html(_overview_rows(jobs, results))
    if target.is_file() and target.read_bytes() == page:
        return str(target)  # unchanged: not even its mtime moves (a rerun with nothing to do writes nothing)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{OVERVIEW_NAME}.tmp{os.getpid()}")
    tmp.write_bytes(page)
    os.replace(tmp, target)  # atomic: a reader never sees half a page
    return str(target)


# --- the driver ----------------------------------------------------------------------------------


def _execute(work: list[BatchJob], jobs: int, scheduler: str | None) -> Iterator[JobResult]:
    """The results of ``work``, built in process, in ``jobs`` worker processes or on Dask."""
    if not work:
        return iter(())
    if scheduler or jobs > 1:
        # Largest registries first (build time grows with the analyses in it): a big
        # one started last would leave the other workers idle at the end.
        work.sort(key=_size, reverse=True)
    if scheduler:
        return _run_dask(work, scheduler)
    if jobs == 1 or len(work) == 1:
        return _run_inprocess(work)
    return _run_processes(work, jobs)


def run_batch(
    dirs: Iterable[str | Path],
    out: str | Path = "batch-reports",
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    stream=None,
    builder: str | None = None,
    overview_page: bool = True,
) -> BatchSummary:
    """Build the reports of every directory; never stops at a bad one.

    Parameters
    ----------
    dirs : iterable of str or Path
        Directories holding ``registry.csv`` + ``analyses.toml`` (or ``trials/`` with them).
    out : str or Path
        Reports for ``DIR`` go to ``out/<name of DIR>/`` (duplicate names get parent components).
    jobs : int
        Worker processes (1 = in this process). Ignored with ``scheduler``.
    scheduler : str, optional
        Dask scheduler address (e.g. ``tcp://127.0.0.1:8786``): build on that cluster instead.
    force : bool
        Rebuild even when the stamp says the inputs are unchanged.
    progress : bool, optional
        Show a tqdm bar (default: when ``stream`` is a terminal); else one log line per directory.
    stream : file, optional
        Where progress goes (default ``sys.stderr``).
    builder : str, optional
        ``module:function`` building one directory (default :data:`DEFAULT_BUILDER`;
        tests substitute a stand-in).
    overview_page : bool
        Write ``out/index.html`` linking every directory's report (:func:`write_overview`).

    Returns
    -------
    BatchSummary
        Results in the order the directories were given.

    Raises
    ------
    BatchUsageError
        Before anything is built: a directory that does not exist or has no registry,
        ``jobs < 1``, or (with ``scheduler``) Dask missing / the scheduler unreachable.
    """
    if jobs < 1:
        raise BatchUsageError(f"-j/--jobs must be at least 1 (got {jobs})")
    stream = sys.stderr if stream is None else stream
    t0 = time.perf_counter()
    todo = plan_jobs(dirs, out, builder)
    results: dict[str, JobResult] = {}
    work = []
    for job in todo:
        if not force and _is_current(job):
            results[job.name] = JobResult(name=job.name, src=job.src, out_dir=job.out_dir, status="unchanged")
        else:
            work.append(job)
    bar = _Progress(len(todo), stream, progress)
    try:
        for r in results.values():
            bar.update(r)
        for r in _execute(work, jobs, scheduler):
            results[r.name] = r
            bar.update(r)
    finally:
        bar.close()
    overview = write_overview(todo, results, out) if overview_page else ""
    return BatchSummary(results=tuple(results[j.name] for j in todo), seconds=time.perf_counter() - t0,
                        overview=overview)
