/*
 * metaanalysis._kernel: the row kernel behind metaanalysis.pooling.pool_many (plain C99).
 *
 * One pass over m analyses of k studies each ((m, k) row-major arrays of doubles): the
 * estimate of tau^2 by any of the engine's estimators, the pooled estimate and its SE,
 * Cochran's Q, metafor's typical within-study variance, the residual sum of squares that
 * the Knapp-Hartung multiplier needs, the weights and the Q-profile CI of tau^2. The
 * algorithms, stopping rules and tolerances are those of metaanalysis/estimators.py and
 * metaanalysis/pooling.py (global grid + bracketed Newton for REML/ML, Newton on the convex
 * Q(tau^2) for PM/EB and the Q-profile), operation for operation where it matters, so the
 * two paths agree to rounding (tests/test_kernel.py). Conventions: metafor 3.8 rma.uni
 * (Viechtbauer 2010, doi:10.18637/jss.v036.i03).
 *
 * Also: ma_central_quantiles and ma_common_rule, the quantile search and the shared-node
 * tau rule of bayesian.central_intervals_many (the central credible interval of mu as two
 * quantiles of a normal mixture; see their sections).
 *
 * Built by setuptools as the extension module metaanalysis._kernel (setup.py) and loaded
 * with ctypes (metaanalysis/_compiled.py); PyInit__kernel exists only so the file is a valid
 * extension module. No numpy C-API, no fast-math: IEEE results. Rows the kernel does not
 * handle (a non-finite value or a variance <= 0, a REML/ML grid cell without a sign change
 * of the score, an iteration that does not settle) are flagged and left to the numpy engine.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#define MA_ABI 3            /* bump when the interface below changes (_compiled.py checks) */
#define MAX_ITER 200        /* estimators._MAX_ITER */

enum { M_FE = 0, M_DL, M_HE, M_HS, M_SJ, M_ML, M_REML, M_PM, M_EB };

/* What to compute (see ma_pool). */
typedef struct {
    int method;              /* M_* */
    const double *fixed;     /* NULL, or a fixed tau^2 per row (metafor's rma(tau2=)) */
    const double *grid;      /* REML/ML grid relative to the upper bound (estimators._grid_best) */
    long ngrid;
    double crit_lo, crit_hi; /* Q-profile levels chi2_isf(a/2), chi2_ppf(a/2) on k - 1 df */
} ma_args;

/* Where to write it: one entry per row (weights: k per row); NULL = not wanted. */
typedef struct {
    double *tau2, *tau2_se, *est, *se, *q, *s2, *rss, *weights, *ci_lo, *ci_hi;
    long long *iters;
    unsigned char *conv, *fallback;
} ma_out;

typedef struct { const double *y, *v; long k; double *w; } row_t;

/* Inverse-variance weights at tau^2 into r->w; returns their sum, *swy = sum w y. */
static double weights_at(const row_t *r, double t, double *swy)
{
    double s = 0.0, sy = 0.0;
    for (long i = 0; i < r->k; i++) {
        double w = 1.0 / (r->v[i] + t);
        r->w[i] = w;
        s += w;
        sy += w * r->y[i];
    }
    *swy = sy;
    return s;
}

/* Q(tau^2) - crit and dQ/dtau^2 = -sum w^2 r^2 (estimators.q_and_slope). */
static void q_slope(const row_t *r, double t, double crit, double *f, double *d)
{
    double swy, s = weights_at(r, t, &swy), mu = swy / s, q = 0.0, dq = 0.0;
    for (long i = 0; i < r->k; i++) {
        double e = r->y[i] - mu, wr2 = r->w[i] * (e * e);
        q += wr2;
        dq += r->w[i] * wr2;
    }
    *f = q - crit;
    *d = -dq;
}

/* sum_ij P_ij^2 for P = W - w w'/sum w (estimators._sum_pp), weights in r->w. */
static double sum_pp(const row_t *r)
{
    double s = 0.0, s2 = 0.0, s3 = 0.0;
    for (long i = 0; i < r->k; i++) {
        double w = r->w[i];
        s += w;
        s2 += w * w;
        s3 += w * w * w;
    }
    return s2 - 2 * s3 / s + s2 * s2 / (s * s);
}

/* Unweighted sum of squares about the mean with R's two-pass mean, exactly 0 for identical
 * values (estimators._centred_ss). */
static double centred_ss(const row_t *r)
{
    long k = r->k;
    double lo = r->y[0], hi = r->y[0], sum = 0.0, corr = 0.0, ss = 0.0;
    for (long i = 0; i < k; i++) {
        sum += r->y[i];
        lo = r->y[i] < lo ? r->y[i] : lo;
        hi = r->y[i] > hi ? r->y[i] : hi;
    }
    if (hi == lo)
        return 0.0;
    double ybar = sum / k;
    for (long i = 0; i < k; i++)
        corr += r->y[i] - ybar;
    ybar = ybar + corr / k;
    for (long i = 0; i < k; i++)
        ss += (r->y[i] - ybar) * (r->y[i] - ybar);
    return ss;
}

/* metafor's SE of a method-of-moments tau^2 (estimators._se_moment). */
static double se_moment(double t, double trP, double spp, long k, double denom)
{
    t = t < 0 ? 0.0 : t;
    return sqrt(1.0 / (denom * denom) * (2.0 * (k - 1) + 4 * t * trP + 2 * (t * t) * spp));
}

/* DL and HS (estimators._dl, _hs); *q0 gets Q(0). */
static double dl_hs(const row_t *r, int method, double *se, double *q0)
{
    long k = r->k;
    double f, d, s = 0.0, s2 = 0.0, t, raw;
    q_slope(r, 0.0, 0.0, &f, &d);         /* Q(0); leaves the weights 1/v in r->w */
    for (long i = 0; i < k; i++) {
        s += r->w[i];
        s2 += r->w[i] * r->w[i];
    }
    double trP = s - s2 / s;
    raw = method == M_DL ? (f - (k - 1)) / trP : (f - k) / s;
    t = raw < 0 ? 0.0 : raw;
    *q0 = f;
    if (se)
        *se = se_moment(t, trP, sum_pp(r), k, method == M_DL ? trP : s);
    return t;
}

/* HE: unweighted method of moments (estimators._he). */
static double he(const row_t *r, double *se)
{
    long k = r->k;
    double rss = centred_ss(r), sv = 0.0, vv = 0.0;
    for (long i = 0; i < k; i++) {
        sv += r->v[i];
        vv += r->v[i] * r->v[i];
    }
    double trPV = sv * (k - 1) / k, raw = (rss - trPV) / (k - 1), t = raw < 0 ? 0.0 : raw;
    double trpvpv = vv - 2 * vv / k + (sv * sv) / ((double)k * k);
    if (se)
        *se = sqrt(1.0 / ((double)(k - 1) * (k - 1))
                   * (2 * trpvpv + 4 * t * trPV + 2 * (t * t) * (k - 1)));
    return t;
}

/* SJ: one step from tau0^2 = sum (y - ybar)^2 / k (estimators._sj). */
static double sj(const row_t *r, double *se)
{
    long k = r->k;
    double t0 = centred_ss(r) / k, f, d;
    q_slope(r, t0, 0.0, &f, &d);
    double t = t0 > 0 ? t0 * f / (k - 1) : 0.0;
    if (se) {
        double s = 0.0, a = 0.0, b = 0.0, c = 0.0, e = 0.0, s2 = 0.0;
        for (long i = 0; i < k; i++) {
            double w = r->w[i], v = r->v[i], w2 = w * w;
            s += w;
            s2 += w2;
            a += (w * v) * (w * v);
            b += (w2 * w) * (v * v);
            c += w2 * v;
            e += (w2 * w) * v;
        }
        double trpvpv = a - 2 * b / s + (c * c) / (s * s);
        double spvp = c - 2 * e / s + s2 * c / (s * s);
        double tt = t < 0 ? 0.0 : t;
        *se = sqrt((t0 * t0) / ((double)(k - 1) * (k - 1))
                   * (2 * trpvpv + 4 * tt * spvp + 2 * (tt * tt) * sum_pp(r)));
    }
    return t;
}

/* The ML/REML score (x2) and its derivative in tau^2 (estimators._score_slope). */
static void score_slope(const row_t *r, int method, double t, double *f, double *d)
{
    double swy, s = weights_at(r, t, &swy), mu = swy / s;
    double s2 = 0.0, w2r2 = 0.0, w3r2 = 0.0, sw2r = 0.0, s3 = 0.0;
    for (long i = 0; i < r->k; i++) {
        double w = r->w[i], e = r->y[i] - mu, w2 = w * w, w2r = w2 * e;
        s2 += w2;
        w2r2 += w2r * e;
        w3r2 += w * w2r * e;
        sw2r += w2r;
        s3 += w2 * w;
    }
    double dw2r2 = -2 * w3r2 + 2 * (sw2r * sw2r) / s;
    if (method == M_ML) {
        *f = w2r2 - s;
        *d = dw2r2 + s2;
        return;
    }
    double q = s2 / s;
    *f = w2r2 - s + q;
    *d = dw2r2 + s2 - 2 * s3 / s + q * q;
}

/* target_clones: GCC/Clang on x86-64 Linux also build AVX2 and AVX-512 versions of the
 * vectorised loops below and pick one when the library is loaded; every version computes
 * the same IEEE operations in the same order, so all give the same results. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif
#define NG 64   /* most grid points (estimators: _GRID_POINTS + 1 = 49) */

/* Profile log-likelihoods at the g grid points U * grid[j] into ll (estimators._grid_loglik):
 * effects centred at their mean c, log det as one log per 8 studies (redone study by study
 * if a product leaves the float range). The loops run over the grid points, so that they
 * vectorise; per point the operations are those of the numpy engine, in its order. */
CLONES static void grid_logliks(const row_t *r, int method, double c, double U,
                                const double *grid, long g, double *ll)
{
    long k = r->k;
    double t[NG], s[NG], sy[NG], syy[NG], p[NG], logdet[NG];
    for (long j = 0; j < g; j++) {
        t[j] = U * grid[j];
        s[j] = sy[j] = syy[j] = logdet[j] = 0.0;
        p[j] = 1.0;
    }
    for (long i = 0; i < k; i++) {
        double v = r->v[i], yc = r->y[i] - c;
        for (long j = 0; j < g; j++) {
            double dd = v + t[j], w = 1.0 / dd, wy = w * yc;
            s[j] += w;
            sy[j] += wy;
            syy[j] += wy * yc;
            p[j] *= dd;
        }
        if (i % 8 == 7 || i == k - 1)
            for (long j = 0; j < g; j++) {
                logdet[j] += log(p[j]);
                p[j] = 1.0;
            }
    }
    for (long j = 0; j < g; j++) {
        double ld = logdet[j];
        if (!isfinite(ld)) {
            ld = 0.0;
            for (long i = 0; i < k; i++)
                ld += log(r->v[i] + t[j]);
        }
        ll[j] = -0.5 * (ld + (syy[j] - sy[j] * sy[j] / s[j]));
        if (method == M_REML)
            ll[j] = ll[j] - 0.5 * log(s[j]);
    }
}

/* Newton's method kept inside [lo, hi] (estimators.solve_bracketed_newton, one row). */
static double bracketed_newton(const row_t *r, int method, double x, double lo, double hi,
                               double f, double d, long long *it, int *conv)
{
    int last = 0;
    double prev = 0.0;
    *it = 1;
    *conv = 0;
    for (int n = 0; n < MAX_ITER; n++) {
        double nx = x - f / d;
        int newton = d < 0 && nx >= lo && nx <= hi;
        if (newton && last) {
            *it += 1;
            *conv = 1;
            return nx;
        }
        if (!newton) {
            double flo = lo > 0 ? lo : 0.0;
            nx = hi > 16 * flo ? sqrt((lo > hi * 1e-16 ? lo : hi * 1e-16) * hi) : 0.5 * (lo + hi);
        }
        score_slope(r, method, nx, &f, &d);
        *it += 1;
        if (f > 0)
            lo = nx;
        else
            hi = nx;
        double step = nx - x;
        last = newton && fabs(step) <= 1e-9 * nx
               && (fabs(step) <= 0.01 * fabs(prev) || step * prev < 0);
        prev = step;
        x = nx;
        if (hi - lo <= 1e-15 * hi) {
            *conv = 1;
            return x;
        }
    }
    return x;
}

/* REML/ML: best point of the global grid over [0, U], then bracketed Newton on the score
 * next to it (estimators._iterative). Returns 0, or 1 when the row needs the numpy engine
 * (no sign change in the cell: its golden-section search). */
static int reml_ml(const row_t *r, int method, double U, const ma_args *a, double *t,
                   long long *it, int *conv)
{
    long k = r->k, g = a->ngrid, j = -1;
    double c = 0.0, best = 0.0;
    for (long i = 0; i < k; i++)
        c += r->y[i];
    c = c / k;
    double ll[NG];
    if (g > NG)
        return 1;
    grid_logliks(r, method, c, U, a->grid, g, ll);
    for (long i = 0; i < g; i++)        /* first maximum, NaN ignored (numpy nanargmax) */
        if (ll[i] == ll[i] && (j < 0 || ll[i] > best)) {
            best = ll[i];
            j = i;
        }
    if (j < 0)
        return 1;
    long jl = j > 0 ? j - 1 : 0, jh = j + 1 < g ? j + 1 : g - 1;
    double x0 = U * a->grid[j], sj0, dj, fo, dummy, lo, hi, flo, fhi;
    score_slope(r, method, x0, &sj0, &dj);
    lo = sj0 > 0 ? x0 : U * a->grid[jl];
    hi = sj0 > 0 ? U * a->grid[jh] : x0;
    score_slope(r, method, sj0 > 0 ? hi : lo, &fo, &dummy);
    flo = sj0 > 0 ? sj0 : fo;
    fhi = sj0 > 0 ? fo : sj0;
    *conv = 1;
    *it = 0;
    if (lo == 0 && flo <= 0)
        *t = 0.0;                       /* boundary maximum at 0 */
    else if (flo > 0 && fhi <= 0)
        *t = bracketed_newton(r, method, x0, lo, hi, sj0, dj, it, conv);
    else
        return 1;
    *it += g;
    return 0;
}

/* Root of the convex, decreasing Q(tau^2) = crit from 0 (estimators.solve_convex_decreasing
 * with level=crit, and _convex_newton). f0, d0: Q(0) - crit and its slope. Returns 0, or 1
 * when the iteration does not settle in MAX_ITER steps (numpy finishes it by regula falsi). */
static int convex_root(const row_t *r, double crit, double hi, double f, double d, double *x,
                       long long *it)
{
    int bold = 1, last = 0;
    double prev = INFINITY, xa = 0.0;
    *x = 0.0;
    *it = 1;
    if (!(f > 0))
        return 0;
    for (int n = 0; n < MAX_ITER; n++) {
        double step = -f / d;
        bold = bold && f > 1e-3 * crit;
        if (bold)
            step = step * ((f + crit) / crit);
        double nxt = xa + step;
        nxt = nxt > hi ? hi : nxt;
        int ok = isfinite(nxt) && nxt > xa;
        if (last || !ok) {
            if (last && ok)
                *x = nxt;
            *it += last ? 1 : 2;
            return 0;
        }
        *it += 1;
        double fn, dn;
        q_slope(r, nxt, crit, &fn, &dn);
        int over = bold && fn < 0;
        if (over)
            hi = nxt;
        bold = bold && !over;
        int past = !over && fn <= 0;
        *x = (past && -fn >= f) || over ? xa : nxt;
        last = !over && step <= 1e-9 * nxt && (step <= 0.01 * prev || step <= 1e-14 * nxt);
        if (past) {
            *it += 1;
            return 0;
        }
        if (!over) {
            prev = step;
            f = fn;
            d = dn;
            xa = nxt;
        }
    }
    return 1;
}

/* U bounding every REML/ML maximiser and PM/EB root (estimators._upper_bound); *range2 gets
 * the squared range of the effects. */
static double upper_bound(const row_t *r, double *range2)
{
    long k = r->k;
    double lo = r->y[0], hi = r->y[0], vmax = r->v[0];
    for (long i = 1; i < k; i++) {
        lo = r->y[i] < lo ? r->y[i] : lo;
        hi = r->y[i] > hi ? r->y[i] : hi;
        vmax = r->v[i] > vmax ? r->v[i] : vmax;
    }
    *range2 = (hi - lo) * (hi - lo);
    return 1.01 * (k * *range2 + vmax) / (k > 1 ? k - 1 : 1) + 1e-300;
}

/* tau^2, its SE (when se is not NULL), iterations and convergence of one row by the
 * estimator; Q(0) into *q0 (NaN when the estimator did not need it). Returns 1 to hand the
 * row to numpy. */
static int fit_tau2(const row_t *r, const ma_args *a, double *t, double *se, long long *it,
                    int *conv, double *q0)
{
    long k = r->k;
    double r2, U, f, d, swy, s, s2 = 0.0;
    int bad = 0;
    *t = 0.0;
    *it = 0;
    *conv = 1;
    *q0 = NAN;
    if (se)
        *se = NAN;
    if (a->method == M_FE || k == 1)
        return 0;
    switch (a->method) {
    case M_DL: case M_HS: *t = dl_hs(r, a->method, se, q0); return 0;
    case M_HE: *t = he(r, se); return 0;
    case M_SJ: *t = sj(r, se); return 0;
    case M_ML: case M_REML:
        U = upper_bound(r, &r2);
        bad = reml_ml(r, a->method, U, a, t, it, conv);
        break;
    default:                              /* PM, EB: Q(tau^2) = k - 1 */
        U = upper_bound(r, &r2);
        q_slope(r, 0.0, 0.0, &f, &d);
        *q0 = f;
        bad = convex_root(r, (double)(k - 1), U, f - (k - 1), d, t, it);
    }
    if (bad || !se)
        return bad;
    s = weights_at(r, *t, &swy);          /* metafor's SE at the estimate (_se_iterative) */
    for (long i = 0; i < k; i++)
        s2 += r->w[i] * r->w[i];
    if (a->method == M_ML)
        *se = sqrt(2.0 / s2);
    else if (a->method == M_REML)
        *se = sqrt(2.0 / sum_pp(r));
    else
        *se = sqrt(2.0 * ((double)k * k) / (k - 1)) / s;
    return 0;
}

/* The Q-profile CI of tau^2 (pooling._tau2_cis / _qprofile). Returns 1 to hand over. */
static int qprofile(const row_t *r, const ma_args *a, double *lo, double *hi)
{
    long k = r->k;
    double f, d, r2, crit[2] = {a->crit_lo, a->crit_hi}, out[2];
    long long it;
    if (k == 1) {
        *lo = *hi = NAN;
        return 0;
    }
    upper_bound(r, &r2);
    q_slope(r, 0.0, 0.0, &f, &d);
    for (int j = 0; j < 2; j++) {
        double top = 1.01 * k * r2 / crit[j] + 1e-300;
        if (convex_root(r, crit[j], top, f - crit[j], d, &out[j], &it))
            return 1;
    }
    *lo = out[0];
    *hi = out[1];
    return 0;
}

/* Everything of one row given its tau^2 (pooling._pool_block, _heterogeneity, _inference). */
static void finish_row(const row_t *r, long i, double t, double q0, const ma_out *o)
{
    long k = r->k;
    double swy, sw = weights_at(r, t, &swy), est = swy / sw;
    if (o->est) o->est[i] = est;
    if (o->se) o->se[i] = sqrt(1.0 / sw);
    if (o->weights)
        for (long j = 0; j < k; j++)
            o->weights[i * k + j] = 100 * r->w[j] / sw;
    if (o->rss) {
        double rss = 0.0;
        for (long j = 0; j < k; j++)
            rss += r->w[j] * ((r->y[j] - est) * (r->y[j] - est));
        o->rss[i] = rss;
    }
    if (o->q || o->s2) {
        double f, d, s0 = 0.0, s02 = 0.0;
        if (q0 != q0)
            q_slope(r, 0.0, 0.0, &f, &d);
        else
            f = q0;
        for (long j = 0; j < k; j++) {
            double w0 = 1.0 / r->v[j];
            s0 += w0;
            s02 += w0 * w0;
        }
        if (o->q) o->q[i] = k > 1 ? (f < 0 ? 0.0 : f) : 0.0;
        if (o->s2) o->s2[i] = (k - 1) * s0 / (s0 * s0 - s02);
    }
}

/* Is the row one the kernel handles: every value finite and every variance > 0? */
static int clean_row(const row_t *r)
{
    for (long j = 0; j < r->k; j++)
        if (!(isfinite(r->y[j]) && isfinite(r->v[j]) && r->v[j] > 0))
            return 0;
    return 1;
}

/* One row by the scalar path; returns 1 when it is flagged for the numpy engine. */
static int pool_row(const row_t *r, long i, const ma_args *a, const ma_out *o)
{
    double t = 0.0, se_t = NAN, q0 = NAN, lo = NAN, hi = NAN;
    long long it = 0;
    int conv = 1, bad = r->k < 1 || !clean_row(r);
    if (!bad && a->fixed)
        t = a->fixed[i];
    else if (!bad)
        bad = fit_tau2(r, a, &t, o->tau2_se ? &se_t : NULL, &it, &conv, &q0);
    if (!bad && o->ci_lo)
        bad = qprofile(r, a, &lo, &hi);
    if (o->fallback)
        o->fallback[i] = (unsigned char)bad;
    if (bad)
        return 1;
    if (o->tau2) o->tau2[i] = t;
    if (o->tau2_se) o->tau2_se[i] = se_t;
    if (o->iters) o->iters[i] = it;
    if (o->conv) o->conv[i] = (unsigned char)conv;
    if (o->ci_lo) { o->ci_lo[i] = lo; o->ci_hi[i] = hi; }
    finish_row(r, i, t, q0, o);
    return 0;
}

/* ---- BLK rows at a time (DL, the common-effect model and a fixed tau^2) -----------------
 * The same operations in the same order per row as dl_hs + finish_row, on BLK rows
 * transposed into column-major scratch, so that the compiler vectorises over rows (the
 * divisions dominate; block_rows has AVX2 and AVX-512 clones, see CLONES). */
#define BLK 32

/* Q(0) of BLK transposed rows: weights 1/v into wt, their sum into s, Q into q. */
static inline void block_q0(const double *yt, const double *vt, double *wt, long k,
                            double *s, double *q)
{
    double sy[BLK], mu[BLK];
    for (int b = 0; b < BLK; b++)
        s[b] = sy[b] = q[b] = 0.0;
    for (long j = 0; j < k; j++)
        for (int b = 0; b < BLK; b++) {
            double w = 1.0 / (vt[j * BLK + b] + 0.0);
            wt[j * BLK + b] = w;
            s[b] += w;
            sy[b] += w * yt[j * BLK + b];
        }
    for (int b = 0; b < BLK; b++)
        mu[b] = sy[b] / s[b];
    for (long j = 0; j < k; j++)
        for (int b = 0; b < BLK; b++) {
            double e = yt[j * BLK + b] - mu[b];
            q[b] += wt[j * BLK + b] * (e * e);
        }
}

/* DL tau^2 (and its SE when se is not NULL) of BLK transposed rows (dl_hs). */
static inline void block_dl(const double *yt, const double *vt, double *wt, long k, double *t,
                            double *q0, double *se)
{
    double s[BLK], s2[BLK], s3[BLK];
    block_q0(yt, vt, wt, k, s, q0);
    for (int b = 0; b < BLK; b++)
        s2[b] = s3[b] = 0.0;
    for (long j = 0; j < k; j++)
        for (int b = 0; b < BLK; b++) {
            double w = wt[j * BLK + b];
            s2[b] += w * w;
            s3[b] += w * w * w;
        }
    for (int b = 0; b < BLK; b++) {
        double trP = s[b] - s2[b] / s[b], raw = (q0[b] - (k - 1)) / trP;
        t[b] = raw < 0 ? 0.0 : raw;
        if (se)
            se[b] = se_moment(t[b], trP, s2[b] - 2 * s3[b] / s[b] + s2[b] * s2[b] / (s[b] * s[b]),
                              k, trP);
    }
}

/* Outputs of BLK transposed rows at tau^2 = t (finish_row). */
static inline void block_finish(const double *yt, const double *vt, double *wt, long k, long i0,
                                const double *t, const double *q0, const ma_out *o)
{
    double sw[BLK], swy[BLK], est[BLK];
    for (int b = 0; b < BLK; b++)
        sw[b] = swy[b] = 0.0;
    for (long j = 0; j < k; j++)
        for (int b = 0; b < BLK; b++) {
            double w = 1.0 / (vt[j * BLK + b] + t[b]);
            wt[j * BLK + b] = w;
            sw[b] += w;
            swy[b] += w * yt[j * BLK + b];
        }
    for (int b = 0; b < BLK; b++)
        est[b] = swy[b] / sw[b];
    if (o->est) for (int b = 0; b < BLK; b++) o->est[i0 + b] = est[b];
    if (o->se) for (int b = 0; b < BLK; b++) o->se[i0 + b] = sqrt(1.0 / sw[b]);
    if (o->weights)
        for (int b = 0; b < BLK; b++)
            for (long j = 0; j < k; j++)
                o->weights[(i0 + b) * k + j] = 100 * wt[j * BLK + b] / sw[b];
    if (o->rss) {
        double rss[BLK] = {0};
        for (long j = 0; j < k; j++)
            for (int b = 0; b < BLK; b++) {
                double e = yt[j * BLK + b] - est[b];
                rss[b] += wt[j * BLK + b] * (e * e);
            }
        for (int b = 0; b < BLK; b++) o->rss[i0 + b] = rss[b];
    }
}

/* Q and s^2 of BLK transposed rows (finish_row); q0: Q(0) if known, else NULL. */
static inline void block_q_s2(const double *yt, const double *vt, double *wt, long k, long i0,
                              const double *q0, const ma_out *o)
{
    double s0[BLK], s02[BLK], q[BLK];
    if (!q0) {
        block_q0(yt, vt, wt, k, s0, q);
        q0 = q;
    }
    for (int b = 0; b < BLK; b++)
        s0[b] = s02[b] = 0.0;
    for (long j = 0; j < k; j++)
        for (int b = 0; b < BLK; b++) {
            double w0 = 1.0 / vt[j * BLK + b];
            s0[b] += w0;
            s02[b] += w0 * w0;
        }
    for (int b = 0; b < BLK; b++) {
        if (o->q) o->q[i0 + b] = k > 1 ? (q0[b] < 0 ? 0.0 : q0[b]) : 0.0;
        if (o->s2) o->s2[i0 + b] = (k - 1) * s0[b] / (s0[b] * s0[b] - s02[b]);
    }
}

/* Rows i0 .. i0 + BLK - 1 by DL / FE / fixed tau^2 (see pool_row); returns 0, or 1 without
 * writing anything when a row is not clean (the caller then takes the rows one by one). */
CLONES static int block_rows(const double *Y, const double *V, long i0, long k,
                             const ma_args *a, const ma_out *o, double *scratch)
{
    double *yt = scratch, *vt = scratch + k * BLK, *wt = scratch + 2 * k * BLK;
    double t[BLK], q0[BLK], se[BLK];
    int dl = !a->fixed && a->method == M_DL && k > 1, clean = 1;
    for (long j = 0; j < k; j++)
        for (int b = 0; b < BLK; b++) {
            yt[j * BLK + b] = Y[(i0 + b) * k + j];
            vt[j * BLK + b] = V[(i0 + b) * k + j];
        }
    for (long j = 0; j < k * BLK; j++)   /* clean_row, branch-free so that it vectorises */
        clean &= (fabs(yt[j]) <= DBL_MAX) & (vt[j] <= DBL_MAX) & (vt[j] > 0);
    if (!clean)
        return 1;
    for (int b = 0; b < BLK; b++) {
        t[b] = a->fixed ? a->fixed[i0 + b] : 0.0;
        se[b] = NAN;
    }
    if (dl)
        block_dl(yt, vt, wt, k, t, q0, o->tau2_se ? se : NULL);
    for (int b = 0; b < BLK; b++) {
        if (o->fallback) o->fallback[i0 + b] = 0;
        if (o->tau2) o->tau2[i0 + b] = t[b];
        if (o->tau2_se) o->tau2_se[i0 + b] = se[b];
        if (o->iters) o->iters[i0 + b] = 0;
        if (o->conv) o->conv[i0 + b] = 1;
    }
    block_finish(yt, vt, wt, k, i0, t, q0, o);
    if (o->q || o->s2)
        block_q_s2(yt, vt, wt, k, i0, dl ? q0 : NULL, o);
    return 0;
}

/* Fit rows [0, m) of Y, V ((m, k) row-major). Returns the number of rows flagged in
 * o->fallback (their other outputs are left as they were), or -1 when out of memory. */
long ma_pool(const double *Y, const double *V, long m, long k, const ma_args *a,
             const ma_out *o)
{
    long n_fallback = 0, i = 0;
    /* (blocks pay off for a few studies; many studies would need a large scratch) */
    int blocks = k >= 1 && k <= 64 && !o->ci_lo
                 && (a->fixed || a->method == M_DL || a->method == M_FE);
    double *w = malloc((size_t)(k > 0 ? k : 1) * (blocks ? 3 * BLK + 1 : 1) * sizeof(double));
    if (!w)
        return -1;
    while (i < m) {
        long stop = i + 1;
        if (blocks && i + BLK <= m) {
            if (!block_rows(Y, V, i, k, a, o, w + k)) {
                i += BLK;
                continue;
            }
            stop = i + BLK;
        }
        for (; i < stop; i++) {
            row_t r = {Y + i * k, V + i * k, k, w};
            n_fallback += pool_row(&r, i, a, o);
        }
    }
    free(w);
    return n_fallback;
}

/* ---- central credible interval of mu: quantiles of normal mixtures ----------------------
 * bayesian._central_quantiles for all rows at once: Newton's method on the probit of the
 * mixture CDF inside a bracket (bayesian._newton), a coarse pass on every fourth node, the
 * full rule, and the accuracy check of the rule of twice the step. Same start, bracket,
 * stopping rules and operations per component as the numpy code, so the two agree to
 * rounding (tests/test_bayes_kernel.py). Model: Roever 2020, doi:10.18637/jss.v093.i06. */

/* GCC vectorises components() only when it may compute both sides of a ?: (the divisions of
 * ndtr_e) for every lane: -fno-trapping-math (no effect on values, only on FP exception flags,
 * which nothing reads); on its helpers too, or GCC would not inline them. */
#if defined(__GNUC__) && !defined(__clang__)
#define SPECULATE __attribute__((optimize("no-trapping-math")))
#else
#define SPECULATE
#endif

/* exp(a) for a <= 0, branch-free so that loops over it vectorise: a = n ln 2 + r with |r| <=
 * ln 2 / 2 (Cody-Waite: ln 2 in two parts, n ln2_hi exact), exp(r) by its Taylor polynomial of
 * degree 13 (truncation < 5e-18), times 2^n built in the exponent bits. Below -708 (where
 * exp(a) < 3.3e-308 would need subnormal scaling) it returns 0: every use multiplies it by a
 * mass <= 1 and adds it to a probability or a density, where 3e-308 is nothing. */
SPECULATE static inline double exp_neg(double a)
{
    const double shift = 6755399441055744.0;            /* 1.5 * 2^52: round to integer */
    const double log2e = 1.4426950408889634074, ln2_hi = 6.93147180369123816490e-01,
                 ln2_lo = 1.90821492927058770002e-10;
    double b = a < -708.0 ? -708.0 : a;
    double t = b * log2e + shift, n = t - shift;
    double r = (b - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0;                      /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    union { double d; long long i; } bits = {t}, scale;
    scale.i = (bits.i - 0x4338000000000000LL + 1023) << 52;   /* 2^n, n in [-1022, 0] */
    return a < -708.0 ? 0.0 : p * scale.d;
}

/* Phi(z) given e = exp(-z^2 / 2), branch-free: W. J. Cody's rational Chebyshev approximations
 * (ACM TOMS 19:22-32, 1993, Algorithm 715 ANORM, as in R's pnorm; public domain) for |z| <=
 * 0.67448975, <= sqrt(32) and beyond, all three evaluated and one chosen per lane, with one
 * division (yt keeps u finite in the lanes that do not use it). Cody splits exp(-z^2/2) in two
 * to keep its last bits; the shared e carries a relative error of up to z^2 / 2 * 2.2e-16
 * instead, < 2e-17 absolute in Phi (which is that small where z^2 is large). Agrees with
 * scipy.special.ndtr to 2.3e-16 absolute on [-40, 40] (tests/test_bayes_kernel.py). */
SPECULATE static inline double ndtr_e(double z, double e)
{
    static const double a[5] = {2.2352520354606839287, 161.02823106855587881,
                                1067.6894854603709582, 18154.981253343561249,
                                0.065682337918207449113};
    static const double b[4] = {47.20258190468824187, 976.09855173777669322,
                                10260.932208618978205, 45507.789335026729956};
    static const double c[9] = {0.39894151208813466764, 8.8831497943883759412,
                                93.506656132177855979, 597.27027639480026226,
                                2494.5375852903726711, 6848.1904505362823326,
                                11602.651437647350124, 9842.7148383839780218,
                                1.0765576773720192317e-8};
    static const double d[8] = {22.266688044328115691, 235.38790178262499861,
                                1519.377599407554805, 6485.558298266760755,
                                18615.571640885098091, 34900.952721145977266,
                                38912.003286093271411, 19685.429676859990727};
    static const double p[6] = {0.21589853405795699, 0.1274011611602473639,
                                0.022235277870649807, 0.001421619193227893466,
                                2.9112874951168792e-5, 0.02307344176494017303};
    static const double q[5] = {1.28426009614491121, 0.468238212480865118,
                                0.0659881378689285515, 0.00378239633202758244,
                                7.29751555083966205e-5};
    const double one_sqrt_2pi = 0.398942280401432677939946059934;
    double y = fabs(z), s = z * z, yt = y < 5.0 ? 5.0 : y, u = 1.0 / (yt * yt);
    double sn = a[4] * s, sd = s, mn = c[8] * y, md = y, tn = p[5] * u, td = u;
    for (int i = 0; i < 3; i++) {
        sn = (sn + a[i]) * s;
        sd = (sd + b[i]) * s;
    }
    for (int i = 0; i < 7; i++) {
        mn = (mn + c[i]) * y;
        md = (md + d[i]) * y;
    }
    for (int i = 0; i < 4; i++) {
        tn = (tn + p[i]) * u;
        td = (td + q[i]) * u;
    }
    tn = u * (tn + p[4]);
    td = td + q[4];
    int small = y <= 0.67448975, mid = y <= 5.656854249492380195206754896838;
    /* small: Phi = 0.5 + z N/D; mid: Phi(-y) = e N/D; tail: e (c0 - u Nt/Dt) / y */
    double num = small ? z * (sn + a[3]) : mid ? mn + c[7] : one_sqrt_2pi * td - tn;
    double den = small ? sd + b[3] : mid ? md + d[7] : td * y;
    double ratio = num / den, lower = e * ratio;
    return small ? 0.5 + ratio : z > 0 ? 1.0 - lower : lower;
}

/* Horner sums of Cephes: polevl (leading coefficient c[0]) and p1evl (leading 1). */
static double polevl(double x, const double *c, int n)
{
    double s = c[0];
    for (int i = 1; i <= n; i++)
        s = s * x + c[i];
    return s;
}

static double p1evl(double x, const double *c, int n)
{
    double s = x + c[0];
    for (int i = 1; i < n; i++)
        s = s * x + c[i];
    return s;
}

/* Phi^-1(y): Cephes ndtri (S. L. Moshier, Cephes Math Library 2.1, 1989; public domain),
 * the algorithm and coefficients of scipy.special.ndtri. */
static double ndtri(double y0)
{
    static const double P0[5] = {
        -5.99633501014107895267E1, 9.80010754185999661536E1, -5.66762857469070293439E1,
        1.39312609387279679503E1, -1.23916583867381258016E0};
    static const double Q0[8] = {
        1.95448858338141759834E0, 4.67627912898881538453E0, 8.63602421390890590575E1,
        -2.25462687854119370527E2, 2.00260212380060660359E2, -8.20372256168333339912E1,
        1.59056225126211695515E1, -1.18331621121330003142E0};
    static const double P1[9] = {
        4.05544892305962419923E0, 3.15251094599893866154E1, 5.71628192246421288162E1,
        4.40805073893200834700E1, 1.46849561928858024014E1, 2.18663306850790267539E0,
        -1.40256079171354495875E-1, -3.50424626827848203418E-2, -8.57456785154685413611E-4};
    static const double Q1[8] = {
        1.57799883256466749731E1, 4.53907635128879210584E1, 4.13172038254672030440E1,
        1.50425385692907503408E1, 2.50464946208309415979E0, -1.42182922854787788574E-1,
        -3.80806407691578277194E-2, -9.33259480895457427372E-4};
    static const double P2[9] = {
        3.23774891776946035970E0, 6.91522889068984211695E0, 3.93881025292474443415E0,
        1.33303460815807542389E0, 2.01485389549179081538E-1, 1.23716634817820021358E-2,
        3.01581553508235416007E-4, 2.65806974686737550832E-6, 6.23974539184983293730E-9};
    static const double Q2[8] = {
        6.02427039364742014255E0, 3.67983563856160859403E0, 1.37702099489081330271E0,
        2.16236993594496635890E-1, 1.34204006088543189037E-2, 3.28014464682127739104E-4,
        2.89247864745380683936E-6, 6.79019408009981274425E-9};
    const double s2pi = 2.50662827463100050242E0, exp_m2 = 0.13533528323661269189;
    double y = y0, x, z, x1;
    int negate = 1;
    if (y0 == 0.0)
        return -INFINITY;
    if (y0 == 1.0)
        return INFINITY;
    if (!(y0 >= 0.0 && y0 <= 1.0))
        return NAN;
    if (y > 1.0 - exp_m2) {
        y = 1.0 - y;
        negate = 0;
    }
    if (y > exp_m2) {
        y = y - 0.5;
        double y2 = y * y;
        x = y + y * (y2 * polevl(y2, P0, 4) / p1evl(y2, Q0, 8));
        return x * s2pi;
    }
    x = sqrt(-2.0 * log(y));
    double x0 = x - log(x) / x;
    z = 1.0 / x;
    if (x < 8.0)
        x1 = z * polevl(z, P1, 8) / p1evl(z, Q1, 8);
    else
        x1 = z * polevl(z, P2, 8) / p1evl(z, Q2, 8);
    x = x0 - x1;
    return negate ? -x : x;
}

/* One row's mixture: n components with masses w, density weights dw = w / sd / sqrt(2 pi)
 * and 1 / sd; with a check rule (w2, dw2 = w2 / sd), its CDF and density at the last point
 * evaluated go to *last. */
typedef struct {
    const double *mean, *w, *dw, *inv_sd, *w2, *dw2;
    long n;
    double zp, log_sqrt_2pi;
    double *e, *nd;         /* scratch (n): exp(-z^2/2) and Phi(z) of the components */
} mix_t;

/* z = (x - mean) / sd of n components, exp(-z^2 / 2) into e and Phi(z) into nd (vectorised:
 * see CLONES). */
CLONES SPECULATE static void components(long n, double x, const double *mean, const double *inv_sd,
                              double *e, double *nd)
{
    for (long i = 0; i < n; i++) {
        double z = (x - mean[i]) * inv_sd[i], ei = exp_neg(z * z * -0.5);
        e[i] = ei;
        nd[i] = ndtr_e(z, ei);
    }
}

typedef struct { double x, cdf, pdf; } last_t;

/* Probit excess Phi^-1(F(x)) - Phi^-1(p) and its slope (bayesian._probit_excess); *dg gets the
 * slope. Components of mass 0 add exactly 0 and are skipped. */
static double probit_excess(const mix_t *mx, double x, double *dg, last_t *last)
{
    double cdf = 0.0, pdf = 0.0, cdf2 = 0.0, pdf2 = 0.0, *e = mx->e, *nd = mx->nd;
    components(mx->n, x, mx->mean, mx->inv_sd, e, nd);
    for (long i = 0; i < mx->n; i++) {
        pdf += mx->dw[i] * e[i];
        cdf += mx->w[i] * nd[i];
    }
    if (last)
        for (long i = 0; i < mx->n; i++) {
            cdf2 += mx->w2[i] * nd[i];
            pdf2 += mx->dw2[i] * e[i];
        }
    if (last) {
        last->x = x;
        last->cdf = cdf2;
        last->pdf = pdf2;
    }
    double probit = ndtri(cdf);
    *dg = pdf / exp(-0.5 * probit * probit - mx->log_sqrt_2pi);
    return probit - mx->zp;
}

/* Root of the increasing excess inside [lo, hi] from x (bayesian._newton, relative=False):
 * a step that leaves the bracket is replaced by bisection; stop when a step is <= tol max(1,
 * |x|) or the excess is exactly 0. */
static double mix_newton(const mix_t *mx, double x, double lo, double hi, double tol,
                         long max_iter, last_t *last)
{
    for (long it = 0; it < max_iter; it++) {
        double dg, g = probit_excess(mx, x, &dg, last), xa = x, ax = fabs(xa);
        if (g < 0)
            lo = xa;
        if (g > 0)
            hi = xa;
        double nx = xa - g / dg;
        if (!(nx > lo && nx < hi))
            nx = 0.5 * (lo + hi);
        x = nx;
        if (!(fabs(nx - xa) > tol * (ax > 1.0 ? ax : 1.0) && g != 0))
            break;
    }
    return x;
}

/* Tolerances and levels of bayesian._central_quantiles (passed from Python, the one source). */
typedef struct {
    double p[2], zp[2];     /* tail, 1 - tail and their probits */
    double prune;           /* _FAST_PRUNE: nodes that bound the bracket carry more mass */
    double coarse_tol, tol; /* step tolerances of the coarse and the full pass */
    long max_iter;          /* _MAX_ITER */
    long coarse_min;        /* the coarse pass runs when the rule has >= this many nodes */
    double log_sqrt_2pi;    /* bayesian._LOG_SQRT_2PI as Python rounds it */
} mq_args;

/* Start and bracket of one end (side s) of row r: the mass-weighted mean and the extremes of
 * the components' p-quantiles over the nodes with mass > prune. */
static double start_point(const double *w, const double *mean, const double *sd, long c,
                          double zp, double prune, double *lo, double *hi)
{
    double s = 0.0, a = INFINITY, b = -INFINITY;
    for (long j = 0; j < c; j++) {
        double q = mean[j] + sd[j] * zp;
        s += w[j] * q;
        if (w[j] > prune) {
            a = q < a ? q : a;
            b = q > b ? q : b;
        }
    }
    *lo = a;
    *hi = b;
    s = s < a ? a : s;
    return s > b ? b : s;
}

/* Both ends of one row (bayesian._central_quantiles); scratch holds 10 c doubles. */
static void central_row(const double *w, const double *mean, const double *sd,
                        const unsigned char *even, long c, const mq_args *a, double *scratch,
                        double *x_out, double *gap_out)
{
    double *inv_sd = scratch, *dw = scratch + c, *w2 = scratch + 2 * c, *dw2 = scratch + 3 * c;
    double *e = scratch + 4 * c, *nd = scratch + 5 * c;
    double *sw = scratch + 6 * c, *sdw = scratch + 7 * c, *sinv = scratch + 8 * c;
    double *smean = scratch + 9 * c;
    const double k = exp(-a->log_sqrt_2pi);
    double t2 = 0.0, t4 = 0.0;
    long n4 = (c + 3) / 4;
    for (long j = 0; j < c; j++) {
        inv_sd[j] = 1.0 / sd[j];
        dw[j] = w[j] * inv_sd[j] * k;
        w2[j] = even[j] ? w[j] : 0.0;
        t2 += w2[j];
    }
    for (long j = 0; j < c; j++) {
        w2[j] = w2[j] / t2;
        dw2[j] = w2[j] * inv_sd[j];
    }
    for (long i = 0; i < n4; i++)    /* the coarse rule: every fourth node, renormalised */
        t4 += w[4 * i];
    for (long i = 0; i < n4; i++) {
        sw[i] = w[4 * i] / t4;
        sinv[i] = inv_sd[4 * i];
        sdw[i] = sw[i] * sinv[i] * k;
        smean[i] = mean[4 * i];
    }
    for (int s = 0; s < 2; s++) {
        double lo, hi, x = start_point(w, mean, sd, c, a->zp[s], a->prune, &lo, &hi);
        if (c >= a->coarse_min) {
            mix_t coarse = {smean, sw, sdw, sinv, NULL, NULL, n4, a->zp[s], a->log_sqrt_2pi, e, nd};
            x = mix_newton(&coarse, x, lo, hi, a->coarse_tol, a->max_iter, NULL);
            x = x < lo ? lo : x;
            x = x > hi ? hi : x;
        }
        mix_t full = {mean, w, dw, inv_sd, w2, dw2, c, a->zp[s], a->log_sqrt_2pi, e, nd};
        last_t last = {NAN, NAN, NAN};   /* (max_iter >= 1: always written) */
        x = mix_newton(&full, x, lo, hi, a->tol, a->max_iter, &last);
        x_out[s] = x;
        gap_out[s] = fabs(last.cdf + last.pdf * k * (x - last.x) - a->p[s]);
    }
}

/* The tail and 1 - tail quantiles of the m mixtures sum_j W_ij N(M_ij, S_ij^2) over the c
 * columns cols[0..c) of W, M, S (rows ld[0], ld[1], ld[2] doubles apart, columns adjacent; ld 0:
 * every row the same) into x (2m: lower
 * ends, then upper ends), and the check gap (2m) of the rule of the columns j (of cols) where
 * even[j] != 0. Columns cols[j] >= width are massless unit normals (mass 0, mean 0, SD 1: the
 * padding of a group narrower than the batch's widest; they add exactly 0 to every sum, but
 * hold their places in the coarse rule). Returns 0, or -1 when out of memory. */
long ma_central_quantiles(const double *W, const double *M, const double *S, const long *ld, long width,
                          const long *cols, const unsigned char *even, long m, long c,
                          const mq_args *a, double *x, double *gap)
{
    double *scratch = malloc((size_t)(c > 0 ? 13 * c : 1) * sizeof(double));
    if (!scratch)
        return -1;
    double *w = scratch + 10 * c, *mean = scratch + 11 * c, *sd = scratch + 12 * c;
    for (long i = 0; i < m; i++) {
        double xs[2], gs[2];
        for (long j = 0; j < c; j++) {   /* the row's kept columns, gathered */
            int in = cols[j] < width;
            w[j] = in ? W[i * ld[0] + cols[j]] : 0.0;
            mean[j] = in ? M[i * ld[1] + cols[j]] : 0.0;
            sd[j] = in ? S[i * ld[2] + cols[j]] : 1.0;
        }
        central_row(w, mean, sd, even, c, a, scratch, xs, gs);
        x[i] = xs[0];
        x[m + i] = xs[1];
        gap[i] = gs[0];
        gap[m + i] = gs[1];
    }
    free(scratch);
    return 0;
}

/* ---- the tau posterior of rows sharing their variances and nodes ---------------------------
 * bayesian._common_rule after its per-node constants: the data of row i enter through
 * sum_l w_jl y_il and sum_l w_jl y_il^2 at each node j (the matrix products of the numpy code),
 * then the conditional mean of mu, Q, the log kernel and its normalised exponential. Model:
 * Roever 2020, doi:10.18637/jss.v093.i06. */

/* One row: the sums at the n nodes (weights Wt, (k, n)), with the normal prior on mu as one
 * more study (w0, y0; w0 = 0 without it), into swy and q; mean into mean. Vectorised over
 * the nodes (CLONES). */
CLONES SPECULATE static void rule_row(const double *y, long k, const double *Wt, long n,
                                       const double *sw, double w0, double y0, double *mean,
                                       double *q)
{
    for (long j = 0; j < n; j++)
        mean[j] = q[j] = 0.0;
    for (long l = 0; l < k; l++) {
        double yl = y[l], yy = yl * yl;
        for (long j = 0; j < n; j++) {
            mean[j] += Wt[l * n + j] * yl;          /* sum w y, for now */
            q[j] += Wt[l * n + j] * yy;             /* sum w y^2, for now */
        }
    }
    double a = w0 * y0, b = w0 * y0 * y0;
    for (long j = 0; j < n; j++) {
        double swy = mean[j] + a, swyy = q[j] + b, mu = swy / sw[j], d = swyy - swy * mu;
        mean[j] = mu;
        q[j] = d < 0 ? 0.0 : d;                     /* np.maximum(d, 0); NaN stays NaN */
    }
}

/* exp(lk - max lk) / sum over the n nodes, lk = base - q / 2, into mass (q is overwritten). */
CLONES SPECULATE static void rule_mass(const double *base, double *q, long n, double *mass)
{
    double top = -INFINITY, s[4] = {0.0, 0.0, 0.0, 0.0};
    for (long j = 0; j < n; j++) {
        q[j] = base[j] - 0.5 * q[j];
        top = q[j] > top || q[j] != q[j] ? q[j] : top;   /* NaN propagates, as numpy's max */
    }
    for (long j = 0; j < n; j++)
        mass[j] = exp_neg(q[j] - top);
    for (long j = 0; j < n; j++)
        s[j % 4] += mass[j];
    double total = (s[0] + s[1]) + (s[2] + s[3]);
    for (long j = 0; j < n; j++)
        mass[j] = mass[j] / total;
}

/* Masses and conditional means of mu (m, n) of the rows Y (m, k) on one rule: weights Wt
 * (k, n) = 1 / (v_l + tau_j^2), sw (n) = sum_l w_jl + w0, base (n) = log prior + sum log w / 2
 * + log dtau - log(sw) / 2; a normal prior N(y0_i, 1 / w0) on mu when y0 is not NULL. Returns
 * 0, or -1 when out of memory. */
long ma_common_rule(const double *Y, long m, long k, const double *Wt, long n, const double *sw,
                    const double *base, double w0, const double *y0, double *mass, double *mean)
{
    double *q = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (!q)
        return -1;
    for (long i = 0; i < m; i++) {
        rule_row(Y + i * k, k, Wt, n, sw, y0 ? w0 : 0.0, y0 ? y0[i] : 0.0, mean + i * n, q);
        rule_mass(base, q, n, mass + i * n);
    }
    free(q);
    return 0;
}

/* ---- the centres of the next rules: the posterior median of tau per row ---------------------- */

/* One row's mass and conditional means at the n nodes (ma_common_rule's row). */
static void common_row(const double *y, long k, const double *Wt, long n, const double *sw,
                       const double *base, double w0, double y0, double *mean, double *q,
                       double *mass)
{
    rule_row(y, k, Wt, n, sw, w0, y0, mean, q);
    rule_mass(base, q, n, mass);
}

/* Per row of Y (m, k) on the rule (as ma_common_rule), the node tau[j] at which the cumulative
 * mass first reaches 1/2 (the last node if none does) into out (m): the centre of the row's
 * next rule (bayesian._first_crossing on numpy's cumsum, the same sums in the same order). */
long ma_common_median(const double *Y, long m, long k, const double *Wt, long n, const double *sw,
                      const double *base, double w0, const double *y0, const double *tau,
                      double *out)
{
    double *buf = malloc((size_t)(n > 0 ? 3 * n : 1) * sizeof(double));
    if (!buf)
        return -1;
    for (long i = 0; i < m; i++) {
        double cum = 0.0;
        long below = 0;
        common_row(Y + i * k, k, Wt, n, sw, base, y0 ? w0 : 0.0, y0 ? y0[i] : 0.0, buf + n,
                   buf + 2 * n, buf);
        for (long j = 0; j < n; j++) {
            cum += buf[j];
            below += cum < 0.5;
        }
        out[i] = tau[below < n - 1 ? below : n - 1];
    }
    free(buf);
    return 0;
}

/* Phi(z) and Phi^-1(p) of n values as the quantile search computes them (for the tests). */
void ma_ndtr(const double *z, long n, double *out)
{
    for (long i = 0; i < n; i++)
        out[i] = ndtr_e(z[i], exp_neg(z[i] * z[i] * -0.5));
}

void ma_ndtri(const double *p, long n, double *out)
{
    for (long i = 0; i < n; i++)
        out[i] = ndtri(p[i]);
}

/* The interface version, checked by the loader against its own. */
int ma_abi(void)
{
    return MA_ABI;
}

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "_kernel",
    "C kernel of metaanalysis.pooling.pool_many; loaded with ctypes by metaanalysis._compiled.",
    -1, NULL, NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC PyInit__kernel(void)
{
    return PyModule_Create(&kernel_module);
}
