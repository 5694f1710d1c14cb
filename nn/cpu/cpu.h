/* cpu.h — internals shared by the CPU backend's files (nn/cpu/). */
#ifndef LDM_NN_CPU_CPU_H
#define LDM_NN_CPU_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "nn/backend.h"
#include "nn/cpu/pool.h"

/* The CPU backend's state (ctx->impl). */
struct cpu_state {
    struct ldm_pool *pool;
};

static inline struct cpu_state *cpu_state(struct ldm_ctx *c)
{
    return (struct cpu_state *)c->impl;
}

/* Tell OpenBLAS to use n threads (when it uses another count). GEMMs called
 * from inside pool tasks need 1; big GEMMs called from the caller's thread
 * get every thread of the context (cpu_blas_all). */
void cpu_blas_threads(struct ldm_ctx *c, int n);
void cpu_blas_all(struct ldm_ctx *c);

/* Run fn over [0, n) cut into chunks of at least `grain` elements, one
 * chunk per task, on the context's pool: fn(arg, begin, end, thread). */
typedef void (*cpu_range_fn)(void *arg, int64_t begin, int64_t end, int thread);
void cpu_for(struct ldm_ctx *c, int64_t n, int64_t grain, cpu_range_fn fn, void *arg);

/* Run fn(arg, task, thread) for tasks 0..n-1 on the pool. */
void cpu_tasks(struct ldm_ctx *c, int64_t n, ldm_pool_fn fn, void *arg);

/* Row-major sgemm: C (M×N) = alpha·op(A)·op(B) + beta·C. */
void cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc);

/* Workspace needs of the ops that have any (bytes). */
size_t cpu_conv2d_workspace(const struct ldm_ctx *c, const struct ldm_conv2d_dims *d);
size_t cpu_attn_workspace(const struct ldm_ctx *c, const struct ldm_attn_dims *d, int backward);
size_t cpu_bilinear_workspace(const struct ldm_resample_dims *d);

/* The entries, by file. */
int cpu_linear_fwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *y, const void *x,
                   const void *w, const void *b);
int cpu_linear_bwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *dx, void *dw,
                   void *db, const void *dy, const void *x, const void *w);
int cpu_bmm_fwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *y, const void *a,
                const void *b);
int cpu_bmm_bwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *da, void *db,
                const void *dy, const void *a, const void *b);
int cpu_conv2d_fwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *y, const void *x,
                   const void *w, const void *b);
int cpu_conv2d_bwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *dx, void *dw,
                   void *db, const void *dy, const void *x, const void *w);
int cpu_group_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y, float *mean,
                       float *rstd, const void *x, const void *gamma, const void *beta);
int cpu_group_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx, void *dgamma,
                       void *dbeta, const void *dy, const void *x, const float *mean,
                       const float *rstd, const void *gamma, const void *beta);
int cpu_layer_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y, float *mean,
                       float *rstd, const void *x, const void *gamma, const void *beta);
int cpu_layer_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx, void *dgamma,
                       void *dbeta, const void *dy, const void *x, const float *mean,
                       const float *rstd, const void *gamma);
int cpu_act_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y, const void *x);
int cpu_act_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx, const void *dy,
                const void *x);
int cpu_geglu_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y, const void *h);
int cpu_geglu_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dh,
                  const void *dy, const void *h);
int cpu_softmax_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                    const void *x);
int cpu_softmax_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                    const void *dy, const void *y);
int cpu_attn_fwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *out, float *lse,
                 const void *q, const void *k, const void *v, const uint8_t *mask);
int cpu_attn_bwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *dq, void *dk, void *dv,
                 const void *dout, const void *q, const void *k, const void *v, const void *out,
                 const float *lse, const uint8_t *mask);
int cpu_upsample_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                     const void *x);
int cpu_upsample_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy);
int cpu_avg_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                     const void *x);
int cpu_avg_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy);
int cpu_max_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                     const void *x);
int cpu_max_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy, const void *x);
int cpu_adaptive_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                          const void *x);
int cpu_adaptive_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                          const void *dy);
int cpu_bilinear_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                     const void *x);
int cpu_bilinear_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy);
int cpu_concat_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                   const void *const *xs);
int cpu_concat_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *const *dxs,
                   const void *dy);
int cpu_transpose_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                      const void *x);
int cpu_transpose_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx,
                      const void *dy);
int cpu_add_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, float alpha,
                const void *a, float beta, const void *b);
int cpu_add_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *da, float alpha,
                void *db, float beta, const void *dy);
int cpu_add_bcast_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, const void *x,
                      const void *v);
int cpu_add_bcast_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx, void *dv,
                      const void *dy);
int cpu_timestep_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y, const float *t);
int cpu_embedding_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y, const void *ids,
                      const void *table);
int cpu_embedding_bwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *dtable,
                      const void *dy, const void *ids);
int cpu_mse_fwd(struct ldm_ctx *c, const struct ldm_train_dims *d, float *loss, const void *pred,
                const void *target, const float *weights);
int cpu_mse_bwd(struct ldm_ctx *c, const struct ldm_train_dims *d, void *dpred, void *dtarget,
                float dloss, const void *pred, const void *target, const float *weights);
int cpu_clip_norm(struct ldm_ctx *c, const struct ldm_train_dims *d, float *const *grads,
                  float *norm);
int cpu_adamw(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param, const float *grad,
              float *m, float *v);
int cpu_adamw8(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param, const float *grad,
               uint8_t *m_q, uint8_t *v_q, float *m_absmax, float *v_absmax);
int cpu_ema(struct ldm_ctx *c, const struct ldm_train_dims *d, float *ema, const float *param);
int cpu_cast(struct ldm_ctx *c, const struct ldm_cast_dims *d, void *y, const void *x);

#endif
