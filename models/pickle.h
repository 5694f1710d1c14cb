/* pickle.h — PyTorch state dicts (.bin, .pth, .ckpt) read without running any of their code.
 *
 * Two containers are read:
 *  - the zip format of torch.save (torch >= 1.6): a stored zip archive with
 *    PREFIX/data.pkl (the pickle), PREFIX/data/KEY (one member per storage),
 *    optionally PREFIX/byteorder ("little" is required when present);
 *  - the legacy format (_use_new_zipfile_serialization=False): five pickles
 *    back to back (magic number, protocol 1001, system info, the object, the
 *    list of storage keys), then each storage as an 8-byte little-endian
 *    element count and its bytes, in the order of that list.
 *
 * The pickle is run by a restricted machine that builds only None, bools,
 * ints, floats, strings, bytes, tuples, lists and dicts, plus storages (from
 * persistent ids ('storage', torch.XStorage, key, location, numel)) and
 * tensors. The only globals it accepts are collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
 * storage types torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,
 * Bool}Storage; any other is refused with LDM_EDENIED and a detail such as
 * "model.bin: refused global 'os.system' at byte 12" (byte offsets in details
 * count from the start of the file). Nothing is ever called.
 * BUILD (the attributes of an OrderedDict, e.g. a state dict's _metadata) is
 * accepted and ignored. Limits (values, stack, marks, memo, string length,
 * storages, tensors, nesting) are in pickle_int.h.
 *
 * The top-level object must be a dict. Its tensors are listed under their
 * keys; a dict value is flattened with its key and "." as a prefix, so a
 * Lightning checkpoint {"state_dict": {"model.x": T}, "epoch": 3} lists
 * "state_dict.model.x" (ldm_pt_prefix finds the inner names). Values other
 * than tensors and dicts, and entries whose key is not a string, are skipped.
 * Two tensors with the same flattened name are an error.
 *
 * Tensors are described with struct ldm_st_tensor (safetensors.h), so code
 * that looks up safetensors tensors reads these the same way. A contiguous
 * tensor points into the file's bytes (aligned only as the file aligns them;
 * torch's zip format aligns storages to 64 bytes); a strided view is copied
 * to a contiguous buffer owned by the struct ldm_pt. An ldm_pt is read-only
 * once opened; any number of threads may use one at once. The project
 * assumes a little-endian host.
 */
#ifndef LDM_PICKLE_H
#define LDM_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

struct ldm_pt; /* an open torch state dict */

/* Map and read the file `path`. On success *out owns the mapping; free it
 * with ldm_pt_close. Returns 0, LDM_ENOTFOUND or LDM_EIO (the file),
 * LDM_EFORMAT (a malformed archive, pickle or tensor; the detail names the
 * file, the member or byte, and what is wrong), LDM_EDENIED (a refused
 * global), LDM_EUNSUPPORTED (a compressed zip member, a big-endian file,
 * an opcode or storage type not handled, more than LDM_MAXDIM dimensions),
 * LDM_ERANGE (a limit) or LDM_ENOMEM. On failure *out is NULL. */
int ldm_pt_open(struct ldm_pt **out, const char *path);

/* As ldm_pt_open over `len` bytes at `buf`, which the caller keeps
 * unchanged until ldm_pt_close. `label` names it in details (NULL: "<buffer>"). */
int ldm_pt_open_buffer(struct ldm_pt **out, const void *buf, size_t len, const char *label);

/* Close *pt (NULL is fine) and set it to NULL; its tensors become invalid. */
void ldm_pt_close(struct ldm_pt **pt);

/* The path or label it was opened with. */
const char *ldm_pt_label(const struct ldm_pt *pt);

/* 1 when the file was in the legacy (non-zip) format, else 0. */
int ldm_pt_legacy(const struct ldm_pt *pt);

/* The number of tensors, and tensor i in name order (NULL when out of range). */
size_t ldm_pt_count(const struct ldm_pt *pt);
const struct ldm_st_tensor *ldm_pt_at(const struct ldm_pt *pt, size_t i);

/* The tensor called `name`, or NULL. */
const struct ldm_st_tensor *ldm_pt_get(const struct ldm_pt *pt, const char *name);

/* As ldm_pt_get; a missing tensor returns LDM_ENOTFOUND naming file and tensor. */
int ldm_pt_find(const struct ldm_pt *pt, const char *name, const struct ldm_st_tensor **out);

/* Find `name` and check its dtype and shape. Returns 0, LDM_ENOTFOUND, or
 * LDM_EFORMAT naming the file, the tensor, its dtype and shape and the ones
 * expected. */
int ldm_pt_expect(const struct ldm_pt *pt, const char *name, int dtype, int ndim,
                  const int64_t *shape, const struct ldm_st_tensor **out);

/* The longest common dotted prefix ("state_dict.") of all tensor names that
 * is also a whole dict key path, or "" when there is none or no tensor; the
 * string lives as long as pt. */
const char *ldm_pt_prefix(const struct ldm_pt *pt);

#endif
