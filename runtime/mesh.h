/* mesh.h — the processes of a training run, as the trainer sees them.
 *
 * A TrainMesh is a table of the world's size and this process's rank plus
 * the collectives of DpocServices (dpoc_abi.h). The trainer knows nothing
 * of MPI: dporun fills the table from runtime/mesh_mpi.c (a separate
 * library, linked by dporun and the MPI tests only) and hands it over in
 * TrainOptions.mesh. Once the step is open the trainer calls `layout` with
 * the step's dp x tp; it checks that the world has dp * tp processes and
 * forms one communicator per axis, world rank w = dp_rank * tp + tp_rank
 * (the tp ranks of one dp group are neighbours).
 *
 * Without a mesh (TrainOptions.mesh NULL) the run is one process, 1 x 1.
 */
#ifndef DPOC_MESH_H
#define DPOC_MESH_H

#include <stddef.h>
#include <stdint.h>

#include "dpoc_abi.h"

typedef struct TrainMesh {
    void *ctx;
    int world_rank, world_size;
    int dp_rank, dp_size, tp_rank, tp_size; /* set by layout */
    /* 0, or -1 with a message naming the world size and the mesh. */
    int (*layout)(struct TrainMesh *m, int dp, int tp, char *err, size_t errlen);
    /* The services' collectives (0, or non-zero after a communication
     * failure, whose message mesh_error then gives). */
    int (*all_reduce_sum)(void *ctx, DpocAxis axis, void *buf, int64_t n, DpocCollType type);
    int (*all_gather)(void *ctx, DpocAxis axis, const void *send, void *recv, int64_t bytes);
    /* The last failure's message. */
    const char *(*error)(void *ctx);
    /* Seconds spent inside collectives so far, and how many calls. */
    double (*comm_seconds)(void *ctx, int64_t *calls);
} TrainMesh;

#endif
