/* io.c — ldmrun's tensor input and output: typed reads from safetensors, gathered outputs. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmrun.h"

int lr_out_add(struct lr_outs *o, const char *name, int ndim, const int64_t *shape, float **data)
{
    if (o->n == sizeof o->t / sizeof o->t[0])
        return ldm_fail(LDM_ERANGE, "%s: more than %zu outputs", name, o->n);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    char *nm = strdup(name);
    float *d = calloc(n ? n : 1, sizeof *d);
    if (!nm || !d) {
        free(nm);
        free(d);
        return ldm_fail(LDM_ENOMEM, "%s: %zu floats", name, n);
    }
    struct ldm_st_tensor *t = &o->t[o->n++];
    *t = (struct ldm_st_tensor){.name = nm, .dtype = LDM_DT_F32, .ndim = ndim, .data = d,
                                .nbytes = n * sizeof *d};
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    *data = d;
    return 0;
}

void lr_out_free(struct lr_outs *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free((char *)o->t[i].name);
        free((void *)o->t[i].data);
    }
    o->n = 0;
}

int lr_out_write(struct lr_outs *o, const char *path)
{
    int rc = ldm_st_write(path, o->t, o->n, NULL, 0);
    lr_out_free(o);
    return rc;
}

int lr_get_f32(const struct ldm_st *st, const char *name, int ndim,
               const struct ldm_st_tensor **t)
{
    int rc = ldm_st_find(st, name, t);
    if (rc)
        return rc;
    if ((*t)->dtype != LDM_DT_F32 || (*t)->ndim != ndim)
        return ldm_fail(LDM_EFORMAT, "%s: %s must be F32 with %d dimensions (it is %s with %d)",
                        ldm_st_label(st), name, ndim, ldm_dtype_name((*t)->dtype), (*t)->ndim);
    return 0;
}

int lr_get_ints(const struct ldm_st *st, const char *name, int64_t **v, size_t *n)
{
    const struct ldm_st_tensor *t;
    int rc = ldm_st_find(st, name, &t);
    if (rc)
        return rc;
    size_t es = ldm_dtype_size(t->dtype);
    if (t->dtype != LDM_DT_I64 && t->dtype != LDM_DT_I32 && t->dtype != LDM_DT_F32)
        return ldm_fail(LDM_EFORMAT, "%s: %s is %s (I64, I32 or F32 expected)", ldm_st_label(st),
                        name, ldm_dtype_name(t->dtype));
    *n = t->nbytes / es;
    *v = malloc((*n ? *n : 1) * sizeof **v);
    if (!*v)
        return ldm_fail(LDM_ENOMEM, "%s: %zu values", name, *n);
    for (size_t i = 0; i < *n; i++) {
        const unsigned char *p = (const unsigned char *)t->data + i * es;
        int64_t x;
        int32_t y;
        float f;
        if (t->dtype == LDM_DT_I64)
            memcpy(&x, p, 8);
        else if (t->dtype == LDM_DT_I32)
            memcpy(&y, p, 4), x = y;
        else
            memcpy(&f, p, 4), x = (int64_t)f;
        (*v)[i] = x;
    }
    return 0;
}
