/* safetensors.h — element types, and the safetensors tensor file format.
 *
 * A safetensors file is: 8 bytes, little-endian, the header length N; N bytes
 * of UTF-8 JSON, an object mapping each tensor name to
 *   {"dtype":"F32","shape":[4,3],"data_offsets":[begin,end]}
 * plus an optional "__metadata__" object of string values; then the data
 * buffer, where a tensor's bytes are [begin,end) (row-major, little-endian).
 *
 * Reading maps the file read-only and validates the whole header before
 * returning: every tensor's dtype, shape, offsets and size, and that no two
 * tensors share a byte. Gaps and trailing bytes in the data buffer are
 * allowed. Tensor data pointers point into the mapping, so they are valid
 * until ldm_st_close and are aligned only as the file aligns them (files
 * written by ldm_st_write and by the reference writer keep every tensor at an
 * 8-byte multiple from the start of the file).
 *
 * Writing puts "__metadata__" first, then the tensors sorted by name (byte
 * order), with the header padded with spaces to a multiple of 8 bytes. The
 * data is contiguous, ordered as the reference writer orders it: larger
 * elements first, then by name, so that every tensor is aligned to its
 * element size with no gaps (the reference reader rejects gaps).
 *
 * A struct ldm_st is read-only after it is opened: any number of threads may
 * use one at once. The project assumes a little-endian host.
 */
#ifndef LDM_SAFETENSORS_H
#define LDM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* ---- element types -------------------------------------------------------- */

enum ldm_dtype {
    LDM_DT_F64 = 0,
    LDM_DT_F32,
    LDM_DT_F16,
    LDM_DT_BF16,
    LDM_DT_I64,
    LDM_DT_I32,
    LDM_DT_I16,
    LDM_DT_I8,
    LDM_DT_U64,
    LDM_DT_U32,
    LDM_DT_U16,
    LDM_DT_U8,
    LDM_DT_BOOL,
    LDM_DT_F8_E4M3,
    LDM_DT_F8_E5M2,
    LDM_DT_COUNT
};

/* The most dimensions a tensor or array may have here. */
#define LDM_MAXDIM 8

/* The safetensors name of a dtype ("F32", "BF16", "F8_E4M3", ...), or NULL
 * when `dtype` is not an enum ldm_dtype value. */
const char *ldm_dtype_name(int dtype);

/* The dtype whose safetensors name is `name` (case-sensitive), or -1. */
int ldm_dtype_parse(const char *name);

/* Bytes per element (1, 2, 4 or 8), or 0 for a value that is no dtype. */
size_t ldm_dtype_size(int dtype);

/* ---- tensors ---------------------------------------------------------------- */

/* One tensor. Read: every field points into or is owned by its struct ldm_st.
 * Write: filled by the caller, who keeps name and data alive for the call. */
struct ldm_st_tensor {
    const char *name;
    int dtype;                  /* enum ldm_dtype */
    int ndim;                   /* 0 (a scalar) .. LDM_MAXDIM */
    int64_t shape[LDM_MAXDIM];  /* shape[0..ndim-1], each >= 0 */
    const void *data;           /* nbytes bytes, row-major */
    size_t nbytes;              /* elements × ldm_dtype_size(dtype) */
};

/* One metadata entry, for writing. */
struct ldm_st_kv {
    const char *key;
    const char *value;
};

struct ldm_st; /* an open, validated safetensors file */

/* Open and validate the file `path`. On success *out owns the mapping; free
 * it with ldm_st_close. Returns 0, LDM_ENOTFOUND or LDM_EIO (the file),
 * LDM_EFORMAT (any defect of the header; the detail names the file, the
 * tensor and what is wrong), LDM_EUNSUPPORTED (a valid tensor with more than
 * LDM_MAXDIM dimensions) or LDM_ENOMEM. On failure *out is NULL. */
int ldm_st_open(struct ldm_st **out, const char *path);

/* As ldm_st_open, over `len` bytes at `buf`, which the caller keeps
 * unchanged until ldm_st_close (they are not copied). `label` names the
 * buffer in error details (NULL: "<buffer>"). */
int ldm_st_open_buffer(struct ldm_st **out, const void *buf, size_t len, const char *label);

/* Close *st (NULL is fine) and set it to NULL. Every pointer obtained from
 * it becomes invalid. */
void ldm_st_close(struct ldm_st **st);

/* The path or label it was opened with. */
const char *ldm_st_label(const struct ldm_st *st);

/* The number of tensors, and tensor number i (0 <= i < count) in name order
 * (NULL when i is out of range). */
size_t ldm_st_count(const struct ldm_st *st);
const struct ldm_st_tensor *ldm_st_at(const struct ldm_st *st, size_t i);

/* The tensor called `name` (binary search), or NULL. */
const struct ldm_st_tensor *ldm_st_get(const struct ldm_st *st, const char *name);

/* As ldm_st_get, but a missing tensor returns LDM_ENOTFOUND with a detail
 * naming the file and the tensor. */
int ldm_st_find(const struct ldm_st *st, const char *name, const struct ldm_st_tensor **out);

/* Find `name` and check that it has this dtype and shape. Returns 0,
 * LDM_ENOTFOUND, or LDM_EFORMAT with a detail naming the file, the tensor,
 * its dtype and shape and the ones expected. */
int ldm_st_expect(const struct ldm_st *st, const char *name, int dtype, int ndim,
                  const int64_t *shape, const struct ldm_st_tensor **out);

/* The metadata value of `key`, or NULL. */
const char *ldm_st_meta(const struct ldm_st *st, const char *key);

/* The number of metadata entries, and entry number i in key order: returns
 * its key and sets *value (NULL when i is out of range). */
size_t ldm_st_meta_count(const struct ldm_st *st);
const char *ldm_st_meta_at(const struct ldm_st *st, size_t i, const char **value);

/* Write `n` tensors and `nmeta` metadata entries to `path` atomically (see
 * fsutil.h). Returns 0, LDM_EINVAL (a bad tensor: no or duplicate name, the
 * name "__metadata__", unknown dtype, ndim out of range, negative shape,
 * nbytes not matching the shape, NULL data with nbytes > 0, a name or a
 * metadata string that is not UTF-8, a duplicate metadata key; the detail
 * names it), LDM_ENOMEM, or a code of ldm_write_atomic. */
int ldm_st_write(const char *path, const struct ldm_st_tensor *tensors, size_t n,
                 const struct ldm_st_kv *meta, size_t nmeta);

/* As ldm_st_write, but build the file image in memory: *out (malloc'd, the
 * caller frees it) and *len. */
int ldm_st_encode(void **out, size_t *len, const struct ldm_st_tensor *tensors, size_t n,
                  const struct ldm_st_kv *meta, size_t nmeta);

#endif
