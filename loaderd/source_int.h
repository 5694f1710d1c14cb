/* source_int.h — what the source kinds (tar, lines, folder) share with source.c.
 *
 * A kind implements `next` and `close` over its own state (`impl`). `next`
 * builds the current sample with the ldm_src_* helpers below and returns 1 (a
 * sample), 0 (clean end) or a negative code it got from ldm_src_fail. A kind may
 * call ldm_src_fail and still return 1: the sample built so far is delivered and
 * the failure comes with the next call (damage found after a whole sample).
 */
#ifndef LDM_SOURCE_INT_H
#define LDM_SOURCE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

struct ldm_source_ops {
    int (*next)(struct ldm_source *src);
    void (*close)(struct ldm_source *src); /* frees impl (not src) */
};

/* Storage of one member, kept across samples so that buffers are reused. */
struct member_buf {
    unsigned char *data;
    size_t cap;
    char ext[LDM_SOURCE_MAX_KEY + 1];
};

struct ldm_source {
    const struct ldm_source_ops *ops;
    void *impl;
    char *url;
    struct ldm_source_opts o; /* defaults filled in */
    uint64_t index;           /* index of the next sample */
    uint64_t bytes;           /* input bytes read so far (kinds update it) */
    /* the current sample */
    char key[LDM_SOURCE_MAX_KEY + 1];
    struct ldm_member *members; /* o.max_members slots */
    struct member_buf *bufs;    /* o.max_members slots */
    size_t nmembers;
    size_t sample_bytes; /* declared sizes of its members so far */
    int reason;
    char detail[512];
    /* a shard failure, returned by every later ldm_source_next */
    int fail_rc, fail_reason;
    char fail_detail[1024];
};

/* A new source for `url` with `ops` (impl set by the caller after). The
 * options are copied with their defaults. Returns NULL when out of memory. */
struct ldm_source *ldm_src_new(const char *url, const struct ldm_source_opts *opts,
                               const struct ldm_source_ops *ops);

/* Start a new sample with key k[0..n). A key over LDM_SOURCE_MAX_KEY bytes is
 * cut (and the sample rejected as BAD_KEY), so is one that is not UTF-8. */
void ldm_src_begin(struct ldm_source *src, const char *k, size_t n);

/* Is the member ext wanted (opts.want)? */
int ldm_src_wanted(const struct ldm_source *src, const char *ext);

/* Add a member `ext` of `size` bytes (as declared) to the current sample.
 * Returns its buffer, holding at least min(size, 1 MiB) bytes (grow it with
 * ldm_src_reserve as data arrives; set the length with ldm_src_set_len), or
 * NULL when the member is to be skipped: unwanted, the sample already
 * rejected, or now rejected (too big, too many, duplicate ext), or out of
 * memory (*rc = LDM_ENOMEM, detail set). */
unsigned char *ldm_src_add(struct ldm_source *src, const char *ext, size_t size, int *rc);

/* Grow the last added member's buffer to hold `len` bytes; its data (kept)
 * may move. Returns the buffer, or NULL (LDM_ENOMEM, detail set). */
unsigned char *ldm_src_reserve(struct ldm_source *src, size_t len);

/* The last added member holds `len` bytes. */
void ldm_src_set_len(struct ldm_source *src, size_t len);

/* Add a member `ext` whose data is data[0..len), owned by the kind and valid
 * until its next call. Returns 1 when added, 0 when skipped as for ldm_src_add. */
int ldm_src_add_ref(struct ldm_source *src, const char *ext, const unsigned char *data, size_t len);

/* Reject the current sample (the first reason given wins). */
void ldm_src_reject(struct ldm_source *src, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a shard failure: the detail (prefixed by nothing: give the shard in
 * fmt) goes to ldm_fail and is kept for later calls. Returns rc. */
int ldm_src_fail(struct ldm_source *src, int rc, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Constructors of the kinds. Each takes what it is given (fd, child) and
 * releases it on failure too. */
int ldm_src_tar_open_fd(const char *url, int fd, const struct ldm_source_opts *o,
                        struct ldm_source **out);
int ldm_src_tar_open_pipe(const char *url, const struct ldm_source_opts *o,
                          struct ldm_source **out);
int ldm_src_tar_open_memory(const char *name, const void *data, size_t len,
                            const struct ldm_source_opts *o, struct ldm_source **out);
int ldm_src_lines_open_fd(const char *url, int fd, const struct ldm_source_opts *o,
                          struct ldm_source **out);
int ldm_src_lines_open_memory(const char *name, const void *data, size_t len,
                              const struct ldm_source_opts *o, struct ldm_source **out);
int ldm_src_folder_open(const char *url, const struct ldm_source_opts *o, struct ldm_source **out);

#endif
