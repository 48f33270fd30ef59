/* mesh_coll.c — the MPI mesh's collectives, checked under mpirun.
 *
 * `mpirun -np DP*TP mesh_coll check DP TP` forms the mesh and checks, on
 * every rank: the ranks (w = dp_rank * TP + tp_rank); all_reduce_sum over
 * each axis, f32 and f64, for sizes below, at and above the axis size,
 * against the sum recomputed here in rank order from the inputs every rank
 * can regenerate (values mixing magnitudes, so another order would give
 * other bits); all_gather (separate and in-place buffers) against the
 * blocks regenerated here. It prints "OK rank R" and exits 0, or names the
 * first difference and exits 1.
 * Fault modes, for the job-abort tests: `hang` (rank 1 never enters the
 * collective its peers wait in: the watchdog of DPOC_MPI_TIMEOUT seconds
 * must abort the job), `kill` (rank 1 SIGKILLs itself while the others
 * wait), `fail` (rank 1 aborts with a message through mesh_mpi_abort).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/mesh_mpi.h"

static float val32(int rank, int64_t i) {
    /* magnitudes from 1e-3 to 1e7 so that the order of the additions shows */
    double m = pow(10.0, (double)((rank * 7 + i * 3) % 11) - 3.0);
    return (float)(m * (((rank + i) % 3) - 1.0 + 0.123456789 * (double)(rank + 1)));
}

static double val64(int rank, int64_t i) { return (double)val32(rank, i) * (1.0 + 1e-9 * (double)i); }

static int check_reduce(TrainMesh *m, DpocAxis axis, int64_t n, int f64) {
    int size = axis == DPOC_AXIS_DP ? m->dp_size : m->tp_size;
    int me = axis == DPOC_AXIS_DP ? m->dp_rank : m->tp_rank;
    /* the world rank of axis rank q in this process's group */
    int base = m->world_rank, stride = axis == DPOC_AXIS_DP ? m->tp_size : 1;
    base -= me * stride;
    size_t esz = f64 ? 8 : 4;
    void *buf = malloc((size_t)(n ? n : 1) * esz);
    if (!buf) return 1;
    for (int64_t i = 0; i < n; i++) {
        if (f64)
            ((double *)buf)[i] = val64(m->world_rank, i);
        else
            ((float *)buf)[i] = val32(m->world_rank, i);
    }
    if (m->all_reduce_sum(m->ctx, axis, buf, n, f64 ? DPOC_COLL_F64 : DPOC_COLL_F32)) {
        fprintf(stderr, "rank %d: all_reduce_sum failed: %s\n", m->world_rank, m->error(m->ctx));
        free(buf);
        return 1;
    }
    int bad = 0;
    for (int64_t i = 0; i < n && !bad; i++) {
        if (f64) {
            double e = val64(base, i);
            for (int q = 1; q < size; q++) e += val64(base + q * stride, i);
            if (memcmp(&e, (double *)buf + i, 8)) bad = 1;
        } else {
            float e = val32(base, i);
            for (int q = 1; q < size; q++) e += val32(base + q * stride, i);
            if (memcmp(&e, (float *)buf + i, 4)) bad = 1;
        }
        if (bad)
            fprintf(stderr, "rank %d: all_reduce_sum %s over %s, n=%lld: element %lld differs\n", m->world_rank,
                    f64 ? "f64" : "f32", axis == DPOC_AXIS_DP ? "dp" : "tp", (long long)n, (long long)i);
    }
    free(buf);
    return bad;
}

static int check_gather(TrainMesh *m, DpocAxis axis, int64_t bytes, int in_place) {
    int size = axis == DPOC_AXIS_DP ? m->dp_size : m->tp_size;
    int me = axis == DPOC_AXIS_DP ? m->dp_rank : m->tp_rank;
    int stride = axis == DPOC_AXIS_DP ? m->tp_size : 1, base = m->world_rank - me * stride;
    unsigned char *recv = malloc((size_t)(size * bytes + 1)), *send = malloc((size_t)(bytes + 1));
    if (!recv || !send) return 1;
    memset(recv, 0xee, (size_t)(size * bytes));
    unsigned char *s = in_place ? recv + me * bytes : send;
    for (int64_t i = 0; i < bytes; i++) s[i] = (unsigned char)(m->world_rank * 31 + i * 7);
    int bad = 0;
    if (m->all_gather(m->ctx, axis, s, recv, bytes)) {
        fprintf(stderr, "rank %d: all_gather failed: %s\n", m->world_rank, m->error(m->ctx));
        bad = 1;
    }
    for (int q = 0; q < size && !bad; q++)
        for (int64_t i = 0; i < bytes && !bad; i++)
            if (recv[q * bytes + i] != (unsigned char)((base + q * stride) * 31 + i * 7)) {
                fprintf(stderr, "rank %d: all_gather over %s (%lld bytes%s): block %d byte %lld differs\n",
                        m->world_rank, axis == DPOC_AXIS_DP ? "dp" : "tp", (long long)bytes,
                        in_place ? ", in place" : "", q, (long long)i);
                bad = 1;
            }
    free(recv);
    free(send);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: mesh_coll check|hang|kill|fail DP TP\n");
        return 2;
    }
    const char *mode = argv[1];
    int dp = atoi(argv[2]), tp = atoi(argv[3]);
    const char *t = getenv("DPOC_MPI_TIMEOUT");
    TrainMesh m;
    char err[512];
    if (mesh_mpi_init(&m, &argc, &argv, t ? atof(t) : 0, err, sizeof err)) {
        fprintf(stderr, "mesh_coll: %s\n", err);
        return 1;
    }
    if (m.layout(&m, dp, tp, err, sizeof err)) {
        if (m.world_rank == 0) fprintf(stderr, "mesh_coll: %s\n", err);
        mesh_mpi_finish(&m);
        return 3;
    }
    int bad = 0;
    if (m.world_rank != m.dp_rank * tp + m.tp_rank || m.dp_size != dp || m.tp_size != tp) {
        fprintf(stderr, "rank %d: dp_rank %d tp_rank %d\n", m.world_rank, m.dp_rank, m.tp_rank);
        bad = 1;
    }
    if (!strcmp(mode, "check")) {
        static const int64_t sizes[] = {0, 1, 3, 5, 1000, 100003};
        for (int a = 0; a < 2 && !bad; a++)
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes && !bad; k++)
                bad = check_reduce(&m, (DpocAxis)a, sizes[k], 0) || check_reduce(&m, (DpocAxis)a, sizes[k], 1) ||
                      check_gather(&m, (DpocAxis)a, sizes[k], 0) || check_gather(&m, (DpocAxis)a, sizes[k], 1);
        if (!bad) {
            int64_t calls = 0;
            m.comm_seconds(m.ctx, &calls);
            printf("OK rank %d (%lld collectives)\n", m.world_rank, (long long)calls);
        }
    } else {
        float x = 1;
        for (int round = 0; round < 3 && !bad; round++) {
            if (m.world_rank == 1 && round == 1) {
                if (!strcmp(mode, "hang")) sleep(60);
                if (!strcmp(mode, "kill")) raise(SIGKILL);
                if (!strcmp(mode, "fail")) mesh_mpi_abort(&m, 1, "cannot read data.rec: record 7 is corrupt (test)");
            }
            if (m.all_reduce_sum(m.ctx, DPOC_AXIS_DP, &x, 1, DPOC_COLL_F32)) {
                fprintf(stderr, "rank %d: %s\n", m.world_rank, m.error(m.ctx));
                bad = 1;
            }
        }
    }
    if (bad) mesh_mpi_abort(&m, 1, "collective check failed");
    mesh_mpi_finish(&m);
    return 0;
}
