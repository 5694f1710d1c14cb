/* ldmfid.h — the parts of ldmfid: options, image inputs, the feature
 * extractor, row buffers and the three commands.
 *
 * Exit status of every command: 0 success, 1 failure, 2 bad arguments.
 */
#ifndef LDMFID_H
#define LDMFID_H

#include <stddef.h>
#include <stdint.h>

#define LF_BATCH_DEFAULT 50 /* pytorch-fid's --batch-size */
#define LF_MAX_SIDE 4096    /* the network's input limit (inception.h) */

/* Parsed command line. Strings point into argv. */
struct lf_opts {
    const char *weights;  /* --weights, else $LDM_FID_WEIGHTS; NULL when neither */
    int batch;            /* --batch: images per network call (same size) */
    int threads;          /* --threads: compute threads (0: every core) */
    const char *device;   /* --device: "cpu" (default), "cuda" or "cuda:N" */
    const char *out;      /* stats: --out STATS.npz */
    const char *features; /* stats, is: --features F.npy (pool3 rows, float32) */
    const char *logits;   /* is: --logits F.npy (unbiased logits, float32) */
    int splits;           /* is: --splits (10) */
    uint32_t seed;        /* is: --seed (2020) */
    int shuffle;          /* is: 0 after --no-shuffle */
    const char **paths;   /* the positional arguments */
    int npaths;
};

/* Parse argv[1..argc) of command `cmd` ("stats", "fid", "is") into *o.
 * Returns 0, or LDM_EINVAL with the detail naming the argument at fault
 * (the caller prints it with the usage and exits 2). */
int lf_parse_args(int argc, char **argv, const char *cmd, struct lf_opts *o);

/* ---- inputs (inputs.c) ---------------------------------------------------------
 *
 * PATHs in the order given: a folder (its jpg/jpeg/png/webp files, the
 * extension in any case, not recursive, sorted by name as bytes), a tar
 * shard (.tar, .tar.gz, .tgz, .tar.zst, .tar.xz, .tar.bz2: WebDataset
 * members whose extension is exactly jpg, jpeg, png or webp, in archive
 * order), one image file, or a pattern that common/shardlist.h expands
 * (braces, globs, "::", @LIST) into such paths. */

struct lf_input;

/* One image's bytes, or a failure to report. Valid until the next call. */
struct lf_item {
    const char *label;          /* "DIR/NAME" or "SHARD/MEMBER" */
    const unsigned char *data;  /* the encoded bytes (rc == 0) */
    size_t len;
    int rc;                     /* 0, or why this item is unreadable (detail in ldm_errmsg) */
    int damaged;                /* 1: a damaged shard; what follows in it is lost */
};

/* Classify and expand `paths` (nothing is read yet). *out is the caller's,
 * closed with lf_input_close. Returns 0, LDM_ENOTFOUND (no such path, a
 * pattern matching nothing), LDM_EINVAL (a path that is neither a folder,
 * a tar shard nor an image, e.g. a .npz), or the codes of
 * ldm_shardlist_expand. */
int lf_input_open(struct lf_input **out, const char *const *paths, int npaths);

/* The next item: 1 (an item, possibly rc != 0), 0 (the end), or a negative
 * code for a failure that stops the run (a folder that cannot be listed,
 * no memory). */
int lf_input_next(struct lf_input *in, struct lf_item *it);

void lf_input_close(struct lf_input **in);

/* ---- the feature extractor (extract.c, weights.c) ------------------------------ */

struct lf_model;

/* Open the weights file `path` (a .safetensors file, or a torch state dict:
 * pytorch-fid's pt_inception-2015-12-05-6726825d.pth) and build the network
 * on a context on `device` ("cpu", "cuda", "cuda:N") with `threads` host
 * threads; with want_fc the batches also get unbiased logits. Returns 0 or
 * the codes of ldm_st_open / ldm_pt_open, ldm_ctx_open (LDM_EUNSUPPORTED:
 * a build without CUDA) and ldm_inception_open (the detail names file and
 * tensor). */
int lf_model_open(struct lf_model **out, const char *path, const char *device, int threads,
                  int want_fc);
void lf_model_close(struct lf_model **m);



/* Receives n rows of pool3 (n×2048) and, when the model keeps fc, unbiased
 * logits (n×1008), in input order. Returns 0 or a code that stops the run. */
typedef int (*lf_sink_fn)(void *user, const float *pool3, const float *logits, int64_t n);

/* What a run met. */
struct lf_counts {
    int64_t images;  /* through the network */
    int64_t bad;     /* unreadable or undecodable images, skipped */
    int64_t damaged; /* shards cut short by damage */
    double seconds;  /* reading, decoding and the network, weights excluded */
};

/* Run every image of `paths` through m, batching consecutive images of one
 * size (up to o->batch), and hand the features to sink. Bad images are
 * logged (file, reason), counted and skipped. Returns 0, LDM_ENOTFOUND (no
 * usable image at all), or what lf_input_*, the network or sink return. */
int lf_extract(struct lf_model *m, const struct lf_opts *o, const char *const *paths, int npaths,
               lf_sink_fn sink, void *user, struct lf_counts *c);

/* ---- rows (rows.c) -------------------------------------------------------------- */

/* A growing float32 matrix of `dim` columns. Zeroed = empty. */
struct lf_rows {
    float *v;
    int64_t n, cap, dim;
};

/* Append n rows (dim set by the first call). Returns 0 or LDM_ENOMEM. */
int lf_rows_add(struct lf_rows *r, const float *x, int64_t n, int64_t dim);

/* Write r as an (n, dim) float32 .npy file. Returns the codes of ldm_npy_write. */
int lf_rows_write(const struct lf_rows *r, const char *path);

void lf_rows_free(struct lf_rows *r);

/* ---- commands (stats.c, is.c) ------------------------------------------------- */

int lf_cmd_stats(const struct lf_opts *o);
int lf_cmd_fid(const struct lf_opts *o);
int lf_cmd_is(const struct lf_opts *o);

/* Print "ldmfid CMD: DETAIL" for code rc to stderr; returns 1 (or 2 for
 * LDM_EINVAL coming from arguments, see main.c). */
int lf_report(const char *cmd, int rc);

/* The weights path or a failure naming how to give one. */
int lf_need_weights(const struct lf_opts *o);

#endif
