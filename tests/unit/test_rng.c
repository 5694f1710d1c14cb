/* test_rng.c — the augmentation RNG: pinned vectors, separated inputs, uniformity, no bias. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rng.h"
#include "testutil.h"

Suite *suite_rng(void);

#define SHARD "data/pairs-000001.tar"

/* ---- fixed vectors: a change of algorithm changes every augmentation ---------- */

START_TEST(splitmix_reference)
{
    /* SplitMix64's published sequence for seed 1234567 */
    struct ldm_rng r = {.key = 1234567, .counter = 0};
    static const uint64_t want[] = {6457827717110365317ull, 3203168211198807973ull,
                                    9817491932198370423ull, 4593380528125082431ull,
                                    16408922859458223821ull};
    for (int i = 0; i < 5; i++)
        ck_assert_msg(ldm_rng_u64(&r) == want[i], "draw %d", i);
    ck_assert(ldm_rng_mix(1) == 0x5692161d100b05e5ull);
    ck_assert(ldm_rng_mix(UINT64_MAX) == 0xb4d055fcf2cbbd7bull);
}
END_TEST

START_TEST(sample_seed_vectors)
{
    ck_assert(ldm_rng_sample_seed(42, SHARD, "000123", 3) == 0x00804af6b3d47f0bull);
    ck_assert(ldm_rng_sample_seed(42, SHARD, "000123", 4) == 0x6af51d2e9d3dee05ull);
    ck_assert(ldm_rng_sample_seed(0, "", "", 0) == 0x1ad7767e253d8268ull);
    ck_assert(ldm_rng_sample_seed(0, NULL, NULL, 0) == 0x1ad7767e253d8268ull);
    ck_assert(ldm_rng_sample_seed(42, "abcdefghijklmnopqrstuvwxyz0123456789", "k", 0) ==
              0x69e7e31e190a7a36ull);
}
END_TEST

START_TEST(stream_vectors)
{
    struct ldm_rng r;
    uint64_t seed = ldm_rng_sample_seed(42, SHARD, "000123", 3);
    ldm_rng_init(&r, seed, 0);
    ck_assert(ldm_rng_u64(&r) == 0xaf86003fde002603ull);
    ck_assert(ldm_rng_u64(&r) == 0xa79a90506268a5cbull);
    ck_assert(ldm_rng_u64(&r) == 0xb56325146055f3edull);
    ck_assert(ldm_rng_u64(&r) == 0xc82684a3b526c3dbull);
    ck_assert(r.counter == 4);
    ck_assert(ldm_rng_at(&r, 1) == 0xa79a90506268a5cbull); /* random access */
    ldm_rng_init(&r, seed, 1);
    ck_assert(ldm_rng_u64(&r) == 0xd695a91bc91432ddull);
    ck_assert(ldm_rng_u64(&r) == 0xf2653919d825872eull);
}
END_TEST

START_TEST(draw_vectors)
{
    struct ldm_rng r;
    ldm_rng_init(&r, 7, 0);
    static const uint64_t below10[] = {9, 9, 0, 9, 3, 3, 6, 9, 9, 2};
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(ldm_rng_below(&r, 10), below10[i]);
    ldm_rng_init(&r, 7, 0);
    ck_assert(ldm_rng_double(&r) == 0.9015656299260438);
    ck_assert(ldm_rng_double(&r) == 0.9958357795019249);
    ck_assert(ldm_rng_double(&r) == 0.09810738066587998);
    ldm_rng_init(&r, 9, 0);
    int a[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const int want[10] = {7, 2, 0, 3, 1, 4, 8, 5, 9, 6};
    ldm_rng_shuffle(&r, a, 10, sizeof a[0]);
    ck_assert_mem_eq(a, want, sizeof want);
}
END_TEST

/* ---- the seed separates every input ----------------------------------------------- */

START_TEST(seed_inputs_matter)
{
    uint64_t base = ldm_rng_sample_seed(1, SHARD, "k1", 0);
    ck_assert(base == ldm_rng_sample_seed(1, SHARD, "k1", 0));
    ck_assert(base != ldm_rng_sample_seed(2, SHARD, "k1", 0));
    ck_assert(base != ldm_rng_sample_seed(1, "data/pairs-000002.tar", "k1", 0));
    ck_assert(base != ldm_rng_sample_seed(1, SHARD, "k2", 0));
    ck_assert(base != ldm_rng_sample_seed(1, SHARD, "k1", 1));
    /* moving bytes between shard and key, or padding with NULs, changes it */
    ck_assert(ldm_rng_sample_seed(1, "ab", "c", 0) != ldm_rng_sample_seed(1, "a", "bc", 0));
    ck_assert(ldm_rng_sample_seed(1, "abcdefgh", "", 0) !=
              ldm_rng_sample_seed(1, "", "abcdefgh", 0));
    ck_assert(ldm_rng_sample_seed(1, "a", "", 0) != ldm_rng_sample_seed(1, "", "a", 0));
    struct ldm_rng a, b;
    ldm_rng_init(&a, base, 0);
    ldm_rng_init(&b, base, 1);
    ck_assert(ldm_rng_u64(&a) != ldm_rng_u64(&b));
}
END_TEST

START_TEST(copy_replays)
{
    struct ldm_rng r, saved;
    ldm_rng_init(&r, 123, 0);
    ldm_rng_u64(&r);
    saved = r;
    uint64_t x = ldm_rng_u64(&r), y = ldm_rng_below(&r, 1000);
    ck_assert(ldm_rng_u64(&saved) == x);
    ck_assert(ldm_rng_below(&saved, 1000) == y);
}
END_TEST

/* ---- distributions -------------------------------------------------------------------- */

START_TEST(uniform_floats)
{
    struct ldm_rng r;
    ldm_rng_init(&r, 2024, 0);
    const int n = 200000;
    double sum = 0, sum2 = 0;
    int bins[10] = {0};
    for (int i = 0; i < n; i++) {
        double u = i % 2 ? ldm_rng_double(&r) : (double)ldm_rng_float(&r);
        ck_assert(u >= 0 && u < 1);
        sum += u;
        sum2 += u * u;
        bins[(int)(u * 10)]++;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    ck_assert_msg(fabs(mean - 0.5) < 0.005, "mean %f", mean);
    ck_assert_msg(fabs(var - 1.0 / 12) < 0.002, "variance %f", var);
    double chi2 = 0;
    for (int b = 0; b < 10; b++)
        chi2 += (bins[b] - n / 10.0) * (bins[b] - n / 10.0) / (n / 10.0);
    ck_assert_msg(chi2 < 27.9, "chi-square %f over 9 degrees of freedom", chi2); /* p = 0.001 */
}
END_TEST

START_TEST(below_chi_square)
{
    struct ldm_rng r;
    ldm_rng_init(&r, 77, 0);
    const int n = 170000, k = 17;
    int bins[17] = {0};
    for (int i = 0; i < n; i++) {
        uint64_t v = ldm_rng_below(&r, k);
        ck_assert(v < (uint64_t)k);
        bins[v]++;
    }
    double chi2 = 0, e = (double)n / k;
    for (int b = 0; b < k; b++)
        chi2 += (bins[b] - e) * (bins[b] - e) / e;
    ck_assert_msg(chi2 < 39.3, "chi-square %f over 16 degrees of freedom", chi2); /* p = 0.001 */
    ck_assert_uint_eq(ldm_rng_below(&r, 1), 0);
    uint64_t c = r.counter;
    ck_assert_uint_eq(ldm_rng_below(&r, 0), 0);
    ck_assert(r.counter == c); /* n == 0 takes no draw */
}
END_TEST

START_TEST(below_unbiased_large_n)
{
    /* n = 3 * 2^62: "x % n" would give values below 2^62 half the time; an
     * unbiased draw gives them a third of the time. */
    struct ldm_rng r;
    ldm_rng_init(&r, 5, 0);
    const uint64_t n = 3ull << 62;
    const int draws = 60000;
    int low = 0;
    for (int i = 0; i < draws; i++) {
        uint64_t v = ldm_rng_below(&r, n);
        ck_assert(v < n);
        low += v < (1ull << 62);
    }
    double frac = (double)low / draws;
    ck_assert_msg(fabs(frac - 1.0 / 3) < 0.01, "fraction below 2^62: %f", frac);
    ck_assert(r.counter > (uint64_t)draws); /* rejections happened (p = 1/4 each) */
}
END_TEST

START_TEST(bernoulli_rates)
{
    struct ldm_rng r;
    ldm_rng_init(&r, 11, 0);
    const int n = 100000;
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += ldm_rng_bernoulli(&r, 0.3);
    ck_assert_msg(fabs(hits / (double)n - 0.3) < 0.006, "rate %f", hits / (double)n);
    uint64_t c = r.counter;
    ck_assert_int_eq(ldm_rng_bernoulli(&r, 0), 0);
    ck_assert_int_eq(ldm_rng_bernoulli(&r, -1), 0);
    ck_assert_int_eq(ldm_rng_bernoulli(&r, 1), 1);
    ck_assert_int_eq(ldm_rng_bernoulli(&r, 2), 1);
    ck_assert(r.counter == c + 4); /* always one draw */
}
END_TEST

START_TEST(shuffle_uniform_permutations)
{
    /* all 24 orders of 4 elements about equally often */
    struct ldm_rng r;
    ldm_rng_init(&r, 3, 0);
    int counts[4 * 4 * 4 * 4] = {0};
    const int n = 48000;
    for (int i = 0; i < n; i++) {
        unsigned char a[4] = {0, 1, 2, 3};
        ldm_rng_shuffle(&r, a, 4, 1);
        counts[a[0] * 64 + a[1] * 16 + a[2] * 4 + a[3]]++;
    }
    int distinct = 0;
    double chi2 = 0, e = n / 24.0;
    for (int i = 0; i < 256; i++)
        if (counts[i]) {
            distinct++;
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
        }
    ck_assert_int_eq(distinct, 24);
    ck_assert_msg(chi2 < 49.7, "chi-square %f over 23 degrees of freedom", chi2); /* p = 0.001 */
}
END_TEST

START_TEST(shuffle_any_size)
{
    struct big {
        char text[100];
    } items[5];
    for (int i = 0; i < 5; i++) {
        memset(items[i].text, 'a' + i, sizeof items[i].text);
    }
    struct ldm_rng r;
    ldm_rng_init(&r, 1, 0);
    ldm_rng_shuffle(&r, items, 5, sizeof items[0]);
    int seen = 0;
    for (int i = 0; i < 5; i++) {
        char c = items[i].text[0];
        for (size_t k = 0; k < sizeof items[i].text; k++)
            ck_assert_int_eq(items[i].text[k], c); /* elements moved whole */
        seen |= 1 << (c - 'a');
    }
    ck_assert_int_eq(seen, 31);
    ldm_rng_shuffle(&r, items, 0, sizeof items[0]); /* no elements: nothing happens */
    ldm_rng_shuffle(&r, items, 1, sizeof items[0]);
}
END_TEST

Suite *suite_rng(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, splitmix_reference);
    tcase_add_test(tc, sample_seed_vectors);
    tcase_add_test(tc, stream_vectors);
    tcase_add_test(tc, draw_vectors);
    tcase_add_test(tc, seed_inputs_matter);
    tcase_add_test(tc, copy_replays);
    tcase_add_test(tc, uniform_floats);
    tcase_add_test(tc, below_chi_square);
    tcase_add_test(tc, below_unbiased_large_n);
    tcase_add_test(tc, bernoulli_rates);
    tcase_add_test(tc, shuffle_uniform_permutations);
    tcase_add_test(tc, shuffle_any_size);
    suite_add_tcase(s, tc);
    return s;
}
