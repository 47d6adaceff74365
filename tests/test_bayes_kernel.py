"""The C parts of ``central_intervals_many`` (``ma_central_quantiles``, the quantile search,
``ma_common_rule``, the shared-node τ rule, and ``ma_common_median``, the rough pass's centres,
in metaanalysis/_kernel.c, loaded by metaanalysis/_compiled.py) against the numpy code they
replace.

Sources of the expected numbers: the numpy paths of ``bayesian._central_quantiles`` (Newton on
the probit of the mixture CDF, ``bayesian._newton``) and ``bayesian._common_rule`` (BLAS
products), run on the same input by forcing the fallback (``_compiled.LIB = None``, as
tests/test_kernel.py does); scipy.special ``ndtr`` and ``ndtri`` (Cephes), and mpmath's
``ncdf`` at 30 digits, for the kernel's normal CDF and its inverse. Model and rules: Röver 2020, J Stat Softw 93(6), doi:10.18637/jss.v093.i06.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from scipy import special

from metaanalysis import _compiled, bayesian
from metaanalysis.bayesian import central_intervals_many

from kernel_paths import kernel_is_built, numpy_path  # noqa: F401 (kernel_is_built: autouse fixture)

#: The C and numpy searches stop at the same 1e-6 step (error after it ~1e-12); their sums
#: differ in order, so their ends may differ by rounding carried through the last steps.
TOL = 1e-12


def assert_close(got, want):
    """x to TOL times max(1, |x|); gap (a CDF distance) to TOL absolute; NaN where NaN."""
    for a, b, scaled in zip(got, want, (True, False)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(b)
        scale = np.maximum(1.0, np.abs(b[ok])) if scaled else 1.0
        err = np.abs(a[ok] - b[ok]) / scale
        assert err.max(initial=0.0) <= TOL, f"max difference {err.max():.3g}"


def random_mixtures(rng, m, c, kind):
    """(mass, mean, sd) of m mixtures of c normals: spread-out components ("plain"); scale
    mixtures with SDs over four decades and power-law masses, as the posterior of μ under a
    heavy-tailed τ prior ("heavy"); one component carrying all the mass ("single"); most masses
    exactly 0 ("sparse"); components far apart, of SDs from 1e-3 to 10 ("multimodal")."""
    mean = rng.normal(0.0, 1.0, (m, c))
    sd = np.exp(rng.uniform(np.log(0.05), np.log(2.0), (m, c)))
    mass = rng.dirichlet(np.full(c, 0.5), size=m)
    if kind == "heavy":
        sd = np.sort(np.exp(rng.uniform(np.log(1e-2), np.log(1e2), (m, c))), axis=1)
        mean = rng.normal(0.0, 0.05, (m, c)) * sd
        mass = sd ** -rng.uniform(0.5, 1.5, (m, 1))
        mass /= mass.sum(axis=1)[:, None]
    elif kind == "single":
        mass = np.zeros((m, c))
        mass[np.arange(m), 4 * rng.integers(0, (c + 3) // 4, m)] = 1.0   # in the coarse rule
    elif kind == "sparse":
        mass = mass * (rng.random((m, c)) < 0.25)
        mass[:, 0] += 1e-3            # in the coarse and the check rule: neither is empty
        mass /= mass.sum(axis=1)[:, None]
    elif kind == "multimodal":
        sd = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), (m, c)))
        mean = rng.standard_cauchy((m, c)) * 3.0
        mass = rng.dirichlet(np.full(c, 0.2), size=m)
    return mass, mean, sd


@pytest.mark.parametrize("kind", ["plain", "heavy", "single", "sparse"])
@pytest.mark.parametrize("c", [1, 2, 7, 15, 16, 17, 40, 71])
def test_random_mixtures_agree(kind, c, monkeypatch):
    """Both paths of _central_quantiles on random mixtures, below (no coarse pass) and above
    the 16 nodes where the coarse pass starts; levels 0.95 and 0.5."""
    rng = np.random.default_rng(1500 + c)
    mass, mean, sd = random_mixtures(rng, 60, c, kind)
    keep = np.ones(c, dtype=bool)
    for tail in (0.025, 0.25):
        got = bayesian._central_quantiles(tail, mass, mean, sd, keep)
        want = numpy_path(lambda: bayesian._central_quantiles(tail, mass, mean, sd, keep), monkeypatch)
        assert_close(got, want)


def test_kept_columns_of_a_wider_view(monkeypatch):
    """The kernel reads the kept columns of row views of wider arrays in place (as
    _central_batch passes them): the same as the numpy path on the same arguments; the check
    rule is the even columns of all n among those kept."""
    rng = np.random.default_rng(1515)
    mass, mean, sd = random_mixtures(rng, 50, 41, "plain")
    keep = rng.random(38) < 0.7
    mass[:, :38][:, ~keep] = 0.0
    mass /= mass[:, :38].sum(axis=1)[:, None]
    views = (mass[:, :38], mean[:, :38], sd[:, :38])
    got = bayesian._central_quantiles(0.025, *views, keep)
    want = numpy_path(lambda: bayesian._central_quantiles(0.025, *views, keep), monkeypatch)
    assert_close(got, want)


@pytest.mark.filterwarnings("ignore:overflow encountered in divide:RuntimeWarning")  # numpy: g/dg
@pytest.mark.parametrize("c", [17, 40, 71])
def test_multimodal_mixtures_within_the_search_tolerance(c, monkeypatch):
    """Far-apart components of very different widths: the probit of the CDF is far from linear,
    the error left after the last (<= 1e-6) step is up to ~1e-7, and the numpy path itself moves
    by up to 1.5e-11 (x) and 1.3e-9 (gap) when only the order of its sums changes (columns
    permuted within the coarse and check rules; measured 2026-12-01). So here both paths are
    held to the search's own accuracy against a root solved to 1e-15 steps: x to 1e-6 max(1,
    |x|), and their checks agree to a tenth of the 1e-6 acceptance level."""
    rng = np.random.default_rng(1500 + c)
    mass, mean, sd = random_mixtures(rng, 60, c, "multimodal")
    keep = np.ones(c, dtype=bool)
    for tail in (0.025, 0.25):
        got = bayesian._central_quantiles(tail, mass, mean, sd, keep)
        want = numpy_path(lambda: bayesian._central_quantiles(tail, mass, mean, sd, keep), monkeypatch)
        with monkeypatch.context() as mp:
            mp.setattr(bayesian, "_FAST_STEP_TOL", 1e-15)
            root = numpy_path(lambda: bayesian._central_quantiles(tail, mass, mean, sd, keep), monkeypatch)[0]
        for x in (got[0], want[0]):
            assert np.all(np.abs(x - root) <= 1e-6 * np.maximum(1.0, np.abs(root)))
        assert np.abs(got[1] - want[1]).max() <= 1e-7


def test_one_normal_gives_its_quantiles():
    """A single N(mean, sd²): the ends are mean + sd Φ⁻¹(p) (scipy.special.ndtri) to the
    search's 1e-6 step squared, and the check rule (the same normal) is exact."""
    mean, sd = np.array([[0.0], [2.5], [-40.0]]), np.array([[1.0], [0.01], [30.0]])
    x, gap = bayesian._central_quantiles(0.025, np.ones((3, 1)), mean, sd, np.array([True]))
    want = np.concatenate([mean[:, 0] + sd[:, 0] * special.ndtri(0.025),
                           mean[:, 0] + sd[:, 0] * special.ndtri(0.975)])
    assert np.abs(x - want).max() <= 1e-10 * np.abs(want).max()
    assert gap.max() <= 1e-15


def test_normal_cdf_and_inverse():
    """The kernel's Φ (Cody's approximations on a shared exp(-z²/2)) against scipy's ndtr to
    2.3e-16 absolute on [-40, 40] and mpmath's ncdf to 1e-15 relative where z² is exact; its
    Φ⁻¹ (Cephes ndtri) bit for bit against scipy's, including 0, 1 and outside [0, 1]."""
    z = np.concatenate([np.linspace(-40.0, 40.0, 80001), [0.0, 0.67448975, -0.67448975, 32 ** 0.5]])
    p = np.concatenate([special.ndtr(np.linspace(-38.0, 8.2, 20001)),
                        [0.0, 1.0, 0.5, 5e-324, 0.13533528323661269189, 1 - 0.13533528323661269189,
                         -0.1, 1.1]])
    cdf, quantile = _compiled.normal_cdf_and_quantile(z, p)
    assert np.abs(cdf - special.ndtr(z)).max() <= 2.3e-16
    whole = np.arange(-37.0, 9.0)
    exact = np.array([float(mpmath.ncdf(mpmath.mpf(t))) for t in whole])
    assert np.abs(_compiled.normal_cdf_and_quantile(whole, p)[0] / exact - 1.0).max() <= 1e-15
    assert np.array_equal(quantile, special.ndtri(p), equal_nan=True)


@pytest.mark.parametrize("k", [1, 3, 30])
@pytest.mark.parametrize("prior,scale,mu_prior", [("halfnormal", 0.5, None), ("uniform", 2.0, None),
                                                  ("lognormal", (-2.56, 1.74), (0.1, 0.5))],
                         ids=lambda x: str(x))
def test_common_rule_agrees(prior, scale, mu_prior, k, monkeypatch):
    """The shared-node rule (masses, conditional means and SDs of μ, nodes) by the kernel and by
    the numpy code: masses to 1e-13 of the largest, means to 1e-13 of the largest |mean|."""
    rng = np.random.default_rng(1516 + k)
    vi = np.geomspace(0.005, 0.3, k)
    Y = rng.standard_normal((200, k)) * np.sqrt(vi + 0.2)
    Y -= Y.mean(axis=1)[:, None]
    code, params = bayesian._tau_prior_params(prior, scale)
    mp = None if mu_prior is None else (np.full(200, mu_prior[0]) - 0.05, mu_prior[1])

    def run():
        return bayesian._common_rule(Y, vi, code, params, mp, 0.2, 1.0 / 16.0)
    got, want = run(), numpy_path(run, monkeypatch)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-13 * np.abs(b).max()


#: Every tau prior code central_intervals_many accepts, with and without a normal prior on mu.
PRIORS = [("halfnormal", 0.5, None), ("halfcauchy", 0.5, None), ("lognormal", (-2.56, 1.74), None),
          ("uniform", 2.0, None), ("halfnormal", 0.5, (0.0, 2.0)), ("halfcauchy", 0.3, (0.2, 0.5)),
          ("lognormal", (-1.0, 1.0), (0.0, 1.0)), ("uniform", 1.0, (0.1, 3.0))]
DESIGNS = {2: [0.0139, 0.0077], 3: [0.0139, 0.0077, 0.0119], 8: list(np.geomspace(0.005, 0.3, 8))}


@pytest.mark.parametrize("prior,scale,mu_prior", PRIORS, ids=lambda x: str(x))
@pytest.mark.parametrize("k", sorted(DESIGNS))
def test_central_intervals_many_agree(prior, scale, mu_prior, k, monkeypatch):
    """Whole calls, both paths: simulated data of one design at τ² = 0, 0.05, 0.5, 4 (the
    common-variance path, rows sharing vi) and the same rows with per-row variances."""
    vi = np.array(DESIGNS[k])
    rng = np.random.default_rng(20261215 + k)
    Y = np.vstack([rng.standard_normal((40, k)) * np.sqrt(vi + t2) + 0.3 for t2 in (0.0, 0.05, 0.5, 4.0)])
    for V in (np.tile(vi, (len(Y), 1)), np.tile(vi, (len(Y), 1)) * rng.uniform(0.5, 2.0, Y.shape)):
        def run():
            return central_intervals_many(Y, V, tau_prior=prior, tau_scale=scale, mu_prior=mu_prior)
        got, want = run(), numpy_path(run, monkeypatch)
        for a, b in zip(got, want):
            assert np.abs(a - b).max() <= TOL * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("kind", ["plain", "heavy", "sparse"])
def test_columns_beyond_the_arrays_are_massless_padding(kind, monkeypatch):
    """``keep`` wider than the arrays (a group narrower than the batch's widest): both paths give
    bit for bit what they give on the arrays padded with massless unit normals (mass 0, mean 0,
    SD 1), which hold their places in the coarse pass (every fourth kept column)."""
    rng = np.random.default_rng(4242)
    mass, mean, sd = random_mixtures(rng, 60, 40, kind)
    keep = rng.uniform(size=56) < 0.8
    keep[:40] |= mass.max(axis=0) > 0
    padded = [np.hstack([a, np.full((60, 16), fill)]) for a, fill in ((mass, 0.0), (mean, 0.0), (sd, 1.0))]
    for run in (lambda f: f(), lambda f: numpy_path(f, monkeypatch)):
        got = run(lambda: bayesian._central_quantiles(0.025, mass, mean, sd, keep))
        want = run(lambda: bayesian._central_quantiles(0.025, *padded, keep))
        for a, b in zip(got, want):
            assert np.array_equal(a, b)


def test_merge_in_place_is_the_copy():
    """_merge_near_zero(overwrite=True) returns, bit for bit, the arrays of the copying version."""
    v = np.array([0.0139, 0.0077, 0.0119])
    Y = np.random.default_rng(3).standard_normal((50, 3)) * 0.1
    Y -= Y.mean(axis=1)[:, None]
    rule = bayesian._common_rule(Y, v, "halfnormal", (0.5,), None, 0.02, 1.0 / 16.0)
    want = bayesian._merge_near_zero(*rule, float(v.min()))
    got = bayesian._merge_near_zero(rule[0].copy(), rule[1].copy(), *rule[2:], float(v.min()), overwrite=True)
    assert want[0].shape[1] < rule[0].shape[1]
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("prior,scale,mu_prior", PRIORS[:4] + PRIORS[6:7], ids=lambda x: str(x))
def test_group_medians_match_cumsum(prior, scale, mu_prior):
    """``ma_common_median`` picks exactly the node numpy's cumsum of the kernel's masses picks
    (bayesian._first_crossing at 1/2), for groups of rows at two centres."""
    rng = np.random.default_rng(77)
    vi = np.array(DESIGNS[3])
    Y = rng.standard_normal((300, 3)) * np.sqrt(vi + rng.choice([0.0, 0.1, 2.0], (300, 1)))
    Y -= Y.mean(axis=1)[:, None]
    code, params = bayesian._tau_prior_params(prior, scale)
    mp = None if mu_prior is None else (np.full(300, mu_prior[0]), mu_prior[1])
    scale = np.where(np.arange(300) % 2 == 0, 0.05, 0.8)
    got = bayesian._group_medians(Y, vi, code, params, mp, scale, 1.0 / 8.0)
    for rows, centre in bayesian._snap_groups(scale, code):
        prior_rows = None if mp is None else (mp[0][rows], mp[1])
        mass, _, _, tau = bayesian._common_rule(Y[rows], vi, code, params, prior_rows, centre, 1.0 / 8.0)
        assert np.array_equal(got[rows], tau[bayesian._first_crossing(0.5, np.cumsum(mass, axis=1))])
