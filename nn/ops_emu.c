/* ops_emu.c — reduced dtypes on a backend that computes in F32 only; and the end of
 * every op call (opchk_end: copies back, profiling).
 *
 * A backend lists in `emulated` the dtypes the op wrappers accept for it by
 * conversion (the CPU backend: F16 and BF16). For such an op every float
 * tensor of the emulated dtype is copied to F32 before the entry runs
 * (opchk_data) and rounded back after it (opchk_end), so an output ends up
 * as a reduced-precision kernel stores it: computed in F32, rounded once.
 * "+=" outputs start from their current values. A tensor passed twice (an
 * op run in place) shares one copy. Only elements whose value changed are
 * written back, so inputs are never stored to. This is for checking reduced-
 * precision models where there is no GPU, not for speed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "nn/ops_check.h"

/* Freed copies kept per thread for the next ops (fresh large allocations cost a page
 * fault per page): at most POOL of them, POOL_BYTES in all, freed when the thread ends. */
#define POOL 16
#define POOL_BYTES ((size_t)256 << 20)
struct copy_pool {
    float *p[POOL];
    size_t cap[POOL];
    size_t bytes;
};
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_drop(void *v)
{
    struct copy_pool *cp = v;
    for (int i = 0; i < POOL; i++)
        free(cp->p[i]);
    free(cp);
}

static void pool_init(void)
{
    pthread_key_create(&pool_key, pool_drop);
}

/* This thread's pool (NULL when it cannot be made: then nothing is pooled). */
static struct copy_pool *pool_get(void)
{
    pthread_once(&pool_once, pool_init);
    struct copy_pool *cp = pthread_getspecific(pool_key);
    if (!cp && (cp = calloc(1, sizeof *cp)) && pthread_setspecific(pool_key, cp)) {
        free(cp);
        cp = NULL;
    }
    return cp;
}

/* A buffer of at least n floats: the smallest pooled one that fits, else malloc. */
static float *copy_alloc(size_t n, size_t *cap)
{
    struct copy_pool *cp = pool_get();
    int best = -1;
    for (int i = 0; cp && i < POOL; i++)
        if (cp->p[i] && cp->cap[i] >= n && (best < 0 || cp->cap[i] < cp->cap[best]))
            best = i;
    if (best < 0) {
        *cap = n ? n : 1;
        return malloc(*cap * sizeof(float));
    }
    float *p = cp->p[best];
    *cap = cp->cap[best];
    cp->bytes -= *cap * sizeof(float);
    cp->p[best] = NULL;
    return p;
}

/* Keep p for later when the pool has room, else free it. */
static void copy_free(float *p, size_t cap)
{
    struct copy_pool *cp = pool_get();
    for (int i = 0; cp && i < POOL && cp->bytes + cap * sizeof(float) <= POOL_BYTES; i++)
        if (!cp->p[i]) {
            cp->p[i] = p, cp->cap[i] = cap;
            cp->bytes += cap * sizeof(float);
            return;
        }
    free(p);
}

/* The entry is about to run on the copies: without one there is no way on. */
static void no_copy(const struct opchk *k, size_t n)
{
    fprintf(stderr, "%s: cannot make an F32 copy of %zu elements to emulate %s; aborting\n",
            ldm_op_name(k->op), n, ldm_dtype_name(k->dtype));
    abort();
}

void *opchk_data(struct opchk *k, const struct ldm_tensor *t)
{
    if (!t)
        return NULL;
    if (!k->emu || t->dtype != k->dtype || !t->data)
        return t->data;
    for (int i = 0; i < k->nemu; i++)
        if (k->e[i].orig == t->data && k->e[i].n >= ldm_tensor_numel(t))
            return k->e[i].f;
    size_t n = ldm_tensor_numel(t), cap = 0;
    float *f = k->nemu < OPCHK_EMU_MAX ? copy_alloc(n, &cap) : NULL;
    if (!f)
        no_copy(k, n);
    ldm_convert(f, LDM_DT_F32, t->data, t->dtype, n);
    k->e[k->nemu++] = (struct opchk_emu){t->data, t->dtype, n, cap, f};
    return f;
}

/* Round the F32 copy back into x's original, storing only the elements that change. */
static void put_back(const struct opchk_emu *x)
{
    enum { CHUNK = 4096 };
    uint16_t *o = x->orig, h[CHUNK];
    for (size_t i = 0; i < x->n; i += CHUNK) {
        size_t m = x->n - i < CHUNK ? x->n - i : CHUNK;
        ldm_convert(h, x->dtype, x->f + i, LDM_DT_F32, m);
        for (size_t k = 0; k < m; k++)
            if (h[k] != o[i + k])
                o[i + k] = h[k];
    }
}

int opchk_end(struct opchk *k, int rc)
{
    for (int i = 0; i < k->nemu; i++) {
        if (!rc)
            put_back(&k->e[i]);
        copy_free(k->e[i].f, k->e[i].cap);
    }
    k->nemu = 0;
    struct ldm_ctx *c = k->c;
    if (c->prof && k->t0 > 0) {
        int src = c->be->sync ? c->be->sync(c) : 0;
        c->prof[k->op].calls++;
        c->prof[k->op].seconds += opchk_now() - k->t0;
        rc = rc ? rc : src;
    }
    return rc;
}
