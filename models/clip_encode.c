/* clip_encode.c — CLIP text cleanup, the split pattern and byte-level BPE merging. */
#include "clip_tokenizer_int.h"
#include "err.h"
#include "html_unescape.h"
#include "unicode.h"
#include "unicode_tables.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TEXT_BYTES (1u << 28)

/* Per-call work space: the cleaned text and the current word's symbols. */
struct work {
    uint32_t *text; /* cleaned, lower-cased code points */
    size_t n;
    int32_t *sym;         /* the word's symbols (ids) */
    int32_t *next, *prev; /* heap form: linked list over sym */
    uint64_t *heap;       /* heap form: rank << 32 | position */
    unsigned char *bytes; /* the word's UTF-8 */
    size_t cap;           /* symbols (bytes) the arrays hold; heap holds 3 * cap */
};

static void work_free(struct work *w)
{
    free(w->text);
    free(w->sym);
    free(w->next);
    free(w->prev);
    free(w->heap);
    free(w->bytes);
}

static int work_reserve(struct work *w, size_t bytes)
{
    if (bytes <= w->cap)
        return 0;
    size_t cap = bytes < 64 ? 64 : bytes;
    free(w->sym);
    free(w->next);
    free(w->prev);
    free(w->heap);
    free(w->bytes);
    w->sym = malloc(cap * sizeof *w->sym);
    w->next = malloc(cap * sizeof *w->next);
    w->prev = malloc(cap * sizeof *w->prev);
    w->heap = malloc(3 * cap * sizeof *w->heap);
    w->bytes = malloc(cap);
    w->cap = cap;
    if (!w->sym || !w->next || !w->prev || !w->heap || !w->bytes) {
        w->cap = 0;
        return ldm_fail(LDM_ENOMEM, "tokenizer: out of memory for a %zu-byte word", bytes);
    }
    return 0;
}

/* ---- text cleanup ------------------------------------------------------------ */

/* Runs of White_Space become one ' '; str.isspace() characters are stripped
 * from both ends. In place; returns the new length. */
static size_t collapse_strip(uint32_t *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (ldm_uc_is_white_space(s[i])) {
            while (i < n && ldm_uc_is_white_space(s[i]))
                i++;
            s[w++] = ' ';
        } else {
            s[w++] = s[i++];
        }
    }
    size_t a = 0;
    while (a < w && ldm_uc_is_py_space(s[a]))
        a++;
    while (w > a && ldm_uc_is_py_space(s[w - 1]))
        w--;
    memmove(s, s + a, (w - a) * sizeof *s);
    return w - a;
}

/* Steps 1-3 of clip_tokenizer.h: w->text, w->n. */
static int clean(const char *text, size_t len, struct work *w)
{
    if (len > MAX_TEXT_BYTES) /* word positions are int32 in the heap form */
        return ldm_fail(LDM_ERANGE, "caption of %zu bytes: more than %u", len, MAX_TEXT_BYTES);
    uint32_t *raw = malloc((len + 1) * sizeof *raw);
    if (!raw)
        return ldm_fail(LDM_ENOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    size_t bad = 0, n = ldm_uc_decode(text, len, raw, &bad);
    if (n == (size_t)-1) {
        free(raw);
        return ldm_fail(LDM_EFORMAT, "caption: invalid UTF-8 at byte %zu", bad);
    }
    n = ldm_html_unescape(raw, n);
    n = ldm_html_unescape(raw, n);
    n = collapse_strip(raw, n);
    w->text = malloc((n + ldm_uc_lower_extra(raw, n) + 1) * sizeof *w->text);
    if (!w->text) {
        free(raw);
        return ldm_fail(LDM_ENOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    }
    w->n = ldm_uc_lower(raw, n, w->text);
    free(raw);
    return 0;
}

int ldm_clip_clean_text(const char *text, size_t len, char **out, size_t *out_len)
{
    *out = NULL;
    struct work w = {0};
    int rc = clean(text, len, &w);
    if (rc)
        return rc;
    unsigned char *s = malloc(4 * w.n + 1);
    if (!s) {
        work_free(&w);
        return ldm_fail(LDM_ENOMEM, "tokenizer: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < w.n; i++)
        k += ldm_uc_encode(w.text[i], s + k);
    s[k] = '\0';
    work_free(&w);
    *out = (char *)s;
    if (out_len)
        *out_len = k;
    return 0;
}

/* ---- the split pattern --------------------------------------------------------- */

enum piece_kind { PIECE_NONE, PIECE_WORD, PIECE_SOT, PIECE_EOT };

/* c matches the ASCII letter or symbol `lit` case-insensitively (simple
 * case folding, as the pattern's IGNORECASE flag does). The text is already
 * lower-case, so only the non-ASCII variants (U+017F for 's') are left. */
static int lit_eq(uint32_t c, char lit)
{
    if (c == (unsigned char)lit)
        return 1;
    for (size_t i = 0; i < ldm_uc_ascii_fold_count; i++)
        if (ldm_uc_ascii_fold[i].cp == c && ldm_uc_ascii_fold[i].ascii == (unsigned char)lit)
            return 1;
    return 0;
}

static int lit_at(const uint32_t *s, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || !lit_eq(s[i + k], lit[k]))
            return 0;
    return 1;
}

/* s[i...] (known to match `lit` case-insensitively) is `lit` itself: only
 * then is it the special token (CLIP looks the piece up as it is). */
static int exact_at(const uint32_t *s, size_t i, const char *lit)
{
    for (size_t k = 0; lit[k]; k++)
        if (s[i + k] != (unsigned char)lit[k])
            return 0;
    return 1;
}

/* The length of a contraction ('s 't 're 've 'm 'll 'd) at s[i], or 0. */
static size_t contraction(const uint32_t *s, size_t n, size_t i)
{
    static const char *const forms[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++)
        if (lit_at(s, n, i, forms[k]))
            return strlen(forms[k]);
    return 0;
}

/* In the class [^\s\p{L}\p{N}] under IGNORECASE. */
static int is_other(uint32_t c)
{
    if (ldm_uc_is_white_space(c) || ldm_uc_is_letter(c) || ldm_uc_is_number(c))
        return 0;
    return !ldm_uc_in_ranges(ldm_uc_clip_unmatched, ldm_uc_clip_unmatched_count, c);
}

/* The next piece at or after *pos: [*start, *pos) after the call. */
static enum piece_kind next_piece(const uint32_t *s, size_t n, size_t *pos, size_t *start)
{
    for (size_t i = *pos; i < n; i++) {
        uint32_t c = s[i];
        size_t e = i;
        enum piece_kind kind = PIECE_WORD;
        size_t k;
        if (c == '<' && lit_at(s, n, i, CLIP_SOT)) {
            e = i + strlen(CLIP_SOT);
            kind = exact_at(s, i, CLIP_SOT) ? PIECE_SOT : PIECE_WORD;
        } else if (c == '<' && lit_at(s, n, i, CLIP_EOT)) {
            e = i + strlen(CLIP_EOT);
            kind = exact_at(s, i, CLIP_EOT) ? PIECE_EOT : PIECE_WORD;
        } else if (c == '\'' && (k = contraction(s, n, i)) > 0) {
            e = i + k;
        } else if (ldm_uc_is_letter(c)) {
            for (e = i + 1; e < n && ldm_uc_is_letter(s[e]);)
                e++;
        } else if (ldm_uc_is_number(c)) {
            e = i + 1;
        } else if (is_other(c)) {
            for (e = i + 1; e < n && is_other(s[e]);)
                e++;
        }
        if (e > i) {
            *start = i;
            *pos = e;
            return kind;
        }
    }
    *pos = n;
    return PIECE_NONE;
}

/* ---- BPE ------------------------------------------------------------------------ */

/* CLIP's form: find the best-ranked pair, merge all its occurrences left to
 * right, repeat. Returns the new symbol count. */
static size_t bpe_rounds(const struct ldm_clip_tok *t, int32_t *s, size_t n)
{
    while (n > 1) {
        int32_t best = INT32_MAX, res = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const struct clip_merge *m = clip_find_merge(t, s[i], s[i + 1]);
            if (m && m->rank < best) {
                best = m->rank;
                res = m->result;
                at = i;
            }
        }
        if (res < 0)
            break;
        int32_t a = s[at], b = s[at + 1];
        size_t w = at;
        for (size_t i = at; i < n;) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                s[w++] = res;
                i += 2;
            } else {
                s[w++] = s[i++];
            }
        }
        n = w;
    }
    return n;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Queue the pair starting at symbol p when it has a merge. */
static void queue_pair(const struct ldm_clip_tok *t, struct work *w, size_t *hn, int32_t p)
{
    const struct clip_merge *m = clip_find_merge(t, w->sym[p], w->sym[w->next[p]]);
    if (m)
        heap_push(w->heap, hn, (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)p);
}

/* The heap form: always merge the best-ranked, leftmost pair. With merge
 * ranks that grow along every merge chain (t->monotone) this is the same as
 * bpe_rounds, in O(n log n). */
static size_t bpe_heap(const struct ldm_clip_tok *t, struct work *w, size_t n)
{
    int32_t *s = w->sym, *nx = w->next, *pv = w->prev;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        nx[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        pv[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        queue_pair(t, w, &hn, (int32_t)i);
    while (hn) {
        uint64_t top = heap_pop(w->heap, &hn);
        int32_t p = (int32_t)(top & 0xFFFFFFFF), q = nx[p];
        if (s[p] < 0 || q < 0)
            continue;
        const struct clip_merge *m = clip_find_merge(t, s[p], s[q]);
        if (!m || (uint64_t)m->rank != top >> 32)
            continue; /* the pair queued here has changed since */
        s[p] = m->result;
        s[q] = -1;
        nx[p] = nx[q];
        if (nx[q] >= 0)
            pv[nx[q]] = p;
        if (pv[p] >= 0)
            queue_pair(t, w, &hn, pv[p]);
        if (nx[p] >= 0)
            queue_pair(t, w, &hn, p);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = nx[i])
        s[k++] = s[i];
    return k;
}

/* BPE the piece text[a, b) and append its ids to ids[*n..cap). */
static int encode_word(const struct ldm_clip_tok *t, struct work *w, size_t a, size_t b,
                       int32_t *ids, size_t cap, size_t *n)
{
    int rc = work_reserve(w, 4 * (b - a));
    if (rc)
        return rc;
    size_t nb = 0;
    for (size_t i = a; i < b; i++)
        nb += ldm_uc_encode(w->text[i], w->bytes + nb);
    for (size_t i = 0; i < nb; i++)
        w->sym[i] = i + 1 < nb ? t->byte_id[w->bytes[i]] : t->byte_end_id[w->bytes[i]];
    size_t k = t->monotone && nb >= t->heap_min ? bpe_heap(t, w, nb) : bpe_rounds(t, w->sym, nb);
    for (size_t i = 0; i < k && *n < cap; i++)
        ids[(*n)++] = w->sym[i];
    return 0;
}

/* Tokenize one stretch of text (no special-token split inside). */
static int encode_chunk(const struct ldm_clip_tok *t, const char *text, size_t len, int32_t *ids,
                        size_t cap, size_t *n)
{
    struct work w = {0};
    int rc = clean(text, len, &w);
    size_t pos = 0, start = 0;
    while (!rc && *n < cap) {
        enum piece_kind kind = next_piece(w.text, w.n, &pos, &start);
        if (kind == PIECE_NONE)
            break;
        if (kind == PIECE_SOT && t->sot_id >= 0)
            ids[(*n)++] = t->sot_id;
        else if (kind == PIECE_EOT && t->eot_id >= 0)
            ids[(*n)++] = t->eot_id;
        else
            rc = encode_word(t, &w, start, pos, ids, cap, n);
    }
    work_free(&w);
    return rc;
}

int ldm_clip_tok_encode(const struct ldm_clip_tok *t, const char *text, size_t len, int32_t *ids,
                        size_t cap, size_t *n)
{
    *n = 0;
    if (!t->pad_text)
        return encode_chunk(t, text, len, ids, cap, n);
    /* a pad token that is ordinary text ("!") is split out of the raw text first */
    size_t plen = strlen(t->pad_text), from = 0;
    int rc = 0;
    while (!rc && *n < cap) {
        const char *hit = memmem(text + from, len - from, t->pad_text, plen);
        size_t end = hit ? (size_t)(hit - text) : len;
        rc = encode_chunk(t, text + from, end - from, ids, cap, n);
        if (!hit)
            break;
        if (!rc && *n < cap)
            ids[(*n)++] = t->pad;
        from = end + plen;
    }
    return rc;
}

int ldm_clip_tok_frame(const struct ldm_clip_tok *t, const char *text, size_t len, int32_t *ids,
                       size_t *n_used)
{
    size_t max = (size_t)t->max_length, k = 0;
    int rc = ldm_clip_tok_encode(t, text, len, ids + 1, max - 2, &k);
    if (rc)
        return rc;
    ids[0] = t->bos;
    ids[k + 1] = t->eos;
    for (size_t i = k + 2; i < max; i++)
        ids[i] = t->pad;
    if (n_used)
        *n_used = k + 2;
    return 0;
}
