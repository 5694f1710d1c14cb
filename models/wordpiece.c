/* wordpiece.c — BERT's uncased basic tokenizer and greedy WordPiece. */
#include "wordpiece.h"
#include "err.h"
#include "fsutil.h"
#include "json.h"
#include "strmap.h"
#include "unicode.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LINES (1 << 24)
#define MAX_WORD_CHARS 100
#define DEFAULT_MAX_LENGTH 77

enum { SP_UNK, SP_SEP, SP_PAD, SP_CLS, SP_MASK, SP_COUNT };
static const char *const special_names[SP_COUNT] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};

struct ldm_wordpiece {
    struct ldm_strmap vocab; /* token → id */
    size_t *line_entry;      /* id → vocab entry of that line's token */
    int32_t vocab_size;
    int32_t special[SP_COUNT]; /* ids, -1 when absent */
    int max_length;
};

/* Per-call work space. */
struct wp_work {
    uint32_t *tok;      /* the current white-space piece */
    uint32_t *stripped; /* the same lower-cased, NFD, marks removed (4x) */
    int32_t *ids;
    size_t cap, n; /* ids: room and count */
};

/* ---- loading ----------------------------------------------------------------------- */

void ldm_wordpiece_free(struct ldm_wordpiece *t)
{
    if (!t)
        return;
    ldm_strmap_free(&t->vocab);
    free(t->line_entry);
    free(t);
}

/* Add line `id` (len bytes at s) to the vocabulary. */
static int add_line(struct ldm_wordpiece *t, const char *s, size_t len, const char *what,
                    size_t *cap)
{
    if (t->vocab_size >= MAX_LINES)
        return ldm_fail(LDM_EFORMAT, "%s: more than %d lines", what, MAX_LINES);
    if (!ldm_utf8_valid(s, len))
        return ldm_fail(LDM_EFORMAT, "%s:%d: invalid UTF-8", what, (int)t->vocab_size + 1);
    if ((size_t)t->vocab_size == *cap) {
        size_t nc = *cap ? 2 * *cap : 1024;
        size_t *le = realloc(t->line_entry, nc * sizeof *le);
        if (!le)
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", what);
        t->line_entry = le;
        *cap = nc;
    }
    int rc = ldm_strmap_put(&t->vocab, s, len, t->vocab_size, &t->line_entry[t->vocab_size]);
    if (!rc)
        t->vocab_size++;
    return rc;
}

/* Split `len` bytes into lines (universal newlines) and add each. */
static int parse_vocab(struct ldm_wordpiece *t, const char *text, size_t len, const char *what)
{
    size_t cap = 0, i = 0;
    int rc = 0;
    while (!rc && i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n' && text[e] != '\r')
            e++;
        rc = add_line(t, text + i, e - i, what, &cap);
        if (e < len && text[e] == '\r' && e + 1 < len && text[e + 1] == '\n')
            e++;
        i = e + 1;
    }
    for (int k = 0; !rc && k < SP_COUNT; k++) {
        t->special[k] = ldm_strmap_get(&t->vocab, special_names[k], strlen(special_names[k]));
        if (t->special[k] < 0 && k != SP_MASK)
            rc = ldm_fail(LDM_EFORMAT, "%s: no %s token", what, special_names[k]);
    }
    return rc;
}

int ldm_wordpiece_load_buffer(const char *text, size_t len, const char *what,
                              struct ldm_wordpiece **out)
{
    *out = NULL;
    struct ldm_wordpiece *t = calloc(1, sizeof *t);
    if (!t)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", what);
    ldm_strmap_init(&t->vocab);
    t->max_length = DEFAULT_MAX_LENGTH;
    int rc = parse_vocab(t, text, len, what);
    if (rc) {
        ldm_wordpiece_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ldm_wordpiece_load(const char *vocab_txt, struct ldm_wordpiece **out)
{
    *out = NULL;
    struct ldm_map m = {0};
    int rc = ldm_map_file(vocab_txt, &m);
    if (rc == LDM_ENOTFOUND)
        return ldm_fail(LDM_ENOTFOUND, "%s: no such file", vocab_txt);
    if (rc)
        return rc;
    rc = ldm_wordpiece_load_buffer(m.data, m.len, vocab_txt, out);
    ldm_unmap(&m);
    return rc;
}

/* model_max_length: an integer in [2, 65536]; Hugging Face's huge "no
 * limit" value (1e30) keeps the default. */
static int max_length_setting(struct ldm_wordpiece *t, const json_t *cfg, const char *path)
{
    const json_t *v = json_object_get(cfg, "model_max_length");
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (d >= 1e9)
        return 0;
    if (d < 2 || d > 65536 || d != (double)(int)d)
        return ldm_fail(LDM_EFORMAT, "%s: model_max_length must be an integer in [2, 65536]",
                        path);
    t->max_length = (int)d;
    return 0;
}

/* tokenizer_config.json's model_max_length and do_lower_case. */
static int apply_config(struct ldm_wordpiece *t, const char *path)
{
    if (access(path, F_OK) != 0)
        return 0;
    json_error_t e;
    /* integers as reals: Hugging Face's "no limit" 1e30 overflows an integer */
    json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &e);
    if (!cfg || !json_is_object(cfg)) {
        json_decref(cfg);
        return ldm_fail(LDM_EFORMAT, "%s: line %d column %d: %s", path, e.line, e.column,
                        cfg ? "not a JSON object" : e.text);
    }
    const json_t *lc = json_object_get(cfg, "do_lower_case");
    int rc = 0;
    if (lc && json_is_false(lc))
        rc = ldm_fail(LDM_EUNSUPPORTED, "%s: do_lower_case false (cased BERT) is not supported",
                      path);
    else if (lc && !json_is_true(lc) && !json_is_null(lc))
        rc = ldm_fail(LDM_EFORMAT, "%s: do_lower_case must be true or false", path);
    if (!rc)
        rc = max_length_setting(t, cfg, path);
    json_decref(cfg);
    return rc;
}

int ldm_wordpiece_load_dir(const char *dir, struct ldm_wordpiece **out)
{
    *out = NULL;
    size_t n = strlen(dir) + 32;
    char *vocab = malloc(n), *config = malloc(n);
    int rc = vocab && config ? 0 : ldm_fail(LDM_ENOMEM, "%s: out of memory", dir);
    struct ldm_wordpiece *t = NULL;
    if (!rc) {
        snprintf(vocab, n, "%s/vocab.txt", dir);
        snprintf(config, n, "%s/tokenizer_config.json", dir);
        rc = ldm_wordpiece_load(vocab, &t);
    }
    if (!rc)
        rc = apply_config(t, config);
    free(vocab);
    free(config);
    if (rc) {
        ldm_wordpiece_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ldm_wordpiece_set_max_length(struct ldm_wordpiece *t, int max_length)
{
    if (max_length < 2)
        return ldm_fail(LDM_EINVAL, "max_length %d: [CLS] and [SEP] need at least 2", max_length);
    t->max_length = max_length;
    return 0;
}

void ldm_wordpiece_get_info(const struct ldm_wordpiece *t, struct ldm_wordpiece_info *info)
{
    info->vocab_size = t->vocab_size;
    info->unk = t->special[SP_UNK];
    info->cls = t->special[SP_CLS];
    info->sep = t->special[SP_SEP];
    info->pad = t->special[SP_PAD];
    info->mask = t->special[SP_MASK];
    info->max_length = t->max_length;
}

const char *ldm_wordpiece_token(const struct ldm_wordpiece *t, int32_t id)
{
    if (id < 0 || id >= t->vocab_size)
        return NULL;
    return ldm_strmap_key(&t->vocab, t->line_entry[id], NULL);
}

/* ---- encoding ---------------------------------------------------------------------- */

/* The CJK ideograph blocks BERT splits into single characters. */
static int is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Removed by the clean-up: NUL, U+FFFD, and "other" characters but \t \n \r. */
static int is_dropped(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    return c == 0 || c == 0xFFFD || ldm_uc_is_other(c);
}

/* A separator: BERT's white space (\t \n \r ' ' and Zs) or any other
 * character str.split() splits at. */
static int is_space(uint32_t c)
{
    return ldm_uc_is_py_space(c) || ldm_uc_category(c) == LDM_UC_ZS;
}

static int is_punct(uint32_t c)
{
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126) || ldm_uc_is_punct(c);
}

static void push(struct wp_work *w, int32_t id)
{
    if (w->n < w->cap)
        w->ids[w->n++] = id;
}

/* Greedy longest-match-first WordPiece of one word of k code points. */
static void wordpiece_word(const struct ldm_wordpiece *t, struct wp_work *w, const uint32_t *s,
                           size_t k)
{
    if (k > MAX_WORD_CHARS) {
        push(w, t->special[SP_UNK]);
        return;
    }
    char key[2 + 4 * MAX_WORD_CHARS];
    size_t off[MAX_WORD_CHARS + 1], nb = 0;
    for (size_t i = 0; i < k; i++) {
        off[i] = nb;
        nb += ldm_uc_encode(s[i], (unsigned char *)key + 2 + nb);
    }
    off[k] = nb;
    int32_t found[MAX_WORD_CHARS];
    size_t nf = 0;
    for (size_t start = 0; start < k;) {
        /* a continuation is looked up as "##" + its text: write the "##"
         * over the (already used) bytes just before it */
        char *base = key + off[start];
        if (start > 0)
            memcpy(base, "##", 2);
        size_t head = start > 0 ? 0 : 2, end = k;
        int32_t id = -1;
        for (; end > start && id < 0; end--)
            id = ldm_strmap_get(&t->vocab, base + head, 2 - head + off[end] - off[start]);
        if (id < 0) {
            push(w, t->special[SP_UNK]);
            return;
        }
        found[nf++] = id;
        start = end + 1;
    }
    for (size_t i = 0; i < nf; i++)
        push(w, found[i]);
}

/* Steps 5-6 of wordpiece.h for one white-space piece (changed in place). */
static void encode_piece(const struct ldm_wordpiece *t, struct wp_work *w, uint32_t *s, size_t k)
{
    for (size_t i = 0; i < k; i++)
        s[i] = ldm_uc_lower_cp(s[i]); /* U+0130's "i\u0307" loses its mark below anyway */
    size_t m = ldm_uc_strip_accents(s, k, w->stripped);
    const uint32_t *x = w->stripped;
    size_t a = 0;
    for (size_t i = 0; i <= m && w->n < w->cap; i++) {
        if (i < m && !is_punct(x[i]) && !is_space(x[i]))
            continue;
        if (i > a)
            wordpiece_word(t, w, x + a, i - a);
        if (i < m && is_punct(x[i]))
            wordpiece_word(t, w, x + i, 1);
        a = i + 1;
    }
}

/* Steps 2-6 over s[0, n), which holds no special token. */
static void encode_text(const struct ldm_wordpiece *t, struct wp_work *w, const uint32_t *s,
                        size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i <= n && w->n < w->cap; i++) {
        uint32_t c = i < n ? s[i] : ' ';
        if (is_dropped(c))
            continue;
        int cjk = is_cjk(c);
        if (!cjk && !is_space(c)) {
            w->tok[k++] = c;
            continue;
        }
        if (k)
            encode_piece(t, w, w->tok, k);
        k = 0;
        if (cjk && w->n < w->cap)
            encode_piece(t, w, &c, 1);
    }
}

/* The special token at s[i], or -1. */
static int special_at(const struct ldm_wordpiece *t, const uint32_t *s, size_t n, size_t i,
                      size_t *len)
{
    for (int k = 0; k < SP_COUNT; k++) {
        const char *name = special_names[k];
        size_t j = 0;
        while (name[j] && i + j < n && s[i + j] == (unsigned char)name[j])
            j++;
        if (!name[j] && t->special[k] >= 0) {
            *len = j;
            return k;
        }
    }
    return -1;
}

int ldm_wordpiece_encode(const struct ldm_wordpiece *t, const char *text, size_t len,
                         int32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    uint32_t *s = malloc((len + 1) * sizeof *s);
    struct wp_work w = {malloc((len + 1) * sizeof *w.tok),
                        malloc(4 * (len + 1) * sizeof *w.stripped), ids, cap, 0};
    int rc = s && w.tok && w.stripped ? 0 : ldm_fail(LDM_ENOMEM, "tokenizer: out of memory");
    size_t bad = 0, m = rc ? 0 : ldm_uc_decode(text, len, s, &bad);
    if (!rc && m == (size_t)-1)
        rc = ldm_fail(LDM_EFORMAT, "caption: invalid UTF-8 at byte %zu", bad);
    size_t seg = 0;
    for (size_t i = 0; !rc && i < m && w.n < cap; i++) {
        size_t sl = 0;
        int k = s[i] == '[' ? special_at(t, s, m, i, &sl) : -1;
        if (k < 0)
            continue;
        encode_text(t, &w, s + seg, i - seg);
        push(&w, t->special[k]);
        seg = i + sl;
        i = seg - 1;
    }
    if (!rc && seg < m)
        encode_text(t, &w, s + seg, m - seg);
    free(s);
    free(w.tok);
    free(w.stripped);
    *n = w.n;
    return rc;
}

int ldm_wordpiece_frame(const struct ldm_wordpiece *t, const char *text, size_t len, int32_t *ids,
                        size_t *n_used)
{
    size_t max = (size_t)t->max_length, k = 0;
    int rc = ldm_wordpiece_encode(t, text, len, ids + 1, max - 2, &k);
    if (rc)
        return rc;
    ids[0] = t->special[SP_CLS];
    ids[k + 1] = t->special[SP_SEP];
    for (size_t i = k + 2; i < max; i++)
        ids[i] = t->special[SP_PAD];
    if (n_used)
        *n_used = k + 2;
    return 0;
}
