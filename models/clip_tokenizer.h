/* clip_tokenizer.h — the CLIP byte-level BPE tokenizer (Stable Diffusion's text encoders).
 *
 * Gives the ids OpenAI CLIP's SimpleTokenizer gives (and so Hugging Face's
 * CLIPTokenizer with ftfy). The text goes through, in order:
 *   1. HTML unescape, twice (Python's html.unescape; see html_unescape.h);
 *   2. runs of White_Space become one space; leading and trailing
 *      str.isspace() characters are removed;
 *   3. lower case: Python's str.lower() for all of Unicode (Latin, Greek
 *      with the final sigma, Cyrillic, Armenian, Georgian, Cherokee, ...,
 *      U+0130 -> "i\u0307"), from tables generated from Unicode 14.0;
 *   4. the split pattern <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|
 *      'll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (case-insensitive, as
 *      OpenAI compiles it); what no branch matches (white space, U+0345) is
 *      skipped;
 *   5. each piece's UTF-8 bytes as byte-level symbols, "</w>" on the last,
 *      merged pairwise by merge rank (all occurrences of the best-ranked
 *      pair, left to right, until no pair has a rank); the two special
 *      tokens in the text give their own ids.
 * A pad token that is ordinary text (SD 2.x and SDXL's second tokenizer pad
 * with "!") is a special token to Hugging Face's tokenizer: every occurrence
 * in the raw text is split out first and gives the pad id. So does ours.
 * ftfy.fix_text (mojibake repair) runs first in the reference; it has no C
 * counterpart here and is skipped: it changes only text that is already
 * broken (mis-decoded UTF-8, HTML-escaped quotes in odd forms, ...).
 *
 * A loaded tokenizer is read-only: any number of threads may encode with it
 * at once, without locks (each call allocates its own work space).
 */
#ifndef LDM_CLIP_TOKENIZER_H
#define LDM_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct ldm_clip_tok;

/* What a tokenizer uses for framing. */
struct ldm_clip_tok_info {
    int32_t vocab_size; /* 1 + the largest id */
    int32_t n_merges;
    int32_t bos, eos; /* <|startoftext|> 49406, <|endoftext|> 49407 for CLIP */
    int32_t pad;      /* SD 1.x: 49407 (EOS); SD 2.x and SDXL's second: 0 ("!") */
    int max_length;   /* ids per framed caption, BOS and EOS included (77) */
};

/* Load a Hugging Face tokenizer folder (a diffusers model's `tokenizer/` or
 * `tokenizer_2/`): vocab.json (token → id) and merges.txt (a header line,
 * then one "a b" merge a line, at most 48894 used, as CLIPTokenizer does),
 * plus, when present, tokenizer_config.json (model_max_length, bos_token,
 * eos_token, pad_token) and special_tokens_map.json (its tokens override the
 * config's). Tokens may be strings or {"content": ...} objects. Defaults:
 * max_length 77, pad = eos.
 * On success *out is a new tokenizer (free with ldm_clip_tok_free).
 * Errors: LDM_ENOTFOUND (no vocab.json or merges.txt), LDM_EFORMAT (bad
 * JSON, a merge line without two parts, a merge or special token or byte
 * symbol not in the vocabulary, duplicate ids; the detail names the file,
 * line or token), LDM_EIO, LDM_ENOMEM. */
int ldm_clip_tok_load_dir(const char *dir, struct ldm_clip_tok **out);

/* As ldm_clip_tok_load_dir with the two files named; no config files. */
int ldm_clip_tok_load_files(const char *vocab_json, const char *merges_txt,
                            struct ldm_clip_tok **out);

/* Load OpenAI's bpe_simple_vocab_16e6.txt.gz (gzip; a header line, then
 * merges): the vocabulary is built as CLIP builds it: the 256 byte symbols,
 * the same with "</w>", one token per merge of the first 48894, then
 * <|startoftext|> and <|endoftext|>. Pad = eos, max_length 77. Errors as
 * ldm_clip_tok_load_dir (LDM_EFORMAT also for a file that is not gzip). */
int ldm_clip_tok_load_bpe_gz(const char *path, struct ldm_clip_tok **out);

/* Free a tokenizer; NULL is fine. */
void ldm_clip_tok_free(struct ldm_clip_tok *t);

/* Change the pad id (0 <= pad < vocab_size) or the framed length (>= 2);
 * only before the tokenizer is shared between threads. Returns 0 or
 * LDM_EINVAL. */
int ldm_clip_tok_set_pad(struct ldm_clip_tok *t, int32_t pad);
int ldm_clip_tok_set_max_length(struct ldm_clip_tok *t, int max_length);

/* Words of at least `bytes` bytes are merged with a heap (O(n log n)) rather
 * than by rescanning the word for each merge (faster for short words; the
 * default switch is at 32 bytes). Both give the same ids; this exists for
 * tests and tuning. Merge tables whose ranks do not grow along each merge
 * chain (never so for CLIP) always use the rescanning form. */
void ldm_clip_tok_set_heap_threshold(struct ldm_clip_tok *t, size_t bytes);

void ldm_clip_tok_get_info(const struct ldm_clip_tok *t, struct ldm_clip_tok_info *info);

/* The token text of `id` in the byte-level alphabet ("a</w>", "Ġ"...), or
 * NULL when no token has that id. Owned by the tokenizer. */
const char *ldm_clip_tok_token(const struct ldm_clip_tok *t, int32_t id);

/* Tokenize `len` bytes of UTF-8 text (not NUL-terminated; NUL is a
 * character) into ids without BOS/EOS. At most `cap` ids are written to
 * `ids`; *n is the count written. The text after the piece that fills `cap`
 * is not tokenized, so a caller that must know whether ids were cut asks for
 * one more than it keeps. Errors: LDM_EFORMAT (invalid UTF-8; the detail
 * gives the byte offset), LDM_ERANGE (text over 256 MiB), LDM_ENOMEM. */
int ldm_clip_tok_encode(const struct ldm_clip_tok *t, const char *text, size_t len, int32_t *ids,
                        size_t cap, size_t *n);

/* Frame `text` for a text encoder: ids[0] = bos, then at most max_length - 2
 * ids (the rest cut), eos, then pad up to max_length (what diffusers does
 * with padding="max_length", truncation=True). `ids` has room for
 * max_length; *n_used (when not NULL) is the count before the padding (the
 * EOS position + 1). Errors as ldm_clip_tok_encode. */
int ldm_clip_tok_frame(const struct ldm_clip_tok *t, const char *text, size_t len, int32_t *ids,
                       size_t *n_used);

/* The text after steps 1-3 above (the string the split pattern sees), as
 * malloc'd NUL-terminated UTF-8 in *out (the caller frees it) and its length
 * in *out_len (when not NULL). Errors as ldm_clip_tok_encode. */
int ldm_clip_clean_text(const char *text, size_t len, char **out, size_t *out_len);

#endif
