/* fuzz_safetensors.c — safetensors header and data parsing from a buffer.
 *
 * Every accepted input must keep its promises (each tensor inside the buffer,
 * sized by its shape, found by its name, names sorted) and survive a round
 * trip through ldm_st_encode unchanged; every rejected one must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static void check_tensor(const struct ldm_st *st, const struct ldm_st_tensor *t,
                         const uint8_t *data, size_t size)
{
    const uint8_t *p = t->data;
    CHECK(p >= data && p <= data + size && t->nbytes <= (size_t)(data + size - p));
    CHECK(t->ndim >= 0 && t->ndim <= LDM_MAXDIM);
    size_t n = ldm_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    CHECK(n == t->nbytes);
    CHECK(ldm_st_get(st, t->name) == t);
    volatile uint8_t sink = 0;
    if (t->nbytes)
        sink ^= p[0] ^ p[t->nbytes - 1];
    (void)sink;
}

/* Encode what was read, open the image, and expect the same tensors. */
static void round_trip(const struct ldm_st *st)
{
    size_t n = ldm_st_count(st), nm = ldm_st_meta_count(st), len;
    struct ldm_st_tensor *t = calloc(n + 1, sizeof *t);
    struct ldm_st_kv *kv = calloc(nm + 1, sizeof *kv);
    CHECK(t && kv);
    for (size_t i = 0; i < n; i++)
        t[i] = *ldm_st_at(st, i);
    for (size_t i = 0; i < nm; i++)
        kv[i].key = ldm_st_meta_at(st, i, &kv[i].value);
    void *img = NULL;
    CHECK(ldm_st_encode(&img, &len, t, n, kv, nm) == 0);
    struct ldm_st *back = NULL;
    CHECK(ldm_st_open_buffer(&back, img, len, "copy") == 0);
    CHECK(ldm_st_count(back) == n && ldm_st_meta_count(back) == nm);
    for (size_t i = 0; i < n; i++) {
        const struct ldm_st_tensor *a = &t[i], *b = ldm_st_at(back, i);
        CHECK(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim);
        CHECK(memcmp(a->shape, b->shape, sizeof a->shape) == 0 && a->nbytes == b->nbytes);
        CHECK(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
        CHECK((uintptr_t)((const uint8_t *)b->data - (const uint8_t *)img) %
                  ldm_dtype_size(b->dtype) ==
              0);
    }
    for (size_t i = 0; i < nm; i++)
        CHECK(strcmp(ldm_st_meta(back, kv[i].key), kv[i].value) == 0);
    ldm_st_close(&back);
    free(img);
    free(t);
    free(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ldm_st *st = NULL;
    ldm_err_clear();
    int rc = ldm_st_open_buffer(&st, data, size, "fuzz.safetensors");
    if (rc != 0) {
        CHECK(st == NULL && (rc == LDM_EFORMAT || rc == LDM_EUNSUPPORTED));
        CHECK(strncmp(ldm_errmsg(), "fuzz.safetensors: ", 18) == 0);
        return 0;
    }
    for (size_t i = 0; i < ldm_st_count(st); i++) {
        check_tensor(st, ldm_st_at(st, i), data, size);
        CHECK(i == 0 || strcmp(ldm_st_at(st, i - 1)->name, ldm_st_at(st, i)->name) < 0);
    }
    for (size_t i = 0; i < ldm_st_meta_count(st); i++) {
        const char *v, *k = ldm_st_meta_at(st, i, &v);
        CHECK(ldm_st_meta(st, k) == v);
    }
    round_trip(st);
    ldm_st_close(&st);
    return 0;
}
