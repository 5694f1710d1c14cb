/* sample.c — a batch of images from a UNet: the diffusers text-to-image pipeline loop
 * (initial noise, the sampler's steps with classifier-free guidance, VAE decode) on
 * the nn/ backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "evald/eval_int.h"
#include "models/sampler.h"
#include "rng.h"

struct bufs {
    float *x, *in, *t, *ehs, *te, *tid, *out, *img;
};

static void bufs_free(struct bufs *b)
{
    free(b->x), free(b->in), free(b->t), free(b->ehs), free(b->te), free(b->tid), free(b->out);
    free(b->img);
}

/* Inputs that stay the same over the steps: text states (uncond half first), SDXL's
 * pooled embeddings and time ids. */
static void fill_text(const struct ev_models *m, int64_t first, int64_t n, int cfg,
                      struct bufs *b)
{
    size_t per = (size_t)(m->L * m->D), P = (size_t)m->P;
    int64_t off = cfg ? n : 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = (first + k) % m->nprompts;
        memcpy(b->ehs + (size_t)(off + k) * per, m->cond + (size_t)p * per, per * sizeof(float));
        if (cfg)
            memcpy(b->ehs + (size_t)k * per, m->uncond, per * sizeof(float));
        if (P) {
            memcpy(b->te + (size_t)(off + k) * P, m->pcond + (size_t)p * P, P * sizeof(float));
            if (cfg)
                memcpy(b->te + (size_t)k * P, m->puncond, P * sizeof(float));
        }
    }
    for (int64_t k = 0; P && k < (cfg ? 2 * n : n); k++) {
        float s = (float)m->side, ids[6] = {s, s, 0, 0, s, s};
        memcpy(b->tid + k * 6, ids, sizeof ids);
    }
}

static int alloc_bufs(const struct ev_models *m, int64_t n, int64_t S, int64_t B2, struct bufs *b)
{
    size_t nS = (size_t)(n * S), B = (size_t)B2;
    b->x = malloc(nS * sizeof(float));
    b->in = malloc(B * (size_t)S * sizeof(float));
    b->out = malloc(B * (size_t)S * sizeof(float));
    b->t = malloc(B * sizeof(float));
    b->ehs = malloc(B * (size_t)(m->L * m->D) * sizeof(float));
    b->te = malloc(B * (size_t)(m->P + 1) * sizeof(float));
    b->tid = malloc(B * 6 * sizeof(float));
    b->img = malloc((size_t)(n * 3 * m->side * m->side) * sizeof(float));
    return b->x && b->in && b->out && b->t && b->ehs && b->te && b->tid && b->img
               ? 0 : ldm_fail(LDM_ENOMEM, "sampling buffers for %lld images", (long long)n);
}

/* Initial noise: image i from its own stream (seed, i), times the sampler's sigma. */
static int init_noise(const struct ev_models *m, const struct ldm_sampler *s, int64_t first,
                      int64_t n, int64_t S, float *x)
{
    float sig = ldm_sampler_init_noise_sigma(s);
    for (int64_t k = 0; k < n; k++) {
        struct ldm_rng r;
        ldm_rng_init(&r, ldm_rng_mix((uint64_t)m->cfg->seed * 0x9E3779B97F4A7C15ull +
                                     (uint64_t)(first + k)), 0);
        int rc = ldm_sampler_randn(&r, x + k * S, S);
        if (rc)
            return rc;
        for (int64_t i = 0; i < S; i++)
            x[k * S + i] *= sig;
    }
    return 0;
}

/* The sampler's loop over n images whose inputs are in b. */
static int denoise(struct ev_models *m, struct ldm_unet *u, struct ldm_sampler *s, int64_t n,
                   int64_t S, int cfg, struct bufs *b)
{
    int64_t B2 = cfg ? 2 * n : n;
    struct ldm_unet_inputs in = {.sample = b->in, .timesteps = b->t,
                                 .encoder_hidden_states = b->ehs,
                                 .text_embeds = m->P ? b->te : NULL,
                                 .time_ids = m->P ? b->tid : NULL};
    struct ldm_rng r;
    ldm_rng_init(&r, (uint64_t)m->cfg->seed, 7);
    int rc = 0;
    for (int i = 0; !rc && i < ldm_sampler_steps(s); i++) {
        rc = ldm_sampler_scale_input(s, i, b->in, b->x, n * S);
        if (!rc && cfg)
            memcpy(b->in + n * S, b->in, (size_t)(n * S) * sizeof(float));
        for (int64_t k = 0; k < B2; k++)
            b->t[k] = ldm_sampler_timestep(s, i);
        if (!rc)
            rc = ldm_unet_forward(u, &in, b->out);
        if (!rc && cfg)
            rc = ldm_cfg_combine(b->out, b->out, b->out + n * S, n * S, m->cfg->guidance_scale);
        if (!rc)
            rc = ldm_sampler_step(s, i, b->out, b->x, n * S, &r, NULL);
    }
    return rc;
}

/* Latents to uint8 HWC pixels through the VAE, as diffusers' image processor does. */
static int decode(struct ev_models *m, int64_t n, int64_t h, struct bufs *b, uint8_t *px)
{
    int64_t S = m->lat_c * h * h, side = m->side, hw = side * side;
    for (int64_t i = 0; i < n * S; i++)
        b->x[i] = b->x[i] / (float)m->vscale + (float)m->vshift;
    struct ldm_tensor lat = ldm_tensor_f32(b->x, n, m->lat_c, h, h);
    struct ldm_tensor img = ldm_tensor_f32(b->img, n, 3, side, side);
    int rc = ldm_vae_decode(m->vae, &lat, &img);
    for (int64_t k = 0; !rc && k < n; k++)
        for (int64_t i = 0; i < hw; i++)
            for (int c = 0; c < 3; c++) {
                float v = b->img[(k * 3 + c) * hw + i] / 2.0f + 0.5f;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                px[(k * hw + i) * 3 + c] = (uint8_t)lrintf(v * 255.0f);
            }
    return rc;
}

int ev_sample(struct ev_models *m, struct ldm_unet *u, int64_t first, int64_t n, uint8_t *px)
{
    int cfg = m->cfg->guidance_scale > 1.0;
    int64_t h = ldm_vae_latent_size(m->vae, m->side), S = m->lat_c * h * h, B2 = cfg ? 2 * n : n;
    struct bufs b = {0};
    struct ldm_sampler *s = NULL;
    int rc = alloc_bufs(m, n, S, B2, &b);
    if (!rc && (m->pu != u || m->pB != B2)) {
        rc = ldm_unet_prepare(u, B2, h, h, m->L);
        m->pu = rc ? NULL : u;
        m->pB = B2;
    }
    const char *kind = m->cfg->sampler[0] ? m->cfg->sampler : NULL;
    if (!rc)
        rc = ldm_sampler_new(&s, m->sched, kind, (int)m->cfg->steps, m->cfg->eta,
                             "scheduler/scheduler_config.json");
    if (!rc)
        rc = init_noise(m, s, first, n, S, b.x);
    if (!rc) {
        fill_text(m, first, n, cfg, &b);
        rc = denoise(m, u, s, n, S, cfg, &b);
    }
    if (!rc)
        rc = decode(m, n, h, &b, px);
    ldm_sampler_free(&s);
    bufs_free(&b);
    return rc;
}
