/* unet_blocks.c — the UNet's layers and blocks as diffusers v0.26.3 builds them
 * (ResnetBlock2D, Transformer2DModel with BasicTransformerBlock, Down/Upsample2D)
 * and the whole UNet2DConditionModel, written as one walk that declares parameters,
 * lays out activations and records ops (unet_graph.c). */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "models/unet_int.h"

/* dst = "pre.leaf"; a name too long for dst is cut (and then found nowhere). */
static void join(char *dst, size_t size, const char *pre, const char *leaf)
{
    int n = snprintf(dst, size, "%s.%s", pre, leaf);
    if (n < 0 || (size_t)n >= size)
        dst[size - 1] = '\0';
}

/* ---- layers ------------------------------------------------------------------------ */

/* pre.weight (K, C, R, R), pre.bias (K): x (N, C, H, W) -> (N, K, H/stride, W/stride),
 * padding R/2 each side. */
struct ldm_tensor ug_conv(struct ug *g, const char *pre, struct ldm_tensor x, int64_t K, int R,
                          int stride)
{
    int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    int p = R / 2;
    int64_t Ho = (H + 2 * p - R) / stride + 1, Wo = (W + 2 * p - R) / stride + 1;
    struct ug_node *n = ug_node(g, UG_CONV);
    n->t[2] = ug_paramv(g, pre, "weight", K, C, R, R);
    n->t[3] = ug_paramv(g, pre, "bias", K);
    n->t[1] = x;                                  /* (N, C, H, W) */
    n->t[0] = ug_actv(g, N, K, Ho, Wo);           /* (N, K, Ho, Wo) */
    n->o.conv = (struct ldm_conv2d_opts){stride, stride, p, p, p, p};
    return n->t[0];
}

/* pre.weight (Dout, Din), pre.bias (Dout) when bias: x (..., Din) -> (..., Dout). */
struct ldm_tensor ug_linear(struct ug *g, const char *pre, struct ldm_tensor x, int64_t Dout,
                            int bias)
{
    int64_t Din = x.shape[x.ndim - 1];
    struct ug_node *n = ug_node(g, UG_LINEAR);
    n->t[2] = ug_paramv(g, pre, "weight", Dout, Din);
    if (bias)
        n->t[3] = ug_paramv(g, pre, "bias", Dout);
    n->t[1] = x;
    int64_t shape[LDM_TMAXDIM];
    memcpy(shape, x.shape, sizeof shape);
    shape[x.ndim - 1] = Dout;
    n->t[0] = ug_act(g, x.ndim, shape);
    return n->t[0];
}

/* GroupNorm(norm_num_groups, eps) with pre.weight, pre.bias (C), SiLU after when silu:
 * x (N, C, H, W) -> (N, C, H, W). */
struct ldm_tensor ug_group_norm(struct ug *g, const char *pre, struct ldm_tensor x, float eps,
                                int silu)
{
    int64_t N = x.shape[0], C = x.shape[1], G = g->u->cfg.norm_num_groups;
    struct ug_node *n = ug_node(g, UG_GN);
    n->t[4] = ug_paramv(g, pre, "weight", C);
    n->t[5] = ug_paramv(g, pre, "bias", C);
    n->t[3] = x;
    n->t[1] = ug_actv32(g, N, G);                 /* mean (N, G) */
    n->t[2] = ug_actv32(g, N, G);                 /* rstd (N, G) */
    n->t[0] = ug_act(g, x.ndim, x.shape);
    n->o.norm = (struct ldm_norm_opts){(int)G, eps, silu};
    return n->t[0];
}

/* LayerNorm(D, eps 1e-5) with pre.weight, pre.bias: x (N, L, D) -> (N, L, D). */
static struct ldm_tensor layer_norm(struct ug *g, const char *pre, struct ldm_tensor x)
{
    int64_t N = x.shape[0], L = x.shape[1], D = x.shape[2];
    struct ug_node *n = ug_node(g, UG_LN);
    n->t[4] = ug_paramv(g, pre, "weight", D);
    n->t[5] = ug_paramv(g, pre, "bias", D);
    n->t[3] = x;
    n->t[1] = ug_actv32(g, N * L);                /* mean (N·L) */
    n->t[2] = ug_actv32(g, N * L);                /* rstd (N·L) */
    n->t[0] = ug_actv(g, N, L, D);
    n->o.norm = (struct ldm_norm_opts){1, 1e-5f, 0};
    return n->t[0];
}

/* y = f(x), same shape. */
static struct ldm_tensor act(struct ug *g, int f, struct ldm_tensor x)
{
    struct ug_node *n = ug_node(g, UG_ACT);
    n->t[1] = x;
    n->t[0] = ug_act(g, x.ndim, x.shape);
    n->o.act = f;
    return n->t[0];
}

/* Two-input ops whose output has a's shape: UG_ADD (a + b), UG_BCAST (a + b[:, :, None,
 * None]). */
static struct ldm_tensor binary(struct ug *g, int op, struct ldm_tensor a, struct ldm_tensor b)
{
    struct ug_node *n = ug_node(g, op);
    n->t[1] = a;
    n->t[2] = b;
    n->t[0] = ug_act(g, a.ndim, a.shape);
    return n->t[0];
}

/* (N, A, B) -> (N, B, A). */
static struct ldm_tensor transpose(struct ug *g, struct ldm_tensor x)
{
    struct ug_node *n = ug_node(g, UG_TRANS);
    n->t[1] = x;
    n->t[0] = ug_actv(g, x.shape[0], x.shape[2], x.shape[1]);
    return n->t[0];
}

/* cat([a, b], dim=1): a (N, Ca, *), b (N, Cb, *) -> (N, Ca + Cb, *). */
static struct ldm_tensor concat(struct ug *g, struct ldm_tensor a, struct ldm_tensor b)
{
    struct ug_node *n = ug_node(g, UG_CAT);
    n->t[1] = a;
    n->t[2] = b;
    int64_t shape[LDM_TMAXDIM];
    memcpy(shape, a.shape, sizeof shape);
    shape[1] += b.shape[1];
    n->t[0] = ug_act(g, a.ndim, shape);
    return n->t[0];
}

/* diffusers Timesteps: t (M) -> (M, dim) sinusoidal features. */
static struct ldm_tensor timestep_proj(struct ug *g, struct ldm_tensor t, int64_t dim)
{
    const struct ldm_unet_config *c = &g->u->cfg;
    struct ug_node *n = ug_node(g, UG_TEMB);
    n->t[1] = t;
    n->t[0] = ug_actv(g, t.shape[0], dim);
    n->o.temb = (struct ldm_temb_opts){c->flip_sin_to_cos, c->freq_shift, 1.0f, 10000.0f};
    return n->t[0];
}

/* ---- blocks ---------------------------------------------------------------------------- */

/* diffusers TimestepEmbedding: pre.linear_1, SiLU, pre.linear_2: x (N, Din) -> (N, E). */
static struct ldm_tensor time_embedding(struct ug *g, const char *pre, struct ldm_tensor x)
{
    char p[200];
    int64_t E = g->u->cfg.time_embed_dim;
    join(p, sizeof p, pre, "linear_1");
    struct ldm_tensor h = ug_linear(g, p, x, E, 1);   /* (N, E) */
    h = act(g, LDM_ACT_SILU, h);                      /* (N, E) */
    join(p, sizeof p, pre, "linear_2");
    return ug_linear(g, p, h, E, 1);                  /* (N, E) */
}

/* ResnetBlock2D: x (N, Cin, H, W) -> (N, Cout, H, W); uses g->semb (N, E). One
 * checkpointed segment (as diffusers checkpoints each resnet of a down, mid or up block). */
static struct ldm_tensor resnet(struct ug *g, const char *pre, struct ldm_tensor x, int64_t Cout)
{
    char p[200];
    float eps = g->u->cfg.norm_eps;
    ug_seg_begin(g);
    join(p, sizeof p, pre, "norm1");
    struct ldm_tensor h = ug_group_norm(g, p, x, eps, 1);  /* (N, Cin, H, W) */
    join(p, sizeof p, pre, "conv1");
    h = ug_conv(g, p, h, Cout, 3, 1);                      /* (N, Cout, H, W) */
    join(p, sizeof p, pre, "time_emb_proj");
    struct ldm_tensor tp = ug_linear(g, p, g->semb, Cout, 1); /* (N, Cout) */
    h = binary(g, UG_BCAST, h, tp);                        /* (N, Cout, H, W) */
    join(p, sizeof p, pre, "norm2");
    h = ug_group_norm(g, p, h, eps, 1);                    /* (N, Cout, H, W) */
    join(p, sizeof p, pre, "conv2");
    h = ug_conv(g, p, h, Cout, 3, 1);                      /* (N, Cout, H, W) */
    struct ldm_tensor sc = x;                              /* (N, Cin, H, W) */
    if (x.shape[1] != Cout) {
        join(p, sizeof p, pre, "conv_shortcut");
        sc = ug_conv(g, p, x, Cout, 1, 1);                 /* (N, Cout, H, W) */
    }
    h = binary(g, UG_ADD, sc, h);                          /* (N, Cout, H, W) */
    ug_seg_end(g);
    return h;
}

/* diffusers Attention (to_q/to_k/to_v without bias, to_out.0 with): x (N, Lq, D),
 * ctx (N, Lk, Dc) -> (N, Lq, D). */
static struct ldm_tensor attention(struct ug *g, const char *pre, struct ldm_tensor x,
                                   struct ldm_tensor ctx, int heads)
{
    char p[200];
    int64_t N = x.shape[0], Lq = x.shape[1], D = x.shape[2];
    join(p, sizeof p, pre, "to_q");
    struct ldm_tensor q = ug_linear(g, p, x, D, 0);        /* (N, Lq, D) */
    join(p, sizeof p, pre, "to_k");
    struct ldm_tensor k = ug_linear(g, p, ctx, D, 0);      /* (N, Lk, D) */
    join(p, sizeof p, pre, "to_v");
    struct ldm_tensor v = ug_linear(g, p, ctx, D, 0);      /* (N, Lk, D) */
    struct ug_node *n = ug_node(g, UG_ATTN);
    n->t[2] = q;
    n->t[3] = k;
    n->t[4] = v;
    n->t[1] = ug_actv32(g, N, heads, Lq);                  /* lse (N, heads, Lq) */
    n->t[0] = ug_actv(g, N, Lq, D);                        /* (N, Lq, D) */
    n->o.attn = (struct ldm_attn_opts){.heads = heads, .upcast = g->u->cfg.upcast_attention};
    struct ldm_tensor o = n->t[0];
    join(p, sizeof p, pre, "to_out.0");
    return ug_linear(g, p, o, D, 1);                       /* (N, Lq, D) */
}

/* BasicTransformerBlock: self-attention, cross-attention on g->ehs, GEGLU
 * feed-forward, each after a LayerNorm and added back: x (N, L, D) -> (N, L, D). One
 * checkpointed segment (as diffusers' Transformer2DModel checkpoints each block). */
static struct ldm_tensor transformer_block(struct ug *g, const char *pre, struct ldm_tensor x,
                                           int heads)
{
    char p[200], q[200];
    int64_t D = x.shape[2];
    ug_seg_begin(g);
    join(p, sizeof p, pre, "norm1");
    struct ldm_tensor h = layer_norm(g, p, x);             /* (N, L, D) */
    join(p, sizeof p, pre, "attn1");
    x = binary(g, UG_ADD, attention(g, p, h, h, heads), x); /* (N, L, D) */
    join(p, sizeof p, pre, "norm2");
    h = layer_norm(g, p, x);                               /* (N, L, D) */
    join(p, sizeof p, pre, "attn2");
    x = binary(g, UG_ADD, attention(g, p, h, g->ehs, heads), x); /* (N, L, D) */
    join(p, sizeof p, pre, "norm3");
    h = layer_norm(g, p, x);                               /* (N, L, D) */
    join(p, sizeof p, pre, "ff.net.0.proj");
    h = ug_linear(g, p, h, 8 * D, 1);                      /* (N, L, 8D) */
    struct ug_node *n = ug_node(g, UG_GEGLU);
    n->t[1] = h;
    n->t[0] = ug_actv(g, h.shape[0], h.shape[1], 4 * D);   /* (N, L, 4D) */
    h = n->t[0];
    join(q, sizeof q, pre, "ff.net.2");
    h = ug_linear(g, q, h, D, 1);                          /* (N, L, D) */
    h = binary(g, UG_ADD, h, x);                           /* (N, L, D) */
    ug_seg_end(g);
    return h;
}

/* Transformer2DModel (continuous input): GroupNorm eps 1e-6, proj_in (1×1 conv, or
 * linear on tokens), `layers` blocks, proj_out, plus the input: x (N, C, H, W) ->
 * (N, C, H, W). Norm and proj_in are one checkpointed segment, proj_out and the
 * residual another: of them only the tokens going in and the sum are kept. */
static struct ldm_tensor transformer(struct ug *g, const char *pre, struct ldm_tensor x,
                                     int heads, int layers)
{
    char p[200];
    int lin = g->u->cfg.use_linear_projection;
    int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    ug_seg_begin(g);
    join(p, sizeof p, pre, "norm");
    struct ldm_tensor h = ug_group_norm(g, p, x, 1e-6f, 0); /* (N, C, H, W) */
    join(p, sizeof p, pre, "proj_in");
    if (!lin)
        h = ug_conv(g, p, h, C, 1, 1);                     /* (N, C, H, W) */
    h = transpose(g, ug_viewv(h, N, C, H * W));            /* (N, L=HW, C) */
    if (lin)
        h = ug_linear(g, p, h, C, 1);                      /* (N, L, C) */
    ug_seg_end(g);
    for (int i = 0; i < layers; i++) {
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", pre, i);
        h = transformer_block(g, p, h, heads);             /* (N, L, C) */
    }
    ug_seg_begin(g);
    join(p, sizeof p, pre, "proj_out");
    if (lin)
        h = ug_linear(g, p, h, C, 1);                      /* (N, L, C) */
    h = ug_viewv(transpose(g, h), N, C, H, W);             /* (N, C, H, W) */
    if (!lin)
        h = ug_conv(g, p, h, C, 1, 1);                     /* (N, C, H, W) */
    h = binary(g, UG_ADD, h, x);                           /* (N, C, H, W) */
    ug_seg_end(g);
    return h;
}

/* ---- the network ------------------------------------------------------------------------ */

#define MAXSKIPS (LDM_UNET_MAXBLOCKS * 8)

struct skips {
    struct ldm_tensor t[MAXSKIPS];
    int n;
};

/* time_proj + time_embedding (+ SDXL's add_time_proj + add_embedding), then SiLU:
 * g->semb (N, E). */
static void embeddings(struct ug *g)
{
    struct ldm_unet *u = g->u;
    const struct ldm_unet_config *c = &u->cfg;
    int64_t N = u->tsteps.shape[0];
    struct ldm_tensor t = timestep_proj(g, u->tsteps, c->block_out_channels[0]); /* (N, C0) */
    struct ldm_tensor emb = time_embedding(g, "time_embedding", t);             /* (N, E) */
    if (c->text_time) {
        int64_t A = c->addition_time_embed_dim, T = c->n_time_ids;
        struct ldm_tensor tp = timestep_proj(g, ug_viewv(u->tids, N * T), A); /* (N·T, A) */
        struct ldm_tensor te = ug_viewv(u->text, N, u->text.shape[1], 1);   /* (N, Dt, 1) */
        struct ldm_tensor ae = concat(g, te, ug_viewv(tp, N, T * A, 1));    /* (N, Dt+T·A, 1) */
        ae = ug_viewv(ae, N, ae.shape[1]);                                  /* (N, Din) */
        emb = binary(g, UG_ADD, emb, time_embedding(g, "add_embedding", ae)); /* (N, E) */
    }
    g->semb = act(g, LDM_ACT_SILU, emb);                                    /* (N, E) */
}

static struct ldm_tensor down_block(struct ug *g, int b, struct ldm_tensor x, struct skips *s)
{
    const struct ldm_unet_config *c = &g->u->cfg;
    char p[200];
    int64_t C = c->block_out_channels[b];
    for (int j = 0; j < c->layers_per_block; j++) {
        snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", b, j);
        x = resnet(g, p, x, C);                                   /* (N, C, H, W) */
        if (c->down_cross[b]) {
            snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", b, j);
            x = transformer(g, p, x, c->heads[b], c->tlayers[b]); /* (N, C, H, W) */
        }
        s->t[s->n++] = x;
    }
    if (b < c->nblocks - 1) {
        snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", b);
        x = ug_conv(g, p, x, C, 3, 2);                            /* (N, C, H/2, W/2) */
        s->t[s->n++] = x;
    }
    return x;
}

static struct ldm_tensor mid_block(struct ug *g, struct ldm_tensor x)
{
    const struct ldm_unet_config *c = &g->u->cfg;
    int last = c->nblocks - 1;
    int64_t C = c->block_out_channels[last];
    x = resnet(g, "mid_block.resnets.0", x, C);                   /* (N, C, h, w) */
    x = transformer(g, "mid_block.attentions.0", x, c->heads[last], c->tlayers[last]);
    return resnet(g, "mid_block.resnets.1", x, C);                /* (N, C, h, w) */
}

/* Up block i (diffusers' numbering: i = 0 is the deepest), using level b = nblocks−1−i.
 * Each skip concatenation is checkpointed with the resnet after it, the upsampler's
 * doubling with its conv. */
static struct ldm_tensor up_block(struct ug *g, int i, struct ldm_tensor x, struct skips *s)
{
    const struct ldm_unet_config *c = &g->u->cfg;
    char p[200];
    int b = c->nblocks - 1 - i;
    int64_t C = c->block_out_channels[b];
    for (int j = 0; j <= c->layers_per_block; j++) {
        ug_seg_begin(g);
        x = concat(g, x, s->t[--s->n]);                           /* (N, C + Cskip, H, W) */
        snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
        x = resnet(g, p, x, C);                                   /* (N, C, H, W) */
        ug_seg_end(g);
        if (c->up_cross[i]) {
            snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
            x = transformer(g, p, x, c->heads[b], c->tlayers[b]); /* (N, C, H, W) */
        }
    }
    if (b > 0) {
        ug_seg_begin(g);
        struct ug_node *n = ug_node(g, UG_UP2X);
        n->t[1] = x;
        n->t[0] = ug_actv(g, x.shape[0], C, 2 * x.shape[2], 2 * x.shape[3]);
        snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
        x = ug_conv(g, p, n->t[0], C, 3, 1);                      /* (N, C, 2H, 2W) */
        ug_seg_end(g);
    }
    return x;
}

/* The whole UNet2DConditionModel on u's inputs; u->out receives the prediction
 * (N, out_channels, H, W). The output norm is checkpointed with conv_out. Returns
 * g->err. */
int ug_network(struct ug *g)
{
    struct ldm_unet *u = g->u;
    const struct ldm_unet_config *c = &u->cfg;
    struct skips s = {.n = 0};
    g->ehs = u->ehs;
    embeddings(g);
    struct ldm_tensor x = ug_conv(g, "conv_in", u->sample, c->block_out_channels[0],
                                  c->conv_in_kernel, 1);          /* (N, C0, H, W) */
    s.t[s.n++] = x;
    for (int b = 0; b < c->nblocks; b++)
        x = down_block(g, b, x, &s);                              /* (N, Cb, H/2^b, W/2^b) */
    x = mid_block(g, x);
    for (int i = 0; i < c->nblocks; i++)
        x = up_block(g, i, x, &s);                                /* up to (N, C0, H, W) */
    ug_seg_begin(g);
    x = ug_group_norm(g, "conv_norm_out", x, c->norm_eps, 1);    /* (N, C0, H, W) */
    u->out = ug_conv(g, "conv_out", x, c->out_channels, c->conv_out_kernel, 1);
    ug_seg_end(g);
    return g->err;
}
