/* main.c — ldmcache: inspect and check a node's latent cache (the LMDB store of encoderd).
 *
 *   ldmcache stat DIR [--json]          counts, buckets, shard states, identity, map use
 *   ldmcache get DIR KEY [--out PREFIX] one record's header as JSON; arrays as .npy
 *   ldmcache get DIR --meta NAME [...]  a meta value (a record-like one as above)
 *   ldmcache verify DIR                 every value parses; counts agree
 *   ldmcache synth DIR N [options]      write N synthetic records (a test helper)
 *
 * Exit status: 0 success, 1 failure or damage found, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmcache.h"
#include "log.h"

static void usage(FILE *f)
{
    fputs("usage: ldmcache stat DIR [--json]\n"
          "       ldmcache get DIR KEY [--out PREFIX]\n"
          "       ldmcache get DIR --meta NAME [--out PREFIX]\n"
          "       ldmcache verify DIR\n"
          "       ldmcache synth DIR N [--shards K] [--seed S] [--batch B] [--side S]\n"
          "                      [--reject R] [--map-size BYTES] [--max-map-size BYTES]\n"
          "                      [--no-grow]\n"
          "KEY is the samples key \"SHARD/KEY\". synth writes random but valid records\n"
          "through the store (a helper for tests).\n",
          f);
}

int lc_report(const char *cmd, int rc)
{
    const char *d = ldm_errmsg();
    fprintf(stderr, "ldmcache %s: %s\n", cmd, d && *d ? d : ldm_strerror(rc));
    return 1;
}

int lc_open_readonly(const char *dir, struct ldm_store **s)
{
    struct ldm_store_opts o = {.readonly = 1};
    return ldm_store_open(dir, &o, s);
}

int lc_print_json(json_t *v)
{
    if (!v)
        return 1;
    char *t = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(v);
    if (!t)
        return 1;
    puts(t);
    free(t);
    return 0;
}

int lc_parse_size(const char *opt, const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    int shift = 0;
    if (*end && end[1] == '\0') {
        const char *units = "KMGT", *u = strchr(units, *end);
        shift = u ? 10 * (int)(u - units + 1) : -1;
        end++;
    }
    if (errno || end == text || *end || shift < 0 || text[0] == '-' ||
        (shift && v > (UINT64_MAX >> shift)))
        return ldm_fail(LDM_EINVAL, "%s: \"%s\" is not a byte count (N, NK, NM, NG, NT)", opt,
                        text);
    *out = (uint64_t)v << shift;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    ldm_log_set_level(LDM_LOG_WARN);
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"stat", lc_cmd_stat},
                {"get", lc_cmd_get},
                {"verify", lc_cmd_verify},
                {"synth", lc_cmd_synth}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) {
            int rc = cmds[i].fn(argc - 1, argv + 1);
            if (rc == 2)
                usage(stderr);
            return rc;
        }
    usage(stderr);
    return 2;
}
