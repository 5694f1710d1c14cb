/* batch.h — one micro-batch of UNet inputs, assembled on the host from the cache.
 *
 * For each sample (a key of the index and its position gpos in the global batch):
 *  - the latent drawn from the stored distribution, mean + exp(½·logvar)·n (the
 *    mirrored image's when random_flip picks it and the record has one), then
 *    (latent − shift)·scale (the VAE's shift and scaling factors);
 *  - the text hidden states, or the empty caption's with probability
 *    caption_dropout (with its pooled embedding, for SDXL);
 *  - SDXL: text_embeds = the pooled embedding, time_ids = (original h, w, crop top,
 *    left, target h, w);
 *  - the objective's noisy input, timestep, target and weight (objective.h).
 * Every draw comes from the sample's own streams (td_sample_seed), so the batch is
 * a pure function of (the index, keys, step, positions).
 */
#ifndef LDM_TRAINERD_BATCH_H
#define LDM_TRAINERD_BATCH_H

#include <stdint.h>

#include "store.h"
#include "trainerd/index.h"
#include "trainerd/objective.h"

struct td_batch_opts {
    uint64_t seed;
    double caption_dropout;            /* 0..1 */
    int random_flip;                   /* use the mirrored variant with probability ½ */
    float scale, shift;                /* latents: (x − shift)·scale */
    int sdxl;                          /* fill text_embeds and time_ids */
    const struct td_objective *obj;
    const struct ldm_record *empty;    /* the empty caption (needed when caption_dropout > 0) */
};

struct td_batch {
    int64_t N, C, H, W, L, D, P;
    float *noisy, *tsteps, *target, *weights, *ehs, *text_embeds, *time_ids, *x0;
    uint64_t *seeds;
    void *mem;        /* one block holding every buffer above */
    size_t cap_bytes; /* its size */
    int weighted;
    /* where it comes from */
    int64_t step, epoch, batch, micro;
};

/* Fill *b with samples items[0..N−1] (indices into ix, all of one class), at global
 * positions gpos0.., for optimiser step `step`. Buffers grow as needed (free with
 * td_batch_free). Returns 0, LDM_ENOTFOUND (a key gone: named), LDM_EFORMAT (a
 * damaged record: named), LDM_EINVAL (caption dropout without an empty caption, a
 * shape that differs from the class), LDM_ENOMEM, LDM_EIO. */
int td_batch_fill(struct td_batch *b, struct ldm_store *st, const struct td_index *ix,
                  const size_t *items, int64_t N, int64_t step, int64_t gpos0,
                  const struct td_batch_opts *o);

void td_batch_free(struct td_batch *b);

#endif
