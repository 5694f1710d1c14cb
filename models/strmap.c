/* strmap.c — open-addressing byte-string → int32 map (FNV-1a hash, linear probing). */
#include "strmap.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

void ldm_strmap_init(struct ldm_strmap *m)
{
    memset(m, 0, sizeof *m);
}

void ldm_strmap_free(struct ldm_strmap *m)
{
    free(m->pool);
    free(m->ent);
    free(m->slots);
    ldm_strmap_init(m);
}

/* The slot holding `key`, or the empty slot where it would go. */
static size_t probe(const struct ldm_strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->nslots - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        uint32_t e = m->slots[s];
        if (e == 0)
            return s;
        const struct ldm_strmap_entry *x = &m->ent[e - 1];
        if (x->hash == h && x->len == len && (len == 0 || memcmp(m->pool + x->off, key, len) == 0))
            return s;
    }
}

static int grow_slots(struct ldm_strmap *m)
{
    size_t n = m->nslots ? m->nslots * 2 : 64;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return ldm_fail(LDM_ENOMEM, "vocabulary map: out of memory");
    free(m->slots);
    m->slots = slots;
    m->nslots = n;
    for (size_t i = 0; i < m->count; i++) {
        size_t mask = n - 1, s = (size_t)m->ent[i].hash & mask;
        while (slots[s])
            s = (s + 1) & mask;
        slots[s] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Room for one more entry and `len` + 1 more pool bytes. */
static int reserve(struct ldm_strmap *m, size_t len)
{
    if (m->count == m->ent_cap) {
        size_t cap = m->ent_cap ? m->ent_cap * 2 : 64;
        struct ldm_strmap_entry *e = realloc(m->ent, cap * sizeof *e);
        if (!e)
            return ldm_fail(LDM_ENOMEM, "vocabulary map: out of memory");
        m->ent = e;
        m->ent_cap = cap;
    }
    if (m->pool_cap - m->pool_len < len + 1) {
        size_t cap = m->pool_cap ? m->pool_cap : 1024;
        while (cap - m->pool_len < len + 1)
            cap *= 2;
        char *p = realloc(m->pool, cap);
        if (!p)
            return ldm_fail(LDM_ENOMEM, "vocabulary map: out of memory");
        m->pool = p;
        m->pool_cap = cap;
    }
    if ((m->count + 1) * 2 > m->nslots)
        return grow_slots(m);
    return 0;
}

int ldm_strmap_put(struct ldm_strmap *m, const char *key, size_t len, int32_t value,
                   size_t *entry)
{
    if (len >= UINT32_MAX || m->count >= UINT32_MAX - 1)
        return ldm_fail(LDM_ERANGE, "vocabulary map: key or map too large");
    uint64_t h = hash_bytes(key, len);
    if (m->nslots) {
        size_t s = probe(m, key, len, h);
        if (m->slots[s]) {
            m->ent[m->slots[s] - 1].value = value;
            if (entry)
                *entry = m->slots[s] - 1;
            return 0;
        }
    }
    int rc = reserve(m, len);
    if (rc)
        return rc;
    struct ldm_strmap_entry *e = &m->ent[m->count];
    e->off = m->pool_len;
    e->len = (uint32_t)len;
    e->value = value;
    e->hash = h;
    if (len)
        memcpy(m->pool + m->pool_len, key, len);
    m->pool[m->pool_len + len] = '\0';
    m->pool_len += len + 1;
    m->slots[probe(m, key, len, h)] = (uint32_t)(m->count + 1);
    if (entry)
        *entry = m->count;
    m->count++;
    return 0;
}

int32_t ldm_strmap_get(const struct ldm_strmap *m, const char *key, size_t len)
{
    if (!m->nslots)
        return -1;
    uint32_t e = m->slots[probe(m, key, len, hash_bytes(key, len))];
    return e ? m->ent[e - 1].value : -1;
}

const char *ldm_strmap_key(const struct ldm_strmap *m, size_t i, size_t *len)
{
    if (len)
        *len = m->ent[i].len;
    return m->pool + m->ent[i].off;
}
