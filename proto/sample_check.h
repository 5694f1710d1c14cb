/* sample_check.h — validation of a received data-plane Sample (proto/sample.proto).
 *
 * encoderd receives each sample as a multipart message: frame 0 the packed
 * Sample, frame 1 the image pixels, frame 2 the conditioning pixels when the
 * Sample has a `cond` layout. ldm_sample_decode() unpacks frame 0 and runs
 * ldm_sample_check(), which checks every field (of a tombstone — a Sample
 * with `rejected` set — only the identifying ones) against struct
 * ldm_sample_limits and the frame lengths against the layouts. A rejected
 * sample gives a negative LDM_E* code (LDM_EFORMAT, or LDM_EUNSUPPORTED for a
 * newer version or an unknown dtype), a detail naming the sample, the field
 * and the bad value, e.g.
 *   sample 'a-000001.tar/000042': image frame is 12287 bytes, layout 64x64x3 uint8 needs 12288
 * and a reason: a small enum with a stable short name per kind of rejection,
 * for counting rejects and logging each kind once.
 */
#ifndef LDM_SAMPLE_CHECK_H
#define LDM_SAMPLE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "proto/sample.pb-c.h"

/* The Sample format version this code writes and understands. */
#define LDM_SAMPLE_VERSION 1

/* Why a sample was rejected; ldm_sample_reason_name() gives the short name. */
enum ldm_sample_reason {
    LDM_SR_OK = 0,   /* "ok": accepted */
    LDM_SR_MESSAGE,  /* "message": no frames, frame 0 too large or not a Sample */
    LDM_SR_VERSION,  /* "version": unset or newer than LDM_SAMPLE_VERSION */
    LDM_SR_KEY,      /* "key": empty, too long, not UTF-8, holds NUL */
    LDM_SR_SHARD,    /* "shard": empty, too long, not UTF-8, holds NUL */
    LDM_SR_CAPTION,  /* "caption": too long, not UTF-8, holds NUL */
    LDM_SR_TOKENS,   /* "tokens": too many ids, or an id outside the vocabulary */
    LDM_SR_SIZE,     /* "size": original or target size 0 or too large */
    LDM_SR_CROP,     /* "crop": crop offset too large */
    LDM_SR_BUCKET,   /* "bucket": bucket id too large */
    LDM_SR_LAYOUT,   /* "layout": missing, bad channels or dtype, not the target size */
    LDM_SR_FRAMES,   /* "frames": frame count does not match the layouts */
    LDM_SR_PIXELS,   /* "pixels": a pixel frame's length differs from its layout */
    LDM_SR_TOMBSTONE, /* "tombstone": a rejected-sample notice with a bad reason or pixels */
    LDM_SR_COUNT
};

/* Bounds a received sample must keep. A daemon starts from the defaults and
 * sets the vocabularies and buckets of its models and config. */
struct ldm_sample_limits {
    size_t max_message;  /* bytes of frame 0 (default 1 MiB) */
    size_t max_key;      /* bytes of key (default 256) */
    size_t max_shard;    /* bytes of shard (default 4096) */
    size_t max_caption;  /* bytes of caption (default 65536) */
    size_t max_tokens;   /* ids in input_ids, and in input_ids_2 (default 231 = 77 x 3) */
    uint32_t vocab;      /* every input_ids id is below this (default 49408, CLIP) */
    uint32_t vocab_2;    /* every input_ids_2 id is below this (default 49408) */
    uint32_t max_side;   /* largest height or width, original or target, and crop offset (16384) */
    uint64_t max_pixels; /* largest target height x width (default 8192 x 8192) */
    uint32_t max_bucket; /* largest bucket id (default 65535) */
};

/* Fill *lim with the defaults listed in struct ldm_sample_limits. */
void ldm_sample_limits_init(struct ldm_sample_limits *lim);

/* Check an unpacked Sample and the lengths of its message's frames.
 * frame_len[i] is the byte length of frame i (frame 0 is the Sample itself);
 * nframes is the number of frames received. Only frame_len[1] and
 * frame_len[2] are read, and only once nframes is known to be 2 or 3, so a
 * caller that received more frames may pass a 3-entry array with the true
 * count. lim NULL means the defaults; reason (may be NULL) receives
 * LDM_SR_OK or the kind of rejection. Returns 0, LDM_EFORMAT,
 * LDM_EUNSUPPORTED (newer version, unknown dtype) or LDM_EINVAL (s NULL),
 * with the detail in ldm_errmsg(). */
int ldm_sample_check(const Ldmpipe__Sample *s, const size_t *frame_len, int nframes,
                     const struct ldm_sample_limits *lim, enum ldm_sample_reason *reason);

/* Unpack frame 0 (frame_len[0] bytes at frame0) and check it as
 * ldm_sample_check() does. On success *out is the Sample, to be released with
 * ldm_sample_free(); on failure *out is NULL. Frames 1 and 2 are not read,
 * only their lengths. Returns 0 or the codes of ldm_sample_check(). */
int ldm_sample_decode(const void *frame0, const size_t *frame_len, int nframes,
                      const struct ldm_sample_limits *lim, Ldmpipe__Sample **out,
                      enum ldm_sample_reason *reason);

/* Release a Sample from ldm_sample_decode(); NULL is ignored. */
void ldm_sample_free(Ldmpipe__Sample *s);

/* The stable short name of a reason ("key", "pixels", ...); "unknown" for a
 * value outside the enum. */
const char *ldm_sample_reason_name(int reason);

/* Write "SHARD/KEY" of s into buf (size bytes, always NUL-terminated when
 * size > 0) for logs: bytes outside printable ASCII, quotes and backslashes
 * as \xNN, the shard cut to its last 64 bytes and the key to its first 64. */
void ldm_sample_name(const Ldmpipe__Sample *s, char *buf, size_t size);

#endif
