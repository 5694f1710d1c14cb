/* test_unet_mixed.c — the UNet in mixed precision (BF16 / F16 activations, F32 master
 * weights) against diffusers' F32 golden tensors, on the CPU backend's emulation of
 * reduced dtypes (each op computes in F32 and rounds its outputs, as a GPU kernel
 * stores them).
 *
 * What is checked:
 *  - the prediction, the loss and the gradients follow the F32 reference within
 *    tolerances set by the dtype's precision (BF16 keeps 8 bits, F16 11);
 *  - the F32 master weights are untouched by a forward and the gradients land in the
 *    F32 gradient arena;
 *  - with a gradient hook the compute gradients are handed over stretch by stretch and
 *    give the same F32 gradients, bit for bit, as all at once at the end;
 *  - a loss scale passed as dloss scales the F32 gradients (F16);
 *  - switching back to F32 gives the F32 results again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"
#include "nn/tensor.h"
#include "safetensors.h"
#include "testutil.h"

static struct ldm_ctx *C;
static struct ldm_unet *U;
static struct ldm_st *G;

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
    return t;
}

/* max|a − b| / max|b|. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double bmax = 0.0, emax = 0.0;
    for (size_t i = 0; i < n; i++) {
        bmax = fmax(bmax, fabs((double)b[i]));
        emax = fmax(emax, isfinite(a[i]) ? fabs((double)a[i] - b[i]) : INFINITY);
    }
    return bmax > 0.0 ? emax / bmax : emax;
}

/* SD-1's tiny golden case in `dtype`, its inputs in *in (t holds the timesteps). */
static void open_case(int dtype, struct ldm_unet_inputs *in, float *t)
{
    struct ldm_unet_config cfg;
    const char *cs = "unet_sd1";
    ck_ok(ldm_unet_config_load(&cfg, golden_path(cs, "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    ck_ok(ldm_unet_load(U, golden_path(cs, "diffusion_pytorch_model.safetensors")));
    ck_ok(ldm_st_open(&G, golden_path(cs, "golden.safetensors")));
    const struct ldm_st_tensor *s = ref("in.sample"), *e = ref("in.encoder_hidden_states");
    ck_ok(ldm_unet_set_precision(U, dtype));
    ck_ok(ldm_unet_prepare(U, s->shape[0], s->shape[2], s->shape[3], e->shape[1]));
    ck_assert_int_eq(ldm_unet_get_precision(U), dtype);
    const struct ldm_st_tensor *ts = ref("in.timestep");
    for (int64_t i = 0; i < ts->shape[0]; i++)
        t[i] = (float)((const int64_t *)ts->data)[i];
    *in = (struct ldm_unet_inputs){s->data, t, e->data, NULL, NULL};
}

/* The gradients of every parameter against diffusers': the largest per-tensor error
 * relative to the largest gradient of the whole model (small tensors' own maxima are
 * dominated by rounding), into *worst. */
static double grads_err(float scale)
{
    size_t n = ldm_unet_nparams(U);
    double gmax = 0.0, emax = 0.0;
    for (size_t i = 0; i < n; i++) {
        struct ldm_tensor p, g;
        char name[300];
        ck_ok(ldm_unet_param(U, i, &p, &g));
        ck_assert_int_eq(g.dtype, LDM_DT_F32);
        snprintf(name, sizeof name, "grad.%s", p.name);
        const float *r = ref(name)->data, *ours = g.data;
        for (size_t k = 0; k < ldm_tensor_numel(&g); k++) {
            gmax = fmax(gmax, fabs((double)r[k]));
            double d = fabs((double)ours[k] / scale - r[k]);
            emax = fmax(emax, isfinite(d) ? d : INFINITY);
        }
    }
    return emax / gmax;
}

/* Forward, loss and backward in `dtype` within the tolerances given. */
static void mixed_case(int dtype, double fwd_tol, double grad_tol, float dloss)
{
    struct ldm_unet_inputs in;
    float t[64], loss;
    open_case(dtype, &in, t);
    const struct ldm_st_tensor *o = ref("out.sample");
    struct ldm_tensor p0, g0;
    ck_ok(ldm_unet_param(U, 0, &p0, &g0));
    float first = ((const float *)p0.data)[0];
    float *out = malloc(o->nbytes);
    ck_assert_ptr_nonnull(out);
    ck_ok(ldm_unet_forward(U, &in, out));
    ck_assert_msg(((const float *)p0.data)[0] == first, "the master weights moved");
    double fe = rel_err(out, o->data, o->nbytes / 4);
    ck_ok(ldm_unet_loss(U, ref("in.target")->data, &loss));
    float want = *(const float *)ref("out.loss")->data;
    double le = fabs((double)loss - want) / fabs((double)want);
    ck_ok(ldm_unet_backward(U, dloss));
    double ge = grads_err(dloss);
    struct ldm_unet_mem m;
    ldm_unet_memory(U, &m);
    printf("unet %s: out.sample %.3g, loss %.9g (F32 %.9g, %.3g), gradients %.3g; "
           "compute copies %zu B\n", ldm_dtype_name(dtype), fe, (double)loss, (double)want, le,
           ge, m.compute);
    free(out);
    ck_assert_msg(fe <= fwd_tol, "out.sample error %.3g > %.3g", fe, fwd_tol);
    ck_assert_msg(le <= fwd_tol, "loss error %.3g > %.3g", le, fwd_tol);
    ck_assert_msg(ge <= grad_tol, "gradient error %.3g > %.3g", ge, grad_tol);
    ck_assert_msg(m.compute == m.params, "compute copies %zu B, F32 parameters %zu B",
                  m.compute, m.params);
}

START_TEST(bf16_golden)
{
    mixed_case(LDM_DT_BF16, 2e-2, 2e-2, 1.0f); /* measured 6.1e-3, 4.9e-3 */
}
END_TEST

/* F16 with a loss scale of 1024 passed as dloss: the F32 gradients come out scaled. */
START_TEST(f16_golden_scaled)
{
    mixed_case(LDM_DT_F16, 4e-3, 4e-3, 1024.0f); /* measured 1.1e-3, 9.5e-4 */
}
END_TEST

struct hook_log {
    int calls;
    size_t last;
};

static void hook(void *arg, size_t from)
{
    struct hook_log *h = arg;
    h->calls++;
    h->last = from;
}

/* The F32 gradients after one backward, copied. */
static float *grads_copy(size_t *bytes)
{
    const struct ldm_arena *ga;
    ldm_unet_arenas(U, NULL, &ga);
    float *c = malloc(ga->bytes);
    ck_assert_ptr_nonnull(c);
    memcpy(c, ga->base, ga->bytes);
    *bytes = ga->bytes;
    return c;
}

START_TEST(hook_stretches)
{
    struct ldm_unet_inputs in;
    float t[64], loss;
    size_t bytes;
    open_case(LDM_DT_BF16, &in, t);
    ck_ok(ldm_unet_forward(U, &in, NULL));
    ck_ok(ldm_unet_loss(U, ref("in.target")->data, &loss));
    ck_ok(ldm_unet_backward(U, 1.0f));
    float *at_end = grads_copy(&bytes);
    struct hook_log h = {0, 1};
    ldm_unet_set_grad_hook(U, hook, &h);
    ck_ok(ldm_unet_backward(U, 1.0f));
    ldm_unet_set_grad_hook(U, NULL, NULL);
    float *stretched = grads_copy(&bytes);
    printf("unet BF16: %d gradient stretches\n", h.calls);
    ck_assert_int_gt(h.calls, 2);
    ck_assert_uint_eq(h.last, 0);
    ck_assert_msg(memcmp(at_end, stretched, bytes) == 0, "stretch by stretch differs");
    free(at_end);
    free(stretched);
}
END_TEST

/* BF16, then back to F32: the golden F32 prediction again (to 1e-4). */
START_TEST(back_to_f32)
{
    struct ldm_unet_inputs in;
    float t[64];
    open_case(LDM_DT_BF16, &in, t);
    ck_ok(ldm_unet_forward(U, &in, NULL));
    ck_ok(ldm_unet_set_precision(U, LDM_DT_F32));
    const struct ldm_st_tensor *o = ref("out.sample");
    float *out = malloc(o->nbytes);
    ck_assert_ptr_nonnull(out);
    ck_ok(ldm_unet_forward(U, &in, out));
    double fe = rel_err(out, o->data, o->nbytes / 4);
    free(out);
    ck_assert_msg(fe <= 1e-4, "F32 again: out.sample error %.3g", fe);
    struct ldm_unet_mem m;
    ldm_unet_memory(U, &m);
    ck_assert_uint_eq(m.compute, 0);
    ck_fails_with(ldm_unet_set_precision(U, LDM_DT_I32), LDM_EINVAL, "not F32, F16 or BF16");
}
END_TEST

Suite *suite_unet_mixed(void);
Suite *suite_unet_mixed(void)
{
    Suite *s = suite_create("unet_mixed");
    TCase *tc = tcase_create("mixed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bf16_golden);
    tcase_add_test(tc, f16_golden_scaled);
    tcase_add_test(tc, hook_stretches);
    tcase_add_test(tc, back_to_f32);
    suite_add_tcase(s, tc);
    return s;
}
