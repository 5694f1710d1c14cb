/* ldmrun.h — ldmrun's commands: run a model part on tensors from a file, compare two files. */
#ifndef LDM_TOOLS_LDMRUN_H
#define LDM_TOOLS_LDMRUN_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* What a run command was given: model folder, input and output files, options. */
struct lr_args {
    const char *dir, *in, *out;
    const char *input_name; /* --input: the tensor to read instead of the default */
    int threads;            /* --threads (0: every core) */
};

/* Output tensors gathered for ldm_st_write; the struct owns every name and buffer. */
struct lr_outs {
    struct ldm_st_tensor t[64];
    size_t n;
};

/* Add an F32 tensor `name` of this shape with a zeroed buffer (lr_outs owns it) into
 * *data. Returns 0, LDM_ERANGE (too many outputs) or LDM_ENOMEM. */
int lr_out_add(struct lr_outs *o, const char *name, int ndim, const int64_t *shape, float **data);

/* Write every output to `path` and free them. Returns ldm_st_write's code. */
int lr_out_write(struct lr_outs *o, const char *path);
void lr_out_free(struct lr_outs *o);

/* The F32 tensor `name` of st with ndim dimensions, or LDM_ENOTFOUND / LDM_EFORMAT
 * naming the file and the tensor. */
int lr_get_f32(const struct ldm_st *st, const char *name, int ndim,
               const struct ldm_st_tensor **t);

/* The integer-valued tensor `name` (I64, I32 or F32) as n int64 values, malloc'd into
 * *v (the caller frees). Returns 0, LDM_ENOTFOUND, LDM_EFORMAT or LDM_ENOMEM. */
int lr_get_ints(const struct ldm_st *st, const char *name, int64_t **v, size_t *n);

/* The commands; each returns 0 or an LDM_E* code with its detail recorded. */
int lr_cmd_unet(const struct lr_args *a);
int lr_cmd_vae(const struct lr_args *a, int decode);
int lr_cmd_clip(const struct lr_args *a);
int lr_cmd_compare(int argc, char **argv);
int lr_cmd_tokenize(const char *dir, const char *out, const char *text);
int lr_cmd_schedule(const char *dir, const char *out);

#endif
