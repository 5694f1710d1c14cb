/* ops_check.h — shape and dtype checks shared by the op wrappers (nn/ops*.c). */
#ifndef LDM_NN_OPS_CHECK_H
#define LDM_NN_OPS_CHECK_H

#include <stdint.h>

#include "nn/backend.h"

/* One op call being checked: its context, its op id (for messages) and the
 * float dtype its tensors share (-1 until the first float tensor). */
#define OPCHK_EMU_MAX 72 /* concat takes up to 64 parts */

/* A tensor of an emulated dtype, converted to F32 for the backend's entry. */
struct opchk_emu {
    void *orig;   /* the caller's data */
    int dtype;    /* its dtype */
    size_t n;     /* elements */
    size_t cap;   /* floats allocated at f */
    float *f;     /* the F32 copy (ops_emu.c's pool) */
};

struct opchk {
    struct ldm_ctx *c;
    int op;
    int dtype;
    int emu;      /* the dtype is one the backend emulates (ops_emu.c) */
    double t0;    /* profiling: when the op started (after the device was idle), else 0 */
    int nemu;
    struct opchk_emu e[OPCHK_EMU_MAX];
};

/* Start checking op `op` on c. Returns 0 or LDM_EINVAL (no context). */
int opchk_begin(struct opchk *k, struct ldm_ctx *c, int op);

/* t must be a float tensor of the op's common dtype (the first one sets
 * it), a dtype the backend computes in, with data unless planning or
 * empty. `what` names the argument. optional: NULL is fine (returns 0). */
int opchk_float(struct opchk *k, const struct ldm_tensor *t, const char *what, int optional);

/* t must be an F32 tensor (saved statistics, loss, weights, timesteps) of
 * exactly `count` elements, any shape. */
int opchk_f32(struct opchk *k, const struct ldm_tensor *t, const char *what, int64_t count);

/* t (when given) must have exactly this shape. */
int opchk_shape(struct opchk *k, const struct ldm_tensor *t, const char *what, int ndim,
                const int64_t *shape);
#define OPCHK_SHAPE(k, t, what, ...)                                                               \
    opchk_shape((k), (t), (what), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),   \
                (const int64_t[]){__VA_ARGS__})

/* t viewed as rows: *M = product of all dims but the last, *D = the last
 * (a scalar or 1-D tensor is one row). */
void opchk_rows(const struct ldm_tensor *t, int64_t *M, int64_t *D);

/* t must have ndim >= min_ndim. */
int opchk_ndim(struct opchk *k, const struct ldm_tensor *t, const char *what, int min_ndim,
               int max_ndim);

/* Sizes a backend hands to BLAS (32-bit ints) must fit: 0 or LDM_EINVAL
 * naming `what`. */
int opchk_int(struct opchk *k, int64_t v, const char *what);

/* Fail with LDM_EINVAL: "<op>: <formatted detail>". */
int opchk_fail(struct opchk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* After the checks: `have` says whether the backend implements the entry.
 * Asks the backend for the workspace `dims` need. Returns 1 while
 * planning (the need recorded; the op returns 0 without computing), 0 to
 * compute, or LDM_EUNSUPPORTED / LDM_ERANGE (workspace too small). */
int opchk_go(struct opchk *k, const void *dims, int have);

/* The dtype the backend computes this op in: the tensors' own, or F32 when
 * it emulates theirs. */
static inline int opchk_compute(const struct opchk *k)
{
    return k->emu ? LDM_DT_F32 : k->dtype;
}

/* The pointer to hand the backend for t (NULL: NULL): t->data, or when t's
 * dtype is emulated an F32 copy of it (ops_emu.c; a copy that cannot be
 * allocated aborts: emulation is a checking aid). */
void *opchk_data(struct opchk *k, const struct ldm_tensor *t);

/* After the backend's entry returned rc: round every F32 copy back into its
 * tensor (only elements whose value changed are stored) and free the copies;
 * when profiling, wait for the device and add the op's time. Returns rc. */
int opchk_end(struct opchk *k, int rc);

/* Profiling (ldm_ctx_profile): wait for the device and note the start in k. */
int opchk_prof_start(struct opchk *k);
double opchk_now(void);

/* The data pointer of an optional tensor (NULL stays NULL). */
static inline void *opchk_ptr(const struct ldm_tensor *t)
{
    return t ? t->data : 0;
}

#endif
