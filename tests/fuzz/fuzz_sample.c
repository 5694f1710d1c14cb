/* fuzz_sample.c — libFuzzer target: a received data-plane message.
 *
 * Input: byte 0 picks the frame count (1 + low two bits) and how the pixel
 * frame lengths are made; byte 1 tunes them; the rest is frame 0. With bit 2
 * of byte 0 set, the lengths are the ones the layouts in frame 0 need (plus
 * byte 1 as a signed offset when bit 3 is set), so valid samples get through
 * to the end; otherwise they are byte 1 times a small constant. Decoding must
 * never crash, leak or misreport: 0 goes with reason "ok" and a Sample, any
 * error with another reason, no Sample and a detail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "proto/sample_check.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes a layout needs, 0 when there is none. */
static size_t layout_bytes(const Ldmpipe__ImageLayout *l)
{
    if (!l)
        return 0;
    uint64_t n = (uint64_t)l->height * l->width;
    if (l->channels && n > UINT64_MAX / l->channels)
        return SIZE_MAX;
    return (size_t)(n * l->channels);
}

/* Frame lengths as byte 0 and byte 1 say. */
static void make_lengths(const uint8_t *frame0, size_t len0, uint8_t b0, uint8_t b1,
                         size_t len[3])
{
    len[0] = len0;
    len[1] = len[2] = (size_t)b1 * 37;
    if (!(b0 & 4))
        return;
    Ldmpipe__Sample *s = ldmpipe__sample__unpack(NULL, len0, frame0);
    if (!s)
        return;
    int off = (b0 & 8) ? (int8_t)b1 : 0;
    len[1] = layout_bytes(s->image) + (size_t)(intptr_t)off;
    len[2] = layout_bytes(s->cond) + (size_t)(intptr_t)off;
    ldmpipe__sample__free_unpacked(s, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const uint8_t none[1];
    const uint8_t *frame0 = size > 2 ? data + 2 : none;
    size_t len[3];
    make_lengths(frame0, size - 2, data[0], data[1], len);
    struct ldm_sample_limits lim;
    ldm_sample_limits_init(&lim);
    static Ldmpipe__Sample sentinel;
    Ldmpipe__Sample *s = &sentinel; /* decode must overwrite it */
    enum ldm_sample_reason why = LDM_SR_COUNT;
    ldm_err_clear();
    int rc = ldm_sample_decode(frame0, len, 1 + (data[0] & 3), &lim, &s, &why);
    if (rc == 0 ? (why != LDM_SR_OK || !s) : (why == LDM_SR_OK || s || !*ldm_errmsg()))
        abort();
    if (rc == 0) {
        char name[600];
        ldm_sample_name(s, name, sizeof name);
        if (!ldm_utf8_valid((const char *)s->caption.data, s->caption.len))
            abort();
    }
    if (strlen(ldm_sample_reason_name((int)why)) == 0)
        abort();
    ldm_sample_free(s);
    size_t p = ldm_utf8_prefix((const char *)data, size);
    if (p > size || !ldm_utf8_valid((const char *)data, p))
        abort();
    return 0;
}
