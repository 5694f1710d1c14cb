/* fuzz_laion.c — libFuzzer target: bytes as a LAION line shard (text or gzip) through the source.
 *
 * Input: one flag byte, then the shard (gzip is told by its magic bytes, so
 * the fuzzer reaches both the line parser and the gzip reader). Flag bit 0:
 * a 256-byte line cap; bit 1: keep only "txt" (no base64 decoding). Checked:
 * keys are the line numbers 1, 2, 3, ... and indices 0, 1, 2, ...; a good
 * sample has a txt member without TAB or LF and at most one image member
 * with an image ext, no larger than 3/4 of the line; a rejected one a line
 * reason and a detail; a failure is sticky with a gzip reason and a detail.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "loaderd/source.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static const char *const only_txt[] = {"txt", NULL};

static int is_image_ext(const char *e)
{
    return !strcmp(e, "jpg") || !strcmp(e, "png") || !strcmp(e, "webp");
}

static void check_sample(const struct ldm_raw_sample *s, uint64_t index, size_t line_cap)
{
    char key[32];
    snprintf(key, sizeof key, "%llu", (unsigned long long)index + 1);
    CHECK(s->index == index && strcmp(s->key, key) == 0);
    if (s->reason) {
        CHECK(s->reason == LDM_REASON_BAD_LINE || s->reason == LDM_REASON_LINE_TOO_LONG ||
              s->reason == LDM_REASON_BAD_BASE64);
        CHECK(strstr(s->detail, "fuzz.gz: ") == s->detail);
        return;
    }
    CHECK(s->nmembers >= 1 && s->nmembers <= 2);
    CHECK(!strcmp(s->members[0].ext, "txt"));
    CHECK(!memchr(s->members[0].data, '\t', s->members[0].len));
    CHECK(!memchr(s->members[0].data, '\n', s->members[0].len));
    if (s->nmembers == 2) {
        CHECK(is_image_ext(s->members[1].ext));
        CHECK(!line_cap || s->members[1].len <= line_cap * 3 / 4);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct ldm_source_opts o = {0};
    if (data[0] & 1)
        o.max_line_bytes = 256;
    if (data[0] & 2)
        o.want = only_txt;
    struct ldm_source *src = NULL;
    int rc = ldm_source_open_memory(data + 1, size - 1, LDM_SOURCE_LINES, "fuzz.gz", &o, &src);
    if (rc == LDM_ENOMEM)
        return 0;
    CHECK(rc == 0 && src);
    struct ldm_raw_sample s;
    uint64_t n = 0;
    while ((rc = ldm_source_next(src, &s)) == 1) {
        check_sample(&s, n++, o.max_line_bytes);
        if (o.want)
            CHECK(s.reason || s.nmembers == 1);
    }
    if (rc < 0) {
        CHECK(s.reason == LDM_REASON_CORRUPT || s.reason == LDM_REASON_TRUNCATED);
        CHECK(s.detail[0] && strstr(s.detail, "fuzz.gz: ") == s.detail);
        CHECK(ldm_source_next(src, &s) == rc);
    } else {
        CHECK(rc == 0 && ldm_source_next(src, &s) == 0);
    }
    ldm_source_close(src);
    return 0;
}
