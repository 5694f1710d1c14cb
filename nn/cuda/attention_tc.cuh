/* attention_tc.cuh — tensor-core attention kernels for BF16/F16 with
 * Dh = Dv = D a multiple of 8 (included by nn/cuda/attention.cu only).
 *
 * 128 threads (4 warps) a block; every warp owns 16·MT rows of the block's
 * tile and all matrix products are warp-level m16n8k16 (attention_mma.cuh).
 *
 * Forward (FlashAttention-2): a block takes BQ = 64·MT queries of one
 * (sample, head) and walks the key blocks of BK = 64 (double-buffered
 * with cp.async): S = Q·Kᵀ, masked, the online softmax (scale·log2 e
 * folded into its exp2) rescales O and l, then O += P·V with P taken from
 * the score accumulators. Causal blocks stop at their last query; blocks are
 * issued last-first so the longest causal ones start early.
 *
 * Backward, deterministic (no atomics; the sums run in a fixed order):
 *  - dk/dv: a block owns BKB = 64·MT keys (16·MT a warp) and walks the
 *    query blocks; per block it recomputes Sᵀ = K·Qᵀ, Pᵀ = 2^(Sᵀ − lse),
 *    then dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ ⊙ (dPᵀ − D), dK += dSᵀ·Q.
 *  - dq: a block owns 64·MT queries and walks the key blocks: S, P,
 *    dP = dO·Vᵀ, dS, dQ += dS·K.
 *  The scores are computed twice (once per kernel): 7 products instead of
 *  FlashAttention-2's 5, the price of owning every gradient row in one
 *  block instead of adding dQ with atomics.
 * Both add scale·dK, dV and scale·dQ into the gradients (rounded once to T).
 */
#ifndef LDM_NN_CUDA_ATTENTION_TC_CUH
#define LDM_NN_CUDA_ATTENTION_TC_CUH

#include <math.h>

#include "nn/cuda/attention_common.cuh"
#include "nn/cuda/attention_mma.cuh"

#define TC_THREADS 128

/* Sizes shared by the kernels for a head width D: DK = D rounded up to the
 * mma's k of 16, LD the shared row stride, NO the output n-tiles. */
template <int D> struct tc_dims {
    static constexpr int DK = (D + 15) / 16 * 16, LD = DK + 8, KS = DK / 16, NO = D / 8;
};

template <typename T> static __device__ __forceinline__ void tc_store2(T *p, float a, float b)
{
    *reinterpret_cast<uint32_t *>(p) = mma_t<T>::pack(a, b);
}

template <typename T> static __device__ __forceinline__ void tc_add2(T *p, float a, float b)
{
    tc_store2<T>(p, attn_ld<T>(p) + a, attn_ld<T>(p + 1) + b);
}

/* Keys j0 .. j0+BK-1 of K and V into their tiles, and their visibility. */
template <typename T, int D, int BK>
static __device__ __forceinline__ void kv_load(const attn_params &p, T *sK, T *sV, uint8_t *vis,
                                               const T *K, const T *V, int64_t ld, int n, int j0,
                                               int tid)
{
    using C = tc_dims<D>;
    tile_load<T, BK, D, C::DK, C::LD>(sK, K, ld, j0, p.Lk, tid, TC_THREADS);
    tile_load<T, BK, D, C::DK, C::LD>(sV, V, ld, j0, p.Lk, tid, TC_THREADS);
    for (int j = tid; j < BK; j += TC_THREADS)
        vis[j] = key_visible(p, n, j0 + j);
}

/* ---- forward ------------------------------------------------------------------------------ */

template <typename T, int D, int MT> struct fwd_cfg : tc_dims<D> {
    static constexpr int BQ = 64 * MT, BK = 64, NB = BK / 8;
    static constexpr size_t smem =
        (size_t)(BQ + 4 * BK) * tc_dims<D>::LD * sizeof(T) + 2 * BK;
};

/* Scores as the softmax takes them: raw when scale > 0 (fwd_softmax folds
 * scale·log2 e into its exponent), else already in the log2 domain; −inf
 * where row (row0 + ...) may not see the key. */
template <int MT, int NB>
static __device__ __forceinline__ void fwd_scale_mask(float s[MT][NB][4], const attn_params &p,
                                                      const uint8_t *vis, int row0, int j0,
                                                      int lane)
{
    bool need = p.mask || j0 + NB * 8 > p.Lk || (p.causal && j0 + NB * 8 - 1 > row0);
    bool pre = p.scale_log2 < 0.0f;
    if (!need && !pre)
        return;
    int g = lane >> 2, t2 = (lane & 3) * 2;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NB; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = pre ? s[mt][nt][e] * p.scale_log2 : s[mt][nt][e];
                if (need) {
                    int jl = nt * 8 + t2 + (e & 1), row = row0 + mt * 16 + g + (e >> 1) * 8;
                    if (!vis[jl] || (p.causal && j0 + jl > row))
                        x = -INFINITY;
                }
                s[mt][nt][e] = x;
            }
}

/* Online softmax step with scores c·s (c > 0, log2 domain): s becomes
 * 2^(c·s − m_new); l and o are rescaled. A thread holds rows g and g+8 of
 * each m-tile; a row's 4 threads agree on m. */
template <int MT, int NB, int NO>
static __device__ __forceinline__ void fwd_softmax(float s[MT][NB][4], float m[MT][2],
                                                   float l[MT][2], float o[MT][NO][4], float c)
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            float mx = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < NB; nt++)
                mx = fmaxf(mx, fmaxf(s[mt][nt][2 * hi], s[mt][nt][2 * hi + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mnew = fmaxf(m[mt][hi], mx * c);
            float muse = mnew == -INFINITY ? 0.0f : mnew; /* nothing visible yet */
            float alpha = fast_exp2(m[mt][hi] - muse);
            m[mt][hi] = mnew;
            float rs = 0.0f;
#pragma unroll
            for (int nt = 0; nt < NB; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float v = fast_exp2(fmaf(s[mt][nt][2 * hi + e], c, -muse));
                    s[mt][nt][2 * hi + e] = v;
                    rs += v;
                }
            l[mt][hi] = l[mt][hi] * alpha + rs;
#pragma unroll
            for (int nt = 0; nt < NO; nt++) {
                o[mt][nt][2 * hi] *= alpha;
                o[mt][nt][2 * hi + 1] *= alpha;
            }
        }
}

/* out = o / l and lse for the warp's rows row0 .. (0 and −inf where l = 0). */
template <typename T, int D, int MT>
static __device__ __forceinline__ void fwd_store(const attn_params &p, float o[MT][D / 8][4],
                                                 const float m[MT][2], const float l[MT][2],
                                                 int n, int h, int row0, int lane)
{
    int g = lane >> 2, t2 = (lane & 3) * 2;
    int64_t ld = (int64_t)p.H * D;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            float lt = l[mt][hi];
            lt += __shfl_xor_sync(0xffffffffu, lt, 1);
            lt += __shfl_xor_sync(0xffffffffu, lt, 2);
            int row = row0 + mt * 16 + g + hi * 8;
            if (row < p.Lq) {
                float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
                T *orow = (T *)p.out + ((int64_t)n * p.Lq + row) * ld + (int64_t)h * D;
#pragma unroll
                for (int nt = 0; nt < D / 8; nt++)
                    tc_store2<T>(orow + nt * 8 + t2, o[mt][nt][2 * hi] * inv,
                                 o[mt][nt][2 * hi + 1] * inv);
                if ((lane & 3) == 0)
                    p.lse[((int64_t)n * p.H + h) * p.Lq + row] =
                        lt > 0.0f ? (m[mt][hi] + log2f(lt)) * ATTN_LN2 : -INFINITY;
            }
        }
}

/* grid (ceil(Lq / BQ), H, N), TC_THREADS threads, fwd_cfg::smem bytes. */
template <typename T, int D, int MT>
__global__ void __launch_bounds__(TC_THREADS) attn_fwd_tc(attn_params p)
{
    using C = fwd_cfg<T, D, MT>;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = (T *)smem, *sK = sQ + C::BQ * C::LD, *sV = sK + 2 * C::BK * C::LD;
    uint8_t *sVis = (uint8_t *)(sV + 2 * C::BK * C::LD);
    int tid = threadIdx.x, lane = tid & 31, h = blockIdx.y, n = blockIdx.z;
    int i0 = (gridDim.x - 1 - blockIdx.x) * C::BQ, m0 = (tid >> 5) * 16 * MT;
    int64_t ld = (int64_t)p.H * D;
    const T *Q = (const T *)p.q + (int64_t)n * p.Lq * ld + (int64_t)h * D;
    const T *K = (const T *)p.k + (int64_t)n * p.Lk * ld + (int64_t)h * D;
    const T *V = (const T *)p.v + (int64_t)n * p.Lk * ld + (int64_t)h * D;
    int kend = p.causal ? min(p.Lk, i0 + C::BQ) : p.Lk;
    int nkb = (kend + C::BK - 1) / C::BK;
    tile_load<T, C::BQ, D, C::DK, C::LD>(sQ, Q, ld, i0, p.Lq, tid, TC_THREADS);
    if (nkb > 0)
        kv_load<T, D, C::BK>(p, sK, sV, sVis, K, V, ld, n, 0, tid);
    cp_async_commit();
    float o[MT][C::NO][4] = {}, m[MT][2], l[MT][2];
    float cexp = p.scale_log2 < 0.0f ? 1.0f : p.scale_log2; /* see fwd_scale_mask */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
    for (int kb = 0; kb < nkb; kb++) {
        int buf = kb & 1, j0 = kb * C::BK;
        if (kb + 1 < nkb)
            kv_load<T, D, C::BK>(p, sK + (buf ^ 1) * C::BK * C::LD, sV + (buf ^ 1) * C::BK * C::LD,
                                 sVis + (buf ^ 1) * C::BK, K, V, ld, n, j0 + C::BK, tid);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        float s[MT][C::NB][4] = {};
        warp_gemm_nk<T, C::LD, MT, C::KS, C::NB>(s, sQ, m0, sK + buf * C::BK * C::LD, lane);
        fwd_scale_mask<MT, C::NB>(s, p, sVis + buf * C::BK, i0 + m0, j0, lane);
        fwd_softmax<MT, C::NB, C::NO>(s, m, l, o, cexp);
        warp_gemm_acc_kn<T, C::LD, MT, C::NB, C::NO>(o, s, sV + buf * C::BK * C::LD, lane);
        __syncthreads();
    }
    cp_async_wait<0>(); /* without keys (Lk = 0) the Q tile is still in flight */
    fwd_store<T, D, MT>(p, o, m, l, n, h, i0 + m0, lane);
}

/* ---- backward ------------------------------------------------------------------------------ */

/* Queries i0 .. i0+BQ-1: Q and dO tiles, lse in the log2 domain (+inf for
 * rows past Lq or seeing no key, so that their P is 0) and D. */
template <typename T, int D, int BQ>
static __device__ __forceinline__ void q_load(const attn_params &p, T *sQ, T *sO, float *sL,
                                              float *sD, const T *Q, const T *dO, int64_t ld,
                                              int n, int h, int i0, int tid)
{
    using C = tc_dims<D>;
    tile_load<T, BQ, D, C::DK, C::LD>(sQ, Q, ld, i0, p.Lq, tid, TC_THREADS);
    tile_load<T, BQ, D, C::DK, C::LD>(sO, dO, ld, i0, p.Lq, tid, TC_THREADS);
    for (int r = tid; r < BQ; r += TC_THREADS) {
        int64_t at = ((int64_t)n * p.H + h) * p.Lq + i0 + r;
        float lse = i0 + r < p.Lq ? p.lse_in[at] : -INFINITY;
        sL[r] = lse == -INFINITY ? INFINITY : lse * ATTN_LOG2E;
        sD[r] = i0 + r < p.Lq ? p.dsum[at] : 0.0f;
    }
}

template <typename T, int D, int MT, int BQB> struct dkdv_cfg : tc_dims<D> {
    static constexpr int BKB = 64 * MT, NQ = BQB / 8;
    static constexpr size_t smem =
        (size_t)(2 * BKB + 4 * BQB) * tc_dims<D>::LD * sizeof(T) + 4 * BQB * sizeof(float);
};

/* Pᵀ = 2^(Sᵀ·c − lse) for the warp's keys kr[mt][0..1] (rows g, g+8 of
 * m-tile mt) against queries i0 ..; 0 where the key is hidden from the query. */
template <int MT, int NQ>
static __device__ __forceinline__ void probs_t(float st[MT][NQ][4], const attn_params &p,
                                               const float *sL, const int kr[MT][2],
                                               const bool kv[MT][2], int i0, int lane)
{
    int t2 = (lane & 3) * 2;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NQ; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int ql = nt * 8 + t2 + (e & 1), hi = e >> 1;
                float x = fast_exp2(st[mt][nt][e] * p.scale_log2 - sL[ql]);
                if (!kv[mt][hi] || (p.causal && kr[mt][hi] > i0 + ql))
                    x = 0.0f;
                st[mt][nt][e] = x;
            }
}

/* dk += scale·acc, dv += acc for the warp's key rows kr. */
template <typename T, int D, int MT>
static __device__ __forceinline__ void dkdv_store(const attn_params &p, float dk[MT][D / 8][4],
                                                  float dv[MT][D / 8][4], const int kr[MT][2],
                                                  int n, int h, int lane)
{
    int t2 = (lane & 3) * 2;
    int64_t ld = (int64_t)p.H * D;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            if (kr[mt][hi] >= p.Lk)
                continue;
            int64_t off = ((int64_t)n * p.Lk + kr[mt][hi]) * ld + (int64_t)h * D + t2;
#pragma unroll
            for (int nt = 0; nt < D / 8; nt++) {
                if (p.dk)
                    tc_add2<T>((T *)p.dk + off + nt * 8, dk[mt][nt][2 * hi] * p.scale,
                               dk[mt][nt][2 * hi + 1] * p.scale);
                if (p.dv)
                    tc_add2<T>((T *)p.dv + off + nt * 8, dv[mt][nt][2 * hi],
                               dv[mt][nt][2 * hi + 1]);
            }
        }
}

/* grid (ceil(Lk / (64·MT)), H, N), TC_THREADS threads, dkdv_cfg::smem bytes. */
template <typename T, int D, int MT, int BQB>
__global__ void __launch_bounds__(TC_THREADS) attn_bwd_dkdv_tc(attn_params p)
{
    using C = dkdv_cfg<T, D, MT, BQB>;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sK = (T *)smem, *sV = sK + C::BKB * C::LD, *sQ = sV + C::BKB * C::LD;
    T *sO = sQ + 2 * BQB * C::LD;
    float *sL = (float *)(sO + 2 * BQB * C::LD), *sD = sL + 2 * BQB;
    int tid = threadIdx.x, lane = tid & 31, h = blockIdx.y, n = blockIdx.z;
    int j0 = blockIdx.x * C::BKB, qstart = p.causal ? j0 / BQB * BQB : 0;
    int nqb = p.Lq > qstart ? (p.Lq - qstart + BQB - 1) / BQB : 0;
    if (nqb == 0)
        return;
    int64_t ld = (int64_t)p.H * D, kbase = (int64_t)n * p.Lk * ld + (int64_t)h * D;
    int64_t qbase = (int64_t)n * p.Lq * ld + (int64_t)h * D;
    const T *Q = (const T *)p.q + qbase, *dO = (const T *)p.dout + qbase;
    const T *K = (const T *)p.k + kbase, *V = (const T *)p.v + kbase;
    tile_load<T, C::BKB, D, C::DK, C::LD>(sK, K, ld, j0, p.Lk, tid, TC_THREADS);
    tile_load<T, C::BKB, D, C::DK, C::LD>(sV, V, ld, j0, p.Lk, tid, TC_THREADS);
    q_load<T, D, BQB>(p, sQ, sO, sL, sD, Q, dO, ld, n, h, qstart, tid);
    cp_async_commit();
    int k0 = (tid >> 5) * 16 * MT, kr[MT][2];
    bool kv[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            kr[mt][hi] = j0 + k0 + mt * 16 + (lane >> 2) + hi * 8;
            kv[mt][hi] = key_visible(p, n, kr[mt][hi]);
        }
    float dk[MT][C::NO][4] = {}, dv[MT][C::NO][4] = {};
    for (int it = 0; it < nqb; it++) {
        int buf = it & 1, i0 = qstart + it * BQB;
        if (it + 1 < nqb)
            q_load<T, D, BQB>(p, sQ + (buf ^ 1) * BQB * C::LD, sO + (buf ^ 1) * BQB * C::LD,
                              sL + (buf ^ 1) * BQB, sD + (buf ^ 1) * BQB, Q, dO, ld, n, h,
                              i0 + BQB, tid);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const T *qs = sQ + buf * BQB * C::LD, *os = sO + buf * BQB * C::LD;
        const float *ds = sD + buf * BQB;
        float st[MT][C::NQ][4] = {}, dp[MT][C::NQ][4] = {};
        warp_gemm_nk<T, C::LD, MT, C::KS, C::NQ>(st, sK, k0, qs, lane);
        probs_t<MT, C::NQ>(st, p, sL + buf * BQB, kr, kv, i0, lane);
        warp_gemm_acc_kn<T, C::LD, MT, C::NQ, C::NO>(dv, st, os, lane);
        warp_gemm_nk<T, C::LD, MT, C::KS, C::NQ>(dp, sV, k0, os, lane);
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < C::NQ; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    dp[mt][nt][e] = st[mt][nt][e] *
                                    (dp[mt][nt][e] - ds[nt * 8 + (lane & 3) * 2 + (e & 1)]);
        warp_gemm_acc_kn<T, C::LD, MT, C::NQ, C::NO>(dk, dp, qs, lane);
        __syncthreads();
    }
    dkdv_store<T, D, MT>(p, dk, dv, kr, n, h, lane);
}

template <typename T, int D, int MT, int BKB> struct dq_cfg : tc_dims<D> {
    static constexpr int BQ = 64 * MT, NK = BKB / 8;
    static constexpr size_t smem =
        (size_t)(2 * BQ + 4 * BKB) * tc_dims<D>::LD * sizeof(T) + 2 * BKB;
};

/* dS = P ⊙ (dP − D) with P = 2^(S·c − lse) for the warp's rows r[mt][0..1]
 * against keys j0 .. (hidden keys: 0); written over dp. */
template <int MT, int NK>
static __device__ __forceinline__ void dscores(float s[MT][NK][4], float dp[MT][NK][4],
                                               const attn_params &p, const uint8_t *vis,
                                               const int r[MT][2], const float lse2[MT][2],
                                               const float dr[MT][2], int j0, bool need, int lane)
{
    int t2 = (lane & 3) * 2;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NK; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int jl = nt * 8 + t2 + (e & 1), hi = e >> 1;
                float x = fast_exp2(s[mt][nt][e] * p.scale_log2 - lse2[mt][hi]);
                if (need && (!vis[jl] || (p.causal && j0 + jl > r[mt][hi])))
                    x = 0.0f;
                dp[mt][nt][e] = x * (dp[mt][nt][e] - dr[mt][hi]);
            }
}

/* dq += scale·acc for the warp's rows r. */
template <typename T, int D, int MT>
static __device__ __forceinline__ void dq_store(const attn_params &p, float dq[MT][D / 8][4],
                                                const int r[MT][2], int n, int h, int lane)
{
    int t2 = (lane & 3) * 2;
    int64_t ld = (int64_t)p.H * D;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            if (r[mt][hi] >= p.Lq)
                continue;
            T *row = (T *)p.dq + ((int64_t)n * p.Lq + r[mt][hi]) * ld + (int64_t)h * D + t2;
#pragma unroll
            for (int nt = 0; nt < D / 8; nt++)
                tc_add2<T>(row + nt * 8, dq[mt][nt][2 * hi] * p.scale,
                           dq[mt][nt][2 * hi + 1] * p.scale);
        }
}

/* lse (log2 domain, +inf where P must be 0) and D of the warp's rows r. */
template <int MT>
static __device__ __forceinline__ void row_stats(const attn_params &p, const int r[MT][2], int n,
                                                 int h, float lse2[MT][2], float dr[MT][2])
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            int64_t at = ((int64_t)n * p.H + h) * p.Lq + r[mt][hi];
            float lse = r[mt][hi] < p.Lq ? p.lse_in[at] : -INFINITY;
            lse2[mt][hi] = lse == -INFINITY ? INFINITY : lse * ATTN_LOG2E;
            dr[mt][hi] = r[mt][hi] < p.Lq ? p.dsum[at] : 0.0f;
        }
}

/* grid (ceil(Lq / (64·MT)), H, N), TC_THREADS threads, dq_cfg::smem bytes. */
template <typename T, int D, int MT, int BKB>
__global__ void __launch_bounds__(TC_THREADS) attn_bwd_dq_tc(attn_params p)
{
    using C = dq_cfg<T, D, MT, BKB>;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = (T *)smem, *sO = sQ + C::BQ * C::LD, *sK = sO + C::BQ * C::LD;
    T *sV = sK + 2 * BKB * C::LD;
    uint8_t *sVis = (uint8_t *)(sV + 2 * BKB * C::LD);
    int tid = threadIdx.x, lane = tid & 31, h = blockIdx.y, n = blockIdx.z;
    int i0 = (gridDim.x - 1 - blockIdx.x) * C::BQ, m0 = (tid >> 5) * 16 * MT;
    int kend = p.causal ? min(p.Lk, i0 + C::BQ) : p.Lk, nkb = (kend + BKB - 1) / BKB;
    if (nkb == 0)
        return;
    int64_t ld = (int64_t)p.H * D, kbase = (int64_t)n * p.Lk * ld + (int64_t)h * D;
    int64_t qbase = (int64_t)n * p.Lq * ld + (int64_t)h * D;
    const T *K = (const T *)p.k + kbase, *V = (const T *)p.v + kbase;
    tile_load<T, C::BQ, D, C::DK, C::LD>(sQ, (const T *)p.q + qbase, ld, i0, p.Lq, tid, TC_THREADS);
    tile_load<T, C::BQ, D, C::DK, C::LD>(sO, (const T *)p.dout + qbase, ld, i0, p.Lq, tid,
                                         TC_THREADS);
    kv_load<T, D, BKB>(p, sK, sV, sVis, K, V, ld, n, 0, tid);
    cp_async_commit();
    int r[MT][2];
    float lse2[MT][2], dr[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        r[mt][0] = i0 + m0 + mt * 16 + (lane >> 2), r[mt][1] = r[mt][0] + 8;
    row_stats<MT>(p, r, n, h, lse2, dr);
    float dq[MT][C::NO][4] = {};
    for (int kb = 0; kb < nkb; kb++) {
        int buf = kb & 1, j0 = kb * BKB;
        if (kb + 1 < nkb)
            kv_load<T, D, BKB>(p, sK + (buf ^ 1) * BKB * C::LD, sV + (buf ^ 1) * BKB * C::LD,
                               sVis + (buf ^ 1) * BKB, K, V, ld, n, j0 + BKB, tid);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const T *ks = sK + buf * BKB * C::LD;
        bool need = p.mask || j0 + BKB > p.Lk || (p.causal && j0 + BKB - 1 > i0 + m0);
        float s[MT][C::NK][4] = {}, dp[MT][C::NK][4] = {};
        warp_gemm_nk<T, C::LD, MT, C::KS, C::NK>(s, sQ, m0, ks, lane);
        warp_gemm_nk<T, C::LD, MT, C::KS, C::NK>(dp, sO, m0, sV + buf * BKB * C::LD, lane);
        dscores<MT, C::NK>(s, dp, p, sVis + buf * BKB, r, lse2, dr, j0, need, lane);
        warp_gemm_acc_kn<T, C::LD, MT, C::NK, C::NO>(dq, dp, ks, lane);
        __syncthreads();
    }
    dq_store<T, D, MT>(p, dq, r, n, h, lane);
}

#endif
