"""Tests of ``metaanalysis.coverage`` (design-specific coverage by simulation).

Sources of the expected values:

* HKSJ exact with equal variances: with vᵢ = v for all i the weights are equal whatever τ̂²
  is, the estimate is ȳ and the HKSJ variance is Σ(yᵢ − ȳ)²/(k(k − 1)), so the statistic is
  exactly t(k − 1) (Hartung & Knapp 2001, Stat Med 20:3875; Sidik & Jonkman 2002, Stat Med
  21:3153). Its coverage is the level for every τ².
* Common effect (FE) with a z interval: its estimate is N(μ, Σwᵢ²(vᵢ + τ²)/(Σwᵢ)²) with
  wᵢ = 1/vᵢ, so its coverage is 2Φ(z·s_FE/s_true) − 1 in closed form (exact at τ² = 0).
* Wald z with few studies under heterogeneity under-covers (IntHout, Ioannidis & Borm 2014,
  BMC Med Res Methodol 14:25: ~80% at k = 3 for large τ²).
* Conditional Monte Carlo (Ross 2013, Simulation, 5th ed., variance reduction by conditioning):
  each replicate counts with P(interval covers μ | residuals) = Φ(u/s) − Φ(l/s), an unbiased
  estimate of the same coverage as the 0/1 count and never more variable (law of total
  variance). Its Monte-Carlo SE is SD/√n (Morris, White & Crowther 2019, Stat Med 38:2074,
  Table 6). Statistical checks use a ±3.5 MCSE window: the seeds are fixed, so a check either
  always passes or always fails; a wrong method misses it by many MCSEs.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from metaanalysis import vocab
from metaanalysis.coverage import (COMMON_EFFECT, ROW_FIELDS, coverage, design_seed, interval_bounds,
                                   simulate)
from metaanalysis.pooling import pool_many

LEVEL = 0.95
WINDOW = 3.5      # MCSEs
VI3 = np.array([0.0139, 0.0077, 0.0119])   # the pooling docstring's three trials (log HR scale)


def _within(row, target):
    """Within 3.5 of the row's own Monte-Carlo SEs (plus rounding) of the exact value."""
    return abs(row.coverage - target) <= WINDOW * row.mcse + 1e-12


def _indicator_mcse(p, n=10_000):
    """The MCSE a 0/1 count of n replicates would have at coverage p."""
    return math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------------------------
# (1) HKSJ exact with equal variances
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [3, 5])
def test_hksj_covers_at_the_level_with_equal_variances(k):
    grid = [0.0, 0.01, 0.1, 1.0]           # 0 to 50 times the within-study variance
    t = coverage(np.full(k, 0.02), grid, tests=("knha",), common_effect=False)
    assert [r.interval for r in t.rows] == ["knha"] * 4 and t.n_sim == 10_000
    for r in t.rows:
        assert 0 < r.mcse < _indicator_mcse(r.coverage)    # conditioning never adds variance
        assert _within(r, LEVEL), (k, r)
    # the statistic is ybar / (s / sqrt(k)), scale-free, and the draws are common to every tau2
    # (y = sqrt(v + tau2) z): the very same replicates are covered at every tau2, and the control
    # variates (scaled quadratic forms, so scale-free too) are the same up to rounding, which the
    # regression on them amplifies (~1e5: strongly correlated controls); 1e-9 is 10^6 times
    # below the MCSE target
    assert max(r.coverage for r in t.rows) - min(r.coverage for r in t.rows) < 1e-9


# ---------------------------------------------------------------------------------------
# (2) common-effect z: exact at tau2 = 0, closed form above
# ---------------------------------------------------------------------------------------

def _fe_exact_coverage(vi, tau2, level=LEVEL):
    w = 1 / vi
    s_fe = math.sqrt(1 / w.sum())
    s_true = math.sqrt((w**2 * (vi + tau2)).sum()) / w.sum()
    return 2 * stats.norm.cdf(stats.norm.isf((1 - level) / 2) * s_fe / s_true) - 1


@pytest.mark.parametrize("vi", [VI3, np.array([0.01, 0.2]), np.linspace(0.005, 0.1, 6)])
def test_common_effect_z_matches_its_closed_form(vi):
    t = coverage(vi, [0.0, 0.005, 0.05], tests=(), common_effect=True)
    at0 = t.get(COMMON_EFFECT, 0.0)
    assert at0.coverage == pytest.approx(LEVEL, abs=1e-12)
    assert at0.mcse < 1e-12
    for r in t.rows:
        # at tau2 = 0 its interval is ybar -+ z s with the true weights and a data-free
        # half-width, so every replicate's conditional probability is the level itself (above);
        # beyond, the FE mean differs from the true-weight mean by a residual term
        assert _within(r, _fe_exact_coverage(vi, r.tau2)), r
        assert r.mcse < 0.5 * _indicator_mcse(r.coverage)
        # its width does not depend on the data: 2 z / sqrt(sum w)
        assert r.mean_width == pytest.approx(2 * 1.959963984540054 / math.sqrt((1 / vi).sum()), rel=1e-12)
        assert r.width_mcse < 1e-12
        assert math.isnan(r.pi_coverage) and math.isnan(r.pi_mcse)   # no PI for the common effect
    assert t.get(COMMON_EFFECT, 0.05).coverage < 0.8                   # and it collapses with tau2


# ---------------------------------------------------------------------------------------
# (3) z under-covers with few studies and large tau2
# ---------------------------------------------------------------------------------------

def test_z_undercovers_at_k3_with_large_tau2():
    t = coverage(VI3, [0.0, 10 * VI3.mean()], tests=("z", "knha"), common_effect=False)
    z_big = t.get("z", t.tau2[1])
    assert z_big.coverage < LEVEL - 0.05                  # IntHout et al. 2014: ~0.80
    assert t.get("z", 0.0).coverage > LEVEL - 0.02        # not an artefact of the simulation
    assert t.get("knha", t.tau2[1]).coverage > z_big.coverage + 0.05


# ---------------------------------------------------------------------------------------
# (4) ad hoc is never narrower than HKSJ
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("tau2", [0.0, 0.01, 0.1])
def test_adhoc_contains_knha_on_every_replicate(tau2):
    Y, _ = simulate(VI3, tau2, n_sim=10_000)
    b = interval_bounds(Y, np.tile(VI3, (Y.shape[0], 1)), tests=("knha", "adhoc"), common_effect=False)
    kn, ah = b["knha"], b["adhoc"]
    assert np.all(ah.lower <= kn.lower) and np.all(kn.upper <= ah.upper)
    assert np.all(ah.upper - ah.lower >= kn.upper - kn.lower)
    narrower = (kn.upper - kn.lower) < (ah.upper - ah.lower)       # q < 1: the floor bites
    assert 0 < narrower.sum() < narrower.size
    t = coverage(VI3, tau2, tests=("knha", "adhoc"), common_effect=False)
    assert t.get("adhoc", tau2).coverage >= t.get("knha", tau2).coverage
    assert t.get("adhoc", tau2).mean_width > t.get("knha", tau2).mean_width


# ---------------------------------------------------------------------------------------
# (5) determinism
# ---------------------------------------------------------------------------------------

_SCRIPT = ("import json; from metaanalysis.coverage import coverage; "
           "print(json.dumps(coverage([0.0139, 0.0077, 0.0119], [0.0, 0.02], n_sim=2000).to_dict(), "
           "sort_keys=True))")


def test_same_inputs_same_table_in_another_process():
    here = coverage(VI3, [0.0, 0.02], n_sim=2000)
    assert here == coverage(VI3, [0.0, 0.02], n_sim=2000)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": "", **_pythonpath()})
    assert json.loads(out.stdout) == json.loads(json.dumps(here.to_dict(), sort_keys=True))


def _pythonpath():
    import os

    return {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}


def test_seed_is_the_design_hash_and_can_be_overridden():
    h = hashlib.sha256(b"metaanalysis.coverage/1" + VI3.astype("<f8").tobytes()
                       + (2000).to_bytes(8, "little"))
    assert design_seed(VI3, 2000) == int.from_bytes(h.digest()[:6], "little") < 2**53
    default = coverage(VI3, [0.02], n_sim=2000)
    assert default.seed == design_seed(VI3, 2000)
    other = coverage(VI3, [0.02], n_sim=2000, seed=1)
    assert other.seed == 1 and other.rows != default.rows
    assert coverage(VI3, [0.02], n_sim=2000, seed=default.seed) == default
    assert coverage(VI3 * 1.01, [0.02], n_sim=2000).seed != default.seed


def test_a_row_does_not_depend_on_the_rest_of_the_grid():
    # common random numbers: the same draws at every tau2 and for every method
    alone = coverage(VI3, [0.05], n_sim=1000)
    in_grid = coverage(VI3, [0.0, 0.05, 0.3], n_sim=1000)
    assert alone.rows == tuple(r for r in in_grid.rows if r.tau2 == 0.05)


# ---------------------------------------------------------------------------------------
# the extra (Bayesian) hook and prediction intervals
# ---------------------------------------------------------------------------------------

def test_extra_method_hook_with_and_without_a_prediction_interval():
    def knha_again(Y, V):
        r = pool_many(Y, V, test="knha", tau2_ci=False)
        return r.ci_lower, r.ci_upper, r.pi_lower, r.pi_upper

    def knha_ci_only(Y, V):
        return knha_again(Y, V)[:2]

    t = coverage(VI3, [0.0, 0.04], n_sim=1000, extra={"again": knha_again, "ci_only": knha_ci_only})
    assert t.intervals == ("z", "knha", "adhoc", "FE", "again", "ci_only")
    for t2 in t.tau2:
        ref = t.get("knha", t2)
        assert {f: getattr(t.get("again", t2), f) for f in ROW_FIELDS if f != "interval"} == \
               {f: getattr(ref, f) for f in ROW_FIELDS if f != "interval"}
        co = t.get("ci_only", t2)
        assert co.coverage == ref.coverage and math.isnan(co.pi_coverage)


@pytest.mark.parametrize("vi", [VI3[:2], VI3, np.linspace(0.005, 0.1, 8)])
def test_conditional_estimate_agrees_with_the_count_and_is_less_variable(vi):
    """The conditional estimator against the plain 0/1 count on the same replicates: equal
    within 3.5 of the count's MCSEs (both estimate the same coverage), and its MCSE never larger."""
    grid = [0.0, 0.02, 0.3]
    t = coverage(vi, grid, seed=11)
    for t2 in grid:
        Y, _ = simulate(vi, t2, n_sim=10_000, seed=11)
        b = interval_bounds(Y, np.tile(vi, (Y.shape[0], 1)))
        for code, bounds in b.items():
            hit = (bounds.lower <= 0) & (0 <= bounds.upper)
            p, row = hit.mean(), t.get(code, t2)
            assert abs(row.coverage - p) <= WINDOW * max(_indicator_mcse(p), 1e-4), (code, t2, row, p)
            assert row.mcse <= max(_indicator_mcse(p), _indicator_mcse(1e-4)), (code, t2)   # floor: one miss


@pytest.mark.parametrize("controls, target", [(True, 0.0004), (False, 0.002)])
def test_rows_stop_at_the_first_stage_that_meets_the_mcse_target(controls, target):
    """With mcse_target, a row uses 1,000, 2,000, 4,000, 8,000 or n_sim replicates: the first
    count whose MCSEs are at most the target, and its numbers are those of a table of that many
    replicates with the same draws (the first rows of the same generator). With control
    variates the shipped target (0.002) is met at 1,000 here, so a smaller one exercises the
    later stages."""
    grid = [0.0, 0.05, 0.3]
    full = coverage(VI3, grid, n_sim=10_000, seed=5, control_variates=controls)
    staged = coverage(VI3, grid, n_sim=10_000, seed=5, mcse_target=target, control_variates=controls)
    assert staged.mcse_target == target and full.mcse_target is None
    assert {r.n_sim for r in full.rows} == {10_000}
    assert {r.n_sim for r in staged.rows} <= {1000, 2000, 4000, 8000, 10_000}
    assert min(r.n_sim for r in staged.rows) < 10_000     # the target saves replicates here
    assert len({r.n_sim for r in staged.rows}) >= 3       # and rows stop at different stages
    for r in staged.rows:
        if r.n_sim < 10_000:
            assert r.mcse <= target and (math.isnan(r.pi_mcse) or r.pi_mcse <= target), r
        prefix = coverage(VI3, [r.tau2], n_sim=r.n_sim, seed=5, control_variates=controls).get(r.interval, r.tau2)
        for f in ROW_FIELDS:
            a, b = getattr(r, f), getattr(prefix, f)
            assert a == b or (isinstance(a, float) and (math.isnan(a) and math.isnan(b)
                                                        or a == pytest.approx(b, rel=1e-12, abs=1e-15))), (f, r)
        if r.n_sim > 1000:      # the stage before did not meet the target
            before = coverage(VI3, [r.tau2], n_sim=r.n_sim // 2, seed=5,
                              control_variates=controls).get(r.interval, r.tau2)
            assert max(before.mcse, 0.0 if math.isnan(before.pi_mcse) else before.pi_mcse) > target


def test_prediction_interval_coverage():
    # at tau2 = 0 the new study's effect is mu, so PI coverage >= CI coverage; Riley's t(k-2)
    # PI does not exist at k = 2
    t = coverage(VI3, [0.0, 0.05], n_sim=2000)
    for code in ("z", "knha", "adhoc"):
        r = t.get(code, 0.0)
        assert r.pi_coverage >= r.coverage and 0 <= r.pi_mcse < 0.02   # adhoc: 1.0 (t(2), q >= 1)
    k2 = coverage(VI3[:2], [0.05], n_sim=500, pi="riley")
    assert all(math.isnan(r.pi_coverage) for r in k2.rows)
    assert all(r.coverage > 0 for r in k2.rows)


# ---------------------------------------------------------------------------------------
# (6) shapes, exports and validation
# ---------------------------------------------------------------------------------------

def test_shapes_and_exports():
    t = coverage(VI3, [0.0, 0.01, 0.1], tests=("KNHA", "z", "knha"), method="reml", level=95, n_sim=500)
    assert t.method == "REML" and t.level == 0.95 and t.pi == "metafor" and t.k == 3
    assert t.intervals == ("knha", "z", COMMON_EFFECT) and len(t.rows) == 9
    assert [r.tau2 for r in t.rows] == [0.0] * 3 + [0.01] * 3 + [0.1] * 3
    f = t.to_frame()
    assert list(f.columns) == list(ROW_FIELDS) and f.shape == (9, len(ROW_FIELDS))
    d = t.to_dict()
    json.dumps(d, allow_nan=False)                       # NaN -> None
    assert d["rows"][2]["interval"] == "FE" and d["rows"][2]["pi_coverage"] is None
    assert d["vi"] == VI3.tolist() and d["tau2"] == [0.0, 0.01, 0.1] and d["n_sim"] == 500
    assert t.rows[0].interval in vocab.TESTS
    with pytest.raises(KeyError):
        t.get("adhoc", 0.0)
    assert coverage(VI3, 0.02, n_sim=100).tau2 == (0.02,)      # a scalar grid


@pytest.mark.parametrize("kwargs, match", [
    ({"vi": [0.01]}, "k >= 2"),
    ({"vi": [[0.01, 0.02]]}, "1-D"),
    ({"vi": [0.01, 0.0]}, "> 0"),
    ({"vi": [0.01, np.nan]}, "finite"),
    ({"tau2": -0.1}, ">= 0"),
    ({"tau2": [0.0, np.nan]}, "finite"),
    ({"tau2": []}, "non-empty"),
    ({"tau2": [[0.0]]}, "1-D"),
    ({"method": "FE"}, "tau2 estimator"),
    ({"method": "XX"}, "method must be one of"),
    ({"tests": ("z", "hksj")}, "test must be one of"),
    ({"level": 1.5}, "level"),
    ({"pi": "nope"}, "pi must be one of"),
    ({"n_sim": 10}, "n_sim"),
    ({"n_sim": 1000.0}, "n_sim"),
    ({"n_sim": True}, "n_sim"),
    ({"seed": -1}, "seed"),
    ({"mcse_target": 0}, "mcse_target"),
    ({"mcse_target": "0.002"}, "mcse_target"),
    ({"mcse_target": True}, "mcse_target"),
    ({"seed": 1.5}, "seed"),
    ({"tests": (), "common_effect": False}, "no interval method"),
    ({"extra": {"Z": lambda Y, V: (Y[:, 0], Y[:, 0])}}, "differ from"),
    ({"extra": {"bayes": 3}}, "callable"),
    ({"extra": {"bayes": lambda Y, V: (Y[:, 0],)}}, r"\(lower, upper\)"),
    ({"extra": {"bayes": lambda Y, V: (Y, Y)}}, "shape"),
])
def test_bad_inputs_are_value_errors(kwargs, match):
    args = {"vi": VI3, "tau2": [0.0, 0.01], "n_sim": 200, **kwargs}
    with pytest.raises(ValueError, match=match):
        coverage(args.pop("vi"), args.pop("tau2"), **args)


# ---------------------------------------------------------------------------------------
# (7) the Bayesian central credible interval (metaanalysis.bayesian.central_intervals_many)
# ---------------------------------------------------------------------------------------

def _bayes_extra(prior="halfnormal", scale=0.5):
    from functools import partial

    from metaanalysis.bayesian import central_intervals_many

    return {vocab.BAYES_INTERVAL: partial(central_intervals_many, tau_prior=prior, tau_scale=scale, level=LEVEL)}


@pytest.mark.parametrize("vi", [VI3[:2], VI3])
def test_bayes_column_counts_what_exact_bayes_counts(vi):
    """The fast path decides 'covered' exactly as bayes() does: on the first 300 replicates of each
    tau2 of an analysis-like grid (0, an estimate, a Q-profile bound, the half-normal(0.5) prior median
    of tau2, and far beyond it) every replicate is covered by both or by neither, and the table's row
    is the fast path's count."""
    from metaanalysis.bayesian import bayes_many, central_intervals_many

    grid = [0.0, 0.01, 0.3, (0.5 * 0.6744897501960817) ** 2, 4.0]
    t = coverage(vi, grid, tests=(), common_effect=False, n_sim=1000, extra=_bayes_extra(),
                 control_variates=False)   # the plain conditional mean, written out below
    assert t.intervals == (vocab.BAYES_INTERVAL,)
    for t2 in grid:
        Y, _ = simulate(vi, t2, n_sim=1000)
        V = np.tile(vi, (1000, 1))
        lo, hi = central_intervals_many(Y, V, tau_prior="halfnormal", tau_scale=0.5)
        w = 1 / (vi + t2)                  # the conditional estimator, written out independently
        ybar, s = Y @ w / w.sum(), math.sqrt(1 / w.sum())
        p = stats.norm.cdf((hi - ybar) / s) - stats.norm.cdf((lo - ybar) / s)
        assert t.get(vocab.BAYES_INTERVAL, t2).coverage == pytest.approx(p.mean(), rel=1e-12)
        exact = bayes_many(Y[:300], V[:300], tau_prior="halfnormal", tau_scale=0.5)
        hit = np.array([r.mu_ci_lower <= 0 <= r.mu_ci_upper for r in exact])
        assert np.array_equal(hit, (lo[:300] <= 0) & (0 <= hi[:300])), t2


def test_bayes_covers_at_least_nominally_at_tau2_zero_and_not_far_beyond_its_prior():
    """Direction checks with k = 2 (a half-normal(0.5) prior on tau): at tau2 = 0 the posterior interval
    allows for heterogeneity there is none of, so it is wider than needed and over-covers; at tau = 2,
    four prior scales out (prior tail probability 2(1 - Phi(4)) = 6e-5), the prior pulls tau down and
    the interval under-covers. Both far beyond 3.5 Monte-Carlo SEs (0.0022 each)."""
    t = coverage(VI3[:2], [0.0, 4.0], tests=(), common_effect=False, extra=_bayes_extra())
    assert t.get(vocab.BAYES_INTERVAL, 0.0).coverage > LEVEL + 3.5 * 0.0022
    assert t.get(vocab.BAYES_INTERVAL, 4.0).coverage < LEVEL - 3.5 * 0.0022


def test_a_stage_without_any_prediction_interval_counts_as_not_covering():
    """Stages are joined per row: if every PI of one stage failed (all NaN) while another stage has
    PIs, the failed stage's replicates count as not covering, as a failed CI does."""
    from metaanalysis.coverage import _concat, _Probabilities

    with_pi = _Probabilities(np.full(3, 0.9), np.full(3, 0.8), np.ones(3))
    without = _Probabilities(np.full(2, 0.9), None, np.ones(2))
    joined = _concat([with_pi, without])
    assert joined.pi.tolist() == [0.8, 0.8, 0.8, 0.0, 0.0] and joined.ci.size == 5
    assert _concat([without, without]).pi is None


# ---------------------------------------------------------------------------------------
# (8) control variates: exact means, unbiased estimates, honest MCSEs, fewer replicates
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("vi, tau2", [(VI3[:2], 0.02), (VI3, 0.0), (VI3, 0.05), (np.geomspace(0.005, 0.3, 8), 0.03)])
def test_control_means_are_the_exact_laplace_transforms(vi, tau2):
    """Each control's exact mean (det(I + 2 D^1/2 M D^1/2)^-1/2 for exp(-y'My), 0 for a Legendre
    polynomial of the chi-square(k - 1) probability transform of Cochran's Q with the true
    weights) against the average over 400,000 simulated meta-analyses of the design: within 4.5
    Monte-Carlo SEs for every control (a wrong mean would bias every adjusted estimate)."""
    from metaanalysis.coverage import _control_values, _forms

    f = _forms(vi, tau2)
    Y, _ = simulate(vi, tau2, n_sim=400_000, seed=3)
    C = _control_values(Y, f)
    assert C.shape == (len(Y), len(f.means))
    se = C.std(axis=0) / math.sqrt(len(C))
    assert np.all(np.abs(C.mean(axis=0) - f.means) <= 4.5 * se + 1e-15), (C.mean(axis=0) - f.means) / se
    # k = 2 (one residual dimension: the three scaled forms are one) and tau2 = 0 (Q with the
    # common-effect weights is Q with the true weights, ell = 0): one form, each distinct rate once
    # (0.25, 0.5, 1, 2, 4 and the pair sums 1.5, 2.5, 3), and the 6 polynomials
    if len(vi) == 2 or tau2 == 0.0:
        assert len(f.means) == 8 + 6
    else:
        assert len(f.means) == 24 + 6


def test_control_variates_are_unbiased_and_their_mcse_is_honest():
    """60 tables of 1,000 replicates (seeds 0-59) against one of 200,000 (seed 999; MCSE ~5e-5):
    the z-scores (estimate - reference) / MCSE have mean ~0 (unbiased: the coefficients of each
    half come from the other half; Nelson 1990) and SD ~1 (the MCSE is honest). Bounds: mean
    within 0.5 (3.9 of its SEs), SD in [0.65, 1.35]."""
    vi, t2 = np.geomspace(0.005, 0.1, 6), 0.05
    ref = coverage(vi, [t2], tests=("z", "knha"), common_effect=False, seed=999, n_sim=200_000)
    z = {}
    for seed in range(60):
        for r in coverage(vi, [t2], tests=("z", "knha"), common_effect=False, seed=seed, n_sim=1000).rows:
            rr = ref.get(r.interval, t2)
            for name, e, se, re, rse in (("ci", r.coverage, r.mcse, rr.coverage, rr.mcse),
                                         ("pi", r.pi_coverage, r.pi_mcse, rr.pi_coverage, rr.pi_mcse)):
                z.setdefault((r.interval, name), []).append((e - re) / math.hypot(se, rse))
    for key, zs in z.items():
        assert abs(np.mean(zs)) < 0.5 and 0.65 < np.std(zs) < 1.35, (key, np.mean(zs), np.std(zs))
    plain = coverage(vi, [t2], tests=("z", "knha"), common_effect=False, seed=999, n_sim=200_000,
                     control_variates=False)
    for r in plain.rows:   # and the large tables agree with and without the controls
        rr = ref.get(r.interval, t2)
        assert abs(r.coverage - rr.coverage) <= 3.5 * math.hypot(r.mcse, rr.mcse)
        assert abs(r.pi_coverage - rr.pi_coverage) <= 3.5 * math.hypot(r.pi_mcse, rr.pi_mcse)


@pytest.mark.parametrize("vi", [VI3[:2], VI3, np.geomspace(0.005, 0.1, 6), np.geomspace(0.005, 0.3, 13)])
def test_control_variates_cut_the_mcse_of_every_random_effects_row(vi):
    """On the same 2,000 replicates, the MCSE with control variates against the plain conditional
    mean's, for the CI and PI of z, knha and adhoc at tau2 = 0.01 and 0.05: at most half of it
    wherever the plain MCSE is not already below 1e-4 (measured: 2.5 to over 100 times
    smaller), so the 0.2-point target is met with ~4 to 10,000 times fewer replicates."""
    kw = dict(common_effect=False, n_sim=2000, seed=21)
    cv, plain = coverage(vi, [0.01, 0.05], **kw), coverage(vi, [0.01, 0.05], control_variates=False, **kw)
    for a, b in zip(cv.rows, plain.rows):
        for se_cv, se_plain in ((a.mcse, b.mcse), (a.pi_mcse, b.pi_mcse)):
            if se_plain > 1e-4:
                assert se_cv <= 0.5 * se_plain, (len(vi), a, b)


def test_tables_do_not_depend_on_the_blas_library_kernel_or_threads():
    """The control variates use numpy's own loops, not BLAS/LAPACK, whose last bits depend on the
    kernel and thread count the environment selects: a table made in a process with another
    OpenBLAS kernel and two threads is the same to the last bit."""
    here = coverage(VI3, [0.0, 0.02], n_sim=2000)
    env = {"PYTHONHASHSEED": "1", "PATH": "", "OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "2",
           **_pythonpath()}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout) == json.loads(json.dumps(here.to_dict(), sort_keys=True))


def test_no_control_variates_below_10_replicates_per_half_per_coefficient():
    """Below 10 replicates per half per coefficient (30 controls + intercept: 620 replicates) the
    regression would be noisy: the plain conditional mean is used; the table records whether
    controls were asked for."""
    small = coverage(VI3, [0.02], n_sim=600)
    plain = coverage(VI3, [0.02], n_sim=600, control_variates=False)
    assert small.rows == plain.rows and small.control_variates and not plain.control_variates
    assert coverage(VI3, [0.02], n_sim=620).rows != coverage(VI3, [0.02], n_sim=620, control_variates=False).rows
    assert coverage(VI3, [0.02], n_sim=620).to_dict()["control_variates"] is True


@pytest.mark.parametrize("vi", [VI3[:2], VI3, np.geomspace(0.005, 0.3, 13)])
def test_control_variates_in_c_and_in_numpy_agree(vi, monkeypatch):
    """The control-variate regression runs in C (_kernel_cv.c) where the kernel is built, else
    in numpy (_ControlFit); their sums run in different orders, and the strongly correlated
    controls amplify that rounding (ridge-conditioned normal equations), so the two agree to
    1e-8 absolute, 10^5 times below the MCSE target, with the same stopping stages."""
    from metaanalysis import _compiled

    assert _compiled.LIB is not None and hasattr(_compiled.LIB, "ma_cv_estimates"), "kernel not built"
    got = coverage(vi, [0.0, 0.02, 0.3], n_sim=10_000, mcse_target=0.002, seed=4)
    with monkeypatch.context() as mp:
        mp.setattr(_compiled, "LIB", None)
        ref = coverage(vi, [0.0, 0.02, 0.3], n_sim=10_000, mcse_target=0.002, seed=4)
    for a, b in zip(got.rows, ref.rows):
        assert a.n_sim == b.n_sim and a.interval == b.interval
        for f in ("coverage", "mcse", "pi_coverage", "pi_mcse", "mean_width", "width_mcse"):
            x, y = getattr(a, f), getattr(b, f)
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-8 * max(1.0, abs(y)), (f, a, b)
