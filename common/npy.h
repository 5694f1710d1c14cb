/* npy.h — NumPy .npy arrays and .npz archives of them, for float32 and
 * float64 (the FID statistics files of pytorch-fid: "mu" [2048] and "sigma"
 * [2048,2048], float64).
 *
 * .npy: "\x93NUMPY", version major.minor, the header length (2 bytes in 1.0,
 * 4 bytes in 2.0 and 3.0, little-endian), a Python dict literal
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (2048, 2048), }
 * padded with spaces and ending in '\n', then the raw elements. Versions 1.0,
 * 2.0 and 3.0 are read; dtypes '<f4' and '<f8' only (others, big-endian, and
 * fortran_order True for more than one dimension are LDM_EUNSUPPORTED).
 * Written: version 1.0 (2.0 if the header needs more than 65535 bytes), the
 * header padded so that the data starts at a multiple of 64 bytes, as numpy
 * does.
 *
 * .npz: a zip archive whose member "NAME.npy" holds array NAME. Members are
 * found through the central directory (zip64 records and extra fields
 * understood), may be stored or deflated, and are checked against their
 * CRC-32 and sizes when read. Written stored (numpy's savez) or deflated
 * (savez_compressed), with zip64 records only where sizes need them unless
 * asked for always.
 *
 * Files are written atomically (fsutil.h). The project assumes a
 * little-endian host.
 */
#ifndef LDM_NPY_H
#define LDM_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h" /* enum ldm_dtype, LDM_MAXDIM */

/* An array that owns its data (row-major, malloc'd, so aligned for any
 * element type). A zeroed struct is an empty, valid-to-free value. */
struct ldm_array {
    int dtype;                  /* LDM_DT_F32 or LDM_DT_F64 */
    int ndim;                   /* 0 .. LDM_MAXDIM */
    int64_t shape[LDM_MAXDIM];
    void *data;
    size_t nbytes;
};

/* Set *a to a zero-filled array of this dtype (F32 or F64) and shape.
 * Returns 0, LDM_EINVAL (other dtype, ndim out of range, negative or
 * overflowing shape) or LDM_ENOMEM. */
int ldm_array_init(struct ldm_array *a, int dtype, int ndim, const int64_t *shape);

/* Free a's data and zero *a. */
void ldm_array_free(struct ldm_array *a);

/* The number of elements (the product of the shape). */
size_t ldm_array_count(const struct ldm_array *a);

/* ---- .npy ------------------------------------------------------------------- */

/* Read the .npy file `path` into *out (the caller frees it with
 * ldm_array_free). Returns 0, LDM_ENOTFOUND or LDM_EIO (the file),
 * LDM_EFORMAT (a malformed file; the detail names the file and the defect),
 * LDM_EUNSUPPORTED (a valid file this module does not read: other dtypes,
 * big-endian, fortran_order, version, more than LDM_MAXDIM dimensions) or
 * LDM_ENOMEM. On failure *out is zeroed. */
int ldm_npy_read(const char *path, struct ldm_array *out);

/* As ldm_npy_read, from `len` bytes at `buf` (copied); `label` names them in
 * error details (NULL: "<buffer>"). */
int ldm_npy_read_buffer(const void *buf, size_t len, const char *label, struct ldm_array *out);

/* Write *a to `path` atomically. Returns 0, LDM_EINVAL (dtype not F32/F64,
 * bad ndim or shape, nbytes not matching, no data), LDM_ENOMEM or a code of
 * ldm_write_atomic. */
int ldm_npy_write(const char *path, const struct ldm_array *a);

/* As ldm_npy_write, into memory: *out (malloc'd, the caller frees it) and
 * *len. */
int ldm_npy_encode(const struct ldm_array *a, void **out, size_t *len);

/* ---- .npz ------------------------------------------------------------------- */

struct ldm_npz; /* an open archive whose central directory has been read */

/* Open the archive `path` (mapped read-only) and read its central directory.
 * Members are not decompressed until ldm_npz_read. Returns 0, LDM_ENOTFOUND or
 * LDM_EIO (the file), LDM_EFORMAT (not a zip archive, truncated, or a bad
 * directory entry; the detail names the file and the member),
 * LDM_EUNSUPPORTED (multi-disk or encrypted archives), or LDM_ENOMEM. On
 * failure *out is NULL. */
int ldm_npz_open(struct ldm_npz **out, const char *path);

/* As ldm_npz_open, over `len` bytes at `buf`, which the caller keeps
 * unchanged until ldm_npz_close (not copied). `label` names them in error
 * details (NULL: "<buffer>"). */
int ldm_npz_open_buffer(struct ldm_npz **out, const void *buf, size_t len, const char *label);

/* Close *z (NULL is fine) and set it to NULL. */
void ldm_npz_close(struct ldm_npz **z);

/* The number of members, and the array name of member i in archive order
 * (the member name without its ".npy"), or NULL when i is out of range. */
size_t ldm_npz_count(const struct ldm_npz *z);
const char *ldm_npz_name(const struct ldm_npz *z, size_t i);

/* Read array `name` into *out (the caller frees it with ldm_array_free):
 * decompress the member, check its size and CRC-32, and parse it as .npy.
 * Returns 0, LDM_ENOTFOUND (no such member; the detail names the archive and
 * the array), LDM_EFORMAT (a bad member, size or CRC mismatch, a bad .npy),
 * LDM_EUNSUPPORTED (compression other than stored or deflated; what
 * ldm_npy_read does not read) or LDM_ENOMEM. On failure *out is zeroed.
 * Any number of threads may read from one archive at once. */
int ldm_npz_read(const struct ldm_npz *z, const char *name, struct ldm_array *out);

/* Open `path`, read the arrays names[0..n-1] into out[0..n-1], close. On
 * failure every out[i] is zeroed and the code of the failing step returned. */
int ldm_npz_load(const char *path, const char *const *names, struct ldm_array *out, size_t n);

/* One array to write under `name` (member "NAME.npy"). */
struct ldm_npz_entry {
    const char *name;
    const struct ldm_array *array;
};

enum {
    LDM_NPZ_DEFLATE = 1, /* deflate members (savez_compressed); else store (savez) */
    LDM_NPZ_ZIP64 = 2,   /* zip64 extra fields and end records even where not needed */
};

/* Write the arrays to the archive `path` atomically; `flags` is a set of
 * LDM_NPZ_*. Returns 0, LDM_EINVAL (a bad array as in ldm_npy_write, an
 * empty or duplicate name), LDM_ENOMEM, or a code of ldm_write_atomic. */
int ldm_npz_write(const char *path, const struct ldm_npz_entry *e, size_t n, int flags);

/* As ldm_npz_write, into memory: *out (malloc'd, the caller frees it) and
 * *len. */
int ldm_npz_encode(const struct ldm_npz_entry *e, size_t n, int flags, void **out, size_t *len);

#endif
