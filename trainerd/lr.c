/* lr.c — learning-rate schedules: diffusers' LambdaLR lambdas in double precision,
 * each written in the order of operations of diffusers' optimization.py so
 * that the rates match Python's to the bit. */
#include "trainerd/lr.h"

#include <math.h>
#include <string.h>

#include "err.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* Python rounds every product before a sum */
#endif

static const char *const NAMES[LDM_LR_KIND_COUNT] = {
    [LDM_LR_CONSTANT] = "constant",
    [LDM_LR_CONSTANT_WITH_WARMUP] = "constant_with_warmup",
    [LDM_LR_LINEAR] = "linear",
    [LDM_LR_COSINE] = "cosine",
    [LDM_LR_COSINE_WITH_RESTARTS] = "cosine_with_restarts",
    [LDM_LR_POLYNOMIAL] = "polynomial",
};

int ldm_lr_parse(const char *name, int *kind)
{
    for (int i = 0; i < LDM_LR_KIND_COUNT; i++)
        if (name && strcmp(name, NAMES[i]) == 0) {
            *kind = i;
            return 0;
        }
    return ldm_fail(LDM_ECONFIG,
                    "lr_scheduler: unknown schedule \"%s\" (constant, constant_with_warmup, "
                    "linear, cosine, cosine_with_restarts, polynomial; piecewise_constant is not "
                    "supported)",
                    name ? name : "(null)");
}

const char *ldm_lr_name(int kind)
{
    return kind >= 0 && kind < LDM_LR_KIND_COUNT ? NAMES[kind] : "?";
}

void ldm_lr_init(struct ldm_lr *s, int kind, double base_lr, int64_t warmup_steps,
                 int64_t total_steps)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->base_lr = base_lr;
    s->warmup_steps = warmup_steps;
    s->total_steps = total_steps;
    s->cycles = kind == LDM_LR_COSINE ? 0.5 : 1.0;
    s->power = 1.0;
    s->lr_end = 1e-7;
}

int ldm_lr_check(const struct ldm_lr *s)
{
    if (s->kind < 0 || s->kind >= LDM_LR_KIND_COUNT)
        return ldm_fail(LDM_ECONFIG, "lr_scheduler: unknown schedule kind %d", s->kind);
    if (!isfinite(s->base_lr) || s->base_lr < 0.0)
        return ldm_fail(LDM_ECONFIG, "learning_rate: %g must be finite and >= 0", s->base_lr);
    if (s->warmup_steps < 0)
        return ldm_fail(LDM_ECONFIG, "lr_warmup_steps: %lld must be >= 0",
                        (long long)s->warmup_steps);
    if (s->total_steps < 0)
        return ldm_fail(LDM_ECONFIG, "max_train_steps: %lld must be >= 0",
                        (long long)s->total_steps);
    if (!isfinite(s->cycles))
        return ldm_fail(LDM_ECONFIG, "lr_num_cycles: %g must be finite", s->cycles);
    if (s->kind != LDM_LR_POLYNOMIAL)
        return 0;
    if (!isfinite(s->power) || s->power < 0.0)
        return ldm_fail(LDM_ECONFIG, "lr_power: %g must be finite and >= 0", s->power);
    if (s->total_steps <= s->warmup_steps)
        return ldm_fail(LDM_ECONFIG,
                        "max_train_steps: %lld must exceed lr_warmup_steps (%lld) for the "
                        "polynomial schedule",
                        (long long)s->total_steps, (long long)s->warmup_steps);
    if (!(s->lr_end >= 0.0) || !(s->base_lr > s->lr_end))
        return ldm_fail(LDM_ECONFIG, "lr_end: %g must be >= 0 and below learning_rate (%g)",
                        s->lr_end, s->base_lr);
    return 0;
}

/* Python's max(0.0, x): 0.0 unless x > 0.0. */
static double max0(double x)
{
    return x > 0.0 ? x : 0.0;
}

/* Python's x % 1.0 for floats: fmod, moved into [0, 1) for a negative x. */
static double mod1(double x)
{
    double r = fmod(x, 1.0);
    if (r != 0.0)
        return r < 0.0 ? r + 1.0 : r;
    return 0.0; /* +0, as Python gives */
}

/* get_polynomial_decay_schedule_with_warmup's lambda after the warmup. */
static double poly_lambda(const struct ldm_lr *s, int64_t c)
{
    double lr_init = s->base_lr;
    if (c > s->total_steps)
        return s->lr_end / lr_init;
    double lr_range = lr_init - s->lr_end;
    int64_t decay_steps = s->total_steps - s->warmup_steps;
    double pct_remaining = 1.0 - (double)(c - s->warmup_steps) / (double)decay_steps;
    double decay = lr_range * pow(pct_remaining, s->power) + s->lr_end;
    return decay / lr_init;
}

/* λ(c) for the scheduler's count c >= 0. */
static double lr_lambda(const struct ldm_lr *s, int64_t c)
{
    int64_t W = s->warmup_steps, T = s->total_steps;
    if (s->kind == LDM_LR_CONSTANT)
        return 1.0;
    if (c < W)
        return (double)c / (double)(W > 1 ? W : 1);
    if (s->kind == LDM_LR_CONSTANT_WITH_WARMUP)
        return 1.0;
    if (s->kind == LDM_LR_POLYNOMIAL)
        return poly_lambda(s, c);
    int64_t span = T - W > 1 ? T - W : 1;
    if (s->kind == LDM_LR_LINEAR)
        return max0((double)(T - c) / (double)span);
    double progress = (double)(c - W) / (double)span;
    if (s->kind == LDM_LR_COSINE)
        return max0(0.5 * (1.0 + cos(M_PI * s->cycles * 2.0 * progress)));
    if (progress >= 1.0) /* cosine_with_restarts */
        return 0.0;
    return max0(0.5 * (1.0 + cos(M_PI * mod1(s->cycles * progress))));
}

double ldm_lr_at(const struct ldm_lr *s, int64_t step)
{
    int64_t c = step > 1 ? step - 1 : 0;
    return s->base_lr * lr_lambda(s, c);
}
