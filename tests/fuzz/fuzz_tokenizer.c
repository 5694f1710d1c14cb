/* fuzz_tokenizer.c — libFuzzer target: any bytes as a caption through both tokenizers.
 *
 * The CLIP tokenizer is loaded once from $LDM_TEST_DATA/clip (default
 * ../shared/data/clip), twice: merging words with the heap and by rescanning,
 * which must agree. The WordPiece vocabulary is built in memory. For the
 * input as it is, and again with every invalid UTF-8 byte replaced by
 * U+FFFD: the call succeeds exactly when the text is valid UTF-8; ids are in
 * the vocabulary; no more ids than bytes of cleaned text; a smaller cap
 * gives a prefix of the full ids; framing puts BOS/EOS/PAD where they go.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/clip_tokenizer.h"
#include "models/wordpiece.h"
#include "utf8.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define CAP 8192

static struct ldm_clip_tok *clip_heap, *clip_scan;
static struct ldm_wordpiece *wp;
static int32_t ids_a[CAP], ids_b[CAP], ids_c[CAP];

/* A small vocabulary: the specials, printable ASCII alone and as "##"
 * continuations, a few words and non-ASCII letters. */
static char *wordpiece_vocab(size_t *len)
{
    static const char *const words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat",
                                        "un", "##aff", "##able", "\xcf\x83", "##\xcf\x83",
                                        "\xe6\x97\xa5", "e", "##e"};
    char *v = malloc(16384);
    size_t n = 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        n += (size_t)sprintf(v + n, "%s\n", words[i]);
    for (int c = '!'; c <= '~'; c++)
        n += (size_t)sprintf(v + n, "%c\n##%c\n", c, c);
    *len = n;
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("LDM_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz",
             dir && *dir ? dir : "../shared/data");
    if (ldm_clip_tok_load_bpe_gz(path, &clip_heap) || ldm_clip_tok_load_bpe_gz(path, &clip_scan)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", ldm_errmsg());
        abort();
    }
    ldm_clip_tok_set_heap_threshold(clip_heap, 1);
    ldm_clip_tok_set_heap_threshold(clip_scan, SIZE_MAX);
    size_t len;
    char *v = wordpiece_vocab(&len);
    if (ldm_wordpiece_load_buffer(v, len, "fuzz vocab", &wp)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", ldm_errmsg());
        abort();
    }
    free(v);
    return 0;
}

static void check_clip(const char *text, size_t len, int valid, size_t small)
{
    struct ldm_clip_tok_info in;
    ldm_clip_tok_get_info(clip_heap, &in);
    size_t na = 0, nb = 0, nc = 0;
    int rc = ldm_clip_tok_encode(clip_heap, text, len, ids_a, CAP, &na);
    CHECK(valid ? rc == 0 : rc == LDM_EFORMAT && na == 0);
    if (!valid)
        return;
    CHECK(ldm_clip_tok_encode(clip_scan, text, len, ids_b, CAP, &nb) == 0);
    CHECK(na == nb && memcmp(ids_a, ids_b, na * sizeof ids_a[0]) == 0);
    char *clean = NULL;
    size_t clean_len = 0;
    CHECK(ldm_clip_clean_text(text, len, &clean, &clean_len) == 0);
    CHECK(strlen(clean) <= clean_len && na <= clean_len);
    free(clean);
    for (size_t i = 0; i < na; i++)
        CHECK(ids_a[i] >= 0 && ids_a[i] < in.vocab_size);
    CHECK(ldm_clip_tok_encode(clip_heap, text, len, ids_c, small, &nc) == 0);
    CHECK(nc == (na < small ? na : small) && memcmp(ids_c, ids_a, nc * sizeof ids_a[0]) == 0);
    size_t used = 0;
    CHECK(ldm_clip_tok_frame(clip_heap, text, len, ids_c, &used) == 0);
    CHECK(used >= 2 && used <= (size_t)in.max_length && used == (na < 75 ? na : 75) + 2);
    CHECK(ids_c[0] == in.bos && ids_c[used - 1] == in.eos);
    CHECK(memcmp(ids_c + 1, ids_a, (used - 2) * sizeof ids_a[0]) == 0);
    for (size_t i = used; i < (size_t)in.max_length; i++)
        CHECK(ids_c[i] == in.pad);
}

static void check_wordpiece(const char *text, size_t len, int valid, size_t small)
{
    struct ldm_wordpiece_info in;
    ldm_wordpiece_get_info(wp, &in);
    size_t na = 0, nc = 0;
    int rc = ldm_wordpiece_encode(wp, text, len, ids_a, CAP, &na);
    CHECK(valid ? rc == 0 : rc == LDM_EFORMAT && na == 0);
    if (!valid)
        return;
    CHECK(na <= len);
    for (size_t i = 0; i < na; i++)
        CHECK(ids_a[i] >= 0 && ids_a[i] < in.vocab_size);
    CHECK(ldm_wordpiece_encode(wp, text, len, ids_c, small, &nc) == 0);
    CHECK(nc == (na < small ? na : small) && memcmp(ids_c, ids_a, nc * sizeof ids_a[0]) == 0);
    size_t used = 0;
    CHECK(ldm_wordpiece_frame(wp, text, len, ids_c, &used) == 0);
    CHECK(used == (na < 75 ? na : 75) + 2);
    CHECK(ids_c[0] == in.cls && ids_c[used - 1] == in.sep);
    for (size_t i = used; i < (size_t)in.max_length; i++)
        CHECK(ids_c[i] == in.pad);
}

/* The input with each byte that starts no valid sequence replaced by U+FFFD. */
static char *repair(const uint8_t *data, size_t size, size_t *len)
{
    char *out = malloc(3 * size + 1);
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        size_t ok = ldm_utf8_prefix((const char *)data + i, size - i);
        memcpy(out + n, data + i, ok);
        n += ok;
        i += ok;
        if (i < size) {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        }
    }
    *len = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CAP / 2)
        return 0;
    size_t small = size ? data[0] % 8 : 0;
    int valid = ldm_utf8_valid((const char *)data, size);
    check_clip((const char *)data, size, valid, small);
    check_wordpiece((const char *)data, size, valid, small);
    if (!valid) {
        size_t len;
        char *fixed = repair(data, size, &len);
        check_clip(fixed, len, 1, small);
        check_wordpiece(fixed, len, 1, small);
        free(fixed);
    }
    return 0;
}
