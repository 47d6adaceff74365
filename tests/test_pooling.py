"""Unit tests of the pooling engine (``metaanalysis.pooling``, ``metaanalysis.sensitivity``)
and of ``metaanalysis pool`` (the CLI).

Sources of the expected numbers:

* BCG (``BCG_*``): /work/shared/reference/metafor_bcg_output.txt — R 4.2.2, metafor 3.8.1,
  ``dat <- escalc(measure='RR', ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)``,
  ``rma(yi, vi, data=dat, method='REML', test='knha')`` and ``test='z'``; printed with 4
  decimals, so the tolerance is 0.5e-4 (plus float slack). yi/vi are those of
  tests/reference/fixtures/bcg.json (same escalc call, written by make_fixtures.R).
* BCG k = 2 (first two trials), subgroups by ``alloc``, Egger: R 4.2.2 / metafor 3.8.1 run
  by hand (script quoted in each test), printed with ``sprintf("%.6f")`` or metafor's print.

The exact-fixture tests at 1e-6 live in tests/test_conformance.py.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metaanalysis.cli import main as cli_main
from metaanalysis.effects import from_ci, from_p
from metaanalysis.pooling import METHODS, PI_TYPES, TESTS, PoolArrays, metafor_call, pool, pool_many
from metaanalysis.results import RESULT_FIELDS
from metaanalysis.sensitivity import cumulative, egger, leave_one_out, subgroups

FIX = Path(__file__).parent / "reference" / "fixtures" / "bcg.json"
_bcg = json.loads(FIX.read_text())
BCG_YI = np.array(_bcg["yi"])
BCG_VI = np.array(_bcg["vi"])
# dat.bcg$alloc (metadat 1.2.0), printed by R: as.character(dat$alloc)
BCG_ALLOC = ["random", "random", "random", "random", "alternate", "alternate", "random",
             "random", "random", "systematic", "systematic", "systematic", "systematic"]

P4 = 0.5e-4 + 1e-12   # "agrees at the printed 4 decimals"


def near4(x, printed):
    return x == pytest.approx(printed, abs=P4)


# ---------------------------------------------------------------------------------------
# BCG, REML, knha and z (metafor_bcg_output.txt)
# ---------------------------------------------------------------------------------------

def test_bcg_reml_knha_matches_metafor_printout():
    r = pool(BCG_YI, BCG_VI, method="REML", test="knha")
    assert r.k == 13
    assert near4(r.tau2, 0.3132) and near4(r.tau2_se, 0.1664) and near4(r.tau, 0.5597)
    assert r.i2 == pytest.approx(92.2214, abs=P4)          # confint: I^2(%) 92.2214
    assert r.h2 == pytest.approx(12.8558, abs=P4)
    assert near4(r.q, 152.2330) and r.q_df == 12 and r.q_pvalue < 1e-4
    assert near4(r.estimate, -0.7145) and near4(r.se, 0.1808)
    assert near4(r.stat, -3.9522) and r.df == 12 and near4(r.pvalue, 0.0019)
    assert near4(r.ci_lower, -1.1084) and near4(r.ci_upper, -0.3206)
    # confint(res): metafor's default uniroot tolerance (~1.2e-4 in tau^2) leaves the printed
    # I^2 / H^2 lower bounds 3e-3 / 9e-4 off the exact Q-profile bound; with
    # confint(res, control=list(tol=1e-12)) R 4.2.2 / metafor 3.8.1 prints (digits=10)
    # tau^2 0.1197183611 1.111479084, I^2 81.9205745586 97.678074958,
    # H^2 5.5311492240 43.067712431 -- which we match to 1e-8.
    assert near4(r.tau2_ci_lower, 0.1197) and near4(r.tau2_ci_upper, 1.1115)
    assert r.i2_ci_lower == pytest.approx(81.9177, abs=5e-3) and near4(r.i2_ci_upper, 97.6781)
    assert r.h2_ci_lower == pytest.approx(5.5303, abs=1e-3) and r.h2_ci_upper == pytest.approx(43.0680, abs=5e-4)
    assert r.tau2_ci_lower == pytest.approx(0.1197183611, abs=1e-8)
    assert r.tau2_ci_upper == pytest.approx(1.111479084, abs=1e-8)
    assert r.i2_ci_lower == pytest.approx(81.9205745586, abs=1e-8)
    assert r.i2_ci_upper == pytest.approx(97.678074958, abs=1e-8)
    assert r.h2_ci_lower == pytest.approx(5.5311492240, abs=1e-8)
    assert r.h2_ci_upper == pytest.approx(43.067712431, abs=1e-8)
    # predict(res, transf=exp)
    assert near4(np.exp(r.estimate), 0.4894)
    assert near4(np.exp(r.ci_lower), 0.3301) and near4(np.exp(r.ci_upper), 0.7257)
    assert near4(np.exp(r.pi_lower), 0.1359) and near4(np.exp(r.pi_upper), 1.7629)
    assert sum(r.weights) == pytest.approx(100, abs=1e-12)
    assert r.converged


def test_bcg_reml_z_matches_metafor_printout():
    r = pool(BCG_YI, BCG_VI)  # defaults: REML, z
    assert r.method == "REML" and r.test == "z" and r.df is None
    assert near4(r.tau2, 0.3132) and near4(r.tau2_se, 0.1664)
    assert near4(r.estimate, -0.7145) and near4(r.se, 0.1798) and near4(r.stat, -3.9744)
    assert r.pvalue < 1e-4
    assert near4(r.ci_lower, -1.0669) and near4(r.ci_upper, -0.3622)


# ---------------------------------------------------------------------------------------
# scalar vs batch, k = 1, k = 2, identical effects, arguments
# ---------------------------------------------------------------------------------------

def _assert_same_result(a, b, rel=1e-12):
    for name in RESULT_FIELDS + ("yi", "vi", "notes", "pi"):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, float) and isinstance(y, float):
            assert y == pytest.approx(x, rel=rel, abs=1e-300), name
        elif isinstance(x, tuple) and x and isinstance(x[0], float):
            assert np.allclose(y, x, rtol=rel, atol=0), name
        else:
            assert x == y, name


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", TESTS)
def test_pool_equals_pool_many_row_nan_padded(method, test):
    rng = np.random.default_rng(7)
    ks = [1, 2, 3, 5, 8, 13]
    kmax = max(ks)
    Y = np.full((len(ks), kmax), np.nan)
    V = np.full((len(ks), kmax), np.nan)
    for i, k in enumerate(ks):
        v = rng.uniform(0.01, 0.6, k)
        Y[i, :k] = rng.normal(0.1, np.sqrt(v + 0.2))
        V[i, :k] = v
    Y[5, :] = BCG_YI
    V[5, :] = BCG_VI
    many = pool_many(Y, V, method=method, test=test, pi="riley")
    for i, k in enumerate(ks):
        single = pool(Y[i, :k], V[i, :k], method=method, test=test, pi="riley")
        _assert_same_result(single, many.row(i))
        assert many.row(i).k == k and len(many.row(i).weights) == k


@pytest.mark.parametrize("method", METHODS)
def test_plain_float_path_and_batch_agree_on_both_sides_of_its_limit(method):
    """pool() runs metaanalysis.single up to MAX_K studies and pool_many above it; both give
    what a batch row gives (the same algorithms; sums in another order, so to 1e-12)."""
    from metaanalysis import single

    rng = np.random.default_rng(11)
    for k in (single.MAX_K, single.MAX_K + 1):
        v = rng.uniform(0.005, 0.5, k)
        y = rng.normal(-0.2, np.sqrt(v + 0.05))
        Y = np.vstack([y, np.roll(y, 1)])
        V = np.vstack([v, np.roll(v, 1)])
        r = pool(y, v, method=method, test="knha")
        _assert_same_result(r, pool_many(Y, V, method=method, test="knha").row(0))
        if k <= single.MAX_K:
            assert r == single.pool_one(list(y), list(v), method, "knha", 0.95, "metafor")


def test_q_profile_roots_solve_their_equation():
    """Newton on the convex, decreasing Q(τ²) (estimators.solve_convex_decreasing) lands on
    Q(τ²) = crit to rounding for both CI bounds (Viechtbauer 2007, doi:10.1002/sim.2514)."""
    from metaanalysis import _dist
    from metaanalysis.estimators import prepare, q_gen

    rng = np.random.default_rng(5)
    v = rng.uniform(0.005, 0.5, (400, 9))
    y = rng.normal(0.0, np.sqrt(v + rng.choice([0.0, 0.01, 1.0], (400, 1))))
    r = pool_many(y, v, method="DL")
    Y0, V0, mask, k = prepare(y, v)
    for bound, crit in ((r.tau2_ci_lower, _dist.chi2_isf(0.025, 8)), (r.tau2_ci_upper, _dist.chi2_ppf(0.025, 8))):
        pos = bound > 0
        q = q_gen(Y0[pos], V0[pos], mask[pos], bound[pos])
        assert np.allclose(q, crit, rtol=1e-12, atol=0)
        assert (q_gen(Y0[~pos], V0[~pos], mask[~pos], np.zeros((~pos).sum())) <= crit).all()


@pytest.mark.parametrize("method", METHODS)
def test_k1_is_the_study_itself(method):
    r = pool([0.3], [0.04], method=method, test="knha")
    assert r.k == 1 and r.estimate == 0.3 and r.se == pytest.approx(0.2, rel=1e-15)
    assert r.tau2 == 0 and r.i2 == 0 and r.h2 == 1
    assert r.q == 0 and r.q_df == 0 and r.q_pvalue == 1
    assert r.df is None                      # knha needs k >= 2: z is used, as metafor does
    assert r.ci_lower == pytest.approx(0.3 - 1.959963984540054 * 0.2, rel=1e-14)
    assert r.weights == (100.0,)
    assert r.tau2_ci_lower is None and r.tau2_ci_upper is None
    assert any("z test was used" in n for n in r.notes)
    if method != "FE":
        assert any("k = 1" in n and "tau^2" in n for n in r.notes)


def test_k2_bcg_matches_metafor():
    # R: rma(yi[1:2], vi[1:2], data=dat, test="knha") (metafor 3.8.1, REML): tau^2 = 0
    # (SE = 0.3678), Q(df = 1) = 0.9315, p = 0.3345; estimate -1.3250, se 0.3368,
    # tval -3.9339, df 1, p 0.1585, CI -5.6047 to 2.9547.
    r = pool(BCG_YI[:2], BCG_VI[:2], test="knha", pi="riley")
    assert r.tau2 == 0 and near4(r.tau2_se, 0.3678)
    assert near4(r.q, 0.9315) and near4(r.q_pvalue, 0.3345) and r.q_df == 1
    assert near4(r.estimate, -1.3250) and near4(r.se, 0.3368) and near4(r.stat, -3.9339)
    assert r.df == 1 and near4(r.pvalue, 0.1585)
    assert near4(r.ci_lower, -5.6047) and near4(r.ci_upper, 2.9547)
    # Riley's PI uses t(k-2): not estimable for k = 2
    assert r.pi_lower is None and r.pi_upper is None
    assert any("prediction interval not estimable" in n for n in r.notes)


@pytest.mark.parametrize("k", [1, 2])
def test_riley_pi_none_below_3_and_present_at_3(k):
    r = pool(BCG_YI[:k], BCG_VI[:k], pi="riley")
    assert r.pi_lower is None and r.pi_upper is None and r.pi == "riley"
    assert any("fewer than 3 studies" in n for n in r.notes)
    r3 = pool(BCG_YI[:3], BCG_VI[:3], pi="riley")
    assert r3.pi_lower is not None and not any("prediction interval" in n for n in r3.notes)
    # Riley: mu +- t(k-2) sqrt(tau2 + se^2); t_{0.975, 1} = 12.706204736174698
    half = 12.706204736174698 * np.sqrt(r3.tau2 + r3.se**2)
    assert r3.pi_upper == pytest.approx(r3.estimate + half, rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_identical_effects_give_tau2_exactly_zero(method):
    yi = np.full(6, -0.25)
    vi = np.array([0.01, 0.2, 0.05, 1.5, 0.003, 0.4])
    r = pool(yi, vi, method=method)
    assert r.tau2 == 0.0 and r.i2 == 0.0
    # H^2: (tau2 + s2)/s2 = 1 for random-effects models; for FE metafor reports QE/(k-1),
    # which is 0 here (R: rma(rep(-0.25, 6), vi, method="FE")$H2 == 0, metafor 3.8.1)
    assert r.h2 == (0.0 if method == "FE" else 1.0)
    assert r.q == pytest.approx(0.0, abs=1e-28)
    assert r.estimate == pytest.approx(-0.25, rel=1e-15)
    assert r.se == pytest.approx(np.sqrt(1 / (1 / vi).sum()), rel=1e-14)
    if method != "FE":
        assert r.tau2_ci_lower == 0.0 and r.tau2_ci_upper == 0.0


def test_level_percent_equals_fraction():
    a = pool(BCG_YI, BCG_VI, level=95, test="knha")
    b = pool(BCG_YI, BCG_VI, level=0.95, test="knha")
    assert a == b
    c = pool(BCG_YI, BCG_VI, level=90)
    assert c.level == pytest.approx(0.9)
    assert c.ci_upper - c.ci_lower < b.ci_upper - b.ci_lower


@pytest.mark.parametrize("bad", [0.0, -0.01])
def test_nonpositive_variance_is_an_error(bad):
    with pytest.raises(ValueError, match="vi must be > 0"):
        pool([0.1, 0.2, 0.3], [0.1, bad, 0.2])
    with pytest.raises(ValueError, match="vi must be > 0"):
        pool_many([[0.1, 0.2, 0.3]], [[0.1, bad, 0.2]])


@pytest.mark.parametrize("yi,vi", [([0.1, np.nan], [0.1, 0.1]), ([0.1, 0.2], [0.1, np.nan]),
                                   ([0.1, np.inf], [0.1, 0.1])])
def test_nan_in_pool_is_an_error(yi, vi):
    with pytest.raises(ValueError, match="finite"):
        pool(yi, vi)


def test_shape_errors():
    with pytest.raises(ValueError, match="same length"):
        pool([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="empty"):
        pool([], [])
    with pytest.raises(ValueError, match="1-D"):
        pool([[0.1]], [[0.1]])
    with pytest.raises(ValueError, match="at least one study"):
        pool_many([[0.1, 0.2], [np.nan, np.nan]], [[0.1, 0.2], [np.nan, np.nan]])
    with pytest.raises(ValueError, match="same places"):
        pool_many([[0.1, np.nan]], [[0.1, 0.2]])


@pytest.mark.parametrize("kw,names", [
    ({"method": "REMLX"}, METHODS),
    ({"method": "SA"}, METHODS),
    ({"test": "t"}, TESTS),
    ({"pi": "higgins"}, PI_TYPES),
])
def test_unknown_names_list_the_valid_ones(kw, names):
    with pytest.raises(ValueError) as ei:
        pool(BCG_YI, BCG_VI, **kw)
    msg = str(ei.value)
    assert repr(next(iter(kw.values()))) in msg
    for n in names:
        assert n in msg


@pytest.mark.parametrize("kw,canonical", [
    ({"method": "reml", "test": "KNHA"}, ("REML", "knha", "metafor")),
    ({"method": "Dl", "test": "Z", "pi": "Riley"}, ("DL", "z", "riley")),
    ({"method": "fe", "test": "AdHoc"}, ("FE", "adhoc", "metafor")),
    ({"method": " pm ", "pi": "METAFOR"}, ("PM", "z", "metafor")),
])
def test_codes_are_case_insensitive(kw, canonical):
    # issue #10: method/test/pi codes are matched case-insensitively and stored canonical
    r = pool(BCG_YI, BCG_VI, **kw)
    assert (r.method, r.test, r.pi) == canonical
    ref = pool(BCG_YI, BCG_VI, method=canonical[0], test=canonical[1], pi=canonical[2])
    assert r == ref                                    # same fit, same metafor_call
    assert f'method = "{canonical[0]}"' in r.metafor_call
    many = pool_many(BCG_YI[None], BCG_VI[None], **kw)
    assert (many.method, many.test, many.pi) == canonical


def test_sensitivity_codes_are_case_insensitive():
    yi, vi = BCG_YI, BCG_VI
    lo = leave_one_out(yi, vi, method="dl", test="Knha", level=95, pi="RILEY")
    assert lo == leave_one_out(yi, vi, method="DL", test="knha", level=0.95, pi="riley")
    assert {(r.method, r.test, r.level, r.pi) for r in lo} == {("DL", "knha", 0.95, "riley")}
    cu = cumulative(yi, vi, method="reml", test="ADHOC")
    assert cu == cumulative(yi, vi, method="REML", test="adhoc")
    e1, e2 = egger(yi, vi, method="ml", test="KNHA", level=90), egger(yi, vi, method="ML", test="knha",
                                                                       level=0.9)
    assert e1 == e2
    g = ["a"] * 6 + ["b"] * 7
    s1 = subgroups(yi, vi, g, method="reml", test="KNHA", common_tau2=True)
    s2 = subgroups(yi, vi, g, method="REML", test="knha", common_tau2=True)
    assert s1 == s2 and s1.groups["a"].method == "REML" and s1.groups["a"].test == "knha"


@pytest.mark.parametrize("call", [
    lambda y, v: leave_one_out(y, v, method="SA"),
    lambda y, v: cumulative(y, v, test="t"),
    lambda y, v: egger(y, v, test="t"),
    lambda y, v: egger(y, v, level=150),
    lambda y, v: subgroups(y, v, ["a"] * 6 + ["b"] * 7, pi="higgins"),
    lambda y, v: subgroups(y, v, ["a"] * 6 + ["b"] * 7, level=0),
])
def test_sensitivity_checks_arguments_as_pool_does(call):
    # the same check as pool(): an unknown code or level is refused, never silently replaced
    with pytest.raises(ValueError, match="method|test|pi|level"):
        call(BCG_YI, BCG_VI)


@pytest.mark.parametrize("level", [0, 1, 100, -5, 150])
def test_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        pool(BCG_YI, BCG_VI, level=level)


def test_fixed_tau2():
    t2 = 0.25
    r = pool(BCG_YI, BCG_VI, tau2=t2)
    w = 1 / (BCG_VI + t2)
    assert r.tau2 == t2 and r.tau == 0.5
    assert r.estimate == pytest.approx((w * BCG_YI).sum() / w.sum(), rel=1e-14)
    assert r.se == pytest.approx(np.sqrt(1 / w.sum()), rel=1e-14)
    assert np.allclose(r.weights, 100 * w / w.sum(), rtol=1e-13)
    assert "tau2 = 0.25" in r.metafor_call
    # a fixed tau2 = 0 is the common-effect model
    fe = pool(BCG_YI, BCG_VI, method="FE")
    r0 = pool(BCG_YI, BCG_VI, tau2=0.0)
    assert r0.estimate == pytest.approx(fe.estimate, rel=1e-14)
    assert r0.se == pytest.approx(fe.se, rel=1e-14)
    # and fixing tau2 at the REML estimate reproduces the REML fit
    reml = pool(BCG_YI, BCG_VI)
    rr = pool(BCG_YI, BCG_VI, tau2=reml.tau2)
    assert rr.estimate == pytest.approx(reml.estimate, rel=1e-14)
    for bad in (-0.1, np.nan, np.inf):
        with pytest.raises(ValueError, match="fixed tau2"):
            pool(BCG_YI, BCG_VI, tau2=bad)


def _parse_c(call: str, name: str) -> list[float]:
    m = re.search(rf"\b{name} = c\(([^)]*)\)", call)
    assert m, call
    return [float(x) for x in m.group(1).split(",")]


@pytest.mark.parametrize("method,test", [("REML", "knha"), ("DL", "z"), ("PM", "adhoc"), ("FE", "z")])
def test_metafor_call_round_trips(method, test):
    rng = np.random.default_rng(3)
    yi = rng.normal(size=7) / 3  # floats that need all 17 digits
    vi = rng.uniform(0.001, 1, 7)
    r = pool(yi, vi, method=method, test=test, level=0.9)
    call = r.metafor_call
    assert f'method = "{method}"' in call and f'test = "{test}"' in call
    assert "level = 90" in call and call.startswith("res <- metafor::rma.uni(")
    assert _parse_c(call, "yi") == [float(x) for x in yi]     # exact round trip
    assert _parse_c(call, "vi") == [float(x) for x in vi]
    assert metafor_call(yi, vi, method, test, 0.9) == call


# ---------------------------------------------------------------------------------------
# sensitivity
# ---------------------------------------------------------------------------------------

def test_leave_one_out_lengths_and_values():
    res = leave_one_out(BCG_YI, BCG_VI, test="knha")
    assert len(res) == 13
    for i, r in enumerate(res):
        assert r.k == 12
        ref = pool(np.delete(BCG_YI, i), np.delete(BCG_VI, i), test="knha")
        assert r.estimate == pytest.approx(ref.estimate, rel=1e-12)
        assert r.tau2 == pytest.approx(ref.tau2, rel=1e-12)
    with pytest.raises(ValueError):
        leave_one_out([0.1], [0.1])


def test_cumulative_lengths_and_last_step_is_full_fit():
    full = pool(BCG_YI, BCG_VI, method="DL", test="knha")
    steps = cumulative(BCG_YI, BCG_VI, method="DL", test="knha")
    assert [s.k for s in steps] == list(range(1, 14))
    _assert_same_result(full, steps[-1])
    assert steps[0].estimate == BCG_YI[0]
    # with an order: sorted by the key (stable), last step unchanged
    order = np.arange(13)[::-1]
    rev = cumulative(BCG_YI, BCG_VI, order=order, method="DL", test="knha")
    assert rev[0].estimate == BCG_YI[-1]
    assert rev[-1].estimate == pytest.approx(full.estimate, rel=1e-12)


def test_subgroups_common_tau2_matches_metafor_qm():
    # R: rma(yi, vi, mods = ~ factor(alloc), data = dat)  (REML): QM(df = 2) = 1.7675,
    #    p-val = 0.4132; with control = list(threshold = 1e-12, maxiter = 10000),
    #    sprintf("%.8f"): QM 1.76751140, p 0.41322803, tau^2 0.36150366
    sg = subgroups(BCG_YI, BCG_VI, BCG_ALLOC, common_tau2=True)
    assert sg.common_tau2 and sg.q_between_df == 2
    assert near4(sg.q_between, 1.7675) and near4(sg.q_between_pvalue, 0.4132)
    assert sg.q_between == pytest.approx(1.76751140, abs=1e-7)
    assert sg.q_between_pvalue == pytest.approx(0.41322803, abs=1e-7)
    assert sg.tau2_common == pytest.approx(0.36150366, abs=1e-7)
    assert list(sg.groups) == ["random", "alternate", "systematic"]
    assert all(g.tau2 == sg.tau2_common for g in sg.groups.values())


def test_subgroups_separate_tau2_by_hand_and_metafor():
    # by hand: Q_between = sum u_g (mu_g - mubar)^2, u_g = 1/se_g^2, from the subgroup fits.
    # R: per-group rma(yi, vi, subset = alloc == g, control = list(threshold = 1e-12,
    #    maxiter = 10000)) (REML), then rma(ests, sei = ses, method = "FE")$QE, sprintf("%.8f"):
    #    QE 1.86144495, p 0.39426876; random: k 7, -0.97096470 (se 0.27595610);
    #    alternate: k 2, -0.54079296 (0.28160161); systematic: k 4, -0.42420739 (0.35974523).
    sg = subgroups(BCG_YI, BCG_VI, BCG_ALLOC)
    g = np.asarray(BCG_ALLOC)
    mu, u = [], []
    for lab, (k, est, se) in {"random": (7, -0.97096470, 0.27595610),
                              "alternate": (2, -0.54079296, 0.28160161),
                              "systematic": (4, -0.42420739, 0.35974523)}.items():
        fit = pool(BCG_YI[g == lab], BCG_VI[g == lab])
        assert sg.groups[lab].k == k
        assert sg.groups[lab].estimate == pytest.approx(fit.estimate, rel=1e-14)
        assert fit.estimate == pytest.approx(est, abs=1e-7) and fit.se == pytest.approx(se, abs=1e-7)
        mu.append(fit.estimate)
        u.append(1 / fit.se**2)
    mu, u = np.array(mu), np.array(u)
    qb = (u * (mu - (u * mu).sum() / u.sum()) ** 2).sum()
    assert not sg.common_tau2 and sg.q_between_df == 2
    assert sg.q_between == pytest.approx(qb, rel=1e-12)
    assert sg.q_between == pytest.approx(1.86144495, abs=1e-7)
    assert sg.q_between_pvalue == pytest.approx(0.39426876, abs=1e-7)


def test_egger_bcg_matches_metafor_regtest():
    # R: regtest(rma(yi, vi, data = dat)): z = -0.8033, p = 0.4218, limit estimate b = -0.5104
    #    (REML threshold 1e-12, sprintf("%.8f"): -0.80332919 0.42178449 -0.51043187)
    e = egger(BCG_YI, BCG_VI)
    assert e.form == "rma" and e.df is None and e.k == 13 and not e.underpowered
    assert near4(e.stat, -0.8033) and near4(e.pvalue, 0.4218) and near4(e.limit_estimate, -0.5104)
    assert e.stat == pytest.approx(-0.80332919, abs=1e-7)
    assert e.pvalue == pytest.approx(0.42178449, abs=1e-7)
    assert e.limit_estimate == pytest.approx(-0.51043187, abs=1e-7)
    # R: regtest(res, model = "lm"): t = -1.4013, df = 11, p = 0.1887
    #    (sprintf: -1.401282 11 0.188707)
    lm = egger(BCG_YI, BCG_VI, form="lm")
    assert lm.stat == pytest.approx(-1.401282, abs=1e-6)
    assert lm.df == 11
    assert lm.pvalue == pytest.approx(0.188707, abs=1e-6)


def test_egger_small_k():
    e = egger(BCG_YI[:5], BCG_VI[:5])
    assert e.underpowered and e.k == 5
    with pytest.raises(ValueError, match="10"):
        egger(BCG_YI[:5], BCG_VI[:5], enforce_min_k=True)
    with pytest.raises(ValueError, match="at least 3"):
        egger(BCG_YI[:2], BCG_VI[:2])


# ---------------------------------------------------------------------------------------
# CLI: metaanalysis pool
# ---------------------------------------------------------------------------------------

def _write_csv(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_cli_pool_json_has_exactly_result_fields(tmp_path, capsys):
    lines = ["study,yi,vi"] + [f"s{i},{float(y)!r},{float(v)!r}"
                                   for i, (y, v) in enumerate(zip(BCG_YI, BCG_VI))]
    p = _write_csv(tmp_path, "\n".join(lines) + "\n")
    rc = cli_main(["pool", str(p), "--format", "json", "--test", "knha"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    assert list(d) == list(RESULT_FIELDS)
    ref = pool(BCG_YI, BCG_VI, test="knha")
    assert d["estimate"] == ref.estimate and d["tau2"] == ref.tau2
    assert d["k"] == 13 and d["test"] == "knha" and len(d["weights"]) == 13


def test_cli_pool_text_and_sei(tmp_path, capsys):
    p = _write_csv(tmp_path, "yi,sei\n0.1,0.2\n0.3,0.1\n-0.1,0.3\n")
    assert cli_main(["pool", str(p), "--method", "DL"]) == 0
    out = capsys.readouterr().out
    ref = pool([0.1, 0.3, -0.1], [0.04, 0.01, 0.09], method="DL")
    assert f"estimate = {ref.estimate:.4f}" in out
    assert "tau^2 estimator: DL" in out


@pytest.mark.parametrize("text,where", [
    ("yi,vi\n0.1,0.2\nabc,0.1\n", ":3:1: error"),
    ("yi,vi\n0.1,0.2\n0.3,-0.1\n", ":3:2: error"),
    ("yi,vi\n0.1,0.2\n0.3,nan\n", ":3:2: error"),
    ("x,vi\n0.1,0.2\n", ":1:0: error"),
    ("", ":1:0: error"),
    ("yi,vi\n", ":2:0: error"),
    ("yi,vi\n0.1,0.2\n-0_2,0.1\n", ":3:1: error"),     # Python's float() would read -2.0
    ("yi,vi\n0.1,0.2\n0.3,1e400\n", ":3:2: error"),    # overflows to inf
])
def test_cli_bad_file_exits_1_with_location(tmp_path, capsys, text, where):
    p = _write_csv(tmp_path, text)
    rc = cli_main(["pool", str(p)])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{p}{where}" in err
    assert "Traceback" not in err


def test_cli_missing_file_exits_1(tmp_path, capsys):
    rc = cli_main(["pool", str(tmp_path / "nope.csv")])
    err = capsys.readouterr().err
    assert rc == 1 and "nope.csv:0:0: error: no such file" in err


def test_cli_bad_method_exits_2(tmp_path, capsys):
    p = _write_csv(tmp_path, "yi,vi\n0.1,0.2\n0.3,0.1\n")
    with pytest.raises(SystemExit) as ei:
        cli_main(["pool", str(p), "--method", "XYZ"])
    err = capsys.readouterr().err
    assert ei.value.code == 2 and "usage error" in err and "REML" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as ei:
        cli_main(["pool", str(p), "--test", "bogus"])
    assert ei.value.code == 2


def test_cli_codes_any_case(tmp_path, capsys):
    """--method reml / --test KNHA are the vocabulary's REML / knha (case-insensitive, as the plan)."""
    p = _write_csv(tmp_path, "yi,vi\n0.1,0.2\n0.3,0.1\n-0.1,0.3\n")
    assert cli_main(["pool", str(p), "--method", "reml", "--test", "KNHA", "--level", "90", "--format", "json"]) == 0
    js = json.loads(capsys.readouterr().out)
    ref = pool([0.1, 0.3, -0.1], [0.2, 0.1, 0.3], method="REML", test="knha", level=0.9)
    assert js["method"] == "REML" and js["test"] == "knha" and js["level"] == 0.9
    assert js["estimate"] == ref.estimate and js["ci_lower"] == ref.ci_lower


def test_cli_subprocess_no_traceback(tmp_path):
    bad = _write_csv(tmp_path, "yi,vi\n0.1,0.2\n0.2,oops\n", "bad.csv")
    good = _write_csv(tmp_path, "yi,vi\n0.1,0.2\n0.2,0.1\n", "good.csv")
    for args, code in (([str(bad)], 1), ([str(good), "--method", "nope"], 2)):
        cp = subprocess.run([sys.executable, "-m", "metaanalysis", "pool", *args],
                            capture_output=True, text=True)
        assert cp.returncode == code, cp.stderr
        assert "Traceback" not in cp.stderr and cp.stdout == ""


# ---------------------------------------------------------------------------------------
# regressions found by tests/test_properties.py and benchmarks/robustness_sweep.py
# ---------------------------------------------------------------------------------------

def test_k1_fe_i2_is_zero():
    # R: rma(7, 3, method = "FE") -> I2 0, H2 1, QE 0 (metafor 3.8.1).
    # pool_many's FE branch computes I^2 = 100 (Q - df)/Q; with k = 1, Q is rounding noise
    # (w (y - mu)^2 ~ 3e-31, since (7/3)/(1/3) != 7 in floating point) and df = 0, so I^2 = 100.
    r = pool([7.0], [3.0], method="FE")
    assert r.i2 == 0.0 and r.h2 == 1.0
    assert r.q == pytest.approx(0.0, abs=1e-28)


@pytest.mark.parametrize("pad", [0, 1])
def test_sj_identical_effects_tau2_exactly_zero(pad):
    # R: rma(c(0.1, 0.1, 0.1), c(.1, .2, .3), method = "SJ") -> tau2 0, I2 0 (metafor 3.8.1).
    # estimators._sj starts from tau2_0 = sum((y - ybar)^2)/k with ybar = sum(y)/k, which is
    # not exactly 0.1 in floating point, so tau2_0 ~ 1e-33 > 0 and tau2 ~ 3e-67 instead of 0;
    # with NaN padding (pool_many) it also depends on the padded width.
    Y = np.array([[0.1, 0.1, 0.1] + [np.nan] * pad])
    V = np.array([[0.1, 0.2, 0.3] + [np.nan] * pad])
    r = pool_many(Y, V, method="SJ").row(0)
    assert r.tau2 == 0.0 and r.i2 == 0.0


def test_tau_ci_is_sqrt_of_tau2_ci_bcg():
    # metafor 3.8-1, ../shared/reference/metafor_bcg_output.txt, confint(res): tau 0.3460 to 1.0543
    # (default tolerance); with tight tolerance the tau^2 bounds are 0.119718 / 1.111479.
    r = pool(BCG_YI, BCG_VI, method="REML", test="knha")
    assert r.tau_ci_lower == pytest.approx(np.sqrt(r.tau2_ci_lower), rel=1e-15)
    assert round(r.tau_ci_lower, 3) == 0.346 and round(r.tau_ci_upper, 4) == 1.0543
    assert "tau_ci_lower" not in r.to_dict()      # derived: not a stored field


def test_engine_vocabulary_is_the_vocab_module():
    # issue #10: one vocabulary; the engine's lists are the vocab's tables, not copies of them
    from metaanalysis import estimators, sensitivity, vocab

    assert METHODS == tuple(vocab.METHODS) and "FE" in METHODS
    assert TESTS == tuple(vocab.TESTS) and PI_TYPES == tuple(vocab.PREDICTION_INTERVALS)
    assert estimators.TAU2_METHODS == tuple(vocab.TAU2_ESTIMATORS)
    assert sensitivity.EGGER_MIN_K == vocab.EGGER_MIN_K == 10   # Sterne et al. 2011
    assert set(estimators.ITERATIVE_METHODS) < set(estimators.TAU2_METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_tau2_ci_false_skips_only_the_q_profile_cis(method):
    # pool_many(tau2_ci=False) (metaanalysis.coverage): the six Q-profile fields are NaN, every
    # other field is bit-identical to the default call; the default still computes the CIs
    with_ci = pool_many(np.vstack([BCG_YI, BCG_YI[::-1]]), np.vstack([BCG_VI, BCG_VI[::-1]]),
                        method=method, test="knha")
    without = pool_many(with_ci.yi, with_ci.vi, method=method, test="knha", tau2_ci=False)
    skipped = {"tau2_ci_lower", "tau2_ci_upper", "i2_ci_lower", "i2_ci_upper", "h2_ci_lower",
               "h2_ci_upper"}
    for name in PoolArrays.__dataclass_fields__:
        a, b = getattr(with_ci, name), getattr(without, name)
        if name in skipped:
            assert np.isnan(b).all(), name
            assert np.isfinite(a).all() == (method != "FE"), name
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)   # NaN == NaN, else exact
        else:
            assert a == b, name
    assert without.row(0).tau2_ci_upper is None and without.row(0).estimate == with_ci.row(0).estimate


def test_tau2_per_analysis_reproduces_the_estimated_fit():
    """pool_many(tau2=<one value per row>) with a fit's own τ² estimates gives that fit's
    intervals bit for bit under every test (what metaanalysis.coverage relies on)."""
    rng = np.random.default_rng(7)
    Y = rng.normal(size=(400, 4))
    V = rng.uniform(0.01, 0.2, size=(400, 4))
    Y[::5, 3] = V[::5, 3] = np.nan
    for method in ("REML", "DL", "PM"):
        t2 = pool_many(Y, V, method=method, test="z", tau2_ci=False).tau2
        for test in ("z", "knha", "adhoc"):
            est = pool_many(Y, V, method=method, test=test, tau2_ci=False)
            fix = pool_many(Y, V, method=method, test=test, tau2_ci=False, tau2=t2)
            for f in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "pvalue"):
                assert np.array_equal(getattr(est, f), getattr(fix, f), equal_nan=True), (method, test, f)
            assert f"tau2 = {float(t2[3])!r}" in fix.row(3).metafor_call
    with pytest.raises(ValueError, match="one finite value >= 0 per analysis"):
        pool_many(Y, V, tau2=np.zeros(3))
    with pytest.raises(ValueError, match="one finite value >= 0 per analysis"):
        pool_many(Y, V, tau2=np.full(400, -1.0))


# ---------------------------------------------------------------------------------------
# CLI pool: the reports' defaults, estimate + CI / p columns, --transform exp (issue #16)
# ---------------------------------------------------------------------------------------

# trials/registry.csv lines 22-24 (Stopeck 2010, Fizazi 2011, Henry 2011): SRE HR 0.82 (0.71-0.95),
# 0.82 (0.71-0.95), 0.84 (0.71-0.98), 95% CIs; pooled in the shipped sre-zoledronic analysis.
SRE_CSV = "study,estimate,ci_lower,ci_upper\nStopeck,0.82,0.71,0.95\nFizazi,0.82,0.71,0.95\nHenry,0.84,0.71,0.98\n"


def test_cli_pool_defaults_are_the_reports(tmp_path, capsys):
    from metaanalysis.plan import DEFAULT_SETTINGS

    p = _write_csv(tmp_path, "yi,vi\n0.1,0.2\n0.3,0.1\n-0.1,0.3\n")
    assert cli_main(["pool", str(p), "--format", "json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert (js["method"], js["test"], js["level"]) == (
        DEFAULT_SETTINGS["method"], DEFAULT_SETTINGS["test"], DEFAULT_SETTINGS["level"])
    assert js["test"] == "adhoc"
    ref = pool([0.1, 0.3, -0.1], [0.2, 0.1, 0.3], pi=DEFAULT_SETTINGS["pi"], test="adhoc")
    assert js["pi_lower"] == ref.pi_lower and js["ci_lower"] == ref.ci_lower
    assert "transformed" not in js  # no measure, no transform: exactly the result fields
    assert list(js) == list(RESULT_FIELDS)


def test_cli_pool_estimate_and_ci_equals_the_report(tmp_path, capsys, shipped_build):
    """estimate + CI columns with --measure HR give the shipped sre-zoledronic page's numbers
    (the report pools the same registry rows with the same defaults)."""
    out, _ = shipped_build
    page = json.loads((out / "sre-zoledronic.json").read_text(encoding="utf-8"))["result"]
    p = _write_csv(tmp_path, SRE_CSV)
    assert cli_main(["pool", str(p), "--measure", "hr", "--format", "json"]) == 0
    js = json.loads(capsys.readouterr().out)
    for key in ("estimate", "ci_lower", "ci_upper", "tau2", "pvalue", "pi_lower", "pi_upper"):
        assert js[key] == pytest.approx(page[key], rel=1e-12, abs=1e-15), key
    assert js["weights"] == pytest.approx(page["weights"], rel=1e-12)
    tr = js["transformed"]  # the default for a ratio measure: exp
    assert tr["transform"] == "exp" and tr["estimate"] == pytest.approx(math.exp(page["estimate"]), rel=1e-14)
    assert tr["ci_upper"] == pytest.approx(math.exp(page["ci_upper"]), rel=1e-14)


def test_cli_pool_text_on_the_ratio_scale(tmp_path, capsys):
    p = _write_csv(tmp_path, SRE_CSV)
    assert cli_main(["pool", str(p), "--measure", "HR"]) == 0
    out = capsys.readouterr().out
    res = pool(*from_ci([0.82, 0.82, 0.84], [0.71, 0.71, 0.71], [0.95, 0.95, 0.98], measure="HR"), test="adhoc")
    assert f"estimate = {math.exp(res.estimate):.4f}  [{math.exp(res.ci_lower):.4f}, {math.exp(res.ci_upper):.4f}]" in out
    assert "95% CI" in out and "Stopeck" in out
    assert cli_main(["pool", str(p), "--measure", "HR", "--transform", "none"]) == 0
    assert f"estimate = {res.estimate:.4f}" in capsys.readouterr().out


def test_cli_pool_estimate_and_p(tmp_path, capsys):
    """An estimate with only a p-value: SE = |log HR| / z(p/2) (metafor conv.wald), with a warning."""
    p = _write_csv(tmp_path, "study,estimate,p_value\nA,0.8,0.03\nB,0.9,0.2\n")
    assert cli_main(["pool", str(p), "--measure", "HR", "--format", "json"]) == 0
    cap = capsys.readouterr()
    yi, vi, _ = from_p([0.8, 0.9], [0.03, 0.2], measure="HR")
    ref = pool(yi, vi, test="adhoc")
    js = json.loads(cap.out)
    assert js["estimate"] == ref.estimate and js["weights"] == pytest.approx(list(ref.weights), rel=1e-14)
    assert f"{p}:2:3: warning: [p_value] SE derived from p = 0.03" in cap.err


@pytest.mark.parametrize("text,args,where", [
    (SRE_CSV, [], ":1:0: error: 'estimate' is on the natural scale of a measure the file does not name (give --measure"),
    ("estimate,ci_lower,ci_upper\n0.8,0.9,0.7\n", ["--measure", "HR"], ":2:2: error: [ci_lower] CI lower bound must be below"),
    ("estimate,ci_lower,ci_upper\n-0.8,0.5,0.9\n", ["--measure", "HR"], ":2:2: error: [ci_lower] HR estimate must be > 0"),
    ("estimate,ci_lower\n0.8,0.5\n", ["--measure", "HR"], ":1:0: error: 'estimate' needs 'ci_lower' and 'ci_upper'"),
    ("estimate,ci_lower,ci_upper\n0.8,,\n", ["--measure", "HR"], ":2:1: error: [estimate] the row has an estimate but neither"),
])
def test_cli_pool_estimate_errors_are_located(tmp_path, capsys, text, args, where):
    p = _write_csv(tmp_path, text)
    assert cli_main(["pool", str(p), *args]) == 1
    err = capsys.readouterr().err
    assert f"{p}{where}" in err and "Traceback" not in err


def test_cli_pool_bad_measure_is_a_usage_error(tmp_path, capsys):
    p = _write_csv(tmp_path, SRE_CSV)
    with pytest.raises(SystemExit) as ei:
        cli_main(["pool", str(p), "--measure", "XX"])
    assert ei.value.code == 2 and "must be one of HR, OR, RR" in capsys.readouterr().err
