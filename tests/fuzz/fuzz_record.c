/* fuzz_record.c — libFuzzer target: a latent-cache value read from LMDB.
 *
 * The input is parsed as a sample record (record.h) and as a shards-ledger
 * entry (store.h). A rejected input must come with a detail naming it; an
 * accepted record must be self-consistent and encode back to the same bytes
 * (the CRC field aside: parsing does not check it, so the re-encoded CRC
 * equals the input's exactly when ldm_record_check_crc() accepts); an
 * accepted ledger entry must encode back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "record.h"
#include "store.h"
#include "store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static void rejected(int rc, const char *label)
{
    CHECK(rc == LDM_EFORMAT || rc == LDM_EUNSUPPORTED);
    CHECK(strncmp(ldm_errmsg(), label, strlen(label)) == 0);
}

/* Each section lies inside the value and has the header's size. */
static void check_view(const struct ldm_record *r, const uint8_t *data, size_t size)
{
    const void *secs[] = {r->sec.mean, r->sec.logvar, r->sec.flip_mean, r->sec.flip_logvar,
                          r->sec.text, r->sec.pooled, r->sec.ids,       r->sec.cond};
    size_t bytes[] = {r->size.latent, r->size.latent, r->size.latent, r->size.latent,
                      r->size.text,   r->size.pooled, r->size.ids,    r->size.cond};
    for (int i = 0; i < 8; i++) {
        if (!secs[i])
            continue;
        const uint8_t *p = secs[i];
        CHECK(bytes[i] > 0 && p >= data + LDM_RECORD_HEADER && p + bytes[i] <= data + size);
    }
    CHECK(r->len == size && r->size.total == size && r->data == data);
}

static void try_record(const uint8_t *data, size_t size)
{
    struct ldm_record r;
    ldm_err_clear();
    int rc = ldm_record_parse(data, size, "fz", &r);
    if (rc) {
        rejected(rc, "fz: ");
        CHECK(r.data == NULL);
        return;
    }
    check_view(&r, data, size);
    uint8_t *copy = malloc(size);
    size_t len = 0;
    CHECK(copy && ldm_record_encode(&r.hdr, &r.sec, copy, size, &len) == 0 && len == size);
    CHECK(memcmp(copy, data, 12) == 0 && memcmp(copy + 16, data + 16, size - 16) == 0);
    int crc_ok = ldm_record_check_crc(&r, "fz") == 0;
    CHECK(crc_ok == (memcmp(copy + 12, data + 12, 4) == 0));
    free(copy);
}

static void try_ledger(const uint8_t *data, size_t size)
{
    struct ldm_shard_info info;
    ldm_err_clear();
    int rc = ldm_shard_parse(data, size, "fz", &info);
    if (rc) {
        CHECK(rc == LDM_EFORMAT || rc == LDM_EUNSUPPORTED);
        CHECK(strncmp(ldm_errmsg(), "shard 'fz': ", 12) == 0);
        CHECK(info.ranges == NULL && info.nranges == 0);
        return;
    }
    CHECK(shard_value_size(&info) == size);
    uint8_t *copy = malloc(size);
    CHECK(copy);
    shard_value_encode(&info, copy);
    CHECK(memcmp(copy, data, size) == 0);
    uint64_t first = ldm_shard_first_unprocessed(&info);
    CHECK(first == 0 || (info.ranges[0].lo == 0 && first == info.ranges[0].hi));
    free(copy);
    ldm_shard_info_free(&info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_record(data, size);
    try_ledger(data, size);
    return 0;
}
