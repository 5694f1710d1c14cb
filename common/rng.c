/* rng.c — counter-based SplitMix64 streams, sample-seed hashing and the draws built on them. */
#include "rng.h"

#include <string.h>

#define GOLDEN 0x9E3779B97F4A7C15ull
#define TAG_SAMPLE 0x6C646D2D73616D70ull /* "ldm-samp" */
#define TAG_STREAM 0x6C646D2D73747265ull /* "ldm-stre" */

uint64_t ldm_rng_mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Absorb one 64-bit word into the hash state. */
static uint64_t absorb(uint64_t h, uint64_t w)
{
    return ldm_rng_mix(h ^ w) + GOLDEN;
}

/* Absorb a string: its length, then its bytes as little-endian 8-byte words
 * (the last one padded with zeros). */
static uint64_t absorb_str(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    h = absorb(h, (uint64_t)n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        for (size_t k = 0; k < 8 && i + k < n; k++)
            w |= (uint64_t)(unsigned char)s[i + k] << (8 * k);
        h = absorb(h, w);
    }
    return h;
}

uint64_t ldm_rng_sample_seed(uint64_t global_seed, const char *shard, const char *key,
                             uint64_t epoch)
{
    uint64_t h = absorb(TAG_SAMPLE, global_seed);
    h = absorb_str(h, shard);
    h = absorb_str(h, key);
    h = absorb(h, epoch);
    return ldm_rng_mix(h);
}

void ldm_rng_init(struct ldm_rng *r, uint64_t seed, uint64_t stream)
{
    r->key = ldm_rng_mix(absorb(absorb(TAG_STREAM, seed), stream));
    r->counter = 0;
}

uint64_t ldm_rng_at(const struct ldm_rng *r, uint64_t index)
{
    return ldm_rng_mix(r->key + (index + 1) * GOLDEN);
}

uint64_t ldm_rng_u64(struct ldm_rng *r)
{
    return ldm_rng_at(r, r->counter++);
}

double ldm_rng_double(struct ldm_rng *r)
{
    return (double)(ldm_rng_u64(r) >> 11) * 0x1.0p-53;
}

float ldm_rng_float(struct ldm_rng *r)
{
    return (float)(ldm_rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint64_t ldm_rng_below(struct ldm_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Lemire: the high word of x * n is uniform once the low words below
     * 2^64 mod n are rejected. */
    unsigned __int128 m = (unsigned __int128)ldm_rng_u64(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = (unsigned __int128)ldm_rng_u64(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

int ldm_rng_bernoulli(struct ldm_rng *r, double p)
{
    double u = ldm_rng_double(r);
    return u < p;
}

static void swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
    unsigned char tmp[64];
    while (size > 0) {
        size_t k = size < sizeof tmp ? size : sizeof tmp;
        memcpy(tmp, a, k);
        memcpy(a, b, k);
        memcpy(b, tmp, k);
        a += k;
        b += k;
        size -= k;
    }
}

void ldm_rng_shuffle(struct ldm_rng *r, void *base, size_t n, size_t size)
{
    unsigned char *p = base;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ldm_rng_below(r, i);
        if (j != i - 1)
            swap_bytes(p + (i - 1) * size, p + j * size, size);
    }
}
