"""Time per analysis of the exact Bayesian random-effects meta-analysis (``metaanalysis.bayes``).

Run:  ``.venv/bin/python benchmarks/bench_bayes.py [--repeat 5] [--m 50]``

For k = 2, 3, 5, 10 and 30 studies (random datasets, fixed seed) and every τ prior offered, prints
the median CPU time (``time.process_time``: the machine is shared, so wall time is noisy) of
one ``bayes`` call (all outputs: moments, central and shortest intervals of
μ, τ quantiles, predictive interval, shrunken estimates), and the time per analysis of
``bayes_many`` over m analyses. Informative only: no test depends on these numbers.

``--tree DIR`` (repeatable; e.g. an export of an older commit and ``.``): instead, side by side,
the CPU time of one analysis's Bayesian fits as the analysis layer runs them for a ratio
measure (``analysis._bayes``: ``bayes`` under half-normal priors of scale 0.25, 0.5 and 1 on τ),
per dataset, for k = 3, 5, 10 and 30: each measurement a fresh interpreter with that tree first
on ``sys.path``, best of ``--repeat`` rounds over ``--m`` datasets after a warm-up, the trees
alternating (compare the ratios; the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from metaanalysis.bayesian import bayes, bayes_many

PRIORS = (("halfnormal", 0.5), ("halfcauchy", 0.5), ("lognormal", (-2.56, 1.74)), ("uniform", 2.0))


def datasets(k: int, m: int, seed: int = 20261201) -> tuple[np.ndarray, np.ndarray]:
    """m random meta-analyses of k studies: τ = 0.2, SEs uniform on [0.05, 0.5] (log HR-like)."""
    rng = np.random.default_rng(seed + k)
    vi = rng.uniform(0.05, 0.5, size=(m, k)) ** 2
    yi = rng.normal(-0.2, 0.2, size=(m, 1)) + rng.normal(0.0, np.sqrt(vi + 0.04))
    return yi, vi


def time_one(yi, vi, prior, scale, repeat: int) -> float:
    """Median CPU seconds of one bayes call, over ``repeat`` rounds of all rows."""
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        for y, v in zip(yi, vi):
            bayes(y, v, prior, scale)
        runs.append((time.process_time() - t0) / len(yi))
    return statistics.median(runs)


#: Runs in a fresh interpreter with one tree first on sys.path: best CPU s per dataset of the
#: three half-normal fits of a ratio measure's analysis (analysis._bayes).
_CHILD = """
import json, sys, time
import numpy as np
from metaanalysis.bayesian import bayes
k, m, repeat, seed = json.loads(sys.argv[1])
rng = np.random.default_rng(seed + k)
vi = rng.uniform(0.05, 0.5, size=(m, k)) ** 2
yi = rng.normal(-0.2, 0.2, size=(m, 1)) + rng.normal(0.0, np.sqrt(vi + 0.04))
def fits():
    for y, v in zip(yi, vi):
        for scale in (0.25, 0.5, 1.0):
            bayes(y, v, "halfnormal", scale)
fits()
best = float("inf")
for _ in range(repeat):
    t0 = time.process_time()
    fits()
    best = min(best, time.process_time() - t0)
print(best / m)
"""


def side_by_side(trees: list[Path], repeat: int, m: int) -> None:
    """ms of CPU per analysis (three fits) per tree and k, trees alternating."""
    print(f"analysis._bayes, 3 half-normal fits per analysis: CPU ms per analysis, best of {repeat} "
          f"rounds of {m} datasets; load {os.getloadavg()[0]:.1f}")
    print(f"{'k':>3} " + " ".join(f"{t.resolve().name:>14}" for t in trees))
    for k in (3, 5, 10, 30):
        row = []
        for tree in trees:
            env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OPENBLAS_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([k, m, repeat, 20261201])],
                                 capture_output=True, text=True, cwd=tree, env=env, check=True)
            row.append(1e3 * float(out.stdout))
        print(f"{k:>3} " + " ".join(f"{x:>14.2f}" for x in row))
    print(f"load {os.getloadavg()[0]:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--m", type=int, default=20, help="analyses per (k, prior)")
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="source tree for the side-by-side fits of one analysis (repeat the option)")
    args = ap.parse_args(argv)
    if args.tree:
        side_by_side(args.tree, args.repeat, args.m)
        return 0
    print(f"{'k':>3} {'prior':<11} {'ms / analysis':>14}")
    for k in (2, 3, 5, 10, 30):
        yi, vi = datasets(k, args.m)
        for prior, scale in PRIORS:
            print(f"{k:>3} {prior:<11} {1e3 * time_one(yi, vi, prior, scale, args.repeat):>14.1f}")
    yi, vi = datasets(6, 10 * args.m)
    yi[::2, -1] = np.nan          # NaN-padded rows
    t0 = time.process_time()
    bayes_many(yi, vi)
    per = (time.process_time() - t0) / len(yi)
    print(f"bayes_many, {len(yi)} analyses of k <= 6, half-normal(0.5): {1e3 * per:.1f} ms / analysis")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
