"""Speed of ``pool`` / ``pool_many`` side by side with PyMARE, statsmodels and metafor.

Run:  ``make bench``  (or ``.venv/bin/python benchmarks/bench_pool.py [--quick]``)

What is measured (all on the same random datasets, fixed seed, k = 6 studies each):

* ``pool`` — one analysis per call, in a Python loop (analyses / second);
* ``pool_many`` — m analyses in one call: DL at m = 10,000 and 100,000, REML at
  m = 20,000, PM at m = 20,000 (analyses / second; best of ``--repeat`` runs);
* PyMARE 0.0.x ``DerSimonianLaird`` and ``VarianceBasedLikelihoodEstimator(method="REML")``
  — both vectorised over datasets (``y`` of shape (k, m)); called with
  ``small_sample_correction="wald"`` (PyMARE's default is Knapp-Hartung) so the
  work matches ours with ``test="z"``;
* statsmodels ``combine_effects`` (``method_re="dl"`` and ``"pm"``) — one analysis per
  call, so it is timed on a subset and reported per second;
* metafor ``rma.uni`` in an R loop over the same datasets (via a temporary CSV), timed
  inside R with ``proc.time()`` so R's start-up is excluded; skipped with a note when
  ``Rscript`` or metafor is missing.

Also printed: peak memory of ``pool_many`` (tracemalloc) at two m, per analysis, to show
linear growth; and the max |difference| of τ² and of the pooled estimate between ours and
each other tool (informative only: statsmodels' DL is not floored at 0 and its PM stops
at atol 1e-5; PyMARE's REML search uses xtol 1e-6; metafor runs with its default
control, threshold 1e-5 for REML/PM).

Note what ``pool_many`` computes per analysis beyond what the others return: Q,
I², H², p-values, the prediction interval and the Q-profile CIs of τ²/I²/H² (two more
root-findings per analysis), and metafor's SE of τ².

Results are also written to ``benchmarks/output/bench_pool.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaanalysis.pooling import pool, pool_many  # noqa: E402

SEED = 20240601
K = 6
TAU2_TRUE = 0.05


def make_data(m: int, k: int = K, seed: int = SEED):
    """m datasets of k studies: v log-uniform on [0.005, 0.5], y ~ N(-0.2, v + τ²)."""
    rng = np.random.default_rng(seed)
    V = np.exp(rng.uniform(np.log(0.005), np.log(0.5), size=(m, k)))
    Y = rng.normal(-0.2, np.sqrt(V + TAU2_TRUE))
    return Y, V


def best_time(fn, repeat: int) -> float:
    """Minimum wall time of ``fn()`` over ``repeat`` runs (seconds)."""
    best = np.inf
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------------------------------
# the tools
# ---------------------------------------------------------------------------------------

def ours_many(Y, V, method):
    r = pool_many(Y, V, method=method, test="z")
    return r.tau2, r.estimate


def ours_loop(Y, V, method):
    t2 = np.empty(len(Y))
    est = np.empty(len(Y))
    for i in range(len(Y)):
        r = pool(Y[i], V[i], method=method)
        t2[i], est[i] = r.tau2, r.estimate
    return t2, est


def pymare_many(Y, V, method):
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    X = np.ones((Y.shape[1], 1))
    if method == "DL":
        e = DerSimonianLaird(small_sample_correction="wald")
    else:
        e = VarianceBasedLikelihoodEstimator(method=method, small_sample_correction="wald")
    e.fit(Y.T, V.T, X)
    return np.ravel(e.params_["tau2"]), np.ravel(e.params_["fe_params"])


def statsmodels_loop(Y, V, method):
    from statsmodels.stats.meta_analysis import combine_effects

    mre = {"DL": "dl", "PM": "pm"}[method]
    t2 = np.empty(len(Y))
    est = np.empty(len(Y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrt of an unfloored negative DL τ²
        for i in range(len(Y)):
            r = combine_effects(Y[i], V[i], method_re=mre)
            t2[i] = r.tau2
            est[i] = r.mean_effect_re
    return t2, est


R_SCRIPT = r"""
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
out <- args[2]
methods <- strsplit(args[3], ",")[[1]]
ids <- split(seq_len(nrow(d)), d$id)
res <- list()
for (meth in methods) {
  n <- length(ids)
  t2 <- numeric(n); est <- numeric(n)
  fails <- 0
  t0 <- proc.time()[["elapsed"]]
  for (j in seq_len(n)) {
    r <- ids[[j]]
    # metafor's Fisher scoring can fail to converge; retry as help(rma) suggests
    fit <- tryCatch(rma.uni(yi = d$yi[r], vi = d$vi[r], method = meth),
                    error = function(e) tryCatch(
                      rma.uni(yi = d$yi[r], vi = d$vi[r], method = meth,
                              control = list(stepadj = 0.5, maxiter = 1000)),
                      error = function(e) NULL))
    if (is.null(fit)) { t2[j] <- NA; est[j] <- NA; fails <- fails + 1 }
    else { t2[j] <- fit$tau2; est[j] <- fit$beta[1] }
  }
  el <- proc.time()[["elapsed"]] - t0
  res[[meth]] <- data.frame(method = meth, id = as.integer(names(ids)), tau2 = t2, est = est, elapsed = el, fails = fails)
}
write.csv(do.call(rbind, res), out, row.names = FALSE)
"""


def metafor_run(Y, V, methods):
    """Fit each dataset with metafor; returns {method: (seconds, tau2, est)} or a note str."""
    rs = shutil.which("Rscript")
    if rs is None:
        return "Rscript not found: metafor skipped (apt-get install r-cran-metafor)"
    chk = subprocess.run([rs, "-e", "suppressMessages(library(metafor)); cat(as.character(packageVersion('metafor')))"],
                         capture_output=True, text=True)
    if chk.returncode != 0:
        return "R package metafor not installed: metafor skipped (apt-get install r-cran-metafor)"
    version = chk.stdout.strip()
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        m, k = Y.shape
        ids = np.repeat(np.arange(m), k)
        # repr-precision floats so R reads exactly our numbers
        with open(td / "data.csv", "w") as fh:
            fh.write("id,yi,vi\n")
            for i, y, v in zip(ids, Y.ravel(), V.ravel()):
                fh.write(f"{i},{float(y)!r},{float(v)!r}\n")
        (td / "bench.R").write_text(R_SCRIPT)
        p = subprocess.run([rs, str(td / "bench.R"), str(td / "data.csv"), str(td / "out.csv"),
                            ",".join(methods)], capture_output=True, text=True)
        if p.returncode != 0:
            return f"metafor run failed: {p.stderr.strip()[-300:]}"
        import csv

        out: dict = {}
        with open(td / "out.csv") as fh:
            rows = list(csv.DictReader(fh))
    for meth in methods:
        rr = sorted((r for r in rows if r["method"] == meth), key=lambda r: int(r["id"]))
        num = lambda x: float("nan") if x == "NA" else float(x)  # noqa: E731
        out[meth] = (float(rr[0]["elapsed"]), np.array([num(r["tau2"]) for r in rr]),
                     np.array([num(r["est"]) for r in rr]), int(rr[0]["fails"]))
    out["version"] = version
    return out


def peak_bytes(Y, V, method):
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    pool_many(Y, V, method=method)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))


# ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for vectorised calls")
    ap.add_argument("--no-r", action="store_true", help="skip metafor even if R is installed")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "output" / "bench_pool.json"))
    a = ap.parse_args(argv)

    scale = 10 if a.quick else 1
    m_dl = (10_000 // scale, 100_000 // scale)
    m_reml = 20_000 // scale
    n_loop = 1_000 // scale       # pool() single-call loop
    n_sm = 5_000 // scale         # statsmodels loop
    n_r = 2_000 // scale          # metafor loop

    Ybig, Vbig = make_data(max(m_dl))
    rows = []   # (label, tool, method, n, seconds)

    def rec(label, tool, method, n, secs):
        rows.append({"case": label, "tool": tool, "method": method, "n": n, "seconds": secs,
                     "per_second": n / secs})

    # warm-up (imports, scipy caches)
    pool_many(Ybig[:50], Vbig[:50], method="REML")
    pymare_many(Ybig[:50], Vbig[:50], "REML")
    statsmodels_loop(Ybig[:5], Vbig[:5], "DL")

    # single analyses
    for meth in ("DL", "REML", "PM"):
        Y, V = Ybig[:n_loop], Vbig[:n_loop]
        rec("single", "ours pool()", meth, n_loop, best_time(lambda: ours_loop(Y, V, meth), 1))
    for meth in ("DL", "PM"):
        Y, V = Ybig[:n_sm], Vbig[:n_sm]
        rec("single", "statsmodels combine_effects", meth, n_sm,
            best_time(lambda: statsmodels_loop(Y, V, meth), 1))

    # batches
    cases = [("DL", m) for m in m_dl] + [("REML", m_reml), ("PM", m_reml)]
    for meth, m in cases:
        Y, V = Ybig[:m], Vbig[:m]
        rec(f"batch m={m}", "ours pool_many()", meth, m, best_time(lambda: ours_many(Y, V, meth), a.repeat))
        if meth in ("DL", "REML"):
            rec(f"batch m={m}", "PyMARE (wald)", meth, m, best_time(lambda: pymare_many(Y, V, meth), a.repeat))

    # metafor
    r_note = None
    r_out = None
    if a.no_r:
        r_note = "metafor skipped (--no-r)"
    else:
        r_out = metafor_run(Ybig[:n_r], Vbig[:n_r], ["DL", "REML", "PM"])
        if isinstance(r_out, str):
            r_note, r_out = r_out, None
        else:
            for meth in ("DL", "REML", "PM"):
                rec("single", f"metafor {r_out['version']} rma.uni", meth, n_r, r_out[meth][0])
                if r_out[meth][3]:
                    r_note = (r_note or "") + (f"metafor {meth}: {r_out[meth][3]} of {n_r} fits failed"
                                               " even with stepadj=0.5 (excluded from differences). ")

    # memory: tracemalloc peak at two m
    mem = []
    for meth, ms in (("DL", (10_000 // scale, 100_000 // scale)), ("REML", (5_000 // scale, 20_000 // scale))):
        for m in ms:
            pk = peak_bytes(Ybig[:m], Vbig[:m], meth)
            mem.append({"method": meth, "m": m, "peak_bytes": pk, "bytes_per_analysis": pk / m})

    # agreement on the same data
    n_cmp = min(n_sm, n_r)
    Yc, Vc = Ybig[:n_cmp], Vbig[:n_cmp]
    diffs = []
    for meth in ("DL", "REML", "PM"):
        t_o, e_o = ours_many(Yc, Vc, meth)
        others = []
        if meth in ("DL", "REML"):
            others.append(("PyMARE", pymare_many(Yc, Vc, meth)))
        if meth in ("DL", "PM"):
            t_s, e_s = statsmodels_loop(Yc, Vc, meth)
            others.append(("statsmodels", (t_s, e_s)))
            if meth == "DL":
                neg = int((t_s < 0).sum())
                # statsmodels keeps a negative DL τ² (and its estimate uses it)
                others.append((f"statsmodels, floored rows only ({neg} negative of {n_cmp})",
                               (np.where(t_s < 0, np.nan, t_s), np.where(t_s < 0, np.nan, e_s))))
        if r_out is not None:
            nr = min(n_cmp, n_r)
            others.append(("metafor", (r_out[meth][1][:nr], r_out[meth][2][:nr])))
        for name, (t, e) in others:
            n = len(t)
            ok = np.isfinite(t)
            diffs.append({"method": meth, "tool": name, "n": int(ok.sum()),
                          "tau2": maxdiff(np.asarray(t)[ok], t_o[:n][ok]),
                          "estimate": maxdiff(np.asarray(e)[ok], e_o[:n][ok])})
        if r_out is not None and meth in ("REML", "PM"):
            # how many of metafor's fits differ from ours by more than its default tolerance
            nr = min(n_cmp, n_r)
            far = int((np.abs(r_out[meth][1][:nr] - t_o[:nr]) > 1e-4).sum())
            diffs.append({"method": meth, "tool": "metafor: rows with |dtau2| > 1e-4", "n": far,
                          "tau2": float("nan"), "estimate": float("nan")})

    # ---------------------------------------------------------------- report
    ours = {(r["method"], r["case"]): r for r in rows if r["tool"].startswith("ours")}
    print(f"bench_pool  {_dt.datetime.now().isoformat(timespec='seconds')}  "
          f"{platform.processor() or platform.machine()}  {os.cpu_count()} cores  "
          f"Python {platform.python_version()}  numpy {np.__version__}  k = {K}  seed = {SEED}")
    print()
    print(f"{'case':<16} {'tool':<34} {'method':<6} {'n':>7} {'seconds':>9} {'analyses/s':>12} {'ours/theirs':>12}")
    for r in rows:
        ratio = ""
        if not r["tool"].startswith("ours"):
            # compare with our batch rate for batch cases; with pool() and pool_many for singles
            if r["case"].startswith("batch"):
                o = ours.get((r["method"], r["case"]))
                ratio = f"{o['per_second'] / r['per_second']:.2f}" if o else ""
            else:
                o1 = ours.get((r["method"], "single"))
                ob = [v for (mm, c), v in ours.items() if mm == r["method"] and c.startswith("batch")]
                parts = []
                if o1:
                    parts.append(f"{o1['per_second'] / r['per_second']:.2f}")
                if ob:
                    parts.append(f"{ob[-1]['per_second'] / r['per_second']:.0f}x batch")
                ratio = " / ".join(parts)
        print(f"{r['case']:<16} {r['tool']:<34} {r['method']:<6} {r['n']:>7} {r['seconds']:>9.3f} "
              f"{r['per_second']:>12,.0f} {ratio:>12}")
    if r_note:
        print(f"note: {r_note}")
    print()
    targets = {"DL": 100_000, "REML": 20_000}
    for meth, tgt in targets.items():
        got = [r for r in rows if r["tool"].startswith("ours pool_many") and r["method"] == meth]
        for r in got:
            flag = "meets" if r["per_second"] >= tgt else "MISSES"
            print(f"target {meth} >= {tgt:,}/s: {r['case']}: {r['per_second']:,.0f}/s  -> {flag}")
    print()
    print("pool_many peak memory (tracemalloc):")
    for x in mem:
        print(f"  {x['method']:<5} m = {x['m']:>7}: peak {x['peak_bytes'] / 2**20:8.1f} MiB  "
              f"= {x['bytes_per_analysis']:7.0f} bytes/analysis")
    print()
    print("max |ours - theirs| on the same datasets (informative):")
    for d in diffs:
        if not np.isfinite(d["tau2"]):
            print(f"  {d['method']:<5} vs {d['tool']}: {d['n']}")
            continue
        print(f"  {d['method']:<5} vs {d['tool']:<52} n = {d['n']:>5}: tau2 {d['tau2']:.2e}  estimate {d['estimate']:.2e}")
    print("  conventions: PyMARE run with small_sample_correction='wald' (its default is KNHA;"
          " τ²/estimate do not depend on it); statsmodels DL is not floored at 0 (negative rows"
          " excluded in the 'floored rows' line), its PM stops at atol 1e-5; metafor default"
          " control (threshold 1e-5).")

    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "k": K, "seed": SEED, "quick": a.quick, "timings": rows,
        "memory": mem, "differences": diffs, "metafor_note": r_note,
    }, indent=2))
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
