"""Figure rendering cost, side by side for one or more source trees.

For each ``--tree`` (a checkout of this project; default: this one) and in alternating order, so
that load from other jobs on a shared machine hits every tree alike:

* cold report: wall time of ``python -m metaanalysis report`` of the shipped registry into a fresh
  directory, a new process each time (median of ``--repeat`` runs, default 5);
* per analysis: ``layout_forest`` and ``render_forest(format="svg")`` of every analysis of the
  shipped plan, and the whole ``render_figures`` (forest + funnel + inlining), in one process
  after a warm-up call (median over ``--repeat`` passes, divided by the number of analyses).

Usage::

    python benchmarks/bench_figures.py --tree /tmp/before --tree . [--repeat 5] [--json PATH]

Nothing here runs in the test suite: timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

#: Runs inside a fresh interpreter with the tree first on sys.path; prints JSON.
_PER_ANALYSIS = r"""
import json, statistics, sys, time
from pathlib import Path
root = Path(sys.argv[1]); repeat = int(sys.argv[2])
from metaanalysis.analysis import run_plan
from metaanalysis.plan import load_plan
from metaanalysis.registry import load_registry
from metaanalysis.render import view
from metaanalysis.render.figures import figure_input, render_figures
from metaanalysis.render.labels import RowText
from metaanalysis.plots import layout_forest, render_forest
reg = load_registry(root / "trials" / "registry.csv")
plan = load_plan(root / "trials" / "analyses.toml", reg)
ev = run_plan(reg, plan)
rows = RowText(ev.registry)
inputs = [figure_input(a, view.analysis_view(a, rows, ev.effects)) for a in ev.analyses]
specs = [f.forest for f in inputs if f.forest is not None]
layouts = [layout_forest(s) for s in specs]
render_figures(inputs[0])  # warm-up: imports, caches

def per(fn, items):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        times.append((time.perf_counter() - t0) / len(items))
    return statistics.median(times) * 1e3

import metaanalysis
assert Path(metaanalysis.__file__).resolve().is_relative_to(root.resolve()), metaanalysis.__file__
print(json.dumps({
    "analyses": len(inputs),
    "layout_forest_ms": per(layout_forest, specs),
    "render_forest_svg_ms": per(lambda l: render_forest(l, format="svg"), layouts),
    "render_figures_ms": per(render_figures, inputs),
    "matplotlib_imported": "matplotlib" in sys.modules,
}))
"""


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)
    return env


def cold_report(tree: Path) -> float:
    """Wall seconds of one ``metaanalysis report`` in a new process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "metaanalysis", "report", "--registry",
               str(tree / "trials" / "registry.csv"), "--plan", str(tree / "trials" / "analyses.toml"),
               "--out", str(Path(tmp) / "reports")]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=_env(tree), check=True, capture_output=True, cwd=tmp)
        return time.perf_counter() - t0


def per_analysis(tree: Path, repeat: int) -> dict:
    # cwd = the tree: ``python -c`` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", _PER_ANALYSIS, str(tree), str(repeat)],
                         env=_env(tree), check=True, capture_output=True, text=True, cwd=tree)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", type=Path, help="source tree (repeatable)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    trees = [t.resolve() for t in (args.tree or [HERE])]
    cold: dict[Path, list[float]] = {t: [] for t in trees}
    for _ in range(args.repeat):
        for t in trees:
            cold[t].append(cold_report(t))
    result = {}
    for t in trees:
        r = per_analysis(t, args.repeat)
        r["cold_report_s"] = statistics.median(cold[t])
        r["cold_report_runs_s"] = [round(x, 3) for x in cold[t]]
        result[str(t)] = r
        print(f"{t}\n  cold report: {r['cold_report_s']:.2f} s (median of {args.repeat}: "
              f"{', '.join(f'{x:.2f}' for x in cold[t])})\n"
              f"  per analysis ({r['analyses']}): layout_forest {r['layout_forest_ms']:.1f} ms, "
              f"render_forest svg {r['render_forest_svg_ms']:.1f} ms, render_figures "
              f"{r['render_figures_ms']:.1f} ms; matplotlib imported: {r['matplotlib_imported']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
