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
 * them (train_state.c) — adam.m/adam.v one float per arena element;
 * adam8.qm/qv one byte per element of each 8-bit tensor, each tensor's
 * codes padded to 256 bytes; adam8.am/av one float per block — are cut at
 * the same places. A rank's state is thus one window of each array, and a
 * checkpoint is every rank's windows side by side, whatever the stage or
 * the world size that wrote it.
 */
#ifndef LDM_TRAINERD_ZERO_H
#define LDM_TRAINERD_ZERO_H

#include <stddef.h>

#define TD_ZERO_ALIGN 64 /* elements: a shard's length is a multiple of it (but the last) */

/* One parameter tensor as the split sees it. */
struct td_zero_tensor {
    size_t off, n;       /* its first element in the arena, its element count */
    int is8;             /* 8-bit moments; else its moments are in adam.m / adam.v */
    size_t q_off, a_off; /* is8: its first byte in adam8.qm/qv, first block in adam8.am/av */
};

/* The cuts: rank k's window of each array is [x[k], x[k + 1]). */
struct td_zero_plan {
    int world;
    size_t *el; /* world + 1 cuts of the arena (and of adam.m/v), elements */
    size_t *q;  /* the same cuts in adam8.qm/qv, bytes (multiples of 256) */
    size_t *a;  /* in adam8.am/av, floats */
};

/* Cut an arena of n elements over world ranks. t: the tensors, in arena order
 * (nt of them; 0 when no tensor has 8-bit moments), q_total / a_total: the
 * lengths of the 8-bit arrays. Returns 0, LDM_EINVAL (world < 1, tensors
 * overlapping, out of order or beyond the arrays) or LDM_ENOMEM. Free with
 * td_zero_plan_free. */
int td_zero_plan_make(struct td_zero_plan *p, const struct td_zero_tensor *t, size_t nt,
                      size_t n, size_t q_total, size_t a_total, int world);
void td_zero_plan_free(struct td_zero_plan *p);

#endif
