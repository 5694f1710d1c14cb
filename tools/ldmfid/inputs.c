/* inputs.c — the encoded images of ldmfid's PATHs: folders, WebDataset tar shards, files.
 *
 * Paths are classified when opened (patterns expanded by common/shardlist.h)
 * and read one item at a time. A folder is listed when its turn comes; its
 * files are those whose extension, in any case, is jpg, jpeg, png or webp,
 * sorted by name as bytes (pytorch-fid sorts its glob's paths the same way).
 * A shard is streamed with libarchive; its image members are those whose
 * extension (the name after the first dot of the last component, as
 * WebDataset splits keys) is exactly one of those, so a conditioning image
 * such as "key.input.jpg" is not taken. Unreadable files and damaged shards
 * come back as items with rc set, for the caller to report and count.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "image.h"
#include "ldmfid.h"
#include "shardlist.h"

enum { IN_DIR, IN_TAR, IN_FILE };

struct lf_input {
    struct ldm_shardlist paths; /* every input after expansion */
    int *kind;                  /* IN_* per path */
    size_t cur;                 /* the path being read */
    int started;                /* paths[cur] is open (folder listed, archive open) */
    int dead;                   /* the shard in progress is damaged: read no further */
    struct ldm_shardlist names; /* a folder's image files, sorted */
    size_t next_name;
    struct archive *a;          /* a shard being read */
    char *label;                /* the current item's label */
    unsigned char *buf;         /* the current item's bytes */
    size_t cap;
};

static const char *const IMAGE_EXT[] = {"jpg", "jpeg", "png", "webp"};

static int image_ext(const char *ext, int any_case)
{
    for (size_t i = 0; i < sizeof IMAGE_EXT / sizeof IMAGE_EXT[0]; i++)
        if ((any_case ? strcasecmp : strcmp)(ext, IMAGE_EXT[i]) == 0)
            return 1;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcasecmp(s + n - m, tail) == 0;
}

static int tar_name(const char *p)
{
    static const char *const t[] = {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz",
                                    ".tar.bz2", ".tar.lz4"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (ends_with(p, t[i]))
            return 1;
    return 0;
}

/* The kind of an existing path, or a failure naming it. */
static int classify(const char *p, int *kind)
{
    struct stat st;
    if (stat(p, &st) != 0)
        return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s", p);
    const char *dot = strrchr(p, '.');
    if (S_ISDIR(st.st_mode))
        *kind = IN_DIR;
    else if (tar_name(p))
        *kind = IN_TAR;
    else if (dot && !strchr(dot, '/') && image_ext(dot + 1, 1))
        *kind = IN_FILE;
    else if (ends_with(p, ".npz"))
        return ldm_fail(LDM_EINVAL, "%s: a statistics file; only fid takes one", p);
    else
        return ldm_fail(LDM_EINVAL, "%s: not a folder, a tar shard or a jpg/jpeg/png/webp image",
                        p);
    return 0;
}

static int is_pattern(const char *p)
{
    return strpbrk(p, "{*?[") || strstr(p, "::") || p[0] == '@';
}

int lf_input_open(struct lf_input **out, const char *const *paths, int npaths)
{
    *out = NULL;
    struct lf_input *in = calloc(1, sizeof *in);
    if (!in)
        return ldm_fail(LDM_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < npaths && rc == 0; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0 && is_pattern(paths[i]))
            rc = ldm_shardlist_expand(&paths[i], 1, 0, &in->paths);
        else
            rc = ldm_shardlist_push(&in->paths, paths[i]);
        if (rc == 0 && in->paths.n == 0)
            rc = ldm_fail(LDM_ENOTFOUND, "%s: matches nothing", paths[i]);
    }
    if (rc == 0 && !(in->kind = calloc(in->paths.n + 1, sizeof *in->kind)))
        rc = ldm_fail(LDM_ENOMEM, "out of memory");
    for (size_t i = 0; i < in->paths.n && rc == 0; i++)
        rc = classify(in->paths.v[i], &in->kind[i]);
    if (rc) {
        lf_input_close(&in);
        return rc;
    }
    *out = in;
    return 0;
}

static void end_source(struct lf_input *in)
{
    if (in->a) {
        archive_read_free(in->a);
        in->a = NULL;
    }
    ldm_shardlist_free(&in->names);
    in->next_name = 0;
    in->started = 0;
    in->dead = 0;
    in->cur++;
}

void lf_input_close(struct lf_input **in)
{
    if (!in || !*in)
        return;
    struct lf_input *p = *in;
    if (p->a)
        archive_read_free(p->a);
    ldm_shardlist_free(&p->names);
    ldm_shardlist_free(&p->paths);
    free(p->kind);
    free(p->label);
    free(p->buf);
    free(p);
    *in = NULL;
}

/* Set the current item's label to a/b (a alone when b is NULL). */
static int set_label(struct lf_input *in, const char *a, const char *b)
{
    size_t n = strlen(a);
    free(in->label);
    in->label = NULL;
    if (asprintf(&in->label, "%s%s%s", a, b && n && a[n - 1] != '/' ? "/" : "", b ? b : "") < 0) {
        in->label = NULL;
        return ldm_fail(LDM_ENOMEM, "out of memory");
    }
    return 0;
}

/* Make the item buffer hold n bytes. */
static int reserve(struct lf_input *in, size_t n)
{
    if (n <= in->cap)
        return 0;
    unsigned char *b = realloc(in->buf, n);
    if (!b)
        return ldm_fail(LDM_ENOMEM, "%s: no memory for %zu bytes", in->label, n);
    in->buf = b;
    in->cap = n;
    return 0;
}

/* Read the file in->label into the buffer; a failure is the item's rc. */
static int read_file(struct lf_input *in, struct lf_item *it)
{
    int fd = open(in->label, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t got = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        it->rc = ldm_fail_errno(LDM_EIO, "%s: cannot read", in->label);
    } else if ((uint64_t)st.st_size > LDM_IMAGE_MAX_BYTES_DEFAULT) {
        it->rc = ldm_fail(LDM_ERANGE, "%s: %lld bytes, over the %u-byte limit", in->label,
                          (long long)st.st_size, LDM_IMAGE_MAX_BYTES_DEFAULT);
    } else if ((it->rc = reserve(in, (size_t)st.st_size + 1)) == 0) {
        ssize_t r;
        while (got < (size_t)st.st_size &&
               (r = read(fd, in->buf + got, (size_t)st.st_size - got)) != 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                it->rc = ldm_fail_errno(LDM_EIO, "%s: read", in->label);
                break;
            }
            got += (size_t)r;
        }
    }
    if (fd >= 0)
        close(fd);
    it->data = in->buf;
    it->len = got;
    return it->rc == LDM_ENOMEM ? it->rc : 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List folder `dir`'s image files into in->names, sorted. */
static int list_folder(struct lf_input *in, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return ldm_fail_errno(LDM_EIO, "%s: cannot list the folder", dir);
    struct dirent *e;
    int rc = 0;
    errno = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        struct stat st;
        char *full = NULL;
        if (!dot || !image_ext(dot + 1, 1))
            continue;
        if (asprintf(&full, "%s/%s", dir, e->d_name) < 0)
            rc = ldm_fail(LDM_ENOMEM, "out of memory");
        else if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = ldm_shardlist_push(&in->names, e->d_name);
        free(full);
    }
    if (rc == 0 && errno)
        rc = ldm_fail_errno(LDM_EIO, "%s: reading the folder", dir);
    closedir(d);
    if (rc == 0 && in->names.n)
        qsort(in->names.v, in->names.n, sizeof *in->names.v, cmp_str);
    return rc;
}

/* The next image of the folder in progress: 1, or 0 when it is done. */
static int folder_next(struct lf_input *in, struct lf_item *it)
{
    const char *dir = in->paths.v[in->cur];
    if (!in->started) {
        int rc = list_folder(in, dir);
        if (rc)
            return rc;
        in->started = 1;
    }
    if (in->next_name >= in->names.n)
        return 0;
    int rc = set_label(in, dir, in->names.v[in->next_name++]);
    return rc ? rc : read_file(in, it);
}

/* A shard's damage as the item, labelled with the member it hit (in->label)
 * or the shard (in->label NULL); the detail gives the byte and libarchive's
 * message. */
static int tar_damage(struct lf_input *in, struct lf_item *it, const char *where)
{
    const char *msg = archive_error_string(in->a);
    long long off = (long long)archive_filter_bytes(in->a, 0);
    if (!in->label && set_label(in, in->paths.v[in->cur], NULL))
        return LDM_ENOMEM;
    it->rc = ldm_fail(LDM_EFORMAT, "%s: damaged at byte %lld (%s): %s", in->label,
                      off < 0 ? 0 : off, where, msg ? msg : "unknown error");
    it->damaged = 1;
    in->dead = 1;
    return 1;
}

/* 1 when member `name` is an image (extension after the first dot of its
 * last component exactly jpg/jpeg/png/webp). */
static int image_member(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    return base[0] != '.' && dot && image_ext(dot + 1, 0);
}

/* Read the current member's data (size bytes) into the item. */
static int tar_data(struct lf_input *in, struct lf_item *it, int64_t size)
{
    if (size < 0 || (uint64_t)size > LDM_IMAGE_MAX_BYTES_DEFAULT) {
        it->rc = ldm_fail(LDM_ERANGE, "%s: %lld bytes, over the %u-byte limit", in->label,
                          (long long)size, LDM_IMAGE_MAX_BYTES_DEFAULT);
        return archive_read_data_skip(in->a) == ARCHIVE_OK ? 1 : tar_damage(in, it, "skipping");
    }
    int rc = reserve(in, (size_t)size + 1);
    if (rc)
        return rc;
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t r = archive_read_data(in->a, in->buf + got, (size_t)size - got);
        if (r <= 0)
            return tar_damage(in, it, "reading its data");
        got += (size_t)r;
    }
    it->data = in->buf;
    it->len = got;
    return 1;
}

/* The next image of the shard in progress: 1, or 0 when it is done. */
static int tar_next(struct lf_input *in, struct lf_item *it)
{
    const char *path = in->paths.v[in->cur];
    if (!in->started) {
        in->started = 1;
        if (!(in->a = archive_read_new()))
            return ldm_fail(LDM_ENOMEM, "out of memory");
        archive_read_support_filter_all(in->a);
        archive_read_support_format_tar(in->a);
        archive_read_support_format_empty(in->a);
        free(in->label);
        in->label = NULL;
        if (archive_read_open_filename(in->a, path, 1 << 16) != ARCHIVE_OK)
            return tar_damage(in, it, "opening");
    }
    if (in->dead)
        return 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(in->a, &e);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            free(in->label);
            in->label = NULL; /* the item is the shard */
            return tar_damage(in, it, "reading a header");
        }
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG || !name || !image_member(name))
            continue;
        if (set_label(in, path, name))
            return LDM_ENOMEM;
        return tar_data(in, it, archive_entry_size(e));
    }
}

int lf_input_next(struct lf_input *in, struct lf_item *it)
{
    for (;;) {
        memset(it, 0, sizeof *it);
        if (in->cur >= in->paths.n)
            return 0;
        int kind = in->kind[in->cur], r;
        if (kind == IN_FILE) {
            r = set_label(in, in->paths.v[in->cur], NULL);
            r = r ? r : read_file(in, it);
            in->cur++;
        } else if (kind == IN_DIR) {
            r = folder_next(in, it);
        } else {
            r = tar_next(in, it);
        }
        if (r == 0) {
            end_source(in);
            continue;
        }
        it->label = in->label;
        return r;
    }
}
