"""Time per analysis of the exact Bayesian random-effects meta-analysis (``metaanalysis.bayes``).

Run:  ``.venv/bin/python benchmarks/bench_bayes.py [--repeat 5] [--m 50]``

For k = 2, 3, 5, 10 and 30 studies (random datasets, fixed seed) and every τ prior offered, prints
the median CPU time (``time.process_time``: the machine is shared, so wall time is noisy) of
one ``bayes`` call (all outputs: moments, central and shortest intervals of
μ, τ quantiles, predictive interval, shrunken estimates), and the time per analysis of
``bayes_many`` over m analyses. Informative only: no test depends on these numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--m", type=int, default=20, help="analyses per (k, prior)")
    args = ap.parse_args(argv)
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
