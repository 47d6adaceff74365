"""The engine checked against the other tools of the named stack (the ``crosscheck`` extra).

PyMARE and statsmodels are not used by ``metaanalysis`` to pool (estimators.py says why: the
engine needs eight τ² estimators, metafor's SE of τ² and Q-profile CIs, and ragged batches);
here they serve as independent implementations of what they do implement:

* PyMARE 0.0.13 ``DerSimonianLaird`` and ``VarianceBasedLikelihoodEstimator(method="REML")``:
  τ², the pooled estimate and its SE (Wald; Knapp-Hartung for DL) equal ``pool``'s on every
  committed metafor fixture (tests/reference/fixtures/*.json).
* statsmodels ``WLS`` of yᵢ on a constant with weights 1/(vᵢ + τ̂²): the pooled estimate, the
  z-test SE (fixed scale 1), the HKSJ SE (scale estimated), df, CI and p-values.
* forestplot: draws the rows of one analysis of the shipped registry (a smoke test only; the
  report figures are our own, see metaanalysis/plots/forest.py for why).

The packages are imported at module level on purpose: ``make test`` installs the extra, so a
missing package is an error here, not a skip.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

from metaanalysis import pool

_spec = importlib.util.spec_from_file_location(
    "_conformance", Path(__file__).parent / "reference" / "conformance.py")
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)

ROOT = Path(__file__).resolve().parents[1]

FIXTURES = [pytest.param(fx, id=fx["dataset"]) for fx in cf.FIXTURES]

#: DL is closed form in both tools (PyMARE floors it at 0 like metafor: ``np.maximum(0, ...)``
#: in ``_dersimonian_laird_tau2``). Measured on the 17 fixtures: τ², estimate and SE agree to
#: <= 1.2e-15 relative (exactly 0 = 0 where τ² is truncated).
DL_RTOL = 1e-13

#: PyMARE finds REML τ² by a bounded parabolic/golden search (``bounded_scalar_min``, default
#: xtol 1e-6 of the starting bracket, ftol 1e-12), ours to ~1e-15. Measured with PyMARE's
#: defaults on the 16 fixtures with k >= 2: τ² <= 4.4e-7 relative (raudenbush1985), estimate
#: <= 3.9e-7 (edge_vi_span), SE <= 1.7e-7; τ² = 0 exactly in both where the optimum is at the
#: boundary. Tightening PyMARE's xtol to 1e-10 only brings τ² to 6.4e-8 (its ftol stops it).
REML_RTOL = 1e-6

#: statsmodels WLS and ``pool`` compute the same closed forms given τ̂²: measured <= 1.4e-14
#: absolute (the normand1999 data, effects ~ 10-100). ``abs`` covers SEs that are 0 up to
#: rounding (edge_identical_yi: RSS = 0, HKSJ SE 0 in ``pool``, 5.5e-17 in statsmodels).
SM_RTOL, SM_ATOL = 1e-10, 1e-14


def _arrays(fx):
    yi = np.asarray(fx["yi"], dtype=float)
    vi = np.asarray(fx["vi"], dtype=float)
    return yi, vi


def _fit_pymare(estimator, yi, vi):
    """Fit a PyMARE estimator to one dataset (intercept only); (tau2, estimate, se, dof)."""
    est = estimator.fit(yi[:, None], vi[:, None], np.ones((yi.size, 1)))
    p = est.params_
    dof = p["dof"]
    return (float(np.ravel(p["tau2"])[0]), float(np.ravel(p["fe_params"])[0]),
            float(np.sqrt(np.ravel(p["inv_cov"])[0])), None if dof is None else float(np.ravel(dof)[0]))


def _approx(expected, rtol):
    # abs=0: a τ² of exactly 0 in pool must be exactly 0 in the other tool too.
    return pytest.approx(expected, rel=rtol, abs=0.0)


# ---------------------------------------------------------------------------------------------
# PyMARE
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fx", FIXTURES)
def test_pymare_dl_equals_pool(fx):
    yi, vi = _arrays(fx)
    # "wald": no small-sample correction, i.e. metafor's test="z" (PyMARE's default since
    # 0.0.11 is Knapp-Hartung; τ² and the estimate do not depend on it).
    tau2, est, se, dof = _fit_pymare(DerSimonianLaird(small_sample_correction="wald"), yi, vi)
    r = pool(yi, vi, method="DL", test="z")
    assert tau2 == _approx(r.tau2, DL_RTOL)
    assert est == _approx(r.estimate, DL_RTOL)
    assert se == _approx(r.se, DL_RTOL)
    assert dof is None


@pytest.mark.parametrize("fx", FIXTURES)
def test_pymare_reml_equals_pool(fx):
    yi, vi = _arrays(fx)
    est_ = VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald")
    tau2, est, se, _ = _fit_pymare(est_, yi, vi)
    r = pool(yi, vi, method="REML", test="z")
    assert est == _approx(r.estimate, REML_RTOL)
    if yi.size == 1:
        # k = 1 (edge_k1): the restricted likelihood is constant in τ² (no residual df), so τ²
        # is not identified. metafor and pool report 0; PyMARE returns wherever its search
        # stops (0.02 here, half the search scale). Not a convention to compare: only the
        # estimate (y₁ for any τ²) is checked, and τ² = 0 is pinned by test_conformance.py.
        assert r.tau2 == 0.0
        return
    assert tau2 == _approx(r.tau2, REML_RTOL)
    assert se == _approx(r.se, REML_RTOL)


@pytest.mark.parametrize("test, correction", [("knha", "knapp-hartung"),
                                              ("adhoc", "knapp-hartung-conservative")])
@pytest.mark.parametrize("fx", FIXTURES)
def test_pymare_knapp_hartung_equals_pool(fx, test, correction):
    """PyMARE's Knapp-Hartung is metafor's knha (q not floored); "-conservative" is adhoc."""
    yi, vi = _arrays(fx)
    est_ = DerSimonianLaird(small_sample_correction=correction)
    r = pool(yi, vi, method="DL", test=test)
    if yi.size == 1:
        # k = 1: both fall back to the z test (metafor forces test="z"; pool keeps the
        # requested code but reports df None; PyMARE warns and returns dof None).
        with pytest.warns(UserWarning, match="at least one residual degree of freedom"):
            _, est, se, dof = _fit_pymare(est_, yi, vi)
        assert r.df is None and dof is None
    else:
        _, est, se, dof = _fit_pymare(est_, yi, vi)
        assert dof == r.df == yi.size - 1
    assert est == _approx(r.estimate, DL_RTOL)
    assert se == _approx(r.se, DL_RTOL)


# ---------------------------------------------------------------------------------------------
# statsmodels
# ---------------------------------------------------------------------------------------------

def _wls(yi, vi, tau2, **fit_kw):
    """WLS of yi on a constant with weights 1/(vi + tau2) (the random-effects weights)."""
    return sm.WLS(yi, np.ones((yi.size, 1)), weights=1.0 / (vi + tau2)).fit(**fit_kw)


def _sm_close(actual, expected):
    return math.isclose(float(actual), float(expected), rel_tol=SM_RTOL, abs_tol=SM_ATOL)


@pytest.mark.parametrize("fx", FIXTURES)
def test_statsmodels_wls_fixed_scale_is_the_z_test(fx):
    """Scale fixed at 1: Var(μ̂) = 1/Σwᵢ, normal reference — pool's test="z"."""
    yi, vi = _arrays(fx)
    r = pool(yi, vi, method="REML", test="z")
    fit = _wls(yi, vi, r.tau2, cov_type="fixed scale")   # cov_kwds scale defaults to 1
    lo, hi = fit.conf_int(alpha=1 - r.level)[0]
    assert _sm_close(fit.params[0], r.estimate)
    assert _sm_close(fit.bse[0], r.se)
    assert _sm_close(fit.pvalues[0], r.pvalue)
    assert _sm_close(lo, r.ci_lower) and _sm_close(hi, r.ci_upper)
    if yi.size >= 2:
        # the same SE from the default fit: its bse carries sqrt(scale); divide it out
        plain = _wls(yi, vi, r.tau2)
        assert _sm_close(plain.bse[0] / math.sqrt(plain.scale), r.se)


HKSJ_FIXTURES = [p for p in FIXTURES if len(p.values[0]["yi"]) >= 2]   # k = 1: no residual df


@pytest.mark.parametrize("fx", HKSJ_FIXTURES)
def test_statsmodels_wls_estimated_scale_is_hksj(fx):
    """Scale estimated: s² = Σwᵢ(yᵢ − μ̂)²/(k − 1) is the HKSJ multiplier, df = k − 1.

    statsmodels' default WLS fit is exactly metafor's ``test="knha"`` (Knapp & Hartung 2003,
    doi:10.1002/sim.1482), the multiplier *not* floored at 1, so it holds whether s² is above
    or below 1. ``test="adhoc"`` floors it: its SE is WLS's when s² >= 1 and the fixed-scale
    SE otherwise.
    """
    yi, vi = _arrays(fx)
    kn = pool(yi, vi, method="REML", test="knha")
    fit = _wls(yi, vi, kn.tau2)
    lo, hi = fit.conf_int(alpha=1 - kn.level)[0]
    assert fit.df_resid == kn.df == yi.size - 1
    assert _sm_close(fit.params[0], kn.estimate)
    assert _sm_close(fit.bse[0], kn.se)
    assert _sm_close(fit.pvalues[0], kn.pvalue)
    assert _sm_close(lo, kn.ci_lower) and _sm_close(hi, kn.ci_upper)

    adhoc = pool(yi, vi, method="REML", test="adhoc")
    fixed = _wls(yi, vi, kn.tau2, cov_type="fixed scale")
    expected = fit.bse[0] if fit.scale >= 1.0 else fixed.bse[0]
    assert _sm_close(adhoc.se, expected)


def test_fixtures_cover_both_sides_of_the_hksj_floor():
    """The adhoc branch above is only tested if some fixtures have s² < 1 and others s² > 1."""
    sides = set()
    for p in HKSJ_FIXTURES:
        yi, vi = _arrays(p.values[0])
        sides.add(_wls(yi, vi, pool(yi, vi, method="REML").tau2).scale >= 1.0)
    assert sides == {True, False}


# ---------------------------------------------------------------------------------------------
# forestplot
# ---------------------------------------------------------------------------------------------

ANALYSIS_ID = "os-any-comparator"     # trials/analyses.toml: four HR rows


def _study_frame() -> pd.DataFrame:
    """Per-study HR and 95% CI of one analysis of the shipped registry and plan."""
    from metaanalysis._dist import z_crit
    from metaanalysis.plan import load_plan
    from metaanalysis.registry import effects_table, load_registry

    registry = load_registry(ROOT / "trials" / "registry.csv")
    plan = load_plan(ROOT / "trials" / "analyses.toml", registry)
    rows = list(next(a for a in plan.analyses if a.id == ANALYSIS_ID).rows)
    effects = effects_table(registry).set_index("row_id").loc[rows]
    names = registry.df.set_index("row_id").loc[rows, "trial_name"].astype(str)
    half = z_crit(0.95) * np.sqrt(effects["vi"].to_numpy(float))
    yi = effects["yi"].to_numpy(float)
    return pd.DataFrame({"study": names.to_numpy(), "hr": np.exp(yi),
                         "ll": np.exp(yi - half), "hl": np.exp(yi + half)})


def test_forestplot_draws_the_studies_of_one_analysis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    frame = _study_frame()
    assert len(frame) == 4 and np.isfinite(frame[["hr", "ll", "hl"]].to_numpy()).all()
    numpy_err = np.geterr()
    # forestplot sets rcParams["font.monospace"] and np.seterr(all="ignore") when imported:
    # keep both from leaking into the rest of the test session.
    with matplotlib.rc_context():
        try:
            import forestplot
        finally:
            np.seterr(**numpy_err)
        ax = forestplot.forestplot(frame, estimate="hr", ll="ll", hl="hl", varlabel="study",
                                   logscale=True)
        try:
            markers = [c for c in ax.collections if isinstance(c, PathCollection)]
            assert len(markers) == 1
            xs = np.sort(np.asarray(markers[0].get_offsets())[:, 0])
            np.testing.assert_allclose(xs, np.sort(frame["hr"].to_numpy()), rtol=1e-12)
            assert len(ax.get_yticks()) == len(frame)
            lo, hi = ax.get_xlim()
            assert ax.get_xscale() == "log"
            assert lo <= frame["ll"].min() and hi >= frame["hl"].max()
        finally:
            plt.close(ax.figure)
    assert np.geterr() == numpy_err
