"""Effect derivation: CI -> SE, p -> SE, 2x2 -> escalc measures, p-value text, consistency checks.

Reference values: R 4 / metafor 3.8-1 on this machine (calls in the comments), or by hand
where the formula is one line (written next to the value).
"""

import math

import numpy as np
import pytest

from metaanalysis import effects as ef

Z975 = 1.959963984540054  # R: qnorm(0.975)


def test_z_crit_matches_r():
    assert ef.z_crit(0.95) == pytest.approx(1.9599639845400536, abs=1e-15)  # R: qnorm(0.975)
    assert ef.z_crit(0.90) == pytest.approx(1.6448536269514715, abs=1e-14)  # R: qnorm(0.95)


def test_z_crit_accepts_percent_as_the_one_level_rule_says():
    # vocab.as_level: 95 means 0.95 (as metafor's level = 95); R: qnorm(0.975)
    assert ef.z_crit(95) == ef.z_crit(0.95) == pytest.approx(1.9599639845400536, abs=1e-15)
    assert ef.z_crit(90) == pytest.approx(1.6448536269514715, abs=1e-14)  # R: qnorm(0.95)


@pytest.mark.parametrize("level", [100, 1.0, 0.0, -0.5, 0.3, 30, 150, float("nan")])
def test_z_crit_refuses_out_of_range(level):
    with pytest.raises(ValueError, match="confidence level"):
        ef.z_crit(level)


def test_from_ci_hr_stopeck():
    # Stopeck 2010: HR 0.82 (0.71-0.95); by hand: se = (log .95 - log .71) / (2 * 1.959963984540054)
    yi, vi = ef.from_ci(0.82, 0.71, 0.95, level=0.95, measure="HR")
    assert float(yi) == pytest.approx(math.log(0.82), abs=1e-15)
    se = (math.log(0.95) - math.log(0.71)) / (2 * Z975)
    assert float(vi) == pytest.approx(se**2, rel=1e-12)
    # R: ((log(0.95)-log(0.71))/(2*qnorm(0.975)))^2
    assert float(vi) == pytest.approx(0.0055184570007237362, rel=1e-12)


def test_from_ci_90_percent_level():
    # R: ((log(1.19)-log(0.78))/(2*qnorm(0.95)))^2
    _, vi = ef.from_ci(0.96, 0.78, 1.19, level=0.90, measure="HR")
    assert float(vi) == pytest.approx(0.016487828918276944, rel=1e-12)


def test_from_ci_difference_measure_natural_scale():
    # MD -2.0 (-3.5, -0.5): se = 3 / (2 * 1.96...)
    yi, vi = ef.from_ci(-2.0, -3.5, -0.5, measure="MD")
    assert float(yi) == -2.0
    assert float(vi) == pytest.approx((3.0 / (2 * Z975)) ** 2, rel=1e-12)


def test_from_ci_vectorised_shape():
    yi, vi = ef.from_ci([0.82, 0.823], [0.71, 0.69], [0.95, 0.98])
    assert yi.shape == vi.shape == (2,)
    assert yi[1] == pytest.approx(math.log(0.823))
    assert vi[1] == pytest.approx(((math.log(0.98) - math.log(0.69)) / (2 * Z975)) ** 2, rel=1e-12)


def test_from_ci_refuses_nonpositive_and_reversed():
    with pytest.raises(ValueError, match="must be > 0"):
        ef.from_ci(0.8, 0.0, 0.9)
    with pytest.raises(ValueError, match="lower bound must be below"):
        ef.from_ci(0.8, 0.9, 0.7)


def test_from_p_dcare_dfs_and_scagliotti():
    # D-CARE DFS HR 1.04, p=0.57; Scagliotti OS HR 0.80, p=0.01.
    # R: (log(1.04)/qnorm(0.57/2, lower.tail=FALSE))^2 ; (log(0.80)/qnorm(0.01/2, lower.tail=FALSE))^2
    yi, vi, flags = ef.from_p([1.04, 0.80], [0.57, 0.01], p_decimals=[2, 2])
    assert yi == pytest.approx([math.log(1.04), math.log(0.80)], abs=1e-15)
    assert vi == pytest.approx([0.0047671141680627107, 0.007504720493376406], rel=1e-12)
    assert flags[ef.DERIVED_FROM_P].tolist() == [True, True]
    # 0.57 and 0.01 both have <= 2 significant digits -> imprecise
    assert flags[ef.IMPRECISE].tolist() == [True, True]


def test_from_p_precision_flags():
    _, _, flags = ef.from_p([0.8, 0.8, 0.8, 0.8], [0.0261, 0.0001, 0.026, 0.0261],
                            p_is_inequality=[False, True, False, False], p_decimals=[4, 4, 3, None])
    # 0.0261 (3 sig. digits) precise; "<0.0001" inequality; 0.026 two digits; unknown rounding not flagged
    assert flags[ef.IMPRECISE].tolist() == [False, True, True, False]


def test_from_p_one_sided_splendour():
    # SPLENDOUR OS HR 0.96, one-sided p = 0.36 -> two-sided 0.72 (the ESMO abstract printed 0.71).
    # R: (log(0.96)/qnorm(0.72/2, lower.tail=FALSE))^2
    yi, vi, _ = ef.from_p(0.96, 0.36, sided=1)
    assert float(vi) == pytest.approx(0.012969103714397615, rel=1e-12)
    # a one-sided p > 0.5 (estimate against the hypothesised direction) gives the same |z|
    assert float(ef.two_sided_p(0.64, 1)) == pytest.approx(0.72)


def test_from_p_refuses_p_one_and_null_estimate():
    with pytest.raises(ValueError, match="p = 1 carries no information"):
        ef.from_p(0.9, 1.0)
    with pytest.raises(ValueError, match="estimate is at the null"):
        ef.from_p(1.0, 0.5)
    with pytest.raises(ValueError, match="estimate is at the null"):
        ef.from_p(0.0, 0.5, measure="MD")
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
        ef.from_p(0.8, 0.0)


# R: escalc("OR", ai=c(12,0,0,5,10), bi=c(88,50,50,45,0), ci=c(20,3,0,5,3), di=c(80,47,50,45,7))
#    (and measure "RR", "RD"; to="all"; drop00=TRUE), metafor 3.8-1, printed with sprintf("%.15g")
AI, BI, CI, DI = [12, 0, 0, 5, 10], [88, 50, 50, 45, 0], [20, 3, 0, 5, 3], [80, 47, 50, 45, 7]
ESCALC = {
    "OR": ([-0.606135803570316, -2.00715377429603, 0, 0, 3.80666248977032],
           [0.15719696969697, 2.32656889749125, 4.03960396039604, 0.444444444444444, 2.51428571428571]),
    "RR": ([-0.510825623765991, -1.94591014905531, 0, 0, 1.09861228866811],
           [0.113333333333333, 2.24649859943978, 3.96078431372549, 0.36, 0.199134199134199]),
    "RD": ([-0.08, -0.0588235294117647, 0, 0, 0.636363636363636],
           [0.002656, 0.00144363781652607, 0.000380698223157006, 0.0036, 0.0236664162283997]),
}


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_from_2x2_matches_escalc_without_drop00(measure):
    yi, vi = ef.from_2x2(AI, BI, CI, DI, measure=measure, drop00=False)
    assert yi == pytest.approx(ESCALC[measure][0], rel=1e-12, abs=1e-15)
    assert vi == pytest.approx(ESCALC[measure][1], rel=1e-12)


@pytest.mark.parametrize("measure", ["OR", "RR"])
def test_from_2x2_double_zero_dropped_for_ratios_by_default(measure):
    # R: escalc(measure, ..., drop00=TRUE) -> row 3 NA
    yi, vi = ef.from_2x2(AI, BI, CI, DI, measure=measure)
    assert math.isnan(yi[2]) and math.isnan(vi[2])
    assert yi[[0, 1, 3, 4]] == pytest.approx(np.array(ESCALC[measure][0])[[0, 1, 3, 4]], rel=1e-12, abs=1e-15)
    assert ef.is_double_zero(AI, BI, CI, DI).tolist() == [False, False, True, False, False]


def test_from_2x2_rd_keeps_double_zero_by_default():
    yi, vi = ef.from_2x2(AI, BI, CI, DI, measure="RD")
    assert yi[2] == 0.0 and vi[2] == pytest.approx(0.000380698223157006, rel=1e-12)


def test_from_2x2_add_to_all():
    # R: escalc("OR", ..., to="all")
    yi, vi = ef.from_2x2(AI, BI, CI, DI, measure="OR", add_to="all", drop00=False)
    assert yi[0] == pytest.approx(-0.589441609425473, rel=1e-12)
    assert vi[0] == pytest.approx(0.152502283081574, rel=1e-12)
    assert vi[3] == pytest.approx(0.407592407592408, rel=1e-12)


def test_from_2x2_refuses_bad_input():
    with pytest.raises(ValueError, match="negative"):
        ef.from_2x2(-1, 2, 3, 4)
    with pytest.raises(ValueError, match="OR, RR or RD"):
        ef.from_2x2(1, 2, 3, 4, measure="HR")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.026", (0.026, False, 3)),
        ("<0.0001", (0.0001, True, 4)),
        ("< .001", (0.001, True, 3)),
        ("p=0.01", (0.01, False, 2)),
        ("P = 0.36", (0.36, False, 2)),
        ("1e-4", (1e-4, False, 4)),
        ("1.5E-05", (1.5e-5, False, 6)),
        ("≤0.05", (0.05, True, 2)),
        ("<=0.05", (0.05, True, 2)),
        ("1", (1.0, False, 0)),
    ],
)
def test_parse_p(text, expected):
    assert ef.parse_p(text) == expected


def test_parse_p_value_relation():
    assert ef.parse_p_value(">0.05").relation == ">"
    assert not ef.parse_p_value(">0.05").is_upper_bound
    assert ef.parse_p_value("≤0.05").is_upper_bound


@pytest.mark.parametrize("text", ["NS", "0.05*", "", "p", "1.5", "0", "-0.01", "0,05", "<<0.1"])
def test_parse_p_refuses(text):
    with pytest.raises(ValueError, match="p-value"):
        ef.parse_p(text)


def test_check_ci_rules():
    issues = ef.check_ci(
        [0.82, 0.5, 0.9, 0.8, 0.8, 0.82, -0.2],
        [0.71, 0.6, 0.5, 0.9, 0.0, 0.71, -0.5],
        [0.95, 0.9, 1.0, 0.7, 0.9, 0.95, 0.1],
        measure=["HR", "HR", "HR", "HR", "HR", "PVAL", "MD"],
    )
    got = [(i.index, i.code, i.severity, i.field) for i in issues]
    assert got == [
        (1, "outside_ci", "error", "estimate"),
        (2, "not_centred", "warning", "estimate"),  # |log(.5)/2 - log(.9)| / -log(.5) = 0.35 > 0.1
        (3, "ci_order", "error", "ci_lower"),
        (4, "nonpositive", "error", "ci_lower"),
    ]
    assert "35%" in issues[1].message


def test_check_ci_centred_within_rounding():
    # Real rows whose bounds are rounded to 2 decimals stay under conv.wald's 10% rule.
    est = [0.823, 0.83, 0.81, 0.80, 0.74, 0.97, 0.96, 0.85, 1.01]
    lo = [0.69, 0.71, 0.65, 0.64, 0.58, 0.82, 0.78, 0.73, 0.85]
    hi = [0.98, 0.97, 1.00, 1.01, 0.94, 1.14, 1.19, 0.98, 1.20]
    assert ef.check_ci(est, lo, hi) == []


def test_check_p_vs_ci_real_rows_clean_and_one_sided_caught():
    # (estimate, lower, upper, p, decimals, sided) from /work/shared/evidence/denosumab_trials.md
    rows = [
        (0.823, 0.69, 0.98, 0.026, 3, 2), (0.83, 0.71, 0.97, 0.016, 3, 2), (0.81, 0.65, 1.00, 0.047, 3, 2),
        (0.80, 0.64, 1.01, 0.065, 3, 2), (0.74, 0.58, 0.94, 0.013, 3, 2), (0.97, 0.82, 1.14, 0.70, 2, 2),
        (0.82, 0.66, 1.02, 0.068, 3, 2), (0.82, 0.71, 0.95, 0.01, 2, 2), (0.82, 0.71, 0.95, 0.008, 3, 2),
        (0.85, 0.73, 0.98, 0.028, 3, 2), (1.01, 0.85, 1.20, 0.91, 2, 2), (0.96, 0.78, 1.19, 0.36, 2, 1),
        (0.96, 0.78, 1.19, 0.36, 2, 2),  # SPLENDOUR one-sided p recorded as two-sided
        (0.82, 0.71, 0.95, 0.2, 1, 2),  # typo
    ]
    e, lo, hi, p, dec, s = zip(*rows)
    issues = ef.check_p_vs_ci(e, lo, hi, 0.95, p, "=", dec, s, "HR")
    assert [(i.index, i.code) for i in issues] == [(12, "p_disagrees"), (13, "p_disagrees")]
    assert "one-sided" in issues[0].hint
    assert "0.7" in issues[0].message  # CI-implied p: 2*(1-pnorm(0.379)) = 0.705


def test_check_p_vs_ci_inequality_and_significance():
    issues = ef.check_p_vs_ci(
        [0.50, 0.90, 0.80],
        [0.40, 0.80, 0.65],
        [0.62, 1.01, 0.99],
        0.95,
        [0.0001, 0.0001, 0.06],
        ["<", "<", "="],
        [4, 4, 2],
        2,
        "HR",
    )
    # row 0: z_ci = 6.2 >= z(1e-4) = 3.9: fine; row 1: CI crosses 1 but p < 1e-4; row 2: CI excludes 1 (CI-implied p = 0.038) but p = 0.06
    assert [i.index for i in issues] == [1, 2]
    assert "significance" in issues[1].message



# --- check_p_vs_ci without scipy: the standard library's normal functions, scipy's decisions ---

def test_fast_normal_within_1e13_of_scipy():
    # The premise of _FastNormal's 1e-9 margin: math.erfc and NormalDist.inv_cdf (AS 241) are
    # within ~1e-15 relative of scipy.special.ndtr / ndtri wherever the check uses them.
    from scipy.special import ndtr, ndtri

    for p2 in np.concatenate([np.logspace(-300, 0, 3001), np.linspace(0.001, 1.0, 1000)]):
        want = float(-ndtri(p2 / 2.0))
        assert ef._FastNormal.z_of_p(p2) == pytest.approx(want, rel=1e-13, abs=1e-15), p2
    for z in np.linspace(0.0, 37.0, 3701):
        assert math.erfc(z / math.sqrt(2.0)) == pytest.approx(float(2.0 * ndtr(-z)), rel=1e-13), z
    for level in (0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 95):
        assert ef._FastNormal.z_crit(level) == pytest.approx(ef.z_crit(level), rel=1e-14)


def _p_rows(n, seed=20261201):
    """Rows around every decision of check_p_vs_ci: reported p at, near and far from the ends of
    the tolerance band of the CI-implied z, rounded or not, one- or two-sided, =, < and >."""
    from scipy.special import ndtr

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        m = rng.choice(["HR", "OR", "MD"])
        lev = float(rng.choice([0.9, 0.95, 0.99]))
        se = float(np.exp(rng.uniform(np.log(0.02), np.log(1.0))))
        y = float(rng.normal(0.0, 3.0) * se)
        zc = ef.z_crit(lev)
        g = np.exp if m != "MD" else (lambda v: v)
        est, lo, hi = (float(g(v)) for v in (y, y - zc * se, y + zc * se))
        z_ci = abs(y) / se
        # the reported z: on a tolerance edge (z = (z_ci + 0.25) / 0.9 or (z_ci - 0.25) / 1.1),
        # at the CI's significance edge, or anywhere
        z_rep = float(rng.choice([(z_ci + 0.25) / 0.9, max(z_ci - 0.25, 0.0) / 1.1, ef.z_crit(lev),
                                  z_ci * rng.uniform(0.5, 1.5)]))
        p = float(2.0 * ndtr(-z_rep))
        dec = int(rng.choice([-1, 1, 2, 3, 4]))  # -1: unrounded (no decimals known)
        if dec > 0:
            p = round(p, dec) or 10.0 ** -dec
        p = min(max(p, 1e-300), 1.0)
        rows.append((est, lo, hi, lev, p, str(rng.choice(["=", "=", "<", ">"])),
                     float("nan") if dec < 0 else dec, int(rng.choice([1, 2, 2])), m))
    return list(zip(*rows))


def test_check_p_vs_ci_fast_path_gives_scipys_warnings(monkeypatch):
    est, lo, hi, lev, p, rel, dec, sided, m = _p_rows(4000)
    calls = {"fast": 0, "exact": 0}
    for name, cls in (("fast", ef._FastNormal), ("exact", ef._ExactNormal)):
        orig = cls.__dict__["z_crit"].__func__

        def counted(level, orig=orig, name=name):
            calls[name] += 1
            return orig(level)

        monkeypatch.setattr(cls, "z_crit", staticmethod(counted))
    got = ef.check_p_vs_ci(est, lo, hi, lev, p, rel, dec, sided, m)
    # both paths ran: most rows decided by the standard library, the near-ties by scipy
    assert calls["fast"] > 1000 and calls["exact"] > 50, calls
    monkeypatch.setattr(ef, "_FastNormal", ef._ExactNormal)  # every row with scipy, as before
    want = ef.check_p_vs_ci(est, lo, hi, lev, p, rel, dec, sided, m)
    assert len(want) > 500
    assert got == want


def test_check_p_vs_ci_tie_is_decided_by_scipy(monkeypatch):
    # p = 0.05 unrounded against a 95% CI: z(p) and z(alpha = 1 - 0.95 = 0.050000000000000044)
    # differ in the 16th digit, far inside the standard library's margin -> scipy decides
    seen = []
    orig = ef._ExactNormal.__dict__["z_of_p"].__func__
    monkeypatch.setattr(ef._ExactNormal, "z_of_p", staticmethod(lambda p2: seen.append(p2) or orig(p2)))
    issues = ef.check_p_vs_ci([0.8], [0.65], [0.98], 0.95, [0.05], "=", [float("nan")], 2, "HR")
    assert seen, "the near-tie was not re-checked with scipy"
    monkeypatch.setattr(ef, "_FastNormal", ef._ExactNormal)
    assert issues == ef.check_p_vs_ci([0.8], [0.65], [0.98], 0.95, [0.05], "=", [float("nan")], 2, "HR")


# --- the one effect-source decision (CI -> p -> 2x2) ---------------------------------------

@pytest.mark.parametrize("args, source, reason", [
    # (measure, estimate, has_ci, p, has_counts) -> the first source that applies
    (("HR", 0.8, True, ef.PValue(0.01, "=", 2), True), "ci", None),
    (("HR", 0.8, False, ef.PValue(0.01, "=", 2), True), "p", None),
    (("HR", 0.8, False, ef.PValue(0.001, "<", 3), False), "p", None),
    (("OR", None, True, None, True), "2x2", None),           # a CI without an estimate is not used
    (("RD", float("nan"), False, None, True), "2x2", None),
    (("HR", 0.8, False, ef.PValue(0.05, ">", 2), False), None, "the p-value '>0.05' is only a lower bound"),
    (("HR", 0.8, False, ef.PValue(1.0, "=", 0), False), None, "p = 1 carries no information about the standard error"),
    (("MD", 0.0, False, ef.PValue(0.5, "=", 1), False), None, "MD 0 with only a p-value gives no standard error"),
    (("HR", None, False, None, True), None, "HR needs a CI or p-value; 2x2 counts give OR, RR or RD only"),
    (("HR", 0.8, False, None, False), None, "no CI, p-value or 2x2 counts"),
    (("HR", None, False, None, False), None, "no estimate"),
])
def test_effect_source_order(args, source, reason):
    got = ef.effect_source(*args, p_text=">0.05")
    assert (got.source, got.reason) == (source, reason)
