/* is.c — ldmfid is: the Inception Score as torch-fidelity computes it.
 *
 * The unbiased logits (pool3·fc.weightᵀ, all 1008 classes) of every image are
 * kept in memory (4 KB an image), shuffled with numpy's
 * RandomState(--seed).permutation unless --no-shuffle, cut into --splits
 * parts and scored by models/fid.h's ldm_inception_score_perm. Printed as
 * torch-fidelity names them, with 17 significant digits.
 */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "ldmfid.h"
#include "models/fid.h"
#include "models/inception.h"

struct is_sink {
    struct lf_rows logits;
    struct lf_rows features;
    int keep_features;
};

static int is_sink(void *user, const float *pool3, const float *logits, int64_t n)
{
    struct is_sink *s = user;
    int rc = lf_rows_add(&s->logits, logits, n, LDM_INCEPTION_CLASSES);
    if (rc == 0 && s->keep_features)
        rc = lf_rows_add(&s->features, pool3, n, LDM_INCEPTION_DIM);
    return rc;
}

/* Score the rows of s (shuffled as o says) into *mean and *std. */
static int score(const struct lf_opts *o, const struct is_sink *s, double *mean, double *std)
{
    int64_t N = s->logits.n, *perm = NULL;
    if (N < o->splits)
        return ldm_fail(LDM_EINVAL, "%lld images cannot make %d splits (--splits)",
                        (long long)N, o->splits);
    if (o->shuffle && !(perm = malloc((size_t)N * sizeof *perm)))
        return ldm_fail(LDM_ENOMEM, "out of memory");
    int rc = o->shuffle ? ldm_inception_permutation(N, o->seed, perm) : 0;
    if (rc == 0)
        rc = ldm_inception_score_perm(s->logits.v, N, LDM_INCEPTION_CLASSES, o->splits, perm,
                                      mean, std);
    free(perm);
    return rc;
}

int lf_cmd_is(const struct lf_opts *o)
{
    struct is_sink s = {.keep_features = o->features != NULL};
    struct lf_model *m = NULL;
    struct lf_counts c;
    double mean = 0, std = 0;
    int rc = lf_need_weights(o);
    if (rc == 0)
        rc = lf_model_open(&m, o->weights, o->device, o->threads, 1);
    if (rc == 0)
        rc = lf_extract(m, o, o->paths, o->npaths, is_sink, &s, &c);
    lf_model_close(&m);
    if (rc == 0 && o->logits)
        rc = lf_rows_write(&s.logits, o->logits);
    if (rc == 0 && o->features)
        rc = lf_rows_write(&s.features, o->features);
    if (rc == 0)
        rc = score(o, &s, &mean, &std);
    if (rc == 0)
        printf("inception_score_mean: %.17g\ninception_score_std: %.17g\n", mean, std);
    lf_rows_free(&s.logits);
    lf_rows_free(&s.features);
    return rc ? lf_report("is", rc) : 0;
}
