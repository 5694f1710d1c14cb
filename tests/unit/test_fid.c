/* test_fid.c — FID statistics, stats files, Fréchet distance (pytorch-fid,
 * ../shared/data/golden/fid) and the Inception Score on hand-checked cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/fid.h"
#include "npy.h"
#include "testutil.h"

#define FID_TOL 1e-6

Suite *suite_fid(void);

static void golden_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/golden/fid/%s", tu_data_dir(), name);
}

/* max|a − b| / max|b| over n values. */
static double rel(const double *a, const double *b, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        md = !(d <= md) ? (isnan(d) ? INFINITY : d) : md;
        mr = fmax(mr, fabs(b[i]));
    }
    return mr > 0 ? md / mr : md;
}

static void read_golden(const char *name, struct ldm_fid_stats *s)
{
    char path[4096];
    golden_path(path, sizeof path, name);
    ck_ok(ldm_fid_stats_read(path, s));
}

START_TEST(test_golden_fid)
{
    struct ldm_fid_stats a, b;
    double fid = 0;
    read_golden("stats_a.npz", &a);
    read_golden("stats_b.npz", &b);
    ck_assert_int_eq(a.dim, 64);
    ck_ok(ldm_fid_distance(&a, &b, &fid));
    const double ref = 200.12577519253477; /* fid.json */
    fprintf(stderr, "fid: %.17g (pytorch-fid %.17g), relative error %.3g\n", fid, ref,
            fabs(fid - ref) / ref);
    ck_assert_msg(fabs(fid - ref) <= FID_TOL * ref, "fid %.17g, expected %.17g", fid, ref);
    double self = 1;
    ck_ok(ldm_fid_distance(&a, &a, &self));
    ck_assert_msg(fabs(self) < 1e-9, "fid(a, a) = %g", self);
    ldm_fid_stats_free(&a);
    ldm_fid_stats_free(&b);
}
END_TEST

/* The features behind stats_a.npz, as float32 rows. */
static void read_features(struct ldm_array *f)
{
    char path[4096];
    golden_path(path, sizeof path, "features_a.npy");
    ck_ok(ldm_npy_read(path, f));
    ck_assert_int_eq(f->dtype, LDM_DT_F32);
    ck_assert_int_eq(f->ndim, 2);
}

static void stats_of(const float *x, int64_t n, int64_t D, const int64_t *cuts, int ncuts,
                     struct ldm_fid_stats *out)
{
    struct ldm_fid_acc *acc = NULL;
    ck_ok(ldm_fid_acc_new(&acc, D));
    int64_t r = 0;
    for (int i = 0; i <= ncuts; i++) {
        int64_t end = i < ncuts ? cuts[i] : n;
        ck_ok(ldm_fid_acc_add(acc, x + r * D, end - r));
        r = end;
    }
    ck_ok(ldm_fid_acc_stats(acc, out));
    ldm_fid_acc_free(&acc);
}

START_TEST(test_stats_match_numpy)
{
    struct ldm_array f;
    struct ldm_fid_stats ours, ref;
    read_features(&f);
    int64_t n = f.shape[0], D = f.shape[1];
    stats_of(f.data, n, D, NULL, 0, &ours);
    read_golden("stats_a.npz", &ref);
    ck_assert_int_eq(ours.count, n);
    double em = rel(ours.mu, ref.mu, (size_t)D), es = rel(ours.sigma, ref.sigma, (size_t)(D * D));
    fprintf(stderr, "fid: stats of features_a vs stats_a: mu %.3g, sigma %.3g\n", em, es);
    ck_assert_msg(em <= FID_TOL && es <= FID_TOL, "mu %.3g sigma %.3g", em, es);
    ldm_fid_stats_free(&ours);
    ldm_fid_stats_free(&ref);
    ldm_array_free(&f);
}
END_TEST

START_TEST(test_streaming_equals_one_shot)
{
    struct ldm_array f;
    struct ldm_fid_stats one, many;
    read_features(&f);
    int64_t n = f.shape[0], D = f.shape[1], cuts[] = {1, 2, 9, 9, 300, 301};
    stats_of(f.data, n, D, NULL, 0, &one);
    stats_of(f.data, n, D, cuts, 6, &many);
    double em = rel(many.mu, one.mu, (size_t)D), es = rel(many.sigma, one.sigma, (size_t)(D * D));
    ck_assert_msg(em <= 1e-13 && es <= 1e-13, "streamed differs: mu %.3g sigma %.3g", em, es);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++)
            ck_assert(many.sigma[i * D + j] == many.sigma[j * D + i]);
    ldm_fid_stats_free(&one);
    ldm_fid_stats_free(&many);
    ldm_array_free(&f);
}
END_TEST

START_TEST(test_stats_file_roundtrip)
{
    struct ldm_fid_stats a, b;
    char *dir = tu_tmpdir(), path[4096];
    read_golden("stats_b.npz", &a);
    snprintf(path, sizeof path, "%s/stats.npz", dir);
    ck_ok(ldm_fid_stats_write(path, &a));
    ck_ok(ldm_fid_stats_read(path, &b));
    ck_assert_int_eq(b.dim, a.dim);
    ck_assert(memcmp(a.mu, b.mu, (size_t)a.dim * sizeof(double)) == 0);
    ck_assert(memcmp(a.sigma, b.sigma, (size_t)(a.dim * a.dim) * sizeof(double)) == 0);
    /* numpy reads what we write */
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np, sys; z = np.load('%s'); "
             "sys.exit(0 if z['mu'].dtype == np.float64 and z['sigma'].shape == (64, 64) and "
             "abs(z['sigma'][3, 5] - %.17g) == 0 else 1)\"",
             path, a.sigma[3 * 64 + 5]);
    ck_assert_int_eq(system(cmd), 0);
    ldm_fid_stats_free(&b);
    /* a sigma of the wrong width names the file and the array */
    a.dim = 63;
    ck_ok(ldm_fid_stats_write(path, &a)); /* mu (63), sigma (63, 63) from the 64-wide data */
    ck_ok(ldm_fid_stats_read(path, &b));
    ldm_fid_stats_free(&b);
    struct ldm_array mu = {.dtype = LDM_DT_F64, .ndim = 1, .shape = {64}, .data = a.mu,
                           .nbytes = 64 * sizeof(double)};
    struct ldm_array sg = {.dtype = LDM_DT_F64, .ndim = 2, .shape = {63, 63}, .data = a.sigma,
                           .nbytes = 63 * 63 * sizeof(double)};
    struct ldm_npz_entry e[2] = {{"mu", &mu}, {"sigma", &sg}};
    ck_ok(ldm_npz_write(path, e, 2, 0));
    ck_fails_with(ldm_fid_stats_read(path, &b), LDM_EFORMAT, "sigma");
    ck_assert_ptr_null(b.mu);
    a.dim = 64;
    ldm_fid_stats_free(&a);
    remove(path);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static void fill_stats(struct ldm_fid_stats *s, int64_t D, const double *mu, const double *sigma)
{
    s->dim = D;
    s->count = 0;
    s->mu = malloc((size_t)D * sizeof(double));
    s->sigma = malloc((size_t)(D * D) * sizeof(double));
    memcpy(s->mu, mu, (size_t)D * sizeof(double));
    memcpy(s->sigma, sigma, (size_t)(D * D) * sizeof(double));
}

/* Q·diag(d)·Qᵀ with Q = I − 2vvᵀ/vᵀv (a reflection, so orthogonal). */
static void rotated_diag(const double *d, double *out)
{
    const double v[6] = {1, -2, 0.5, 3, -1, 0.25};
    double vv = 0, q[36];
    for (int i = 0; i < 6; i++)
        vv += v[i] * v[i];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            q[i * 6 + j] = (i == j) - 2 * v[i] * v[j] / vv;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) {
            out[i * 6 + j] = 0;
            for (int k = 0; k < 6; k++)
                out[i * 6 + j] += q[i * 6 + k] * d[k] * q[j * 6 + k];
        }
}

/* Rank-2 covariances, hand-checked: σ1σ2 = Q·diag(36,0,...)·Qᵀ, so
 * FID = |Δmu|² + tr σ1 + tr σ2 − 2·6 = 1 + 5 + 13 − 12 = 7. */
START_TEST(test_singular)
{
    const double d1[6] = {4, 1, 0, 0, 0, 0}, d2[6] = {9, 0, 0, 0, 0, 4};
    const double mu1[6] = {0}, mu2[6] = {0, 0, 1, 0, 0, 0};
    double s1[36], s2[36], fid = 0;
    rotated_diag(d1, s1);
    rotated_diag(d2, s2);
    struct ldm_fid_stats a, b;
    fill_stats(&a, 6, mu1, s1);
    fill_stats(&b, 6, mu2, s2);
    ck_ok(ldm_fid_distance(&a, &b, &fid));
    ck_assert_msg(fabs(fid - 7.0) < 1e-9, "singular fid %.17g, expected 7", fid);
    ldm_fid_stats_free(&a);
    ldm_fid_stats_free(&b);
    /* non-commuting: σ1 = diag(1,0), σ2 = [[2,1],[1,1]]: σ1σ2 has eigenvalues 2, 0 */
    const double t1[4] = {1, 0, 0, 0}, t2[4] = {2, 1, 1, 1}, m[2] = {0.5, -1};
    fill_stats(&a, 2, m, t1);
    fill_stats(&b, 2, m, t2);
    ck_ok(ldm_fid_distance(&a, &b, &fid));
    ck_assert_msg(fabs(fid - (4 - 2 * sqrt(2.0))) < 1e-12, "fid %.17g", fid);
    ldm_fid_stats_free(&a);
    ldm_fid_stats_free(&b);
    /* 5 feature rows in 8 dims: a rank-4 covariance, and fid(s, s) = 0 */
    float x[40];
    for (int i = 0; i < 40; i++)
        x[i] = (float)sin(1.3 * i * i + 0.7);
    struct ldm_fid_stats s;
    stats_of(x, 5, 8, NULL, 0, &s);
    ck_ok(ldm_fid_distance(&s, &s, &fid));
    ck_assert_msg(fabs(fid) < 1e-9, "fid(s, s) = %g for a singular s", fid);
    ldm_fid_stats_free(&s);
}
END_TEST

START_TEST(test_errors)
{
    const double i2[4] = {1, 0, 0, 1}, neg[4] = {-1, 0, 0, -1}, m[2] = {0, 0};
    struct ldm_fid_stats a, b, c = {0};
    double fid;
    fill_stats(&a, 2, m, i2);
    fill_stats(&b, 2, m, neg);
    ck_fails_with(ldm_fid_distance(&a, &b, &fid), LDM_ERANGE, "imaginary component 1");
    ck_fails_with(ldm_fid_distance(&a, &c, &fid), LDM_EINVAL, "widths 2 and 0");
    b.sigma[1] = b.sigma[2] = NAN; /* not finite even after the eps retry */
    int rc = ldm_fid_distance(&a, &b, &fid);
    ck_assert_msg(rc == LDM_ERANGE || rc == LDM_EIO, "NaN sigma gave %d (%s)", rc, ldm_errmsg());
    ldm_fid_stats_free(&a);
    ldm_fid_stats_free(&b);
    struct ldm_fid_acc *acc = NULL;
    float x[6] = {1, 2, 3, NAN, 5, 6};
    ck_fails_with(ldm_fid_acc_new(&acc, 0), LDM_EINVAL, "width 0");
    ck_ok(ldm_fid_acc_new(&acc, 2));
    ck_ok(ldm_fid_acc_add(acc, x, 1));
    ck_fails_with(ldm_fid_acc_stats(acc, &c), LDM_EINVAL, "1 rows");
    ck_fails_with(ldm_fid_acc_add(acc, x + 2, 2), LDM_EINVAL, "row 1 column 1");
    ldm_fid_acc_free(&acc);
    ck_assert_ptr_null(acc);
    char path[4096];
    golden_path(path, sizeof path, "features_a.npy"); /* not an npz */
    ck_assert_int_ne(ldm_fid_stats_read(path, &c), 0);
    ck_assert_ptr_null(c.sigma);
}
END_TEST

/* Hand-checked Inception Scores (a logit of −50 gives p ≈ 2e-22, zero
 * to double precision in these sums). Two one-hot rows over 2 classes: p(y) =
 * (½, ½), KL = log 2 each, IS = 2; two equal rows: IS = 1. Rows (½,½) and
 * (1,0): p(y) = (¾,¼), KLs ½·log(4/3) and log(4/3), IS = (4/3)^(3/4). */
START_TEST(test_inception_score)
{
    const float hot[8] = {0, -50, -50, 0, 0, -50, 0, -50};
    double mean, std;
    ck_ok(ldm_inception_score(hot, 4, 2, 2, &mean, &std));
    ck_assert_msg(fabs(mean - 1.5) < 1e-12 && fabs(std - 0.5) < 1e-12, "%.17g %.17g", mean, std);
    ck_ok(ldm_inception_score(hot, 2, 2, 1, &mean, &std));
    ck_assert_msg(fabs(mean - 2) < 1e-12 && std == 0, "%.17g %.17g", mean, std);
    const float mix[4] = {3, 3, 0, -50};
    ck_ok(ldm_inception_score(mix, 2, 2, 1, &mean, &std));
    ck_assert_msg(fabs(mean - pow(4.0 / 3.0, 0.75)) < 1e-12, "%.17g", mean);
    /* uneven splits: [0, 3/2) = row 0 and [1, 3) = rows 1, 2 (i·N/splits) */
    const float three[6] = {0, -50, -50, 0, 0, -50};
    ck_ok(ldm_inception_score(three, 3, 2, 2, &mean, &std));
    ck_assert_msg(fabs(mean - 1.5) < 1e-12 && fabs(std - 0.5) < 1e-12, "%.17g %.17g", mean, std);
    ck_fails_with(ldm_inception_score(hot, 4, 2, 5, &mean, &std), LDM_EINVAL, "5 splits");
}
END_TEST

Suite *suite_fid(void)
{
    Suite *s = suite_create("fid");
    TCase *tc = tcase_create("fid");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_golden_fid);
    tcase_add_test(tc, test_stats_match_numpy);
    tcase_add_test(tc, test_streaming_equals_one_shot);
    tcase_add_test(tc, test_stats_file_roundtrip);
    tcase_add_test(tc, test_singular);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_inception_score);
    suite_add_tcase(s, tc);
    return s;
}
