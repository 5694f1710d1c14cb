/* main.c — bench-unet_cpu: one UNet training step (forward, MSE loss, backward, AdamW over
 * every parameter) on the CPU backend against diffusers' UNet2DConditionModel on PyTorch,
 * same config, shapes and threads, run one after the other; prints both and the ratio.
 *
 *   bench-unet_cpu [--threads N] [--steps K] [--python PATH] [--script FILE] [--data DIR]
 *                  [--only tiny|mid]
 * The peer is FILE (bench/unet_cpu/peer.py) run by PATH (a python with diffusers 0.26.3). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "json.h"
#include "models/unet.h"
#include "nn/backend.h"

struct opts {
    int threads, steps;
    const char *python, *script, *data, *only;
};

/* One case: a config.json and the input sizes. */
struct bcase {
    const char *name;
    char config[4096];
    int64_t N, H, W, L;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A reproducible value in [-1, 1) for element i of stream s (a SplitMix64 hash). */
static float hval(uint64_t s, uint64_t i)
{
    uint64_t x = s * 0x9E3779B97F4A7C15ull + i + 1;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (float)((double)(x >> 40) / (double)(1ull << 23) - 1.0);
}

static float *host_rand(size_t n, uint64_t s, float scale)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = scale * hval(s, i);
    return x;
}

/* Parameters: weights of rank >= 2 uniform in ±1/sqrt(fan_in), 1-D weights 1, biases 0. */
static int init_params(struct ldm_unet *u, struct ldm_ctx *ctx)
{
    for (size_t i = 0; i < ldm_unet_nparams(u); i++) {
        struct ldm_tensor p, g;
        int rc = ldm_unet_param(u, i, &p, &g);
        if (rc)
            return rc;
        size_t n = ldm_tensor_numel(&p), fan = n / (size_t)p.shape[0];
        float *h = host_rand(n, 100 + i, p.ndim >= 2 ? (float)(1.0 / sqrt((double)fan)) : 0.f);
        if (!h)
            return ldm_fail(LDM_ENOMEM, "%s", p.name);
        if (p.ndim == 1 && strstr(p.name, ".weight"))
            for (size_t k = 0; k < n; k++)
                h[k] = 1.0f;
        rc = ldm_ctx_upload(ctx, p.data, h, n * sizeof *h);
        free(h);
        if (rc)
            return rc;
    }
    return 0;
}

/* The AdamW moments of every parameter, one host block. */
struct moments {
    struct ldm_tensor *m, *v;
    float *block;
    size_t n;
};

static int moments_init(struct moments *mo, const struct ldm_unet *u)
{
    size_t total = 0;
    mo->n = ldm_unet_nparams(u);
    mo->m = calloc(mo->n, sizeof *mo->m);
    mo->v = calloc(mo->n, sizeof *mo->v);
    for (size_t i = 0; i < mo->n; i++) {
        struct ldm_tensor p, g;
        ldm_unet_param(u, i, &p, &g);
        total += ldm_tensor_numel(&p);
    }
    mo->block = calloc(2 * total + 1, sizeof *mo->block);
    if (!mo->m || !mo->v || !mo->block)
        return ldm_fail(LDM_ENOMEM, "AdamW moments: %zu floats", 2 * total);
    float *b = mo->block;
    for (size_t i = 0; i < mo->n; i++) {
        struct ldm_tensor p, g;
        ldm_unet_param(u, i, &p, &g);
        size_t n = ldm_tensor_numel(&p);
        mo->m[i] = p, mo->m[i].data = b, b += n;
        mo->v[i] = p, mo->v[i].data = b, b += n;
    }
    return 0;
}

static void moments_free(struct moments *mo)
{
    free(mo->m);
    free(mo->v);
    free(mo->block);
}

/* One training step: forward, loss, backward, AdamW (lr 1e-4, weight decay 1e-2). */
static int train_step(struct ldm_unet *u, struct ldm_ctx *ctx, const struct ldm_unet_inputs *in,
                      const float *target, struct moments *mo, int64_t step, float *loss)
{
    int rc = ldm_unet_forward(u, in, NULL);
    if (!rc) rc = ldm_unet_loss(u, target, loss);
    if (!rc) rc = ldm_unet_backward(u, 1.0f);
    struct ldm_adamw_opts o = {1e-4, 0.9, 0.999, 1e-8, 1e-2, step};
    for (size_t i = 0; !rc && i < mo->n; i++) {
        struct ldm_tensor p, g;
        rc = ldm_unet_param(u, i, &p, &g);
        if (!rc)
            rc = ldm_adamw_step(ctx, &p, &g, &mo->m[i], &mo->v[i], &o);
    }
    return rc;
}

/* Inputs of the case: random sample, timesteps, text states and target. */
struct inputs {
    float *sample, *t, *ehs, *target;
};

static int make_inputs(const struct bcase *c, const struct ldm_unet_config *cfg, struct inputs *x)
{
    size_t ns = (size_t)(c->N * cfg->in_channels * c->H * c->W);
    x->sample = host_rand(ns, 1, 1.0f);
    x->target = host_rand(ns, 2, 1.0f);
    x->ehs = host_rand((size_t)(c->N * c->L * cfg->cross_attention_dim), 3, 1.0f);
    x->t = malloc(sizeof *x->t * (size_t)c->N);
    if (!x->sample || !x->target || !x->ehs || !x->t)
        return ldm_fail(LDM_ENOMEM, "inputs");
    for (int64_t i = 0; i < c->N; i++)
        x->t[i] = (float)(17 + 311 * i % 1000);
    return 0;
}

static void free_inputs(struct inputs *x)
{
    free(x->sample);
    free(x->t);
    free(x->ehs);
    free(x->target);
}

/* Median seconds per step over o->steps timed steps after one warm-up. */
static int time_ours(const struct bcase *c, const struct opts *o, double *sec, size_t *nparams)
{
    struct ldm_unet_config cfg;
    struct ldm_ctx *ctx = NULL;
    struct ldm_unet *u = NULL;
    struct moments mo = {0};
    struct inputs x = {0};
    double t[64];
    int rc = ldm_unet_config_load(&cfg, c->config);
    if (!rc) rc = ldm_ctx_open(&ctx, "cpu", o->threads);
    if (!rc) rc = ldm_unet_create(&u, ctx, &cfg);
    if (!rc) rc = init_params(u, ctx);
    if (!rc) rc = ldm_unet_prepare(u, c->N, c->H, c->W, c->L);
    if (!rc) rc = moments_init(&mo, u);
    if (!rc) rc = make_inputs(c, &cfg, &x);
    struct ldm_unet_inputs in = {x.sample, x.t, x.ehs, NULL, NULL};
    float loss = 0;
    for (int s = 0; !rc && s <= o->steps; s++) {
        double t0 = now_s();
        rc = train_step(u, ctx, &in, x.target, &mo, s + 1, &loss);
        if (s)
            t[s - 1] = now_s() - t0;
    }
    for (int i = 0; !rc && i < o->steps; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double k = t[j]; t[j] = t[j - 1]; t[j - 1] = k;
        }
    if (!rc) {
        *sec = t[o->steps / 2];
        *nparams = 0;
        for (size_t i = 0; i < ldm_unet_nparams(u); i++) {
            struct ldm_tensor p, g;
            ldm_unet_param(u, i, &p, &g);
            *nparams += ldm_tensor_numel(&p);
        }
    }
    free_inputs(&x);
    moments_free(&mo);
    ldm_unet_free(&u);
    ldm_ctx_close(&ctx);
    return rc;
}

/* The peer's median seconds per step ("step_s" printed by the script). */
static int time_peer(const struct bcase *c, const struct opts *o, double *sec)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d %s %s %s %d %d "
             "%lld %lld %lld %lld",
             o->threads, o->threads, o->threads, o->python, o->script, c->config, o->threads,
             o->steps, (long long)c->N, (long long)c->H, (long long)c->W, (long long)c->L);
    FILE *f = popen(cmd, "r");
    if (!f)
        return ldm_fail_errno(LDM_EIO, "popen %s", o->python);
    int got = fscanf(f, "step_s %lf", sec);
    int st = pclose(f);
    if (got != 1 || st != 0)
        return ldm_fail(LDM_EIO, "the peer (%s %s) failed (status %d)", o->python, o->script, st);
    return 0;
}

/* The mid-size case: SD-1's block layout at 128/256/256 channels, cross-attention 768. */
static int write_mid_config(const char *dir, char *path, size_t size)
{
    json_t *c = json_pack(
        "{s:s, s:s, s:[i,i,i], s:[s,s,s], s:[s,s,s], s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f}",
        "_class_name", "UNet2DConditionModel", "_diffusers_version", "0.26.3",
        "block_out_channels", 128, 256, 256, "down_block_types", "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D", "DownBlock2D", "up_block_types", "UpBlock2D",
        "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "cross_attention_dim", 768,
        "attention_head_dim", 8, "layers_per_block", 2, "in_channels", 4, "out_channels", 4,
        "sample_size", 32, "norm_num_groups", 32, "norm_eps", 1e-5);
    snprintf(path, size, "%s/config.json", dir);
    int rc = c && json_dump_file(c, path, JSON_INDENT(2)) == 0
                 ? 0 : ldm_fail(LDM_EIO, "%s: cannot write", path);
    json_decref(c);
    return rc;
}

static int run_case(const struct bcase *c, const struct opts *o)
{
    double ours, peer;
    size_t np = 0;
    int rc = time_ours(c, o, &ours, &np);
    if (rc)
        return rc;
    printf("unet %-8s N=%lld %lldx%lld L=%lld, %.2fM params, %d threads: ldmpipe %8.1f ms/step",
           c->name, (long long)c->N, (long long)c->H, (long long)c->W, (long long)c->L,
           (double)np / 1e6, o->threads, 1e3 * ours);
    fflush(stdout);
    rc = time_peer(c, o, &peer);
    if (rc) {
        printf(", diffusers: failed\n");
        return rc;
    }
    printf(", diffusers %8.1f ms/step, ratio ldmpipe/diffusers %.2f\n", 1e3 * peer, ours / peer);
    return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return ldm_fail(LDM_EINVAL, "%s: unknown option, or no value after it", argv[i]);
        if (!strcmp(argv[i], "--threads")) o->threads = atoi(v);
        else if (!strcmp(argv[i], "--steps")) o->steps = atoi(v);
        else if (!strcmp(argv[i], "--python")) o->python = v;
        else if (!strcmp(argv[i], "--script")) o->script = v;
        else if (!strcmp(argv[i], "--data")) o->data = v;
        else if (!strcmp(argv[i], "--only")) o->only = v;
        else return ldm_fail(LDM_EINVAL, "unknown option %s", argv[i]);
    }
    if (o->threads <= 0)
        o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->steps < 1 || o->steps > 64)
        return ldm_fail(LDM_EINVAL, "--steps must be in 1..64");
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0, 3, "build/venv/bin/python", "bench/unet_cpu/peer.py", "../shared/data",
                     NULL};
    int rc = parse(argc, argv, &o);
    if (rc) {
        fprintf(stderr, "bench-unet_cpu: %s\n", ldm_errmsg());
        return 2;
    }
    char tmp[] = "/tmp/bench-unet_cpu.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("bench-unet_cpu: mkdtemp");
        return 1;
    }
    /* tiny: the sizes of the golden SD-1 case */
    struct bcase tiny = {.name = "tiny-sd1", .N = 2, .H = 16, .W = 16, .L = 7};
    struct bcase mid = {.name = "mid", .N = 1, .H = 32, .W = 32, .L = 77};
    snprintf(tiny.config, sizeof tiny.config, "%s/golden/unet_sd1/config.json", o.data);
    rc = write_mid_config(tmp, mid.config, sizeof mid.config);
    if (!rc && (!o.only || !strcmp(o.only, "tiny")))
        rc = run_case(&tiny, &o);
    if (!rc && (!o.only || !strcmp(o.only, "mid")))
        rc = run_case(&mid, &o);
    unlink(mid.config);
    rmdir(tmp);
    if (rc) {
        fprintf(stderr, "bench-unet_cpu: %s\n", ldm_errmsg());
        return 1;
    }
    return 0;
}
