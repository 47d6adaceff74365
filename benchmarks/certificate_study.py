"""How often could a coarse grid *certify* the REML/ML global optimum? (a study, issue #15)

Run:  ``.venv/bin/python benchmarks/certificate_study.py``  (~1 min)

The engine finds the REML/ML optimum by evaluating the log-likelihood on a 49-point geometric
grid over [0, U] (U bounds every maximiser) and refining the best cell. That grid is most of
the cost of a batch REML fit. A cheaper, *rigorous* alternative is a coarse grid plus a lower
bound of f = −2·(restricted) log-likelihood over every cell [a, b]: when no cell away from the
best grid point can go below the best grid value, the optimum lies in the best cell.

Two bounds are compared, both from values (and slopes) at the grid points only:

* first-order (monotone parts): f = L + M + Q with L = Σ log(vᵢ + τ²) increasing,
  M = log Σwᵢ and Q(τ²) = min_μ Σwᵢ(yᵢ − μ)² decreasing, so f ≥ L(a) + M(b) + Q(b) on [a, b];
* difference of convex (DC): L is concave, and M (log of a sum of exp(−log(vᵢ + τ²))) and Q
  (partial minimum of the jointly convex perspective Σ(yᵢ − μ)²/(vᵢ + τ²)) are convex, so
  f ≥ chord of L + max of the tangents of M + Q at a and b (ML: without M).

Printed per grid size: the share of datasets with at least one cell left uncertified, and the
mean number of such cells (those would be split further, or sent to the dense grid). Data: the
k = 6 benchmark datasets of bench_pool.py and the robustness sweep's generator (k 2..50).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import robustness_sweep  # noqa: E402
from bench_pool import make_data  # noqa: E402
from metaanalysis.estimators import _upper_bound  # noqa: E402


def parts(Y, V, mask, t):
    """L, L', M, M', Q, Q' at τ² = t (arrays of shape (n,))."""
    u = mask.astype(float)
    D = V + t[:, None]
    w = u / D
    s = w.sum(1)
    r = (Y - ((w * Y).sum(1) / s)[:, None]) * u
    w2 = w * w
    return ((np.log(D) * u).sum(1), s, np.log(s), -w2.sum(1) / s, (w * r * r).sum(1),
            -(w2 * r * r).sum(1))


def uncertified(Y, V, mask, k, g, kind, bound):
    """(share of rows with an uncertified cell, mean uncertified cells per row)."""
    U = _upper_bound(Y, V, mask, k)
    T = U[:, None] * np.concatenate([[0.0], np.geomspace(1e-10, 1, g - 1)])[None, :]
    L, Lp, M, Mp, Q, Qp = (np.array(x).T for x in zip(*(parts(Y, V, mask, T[:, i]) for i in range(g))))
    if kind == "ML":
        M, Mp = 0 * M, 0 * Mp
    f = L + M + Q
    j = f.argmin(1)
    fref = f[np.arange(len(f)), j]
    a, b = T[:, :-1], T[:, 1:]
    if bound == "first-order":
        lb = L[:, :-1] + M[:, 1:] + Q[:, 1:]
    else:
        G, Gp = M + Q, Mp + Qp
        Ga, Gb, da, db = G[:, :-1], G[:, 1:], Gp[:, :-1], Gp[:, 1:]
        with np.errstate(all="ignore"):
            tx = np.clip(np.where(db != da, (Gb - db * b - Ga + da * a) / (da - db), a), a, b)

            def at(t):
                chord = L[:, :-1] + (L[:, 1:] - L[:, :-1]) * (t - a) / np.where(b > a, b - a, 1)
                return chord + np.maximum(Ga + da * (t - a), Gb + db * (t - b))

            lb = np.minimum(np.minimum(at(a), at(b)), at(tx))
    cells = np.arange(g - 1)[None, :]
    near = (cells >= j[:, None] - 1) & (cells <= j[:, None])
    fail = ~near & ~(lb > (fref + 1e-12 * np.abs(fref) + 1e-12)[:, None])
    return fail.any(1).mean(), fail.sum(1).mean()


def main() -> int:
    Yb, Vb = make_data(20_000)
    Ys, Vs, ks, _ = robustness_sweep.generate(20_000, 5)
    ms = np.isfinite(Ys)
    data = {"bench k=6": (Yb, Vb, np.ones_like(Yb, bool), np.full(len(Yb), 6)),
            "sweep k=2..50": (np.where(ms, Ys, 0), np.where(ms, Vs, 1), ms, ks)}
    print(f"{'bound':<12} {'grid':>4} {'data':<14} {'kind':<5} {'rows uncertified':>17} {'cells/row':>10}")
    for bound in ("first-order", "DC"):
        for g in (9, 17, 25, 33):
            for name, (Y, V, M, k) in data.items():
                for kind in ("REML", "ML"):
                    share, cells = uncertified(Y, V, M, k, g, kind, bound)
                    print(f"{bound:<12} {g:>4} {name:<14} {kind:<5} {share:>16.1%} {cells:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
