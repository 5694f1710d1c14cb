/* model_index.h — a diffusers pipeline folder's model_index.json: which parts exist, of which class.
 *
 * model_index.json is one object: "_class_name" (the pipeline class, e.g.
 * "StableDiffusionPipeline", required), "_diffusers_version" (optional), and
 * per part a [library, class] pair of strings such as
 * "unet": ["diffusers", "UNet2DConditionModel"]. A pair [null, null] marks an
 * absent part (a pipeline saved without its safety_checker) and is skipped;
 * other keys starting with '_' and values that are not arrays (e.g.
 * "requires_safety_checker": true) are pipeline options, ignored here.
 */
#ifndef LDM_MODEL_INDEX_H
#define LDM_MODEL_INDEX_H

#include <stddef.h>

struct ldm_model_part {
    char *name;                /* "unet": also the sub-folder's name */
    char *library;             /* "diffusers", "transformers" */
    char *cls;                 /* "UNet2DConditionModel" */
};

struct ldm_model_index {
    char *class_name;          /* "_class_name" */
    char *version;             /* "_diffusers_version", or NULL */
    struct ldm_model_part *parts; /* sorted by name */
    size_t nparts;
};

/* Read DIR/model_index.json into *mi (the caller frees it with
 * ldm_model_index_free, also after a failure). Each listed part must be a
 * plain folder name with a sub-folder DIR/name. Returns 0, LDM_ENOTFOUND (no
 * model_index.json, or a listed part's folder missing), LDM_EFORMAT (bad
 * JSON, no _class_name, a part value that is not [library, class], a part
 * name that is not a plain folder name; the detail names the file and key)
 * or LDM_ENOMEM. */
int ldm_model_index_load(struct ldm_model_index *mi, const char *dir);

/* Free everything *mi owns and zero it; a zeroed one is fine. */
void ldm_model_index_free(struct ldm_model_index *mi);

/* The part called `name`, or NULL. */
const struct ldm_model_part *ldm_model_index_part(const struct ldm_model_index *mi,
                                                  const char *name);

/* As ldm_model_index_part, but also check the class: returns 0, LDM_ENOTFOUND
 * (no such part) or LDM_EFORMAT (another class; the detail names both). */
int ldm_model_index_expect(const struct ldm_model_index *mi, const char *name, const char *cls,
                           const struct ldm_model_part **out);

#endif
