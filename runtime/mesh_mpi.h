/* mesh_mpi.h — a TrainMesh over MPI (Open MPI), for dporun under mpirun.
 *
 * mesh_mpi_running tells from the environment whether this process was
 * started by mpirun / srun (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE).
 * mesh_mpi_init initialises MPI (MPI_Init_thread, MPI_ERRORS_RETURN on every
 * communicator so that failures come back as messages) and starts a
 * watchdog thread: a collective that has not completed after `timeout_s`
 * seconds (a peer that died or hangs) aborts the whole job with a message
 * naming this rank and the collective. mesh_mpi_abort ends every process of
 * the job (MPI_Abort) after printing the message to stderr with the rank;
 * mesh_mpi_finish shuts MPI down after a run that succeeded everywhere.
 *
 * Collectives are deterministic: all_reduce_sum does not use MPI_Allreduce
 * (whose reduction order Open MPI chooses by message size) but a fixed-order
 * reduce-scatter: rank q owns the q-th of size contiguous chunks, receives
 * that chunk of every rank (MPI_Alltoallv), adds them in rank order 0, 1,
 * ..., size-1 in the buffer's type, and the reduced chunks are gathered back
 * (MPI_Allgatherv). So every rank of the axis ends with the same bits, and
 * the same layout gives the same bits run after run.
 */
#ifndef DPOC_MESH_MPI_H
#define DPOC_MESH_MPI_H

#include <stddef.h>

#include "mesh.h"

int mesh_mpi_running(void);
/* 0, or -1 with err. timeout_s <= 0: no watchdog. */
int mesh_mpi_init(TrainMesh *m, int *argc, char ***argv, double timeout_s, char *err, size_t errlen);
/* Prints "dporun: rank R of N: msg" to stderr and aborts every process with code. */
_Noreturn void mesh_mpi_abort(TrainMesh *m, int code, const char *msg);
/* Stops the watchdog, frees the communicators, MPI_Finalize. */
void mesh_mpi_finish(TrainMesh *m);

#endif
