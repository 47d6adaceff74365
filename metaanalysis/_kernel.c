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

#define MA_ABI 1            /* bump when the interface below changes (_compiled.py checks) */
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
