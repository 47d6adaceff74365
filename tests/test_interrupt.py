"""Interrupted builds: ``metaanalysis report`` killed midway leaves the previous reports intact.

metaanalysis/report/build.py promises: "writes into a temporary directory next to ``out_dir``
and swaps it in with renames, so a failed or killed build leaves the previous reports
untouched". These tests start the installed console script into an OUT that holds a good
build of the shipped registry and plan, interrupt it, and check that

- OUT is byte-identical to before (a build that finished first rebuilds the same bytes:
  builds are byte-reproducible, README "Outputs"),
- nothing is left beside OUT except the temporary build directory (``.<out>.build-*``),
- the next build succeeds and leaves nothing beside OUT (stale temporary directories removed),
- no worker process outlives the killed build.

Where the kill lands is varied with delays (no timing is asserted), and made certain with a
child process that SIGKILLs itself at a chosen step (after the k-th file written; between
moving the old OUT away and moving the new one in).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "trials" / "registry.csv"
PLAN = ROOT / "trials" / "analyses.toml"
CONSOLE = Path(sys.executable).parent / "metaanalysis"
ARGS = ["report", "--registry", str(REGISTRY), "--plan", str(PLAN)]


def snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def session_procs(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the killed build started its own session)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields after the comm: state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(d.name))
    return pids


def reap_session(sid: int) -> list[int]:
    """SIGKILL whatever is left of the session we started (by its id) and return what was left."""
    left = session_procs(sid)
    if left:
        try:
            os.killpg(sid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    assert CONSOLE.is_file(), f"{CONSOLE} missing: run `make test` (installs the package into .venv)"
    out = tmp_path_factory.mktemp("good") / "reports"
    # built twice: a rebuild over an identical build is the steady state (its changes.json says
    # "unchanged" where the first build's says "no-previous-build"; issue #17)
    for _ in range(2):
        p = subprocess.run([str(CONSOLE), *ARGS, "--out", str(out)], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
    return out, snapshot(out)


def site_with_previous_build(good, tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    out = site / "reports"
    shutil.copytree(good[0], out)
    assert snapshot(out) == good[1]
    return out


def _default_sigint() -> None:
    # A test run started as a background job (`make test &`) inherits SIGINT ignored, and an
    # ignored signal stays ignored across exec: give the child the disposition a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(cmd: list[str], tmp_path: Path) -> subprocess.Popen:
    """Start in a new session with Ctrl-C at its default; output to files (orphaned workers
    could hold pipes open forever)."""
    so = open(tmp_path / "stdout.txt", "w")
    se = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(cmd, stdout=so, stderr=se, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    so.close()
    se.close()
    return proc


def stderr_of(tmp_path: Path) -> str:
    return (tmp_path / "stderr.txt").read_text()


def wait_session_gone(sid: int, limit: float = 10.0) -> list[int]:
    """Wait (at most ``limit`` s) until no process of the session is left; return the survivors,
    after killing them (they are ours: the session was started by this test)."""
    t_end = time.monotonic() + limit
    while session_procs(sid) and time.monotonic() < t_end:
        time.sleep(0.05)
    return reap_session(sid)


def next_build_cleans_up(out: Path, good_snapshot: dict[str, str]) -> None:
    p = subprocess.run([str(CONSOLE), *ARGS, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert snapshot(out) == good_snapshot
    assert siblings(out) == [], f"left beside OUT after the next build: {siblings(out)}"


# ------------------------------------------------------------------------------------------

DELAYS = (0.3, 1.0, 2.0, 3.0)


@pytest.mark.parametrize("delay", DELAYS)
def test_sigkill_process_group_after_delay(delay, good, tmp_path):
    """``kill -9 -PGID`` (a CI timeout, a closed terminal) after ``delay`` s; OUT must not change."""
    out = site_with_previous_build(good, tmp_path)
    proc = start([str(CONSOLE), *ARGS, "--out", str(out)], tmp_path)
    # sleep until the delay, but kill at once if the temporary directory appears first
    t_end = time.monotonic() + delay
    while time.monotonic() < t_end and proc.poll() is None:
        if any(n.startswith(".reports.build-") for n in siblings(out)):
            break
        time.sleep(0.001)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # finished first: then it rebuilt the same bytes
    proc.wait(timeout=60)
    assert wait_session_gone(proc.pid) == []
    assert snapshot(out) == good[1], "OUT changed after an interrupted build"
    stray = [n for n in siblings(out) if not n.startswith(".reports.build-")]
    assert stray == [], f"files beside OUT after a kill: {stray}"
    next_build_cleans_up(out, good[1])


# The CLI with two CPUs, so that it forks two plot workers on any machine (the automatic choice
# is min(CPUs, 4, analyses)); only the child is patched, not the code under test.
_TWO_CPUS = textwrap.dedent("""
    import sys
    import metaanalysis.runtime as runtime
    runtime.cpu_count = lambda: 2
    from metaanalysis.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def start_with_plot_workers(out: Path, tmp_path: Path) -> subprocess.Popen:
    return start([sys.executable, "-c", _TWO_CPUS, *ARGS, "--out", str(out)], tmp_path)


def _wait_for_workers(proc: subprocess.Popen) -> bool:
    """Poll until the build has forked its plot workers (True) or has ended (False)."""
    while proc.poll() is None:
        if len(session_procs(proc.pid)) >= 2:
            return True
        time.sleep(0.002)
    return False


def test_sigkill_main_process_while_plot_workers_run(good, tmp_path):
    """``kill -9 PID`` of the build (the OOM killer does this) while forked plot workers run:
    the workers must not outlive it (they would hold the caller's stdout/stderr open forever)."""
    out = site_with_previous_build(good, tmp_path)
    proc = start_with_plot_workers(out, tmp_path)
    assert _wait_for_workers(proc), "the build never forked plot workers with 2 CPUs"
    proc.kill()
    proc.wait(timeout=60)
    survivors = wait_session_gone(proc.pid)
    assert survivors == [], f"plot worker(s) {survivors} still running 10 s after the build was killed"
    assert snapshot(out) == good[1]
    next_build_cleans_up(out, good[1])


# A child that SIGKILLs (or SIGINTs) itself at a chosen step: with SIGKILL no cleanup handler can
# run (as with kill -9, an OOM kill or a power cut). Only the child process is patched; build.py is not.
_CHILD = textwrap.dedent("""
    import os, pathlib, signal, sys
    mode, sig, k = sys.argv[1], getattr(signal, sys.argv[2]), int(sys.argv[3])
    n = [0]
    if mode == "write":
        orig = pathlib.Path.write_bytes
        def write_bytes(self, data):
            r = orig(self, data)
            n[0] += 1
            if n[0] == k:
                os.kill(os.getpid(), sig)
            return r
        pathlib.Path.write_bytes = write_bytes
    elif mode == "exchange":  # kill right after the atomic swap, before the old tree is removed
        import metaanalysis.report.output as o
        orig = o._exchange
        def exchange(a, b):
            r = orig(a, b)
            os.kill(os.getpid(), sig)
            return r
        o._exchange = exchange
    elif mode == "rename":  # the fallback swap (no renameat2): kill after rename number k
        import metaanalysis.report.output as o
        o._exchange = lambda a, b: False
        orig = os.rename
        def rename(a, b):
            r = orig(a, b)
            n[0] += 1
            if n[0] == k:
                os.kill(os.getpid(), sig)
            return r
        os.rename = rename
    from metaanalysis.cli import main
    sys.exit(main(sys.argv[4:]))
""")


def run_child(mode: str, sig: str, k: int, out: Path, tmp_path: Path) -> subprocess.Popen:
    proc = start([sys.executable, "-c", _CHILD, mode, sig, str(k), *ARGS, "--out", str(out)], tmp_path)
    proc.wait(timeout=300)
    wait_session_gone(proc.pid)
    return proc


@pytest.mark.parametrize("k", [1, 10])
def test_sigkill_while_writing_the_temporary_build(k, good, tmp_path):
    out = site_with_previous_build(good, tmp_path)
    proc = run_child("write", "SIGKILL", k, out, tmp_path)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr_of(tmp_path))
    assert snapshot(out) == good[1]
    left = siblings(out)
    assert len(left) == 1 and left[0].startswith(".reports.build-"), left
    assert len(list((out.parent / left[0]).iterdir())) == k  # the half-written temporary build
    next_build_cleans_up(out, good[1])


def test_sigkill_right_after_the_atomic_exchange(good, tmp_path):
    """The swap is one renameat2(RENAME_EXCHANGE): killed right after it, OUT is the complete new
    build, the previous tree waits beside it, and the next build removes it."""
    out = site_with_previous_build(good, tmp_path)
    proc = run_child("exchange", "SIGKILL", 1, out, tmp_path)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr_of(tmp_path))
    assert snapshot(out) == good[1]
    left = siblings(out)
    assert len(left) == 1 and left[0].startswith(".reports.build-"), left
    next_build_cleans_up(out, good[1])


def test_sigkill_between_the_two_renames_of_the_fallback_swap(good, tmp_path):
    """Without renameat2 the swap is two renames (OUT -> .reports.old-*, temp -> OUT). A kill
    between them leaves OUT beside itself; the next build puts it back, then tidies up."""
    out = site_with_previous_build(good, tmp_path)
    proc = run_child("rename", "SIGKILL", 1, out, tmp_path)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr_of(tmp_path))
    left = siblings(out)
    assert not out.exists() and any(x.startswith(".reports.old-") for x in left), left
    from metaanalysis.report.output import _recover

    _recover(out)  # what the next build does first, under the lock
    assert snapshot(out) == good[1]
    next_build_cleans_up(out, good[1])


def test_sigint_while_writing_is_clean(good, tmp_path):
    """Ctrl-C while the temporary build is written: exit 130, one message, nothing left behind."""
    out = site_with_previous_build(good, tmp_path)
    proc = run_child("write", "SIGINT", 5, out, tmp_path)
    err = stderr_of(tmp_path)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == "metaanalysis: interrupted; outputs left as they were"
    assert snapshot(out) == good[1]
    assert siblings(out) == [], siblings(out)


def test_sigint_while_plot_workers_run_is_clean(good, tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group, workers included:
    exit 130 with one message, no traceback from the parent or the workers, nothing left."""
    out = site_with_previous_build(good, tmp_path)
    proc = start_with_plot_workers(out, tmp_path)
    assert _wait_for_workers(proc), "the build never forked plot workers with 2 CPUs"
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    survivors = wait_session_gone(proc.pid)
    err = stderr_of(tmp_path)
    assert survivors == []
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert snapshot(out) == good[1]
    assert siblings(out) == [], siblings(out)


def test_sigint_while_batch_workers_run_is_clean(tmp_path):
    """``metaanalysis batch -j 2`` shares the report's Ctrl-C handling (metaanalysis/runtime.py):
    the workers are killed at once, exit 130 with one message and no traceback, no worker left,
    no stamp for an interrupted directory; the next run builds everything and tidies up."""
    from test_batch import synth

    dirs = [synth.make_registry_dir(tmp_path / "in" / n, 30, seed=i, k_max=12) for i, n in enumerate("ab")]
    out = tmp_path / "out"
    cmd = [str(CONSOLE), "batch", *map(str, dirs), "-j", "2", "--out", str(out)]
    proc = start(cmd, tmp_path)
    t_end = time.monotonic() + 60
    while len(session_procs(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < t_end:
        time.sleep(0.002)  # until both batch workers run
    assert proc.poll() is None, "the batch ended before its workers were seen"
    time.sleep(1.0)  # inside the builds
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    survivors = wait_session_gone(proc.pid)
    err = stderr_of(tmp_path)
    assert survivors == []
    assert err.strip() == "metaanalysis: interrupted; outputs left as they were", err
    assert proc.returncode == 130
    stamped = sorted(p.parent.name for p in out.glob("*/.inputs.sha256"))
    assert stamped != ["a", "b"], "both builds finished before Ctrl-C: nothing was interrupted"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{2 - len(stamped)} built" in again.stdout and f"{len(stamped)} unchanged" in again.stdout
    # no .a.build-* left over; index.html is the batch's overview page across registries
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "index.html"]
