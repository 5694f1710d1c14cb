/* sample_fields.h — the image, caption(s) and conditioning image of a raw sample.
 *
 * Rules:
 *   image     the first member found of jpg, jpeg, png, webp (in that order);
 *             none: LDM_REASON_NO_IMAGE.
 *   cond      when cond_ext is set, the member with that ext (e.g. "input.jpg");
 *             none: LDM_REASON_NO_COND.
 *   caption   the `txt` member when there is one (even when empty); else the
 *             json member's field `json_key`: a string gives one caption, a
 *             list of strings gives them all (the caller picks one at random);
 *             no txt and no json, a missing or null field, or an empty list:
 *             LDM_REASON_NO_CAPTION. A json member that is not one JSON object,
 *             or a field of another type (or a list holding a non-string):
 *             LDM_REASON_BAD_JSON. A txt caption that is not valid UTF-8 or
 *             holds a NUL byte: LDM_REASON_BAD_UTF8 (jansson itself refuses
 *             both in json). Captions are trimmed of ASCII blanks (space, \t,
 *             \n, \r, \v, \f) at both ends.
 * Checked in the order image, cond, caption; the first problem is reported.
 */
#ifndef LDM_SAMPLE_FIELDS_H
#define LDM_SAMPLE_FIELDS_H

#include <stddef.h>

#include "source.h"

struct ldm_fields_opts {
    const char *json_key; /* json field of the caption(s); NULL or "" = "caption" */
    const char *cond_ext; /* ext of the conditioning image; NULL or "" = none */
};

struct ldm_fields {
    const struct ldm_member *image; /* points into the sample */
    const struct ldm_member *cond;  /* points into the sample; NULL without cond_ext */
    char **captions;                /* ncaptions NUL-terminated, trimmed, malloc'd */
    size_t ncaptions;               /* >= 1 on success */
    int reason;                     /* LDM_REASON_NONE, or why the sample is rejected */
};

/* Pick the fields of `s` (a sample with reason 0) into *f (any content; it is
 * overwritten). On success f->captions is owned by f: free with
 * ldm_fields_free (also after a failure, where it holds nothing). Returns 0,
 * LDM_EFORMAT with f->reason set and a detail "SHARD: KEY: what" (e.g.
 * "shard.tar: 000017: no image member (members: txt, json)"), or LDM_ENOMEM. */
int ldm_sample_fields(const struct ldm_raw_sample *s, const struct ldm_fields_opts *o,
                      struct ldm_fields *f);

/* Free the captions and zero *f. NULL is allowed. */
void ldm_fields_free(struct ldm_fields *f);

#endif
