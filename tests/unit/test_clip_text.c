/* test_clip_text.c — the CLIP text encoders against the golden tensors, loading checks and errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "models/clip_text.h"
#include "safetensors.h"
#include "testutil.h"

#define TOL 1e-4

static struct ldm_ctx *C;
static struct ldm_st *G; /* the case's golden.safetensors */
static char *g_tmp;

static void setup(void)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 2));
}

static void teardown(void)
{
    ldm_st_close(&G);
    ldm_ctx_close(&C);
    if (g_tmp)
        tu_rmtree(g_tmp);
    free(g_tmp);
    g_tmp = NULL;
}

static void case_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/golden/%s", tu_data_dir(), name);
}

static const struct ldm_st_tensor *golden(const char *name)
{
    const struct ldm_st_tensor *t = ldm_st_get(G, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    return t;
}

/* max|ours − ref| / max|ref| over the tensor `name`, printed on failure. */
static void expect_close(const char *name, const float *ours)
{
    const struct ldm_st_tensor *r = golden(name);
    ck_assert_int_eq(r->dtype, LDM_DT_F32);
    const float *ref = r->data;
    size_t n = r->nbytes / sizeof(float), worst = 0;
    double dmax = 0, rmax = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        if (!(d <= dmax)) {
            dmax = d;
            worst = i;
        }
        rmax = fabs(ref[i]) > rmax ? fabs(ref[i]) : rmax;
    }
    double rel = dmax / (rmax > 0 ? rmax : 1);
    ck_assert_msg(rel <= TOL, "%s: relative error %.3g; element %zu is %.8g, reference %.8g",
                  name, rel, worst, ours[worst], ref[worst]);
}

static float *buf(size_t n)
{
    float *p = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN; /* an element the model does not write fails */
    return p;
}

/* Every out.* tensor of one golden case, from one model with the projection. */
static void check_golden(const char *name)
{
    char dir[4096], path[4200];
    case_dir(dir, sizeof dir, name);
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    ck_ok(ldm_st_open(&G, path));
    struct ldm_clip_text *m;
    ck_ok(ldm_clip_text_load(&m, C, dir, 1));
    const struct ldm_clip_config *cfg = ldm_clip_text_config(m);
    const struct ldm_st_tensor *ids = golden("in.input_ids");
    int64_t N = ids->shape[0], L = ids->shape[1], D = cfg->hidden_size;
    float *hid = buf((size_t)(N * L * D)), *last = buf((size_t)(N * L * D));
    float *pooled = buf((size_t)(N * D)), *emb = buf((size_t)(N * cfg->projection_dim));
    /* everything SDXL asks of its second encoder, in one call */
    struct ldm_clip_out o = {.hidden_index = -2, .hidden = hid, .last_hidden_state = last,
                             .pooled = pooled, .text_embeds = emb};
    ck_ok(ldm_clip_text_forward(m, ids->data, N, L, &o));
    char penult[64];
    snprintf(penult, sizeof penult, "out.hidden_states.%d", (int)cfg->num_hidden_layers - 1);
    expect_close(penult, hid);
    expect_close("out.last_hidden_state", last);
    expect_close("out.pooled", pooled);
    expect_close("out.text_embeds", emb);
    for (int k = 0; k <= (int)cfg->num_hidden_layers; k++) {
        char key[64];
        snprintf(key, sizeof key, "out.hidden_states.%d", k);
        struct ldm_clip_out h = {.hidden_index = k, .hidden = hid};
        ck_ok(ldm_clip_text_forward(m, ids->data, N, L, &h));
        expect_close(key, hid);
        /* the same state counted from the end */
        h.hidden_index = k - (int)cfg->num_hidden_layers - 1;
        memset(hid, 0, (size_t)(N * L * D) * sizeof(float));
        ck_ok(ldm_clip_text_forward(m, ids->data, N, L, &h));
        expect_close(key, hid);
    }
    free(hid);
    free(last);
    free(pooled);
    free(emb);
    ldm_clip_text_free(&m);
    ck_assert_ptr_null(m);
}

START_TEST(golden_quickgelu) { check_golden("clip_text_quickgelu"); }
END_TEST

START_TEST(golden_gelu) { check_golden("clip_text_gelu"); }
END_TEST

/* CLIPTextModel (no projection); a batch of one row after a batch of three
 * (the activations laid out again) gives that row's outputs. */
START_TEST(without_projection_and_reshape)
{
    char dir[4096], path[4200];
    case_dir(dir, sizeof dir, "clip_text_quickgelu");
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    ck_ok(ldm_st_open(&G, path));
    struct ldm_clip_text *m;
    ck_ok(ldm_clip_text_load(&m, C, dir, 0));
    const struct ldm_st_tensor *ids = golden("in.input_ids");
    int64_t N = ids->shape[0], L = ids->shape[1], D = ldm_clip_text_config(m)->hidden_size;
    float *pooled = buf((size_t)(N * D)), *emb = buf(64), *row = buf((size_t)D);
    struct ldm_clip_out o = {.pooled = pooled};
    ck_ok(ldm_clip_text_forward(m, ids->data, N, L, &o));
    expect_close("out.pooled", pooled);
    struct ldm_clip_out e = {.text_embeds = emb};
    ck_fails_with(ldm_clip_text_forward(m, ids->data, N, L, &e), LDM_EINVAL, "text_projection");
    struct ldm_clip_out one = {.pooled = row};
    ck_ok(ldm_clip_text_forward(m, (const int64_t *)ids->data + 2 * L, 1, L, &one));
    for (int64_t i = 0; i < D; i++)
        ck_assert_float_eq_tol(row[i], pooled[2 * D + i], 1e-5f);
    free(pooled);
    free(emb);
    free(row);
    ldm_clip_text_free(&m);
}
END_TEST

START_TEST(bad_requests)
{
    char dir[4096];
    case_dir(dir, sizeof dir, "clip_text_gelu");
    struct ldm_clip_text *m;
    ck_ok(ldm_clip_text_load(&m, C, dir, 1));
    int64_t ids[13] = {5, 6, 1199, 1199, 1199, 1199, 1199, 1199, 1199, 1199, 1199, 1199, 1199};
    float out[13 * 40];
    struct ldm_clip_out o = {.last_hidden_state = out};
    ck_fails_with(ldm_clip_text_forward(m, ids, 1, 13, &o), LDM_EINVAL, "max_position_embeddings");
    ids[1] = 1200;
    ck_fails_with(ldm_clip_text_forward(m, ids, 1, 12, &o), LDM_ERANGE, "input_ids[0][1] = 1200");
    ids[1] = 6;
    struct ldm_clip_out h = {.hidden = out, .hidden_index = 3};
    ck_fails_with(ldm_clip_text_forward(m, ids, 1, 12, &h), LDM_EINVAL, "hidden_index 3");
    h.hidden_index = -4;
    ck_fails_with(ldm_clip_text_forward(m, ids, 1, 12, &h), LDM_EINVAL, "hidden_index -4");
    struct ldm_clip_out p = {.pooled = out};
    ck_fails_with(ldm_clip_text_forward(m, ids, 1, 2, &p), LDM_EINVAL, "row 0");
    ck_ok(ldm_clip_text_forward(m, ids, 1, 3, &p));
    ldm_clip_text_free(&m);
}
END_TEST

/* Copy the gelu case into a temporary folder with one tensor changed or one
 * config field replaced. */
static void write_variant(const char *dir, const char *bad_tensor, int64_t bad_rows, int f16,
                          const char *config_text)
{
    char src[4096], path[4200];
    case_dir(src, sizeof src, "clip_text_gelu");
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    struct ldm_st *st;
    ck_ok(ldm_st_open(&st, path));
    size_t n = ldm_st_count(st);
    struct ldm_st_tensor *t = calloc(n, sizeof *t);
    void **conv = calloc(n, sizeof *conv);
    ck_assert(t && conv);
    for (size_t i = 0; i < n; i++) {
        t[i] = *ldm_st_at(st, i);
        if (bad_tensor && strcmp(t[i].name, bad_tensor) == 0) {
            t[i].shape[0] = bad_rows;
            t[i].nbytes = t[i].nbytes / (size_t)ldm_st_at(st, i)->shape[0] * (size_t)bad_rows;
        }
        if (f16) {
            size_t k = t[i].nbytes / 4;
            conv[i] = malloc(k * 2 + 2);
            ck_ok(ldm_convert(conv[i], LDM_DT_F16, t[i].data, LDM_DT_F32, k));
            t[i].data = conv[i];
            t[i].dtype = LDM_DT_F16;
            t[i].nbytes = k * 2;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_ok(ldm_st_write(path, t, n, NULL, 0));
    for (size_t i = 0; i < n; i++)
        free(conv[i]);
    free(conv);
    free(t);
    ldm_st_close(&st);
    snprintf(path, sizeof path, "%s/config.json", dir);
    tu_write_file(path, config_text, strlen(config_text));
}

#define GELU_CONFIG                                                                                \
    "{\"hidden_act\":\"%s\",\"hidden_size\":40,\"intermediate_size\":160,"                         \
    "\"num_attention_heads\":5,\"num_hidden_layers\":2,\"max_position_embeddings\":12,"            \
    "\"vocab_size\":1200,\"projection_dim\":16,\"eos_token_id\":1199}"

START_TEST(weight_and_config_errors)
{
    g_tmp = tu_tmpdir();
    char cfg[512];
    struct ldm_clip_text *m = NULL;
    snprintf(cfg, sizeof cfg, GELU_CONFIG, "gelu");
    write_variant(g_tmp, "text_model.encoder.layers.1.mlp.fc1.weight", 150, 0, cfg);
    ck_fails_with(ldm_clip_text_load(&m, C, g_tmp, 1), LDM_EFORMAT,
                  "text_model.encoder.layers.1.mlp.fc1.weight");
    ck_assert_str_ne(ldm_errmsg(), "");
    ck_assert_msg(strstr(ldm_errmsg(), "150") && strstr(ldm_errmsg(), "160"),
                  "both shapes named: %s", ldm_errmsg());
    ck_assert_ptr_null(m);
    snprintf(cfg, sizeof cfg, GELU_CONFIG, "relu");
    write_variant(g_tmp, NULL, 0, 0, cfg);
    ck_fails_with(ldm_clip_text_load(&m, C, g_tmp, 1), LDM_EUNSUPPORTED, "relu");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", g_tmp);
    ck_assert_int_eq(remove(path), 0);
    ck_fails_with(ldm_clip_text_load(&m, C, g_tmp, 1), LDM_ENOTFOUND, "config.json");
    tu_write_file(path, "{\"hidden_size\":40,\"num_attention_heads\":3}", 42);
    ck_fails_with(ldm_clip_text_load(&m, C, g_tmp, 1), LDM_ECONFIG, "num_attention_heads");
}
END_TEST

/* F16 weights are converted on load; the outputs stay near the F32 ones. */
START_TEST(f16_weights)
{
    g_tmp = tu_tmpdir();
    char cfg[512], dir[4096], path[4200];
    snprintf(cfg, sizeof cfg, GELU_CONFIG, "gelu");
    write_variant(g_tmp, NULL, 0, 1, cfg);
    case_dir(dir, sizeof dir, "clip_text_gelu");
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    ck_ok(ldm_st_open(&G, path));
    struct ldm_clip_text *m;
    ck_ok(ldm_clip_text_load(&m, C, g_tmp, 1));
    const struct ldm_st_tensor *ids = golden("in.input_ids");
    const struct ldm_st_tensor *ref = golden("out.text_embeds");
    float emb[3 * 16];
    struct ldm_clip_out o = {.text_embeds = emb};
    ck_ok(ldm_clip_text_forward(m, ids->data, 3, 12, &o));
    const float *r = ref->data;
    double dmax = 0, rmax = 0;
    for (int i = 0; i < 48; i++) {
        dmax = fmax(dmax, fabs(emb[i] - r[i]));
        rmax = fmax(rmax, fabs(r[i]));
    }
    ck_assert_msg(dmax / rmax < 1e-2 && dmax > 0, "F16 weights: relative error %g", dmax / rmax);
    ldm_clip_text_free(&m);
}
END_TEST

Suite *suite_clip_text(void);
Suite *suite_clip_text(void)
{
    Suite *s = suite_create("clip_text");
    TCase *g = tcase_create("golden");
    tcase_add_checked_fixture(g, setup, teardown);
    tcase_set_timeout(g, 60);
    tcase_add_test(g, golden_quickgelu);
    tcase_add_test(g, golden_gelu);
    tcase_add_test(g, without_projection_and_reshape);
    tcase_add_test(g, bad_requests);
    tcase_add_test(g, weight_and_config_errors);
    tcase_add_test(g, f16_weights);
    suite_add_tcase(s, g);
    return s;
}
