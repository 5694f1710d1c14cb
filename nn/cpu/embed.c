/* embed.c — CPU sinusoidal timestep embedding; embedding lookup and its scatter-add backward. */
#include <math.h>
#include <string.h>

#include "err.h"
#include "nn/cpu/cpu.h"

/* diffusers get_timestep_embedding, with torch's float32 steps:
 * exponent_i = (float)(−ln max_period)·i / (half − shift), freq = exp,
 * a = scale·(t·freq). */
int cpu_timestep_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *vy, const float *t)
{
    (void)c;
    float *y = vy;
    int64_t half = d->D / 2;
    float neglog = (float)(-log((double)d->max_period));
    float denom = (float)half - d->shift;
    for (int64_t n = 0; n < d->M; n++) {
        float *row = y + n * d->D;
        for (int64_t i = 0; i < half; i++) {
            float freq = expf(neglog * (float)i / denom);
            float a = d->scale * (t[n] * freq);
            float s = (float)sin((double)a), co = (float)cos((double)a);
            row[d->flip ? half + i : i] = s;
            row[d->flip ? i : half + i] = co;
        }
        if (d->D % 2)
            row[d->D - 1] = 0.0f;
    }
    return 0;
}

static int64_t id_at(const struct ldm_embed_dims *d, const void *ids, int64_t i)
{
    return d->id_dtype == LDM_DT_I64 ? ((const int64_t *)ids)[i] : ((const int32_t *)ids)[i];
}

static int check_ids(const struct ldm_embed_dims *d, const void *ids, const char *what)
{
    for (int64_t i = 0; i < d->M; i++) {
        int64_t v = id_at(d, ids, i);
        if (v < 0 || v >= d->V)
            return ldm_fail(LDM_ERANGE, "%s: id %lld at position %lld is outside 0..%lld", what,
                            (long long)v, (long long)i, (long long)(d->V - 1));
    }
    return 0;
}

struct emb_job {
    const struct ldm_embed_dims *d;
    float *out;
    const float *in;
    const void *ids;
};

static void emb_fwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct emb_job *j = vj;
    int64_t D = j->d->D;
    for (int64_t r = r0; r < r1; r++)
        memcpy(j->out + r * D, j->in + id_at(j->d, j->ids, r) * D, (size_t)D * sizeof(float));
}

int cpu_embedding_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y, const void *ids,
                      const void *table)
{
    int rc = check_ids(d, ids, "embedding forward");
    if (rc)
        return rc;
    struct emb_job j = {d, y, table, ids};
    cpu_for(c, d->M, 1 + 16384 / (d->D + 1), emb_fwd_rows, &j);
    return 0;
}

#define EMB_COLS 256

/* Column block: every row of dy adds its slice into dtable[id] (ids may repeat). */
static void emb_bwd_cols(void *vj, int64_t blk, int thread)
{
    (void)thread;
    struct emb_job *j = vj;
    int64_t D = j->d->D, c0 = blk * EMB_COLS, c1 = c0 + EMB_COLS < D ? c0 + EMB_COLS : D;
    for (int64_t r = 0; r < j->d->M; r++) {
        float *dst = j->out + id_at(j->d, j->ids, r) * D;
        const float *src = j->in + r * D;
        for (int64_t i = c0; i < c1; i++)
            dst[i] += src[i];
    }
}

int cpu_embedding_bwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *dtable,
                      const void *dy, const void *ids)
{
    int rc = check_ids(d, ids, "embedding backward");
    if (rc)
        return rc;
    struct emb_job j = {d, dtable, dy, ids};
    cpu_tasks(c, (d->D + EMB_COLS - 1) / EMB_COLS, emb_bwd_cols, &j);
    return 0;
}
