/* test_inception.c — the FID InceptionV3 against pytorch-fid (../shared/data/golden/inception_fid):
 * pool3 and logits from weights made by the README's formula, the safetensors
 * loader, and weight files that do not fit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/inception.h"
#include "safetensors.h"
#include "testutil.h"

#define FWD_TOL 1e-4
#define MAXT 480

Suite *suite_inception(void);

/* tensors.tsv: index (the formula's j), name and shape of every tensor. */
struct wdesc {
    char name[80];
    int ndim;
    int64_t shape[4];
};
static struct wdesc T[MAXT];
static int NT;

static struct ldm_ctx *C;
static struct ldm_inception *M;
static struct ldm_st *G;

static const char *inc_dir(void)
{
    static char dir[2048];
    snprintf(dir, sizeof dir, "%s/golden/inception_fid", tu_data_dir());
    return dir;
}

static void read_tsv(void)
{
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/tensors.tsv", inc_dir());
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    NT = 0;
    while (fgets(line, sizeof line, f)) {
        int j;
        char shp[64];
        if (line[0] == '#' || sscanf(line, "%d %79s %63s", &j, T[NT].name, shp) != 3)
            continue;
        ck_assert_int_eq(j, NT);
        struct wdesc *d = &T[NT++];
        d->ndim = 0;
        for (char *s = shp; *s; s += (*s == 'x'))
            d->shape[d->ndim++] = strtoll(s, &s, 10);
    }
    fclose(f);
    ck_assert_int_eq(NT, 472);
}

/* The README's weight formula for tensor j, element i. */
static float formula(const struct wdesc *d, int j, uint32_t i)
{
    uint32_t x = i * 0x9E3779B1u + (uint32_t)(j + 1) * 0x85EBCA77u;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    x *= 0x297A2D39u;
    x ^= x >> 15;
    double u = x / 4294967296.0, fan = 1;
    for (int k = 1; k < d->ndim; k++)
        fan *= (double)d->shape[k];
    const char *leaf = strrchr(d->name, '.') + 1;
    if (strstr(d->name, "running_var"))
        return (float)(0.5 + u);
    if (strstr(d->name, "running_mean"))
        return (float)(0.1 * (2 * u - 1));
    if (strstr(d->name, ".bn."))
        return (float)(strcmp(leaf, "weight") == 0 ? 0.8 + 0.4 * u : 0.2 * (2 * u - 1));
    if (strcmp(leaf, "bias") == 0)
        return (float)(0.01 * (2 * u - 1));
    return (float)((2 * u - 1) * sqrt(6.0 / fan));
}

static size_t numel(const struct wdesc *d)
{
    size_t n = 1;
    for (int k = 0; k < d->ndim; k++)
        n *= (size_t)d->shape[k];
    return n;
}

/* An ldm_inception_get_fn over the formula; user non-NULL names a tensor to
 * report missing. */
static int formula_get(void *user, const char *name, int ndim, const int64_t *shape, float *dst)
{
    for (int j = 0; j < NT; j++) {
        if (strcmp(T[j].name, name) != 0)
            continue;
        if (user && strcmp(user, name) == 0)
            break;
        ck_assert_int_eq(ndim, T[j].ndim);
        for (int k = 0; k < ndim; k++)
            ck_assert_int_eq(shape[k], T[j].shape[k]);
        for (size_t i = 0; i < numel(&T[j]); i++)
            dst[i] = formula(&T[j], j, (uint32_t)i);
        return 0;
    }
    return ldm_fail(LDM_ENOTFOUND, "formula: no tensor %s", name);
}

static void setup(void)
{
    char path[4096];
    read_tsv();
    ck_ok(ldm_ctx_open(&C, "cpu", 2));
    ck_ok(ldm_inception_open(&M, C, formula_get, NULL));
    snprintf(path, sizeof path, "%s/golden.safetensors", inc_dir());
    ck_ok(ldm_st_open(&G, path));
}

static void teardown(void)
{
    ldm_inception_close(&M);
    ldm_st_close(&G);
    ldm_ctx_close(&C);
}

static double rel_err(const float *a, const char *name, size_t n)
{
    const struct ldm_st_tensor *g = ldm_st_get(G, name);
    ck_assert_msg(g != NULL, "golden file lacks %s", name);
    ck_assert_uint_le(n * sizeof(float), g->nbytes);
    const float *b = g->data;
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md))
            md = isnan(d) ? INFINITY : d;
        mr = fabs(b[i]) > mr ? fabs(b[i]) : mr;
    }
    ck_assert(mr > 0);
    return md / mr;
}

START_TEST(test_golden)
{
    const struct ldm_st_tensor *img = ldm_st_get(G, "in.image01");
    ck_assert_ptr_nonnull(img);
    int64_t N = img->shape[0], H = img->shape[2], W = img->shape[3];
    float *pool = calloc((size_t)N * LDM_INCEPTION_DIM, 4);
    float *logits = calloc((size_t)N * LDM_INCEPTION_CLASSES, 4);
    ck_ok(ldm_inception_forward(M, img->data, N, H, W, pool, logits));
    double ep = rel_err(pool, "out.pool3", (size_t)N * LDM_INCEPTION_DIM);
    double el = rel_err(logits, "out.logits", (size_t)N * LDM_INCEPTION_CLASSES);
    fprintf(stderr, "inception: pool3 relative error %.3g, logits %.3g\n", ep, el);
    ck_assert_msg(ep <= FWD_TOL, "pool3: relative error %.3g > %g", ep, FWD_TOL);
    ck_assert_msg(el <= FWD_TOL, "logits: relative error %.3g > %g", el, FWD_TOL);
    free(pool);
    free(logits);
}
END_TEST

/* Write the formula weights as a safetensors file at dir/name: all of them,
 * or without tensor `drop`, or with `bad` given one more output row. */
static char *write_weights(const char *dir, const char *name, const char *drop, const char *bad)
{
    struct ldm_st_tensor *st = calloc((size_t)NT, sizeof *st);
    float **bufs = calloc((size_t)NT, sizeof *bufs);
    size_t n = 0;
    for (int j = 0; j < NT; j++) {
        if (drop && strcmp(T[j].name, drop) == 0)
            continue;
        struct wdesc d = T[j];
        if (bad && strcmp(d.name, bad) == 0)
            d.shape[0]++;
        bufs[j] = malloc(numel(&d) * sizeof(float));
        for (size_t i = 0; i < numel(&d); i++)
            bufs[j][i] = formula(&d, j, (uint32_t)i);
        st[n] = (struct ldm_st_tensor){.name = T[j].name, .dtype = LDM_DT_F32, .ndim = d.ndim,
                                       .data = bufs[j], .nbytes = numel(&d) * sizeof(float)};
        memcpy(st[n++].shape, d.shape, sizeof d.shape);
    }
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    ck_ok(ldm_st_write(path, st, n, NULL, 0));
    for (int j = 0; j < NT; j++)
        free(bufs[j]);
    free(bufs);
    free(st);
    return path;
}

/* The safetensors loader gives the same network as the formula source; one
 * image alone gives the same features as inside a batch. */
START_TEST(test_safetensors_same)
{
    char *dir = tu_tmpdir(), *path = write_weights(dir, "w.safetensors", NULL, NULL);
    struct ldm_inception *m2 = NULL;
    ck_ok(ldm_inception_open_safetensors(&m2, C, path));
    const struct ldm_st_tensor *img = ldm_st_get(G, "in.image01");
    int64_t N = img->shape[0], H = img->shape[2], W = img->shape[3];
    size_t one = (size_t)3 * H * W;
    float pool1[LDM_INCEPTION_DIM], *pool = calloc((size_t)N * LDM_INCEPTION_DIM, 4);
    ck_ok(ldm_inception_forward(M, img->data, N, H, W, pool, NULL));
    ck_ok(ldm_inception_forward(m2, (const float *)img->data + one, 1, H, W, pool1, NULL));
    double md = 0;
    for (int i = 0; i < LDM_INCEPTION_DIM; i++)
        md = fmax(md, fabs(pool1[i] - pool[LDM_INCEPTION_DIM + i]));
    ck_assert_msg(md <= 1e-5, "image 1 alone differs from image 1 in the batch by %g", md);
    ldm_inception_close(&m2);
    free(pool);
    remove(path);
    free(path);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_weights)
{
    char *dir = tu_tmpdir();
    struct ldm_inception *m2 = NULL;
    char *p1 = write_weights(dir, "bad.safetensors", NULL, "Mixed_6b.branch7x7_2.conv.weight");
    ck_fails_with(ldm_inception_open_safetensors(&m2, C, p1), LDM_EFORMAT,
                  "Mixed_6b.branch7x7_2.conv.weight has shape [129,128,1,7], expected [128,128,1,7]");
    ck_assert_ptr_null(m2);
    char *p2 = write_weights(dir, "missing.safetensors", "Mixed_7c.branch_pool.bn.running_var", NULL);
    ck_fails_with(ldm_inception_open_safetensors(&m2, C, p2), LDM_ENOTFOUND,
                  "Mixed_7c.branch_pool.bn.running_var");
    ck_fails_with(ldm_inception_open(&m2, C, formula_get, "fc.bias"), LDM_ENOTFOUND, "fc.bias");
    ck_fails_with(ldm_inception_forward(M, NULL, 0, 8, 8, NULL, NULL), LDM_EINVAL, "bad input");
    remove(p1);
    remove(p2);
    free(p1);
    free(p2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_inception(void)
{
    Suite *s = suite_create("inception");
    TCase *tc = tcase_create("inception");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_golden);
    tcase_add_test(tc, test_safetensors_same);
    tcase_add_test(tc, test_bad_weights);
    suite_add_tcase(s, tc);
    return s;
}
