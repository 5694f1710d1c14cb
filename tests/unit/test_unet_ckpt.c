/* test_unet_ckpt.c — gradient checkpointing of the UNet (ldm_unet_set_checkpointing):
 * on the golden SD-1, SD-2 and SDXL tiny UNets, on 1 and 3 threads, the prediction, the
 * loss and every parameter gradient equal those without it bit for bit, the bucket hook
 * sees the same calls and the activation arena is smaller; a mid-size SD-1-like UNet
 * (128/256/256 channels, 32×32 latents, batch 2) shows the saving in numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/unet.h"
#include "nn/tensor.h"
#include "safetensors.h"
#include "testutil.h"

static struct ldm_ctx *C;
static struct ldm_unet *U;
static struct ldm_st *G; /* the golden file: inputs */

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

static const void *ref(const char *name)
{
    const struct ldm_st_tensor *t = ldm_st_get(G, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    return t->data;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What one forward, loss and backward gave. */
struct pass {
    float *out, loss, *grads; /* grads: the whole gradient arena */
    size_t nout, ngrad;
    size_t hook_from[4096];   /* the bucket hook's calls, in order */
    size_t nhook;
    struct ldm_unet_mem mem;
    double seconds;
};

static void on_grads(void *arg, size_t from)
{
    struct pass *p = arg;
    if (p->nhook < sizeof p->hook_from / sizeof p->hook_from[0])
        p->hook_from[p->nhook++] = from;
}

static void pass_free(struct pass *p)
{
    free(p->out);
    free(p->grads);
    free(p);
}

/* Forward, loss and backward on `in` against `target`; records everything into a new
 * pass (checkpointing as set). */
static struct pass *run_pass(const struct ldm_unet_inputs *in, const float *target, size_t nout)
{
    struct pass *p = calloc(1, sizeof *p);
    const struct ldm_arena *ga;
    ck_assert_ptr_nonnull(p);
    ldm_unet_arenas(U, NULL, &ga);
    p->nout = nout, p->ngrad = ga->bytes;
    p->out = malloc(nout * sizeof *p->out);
    p->grads = malloc(ga->bytes);
    ck_assert(p->out && p->grads);
    ldm_unet_set_grad_hook(U, on_grads, p);
    double t0 = now();
    ck_ok(ldm_unet_forward(U, in, p->out));
    ck_ok(ldm_unet_loss(U, target, &p->loss));
    ck_ok(ldm_unet_backward(U, 1.0f));
    p->seconds = now() - t0;
    ldm_unet_set_grad_hook(U, NULL, NULL);
    ck_ok(ldm_ctx_download(C, p->grads, ga->base, ga->bytes));
    ldm_unet_memory(U, &p->mem);
    return p;
}

/* b equals a bit for bit: prediction, loss, each parameter's gradient (naming the
 * first that differs), the hook's calls. */
static void expect_same(const char *cs, const struct pass *a, const struct pass *b)
{
    ck_assert_msg(memcmp(a->out, b->out, a->nout * sizeof *a->out) == 0,
                  "%s: the prediction differs with checkpointing", cs);
    ck_assert_msg(memcmp(&a->loss, &b->loss, sizeof a->loss) == 0, "%s: loss %.9g vs %.9g", cs,
                  (double)a->loss, (double)b->loss);
    ck_assert_uint_eq(a->ngrad, b->ngrad);
    const struct ldm_arena *ga;
    ldm_unet_arenas(U, NULL, &ga);
    for (size_t i = 0; i < ldm_unet_nparams(U); i++) {
        struct ldm_tensor pt, gt;
        ck_ok(ldm_unet_param(U, i, &pt, &gt));
        size_t off = (size_t)((const char *)gt.data - (const char *)ga->base);
        ck_assert_msg(memcmp((const char *)a->grads + off, (const char *)b->grads + off,
                             ldm_tensor_nbytes(&gt)) == 0,
                      "%s: gradient of %s differs with checkpointing", cs, pt.name);
    }
    ck_assert_msg(memcmp(a->grads, b->grads, a->ngrad) == 0, "%s: gradient arenas differ", cs);
    ck_assert_uint_eq(a->nhook, b->nhook);
    ck_assert_msg(memcmp(a->hook_from, b->hook_from, a->nhook * sizeof a->hook_from[0]) == 0,
                  "%s: the bucket hook was called otherwise", cs);
}

/* A second backward after the same forward (every segment recomputed, the last one
 * included) gives the same gradients. */
static void expect_second_backward(const char *cs, const struct pass *a)
{
    const struct ldm_arena *ga;
    ldm_unet_arenas(U, NULL, &ga);
    float *g = malloc(ga->bytes);
    ck_assert_ptr_nonnull(g);
    ck_ok(ldm_unet_backward(U, 1.0f));
    ck_ok(ldm_ctx_download(C, g, ga->base, ga->bytes));
    ck_assert_msg(memcmp(g, a->grads, ga->bytes) == 0, "%s: a second backward differs", cs);
    free(g);
}

static const char *const cases[] = {"unet_sd1", "unet_sd2", "unet_sdxl"};

/* Case _i / 2 on 1 (even _i) or 3 threads. */
START_TEST(golden_equal)
{
    const char *cs = cases[_i / 2];
    int threads = _i % 2 ? 3 : 1;
    struct ldm_unet_config cfg;
    ck_ok(ldm_ctx_open(&C, "cpu", threads));
    ck_ok(ldm_unet_config_load(&cfg, golden_path(cs, "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    ck_ok(ldm_unet_load(U, golden_path(cs, "diffusion_pytorch_model.safetensors")));
    ck_ok(ldm_st_open(&G, golden_path(cs, "golden.safetensors")));
    const struct ldm_st_tensor *s = ldm_st_get(G, "in.sample"), *e, *ts;
    e = ldm_st_get(G, "in.encoder_hidden_states");
    ts = ldm_st_get(G, "in.timestep");
    ck_assert(s && e && ts && ts->dtype == LDM_DT_I64 && ts->shape[0] <= 64);
    float t[64];
    for (int64_t i = 0; i < ts->shape[0]; i++)
        t[i] = (float)((const int64_t *)ts->data)[i];
    struct ldm_unet_inputs in = {s->data, t, e->data, NULL, NULL};
    if (cfg.text_time)
        in.text_embeds = ref("in.text_embeds"), in.time_ids = ref("in.time_ids");
    ck_ok(ldm_unet_prepare(U, s->shape[0], s->shape[2], s->shape[3], e->shape[1]));
    size_t nout = s->nbytes / 4 / (size_t)cfg.in_channels * (size_t)cfg.out_channels;
    struct pass *off = run_pass(&in, ref("in.target"), nout);
    ck_ok(ldm_unet_set_checkpointing(U, 1));
    struct pass *on = run_pass(&in, ref("in.target"), nout);
    printf("unet_ckpt %s, %d thread%s: activations %zu B kept, %zu B checkpointed (%zu "
           "segments, %zu ops); activation gradients %zu B, %zu B; loss %.9g both\n", cs,
           threads, threads > 1 ? "s" : "", off->mem.acts, on->mem.acts, on->mem.segments,
           on->mem.nodes, off->mem.act_grads, on->mem.act_grads, (double)on->loss);
    expect_same(cs, off, on);
    ck_assert_uint_eq(off->mem.segments, 0);
    ck_assert_uint_gt(on->mem.segments, 0);
    ck_assert_uint_lt(on->mem.acts, off->mem.acts);
    ck_assert_uint_eq(on->mem.act_grads, off->mem.act_grads);
    expect_second_backward(cs, off);
    ck_ok(ldm_unet_set_checkpointing(U, 0)); /* back to the plain layout */
    struct ldm_unet_mem m;
    ldm_unet_memory(U, &m);
    ck_assert_uint_eq(m.acts, off->mem.acts);
    pass_free(off);
    pass_free(on);
}
END_TEST

/* SD-1-like: 128/256/256 channels, cross-attention in the first two down blocks (8
 * heads), CLIP-L width 768 with 77 tokens; batch 2 at 32×32. */
static void mid_config(struct ldm_unet_config *c)
{
    *c = (struct ldm_unet_config){
        .in_channels = 4, .out_channels = 4, .nblocks = 3,
        .block_out_channels = {128, 256, 256}, .down_cross = {1, 1, 0}, .up_cross = {0, 1, 1},
        .heads = {8, 8, 8}, .tlayers = {1, 1, 1}, .layers_per_block = 2,
        .cross_attention_dim = 768, .norm_num_groups = 32, .norm_eps = 1e-5f,
        .flip_sin_to_cos = 1, .conv_in_kernel = 3, .conv_out_kernel = 3, .time_embed_dim = 512};
}

/* n floats uniform in [-a, a), from a fixed LCG. */
static void fill(float *x, size_t n, float a, uint64_t *st)
{
    for (size_t i = 0; i < n; i++) {
        *st = *st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = a * ((float)(*st >> 40) / (float)(1ull << 23) - 1.0f);
    }
}

/* Small random weights (fan-in scaled). */
static void random_weights(uint64_t *st)
{
    for (size_t i = 0; i < ldm_unet_nparams(U); i++) {
        struct ldm_tensor p, g;
        ck_ok(ldm_unet_param(U, i, &p, &g));
        size_t n = ldm_tensor_numel(&p), fan = p.ndim > 1 ? n / (size_t)p.shape[0] : 1;
        float *h = malloc(n * sizeof *h);
        ck_assert_ptr_nonnull(h);
        fill(h, n, p.ndim > 1 ? 1.0f / sqrtf((float)fan) : 0.1f, st);
        ck_ok(ldm_ctx_upload(C, p.data, h, n * sizeof *h));
        free(h);
    }
}

START_TEST(mid_size_memory)
{
    const int64_t N = 2, H = 32, W = 32, L = 77, D = 768;
    struct ldm_unet_config cfg;
    uint64_t st = 42;
    mid_config(&cfg);
    ck_ok(ldm_ctx_open(&C, "cpu", 0));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    random_weights(&st);
    size_t nx = (size_t)(N * 4 * H * W);
    float *x = malloc(nx * sizeof *x), *tgt = malloc(nx * sizeof *tgt);
    float *ehs = malloc((size_t)(N * L * D) * sizeof *ehs), t[2] = {999.0f, 17.0f};
    ck_assert(x && tgt && ehs);
    fill(x, nx, 1.0f, &st);
    fill(tgt, nx, 1.0f, &st);
    fill(ehs, (size_t)(N * L * D), 1.0f, &st);
    struct ldm_unet_inputs in = {x, t, ehs, NULL, NULL};
    ck_ok(ldm_unet_prepare(U, N, H, W, L));
    struct pass *off = run_pass(&in, tgt, nx);
    ck_ok(ldm_unet_set_checkpointing(U, 1));
    struct pass *on = run_pass(&in, tgt, nx);
    const double MiB = 1024.0 * 1024.0;
    printf("unet_ckpt mid-size (128/256/256, batch 2, 32x32, 77 tokens): activations %.1f MiB "
           "-> %.1f MiB checkpointed (%.1f%%; %zu segments); activation gradients %.1f MiB, "
           "workspace %.1f MiB, parameters %.1f MiB; forward+loss+backward %.2f s -> %.2f s\n",
           off->mem.acts / MiB, on->mem.acts / MiB, 100.0 * on->mem.acts / off->mem.acts,
           on->mem.segments, on->mem.act_grads / MiB, on->mem.workspace / MiB,
           on->mem.params / MiB, off->seconds, on->seconds);
    expect_same("mid-size", off, on);
    ck_assert_uint_lt(on->mem.acts, off->mem.acts);
    pass_free(off);
    pass_free(on);
    free(x);
    free(tgt);
    free(ehs);
}
END_TEST

/* Errors and no-ops: the setter before prepare and twice in a row. */
START_TEST(setter)
{
    struct ldm_unet_config cfg;
    struct ldm_unet_mem m;
    ck_ok(ldm_ctx_open(&C, "cpu", 1));
    ck_ok(ldm_unet_config_load(&cfg, golden_path("unet_sd1", "config.json")));
    ck_ok(ldm_unet_create(&U, C, &cfg));
    ck_ok(ldm_unet_set_checkpointing(U, 1));
    ck_ok(ldm_unet_set_checkpointing(U, 1));
    float z = 0.0f;
    struct ldm_unet_inputs in = {&z, &z, &z, NULL, NULL};
    ck_fails_with(ldm_unet_forward(U, &in, NULL), LDM_EINVAL, "prepare");
    ck_fails_with(ldm_unet_prepare(U, 1, 18, 16, 3), LDM_EINVAL, "multiples of 4");
    ck_ok(ldm_unet_prepare(U, 1, 8, 12, 3));
    ldm_unet_memory(U, &m);
    ck_assert_uint_gt(m.segments, 0);
    /* zero weights and inputs still give a zero prediction and loss */
    float *zs = calloc(4 * 8 * 12 + 3 * 24, sizeof *zs), loss = -1.0f;
    ck_assert_ptr_nonnull(zs);
    in = (struct ldm_unet_inputs){zs, zs, zs, NULL, NULL};
    ck_ok(ldm_unet_forward(U, &in, NULL));
    ck_ok(ldm_unet_loss(U, zs, &loss));
    ck_ok(ldm_unet_backward(U, 1.0f));
    ck_assert_msg(loss == 0.0f, "loss %g", (double)loss);
    ck_ok(ldm_unet_set_checkpointing(U, 0)); /* prepares again: the loss is gone */
    ck_fails_with(ldm_unet_backward(U, 1.0f), LDM_EINVAL, "loss");
    ldm_unet_memory(U, &m);
    ck_assert_uint_eq(m.segments, 0);
    free(zs);
}
END_TEST

Suite *suite_unet_ckpt(void);
Suite *suite_unet_ckpt(void)
{
    Suite *s = suite_create("unet_ckpt");
    TCase *tc = tcase_create("golden");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, golden_equal, 0, 6);
    tcase_add_test(tc, setter);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("mid-size");
    tcase_add_checked_fixture(tm, NULL, teardown);
    tcase_set_timeout(tm, 900);
    tcase_add_test(tm, mid_size_memory);
    suite_add_tcase(s, tm);
    return s;
}
