/* ops_check.c — shape and dtype checks shared by the op wrappers. */
#include "nn/ops_check.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "err.h"

int opchk_begin(struct opchk *k, struct ldm_ctx *c, int op)
{
    k->c = c;
    k->op = op;
    k->dtype = -1;
    k->emu = 0;
    k->nemu = 0;
    k->t0 = 0;
    if (!c || !c->be)
        return ldm_fail(LDM_EINVAL, "%s: no compute context", ldm_op_name(op));
    return 0;
}

int opchk_fail(struct opchk *k, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ldm_fail(LDM_EINVAL, "%s: %s", ldm_op_name(k->op), buf);
}

static int has_data(struct opchk *k, const struct ldm_tensor *t, const char *what)
{
    if (t->ndim < 0 || t->ndim > LDM_TMAXDIM)
        return opchk_fail(k, "%s has %d dimensions", ldm_tensor_label(t, what), t->ndim);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0)
            return opchk_fail(k, "%s has a negative size", ldm_tensor_label(t, what));
    if (!k->c->planning && !t->data && ldm_tensor_numel(t) > 0)
        return opchk_fail(k, "%s has no data", ldm_tensor_label(t, what));
    return 0;
}

int opchk_float(struct opchk *k, const struct ldm_tensor *t, const char *what, int optional)
{
    if (!t) {
        if (optional)
            return 0;
        return opchk_fail(k, "%s is required", what);
    }
    int rc = has_data(k, t, what);
    if (rc)
        return rc;
    const char *dn = ldm_dtype_name(t->dtype);
    if (k->dtype < 0) {
        int known = t->dtype >= 0 && t->dtype < 32;
        int ok = known && (k->c->be->dtypes >> t->dtype & 1u);
        int emu = known && !ok && (k->c->be->emulated >> t->dtype & 1u);
        if (!ok && !emu)
            return ldm_fail(LDM_EUNSUPPORTED, "%s: %s is %s; the %s backend computes in F32",
                            ldm_op_name(k->op), ldm_tensor_label(t, what), dn ? dn : "?",
                            k->c->be->name);
        k->dtype = t->dtype;
        k->emu = emu;
    } else if (t->dtype != k->dtype) {
        return opchk_fail(k, "%s is %s, the other tensors %s", ldm_tensor_label(t, what),
                          dn ? dn : "?", ldm_dtype_name(k->dtype));
    }
    return 0;
}

int opchk_f32(struct opchk *k, const struct ldm_tensor *t, const char *what, int64_t count)
{
    if (!t)
        return opchk_fail(k, "%s is required", what);
    int rc = has_data(k, t, what);
    if (rc)
        return rc;
    if (t->dtype != LDM_DT_F32)
        return opchk_fail(k, "%s must be F32", ldm_tensor_label(t, what));
    if ((int64_t)ldm_tensor_numel(t) != count)
        return opchk_fail(k, "%s has %zu elements, expected %lld", ldm_tensor_label(t, what),
                          ldm_tensor_numel(t), (long long)count);
    return 0;
}

int opchk_shape(struct opchk *k, const struct ldm_tensor *t, const char *what, int ndim,
                const int64_t *shape)
{
    if (!t)
        return 0;
    struct ldm_tensor want = ldm_tensor_view(NULL, t->dtype, ndim, shape);
    if (ldm_tensor_same_shape(t, &want))
        return 0;
    char a[160], b[160];
    return opchk_fail(k, "%s has shape %s, expected %s", ldm_tensor_label(t, what),
                      ldm_tensor_shape_str(t, a, sizeof a),
                      ldm_tensor_shape_str(&want, b, sizeof b));
}

int opchk_ndim(struct opchk *k, const struct ldm_tensor *t, const char *what, int min_ndim,
               int max_ndim)
{
    if (t->ndim >= min_ndim && t->ndim <= max_ndim)
        return 0;
    char a[160];
    return opchk_fail(k, "%s has shape %s: %d to %d dimensions expected",
                      ldm_tensor_label(t, what), ldm_tensor_shape_str(t, a, sizeof a), min_ndim,
                      max_ndim);
}

void opchk_rows(const struct ldm_tensor *t, int64_t *M, int64_t *D)
{
    int64_t m = 1;
    for (int i = 0; i + 1 < t->ndim; i++)
        m *= t->shape[i];
    *M = m;
    *D = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

int opchk_int(struct opchk *k, int64_t v, const char *what)
{
    if (v >= 0 && v <= INT32_MAX)
        return 0;
    return opchk_fail(k, "%s (%lld) exceeds the 32-bit sizes BLAS takes", what, (long long)v);
}

int opchk_go(struct opchk *k, const void *dims, int have)
{
    struct ldm_ctx *c = k->c;
    if (!have)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: not implemented by the %s backend",
                        ldm_op_name(k->op), c->be->name);
    size_t need = c->be->workspace ? c->be->workspace(c, k->op, dims) : 0;
    if (c->planning) {
        if (need > c->ws_need)
            c->ws_need = need;
        return 1;
    }
    if (need > c->ws_bytes || (need > 0 && !c->ws))
        return ldm_fail(LDM_ERANGE, "%s: needs %zu bytes of workspace, the context has %zu",
                        ldm_op_name(k->op), need, c->ws ? c->ws_bytes : (size_t)0);
    int rc = c->be->bind ? c->be->bind(c) : 0;
    if (!rc && c->prof)
        rc = opchk_prof_start(k);
    return rc;
}

double opchk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int opchk_prof_start(struct opchk *k)
{
    int rc = k->c->be->sync ? k->c->be->sync(k->c) : 0;
    k->t0 = opchk_now();
    return rc;
}
