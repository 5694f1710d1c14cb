/* source_laion.c — LAION line shards: gzip text, one "caption TAB _ TAB base64" a line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "source_int.h"

#define IN_BLOCK (64u << 10)
#define FIRST_CAP (256u << 10)

struct lines {
    int fd;                   /* -1: memory */
    const unsigned char *mem; /* memory input */
    size_t mem_len, mem_pos;
    int gz;      /* input is gzip */
    int zinit;   /* zs initialised */
    int in_eof;  /* no more input */
    int out_eof; /* no more text */
    z_stream zs;
    unsigned char *in;  /* IN_BLOCK bytes of compressed input */
    unsigned char *buf; /* text: [start, end) not yet consumed */
    size_t cap, start, end;
    uint64_t line; /* lines seen */
};

/* ---- input ------------------------------------------------------------------------- */

/* Up to n raw input bytes into dst; 0 at the end. */
static int read_input(struct ldm_source *src, unsigned char *dst, size_t n, size_t *got)
{
    struct lines *l = src->impl;
    *got = 0;
    if (l->fd < 0) {
        size_t k = l->mem_len - l->mem_pos < n ? l->mem_len - l->mem_pos : n;
        memcpy(dst, l->mem + l->mem_pos, k);
        l->mem_pos += k;
        *got = k;
    } else {
        ssize_t r;
        while ((r = read(l->fd, dst, n)) < 0 && errno == EINTR)
            ;
        if (r < 0)
            return ldm_src_fail(src, LDM_EIO, LDM_REASON_CORRUPT, "%s: read error at byte %llu: %s",
                                src->url, (unsigned long long)src->bytes, strerror(errno));
        *got = (size_t)r;
    }
    src->bytes += *got;
    if (*got == 0)
        l->in_eof = 1;
    return 0;
}

/* Keep zs.avail_in >= 2 where input remains (to see a next gzip member). */
static int refill_in(struct ldm_source *src, size_t want)
{
    struct lines *l = src->impl;
    while (l->zs.avail_in < want && !l->in_eof) {
        memmove(l->in, l->zs.next_in, l->zs.avail_in);
        size_t got;
        int rc = read_input(src, l->in + l->zs.avail_in, IN_BLOCK - l->zs.avail_in, &got);
        if (rc)
            return rc;
        l->zs.next_in = l->in;
        l->zs.avail_in += (uInt)got;
    }
    return 0;
}

/* After one gzip member: another follows (reset), or the text ends (trailing
 * bytes that are not a gzip member are ignored, as gzip(1) does). */
static int next_member(struct ldm_source *src)
{
    struct lines *l = src->impl;
    int rc = refill_in(src, 2);
    if (rc)
        return rc;
    if (l->zs.avail_in >= 2 && l->zs.next_in[0] == 0x1f && l->zs.next_in[1] == 0x8b) {
        inflateReset(&l->zs);
        return 0;
    }
    l->out_eof = 1;
    return 0;
}

/* Inflate into buf[end..cap). */
static int fill_gz(struct ldm_source *src)
{
    struct lines *l = src->impl;
    l->zs.next_out = l->buf + l->end;
    l->zs.avail_out = (uInt)(l->cap - l->end);
    while (l->zs.avail_out == l->cap - l->end && !l->out_eof) {
        int rc = refill_in(src, 1);
        if (rc)
            return rc;
        int z = inflate(&l->zs, Z_NO_FLUSH);
        if (z == Z_STREAM_END) {
            l->end = l->cap - l->zs.avail_out;
            if ((rc = next_member(src)))
                return rc;
            l->zs.next_out = l->buf + l->end;
            l->zs.avail_out = (uInt)(l->cap - l->end);
            continue;
        }
        if (z == Z_MEM_ERROR)
            return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s: out of memory", src->url);
        if (z == Z_DATA_ERROR || z == Z_NEED_DICT || z == Z_STREAM_ERROR)
            return ldm_src_fail(src, LDM_EFORMAT, LDM_REASON_CORRUPT,
                                "%s: damaged gzip stream near byte %llu (line %llu): %s", src->url,
                                (unsigned long long)(src->bytes - l->zs.avail_in),
                                (unsigned long long)l->line + 1,
                                l->zs.msg ? l->zs.msg : "bad data");
        if (l->in_eof && l->zs.avail_in == 0 && l->zs.avail_out == l->cap - l->end)
            return ldm_src_fail(src, LDM_EFORMAT, LDM_REASON_TRUNCATED,
                                "%s: truncated gzip stream at byte %llu (in line %llu)", src->url,
                                (unsigned long long)src->bytes, (unsigned long long)l->line + 1);
    }
    l->end = l->cap - l->zs.avail_out;
    return 0;
}

/* More text into buf[end..cap) (room is there). */
static int fill(struct ldm_source *src)
{
    struct lines *l = src->impl;
    if (l->gz)
        return fill_gz(src);
    size_t got;
    int rc = read_input(src, l->buf + l->end, l->cap - l->end, &got);
    l->end += got;
    if (!rc && got == 0)
        l->out_eof = 1;
    return rc;
}

/* Make room: move the unread text to the front; grow when full, up to the line cap. */
static int make_room(struct ldm_source *src)
{
    struct lines *l = src->impl;
    if (l->start) {
        memmove(l->buf, l->buf + l->start, l->end - l->start);
        l->end -= l->start;
        l->start = 0;
    }
    if (l->end < l->cap)
        return 0;
    size_t cap = l->cap * 2, limit = src->o.max_line_bytes + 2;
    if (cap > limit)
        cap = limit;
    if (cap <= l->cap)
        return 0;
    unsigned char *b = realloc(l->buf, cap);
    if (!b)
        return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s: out of memory", src->url);
    l->buf = b;
    l->cap = cap;
    return 0;
}

/* ---- base64 -------------------------------------------------------------------------- */

/* 0..63 for the standard and URL-safe alphabets, 64 '=', 65 blank, 66 other. */
static unsigned char b64_class(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (unsigned char)(c - '0' + 52);
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    if (c == '=')
        return 64;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
        return 65;
    return 66;
}

/* Decode p[0..n) in place (the output is never longer). Returns the decoded
 * length, or -1 with *bad the offending offset (n: bad length). */
static long b64_decode(unsigned char *p, size_t n, size_t *bad)
{
    size_t out = 0, syms = 0, pads = 0;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char v = b64_class(p[i]);
        if (v == 65)
            continue;
        if (v == 66 || (v < 64 && pads) || (v == 64 && (syms % 4 < 2 || ++pads > 2))) {
            *bad = i;
            return -1;
        }
        if (v == 64)
            continue;
        acc = (acc << 6) | v;
        if (++syms % 4 == 0) {
            p[out++] = (unsigned char)(acc >> 16);
            p[out++] = (unsigned char)(acc >> 8);
            p[out++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (syms % 4 == 1) {
        *bad = n;
        return -1;
    }
    if (syms % 4 == 2)
        p[out++] = (unsigned char)(acc >> 4);
    if (syms % 4 == 3) {
        p[out++] = (unsigned char)(acc >> 10);
        p[out++] = (unsigned char)(acc >> 2);
    }
    return (long)out;
}

/* The ext of an image from its magic bytes ("jpg" when unknown). */
static const char *image_ext(const unsigned char *p, size_t n)
{
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
        return "png";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
        return "webp";
    return "jpg";
}

/* ---- lines into samples --------------------------------------------------------------- */

/* Build the sample of the line p[0..n) (no '\n'; p is writable). */
static void parse_line(struct ldm_source *src, unsigned char *p, size_t n)
{
    struct lines *l = src->impl;
    char key[24];
    int k = snprintf(key, sizeof key, "%llu", (unsigned long long)l->line);
    ldm_src_begin(src, key, (size_t)k);
    if (n && p[n - 1] == '\r')
        n--;
    unsigned char *t1 = memchr(p, '\t', n);
    unsigned char *t2 = t1 ? memchr(t1 + 1, '\t', n - (size_t)(t1 + 1 - p)) : NULL;
    if (n == 0) {
        ldm_src_reject(src, LDM_REASON_BAD_LINE, "empty line");
        return;
    }
    if (!t2) {
        ldm_src_reject(src, LDM_REASON_BAD_LINE,
                       "the line has %d field(s), needs 3 (caption TAB _ TAB base64 image)",
                       t1 ? 2 : 1);
        return;
    }
    unsigned char *img = t2 + 1, *t3 = memchr(img, '\t', n - (size_t)(img - p));
    size_t img_len = t3 ? (size_t)(t3 - img) : n - (size_t)(img - p), bad = 0;
    ldm_src_add_ref(src, "txt", p, (size_t)(t1 - p));
    if (!ldm_src_wanted(src, "jpg") && !ldm_src_wanted(src, "png") && !ldm_src_wanted(src, "webp"))
        return;
    long dec = b64_decode(img, img_len, &bad);
    if (dec < 0) {
        if (bad < img_len)
            ldm_src_reject(src, LDM_REASON_BAD_BASE64,
                           "the image field is not base64 (byte 0x%02x at column %zu)", img[bad],
                           (size_t)(img - p) + bad + 1);
        else
            ldm_src_reject(src, LDM_REASON_BAD_BASE64,
                           "the image field is not base64 (a length of 4k+1 symbols)");
        return;
    }
    ldm_src_add_ref(src, image_ext(img, (size_t)dec), img, (size_t)dec);
}

/* Skip to the end of an overlong line; 1 when its end was found. */
static int skip_long(struct ldm_source *src)
{
    struct lines *l = src->impl;
    for (;;) {
        unsigned char *nl = memchr(l->buf + l->start, '\n', l->end - l->start);
        if (nl) {
            l->start = (size_t)(nl + 1 - l->buf);
            return 1;
        }
        l->start = l->end = 0;
        if (l->out_eof)
            return 1;
        int rc = fill(src);
        if (rc)
            return rc;
    }
}

static int lines_next(struct ldm_source *src)
{
    struct lines *l = src->impl;
    for (;;) {
        unsigned char *s = l->buf + l->start;
        unsigned char *nl = memchr(s, '\n', l->end - l->start);
        size_t n = nl ? (size_t)(nl - s) : l->end - l->start;
        if (n > src->o.max_line_bytes) {
            l->line++;
            int rc = skip_long(src);
            if (rc < 0)
                return rc;
            char key[24];
            int k = snprintf(key, sizeof key, "%llu", (unsigned long long)l->line);
            ldm_src_begin(src, key, (size_t)k);
            ldm_src_reject(src, LDM_REASON_LINE_TOO_LONG, "the line is over %zu bytes",
                           src->o.max_line_bytes);
            return 1;
        }
        if (nl || (l->out_eof && n > 0)) {
            l->line++;
            l->start += n + (nl != NULL);
            parse_line(src, s, n);
            return 1;
        }
        if (l->out_eof)
            return 0;
        int rc = make_room(src);
        if (!rc)
            rc = fill(src);
        if (rc)
            return rc;
    }
}

static void lines_close(struct ldm_source *src)
{
    struct lines *l = src->impl;
    if (!l)
        return;
    if (l->zinit)
        inflateEnd(&l->zs);
    if (l->fd >= 0)
        close(l->fd);
    free(l->in);
    free(l->buf);
    free(l);
}

static const struct ldm_source_ops lines_ops = {lines_next, lines_close};

/* A new line source over fd (or memory when fd < 0); gzip or not is told
 * by the first two bytes. */
static int lines_new(const char *url, int fd, const void *mem, size_t len,
                     const struct ldm_source_opts *o, struct ldm_source **out)
{
    struct ldm_source *src = ldm_src_new(url, o, &lines_ops);
    struct lines *l = calloc(1, sizeof *l);
    if (src)
        src->impl = l;
    if (l) {
        l->fd = fd;
        l->mem = mem;
        l->mem_len = len;
        l->cap = FIRST_CAP;
        l->buf = malloc(l->cap);
        l->in = malloc(IN_BLOCK);
    }
    if (!src || !l || !l->buf || !l->in || inflateInit2(&l->zs, 16 + MAX_WBITS) != Z_OK) {
        if (!src || !l) { /* else lines_close releases fd and l */
            if (fd >= 0)
                close(fd);
            if (l) {
                free(l->buf);
                free(l->in);
            }
            free(l);
            if (src)
                src->impl = NULL;
        }
        ldm_source_close(src);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", url);
    }
    l->zinit = 1;
    l->zs.next_in = l->in;
    int rc = refill_in(src, 2);
    if (rc) {
        ldm_source_close(src);
        return rc;
    }
    l->gz = l->zs.avail_in >= 2 && l->in[0] == 0x1f && l->in[1] == 0x8b;
    if (!l->gz) { /* plain text: the bytes read so far are text */
        memcpy(l->buf, l->zs.next_in, l->zs.avail_in);
        l->end = l->zs.avail_in;
        l->zs.avail_in = 0;
        l->out_eof = l->in_eof;
    }
    *out = src;
    return 0;
}

int ldm_src_lines_open_fd(const char *url, int fd, const struct ldm_source_opts *o,
                          struct ldm_source **out)
{
    if (lseek(fd, 0, SEEK_SET) < 0) {
        int rc = ldm_fail_errno(LDM_EIO, "%s: seek", url);
        close(fd);
        return rc;
    }
    return lines_new(url, fd, NULL, 0, o, out);
}

int ldm_src_lines_open_memory(const char *name, const void *data, size_t len,
                              const struct ldm_source_opts *o, struct ldm_source **out)
{
    return lines_new(name, -1, data, len, o, out);
}
