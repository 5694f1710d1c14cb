/* loader.h — loaderd's configuration and shared state. */
#ifndef LDM_LOADER_H
#define LDM_LOADER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "curve.h"
#include "daemon.h"

struct loaderd_cfg {
    char *leases;          /* encoderd's lease endpoint (default ipc://RUN_DIR/encoderd.leases) */
    char *samples;         /* encoderd's sample endpoint (default ipc://RUN_DIR/encoderd.samples) */
    char *server_key;      /* encoderd's CURVE public key (Z85 or a .pub file) for tcp */
    int64_t threads;       /* shards read at once, one thread each */
    int64_t hwm;           /* samples queued per thread before sending blocks */
    int64_t request_ms;    /* lease request timeout */
    int64_t seed;          /* global seed of every random choice */
    int64_t resolution;    /* square training size (no buckets) */
    int center_crop;       /* center (true) or random crop */
    int random_flip;       /* mirror left-right with probability 1/2 */
    char *interpolation;   /* bilinear | bicubic | lanczos */
    int buckets;           /* aspect-ratio buckets instead of a square crop */
    uint64_t bucket_max_area; /* default resolution^2 */
    int64_t bucket_min_reso, bucket_max_reso, bucket_step;
    char *tokenizer;       /* folder with vocab.json + merges.txt, or a bpe .txt.gz */
    char *tokenizer_2;     /* second tokenizer (SDXL), optional */
    int64_t max_length;    /* tokens per caption including start and end (77) */
    char *caption_key;     /* json member holding the caption when there is no txt */
    char *caption_prefix;
    int shuffle_caption;
    int64_t keep_tokens;
    double caption_dropout;
    char *cond_ext;        /* member of the conditioning image, e.g. input.jpg */
    uint64_t max_pixels;   /* largest decoded image (decompression bombs) */
    uint64_t max_member;   /* largest member of a shard */
    int dct_scaling;       /* decode JPEGs >= 2x the resized size at 1/2..1/8 */
};

#endif
