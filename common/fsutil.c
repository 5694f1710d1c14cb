/* fsutil.c — durable file writes and read-only file mappings. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static unsigned tmp_counter;

static int mem_put(struct ldm_writer *w, const void *buf, size_t len)
{
    size_t used = (size_t)w->offset;
    if (len > SIZE_MAX - used)
        return ldm_fail(LDM_ENOMEM, "%s: image larger than memory", w->path);
    if (used + len > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < used + len)
            cap = cap > SIZE_MAX / 2 ? used + len : cap * 2;
        unsigned char *p = realloc(w->mem, cap);
        if (!p)
            return ldm_fail(LDM_ENOMEM, "%s: cannot grow the image to %zu bytes", w->path, cap);
        w->mem = p;
        w->cap = cap;
    }
    if (len)
        memcpy(w->mem + used, buf, len);
    w->offset += len;
    return 0;
}

int ldm_writer_put(struct ldm_writer *w, const void *buf, size_t len)
{
    if (w->fd < 0)
        return mem_put(w, buf, len);
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(w->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ldm_fail_errno(LDM_EIO, "%s: write", w->path);
        if (n == 0)
            return ldm_fail(LDM_EIO, "%s: write made no progress", w->path);
        p += n;
        left -= (size_t)n;
    }
    w->offset += len;
    return 0;
}

int ldm_write_mem(ldm_write_fn fn, void *ctx, const char *label, void **out, size_t *len)
{
    struct ldm_writer w = {.fd = -1, .path = label};
    *out = NULL;
    *len = 0;
    int rc = fn(&w, ctx);
    if (rc != 0) {
        free(w.mem);
        return rc;
    }
    *out = w.mem;
    *len = (size_t)w.offset;
    return 0;
}

/* Split `path` into its folder (into dir) and the temporary name beside it
 * (into tmp). */
static int tmp_names(const char *path, char *dir, size_t dsize, char *tmp, size_t tsize)
{
    size_t n = strlen(path);
    if (n == 0 || path[n - 1] == '/')
        return ldm_fail(LDM_EINVAL, "\"%s\": not a file path", path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (slash && dlen == 0)
        dlen = 1; /* "/name": the folder is "/" */
    if (dlen + 1 > dsize)
        return ldm_fail(LDM_EINVAL, "%s: path too long", path);
    if (slash)
        memcpy(dir, path, dlen);
    else
        dir[dlen++] = '.';
    dir[dlen] = '\0';
    unsigned k = __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED);
    int m = snprintf(tmp, tsize, "%.*s.%s.tmp.%ld.%u", (int)(base - path), path, base,
                     (long)getpid(), k);
    if (m < 0 || (size_t)m >= tsize)
        return ldm_fail(LDM_EINVAL, "%s: path too long", path);
    return 0;
}

static int open_tmp(const char *path, char *dir, char *tmp)
{
    for (int tries = 0; tries < 100; tries++) {
        int rc = tmp_names(path, dir, PATH_MAX, tmp, PATH_MAX);
        if (rc != 0)
            return rc;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0)
            return fd;
        if (errno == EEXIST)
            continue;
        if (errno == ENOENT)
            return ldm_fail_errno(LDM_ENOTFOUND, "%s: cannot create %s", path, tmp);
        return ldm_fail_errno(LDM_EIO, "%s: cannot create %s", path, tmp);
    }
    return ldm_fail(LDM_EIO, "%s: no free temporary name beside it", path);
}

int ldm_write_atomic(const char *path, ldm_write_fn fn, void *ctx)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    int fd = open_tmp(path, dir, tmp);
    if (fd < 0)
        return fd;
    struct ldm_writer w = {.fd = fd, .path = path};
    int rc = fn(&w, ctx);
    if (rc == 0 && fsync(fd) != 0)
        rc = ldm_fail_errno(LDM_EIO, "%s: fsync of %s", path, tmp);
    if (close(fd) != 0 && rc == 0)
        rc = ldm_fail_errno(LDM_EIO, "%s: close of %s", path, tmp);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ldm_fail_errno(LDM_EIO, "%s: rename from %s", path, tmp);
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return ldm_fsync_dir(dir);
}

int ldm_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s: open folder", dir);
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL) /* EINVAL: the file system cannot sync folders */
        rc = ldm_fail_errno(LDM_EIO, "%s: fsync folder", dir);
    close(fd);
    return rc;
}

int ldm_map_file(const char *path, struct ldm_map *m)
{
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s: open", path);
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = ldm_fail_errno(LDM_EIO, "%s: fstat", path);
    else if (!S_ISREG(st.st_mode))
        rc = ldm_fail(LDM_EINVAL, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > SIZE_MAX)
        rc = ldm_fail(LDM_EIO, "%s: too large to map", path);
    if (rc == 0 && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            rc = ldm_fail_errno(LDM_EIO, "%s: mmap", path);
        else {
            m->data = p;
            m->len = (size_t)st.st_size;
        }
    }
    close(fd);
    return rc;
}

void ldm_unmap(struct ldm_map *m)
{
    if (m->data)
        munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

int ldm_file_fnv1a64(const char *path, char hex[17])
{
    struct ldm_map map = {0};
    int rc = ldm_map_file(path, &map);
    if (rc)
        return rc;
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = map.data;
    for (size_t i = 0; i < map.len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    ldm_unmap(&map);
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    return 0;
}

struct buf_src {
    const void *p;
    size_t n;
};

static int put_buf(struct ldm_writer *w, void *ctx)
{
    const struct buf_src *b = ctx;
    return ldm_writer_put(w, b->p, b->n);
}

int ldm_write_atomic_buf(const char *path, const void *buf, size_t len)
{
    struct buf_src b = {buf, len};
    return ldm_write_atomic(path, put_buf, &b);
}
