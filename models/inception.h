/* inception.h — pytorch-fid's FID InceptionV3 (forward only): images in
 * [0,1] -> pool3 features (2048) and the 1008-way logits.
 *
 * The network is pytorch-fid's InceptionV3([3]) built with
 * use_fid_inception=True: the stem, Mixed_5b..5d (FIDInceptionA, average
 * pool with count_include_pad=False), Mixed_6a (InceptionB), Mixed_6b..6e
 * (FIDInceptionC), Mixed_7a (InceptionD), Mixed_7b (FIDInceptionE_1),
 * Mixed_7c (FIDInceptionE_2: max pool in its pool branch), the adaptive
 * average pool (pool3) and fc (2048 -> 1008). Input is resized to 299×299
 * (bilinear, align_corners=False, no antialias) and mapped to [-1,1].
 *
 * Weights use pytorch-fid's state-dict names ("Mixed_5b.branch1x1.conv.weight",
 * "....bn.running_var", "fc.weight"); num_batches_tracked is not read.
 * At load time every BatchNorm (eps 0.001, running statistics) is folded
 * into its convolution: w' = w·γ/√(var+eps), b' = β − mean·γ/√(var+eps); and
 * the input map x → 2x − 1 is folded into Conv2d_1a_3x3 (it has no padding,
 * so conv(2x − 1) = conv'(x) with w'' = 2w', b'' = b' − Σ w'). The forward is
 * then conv + bias + ReLU (LDM_ACT_RELU, in place) per BasicConv2d.
 *
 * Every step is an op of nn/backend.h, in F32, so the network runs on any
 * backend (cpu, cuda); the host's arrays go in and come out only through
 * ldm_ctx_upload / ldm_ctx_download. On CUDA the convolutions are cuDNN's
 * FP32 kernels (no TF32 unless LDM_CUDA_TF32=1), summing in another order
 * than the CPU, so features match the CPU's closely but not bit for bit
 * (tests/cuda/cuda_inception.c bounds the difference).
 */
#ifndef LDM_MODELS_INCEPTION_H
#define LDM_MODELS_INCEPTION_H

#include <stdint.h>

#include "nn/backend.h"

#define LDM_INCEPTION_DIM 2048     /* pool3 width */
#define LDM_INCEPTION_CLASSES 1008 /* fc outputs */
#define LDM_INCEPTION_SIZE 299     /* the network's input side */
#define LDM_INCEPTION_CHUNK 8      /* images per internal pass (bounds memory) */

struct ldm_inception;

/* A weight source: write the tensor `name`, whose shape must be
 * shape[0..ndim-1], as float32 row-major into dst. Returns 0 or a negative
 * LDM_E* code with ldm_fail() naming the source, the tensor and what is
 * wrong (missing: LDM_ENOTFOUND; other shape: LDM_EFORMAT). This is the
 * hook for other weight files: pytorch-fid's
 * pt_inception-2015-12-05-6726825d.pth, read by the restricted unpickler
 * (models/pickle.h), plugs in as another source under the same names. */
typedef int (*ldm_inception_get_fn)(void *user, const char *name, int ndim,
                                    const int64_t *shape, float *dst);

/* Build the network on ctx (any backend; kept open by the caller until
 * ldm_inception_close) with weights from get(user, ...), folding the
 * BatchNorms on the host as described above and uploading the result.
 * *out is the caller's. Returns 0, LDM_ENOMEM (host or backend memory),
 * LDM_EIO (an upload failed), or what get returns. */
int ldm_inception_open(struct ldm_inception **out, struct ldm_ctx *ctx, ldm_inception_get_fn get,
                       void *user);

/* As ldm_inception_open, reading the safetensors file `path` (F32, F16,
 * BF16 or F64 tensors under pytorch-fid's names). Errors as
 * ldm_inception_open plus those of ldm_st_open; a missing tensor or a shape
 * that differs names the file, the tensor and both shapes. */
int ldm_inception_open_safetensors(struct ldm_inception **out, struct ldm_ctx *ctx,
                                   const char *path);

/* As ldm_inception_open_safetensors for a ".safetensors" path; any other path is read
 * as a torch state dict (pytorch-fid's pt_inception-2015-12-05-6726825d.pth) by the
 * restricted unpickler (models/pickle.h). Errors as those readers and
 * ldm_inception_open. */
int ldm_inception_open_file(struct ldm_inception **out, struct ldm_ctx *ctx, const char *path);

/* torch-fidelity's "logits_unbiased": out (N, 1008) = pool3 (N, 2048) · fc.weightᵀ, no
 * bias. pool3 and out are host arrays (the caller's); the model's context computes
 * the product, rows going up and down in passes through its activation memory.
 * Returns 0, LDM_EINVAL (N < 1) or an op's or a copy's error. */
int ldm_inception_logits_unbiased(struct ldm_inception *m, const float *pool3, int64_t N,
                                  float *out);

/* Close *m (NULL is fine) and set it NULL. */
void ldm_inception_close(struct ldm_inception **m);

/* images: N×3×H×W float32 in [0,1] (host memory, the caller's). Writes
 * pool3 (N×2048) and, when logits is not NULL, logits (N×1008), both host
 * float32 arrays the caller owns. Images go through in chunks of
 * LDM_INCEPTION_CHUNK, each uploaded to the context and its results
 * downloaded. The first call at an input size (and chunk size) plans the
 * ops and grows the context's workspace to fit. Returns 0, LDM_EINVAL (N,
 * H or W < 1; H or W above 4096), LDM_ENOMEM or an op's or a copy's error. */
int ldm_inception_forward(struct ldm_inception *m, const float *images, int64_t N, int64_t H,
                          int64_t W, float *pool3, float *logits);

#endif
