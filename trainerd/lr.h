/* lr.h — learning-rate schedules, as diffusers.optimization.get_scheduler (v0.26.3)
 * builds them on torch's LambdaLR, in double precision like Python's floats.
 *
 * LambdaLR gives optimiser step k (k = 1, 2, ...) the rate base_lr·λ(k − 1):
 * the scheduler's count is k − 1 while the k-th step runs. With W warmup and
 * T total steps (c = k − 1):
 *   warmup (every kind but constant), c < W:   λ = c / max(1, W)
 *   constant:              λ = 1
 *   constant_with_warmup:  λ = 1
 *   linear:                λ = max(0, (T − c) / max(1, T − W))
 *   cosine:                p = (c − W) / max(1, T − W);
 *                          λ = max(0, ½(1 + cos(π·cycles·2·p)))       cycles 0.5 by default
 *   cosine_with_restarts:  p as cosine; λ = 0 when p >= 1, else
 *                          max(0, ½(1 + cos(π·((cycles·p) mod 1))))    cycles 1 by default
 *   polynomial:            c > T: λ = lr_end / base_lr; else
 *                          λ = ((base_lr − lr_end)·(1 − (c − W)/(T − W))^power + lr_end) / base_lr
 *                          power 1, lr_end 1e−7 by default
 * each evaluated in the order diffusers writes it, so the rates equal
 * PyTorch's to the last bit. diffusers' scripts hand the scheduler W and T
 * times the number of processes (and, in older scripts, the gradient
 * accumulation steps) and step it as often; the ratios, and so the rates,
 * are the same as with optimiser steps, which is what this API takes.
 * Only cosine_with_restarts takes --lr_num_cycles in diffusers' scripts;
 * cosine keeps 0.5 there. piecewise_constant is not offered.
 */
#ifndef LDM_TRAINERD_LR_H
#define LDM_TRAINERD_LR_H

#include <stdint.h>

enum ldm_lr_kind {
    LDM_LR_CONSTANT = 0,
    LDM_LR_CONSTANT_WITH_WARMUP,
    LDM_LR_LINEAR,
    LDM_LR_COSINE,
    LDM_LR_COSINE_WITH_RESTARTS,
    LDM_LR_POLYNOMIAL,
    LDM_LR_KIND_COUNT
};

struct ldm_lr {
    int kind;             /* enum ldm_lr_kind */
    double base_lr;       /* learning_rate, >= 0 */
    int64_t warmup_steps; /* lr_warmup_steps W, >= 0 (constant ignores it) */
    int64_t total_steps;  /* max_train_steps T (linear, cosine, restarts, polynomial) */
    double cycles;        /* cosine: num_cycles (0.5); cosine_with_restarts: lr_num_cycles (1) */
    double power;         /* polynomial: lr_power (1) */
    double lr_end;        /* polynomial: the final rate (1e-7), < base_lr */
};

/* The kind named `name` ("linear", "cosine_with_restarts", ...) into *kind.
 * Returns 0, or LDM_ECONFIG naming the key "lr_scheduler" and the names it
 * knows (piecewise_constant included, as not supported). */
int ldm_lr_parse(const char *name, int *kind);

/* The name of a kind ("cosine"), or "?" for a value that is none. */
const char *ldm_lr_name(int kind);

/* Fill *s for `kind` with diffusers' defaults for that kind (cycles 0.5 for
 * cosine, 1 otherwise; power 1; lr_end 1e-7). Change fields after, then
 * check with ldm_lr_check. */
void ldm_lr_init(struct ldm_lr *s, int kind, double base_lr, int64_t warmup_steps,
                 int64_t total_steps);

/* Check *s as get_scheduler would use it. Returns 0 or LDM_ECONFIG naming
 * the key: lr_scheduler (an unknown kind), learning_rate (negative or not
 * finite), lr_warmup_steps (negative), max_train_steps (negative, or for
 * polynomial not above lr_warmup_steps: diffusers divides by T − W there),
 * lr_num_cycles (not finite), lr_power (polynomial: negative or not
 * finite), lr_end (polynomial:
 * not below learning_rate, as diffusers requires, or negative). */
int ldm_lr_check(const struct ldm_lr *s);

/* The rate of optimiser step `step` (1 on the first; a smaller value is
 * taken as 1): base_lr·λ(step − 1). *s must pass ldm_lr_check. */
double ldm_lr_at(const struct ldm_lr *s, int64_t step);

#endif
