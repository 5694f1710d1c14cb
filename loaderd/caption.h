/* caption.h — caption options as kohya sd-scripts has them: dropout, tag shuffle, prefix.
 *
 * The steps, in this order, each random choice drawn from the sample's
 * caption stream (common/rng.h), so a replay gives the same caption:
 *   0. ldm_caption_pick: when the sample's JSON field holds a list of
 *      captions, one of them, uniformly (one ldm_rng_below draw, none for a
 *      list of one);
 *   1. caption_dropout p: with probability p the caption becomes "" (one
 *      Bernoulli draw, taken only when p > 0) and the steps below are
 *      skipped: the empty caption is the unconditional one of
 *      classifier-free guidance, so the prefix is dropped as well;
 *   2. shuffle_caption: the caption is split at ',' into tags, each trimmed
 *      of white space (Python's str.strip()), empty tags dropped; the first
 *      keep_tokens tags stay in place, the others are shuffled (Fisher–Yates,
 *      n - 1 draws for n shuffled tags); the tags are joined with ", ".
 *      Without shuffle_caption the text is left exactly as it is;
 *   3. prefix: "PREFIX CAPTION" (one space between), or PREFIX alone for an
 *      empty caption. The prefix is added after shuffling, so it always
 *      comes first and is never split or moved.
 * Differences from kohya (train_util.py process_caption), on purpose:
 * kohya adds the prefix before the dropout and the shuffle, so with
 * keep_tokens 0 its prefix is part of the first tag and moves with it; and
 * kohya keeps empty tags ("a,,b" gives "a, , b"), which only add stray
 * commas to the text.
 */
#ifndef LDM_CAPTION_H
#define LDM_CAPTION_H

#include <jansson.h>

#include "rng.h"

struct ldm_caption_opts {
    const char *prefix; /* NULL or "" for none */
    int shuffle;        /* shuffle_caption */
    int keep_tokens;    /* tags kept in place when shuffling (>= 0) */
    double dropout;     /* caption_dropout, in [0, 1] */
};

/* Check the options: LDM_EINVAL naming caption_dropout (outside [0, 1] or
 * NaN) or keep_tokens (negative); else 0. */
int ldm_caption_check_opts(const struct ldm_caption_opts *o);

/* Apply steps 1-3 to `caption` (NUL-terminated UTF-8). On success *out is
 * the new caption (malloc'd; the caller frees it). `rng` is the sample's
 * caption stream; draws are taken as listed above. Errors: LDM_EINVAL (bad
 * options, as ldm_caption_check_opts; NULL caption), LDM_EFORMAT (caption
 * not valid UTF-8; the detail gives the byte offset), LDM_ENOMEM. *out is
 * NULL on failure. */
int ldm_caption_apply(const struct ldm_caption_opts *o, const char *caption, struct ldm_rng *rng,
                      char **out);

/* Step 0: `field` is a caption field's JSON value: a string gives itself (no
 * draw); a non-empty array of n strings gives one element chosen with one
 * ldm_rng_below(n) draw (no draw when n is 1). *out points into `field`
 * (valid while the caller holds it). `what` names the field in error
 * details ("shard/key: caption").
 * Errors: LDM_ENOTFOUND (an empty list, or field NULL / JSON null),
 * LDM_EFORMAT (another type, or a list item that is not a string). */
int ldm_caption_pick(const json_t *field, const char *what, struct ldm_rng *rng, const char **out);

#endif
