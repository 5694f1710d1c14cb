/* main.c — bench-train_step: trainerd's whole optimiser step (a micro-batch from the
 * LMDB cache drawn by the feed thread, DDPM noise, forward, MSE, backward, global-norm
 * clipping, AdamW, optionally EMA) on the CPU backend, against the same step written in
 * PyTorch with diffusers' UNet2DConditionModel and DDPMScheduler, same config, weights,
 * shapes and threads, run one after the other; prints images per second of both and
 * their ratio.
 *
 * For each case a temporary folder gets a model folder (unet/ with random weights
 * written by ldm_unet_save_from, scheduler/ DDPM scaled_linear 0.00085..0.012, 1000
 * steps, epsilon), an LMDB cache of random fp16 latent distributions and text states
 * (meta identity: scaling_factor 0.18215), and pool.bin, the same fp16 sections side by
 * side for the peer. The trainer is opened with trainerd's key-table defaults (the
 * numbers below) and timed over td_trainer_step: one warm-up, then the median of K.
 *
 *   bench-train_step [--threads N] [--steps K] [--python PATH] [--script FILE]
 *                    [--data DIR] [--only tiny|mid] [--with-ema]
 * The peer is FILE (bench/train_step/peer.py) run by PATH (a python with diffusers
 * 0.26.3). --with-ema adds a row per case with EMA on both sides. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "models/unet.h"
#include "models/unet_save.h"
#include "nn/backend.h"
#include "nn/tensor.h"
#include "record.h"
#include "store.h"
#include "trainerd/tcfg.h"
#include "trainerd/train.h"

#define MAX_STEPS 64

struct opts {
    int threads, steps, with_ema;
    const char *python, *script, *data, *only;
};

/* One case: the source config.json, the input sizes, and its folder once built. */
struct bcase {
    const char *name;
    char config[4200];
    int64_t N, H, W, L;
    int64_t C, D;       /* latent channels, text width: from the config */
    size_t params;      /* parameter elements */
    int64_t nsamples;   /* in the cache */
    char dir[4096];     /* the case's temporary folder */
};

/* What one side measured. */
struct result {
    double step_s, wait_s, loss;
};

/* A reproducible value in [-1, 1) for element i of stream s (a SplitMix64 hash). */
static float hval(uint64_t s, uint64_t i)
{
    uint64_t x = s * 0x9E3779B97F4A7C15ull + i + 1;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (float)((double)(x >> 40) / (double)(1ull << 23) - 1.0);
}

static double median(double *t, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double k = t[j];
            t[j] = t[j - 1], t[j - 1] = k;
        }
    return t[n / 2];
}

/* ---- the model folder ------------------------------------------------------------------ */

/* Parameters: weights of rank >= 2 uniform in ±1/sqrt(fan_in), 1-D weights 1, biases 0;
 * their element count into *count. */
static int init_params(struct ldm_unet *u, struct ldm_ctx *ctx, size_t *count)
{
    *count = 0;
    for (size_t i = 0; i < ldm_unet_nparams(u); i++) {
        struct ldm_tensor p, g;
        int rc = ldm_unet_param(u, i, &p, &g);
        if (rc)
            return rc;
        size_t n = ldm_tensor_numel(&p), fan = n / (size_t)p.shape[0];
        float scale = p.ndim >= 2 ? (float)(1.0 / sqrt((double)fan)) : 0.0f;
        float *h = malloc((n ? n : 1) * sizeof *h);
        if (!h)
            return ldm_fail(LDM_ENOMEM, "%s: %zu floats", p.name, n);
        for (size_t k = 0; k < n; k++)
            h[k] = p.ndim == 1 && strstr(p.name, ".weight") ? 1.0f : scale * hval(100 + i, k);
        rc = ldm_ctx_upload(ctx, p.data, h, n * sizeof *h);
        free(h);
        if (rc)
            return rc;
        *count += n;
    }
    return 0;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", path);
    return 0;
}

/* DIR/model/unet: the case's config with random weights. */
static int write_unet(struct bcase *c, int threads)
{
    char model[4200], unet[4300];
    struct ldm_unet_config cfg;
    struct ldm_ctx *ctx = NULL;
    struct ldm_unet *u = NULL;
    snprintf(model, sizeof model, "%s/model", c->dir);
    snprintf(unet, sizeof unet, "%s/unet", model);
    int rc = make_dir(model);
    if (!rc) rc = ldm_unet_config_load(&cfg, c->config);
    if (!rc) rc = ldm_ctx_open(&ctx, "cpu", threads);
    if (!rc) rc = ldm_unet_create(&u, ctx, &cfg);
    if (!rc) rc = init_params(u, ctx, &c->params);
    if (!rc) rc = ldm_unet_save_from(u, unet, c->config);
    c->C = cfg.in_channels;
    c->D = cfg.cross_attention_dim;
    ldm_unet_free(&u);
    ldm_ctx_close(&ctx);
    return rc;
}

/* DIR/model/scheduler/scheduler_config.json: SD-1's DDPM schedule, epsilon. */
static int write_scheduler(const struct bcase *c)
{
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/model/scheduler", c->dir);
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    int rc = make_dir(dir);
    if (rc)
        return rc;
    json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:s, s:b, s:b}", "_class_name",
                          "DDPMScheduler", "_diffusers_version", "0.26.3", "beta_schedule",
                          "scaled_linear", "beta_start", 0.00085, "beta_end", 0.012,
                          "num_train_timesteps", 1000, "prediction_type", "epsilon",
                          "clip_sample", 0, "set_alpha_to_one", 0);
    rc = j && json_dump_file(j, path, JSON_INDENT(2)) == 0
             ? 0 : ldm_fail(LDM_EIO, "%s: cannot write", path);
    json_decref(j);
    return rc;
}

/* The mid-size config: SD-1's block layout at 128/256/256 channels, cross-attention 768
 * (as bench-unet_cpu writes it). */
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
    snprintf(path, size, "%s/mid_config.json", dir);
    int rc = c && json_dump_file(c, path, JSON_INDENT(2)) == 0
                 ? 0 : ldm_fail(LDM_EIO, "%s: cannot write", path);
    json_decref(c);
    return rc;
}

/* ---- the cache ------------------------------------------------------------------------- */

/* The fp16 sections of sample k: mean and log-variance (C, H, W), text (L, D), each
 * section written into sec[] in that order (sec holds 2·CHW + LD halves). */
static void sample_sections(const struct bcase *c, int64_t k, uint16_t *sec)
{
    size_t lat = (size_t)(c->C * c->H * c->W), txt = (size_t)(c->L * c->D);
    uint64_t s = 1000 + 3 * (uint64_t)k;
    for (size_t i = 0; i < lat; i++) {
        sec[i] = ldm_f32_to_f16(4.0f * hval(s, i));                   /* mean */
        sec[lat + i] = ldm_f32_to_f16(-6.0f + 2.0f * hval(s + 1, i)); /* logvar */
    }
    for (size_t i = 0; i < txt; i++)
        sec[2 * lat + i] = ldm_f32_to_f16(hval(s + 2, i));
}

/* The record of sample k from its sections. */
static int sample_record(const struct bcase *c, const uint16_t *sec, void **rec, size_t *len)
{
    size_t lat = (size_t)(c->C * c->H * c->W);
    uint32_t ids[LDM_REC_MAX_TOKENS];
    for (int64_t i = 0; i < c->L; i++)
        ids[i] = i ? 320 + (uint32_t)i : 49406;
    struct ldm_record_hdr h = {
        .latent_c = (uint32_t)c->C, .latent_h = (uint32_t)c->H, .latent_w = (uint32_t)c->W,
        .text_len = (uint32_t)c->L, .text_dim = (uint32_t)c->D, .n_ids = (uint32_t)c->L,
        .orig_h = (uint32_t)(8 * c->H), .orig_w = (uint32_t)(8 * c->W),
        .target_h = (uint32_t)(8 * c->H), .target_w = (uint32_t)(8 * c->W)};
    struct ldm_record_sections s = {.mean = sec, .logvar = sec + lat, .text = sec + 2 * lat,
                                    .ids = ids};
    return ldm_record_new(&h, &s, rec, len);
}

/* Store sample k and append its sections to the pool file f. */
static int put_sample(struct ldm_store *st, FILE *f, const struct bcase *c, int64_t k,
                      uint16_t *sec, size_t halves)
{
    char key[32];
    void *rec = NULL;
    size_t len = 0, stored = 0;
    snprintf(key, sizeof key, "%06lld", (long long)k);
    sample_sections(c, k, sec);
    if (fwrite(sec, sizeof *sec, halves, f) != halves)
        return ldm_fail_errno(LDM_EIO, "%s/pool.bin: write", c->dir);
    int rc = sample_record(c, sec, &rec, &len);
    struct ldm_store_item it = {"bench", key, (uint64_t)k, rec, len};
    if (!rc)
        rc = ldm_store_put_batch(st, &it, 1, &stored, NULL);
    free(rec);
    return rc;
}

/* DIR/cache (LMDB) and DIR/pool.bin with c->nsamples samples. */
static int write_cache(const struct bcase *c)
{
    char path[4200];
    static const char identity[] = "{\"scaling_factor\": 0.18215}";
    size_t halves = (size_t)(2 * c->C * c->H * c->W + c->L * c->D);
    uint16_t *sec = malloc(halves * sizeof *sec);
    struct ldm_store *st = NULL;
    snprintf(path, sizeof path, "%s/pool.bin", c->dir);
    FILE *f = fopen(path, "wb");
    int rc = sec ? 0 : ldm_fail(LDM_ENOMEM, "sample of %zu halves", halves);
    if (!rc && !f)
        rc = ldm_fail_errno(LDM_EIO, "%s: fopen", path);
    snprintf(path, sizeof path, "%s/cache", c->dir);
    if (!rc) rc = ldm_store_open(path, NULL, &st);
    if (!rc) rc = ldm_store_meta_put(st, LDM_META_IDENTITY, identity, strlen(identity));
    for (int64_t k = 0; !rc && k < c->nsamples; k++)
        rc = put_sample(st, f, c, k, sec, halves);
    if (f && fclose(f) && !rc)
        rc = ldm_fail_errno(LDM_EIO, "%s/pool.bin: close", c->dir);
    ldm_store_close(&st);
    free(sec);
    return rc;
}

/* ---- our side -------------------------------------------------------------------------- */

static char s_cpu[] = "cpu", s_none[] = "", s_logit[] = "logit_normal", s_adamw[] = "adamw",
            s_constant[] = "constant", s_no[] = "no", s_fp32[] = "fp32";

/* trainerd's key-table defaults, then this benchmark's choices. */
static void fill_cfg(struct trainerd_cfg *t, const struct bcase *c, const struct opts *o,
                     int ema, char *model, char *cache, char *output)
{
    *t = (struct trainerd_cfg){
        .device = s_cpu, .threads = o->threads, .model = model, .cache = cache,
        .output = output, .resume = s_none, .check_identity = 0, .seed = 0,
        .batch_size = c->N, .grad_accum = 1, .max_steps = o->steps + 1, .min_samples = 1,
        .caption_dropout = 0, .random_flip = 0, .prefetch = 2, .prediction_type = s_none,
        .snr_gamma = 0, .noise_offset = 0, .timestep_sampling = s_logit, .logit_mean = 0,
        .logit_std = 1, .optimizer = s_adamw, .lr = 1e-4, .adam_beta1 = 0.9,
        .adam_beta2 = 0.999, .adam_eps = 1e-8, .weight_decay = 1e-2, .max_grad_norm = 1,
        .lr_scheduler = s_constant, .lr_warmup_steps = 0, .lr_num_cycles = 1, .lr_power = 1,
        .use_ema = ema, .ema_decay = 0.9999, .ema_min_decay = 0, .ema_update_after_step = 0,
        .ema_warmup = 0, .ema_inv_gamma = 1, .ema_power = 2.0 / 3.0, .mixed_precision = s_no,
        .loss_scale = 65536, .max_bad_steps = 25, .save_steps = 0, .keep_last = 0,
        .save_precision = s_fp32, .rank = -1, .world_size = -1, .local_rank = -1,
        .local_world_size = -1, .rendezvous_timeout = 120000, .log_every = 10,
        .exit_when_done = 1};
}

/* One step, waiting for the feed as long as it takes (it reports its own failures). */
static int one_step(struct td_trainer *t, struct td_step_report *rep)
{
    int rc;
    for (int tries = 0; tries < 600; tries++)
        if ((rc = td_trainer_step(t, 1000, rep)) != LDM_ETIMEOUT)
            return rc;
    return ldm_fail(LDM_ETIMEOUT, "no micro-batch from the feed in 600 s");
}

/* One warm-up step, then the median of o->steps steps and their mean data wait. */
static int time_ours(const struct bcase *c, const struct opts *o, int ema, struct result *r)
{
    char model[4200], cache[4200], output[4200];
    double t[MAX_STEPS];
    struct trainerd_cfg cfg;
    struct td_trainer *tr = NULL;
    snprintf(model, sizeof model, "%s/model", c->dir);
    snprintf(cache, sizeof cache, "%s/cache", c->dir);
    snprintf(output, sizeof output, "%s/out-ema%d", c->dir, ema);
    fill_cfg(&cfg, c, o, ema, model, cache, output);
    int rc = td_trainer_open(&tr, &cfg, NULL, 0, 1, 0, 1);
    *r = (struct result){0};
    for (int s = 0; !rc && s <= o->steps; s++) {
        struct td_step_report rep;
        rc = one_step(tr, &rep);
        if (!rc && rep.skipped)
            rc = ldm_fail(LDM_ERANGE, "%s: step %d skipped: loss %g", c->name, s, rep.loss);
        if (!rc && s) {
            t[s - 1] = rep.seconds;
            r->wait_s += rep.data_wait / o->steps;
            r->loss += rep.loss / o->steps;
        }
    }
    if (!rc)
        r->step_s = median(t, o->steps);
    td_trainer_close(&tr);
    return rc;
}

/* ---- the peer -------------------------------------------------------------------------- */

/* The peer's median seconds per step and mean loss ("step_s S loss L" on its stdout). */
static int time_peer(const struct bcase *c, const struct opts *o, int ema, struct result *r)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d '%s' '%s' "
             "'%s/model' '%s/pool.bin' %d %d %lld %lld %lld %lld %lld %d",
             o->threads, o->threads, o->threads, o->python, o->script, c->dir, c->dir,
             o->threads, o->steps, (long long)c->N, (long long)c->H, (long long)c->W,
             (long long)c->L, (long long)c->nsamples, ema);
    FILE *f = popen(cmd, "r");
    if (!f)
        return ldm_fail_errno(LDM_EIO, "popen %s", o->python);
    *r = (struct result){0};
    int got = fscanf(f, "step_s %lf loss %lf", &r->step_s, &r->loss);
    int st = pclose(f);
    if (got != 2 || st != 0)
        return ldm_fail(LDM_EIO, "the peer (%s %s) failed on case %s (status %d)", o->python,
                        o->script, c->name, st);
    return 0;
}

/* ---- cases ----------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* The case's folder: model, scheduler, cache and pool. */
static int build_case(struct bcase *c, const struct opts *o, const char *tmp)
{
    snprintf(c->dir, sizeof c->dir, "%s/%s", tmp, c->name);
    c->nsamples = (o->steps + 3) * c->N; /* one epoch covers every step and the prefetch */
    int rc = make_dir(c->dir);
    if (!rc) rc = write_unet(c, o->threads);
    if (!rc) rc = write_scheduler(c);
    if (!rc) rc = write_cache(c);
    return rc;
}

static int run_row(const struct bcase *c, const struct opts *o, int ema)
{
    struct result ours, peer;
    int rc = time_ours(c, o, ema, &ours);
    if (rc)
        return rc;
    double n = (double)c->N, ia = n / ours.step_s;
    printf("train_step %-8s N=%lld %lldx%lld L=%lld ema=%-3s %6.2fM params, %d threads: "
           "ldmpipe %7.2f img/s (%7.1f ms/step, data wait %.2f ms)", c->name, (long long)c->N,
           (long long)c->H, (long long)c->W, (long long)c->L, ema ? "yes" : "no",
           (double)c->params / 1e6, o->threads, ia, 1e3 * ours.step_s, 1e3 * ours.wait_s);
    fflush(stdout);
    rc = time_peer(c, o, ema, &peer);
    if (rc) {
        printf(", torch: failed\n");
        return rc;
    }
    double ib = n / peer.step_s;
    printf(", torch %7.2f img/s (%7.1f ms/step), ratio ldmpipe/torch %.2f, loss %.3f/%.3f\n",
           ib, 1e3 * peer.step_s, ia / ib, ours.loss, peer.loss);
    fflush(stdout);
    return 0;
}

static int run_case(struct bcase *c, const struct opts *o, const char *tmp)
{
    int rc = build_case(c, o, tmp);
    for (int ema = 0; !rc && ema <= o->with_ema; ema++)
        rc = run_row(c, o, ema);
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--with-ema")) {
            o->with_ema = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return ldm_fail(LDM_EINVAL, "%s: unknown option, or no value after it", argv[i]);
        if (!strcmp(argv[i - 1], "--threads")) o->threads = atoi(v);
        else if (!strcmp(argv[i - 1], "--steps")) o->steps = atoi(v);
        else if (!strcmp(argv[i - 1], "--python")) o->python = v;
        else if (!strcmp(argv[i - 1], "--script")) o->script = v;
        else if (!strcmp(argv[i - 1], "--data")) o->data = v;
        else if (!strcmp(argv[i - 1], "--only")) o->only = v;
        else return ldm_fail(LDM_EINVAL, "unknown option %s", argv[i - 1]);
    }
    if (o->threads <= 0)
        o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->steps < 1 || o->steps > MAX_STEPS)
        return ldm_fail(LDM_EINVAL, "--steps must be in 1..%d", MAX_STEPS);
    if (o->only && strcmp(o->only, "tiny") && strcmp(o->only, "mid"))
        return ldm_fail(LDM_EINVAL, "--only %s: tiny or mid", o->only);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0, 3, 0, "build/venv/bin/python", "bench/train_step/peer.py",
                     "../shared/data", NULL};
    int rc = parse(argc, argv, &o);
    if (rc) {
        fprintf(stderr, "bench-train_step: %s\n", ldm_errmsg());
        return 2;
    }
    ldm_log_set_level(LDM_LOG_WARN);
    char tmp[] = "/tmp/bench-train_step.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("bench-train_step: mkdtemp");
        return 1;
    }
    /* tiny: the golden SD-1 UNet at bench-unet_cpu's sizes; mid: its mid-size UNet */
    struct bcase tiny = {.name = "tiny-sd1", .N = 2, .H = 16, .W = 16, .L = 7};
    struct bcase mid = {.name = "mid", .N = 2, .H = 32, .W = 32, .L = 77};
    snprintf(tiny.config, sizeof tiny.config, "%s/golden/unet_sd1/config.json", o.data);
    rc = write_mid_config(tmp, mid.config, sizeof mid.config);
    if (!rc && (!o.only || !strcmp(o.only, "tiny")))
        rc = run_case(&tiny, &o, tmp);
    if (!rc && (!o.only || !strcmp(o.only, "mid")))
        rc = run_case(&mid, &o, tmp);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc) {
        fprintf(stderr, "bench-train_step: %s\n", ldm_errmsg());
        return 1;
    }
    return 0;
}
