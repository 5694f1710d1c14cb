/* image.c — JPEG/PNG/WebP decoding to RGB the way PIL converts, PNG/JPEG encoding. */
#include "image.h"

#include <limits.h>
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include "err.h"
#include "fsutil.h"

#define PNG_CHUNK_CACHE (32u << 20) /* decompressed text/profile chunks kept by libspng */

static const char *lbl(const char *label)
{
    return label ? label : "<buffer>";
}

/* ---- images ------------------------------------------------------------------ */

int ldm_image_alloc(struct ldm_image *im, int w, int h, int c)
{
    memset(im, 0, sizeof *im);
    size_t n;
    if (w < 1 || h < 1 || c < 1 || c > 4 ||
        __builtin_mul_overflow((size_t)w * (size_t)c, (size_t)h, &n))
        return ldm_fail(LDM_EINVAL, "image %dx%dx%d: bad size", w, h, c);
    im->px = malloc(n);
    if (!im->px)
        return ldm_fail(LDM_ENOMEM, "image %dx%dx%d (%zu bytes)", w, h, c, n);
    im->w = w;
    im->h = h;
    im->c = c;
    return 0;
}

void ldm_image_free(struct ldm_image *im)
{
    free(im->px);
    memset(im, 0, sizeof *im);
}

int ldm_image_sniff(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return LDM_IMG_JPEG;
    if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return LDM_IMG_PNG;
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return LDM_IMG_WEBP;
    return LDM_IMG_UNKNOWN;
}

/* The limits in force: opts' values or the defaults. */
static void limits(const struct ldm_decode_opts *o, int64_t *max_pixels, size_t *max_bytes)
{
    *max_pixels = o && o->max_pixels > 0 ? o->max_pixels : LDM_IMAGE_MAX_PIXELS_DEFAULT;
    *max_bytes = o && o->max_bytes > 0 ? o->max_bytes : LDM_IMAGE_MAX_BYTES_DEFAULT;
}

static int check_pixels(const char *label, const char *fmt, int w, int h,
                        const struct ldm_decode_opts *o)
{
    int64_t maxp;
    size_t maxb;
    limits(o, &maxp, &maxb);
    if (w < 1 || h < 1)
        return ldm_fail(LDM_EFORMAT, "%s: %s of size %dx%d", label, fmt, w, h);
    if ((int64_t)w * h > maxp)
        return ldm_fail(LDM_ERANGE, "%s: %s of %dx%d = %lld pixels, over the limit of %lld",
                        label, fmt, w, h, (long long)w * h, (long long)maxp);
    return 0;
}

/* ---- JPEG ---------------------------------------------------------------------- */

/* The DCT scaling denominator (1, 2, 4 or 8) for a w x h JPEG to be resized
 * to need_w x need_h: only when the image is at least twice that on both
 * sides, the largest reduction whose output stays >= the need. */
static int jpeg_denom(int w, int h, int need_w, int need_h)
{
    if (need_w < 1 || need_h < 1 || w / 2 < need_w || h / 2 < need_h)
        return 1;
    for (int d = 8; d >= 2; d /= 2) {
        tjscalingfactor sf = {1, d};
        if (TJSCALED(w, sf) >= need_w && TJSCALED(h, sf) >= need_h)
            return d;
    }
    return 1;
}

static int jpeg_header(tjhandle tj, const uint8_t *buf, size_t len, const char *label, int *w,
                       int *h, int *cs)
{
    int ss = -1;
    *w = *h = 0; /* a tables-only stream succeeds without setting them */
    *cs = -1;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, w, h, &ss, cs) != 0)
        return ldm_fail(LDM_EFORMAT, "%s: bad JPEG header: %s", label, tjGetErrorStr2(tj));
    if (*w < 1 || *h < 1)
        return ldm_fail(LDM_EFORMAT, "%s: bad JPEG header: no frame of a valid size", label);
    return 0;
}

/* PIL's "CMYK;I" unpacking then cmyk2rgb: c' = 255 - raw, nk = 255 - k' = raw k,
 * out = nk - round(c' * nk / 255) with PIL's MULDIV255, clipped. */
static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, size_t npix)
{
    for (size_t i = 0; i < npix; i++, in += 4, out += 3) {
        int nk = in[3];
        for (int ch = 0; ch < 3; ch++) {
            int t = (255 - in[ch]) * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            out[ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* libjpeg's warnings (jerror.h JWRN_*): recoverable, libjpeg goes on decoding. */
static const char *const jpeg_warnings[] = {
    "Corrupt JPEG data",      "Premature end of JPEG file",
    "Unknown Adobe color transform code", "Inconsistent progression sequence",
    "Warning: unknown JFIF revision", "Invalid SOS parameters for sequential JPEG",
    "Application transferred too many scanlines",
};

/* tjDecompress2 returned -1: fatal, or warnings only (the image complete).
 * TurboJPEG flags "a warning happened" even when a fatal error came after it,
 * so the message decides: it is the first warning's text unless a fatal
 * error replaced it. A premature end is an error, as in PIL. */
static int jpeg_failure(tjhandle tj, const char *label)
{
    int code = tjGetErrorCode(tj);
    const char *msg = tjGetErrorStr2(tj);
    int warning = 0;
    size_t n = sizeof jpeg_warnings / sizeof *jpeg_warnings;
    for (size_t i = 0; code == TJERR_WARNING && i < n; i++)
        warning |= strncmp(msg, jpeg_warnings[i], strlen(jpeg_warnings[i])) == 0;
    if (!warning)
        return ldm_fail(LDM_EFORMAT, "%s: undecodable JPEG: %s", label, msg);
    if (strncmp(msg, "Premature end of JPEG file", 26) == 0)
        return ldm_fail(LDM_EFORMAT, "%s: truncated JPEG (%s)", label, msg);
    return 0;
}

/* Decode into out (already allocated sw x sh x 3). */
static int jpeg_pixels(tjhandle tj, const uint8_t *buf, size_t len, const char *label, int cs,
                       struct ldm_image *out)
{
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    uint8_t *dst = out->px;
    if (cmyk) {
        dst = malloc((size_t)out->w * out->h * 4);
        if (!dst)
            return ldm_fail(LDM_ENOMEM, "%s: CMYK buffer of %dx%d", label, out->w, out->h);
    }
    int rc = 0;
    if (tjDecompress2(tj, buf, (unsigned long)len, dst, out->w, 0, out->h,
                      cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS) != 0)
        rc = jpeg_failure(tj, label);
    if (cmyk) {
        if (rc == 0)
            cmyk_to_rgb(dst, out->px, (size_t)out->w * out->h);
        free(dst);
    }
    return rc;
}

static int jpeg_decode(const uint8_t *buf, size_t len, const char *label,
                       const struct ldm_decode_opts *o, struct ldm_image *out,
                       struct ldm_image_info *info)
{
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return ldm_fail(LDM_ENOMEM, "%s: cannot start the JPEG decoder", label);
    int w, h, cs;
    int rc = jpeg_header(tj, buf, len, label, &w, &h, &cs);
    if (rc == 0)
        rc = check_pixels(label, "JPEG", w, h, o);
    int d = o ? jpeg_denom(w, h, o->need_w, o->need_h) : 1;
    tjscalingfactor sf = {1, d};
    if (rc == 0)
        rc = ldm_image_alloc(out, TJSCALED(w, sf), TJSCALED(h, sf), 3);
    if (rc == 0)
        rc = jpeg_pixels(tj, buf, len, label, cs, out);
    tjDestroy(tj);
    if (rc != 0) {
        ldm_image_free(out);
        return rc;
    }
    *info = (struct ldm_image_info){LDM_IMG_JPEG, w, h, d};
    return 0;
}

/* ---- PNG ----------------------------------------------------------------------- */

static int png_fail(int err, const char *label, const char *what)
{
    if (err == SPNG_IO_EOF || err == SPNG_EOF || err == SPNG_EIDAT_TOO_SHORT)
        return ldm_fail(LDM_EFORMAT, "%s: truncated PNG (%s: %s)", label, what, spng_strerror(err));
    if (err == SPNG_EMEM)
        return ldm_fail(LDM_ENOMEM, "%s: PNG %s: out of memory", label, what);
    return ldm_fail(LDM_EFORMAT, "%s: bad PNG (%s: %s)", label, what, spng_strerror(err));
}

/* An open decoder over buf with its header read. */
static int png_open(const uint8_t *buf, size_t len, const char *label, spng_ctx **ctx,
                    struct spng_ihdr *ihdr)
{
    *ctx = spng_ctx_new(0);
    if (!*ctx)
        return ldm_fail(LDM_ENOMEM, "%s: cannot start the PNG decoder", label);
    int err = spng_set_png_buffer(*ctx, buf, len);
    if (!err)
        err = spng_set_chunk_limits(*ctx, len, PNG_CHUNK_CACHE);
    if (!err)
        err = spng_get_ihdr(*ctx, ihdr);
    if (err) {
        spng_ctx_free(*ctx);
        *ctx = NULL;
        return png_fail(err, label, "header");
    }
    return 0;
}

/* Sample i of a big-endian packed row of `depth`-bit samples (1, 2, 4, 8;
 * 16 gives the high byte). */
static inline unsigned sample(const uint8_t *row, size_t i, int depth)
{
    switch (depth) {
    case 1: return (row[i >> 3] >> (7 - (i & 7))) & 1;
    case 2: return (row[i >> 2] >> (6 - 2 * (i & 3))) & 3;
    case 4: return (row[i >> 1] >> (4 - 4 * (i & 1))) & 15;
    case 8: return row[i];
    default: return row[2 * i];
    }
}

/* Grey of PIL's modes: "1" (0/255), "L;2" (x85), "L;4" (x17), "L", and "I"
 * (16-bit) clipped to 255 by PIL's I -> RGB conversion. */
static void png_grey_row(const uint8_t *row, int w, int depth, uint8_t *out)
{
    static const unsigned mul[9] = {0, 255, 85, 0, 17, 0, 0, 0, 1};
    for (int x = 0; x < w; x++, out += 3) {
        unsigned v;
        if (depth == 16) {
            v = (unsigned)row[2 * x] << 8 | row[2 * x + 1];
            v = v > 255 ? 255 : v;
        } else {
            v = sample(row, (size_t)x, depth) * mul[depth];
        }
        out[0] = out[1] = out[2] = (uint8_t)v;
    }
}

/* Colour types 2, 4, 6 (RGB, grey+alpha, RGBA), 8 or 16 bits: the first
 * colour channel(s), high byte of 16-bit samples. */
static void png_colour_row(const uint8_t *row, int w, int depth, int ct, uint8_t *out)
{
    int chans = ct == SPNG_COLOR_TYPE_TRUECOLOR ? 3 : ct == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ? 2 : 4;
    size_t bps = depth == 16 ? 2 : 1;
    for (int x = 0; x < w; x++, out += 3) {
        const uint8_t *p = row + (size_t)x * chans * bps;
        if (ct == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA)
            out[0] = out[1] = out[2] = p[0];
        else
            for (int ch = 0; ch < 3; ch++)
                out[ch] = p[ch * bps];
    }
}

static void png_palette_row(const uint8_t *row, int w, int depth, const uint8_t pal[256][3],
                            uint8_t *out)
{
    for (int x = 0; x < w; x++, out += 3)
        memcpy(out, pal[sample(row, (size_t)x, depth)], 3);
}

/* PIL's palette: PLTE's entries, then the grey ramp PIL initialises a palette with. */
static int png_palette(spng_ctx *ctx, const char *label, uint8_t pal[256][3])
{
    struct spng_plte plte;
    int err = spng_get_plte(ctx, &plte);
    if (err)
        return png_fail(err, label, "palette");
    for (unsigned i = 0; i < 256; i++) {
        if (i < plte.n_entries) {
            pal[i][0] = plte.entries[i].red;
            pal[i][1] = plte.entries[i].green;
            pal[i][2] = plte.entries[i].blue;
        } else {
            pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
        }
    }
    return 0;
}

/* Convert the raw (big-endian, packed, deinterlaced) rows to RGB. */
static int png_convert(spng_ctx *ctx, const struct spng_ihdr *ih, const uint8_t *raw,
                       size_t stride, const char *label, struct ldm_image *out)
{
    uint8_t pal[256][3];
    if (ih->color_type == SPNG_COLOR_TYPE_INDEXED) {
        int rc = png_palette(ctx, label, pal);
        if (rc)
            return rc;
    }
    for (int y = 0; y < out->h; y++) {
        const uint8_t *row = raw + (size_t)y * stride;
        uint8_t *o = out->px + (size_t)y * out->w * 3;
        if (ih->color_type == SPNG_COLOR_TYPE_GRAYSCALE)
            png_grey_row(row, out->w, ih->bit_depth, o);
        else if (ih->color_type == SPNG_COLOR_TYPE_INDEXED)
            png_palette_row(row, out->w, ih->bit_depth, (const uint8_t(*)[3])pal, o);
        else
            png_colour_row(row, out->w, ih->bit_depth, ih->color_type, o);
    }
    return 0;
}

/* Decode the image data of an open decoder into out (allocated w x h x 3). */
static int png_pixels(spng_ctx *ctx, const struct spng_ihdr *ih, const char *label,
                      struct ldm_image *out)
{
    size_t size;
    int err = spng_decoded_image_size(ctx, SPNG_FMT_RAW, &size);
    if (err)
        return png_fail(err, label, "image size");
    int direct = ih->color_type == SPNG_COLOR_TYPE_TRUECOLOR && ih->bit_depth == 8;
    /* zeroed: libspng ORs the bits of interlaced sub-byte pixels into place */
    uint8_t *raw = direct ? out->px : calloc(1, size);
    if (!raw)
        return ldm_fail(LDM_ENOMEM, "%s: PNG buffer of %zu bytes", label, size);
    int rc = 0;
    err = spng_decode_image(ctx, raw, size, SPNG_FMT_RAW, 0);
    if (err)
        rc = png_fail(err, label, "image data");
    else if (!direct)
        rc = png_convert(ctx, ih, raw, size / (size_t)out->h, label, out);
    if (!direct)
        free(raw);
    return rc;
}

static int png_decode(const uint8_t *buf, size_t len, const char *label,
                      const struct ldm_decode_opts *o, struct ldm_image *out,
                      struct ldm_image_info *info)
{
    spng_ctx *ctx;
    struct spng_ihdr ih;
    int rc = png_open(buf, len, label, &ctx, &ih);
    if (rc)
        return rc;
    if (ih.width > INT_MAX || ih.height > INT_MAX)
        rc = ldm_fail(LDM_ERANGE, "%s: PNG of %ux%u pixels", label, ih.width, ih.height);
    if (rc == 0)
        rc = check_pixels(label, "PNG", (int)ih.width, (int)ih.height, o);
    if (rc == 0)
        rc = ldm_image_alloc(out, (int)ih.width, (int)ih.height, 3);
    if (rc == 0)
        rc = png_pixels(ctx, &ih, label, out);
    spng_ctx_free(ctx);
    if (rc) {
        ldm_image_free(out);
        return rc;
    }
    *info = (struct ldm_image_info){LDM_IMG_PNG, (int)ih.width, (int)ih.height, 1};
    return 0;
}

/* ---- WebP ---------------------------------------------------------------------- */

static int webp_header(const uint8_t *buf, size_t len, const char *label, WebPBitstreamFeatures *f)
{
    uint32_t riff = (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 |
                    (uint32_t)buf[7] << 24;
    VP8StatusCode st = WebPGetFeatures(buf, len, f);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA || (st == VP8_STATUS_OK && (size_t)riff + 8 > len))
        return ldm_fail(LDM_EFORMAT, "%s: truncated WebP (%zu of %zu bytes)", label, len,
                        (size_t)riff + 8);
    if (st != VP8_STATUS_OK)
        return ldm_fail(LDM_EFORMAT, "%s: bad WebP header (libwebp status %d)", label, (int)st);
    if (f->has_animation)
        return ldm_fail(LDM_EFORMAT, "%s: animated WebP is not supported", label);
    return 0;
}

static int webp_decode(const uint8_t *buf, size_t len, const char *label,
                       const struct ldm_decode_opts *o, struct ldm_image *out,
                       struct ldm_image_info *info)
{
    WebPBitstreamFeatures f;
    int rc = webp_header(buf, len, label, &f);
    if (rc == 0)
        rc = check_pixels(label, "WebP", f.width, f.height, o);
    if (rc == 0)
        rc = ldm_image_alloc(out, f.width, f.height, 3);
    if (rc)
        return rc;
    size_t size = (size_t)f.width * f.height * 3;
    if (!WebPDecodeRGBInto(buf, len, out->px, size, f.width * 3)) {
        ldm_image_free(out);
        return ldm_fail(LDM_EFORMAT, "%s: undecodable WebP image data", label);
    }
    *info = (struct ldm_image_info){LDM_IMG_WEBP, f.width, f.height, 1};
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------- */

static int check_input(const void *buf, size_t len, const char *label,
                       const struct ldm_decode_opts *o, int *fmt)
{
    int64_t maxp;
    size_t maxb;
    limits(o, &maxp, &maxb);
    *fmt = LDM_IMG_UNKNOWN;
    if (!buf && len)
        return ldm_fail(LDM_EINVAL, "%s: no data", label);
    if (len > maxb)
        return ldm_fail(LDM_ERANGE, "%s: encoded image of %zu bytes, over the limit of %zu",
                        label, len, maxb);
    *fmt = ldm_image_sniff(buf, len);
    if (*fmt == LDM_IMG_UNKNOWN)
        return ldm_fail(LDM_EFORMAT, "%s: not a JPEG, PNG or WebP image (%zu bytes)", label, len);
    return 0;
}

int ldm_image_probe(const void *buf, size_t len, const char *label,
                    const struct ldm_decode_opts *opts, struct ldm_image_info *info)
{
    label = lbl(label);
    memset(info, 0, sizeof *info);
    int fmt = LDM_IMG_UNKNOWN, w = 0, h = 0, rc = check_input(buf, len, label, opts, &fmt);
    if (rc)
        return rc;
    if (fmt == LDM_IMG_JPEG) {
        tjhandle tj = tjInitDecompress();
        if (!tj)
            return ldm_fail(LDM_ENOMEM, "%s: cannot start the JPEG decoder", label);
        int cs;
        rc = jpeg_header(tj, buf, len, label, &w, &h, &cs);
        tjDestroy(tj);
    } else if (fmt == LDM_IMG_PNG) {
        spng_ctx *ctx;
        struct spng_ihdr ih;
        rc = png_open(buf, len, label, &ctx, &ih);
        if (rc == 0) {
            spng_ctx_free(ctx);
            w = ih.width > INT_MAX ? INT_MAX : (int)ih.width;
            h = ih.height > INT_MAX ? INT_MAX : (int)ih.height;
        }
    } else {
        WebPBitstreamFeatures f;
        rc = webp_header(buf, len, label, &f);
        w = f.width;
        h = f.height;
    }
    if (rc)
        return rc;
    *info = (struct ldm_image_info){fmt, w, h, 1};
    return 0;
}

int ldm_image_decode(const void *buf, size_t len, const char *label,
                     const struct ldm_decode_opts *opts, struct ldm_image *out,
                     struct ldm_image_info *info)
{
    struct ldm_image_info dummy;
    label = lbl(label);
    memset(out, 0, sizeof *out);
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof *info);
    int fmt = LDM_IMG_UNKNOWN, rc = check_input(buf, len, label, opts, &fmt);
    if (rc)
        return rc;
    if (fmt == LDM_IMG_JPEG)
        return jpeg_decode(buf, len, label, opts, out, info);
    if (fmt == LDM_IMG_PNG)
        return png_decode(buf, len, label, opts, out, info);
    return webp_decode(buf, len, label, opts, out, info);
}

/* ---- encoders -------------------------------------------------------------------- */

static int check_encodable(const struct ldm_image *im, const char *what)
{
    if (!im || !im->px || im->w < 1 || im->h < 1 || (im->c != 1 && im->c != 3))
        return ldm_fail(LDM_EINVAL, "%s: need an RGB or grey image, got %dx%dx%d", what,
                        im ? im->w : 0, im ? im->h : 0, im ? im->c : 0);
    return 0;
}

int ldm_image_encode_png(const struct ldm_image *im, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int rc = check_encodable(im, "PNG encode");
    if (rc)
        return rc;
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx)
        return ldm_fail(LDM_ENOMEM, "PNG encode: cannot start the encoder");
    struct spng_ihdr ih = {(uint32_t)im->w, (uint32_t)im->h, 8,
                           im->c == 3 ? SPNG_COLOR_TYPE_TRUECOLOR : SPNG_COLOR_TYPE_GRAYSCALE,
                           0, 0, 0};
    size_t size = (size_t)im->w * im->h * im->c;
    int err = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!err)
        err = spng_set_ihdr(ctx, &ih);
    if (!err)
        err = spng_encode_image(ctx, im->px, size, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (!err)
        *out = spng_get_png_buffer(ctx, len, &err);
    spng_ctx_free(ctx);
    if (err || !*out) {
        free(*out);
        *out = NULL;
        *len = 0;
        return ldm_fail(err == SPNG_EMEM ? LDM_ENOMEM : LDM_EFORMAT, "PNG encode %dx%d: %s",
                        im->w, im->h, spng_strerror(err));
    }
    return 0;
}

int ldm_image_encode_jpeg(const struct ldm_image *im, int quality, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int rc = check_encodable(im, "JPEG encode");
    if (rc)
        return rc;
    if (quality < 1 || quality > 100)
        return ldm_fail(LDM_EINVAL, "JPEG encode: quality %d not in 1..100", quality);
    int samp = im->c == 3 ? TJSAMP_420 : TJSAMP_GRAY;
    unsigned long cap = tjBufSize(im->w, im->h, samp);
    unsigned char *buf = cap == (unsigned long)-1 ? NULL : malloc(cap);
    if (!buf)
        return ldm_fail(LDM_ENOMEM, "JPEG encode %dx%d: no buffer", im->w, im->h);
    tjhandle tj = tjInitCompress();
    unsigned long n = cap;
    if (!tj || tjCompress2(tj, im->px, im->w, 0, im->h, im->c == 3 ? TJPF_RGB : TJPF_GRAY, &buf,
                           &n, samp, quality, TJFLAG_ACCURATEDCT | TJFLAG_NOREALLOC) != 0) {
        rc = ldm_fail(tj ? LDM_EFORMAT : LDM_ENOMEM, "JPEG encode %dx%d: %s", im->w, im->h,
                      tj ? tjGetErrorStr2(tj) : "cannot start the encoder");
        free(buf);
    } else {
        *out = buf;
        *len = n;
    }
    if (tj)
        tjDestroy(tj);
    return rc;
}

int ldm_image_write_png(const char *path, const struct ldm_image *im)
{
    void *png = NULL;
    size_t len = 0;
    int rc = ldm_image_encode_png(im, &png, &len);
    if (!rc)
        rc = ldm_write_atomic_buf(path, png, len);
    free(png);
    return rc;
}
