/* attention_mma.cuh — warp-level tensor-core pieces of the attention kernels
 * (included by nn/cuda/attention.cu only).
 *
 * Every matrix product of the attention kernels is a run of PTX
 * mma.sync.m16n8k16 (bf16 or f16 operands, f32 accumulators) whose
 * operands come from shared-memory tiles through ldmatrix, or, for the
 * left operand, straight from the accumulators of the previous product
 * (the C layout of m16n8 equals the A layout of m16k16 two n-tiles at a
 * time, as in FlashAttention-2). Fragment layouts (PTX ISA, "matrix
 * fragments for mma.m16n8k16"), with g = lane/4 and t = lane%4:
 *   A (16×16): a[0] rows g, k 2t..2t+1;  a[1] row g+8;  a[2] row g, k+8;
 *              a[3] row g+8, k+8 (two 16-bit values per register, low first)
 *   B (16×8):  b[0] k 2t..2t+1, column g;  b[1] k+8
 *   C (16×8):  c[0..1] row g, columns 2t, 2t+1;  c[2..3] row g+8
 *
 * Shared tiles are row-major with a row stride of LD = DK + 8 elements (DK
 * a multiple of 16), so the 8 rows an ldmatrix reads fall in 8 distinct
 * 16-byte bank groups. Tiles are filled by cp.async (16 bytes a thread),
 * zero past the valid rows and past the head's columns.
 */
#ifndef LDM_NN_CUDA_ATTENTION_MMA_CUH
#define LDM_NN_CUDA_ATTENTION_MMA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

static __device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* ---- asynchronous copies ------------------------------------------------------------- */

/* 16 bytes global -> shared; zeros when !valid (nothing is read then). */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Wait until at most N of this thread's groups are still in flight. */
template <int N> static __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Rows r0 .. r0+R-1 (those < rows) of a head's D columns at g (row stride
 * ld elements) into the shared tile s [R][LD], columns D..DK-1 and rows
 * past `rows` zero. D is a multiple of 8, g and ld·sizeof(T) 16-byte aligned. */
template <typename T, int R, int D, int DK, int LD>
static __device__ __forceinline__ void tile_load(T *s, const T *g, int64_t ld, int r0, int rows,
                                                 int tid, int nthreads)
{
    constexpr int CH = DK / 8; /* 16-byte chunks per row */
    for (int i = tid; i < R * CH; i += nthreads) {
        int r = i / CH, c = i % CH;
        bool ok = r0 + r < rows && c * 8 < D;
        const T *src = ok ? g + (int64_t)(r0 + r) * ld + c * 8 : g;
        cp_async16(s + r * LD + c * 8, src, ok);
    }
}

/* ---- ldmatrix ---------------------------------------------------------------------------- */

static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

static __device__ __forceinline__ void ldsm_x2_t(uint32_t r[2], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_u32(p)));
}

/* A fragment of rows m0..m0+15, columns k0..k0+15 of a row-major tile. */
template <int LD, typename T>
static __device__ __forceinline__ void frag_a(uint32_t a[4], const T *s, int m0, int k0, int lane)
{
    int mi = lane >> 3;
    ldsm_x4(a, s + (m0 + (lane & 7) + ((mi & 1) << 3)) * LD + k0 + ((mi >> 1) << 3));
}

/* B fragments of the n-tiles n0 and n0+8 (b[0..1], b[2..3]), k0..k0+15,
 * from a tile stored [n][k] (B is the tile transposed: keys as columns). */
template <int LD, typename T>
static __device__ __forceinline__ void frag_b_nk(uint32_t b[4], const T *s, int n0, int k0,
                                                 int lane)
{
    int mi = lane >> 3;
    ldsm_x4(b, s + (n0 + (lane & 7) + ((mi >> 1) << 3)) * LD + k0 + ((mi & 1) << 3));
}

/* The same from a tile stored [k][n] (B is the tile itself). */
template <int LD, typename T>
static __device__ __forceinline__ void frag_b_kn(uint32_t b[4], const T *s, int k0, int n0,
                                                 int lane)
{
    int mi = lane >> 3;
    ldsm_x4_t(b, s + (k0 + (lane & 7) + ((mi & 1) << 3)) * LD + n0 + ((mi >> 1) << 3));
}

/* One n-tile n0 of a tile stored [k][n]. */
template <int LD, typename T>
static __device__ __forceinline__ void frag_b_kn1(uint32_t b[2], const T *s, int k0, int n0,
                                                  int lane)
{
    ldsm_x2_t(b, s + (k0 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LD + n0);
}

/* ---- mma and packing --------------------------------------------------------------------- */

template <typename T> struct mma_t;

template <> struct mma_t<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
    static __device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <> struct mma_t<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
    static __device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

/* The A fragment (16 rows × k16) made of accumulator n-tiles 2kc, 2kc+1. */
template <typename T>
static __device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c0[4],
                                                const float c1[4])
{
    a[0] = mma_t<T>::pack(c0[0], c0[1]);
    a[1] = mma_t<T>::pack(c0[2], c0[3]);
    a[2] = mma_t<T>::pack(c1[0], c1[1]);
    a[3] = mma_t<T>::pack(c1[2], c1[3]);
}

/* B fragments are fetched in groups of up to MMA_GROUP n-tile pairs
 * before the products that use them, so that several ldmatrix are in
 * flight at once instead of each product waiting on its own load. */
#define MMA_GROUP 4

/* C (16·MT × 8·NB) += A · B: A the rows m0 .. m0+16·MT-1 of the row-major
 * tile sa (columns 0 .. 16·KS-1), B the tile sb stored [n][k] (rows n =
 * 0 .. 8·NB-1, NB even). Each B fragment serves MT m-tiles. */
template <typename T, int LD, int MT, int KS, int NB>
static __device__ __forceinline__ void warp_gemm_nk(float c[MT][NB][4], const T *sa, int m0,
                                                    const T *sb, int lane)
{
    constexpr int NPAIR = NB / 2, G = NPAIR < MMA_GROUP ? NPAIR : MMA_GROUP;
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            frag_a<LD>(a[mt], sa, m0 + mt * 16, kk * 16, lane);
#pragma unroll
        for (int np0 = 0; np0 < NPAIR; np0 += G) {
            uint32_t b[G][4];
#pragma unroll
            for (int g = 0; g < G; g++)
                if (np0 + g < NPAIR)
                    frag_b_nk<LD>(b[g], sb, (np0 + g) * 16, kk * 16, lane);
#pragma unroll
            for (int g = 0; g < G; g++)
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    if (np0 + g < NPAIR) {
                        mma_t<T>::mma(c[mt][2 * (np0 + g)], a[mt], b[g][0], b[g][1]);
                        mma_t<T>::mma(c[mt][2 * (np0 + g) + 1], a[mt], b[g][2], b[g][3]);
                    }
        }
    }
}

/* C (16·MT × 8·NO) += A · B: A the accumulators p (16·MT × 8·NP, NP even)
 * rounded to T, B the tile sb stored [k][n] (rows k = 0 .. 8·NP-1,
 * columns n = 0 .. 8·NO-1). */
template <typename T, int LD, int MT, int NP, int NO>
static __device__ __forceinline__ void warp_gemm_acc_kn(float c[MT][NO][4],
                                                        const float p[MT][NP][4], const T *sb,
                                                        int lane)
{
    constexpr int NPAIR = NO / 2, G = NPAIR < MMA_GROUP ? NPAIR : MMA_GROUP;
#pragma unroll
    for (int kc = 0; kc < NP / 2; kc++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            acc_to_a<T>(a[mt], p[mt][2 * kc], p[mt][2 * kc + 1]);
#pragma unroll
        for (int np0 = 0; np0 < NPAIR; np0 += G) {
            uint32_t b[G][4];
#pragma unroll
            for (int g = 0; g < G; g++)
                if (np0 + g < NPAIR)
                    frag_b_kn<LD>(b[g], sb, kc * 16, (np0 + g) * 16, lane);
#pragma unroll
            for (int g = 0; g < G; g++)
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    if (np0 + g < NPAIR) {
                        mma_t<T>::mma(c[mt][2 * (np0 + g)], a[mt], b[g][0], b[g][1]);
                        mma_t<T>::mma(c[mt][2 * (np0 + g) + 1], a[mt], b[g][2], b[g][3]);
                    }
        }
        if constexpr (NO % 2 != 0) {
            uint32_t b[2];
            frag_b_kn1<LD>(b, sb, kc * 16, (NO - 1) * 8, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                mma_t<T>::mma(c[mt][NO - 1], a[mt], b[0], b[1]);
        }
    }
}

#endif
