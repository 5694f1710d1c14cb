/* vae.h — diffusers' AutoencoderKL (eval mode, forward only): images to the
 * latent distribution (mean, log-variance) and latents back to images.
 *
 * A model is read from a diffusers `vae/` folder: config.json and the
 * weights that models/weights.h finds there (one safetensors file, shards
 * with their .index.json, or a PyTorch .bin state dict, in weights.h's order
 * of preference); when the folder holds none of those, its fp16 variant
 * diffusion_pytorch_model.fp16.safetensors (or model.fp16.safetensors).
 * Tensors may be F32, F16 or BF16, cast to F32 on load. Parameters keep
 * the diffusers state-dict names
 * ("encoder.down_blocks.0.resnets.1.conv2.weight", ...); the attention
 * names of older files (query, key, value, proj_attn) are read too, as
 * diffusers converts them. Every tensor the config implies must be in the
 * weights with its shape, and every tensor of the weights must be one of
 * them.
 *
 * Shapes: images (N, in_channels, H, W) in [-1, 1]; latents (N,
 * latent_channels, h, w) with h = H / 2^(blocks−1) (each Downsample2D
 * halves a side, rounding down); decoded images (N, out_channels,
 * h·2^(blocks−1), w·2^(blocks−1)). All tensors are F32 in the memory of
 * the context the model was opened on.
 *
 * Activations live in one arena owned by the model, sized on first use for
 * a shape and grown when a larger shape arrives (the workspace of the
 * context likewise). A model computes one call at a time: use one per
 * thread, or serialize calls.
 */
#ifndef LDM_MODELS_VAE_H
#define LDM_MODELS_VAE_H

#include <stdint.h>

#include "nn/backend.h"

#define LDM_VAE_MAXBLOCKS 8 /* entries of block_out_channels */
#define LDM_VAE_MAXLAYERS 8 /* layers_per_block */

/* config.json of an AutoencoderKL, with diffusers' defaults for keys that
 * are absent. */
struct ldm_vae_config {
    int in_channels;                            /* 3 */
    int out_channels;                           /* 3 */
    int latent_channels;                        /* 4 */
    int nblocks;                                /* entries of block_out_channels */
    int block_out_channels[LDM_VAE_MAXBLOCKS];  /* (64) */
    int layers_per_block;                       /* 1 (decoder blocks have one more) */
    int norm_num_groups;                        /* 32 */
    int use_quant_conv, use_post_quant_conv;    /* 1, 1 */
    int mid_block_add_attention;                /* 1 */
    double scaling_factor;                      /* 0.18215 */
    double shift_factor;                        /* 0 when has_shift_factor is 0 */
    int has_shift_factor;                       /* the key is present and not null */
};

struct ldm_vae; /* an opened model */

/* Parse an AutoencoderKL config.json at `path` into *cfg. Checks the block
 * types (DownEncoderBlock2D / UpDecoderBlock2D, as many as
 * block_out_channels), act_fn "silu", positive sizes within the limits
 * above, and that norm_num_groups divides every channel count. Returns 0,
 * LDM_ENOTFOUND / LDM_EIO (the file), LDM_EFORMAT (not JSON, a key of the
 * wrong type) or LDM_ECONFIG (a value out of range); the detail names the
 * file and the key. */
int ldm_vae_config_load(struct ldm_vae_config *cfg, const char *path);

/* Open the model in the folder `dir` (config.json and the weights, see
 * above) on context `ctx`, which the caller keeps open until ldm_vae_close.
 * *out is the caller's. Returns 0, the codes of ldm_vae_config_load,
 * ldm_weights_open (LDM_ENOTFOUND: no weights, or a shard missing, named)
 * and ldm_st_open, LDM_EFORMAT (a tensor missing, of another shape, of a
 * dtype that is not F32/F16/BF16, or not used by the config: the detail
 * names the weights file, or the shard index, the tensor and both shapes),
 * LDM_ENOMEM, or a backend's code. On failure *out is NULL. */
int ldm_vae_open(struct ldm_vae **out, struct ldm_ctx *ctx, const char *dir);

/* Free the model (NULL is fine) and set *v to NULL. */
void ldm_vae_close(struct ldm_vae **v);

/* The model's configuration (valid while it is open). */
const struct ldm_vae_config *ldm_vae_config(const struct ldm_vae *v);

/* The latent scaling of the config: latents for the UNet are
 * (mean − shift_factor)·scaling_factor, and decode takes
 * latent/scaling_factor + shift_factor. shift is 0 when the config has none. */
void ldm_vae_scaling(const struct ldm_vae *v, double *scale, double *shift);

/* The latent side for an image side (and the image side for a latent
 * side): floor-halving once per downsampling block; doubling back. */
int64_t ldm_vae_latent_size(const struct ldm_vae *v, int64_t image_side);
int64_t ldm_vae_image_size(const struct ldm_vae *v, int64_t latent_side);

/* Encode: image (N, in_channels, H, W) -> mean (N, latent_channels, h, w)
 * = and logvar (same shape) =, the log-variance clamped to [−30, 20] as
 * DiagonalGaussianDistribution does. H, W >= 2^(blocks−1). Returns 0,
 * LDM_EINVAL (a tensor of the wrong shape or dtype: the detail names it
 * with both shapes), LDM_ENOMEM (activations), or an op's code. */
int ldm_vae_encode(struct ldm_vae *v, const struct ldm_tensor *image,
                   const struct ldm_tensor *mean, const struct ldm_tensor *logvar);

/* Decode: latent (N, latent_channels, h, w), unscaled (the mean's space)
 * -> image (N, out_channels, h·2^(blocks−1), w·2^(blocks−1)) =, not
 * clamped. Returns as ldm_vae_encode. */
int ldm_vae_decode(struct ldm_vae *v, const struct ldm_tensor *latent,
                   const struct ldm_tensor *image);

#endif
