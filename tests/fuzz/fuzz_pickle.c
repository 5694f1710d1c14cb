/* fuzz_pickle.c — torch state dicts (zip or legacy container, restricted pickle) from a buffer.
 *
 * Every accepted input must keep its promises (tensors sized by their shape,
 * names sorted and found, data inside the buffer or owned and readable); every
 * rejected one must say why, naming the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static void check_tensor(const struct ldm_pt *pt, const struct ldm_st_tensor *t)
{
    CHECK(t->ndim >= 0 && t->ndim <= LDM_MAXDIM);
    size_t n = ldm_dtype_size(t->dtype);
    CHECK(n > 0);
    for (int i = 0; i < t->ndim; i++) {
        CHECK(t->shape[i] >= 0);
        n *= (size_t)t->shape[i];
    }
    CHECK(n == t->nbytes);
    CHECK(ldm_pt_get(pt, t->name) == t);
    CHECK(ldm_pt_expect(pt, t->name, t->dtype, t->ndim, t->shape, NULL) == 0);
    volatile uint8_t sink = 0;
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        sink ^= p[i];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ldm_pt *pt = NULL;
    ldm_err_clear();
    int rc = ldm_pt_open_buffer(&pt, data, size, "fuzz.pt");
    if (rc != 0) {
        CHECK(pt == NULL);
        CHECK(rc == LDM_EFORMAT || rc == LDM_EUNSUPPORTED || rc == LDM_EDENIED ||
              rc == LDM_ERANGE);
        CHECK(strncmp(ldm_errmsg(), "fuzz.pt: ", 9) == 0);
        return 0;
    }
    const char *prefix = ldm_pt_prefix(pt);
    for (size_t i = 0; i < ldm_pt_count(pt); i++) {
        const struct ldm_st_tensor *t = ldm_pt_at(pt, i);
        check_tensor(pt, t);
        CHECK(strncmp(t->name, prefix, strlen(prefix)) == 0);
        CHECK(i == 0 || strcmp(ldm_pt_at(pt, i - 1)->name, t->name) < 0);
    }
    CHECK(ldm_pt_at(pt, ldm_pt_count(pt)) == NULL);
    ldm_pt_close(&pt);
    return 0;
}
