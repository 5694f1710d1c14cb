/* ckpt.h — checkpoint folders: OUT/checkpoint-STEP/, written whole or not at all.
 *
 * A checkpoint is written into OUT/.checkpoint-STEP.tmp/, every file in it synced,
 * then renamed to OUT/checkpoint-STEP/ and OUT synced: a crash leaves either the
 * complete folder or a temporary one, which the next start removes. Pruning keeps
 * the newest keep_last folders (by step); the latest is the highest step.
 */
#ifndef LDM_TRAINERD_CKPT_H
#define LDM_TRAINERD_CKPT_H

#include <stddef.h>
#include <stdint.h>

/* Create `out` if needed and a fresh temporary folder for `step` (a stale one is
 * removed) into tmp (size bytes). Returns 0, LDM_EINVAL (path too long), LDM_EIO. */
int td_ckpt_begin(const char *out, int64_t step, char *tmp, size_t size);

/* Sync tmp's files and folders, rename it to out/checkpoint-STEP (replacing an
 * existing folder of that step), sync out. The final path into final. */
int td_ckpt_commit(const char *out, int64_t step, const char *tmp, char *final, size_t size);

/* Remove the temporary folders a crash left in out. Returns the number removed. */
int td_ckpt_clean(const char *out);

/* Remove all but the newest keep (>= 1) checkpoints; 0 keeps all. Returns 0 or
 * LDM_EIO. */
int td_ckpt_prune(const char *out, int64_t keep);

/* The highest-step checkpoint in out into path; LDM_ENOTFOUND when there is none. */
int td_ckpt_latest(const char *out, char *path, size_t size, int64_t *step);

/* Remove a folder and everything in it. */
int td_rmtree(const char *path);

#endif
