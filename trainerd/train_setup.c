/* train_setup.c — the trainer's model, schedule, cache and optimiser state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "models/weights.h"
#include "trainerd/train_int.h"

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* The scheduler config: the objective's prediction type and the noise schedule. */
static int setup_schedule(struct td_trainer *t)
{
    char p[4200];
    struct ldm_sched_config sc;
    ldm_sched_config_default(&sc);
    const char *cls = "";
    json_t *obj = NULL;
    snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", t->model);
    int rc = exists(p) ? ldm_json_load_object(p, &obj) : 0;
    if (!rc && obj) {
        ldm_json_get_str(obj, "_class_name", &cls, "");
        int flow = !strncmp(cls, "FlowMatch", 9);
        rc = flow ? 0 : ldm_sched_config_from_json(&sc, obj, p);
        if (flow)
            t->obj.pred = TD_PRED_FLOW;
        else
            t->obj.pred = sc.prediction_type == LDM_PRED_V ? TD_PRED_V : TD_PRED_EPSILON;
        if (!rc && !flow && sc.prediction_type == LDM_PRED_SAMPLE)
            rc = ldm_fail(LDM_EUNSUPPORTED, "%s: prediction_type sample is not trained here", p);
    }
    json_decref(obj);
    if (!rc && t->cfg.prediction_type[0])
        rc = td_pred_parse(t->cfg.prediction_type, "prediction_type", &t->obj.pred);
    if (!rc)
        rc = td_tsample_parse(t->cfg.timestep_sampling, "timestep_sampling", &t->obj.tsample);
    if (!rc && t->obj.pred != TD_PRED_FLOW)
        rc = ldm_sched_init(&t->sched, &sc);
    if (!rc && t->cfg.snr_gamma > 0 && t->obj.pred == TD_PRED_FLOW)
        rc = ldm_fail(LDM_ECONFIG, "snr_gamma: min-SNR weighting needs epsilon or v_prediction");
    t->obj.sched = t->obj.pred == TD_PRED_FLOW ? NULL : &t->sched;
    t->obj.T = sc.num_train_timesteps;
    t->obj.snr_gamma = t->cfg.snr_gamma;
    t->obj.noise_offset = t->cfg.noise_offset;
    t->obj.logit_mean = t->cfg.logit_mean;
    t->obj.logit_std = t->cfg.logit_std;
    return rc;
}

int td_setup_model(struct td_trainer *t)
{
    char p[4200];
    struct ldm_unet_config uc;
    snprintf(p, sizeof p, "%s/unet/config.json", t->model);
    t->src_config = strdup(p);
    if (!t->src_config)
        return ldm_fail(LDM_ENOMEM, "model");
    int rc = ldm_unet_config_load(&uc, p);
    if (rc == LDM_ENOTFOUND || rc == LDM_EIO || rc == LDM_EFORMAT)
        rc = ldm_fail(LDM_ECONFIG, "model: '%s' is not a diffusers folder with unet/: %s",
                      t->model, ldm_errmsg());
    if (!rc)
        rc = ldm_ctx_open(&t->ctx, t->cfg.device, (int)t->cfg.threads);
    if (!rc)
        rc = ldm_unet_create(&t->u, t->ctx, &uc);
    if (!rc)
        rc = ldm_unet_set_checkpointing(t->u, t->cfg.gradient_checkpointing);
    if (!rc)
        rc = ldm_unet_set_precision(t->u, t->cdt);
    if (!rc && t->cdt != LDM_DT_F32 && t->ctx->device == LDM_DEV_CPU)
        LOG_WARN("mixed precision on the CPU is emulated (slower than mixed_precision=no)",
                 "mixed_precision=%s", t->cfg.mixed_precision);
    if (!rc) {
        snprintf(p, sizeof p, "%s/unet", t->model);
        rc = ldm_unet_load_dir(t->u, p);
    }
    if (!rc) {
        ldm_unet_arenas(t->u, &t->pa, &t->ga);
        rc = setup_schedule(t);
    }
    return rc;
}

/* Compare one part's hashes in the cache identity with the model folder's files. */
static int check_part(const struct td_trainer *t, const json_t *id, const char *part)
{
    const json_t *e = json_object_get(id, part);
    if (!e)
        return 0;
    const char *want[2] = {json_string_value(json_object_get(e, "config")),
                           json_string_value(json_object_get(e, "weights"))};
    for (int i = 0; i < 2; i++) { /* 0: the part's config.json, 1: its weights */
        char p[4200], h[17];
        if (i)
            snprintf(p, sizeof p, "%s/%s", t->model, part);
        else
            snprintf(p, sizeof p, "%s/%s/config.json", t->model, part);
        int rc = i ? ldm_weights_hash(p, h) : ldm_file_fnv1a64(p, h);
        if (rc)
            return ldm_fail(LDM_ECONFIG, "check_identity: %s (set check_identity=false to "
                            "train without checking the cache's encoders)", ldm_errmsg());
        if (!want[i] || strcmp(want[i], h))
            return ldm_fail(LDM_ECONFIG, "cache %s was encoded with another %s (%s hash %s, "
                            "the model's %s is %s)", t->cache, part, i ? "weights" : "config",
                            want[i] ? want[i] : "missing", p, h);
    }
    return 0;
}

/* The cache's identity: encoders checked, latent scaling and shift read. */
static int read_identity(struct td_trainer *t)
{
    void *buf = NULL;
    size_t len = 0;
    json_t *id = NULL;
    int rc = ldm_store_meta_get(t->store, LDM_META_IDENTITY, &buf, &len);
    for (int64_t w = 0; rc == LDM_ENOTFOUND && w < t->cfg.cache_wait; w += 200) {
        usleep(200000); /* encoderd writes it just after creating the cache */
        rc = ldm_store_meta_get(t->store, LDM_META_IDENTITY, &buf, &len);
    }
    if (rc == LDM_ENOTFOUND)
        rc = ldm_fail(LDM_ECONFIG, "cache %s has no encoder identity (not written by encoderd?)",
                      t->cache);
    if (!rc)
        rc = ldm_json_parse_object(buf, len, "cache identity", &id);
    free(buf);
    double scale = 0, shift = 0;
    if (!rc)
        rc = ldm_json_get_real(id, "scaling_factor", &scale, 0.18215);
    if (!rc)
        rc = ldm_json_get_real(id, "shift_factor", &shift, 0);
    t->scale = (float)scale, t->shift = (float)shift;
    if (!rc && t->cfg.check_identity) {
        rc = check_part(t, id, "vae");
        if (!rc)
            rc = check_part(t, id, "text_encoder");
        if (!rc)
            rc = check_part(t, id, "text_encoder_2");
    }
    json_decref(id);
    return rc;
}

int td_setup_cache(struct td_trainer *t)
{
    struct ldm_store_opts so = {.readonly = 1};
    int rc = ldm_store_open(t->cache, &so, &t->store);
    for (int64_t waited = 0; rc == LDM_ENOTFOUND && waited < t->cfg.cache_wait; waited += 200) {
        if (!waited) /* encoderd creates it when it starts: wait a while */
            LOG_INFO("waiting for the cache", "cache=%s cache_wait_ms=%lld", t->cache,
                     (long long)t->cfg.cache_wait);
        usleep(200000);
        rc = ldm_store_open(t->cache, &so, &t->store);
    }
    if (rc == LDM_ENOTFOUND)
        return ldm_fail(LDM_ECONFIG, "cache: no cache at %s after %lld ms (start encoderd "
                        "first)", t->cache, (long long)t->cfg.cache_wait);
    if (!rc)
        rc = read_identity(t);
    size_t len = 0;
    if (!rc) {
        int e = ldm_store_meta_get(t->store, LDM_META_EMPTY_CAPTION, &t->empty_buf, &len);
        if (!e)
            rc = ldm_record_parse(t->empty_buf, len, "empty caption", &t->empty);
        t->have_empty = !e && !rc;
        if (e && e != LDM_ENOTFOUND)
            rc = e;
    }
    if (!rc && t->cfg.caption_dropout > 0 && !t->have_empty)
        rc = ldm_fail(LDM_ECONFIG, "caption_dropout: the cache %s holds no empty caption "
                      "embedding", t->cache);
    return rc;
}

/* A zeroed block of `bytes` in the context's memory, as arena *a. */
static int alloc_like(struct td_trainer *t, struct ldm_arena *a, size_t bytes, const char *what)
{
    a->ctx = t->ctx;
    a->bytes = bytes;
    int rc = ldm_ctx_alloc(t->ctx, bytes ? bytes : 1, &a->base);
    if (rc)
        return ldm_fail(rc, "%s: %zu bytes: %s", what, bytes, ldm_errmsg());
    return 0;
}

/* Every parameter's place in the arena; with 8-bit AdamW which ones get block-quantised
 * moments (TD_ADAM8_MIN elements or more) and the offsets of their codes and absmax, the
 * others a slot of F32 moments (zero.h). Plain AdamW's moments are laid out as the arena. */
static int plan_tensors(struct td_trainer *t)
{
    size_t n = ldm_unet_nparams(t->u);
    t->tens = calloc(n ? n : 1, sizeof *t->tens);
    if (!t->tens)
        return ldm_fail(LDM_ENOMEM, "optimiser state plan");
    t->ntens = n;
    t->m_total = t->q_total = t->a_total = 0;
    for (size_t i = 0; i < n; i++) {
        struct ldm_tensor p, g;
        ldm_unet_param(t->u, i, &p, &g);
        size_t ne = ldm_tensor_numel(&p);
        size_t off = (size_t)((char *)p.data - (char *)t->pa->base) / sizeof(float);
        struct td_zero_tensor *z = &t->tens[i];
        *z = (struct td_zero_tensor){.off = off, .n = ne, .m_off = off};
        if (t->optimizer != TD_OPT_ADAMW8)
            continue;
        if (ne < TD_ADAM8_MIN) {
            z->m_off = t->m_total;
            t->m_total += (ne + TD_ZERO_ALIGN - 1) / TD_ZERO_ALIGN * TD_ZERO_ALIGN;
            continue;
        }
        z->is8 = 1, z->m_off = 0;
        z->q_off = t->q_total, z->a_off = t->a_total;
        t->q_total += (ne + 255) / 256 * 256;
        t->a_total += (ne + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
    }
    if (t->optimizer != TD_OPT_ADAMW8)
        t->m_total = t->pa->bytes / sizeof(float);
    return 0;
}

/* zero_stage: 0 (every rank keeps all the state) or 2 (each its shard). */
int td_check_zero(struct td_trainer *t)
{
    t->zero = (int)t->cfg.zero_stage;
    if (t->zero == 0 || t->zero == 2)
        return 0;
    return ldm_fail(LDM_ECONFIG, "zero_stage: %d is not 0 or 2 (stage 2 shards the optimiser "
                    "state and reduce-scatters the gradients; stage 1 would only add traffic "
                    "here, the gradient arena being whole on every rank)", t->zero);
}

/* The cuts and this rank's window of the state (zero.h). */
static int plan_window(struct td_trainer *t)
{
    int shard = t->zero && t->world > 1;
    int world = shard ? t->world : 1, k = shard ? t->rank : 0;
    size_t nt = t->optimizer == TD_OPT_ADAMW8 ? t->ntens : 0; /* AdamW: the arena's layout */
    int rc = td_zero_plan_make(&t->plan, t->tens, nt, t->pa->bytes / sizeof(float),
                               t->m_total, t->q_total, t->a_total, world);
    if (rc)
        return rc;
    const struct td_zero_plan *p = &t->plan;
    t->win = (struct td_window){p->el[k], p->el[k + 1], p->m[k], p->m[k + 1], p->q[k],
                                p->q[k + 1], p->a[k], p->a[k + 1]};
    if (!shard)
        return 0;
    t->bucket_cut = calloc((size_t)t->world + 1, sizeof *t->bucket_cut);
    t->flags_host = calloc(2 * (size_t)t->world, sizeof *t->flags_host);
    if (!t->bucket_cut || !t->flags_host)
        return ldm_fail(LDM_ENOMEM, "optimiser shards");
    return ldm_ctx_alloc(t->ctx, 2 * (size_t)t->world * sizeof(float), (void **)&t->flags);
}

int td_setup_optim(struct td_trainer *t)
{
    int rc = plan_tensors(t);
    if (!rc)
        rc = plan_window(t);
    const struct td_window *w = &t->win;
    size_t mb = (w->mhi - w->mlo) * sizeof(float);
    if (!rc)
        rc = alloc_like(t, &t->m, mb, "optimizer moments");
    if (!rc)
        rc = alloc_like(t, &t->v, mb, "optimizer moments");
    if (!rc && t->optimizer == TD_OPT_ADAMW8) {
        size_t qb = w->qhi - w->qlo, ab = (w->ahi - w->alo) * sizeof(float);
        rc = alloc_like(t, &t->q_m, qb, "8-bit moments");
        if (!rc)
            rc = alloc_like(t, &t->q_v, qb, "8-bit moments");
        if (!rc)
            rc = alloc_like(t, &t->a_m, ab, "8-bit absmax");
        if (!rc)
            rc = alloc_like(t, &t->a_v, ab, "8-bit absmax");
    }
    size_t pb = t->pa->bytes;
    if (!rc && t->cfg.use_ema) {
        rc = alloc_like(t, &t->ema, pb, "EMA weights");
        if (!rc)
            rc = ldm_ctx_copy(t->ctx, t->ema.base, t->pa->base, pb);
    }
    return rc;
}

void td_free_optim(struct td_trainer *t)
{
    struct ldm_arena *a[] = {&t->m, &t->v, &t->ema, &t->q_m, &t->q_v, &t->a_m, &t->a_v};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        if (a[i]->base) {
            ldm_ctx_free(t->ctx, a[i]->base);
            a[i]->base = NULL;
        }
    if (t->flags)
        ldm_ctx_free(t->ctx, t->flags);
    t->flags = NULL;
    free(t->tens);
    t->tens = NULL;
    free(t->bucket_cut);
    t->bucket_cut = NULL;
    free(t->flags_host);
    t->flags_host = NULL;
    td_zero_plan_free(&t->plan);
}
