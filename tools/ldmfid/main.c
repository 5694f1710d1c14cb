/* main.c — ldmfid: FID statistics, the Fréchet distance and the Inception Score of images.
 *
 *   ldmfid stats PATH... --out STATS.npz   pool3 mean and covariance (pytorch-fid's
 *                                          --save-stats: mu, sigma, float64)
 *   ldmfid fid A B                         FID; A and B are image inputs or .npz stats
 *   ldmfid is PATH...                      Inception Score (torch-fidelity's metric)
 *
 * Images are read as pytorch-fid reads them (PIL's convert("RGB"), then
 * ToTensor's [0,1] floats) and go through pytorch-fid's FID InceptionV3
 * (models/inception.h), which resizes to 299×299 bilinearly and maps to
 * [-1,1]. Exit status: 0 success, 1 failure, 2 bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmfid.h"
#include "log.h"

static void usage(FILE *f)
{
    fputs("usage: ldmfid stats PATH... --out STATS.npz [--features F.npy] [OPTIONS]\n"
          "       ldmfid fid A B [OPTIONS]\n"
          "       ldmfid is PATH... [--splits N] [--seed S] [--no-shuffle]\n"
          "                         [--features F.npy] [--logits F.npy] [OPTIONS]\n"
          "OPTIONS: --weights FILE   InceptionV3-FID weights: pytorch-fid's\n"
          "                          pt_inception-2015-12-05-6726825d.pth or a .safetensors\n"
          "                          copy (default $LDM_FID_WEIGHTS)\n"
          "         --batch N        images per network call (default 50)\n"
          "         --threads N      compute threads (default: every core)\n"
          "         --device DEV     cpu (default), cuda or cuda:N: where the network runs\n"
          "PATH: an image folder (jpg/jpeg/png/webp, sorted), a WebDataset tar shard\n"
          "(.tar, .tar.gz, .tar.zst, ...), an image, or a pattern (shard-{0..9}.tar, globs).\n"
          "fid takes a .npz statistics file for A or B as well. is: torch-fidelity's\n"
          "Inception Score (unbiased logits, numpy RandomState(seed) shuffle, 10 splits).\n",
          f);
}

int lf_report(const char *cmd, int rc)
{
    const char *d = ldm_errmsg();
    fprintf(stderr, "ldmfid %s: %s\n", cmd, d && *d ? d : ldm_strerror(rc));
    return rc == LDM_ECONFIG ? 2 : 1; /* no weights named: a usage error */
}

int lf_need_weights(const struct lf_opts *o)
{
    if (o->weights && *o->weights)
        return 0;
    return ldm_fail(LDM_ECONFIG, "no weights: give --weights FILE or set LDM_FID_WEIGHTS");
}

static int parse_int(const char *opt, const char *text, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(text, &end, 10);
    if (errno || end == text || *end || x < lo || x > hi)
        return ldm_fail(LDM_EINVAL, "%s: \"%s\" is not a whole number in %ld..%ld", opt, text,
                        lo, hi);
    *v = x;
    return 0;
}

/* --device: "cpu", "cuda" or "cuda:N" (whether this build and machine have it is
 * found when the context opens). */
static int check_device(const char *v)
{
    const char *d = strncmp(v, "cuda:", 5) == 0 ? v + 5 : "";
    if (strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0 ||
        (*d && strspn(d, "0123456789") == strlen(d)))
        return 0;
    return ldm_fail(LDM_EINVAL, "--device: \"%s\" is not cpu, cuda or cuda:N", v);
}

/* Options: name, takes a value, the commands that accept it. */
static const struct {
    const char *name;
    int arg;
    const char *cmds;
} OPTS[] = {
    {"--weights", 1, "stats fid is"}, {"--batch", 1, "stats fid is"},
    {"--threads", 1, "stats fid is"}, {"--device", 1, "stats fid is"},
    {"--out", 1, "stats"},            {"--features", 1, "stats is"},
    {"--logits", 1, "is"},            {"--splits", 1, "is"},
    {"--seed", 1, "is"},              {"--no-shuffle", 0, "is"},
};

/* Store option `name` with value v (NULL for a flag) into o. */
static int set_opt(struct lf_opts *o, const char *name, const char *v)
{
    long x = 0;
    int rc = 0;
    if (strcmp(name, "--weights") == 0)
        o->weights = v;
    else if (strcmp(name, "--device") == 0 && !(rc = check_device(v)))
        o->device = v;
    else if (strcmp(name, "--out") == 0)
        o->out = v;
    else if (strcmp(name, "--features") == 0)
        o->features = v;
    else if (strcmp(name, "--logits") == 0)
        o->logits = v;
    else if (strcmp(name, "--no-shuffle") == 0)
        o->shuffle = 0;
    else if (strcmp(name, "--batch") == 0 && !(rc = parse_int(name, v, 1, 4096, &x)))
        o->batch = (int)x;
    else if (strcmp(name, "--threads") == 0 && !(rc = parse_int(name, v, 0, 1024, &x)))
        o->threads = (int)x;
    else if (strcmp(name, "--splits") == 0 && !(rc = parse_int(name, v, 1, 1000000, &x)))
        o->splits = (int)x;
    else if (strcmp(name, "--seed") == 0 && !(rc = parse_int(name, v, 0, 4294967295L, &x)))
        o->seed = (uint32_t)x;
    return rc;
}

/* One option at argv[*i] (advancing *i past its value). */
static int take_opt(int argc, char **argv, int *i, const char *cmd, struct lf_opts *o)
{
    const char *a = argv[*i], *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++) {
        if (strlen(OPTS[k].name) != n || strncmp(OPTS[k].name, a, n) != 0)
            continue;
        if (!strstr(OPTS[k].cmds, cmd))
            break;
        if (!OPTS[k].arg && eq)
            return ldm_fail(LDM_EINVAL, "%s takes no value", OPTS[k].name);
        const char *v = eq ? eq + 1 : NULL;
        if (OPTS[k].arg && !v) {
            if (*i + 1 >= argc)
                return ldm_fail(LDM_EINVAL, "%s needs a value", OPTS[k].name);
            v = argv[++*i];
        }
        if (OPTS[k].arg && !*v)
            return ldm_fail(LDM_EINVAL, "%s: empty value", OPTS[k].name);
        return set_opt(o, OPTS[k].name, v);
    }
    return ldm_fail(LDM_EINVAL, "unknown option %s for %s", a, cmd);
}

int lf_parse_args(int argc, char **argv, const char *cmd, struct lf_opts *o)
{
    const char *env = getenv("LDM_FID_WEIGHTS");
    *o = (struct lf_opts){.weights = env && *env ? env : NULL, .batch = LF_BATCH_DEFAULT,
                          .device = "cpu", .splits = 10, .seed = 2020, .shuffle = 1};
    o->paths = calloc((size_t)argc + 1, sizeof *o->paths);
    if (!o->paths)
        return ldm_fail(LDM_ENOMEM, "out of memory");
    int only_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!only_paths && strcmp(argv[i], "--") == 0)
            only_paths = 1;
        else if (!only_paths && argv[i][0] == '-' && argv[i][1]) {
            int rc = take_opt(argc, argv, &i, cmd, o);
            if (rc)
                return rc;
        } else
            o->paths[o->npaths++] = argv[i];
    }
    if (strcmp(cmd, "fid") == 0 && o->npaths != 2)
        return ldm_fail(LDM_EINVAL, "fid takes two inputs, A and B (%d given)", o->npaths);
    if (o->npaths < 1)
        return ldm_fail(LDM_EINVAL, "%s: no PATH given", cmd);
    if (strcmp(cmd, "stats") == 0 && !o->out)
        return ldm_fail(LDM_EINVAL, "stats needs --out STATS.npz");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(const struct lf_opts *);
    } cmds[] = {{"stats", lf_cmd_stats}, {"fid", lf_cmd_fid}, {"is", lf_cmd_is}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        for (int k = 2; k < argc && strcmp(argv[k], "--") != 0; k++)
            if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
                usage(stdout);
                return 0;
            }
        struct lf_opts o;
        int rc = lf_parse_args(argc - 1, argv + 1, cmds[i].name, &o);
        if (rc) {
            lf_report(cmds[i].name, rc);
            usage(stderr);
            free(o.paths);
            return rc == LDM_ENOMEM ? 1 : 2;
        }
        rc = cmds[i].fn(&o);
        free(o.paths);
        return rc;
    }
    fprintf(stderr, "ldmfid: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
