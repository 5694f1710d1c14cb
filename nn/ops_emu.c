/* ops_emu.c — reduced dtypes on a backend that computes in F32 only.
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
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "nn/ops_check.h"

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
    size_t n = ldm_tensor_numel(t);
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (k->nemu >= OPCHK_EMU_MAX || !f)
        no_copy(k, n);
    ldm_convert(f, LDM_DT_F32, t->data, t->dtype, n);
    k->e[k->nemu++] = (struct opchk_emu){t->data, t->dtype, n, f};
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
        free(k->e[i].f);
    }
    k->nemu = 0;
    return rc;
}
