"""Reference values for ``metaanalysis.bayes`` (module ``metaanalysis.bayesian``) from an
independent 30-digit quadrature (mpmath).

Run (about 10-20 minutes; deterministic output)::

    python tests/reference/make_bayes_fixtures.py            # writes tests/reference/fixtures/bayes/*.json
    python tests/reference/make_bayes_fixtures.py --quick    # first dataset only, to try it out

Independent of the package on purpose: nothing from ``metaanalysis`` is imported. The model is
the normal–normal random-effects model (y_i ~ N(θ_i, v_i), θ_i ~ N(μ, τ²)) with the τ priors of
``metaanalysis.vocab.TAU_PRIORS`` and a flat or normal prior on μ (Röver 2020, J Stat Softw 93(6),
doi:10.18637/jss.v093.i06). What differs from the package's own computation:

* arithmetic: mpmath at 30 significant digits, against numpy doubles;
* integration over τ: ``mpmath.quad`` (adaptive tanh-sinh, degree raised until its own error
  estimate meets the working precision) on sub-intervals placed around the posterior mass,
  against a fixed-step exp-sinh / tanh-sinh rule;
* quantiles: Newton's method with the exact density, to 1e-25; the shortest interval by a 2-D
  Newton iteration on (F(U) - F(L) - level, f(L) - f(U)) with the analytic Jacobian, against
  Brent's method on a 1-D reformulation;
* the marginal likelihood of τ (μ integrated out in closed form) is checked at three τ against
  a numerical integration over μ (flat prior) or the multivariate normal density of y (normal prior).

Each case stores the largest error estimate ``mpmath.quad`` reported (``quad_error``), the
relative change of the normalising constant when every sub-interval is split in two
(``subdivision_check``: quad's own estimate can miss a narrow peak), the closed-form likelihood
check and the last Newton step (``newton_step``); all are far below the tests' tolerance of 1e-6.

Moments that do not exist (half-Cauchy prior, flat μ prior, k <= 2) are stored as "Inf" / "NaN";
the script checks the divergence numerically through the tail exponent of τ^2·p(τ | y).

bayesmeta, measured against these fixtures (R 4.2.2, bayesmeta 3.4 built from its CRAN source;
flat μ prior, level 0.95; ``bayesmeta(y, sigma = sqrt(vi), tau.prior = <density>, delta, epsilon)``,
then ``qposterior``, ``post.interval(method = "central" / "shortest", predict = TRUE for the
predictive interval)``, ``pposterior`` and ``summary``). Largest absolute differences:

=====================  =========================  ============================
dataset                default grid               delta = 1e-4, epsilon = 1e-7
                       (delta 0.01, eps 1e-4)
=====================  =========================  ============================
bcg_alternate_k2       2e-3 interval ends         7e-5 interval ends
denosumab_sre          6e-4 ends; 5e-3 SD of μ    2e-5 ends; 5e-4 SD of μ
normand1999_k3 (days)  0.09 ends; 0.57 SD of μ    1e-3 ends; 0.06 SD of μ
=====================  =========================  ============================

The largest interval errors are on the predictive interval and the shortest interval (whose ends
bayesmeta's optimiser leaves ~1e-5 apart even at tight settings); the SD of μ is worst under the
half-Cauchy prior, whose slowly decaying tail the grid truncates.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import mpmath as mp
import numpy as np

mp.mp.dps = 30
HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"     # the metafor fixtures (read); ours go to fixtures/bayes/, out of
                                 # the way of conformance.py, which loads every fixtures/*.json
REGISTRY = HERE.parent.parent / "trials" / "registry.csv"

#: The marginal ("any outcome, any comparison") log-normal prior for τ² of Turner et al. 2015,
#: Stat Med 34:984, p. 993: log τ² ~ N(-2.56, 1.74²).
TURNER_ANY = (-2.56, 1.74)


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------


def metafor_dataset(name: str, k: int | None = None) -> dict:
    """yi/vi of a metafor conformance fixture (the first k studies when k is given)."""
    with open(FIXTURES / f"{name}.json", encoding="utf-8") as fh:
        d = json.load(fh)
    n = d["k"] if k is None else k
    label = name if k is None else f"{name}_first{k}"
    src = f"tests/reference/fixtures/{name}.json (yi, vi)" + ("" if k is None else f", first {k} studies")
    return {"dataset": label, "source": src, "yi": d["yi"][:n], "vi": d["vi"][:n]}


def denosumab_sre() -> dict:
    """log HR and its variance from the CIs of the pooled SRE rows of trials/registry.csv.

    vi = ((log upper - log lower) / (2 z_0.975))², as metafor's conv.wald.
    """
    z = mp.sqrt(2) * mp.erfinv(mp.mpf("0.95"))
    ids, yi, vi = [], [], []
    with open(REGISTRY, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["endpoint"] == "SRE" and row["use_for_pooling"] == "yes":
                est, lo, hi = (mp.mpf(row[c]) for c in ("estimate", "ci_lower", "ci_upper"))
                ids.append(row["row_id"])
                yi.append(float(mp.log(est)))
                vi.append(float(((mp.log(hi) - mp.log(lo)) / (2 * z)) ** 2))
    return {"dataset": "denosumab_sre", "source": "trials/registry.csv, endpoint SRE, use_for_pooling yes: "
            + ", ".join(ids) + "; yi = log HR, vi from the 95% CI", "yi": yi, "vi": vi}


def datasets() -> list[dict]:
    return [metafor_dataset("bcg_alternate_k2"), metafor_dataset("normand1999_k3"), denosumab_sre(),
            metafor_dataset("normand1999_k5"), metafor_dataset("raudenbush1985", 10),
            metafor_dataset("hackshaw1998", 30)]


def cases(y: list[float]) -> list[dict]:
    """Every τ prior with a flat μ prior, plus normal μ priors and another level."""
    spread = float(np.std(y)) + 0.1
    out = [{"tau_prior": "halfnormal", "tau_scale": [0.5]},
           {"tau_prior": "halfcauchy", "tau_scale": [0.5]},
           {"tau_prior": "lognormal", "tau_scale": list(TURNER_ANY)},
           {"tau_prior": "uniform", "tau_scale": [2.0]},
           {"tau_prior": "halfnormal", "tau_scale": [1.0], "mu_prior": [0.0, 4.0 * spread]},
           {"tau_prior": "halfcauchy", "tau_scale": [0.25], "mu_prior": [float(np.mean(y)), spread]},
           {"tau_prior": "halfnormal", "tau_scale": [0.5], "level": 0.9}]
    for c in out:
        c.setdefault("mu_prior", None)
        c.setdefault("level", 0.95)
    return out


# ---------------------------------------------------------------------------------------------
# the posterior, by mpmath.quad
# ---------------------------------------------------------------------------------------------


class Posterior:
    """p(τ | y) and μ | τ, y at 30 digits; expectations over τ by mpmath.quad."""

    def __init__(self, yi, vi, tau_prior, tau_scale, mu_prior):
        self.y = [mp.mpf(x) for x in yi]
        self.v = [mp.mpf(x) for x in vi]
        self.prior, self.scale = tau_prior, [mp.mpf(x) for x in tau_scale]
        self.mu_prior = None if mu_prior is None else [mp.mpf(x) for x in mu_prior]
        self.cache: dict = {}
        self.quad_error = mp.mpf(0)
        self.upper = self.scale[0] if tau_prior == "uniform" else mp.inf
        self.offset = mp.mpf(0)
        self.points = self._breakpoints()     # also sets offset: mpmath.quad's tolerance is absolute,
        self.norm = mp.mpf(1)                 # so every integrand is scaled to order 1
        pieces = [self._quad(lambda t: self.kernel(t), [a, b]) for a, b in zip(self.points, self.points[1:])]
        halves = []      # the same integral with every piece split in two: a check of quad's estimate
        for a, b in zip(self.points, self.points[1:]):
            mid = (a + b) / 2 if b != mp.inf else 2 * a
            halves += [self._quad(lambda t: self.kernel(t), [a, mid]), self._quad(lambda t: self.kernel(t), [mid, b])]
        self.norm = mp.fsum(pieces)
        self.subdivision_check = abs(mp.fsum(halves) / self.norm - 1)
        self.cum = [mp.mpf(0)]
        for p in pieces:
            self.cum.append(self.cum[-1] + p / self.norm)

    def log_prior(self, t):
        if self.prior == "halfnormal":
            s = self.scale[0]
            return mp.log(2) - mp.log(s * mp.sqrt(2 * mp.pi)) - t * t / (2 * s * s)
        if self.prior == "halfcauchy":
            s = self.scale[0]
            return mp.log(2 / (mp.pi * s)) - mp.log(1 + (t / s) ** 2)
        if self.prior == "uniform":
            return -mp.log(self.scale[0]) if t <= self.scale[0] else mp.ninf
        m, s = self.scale      # log τ² ~ N(m, s²): density of τ = density of log τ² · 2/τ
        if t == 0:
            return mp.ninf
        return mp.log(2 / t) + mp.log(mp.npdf(2 * mp.log(t), m, s))

    def given_tau(self, t):
        """(log p(y | τ) up to a constant, E(μ | τ, y), Var(μ | τ, y)), cached by τ."""
        hit = self.cache.get(t)
        if hit is not None:
            return hit
        ws = [1 / (v + t * t) for v in self.v]
        ys = list(self.y)
        if self.mu_prior is not None:
            ws.append(1 / self.mu_prior[1] ** 2)
            ys.append(self.mu_prior[0])
        sw = mp.fsum(ws)
        mean = mp.fdot(ws, ys) / sw
        q = mp.fsum(w * (y - mean) ** 2 for w, y in zip(ws, ys))
        loglik = (mp.fsum(mp.log(w) for w in ws[:len(self.v)]) - mp.log(sw) - q) / 2
        out = (loglik, mean, 1 / sw)
        self.cache[t] = out
        return out

    def kernel(self, t):
        """p(τ) p(y | τ) / norm: the posterior density of τ once norm is set."""
        lp = self.log_prior(t)
        if lp == mp.ninf:
            return mp.mpf(0)
        return mp.exp(lp + self.given_tau(t)[0] - self.offset) / self.norm

    def _breakpoints(self):
        """0, rough posterior quantiles of τ (from a 4001-point log grid), then ∞ or A.

        Splitting at quantiles keeps each piece free of sharp peaks: tanh-sinh's error estimate
        can be fooled by a narrow peak inside one wide interval (seen on normand1999_k5)."""
        grid = np.exp(np.linspace(math.log(1e-8), math.log(1e8), 4001))
        if self.prior == "uniform":
            grid = grid[grid < float(self.upper)]
        logk = np.array([float(self.log_prior(mp.mpf(t)) + self.given_tau(mp.mpf(t))[0]) for t in grid])
        self.cache.clear()
        self.offset = mp.mpf(float(logk.max()))
        logm = logk + np.log(grid)          # mass density on the log τ axis (uniform spacing)
        cum = np.cumsum(np.exp(logm - logm.max()))
        cum /= cum[-1]
        levels = [1e-15, 1e-10, 1e-6, 1e-3, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98]
        levels += [1 - x for x in (1e-3, 1e-6, 1e-10, 1e-15)]
        inner = sorted({float(grid[min(np.searchsorted(cum, q), grid.size - 1)]) for q in levels})
        return [mp.mpf(0)] + [mp.mpf(x) for x in inner] + [self.upper]

    def _quad(self, f, interval):
        val, err = mp.quad(f, interval, error=True)
        self.quad_error = max(self.quad_error, abs(err))
        return val

    def expect(self, g):
        """E[g(τ, mean, var) | y] with (mean, var) of μ | τ, y."""
        def integrand(t):
            k = self.kernel(t)
            if k == 0:
                return k
            _, m, s2 = self.given_tau(t)
            return k * g(t, m, s2)
        return self._quad(integrand, self.points)

    def tau_cdf(self, t):
        """P(τ <= t | y): cumulative mass up to the last breakpoint below t, plus one piece."""
        j = max(i for i, p in enumerate(self.points) if p <= t)
        if j == len(self.points) - 1:
            return mp.mpf(1)
        return self.cum[j] + self._quad(lambda s: self.kernel(s), [self.points[j], t])


# ---------------------------------------------------------------------------------------------
# quantiles and intervals by Newton's method
# ---------------------------------------------------------------------------------------------


def newton(fun, dfun, x0, what, steps_out):
    """Root of fun by Newton's method from x0 (a rough start); stores the last step size."""
    x = mp.mpf(x0)
    for _ in range(60):
        step = fun(x) / dfun(x)
        x -= step
        if abs(step) < mp.mpf(10) ** -24 * max(1, abs(x)):
            steps_out.append(abs(step))
            return x
    raise RuntimeError(f"Newton did not converge for {what}")


def mixture_funcs(post: Posterior, extra_var):
    """CDF, density and density derivative of a normal mixture over τ (μ, or a new θ)."""
    def sd(t, s2):
        return mp.sqrt(s2 + extra_var(t))

    def cdf(x):
        return post.expect(lambda t, m, s2: mp.ncdf((x - m) / sd(t, s2)))

    def pdf(x):
        return post.expect(lambda t, m, s2: mp.npdf(x, m, sd(t, s2)))

    def dpdf(x):
        return post.expect(lambda t, m, s2: -(x - m) / sd(t, s2) ** 2 * mp.npdf(x, m, sd(t, s2)))
    return cdf, pdf, dpdf


def shortest(cdf, pdf, dpdf, level, lo, hi, steps_out):
    """(L, U) with F(U) - F(L) = level and f(L) = f(U): 2-D Newton, analytic Jacobian."""
    L, U = mp.mpf(lo), mp.mpf(hi)
    for _ in range(60):
        fl, fu = pdf(L), pdf(U)
        r1, r2 = cdf(U) - cdf(L) - level, fl - fu
        a, b, c, d = -fl, fu, dpdf(L), -dpdf(U)
        det = a * d - b * c
        dL, dU = (d * r1 - b * r2) / det, (a * r2 - c * r1) / det
        L, U = L - dL, U - dU
        if max(abs(dL), abs(dU)) < mp.mpf(10) ** -24 * max(1, abs(L), abs(U)):
            steps_out.append(max(abs(dL), abs(dU)))
            return L, U
    raise RuntimeError("Newton did not converge for the shortest interval")


def rough_start(yi, vi, tau_prior, tau_scale, mu_prior, level):
    """Double-precision start values from a 20,000-point log-τ grid (only a start for Newton)."""
    y, v = np.asarray(yi), np.asarray(vi)
    post = Posterior.__new__(Posterior)
    post.prior, post.scale = tau_prior, [mp.mpf(x) for x in tau_scale]
    grid = np.exp(np.linspace(math.log(1e-9), math.log(1e9), 20001))
    if tau_prior == "uniform":
        grid = grid[grid < tau_scale[0]]
    lp = np.array([float(post.log_prior(mp.mpf(t))) for t in grid])
    w = 1 / (v[None, :] + grid[:, None] ** 2)
    ww, yy = w, np.broadcast_to(y, w.shape)
    if mu_prior is not None:
        ww = np.hstack([w, np.full((grid.size, 1), mu_prior[1] ** -2.0)])
        yy = np.hstack([yy, np.full((grid.size, 1), mu_prior[0])])
    sw = ww.sum(1)
    m = (ww * yy).sum(1) / sw
    ll = 0.5 * (np.log(w).sum(1) - np.log(sw) - (ww * (yy - m[:, None]) ** 2).sum(1))
    logmass = lp + ll + np.log(grid)
    mass = np.exp(logmass - logmass.max())
    mass /= mass.sum()
    return grid, mass, m, 1 / sw


def rough_quantile(p, mass, m, sd):
    from scipy import optimize, special
    f = lambda x: special.ndtr((x - m) / sd) @ mass - p   # noqa: E731
    lo, hi = float(m.min() - 50 * sd.max()), float(m.max() + 50 * sd.max())
    return optimize.brentq(f, lo, hi, xtol=1e-10)


# ---------------------------------------------------------------------------------------------
# checks of the closed forms
# ---------------------------------------------------------------------------------------------


def check_marginal_likelihood(post: Posterior) -> float:
    """Largest relative difference between exp(log p(y | τ)) from the closed form and a direct
    computation: ∫ Π N(y_i; μ, v_i + τ²) dμ by mpmath.quad (flat μ prior; the closed form omits
    the factor (2π)^-(k-1)/2), or the N(m0·1, diag(v + τ²) + s0² 11ᵀ) density of y (normal μ
    prior; factor (2π)^-k/2 / s0)."""
    k = len(post.y)
    worst = mp.mpf(0)
    for t in (mp.mpf("0.05"), mp.mpf("0.3"), mp.mpf("1.7")):
        loglik, mean, var = post.given_tau(t)
        if post.mu_prior is None:
            def dens(mu):
                return mp.fprod(mp.npdf(y, mu, mp.sqrt(v + t * t)) for y, v in zip(post.y, post.v))
            sd = mp.sqrt(var)
            closed = (2 * mp.pi) ** (-mp.mpf(k - 1) / 2) * mp.exp(loglik)
            direct = closed * mp.quad(lambda mu: dens(mu) / closed,     # scaled: quad's tolerance is absolute
                                      [mp.ninf] + [mean + j * sd for j in (-8, -2, 0, 2, 8)] + [mp.inf])
        else:
            m0, s0 = post.mu_prior
            cov = mp.matrix(k, k)
            for i in range(k):
                for j in range(k):
                    cov[i, j] = s0 ** 2 + (post.v[i] + t * t if i == j else 0)
            r = mp.matrix([y - m0 for y in post.y])
            quad_form = (r.T * mp.lu_solve(cov, r))[0]
            direct = mp.exp(-quad_form / 2) / mp.sqrt((2 * mp.pi) ** k * mp.det(cov))
            closed = (2 * mp.pi) ** (-mp.mpf(k) / 2) / s0 * mp.exp(loglik)
        worst = max(worst, abs(direct / closed - 1))
    return float(worst)


def second_moment_tail_exponent(post: Posterior) -> float:
    """Slope of log[E(μ² | τ, y) p(τ | y)] against log τ at τ = 1e8 to 1e9: the second moment
    of μ is finite only when this is below -1."""
    def log_integrand(t):
        _, m, s2 = post.given_tau(t)
        return mp.log(post.kernel(t) * (s2 + m * m))
    a, b = mp.mpf(10) ** 8, mp.mpf(10) ** 9
    return float((log_integrand(b) - log_integrand(a)) / (mp.log(b) - mp.log(a)))


# ---------------------------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------------------------


def _f(x) -> float | str:
    x = float(x)
    return x if math.isfinite(x) else ("NaN" if math.isnan(x) else ("Inf" if x > 0 else "-Inf"))


def tau_quantile(post: Posterior, p, start, steps):
    """Newton on the τ CDF (its derivative is the posterior density), kept inside the support."""
    t = mp.mpf(start)
    for _ in range(80):
        step = (post.tau_cdf(t) - p) / post.kernel(t)
        new = t - step
        if new <= 0:
            new = t / 4
        if post.prior == "uniform" and new >= post.upper:
            new = (t + post.upper) / 2
        if abs(new - t) < mp.mpf(10) ** -24 * t:
            steps.append(abs(new - t) / t)
            return new
        t = new
    raise RuntimeError(f"Newton did not converge for the {p} quantile of τ")


def mu_moments(post: Posterior, steps_note: dict):
    """Posterior mean and SD of μ, or NaN / Inf where they do not exist (half-Cauchy, flat μ)."""
    mean = post.expect(lambda t, m, s2: m)
    if post.prior == "halfcauchy" and post.mu_prior is None and len(post.y) <= 2:
        slope = second_moment_tail_exponent(post)
        steps_note["second_moment_tail_exponent"] = slope
        assert slope >= -1 - 1e-6, slope        # integrand ~ τ^slope: the integral diverges
        return mean, mp.inf
    return mean, mp.sqrt(post.expect(lambda t, m, s2: s2 + (m - mean) ** 2))


def run_case(ds: dict, case: dict) -> dict:
    post = Posterior(ds["yi"], ds["vi"], case["tau_prior"], case["tau_scale"], case["mu_prior"])
    grid, mass, m, s2 = rough_start(ds["yi"], ds["vi"], case["tau_prior"], case["tau_scale"],
                                    case["mu_prior"], case["level"])
    level = mp.mpf(case["level"])
    tail = (1 - level) / 2
    steps: list = []
    info: dict = {"marginal_likelihood_check": check_marginal_likelihood(post),
                  "subdivision_check": float(post.subdivision_check)}
    out = {}
    for prefix, extra, rough_sd in (("mu", lambda t: 0, np.sqrt(s2)),
                                    ("pred", lambda t: t * t, np.sqrt(s2 + grid ** 2))):
        cdf, pdf, dpdf = mixture_funcs(post, extra)

        def q(p):
            start = rough_quantile(float(p), mass, m, rough_sd)
            assert abs(cdf(mp.mpf(start)) - p) < 1e-3, (prefix, p, start)   # the grid and quad agree
            return newton(lambda x: cdf(x) - p, pdf, start, f"{prefix} {p}", steps)
        out[f"{prefix}_ci_lower"], out[f"{prefix}_ci_upper"] = q(tail), q(1 - tail)
        if prefix == "pred":
            out["pred_lower"], out["pred_upper"] = out.pop("pred_ci_lower"), out.pop("pred_ci_upper")
            continue
        out["mu_median"] = q(mp.mpf("0.5"))
        from scipy import optimize
        a = optimize.minimize_scalar(
            lambda a: rough_quantile(a + float(level), mass, m, rough_sd) - rough_quantile(a, mass, m, rough_sd),
            bounds=(1e-6, 1 - float(level) - 1e-6), method="bounded", options={"xatol": 1e-9}).x
        out["mu_hpd_lower"], out["mu_hpd_upper"] = shortest(
            cdf, pdf, dpdf, level, rough_quantile(a, mass, m, rough_sd),
            rough_quantile(a + float(level), mass, m, rough_sd), steps)
        xs = [mp.mpf(0), mp.mpf("-0.2"), mp.mpf("0.2")]
        out["prob_below"] = {"x": [float(x) for x in xs], "p": [_f(cdf(x)) for x in xs]}
    out["mu_mean"], out["mu_sd"] = mu_moments(post, info)
    cum = np.cumsum(mass)
    for key, p in (("tau_median", mp.mpf("0.5")), ("tau_ci_lower", tail), ("tau_ci_upper", 1 - tail)):
        out[key] = tau_quantile(post, p, float(np.interp(float(p), cum, grid)), steps)
    means, sds = [], []
    for y, v in zip(post.y, post.v):
        def cond(t, mu, s2, y=y, v=v):
            b = v / (v + t * t)
            return b * mu + (1 - b) * y, v * t * t / (v + t * t) + b * b * s2
        mean = post.expect(lambda t, mu, s2: cond(t, mu, s2)[0])
        var = post.expect(lambda t, mu, s2: cond(t, mu, s2)[1] + (cond(t, mu, s2)[0] - mean) ** 2)
        means.append(_f(mean))
        sds.append(_f(mp.sqrt(var)))
    out["theta_mean"], out["theta_sd"] = means, sds
    result = {key: (val if isinstance(val, (list, dict)) else _f(val)) for key, val in sorted(out.items())}
    info.update(quad_error=float(post.quad_error), newton_step=float(max(steps)))
    return {**case, "result": result, "reference_checks": info}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first dataset only")
    ap.add_argument("--out", type=Path, default=FIXTURES / "bayes")
    args = ap.parse_args(argv)
    for ds in datasets()[:1] if args.quick else datasets():
        t0 = time.perf_counter()
        runs = [run_case(ds, c) for c in cases(ds["yi"])]
        doc = {**ds, "k": len(ds["yi"]), "generator": "tests/reference/make_bayes_fixtures.py",
               "mpmath_version": mp.__version__, "dps": mp.mp.dps, "cases": runs}
        path = args.out / f"{ds['dataset']}.json"
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path.name}: {len(runs)} cases in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
