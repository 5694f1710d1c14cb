/* vec.h — helpers for the CPU backend's hot loops: an AVX2/FMA clone of a
 * function chosen at run time, and 8-wide exp, max and sum written with the
 * compiler's vector extensions (so they vectorize whatever the optimizer's
 * cost model decides).
 *
 * CPU_HOT on a function makes the compiler emit two versions, one for
 * x86-64-v3 (AVX2, FMA) and a baseline one (SSE2, where an 8-wide vector is
 * two registers), and pick at load time by the CPU (target_clones). The
 * helpers are always inlined, so they take their caller's target. Vectors
 * are only ever local variables (macros below): a 32-byte vector passed to
 * or returned from a function would change the ABI between the clones. */
#ifndef LDM_NN_CPU_VEC_H
#define LDM_NN_CPU_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CPU_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CPU_HOT
#endif
#define CPU_INLINE static inline __attribute__((always_inline))

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define V8_LOAD(v, p) memcpy(&(v), (p), sizeof(v8f))
#define V8_STORE(p, v) memcpy((p), &(v), sizeof(v8f))
#define V8_SET(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
/* mask ? a : b, lane by lane, for a mask of all-ones / all-zeros lanes */
#define V8_SELECT(mask, a, b) ((v8f)(((v8i)(a) & (mask)) | ((v8i)(b) & ~(mask))))

/* x = exp(x), lane by lane: within 2 ulp for x in [−87, 88]; 0 below −87
 * (−inf included), exp(88) above. x = n·ln2 + r with n = round(x·log2 e)
 * (adding and taking away 1.5·2^23 rounds), ln2 in two parts, e^r by a
 * degree-6 polynomial on |r| <= ln2/2, then 2^n put in the exponent bits. */
#define V8_EXP(x)                                                                                  \
    do {                                                                                           \
        v8i under_ = (x) < V8_SET(-87.0f);                                                         \
        v8f c_ = V8_SELECT(under_, V8_SET(-87.0f), (x));                                           \
        c_ = V8_SELECT(c_ > V8_SET(88.0f), V8_SET(88.0f), c_);                                     \
        v8f n_ = (c_ * V8_SET(1.44269504088896341f) + V8_SET(12582912.0f)) - V8_SET(12582912.0f); \
        v8f r_ = c_ - n_ * V8_SET(0.693359375f);                                                   \
        r_ = r_ - n_ * V8_SET(-2.12194440e-4f);                                                    \
        v8f p_ = V8_SET(1.9875691500e-4f);                                                         \
        p_ = p_ * r_ + V8_SET(1.3981999507e-3f);                                                   \
        p_ = p_ * r_ + V8_SET(8.3334519073e-3f);                                                   \
        p_ = p_ * r_ + V8_SET(4.1665795894e-2f);                                                   \
        p_ = p_ * r_ + V8_SET(1.6666665459e-1f);                                                   \
        p_ = p_ * r_ + V8_SET(5.0000001201e-1f);                                                   \
        p_ = p_ * r_ * r_ + r_ + V8_SET(1.0f);                                                     \
        v8i e_ = (__builtin_convertvector(n_, v8i) + 127) << 23;                                   \
        (x) = (v8f)((v8i)(p_ * (v8f)e_) & ~under_);                                                \
    } while (0)

/* The scalar form (the same steps, one lane used). */
CPU_INLINE float cpu_expf(float x)
{
    v8f v = V8_SET(x);
    V8_EXP(v);
    return v[0];
}

CPU_INLINE float cpu_sigmoidf(float z)
{
    return 1.0f / (1.0f + cpu_expf(-z));
}

/* y[i] = x[i]·σ(a·x[i]) for i < n (SiLU: a = 1; QuickGELU: a = 1.702). */
CPU_INLINE void cpu_silu_scaled(float *y, const float *x, int64_t n, float a)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v, e;
        V8_LOAD(v, x + i);
        e = -(V8_SET(a) * v);
        V8_EXP(e);
        e = v / (V8_SET(1.0f) + e);
        V8_STORE(y + i, e);
    }
    for (; i < n; i++)
        y[i] = x[i] * cpu_sigmoidf(a * x[i]);
}

/* dx[i] += dy[i]·f'(x[i]) for f(x) = x·σ(a·x): f' = s + a·x·s·(1 − s), s = σ(a·x). */
CPU_INLINE void cpu_silu_scaled_grad(float *dx, const float *dy, const float *x, int64_t n, float a)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v, g, d, e;
        V8_LOAD(v, x + i);
        V8_LOAD(g, dy + i);
        V8_LOAD(d, dx + i);
        e = -(V8_SET(a) * v);
        V8_EXP(e);
        v8f s = V8_SET(1.0f) / (V8_SET(1.0f) + e);
        d += g * (s + V8_SET(a) * v * s * (V8_SET(1.0f) - s));
        V8_STORE(dx + i, d);
    }
    for (; i < n; i++) {
        float s = cpu_sigmoidf(a * x[i]);
        dx[i] += dy[i] * (s + a * x[i] * s * (1.0f - s));
    }
}

/* The largest of x[0..n-1] (−inf for n = 0). */
CPU_INLINE float cpu_rowmax(const float *x, int64_t n)
{
    v8f acc = V8_SET(-INFINITY), v;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V8_LOAD(v, x + i);
        acc = V8_SELECT(v > acc, v, acc);
    }
    float m = acc[0];
    for (int k = 1; k < 8; k++)
        m = acc[k] > m ? acc[k] : m;
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* x[i] = exp(x[i] − shift) for i < n; returns their sum when sum != 0. */
CPU_INLINE float cpu_exp_sub(float *x, int64_t n, float shift, int sum)
{
    v8f acc = V8_SET(0.0f), v;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V8_LOAD(v, x + i);
        v = v - V8_SET(shift);
        V8_EXP(v);
        V8_STORE(x + i, v);
        if (sum)
            acc += v;
    }
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) {
        x[i] = cpu_expf(x[i] - shift);
        s += x[i];
    }
    return s;
}

#endif
