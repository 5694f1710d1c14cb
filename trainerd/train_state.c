/* train_state.c — a checkpoint's weights and trainer_state.safetensors.
 *
 * trainer_state.safetensors holds, beside metadata {"format": "ldmpipe-trainer 1",
 * "optimizer": NAME}:
 *   step, serial, epoch, batch, bad_steps   I64 (1)   counters and the data cursor
 *   seed, world                             I64 (1)   checked on resume
 *   loss_scale                              F64 (1)
 *   keys                                    U8 (n)    the cursor epoch's sample keys
 *   adam.m, adam.v                          F32       moments, laid out as the parameters
 *   adam8.qm, adam8.qv, adam8.am, adam8.av  U8 / F32  8-bit moments and absmax (adamw8bit)
 *   params, ema                             F32       master weights (and EMA) when the
 *                                                     folders hold them in fp16/bf16
 * The folders unet/ and unet_ema/ are diffusers' layout, in save_precision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "models/unet_save.h"
#include "safetensors.h"
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

static int write_state(struct td_trainer *t, const char *dir, struct td_cursor cur,
                       const char *keys, size_t klen)
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
    int rc = add_arena(&b, t, "adam.m", LDM_DT_F32, &t->m);
    if (!rc) rc = add_arena(&b, t, "adam.v", LDM_DT_F32, &t->v);
    if (!rc && t->optimizer == TD_OPT_ADAMW8) {
        rc = add_arena(&b, t, "adam8.qm", LDM_DT_U8, &t->q_m);
        if (!rc) rc = add_arena(&b, t, "adam8.qv", LDM_DT_U8, &t->q_v);
        if (!rc) rc = add_arena(&b, t, "adam8.am", LDM_DT_F32, &t->a_m);
        if (!rc) rc = add_arena(&b, t, "adam8.av", LDM_DT_F32, &t->a_v);
    }
    if (!rc && t->save_dtype != LDM_DT_F32) {
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
                  const char *keys, size_t klen)
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
        rc = write_state(t, dir, cur, keys, klen);
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

/* Upload tensor `name` into arena a (same byte size). */
static int get_arena(struct td_trainer *t, const struct ldm_st *st, const char *name,
                     const struct ldm_arena *a)
{
    const struct ldm_st_tensor *x;
    int rc = ldm_st_find(st, name, &x);
    if (!rc && x->nbytes != a->bytes)
        rc = ldm_fail(LDM_EFORMAT, "%s: %s holds %zu bytes, this model needs %zu (another "
                      "model or optimizer?)", ldm_st_label(st), name, x->nbytes, a->bytes);
    if (!rc)
        rc = ldm_ctx_upload(t->ctx, a->base, x->data, a->bytes);
    return rc;
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
    int rc = get_arena(t, st, "adam.m", &t->m);
    if (!rc) rc = get_arena(t, st, "adam.v", &t->v);
    if (!rc && t->optimizer == TD_OPT_ADAMW8) {
        rc = get_arena(t, st, "adam8.qm", &t->q_m);
        if (!rc) rc = get_arena(t, st, "adam8.qv", &t->q_v);
        if (!rc) rc = get_arena(t, st, "adam8.am", &t->a_m);
        if (!rc) rc = get_arena(t, st, "adam8.av", &t->a_v);
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
