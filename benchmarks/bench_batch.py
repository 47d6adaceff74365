"""Scaling of ``metaanalysis batch``: wall time, time per analysis, peak memory, where the time goes.

Run:  ``.venv/bin/python benchmarks/bench_batch.py [--quick] [--write-md]``

What is measured, on synthetic registries from ``benchmarks/make_synthetic.py`` (fixed seed;
every analysis pools 3-30 studies with the shipped plan's settings and all seven sensitivity
analyses):

* wall time of ``run_batch(..., force=True)`` into a fresh output directory for 1, 10, 100 and
  1,000 analyses (1 registry for the two small sizes, 10 registries for the larger ones;
  ``--quick``: 1, 10, 40), at ``-j 1`` (in-process) and ``-j 2`` (two "spawn" worker
  processes); each configuration runs in its own Python process so that its peak memory is
  its own: ``ru_maxrss`` of that process (``RUSAGE_SELF``) and of its worker processes
  (``RUSAGE_CHILDREN``: the largest single child, not a sum), in MiB;
* CPU seconds (user + system) of the build and its worker processes, which other work on a shared
  machine inflates far less than the wall time (CPU seconds / CPUs is what an idle machine could reach);
* seconds per analysis, and a least-squares line ``time = a + b * analyses`` per ``-j`` with its
  slope ``b`` (s/analysis), intercept ``a`` (start-up: imports, worker spawn) and R²
  (R² near 1 and per-analysis times that do not rise with size = linear cost);
* a cProfile of one in-process build of a 10-analysis registry, the time split into plots
  (SVG and the PNG downloads: ``metaanalysis.plots``, Pillow), pooling/sensitivity,
  registry/plan reading, pages and JSON (``render/``, jinja2) and the rest, each as inclusive time of calls entering that group from outside it.

``--no-coverage`` builds the same registries with plans that set ``coverage = false`` (no
design-specific coverage simulation, about a second of CPU per random-effects analysis); the
default keeps it on, which is what a real plan costs.

Results go to ``benchmarks/output/bench_batch.json`` (``bench_batch_no_coverage.json``) and, with
``--write-md``, to that setting's numbers section of ``benchmarks/BATCH.md`` (``--md-from JSON``
writes the section of an earlier run's JSON).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import make_synthetic  # noqa: E402

SEED = 20240611
FULL = [(1, 1), (10, 1), (100, 10), (1000, 10)]   # (analyses, registries)
QUICK = [(1, 1), (10, 1), (40, 4)]


# --- one configuration, in a fresh process ---------------------------------------------------


def _one(args) -> int:
    """Child mode: build once, print one JSON line (time, memory, per-directory results)."""
    import resource

    from metaanalysis.batch import run_batch

    dirs = [d for d in args.dirs]
    t0 = time.perf_counter()
    s = run_batch(dirs, args.out, jobs=args.jobs, force=True, progress=False, stream=open(os.devnull, "w"))
    wall = time.perf_counter() - t0
    self_ru, kids_ru = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    me, kids = self_ru.ru_maxrss / 1024, kids_ru.ru_maxrss / 1024
    # CPU seconds of the build and its (joined) workers: what other work on the machine inflates
    # far less than the wall time; cpu / CPUs is the wall time an idle machine could reach
    cpu = sum(ru.ru_utime + ru.ru_stime for ru in (self_ru, kids_ru))
    print(json.dumps({
        "wall_s": wall,
        "built": len(s.built), "failed": [r.reason for r in s.failed],
        "analyses": sum(r.n_analyses or 0 for r in s.built),
        "build_s": [r.seconds for r in s.results],
        "peak_rss_self_mib": me, "peak_rss_children_mib": kids, "cpu_s": cpu,
    }))
    return 0


def run_config(dirs, out, jobs) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--one", "--jobs", str(jobs), "--out", str(out), *map(str, dirs)]
    t0 = time.perf_counter()
    # one BLAS thread, as `metaanalysis batch` asks for (metaanalysis.runtime.single_threaded_blas): the
    # child is this script, whose spawned workers import numpy (re-importing it) before worker_init runs
    from metaanalysis.runtime import BLAS_THREAD_VARIABLES

    blas = {var: os.environ.get(var, "1") for var in BLAS_THREAD_VARIABLES}
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg", **blas})
    total = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_s"] = total  # including the Python start-up of the child
    res["loadavg_1min_after"] = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    if res["failed"]:
        raise SystemExit(f"synthetic registries failed to build: {res['failed'][:3]}")
    return res


# --- statistics ---------------------------------------------------------------------------------


def linear_fit(x, y):
    """Ordinary least squares ``y = a + b x`` -> (a, b, R²)."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    A = np.column_stack([np.ones_like(x), x])
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - (a + b * x)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return float(a), float(b), r2


# --- profile ---------------------------------------------------------------------------------------

# Groups by the callee's file; time is counted where the build (metaanalysis/report/ and the
# analysis driver metaanalysis/analysis.py) calls into a group directly, so nothing is counted
# twice (pooling called by the coverage simulation is coverage).
GROUPS = {
    "coverage simulation (coverage.py: 1,000-10,000 replicates per tau2 and interval)": ("metaanalysis/coverage.py",),
    "Bayesian fits (bayesian.py)": ("metaanalysis/bayesian.py",),
    "pooling + sensitivity": ("metaanalysis/pooling.py", "metaanalysis/sensitivity.py",
                              "metaanalysis/estimators.py", "metaanalysis/single.py",
                              "metaanalysis/__init__.py"),
    "registry + plan reading": ("metaanalysis/registry.py", "metaanalysis/plan.py", "metaanalysis/effects.py"),
    "figures: SVG + PNG downloads (render/figures.py, plots/, Pillow)": (
        "metaanalysis/render/figures.py", "metaanalysis/plots/", "/matplotlib/", "/PIL/"),
    "pages and JSON (render/, jinja2)": ("metaanalysis/render/", "/jinja2/"),
    "first imports (scipy, pandas, ...)": ("<frozen importlib",),
}
# runtime.py: the figures are rendered through run_forked (serially in the profiled build)
_ENTRY = ("metaanalysis/report/", "metaanalysis/analysis.py", "metaanalysis/runtime.py")


def _group_of(filename: str) -> str | None:
    f = filename.replace(os.sep, "/")
    for g, keys in GROUPS.items():
        if any(k in f for k in keys):
            return g
    return None


def profile_build(d: Path, out: Path) -> dict:
    """cProfile one in-process ``build_reports``; seconds per group (see ``GROUPS``)."""
    from metaanalysis.batch import find_inputs

    reg, plan = find_inputs(d)
    shutil.rmtree(out, ignore_errors=True)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    from metaanalysis.report.build import build_reports  # its imports are part of a worker's first build

    # Plots serially in this process (jobs=1): in forked plot workers cProfile would not see them.
    build_reports(str(reg), str(plan), str(out), jobs=1)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    groups = {g: 0.0 for g in GROUPS}
    for func, (_cc, _nc, _tt, _ct, callers) in st.stats.items():
        g = _group_of(func[0])
        if g is None:
            continue
        for caller, cstats in callers.items():
            cf = caller[0].replace(os.sep, "/")
            if any(k in cf for k in _ENTRY):
                groups[g] += cstats[3]
    # imports triggered from the profiled module-level import are entered from this file
    groups["first imports (scipy, pandas, ...)"] += sum(
        cs[3] for f, (_a, _b, _c, _d, callers) in st.stats.items() if f[0].startswith("<frozen importlib")
        for c, cs in callers.items() if c[0] == __file__ or c[0].endswith("bench_batch.py"))
    top = sorted(((v[3], f"{Path(k[0]).name}:{k[1]}({k[2]})") for k, v in st.stats.items()), reverse=True)
    return {"wall_s": wall, "groups_s": groups, "other_s": max(wall - sum(groups.values()), 0.0),
            "top_cumulative": [(round(t, 3), n) for t, n in top[:25]]}


def plots_share(d: Path, out: Path, repeat: int = 3) -> dict:
    """CPU time of a warm in-process build (plots serial) with and without plots, no profiler.

    "Without" replaces ``report.build.render_figures`` by a stub returning empty SVG (the pages are
    otherwise the same); best of ``repeat`` each, after one warm-up build that pays the imports.
    """
    from metaanalysis.batch import find_inputs
    from metaanalysis.report import build as rb

    reg, plan = find_inputs(d)
    rb.build_reports(str(reg), str(plan), str(out), jobs=1)  # warm-up: imports, font cache

    def best():
        ts = []
        for _ in range(repeat):
            t0 = time.process_time()  # CPU of this process: load on a shared machine distorts it less
            rb.build_reports(str(reg), str(plan), str(out), jobs=1)
            ts.append(time.process_time() - t0)
        return min(ts)

    with_plots = best()
    real = rb.render_figures
    rb.render_figures = lambda fig: {"forest_svg": "", "funnel_svg": ""}
    try:
        without = best()
    finally:
        rb.render_figures = real
    return {"with_plots_s": with_plots, "without_plots_s": without,
            "plots_share": (with_plots - without) / with_plots}


# --- main --------------------------------------------------------------------------------------------


def machine() -> dict:
    import resource  # noqa: F401

    cpu = platform.processor() or ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    from metaanalysis import __version__

    return {"date": _dt.date.today().isoformat(), "loadavg_1min_before": os.getloadavg()[0], "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "memory": mem,
            "metaanalysis": __version__}


def timed_runs(tmp: Path, sizes, jobs_list, budget: float, t_start: float, cov: bool) -> tuple[list, list]:
    """Every (size, -j) build in its own process; a run the line so far projects past ``budget``
    is skipped and listed. Returns (rows, skipped)."""
    rows, skipped = [], []
    for n, nreg in sizes:
        dirs = make_synthetic.make_corpus(tmp / f"in_{n}", n, nreg, seed=SEED, coverage=cov)
        studies = sum(len(r.splitlines()) - 1 for r in
                      ((d / "registry.csv").read_text() for d in dirs))
        for j in jobs_list:
            done = [(r["analyses"], r["wall_s"]) for r in rows if r["jobs"] == j]
            if len(done) >= 2:  # project this run from the line so far; keep within the budget
                a0, b, _ = linear_fit(*zip(*done))
                proj = a0 + b * n
                left = budget - (time.perf_counter() - t_start)
                if proj > left:
                    msg = (f"analyses {n:5d}  -j {j}: skipped, projected {proj:.0f} s > {left:.0f} s left "
                           f"of the --budget {budget:.0f} s")
                    print(msg, flush=True)
                    skipped.append({"analyses": n, "jobs": j, "projected_s": proj})
                    continue
            r = run_config(dirs, tmp / f"out_{n}_{j}", j)
            assert r["analyses"] == n, r
            row = {"analyses": n, "registries": nreg, "studies": studies, "jobs": j, **r,
                   "s_per_analysis": r["wall_s"] / n}
            rows.append(row)
            print(f"analyses {n:5d} in {nreg:2d} registries ({studies:6d} studies)  -j {j}: "
                  f"{r['wall_s']:7.2f} s  ({row['s_per_analysis'] * 1000:7.1f} ms/analysis)  "
                  f"CPU {r.get('cpu_s', float('nan')):7.2f} s  peak RSS self {r['peak_rss_self_mib']:6.0f} MiB, largest worker {r['peak_rss_children_mib']:6.0f} MiB"
                  f"  (load {r['loadavg_1min_after']:.1f})",
                  flush=True)
    return rows, skipped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1, 10, 40 analyses (about a minute)")
    ap.add_argument("--write-md", action="store_true", help="write the numbers into benchmarks/BATCH.md")
    ap.add_argument("--jobs-list", default="1,2")
    ap.add_argument("--budget", type=float, default=560.0,
                    help="seconds for the timed runs; a run projected (from the runs so far) to overrun it is "
                         "skipped and reported as such (default 560)")
    ap.add_argument("--no-coverage", action="store_true",
                    help="plans with coverage = false: no design-specific coverage simulation")
    ap.add_argument("--md-from", default=None, metavar="JSON",
                    help="only write BATCH.md's section from the JSON of an earlier run")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("dirs", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        return _one(a)
    if a.md_from:
        write_md(json.loads(Path(a.md_from).read_text()))
        return 0

    sizes = QUICK if a.quick else FULL
    jobs_list = [int(j) for j in a.jobs_list.split(",")]
    t_start = time.perf_counter()
    info = machine()
    cov = not a.no_coverage
    print(f"# load average before: {os.getloadavg()[0]:.1f} (other work on the machine skews the timings)")
    print(f"# coverage simulation {'on (the default)' if cov else 'off (coverage = false)'}")
    print(f"# bench_batch {info['date']}  {info['cpu']} x{info['cpus']}  {info['memory']}  "
          f"Python {info['python']}  metaanalysis {info['metaanalysis']}")
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        rows, skipped = timed_runs(tmp, sizes, jobs_list, a.budget, t_start, cov)
        fits = {}
        for j in jobs_list:
            pts = [(r["analyses"], r["wall_s"]) for r in rows if r["jobs"] == j]
            a0, b, r2 = linear_fit(*zip(*pts))
            fits[j] = {"intercept_s": a0, "slope_s_per_analysis": b, "r2": r2}
            print(f"-j {j}: time = {a0:.2f} s + {b * 1000:.1f} ms x analyses   R² = {r2:.4f}")
        pdir = make_synthetic.make_registry_dir(tmp / "profile", 10, seed=SEED, coverage=cov)
        prof = profile_build(pdir, tmp / "profile_out")
        print(f"profile of one in-process build, 10 analyses: {prof['wall_s']:.2f} s")
        for g, s in prof["groups_s"].items():
            print(f"  {g:42s} {s:7.2f} s  {100 * s / prof['wall_s']:5.1f} %")
        print(f"  {'other (report assembly, I/O, ...)':42s} {prof['other_s']:7.2f} s  "
              f"{100 * prof['other_s'] / prof['wall_s']:5.1f} %")
        share = plots_share(pdir, tmp / "share_out")
        print(f"warm build of the same registry, plots serial, no profiler: {share['with_plots_s']:.2f} s of CPU; "
              f"with plots stubbed out: {share['without_plots_s']:.2f} s -> plots are "
              f"{100 * share['plots_share']:.0f} % of a warm build")
    result = {"machine": info, "coverage": cov, "quick": a.quick, "runs": rows, "skipped": skipped, "budget_s": a.budget, "fits": {str(k): v for k, v in fits.items()},
              "profile_10": prof, "plots_share_10": share}
    outdir = HERE / "output"
    outdir.mkdir(exist_ok=True)
    (outdir / ("bench_batch.json" if cov else "bench_batch_no_coverage.json")).write_text(json.dumps(result, indent=1))
    if a.write_md:
        write_md(result)
    return 0


def _markers(coverage: bool) -> tuple[str, str]:
    """BATCH.md's begin and end markers of one coverage setting's numbers."""
    tag = "on" if coverage else "off"
    return (f"<!-- bench_batch:begin coverage={tag} (generated by benchmarks/bench_batch.py --write-md) -->",
            f"<!-- bench_batch:end coverage={tag} -->")


def write_md(res: dict) -> None:
    """Replace (or append) the section of ``res``'s coverage setting in BATCH.md."""
    m = res["machine"]
    cov = res.get("coverage", True)  # runs before the --no-coverage option had it on
    md_begin, md_end = _markers(cov)
    lines = [md_begin, "",
             "Coverage simulation **on** (the default: what a real plan costs)." if cov else
             "Coverage simulation **off** (`coverage = false` in every synthetic plan's `[defaults]`).", "",
             f"Measured {m['date']} on {m['cpu']} ({m['cpus']} CPUs, {m['memory']}), {m['platform']}, "
             f"Python {m['python']}, metaanalysis {m['metaanalysis']}{' (--quick)' if res['quick'] else ''}; "
             f"1-minute load average {m.get('loadavg_1min_before', float('nan')):.1f} before the run "
             "(other processes on the machine; a load above the CPU count inflates every time).", "",
             "| analyses | registries | studies | -j | wall (s) | ms / analysis | CPU (s) | CPU ms / analysis | peak RSS main (MiB) | peak RSS largest worker (MiB) | load avg after |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["runs"]:
        cpu = (f"{r['cpu_s']:.2f} | {r['cpu_s'] / r['analyses'] * 1000:.1f}" if "cpu_s" in r else "– | –")
        lines.append(f"| {r['analyses']:,} | {r['registries']} | {r['studies']:,} | {r['jobs']} | {r['wall_s']:.2f} | "
                     f"{r['s_per_analysis'] * 1000:.1f} | {cpu} | {r['peak_rss_self_mib']:.0f} | {r['peak_rss_children_mib']:.0f} | "
                     f"{r.get('loadavg_1min_after', float('nan')):.1f} |")
    lines += ["", "Least-squares line `wall = a + b × analyses`:", "",
              "| -j | a (s, start-up) | b (ms / analysis) | R² |", "|---:|---:|---:|---:|"]
    for j, f in res["fits"].items():
        lines.append(f"| {j} | {f['intercept_s']:.2f} | {f['slope_s_per_analysis'] * 1000:.1f} | {f['r2']:.4f} |")
    for sk in res.get("skipped", []):
        f = res["fits"][str(sk["jobs"])]
        lines.append("")
        lines.append(f"Not run (over the {res['budget_s']:.0f} s budget): {sk['analyses']:,} analyses at -j {sk['jobs']}; "
                     f"the line above projects {f['intercept_s'] + f['slope_s_per_analysis'] * sk['analyses']:.0f} s.")
    p = res["profile_10"]
    lines += ["", f"Profile of one in-process build of a 10-analysis registry ({p['wall_s']:.2f} s, cProfile "
              "overhead included):", "", "| part | s | share |", "|---|---:|---:|"]
    for g, s in p["groups_s"].items():
        lines.append(f"| {g} | {s:.2f} | {100 * s / p['wall_s']:.0f} % |")
    lines.append(f"| other (report assembly, I/O, ...) | {p['other_s']:.2f} | {100 * p['other_s'] / p['wall_s']:.0f} % |")
    sh = res.get("plots_share_10")
    if sh:
        lines += ["", f"Without the profiler, a warm in-process build of the same registry (imports already paid, "
                  f"plots serial) takes {sh['with_plots_s']:.2f} s of CPU; with the plot renderer stubbed out "
                  f"{sh['without_plots_s']:.2f} s: "
                  + (f"**plots are {100 * sh['plots_share']:.0f} % of a warm build**."
                     if sh["plots_share"] >= 0.05 else
                     "**plots are under 5 % of a warm build** (the two differ by less than the noise).")]
    lines += ["", md_end]
    md = HERE / "BATCH.md"
    text = md.read_text() if md.exists() else ""
    block = "\n".join(lines)
    if md_begin in text and md_end in text:
        pre, rest = text.split(md_begin, 1)
        post = rest.split(md_end, 1)[1]
        text = pre + block + post
    else:
        text = text + "\n" + block + "\n"
    md.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
