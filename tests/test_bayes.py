"""metaanalysis.bayesian.bayes against an independent 30-digit quadrature, plus closed-form and API checks.

Reference values: ``tests/reference/fixtures/bayes/*.json``, written by
``tests/reference/make_bayes_fixtures.py`` (mpmath 1.3.0 at 30 digits, mpmath.quad over τ, Newton
quantiles; see its docstring). Neither mpmath nor R is needed here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from metaanalysis import bayes as bayes_lazy
from metaanalysis import vocab
from metaanalysis.bayesian import BayesResult, bayes, bayes_many, central_intervals_many, tau_prior_median
from metaanalysis.vocab import BayesNote

FIXTURE_DIR = Path(__file__).parent / "reference" / "fixtures" / "bayes"
#: The brief's accuracy target: 1e-6 absolute on every output.
ATOL = 1e-6
_SPECIAL = {"Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
SCALARS = ("mu_median", "mu_mean", "mu_sd", "mu_ci_lower", "mu_ci_upper", "mu_hpd_lower", "mu_hpd_upper",
           "tau_median", "tau_ci_lower", "tau_ci_upper", "pred_lower", "pred_upper")


def _decode(x):
    if isinstance(x, str):
        return _SPECIAL[x]
    if isinstance(x, list):
        return [_decode(e) for e in x]
    return x


def _load() -> list[dict]:
    docs = []
    for path in sorted(FIXTURE_DIR.glob("*.json")):
        with open(path, encoding="utf-8") as fh:
            docs.append(json.load(fh))
    return docs


FIXTURES = _load()
CASES = [(d, c) for d in FIXTURES for c in d["cases"]]


def _case_id(dc) -> str:
    d, c = dc
    mu = "flat" if c["mu_prior"] is None else "normal"
    return f"{d['dataset']}-{c['tau_prior']}{c['tau_scale']}-{mu}-{c['level']}"


def _run(d: dict, c: dict) -> BayesResult:
    scale = c["tau_scale"] if c["tau_prior"] == "lognormal" else c["tau_scale"][0]
    return bayes(d["yi"], d["vi"], tau_prior=c["tau_prior"], tau_scale=scale, mu_prior=c["mu_prior"],
                 level=c["level"])


def _same(actual, expected) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    if math.isinf(expected):
        return actual == expected
    return math.isfinite(actual) and abs(actual - expected) <= ATOL


# --------------------------------------------------------------------------------------------
# against the independent quadrature
# --------------------------------------------------------------------------------------------


def test_fixtures_cover_the_required_designs():
    """k = 2, 3, 5, 10 and 30, the shipped denosumab SRE trials, every τ prior, both μ priors."""
    assert {d["k"] for d in FIXTURES} >= {2, 3, 5, 10, 30}
    assert "denosumab_sre" in {d["dataset"] for d in FIXTURES}
    for d in FIXTURES:
        assert {c["tau_prior"] for c in d["cases"]} == set(vocab.TAU_PRIORS)
        assert {c["mu_prior"] is None for c in d["cases"]} == {True, False}
        for c in d["cases"]:   # the reference's own error estimates are far below the tolerance
            assert c["reference_checks"]["quad_error"] < 1e-20
            assert c["reference_checks"]["newton_step"] < 1e-20
            assert c["reference_checks"]["marginal_likelihood_check"] < 1e-20
            assert c["reference_checks"]["subdivision_check"] < 1e-20


@pytest.mark.parametrize("dc", CASES, ids=[_case_id(dc) for dc in CASES])
def test_matches_independent_quadrature(dc):
    d, c = dc
    r = _run(d, c)
    exp = c["result"]
    bad = [f"{key}: got {getattr(r, key)!r}, reference {_decode(exp[key])!r}"
           for key in SCALARS if not _same(getattr(r, key), _decode(exp[key]))]
    for key in ("theta_mean", "theta_sd"):
        got, want = getattr(r, key), _decode(exp[key])
        assert len(got) == len(want) == d["k"]
        bad += [f"{key}[{i}]: got {a!r}, reference {e!r}" for i, (a, e) in enumerate(zip(got, want))
                if not _same(a, e)]
    pb = exp["prob_below"]
    bad += [f"prob_below({x}): got {r.prob_below(x)!r}, reference {p!r}"
            for x, p in zip(pb["x"], _decode(pb["p"])) if not _same(r.prob_below(x), p)]
    assert not bad, "\n".join(bad)


def test_missing_moments_are_flagged_not_invented():
    """k = 2, half-Cauchy, flat μ: E μ² = ∞ (fixture: "Inf", tail exponent -1); a normal μ prior
    restores every moment."""
    d = next(d for d in FIXTURES if d["k"] == 2)
    c = next(c for c in d["cases"] if c["tau_prior"] == "halfcauchy" and c["mu_prior"] is None)
    assert c["result"]["mu_sd"] == "Inf"
    assert c["reference_checks"]["second_moment_tail_exponent"] == pytest.approx(-1.0, abs=1e-6)
    r = _run(d, c)
    assert r.mu_sd == math.inf and r.notes == (BayesNote.MU_SD_INFINITE,)
    assert math.isfinite(r.mu_mean) and math.isfinite(r.mu_ci_upper)
    r = bayes(d["yi"], d["vi"], "halfcauchy", 0.5, mu_prior=(0.0, 10.0))
    assert math.isfinite(r.mu_sd) and r.notes == ()
    for prior, scale in (("halfnormal", 0.5), ("lognormal", (-2.56, 1.74)), ("uniform", 2.0)):
        assert bayes(d["yi"], d["vi"], prior, scale).notes == ()


def test_denosumab_fixture_is_the_registry():
    """The SRE fixture's yi/vi are what the package's effects table makes of trials/registry.csv."""
    from metaanalysis.registry import effects_table, load_registry

    d = next(d for d in FIXTURES if d["dataset"] == "denosumab_sre")
    eff = effects_table(load_registry(Path(__file__).parent.parent / "trials" / "registry.csv"))
    # the three trials' rows (the published integrated analysis, DMABZA-SRE-2012-POOLED, is a check, not a trial)
    rows = eff[eff["row_id"].str.contains("-SRE-") & ~eff["row_id"].str.endswith("-POOLED")]
    assert rows["row_id"].tolist() == ["ZABREAST-SRE-2010", "ZACRPC-SRE-2011", "ZASOLID-SRE-2011"]
    np.testing.assert_allclose(rows["yi"], d["yi"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(rows["vi"], d["vi"], rtol=1e-13)


def test_issue_12_numbers():
    """Issue #12: SRE vs zoledronic acid, half-normal(0.5) prior: HR 0.83 (0.67-1.02)."""
    d = next(d for d in FIXTURES if d["dataset"] == "denosumab_sre")
    r = bayes(d["yi"], d["vi"], "halfnormal", 0.5)
    assert [round(math.exp(x), 2) for x in (r.mu_median, r.mu_ci_lower, r.mu_ci_upper)] == [0.83, 0.67, 1.02]


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior,scale,median", [
    ("halfnormal", 0.5, 0.5 * 0.6744897501960817),      # σ Φ⁻¹(3/4)
    ("halfcauchy", 0.3, 0.3),                           # γ
    ("lognormal", (-2.56, 1.74), math.exp(-2.56 / 2)),  # exp(m/2)
    ("uniform", 2.0, 1.0),                              # A/2
])
def test_single_study_tau_posterior_is_the_prior(prior, scale, median):
    """k = 1, flat μ: the likelihood does not depend on τ, so τ | y is the prior and μ | y is
    symmetric about y."""
    r = bayes([0.3], [0.04], prior, scale)
    assert r.tau_median == pytest.approx(median, abs=1e-9)
    assert r.mu_median == pytest.approx(0.3, abs=1e-9)
    assert r.mu_ci_lower + r.mu_ci_upper == pytest.approx(0.6, abs=1e-9)
    assert r.mu_hpd_lower == pytest.approx(r.mu_ci_lower, abs=1e-7)
    assert r.prob_below(0.3) == pytest.approx(0.5, abs=1e-12)
    if prior == "halfcauchy":
        assert math.isnan(r.mu_mean) and math.isnan(r.mu_sd)
        assert set(r.notes) == {BayesNote.MU_MEAN_UNDEFINED, BayesNote.MU_SD_INFINITE}
    else:
        assert r.mu_mean == pytest.approx(0.3, abs=1e-9) and r.notes == ()


def test_identical_studies_give_a_symmetric_posterior():
    """Equal yi and vi: μ | y is symmetric about y, so mean = median = y and HPD = central CI."""
    r = bayes([-0.2] * 4, [0.03] * 4, "halfcauchy", 0.5)
    assert r.mu_mean == pytest.approx(-0.2, abs=1e-12) and r.mu_median == pytest.approx(-0.2, abs=1e-12)
    assert r.mu_hpd_lower == pytest.approx(r.mu_ci_lower, abs=1e-9)
    assert r.mu_hpd_upper == pytest.approx(r.mu_ci_upper, abs=1e-9)
    assert r.theta_mean == pytest.approx([-0.2] * 4, abs=1e-12)


@pytest.mark.parametrize("prior,scale", [("halfnormal", 0.5), ("halfcauchy", 0.3), ("uniform", 1.5)])
def test_location_scale_equivariance(prior, scale):
    """y -> a + b·y, v -> b²·v, τ scale -> b·scale (flat μ): every μ, θ and prediction summary
    maps by x -> a + b·x and every τ summary by x -> b·x (a check independent of the fixtures)."""
    y, v, a, b = np.array([0.3, -0.1, 0.25, 0.6]), np.array([0.04, 0.02, 0.09, 0.05]), 1.7, 3.0
    r0, r1 = bayes(y, v, prior, scale), bayes(a + b * y, b * b * v, prior, b * scale)
    for key in ("mu_median", "mu_mean", "mu_ci_lower", "mu_ci_upper", "mu_hpd_lower", "mu_hpd_upper",
                "pred_lower", "pred_upper"):
        assert getattr(r1, key) == pytest.approx(a + b * getattr(r0, key), abs=1e-9), key
    for key in ("mu_sd", "tau_median", "tau_ci_lower", "tau_ci_upper"):
        assert getattr(r1, key) == pytest.approx(b * getattr(r0, key), abs=1e-9), key
    np.testing.assert_allclose(r1.theta_mean, a + b * np.array(r0.theta_mean), atol=1e-9)
    np.testing.assert_allclose(r1.theta_sd, b * np.array(r0.theta_sd), atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_invariants_on_awkward_data(seed):
    """Variances spanning 1e-6 to 1e2, effects far apart, every prior: the summaries stay
    ordered, finite and consistent with the posterior CDF."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    vi = 10.0 ** rng.uniform(-6, 2, k)
    yi = rng.normal(0, 3, k)
    for prior, scale in (("halfnormal", 0.5), ("halfcauchy", 2.0), ("lognormal", (-2.56, 1.74)), ("uniform", 5.0)):
        r = bayes(yi, vi, prior, scale, level=0.9)
        assert r.mu_ci_lower < r.mu_median < r.mu_ci_upper
        assert r.mu_hpd_upper - r.mu_hpd_lower <= r.mu_ci_upper - r.mu_ci_lower + 1e-9
        assert r.pred_lower <= r.mu_ci_lower + 1e-9 and r.mu_ci_upper <= r.pred_upper + 1e-9
        assert 0 < r.tau_ci_lower < r.tau_median < r.tau_ci_upper
        np.testing.assert_allclose(r.prob_below([r.mu_ci_lower, r.mu_ci_upper]), [0.05, 0.95], atol=1e-9)
        assert all(math.isfinite(x) and x > 0 for x in r.theta_sd)


def test_uniform_tau_ci_upper_within_support():
    r = bayes([0.1, -0.4, 0.6], [0.01, 0.02, 0.03], "uniform", 0.3)
    assert 0 < r.tau_ci_lower < r.tau_median < r.tau_ci_upper < 0.3


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------


def test_result_is_frozen_and_to_dict_is_plain():
    r = bayes([0.1, 0.3, -0.2], [0.02, 0.05, 0.04])
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.mu_mean = 0.0
    out = r.to_dict()
    assert set(SCALARS) <= set(out) and "_mixture" not in out
    json.dumps(out)
    assert out["theta_mean"] == list(r.theta_mean) and out["tau_scale"] == [0.5]
    assert bayes_lazy is bayes


def test_package_attribute_stays_the_function():
    """The module is ``metaanalysis.bayesian`` (not ``bayes``) so that importing it cannot replace
    the package attribute ``metaanalysis.bayes`` with a module."""
    import importlib

    import metaanalysis

    importlib.import_module("metaanalysis.bayesian")
    assert metaanalysis.bayes is bayes and callable(metaanalysis.bayes)


def test_prob_below_and_level_forms():
    y, v = [0.1, 0.3, -0.2], [0.02, 0.05, 0.04]
    r = bayes(y, v, level=95)
    assert r.level == 0.95 and r == bayes(y, v, level=0.95)
    xs = np.array([r.mu_ci_lower, r.mu_median, r.mu_ci_upper])
    np.testing.assert_allclose(r.prob_below(xs), [0.025, 0.5, 0.975], atol=1e-10)
    assert r.prob_below(r.mu_hpd_upper) - r.prob_below(r.mu_hpd_lower) == pytest.approx(0.95, abs=1e-10)
    assert r.mu_hpd_upper - r.mu_hpd_lower <= r.mu_ci_upper - r.mu_ci_lower


def test_bayes_many_rows_equal_bayes():
    Y = np.array([[0.1, 0.3, -0.2, np.nan], [0.5, np.nan, 0.2, 0.0], [-0.1, 0.2, np.nan, np.nan]])
    V = np.array([[0.02, 0.05, 0.04, np.nan], [0.1, 0.1, 0.03, 0.06], [0.01, 0.02, 0.5, np.nan]])
    rows = bayes_many(Y, V, tau_prior="halfcauchy", tau_scale=0.3, mu_prior=(0.0, 2.0), level=0.9)
    for i, r in enumerate(rows):
        ok = np.isfinite(Y[i]) & np.isfinite(V[i])
        want = bayes(Y[i][ok], V[i][ok], "halfcauchy", 0.3, (0.0, 2.0), 0.9)
        assert r.to_dict() == want.to_dict()
    with pytest.raises(ValueError, match="row 1"):
        bayes_many([[0.1], [np.nan]], [[0.1], [0.1]])


@pytest.mark.parametrize("kwargs,match", [
    ({"tau_prior": "cauchy"}, "tau_prior"),
    ({"tau_prior": "lognormal", "tau_scale": 0.5}, r"\(mean, sd\)"),
    ({"tau_scale": 0.0}, "> 0"),
    ({"mu_prior": (0.0, 0.0)}, "sd > 0"),
    ({"mu_prior": 3.0}, "mu_prior"),
    ({"level": 1.5}, "level"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bayes([0.1, 0.2], [0.01, 0.02], **kwargs)


@pytest.mark.parametrize("yi,vi", [([], []), ([0.1], [0.0]), ([0.1, np.nan], [0.1, 0.1]), ([0.1], [0.1, 0.2])])
def test_bad_data(yi, vi):
    with pytest.raises(ValueError):
        bayes(yi, vi)


# --------------------------------------------------------------------------------------------
# central_intervals_many: the fast central-interval path of the coverage simulations
# --------------------------------------------------------------------------------------------

#: The bound the fast path is held to against bayes(): its rule is accepted at a looser
#: tolerance and its Newton steps stop at 1e-6, so the bound has room; the worst difference
#: measured on these designs is 5e-11. Far below what coverage counting needs: the Monte-Carlo
#: SE of a 95% coverage at 10,000 replicates is 0.0022.
FAST_ATOL = 1e-5
FAST_PRIORS = [("halfnormal", 0.5, None), ("halfnormal", 0.1, None), ("halfcauchy", 0.5, None),
               ("lognormal", (-2.56, 1.74), None), ("uniform", 2.0, None), ("halfnormal", 0.5, (0.0, 2.0))]
FAST_DESIGNS = {2: [0.0139, 0.0077], 3: [0.0139, 0.0077, 0.0119], 8: list(np.geomspace(0.005, 0.3, 8))}


@pytest.mark.parametrize("prior,scale,mu_prior", FAST_PRIORS, ids=lambda x: str(x))
@pytest.mark.parametrize("k", sorted(FAST_DESIGNS))
def test_central_intervals_many_match_bayes(prior, scale, mu_prior, k):
    """Simulated datasets of one design at tau2 from 0 to far beyond the prior (the coverage grid's
    range), location 0.3; reference: the exact bayes() on each row."""
    vi = np.array(FAST_DESIGNS[k])
    rng = np.random.default_rng(20261201 + k)
    Y = np.vstack([rng.standard_normal((12, k)) * np.sqrt(vi + t2) + 0.3 for t2 in (0.0, 0.05, 0.5, 4.0)])
    V = np.tile(vi, (len(Y), 1))
    lower, upper = central_intervals_many(Y, V, tau_prior=prior, tau_scale=scale, mu_prior=mu_prior)
    exact = bayes_many(Y, V, tau_prior=prior, tau_scale=scale, mu_prior=mu_prior)
    assert np.abs(lower - [r.mu_ci_lower for r in exact]).max() <= FAST_ATOL
    assert np.abs(upper - [r.mu_ci_upper for r in exact]).max() <= FAST_ATOL


def test_central_intervals_many_level_and_equivariance():
    Y = np.array([[0.1, 0.4, -0.2], [1.0, 0.2, 0.5]])
    V = np.array([[0.02, 0.05, 0.04], [0.1, 0.03, 0.06]])
    lo90, hi90 = central_intervals_many(Y, V, level=90)
    want = bayes_many(Y, V, level=0.9)
    assert np.allclose(lo90, [r.mu_ci_lower for r in want], atol=FAST_ATOL, rtol=0)
    assert np.allclose(hi90, [r.mu_ci_upper for r in want], atol=FAST_ATOL, rtol=0)
    # a flat prior on mu: shifting the data shifts the interval
    lo, hi = central_intervals_many(Y + 5.0, V, level=0.9)
    assert np.allclose(lo - 5.0, lo90, atol=1e-9, rtol=0) and np.allclose(hi - 5.0, hi90, atol=1e-9, rtol=0)


def test_central_intervals_many_bad_input():
    with pytest.raises(ValueError, match="no NaN padding"):
        central_intervals_many([[0.1, np.nan]], [[0.1, 0.1]])
    with pytest.raises(ValueError, match="same"):
        central_intervals_many([[0.1, 0.2]], [[0.1]])
    with pytest.raises(ValueError, match="tau_prior"):
        central_intervals_many([[0.1, 0.2]], [[0.1, 0.1]], tau_prior="cauchy")


#: Designs of the common-variance path (every row the same vi, as in a coverage simulation):
#: k = 2, sampling variances five decades apart, and k = 13.
COMMON_DESIGNS = {"k2": [0.0139, 0.0077], "ratio1e5": [1e-4, 10.0, 0.05],
                  "k13": list(np.geomspace(0.005, 0.3, 13))}


@pytest.mark.parametrize("prior,scale,mu_prior", FAST_PRIORS, ids=lambda x: str(x))
@pytest.mark.parametrize("design", sorted(COMMON_DESIGNS))
def test_common_variance_path_matches_bayes(prior, scale, mu_prior, design):
    """Rows sharing their variances take the shared-node path (rules per group of posterior medians,
    nodes near tau = 0 merged); tau2 from 0 to 25 (far beyond every prior here), the uniform prior's
    tanh-sinh rule and a normal prior on mu included. Reference: the exact bayes() on each row."""
    vi = np.array(COMMON_DESIGNS[design])
    rng = np.random.default_rng(20261202 + vi.size)
    Y = np.vstack([rng.standard_normal((8, vi.size)) * np.sqrt(vi + t2) - 0.2 for t2 in (0.0, 0.01, 0.5, 4.0, 25.0)])
    V = np.tile(vi, (len(Y), 1))
    lower, upper = central_intervals_many(Y, V, tau_prior=prior, tau_scale=scale, mu_prior=mu_prior)
    exact = bayes_many(Y, V, tau_prior=prior, tau_scale=scale, mu_prior=mu_prior)
    assert np.abs(lower - [r.mu_ci_lower for r in exact]).max() <= FAST_ATOL
    assert np.abs(upper - [r.mu_ci_upper for r in exact]).max() <= FAST_ATOL


@pytest.mark.parametrize("prior,scale,mu_prior", FAST_PRIORS, ids=lambda x: str(x))
def test_common_variance_path_equals_the_per_row_path(prior, scale, mu_prior):
    """The same rows through both paths: alone (all rows share vi: shared nodes) and with one extra
    row of other variances (per-row nodes, no merging). Both are held to bayes() at 1e-5; between
    them the ends agree to 1e-8 (measured: 2e-11)."""
    vi = np.array([0.02, 0.005, 0.3, 0.04])
    rng = np.random.default_rng(7)
    Y = np.vstack([rng.standard_normal((50, 4)) * np.sqrt(vi + t2) for t2 in (0.0, 0.1, 2.0)])
    common = central_intervals_many(Y, np.tile(vi, (len(Y), 1)), tau_prior=prior, tau_scale=scale,
                                    mu_prior=mu_prior)
    mixed = central_intervals_many(np.vstack([Y, [[0.1, 0.2, 0.3, 0.4]]]),
                                   np.vstack([np.tile(vi, (len(Y), 1)), [[0.1, 0.1, 0.1, 0.1]]]),
                                   tau_prior=prior, tau_scale=scale, mu_prior=mu_prior)
    for a, b in zip(common, mixed):
        assert np.abs(a - b[:-1]).max() <= 1e-8


def test_merging_the_nodes_near_zero_keeps_the_cdf():
    """_merge_near_zero replaces the nodes with tau2 <= 1e-8 min(vi) by two moment-matched normals (one
    per parity). On data whose tau posterior has mass near 0 (k = 2, identical and close studies),
    where a dozen or more of those nodes each carry more mass than the pruning threshold (so each
    would cost a normal CDF per Newton step), the mixture CDF of mu, and that of every other column
    (the rule of twice the step, the accuracy check), stay within 1e-14 of the unmerged ones."""
    from scipy import special

    from metaanalysis import bayesian

    v = np.array([0.0139, 0.0077])
    Y = np.array([[0.0, 0.0], [-0.01, 0.01], [-0.3, 0.3]])
    mass, mean, sd, tau = bayesian._common_rule(Y, v, "halfnormal", (0.5,), None, 0.05, 1.0 / 16.0)
    merged = bayesian._merge_near_zero(mass, mean, sd, tau, float(v.min()))
    cut = mass.shape[1] - merged[0].shape[1] + 2
    assert (mass[:2, :cut] > bayesian._FAST_PRUNE).sum(axis=1).min() >= 12
    assert np.allclose(merged[0].sum(axis=1), 1.0, rtol=0, atol=1e-15)

    def cdf(x, m, mu, s):
        return (m * special.ndtr((x - mu) / s)).sum(axis=1) / m.sum(axis=1)

    for every in (1, 2):
        full = (mass[:, ::every], mean[:, ::every], np.broadcast_to(sd, mass.shape)[:, ::every])
        part = tuple(a[:, ::every] for a in merged)
        for x in (-0.5, -0.2, -0.05, 0.0, 0.05, 0.2, 0.5):
            assert np.abs(cdf(x, *full) - cdf(x, *part)).max() <= 1e-14


@pytest.mark.parametrize("prior,scale", [("halfnormal", 0.5), ("halfcauchy", 0.5)])
@pytest.mark.parametrize("vi", [[0.0139, 0.0077], [0.0139, 0.0077, 0.0119, 0.2]])
def test_central_interval_covers_at_the_level_over_its_prior(prior, scale, vi):
    """Calibration, exact by a short derivation: with tau drawn from the prior and y ~ N(mu 1, v + tau2),
    e = y - mu 1 has a density g free of mu (the tau prior integrated out). With a flat prior on mu the
    posterior CDF at the true mu is F = int_{t >= r} g(a + t 1) dt / int g(a + t 1) dt, where
    e = a + r 1 splits e into its mean r and configuration a; given a, r has density proportional to
    g(a + r 1), so F is that conditional distribution's survival function at r: uniform. Each tail is
    missed with probability exactly (1 - level)/2 whatever the design; checked within 3.5
    Monte-Carlo SEs (fixed seed)."""
    vi = np.asarray(vi)
    n = 10_000
    rng = np.random.Generator(np.random.PCG64(20261201))
    tau = np.abs(rng.standard_normal(n)) * scale if prior == "halfnormal" \
        else np.abs(rng.standard_cauchy(n)) * scale
    Y = rng.standard_normal((n, vi.size)) * np.sqrt(vi + tau[:, None] ** 2)
    lower, upper = central_intervals_many(Y, np.tile(vi, (n, 1)), tau_prior=prior, tau_scale=scale)
    rates = {0.025: [(lower > 0).mean(), (upper < 0).mean()], 0.95: [((lower <= 0) & (0 <= upper)).mean()]}
    for p, seen in rates.items():
        for rate in seen:
            assert abs(rate - p) <= 3.5 * math.sqrt(p * (1 - p) / n), (rate, p)


def test_tau_prior_median():
    """Medians of the priors (vocab.TAU_PRIORS parametrisations): half-normal σ Φ⁻¹(3/4) (0.6745 σ),
    half-Cauchy γ, log-normal exp(m/2), uniform A/2."""
    assert tau_prior_median("halfnormal", 0.5) == pytest.approx(0.5 * 0.6744897501960817, rel=1e-15)
    assert tau_prior_median("halfcauchy", 0.3) == 0.3
    assert tau_prior_median("lognormal", (-2.56, 1.74)) == pytest.approx(math.exp(-1.28), rel=1e-15)
    assert tau_prior_median("uniform", 2.0) == 1.0


@pytest.mark.parametrize("k", [2, 5, 30])
@pytest.mark.parametrize("prior,scale,mu_prior", [("halfnormal", 0.5, None), ("halfcauchy", 0.3, None),
                                                  ("uniform", 2.0, (0.0, 1.0)), ("lognormal", (-2.56, 1.74), None)],
                         ids=lambda x: str(x))
def test_stacked_quantile_searches_change_no_bit(prior, scale, mu_prior, k):
    """The quantiles of mu, of a new study's theta and of tau are searched as one stacked batch
    per kind (bayesian._stacked, _tau_quantiles); every operation is row-wise, so each equals, bit
    for bit, its own search alone (the reference: one level, one mixture at a time)."""
    from metaanalysis import bayesian

    rng = np.random.default_rng(31 + k)
    V = np.geomspace(0.005, 0.3, k) * rng.uniform(0.5, 2.0, (4, k))
    Y = rng.normal(0.1, np.sqrt(V + np.array([[0.0], [0.02], [0.3], [1.0]])))
    code, params = bayesian._tau_prior_params(prior, scale)
    for rows, rules in bayesian._tau_rules(Y, V, code, params, mu_prior):
        mix = (rules.mass, rules.mean, np.sqrt(rules.var))
        pred = (rules.mass, rules.mean, np.sqrt(rules.var + rules.tau ** 2))
        levels = (0.025, 0.5, 0.975, 0.025, 0.975)
        got = bayesian._stacked(levels, mix, mix, mix, pred, pred)
        for q, p, m in zip(got, levels, (mix, mix, mix, pred, pred)):
            assert np.array_equal(q, bayesian._mix_quantile(p, *m))
        got = bayesian._tau_quantiles((0.5, 0.025, 0.975), rules, Y[rows], V[rows], code, params, mu_prior)
        for q, p in zip(got, (0.5, 0.025, 0.975)):
            assert np.array_equal(q, bayesian._tau_quantiles((p,), rules, Y[rows], V[rows], code, params,
                                                             mu_prior)[0])
