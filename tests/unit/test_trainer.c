/* test_trainer.c — trainerd's data side: the epoch plan (shape classes, full batches,
 * determinism), micro-batch assembly from a real LMDB cache (latent draws, caption
 * dropout, SDXL time ids), the feed's order and cursor, and the objectives' formulas
 * (epsilon, v, flow, min-SNR weights), and the ZeRO cuts of the optimiser state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/backend.h"
#include "nn/tensor.h"
#include "rng.h"
#include "store.h"
#include "testutil.h"
#include "trainerd/batch.h"
#include "trainerd/feed.h"
#include "trainerd/index.h"
#include "trainerd/objective.h"
#include "trainerd/zero.h"

Suite *suite_trainer(void);

#define LAT 2 /* latent side */
#define TL 3  /* text tokens */
#define TD 4  /* text width */

/* A record: latent C=1 of side `side`, mean = value, logvar = −60 (σ ≈ 0), text = value. */
static void *record(int side, float value, int pooled, size_t *len)
{
    size_t nl = (size_t)side * side;
    uint16_t m[64], lv[64], text[TL * TD], pool[2] = {0x3c00, 0x3c00};
    uint32_t ids[TL] = {1, 2, 3};
    for (size_t i = 0; i < nl; i++)
        m[i] = ldm_f32_to_f16(value), lv[i] = ldm_f32_to_f16(-60.0f);
    for (size_t i = 0; i < TL * TD; i++)
        text[i] = ldm_f32_to_f16(value);
    struct ldm_record_hdr h = {.latent_c = 1, .latent_h = (uint32_t)side, .latent_w = (uint32_t)side,
                               .text_len = TL, .text_dim = TD, .n_ids = TL, .orig_h = 100,
                               .orig_w = 200, .crop_top = 3, .crop_left = 4, .target_h = 64,
                               .target_w = 64};
    if (pooled)
        h.flags = LDM_REC_POOLED, h.pooled_dim = 2;
    struct ldm_record_sections s = {.mean = m, .logvar = lv, .text = text,
                                    .pooled = pooled ? pool : NULL, .ids = ids};
    void *rec = NULL;
    ck_ok(ldm_record_new(&h, &s, &rec, len));
    return rec;
}

/* A store of n samples: every third one of side 4, the rest of side LAT. */
static struct ldm_store *make_store(const char *dir, int n)
{
    struct ldm_store *st = NULL;
    ck_ok(ldm_store_open(dir, NULL, &st));
    for (int i = 0; i < n; i++) {
        char key[32];
        size_t len;
        snprintf(key, sizeof key, "k%03d", i);
        void *rec = record(i % 3 == 2 ? 4 : LAT, (float)i, 0, &len);
        struct ldm_store_item it = {"shard", key, (uint64_t)i, rec, len};
        size_t stored, dup;
        ck_ok(ldm_store_put_batch(st, &it, 1, &stored, &dup));
        free(rec);
    }
    size_t len;
    void *empty = record(LAT, -1.0f, 0, &len);
    ck_ok(ldm_store_meta_put(st, LDM_META_EMPTY_CAPTION, empty, len));
    free(empty);
    return st;
}

START_TEST(test_plan)
{
    char *dir = tu_tmpdir();
    struct ldm_store *st = make_store(dir, 30);
    struct td_index ix;
    ck_ok(td_index_scan(st, &ix));
    ck_assert_uint_eq(ix.n, 30);
    ck_assert_uint_eq(ix.ncls, 2);
    struct td_plan a, b, c;
    ck_ok(td_plan_epoch(&ix, 7, 0, 4, &a));
    ck_ok(td_plan_epoch(&ix, 7, 0, 4, &b));
    ck_ok(td_plan_epoch(&ix, 7, 1, 4, &c));
    /* 20 small (5 batches) and 10 large (2 batches, 2 left over) */
    ck_assert_uint_eq(a.nbatches, 7);
    ck_assert(!memcmp(a.items, b.items, a.nbatches * 4 * sizeof *a.items));
    ck_assert(memcmp(a.items, c.items, a.nbatches * 4 * sizeof *a.items));
    int seen[30] = {0};
    for (size_t k = 0; k < a.nbatches; k++)
        for (int j = 0; j < 4; j++) {
            size_t s = a.items[k * 4 + (size_t)j];
            ck_assert_uint_eq(ix.cls[s], ix.cls[a.items[k * 4]]);
            ck_assert_int_eq(seen[s]++, 0);
        }
    char *keys;
    size_t klen;
    struct td_index back;
    ck_ok(td_index_keys_blob(&ix, &keys, &klen));
    ck_ok(td_index_from_keys(st, keys, klen, &back));
    ck_assert_uint_eq(back.n, 30);
    td_index_free(&back);
    ck_fails_with(td_index_from_keys(st, "nope", 5, &back), LDM_ENOTFOUND, "nope");
    free(keys);
    td_plan_free(&a), td_plan_free(&b), td_plan_free(&c);
    td_index_free(&ix);
    ldm_store_close(&st);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static struct ldm_schedule g_sched;

static void objective(struct td_objective *o, int pred, double gamma)
{
    struct ldm_sched_config sc;
    ldm_sched_config_default(&sc);
    ldm_sched_free(&g_sched);
    ck_ok(ldm_sched_init(&g_sched, &sc));
    *o = (struct td_objective){.pred = pred, .sched = pred == TD_PRED_FLOW ? NULL : &g_sched,
                               .T = 1000, .snr_gamma = gamma, .tsample = TD_TS_LOGIT_NORMAL,
                               .logit_std = 1.0};
}

START_TEST(test_batch)
{
    char *dir = tu_tmpdir();
    struct ldm_store *st = make_store(dir, 12);
    struct td_index ix;
    ck_ok(td_index_scan(st, &ix));
    struct td_objective o;
    objective(&o, TD_PRED_V, 5.0);
    size_t len;
    void *eb = record(LAT, -1.0f, 0, &len);
    struct ldm_record empty;
    ck_ok(ldm_record_parse(eb, len, "empty", &empty));
    struct td_batch_opts bo = {.seed = 1, .scale = 0.5f, .shift = 1.0f, .obj = &o, .empty = &empty};
    struct td_batch b = {0};
    size_t items[2] = {0, 1}; /* k000 (value 0), k001 (value 1) */
    ck_ok(td_batch_fill(&b, st, &ix, items, 2, 5, 0, &bo));
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < LAT * LAT; i++) {
            float x0 = b.x0[k * LAT * LAT + i];
            ck_assert_msg(fabsf(x0 - ((float)k - 1.0f) * 0.5f) < 1e-5f, "x0 %g", (double)x0);
        }
        ck_assert_float_eq(b.ehs[k * TL * TD], (float)k);
        /* v target and min-SNR weight from the drawn timestep */
        int64_t t = (int64_t)b.tsteps[k];
        float ac = g_sched.alphas_cumprod[t], a = sqrtf(ac), sg = sqrtf(1 - ac);
        float snr = (a / sg) * (a / sg);
        ck_assert_float_eq_tol(b.weights[k], fminf(snr, 5.0f) / (snr + 1), 1e-6);
        float x = b.x0[k * 4], noisy = b.noisy[k * 4], v = b.target[k * 4];
        float eps = (noisy - a * x) / sg;
        ck_assert_float_eq_tol(v, a * eps - sg * x, 1e-4);
    }
    /* the same positions and step draw the same; another step, other noise */
    struct td_batch c = {0};
    ck_ok(td_batch_fill(&c, st, &ix, items, 2, 5, 0, &bo));
    ck_assert(!memcmp(b.noisy, c.noisy, 2 * 4 * sizeof(float)));
    ck_ok(td_batch_fill(&c, st, &ix, items, 2, 6, 0, &bo));
    ck_assert(memcmp(b.noisy, c.noisy, 2 * 4 * sizeof(float)));
    /* caption dropout 1: every sample gets the empty caption */
    bo.caption_dropout = 1.0;
    ck_ok(td_batch_fill(&c, st, &ix, items, 2, 5, 0, &bo));
    ck_assert_float_eq(c.ehs[TL * TD], -1.0f);
    bo.empty = NULL;
    ck_fails_with(td_batch_fill(&c, st, &ix, items, 2, 5, 0, &bo), LDM_EINVAL, "empty caption");
    td_batch_free(&b);
    td_batch_free(&c);
    free(eb);
    td_index_free(&ix);
    ldm_store_close(&st);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_flow)
{
    struct td_objective o;
    objective(&o, TD_PRED_FLOW, 0);
    float x0[8] = {1, 2, 3, 4, 5, 6, 7, 8}, noisy[8], ts[2], tg[8];
    uint64_t seeds[2] = {11, 12};
    ck_ok(td_objective_apply(&o, x0, 2, 1, 4, seeds, noisy, ts, tg, NULL));
    for (int k = 0; k < 2; k++) {
        float s = ts[k] / 1000.0f;
        ck_assert(s > 0 && s < 1);
        for (int i = 0; i < 4; i++) {
            float eps = tg[k * 4 + i] + x0[k * 4 + i];
            ck_assert_float_eq_tol(noisy[k * 4 + i], (1 - s) * x0[k * 4 + i] + s * eps, 1e-5);
        }
    }
    o.snr_gamma = 5;
    ck_fails_with(td_objective_apply(&o, x0, 2, 1, 4, seeds, noisy, ts, tg, tg), LDM_EINVAL,
                  "snr_gamma");
    int p;
    ck_fails_with(td_pred_parse("sample", "prediction_type", &p), LDM_ECONFIG, "prediction_type");
    /* the normal draws have mean ~0 and variance ~1 */
    struct ldm_rng r;
    ldm_rng_init(&r, 99, 0);
    double m = 0, v = 0;
    for (int i = 0; i < 100000; i++) {
        double g = td_gauss(&r);
        m += g, v += g * g;
    }
    m /= 100000, v = v / 100000 - m * m;
    ck_assert_msg(fabs(m) < 0.02 && fabs(v - 1) < 0.02, "mean %g var %g", m, v);
}
END_TEST

/* Micro-batches in order from the feed; a feed restarted at the cursor continues alike. */
START_TEST(test_feed)
{
    char *dir = tu_tmpdir();
    struct ldm_store *st = make_store(dir, 24);
    struct td_objective o;
    objective(&o, TD_PRED_EPSILON, 0);
    struct td_feed_opts fo = {.store = st, .B = 2, .accum = 2, .rank = 0, .world = 1,
                              .local_rank = 0, .local_world = 1, .min_samples = 1, .depth = 2,
                              .bo = {.seed = 4, .scale = 1.0f, .obj = &o}};
    struct td_feed *f = NULL;
    ck_ok(td_feed_start(&f, &fo, (struct td_cursor){0, 0}, 0));
    float first[4][8];
    for (int i = 0; i < 4; i++) {
        struct td_batch *b;
        int rc;
        while ((rc = td_feed_next(f, &b, 200)) == LDM_ETIMEOUT)
            ;
        ck_ok(rc);
        ck_assert_int_eq(b->micro, i % 2);
        ck_assert_int_eq(b->batch, i / 2);
        memcpy(first[i], b->noisy, sizeof first[i]);
        td_feed_release(f, b, i % 2 == 1);
        if (i == 1) { /* after step 1: restart from the cursor */
            struct td_cursor cur;
            char *keys;
            size_t klen;
            ck_ok(td_feed_cursor(f, &cur, &keys, &klen));
            ck_assert_int_eq(cur.batch, 1);
            td_feed_stop(&f);
            fo.keys = keys, fo.keys_len = klen;
            ck_ok(td_feed_start(&f, &fo, cur, 1));
            free(keys);
        }
    }
    td_feed_stop(&f);
    struct td_feed *g = NULL;
    fo.keys = NULL;
    ck_ok(td_feed_start(&g, &fo, (struct td_cursor){0, 0}, 0));
    for (int i = 0; i < 4; i++) {
        struct td_batch *b;
        int rc;
        while ((rc = td_feed_next(g, &b, 200)) == LDM_ETIMEOUT)
            ;
        ck_ok(rc);
        ck_assert_msg(!memcmp(first[i], b->noisy, sizeof first[i]), "micro-batch %d differs", i);
        td_feed_release(g, b, i % 2 == 1);
    }
    td_feed_stop(&g);
    ldm_store_close(&st);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ZeRO cuts: monotone, covering the arena and the state arrays, shards of S (a multiple
 * of 64) but the last, cuts inside an 8-bit tensor at its block starts, each rank's
 * windows of the F32 moments, code and absmax arrays those of its elements. */
struct plan_case {
    const struct td_zero_tensor *t;
    size_t nt, n, mt, qt, at;
};

static void check_cuts(const struct td_zero_plan *p, const struct plan_case *c, int world)
{
    size_t n = c->n, s = ((n + (size_t)world - 1) / (size_t)world + 63) / 64 * 64;
    ck_assert_int_eq(p->world, world);
    ck_assert(p->el[0] == 0 && p->el[world] == n && p->q[0] == 0 && p->q[world] == c->qt &&
              p->a[0] == 0 && p->a[world] == c->at && p->m[0] == 0 && p->m[world] == c->mt);
    for (int k = 0; k < world; k++) {
        ck_assert(p->el[k] <= p->el[k + 1] && p->q[k] <= p->q[k + 1] && p->a[k] <= p->a[k + 1] &&
                  p->m[k] <= p->m[k + 1]);
        ck_assert_msg(p->q[k] % 256 == 0, "world %d cut %d: code byte %zu", world, k, p->q[k]);
        ck_assert_msg(p->m[k] % TD_ZERO_ALIGN == 0, "world %d cut %d: moment %zu", world, k,
                      p->m[k]);
        size_t want = (size_t)k * s < n ? (size_t)k * s : n;
        ck_assert_msg(p->el[k] >= want && p->el[k] < want + LDM_ADAM8_BLOCK,
                      "world %d cut %d at %zu, S·k = %zu", world, k, p->el[k], want);
        if (!c->nt) /* AdamW: the moments are laid out as the arena */
            ck_assert(p->m[k] == p->el[k]);
    }
}

/* Where each cut falls in the state of the tensors; into *inside the number of cuts
 * strictly inside a tensor with F32 moments. */
static void check_tensor_cuts(const struct td_zero_plan *p, const struct plan_case *c, int world,
                              int *inside)
{
    const struct td_zero_tensor *t = c->t;
    for (int k = 1; k < world; k++) {
        size_t x = p->el[k], m_next = c->mt;
        for (size_t i = c->nt; i-- > 0;)
            if (!t[i].is8 && t[i].off + t[i].n > x)
                m_next = t[i].m_off;
        int in_m = 0;
        for (size_t i = 0; i < c->nt; i++) {
            if (x <= t[i].off || x >= t[i].off + t[i].n)
                continue;
            ck_assert_msg(!t[i].is8 || (x - t[i].off) % LDM_ADAM8_BLOCK == 0,
                          "world %d: cut %zu splits a block of tensor %zu", world, x, i);
            if (t[i].is8)
                ck_assert(p->q[k] == t[i].q_off + x - t[i].off &&
                          p->a[k] == t[i].a_off + (x - t[i].off) / LDM_ADAM8_BLOCK);
            else
                ck_assert_msg(p->m[k] == t[i].m_off + x - t[i].off,
                              "world %d: cut %zu in tensor %zu at moment %zu", world, x, i,
                              p->m[k]);
            in_m = !t[i].is8;
        }
        *inside += in_m;
        if (!in_m) /* the next slot's start */
            ck_assert_msg(p->m[k] == m_next, "world %d: cut %zu at moment %zu, not %zu", world,
                          x, p->m[k], m_next);
    }
}

/* Old-layout moments (one float per arena element; the small tensors' own values,
 * zero elsewhere) read window by window into slots: the windows side by side are
 * the slot layout, each small tensor's values at its slot, padding zero. */
static void check_from_full(const struct td_zero_plan *p, const struct plan_case *c,
                            const float *full)
{
    float *out = calloc(c->mt, sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int k = 0; k < p->world; k++)
        td_zero_from_full(c->t, c->nt, full, p->el[k], p->el[k + 1], p->m[k], out + p->m[k]);
    size_t filled = 0;
    for (size_t i = 0; i < c->nt; i++)
        if (!c->t[i].is8) {
            ck_assert(!memcmp(out + c->t[i].m_off, full + c->t[i].off, c->t[i].n * 4));
            filled += c->t[i].n;
        }
    size_t nonzero = 0;
    for (size_t j = 0; j < c->mt; j++)
        nonzero += out[j] != 0.0f;
    ck_assert_int_eq(nonzero, filled); /* the padding stays zero */
    free(out);
}

START_TEST(test_zero_plan)
{
    /* 64-aligned tensors; those of 4096 elements or more have 8-bit moments, the others
     * slots of F32 moments, each a multiple of 64 */
    static const size_t sizes[] = {100, 5000, 70, 9000, 64, 1000, 3000, 4096, 200};
    enum { NT = sizeof sizes / sizeof sizes[0] };
    struct td_zero_tensor t[NT];
    struct plan_case c = {.t = t, .nt = NT};
    for (int i = 0; i < NT; i++) {
        t[i] = (struct td_zero_tensor){.off = c.n, .n = sizes[i], .is8 = sizes[i] >= 4096};
        if (t[i].is8) {
            t[i].q_off = c.qt, t[i].a_off = c.at;
            c.qt += (sizes[i] + 255) / 256 * 256;
            c.at += (sizes[i] + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
        } else {
            t[i].m_off = c.mt;
            c.mt += (sizes[i] + 63) / 64 * 64;
        }
        c.n += (sizes[i] + 63) / 64 * 64;
    }
    float *full = calloc(c.n, sizeof *full);
    ck_assert_ptr_nonnull(full);
    for (int i = 0; i < NT; i++)
        for (size_t j = 0; !t[i].is8 && j < t[i].n; j++)
            full[t[i].off + j] = (float)(t[i].off + j + 1);
    struct plan_case adamw = {.n = c.n, .mt = c.n};
    int inside = 0;
    for (int world = 1; world <= 24; world++) {
        struct td_zero_plan p;
        ck_ok(td_zero_plan_make(&p, t, NT, c.n, c.mt, c.qt, c.at, world));
        check_cuts(&p, &c, world);
        check_tensor_cuts(&p, &c, world, &inside);
        check_from_full(&p, &c, full);
        td_zero_plan_free(&p);
        ck_ok(td_zero_plan_make(&p, NULL, 0, c.n, c.n, 0, 0, world)); /* AdamW */
        check_cuts(&p, &adamw, world);
        size_t s = ((c.n + (size_t)world - 1) / (size_t)world + 63) / 64 * 64;
        for (int k = 0; k < world; k++) /* exactly S each but the last (or past the end) */
            ck_assert(p.el[k + 1] - p.el[k] == s || p.el[k + 1] == c.n);
        td_zero_plan_free(&p);
    }
    ck_assert_msg(inside >= 5, "only %d cuts fell inside tensors with F32 moments", inside);
    free(full);
    struct td_zero_plan p;
    struct td_zero_tensor swapped[2] = {t[3], t[1]};
    ck_fails_with(td_zero_plan_make(&p, swapped, 2, c.n, c.mt, c.qt, c.at, 2), LDM_EINVAL,
                  "out of arena order");
    ck_fails_with(td_zero_plan_make(&p, t, NT, c.n, c.mt, c.qt, c.at, 0), LDM_EINVAL, "world 0");
    struct td_zero_tensor odd[2] = {t[0], t[2]};
    odd[1].m_off = 100; /* a slot not 64-aligned */
    ck_fails_with(td_zero_plan_make(&p, odd, 2, c.n, c.mt, 0, 0, 2), LDM_EINVAL,
                  "out of arena order");
    ck_fails_with(td_zero_plan_make(&p, NULL, 0, c.n, c.mt, 0, 0, 2), LDM_EINVAL,
                  "laid out as an arena");
}
END_TEST

Suite *suite_trainer(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_plan);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_flow);
    tcase_add_test(tc, test_feed);
    suite_add_tcase(s, tc);
    tc = tcase_create("zero");
    tcase_add_test(tc, test_zero_plan);
    suite_add_tcase(s, tc);
    return s;
}
