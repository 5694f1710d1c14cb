/* weights.h — the weights of one model part folder (unet/, vae/, text_encoder/, ...).
 *
 * ldm_weights_open looks in the folder for, in this order:
 *   diffusion_pytorch_model.safetensors, model.safetensors        (one file)
 *   diffusion_pytorch_model.safetensors.index.json,
 *   model.safetensors.index.json                                  (shards)
 *   diffusion_pytorch_model.bin, pytorch_model.bin                (torch, pickle.h)
 *   diffusion_pytorch_model.bin.index.json,
 *   pytorch_model.bin.index.json                                  (torch shards)
 *   diffusion_pytorch_model.fp16.safetensors,
 *   model.fp16.safetensors                                        (diffusers' fp16 variant)
 * and takes the first that exists. A shard index is {"weight_map": {tensor:
 * file}, "metadata": {...}}; each file it names (a plain file name in the
 * same folder) is opened once, every tensor the map names must be in the
 * file it names, and every tensor of every shard is listed. A name found in
 * two shards is an error. Only the single-file fp16 variant is looked for.
 *
 * Tensors are struct ldm_st_tensor (safetensors.h); their data stays valid
 * until ldm_weights_close. A struct ldm_weights is read-only once opened; any
 * number of threads may use one at once.
 */
#ifndef LDM_WEIGHTS_H
#define LDM_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

struct ldm_weights;

/* Open the weights in folder `dir`. On success *out owns every file; free it
 * with ldm_weights_close. Returns 0, LDM_ENOTFOUND (no weights file in the
 * folder, or a shard file missing; the detail names it), LDM_EFORMAT (a bad
 * index, a tensor missing from its shard, a name in two shards, or any error
 * of ldm_st_open / ldm_pt_open), LDM_EDENIED (a refused pickle global),
 * LDM_EUNSUPPORTED, LDM_ERANGE, LDM_EIO or LDM_ENOMEM. On failure *out is NULL. */
int ldm_weights_open(struct ldm_weights **out, const char *dir);

/* Close *w (NULL is fine) and set it to NULL. */
void ldm_weights_close(struct ldm_weights **w);

/* The file it read ("DIR/model.safetensors") or the index ("DIR/....index.json"). */
const char *ldm_weights_source(const struct ldm_weights *w);

/* The number of shard files (1 for a single file). */
size_t ldm_weights_files(const struct ldm_weights *w);

/* The number of tensors, and tensor i (0 <= i < count) in name order, or NULL. */
size_t ldm_weights_count(const struct ldm_weights *w);
const struct ldm_st_tensor *ldm_weights_at(const struct ldm_weights *w, size_t i);

/* The tensor called `name`, or NULL. */
const struct ldm_st_tensor *ldm_weights_get(const struct ldm_weights *w, const char *name);

/* As ldm_weights_get; a missing tensor returns LDM_ENOTFOUND naming the
 * folder and the tensor. */
int ldm_weights_find(const struct ldm_weights *w, const char *name,
                     const struct ldm_st_tensor **out);

/* Find `name` and check its dtype and shape. Returns 0, LDM_ENOTFOUND, or
 * LDM_EFORMAT naming the file, the tensor, its dtype and shape and the ones
 * expected. *out (may be NULL) is set on success, else NULL. */
int ldm_weights_expect(const struct ldm_weights *w, const char *name, int dtype, int ndim,
                       const int64_t *shape, const struct ldm_st_tensor **out);

/* The path of weight file i (0 .. ldm_weights_files − 1, shards in index order), or NULL. */
const char *ldm_weights_file(const struct ldm_weights *w, size_t i);

/* A hash of the weights of folder `dir`, 16 hex digits into hex[17]: FNV-1a 64 of the file
 * when there is one (fsutil.h's ldm_file_fnv1a64), else FNV-1a 64 over the files' hashes in
 * order. The cache identity's weight hash. Returns 0 or the codes of ldm_weights_open and
 * ldm_file_fnv1a64. */
int ldm_weights_hash(const char *dir, char hex[17]);

#endif
