/* util.c — mktiny's shared pieces: seeded weight values, JSON files, subfolders. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "mktiny.h"

static int is_embedding_table(const char *name)
{
    return strstr(name, "token_embedding.weight") || strstr(name, "position_embedding.weight");
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

void mt_fill(float *x, size_t n, const char *name, int ndim, const int64_t *shape,
             uint64_t seed, uint64_t stream)
{
    struct ldm_rng r;
    ldm_rng_init(&r, seed, stream);
    double fan_in = 1.0;
    for (int i = 1; i < ndim; i++)
        fan_in *= (double)shape[i];
    double bound = 0.02, base = 0.0;
    if (is_embedding_table(name))
        bound = 0.02 * sqrt(3.0); /* uniform with standard deviation 0.02 */
    else if (ndim >= 2)
        bound = 1.0 / sqrt(fan_in);
    else if (ends_with(name, ".weight"))
        base = 1.0, bound = 0.1;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(base + bound * (2.0 * ldm_rng_double(&r) - 1.0));
}

int mt_write_json(const char *dir, const char *name, const json_t *obj)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return ldm_fail(LDM_ERANGE, "%s/%s: path too long", dir, name);
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    if (!text)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    }
    memcpy(t2 + n, "\n", 2);
    int rc = ldm_write_atomic_buf(path, t2, strlen(t2));
    free(t2);
    return rc;
}

int mt_subdir(char *path, size_t size, const char *dir, const char *sub)
{
    if (snprintf(path, size, "%s/%s", dir, sub) >= (int)size)
        return ldm_fail(LDM_ERANGE, "%s/%s: path too long", dir, sub);
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", path);
    return 0;
}
