"""The C kernel of ``pool_many`` (metaanalysis/_kernel.c, loaded by metaanalysis/_compiled.py)
against the numpy engine it replaces, and against metafor.

Sources of the expected numbers: the numpy engine (metaanalysis/estimators.py, pooling.py),
run on the same rows by forcing the fallback (``_compiled.LIB = None``), field by field to
1e-12 relative; metafor 3.8-1 through ``tests/reference/fixtures/*.json`` (written by
``tests/reference/make_fixtures.R``) to the tolerances of tests/test_conformance.py.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from metaanalysis import _compiled, estimators
from metaanalysis.pooling import METHODS, TESTS, fit_many, pool_many

from kernel_paths import kernel_is_built, numpy_path  # noqa: F401 (kernel_is_built: autouse fixture)

_spec = importlib.util.spec_from_file_location(
    "_conformance", Path(__file__).parent / "reference" / "conformance.py")
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)

ARRAY_FIELDS = ("k", "estimate", "se", "stat", "df", "pvalue", "ci_lower", "ci_upper", "tau2",
                "tau2_se", "tau2_ci_lower", "tau2_ci_upper", "tau", "i2", "i2_ci_lower",
                "i2_ci_upper", "h2", "h2_ci_lower", "h2_ci_upper", "q", "q_df", "q_pvalue",
                "pi_lower", "pi_upper", "weights", "converged", "iterations", "yi", "vi")

# REML log-likelihoods with two local maxima (found by a dense-grid search over random
# datasets; test_multimodal_rows_have_two_maxima checks that they do)
MULTIMODAL = [
    ([5.2606, -3.1129, 5.3471], [0.00992, 9.32047, 0.99236]),
    ([7.338, -1.239, -0.6243], [8.52287, 0.01815, 0.01772]),
]


def assert_same(a, b, rtol=1e-12, iteration_slack=0):
    """Every array field of two PoolArrays equal to ``rtol`` (NaN where NaN, ints exact;
    solver iteration counts to ``iteration_slack``)."""
    for f in ARRAY_FIELDS:
        x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
        assert x.shape == y.shape, f
        if f == "iterations":
            assert np.abs(x - y).max(initial=0) <= iteration_slack, f"{f}: {x} != {y}"
            continue
        if x.dtype.kind in "biu":
            assert np.array_equal(x, y), f"{f}: {x[x != y][:5]} != {y[x != y][:5]}"
            continue
        assert np.array_equal(np.isnan(x), np.isnan(y)), f
        ok = ~np.isnan(x) & (x != y)           # (equal infinities are equal)
        diff = np.abs(x[ok] - y[ok])
        err = diff / np.abs(y[ok])
        # a few fields are differences of nearly equal numbers (e.g. an estimate near 0):
        # there the absolute error is compared with the size of the terms
        scale = np.maximum(np.maximum(np.abs(y[ok]), np.abs(x[ok])), 1.0)
        assert np.all((err <= rtol) | (diff <= 1e-15 * scale)), (
            f"{f}: max relative difference {err.max():.3g}")


def datasets():
    """Rows that exercise the kernel's edges, padded to one (m, 6) batch where k < 6."""
    rng = np.random.default_rng(15)
    rows = []
    for k in (2, 3, 6):
        V = np.exp(rng.uniform(np.log(0.005), np.log(0.5), (40, k)))
        rows += list(zip(rng.normal(-0.2, np.sqrt(V + rng.choice([0.0, 0.05, 1.0], (40, 1)))), V))
    rows.append((np.full(4, 0.3), np.array([0.1, 0.2, 0.3, 0.4])))          # identical: τ² = 0
    rows.append((np.array([0.1, 0.1000001, 0.0999999]), np.full(3, 0.05)))  # τ² = 0 boundary
    rows.append((np.array([1e-4, 3e-4, -2e-4]), np.array([1e-12, 4e-12, 2e-12])))   # tiny v
    rows.append((np.array([1e4, -3e4, 2e4, 5e3]), np.array([1e8, 4e8, 2e8, 9e8])))  # huge v
    rows.append((np.array([0.5, -1.0]), np.array([1e-6, 1e6])))           # variances 1e12 apart
    rows += [(np.array(y), np.array(v)) for y, v in MULTIMODAL]
    return rows


def batch(rows, k=None):
    """Rows of one length k (``k=None``: NaN-padded to the longest)."""
    if k is not None:
        rows = [r for r in rows if r[0].size == k]
    width = max(r[0].size for r in rows)
    Y = np.full((len(rows), width), np.nan)
    V = np.full((len(rows), width), np.nan)
    for i, (y, v) in enumerate(rows):
        Y[i, :y.size], V[i, :v.size] = y, v
    return Y, V


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", (2, 3, 4, 6))
def test_kernel_equals_numpy_engine(method, k, monkeypatch):
    Y, V = batch(datasets(), k)
    for test in TESTS:
        for tau2_ci in (True, False):
            def run():
                return pool_many(Y, V, method=method, test=test, pi="riley", tau2_ci=tau2_ci)
            assert_same(run(), numpy_path(run, monkeypatch))


@pytest.mark.parametrize("method", ("DL", "REML", "PM"))
def test_ragged_batch_mixes_kernel_and_numpy_rows(method, monkeypatch):
    """NaN-padded rows go to the numpy engine, full rows to the kernel: one result."""
    Y, V = batch(datasets())
    r = pool_many(Y, V, method=method, test="knha")
    assert_same(r, numpy_path(lambda: pool_many(Y, V, method=method, test="knha"), monkeypatch))
    assert set(np.unique(r.k)) == {2, 3, 4, 6}
    # the kernel took every full-width row and flagged exactly the padded ones
    flagged = _compiled.pool_rows(Y, V, method, ("tau2",))["fallback"]
    assert np.array_equal(flagged, np.isnan(Y).any(axis=1)) and not flagged.all()


@pytest.mark.parametrize("method", ("DL", "REML", "PM", "FE"))
def test_many_studies(method, monkeypatch):
    """k = 80: past the kernel's 32-row blocks (k <= 64) and the 8-study log products.

    When one row is left in the numpy engine's Newton iteration its (1, k) array is contiguous
    and numpy sums it pairwise (for k >= 8), so its sums differ from the kernel's left-to-right
    ones at the rounding level and the iteration may stop one step earlier or later."""
    rng = np.random.default_rng(80)
    V = np.exp(rng.uniform(np.log(1e-3), np.log(10), (37, 80)))
    Y = rng.normal(0.1, np.sqrt(V + 0.2))

    def run():
        return pool_many(Y, V, method=method, test="knha", tau2=0.3 if method == "FE" else None)
    assert_same(run(), numpy_path(run, monkeypatch), iteration_slack=1)


def test_k1_and_fixed_tau2(monkeypatch):
    Y, V = np.array([[0.3], [-0.1]]), np.array([[0.04], [0.5]])
    for method in ("FE", "REML", "DL"):
        def run():
            return pool_many(Y, V, method=method, test="knha")
        assert_same(run(), numpy_path(run, monkeypatch))
    Y, V = batch(datasets(), 6)
    fixed = np.linspace(0, 2, Y.shape[0])
    for tau2 in (0.07, fixed):
        def run():
            return pool_many(Y, V, method="REML", test="adhoc", tau2=tau2)
        assert_same(run(), numpy_path(run, monkeypatch))


def test_multimodal_rows_have_two_maxima_and_both_paths_take_the_global_one(monkeypatch):
    for y, v in MULTIMODAL:
        Y0, V0, mask, k = estimators.prepare(np.array([y]), np.array([v]))
        U = estimators._upper_bound(Y0, V0, mask, k)[0]
        g = np.concatenate([[0.0], np.geomspace(1e-9 * U, U, 3000)])
        n = g.size
        ll = estimators._loglik("REML", np.repeat(Y0, n, 0), np.repeat(V0, n, 0),
                                np.repeat(mask, n, 0), g)
        peaks = ((ll[1:-1] > ll[:-2]) & (ll[1:-1] > ll[2:])).sum() + (ll[0] > ll[1])
        assert peaks >= 2
        r = pool_many([y], [v], method="REML")
        assert_same(r, numpy_path(lambda: pool_many([y], [v], method="REML"), monkeypatch))
        best = estimators._loglik("REML", Y0, V0, mask, r.tau2)[0]
        assert best >= ll.max() - 1e-12 * abs(ll.max())


def test_loader_gives_none_without_a_usable_library(monkeypatch, tmp_path):
    """No built module, or a file that is not a shared library: the numpy engine is used."""
    assert _compiled._load() is not None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert _compiled._load() is None
    bad = tmp_path / "_kernel.so"
    bad.write_text("not a shared library")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(origin=str(bad)))
    assert _compiled._load() is None
    monkeypatch.setattr(_compiled, "LIB", None)
    assert _compiled.pool_rows(np.ones((2, 3)), np.ones((2, 3)), "DL", ("tau2",)) is None


def test_bad_values_raise_the_numpy_engines_errors():
    with pytest.raises(ValueError, match="vi must be > 0"):
        pool_many([[0.1, 0.2]], [[0.1, 0.0]])
    with pytest.raises(ValueError, match="missing \\(NaN\\) in the same places"):
        pool_many([[0.1, np.nan]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="vi must be > 0"):
        fit_many([[0.1, 0.2]], [[0.1, -1.0]], method="DL")


@pytest.mark.parametrize("method", METHODS)
def test_fit_many_is_pool_manys_three_fields(method, monkeypatch):
    Y, V = batch(datasets())       # ragged: the padded rows take pool_many's path
    full = pool_many(Y, V, method=method, tau2_ci=False)
    for fit in (fit_many(Y, V, method=method), numpy_path(lambda: fit_many(Y, V, method=method),
                                                          monkeypatch)):
        for got, want in zip(fit, (full.tau2, full.estimate, full.se)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


CASES = [pytest.param(fx, fit, id=f"{fx['dataset']}-{fit['method']}-{fit['test']}-{fit['level']:g}")
         for fx in cf.FIXTURES for fit in fx["fits"]]
NUMERIC_KEYS = ("estimate", "se", "stat", "df", "pvalue", "ci_lower", "ci_upper", "tau2", "tau2_se",
                "tau2_ci_lower", "tau2_ci_upper", "tau", "i2", "i2_ci_lower", "i2_ci_upper", "h2",
                "h2_ci_lower", "h2_ci_upper", "q", "q_pvalue", "pi_lower", "pi_upper", "weights")


@pytest.mark.parametrize("fx, fit", CASES)
def test_kernel_path_matches_metafor(fx, fit):
    """The metafor fixtures through ``pool_many`` (``pool`` takes the plain-float path)."""
    r = pool_many([fx["yi"]], [fx["vi"]], method=fit["method"], test=fit["test"],
                  level=fit["level"]).row(0)
    got = {key: getattr(r, key) for key in NUMERIC_KEYS}
    got["weights"] = list(r.weights)
    bad = cf.mismatches(got, fit["result"], NUMERIC_KEYS)
    assert not bad, f"{fit['r_call']}:\n  " + "\n  ".join(bad)
    assert r.k == fit["result"]["k"] and bool(r.converged) and math.isfinite(r.estimate)


@pytest.mark.parametrize("method", METHODS)
def test_interval_bounds_many_is_pool_manys_four_bounds_on_both_paths(method, monkeypatch):
    """interval_bounds_many (one fit, every test; no p-values, Q, I^2 or weights) gives exactly
    pool_many's ci_lower, ci_upper, pi_lower, pi_upper for each test and PI convention, on the
    kernel and on the numpy path, ragged batches included (padded rows take the numpy engine)."""
    from metaanalysis.pooling import interval_bounds_many

    Y, V = batch(datasets())
    for pi in ("metafor", "riley"):
        for engine in ("kernel", "numpy"):
            def run():
                return (interval_bounds_many(Y, V, method=method, tests=TESTS, level=0.9, pi=pi),
                        {t: pool_many(Y, V, method=method, test=t, level=0.9, pi=pi, tau2_ci=False) for t in TESTS})
            got, full = run() if engine == "kernel" else numpy_path(run, monkeypatch)
            assert list(got) == list(TESTS)
            for t in TESTS:
                want = (full[t].ci_lower, full[t].ci_upper, full[t].pi_lower, full[t].pi_upper)
                for g, w in zip(got[t], want):
                    assert np.array_equal(g, w, equal_nan=True), (method, pi, engine, t)
