/* cast.c — CPU dtype conversion: y (=|+=) alpha·x between F32, F16 and BF16,
 * computed in F32 and rounded to nearest even (tensor.h's conversions). */
#include "nn/cpu/cpu.h"

#define GRAIN 16384

struct cast_job {
    const struct ldm_cast_dims *d;
    void *y;
    const void *x;
};

static float load(int dt, const void *p, int64_t i)
{
    switch (dt) {
    case LDM_DT_F16: return ldm_f16_to_f32(((const uint16_t *)p)[i]);
    case LDM_DT_BF16: return ldm_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static void store(int dt, void *p, int64_t i, float v)
{
    switch (dt) {
    case LDM_DT_F16: ((uint16_t *)p)[i] = ldm_f32_to_f16(v); break;
    case LDM_DT_BF16: ((uint16_t *)p)[i] = ldm_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

static void cast_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    const struct cast_job *j = vj;
    const struct ldm_cast_dims *d = j->d;
    for (int64_t i = b; i < e; i++) {
        float v = d->alpha == 1.0f ? load(d->xdtype, j->x, i) : d->alpha * load(d->xdtype, j->x, i);
        if (d->accumulate)
            v = load(d->ydtype, j->y, i) + v;
        store(d->ydtype, j->y, i, v);
    }
}

int cpu_cast(struct ldm_ctx *c, const struct ldm_cast_dims *d, void *y, const void *x)
{
    struct cast_job j = {d, y, x};
    cpu_for(c, d->n, GRAIN, cast_range, &j);
    return 0;
}
