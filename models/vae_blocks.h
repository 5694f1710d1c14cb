/* vae_blocks.h — the AutoencoderKL building blocks (ResnetBlock2D without a
 * time embedding, the mid block's spatial self-attention, Downsample2D,
 * Upsample2D) over activation slots that are sized by a planning pass.
 *
 * Activations: a block reads and writes numbered slots, flat F32 buffers in
 * the model's activation arena. A slot's contents are given a shape by
 * vb_view. While the context plans (ldm_ctx_plan_begin), vb_view records
 * the largest element count asked of each slot and hands out NULL data, so
 * that one planning pass of a forward gives both the workspace and the
 * arena's sizes. Internal to models/vae*.c.
 */
#ifndef LDM_MODELS_VAE_BLOCKS_H
#define LDM_MODELS_VAE_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/backend.h"

/* Slots: three feature maps that rotate, four token buffers for attention,
 * the attention's log-sum-exp, and the norms' mean and rstd. */
enum { VB_Q = 3, VB_K, VB_V, VB_O, VB_LSE, VB_MEAN, VB_RSTD, VB_NSLOTS };

struct vb_run {
    struct ldm_ctx *ctx;
    int groups;                 /* norm_num_groups */
    float eps;                  /* 1e-6 in every VAE norm */
    float *slot[VB_NSLOTS];     /* data of each slot (NULL while planning) */
    size_t cap[VB_NSLOTS];      /* elements each slot holds */
    size_t need[VB_NSLOTS];     /* the most elements asked while planning */
};

/* Parameters, pointing into the model's parameter table. */
struct vb_conv {
    struct ldm_tensor *w, *b; /* (K, C, R, S), (K) */
};
struct vb_norm {
    struct ldm_tensor *g, *b; /* (C), (C) */
};
struct vb_lin {
    struct ldm_tensor *w, *b; /* (Dout, Din), (Dout) */
};
struct vb_resnet {
    int cin, cout;
    struct vb_norm norm1, norm2;       /* (cin), (cout) */
    struct vb_conv conv1, conv2;       /* 3×3: cin -> cout, cout -> cout */
    struct vb_conv conv_shortcut;      /* 1×1 cin -> cout; w NULL when cin == cout */
};
struct vb_attn {
    int c;                             /* channels = width D of the tokens */
    struct vb_norm group_norm;
    struct vb_lin to_q, to_k, to_v, to_out;
};
struct vb_mid {
    struct vb_resnet resnets[2];
    int has_attn;
    struct vb_attn attn;
};

/* A view of slot `s` as F32 (N, C, H, W) into *t. Planning: records the
 * need, data NULL. Otherwise LDM_ERANGE when the slot is too small (a
 * shape that was not planned). */
int vb_view(struct vb_run *r, int s, int64_t N, int64_t C, int64_t H, int64_t W,
            struct ldm_tensor *t);

/* The same for a 3-D view (N, A, B): token sequences, norm statistics. */
int vb_view3(struct vb_run *r, int s, int64_t N, int64_t A, int64_t B, struct ldm_tensor *t);

/* y = conv(x) with padding `pad` on every side, stride 1 (3×3 or 1×1). */
int vb_conv_fwd(struct vb_run *r, const struct ldm_tensor *y, const struct ldm_tensor *x,
                const struct vb_conv *p, int pad);

/* y = [SiLU](GroupNorm(x)) with the run's groups and eps. */
int vb_norm_fwd(struct vb_run *r, const struct ldm_tensor *y, const struct ldm_tensor *x,
                const struct vb_norm *p, int silu);

/* ResnetBlock2D: the map (N, cin, H, W) in slot a becomes (N, cout, H, W)
 * in slot a; slots b and c are scratch. */
int vb_resnet_fwd(struct vb_run *r, const struct vb_resnet *p, int a, int b, int c, int64_t N,
                  int64_t H, int64_t W);

/* UNetMidBlock2D (resnet, attention, resnet): in place in slot a (N, C, H,
 * W); slots b, c and the token slots are scratch. */
int vb_mid_fwd(struct vb_run *r, const struct vb_mid *p, int a, int b, int c, int64_t N,
               int64_t H, int64_t W);

/* Downsample2D of the VAE: pad right and bottom by one, 3×3 conv, stride 2:
 * slot a (N, C, H, W) -> slot b (N, C, H/2, W/2) (floor). *H, *W updated. */
int vb_down_fwd(struct vb_run *r, const struct vb_conv *p, int a, int b, int64_t N, int64_t C,
                int64_t *H, int64_t *W);

/* Upsample2D: nearest 2× then 3×3 conv: slot a (N, C, H, W) -> slot c
 * (N, C, 2H, 2W), slot b scratch. *H, *W updated. */
int vb_up_fwd(struct vb_run *r, const struct vb_conv *p, int a, int b, int c, int64_t N,
              int64_t C, int64_t *H, int64_t *W);

#endif
