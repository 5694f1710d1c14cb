/* ops_train.c — the op wrappers of the 8-bit AdamW step and the EMA update:
 * shape and dtype checks, then the backend's entry (contracts in backend.h). */
#include <math.h>

#include "err.h"
#include "nn/ops_check.h"

#define CK(e)                                                                                      \
    do {                                                                                           \
        int rc_ = (e);                                                                             \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

#define GO(k, d, entry)                                                                            \
    do {                                                                                           \
        int rc_ = opchk_go(&(k), &(d), (k).c->be->entry != NULL);                                  \
        if (rc_)                                                                                   \
            return rc_ > 0 ? 0 : rc_;                                                              \
    } while (0)

/* t: a float tensor of the op's dtype that must be F32, shaped as ref when given. */
static int f32_like(struct opchk *k, const struct ldm_tensor *t, const char *what,
                    const struct ldm_tensor *ref)
{
    CK(opchk_float(k, t, what, 0));
    if (t->dtype != LDM_DT_F32)
        return opchk_fail(k, "%s must be F32", ldm_tensor_label(t, what));
    return ref ? opchk_shape(k, t, what, ref->ndim, ref->shape) : 0;
}

/* t: U8 codes shaped as ref, with data unless planning or empty. */
static int codes_like(struct opchk *k, const struct ldm_tensor *t, const char *what,
                      const struct ldm_tensor *ref)
{
    if (!t)
        return opchk_fail(k, "%s is required", what);
    if (t->dtype != LDM_DT_U8) {
        const char *dn = ldm_dtype_name(t->dtype);
        return opchk_fail(k, "%s is %s; 8-bit codes must be U8", ldm_tensor_label(t, what),
                          dn ? dn : "?");
    }
    CK(opchk_shape(k, t, what, ref->ndim, ref->shape));
    if (!k->c->planning && !t->data && ldm_tensor_numel(t) > 0)
        return opchk_fail(k, "%s has no data", ldm_tensor_label(t, what));
    return 0;
}

/* The hyperparameters adamw_step accepts. */
static int adam_opts_ok(struct opchk *k, const struct ldm_adamw_opts *o)
{
    if (!o || o->step < 1)
        return opchk_fail(k, "options with step >= 1 are required");
    if (!(o->lr >= 0.0) || !(o->beta1 >= 0.0 && o->beta1 < 1.0) ||
        !(o->beta2 >= 0.0 && o->beta2 < 1.0) || !(o->eps > 0.0) || !(o->weight_decay >= 0.0) ||
        isinf(o->lr) || isinf(o->eps) || isinf(o->weight_decay))
        return opchk_fail(k, "bad hyperparameters (lr %g, betas %g %g, eps %g, wd %g)", o->lr,
                          o->beta1, o->beta2, o->eps, o->weight_decay);
    return 0;
}

int ldm_adamw8_step(struct ldm_ctx *c, const struct ldm_tensor *param,
                    const struct ldm_tensor *grad, const struct ldm_tensor *m_q,
                    const struct ldm_tensor *v_q, const struct ldm_tensor *m_absmax,
                    const struct ldm_tensor *v_absmax, const struct ldm_adamw_opts *o)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_ADAMW8));
    CK(f32_like(&k, param, "param", NULL));
    CK(f32_like(&k, grad, "grad", param));
    CK(codes_like(&k, m_q, "m_q", param));
    CK(codes_like(&k, v_q, "v_q", param));
    int64_t n = (int64_t)ldm_tensor_numel(param);
    int64_t nblocks = (n + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
    CK(opchk_f32(&k, m_absmax, "m_absmax", nblocks));
    CK(opchk_f32(&k, v_absmax, "v_absmax", nblocks));
    CK(adam_opts_ok(&k, o));
    struct ldm_train_dims d = {.n = n, .nblocks = nblocks, .lr = o->lr, .beta1 = o->beta1,
                               .beta2 = o->beta2, .eps = o->eps,
                               .weight_decay = o->weight_decay, .step = o->step,
                               .dtype = LDM_DT_F32};
    GO(k, d, adamw8);
    return opchk_end(&k, c->be->adamw8(c, &d, param->data, grad->data, m_q->data, v_q->data,
                                       m_absmax->data, v_absmax->data));
}

int ldm_ema_update(struct ldm_ctx *c, const struct ldm_tensor *ema,
                   const struct ldm_tensor *param, double decay)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_EMA));
    CK(f32_like(&k, ema, "ema", NULL));
    CK(f32_like(&k, param, "param", ema));
    if (!(decay >= 0.0 && decay <= 1.0))
        return opchk_fail(&k, "decay %g is outside [0, 1]", decay);
    struct ldm_train_dims d = {.n = (int64_t)ldm_tensor_numel(ema), .decay = decay,
                               .dtype = LDM_DT_F32};
    GO(k, d, ema);
    return opchk_end(&k, c->be->ema(c, &d, ema->data, param->data));
}
