/* resample_int.h — internals shared by resample.c and its SIMD kernels (resample_sse2.c,
 * resample_avx2.c). */
#ifndef LDM_RESAMPLE_INT_H
#define LDM_RESAMPLE_INT_H

#include <stddef.h>
#include <stdint.h>

#define LDM_RS_BITS 22                         /* Pillow's PRECISION_BITS (32 - 8 - 2) */
#define LDM_RS_HALF (1 << (LDM_RS_BITS - 1))   /* the rounding term every sum starts from */

/* Fixed-point weights of n consecutive outputs of one pass. */
struct ldm_rs_coeffs {
    int ksize;    /* weights per output (Pillow's maximum); unused ones are 0 */
    int *bounds;  /* [n][2]: first input index, number of taps */
    int32_t *k;   /* [n][ksize] */
};

/* The SSE2 horizontal pass over rows 0..rows-1 (rows `stride` bytes apart,
 * c = 1 or 3 bytes a pixel): the n outputs of cx (reversed when flip) into
 * dst (dstride bytes a row). Does whole groups of 8 rows and returns how many
 * rows it did (0 where SSE2 is not compiled in or memory is short); the
 * caller does the rest. Bit-identical to the scalar pass. */
int ldm_rs_pass_h_sse2(const uint8_t *src, size_t stride, int c, int rows,
                       const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst,
                       size_t dstride);

/* The SSE2 vertical pass: output row i (of n) sums rows bounds[2i] - row0 ...
 * of src (stride bytes apart) over the first `len` bytes of each row, into
 * dst (dstride bytes a row). Does whole 16-byte blocks and returns how many
 * bytes of each row it did; the caller does the rest. Bit-identical to the
 * scalar pass. */
size_t ldm_rs_pass_v_sse2(const uint8_t *src, size_t stride, int row0, size_t len,
                          const struct ldm_rs_coeffs *cy, int n, uint8_t *dst, size_t dstride);

/* The AVX2 horizontal pass: as ldm_rs_pass_h_sse2, in whole groups of 16
 * rows. Call it only where ldm_rs_have_avx2() says so. */
int ldm_rs_pass_h_avx2(const uint8_t *src, size_t stride, int c, int rows,
                       const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst,
                       size_t dstride);

/* The AVX2 vertical pass: as ldm_rs_pass_v_sse2, in whole 32-byte blocks.
 * Call it only where ldm_rs_have_avx2() says so. */
size_t ldm_rs_pass_v_avx2(const uint8_t *src, size_t stride, int row0, size_t len,
                          const struct ldm_rs_coeffs *cy, int n, uint8_t *dst, size_t dstride);

/* 1 where this CPU runs the AVX2 kernels (and they are compiled in), else 0. */
int ldm_rs_have_avx2(void);

#endif
