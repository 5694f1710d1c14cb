/* attention.cu — scaled dot-product attention on the CUDA backend: the
 * attn_fwd / attn_bwd entries and their workspace (nn/backend.h).
 *
 * Two families of kernels, picked per call:
 *  - tensor cores (attention_tc.cuh) for BF16 and F16 when Dh = Dv is one
 *    of the widths the UNets use (40, 64, 80, 128, 160) and every tensor
 *    starts on a 16-byte boundary: FlashAttention-2 forward, and a
 *    deterministic two-kernel backward (dk/dv by key blocks, dq by query
 *    blocks, no atomics);
 *  - plain F32 FMA (attention_fma.cuh) for F32 and every other width up
 *    to 256, with the same algorithms on 16×16 tiles.
 * Both compute scores, softmax and every sum in F32; the operands of the
 * tensor-core products are the op's dtype (P and dS rounded to it).
 *
 * The backward needs D_i = Σ dout_i·out_i (N·H·Lq floats) in the
 * workspace; the forward needs none. Every kernel runs on the context's
 * stream (ldm_cuda_stream).
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "nn/cuda/cuda_int.h"
#include "nn/cuda/attention_fma.cuh"
#include "nn/cuda/attention_tc.cuh"

static const char OP_FWD[] = "attention forward";
static const char OP_BWD[] = "attention backward";

/* Allow `bytes` of dynamic shared memory for kern (above the default 48 KiB). */
template <typename K> static int smem_allow(K kern, size_t bytes, const char *op)
{
    if (bytes > 48 * 1024)
        CU_TRY(op, cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)bytes));
    return 0;
}

/* ---- tensor-core launches ------------------------------------------------------------------- */

template <typename T, int D> static int tc_fwd(const attn_params &p, cudaStream_t st)
{
    constexpr int MT = D <= 80 ? 2 : 1; /* 16·MT query rows a warp */
    using C = fwd_cfg<T, D, MT>;
    int rc = smem_allow(attn_fwd_tc<T, D, MT>, C::smem, OP_FWD);
    if (rc)
        return rc;
    dim3 grid((p.Lq + C::BQ - 1) / C::BQ, p.H, p.N);
    attn_fwd_tc<T, D, MT><<<grid, TC_THREADS, C::smem, st>>>(p);
    CU_LAUNCHED(OP_FWD, "attn_fwd_tc");
    return 0;
}

template <typename T, int D, int MT, int BQB>
static int tc_dkdv(const attn_params &p, cudaStream_t st)
{
    using C = dkdv_cfg<T, D, MT, BQB>;
    int rc = smem_allow(attn_bwd_dkdv_tc<T, D, MT, BQB>, C::smem, OP_BWD);
    if (rc)
        return rc;
    dim3 grid((p.Lk + C::BKB - 1) / C::BKB, p.H, p.N);
    attn_bwd_dkdv_tc<T, D, MT, BQB><<<grid, TC_THREADS, C::smem, st>>>(p);
    CU_LAUNCHED(OP_BWD, "attn_bwd_dkdv_tc");
    return 0;
}

template <typename T, int D, int MT, int BKB>
static int tc_dq(const attn_params &p, cudaStream_t st)
{
    using C = dq_cfg<T, D, MT, BKB>;
    int rc = smem_allow(attn_bwd_dq_tc<T, D, MT, BKB>, C::smem, OP_BWD);
    if (rc)
        return rc;
    dim3 grid((p.Lq + C::BQ - 1) / C::BQ, p.H, p.N);
    attn_bwd_dq_tc<T, D, MT, BKB><<<grid, TC_THREADS, C::smem, st>>>(p);
    CU_LAUNCHED(OP_BWD, "attn_bwd_dq_tc");
    return 0;
}

/* Backward blocking: 16 rows a warp (MT = 1), stepping over 64 (D <= 80)
 * or 32 rows of the other side. (32 rows a warp for heads up to 64 wide,
 * MT = 2, passed the same tests and measured no faster on an H100.) */
template <typename T, int D> static int tc_bwd(const attn_params &p, cudaStream_t st)
{
    constexpr int B = D <= 80 ? 64 : 32;
    int rc = 0;
    if (p.dk || p.dv)
        rc = tc_dkdv<T, D, 1, B>(p, st);
    if (!rc && p.dq)
        rc = tc_dq<T, D, 1, B>(p, st);
    return rc;
}

/* The head widths with tensor-core kernels. */
static bool tc_width(int64_t D)
{
    return D == 40 || D == 64 || D == 80 || D == 128 || D == 160;
}

template <typename T>
static int tc_run(int D, bool backward, const attn_params &p, cudaStream_t st)
{
    switch (D) {
    case 40:
        return backward ? tc_bwd<T, 40>(p, st) : tc_fwd<T, 40>(p, st);
    case 64:
        return backward ? tc_bwd<T, 64>(p, st) : tc_fwd<T, 64>(p, st);
    case 80:
        return backward ? tc_bwd<T, 80>(p, st) : tc_fwd<T, 80>(p, st);
    case 128:
        return backward ? tc_bwd<T, 128>(p, st) : tc_fwd<T, 128>(p, st);
    default:
        return backward ? tc_bwd<T, 160>(p, st) : tc_fwd<T, 160>(p, st);
    }
}

/* ---- FMA launches --------------------------------------------------------------------------- */

template <typename T> static int fma_fwd(const attn_params &p, cudaStream_t st)
{
    size_t smem = (size_t)fma_fwd_floats(p.Dh, p.Dv) * sizeof(float);
    int rc = smem_allow(attn_fwd_fma<T>, smem, OP_FWD);
    if (rc)
        return rc;
    dim3 grid((p.Lq + FMA_T - 1) / FMA_T, p.H, p.N);
    attn_fwd_fma<T><<<grid, FMA_THREADS, smem, st>>>(p);
    CU_LAUNCHED(OP_FWD, "attn_fwd_fma");
    return 0;
}

template <typename T> static int fma_bwd(const attn_params &p, cudaStream_t st)
{
    size_t smem = (size_t)fma_bwd_floats(p.Dh, p.Dv) * sizeof(float);
    if (p.dk || p.dv) {
        int rc = smem_allow(attn_bwd_dkdv_fma<T>, smem, OP_BWD);
        if (rc)
            return rc;
        dim3 grid((p.Lk + FMA_T - 1) / FMA_T, p.H, p.N);
        attn_bwd_dkdv_fma<T><<<grid, FMA_THREADS, smem, st>>>(p);
        CU_LAUNCHED(OP_BWD, "attn_bwd_dkdv_fma");
    }
    if (p.dq) {
        int rc = smem_allow(attn_bwd_dq_fma<T>, smem, OP_BWD);
        if (rc)
            return rc;
        dim3 grid((p.Lq + FMA_T - 1) / FMA_T, p.H, p.N);
        attn_bwd_dq_fma<T><<<grid, FMA_THREADS, smem, st>>>(p);
        CU_LAUNCHED(OP_BWD, "attn_bwd_dq_fma");
    }
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

/* Sizes the kernels take: heads up to FMA_MAXD wide, H and N within a grid. */
static int check_dims(const struct ldm_attn_dims *d, const char *op)
{
    if (d->dtype != LDM_DT_F32 && d->dtype != LDM_DT_BF16 && d->dtype != LDM_DT_F16)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: dtype %d: the CUDA backend computes F32, BF16, F16",
                        op, d->dtype);
    if (d->Dh > FMA_MAXD || d->Dv > FMA_MAXD)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: heads %lld (q, k) and %lld (v) wide: at most %d",
                        op, (long long)d->Dh, (long long)d->Dv, FMA_MAXD);
    if (d->H > 65535 || d->N > 65535)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: %lld heads, %lld samples: at most 65535 each", op,
                        (long long)d->H, (long long)d->N);
    return 0;
}

static attn_params make_params(const struct ldm_attn_dims *d, const void *q, const void *k,
                               const void *v, const uint8_t *mask)
{
    attn_params p = {};
    p.q = q, p.k = k, p.v = v, p.mask = d->masked ? mask : NULL;
    p.N = (int)d->N, p.H = (int)d->H, p.Lq = (int)d->Lq, p.Lk = (int)d->Lk;
    p.Dh = (int)d->Dh, p.Dv = (int)d->Dv;
    p.scale = d->scale, p.scale_log2 = d->scale * ATTN_LOG2E, p.causal = d->causal;
    return p;
}

/* Tensor cores for this call: a reduced dtype, a width they know, every
 * tensor 16-byte aligned (their tiles are copied 16 bytes at a time). */
static bool use_tc(const struct ldm_attn_dims *d, const void *const *ptrs, int n)
{
    if (d->dtype == LDM_DT_F32 || d->Dh != d->Dv || !tc_width(d->Dh))
        return false;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)ptrs[i] % 16 != 0)
            return false;
    return true;
}

template <typename T>
static int run_typed(bool tc, bool backward, const attn_params &p, cudaStream_t st)
{
    if constexpr (!std::is_same<T, float>::value)
        if (tc)
            return tc_run<T>(p.Dh, backward, p, st);
    return backward ? fma_bwd<T>(p, st) : fma_fwd<T>(p, st);
}

static int run(const struct ldm_attn_dims *d, bool tc, bool backward, const attn_params &p,
               cudaStream_t st)
{
    if (d->dtype == LDM_DT_BF16)
        return run_typed<__nv_bfloat16>(tc, backward, p, st);
    if (d->dtype == LDM_DT_F16)
        return run_typed<__half>(tc, backward, p, st);
    return run_typed<float>(false, backward, p, st);
}

/* ---- entries -------------------------------------------------------------------------------- */

extern "C" size_t ldm_cuda_attn_workspace(const struct ldm_ctx *c, int op,
                                          const struct ldm_attn_dims *d)
{
    (void)c;
    if (op != LDM_OP_ATTN_BWD)
        return 0;
    return (size_t)d->N * (size_t)d->H * (size_t)d->Lq * sizeof(float);
}

extern "C" int ldm_cuda_attn_fwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *out,
                                 float *lse, const void *q, const void *k, const void *v,
                                 const uint8_t *mask)
{
    int rc = check_dims(d, OP_FWD);
    if (rc || d->N == 0 || d->H == 0 || d->Lq == 0)
        return rc;
    attn_params p = make_params(d, q, k, v, mask);
    p.out = out, p.lse = lse;
    const void *ptrs[] = {q, k, v, out};
    return run(d, use_tc(d, ptrs, 4), false, p, ldm_cuda_stream(c));
}

extern "C" int ldm_cuda_attn_bwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *dq,
                                 void *dk, void *dv, const void *dout, const void *q,
                                 const void *k, const void *v, const void *out, const float *lse,
                                 const uint8_t *mask)
{
    int rc = check_dims(d, OP_BWD);
    if (rc || d->N == 0 || d->H == 0 || d->Lq == 0 || d->Lk == 0 || (!dq && !dk && !dv))
        return rc;
    size_t need = ldm_cuda_attn_workspace(c, LDM_OP_ATTN_BWD, d);
    if (!c->ws || c->ws_bytes < need)
        return ldm_fail(LDM_ERANGE, "%s: workspace of %zu bytes, %zu needed", OP_BWD,
                        c->ws ? c->ws_bytes : (size_t)0, need);
    attn_params p = make_params(d, q, k, v, mask);
    p.dq = dq, p.dk = dk, p.dv = dv, p.dout = dout, p.out_in = out, p.lse_in = lse;
    p.dsum = (float *)c->ws;
    cudaStream_t st = ldm_cuda_stream(c);
    int64_t warps = d->N * d->Lq * d->H;
    unsigned blocks = (unsigned)((warps + 7) / 8);
    if (d->dtype == LDM_DT_BF16)
        attn_dsum_kernel<__nv_bfloat16><<<blocks, 256, 0, st>>>(p);
    else if (d->dtype == LDM_DT_F16)
        attn_dsum_kernel<__half><<<blocks, 256, 0, st>>>(p);
    else
        attn_dsum_kernel<float><<<blocks, 256, 0, st>>>(p);
    CU_LAUNCHED(OP_BWD, "attn_dsum_kernel");
    const void *ptrs[] = {q, k, v, out, dout, dq ? dq : q, dk ? dk : q, dv ? dv : q};
    return run(d, use_tc(d, ptrs, 8), true, p, st);
}
