"""Robustness sweep: 100,000 random meta-analyses through ``pool_many`` and ``pool``.

Run:  ``make sweep``  (or ``.venv/bin/python benchmarks/robustness_sweep.py [--n N] [--seed S]``)

Datasets (fixed seed): k uniform on 2..50; per dataset a window of sampling variances
inside 1e-4..1e2 (log-uniform per study, so one dataset can span six orders of
magnitude); true τ² = 0 (30%) or log-uniform on 1e-4..1e3; scenarios: ordinary (80%),
wide variance window (8%), identical effects (5%), one huge outlier (5%), near-identical
effects (relative spread 1e-12, 2%).

Every dataset goes through ``pool_many`` for all 9 methods x 3 tests (``pi="riley"`` with
``test="adhoc"``, metafor's PI otherwise), in batches grouped by k. Counted:

* non-converged fits (``converged`` False);
* non-finite outputs: estimate, se, ci, tau2, i2, h2, q, p-values, weights, and the PI
  and Q-profile CIs where they are defined (the PI is undefined only for Riley with
  k < 3; the τ²/I²/H² CIs only for FE; tau2_se only for FE);
* invariant failures: ci_lower <= estimate <= ci_upper, PI contains the CI, tau2 >= 0,
  0 <= i2 <= 100, weights sum to 100 (1e-9), tau2_ci_lower <= tau2_ci_upper,
  identical effects give τ² = 0 and I² = 0 exactly;
* PM and EB: τ² > 0 satisfies Q(τ²) = k − 1 (relative 1e-9), or τ² = 0 with Q(0) <= k − 1;
* REML: τ̂² is a global maximum of the restricted log-likelihood, checked on a subsample
  of 2,000 datasets against a 2,000-point grid (independent implementation below);
* ``pool`` on a random subsample of 2,000 (dataset, method, test) equals
  ``pool_many(...).row(i)`` to 1e-12 (relative) in every field.

Prints the counts and exits 1 if any is non-zero. Failing datasets are written to
``benchmarks/output/sweep_failures.json`` for reproduction.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaanalysis.pooling import METHODS, TESTS, pool, pool_many  # noqa: E402
from metaanalysis.results import RESULT_FIELDS  # noqa: E402

K_BINS = ((2, 4), (5, 8), (9, 16), (17, 30), (31, 50))


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------

def generate(n: int, seed: int):
    """n datasets; returns Y, V of shape (n, 50) NaN-padded, k (n,), scenario labels (n,)."""
    rng = np.random.default_rng(seed)
    kmax = 50
    k = rng.integers(2, kmax + 1, n)
    scen = rng.choice(np.array(["ordinary", "wide", "identical", "outlier", "near_identical"]),
                      size=n, p=[0.80, 0.08, 0.05, 0.05, 0.02])
    # variance window [lo, hi] in log10, inside [-4, 2]
    width = np.where(scen == "wide", 6.0, rng.uniform(0, 3, n))
    lo = rng.uniform(-4, 2 - width)
    logv = lo[:, None] + width[:, None] * rng.uniform(size=(n, kmax))
    V = 10.0**logv
    tau2 = np.where(rng.uniform(size=n) < 0.3, 0.0, 10.0 ** rng.uniform(-4, 3, n))
    mu = rng.normal(0, 2, n)
    Y = mu[:, None] + rng.normal(size=(n, kmax)) * np.sqrt(V + tau2[:, None])
    ident = scen == "identical"
    Y[ident] = mu[ident, None]
    near = scen == "near_identical"
    Y[near] = mu[near, None] * (1 + 1e-12 * rng.normal(size=(near.sum(), kmax))) + 1e-13 * rng.normal(
        size=(near.sum(), kmax))
    out = np.flatnonzero(scen == "outlier")
    j = rng.integers(0, k[out])
    scale = np.sqrt(V[out].max(1) + tau2[out])
    Y[out, j] += rng.choice([-1, 1], out.size) * 10.0 ** rng.uniform(1, 4, out.size) * scale
    absent = np.arange(kmax)[None, :] >= k[:, None]
    Y[absent] = np.nan
    V[absent] = np.nan
    return Y, V, k, scen


# ---------------------------------------------------------------------------------------
# independent reference computations
# ---------------------------------------------------------------------------------------

def reml_loglik(y, v, t2):
    """Restricted log-likelihood (up to a constant) of one dataset at τ² values ``t2`` (g,).

    -½ [Σ log(vᵢ + τ²) + log Σ wᵢ + Σ wᵢ (yᵢ − μ̂)²],  wᵢ = 1/(vᵢ + τ²)
    (Viechtbauer 2005, doi:10.3102/10769986030003261).
    """
    w = 1.0 / (v[None, :] + t2[:, None])
    sw = w.sum(1)
    mu = (w * y[None, :]).sum(1) / sw
    return -0.5 * (np.log(v[None, :] + t2[:, None]).sum(1) + np.log(sw)
                   + (w * (y[None, :] - mu[:, None]) ** 2).sum(1))


def rss_at(Y, V, t2):
    """Σ wᵢ (yᵢ − μ̂)² with wᵢ = 1/(vᵢ + τ²) (the knha RSS; same as :func:`q_at`)."""
    return q_at(Y, V, t2)


def q_at(Y, V, t2):
    """Generalised Q at τ² for NaN-padded rows (m,)."""
    w = 1.0 / (V + t2[:, None])
    w = np.where(np.isfinite(Y), w, 0.0)
    Yz = np.where(np.isfinite(Y), Y, 0.0)
    mu = (w * Yz).sum(1) / w.sum(1)
    return (w * (Yz - mu[:, None]) ** 2).sum(1)


# ---------------------------------------------------------------------------------------

class Tally:
    def __init__(self):
        self.counts = Counter()
        self.examples: dict[str, list] = {}

    def add(self, key, bad_rows, Y=None, V=None, extra=None, limit=5):
        n = int(np.count_nonzero(bad_rows)) if np.ndim(bad_rows) else int(bool(bad_rows))
        self.counts[key] += n
        if n and Y is not None:
            ex = self.examples.setdefault(key, [])
            for i in np.flatnonzero(bad_rows)[: max(0, limit - len(ex))]:
                fin = np.isfinite(Y[i])
                ex.append({"yi": Y[i][fin].tolist(), "vi": V[i][fin].tolist(),
                           **({} if extra is None else {k: _py(v[i]) for k, v in extra.items()})})


def _py(x):
    x = np.asarray(x).item() if np.ndim(x) == 0 else x
    return float(x) if isinstance(x, (float, np.floating)) else x


def check_batch(t: Tally, res, Y, V, k, scen, method, test, pi):
    tag = f"{method}/{test}"
    extra = {"tau2": res.tau2, "estimate": res.estimate}
    t.add(f"non-converged {tag}", ~res.converged, Y, V, extra)
    always = ["estimate", "se", "ci_lower", "ci_upper", "tau2", "tau", "i2", "h2", "q", "q_pvalue",
              "pvalue"]
    nonfin = np.zeros(len(k), bool)
    for f in always:
        nonfin |= ~np.isfinite(getattr(res, f))
    wts = np.where(np.isfinite(Y), res.weights, 0.0)
    nonfin |= ~np.all(np.isfinite(wts), 1)
    # documented: no PI for the common-effect model (as metafor) nor for Riley's with k < 3
    pi_defined = np.full(len(k), method != "FE") & ((k >= 3) if pi == "riley" else True)
    nonfin |= pi_defined & ~(np.isfinite(res.pi_lower) & np.isfinite(res.pi_upper))
    # undefined PI must be NaN (-> None in MetaResult), never a number
    nonfin |= ~pi_defined & (np.isfinite(res.pi_lower) | np.isfinite(res.pi_upper))
    if method != "FE":
        for f in ("tau2_se", "tau2_ci_lower", "tau2_ci_upper", "i2_ci_lower", "i2_ci_upper",
                  "h2_ci_lower", "h2_ci_upper"):
            nonfin |= ~np.isfinite(getattr(res, f))
    t.add(f"non-finite {tag}", nonfin, Y, V, extra)

    inv = Counter()
    with np.errstate(invalid="ignore"):
        checks = {
            "ci contains estimate": (res.ci_lower <= res.estimate) & (res.estimate <= res.ci_upper),
            "pi contains ci": ~pi_defined | ((res.pi_lower <= res.ci_lower) & (res.ci_upper <= res.pi_upper)),
            "tau2 >= 0": res.tau2 >= 0,
            "0 <= i2 <= 100": (res.i2 >= 0) & (res.i2 <= 100),
            "weights sum to 100": np.abs(wts.sum(1) - 100) <= 1e-9,
            "weights >= 0": np.all(wts >= 0, 1),
            # metafor's knha rule: s2w = 0 when the weighted RSS <= machine epsilon (e.g.
            # identical effects), so se = 0 is documented there
            "se > 0": (res.se > 0) | ((test == "knha") & (rss_at(Y, V, res.tau2) <= np.finfo(float).eps)),
        }
        if method != "FE":
            checks["tau2 CI ordered"] = (res.tau2_ci_lower <= res.tau2_ci_upper) & (res.tau2_ci_lower >= 0)
        ident = scen == "identical"
        checks["identical -> tau2 = 0, i2 = 0"] = ~ident | ((res.tau2 == 0) & (res.i2 == 0))
        if method in ("PM", "EB"):
            q = q_at(Y, V, res.tau2)
            pos = res.tau2 > 0
            ok_pos = np.abs(q - (k - 1)) <= 1e-9 * (k - 1)
            ok_zero = q_at(Y, V, np.zeros(len(k))) <= (k - 1) * (1 + 1e-12)
            checks["PM root: Q(tau2) = k-1 or tau2 = 0 with Q(0) <= k-1"] = np.where(pos, ok_pos, ok_zero)
    for name, ok in checks.items():
        t.add(f"invariant {name} [{tag}]", ~ok, Y, V, extra)
        inv[name] += int((~ok).sum())
    return inv


def reml_global_check(t: Tally, Y, V, tau2, grid_points=2000):
    """τ̂² must be >= every grid value of the REML log-likelihood (up to rounding)."""
    bad = np.zeros(len(Y), bool)
    worst = 0.0
    for i in range(len(Y)):
        fin = np.isfinite(Y[i])
        y, v = Y[i][fin], V[i][fin]
        k = y.size
        r2 = (y.max() - y.min()) ** 2
        # past this bound the REML score is negative (see estimators._upper_bound);
        # the grid goes 4x beyond it, half geometric (small τ²) and half linear
        U = 4 * (k * r2 + v.max()) / max(k - 1, 1) + 10 * tau2[i] + 1e-300
        g = np.unique(np.concatenate([[0.0], U * np.geomspace(1e-12, 1, grid_points // 2),
                                      np.linspace(0, U, grid_points // 2)]))
        ll_grid = reml_loglik(y, v, g)
        ll_hat = reml_loglik(y, v, np.array([tau2[i]]))[0]
        gap = ll_grid.max() - ll_hat
        tol = 1e-9 * max(1.0, abs(ll_hat))
        if gap > tol:
            bad[i] = True
            worst = max(worst, gap)
    t.add("REML not the global maximum (2,000-point grid)", bad, Y, V, {"tau2": tau2})
    return int(bad.sum()), worst


def same(a, b, rel=1e-12, scale=0.0):
    """Equal to ``rel`` relative, or within ``rel * scale`` absolute (values that are 0
    up to rounding, e.g. Q of identical effects, differ in their last bits between a
    padded batch row and the unpadded call)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y, rel, scale) for x, y in zip(a, b))
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b), scale)
    return a == b


def field_scales(y, v):
    """Natural absolute scale of each result field for one dataset."""
    eff = float(np.max(np.abs(y)) + np.sqrt(np.max(v)))
    t2 = float(np.max(v) + np.ptp(y) ** 2)
    k = float(len(y))
    sc = {f: eff for f in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau")}
    sc.update({f: t2 for f in ("tau2", "tau2_se", "tau2_ci_lower", "tau2_ci_upper")})
    sc.update({f: 100.0 for f in ("i2", "i2_ci_lower", "i2_ci_upper", "weights")})
    sc.update({"q": k, "h2": k, "h2_ci_lower": k, "h2_ci_upper": k, "stat": 1.0, "pvalue": 1.0,
               "q_pvalue": 1.0})
    sc["tau"] = float(np.sqrt(t2))
    return sc


# ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of datasets")
    ap.add_argument("--seed", type=int, default=20240602)
    ap.add_argument("--subsample", type=int, default=2000, help="pool() and REML-grid subsample")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "output" / "sweep_failures.json"))
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    Y, V, k, scen = generate(a.n, a.seed)
    print(f"robustness sweep: {a.n:,} datasets, k 2..50, seed {a.seed}; scenarios "
          + ", ".join(f"{s} {c:,}" for s, c in sorted(Counter(scen.tolist()).items())))
    bins = [np.flatnonzero((k >= lo) & (k <= hi)) for lo, hi in K_BINS]

    t = Tally()
    rng = np.random.default_rng(a.seed + 1)
    sub_idx = rng.choice(a.n, size=min(a.subsample, a.n), replace=False)
    # pool() subsample: (dataset, method, test) triples
    sub_mt = [(int(i), METHODS[rng.integers(len(METHODS))], TESTS[rng.integers(len(TESTS))])
              for i in sub_idx]
    want = {}  # (method, test) -> list of dataset indices
    for i, m_, t_ in sub_mt:
        want.setdefault((m_, t_), []).append(i)
    rows_for_check = {}
    reml_tau2 = np.full(a.n, np.nan)
    timing = {}

    for method in METHODS:
        for test in TESTS:
            pi = "riley" if test == "adhoc" else "metafor"
            tm = time.perf_counter()
            for b, idx in zip(K_BINS, bins):
                kmax = b[1]
                Yb, Vb = Y[idx, :kmax], V[idx, :kmax]
                try:
                    res = pool_many(Yb, Vb, method=method, test=test, pi=pi)
                except Exception as e:  # noqa: BLE001 -- an exception is what we count
                    t.add(f"exception {method}/{test} k {b}: {type(e).__name__}: {e}", True)
                    continue
                check_batch(t, res, Yb, Vb, k[idx], scen[idx], method, test, pi)
                if method == "REML" and test == "z":
                    reml_tau2[idx] = res.tau2
                pos = {int(d): r for r, d in enumerate(idx)}
                for i in want.get((method, test), []):
                    if i in pos:
                        rows_for_check[(i, method, test)] = (res.row(pos[i]), pi)
            timing[(method, test)] = time.perf_counter() - tm
        print(f"  {method:<5} 3 tests: {sum(timing[(method, x)] for x in TESTS):6.1f} s", flush=True)

    # pool() == pool_many row
    tm = time.perf_counter()
    mismatch = 0
    iter_diff = 0
    for (i, method, test), (row, pi) in rows_for_check.items():
        fin = np.isfinite(Y[i])
        try:
            single = pool(Y[i][fin], V[i][fin], method=method, test=test, pi=pi)
        except Exception as e:  # noqa: BLE001
            t.add(f"exception pool() {method}/{test}: {type(e).__name__}: {e}", True)
            continue
        sc = field_scales(Y[i][fin], V[i][fin])
        # solver iteration counts may differ by one or two between a padded batch row and the
        # unpadded call (the stopping test sees last-bit differences): reported, not a failure
        if single.iterations != row.iterations:
            iter_diff += 1
        diff = [f for f in RESULT_FIELDS + ("notes",) if f != "iterations"
                and not same(getattr(single, f), getattr(row, f), scale=sc.get(f, 0.0))]
        if diff:
            mismatch += 1
            t.examples.setdefault("pool != pool_many row", []).append(
                {"dataset": i, "method": method, "test": test, "fields": diff})
    t.counts["pool() != pool_many().row() (1e-12)"] += mismatch
    print(f"  pool() x {len(rows_for_check):,}: {time.perf_counter() - tm:6.1f} s"
          f" ({iter_diff} with a different solver iteration count: informative only)")

    # REML global maximum on a subsample
    tm = time.perf_counter()
    n_bad, worst = reml_global_check(t, Y[sub_idx], V[sub_idx], reml_tau2[sub_idx])
    print(f"  REML grid check x {sub_idx.size:,}: {time.perf_counter() - tm:6.1f} s"
          f" (largest log-likelihood shortfall {worst:.2e})")

    # ------------------------------------------------------------------ summary
    print()
    groups = Counter()
    for key, n in t.counts.items():
        head = key.split(" [")[0] if key.startswith("invariant") else key.rsplit(" ", 1)[0] \
            if key.startswith(("non-converged", "non-finite")) else key
        groups[head] += n
    n_fits = a.n * len(METHODS) * len(TESTS)
    print(f"fits: {n_fits:,} (pool_many), {len(rows_for_check):,} (pool), "
          f"{sub_idx.size:,} REML grid checks")
    print(f"{'check':<62} {'failures':>9}")
    for head in sorted(groups):
        print(f"{head:<62} {groups[head]:>9,}")
    failed = {k_: n for k_, n in t.counts.items() if n}
    if failed:
        print("\nfailures by method/test:")
        for key, n in sorted(failed.items()):
            print(f"  {key}: {n:,}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seed": a.seed, "n": a.n, "counts": dict(t.counts),
                               "examples": t.examples}, indent=1, default=str))
    total = sum(t.counts.values())
    print(f"\n{'FAIL' if total else 'OK'}: {total:,} failures; {time.perf_counter() - t0:.0f} s;"
          f" details in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
