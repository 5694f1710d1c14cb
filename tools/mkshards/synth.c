/* synth.c — `mkshards synth`: coloured shapes with matching captions, as tar or LAION shards. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "err.h"
#include "fsutil.h"
#include "mkshards.h"

#define SYNTH_MTIME ((time_t)1704067200) /* 2024-01-01: shards are byte-for-byte reproducible */

struct synth {
    const char *out, *prefix;
    long shards, per_shard;
    int size, paired, laion, png, aa, quality;
    uint64_t seed;
    enum mk_shard_filter filter;
    struct mk_encoder *enc, *enc_edge;
    unsigned char *rgb, *edge;
    long shard; /* the shard being written */
};

/* One sample: its caption, encoded picture and (paired) edge map. */
struct picture {
    char caption[128];
    const unsigned char *img, *edge;
    size_t img_len, edge_len;
};

/* Sample `index` depends on (seed, index) only, not on the shard layout. */
static int make_picture(struct synth *s, uint64_t index, struct picture *p)
{
    uint64_t rng = s->seed * 0xD1B54A32D192ED69ull ^ (index + 1) * 0x9E3779B97F4A7C15ull;
    mk_rng_next(&rng);
    struct mk_scene sc;
    mk_scene_random(&sc, s->size, &rng);
    mk_scene_caption(&sc, p->caption, sizeof p->caption);
    mk_scene_draw(&sc, s->size, s->aa, s->rgb);
    int rc = s->png ? mk_encode_png(s->enc, s->rgb, s->size, s->size, &p->img, &p->img_len)
                    : mk_encode_jpeg(s->enc, s->rgb, s->size, s->size, &p->img, &p->img_len);
    if (rc || !s->paired)
        return rc;
    mk_scene_draw_edges(&sc, s->size, s->edge);
    return s->png ? mk_encode_png(s->enc_edge, s->edge, s->size, s->size, &p->edge, &p->edge_len)
                  : mk_encode_jpeg(s->enc_edge, s->edge, s->size, s->size, &p->edge, &p->edge_len);
}

/* ---- tar shards ----------------------------------------------------------------------- */

static int fill_tar(struct mk_shard_out *out, void *ctx)
{
    struct synth *s = ctx;
    const char *ext = s->png ? "png" : "jpg";
    for (long i = 0; i < s->per_shard; i++) {
        uint64_t index = (uint64_t)s->shard * (uint64_t)s->per_shard + (uint64_t)i;
        struct picture p;
        char name[64];
        int rc = make_picture(s, index, &p);
        snprintf(name, sizeof name, "%09llu.%s", (unsigned long long)index, ext);
        if (!rc)
            rc = mk_shard_put(out, name, p.img, p.img_len, SYNTH_MTIME);
        snprintf(name, sizeof name, "%09llu.txt", (unsigned long long)index);
        if (!rc)
            rc = mk_shard_put(out, name, p.caption, strlen(p.caption), SYNTH_MTIME);
        snprintf(name, sizeof name, "%09llu.input.%s", (unsigned long long)index, ext);
        if (!rc && s->paired)
            rc = mk_shard_put(out, name, p.edge, p.edge_len, SYNTH_MTIME);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- LAION line shards ---------------------------------------------------------------- */

/* Deflate `n` bytes (flush: Z_FINISH at the end) into the writer. */
static int deflate_put(struct ldm_writer *w, z_stream *zs, const void *p, size_t n, int flush)
{
    unsigned char buf[16384];
    zs->next_in = (unsigned char *)p;
    zs->avail_in = (uInt)n;
    do {
        zs->next_out = buf;
        zs->avail_out = sizeof buf;
        if (deflate(zs, flush) == Z_STREAM_ERROR)
            return ldm_fail(LDM_EIO, "%s: deflate failed", w->path);
        int rc = ldm_writer_put(w, buf, sizeof buf - zs->avail_out);
        if (rc)
            return rc;
    } while (zs->avail_out == 0 || zs->avail_in > 0);
    return 0;
}

/* One line: caption TAB TAB base64 picture NL. */
static int put_line(struct synth *s, struct ldm_writer *w, z_stream *zs, uint64_t index,
                    char **line, size_t *cap)
{
    struct picture p;
    int rc = make_picture(s, index, &p);
    if (rc)
        return rc;
    size_t need = strlen(p.caption) + 4 + (p.img_len + 2) / 3 * 4 + 1;
    if (need > *cap) {
        char *l = realloc(*line, need);
        if (!l)
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->path);
        *line = l;
        *cap = need;
    }
    size_t n = (size_t)sprintf(*line, "%s\t\t", p.caption);
    n += mk_base64_encode(p.img, p.img_len, *line + n);
    (*line)[n++] = '\n';
    return deflate_put(w, zs, *line, n, Z_NO_FLUSH);
}

static int write_part(struct ldm_writer *w, void *ctx)
{
    struct synth *s = ctx;
    z_stream zs = {0};
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->path);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (long i = 0; !rc && i < s->per_shard; i++)
        rc = put_line(s, w, &zs, (uint64_t)s->shard * (uint64_t)s->per_shard + (uint64_t)i, &line,
                      &cap);
    if (!rc)
        rc = deflate_put(w, &zs, "", 0, Z_FINISH);
    deflateEnd(&zs);
    free(line);
    return rc;
}

/* part-NNNNN.gz files, OUT/filelist/PREFIX.filelist naming them, and
 * OUT/filelist/train.filelist.list naming that (the LAION seed's layout). */
static int write_laion(struct synth *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/filelist", s->out);
    if (mkdir(path, 0777) < 0 && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", path);
    size_t cap = (size_t)s->shards * 24 + strlen(s->prefix) + 32, n = 0;
    char *list = malloc(cap);
    if (!list)
        return ldm_fail(LDM_ENOMEM, "out of memory");
    int rc = 0;
    for (s->shard = 0; !rc && s->shard < s->shards; s->shard++) {
        snprintf(path, sizeof path, "%s/part-%05ld.gz", s->out, s->shard);
        rc = ldm_write_atomic(path, write_part, s);
        n += (size_t)snprintf(list + n, cap - n, "../part-%05ld.gz\n", s->shard);
    }
    snprintf(path, sizeof path, "%s/filelist/%s.filelist", s->out, s->prefix);
    if (!rc)
        rc = mk_write_text_file(path, list, n);
    n = (size_t)snprintf(list, cap, "%s.filelist\n", s->prefix);
    snprintf(path, sizeof path, "%s/filelist/train.filelist.list", s->out);
    if (!rc)
        rc = mk_write_text_file(path, list, n);
    free(list);
    return rc;
}

static int write_tars(struct synth *s)
{
    int rc = 0;
    for (s->shard = 0; !rc && s->shard < s->shards; s->shard++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-%06ld%s", s->out, s->prefix, s->shard,
                 mk_shard_suffix(s->filter));
        rc = mk_shard_write(path, s->filter, fill_tar, s);
    }
    return rc;
}

/* ---- the command ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: mkshards synth --out DIR [--shards S] [--per-shard N] [--size PX]\n"
               "         [--paired] [--seed K] [--format jpg|png] [--laion] [--prefix NAME]\n"
               "         [--gzip|--zstd] [--quality Q] [--no-aa]\n"
               "Writes S shards of N samples of coloured shapes with captions (\"a red circle\n"
               "on a blue background\"), deterministic from the seed: DIR/NAME-000000.tar ...\n"
               "with KEY.jpg, KEY.txt (and KEY.input.jpg, the shape's outline, with --paired);\n"
               "or with --laion DIR/part-00000.gz ... (caption TAB TAB base64 image lines) and\n"
               "DIR/filelist/train.filelist.list -> DIR/filelist/NAME.filelist -> the parts.\n"
               "Defaults: --shards 1 --per-shard 100 --size 64 --seed 0 --format jpg\n"
               "--prefix synth --quality 90.\n");
}

static int parse_synth(int argc, char **argv, struct synth *s)
{
    static const struct option opts[] = {
        {"out", 1, 0, 'o'},    {"shards", 1, 0, 's'}, {"per-shard", 1, 0, 'n'},
        {"size", 1, 0, 'z'},   {"paired", 0, 0, 'p'}, {"seed", 1, 0, 'k'},
        {"format", 1, 0, 'f'}, {"laion", 0, 0, 'l'},  {"prefix", 1, 0, 'x'},
        {"gzip", 0, 0, 'g'},   {"zstd", 0, 0, 'Z'},   {"quality", 1, 0, 'q'},
        {"no-aa", 0, 0, 'A'},  {"help", 0, 0, 'h'},   {0, 0, 0, 0},
    };
    long v = 0;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': s->out = optarg; break;
        case 's': rc = mk_parse_number("shards", optarg, 1, 1000000, &s->shards); break;
        case 'n': rc = mk_parse_number("per-shard", optarg, 1, 10000000, &s->per_shard); break;
        case 'z':
            if (!(rc = mk_parse_number("size", optarg, 8, 4096, &v)))
                s->size = (int)v;
            break;
        case 'k':
            if (!(rc = mk_parse_number("seed", optarg, 0, 0x7fffffffffffffffL, &v)))
                s->seed = (uint64_t)v;
            break;
        case 'q':
            if (!(rc = mk_parse_number("quality", optarg, 1, 100, &v)))
                s->quality = (int)v;
            break;
        case 'f':
            if (strcmp(optarg, "jpg") && strcmp(optarg, "png"))
                rc = ldm_fail(LDM_EINVAL, "--format: \"%s\" is not jpg or png", optarg);
            s->png = strcmp(optarg, "png") == 0;
            break;
        case 'p': s->paired = 1; break;
        case 'l': s->laion = 1; break;
        case 'x': s->prefix = optarg; break;
        case 'g': s->filter = MK_SHARD_GZIP; break;
        case 'Z': s->filter = MK_SHARD_ZSTD; break;
        case 'A': s->aa = 0; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return ldm_fail(LDM_EINVAL, "bad arguments");
        }
    }
    if (!rc && optind != argc)
        rc = ldm_fail(LDM_EINVAL, "unexpected argument \"%s\"", argv[optind]);
    if (!rc && !s->out)
        rc = ldm_fail(LDM_EINVAL, "--out DIR is required");
    if (!rc && s->laion && (s->paired || s->filter != MK_SHARD_PLAIN))
        rc = ldm_fail(LDM_EINVAL, "--laion writes one image a line: no --paired, --gzip or --zstd");
    if (!rc && (strchr(s->prefix, '/') || strchr(s->prefix, '.') || !s->prefix[0]))
        rc = ldm_fail(LDM_EINVAL, "--prefix \"%s\": a name without '/' or '.'", s->prefix);
    return rc;
}

int mk_cmd_synth(int argc, char **argv)
{
    struct synth s = {
        .shards = 1, .per_shard = 100, .size = 64, .aa = 1, .quality = 90, .prefix = "synth"};
    int rc = parse_synth(argc, argv, &s);
    if (rc)
        return rc;
    if ((rc = mk_make_dirs(s.out)))
        return rc;
    size_t px = (size_t)s.size * (size_t)s.size * 3;
    s.enc = mk_encoder_new(s.quality);
    s.enc_edge = mk_encoder_new(s.quality);
    s.rgb = malloc(px);
    s.edge = malloc(px);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!s.enc || !s.enc_edge || !s.rgb || !s.edge)
        rc = ldm_fail(LDM_ENOMEM, "out of memory");
    if (!rc)
        rc = s.laion ? write_laion(&s) : write_tars(&s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    long total = s.shards * s.per_shard;
    if (!rc)
        printf("mkshards synth: %ld samples (%dx%d %s%s) in %ld %s shards under %s: %.3f s, "
               "%.0f samples/s, %.0f images/s\n",
               total, s.size, s.size, s.png ? "png" : "jpg", s.paired ? ", paired" : "", s.shards,
               s.laion ? "LAION line" : "tar", s.out, secs, (double)total / secs,
               (double)total * (1 + s.paired) / secs);
    mk_encoder_free(s.enc);
    mk_encoder_free(s.enc_edge);
    free(s.rgb);
    free(s.edge);
    return rc;
}
