"""Time of one analysis's design-specific coverage table (``metaanalysis.coverage.coverage``).

Run:  ``.venv/bin/python benchmarks/bench_coverage.py [--repeat N] [--n-sim N] [--json PATH]``

What is measured, for designs of k = 2, 3 and 6 studies (fixed within-study variances on the
log-HR scale): one ``coverage(vi, grid, extra=...)`` call with the analysis layer's settings
(``metaanalysis.analysis._coverage_job``) — 4 τ² values (0, an estimate, a Q-profile upper
bound, the median of τ² under the default half-normal(0.5) prior on τ), the random-effects
model (REML) with the z, knha and adhoc intervals, the common-effect model and the Bayesian
central credible interval under that prior (``bayesian.central_intervals_many``), 10,000
replicates per τ² — i.e. 12 REML and 4 FE ``pool_many`` calls and 4 Bayesian calls on
(10,000, k) arrays.

Printed per k: first the whole table as the analysis layer runs it (``mcse_target =
vocab.COVERAGE_MCSE_TARGET``: each row stops at the first of 1,000, 2,000, 4,000, 8,000 or
``--n-sim`` replicates whose Monte-Carlo SE is small enough), wall and CPU time; then, with every
row at ``--n-sim`` replicates, wall time (best of ``--repeat`` runs; the issue's target is <= 2 s per
analysis), CPU time of this process for the same run (``time.process_time``; closer to the
unloaded wall time on a shared machine), and the split: the Bayesian column alone, one
random-effects interval method and the common-effect model at the same grid. The 1-minute
load average is printed too: the machine is shared, and a load above its core count inflates
wall times.

``--tree DIR`` (repeatable; e.g. an export of an older commit and ``.``): instead, the CPU time
of the Bayesian column alone for each source tree, side by side, for k = 2, 3, 6, 13 and 30
(the k = 13 and 30 designs: variances geometric from 0.005 to 0.3). Each measurement is a fresh
interpreter with that tree first on ``sys.path`` (best of ``--repeat`` calls after a warm-up),
and the trees alternate, so load from other jobs hits them alike: compare the ratios.

Results also go to ``benchmarks/output/bench_coverage.json``. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

from metaanalysis import vocab  # noqa: E402
from metaanalysis.bayesian import central_intervals_many  # noqa: E402
from metaanalysis.coverage import coverage  # noqa: E402

#: Within-study variances per k (log HR; the k = 3 set is pooling.pool's docstring example).
DESIGNS = {
    2: [0.0139, 0.0077],
    3: [0.0139, 0.0077, 0.0119],
    6: list(np.geomspace(0.005, 0.1, 6)),
}
#: Larger designs of the side-by-side mode (``--tree``).
LARGE = {13: list(np.geomspace(0.005, 0.3, 13)), 30: list(np.geomspace(0.005, 0.3, 30))}
#: 0, an estimate, a Q-profile upper bound, the median of τ² under τ ~ half-normal(0.5)
#: (median τ = 0.5 · 0.6745).
GRID = (0.0, 0.01, 0.3, (0.5 * 0.6744897501960817) ** 2)
#: The Bayesian column as the analysis layer adds it (default prior of ratio measures).
BAYES = {"bayes": partial(central_intervals_many, tau_prior="halfnormal", tau_scale=0.5, level=0.95)}


def _timed(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and the CPU time of that same run, in seconds."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def run(repeat: int, n_sim: int) -> dict:
    coverage(DESIGNS[3], [0.0], n_sim=200, extra=BAYES)   # imports and first-call costs out of the timing
    out = {"grid": list(GRID), "n_sim": n_sim, "repeat": repeat, "python": platform.python_version(),
           "numpy": np.__version__, "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "k": {}}
    print(f"coverage table: 4 tau2 x (REML z, knha, adhoc + FE z + Bayes), n_sim = {n_sim:,}; "
          f"best of {repeat}; load {out['load_1min']:.1f} on {out['cpus']} CPUs")
    print(f"{'k':>3} {'staged wall s':>14} {'staged cpu s':>13} {'wall s':>8} {'cpu s':>8} {'bayes cpu s':>12} "
          f"{'1 RE test cpu s':>16} {'FE cpu s':>9}")
    for k, vi in DESIGNS.items():
        s_wall, s_cpu = _timed(lambda: coverage(vi, GRID, n_sim=n_sim, extra=BAYES,
                                                mcse_target=vocab.COVERAGE_MCSE_TARGET), repeat)
        wall, cpu = _timed(lambda: coverage(vi, GRID, n_sim=n_sim, extra=BAYES), repeat)
        _, bayes = _timed(lambda: coverage(vi, GRID, tests=(), common_effect=False, n_sim=n_sim, extra=BAYES),
                          repeat)
        _, one_re = _timed(lambda: coverage(vi, GRID, tests=("z",), common_effect=False, n_sim=n_sim),
                           repeat)
        _, fe = _timed(lambda: coverage(vi, GRID, tests=(), n_sim=n_sim), repeat)
        out["k"][k] = {"staged_wall_s": s_wall, "staged_cpu_s": s_cpu, "wall_s": wall, "cpu_s": cpu,
                       "bayes_cpu_s": bayes, "one_re_test_cpu_s": one_re, "fe_cpu_s": fe}
        print(f"{k:>3} {s_wall:>14.3f} {s_cpu:>13.3f} {wall:>8.3f} {cpu:>8.3f} {bayes:>12.3f} {one_re:>16.3f} "
              f"{fe:>9.3f}")
    return out


#: Runs in a fresh interpreter with one tree first on sys.path: best CPU time of the Bayesian column.
_BAYES_ONLY = r"""
import json, sys, time
from functools import partial
from metaanalysis.bayesian import central_intervals_many
from metaanalysis.coverage import coverage
vi, grid, n_sim, repeat = json.loads(sys.argv[1])
extra = {"bayes": partial(central_intervals_many, tau_prior="halfnormal", tau_scale=0.5, level=0.95)}
coverage(vi, [0.0], n_sim=200, tests=(), common_effect=False, extra=extra)
best = float("inf")
for _ in range(repeat):
    c0 = time.process_time()
    coverage(vi, grid, tests=(), common_effect=False, n_sim=n_sim, extra=extra)
    best = min(best, time.process_time() - c0)
print(best)
"""


def side_by_side(trees: list[Path], repeat: int, n_sim: int) -> dict:
    """CPU s of the Bayesian column per tree and k, trees alternating (see the module docstring)."""
    designs = {**DESIGNS, **LARGE}
    out = {"trees": [str(t) for t in trees], "n_sim": n_sim, "repeat": repeat, "load_1min": [], "k": {}}
    print(f"Bayesian column CPU s (4 tau2 x {n_sim:,} replicates), best of {repeat}; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'k':>3} " + " ".join(f"{t.resolve().name:>14}" for t in trees))
    for k, vi in designs.items():
        arg = json.dumps([list(map(float, vi)), list(GRID), n_sim, repeat])
        cpu = []
        for tree in trees:
            env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
            run = subprocess.run([sys.executable, "-c", _BAYES_ONLY, arg], env=env, check=True,
                                 capture_output=True, text=True, cwd=tree)
            cpu.append(float(run.stdout.split()[-1]))
        out["k"][k] = cpu
        out["load_1min"].append(os.getloadavg()[0])
        print(f"{k:>3} " + " ".join(f"{c:>14.3f}" for c in cpu))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n-sim", type=int, default=10_000)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "output" / "bench_coverage.json")
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="source tree for the side-by-side Bayesian column (repeat the option)")
    a = ap.parse_args(argv)
    res = side_by_side(a.tree, a.repeat, a.n_sim) if a.tree else run(a.repeat, a.n_sim)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"written {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
