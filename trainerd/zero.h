/* zero.h — how the optimiser state is split over ranks (zero_stage = 2).
 *
 * With ZeRO each rank keeps the moments of one contiguous part (its shard)
 * of the flat F32 parameter arena, updates only those parameters and takes
 * the others from their ranks (all-gather). The arena of n elements is cut
 * every S = ceil(n / world) elements, S rounded up to a multiple of 64
 * (256 bytes, the arena's alignment): rank r's shard starts at min(r·S, n),
 * so every shard is S long but the last, which is shorter (or empty). A cut
 * that falls inside a tensor with 8-bit moments moves up to that tensor's
 * next block start (LDM_ADAM8_BLOCK elements from the tensor's first) or
 * its end, so each rank quantises exactly the blocks an unsharded run does;
 * such shards differ from S by less than a block. Unsharded is one shard.
 *
 * The optimiser's state arrays, laid out as trainer_state.safetensors holds
 * them (train_state.c) — adam.m/adam.v the F32 moments: with plain AdamW one
 * float per arena element, with 8-bit AdamW one slot per tensor that keeps
 * F32 moments (fewer than TD_ADAM8_MIN elements), in arena order, each
 * padded to TD_ZERO_ALIGN floats; adam8.qm/qv one byte per element of each
 * 8-bit tensor, each tensor's codes padded to 256 bytes; adam8.am/av one
 * float per block — are cut at the same places: a cut inside a tensor falls
 * at the same element of its state, a cut outside at the start of the next
 * tensor's state in that array. A rank's state is thus one window of each
 * array, and a checkpoint is every rank's windows side by side, whatever the
 * stage or the world size that wrote it.
 */
#ifndef LDM_TRAINERD_ZERO_H
#define LDM_TRAINERD_ZERO_H

#include <stddef.h>

#define TD_ZERO_ALIGN 64 /* elements: a shard's length is a multiple of it (but the last);
                            an adam.m/v slot of 8-bit AdamW too (256 bytes) */

/* One parameter tensor as the split sees it. */
struct td_zero_tensor {
    size_t off, n;       /* its first element in the arena, its element count */
    int is8;             /* 8-bit moments; else its moments are in adam.m / adam.v */
    size_t q_off, a_off; /* is8: its first byte in adam8.qm/qv, first block in adam8.am/av */
    size_t m_off;        /* !is8: its first element in adam.m/v (a multiple of TD_ZERO_ALIGN) */
};

/* The cuts: rank k's window of each array is [x[k], x[k + 1]). */
struct td_zero_plan {
    int world;
    size_t *el; /* world + 1 cuts of the arena, elements */
    size_t *m;  /* the same cuts in adam.m/v, floats (el itself when t is laid out so) */
    size_t *q;  /* in adam8.qm/qv, bytes (multiples of 256) */
    size_t *a;  /* in adam8.am/av, floats */
};

/* Cut an arena of n elements over world ranks. t: the tensors, in arena order (nt
 * of them), or nt 0 for plain AdamW, whose adam.m/v are laid out as the arena
 * (m_total = n; cuts m then equal el) and which has no 8-bit state. m_total,
 * q_total, a_total: the lengths of adam.m/v and of the 8-bit arrays. Returns 0,
 * LDM_EINVAL (world < 1, tensors overlapping, out of order or beyond the arrays)
 * or LDM_ENOMEM. Free with td_zero_plan_free. */
int td_zero_plan_make(struct td_zero_plan *p, const struct td_zero_tensor *t, size_t nt,
                      size_t n, size_t m_total, size_t q_total, size_t a_total, int world);
void td_zero_plan_free(struct td_zero_plan *p);

/* F32 moments laid out as the arena (one float per element, as plain AdamW keeps
 * them and as 8-bit AdamW wrote them before its slots) into the slot layout: of
 * `full` (the whole arena's, any alignment), the elements lo .. hi − 1 of each tensor
 * that keeps F32 moments go to `out`, the window of adam.m/v that starts at mlo (the
 * plan's cut m for the cut lo). The caller zeroes out first (the slots' padding).
 * t, nt: as for td_zero_plan_make. */
void td_zero_from_full(const struct td_zero_tensor *t, size_t nt, const void *full, size_t lo,
                       size_t hi, size_t mlo, float *out);

#endif
