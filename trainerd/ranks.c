/* ranks.c — rank, world size and local rank from the config or the environment
 * (Slurm, then torchrun-style variables), checked against each other. */
#include "ranks.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One environment family: the variables naming rank, world size, local rank. */
struct family {
    const char *rank, *world, *local;
};

static const struct family families[] = {
    {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"RANK", "WORLD_SIZE", "LOCAL_RANK"},
};

/* A whole number in [lo, hi] from the text of variable `name`. */
static int parse_var(const char *name, const char *text, long lo, long hi, int *out)
{
    const char *s = text;
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno == ERANGE)
        return ldm_fail(LDM_ECONFIG, "%s: '%s' is not a whole number", name, text);
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (*end)
        return ldm_fail(LDM_ECONFIG, "%s: '%s' is not a whole number", name, text);
    if (v < lo || v > hi)
        return ldm_fail(LDM_ECONFIG, "%s: %ld is out of range %ld..%ld", name, v, lo, hi);
    *out = (int)v;
    return 0;
}

/* Take one number: the config's when set, else the variable's, else `def`. */
static int pick(int cfg, const char *key, const char *var, long lo, long hi, int def, int *out,
                char *from, size_t from_size)
{
    if (cfg != -1) {
        if (cfg < lo || cfg > hi)
            return ldm_fail(LDM_ECONFIG, "%s: %d is out of range %ld..%ld (or -1 for unset)", key,
                            cfg, lo, hi);
        *out = cfg;
        snprintf(from, from_size, "%s", key);
        return 0;
    }
    const char *text = var ? getenv(var) : NULL;
    if (text && *text) {
        snprintf(from, from_size, "%s", var);
        return parse_var(var, text, lo, hi, out);
    }
    *out = def;
    snprintf(from, from_size, "default");
    return 0;
}

/* The family whose rank variable is set, or NULL. */
static const struct family *env_family(void)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const char *v = getenv(families[i].rank);
        if (v && *v)
            return &families[i];
    }
    return NULL;
}

int ldm_ranks_resolve(int cfg_rank, int cfg_world, int cfg_local, struct ldm_ranks *out)
{
    memset(out, 0, sizeof *out);
    const struct family *f = env_family();
    if (f && cfg_world == -1 && !(getenv(f->world) && *getenv(f->world)))
        return ldm_fail(LDM_ECONFIG, "%s is set but %s is not (set world_size in the config)",
                        f->rank, f->world);
    int rc = pick(cfg_world, "world_size", f ? f->world : NULL, 1, LDM_WORLD_MAX, 1, &out->world,
                  out->world_from, sizeof out->world_from);
    if (!rc)
        rc = pick(cfg_rank, "rank", f ? f->rank : NULL, 0, LDM_WORLD_MAX - 1, 0, &out->rank,
                  out->rank_from, sizeof out->rank_from);
    if (!rc)
        rc = pick(cfg_local, "local_rank", f ? f->local : NULL, 0, LDM_WORLD_MAX - 1, 0,
                  &out->local_rank, out->local_from, sizeof out->local_from);
    if (rc)
        return rc;
    if (out->rank >= out->world)
        return ldm_fail(LDM_ECONFIG, "rank %d (%s) is not below the world size %d (%s)", out->rank,
                        out->rank_from, out->world, out->world_from);
    if (out->local_rank >= out->world)
        return ldm_fail(LDM_ECONFIG, "local rank %d (%s) is not below the world size %d (%s)",
                        out->local_rank, out->local_from, out->world, out->world_from);
    return 0;
}
