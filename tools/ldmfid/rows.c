/* rows.c — a growing float32 matrix of feature rows, written as .npy. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmfid.h"
#include "npy.h"

int lf_rows_add(struct lf_rows *r, const float *x, int64_t n, int64_t dim)
{
    if (r->dim == 0)
        r->dim = dim;
    if (dim != r->dim)
        return ldm_fail(LDM_EINVAL, "rows of %lld columns added to %lld", (long long)dim,
                        (long long)r->dim);
    if (r->n + n > r->cap) {
        int64_t cap = r->cap ? r->cap : 256;
        while (cap < r->n + n)
            cap *= 2;
        float *v = realloc(r->v, (size_t)cap * (size_t)dim * sizeof *v);
        if (!v)
            return ldm_fail(LDM_ENOMEM, "no memory for %lld rows of %lld", (long long)cap,
                            (long long)dim);
        r->v = v;
        r->cap = cap;
    }
    memcpy(r->v + (size_t)r->n * (size_t)dim, x, (size_t)n * (size_t)dim * sizeof *x);
    r->n += n;
    return 0;
}

int lf_rows_write(const struct lf_rows *r, const char *path)
{
    struct ldm_array a = {.dtype = LDM_DT_F32, .ndim = 2, .shape = {r->n, r->dim},
                          .data = r->v, .nbytes = (size_t)r->n * (size_t)r->dim * sizeof(float)};
    return ldm_npy_write(path, &a);
}

void lf_rows_free(struct lf_rows *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}
