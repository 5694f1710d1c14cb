/* unet.h — diffusers' UNet2DConditionModel (SD-1.x, SD-2.x and SDXL variants): config,
 * weights, forward, MSE loss and backward on the nn/ op set.
 *
 * Parameters carry diffusers' state-dict names ("down_blocks.0.resnets.1.conv1.weight")
 * and live in one arena laid out from a table built from the config; their gradients
 * live in a second arena at the same offsets. ldm_unet_prepare fixes the input sizes
 * (N, H, W, L): it records the network once as a list of ops over an activation arena
 * (every activation is kept there for the backward, llm.c style, unless gradient
 * checkpointing is on), lays out a second arena for activation gradients (a gradient
 * holds a slot only from the backward of its last reader to that of its producer;
 * slots are reused), and reserves the context's workspace. Forward, loss and backward
 * then replay that list. Inputs get no gradients.
 *
 * Gradient checkpointing (ldm_unet_set_checkpointing; diffusers'
 * enable_gradient_checkpointing): as diffusers, each ResnetBlock2D and each
 * BasicTransformerBlock of the down, mid and up blocks is a segment whose inner
 * activations are not kept; so are, beyond diffusers, each Transformer2DModel's norm
 * and proj_in, its proj_out and residual, an up block's skip concatenation (with the
 * resnet after it), an upsampler's doubling (with its conv) and conv_norm_out (with
 * conv_out). The inner activations of all segments share one scratch region, and the
 * backward runs a segment's ops that made them again just before back-propagating
 * through it. The gradients are the same (bit for bit on the CPU backend) for about
 * one more forward pass.
 *
 * Supported (anything else in config.json is refused with LDM_EUNSUPPORTED naming the
 * key): positional time embedding with flip_sin_to_cos / freq_shift, SiLU,
 * CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D /
 * UpBlock2D, conv or linear transformer projections, per-block heads (diffusers'
 * attention_head_dim, which it uses as the number of heads, or num_attention_heads),
 * per-block transformer_layers_per_block, addition_embed_type "text_time" (SDXL).
 * The CPU backend computes in F32 (reduced precision emulated); weights may be stored as
 * F32, F16 or BF16.
 */
#ifndef LDM_MODELS_UNET_H
#define LDM_MODELS_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "nn/backend.h"

#define LDM_UNET_MAXBLOCKS 6

/* The config.json fields the network depends on, resolved per block. */
struct ldm_unet_config {
    int in_channels, out_channels;        /* 4, 4 */
    int nblocks;                          /* len(block_out_channels) */
    int block_out_channels[LDM_UNET_MAXBLOCKS];
    int down_cross[LDM_UNET_MAXBLOCKS];   /* 1: CrossAttnDownBlock2D, 0: DownBlock2D */
    int up_cross[LDM_UNET_MAXBLOCKS];     /* 1: CrossAttnUpBlock2D, 0: UpBlock2D */
    int heads[LDM_UNET_MAXBLOCKS];        /* attention heads per down block (up: reversed) */
    int tlayers[LDM_UNET_MAXBLOCKS];      /* transformer_layers_per_block per down block */
    int layers_per_block;                 /* resnets per down block (up: one more) */
    int cross_attention_dim;              /* D of encoder_hidden_states */
    int norm_num_groups;                  /* 32 */
    float norm_eps;                       /* 1e-5 */
    int flip_sin_to_cos;                  /* 1 */
    float freq_shift;                     /* 0 */
    int use_linear_projection;            /* 0 SD1, 1 SD2/SDXL */
    int upcast_attention;                 /* SD2.1; no effect in F32 */
    int conv_in_kernel, conv_out_kernel;  /* 3 */
    int time_embed_dim;                   /* 4 · block_out_channels[0] */
    int text_time;                        /* addition_embed_type == "text_time" */
    int addition_time_embed_dim;          /* SDXL: 256 */
    int add_embed_in;                     /* projection_class_embeddings_input_dim */
    int n_time_ids;                       /* text_time: (add_embed_in − text dim) / addition_time_embed_dim */
};

struct ldm_unet;

/* Read `path` (a diffusers config.json) into *cfg. Returns 0, LDM_ENOTFOUND /
 * LDM_EIO / LDM_EFORMAT (the file), LDM_ECONFIG (an inconsistent value: the key and
 * the value) or LDM_EUNSUPPORTED (a feature not built: the key). */
int ldm_unet_config_load(struct ldm_unet_config *cfg, const char *path);

/* Build the parameter table for *cfg and allocate the parameter and gradient arenas
 * (zeroed) on ctx, which must outlive the model. *out is the caller's; free it with
 * ldm_unet_free. Returns 0, LDM_EINVAL (a parameter whose size overflows) or
 * LDM_ENOMEM. */
int ldm_unet_create(struct ldm_unet **out, struct ldm_ctx *ctx, const struct ldm_unet_config *cfg);

/* Free *u (NULL is fine) and everything it allocated; sets *u NULL. */
void ldm_unet_free(struct ldm_unet **u);

/* Load every parameter from the safetensors file `path` (F32, F16 or BF16),
 * checking each name and shape against the table. Returns 0, the codes of
 * ldm_st_open, LDM_ENOTFOUND (a missing tensor), LDM_EFORMAT (a wrong dtype or shape:
 * the tensor, its shape and the expected one), LDM_EIO. Extra tensors in the file
 * are ignored. */
int ldm_unet_load(struct ldm_unet *u, const char *path);

/* As ldm_unet_load, from the weights of a diffusers `unet/` folder `dir`: what
 * models/weights.h finds there (diffusion_pytorch_model.safetensors, shards with their
 * .index.json, or a .bin state dict, in weights.h's order of preference) or, when the
 * folder holds none of those, its fp16 variant diffusion_pytorch_model.fp16.safetensors.
 * Errors name the file (the shard holding the tensor, or the shard index) and the
 * tensor. Returns 0, the codes of ldm_weights_open (LDM_ENOTFOUND: no weights, or a
 * shard missing, named; LDM_EDENIED: a refused pickle global) and of ldm_unet_load. */
int ldm_unet_load_dir(struct ldm_unet *u, const char *dir);

/* Fix the input sizes: sample (N, in_channels, H, W) with H and W divisible by
 * 2^(nblocks−1), encoder_hidden_states (N, L, cross_attention_dim). Records the ops,
 * allocates the activation arenas and reserves the workspace (planned over forward
 * and backward). May be called again with other sizes. Returns 0, LDM_EINVAL (sizes),
 * LDM_ENOMEM, or an op's error from planning. */
int ldm_unet_prepare(struct ldm_unet *u, int64_t N, int64_t H, int64_t W, int64_t L);

/* Mixed precision: compute in `dtype` — LDM_DT_F32 (the default), or LDM_DT_BF16 /
 * LDM_DT_F16 with F32 master weights, as torch.autocast does for diffusers' training
 * scripts. The parameter and gradient arenas stay F32 (what the optimizer, EMA,
 * all-reduce and checkpoints see); two more arenas hold the parameters and their
 * gradients in `dtype`, each element at half its byte offset in the F32 ones. Each
 * forward first casts the F32 parameters into the compute copies (the optimizer moves
 * them between passes); activations are in `dtype`, while normalisation statistics,
 * attention's log-sum-exp, timesteps, time ids, the target, the loss and its weights
 * stay F32, and the prediction is cast to F32 for the loss (diffusers'
 * model_pred.float()). The backward adds the compute gradients into the F32 ones, each
 * stretch as it becomes final (before the gradient hook sees it) or all at the end.
 * The loss scale for F16 is the caller's: pass it as dloss and unscale the F32
 * gradients. Backends without native reduced-precision ops emulate them (backend.h:
 * `emulated`; the CPU backend). Takes effect at once: a prepared model is prepared
 * again at the same sizes. Returns 0, LDM_EINVAL (another dtype), LDM_ENOMEM or
 * ldm_unet_prepare's codes. */
int ldm_unet_set_precision(struct ldm_unet *u, int dtype);
int ldm_unet_get_precision(const struct ldm_unet *u);

/* Gradient checkpointing on (on != 0) or off (the default). It takes effect at the
 * next ldm_unet_prepare; on a prepared model it prepares again at the same sizes
 * (the last forward and loss are then gone). Returns 0 or ldm_unet_prepare's codes. */
int ldm_unet_set_checkpointing(struct ldm_unet *u, int on);

/* The inputs of one pass, in host memory, F32 (timesteps as floats, as diffusers
 * casts them): sample (N, C, H, W), timesteps (N), encoder_hidden_states (N, L, D);
 * with text_time also text_embeds (N, add_embed_in − n_time_ids·addition_time_embed_dim)
 * and time_ids (N, n_time_ids); NULL otherwise. */
struct ldm_unet_inputs {
    const float *sample, *timesteps, *encoder_hidden_states, *text_embeds, *time_ids;
};

/* Run the forward pass on `in`; copy the prediction (N, out_channels, H, W) into
 * out_host when it is not NULL. Returns 0, LDM_EINVAL (not prepared, a missing
 * input), or an op's or a copy's error. */
int ldm_unet_forward(struct ldm_unet *u, const struct ldm_unet_inputs *in, float *out_host);

/* Mean squared error between the last forward's prediction and target_host (same
 * shape, F32) into *loss. Returns 0, LDM_EINVAL (no forward yet), an op's error. */
int ldm_unet_loss(struct ldm_unet *u, const float *target_host, float *loss);

/* As ldm_unet_loss, with per-sample weights (N floats in host memory, NULL: all 1):
 * loss = (1/N) Σ_n w[n]·mean_i (pred − target)² (min-SNR-γ weighting). The backward
 * uses the same weights. */
int ldm_unet_loss_weighted(struct ldm_unet *u, const float *target_host,
                           const float *weights_host, float *loss);

/* Zero the parameter gradients and back-propagate the last loss (scaled by dloss,
 * 1 normally) through the network. Returns 0, LDM_EINVAL (no loss yet), an op's error. */
int ldm_unet_backward(struct ldm_unet *u, float dloss);

/* Gradient accumulation: back-propagate the last loss, ADDING into the parameter
 * gradients (zero them first with ldm_unet_zero_grad). Same returns. */
int ldm_unet_backward_accumulate(struct ldm_unet *u, float dloss);
int ldm_unet_zero_grad(struct ldm_unet *u);

/* Bucketed all-reduce during the backward: fn(arg, from) is called each time the
 * parameter gradients at byte offsets from .. end of the gradient arena are final
 * (`from` decreasing, the last call with 0), while the backward goes on with the rest.
 * NULL turns it off. */
typedef void (*ldm_unet_grad_hook)(void *arg, size_t from);
void ldm_unet_set_grad_hook(struct ldm_unet *u, ldm_unet_grad_hook fn, void *arg);

/* The parameter and gradient arenas (one allocation each, the same layout: tensor i
 * of either sits at the same offset), for whole-model ops: all-reduce, clipping,
 * AdamW, EMA, checkpoints. And the resolved config. */
void ldm_unet_arenas(const struct ldm_unet *u, const struct ldm_arena **params,
                     const struct ldm_arena **grads);
const struct ldm_unet_config *ldm_unet_get_config(const struct ldm_unet *u);

/* The number of parameters, and parameter i with its gradient (descriptors into the
 * model's arenas, valid until ldm_unet_free). Returns 0 or LDM_ERANGE. */
size_t ldm_unet_nparams(const struct ldm_unet *u);
int ldm_unet_param(const struct ldm_unet *u, size_t i, struct ldm_tensor *param,
                   struct ldm_tensor *grad);

/* Memory in bytes: parameters (one arena; gradients use as much), activations saved
 * for backward (with checkpointing: those kept plus the scratch region), their
 * gradients, and the workspace reserved; the ops recorded and the checkpointed
 * segments (0: checkpointing off). */
struct ldm_unet_mem {
    size_t params, acts, act_grads, workspace;
    size_t compute; /* mixed precision: the parameters and gradients in the compute dtype */
    size_t nodes, segments;
};
void ldm_unet_memory(const struct ldm_unet *u, struct ldm_unet_mem *m);

#endif
