"""Conformance of ``metaanalysis.sensitivity`` with R's metafor 3.8-1.

Source of every expected number: the ``sensitivity`` block of
``tests/reference/fixtures/<dataset>.json`` (written by ``tests/reference/make_fixtures.R``;
REML, test="z", level 0.95, control=list(threshold=1e-12, maxiter=10000, tol=1e-12)):
``leave1out(res)``, ``cumul(res)``, ``influence(res)``, ``regtest(res)``,
``regtest(res, model="lm")``, and per-subgroup ``rma()`` fits plus
``rma(yi, vi, mods = ~ factor(g))``. Tolerance 1e-6 absolute or relative.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "_conformance", Path(__file__).parent / "reference" / "conformance.py")
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)

SENS = [fx for fx in cf.FIXTURES if "sensitivity" in fx]
IDS = [fx["dataset"] for fx in SENS]
SUB = [fx for fx in SENS if "subgroups" in fx["sensitivity"]]
EGG = [fx for fx in SENS if "regtest_rma" in fx["sensitivity"]]
# classic Egger is undefined (t = 0/0) when all yi are equal: the fixture marks it
# ("undefined": true, stat/pvalue null) and test_egger_lm_undefined_case documents it instead.
EGG_LM = [fx for fx in EGG if not fx["sensitivity"]["regtest_lm"].get("undefined")]

#: MetaResult field <- fixture key, for leave1out/cumul rows
ROW_KEYS = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper", "tau2", "i2", "h2", "q", "q_pvalue")


def _args(fx):
    s = fx["sensitivity"]
    return fx["yi"], fx["vi"], dict(method=s["method"], test=s["test"], level=s["level"])


def _rows_vs(results, block, label):
    got = {key: [getattr(r, key) for r in results] for key in ROW_KEYS}
    bad = cf.mismatches(got, block, ROW_KEYS)
    assert not bad, f"{label} ({block['r_call']}):\n  " + "\n  ".join(bad)


def test_sensitivity_fixtures_present():
    assert len(SENS) >= 8 and len(SUB) >= 1 and len(EGG) >= 8


@pytest.mark.parametrize("fx", SENS, ids=IDS)
def test_leave_one_out(fx):
    from metaanalysis.sensitivity import leave_one_out

    yi, vi, kw = _args(fx)
    res = leave_one_out(yi, vi, **kw)
    assert len(res) == fx["k"]
    _rows_vs(res, fx["sensitivity"]["leave1out"], "leave1out")


@pytest.mark.parametrize("fx", SENS, ids=IDS)
def test_cumulative_input_order(fx):
    from metaanalysis.sensitivity import cumulative

    yi, vi, kw = _args(fx)
    res = cumulative(yi, vi, order=None, **kw)
    assert len(res) == fx["k"]
    assert [r.k for r in res] == list(range(1, fx["k"] + 1))
    _rows_vs(res, fx["sensitivity"]["cumul"], "cumul")


@pytest.mark.parametrize("fx", SENS, ids=IDS)
def test_influence(fx):
    from metaanalysis.sensitivity import influence

    yi, vi, kw = _args(fx)
    inf = influence(yi, vi, method=kw["method"])
    keys = ("rstudent", "cooks_distance", "hat", "dffits", "tau2_del", "q_del", "cov_r", "weight")
    got = {key: [float(x) for x in np.asarray(getattr(inf, key), dtype=float)] for key in keys}
    bad = cf.mismatches(got, fx["sensitivity"]["influence"], keys)
    assert not bad, "influence(res):\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("fx", EGG, ids=[fx["dataset"] for fx in EGG])
def test_egger_rma(fx):
    """regtest(res): mixed-effects meta-regression on sei (REML), z test of the slope;
    limit estimate = intercept."""
    from metaanalysis.sensitivity import egger

    yi, vi, kw = _args(fx)
    e = egger(yi, vi, form="rma", method=kw["method"])
    exp = fx["sensitivity"]["regtest_rma"]
    bad = cf.mismatches(dataclasses.asdict(e), exp, ("stat", "pvalue", "df", "limit_estimate"))
    assert not bad, f"{exp['r_call']}:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("fx", EGG_LM, ids=[fx["dataset"] for fx in EGG_LM])
def test_egger_lm(fx):
    """regtest(res, model="lm"): classic Egger, lm(yi ~ sqrt(vi), weights = 1/vi), t test, df k-2."""
    from metaanalysis.sensitivity import egger

    yi, vi, kw = _args(fx)
    e = egger(yi, vi, form="lm", method=kw["method"])
    exp = fx["sensitivity"]["regtest_lm"]
    assert exp["df"] == fx["k"] - 2
    bad = cf.mismatches(dataclasses.asdict(e), exp, ("stat", "pvalue", "df", "limit_estimate"))
    assert not bad, f"{exp['r_call']}:\n  " + "\n  ".join(bad)


def test_egger_lm_undefined_case():
    """Constant yi: lm's slope is 0 with residual SE 0; metafor prints noise (0.38, p 0.73).
    Only the df and the limit estimate (= the common yi, 0.5) are defined."""
    from metaanalysis.sensitivity import egger

    fx = next(fx for fx in EGG if fx["dataset"] == "edge_identical_yi")
    exp = fx["sensitivity"]["regtest_lm"]
    assert exp["undefined"] is True and exp["stat"] is None and exp["pvalue"] is None
    e = egger(fx["yi"], fx["vi"], form="lm")
    assert not cf.mismatches(dataclasses.asdict(e), exp, ("df", "limit_estimate"))


SUB_KEYS = ("estimate", "se", "stat", "pvalue", "ci_lower", "ci_upper", "tau2", "tau2_se",
            "tau2_ci_lower", "tau2_ci_upper", "tau", "i2", "i2_ci_lower", "i2_ci_upper", "h2",
            "h2_ci_lower", "h2_ci_upper", "q", "q_pvalue", "pi_lower", "pi_upper", "weights")


@pytest.mark.parametrize("fx", SUB, ids=[fx["dataset"] for fx in SUB])
def test_subgroups_separate_tau2(fx):
    from metaanalysis.sensitivity import subgroups

    yi, vi, kw = _args(fx)
    sub = fx["sensitivity"]["subgroups"]
    out = subgroups(yi, vi, sub["labels"], common_tau2=False, **kw)
    assert list(out.groups) == sub["groups_in_order"]
    for name, block in sub["separate"].items():
        r = out.groups[name]
        exp = block["result"]
        assert r.k == exp["k"]
        got = {key: getattr(r, key) for key in SUB_KEYS}
        got["weights"] = list(r.weights)
        bad = cf.mismatches(got, exp, SUB_KEYS)
        assert not bad, f"subgroup {name} ({block['r_call']}):\n  " + "\n  ".join(bad)
    got = {"q_between": out.q_between, "q_between_pvalue": out.q_between_pvalue}
    bad = cf.mismatches(got, sub, ("q_between", "q_between_pvalue"))
    assert not bad, "\n  ".join(bad)
    assert out.q_between_df == sub["q_between_df"]


@pytest.mark.parametrize("fx", SUB, ids=[fx["dataset"] for fx in SUB])
def test_subgroups_common_tau2_is_metafor_qm(fx):
    """common_tau2=True: the between-group test is metafor's QM of
    rma(yi, vi, mods = ~ factor(g)) (REML residual tau2 shared by all subgroups)."""
    from metaanalysis.sensitivity import subgroups

    yi, vi, kw = _args(fx)
    sub = fx["sensitivity"]["subgroups"]
    mt = sub["moderator_test"]
    out = subgroups(yi, vi, sub["labels"], common_tau2=True, **kw)
    got = {"qm": out.q_between, "qm_pvalue": out.q_between_pvalue, "tau2": out.tau2_common}
    bad = cf.mismatches(got, mt, ("qm", "qm_pvalue", "tau2"))
    assert not bad, f"{mt['r_call']}:\n  " + "\n  ".join(bad)
    assert out.q_between_df == mt["qm_df"]
    for name in sub["groups_in_order"]:
        assert cf.close(out.groups[name].tau2, mt["tau2"])
