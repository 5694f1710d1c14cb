/* sampler_int.h — sampler internals shared by sampler.c (config, lifecycle,
 * guidance), sampler_sched.c (timesteps and sigmas) and sampler_step.c (the
 * step arithmetic). */
#ifndef LDM_MODELS_SAMPLER_INT_H
#define LDM_MODELS_SAMPLER_INT_H

#include <stdint.h>

#include "models/sampler.h"
#include "models/schedule.h"

enum sp_spacing { SP_LINSPACE = 0, SP_LEADING, SP_TRAILING };

/* PNDM's pseudo-numerical warm-up without skip_prk_steps: 4 Runge–Kutta
 * steps of 3 extra calls. */
#define SP_PRK_CALLS 12

struct ldm_sampler {
    int kind;                /* enum ldm_sampler_kind */
    int pred;                /* enum ldm_prediction */
    int spacing;             /* enum sp_spacing */
    int n_inference;         /* num_inference_steps */
    int steps;               /* K model calls */
    int64_t T;               /* num_train_timesteps */
    int64_t steps_offset;    /* leading spacing only */
    double eta;              /* DDIM */
    int clip_sample;         /* DDIM */
    double clip_range;       /* DDIM */
    int skip_prk;            /* PNDM */
    int prk_calls;           /* PNDM: SP_PRK_CALLS or 0 */
    int karras;              /* Euler */
    double sigma_min, sigma_max; /* Euler with Karras sigmas: NaN = from the schedule */
    double shift;            /* flow */
    float final_ac;          /* ᾱ past timestep 0: 1 (set_alpha_to_one) or ᾱ_0 */
    struct ldm_schedule sched; /* betas and ᾱ (T); empty for flow */
    int64_t *t_int;          /* (K) DDIM and PNDM timesteps */
    float *timesteps;        /* (K) what the model gets */
    float *sigmas;           /* (K + 1) Euler and flow, else NULL */
    float init_sigma;
    /* the loop state */
    int next;                /* the call expected next */
    int64_t n;               /* elements of the PNDM history (0: none yet) */
    float *hist;             /* PNDM: 6n floats: ets[4], cur_sample, cur_model_output */
    int nets, ets_head;      /* PNDM: model outputs kept (≤ 4), the newest's slot */
    float *noise;            /* DDIM η > 0: (noise_n) draws from the caller's rng */
    int64_t noise_n;
};

/* Fill s->t_int / s->timesteps / s->sigmas and s->steps, s->init_sigma for
 * the kind and config fields already set (and s->sched built). `what`
 * names the config in errors. Returns 0, LDM_ECONFIG (a timestep outside
 * 0..T−1) or LDM_ENOMEM. */
int sp_build_timesteps(struct ldm_sampler *s, const char *what);

/* The steps of each kind on n elements; sample in place. */
void sp_step_ddim(const struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n,
                  const float *noise);
void sp_step_pndm(struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n);
void sp_step_euler(const struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n);
void sp_step_flow(const struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n);

#endif
