/* eval.c — evald's shared models and the evaluation of one checkpoint. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "err.h"
#include "evald/eval_int.h"
#include "json.h"
#include "log.h"
#include "nn/tensor.h"
#include "store.h"

static const char *const default_prompts[] = {
    "a red circle on a white background", "a blue square", "a green triangle",
    "a yellow star on a black background", "a photo of a cat", "a watercolor painting of a house",
    "an astronaut riding a horse", "a bowl of fruit on a table"};

static int read_prompts(struct ev_models *m, const char *path)
{
    if (!path || !*path) {
        size_t n = sizeof default_prompts / sizeof *default_prompts;
        m->prompts = calloc(n, sizeof *m->prompts);
        for (size_t i = 0; m->prompts && i < n; i++)
            m->prompts[i] = strdup(default_prompts[i]);
        m->nprompts = (int64_t)n;
        return m->prompts ? 0 : ldm_fail(LDM_ENOMEM, "prompts");
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return ldm_fail_errno(LDM_ECONFIG, "prompts: %s", path);
    char line[4096];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        if ((size_t)m->nprompts == cap) {
            char **np = realloc(m->prompts, (cap = cap ? cap * 2 : 64) * sizeof *np);
            if (!np)
                break;
            m->prompts = np;
        }
        m->prompts[m->nprompts++] = strdup(line);
    }
    fclose(f);
    return m->nprompts ? 0 : ldm_fail(LDM_ECONFIG, "prompts: %s holds no prompt", path);
}

/* Every prompt and the empty one through the text encoders, once. */
static int encode_prompts(struct ev_models *m)
{
    ev_text_dims(m->text, &m->L, &m->D, &m->P);
    size_t per = (size_t)(m->L * m->D);
    m->cond = malloc((size_t)m->nprompts * per * sizeof(float));
    m->uncond = malloc(per * sizeof(float));
    m->pcond = malloc(((size_t)m->nprompts + 1) * (size_t)(m->P + 1) * sizeof(float));
    m->puncond = malloc((size_t)(m->P + 1) * sizeof(float));
    if (!m->cond || !m->uncond || !m->pcond || !m->puncond)
        return ldm_fail(LDM_ENOMEM, "prompt states");
    const char *empty = "";
    int rc = ev_text_encode(m->text, (const char *const *)m->prompts, m->nprompts, m->cond,
                            m->P ? m->pcond : NULL);
    if (!rc)
        rc = ev_text_encode(m->text, &empty, 1, m->uncond, m->P ? m->puncond : NULL);
    return rc;
}

/* Text states of one cache record into ehs (L, D) and pooled (P), checked against the
 * text encoders' sizes. */
static int record_text(const struct ev_models *m, const struct ldm_record *r, const char *key,
                       float *ehs, float *pooled)
{
    if (r->hdr.text_len != m->L || r->hdr.text_dim != m->D || r->hdr.pooled_dim != m->P)
        return ldm_fail(LDM_ECONFIG, "prompts_cache: sample %s has text %ux%u pooled %u, the "
                        "model's encoders give %lldx%lld pooled %lld", key, r->hdr.text_len,
                        r->hdr.text_dim, r->hdr.pooled_dim, (long long)m->L, (long long)m->D,
                        (long long)m->P);
    for (size_t i = 0; i < (size_t)(m->L * m->D); i++)
        ehs[i] = ldm_f16_to_f32(ldm_record_f16(r->sec.text, i));
    for (size_t i = 0; i < (size_t)m->P; i++)
        pooled[i] = ldm_f16_to_f32(ldm_record_f16(r->sec.pooled, i));
    return 0;
}

/* Prompts from a latent cache: the stored text states of its first num_prompts
 * samples (key order) replace the encoded prompt file. */
static int cache_prompts(struct ev_models *m, const char *path)
{
    struct ldm_store *st = NULL;
    struct ldm_store_opts so = {.readonly = 1};
    struct ldm_store_txn *t = NULL;
    struct ldm_store_cursor *c = NULL;
    size_t per = (size_t)(m->L * m->D), P = (size_t)m->P;
    int64_t want = m->cfg->num_prompts, n = 0;
    float *cond = malloc((size_t)want * per * sizeof *cond);
    float *pc = malloc(((size_t)want * P + 1) * sizeof *pc);
    int rc = cond && pc ? ldm_store_open(path, &so, &st) : ldm_fail(LDM_ENOMEM, "prompts");
    if (!rc) rc = ldm_store_read_begin(st, &t);
    if (!rc) rc = ldm_store_cursor_open(t, LDM_DB_SAMPLES, &c);
    struct ldm_store_kv kv;
    while (!rc && n < want && (rc = ldm_store_cursor_next(c, &kv)) == 0) {
        struct ldm_record r;
        char key[600];
        snprintf(key, sizeof key, "%.*s", (int)kv.key_len, kv.key);
        if (ldm_record_parse(kv.val, kv.val_len, key, &r) || !r.hdr.text_len)
            continue; /* a tombstone or a damaged record: not a prompt */
        rc = record_text(m, &r, key, cond + (size_t)n * per, pc + (size_t)n * P);
        n += rc == 0;
    }
    if (rc == LDM_ENOTFOUND)
        rc = n ? 0 : ldm_fail(LDM_ECONFIG, "prompts_cache: %s holds no sample", path);
    ldm_store_cursor_close(&c);
    ldm_store_read_end(&t);
    ldm_store_close(&st);
    if (!rc) {
        free(m->cond), free(m->pcond);
        m->cond = cond, m->pcond = pc, m->nprompts = n;
    } else {
        free(cond), free(pc);
    }
    return rc;
}

static int open_scores(struct ev_models *m)
{
    const struct evald_cfg *c = m->cfg;
    int rc = 0;
    if (c->inception[0])
        rc = ldm_inception_open_file(&m->inception, m->ctx, c->inception);
    if (!rc && c->fid_stats[0]) {
        if (!m->inception)
            return ldm_fail(LDM_ECONFIG, "fid_stats: FID needs the inception weights too");
        rc = ldm_fid_stats_read(c->fid_stats, &m->ref);
        if (rc)
            rc = ldm_fail(LDM_ECONFIG, "fid_stats: %s", ldm_errmsg());
    }
    return rc;
}

/* The model key names a diffusers folder with the parts evald runs. */
static int check_model_dir(const char *model)
{
    static const char *const need[] = {"vae/config.json", "text_encoder/config.json",
                                       "tokenizer", "scheduler/scheduler_config.json"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        char p[4200];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", model, need[i]);
        if (stat(p, &sb))
            return ldm_fail(LDM_ECONFIG, "model: '%s' is not a diffusers folder: no %s", model,
                            need[i]);
    }
    return 0;
}

/* The precision key: fp32, bf16 or fp16. */
static int parse_precision(const char *v, int *dtype)
{
    *dtype = !strcmp(v, "fp32") ? LDM_DT_F32 : !strcmp(v, "bf16") ? LDM_DT_BF16
             : !strcmp(v, "fp16") ? LDM_DT_F16 : -1;
    return *dtype >= 0 ? 0 : ldm_fail(LDM_ECONFIG, "precision: '%s' is not fp32, bf16 or fp16", v);
}

int ev_models_open(struct ev_models **out, const struct evald_cfg *cfg)
{
    int rc0 = check_model_dir(cfg->model);
    if (rc0)
        return rc0;
    struct ev_models *m = calloc(1, sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "evald models");
    m->cfg = cfg;
    char p[4200];
    int rc = parse_precision(cfg->precision, &m->udt);
    if (!rc) rc = read_prompts(m, cfg->prompts);
    if (!rc) rc = ldm_ctx_open(&m->ctx, cfg->device, (int)cfg->threads);
    if (!rc) rc = ev_text_open(&m->text, m->ctx, cfg->model);
    snprintf(p, sizeof p, "%s/vae", cfg->model);
    if (!rc) rc = ldm_vae_open(&m->vae, m->ctx, p);
    snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", cfg->model);
    if (!rc) rc = ldm_json_load_object(p, &m->sched);
    if (!rc) rc = encode_prompts(m);
    if (!rc && cfg->prompts_cache[0]) rc = cache_prompts(m, cfg->prompts_cache);
    if (!rc) rc = open_scores(m);
    if (!rc) {
        ldm_vae_scaling(m->vae, &m->vscale, &m->vshift);
        m->lat_c = ldm_vae_config(m->vae)->latent_channels;
        m->side = cfg->resolution;
        if (m->side <= 0) {
            json_t *j = NULL;
            int64_t ss = 64;
            snprintf(p, sizeof p, "%s/unet/config.json", cfg->model);
            if (!ldm_json_load_object(p, &j))
                ldm_json_get_int(j, "sample_size", &ss, 64);
            json_decref(j);
            m->side = ldm_vae_image_size(m->vae, ss);
        }
    }
    if (rc) {
        ev_models_close(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void ev_models_close(struct ev_models **pm)
{
    struct ev_models *m = *pm;
    if (!m)
        return;
    ldm_inception_close(&m->inception);
    ldm_fid_stats_free(&m->ref);
    ev_text_close(&m->text);
    ldm_vae_close(&m->vae);
    ldm_ctx_close(&m->ctx);
    json_decref(m->sched);
    for (int64_t i = 0; i < m->nprompts; i++)
        free(m->prompts[i]);
    free(m->prompts);
    free(m->cond), free(m->uncond), free(m->pcond), free(m->puncond);
    free(m);
    *pm = NULL;
}

/* The checkpoint's UNet (unet_ema/ when asked and present) on the models' context.
 * Errors that come from the checkpoint's files are returned as LDM_EFORMAT. */
static int load_unet(struct ev_models *m, const char *dir, struct ldm_unet **u, int *ema)
{
    char p[4300];
    struct stat st;
    snprintf(p, sizeof p, "%s/unet_ema", dir);
    *ema = m->cfg->use_ema && stat(p, &st) == 0;
    snprintf(p, sizeof p, "%s/%s/config.json", dir, *ema ? "unet_ema" : "unet");
    struct ldm_unet_config uc;
    int rc = ldm_unet_config_load(&uc, p);
    if (!rc) rc = ldm_unet_create(u, m->ctx, &uc);
    if (!rc) rc = ldm_unet_set_precision(*u, m->udt);
    snprintf(p, sizeof p, "%s/%s", dir, *ema ? "unet_ema" : "unet");
    if (!rc) rc = ldm_unet_load_dir(*u, p);
    if (rc && rc != LDM_ENOMEM) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ldm_errmsg());
        rc = ldm_fail(LDM_EFORMAT, "%s", msg);
    }
    return rc;
}

/* Scores of one batch: images to [0,1] floats, Inception pool3 into the accumulator,
 * logits appended at logits + first·1008. */
static int score_batch(struct ev_models *m, const uint8_t *px, int64_t n, struct ldm_fid_acc *acc,
                       float *logits)
{
    int64_t s = m->side, hw = s * s;
    float *img = malloc((size_t)(n * 3 * hw) * sizeof *img);
    float *pool = malloc((size_t)n * 2048 * sizeof *pool);
    int rc = img && pool ? 0 : ldm_fail(LDM_ENOMEM, "inception batch");
    for (int64_t k = 0; !rc && k < n; k++)
        for (int64_t i = 0; i < hw; i++)
            for (int c = 0; c < 3; c++)
                img[(k * 3 + c) * hw + i] = (float)px[(k * hw + i) * 3 + c] / 255.0f;
    if (!rc)
        rc = ldm_inception_forward(m->inception, img, n, s, s, pool, NULL);
    if (!rc)
        rc = ldm_inception_logits_unbiased(m->inception, pool, n, logits);
    if (!rc)
        rc = ldm_fid_acc_add(acc, pool, n);
    free(img);
    free(pool);
    return rc;
}

/* PNGs of the first save_images images of this batch. */
static int save_batch(struct ev_models *m, const char *dir, const uint8_t *px, int64_t first,
                      int64_t n)
{
    int rc = 0;
    for (int64_t k = 0; !rc && k < n && first + k < m->cfg->save_images; k++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%05lld.png", dir, (long long)(first + k));
        rc = ev_write_png(p, px + (size_t)(k * m->side * m->side * 3), m->side, m->side);
    }
    return rc;
}

struct run {
    char dir[4200];     /* OUT/eval/step-N/ */
    uint8_t *px, *grid; /* one batch; the grid's first images */
    int64_t ngrid;
    float *logits;
    struct ldm_fid_acc *acc;
};

static int run_batches(struct ev_models *m, struct ldm_unet *u, struct run *r,
                       const volatile int *stop)
{
    const struct evald_cfg *c = m->cfg;
    size_t img = (size_t)(m->side * m->side * 3);
    int rc = 0;
    for (int64_t first = 0; !rc && first < c->num_images; first += c->batch_size) {
        if (stop && *stop)
            return ldm_fail(LDM_ETIMEOUT, "stopped");
        int64_t n = c->num_images - first < c->batch_size ? c->num_images - first : c->batch_size;
        rc = ev_sample(m, u, first, n, r->px);
        if (!rc)
            rc = save_batch(m, r->dir, r->px, first, n);
        for (int64_t k = 0; !rc && k < n && r->ngrid < 16; k++, r->ngrid++)
            memcpy(r->grid + (size_t)r->ngrid * img, r->px + (size_t)k * img, img);
        if (!rc && m->inception)
            rc = score_batch(m, r->px, n, r->acc, r->logits + first * 1008);
    }
    return rc;
}

/* FID and IS of the run's images into res. */
static int add_scores(struct ev_models *m, struct run *r, json_t *res)
{
    if (!m->inception)
        return 0;
    struct ldm_fid_stats s = {0};
    double fid, ism, iss;
    int64_t N = m->cfg->num_images, *perm = malloc((size_t)N * sizeof *perm);
    int rc = perm ? ldm_inception_permutation(N, LDM_ISC_SEED, perm)
                  : ldm_fail(LDM_ENOMEM, "permutation");
    if (!rc) /* torch-fidelity's Inception Score: unbiased logits, numpy's shuffle */
        rc = ldm_inception_score_perm(r->logits, N, 1008, (int)m->cfg->is_splits, perm, &ism,
                                      &iss);
    free(perm);
    if (!rc) {
        json_object_set_new(res, "is_mean", json_real(ism));
        json_object_set_new(res, "is_std", json_real(iss));
    }
    if (!rc && m->ref.dim) {
        rc = ldm_fid_acc_stats(r->acc, &s);
        if (!rc)
            rc = ldm_fid_distance(&s, &m->ref, &fid);
        if (!rc)
            json_object_set_new(res, "fid", json_real(fid));
        ldm_fid_stats_free(&s);
    }
    return rc;
}

static void run_free(struct run *r)
{
    free(r->px);
    free(r->grid);
    free(r->logits);
    ldm_fid_acc_free(&r->acc);
}

static int run_open(struct ev_models *m, const char *out, int64_t step, struct run *r)
{
    size_t img = (size_t)(m->side * m->side * 3);
    const struct evald_cfg *c = m->cfg;
    snprintf(r->dir, sizeof r->dir, "%s/eval", out);
    if (mkdir(out, 0777) && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", out);
    if (mkdir(r->dir, 0777) && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", r->dir);
    snprintf(r->dir, sizeof r->dir, "%s/eval/step-%lld", out, (long long)step);
    if (mkdir(r->dir, 0777) && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", r->dir);
    r->px = malloc((size_t)c->batch_size * img);
    r->grid = malloc(16 * img);
    r->logits = malloc((size_t)c->num_images * 1008 * sizeof(float));
    int rc = r->px && r->grid && r->logits ? 0 : ldm_fail(LDM_ENOMEM, "evaluation buffers");
    if (!rc && m->inception)
        rc = ldm_fid_acc_new(&r->acc, 2048);
    return rc;
}

int ev_evaluate(struct ev_models *m, const char *dir, int64_t step, const volatile int *stop,
                json_t **result)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct ldm_unet *u = NULL;
    struct run r = {0};
    int ema = 0;
    *result = json_pack("{s:I,s:s}", "step", (json_int_t)step, "checkpoint", dir);
    m->pu = NULL; /* a new UNet: prepare it again */
    int rc = *result ? load_unet(m, dir, &u, &ema) : ldm_fail(LDM_ENOMEM, "result");
    if (rc == LDM_EFORMAT) { /* the checkpoint, not evald: report it and move on */
        json_object_set_new(*result, "error", json_string(ldm_errmsg()));
        ldm_unet_free(&u);
        return 0;
    }
    if (!rc) rc = run_open(m, m->cfg->output, step, &r);
    if (!rc) rc = run_batches(m, u, &r, stop);
    char grid[4400];
    snprintf(grid, sizeof grid, "%s/eval/grid-step-%lld.png", m->cfg->output, (long long)step);
    if (!rc) rc = ev_write_grid(grid, r.grid, r.ngrid, m->side);
    if (!rc) rc = add_scores(m, &r, *result);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!rc) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        json_object_set_new(*result, "ema", json_boolean(ema));
        json_object_set_new(*result, "images", json_integer(m->cfg->num_images));
        json_object_set_new(*result, "grid", json_string(grid));
        json_object_set_new(*result, "seconds", json_real(sec));
        json_object_set_new(*result, "guidance_scale", json_real(m->cfg->guidance_scale));
        json_object_set_new(*result, "steps", json_integer(m->cfg->steps));
    }
    run_free(&r);
    ldm_unet_free(&u);
    if (rc) {
        json_decref(*result);
        *result = NULL;
    }
    return rc;
}
