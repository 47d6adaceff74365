"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shipped_build(tmp_path_factory):
    """The shipped registry and plan built once per session: ``(out_dir, BuildSummary)``.

    Read-only for the tests that use it (a test that changes files builds its own copy).
    """
    from metaanalysis.report.build import build_reports

    out = tmp_path_factory.mktemp("shipped") / "reports"
    return out, build_reports(ROOT / "trials" / "registry.csv", ROOT / "trials" / "analyses.toml", out)
