/* sample_check.c — validation of a received data-plane Sample. */
#include "sample_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

#define NAME_PART 64 /* bytes of shard (tail) and key (head) shown in details */

static const char *const reason_names[LDM_SR_COUNT] = {
    [LDM_SR_OK] = "ok",         [LDM_SR_MESSAGE] = "message", [LDM_SR_VERSION] = "version",
    [LDM_SR_KEY] = "key",       [LDM_SR_SHARD] = "shard",     [LDM_SR_CAPTION] = "caption",
    [LDM_SR_TOKENS] = "tokens", [LDM_SR_SIZE] = "size",       [LDM_SR_CROP] = "crop",
    [LDM_SR_BUCKET] = "bucket", [LDM_SR_LAYOUT] = "layout",   [LDM_SR_FRAMES] = "frames",
    [LDM_SR_PIXELS] = "pixels",
    [LDM_SR_TOMBSTONE] = "tombstone",
};

/* What one check needs: the sample, its frames, the limits, where the
 * reason goes. */
struct ctx {
    const Ldmpipe__Sample *s;
    const size_t *frame_len;
    int nframes;
    const struct ldm_sample_limits *lim;
    enum ldm_sample_reason *reason;
};

void ldm_sample_limits_init(struct ldm_sample_limits *lim)
{
    *lim = (struct ldm_sample_limits){
        .max_message = 1u << 20,
        .max_key = 256,
        .max_shard = 4096,
        .max_caption = 65536,
        .max_tokens = 77 * 3,
        .vocab = 49408,
        .vocab_2 = 49408,
        .max_side = 16384,
        .max_pixels = (uint64_t)8192 * 8192,
        .max_bucket = 65535,
    };
}

const char *ldm_sample_reason_name(int reason)
{
    if (reason < 0 || reason >= LDM_SR_COUNT)
        return "unknown";
    return reason_names[reason];
}

/* Append the string t to buf (size bytes in all, NUL-terminated), as much as fits. */
static void put_str(char *buf, size_t size, const char *t)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s", t);
}

/* Append the n bytes at p to buf (size bytes in all, NUL-terminated):
 * printable ASCII as is, any other byte, quote and backslash as \xNN. */
static void put_escaped(char *buf, size_t size, const uint8_t *p, size_t n)
{
    size_t len = strlen(buf);
    for (size_t i = 0; i < n && len + 5 <= size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
            buf[len++] = (char)p[i];
        else
            len += (size_t)snprintf(buf + len, size - len, "\\x%02x", p[i]);
    }
    buf[len] = '\0';
}

void ldm_sample_name(const Ldmpipe__Sample *s, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    if (!s) {
        put_str(buf, size, "?");
        return;
    }
    size_t n = s->shard.len;
    if (n > NAME_PART) {
        put_str(buf, size, "...");
        put_escaped(buf, size, s->shard.data + (n - NAME_PART), NAME_PART);
    } else if (n > 0) {
        put_escaped(buf, size, s->shard.data, n);
    }
    put_str(buf, size, "/");
    n = s->key.len;
    if (n > 0)
        put_escaped(buf, size, s->key.data, n > NAME_PART ? NAME_PART : n);
    if (n > NAME_PART)
        put_str(buf, size, "...");
}

/* Record a rejection: set the reason, and the detail "sample 'NAME': " + fmt. */
__attribute__((format(printf, 4, 5))) static int reject(const struct ctx *c,
                                                        enum ldm_sample_reason why, int code,
                                                        const char *fmt, ...)
{
    char name[4 * 2 * NAME_PART + 16], what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ldm_sample_name(c->s, name, sizeof name);
    if (c->reason)
        *c->reason = why;
    return ldm_fail(code, "sample '%s': %s", name, what);
}

/* Up to four bytes from offset `at` of the n bytes at p, as hex ("c0 80"). */
static void hex_at(char *out, size_t size, const uint8_t *p, size_t n, size_t at)
{
    out[0] = '\0';
    for (size_t i = at; i < n && i < at + 4; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%02x", i > at ? " " : "", p[i]);
    }
}

/* Check a text field: length within [nonempty, max], no NUL, valid UTF-8,
 * and no '/' when no_slash. `field` names it in the detail. */
static int check_text(const struct ctx *c, enum ldm_sample_reason why, const char *field,
                      const ProtobufCBinaryData *t, size_t max, int nonempty, int no_slash)
{
    if (t->len == 0)
        return nonempty ? reject(c, why, LDM_EFORMAT, "%s is empty", field) : 0;
    if (t->len > max)
        return reject(c, why, LDM_EFORMAT, "%s is %zu bytes, limit %zu", field, t->len, max);
    const uint8_t *nul = memchr(t->data, '\0', t->len);
    if (nul)
        return reject(c, why, LDM_EFORMAT, "%s has a NUL byte at offset %zu", field,
                      (size_t)(nul - t->data));
    size_t ok = ldm_utf8_prefix((const char *)t->data, t->len);
    if (ok != t->len) {
        char hex[16];
        hex_at(hex, sizeof hex, t->data, t->len, ok);
        return reject(c, why, LDM_EFORMAT, "%s is not valid UTF-8 at offset %zu (bytes %s)",
                      field, ok, hex);
    }
    const uint8_t *slash = no_slash ? memchr(t->data, '/', t->len) : NULL;
    if (slash)
        return reject(c, why, LDM_EFORMAT, "%s has a '/' at offset %zu", field,
                      (size_t)(slash - t->data));
    return 0;
}

static int check_version(const struct ctx *c)
{
    uint32_t v = c->s->version;
    if (v == 0)
        return reject(c, LDM_SR_VERSION, LDM_EFORMAT, "version is not set");
    if (v > LDM_SAMPLE_VERSION)
        return reject(c, LDM_SR_VERSION, LDM_EUNSUPPORTED,
                      "version %" PRIu32 " is newer than the newest known, %d", v,
                      LDM_SAMPLE_VERSION);
    return 0;
}

static int check_texts(const struct ctx *c)
{
    const Ldmpipe__Sample *s = c->s;
    int rc = check_text(c, LDM_SR_KEY, "key", &s->key, c->lim->max_key, 1, 0);
    if (rc == 0)
        rc = check_text(c, LDM_SR_SHARD, "shard", &s->shard, c->lim->max_shard, 1, 0);
    if (rc == 0)
        rc = check_text(c, LDM_SR_CAPTION, "caption", &s->caption, c->lim->max_caption, 0, 0);
    return rc;
}

/* One token id list: at most max_tokens ids, each below vocab. */
static int check_ids(const struct ctx *c, const char *field, const uint32_t *ids, size_t n,
                     uint32_t vocab)
{
    if (n > c->lim->max_tokens)
        return reject(c, LDM_SR_TOKENS, LDM_EFORMAT, "%s has %zu ids, limit %zu", field, n,
                      c->lim->max_tokens);
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= vocab)
            return reject(c, LDM_SR_TOKENS, LDM_EFORMAT,
                          "%s[%zu] = %" PRIu32 " is outside the vocabulary of %" PRIu32, field, i,
                          ids[i], vocab);
    return 0;
}

static int check_tokens(const struct ctx *c)
{
    const Ldmpipe__Sample *s = c->s;
    int rc = check_ids(c, "input_ids", s->input_ids, s->n_input_ids, c->lim->vocab);
    if (rc == 0)
        rc = check_ids(c, "input_ids_2", s->input_ids_2, s->n_input_ids_2, c->lim->vocab_2);
    return rc;
}

/* One height x width pair: both > 0 and at most max_side. */
static int check_size(const struct ctx *c, const char *field, uint32_t h, uint32_t w)
{
    uint32_t max = c->lim->max_side;
    if (h == 0 || w == 0)
        return reject(c, LDM_SR_SIZE, LDM_EFORMAT,
                      "%s %" PRIu32 "x%" PRIu32 " (height x width) has a zero side", field, h, w);
    if (h > max || w > max)
        return reject(c, LDM_SR_SIZE, LDM_EFORMAT,
                      "%s %" PRIu32 "x%" PRIu32 " (height x width) has a side above %" PRIu32,
                      field, h, w, max);
    return 0;
}

static int check_sizes(const struct ctx *c)
{
    const Ldmpipe__Sample *s = c->s;
    int rc = check_size(c, "original size", s->original_height, s->original_width);
    if (rc == 0)
        rc = check_size(c, "target size", s->target_height, s->target_width);
    if (rc)
        return rc;
    uint64_t px = (uint64_t)s->target_height * s->target_width;
    if (px > c->lim->max_pixels)
        return reject(c, LDM_SR_SIZE, LDM_EFORMAT,
                      "target size %" PRIu32 "x%" PRIu32 " is %" PRIu64 " pixels, limit %" PRIu64,
                      s->target_height, s->target_width, px, c->lim->max_pixels);
    return 0;
}

static int check_crop_bucket(const struct ctx *c)
{
    const Ldmpipe__Sample *s = c->s;
    if (s->crop_top > c->lim->max_side || s->crop_left > c->lim->max_side)
        return reject(c, LDM_SR_CROP, LDM_EFORMAT,
                      "crop top-left (%" PRIu32 ", %" PRIu32 ") has an offset above %" PRIu32,
                      s->crop_top, s->crop_left, c->lim->max_side);
    if (s->bucket > c->lim->max_bucket)
        return reject(c, LDM_SR_BUCKET, LDM_EFORMAT, "bucket %" PRIu32 " is above %" PRIu32,
                      s->bucket, c->lim->max_bucket);
    return 0;
}

/* One layout: present, dtype uint8, channels in the mask (bit n = n channels
 * allowed), height and width equal to the target size. */
static int check_layout(const struct ctx *c, const char *field, const Ldmpipe__ImageLayout *l,
                        unsigned chan_mask, const char *chan_text)
{
    const Ldmpipe__Sample *s = c->s;
    if (!l)
        return reject(c, LDM_SR_LAYOUT, LDM_EFORMAT, "%s layout is missing", field);
    if (l->dtype == LDMPIPE__DTYPE__DTYPE_UNSPECIFIED)
        return reject(c, LDM_SR_LAYOUT, LDM_EFORMAT, "%s layout has no dtype", field);
    if (l->dtype != LDMPIPE__DTYPE__DTYPE_UINT8)
        return reject(c, LDM_SR_LAYOUT, LDM_EUNSUPPORTED,
                      "%s layout has dtype %d, only uint8 (1) is supported", field, (int)l->dtype);
    if (l->channels >= 32 || !(chan_mask & (1u << l->channels)))
        return reject(c, LDM_SR_LAYOUT, LDM_EFORMAT, "%s layout has %" PRIu32 " channels, not %s",
                      field, l->channels, chan_text);
    if (l->height != s->target_height || l->width != s->target_width)
        return reject(c, LDM_SR_LAYOUT, LDM_EFORMAT,
                      "%s layout %" PRIu32 "x%" PRIu32 " differs from the target size %" PRIu32
                      "x%" PRIu32,
                      field, l->height, l->width, s->target_height, s->target_width);
    return 0;
}

static int check_layouts(const struct ctx *c)
{
    int rc = check_layout(c, "image", c->s->image, 1u << 3, "3");
    if (rc == 0 && c->s->cond)
        rc = check_layout(c, "conditioning", c->s->cond, 1u << 1 | 1u << 3, "1 or 3");
    return rc;
}

/* One pixel frame's length against its (already checked) layout. */
static int check_pixels(const struct ctx *c, const char *field, const Ldmpipe__ImageLayout *l,
                        size_t len)
{
    uint64_t need = (uint64_t)l->height * l->width * l->channels;
    if ((uint64_t)len != need)
        return reject(c, LDM_SR_PIXELS, LDM_EFORMAT,
                      "%s frame is %zu bytes, layout %" PRIu32 "x%" PRIu32 "x%" PRIu32
                      " uint8 needs %" PRIu64,
                      field, len, l->height, l->width, l->channels, need);
    return 0;
}

static int check_frames(const struct ctx *c)
{
    int want = c->s->cond ? 3 : 2;
    if (c->nframes != want)
        return reject(c, LDM_SR_FRAMES, LDM_EFORMAT, "frame count %d, expected %d (%s)", c->nframes,
                      want, c->s->cond ? "conditioning layout given" : "no conditioning layout");
    int rc = check_pixels(c, "image", c->s->image, c->frame_len[1]);
    if (rc == 0 && c->s->cond)
        rc = check_pixels(c, "conditioning", c->s->cond, c->frame_len[2]);
    return rc;
}

/* A tombstone: a short reason name, and nothing but the identifying fields. */
static int check_tombstone(const struct ctx *c)
{
    const ProtobufCBinaryData *r = &c->s->rejected;
    size_t n = r->len, ok = 0;
    while (ok < n && ((r->data[ok] >= 'a' && r->data[ok] <= 'z') ||
                      (r->data[ok] >= '0' && r->data[ok] <= '9') || r->data[ok] == '_'))
        ok++;
    if (n > 32 || ok < n)
        return reject(c, LDM_SR_TOMBSTONE, LDM_EFORMAT,
                      "rejected reason is not 1-32 characters of [a-z0-9_]");
    if (c->nframes != 1 || c->s->image || c->s->cond)
        return reject(c, LDM_SR_TOMBSTONE, LDM_EFORMAT,
                      "a tombstone (rejected sample) carries pixels or layouts");
    return 0;
}

int ldm_sample_check(const Ldmpipe__Sample *s, const size_t *frame_len, int nframes,
                     const struct ldm_sample_limits *lim, enum ldm_sample_reason *reason)
{
    static int (*const tombstone_checks[])(const struct ctx *) = {
        check_version, check_texts, check_tombstone,
    };
    static int (*const checks[])(const struct ctx *) = {
        check_version, check_texts,       check_tokens,  check_sizes,
        check_crop_bucket, check_layouts, check_frames,
    };
    struct ldm_sample_limits def;
    if (!lim) {
        ldm_sample_limits_init(&def);
        lim = &def;
    }
    if (reason)
        *reason = LDM_SR_OK;
    if (!s || (nframes > 1 && !frame_len))
        return ldm_fail(LDM_EINVAL, "ldm_sample_check: no sample or no frame lengths");
    struct ctx c = {s, frame_len, nframes, lim, reason};
    int tomb = s->rejected.len > 0;
    size_t n = tomb ? sizeof tombstone_checks / sizeof tombstone_checks[0]
                    : sizeof checks / sizeof checks[0];
    for (size_t i = 0; i < n; i++) {
        int rc = (tomb ? tombstone_checks : checks)[i](&c);
        if (rc)
            return rc;
    }
    return 0;
}

int ldm_sample_decode(const void *frame0, const size_t *frame_len, int nframes,
                      const struct ldm_sample_limits *lim, Ldmpipe__Sample **out,
                      enum ldm_sample_reason *reason)
{
    static const uint8_t empty[1];
    struct ldm_sample_limits def;
    if (!lim) {
        ldm_sample_limits_init(&def);
        lim = &def;
    }
    *out = NULL;
    if (reason)
        *reason = LDM_SR_MESSAGE;
    if (nframes < 1 || !frame_len)
        return ldm_fail(LDM_EFORMAT, "sample message has no frames");
    size_t len = frame_len[0];
    if (len > lim->max_message)
        return ldm_fail(LDM_EFORMAT, "sample message: frame 0 is %zu bytes, limit %zu", len,
                        lim->max_message);
    if (len > 0 && !frame0)
        return ldm_fail(LDM_EINVAL, "ldm_sample_decode: frame 0 has %zu bytes but no data", len);
    Ldmpipe__Sample *s = ldmpipe__sample__unpack(NULL, len, len ? frame0 : empty);
    if (!s)
        return ldm_fail(LDM_EFORMAT, "sample message: frame 0 (%zu bytes) is not a valid Sample",
                        len);
    int rc = ldm_sample_check(s, frame_len, nframes, lim, reason);
    if (rc) {
        ldm_sample_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ldm_sample_free(Ldmpipe__Sample *s)
{
    if (s)
        ldmpipe__sample__free_unpacked(s, NULL);
}
