/* wordpiece.h — BERT's uncased WordPiece tokenizer (the text side of LDM-BERT models).
 *
 * Gives the ids of Hugging Face's BertTokenizer with do_lower_case=True
 * (bert-base-uncased, CompVis ldm-text2im-large-256). The text goes through:
 *   1. the special tokens present in the vocabulary ([UNK] [SEP] [PAD] [CLS]
 *      [MASK]), matched exactly as written, give their own ids; the text
 *      between them goes through 2-6;
 *   2. clean-up: U+0000, U+FFFD and every "other" character (categories Cc,
 *      Cf, Cs, Co, Cn) but tab, newline and carriage return are dropped;
 *      tab, newline, carriage return and Zs spaces become ' ';
 *   3. each CJK ideograph (the ranges BERT lists) becomes a word of its own;
 *   4. the text is split at white space (Python's str.split());
 *   5. each piece is lower-cased character by character (str.lower, as
 *      Hugging Face does before the basic tokenizer, so there is no final
 *      sigma), decomposed (NFD) and stripped of non-spacing marks (Mn); then
 *      every punctuation character (ASCII !-/ :-@ [-` {-~ and categories P*)
 *      becomes a word of its own;
 *   6. each word longer than 100 characters is [UNK]; the others are split
 *      greedily, longest vocabulary match first, continuations prefixed
 *      "##"; a word with a part that matches nothing is [UNK] as a whole.
 * Unicode data: Unicode 14.0 tables for all code points (unicode.h).
 * Newer Hugging Face releases also apply NFC before step 4; with accents
 * stripped, that changes no ids.
 *
 * A loaded tokenizer is read-only: any number of threads may encode with it
 * at once, without locks.
 */
#ifndef LDM_WORDPIECE_H
#define LDM_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

struct ldm_wordpiece;

struct ldm_wordpiece_info {
    int32_t vocab_size;          /* lines of vocab.txt */
    int32_t unk, cls, sep, pad;  /* ids of [UNK] [CLS] [SEP] [PAD] */
    int32_t mask;                /* id of [MASK], or -1 */
    int max_length;              /* ids per framed text, [CLS] and [SEP] included */
};

/* Load vocab.txt: one token a line, id = line number (from 0); lines end at
 * "\n", "\r\n" or "\r" (Python's universal newlines); a token that appears
 * twice gets the later line's id. The text must be UTF-8 and must hold
 * [UNK], [CLS], [SEP] and [PAD]. max_length starts at 77 (LDM-BERT).
 * *out is a new tokenizer (free with ldm_wordpiece_free). Errors:
 * LDM_ENOTFOUND, LDM_EIO, LDM_EFORMAT (invalid UTF-8 with its line, a
 * missing special token, more than 2^24 lines), LDM_ENOMEM. */
int ldm_wordpiece_load(const char *vocab_txt, struct ldm_wordpiece **out);

/* The same from `len` bytes in memory; `what` names them in error details. */
int ldm_wordpiece_load_buffer(const char *text, size_t len, const char *what,
                              struct ldm_wordpiece **out);

/* Load a Hugging Face tokenizer folder: vocab.txt, plus tokenizer_config.json
 * when present (model_max_length in [2, 65536] is used, Hugging Face's huge
 * "no limit" value ignored; do_lower_case false is refused with
 * LDM_EUNSUPPORTED, as this tokenizer is uncased only). */
int ldm_wordpiece_load_dir(const char *dir, struct ldm_wordpiece **out);

/* Free a tokenizer; NULL is fine. */
void ldm_wordpiece_free(struct ldm_wordpiece *t);

/* Set the framed length (>= 2), before sharing. Returns 0 or LDM_EINVAL. */
int ldm_wordpiece_set_max_length(struct ldm_wordpiece *t, int max_length);

void ldm_wordpiece_get_info(const struct ldm_wordpiece *t, struct ldm_wordpiece_info *info);

/* The token of `id` (owned by the tokenizer), or NULL outside the vocabulary. */
const char *ldm_wordpiece_token(const struct ldm_wordpiece *t, int32_t id);

/* Tokenize `len` bytes of UTF-8 into ids without [CLS]/[SEP]: at most `cap`
 * written, *n the count; text after the word that fills `cap` is not
 * looked at. Errors: LDM_EFORMAT (invalid UTF-8, with the byte offset),
 * LDM_ENOMEM. */
int ldm_wordpiece_encode(const struct ldm_wordpiece *t, const char *text, size_t len,
                         int32_t *ids, size_t cap, size_t *n);

/* [CLS], at most max_length - 2 ids, [SEP], then [PAD] up to max_length
 * (padding="max_length", truncation=True). `ids` has room for max_length;
 * *n_used (when not NULL) counts the ids before the padding. Errors as
 * ldm_wordpiece_encode. */
int ldm_wordpiece_frame(const struct ldm_wordpiece *t, const char *text, size_t len, int32_t *ids,
                        size_t *n_used);

#endif
