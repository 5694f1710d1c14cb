/* main.c — mkshards: tar shards from an image folder (pack), synthetic data sets (synth). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "mkshards.h"

int mk_parse_number(const char *opt, const char *text, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(text, &end, 10);
    if (errno || end == text || *end || x < lo || x > hi)
        return ldm_fail(LDM_EINVAL, "--%s: \"%s\" is not a whole number in %ld..%ld", opt, text, lo,
                        hi);
    *v = x;
    return 0;
}

int mk_make_dirs(const char *path)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buf)
        return ldm_fail(LDM_ERANGE, "path too long: %s", path);
    for (char *c = buf + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char keep = *c;
        *c = '\0';
        if (mkdir(buf, 0777) < 0 && errno != EEXIST)
            return ldm_fail_errno(LDM_EIO, "%s: mkdir", buf);
        if (!keep)
            return 0;
        *c = keep;
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkshards pack --out DIR --prefix NAME --per-shard N [--gzip|--zstd] FOLDER\n"
            "       mkshards synth --out DIR [--shards S] [--per-shard N] [--size PX] [--paired]\n"
            "                      [--seed K] [--format jpg|png] [--laion] ...\n"
            "       mkshards COMMAND --help\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int rc;
    if (strcmp(argv[1], "pack") == 0)
        rc = mk_cmd_pack(argc - 1, argv + 1);
    else if (strcmp(argv[1], "synth") == 0)
        rc = mk_cmd_synth(argc - 1, argv + 1);
    else {
        usage(stderr);
        return 2;
    }
    if (rc) {
        fprintf(stderr, "mkshards %s: %s\n", argv[1],
                ldm_errmsg()[0] ? ldm_errmsg() : ldm_strerror(rc));
        return rc == LDM_EINVAL ? 2 : 1;
    }
    return 0;
}
