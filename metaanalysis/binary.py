"""Binary outcomes pooled from 2x2 tables: Mantel-Haenszel (OR, RR, RD) and Peto's odds ratio.

``pool_mh(ai, bi, ci, di, measure="OR")`` and ``pool_peto(ai, bi, ci, di)`` reproduce metafor 3.8's
``rma.mh`` and ``rma.peto`` (Viechtbauer 2010, doi:10.18637/jss.v036.i03; source R/rma.mh.r and
R/rma.peto.r), field by field:

* Cells follow metafor: ``ai``/``bi`` events/non-events in the intervention arm, ``ci``/``di`` in the
  control arm.
* The Mantel-Haenszel estimate (Mantel & Haenszel 1959, doi:10.1093/jnci/22.4.719) with the
  Robins-Breslow-Greenland variance for the log OR (doi:10.2307/2531052), Greenland-Robins for the
  log RR (doi:10.2307/2530643) and Sato-Greenland-Robins for the RD (Biometrics 1989;45:1323).
  For OR also Cochran's and the Cochran-Mantel-Haenszel test of no association (continuity
  corrected unless ``correct=False``), the Breslow-Day and Tarone's heterogeneity tests.
* Peto's one-step log OR (Yusuf et al. 1985, doi:10.1016/S0033-0620(85)80003-7): Σ(O−E)/ΣV, with
  Peto's own heterogeneity Q.
* The Q of ``pool_mh`` is the inverse-variance Q of the per-study ``escalc`` effects around the MH
  estimate; I² = 100 (Q − (k_yi − 1))/Q floored at 0, H² = Q/(k_yi − 1), with k_yi the studies whose
  effect is estimable.
* Zero cells: ``add``, ``to`` and ``drop00`` each take one value or two. The first applies to the
  per-study effects (yi, vi: Q, I², the forest plot); the second to the pooling itself. One value
  means "this for the per-study effects, and no adjustment for the pooling" (metafor's defaults:
  ``add=(1/2, 0)``, ``to=("only0", "none")``, ``drop00=(True, False)``). ``to="only0"`` adds to
  the four cells of tables with a zero cell, ``"all"`` to every table, ``"if0all"`` to every table
  when any has a zero cell, ``"none"`` never; ``drop00`` drops tables with no events (or only
  events) in both arms.

Everything is vectorised numpy over the k tables; nothing iterates, so there is no ``control=``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import chdtrc, ndtr

from . import _dist
from . import vocab
from .results import MetaResult, jsonable

__all__ = ["BinaryResult", "pool_mh", "pool_peto", "zero_cell_options", "escalc_2x2", "BINARY_FIELDS"]

#: The scalar result fields, in the order ``to_frame`` gives them.
BINARY_FIELDS: tuple[str, ...] = (
    "method", "measure", "level", "k", "k_yi", "k_pos", "estimate", "se", "stat", "pvalue", "ci_lower",
    "ci_upper", "exp_estimate", "exp_ci_lower", "exp_ci_upper", "q", "q_df", "q_pvalue", "i2", "h2",
    "cochran", "cochran_pvalue", "cmh", "cmh_pvalue", "breslow_day", "breslow_day_pvalue", "tarone",
    "tarone_pvalue")

_NAN = float("nan")


@dataclass(frozen=True)
class BinaryResult:
    """Result of a Mantel-Haenszel or Peto meta-analysis of 2x2 tables (a common-effect model).

    Effect quantities are on the analysis scale (log OR, log RR, RD); ``exp_*`` are the ratio-scale
    values for OR and RR (None for RD). Names follow :class:`metaanalysis.results.MetaResult`;
    metafor's names in brackets. A statistic metafor gives as NA is NaN here.

    Attributes
    ----------
    method : {"MH", "Peto"}
    measure : {"OR", "RR", "RD"}
    level : float
        Confidence level as a fraction.
    k : int
        Tables used for the pooled estimate (``k``; after ``drop00[1]``).
    k_yi : int
        Tables with an estimable per-study effect (``k.yi``): Q has ``k_yi - 1`` df.
    k_pos : int or None
        Tables entering Tarone's and the Breslow-Day test (MH, OR) or with a positive Peto
        variance (Peto) (``k.pos``); None for MH with RR or RD.
    estimate, se, stat, pvalue, ci_lower, ci_upper : float
        Pooled estimate, SE, z, two-sided p, Wald CI (``beta``, ``se``, ``zval``, ``pval``, ``ci.lb``, ``ci.ub``).
    q, q_df, q_pvalue, i2, h2 : float
        Heterogeneity (``QE``, ``QEp``, ``I2`` in percent, ``H2``).
    cochran, cochran_pvalue, cmh, cmh_pvalue : float
        Cochran's and the Cochran-Mantel-Haenszel chi-square (1 df) of no association (``CO``, ``MH``);
        NaN unless MH with OR.
    breslow_day, breslow_day_pvalue, tarone, tarone_pvalue : float
        Heterogeneity tests of odds ratios on ``k_pos - 1`` df (``BD``, ``TA``); NaN unless MH with OR.
    weights : tuple of float
        Per-table weight in percent, input order (``weights(res)``); NaN for dropped tables.
    yi, vi : tuple of float
        Per-table effects and sampling variances (``yi.f``, ``vi.f``; escalc with the first
        ``add``/``to``/``drop00``); NaN where not estimable.
    add, to, drop00 : pairs
        The zero-cell options used (per-study effects, pooling).
    correct : bool
        Continuity correction of Cochran's and the CMH test (MH only).
    metafor_call : str
        The R call that reproduces these numbers (``dat`` holding ai, bi, ci, di).
    """

    method: str
    measure: str
    level: float
    k: int
    k_yi: int
    k_pos: int | None
    estimate: float
    se: float
    stat: float
    pvalue: float
    ci_lower: float
    ci_upper: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    cochran: float
    cochran_pvalue: float
    cmh: float
    cmh_pvalue: float
    breslow_day: float
    breslow_day_pvalue: float
    tarone: float
    tarone_pvalue: float
    weights: tuple[float, ...]
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    add: tuple[float, float]
    to: tuple[str, str]
    drop00: tuple[bool, bool]
    correct: bool
    metafor_call: str
    notes: tuple[str, ...] = field(default=())

    @property
    def tau2(self) -> float:
        """Always 0: MH and Peto are common-effect models (metafor sets ``tau2 = 0``)."""
        return 0.0

    def _exp(self, x: float) -> float | None:
        return None if self.measure == "RD" or not math.isfinite(x) else math.exp(x)

    @property
    def exp_estimate(self) -> float | None:
        """Pooled OR or RR (``predict(res, transf=exp)``); None for RD or when not estimable."""
        return self._exp(self.estimate)

    @property
    def exp_ci_lower(self) -> float | None:
        return self._exp(self.ci_lower)

    @property
    def exp_ci_upper(self) -> float | None:
        return self._exp(self.ci_upper)

    def to_meta_result(self) -> MetaResult:
        """The same fit as a common-effect :class:`~metaanalysis.results.MetaResult` (method "MH" or
        "Peto", test "z", τ² = 0, no τ² CI and no prediction interval), for the report tree and its
        renderers. ``weights``, ``yi`` and ``vi`` keep the tables used for the estimate (``k`` of them)."""
        used = tuple(i for i, w in enumerate(self.weights) if not math.isnan(w))
        return MetaResult(
            k=self.k, method=self.method, test="z", level=self.level, estimate=self.estimate, se=self.se,
            stat=self.stat, df=None, pvalue=self.pvalue, ci_lower=self.ci_lower, ci_upper=self.ci_upper,
            tau2=0.0, tau2_se=None, tau2_ci_lower=None, tau2_ci_upper=None, tau=0.0, i2=self.i2, i2_ci_lower=None,
            i2_ci_upper=None, h2=self.h2, h2_ci_lower=None, h2_ci_upper=None, q=self.q, q_df=self.q_df,
            q_pvalue=self.q_pvalue, pi_lower=None, pi_upper=None, weights=tuple(self.weights[i] for i in used),
            converged=True, iterations=0, metafor_call=self.metafor_call, yi=tuple(self.yi[i] for i in used),
            vi=tuple(self.vi[i] for i in used), notes=self.notes)

    def to_dict(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Plain-Python dict, JSON-ready (NaN/inf become None), ``exp_*`` included.

        Parameters
        ----------
        keys : tuple of str, optional
            Restrict to these keys (default: every field and the ``exp_*`` values).
        """
        d = asdict(self)
        d.update(exp_estimate=self.exp_estimate, exp_ci_lower=self.exp_ci_lower, exp_ci_upper=self.exp_ci_upper)
        if keys is not None:
            d = {k: d[k] for k in keys}
        return {k: jsonable(v) for k, v in d.items()}

    def to_frame(self):
        """One-row pandas DataFrame of the scalar fields (:data:`BINARY_FIELDS`)."""
        import pandas as pd

        return pd.DataFrame([self.to_dict(BINARY_FIELDS)], columns=list(BINARY_FIELDS))


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------


def _pair(name: str, value, second):
    """metafor's rule for ``add``/``to``/``drop00``: one value is (value, default second), two are as given."""
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return (value, second)
    try:
        seq = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be one value or two (for the per-study effects, for the pooling); "
                         f"got {value!r}") from None
    if len(seq) != 2:
        raise ValueError(f"{name} must be one value or two (for the per-study effects, for the pooling); "
                         f"got {len(seq)} values")
    return seq


def zero_cell_options(add=0.5, to="only0", drop00=True):
    """Validate metafor's zero-cell options and expand each to a (per-study effects, pooling) pair.

    Parameters
    ----------
    add : float or pair of float
        Value added to the cells (>= 0, finite).
    to : {"only0", "all", "if0all", "none"} or a pair of them
    drop00 : bool or pair of bool

    Returns
    -------
    (add, to, drop00) : tuple of pairs
        A single value ``v`` becomes ``(v, 0)``, ``(v, "none")``, ``(v, False)`` (metafor).

    Raises
    ------
    ValueError
        A wrong count of values, a negative or non-finite ``add``, an unknown ``to``, a non-boolean
        ``drop00``.
    """
    adds = _pair("add", add, 0.0)
    tos = _pair("to", to, "none")
    drops = _pair("drop00", drop00, False)
    out_add = []
    for a in adds:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(a)) or a < 0:
            raise ValueError(f"add must be a finite number >= 0 (0.5 is metafor's default); got {a!r}")
        out_add.append(float(a))
    out_to = []
    for t in tos:
        if not isinstance(t, str) or t.lower() not in vocab.ZERO_CELL_TO:
            raise ValueError(f"to must be one of {', '.join(vocab.ZERO_CELL_TO)}; got {t!r}")
        out_to.append(t.lower())
    for d in drops:
        if not isinstance(d, (bool, np.bool_)):
            raise ValueError(f"drop00 must be True or False; got {d!r}")
    return tuple(out_add), tuple(out_to), tuple(bool(d) for d in drops)


def _tables(ai, bi, ci, di) -> tuple[np.ndarray, ...]:
    """The four cell vectors as float arrays of one length k >= 1, checked (no NaN, >= 0, no empty arm)."""
    cells = []
    for name, x in zip(("ai", "bi", "ci", "di"), (ai, bi, ci, di)):
        try:
            a = np.atleast_1d(np.asarray(x, dtype=float))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers (counts), got {x!r}") from None
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional (one count per study), got shape {a.shape}")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"{name}[{int(bad[0])}] is missing or not finite: every study needs all four "
                             f"counts (drop the study or supply its counts)")
        bad = np.flatnonzero(a < 0)
        if bad.size:
            raise ValueError(f"{name}[{int(bad[0])}] is negative ({a[bad[0]]:g}): counts are >= 0")
        cells.append(a)
    k = {len(c) for c in cells}
    if len(k) != 1:
        raise ValueError(f"ai, bi, ci, di must have one count per study each; got lengths "
                         f"{', '.join(str(len(c)) for c in cells)}")
    if not cells[0].size:
        raise ValueError("no studies: ai, bi, ci, di are empty")
    a, b, c, d = cells
    for arm, n in (("intervention (ai + bi)", a + b), ("control (ci + di)", c + d)):
        bad = np.flatnonzero(n == 0)
        if bad.size:
            raise ValueError(f"study {int(bad[0])} has no participants in the {arm} arm")
    return a, b, c, d


def _measure(measure: str) -> str:
    m = str(measure).upper()
    if m not in vocab.BINARY_METHOD_MEASURES["MH"]:
        raise ValueError(f"measure must be one of {', '.join(vocab.BINARY_METHOD_MEASURES['MH'])} for the "
                         f"Mantel-Haenszel method; got {measure!r}")
    return m


# ---------------------------------------------------------------------------------------------
# per-study effects (metafor escalc) and the zero-cell adjustment
# ---------------------------------------------------------------------------------------------


def _double_zero(a, b, c, d) -> np.ndarray:
    """No events in either arm, or only events (metafor's ``drop00`` rule)."""
    return ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))


def _adjust(a, b, c, d, add: float, to: str) -> tuple[np.ndarray, ...]:
    """Add ``add`` to the four cells of the tables ``to`` selects (metafor's add/to rule)."""
    any0 = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    if to == "all":
        sel = np.ones(a.shape, dtype=bool)
    elif to == "only0":
        sel = any0
    elif to == "if0all":
        sel = np.full(a.shape, bool(np.any(any0)))
    else:
        sel = np.zeros(a.shape, dtype=bool)
    inc = np.where(sel, add, 0.0)
    return a + inc, b + inc, c + inc, d + inc


def escalc_2x2(ai, bi, ci, di, measure: str = "OR", add: float = 0.5, to: str = "only0",
               drop00: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-study effects from 2x2 tables exactly as metafor's ``escalc`` (``vtype="LS"``).

    Parameters
    ----------
    ai, bi, ci, di : array_like, shape (k,)
        Counts, checked as in :func:`pool_mh`.
    measure : {"OR", "RR", "RD", "PETO"}
        ``"PETO"``: Peto's log OR (O − E)/V with variance 1/V.
    add, to, drop00 : float, str, bool
        One zero-cell setting each (see the module docstring).

    Returns
    -------
    yi, vi : ndarray, shape (k,)
        NaN where metafor gives NA: dropped double-zero tables, and infinite or undefined values
        (metafor recodes ±Inf and NaN to NA).
    """
    a, b, c, d = _tables(ai, bi, ci, di)
    keep = ~(_double_zero(a, b, c, d) & drop00)
    yi = np.full(a.shape, _NAN)
    vi = np.full(a.shape, _NAN)
    a2, b2, c2, d2 = _adjust(a[keep], b[keep], c[keep], d[keep], add, to)
    n1, n2 = a2 + b2, c2 + d2
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = a2 / n1, c2 / n2
        if measure == "OR":
            y, v = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2)), 1 / a2 + 1 / b2 + 1 / c2 + 1 / d2
        elif measure == "RR":
            y, v = np.log(p1) - np.log(p2), 1 / a2 - 1 / n1 + 1 / c2 - 1 / n2
        elif measure == "RD":
            y, v = p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        elif measure == "PETO":
            n = n1 + n2
            xt, yt = a2 + c2, b2 + d2
            var = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
            y, v = (a2 - xt * n1 / n) / var, 1 / var
        else:
            raise ValueError(f"measure must be OR, RR, RD or PETO; got {measure!r}")
    bad = ~(np.isfinite(y) & np.isfinite(v))
    yi[keep] = np.where(bad, _NAN, y)
    # metafor recodes a negative variance (rounding) to NA but keeps yi; the pair is then unused.
    vi[keep] = np.where(bad | (v < 0), _NAN, v)
    return yi, vi


# ---------------------------------------------------------------------------------------------
# the pooled estimates (metafor R/rma.mh.r, R/rma.peto.r)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fit:
    """What one pooling method computes from the (adjusted) tables it uses."""

    estimate: float
    se: float
    weights: np.ndarray                  # unnormalised, one per used table
    tests: dict[str, float] = field(default_factory=dict)
    k_pos: int | None = None


def _wald(estimate: float, se: float, level: float) -> tuple[float, float, float, float]:
    """z, two-sided p and the Wald CI (metafor: ``2*pnorm(abs(z), lower.tail=FALSE)``)."""
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return _NAN, _NAN, _NAN, _NAN
    z = estimate / se
    crit = _dist.z_crit(level)
    return z, float(2.0 * ndtr(-abs(z))), estimate - crit * se, estimate + crit * se


def _mh_or(a, b, c, d, correct: bool) -> _Fit:
    """MH odds ratio with the Robins-Breslow-Greenland variance (doi:10.2307/2531052)."""
    n = a + b + c + d
    p, q = a / n + d / n, b / n + c / n
    r_i, s_i = (a / n) * d, (b / n) * c
    r, s = r_i.sum(), s_i.sum()
    if r == 0 or s == 0:
        psi = est = se = _NAN
    else:
        psi = r / s
        est = math.log(psi)
        se = math.sqrt(0.5 * ((p * r_i).sum() / r**2 + (p * s_i + q * r_i).sum() / (r * s) + (q * s_i).sum() / s**2))
    tests = _cmh_tests(a, b, c, d, correct)
    k_pos, bd, ta = _tarone(a, b, c, d, psi)
    tests.update(breslow_day=bd, tarone=ta)
    for name in ("breslow_day", "tarone"):
        tests[name + "_pvalue"] = float(chdtrc(k_pos - 1, tests[name])) if k_pos > 1 else _NAN
    return _Fit(est, se, (b / n) * c, tests, k_pos)


def _cmh_tests(a, b, c, d, correct: bool) -> dict[str, float]:
    """Cochran's and the Cochran-Mantel-Haenszel chi-square (1 df) of no association (Cochran 1954,
    doi:10.2307/3001616); they differ only in the hypergeometric (N − 1) versus binomial (N) variance."""
    n1, n2, n = a + b, c + d, a + b + c + d
    xt, yt = a + c, b + d
    if xt.sum() == 0 or yt.sum() == 0:
        return dict(cochran=_NAN, cochran_pvalue=_NAN, cmh=_NAN, cmh_pvalue=_NAN)
    num = (abs((a - (n1 / n) * xt).sum()) - (0.5 if correct else 0.0)) ** 2
    co = num / ((n1 / n) * (n2 / n) * (xt * (yt / n))).sum()
    mh = num / ((n1 / n) * (n2 / n) * (xt * (yt / (n - 1)))).sum()
    return dict(cochran=float(co), cochran_pvalue=float(chdtrc(1, co)), cmh=float(mh),
                cmh_pvalue=float(chdtrc(1, mh)))


def _tarone(a, b, c, d, psi: float) -> tuple[int, float, float]:
    """Breslow-Day and Tarone's heterogeneity statistics around the MH odds ratio (Tarone 1985,
    doi:10.1093/biomet/72.1.91), over the tables with a positive fitted cell and both outcomes;
    ``psi`` is the MH odds ratio R/S itself (metafor tests ``psi == 1`` exactly).

    Returns ``(k_pos, breslow_day, tarone)``; ``(0, NaN, NaN)`` when the MH OR is not estimable.
    """
    if not math.isfinite(psi):
        return 0, _NAN, _NAN
    n1, n2, n = a + b, c + d, a + b + c + d
    xt, yt = a + c, b + d
    with np.errstate(divide="ignore", invalid="ignore"):
        if psi == 1.0:
            n11 = (n1 / n) * xt
        else:
            # the fitted a-cell under the common odds ratio: the root of a quadratic in [0, min(n1, xt)]
            aa = psi * (n1 + xt) + (n2 - xt)
            bb = np.sqrt(aa**2 - 4 * n1 * xt * psi * (psi - 1))
            n11 = (aa - bb) / (2 * (psi - 1))
        pos = (n11 > 0) & (xt > 0) & (yt > 0)
        e11 = n11[pos]
        e12, e21 = n1[pos] - e11, xt[pos] - e11
        e22 = e11 - n1[pos] - xt[pos] + n[pos]
        info = 1.0 / (1 / e11 + 1 / e12 + 1 / e21 + 1 / e22)
        dev = a[pos] - e11
        bd = max(0.0, float((dev**2 / info).sum()))
        ta = float(bd - dev.sum() ** 2 / info.sum())
    # R's max(0, NaN) is NaN (no table with a positive fitted cell gives 0/0)
    return int(pos.sum()), bd, (ta if math.isnan(ta) else max(0.0, ta))


def _mh_rr(a, b, c, d) -> _Fit:
    """MH risk ratio with the Greenland-Robins variance (doi:10.2307/2530643)."""
    n1, n2, n = a + b, c + d, a + b + c + d
    r, s = (a * (n2 / n)).sum(), (c * (n1 / n)).sum()
    if a.sum() == 0 or c.sum() == 0:
        est = se = _NAN
    else:
        est = math.log(r / s)
        se = math.sqrt(((n1 / n) * (n2 / n) * (a + c) - (a / n) * c).sum() / (r * s))
    return _Fit(est, se, (c / n) * n1)


def _mh_rd(a, b, c, d) -> _Fit:
    """MH risk difference with the Sato-Greenland-Robins variance (Biometrics 1989;45:1323)."""
    n1, n2, n = a + b, c + d, a + b + c + d
    w = (n1 * (n2 / n)).sum()
    est = float((a * (n2 / n) - c * (n1 / n)).sum() / w)
    var = (est * (c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2).sum()
           + (a * (n2 - c) / n + c * (n1 - a) / n).sum() / 2) / w**2
    return _Fit(est, math.sqrt(var) if var >= 0 else _NAN, (n1 / n) * n2)


def _peto(a, b, c, d) -> tuple[_Fit, float, int]:
    """Peto's one-step log OR Σ(O − E)/ΣV (Yusuf et al. 1985) and Peto's Q; returns (fit, Q, k_pos)."""
    n1, n2, n = a + b, c + d, a + b + c + d
    xt, yt = a + c, b + d
    e = xt * n1 / n
    v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)   # 0 for a table without events or non-events
    if v.sum() == 0:
        raise ValueError("one of the two outcomes never occurs in any table: Peto's method cannot be used")
    o_e = a - e
    est = float(o_e.sum() / v.sum())
    pos = v > 0
    q = max(0.0, float((o_e[pos] ** 2 / v[pos]).sum() - o_e.sum() ** 2 / v[pos].sum()))
    return _Fit(est, math.sqrt(1 / v.sum()), v, k_pos=int(pos.sum())), q, int(pos.sum())


def _q_stats(q: float, k_yi: int, peto_k_pos: int | None = None) -> tuple[float, int, float, float, float]:
    """(Q, df, p, I² in %, H²) as rma.mh/rma.peto report them: Q = 0, p = 1, I² = 0, H² = 1 with one
    estimable table (for Peto: at most one table with a positive variance)."""
    df = max(k_yi - 1, 0)
    single = (peto_k_pos if peto_k_pos is not None else k_yi) <= 1
    if single:
        return (q if peto_k_pos is not None else 0.0), df, 1.0, 0.0, 1.0
    if math.isnan(q):
        return _NAN, df, _NAN, _NAN, _NAN
    with np.errstate(divide="ignore", invalid="ignore"):
        i2 = float(100.0 * (np.float64(q) - df) / np.float64(q))
    # R's max(0, x) keeps NaN (Q = inf from a zero variance gives inf/inf), and Q = 0 gives I² = 0
    i2 = i2 if math.isnan(i2) else max(0.0, i2)
    return q, df, float(chdtrc(df, q)), i2, q / df


def _iv_q(yi: np.ndarray, vi: np.ndarray, estimate: float) -> float:
    """Inverse-variance Q of the estimable per-study effects around the MH estimate (metafor's QE)."""
    ok = ~(np.isnan(yi) | np.isnan(vi))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = float((1 / vi[ok] * (yi[ok] - estimate) ** 2).sum())
    return q if math.isnan(q) else max(0.0, q)


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


def _r_value(x) -> str:
    if isinstance(x, bool):
        return "TRUE" if x else "FALSE"
    if isinstance(x, str):
        return f'"{x}"'
    return f"{float(x):.15g}"


def _r_call(fun: str, measure: str | None, opts, level: float, correct: bool | None) -> str:
    """The metafor call (on ``dat`` with columns ai, bi, ci, di) giving the same numbers."""
    add, to, drop00 = opts
    args = ["ai=ai", "bi=bi", "ci=ci", "di=di", "data=dat"]
    if measure is not None:
        args.append(f'measure="{measure}"')
    for name, pair in (("add", add), ("to", to), ("drop00", drop00)):
        args.append(f"{name}=c({_r_value(pair[0])}, {_r_value(pair[1])})")
    if correct is not None and not correct:
        args.append("correct=FALSE")
    args.append(f"level={100 * level:.10g}")
    return f"{fun}({', '.join(args)})"


def _pool(method: str, measure: str, ai, bi, ci, di, level, add, to, drop00, correct: bool) -> BinaryResult:
    """Shared body of :func:`pool_mh` and :func:`pool_peto` (validation, zero cells, assembly)."""
    level = vocab.as_level(level)
    opts = zero_cell_options(add, to, drop00)
    (add1, add2), (to1, to2), (drop1, drop2) = opts
    a, b, c, d = _tables(ai, bi, ci, di)
    yi, vi = escalc_2x2(a, b, c, d, "PETO" if method == "Peto" else measure, add1, to1, drop1)
    used = ~(_double_zero(a, b, c, d) & drop2)
    if not used.any():
        raise ValueError("every table has no events (or only events) in both arms and drop00 drops them: "
                         "nothing to pool")
    tables = _adjust(a[used], b[used], c[used], d[used], add2, to2)
    k_yi = int((~(np.isnan(yi) | np.isnan(vi))).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "Peto":
            fit, q, peto_pos = _peto(*tables)
            qs = _q_stats(q, k_yi, peto_pos)
        else:
            fit = {"OR": lambda: _mh_or(*tables, correct), "RR": lambda: _mh_rr(*tables),
                   "RD": lambda: _mh_rd(*tables)}[measure]()
            qs = _q_stats(_iv_q(yi, vi, fit.estimate), k_yi)
        weights = np.full(a.shape, _NAN)
        weights[used] = 100.0 * fit.weights / fit.weights.sum()
    z, p, lo, hi = _wald(fit.estimate, fit.se, level)
    t = fit.tests
    call = _r_call("rma.peto" if method == "Peto" else "rma.mh", None if method == "Peto" else measure, opts,
                   level, None if method == "Peto" else correct)
    return BinaryResult(
        method=method, measure=measure, level=level, k=int(used.sum()), k_yi=k_yi, k_pos=fit.k_pos,
        estimate=float(fit.estimate), se=float(fit.se), stat=z, pvalue=p, ci_lower=lo, ci_upper=hi,
        q=qs[0], q_df=qs[1], q_pvalue=qs[2], i2=qs[3], h2=qs[4],
        **{key: float(t.get(key, _NAN)) for key in (
            "cochran", "cochran_pvalue", "cmh", "cmh_pvalue", "breslow_day", "breslow_day_pvalue", "tarone",
            "tarone_pvalue")},
        weights=tuple(float(w) for w in weights), yi=tuple(float(y) for y in yi), vi=tuple(float(v) for v in vi),
        add=(add1, add2), to=(to1, to2), drop00=(drop1, drop2), correct=bool(correct), metafor_call=call)


def pool_mh(ai, bi, ci, di, measure: str = "OR", level: float = 0.95, add=0.5, to="only0", drop00=True,
            correct: bool = True) -> BinaryResult:
    """Mantel-Haenszel common-effect meta-analysis of 2x2 tables, as metafor's ``rma.mh``.

    Mantel & Haenszel (1959), doi:10.1093/jnci/22.4.719; variances: Robins, Breslow & Greenland
    (1986, OR), Greenland & Robins (1985, RR), Sato, Greenland & Robins (1989, RD) — see the module
    docstring for the formulas and the zero-cell rules.

    Parameters
    ----------
    ai, bi, ci, di : array_like, shape (k,)
        Events and non-events in the intervention arm (ai, bi) and the control arm (ci, di):
        finite counts >= 0, each arm with at least one participant.
    measure : {"OR", "RR", "RD"}
        Odds ratio, risk ratio (both pooled on the log scale) or risk difference.
    level : float
        Confidence level, 0.95 or 95.
    add, to, drop00 : one value or a pair
        Zero-cell handling (metafor's arguments; first value: per-study effects, second: the
        pooling). Defaults as metafor: ``add=(1/2, 0)``, ``to=("only0", "none")``, ``drop00=(True, False)``.
    correct : bool
        Continuity correction (0.5) of Cochran's and the CMH test (OR only).

    Returns
    -------
    BinaryResult
        Estimate, SE, z, p, CI, Q (with p, I², H²), and for OR the CMH, Cochran, Breslow-Day and
        Tarone tests; per-study yi/vi and MH weights (percent).

    Raises
    ------
    ValueError
        Counts missing, negative or of unequal length, an empty arm, an unknown measure or zero-cell
        option, a level outside the level rule, or no table left after ``drop00``.

    Examples
    --------
    >>> res = pool_mh([4, 6], [96, 94], [9, 12], [91, 88], measure="RR")
    >>> round(res.exp_estimate, 4)
    0.4762
    """
    return _pool("MH", _measure(measure), ai, bi, ci, di, level, add, to, drop00, bool(correct))


def pool_peto(ai, bi, ci, di, level: float = 0.95, add=0.5, to="only0", drop00=True) -> BinaryResult:
    """Peto's one-step odds ratio (common effect), as metafor's ``rma.peto``.

    log OR = Σ(Oᵢ − Eᵢ)/ΣVᵢ with SE 1/√ΣVᵢ, Oᵢ = aᵢ, Eᵢ = (aᵢ + cᵢ) n₁ᵢ/Nᵢ and Vᵢ the hypergeometric
    variance; Q = Σ(Oᵢ − Eᵢ)²/Vᵢ − (Σ(Oᵢ − Eᵢ))²/ΣVᵢ (Yusuf et al. 1985,
    doi:10.1016/S0033-0620(85)80003-7). Biased for large effects or unbalanced arms (Greenland &
    Salvan 1990, doi:10.1002/sim.4780090307).

    Parameters
    ----------
    ai, bi, ci, di : array_like, shape (k,)
        As :func:`pool_mh`.
    level : float
        Confidence level, 0.95 or 95.
    add, to, drop00 : one value or a pair
        As :func:`pool_mh` (metafor's defaults).

    Returns
    -------
    BinaryResult
        ``method="Peto"``, ``measure="OR"``; CMH/Tarone fields are NaN; ``k_pos`` counts the tables
        with a positive variance.

    Raises
    ------
    ValueError
        As :func:`pool_mh`, and when one outcome never occurs in any table (ΣV = 0).
    """
    return _pool("Peto", "OR", ai, bi, ci, di, level, add, to, drop00, True)
