/* sampler_sched.c — the timesteps and sigmas of each sampler kind, as diffusers' set_timesteps
 * computes them with numpy (float64 arange / linspace / interp) and torch (float32). */
#include <math.h>
#include <stdlib.h>

#include "err.h"
#include "models/sampler_int.h"

/* numpy's float64 linspace(start, stop, num): i·step + start, the last exactly stop. */
static double np_linspace_at(double start, double stop, int64_t num, int64_t i)
{
    if (num == 1)
        return start;
    if (i == num - 1)
        return stop;
    double step = (stop - start) / (double)(num - 1);
    double y = (double)i * step;
    return y + start;
}

/* numpy's float64 arange(start, 0, −step) for trailing spacing: the length is
 * ceil((0 − start)/−step); element i is start + i·delta with delta = (start − step) − start. */
static int64_t np_arange_down_len(double start, double step)
{
    return (int64_t)ceil((0.0 - start) / -step);
}

static double np_arange_down_at(double start, double step, int64_t i)
{
    double delta = (start + -step) - start;
    double off = (double)i * delta;
    return i == 0 ? start : start + off;
}

/* The K integer timesteps before any kind reorders them, in numpy's order
 * (linspace and leading ascending, trailing descending), into t (room for
 * n + 1). Trailing's arange may give n + 1. Returns the count. */
static int64_t base_timesteps(const struct ldm_sampler *s, double *t)
{
    int64_t n = s->n_inference, T = s->T;
    if (s->spacing == SP_LINSPACE) {
        for (int64_t i = 0; i < n; i++)
            t[i] = nearbyint(np_linspace_at(0, (double)(T - 1), n, i));
        return n;
    }
    if (s->spacing == SP_LEADING) {
        for (int64_t i = 0; i < n; i++)
            t[i] = (double)(i * (T / n));
        return n;
    }
    double step = (double)T / (double)n;
    int64_t k = np_arange_down_len((double)T, step);
    if (k > n + 1)
        k = n + 1; /* never: the ratio is within an ulp of n */
    for (int64_t i = 0; i < k; i++)
        t[i] = nearbyint(np_arange_down_at((double)T, step, i));
    return k;
}

static int check_int_timesteps(const struct ldm_sampler *s, const char *what)
{
    for (int i = 0; i < s->steps; i++)
        if (s->t_int[i] < 0 || s->t_int[i] >= s->T)
            return ldm_fail(LDM_ECONFIG,
                            "%s: %d inference steps with timestep_spacing %s and steps_offset %lld "
                            "give timestep %lld, outside 0..%lld",
                            what, s->n_inference,
                            s->spacing == SP_LEADING ? "leading"
                            : s->spacing == SP_TRAILING ? "trailing" : "linspace",
                            (long long)s->steps_offset, (long long)s->t_int[i],
                            (long long)(s->T - 1));
    return 0;
}

/* DDIM: descending, offset for leading, trailing minus one. */
static void ddim_timesteps(struct ldm_sampler *s, const double *b, int64_t k)
{
    s->steps = (int)k;
    for (int64_t i = 0; i < k; i++) {
        int64_t v = s->spacing == SP_TRAILING ? (int64_t)b[i] - 1 : (int64_t)b[k - 1 - i];
        if (s->spacing == SP_LEADING)
            v += s->steps_offset;
        s->t_int[i] = v;
    }
}

/* PNDM: ascending _timesteps u (k); then PRK's 12 calls around the last four
 * and PLMS over the rest, or PLMS alone with the second-to-last repeated. */
static void pndm_timesteps(struct ldm_sampler *s, const double *b, int64_t k)
{
    int64_t *u = s->t_int + s->n_inference + SP_PRK_CALLS + 2; /* the second half */
    for (int64_t i = 0; i < k; i++) {
        int64_t v = s->spacing == SP_TRAILING ? (int64_t)b[k - 1 - i] - 1 : (int64_t)b[i];
        u[i] = s->spacing == SP_LEADING ? v + s->steps_offset : v;
    }
    int64_t *t = s->t_int;
    int K = 0;
    if (s->skip_prk) {
        /* reversed(u[:-1] ++ u[-2:-1] ++ u[-1:]) */
        t[K++] = u[k - 1];
        if (k >= 2)
            t[K++] = u[k - 2];
        for (int64_t i = k - 2; i >= 0; i--)
            t[K++] = u[i];
    } else {
        /* prk = (u[-4:] each twice + [0, T//n//2]·4)[:-1], each twice, [1:-1], reversed */
        int64_t half = s->T / s->n_inference / 2, p[8], q[12];
        for (int j = 0; j < 4; j++) {
            p[2 * j] = u[k - 4 + j];
            p[2 * j + 1] = u[k - 4 + j] + half;
        }
        for (int j = 0; j < 12; j++)
            q[j] = p[(j + 1) / 2];
        for (int j = 0; j < 12; j++)
            t[K++] = q[11 - j];
        for (int64_t i = k - 4; i >= 0; i--)
            t[K++] = u[i];
    }
    s->steps = K;
}

/* The float32 σ of every training timestep: sqrt((1 − ᾱ)/ᾱ). */
static void train_sigmas(const struct ldm_sampler *s, float *sig)
{
    for (int64_t j = 0; j < s->T; j++) {
        float ac = s->sched.alphas_cumprod[j];
        if (j == s->T - 1 && ac == 0.0f)
            ac = 0x1p-24f; /* zero terminal SNR: diffusers sets ᾱ_T to 2^-24 */
        float r = (1.0f - ac) / ac;
        sig[j] = sqrtf(r);
    }
}

/* numpy's interp(x, arange(T), sig) in float64. */
static double np_interp(double x, const float *sig, int64_t T)
{
    if (isnan(x))
        return x;
    if (x < 0)
        return sig[0];
    if (x >= (double)(T - 1))
        return sig[T - 1];
    int64_t j = (int64_t)floor(x);
    if ((double)j == x)
        return sig[j];
    double y0 = sig[j], y1 = sig[j + 1];
    double slope = (y1 - y0) / ((double)(j + 1) - (double)j);
    double d = x - (double)j;
    double r = slope * d;
    r = r + y0;
    if (isnan(r)) {
        d = x - (double)(j + 1);
        r = slope * d;
        r = r + y1;
        if (isnan(r) && y0 == y1)
            r = y0;
    }
    return r;
}

/* diffusers' _sigma_to_t: the fractional training timestep of σ between
 * the float32 log-σ of the schedule (ls, ascending), in float64. */
static double sigma_to_t(double sigma, const float *ls, int64_t T)
{
    double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    float lsf = (float)log_sigma; /* numpy subtracts in float32 */
    int64_t low = 0;
    for (int64_t j = 0; j < T; j++)
        if (lsf >= ls[j])
            low = j;
    if (low > T - 2)
        low = T - 2;
    float lo = ls[low], hi = ls[low + 1];
    float den = lo - hi;
    double w = ((double)lo - log_sigma) / (double)den;
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    double a = (1 - w) * (double)low;
    double b = w * (double)(low + 1);
    return a + b;
}

/* Karras et al.'s σ ramp (ρ = 7) over num_inference_steps between the ends
 * of the k interpolated σ in d (or the configured sigma_min / sigma_max),
 * and their timesteps from the float32 log-σ of the schedule ls (T). */
static void karras(struct ldm_sampler *s, double *d, int64_t k, const float *ls)
{
    int K = s->n_inference;
    double smin = isnan(s->sigma_min) ? d[k - 1] : s->sigma_min;
    double smax = isnan(s->sigma_max) ? d[0] : s->sigma_max;
    double rho = 7.0, lo = pow(smin, 1 / rho), hi = pow(smax, 1 / rho);
    for (int i = 0; i < K; i++) {
        double ramp = np_linspace_at(0, 1, K, i);
        double v = ramp * (lo - hi);
        d[i] = pow(hi + v, rho);
        s->timesteps[i] = (float)sigma_to_t(d[i], ls, s->T);
    }
    s->steps = K;
}

/* EulerDiscreteScheduler: float32 timesteps, σ interpolated in float64 over
 * the training σ (or Karras'), then float32; σ_K = 0. */
static int euler_timesteps(struct ldm_sampler *s, const double *b, int64_t k)
{
    int64_t T = s->T;
    float *sig = malloc((size_t)(2 * T) * sizeof(float)); /* σ (T), log σ (T) */
    double *d = malloc((size_t)k * sizeof(double));
    if (!sig || !d) {
        free(sig);
        free(d);
        return ldm_fail(LDM_ENOMEM, "euler sampler: %lld sigmas", (long long)T);
    }
    for (int64_t i = 0; i < k; i++) {
        float t;
        if (s->spacing == SP_LINSPACE)
            t = (float)np_linspace_at(0, (double)(T - 1), k, k - 1 - i);
        else if (s->spacing == SP_LEADING)
            t = (float)b[k - 1 - i] + (float)s->steps_offset;
        else
            t = (float)b[i] - 1.0f;
        s->timesteps[i] = t;
    }
    s->steps = (int)k;
    train_sigmas(s, sig);
    for (int64_t i = 0; i < k; i++)
        d[i] = np_interp((double)s->timesteps[i], sig, T);
    if (s->karras) {
        for (int64_t j = 0; j < T; j++)
            sig[T + j] = logf(sig[j]);
        karras(s, d, k, sig + T);
    }
    float smax = 0;
    for (int i = 0; i < s->steps; i++) {
        s->sigmas[i] = (float)d[i];
        smax = s->sigmas[i] > smax ? s->sigmas[i] : smax;
    }
    s->sigmas[s->steps] = 0;
    float sq = smax * smax;
    s->init_sigma = s->spacing == SP_LEADING ? sqrtf(sq + 1.0f) : smax;
    free(sig);
    free(d);
    return 0;
}

/* The shift of the flow σ: shift·σ / (1 + (shift − 1)·σ), in float32 (torch). */
static float flow_shift_f32(double shift, float sigma)
{
    float a = (float)shift * sigma;
    float b = (float)(shift - 1.0) * sigma;
    return a / (1.0f + b);
}

/* FlowMatchEulerDiscreteScheduler: the training σ ends (shifted, float32), a
 * float64 linspace of timesteps between them, shifted again, then float32. */
static void flow_timesteps(struct ldm_sampler *s)
{
    int64_t T = s->T, n = s->n_inference;
    double smax = flow_shift_f32(s->shift, (float)T / (float)T);
    double smin = flow_shift_f32(s->shift, 1.0f / (float)T);
    for (int64_t i = 0; i < n; i++) {
        double t = np_linspace_at(smax * (double)T, smin * (double)T, n, i);
        double sg = t / (double)T;
        double a = s->shift * sg;
        double b = (s->shift - 1) * sg;
        float f = (float)(a / (1 + b));
        s->sigmas[i] = f;
        s->timesteps[i] = f * (float)T;
    }
    s->sigmas[n] = 0;
    s->steps = (int)n;
    s->init_sigma = 1.0f;
}

int sp_build_timesteps(struct ldm_sampler *s, const char *what)
{
    int64_t n = s->n_inference, room = n + SP_PRK_CALLS + 2;
    s->t_int = malloc((size_t)(2 * room) * sizeof(int64_t));
    s->timesteps = malloc((size_t)room * sizeof(float));
    s->sigmas = malloc((size_t)(room + 1) * sizeof(float));
    double *b = malloc((size_t)(n + 1) * sizeof(double));
    if (!s->t_int || !s->timesteps || !s->sigmas || !b) {
        free(b);
        return ldm_fail(LDM_ENOMEM, "%s: %lld inference steps", what, (long long)n);
    }
    int rc = 0;
    s->init_sigma = 1.0f;
    if (s->kind == LDM_SAMPLER_FLOW) {
        flow_timesteps(s);
    } else {
        int64_t k = base_timesteps(s, b);
        if (s->kind == LDM_SAMPLER_EULER) {
            rc = euler_timesteps(s, b, k);
        } else {
            if (s->kind == LDM_SAMPLER_DDIM)
                ddim_timesteps(s, b, k);
            else
                pndm_timesteps(s, b, k);
            rc = check_int_timesteps(s, what);
            for (int i = 0; i < s->steps; i++)
                s->timesteps[i] = (float)s->t_int[i];
        }
    }
    free(b);
    if (s->kind == LDM_SAMPLER_DDIM || s->kind == LDM_SAMPLER_PNDM) {
        free(s->sigmas);
        s->sigmas = NULL;
    }
    return rc;
}
