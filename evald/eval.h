/* eval.h — one evaluation: sample images from a checkpoint's UNet, decode them, write
 * a few PNGs and a grid, and score them (FID against reference statistics, Inception
 * Score).
 *
 * What does not change between checkpoints is loaded once (struct ev_models): the
 * base model's text encoders (every prompt and the empty one encoded once), VAE and
 * scheduler config, the FID Inception network and the reference statistics. Each
 * image i uses prompt i mod (number of prompts) and initial noise drawn from a stream
 * keyed by (seed, i): the same checkpoint gives the same images, whatever the batch.
 */
#ifndef LDM_EVALD_EVAL_H
#define LDM_EVALD_EVAL_H

#include <jansson.h>
#include <stdint.h>

#include "evald/ecfg.h"

struct ev_models;

/* Load the shared parts named by cfg. Returns 0 or the loaders' codes (LDM_ECONFIG
 * naming the key for a bad value). */
int ev_models_open(struct ev_models **out, const struct evald_cfg *cfg);
void ev_models_close(struct ev_models **m);

/* Evaluate checkpoint folder `dir` (step `step`): *result is a new JSON object with
 * the numbers, or with "error" when the checkpoint could not be read (a truncated or
 * missing file: named). Returns 0 when *result is set; a failure of evald itself
 * (out of memory, an op's error) otherwise. `stop` is polled between batches. */
int ev_evaluate(struct ev_models *m, const char *dir, int64_t step, const volatile int *stop,
                json_t **result);

#endif
