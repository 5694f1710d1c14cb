/* main.c — ldmrun: run one model part (UNet, VAE, CLIP text encoder) on tensors from a
 * safetensors file and write its outputs to another; compare two tensor files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmrun.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ldmrun unet DIR IN.safetensors OUT.safetensors [--threads N]\n"
            "         in.sample, in.timestep, in.encoder_hidden_states\n"
            "         [, in.text_embeds, in.time_ids] -> out.sample\n"
            "       ldmrun vae-encode DIR IN OUT [--input NAME]\n"
            "         in.image -> out.mean, out.logvar\n"
            "       ldmrun vae-decode DIR IN OUT [--input NAME]\n"
            "         in.latent (unscaled) -> out.decoded\n"
            "       ldmrun clip DIR IN OUT [--input NAME]\n"
            "         in.input_ids -> out.last_hidden_state, out.pooled,\n"
            "         out.text_embeds (with a projection), out.hidden_states.K\n"
            "       ldmrun tokenize DIR OUT TEXT   (tokenizer/) -> out.input_ids (1, 77)\n"
            "       ldmrun schedule DIR OUT        (scheduler/) -> out.betas, out.alphas_cumprod\n"
            "       ldmrun compare A B [PREFIX_A [PREFIX_B]] [--tol T]\n"
            "         B is the reference; exit 1 when a tensor's max|a-b|/max|b| > T (1e-4)\n"
            "DIR is a diffusers model part folder (unet/, vae/, text_encoder/).\n");
}

static int usage_error; /* set when the command line, not the run, was wrong */

static int parse_run(int argc, char **argv, struct lr_args *a)
{
    const char *pos[3];
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            long t = strtol(argv[++i], &end, 10);
            if (errno || *end || t < 0 || t > 1024)
                return ldm_fail(LDM_EINVAL, "--threads: \"%s\" is not in 0..1024", argv[i]);
            a->threads = (int)t;
        } else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) {
            a->input_name = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return ldm_fail(LDM_EINVAL, "unknown option %s", argv[i]);
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            return ldm_fail(LDM_EINVAL, "too many arguments");
        }
    }
    if (npos != 3)
        return ldm_fail(LDM_EINVAL, "needs DIR IN OUT");
    a->dir = pos[0], a->in = pos[1], a->out = pos[2];
    return 0;
}

static int dispatch(int argc, char **argv)
{
    const char *cmd = argv[1];
    if (strcmp(cmd, "compare") == 0) {
        int rc = lr_cmd_compare(argc - 1, argv + 1);
        usage_error = rc == LDM_EINVAL;
        return rc;
    }
    if (!strcmp(cmd, "tokenize") || !strcmp(cmd, "schedule")) {
        int want = cmd[0] == 't' ? 5 : 4;
        if (argc != want && (usage_error = 1))
            return ldm_fail(LDM_EINVAL, "%s needs %d arguments", cmd, want - 2);
        return cmd[0] == 't' ? lr_cmd_tokenize(argv[2], argv[3], argv[4])
                             : lr_cmd_schedule(argv[2], argv[3]);
    }
    struct lr_args a = {.threads = 0};
    int known = !strcmp(cmd, "unet") || !strcmp(cmd, "vae-encode") ||
                !strcmp(cmd, "vae-decode") || !strcmp(cmd, "clip");
    if (!known && (usage_error = 1))
        return ldm_fail(LDM_EINVAL, "unknown command \"%s\"", cmd);
    int rc = parse_run(argc, argv, &a);
    if (rc) {
        usage_error = 1;
        return rc;
    }
    if (!strcmp(cmd, "unet"))
        return lr_cmd_unet(&a);
    if (!strcmp(cmd, "clip"))
        return lr_cmd_clip(&a);
    return lr_cmd_vae(&a, !strcmp(cmd, "vae-decode"));
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int rc = dispatch(argc, argv);
    if (rc) {
        fprintf(stderr, "ldmrun %s: %s\n", argv[1],
                ldm_errmsg()[0] ? ldm_errmsg() : ldm_strerror(rc));
        if (usage_error)
            usage(stderr);
        return usage_error ? 2 : 1;
    }
    return 0;
}
