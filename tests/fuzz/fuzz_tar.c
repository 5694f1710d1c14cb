/* fuzz_tar.c — libFuzzer target: bytes as a tar shard (plain, gz, zst) through the source iterator.
 *
 * Input: one flag byte, then the shard. Flag bit 0: keep only the members a
 * loader wants (jpg, png, txt, json, input.jpg); bit 1: small limits (64-byte
 * members, 2 members a sample); bit 2: cond_ext "input.jpg" and json key
 * "texts". Checked: opening memory never fails for content; every sample
 * has a non-empty key within the limit, consecutive indices, members within
 * the limits and with distinct exts; a rejected sample has a detail naming
 * it; a shard failure is sticky, carries a shard reason and a detail.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "loaderd/sample_fields.h"
#include "loaderd/source.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static const char *const wanted[] = {"jpg", "png", "txt", "json", "input.jpg", NULL};

static void check_sample(const struct ldm_raw_sample *s, const struct ldm_source_opts *o,
                         uint64_t index, const struct ldm_fields_opts *fo)
{
    CHECK(s->index == index);
    CHECK(s->key && s->key[0] && strlen(s->key) <= LDM_SOURCE_MAX_KEY);
    if (s->reason) {
        CHECK(s->reason > 0 && s->reason < LDM_REASON_NO_IMAGE);
        CHECK(strstr(s->detail, "fuzz.tar: ") == s->detail);
        return;
    }
    CHECK(s->nmembers <= (o->max_members ? o->max_members : 64));
    for (size_t i = 0; i < s->nmembers; i++) {
        CHECK(s->members[i].ext[0]);
        CHECK(s->members[i].len <= (o->max_member_bytes ? o->max_member_bytes : 64u << 20));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(s->members[i].ext, s->members[j].ext) != 0);
    }
    struct ldm_fields f;
    int rc = ldm_sample_fields(s, fo, &f);
    CHECK(rc == 0 || rc == LDM_EFORMAT || rc == LDM_ENOMEM);
    CHECK(rc != 0 || (f.image && f.ncaptions >= 1));
    CHECK(rc != LDM_EFORMAT || (f.reason >= LDM_REASON_NO_IMAGE && f.reason <= LDM_REASON_NO_COND));
    ldm_fields_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    struct ldm_source_opts o = {0};
    struct ldm_fields_opts fo = {0};
    if (flags & 1)
        o.want = wanted;
    if (flags & 2) {
        o.max_member_bytes = 64;
        o.max_members = 2;
    }
    if (flags & 4) {
        fo.cond_ext = "input.jpg";
        fo.json_key = "texts";
    }
    struct ldm_source *src = NULL;
    int rc = ldm_source_open_memory(data + 1, size - 1, LDM_SOURCE_TAR, "fuzz.tar", &o, &src);
    if (rc == LDM_ENOMEM)
        return 0;
    CHECK(rc == 0 && src);
    struct ldm_raw_sample s;
    uint64_t n = 0;
    while ((rc = ldm_source_next(src, &s)) == 1)
        check_sample(&s, &o, n++, &fo);
    if (rc < 0) {
        CHECK(s.reason >= LDM_REASON_OPEN_FAILED && s.reason < LDM_REASON_COUNT);
        CHECK(s.detail[0] && strstr(s.detail, "fuzz.tar: ") == s.detail);
        CHECK(ldm_source_next(src, &s) == rc);
    } else {
        CHECK(rc == 0 && ldm_source_next(src, &s) == 0);
    }
    ldm_source_close(src);
    return 0;
}
