/* inception_file.c — the FID Inception network from a weight file of either kind:
 * ".safetensors", or a torch state dict (pytorch-fid's
 * pt_inception-2015-12-05-6726825d.pth, .bin, .pt) read by the restricted unpickler,
 * which runs none of the file's code. A state dict nested under a common prefix
 * ({"state_dict": ...}) is read under that prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/inception.h"
#include "models/pickle.h"
#include "nn/tensor.h"
#include "safetensors.h"

struct src {
    struct ldm_st *st;
    struct ldm_pt *pt;
    const char *prefix, *label;
};

static int get(void *user, const char *name, int ndim, const int64_t *shape, float *dst)
{
    struct src *w = user;
    const struct ldm_st_tensor *t = NULL;
    char full[256];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    int rc = w->st ? ldm_st_find(w->st, full, &t) : ldm_pt_find(w->pt, full, &t);
    if (rc)
        return rc;
    int same = t->ndim == ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        same = same && t->shape[i] == shape[i];
        n *= (size_t)shape[i];
    }
    if (!same)
        return ldm_fail(LDM_EFORMAT, "%s: tensor %s has %d dims [%lld, ...], expected %d [%lld, ...]",
                        w->label, full, t->ndim, (long long)(t->ndim ? t->shape[0] : 0), ndim,
                        (long long)(ndim ? shape[0] : 0));
    rc = ldm_convert(dst, LDM_DT_F32, t->data, t->dtype, n);
    return rc ? ldm_fail(rc, "%s: tensor %s: %s", w->label, full, ldm_errmsg()) : 0;
}

int ldm_inception_open_file(struct ldm_inception **out, struct ldm_ctx *ctx, const char *path)
{
    struct src w = {.prefix = "", .label = path};
    size_t n = strlen(path);
    int rc;
    if (n >= 12 && !strcmp(path + n - 12, ".safetensors")) {
        rc = ldm_st_open(&w.st, path);
    } else {
        rc = ldm_pt_open(&w.pt, path);
        if (!rc && !ldm_pt_get(w.pt, "fc.weight"))
            w.prefix = ldm_pt_prefix(w.pt);
    }
    if (!rc)
        rc = ldm_inception_open(out, ctx, get, &w);
    ldm_st_close(&w.st);
    ldm_pt_close(&w.pt);
    return rc;
}
