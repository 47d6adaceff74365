"""Worker processes: pools, death with the parent, Ctrl-C, CPU count, when forking is safe.

The report builder renders plots in forked workers (:func:`run_forked`); ``batch`` builds
directories in spawned workers (:class:`WorkerPool` with ``"spawn"``). Both get the same rules:

- **Workers die with this process.** Each worker asks Linux for ``SIGKILL`` when its parent
  dies (``prctl(PR_SET_PDEATHSIG)``, :func:`worker_init`); otherwise a killed build (``kill -9``,
  the OOM killer, a CI timeout) leaves workers running that hold the caller's stdout/stderr
  open, and ``make`` or CI waits on them forever.
- **Ctrl-C belongs to this process.** A terminal sends SIGINT to the whole foreground process
  group; workers ignore it (no traceback from each of them). While a pool is open, this
  process's SIGINT handler only records the signal and kills the workers: an asynchronous
  ``KeyboardInterrupt`` could land inside the executor's own locks. ``KeyboardInterrupt`` is
  raised in the main thread when the pool is left. A process that ignores SIGINT (a worker
  itself, a background job) keeps ignoring it: its parent deals with Ctrl-C.
- **Fork only where it is safe** (:func:`fork_is_safe`): forking a process with other threads
  can copy a lock held by one of them into the child, where nobody will ever release it.
- **One BLAS thread per process** (:func:`single_threaded_blas`), in the command-line process
  and in every worker: the parallelism is the pool of processes. The matrices here are small
  (at most ~10,000 x 30), so a BLAS thread pool gains nothing; OpenBLAS's idle threads spin
  after each call instead, which doubled the CPU time of a batch build at ``-j 2`` on two CPUs
  (benchmarks/BATCH.md). A variable the user has set is left as it is.

Nothing here is specific to reports; nothing here imports the rest of the package.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence, TypeVar

__all__ = ["WorkerPool", "cpu_count", "fork_is_safe", "fork_workers", "run_forked", "single_threaded_blas",
           "worker_init", "BLAS_THREAD_VARIABLES"]

T = TypeVar("T")
R = TypeVar("R")

#: ``prctl`` option: signal this process when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under ``taskset`` or a cgroup
    cpuset), not the machine's count; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def fork_is_safe() -> bool:
    """True where a pool of forked workers may be started from this process.

    The ``fork`` start method must exist (POSIX), this must not be a daemon process (e.g. a
    multiprocessing or Dask worker: those may not have children), and this process must have a
    single thread (forking a threaded process can inherit a lock another thread holds).
    """
    return ("fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon
            and threading.active_count() == 1)


def fork_workers(n_tasks: int, jobs: int | None = None, *, cap: int = 4, min_tasks: int = 3) -> int:
    """Number of forked workers for ``n_tasks`` independent tasks; 1 means "in this process".

    Parameters
    ----------
    n_tasks : int
        Tasks to spread (never more workers than tasks).
    jobs : int, optional
        Workers asked for (e.g. ``batch``'s share of the CPUs); None chooses automatically:
        ``min(cpu_count(), cap, n_tasks)``, and 1 below ``min_tasks`` tasks, where starting
        workers costs more than it saves.
    cap, min_tasks : int
        Bounds of the automatic choice.

    Returns
    -------
    int
        1 whenever :func:`fork_is_safe` is False, whatever ``jobs`` asks.

    Raises
    ------
    ValueError
        ``jobs`` < 1.
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1 (got {jobs})")
    if not fork_is_safe():
        return 1
    if jobs is None:
        return 1 if n_tasks < min_tasks else max(1, min(cpu_count(), cap, n_tasks))
    return max(1, min(jobs, n_tasks))


#: Environment variables that set the thread count of OpenBLAS, OpenMP builds and MKL.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_blas() -> bool:
    """Ask the BLAS library of this process for one thread (module docstring), unless the
    user set the thread count. The libraries read the variables when they are loaded, i.e. when
    numpy is first imported; returns False when that already happened (then nothing changes).
    Only for processes this package owns: the command line and its workers."""
    for var in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(var, "1")
    return "numpy" not in sys.modules


def worker_init(parent_pid: int | None = None) -> None:
    """Initialiser of every worker process: die with the parent, leave Ctrl-C to the parent,
    one BLAS thread (:func:`single_threaded_blas`).

    Parameters
    ----------
    parent_pid : int, optional
        The parent's process id, to catch a parent that died before ``prctl`` took effect
        (the worker then exits at once).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_threaded_blas()
    try:  # Linux only; elsewhere workers end when the pool's pipes close
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)
    except (OSError, AttributeError):
        pass


class WorkerPool:
    """A process pool (a :class:`~concurrent.futures.ProcessPoolExecutor`) used as a context
    manager, with the rules of this module: workers run :func:`worker_init`, and Ctrl-C in the
    main thread kills them and raises ``KeyboardInterrupt`` on leaving the ``with`` block.

    Parameters
    ----------
    workers : int
        Worker processes (>= 1).
    start_method : {"fork", "spawn", "forkserver"}
        ``"fork"`` shares the parent's imported modules (cheap start; check
        :func:`fork_is_safe` first); ``"spawn"`` starts fresh interpreters.

    Notes
    -----
    Leaving the block normally or with an exception cancels pending tasks and waits for the
    running ones. After Ctrl-C the workers are dead, so every pending future, and any later
    ``submit``, raises :class:`~concurrent.futures.process.BrokenProcessPool`; whatever the
    block does with that, leaving it raises ``KeyboardInterrupt``.
    """

    def __init__(self, workers: int, start_method: str):
        self._executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(start_method),
            initializer=worker_init, initargs=(os.getpid(),))
        self._interrupted = False
        self._owns_sigint = False
        self._previous_handler: Any = None

    @property
    def interrupted(self) -> bool:
        """True once Ctrl-C (SIGINT) arrived while the pool was open."""
        return self._interrupted

    def submit(self, fn: Callable[..., R], *args: Any) -> Future:
        """Schedule ``fn(*args)`` in a worker (``fn`` and ``args`` must pickle)."""
        return self._executor.submit(fn, *args)

    def kill_workers(self) -> None:
        """SIGKILL every worker process of the pool (safe inside a signal handler)."""
        for proc in list((getattr(self._executor, "_processes", None) or {}).values()):
            proc.kill()

    def _on_sigint(self, signum, frame) -> None:
        self._interrupted = True
        self.kill_workers()

    def __enter__(self) -> WorkerPool:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
            self._owns_sigint = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._owns_sigint:
                signal.signal(signal.SIGINT, self._previous_handler)
                self._owns_sigint = False
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._interrupted:
            raise KeyboardInterrupt from None


def run_forked(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]``, computed by ``workers`` forked processes when ``workers`` > 1.

    ``fn`` must be deterministic: the result is the same list serially or in workers, and
    should a worker die of something other than Ctrl-C (e.g. out of memory), the items are
    computed again in this process. Forked workers inherit the imported modules and loaded
    fonts, so they start without re-import cost. Choose ``workers`` with :func:`fork_workers`.

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C while the workers ran (they are killed first).
    """
    if workers <= 1:
        return [fn(x) for x in items]
    with WorkerPool(workers, "fork") as pool:
        try:  # submit too: a worker killed by Ctrl-C breaks the pool for later submits
            futures = [pool.submit(fn, x) for x in items]
            return [f.result() for f in futures]
        except BrokenProcessPool:
            pass  # interrupted: leaving the block raises KeyboardInterrupt
    return [fn(x) for x in items]
