/* ema.h — the exponential moving average of the trained weights, as diffusers'
 * EMAModel (v0.26.3) keeps it: its decay schedule (get_decay) as a pure
 * function of the step, and one EMA step over arrays of tensors.
 *
 * EMAModel.step increments its optimization_step first, then asks
 * get_decay(optimization_step): the k-th EMA step (k = 1 after the first
 * optimiser step) uses ldm_ema_decay_at(cfg, k). With
 * s = max(0, k − update_after_step − 1):
 *   s == 0:       decay 0 (the EMA copies the weights)
 *   use_warmup:   d = 1 − (1 + s / inv_gamma)^(−power)
 *   otherwise:    d = (1 + s) / (10 + s)
 *   then d = min(d, decay), then max(d, min_decay); in double, as Python.
 * The update of each tensor is ema −= (1 − d)·(ema − param) in float32
 * (ldm_ema_update). torch rounds the double 1 − d to float; the op takes d
 * itself as a float, and 1 − (float)d can differ from that by up to 2^−25,
 * which moves a result by up to about 2^−24·|ema − param|: bit-exact for
 * most elements, more than an ulp off only where ema is small beside
 * ema − param.
 */
#ifndef LDM_TRAINERD_EMA_H
#define LDM_TRAINERD_EMA_H

#include <stdint.h>

#include "nn/backend.h"

struct ldm_ema_cfg {
    double decay;              /* ema_decay, the largest decay: 0.9999 */
    double min_decay;          /* ema_min_decay: 0 */
    int64_t update_after_step; /* ema_update_after_step: 0 */
    int use_warmup;            /* ema_use_warmup: 0 */
    double inv_gamma;          /* ema_inv_gamma: 1 (warmup only) */
    double power;              /* ema_power: 2/3 (warmup only) */
};

/* EMAModel's defaults (above). */
void ldm_ema_cfg_default(struct ldm_ema_cfg *cfg);

/* Returns 0, or LDM_ECONFIG naming the key: ema_decay or ema_min_decay
 * outside [0, 1], ema_update_after_step negative, ema_inv_gamma not > 0 or
 * ema_power not finite (checked when use_warmup). */
int ldm_ema_cfg_check(const struct ldm_ema_cfg *cfg);

/* get_decay(optimization_step): the decay of the EMA step numbered
 * `optimization_step` (1 for the first). */
double ldm_ema_decay_at(const struct ldm_ema_cfg *cfg, int64_t optimization_step);

/* One EMA step: ldm_ema_update(c, &ema[i], &params[i], (float)decay) for
 * i = 0..n−1 (ema[i] and params[i] F32, the same shape). The tensors stay
 * the caller's. Returns 0, or the first failing update's code (LDM_EINVAL
 * naming the tensor; LDM_EINVAL for n < 0 or decay outside [0, 1]). */
int ldm_ema_apply(struct ldm_ctx *c, const struct ldm_tensor *ema,
                  const struct ldm_tensor *params, int n, double decay);

#endif
