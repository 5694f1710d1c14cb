/* cuda_int.h — the CUDA backend's private state and the entries its files share.
 *
 * One struct ldm_cuda per context (ctx->impl): the device, the one stream
 * every op of the context runs on, a cuBLASLt handle with its own
 * workspace, a cuDNN handle, the plan caches (GEMM heuristics and conv
 * algorithms, each chosen once per shape) and a little pinned memory for
 * values a host must read back (the gradient norm, a bad token id).
 *
 * Errors: every CUDA, cuBLAS and cuDNN call goes through CU_TRY / LT_TRY /
 * DNN_TRY, which turn a failure into ldm_fail(LDM_EIO, "<op>: <call>:
 * <driver message>") and return it. A kernel launch is checked with
 * CU_LAUNCHED(op, "kernel"). The header is valid C as well as C++, so a C
 * test may include it for ldm_cuda_stream.
 */
#ifndef LDM_NN_CUDA_CUDA_INT_H
#define LDM_NN_CUDA_CUDA_INT_H

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "err.h"
#include "nn/backend.h"

/* The most bytes of workspace a conv algorithm may ask for. */
#define LDM_CUDA_CONV_WS_CAP ((size_t)512 << 20)
/* cuBLASLt's own workspace, allocated once per context. */
#define LDM_CUDA_LT_WS_BYTES ((size_t)32 << 20)

struct ldm_cuda_gemm_plan; /* gemm.cu */
struct ldm_cuda_conv_plan; /* conv.cu */

struct ldm_cuda {
    int device;                 /* cuda:N */
    cudaStream_t stream;        /* every op of the context runs on it */
    cublasLtHandle_t lt;
    cudnnHandle_t dnn;
    void *lt_ws;                /* LDM_CUDA_LT_WS_BYTES of device memory for cuBLASLt */
    int allow_tf32;             /* F32 GEMMs and convs may use TF32 (LDM_CUDA_TF32=1) */
    struct ldm_cuda_gemm_plan *gemm; /* plan cache, gemm.cu */
    int ngemm, capgemm;
    struct ldm_cuda_conv_plan *conv; /* plan cache, conv.cu */
    int nconv, capconv;
    float *qmap;                /* device: bitsandbytes' signed then unsigned dynamic map */
    int64_t *scratch_dev;       /* device: a few words (first bad id) */
    int64_t *scratch_host;      /* pinned host copy */
};

static inline struct ldm_cuda *ldm_cuda_state(const struct ldm_ctx *c)
{
    return (struct ldm_cuda *)c->impl;
}

/* The stream every op of context c runs on. */
cudaStream_t ldm_cuda_stream(const struct ldm_ctx *c);

/* Let F32 matrix products and convolutions use TF32 tensor cores (on != 0)
 * or not (the default: exact FP32, as the CPU backend). */
void ldm_cuda_set_tf32(struct ldm_ctx *c, int on);

/* Failure details: "<op>: <call up to its '('>: <driver message>"; return LDM_EIO. */
int ldm_cuda_fail(const char *op, const char *call, cudaError_t e);
int ldm_cublas_fail(const char *op, const char *call, cublasStatus_t s);
int ldm_cudnn_fail(const char *op, const char *call, cudnnStatus_t s);

#define CU_TRY(op, call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return ldm_cuda_fail((op), #call, e_);                                                 \
    } while (0)
#define LT_TRY(op, call)                                                                           \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return ldm_cublas_fail((op), #call, s_);                                               \
    } while (0)
#define DNN_TRY(op, call)                                                                          \
    do {                                                                                           \
        cudnnStatus_t s_ = (call);                                                                 \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                            \
            return ldm_cudnn_fail((op), #call, s_);                                                \
    } while (0)
/* After a kernel launch: the launch error, if any. */
#define CU_LAUNCHED(op, kernel)                                                                    \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess)                                                                     \
            return ldm_cuda_fail((op), (kernel), e_);                                              \
    } while (0)

/* ---- attention (nn/cuda/attention.cu) ---------------------------------------------------- */

int ldm_cuda_attn_fwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *out, float *lse,
                      const void *q, const void *k, const void *v, const uint8_t *mask);
int ldm_cuda_attn_bwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *dq, void *dk,
                      void *dv, const void *dout, const void *q, const void *k, const void *v,
                      const void *out, const float *lse, const uint8_t *mask);
size_t ldm_cuda_attn_workspace(const struct ldm_ctx *c, int op, const struct ldm_attn_dims *d);

/* ---- plan caches and workspace sizes ------------------------------------------------------- */

void ldm_cuda_gemm_cache_free(struct ldm_cuda *s);
void ldm_cuda_conv_cache_free(struct ldm_cuda *s);
/* Conv workspace for op LDM_OP_CONV2D_FWD / _BWD (chooses and caches the
 * algorithms); (size_t)-1 when no algorithm fits (the op then fails). */
size_t ldm_cuda_conv_workspace(const struct ldm_ctx *c, int op, const struct ldm_conv2d_dims *d);
size_t ldm_cuda_gn_workspace(int op, const struct ldm_norm_dims *d);
size_t ldm_cuda_ln_workspace(const struct ldm_norm_dims *d);
size_t ldm_cuda_linear_workspace(const struct ldm_linear_dims *d);
size_t ldm_cuda_bilinear_workspace(const struct ldm_resample_dims *d);
size_t ldm_cuda_embed_workspace(int op, const struct ldm_embed_dims *d);
size_t ldm_cuda_train_workspace(int op, const struct ldm_train_dims *d);
/* Upload the two bitsandbytes maps into s->qmap (allocated here). */
int ldm_cuda_qmap_init(struct ldm_cuda *s);
/* bitsandbytes create_dynamic_map(signed, 7, 8): 256 ascending values into out. */
void ldm_cuda_dynamic_map(int is_signed, float *out);

/* ---- the entries, by file ------------------------------------------------------------------- */

/* gemm.cu */
int ldm_cuda_linear_fwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *y,
                        const void *x, const void *w, const void *b);
int ldm_cuda_linear_bwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *dx, void *dw,
                        void *db, const void *dy, const void *x, const void *w);
int ldm_cuda_bmm_fwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *y, const void *a,
                     const void *b);
int ldm_cuda_bmm_bwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *da, void *db,
                     const void *dy, const void *a, const void *b);
/* conv.cu */
int ldm_cuda_conv2d_fwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *y,
                        const void *x, const void *w, const void *b);
int ldm_cuda_conv2d_bwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *dx, void *dw,
                        void *db, const void *dy, const void *x, const void *w);
/* group_norm.cu */
int ldm_cuda_group_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y,
                            float *mean, float *rstd, const void *x, const void *gamma,
                            const void *beta);
int ldm_cuda_group_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx,
                            void *dgamma, void *dbeta, const void *dy, const void *x,
                            const float *mean, const float *rstd, const void *gamma,
                            const void *beta);
/* layer_norm.cu */
int ldm_cuda_layer_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y,
                            float *mean, float *rstd, const void *x, const void *gamma,
                            const void *beta);
int ldm_cuda_layer_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx,
                            void *dgamma, void *dbeta, const void *dy, const void *x,
                            const float *mean, const float *rstd, const void *gamma);
/* pointwise.cu */
int ldm_cuda_act_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                     const void *x);
int ldm_cuda_act_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                     const void *dy, const void *x);
int ldm_cuda_geglu_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                       const void *h);
int ldm_cuda_geglu_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dh,
                       const void *dy, const void *h);
int ldm_cuda_softmax_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                         const void *x);
int ldm_cuda_softmax_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                         const void *dy, const void *y);
/* layout.cu */
int ldm_cuda_concat_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                        const void *const *xs);
int ldm_cuda_concat_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *const *dxs,
                        const void *dy);
int ldm_cuda_transpose_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                           const void *x);
int ldm_cuda_transpose_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx,
                           const void *dy);
int ldm_cuda_add_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, float alpha,
                     const void *a, float beta, const void *b);
int ldm_cuda_add_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *da, float alpha,
                     void *db, float beta, const void *dy);
int ldm_cuda_add_bcast_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                           const void *x, const void *v);
int ldm_cuda_add_bcast_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx,
                           void *dv, const void *dy);
/* resample.cu */
int ldm_cuda_upsample_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                          const void *x);
int ldm_cuda_upsample_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                          const void *dy);
int ldm_cuda_avg_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                          const void *x);
int ldm_cuda_avg_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                          const void *dy);
int ldm_cuda_max_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                          const void *x);
int ldm_cuda_max_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                          const void *dy, const void *x);
int ldm_cuda_adaptive_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                               const void *x);
int ldm_cuda_adaptive_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                               const void *dy);
/* bilinear.cu */
int ldm_cuda_bilinear_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                          const void *x);
int ldm_cuda_bilinear_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                          const void *dy);
/* embed.cu */
int ldm_cuda_timestep_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y,
                          const float *t);
int ldm_cuda_embedding_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y,
                           const void *ids, const void *table);
int ldm_cuda_embedding_bwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *dtable,
                           const void *dy, const void *ids);
/* train.cu */
int ldm_cuda_mse_fwd(struct ldm_ctx *c, const struct ldm_train_dims *d, float *loss,
                     const void *pred, const void *target, const float *weights);
int ldm_cuda_mse_bwd(struct ldm_ctx *c, const struct ldm_train_dims *d, void *dpred,
                     void *dtarget, float dloss, const void *pred, const void *target,
                     const float *weights);
int ldm_cuda_clip_norm(struct ldm_ctx *c, const struct ldm_train_dims *d, float *const *grads,
                       float *norm);
int ldm_cuda_adamw(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param,
                   const float *grad, float *m, float *v);
int ldm_cuda_adamw8(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param,
                    const float *grad, uint8_t *m_q, uint8_t *v_q, float *m_absmax,
                    float *v_absmax);
int ldm_cuda_ema(struct ldm_ctx *c, const struct ldm_train_dims *d, float *ema,
                 const float *param);
int ldm_cuda_cast(struct ldm_ctx *c, const struct ldm_cast_dims *d, void *y, const void *x);

#ifdef __cplusplus
}
#endif

#endif
