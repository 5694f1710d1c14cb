/* ops_cast.c — the dtype conversion op (backend.h: cast). */
#include "err.h"
#include "nn/ops_check.h"

static int castable(int dt)
{
    return dt == LDM_DT_F32 || dt == LDM_DT_F16 || dt == LDM_DT_BF16;
}

static int cast_tensor(struct opchk *k, const struct ldm_tensor *t, const char *what)
{
    if (!t)
        return opchk_fail(k, "%s is required", what);
    const char *dn = ldm_dtype_name(t->dtype);
    if (!castable(t->dtype))
        return opchk_fail(k, "%s is %s; cast takes F32, F16 and BF16", ldm_tensor_label(t, what),
                          dn ? dn : "?");
    unsigned ok = k->c->be->dtypes | k->c->be->emulated;
    if (!(ok >> t->dtype & 1u))
        return ldm_fail(LDM_EUNSUPPORTED, "cast: %s is %s; the %s backend has no such dtype",
                        ldm_tensor_label(t, what), dn, k->c->be->name);
    if (!k->c->planning && !t->data && ldm_tensor_numel(t) > 0)
        return opchk_fail(k, "%s has no data", ldm_tensor_label(t, what));
    return 0;
}

int ldm_cast(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
             float alpha, int accumulate)
{
    struct opchk k;
    int rc = opchk_begin(&k, c, LDM_OP_CAST);
    if (!rc)
        rc = cast_tensor(&k, y, "y");
    if (!rc)
        rc = cast_tensor(&k, x, "x");
    if (rc)
        return rc;
    if (ldm_tensor_numel(x) != ldm_tensor_numel(y))
        return opchk_fail(&k, "%s has %zu elements, %s %zu", ldm_tensor_label(y, "y"),
                          ldm_tensor_numel(y), ldm_tensor_label(x, "x"), ldm_tensor_numel(x));
    if (x->data == y->data && x->dtype != y->dtype && ldm_tensor_numel(x) > 0)
        return opchk_fail(&k, "x and y are the same memory in two dtypes");
    struct ldm_cast_dims d = {.n = (int64_t)ldm_tensor_numel(x), .xdtype = x->dtype,
                              .ydtype = y->dtype, .alpha = alpha == 0.0f ? 1.0f : alpha,
                              .accumulate = accumulate != 0, .dtype = y->dtype};
    rc = opchk_go(&k, &d, c->be->cast != NULL);
    if (rc)
        return rc > 0 ? 0 : rc;
    return opchk_end(&k, c->be->cast(c, &d, y->data, x->data));
}
