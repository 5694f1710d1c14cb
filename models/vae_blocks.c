/* vae_blocks.c — AutoencoderKL blocks (resnet, mid-block attention, resampling) on the op set. */
#include "vae_blocks.h"

#include "err.h"

#define CK(x)                                                                                      \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

/* Record or check the need of slot s for n elements; *data its memory. */
static int slot_take(struct vb_run *r, int s, size_t n, float **data)
{
    *data = NULL;
    if (r->ctx->planning) {
        if (n > r->need[s])
            r->need[s] = n;
        return 0;
    }
    if (n > r->cap[s])
        return ldm_fail(LDM_ERANGE, "vae: activation slot %d holds %zu elements, %zu needed", s,
                        r->cap[s], n);
    *data = r->slot[s];
    return 0;
}

int vb_view(struct vb_run *r, int s, int64_t N, int64_t C, int64_t H, int64_t W,
            struct ldm_tensor *t)
{
    float *d;
    CK(slot_take(r, s, (size_t)N * (size_t)C * (size_t)H * (size_t)W, &d));
    *t = ldm_tensor_f32(d, N, C, H, W);
    return 0;
}

int vb_view3(struct vb_run *r, int s, int64_t N, int64_t A, int64_t B, struct ldm_tensor *t)
{
    float *d;
    CK(slot_take(r, s, (size_t)N * (size_t)A * (size_t)B, &d));
    *t = ldm_tensor_f32(d, N, A, B);
    return 0;
}

int vb_conv_fwd(struct vb_run *r, const struct ldm_tensor *y, const struct ldm_tensor *x,
                const struct vb_conv *p, int pad)
{
    struct ldm_conv2d_opts o = {1, 1, pad, pad, pad, pad};
    return ldm_conv2d_forward(r->ctx, y, x, p->w, p->b, &o);
}

int vb_norm_fwd(struct vb_run *r, const struct ldm_tensor *y, const struct ldm_tensor *x,
                const struct vb_norm *p, int silu)
{
    struct ldm_tensor mean, rstd;
    struct ldm_norm_opts o = {r->groups, r->eps, silu};
    CK(vb_view3(r, VB_MEAN, 1, x->shape[0], r->groups, &mean)); /* (N, G) */
    CK(vb_view3(r, VB_RSTD, 1, x->shape[0], r->groups, &rstd)); /* (N, G) */
    return ldm_group_norm_forward(r->ctx, y, &mean, &rstd, x, p->g, p->b, &o);
}

int vb_resnet_fwd(struct vb_run *r, const struct vb_resnet *p, int a, int b, int c, int64_t N,
                  int64_t H, int64_t W)
{
    struct ldm_tensor x, h1, h2, h3, h4, sc, y;
    int64_t ci = p->cin, co = p->cout;
    CK(vb_view(r, a, N, ci, H, W, &x));                /* x  (N, Cin, H, W) */
    CK(vb_view(r, b, N, ci, H, W, &h1));
    CK(vb_norm_fwd(r, &h1, &x, &p->norm1, 1));        /* h1 (N, Cin, H, W) = silu(norm1(x)) */
    CK(vb_view(r, c, N, co, H, W, &h2));
    CK(vb_conv_fwd(r, &h2, &h1, &p->conv1, 1));       /* h2 (N, Cout, H, W) = conv1(h1) */
    CK(vb_view(r, b, N, co, H, W, &h3));
    CK(vb_norm_fwd(r, &h3, &h2, &p->norm2, 1));       /* h3 (N, Cout, H, W) = silu(norm2(h2)) */
    CK(vb_view(r, c, N, co, H, W, &h4));
    CK(vb_conv_fwd(r, &h4, &h3, &p->conv2, 1));       /* h4 (N, Cout, H, W) = conv2(h3) */
    CK(vb_view(r, a, N, co, H, W, &y));
    if (!p->conv_shortcut.w)                          /* y (N, Cout, H, W) = x + h4 */
        return ldm_add_forward(r->ctx, &y, 1.0f, &x, 1.0f, &h4);
    CK(vb_view(r, b, N, co, H, W, &sc));
    CK(vb_conv_fwd(r, &sc, &x, &p->conv_shortcut, 0)); /* sc (N, Cout, H, W) = shortcut(x) */
    return ldm_add_forward(r->ctx, &y, 1.0f, &sc, 1.0f, &h4); /* y = sc + h4 */
}

/* diffusers Attention (one head of width C, residual connection, rescale
 * factor 1) over the H·W positions of slot a, in place. */
static int attn_fwd(struct vb_run *r, const struct vb_attn *p, int a, int b, int c, int64_t N,
                    int64_t L)
{
    struct ldm_tensor x, hn, tok, q, k, v, o, lse, back;
    int64_t C = p->c;
    struct ldm_attn_opts ao = {.heads = 1, .scale = 0.0f, .upcast = 1};
    CK(vb_view3(r, a, N, C, L, &x));                /* x   (N, C, L) with L = H·W */
    CK(vb_view3(r, b, N, C, L, &hn));
    CK(vb_norm_fwd(r, &hn, &x, &p->group_norm, 0));   /* hn  (N, C, L) = group_norm(x) */
    CK(vb_view3(r, c, N, L, C, &tok));
    CK(ldm_transpose_forward(r->ctx, &tok, &hn));     /* tok (N, L, C) */
    CK(vb_view3(r, VB_Q, N, L, C, &q));
    CK(ldm_linear_forward(r->ctx, &q, &tok, p->to_q.w, p->to_q.b)); /* q (N, L, C) */
    CK(vb_view3(r, VB_K, N, L, C, &k));
    CK(ldm_linear_forward(r->ctx, &k, &tok, p->to_k.w, p->to_k.b)); /* k (N, L, C) */
    CK(vb_view3(r, VB_V, N, L, C, &v));
    CK(ldm_linear_forward(r->ctx, &v, &tok, p->to_v.w, p->to_v.b)); /* v (N, L, C) */
    CK(vb_view3(r, VB_O, N, L, C, &o));
    CK(vb_view3(r, VB_LSE, N, 1, L, &lse));         /* lse (N, 1, L) */
    CK(ldm_attention_forward(r->ctx, &o, &lse, &q, &k, &v, &ao)); /* o (N, L, C), scale 1/√C */
    CK(ldm_linear_forward(r->ctx, &tok, &o, p->to_out.w, p->to_out.b)); /* tok (N, L, C) */
    CK(vb_view3(r, b, N, C, L, &back));
    CK(ldm_transpose_forward(r->ctx, &back, &tok));   /* back (N, C, L) */
    return ldm_add_forward(r->ctx, &x, 1.0f, &x, 1.0f, &back); /* x (N, C, L) += back */
}

int vb_mid_fwd(struct vb_run *r, const struct vb_mid *p, int a, int b, int c, int64_t N,
               int64_t H, int64_t W)
{
    CK(vb_resnet_fwd(r, &p->resnets[0], a, b, c, N, H, W)); /* (N, C, H, W) */
    if (p->has_attn)
        CK(attn_fwd(r, &p->attn, a, b, c, N, H * W)); /* (N, C, H, W) */
    return vb_resnet_fwd(r, &p->resnets[1], a, b, c, N, H, W); /* (N, C, H, W) */
}

int vb_down_fwd(struct vb_run *r, const struct vb_conv *p, int a, int b, int64_t N, int64_t C,
                int64_t *H, int64_t *W)
{
    struct ldm_tensor x, y;
    struct ldm_conv2d_opts o = {2, 2, 0, 1, 0, 1};
    int64_t Ho = (*H + 1 - 3) / 2 + 1, Wo = (*W + 1 - 3) / 2 + 1;
    if (*H < 2 || *W < 2)
        return ldm_fail(LDM_EINVAL, "vae: a %lldx%lld map cannot be downsampled", (long long)*H,
                        (long long)*W);
    CK(vb_view(r, a, N, C, *H, *W, &x));  /* x (N, C, H, W) */
    CK(vb_view(r, b, N, C, Ho, Wo, &y));  /* y (N, C, H/2, W/2) */
    CK(ldm_conv2d_forward(r->ctx, &y, &x, p->w, p->b, &o));
    *H = Ho;
    *W = Wo;
    return 0;
}

int vb_up_fwd(struct vb_run *r, const struct vb_conv *p, int a, int b, int c, int64_t N,
              int64_t C, int64_t *H, int64_t *W)
{
    struct ldm_tensor x, u, y;
    CK(vb_view(r, a, N, C, *H, *W, &x));          /* x (N, C, H, W) */
    CK(vb_view(r, b, N, C, 2 * *H, 2 * *W, &u));
    CK(ldm_upsample_nearest2x_forward(r->ctx, &u, &x)); /* u (N, C, 2H, 2W) */
    CK(vb_view(r, c, N, C, 2 * *H, 2 * *W, &y));
    CK(vb_conv_fwd(r, &y, &u, p, 1));             /* y (N, C, 2H, 2W) = conv(u) */
    *H *= 2;
    *W *= 2;
    return 0;
}
