/* zero.c — the cuts of the optimiser state over ranks (zero.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"
#include "trainerd/zero.h"

/* Cut x moved up to a block start of the 8-bit tensor it falls inside. */
static size_t snap(const struct td_zero_tensor *t, size_t nt, size_t x)
{
    for (size_t i = 0; i < nt; i++)
        if (t[i].is8 && x > t[i].off && x < t[i].off + t[i].n) {
            size_t e = (x - t[i].off + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK * LDM_ADAM8_BLOCK;
            return t[i].off + (e < t[i].n ? e : t[i].n);
        }
    return x;
}

/* Where cut x falls in the code (*q) and absmax (*a) arrays: inside an 8-bit tensor
 * at its element; otherwise at the start of the next 8-bit tensor, or the end. */
static void map_cut(const struct td_zero_tensor *t, size_t nt, size_t x, size_t q_total,
                    size_t a_total, size_t *q, size_t *a)
{
    *q = q_total, *a = a_total;
    for (size_t i = 0; i < nt; i++)
        if (t[i].is8 && t[i].off + t[i].n > x) {
            size_t e = x > t[i].off ? x - t[i].off : 0;
            *q = t[i].q_off + e, *a = t[i].a_off + e / LDM_ADAM8_BLOCK;
            return;
        }
}

/* Where cut x falls in adam.m/v: inside a tensor with F32 moments at its element;
 * otherwise at the start of the next such tensor's slot, or the end. */
static size_t map_cut_m(const struct td_zero_tensor *t, size_t nt, size_t x, size_t m_total)
{
    for (size_t i = 0; i < nt; i++)
        if (!t[i].is8 && t[i].off + t[i].n > x)
            return t[i].m_off + (x > t[i].off ? x - t[i].off : 0);
    return m_total;
}

/* Tensors in arena order, inside the arrays, their state in the same order. */
static int check_tensors(const struct td_zero_tensor *t, size_t nt, size_t n, size_t m_total,
                         size_t q_total, size_t a_total)
{
    size_t end = 0, mend = 0, qend = 0, aend = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t nb = (t[i].n + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
        int bad = t[i].off < end || t[i].n > n - t[i].off;
        if (t[i].is8)
            bad |= t[i].q_off < qend || t[i].n > q_total - t[i].q_off || t[i].a_off < aend ||
                   nb > a_total - t[i].a_off;
        else
            bad |= t[i].m_off < mend || t[i].m_off % TD_ZERO_ALIGN || t[i].n > m_total ||
                   t[i].m_off > m_total - t[i].n;
        if (bad)
            return ldm_fail(LDM_EINVAL, "optimizer shards: parameter %zu (elements %zu..%zu) is "
                            "out of arena order or beyond the state", i, t[i].off,
                            t[i].off + t[i].n);
        end = t[i].off + t[i].n;
        if (t[i].is8)
            qend = t[i].q_off + t[i].n, aend = t[i].a_off + nb;
        else
            mend = t[i].m_off + t[i].n;
    }
    return 0;
}

int td_zero_plan_make(struct td_zero_plan *p, const struct td_zero_tensor *t, size_t nt,
                      size_t n, size_t m_total, size_t q_total, size_t a_total, int world)
{
    *p = (struct td_zero_plan){0};
    if (world < 1)
        return ldm_fail(LDM_EINVAL, "optimizer shards: world %d", world);
    if (!nt && m_total != n)
        return ldm_fail(LDM_EINVAL, "optimizer shards: moments of %zu elements laid out as an "
                        "arena of %zu", m_total, n);
    int rc = check_tensors(t, nt, n, m_total, q_total, a_total);
    if (rc)
        return rc;
    size_t w = (size_t)world;
    p->world = world;
    p->el = calloc(w + 1, sizeof *p->el);
    p->m = calloc(w + 1, sizeof *p->m);
    p->q = calloc(w + 1, sizeof *p->q);
    p->a = calloc(w + 1, sizeof *p->a);
    if (!p->el || !p->m || !p->q || !p->a) {
        td_zero_plan_free(p);
        return ldm_fail(LDM_ENOMEM, "optimizer shards of %d ranks", world);
    }
    size_t s = (n + w - 1) / w;
    s = (s + TD_ZERO_ALIGN - 1) / TD_ZERO_ALIGN * TD_ZERO_ALIGN;
    for (size_t k = 0; k <= w; k++) {
        size_t x = k == w || k * s >= n ? n : snap(t, nt, k * s);
        p->el[k] = x;
        p->m[k] = nt ? map_cut_m(t, nt, x, m_total) : x;
        map_cut(t, nt, x, q_total, a_total, &p->q[k], &p->a[k]);
    }
    return 0;
}

void td_zero_plan_free(struct td_zero_plan *p)
{
    free(p->el);
    free(p->m);
    free(p->q);
    free(p->a);
    *p = (struct td_zero_plan){0};
}

void td_zero_from_full(const struct td_zero_tensor *t, size_t nt, const void *full, size_t lo,
                       size_t hi, size_t mlo, float *out)
{
    for (size_t i = 0; i < nt; i++) {
        size_t b = t[i].off > lo ? t[i].off : lo, e = t[i].off + t[i].n;
        e = e < hi ? e : hi;
        if (t[i].is8 || b >= e)
            continue;
        memcpy(out + (t[i].m_off + (b - t[i].off) - mlo), (const char *)full + b * sizeof(float),
               (e - b) * sizeof(float));
    }
}
