"""Synthetic registries for batch tests and benchmarks (valid against ``trials/schema.json``).

Run:  ``.venv/bin/python benchmarks/make_synthetic.py OUT_DIR --analyses 100 --registries 10``

Writes ``OUT_DIR/synth_000/registry.csv`` + ``analyses.toml``, ... : ``--analyses`` analyses spread
evenly over ``--registries`` directories, each analysis pooling 3-30 studies (uniform, fixed
seed). Every study is its own trial (own ``trial_id`` and ``patient_set``) reporting a hazard
ratio with a 95% CI drawn from a random-effects model (log HR ~ N(mu, tau² + se²),
mu ~ U(-0.4, 0.1), tau² ~ U(0, 0.05), se ~ U(0.08, 0.4)); numbers are rounded as a paper
prints them (4 significant digits), which keeps each estimate at the centre of its CI on the
log scale far inside the validator's 10%-of-width rule. Rows of analysis ``j`` use an endpoint
cycled over the schema's time-to-event codes and a ``tumour_type`` of their own, which the
plan's ``select.tumour_type`` picks (so one registry can hold many analyses).

``--no-coverage`` writes ``coverage = false`` into the plan's ``[defaults]``: no design-specific
coverage simulation (about a second of CPU per analysis); the default keeps it on, as a real plan.

``make_registry_dir(path, n_analyses, seed=..)`` is the function tests import.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "trials" / "schema.json"
# Time-to-event endpoints of the schema's vocabulary (HR is their measure).
_ENDPOINTS = ("OS", "DFS", "PFS", "EFS", "BMFS", "TTBM", "SRE", "FRACTURE")


def _columns() -> list[str]:
    import json

    return [f["name"] for f in json.loads(SCHEMA.read_text(encoding="utf-8"))["fields"]]


def _sig(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def analysis_id(j: int) -> str:
    return f"A{j:04d}"


def tumour(aid: str) -> str:
    """The tumour_type of an analysis's rows (what its plan entry selects on)."""
    return f"synthetic tumour {aid}"


def make_rows(n_analyses: int, seed: int = 1, k_min: int = 3, k_max: int = 30):
    """Rows (dicts keyed by schema column) and, per analysis, (id, endpoint, row_ids).

    Parameters
    ----------
    n_analyses : int
        Number of analyses.
    seed : int
        numpy Generator seed (the output is byte-identical for a seed).
    k_min, k_max : int
        Studies per analysis, uniform on [k_min, k_max].
    """
    rng = np.random.default_rng(seed)
    rows, analyses = [], []
    for j in range(n_analyses):
        aid = analysis_id(j)
        endpoint = _ENDPOINTS[j % len(_ENDPOINTS)]
        k = int(rng.integers(k_min, k_max + 1))
        mu = rng.uniform(-0.4, 0.1)
        tau2 = rng.uniform(0.0, 0.05)
        ids = []
        for s in range(k):
            se = rng.uniform(0.08, 0.4)
            y = rng.normal(mu, math.sqrt(tau2 + se * se))
            z = 1.959963984540054  # qnorm(0.975)
            rid = f"{aid}-S{s:02d}"
            trial = f"{aid}-T{s:02d}"
            n = int(rng.integers(80, 2000))
            rows.append({
                "row_id": rid,
                "trial_id": trial,
                "trial_name": f"Synthetic trial {trial}",
                "nct_id": f"NCT{(j * 100 + s) % 10**8:08d}",
                "patient_set": trial,
                "design": "RCT",
                "population": "synthetic population",
                "tumour_type": tumour(aid),
                "setting": "metastatic",
                "intervention": "drug X",
                "dose": "1 mg",
                "comparator": "placebo",
                "endpoint": endpoint,
                "endpoint_detail": f"synthetic {endpoint}",
                "measure": "HR",
                "direction": "HR < 1 favours drug X",
                "estimate": _sig(math.exp(y)),
                "ci_lower": _sig(math.exp(y - z * se)),
                "ci_upper": _sig(math.exp(y + z * se)),
                "ci_level": "95",
                "n_int": str(n),
                "n_ctl": str(n),
                "followup_months": str(int(rng.integers(6, 120))),
                "analysis_population": "ITT",
                "report": "primary analysis",
                "use_for_pooling": "yes",
                "status": "confirmed",
                "authors": "Synthetic A et al.",
                "journal": "J Synth 2024;1:1",
                "year": str(int(rng.integers(1995, 2025))),
                "source_location": "Table 2",
                "regimen": "1 mg q4w",
                "notes": "synthetic row (benchmarks/make_synthetic.py)",
            })
            ids.append(rid)
        analyses.append((aid, endpoint, ids))
    return rows, analyses


def registry_csv(rows) -> str:
    cols = _columns()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", restval="")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


#: Sensitivity analyses of every synthetic analysis: the full set, as in trials/analyses.toml.
SENSITIVITY = ("leave-one-out", "cumulative", "estimators", "exclude-derived", "exclude-post-hoc",
               "exclude-unconfirmed", "common-effect")


def plan_toml(analyses, sensitivity=SENSITIVITY, coverage: bool = True) -> str:
    """The analysis plan (``analyses.toml``, format of :mod:`metaanalysis.plan`) for ``analyses``.

    Each analysis selects its own rows by their ``tumour_type`` (unique per analysis); settings
    are the shipped plan's defaults (REML, HKSJ, metafor PI, 95%); ``coverage=False`` adds
    ``coverage = false`` to ``[defaults]`` (no coverage simulation).
    """
    sens = ", ".join(f'"{s}"' for s in sensitivity)
    out = [
        "# synthetic analysis plan (benchmarks/make_synthetic.py)",
        'title = "Synthetic evidence reports"',
        "",
        "[defaults]",
        'method = "REML"',
        'test = "knha"',
        'pi = "metafor"',
        "level = 0.95",
        f"sensitivity = [{sens}]",
        'favours = ["drug X", "placebo"]',
        *([] if coverage else ["coverage = false"]),
        "",
    ]
    for aid, endpoint, _ids in analyses:
        out += [
            "[[analysis]]",
            f'id = "{aid.lower()}"',
            f'title = "Synthetic analysis {aid} ({endpoint})"',
            f'endpoint = "{endpoint}"',
            'measure = "HR"',
            f'select.tumour_type = ["{tumour(aid)}"]',
            "",
        ]
    return "\n".join(out)


def make_registry_dir(path: str | Path, n_analyses: int, seed: int = 1, k_min: int = 3, k_max: int = 30,
                      layout: str = "flat", sensitivity=SENSITIVITY, coverage: bool = True) -> Path:
    """Write ``registry.csv`` + ``analyses.toml`` into ``path`` (or ``path/trials`` with layout="trials").

    Returns the directory to give to ``metaanalysis batch`` (``path``).
    """
    d = Path(path)
    base = d / "trials" if layout == "trials" else d
    base.mkdir(parents=True, exist_ok=True)
    rows, analyses = make_rows(n_analyses, seed, k_min, k_max)
    (base / "registry.csv").write_text(registry_csv(rows), encoding="utf-8")
    (base / "analyses.toml").write_text(plan_toml(analyses, sensitivity, coverage), encoding="utf-8")
    return d


def make_corpus(out: str | Path, n_analyses: int, n_registries: int, seed: int = 1, **kw) -> list[Path]:
    """``n_analyses`` spread as evenly as possible over ``n_registries`` directories ``synth_000``, ..."""
    out = Path(out)
    base, extra = divmod(n_analyses, n_registries)
    dirs = []
    for i in range(n_registries):
        m = base + (i < extra)
        if m:
            dirs.append(make_registry_dir(out / f"synth_{i:03d}", m, seed=seed * 1000 + i, **kw))
    return dirs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--analyses", type=int, default=10)
    ap.add_argument("--registries", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--k-min", type=int, default=3)
    ap.add_argument("--k-max", type=int, default=30)
    ap.add_argument("--no-coverage", action="store_true",
                    help="plans with coverage = false (no design-specific coverage simulation)")
    a = ap.parse_args(argv)
    dirs = make_corpus(a.out, a.analyses, a.registries, a.seed, k_min=a.k_min, k_max=a.k_max,
                       coverage=not a.no_coverage)
    for d in dirs:
        print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
