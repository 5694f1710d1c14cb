/* train.h — the training state of one rank and its optimiser step.
 *
 * A trainer owns the compute context, the UNet with its parameter and gradient
 * arenas, the optimiser's moments (AdamW: F32 arenas laid out as the parameters;
 * 8-bit AdamW: block-quantised moments per tensor of at least 4096 elements, F32
 * below, as bitsandbytes), the EMA copy, the noise schedule and objective, and the
 * batch feed. One step: for each of grad_accum micro-batches, forward, weighted MSE
 * and a backward adding into the gradients (scaled 1/accum, times the loss scale);
 * then the gradients are averaged across ranks, unscaled, clipped by global norm, and
 * — unless a loss or gradient is not finite, when the step is skipped and counted —
 * the optimiser and EMA updates run and the step count grows.
 *
 * zero_stage = 2 (zero.h): each rank keeps the moments of its shard of the
 * parameters only; the gradient buckets are reduce-scattered at the shard cuts
 * while the backward goes on, the global norm comes from every shard's, each rank
 * clips and updates its shard, and the parameters are all-gathered. A checkpoint
 * then needs every rank at the same step (td_trainer_request).
 */
#ifndef LDM_TRAINERD_TRAIN_H
#define LDM_TRAINERD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "trainerd/tcfg.h"

struct td_trainer;
struct ldm_comm;

/* What one step did. */
struct td_step_report {
    int64_t step;      /* the step count after it */
    double loss;       /* mean over its micro-batches (this rank) */
    double lr;         /* the learning rate it used */
    double grad_norm;  /* before clipping */
    int skipped;       /* 1: not finite, no update */
    double data_wait;  /* seconds spent waiting for batches */
    double seconds;    /* the whole step */
    int64_t samples;   /* samples this rank used */
    int requests;      /* TD_REQ_* that any rank asked of this step (saves together) */
};

/* What a rank may ask every rank to do after a step: when checkpoints need all ranks
 * (td_trainer_saves_together), a rank asks with td_trainer_request, the next step
 * tells every rank what any asked (td_step_report.requests), and all save (and stop)
 * after that same step. */
enum { TD_REQ_SAVE = 1, TD_REQ_STOP = 2 };
void td_trainer_request(struct td_trainer *t, int req);
/* 1 with ZeRO on more than one rank: saving gathers the shards, every rank takes part. */
int td_trainer_saves_together(const struct td_trainer *t);

/* Open everything cfg names (the model, the cache, the output folder) and resume
 * when cfg->resume says so. comm: the ranks' collectives, or NULL for one rank.
 * Returns 0, LDM_ECONFIG (a bad value: the key), the model's and the cache's codes. */
int td_trainer_open(struct td_trainer **out, const struct trainerd_cfg *cfg,
                    struct ldm_comm *comm, int rank, int world, int local_rank,
                    int local_world);

/* One optimiser step. Returns 0, LDM_ETIMEOUT (no batch ready within timeout_ms:
 * nothing done, call again), LDM_ERANGE (max_bad_steps non-finite steps in a row),
 * or an error that stops training. */
int td_trainer_step(struct td_trainer *t, int timeout_ms, struct td_step_report *rep);

/* Write a checkpoint of the current step (rank 0 writes; others return 0, after
 * handing over their shards when td_trainer_saves_together) and prune. The folder's
 * path into path. */
int td_trainer_save(struct td_trainer *t, char *path, size_t size);

int64_t td_trainer_step_count(const struct td_trainer *t);
int64_t td_trainer_last_saved(const struct td_trainer *t);

/* Numbers for status. */
struct td_trainer_info {
    int64_t step, max_steps, epoch, bad_steps, bad_in_row, skipped_batches;
    int waiting;            /* for samples */
    size_t samples;         /* in the current epoch */
    size_t params, mem_params, mem_acts, mem_optim;
    size_t dev_used, dev_total; /* the device's memory as its driver reports it (0: a CPU) */
    size_t mem_moments;     /* the optimiser moments alone, this rank's (ZeRO: its shard) */
    double loss_scale;
    int ema, zero_stage;
};
void td_trainer_info(struct td_trainer *t, struct td_trainer_info *i);

void td_trainer_close(struct td_trainer **t);

#endif
