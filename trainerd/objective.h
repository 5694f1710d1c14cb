/* objective.h — what the UNet is trained to predict: noise, timesteps, targets and
 * per-sample loss weights for one micro-batch.
 *
 * Every random draw of a sample comes from its own counter-based stream, keyed by
 * (seed, optimiser step, the sample's position in the global batch), so the same
 * global batch gives the same draws on 1 rank or on many, with or without gradient
 * accumulation, and after a resume.
 *
 * Objectives, as diffusers' training scripts compute them (float32):
 *  - epsilon:      t ~ U{0..T−1}; x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε; target ε
 *  - v_prediction: the same x_t; target √ᾱ_t·ε − √(1−ᾱ_t)·x0
 *  - flow (rectified flow, as SD3): σ ∈ (0, 1) from a logit-normal
 *    (sigmoid(N(m, s))) or uniform draw; x_σ = (1−σ)·x0 + σ·ε; target ε − x0;
 *    the UNet sees timestep σ·T (continuous).
 * Offset noise: ε += offset·n_c with one normal draw per (sample, channel).
 * Min-SNR-γ (Hang et al., diffusers' --snr_gamma): with snr = ᾱ/(1−ᾱ), weight
 * min(snr, γ)/snr for epsilon and min(snr, γ)/(snr + 1) for v_prediction.
 */
#ifndef LDM_TRAINERD_OBJECTIVE_H
#define LDM_TRAINERD_OBJECTIVE_H

#include <stdint.h>

#include "models/schedule.h"

enum td_pred { TD_PRED_EPSILON = 0, TD_PRED_V, TD_PRED_FLOW };
enum td_tsample { TD_TS_UNIFORM = 0, TD_TS_LOGIT_NORMAL };

struct td_objective {
    int pred;                        /* enum td_pred */
    const struct ldm_schedule *sched; /* ᾱ for epsilon and v (NULL for flow) */
    int64_t T;                       /* num_train_timesteps (flow: the timestep scale) */
    double snr_gamma;                /* 0: off */
    double noise_offset;             /* 0: off */
    int tsample;                     /* flow: enum td_tsample */
    double logit_mean, logit_std;    /* flow, logit-normal */
};

/* The stream key of one sample's draws. */
uint64_t td_sample_seed(uint64_t seed, int64_t step, int64_t gpos);

/* A standard normal draw (Box–Muller over two uniform doubles). */
struct ldm_rng;
float td_gauss(struct ldm_rng *r);

/* Parse "epsilon", "v_prediction", "flow" / "uniform", "logit_normal"; LDM_ECONFIG
 * naming `key` otherwise. */
int td_pred_parse(const char *name, const char *key, int *out);
int td_tsample_parse(const char *name, const char *key, int *out);

/* For N samples of C channels × S elements, x0 (N, C, S) and one seed per sample:
 * noisy (N, C, S), tsteps (N) floats for the UNet, target (N, C, S), and weights (N)
 * when snr_gamma > 0 (else weights is left alone and may be NULL). Returns 0 or
 * LDM_EINVAL (min-SNR with flow). */
int td_objective_apply(const struct td_objective *o, const float *x0, int64_t N, int64_t C,
                       int64_t S, const uint64_t *seeds, float *noisy, float *tsteps,
                       float *target, float *weights);

#endif
