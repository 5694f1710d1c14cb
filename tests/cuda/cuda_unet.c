/* cuda_unet.c — the UNet (models/unet.h) on the CUDA backend against diffusers' golden
 * tensors: the three tiny cases under $LDM_TEST_DATA/golden (unet_sd1, unet_sd2,
 * unet_sdxl; default ../shared/data), in F32 and in mixed precision (BF16, F16).
 *
 * Per case, on one device model:
 *  - F32: the prediction and the loss within 1e-4 of diffusers' relative to the
 *    reference's largest magnitude, every parameter gradient within 1e-3 relative to
 *    its own tensor's largest — the CPU test's bounds (tests/unit/test_unet.c). TF32
 *    is off (LDM_CUDA_TF32 unset), so cuDNN and cuBLASLt compute in FP32 and differ
 *    from PyTorch's CPU only in the order of their sums: a few float roundings per
 *    layer (the ops' CUDA tests hold single layers to 1e-5), far inside both bounds.
 *  - BF16 and F16 (F32 master weights, ldm_unet_set_precision) against the same F32
 *    golden tensors: prediction and loss relative to the reference's largest, the
 *    gradients' largest error relative to the largest gradient of the whole model
 *    (small tensors' own maxima are dominated by rounding), as
 *    tests/unit/test_unet_mixed.c does with the CPU's emulation: BF16 2e-2, F16 4e-3
 *    (the CPU emulation measured 6.1e-3 / 4.9e-3 and 1.1e-3 / 9.5e-4 on SD-1). F16
 *    runs with a loss scale of 1024 passed as dloss, as training does, and the F32
 *    gradients are unscaled before comparing.
 *  - Determinism: in each precision a second backward from the same loss gives the
 *    same gradient arena bit for bit.
 *  - Gradient checkpointing in BF16 (ldm_unet_set_checkpointing): the prediction, the
 *    loss and the gradients equal the run without it within 1e-6 relative to the
 *    largest of each (asserted), and whether they are bit-identical is printed. In
 *    BF16 one rounding flipped anywhere moves the gradients by far more than 1e-6, so
 *    the bound asks that the recomputation replays the same kernels on the same
 *    values; the activations must take less memory.
 *  - The compute copies (parameters and gradients in BF16/F16) take half the F32
 *    parameters' bytes each, up to the arenas' alignment.
 * Each run prints its errors, its time and the memory ldm_unet_memory reports:
 * F32 parameters (and as much for their gradients), the compute-dtype copies,
 * activations and their gradients, the workspace, and their total.
 *
 * Usage: cuda-unet [--device DEV]. Prints one "ok"/"FAIL" line a check and a
 * summary, exit 1 on a failure; "SKIP cuda-unet: no CUDA device" and exit 0 where
 * none is visible. --device cpu runs the same checks on the CPU backend (its
 * emulation of BF16/F16), to check this program where no GPU exists.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "models/unet.h"
#include "nn/backend.h"
#include "nn/device.h"
#include "nn/tensor.h"
#include "safetensors.h"

#define F32_FWD_TOL 1e-4
#define F32_GRAD_TOL 1e-3
#define BF16_TOL 2e-2
#define F16_TOL 4e-3
#define F16_SCALE 1024.0f
#define CKPT_TOL 1e-6

static int n_ok, n_fail;

static void die(const char *what, int rc)
{
    fprintf(stderr, "FAIL cuda-unet: %s: %s (%d)\n", what, ldm_errmsg(), rc);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory", LDM_ENOMEM);
    return p;
}

/* One "ok"/"FAIL" line, counted. */
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s cuda-unet: ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    ok ? n_ok++ : n_fail++;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* max|ours/scale − ref| / max|ref| over n floats (a non-finite value: infinity). */
static double rel_err(const float *ours, const float *ref, size_t n, float scale)
{
    double rmax = 0.0, emax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] / scale - (double)ref[i]);
        rmax = fmax(rmax, fabs((double)ref[i]));
        emax = fmax(emax, isfinite(d) ? d : INFINITY);
    }
    return rmax > 0.0 ? emax / rmax : emax;
}

/* ---- a golden case ------------------------------------------------------------------------ */

/* One case's model on the device, its golden inputs and outputs, and the golden
 * gradients laid out as the model's gradient arena (each at its tensor's offset). */
struct gcase {
    const char *name;
    struct ldm_ctx *ctx;
    struct ldm_unet *u;
    struct ldm_st *gold;
    struct ldm_unet_inputs in;
    float t[64];
    const float *target, *want_out;
    float want_loss;
    size_t nout;   /* floats in the prediction */
    float *gref;   /* the golden gradients, gbytes long */
    size_t gbytes; /* the gradient arena's size */
};

static const char *golden_path(const char *cs, const char *file)
{
    static char p[4096];
    const char *d = getenv("LDM_TEST_DATA");
    snprintf(p, sizeof p, "%s/golden/%s/%s", d && *d ? d : "../shared/data", cs, file);
    return p;
}

static const struct ldm_st_tensor *gold(const struct gcase *g, const char *name)
{
    const struct ldm_st_tensor *t = ldm_st_get(g->gold, name);
    if (!t || t->dtype != LDM_DT_F32)
        die(name, ldm_fail(LDM_ENOTFOUND, "%s has no F32 tensor %s", ldm_st_label(g->gold), name));
    return t;
}

/* The golden gradient of every parameter, at its offset in the gradient arena. */
static void golden_grads(struct gcase *g)
{
    const struct ldm_arena *ga;
    ldm_unet_arenas(g->u, NULL, &ga);
    g->gbytes = ga->bytes;
    g->gref = calloc(1, g->gbytes);
    if (!g->gref)
        die("out of memory", LDM_ENOMEM);
    for (size_t i = 0; i < ldm_unet_nparams(g->u); i++) {
        struct ldm_tensor p, gt;
        char name[300];
        int rc = ldm_unet_param(g->u, i, &p, &gt);
        if (rc)
            die("parameter", rc);
        snprintf(name, sizeof name, "grad.%s", p.name);
        const struct ldm_st_tensor *r = gold(g, name);
        if (r->nbytes != ldm_tensor_nbytes(&gt))
            die(name, ldm_fail(LDM_EFORMAT, "%zu bytes, the model's %zu", r->nbytes,
                               ldm_tensor_nbytes(&gt)));
        memcpy((char *)g->gref + ((const char *)gt.data - (const char *)ga->base), r->data,
               r->nbytes);
    }
}

/* The model of case `cs` on ctx, its weights loaded, prepared (F32) for the inputs. */
static void case_open(struct gcase *g, struct ldm_ctx *ctx, const char *cs)
{
    struct ldm_unet_config cfg;
    memset(g, 0, sizeof *g);
    g->name = cs, g->ctx = ctx;
    int rc = ldm_unet_config_load(&cfg, golden_path(cs, "config.json"));
    if (!rc)
        rc = ldm_unet_create(&g->u, ctx, &cfg);
    if (!rc)
        rc = ldm_unet_load(g->u, golden_path(cs, "diffusion_pytorch_model.safetensors"));
    if (!rc)
        rc = ldm_st_open(&g->gold, golden_path(cs, "golden.safetensors"));
    if (rc)
        die(cs, rc);
    const struct ldm_st_tensor *s = gold(g, "in.sample"), *e = gold(g, "in.encoder_hidden_states");
    const struct ldm_st_tensor *ts = ldm_st_get(g->gold, "in.timestep");
    if (!ts || ts->dtype != LDM_DT_I64 || ts->shape[0] > 64)
        die(cs, ldm_fail(LDM_EFORMAT, "in.timestep: missing, not I64 or more than 64"));
    for (int64_t i = 0; i < ts->shape[0]; i++)
        g->t[i] = (float)((const int64_t *)ts->data)[i]; /* diffusers casts them to float */
    g->in = (struct ldm_unet_inputs){s->data, g->t, e->data, NULL, NULL};
    if (cfg.text_time) {
        g->in.text_embeds = gold(g, "in.text_embeds")->data;
        g->in.time_ids = gold(g, "in.time_ids")->data;
    }
    g->target = gold(g, "in.target")->data;
    g->want_out = gold(g, "out.sample")->data;
    g->nout = gold(g, "out.sample")->nbytes / sizeof(float);
    g->want_loss = *(const float *)gold(g, "out.loss")->data;
    rc = ldm_unet_prepare(g->u, s->shape[0], s->shape[2], s->shape[3], e->shape[1]);
    if (rc)
        die("prepare", rc);
    golden_grads(g);
}

static void case_close(struct gcase *g)
{
    ldm_unet_free(&g->u);
    ldm_st_close(&g->gold);
    free(g->gref);
}

/* ---- one pass ------------------------------------------------------------------------------- */

/* What one forward, loss and backward gave, copied to the host. */
struct pass {
    float *out, loss, *grads; /* grads: the whole F32 gradient arena */
    double seconds;
    struct ldm_unet_mem mem;
};

static void download_grads(struct gcase *g, float *host)
{
    const struct ldm_arena *ga;
    ldm_unet_arenas(g->u, NULL, &ga);
    int rc = ldm_ctx_download(g->ctx, host, ga->base, ga->bytes);
    if (rc)
        die("download the gradients", rc);
}

static void run_pass(struct gcase *g, float dloss, struct pass *p)
{
    p->out = xmalloc(g->nout * sizeof *p->out);
    p->grads = xmalloc(g->gbytes);
    double t0 = now();
    int rc = ldm_unet_forward(g->u, &g->in, p->out);
    if (!rc)
        rc = ldm_unet_loss(g->u, g->target, &p->loss);
    if (!rc)
        rc = ldm_unet_backward(g->u, dloss);
    if (rc)
        die(g->name, rc);
    download_grads(g, p->grads);
    p->seconds = now() - t0;
    ldm_unet_memory(g->u, &p->mem);
}

static void pass_free(struct pass *p)
{
    free(p->out);
    free(p->grads);
}

/* A second backward from the same loss gives the same gradient arena bit for bit. */
static void check_repeat(struct gcase *g, const char *prec, const struct pass *p, float dloss)
{
    float *again = xmalloc(g->gbytes);
    int rc = ldm_unet_backward(g->u, dloss);
    if (rc)
        die("second backward", rc);
    download_grads(g, again);
    check(memcmp(again, p->grads, g->gbytes) == 0,
          "%s %s: a second backward gives the same gradient bits", g->name, prec);
    free(again);
}

static double mib(size_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

static void print_mem(const struct gcase *g, const char *what, const struct pass *p)
{
    const struct ldm_unet_mem *m = &p->mem;
    size_t total = 2 * m->params + m->compute + m->acts + m->act_grads + m->workspace;
    printf("     %s %s: %.3f s; memory %.2f MiB: params %.2f (+ %.2f gradients), compute "
           "copies %.2f, activations %.2f (+ %.2f gradients), workspace %.2f; %zu ops, %zu "
           "segments\n", g->name, what, p->seconds, mib(total), mib(m->params), mib(m->params),
           mib(m->compute), mib(m->acts), mib(m->act_grads), mib(m->workspace), m->nodes,
           m->segments);
}

/* ---- the checks -------------------------------------------------------------------------- */

/* Per-tensor gradient errors (each relative to its tensor's largest golden value):
 * the worst into *worst / *worst_name; names those above `tol` on stderr. */
static int grads_per_tensor(struct gcase *g, const float *grads, double tol, double *worst,
                            const char **worst_name)
{
    const struct ldm_arena *ga;
    int bad = 0;
    ldm_unet_arenas(g->u, NULL, &ga);
    *worst = 0.0, *worst_name = "";
    for (size_t i = 0; i < ldm_unet_nparams(g->u); i++) {
        struct ldm_tensor p, gt;
        ldm_unet_param(g->u, i, &p, &gt);
        size_t off = (size_t)((const char *)gt.data - (const char *)ga->base) / sizeof(float);
        double e = rel_err(grads + off, g->gref + off, ldm_tensor_numel(&gt), 1.0f);
        if (!(e <= tol) && bad++ < 8)
            fprintf(stderr, "     %s: grad.%s relative error %.3g\n", g->name, p.name, e);
        if (!(e <= *worst))
            *worst = e, *worst_name = p.name;
    }
    return bad;
}

static void check_f32(struct gcase *g)
{
    struct pass p;
    run_pass(g, 1.0f, &p);
    double fe = rel_err(p.out, g->want_out, g->nout, 1.0f);
    double le = fabs((double)p.loss - g->want_loss) / fabs((double)g->want_loss);
    double worst;
    const char *wname;
    int bad = grads_per_tensor(g, p.grads, F32_GRAD_TOL, &worst, &wname);
    check(fe <= F32_FWD_TOL, "%s F32: out.sample relative error %.3g (bound %g)", g->name, fe,
          F32_FWD_TOL);
    check(le <= F32_FWD_TOL, "%s F32: loss %.9g, diffusers %.9g, relative %.3g (bound %g)",
          g->name, (double)p.loss, (double)g->want_loss, le, F32_FWD_TOL);
    check(bad == 0, "%s F32: %zu gradients, worst %s %.3g (bound %g per tensor)", g->name,
          ldm_unet_nparams(g->u), wname, worst, F32_GRAD_TOL);
    print_mem(g, "F32", &p);
    check_repeat(g, "F32", &p, 1.0f);
    pass_free(&p);
}

/* BF16 or F16 against the F32 golden tensors; the pass is kept in *keep when not NULL. */
static void check_mixed(struct gcase *g, int dtype, double tol, float dloss, struct pass *keep)
{
    const char *dn = ldm_dtype_name(dtype);
    struct pass p;
    int rc = ldm_unet_set_precision(g->u, dtype);
    if (rc)
        die("set_precision", rc);
    run_pass(g, dloss, &p);
    double fe = rel_err(p.out, g->want_out, g->nout, 1.0f);
    double le = fabs((double)p.loss - g->want_loss) / fabs((double)g->want_loss);
    double ge = rel_err(p.grads, g->gref, g->gbytes / sizeof(float), dloss);
    check(fe <= tol, "%s %s: out.sample relative error %.3g (bound %g)", g->name, dn, fe, tol);
    check(le <= tol, "%s %s: loss %.9g, diffusers F32 %.9g, relative %.3g (bound %g)", g->name,
          dn, (double)p.loss, (double)g->want_loss, le, tol);
    check(ge <= tol, "%s %s: gradients (loss scale %g) error %.3g of the largest (bound %g)",
          g->name, dn, (double)dloss, ge, tol);
    check(p.mem.compute >= p.mem.params && p.mem.compute <= p.mem.params + 2 * LDM_ARENA_ALIGN,
          "%s %s: compute copies %zu B, half the F32 parameters' %zu B each (to alignment)",
          g->name, dn, p.mem.compute, p.mem.params);
    print_mem(g, dn, &p);
    check_repeat(g, dn, &p, dloss);
    if (keep)
        *keep = p;
    else
        pass_free(&p);
}

/* BF16 with gradient checkpointing against `plain`, the BF16 pass without it. */
static void check_ckpt(struct gcase *g, const struct pass *plain)
{
    struct pass p;
    int rc = ldm_unet_set_checkpointing(g->u, 1); /* the model is in BF16 already */
    if (rc)
        die("set_checkpointing", rc);
    run_pass(g, 1.0f, &p);
    double fe = rel_err(p.out, plain->out, g->nout, 1.0f);
    double le = fabs((double)p.loss - plain->loss) / fabs((double)plain->loss);
    double ge = rel_err(p.grads, plain->grads, g->gbytes / sizeof(float), 1.0f);
    int same = memcmp(p.out, plain->out, g->nout * sizeof(float)) == 0 &&
               memcmp(&p.loss, &plain->loss, sizeof p.loss) == 0 &&
               memcmp(p.grads, plain->grads, g->gbytes) == 0;
    check(fe <= CKPT_TOL && le <= CKPT_TOL && ge <= CKPT_TOL,
          "%s BF16 checkpointed: prediction %.3g, loss %.3g, gradients %.3g from the run "
          "without (bound %g; %s)", g->name, fe, le, ge, CKPT_TOL,
          same ? "bit-identical" : "not bit-identical");
    check(p.mem.acts < plain->mem.acts && p.mem.segments > 0,
          "%s BF16 checkpointed: activations %zu B < %zu B, %zu segments", g->name, p.mem.acts,
          plain->mem.acts, p.mem.segments);
    print_mem(g, "BF16 checkpointed", &p);
    pass_free(&p);
    rc = ldm_unet_set_checkpointing(g->u, 0);
    if (rc)
        die("set_checkpointing", rc);
}

static void run_case(struct ldm_ctx *ctx, const char *cs)
{
    struct gcase g;
    struct pass bf16;
    double t0 = now();
    case_open(&g, ctx, cs);
    check_f32(&g);
    check_mixed(&g, LDM_DT_BF16, BF16_TOL, 1.0f, &bf16);
    check_ckpt(&g, &bf16);
    pass_free(&bf16);
    check_mixed(&g, LDM_DT_F16, F16_TOL, F16_SCALE, NULL);
    case_close(&g);
    printf("     %s: %.2f s in all\n", cs, now() - t0);
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *dev = "cuda";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            dev = argv[++i];
        } else {
            fprintf(stderr, "usage: cuda-unet [--device cuda[:N]|cpu]\n");
            return 2;
        }
    }
    if (strncmp(dev, "cuda", 4) == 0) {
        int n = 0;
        if (!ldm_cuda_built() || ldm_cuda_device_count(&n) || n == 0) {
            printf("SKIP cuda-unet: no CUDA device\n");
            return 0;
        }
        char desc[200];
        if (ldm_cuda_describe(0, desc, sizeof desc) == 0)
            printf("     %s\n", desc);
    }
    unsetenv("LDM_CUDA_TF32"); /* FP32 convolutions and GEMMs on the device */
    struct ldm_ctx *ctx = NULL;
    int rc = ldm_ctx_open(&ctx, dev, 0);
    if (rc)
        die(dev, rc);
    static const char *cases[] = {"unet_sd1", "unet_sd2", "unet_sdxl"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(ctx, cases[i]);
    printf("%s cuda-unet: %d checks passed, %d failed\n", n_fail ? "FAIL" : "ok  ", n_ok,
           n_fail);
    ldm_ctx_close(&ctx);
    return n_fail ? 1 : 0;
}
