/* pack.c — `mkshards pack`: WebDataset tar shards from an image folder with .txt captions. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "mkshards.h"

#define MAX_EXTRA 16

static const char *const image_exts[] = {"jpg", "jpeg", "png", "webp"};

/* One image file: file[0..key_len) is its key. */
struct item {
    char *file;
    size_t key_len;
    int prio; /* index in image_exts */
};

struct pack {
    const char *out, *prefix, *root;
    long per_shard;
    enum mk_shard_filter filter;
    const char *extra[MAX_EXTRA]; /* member exts with a dot ("input.jpg") */
    int nextra;
    struct item *v;
    size_t n, cap, next;
    long samples, no_caption;
};

/* ---- listing ------------------------------------------------------------------------------ */

/* a + sep + b into out, or LDM_ERANGE when it does not fit. */
static int join(char *out, size_t size, const char *a, const char *sep, const char *b)
{
    int n = snprintf(out, size, "%s%s%s", a, sep, b);
    if (n < 0 || (size_t)n >= size)
        return ldm_fail(LDM_ERANGE, "path too long: %s%s%s", a, sep, b);
    return 0;
}

static int image_prio(const struct pack *p, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < p->nextra; i++) { /* KEY.input.jpg belongs to KEY */
        size_t k = strlen(p->extra[i]);
        if (n > k + 1 && name[n - k - 1] == '.' && strcasecmp(name + n - k, p->extra[i]) == 0)
            return -1;
    }
    const char *dot = strrchr(name, '.');
    for (int i = 0; dot && dot != name && i < 4; i++)
        if (strcasecmp(dot + 1, image_exts[i]) == 0)
            return i;
    return -1;
}

static int add_item(struct pack *p, const char *file, int prio)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        struct item *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return ldm_fail(LDM_ENOMEM, "out of memory");
        p->v = v;
        p->cap = cap;
    }
    char *copy = strdup(file);
    if (!copy)
        return ldm_fail(LDM_ENOMEM, "out of memory");
    p->v[p->n++] = (struct item){copy, (size_t)(strrchr(copy, '.') - copy), prio};
    return 0;
}

/* Every image under root/rel (hidden names skipped, symlinked folders not followed). */
static int walk(struct pack *p, const char *rel, int depth)
{
    char path[8192];
    int rc = join(path, sizeof path, p->root, "/", rel);
    DIR *d = rc || depth > 64 ? NULL : opendir(path);
    if (!d)
        return rc ? rc : ldm_fail_errno(LDM_EIO, "%s: cannot list the folder", path);
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char file[4096];
        struct stat st, lst;
        rc = join(file, sizeof file, rel, rel[0] ? "/" : "", de->d_name);
        if (!rc)
            rc = join(path, sizeof path, p->root, "/", file);
        if (rc || lstat(path, &lst) < 0 || stat(path, &st) < 0)
            continue;
        int prio = S_ISREG(st.st_mode) ? image_prio(p, de->d_name) : -1;
        if (S_ISDIR(lst.st_mode))
            rc = walk(p, file, depth + 1);
        else if (prio >= 0)
            rc = add_item(p, file, prio);
    }
    closedir(d);
    return rc;
}

static int item_cmp(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->file, b->file, n);
    if (c)
        return c;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    return a->prio - b->prio;
}

/* ---- shards --------------------------------------------------------------------------- */

/* Put root/file as member "tkey.ext" when the file exists; *found says so. */
static int put_file(struct mk_shard_out *out, struct pack *p, const char *file, const char *tkey,
                    const char *ext, int *found)
{
    char path[8192], name[8192];
    *found = 0;
    int rc = join(path, sizeof path, p->root, "/", file);
    if (!rc)
        rc = join(name, sizeof name, tkey, ".", ext);
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : ldm_fail_errno(LDM_EIO, "%s: open", path);
    struct stat st;
    unsigned char *buf = NULL;
    rc = fstat(fd, &st) < 0 ? ldm_fail_errno(LDM_EIO, "%s: stat", path) : 0;
    size_t n = rc ? 0 : (size_t)st.st_size, got = 0;
    if (!rc && !(buf = malloc(n ? n : 1)))
        rc = ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    while (!rc && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            rc = ldm_fail_errno(LDM_EIO, "%s: read", path);
        got += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    if (!rc)
        rc = mk_shard_put(out, name, buf, n, st.st_mtime);
    free(buf);
    *found = !rc;
    return rc;
}

/* The key as a tar member prefix: dots in the file name become '_' so that
 * the key still ends at the first dot of the member's file name. */
static void tar_key(const struct item *it, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)it->key_len, it->file);
    char *base = strrchr(out, '/');
    for (char *c = base ? base + 1 : out; *c; c++)
        if (*c == '.')
            *c = '_';
}

/* One sample: the images of a key, then KEY.txt, KEY.json, KEY.EXTRA. */
static int put_sample(struct mk_shard_out *out, struct pack *p, size_t i, size_t j)
{
    const struct item *it = &p->v[i];
    char tkey[4096], file[4096];
    int rc = 0, found, captions = 0;
    tar_key(it, tkey, sizeof tkey);
    for (size_t k = i; !rc && k < j; k++)
        rc = put_file(out, p, p->v[k].file, tkey, image_exts[p->v[k].prio], &found);
    const char *side[2 + MAX_EXTRA] = {"txt", "json"};
    for (int e = 0; e < p->nextra; e++)
        side[2 + e] = p->extra[e];
    for (int e = 0; !rc && e < 2 + p->nextra; e++) {
        if (snprintf(file, sizeof file, "%.*s.%s", (int)it->key_len, it->file, side[e]) >=
            (int)sizeof file)
            return ldm_fail(LDM_ERANGE, "path too long: %s", it->file);
        rc = put_file(out, p, file, tkey, side[e], &found);
        captions += e < 2 && found;
    }
    p->no_caption += !captions;
    return rc;
}

static int fill_shard(struct mk_shard_out *out, void *ctx)
{
    struct pack *p = ctx;
    for (long s = 0; s < p->per_shard && p->next < p->n; s++) {
        size_t i = p->next, j = i + 1;
        while (j < p->n && p->v[j].key_len == p->v[i].key_len &&
               !memcmp(p->v[j].file, p->v[i].file, p->v[i].key_len))
            j++;
        int rc = put_sample(out, p, i, j);
        if (rc)
            return rc;
        p->next = j;
        p->samples++;
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: mkshards pack --out DIR --prefix NAME --per-shard N [--gzip|--zstd]\n"
               "         [--extra EXT]... FOLDER\n"
               "Writes DIR/NAME-000000.tar ... from every FOLDER/KEY.jpg|jpeg|png|webp (in\n"
               "subfolders too, sorted) with KEY.txt and KEY.json beside it, and KEY.EXT for each\n"
               "--extra EXT (e.g. input.jpg, a conditioning image). Members are KEY.ext, with\n"
               "dots in a key's file name written as '_'.\n");
}

static int parse_pack(int argc, char **argv, struct pack *p)
{
    static const struct option opts[] = {
        {"out", 1, 0, 'o'},  {"prefix", 1, 0, 'x'}, {"per-shard", 1, 0, 'n'}, {"gzip", 0, 0, 'g'},
        {"zstd", 0, 0, 'Z'}, {"extra", 1, 0, 'e'},  {"help", 0, 0, 'h'},      {0, 0, 0, 0},
    };
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': p->out = optarg; break;
        case 'x': p->prefix = optarg; break;
        case 'n': rc = mk_parse_number("per-shard", optarg, 1, 100000000, &p->per_shard); break;
        case 'g': p->filter = MK_SHARD_GZIP; break;
        case 'Z': p->filter = MK_SHARD_ZSTD; break;
        case 'e':
            if (p->nextra == MAX_EXTRA || !strchr(optarg, '.'))
                rc = ldm_fail(LDM_EINVAL,
                              "--extra \"%s\": an ext with a dot (input.jpg), at most %d", optarg,
                              MAX_EXTRA);
            else
                p->extra[p->nextra++] = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return ldm_fail(LDM_EINVAL, "bad arguments");
        }
    }
    if (!rc && (!p->out || !p->prefix || !p->per_shard || optind != argc - 1))
        rc = ldm_fail(LDM_EINVAL, "pack needs --out, --prefix, --per-shard and one FOLDER");
    if (!rc && (strchr(p->prefix, '/') || !p->prefix[0]))
        rc = ldm_fail(LDM_EINVAL, "--prefix \"%s\": a name without '/'", p->prefix);
    if (!rc)
        p->root = argv[optind];
    return rc;
}

int mk_cmd_pack(int argc, char **argv)
{
    struct pack p = {0};
    int rc = parse_pack(argc, argv, &p);
    if (!rc)
        rc = mk_make_dirs(p.out);
    if (!rc)
        rc = walk(&p, "", 0);
    if (!rc && p.n)
        qsort(p.v, p.n, sizeof *p.v, item_cmp);
    long shards = 0;
    while (!rc && p.next < p.n) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-%06ld%s", p.out, p.prefix, shards++,
                 mk_shard_suffix(p.filter));
        rc = mk_shard_write(path, p.filter, fill_shard, &p);
    }
    if (!rc)
        printf("mkshards pack: %ld samples from %s in %ld shards under %s%s\n", p.samples, p.root,
               shards, p.out, p.n ? "" : " (no images found)");
    if (!rc && p.no_caption)
        fprintf(stderr, "mkshards pack: warning: %ld samples have no txt or json caption\n",
                p.no_caption);
    for (size_t i = 0; i < p.n; i++)
        free(p.v[i].file);
    free(p.v);
    return rc;
}
