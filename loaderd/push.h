/* push.h — sending samples to the encoder over PUSH, with back-pressure.
 *
 * A sample is a multipart message (DESIGN.md, "Data plane"): frame 0 the
 * packed Sample, frame 1 the RGB pixels, frame 2 the conditioning pixels.
 * A rejected sample goes as a tombstone: frame 0 alone, `rejected` set.
 * When the encoder's queue is full (the socket's high-water mark) the sender
 * waits — nothing is dropped — and calls `idle` every `idle_ms` so the
 * caller can renew its lease or notice a stop.
 */
#ifndef LDM_PUSH_H
#define LDM_PUSH_H

#include <stddef.h>
#include <stdint.h>

struct ldm_pixels {
    const uint8_t *px; /* HWC, row-major */
    uint32_t h, w, c;
};

struct ldm_outsample {
    const char *shard, *key;
    uint64_t index, lease;
    uint32_t epoch;
    const char *caption;              /* "" allowed */
    const uint32_t *ids, *ids2;       /* token ids (ids2: second tokenizer, SDXL) */
    size_t nids, nids2;
    uint32_t orig_h, orig_w;          /* before resize */
    uint32_t crop_top, crop_left;     /* in the resized image */
    uint32_t bucket;
    int flip;
    struct ldm_pixels image, cond;    /* cond.px NULL: none */
    const char *rejected;             /* non-NULL: a tombstone with this reason */
};

/* Return non-zero to stop waiting (the send then fails with LDM_ETIMEOUT). */
typedef int (*ldm_push_idle_fn)(void *arg);

/* Send one sample (or tombstone) on the PUSH socket `sock`. Returns 0,
 * LDM_ETIMEOUT (idle asked to stop), LDM_ENOMEM or LDM_EZMQ. */
int ldm_push_sample(void *sock, const struct ldm_outsample *o, int idle_ms, ldm_push_idle_fn idle,
                    void *arg);

#endif
