/* tcfg.h — trainerd's configuration (the [trainerd] section; every key also a
 * --key=value option). main.c holds the key table with defaults and help. */
#ifndef LDM_TRAINERD_TCFG_H
#define LDM_TRAINERD_TCFG_H

#include <stdint.h>

struct trainerd_cfg {
    /* where */
    char *device;            /* cpu | cuda | cuda:N */
    int64_t threads;
    char *model;             /* diffusers folder: unet/, scheduler/, vae/, text_encoder/ */
    char *cache;             /* the node's LMDB cache */
    int64_t cache_wait;      /* ms to wait for encoderd to create it */
    char *output;            /* checkpoints, metrics.jsonl */
    char *resume;            /* "", latest or a checkpoint folder */
    int check_identity;      /* refuse a cache made by other encoders */
    /* data */
    int64_t seed;
    int64_t batch_size;      /* per rank and micro-batch */
    int64_t grad_accum;
    int64_t max_steps;
    int64_t min_samples;
    double caption_dropout;
    int random_flip;
    int64_t prefetch;
    /* objective */
    char *prediction_type;   /* "" = the scheduler's */
    double snr_gamma, noise_offset;
    char *timestep_sampling; /* flow: uniform | logit_normal */
    double logit_mean, logit_std;
    /* optimiser */
    char *optimizer;         /* adamw | adamw8bit */
    double lr, adam_beta1, adam_beta2, adam_eps, weight_decay, max_grad_norm;
    char *lr_scheduler;
    int64_t lr_warmup_steps;
    int64_t lr_num_cycles;
    double lr_power;
    /* EMA */
    int use_ema;
    double ema_decay, ema_min_decay, ema_inv_gamma, ema_power;
    int64_t ema_update_after_step;
    int ema_warmup;
    /* precision and guards */
    char *mixed_precision;   /* no | fp16 | bf16 */
    double loss_scale;       /* fp16 initial loss scale */
    int gradient_checkpointing; /* recompute each UNet block in the backward */
    int64_t max_bad_steps;
    /* checkpoints */
    int64_t save_steps, keep_last;
    char *save_precision;    /* fp32 | fp16 | bf16 */
    /* ranks */
    int64_t rank, world_size, local_rank, local_world_size; /* -1: from the environment */
    char *rendezvous;        /* rank 0's endpoint */
    char *data_endpoint;     /* this rank's ring endpoint (CPU ranks) */
    int64_t bucket_mb;       /* gradient bucket size of the overlapped all-reduce */
    int64_t zero_stage;      /* 0, or 2: each rank keeps its shard of the optimiser state */
    int64_t rendezvous_timeout; /* ms */
    /* events */
    char *events;            /* PUB endpoint (rank 0) */
    int64_t log_every;       /* steps between metrics events and log lines */
    int exit_when_done;
};

#endif
