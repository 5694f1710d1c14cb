/* train.c — opening a trainer and its optimiser step. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "trainerd/ckpt.h"
#include "trainerd/comm.h"
#include "trainerd/train_int.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Names in the config -> enums. */
static int parse_names(struct td_trainer *t)
{
    const struct trainerd_cfg *c = &t->cfg;
    if (!strcmp(c->optimizer, "adamw"))
        t->optimizer = TD_OPT_ADAMW;
    else if (!strcmp(c->optimizer, "adamw8bit") || !strcmp(c->optimizer, "adamw_8bit"))
        t->optimizer = TD_OPT_ADAMW8;
    else
        return ldm_fail(LDM_ECONFIG, "optimizer: '%s' is not adamw or adamw8bit", c->optimizer);
    if (!strcmp(c->mixed_precision, "no"))
        t->mp = TD_MP_NO;
    else if (!strcmp(c->mixed_precision, "fp16") || !strcmp(c->mixed_precision, "bf16"))
        return ldm_fail(LDM_ECONFIG, "mixed_precision: %s needs the CUDA backend's reduced-"
                        "precision activations, not built yet; use no", c->mixed_precision);
    else
        return ldm_fail(LDM_ECONFIG, "mixed_precision: '%s' is not no, fp16 or bf16",
                        c->mixed_precision);
    if (!strcmp(c->save_precision, "fp32"))
        t->save_dtype = LDM_DT_F32;
    else if (!strcmp(c->save_precision, "fp16"))
        t->save_dtype = LDM_DT_F16;
    else if (!strcmp(c->save_precision, "bf16"))
        t->save_dtype = LDM_DT_BF16;
    else
        return ldm_fail(LDM_ECONFIG, "save_precision: '%s' is not fp32, fp16 or bf16",
                        c->save_precision);
    return 0;
}

static int setup_schedules(struct td_trainer *t)
{
    const struct trainerd_cfg *c = &t->cfg;
    int kind;
    int rc = ldm_lr_parse(c->lr_scheduler, &kind);
    if (rc)
        return rc;
    ldm_lr_init(&t->lr, kind, c->lr, c->lr_warmup_steps, c->max_steps);
    if (kind == LDM_LR_COSINE_WITH_RESTARTS)
        t->lr.cycles = (double)c->lr_num_cycles;
    if (kind == LDM_LR_POLYNOMIAL)
        t->lr.power = c->lr_power;
    rc = ldm_lr_check(&t->lr);
    ldm_ema_cfg_default(&t->ema_sched);
    t->ema_sched.decay = c->ema_decay;
    t->ema_sched.min_decay = c->ema_min_decay;
    t->ema_sched.update_after_step = c->ema_update_after_step;
    t->ema_sched.use_warmup = c->ema_warmup;
    t->ema_sched.inv_gamma = c->ema_inv_gamma;
    t->ema_sched.power = c->ema_power;
    if (!rc && c->use_ema)
        rc = ldm_ema_cfg_check(&t->ema_sched);
    return rc;
}

/* The checkpoint to resume from: "" none, "latest" the output's newest (none is
 * fine: a fresh start), or a folder. */
static int resume_path(const struct td_trainer *t, char *path, size_t size)
{
    const char *r = t->cfg.resume;
    int64_t step;
    if (!r[0])
        return LDM_ENOTFOUND;
    if (!strcmp(r, "latest")) {
        int rc = td_ckpt_latest(t->output, path, size, &step);
        if (rc == LDM_ENOTFOUND)
            LOG_INFO("no checkpoint to resume from: starting fresh", "output=%s", t->output);
        return rc;
    }
    snprintf(path, size, "%s", r);
    return 0;
}

static int start_feed(struct td_trainer *t, struct td_cursor cur, const char *keys, size_t klen)
{
    const struct trainerd_cfg *c = &t->cfg;
    struct td_feed_opts fo = {
        .store = t->store, .B = c->batch_size, .accum = c->grad_accum, .rank = t->rank,
        .world = t->world, .local_rank = t->local_rank, .local_world = t->local_world,
        .min_samples = c->min_samples, .depth = (int)c->prefetch, .keys = keys,
        .keys_len = klen,
        .bo = {.seed = (uint64_t)c->seed, .caption_dropout = c->caption_dropout,
               .random_flip = c->random_flip, .scale = t->scale, .shift = t->shift,
               .sdxl = ldm_unet_get_config(t->u)->text_time, .obj = &t->obj,
               .empty = t->have_empty ? &t->empty : NULL}};
    return td_feed_start(&t->feed, &fo, cur, t->serial);
}

static int open_parts(struct td_trainer *t)
{
    int rc = parse_names(t);
    if (!rc && mkdir(t->output, 0777) && errno != EEXIST)
        rc = ldm_fail_errno(LDM_ECONFIG, "output: %s: mkdir", t->output);
    if (!rc)
        rc = setup_schedules(t);
    if (!rc)
        rc = td_setup_model(t);
    if (!rc)
        rc = td_setup_cache(t);
    if (!rc)
        rc = td_setup_optim(t);
    td_ckpt_clean(t->output);
    char path[4200];
    struct td_cursor cur = {0, 0};
    char *keys = NULL;
    size_t klen = 0;
    int r = rc ? rc : resume_path(t, path, sizeof path);
    if (!rc && !r) {
        rc = td_state_load(t, path, &cur, &keys, &klen);
        if (!rc)
            LOG_INFO("resumed", "path=%s step=%lld epoch=%lld batch=%lld", path,
                     (long long)t->step, (long long)cur.epoch, (long long)cur.batch);
    } else if (!rc && r != LDM_ENOTFOUND)
        rc = r;
    if (!rc && t->world > 1 && t->step == 0)
        rc = ldm_comm_broadcast(t->comm, t->pa->base, t->pa->bytes / sizeof(float), 0);
    if (!rc)
        rc = start_feed(t, cur, keys, klen);
    free(keys);
    t->last_saved = t->step;
    return rc;
}

int td_trainer_open(struct td_trainer **out, const struct trainerd_cfg *cfg,
                    struct ldm_comm *comm, int rank, int world, int local_rank,
                    int local_world)
{
    *out = NULL;
    struct td_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return ldm_fail(LDM_ENOMEM, "trainer");
    t->cfg = *cfg;
    t->model = strdup(cfg->model);
    t->output = strdup(cfg->output);
    t->cache = strdup(cfg->cache);
    t->comm = comm;
    t->rank = rank, t->world = world, t->local_rank = local_rank, t->local_world = local_world;
    t->loss_scale = 1.0;
    t->bucket_bytes = (size_t)cfg->bucket_mb << 20;
    pthread_mutex_init(&t->mu, NULL);
    int rc = t->model && t->output && t->cache ? 0 : ldm_fail(LDM_ENOMEM, "trainer");
    if (!rc)
        rc = open_parts(t);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ldm_errmsg());
        td_trainer_close(&t);
        return ldm_fail(rc, "%s", msg);
    }
    *out = t;
    return 0;
}

static void grads_ready(void *arg, size_t from);

/* Forward, loss and backward of one micro-batch, adding into the gradients. */
static int micro_step(struct td_trainer *t, const struct td_batch *b, float *loss)
{
    int rc = 0;
    if (b->N != t->pN || b->H != t->pH || b->W != t->pW || b->L != t->pL) {
        rc = ldm_unet_prepare(t->u, b->N, b->H, b->W, b->L);
        if (rc)
            return rc;
        t->pN = b->N, t->pH = b->H, t->pW = b->W, t->pL = b->L;
    }
    int sdxl = ldm_unet_get_config(t->u)->text_time;
    struct ldm_unet_inputs in = {.sample = b->noisy, .timesteps = b->tsteps,
                                 .encoder_hidden_states = b->ehs,
                                 .text_embeds = sdxl ? b->text_embeds : NULL,
                                 .time_ids = sdxl ? b->time_ids : NULL};
    rc = ldm_unet_forward(t->u, &in, NULL);
    if (!rc)
        rc = ldm_unet_loss_weighted(t->u, b->target, b->weighted ? b->weights : NULL, loss);
    ldm_unet_set_grad_hook(t->u, t->hook_on ? grads_ready : NULL, t);
    if (!rc)
        rc = ldm_unet_backward_accumulate(t->u, (float)(t->loss_scale / (double)t->cfg.grad_accum));
    return rc;
}

/* The backward finished the gradients from byte `from` on: all-reduce them in buckets
 * of at least bucket_bytes (the rest when from is 0) while it computes the others. */
static void grads_ready(void *arg, size_t from)
{
    struct td_trainer *t = arg;
    if (t->comm_err || from >= t->sent_to || (t->sent_to - from < t->bucket_bytes && from > 0))
        return;
    if (t->nticket == sizeof t->tickets / sizeof t->tickets[0]) {
        t->comm_err = ldm_fail(LDM_ERANGE, "all-reduce: more than %zu buckets", t->nticket);
        return;
    }
    float *g = (float *)((char *)t->ga->base + from);
    t->comm_err = ldm_comm_allreduce_start(t->comm, g, (t->sent_to - from) / sizeof(float),
                                           LDM_REDUCE_AVG, &t->tickets[t->nticket++]);
    t->sent_to = from;
}

/* Wait for every bucket of this step. */
static int buckets_wait(struct td_trainer *t)
{
    int rc = t->comm_err;
    for (size_t i = 0; i < t->nticket; i++) {
        int e = ldm_comm_wait(t->comm, t->tickets[i]);
        if (!rc)
            rc = e;
    }
    t->nticket = 0;
    t->comm_err = 0;
    return rc;
}

/* Run the step's micro-batches; *wait gets the time spent waiting for data. */
static int run_micro(struct td_trainer *t, int timeout_ms, double *loss_sum, double *wait,
                     int64_t *samples)
{
    int rc = ldm_unet_zero_grad(t->u);
    for (int64_t a = 0; !rc && a < t->cfg.grad_accum; a++) {
        struct td_batch *b = NULL;
        double w0 = now_s();
        do
            rc = td_feed_next(t->feed, &b, a == 0 ? timeout_ms : 1000);
        while (rc == LDM_ETIMEOUT && a > 0);
        *wait += now_s() - w0;
        if (rc)
            return rc;
        float loss = 0;
        int last = a == t->cfg.grad_accum - 1 && t->world > 1;
        t->sent_to = t->ga->bytes;
        t->hook_on = last;
        rc = micro_step(t, b, &loss);
        if (last) {
            int e = buckets_wait(t);
            rc = rc ? rc : e;
        }
        *loss_sum += loss;
        *samples += b->N;
        td_feed_release(t->feed, b, a == t->cfg.grad_accum - 1);
    }
    t->serial++;
    return rc;
}

/* Average across ranks, unscale, clip: the global norm into *norm. */
static int reduce_and_clip(struct td_trainer *t, float *norm)
{
    struct ldm_tensor g;
    int rc = ldm_arena_flat(t->ga, LDM_DT_F32, &g); /* already averaged across ranks */
    if (!rc && t->loss_scale != 1.0)
        rc = ldm_add_forward(t->ctx, &g, (float)(1.0 / t->loss_scale), &g, 0.0f, NULL);
    if (!rc)
        rc = ldm_clip_grad_norm(t->ctx, &g, 1, (float)t->cfg.max_grad_norm, norm);
    return rc;
}

/* A descriptor of n elements of `dtype` at byte offset off of arena a. */
static struct ldm_tensor at(const struct ldm_arena *a, size_t off, int dtype, size_t n)
{
    int64_t shape[1] = {(int64_t)n};
    return ldm_tensor_view((char *)a->base + off, dtype, 1, shape);
}

/* 8-bit AdamW over every parameter (F32 moments for the small ones). */
static int adamw8_all(struct td_trainer *t, const struct ldm_adamw_opts *o)
{
    int rc = 0;
    size_t n = ldm_unet_nparams(t->u);
    for (size_t i = 0; !rc && i < n; i++) {
        struct ldm_tensor p, g;
        ldm_unet_param(t->u, i, &p, &g);
        size_t ne = ldm_tensor_numel(&p);
        size_t off = (size_t)((char *)p.data - (char *)t->pa->base);
        struct ldm_tensor pf = at(t->pa, off, LDM_DT_F32, ne), gf = at(t->ga, off, LDM_DT_F32, ne);
        if (!t->q8[i].is8) {
            struct ldm_tensor m = at(&t->m, off, LDM_DT_F32, ne), v = at(&t->v, off, LDM_DT_F32, ne);
            rc = ldm_adamw_step(t->ctx, &pf, &gf, &m, &v, o);
            continue;
        }
        size_t nb = (ne + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
        struct ldm_tensor qm = at(&t->q_m, t->q8[i].q_off, LDM_DT_U8, ne);
        struct ldm_tensor qv = at(&t->q_v, t->q8[i].q_off, LDM_DT_U8, ne);
        struct ldm_tensor am = at(&t->a_m, t->q8[i].a_off * 4, LDM_DT_F32, nb);
        struct ldm_tensor av = at(&t->a_v, t->q8[i].a_off * 4, LDM_DT_F32, nb);
        rc = ldm_adamw8_step(t->ctx, &pf, &gf, &qm, &qv, &am, &av, o);
    }
    return rc;
}

/* The optimiser and EMA updates of step t->step + 1; the lr used into *lr. */
static int update(struct td_trainer *t, double *lr)
{
    const struct trainerd_cfg *c = &t->cfg;
    *lr = ldm_lr_at(&t->lr, t->step + 1);
    struct ldm_adamw_opts o = {.lr = *lr, .beta1 = c->adam_beta1, .beta2 = c->adam_beta2,
                               .eps = c->adam_eps, .weight_decay = c->weight_decay,
                               .step = t->step + 1};
    int rc;
    if (t->optimizer == TD_OPT_ADAMW8) {
        rc = adamw8_all(t, &o);
    } else {
        struct ldm_tensor p, g, m, v;
        rc = ldm_arena_flat(t->pa, LDM_DT_F32, &p);
        if (!rc) rc = ldm_arena_flat(t->ga, LDM_DT_F32, &g);
        if (!rc) rc = ldm_arena_flat(&t->m, LDM_DT_F32, &m);
        if (!rc) rc = ldm_arena_flat(&t->v, LDM_DT_F32, &v);
        if (!rc) rc = ldm_adamw_step(t->ctx, &p, &g, &m, &v, &o);
    }
    if (!rc && c->use_ema) {
        struct ldm_tensor e, p;
        double decay = ldm_ema_decay_at(&t->ema_sched, t->step + 1);
        rc = ldm_arena_flat(&t->ema, LDM_DT_F32, &e);
        if (!rc) rc = ldm_arena_flat(t->pa, LDM_DT_F32, &p);
        if (!rc) rc = ldm_ema_update(t->ctx, &e, &p, decay);
    }
    return rc;
}

/* A step whose loss or gradients are not finite: counted, the loss scale backs off. */
static int bad_step(struct td_trainer *t, double loss, float norm)
{
    pthread_mutex_lock(&t->mu);
    t->bad_total++;
    t->bad_in_row++;
    t->good_run = 0;
    if (t->mp == TD_MP_FP16)
        t->loss_scale = t->loss_scale > 1.0 ? t->loss_scale / 2 : 1.0;
    int64_t row = t->bad_in_row;
    pthread_mutex_unlock(&t->mu);
    LOG_WARN("step skipped: not finite", "step=%lld loss=%g grad_norm=%g in_a_row=%lld",
             (long long)t->step + 1, loss, (double)norm, (long long)row);
    if (row >= t->cfg.max_bad_steps)
        return ldm_fail(LDM_ERANGE, "%lld steps in a row had a non-finite loss or gradient "
                        "(max_bad_steps %lld); last loss %g, gradient norm %g: lower lr or "
                        "check the data", (long long)row, (long long)t->cfg.max_bad_steps,
                        loss, (double)norm);
    return 0;
}

int td_trainer_step(struct td_trainer *t, int timeout_ms, struct td_step_report *rep)
{
    double t0 = now_s(), loss = 0, wait = 0;
    memset(rep, 0, sizeof *rep);
    int rc = run_micro(t, timeout_ms, &loss, &wait, &rep->samples);
    if (rc)
        return rc;
    loss /= (double)t->cfg.grad_accum;
    float norm = 0;
    rc = reduce_and_clip(t, &norm);
    if (rc)
        return rc;
    rep->grad_norm = norm;
    rep->loss = loss;
    if (!isfinite(loss) || !isfinite(norm)) {
        rep->skipped = 1;
        rc = bad_step(t, loss, norm);
    } else {
        rc = update(t, &rep->lr);
        pthread_mutex_lock(&t->mu);
        t->step++;
        t->bad_in_row = 0;
        if (t->mp == TD_MP_FP16 && ++t->good_run >= 2000)
            t->loss_scale *= 2, t->good_run = 0;
        pthread_mutex_unlock(&t->mu);
    }
    rep->step = t->step;
    rep->data_wait = wait;
    rep->seconds = now_s() - t0;
    return rc;
}

int td_trainer_save(struct td_trainer *t, char *path, size_t size)
{
    if (t->rank != 0) {
        t->last_saved = t->step;
        return 0;
    }
    char tmp[4200];
    struct td_cursor cur;
    char *keys = NULL;
    size_t klen = 0;
    int rc = td_feed_cursor(t->feed, &cur, &keys, &klen);
    if (!rc)
        rc = td_ckpt_begin(t->output, t->step, tmp, sizeof tmp);
    if (!rc)
        rc = td_state_save(t, tmp, cur, keys, klen);
    free(keys);
    if (!rc)
        rc = td_ckpt_commit(t->output, t->step, tmp, path, size);
    if (!rc)
        rc = td_ckpt_prune(t->output, t->cfg.keep_last);
    if (!rc)
        t->last_saved = t->step;
    return rc;
}

int64_t td_trainer_step_count(const struct td_trainer *t)
{
    return t->step;
}

int64_t td_trainer_last_saved(const struct td_trainer *t)
{
    return t->last_saved;
}

void td_trainer_info(struct td_trainer *t, struct td_trainer_info *i)
{
    memset(i, 0, sizeof *i);
    struct td_feed_status fs = {0};
    if (t->feed)
        td_feed_status(t->feed, &fs);
    pthread_mutex_lock(&t->mu);
    i->step = t->step, i->max_steps = t->cfg.max_steps, i->bad_steps = t->bad_total;
    i->bad_in_row = t->bad_in_row, i->loss_scale = t->loss_scale, i->ema = t->cfg.use_ema;
    pthread_mutex_unlock(&t->mu);
    i->epoch = fs.epoch, i->waiting = fs.waiting, i->samples = fs.samples;
    i->skipped_batches = (int64_t)fs.skipped;
    if (t->u) {
        struct ldm_unet_mem m;
        ldm_unet_memory(t->u, &m);
        i->params = ldm_unet_nparams(t->u);
        i->mem_params = m.params * 2;
        i->mem_acts = m.acts + m.act_grads + m.workspace;
        i->mem_optim = t->m.bytes + t->v.bytes + t->ema.bytes + t->q_m.bytes * 2 +
                       t->a_m.bytes * 2;
    }
}

void td_trainer_close(struct td_trainer **pt)
{
    struct td_trainer *t = *pt;
    if (!t)
        return;
    td_feed_stop(&t->feed);
    if (t->ctx)
        td_free_optim(t);
    ldm_unet_free(&t->u);
    ldm_ctx_close(&t->ctx);
    ldm_sched_free(&t->sched);
    ldm_store_close(&t->store);
    free(t->empty_buf);
    free(t->model);
    free(t->output);
    free(t->cache);
    free(t->src_config);
    pthread_mutex_destroy(&t->mu);
    free(t);
    *pt = NULL;
}
