/* encode.h — encoderd's models: VAE latents and text embeddings of a batch of samples into store records.
 *
 * A model folder in the diffusers layout: vae/ (AutoencoderKL),
 * text_encoder/ (CLIPTextModel) and, for SDXL, text_encoder_2/
 * (CLIPTextModelWithProjection). Text hidden states: "last" is the last
 * hidden state after the final layer norm (SD 1.x); "penultimate" is
 * transformers' hidden_states[-2], without the final norm (SDXL, clip
 * skip). With two encoders the hidden states are concatenated along the
 * width (first encoder's, then the second's) and the pooled embedding is
 * the second encoder's projected text_embeds, as SDXL's pipeline does.
 *
 * Conditioning image (ControlNet hint, image-pair input): stored as it came
 * (uint8 pixels, CHW: LDM_REC_COND_PIXELS) or, with cond_latent, encoded by
 * the VAE like the image and stored as its mean, unscaled like the latent
 * mean (fp16 (C, h, w): LDM_REC_COND_LATENT); a grey (1-channel)
 * conditioning image is encoded as R = G = B, as PIL's convert("RGB") does.
 *
 * Device: the models run on a compute context of o->device ("cpu", "cuda",
 * "cuda:N"). Samples and records stay in host memory; on a device the
 * images are copied in and the latents out around each VAE call.
 */
#ifndef LDM_ENCODERD_ENCODE_H
#define LDM_ENCODERD_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/sample.pb-c.h"

struct encoderd_models;

struct encoderd_model_opts {
    const char *dir;    /* the model folder */
    const char *device; /* "cpu", "cuda" or "cuda:N" */
    int threads;        /* compute threads of the CPU backend (<= 0: every core) */
    int penultimate;    /* text_hidden = penultimate */
    int flip_variants;  /* also encode the mirrored image */
    int cond_latent;    /* store the conditioning image's VAE mean, not its pixels */
};

/* One sample to encode: its Sample and pixel frames (owned by the caller). */
struct encoderd_item {
    const Ldmpipe__Sample *s;
    const uint8_t *pixels; /* target_h x target_w x 3, HWC */
    const uint8_t *cond;   /* conditioning pixels (cond layout), or NULL */
};

/* Open the models of o->dir on a context of o->device. *out is the
 * caller's (encoderd_models_free). Returns 0, LDM_EINVAL (flip_variants
 * with cond_latent: a record holds no mirrored conditioning latent),
 * LDM_ECONFIG (no context can be opened on o->device: the detail starts
 * with "device" and gives the backend's reason, e.g. no CUDA in this build,
 * no such device, a driver failure) or the codes of ldm_vae_open and
 * ldm_clip_text_load (the detail names the file). */
int encoderd_models_open(struct encoderd_models **out, const struct encoderd_model_opts *o);

/* Free *m (NULL is fine) and set it NULL. */
void encoderd_models_free(struct encoderd_models **m);

/* Vocabulary sizes of the text encoders (vocab2 0 without a second). */
void encoderd_models_vocab(const struct encoderd_models *m, uint32_t *vocab, uint32_t *vocab2);

/* The identity JSON text of the model (malloc'd, the caller frees *out):
 * FNV-1a 64 hashes of each model part's config.json and weight file,
 * scaling and shift factors, text_hidden, flip_variants, cond_store
 * ("pixels" or "latent"). Returns 0, LDM_EIO
 * (a file cannot be read, named) or LDM_ENOMEM. */
int encoderd_identity(const struct encoderd_models *m, const struct encoderd_model_opts *o,
                      char **out);

/* Whether the models can encode sample s: 1..max_position_embeddings
 * token ids (the same count for the second encoder, none without one), an
 * RGB image at least as large as one latent pixel (ldm_vae_image_size of
 * 1) on each side, and with cond_latent a conditioning image of 1 or 3
 * channels and at least that size. Returns 0 or LDM_EINVAL naming the
 * sample. */
int encoderd_check_sample(const struct encoderd_models *m, const Ldmpipe__Sample *s);

/* Same shape: target size, token counts and conditioning layout agree. */
int encoderd_same_shape(const Ldmpipe__Sample *a, const Ldmpipe__Sample *b);

/* Encode n samples of one shape (same target size, token counts and
 * conditioning layout) into records: recs[i] (malloc'd, the caller frees)
 * of lens[i] bytes. Returns 0, LDM_EINVAL (samples of different shapes, a
 * token count the text encoder cannot take: the detail names the sample),
 * LDM_ENOMEM or a model's code; on failure every recs[i] is NULL. */
int encoderd_encode(struct encoderd_models *m, const struct encoderd_item *items, size_t n,
                    void **recs, size_t *lens);

/* The record of the empty caption (no latent: text states, pooled embedding and ids
 * of "" through the model folder's tokenizer/ and tokenizer_2/), malloc'd into *rec,
 * for meta "empty_caption": caption dropout and classifier-free guidance. */
int encoderd_empty_caption(struct encoderd_models *m, void **rec, size_t *len);

#endif
