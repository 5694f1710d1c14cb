/* tok_part.c — mktiny's tokenizer/ and tokenizer_2/: CLIP's vocabulary built from
 * bpe_simple_vocab_16e6.txt.gz as CLIP builds it (256 byte symbols, the same with "</w>",
 * the first 48894 merges, the two special tokens: 49408 ids), with the Hugging Face files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "err.h"
#include "fsutil.h"
#include "mktiny.h"

#define N_MERGES 48894

/* CLIP's bytes_to_unicode in vocabulary order: printable bytes map to themselves, the
 * others to 256 + n in byte order. order[i] is the byte of vocabulary id i, cp[b] its
 * code point. */
static void byte_symbols(int order[256], int cp[256])
{
    int n = 0, k = 0, printable[256] = {0};
    for (int b = 0; b < 256; b++)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    for (int b = 0; b < 256; b++)
        if (printable[b])
            order[k++] = b, cp[b] = b;
    for (int b = 0; b < 256; b++)
        if (!printable[b])
            order[k++] = b, cp[b] = 256 + n++;
}

static void utf8(char *out, int c)
{
    if (c < 0x80)
        out[0] = (char)c, out[1] = 0;
    else
        out[0] = (char)(0xC0 | (c >> 6)), out[1] = (char)(0x80 | (c & 0x3F)), out[2] = 0;
}

static int add(json_t *v, const char *tok, int *id)
{
    if (json_object_get(v, tok))
        return ldm_fail(LDM_EFORMAT, "tokenizer: token \"%s\" twice", tok);
    if (json_object_set_new(v, tok, json_integer((*id)++)))
        return ldm_fail(LDM_ENOMEM, "tokenizer: vocabulary");
    return 0;
}

static int byte_tokens(json_t *v, int *id)
{
    int order[256], cp[256], rc = 0;
    byte_symbols(order, cp);
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (int i = 0; i < 256 && !rc; i++) {
            char s[16];
            utf8(s, cp[order[i]]);
            if (pass)
                strcat(s, "</w>");
            rc = add(v, s, id);
        }
    return rc;
}

struct merges {
    char *text; /* "#version: 0.2\n" and one "a b\n" a merge */
    size_t len, cap;
};

static int append(struct merges *m, const char *s)
{
    size_t n = strlen(s);
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1 << 20;
        char *t = realloc(m->text, cap);
        if (!t)
            return ldm_fail(LDM_ENOMEM, "merges");
        m->text = t, m->cap = cap;
    }
    memcpy(m->text + m->len, s, n + 1);
    m->len += n;
    return 0;
}

/* One merge line "a b": its merged token into the vocabulary and the line into m. */
static int merge_line(json_t *v, int *id, struct merges *m, char *line, const char *bpe, int no)
{
    line[strcspn(line, "\r\n")] = 0;
    char *sp = strchr(line, ' ');
    if (!sp || strchr(sp + 1, ' ') || sp == line || !sp[1])
        return ldm_fail(LDM_EFORMAT, "%s: line %d: not a merge \"a b\"", bpe, no);
    char tok[512];
    snprintf(tok, sizeof tok, "%.*s%s", (int)(sp - line), line, sp + 1);
    int rc = add(v, tok, id);
    if (!rc) rc = append(m, line);
    if (!rc) rc = append(m, "\n");
    return rc;
}

static int read_merges(const char *bpe, json_t *v, int *id, struct merges *m)
{
    gzFile f = gzopen(bpe, "rb");
    if (!f)
        return ldm_fail_errno(LDM_ENOTFOUND, "%s: open", bpe);
    char line[512];
    int rc = append(m, "#version: 0.2\n"), no = 1;
    if (!gzgets(f, line, sizeof line))
        rc = ldm_fail(LDM_EFORMAT, "%s: empty", bpe);
    for (; !rc && no <= N_MERGES; no++) {
        if (!gzgets(f, line, sizeof line)) {
            rc = ldm_fail(LDM_EFORMAT, "%s: %d merges, %d needed", bpe, no - 1, N_MERGES);
            break;
        }
        rc = merge_line(v, id, m, line, bpe, no + 1);
    }
    gzclose(f);
    return rc;
}

static int put_merges(struct ldm_writer *w, void *ctx)
{
    const struct merges *m = ctx;
    return ldm_writer_put(w, m->text, m->len);
}

/* tokenizer_config.json and special_tokens_map.json; SD-2 and SDXL's second tokenizer
 * pad with "!" (id 0), the others with the end-of-text token. */
static int config_files(const char *dir, int pad_bang)
{
    const char *pad = pad_bang ? "!" : "<|endoftext|>";
    json_t *tc = json_pack("{s:b, s:s, s:s, s:s, s:s, s:i, s:b, s:s, s:s, s:b}",
                           "add_prefix_space", 0, "bos_token", "<|startoftext|>", "eos_token",
                           "<|endoftext|>", "pad_token", pad, "unk_token", "<|endoftext|>",
                           "model_max_length", 77, "do_lower_case", 1, "errors", "replace",
                           "tokenizer_class", "CLIPTokenizer", "clean_up_tokenization_spaces", 1);
    json_t *sm = json_pack("{s:s, s:s, s:s, s:s}", "bos_token", "<|startoftext|>", "eos_token",
                           "<|endoftext|>", "pad_token", pad, "unk_token", "<|endoftext|>");
    int rc = tc && sm ? 0 : ldm_fail(LDM_ENOMEM, "tokenizer config");
    if (!rc) rc = mt_write_json(dir, "tokenizer_config.json", tc);
    if (!rc) rc = mt_write_json(dir, "special_tokens_map.json", sm);
    json_decref(tc);
    json_decref(sm);
    return rc;
}

int mt_tokenizer(const struct mt_opts *o, const char *sub, int second)
{
    char dir[4096], path[4200];
    struct merges m = {0};
    int id = 0;
    json_t *v = json_object();
    int rc = v ? mt_subdir(dir, sizeof dir, o->out, sub) : ldm_fail(LDM_ENOMEM, "vocabulary");
    if (!rc) rc = byte_tokens(v, &id);
    if (!rc) rc = read_merges(o->bpe, v, &id, &m);
    if (!rc) rc = add(v, "<|startoftext|>", &id);
    if (!rc) rc = add(v, "<|endoftext|>", &id);
    if (!rc) rc = mt_write_json(dir, "vocab.json", v);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (!rc) rc = ldm_write_atomic(path, put_merges, &m);
    if (!rc) rc = config_files(dir, o->variant == MT_SD2 || second);
    json_decref(v);
    free(m.text);
    return rc;
}
