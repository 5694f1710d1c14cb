/* run.h — the training thread of trainerd: steps, events, checkpoints.
 *
 * The daemon's loop keeps answering control requests while this thread trains.
 * It runs steps until max_steps, publishes `metrics` every log_every steps and
 * `checkpoint` after each save on the events PUB socket (rank 0, which also
 * appends each metrics line to OUTPUT/metrics.jsonl), saves every save_steps,
 * when asked (`ldmctl checkpoint`), and when stopped (SIGTERM) if steps were
 * taken since the last save. Pausing holds it between steps. With ZeRO on
 * several ranks a checkpoint needs them all: a requested checkpoint or a stop
 * is carried by the next step to every rank, which all save (and stop) after
 * it; a stopping rank takes that one more step.
 */
#ifndef LDM_TRAINERD_RUN_H
#define LDM_TRAINERD_RUN_H

#include <jansson.h>

#include "trainerd/train.h"

struct td_run;

struct td_run_opts {
    struct td_trainer *trainer; /* owned by the run from here */
    void *pub;                  /* events PUB socket (rank 0) or NULL; owned from here */
    const char *output;         /* metrics.jsonl folder (rank 0) or NULL */
    int64_t save_steps, log_every, global_batch, world;
    int rank;
    void (*done)(void *arg, int failed); /* called on the thread when training ends */
    void *arg;
};

int td_run_start(struct td_run **out, const struct td_run_opts *o);
void td_run_pause(struct td_run *r, int paused);
void td_run_request_checkpoint(struct td_run *r);
/* Fields for a status reply. */
void td_run_status(struct td_run *r, json_t *reply);
/* Stop (saving when steps were taken since the last save), join, free everything. */
void td_run_stop(struct td_run **r);

#endif
