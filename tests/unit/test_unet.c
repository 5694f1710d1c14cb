/* test_unet.c — UNet2DConditionModel against diffusers v0.26.3 golden tensors (SD-1, SD-2,
 * SDXL-like tiny configs): prediction, MSE loss and the gradient of every parameter;
 * plus config, weight-shape and size errors.
 *
 * Tolerances (../shared/data/golden/README.md): max|ours − ref| / max|ref| <= 1e-4 for
 * the forward and the loss, <= 1e-3 per gradient tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "models/unet.h"
#include "nn/tensor.h"
#include "safetensors.h"
#include "testutil.h"

#define FWD_TOL 1e-4
#define GRAD_TOL 1e-3

static struct ldm_ctx *C;
static struct ldm_unet *U;
static struct ldm_st *G; /* the golden file */

static void setup(void)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 2));
}

static void teardown(void)
{
    ldm_unet_free(&U);
    ldm_st_close(&G);
    ldm_ctx_close(&C);
}

static const char *golden_path(const char *cs, const char *file)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s/golden/%s/%s", tu_data_dir(), cs, file);
    return p;
}

static const struct ldm_st_tensor *ref(const char *name)
{
    const struct ldm_st_tensor *t = ldm_st_get(G, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    ck_assert_msg(t->dtype == LDM_DT_F32, "%s is not F32", name);
    return t;
}

/* max|ours − ref| / max|ref| over n floats; prints the first mismatches above tol. */
static double rel_err(const char *what, const float *ours, const float *r, size_t n, double tol)
{
    double rmax = 0.0, emax = 0.0;
    for (size_t i = 0; i < n; i++) {
        rmax = fmax(rmax, fabs((double)r[i]));
        emax = fmax(emax, isfinite(ours[i]) ? fabs((double)ours[i] - r[i]) : INFINITY);
    }
    double rel = rmax > 0.0 ? emax / rmax : emax;
    for (size_t i = 0, shown = 0; rel > tol && i < n && shown < 5; i++)
        if (!(fabs((double)ours[i] - r[i]) <= tol * (rmax > 0.0 ? rmax : 1.0))) {
            fprintf(stderr, "  %s[%zu]: ours %.9g, diffusers %.9g\n", what, i, (double)ours[i],
                    (double)r[i]);
            shown++;
        }
    return rel;
}

/* The model of case `cs`, its weights loaded, prepared for the golden inputs. */
static void open_case(const char *cs)
{
    struct ldm_unet_config cfg;
    ck_ok(ldm_unet_config_load(&cfg, golden_path(cs, "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    ck_ok(ldm_unet_load(U, golden_path(cs, "diffusion_pytorch_model.safetensors")));
    ck_ok(ldm_st_open(&G, golden_path(cs, "golden.safetensors")));
    const struct ldm_st_tensor *s = ref("in.sample"), *e = ref("in.encoder_hidden_states");
    ck_ok(ldm_unet_prepare(U, s->shape[0], s->shape[2], s->shape[3], e->shape[1]));
}

static void run_forward(const char *cs, int text_time)
{
    const struct ldm_st_tensor *ts = ldm_st_get(G, "in.timestep"), *o = ref("out.sample");
    ck_assert_ptr_nonnull(ts);
    ck_assert_int_eq(ts->dtype, LDM_DT_I64);
    float t[64];
    ck_assert_int_le(ts->shape[0], 64);
    for (int64_t i = 0; i < ts->shape[0]; i++)
        t[i] = (float)((const int64_t *)ts->data)[i];
    struct ldm_unet_inputs in = {ref("in.sample")->data, t,
                                 ref("in.encoder_hidden_states")->data, NULL, NULL};
    if (text_time) {
        in.text_embeds = ref("in.text_embeds")->data;
        in.time_ids = ref("in.time_ids")->data;
    }
    float *out = malloc(o->nbytes);
    ck_assert_ptr_nonnull(out);
    ck_ok(ldm_unet_forward(U, &in, out));
    double rel = rel_err("out.sample", out, o->data, o->nbytes / 4, FWD_TOL);
    free(out);
    printf("unet %s: out.sample relative error %.3g\n", cs, rel);
    ck_assert_msg(rel <= FWD_TOL, "%s: out.sample relative error %.3g > %.0e", cs, rel, FWD_TOL);
}

static void run_loss(const char *cs)
{
    float loss;
    ck_ok(ldm_unet_loss(U, ref("in.target")->data, &loss));
    float want = *(const float *)ref("out.loss")->data;
    double rel = fabs((double)loss - want) / fabs((double)want);
    printf("unet %s: loss %.9g (diffusers %.9g)\n", cs, (double)loss, (double)want);
    ck_assert_msg(rel <= FWD_TOL, "%s: loss %.9g, diffusers %.9g", cs, (double)loss,
                  (double)want);
}

/* Every grad.<name>: prints the worst tensor, fails naming each one above tolerance. */
static void run_grads(const char *cs)
{
    ck_ok(ldm_unet_backward(U, 1.0f));
    size_t n = ldm_unet_nparams(U), bad = 0;
    double worst = 0.0;
    const char *worst_name = "";
    for (size_t i = 0; i < n; i++) {
        struct ldm_tensor p, g;
        char name[300];
        ck_ok(ldm_unet_param(U, i, &p, &g));
        snprintf(name, sizeof name, "grad.%s", p.name);
        const struct ldm_st_tensor *r = ref(name);
        ck_assert_msg(r->nbytes == ldm_tensor_nbytes(&g), "%s: size differs", name);
        double rel = rel_err(name, g.data, r->data, r->nbytes / 4, GRAD_TOL);
        if (rel > GRAD_TOL)
            fprintf(stderr, "unet %s: %s relative error %.3g\n", cs, name, rel), bad++;
        if (rel > worst)
            worst = rel, worst_name = p.name;
    }
    size_t ngrads = 0;
    for (size_t i = 0; i < ldm_st_count(G); i++)
        ngrads += strncmp(ldm_st_at(G, i)->name, "grad.", 5) == 0;
    struct ldm_unet_mem m;
    ldm_unet_memory(U, &m);
    printf("unet %s: %zu gradients, worst %s %.3g; params %zu B, activations %zu B (+ %zu B "
           "gradients), workspace %zu B, %zu ops\n", cs, n, worst_name, worst, m.params, m.acts,
           m.act_grads, m.workspace, m.nodes);
    ck_assert_msg(ngrads == n, "%s: %zu parameters, %zu golden gradients", cs, n, ngrads);
    ck_assert_msg(bad == 0, "%s: %zu gradients above %.0e (worst %s %.3g)", cs, bad, GRAD_TOL,
                  worst_name, worst);
}

/* A second backward gives the same gradients bit for bit (the arenas are zeroed and
 * nothing else carries over). */
static void expect_repeatable(void)
{
    struct ldm_tensor p, g;
    ck_ok(ldm_unet_param(U, 0, &p, &g));
    size_t n = ldm_tensor_nbytes(&g);
    void *first = malloc(n);
    ck_assert_ptr_nonnull(first);
    memcpy(first, g.data, n);
    ck_ok(ldm_unet_backward(U, 1.0f));
    ck_assert_msg(memcmp(first, g.data, n) == 0, "%s: a second backward differs", p.name);
    free(first);
}

static void golden_case(const char *cs, int text_time)
{
    open_case(cs);
    run_forward(cs, text_time);
    run_loss(cs);
    run_grads(cs);
    expect_repeatable();
}

/* SD-1 on 1 and on 3 threads (the backend's split paths). */
START_TEST(sd1_golden)
{
    ldm_ctx_close(&C);
    ck_ok(ldm_ctx_open(&C, "cpu", _i ? 3 : 1));
    golden_case("unet_sd1", 0);
}
END_TEST

START_TEST(sd2_golden)
{
    golden_case("unet_sd2", 0);
}
END_TEST

START_TEST(sdxl_golden)
{
    golden_case("unet_sdxl", 1);
}
END_TEST

/* A config.json: the SD-1 case's with `key` set to the JSON text `value`. */
static char *edited_config(const char *dir, const char *key, const char *value)
{
    json_t *o;
    ck_ok(ldm_json_load_object(golden_path("unet_sd1", "config.json"), &o));
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(json_object_set_new(o, key, v), 0);
    static char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(o, path, 0), 0);
    json_decref(o);
    return path;
}

START_TEST(config_errors)
{
    struct ldm_unet_config cfg;
    char *dir = tu_tmpdir();
    ck_fails_with(ldm_unet_config_load(&cfg, edited_config(dir, "resnet_time_scale_shift",
                                                           "\"scale_shift\"")),
                  LDM_EUNSUPPORTED, "resnet_time_scale_shift");
    ck_fails_with(ldm_unet_config_load(&cfg, edited_config(dir, "class_embed_type",
                                                           "\"timestep\"")),
                  LDM_EUNSUPPORTED, "class_embed_type");
    ck_fails_with(ldm_unet_config_load(&cfg, edited_config(dir, "attention_head_dim", "3")),
                  LDM_ECONFIG, "3 heads");
    ck_fails_with(ldm_unet_config_load(&cfg, edited_config(dir, "transformer_layers_per_block",
                                                           "[1, 2]")),
                  LDM_ECONFIG, "transformer_layers_per_block");
    ck_fails_with(ldm_unet_config_load(&cfg, edited_config(dir, "up_block_types",
                                                           "[\"UpBlock2D\", \"X\", \"Y\"]")),
                  LDM_EUNSUPPORTED, "'X'");
    ck_ok(ldm_unet_config_load(&cfg, golden_path("unet_sdxl", "config.json")));
    ck_assert_int_eq(cfg.text_time, 1);
    ck_assert_int_eq(cfg.tlayers[1], 2);
    ck_assert_int_eq(cfg.heads[0], 2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(weight_errors)
{
    struct ldm_unet_config cfg;
    ck_ok(ldm_unet_config_load(&cfg, golden_path("unet_sd1", "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    /* SD-2 weights: linear proj_in (16, 16) where SD-1 has a 1×1 conv (16, 16, 1, 1) */
    ck_fails_with(ldm_unet_load(U, golden_path("unet_sd2", "diffusion_pytorch_model.safetensors")),
                  LDM_EFORMAT, "down_blocks.0.attentions.0.proj_in.weight");
    ck_fails_with(ldm_unet_load(U, golden_path("unet_sd1", "golden.safetensors")), LDM_ENOTFOUND,
                  "time_embedding.linear_1.weight");
}
END_TEST

/* The SD-1 weights stored as F16 load as their F16 values, widened exactly. */
START_TEST(f16_weights)
{
    struct ldm_unet_config cfg;
    struct ldm_st *w;
    ck_ok(ldm_unet_config_load(&cfg, golden_path("unet_sd1", "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    ck_ok(ldm_st_open(&w, golden_path("unet_sd1", "diffusion_pytorch_model.safetensors")));
    size_t n = ldm_st_count(w);
    struct ldm_st_tensor *t = calloc(n, sizeof *t);
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < n; i++) {
        t[i] = *ldm_st_at(w, i);
        size_t k = t[i].nbytes / 4;
        uint16_t *h = malloc(k * 2 + 2);
        ck_assert_ptr_nonnull(h);
        ck_ok(ldm_convert(h, LDM_DT_F16, t[i].data, LDM_DT_F32, k));
        t[i].data = h, t[i].dtype = LDM_DT_F16, t[i].nbytes = k * 2;
    }
    char *dir = tu_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/f16.safetensors", dir);
    ck_ok(ldm_st_write(path, t, n, NULL, 0));
    ck_ok(ldm_unet_load(U, path));
    for (size_t i = 0; i < ldm_unet_nparams(U); i++) {
        struct ldm_tensor p, g;
        ck_ok(ldm_unet_param(U, i, &p, &g));
        const struct ldm_st_tensor *f = ldm_st_get(w, p.name);
        ck_assert_ptr_nonnull(f);
        const float *ours = p.data, *ref32 = f->data;
        for (size_t j = 0; j < ldm_tensor_numel(&p); j++)
            ck_assert_msg(ours[j] == ldm_f16_to_f32(ldm_f32_to_f16(ref32[j])), "%s[%zu]: %g",
                          p.name, j, (double)ours[j]);
    }
    for (size_t i = 0; i < n; i++)
        free((void *)t[i].data);
    free(t);
    ldm_st_close(&w);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(size_errors)
{
    struct ldm_unet_config cfg;
    ck_ok(ldm_unet_config_load(&cfg, golden_path("unet_sd1", "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    float x = 0.0f;
    struct ldm_unet_inputs in = {&x, &x, &x, NULL, NULL};
    ck_fails_with(ldm_unet_forward(U, &in, NULL), LDM_EINVAL, "prepare");
    ck_fails_with(ldm_unet_prepare(U, 1, 18, 16, 3), LDM_EINVAL, "multiples of 4");
    ck_fails_with(ldm_unet_loss(U, &x, &x), LDM_EINVAL, "forward");
    ck_fails_with(ldm_unet_backward(U, 1.0f), LDM_EINVAL, "loss");
    ck_ok(ldm_unet_prepare(U, 1, 8, 12, 3));
    in.sample = NULL;
    ck_fails_with(ldm_unet_forward(U, &in, NULL), LDM_EINVAL, "sample");
    /* other sizes run end to end: zero weights and inputs give a zero prediction */
    float *z = calloc(4 * 8 * 12 + 3 * 24, sizeof *z), *out = malloc(4 * 8 * 12 * sizeof *out);
    float loss = -1.0f;
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(out);
    in = (struct ldm_unet_inputs){z, z, z, NULL, NULL};
    ck_ok(ldm_unet_forward(U, &in, out));
    ck_ok(ldm_unet_loss(U, z, &loss));
    ck_ok(ldm_unet_backward(U, 1.0f));
    for (int i = 0; i < 4 * 8 * 12; i++)
        ck_assert_msg(out[i] == 0.0f, "out[%d] = %g", i, (double)out[i]);
    ck_assert_msg(loss == 0.0f, "loss %g", (double)loss);
    free(z);
    free(out);
}
END_TEST

Suite *suite_unet(void);
Suite *suite_unet(void)
{
    Suite *s = suite_create("unet");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, sd1_golden, 0, 2);
    tcase_add_test(tc, sd2_golden);
    tcase_add_test(tc, sdxl_golden);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, setup, teardown);
    tcase_add_test(te, config_errors);
    tcase_add_test(te, weight_errors);
    tcase_add_test(te, f16_weights);
    tcase_add_test(te, size_errors);
    suite_add_tcase(s, te);
    return s;
}
