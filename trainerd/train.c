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
        t->mp = TD_MP_NO, t->cdt = LDM_DT_F32;
    else if (!strcmp(c->mixed_precision, "bf16"))
        t->mp = TD_MP_BF16, t->cdt = LDM_DT_BF16;
    else if (!strcmp(c->mixed_precision, "fp16")) /* a resume restores the scale reached */
        t->mp = TD_MP_FP16, t->cdt = LDM_DT_F16, t->loss_scale = c->loss_scale;
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
    if (!rc)
        rc = td_check_zero(t);
    if (!rc && mkdir(t->output, 0777) && errno != EEXIST)
        rc = ldm_fail_errno(LDM_ECONFIG, "output: %s: mkdir", t->output);
    if (!rc)
        rc = setup_schedules(t);
    if (!rc)
        rc = td_setup_model(t);
    if (!rc && t->comm)
        rc = ldm_comm_attach(t->comm, t->ctx); /* NCCL: its own stream beside the compute */
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

/* Start averaging the gradients at bytes from .. to − 1 across ranks: all-reduce, or
 * with ZeRO reduce-scatter at the shard cuts (each rank gets its shard's part). */
static int send_bucket(struct td_trainer *t, size_t from, size_t to, uint64_t *ticket)
{
    float *g = (float *)((char *)t->ga->base + from);
    size_t a = from / sizeof(float), b = to / sizeof(float);
    if (!t->bucket_cut)
        return ldm_comm_allreduce_start(t->comm, g, b - a, LDM_REDUCE_AVG, ticket);
    for (int k = 0; k <= t->world; k++) {
        size_t x = t->plan.el[k];
        t->bucket_cut[k] = (x < a ? a : x > b ? b : x) - a;
    }
    return ldm_comm_reduce_scatter_at_start(t->comm, g, b - a, t->bucket_cut, LDM_REDUCE_AVG,
                                            ticket);
}

/* The backward finished the gradients from byte `from` on: average them in buckets
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
    t->comm_err = send_bucket(t, from, t->sent_to, &t->tickets[t->nticket++]);
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

/* A descriptor of n elements of `dtype` at byte offset off of arena a. */
static struct ldm_tensor at(const struct ldm_arena *a, size_t off, int dtype, size_t n)
{
    int64_t shape[1] = {(int64_t)n};
    return ldm_tensor_view((char *)a->base + off, dtype, 1, shape);
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

/* Every rank's shard norm and requests (2 floats each, all-gathered): the global
 * norm (the shards' summed in double, in rank order: the same on every rank) into
 * *norm, the requests of any rank into *req. */
static int gather_norms(struct td_trainer *t, float mine, float *norm, int *req)
{
    size_t w = (size_t)t->world;
    float me[2] = {mine, (float)t->requests};
    int rc = ldm_ctx_upload(t->ctx, t->flags + 2 * (size_t)t->rank, me, sizeof me);
    if (!rc)
        rc = ldm_comm_all_gather(t->comm, t->flags, 2 * w);
    if (!rc)
        rc = ldm_ctx_download(t->ctx, t->flags_host, t->flags, 2 * w * sizeof(float));
    double sq = 0;
    *req = 0;
    for (size_t k = 0; !rc && k < w; k++) {
        sq += (double)t->flags_host[2 * k] * t->flags_host[2 * k];
        *req |= (int)t->flags_host[2 * k + 1];
    }
    *norm = (float)sqrt(sq);
    t->requests = 0;
    return rc;
}

/* ZeRO: unscale this rank's shard of the gradients (reduce-scattered: averaged),
 * take the global norm from every shard's, clip the shard as ldm_clip_grad_norm
 * clips a whole arena. A rank whose loss is not finite sends a NaN norm, so that
 * every rank skips the step (they must all take the all-gather, or none). */
static int shard_clip(struct td_trainer *t, double loss, float *norm, int *req)
{
    size_t n = t->win.hi - t->win.lo;
    struct ldm_tensor g = at(t->ga, t->win.lo * sizeof(float), LDM_DT_F32, n);
    float mine = 0, mx = (float)t->cfg.max_grad_norm;
    int rc = 0;
    if (n && t->loss_scale != 1.0)
        rc = ldm_add_forward(t->ctx, &g, (float)(1.0 / t->loss_scale), &g, 0.0f, NULL);
    if (!rc && n)
        rc = ldm_clip_grad_norm(t->ctx, &g, 1, 0.0f, &mine);
    if (!rc)
        rc = gather_norms(t, isfinite(loss) ? mine : NAN, norm, req);
    if (rc || !n || !isfinite(*norm) || !(mx > 0.0f) || isinf(mx))
        return rc;
    float coef = mx / (*norm + 1e-6f);
    return coef < 1.0f ? ldm_add_forward(t->ctx, &g, coef, &g, 0.0f, NULL) : 0;
}

/* 8-bit AdamW over this rank's window (F32 moments, in slots, for the small tensors). */
static int adamw8_window(struct td_trainer *t, const struct ldm_adamw_opts *o)
{
    const struct td_window *w = &t->win;
    int rc = 0;
    for (size_t i = 0; !rc && i < t->ntens; i++) {
        const struct td_zero_tensor *z = &t->tens[i];
        size_t b = z->off > w->lo ? z->off : w->lo;
        size_t e = z->off + z->n < w->hi ? z->off + z->n : w->hi;
        if (b >= e)
            continue;
        size_t ne = e - b, el = b - z->off; /* el: a block start of an 8-bit tensor */
        struct ldm_tensor pf = at(t->pa, b * 4, LDM_DT_F32, ne);
        struct ldm_tensor gf = at(t->ga, b * 4, LDM_DT_F32, ne);
        if (!z->is8) { /* its slot, from the element b */
            size_t mo = (z->m_off + el - w->mlo) * 4;
            struct ldm_tensor m = at(&t->m, mo, LDM_DT_F32, ne);
            struct ldm_tensor v = at(&t->v, mo, LDM_DT_F32, ne);
            rc = ldm_adamw_step(t->ctx, &pf, &gf, &m, &v, o);
            continue;
        }
        size_t nb = (ne + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
        size_t q = z->q_off + el - w->qlo, a = (z->a_off + el / LDM_ADAM8_BLOCK - w->alo) * 4;
        struct ldm_tensor qm = at(&t->q_m, q, LDM_DT_U8, ne), qv = at(&t->q_v, q, LDM_DT_U8, ne);
        struct ldm_tensor am = at(&t->a_m, a, LDM_DT_F32, nb), av = at(&t->a_v, a, LDM_DT_F32, nb);
        rc = ldm_adamw8_step(t->ctx, &pf, &gf, &qm, &qv, &am, &av, o);
    }
    return rc;
}

/* The optimiser update of this rank's window; with ZeRO the others' parameters
 * are then gathered from them. */
static int update_params(struct td_trainer *t, const struct ldm_adamw_opts *o)
{
    const struct td_window *w = &t->win;
    size_t n = w->hi - w->lo;
    int rc = 0;
    if (t->optimizer == TD_OPT_ADAMW8) {
        rc = adamw8_window(t, o);
    } else if (n) {
        struct ldm_tensor p = at(t->pa, w->lo * 4, LDM_DT_F32, n);
        struct ldm_tensor g = at(t->ga, w->lo * 4, LDM_DT_F32, n);
        struct ldm_tensor m = at(&t->m, 0, LDM_DT_F32, n), v = at(&t->v, 0, LDM_DT_F32, n);
        rc = ldm_adamw_step(t->ctx, &p, &g, &m, &v, o);
    }
    if (!rc && t->bucket_cut)
        rc = ldm_comm_all_gather_at(t->comm, t->pa->base, t->pa->bytes / sizeof(float),
                                    t->plan.el);
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
    int rc = update_params(t, &o);
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
    rc = t->bucket_cut ? shard_clip(t, loss, &norm, &rep->requests) : reduce_and_clip(t, &norm);
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

void td_trainer_request(struct td_trainer *t, int req)
{
    t->requests |= req;
}

int td_trainer_saves_together(const struct td_trainer *t)
{
    return t->bucket_cut != NULL;
}

int td_trainer_save(struct td_trainer *t, char *path, size_t size)
{
    struct td_state_host h;
    int rc = td_state_collect(t, &h); /* ZeRO: every rank hands over its shard */
    if (t->rank != 0) {
        td_state_host_free(&h);
        if (!rc)
            t->last_saved = t->step;
        return rc;
    }
    char tmp[4200];
    struct td_cursor cur;
    char *keys = NULL;
    size_t klen = 0;
    if (!rc)
        rc = td_feed_cursor(t->feed, &cur, &keys, &klen);
    if (!rc)
        rc = td_ckpt_begin(t->output, t->step, tmp, sizeof tmp);
    if (!rc)
        rc = td_state_save(t, tmp, cur, keys, klen, &h);
    td_state_host_free(&h);
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
        i->mem_params = m.params * 2 + m.compute; /* F32 master + grads, compute copies */
        i->mem_acts = m.acts + m.act_grads + m.workspace;
        i->mem_moments = t->m.bytes + t->v.bytes + t->q_m.bytes * 2 + t->a_m.bytes * 2;
        i->mem_optim = i->mem_moments + t->ema.bytes;
    }
    if (t->ctx && t->ctx->device != LDM_DEV_CPU &&
        ldm_ctx_meminfo(t->ctx, &i->dev_used, &i->dev_total))
        i->dev_used = i->dev_total = 0;
    i->zero_stage = t->zero;
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
