/* unet_save.h — write a UNet2DConditionModel as a diffusers `unet/` folder.
 *
 * The folder gets config.json (diffusers' key names) and
 * diffusion_pytorch_model.safetensors (every parameter as F32 under its
 * state-dict name), each written atomically (temporary file, fsync, rename,
 * fsync of the folder), so diffusers and ldm_unet_load read it back.
 *
 * config.json is built from the model's struct ldm_unet_config, which holds
 * what the network depends on: _class_name, _diffusers_version, act_fn,
 * in_channels, out_channels, block_out_channels, down_block_types,
 * up_block_types, mid_block_type, attention_head_dim (the per-block head
 * counts, as diffusers reads them when num_attention_heads is null),
 * transformer_layers_per_block, layers_per_block, cross_attention_dim,
 * norm_num_groups, norm_eps, flip_sin_to_cos, freq_shift,
 * use_linear_projection, upcast_attention, conv_in_kernel, conv_out_kernel
 * and, for SDXL, addition_embed_type, addition_time_embed_dim and
 * projection_class_embeddings_input_dim. Keys the struct does not hold
 * (sample_size, ...) are carried over from a source config when one is given
 * to ldm_unet_save_from.
 */
#ifndef LDM_MODELS_UNET_SAVE_H
#define LDM_MODELS_UNET_SAVE_H

#include <jansson.h>

#include "models/unet.h"

/* The config object of *u (keys above) into *out, a new reference the caller
 * owns (json_decref). Returns 0 or LDM_ENOMEM. */
int ldm_unet_config_json(const struct ldm_unet *u, json_t **out);

/* Write `dir`/config.json and `dir`/diffusion_pytorch_model.safetensors for
 * *u (read-only here). `dir` is created (mode 0777 less the umask) when it
 * does not exist; its parent must. Returns 0, LDM_EINVAL (an empty dir),
 * LDM_ENOTFOUND (no parent folder), LDM_EIO (the detail names the path and
 * the system call), LDM_ENOMEM, or a backend's copy error. */
int ldm_unet_save(const struct ldm_unet *u, const char *dir);

/* As ldm_unet_save, but config.json also keeps every key of the config file
 * `src_config` that the struct does not hold (values of keys the struct holds
 * come from the struct). Returns also the codes of ldm_json_load_object for
 * src_config. */
int ldm_unet_save_from(const struct ldm_unet *u, const char *dir, const char *src_config);

/* What ldm_unet_save_ex writes: keys carried over from `src_config` (NULL: none), the
 * weights' dtype (LDM_DT_F32, F16 or BF16: diffusers' save precision; rounding to
 * nearest even), and the parameters to write: `params`, an arena laid out as the
 * model's own (an EMA copy), or NULL for the model's. */
struct ldm_unet_save_opts {
    const char *src_config;
    int dtype;
    const struct ldm_arena *params;
};

/* As ldm_unet_save_from with options (NULL: F32, the model's parameters). Also
 * LDM_EINVAL for another dtype or an arena of another size. */
int ldm_unet_save_ex(const struct ldm_unet *u, const char *dir,
                     const struct ldm_unet_save_opts *o);

#endif
