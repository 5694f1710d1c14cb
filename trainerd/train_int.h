/* train_int.h — the trainer's state, shared by train.c, train_setup.c and
 * train_state.c. */
#ifndef LDM_TRAINERD_TRAIN_INT_H
#define LDM_TRAINERD_TRAIN_INT_H

#include <pthread.h>

#include "models/schedule.h"
#include "models/unet.h"
#include "nn/backend.h"
#include "store.h"
#include "trainerd/ema.h"
#include "trainerd/feed.h"
#include "trainerd/lr.h"
#include "trainerd/objective.h"
#include "trainerd/train.h"
#include "trainerd/zero.h"

#define TD_ADAM8_MIN 4096 /* bitsandbytes' min_8bit_size: smaller tensors keep F32 moments */

enum { TD_OPT_ADAMW = 0, TD_OPT_ADAMW8 };
enum { TD_MP_NO = 0, TD_MP_FP16, TD_MP_BF16 };

/* This rank's part of the optimiser state (zero.h): parameters lo .. hi − 1 of the
 * arena, whose moments are the windows [mlo, mhi) of adam.m/v (plain AdamW: [lo, hi)),
 * [qlo, qhi) of the codes and [alo, ahi) of the absmax arrays; without ZeRO, all of
 * them. */
struct td_window {
    size_t lo, hi, mlo, mhi, qlo, qhi, alo, ahi;
};

struct td_trainer {
    struct trainerd_cfg cfg;      /* the numbers; the strings below are owned copies */
    char *model, *output, *cache, *src_config;
    int rank, world, local_rank, local_world;
    struct ldm_comm *comm;

    struct ldm_ctx *ctx;
    struct ldm_unet *u;
    const struct ldm_arena *pa, *ga;
    struct ldm_arena m, v, ema;   /* m, v: F32 moments, the window mlo..mhi of adam.m/v
                                     (plain AdamW: lo..hi of pa; 8-bit AdamW: the slots of
                                     its small tensors); ema: all of pa, on every rank */
    struct ldm_arena q_m, q_v, a_m, a_v; /* 8-bit codes and absmax, their windows */
    struct td_zero_tensor *tens;  /* every parameter: its elements and its state's place */
    size_t ntens;                 /* tensors */
    size_t m_total, q_total, a_total; /* lengths of the unsharded adam.m/v and 8-bit arrays */
    int zero;                     /* zero_stage: 0, or 2 (sharded when world > 1) */
    struct td_zero_plan plan;     /* the cuts (one shard without ZeRO) */
    struct td_window win;         /* this rank's */
    float *flags, *flags_host;    /* ZeRO, world > 1: 2·world floats (in ctx memory, and a
                                     host copy): each rank's shard norm and requests */
    size_t *bucket_cut;           /* ZeRO: world + 1 cuts of the bucket in flight */
    int optimizer, mp, save_dtype;

    struct ldm_schedule sched;
    struct td_objective obj;
    struct ldm_lr lr;
    struct ldm_ema_cfg ema_sched;

    struct ldm_store *store;
    void *empty_buf;
    struct ldm_record empty;
    int have_empty;
    float scale, shift;
    struct td_feed *feed;

    /* gradient buckets all-reduced (ZeRO: reduce-scattered at the cuts) while the
     * backward goes on (world > 1). Between steps the gradient arena holds nothing
     * needed (each step zeroes it first): saving a ZeRO checkpoint gathers there. */
    size_t bucket_bytes, sent_to;
    uint64_t tickets[4096];
    size_t nticket;
    int comm_err, hook_on;
    int requests;                 /* TD_REQ_* this rank asks of the next step */

    int64_t step, serial, last_saved, bad_total, bad_in_row, good_run;
    double loss_scale;
    int cdt;                 /* the UNet's compute dtype (mixed_precision) */
    int64_t pN, pH, pW, pL;       /* sizes the UNet is prepared for */
    pthread_mutex_t mu;           /* guards the numbers status reads */
};

/* train_setup.c */
int td_setup_model(struct td_trainer *t);
int td_setup_cache(struct td_trainer *t);
int td_check_zero(struct td_trainer *t);
int td_setup_optim(struct td_trainer *t);
void td_free_optim(struct td_trainer *t);

/* train_state.c: trainer_state.safetensors of checkpoint folder dir. */
/* The optimiser state in the unsharded layout, as host copies on rank 0 (NULL
 * elsewhere). Every rank calls it: with ZeRO the windows are gathered. */
struct td_state_host {
    void *m, *v, *qm, *qv, *am, *av;
};
int td_state_collect(struct td_trainer *t, struct td_state_host *h);
void td_state_host_free(struct td_state_host *h);
int td_state_save(struct td_trainer *t, const char *dir, struct td_cursor cur,
                  const char *keys, size_t klen, const struct td_state_host *h);
/* Load dir's weights and state; the cursor and (malloc'd) key list into the outs. */
int td_state_load(struct td_trainer *t, const char *dir, struct td_cursor *cur, char **keys,
                  size_t *klen);

#endif
