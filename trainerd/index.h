/* index.h — the samples of the latent cache a trainer draws from, and the order of
 * an epoch.
 *
 * An index lists the cache's sample keys (in LMDB's key order) with each one's shape
 * class: samples of one class (the same latent C×H×W, text L×D, pooled width and
 * conditioning) can share a batch, as aspect-ratio buckets do. An epoch's plan is a
 * pure function of (the index, seed, epoch, global batch size G): the samples
 * shuffled with a stream keyed by (seed, epoch), then dealt in that order into their
 * class; every time a class holds G samples they become the next batch. Samples left
 * in classes at the end are not used this epoch (drop_last). Every rank computes the
 * same plan and takes its own slice of each batch.
 *
 * A record that does not parse is logged with its key, counted and left out.
 */
#ifndef LDM_TRAINERD_INDEX_H
#define LDM_TRAINERD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct td_class {
    uint32_t lc, lh, lw;       /* latent */
    uint32_t tl, td, pooled;   /* text tokens, width, pooled width */
    uint32_t cond_kind;        /* 0, LDM_REC_COND_LATENT or LDM_REC_COND_PIXELS */
    uint32_t cc, ch, cw;       /* conditioning */
};

struct td_index {
    char **keys;              /* n keys, sorted */
    uint32_t *cls;            /* class of each */
    size_t n;
    struct td_class *classes; /* ncls distinct classes, in order of first appearance */
    size_t ncls;
    uint64_t bad;             /* records left out */
};

struct td_plan {
    size_t *items;   /* nbatches·G indices into the index */
    size_t nbatches;
    size_t G;
};

/* Scan the samples database into *ix. Returns 0, LDM_ENOMEM or LDM_EIO. */
int td_index_scan(struct ldm_store *st, struct td_index *ix);

/* Build *ix from a saved key list (keys NUL-separated in `buf`, `len` bytes): each
 * key must still be in the cache. Returns 0, LDM_ENOTFOUND (naming the first missing
 * key), LDM_EFORMAT (a damaged record, naming it), LDM_ENOMEM, LDM_EIO. */
int td_index_from_keys(struct ldm_store *st, const char *buf, size_t len, struct td_index *ix);

/* The key list as one buffer of NUL-terminated keys (malloc'd) for a checkpoint. */
int td_index_keys_blob(const struct td_index *ix, char **buf, size_t *len);

void td_index_free(struct td_index *ix);

/* The plan of epoch `epoch` into *p. Returns 0 or LDM_ENOMEM. */
int td_plan_epoch(const struct td_index *ix, uint64_t seed, int64_t epoch, size_t G,
                  struct td_plan *p);
void td_plan_free(struct td_plan *p);

#endif
