"""influence, leave_one_out, cumulative, egger, meta_regression and subgroups against metafor 3.8-1,
for every τ² estimator and every test.

Source of every expected number: ``tests/reference/fixtures/sensitivity/<dataset>.json``, written by
``tests/reference/make_sensitivity_fixtures.R`` (R 4.2.2, metafor 3.8-1, metadat; control
``threshold=1e-12, maxiter=10000, tol=1e-12``): ``influence(res)``, ``leave1out(res)``, ``cumul(res)``,
``regtest(res)``, ``regtest(res, model="lm")``, ``rma(yi, vi, mods = ...)`` (with ``fitstats(res, REML =
FALSE)`` and ``fitstats(res, REML = TRUE)``) and the subgroup models.
Where metafor's Fisher scoring is not at the optimum the fixture holds the verified optimum and its
notes say so (README.md there). Tolerance 1e-6 absolute or relative. No R needed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "_conformance", Path(__file__).parent / "reference" / "conformance.py")
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)

FIXTURES = [cf._decode(json.loads(p.read_text(encoding="utf-8")))
            for p in sorted((cf.FIXTURE_DIR / "sensitivity").glob("*.json"))]
METHODS = ("FE", "DL", "REML", "ML", "PM", "HS", "SJ", "EB", "HE")
TESTS = ("z", "knha", "adhoc")


def _cases(block):
    out = []
    for fx in FIXTURES:
        if block not in fx:
            continue
        items = fx[block]["fits"] if block == "subgroups" else fx[block]
        if block == "meta_regression":
            out += [pytest.param(fx, m, f, id=f"{fx['dataset']}-{m['name']}-{f['method']}-{f['test']}")
                    for m in items for f in m["fits"]]
        else:
            out += [pytest.param(fx, a, id=f"{fx['dataset']}-{a['method']}-{a['test']}") for a in items]
    return out


SENS = _cases("analyses")
MREG = _cases("meta_regression")
SUBG = _cases("subgroups")
ROW_KEYS = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper", "q", "q_pvalue", "tau2", "i2", "h2")
INFL_KEYS = ("rstudent", "dffits", "cooks_distance", "cov_r", "tau2_del", "q_del", "hat", "weight", "dfbetas")
MREG_KEYS = ("beta", "se", "stat", "pvalue", "ci_lower", "ci_upper", "df", "qm", "qm_df", "qm_ddf", "qm_pvalue",
             "qe", "qe_df", "qe_pvalue", "tau2", "tau2_se", "i2", "h2", "r2")


def _assert_none_bad(bad, label):
    assert not bad, label + ":\n  " + "\n  ".join(bad)


def test_every_estimator_and_test_is_covered():
    """The fixtures hold every method x test for each analysis kind (none silently missing)."""
    full = {(m, t) for m in METHODS for t in TESTS}
    for fx in FIXTURES:
        for block in ("analyses", "subgroups"):
            if block in fx:
                items = fx[block]["fits"] if block == "subgroups" else fx[block]
                assert {(a["method"], a["test"]) for a in items} == full, (fx["dataset"], block)
        for m in fx.get("meta_regression", []):
            assert {(f["method"], f["test"]) for f in m["fits"]} == full, (fx["dataset"], m["name"])
    assert len(SENS) >= 2 * 27 and len(MREG) >= 3 * 27 and len(SUBG) >= 2 * 27


@pytest.mark.parametrize("fx,a", SENS)
def test_leave_one_out_every_field(fx, a):
    from metaanalysis.sensitivity import leave_one_out

    res = leave_one_out(fx["yi"], fx["vi"], method=a["method"], test=a["test"])
    got = {key: [getattr(r, key) for r in res] for key in ROW_KEYS}
    _assert_none_bad(cf.mismatches(got, a["leave1out"], ROW_KEYS), a["r_call"] + "; leave1out(res)")


@pytest.mark.parametrize("fx,a", SENS)
def test_cumulative_every_field(fx, a):
    from metaanalysis.sensitivity import cumulative

    res = cumulative(fx["yi"], fx["vi"], method=a["method"], test=a["test"])
    got = {key: [getattr(r, key) for r in res] for key in ROW_KEYS}
    _assert_none_bad(cf.mismatches(got, a["cumul"], ROW_KEYS), a["r_call"] + "; cumul(res)")


@pytest.mark.parametrize("fx,a", SENS)
def test_influence_every_field(fx, a):
    """Includes the Knapp-Hartung scale of each deletion fit in rstudent, DFFITS and DFBETAS and the
    scaled full-model variance in Cook's distance and cov.r (metafor influence.rma.uni)."""
    from metaanalysis.sensitivity import influence

    inf = influence(fx["yi"], fx["vi"], method=a["method"], test=a["test"])
    got = {key: [float(x) for x in getattr(inf, key)] for key in INFL_KEYS}
    _assert_none_bad(cf.mismatches(got, a["influence"], INFL_KEYS), a["r_call"] + "; influence(res)")
    assert [bool(x) for x in inf.is_influential] == a["influence"]["is_influential"]


@pytest.mark.parametrize("fx,a", SENS)
def test_egger_rma_every_field(fx, a):
    from metaanalysis.sensitivity import egger

    e = egger(fx["yi"], fx["vi"], form="rma", method=a["method"], test=a["test"])
    keys = ("stat", "pvalue", "df", "slope", "intercept", "limit_estimate", "limit_ci_lower", "limit_ci_upper",
            "tau2")
    _assert_none_bad(cf.mismatches(dataclasses.asdict(e), a["regtest_rma"], keys), a["r_call"] + "; regtest(res)")


@pytest.mark.parametrize("fx", [fx for fx in FIXTURES if "regtest_lm" in fx], ids=lambda fx: fx["dataset"])
def test_egger_lm_every_field(fx):
    from metaanalysis.sensitivity import egger

    e = egger(fx["yi"], fx["vi"], form="lm")
    exp = fx["regtest_lm"]
    keys = ("stat", "pvalue", "df", "slope", "intercept", "limit_estimate", "limit_ci_lower", "limit_ci_upper")
    _assert_none_bad(cf.mismatches(dataclasses.asdict(e), exp, keys), exp["r_call"])


def _moderators(m):
    """The fixture's moderators as meta_regression's mapping (factors are lists of strings)."""
    return {name: (np.asarray(v, dtype=str) if isinstance(v[0], str) else np.asarray(v, dtype=float))
            for name, v in m["moderators"].items()}


@pytest.mark.parametrize("fx,m,f", MREG)
def test_meta_regression_every_field(fx, m, f):
    from metaanalysis.sensitivity import meta_regression

    mr = meta_regression(fx["yi"], fx["vi"], _moderators(m), method=f["method"], test=f["test"])
    assert list(mr.coef_names) == f["coef_names"]
    got = {key: getattr(mr, key) for key in MREG_KEYS}
    got = {key: [float(x) for x in v] if isinstance(v, np.ndarray) else v for key, v in got.items()}
    _assert_none_bad(cf.mismatches(got, f, MREG_KEYS), f["r_call"])


FIT_KEYS = ("loglik", "deviance", "aic", "bic", "aicc")


@pytest.mark.parametrize("fx,m,f", MREG)
def test_meta_regression_fit_stats(fx, m, f):
    """fitstats(res, REML = FALSE) and fitstats(res, REML = TRUE) for every estimator and test
    (metafor evaluates both likelihoods at the estimator's τ²; REML with its +½ log|XᵀX| term)."""
    from metaanalysis.sensitivity import meta_regression

    mr = meta_regression(fx["yi"], fx["vi"], _moderators(m), method=f["method"], test=f["test"])
    assert mr.n_params == f["n_params"]
    for name in ("fit_ml", "fit_reml"):
        got = dataclasses.asdict(getattr(mr, name))
        _assert_none_bad(cf.mismatches(got, f[name], FIT_KEYS), f"{name} of {f['r_call']}")


def test_fit_stats_invariances():
    """Self-consistency (no metafor number): the REML log-likelihood does not change when a moderator
    is rescaled (the +½ log|XᵀX| term), the ML one does not change either, and fixing τ² at the
    estimate keeps the log-likelihoods but drops τ² from the parameter count (AIC − 2)."""
    from metaanalysis.sensitivity import meta_regression

    fx = next(f for f in FIXTURES if f["dataset"] == "bcg_mods")
    m = next(m for m in fx["meta_regression"] if m["name"] == "ablat_year_alloc")
    mods = _moderators(m)
    a = meta_regression(fx["yi"], fx["vi"], mods, method="REML")
    b = meta_regression(fx["yi"], fx["vi"], {**mods, "year": mods["year"] / 1000.0}, method="REML")
    assert b.fit_reml.loglik == pytest.approx(a.fit_reml.loglik, rel=1e-12)
    assert b.fit_ml.loglik == pytest.approx(a.fit_ml.loglik, rel=1e-12)
    c = meta_regression(fx["yi"], fx["vi"], mods, method="REML", tau2=a.tau2)
    assert (a.n_params, c.n_params) == (6, 5)
    assert c.fit_reml.loglik == pytest.approx(a.fit_reml.loglik, rel=1e-12)
    assert c.fit_reml.aic == pytest.approx(a.fit_reml.aic - 2, rel=1e-12)


@pytest.mark.parametrize("fx,s", SUBG)
def test_subgroups_separate_tau2_every_estimator(fx, s):
    from metaanalysis.sensitivity import subgroups

    sub = fx["subgroups"]
    out = subgroups(fx["yi"], fx["vi"], sub["labels"], method=s["method"], test=s["test"])
    assert list(out.groups) == sub["groups_in_order"]
    keys = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper", "tau2", "q", "q_pvalue", "i2", "h2")
    for name, exp in s["separate"].items():
        r = out.groups[name]
        assert r.k == exp["k"]
        _assert_none_bad(cf.mismatches({key: getattr(r, key) for key in keys}, exp, keys), exp["r_call"])
    got = dataclasses.asdict(out)
    keys = ("q_between", "q_between_df", "q_between_pvalue", "qe", "qe_df", "qe_pvalue")
    _assert_none_bad(cf.mismatches(got, s, keys), "separate-tau2 subgroup tests")


@pytest.mark.parametrize("fx,s", SUBG)
def test_subgroups_common_tau2_every_estimator(fx, s):
    """common_tau2=True is rma(yi, vi, mods = ~ factor(g), method = method): QM (F for knha/adhoc),
    its p-value, QE and the shared τ² by the requested estimator (not REML in disguise)."""
    from metaanalysis.sensitivity import subgroups

    sub = fx["subgroups"]
    out = subgroups(fx["yi"], fx["vi"], sub["labels"], method=s["method"], test=s["test"], common_tau2=True)
    c = s["common"]
    got = {"qm": out.q_between, "qm_df": out.q_between_df, "qm_pvalue": out.q_between_pvalue,
           "tau2": out.tau2_common, "qm_ddf": out.model.qm_ddf}
    _assert_none_bad(cf.mismatches(got, c, ("qm", "qm_df", "qm_ddf", "qm_pvalue", "tau2")), c["r_call"])
    got = {"qe": out.qe, "qe_df": out.qe_df, "qe_pvalue": out.qe_pvalue}
    _assert_none_bad(cf.mismatches(got, s, ("qe", "qe_df", "qe_pvalue")), c["r_call"])
    keys = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper")
    for name, exp in c["groups"].items():
        r = out.groups[name]
        assert r.tau2 == out.tau2_common
        _assert_none_bad(cf.mismatches({key: getattr(r, key) for key in keys}, exp, keys),
                         f"rma(..., subset = {name}, tau2 = common)")


# ---------------------------------------------------------------------------------------------------------
# Conventions and numerical stability (no R: identities that hold exactly in exact arithmetic)
# ---------------------------------------------------------------------------------------------------------

def test_fixture_holds_the_optimum_where_metafor_stops_at_a_local_one():
    """egger2001 without study 14 (LIMIT-2), ML: metafor's Fisher scoring starts at the HE estimate 0,
    where the ML score is negative, and stays there (log-likelihood -14.93); the global maximum is at
    τ² = 0.29525 (log-likelihood -5.18; README.md). The fixture holds the optimum and so do we."""
    from metaanalysis.sensitivity import leave_one_out

    fx = next(fx for fx in FIXTURES if fx["dataset"] == "egger2001")
    a = next(a for a in fx["analyses"] if (a["method"], a["test"]) == ("ML", "z"))
    assert "leave1out row 14" in a["notes"] and "optimum is 0.2952497866" in a["notes"]
    assert leave_one_out(fx["yi"], fx["vi"], method="ML")[13].tau2 == pytest.approx(0.29524978663145895, rel=1e-9)


RNG_Z = np.array([0.31, -1.2, 0.45, 0.05, -0.66, 1.7, -0.12, 0.93, -0.4, 0.22, 1.1, -0.85])
RNG_V = np.array([0.02, 0.05, 0.011, 0.09, 0.03, 0.14, 0.06, 0.025, 0.04, 0.07, 0.015, 0.1])


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("method", METHODS)
def test_egger_rma_keeps_full_precision_for_nearly_identical_effects(method, test):
    """yᵢ = 0.5 + 10⁻⁹ zᵢ with vᵢ ~ 10⁻²⁰: every field is invariant to adding a constant (the model
    has an intercept), and stat/p to rescaling y -> b·y, v -> b²·v (every estimator is scale
    equivariant). The old yᵀPy through an explicit projection lost ~9 digits here."""
    from metaanalysis.sensitivity import egger

    y = 0.5 + 1e-9 * RNG_Z
    dev = y - 0.5            # exact (Sterbenz): the same data shifted, carrying the stored rounding
    v = 1e-18 * RNG_V
    near = egger(y, v, method=method, test=test)
    base = egger(dev, v, method=method, test=test)
    unit = egger(1e9 * dev, RNG_V, method=method, test=test)
    for key in ("stat", "pvalue", "slope", "tau2"):
        assert getattr(near, key) == pytest.approx(getattr(base, key), rel=1e-9, abs=1e-300), key
    assert near.intercept - 0.5 == pytest.approx(base.intercept, rel=1e-6)
    assert near.stat == pytest.approx(unit.stat, rel=1e-8)
    assert near.pvalue == pytest.approx(unit.pvalue, rel=1e-8)
    assert near.slope == pytest.approx(unit.slope, rel=1e-8)          # y and sei both scale by 1e-9
    assert near.tau2 == pytest.approx(1e-18 * unit.tau2, rel=1e-8, abs=1e-30)
    assert method == "FE" or unit.tau2 > 0    # a case with heterogeneity, not only the boundary


def test_meta_regression_design_and_errors():
    from metaanalysis.sensitivity import meta_regression

    y, v = RNG_Z, RNG_V
    g = np.array(list("bbaaccbbaacc"))
    mr = meta_regression(y, v, {"x": np.arange(12.0), "g": g}, method="PM", test="knha")
    assert mr.coef_names == ("intrcpt", "x", "gb", "gc") and mr.btt == (1, 2, 3) and mr.qm_ddf == 8
    # a 2-D design without intercept column: QM tests every coefficient, no R² (metafor intercept=FALSE)
    X = np.column_stack([g == "a", g == "b", g == "c"]).astype(float)
    nointercept = meta_regression(y, v, X, method="PM")
    assert nointercept.btt == (0, 1, 2) and nointercept.r2 is None
    with pytest.raises(ValueError, match="collinear"):
        meta_regression(y, v, {"x": np.arange(12.0), "x2": 2 * np.arange(12.0)})
    with pytest.raises(ValueError, match="more studies"):
        meta_regression(y[:3], v[:3], {"g": g[:3], "x": np.arange(3.0)})
    with pytest.raises(ValueError, match="method"):
        meta_regression(y, v, {"x": np.arange(12.0)}, method="SA")


@pytest.mark.parametrize("fx", [fx for fx in FIXTURES if "cumul_ordered" in fx], ids=lambda fx: fx["dataset"])
def test_cumulative_in_publication_order(fx):
    """cumul(res, order = dat$year): sorted by year, ties in input order, rows in the sorted order."""
    from metaanalysis.sensitivity import cumulative

    exp = fx["cumul_ordered"]
    res = cumulative(fx["yi"], fx["vi"], order=exp["order"], method=exp["method"], test=exp["test"])
    got = {key: [getattr(r, key) for r in res] for key in ROW_KEYS}
    _assert_none_bad(cf.mismatches(got, exp, ROW_KEYS), exp["r_call"])
