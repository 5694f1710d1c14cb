/* train_state.c — a checkpoint's weights and trainer_state.safetensors.
 *
 * trainer_state.safetensors holds, beside metadata {"format": "ldmpipe-trainer 1",
 * "optimizer": NAME}:
 *   step, serial, epoch, batch, bad_steps   I64 (1)   counters and the data cursor
 *   seed, world                             I64 (1)   checked on resume
 *   loss_scale                              F64 (1)
 *   keys                                    U8 (n)    the cursor epoch's sample keys
 *   adam.m, adam.v                          F32       moments: adamw laid out as the
 *                                                     parameter arena; adamw8bit one slot
 *                                                     per tensor of fewer than TD_ADAM8_MIN
 *                                                     elements, in arena order, each padded
 *                                                     to TD_ZERO_ALIGN floats (zero.h)
 *   adam8.qm, adam8.qv, adam8.am, adam8.av  U8 / F32  8-bit moments and absmax (adamw8bit)
 *   params, ema                             F32       master weights (and EMA) when the
 *                                                     folders hold them in fp16/bf16
 * The folders unet/ and unet_ema/ are diffusers' layout, in save_precision.
 *
 * The moments are written in that unsharded layout whatever zero_stage: with ZeRO
 * each rank holds one window of each array (zero.h), the windows are gathered to
 * rank 0 to be written, and on resume each rank uploads its own window. So a run
 * resumes with or without ZeRO, on any number of ranks. An adamw8bit state whose
 * adam.m/adam.v hold one float per arena element (as written before the slots) is
 * read too: each rank takes its small tensors' elements from them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "models/unet_save.h"
#include "safetensors.h"
#include "trainerd/comm.h"
#include "trainerd/train_int.h"

#define STATE_FORMAT "ldmpipe-trainer 1"
#define NSCALARS 7

struct blobs {
    struct ldm_st_tensor t[24];
    void *host[24];
    size_t n;
};

static void add_raw(struct blobs *b, const char *name, int dtype, const void *data, size_t nbytes)
{
    struct ldm_st_tensor *t = &b->t[b->n++];
    *t = (struct ldm_st_tensor){.name = name, .dtype = dtype, .ndim = 1, .data = data,
                                .nbytes = nbytes};
    t->shape[0] = (int64_t)(nbytes / ldm_dtype_size(dtype));
}

/* Copy an arena to the host and add it. */
static int add_arena(struct blobs *b, struct td_trainer *t, const char *name, int dtype,
                     const struct ldm_arena *a)
{
    void *h = malloc(a->bytes ? a->bytes : 1);
    if (!h)
        return ldm_fail(LDM_ENOMEM, "trainer state: %s: %zu bytes", name, a->bytes);
    b->host[b->n] = h;
    int rc = ldm_ctx_download(t->ctx, h, a->base, a->bytes);
    add_raw(b, name, dtype, h, a->bytes);
    return rc;
}

/* Array `a`, this rank's window of an unsharded array of `total` bytes cut at cut[]
 * (units of `unit` bytes), whole on rank 0's host (*out, malloc'd; NULL elsewhere).
 * With ZeRO on several ranks every window is all-gathered in the gradient arena,
 * whose contents are dead between steps and which is as large as any array. */
static int collect(struct td_trainer *t, const struct ldm_arena *a, const size_t *cut,
                   size_t unit, size_t total, void **out)
{
    int shard = t->bucket_cut != NULL, rc = 0;
    char *buf = shard ? t->ga->base : a->base;
    *out = NULL;
    if (shard && total > t->ga->bytes)
        return ldm_fail(LDM_EINVAL, "trainer state: %zu bytes do not fit the gradient arena",
                        total);
    if (shard && a->bytes)
        rc = ldm_ctx_copy(t->ctx, buf + cut[t->rank] * unit, a->base, a->bytes);
    if (!rc && shard) {
        for (int k = 0; k <= t->world; k++) /* floats: cuts are multiples of 256 bytes */
            t->bucket_cut[k] = cut[k] * unit / sizeof(float);
        rc = ldm_comm_all_gather_at(t->comm, (float *)buf, total / sizeof(float), t->bucket_cut);
    }
    if (rc || t->rank != 0)
        return rc;
    *out = malloc(total ? total : 1);
    if (!*out)
        return ldm_fail(LDM_ENOMEM, "trainer state: %zu bytes", total);
    return ldm_ctx_download(t->ctx, *out, buf, total);
}

int td_state_collect(struct td_trainer *t, struct td_state_host *h)
{
    memset(h, 0, sizeof *h);
    const struct td_zero_plan *p = &t->plan;
    size_t mb = t->m_total * sizeof(float), qb = t->q_total, ab = t->a_total * sizeof(float);
    int rc = collect(t, &t->m, p->m, sizeof(float), mb, &h->m);
    if (!rc) rc = collect(t, &t->v, p->m, sizeof(float), mb, &h->v);
    if (!rc && t->optimizer == TD_OPT_ADAMW8) {
        rc = collect(t, &t->q_m, p->q, 1, qb, &h->qm);
        if (!rc) rc = collect(t, &t->q_v, p->q, 1, qb, &h->qv);
        if (!rc) rc = collect(t, &t->a_m, p->a, sizeof(float), ab, &h->am);
        if (!rc) rc = collect(t, &t->a_v, p->a, sizeof(float), ab, &h->av);
    }
    return rc;
}

void td_state_host_free(struct td_state_host *h)
{
    void **p[] = {&h->m, &h->v, &h->qm, &h->qv, &h->am, &h->av};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        free(*p[i]);
        *p[i] = NULL;
    }
}

static int write_state(struct td_trainer *t, const char *dir, struct td_cursor cur,
                       const char *keys, size_t klen, const struct td_state_host *h)
{
    struct blobs b = {0};
    int64_t sc[NSCALARS] = {t->step, t->serial, cur.epoch, cur.batch, t->bad_total,
                            t->cfg.seed, t->world};
    static const char *const names[NSCALARS] = {"step", "serial", "epoch", "batch",
                                                "bad_steps", "seed", "world"};
    for (int i = 0; i < NSCALARS; i++)
        add_raw(&b, names[i], LDM_DT_I64, &sc[i], 8);
    add_raw(&b, "loss_scale", LDM_DT_F64, &t->loss_scale, 8);
    add_raw(&b, "keys", LDM_DT_U8, keys ? keys : "", klen);
    add_raw(&b, "adam.m", LDM_DT_F32, h->m, t->m_total * sizeof(float));
    add_raw(&b, "adam.v", LDM_DT_F32, h->v, t->m_total * sizeof(float));
    if (t->optimizer == TD_OPT_ADAMW8) {
        add_raw(&b, "adam8.qm", LDM_DT_U8, h->qm, t->q_total);
        add_raw(&b, "adam8.qv", LDM_DT_U8, h->qv, t->q_total);
        add_raw(&b, "adam8.am", LDM_DT_F32, h->am, t->a_total * sizeof(float));
        add_raw(&b, "adam8.av", LDM_DT_F32, h->av, t->a_total * sizeof(float));
    }
    int rc = 0;
    if (t->save_dtype != LDM_DT_F32) {
        rc = add_arena(&b, t, "params", LDM_DT_F32, t->pa);
        if (!rc && t->cfg.use_ema)
            rc = add_arena(&b, t, "ema", LDM_DT_F32, &t->ema);
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    struct ldm_st_kv meta[] = {{"format", STATE_FORMAT}, {"optimizer", t->cfg.optimizer}};
    if (!rc)
        rc = ldm_st_write(path, b.t, b.n, meta, 2);
    for (size_t i = 0; i < b.n; i++)
        free(b.host[i]);
    return rc;
}

int td_state_save(struct td_trainer *t, const char *dir, struct td_cursor cur,
                  const char *keys, size_t klen, const struct td_state_host *h)
{
    char p[4300];
    struct ldm_unet_save_opts o = {.src_config = t->src_config, .dtype = t->save_dtype};
    snprintf(p, sizeof p, "%s/unet", dir);
    int rc = ldm_unet_save_ex(t->u, p, &o);
    if (!rc && t->cfg.use_ema) {
        o.params = &t->ema;
        snprintf(p, sizeof p, "%s/unet_ema", dir);
        rc = ldm_unet_save_ex(t->u, p, &o);
    }
    if (!rc)
        rc = write_state(t, dir, cur, keys, klen, h);
    return rc;
}

static int get_i64(const struct ldm_st *st, const char *name, int64_t *v)
{
    const struct ldm_st_tensor *x;
    int64_t shape[1] = {1};
    int rc = ldm_st_expect(st, name, LDM_DT_I64, 1, shape, &x);
    if (!rc)
        memcpy(v, x->data, 8);
    return rc;
}

/* Upload bytes lo .. lo + a->bytes − 1 of tensor `name` (total bytes) into arena a:
 * this rank's window of an optimiser array, or (lo 0) a whole arena. */
static int get_window(struct td_trainer *t, const struct ldm_st *st, const char *name,
                      const struct ldm_arena *a, size_t lo, size_t total)
{
    const struct ldm_st_tensor *x;
    int rc = ldm_st_find(st, name, &x);
    if (!rc && x->nbytes != total)
        rc = ldm_fail(LDM_EFORMAT, "%s: %s holds %zu bytes, this model needs %zu (another "
                      "model or optimizer?)", ldm_st_label(st), name, x->nbytes, total);
    if (!rc && a->bytes)
        rc = ldm_ctx_upload(t->ctx, a->base, (const char *)x->data + lo, a->bytes);
    return rc;
}

/* This rank's window of adam.m or adam.v into arena a. With adamw8bit a tensor of
 * one float per arena element (the layout before the slots, zero.h) is read too. */
static int get_moments(struct td_trainer *t, const struct ldm_st *st, const char *name,
                       const struct ldm_arena *a)
{
    const struct td_window *w = &t->win;
    size_t total = t->m_total * sizeof(float);
    const struct ldm_st_tensor *x;
    int rc = ldm_st_find(st, name, &x);
    if (rc || t->optimizer != TD_OPT_ADAMW8 || x->nbytes == total || x->nbytes != t->pa->bytes ||
        x->dtype != LDM_DT_F32)
        return get_window(t, st, name, a, w->mlo * sizeof(float), total);
    float *h = calloc(1, a->bytes ? a->bytes : 1);
    if (!h)
        return ldm_fail(LDM_ENOMEM, "%s: %s: %zu bytes", ldm_st_label(st), name, a->bytes);
    LOG_INFO("reading 8-bit AdamW moments laid out as the arena", "tensor=%s", name);
    td_zero_from_full(t->tens, t->ntens, x->data, w->lo, w->hi, w->mlo, h);
    rc = a->bytes ? ldm_ctx_upload(t->ctx, a->base, h, a->bytes) : 0;
    free(h);
    return rc;
}

static int get_arena(struct td_trainer *t, const struct ldm_st *st, const char *name,
                     const struct ldm_arena *a)
{
    return get_window(t, st, name, a, 0, a->bytes);
}

static int load_weights(struct td_trainer *t, const char *dir, const struct ldm_st *st)
{
    char p[4400];
    int rc = 0;
    if (t->cfg.use_ema) {
        if (ldm_st_get(st, "ema")) {
            rc = get_arena(t, st, "ema", &t->ema);
        } else {
            snprintf(p, sizeof p, "%s/unet_ema", dir);
            rc = ldm_unet_load_dir(t->u, p);
            if (!rc)
                rc = ldm_ctx_copy(t->ctx, t->ema.base, t->pa->base, t->pa->bytes);
        }
    }
    if (rc)
        return rc;
    if (ldm_st_get(st, "params"))
        return get_arena(t, st, "params", t->pa);
    snprintf(p, sizeof p, "%s/unet", dir);
    return ldm_unet_load_dir(t->u, p);
}

static int load_optim(struct td_trainer *t, const struct ldm_st *st)
{
    const char *opt = ldm_st_meta(st, "optimizer");
    if (!opt || strcmp(opt, t->cfg.optimizer))
        return ldm_fail(LDM_ECONFIG, "optimizer: %s holds %s state, the config says %s",
                        ldm_st_label(st), opt ? opt : "no", t->cfg.optimizer);
    const struct td_window *w = &t->win;
    size_t ab = t->a_total * sizeof(float);
    int rc = get_moments(t, st, "adam.m", &t->m);
    if (!rc) rc = get_moments(t, st, "adam.v", &t->v);
    if (!rc && t->optimizer == TD_OPT_ADAMW8) {
        size_t a0 = w->alo * sizeof(float);
        rc = get_window(t, st, "adam8.qm", &t->q_m, w->qlo, t->q_total);
        if (!rc) rc = get_window(t, st, "adam8.qv", &t->q_v, w->qlo, t->q_total);
        if (!rc) rc = get_window(t, st, "adam8.am", &t->a_m, a0, ab);
        if (!rc) rc = get_window(t, st, "adam8.av", &t->a_v, a0, ab);
    }
    return rc;
}

static int load_scalars(struct td_trainer *t, const struct ldm_st *st, struct td_cursor *cur)
{
    int64_t seed = 0, world = 0;
    int rc = get_i64(st, "step", &t->step);
    if (!rc) rc = get_i64(st, "serial", &t->serial);
    if (!rc) rc = get_i64(st, "epoch", &cur->epoch);
    if (!rc) rc = get_i64(st, "batch", &cur->batch);
    if (!rc) rc = get_i64(st, "bad_steps", &t->bad_total);
    if (!rc) rc = get_i64(st, "seed", &seed);
    if (!rc) rc = get_i64(st, "world", &world);
    const struct ldm_st_tensor *ls = ldm_st_get(st, "loss_scale");
    if (!rc && ls && ls->dtype == LDM_DT_F64 && ls->nbytes == 8)
        memcpy(&t->loss_scale, ls->data, 8);
    if (!rc && seed != t->cfg.seed)
        rc = ldm_fail(LDM_ECONFIG, "seed: %s was trained with seed %lld, the config says %lld",
                      ldm_st_label(st), (long long)seed, (long long)t->cfg.seed);
    if (!rc && world != t->world)
        LOG_WARN("resuming with another world size: the data order changes from here",
                 "was=%lld now=%d", (long long)world, t->world);
    return rc;
}

int td_state_load(struct td_trainer *t, const char *dir, struct td_cursor *cur, char **keys,
                  size_t *klen)
{
    char p[4400];
    struct ldm_st *st = NULL;
    snprintf(p, sizeof p, "%s/trainer_state.safetensors", dir);
    int rc = ldm_st_open(&st, p);
    if (rc)
        return ldm_fail(rc == LDM_ENOTFOUND ? LDM_ECONFIG : rc, "resume: %s", ldm_errmsg());
    const char *fmt = ldm_st_meta(st, "format");
    if (!fmt || strcmp(fmt, STATE_FORMAT))
        rc = ldm_fail(LDM_EFORMAT, "%s: format %s, expected %s", p, fmt ? fmt : "missing",
                      STATE_FORMAT);
    if (!rc) rc = load_scalars(t, st, cur);
    if (!rc) rc = load_optim(t, st);
    if (!rc) rc = load_weights(t, dir, st);
    const struct ldm_st_tensor *k = rc ? NULL : ldm_st_get(st, "keys");
    if (!rc && (!k || k->dtype != LDM_DT_U8))
        rc = ldm_fail(LDM_EFORMAT, "%s: no U8 tensor keys", p);
    if (!rc) {
        *keys = malloc(k->nbytes + 1);
        if (!*keys)
            rc = ldm_fail(LDM_ENOMEM, "%s: keys", p);
        else
            memcpy(*keys, k->data, k->nbytes), *klen = k->nbytes;
    }
    ldm_st_close(&st);
    return rc;
}
