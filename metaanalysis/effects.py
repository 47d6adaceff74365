"""Per-study effect sizes on the analysis scale: CI -> SE, p -> SE, 2x2 -> log OR / log RR / RD.

Everything here is pure, vectorised numpy (inputs broadcast; scalars in, 0-d arrays out).
Ratio measures (HR, OR, RR) are analysed on the natural-log scale, difference measures
(RD, MD, SMD) on their natural scale (the measure tables are :mod:`metaanalysis.vocab`'s).
``level`` follows the one level rule :func:`metaanalysis.vocab.as_level` (0.95 or 95).
:func:`effect_source` is the one decision of where a row's effect comes from (CI, then
p-value, then 2x2 counts), used by the registry's warnings and by ``effects_table``.

The consistency checks return typed :class:`EffectIssue` objects (never strings); the
registry turns them into :class:`metaanalysis.problems.Problem` with line and column.

References
----------
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
J Stat Softw 36(3). doi:10.18637/jss.v036.i03 -- ``escalc`` (2x2 measures, continuity
correction ``add=1/2, to="only0"``) and ``conv.wald`` (CI/p -> sampling variance, and its
``check=TRUE`` rule: warn when the estimate is more than 10% of the CI width away from the
CI midpoint; source: github.com/wviechtb/metafor, R/conv.wald.r, ``cifac = 0.1``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .vocab import (DIFFERENCE_MEASURES, EFFECT_LIMIT, EFFECT_MEASURES, LEVEL_MIN, LOG_MEASURES, MIN_CI_WIDTH,
                    RATIO_LIMITS, RATIO_PLAUSIBLE, TWO_BY_TWO_MEASURES)

#: conv.wald's ``cifac``: allowed distance of the estimate from the CI midpoint, as a
#: fraction of the CI width on the analysis scale (metafor R/conv.wald.r).
CENTRE_TOLERANCE = 0.1
#: A reported p-value and the CI may disagree by this much on the z scale (beyond the
#: rounding of the printed p) before a warning: ``0.25 + 10% of z``. Log-rank p-values and
#: Wald CIs of a Cox model legitimately differ a little; a one-sided p read as two-sided,
#: or a typo, does not (see :func:`check_p_vs_ci`). A project choice, not a published rule.
Z_TOLERANCE_ABS = 0.25
Z_TOLERANCE_REL = 0.10

DERIVED_FROM_P = "derived from p-value"
IMPRECISE = "imprecise"


def _is_ratio(measure: str) -> bool:
    if measure in LOG_MEASURES:
        return True
    if measure in DIFFERENCE_MEASURES:
        return False
    raise ValueError(
        f"measure {measure!r} has no analysis scale here; use one of "
        f"{', '.join(sorted(EFFECT_MEASURES))}"
    )


def null_value(measure: str) -> float:
    """The no-effect value on the natural scale: 1 for ratios, 0 for differences."""
    return 1.0 if _is_ratio(measure) else 0.0


def z_crit(level: float = 0.95) -> float:
    """Two-sided standard-normal critical value ``z_{1-(1-level)/2}`` (1.959963984540054 for 0.95).

    The package's one normal quantile, :func:`metaanalysis._dist.z_crit`.

    Parameters
    ----------
    level : float
        Confidence level under the one level rule :func:`metaanalysis.vocab.as_level`:
        a fraction in [0.5, 1) or a percentage in [50, 100) (0.95 or 95).
    """
    from . import _dist  # scipy.special on first use: `metaanalysis validate` starts without it

    return _dist.z_crit(level)


def to_analysis_scale(x, measure: str = "HR") -> np.ndarray:
    """Natural-scale values -> analysis scale (log for ratio measures). Non-positive ratios -> NaN."""
    x = np.asarray(x, dtype=float)
    if not _is_ratio(measure):
        return x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)


def _check_positive(measure: str, **arrays: np.ndarray) -> None:
    if not _is_ratio(measure):
        return
    for name, a in arrays.items():
        bad = np.flatnonzero(np.atleast_1d(a <= 0))
        if bad.size:
            raise ValueError(
                f"{measure} {name} must be > 0 (ratio measures are analysed on the log scale); "
                f"element {int(bad[0])} is {float(np.atleast_1d(a)[bad[0]])!r}"
            )


def from_ci(estimate, lower, upper, level: float = 0.95, measure: str = "HR"):
    """Effect size and sampling variance from a point estimate and its Wald-type CI.

    ``yi = log(estimate)`` (ratio) or ``estimate`` (difference);
    ``se = (g(upper) - g(lower)) / (2 z_{1-(1-level)/2})`` with ``g = log`` for ratios,
    as in metafor's ``conv.wald`` (Viechtbauer 2010, doi:10.18637/jss.v036.i03).

    Parameters
    ----------
    estimate, lower, upper : array_like, natural scale (HR 0.82, not log)
        Broadcast together; NaN propagates.
    level : float
        Confidence level of the CI (0.95 or 95, :func:`metaanalysis.vocab.as_level`).
    measure : {"HR", "OR", "RR", "RD", "MD", "SMD"}

    Returns
    -------
    yi, vi : ndarray
        Effect on the analysis scale and its sampling variance (``se**2``), broadcast shape.

    Raises
    ------
    ValueError
        Non-positive ratio values, ``lower >= upper``, or a level outside the level rule.
    """
    est, lo, hi = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (estimate, lower, upper)))
    _check_positive(measure, estimate=est, lower=lo, upper=hi)
    bad = np.flatnonzero(np.atleast_1d(lo >= hi))
    if bad.size:
        raise ValueError(f"CI lower bound must be below the upper bound (element {int(bad[0])})")
    return _wald(est, lo, hi, z_crit(level), measure)


def _wald(est: np.ndarray, lo: np.ndarray, hi: np.ndarray, z: float, measure: str):
    """:func:`from_ci` after its checks, with the critical value ``z`` given."""
    yi = to_analysis_scale(est, measure)
    se = (to_analysis_scale(hi, measure) - to_analysis_scale(lo, measure)) / (2.0 * z)
    return yi, np.asarray(se**2)


def two_sided_p(p, sided=2):
    """Convert a reported p-value to a two-sided one.

    A one-sided p-value ``p1`` is assumed to test the hypothesised direction (e.g. HR < 1);
    then the two-sided p is ``2 * p1`` when the estimate lies in that direction (``p1 <= 0.5``)
    and ``2 * (1 - p1)`` otherwise, i.e. ``2 * min(p1, 1 - p1)``. Both give the same ``|z|``.
    """
    p = np.asarray(p, dtype=float)
    sided = np.asarray(sided)
    if np.any((sided != 1) & (sided != 2)):
        raise ValueError("sided must be 1 or 2")
    return np.where(sided == 1, 2.0 * np.minimum(p, 1.0 - p), p)


def significant_digits(p, decimals) -> np.ndarray:
    """Significant digits of a p-value printed with ``decimals`` decimal places (0.026, 3 -> 2)."""
    p = np.asarray(p, dtype=float)
    d = np.asarray(decimals, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return d + np.floor(np.log10(p)) + 1.0


def from_p(
    estimate,
    p,
    sided=2,
    measure: str = "HR",
    p_is_inequality=False,
    p_decimals=None,
    imprecise_max_sig_digits: int = 2,
):
    """Effect size and sampling variance from a point estimate and its p-value.

    ``se = |yi| / z`` with ``z = Phi^{-1}(1 - p2 / 2)`` and ``p2`` the two-sided p-value
    (metafor ``conv.wald``: ``zval = qnorm(pval/2, lower.tail=FALSE)``; Altman & Bland 2011,
    BMJ 343:d2090, doi:10.1136/bmj.d2090). One-sided p-values are converted by
    :func:`two_sided_p` (assumption: the one-sided test was in the hypothesised direction).

    Parameters
    ----------
    estimate : array_like, natural scale
    p : array_like
        Reported p-value(s) in (0, 1). For an inequality (``"<0.0001"``) pass the bound:
        using the bound gives a conservative (too large) SE.
    sided : {1, 2} or array_like
    measure : {"HR", "OR", "RR", "RD", "MD", "SMD"}
    p_is_inequality : bool or array_like of bool
        The p-value was reported as ``< bound``.
    p_decimals : int or array_like, optional
        Decimal places as printed (from :func:`parse_p`); ``None`` = unknown (not flagged).
    imprecise_max_sig_digits : int
        A p-value printed with at most this many significant digits is flagged imprecise
        ("0.01" has 1, "0.026" has 2).

    Returns
    -------
    yi, vi : ndarray
    flags : dict[str, ndarray of bool]
        ``{"derived from p-value": all True, "imprecise": inequality or coarse rounding}``.

    Raises
    ------
    ValueError
        ``p`` outside (0, 1) or equal to 1 (no information about the SE), an estimate at the
        null (HR 1 or difference 0: ``|yi| / z`` is 0/0), or a non-positive ratio estimate.
    """
    est, pp, sd, ineq = np.broadcast_arrays(
        np.asarray(estimate, dtype=float), np.asarray(p, dtype=float), np.asarray(sided), np.asarray(p_is_inequality, dtype=bool)
    )
    _check_positive(measure, estimate=est)
    flat_p = np.atleast_1d(pp)
    bad = np.flatnonzero(~((flat_p > 0) & (flat_p < 1)) & ~np.isnan(flat_p))
    if bad.size:
        v = float(flat_p[bad[0]])
        why = "p = 1 carries no information about the standard error" if v == 1 else "p must be in (0, 1)"
        raise ValueError(f"cannot derive a standard error from p = {v!r} (element {int(bad[0])}): {why}")
    yi = to_analysis_scale(est, measure)
    at_null = np.flatnonzero(np.atleast_1d(yi == 0.0))
    if at_null.size:
        raise ValueError(
            f"cannot derive a standard error from a p-value when the estimate is at the null "
            f"({measure} {null_value(measure):g}, element {int(at_null[0])}): se = |yi| / z is 0 / z"
        )
    from scipy.special import ndtri  # on use: `metaanalysis validate` of a file without p-values starts without scipy

    p2 = two_sided_p(pp, sd)
    z = -ndtri(p2 / 2.0)
    se = np.abs(yi) / z
    imprecise = ineq.copy()
    if p_decimals is not None:
        dec = np.broadcast_to(np.asarray(p_decimals, dtype=float), pp.shape)
        sig = significant_digits(pp, dec)
        imprecise = imprecise | (np.nan_to_num(sig, nan=np.inf) <= imprecise_max_sig_digits)
    flags = {DERIVED_FROM_P: np.ones(yi.shape, dtype=bool), IMPRECISE: np.asarray(imprecise, dtype=bool)}
    return yi, np.asarray(se**2), flags


def is_double_zero(ai, bi, ci, di) -> np.ndarray:
    """True where a 2x2 table has no events in both arms or no non-events in both arms (metafor's ``drop00``)."""
    ai, bi, ci, di = (np.asarray(a, dtype=float) for a in (ai, bi, ci, di))
    return ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))


def from_2x2(ai, bi, ci, di, measure: str = "OR", cc: float = 0.5, add_to: str = "only0", drop00=None):
    """Log odds ratio, log risk ratio or risk difference from 2x2 counts, as metafor's ``escalc``.

    Cells follow metafor: ``ai``/``bi`` events/non-events in the intervention arm,
    ``ci``/``di`` events/non-events in the control arm.

    Continuity correction (metafor ``escalc(..., add=1/2, to="only0")``, Viechtbauer 2010,
    doi:10.18637/jss.v036.i03): ``cc`` is added to all four cells of a study that has a zero
    in any cell (``add_to="only0"``); ``"all"`` adds it to every study, ``"if0all"`` to every
    study when any study has a zero, ``"none"`` never. As in metafor, the correction also
    applies to RD.

    Double-zero studies (no events in either arm, or only events): for OR and RR they carry
    no information about the ratio, so ``yi`` and ``vi`` are NaN (metafor ``drop00=TRUE``;
    metafor's escalc default is ``drop00=FALSE``, which gives ``yi = 0`` with a large
    variance). For RD the default keeps them (RD = 0 is informative). Pass ``drop00=True``
    / ``False`` to force either; :func:`is_double_zero` tells the caller which rows were dropped.

    Parameters
    ----------
    ai, bi, ci, di : array_like of counts (>= 0), broadcast together
    measure : {"OR", "RR", "RD"}
    cc : float
        Continuity correction added to cells (metafor ``add``).
    add_to : {"only0", "all", "if0all", "none"}
        metafor ``to``.
    drop00 : bool, optional
        Default: True for OR and RR, False for RD.

    Returns
    -------
    yi, vi : ndarray
        log OR / log RR / RD and large-sample variance (metafor ``vtype="LS"``):
        OR ``1/a + 1/b + 1/c + 1/d``; RR ``1/a - 1/n1 + 1/c - 1/n2``;
        RD ``p1 (1 - p1) / n1 + p2 (1 - p2) / n2``.
    """
    if measure not in TWO_BY_TWO_MEASURES:
        raise ValueError(f"from_2x2 computes OR, RR or RD, not {measure!r}")
    if add_to not in ("only0", "all", "if0all", "none"):
        raise ValueError(f"add_to must be 'only0', 'all', 'if0all' or 'none', not {add_to!r}")
    a, b, c, d = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (ai, bi, ci, di)))
    for name, x in zip("abcd", (a, b, c, d)):
        if np.any(x < 0):
            raise ValueError(f"2x2 cell {name}i has a negative count")
    if drop00 is None:
        drop00 = measure in ("OR", "RR")
    if np.any((a + b == 0) | (c + d == 0)):
        raise ValueError("2x2 table has an empty arm (a + b = 0 or c + d = 0): no effect can be computed")
    dz = is_double_zero(a, b, c, d)
    any0 = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    if add_to == "all":
        add = np.ones(a.shape, dtype=bool)
    elif add_to == "only0":
        add = any0
    elif add_to == "if0all":
        add = np.full(a.shape, bool(np.any(any0 & ~(dz & drop00))))
    else:
        add = np.zeros(a.shape, dtype=bool)
    a, b, c, d = (x + np.where(add, cc, 0.0) for x in (a, b, c, d))
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "OR":
            yi = np.log(a / b) - np.log(c / d)
            vi = 1 / a + 1 / b + 1 / c + 1 / d
        elif measure == "RR":
            yi = np.log(p1) - np.log(p2)
            vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
        else:
            yi = p1 - p2
            vi = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    if drop00:
        yi = np.where(dz, np.nan, yi)
        vi = np.where(dz, np.nan, vi)
    return yi, vi


# --- p-value text -------------------------------------------------------------------------

_P_RE = re.compile(
    r"""^\s*(?:p\s*(?:-?value)?\s*)?            # optional 'p', 'p-value'
        (?P<rel><=|>=|=<|=>|≤|≥|<|>|=)?\s*      # relation
        (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_REL = {None: "=", "=": "=", "<": "<", "<=": "<=", "=<": "<=", "≤": "<=", ">": ">", ">=": ">=", "=>": ">=", "≥": ">="}


@dataclass(frozen=True)
class PValue:
    """A parsed p-value as printed.

    Attributes
    ----------
    value : float
        The number (the bound for an inequality), in (0, 1].
    relation : {"=", "<", "<=", ">", ">="}
        Canonical relation (``≤``, ``=<`` -> ``"<="``; ``≥``, ``=>`` -> ``">="``).
    decimals : int
        Decimal places the value was printed with (for ``1.5E-05`` this is 6).
    sided : {1, 2}
        One- or two-sided test (the registry's ``p_sided``; 2 when not given).
    """

    value: float
    relation: str
    decimals: int
    sided: int = 2

    @property
    def is_inequality(self) -> bool:
        return self.relation != "="

    @property
    def is_upper_bound(self) -> bool:
        """``p < x`` / ``p <= x``: the true p is at most ``value`` (usable, conservatively)."""
        return self.relation in ("<", "<=")

    @property
    def is_lower_bound(self) -> bool:
        """``p > x`` / ``p >= x``: the true p is at least ``value`` (no SE, not combinable)."""
        return self.relation in (">", ">=")


def parse_p_value(text: str) -> PValue:
    """Parse a printed p-value (see :func:`parse_p`) into a :class:`PValue`."""
    if not isinstance(text, str):
        raise ValueError(f"p-value must be text, got {type(text).__name__}")
    s = text.strip().replace("\u2009", " ").replace("\u00a0", " ")
    s = s.replace("\u2212", "-")  # Unicode minus in 1e−4
    if s.lower().startswith("p"):
        s = re.sub(r"^[pP]\s*(?:-?\s*value)?\s*", "p", s)
    m = _P_RE.match(s)
    if not m:
        raise ValueError(
            f"cannot read {text!r} as a p-value; write it as printed in the source, "
            "e.g. 0.026, <0.0001, 1e-4"
        )
    num = m.group("num")
    value = float(num)
    mant, _, exp = num.lower().partition("e")
    dec = len(mant.partition(".")[2])
    if exp:
        dec = max(dec - int(exp), 0)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"p-value {text!r} is outside (0, 1]")
    return PValue(value=value, relation=_REL[m.group("rel")], decimals=dec)


def parse_p(text: str) -> tuple[float, bool, int]:
    """Parse a p-value as printed: ``"0.026"``, ``"<0.0001"``, ``"< .001"``, ``"p=0.01"``, ``"1e-4"``, ``"≤0.05"``.

    Returns
    -------
    value : float
        The number (the bound for an inequality).
    is_inequality : bool
        True for ``<``, ``<=``, ``≤``, ``>``, ``>=``, ``≥`` (use :func:`parse_p_value` to tell
        an upper bound ``<`` from a lower bound ``>``).
    decimals : int
        Decimal places as printed (``"0.026"`` -> 3, ``"1e-4"`` -> 4, ``"1.5E-05"`` -> 6).

    Raises
    ------
    ValueError
        With a message saying what a valid p-value looks like.
    """
    pv = parse_p_value(text)
    return pv.value, pv.is_inequality, pv.decimals


# --- where an effect comes from ------------------------------------------------------------

#: Effect sources in the order they are tried (:func:`effect_source`).
EFFECT_SOURCES = ("ci", "p", "2x2")


@dataclass(frozen=True)
class EffectSource:
    """Where one row's ``(yi, vi)`` comes from: ``source`` ("ci", "p", "2x2"), or None and ``reason``."""

    source: str | None
    reason: str | None = None


def effect_source(measure: str, estimate: float | None, has_ci: bool, p: PValue | None,
                  has_counts: bool, p_text: str = "") -> EffectSource:
    """The one decision of how a row's effect is obtained: CI, else p-value, else 2x2 counts.

    1. Estimate with a complete CI (both bounds and the level): ``"ci"`` (:func:`from_ci`).
    2. Estimate with a p-value: ``"p"`` (:func:`from_p`), unless the p-value is a lower
       bound (``p > x``), p = 1, or the estimate sits at the null: then not poolable.
    3. All four 2x2 counts and a measure in :data:`~metaanalysis.vocab.TWO_BY_TWO_MEASURES`:
       ``"2x2"`` (:func:`from_2x2`; the caller still drops double-zero tables).
    4. Otherwise not poolable, with the reason.

    Parameters
    ----------
    measure : str
        A comparative measure (:data:`~metaanalysis.vocab.EFFECT_MEASURES`).
    estimate : float or None
        Natural scale; None or NaN when absent.
    has_ci : bool
        Both CI bounds and the CI level are given.
    p : PValue or None
    has_counts : bool
        ``events_int, n_int, events_ctl, n_ctl`` are all given.
    p_text : str
        The p-value as written, quoted in the lower-bound reason.
    """
    has_est = estimate is not None and not math.isnan(estimate)
    if has_est and has_ci:
        return EffectSource("ci")
    if has_est and p is not None:
        if p.is_lower_bound:
            return EffectSource(None, f"the p-value {p_text!r} is only a lower bound")
        if p.value >= 1.0:
            return EffectSource(None, "p = 1 carries no information about the standard error")
        if to_analysis_scale(estimate, measure) == 0.0:
            return EffectSource(None, f"{measure} {estimate:g} with only a p-value gives no standard error")
        return EffectSource("p")
    if has_counts and measure in TWO_BY_TWO_MEASURES:
        return EffectSource("2x2")
    if has_counts:
        return EffectSource(None, f"{measure} needs a CI or p-value; 2x2 counts give OR, RR or RD only")
    return EffectSource(None, "no CI, p-value or 2x2 counts" if has_est else "no estimate")


# --- consistency checks -------------------------------------------------------------------

IssueSeverity = Literal["error", "warning"]


@dataclass(frozen=True)
class EffectIssue:
    """One consistency problem of one row, independent of files.

    ``index`` is the 0-based position in the input arrays; ``field`` names the registry
    column the problem is best reported at (``estimate``, ``ci_lower``, ``p_value``, ...).
    """

    index: int
    code: str
    severity: IssueSeverity
    field: str
    message: str
    hint: str = ""


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def check_ci(estimate, lower, upper, measure="HR", level=0.95) -> list[EffectIssue]:
    """Check point estimates against their CIs (rows with any NaN among the three are skipped
    except for the checks that need only some of them).

    Errors: non-positive ratio estimate or bound (``nonpositive``), a ratio or bound outside
    :data:`vocab.RATIO_LIMITS` (``ratio_limits``), a difference or bound beyond
    ±:data:`vocab.EFFECT_LIMIT` (``effect_limit``), ``lower >= upper`` (``ci_order``), a CI
    narrower than :data:`vocab.MIN_CI_WIDTH` (``ci_too_narrow``), estimate outside the CI
    (``outside_ci``). Warnings: a ratio outside :data:`vocab.RATIO_PLAUSIBLE`
    (``ratio_implausible``); estimate off the CI
    midpoint on the analysis scale by more than 10% of the CI width (``not_centred``;
    metafor ``conv.wald(check=TRUE)``, R/conv.wald.r, ``cifac = 0.1``).

    Parameters
    ----------
    estimate, lower, upper : array_like, natural scale, shape (k,)
    measure : str or sequence of str, length k
    level : float or array_like, fraction (only used in messages)
    """
    est, lo, hi = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (estimate, lower, upper))
    est, lo, hi = np.broadcast_arrays(est, lo, hi)
    k = est.shape[0]
    measures = [measure] * k if isinstance(measure, str) else list(measure)
    issues: list[EffectIssue] = []
    for i in range(k):
        m = measures[i]
        if m not in EFFECT_MEASURES | {"GMR", "PROP"}:
            continue
        ratio = m in LOG_MEASURES
        if m == "PROP" and any(not math.isnan(v) and not 0 <= v <= 1 for v in (est[i], lo[i], hi[i])):
            issues.append(EffectIssue(i, "prop_range", "error", "estimate",
                                      "a proportion and its CI must lie in [0, 1]",
                                      "enter 0.86, not 86 (%)"))
            continue
        e, l, u = est[i], lo[i], hi[i]
        bad = False
        if ratio:
            for name, v in (("estimate", e), ("ci_lower", l), ("ci_upper", u)):
                if not math.isnan(v) and v <= 0:
                    issues.append(EffectIssue(i, "nonpositive", "error", name,
                                              f"{m} {name.replace('_', ' ')} {_fmt(v)} is not positive",
                                              "ratio measures are > 0; is this a log value or a difference?"))
                    bad = True
        if ratio and not bad:
            bad = _ratio_plausibility(i, m, e, l, u, issues)
        elif not ratio:
            bad = _beyond_effect_limit(i, m, e, l, u, issues)
        if bad or math.isnan(l) or math.isnan(u):
            continue
        if l >= u:
            issues.append(EffectIssue(i, "ci_order", "error", "ci_lower",
                                      f"CI lower bound {_fmt(l)} is not below the upper bound {_fmt(u)}",
                                      "swap ci_lower and ci_upper?" if l > u else "a CI of zero width cannot give a standard error"))
            continue
        if _too_narrow(l, u, ratio):
            issues.append(EffectIssue(i, "ci_too_narrow", "error", "ci_lower",
                                      f"CI ({_fmt(l)}, {_fmt(u)}) is narrower than {MIN_CI_WIDTH:g} of its bounds "
                                      f"on the {'log' if ratio else 'natural'} scale: no publication prints such digits",
                                      "check the bounds against the source (a typo, or the estimate copied into a bound?)"))
            continue
        if math.isnan(e):
            continue
        if not l <= e <= u:
            issues.append(EffectIssue(i, "outside_ci", "error", "estimate",
                                      f"estimate {_fmt(e)} lies outside its CI ({_fmt(l)}, {_fmt(u)})",
                                      "check the numbers against the source"))
            continue
        g = np.log if ratio else (lambda x: x)
        ge, gl, gu = float(g(e)), float(g(l)), float(g(u))
        off = abs((gl + gu) / 2 - ge) / (gu - gl)
        if off > CENTRE_TOLERANCE:
            scale = "log scale" if ratio else "natural scale"
            issues.append(EffectIssue(i, "not_centred", "warning", "estimate",
                                      f"estimate {_fmt(e)} is not halfway between the CI bounds ({_fmt(l)}, {_fmt(u)}) "
                                      f"on the {scale}: off by {off:.0%} of the CI width (> {CENTRE_TOLERANCE:.0%})",
                                      "a typo, or a CI that is not Wald-type on this scale (metafor conv.wald check)"))
    return issues


def _ratio_plausibility(i: int, m: str, e: float, lo: float, hi: float, issues: list) -> bool:
    """Append the plausibility issues of a positive ratio and its CI (:data:`vocab.RATIO_LIMITS`
    errors, :data:`vocab.RATIO_PLAUSIBLE` warning); True when one is an error."""
    bad = False
    for name, v in (("estimate", e), ("ci_lower", lo), ("ci_upper", hi)):
        if not math.isnan(v) and not RATIO_LIMITS[0] <= v <= RATIO_LIMITS[1]:
            issues.append(EffectIssue(i, "ratio_limits", "error", name,
                                      f"{m} {name.replace('_', ' ')} {_fmt(v)} is outside {RATIO_LIMITS[0]:g} to "
                                      f"{RATIO_LIMITS[1]:g}: not a ratio any study reports",
                                      "enter the ratio itself (0.82), not a log, a percentage or a count"))
            bad = True
    if not bad and not math.isnan(e) and not RATIO_PLAUSIBLE[0] <= e <= RATIO_PLAUSIBLE[1]:
        issues.append(EffectIssue(i, "ratio_implausible", "warning", "estimate",
                                  f"{m} {_fmt(e)} is outside {RATIO_PLAUSIBLE[0]:g} to {RATIO_PLAUSIBLE[1]:g}",
                                  "a percentage reduction (17.7 for 17.7%) or a count entered as a ratio?"))
    return bad


def _beyond_effect_limit(i: int, m: str, e: float, lo: float, hi: float, issues: list) -> bool:
    """Append an error for a difference or bound beyond ±:data:`vocab.EFFECT_LIMIT`; True if any."""
    bad = False
    for name, v in (("estimate", e), ("ci_lower", lo), ("ci_upper", hi)):
        if not math.isnan(v) and abs(v) > EFFECT_LIMIT:
            issues.append(EffectIssue(i, "effect_limit", "error", name,
                                      f"{m} {name.replace('_', ' ')} {_fmt(v)} is beyond ±{EFFECT_LIMIT:g}",
                                      "check the units: no study reports such a difference"))
            bad = True
    return bad


def _too_narrow(lo: float, hi: float, ratio: bool) -> bool:
    """The CI is narrower than :data:`vocab.MIN_CI_WIDTH` (log scale for ratios, else relative
    to max(1, |bound|))."""
    if ratio:
        return math.log(hi) - math.log(lo) < MIN_CI_WIDTH
    return hi - lo < MIN_CI_WIDTH * max(1.0, abs(lo), abs(hi))


class _TooClose(Exception):
    """A decision of :func:`check_p_vs_ci` within the error of :class:`_FastNormal`: make it with scipy."""


class _ExactNormal:
    """The package's normal functions (``scipy.special.ndtri`` / ``ndtr``); decisions as computed."""

    @staticmethod
    def z_of_p(p2: float) -> float:
        """|z| of a two-sided p-value."""
        from scipy.special import ndtri

        return float(-ndtri(np.clip(p2, 1e-300, 1.0) / 2.0))

    z_crit = staticmethod(z_crit)

    @staticmethod
    def p_of_z(z: float) -> str:
        """The two-sided p of |z|, printed to 2 significant digits."""
        from ._dist import norm_sf

        return f"{float(2.0 * norm_sf(z)):.2g}"

    @staticmethod
    def lt(a: float, b: float) -> bool:
        return a < b


class _FastNormal:
    """The standard library's normal functions (``math.erfc``; ``NormalDist.inv_cdf``, Wichura's
    AS 241), within ~1e-15 relative of scipy's but not bit-identical, so that ``metaanalysis
    validate`` starts without scipy.special (~0.1 s). A comparison closer than
    ``_MARGIN`` or a printed p that the same margin could round differently raises
    :class:`_TooClose`, and the row is checked again with :class:`_ExactNormal`: the
    warnings are always those scipy's numbers give (tests/test_effects.py checks both paths).

    Wichura MJ (1988). Algorithm AS 241: the percentage points of the normal distribution.
    Applied Statistics 37(3):477-484. doi:10.2307/2347330 (``statistics.NormalDist.inv_cdf``).
    """

    _MARGIN = 1e-9

    @staticmethod
    def z_of_p(p2: float) -> float:
        from statistics import NormalDist

        return -NormalDist().inv_cdf(min(max(p2, 1e-300), 1.0) / 2.0)

    @staticmethod
    def z_crit(level: float) -> float:
        from statistics import NormalDist

        from .vocab import as_level

        return -NormalDist().inv_cdf((1.0 - as_level(level)) / 2.0)

    @classmethod
    def p_of_z(cls, z: float) -> str:
        p = math.erfc(z / math.sqrt(2.0))
        shown = {f"{p * (1.0 + d):.2g}" for d in (-cls._MARGIN, 0.0, cls._MARGIN)}
        if len(shown) > 1 or 0.0 < p < 1e-290:  # near a rounding edge, or subnormal (few digits)
            raise _TooClose
        return shown.pop()

    @classmethod
    def lt(cls, a: float, b: float) -> bool:
        if not (math.isinf(a) or math.isinf(b)) and abs(a - b) <= cls._MARGIN * (abs(a) + abs(b) + 1e-3):
            raise _TooClose
        return a < b


def check_p_vs_ci(estimate, lower, upper, level, p, relation, decimals, sided, measure) -> list[EffectIssue]:
    """Warn where a reported p-value disagrees with the p-value implied by the CI.

    The comparison is on the z scale, where both rounding and the usual log-rank-vs-Wald
    differences are roughly constant: ``z_ci = |yi| / se_ci`` from the CI, and the reported
    p (made two-sided with :func:`two_sided_p`) is widened to its rounding interval
    (``0.01`` -> [0.005, 0.015] -> z in [2.43, 2.81]). A warning is raised when ``z_ci`` lies
    outside that z-interval by more than ``Z_TOLERANCE_ABS + Z_TOLERANCE_REL * z``
    (inequalities: on the wrong side of the bound by that much), or when the CI and the
    p-value disagree about significance at the CI's level. Example: SPLENDOUR's HR 0.96
    (0.78-1.19) has ``z_ci = 0.38``; its one-sided p = 0.36 read as two-sided gives z = 0.92
    (warned, with the hint to set ``p_sided = 1``), read as one-sided z = 0.37 (fine).

    Parameters are arrays of shape (k,) (``measure``, ``relation`` sequences of str);
    rows with missing values are skipped. ``level`` is a fraction.
    """
    est, lo, hi, lev, pp, dec, sd = (
        np.atleast_1d(np.asarray(a, dtype=float)) for a in (estimate, lower, upper, level, p, decimals, sided)
    )
    k = est.shape[0]
    lev, dec, sd = (np.broadcast_to(a, (k,)) for a in (lev, dec, sd))
    measures = [measure] * k if isinstance(measure, str) else list(measure)
    relations = [relation] * k if isinstance(relation, str) else list(relation)
    issues: list[EffectIssue] = []
    for i in range(k):
        m = measures[i]
        vals = (est[i], lo[i], hi[i], lev[i], pp[i])
        if m not in EFFECT_MEASURES or any(math.isnan(v) for v in vals):
            continue
        if not (lo[i] < est[i] < hi[i]) or (m in LOG_MEASURES and lo[i] <= 0) or not LEVEL_MIN <= lev[i] < 1:
            continue
        if not 0 < pp[i] <= 1:
            continue
        row = (float(est[i]), float(lo[i]), float(hi[i]), float(lev[i]), float(pp[i]),
               0.5 * 10.0 ** (-dec[i]) if not math.isnan(dec[i]) else 0.0,
               2 if math.isnan(sd[i]) else int(sd[i]), relations[i], m)
        try:
            issue = _p_vs_ci_row(i, *row, _FastNormal)
        except _TooClose:
            issue = _p_vs_ci_row(i, *row, _ExactNormal)
        if issue is not None:
            issues.append(issue)
    return issues


def _p_vs_ci_row(i: int, est: float, lo: float, hi: float, lev: float, p: float, half: float, s: int, rel: str,
                 m: str, nf) -> EffectIssue | None:
    """:func:`check_p_vs_ci` of one complete row (``half``: half a unit of the p's last printed
    decimal; ``nf``: :class:`_FastNormal` or :class:`_ExactNormal`)."""
    yi, vi = _wald(np.asarray(est), np.asarray(lo), np.asarray(hi), nf.z_crit(lev), m)
    z_ci = float(abs(yi) / math.sqrt(vi))

    def z_range(sides):
        ends = [float(two_sided_p(min(max(p + d, 1e-300), 1.0), sides)) for d in (-half, half)]
        zs = [nf.z_of_p(e) for e in ends]
        return min(zs), max(zs)

    z_lo, z_hi = z_range(s)
    shown = f"{'' if rel == '=' else rel}{p:g}" + (" (one-sided)" if s == 1 else "")

    def far(lo_z, hi_z):
        return nf.lt(z_ci, lo_z - (Z_TOLERANCE_ABS + Z_TOLERANCE_REL * lo_z)) or nf.lt(
            hi_z + (Z_TOLERANCE_ABS + Z_TOLERANCE_REL * hi_z), z_ci)

    msg = None
    if rel in ("<", "<="):  # true p <= bound: z >= z(bound)
        if far(z_lo, math.inf):
            msg = f"p-value {shown} but the CI implies p = {nf.p_of_z(z_ci)}"
    elif rel in (">", ">="):
        if far(0.0, z_hi):
            msg = f"p-value {shown} but the CI implies p = {nf.p_of_z(z_ci)}"
    elif far(z_lo, z_hi):
        msg = f"p-value {shown} disagrees with the p = {nf.p_of_z(z_ci)} implied by the CI"
    else:
        alpha = 1.0 - lev
        null = null_value(m)
        z_alpha = nf.z_of_p(alpha)
        ci_sig = hi < null or lo > null
        ci_nonsig = lo < null < hi
        if (ci_sig and not nf.lt(z_alpha, z_hi)) or (ci_nonsig and nf.lt(z_alpha, z_lo)):
            msg = (f"p-value {shown} and the {lev * 100:g}% CI ({_fmt(lo)}, {_fmt(hi)}) "
                   f"disagree about significance at {alpha:.2g} (CI-implied p = {nf.p_of_z(z_ci)})")
    if msg is None:
        return None
    if s == 2 and rel == "=" and not far(*z_range(1)):
        hint = "is the p-value one-sided? set p_sided = 1"
    else:
        hint = "check p_sided and the numbers; log-rank p-values and Wald CIs can differ slightly"
    return EffectIssue(i, "p_disagrees", "warning", "p_value", msg, hint)
