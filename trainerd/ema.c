/* ema.c — diffusers EMAModel's decay schedule and one EMA step over arrays of
 * tensors (the update itself is the op ldm_ema_update). */
#include "trainerd/ema.h"

#include <math.h>

#include "err.h"

void ldm_ema_cfg_default(struct ldm_ema_cfg *cfg)
{
    cfg->decay = 0.9999;
    cfg->min_decay = 0.0;
    cfg->update_after_step = 0;
    cfg->use_warmup = 0;
    cfg->inv_gamma = 1.0;
    cfg->power = 2.0 / 3.0;
}

int ldm_ema_cfg_check(const struct ldm_ema_cfg *cfg)
{
    if (!(cfg->decay >= 0.0 && cfg->decay <= 1.0))
        return ldm_fail(LDM_ECONFIG, "ema_decay: %g is outside [0, 1]", cfg->decay);
    if (!(cfg->min_decay >= 0.0 && cfg->min_decay <= 1.0))
        return ldm_fail(LDM_ECONFIG, "ema_min_decay: %g is outside [0, 1]", cfg->min_decay);
    if (cfg->update_after_step < 0)
        return ldm_fail(LDM_ECONFIG, "ema_update_after_step: %lld must be >= 0",
                        (long long)cfg->update_after_step);
    if (!cfg->use_warmup)
        return 0;
    if (!(cfg->inv_gamma > 0.0) || isinf(cfg->inv_gamma))
        return ldm_fail(LDM_ECONFIG, "ema_inv_gamma: %g must be finite and > 0", cfg->inv_gamma);
    if (!isfinite(cfg->power))
        return ldm_fail(LDM_ECONFIG, "ema_power: %g must be finite", cfg->power);
    return 0;
}

double ldm_ema_decay_at(const struct ldm_ema_cfg *cfg, int64_t optimization_step)
{
    int64_t step = optimization_step - cfg->update_after_step - 1;
    if (step <= 0)
        return 0.0;
    double d;
    if (cfg->use_warmup)
        d = 1.0 - pow(1.0 + (double)step / cfg->inv_gamma, -cfg->power);
    else
        d = (double)(1 + step) / (double)(10 + step);
    if (cfg->decay < d) /* Python's min(d, decay) */
        d = cfg->decay;
    if (cfg->min_decay > d) /* max(d, min_decay) */
        d = cfg->min_decay;
    return d;
}

int ldm_ema_apply(struct ldm_ctx *c, const struct ldm_tensor *ema,
                  const struct ldm_tensor *params, int n, double decay)
{
    if (n < 0 || (n > 0 && (!ema || !params)))
        return ldm_fail(LDM_EINVAL, "ema step: %d tensors, or no arrays", n);
    if (!(decay >= 0.0 && decay <= 1.0))
        return ldm_fail(LDM_EINVAL, "ema step: decay %g is outside [0, 1]", decay);
    for (int i = 0; i < n; i++) {
        /* no cast: the op's decay parameter gets all the precision it can hold */
        int rc = ldm_ema_update(c, &ema[i], &params[i], decay);
        if (rc)
            return rc;
    }
    return 0;
}
