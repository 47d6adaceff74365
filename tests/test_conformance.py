"""Conformance of ``metaanalysis.pool`` with R's metafor 3.8-1, field by field.

Source of every expected number: ``tests/reference/fixtures/<dataset>.json``, written by
``tests/reference/make_fixtures.R`` (R 4.2.2, metafor 3.8-1, metadat); each fit stores the exact R
call (``r_call``, after the dataset's ``setup_r``) that reproduces it. Format, control settings and
the deviations from metafor's printed defaults are in tests/reference/README.md.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from scipy import stats

_spec = importlib.util.spec_from_file_location(
    "_conformance", Path(__file__).parent / "reference" / "conformance.py")
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)

METHODS = ("FE", "DL", "REML", "ML", "PM", "HS", "SJ", "EB", "HE")
TESTS = ("z", "knha", "adhoc")
CLOSED_FORM = ("FE", "DL", "HE", "HS", "SJ")   # metafor: no iterations
FISHER = ("REML", "ML", "EB")                  # metafor: Fisher scoring, iterations >= 1 when k > 1

#: result keys compared numerically (pi_* are compared separately per PI convention)
NUMERIC_KEYS = (
    "estimate", "se", "stat", "df", "pvalue", "ci_lower", "ci_upper", "tau2", "tau2_se",
    "tau2_ci_lower", "tau2_ci_upper", "tau", "i2", "i2_ci_lower", "i2_ci_upper", "h2",
    "h2_ci_lower", "h2_ci_upper", "q", "q_pvalue", "pi_lower", "pi_upper", "weights",
)

CASES = [
    pytest.param(fx, fit, id=f"{fx['dataset']}-{fit['method']}-{fit['test']}-{fit['level']:g}")
    for fx in cf.FIXTURES for fit in fx["fits"]
]


def _pool(fx, fit, pi="metafor"):
    from metaanalysis import pool

    return pool(fx["yi"], fx["vi"], method=fit["method"], test=fit["test"], level=fit["level"], pi=pi)


@pytest.mark.parametrize("fx, fit", CASES)
def test_pool_matches_metafor(fx, fit):
    r = _pool(fx, fit)
    exp = fit["result"]
    got = {key: getattr(r, key) for key in NUMERIC_KEYS}
    got["weights"] = list(r.weights)
    bad = cf.mismatches(got, exp, NUMERIC_KEYS)
    assert not bad, f"{fit['r_call']} [{fit['notes']}]:\n  " + "\n  ".join(bad)
    # exact fields
    assert r.k == exp["k"]
    assert r.q_df == exp["q_df"]
    assert r.method == fit["method"]
    assert math.isclose(r.level, fit["level"])
    if exp["k"] == 1:  # metafor forces test="z" when k = 1
        assert r.test in (fit["test"], "z")
    else:
        assert r.test == fit["test"]
    assert bool(r.converged) is exp["converged"] is True
    assert isinstance(r.metafor_call, str) and fit["method"] in r.metafor_call
    # iterations: metafor does not store them (printed only with verbose=TRUE) and the count
    # depends on the start value and threshold, so only their kind is checked here:
    # closed forms report 0; Fisher scoring at least one step when there is something to
    # estimate (the fixture's count, from metafor's verbose output, is exp["iterations"]).
    assert int(r.iterations) >= 0
    if fit["method"] in CLOSED_FORM or exp["k"] == 1:
        assert r.iterations == 0 == exp["iterations"]
    elif fit["method"] in FISHER:
        assert exp["iterations"] >= 1
        assert r.iterations >= 1


@pytest.mark.parametrize("fx, fit", CASES)
def test_riley_prediction_interval(fx, fit):
    """pi="riley": estimate ± t(k-2) sqrt(tau2 + se²) (Riley et al. 2011, doi:10.1136/bmj.d549),
    computed in make_fixtures.R; null for k < 3 and for FE (metafor gives no PI for FE)."""
    r = _pool(fx, fit, pi="riley")
    exp = fit["result"]
    got = {"pi_lower": r.pi_lower, "pi_upper": r.pi_upper}
    bad = cf.mismatches(got, {"pi_lower": exp["pi_riley_lower"], "pi_upper": exp["pi_riley_upper"]},
                        ("pi_lower", "pi_upper"))
    assert not bad, f"{fit['r_call']}:\n  " + "\n  ".join(bad)


# ------------------------------------------------------------------------------------------
# Tests of the fixtures themselves (no metaanalysis code involved)
# ------------------------------------------------------------------------------------------

def test_fixture_grid_is_complete():
    fixtures = cf.FIXTURES
    assert len(fixtures) >= 8
    real = [fx for fx in fixtures if not fx["dataset"].startswith("edge_")]
    assert len(real) >= 8, "at least 8 public (metadat) datasets"
    assert sum(1 for fx in fixtures if fx["k"] <= 5) >= 2
    ks = {fx["k"] for fx in fixtures}
    assert {1, 2, 3} <= ks, "edge cases k = 1, 2, 3"
    names = {fx["dataset"] for fx in fixtures}
    assert {"edge_identical_yi", "edge_boundary", "edge_vi_span", "edge_heterogeneous"} <= names
    for fx in fixtures:
        assert len(fx["yi"]) == len(fx["vi"]) == fx["k"]
        grid = {(f["method"], f["test"], f["level"]) for f in fx["fits"]}
        for m in METHODS:
            for t in TESTS:
                assert (m, t, 0.95) in grid, (fx["dataset"], m, t)
        assert any(f["level"] == 0.9 for f in fx["fits"]), fx["dataset"]
        for f in fx["fits"]:
            assert set(f["result"]) >= set(NUMERIC_KEYS) | {
                "k", "q_df", "pi_riley_lower", "pi_riley_upper", "converged", "iterations"}
            assert f["r_call"].startswith("rma(")
        if fx["k"] >= 2:
            assert "sensitivity" in fx
    assert any("subgroups" in fx.get("sensitivity", {}) for fx in fixtures)
    # metafor's fixture vi span: 1e-3 .. 1e3
    span = next(fx for fx in fixtures if fx["dataset"] == "edge_vi_span")
    assert max(span["vi"]) / min(span["vi"]) == pytest.approx(1e6)


@pytest.mark.parametrize("fx, fit", CASES)
def test_fixture_pi_convention(fx, fit):
    """Documents metafor's default PI (predict.rma): the CI's critical value — qnorm for
    test="z", qt(k-1) for knha/adhoc — times sqrt(se² + tau2), with the test's se."""
    r = fit["result"]
    if r["pi_lower"] is None:
        assert fit["method"] == "FE"
        return
    level = fit["level"]
    if r["df"] is None:
        crit = stats.norm.ppf(1 - (1 - level) / 2)
    else:
        crit = stats.t.ppf(1 - (1 - level) / 2, r["df"])
        assert r["df"] == r["k"] - 1
    half = crit * math.sqrt(r["se"] ** 2 + r["tau2"])
    assert r["pi_lower"] == pytest.approx(r["estimate"] - half, rel=1e-12, abs=1e-12)
    assert r["pi_upper"] == pytest.approx(r["estimate"] + half, rel=1e-12, abs=1e-12)
