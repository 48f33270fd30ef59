/* dporun_mesh.c — dporun under mpirun: joining the MPI job and leaving it.
 *
 * dporun_mesh_begin does nothing for a plain process. Started by mpirun or
 * srun (mesh_mpi_running) it joins the job (runtime/mesh_mpi.h, with a
 * watchdog of DPOC_MPI_TIMEOUT seconds for a collective, default 900: long
 * enough for rank 0 to write a large checkpoint while its peers wait),
 * hands the mesh to the trainer in TrainOptions.mesh, and points the log of
 * ranks other than 0 at /dev/null (rank 0 alone prints). dporun_mesh_end
 * turns an error on any rank of a job of several processes into an abort
 * of the whole job with the message and the rank (so the peers never wait
 * for it), else shuts MPI down.
 */
#include <stdio.h>
#include <stdlib.h>

#include "dporun_cli.h"
#include "runtime/mesh_mpi.h"

static TrainMesh mesh;
static int joined;

int dporun_mesh_begin(int *argc, char ***argv, TrainOptions *o, FILE **log) {
    if (!mesh_mpi_running()) return 0;
    char err[512];
    const char *t = getenv("DPOC_MPI_TIMEOUT");
    if (mesh_mpi_init(&mesh, argc, argv, t ? atof(t) : 900.0, err, sizeof err)) {
        fprintf(stderr, "dporun: %s\n", err);
        return -1;
    }
    joined = 1;
    o->mesh = &mesh;
    if (mesh.world_rank != 0 && !(*log = fopen("/dev/null", "w"))) mesh_mpi_abort(&mesh, 1, "cannot open /dev/null");
    return 0;
}

void dporun_mesh_end(int rc, const char *err, FILE *log) {
    if (!joined) return;
    if (rc < 0 && mesh.world_size > 1) mesh_mpi_abort(&mesh, 1, err);
    if (log && log != stderr) fclose(log);
    mesh_mpi_finish(&mesh);
    joined = 0;
}
