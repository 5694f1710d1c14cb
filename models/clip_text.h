/* clip_text.h — transformers' CLIPTextModel and CLIPTextModelWithProjection, forward only.
 *
 * The model reads a transformers `text_encoder/` folder: config.json
 * (CLIPTextConfig, or a CLIPConfig whose "text_config" holds it) and the
 * weights that models/weights.h finds there (model.safetensors, shards with
 * model.safetensors.index.json, or a pytorch_model.bin state dict, in
 * weights.h's order of preference), or, when the folder holds none of
 * those, its fp16 variant model.fp16.safetensors. State-dict names are
 * `text_model.…` and, for the projection variant, `text_projection.weight`;
 * other tensors (position_ids buffers) are ignored. Weights may be F32, F16
 * or BF16; they are converted to F32 on load.
 *
 * Forward, for token ids (N, L) with L <= max_position_embeddings:
 *   x = token_embedding[ids] + position_embedding[0..L−1]     (N, L, D)
 *   per layer: x += out_proj(causal MHA(layer_norm1(x)));
 *              x += fc2(act(fc1(layer_norm2(x))))              act: quick_gelu or gelu
 *   last_hidden_state = final_layer_norm(x)
 *   pooled[n] = last_hidden_state[n, e(n)], e(n) = the first position of
 *     eos_token_id in row n (transformers' rule; when the config's
 *     eos_token_id is 2, the legacy rule: the first position of the row's
 *     largest id)
 *   text_embeds = pooled · text_projectionᵀ (no bias)
 * Hidden state K (transformers' hidden_states[K]) is x before layer K+1:
 * K = 0 the embeddings, K = i after layer i, no final norm (clip_skip, the
 * penultimate state of SD-2.x / SDXL).
 *
 * Memory: parameters in one arena, activations in another sized for the
 * last (N, L), both in the context's memory; the context's workspace is
 * reserved for them. The caller owns the context and keeps it open until
 * ldm_clip_text_free. One model computes on one thread at a time.
 */
#ifndef LDM_MODELS_CLIP_TEXT_H
#define LDM_MODELS_CLIP_TEXT_H

#include <jansson.h>
#include <stdint.h>

#include "nn/backend.h"

/* CLIPTextConfig's fields. Defaults when missing (transformers'): vocab
 * 49408, width 512, MLP 2048, 12 layers, 8 heads, 77 positions,
 * quick_gelu, eps 1e-5, eos 49407, projection 512. */
struct ldm_clip_config {
    int64_t vocab_size;              /* V */
    int64_t hidden_size;             /* D */
    int64_t intermediate_size;       /* F */
    int64_t num_hidden_layers;
    int64_t num_attention_heads;     /* H, dividing D */
    int64_t max_position_embeddings; /* the longest L */
    int64_t projection_dim;          /* P (text_projection's rows) */
    int64_t eos_token_id;
    double layer_norm_eps;
    int hidden_act;                  /* enum ldm_act: QUICK_GELU, GELU or GELU_TANH */
};

/* Read a config object; `what` names it in error details. Returns 0,
 * LDM_EFORMAT (a field of the wrong type), LDM_ECONFIG (a size < 1, heads
 * not dividing the width, eps <= 0, an eos id outside the vocabulary) or
 * LDM_EUNSUPPORTED (a hidden_act other than quick_gelu, gelu, gelu_new,
 * gelu_pytorch_tanh), each naming the field. */
int ldm_clip_config_from_json(struct ldm_clip_config *cfg, const json_t *obj, const char *what);

struct ldm_clip_text; /* opaque */

/* with_projection for ldm_clip_text_load: the projection when the weights hold it. */
#define LDM_CLIP_PROJ_AUTO (-1)

/* Load `dir`/config.json and the folder's weights (see above) onto ctx.
 * with_projection 1: the weights must hold text_projection.weight (P, D);
 * 0: it is not read; LDM_CLIP_PROJ_AUTO: read when present. Every tensor's
 * name, dtype and shape is checked against the config: a mismatch names the
 * file (the shard holding it), the tensor and both shapes. *out is the
 * caller's (ldm_clip_text_free). Returns 0, LDM_ENOTFOUND (config.json, no
 * weights, a missing shard or tensor: named), LDM_EFORMAT, LDM_ECONFIG,
 * LDM_EUNSUPPORTED (a tensor's dtype), LDM_EDENIED (a refused pickle
 * global), LDM_EIO or LDM_ENOMEM. */
int ldm_clip_text_load(struct ldm_clip_text **out, struct ldm_ctx *ctx, const char *dir,
                       int with_projection);

/* 1 when the model was loaded with text_projection, else 0. */
int ldm_clip_text_has_projection(const struct ldm_clip_text *m);

/* Free *m (NULL is fine) and set it NULL. */
void ldm_clip_text_free(struct ldm_clip_text **m);

/* The model's config. */
const struct ldm_clip_config *ldm_clip_text_config(const struct ldm_clip_text *m);

/* What one forward writes, into host memory the caller owns; NULL skips an
 * output (the layers after the last one needed are not run). */
struct ldm_clip_out {
    int hidden_index;        /* K for `hidden`: 0..layers, or negative from the end
                              * (−1 = after the last layer, −2 = penultimate) */
    float *hidden;           /* (N, L, D) hidden state K */
    float *last_hidden_state;/* (N, L, D) */
    float *pooled;           /* (N, D) */
    float *text_embeds;      /* (N, P); needs a model loaded with the projection */
};

/* Run the model on ids (N, L), host memory, row-major. Returns 0,
 * LDM_EINVAL (N or L < 1, L above max_position_embeddings, a hidden index
 * out of range, text_embeds asked of a model without projection, or a row
 * without the end-of-text id when pooled or text_embeds is asked; the
 * detail names the row), LDM_ERANGE (an id outside 0..V−1), LDM_ENOMEM, or
 * an op's error. */
int ldm_clip_text_forward(struct ldm_clip_text *m, const int64_t *ids, int64_t N, int64_t L,
                          const struct ldm_clip_out *out);

#endif
