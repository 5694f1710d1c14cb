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

#define TD_ADAM8_MIN 4096 /* bitsandbytes' min_8bit_size: smaller tensors keep F32 moments */

enum { TD_OPT_ADAMW = 0, TD_OPT_ADAMW8 };
enum { TD_MP_NO = 0, TD_MP_FP16, TD_MP_BF16 };

/* Where parameter i's 8-bit state lives (is8), or its F32 moments. */
struct td_q8 {
    int is8;
    size_t q_off;  /* byte offset of its codes in q_m / q_v */
    size_t a_off;  /* float offset of its absmax in a_m / a_v */
};

struct td_trainer {
    struct trainerd_cfg cfg;      /* the numbers; the strings below are owned copies */
    char *model, *output, *cache, *src_config;
    int rank, world, local_rank, local_world;
    struct ldm_comm *comm;

    struct ldm_ctx *ctx;
    struct ldm_unet *u;
    const struct ldm_arena *pa, *ga;
    struct ldm_arena m, v, ema;   /* F32, laid out as pa (m, v unused by 8-bit tensors) */
    struct ldm_arena q_m, q_v, a_m, a_v;
    struct td_q8 *q8;
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

    /* gradient buckets all-reduced while the backward goes on (world > 1) */
    size_t bucket_bytes, sent_to;
    uint64_t tickets[4096];
    size_t nticket;
    int comm_err, hook_on;

    int64_t step, serial, last_saved, bad_total, bad_in_row, good_run;
    double loss_scale;
    int64_t pN, pH, pW, pL;       /* sizes the UNet is prepared for */
    pthread_mutex_t mu;           /* guards the numbers status reads */
};

/* train_setup.c */
int td_setup_model(struct td_trainer *t);
int td_setup_cache(struct td_trainer *t);
int td_setup_optim(struct td_trainer *t);
void td_free_optim(struct td_trainer *t);

/* train_state.c: trainer_state.safetensors of checkpoint folder dir. */
int td_state_save(struct td_trainer *t, const char *dir, struct td_cursor cur,
                  const char *keys, size_t klen);
/* Load dir's weights and state; the cursor and (malloc'd) key list into the outs. */
int td_state_load(struct td_trainer *t, const char *dir, struct td_cursor *cur, char **keys,
                  size_t *klen);

#endif
