/* fid.h — FID statistics (streamed in float64), pytorch-fid .npz stats files,
 * the Fréchet distance as pytorch-fid computes it, and the Inception Score
 * as torch-fidelity computes it.
 *
 * Statistics: mu = the mean of the feature rows, sigma = their covariance
 * with np.cov(rowvar=False) semantics (N − 1 denominator), both float64.
 * They are accumulated batch by batch (Chan's pairwise update of mean and
 * centred co-moments), so any number of images needs O(D²) memory.
 *
 * Fréchet distance: |mu1 − mu2|² + tr(σ1) + tr(σ2) − 2·tr(sqrtm(σ1σ2)).
 * For symmetric positive semi-definite σ1, σ2 the eigenvalues of σ1σ2 are
 * those of the symmetric matrix A = √σ1·σ2·√σ1 (similar matrices), so
 * tr(sqrtm(σ1σ2)) = Σ √λ_i(A). √σ1 comes from σ1's eigen-decomposition and
 * λ(A) from a second one (LAPACK dsyevd from OpenBLAS): stable for singular
 * covariances, where scipy's Schur-based sqrtm may fail. Eigenvalues (of
 * σ1 and of A) within round-off of zero, |λ| <= D·DBL_EPSILON·max|λ|, count
 * as zero: their square roots would turn 1e-16 noise into 1e-8 (scipy keeps
 * the real part of such roots, so it carries that noise). As pytorch-fid: when the result is not
 * finite, eps (1e-6) is added to both diagonals and it is computed again;
 * an imaginary part (the square root of a clearly negative eigenvalue of A,
 * above 1e-3 as pytorch-fid's check on the diagonal) is an error.
 */
#ifndef LDM_MODELS_FID_H
#define LDM_MODELS_FID_H

#include <stdint.h>

#define LDM_FID_EPS 1e-6     /* diagonal offset of the retry */
#define LDM_FID_IMAG_TOL 1e-3 /* largest tolerated imaginary component */

/* Statistics of D-wide features. Owned by whoever filled it; free with
 * ldm_fid_stats_free. A zeroed struct is empty and valid to free. */
struct ldm_fid_stats {
    int64_t dim;   /* D */
    int64_t count; /* rows behind them (0 when read from a file) */
    double *mu;    /* (D) */
    double *sigma; /* (D, D), row-major, symmetric */
};

void ldm_fid_stats_free(struct ldm_fid_stats *s);

/* ---- streaming statistics --------------------------------------------------- */

struct ldm_fid_acc; /* running count, mean and co-moment matrix */

/* A new accumulator for D-wide features (D in 1..65536); *out is the
 * caller's, freed with ldm_fid_acc_free. Returns 0, LDM_EINVAL or LDM_ENOMEM. */
int ldm_fid_acc_new(struct ldm_fid_acc **out, int64_t dim);
void ldm_fid_acc_free(struct ldm_fid_acc **a);

/* Add n rows of D float32 features (row-major; the caller's). Returns 0 or
 * LDM_EINVAL (n < 0, a non-finite value: the detail names row and column). */
int ldm_fid_acc_add(struct ldm_fid_acc *a, const float *x, int64_t n);

/* The statistics of every row added so far into *out (allocated; the caller
 * frees it with ldm_fid_stats_free). Returns 0, LDM_EINVAL (fewer than 2
 * rows: the covariance is undefined) or LDM_ENOMEM. */
int ldm_fid_acc_stats(const struct ldm_fid_acc *a, struct ldm_fid_stats *out);

/* ---- files -------------------------------------------------------------------- */

/* Read pytorch-fid statistics (.npz with "mu" (D) and "sigma" (D, D), float64
 * or float32) into *out (the caller frees it). Returns 0, what ldm_npz_load
 * returns, or LDM_EFORMAT naming the file and the array whose shape is wrong. */
int ldm_fid_stats_read(const char *path, struct ldm_fid_stats *out);

/* Write s as pytorch-fid does (np.savez: stored members "mu", "sigma",
 * float64), atomically. Returns 0, LDM_EINVAL or the codes of ldm_npz_write. */
int ldm_fid_stats_write(const char *path, const struct ldm_fid_stats *s);

/* ---- metrics ------------------------------------------------------------------ */

/* The Fréchet distance between a and b (same D) into *fid. Returns 0,
 * LDM_EINVAL (dims differ, missing data), LDM_ENOMEM, LDM_ERANGE (an
 * imaginary component above LDM_FID_IMAG_TOL, or not finite even after the
 * eps retry; the detail gives the value) or LDM_EIO (LAPACK failed). */
int ldm_fid_distance(const struct ldm_fid_stats *a, const struct ldm_fid_stats *b, double *fid);

/* tr(sqrtm(s1·s2)) for symmetric PSD D×D s1, s2 (row-major), as above, into
 * *tr; *imag gets the largest imaginary component met. Returns 0,
 * LDM_ENOMEM or LDM_EIO. */
int ldm_fid_trace_sqrt_product(const double *s1, const double *s2, int64_t dim, double *tr,
                               double *imag);

/* ---- Inception Score ----------------------------------------------------------
 *
 * As torch-fidelity's isc_features_to_metric (v0.3.0, the metric of
 * calculate_metrics(isc=True)): the features are its "logits_unbiased",
 * pool3·fc.weightᵀ without fc.bias, all 1008 columns (not only the first
 * 1000); the rows are shuffled with
 * np.random.RandomState(2020).permutation(N); then, in float64,
 * p = softmax(rows), the rows are cut into `splits` parts
 * [i·N/splits, (i+1)·N/splits) (integer division), each part scores
 * exp(mean over its rows of Σ_y p(y|x)·(log p(y|x) − log p̄(y))) with p̄ the
 * part's mean of p, and the result is the mean and the population standard
 * deviation (np.std, ddof 0) of the parts' scores. The shuffle is numpy's, not
 * torch's: ldm_inception_permutation reproduces it exactly, so
 *   ldm_inception_permutation(N, LDM_ISC_SEED, perm);
 *   ldm_inception_score_perm(logits_unbiased, N, 1008, LDM_ISC_SPLITS, perm, &m, &s);
 * is torch-fidelity's number on the same features (to float64 round-off). */

#define LDM_ISC_SPLITS 10 /* torch-fidelity's isc_splits */
#define LDM_ISC_SEED 2020 /* torch-fidelity's rng_seed */

/* perm[0..N) = np.random.RandomState(seed).permutation(N): numpy's legacy
 * MT19937 seeded with the 32-bit integer (init_genrand), then its
 * Fisher-Yates shuffle of 0..N−1 from the end, each index drawn by masked
 * rejection (32-bit draws while i < 2³², two draws per 64-bit value above).
 * Returns 0 or LDM_EINVAL (N < 0, perm NULL with N > 0). */
int ldm_inception_permutation(int64_t N, uint32_t seed, int64_t *perm);

/* The Inception Score of N rows of C logits (row-major float32, the
 * caller's) taking row perm[k] as the k-th row (perm NULL: the order given;
 * otherwise a permutation of 0..N−1, checked), as described above, into
 * *mean and *std. Returns 0, LDM_EINVAL (splits < 1, N < splits, C < 1, perm
 * not a permutation: the detail names the entry) or LDM_ENOMEM. */
int ldm_inception_score_perm(const float *logits, int64_t N, int64_t C, int splits,
                             const int64_t *perm, double *mean, double *std);

/* ldm_inception_score_perm with the rows in the order given (no shuffle). */
int ldm_inception_score(const float *logits, int64_t N, int64_t C, int splits, double *mean,
                        double *std);

#endif
