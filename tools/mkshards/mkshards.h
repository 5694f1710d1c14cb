/* mkshards.h — what the parts of mkshards share (shard writer, drawing, encoders, commands). */
#ifndef MKSHARDS_H
#define MKSHARDS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- tar shards (shardw.c) ----------------------------------------------------------- */

enum mk_shard_filter { MK_SHARD_PLAIN, MK_SHARD_GZIP, MK_SHARD_ZSTD };

/* ".tar", ".tar.gz", ".tar.zst" */
const char *mk_shard_suffix(enum mk_shard_filter f);

/* Produces the members of one shard by calling mk_shard_put. */
struct mk_shard_out;
typedef int (*mk_shard_fill_fn)(struct mk_shard_out *out, void *ctx);

/* Write the tar shard `path` atomically (temporary file, fsync, rename) with
 * the members fill(out, ctx) puts. Returns 0 or an LDM_E* code (detail set). */
int mk_shard_write(const char *path, enum mk_shard_filter f, mk_shard_fill_fn fill, void *ctx);

/* Add the member `name` (len bytes, mode 0644, the given mtime). */
int mk_shard_put(struct mk_shard_out *out, const char *name, const void *data, size_t len,
                 time_t mtime);

/* Write a small text file atomically. */
int mk_write_text_file(const char *path, const char *text, size_t len);

/* ---- pixels (draw.c) ------------------------------------------------------------------ */

/* One synthetic picture: a shape on a plain or two-tone background. */
struct mk_scene {
    int shape;            /* index in mk_shape_names */
    int color, bg, bg2;   /* indices in mk_color_names; bg2 < 0: plain background */
    int split;            /* two-tone split: 0 vertical, 1 horizontal, 2 diagonal */
    float cx, cy, r, rot; /* centre, radius (pixels) and rotation (radians) */
};

extern const char *const mk_shape_names[];
extern const int mk_n_shapes;
extern const char *const mk_color_names[];
extern const int mk_n_colors;

/* A random scene for a size x size picture from the 64-bit state *rng. */
void mk_scene_random(struct mk_scene *sc, int size, uint64_t *rng);

/* The caption of a scene ("a red circle on a blue background"), into buf. */
void mk_scene_caption(const struct mk_scene *sc, char *buf, size_t size);

/* Draw the scene into rgb (size x size x 3, HWC); aa = anti-aliased edges. */
void mk_scene_draw(const struct mk_scene *sc, int size, int aa, unsigned char *rgb);

/* Draw the shape's outline, white on black (an edge map), into rgb. */
void mk_scene_draw_edges(const struct mk_scene *sc, int size, unsigned char *rgb);

/* splitmix64 step. */
uint64_t mk_rng_next(uint64_t *state);

/* ---- encoders (encode.c) -------------------------------------------------------------- */

struct mk_encoder;

/* quality: JPEG quality 1..100. Returns NULL when out of memory. */
struct mk_encoder *mk_encoder_new(int quality);
void mk_encoder_free(struct mk_encoder *e);

/* Encode rgb (w x h x 3) as JPEG or PNG; *out points into the encoder (valid
 * until its next call). Returns 0 or LDM_EINVAL / LDM_ENOMEM (detail set). */
int mk_encode_jpeg(struct mk_encoder *e, const unsigned char *rgb, int w, int h,
                   const unsigned char **out, size_t *len);
int mk_encode_png(struct mk_encoder *e, const unsigned char *rgb, int w, int h,
                  const unsigned char **out, size_t *len);

/* Standard base64 with padding into out (4 * ceil(n / 3) + 1 bytes). */
size_t mk_base64_encode(const unsigned char *p, size_t n, char *out);

/* ---- commands ------------------------------------------------------------------------- */

/* A whole number in [lo, hi] from the text of option --opt. Returns 0 or
 * LDM_EINVAL naming the option. */
int mk_parse_number(const char *opt, const char *text, long lo, long hi, long *v);

/* mkdir -p. Returns 0, LDM_ERANGE or LDM_EIO. */
int mk_make_dirs(const char *path);

int mk_cmd_pack(int argc, char **argv);
int mk_cmd_synth(int argc, char **argv);

#endif
