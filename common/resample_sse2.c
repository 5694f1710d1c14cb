/* resample_sse2.c — SSE2 kernels of the Pillow-exact resize (exact integer arithmetic).
 *
 * Each 22-bit weight k is split as k = hi * 2^11 + lo with 0 <= lo < 2^11, so
 * both halves fit in int16 and pmaddwd can multiply pixels by them two taps
 * at a time; sum(p * k) = 2^11 * sum(p * hi) + sum(p * lo) exactly in int32,
 * so every output equals the scalar (and Pillow's) result bit for bit.
 * The vertical pass runs across 16 bytes of a row at once. The horizontal
 * pass transposes 8 rows at a time so that it, too, runs across rows (8 lanes
 * a column), then transposes the results back.
 */
#include "resample_int.h"

#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>

/* The packed (lo, lo') and (hi, hi') int16 pairs of taps t and t + 1. */
static inline void pair(int32_t k0, int32_t k1, __m128i *lo, __m128i *hi)
{
    uint32_t l0 = (uint32_t)k0 & 2047u, l1 = (uint32_t)k1 & 2047u;
    int32_t h0 = (k0 - (int32_t)l0) / 2048, h1 = (k1 - (int32_t)l1) / 2048;
    *lo = _mm_set1_epi32((int)(l0 | l1 << 16));
    *hi = _mm_set1_epi32((int)(((uint32_t)h0 & 0xFFFFu) | ((uint32_t)h1 & 0xFFFFu) << 16));
}

/* HALF + 2^11 * hi + lo, shifted down (the clip comes from the saturating packs). */
static inline __m128i finish(__m128i lo, __m128i hi)
{
    __m128i s = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(hi, 11), lo),
                              _mm_set1_epi32(LDM_RS_HALF));
    return _mm_srai_epi32(s, LDM_RS_BITS);
}

/* ---- vertical ------------------------------------------------------------------ */

/* One 16-byte block of one output row: taps rows from `col`, stride apart,
 * weighted by the pairs kv (lo at kv[2p], hi at kv[2p + 1]). */
static __m128i v_block(const uint8_t *col, size_t stride, const __m128i *kv, int taps)
{
    const __m128i z = _mm_setzero_si128();
    __m128i lo[4] = {z, z, z, z}, hi[4] = {z, z, z, z};
    for (int t = 0; t < taps; t += 2, kv += 2) {
        __m128i a = _mm_loadu_si128((const __m128i *)(col + (size_t)t * stride)), b = z;
        if (t + 1 < taps)
            b = _mm_loadu_si128((const __m128i *)(col + (size_t)(t + 1) * stride));
        __m128i a0 = _mm_unpacklo_epi8(a, z), a1 = _mm_unpackhi_epi8(a, z);
        __m128i b0 = _mm_unpacklo_epi8(b, z), b1 = _mm_unpackhi_epi8(b, z);
        __m128i p[4] = {_mm_unpacklo_epi16(a0, b0), _mm_unpackhi_epi16(a0, b0),
                        _mm_unpacklo_epi16(a1, b1), _mm_unpackhi_epi16(a1, b1)};
        for (int m = 0; m < 4; m++) {
            lo[m] = _mm_add_epi32(lo[m], _mm_madd_epi16(p[m], kv[0]));
            hi[m] = _mm_add_epi32(hi[m], _mm_madd_epi16(p[m], kv[1]));
        }
    }
    __m128i w0 = _mm_packs_epi32(finish(lo[0], hi[0]), finish(lo[1], hi[1]));
    __m128i w1 = _mm_packs_epi32(finish(lo[2], hi[2]), finish(lo[3], hi[3]));
    return _mm_packus_epi16(w0, w1);
}

size_t ldm_rs_pass_v_sse2(const uint8_t *src, size_t stride, int row0, size_t len,
                          const struct ldm_rs_coeffs *cy, int n, uint8_t *dst, size_t dstride)
{
    size_t done = len / 16 * 16;
    __m128i *kv = aligned_alloc(16, (size_t)(cy->ksize + 1) * sizeof *kv);
    if (!kv || done == 0) {
        free(kv);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const int32_t *k = cy->k + (size_t)i * cy->ksize;
        const uint8_t *rows = src + (size_t)(cy->bounds[2 * i] - row0) * stride;
        int taps = cy->bounds[2 * i + 1];
        for (int t = 0; t < taps; t += 2)
            pair(k[t], t + 1 < taps ? k[t + 1] : 0, &kv[t], &kv[t + 1]);
        for (size_t e = 0; e < done; e += 16)
            _mm_storeu_si128((__m128i *)(dst + (size_t)i * dstride + e),
                             v_block(rows + e, stride, kv, taps));
    }
    free(kv);
    return done;
}

/* ---- horizontal ------------------------------------------------------------------ */

/* 8 rows x `bytes` bytes (stride apart) into column-major t: t[col * 8 + row]. */
static void transpose_in(const uint8_t *src, size_t stride, size_t bytes, uint8_t *t)
{
    size_t col = 0;
    for (; col + 16 <= bytes; col += 16) {
        __m128i a[8], b[8], c[8];
        for (int r = 0; r < 8; r++)
            a[r] = _mm_loadu_si128((const __m128i *)(src + (size_t)r * stride + col));
        for (int r = 0; r < 8; r += 2) { /* byte pairs of rows r, r+1: columns 0-7, 8-15 */
            b[r] = _mm_unpacklo_epi8(a[r], a[r + 1]);
            b[r + 1] = _mm_unpackhi_epi8(a[r], a[r + 1]);
        }
        for (int h = 0; h < 8; h += 4) { /* 4-byte columns of rows h..h+3 */
            c[h] = _mm_unpacklo_epi16(b[h], b[h + 2]);     /* columns 0-3 */
            c[h + 1] = _mm_unpackhi_epi16(b[h], b[h + 2]); /* 4-7 */
            c[h + 2] = _mm_unpacklo_epi16(b[h + 1], b[h + 3]); /* 8-11 */
            c[h + 3] = _mm_unpackhi_epi16(b[h + 1], b[h + 3]); /* 12-15 */
        }
        for (int q = 0; q < 4; q++) { /* whole 8-byte columns, two a store */
            _mm_storeu_si128((__m128i *)(t + (col + 4 * q) * 8),
                             _mm_unpacklo_epi32(c[q], c[q + 4]));
            _mm_storeu_si128((__m128i *)(t + (col + 4 * q + 2) * 8),
                             _mm_unpackhi_epi32(c[q], c[q + 4]));
        }
    }
    for (; col < bytes; col++)
        for (int r = 0; r < 8; r++)
            t[col * 8 + r] = src[(size_t)r * stride + col];
}

/* Per-call tables of the horizontal pass: for output byte column q, where its
 * first tap sits in the transposed strip and which weights it uses; for each
 * output pixel, its weights as packed (lo, lo') / (hi, hi') pairs, zero past
 * its taps (those taps read the strip's zeroed padding). */
struct h_plan {
    int npairs;          /* pairs per output pixel: (ksize + 1) / 2 */
    size_t *ofs;         /* [n * c] byte offset of tap 0 in the strip */
    const uint32_t **kp; /* [n * c] the column's pairs: lo at kp[p * 2], hi at kp[p * 2 + 1] */
    int *np;             /* [n * c] pairs the column uses */
    uint32_t *pairs;     /* [n][npairs][2] */
};

static void plan_free(struct h_plan *p)
{
    free(p->ofs);
    free(p->kp);
    free(p->np);
    free(p->pairs);
}

static int plan_make(const struct ldm_rs_coeffs *cx, int n, int c, int flip, int xlo,
                     struct h_plan *p)
{
    int total = n * c;
    p->npairs = (cx->ksize + 1) / 2;
    p->ofs = malloc((size_t)total * sizeof *p->ofs);
    p->kp = malloc((size_t)total * sizeof *p->kp);
    p->np = malloc((size_t)total * sizeof *p->np);
    p->pairs = calloc((size_t)n * p->npairs * 2, sizeof *p->pairs);
    if (!p->ofs || !p->kp || !p->np || !p->pairs) {
        plan_free(p);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const int32_t *k = cx->k + (size_t)i * cx->ksize;
        uint32_t *pp = p->pairs + (size_t)i * p->npairs * 2;
        for (int t = 0; t < cx->bounds[2 * i + 1]; t++) {
            uint32_t lo = (uint32_t)k[t] & 2047u;
            uint32_t hi = (uint32_t)((k[t] - (int32_t)lo) / 2048) & 0xFFFFu;
            pp[(t / 2) * 2] |= lo << (16 * (t & 1));
            pp[(t / 2) * 2 + 1] |= hi << (16 * (t & 1));
        }
    }
    for (int q = 0; q < total; q++) {
        int j = q / c, ch = q % c, i = flip ? n - 1 - j : j;
        p->ofs[q] = ((size_t)(cx->bounds[2 * i] - xlo) * c + ch) * 8;
        p->kp[q] = p->pairs + (size_t)i * p->npairs * 2;
        p->np[q] = (cx->bounds[2 * i + 1] + 1) / 2;
    }
    return 0;
}

/* One output byte column for 8 rows (int16 lanes, not yet clipped): pairs of
 * taps `step` bytes apart in the transposed strip, from `col`. */
static __m128i h_column(const uint8_t *col, size_t step, const uint32_t *kp, int np)
{
    const __m128i z = _mm_setzero_si128();
    __m128i lo0 = z, lo1 = z, hi0 = z, hi1 = z;
    for (int p = 0; p < np; p++, col += 2 * step) {
        __m128i kl = _mm_set1_epi32((int)kp[2 * p]), kh = _mm_set1_epi32((int)kp[2 * p + 1]);
        __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)col), z);
        __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(col + step)), z);
        __m128i pl = _mm_unpacklo_epi16(a, b), ph = _mm_unpackhi_epi16(a, b);
        lo0 = _mm_add_epi32(lo0, _mm_madd_epi16(pl, kl));
        lo1 = _mm_add_epi32(lo1, _mm_madd_epi16(ph, kl));
        hi0 = _mm_add_epi32(hi0, _mm_madd_epi16(pl, kh));
        hi1 = _mm_add_epi32(hi1, _mm_madd_epi16(ph, kh));
    }
    return _mm_packs_epi32(finish(lo0, hi0), finish(lo1, hi1));
}

/* Transpose 8 columns x 8 rows of int16 (v[m] = column m) into rows, clip to
 * bytes and store `count` (<= 8) bytes of each row at dst, dstride apart. */
static void store_rows(__m128i v[8], uint8_t *dst, size_t dstride, int count)
{
    __m128i t[8], u[8];
    for (int m = 0; m < 8; m += 2) {
        t[m] = _mm_unpacklo_epi16(v[m], v[m + 1]);
        t[m + 1] = _mm_unpackhi_epi16(v[m], v[m + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm_unpacklo_epi32(t[h], t[h + 2]);     /* rows 0, 1 */
        u[h + 1] = _mm_unpackhi_epi32(t[h], t[h + 2]); /* rows 2, 3 */
        u[h + 2] = _mm_unpacklo_epi32(t[h + 1], t[h + 3]); /* rows 4, 5 */
        u[h + 3] = _mm_unpackhi_epi32(t[h + 1], t[h + 3]); /* rows 6, 7 */
    }
    for (int r = 0; r < 8; r++) {
        __m128i row = (r & 1) ? _mm_unpackhi_epi64(u[r / 2], u[r / 2 + 4])
                              : _mm_unpacklo_epi64(u[r / 2], u[r / 2 + 4]);
        __m128i bytes = _mm_packus_epi16(row, row);
        if (count == 8) {
            _mm_storel_epi64((__m128i *)(dst + (size_t)r * dstride), bytes);
        } else {
            uint8_t tmp[16];
            _mm_storeu_si128((__m128i *)tmp, bytes);
            memcpy(dst + (size_t)r * dstride, tmp, (size_t)count);
        }
    }
}

/* All output byte columns of one transposed strip of 8 rows. */
static void h_strip(const uint8_t *t, int c, const struct h_plan *p, int total, uint8_t *dst,
                    size_t dstride)
{
    for (int q0 = 0; q0 < total; q0 += 8) {
        __m128i v[8];
        int count = total - q0 < 8 ? total - q0 : 8;
        for (int m = 0; m < 8; m++)
            v[m] = m < count ? h_column(t + p->ofs[q0 + m], (size_t)c * 8, p->kp[q0 + m],
                                        p->np[q0 + m])
                             : _mm_setzero_si128();
        store_rows(v, dst + q0, dstride, count);
    }
}

int ldm_rs_pass_h_sse2(const uint8_t *src, size_t stride, int c, int rows,
                       const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst,
                       size_t dstride)
{
    int xlo = cx->bounds[0], xhi = 0;
    for (int i = 0; i < n; i++) {
        xlo = cx->bounds[2 * i] < xlo ? cx->bounds[2 * i] : xlo;
        int end = cx->bounds[2 * i] + cx->bounds[2 * i + 1];
        xhi = end > xhi ? end : xhi;
    }
    if (rows < 8 || xhi <= xlo)
        return 0;
    size_t bytes = (size_t)(xhi - xlo) * c, pad = (size_t)c * 8;
    struct h_plan p;
    uint8_t *t = malloc(bytes * 8 + pad); /* the padding: one zero pixel for odd taps */
    if (!t || plan_make(cx, n, c, flip, xlo, &p) != 0) {
        free(t);
        return 0;
    }
    memset(t + bytes * 8, 0, pad);
    int r = 0;
    for (; r + 8 <= rows; r += 8) {
        transpose_in(src + (size_t)r * stride + (size_t)xlo * c, stride, bytes, t);
        h_strip(t, c, &p, n * c, dst + (size_t)r * dstride, dstride);
    }
    plan_free(&p);
    free(t);
    return r;
}

#else /* no SSE2: the scalar passes do everything */

int ldm_rs_pass_h_sse2(const uint8_t *src, size_t stride, int c, int rows,
                       const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst,
                       size_t dstride)
{
    (void)src, (void)stride, (void)c, (void)rows, (void)cx, (void)n, (void)flip, (void)dst,
        (void)dstride;
    return 0;
}

size_t ldm_rs_pass_v_sse2(const uint8_t *src, size_t stride, int row0, size_t len,
                          const struct ldm_rs_coeffs *cy, int n, uint8_t *dst, size_t dstride)
{
    (void)src, (void)stride, (void)row0, (void)len, (void)cy, (void)n, (void)dst, (void)dstride;
    return 0;
}

#endif
