/* run_text.c — `ldmrun tokenize` (a tokenizer/ folder and a caption → out.input_ids, framed
 * as diffusers frames it) and `ldmrun schedule` (a scheduler/ folder → out.betas,
 * out.alphas_cumprod). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "ldmrun.h"
#include "models/clip_tokenizer.h"
#include "models/schedule.h"

int lr_cmd_tokenize(const char *dir, const char *out, const char *text)
{
    struct ldm_clip_tok *t = NULL;
    struct ldm_clip_tok_info info;
    int32_t *ids = NULL;
    int64_t *ids64 = NULL;
    int rc = ldm_clip_tok_load_dir(dir, &t);
    if (!rc) {
        ldm_clip_tok_get_info(t, &info);
        ids = malloc(sizeof *ids * (size_t)info.max_length);
        ids64 = malloc(sizeof *ids64 * (size_t)info.max_length);
        if (!ids || !ids64)
            rc = ldm_fail(LDM_ENOMEM, "%d ids", info.max_length);
    }
    if (!rc)
        rc = ldm_clip_tok_frame(t, text, strlen(text), ids, NULL);
    if (!rc) {
        for (int i = 0; i < info.max_length; i++)
            ids64[i] = ids[i];
        struct ldm_st_tensor st = {.name = "out.input_ids", .dtype = LDM_DT_I64, .ndim = 2,
                                   .shape = {1, info.max_length}, .data = ids64,
                                   .nbytes = sizeof *ids64 * (size_t)info.max_length};
        rc = ldm_st_write(out, &st, 1, NULL, 0);
    }
    free(ids);
    free(ids64);
    ldm_clip_tok_free(t);
    return rc;
}

static int write_schedule(const struct ldm_schedule *s, const char *out)
{
    struct lr_outs o = {.n = 0};
    float *b, *a;
    int rc = lr_out_add(&o, "out.betas", 1, &s->T, &b);
    if (!rc)
        rc = lr_out_add(&o, "out.alphas_cumprod", 1, &s->T, &a);
    if (!rc) {
        memcpy(b, s->betas, sizeof *b * (size_t)s->T);
        memcpy(a, s->alphas_cumprod, sizeof *a * (size_t)s->T);
        rc = lr_out_write(&o, out);
    }
    lr_out_free(&o);
    return rc;
}

int lr_cmd_schedule(const char *dir, const char *out)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/scheduler_config.json", dir) >= (int)sizeof path)
        return ldm_fail(LDM_EINVAL, "%s: path too long", dir);
    json_t *o;
    struct ldm_sched_config c;
    struct ldm_schedule s = {0};
    int rc = ldm_json_load_object(path, &o);
    if (rc)
        return rc;
    rc = ldm_sched_config_from_json(&c, o, path);
    json_decref(o);
    if (!rc)
        rc = ldm_sched_init(&s, &c);
    if (!rc)
        rc = write_schedule(&s, out);
    ldm_sched_free(&s);
    return rc;
}
