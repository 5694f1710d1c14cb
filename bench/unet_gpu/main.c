/* main.c — bench-unet_gpu: one UNet training step (forward, MSE, backward, AdamW) of an
 * SD-1.5-shaped UNet (64×64 latents, 77 tokens) on the CUDA backend, against diffusers'
 * UNet2DConditionModel on PyTorch on the same GPU in the same run: ms/step, img/s, the
 * ratio, MFU (3 × 0.81 TFLOP per image over the H100's 989 TFLOP/s dense bf16 peak) and
 * memory. ldmpipe runs F32 and mixed precision (ldm_unet_set_precision: bf16 or fp16
 * activations, F32 master weights, AdamW in F32); the peer runs F32 (TF32 off) and bf16
 * autocast. Each precision is compared with the peer's of the same name; the headline is
 * bf16 against bf16.
 *
 * usage: bench-unet_gpu [--device cuda:0] [--batch N] [--steps K] [--python P]
 *        [--script bench/unet_gpu/peer.py] [--peer fp32,bf16] [--ours fp32,bf16] [--tiny]
 *        [--profile]   (then one more step with every op timed: the time per kind of op)
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "models/unet.h"
#include "nn/backend.h"

#define FLOP_PER_IMAGE (3 * 0.81e12)
#define PEAK_BF16 989e12

struct opts {
    const char *device, *python, *script, *peer, *ours;
    int batch, steps, tiny, profile;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_config(const char *path, int tiny)
{
    json_t *c = json_pack(
        "{s:s, s:s, s:[i,i,i,i], s:[s,s,s,s], s:[s,s,s,s], s:i, s:i, s:i, s:i, s:i, s:i, s:i, "
        "s:f}",
        "_class_name", "UNet2DConditionModel", "_diffusers_version", "0.26.3",
        "block_out_channels", tiny ? 32 : 320, tiny ? 64 : 640, tiny ? 64 : 1280,
        tiny ? 64 : 1280, "down_block_types", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D", "DownBlock2D", "up_block_types", "UpBlock2D",
        "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
        "cross_attention_dim", tiny ? 64 : 768, "attention_head_dim", 8, "layers_per_block", 2,
        "in_channels", 4, "out_channels", 4, "sample_size", 64, "norm_num_groups", 32,
        "norm_eps", 1e-5);
    int rc = c && json_dump_file(c, path, JSON_INDENT(2)) == 0
                 ? 0 : ldm_fail(LDM_EIO, "%s: cannot write", path);
    json_decref(c);
    return rc;
}

/* Deterministic pseudo-random host values in [−s, s]. */
static float *host_rand(size_t n, uint64_t seed, float s)
{
    float *v = malloc(n * sizeof *v);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; v && i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v[i] = s * (2.0f * (float)(x >> 40) / (float)(1 << 24) - 1.0f);
    }
    return v;
}

static int init_params(struct ldm_unet *u, struct ldm_ctx *ctx)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < ldm_unet_nparams(u); i++) {
        struct ldm_tensor p, g;
        ldm_unet_param(u, i, &p, &g);
        size_t n = ldm_tensor_numel(&p);
        float *h = host_rand(n, i + 1, p.ndim == 1 ? 0.0f : 0.02f);
        if (p.ndim == 1 && strstr(p.name, "norm") && strstr(p.name, "weight"))
            for (size_t k = 0; h && k < n; k++)
                h[k] = 1.0f;
        rc = h ? ldm_ctx_upload(ctx, p.data, h, n * sizeof *h) : ldm_fail(LDM_ENOMEM, "init");
        free(h);
    }
    return rc;
}

struct run {
    struct ldm_ctx *ctx;
    struct ldm_unet *u;
    void *m, *v;
    struct ldm_tensor pm, pv;
    float *sample, *t, *ehs, *target;
    size_t bytes; /* device memory we allocated */
};

/* "fp32", "bf16", "fp16" -> the compute dtype, or -1. */
static int dtype_of(const char *prec)
{
    return !strcmp(prec, "fp32") ? LDM_DT_F32 : !strcmp(prec, "bf16") ? LDM_DT_BF16
           : !strcmp(prec, "fp16") ? LDM_DT_F16 : -1;
}

static int setup(struct run *r, const struct opts *o, const char *config, int64_t N, int dtype)
{
    struct ldm_unet_config cfg;
    int rc = ldm_unet_config_load(&cfg, config);
    if (!rc) rc = ldm_ctx_open(&r->ctx, o->device, 0);
    if (!rc) rc = ldm_unet_create(&r->u, r->ctx, &cfg);
    if (!rc) rc = init_params(r->u, r->ctx);
    if (!rc) rc = ldm_unet_set_precision(r->u, dtype);
    if (!rc) rc = ldm_unet_prepare(r->u, N, 64, 64, 77);
    const struct ldm_arena *pa;
    ldm_unet_arenas(r->u, &pa, NULL);
    if (!rc) rc = ldm_ctx_alloc(r->ctx, pa->bytes, &r->m);
    if (!rc) rc = ldm_ctx_alloc(r->ctx, pa->bytes, &r->v);
    if (rc)
        return rc;
    int64_t nf = (int64_t)(pa->bytes / 4);
    r->pm = ldm_tensor_f32(r->m, nf);
    r->pv = ldm_tensor_f32(r->v, nf);
    r->sample = host_rand((size_t)(N * 4 * 64 * 64), 7, 1.0f);
    r->target = host_rand((size_t)(N * 4 * 64 * 64), 8, 1.0f);
    r->ehs = host_rand((size_t)(N * 77 * cfg.cross_attention_dim), 9, 1.0f);
    r->t = malloc((size_t)N * sizeof(float));
    for (int64_t i = 0; r->t && i < N; i++)
        r->t[i] = (float)((17 + 311 * i) % 1000);
    struct ldm_unet_mem m;
    ldm_unet_memory(r->u, &m);
    r->bytes = 4 * m.params + m.compute + m.acts + m.act_grads + m.workspace;
    return r->sample && r->target && r->ehs && r->t ? 0 : ldm_fail(LDM_ENOMEM, "inputs");
}

static int step(struct run *r, int64_t k)
{
    struct ldm_unet_inputs in = {r->sample, r->t, r->ehs, NULL, NULL};
    const struct ldm_arena *pa, *ga;
    ldm_unet_arenas(r->u, &pa, &ga);
    struct ldm_tensor p, g;
    float loss;
    int rc = ldm_unet_forward(r->u, &in, NULL);
    if (!rc) rc = ldm_unet_loss(r->u, r->target, &loss);
    if (!rc) rc = ldm_unet_backward(r->u, 1.0f);
    if (!rc) rc = ldm_arena_flat(pa, LDM_DT_F32, &p);
    if (!rc) rc = ldm_arena_flat(ga, LDM_DT_F32, &g);
    struct ldm_adamw_opts ao = {1e-4, 0.9, 0.999, 1e-8, 1e-2, k};
    if (!rc) rc = ldm_adamw_step(r->ctx, &p, &g, &r->pm, &r->pv, &ao);
    if (!rc) rc = ldm_ctx_download(r->ctx, &loss, r->m, sizeof loss); /* waits for the step */
    return rc;
}

static void teardown(struct run *r)
{
    if (r->ctx) {
        ldm_ctx_free(r->ctx, r->m);
        ldm_ctx_free(r->ctx, r->v);
    }
    ldm_unet_free(&r->u);
    ldm_ctx_close(&r->ctx);
    free(r->sample), free(r->target), free(r->ehs), free(r->t);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void line(const char *who, int batch, double sec, double bytes);

/* Our median step time (printed as `who`'s line, then the op profile when asked for). */
static int time_ours(const struct opts *o, const char *config, int dtype, const char *who,
                     double *sec, size_t *bytes)
{
    struct run r = {0};
    double t[64];
    int rc = setup(&r, o, config, o->batch, dtype);
    for (int s = 0; !rc && s < o->steps + 2; s++) {
        double t0 = now_s();
        rc = step(&r, s + 1);
        if (s >= 2)
            t[s - 2] = now_s() - t0;
    }
    if (!rc) {
        qsort(t, (size_t)o->steps, sizeof *t, cmp_d);
        *sec = t[o->steps / 2];
        *bytes = r.bytes;
        line(who, o->batch, *sec, (double)*bytes);
    }
    if (!rc && o->profile) { /* one more step, each op timed on its own */
        rc = ldm_ctx_profile(r.ctx, 1);
        if (!rc) rc = step(&r, o->steps + 3);
        printf("  ops of one step (each waited for: the sum exceeds the step):\n");
        ldm_ctx_profile_report(r.ctx, stdout);
        ldm_ctx_profile(r.ctx, 0);
    }
    teardown(&r);
    return rc;
}

static int time_peer(const struct opts *o, const char *config, const char *prec, double *sec,
                     double *peak)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s %s %s %d %d 64 64 77", o->python, o->script, config, prec,
             o->steps, o->batch);
    FILE *f = popen(cmd, "r");
    if (!f)
        return ldm_fail_errno(LDM_EIO, "popen %s", o->python);
    int got = fscanf(f, "step_s %lf peak_bytes %lf", sec, peak);
    int st = pclose(f);
    if (got != 2 || st != 0)
        return ldm_fail(LDM_EIO, "the peer (%s %s %s) failed (status %d)", o->python, o->script,
                        prec, st);
    return 0;
}

static void line(const char *who, int batch, double sec, double bytes)
{
    double ips = batch / sec;
    printf("  %-22s %8.1f ms/step %8.2f img/s  MFU %5.1f%%  memory %6.1f GiB\n", who, 1e3 * sec,
           ips, 100.0 * ips * FLOP_PER_IMAGE / PEAK_BF16, bytes / 1073741824.0);
}

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--profile")) {
            o->profile = 1;
            continue;
        }
        if (!strcmp(argv[i], "--tiny")) {
            o->tiny = 1;
            continue;
        }
        if (!v)
            return ldm_fail(LDM_EINVAL, "%s: unknown option, or no value after it", argv[i]);
        i++;
        if (!strcmp(argv[i - 1], "--device")) o->device = v;
        else if (!strcmp(argv[i - 1], "--batch")) o->batch = atoi(v);
        else if (!strcmp(argv[i - 1], "--steps")) o->steps = atoi(v);
        else if (!strcmp(argv[i - 1], "--python")) o->python = v;
        else if (!strcmp(argv[i - 1], "--script")) o->script = v;
        else if (!strcmp(argv[i - 1], "--peer")) o->peer = v;
        else if (!strcmp(argv[i - 1], "--ours")) o->ours = v;
        else return ldm_fail(LDM_EINVAL, "unknown option %s", argv[i - 1]);
    }
    if (o->steps < 1 || o->steps > 60 || o->batch < 1)
        return ldm_fail(LDM_EINVAL, "--steps must be in 1..60 and --batch positive");
    return 0;
}

/* Each of our precisions: timed, printed; *sec[i] 0 when it failed. */
static void run_ours(const struct opts *o, const char *config, char names[][16], double *sec,
                     int *n)
{
    char list[64];
    snprintf(list, sizeof list, "%s", o->ours);
    *n = 0;
    for (char *p = strtok(list, ","); p && *n < 4; p = strtok(NULL, ",")) {
        size_t bytes = 0;
        char who[64];
        snprintf(names[*n], 16, "%s", p);
        snprintf(who, sizeof who, "ldmpipe %s", p);
        sec[*n] = 0;
        int dt = dtype_of(p);
        if (dt < 0)
            printf("  %s: not fp32, bf16 or fp16\n", who);
        else if (time_ours(o, config, dt, who, &sec[*n], &bytes))
            printf("  %s: %s\n", who, ldm_errmsg()), sec[*n] = 0;
        (*n)++;
    }
}

int main(int argc, char **argv)
{
    struct opts o = {"cuda:0", "python3", "bench/unet_gpu/peer.py", "fp32,bf16", "fp32,bf16",
                     8, 5, 0, 0};
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "bench-unet_gpu: %s\n", ldm_errmsg());
        return 2;
    }
    char tmp[] = "/tmp/bench-unet_gpu.XXXXXX", config[64];
    if (!mkdtemp(tmp))
        return perror("bench-unet_gpu: mkdtemp"), 1;
    snprintf(config, sizeof config, "%s/config.json", tmp);
    int rc = write_config(config, o.tiny);
    double ours[4] = {0}, peer, peak;
    char names[4][16];
    int n = 0, failed = rc != 0;
    printf("bench-unet_gpu: %s UNet, batch %d, 64x64 latents, 77 tokens, %s\n",
           o.tiny ? "tiny" : "SD-1.5", o.batch, o.device);
    if (!rc)
        run_ours(&o, config, names, ours, &n);
    for (int i = 0; i < n; i++)
        failed |= ours[i] == 0;
    char precs[64];
    snprintf(precs, sizeof precs, "%s", o.peer);
    for (char *p = strtok(precs, ","); !rc && p; p = strtok(NULL, ",")) {
        if (time_peer(&o, config, p, &peer, &peak)) {
            printf("  diffusers %s: %s\n", p, ldm_errmsg());
            continue;
        }
        char who[64];
        snprintf(who, sizeof who, "diffusers/torch %s", p);
        line(who, o.batch, peer, peak);
        for (int i = 0; i < n; i++)
            if (ours[i] > 0 && !strcmp(names[i], p))
                printf("  ratio ldmpipe %s / diffusers %s (speed): %.2f\n", p, p, peer / ours[i]);
    }
    unlink(config);
    rmdir(tmp);
    return rc || failed ? 1 : 0;
}
