/* unet_int.h — UNet internals shared by unet.c, unet_graph.c and unet_blocks.c. */
#ifndef LDM_MODELS_UNET_INT_H
#define LDM_MODELS_UNET_INT_H

#include "models/unet.h"

/* Recorded ops. Tensor slots, outputs first:
 *  CONV   y, x, w, b        LINEAR y, x, w, b (b absent: ndim 0)
 *  GN     y, mean, rstd, x, gamma, beta      LN  y, mean, rstd, x, gamma, beta
 *  ACT    y, x              GEGLU  y, h       ATTN out, lse, q, k, v
 *  UP2X   y, x              CAT    y, a, b    TRANS y, x
 *  ADD    y, a, b           BCAST  y, x, v    TEMB  y, t (no backward) */
enum ug_op {
    UG_CONV, UG_LINEAR, UG_GN, UG_LN, UG_ACT, UG_GEGLU, UG_ATTN,
    UG_UP2X, UG_CAT, UG_TRANS, UG_ADD, UG_BCAST, UG_TEMB
};

#define UG_SLOTS 6
#define UG_NONE ((size_t)-1)

struct ug_node {
    int op;
    int seg;                 /* the checkpointed segment it belongs to; -1: none */
    struct ldm_tensor t[UG_SLOTS];
    size_t buf[UG_SLOTS];    /* the activation buffer (bufs index) of each slot; UG_NONE: a
                              * parameter or an absent slot */
    union {
        struct ldm_conv2d_opts conv;
        struct ldm_norm_opts norm;
        struct ldm_attn_opts attn;
        struct ldm_temb_opts temb;
        int act;
    } o;
};

/* What a walk over the network does. */
enum ug_mode {
    UG_DECLARE, /* append each parameter to the table; nothing else */
    UG_MEASURE, /* count activations and their bytes (data pointers NULL) */
    UG_RECORD   /* tag activations and append the ops; ug_layout then places the
                 * activations in the arena and ug_relocate points the ops at them */
};

/* One walk of the network. A helper that fails records the first error in err and
 * returns a shape-correct descriptor, so block code reads straight through; the
 * walk's caller checks err. */
struct ug {
    struct ldm_unet *u;
    int mode;
    int err;
    size_t cursor; /* next parameter in the table (MEASURE, RECORD) */
    struct ldm_tensor ehs, semb; /* encoder_hidden_states, SiLU(time embedding) */
    struct ug_node scratch;      /* what ug_node hands out when not recording */
    size_t nacts;  /* activations so far: MEASURE counts them for RECORD's tags */
    char *tags;    /* RECORD: activation k's data points at tags[k] (ntags of them)
                    * until ug_relocate gives it its place in the arena */
    size_t ntags;
    int seg;       /* the open checkpointed segment, -1: none */
    int depth;     /* ug_seg_begin calls not yet ended (inner ones join the outer segment) */
    int nsegs;     /* segments opened so far */
};

/* One activation buffer (RECORD, in the order the walk makes them), and where its
 * gradient goes (unet_grad.c). A buffer internal to a checkpointed segment (made and
 * read only by that segment's ops) lies in the scratch region that every segment's
 * internals share; the backward makes it again before it needs it. */
struct ug_buf {
    size_t off, bytes;          /* in the activation arena */
    int seg;                    /* the segment it is internal to; -1: kept for the backward */
    size_t producer, last_use;  /* node indices (differentiable uses); UG_NONE: none */
    size_t goff;                /* in the gradient arena; UG_NONE: no gradient */
};

struct ldm_unet {
    struct ldm_ctx *ctx;
    struct ldm_unet_config cfg;
    struct ldm_tensor *params; /* the table, diffusers names (owned copies) */
    struct ldm_tensor *grads;  /* same shapes, in the gradient arena */
    size_t nparams, cap_params;
    struct ldm_arena pa, ga;   /* parameters, their gradients (F32: the master copy) */
    int cdt;                   /* the compute dtype: F32, or F16 / BF16 (mixed precision) */
    struct ldm_arena pc, gc;   /* reduced cdt: the parameters and their gradients in cdt, each
                                * element at half its byte offset in pa / ga */
    struct ldm_tensor *cparams; /* reduced cdt: the table in cdt, pointing into pc */
    struct ldm_arena aa, gaa;  /* activations, their gradients */
    struct ug_node *nodes;
    size_t nnodes, cap_nodes;
    struct ug_buf *bufs;       /* in walk order */
    size_t nbufs, cap_bufs;
    size_t out_buf;            /* bufs index of out */
    int ckpt;                  /* checkpoint each resnet and transformer block */
    int nsegs;                 /* checkpointed segments recorded */
    int scratch_seg;           /* whose internals the scratch region holds now; -1: none */
    size_t *zero_order;        /* bufs indices in the order their gradients are first used */
    size_t nzero;
    /* the prepared inputs and output, in aa */
    struct ldm_tensor sample, tsteps, ehs, text, tids, out, target, loss, weights;
    struct ldm_tensor pred, dpred; /* the prediction in F32 for the loss, and its gradient: out
                                    * itself in F32; with a reduced cdt two F32 buffers */
    int weighted; /* the last loss used per-sample weights */
    size_t *ready;  /* [nnodes]: after node i's backward, gradients from byte ready[i] on are final */
    ldm_unet_grad_hook hook;
    void *hook_arg;
    int64_t N, H, W, L;
    int prepared, have_out, have_loss;
};

/* unet_graph.c: parameters, activations and ops for a walk. */
struct ldm_tensor ug_param(struct ug *g, const char *prefix, const char *leaf, int ndim,
                           const int64_t *shape);
struct ldm_tensor ug_act(struct ug *g, int ndim, const int64_t *shape);
struct ldm_tensor ug_act32(struct ug *g, int ndim, const int64_t *shape);
struct ldm_tensor ug_view(struct ldm_tensor x, int ndim, const int64_t *shape);
struct ug_node *ug_node(struct ug *g, int op);
void ug_seg_begin(struct ug *g);
void ug_seg_end(struct ug *g);
int ug_layout(struct ldm_unet *u, const char *tags, size_t ntags, size_t *bytes);
void ug_relocate(struct ldm_unet *u, const char *tags, size_t ntags);
int ug_run_forward(struct ldm_unet *u);
int ug_run_backward(struct ldm_unet *u, float dloss);
const struct ldm_arena *ug_cparams(const struct ldm_unet *u);
const struct ldm_arena *ug_cgrads(const struct ldm_unet *u);

/* unet_grad.c: the activation-gradient layout (after RECORD) and its use. */
int ug_grad_plan(struct ldm_unet *u, size_t *bytes);
int ug_grad_zero(struct ldm_unet *u, size_t step, size_t *cursor);
int ug_ready_plan(struct ldm_unet *u);
const struct ldm_tensor *ug_grad_of(const struct ldm_unet *u, const struct ldm_tensor *t,
                                   size_t buf, struct ldm_tensor *gt);

#define UG_SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}
#define ug_actv(g, ...) ug_act((g), UG_SHAPE(__VA_ARGS__))
#define ug_actv32(g, ...) ug_act32((g), UG_SHAPE(__VA_ARGS__))
#define ug_paramv(g, prefix, leaf, ...) ug_param((g), (prefix), (leaf), UG_SHAPE(__VA_ARGS__))
#define ug_viewv(x, ...) ug_view((x), UG_SHAPE(__VA_ARGS__))

/* unet_blocks.c: the layers (each appends its ops) and the whole network. */
struct ldm_tensor ug_conv(struct ug *g, const char *pre, struct ldm_tensor x, int64_t K, int R,
                          int stride);
struct ldm_tensor ug_linear(struct ug *g, const char *pre, struct ldm_tensor x, int64_t Dout,
                            int bias);
struct ldm_tensor ug_group_norm(struct ug *g, const char *pre, struct ldm_tensor x, float eps,
                                int silu);
int ug_network(struct ug *g);

#endif
