/* sampler.h — the evaluation samplers: diffusers v0.26.3's DDIMScheduler (η),
 * PNDMScheduler (PLMS, the SD-1.x pipeline default, and its PRK warm-up),
 * EulerDiscreteScheduler (no churn), and FlowMatchEulerDiscreteScheduler
 * (static shift, as diffusers' later releases), step by step; plus
 * classifier-free guidance.
 *
 * A sampler does not run the model: the caller's loop is the pipeline's,
 *
 *     K = ldm_sampler_steps(s)
 *     latents = x_T · ldm_sampler_init_noise_sigma(s)        (float32 product)
 *     for i in 0..K−1:
 *         ldm_sampler_scale_input(s, i, in, latents, n)      (Euler: x/√(σ²+1))
 *         model_out = UNet(in, timestep ldm_sampler_timestep(s, i))
 *                     (with guidance: ldm_cfg_combine of the two halves)
 *         ldm_sampler_step(s, i, model_out, latents, n, rng, NULL)
 *
 * on host F32 arrays of n = N·S elements (N samples of S elements). A model
 * call's timestep is the float diffusers hands the UNet: an integer for DDIM
 * and PNDM, a float for Euler (interpolated) and flow (σ·T).
 *
 * The config is a diffusers scheduler_config.json object. _class_name picks
 * the kind unless a kind ("ddim", "pndm", "euler", "flow") is given, and then
 * the config is read as diffusers' from_config reads it into that class: the
 * class's own defaults for absent keys (timestep_spacing "leading" for DDIM
 * and PNDM, "linspace" for Euler; set_alpha_to_one true for DDIM, false for
 * PNDM; clip_sample true for DDIM; skip_prk_steps false), other keys
 * ignored (PNDM has no rescale_betas_zero_snr). Read: the betas of
 * models/schedule.h (num_train_timesteps, beta_*, rescale_betas_zero_snr,
 * prediction_type epsilon | v_prediction | sample), timestep_spacing
 * linspace | leading | trailing, steps_offset, set_alpha_to_one,
 * clip_sample / clip_sample_range (DDIM), skip_prk_steps (PNDM),
 * interpolation_type "linear", use_karras_sigmas, sigma_min / sigma_max,
 * timestep_type (Euler), shift (flow). Features outside these (thresholding,
 * log_linear interpolation, continuous v-prediction timesteps, dynamic
 * shifting, ...) are refused with LDM_EUNSUPPORTED naming the key.
 *
 * Numbers: every step is float32 arithmetic in diffusers' order of
 * operations on a CPU; the timesteps and sigmas are computed as numpy and
 * torch compute them (numpy's arange, linspace and interp in float64, the
 * cast to float32 where diffusers casts). The result equals diffusers bit
 * for bit, except Karras timesteps (diffusers takes log σ with numpy's
 * vectorised float32 log, which differs from the C library's in the last
 * bit for some σ: the timestep may move by an ulp or two; the σ do not) and
 * the initial noise (see ldm_sampler_randn).
 *
 * A sampler holds the step history (PNDM keeps its last four model outputs
 * and a sample); use one per sampling loop, one thread at a time.
 */
#ifndef LDM_MODELS_SAMPLER_H
#define LDM_MODELS_SAMPLER_H

#include <jansson.h>
#include <stdint.h>

struct ldm_rng;

enum ldm_sampler_kind {
    LDM_SAMPLER_DDIM = 0, /* "ddim": DDIMScheduler */
    LDM_SAMPLER_PNDM,     /* "pndm": PNDMScheduler */
    LDM_SAMPLER_EULER,    /* "euler": EulerDiscreteScheduler */
    LDM_SAMPLER_FLOW      /* "flow": FlowMatchEulerDiscreteScheduler */
};

struct ldm_sampler;

/* Build a sampler for `num_inference_steps` (1..num_train_timesteps) from a
 * scheduler config (see above; not kept). `kind` overrides _class_name, or
 * is NULL. `eta` is DDIM's η (0: deterministic DDIM, 1: DDPM-like); other
 * kinds ignore it. `what` names the config in error details (e.g. the
 * file). *out is the caller's; free it with ldm_sampler_free. Returns 0,
 * LDM_EINVAL (a step count outside 1..T, η < 0, an unknown kind),
 * LDM_EFORMAT (a key of the wrong type), LDM_ECONFIG (no _class_name and no
 * kind; a value out of range; a step count whose timesteps fall outside
 * 0..T−1, such as leading spacing with steps_offset at T steps),
 * LDM_EUNSUPPORTED (a scheduler class, spacing or feature not built, named)
 * or LDM_ENOMEM. */
int ldm_sampler_new(struct ldm_sampler **out, const json_t *config, const char *kind,
                    int num_inference_steps, double eta, const char *what);

/* Free *s (NULL is fine) and set it NULL. */
void ldm_sampler_free(struct ldm_sampler **s);

/* The kind (enum ldm_sampler_kind), and its name ("ddim", ...). */
int ldm_sampler_kind(const struct ldm_sampler *s);
const char *ldm_sampler_kind_name(int kind);

/* How many model calls (and steps) the loop makes: num_inference_steps for
 * DDIM, Euler and flow (Euler's trailing spacing may give one more, as
 * numpy's arange does for some counts); PNDM: steps + 1 with
 * skip_prk_steps (its first two calls share a timestep), steps + 9 without. */
int ldm_sampler_steps(const struct ldm_sampler *s);

/* The timestep the model gets at call i (0 <= i < steps); NaN outside. */
float ldm_sampler_timestep(const struct ldm_sampler *s, int i);

/* The noise level σ at call i of Euler and flow, 0 <= i <= steps (the last
 * is 0); NaN for DDIM and PNDM and outside. */
float ldm_sampler_sigma(const struct ldm_sampler *s, int i);

/* What x_T ~ N(0, I) is multiplied by to start: 1 for DDIM, PNDM and flow;
 * Euler: σ_max for linspace and trailing spacing, √(σ_max² + 1) for
 * leading. */
float ldm_sampler_init_noise_sigma(const struct ldm_sampler *s);

/* out (n) = the model input at call i for `sample` (n): Euler divides by
 * √(σ_i² + 1), the others copy. out may be sample. Returns 0, LDM_ERANGE
 * (i outside 0..steps−1) or LDM_EINVAL (n < 1). */
int ldm_sampler_scale_input(const struct ldm_sampler *s, int i, float *out, const float *sample,
                            int64_t n);

/* Step call i: sample (n, updated in place) from model_output (n). Calls go
 * in order 0, 1, ..., steps−1; i = 0 starts over (clearing the history).
 * DDIM with η > 0 adds std·noise: `noise` (n) when not NULL, else n normal
 * draws from `rng` (ldm_sampler_randn); both are ignored otherwise and may
 * be NULL. PNDM keeps n from call 0 on. Returns 0, LDM_ERANGE (i outside
 * 0..steps−1), LDM_EINVAL (a call out of order, n < 1 or another n than
 * call 0's, η > 0 with neither noise nor rng) or LDM_ENOMEM (PNDM's
 * history, at call 0). */
int ldm_sampler_step(struct ldm_sampler *s, int i, const float *model_output, float *sample,
                     int64_t n, struct ldm_rng *rng, const float *noise);

/* n standard normal floats from r (Box–Muller on pairs of 53-bit uniforms:
 * cos then sin; an odd n drops the last sin). Deterministic for a stream on
 * every machine with the same libm; not torch's generator. Returns 0 or
 * LDM_EINVAL (n < 0). */
int ldm_sampler_randn(struct ldm_rng *r, float *out, int64_t n);

/* Classifier-free guidance, as diffusers' pipelines in float32:
 * out = uncond + scale·(cond − uncond), n elements. out may be uncond or
 * cond. Returns 0 or LDM_EINVAL (n < 0). */
int ldm_cfg_combine(float *out, const float *uncond, const float *cond, int64_t n, double scale);

/* diffusers' rescale_noise_cfg (guidance_rescale, for zero-terminal-SNR
 * models), in place on noise_cfg (N, S) given cond (N, S): per sample,
 * r = std(cond)/std(noise_cfg) (unbiased, accumulated in double as torch
 * does), noise_cfg = φ·r·noise_cfg + (1 − φ)·noise_cfg. Returns 0 or
 * LDM_EINVAL (N < 0, S < 2). */
int ldm_cfg_rescale(float *noise_cfg, const float *cond, int64_t N, int64_t S,
                    double guidance_rescale);

#endif
