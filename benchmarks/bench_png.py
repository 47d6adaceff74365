"""CPU cost of a report's figures per analysis, this tree against another, side by side (issue #15).

Run:  ``.venv/bin/python benchmarks/bench_png.py [--baseline DIR] [--repeat 3]``

``--baseline DIR`` is another source tree of the package, e.g. the commit before a change::

    git archive 71bb631 | (mkdir -p /tmp/base && tar -x -C /tmp/base)
    .venv/bin/python benchmarks/bench_png.py --baseline /tmp/base

Both trees build the same synthetic registry (``make_synthetic.py``, 10 analyses, fixed seed,
``coverage = false``) in-process with the plots serial, warm (a first build pays the imports),
measured with ``time.process_time`` (CPU of this process, so other work on the machine inflates
it less than wall time), best of ``--repeat``, the two trees alternating so they share the
machine's load:

* ``built``: the report as it is;
* ``no_png``: ``render_forest``/``render_funnel`` return nothing for ``format="png"``;
* ``no_figures``: every figure stubbed out (``render_figures`` returns empty SVG);

and, per figure, the CPU of ``render_forest``/``render_funnel(format="png", dpi=150)`` on the
registry's own figures. Results: ``benchmarks/output/bench_png.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SEED = 20240611

_CHILD = r'''
import json, sys, time
from pathlib import Path
from metaanalysis.batch import find_inputs
from metaanalysis.report import build as rb
import metaanalysis.plots as P
d, out, repeat = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
reg, plan = find_inputs(d)
figs = []
real_figures = rb.render_figures
rb.render_figures = lambda fig: (figs.append(fig), real_figures(fig))[1]
rb.build_reports(str(reg), str(plan), str(out), jobs=1)   # warm-up: imports, font and glyph caches
rb.render_figures = real_figures

def best(fn):
    ts = []
    for _ in range(repeat):
        t0 = time.process_time(); fn(); ts.append(time.process_time() - t0)
    return min(ts)

build = lambda: rb.build_reports(str(reg), str(plan), str(out), jobs=1)
res = {"analyses": len(figs), "built": best(build)}
rf, rn = P.render_forest, P.render_funnel
stub = lambda real: (lambda lay, path=None, format=None, dpi=200, **kw:
                     b"" if format == "png" else real(lay, path, format, dpi, **kw))
P.render_forest, P.render_funnel = stub(rf), stub(rn)
res["no_png"] = best(build)
P.render_forest, P.render_funnel = rf, rn
rb.render_figures = lambda fig: {"forest_svg": "", "funnel_svg": ""}
res["no_figures"] = best(build)
rb.render_figures = real_figures
from metaanalysis import vocab
forests = [P.layout_forest(f.forest) for f in figs if f.forest is not None]
funnels = [P.layout_funnel(P.FunnelSpec(yi=f.result.yi, vi=f.result.vi, measure=f.measure, result=f.result,
                                        level=f.result.level))
           for f in figs if f.result is not None and f.result.k >= vocab.FUNNEL_MIN_K]
res["forest_png"] = best(lambda: [rf(l, format="png", dpi=150) for l in forests]) / len(forests)
res["funnel_png"] = best(lambda: [rn(l, format="png", dpi=150) for l in funnels]) / max(len(funnels), 1)
res["forests"], res["funnels"] = len(forests), len(funnels)
res["png_bytes"] = sum(len(rf(l, format="png", dpi=150)) for l in forests) + sum(
    len(rn(l, format="png", dpi=150)) for l in funnels)
res["matplotlib_imported"] = "matplotlib" in sys.modules
print(json.dumps(res))
'''


def run_tree(tree: Path, reg: Path, out: Path, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    # cwd: the tree itself, since ``python -c`` puts the working directory first on sys.path
    p = subprocess.run([sys.executable, "-c", _CHILD, str(reg), str(out), str(repeat)], env=env,
                       capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=None, help="another source tree to compare with")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two trees (best kept)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import make_synthetic

    trees = {"this": ROOT} | ({"baseline": Path(a.baseline).resolve()} if a.baseline else {})
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_png_") as tmp:
        reg = make_synthetic.make_registry_dir(Path(tmp) / "in", 10, seed=SEED, coverage=False)
        res: dict = {}
        for _ in range(a.rounds):
            for name, tree in reversed(trees.items()):
                r = run_tree(tree, reg, Path(tmp) / f"out_{name}", a.repeat)
                old = res.get(name)
                res[name] = r if old is None else {k: min(v, old[k]) if isinstance(v, float) else v
                                                   for k, v in r.items()}
    print(f"# load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f} (2 CPUs shared)")
    for name, r in res.items():
        n = r["analyses"]
        print(f"{name:9s} CPU per analysis (ms): built {1000 * r['built'] / n:6.1f}  "
              f"PNGs stubbed {1000 * r['no_png'] / n:6.1f}  figures stubbed {1000 * r['no_figures'] / n:6.1f}  | "
              f"forest PNG {1000 * r['forest_png']:5.1f}  funnel PNG {1000 * r['funnel_png']:5.1f} "
              f"({r['forests']} forests, {r['funnels']} funnels, {r['png_bytes'] // 1024} KiB of PNG)  "
              f"matplotlib imported: {r['matplotlib_imported']}")
    outdir = HERE / "output"
    outdir.mkdir(exist_ok=True)
    (outdir / "bench_png.json").write_text(json.dumps(
        {"load_before": load_before, "load_after": os.getloadavg()[0], "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
