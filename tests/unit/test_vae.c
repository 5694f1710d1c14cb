/* test_vae.c — AutoencoderKL against diffusers v0.26.3 (../shared/data/golden/vae):
 * encode (mean, log-variance), decode, shapes that change between calls,
 * older attention names, and weight files that do not fit the config. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"
#include "safetensors.h"
#include "testutil.h"

#define FWD_TOL 1e-4
#define UNSET 1e30f

Suite *suite_vae(void);

static struct ldm_ctx *C;
static struct ldm_vae *V;
static struct ldm_st *G; /* golden.safetensors */

static const char *vae_dir(void)
{
    static char dir[2048];
    snprintf(dir, sizeof dir, "%s/golden/vae", tu_data_dir());
    return dir;
}

static void setup(void)
{
    char path[4096];
    ck_ok(ldm_ctx_open(&C, "cpu", 2));
    ck_ok(ldm_vae_open(&V, C, vae_dir()));
    snprintf(path, sizeof path, "%s/golden.safetensors", vae_dir());
    ck_ok(ldm_st_open(&G, path));
}

static void teardown(void)
{
    ldm_vae_close(&V);
    ldm_st_close(&G);
    ldm_ctx_close(&C);
}

/* A host tensor (the CPU backend's memory) of the given shape, filled
 * with UNSET, or with the golden tensor `ref` (its first n samples). */
static struct ldm_tensor host4(int64_t N, int64_t Ch, int64_t H, int64_t W)
{
    size_t n = (size_t)(N * Ch * H * W);
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = UNSET;
    return ldm_tensor_f32(p, N, Ch, H, W);
}

static const struct ldm_st_tensor *gold(const char *name)
{
    const struct ldm_st_tensor *t = ldm_st_get(G, name);
    ck_assert_msg(t != NULL, "golden file lacks %s", name);
    ck_assert_int_eq(t->ndim, 4);
    return t;
}

static struct ldm_tensor from_gold(const char *name, int64_t nsamples)
{
    const struct ldm_st_tensor *g = gold(name);
    struct ldm_tensor t = host4(nsamples, g->shape[1], g->shape[2], g->shape[3]);
    memcpy(t.data, g->data, ldm_tensor_nbytes(&t));
    return t;
}

/* max|ours − ref| / max|ref| over the first numel(ours) reference values. */
static double rel_err(const struct ldm_tensor *ours, const char *name)
{
    const struct ldm_st_tensor *g = gold(name);
    const float *a = ours->data, *b = g->data;
    size_t n = ldm_tensor_numel(ours);
    ck_assert_uint_le(n * sizeof(float), g->nbytes);
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) /* NaN counts as the largest */
            md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mr)
            mr = fabs(b[i]);
    }
    ck_assert(mr > 0);
    return md / mr;
}

static void check_close(const struct ldm_tensor *ours, const char *name)
{
    double e = rel_err(ours, name);
    fprintf(stderr, "vae: %-12s relative error %.3g\n", name, e);
    ck_assert_msg(e <= FWD_TOL, "%s: relative error %.3g > %g", name, e, FWD_TOL);
}

START_TEST(test_config)
{
    const struct ldm_vae_config *c = ldm_vae_config(V);
    double scale, shift;
    ck_assert_int_eq(c->nblocks, 3);
    ck_assert_int_eq(c->block_out_channels[2], 32);
    ck_assert_int_eq(c->layers_per_block, 2);
    ck_assert_int_eq(c->norm_num_groups, 8);
    ck_assert_int_eq(c->latent_channels, 4);
    ldm_vae_scaling(V, &scale, &shift);
    ck_assert(fabs(scale - 0.18215) < 1e-12);
    ck_assert(shift == 0.0 && !c->has_shift_factor);
    ck_assert_int_eq(ldm_vae_latent_size(V, 32), 8);
    ck_assert_int_eq(ldm_vae_latent_size(V, 33), 8);
    ck_assert_int_eq(ldm_vae_image_size(V, 8), 32);
}
END_TEST

START_TEST(test_encode)
{
    struct ldm_tensor img = from_gold("in.image", 2), mean = host4(2, 4, 8, 8),
                      logvar = host4(2, 4, 8, 8);
    ck_ok(ldm_vae_encode(V, &img, &mean, &logvar));
    check_close(&mean, "out.mean");
    check_close(&logvar, "out.logvar");
    /* a second call of the same shape reuses the plan and gives the same bits */
    struct ldm_tensor mean2 = host4(2, 4, 8, 8), logvar2 = host4(2, 4, 8, 8);
    ck_ok(ldm_vae_encode(V, &img, &mean2, &logvar2));
    ck_assert(memcmp(mean.data, mean2.data, ldm_tensor_nbytes(&mean)) == 0);
    ck_assert(memcmp(logvar.data, logvar2.data, ldm_tensor_nbytes(&logvar)) == 0);
    free(img.data);
    free(mean.data);
    free(logvar.data);
    free(mean2.data);
    free(logvar2.data);
}
END_TEST

START_TEST(test_decode)
{
    struct ldm_tensor z = from_gold("out.mean", 2), img = host4(2, 3, 32, 32);
    ck_ok(ldm_vae_decode(V, &z, &img));
    check_close(&img, "out.decoded");
    free(z.data);
    free(img.data);
}
END_TEST

/* One sample after a batch of two, and a larger image after that: the plan
 * and the arena follow the shape; the first sample's results are unchanged. */
START_TEST(test_shapes_change)
{
    struct ldm_tensor img2 = from_gold("in.image", 2), m2 = host4(2, 4, 8, 8),
                      l2 = host4(2, 4, 8, 8);
    ck_ok(ldm_vae_encode(V, &img2, &m2, &l2));
    struct ldm_tensor img1 = from_gold("in.image", 1), m1 = host4(1, 4, 8, 8),
                      l1 = host4(1, 4, 8, 8);
    ck_ok(ldm_vae_encode(V, &img1, &m1, &l1));
    check_close(&m1, "out.mean");
    check_close(&l1, "out.logvar");
    struct ldm_tensor big = host4(1, 3, 48, 40), mb = host4(1, 4, 12, 10), lb = host4(1, 4, 12, 10),
                      db = host4(1, 3, 48, 40);
    for (size_t i = 0; i < ldm_tensor_numel(&big); i++)
        ((float *)big.data)[i] = (float)sin(0.37 * (double)i);
    ck_ok(ldm_vae_encode(V, &big, &mb, &lb));
    ck_ok(ldm_vae_decode(V, &mb, &db));
    for (size_t i = 0; i < ldm_tensor_numel(&db); i++)
        ck_assert(isfinite(((float *)db.data)[i]) && ((float *)db.data)[i] != UNSET);
    for (size_t i = 0; i < ldm_tensor_numel(&lb); i++)
        ck_assert(((float *)lb.data)[i] >= -30.0f && ((float *)lb.data)[i] <= 20.0f);
    /* the first shape again, on the grown arena */
    ck_ok(ldm_vae_encode(V, &img1, &m1, &l1));
    check_close(&m1, "out.mean");
    void *bufs[] = {img2.data, m2.data, l2.data, img1.data, m1.data, l1.data,
                    big.data,  mb.data, lb.data, db.data};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
}
END_TEST

START_TEST(test_bad_tensors)
{
    struct ldm_tensor img = host4(1, 3, 32, 32), m = host4(1, 4, 8, 8), l = host4(1, 4, 4, 4),
                      one = host4(1, 3, 2, 2);
    for (size_t i = 0; i < ldm_tensor_numel(&img); i++)
        ((float *)img.data)[i] = 0.0f;
    l.name = "my_logvar";
    ck_fails_with(ldm_vae_encode(V, &img, &m, &l), LDM_EINVAL, "my_logvar");
    ck_fails_with(ldm_vae_encode(V, &img, &m, &l), LDM_EINVAL, "[1,4,8,8]");
    ck_fails_with(ldm_vae_decode(V, &img, &one), LDM_EINVAL, "latent");
    ck_fails_with(ldm_vae_encode(V, &one, &m, &l), LDM_EINVAL, "at least 4");
    free(img.data);
    free(m.data);
    free(l.data);
    free(one.data);
}
END_TEST

/* ---- weight files that differ from the golden one ------------------------------------ */

/* Copy the golden vae folder into a temporary one, with each tensor passed
 * through `edit` (which may rename it or change its shape), and
 * config.json rewritten by replacing `from` with `to` when given. */
typedef void (*edit_fn)(struct ldm_st_tensor *t, char *name, size_t size);

static void *g_edit_bufs[512]; /* data written by an edit, freed after the copy */
static size_t g_nedit;

static char *copy_model(edit_fn edit, const char *from, const char *to)
{
    char *dir = tu_tmpdir(), path[4096];
    struct ldm_st *st;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", vae_dir());
    ck_ok(ldm_st_open(&st, path));
    size_t n = ldm_st_count(st);
    struct ldm_st_tensor *t = calloc(n, sizeof *t);
    char(*names)[128] = calloc(n, sizeof *names);
    ck_assert(t && names);
    for (size_t i = 0; i < n; i++) {
        t[i] = *ldm_st_at(st, i);
        snprintf(names[i], sizeof names[i], "%s", t[i].name);
        if (edit)
            edit(&t[i], names[i], sizeof names[i]);
        t[i].name = names[i];
    }
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    ck_ok(ldm_st_write(path, t, n, NULL, 0));
    for (size_t i = 0; i < g_nedit; i++)
        free(g_edit_bufs[i]);
    g_nedit = 0;
    free(t);
    free(names);
    ldm_st_close(&st);
    snprintf(path, sizeof path, "%s/config.json", vae_dir());
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char cfg[8192];
    size_t len = fread(cfg, 1, sizeof cfg - 1, f);
    fclose(f);
    cfg[len] = 0;
    char out[8400];
    char *at = from ? strstr(cfg, from) : NULL;
    if (at)
        snprintf(out, sizeof out, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    else
        snprintf(out, sizeof out, "%s", cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    tu_write_file(path, out, strlen(out));
    return dir;
}

static void old_attention_names(struct ldm_st_tensor *t, char *name, size_t size)
{
    static const char *const pairs[][2] = {
        {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
        {".to_out.0.", ".proj_attn."}};
    char tmp[128];
    for (size_t i = 0; i < 4; i++) {
        char *at = strstr(name, pairs[i][0]);
        if (!at)
            continue;
        snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(at - name), name, pairs[i][1],
                 at + strlen(pairs[i][0]));
        snprintf(name, size, "%s", tmp);
        if (t->ndim == 2) { /* stored as a 1×1 convolution */
            t->ndim = 4;
            t->shape[2] = t->shape[3] = 1;
        }
    }
}

static void shrink_conv_in_bias(struct ldm_st_tensor *t, char *name, size_t size)
{
    (void)size;
    if (strcmp(name, "encoder.conv_in.bias") == 0) {
        t->shape[0] = 8;
        t->nbytes = 8 * sizeof(float);
    }
}

/* Every tensor stored as F16 or (decoder) BF16, as the half-precision variants are. */
static void to_half(struct ldm_st_tensor *t, char *name, size_t size)
{
    (void)size;
    size_t n = t->nbytes / sizeof(float);
    int dt = strncmp(name, "decoder.", 8) == 0 ? LDM_DT_BF16 : LDM_DT_F16;
    uint16_t *h = malloc(n * sizeof *h + 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_lt(g_nedit, sizeof g_edit_bufs / sizeof g_edit_bufs[0]);
    g_edit_bufs[g_nedit++] = h;
    ck_ok(ldm_convert(h, dt, t->data, LDM_DT_F32, n));
    t->dtype = dt;
    t->data = h;
    t->nbytes = n * sizeof *h;
}

START_TEST(test_half_weights)
{
    char *dir = copy_model(to_half, NULL, NULL);
    struct ldm_vae *v2;
    ck_ok(ldm_vae_open(&v2, C, dir));
    struct ldm_tensor img = from_gold("in.image", 2), m = host4(2, 4, 8, 8), l = host4(2, 4, 8, 8),
                      d = host4(2, 3, 32, 32);
    ck_ok(ldm_vae_encode(v2, &img, &m, &l));
    ck_ok(ldm_vae_decode(v2, &m, &d));
    /* rounded weights: near the reference, not equal to it */
    double em = rel_err(&m, "out.mean"), ed = rel_err(&d, "out.decoded");
    fprintf(stderr, "vae: half-precision weights: mean %.3g, decoded %.3g\n", em, ed);
    ck_assert(em > 0 && em < 2e-2 && ed > 0 && ed < 5e-2);
    ldm_vae_close(&v2);
    free(img.data);
    free(m.data);
    free(l.data);
    free(d.data);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_old_attention_names)
{
    char *dir = copy_model(old_attention_names, NULL, NULL);
    struct ldm_vae *v2;
    ck_ok(ldm_vae_open(&v2, C, dir));
    struct ldm_tensor img = from_gold("in.image", 2), m = host4(2, 4, 8, 8), l = host4(2, 4, 8, 8),
                      d = host4(2, 3, 32, 32);
    ck_ok(ldm_vae_encode(v2, &img, &m, &l));
    check_close(&m, "out.mean");
    check_close(&l, "out.logvar");
    ck_ok(ldm_vae_decode(v2, &m, &d));
    check_close(&d, "out.decoded");
    ldm_vae_close(&v2);
    free(img.data);
    free(m.data);
    free(l.data);
    free(d.data);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_weights)
{
    struct ldm_vae *v2 = NULL;
    char *dir = copy_model(shrink_conv_in_bias, NULL, NULL);
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_EFORMAT, "encoder.conv_in.bias has shape [8]");
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_EFORMAT, "implies [16]");
    ck_assert_ptr_null(v2);
    tu_rmtree(dir);
    free(dir);
    /* one layer per block: the file's last resnet of each block is not part of that model */
    dir = copy_model(NULL, "\"layers_per_block\": 2", "\"layers_per_block\": 1");
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_EFORMAT, "resnets.2.conv1.bias is not part");
    tu_rmtree(dir);
    free(dir);
    /* three layers per block: a tensor is missing */
    dir = copy_model(NULL, "\"layers_per_block\": 2", "\"layers_per_block\": 3");
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_EFORMAT, "is missing");
    tu_rmtree(dir);
    free(dir);
    dir = copy_model(NULL, "\"norm_num_groups\": 8", "\"norm_num_groups\": 5");
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_ECONFIG, "norm_num_groups");
    tu_rmtree(dir);
    free(dir);
    dir = copy_model(NULL, "\"latent_channels\": 4", "\"latent_channels\": \"4\"");
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_EFORMAT, "config.json: field 'latent_channels'");
    tu_rmtree(dir);
    free(dir);
    dir = copy_model(NULL, "\"UpDecoderBlock2D\"", "\"AttnUpDecoderBlock2D\"");
    ck_fails_with(ldm_vae_open(&v2, C, dir), LDM_ECONFIG, "up_block_types[0]");
    tu_rmtree(dir);
    free(dir);
    dir = copy_model(NULL, "\"scaling_factor\": 0.18215",
                     "\"scaling_factor\": 0.13025, \"shift_factor\": 0.0609");
    ck_ok(ldm_vae_open(&v2, C, dir));
    double scale, shift;
    ldm_vae_scaling(v2, &scale, &shift);
    ck_assert(fabs(scale - 0.13025) < 1e-12 && fabs(shift - 0.0609) < 1e-12);
    ldm_vae_close(&v2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_vae(void)
{
    Suite *s = suite_create("vae");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_encode);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_shapes_change);
    tcase_add_test(tc, test_bad_tensors);
    tcase_add_test(tc, test_old_attention_names);
    tcase_add_test(tc, test_half_weights);
    tcase_add_test(tc, test_bad_weights);
    suite_add_tcase(s, tc);
    return s;
}
