/* fuzz_image.c — arbitrary bytes as a JPEG/PNG/WebP image, then resized small.
 *
 * Decoding runs under a small pixel limit. What is accepted must agree with
 * the header probe and be a well-formed RGB image; what is refused must be
 * LDM_EFORMAT or LDM_ERANGE with a detail naming the label. An accepted image
 * is then resized to a small size (filter, size and window chosen from a hash
 * of the input): the windowed resize must equal the crop of the full one, and
 * the SSE2 kernels the portable code.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "image.h"
#include "resample.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define LABEL "fuzz.img"
#define MAX_PIXELS (1 << 20)

static uint32_t hash(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        h = (h ^ data[i]) * 16777619u;
    return h ^ (uint32_t)size;
}

static void check_refusal(int rc, const struct ldm_image *im)
{
    CHECK(rc == LDM_EFORMAT || rc == LDM_ERANGE);
    CHECK(strncmp(ldm_errmsg(), LABEL ": ", strlen(LABEL) + 2) == 0);
    CHECK(im->px == NULL && im->w == 0);
}

/* The window's pixels equal the same region of the full resize, mirrored. */
static void check_resize(const struct ldm_image *im, uint32_t h)
{
    int filter = (int)(h % LDM_RESAMPLE_COUNT);
    int ow = 1 + (int)((h >> 3) % 48), oh = 1 + (int)((h >> 9) % 48);
    if (h & (1u << 15))
        ow = im->w; /* the vertical-only path */
    struct ldm_image full, win, plain;
    CHECK(ldm_resize(im, ow, oh, filter, &full) == 0);
    CHECK(full.w == ow && full.h == oh && full.c == 3);
    ldm_resample_set_simd(0);
    CHECK(ldm_resize(im, ow, oh, filter, &plain) == 0);
    ldm_resample_set_simd(1);
    CHECK(memcmp(plain.px, full.px, (size_t)ow * oh * 3) == 0);
    ldm_image_free(&plain);
    struct ldm_window w = {(int)((h >> 16) % (uint32_t)ow), (int)((h >> 20) % (uint32_t)oh), 0, 0,
                           (int)(h >> 31)};
    w.w = ow - w.x;
    w.h = oh - w.y;
    CHECK(ldm_resize_window(im, ow, oh, filter, &w, &win) == 0);
    for (int y = 0; y < w.h; y++)
        for (int x = 0; x < w.w; x++) {
            int sx = w.x + (w.flip ? w.w - 1 - x : x);
            CHECK(memcmp(win.px + ((size_t)y * w.w + x) * 3,
                         full.px + ((size_t)(w.y + y) * ow + sx) * 3, 3) == 0);
        }
    ldm_image_free(&win);
    ldm_image_free(&full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t h = hash(data, size);
    struct ldm_decode_opts o = {.max_pixels = MAX_PIXELS, .max_bytes = 1 << 20};
    if (h & (1u << 30)) { /* sometimes let JPEGs decode DCT-scaled */
        o.need_w = 1 + (int)((h >> 4) % 64);
        o.need_h = 1 + (int)((h >> 12) % 64);
    }
    struct ldm_image_info probe, info;
    ldm_err_clear();
    int prc = ldm_image_probe(data, size, LABEL, &o, &probe);
    struct ldm_image im;
    ldm_err_clear();
    int rc = ldm_image_decode(data, size, LABEL, &o, &im, &info);
    if (rc != 0) {
        check_refusal(rc, &im);
        return 0;
    }
    CHECK(prc == 0 && probe.format == info.format && probe.w == info.w && probe.h == info.h);
    CHECK(im.c == 3 && im.px && im.w >= 1 && im.h >= 1);
    CHECK((int64_t)info.w * info.h <= MAX_PIXELS);
    CHECK(info.scale_denom == 1 || info.scale_denom == 2 || info.scale_denom == 4 ||
          info.scale_denom == 8);
    if (info.scale_denom == 1)
        CHECK(im.w == info.w && im.h == info.h);
    else
        CHECK(im.w >= o.need_w && im.h >= o.need_h && im.w < info.w);
    check_resize(&im, h);
    ldm_image_free(&im);
    return 0;
}
