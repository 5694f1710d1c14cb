/* tensors.c — mktiny's tensor lists: named shapes, seeded values, written as safetensors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mktiny_tensors.h"

int mt_list_add(struct mt_list *l, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct mt_entry *e = realloc(l->e, cap * sizeof *e);
        if (!e)
            return ldm_fail(LDM_ENOMEM, "tensor list of %zu", cap);
        l->e = e, l->cap = cap;
    }
    struct mt_entry *e = &l->e[l->n];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof e->name)
        return ldm_fail(LDM_ERANGE, "tensor name too long: %s", e->name);
    e->ndim = ndim;
    memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
    l->n++;
    return 0;
}

void mt_list_free(struct mt_list *l)
{
    free(l->e);
    *l = (struct mt_list){0};
}

static size_t numel(const struct mt_entry *e)
{
    size_t n = 1;
    for (int i = 0; i < e->ndim; i++)
        n *= (size_t)e->shape[i];
    return n;
}

int mt_list_write(const struct mt_list *l, const char *path, uint64_t seed, uint64_t stream)
{
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++)
        total += numel(&l->e[i]);
    float *buf = malloc((total ? total : 1) * sizeof *buf);
    struct ldm_st_tensor *t = calloc(l->n ? l->n : 1, sizeof *t);
    int rc = 0;
    if (!buf || !t)
        rc = ldm_fail(LDM_ENOMEM, "%s: %zu floats", path, total);
    float *p = buf;
    for (size_t i = 0; !rc && i < l->n; i++) {
        const struct mt_entry *e = &l->e[i];
        size_t n = numel(e);
        mt_fill(p, n, e->name, e->ndim, e->shape, seed, stream + i);
        t[i] = (struct ldm_st_tensor){.name = e->name, .dtype = LDM_DT_F32, .ndim = e->ndim,
                                      .data = p, .nbytes = n * sizeof *p};
        memcpy(t[i].shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
        p += n;
    }
    static const struct ldm_st_kv meta[] = {{"format", "pt"}};
    if (!rc)
        rc = ldm_st_write(path, t, l->n, meta, 1);
    free(buf);
    free(t);
    return rc;
}
