/* fsutil.h — durable file writes and read-only file mappings.
 *
 * A file is written atomically: its bytes go to a temporary file in the same
 * folder (".NAME.tmp.PID.N", created with mode 0666 less the umask), which is
 * fsynced, renamed over NAME, and then the folder is fsynced. A reader sees
 * either the old file or the complete new one, also after a crash; a crash
 * may leave a ".NAME.tmp.*" file behind.
 *
 * The bytes come from a callback that writes through a struct ldm_writer. The
 * same callback can fill memory instead (ldm_write_mem), so that a format
 * has one encoder for files and for in-memory images.
 */
#ifndef LDM_FSUTIL_H
#define LDM_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Where a callback's bytes go. Read `offset` (bytes written so far); leave
 * the rest alone. */
struct ldm_writer {
    int fd;             /* the file being written, or -1 in memory mode */
    const char *path;   /* the final path (or a label), for error details */
    uint64_t offset;    /* bytes written so far */
    unsigned char *mem; /* memory mode: the bytes so far (malloc'd) */
    size_t cap;         /* memory mode: allocated size of mem */
};

/* Append `len` bytes. Returns 0, LDM_EIO ("PATH: write: strerror") or
 * LDM_ENOMEM (memory mode). */
int ldm_writer_put(struct ldm_writer *w, const void *buf, size_t len);

/* Produces a file's content by calling ldm_writer_put; returns 0 or an
 * LDM_E* code (with its detail recorded). */
typedef int (*ldm_write_fn)(struct ldm_writer *w, void *ctx);

/* Write the file `path` atomically with the bytes that fn(w, ctx) puts (see
 * the top of this file). If fn fails, or any step does, the temporary file
 * is removed, `path` is left as it was, and the code is returned: fn's own,
 * LDM_EINVAL (empty path, or one that ends in '/'), LDM_ENOTFOUND (no such
 * folder) or LDM_EIO (a system call failed; the detail names it). */
int ldm_write_atomic(const char *path, ldm_write_fn fn, void *ctx);

/* ldm_write_atomic of the `len` bytes at buf. */
int ldm_write_atomic_buf(const char *path, const void *buf, size_t len);

/* Run fn(w, ctx) into memory. On success *out is the malloc'd bytes (the
 * caller frees them; NULL when there are none) and *len their count; on
 * failure *out is NULL and fn's code or LDM_ENOMEM is returned. `label`
 * names the image in error details. */
int ldm_write_mem(ldm_write_fn fn, void *ctx, const char *label, void **out, size_t *len);

/* fsync the folder `dir`, so that names created or renamed in it last.
 * Returns 0, LDM_ENOTFOUND or LDM_EIO. */
int ldm_fsync_dir(const char *dir);

/* A whole file mapped read-only (MAP_PRIVATE). data is NULL when len is 0.
 * The mapping stays valid after the file is renamed or unlinked; if another
 * process truncates the file, touching the lost pages raises SIGBUS. */
struct ldm_map {
    const void *data;
    size_t len;
};

/* Map the regular file `path`. Returns 0, LDM_ENOTFOUND (no such file),
 * LDM_EINVAL (not a regular file) or LDM_EIO. */
int ldm_map_file(const char *path, struct ldm_map *m);

/* Unmap and zero *m; a zeroed map is fine. */
void ldm_unmap(struct ldm_map *m);

/* FNV-1a 64 of the whole file `path`, as 16 lower-case hex digits into hex[17]
 * (the cache identity's weight and config hashes). Returns 0 or the codes of
 * ldm_map_file. */
int ldm_file_fnv1a64(const char *path, char hex[17]);

#endif
