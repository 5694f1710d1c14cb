/* test_unet_save.c — a saved UNet folder loads back bit for bit and computes the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "models/unet.h"
#include "models/unet_save.h"
#include "safetensors.h"
#include "testutil.h"

Suite *suite_unet_save(void);

static struct ldm_ctx *C;
static struct ldm_unet *A, *B;
static char *T; /* the test's folder */

static void setup(void)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 2));
    T = tu_tmpdir();
}

static void teardown(void)
{
    ldm_unet_free(&A);
    ldm_unet_free(&B);
    ldm_ctx_close(&C);
    tu_rmtree(T);
    free(T);
}

static const char *path2(const char *a, const char *b)
{
    static char p[2][4096];
    static int k;
    k ^= 1;
    int n = snprintf(p[k], sizeof p[k], "%s/%s", a, b);
    ck_assert_int_lt(n, (int)sizeof p[k]);
    return p[k];
}

static const char *golden(const char *file)
{
    static char p[2][4096];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/golden/unet_sd1/%s", tu_data_dir(), file);
    return p[k];
}

/* Open the model in folder-like paths cfg / weights into *u. */
static void open_model(struct ldm_unet **u, const char *cfg, const char *weights)
{
    struct ldm_unet_config c;
    ck_ok(ldm_unet_config_load(&c, cfg));
    ck_ok(ldm_unet_create(u, C, &c));
    ck_ok(ldm_unet_load(*u, weights));
}

static void expect_same_params(void)
{
    ck_assert_uint_eq(ldm_unet_nparams(A), ldm_unet_nparams(B));
    for (size_t i = 0; i < ldm_unet_nparams(A); i++) {
        struct ldm_tensor p, q;
        struct ldm_tensor gp, gq;
        ck_ok(ldm_unet_param(A, i, &p, &gp));
        ck_ok(ldm_unet_param(B, i, &q, &gq));
        ck_assert_str_eq(p.name, q.name);
        ck_assert_msg(ldm_tensor_same_shape(&p, &q), "%s: shapes differ", p.name);
        ck_assert_msg(memcmp(p.data, q.data, ldm_tensor_nbytes(&p)) == 0,
                      "%s: saved values differ", p.name);
    }
}

/* Forward of the golden inputs into a malloc'd buffer. */
static float *forward(struct ldm_unet *u, const struct ldm_st *g, size_t *n)
{
    const struct ldm_st_tensor *s = ldm_st_get(g, "in.sample"),
                               *e = ldm_st_get(g, "in.encoder_hidden_states"),
                               *ts = ldm_st_get(g, "in.timestep");
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(ts);
    ck_assert_int_le(ts->shape[0], 16);
    float t[16];
    for (int64_t i = 0; i < ts->shape[0]; i++)
        t[i] = (float)((const int64_t *)ts->data)[i];
    ck_ok(ldm_unet_prepare(u, s->shape[0], s->shape[2], s->shape[3], e->shape[1]));
    struct ldm_unet_inputs in = {s->data, t, e->data, NULL, NULL};
    *n = s->nbytes; /* out_channels == in_channels here */
    float *out = malloc(*n);
    ck_assert_ptr_nonnull(out);
    ck_ok(ldm_unet_forward(u, &in, out));
    return out;
}

START_TEST(roundtrip_sd1)
{
    open_model(&A, golden("config.json"), golden("diffusion_pytorch_model.safetensors"));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/unet", T);
    ck_ok(ldm_unet_save(A, dir));
    open_model(&B, path2(dir, "config.json"),
               path2(dir, "diffusion_pytorch_model.safetensors"));
    expect_same_params();
    struct ldm_st *g;
    ck_ok(ldm_st_open(&g, golden("golden.safetensors")));
    size_t na, nb;
    float *oa = forward(A, g, &na), *ob = forward(B, g, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(oa, ob, na) == 0, "the reloaded model's output differs");
    free(oa);
    free(ob);
    ldm_st_close(&g);
}
END_TEST

/* The saved config: diffusers' key names; save_from keeps what the struct lacks. */
START_TEST(config_keys)
{
    open_model(&A, golden("config.json"), golden("diffusion_pytorch_model.safetensors"));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/u2", T);
    ck_ok(ldm_unet_save_from(A, dir, golden("config.json")));
    json_t *saved, *src;
    ck_ok(ldm_json_load_object(path2(dir, "config.json"), &saved));
    ck_ok(ldm_json_load_object(golden("config.json"), &src));
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v) {
        json_t *w = json_object_get(saved, k);
        ck_assert_msg(w != NULL, "saved config lacks '%s'", k);
        if (!strcmp(k, "attention_head_dim") || !strcmp(k, "transformer_layers_per_block"))
            continue; /* written as per-block lists; compared through the struct below */
        if (json_is_number(v))
            ck_assert_msg(json_number_value(v) == json_number_value(w), "'%s' differs", k);
        else
            ck_assert_msg(json_equal(v, w), "'%s' differs", k);
    }
    json_decref(saved);
    json_decref(src);
    struct ldm_unet_config c1, c2;
    ck_ok(ldm_unet_config_load(&c1, golden("config.json")));
    ck_ok(ldm_unet_config_load(&c2, path2(dir, "config.json")));
    ck_assert_msg(memcmp(&c1, &c2, sizeof c1) == 0, "the saved config reads differently");
    ck_ok(ldm_unet_save(A, path2(T, "u3")));
    snprintf(dir, sizeof dir, "%s/u3/config.json", T);
    ck_ok(ldm_json_load_object(dir, &saved));
    ck_assert_ptr_null(json_object_get(saved, "sample_size"));
    ck_assert_str_eq(json_string_value(json_object_get(saved, "_class_name")),
                     "UNet2DConditionModel");
    json_decref(saved);
}
END_TEST

/* SD-2 (linear projections, per-block heads) and SDXL (transformer_layers_per_block,
 * text_time): the saved config reads back into the same struct. */
START_TEST(config_variants)
{
    static const char *cases[] = {"unet_sd2", "unet_sdxl"};
    char src[4096], dir[4096];
    snprintf(src, sizeof src, "%s/golden/%s/config.json", tu_data_dir(), cases[_i]);
    snprintf(dir, sizeof dir, "%s/%s", T, cases[_i]);
    struct ldm_unet_config c1, c2;
    ck_ok(ldm_unet_config_load(&c1, src));
    ck_ok(ldm_unet_create(&A, C, &c1));
    ck_ok(ldm_unet_save(A, dir));
    ck_ok(ldm_unet_config_load(&c2, path2(dir, "config.json")));
    ck_assert_msg(memcmp(&c1, &c2, sizeof c1) == 0, "%s: the saved config reads differently",
                  cases[_i]);
    ck_assert_int_eq(c2.text_time, _i);
}
END_TEST

START_TEST(errors)
{
    open_model(&A, golden("config.json"), golden("diffusion_pytorch_model.safetensors"));
    ck_fails_with(ldm_unet_save(A, path2(T, "no/such/dir")), LDM_ENOTFOUND, "no/such/dir");
    ck_fails_with(ldm_unet_save(A, ""), LDM_EINVAL, "empty");
    ck_fails_with(ldm_unet_save_from(A, path2(T, "u4"), path2(T, "missing.json")),
                  LDM_ENOTFOUND, "missing.json");
}
END_TEST

Suite *suite_unet_save(void)
{
    Suite *s = suite_create("unet_save");
    TCase *tc = tcase_create("unet_save");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, roundtrip_sd1);
    tcase_add_test(tc, config_keys);
    tcase_add_loop_test(tc, config_variants, 0, 2);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}
