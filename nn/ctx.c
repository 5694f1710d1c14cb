/* ctx.c — compute contexts: picking a backend, workspace, planning, backend memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"

static const char *const op_names[LDM_OP_COUNT] = {
    [LDM_OP_LINEAR_FWD] = "linear forward",
    [LDM_OP_LINEAR_BWD] = "linear backward",
    [LDM_OP_BMM_FWD] = "bmm forward",
    [LDM_OP_BMM_BWD] = "bmm backward",
    [LDM_OP_CONV2D_FWD] = "conv2d forward",
    [LDM_OP_CONV2D_BWD] = "conv2d backward",
    [LDM_OP_GROUP_NORM_FWD] = "group_norm forward",
    [LDM_OP_GROUP_NORM_BWD] = "group_norm backward",
    [LDM_OP_LAYER_NORM_FWD] = "layer_norm forward",
    [LDM_OP_LAYER_NORM_BWD] = "layer_norm backward",
    [LDM_OP_ACT_FWD] = "act forward",
    [LDM_OP_ACT_BWD] = "act backward",
    [LDM_OP_GEGLU_FWD] = "geglu forward",
    [LDM_OP_GEGLU_BWD] = "geglu backward",
    [LDM_OP_SOFTMAX_FWD] = "softmax forward",
    [LDM_OP_SOFTMAX_BWD] = "softmax backward",
    [LDM_OP_ATTN_FWD] = "attention forward",
    [LDM_OP_ATTN_BWD] = "attention backward",
    [LDM_OP_UPSAMPLE_FWD] = "upsample_nearest2x forward",
    [LDM_OP_UPSAMPLE_BWD] = "upsample_nearest2x backward",
    [LDM_OP_AVG_POOL_FWD] = "avg_pool2d forward",
    [LDM_OP_AVG_POOL_BWD] = "avg_pool2d backward",
    [LDM_OP_MAX_POOL_FWD] = "max_pool2d forward",
    [LDM_OP_MAX_POOL_BWD] = "max_pool2d backward",
    [LDM_OP_ADAPTIVE_POOL_FWD] = "adaptive_avg_pool2d forward",
    [LDM_OP_ADAPTIVE_POOL_BWD] = "adaptive_avg_pool2d backward",
    [LDM_OP_BILINEAR_FWD] = "bilinear forward",
    [LDM_OP_BILINEAR_BWD] = "bilinear backward",
    [LDM_OP_CONCAT_FWD] = "concat forward",
    [LDM_OP_CONCAT_BWD] = "concat backward",
    [LDM_OP_TRANSPOSE_FWD] = "transpose forward",
    [LDM_OP_TRANSPOSE_BWD] = "transpose backward",
    [LDM_OP_ADD_FWD] = "add forward",
    [LDM_OP_ADD_BWD] = "add backward",
    [LDM_OP_ADD_BCAST_FWD] = "add_bcast forward",
    [LDM_OP_ADD_BCAST_BWD] = "add_bcast backward",
    [LDM_OP_TEMB] = "timestep_embedding",
    [LDM_OP_EMBEDDING_FWD] = "embedding forward",
    [LDM_OP_EMBEDDING_BWD] = "embedding backward",
    [LDM_OP_MSE_FWD] = "mse_loss forward",
    [LDM_OP_MSE_BWD] = "mse_loss backward",
    [LDM_OP_CLIP_NORM] = "clip_grad_norm",
    [LDM_OP_ADAMW] = "adamw_step",
    [LDM_OP_ADAMW8] = "adamw8_step",
    [LDM_OP_CAST] = "cast",
    [LDM_OP_EMA] = "ema_update",
};

const char *ldm_op_name(int op)
{
    if (op < 0 || op >= LDM_OP_COUNT || !op_names[op])
        return "unknown op";
    return op_names[op];
}

/* "cpu" -> CPU; "cuda" or "cuda:N" -> CUDA device N. */
static int parse_device(const char *device, int *kind, int *index)
{
    *index = 0;
    if (strcmp(device, "cpu") == 0) {
        *kind = LDM_DEV_CPU;
        return 0;
    }
    if (strncmp(device, "cuda", 4) == 0) {
        *kind = LDM_DEV_CUDA;
        const char *p = device + 4;
        if (*p == '\0')
            return 0;
        if (*p == ':' && p[1] >= '0' && p[1] <= '9') {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (*end == '\0' && v < 1024) {
                *index = (int)v;
                return 0;
            }
        }
    }
    return ldm_fail(LDM_EINVAL, "device \"%s\": expected cpu, cuda or cuda:N", device);
}

int ldm_ctx_open(struct ldm_ctx **out, const char *device, int threads)
{
    *out = NULL;
    int kind, index;
    int rc = parse_device(device ? device : "cpu", &kind, &index);
    if (rc)
        return rc;
    const struct ldm_backend *be = &ldm_cpu_backend;
    if (kind != LDM_DEV_CPU) {
        be = ldm_cuda_backend_get();
        if (!be)
            return ldm_fail(LDM_EUNSUPPORTED, "device \"%s\": this build has no CUDA op backend",
                            device);
    }
    struct ldm_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ldm_fail(LDM_ENOMEM, "compute context: out of memory");
    c->be = be;
    c->device = kind;
    c->index = index;
    c->threads = threads;
    rc = c->be->open(c);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void ldm_ctx_close(struct ldm_ctx **pc)
{
    if (*pc) {
        free((*pc)->prof);
        (*pc)->prof = NULL;
    }
    struct ldm_ctx *c = *pc;
    if (!c)
        return;
    if (c->ws_owned && c->ws)
        c->be->free(c, c->ws);
    c->be->close(c);
    free(c);
    *pc = NULL;
}

void ldm_ctx_set_workspace(struct ldm_ctx *c, void *ws, size_t bytes)
{
    if (c->ws_owned && c->ws)
        c->be->free(c, c->ws);
    c->ws = ws;
    c->ws_bytes = ws ? bytes : 0;
    c->ws_owned = 0;
}

int ldm_ctx_reserve(struct ldm_ctx *c, size_t bytes)
{
    if (bytes <= c->ws_bytes && c->ws)
        return 0;
    void *p = NULL;
    int rc = c->be->alloc(c, bytes, &p);
    if (rc)
        return rc;
    ldm_ctx_set_workspace(c, p, bytes);
    c->ws_owned = 1;
    return 0;
}

void ldm_ctx_plan_begin(struct ldm_ctx *c)
{
    c->planning = 1;
    c->ws_need = 0;
}

void ldm_ctx_plan_end(struct ldm_ctx *c, size_t *bytes)
{
    c->planning = 0;
    if (bytes)
        *bytes = c->ws_need;
}

/* The context's device current on this thread (backend.h: bind). */
static int bind(struct ldm_ctx *c)
{
    return c->be->bind ? c->be->bind(c) : 0;
}

int ldm_ctx_alloc(struct ldm_ctx *c, size_t bytes, void **p)
{
    int rc = bind(c);
    return rc ? rc : c->be->alloc(c, bytes, p);
}

void ldm_ctx_free(struct ldm_ctx *c, void *p)
{
    if (p && !bind(c))
        c->be->free(c, p);
}

int ldm_ctx_zero(struct ldm_ctx *c, void *p, size_t bytes)
{
    int rc = bytes ? bind(c) : 0;
    return rc || !bytes ? rc : c->be->zero(c, p, bytes);
}

int ldm_ctx_upload(struct ldm_ctx *c, void *dst, const void *host_src, size_t bytes)
{
    int rc = bytes ? bind(c) : 0;
    return rc || !bytes ? rc : c->be->upload(c, dst, host_src, bytes);
}

int ldm_ctx_download(struct ldm_ctx *c, void *host_dst, const void *src, size_t bytes)
{
    int rc = bytes ? bind(c) : 0;
    return rc || !bytes ? rc : c->be->download(c, host_dst, src, bytes);
}

int ldm_ctx_copy(struct ldm_ctx *c, void *dst, const void *src, size_t bytes)
{
    int rc = bytes ? bind(c) : 0;
    return rc || !bytes ? rc : c->be->copy(c, dst, src, bytes);
}

int ldm_ctx_meminfo(struct ldm_ctx *c, size_t *used, size_t *total)
{
    *used = *total = 0;
    if (!c->be->meminfo)
        return ldm_fail(LDM_EUNSUPPORTED, "the %s backend does not report device memory",
                        c->be->name);
    int rc = bind(c);
    return rc ? rc : c->be->meminfo(c, used, total);
}

/* ---- op timing ---------------------------------------------------------------------------------- */

int ldm_ctx_profile(struct ldm_ctx *c, int on)
{
    free(c->prof);
    c->prof = NULL;
    if (on && !(c->prof = calloc(LDM_OP_COUNT, sizeof *c->prof)))
        return ldm_fail(LDM_ENOMEM, "op profile: out of memory");
    return 0;
}

void ldm_ctx_profile_report(const struct ldm_ctx *c, void *file)
{
    FILE *f = file;
    int order[LDM_OP_COUNT], n = 0;
    double total = 0;
    if (!c->prof)
        return;
    for (int op = 0; op < LDM_OP_COUNT; op++)
        if (c->prof[op].calls) {
            int k = n++;
            for (; k > 0 && c->prof[order[k - 1]].seconds < c->prof[op].seconds; k--)
                order[k] = order[k - 1];
            order[k] = op;
            total += c->prof[op].seconds;
        }
    for (int i = 0; i < n; i++) {
        const struct ldm_op_prof *p = &c->prof[order[i]];
        fprintf(f, "  %-28s %8lld calls %10.3f ms %5.1f%%\n", ldm_op_name(order[i]),
                (long long)p->calls, 1e3 * p->seconds, total > 0 ? 100 * p->seconds / total : 0);
    }
}
