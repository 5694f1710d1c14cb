/* queue.h — which checkpoints evald still has to evaluate.
 *
 * A checkpoint is done when OUT/eval/step-N.json exists (written atomically at the
 * end of its evaluation, with the results or the error that stopped it), so a
 * restart evaluates what was left and nothing twice. Steps come from trainerd's
 * `checkpoint` events, from scans of the checkpoint folder (on start and every
 * scan_interval) and from `ldmctl eval`; only multiples of eval_every are taken (a
 * request names its step and is always taken). With latest_only the queue keeps
 * only the newest step.
 */
#ifndef LDM_EVALD_QUEUE_H
#define LDM_EVALD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct ev_queue {
    int64_t *steps; /* pending, ascending */
    size_t n, cap;
    int64_t eval_every;
    int latest_only;
    char *output;   /* OUT: results go to OUT/eval/ */
};

/* 1 when OUT/eval/step-N.json exists. */
int ev_done(const struct ev_queue *q, int64_t step);

/* Queue step (unless done or queued; `forced` skips the eval_every rule). Returns 1
 * when added, 0 when not, or LDM_ENOMEM. */
int ev_queue_add(struct ev_queue *q, int64_t step, int forced);

/* Queue every checkpoint-N of dir not yet done, except step `busy` (being evaluated);
 * the count added. */
int ev_queue_scan(struct ev_queue *q, const char *dir, int64_t busy);

/* The highest step among the checkpoints of dir (-1: none). */
int64_t ev_latest(const char *dir);

/* The next step to evaluate into *step (the oldest; the newest with latest_only,
 * dropping the rest); 0 when the queue is empty. */
int ev_queue_pop(struct ev_queue *q, int64_t *step);

void ev_queue_free(struct ev_queue *q);

#endif
