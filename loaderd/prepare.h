/* prepare.h — one raw shard sample to one training sample: fields, caption
 * options, tokens, decode, resize/crop/flip or bucket, conditioning image.
 *
 * Every random choice comes from the sample's own streams (rng.h: seed =
 * hash(global seed, shard, key, epoch); stream 0 geometry, stream 1
 * caption), so the same sample in the same epoch is prepared identically
 * by any loader, after any restart.
 */
#ifndef LDM_PREPARE_H
#define LDM_PREPARE_H

#include <stdint.h>

#include "bucket.h"
#include "caption.h"
#include "image.h"
#include "push.h"
#include "sample_fields.h"
#include "source.h"
#include "transform.h"

struct ldm_clip_tok;
struct ldm_wordpiece;

/* Rejections of the preparation itself, after the source's reasons. */
enum {
    LDM_PREP_DECODE = LDM_REASON_COUNT, /* "decode": image undecodable */
    LDM_PREP_TOO_BIG,                   /* "too_big": over the pixel or byte limit */
    LDM_PREP_CAPTION,                   /* "caption": caption options failed (bad UTF-8) */
    LDM_PREP_TOKENIZE,                  /* "tokenize": the tokenizer refused the caption */
    LDM_PREP_COND,                      /* "cond_decode": conditioning image undecodable */
    LDM_PREP_REASON_COUNT
};

/* The name of any source or preparation reason. */
const char *ldm_prep_reason_name(int reason);

/* A tokenizer: CLIP BPE or BERT WordPiece (one of the two set). */
struct ldm_tokenizer {
    struct ldm_clip_tok *clip;
    struct ldm_wordpiece *wp;
    int max_length;
};

/* Load a tokenizer from a model's tokenizer folder (vocab.json + merges.txt:
 * CLIP; vocab.txt: WordPiece) or an OpenAI bpe_simple_vocab .txt.gz; frame
 * to `max_length` ids. Returns 0 or the loader's error. */
int ldm_tokenizer_load(const char *path, int max_length, struct ldm_tokenizer *t);
void ldm_tokenizer_free(struct ldm_tokenizer *t);

/* Read-only after set-up; shared by every loader thread. */
struct ldm_prep_shared {
    uint64_t seed;
    struct ldm_tokenizer tok, tok2;     /* tok2.clip/wp NULL: none */
    struct ldm_buckets buckets;         /* n == 0: square crops */
    struct ldm_transform_params tp;
    int random_flip;
    struct ldm_caption_opts cap;
    struct ldm_fields_opts fields;
    struct ldm_decode_opts dec;
};

/* One thread's output buffers, reused from sample to sample. */
struct ldm_prepared {
    struct ldm_image img, cond;
    char *caption;
    uint32_t ids[512], ids2[512];
    size_t nids, nids2;
    struct ldm_geometry g;
};

/* Prepare `raw` for `epoch` into *p. Returns 0 (p holds the sample), a
 * positive reason (rejected: the detail in ldm_errmsg() names shard and
 * key), or LDM_ENOMEM. */
int ldm_prepare(const struct ldm_prep_shared *sh, const struct ldm_raw_sample *raw,
                uint32_t epoch, struct ldm_prepared *p);

/* Point an outgoing message at a prepared sample. */
void ldm_prepared_out(const struct ldm_prepared *p, const struct ldm_raw_sample *raw,
                      struct ldm_outsample *o);

void ldm_prepared_free(struct ldm_prepared *p);

#endif
