/* fuzz_npz.c — .npz archives and .npy arrays read from a buffer.
 *
 * The input is tried as a .npy and as a .npz. What is accepted must be
 * consistent (sizes match shapes) and survive a round trip through the
 * encoders (stored or deflated, zip64 or not, chosen by the input's first
 * byte); what is rejected must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_KEEP 8
#define MAX_ROUND_TRIP (1u << 20) /* bytes; larger arrays are only read */

static int same(const struct ldm_array *a, const struct ldm_array *b)
{
    return a->dtype == b->dtype && a->ndim == b->ndim &&
           memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0 &&
           a->nbytes == b->nbytes && (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

static void check_array(const struct ldm_array *a)
{
    CHECK(a->dtype == LDM_DT_F32 || a->dtype == LDM_DT_F64);
    CHECK(ldm_array_count(a) * ldm_dtype_size(a->dtype) == a->nbytes);
    CHECK(a->data != NULL);
}

static void rejected(int rc, const char *label)
{
    CHECK(rc == LDM_EFORMAT || rc == LDM_EUNSUPPORTED || rc == LDM_ENOTFOUND);
    CHECK(strncmp(ldm_errmsg(), label, strlen(label)) == 0);
}

static void try_npy(const uint8_t *data, size_t size)
{
    struct ldm_array a, b;
    ldm_err_clear();
    int rc = ldm_npy_read_buffer(data, size, "fuzz.npy", &a);
    if (rc != 0) {
        rejected(rc, "fuzz.npy: ");
        return;
    }
    check_array(&a);
    void *img;
    size_t len;
    CHECK(ldm_npy_encode(&a, &img, &len) == 0);
    CHECK(ldm_npy_read_buffer(img, len, "copy", &b) == 0 && same(&a, &b));
    free(img);
    ldm_array_free(&b);
    ldm_array_free(&a);
}

/* Write the arrays kept, read them back, compare. */
static void round_trip(const struct ldm_npz_entry *e, size_t n, int flags)
{
    void *img;
    size_t len;
    CHECK(ldm_npz_encode(e, n, flags, &img, &len) == 0);
    struct ldm_npz *z = NULL;
    CHECK(ldm_npz_open_buffer(&z, img, len, "copy") == 0 && ldm_npz_count(z) == n);
    for (size_t i = 0; i < n; i++) {
        struct ldm_array b;
        CHECK(strcmp(ldm_npz_name(z, i), e[i].name) == 0);
        CHECK(ldm_npz_read(z, e[i].name, &b) == 0 && same(e[i].array, &b));
        ldm_array_free(&b);
    }
    ldm_npz_close(&z);
    free(img);
}

static void try_npz(const uint8_t *data, size_t size)
{
    struct ldm_npz *z = NULL;
    ldm_err_clear();
    int rc = ldm_npz_open_buffer(&z, data, size, "fuzz.npz");
    if (rc != 0) {
        CHECK(z == NULL);
        rejected(rc, "fuzz.npz: ");
        return;
    }
    struct ldm_array keep[MAX_KEEP];
    struct ldm_npz_entry e[MAX_KEEP];
    size_t k = 0;
    for (size_t i = 0; i < ldm_npz_count(z); i++) {
        const char *name = ldm_npz_name(z, i);
        struct ldm_array a;
        ldm_err_clear();
        rc = ldm_npz_read(z, name, &a);
        if (rc != 0) {
            rejected(rc, "fuzz.npz: ");
            continue;
        }
        check_array(&a);
        size_t nlen = strlen(name);
        if (k < MAX_KEEP && a.nbytes <= MAX_ROUND_TRIP && nlen > 0 && nlen <= 0xffff - 4) {
            keep[k] = a;
            e[k] = (struct ldm_npz_entry){name, &keep[k]};
            k++;
        } else {
            ldm_array_free(&a);
        }
    }
    if (k > 0)
        round_trip(e, k, size > 0 ? data[0] & 3 : 0);
    for (size_t i = 0; i < k; i++)
        ldm_array_free(&keep[i]);
    ldm_npz_close(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_npy(data, size);
    try_npz(data, size);
    return 0;
}
