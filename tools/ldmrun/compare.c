/* compare.c — `ldmrun compare A B [PREFIX_A [PREFIX_B]] [--tol T]`: every tensor of A named
 * PREFIX_A… against B's PREFIX_B… (B the reference), relative error max|a−b| / max|b|. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmrun.h"
#include "nn/tensor.h"

/* t's values as a malloc'd F32 array (F64, F32, F16, BF16 accepted). */
static int as_f32(const struct ldm_st *st, const struct ldm_st_tensor *t, float **out)
{
    size_t es = ldm_dtype_size(t->dtype), n = es ? t->nbytes / es : 0;
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out)
        return ldm_fail(LDM_ENOMEM, "%s: %s", ldm_st_label(st), t->name);
    int rc = ldm_convert(*out, LDM_DT_F32, t->data, t->dtype, n);
    if (rc)
        return ldm_fail(rc, "%s: %s is %s, not a float type", ldm_st_label(st), t->name,
                        ldm_dtype_name(t->dtype));
    return 0;
}

static int same_shape(const struct ldm_st_tensor *a, const struct ldm_st_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static double rel_error(const float *a, const float *b, size_t n)
{
    double emax = 0.0, rmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        emax = isnan(e) || e > emax ? (isnan(e) ? INFINITY : e) : emax;
        rmax = fmax(rmax, fabs((double)b[i]));
    }
    return rmax > 0.0 ? emax / rmax : emax;
}

/* Compare one pair; *rel gets the error. */
static int compare_one(const struct ldm_st *A, const struct ldm_st_tensor *ta,
                       const struct ldm_st *B, const char *nb, double *rel)
{
    const struct ldm_st_tensor *tb;
    int rc = ldm_st_find(B, nb, &tb);
    if (rc)
        return rc;
    if (!same_shape(ta, tb))
        return ldm_fail(LDM_EFORMAT, "%s: %s and %s: %s have other shapes", ldm_st_label(A),
                        ta->name, ldm_st_label(B), nb);
    float *a = NULL, *b = NULL;
    rc = as_f32(A, ta, &a);
    if (!rc)
        rc = as_f32(B, tb, &b);
    if (!rc)
        *rel = rel_error(a, b, ta->nbytes / ldm_dtype_size(ta->dtype));
    free(a);
    free(b);
    return rc;
}

static int compare_files(const struct ldm_st *A, const struct ldm_st *B, const char *pa,
                         const char *pb, double tol)
{
    size_t done = 0, bad = 0, la = strlen(pa);
    for (size_t i = 0; i < ldm_st_count(A); i++) {
        const struct ldm_st_tensor *ta = ldm_st_at(A, i);
        if (strncmp(ta->name, pa, la) != 0)
            continue;
        char nb[1024];
        if (snprintf(nb, sizeof nb, "%s%s", pb, ta->name + la) >= (int)sizeof nb)
            return ldm_fail(LDM_EINVAL, "%s: name too long", ta->name);
        double rel = 0.0;
        int rc = compare_one(A, ta, B, nb, &rel);
        if (rc)
            return rc;
        printf("%s %s vs %s: relative error %.3g\n", rel <= tol ? "ok  " : "FAIL", ta->name, nb,
               rel);
        done++;
        bad += !(rel <= tol);
    }
    if (!done)
        return ldm_fail(LDM_ENOTFOUND, "%s: no tensor named %s*", ldm_st_label(A), pa);
    if (bad)
        return ldm_fail(LDM_ERANGE, "%zu of %zu tensors above %g", bad, done, tol);
    printf("%zu tensors within %g\n", done, tol);
    return 0;
}

int lr_cmd_compare(int argc, char **argv)
{
    const char *pos[4] = {NULL, NULL, "", NULL};
    int npos = 0;
    double tol = 1e-4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            tol = strtod(argv[++i], &end);
            if (errno || *end || !(tol >= 0))
                return ldm_fail(LDM_EINVAL, "--tol: \"%s\" is not a number >= 0", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return ldm_fail(LDM_EINVAL, "compare: unknown option %s", argv[i]);
        } else if (npos < 4) {
            pos[npos++] = argv[i];
        } else {
            return ldm_fail(LDM_EINVAL, "compare: too many arguments");
        }
    }
    if (npos < 2)
        return ldm_fail(LDM_EINVAL, "compare: needs two files");
    struct ldm_st *A = NULL, *B = NULL;
    int rc = ldm_st_open(&A, pos[0]);
    if (!rc)
        rc = ldm_st_open(&B, pos[1]);
    if (!rc)
        rc = compare_files(A, B, pos[2], pos[3] ? pos[3] : pos[2], tol);
    ldm_st_close(&A);
    ldm_st_close(&B);
    return rc;
}
