/* tensor.c — tensor descriptors, fp16/bf16 conversions and arenas. */
#include "nn/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"

int ldm_tensor_set(struct ldm_tensor *t, const char *name, int dtype, int ndim,
                   const int64_t *shape)
{
    const char *label = name ? name : "tensor";
    if (!ldm_dtype_name(dtype))
        return ldm_fail(LDM_EINVAL, "%s: unknown dtype %d", label, dtype);
    if (ndim < 0 || ndim > LDM_TMAXDIM)
        return ldm_fail(LDM_EINVAL, "%s: %d dimensions (0..%d allowed)", label, ndim,
                        LDM_TMAXDIM);
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ldm_fail(LDM_EINVAL, "%s: dimension %d is negative (%lld)", label, i,
                            (long long)shape[i]);
        if (__builtin_mul_overflow(count, (uint64_t)shape[i], &count))
            return ldm_fail(LDM_EINVAL, "%s: element count overflows", label);
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(count, (uint64_t)ldm_dtype_size(dtype), &bytes) ||
        bytes > (uint64_t)(SIZE_MAX / 2))
        return ldm_fail(LDM_EINVAL, "%s: byte size overflows", label);
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    return 0;
}

struct ldm_tensor ldm_tensor_view(void *data, int dtype, int ndim, const int64_t *shape)
{
    struct ldm_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.ndim = ndim < 0 ? 0 : ndim > LDM_TMAXDIM ? LDM_TMAXDIM : ndim;
    for (int i = 0; i < t.ndim; i++)
        t.shape[i] = shape[i];
    return t;
}

size_t ldm_tensor_numel(const struct ldm_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

size_t ldm_tensor_nbytes(const struct ldm_tensor *t)
{
    return ldm_tensor_numel(t) * ldm_dtype_size(t->dtype);
}

int ldm_tensor_same_shape(const struct ldm_tensor *a, const struct ldm_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

char *ldm_tensor_shape_str(const struct ldm_tensor *t, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

const char *ldm_tensor_label(const struct ldm_tensor *t, const char *fallback)
{
    return t && t->name ? t->name : fallback;
}

/* ---- fp16 / bf16 ----------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ldm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf or NaN */
        return bits_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp == 0) { /* zero or subnormal: man · 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t ldm_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: subnormal half (or zero) */
        /* value / 2^-24, rounded to nearest even, by the FPU */
        float v = bits_f32(a) * 0x1p24f;
        float r = nearbyintf(v); /* default rounding mode: to nearest even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t exp = (a >> 23) - 112u; /* rebias 127 -> 15 */
    uint32_t man = a & 0x7fffffu;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is still right */
    return (uint16_t)(sign | h);
}

float ldm_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}

uint16_t ldm_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static int is_float_dtype(int dt)
{
    return dt == LDM_DT_F64 || dt == LDM_DT_F32 || dt == LDM_DT_F16 || dt == LDM_DT_BF16;
}

static double load_one(const void *src, int dt, size_t i)
{
    switch (dt) {
    case LDM_DT_F64: return ((const double *)src)[i];
    case LDM_DT_F32: return ((const float *)src)[i];
    case LDM_DT_F16: return ldm_f16_to_f32(((const uint16_t *)src)[i]);
    default: return ldm_bf16_to_f32(((const uint16_t *)src)[i]);
    }
}

static void store_one(void *dst, int dt, size_t i, double v)
{
    switch (dt) {
    case LDM_DT_F64: ((double *)dst)[i] = v; break;
    case LDM_DT_F32: ((float *)dst)[i] = (float)v; break;
    case LDM_DT_F16: ((uint16_t *)dst)[i] = ldm_f32_to_f16((float)v); break;
    default: ((uint16_t *)dst)[i] = ldm_f32_to_bf16((float)v); break;
    }
}

int ldm_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n)
{
    if (!is_float_dtype(dst_dtype) || !is_float_dtype(src_dtype)) {
        const char *a = ldm_dtype_name(src_dtype), *b = ldm_dtype_name(dst_dtype);
        return ldm_fail(LDM_EUNSUPPORTED, "convert %s to %s: only F64, F32, F16, BF16",
                        a ? a : "?", b ? b : "?");
    }
    if (dst_dtype == src_dtype) {
        if (dst != src)
            memmove(dst, src, n * ldm_dtype_size(dst_dtype));
        return 0;
    }
    /* F64 -> F16/BF16 goes through F32 (one rounding to F32 first, as torch does) */
    if (ldm_dtype_size(dst_dtype) > ldm_dtype_size(src_dtype)) {
        for (size_t i = n; i-- > 0;) /* backwards: a widening in place stays right */
            store_one(dst, dst_dtype, i, load_one(src, src_dtype, i));
    } else {
        for (size_t i = 0; i < n; i++)
            store_one(dst, dst_dtype, i, load_one(src, src_dtype, i));
    }
    return 0;
}

/* ---- arenas ----------------------------------------------------------------------- */

int ldm_arena_size(const struct ldm_tensor *t, size_t n, size_t *bytes)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct ldm_tensor chk;
        int rc = ldm_tensor_set(&chk, t[i].name, t[i].dtype, t[i].ndim, t[i].shape);
        if (rc)
            return rc;
        size_t b = ldm_tensor_nbytes(&chk);
        size_t padded = (b + LDM_ARENA_ALIGN - 1) / LDM_ARENA_ALIGN * LDM_ARENA_ALIGN;
        if (padded < b || __builtin_add_overflow(total, padded, &total))
            return ldm_fail(LDM_EINVAL, "arena: size overflows at tensor %zu (%s)", i,
                            ldm_tensor_label(&t[i], "unnamed"));
    }
    *bytes = total;
    return 0;
}

int ldm_arena_alloc(struct ldm_arena *a, struct ldm_ctx *ctx, struct ldm_tensor *t, size_t n)
{
    memset(a, 0, sizeof *a);
    size_t bytes;
    int rc = ldm_arena_size(t, n, &bytes);
    if (rc)
        return rc;
    void *base = NULL;
    if (bytes > 0) {
        rc = ldm_ctx_alloc(ctx, bytes, &base);
        if (rc)
            return rc;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        t[i].data = (char *)base + off;
        size_t b = ldm_tensor_nbytes(&t[i]);
        off += (b + LDM_ARENA_ALIGN - 1) / LDM_ARENA_ALIGN * LDM_ARENA_ALIGN;
    }
    a->ctx = ctx;
    a->base = base;
    a->bytes = bytes;
    return 0;
}

int ldm_arena_zero(struct ldm_arena *a)
{
    if (!a->base || a->bytes == 0)
        return 0;
    return ldm_ctx_zero(a->ctx, a->base, a->bytes);
}

int ldm_arena_flat(const struct ldm_arena *a, int dtype, struct ldm_tensor *out)
{
    size_t es = ldm_dtype_size(dtype);
    if (es == 0 || a->bytes % es)
        return ldm_fail(LDM_EINVAL, "arena of %zu bytes is not a whole number of %s elements",
                        a->bytes, ldm_dtype_name(dtype) ? ldm_dtype_name(dtype) : "?");
    memset(out, 0, sizeof *out);
    out->data = a->base;
    out->dtype = dtype;
    out->ndim = 1;
    out->shape[0] = (int64_t)(a->bytes / es);
    out->name = "arena";
    return 0;
}

void ldm_arena_free(struct ldm_arena *a)
{
    if (a->base && a->ctx)
        ldm_ctx_free(a->ctx, a->base);
    memset(a, 0, sizeof *a);
}
