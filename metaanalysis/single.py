"""One meta-analysis in plain Python floats: the fast path behind :func:`metaanalysis.pooling.pool`.

:func:`metaanalysis.pooling.pool_many` is vectorised over analyses; for a single analysis of a
few studies each numpy call costs more (~1 µs) than the arithmetic on its six numbers, so
``pool`` runs the same algorithms here on Python floats and ``math``: the same closed forms,
the same global grid and bracketed Newton iteration for REML/ML, the same Newton iteration
on the convex Q(τ²) for PM/EB and the Q-profile CIs (see :mod:`metaanalysis.estimators`).
Sums run left to right, as the batch engine's column-major sums do, so the two paths agree
to rounding (tests/test_pooling.py checks every field to 1e-12, benchmarks/robustness_sweep.py
on 2,000 random datasets). The rare datasets that need the batch engine's fallbacks (a grid
cell without a sign change of the score; a Newton iteration that does not settle) return
``None`` and ``pool`` hands them to ``pool_many``.

Conventions are metafor 3.8's ``rma.uni``/``confint``/``predict`` (Viechtbauer 2010,
doi:10.18637/jss.v036.i03), as in :mod:`metaanalysis.pooling`.
"""

from __future__ import annotations

import math
from operator import mul

import numpy as np

from . import _dist as dist
from . import estimators as est
from . import vocab
from .results import MetaResult

#: The REML/ML grid of :mod:`metaanalysis.estimators` relative to the upper bound U.
_GRID = tuple(float(g) for g in np.concatenate([[0.0], np.geomspace(est._GRID_SPAN, 1.0, est._GRID_POINTS)]))
#: Above this many studies the vectorised engine is as fast; ``pool`` uses it.
MAX_K = 64


def _weights(v, t):
    return [1.0 / (x + t) for x in v]


def _q(y, w):
    """μ̂ and Q = Σwᵢ(yᵢ − μ̂)² for weights w."""
    s = sum(w)
    mu = sum(a * b for a, b in zip(w, y)) / s
    return mu, sum(a * (b - mu) ** 2 for a, b in zip(w, y))


def _sum_pp(w):
    s = sum(w)
    s2 = sum(x * x for x in w)
    return s2 - 2 * sum(x ** 3 for x in w) / s + s2 ** 2 / s ** 2


def _centred_ss(y):
    """Σ(yᵢ − ȳ)² with R's two-pass mean; exactly 0 for identical values (estimators)."""
    k = len(y)
    if max(y) == min(y):
        return 0.0
    ybar = sum(y) / k
    ybar = ybar + sum(x - ybar for x in y) / k
    return sum((x - ybar) ** 2 for x in y)


def _closed(method, y, v):
    """τ² and metafor's SE of τ² for DL, HS, HE, SJ (k >= 2)."""
    k = len(y)
    if method in ("DL", "HS"):
        w = _weights(v, 0.0)
        s = sum(w)
        q = _q(y, w)[1]
        trP = s - sum(x * x for x in w) / s
        tau2 = max((q - (k - 1)) / trP if method == "DL" else (q - k) / s, 0.0)
        denom = trP if method == "DL" else s
        se = math.sqrt(1.0 / denom ** 2 * (2 * (k - 1) + 4 * tau2 * trP + 2 * tau2 ** 2 * _sum_pp(w)))
        return tau2, se
    if method == "HE":
        rss = _centred_ss(y)
        trPV = sum(v) * (k - 1) / k
        tau2 = max((rss - trPV) / (k - 1), 0.0)
        vv = sum(x * x for x in v)
        sv = sum(v)
        trpvpv = vv - 2 * vv / k + sv ** 2 / k ** 2
        se = math.sqrt(1.0 / (k - 1) ** 2 * (2 * trpvpv + 4 * tau2 * trPV + 2 * tau2 ** 2 * (k - 1)))
        return tau2, se
    # SJ: Sidik & Jonkman (2005), doi:10.1080/10543400500347462
    t0 = _centred_ss(y) / k
    w = _weights(v, t0)
    rss = _q(y, w)[1]
    tau2 = t0 * rss / (k - 1) if t0 > 0 else 0.0
    s = sum(w)
    wv2 = sum((a * b) ** 2 for a, b in zip(w, v))
    trpvpv = wv2 - 2 * sum(a ** 3 * b ** 2 for a, b in zip(w, v)) / s + sum(a * a * b for a, b in zip(w, v)) ** 2 / s ** 2
    spvp = (sum(a * a * b for a, b in zip(w, v)) - 2 * sum(a ** 3 * b for a, b in zip(w, v)) / s
            + sum(a * a for a in w) * sum(a * a * b for a, b in zip(w, v)) / s ** 2)
    se = math.sqrt(t0 ** 2 / (k - 1) ** 2 * (2 * trpvpv + 4 * tau2 * spvp + 2 * tau2 ** 2 * _sum_pp(w)))
    return tau2, se


def _loglik(kind, y, v, t):
    """ML/REML profile log-likelihood up to a constant (estimators._loglik)."""
    d = [x + t for x in v]
    w = [1.0 / x for x in d]
    s = sum(w)
    mu = sum(a * b for a, b in zip(w, y)) / s
    ll = -0.5 * (sum(math.log(x) for x in d) + sum(a * (b - mu) * (b - mu) for a, b in zip(w, y)))
    return ll - 0.5 * math.log(s) if kind == "REML" else ll


def _score_slope(kind, y, v, t):
    """The ML/REML score and its derivative in τ² (estimators._score_slope)."""
    w = [1.0 / (x + t) for x in v]
    s = sum(w)
    mu = sum(a * b for a, b in zip(w, y)) / s
    r = [b - mu for b in y]
    w2 = [a * a for a in w]
    w2r = [a * b for a, b in zip(w2, r)]
    s2 = sum(w2)
    w2r2 = sum(a * b for a, b in zip(w2r, r))
    dw2r2 = -2 * sum(a * b * c for a, b, c in zip(w, w2r, r)) + 2 * sum(w2r) ** 2 / s
    if kind == "ML":
        return w2r2 - s, dw2r2 + s2
    q = s2 / s
    return w2r2 - s + q, dw2r2 + s2 - 2 * sum(a * b for a, b in zip(w2, w)) / s + q * q


def _newton_bracketed(kind, y, v, x, lo, hi):
    """estimators.solve_bracketed_newton for one function; returns (root, iterations) or None."""
    f, d = _score_slope(kind, y, v, x)
    it, last, prev = 1, False, 0.0
    for _ in range(est._MAX_ITER):
        nx = x - f / d if d != 0 else math.nan
        newton = d < 0 and lo <= nx <= hi
        if newton and last:
            return nx, it + 1
        if not newton:
            nx = math.sqrt(max(lo, hi * 1e-16) * hi) if hi > 16 * max(lo, 0.0) else 0.5 * (lo + hi)
        f, d = _score_slope(kind, y, v, nx)
        it += 1
        if f > 0:
            lo = nx
        else:
            hi = nx
        step = nx - x
        last = newton and abs(step) <= 1e-9 * nx and (abs(step) <= 0.01 * abs(prev) or step * prev < 0)
        prev, x = step, nx
        if hi - lo <= 1e-15 * hi:
            return x, it
    return None


def _reml_ml(kind, y, v, U):
    """REML/ML τ² by the global grid and bracketed Newton (estimators._iterative)."""
    G = [U * g for g in _GRID]
    ll = [_loglik(kind, y, v, t) for t in G]
    j = max(range(len(G)), key=lambda i: (ll[i] if ll[i] == ll[i] else -math.inf, -i))
    jl, jh = max(j - 1, 0), min(j + 1, len(G) - 1)
    sj = _score_slope(kind, y, v, G[j])[0]
    lo, hi = (G[j], G[jh]) if sj > 0 else (G[jl], G[j])
    flo = _score_slope(kind, y, v, lo)[0]
    fhi = _score_slope(kind, y, v, hi)[0]
    if lo == 0 and flo <= 0:
        return 0.0, est._GRID_POINTS + 1
    if not (flo > 0 and fhi <= 0):
        return None                                  # the batch engine's golden section
    out = _newton_bracketed(kind, y, v, G[j], lo, hi)
    return None if out is None else (out[0], out[1] + est._GRID_POINTS + 1)


def _q_slope(y, v, t, crit):
    """Q(τ²) − crit and dQ/dτ² = −Σwᵢ²rᵢ² (estimators.q_and_slope, same operations)."""
    w = [1.0 / (x + t) for x in v]
    mu = sum(map(mul, w, y)) / sum(w)
    r = [b - mu for b in y]
    wr2 = list(map(mul, w, map(mul, r, r)))
    return sum(wr2) - crit, -sum(map(mul, w, wr2))


def _convex_root(y, v, crit, hi, q0=None):
    """Root of Q(τ²) = crit from 0 (estimators.solve_convex_decreasing with ``level``);
    (root, evaluations) or None when it does not settle. ``q0``: (Q(0), dQ/dτ²(0)) if known."""
    x = 0.0
    f, d = _q_slope(y, v, x, crit) if q0 is None else (q0[0] - crit, q0[1])
    it = 1
    if not f > 0:
        return x, it
    bold, last, prev = True, False, math.inf
    for _ in range(est._MAX_ITER):
        step = -f / d if d != 0 else math.inf
        bold = bold and f > 1e-3 * crit
        if bold:
            step = step * ((f + crit) / crit)
        nxt = min(x + step, hi)
        ok = math.isfinite(nxt) and nxt > x
        if last:
            return (nxt if ok else x), it + 1
        if not ok:
            return x, it + 2
        it += 1
        fn, dn = _q_slope(y, v, nxt, crit)
        if bold and fn < 0:
            hi, bold = nxt, False
            continue
        if fn <= 0:
            return (x if -fn >= f else nxt), it + 1
        last = step <= 1e-9 * nxt and (step <= 0.01 * prev or step <= 1e-14 * nxt)
        prev, x, f, d = step, nxt, fn, dn
    return None


def _span2(y):
    return (max(y) - min(y)) ** 2


def _tau2(method, y, v):
    """(τ², SE of τ², iterations, converged) or None (hand over to the batch engine)."""
    k = len(y)
    if method == "FE" or k == 1:
        return 0.0, None if method == "FE" else math.nan, 0, True
    if method in ("DL", "HS", "HE", "SJ"):
        t, se = _closed(method, y, v)
        return t, se, 0, True
    U = 1.01 * (k * _span2(y) + max(v)) / (k - 1) + 1e-300
    fit = _convex_root(y, v, float(k - 1), U) if method in ("PM", "EB") else _reml_ml(method, y, v, U)
    if fit is None:
        return None
    t, it = fit
    w = _weights(v, t)
    if method == "ML":
        se = math.sqrt(2.0 / sum(x * x for x in w))
    elif method == "REML":
        se = math.sqrt(2.0 / _sum_pp(w))
    else:
        se = math.sqrt(2.0 * k ** 2 / (k - 1)) / sum(w)
    return t, se, it, True


def _qprofile(y, v, crit, q0):
    """τ² where Q(τ²) = crit (0 when Q(0) <= crit); None when it does not settle."""
    hi = 1.01 * len(y) * _span2(y) / crit + 1e-300
    out = _convex_root(y, v, crit, hi, q0)
    return None if out is None else out[0]


def _ratio(a, b):
    """a / b with numpy's IEEE results for b = 0 (±inf, or NaN for 0/0) instead of an error."""
    if b == 0:
        return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


_quantiles: dict = {}


def _quantile(name: str, a: float, *df: float) -> float:
    """Critical values, cached: a report asks for the same few (level, df) many times."""
    key = (name, a) + df
    if key not in _quantiles:
        _quantiles[key] = float(getattr(dist, name)(a, *df))
    return _quantiles[key]


def _inference(y, w, mu, sw, k, test, alpha):
    """(se, df, crit, stat, pvalue, ci_lower, ci_upper) as pooling._inference."""
    se = math.sqrt(1.0 / sw)
    use_t = test != "z" and k > 1
    if test != "z":
        rss = sum(a * (b - mu) ** 2 for a, b in zip(w, y))
        s2w = 0.0 if rss <= 2.220446049250313e-16 else rss / max(k - 1, 1)
        if test == "adhoc":
            s2w = max(s2w, 1.0)
        if use_t:
            se = se * math.sqrt(s2w)
    if use_t:
        df = float(k - 1)
        crit = _quantile("t_isf", alpha / 2, df)
    else:
        df = None
        crit = _quantile("norm_isf", alpha / 2)
    stat = _ratio(mu, se)
    p = 2 * float(dist.t_sf(abs(stat), df) if use_t else dist.norm_sf(abs(stat)))
    return se, df, crit, stat, p, mu - crit * se, mu + crit * se


def pool_one(y, v, method: str, test: str, level: float, pi: str, tau2=None) -> MetaResult | None:
    """:func:`metaanalysis.pooling.pool` on lists of floats (arguments already canonical and
    checked); ``None`` for the rare dataset that needs the batch engine's fallbacks.

    Parameters
    ----------
    y, v : list of float, length k (1 <= k <= :data:`MAX_K`)
        Finite effects and variances (> 0) on the analysis scale.
    method, test, level, pi, tau2
        As :func:`metaanalysis.pooling.pool_many` after ``check_args``; ``tau2`` a fixed
        float >= 0 or None.

    Returns
    -------
    MetaResult or None
    """
    k = len(y)
    if tau2 is None:
        fit = _tau2(method, y, v)
        if fit is None:
            return None
        t2, t2_se, iterations, converged = fit
    else:
        t2, t2_se, iterations, converged = float(tau2), None, 0, True
    if t2_se is not None and t2_se != t2_se:
        t2_se = None
    alpha = 1 - level
    common = method == "FE"
    w = _weights(v, t2)
    sw = sum(w)
    mu = sum(a * b for a, b in zip(w, y)) / sw
    q0 = _q_slope(y, v, 0.0, 0.0) if k > 1 else (0.0, 0.0)     # Q(0) and its slope, reused
    het = _heterogeneity(v, k, t2, common, q0[0])
    se, df, crit, stat, p, lo, hi = _inference(y, w, mu, sw, k, test, alpha)
    pi_lo = pi_hi = None
    if not common:
        pcrit = crit if pi == "metafor" else (
            _quantile("t_isf", alpha / 2, float(k - 2)) if k >= vocab.RILEY_MIN_K else None)
        if pcrit is not None:
            half = pcrit * math.sqrt(se ** 2 + t2)
            pi_lo, pi_hi = mu - half, mu + half
    cis = _tau2_cis(y, v, k, not common, alpha, q0)
    if cis is None:
        return None
    return _result(y, v, w, sw, k, method, test, level, pi, tau2, mu, t2, t2_se, iterations,
                   converged, het, (se, df, stat, p, lo, hi), (pi_lo, pi_hi), cis)


def _heterogeneity(v, k, t2, common, q0):
    """(q, q_pvalue, s², i², h²) as pooling._heterogeneity; ``q0`` is Q(0)."""
    if k == 1:
        return 0.0, 1.0, math.nan, 0.0, 1.0
    w0 = [1.0 / x for x in v]
    q = max(q0, 0.0)
    q_p = float(dist.chi2_sf(q, k - 1))
    sw0 = sum(w0)
    s2 = (k - 1) * sw0 / (sw0 ** 2 - sum(x * x for x in w0))
    if common:
        i2 = max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else 0.0
        h2 = q / (k - 1)
    else:
        i2 = 100 * t2 / (t2 + s2)
        h2 = (t2 + s2) / s2
    return q, q_p, s2, i2, h2


def _tau2_cis(y, v, k, wanted, alpha, q0):
    """Q-profile (lower, upper) of τ², (None, None) when not defined, None to hand over."""
    if not wanted or k == 1:
        return None, None
    df = float(k - 1)
    out = []
    for crit in (_quantile("chi2_isf", alpha / 2, df), _quantile("chi2_ppf", alpha / 2, df)):
        if not q0[0] > crit:
            out.append(0.0)
            continue
        r = _qprofile(y, v, crit, q0)
        if r is None:
            return None
        out.append(r)
    return tuple(out)


def _result(y, v, w, sw, k, method, test, level, pi, tau2, mu, t2, t2_se, iterations, converged,
            het, inf, pis, cis) -> MetaResult:
    """Assemble the MetaResult exactly as ``PoolArrays.row`` does."""
    q, q_p, s2, i2, h2 = het
    se, df, stat, p, lo, hi = inf
    t_lo, t_hi = cis

    def ci(t, f):
        if t is None:
            return None
        x = f(t)
        return x if math.isfinite(x) else None

    notes = []
    if pi == "riley" and k < vocab.RILEY_MIN_K:
        notes.append("prediction interval not estimable with fewer than 3 studies (Riley t(k-2))")
    if method != "FE" and k == 1:
        notes.append("k = 1: tau^2 cannot be estimated and is set to 0")
    if test != "z" and k == 1:
        notes.append(f"k = 1: test={test!r} needs k >= 2; a z test was used (as metafor does)")
    yi, vi = tuple(y), tuple(v)
    return MetaResult(
        k=k, method=method, test=test, level=level, estimate=mu, se=se, stat=stat, df=df,
        pvalue=p, ci_lower=lo, ci_upper=hi, tau2=t2, tau2_se=t2_se,
        tau2_ci_lower=t_lo, tau2_ci_upper=t_hi, tau=math.sqrt(t2), i2=i2,
        i2_ci_lower=ci(t_lo, lambda t: _ratio(100 * t, t + s2)),
        i2_ci_upper=ci(t_hi, lambda t: _ratio(100 * t, t + s2)), h2=h2,
        h2_ci_lower=ci(t_lo, lambda t: _ratio(t + s2, s2)), h2_ci_upper=ci(t_hi, lambda t: _ratio(t + s2, s2)),
        q=q, q_df=k - 1, q_pvalue=q_p, pi_lower=pis[0], pi_upper=pis[1],
        weights=tuple(100 * x / sw for x in w), converged=converged, iterations=iterations,
        metafor_call=metafor_call(yi, vi, method, test, level, pi, tau2),
        pi=pi, yi=yi, vi=vi, notes=tuple(notes),
    )


def metafor_call(yi, vi, method, test, level, pi="metafor", tau2=None) -> str:
    """R code that reproduces a fit with metafor (shortest round-trip float repr)."""
    y = ", ".join(repr(float(v)) for v in yi)
    v = ", ".join(repr(float(x)) for x in vi)
    lv = f"{100 * level:.10g}"
    ctl = ""
    if tau2 is not None:
        ctl = f", tau2 = {float(tau2)!r}"
    elif method in est.ITERATIVE_METHODS:
        ctl = ", control = list(threshold = 1e-12, maxiter = 10000)"
    call = (f'res <- metafor::rma.uni(yi = c({y}), vi = c({v}), method = "{method}", '
            f'test = "{test}", level = {lv}{ctl}); predict(res)')
    if method != "FE":
        call += "; confint(res)"
    if pi == "riley":
        call += ("; # Riley PI: coef(res) + c(-1, 1) * qt(1 - (1 - res$level) / 2, res$k - 2)"
                 " * sqrt(res$tau2 + res$se^2)")
    return call
