"""``python -m metaanalysis`` (metaanalysis/__main__.py) is the ``metaanalysis`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_dash_m():
    """``python -m metaanalysis`` is the ``metaanalysis`` command (exit codes included)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "metaanalysis", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    helped = run("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: metaanalysis ") and "validate" in helped.stdout
    validated = run("validate", "trials/registry.csv")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith("trials/registry.csv: ")
    assert run("no-such-command").returncode == 2
