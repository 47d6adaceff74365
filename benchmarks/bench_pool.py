"""Speed of ``pool`` / ``pool_many`` side by side with PyMARE, statsmodels and metafor, and
the start-up of ``metaanalysis report`` / ``validate``: every ratio of issue #15 in one run.

Run:  ``make bench``  (or ``.venv/bin/python benchmarks/bench_pool.py [--quick] [--no-r]``)

What is measured (all on the same random datasets, fixed seed, k = 6 studies each):

* ``pool`` — one analysis per call, in a Python loop (DL, REML, PM; every field, Q-profile
  CIs and prediction interval included);
* ``fit_many`` — τ², estimate and SE only (exactly PyMARE's output), DL and REML at
  m = 100,000 (``--quick``: 10,000), PM at m = 20,000;
* ``pool_many`` — the same, with and without the Q-profile CIs of τ²/I²/H² (``tau2_ci=False``;
  every other field of ``PoolArrays`` is computed), on the C kernel (metaanalysis/_kernel.c)
  and, without the CIs, on the numpy engine it falls back to (``_compiled.LIB = None``);
  best of ``--repeat`` runs;
* PyMARE 0.0.x ``DerSimonianLaird`` and ``VarianceBasedLikelihoodEstimator(method="REML")``,
  vectorised over datasets (``y`` of shape (k, m)), ``small_sample_correction="wald"``
  (PyMARE's default is Knapp-Hartung; τ² and the estimate do not depend on it);
* statsmodels ``combine_effects`` (``method_re="dl"`` and ``"pm"``), one analysis per call;
* metafor ``rma.uni`` in an R loop over the same datasets (via a temporary CSV), timed inside
  R with ``proc.time()`` (R's start-up excluded): DL, REML and PM fits alone, and REML with
  ``confint`` + ``predict`` (what ``pool`` returns); skipped with a note when ``Rscript`` or
  metafor is missing;
* peak memory of ``pool_many`` (tracemalloc) at two m, per analysis, beyond its output arrays;
* wall time of a cold ``metaanalysis report`` of the shipped registry and of ``validate``
  (new processes with the bytecode cache in place, as a user's Python has it; median of
  ``--starts`` after one untimed start);
* max |difference| of τ² and of the pooled estimate between ours and each other tool
  (informative only: statsmodels' DL is not floored at 0 and its PM stops at atol 1e-5;
  PyMARE's REML search uses xtol 1e-6; metafor runs with its default threshold 1e-5).

The table "issue #15 targets" at the end prints each ratio with its target. Timings are
wall-clock best-of-N (start-up: median); the 1-minute load average is printed before and
after, because on a shared machine other work slows every number. Results are also written
to ``benchmarks/output/bench_pool.json``. The 1,000-analysis batch build is too long for this
script: ``benchmarks/bench_batch.py`` (numbers in ``benchmarks/BATCH.md``).
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

from metaanalysis import _compiled  # noqa: E402
from metaanalysis.pooling import fit_many, pool, pool_many  # noqa: E402

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

def ours_many(Y, V, method, tau2_ci=True):
    r = pool_many(Y, V, method=method, test="z", tau2_ci=tau2_ci)
    return r.tau2, r.estimate


def ours_fit(Y, V, method):
    r = fit_many(Y, V, method=method)
    return r.tau2, r.estimate


def numpy_engine(fn):
    """``fn()`` with the C kernel switched off (the numpy engine, as without a compiler)."""
    lib, _compiled.LIB = _compiled.LIB, None
    try:
        return fn()
    finally:
        _compiled.LIB = lib


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
# what pool() returns: REML fit + Q-profile CIs (confint) + prediction interval (predict)
nf <- min(length(ids), as.integer(args[4]))
t0 <- proc.time()[["elapsed"]]
fails <- 0
for (j in seq_len(nf)) {
  r <- ids[[j]]
  fit <- tryCatch(rma.uni(yi = d$yi[r], vi = d$vi[r], method = "REML"),
                  error = function(e) tryCatch(
                    rma.uni(yi = d$yi[r], vi = d$vi[r], method = "REML",
                            control = list(stepadj = 0.5, maxiter = 1000)),
                    error = function(e) NULL))
  if (is.null(fit)) { fails <- fails + 1; next }
  ci <- tryCatch(confint(fit), error = function(e) NULL)
  pr <- predict(fit)
}
el <- proc.time()[["elapsed"]] - t0
res[["full"]] <- data.frame(method = "REML+confint+predict", id = seq_len(nf), tau2 = NA, est = NA,
                            elapsed = el, fails = fails)
write.csv(do.call(rbind, res), out, row.names = FALSE)
"""


def metafor_run(Y, V, methods, n_full):
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
                            ",".join(methods), str(n_full)], capture_output=True, text=True)
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
    full = [r for r in rows if r["method"] == "REML+confint+predict"]
    out["full"] = (float(full[0]["elapsed"]), len(full), int(full[0]["fails"]))
    out["version"] = version
    return out


def peak_bytes(Y, V, method):
    """tracemalloc peak of one ``pool_many`` call and the bytes of the arrays it returns."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    r = pool_many(Y, V, method=method)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = sum(getattr(r, f).nbytes for f in r.__dataclass_fields__ if isinstance(getattr(r, f), np.ndarray))
    return peak, out


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))



def startup(starts: int) -> dict:
    """Median wall seconds of a cold ``report`` of the shipped registry and of ``validate``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
    # a user's Python keeps its bytecode cache: without it every start recompiles the package
    # (~0.3 s here), which is not what a cold *process* costs
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    reg, plan = str(ROOT / "trials" / "registry.csv"), str(ROOT / "trials" / "analyses.toml")
    out = {}
    for name, extra in (("report", ["report", "--registry", reg, "--plan", plan, "--out"]),
                        ("validate", ["validate", reg, "--plan", plan])):
        times = []
        for i in range(starts + 1):       # the first, untimed, writes the bytecode cache
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "metaanalysis", *extra] + ([tmp + "/r"] if name == "report" else [])
                t0 = time.perf_counter()
                p = subprocess.run(cmd, env=env, capture_output=True, cwd=tmp)
                if i:
                    times.append(time.perf_counter() - t0)
                if p.returncode not in (0, 1):   # validate exits 1 on warnings-as-errors only
                    raise SystemExit(f"{name} failed: {p.stderr.decode()[-500:]}")
        out[name] = {"median_s": float(np.median(times)), "all_s": times}
    return out


def bench_single(Ybig, Vbig, n_loop, n_sm, rec, repeat):
    """One analysis per call: ours (DL, REML, PM) and statsmodels (DL, PM); rows via ``rec``."""
    for meth in ("DL", "REML", "PM"):
        Y, V = Ybig[:n_loop], Vbig[:n_loop]
        rec("single", "ours pool()", meth, n_loop, best_time(lambda: ours_loop(Y, V, meth), repeat))
    for meth in ("DL", "PM"):
        Y, V = Ybig[:n_sm], Vbig[:n_sm]
        rec("single", "statsmodels combine_effects", meth, n_sm,
            best_time(lambda: statsmodels_loop(Y, V, meth), repeat))


def bench_batch(Ybig, Vbig, m_big, m_pm, rec, repeat):
    """``fit_many`` (PyMARE's output), ``pool_many`` with and without the Q-profile CIs (C
    kernel; without CIs also on the numpy engine), and PyMARE, on m analyses at once."""
    for meth, m in (("DL", m_big), ("REML", m_big), ("PM", m_pm)):
        Y, V = Ybig[:m], Vbig[:m]
        case = f"batch m={m}"
        rec(case, "ours fit_many() (tau2, est, SE)", meth, m, best_time(lambda: ours_fit(Y, V, meth), repeat))
        rec(case, "ours pool_many()", meth, m, best_time(lambda: ours_many(Y, V, meth), repeat))
        rec(case, "ours pool_many(tau2_ci=False)", meth, m,
            best_time(lambda: ours_many(Y, V, meth, False), repeat))
        rec(case, "ours pool_many(tau2_ci=False) numpy", meth, m,
            best_time(lambda: numpy_engine(lambda: ours_many(Y, V, meth, False)), repeat))
        if meth in ("DL", "REML"):
            rec(case, "PyMARE (wald)", meth, m, best_time(lambda: pymare_many(Y, V, meth), repeat))


def bench_memory(Ybig, Vbig, scale):
    """tracemalloc peak of ``pool_many`` at two m, in bytes per analysis beyond its output."""
    mem = []
    for meth in ("DL", "REML"):
        for m in (10_000 // scale, 100_000 // scale):
            pk, outb = peak_bytes(Ybig[:m], Vbig[:m], meth)
            mem.append({"method": meth, "m": m, "peak_bytes": pk, "output_bytes": outb,
                        "bytes_per_analysis": pk / m, "beyond_output_per_analysis": (pk - outb) / m})
    return mem


def agreement(Ybig, Vbig, n_cmp, r_out):
    """max |ours − theirs| of τ² and of the estimate per tool on the first ``n_cmp`` datasets."""
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
            nr = min(n_cmp, len(r_out[meth][1]))
            others.append(("metafor", (r_out[meth][1][:nr], r_out[meth][2][:nr])))
        for name, (t, e) in others:
            n = len(t)
            ok = np.isfinite(t)
            diffs.append({"method": meth, "tool": name, "n": int(ok.sum()),
                          "tau2": maxdiff(np.asarray(t)[ok], t_o[:n][ok]),
                          "estimate": maxdiff(np.asarray(e)[ok], e_o[:n][ok])})
    return diffs


def _rate(rows, tool, method, case=None):
    """The timing row of (tool, method[, case]), or None."""
    got = [r for r in rows if r["tool"] == tool and r["method"] == method
           and (case is None or r["case"] == case)]
    return got[0] if got else None


def targets(rows, mem, start, r_out, m_big):
    """The issue's ratios: (what, value, target, met) rows."""
    out = []
    case = f"batch m={m_big}"
    per_us = lambda r: 1e6 * r["seconds"] / r["n"]  # noqa: E731
    if r_out is not None:
        full_s = r_out["full"][0] / r_out["full"][1]
        ours = _rate(rows, "ours pool()", "REML")
        out.append(("pool() REML + Q-profile CIs + PI vs metafor rma+confint+predict (x faster)",
                    full_s / (ours["seconds"] / ours["n"]), ">= 20"))
    dl, sm = _rate(rows, "ours pool()", "DL"), _rate(rows, "statsmodels combine_effects", "DL")
    out.append(("pool() DL vs statsmodels combine_effects (x faster)", dl["per_second"] / sm["per_second"], ">= 1"))
    # The ratio is "at equal output" (PyMARE's tau2, estimate and SE: fit_many); the
    # pool_many rows with more fields are reported beside it ("report both"), not held to 10x.
    for meth in ("DL", "REML"):
        py = _rate(rows, "PyMARE (wald)", meth, case)
        for tool, label, tgt in (("ours fit_many() (tau2, est, SE)", "equal output: fit_many", ">= 10"),
                                 ("ours pool_many(tau2_ci=False)", "no Q-profile CIs", None),
                                 ("ours pool_many()", "all fields", None)):
            o = _rate(rows, tool, meth, case)
            out.append((f"pool_many {meth} vs PyMARE, {label} (x faster)", o["per_second"] / py["per_second"], tgt))
    for meth, lim in (("DL", 0.5), ("REML", 5.0)):
        for tool, label, tgt in (("ours fit_many() (tau2, est, SE)", "equal output", f"<= {lim}"),
                                 ("ours pool_many(tau2_ci=False)", "no Q-profile CIs", f"<= {lim}"),
                                 ("ours pool_many()", "all fields", None)):
            out.append((f"pool_many {meth} at m={m_big}, {label} (us/analysis)",
                        per_us(_rate(rows, tool, meth, case)), tgt))
    for x in mem:
        out.append((f"pool_many {x['method']} m={x['m']}: peak beyond output (bytes/analysis)",
                    x["beyond_output_per_analysis"], "<= 1024"))
    if start:
        out.append(("cold report of the shipped registry (s, median)", start["report"]["median_s"], "<= 1.5"))
        out.append(("validate start-up (s, median)", start["validate"]["median_s"], "<= 0.3"))
    res = []
    for what, val, tgt in out:
        if tgt is None:       # reported beside a target, not a target itself
            res.append({"what": what, "value": val, "target": None, "met": None})
            continue
        op, lim = tgt.split()
        met = val >= float(lim) if op == ">=" else val <= float(lim)
        res.append({"what": what, "value": val, "target": tgt, "met": bool(met)})
    return res


def report(rows, mem, diffs, tg, r_note, start, header):
    """Print every table: timings, memory, start-up, agreement, the issue's targets."""
    print(header)
    print(f"\n{'case':<16} {'tool':<38} {'method':<6} {'n':>7} {'seconds':>9} {'analyses/s':>12} {'us/analysis':>12}")
    for r in rows:
        print(f"{r['case']:<16} {r['tool']:<38} {r['method']:<6} {r['n']:>7} {r['seconds']:>9.3f} "
              f"{r['per_second']:>12,.0f} {1e6 * r['seconds'] / r['n']:>12.3f}")
    if r_note:
        print(f"note: {r_note}")
    print("\npool_many peak memory (tracemalloc):")
    for x in mem:
        print(f"  {x['method']:<5} m = {x['m']:>7}: peak {x['peak_bytes'] / 2**20:7.1f} MiB, output "
              f"{x['output_bytes'] / 2**20:7.1f} MiB -> {x['beyond_output_per_analysis']:6.0f} bytes/analysis beyond output")
    if start:
        print("\nstart-up (new process, wall):")
        for k, v in start.items():
            print(f"  {k:<9} median {v['median_s']:.2f} s  (all: {', '.join(f'{t:.2f}' for t in v['all_s'])})")
    print("\nmax |ours - theirs| on the same datasets (informative):")
    for d in diffs:
        print(f"  {d['method']:<5} vs {d['tool']:<52} n = {d['n']:>5}: tau2 {d['tau2']:.2e}  estimate {d['estimate']:.2e}")
    print("\nissue #15 targets:")
    for t in tg:
        status = "reported" if t["met"] is None else "met" if t["met"] else "NOT MET"
        print(f"  {t['what']:<84} {t['value']:>10.3f}  target {t['target'] or '-':<8} {status}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sizes / 10 (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs of each timing")
    ap.add_argument("--starts", type=int, default=5, help="cold starts of report/validate (median)")
    ap.add_argument("--no-r", action="store_true", help="skip metafor even if R is installed")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "output" / "bench_pool.json"))
    a = ap.parse_args(argv)
    scale = 10 if a.quick else 1
    m_big, m_pm = 100_000 // scale, 20_000 // scale
    n_loop, n_sm, n_r, n_full = 1_000 // scale, 2_000 // scale, 2_000 // scale, 300 // scale
    load0 = os.getloadavg()[0]
    Ybig, Vbig = make_data(m_big)
    rows = []

    def rec(label, tool, method, n, secs):
        rows.append({"case": label, "tool": tool, "method": method, "n": n, "seconds": secs,
                     "per_second": n / secs})

    pool_many(Ybig[:50], Vbig[:50], method="REML")           # warm-up (imports, caches)
    pymare_many(Ybig[:50], Vbig[:50], "REML")
    statsmodels_loop(Ybig[:5], Vbig[:5], "DL")
    bench_single(Ybig, Vbig, n_loop, n_sm, rec, a.repeat)
    bench_batch(Ybig, Vbig, m_big, m_pm, rec, a.repeat)
    r_out, r_note = None, "metafor skipped (--no-r)" if a.no_r else None
    if not a.no_r:
        r_out = metafor_run(Ybig[:n_r], Vbig[:n_r], ["DL", "REML", "PM"], n_full)
        if isinstance(r_out, str):
            r_note, r_out = r_out, None
        else:
            for meth in ("DL", "REML", "PM"):
                rec("single", f"metafor {r_out['version']} rma.uni", meth, n_r, r_out[meth][0])
            rec("single", f"metafor {r_out['version']} rma+confint+predict", "REML", r_out["full"][1], r_out["full"][0])
            fails = {m: r_out[m][3] for m in ("DL", "REML", "PM") if r_out[m][3]}
            if fails:
                r_note = f"metafor fits failing even with stepadj=0.5 (excluded from differences): {fails}"
    mem = bench_memory(Ybig, Vbig, scale)
    start = startup(a.starts) if a.starts > 0 else {}
    diffs = agreement(Ybig, Vbig, min(n_sm, n_r), r_out)
    tg = targets(rows, mem, start, r_out, m_big)
    header = (f"bench_pool  {_dt.datetime.now().isoformat(timespec='seconds')}  "
              f"{platform.processor() or platform.machine()}  {os.cpu_count()} cores  Python {platform.python_version()}  "
              f"numpy {np.__version__}  C kernel {'built' if _compiled.LIB is not None else 'NOT BUILT'}  k = {K}  seed = {SEED}  load avg {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    report(rows, mem, diffs, tg, r_note, start, header)
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "loadavg_1min": [load0, os.getloadavg()[0]], "kernel": _compiled.LIB is not None, "k": K, "seed": SEED, "quick": a.quick,
        "timings": rows, "memory": mem, "startup": start, "differences": diffs, "targets": tg,
        "metafor_note": r_note,
    }, indent=2))
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
