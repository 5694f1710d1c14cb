/* strmap.h — a byte-string → int32 hash map for tokenizer vocabularies.
 *
 * Keys are byte strings with a length (they may hold NUL); the map copies
 * them into its own pool. Entries are numbered in insertion order and never
 * removed, so an entry number stays valid for the life of the map. Built on
 * one thread, then read from any number of threads without locks.
 */
#ifndef LDM_STRMAP_H
#define LDM_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct ldm_strmap_entry {
    size_t off;    /* key's first byte in the pool */
    uint32_t len;  /* key's length */
    int32_t value;
    uint64_t hash;
};

struct ldm_strmap {
    char *pool; /* every key, each followed by a NUL */
    size_t pool_len, pool_cap;
    struct ldm_strmap_entry *ent;
    size_t count, ent_cap;
    uint32_t *slots; /* 0 = empty, else entry number + 1 */
    size_t nslots;   /* a power of two */
};

/* An empty map (a zeroed struct is one too); nothing to free yet. */
void ldm_strmap_init(struct ldm_strmap *m);

/* Free what the map holds and leave it empty. */
void ldm_strmap_free(struct ldm_strmap *m);

/* Set key → value, replacing the value of an existing key. *entry (when not
 * NULL) is the key's entry number. Returns 0, LDM_ENOMEM, or LDM_ERANGE for
 * a key of 4 GiB or more. */
int ldm_strmap_put(struct ldm_strmap *m, const char *key, size_t len, int32_t value,
                   size_t *entry);

/* The value of key, or -1 when absent. */
int32_t ldm_strmap_get(const struct ldm_strmap *m, const char *key, size_t len);

/* Entry number `i`'s key (NUL-terminated; its length in *len when not
 * NULL); owned by the map. */
const char *ldm_strmap_key(const struct ldm_strmap *m, size_t i, size_t *len);

#endif
