/* shardw.c — write WebDataset tar shards (plain, gzip, zstd) atomically through libarchive. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"
#include "mkshards.h"

struct mk_shard_out {
    struct archive *a;
    struct ldm_writer *w;
    int rc; /* the writer's failure, kept for the caller */
};

const char *mk_shard_suffix(enum mk_shard_filter f)
{
    return f == MK_SHARD_GZIP ? ".tar.gz" : f == MK_SHARD_ZSTD ? ".tar.zst" : ".tar";
}

static la_ssize_t out_write(struct archive *a, void *client, const void *buf, size_t n)
{
    struct mk_shard_out *o = client;
    int rc = ldm_writer_put(o->w, buf, n);
    if (rc) {
        o->rc = rc;
        archive_set_error(a, EIO, "%s", ldm_errmsg());
        return -1;
    }
    return (la_ssize_t)n;
}

int mk_shard_put(struct mk_shard_out *out, const char *name, const void *data, size_t len,
                 time_t mtime)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", out->w->path);
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_mtime(e, mtime, 0);
    int r = archive_write_header(out->a, e);
    archive_entry_free(e);
    if (r == ARCHIVE_OK && len && archive_write_data(out->a, data, len) != (la_ssize_t)len)
        r = ARCHIVE_FATAL;
    if (r != ARCHIVE_OK)
        return out->rc ? out->rc
                       : ldm_fail(LDM_EIO, "%s: member %s: %s", out->w->path, name,
                                  archive_error_string(out->a));
    return 0;
}

struct job {
    enum mk_shard_filter filter;
    mk_shard_fill_fn fill;
    void *ctx;
};

/* The ldm_write_atomic callback: a libarchive writer over the ldm_writer. */
static int write_shard(struct ldm_writer *w, void *ctx)
{
    struct job *j = ctx;
    struct mk_shard_out out = {archive_write_new(), w, 0};
    if (!out.a)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->path);
    int r = archive_write_set_format_pax_restricted(out.a);
    if (r == ARCHIVE_OK && j->filter == MK_SHARD_GZIP)
        r = archive_write_add_filter_gzip(out.a);
    if (r == ARCHIVE_OK && j->filter == MK_SHARD_ZSTD)
        r = archive_write_add_filter_zstd(out.a);
    if (r == ARCHIVE_OK &&
        j->filter != MK_SHARD_PLAIN) /* no zero padding after the compressed stream */
        r = archive_write_set_bytes_in_last_block(out.a, 1);
    if (r == ARCHIVE_OK)
        r = archive_write_open(out.a, &out, NULL, out_write, NULL);
    int rc = r == ARCHIVE_OK ? 0
                             : ldm_fail(LDM_EIO, "%s: cannot start the archive: %s", w->path,
                                        archive_error_string(out.a));
    if (!rc)
        rc = j->fill(&out, j->ctx);
    if (!rc && archive_write_close(out.a) != ARCHIVE_OK)
        rc = out.rc ? out.rc
                    : ldm_fail(LDM_EIO, "%s: cannot finish the archive: %s", w->path,
                               archive_error_string(out.a));
    archive_write_free(out.a);
    return rc;
}

int mk_shard_write(const char *path, enum mk_shard_filter f, mk_shard_fill_fn fill, void *ctx)
{
    struct job j = {f, fill, ctx};
    return ldm_write_atomic(path, write_shard, &j);
}

struct text {
    const char *p;
    size_t n;
};

static int write_all(struct ldm_writer *w, void *ctx)
{
    struct text *t = ctx;
    return ldm_writer_put(w, t->p, t->n);
}

int mk_write_text_file(const char *path, const char *text, size_t len)
{
    struct text t = {text, len};
    return ldm_write_atomic(path, write_all, &t);
}
