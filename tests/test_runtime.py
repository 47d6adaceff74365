"""Process handling (metaanalysis/runtime.py).

The end-to-end behaviour (a killed or interrupted ``metaanalysis report`` leaves no worker and
no partial output) is in test_interrupt.py; here are the rules one at a time.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from metaanalysis import runtime
from metaanalysis.runtime import WorkerPool, cpu_count, fork_is_safe, fork_workers, run_forked

#: This test process; forked workers inherit the value, so they can tell they are workers.
PARENT = os.getpid()
_PR_GET_PDEATHSIG = 2  # linux/prctl.h


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _square_or_die(x: int) -> int:
    if os.getpid() != PARENT:
        os._exit(3)  # as an OOM kill would: the pool breaks
    return x * x


def _worker_state(_: object = None) -> tuple[int, bool, int]:
    """(parent-death signal, SIGINT ignored, parent pid) as seen inside a worker."""
    sig = ctypes.c_int(0)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)
    return sig.value, signal.getsignal(signal.SIGINT) == signal.SIG_IGN, os.getppid()


def test_cpu_count_is_the_affinity_mask():
    assert cpu_count() == len(os.sched_getaffinity(0)) >= 1


def test_fork_workers_automatic_choice(monkeypatch):
    """min(CPUs, 4, tasks), serial below 3 tasks (the rule report/build.py always used)."""
    monkeypatch.setattr(runtime, "fork_is_safe", lambda: True)
    monkeypatch.setattr(runtime, "cpu_count", lambda: 8)
    assert [fork_workers(n) for n in (0, 1, 2, 3, 4, 5, 100)] == [1, 1, 1, 3, 4, 4, 4]
    monkeypatch.setattr(runtime, "cpu_count", lambda: 2)
    assert [fork_workers(n) for n in (2, 3, 100)] == [1, 2, 2]


def test_fork_workers_explicit_jobs(monkeypatch):
    monkeypatch.setattr(runtime, "fork_is_safe", lambda: True)
    assert [fork_workers(n, 2) for n in (1, 2, 3, 50)] == [1, 2, 2, 2]
    assert fork_workers(50, 16) == 16  # not capped by the CPUs: the caller asked
    with pytest.raises(ValueError, match="at least 1"):
        fork_workers(5, 0)


def test_no_fork_where_it_is_unsafe(monkeypatch):
    monkeypatch.setattr(runtime, "fork_is_safe", lambda: False)
    assert fork_workers(50) == 1 and fork_workers(50, 4) == 1


def test_fork_is_safe_rules(monkeypatch):
    """Fork only from a single-threaded, non-daemon process where fork exists. (This pytest
    process may hold threads other tests left behind, so its thread count is set here.)"""
    monkeypatch.setattr(runtime.threading, "active_count", lambda: 1)
    assert fork_is_safe()
    monkeypatch.setattr(runtime.threading, "active_count", lambda: 2)
    assert not fork_is_safe()
    monkeypatch.setattr(runtime.threading, "active_count", lambda: 1)
    monkeypatch.setattr(runtime.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert not fork_is_safe()
    monkeypatch.undo()
    monkeypatch.setattr(runtime.threading, "active_count", lambda: 1)
    monkeypatch.setattr(runtime.multiprocessing.current_process(), "daemon", True, raising=False)
    assert not fork_is_safe()


def test_a_real_second_thread_makes_forking_unsafe():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not fork_is_safe()
    finally:
        stop.set()
        t.join()


def test_run_forked_uses_workers_and_keeps_the_order():
    got = run_forked(_square_and_pid, list(range(12)), 2)
    assert [v for v, _ in got] == [x * x for x in range(12)]
    pids = {p for _, p in got}
    assert PARENT not in pids and 1 <= len(pids) <= 2
    serial = run_forked(_square_and_pid, [3, 4], 1)
    assert serial == [(9, PARENT), (16, PARENT)]


def test_run_forked_recomputes_here_when_a_worker_dies():
    assert run_forked(_square_or_die, list(range(6)), 2) == [x * x for x in range(6)]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_die_with_the_parent_and_ignore_ctrl_c(start_method):
    with WorkerPool(1, start_method) as pool:
        deathsig, ignores_sigint, ppid = pool.submit(_worker_state, None).result(timeout=60)
    assert (deathsig, ignores_sigint, ppid) == (signal.SIGKILL, True, PARENT)


@pytest.fixture
def terminal_sigint():
    """Ctrl-C as in a terminal: a run started as a background job (`make test &`) inherits SIGINT
    ignored, and the pool rightly leaves an ignored SIGINT alone (tested below)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_kills_the_workers_and_raises_keyboard_interrupt(terminal_sigint):
    before = signal.getsignal(signal.SIGINT)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with WorkerPool(2, "fork") as pool:
            fut = pool.submit(time.sleep, 60)
            procs = list(pool._executor._processes.values())
            assert signal.getsignal(signal.SIGINT) == pool._on_sigint  # else SIGINT would end pytest
            os.kill(os.getpid(), signal.SIGINT)
            assert pool.interrupted
            with pytest.raises(BrokenProcessPool):
                fut.result(timeout=30)
    assert time.monotonic() - t0 < 30
    assert signal.getsignal(signal.SIGINT) == before
    assert procs and all(not p.is_alive() for p in procs)


def test_a_process_ignoring_ctrl_c_keeps_ignoring_it():
    """A worker (or a background job) leaves Ctrl-C to its parent, also while it has a pool."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with WorkerPool(1, "fork") as pool:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert pool.submit(_square_and_pid, 5).result(timeout=60)[0] == 25
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)



_BLAS_SCRIPT = r"""
import json, os, sys
from metaanalysis.runtime import BLAS_THREAD_VARIABLES, single_threaded_blas
before = single_threaded_blas()
import numpy
after = single_threaded_blas()
print(json.dumps({"before": before, "after": after, "env": {v: os.environ.get(v) for v in BLAS_THREAD_VARIABLES}}))
"""


@pytest.mark.parametrize("preset", [None, "3"])
def test_one_blas_thread_unless_the_user_set_one(preset):
    """single_threaded_blas asks for one BLAS thread before numpy loads (True), is too late after
    (False), and leaves a thread count the user set alone."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if preset:
        env["OPENBLAS_NUM_THREADS"] = preset
    out = json.loads(subprocess.run([sys.executable, "-c", _BLAS_SCRIPT], capture_output=True, text=True,
                                    check=True, env=env).stdout)
    assert out["before"] is True and out["after"] is False
    assert out["env"] == {"OPENBLAS_NUM_THREADS": preset or "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_the_command_line_and_its_workers_ask_for_one_blas_thread():
    """cli.main calls single_threaded_blas before it imports numpy, and every pool worker runs it in
    worker_init: the spawned worker's environment says 1 (benchmarks/BATCH.md: the idle threads of a
    BLAS pool spin and took as much CPU as the build itself at -j 2)."""
    import inspect

    from metaanalysis import cli
    from metaanalysis.runtime import WorkerPool

    assert "single_threaded_blas()" in inspect.getsource(cli.main)
    with WorkerPool(1, "spawn") as pool:
        got = pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result()
    assert got == os.environ.get("OPENBLAS_NUM_THREADS", "1")
