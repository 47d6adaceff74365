"""Property-based tests (hypothesis) of the pooling engine and the effect-size conversions.

The properties are mathematical facts of the models, not numbers from a reference:
inverse-variance weights are percentages summing to 100; a CI is centred on the estimate;
τ² >= 0 and 0 <= I² <= 100 by definition (Higgins & Thompson 2002,
doi:10.1002/sim.1186); every estimator here is a symmetric function of the studies
(order-free), odd in the effects (μ̂(−y) = −μ̂(y), τ̂²(−y) = τ̂²(y)) and scale-equivariant
(y → c·y, v → c²·v gives μ̂ → c·μ̂, τ̂² → c²·τ̂²) — see Viechtbauer 2005,
doi:10.3102/10769986030003261, for the estimators' definitions.

Reproducible in CI: ``derandomize=True``, no deadline, ~200 examples per property.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaanalysis.pooling import METHODS, PI_TYPES, TESTS, pool

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

_y = st.floats(-50, 50, allow_nan=False, allow_infinity=False, allow_subnormal=False)
_v = st.floats(1e-4, 1e2, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def datasets(draw, kmin=1, kmax=30):
    """(yi, vi) with k in kmin..kmax; sometimes all yi identical, sometimes one outlier."""
    k = draw(st.integers(kmin, kmax))
    kind = draw(st.sampled_from(["free", "identical", "outlier"]))
    if kind == "identical":
        yi = [draw(_y)] * k
    else:
        yi = draw(st.lists(_y, min_size=k, max_size=k))
        if kind == "outlier":
            yi[draw(st.integers(0, k - 1))] += draw(st.sampled_from([-1e3, 1e3]))
    vi = draw(st.lists(_v, min_size=k, max_size=k))
    return np.array(yi, dtype=float), np.array(vi, dtype=float)


def _scale(yi, vi):
    """Absolute scales for comparing effect-like and τ²-like quantities."""
    eff = float(np.max(np.abs(yi)) + np.sqrt(np.max(vi)))
    return eff, float(np.max(vi) + np.ptp(yi) ** 2)


def _close(a, b, rel, abs_):
    if a is None or b is None:
        return a is None and b is None
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


# ---------------------------------------------------------------------------------------
# invariants, every method, a drawn test and PI type
# ---------------------------------------------------------------------------------------

@SETTINGS
@given(data=datasets(), test=st.sampled_from(TESTS), pi=st.sampled_from(PI_TYPES),
       level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_invariants_all_methods(data, test, pi, level):
    yi, vi = data
    for method in METHODS:
        r = pool(yi, vi, method=method, test=test, pi=pi, level=level)
        assert r.k == yi.size and len(r.weights) == yi.size
        assert sum(r.weights) == pytest.approx(100, abs=1e-9)
        assert all(w >= 0 for w in r.weights)
        assert r.ci_lower <= r.estimate <= r.ci_upper
        assert r.tau2 >= 0 and r.tau == pytest.approx(math.sqrt(r.tau2), rel=1e-15)
        assert 0 <= r.i2 <= 100
        assert r.se >= 0 and math.isfinite(r.se) and math.isfinite(r.estimate)
        assert math.isfinite(r.q) and r.q >= 0 and 0 <= r.q_pvalue <= 1
        assert 0 <= r.pvalue <= 1 or math.isnan(r.pvalue)
        assert r.converged
        if r.pi_lower is not None:
            assert r.pi_lower <= r.ci_lower and r.ci_upper <= r.pi_upper
        if method != "FE" and yi.size > 1:
            assert 0 <= r.tau2_ci_lower <= r.tau2_ci_upper
        if np.ptp(yi) == 0:
            assert r.tau2 == 0 and r.i2 == 0


@SETTINGS
@given(data=datasets(kmin=2), method=st.sampled_from(METHODS), test=st.sampled_from(TESTS),
       perm_seed=st.integers(0, 2**32 - 1))
def test_permuting_studies_changes_nothing(data, method, test, perm_seed):
    yi, vi = data
    p = np.random.default_rng(perm_seed).permutation(yi.size)
    a = pool(yi, vi, method=method, test=test)
    b = pool(yi[p], vi[p], method=method, test=test)
    eff, t2s = _scale(yi, vi)
    for f in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
        assert _close(getattr(a, f), getattr(b, f), 1e-9, 1e-12 * eff), f
    for f in ("tau2", "tau2_ci_lower", "tau2_ci_upper"):
        assert _close(getattr(a, f), getattr(b, f), 1e-9, 1e-12 * t2s), f
    for f in ("i2", "i2_ci_lower", "i2_ci_upper"):
        assert _close(getattr(a, f), getattr(b, f), 1e-9, 1e-10), f
    assert _close(a.q, b.q, 1e-9, 1e-12 * yi.size)
    assert np.allclose(np.array(a.weights)[p], b.weights, rtol=1e-9, atol=1e-10)


@SETTINGS
@given(data=datasets(), method=st.sampled_from(METHODS), test=st.sampled_from(TESTS))
def test_negating_effects_mirrors_estimate_and_ci(data, method, test):
    yi, vi = data
    a = pool(yi, vi, method=method, test=test)
    b = pool(-yi, vi, method=method, test=test)
    eff, t2s = _scale(yi, vi)
    tol = 1e-12 * eff
    assert _close(b.estimate, -a.estimate, 1e-9, tol)
    assert _close(b.ci_lower, -a.ci_upper, 1e-9, tol)
    assert _close(b.ci_upper, -a.ci_lower, 1e-9, tol)
    assert _close(b.se, a.se, 1e-9, tol)
    assert _close(b.tau2, a.tau2, 1e-9, 1e-12 * t2s)
    if a.pi_lower is not None:
        assert _close(b.pi_lower, -a.pi_upper, 1e-9, tol)


@SETTINGS
@given(data=datasets(), method=st.sampled_from(METHODS), test=st.sampled_from(TESTS),
       c=st.sampled_from([1e-3, 0.1, 0.37, 3.0, 12.5, 1e3]))
def test_scaling_effects_scales_tau2_by_c_squared(data, method, test, c):
    yi, vi = data
    a = pool(yi, vi, method=method, test=test)
    b = pool(yi * c, vi * c * c, method=method, test=test)
    eff, t2s = _scale(yi, vi)
    assert _close(b.tau2, a.tau2 * c * c, 1e-9, 1e-12 * t2s * c * c)
    assert _close(b.estimate, a.estimate * c, 1e-9, 1e-12 * eff * c)
    assert _close(b.se, a.se * c, 1e-9, 1e-12 * eff * c)
    assert _close(b.i2, a.i2, 1e-9, 1e-10)
    assert _close(b.q, a.q, 1e-9, 1e-12 * yi.size)


# ---------------------------------------------------------------------------------------
# effect-size conversions (metaanalysis.effects)
# ---------------------------------------------------------------------------------------

effects = pytest.importorskip("metaanalysis.effects", reason="metaanalysis/effects.py not present")

_any = st.floats(allow_nan=True, allow_infinity=True)
_measure = st.sampled_from(["HR", "OR", "RR", "RD", "MD", "SMD", "PROP", "xyz"])


@SETTINGS
@given(est=_any, lo=_any, hi=_any, level=_any, measure=_measure)
def test_from_ci_raises_only_valueerror(est, lo, hi, level, measure):
    try:
        effects.from_ci(est, lo, hi, level=level, measure=measure)
    except ValueError:
        pass


@SETTINGS
@given(est=_any, p=_any, sided=st.sampled_from([1, 2, 3, 0]), measure=_measure,
       ineq=st.booleans(), dec=st.one_of(st.none(), st.integers(0, 6)))
def test_from_p_raises_only_valueerror(est, p, sided, measure, ineq, dec):
    try:
        effects.from_p(est, p, sided=sided, measure=measure, p_is_inequality=ineq, p_decimals=dec)
    except ValueError:
        pass


_count = st.one_of(st.integers(-3, 10_000), st.floats(allow_nan=True, allow_infinity=True))


@SETTINGS
@given(a=_count, b=_count, c=_count, d=_count, measure=st.sampled_from(["OR", "RR", "RD", "HR"]),
       add_to=st.sampled_from(["only0", "all", "if0all", "none", "bad"]),
       cc=st.sampled_from([0.0, 0.5, 1.0]))
def test_from_2x2_raises_only_valueerror(a, b, c, d, measure, add_to, cc):
    try:
        effects.from_2x2(a, b, c, d, measure=measure, cc=cc, add_to=add_to)
    except ValueError:
        pass


@SETTINGS
@given(a=st.integers(0, 5000), b=st.integers(0, 5000), c=st.integers(0, 5000),
       d=st.integers(0, 5000), measure=st.sampled_from(["OR", "RR", "RD"]))
def test_from_2x2_valid_counts_give_positive_variance(a, b, c, d, measure):
    if a + b == 0 or c + d == 0:                    # an empty arm has no risk: refused
        with pytest.raises(ValueError, match="empty arm"):
            effects.from_2x2(a, b, c, d, measure=measure)
        return
    yi, vi = effects.from_2x2(a, b, c, d, measure=measure)
    double_zero = bool(effects.is_double_zero(a, b, c, d))
    if double_zero and measure != "RD":
        assert np.isnan(yi) and np.isnan(vi)        # dropped, as metafor drop00=TRUE
    else:
        assert np.isfinite(yi)
        if measure == "RD" and ((a == 0 and c == 0) or (b == 0 and d == 0)):
            assert vi >= 0                          # RD of two 0% (or 100%) arms: 0 +- 0
        else:
            assert np.isfinite(vi) and vi > 0


_pos = st.floats(1e-6, 1e6, allow_nan=False, allow_subnormal=False)


@SETTINGS
@given(x=st.lists(_pos, min_size=3, max_size=3, unique=True),
       level=st.floats(0.5, 0.999), measure=st.sampled_from(["HR", "OR", "RR", "RD", "MD", "SMD"]))
def test_from_ci_valid_ci_gives_positive_se(x, level, measure):
    lo, est, hi = sorted(x)
    if measure in ("RD", "MD", "SMD"):
        lo, est, hi = lo - 1e3, est - 1e3, hi - 1e3   # differences may be negative
    yi, vi = effects.from_ci(est, lo, hi, level=level, measure=measure)
    assert np.isfinite(yi) and np.isfinite(vi) and vi > 0
