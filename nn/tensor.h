/* tensor.h — tensor descriptors, fp16/bf16 storage conversions, and arenas.
 *
 * A struct ldm_tensor describes memory it does not own: a data pointer (in
 * the memory of the context's backend: host memory for the CPU backend,
 * device memory for CUDA), an element type and a shape. There are no
 * strides: every tensor is contiguous and row-major, the last dimension
 * varying fastest. The project uses these layouts, with fixed letters:
 *
 *   images, feature maps   (N, C, H, W)   NCHW
 *   token sequences        (N, L, D)      L tokens of width D
 *   rows of features       (M, D)         any leading dims flattened into M
 *   convolution weights    (K, C, R, S)   K out channels, R×S kernel
 *   linear weights         (Dout, Din)    as torch.nn.Linear
 *
 * An op that takes "(M, D)" accepts any tensor whose last dimension is D and
 * whose leading dimensions multiply to M, so (N, L, D) works as (N·L, D).
 *
 * Element types are those of safetensors.h (enum ldm_dtype). Compute runs
 * in F32 on the CPU; F16 and BF16 are storage types: weights are read in
 * them and converted with ldm_convert, and the CUDA backend keeps
 * activations in them. Integer tensors (I32/I64) hold token ids, U8 masks.
 *
 * An arena is one allocation holding a group of tensors (parameters,
 * gradients, optimizer moments, activations), laid out from a table of
 * descriptors whose shapes are set: each tensor's data points into it. One
 * allocation per group makes zeroing, all-reduce and checkpointing one call
 * each, and tensors of the same table in two arenas (parameters and their
 * gradients) sit at the same offsets.
 */
#ifndef LDM_NN_TENSOR_H
#define LDM_NN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h" /* enum ldm_dtype, ldm_dtype_size */

/* The most dimensions an op tensor has here. */
#define LDM_TMAXDIM 5

/* Arena members start at multiples of this many bytes. */
#define LDM_ARENA_ALIGN 256

struct ldm_ctx; /* backend.h */

struct ldm_tensor {
    void *data;                 /* first element, in the backend's memory; not owned */
    int dtype;                  /* enum ldm_dtype */
    int ndim;                   /* 0 (a scalar) .. LDM_TMAXDIM */
    int64_t shape[LDM_TMAXDIM]; /* shape[0..ndim-1], each >= 0; the rest 0 */
    const char *name;           /* for error details (a state-dict name); may be NULL */
};

/* Set t's name, dtype and shape (data becomes NULL). Returns 0, or
 * LDM_EINVAL (unknown dtype, ndim outside 0..LDM_TMAXDIM, negative size, or
 * an element count whose byte size overflows) naming the tensor. */
int ldm_tensor_set(struct ldm_tensor *t, const char *name, int dtype, int ndim,
                   const int64_t *shape);

/* ldm_tensor_setv(&t, "x", LDM_DT_F32, 2, 4, 8, 8): the shape as arguments. */
#define ldm_tensor_setv(t, name, dtype, ...)                                                       \
    ldm_tensor_set((t), (name), (dtype),                                                          \
                   (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                      \
                   (const int64_t[]){__VA_ARGS__})

/* A descriptor of `data` as F32 with the shape given as arguments (no
 * checks; for code that knows its shapes). */
#define ldm_tensor_f32(data, ...)                                                                  \
    ldm_tensor_view((data), LDM_DT_F32, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                    (const int64_t[]){__VA_ARGS__})
struct ldm_tensor ldm_tensor_view(void *data, int dtype, int ndim, const int64_t *shape);

/* The number of elements (1 for a scalar), and that times the element size. */
size_t ldm_tensor_numel(const struct ldm_tensor *t);
size_t ldm_tensor_nbytes(const struct ldm_tensor *t);

/* 1 when a and b have the same ndim and sizes (dtype not compared). */
int ldm_tensor_same_shape(const struct ldm_tensor *a, const struct ldm_tensor *b);

/* Write "[2,4,8,8]" into buf (always NUL-terminated); returns buf. */
char *ldm_tensor_shape_str(const struct ldm_tensor *t, char *buf, size_t size);

/* The name for error details: t->name, or `fallback` when it has none. */
const char *ldm_tensor_label(const struct ldm_tensor *t, const char *fallback);

/* ---- fp16 / bf16 storage ----------------------------------------------------- */

/* IEEE binary16 <-> binary32. To half: round to nearest even; overflow
 * gives ±inf, NaN stays NaN (quiet), subnormals are kept. */
float ldm_f16_to_f32(uint16_t h);
uint16_t ldm_f32_to_f16(float f);

/* bfloat16 (the top 16 bits of a binary32) <-> binary32. To bf16: round
 * to nearest even; NaN stays NaN (quiet). */
float ldm_bf16_to_f32(uint16_t b);
uint16_t ldm_f32_to_bf16(float f);

/* Convert n elements between F64, F32, F16 and BF16 in host memory (dst and
 * src must not overlap unless dst == src with equal sizes). Returns 0 or
 * LDM_EUNSUPPORTED naming the pair of dtypes. */
int ldm_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n);

/* ---- arenas ------------------------------------------------------------------ */

struct ldm_arena {
    struct ldm_ctx *ctx; /* the backend whose memory holds it */
    void *base;          /* the one allocation (NULL when empty) */
    size_t bytes;        /* its size */
};

/* Bytes an arena for t[0..n-1] needs: each tensor's bytes rounded up to
 * LDM_ARENA_ALIGN, summed. Into *bytes; returns 0 or LDM_EINVAL (a tensor
 * fails ldm_tensor_set's checks, or the sum overflows). */
int ldm_arena_size(const struct ldm_tensor *t, size_t n, size_t *bytes);

/* Allocate one zero-filled block in ctx's memory for t[0..n-1] (their dtype
 * and shape set beforehand) and point each t[i].data into it, in order, at
 * multiples of LDM_ARENA_ALIGN. The padding stays zero. *a owns the block;
 * the tensors only point into it. Returns 0, LDM_EINVAL (as
 * ldm_arena_size) or LDM_ENOMEM (naming the bytes asked for). On failure *a
 * is empty and the tensors' data pointers are unchanged. */
int ldm_arena_alloc(struct ldm_arena *a, struct ldm_ctx *ctx, struct ldm_tensor *t, size_t n);

/* Set every byte of the arena to zero (gradients before a backward pass). */
int ldm_arena_zero(struct ldm_arena *a);

/* A 1-D descriptor of the whole arena as `dtype` elements (padding
 * included, which stays zero through AdamW and clipping): for ops applied
 * to a whole group at once. Returns 0 or LDM_EINVAL when the size is not a
 * multiple of the element size. */
int ldm_arena_flat(const struct ldm_arena *a, int dtype, struct ldm_tensor *out);

/* Free the block (an empty arena is fine) and empty *a. */
void ldm_arena_free(struct ldm_arena *a);

#endif
