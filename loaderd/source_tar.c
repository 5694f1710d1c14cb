/* source_tar.c — WebDataset tar shards from a file, memory or pipe:, grouped by key. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "source_int.h"

#define READ_BLOCK (64u << 10)

extern char **environ;

struct tar {
    struct archive *a;
    int fd;         /* file or pipe read end; -1 in memory */
    int seekable;   /* fd is a regular file (skips seek) */
    pid_t pid;      /* pipe: the command (its process group); 0 none */
    int ended;      /* the archive reached its end cleanly */
    int have_entry; /* a header was read; its data not yet */
    char *path;     /* that member's name as stored */
    size_t key_len; /* its key: path[key_off .. key_off + key_len) */
    size_t key_off;
    char ext[LDM_SOURCE_MAX_KEY + 2]; /* its ext, lower-cased (cut when too long) */
    int64_t size;   /* its data size */
    int64_t offset; /* its header's offset in the tar stream */
    char *cur_key;  /* whole key of the sample being built */
    unsigned char buf[READ_BLOCK];
};

/* ---- names --------------------------------------------------------------------------- */

/* Split a member name as webdataset does. Returns 0 when the member is to be
 * skipped (see source.h), else sets key/ext of t. */
static int split_name(struct tar *t, const char *name)
{
    size_t off = 0;
    while (strncmp(name + off, "./", 2) == 0)
        off += 2;
    const char *p = name + off, *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    if (!*base || *base == '.' || strncmp(p, "__MACOSX/", 9) == 0 || strstr(p, "/__MACOSX/"))
        return 0;
    if (p[0] == '_' && p[1] == '_') { /* webdataset metadata: __name__ or __name__/... */
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 4 && p[n - 1] == '_' && p[n - 2] == '_')
            return 0;
    }
    const char *dot = strchr(base, '.');
    if (!dot || !dot[1])
        return 0;
    t->key_off = off;
    t->key_len = (size_t)(dot - p);
    size_t n = strlen(dot + 1);
    if (n > LDM_SOURCE_MAX_KEY + 1)
        n = LDM_SOURCE_MAX_KEY + 1; /* keep it over the limit, so that ldm_src_add rejects it */
    for (size_t i = 0; i < n; i++) {
        char c = dot[1 + i];
        t->ext[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    t->ext[n] = '\0';
    return 1;
}

/* ---- errors ------------------------------------------------------------------------ */

/* Which shard reason libarchive's message stands for. */
static int archive_reason(const char *msg)
{
    if (msg && (strcasestr(msg, "truncated") || strcasestr(msg, "premature") ||
                strcasestr(msg, "unexpected end")))
        return LDM_REASON_TRUNCATED;
    return LDM_REASON_CORRUPT;
}

static void reap(struct tar *t, int *status);

/* A libarchive failure at `where`: reap a pipe: command first, so that its
 * own failure is what the detail says. */
static int tar_error(struct ldm_source *src, const char *where)
{
    struct tar *t = src->impl;
    const char *msg = archive_error_string(t->a);
    int reason = archive_reason(msg), status = 0;
    char extra[96] = "";
    if (t->pid) {
        reap(t, &status);
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            reason = LDM_REASON_PIPE_FAILED;
            snprintf(extra, sizeof extra, "; the command exited with status %d",
                     WEXITSTATUS(status));
        }
    }
    long long off = (long long)archive_filter_bytes(t->a, 0);
    return ldm_src_fail(src, reason == LDM_REASON_PIPE_FAILED ? LDM_EIO : LDM_EFORMAT, reason,
                        "%s: %s at byte %lld of the tar stream (%s): %s%s", src->url,
                        reason == LDM_REASON_TRUNCATED ? "truncated archive" : "damaged archive",
                        off < 0 ? 0 : off, where, msg ? msg : "unknown error", extra);
}

/* ---- headers and members ---------------------------------------------------------- */

/* Read headers until one of a member that counts. Returns 1 (t->path and
 * friends set), 0 (end of archive) or a negative code (ldm_src_fail'd). */
static int read_header(struct ldm_source *src)
{
    struct tar *t = src->impl;
    t->have_entry = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(t->a, &e);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) { /* RETRY too: no resync past damage */
            char where[160];
            snprintf(where, sizeof where, "reading the header after %s%s%s",
                     t->path ? "member \"" : "the start", t->path ? t->path : "",
                     t->path ? "\"" : "");
            return tar_error(src, where);
        }
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) || !name ||
            !archive_entry_size_is_set(e) || !split_name(t, name))
            continue;
        char *copy = strdup(name);
        if (!copy)
            return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s: out of memory", src->url);
        free(t->path);
        t->path = copy;
        t->size = archive_entry_size(e);
        t->offset = archive_read_header_position(t->a);
        t->have_entry = 1;
        return 1;
    }
}

/* Skip the current member's data. */
static int skip_member(struct ldm_source *src)
{
    struct tar *t = src->impl;
    if (archive_read_data_skip(t->a) != ARCHIVE_OK) {
        char where[160];
        snprintf(where, sizeof where, "skipping member \"%s\" at byte %lld", t->path,
                 (long long)t->offset);
        return tar_error(src, where);
    }
    return 0;
}

/* Read (or skip) the current member's data into the sample. */
static int take_member(struct ldm_source *src)
{
    struct tar *t = src->impl;
    int rc = 0;
    size_t size = t->size < 0 ? 0 : (size_t)t->size;
    unsigned char *dst = ldm_src_add(src, t->ext, size, &rc);
    if (rc)
        return ldm_src_fail(src, rc, LDM_REASON_CORRUPT, "%s", ldm_errmsg());
    if (!dst)
        return skip_member(src);
    size_t got = 0, room = size < (1u << 20) ? size : (1u << 20);
    while (got < size) {
        if (got == room) { /* grow with the data that came, not with what the header claims */
            room = size - room < room ? size : 2 * room;
            if (!(dst = ldm_src_reserve(src, room)))
                return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s", ldm_errmsg());
        }
        la_ssize_t r = archive_read_data(t->a, dst + got, room - got);
        if (r < 0 || r == 0) {
            char where[160];
            snprintf(where, sizeof where, "member \"%s\" at byte %lld, %zu of %zu bytes read",
                     t->path, (long long)t->offset, got, size);
            return tar_error(src, where);
        }
        got += (size_t)r;
    }
    ldm_src_set_len(src, got);
    return 0;
}

/* ---- the pipe: command --------------------------------------------------------------- */

/* Wait for the command; *status as waitpid gives it. */
static void reap(struct tar *t, int *status)
{
    *status = 0;
    if (!t->pid)
        return;
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    pid_t r = waitpid(t->pid, status, WNOHANG);
    if (r == 0) { /* still running: it stops now */
        kill(-t->pid, SIGKILL);
        while ((r = waitpid(t->pid, status, 0)) < 0 && errno == EINTR)
            ;
    }
    t->pid = 0;
}

/* At a clean end: drain the rest of the command's output, then its status. */
static int finish_pipe(struct ldm_source *src)
{
    struct tar *t = src->impl;
    ssize_t r;
    while ((r = read(t->fd, t->buf, sizeof t->buf)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            src->bytes += (uint64_t)r;
    int status;
    reap(t, &status);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return ldm_src_fail(src, LDM_EIO, LDM_REASON_PIPE_FAILED,
                            "%s: the command exited with status %d after %llu samples", src->url,
                            WEXITSTATUS(status), (unsigned long long)src->index);
    return ldm_src_fail(src, LDM_EIO, LDM_REASON_PIPE_FAILED,
                        "%s: the command was killed by signal %d after %llu samples", src->url,
                        WTERMSIG(status), (unsigned long long)src->index);
}

/* Start /bin/sh -c CMD with its stdout into a pipe; t->fd, t->pid. */
static int spawn(struct ldm_source *src, const char *cmd)
{
    struct tar *t = src->impl;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return ldm_fail_errno(LDM_EIO, "%s: pipe", src->url);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGHUP);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    int err = posix_spawn(&t->pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (err) {
        close(p[0]);
        t->pid = 0;
        errno = err;
        return ldm_fail_errno(LDM_EIO, "%s: cannot start /bin/sh", src->url);
    }
    t->fd = p[0];
    return 0;
}

/* ---- libarchive input ------------------------------------------------------------ */

static la_ssize_t fd_read(struct archive *a, void *client, const void **buf)
{
    struct ldm_source *src = client;
    struct tar *t = src->impl;
    for (;;) {
        ssize_t r = read(t->fd, t->buf, sizeof t->buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            archive_set_error(a, errno, "read error");
            return -1;
        }
        *buf = t->buf;
        src->bytes += (uint64_t)r;
        return r;
    }
}

static la_int64_t fd_skip(struct archive *a, void *client, la_int64_t request)
{
    struct ldm_source *src = client;
    struct tar *t = src->impl;
    (void)a;
    if (!t->seekable || request <= 0)
        return 0;
    off_t here = lseek(t->fd, 0, SEEK_CUR);
    struct stat st;
    if (here < 0 || fstat(t->fd, &st) < 0)
        return 0;
    la_int64_t room = st.st_size > here ? (la_int64_t)(st.st_size - here) : 0;
    la_int64_t n = request < room ? request : room;
    if (lseek(t->fd, (off_t)n, SEEK_CUR) < 0)
        return 0;
    src->bytes += (uint64_t)n;
    return n;
}

/* ---- the kind ----------------------------------------------------------------------- */

static int tar_next(struct ldm_source *src)
{
    struct tar *t = src->impl;
    int rc;
    if (t->ended)
        return t->pid ? finish_pipe(src) : 0;
    if (!t->have_entry && (rc = read_header(src)) <= 0) {
        t->ended = rc == 0;
        return rc == 0 && t->pid ? finish_pipe(src) : rc;
    }
    char *key = strndup(t->path + t->key_off, t->key_len);
    if (!key)
        return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s: out of memory", src->url);
    free(t->cur_key);
    t->cur_key = key;
    ldm_src_begin(src, key, t->key_len);
    for (;;) {
        if ((rc = take_member(src)) < 0)
            return rc;
        rc = read_header(src);
        if (rc < 0)
            return 1; /* this sample is whole; the failure comes next */
        if (rc == 0) {
            t->ended = 1;
            return 1;
        }
        if (t->key_len != strlen(key) || memcmp(t->path + t->key_off, key, t->key_len) != 0)
            return 1;
    }
}

static void tar_close(struct ldm_source *src)
{
    struct tar *t = src->impl;
    if (!t)
        return;
    if (t->a)
        archive_read_free(t->a);
    int status;
    reap(t, &status);
    if (t->fd >= 0)
        close(t->fd);
    free(t->path);
    free(t->cur_key);
    free(t);
}

static const struct ldm_source_ops tar_ops = {tar_next, tar_close};

/* A new tar source with an archive reader ready for input. */
static int tar_new(const char *url, const struct ldm_source_opts *o, struct ldm_source **out)
{
    struct ldm_source *src = ldm_src_new(url, o, &tar_ops);
    struct tar *t = calloc(1, sizeof *t);
    if (!src || !t) {
        free(t);
        ldm_source_close(src);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", url);
    }
    t->fd = -1;
    src->impl = t;
    t->a = archive_read_new();
    if (!t->a) {
        ldm_source_close(src);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", url);
    }
    archive_read_support_filter_gzip(t->a);
    archive_read_support_filter_zstd(t->a);
    archive_read_support_filter_xz(t->a);
    archive_read_support_filter_bzip2(t->a);
    archive_read_support_filter_lz4(t->a);
    archive_read_support_format_tar(t->a);
    archive_read_support_format_empty(t->a);
    *out = src;
    return 0;
}

/* After archive_read_open*: content that libarchive refuses at once is a
 * shard failure that the first ldm_source_next reports. */
static int tar_start(struct ldm_source *src, int r, struct ldm_source **out)
{
    if (r != ARCHIVE_OK)
        tar_error(src, "opening");
    *out = src;
    return 0;
}

int ldm_src_tar_open_fd(const char *url, int fd, const struct ldm_source_opts *o,
                        struct ldm_source **out)
{
    struct ldm_source *src;
    int rc = tar_new(url, o, &src);
    if (rc) {
        close(fd);
        return rc;
    }
    struct tar *t = src->impl;
    struct stat st;
    t->fd = fd;
    t->seekable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    return tar_start(src, archive_read_open2(t->a, src, NULL, fd_read, fd_skip, NULL), out);
}

int ldm_src_tar_open_pipe(const char *url, const struct ldm_source_opts *o, struct ldm_source **out)
{
    struct ldm_source *src;
    int rc = tar_new(url, o, &src);
    if (rc)
        return rc;
    if ((rc = spawn(src, url + 5))) {
        ldm_source_close(src);
        *out = NULL;
        return rc;
    }
    struct tar *t = src->impl;
    return tar_start(src, archive_read_open2(t->a, src, NULL, fd_read, NULL, NULL), out);
}

int ldm_src_tar_open_memory(const char *name, const void *data, size_t len,
                            const struct ldm_source_opts *o, struct ldm_source **out)
{
    struct ldm_source *src;
    int rc = tar_new(name, o, &src);
    if (rc)
        return rc;
    src->bytes = len;
    return tar_start(src, archive_read_open_memory(((struct tar *)src->impl)->a, data, len), out);
}
