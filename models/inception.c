/* inception.c — pytorch-fid's FID InceptionV3 forward on the nn op set (see inception.h). */
#include "models/inception.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define BN_EPS 1e-3
#define NCONV 94
#define NPARAM (2 * NCONV + 2)
#define NBIG 2
#define NSMALL 7
#define BIG_CAP ((size_t)64 * 147 * 147)  /* largest stem map per image */
#define SMALL_CAP ((size_t)288 * 35 * 35) /* largest map inside a mixed block */

/* One BasicConv2d: conv (no bias) + BatchNorm + ReLU. */
struct conv_def {
    const char *name;
    int C, K, R, S, stride, pad_h, pad_w;
};

/* In state-dict order; the blocks below address convs by index. */
static const struct conv_def CONVS[NCONV] = {
    {"Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0},
    {"Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0},
    {"Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1},
    {"Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0},
    {"Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0},
    {"Mixed_5b.branch1x1", 192, 64, 1, 1, 1, 0, 0},
    {"Mixed_5b.branch5x5_1", 192, 48, 1, 1, 1, 0, 0},
    {"Mixed_5b.branch5x5_2", 48, 64, 5, 5, 1, 2, 2},
    {"Mixed_5b.branch3x3dbl_1", 192, 64, 1, 1, 1, 0, 0},
    {"Mixed_5b.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1},
    {"Mixed_5b.branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1},
    {"Mixed_5b.branch_pool", 192, 32, 1, 1, 1, 0, 0},
    {"Mixed_5c.branch1x1", 256, 64, 1, 1, 1, 0, 0},
    {"Mixed_5c.branch5x5_1", 256, 48, 1, 1, 1, 0, 0},
    {"Mixed_5c.branch5x5_2", 48, 64, 5, 5, 1, 2, 2},
    {"Mixed_5c.branch3x3dbl_1", 256, 64, 1, 1, 1, 0, 0},
    {"Mixed_5c.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1},
    {"Mixed_5c.branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1},
    {"Mixed_5c.branch_pool", 256, 64, 1, 1, 1, 0, 0},
    {"Mixed_5d.branch1x1", 288, 64, 1, 1, 1, 0, 0},
    {"Mixed_5d.branch5x5_1", 288, 48, 1, 1, 1, 0, 0},
    {"Mixed_5d.branch5x5_2", 48, 64, 5, 5, 1, 2, 2},
    {"Mixed_5d.branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0},
    {"Mixed_5d.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1},
    {"Mixed_5d.branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1},
    {"Mixed_5d.branch_pool", 288, 64, 1, 1, 1, 0, 0},
    {"Mixed_6a.branch3x3", 288, 384, 3, 3, 2, 0, 0},
    {"Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0},
    {"Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1},
    {"Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0},
    {"Mixed_6b.branch1x1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6b.branch7x7_1", 768, 128, 1, 1, 1, 0, 0},
    {"Mixed_6b.branch7x7_2", 128, 128, 1, 7, 1, 0, 3},
    {"Mixed_6b.branch7x7_3", 128, 192, 7, 1, 1, 3, 0},
    {"Mixed_6b.branch7x7dbl_1", 768, 128, 1, 1, 1, 0, 0},
    {"Mixed_6b.branch7x7dbl_2", 128, 128, 7, 1, 1, 3, 0},
    {"Mixed_6b.branch7x7dbl_3", 128, 128, 1, 7, 1, 0, 3},
    {"Mixed_6b.branch7x7dbl_4", 128, 128, 7, 1, 1, 3, 0},
    {"Mixed_6b.branch7x7dbl_5", 128, 192, 1, 7, 1, 0, 3},
    {"Mixed_6b.branch_pool", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6c.branch1x1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6c.branch7x7_1", 768, 160, 1, 1, 1, 0, 0},
    {"Mixed_6c.branch7x7_2", 160, 160, 1, 7, 1, 0, 3},
    {"Mixed_6c.branch7x7_3", 160, 192, 7, 1, 1, 3, 0},
    {"Mixed_6c.branch7x7dbl_1", 768, 160, 1, 1, 1, 0, 0},
    {"Mixed_6c.branch7x7dbl_2", 160, 160, 7, 1, 1, 3, 0},
    {"Mixed_6c.branch7x7dbl_3", 160, 160, 1, 7, 1, 0, 3},
    {"Mixed_6c.branch7x7dbl_4", 160, 160, 7, 1, 1, 3, 0},
    {"Mixed_6c.branch7x7dbl_5", 160, 192, 1, 7, 1, 0, 3},
    {"Mixed_6c.branch_pool", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6d.branch1x1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6d.branch7x7_1", 768, 160, 1, 1, 1, 0, 0},
    {"Mixed_6d.branch7x7_2", 160, 160, 1, 7, 1, 0, 3},
    {"Mixed_6d.branch7x7_3", 160, 192, 7, 1, 1, 3, 0},
    {"Mixed_6d.branch7x7dbl_1", 768, 160, 1, 1, 1, 0, 0},
    {"Mixed_6d.branch7x7dbl_2", 160, 160, 7, 1, 1, 3, 0},
    {"Mixed_6d.branch7x7dbl_3", 160, 160, 1, 7, 1, 0, 3},
    {"Mixed_6d.branch7x7dbl_4", 160, 160, 7, 1, 1, 3, 0},
    {"Mixed_6d.branch7x7dbl_5", 160, 192, 1, 7, 1, 0, 3},
    {"Mixed_6d.branch_pool", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6e.branch1x1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6e.branch7x7_1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6e.branch7x7_2", 192, 192, 1, 7, 1, 0, 3},
    {"Mixed_6e.branch7x7_3", 192, 192, 7, 1, 1, 3, 0},
    {"Mixed_6e.branch7x7dbl_1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_6e.branch7x7dbl_2", 192, 192, 7, 1, 1, 3, 0},
    {"Mixed_6e.branch7x7dbl_3", 192, 192, 1, 7, 1, 0, 3},
    {"Mixed_6e.branch7x7dbl_4", 192, 192, 7, 1, 1, 3, 0},
    {"Mixed_6e.branch7x7dbl_5", 192, 192, 1, 7, 1, 0, 3},
    {"Mixed_6e.branch_pool", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_7a.branch3x3_1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_7a.branch3x3_2", 192, 320, 3, 3, 2, 0, 0},
    {"Mixed_7a.branch7x7x3_1", 768, 192, 1, 1, 1, 0, 0},
    {"Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3},
    {"Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0},
    {"Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0},
    {"Mixed_7b.branch1x1", 1280, 320, 1, 1, 1, 0, 0},
    {"Mixed_7b.branch3x3_1", 1280, 384, 1, 1, 1, 0, 0},
    {"Mixed_7b.branch3x3_2a", 384, 384, 1, 3, 1, 0, 1},
    {"Mixed_7b.branch3x3_2b", 384, 384, 3, 1, 1, 1, 0},
    {"Mixed_7b.branch3x3dbl_1", 1280, 448, 1, 1, 1, 0, 0},
    {"Mixed_7b.branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1},
    {"Mixed_7b.branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1},
    {"Mixed_7b.branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0},
    {"Mixed_7b.branch_pool", 1280, 192, 1, 1, 1, 0, 0},
    {"Mixed_7c.branch1x1", 2048, 320, 1, 1, 1, 0, 0},
    {"Mixed_7c.branch3x3_1", 2048, 384, 1, 1, 1, 0, 0},
    {"Mixed_7c.branch3x3_2a", 384, 384, 1, 3, 1, 0, 1},
    {"Mixed_7c.branch3x3_2b", 384, 384, 3, 1, 1, 1, 0},
    {"Mixed_7c.branch3x3dbl_1", 2048, 448, 1, 1, 1, 0, 0},
    {"Mixed_7c.branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1},
    {"Mixed_7c.branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1},
    {"Mixed_7c.branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0},
    {"Mixed_7c.branch_pool", 2048, 192, 1, 1, 1, 0, 0},
};

/* Indices of the first conv of each block. */
enum { MIXED_5B = 5, MIXED_5C = 12, MIXED_5D = 19, MIXED_6A = 26, MIXED_6B = 30,
       MIXED_6C = 40, MIXED_6D = 50, MIXED_6E = 60, MIXED_7A = 70, MIXED_7B = 76,
       MIXED_7C = 85 };

struct ldm_inception {
    struct ldm_ctx *ctx;
    struct ldm_arena params;            /* conv weights (BN folded), biases, fc */
    struct ldm_tensor p[NPARAM];        /* 2k: conv k weight (K,C,R,S); 2k+1: bias (K) */
    char names[NPARAM][48];
    struct ldm_arena acts;              /* NBIG + NSMALL slots of LDM_INCEPTION_CHUNK images */
    struct ldm_tensor slot[NBIG + NSMALL];
    float *in;                          /* input chunk (n,3,H,W), backend memory */
    size_t in_cap;                      /* floats in `in` */
    int64_t plan_h, plan_w;             /* input size the workspace was planned for */
    unsigned planned;                   /* bit n: chunks of n images planned at plan_h×plan_w */
};

/* ---- weights ------------------------------------------------------------------------- */

static int fetch(ldm_inception_get_fn get, void *user, const char *conv, const char *leaf,
                 int ndim, const int64_t *shape, float *dst)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", conv, leaf);
    return get(user, name, ndim, shape, dst);
}

/* Fold BN into w (K, n per channel) and bias; for the first conv also the
 * input map x -> 2x - 1. */
static void fold_bn(float *w, float *bias, const float *bn, int K, size_t n, int first)
{
    const float *g = bn, *b = bn + K, *mean = bn + 2 * K, *var = bn + 3 * K;
    for (int k = 0; k < K; k++) {
        double s = (double)g[k] / sqrt((double)var[k] + BN_EPS);
        double bb = (double)b[k] - (double)mean[k] * s, sum = 0;
        for (size_t i = 0; i < n; i++) {
            float v = (float)((double)w[k * n + i] * s);
            sum += v;
            w[k * n + i] = first ? 2.0f * v : v;
        }
        bias[k] = (float)(first ? bb - sum : bb);
    }
}

/* Read conv k's weight and BN from get, fold, upload into p[2k], p[2k+1]. */
static int load_conv(struct ldm_inception *m, int k, ldm_inception_get_fn get, void *user,
                     float *hw, float *hb)
{
    const struct conv_def *d = &CONVS[k];
    int64_t ws[4] = {d->K, d->C, d->R, d->S}, bs[1] = {d->K};
    static const char *const bn[4] = {"bn.weight", "bn.bias", "bn.running_mean",
                                      "bn.running_var"};
    size_t n = (size_t)d->C * (size_t)d->R * (size_t)d->S;
    int rc = fetch(get, user, d->name, "conv.weight", 4, ws, hw);
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = fetch(get, user, d->name, bn[i], 1, bs, hb + (size_t)(i + 1) * (size_t)d->K);
    if (rc)
        return rc;
    fold_bn(hw, hb, hb + d->K, d->K, n, k == 0);
    rc = ldm_ctx_upload(m->ctx, m->p[2 * k].data, hw, ldm_tensor_nbytes(&m->p[2 * k]));
    if (rc == 0)
        rc = ldm_ctx_upload(m->ctx, m->p[2 * k + 1].data, hb, (size_t)d->K * sizeof(float));
    return rc;
}

static int load_fc(struct ldm_inception *m, ldm_inception_get_fn get, void *user, float *hw)
{
    int rc = get(user, "fc.weight", 2, m->p[2 * NCONV].shape, hw);
    if (rc == 0)
        rc = ldm_ctx_upload(m->ctx, m->p[2 * NCONV].data, hw, ldm_tensor_nbytes(&m->p[2 * NCONV]));
    if (rc == 0)
        rc = get(user, "fc.bias", 1, m->p[2 * NCONV + 1].shape, hw);
    if (rc == 0)
        rc = ldm_ctx_upload(m->ctx, m->p[2 * NCONV + 1].data, hw, LDM_INCEPTION_CLASSES * 4);
    return rc;
}

/* Describe the parameter tensors (names for error details) and allocate them. */
static int layout_params(struct ldm_inception *m)
{
    for (int k = 0; k < NCONV; k++) {
        const struct conv_def *d = &CONVS[k];
        snprintf(m->names[2 * k], sizeof m->names[0], "%s.conv.weight", d->name);
        snprintf(m->names[2 * k + 1], sizeof m->names[0], "%s.bias(folded)", d->name);
        ldm_tensor_setv(&m->p[2 * k], m->names[2 * k], LDM_DT_F32, d->K, d->C, d->R, d->S);
        ldm_tensor_setv(&m->p[2 * k + 1], m->names[2 * k + 1], LDM_DT_F32, d->K);
    }
    ldm_tensor_setv(&m->p[2 * NCONV], "fc.weight", LDM_DT_F32, LDM_INCEPTION_CLASSES,
                    LDM_INCEPTION_DIM);
    ldm_tensor_setv(&m->p[2 * NCONV + 1], "fc.bias", LDM_DT_F32, LDM_INCEPTION_CLASSES);
    for (int i = 0; i < NBIG + NSMALL; i++)
        ldm_tensor_setv(&m->slot[i], "inception.activations", LDM_DT_F32,
                        (int64_t)((i < NBIG ? BIG_CAP : SMALL_CAP) * LDM_INCEPTION_CHUNK));
    int rc = ldm_arena_alloc(&m->params, m->ctx, m->p, NPARAM);
    if (rc == 0)
        rc = ldm_arena_alloc(&m->acts, m->ctx, m->slot, NBIG + NSMALL);
    return rc;
}

static int load_all(struct ldm_inception *m, ldm_inception_get_fn get, void *user)
{
    size_t most = (size_t)LDM_INCEPTION_CLASSES * LDM_INCEPTION_DIM;
    for (int k = 0; k < NCONV; k++) {
        size_t n = (size_t)CONVS[k].K * CONVS[k].C * CONVS[k].R * CONVS[k].S;
        most = n > most ? n : most;
    }
    float *hw = malloc(most * sizeof *hw), *hb = malloc(5 * 448 * sizeof *hb);
    int rc = hw && hb ? 0 : ldm_fail(LDM_ENOMEM, "inception: no memory for weight staging");
    for (int k = 0; k < NCONV && rc == 0; k++)
        rc = load_conv(m, k, get, user, hw, hb);
    if (rc == 0)
        rc = load_fc(m, get, user, hw);
    free(hw);
    free(hb);
    return rc;
}

int ldm_inception_open(struct ldm_inception **out, struct ldm_ctx *ctx, ldm_inception_get_fn get,
                       void *user)
{
    *out = NULL;
    struct ldm_inception *m = calloc(1, sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "inception: no memory");
    m->ctx = ctx;
    int rc = layout_params(m);
    if (rc == 0)
        rc = load_all(m, get, user);
    if (rc) {
        ldm_inception_close(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void ldm_inception_close(struct ldm_inception **m)
{
    if (!m || !*m)
        return;
    ldm_arena_free(&(*m)->params);
    ldm_arena_free(&(*m)->acts);
    if ((*m)->in)
        ldm_ctx_free((*m)->ctx, (*m)->in);
    free(*m);
    *m = NULL;
}

/* ---- safetensors source -------------------------------------------------------------- */

static int st_get(void *user, const char *name, int ndim, const int64_t *shape, float *dst)
{
    struct ldm_st *st = user;
    const struct ldm_st_tensor *t;
    int rc = ldm_st_find(st, name, &t);
    if (rc)
        return rc;
    int same = t->ndim == ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        same = same && t->shape[i] == shape[i];
        n *= (size_t)shape[i];
    }
    if (!same) {
        char a[96] = "", b[96] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", i ? "," : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? "," : "", (long long)shape[i]);
        return ldm_fail(LDM_EFORMAT, "%s: tensor %s has shape [%s], expected [%s]",
                        ldm_st_label(st), name, a, b);
    }
    return ldm_convert(dst, LDM_DT_F32, t->data, t->dtype, n);
}

int ldm_inception_open_safetensors(struct ldm_inception **out, struct ldm_ctx *ctx,
                                   const char *path)
{
    struct ldm_st *st = NULL;
    *out = NULL;
    int rc = ldm_st_open(&st, path);
    if (rc == 0)
        rc = ldm_inception_open(out, ctx, st_get, st);
    ldm_st_close(&st);
    return rc;
}

/* ---- forward ------------------------------------------------------------------------- */

/* Slot i viewed as (n, C, H, W); fails when that does not fit the slot. */
static int view(struct ldm_inception *m, int i, int64_t n, int64_t C, int64_t H, int64_t W,
                struct ldm_tensor *t)
{
    size_t cap = (i < NBIG ? BIG_CAP : SMALL_CAP) * LDM_INCEPTION_CHUNK;
    if ((size_t)(n * C * H * W) > cap)
        return ldm_fail(LDM_ERANGE, "inception: a (%lld,%lld,%lld,%lld) map overflows slot %d",
                        (long long)n, (long long)C, (long long)H, (long long)W, i);
    *t = ldm_tensor_f32(m->slot[i].data, n, C, H, W);
    return 0;
}

/* BasicConv2d k (folded): y (into slot) = relu(conv(x) + b). */
static int bconv(struct ldm_inception *m, int k, const struct ldm_tensor *x, int slot,
                 struct ldm_tensor *y)
{
    const struct conv_def *d = &CONVS[k];
    struct ldm_conv2d_opts o = {d->stride, d->stride, d->pad_h, d->pad_h, d->pad_w, d->pad_w};
    int64_t H = (x->shape[2] + 2 * d->pad_h - d->R) / d->stride + 1;
    int64_t W = (x->shape[3] + 2 * d->pad_w - d->S) / d->stride + 1;
    int rc = view(m, slot, x->shape[0], d->K, H, W, y);
    if (rc == 0)
        rc = ldm_conv2d_forward(m->ctx, y, x, &m->p[2 * k], &m->p[2 * k + 1], &o);
    if (rc == 0)
        rc = ldm_act_forward(m->ctx, LDM_ACT_RELU, y, y); /* in place: forward only */
    return rc;
}

/* 3×3 pool into a slot: max with stride `stride` (padding 1 when stride 1),
 * or average with stride 1, padding 1, count_include_pad=False. */
static int pool(struct ldm_inception *m, int avg, int stride, const struct ldm_tensor *x,
                int slot, struct ldm_tensor *y)
{
    int pad = stride == 1;
    struct ldm_pool_opts o = {3, 3, stride, stride, pad, pad, 0};
    int64_t H = (x->shape[2] + 2 * pad - 3) / stride + 1, W = (x->shape[3] + 2 * pad - 3) / stride + 1;
    int rc = view(m, slot, x->shape[0], x->shape[1], H, W, y);
    if (rc)
        return rc;
    return avg ? ldm_avg_pool2d_forward(m->ctx, y, x, &o) : ldm_max_pool2d_forward(m->ctx, y, x, &o);
}

/* Concatenate parts along channels into y (a big slot). */
static int cat(struct ldm_inception *m, const struct ldm_tensor *const *parts, int n, int slot,
               struct ldm_tensor *y)
{
    int64_t C = 0;
    for (int i = 0; i < n; i++)
        C += parts[i]->shape[1];
    int rc = view(m, slot, parts[0]->shape[0], C, parts[0]->shape[2], parts[0]->shape[3], y);
    return rc ? rc : ldm_concat_forward(m->ctx, y, parts, n);
}

#define S(i) (NBIG + (i)) /* small slot i */
#define TRY(e) do { int rc_ = (e); if (rc_) return rc_; } while (0)

/* FIDInceptionA: x (n, Cin, 35, 35) -> y (n, 224 + pool_features, 35, 35). */
static int block_a(struct ldm_inception *m, int k, const struct ldm_tensor *x, int out,
                   struct ldm_tensor *y)
{
    struct ldm_tensor b1, t, u, b5, b3, p, bp;
    TRY(bconv(m, k, x, S(0), &b1));     /* (n, 64, 35, 35) */
    TRY(bconv(m, k + 1, x, S(1), &t));  /* (n, 48, 35, 35) */
    TRY(bconv(m, k + 2, &t, S(2), &b5)); /* (n, 64, 35, 35) 5×5 */
    TRY(bconv(m, k + 3, x, S(1), &t));  /* (n, 64, 35, 35) */
    TRY(bconv(m, k + 4, &t, S(3), &u)); /* (n, 96, 35, 35) */
    TRY(bconv(m, k + 5, &u, S(4), &b3)); /* (n, 96, 35, 35) */
    TRY(pool(m, 1, 1, x, S(3), &p));    /* (n, Cin, 35, 35) avg, no pad count */
    TRY(bconv(m, k + 6, &p, S(5), &bp)); /* (n, pool_features, 35, 35) */
    const struct ldm_tensor *parts[] = {&b1, &b5, &b3, &bp};
    return cat(m, parts, 4, out, y);
}

/* InceptionB: x (n, 288, 35, 35) -> y (n, 768, 17, 17). */
static int block_b(struct ldm_inception *m, int k, const struct ldm_tensor *x, int out,
                   struct ldm_tensor *y)
{
    struct ldm_tensor b3, t, u, bd, p;
    TRY(bconv(m, k, x, S(0), &b3));     /* (n, 384, 17, 17) stride 2 */
    TRY(bconv(m, k + 1, x, S(1), &t));  /* (n, 64, 35, 35) */
    TRY(bconv(m, k + 2, &t, S(2), &u)); /* (n, 96, 35, 35) */
    TRY(bconv(m, k + 3, &u, S(3), &bd)); /* (n, 96, 17, 17) stride 2 */
    TRY(pool(m, 0, 2, x, S(4), &p));    /* (n, 288, 17, 17) max */
    const struct ldm_tensor *parts[] = {&b3, &bd, &p};
    return cat(m, parts, 3, out, y);
}

/* FIDInceptionC: x (n, 768, 17, 17) -> y (n, 768, 17, 17); c7 from the table. */
static int block_c(struct ldm_inception *m, int k, const struct ldm_tensor *x, int out,
                   struct ldm_tensor *y)
{
    struct ldm_tensor b1, t, u, b7, bd, p, bp;
    TRY(bconv(m, k, x, S(0), &b1));     /* (n, 192, 17, 17) */
    TRY(bconv(m, k + 1, x, S(1), &t));  /* (n, c7, 17, 17) */
    TRY(bconv(m, k + 2, &t, S(2), &u)); /* (n, c7, 17, 17) 1×7 */
    TRY(bconv(m, k + 3, &u, S(3), &b7)); /* (n, 192, 17, 17) 7×1 */
    TRY(bconv(m, k + 4, x, S(1), &t));  /* (n, c7, 17, 17) */
    TRY(bconv(m, k + 5, &t, S(2), &u)); /* (n, c7, 17, 17) 7×1 */
    TRY(bconv(m, k + 6, &u, S(1), &t)); /* (n, c7, 17, 17) 1×7 */
    TRY(bconv(m, k + 7, &t, S(2), &u)); /* (n, c7, 17, 17) 7×1 */
    TRY(bconv(m, k + 8, &u, S(4), &bd)); /* (n, 192, 17, 17) 1×7 */
    TRY(pool(m, 1, 1, x, S(1), &p));    /* (n, 768, 17, 17) avg, no pad count */
    TRY(bconv(m, k + 9, &p, S(5), &bp)); /* (n, 192, 17, 17) */
    const struct ldm_tensor *parts[] = {&b1, &b7, &bd, &bp};
    return cat(m, parts, 4, out, y);
}

/* InceptionD: x (n, 768, 17, 17) -> y (n, 1280, 8, 8). */
static int block_d(struct ldm_inception *m, int k, const struct ldm_tensor *x, int out,
                   struct ldm_tensor *y)
{
    struct ldm_tensor t, b3, u, b7, p;
    TRY(bconv(m, k, x, S(0), &t));      /* (n, 192, 17, 17) */
    TRY(bconv(m, k + 1, &t, S(1), &b3)); /* (n, 320, 8, 8) stride 2 */
    TRY(bconv(m, k + 2, x, S(0), &t));  /* (n, 192, 17, 17) */
    TRY(bconv(m, k + 3, &t, S(2), &u)); /* (n, 192, 17, 17) 1×7 */
    TRY(bconv(m, k + 4, &u, S(0), &t)); /* (n, 192, 17, 17) 7×1 */
    TRY(bconv(m, k + 5, &t, S(3), &b7)); /* (n, 192, 8, 8) stride 2 */
    TRY(pool(m, 0, 2, x, S(4), &p));    /* (n, 768, 8, 8) max */
    const struct ldm_tensor *parts[] = {&b3, &b7, &p};
    return cat(m, parts, 3, out, y);
}

/* FIDInceptionE_1 (avg pool, no pad count) / E_2 (max pool, stride 1):
 * x (n, Cin, 8, 8) -> y (n, 2048, 8, 8). */
static int block_e(struct ldm_inception *m, int k, int avg, const struct ldm_tensor *x, int out,
                   struct ldm_tensor *y)
{
    struct ldm_tensor b1, t, a, b, u, da, db, p, bp;
    TRY(bconv(m, k, x, S(0), &b1));     /* (n, 320, 8, 8) */
    TRY(bconv(m, k + 1, x, S(1), &t));  /* (n, 384, 8, 8) */
    TRY(bconv(m, k + 2, &t, S(2), &a)); /* (n, 384, 8, 8) 1×3 */
    TRY(bconv(m, k + 3, &t, S(3), &b)); /* (n, 384, 8, 8) 3×1 */
    TRY(bconv(m, k + 4, x, S(1), &t));  /* (n, 448, 8, 8) */
    TRY(bconv(m, k + 5, &t, S(4), &u)); /* (n, 384, 8, 8) 3×3 */
    TRY(bconv(m, k + 6, &u, S(1), &da)); /* (n, 384, 8, 8) 1×3 */
    TRY(bconv(m, k + 7, &u, S(5), &db)); /* (n, 384, 8, 8) 3×1 */
    TRY(pool(m, avg, 1, x, S(4), &p));  /* (n, Cin, 8, 8) */
    TRY(bconv(m, k + 8, &p, S(6), &bp)); /* (n, 192, 8, 8) */
    const struct ldm_tensor *parts[] = {&b1, &a, &b, &da, &db, &bp};
    return cat(m, parts, 6, out, y);
}

/* Stem: x (n, 3, H, W) in [0,1] -> y (n, 192, 35, 35) in big slot 1. */
static int stem(struct ldm_inception *m, const struct ldm_tensor *x, struct ldm_tensor *y)
{
    struct ldm_tensor r, a, b;
    int64_t n = x->shape[0];
    TRY(view(m, 0, n, 3, LDM_INCEPTION_SIZE, LDM_INCEPTION_SIZE, &r));
    TRY(ldm_bilinear_forward(m->ctx, &r, x, 0)); /* (n, 3, 299, 299) */
    TRY(bconv(m, 0, &r, 1, &a));                 /* (n, 32, 149, 149) 2x−1 folded in */
    TRY(bconv(m, 1, &a, 0, &b));                 /* (n, 32, 147, 147) */
    TRY(bconv(m, 2, &b, 1, &a));                 /* (n, 64, 147, 147) */
    TRY(pool(m, 0, 2, &a, 0, &b));               /* (n, 64, 73, 73) max */
    TRY(bconv(m, 3, &b, 1, &a));                 /* (n, 80, 73, 73) */
    TRY(bconv(m, 4, &a, 0, &b));                 /* (n, 192, 71, 71) */
    return pool(m, 0, 2, &b, 1, y);              /* (n, 192, 35, 35) max */
}

/* One chunk: m->in (n, 3, H, W) -> pool3 in small slot 0 (n, 2048),
 * logits in small slot 1 (n, 1008). */
static int run_chunk(struct ldm_inception *m, int64_t n, int64_t H, int64_t W)
{
    struct ldm_tensor x = ldm_tensor_f32(m->in, n, 3, H, W), a, b, p;
    TRY(stem(m, &x, &a));                  /* (n, 192, 35, 35) */
    TRY(block_a(m, MIXED_5B, &a, 0, &b));  /* (n, 256, 35, 35) */
    TRY(block_a(m, MIXED_5C, &b, 1, &a));  /* (n, 288, 35, 35) */
    TRY(block_a(m, MIXED_5D, &a, 0, &b));  /* (n, 288, 35, 35) */
    TRY(block_b(m, MIXED_6A, &b, 1, &a));  /* (n, 768, 17, 17) */
    TRY(block_c(m, MIXED_6B, &a, 0, &b));  /* (n, 768, 17, 17) */
    TRY(block_c(m, MIXED_6C, &b, 1, &a));  /* (n, 768, 17, 17) */
    TRY(block_c(m, MIXED_6D, &a, 0, &b));  /* (n, 768, 17, 17) */
    TRY(block_c(m, MIXED_6E, &b, 1, &a));  /* (n, 768, 17, 17) */
    TRY(block_d(m, MIXED_7A, &a, 0, &b));  /* (n, 1280, 8, 8) */
    TRY(block_e(m, MIXED_7B, 1, &b, 1, &a)); /* (n, 2048, 8, 8) */
    TRY(block_e(m, MIXED_7C, 0, &a, 0, &b)); /* (n, 2048, 8, 8) */
    TRY(view(m, S(0), n, LDM_INCEPTION_DIM, 1, 1, &p));
    TRY(ldm_adaptive_avg_pool2d_forward(m->ctx, &p, &b)); /* (n, 2048, 1, 1) pool3 */
    struct ldm_tensor f = ldm_tensor_f32(p.data, n, LDM_INCEPTION_DIM);
    struct ldm_tensor l = ldm_tensor_f32(m->slot[S(1)].data, n, LDM_INCEPTION_CLASSES);
    return ldm_linear_forward(m->ctx, &l, &f, &m->p[2 * NCONV], &m->p[2 * NCONV + 1]); /* (n, 1008) */
}

/* Make the input buffer hold a full chunk of H×W images. */
static int prepare_input(struct ldm_inception *m, int64_t H, int64_t W)
{
    size_t need = (size_t)LDM_INCEPTION_CHUNK * 3 * (size_t)H * (size_t)W;
    if (need <= m->in_cap)
        return 0;
    if (m->in)
        ldm_ctx_free(m->ctx, m->in);
    m->in = NULL;
    m->in_cap = 0;
    TRY(ldm_ctx_alloc(m->ctx, need * sizeof(float), (void **)&m->in));
    m->in_cap = need;
    return 0;
}

/* Make the workspace fit the ops of a chunk of n H×W images. Each chunk size is
 * planned once per input size: a backend may pick its algorithms, and so its
 * workspace, by the batch size (cuDNN does). */
static int prepare(struct ldm_inception *m, int64_t n, int64_t H, int64_t W)
{
    if (H != m->plan_h || W != m->plan_w) {
        m->plan_h = H;
        m->plan_w = W;
        m->planned = 0;
    }
    if (m->planned & (1u << n))
        return 0;
    size_t bytes = 0;
    ldm_ctx_plan_begin(m->ctx);
    int rc = run_chunk(m, n, H, W);
    ldm_ctx_plan_end(m->ctx, &bytes);
    if (rc == 0)
        rc = ldm_ctx_reserve(m->ctx, bytes);
    if (rc == 0)
        m->planned |= 1u << n;
    return rc;
}

int ldm_inception_forward(struct ldm_inception *m, const float *images, int64_t N, int64_t H,
                          int64_t W, float *pool3, float *logits)
{
    if (N < 1 || H < 1 || W < 1 || H > 4096 || W > 4096)
        return ldm_fail(LDM_EINVAL, "inception: bad input shape (%lld,3,%lld,%lld)",
                        (long long)N, (long long)H, (long long)W);
    TRY(prepare_input(m, H, W));
    size_t img = 3 * (size_t)H * (size_t)W;
    for (int64_t i = 0; i < N; i += LDM_INCEPTION_CHUNK) {
        int64_t n = N - i < LDM_INCEPTION_CHUNK ? N - i : LDM_INCEPTION_CHUNK;
        TRY(prepare(m, n, H, W));
        TRY(ldm_ctx_upload(m->ctx, m->in, images + (size_t)i * img, (size_t)n * img * 4));
        TRY(run_chunk(m, n, H, W));
        TRY(ldm_ctx_download(m->ctx, pool3 + (size_t)i * LDM_INCEPTION_DIM, m->slot[S(0)].data,
                             (size_t)n * LDM_INCEPTION_DIM * sizeof(float)));
        if (logits)
            TRY(ldm_ctx_download(m->ctx, logits + (size_t)i * LDM_INCEPTION_CLASSES,
                                 m->slot[S(1)].data,
                                 (size_t)n * LDM_INCEPTION_CLASSES * sizeof(float)));
    }
    return 0;
}

/* Rows of pool3 per pass of ldm_inception_logits_unbiased: as many as small slot 0
 * holds (their logits, 1008 wide, then fit small slot 1). */
#define FC_ROWS ((int64_t)(SMALL_CAP * LDM_INCEPTION_CHUNK / LDM_INCEPTION_DIM))

int ldm_inception_logits_unbiased(struct ldm_inception *m, const float *pool3, int64_t N,
                                  float *out)
{
    if (N < 1)
        return ldm_fail(LDM_EINVAL, "inception: %lld rows of pool3", (long long)N);
    for (int64_t i = 0; i < N; i += FC_ROWS) {
        int64_t n = N - i < FC_ROWS ? N - i : FC_ROWS;
        struct ldm_tensor x = ldm_tensor_f32(m->slot[S(0)].data, n, LDM_INCEPTION_DIM);
        struct ldm_tensor y = ldm_tensor_f32(m->slot[S(1)].data, n, LDM_INCEPTION_CLASSES);
        TRY(ldm_ctx_upload(m->ctx, x.data, pool3 + (size_t)i * LDM_INCEPTION_DIM,
                           ldm_tensor_nbytes(&x)));
        TRY(ldm_linear_forward(m->ctx, &y, &x, &m->p[2 * NCONV], NULL)); /* (n, 1008) */
        TRY(ldm_ctx_download(m->ctx, out + (size_t)i * LDM_INCEPTION_CLASSES, y.data,
                             ldm_tensor_nbytes(&y)));
    }
    return 0;
}
