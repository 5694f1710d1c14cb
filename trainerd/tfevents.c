/* tfevents.c — TensorBoard event files: CRC32C, TFRecord framing and the few
 * Event protobuf fields a scalar needs, encoded by hand. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "trainerd/tfevents.h"

#define MAX_TAG 256
#define MAX_RECORD (64 + MAX_TAG)

struct td_tfevents {
    int fd;
    char path[4352];
};

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t td_crc32c(const void *data, size_t n)
{
    if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
        crc_init(); /* idempotent: racing threads write the same table */
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t td_crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static size_t put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return (size_t)bytes;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* The Event message body into p (room for MAX_RECORD - 16 bytes). */
static size_t encode_event(uint8_t *p, const char *tag, int64_t step, double wall_time,
                           float value)
{
    size_t n = 0;
    uint64_t wt;
    uint32_t fv;
    memcpy(&wt, &wall_time, 8);
    p[n++] = 0x09; /* field 1, fixed64: wall_time */
    n += put_le(p + n, wt, 8);
    p[n++] = 0x10; /* field 2, varint: step */
    n += put_varint(p + n, (uint64_t)step);
    if (!tag) {
        size_t len = strlen(TD_TFEVENTS_VERSION);
        p[n++] = 0x1a; /* field 3, bytes: file_version */
        n += put_varint(p + n, len);
        memcpy(p + n, TD_TFEVENTS_VERSION, len);
        return n + len;
    }
    size_t tl = strlen(tag);
    size_t vlen = 2 + tl + 5; /* Value: tag (tl < 120: one length byte), simple_value */
    p[n++] = 0x2a;            /* field 5, bytes: summary */
    n += put_varint(p + n, 2 + vlen); /* Summary: one value (vlen < 128: one length byte) */
    p[n++] = 0x0a; /* Summary field 1: value */
    n += put_varint(p + n, vlen);
    p[n++] = 0x0a; /* Value field 1: tag */
    n += put_varint(p + n, tl);
    memcpy(p + n, tag, tl);
    n += tl;
    p[n++] = 0x15; /* Value field 2, fixed32: simple_value */
    memcpy(&fv, &value, 4);
    n += put_le(p + n, fv, 4);
    return n;
}

int td_tfevents_encode(const char *tag, int64_t step, double wall_time, float value,
                       uint8_t *buf, size_t size, size_t *len)
{
    if (tag && (!*tag || strlen(tag) >= 120))
        return ldm_fail(LDM_EINVAL, "tfevents: tag '%.40s' empty or over 119 bytes", tag);
    uint8_t body[MAX_RECORD];
    size_t n = encode_event(body, tag, step, wall_time, value);
    if (size < n + 16)
        return ldm_fail(LDM_ERANGE, "tfevents: record of %zu bytes, room for %zu", n + 16, size);
    put_le(buf, n, 8);
    put_le(buf + 8, td_crc32c_mask(td_crc32c(buf, 8)), 4);
    memcpy(buf + 12, body, n);
    put_le(buf + 12 + n, td_crc32c_mask(td_crc32c(body, n)), 4);
    *len = n + 16;
    return 0;
}

static int write_all(struct td_tfevents *w, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return ldm_fail_errno(LDM_EIO, "%s: write", w->path);
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_event(struct td_tfevents *w, const char *tag, int64_t step, double wall_time,
                       float value)
{
    uint8_t rec[MAX_RECORD];
    size_t n;
    int rc = td_tfevents_encode(tag, step, wall_time, value, rec, sizeof rec, &n);
    return rc ? rc : write_all(w, rec, n);
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int td_tfevents_open(const char *dir, struct td_tfevents **out)
{
    struct td_tfevents *w = calloc(1, sizeof *w);
    if (!w)
        return ldm_fail(LDM_ENOMEM, "%s: tfevents writer", dir);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    double now = wall_now();
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s", dir, (long long)now, host);
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = ldm_fail_errno(LDM_EIO, "%s: open", w->path);
        free(w);
        return rc;
    }
    int rc = write_event(w, NULL, 0, now, 0);
    if (rc) {
        td_tfevents_close(&w);
        return rc;
    }
    *out = w;
    return 0;
}

const char *td_tfevents_path(const struct td_tfevents *w)
{
    return w->path;
}

int td_tfevents_scalar(struct td_tfevents *w, const char *tag, int64_t step, double wall_time,
                       float value)
{
    return write_event(w, tag, step, wall_time, value);
}

void td_tfevents_close(struct td_tfevents **pw)
{
    struct td_tfevents *w = *pw;
    if (!w)
        return;
    close(w->fd);
    free(w);
    *pw = NULL;
}
