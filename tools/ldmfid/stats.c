/* stats.c — ldmfid stats (pool3 mean and covariance into a pytorch-fid .npz) and ldmfid fid.
 *
 * Statistics are accumulated in float64 as images come (models/fid.h): mu the
 * mean, sigma np.cov(rowvar=False); the file holds "mu" and "sigma" as
 * float64, as pytorch-fid's --save-stats writes and reads them. fid prints
 * pytorch-fid's Fréchet distance with 17 significant digits.
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "ldmfid.h"
#include "log.h"
#include "models/fid.h"
#include "models/inception.h"

struct stats_sink {
    struct ldm_fid_acc *acc;
    struct lf_rows *features; /* NULL: not kept */
};

static int stats_sink(void *user, const float *pool3, const float *logits, int64_t n)
{
    struct stats_sink *s = user;
    (void)logits;
    int rc = ldm_fid_acc_add(s->acc, pool3, n);
    if (rc == 0 && s->features)
        rc = lf_rows_add(s->features, pool3, n, LDM_INCEPTION_DIM);
    return rc;
}

/* The statistics of the images at paths into *out (the caller frees them);
 * *m is opened on first use and kept for the next call. */
static int image_stats(const struct lf_opts *o, struct lf_model **m, const char *const *paths,
                       int npaths, struct ldm_fid_stats *out)
{
    struct lf_rows rows = {0};
    struct stats_sink s = {.features = o->features ? &rows : NULL};
    struct lf_counts c;
    int rc = *m ? 0 : lf_need_weights(o);
    if (rc == 0 && !*m)
        rc = lf_model_open(m, o->weights, o->device, o->threads, 0);
    if (rc == 0)
        rc = ldm_fid_acc_new(&s.acc, LDM_INCEPTION_DIM);
    if (rc == 0)
        rc = lf_extract(*m, o, paths, npaths, stats_sink, &s, &c);
    if (rc == 0)
        rc = ldm_fid_acc_stats(s.acc, out);
    if (rc == 0 && o->features)
        rc = lf_rows_write(&rows, o->features);
    ldm_fid_acc_free(&s.acc);
    lf_rows_free(&rows);
    return rc;
}

int lf_cmd_stats(const struct lf_opts *o)
{
    struct ldm_fid_stats s = {0};
    struct lf_model *m = NULL;
    int rc = image_stats(o, &m, o->paths, o->npaths, &s);
    lf_model_close(&m);
    if (rc == 0)
        rc = ldm_fid_stats_write(o->out, &s);
    if (rc == 0)
        LOG_INFO("statistics written", "out=%s images=%lld dim=%lld", o->out, (long long)s.count,
                 (long long)s.dim);
    ldm_fid_stats_free(&s);
    return rc ? lf_report("stats", rc) : 0;
}

static int is_npz(const char *p)
{
    size_t n = strlen(p);
    return n > 4 && strcmp(p + n - 4, ".npz") == 0;
}

int lf_cmd_fid(const struct lf_opts *o)
{
    struct ldm_fid_stats s[2] = {{0}, {0}};
    struct lf_model *m = NULL;
    double fid = 0;
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = is_npz(o->paths[i]) ? ldm_fid_stats_read(o->paths[i], &s[i])
                                 : image_stats(o, &m, &o->paths[i], 1, &s[i]);
    lf_model_close(&m);
    if (rc == 0)
        rc = ldm_fid_distance(&s[0], &s[1], &fid);
    if (rc == 0)
        printf("FID: %.17g\n", fid);
    ldm_fid_stats_free(&s[0]);
    ldm_fid_stats_free(&s[1]);
    return rc ? lf_report("fid", rc) : 0;
}
