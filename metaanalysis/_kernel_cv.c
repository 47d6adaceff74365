/*
 * metaanalysis._kernel, part 2: the control-variate estimates of metaanalysis/coverage.py
 * (its _ControlFit: cross-fitted regression on the controls, "splitting", Nelson 1990,
 * Oper Res 38:974), in plain C99, compiled into the same extension as _kernel.c (setup.py).
 *
 * Why C: the regression has to avoid BLAS and LAPACK, whose last bits depend on the CPU
 * kernel and thread count the environment selects, so that a coverage table is the same in
 * every process; numpy's own loops (the fallback in coverage.py) are deterministic but pay
 * Python overhead per row of a Cholesky factor. Here every sum runs in index order. The two
 * paths agree to rounding (tests/test_coverage.py forces both).
 *
 * Arrays are row-major doubles. No numpy C-API, no fast-math.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* In-place lower Cholesky factor of the p x p matrix A (upper triangle left as is).
 * Returns -1 when A is not positive definite (a pivot <= 0 or not finite). */
static int cholesky(double *A, long p)
{
    for (long j = 0; j < p; j++) {
        double d = A[j * p + j];
        for (long k = 0; k < j; k++)
            d -= A[j * p + k] * A[j * p + k];
        if (!(d > 0.0) || !isfinite(d))
            return -1;
        d = sqrt(d);
        A[j * p + j] = d;
        for (long i = j + 1; i < p; i++) {
            double s = A[i * p + j];
            for (long k = 0; k < j; k++)
                s -= A[i * p + k] * A[j * p + k];
            A[i * p + j] = s / d;
        }
    }
    return 0;
}

/* Solve (L L^T) x = b in place for the factor L of cholesky(). */
static void cholesky_solve(const double *L, long p, double *b)
{
    for (long i = 0; i < p; i++) {
        double s = b[i];
        for (long k = 0; k < i; k++)
            s -= L[i * p + k] * b[k];
        b[i] = s / L[i * p + i];
    }
    for (long i = p - 1; i >= 0; i--) {
        double s = b[i];
        for (long k = i + 1; k < p; k++)
            s -= L[k * p + i] * b[k];
        b[i] = s / L[i * p + i];
    }
}

/* Slopes beta (p x r) of the columns of X on the controls C over the rows of one half
 * (i % 2 == half), on the standardised controls with `ridge` added to their correlation
 * matrix; work holds p*p + 2p + r doubles. Returns -1 when the matrix is not positive
 * definite. */
static int half_slopes(const double *C, const double *X, long n, long p, long r, int half,
                       double ridge, double *beta, double *work)
{
    double *G = work, *mean = G + p * p, *sd = mean + p, *xmean = sd + p;
    long nh = 0;
    memset(work, 0, sizeof(double) * (size_t)(p * p + 2 * p + r));
    for (long i = half; i < n; i += 2, nh++) {
        for (long j = 0; j < p; j++)
            mean[j] += C[i * p + j];
        for (long c = 0; c < r; c++)
            xmean[c] += X[i * r + c];
    }
    for (long j = 0; j < p; j++)
        mean[j] /= (double)nh;
    for (long c = 0; c < r; c++)
        xmean[c] /= (double)nh;
    for (long i = half; i < n; i += 2)
        for (long j = 0; j < p; j++) {
            double z = C[i * p + j] - mean[j];
            sd[j] += z * z;
        }
    for (long j = 0; j < p; j++) {
        sd[j] = sqrt(sd[j] / (double)nh);
        if (!(sd[j] > 0.0))
            sd[j] = 1.0;          /* a constant control: slope 0 */
    }
    memset(beta, 0, sizeof(double) * (size_t)(p * r));
    for (long i = half; i < n; i += 2)
        for (long j = 0; j < p; j++) {
            double zj = (C[i * p + j] - mean[j]) / sd[j];
            for (long k = 0; k <= j; k++)
                G[j * p + k] += zj * ((C[i * p + k] - mean[k]) / sd[k]);
            for (long c = 0; c < r; c++)
                beta[j * r + c] += zj * (X[i * r + c] - xmean[c]);
        }
    for (long j = 0; j < p; j++) {
        for (long k = 0; k <= j; k++)
            G[j * p + k] /= (double)nh;
        G[j * p + j] += ridge;
        for (long c = 0; c < r; c++)
            beta[j * r + c] /= (double)nh;
    }
    if (cholesky(G, p) < 0)
        return -1;
    double *col = malloc(sizeof(double) * (size_t)p);   /* one column of beta at a time */
    if (col == NULL)
        return -2;
    for (long c = 0; c < r; c++) {
        for (long j = 0; j < p; j++)
            col[j] = beta[j * r + c];
        cholesky_solve(G, p, col);
        for (long j = 0; j < p; j++)
            beta[j * r + c] = col[j] / sd[j];
    }
    free(col);
    return 0;
}

/*
 * ma_cv_estimates: cross-fitted control-variate estimates of the column means of X.
 *
 *   C      (n, p)  the controls minus their exact means
 *   X      (n, r)  the values whose means are wanted (all finite)
 *   ridge          added to the diagonal of each half's correlation matrix of the controls
 *   est, se (r,)   out: mean of the adjusted values x - C beta (beta from the other half)
 *                  and their SD (n - 1 denominator) over sqrt(n)
 *
 * Returns 0, -1 when a correlation matrix is not positive definite (the caller then uses
 * numpy), -2 when out of memory.
 */
long ma_cv_estimates(const double *C, const double *X, long n, long p, long r, double ridge,
                     double *est, double *se)
{
    double *beta = malloc(sizeof(double) * (size_t)(2 * p * r));
    double *work = malloc(sizeof(double) * (size_t)(p * p + 2 * p + r));
    double *adj = malloc(sizeof(double) * (size_t)(n * r));
    long rc = 0;
    if (beta == NULL || work == NULL || adj == NULL) {
        rc = -2;
        goto done;
    }
    for (int half = 0; half < 2; half++) {
        int got = half_slopes(C, X, n, p, r, half, ridge, beta + half * p * r, work);
        if (got < 0) {
            rc = got;
            goto done;
        }
    }
    /* a row of half h is adjusted with the slopes of the other half */
    for (long i = 0; i < n; i++) {
        const double *b = beta + (1 - i % 2) * p * r;
        for (long c = 0; c < r; c++) {
            double s = X[i * r + c];
            for (long j = 0; j < p; j++)
                s -= C[i * p + j] * b[j * r + c];
            adj[i * r + c] = s;
        }
    }
    for (long c = 0; c < r; c++) {
        double m = 0.0, v = 0.0;
        for (long i = 0; i < n; i++)
            m += adj[i * r + c];
        m /= (double)n;
        for (long i = 0; i < n; i++) {
            double d = adj[i * r + c] - m;
            v += d * d;
        }
        est[c] = m;
        se[c] = sqrt(v / (double)(n - 1)) / sqrt((double)n);
    }
done:
    free(beta);
    free(work);
    free(adj);
    return rc;
}
