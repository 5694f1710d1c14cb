/* ecfg.h — evald's configuration (the [evald] section; every key also --key=value).
 * main.c holds the key table with defaults and help. */
#ifndef LDM_EVALD_ECFG_H
#define LDM_EVALD_ECFG_H

#include <stdint.h>

struct evald_cfg {
    char *device;
    int64_t threads;
    char *model;          /* the base diffusers folder: vae/, text_encoder/, tokenizer/, scheduler/ */
    char *checkpoints;    /* trainerd's output folder (checkpoint-STEP/) */
    char *output;         /* results: OUT/eval/step-N.json, images, grids */
    char *events_in;      /* trainerd's events (SUB) */
    char *events;         /* our PUB endpoint (eval topic) */
    char *prompts;        /* a file, one prompt a line */
    char *prompts_cache;  /* or a latent cache (LMDB): its first samples' stored text states */
    int64_t num_prompts;  /* how many of them */
    int64_t num_images;   /* images per evaluation (prompts cycle) */
    int64_t batch_size;
    int64_t steps;        /* sampler steps */
    double guidance_scale;
    char *sampler;        /* "" (the scheduler config's), ddim, euler, pndm */
    char *precision;      /* the UNet's compute dtype while sampling: fp32, bf16 or fp16 */
    double eta;
    int64_t seed;
    int64_t resolution;   /* pixels; 0: the UNet's sample_size × the VAE factor */
    char *fid_stats;      /* reference .npz (mu, sigma); "" skips FID */
    char *inception;      /* FID Inception weights (.pth or .safetensors); "" skips FID and IS */
    int64_t is_splits;
    int64_t eval_every;   /* evaluate checkpoints whose step is a multiple of this */
    int latest_only;      /* skip older queued checkpoints when a newer one is waiting */
    int use_ema;          /* unet_ema/ when present */
    int64_t save_images;  /* PNGs kept per evaluation */
    int64_t scan_interval;/* ms between scans of the checkpoint folder */
};

#endif
