/* schedule.h — diffusers DDPMScheduler noise schedules: betas, alphas_cumprod,
 * add_noise and get_velocity, with diffusers' float32 arithmetic.
 *
 * A schedule is built from a config (a diffusers scheduler_config.json, or
 * the fields set by hand) and holds T = num_train_timesteps values of beta
 * and alphas_cumprod in host memory, F32, computed as diffusers v0.26.3 does
 * on a CPU with PyTorch: betas in float32 (torch.linspace, or float64 for
 * squaredcos_cap_v2 then cast), the optional zero-terminal-SNR rescale in
 * float32, and the cumulative product accumulated in float64 with each
 * partial product stored as float32 (torch.cumprod on CPU).
 *
 * add_noise and get_velocity work on host F32 arrays of N samples of S
 * elements each, with one integer timestep per sample:
 *   a = sqrt(alphas_cumprod[t]),  b = sqrt(1 − alphas_cumprod[t])  (float32)
 *   add_noise:    out = a·x0 + b·noise
 *   get_velocity: out = a·noise − b·x0
 */
#ifndef LDM_MODELS_SCHEDULE_H
#define LDM_MODELS_SCHEDULE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum ldm_beta_schedule {
    LDM_BETA_LINEAR = 0,      /* linspace(beta_start, beta_end, T) */
    LDM_BETA_SCALED_LINEAR,   /* linspace(sqrt(beta_start), sqrt(beta_end), T)² */
    LDM_BETA_SQUAREDCOS_CAP_V2 /* cosine ᾱ (t+0.008)/1.008, betas capped at 0.999 */
};

enum ldm_prediction {
    LDM_PRED_EPSILON = 0, /* "epsilon" */
    LDM_PRED_V,           /* "v_prediction" */
    LDM_PRED_SAMPLE       /* "sample" */
};

/* The DDPMScheduler config fields a schedule uses. Defaults (as diffusers):
 * T 1000, linear, beta_start 1e-4, beta_end 0.02, no rescale, epsilon. */
struct ldm_sched_config {
    int64_t num_train_timesteps;
    int beta_schedule;          /* enum ldm_beta_schedule */
    double beta_start, beta_end;
    int rescale_betas_zero_snr;
    int prediction_type;        /* enum ldm_prediction (not used here; for trainers) */
};

struct ldm_schedule {
    int64_t T;             /* num_train_timesteps */
    float *betas;          /* (T), owned */
    float *alphas_cumprod; /* (T), owned */
};

/* Fill *cfg with the defaults above. */
void ldm_sched_config_default(struct ldm_sched_config *cfg);

/* Read a scheduler config object (scheduler_config.json's fields; unknown
 * keys are ignored) into *cfg, starting from the defaults. `what` names the
 * source in error details. Returns 0, LDM_EFORMAT (a field of the wrong
 * type, naming it), LDM_ECONFIG (a value out of range: T < 1, a beta
 * outside (0, 1), beta_end < beta_start) or LDM_EUNSUPPORTED (a
 * beta_schedule, prediction_type or trained_betas this module does not
 * compute, naming it). */
int ldm_sched_config_from_json(struct ldm_sched_config *cfg, const json_t *obj, const char *what);

/* Build *s from *cfg (its arrays are s's; free with ldm_sched_free).
 * Returns 0, LDM_ECONFIG (as above, or a rescale with T < 2) or
 * LDM_ENOMEM. On failure *s is empty. */
int ldm_sched_init(struct ldm_schedule *s, const struct ldm_sched_config *cfg);

/* Free s's arrays and empty it (an empty one is fine). */
void ldm_sched_free(struct ldm_schedule *s);

/* out (N, S) = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise with t = timesteps[n]
 * for sample n. out may be x0 or noise (in place). Returns 0 or LDM_ERANGE
 * naming the sample whose timestep is outside 0..T−1 (out is then partly
 * written). */
int ldm_sched_add_noise(const struct ldm_schedule *s, float *out, const float *x0,
                        const float *noise, const int64_t *timesteps, int64_t N, int64_t S);

/* out (N, S) = sqrt(ᾱ_t)·noise − sqrt(1 − ᾱ_t)·x0 (the v-prediction
 * target). As ldm_sched_add_noise otherwise. */
int ldm_sched_velocity(const struct ldm_schedule *s, float *out, const float *x0,
                       const float *noise, const int64_t *timesteps, int64_t N, int64_t S);

#endif
