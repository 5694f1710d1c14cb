/* ranks.h — which rank this trainer is, among how many, and its rank on its node.
 *
 * Each of the three numbers comes from the first of:
 *   1. the config (trainerd's keys `rank`, `world_size`, `local_rank`; -1 = unset);
 *   2. Slurm, when SLURM_PROCID is set: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID;
 *   3. torchrun-style variables, when RANK is set: RANK, WORLD_SIZE, LOCAL_RANK;
 *   4. defaults: rank 0, world size 1, local rank 0.
 * One environment family is used as a whole (Slurm wins over RANK/...): when
 * its rank variable is set, its world-size variable must be set too; a missing
 * local-rank variable means 0. The local rank must be below the world size too.
 */
#ifndef LDM_TRAINERD_RANKS_H
#define LDM_TRAINERD_RANKS_H

#define LDM_WORLD_MAX 65536

struct ldm_ranks {
    int rank;       /* 0 .. world - 1 */
    int world;      /* >= 1 */
    int local_rank; /* >= 0: the process's index on its node (picks cuda:N) */
    char rank_from[24], world_from[24], local_from[24]; /* "config", "SLURM_PROCID", "default" ... */
};

/* Resolve the three numbers into *out as above. cfg_rank, cfg_world and
 * cfg_local are the config's values, -1 when unset. Returns 0 or
 * LDM_ECONFIG naming the key or variable: a value that is not a whole
 * number in range ("SLURM_NTASKS: 'x' is not a whole number"), a world size
 * below 1 or above LDM_WORLD_MAX, a rank not below the world size ("rank 4
 * (RANK) is not below the world size 4 (WORLD_SIZE)"), a rank variable set
 * without its world-size variable. */
int ldm_ranks_resolve(int cfg_rank, int cfg_world, int cfg_local, struct ldm_ranks *out);

#endif
