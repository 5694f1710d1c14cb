/* device.cu — CUDA device discovery, and the CUDA backend's op table, contexts and memory.
 *
 * A context holds one stream: every op, memset and copy of the context is
 * queued on it in order, so an op's results are ready for the next op
 * without a host wait; ldm_ctx_download waits for the stream (the point
 * where a host sees results). The entries live in the other nn/cuda files
 * (gemm, conv, group_norm, layer_norm, pointwise, layout, resample,
 * bilinear, embed, train; reduce.cu holds a shared column sum; attention.cu
 * attention). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/cuda_int.h"

extern "C" {
#include "log.h"
#include "nn/device.h"
}

extern "C" int ldm_cuda_built(void)
{
    return 1;
}

extern "C" int ldm_cuda_device_count(int *count)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
        cudaGetLastError(); /* clear it: later calls start clean */
        *count = 0;
        return 0;
    }
    if (e != cudaSuccess)
        return ldm_fail(LDM_EIO, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
    return 0;
}

extern "C" int ldm_cuda_describe(int index, char *out, size_t size)
{
    int n = 0;
    int rc = ldm_cuda_device_count(&n);
    if (rc)
        return rc;
    if (index < 0 || index >= n)
        return ldm_fail(LDM_EINVAL, "no CUDA device %d (%d visible)", index, n);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess)
        return ldm_fail(LDM_EIO, "cudaGetDeviceProperties(%d): %s", index, cudaGetErrorString(e));
    snprintf(out, size, "cuda:%d %s sm_%d%d %.1f GiB %d SMs", index, p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.multiProcessorCount);
    return 0;
}

/* ---- failures ------------------------------------------------------------------------------ */

/* The call's text up to its '(' (the function's name). */
static int call_name_len(const char *call)
{
    const char *p = strchr(call, '(');
    return p ? (int)(p - call) : (int)strlen(call);
}

extern "C" int ldm_cuda_fail(const char *op, const char *call, cudaError_t e)
{
    return ldm_fail(LDM_EIO, "%s: %.*s: %s", op, call_name_len(call), call,
                    cudaGetErrorString(e));
}

extern "C" int ldm_cublas_fail(const char *op, const char *call, cublasStatus_t s)
{
    return ldm_fail(LDM_EIO, "%s: %.*s: cuBLAS status %d", op, call_name_len(call), call, (int)s);
}

extern "C" int ldm_cudnn_fail(const char *op, const char *call, cudnnStatus_t s)
{
    return ldm_fail(LDM_EIO, "%s: %.*s: %s", op, call_name_len(call), call,
                    cudnnGetErrorString(s));
}

extern "C" cudaStream_t ldm_cuda_stream(const struct ldm_ctx *c)
{
    return ldm_cuda_state(c)->stream;
}

extern "C" void ldm_cuda_set_tf32(struct ldm_ctx *c, int on)
{
    ldm_cuda_state(c)->allow_tf32 = on != 0;
}

/* ---- the calling thread's device ------------------------------------------------------------- */

/* Threads start on device 0 and keep whatever device they set last: a context of
 * cuda:N used from another thread (trainerd's training thread, a local rank > 0)
 * would launch on a stream of another device. cudaGetDevice is a cheap host call. */
static int cuda_bind(struct ldm_ctx *c)
{
    int cur = -1, dev = ldm_cuda_state(c)->device;
    if (cudaGetDevice(&cur) == cudaSuccess && cur == dev)
        return 0;
    CU_TRY("cuda bind", cudaSetDevice(dev));
    return 0;
}

static int cuda_sync(struct ldm_ctx *c)
{
    CU_TRY("cuda sync", cudaStreamSynchronize(ldm_cuda_state(c)->stream));
    return 0;
}

static int cuda_meminfo(struct ldm_ctx *c, size_t *used, size_t *total)
{
    (void)c;
    size_t free_b = 0, all = 0;
    CU_TRY("cuda meminfo", cudaMemGetInfo(&free_b, &all));
    *used = all - free_b;
    *total = all;
    return 0;
}

/* ---- open and close ---------------------------------------------------------------------------- */

static void cuda_close(struct ldm_ctx *c);

/* Handles and buffers of an opened context; on failure the caller closes. */
static int open_resources(struct ldm_cuda *s)
{
    const char *op = "cuda open";
    CU_TRY(op, cudaSetDevice(s->device));
    CU_TRY(op, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    LT_TRY(op, cublasLtCreate(&s->lt));
    DNN_TRY(op, cudnnCreate(&s->dnn));
    DNN_TRY(op, cudnnSetStream(s->dnn, s->stream));
    CU_TRY(op, cudaMalloc(&s->lt_ws, LDM_CUDA_LT_WS_BYTES));
    CU_TRY(op, cudaMalloc((void **)&s->scratch_dev, 4 * sizeof(int64_t)));
    CU_TRY(op, cudaMallocHost((void **)&s->scratch_host, 4 * sizeof(int64_t)));
    return ldm_cuda_qmap_init(s);
}

static int cuda_open(struct ldm_ctx *c)
{
    int n = 0;
    int rc = ldm_cuda_device_count(&n);
    if (rc)
        return rc;
    if (c->index >= n)
        return ldm_fail(LDM_EINVAL, "cuda:%d: no such device (%d visible)", c->index, n);
    struct ldm_cuda *s = (struct ldm_cuda *)calloc(1, sizeof *s);
    if (!s)
        return ldm_fail(LDM_ENOMEM, "cuda backend: out of memory");
    s->device = c->index;
    const char *tf32 = getenv("LDM_CUDA_TF32");
    s->allow_tf32 = tf32 && strcmp(tf32, "1") == 0;
    c->impl = s;
    if (c->threads <= 0)
        c->threads = 1;
    rc = open_resources(s);
    if (rc) {
        cuda_close(c);
        return rc;
    }
    char desc[160];
    if (ldm_cuda_describe(s->device, desc, sizeof desc) == 0)
        LOG_DEBUG("cuda context opened", "device=%s tf32=%d cudnn=%zu", desc, s->allow_tf32,
                  cudnnGetVersion());
    return 0;
}

static void cuda_close(struct ldm_ctx *c)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    if (!s)
        return;
    cudaSetDevice(s->device);
    if (s->stream)
        cudaStreamSynchronize(s->stream);
    ldm_cuda_gemm_cache_free(s);
    ldm_cuda_conv_cache_free(s);
    cudaFree(s->qmap);
    cudaFree(s->scratch_dev);
    cudaFreeHost(s->scratch_host);
    cudaFree(s->lt_ws);
    if (s->dnn)
        cudnnDestroy(s->dnn);
    if (s->lt)
        cublasLtDestroy(s->lt);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    free(s);
    c->impl = NULL;
}

/* ---- memory ---------------------------------------------------------------------------------- */

static int cuda_alloc(struct ldm_ctx *c, size_t bytes, void **p)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    size_t rounded = (bytes + LDM_ARENA_ALIGN - 1) / LDM_ARENA_ALIGN * LDM_ARENA_ALIGN;
    if (rounded < bytes)
        return ldm_fail(LDM_ENOMEM, "cuda backend: cannot allocate %zu bytes", bytes);
    if (rounded == 0)
        rounded = LDM_ARENA_ALIGN;
    cudaSetDevice(s->device);
    void *m = NULL;
    cudaError_t e = cudaMalloc(&m, rounded); /* cudaMalloc aligns to 256 bytes at least */
    if (e != cudaSuccess) {
        cudaGetLastError();
        return ldm_fail(e == cudaErrorMemoryAllocation ? LDM_ENOMEM : LDM_EIO,
                        "cuda:%d: cudaMalloc of %zu bytes: %s", s->device, bytes,
                        cudaGetErrorString(e));
    }
    e = cudaMemsetAsync(m, 0, rounded, s->stream);
    if (e != cudaSuccess) {
        cudaFree(m);
        return ldm_cuda_fail("cuda alloc", "cudaMemsetAsync", e);
    }
    *p = m;
    return 0;
}

static void cuda_free(struct ldm_ctx *c, void *p)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    cudaSetDevice(s->device);
    cudaStreamSynchronize(s->stream); /* no op of the stream may still use it */
    cudaFree(p);
}

static int cuda_zero(struct ldm_ctx *c, void *p, size_t bytes)
{
    CU_TRY("cuda zero", cudaMemsetAsync(p, 0, bytes, ldm_cuda_state(c)->stream));
    return 0;
}

static int cuda_upload(struct ldm_ctx *c, void *dst, const void *src, size_t bytes)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    CU_TRY("cuda upload", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream));
    /* the host buffer may be reused at once: wait for the copy */
    CU_TRY("cuda upload", cudaStreamSynchronize(s->stream));
    return 0;
}

static int cuda_download(struct ldm_ctx *c, void *dst, const void *src, size_t bytes)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    CU_TRY("cuda download", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream));
    CU_TRY("cuda download", cudaStreamSynchronize(s->stream));
    return 0;
}

static int cuda_copy(struct ldm_ctx *c, void *dst, const void *src, size_t bytes)
{
    CU_TRY("cuda copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                        ldm_cuda_state(c)->stream));
    return 0;
}

/* ---- workspace --------------------------------------------------------------------------------- */

static size_t cuda_workspace(const struct ldm_ctx *c, int op, const void *dims)
{
    switch (op) {
    case LDM_OP_LINEAR_BWD:
        return ldm_cuda_linear_workspace((const struct ldm_linear_dims *)dims);
    case LDM_OP_CONV2D_FWD:
    case LDM_OP_CONV2D_BWD:
        return ldm_cuda_conv_workspace(c, op, (const struct ldm_conv2d_dims *)dims);
    case LDM_OP_GROUP_NORM_FWD:
    case LDM_OP_GROUP_NORM_BWD:
        return ldm_cuda_gn_workspace(op, (const struct ldm_norm_dims *)dims);
    case LDM_OP_LAYER_NORM_BWD:
        return ldm_cuda_ln_workspace((const struct ldm_norm_dims *)dims);
    case LDM_OP_ATTN_FWD:
    case LDM_OP_ATTN_BWD:
        return ldm_cuda_attn_workspace(c, op, (const struct ldm_attn_dims *)dims);
    case LDM_OP_BILINEAR_FWD:
    case LDM_OP_BILINEAR_BWD:
        return ldm_cuda_bilinear_workspace((const struct ldm_resample_dims *)dims);
    case LDM_OP_TEMB:
    case LDM_OP_EMBEDDING_BWD:
        return ldm_cuda_embed_workspace(op, (const struct ldm_embed_dims *)dims);
    case LDM_OP_MSE_FWD:
    case LDM_OP_CLIP_NORM:
        return ldm_cuda_train_workspace(op, (const struct ldm_train_dims *)dims);
    default:
        return 0;
    }
}

/* ---- the table ------------------------------------------------------------------------------------ */

static const struct ldm_backend cuda_backend = {
    /* .name = */ "cuda",
    /* .dtypes = */ (1u << LDM_DT_F32) | (1u << LDM_DT_F16) | (1u << LDM_DT_BF16),
    /* .open = */ cuda_open,
    /* .close = */ cuda_close,
    /* .alloc = */ cuda_alloc,
    /* .free = */ cuda_free,
    /* .zero = */ cuda_zero,
    /* .upload = */ cuda_upload,
    /* .download = */ cuda_download,
    /* .copy = */ cuda_copy,
    /* .workspace = */ cuda_workspace,
    /* .linear_fwd = */ ldm_cuda_linear_fwd,
    /* .linear_bwd = */ ldm_cuda_linear_bwd,
    /* .bmm_fwd = */ ldm_cuda_bmm_fwd,
    /* .bmm_bwd = */ ldm_cuda_bmm_bwd,
    /* .conv2d_fwd = */ ldm_cuda_conv2d_fwd,
    /* .conv2d_bwd = */ ldm_cuda_conv2d_bwd,
    /* .group_norm_fwd = */ ldm_cuda_group_norm_fwd,
    /* .group_norm_bwd = */ ldm_cuda_group_norm_bwd,
    /* .layer_norm_fwd = */ ldm_cuda_layer_norm_fwd,
    /* .layer_norm_bwd = */ ldm_cuda_layer_norm_bwd,
    /* .act_fwd = */ ldm_cuda_act_fwd,
    /* .act_bwd = */ ldm_cuda_act_bwd,
    /* .geglu_fwd = */ ldm_cuda_geglu_fwd,
    /* .geglu_bwd = */ ldm_cuda_geglu_bwd,
    /* .softmax_fwd = */ ldm_cuda_softmax_fwd,
    /* .softmax_bwd = */ ldm_cuda_softmax_bwd,
    /* .attn_fwd = */ ldm_cuda_attn_fwd,
    /* .attn_bwd = */ ldm_cuda_attn_bwd,
    /* .upsample_fwd = */ ldm_cuda_upsample_fwd,
    /* .upsample_bwd = */ ldm_cuda_upsample_bwd,
    /* .avg_pool_fwd = */ ldm_cuda_avg_pool_fwd,
    /* .avg_pool_bwd = */ ldm_cuda_avg_pool_bwd,
    /* .max_pool_fwd = */ ldm_cuda_max_pool_fwd,
    /* .max_pool_bwd = */ ldm_cuda_max_pool_bwd,
    /* .adaptive_pool_fwd = */ ldm_cuda_adaptive_pool_fwd,
    /* .adaptive_pool_bwd = */ ldm_cuda_adaptive_pool_bwd,
    /* .bilinear_fwd = */ ldm_cuda_bilinear_fwd,
    /* .bilinear_bwd = */ ldm_cuda_bilinear_bwd,
    /* .concat_fwd = */ ldm_cuda_concat_fwd,
    /* .concat_bwd = */ ldm_cuda_concat_bwd,
    /* .transpose_fwd = */ ldm_cuda_transpose_fwd,
    /* .transpose_bwd = */ ldm_cuda_transpose_bwd,
    /* .add_fwd = */ ldm_cuda_add_fwd,
    /* .add_bwd = */ ldm_cuda_add_bwd,
    /* .add_bcast_fwd = */ ldm_cuda_add_bcast_fwd,
    /* .add_bcast_bwd = */ ldm_cuda_add_bcast_bwd,
    /* .timestep_fwd = */ ldm_cuda_timestep_fwd,
    /* .embedding_fwd = */ ldm_cuda_embedding_fwd,
    /* .embedding_bwd = */ ldm_cuda_embedding_bwd,
    /* .mse_fwd = */ ldm_cuda_mse_fwd,
    /* .mse_bwd = */ ldm_cuda_mse_bwd,
    /* .clip_norm = */ ldm_cuda_clip_norm,
    /* .adamw = */ ldm_cuda_adamw,
    /* .adamw8 = */ ldm_cuda_adamw8,
    /* .ema = */ ldm_cuda_ema,
    /* .cast = */ ldm_cuda_cast,
    /* .emulated = */ 0,
    /* .bind = */ cuda_bind,
    /* .sync = */ cuda_sync,
    /* .meminfo = */ cuda_meminfo,
};

extern "C" const struct ldm_backend *ldm_cuda_backend_get(void)
{
    return &cuda_backend;
}
