/* source_folder.c — an image folder as a shard: NAME.jpg|png|... with NAME.txt beside it. */
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
#include "source_int.h"

#define MAX_DEPTH 64
#define MAX_IMAGES 10000000u

static const char *const image_exts[] = {"jpg", "jpeg", "png", "webp"};

/* One image file: rel[0..key_len) is its key, rel[key_len+1..] its ext. */
struct image {
    char *rel;
    size_t key_len;
    int prio; /* index in image_exts */
};

struct folder {
    char *root;
    struct image *v;
    size_t n, cap;
    size_t next; /* first image of the next sample */
};

/* ---- listing ---------------------------------------------------------------------------- */

/* Is `name` a member named after a wanted ext with a dot ("x.input.jpg")? */
static int is_compound_member(const struct ldm_source *src, const char *name)
{
    if (!src->o.want)
        return 0;
    size_t n = strlen(name);
    for (const char *const *w = src->o.want; *w; w++) {
        size_t k = strlen(*w);
        if (strchr(*w, '.') && n > k + 1 && name[n - k - 1] == '.' &&
            strcasecmp(name + n - k, *w) == 0)
            return 1;
    }
    return 0;
}

/* The image_exts index of a file name's ext, or -1. */
static int image_prio(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(dot + 1, image_exts[i]) == 0)
            return i;
    return -1;
}

static int add_image(struct ldm_source *src, const char *rel, int prio)
{
    struct folder *f = src->impl;
    if (f->n == MAX_IMAGES)
        return ldm_fail(LDM_ERANGE, "%s: more than %u images", src->url, MAX_IMAGES);
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        struct image *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", src->url);
        f->v = v;
        f->cap = cap;
    }
    char *copy = strdup(rel);
    if (!copy)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", src->url);
    f->v[f->n++] = (struct image){copy, (size_t)(strrchr(copy, '.') - copy), prio};
    return 0;
}

static int walk(struct ldm_source *src, const char *rel, int depth);

/* One directory entry at rel/name: recurse, note an image, or pass. */
static int visit(struct ldm_source *src, DIR *d, const char *rel, const struct dirent *de,
                 int depth)
{
    char *path = NULL;
    if (asprintf(&path, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) < 0)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", src->url);
    struct stat st;
    int rc = 0, is_dir = de->d_type == DT_DIR, is_reg = de->d_type == DT_REG;
    if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
            is_dir = 1;
        else if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            is_reg = 1;
    }
    int prio = is_reg ? image_prio(de->d_name) : -1;
    if (is_dir)
        rc = walk(src, path, depth + 1);
    else if (prio >= 0 && !is_compound_member(src, de->d_name))
        rc = add_image(src, path, prio);
    free(path);
    return rc;
}

/* List the images under root/rel. */
static int walk(struct ldm_source *src, const char *rel, int depth)
{
    struct folder *f = src->impl;
    if (depth > MAX_DEPTH)
        return ldm_fail(LDM_ERANGE, "%s: folders nested more than %d deep at %s", src->url,
                        MAX_DEPTH, rel);
    char *path = NULL;
    if (asprintf(&path, "%s/%s", f->root, rel) < 0)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", src->url);
    DIR *d = opendir(path);
    free(path);
    if (!d)
        return ldm_fail_errno(LDM_EIO, "%s: cannot list folder \"%s\"", src->url,
                              rel[0] ? rel : ".");
    int rc = 0;
    struct dirent *de;
    while (!rc && (errno = 0, de = readdir(d)))
        if (de->d_name[0] != '.')
            rc = visit(src, d, rel, de, depth);
    if (!rc && errno)
        rc = ldm_fail_errno(LDM_EIO, "%s: cannot list folder \"%s\"", src->url, rel[0] ? rel : ".");
    closedir(d);
    return rc;
}

/* Order: key (strcmp), then jpg, jpeg, png, webp. */
static int image_cmp(const void *pa, const void *pb)
{
    const struct image *a = pa, *b = pb;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->rel, b->rel, n);
    if (c)
        return c;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    return a->prio - b->prio;
}

/* ---- samples ----------------------------------------------------------------------------- */

/* Read root/key.ext (as named on disk: `file`) as member `ext`. A missing
 * file is no member; other failures reject the sample. */
static int read_member(struct ldm_source *src, const char *file, const char *ext)
{
    struct folder *f = src->impl;
    if (src->reason || !ldm_src_wanted(src, ext))
        return 0;
    char *path = NULL;
    if (asprintf(&path, "%s/%s", f->root, file) < 0)
        return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s: out of memory", src->url);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd < 0 && errno != ENOENT)
            ldm_src_reject(src, LDM_REASON_UNREADABLE, "cannot open %s: %s", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int rc = 0;
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *dst = ldm_src_add(src, ext, size, &rc);
    if (dst && !(dst = ldm_src_reserve(src, size)))
        rc = LDM_ENOMEM;
    while (dst && got < size) {
        ssize_t r = read(fd, dst + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ldm_src_reject(src, LDM_REASON_UNREADABLE, "cannot read %s: %s", file,
                           r < 0 ? strerror(errno) : "the file shrank while read");
            break;
        }
        got += (size_t)r;
    }
    if (dst)
        ldm_src_set_len(src, got);
    src->bytes += got;
    close(fd);
    return rc ? ldm_src_fail(src, rc, LDM_REASON_CORRUPT, "%s", ldm_errmsg()) : 0;
}

/* Read KEY.ext of the current sample, if it exists. */
static int read_side(struct ldm_source *src, const struct image *im, const char *ext)
{
    char *file = NULL;
    if (asprintf(&file, "%.*s.%s", (int)im->key_len, im->rel, ext) < 0)
        return ldm_src_fail(src, LDM_ENOMEM, LDM_REASON_CORRUPT, "%s: out of memory", src->url);
    int rc = read_member(src, file, ext);
    free(file);
    return rc;
}

static int folder_next(struct ldm_source *src)
{
    struct folder *f = src->impl;
    if (f->next == f->n)
        return 0;
    size_t i = f->next, j = i + 1;
    const struct image *im = &f->v[i];
    while (j < f->n && f->v[j].key_len == im->key_len && !memcmp(f->v[j].rel, im->rel, im->key_len))
        j++;
    f->next = j;
    ldm_src_begin(src, im->rel, im->key_len);
    int rc = 0;
    for (size_t k = i; !rc && k < j; k++)
        rc = read_member(src, f->v[k].rel, image_exts[f->v[k].prio]);
    if (!rc)
        rc = read_side(src, im, "txt");
    if (!rc)
        rc = read_side(src, im, "json");
    for (const char *const *w = src->o.want; !rc && w && *w; w++)
        if (strchr(*w, '.'))
            rc = read_side(src, im, *w);
    return rc ? rc : 1;
}

static void folder_close(struct ldm_source *src)
{
    struct folder *f = src->impl;
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].rel);
    free(f->v);
    free(f->root);
    free(f);
}

static const struct ldm_source_ops folder_ops = {folder_next, folder_close};

int ldm_src_folder_open(const char *url, const struct ldm_source_opts *o, struct ldm_source **out)
{
    struct ldm_source *src = ldm_src_new(url, o, &folder_ops);
    struct folder *f = calloc(1, sizeof *f);
    if (src)
        src->impl = f;
    if (!src || !f || !(f->root = strdup(url))) {
        if (!src)
            free(f);
        ldm_source_close(src);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", url);
    }
    size_t n = strlen(f->root);
    while (n > 1 && f->root[n - 1] == '/')
        f->root[--n] = '\0';
    int rc = walk(src, "", 0);
    if (rc) {
        ldm_source_close(src);
        return rc;
    }
    if (f->n)
        qsort(f->v, f->n, sizeof *f->v, image_cmp);
    *out = src;
    return 0;
}
