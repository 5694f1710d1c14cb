/* conv.cu — conv2d forward and backward through cuDNN (the legacy convolution API), NCHW.
 *
 * cuDNN pads symmetrically. With pad_h = pad_top and pad_w = pad_left its
 * output has our Ho×Wo whenever (H + 2·pad_top − R)/stride + 1 = Ho (and
 * alike for W); then it reads exactly the rows and columns we do (anything
 * past the input is zero in both), and x goes to cuDNN as it is.
 * Otherwise (diffusers' (0,1,0,1) padding before a stride-2 conv) x is
 * first copied into the workspace zero-padded to Hp = (Ho−1)·sh + R rows
 * and Wp = (Wo−1)·sw + S columns (pad_top/pad_left on the leading side),
 * and cuDNN runs without padding; the backward's dx comes back in that
 * padded frame and is cropped into dx.
 *
 * Algorithms are chosen once per shape (the plan cache) with
 * cudnnGet*Algorithm_v7: deterministic ones first, workspace at most
 * LDM_CUDA_CONV_WS_CAP, and for F32 FMA kernels only unless TF32 is allowed
 * (asked and run with CUDNN_FMA_MATH, as PyTorch does with allow_tf32 off;
 * candidates offered with tensor-op math are passed over); F16/BF16 run with
 * tensor-op math and FP32 accumulation. The bias (forward) and its
 * gradient (a fixed-order sum per channel) are our own kernels; backward
 * adds into dx and dw (beta = 1). */
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/kern.cuh"

struct conv_key {
    int64_t N, C, H, W, K, R, S, Ho, Wo;
    int sh, sw, pt, pl, dtype, tf32;
};

struct ldm_cuda_conv_plan {
    struct conv_key key;
    int padded;     /* x goes through a zero-padded copy */
    int64_t Hp, Wp; /* the input cuDNN sees */
    size_t pad_bytes;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t fwd_math, data_math, filter_math;
    size_t fwd_ws, data_ws, filter_ws;
};

static void plan_release(struct ldm_cuda_conv_plan *p)
{
    if (p->xd)
        cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd)
        cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd)
        cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd)
        cudnnDestroyConvolutionDescriptor(p->cd);
}

void ldm_cuda_conv_cache_free(struct ldm_cuda *s)
{
    for (int i = 0; i < s->nconv; i++)
        plan_release(&s->conv[i]);
    free(s->conv);
    s->conv = NULL;
    s->nconv = s->capconv = 0;
}

static cudnnDataType_t dnn_type(int dtype)
{
    return dtype == LDM_DT_BF16 ? CUDNN_DATA_BFLOAT16
           : dtype == LDM_DT_F16 ? CUDNN_DATA_HALF
                                 : CUDNN_DATA_FLOAT;
}

/* ---- choosing algorithms ------------------------------------------------------------------------ */

/* The math type set before asking: FMA only for exact F32, tensor ops otherwise. */
static cudnnMathType_t base_math(const struct conv_key *k)
{
    if (k->dtype != LDM_DT_F32)
        return CUDNN_TENSOR_OP_MATH;
    return k->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* A candidate's math type is acceptable: exact F32 never takes tensor-op ones. */
static int math_ok(const struct conv_key *k, cudnnMathType_t m)
{
    return k->dtype != LDM_DT_F32 || k->tf32 ||
           (m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
}

/* The math type a chosen candidate runs with: exact F32 is held to FMA kernels. */
static cudnnMathType_t run_math(const struct conv_key *k, cudnnMathType_t m)
{
    return k->dtype == LDM_DT_F32 && !k->tf32 ? CUDNN_FMA_MATH : m;
}

/* One chooser per direction: the first candidate (deterministic ones in
 * a first round) whose math fits and whose workspace cuDNN confirms and
 * the cap allows. Returns 1 when one was found. */
#define CONV_PICK(NAME, PERF_T, COUNT, GET, WSFN, ALGO_T, XA, XB, XC, XD)                          \
    static int NAME(struct ldm_cuda *s, struct ldm_cuda_conv_plan *p, ALGO_T *algo,                \
                    cudnnMathType_t *math, size_t *ws)                                             \
    {                                                                                              \
        PERF_T perf[COUNT];                                                                        \
        int n = 0;                                                                                 \
        cudnnSetConvolutionMathType(p->cd, base_math(&p->key));                                    \
        if (GET(s->dnn, XA, XB, p->cd, XD, COUNT, &n, perf) != CUDNN_STATUS_SUCCESS)               \
            return 0;                                                                              \
        for (int round = 0; round < 2; round++)                                                    \
            for (int i = 0; i < n; i++) {                                                          \
                size_t need = 0;                                                                   \
                if (perf[i].status != CUDNN_STATUS_SUCCESS || !math_ok(&p->key, perf[i].mathType)) \
                    continue;                                                                      \
                if (round == 0 && perf[i].determinism != CUDNN_DETERMINISTIC)                      \
                    continue;                                                                      \
                cudnnMathType_t m_ = run_math(&p->key, perf[i].mathType);                          \
                cudnnSetConvolutionMathType(p->cd, m_);                                            \
                if (WSFN(s->dnn, XA, XB, p->cd, XC, perf[i].algo, &need) != CUDNN_STATUS_SUCCESS)  \
                    continue;                                                                      \
                if (need > LDM_CUDA_CONV_WS_CAP)                                                   \
                    continue;                                                                      \
                *algo = perf[i].algo, *math = m_, *ws = need;                                      \
                return 1;                                                                          \
            }                                                                                      \
        return 0;                                                                                  \
    }

CONV_PICK(pick_fwd, cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
          cudnnGetConvolutionForwardAlgorithm_v7, cudnnGetConvolutionForwardWorkspaceSize,
          cudnnConvolutionFwdAlgo_t, p->xd, p->wd, p->yd, p->yd)
CONV_PICK(pick_data, cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
          cudnnGetConvolutionBackwardDataAlgorithm_v7,
          cudnnGetConvolutionBackwardDataWorkspaceSize, cudnnConvolutionBwdDataAlgo_t, p->wd,
          p->yd, p->xd, p->xd)
CONV_PICK(pick_filter, cudnnConvolutionBwdFilterAlgoPerf_t,
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, cudnnGetConvolutionBackwardFilterAlgorithm_v7,
          cudnnGetConvolutionBackwardFilterWorkspaceSize, cudnnConvolutionBwdFilterAlgo_t, p->xd,
          p->yd, p->wd, p->wd)

/* Descriptors and the three algorithms of p->key. */
static int plan_build(struct ldm_cuda *s, const char *op, struct ldm_cuda_conv_plan *p)
{
    const struct conv_key *k = &p->key;
    cudnnDataType_t t = dnn_type(k->dtype);
    int64_t hs = (k->H + 2 * k->pt - k->R) / k->sh + 1, ws = (k->W + 2 * k->pl - k->S) / k->sw + 1;
    p->padded = k->H + 2 * k->pt < k->R || k->W + 2 * k->pl < k->S || hs != k->Ho || ws != k->Wo;
    p->Hp = p->padded ? (k->Ho - 1) * k->sh + k->R : k->H;
    p->Wp = p->padded ? (k->Wo - 1) * k->sw + k->S : k->W;
    size_t es = ldm_dtype_size(k->dtype);
    p->pad_bytes = p->padded ? ((size_t)(k->N * k->C * p->Hp * p->Wp) * es + 255) / 256 * 256 : 0;
    DNN_TRY(op, cudnnCreateTensorDescriptor(&p->xd));
    DNN_TRY(op, cudnnCreateTensorDescriptor(&p->yd));
    DNN_TRY(op, cudnnCreateFilterDescriptor(&p->wd));
    DNN_TRY(op, cudnnCreateConvolutionDescriptor(&p->cd));
    DNN_TRY(op, cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, t, (int)k->N, (int)k->C,
                                           (int)p->Hp, (int)p->Wp));
    DNN_TRY(op, cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, t, (int)k->N, (int)k->K,
                                           (int)k->Ho, (int)k->Wo));
    DNN_TRY(op, cudnnSetFilter4dDescriptor(p->wd, t, CUDNN_TENSOR_NCHW, (int)k->K, (int)k->C,
                                           (int)k->R, (int)k->S));
    DNN_TRY(op, cudnnSetConvolution2dDescriptor(p->cd, p->padded ? 0 : k->pt,
                                                p->padded ? 0 : k->pl, k->sh, k->sw, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    if (!pick_fwd(s, p, &p->fwd, &p->fwd_math, &p->fwd_ws) ||
        !pick_data(s, p, &p->bwd_data, &p->data_math, &p->data_ws) ||
        !pick_filter(s, p, &p->bwd_filter, &p->filter_math, &p->filter_ws))
        return ldm_fail(LDM_EUNSUPPORTED,
                        "%s: cuDNN offers no algorithm for x [%lld,%lld,%lld,%lld] w "
                        "[%lld,%lld,%lld,%lld] stride %dx%d (dtype %d, workspace cap %zu MiB)",
                        op, (long long)k->N, (long long)k->C, (long long)k->H, (long long)k->W,
                        (long long)k->K, (long long)k->C, (long long)k->R, (long long)k->S, k->sh,
                        k->sw, k->dtype, LDM_CUDA_CONV_WS_CAP >> 20);
    return 0;
}

static void key_of(struct conv_key *k, const struct ldm_cuda *s, const struct ldm_conv2d_dims *d)
{
    memset(k, 0, sizeof *k); /* padding too: keys compare with memcmp */
    k->N = d->N, k->C = d->C, k->H = d->H, k->W = d->W, k->K = d->K, k->R = d->R, k->S = d->S;
    k->Ho = d->Ho, k->Wo = d->Wo, k->sh = d->stride_h, k->sw = d->stride_w;
    k->pt = d->pad_top, k->pl = d->pad_left, k->dtype = d->dtype, k->tf32 = s->allow_tf32;
}

static int plan_get(struct ldm_cuda *s, const char *op, const struct ldm_conv2d_dims *d,
                    struct ldm_cuda_conv_plan **out)
{
    struct conv_key key;
    key_of(&key, s, d);
    for (int i = 0; i < s->nconv; i++)
        if (memcmp(&s->conv[i].key, &key, sizeof key) == 0) {
            *out = &s->conv[i];
            return 0;
        }
    if (s->nconv == s->capconv) {
        int cap = s->capconv ? 2 * s->capconv : 16;
        void *m = realloc(s->conv, (size_t)cap * sizeof *s->conv);
        if (!m)
            return ldm_fail(LDM_ENOMEM, "%s: conv plan cache: out of memory", op);
        s->conv = (struct ldm_cuda_conv_plan *)m;
        s->capconv = cap;
    }
    struct ldm_cuda_conv_plan *p = &s->conv[s->nconv];
    memset(p, 0, sizeof *p);
    p->key = key;
    int rc = plan_build(s, op, p);
    if (rc) {
        plan_release(p);
        return rc;
    }
    s->nconv++;
    *out = p;
    return 0;
}

/* Nothing for cuDNN to compute: an empty batch, channel set or output. */
static int conv_empty(const struct ldm_conv2d_dims *d)
{
    return d->N == 0 || d->C == 0 || d->K == 0 || d->Ho == 0 || d->Wo == 0;
}

size_t ldm_cuda_conv_workspace(const struct ldm_ctx *c, int op, const struct ldm_conv2d_dims *d)
{
    if (conv_empty(d))
        return 0;
    struct ldm_cuda_conv_plan *p = NULL;
    if (plan_get(ldm_cuda_state(c), ldm_op_name(op), d, &p))
        return 0; /* the entry reports the failure */
    size_t algo = op == LDM_OP_CONV2D_FWD ? p->fwd_ws
                                          : (p->data_ws > p->filter_ws ? p->data_ws : p->filter_ws);
    return p->pad_bytes + algo;
}

/* ---- our kernels: padding, cropping, bias ------------------------------------------------------- */

/* xp (N, C, Hp, Wp) = x shifted by (pt, pl), zeros elsewhere. */
template <typename T>
__global__ void pad_copy(T *xp, const T *x, int64_t planes, int64_t H, int64_t W, int64_t Hp,
                         int64_t Wp, int pt, int pl)
{
    CU_GRID_LOOP(i, planes * Hp * Wp) {
        int64_t j = i % Wp, r = (i / Wp) % Hp, pl_ = i / (Wp * Hp);
        int64_t ih = r - pt, iw = j - pl;
        xp[i] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(pl_ * H + ih) * W + iw]
                                                       : from_f<T>(0.0f);
    }
}

/* dx (N, C, H, W) += the matching part of dxp (N, C, Hp, Wp). */
template <typename T>
__global__ void crop_add(T *dx, const T *dxp, int64_t planes, int64_t H, int64_t W, int64_t Hp,
                         int64_t Wp, int pt, int pl)
{
    CU_GRID_LOOP(i, planes * H * W) {
        int64_t iw = i % W, ih = (i / W) % H, pl_ = i / (W * H);
        int64_t r = ih + pt, j = iw + pl;
        if (r < Hp && j < Wp)
            add_to(dx, i, to_f(dxp[(pl_ * Hp + r) * Wp + j]));
    }
}

/* y (N, K, P) += b[k] (beta = 1), or = b[k] when `set`. */
template <typename T>
__global__ void bias_add(T *y, const T *b, int64_t NK, int64_t K, int64_t P, int set)
{
    CU_GRID_LOOP(i, NK * P) {
        float v = to_f(b[(i / P) % K]);
        y[i] = from_f<T>(set ? v : to_f(y[i]) + v);
    }
}

/* db[k] += Σ over n and pixels of dy[n][k]: one block per channel, fixed order. */
template <typename T>
__global__ void bias_grad(T *db, const T *dy, int64_t N, int64_t K, int64_t P)
{
    __shared__ float sh[32];
    int64_t k = blockIdx.x;
    float s = 0.0f;
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = threadIdx.x; p < P; p += blockDim.x)
            s += to_f(dy[(n * K + k) * P + p]);
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        add_to(db, k, s);
}

/* ---- the entries ------------------------------------------------------------------------------------ */

extern "C" int ldm_cuda_conv2d_fwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *y,
                                   const void *x, const void *w, const void *b)
{
    const char *op = "conv2d forward";
    struct ldm_cuda *s = ldm_cuda_state(c);
    int64_t P = d->Ho * d->Wo, NK = d->N * d->K;
    if (NK * P == 0)
        return 0;
    if (d->C == 0) { /* no inputs: y = b, or 0 */
        if (!b)
            CU_TRY(op, cudaMemsetAsync(y, 0, (size_t)(NK * P) * ldm_dtype_size(d->dtype),
                                       s->stream));
        else
            CU_DTYPE_SWITCH(d->dtype, T,
                            bias_add<T><<<cu_blocks(NK * P), CU_THREADS, 0, s->stream>>>(
                                (T *)y, (const T *)b, NK, d->K, P, 1));
        CU_LAUNCHED(op, "bias_add");
        return 0;
    }
    struct ldm_cuda_conv_plan *p = NULL;
    int rc = plan_get(s, op, d, &p);
    if (rc)
        return rc;
    const void *xin = x;
    char *ws = (char *)c->ws;
    if (p->padded) {
        int64_t planes = d->N * d->C;
        CU_DTYPE_SWITCH(d->dtype, T,
                        pad_copy<T><<<cu_blocks(planes * p->Hp * p->Wp), CU_THREADS, 0,
                                      s->stream>>>((T *)ws, (const T *)x, planes, d->H, d->W,
                                                   p->Hp, p->Wp, d->pad_top, d->pad_left));
        CU_LAUNCHED(op, "pad_copy");
        xin = ws;
    }
    float one = 1.0f, zero = 0.0f;
    DNN_TRY(op, cudnnSetConvolutionMathType(p->cd, p->fwd_math));
    DNN_TRY(op, cudnnConvolutionForward(s->dnn, &one, p->xd, xin, p->wd, w, p->cd, p->fwd,
                                        ws + p->pad_bytes, p->fwd_ws, &zero, p->yd, y));
    if (b) {
        CU_DTYPE_SWITCH(d->dtype, T,
                        bias_add<T><<<cu_blocks(NK * P), CU_THREADS, 0, s->stream>>>(
                            (T *)y, (const T *)b, NK, d->K, P, 0));
        CU_LAUNCHED(op, "bias_add");
    }
    return 0;
}

/* dx += through cuDNN (in the padded frame, then cropped, when padded). */
static int conv_bwd_data(struct ldm_ctx *c, const char *op, const struct ldm_conv2d_dims *d,
                         struct ldm_cuda_conv_plan *p, void *dx, const void *dy, const void *w)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    char *ws = (char *)c->ws;
    float one = 1.0f, zero = 0.0f;
    DNN_TRY(op, cudnnSetConvolutionMathType(p->cd, p->data_math));
    DNN_TRY(op, cudnnConvolutionBackwardData(s->dnn, &one, p->wd, w, p->yd, dy, p->cd,
                                             p->bwd_data, ws + p->pad_bytes, p->data_ws,
                                             p->padded ? &zero : &one, p->xd,
                                             p->padded ? (void *)ws : dx));
    if (p->padded) {
        int64_t planes = d->N * d->C;
        CU_DTYPE_SWITCH(d->dtype, T,
                        crop_add<T><<<cu_blocks(planes * d->H * d->W), CU_THREADS, 0,
                                      s->stream>>>((T *)dx, (const T *)ws, planes, d->H, d->W,
                                                   p->Hp, p->Wp, d->pad_top, d->pad_left));
        CU_LAUNCHED(op, "crop_add");
    }
    return 0;
}

extern "C" int ldm_cuda_conv2d_bwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *dx,
                                   void *dw, void *db, const void *dy, const void *x,
                                   const void *w)
{
    const char *op = "conv2d backward";
    struct ldm_cuda *s = ldm_cuda_state(c);
    if (db && d->K > 0) {
        CU_DTYPE_SWITCH(d->dtype, T,
                        bias_grad<T><<<(unsigned)d->K, CU_THREADS, 0, s->stream>>>(
                            (T *)db, (const T *)dy, d->N, d->K, d->Ho * d->Wo));
        CU_LAUNCHED(op, "bias_grad");
    }
    if (conv_empty(d) || (!dx && !dw))
        return 0;
    struct ldm_cuda_conv_plan *p = NULL;
    int rc = plan_get(s, op, d, &p);
    if (rc)
        return rc;
    char *ws = (char *)c->ws;
    if (dw) { /* the padded copy of x first: the data gradient reuses its room */
        const void *xin = x;
        if (p->padded) {
            int64_t planes = d->N * d->C;
            CU_DTYPE_SWITCH(d->dtype, T,
                            pad_copy<T><<<cu_blocks(planes * p->Hp * p->Wp), CU_THREADS, 0,
                                          s->stream>>>((T *)ws, (const T *)x, planes, d->H, d->W,
                                                       p->Hp, p->Wp, d->pad_top, d->pad_left));
            CU_LAUNCHED(op, "pad_copy");
            xin = ws;
        }
        float one = 1.0f;
        DNN_TRY(op, cudnnSetConvolutionMathType(p->cd, p->filter_math));
        DNN_TRY(op, cudnnConvolutionBackwardFilter(s->dnn, &one, p->xd, xin, p->yd, dy, p->cd,
                                                   p->bwd_filter, ws + p->pad_bytes, p->filter_ws,
                                                   &one, p->wd, dw));
    }
    return dx ? conv_bwd_data(c, op, d, p, dx, dy, w) : 0;
}
