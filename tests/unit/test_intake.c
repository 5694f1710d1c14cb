/* test_intake.c — encoderd's sample path over a real PULL socket with the golden tiny VAE
 * and CLIP text model: good samples become records, tombstones and bad messages are counted
 * per reason (and marked processed when identifiable), duplicates are stored once. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "encoderd/encode.h"
#include "encoderd/intake.h"
#include "log.h"
#include "nn/tensor.h"
#include "testutil.h"

Suite *suite_intake(void);

#define EP "inproc://intake-test"
#define SIDE 16

static char *dir;
static void *zctx, *pull, *push;
static struct ldm_store *S;
static struct encoderd_models *M;
static struct encoderd_intake *I;
static _Atomic uint64_t received, committed, dups, tombs, errors, batches, rej[LDM_SR_COUNT + 1];

static int sdxl; /* the fixture adds text_encoder_2 and takes penultimate states */

static void setup(void)
{
    char p[4096], q[4200], data[PATH_MAX];
    dir = tu_tmpdir();
    ck_assert_ptr_nonnull(realpath(tu_data_dir(), data));
    ldm_log_set_level(LDM_LOG_ERROR);
    snprintf(p, sizeof p, "%s/model", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/model/vae", dir);
    snprintf(q, sizeof q, "%s/golden/vae", data);
    ck_assert_int_eq(symlink(q, p), 0);
    snprintf(p, sizeof p, "%s/model/text_encoder", dir);
    snprintf(q, sizeof q, "%s/golden/clip_text_quickgelu", data);
    ck_assert_int_eq(symlink(q, p), 0);
    snprintf(p, sizeof p, "%s/model/text_encoder_2", dir);
    if (sdxl)
        ck_assert_int_eq(symlink(q, p), 0);
    snprintf(p, sizeof p, "%s/model", dir);
    struct encoderd_model_opts mo = {p, "cpu", 1, sdxl, !sdxl};
    ck_ok(encoderd_models_open(&M, &mo));
    snprintf(p, sizeof p, "%s/cache", dir);
    ck_ok(ldm_store_open(p, NULL, &S));
    zctx = zmq_ctx_new();
    pull = zmq_socket(zctx, ZMQ_PULL);
    push = zmq_socket(zctx, ZMQ_PUSH);
    ck_assert_int_eq(zmq_bind(pull, EP), 0);
    ck_assert_int_eq(zmq_connect(push, EP), 0);
    struct encoderd_intake_opts o = {pull, S, M, {0}, 2, 50,
                                     {&received, &committed, &dups, &tombs, &errors, &batches, {0}}};
    for (int r = 0; r <= LDM_SR_COUNT; r++)
        o.c.rejected[r] = &rej[r];
    ldm_sample_limits_init(&o.lim);
    encoderd_models_vocab(M, &o.lim.vocab, &o.lim.vocab_2);
    if (!sdxl)
        o.lim.vocab_2 = 1;
    ck_ok(encoderd_intake_start(&I, &o));
}

static void teardown(void)
{
    encoderd_intake_stop(&I);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(zctx);
    encoderd_models_free(&M);
    ldm_store_close(&S);
    tu_rmtree(dir);
    free(dir);
}

/* Send a sample of shard "s.tar": index i, n_ids token ids, pixel frame of
 * pix bytes (-1: none), tombstone reason (NULL: none). */
static void send_sample(uint64_t i, size_t n_ids, long pix, const char *rejected)
{
    Ldmpipe__Sample s = LDMPIPE__SAMPLE__INIT;
    Ldmpipe__ImageLayout lay = LDMPIPE__IMAGE_LAYOUT__INIT;
    char key[16];
    uint32_t ids[64];
    snprintf(key, sizeof key, "%06llu", (unsigned long long)i);
    s.version = 1;
    s.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    s.shard = (ProtobufCBinaryData){5, (uint8_t *)"s.tar"};
    s.index = i;
    if (rejected)
        s.rejected = (ProtobufCBinaryData){strlen(rejected), (uint8_t *)rejected};
    else {
        for (size_t k = 0; k < n_ids; k++)
            ids[k] = (uint32_t)(k == n_ids - 1 ? 999 : (i * 7 + k) % 900);
        s.n_input_ids = n_ids;
        s.input_ids = ids;
        if (sdxl) {
            s.n_input_ids_2 = n_ids;
            s.input_ids_2 = ids;
        }
        s.original_height = s.original_width = s.target_height = s.target_width = SIDE;
        lay.height = lay.width = SIDE;
        lay.channels = 3;
        lay.dtype = LDMPIPE__DTYPE__DTYPE_UINT8;
        s.image = &lay;
    }
    size_t len = ldmpipe__sample__get_packed_size(&s);
    uint8_t *buf = malloc(len);
    ldmpipe__sample__pack(&s, buf);
    ck_assert_int_ge(zmq_send(push, buf, len, pix >= 0 ? ZMQ_SNDMORE : 0), 0);
    if (pix >= 0) {
        uint8_t *px = malloc((size_t)pix + 1);
        for (long k = 0; k < pix; k++)
            px[k] = (uint8_t)(k * 13 + i);
        ck_assert_int_ge(zmq_send(push, px, (size_t)pix, 0), 0);
        free(px);
    }
    free(buf);
}

static void wait_received(uint64_t n)
{
    for (int t = 0; t < 400 && atomic_load(&received) < n; t++)
        usleep(10000);
    ck_assert_uint_eq(atomic_load(&received), n);
}

START_TEST(test_records)
{
    for (uint64_t i = 0; i < 3; i++)
        send_sample(i, 16, SIDE * SIDE * 3, NULL);
    send_sample(3, 0, -1, "decode");
    send_sample(0, 16, SIDE * SIDE * 3, NULL); /* again */
    wait_received(5);
    encoderd_intake_stop(&I); /* flushes the batches in hand */
    ck_assert_uint_eq(atomic_load(&committed), 3);
    ck_assert_uint_eq(atomic_load(&dups), 1);
    ck_assert_uint_eq(atomic_load(&tombs), 1);
    ck_assert_uint_eq(atomic_load(&errors), 0);
    struct ldm_shard_info info;
    ck_ok(ldm_store_shard_get(S, "s.tar", &info));
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 4);
    ck_assert_uint_eq(info.stored, 3);
    ldm_shard_info_free(&info);
    struct ldm_store_txn *t = NULL;
    struct ldm_record r;
    ck_ok(ldm_store_read_begin(S, &t));
    ck_ok(ldm_store_get(t, "s.tar/000001", &r));
    ck_ok(ldm_record_check_crc(&r, "s.tar/000001"));
    ck_assert_uint_eq(r.hdr.latent_c, 4);
    ck_assert_uint_eq(r.hdr.latent_h, SIDE / 4);
    ck_assert_uint_eq(r.hdr.text_len, 16);
    ck_assert_uint_eq(r.hdr.text_dim, 32);
    ck_assert_uint_eq(r.hdr.n_ids, 16);
    ck_assert(r.hdr.flags & LDM_REC_FLIPPED);
    ck_assert_uint_eq(ldm_record_u32(r.sec.ids, 15), 999);
    size_t nl = 4 * (SIDE / 4) * (SIDE / 4), differ = 0;
    for (size_t k = 0; k < nl; k++) {
        float m = ldm_f16_to_f32(ldm_record_f16(r.sec.mean, k));
        float f = ldm_f16_to_f32(ldm_record_f16(r.sec.flip_mean, k));
        ck_assert(isfinite(m) && isfinite(f));
        differ += m != f;
    }
    ck_assert_uint_gt(differ, 0); /* the mirrored image has its own latent */
    ck_assert_int_eq(ldm_store_get(t, "s.tar/000003", &r), LDM_ENOTFOUND);
    ldm_store_read_end(&t);
}
END_TEST

START_TEST(test_rejects)
{
    ck_assert_int_ge(zmq_send(push, "garbage!", 8, 0), 0);     /* not a Sample */
    send_sample(0, 16, SIDE * SIDE * 3 - 1, NULL);             /* short pixel frame */
    send_sample(1, 20, SIDE * SIDE * 3, NULL);                 /* more ids than positions */
    send_sample(2, 16, SIDE * SIDE * 3, NULL);                 /* good */
    wait_received(4);
    encoderd_intake_stop(&I);
    ck_assert_uint_eq(atomic_load(&rej[LDM_SR_MESSAGE]), 1);
    ck_assert_uint_eq(atomic_load(&rej[LDM_SR_PIXELS]), 1);
    ck_assert_uint_eq(atomic_load(&rej[LDM_SR_COUNT]), 1);
    ck_assert_uint_eq(atomic_load(&committed), 1);
    /* the identifiable rejects count as processed, so the shard can settle */
    struct ldm_shard_info info;
    ck_ok(ldm_store_shard_get(S, "s.tar", &info));
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 3);
    ck_assert_uint_eq(info.rejected, 2);
    ldm_shard_info_free(&info);
}
END_TEST

static void setup_sdxl(void)
{
    sdxl = 1;
    setup();
}

static void teardown_sdxl(void)
{
    teardown();
    sdxl = 0;
}

/* Two encoders: penultimate states side by side, the second's projected
 * pooled embedding, both id lists. */
START_TEST(test_two_encoders)
{
    send_sample(0, 16, SIDE * SIDE * 3, NULL);
    wait_received(1);
    encoderd_intake_stop(&I);
    ck_assert_uint_eq(atomic_load(&committed), 1);
    struct ldm_store_txn *t = NULL;
    struct ldm_record r;
    ck_ok(ldm_store_read_begin(S, &t));
    ck_ok(ldm_store_get(t, "s.tar/000000", &r));
    ck_assert_uint_eq(r.hdr.text_dim, 64);
    ck_assert_uint_eq(r.hdr.pooled_dim, 24);
    ck_assert(r.hdr.flags & LDM_REC_POOLED);
    ck_assert(!(r.hdr.flags & LDM_REC_FLIPPED));
    ck_assert_uint_eq(r.hdr.n_ids, 32);
    /* the same encoder twice: both halves of each row are equal */
    for (size_t k = 0; k < 32; k++)
        ck_assert_uint_eq(ldm_record_f16(r.sec.text, k), ldm_record_f16(r.sec.text, 32 + k));
    ldm_store_read_end(&t);
}
END_TEST

Suite *suite_intake(void)
{
    Suite *s = suite_create("intake");
    TCase *tc = tcase_create("intake");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_records);
    tcase_add_test(tc, test_rejects);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("two_encoders");
    tcase_set_timeout(tc2, 60);
    tcase_add_checked_fixture(tc2, setup_sdxl, teardown_sdxl);
    tcase_add_test(tc2, test_two_encoders);
    suite_add_tcase(s, tc2);
    return s;
}
