/* clip_tokenizer_int.h — the CLIP tokenizer's internals, shared by its loader and its encoder. */
#ifndef LDM_CLIP_TOKENIZER_INT_H
#define LDM_CLIP_TOKENIZER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "clip_tokenizer.h"
#include "strmap.h"

#define CLIP_MAX_MERGES (49152 - 256 - 2) /* merges CLIP reads: lines 1..48894 */
#define CLIP_DEFAULT_MAX_LENGTH 77
#define CLIP_DEFAULT_HEAP_THRESHOLD 32
#define CLIP_SOT "<|startoftext|>"
#define CLIP_EOT "<|endoftext|>"

/* One merge: the pair (a, b) packed as a << 32 | b, its rank (its line
 * among the merges; a later duplicate wins, as a Python dict does) and the
 * id of the merged token. rank -1 marks an empty slot. */
struct clip_merge {
    uint64_t pair;
    int32_t rank;
    int32_t result;
};

struct ldm_clip_tok {
    struct ldm_strmap vocab; /* token text → id */
    size_t *id_entry;        /* id → vocab entry number, SIZE_MAX for none */
    int32_t vocab_size;
    int32_t byte_id[256];     /* the byte-level symbol of each byte */
    int32_t byte_end_id[256]; /* the same with "</w>" */
    struct clip_merge *merges;
    size_t merge_mask; /* slots - 1 (a power of two) */
    int32_t n_merges;
    int32_t sot_id, eot_id; /* the split pattern's special tokens, -1 if absent */
    int32_t bos, eos, pad;
    char *pad_text;     /* the pad token when it is not <|startoftext|> / <|endoftext|>
                           (SD 2.x: "!"): split out of the raw text as Hugging Face's
                           tokenizer does with its special tokens; NULL otherwise */
    int max_length;
    int monotone;       /* every merge's parts are made by lower ranks only */
    size_t heap_min;    /* words of this many bytes or more use the heap */
};

/* The merge of (a, b), or NULL. */
static inline const struct clip_merge *clip_find_merge(const struct ldm_clip_tok *t, int32_t a,
                                                       int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t s = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->merge_mask;
    for (;; s = (s + 1) & t->merge_mask) {
        const struct clip_merge *m = &t->merges[s];
        if (m->rank < 0)
            return NULL;
        if (m->pair == key)
            return m;
    }
}

#endif
