/* backend.h — the op set models are written against, one call for every backend.
 *
 * A model opens a context on a device (ldm_ctx_open: "cpu", later "cuda:N"),
 * lays its tensors out in arenas (tensor.h) and calls the ops below. Each op
 * checks its tensors' shapes and dtypes against each other, then hands the
 * sizes to the context's backend (struct ldm_backend at the end of this
 * file). The text here is the contract for both sides: what a model may
 * rely on, and what a backend must do.
 *
 * Rules every op follows
 * ----------------------
 *  - Layouts: tensors are contiguous and row-major (tensor.h). Shapes below
 *    use fixed letters: N batch, C/K channels in/out, H×W and Ho×Wo spatial
 *    sizes in/out, R×S kernel, L tokens (Lq queries, Lk keys), D width, M
 *    rows (all leading dims multiplied), G groups, V vocabulary, S the
 *    product of trailing spatial dims.
 *  - "=" marks an output the op overwrites; "+=" one it adds into. Every
 *    backward ADDS into every gradient it produces (inputs and parameters
 *    alike), so residual branches need no extra op; zero the gradient arenas
 *    (ldm_arena_zero) before a backward pass. A gradient argument given as
 *    NULL is not computed.
 *  - Forward ops save nothing behind the caller's back. Where a backward
 *    needs more than the forward's inputs and outputs, the forward writes it
 *    into tensors the caller passes ("saved": the normalizations' mean and
 *    rstd, attention's log-sum-exp); they are F32 on every backend.
 *  - Outputs must not overlap inputs unless the op says so.
 *  - Ops never allocate. Scratch memory comes from the context's workspace
 *    (ldm_ctx_set_workspace / ldm_ctx_reserve). How much an op needs
 *    depends on the backend and the shapes; a model learns it by running its
 *    forward and backward once between ldm_ctx_plan_begin and
 *    ldm_ctx_plan_end (ops then only check shapes and record their needs),
 *    and reserves the largest. An op given too small a workspace returns
 *    LDM_ERANGE naming the op and the bytes it needs. Any op may use the
 *    whole workspace; none keeps anything in it between calls.
 *  - Returns: 0; LDM_EINVAL for tensors that do not fit the op (the detail
 *    names the op, the tensor and both shapes); LDM_EUNSUPPORTED for a dtype
 *    the backend does not compute in (the CPU backend: F32 only); LDM_ERANGE
 *    (workspace too small, token id out of range); a backend's own failure
 *    (LDM_EIO with the driver's message).
 *  - A context computes one op at a time (an op may use every thread the
 *    context has); use one context per thread that computes. A context may move
 *    between threads (the backend's bind entry makes its device current). The CPU
 *    backend sets OpenBLAS's process-wide thread count, so two CPU contexts
 *    computing at once in one process share OpenBLAS's threads.
 *  - Ops return when their results are ready to be read by the next op of
 *    the same context; ldm_ctx_download is the point where a host sees them.
 */
#ifndef LDM_NN_BACKEND_H
#define LDM_NN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "nn/tensor.h"

enum ldm_device { LDM_DEV_CPU = 0, LDM_DEV_CUDA = 1 };

struct ldm_backend;

/* A compute context: a backend, its state and a workspace. Fields are read
 * by ops and backends; models use the functions below. */
struct ldm_ctx {
    const struct ldm_backend *be; /* the backend's op table */
    void *impl;                   /* the backend's own state */
    int device;                   /* enum ldm_device */
    int index;                    /* cuda:N; 0 for cpu */
    int threads;                  /* host threads the backend computes with */
    void *ws;                     /* the workspace, ws_bytes long, in backend memory */
    size_t ws_bytes;
    int ws_owned;                 /* ws was allocated by ldm_ctx_reserve */
    int planning;                 /* between ldm_ctx_plan_begin and _end */
    size_t ws_need;               /* the most workspace any op asked for while planning */
    struct ldm_op_prof *prof;     /* per-op timing (ldm_ctx_profile), NULL when off */
};

/* Calls and seconds of one op since profiling was turned on. */
struct ldm_op_prof {
    int64_t calls;
    double seconds;
};

/* ---- contexts and memory ------------------------------------------------------ */

/* Open a context on `device`: "cpu", or "cuda" / "cuda:N" (not built yet:
 * LDM_EUNSUPPORTED). `threads` <= 0 means every core this process may run
 * on (sched_getaffinity). *out is the caller's; close it with
 * ldm_ctx_close. Returns 0, LDM_EINVAL (a device string it cannot parse),
 * LDM_EUNSUPPORTED, LDM_ENOMEM or LDM_EIO (a thread could not start). */
int ldm_ctx_open(struct ldm_ctx **out, const char *device, int threads);

/* Close *c (NULL is fine): the workspace it owns, its threads; sets *c NULL.
 * Arenas allocated on it must be freed before. */
void ldm_ctx_close(struct ldm_ctx **c);

/* Use `bytes` at `ws` (backend memory, kept alive by the caller) as the
 * workspace; replaces (and frees) a reserved one. */
void ldm_ctx_set_workspace(struct ldm_ctx *c, void *ws, size_t bytes);

/* Make sure the context owns a workspace of at least `bytes` (allocating a
 * new one when the current one is smaller). Returns 0 or LDM_ENOMEM. */
int ldm_ctx_reserve(struct ldm_ctx *c, size_t bytes);

/* Planning: between begin and end, ops check their tensors and record the
 * workspace they would need, but compute nothing (data pointers may be
 * NULL). ldm_ctx_plan_end puts the largest need into *bytes. */
void ldm_ctx_plan_begin(struct ldm_ctx *c);
void ldm_ctx_plan_end(struct ldm_ctx *c, size_t *bytes);

/* The device's memory: bytes in use (by every process on it, cuDNN and cuBLAS
 * workspaces included) and its size, as the driver reports them. Returns 0, or
 * LDM_EUNSUPPORTED for a backend that does not know (the CPU). */
int ldm_ctx_meminfo(struct ldm_ctx *c, size_t *used, size_t *total);

/* Op timing, to find where a model's time goes: with on != 0 every op waits for the
 * device before and after itself (the backend's sync) and adds its wall time to its
 * op's row (counts restart from zero); 0 turns it off. It slows a run down (no overlap
 * between ops); the rows show the share of each kind of op. Returns 0 or LDM_ENOMEM. */
int ldm_ctx_profile(struct ldm_ctx *c, int on);

/* The rows with calls, biggest time first, as text lines "  <op>  <calls>  <ms>  <%>"
 * into f. Nothing when profiling is off. */
void ldm_ctx_profile_report(const struct ldm_ctx *c, void *file);

/* Backend memory: allocate `bytes` (zero-filled, aligned to
 * LDM_ARENA_ALIGN) into *p; free; zero; copy host->backend, backend->host,
 * backend->backend. Arenas are built on these. Return 0, LDM_ENOMEM or
 * LDM_EIO. */
int ldm_ctx_alloc(struct ldm_ctx *c, size_t bytes, void **p);
void ldm_ctx_free(struct ldm_ctx *c, void *p);
int ldm_ctx_zero(struct ldm_ctx *c, void *p, size_t bytes);
int ldm_ctx_upload(struct ldm_ctx *c, void *dst, const void *host_src, size_t bytes);
int ldm_ctx_download(struct ldm_ctx *c, void *host_dst, const void *src, size_t bytes);
int ldm_ctx_copy(struct ldm_ctx *c, void *dst, const void *src, size_t bytes);

/* ---- matrix products ------------------------------------------------------------
 *
 * linear (torch.nn.Linear): x (M, Din), w (Dout, Din), b (Dout) or NULL.
 *   forward:  y (M, Dout) = x·wᵀ + b          y's leading dims equal x's
 *   backward: dx (M, Din) += dy·w;  dw (Dout, Din) += dyᵀ·x;  db (Dout) += Σ_M dy
 *             needs x (for dw) and w (for dx).
 *
 * bmm (torch.bmm / matmul over a batch): a (B, M, K), or (B, K, M) with
 * trans_a; bm (B, K, Nc), or (B, Nc, K) with trans_b; B = every dim before
 * the last two (none: B = 1), the same in a, bm and y.
 *   forward:  y (B, M, Nc) = alpha · op(a) · op(bm)
 *   backward: da += alpha · dy·op(bm)ᵀ (stored as a is);  dbm += alpha · op(a)ᵀ·dy
 *             (stored as bm is); needs a (for dbm) and bm (for da).
 */
struct ldm_bmm_opts {
    int trans_a, trans_b; /* use a, bm transposed in their last two dims */
    float alpha;          /* scale of the product; 0 means 1 */
};
int ldm_linear_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                       const struct ldm_tensor *w, const struct ldm_tensor *b);
int ldm_linear_backward(struct ldm_ctx *c, const struct ldm_tensor *dx, const struct ldm_tensor *dw,
                        const struct ldm_tensor *db, const struct ldm_tensor *dy,
                        const struct ldm_tensor *x, const struct ldm_tensor *w);
int ldm_bmm_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *a,
                    const struct ldm_tensor *bm, const struct ldm_bmm_opts *o);
int ldm_bmm_backward(struct ldm_ctx *c, const struct ldm_tensor *da, const struct ldm_tensor *dbm,
                     const struct ldm_tensor *dy, const struct ldm_tensor *a,
                     const struct ldm_tensor *bm, const struct ldm_bmm_opts *o);

/* ---- convolution -------------------------------------------------------------------
 *
 * conv2d (torch.nn.Conv2d, groups=1, dilation 1): x (N, C, H, W),
 * w (K, C, R, S), b (K) or NULL; padding may differ per side (diffusers pads
 * (0,1,0,1) before a stride-2 conv: pad_bottom = pad_right = 1), zeros.
 *   Ho = (H + pad_top + pad_bottom − R) / stride_h + 1 (floor, >= 1), Wo alike.
 *   forward:  y[n][k][i][j] = b[k] + Σ_{c,r,s} w[k][c][r][s]·xp[n][c][i·sh+r][j·sw+s]
 *             (xp: x padded with zeros)
 *   backward: dx (N, C, H, W) += the same sums transposed (each y element's
 *             dy spread back over its window, padding dropped);
 *             dw (K, C, R, S) += Σ_{n,i,j} dy[n][k][i][j]·xp[n][c][i·sh+r][j·sw+s];
 *             db (K) += Σ_{n,i,j} dy;  needs x (for dw) and w (for dx).
 *   workspace: yes (the CPU backend: an im2col tile of at most 32 MiB).
 * A stride of 0 means 1.
 */
struct ldm_conv2d_opts {
    int stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right;
};
int ldm_conv2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                       const struct ldm_tensor *w, const struct ldm_tensor *b,
                       const struct ldm_conv2d_opts *o);
int ldm_conv2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx, const struct ldm_tensor *dw,
                        const struct ldm_tensor *db, const struct ldm_tensor *dy,
                        const struct ldm_tensor *x, const struct ldm_tensor *w,
                        const struct ldm_conv2d_opts *o);

/* ---- normalization ---------------------------------------------------------------------
 *
 * group_norm (torch.nn.GroupNorm, then SiLU when opts.silu): x (N, C, *)
 * with S = the product of the dims after C (1 when none), G = groups
 * dividing C; gamma, beta (C), or both NULL (no affine). Statistics are the
 * mean and biased variance over each group's C/G·S elements.
 *   forward:  y (N, C, *) = [silu](gamma·(x − mean)·rstd + beta)
 *             saved: mean (N, G) =, rstd (N, G) = 1/sqrt(var + eps)
 *   backward: with xh = (x − mean)·rstd and g = dy (times silu'(z) at
 *             z = gamma·xh + beta with silu), over each group of m elements:
 *             dgamma += Σ g·xh;  dbeta += Σ g;  dx += rstd·(gamma·g −
 *             mean(gamma·g) − xh·mean(gamma·g·xh));  needs x, mean, rstd,
 *             gamma and beta (beta only with silu).
 *
 * layer_norm (torch.nn.LayerNorm over the last dim): x (M, D), gamma, beta
 * (D) or both NULL.
 *   forward:  y (M, D) = gamma·(x − mean)·rstd + beta;  saved: mean (M) =, rstd (M) =
 *   backward: the group-norm formulas with one group per row, no SiLU;
 *             needs x, mean, rstd, gamma.
 * mean and rstd are F32 with the shapes given, or any shape of that many
 * elements. layer_norm takes eps from the options (NULL: 1e-5).
 */
struct ldm_norm_opts {
    int groups; /* group_norm: G > 0 dividing C; ignored by layer_norm */
    float eps;  /* added to the variance (taken as given, 0 allowed) */
    int silu;   /* group_norm: apply SiLU after the affine */
};
int ldm_group_norm_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                           const struct ldm_tensor *x, const struct ldm_tensor *gamma,
                           const struct ldm_tensor *beta, const struct ldm_norm_opts *o);
int ldm_group_norm_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dgamma, const struct ldm_tensor *dbeta,
                            const struct ldm_tensor *dy, const struct ldm_tensor *x,
                            const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                            const struct ldm_tensor *gamma, const struct ldm_tensor *beta,
                            const struct ldm_norm_opts *o);
int ldm_layer_norm_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                           const struct ldm_tensor *x, const struct ldm_tensor *gamma,
                           const struct ldm_tensor *beta, const struct ldm_norm_opts *o);
int ldm_layer_norm_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dgamma, const struct ldm_tensor *dbeta,
                            const struct ldm_tensor *dy, const struct ldm_tensor *x,
                            const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                            const struct ldm_tensor *gamma);

/* ---- pointwise and row-wise ----------------------------------------------------------------
 *
 * act: y = f(x), same shape (any), for f one of enum ldm_act. The forward
 * may run in place (y and x the same memory) when no backward follows.
 *   backward: dx += f'(x)·dy;  needs x.
 *
 * geglu (diffusers GEGLU after its projection): h (M, 2F) split into a =
 * h[:, :F] and g = h[:, F:];  y (M, F) = a · gelu(g) (exact erf GELU).
 *   backward: dh (M, 2F) += [dy·gelu(g), dy·a·gelu'(g)];  needs h.
 *
 * softmax over the last dim: x (M, D) -> y (M, D) =; may run in place.
 *   backward: dx += y ⊙ (dy − Σ_D y·dy);  needs y.
 */
enum ldm_act {
    LDM_ACT_SILU = 0,   /* x·σ(x) */
    LDM_ACT_GELU,       /* 0.5·x·(1 + erf(x/√2)) */
    LDM_ACT_GELU_TANH,  /* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
    LDM_ACT_QUICK_GELU, /* x·σ(1.702·x) (CLIP) */
    LDM_ACT_RELU,       /* max(x, 0); the gradient at 0 is 0 (torch) */
    LDM_ACT_COUNT
};
int ldm_act_forward(struct ldm_ctx *c, int act, const struct ldm_tensor *y,
                    const struct ldm_tensor *x);
int ldm_act_backward(struct ldm_ctx *c, int act, const struct ldm_tensor *dx,
                     const struct ldm_tensor *dy, const struct ldm_tensor *x);
int ldm_geglu_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *h);
int ldm_geglu_backward(struct ldm_ctx *c, const struct ldm_tensor *dh, const struct ldm_tensor *dy,
                       const struct ldm_tensor *h);
int ldm_softmax_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x);
int ldm_softmax_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                         const struct ldm_tensor *dy, const struct ldm_tensor *y);

/* ---- attention -----------------------------------------------------------------------------
 *
 * Scaled dot-product attention, multi-head, without a Lq×Lk matrix in
 * memory (tiled, online softmax; the backward recomputes the scores).
 * q (N, Lq, H·Dh), k (N, Lk, H·Dh), v (N, Lk, H·Dv): head h uses columns
 * h·Dh .. (h+1)·Dh − 1 of q and k, and h·Dv .. of v, so projections feed in
 * without a transpose. Self-attention: Lk = Lq; cross-attention: k and v
 * from the other sequence.
 *   scores s[i][j] = scale · q_i·k_j over keys j that row i may see: all, or
 *   j <= i when causal (aligned top-left, as torch's is_causal), and only
 *   keys whose key_mask (U8, (N, Lk)) byte is nonzero when a mask is given.
 *   forward:  out (N, Lq, H·Dv) = softmax_j(s) · v
 *             saved: lse (N, H, Lq) F32 = log Σ_j exp(s[i][j]); −inf for a
 *             row that may see no key, whose output is then 0 (torch gives NaN)
 *   backward, per sample and head, with P = exp(s − lse) recomputed tile by
 *   tile (0 where masked or where lse = −inf) and D_i = Σ dout_i·out_i:
 *             dv += Pᵀ·dout;  dS = P ⊙ (dout·vᵀ − D);  dq += scale·dS·k;
 *             dk += scale·dSᵀ·q;  needs q, k, v, out, lse (and the same options).
 *   workspace: yes (the CPU backend: a few score tiles per thread).
 * scale 0 means 1/sqrt(Dh). upcast asks a reduced-precision backend to
 * compute scores and softmax in F32 (diffusers' upcast_attention); the CPU
 * backend always does.
 */
struct ldm_attn_opts {
    int heads;                          /* H > 0, dividing q's width */
    float scale;                        /* 0: 1/sqrt(Dh) */
    int causal;
    const struct ldm_tensor *key_mask;  /* U8 (N, Lk), or NULL */
    int upcast;
};
int ldm_attention_forward(struct ldm_ctx *c, const struct ldm_tensor *out,
                          const struct ldm_tensor *lse, const struct ldm_tensor *q,
                          const struct ldm_tensor *k, const struct ldm_tensor *v,
                          const struct ldm_attn_opts *o);
int ldm_attention_backward(struct ldm_ctx *c, const struct ldm_tensor *dq,
                           const struct ldm_tensor *dk, const struct ldm_tensor *dv,
                           const struct ldm_tensor *dout, const struct ldm_tensor *q,
                           const struct ldm_tensor *k, const struct ldm_tensor *v,
                           const struct ldm_tensor *out, const struct ldm_tensor *lse,
                           const struct ldm_attn_opts *o);

/* ---- resampling and pooling (x (N, C, H, W) -> y (N, C, Ho, Wo)) ----------------------------
 *
 * upsample_nearest2x: Ho = 2H, Wo = 2W, y[i][j] = x[i/2][j/2].
 *   backward: dx += the sum of each 2×2 block of dy.
 * avg_pool2d / max_pool2d (torch, ceil_mode False): kernel kh×kw, stride
 * (0: the kernel), zero padding ph, pw (<= half the kernel);
 * Ho = (H + 2·ph − kh)/sh + 1. avg: the divisor is the window clipped to the
 * padded input when count_include_pad, else the number of input elements
 * in it. max: padding never wins; the gradient goes to the first largest
 * element of a window in row-major order (as torch on CPU), found again
 * from x in the backward.
 *   avg backward: dx += ...;  max backward: dx += ..., needs x.
 * adaptive_avg_pool2d (torch): Ho, Wo from y; row bin i covers
 * floor(i·H/Ho) .. ceil((i+1)·H/Ho) − 1, columns alike.
 * bilinear (torch F.interpolate mode="bilinear", align_corners=False): Ho,
 * Wo from y (any sizes, up or down); with antialias, downscaling widens the
 * triangle filter by the scale (torch antialias=True, PIL's BILINEAR).
 *   backward: dx += the transpose of the forward's weights applied to dy.
 *   workspace: yes (the CPU backend: per-axis tap tables).
 */
struct ldm_pool_opts {
    int kernel_h, kernel_w;
    int stride_h, stride_w; /* 0: the kernel size */
    int pad_h, pad_w;
    int count_include_pad;  /* avg_pool2d only */
};
int ldm_upsample_nearest2x_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                                   const struct ldm_tensor *x);
int ldm_upsample_nearest2x_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                                    const struct ldm_tensor *dy);
int ldm_avg_pool2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *x, const struct ldm_pool_opts *o);
int ldm_avg_pool2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dy, const struct ldm_pool_opts *o);
int ldm_max_pool2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *x, const struct ldm_pool_opts *o);
int ldm_max_pool2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dy, const struct ldm_tensor *x,
                            const struct ldm_pool_opts *o);
int ldm_adaptive_avg_pool2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                                    const struct ldm_tensor *x);
int ldm_adaptive_avg_pool2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                                     const struct ldm_tensor *dy);
int ldm_bilinear_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                         int antialias);
int ldm_bilinear_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                          const struct ldm_tensor *dy, int antialias);

/* ---- moving tensors around -------------------------------------------------------------------
 *
 * concat along dim 1: xs[i] (N, Ci, *), the same N and trailing dims (S
 * elements per channel) -> y (N, ΣCi, *) =.  backward: dxs[i] += its slice
 * of dy; a part whose gradient is not wanted is a descriptor with NULL data.
 * transpose of the last two dims: x (N, A, B) -> y (N, B, A) =; NCHW viewed
 * as (N, C, H·W) becomes (N, H·W, C) tokens, and back.  backward: dx += dyᵀ.
 * add: y = alpha·a + beta·b, all the same shape (b NULL: y = alpha·a); y may
 * be a or b (in place).  backward: da += alpha·dy;  db += beta·dy.
 * add_bcast: y (N, C, *) = x + v[:, :, None, ...] with v (N, C) (a time
 * embedding added to a feature map); y may be x.
 *   backward: dx += dy;  dv (N, C) += Σ_S dy.
 */
int ldm_concat_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                       const struct ldm_tensor *const *xs, int n);
int ldm_concat_backward(struct ldm_ctx *c, const struct ldm_tensor *const *dxs, int n,
                        const struct ldm_tensor *dy);
int ldm_transpose_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                          const struct ldm_tensor *x);
int ldm_transpose_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                           const struct ldm_tensor *dy);
int ldm_add_forward(struct ldm_ctx *c, const struct ldm_tensor *y, float alpha,
                    const struct ldm_tensor *a, float beta, const struct ldm_tensor *b);
int ldm_add_backward(struct ldm_ctx *c, const struct ldm_tensor *da, float alpha,
                     const struct ldm_tensor *db, float beta, const struct ldm_tensor *dy);
int ldm_add_bcast_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                          const struct ldm_tensor *v);
int ldm_add_bcast_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                           const struct ldm_tensor *dv, const struct ldm_tensor *dy);

/* ---- dtype conversion ---------------------------------------------------------------------------
 *
 * cast: x and y any float dtypes (F32, F16, BF16), the same number of elements
 * (shapes may differ): y = alpha·x, or y += alpha·x with accumulate, computed in
 * F32 and rounded to y's dtype (nearest even; F16 overflow gives ±inf, NaN stays
 * NaN). Mixed precision moves F32 master weights into the compute dtype, the
 * compute gradients back into the F32 gradients, and a prediction into F32 for
 * the loss with it. alpha 0 means 1. y must not overlap x unless they are the
 * same memory of one dtype.
 */
int ldm_cast(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
             float alpha, int accumulate);

/* ---- embeddings ---------------------------------------------------------------------------------
 *
 * timestep_embedding (diffusers get_timestep_embedding): t (N) F32 -> y
 * (N, E) =. With half = E/2: freq_i = exp(−ln(max_period)·i/(half −
 * downscale_freq_shift)), a = scale·t·freq; y = [sin a, cos a], or
 * [cos a, sin a] with flip_sin_to_cos; an odd E gets a zero last column.
 * Forward only (timesteps are not trained). max_period 0 means 10000,
 * scale 0 means 1.
 * embedding (torch.nn.Embedding): ids (M) I32 or I64, table (V, D) ->
 * y (M, D) = table[ids]; an id outside 0..V−1 is LDM_ERANGE naming it.
 *   backward: dtable (V, D) += dy rows added at their ids (repeats add up).
 */
struct ldm_temb_opts {
    int flip_sin_to_cos;
    float downscale_freq_shift;
    float scale;      /* 0: 1 */
    float max_period; /* 0: 10000 */
};
int ldm_timestep_embedding(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *t, const struct ldm_temb_opts *o);
int ldm_embedding_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                          const struct ldm_tensor *ids, const struct ldm_tensor *table);
int ldm_embedding_backward(struct ldm_ctx *c, const struct ldm_tensor *dtable,
                           const struct ldm_tensor *dy, const struct ldm_tensor *ids);

/* ---- training -----------------------------------------------------------------------------------
 *
 * mse_loss (diffusers' training scripts with per-sample weights such as
 * min-SNR-γ): pred, target (N, *) with S elements per sample, weights (N)
 * or NULL (all 1):
 *   forward:  loss (1 element) = (1/N) Σ_n weights[n] · (1/S) Σ_i (pred − target)²
 *   backward: dpred += dloss·weights[n]·2(pred − target)/(N·S);  dtarget += −(the same);
 *             dloss is the loss's upstream gradient (1, or the fp16 loss scale).
 * clip_grad_norm (torch.nn.utils.clip_grad_norm_, norm 2): norm = sqrt of
 * Σ g² over every element of grads[0..n−1], into *norm; when max_norm > 0
 * and norm·(max_norm/(norm + 1e−6)) would shrink them, every gradient is
 * multiplied by max_norm/(norm + 1e−6). A non-finite norm is returned and
 * the gradients are left as they are (the caller skips the step).
 * adamw_step (torch.optim.AdamW, amsgrad off): param, grad, m, v the same
 * shape, F32; step counts this update (1 on the first):
 *   param *= 1 − lr·wd;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *   param −= lr/(1−β1^step) · m / (sqrt(v)/sqrt(1−β2^step) + eps)
 */
struct ldm_adamw_opts {
    double lr, beta1, beta2, eps, weight_decay; /* as torch's Python floats */
    int64_t step;                               /* >= 1 */
};
/* adamw8_step (bitsandbytes' AdamW8bit: 8-bit block-wise state, percentile
 * clipping off, no stochastic rounding; the order of operations of its CUDA
 * kernel kOptimizerStatic8bit2StateBlockwise): param and grad F32 (n); the
 * moments are stored 8-bit, each block of LDM_ADAM8_BLOCK consecutive
 * elements as U8 codes into bitsandbytes' dynamic quantisation maps
 * (create_dynamic_map: map_s signed for m, map_u unsigned for v) scaled by the block's
 * absolute maximum: m_q, v_q U8 (n), m_absmax, v_absmax F32
 * (ceil(n / LDM_ADAM8_BLOCK)). Everything is float32: lr, β1, β2, eps, wd
 * rounded to float; c1 = 1 − β1^step, c2 = sqrt(1 − β2^step) (the powers
 * taken in double, then rounded). Per element with a finite g:
 *   m = map_s[m_q]·m_absmax·β1 + (1−β1)·g;  v = map_u[v_q]·v_absmax·β2 + (1−β2)·g·g
 *   param += (−lr·c2/c1) · m / (sqrt(v) + c2·eps);  then, when wd > 0, param *= 1 − lr·wd
 * so the bias corrections are folded into the step size and eps, and the
 * weight decay comes after the update (not adamw_step's order or rounding).
 * An element whose g is inf or NaN keeps its param and gets m = v = 0. A
 * block's new m_absmax (v_absmax) is the largest |m| (|v|) in it; a short
 * last block also counts the kernel's idle lanes, |map_s[128]·m_absmax·β1|
 * (and 0 for v). Codes come from the kernel's binary search for the nearest
 * code to m/m_absmax (v/v_absmax), midpoints rounded to float; an m code
 * whose value's sign differs from m's moves one code towards m's side
 * (code 0 − 1 wraps to 255). A block of all-zero moments (absmax 0) thus
 * gets m codes 255 (0 for a −0 moment) and v codes 0.
 * Fresh state is all zero codes and zero absmax, as bitsandbytes starts:
 * the op treats step 1 as that state whatever the tensors hold.
 * bitsandbytes keeps tensors of fewer than 4096 elements (min_8bit_size) in
 * 32-bit state; choosing this op or adamw_step per tensor is the caller's.
 * ema_update (diffusers EMAModel.step, one tensor): ema, param F32, the
 * same shape:  ema −= (1 − decay)·(ema − param), in that order of
 * operations (as torch's sub_/mul_ on float32).
 */
#define LDM_ADAM8_BLOCK 256
int ldm_adamw8_step(struct ldm_ctx *c, const struct ldm_tensor *param,
                    const struct ldm_tensor *grad, const struct ldm_tensor *m_q,
                    const struct ldm_tensor *v_q, const struct ldm_tensor *m_absmax,
                    const struct ldm_tensor *v_absmax, const struct ldm_adamw_opts *o);
int ldm_ema_update(struct ldm_ctx *c, const struct ldm_tensor *ema,
                   const struct ldm_tensor *param, double decay);
int ldm_mse_loss_forward(struct ldm_ctx *c, const struct ldm_tensor *loss,
                         const struct ldm_tensor *pred, const struct ldm_tensor *target,
                         const struct ldm_tensor *weights);
int ldm_mse_loss_backward(struct ldm_ctx *c, const struct ldm_tensor *dpred,
                          const struct ldm_tensor *dtarget, float dloss,
                          const struct ldm_tensor *pred, const struct ldm_tensor *target,
                          const struct ldm_tensor *weights);
int ldm_clip_grad_norm(struct ldm_ctx *c, const struct ldm_tensor *grads, int n, float max_norm,
                       float *norm);
int ldm_adamw_step(struct ldm_ctx *c, const struct ldm_tensor *param,
                   const struct ldm_tensor *grad, const struct ldm_tensor *m,
                   const struct ldm_tensor *v, const struct ldm_adamw_opts *o);

/* =====================================================================================
 * For backend implementers
 * =====================================================================================
 *
 * The ops above check their tensors, fill one of the size structs below and
 * call the backend's entry with the tensors' data pointers, in the order and
 * with the meaning the op's text gives. Every size is already checked:
 * consistent, nonnegative, and the sizes a GEMM takes fit in 32 bits.
 * `dtype` is the float tensors' common dtype, one the backend lists in
 * `dtypes`; saved statistics (mean, rstd, lse), the loss, the MSE weights,
 * the timesteps and the optimizer's tensors are always F32.
 *  - A gradient pointer is NULL when that gradient is not wanted: skip it.
 *    An entry whose only gradient is not wanted is not called.
 *  - Backward entries add (+=) into every gradient; forward entries
 *    overwrite (=) every output, including the saved statistics.
 *  - Pointers may alias only where the op's text allows it (in place).
 *  - Empty tensors (a zero size) reach the entries: do nothing for them.
 *  - An entry returns 0 or a code with ldm_fail() (a driver failure: LDM_EIO).
 *    An embedding entry checks the ids itself (they live in backend
 *    memory) and returns LDM_ERANGE naming the first bad one.
 *  - Results must be deterministic for a given thread count (the CPU
 *    backend's are; it never accumulates across threads with atomics).
 *
 * workspace(c, op, dims) returns the bytes entry `op` (enum ldm_op) needs
 * for these sizes; the op checks it against the context's workspace before
 * the call, and the entry finds it at c->ws. It must not depend on the data.
 * The CPU backend asks for it in conv2d (the column matrix: at most 32 MiB,
 * plus K·T floats when small images are batched), attention (threads ×
 * (BQ·BK + 2·BQ) floats forward, threads × (2·BQ·BK + Lq) backward, BQ = 64,
 * BK = 128) and bilinear (two tap tables).
 */
enum ldm_op {
    LDM_OP_LINEAR_FWD, LDM_OP_LINEAR_BWD, LDM_OP_BMM_FWD, LDM_OP_BMM_BWD,
    LDM_OP_CONV2D_FWD, LDM_OP_CONV2D_BWD, LDM_OP_GROUP_NORM_FWD, LDM_OP_GROUP_NORM_BWD,
    LDM_OP_LAYER_NORM_FWD, LDM_OP_LAYER_NORM_BWD, LDM_OP_ACT_FWD, LDM_OP_ACT_BWD,
    LDM_OP_GEGLU_FWD, LDM_OP_GEGLU_BWD, LDM_OP_SOFTMAX_FWD, LDM_OP_SOFTMAX_BWD,
    LDM_OP_ATTN_FWD, LDM_OP_ATTN_BWD, LDM_OP_UPSAMPLE_FWD, LDM_OP_UPSAMPLE_BWD,
    LDM_OP_AVG_POOL_FWD, LDM_OP_AVG_POOL_BWD, LDM_OP_MAX_POOL_FWD, LDM_OP_MAX_POOL_BWD,
    LDM_OP_ADAPTIVE_POOL_FWD, LDM_OP_ADAPTIVE_POOL_BWD, LDM_OP_BILINEAR_FWD,
    LDM_OP_BILINEAR_BWD, LDM_OP_CONCAT_FWD, LDM_OP_CONCAT_BWD, LDM_OP_TRANSPOSE_FWD,
    LDM_OP_TRANSPOSE_BWD, LDM_OP_ADD_FWD, LDM_OP_ADD_BWD, LDM_OP_ADD_BCAST_FWD,
    LDM_OP_ADD_BCAST_BWD, LDM_OP_TEMB, LDM_OP_EMBEDDING_FWD, LDM_OP_EMBEDDING_BWD,
    LDM_OP_MSE_FWD, LDM_OP_MSE_BWD, LDM_OP_CLIP_NORM, LDM_OP_ADAMW, LDM_OP_ADAMW8,
    LDM_OP_EMA, LDM_OP_CAST,
    LDM_OP_COUNT
};

/* The op's name for error details ("conv2d backward"). */
const char *ldm_op_name(int op);

struct ldm_linear_dims { int64_t M, Din, Dout; int dtype; };
struct ldm_bmm_dims { int64_t B, M, N, K; int trans_a, trans_b; float alpha; int dtype; };
struct ldm_conv2d_dims {
    int64_t N, C, H, W, K, R, S, Ho, Wo;
    int stride_h, stride_w, pad_top, pad_left; /* bottom/right padding is implied by Ho, Wo */
    int dtype;
};
/* group norm: x (N, C, S), G groups; layer norm: N = M rows, C = D, S = 1, G = 1. */
struct ldm_norm_dims { int64_t N, C, S, G; float eps; int silu; int affine; int dtype; };
/* act: n elements; geglu: M rows, D = F; softmax: M rows of D. */
struct ldm_pointwise_dims { int64_t n, M, D; int act; int dtype; };
struct ldm_attn_dims {
    int64_t N, Lq, Lk, H, Dh, Dv; /* rows of q/out are H·Dh / H·Dv wide, of k H·Dh, of v H·Dv */
    float scale;                  /* resolved: never 0 */
    int causal, masked, upcast;
    int dtype;
};
/* upsample, pools, bilinear: x (N, C, H, W) -> (N, C, Ho, Wo). */
struct ldm_resample_dims {
    int64_t N, C, H, W, Ho, Wo;
    int kh, kw, sh, sw, ph, pw; /* pools; stride resolved */
    int count_include_pad, antialias;
    int dtype;
};
/* concat: n parts of C[i] channels, Ctot in all, S elements per channel.
 * transpose: x (N, A, B) as N, C = A, S = B. add: n elements. add_bcast:
 * (N, C, S). */
struct ldm_layout_dims { int64_t N, C, S, Ctot, n; const int64_t *parts; int nparts; int dtype; };
struct ldm_embed_dims {
    int64_t M, V, D;        /* embedding: ids (M), table (V, D); timestep: t (M), y (M, D) */
    int id_dtype;           /* LDM_DT_I32 or LDM_DT_I64 */
    int flip;               /* timestep options, resolved */
    float shift, scale, max_period;
    int dtype;
};
/* mse: (N, S); clip: n tensors with their element counts; adamw, adamw8,
 * ema: n elements (adamw8: nblocks = ceil(n / LDM_ADAM8_BLOCK)). */
struct ldm_train_dims {
    int64_t N, S, n, nblocks;
    const int64_t *counts;
    int weighted;
    float max_norm;
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step;
    double decay; /* ema: as a Python float; 1 − decay is rounded to F32 as torch does */
    int dtype;
};

/* cast: n elements from xdtype to ydtype (dtype = ydtype). */
struct ldm_cast_dims { int64_t n; int xdtype, ydtype; float alpha; int accumulate; int dtype; };

struct ldm_backend {
    const char *name; /* "cpu", "cuda" */
    unsigned dtypes;  /* bit (1u << dtype) for each float dtype the ops compute in */

    int (*open)(struct ldm_ctx *c);   /* c->threads and c->index set; fill c->impl */
    void (*close)(struct ldm_ctx *c); /* free c->impl */
    int (*alloc)(struct ldm_ctx *c, size_t bytes, void **p); /* zeroed, LDM_ARENA_ALIGN-aligned */
    void (*free)(struct ldm_ctx *c, void *p);
    int (*zero)(struct ldm_ctx *c, void *p, size_t bytes);
    int (*upload)(struct ldm_ctx *c, void *dst, const void *src, size_t bytes);
    int (*download)(struct ldm_ctx *c, void *dst, const void *src, size_t bytes);
    int (*copy)(struct ldm_ctx *c, void *dst, const void *src, size_t bytes);
    size_t (*workspace)(const struct ldm_ctx *c, int op, const void *dims);

    int (*linear_fwd)(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *y, const void *x,
                      const void *w, const void *b);
    int (*linear_bwd)(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *dx, void *dw,
                      void *db, const void *dy, const void *x, const void *w);
    int (*bmm_fwd)(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *y, const void *a,
                   const void *b);
    int (*bmm_bwd)(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *da, void *db,
                   const void *dy, const void *a, const void *b);
    int (*conv2d_fwd)(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *y, const void *x,
                      const void *w, const void *b);
    int (*conv2d_bwd)(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *dx, void *dw,
                      void *db, const void *dy, const void *x, const void *w);
    /* norms: mean, rstd are float (F32); gamma, beta NULL when !affine */
    int (*group_norm_fwd)(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y, float *mean,
                          float *rstd, const void *x, const void *gamma, const void *beta);
    int (*group_norm_bwd)(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx,
                          void *dgamma, void *dbeta, const void *dy, const void *x,
                          const float *mean, const float *rstd, const void *gamma,
                          const void *beta);
    int (*layer_norm_fwd)(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y, float *mean,
                          float *rstd, const void *x, const void *gamma, const void *beta);
    int (*layer_norm_bwd)(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx,
                          void *dgamma, void *dbeta, const void *dy, const void *x,
                          const float *mean, const float *rstd, const void *gamma);
    int (*act_fwd)(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y, const void *x);
    int (*act_bwd)(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                   const void *dy, const void *x);
    int (*geglu_fwd)(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                     const void *h);
    int (*geglu_bwd)(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dh,
                     const void *dy, const void *h);
    int (*softmax_fwd)(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                       const void *x);
    int (*softmax_bwd)(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                       const void *dy, const void *y);
    /* mask: U8 (N, Lk) or NULL; lse F32 (N, H, Lq) */
    int (*attn_fwd)(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *out, float *lse,
                    const void *q, const void *k, const void *v, const uint8_t *mask);
    int (*attn_bwd)(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *dq, void *dk,
                    void *dv, const void *dout, const void *q, const void *k, const void *v,
                    const void *out, const float *lse, const uint8_t *mask);
    int (*upsample_fwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                        const void *x);
    int (*upsample_bwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                        const void *dy);
    int (*avg_pool_fwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                        const void *x);
    int (*avg_pool_bwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                        const void *dy);
    int (*max_pool_fwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                        const void *x);
    int (*max_pool_bwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                        const void *dy, const void *x);
    int (*adaptive_pool_fwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                             const void *x);
    int (*adaptive_pool_bwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                             const void *dy);
    int (*bilinear_fwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                        const void *x);
    int (*bilinear_bwd)(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                        const void *dy);
    /* xs / dxs: nparts pointers (dxs entries may be NULL) */
    int (*concat_fwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                      const void *const *xs);
    int (*concat_bwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *const *dxs,
                      const void *dy);
    int (*transpose_fwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                         const void *x);
    int (*transpose_bwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx,
                         const void *dy);
    int (*add_fwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, float alpha,
                   const void *a, float beta, const void *b);
    int (*add_bwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *da, float alpha,
                   void *db, float beta, const void *dy);
    int (*add_bcast_fwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                         const void *x, const void *v);
    int (*add_bcast_bwd)(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx, void *dv,
                         const void *dy);
    int (*timestep_fwd)(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y,
                        const float *t);
    int (*embedding_fwd)(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y,
                         const void *ids, const void *table);
    int (*embedding_bwd)(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *dtable,
                         const void *dy, const void *ids);
    /* loss: one F32 */
    int (*mse_fwd)(struct ldm_ctx *c, const struct ldm_train_dims *d, float *loss,
                   const void *pred, const void *target, const float *weights);
    int (*mse_bwd)(struct ldm_ctx *c, const struct ldm_train_dims *d, void *dpred, void *dtarget,
                   float dloss, const void *pred, const void *target, const float *weights);
    /* grads: d->n pointers of d->counts[i] F32 elements; *norm on the host */
    int (*clip_norm)(struct ldm_ctx *c, const struct ldm_train_dims *d, float *const *grads,
                     float *norm);
    int (*adamw)(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param,
                 const float *grad, float *m, float *v);
    int (*adamw8)(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param,
                  const float *grad, uint8_t *m_q, uint8_t *v_q, float *m_absmax,
                  float *v_absmax);
    int (*ema)(struct ldm_ctx *c, const struct ldm_train_dims *d, float *ema, const float *param);
    int (*cast)(struct ldm_ctx *c, const struct ldm_cast_dims *d, void *y, const void *x);
    /* bit (1u << dtype) for each float dtype the op wrappers accept by converting
     * to F32 around the backend's F32 entries (ops_emu.c): the CPU backend's F16
     * and BF16, so that reduced-precision models run (slowly) and can be checked
     * where there is no GPU. Outputs are rounded to their dtype as a reduced-
     * precision kernel stores them. */
    unsigned emulated;
    /* Make c's device the calling thread's current one (NULL: nothing to do). The op
     * wrappers and the ldm_ctx_* memory calls call it first, so a context may be used
     * from any thread (one at a time), whatever device that thread used before. */
    int (*bind)(struct ldm_ctx *c);
    /* Wait until every op queued on c is done (NULL: ops are synchronous). */
    int (*sync)(struct ldm_ctx *c);
    /* The device's memory in use (by every process) and its size (NULL: not known). */
    int (*meminfo)(struct ldm_ctx *c, size_t *used, size_t *total);
};

/* The CPU backend (nn/cpu/). */
extern const struct ldm_backend ldm_cpu_backend;

/* The CUDA backend (nn/cuda/), or NULL in a build without CUDA. */
const struct ldm_backend *ldm_cuda_backend_get(void);

#endif
