/* resample_avx2.c — AVX2 kernels of the Pillow-exact resize (exact integer arithmetic).
 *
 * The same arithmetic as resample_sse2.c, twice as wide: each 22-bit weight k
 * is split as k = hi * 2^11 + lo (0 <= lo < 2^11) so that vpmaddwd multiplies
 * pixels by both int16 halves two taps at a time, and 2^11 * sum(p * hi) +
 * sum(p * lo) + HALF is the scalar sum exactly. The vertical pass runs across
 * 32 bytes of a row; the horizontal pass transposes 16 rows at a time (16
 * lanes a column) and transposes the results back. The functions are compiled
 * for AVX2 alone (target attribute); resample.c calls them only where the CPU
 * has it.
 */
#include "resample_int.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* The (lo, lo') and (hi, hi') int16 pairs of weights k0, k1 as two words. */
static void split_pair(int32_t k0, int32_t k1, uint32_t *lo, uint32_t *hi)
{
    uint32_t l0 = (uint32_t)k0 & 2047u, l1 = (uint32_t)k1 & 2047u;
    int32_t h0 = (k0 - (int32_t)l0) / 2048, h1 = (k1 - (int32_t)l1) / 2048;
    *lo = l0 | l1 << 16;
    *hi = ((uint32_t)h0 & 0xFFFFu) | ((uint32_t)h1 & 0xFFFFu) << 16;
}

/* HALF + 2^11 * hi + lo, shifted down (the clip comes from the saturating packs). */
static inline AVX2 __m256i finish(__m256i lo, __m256i hi)
{
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi, 11), lo),
                                 _mm256_set1_epi32(LDM_RS_HALF));
    return _mm256_srai_epi32(s, LDM_RS_BITS);
}

/* ---- vertical ------------------------------------------------------------------ */

/* One 32-byte block of one output row: taps rows from `col`, stride apart,
 * weighted by the pairs kv (lo at kv[2p], hi at kv[2p + 1]). The unpacks and
 * packs both work within 128-bit lanes, so the bytes come back in order. */
static AVX2 __m256i v_block(const uint8_t *col, size_t stride, const uint32_t *kv, int taps)
{
    const __m256i z = _mm256_setzero_si256();
    __m256i lo0 = z, lo1 = z, lo2 = z, lo3 = z, hi0 = z, hi1 = z, hi2 = z, hi3 = z;
    for (int t = 0; t < taps; t += 2, kv += 2) {
        __m256i kl = _mm256_set1_epi32((int)kv[0]), kh = _mm256_set1_epi32((int)kv[1]);
        __m256i a = _mm256_loadu_si256((const __m256i *)(col + (size_t)t * stride)), b = z;
        if (t + 1 < taps)
            b = _mm256_loadu_si256((const __m256i *)(col + (size_t)(t + 1) * stride));
        /* byte pairs (a, b), then zero-extended: int16 pairs of bytes 0-3, 4-7, 8-11, 12-15 */
        __m256i ab0 = _mm256_unpacklo_epi8(a, b), ab1 = _mm256_unpackhi_epi8(a, b);
        __m256i p0 = _mm256_unpacklo_epi8(ab0, z), p1 = _mm256_unpackhi_epi8(ab0, z);
        __m256i p2 = _mm256_unpacklo_epi8(ab1, z), p3 = _mm256_unpackhi_epi8(ab1, z);
        lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(p0, kl));
        lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(p1, kl));
        lo2 = _mm256_add_epi32(lo2, _mm256_madd_epi16(p2, kl));
        lo3 = _mm256_add_epi32(lo3, _mm256_madd_epi16(p3, kl));
        hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(p0, kh));
        hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(p1, kh));
        hi2 = _mm256_add_epi32(hi2, _mm256_madd_epi16(p2, kh));
        hi3 = _mm256_add_epi32(hi3, _mm256_madd_epi16(p3, kh));
    }
    __m256i w0 = _mm256_packs_epi32(finish(lo0, hi0), finish(lo1, hi1));
    __m256i w1 = _mm256_packs_epi32(finish(lo2, hi2), finish(lo3, hi3));
    return _mm256_packus_epi16(w0, w1);
}

AVX2 size_t ldm_rs_pass_v_avx2(const uint8_t *src, size_t stride, int row0, size_t len,
                               const struct ldm_rs_coeffs *cy, int n, uint8_t *dst,
                               size_t dstride)
{
    size_t done = len / 32 * 32;
    uint32_t *kv = malloc((size_t)(cy->ksize + 1) * sizeof *kv);
    if (!kv || done == 0) {
        free(kv);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const int32_t *k = cy->k + (size_t)i * cy->ksize;
        const uint8_t *rows = src + (size_t)(cy->bounds[2 * i] - row0) * stride;
        int taps = cy->bounds[2 * i + 1];
        for (int t = 0; t < taps; t += 2)
            split_pair(k[t], t + 1 < taps ? k[t + 1] : 0, &kv[t], &kv[t + 1]);
        for (size_t e = 0; e < done; e += 32)
            _mm256_storeu_si256((__m256i *)(dst + (size_t)i * dstride + e),
                                v_block(rows + e, stride, kv, taps));
    }
    free(kv);
    return done;
}

/* ---- horizontal ------------------------------------------------------------------ */

/* 16 rows x 16 bytes (stride apart) into column-major t: 16 bytes a column.
 * Rows r and r + 8 share a register (one a 128-bit lane), so the 8-row
 * transpose below does both halves at once; a 64-bit permute then puts
 * rows 0-7 and 8-15 of a column side by side. */
static AVX2 void transpose_16x16(const uint8_t *src, size_t stride, uint8_t *t)
{
    __m256i a[8], b[8], c[8];
    for (int r = 0; r < 8; r++)
        a[r] = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(src + (size_t)r * stride))),
            _mm_loadu_si128((const __m128i *)(src + (size_t)(r + 8) * stride)), 1);
    for (int r = 0; r < 8; r += 2) { /* byte pairs of rows r, r+1: columns 0-7, 8-15 */
        b[r] = _mm256_unpacklo_epi8(a[r], a[r + 1]);
        b[r + 1] = _mm256_unpackhi_epi8(a[r], a[r + 1]);
    }
    for (int h = 0; h < 8; h += 4) { /* 4-byte columns of rows h..h+3 */
        c[h] = _mm256_unpacklo_epi16(b[h], b[h + 2]);         /* columns 0-3 */
        c[h + 1] = _mm256_unpackhi_epi16(b[h], b[h + 2]);     /* 4-7 */
        c[h + 2] = _mm256_unpacklo_epi16(b[h + 1], b[h + 3]); /* 8-11 */
        c[h + 3] = _mm256_unpackhi_epi16(b[h + 1], b[h + 3]); /* 12-15 */
    }
    for (int q = 0; q < 4; q++) { /* columns 4q, 4q + 1 then 4q + 2, 4q + 3 */
        __m256i lo = _mm256_unpacklo_epi32(c[q], c[q + 4]);
        __m256i hi = _mm256_unpackhi_epi32(c[q], c[q + 4]);
        _mm256_storeu_si256((__m256i *)(t + (4 * q) * 16), _mm256_permute4x64_epi64(lo, 0xD8));
        _mm256_storeu_si256((__m256i *)(t + (4 * q + 2) * 16),
                            _mm256_permute4x64_epi64(hi, 0xD8));
    }
}

/* 16 rows x `bytes` bytes (stride apart) into column-major t: t[col * 16 + row]. */
static AVX2 void transpose_in(const uint8_t *src, size_t stride, size_t bytes, uint8_t *t)
{
    size_t col = 0;
    for (; col + 16 <= bytes; col += 16)
        transpose_16x16(src + col, stride, t + col * 16);
    for (; col < bytes; col++)
        for (int r = 0; r < 16; r++)
            t[col * 16 + r] = src[(size_t)r * stride + col];
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
        int taps = cx->bounds[2 * i + 1];
        for (int t = 0; t < taps; t += 2)
            split_pair(k[t], t + 1 < taps ? k[t + 1] : 0, &pp[t], &pp[t + 1]);
    }
    for (int q = 0; q < total; q++) {
        int j = q / c, ch = q % c, i = flip ? n - 1 - j : j;
        p->ofs[q] = ((size_t)(cx->bounds[2 * i] - xlo) * c + ch) * 16;
        p->kp[q] = p->pairs + (size_t)i * p->npairs * 2;
        p->np[q] = (cx->bounds[2 * i + 1] + 1) / 2;
    }
    return 0;
}

/* One output byte column for 16 rows (int16 lanes in row order, not yet
 * clipped): pairs of taps `step` bytes apart in the transposed strip. */
static AVX2 __m256i h_column(const uint8_t *col, size_t step, const uint32_t *kp, int np)
{
    const __m256i z = _mm256_setzero_si256();
    __m256i lo0 = z, lo1 = z, hi0 = z, hi1 = z;
    for (int p = 0; p < np; p++, col += 2 * step) {
        __m256i kl = _mm256_set1_epi32((int)kp[2 * p]);
        __m256i kh = _mm256_set1_epi32((int)kp[2 * p + 1]);
        __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)col));
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(col + step)));
        __m256i pl = _mm256_unpacklo_epi16(a, b); /* rows 0-3 | 8-11 */
        __m256i ph = _mm256_unpackhi_epi16(a, b); /* rows 4-7 | 12-15 */
        lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(pl, kl));
        lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(ph, kl));
        hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(pl, kh));
        hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(ph, kh));
    }
    return _mm256_packs_epi32(finish(lo0, hi0), finish(lo1, hi1));
}

/* Transpose 8 columns x 16 rows of int16 (v[m] = column m) into rows, clip
 * to bytes and store `count` (<= 8) bytes of each row at dst, dstride apart.
 * Each 128-bit lane transposes on its own: rows 0-7 low, rows 8-15 high. */
static AVX2 void store_rows(__m256i v[8], uint8_t *dst, size_t dstride, int count)
{
    __m256i t[8], u[8];
    for (int m = 0; m < 8; m += 2) {
        t[m] = _mm256_unpacklo_epi16(v[m], v[m + 1]);
        t[m + 1] = _mm256_unpackhi_epi16(v[m], v[m + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_unpacklo_epi32(t[h], t[h + 2]);         /* rows 0, 1 */
        u[h + 1] = _mm256_unpackhi_epi32(t[h], t[h + 2]);     /* rows 2, 3 */
        u[h + 2] = _mm256_unpacklo_epi32(t[h + 1], t[h + 3]); /* rows 4, 5 */
        u[h + 3] = _mm256_unpackhi_epi32(t[h + 1], t[h + 3]); /* rows 6, 7 */
    }
    for (int r = 0; r < 8; r += 2) { /* rows r, r + 1 (low lanes), r + 8, r + 9 (high) */
        __m256i bytes = _mm256_packus_epi16(_mm256_unpacklo_epi64(u[r / 2], u[r / 2 + 4]),
                                            _mm256_unpackhi_epi64(u[r / 2], u[r / 2 + 4]));
        uint8_t *d = dst + (size_t)r * dstride;
        if (count == 8) {
            __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
            _mm_storel_epi64((__m128i *)d, lo);
            _mm_storel_epi64((__m128i *)(d + dstride), _mm_unpackhi_epi64(lo, lo));
            _mm_storel_epi64((__m128i *)(d + 8 * dstride), hi);
            _mm_storel_epi64((__m128i *)(d + 9 * dstride), _mm_unpackhi_epi64(hi, hi));
        } else {
            uint8_t tmp[32];
            _mm256_storeu_si256((__m256i *)tmp, bytes);
            memcpy(d, tmp, (size_t)count);
            memcpy(d + dstride, tmp + 8, (size_t)count);
            memcpy(d + 8 * dstride, tmp + 16, (size_t)count);
            memcpy(d + 9 * dstride, tmp + 24, (size_t)count);
        }
    }
}

/* All output byte columns of one transposed strip of 16 rows. */
static AVX2 void h_strip(const uint8_t *t, int c, const struct h_plan *p, int total,
                         uint8_t *dst, size_t dstride)
{
    for (int q0 = 0; q0 < total; q0 += 8) {
        __m256i v[8];
        int count = total - q0 < 8 ? total - q0 : 8;
        for (int m = 0; m < 8; m++)
            v[m] = m < count ? h_column(t + p->ofs[q0 + m], (size_t)c * 16, p->kp[q0 + m],
                                        p->np[q0 + m])
                             : _mm256_setzero_si256();
        store_rows(v, dst + q0, dstride, count);
    }
}

AVX2 int ldm_rs_pass_h_avx2(const uint8_t *src, size_t stride, int c, int rows,
                            const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst,
                            size_t dstride)
{
    int xlo = cx->bounds[0], xhi = 0;
    for (int i = 0; i < n; i++) {
        xlo = cx->bounds[2 * i] < xlo ? cx->bounds[2 * i] : xlo;
        int end = cx->bounds[2 * i] + cx->bounds[2 * i + 1];
        xhi = end > xhi ? end : xhi;
    }
    if (rows < 16 || xhi <= xlo)
        return 0;
    size_t bytes = (size_t)(xhi - xlo) * c, pad = (size_t)c * 16;
    struct h_plan p;
    uint8_t *t = malloc(bytes * 16 + pad); /* the padding: one zero pixel for odd taps */
    if (!t || plan_make(cx, n, c, flip, xlo, &p) != 0) {
        free(t);
        return 0;
    }
    memset(t + bytes * 16, 0, pad);
    int r = 0;
    for (; r + 16 <= rows; r += 16) {
        transpose_in(src + (size_t)r * stride + (size_t)xlo * c, stride, bytes, t);
        h_strip(t, c, &p, n * c, dst + (size_t)r * dstride, dstride);
    }
    plan_free(&p);
    free(t);
    return r;
}

int ldm_rs_have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}

#else /* not x86: the SSE2 and scalar passes do everything */

int ldm_rs_pass_h_avx2(const uint8_t *src, size_t stride, int c, int rows,
                       const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst,
                       size_t dstride)
{
    (void)src, (void)stride, (void)c, (void)rows, (void)cx, (void)n, (void)flip, (void)dst,
        (void)dstride;
    return 0;
}

size_t ldm_rs_pass_v_avx2(const uint8_t *src, size_t stride, int row0, size_t len,
                          const struct ldm_rs_coeffs *cy, int n, uint8_t *dst, size_t dstride)
{
    (void)src, (void)stride, (void)row0, (void)len, (void)cy, (void)n, (void)dst, (void)dstride;
    return 0;
}

int ldm_rs_have_avx2(void)
{
    return 0;
}

#endif
