/* fid.c — streamed FID statistics, pytorch-fid stats files, Fréchet distance, and the
 * Inception Score as torch-fidelity computes it (with numpy's RandomState shuffle). */
#include "models/fid.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "npy.h"

#define ACC_ROWS 256 /* rows converted and centred per block */

/* LAPACK (Fortran ABI, from OpenBLAS; no lapacke.h is installed). The
 * trailing lengths are the hidden CHARACTER lengths gfortran passes. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);

struct ldm_fid_acc {
    int64_t dim, count;
    double *mean; /* (D) */
    double *m2;   /* (D, D), upper triangle: Σ (x − mean)(x − mean)ᵀ */
    double *buf;  /* (ACC_ROWS, D) one block, centred */
    double *bmean; /* (D) */
};

void ldm_fid_stats_free(struct ldm_fid_stats *s)
{
    if (!s)
        return;
    free(s->mu);
    free(s->sigma);
    memset(s, 0, sizeof *s);
}

static int stats_alloc(struct ldm_fid_stats *s, int64_t dim)
{
    memset(s, 0, sizeof *s);
    s->dim = dim;
    s->mu = calloc((size_t)dim, sizeof *s->mu);
    s->sigma = calloc((size_t)dim * (size_t)dim, sizeof *s->sigma);
    if (!s->mu || !s->sigma) {
        ldm_fid_stats_free(s);
        return ldm_fail(LDM_ENOMEM, "fid: no memory for %lld-wide statistics", (long long)dim);
    }
    return 0;
}

/* ---- streaming statistics --------------------------------------------------- */

int ldm_fid_acc_new(struct ldm_fid_acc **out, int64_t dim)
{
    *out = NULL;
    if (dim < 1 || dim > 65536)
        return ldm_fail(LDM_EINVAL, "fid: feature width %lld outside 1..65536", (long long)dim);
    struct ldm_fid_acc *a = calloc(1, sizeof *a);
    size_t d = (size_t)dim;
    if (a) {
        a->dim = dim;
        a->mean = calloc(d, sizeof(double));
        a->bmean = calloc(d, sizeof(double));
        a->m2 = calloc(d * d, sizeof(double));
        a->buf = calloc(ACC_ROWS * d, sizeof(double));
    }
    if (!a || !a->mean || !a->bmean || !a->m2 || !a->buf) {
        ldm_fid_acc_free(&a);
        return ldm_fail(LDM_ENOMEM, "fid: no memory for a %lld-wide accumulator", (long long)dim);
    }
    *out = a;
    return 0;
}

void ldm_fid_acc_free(struct ldm_fid_acc **a)
{
    if (!a || !*a)
        return;
    free((*a)->mean);
    free((*a)->bmean);
    free((*a)->m2);
    free((*a)->buf);
    free(*a);
    *a = NULL;
}

/* Convert rows x[0..n) into buf and centre them on their mean (bmean). */
static int load_block(struct ldm_fid_acc *a, const float *x, int64_t n, int64_t row0)
{
    size_t D = (size_t)a->dim;
    memset(a->bmean, 0, D * sizeof(double));
    for (int64_t r = 0; r < n; r++)
        for (size_t j = 0; j < D; j++) {
            double v = x[(size_t)r * D + j];
            if (!isfinite(v))
                return ldm_fail(LDM_EINVAL, "fid: feature row %lld column %zu is %g",
                                (long long)(row0 + r), j, v);
            a->buf[(size_t)r * D + j] = v;
            a->bmean[j] += v;
        }
    for (size_t j = 0; j < D; j++)
        a->bmean[j] /= (double)n;
    for (int64_t r = 0; r < n; r++)
        for (size_t j = 0; j < D; j++)
            a->buf[(size_t)r * D + j] -= a->bmean[j];
    return 0;
}

/* Chan's update: merge a block of nb centred rows (mean bmean) into the
 * running count, mean and co-moments. */
static void merge_block(struct ldm_fid_acc *a, int64_t nb)
{
    int D = (int)a->dim;
    double na = (double)a->count, n = na + (double)nb;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)nb, 1.0, a->buf, D, 1.0, a->m2, D);
    for (int j = 0; j < D; j++) /* bmean becomes delta = bmean − mean */
        a->bmean[j] -= a->mean[j];
    cblas_dsyr(CblasRowMajor, CblasUpper, D, na * (double)nb / n, a->bmean, 1, a->m2, D);
    for (int j = 0; j < D; j++)
        a->mean[j] += a->bmean[j] * (double)nb / n;
    a->count += nb;
}

int ldm_fid_acc_add(struct ldm_fid_acc *a, const float *x, int64_t n)
{
    if (n < 0 || (n > 0 && !x))
        return ldm_fail(LDM_EINVAL, "fid: bad batch of %lld rows", (long long)n);
    for (int64_t r = 0; r < n; r += ACC_ROWS) {
        int64_t nb = n - r < ACC_ROWS ? n - r : ACC_ROWS;
        int rc = load_block(a, x + (size_t)r * (size_t)a->dim, nb, a->count);
        if (rc)
            return rc;
        merge_block(a, nb);
    }
    return 0;
}

int ldm_fid_acc_stats(const struct ldm_fid_acc *a, struct ldm_fid_stats *out)
{
    memset(out, 0, sizeof *out);
    if (a->count < 2)
        return ldm_fail(LDM_EINVAL, "fid: covariance of %lld rows is undefined (need 2 or more)",
                        (long long)a->count);
    int rc = stats_alloc(out, a->dim);
    if (rc)
        return rc;
    size_t D = (size_t)a->dim;
    double f = 1.0 / (double)(a->count - 1);
    memcpy(out->mu, a->mean, D * sizeof(double));
    for (size_t i = 0; i < D; i++)
        for (size_t j = i; j < D; j++)
            out->sigma[i * D + j] = out->sigma[j * D + i] = a->m2[i * D + j] * f;
    out->count = a->count;
    return 0;
}

/* ---- files -------------------------------------------------------------------- */

/* Copy array `arr` (F32 or F64, ndim dims of size dim) into dst as F64. */
static int take(const char *path, const char *name, const struct ldm_array *arr, int ndim,
                int64_t dim, double *dst)
{
    int ok = arr->ndim == ndim;
    for (int i = 0; i < ndim && ok; i++)
        ok = arr->shape[i] == dim;
    if (!ok)
        return ldm_fail(LDM_EFORMAT, "%s: %s has %d dims (first %lld), expected %d of %lld",
                        path, name, arr->ndim, arr->ndim ? (long long)arr->shape[0] : 0LL, ndim,
                        (long long)dim);
    size_t n = ldm_array_count(arr);
    if (arr->dtype == LDM_DT_F64)
        memcpy(dst, arr->data, n * sizeof(double));
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = ((const float *)arr->data)[i];
    return 0;
}

int ldm_fid_stats_read(const char *path, struct ldm_fid_stats *out)
{
    static const char *const names[2] = {"mu", "sigma"};
    struct ldm_array arr[2];
    memset(out, 0, sizeof *out);
    int rc = ldm_npz_load(path, names, arr, 2);
    if (rc)
        return rc;
    if (arr[0].ndim != 1 || arr[0].shape[0] < 1)
        rc = ldm_fail(LDM_EFORMAT, "%s: mu must be one-dimensional and not empty", path);
    if (rc == 0)
        rc = stats_alloc(out, arr[0].shape[0]);
    if (rc == 0)
        rc = take(path, "mu", &arr[0], 1, out->dim, out->mu);
    if (rc == 0)
        rc = take(path, "sigma", &arr[1], 2, out->dim, out->sigma);
    if (rc)
        ldm_fid_stats_free(out);
    ldm_array_free(&arr[0]);
    ldm_array_free(&arr[1]);
    return rc;
}

int ldm_fid_stats_write(const char *path, const struct ldm_fid_stats *s)
{
    if (!s || !s->mu || !s->sigma || s->dim < 1)
        return ldm_fail(LDM_EINVAL, "%s: empty statistics", path);
    size_t D = (size_t)s->dim;
    struct ldm_array mu = {.dtype = LDM_DT_F64, .ndim = 1, .shape = {s->dim}, .data = s->mu,
                           .nbytes = D * sizeof(double)};
    struct ldm_array sg = {.dtype = LDM_DT_F64, .ndim = 2, .shape = {s->dim, s->dim},
                           .data = s->sigma, .nbytes = D * D * sizeof(double)};
    struct ldm_npz_entry e[2] = {{"mu", &mu}, {"sigma", &sg}};
    return ldm_npz_write(path, e, 2, 0);
}

/* ---- matrix square root trace ------------------------------------------------- */

/* Eigenvalues (ascending) of the symmetric D×D matrix a into w; with
 * vectors, a's rows become the eigenvectors (LAPACK's column-major
 * columns). a is overwritten. */
static int eigh(double *a, double *w, int D, int vectors)
{
    char jobz = vectors ? 'V' : 'N', uplo = 'U';
    int lwork = -1, liwork = -1, iwq = 0, info = 0;
    double wq = 0;
    dsyevd_(&jobz, &uplo, &D, a, &D, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
    lwork = (int)wq + 1;
    liwork = iwq + 1;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork)
        info = -1000;
    else
        dsyevd_(&jobz, &uplo, &D, a, &D, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info == -1000)
        return ldm_fail(LDM_ENOMEM, "fid: no memory for an eigen-decomposition of size %d", D);
    if (info != 0)
        return ldm_fail(LDM_EIO, "fid: LAPACK dsyevd failed (info %d, size %d)", info, D);
    return 0;
}

/* Eigenvalues within round-off of zero: |λ| <= D·DBL_EPSILON·max|λ|
 * (w ascending). They count as zero: the square root would turn noise of
 * 1e-16 into 1e-8. */
static double noise_floor(const double *w, int D)
{
    return (double)D * DBL_EPSILON * fmax(fabs(w[0]), fabs(w[D - 1]));
}

/* r (D×D) = √s1 from its eigen-decomposition (eigenvalues at or below the
 * noise floor count as zero); t is D×D scratch. */
static int sqrt_psd(const double *s1, double *r, double *t, double *w, int D)
{
    memcpy(t, s1, (size_t)D * (size_t)D * sizeof(double));
    int rc = eigh(t, w, D, 1); /* rows of t: eigenvectors */
    if (rc)
        return rc;
    double fl = noise_floor(w, D);
    for (int i = 0; i < D; i++) {
        double q = w[i] > fl ? sqrt(sqrt(w[i])) : 0.0;
        cblas_dscal(D, q, t + (size_t)i * (size_t)D, 1);
    }
    /* √s1 = Σ_i √w_i v_i v_iᵀ = tᵀ·t with rows scaled by w_i^(1/4) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, D, D, 1.0, t, D, t, D, 0.0, r, D);
    return 0;
}

int ldm_fid_trace_sqrt_product(const double *s1, const double *s2, int64_t dim, double *tr,
                               double *imag)
{
    int D = (int)dim;
    size_t DD = (size_t)D * (size_t)D;
    double *r = malloc(DD * sizeof *r), *t = malloc(DD * sizeof *t), *u = malloc(DD * sizeof *u);
    double *w = malloc((size_t)D * sizeof *w);
    int rc = r && t && u && w ? 0 : ldm_fail(LDM_ENOMEM, "fid: no memory for %d×%d matrices", D, D);
    if (rc == 0)
        rc = sqrt_psd(s1, r, t, w, D);
    if (rc == 0) { /* A = √s1·s2·√s1, symmetric PSD with the eigenvalues of s1·s2 */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, r, D, s2, D, 0.0, t, D);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, t, D, r, D, 0.0, u, D);
        rc = eigh(u, w, D, 0);
    }
    if (rc == 0) {
        double sum = 0, im = 0, fl = noise_floor(w, D);
        for (int i = 0; i < D; i++)
            if (!isfinite(w[i]) || !isfinite(fl))
                sum = NAN; /* NaN or inf in, not finite out: the caller retries */
            else if (w[i] > fl)
                sum += sqrt(w[i]);
            else if (w[i] < -fl)
                im = fmax(im, sqrt(-w[i]));
        *tr = sum;
        *imag = im;
    }
    free(r);
    free(t);
    free(u);
    free(w);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------ */

/* s + eps·I into a new matrix *out (the caller frees it). */
static int offset(const double *s, int64_t D, double **out)
{
    *out = malloc((size_t)(D * D) * sizeof(double));
    if (!*out)
        return ldm_fail(LDM_ENOMEM, "fid: no memory for the eps retry");
    memcpy(*out, s, (size_t)(D * D) * sizeof(double));
    for (int64_t i = 0; i < D; i++)
        (*out)[i * D + i] += LDM_FID_EPS;
    return 0;
}

/* pytorch-fid's retry: tr(sqrtm((s1 + eps·I)(s2 + eps·I))). */
static int retry_offset(const double *s1, const double *s2, int64_t D, double *tr, double *imag)
{
    double *a = NULL, *b = NULL;
    int rc = offset(s1, D, &a);
    if (rc == 0)
        rc = offset(s2, D, &b);
    if (rc == 0)
        rc = ldm_fid_trace_sqrt_product(a, b, D, tr, imag);
    free(a);
    free(b);
    return rc;
}

int ldm_fid_distance(const struct ldm_fid_stats *a, const struct ldm_fid_stats *b, double *fid)
{
    if (!a->mu || !a->sigma || !b->mu || !b->sigma || a->dim != b->dim || a->dim < 1)
        return ldm_fail(LDM_EINVAL, "fid: statistics of widths %lld and %lld do not compare",
                        (long long)a->dim, (long long)b->dim);
    int64_t D = a->dim;
    double tr = NAN, imag = 0, diff = 0, t1 = 0, t2 = 0;
    int rc = ldm_fid_trace_sqrt_product(a->sigma, b->sigma, D, &tr, &imag);
    if (rc == LDM_EIO || (rc == 0 && !isfinite(tr)))
        rc = retry_offset(a->sigma, b->sigma, D, &tr, &imag);
    if (rc)
        return rc;
    if (!isfinite(tr))
        return ldm_fail(LDM_ERANGE, "fid: tr(sqrtm(sigma1·sigma2)) is %g even with eps %g", tr,
                        LDM_FID_EPS);
    if (imag > LDM_FID_IMAG_TOL)
        return ldm_fail(LDM_ERANGE, "fid: imaginary component %g in sqrtm(sigma1·sigma2)", imag);
    for (int64_t i = 0; i < D; i++) {
        double d = a->mu[i] - b->mu[i];
        diff += d * d;
        t1 += a->sigma[i * D + i];
        t2 += b->sigma[i * D + i];
    }
    *fid = diff + t1 + t2 - 2.0 * tr;
    return 0;
}

/* ---- Inception Score ---------------------------------------------------------- */

#define MT_N 624
#define MT_M 397

/* numpy's legacy MT19937 (RandomState): state and position. */
struct mt19937 {
    uint32_t key[MT_N];
    int pos;
};

/* RandomState(seed) for an integer seed: init_genrand. */
static void mt_seed(struct mt19937 *m, uint32_t seed)
{
    m->key[0] = seed;
    for (uint32_t i = 1; i < MT_N; i++)
        m->key[i] = 1812433253u * (m->key[i - 1] ^ (m->key[i - 1] >> 30)) + i;
    m->pos = MT_N;
}

static void mt_regenerate(struct mt19937 *m)
{
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (m->key[i] & 0x80000000u) | (m->key[(i + 1) % MT_N] & 0x7fffffffu);
        m->key[i] = m->key[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    m->pos = 0;
}

static uint32_t mt_next32(struct mt19937 *m)
{
    if (m->pos == MT_N)
        mt_regenerate(m);
    uint32_t y = m->key[m->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* numpy's legacy random_interval: uniform in 0..max by masked rejection. */
static uint64_t mt_interval(struct mt19937 *m, uint64_t max)
{
    uint64_t mask = max, v;
    for (int s = 1; s <= 32; s *= 2)
        mask |= mask >> s;
    if (max <= 0xffffffffu) {
        while ((v = (mt_next32(m) & mask)) > max)
            ;
    } else {
        do {
            uint64_t hi = mt_next32(m);
            v = ((hi << 32) | mt_next32(m)) & mask;
        } while (v > max);
    }
    return v;
}

int ldm_inception_permutation(int64_t N, uint32_t seed, int64_t *perm)
{
    if (N < 0 || (N > 0 && !perm))
        return ldm_fail(LDM_EINVAL, "inception score: permutation of %lld rows", (long long)N);
    struct mt19937 *m = malloc(sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "inception score: no memory for the generator");
    mt_seed(m, seed);
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    for (int64_t i = N - 1; i > 0; i--) { /* RandomState.shuffle */
        int64_t j = (int64_t)mt_interval(m, (uint64_t)i), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    free(m);
    return 0;
}

/* One row of logits x (C) into p (softmax) and lp (log-softmax), in float64. */
static void softmax_row(const float *x, int64_t C, double *p, double *lp)
{
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < C; j++)
        mx = fmax(mx, (double)x[j]);
    for (int64_t j = 0; j < C; j++)
        s += exp((double)x[j] - mx);
    double ls = log(s);
    for (int64_t j = 0; j < C; j++) {
        lp[j] = (double)x[j] - mx - ls;
        p[j] = exp(lp[j]);
    }
}

/* exp(mean KL(p(y|x) || p̄(y))) over the rows at positions [k0, k1) of the
 * order perm (NULL: positions are rows); w holds 3·C doubles. */
static double split_score(const float *logits, const int64_t *perm, int64_t k0, int64_t k1,
                          int64_t C, double *w)
{
    double *q = w, *p = w + C, *lp = w + 2 * C, kl = 0;
    int64_t n = k1 - k0;
    memset(q, 0, (size_t)C * sizeof *q);
    for (int64_t k = k0; k < k1; k++) {
        softmax_row(logits + (perm ? perm[k] : k) * C, C, p, lp);
        for (int64_t j = 0; j < C; j++)
            q[j] += p[j];
    }
    for (int64_t j = 0; j < C; j++)
        q[j] = log(q[j] / (double)n);
    for (int64_t k = k0; k < k1; k++) {
        softmax_row(logits + (perm ? perm[k] : k) * C, C, p, lp);
        double r = 0;
        for (int64_t j = 0; j < C; j++)
            r += p[j] * (lp[j] - q[j]);
        kl += r;
    }
    return exp(kl / (double)n);
}

/* 0 when perm[0..N) holds each of 0..N−1 once; seen is N bytes of scratch. */
static int check_perm(const int64_t *perm, int64_t N, unsigned char *seen)
{
    memset(seen, 0, (size_t)N);
    for (int64_t k = 0; k < N; k++) {
        if (perm[k] < 0 || perm[k] >= N || seen[perm[k]])
            return ldm_fail(LDM_EINVAL, "inception score: perm[%lld] = %lld is %s",
                            (long long)k, (long long)perm[k],
                            perm[k] < 0 || perm[k] >= N ? "out of range" : "repeated");
        seen[perm[k]] = 1;
    }
    return 0;
}

int ldm_inception_score_perm(const float *logits, int64_t N, int64_t C, int splits,
                             const int64_t *perm, double *mean, double *std)
{
    if (splits < 1 || N < splits || C < 1 || !logits)
        return ldm_fail(LDM_EINVAL, "inception score: %lld rows of %lld logits in %d splits",
                        (long long)N, (long long)C, splits);
    double *w = malloc((size_t)C * 3 * sizeof *w), *sc = malloc((size_t)splits * sizeof *sc);
    unsigned char *seen = perm ? malloc((size_t)N) : NULL;
    int rc = w && sc && (seen || !perm) ? 0 : ldm_fail(LDM_ENOMEM, "inception score: no memory");
    if (rc == 0 && perm)
        rc = check_perm(perm, N, seen);
    if (rc == 0) {
        double m = 0, v = 0;
        for (int i = 0; i < splits; i++) {
            sc[i] = split_score(logits, perm, i * N / splits, (i + 1) * N / splits, C, w);
            m += sc[i];
        }
        m /= splits;
        for (int i = 0; i < splits; i++)
            v += (sc[i] - m) * (sc[i] - m);
        *mean = m;
        *std = sqrt(v / splits); /* np.std: ddof 0 */
    }
    free(w);
    free(sc);
    free(seen);
    return rc;
}

int ldm_inception_score(const float *logits, int64_t N, int64_t C, int splits, double *mean,
                        double *std)
{
    return ldm_inception_score_perm(logits, N, C, splits, NULL, mean, std);
}
