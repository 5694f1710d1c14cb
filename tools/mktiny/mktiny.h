/* mktiny.h — mktiny's parts: small random diffusers model folders (SD-1, SD-2, SDXL layouts). */
#ifndef LDM_TOOLS_MKTINY_H
#define LDM_TOOLS_MKTINY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"

enum mt_variant { MT_SD1, MT_SD2, MT_SDXL };

/* What every part is made from. */
struct mt_opts {
    int variant;          /* enum mt_variant */
    const char *out;      /* the model folder */
    const char *bpe;      /* CLIP's bpe_simple_vocab_16e6.txt.gz */
    uint64_t seed;
};

/* The text encoders' widths, which the UNet's sizes follow. */
#define MT_CLIP_WIDTH 32
#define MT_CLIP_PROJ 32

/* Fill n floats of the tensor `name` with seeded random values: weights of rank >= 2
 * uniform in ±1/sqrt(fan_in) (PyTorch's default bound), token and position embeddings
 * with standard deviation 0.02, 1-D weights (norm scales) 1 ± 0.1, biases ± 0.02.
 * `stream` separates tensors. */
void mt_fill(float *x, size_t n, const char *name, int ndim, const int64_t *shape,
             uint64_t seed, uint64_t stream);

/* Write `obj` as indented JSON to dir/name (atomically). Returns 0 or an LDM_E* code. */
int mt_write_json(const char *dir, const char *name, const json_t *obj);

/* mkdir dir/sub (existing is fine) into path[size]. Returns 0, LDM_ERANGE, LDM_EIO. */
int mt_subdir(char *path, size_t size, const char *dir, const char *sub);

/* The parts; each writes one subfolder of o->out. */
int mt_unet(const struct mt_opts *o);
int mt_vae(const struct mt_opts *o);
int mt_text_encoder(const struct mt_opts *o, const char *sub, int second);
int mt_tokenizer(const struct mt_opts *o, const char *sub, int second);
int mt_scheduler(const struct mt_opts *o);

#endif
