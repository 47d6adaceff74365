"""Start-up of the commands (issue #15): what each imports, checked in a fresh process after it ran.

Not timings (those are in benchmarks/README.md, measured by benchmarks/bench_pool.py): the
imports that made ``validate`` slow -- pandas, scipy, the report's libraries -- must not come back
unnoticed. The lists name only libraries whose import costs tenths of a second (or, for
importlib.metadata, tens of milliseconds at every start).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGISTRY, PLAN = str(ROOT / "trials" / "registry.csv"), str(ROOT / "trials" / "analyses.toml")


def _imported_after(args: list[str], watched: tuple[str, ...], tmp_path: Path) -> tuple[int, list[str]]:
    """Exit code of ``metaanalysis *args`` run in-process in a new interpreter, and which of the
    ``watched`` modules (or their submodules) it had imported by then."""
    code = ("import sys\n"
            "from metaanalysis.cli import main\n"
            f"try:\n    rc = main({args!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            f"watched = {watched!r}\n"
            "print(rc, sorted(m for m in sys.modules if m in watched or m.split('.')[0] in watched))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    rc, _, mods = p.stdout.splitlines()[-1].partition(" ")
    return int(rc), ast.literal_eval(mods)


HEAVY = ("pandas", "scipy", "statsmodels", "matplotlib", "jinja2", "PIL", "importlib.metadata")


def test_validate_of_the_shipped_registry_imports_none_of_the_heavy_libraries(tmp_path):
    # numpy is the one heavy import validate keeps (the effects' consistency checks)
    assert _imported_after(["validate", REGISTRY, "--plan", PLAN], HEAVY, tmp_path) == (0, [])


def test_importing_the_validate_command_imports_neither_pandas_nor_scipy(tmp_path):
    code = ("import sys, metaanalysis.cli.validate\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["validate", "--help"], ["no-such-command"]])
def test_help_version_and_usage_errors_import_not_even_numpy(args, tmp_path):
    rc, mods = _imported_after(args, HEAVY + ("numpy",), tmp_path)
    assert rc in (0, 2) and mods == ([] if args != ["--version"] else ["importlib.metadata"])


def test_pool_does_not_import_scipy_stats(tmp_path):
    # pool needs numpy and scipy.special (the estimators), not scipy.stats (~0.4 s more)
    f = tmp_path / "hr.csv"
    f.write_text("study,estimate,ci_lower,ci_upper\nA,0.82,0.69,0.98\nB,0.74,0.58,0.94\nC,0.97,0.82,1.14\n")
    rc, mods = _imported_after(["pool", str(f), "--measure", "HR"], ("scipy.stats", "pandas", "statsmodels",
                                                                       "matplotlib", "jinja2"), tmp_path)
    assert (rc, mods) == (0, [])


def test_the_pool_study_table_quantile_is_scipy_stats_norm_ppf():
    # cli/pool.py prints each study's CI with scipy.special.ndtri(0.5 + level / 2): the very
    # number scipy.stats.norm.ppf gave before (its ppf is ndtri(q) * 1 + 0), so no digit changed
    import numpy as np
    from scipy.special import ndtri
    from scipy.stats import norm

    levels = np.concatenate([np.linspace(0.5, 0.9999, 20001), [0.8, 0.9, 0.95, 0.99]])
    assert np.array_equal(ndtri(0.5 + levels / 2), norm.ppf(0.5 + levels / 2))
