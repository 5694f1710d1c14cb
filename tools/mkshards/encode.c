/* encode.c — JPEG (TurboJPEG) and PNG (libspng) encoders for mkshards, and base64. */
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "err.h"
#include "mkshards.h"

struct mk_encoder {
    tjhandle tj;
    int quality;
    unsigned char *jpeg; /* tjAlloc'd */
    unsigned long jpeg_cap;
    void *png; /* malloc'd by libspng */
};

struct mk_encoder *mk_encoder_new(int quality)
{
    struct mk_encoder *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->quality = quality;
    e->tj = tjInitCompress();
    if (!e->tj) {
        free(e);
        return NULL;
    }
    return e;
}

void mk_encoder_free(struct mk_encoder *e)
{
    if (!e)
        return;
    tjDestroy(e->tj);
    tjFree(e->jpeg);
    free(e->png);
    free(e);
}

int mk_encode_jpeg(struct mk_encoder *e, const unsigned char *rgb, int w, int h,
                   const unsigned char **out, size_t *len)
{
    unsigned long need = tjBufSize(w, h, TJSAMP_420);
    if (need == (unsigned long)-1)
        return ldm_fail(LDM_EINVAL, "jpeg: bad size %dx%d", w, h);
    if (e->jpeg_cap < need) {
        tjFree(e->jpeg);
        e->jpeg = tjAlloc((int)need);
        e->jpeg_cap = e->jpeg ? need : 0;
        if (!e->jpeg)
            return ldm_fail(LDM_ENOMEM, "jpeg: out of memory");
    }
    unsigned long size = e->jpeg_cap;
    if (tjCompress2(e->tj, rgb, w, 0, h, TJPF_RGB, &e->jpeg, &size, TJSAMP_420, e->quality,
                    TJFLAG_NOREALLOC) != 0)
        return ldm_fail(LDM_EINVAL, "jpeg: %s", tjGetErrorStr2(e->tj));
    *out = e->jpeg;
    *len = size;
    return 0;
}

int mk_encode_png(struct mk_encoder *e, const unsigned char *rgb, int w, int h,
                  const unsigned char **out, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx)
        return ldm_fail(LDM_ENOMEM, "png: out of memory");
    struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, 8, SPNG_COLOR_TYPE_TRUECOLOR, 0, 0, 0};
    int err = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!err)
        err = spng_set_ihdr(ctx, &ihdr);
    if (!err)
        err = spng_encode_image(ctx, rgb, (size_t)w * (size_t)h * 3, SPNG_FMT_PNG,
                                SPNG_ENCODE_FINALIZE);
    void *buf = NULL;
    size_t n = 0;
    if (!err)
        buf = spng_get_png_buffer(ctx, &n, &err);
    spng_ctx_free(ctx);
    if (err || !buf) {
        free(buf);
        return ldm_fail(LDM_EINVAL, "png: %s", spng_strerror(err));
    }
    free(e->png);
    e->png = buf;
    *out = buf;
    *len = n;
    return 0;
}

size_t mk_base64_encode(const unsigned char *p, size_t n, char *out)
{
    static const char sym[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = sym[v >> 18];
        out[o++] = sym[(v >> 12) & 63];
        out[o++] = sym[(v >> 6) & 63];
        out[o++] = sym[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        out[o++] = sym[v >> 18];
        out[o++] = sym[(v >> 12) & 63];
        out[o++] = i + 1 < n ? sym[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
