/* rng.h — a small counter-based deterministic RNG for data augmentation.
 *
 * Every random choice a loader makes for a sample (crop, flip, caption
 * dropout, tag order, which caption) comes from a stream whose key is a hash
 * of (global seed, shard URL, sample key, epoch), so a replay, a restart or
 * another loader draws exactly the same values for that sample, on every
 * machine (no floating point and no platform types in the hashing or the
 * draws).
 *
 * Draw i of a stream is mix(key + (i + 1) * 0x9E3779B97F4A7C15), the
 * SplitMix64 output function over a counter, so draws can also be read at
 * any position (ldm_rng_at). The key derivation absorbs 8-byte little-endian
 * words, each string preceded by its length, through the same mixer. Both
 * are pinned by fixed test vectors: changing them changes every augmentation.
 *
 * A struct ldm_rng is plain data (copy it to fork a replay point); use one
 * per thread. None of these functions fails.
 */
#ifndef LDM_RNG_H
#define LDM_RNG_H

#include <stddef.h>
#include <stdint.h>

struct ldm_rng {
    uint64_t key;     /* the stream */
    uint64_t counter; /* draws taken */
};

/* The SplitMix64 finalizer: a bijection of 64-bit words with full avalanche. */
uint64_t ldm_rng_mix(uint64_t x);

/* The seed of one sample's draws: a hash of the global seed, the shard URL,
 * the sample key and the epoch (NULL strings count as ""). Different
 * (shard, key) splits of the same bytes give different seeds. */
uint64_t ldm_rng_sample_seed(uint64_t global_seed, const char *shard, const char *key,
                             uint64_t epoch);

/* A stream from `seed`, and `stream` to separate purposes drawn from one
 * seed (e.g. 0 geometry, 1 caption), so that drawing more for one purpose
 * does not shift the other. Starts at draw 0. */
void ldm_rng_init(struct ldm_rng *r, uint64_t seed, uint64_t stream);

/* Draw `index` of the stream, without touching the counter. */
uint64_t ldm_rng_at(const struct ldm_rng *r, uint64_t index);

/* The next 64 uniform bits. */
uint64_t ldm_rng_u64(struct ldm_rng *r);

/* Uniform in [0, 1): 53 bits (double) or 24 bits (float); one draw each. */
double ldm_rng_double(struct ldm_rng *r);
float ldm_rng_float(struct ldm_rng *r);

/* Uniform integer in [0, n) without modulo bias (multiply-shift with
 * rejection; a rejection takes another draw, which happens with
 * probability below n / 2^64). n == 0 gives 0 and takes no draw. */
uint64_t ldm_rng_below(struct ldm_rng *r, uint64_t n);

/* 1 with probability p (p <= 0: never, p >= 1: always); always one draw. */
int ldm_rng_bernoulli(struct ldm_rng *r, double p);

/* Shuffle `n` elements of `size` bytes at `base` in place (Fisher–Yates:
 * for i = n-1 down to 1, swap element i with element ldm_rng_below(i + 1),
 * the order Python's random.shuffle uses). Elements of any size. */
void ldm_rng_shuffle(struct ldm_rng *r, void *base, size_t n, size_t size);

#endif
