/* image.h — decode JPEG, PNG and WebP into 8-bit RGB as PIL does; encode PNG and JPEG.
 *
 * Decoding gives what Pillow 9.4's `Image.open(f).convert("RGB")` gives on
 * the same bytes (Debian's libjpeg-turbo, libspng for PNG, libwebp):
 *  - JPEG through the TurboJPEG API with the accurate integer IDCT and fancy
 *    upsampling, so an unscaled decode is PIL's decode bit for bit. Grey
 *    decodes to R=G=B. CMYK and YCCK files are read as Adobe (inverted) CMYK,
 *    as PIL always assumes, and converted with PIL's formula
 *    R = (255-K) - (C*(255-K))/255 (PIL's rounding, C and K uninverted).
 *    EXIF orientation is not applied (PIL's open does not either). A file
 *    that ends before its image data does ("Premature end of JPEG file") is
 *    an error, as in PIL; other recoverable libjpeg warnings (corrupt data
 *    libjpeg skips over) are accepted, as PIL accepts them. A progressive
 *    file of more than 500 scans is refused (TurboJPEG's guard against
 *    scan-flooding; PIL has none). Optional DCT-domain scaling (1/2, 1/4,
 *    1/8), see ldm_decode_opts.
 *  - PNG: every bit depth and colour type. 16-bit channels keep their high
 *    byte; 16-bit grey without alpha becomes PIL's mode "I" and converts to
 *    RGB by clipping to 0..255 (PIL 9.4 does exactly that, so such images
 *    come out nearly white); 1, 2 and 4-bit grey scale to 0..255; palette
 *    entries missing from PLTE are PIL's grey ramp (index i -> i,i,i).
 *    Gamma, colour profiles and tRNS are ignored; alpha is dropped.
 *  - WebP (lossy, lossless, with alpha; not animated): alpha dropped.
 * Alpha is dropped, never composited, as convert("RGB") does.
 *
 * The format comes from the magic bytes, never a file name. Every failure
 * returns LDM_EFORMAT (undecodable, truncated, unknown format) or
 * LDM_ERANGE (over a size limit) with a detail that starts with the caller's
 * `label`, e.g. "shard-000001.tar/000042.jpg: truncated JPEG".
 *
 * Pixels are HWC, row-major, tightly packed (stride w*c). The functions are
 * thread-safe; each call uses its own codec state.
 */
#ifndef LDM_IMAGE_H
#define LDM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* An 8-bit image, HWC. A zeroed struct is an empty, valid-to-free value. */
struct ldm_image {
    int w, h, c;  /* width, height, channels (3 = RGB, 1 = grey) */
    uint8_t *px;  /* h*w*c bytes, malloc'd; owned by the struct */
};

enum ldm_image_format {
    LDM_IMG_UNKNOWN = 0,
    LDM_IMG_JPEG,
    LDM_IMG_PNG,
    LDM_IMG_WEBP,
};

/* PIL's decompression-bomb error threshold (2 * Image.MAX_IMAGE_PIXELS). */
#define LDM_IMAGE_MAX_PIXELS_DEFAULT 178956970LL
#define LDM_IMAGE_MAX_BYTES_DEFAULT (256u << 20)

/* Decoding options; a zeroed struct means the defaults. */
struct ldm_decode_opts {
    int64_t max_pixels; /* w*h above this is LDM_ERANGE, checked from the header
                           before any pixel memory is allocated; 0: default */
    size_t max_bytes;   /* an encoded image longer than this is LDM_ERANGE; 0: default */
    int need_w, need_h; /* JPEG only: the size the caller will resize to. When the
                           image is at least twice that on both sides, it is decoded
                           with the largest DCT scaling (1/2, 1/4, 1/8) that keeps
                           both sides >= need_w x need_h. 0: always full size. */
};

/* What the header says, and what the decoder did. */
struct ldm_image_info {
    int format;         /* enum ldm_image_format */
    int w, h;           /* full size from the header */
    int scale_denom;    /* decode() only: 1, or 2/4/8 when DCT scaling was used */
};

/* The format of `len` bytes at `buf` from their magic bytes:
 * JPEG FF D8 FF, PNG 89 'PNG' 0D 0A 1A 0A, WebP 'RIFF' size 'WEBP';
 * LDM_IMG_UNKNOWN otherwise. */
int ldm_image_sniff(const void *buf, size_t len);

/* Read the header only: format and full size into *info (scale_denom 1).
 * Returns 0, LDM_EFORMAT (unknown format, bad or truncated header) or
 * LDM_ERANGE (over opts' byte limit; opts may be NULL). */
int ldm_image_probe(const void *buf, size_t len, const char *label,
                    const struct ldm_decode_opts *opts, struct ldm_image_info *info);

/* Decode `len` bytes at `buf` into *out (RGB, c = 3; the caller frees it with
 * ldm_image_free). `label` names the bytes in error details; opts may be
 * NULL (defaults); info may be NULL. Returns 0, LDM_EFORMAT, LDM_ERANGE or
 * LDM_ENOMEM. On failure *out is zeroed. */
int ldm_image_decode(const void *buf, size_t len, const char *label,
                     const struct ldm_decode_opts *opts, struct ldm_image *out,
                     struct ldm_image_info *info);

/* Set *im to a w x h x c image (c 1..4) with uninitialised pixels. Returns 0,
 * LDM_EINVAL (a side < 1, c out of range, size overflow) or LDM_ENOMEM. */
int ldm_image_alloc(struct ldm_image *im, int w, int h, int c);

/* Free im's pixels and zero *im. */
void ldm_image_free(struct ldm_image *im);

/* Encode an RGB (c = 3) or grey (c = 1) image as PNG (8-bit, no interlace,
 * libspng's default compression) into *out (malloc'd; the caller frees it)
 * and *len. Returns 0, LDM_EINVAL (bad image) or LDM_ENOMEM/LDM_EFORMAT
 * (encoder failure, detail from libspng). */
int ldm_image_encode_png(const struct ldm_image *im, void **out, size_t *len);

/* Encode as PNG and write `path` atomically (fsutil.h). Returns 0 or the codes of
 * ldm_image_encode_png and ldm_write_atomic_buf. */
int ldm_image_write_png(const char *path, const struct ldm_image *im);

/* Encode an RGB (4:2:0 subsampling) or grey image as baseline JPEG with
 * `quality` 1..100 (accurate DCT) into *out (malloc'd; the caller frees it)
 * and *len. Returns 0, LDM_EINVAL (bad image or quality), LDM_ENOMEM or
 * LDM_EFORMAT (encoder failure, detail from TurboJPEG). */
int ldm_image_encode_jpeg(const struct ldm_image *im, int quality, void **out, size_t *len);

#endif
