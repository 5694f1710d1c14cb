/* clip_tokenizer.c — loading the CLIP BPE tokenizer: vocab.json + merges.txt, or OpenAI's .gz. */
#include "clip_tokenizer_int.h"
#include "err.h"
#include "fsutil.h"
#include "json.h"
#include "unicode.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_VOCAB (1 << 24)
#define MAX_GZ_BYTES (64u << 20)
#define END_OF_WORD "</w>"

/* One merge line: its two symbols (pointers into the file's bytes). */
struct merge_text {
    const char *a, *b;
    uint32_t alen, blen;
    size_t line;
};

struct merge_list {
    struct merge_text *m;
    size_t n;
};

/* CLIP's bytes_to_unicode: bytes that are printable Latin-1 stand for
 * themselves, the others for U+0100 and up, in byte order. */
static void byte_chars(uint32_t cp[256])
{
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp[b] = printable ? (uint32_t)b : next++;
    }
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Split the merges file's text into lines 1..CLIP_MAX_MERGES (line 0 is the
 * version header), each exactly two symbols. Trailing blank lines are
 * ignored, as Hugging Face's strip() does. */
static int parse_merges(const char *buf, size_t len, const char *what, struct merge_list *out)
{
    while (len > 0 && (is_blank(buf[len - 1]) || buf[len - 1] == '\n'))
        len--;
    out->m = calloc(CLIP_MAX_MERGES, sizeof *out->m);
    out->n = 0;
    if (!out->m)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", what);
    if (len == 0)
        return 0;
    const char *p = memchr(buf, '\n', len), *end = buf + len;
    for (size_t line = 2; p && p < end && out->n < CLIP_MAX_MERGES; line++) {
        const char *s = p + 1, *e = memchr(s, '\n', (size_t)(end - s));
        p = e;
        if (!e)
            e = end;
        const char *f[3];
        size_t fl[3], nf = 0;
        for (const char *q = s; q < e && nf < 3;) {
            while (q < e && is_blank(*q))
                q++;
            if (q == e)
                break;
            f[nf] = q;
            while (q < e && !is_blank(*q))
                q++;
            fl[nf] = (size_t)(q - f[nf]);
            nf++;
        }
        if (nf != 2 || fl[0] > UINT32_MAX / 2 || fl[1] > UINT32_MAX / 2)
            return ldm_fail(LDM_EFORMAT, "%s:%zu: a merge line must hold two symbols", what, line);
        out->m[out->n++] = (struct merge_text){f[0], f[1], (uint32_t)fl[0], (uint32_t)fl[1], line};
    }
    return 0;
}

static struct ldm_clip_tok *tok_new(void)
{
    struct ldm_clip_tok *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    ldm_strmap_init(&t->vocab);
    t->sot_id = t->eot_id = -1;
    t->max_length = CLIP_DEFAULT_MAX_LENGTH;
    t->heap_min = CLIP_DEFAULT_HEAP_THRESHOLD;
    return t;
}

void ldm_clip_tok_free(struct ldm_clip_tok *t)
{
    if (!t)
        return;
    ldm_strmap_free(&t->vocab);
    free(t->pad_text);
    free(t->id_entry);
    free(t->merges);
    free(t);
}

/* Fill id_entry from the vocabulary; two tokens with one id is an error. */
static int index_ids(struct ldm_clip_tok *t, const char *what)
{
    t->id_entry = malloc((size_t)t->vocab_size * sizeof *t->id_entry);
    if (!t->id_entry)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", what);
    for (int32_t i = 0; i < t->vocab_size; i++)
        t->id_entry[i] = SIZE_MAX;
    for (size_t e = 0; e < t->vocab.count; e++) {
        int32_t id = t->vocab.ent[e].value;
        if (t->id_entry[id] != SIZE_MAX)
            return ldm_fail(LDM_EFORMAT, "%s: tokens \"%s\" and \"%s\" both have id %d", what,
                            ldm_strmap_key(&t->vocab, t->id_entry[id], NULL),
                            ldm_strmap_key(&t->vocab, e, NULL), (int)id);
        t->id_entry[id] = e;
    }
    return 0;
}

/* The id of the `len` bytes at `s` followed by the `len2` at `s2`, or -1;
 * `scratch` (not overlapping either) holds len + len2 bytes. */
static int32_t lookup2(const struct ldm_clip_tok *t, const char *s, size_t len, const char *s2,
                       size_t len2, char *scratch)
{
    memcpy(scratch, s, len);
    memcpy(scratch + len, s2, len2);
    return ldm_strmap_get(&t->vocab, scratch, len + len2);
}

/* byte_id / byte_end_id from the vocabulary. */
static int resolve_bytes(struct ldm_clip_tok *t, const char *what)
{
    uint32_t cp[256];
    byte_chars(cp);
    for (int b = 0; b < 256; b++) {
        char s[8], scratch[16];
        size_t n = ldm_uc_encode(cp[b], (unsigned char *)s);
        t->byte_id[b] = lookup2(t, s, n, "", 0, scratch);
        t->byte_end_id[b] = lookup2(t, s, n, END_OF_WORD, 4, scratch);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return ldm_fail(LDM_EFORMAT,
                            "%s: the byte symbol \"%.*s%s\" (byte 0x%02X) is not in the vocabulary",
                            what, (int)n, s, t->byte_id[b] < 0 ? "" : END_OF_WORD, (unsigned)b);
    }
    return 0;
}

static void insert_merge(struct ldm_clip_tok *t, int32_t a, int32_t b, int32_t rank, int32_t res)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t s = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->merge_mask;
    while (t->merges[s].rank >= 0 && t->merges[s].pair != key)
        s = (s + 1) & t->merge_mask;
    t->merges[s] = (struct clip_merge){key, rank, res};
}

/* Whether every merge's two parts are only ever made by merges of lower
 * rank: then merging the best pair one occurrence at a time (the heap) is
 * the same as CLIP's all-occurrences rounds. */
static int check_monotone(struct ldm_clip_tok *t)
{
    int32_t *made = malloc((size_t)t->vocab_size * sizeof *made);
    if (!made)
        return ldm_fail(LDM_ENOMEM, "merges: out of memory");
    for (int32_t i = 0; i < t->vocab_size; i++)
        made[i] = -1;
    for (size_t s = 0; s <= t->merge_mask; s++) {
        const struct clip_merge *m = &t->merges[s];
        if (m->rank >= 0 && m->rank > made[m->result])
            made[m->result] = m->rank;
    }
    t->monotone = 1;
    for (size_t s = 0; s <= t->merge_mask; s++) {
        const struct clip_merge *m = &t->merges[s];
        int32_t a = (int32_t)(m->pair >> 32), b = (int32_t)(m->pair & 0xFFFFFFFF);
        if (m->rank >= 0 && (made[a] >= m->rank || made[b] >= m->rank))
            t->monotone = 0;
    }
    free(made);
    return 0;
}

/* Look every merge's parts and result up in the vocabulary and build the
 * merge table. */
static int resolve_merges(struct ldm_clip_tok *t, const struct merge_list *ml, const char *what)
{
    size_t slots = 64;
    while (slots < 2 * ml->n)
        slots *= 2;
    t->merges = malloc(slots * sizeof *t->merges);
    char *scratch = malloc(2 * (size_t)UINT16_MAX + 8);
    if (!t->merges || !scratch) {
        free(scratch);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", what);
    }
    t->merge_mask = slots - 1;
    for (size_t s = 0; s < slots; s++)
        t->merges[s].rank = -1;
    int rc = 0;
    for (size_t i = 0; i < ml->n && !rc; i++) {
        const struct merge_text *m = &ml->m[i];
        if (m->alen > UINT16_MAX || m->blen > UINT16_MAX) {
            rc = ldm_fail(LDM_EFORMAT, "%s:%zu: symbol too long", what, m->line);
            break;
        }
        int32_t a = lookup2(t, m->a, m->alen, "", 0, scratch);
        int32_t b = lookup2(t, m->b, m->blen, "", 0, scratch);
        int32_t r = lookup2(t, m->a, m->alen, m->b, m->blen, scratch);
        const char *miss = a < 0 ? m->a : b < 0 ? m->b : r < 0 ? scratch : NULL;
        if (miss) {
            size_t mlen = a < 0 ? m->alen : b < 0 ? m->blen : (size_t)m->alen + m->blen;
            rc = ldm_fail(LDM_EFORMAT, "%s:%zu: \"%.*s\" is not in the vocabulary", what, m->line,
                          (int)mlen, miss);
        } else {
            insert_merge(t, a, b, (int32_t)i, r);
        }
    }
    free(scratch);
    t->n_merges = (int32_t)ml->n;
    return rc ? rc : check_monotone(t);
}

/* The id of a special token that must exist. */
static int special_id(const struct ldm_clip_tok *t, const char *tok, const char *role,
                      const char *what, int32_t *id)
{
    *id = ldm_strmap_get(&t->vocab, tok, strlen(tok));
    if (*id < 0)
        return ldm_fail(LDM_EFORMAT, "%s: %s \"%s\" is not in the vocabulary", what, role, tok);
    return 0;
}

/* Everything after the vocabulary is filled: ids, bytes, merges, specials. */
static int finish(struct ldm_clip_tok *t, const struct merge_list *ml, const char *vocab_what,
                  const char *merges_what)
{
    int rc = index_ids(t, vocab_what);
    if (!rc)
        rc = resolve_bytes(t, vocab_what);
    if (!rc)
        rc = resolve_merges(t, ml, merges_what);
    if (rc)
        return rc;
    t->sot_id = ldm_strmap_get(&t->vocab, CLIP_SOT, strlen(CLIP_SOT));
    t->eot_id = ldm_strmap_get(&t->vocab, CLIP_EOT, strlen(CLIP_EOT));
    rc = special_id(t, CLIP_SOT, "bos token", vocab_what, &t->bos);
    if (!rc)
        rc = special_id(t, CLIP_EOT, "eos token", vocab_what, &t->eos);
    t->pad = t->eos;
    return rc;
}

/* vocab.json → t->vocab and vocab_size. */
static int load_vocab_json(struct ldm_clip_tok *t, const char *path)
{
    json_t *obj;
    int rc = ldm_json_load_object(path, &obj);
    if (rc)
        return rc;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= MAX_VOCAB) {
            rc = ldm_fail(LDM_EFORMAT, "%s: token \"%s\" needs an id in [0, %d)", path, key,
                          MAX_VOCAB);
            break;
        }
        if ((rc = ldm_strmap_put(&t->vocab, key, strlen(key), (int32_t)id, NULL)) != 0)
            break;
        if (id >= t->vocab_size)
            t->vocab_size = (int32_t)id + 1;
    }
    json_decref(obj);
    if (!rc && t->vocab_size == 0)
        rc = ldm_fail(LDM_EFORMAT, "%s: no tokens", path);
    return rc;
}

/* Map `path` (which must exist) for reading. */
static int map_required(const char *path, struct ldm_map *m)
{
    int rc = ldm_map_file(path, m);
    if (rc == LDM_ENOTFOUND)
        return ldm_fail(LDM_ENOTFOUND, "%s: no such file", path);
    return rc;
}

int ldm_clip_tok_load_files(const char *vocab_json, const char *merges_txt,
                            struct ldm_clip_tok **out)
{
    *out = NULL;
    struct ldm_clip_tok *t = tok_new();
    if (!t)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", vocab_json);
    struct ldm_map map = {0};
    struct merge_list ml = {0};
    int rc = 0;
    if (access(vocab_json, F_OK) != 0)
        rc = ldm_fail(LDM_ENOTFOUND, "%s: no such file", vocab_json);
    if (!rc)
        rc = load_vocab_json(t, vocab_json);
    if (!rc)
        rc = map_required(merges_txt, &map);
    if (!rc)
        rc = parse_merges(map.data, map.len, merges_txt, &ml);
    if (!rc)
        rc = finish(t, &ml, vocab_json, merges_txt);
    free(ml.m);
    ldm_unmap(&map);
    if (rc) {
        ldm_clip_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* A token setting of a config file: a string or {"content": string}; *out
 * is left alone when the key is absent or null. */
static int token_setting(const json_t *cfg, const char *key, const char *path, const char **out)
{
    const json_t *v = json_object_get(cfg, key);
    if (v && json_is_object(v))
        v = json_object_get(v, "content");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return ldm_fail(LDM_EFORMAT, "%s: %s must be a string or {\"content\": string}", path, key);
    *out = json_string_value(v);
    return 0;
}

/* model_max_length: an integer in [2, 65536]; Hugging Face writes a huge
 * number (1e30) for "no limit", which keeps the default. */
static int max_length_setting(struct ldm_clip_tok *t, const json_t *cfg, const char *path)
{
    const json_t *v = json_object_get(cfg, "model_max_length");
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (d >= 1e9)
        return 0;
    if (d < 2 || d > 65536 || d != (double)(int)d)
        return ldm_fail(LDM_EFORMAT, "%s: model_max_length must be an integer in [2, 65536]", path);
    t->max_length = (int)d;
    return 0;
}

/* Apply tokenizer_config.json or special_tokens_map.json when `path` exists. */
static int apply_config(struct ldm_clip_tok *t, const char *path)
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
    const char *bos = NULL, *eos = NULL, *pad = NULL;
    int rc = token_setting(cfg, "bos_token", path, &bos);
    if (!rc)
        rc = token_setting(cfg, "eos_token", path, &eos);
    if (!rc)
        rc = token_setting(cfg, "pad_token", path, &pad);
    if (!rc && bos)
        rc = special_id(t, bos, "bos_token", path, &t->bos);
    if (!rc && eos)
        rc = special_id(t, eos, "eos_token", path, &t->eos);
    if (!rc && pad)
        rc = special_id(t, pad, "pad_token", path, &t->pad);
    if (!rc && pad && strcmp(pad, CLIP_SOT) != 0 && strcmp(pad, CLIP_EOT) != 0) {
        free(t->pad_text);
        t->pad_text = strdup(pad);
        if (!t->pad_text)
            rc = ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    }
    if (!rc)
        rc = max_length_setting(t, cfg, path);
    json_decref(cfg);
    return rc;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int ldm_clip_tok_load_dir(const char *dir, struct ldm_clip_tok **out)
{
    *out = NULL;
    char *vocab = join_path(dir, "vocab.json"), *merges = join_path(dir, "merges.txt");
    char *config = join_path(dir, "tokenizer_config.json");
    char *special = join_path(dir, "special_tokens_map.json");
    int rc = 0;
    if (!vocab || !merges || !config || !special)
        rc = ldm_fail(LDM_ENOMEM, "%s: out of memory", dir);
    struct ldm_clip_tok *t = NULL;
    if (!rc)
        rc = ldm_clip_tok_load_files(vocab, merges, &t);
    if (!rc)
        rc = apply_config(t, config);
    if (!rc)
        rc = apply_config(t, special);
    free(vocab);
    free(merges);
    free(config);
    free(special);
    if (rc) {
        ldm_clip_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* The whole decompressed content of a gzip file (malloc'd), at most
 * MAX_GZ_BYTES. */
static int read_gz(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return access(path, F_OK) != 0 ? ldm_fail(LDM_ENOTFOUND, "%s: no such file", path)
                                       : ldm_fail_errno(LDM_EIO, "%s: open", path);
    size_t cap = 0;
    int rc = 0;
    while (!rc && *len <= MAX_GZ_BYTES) {
        if (*len == cap) {
            size_t ncap = cap ? 2 * cap : 1u << 20;
            ncap = ncap > MAX_GZ_BYTES + 1 ? MAX_GZ_BYTES + 1 : ncap;
            char *nb = realloc(*buf, ncap);
            if (!nb) {
                rc = ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
                break;
            }
            *buf = nb;
            cap = ncap;
        }
        int zerr, got = gzread(gz, *buf + *len, (unsigned)(cap - *len));
        if (got < 0)
            rc = ldm_fail(LDM_EFORMAT, "%s: %s", path, gzerror(gz, &zerr));
        else if (got == 0)
            break;
        else
            *len += (size_t)got;
    }
    if (!rc && *len > MAX_GZ_BYTES)
        rc = ldm_fail(LDM_EFORMAT, "%s: more than %u bytes uncompressed", path, MAX_GZ_BYTES);
    if (!rc && gzdirect(gz))
        rc = ldm_fail(LDM_EFORMAT, "%s: not a gzip file", path);
    gzclose(gz);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* CLIP's vocabulary from its merges: byte symbols, the same with "</w>",
 * one token per merge, then the two special tokens. */
static int vocab_from_merges(struct ldm_clip_tok *t, const struct merge_list *ml, const char *what)
{
    uint32_t cp[256];
    byte_chars(cp);
    int order[256], k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++)
            if ((cp[b] < 256) == (pass == 0))
                order[k++] = b;
    char *s = malloc(2 * (size_t)UINT16_MAX + 8);
    if (!s)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", what);
    int rc = 0;
    for (int i = 0; i < 512 && !rc; i++) {
        size_t n = ldm_uc_encode(cp[order[i % 256]], (unsigned char *)s);
        if (i >= 256) {
            memcpy(s + n, END_OF_WORD, 4);
            n += 4;
        }
        rc = ldm_strmap_put(&t->vocab, s, n, i, NULL);
    }
    for (size_t i = 0; i < ml->n && !rc; i++) {
        const struct merge_text *m = &ml->m[i];
        if (m->alen > UINT16_MAX || m->blen > UINT16_MAX) {
            rc = ldm_fail(LDM_EFORMAT, "%s:%zu: symbol too long", what, m->line);
            break;
        }
        memcpy(s, m->a, m->alen);
        memcpy(s + m->alen, m->b, m->blen);
        rc = ldm_strmap_put(&t->vocab, s, (size_t)m->alen + m->blen, 512 + (int32_t)i, NULL);
    }
    free(s);
    int32_t next = 512 + (int32_t)ml->n;
    if (!rc)
        rc = ldm_strmap_put(&t->vocab, CLIP_SOT, strlen(CLIP_SOT), next, NULL);
    if (!rc)
        rc = ldm_strmap_put(&t->vocab, CLIP_EOT, strlen(CLIP_EOT), next + 1, NULL);
    t->vocab_size = next + 2;
    return rc;
}

int ldm_clip_tok_load_bpe_gz(const char *path, struct ldm_clip_tok **out)
{
    *out = NULL;
    struct ldm_clip_tok *t = tok_new();
    if (!t)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    char *buf = NULL;
    size_t len = 0;
    struct merge_list ml = {0};
    int rc = read_gz(path, &buf, &len);
    if (!rc)
        rc = parse_merges(buf, len, path, &ml);
    if (!rc)
        rc = vocab_from_merges(t, &ml, path);
    if (!rc)
        rc = finish(t, &ml, path, path);
    free(ml.m);
    free(buf);
    if (rc) {
        ldm_clip_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ldm_clip_tok_set_pad(struct ldm_clip_tok *t, int32_t pad)
{
    if (pad < 0 || pad >= t->vocab_size)
        return ldm_fail(LDM_EINVAL, "pad id %d outside the vocabulary [0, %d)", (int)pad,
                        (int)t->vocab_size);
    t->pad = pad;
    return 0;
}

int ldm_clip_tok_set_max_length(struct ldm_clip_tok *t, int max_length)
{
    if (max_length < 2)
        return ldm_fail(LDM_EINVAL, "max_length %d: BOS and EOS need at least 2", max_length);
    t->max_length = max_length;
    return 0;
}

void ldm_clip_tok_set_heap_threshold(struct ldm_clip_tok *t, size_t bytes)
{
    t->heap_min = bytes;
}

void ldm_clip_tok_get_info(const struct ldm_clip_tok *t, struct ldm_clip_tok_info *info)
{
    info->vocab_size = t->vocab_size;
    info->n_merges = t->n_merges;
    info->bos = t->bos;
    info->eos = t->eos;
    info->pad = t->pad;
    info->max_length = t->max_length;
}

const char *ldm_clip_tok_token(const struct ldm_clip_tok *t, int32_t id)
{
    if (id < 0 || id >= t->vocab_size || t->id_entry[id] == SIZE_MAX)
        return NULL;
    return ldm_strmap_key(&t->vocab, t->id_entry[id], NULL);
}
