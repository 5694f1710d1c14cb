/* shardrec.c — the shards ledger's values: encoding, parsing, processed index ranges.
 *
 * Value layout, version 1, little-endian:
 *
 *   off size field
 *     0  4   magic "LDMS"
 *     4  2   version (1)
 *     6  1   status (enum ldm_shard_status)
 *     7  1   error text length E (0..255)
 *     8  4   epoch
 *    12  4   reserved, 0
 *    16  8   lease          24  8  reported     32  8  stored
 *    40  8   rejected       48  8  duplicates   56  8  updated_ms
 *    64  8   range count R
 *    72  E   error text (no NUL), then zero bytes up to a multiple of 8
 *     .  16R ranges: lo, hi (u64 each), sorted, lo < hi, each next lo > the last hi
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "le.h"
#include "store_int.h"

#define SHARD_MAGIC "LDMS"
#define SHARD_VERSION 1
#define SHARD_HEADER 72

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

uint64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ldm_shard_info_free(struct ldm_shard_info *info)
{
    if (!info)
        return;
    free(info->ranges);
    memset(info, 0, sizeof *info);
}

uint64_t ldm_shard_first_unprocessed(const struct ldm_shard_info *info)
{
    if (info->nranges > 0 && info->ranges[0].lo == 0)
        return info->ranges[0].hi;
    return 0;
}

uint64_t ldm_shard_processed(const struct ldm_shard_info *info)
{
    uint64_t n = 0;
    for (size_t i = 0; i < info->nranges; i++)
        n += info->ranges[i].hi - info->ranges[i].lo;
    return n;
}

const char *ldm_shard_status_name(int status)
{
    static const char *const names[] = {"pending", "leased", "done", "failed"};
    return status >= 0 && status < LDM_SHARD_NSTATUS ? names[status] : "?";
}

/* ---- encode ------------------------------------------------------------------------ */

size_t shard_value_size(const struct ldm_shard_info *info)
{
    return SHARD_HEADER + pad8(strnlen(info->state.error, LDM_SHARD_ERROR_MAX)) +
           16 * info->nranges;
}

void shard_value_encode(const struct ldm_shard_info *info, void *buf)
{
    unsigned char *b = buf;
    const struct ldm_shard_state *st = &info->state;
    size_t elen = strnlen(st->error, LDM_SHARD_ERROR_MAX);
    memset(b, 0, SHARD_HEADER + pad8(elen));
    memcpy(b, SHARD_MAGIC, 4);
    ldm_put16(b + 4, SHARD_VERSION);
    b[6] = (unsigned char)st->status;
    b[7] = (unsigned char)elen;
    ldm_put32(b + 8, st->epoch);
    uint64_t v[7] = {st->lease,        st->reported,     info->stored, info->rejected,
                     info->duplicates, info->updated_ms, info->nranges};
    for (int i = 0; i < 7; i++)
        ldm_put64(b + 16 + 8 * i, v[i]);
    memcpy(b + SHARD_HEADER, st->error, elen);
    unsigned char *r = b + SHARD_HEADER + pad8(elen);
    for (size_t i = 0; i < info->nranges; i++) {
        ldm_put64(r + 16 * i, info->ranges[i].lo);
        ldm_put64(r + 16 * i + 8, info->ranges[i].hi);
    }
}

/* ---- parse ------------------------------------------------------------------------- */

static int parse_header(const unsigned char *b, size_t len, const char *label,
                        struct ldm_shard_info *out)
{
    if (len < 6 || memcmp(b, SHARD_MAGIC, 4) != 0)
        return ldm_fail(LDM_EFORMAT, "shard '%s': not a ledger entry (%s)", label,
                        len < 6 ? "truncated" : "wrong magic");
    unsigned version = ldm_le16(b + 4);
    if (version == 0 || version > SHARD_VERSION)
        return ldm_fail(version ? LDM_EUNSUPPORTED : LDM_EFORMAT,
                        "shard '%s': ledger version %u (this build knows %d)", label, version,
                        SHARD_VERSION);
    if (len < SHARD_HEADER)
        return ldm_fail(LDM_EFORMAT, "shard '%s': ledger entry truncated at %zu bytes", label, len);
    if (b[6] >= LDM_SHARD_NSTATUS)
        return ldm_fail(LDM_EFORMAT, "shard '%s': status %u unknown", label, b[6]);
    if (ldm_le32(b + 12) != 0)
        return ldm_fail(LDM_EFORMAT, "shard '%s': reserved field is not 0", label);
    out->state.status = b[6];
    out->state.epoch = ldm_le32(b + 8);
    out->state.lease = ldm_le64(b + 16);
    out->state.reported = ldm_le64(b + 24);
    out->stored = ldm_le64(b + 32);
    out->rejected = ldm_le64(b + 40);
    out->duplicates = ldm_le64(b + 48);
    out->updated_ms = ldm_le64(b + 56);
    return 0;
}

/* The error text and the length that the range count implies. */
static int parse_error_text(const unsigned char *b, size_t len, const char *label,
                            struct ldm_shard_info *out, size_t *ranges_at)
{
    size_t elen = b[7];
    uint64_t nr = ldm_le64(b + 64);
    size_t at = SHARD_HEADER + pad8(elen);
    if (len < at || nr > (len - at) / 16 || len != at + 16 * nr)
        return ldm_fail(LDM_EFORMAT, "shard '%s': length %zu does not match %llu ranges", label,
                        len, (unsigned long long)nr);
    if (memchr(b + SHARD_HEADER, 0, elen))
        return ldm_fail(LDM_EFORMAT, "shard '%s': error text holds a NUL byte", label);
    for (size_t i = SHARD_HEADER + elen; i < at; i++)
        if (b[i])
            return ldm_fail(LDM_EFORMAT, "shard '%s': padding after the error text is not zero",
                            label);
    memcpy(out->state.error, b + SHARD_HEADER, elen);
    out->state.error[elen] = '\0';
    out->nranges = (size_t)nr;
    *ranges_at = at;
    return 0;
}

static int parse_ranges(const unsigned char *r, const char *label, struct ldm_shard_info *out)
{
    if (out->nranges == 0)
        return 0;
    out->ranges = malloc(out->nranges * sizeof *out->ranges);
    if (!out->ranges)
        return ldm_fail(LDM_ENOMEM, "shard '%s': %zu ranges", label, out->nranges);
    for (size_t i = 0; i < out->nranges; i++) {
        uint64_t lo = ldm_le64(r + 16 * i), hi = ldm_le64(r + 16 * i + 8);
        if (lo >= hi || (i > 0 && lo <= out->ranges[i - 1].hi))
            return ldm_fail(LDM_EFORMAT,
                            "shard '%s': range %zu [%llu, %llu) is empty, unsorted or touches "
                            "the one before",
                            label, i, (unsigned long long)lo, (unsigned long long)hi);
        out->ranges[i] = (struct ldm_range){lo, hi};
    }
    return 0;
}

int ldm_shard_parse(const void *val, size_t len, const char *label, struct ldm_shard_info *out)
{
    const unsigned char *b = val;
    size_t at = 0;
    memset(out, 0, sizeof *out);
    if (!label)
        label = "?";
    int rc = parse_header(b, len, label, out);
    if (rc == 0)
        rc = parse_error_text(b, len, label, out, &at);
    if (rc == 0)
        rc = parse_ranges(b + at, label, out);
    if (rc)
        ldm_shard_info_free(out);
    return rc;
}

/* ---- ranges ------------------------------------------------------------------------ */

/* Index of the first range whose lo is above x (binary search). */
static size_t first_above(const struct ldm_shard_info *info, uint64_t x)
{
    size_t lo = 0, hi = info->nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (info->ranges[mid].lo > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Insert [x, x+1) as a new range at position i. */
static int insert_range(struct ldm_shard_info *info, size_t i, uint64_t x)
{
    struct ldm_range *r = realloc(info->ranges, (info->nranges + 1) * sizeof *r);
    if (!r)
        return ldm_fail(LDM_ENOMEM, "shard ranges: %zu", info->nranges + 1);
    memmove(r + i + 1, r + i, (info->nranges - i) * sizeof *r);
    r[i] = (struct ldm_range){x, x + 1};
    info->ranges = r;
    info->nranges++;
    return 1;
}

int shard_ranges_add(struct ldm_shard_info *info, uint64_t x)
{
    size_t i = first_above(info, x);
    struct ldm_range *prev = i > 0 ? &info->ranges[i - 1] : NULL;
    struct ldm_range *next = i < info->nranges ? &info->ranges[i] : NULL;
    if (prev && x < prev->hi)
        return 0;
    int touch_prev = prev && prev->hi == x;
    int touch_next = next && next->lo == x + 1;
    if (touch_prev && touch_next) {
        prev->hi = next->hi;
        memmove(next, next + 1, (info->nranges - i - 1) * sizeof *next);
        info->nranges--;
    } else if (touch_prev) {
        prev->hi = x + 1;
    } else if (touch_next) {
        next->lo = x;
    } else {
        return insert_range(info, i, x);
    }
    return 1;
}
