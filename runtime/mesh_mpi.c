/* mesh_mpi.c — TrainMesh over MPI: communicators per axis, deterministic
 * collectives, error messages, a watchdog.
 *
 * MPI is initialised with MPI_THREAD_MULTIPLE when the library offers it
 * (only the main thread communicates; the watchdog thread may call
 * MPI_Abort), and every communicator returns errors (MPI_ERRORS_RETURN),
 * which the collectives turn into a message ("MPI_Alltoallv over dp: ...")
 * and a non-zero status. Each collective records when it started; the
 * watchdog wakes every 100 ms and, when one has run longer than the
 * timeout, prints which rank waits in which collective and aborts the job.
 *
 * all_reduce_sum is a reduce-scatter + all-gather written out by hand so
 * that the order of the additions is fixed (see mesh_mpi.h); large buffers
 * go in rounds of at most 2^28 elements so MPI's int counts never overflow.
 * all_gather is MPI_Allgather of bytes, in rounds as well. The time spent
 * in both is summed for the benchmark (comm_seconds).
 */
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mesh_mpi.h"

enum { ROUND_ELEMS = 1 << 28 };

typedef struct MpiMesh {
    MPI_Comm comm[2]; /* DPOC_AXIS_DP, DPOC_AXIS_TP */
    int have_comm;
    int world_rank, world_size;
    int thread_multiple;
    char *scratch;
    size_t scap;
    int *counts; /* 4 arrays of world_size ints */
    double comm_s;
    int64_t calls;
    char err[512];
    /* watchdog */
    double timeout;
    pthread_t wd;
    int wd_on;
    atomic_int stop;
    atomic_llong busy_ns; /* start of the collective under way, 0: none */
    atomic_int busy_what; /* 0 all_reduce_sum, 1 all_gather */
    atomic_int busy_axis;
} MpiMesh;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *axis_name(int axis) { return axis == DPOC_AXIS_DP ? "dp" : "tp"; }

static int mpi_fail(MpiMesh *mm, int rc, const char *call, int axis) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    snprintf(mm->err, sizeof mm->err, "%s over %s failed: %s", call, axis_name(axis), s);
    return rc ? rc : -1;
}

static void *watchdog(void *arg) {
    MpiMesh *mm = arg;
    struct timespec tick = {0, 100 * 1000 * 1000};
    while (!atomic_load(&mm->stop)) {
        nanosleep(&tick, NULL);
        long long b = atomic_load(&mm->busy_ns);
        if (!b || (double)(now_ns() - b) * 1e-9 <= mm->timeout) continue;
        fprintf(stderr,
                "dporun: rank %d of %d: %s over %s has not completed after %.0f s (a peer process died or "
                "hangs); aborting the job\n",
                mm->world_rank, mm->world_size, atomic_load(&mm->busy_what) ? "all_gather" : "all_reduce_sum",
                axis_name(atomic_load(&mm->busy_axis)), mm->timeout);
        fflush(stderr);
        if (mm->thread_multiple) MPI_Abort(MPI_COMM_WORLD, 1);
        _exit(1);
    }
    return NULL;
}

static void busy_begin(MpiMesh *mm, int what, int axis) {
    atomic_store(&mm->busy_what, what);
    atomic_store(&mm->busy_axis, axis);
    atomic_store(&mm->busy_ns, now_ns());
}

static void busy_end(MpiMesh *mm) {
    long long b = atomic_exchange(&mm->busy_ns, 0);
    mm->comm_s += (double)(now_ns() - b) * 1e-9;
    mm->calls++;
}

static int scratch_reserve(MpiMesh *mm, size_t bytes) {
    if (bytes <= mm->scap) return 0;
    free(mm->scratch);
    mm->scap = 0;
    if (!(mm->scratch = malloc(bytes))) {
        snprintf(mm->err, sizeof mm->err, "out of memory (%zu bytes for a collective)", bytes);
        return -1;
    }
    mm->scap = bytes;
    return 0;
}

/* one round: the n elements at buf, summed over comm in rank order */
static int reduce_round(MpiMesh *mm, int axis, char *buf, int64_t n, int f64) {
    MPI_Comm comm = mm->comm[axis];
    int P, me;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &me);
    size_t esz = f64 ? 8 : 4;
    MPI_Datatype dt = f64 ? MPI_DOUBLE : MPI_FLOAT;
    int *scount = mm->counts, *sdisp = scount + mm->world_size, *rcount = sdisp + mm->world_size,
        *rdisp = rcount + mm->world_size;
    for (int q = 0; q < P; q++) {
        int64_t lo = n * q / P, hi = n * (q + 1) / P;
        scount[q] = (int)(hi - lo);
        sdisp[q] = (int)lo;
    }
    int mine = scount[me];
    for (int q = 0; q < P; q++) {
        rcount[q] = mine;
        rdisp[q] = q * mine;
    }
    if (scratch_reserve(mm, (size_t)P * (size_t)mine * esz + 64)) return -1;
    int rc = MPI_Alltoallv(buf, scount, sdisp, dt, mm->scratch, rcount, rdisp, dt, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(mm, rc, "MPI_Alltoallv", axis);
    if (f64) {
        const double *s = (const double *)mm->scratch;
        double *out = (double *)buf + sdisp[me];
        for (int i = 0; i < mine; i++) {
            double acc = s[i];
            for (int q = 1; q < P; q++) acc += s[(size_t)q * (size_t)mine + (size_t)i];
            out[i] = acc;
        }
    } else {
        const float *s = (const float *)mm->scratch;
        float *out = (float *)buf + sdisp[me];
        for (int i = 0; i < mine; i++) {
            float acc = s[i];
            for (int q = 1; q < P; q++) acc += s[(size_t)q * (size_t)mine + (size_t)i];
            out[i] = acc;
        }
    }
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, dt, buf, scount, sdisp, dt, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(mm, rc, "MPI_Allgatherv", axis);
    return 0;
}

static int mpi_all_reduce_sum(void *ctx, DpocAxis axis, void *buf, int64_t n, DpocCollType type) {
    MpiMesh *mm = ctx;
    if ((axis != DPOC_AXIS_DP && axis != DPOC_AXIS_TP) || !mm->have_comm || n < 0 ||
        (type != DPOC_COLL_F32 && type != DPOC_COLL_F64)) {
        snprintf(mm->err, sizeof mm->err, "all_reduce_sum: bad call (axis %d, n %lld, type %d)", (int)axis,
                 (long long)n, (int)type);
        return -1;
    }
    int P;
    MPI_Comm_size(mm->comm[axis], &P);
    if (P == 1 || n == 0) return 0;
    int f64 = type == DPOC_COLL_F64;
    size_t esz = f64 ? 8 : 4;
    busy_begin(mm, 0, axis);
    int rc = 0;
    for (int64_t off = 0; off < n && !rc; off += ROUND_ELEMS) {
        int64_t k = n - off < ROUND_ELEMS ? n - off : ROUND_ELEMS;
        rc = reduce_round(mm, axis, (char *)buf + (size_t)off * esz, k, f64);
    }
    busy_end(mm);
    return rc;
}

static int mpi_all_gather(void *ctx, DpocAxis axis, const void *send, void *recv, int64_t bytes) {
    MpiMesh *mm = ctx;
    if ((axis != DPOC_AXIS_DP && axis != DPOC_AXIS_TP) || !mm->have_comm || bytes < 0) {
        snprintf(mm->err, sizeof mm->err, "all_gather: bad call (axis %d, %lld bytes)", (int)axis, (long long)bytes);
        return -1;
    }
    MPI_Comm comm = mm->comm[axis];
    int P, me;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &me);
    char *r = recv;
    if (bytes == 0) return 0;
    if (P == 1) {
        if (send != recv) memmove(recv, send, (size_t)bytes);
        return 0;
    }
    busy_begin(mm, 1, axis);
    int rc = 0;
    if (bytes <= INT_MAX) {
        const void *s = (const char *)send == r + (size_t)me * (size_t)bytes ? MPI_IN_PLACE : send;
        rc = MPI_Allgather(s, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, comm);
        if (rc != MPI_SUCCESS) rc = mpi_fail(mm, rc, "MPI_Allgather", axis);
    } else {
        /* rounds of c bytes through the scratch buffer (send may lie inside recv) */
        const int64_t c = ROUND_ELEMS;
        for (int64_t off = 0; off < bytes && !rc; off += c) {
            int64_t k = bytes - off < c ? bytes - off : c;
            if (scratch_reserve(mm, (size_t)(P + 1) * (size_t)k)) {
                rc = -1;
                break;
            }
            char *tmp = mm->scratch + (size_t)P * (size_t)k;
            memcpy(tmp, (const char *)send + off, (size_t)k);
            rc = MPI_Allgather(tmp, (int)k, MPI_BYTE, mm->scratch, (int)k, MPI_BYTE, comm);
            if (rc != MPI_SUCCESS) {
                rc = mpi_fail(mm, rc, "MPI_Allgather", axis);
                break;
            }
            for (int q = 0; q < P; q++)
                if (q != me) memcpy(r + (size_t)q * (size_t)bytes + (size_t)off, mm->scratch + (size_t)q * (size_t)k, (size_t)k);
        }
        if (!rc && (const char *)send != r + (size_t)me * (size_t)bytes)
            memmove(r + (size_t)me * (size_t)bytes, send, (size_t)bytes);
    }
    busy_end(mm);
    return rc;
}

static const char *mpi_error(void *ctx) { return ((MpiMesh *)ctx)->err; }

static double mpi_comm_seconds(void *ctx, int64_t *calls) {
    MpiMesh *mm = ctx;
    if (calls) *calls = mm->calls;
    return mm->comm_s;
}

static int mpi_layout(TrainMesh *m, int dp, int tp, char *err, size_t errlen) {
    MpiMesh *mm = m->ctx;
    if (dp < 1 || tp < 1 || (int64_t)dp * tp != m->world_size)
        return snprintf(err, errlen,
                        "the step was compiled for a dp=%d x tp=%d mesh (%lld processes) but mpirun started %d; "
                        "run it with mpirun -np %lld, or compile a step with --mesh for %d processes",
                        dp, tp, (long long)dp * tp, m->world_size, (long long)dp * tp, m->world_size),
               -1;
    if (mm->have_comm) return snprintf(err, errlen, "the mesh layout is already set"), -1;
    int w = m->world_rank;
    m->dp_size = dp;
    m->tp_size = tp;
    m->dp_rank = w / tp;
    m->tp_rank = w % tp;
    int rc = MPI_Comm_split(MPI_COMM_WORLD, m->tp_rank, m->dp_rank, &mm->comm[DPOC_AXIS_DP]);
    if (rc == MPI_SUCCESS) {
        rc = MPI_Comm_split(MPI_COMM_WORLD, m->dp_rank, m->tp_rank, &mm->comm[DPOC_AXIS_TP]);
        if (rc != MPI_SUCCESS) MPI_Comm_free(&mm->comm[DPOC_AXIS_DP]);
    }
    if (rc != MPI_SUCCESS) {
        mpi_fail(mm, rc, "MPI_Comm_split", DPOC_AXIS_DP);
        return snprintf(err, errlen, "%s", mm->err), -1;
    }
    MPI_Comm_set_errhandler(mm->comm[0], MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(mm->comm[1], MPI_ERRORS_RETURN);
    mm->have_comm = 1;
    return 0;
}

int mesh_mpi_running(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE") || getenv("PMI_RANK");
}

int mesh_mpi_init(TrainMesh *m, int *argc, char ***argv, double timeout_s, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
        return snprintf(err, errlen, "MPI_Init_thread failed"), -1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MpiMesh *mm = calloc(1, sizeof *mm);
    int ws = 1, wr = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &ws);
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    if (!mm || !(mm->counts = calloc((size_t)ws * 4, sizeof(int)))) {
        if (mm) free(mm);
        MPI_Finalize();
        return snprintf(err, errlen, "out of memory"), -1;
    }
    mm->world_rank = m->world_rank = wr;
    mm->world_size = m->world_size = ws;
    mm->thread_multiple = provided >= MPI_THREAD_MULTIPLE;
    mm->timeout = timeout_s;
    m->ctx = mm;
    m->dp_size = m->tp_size = 1;
    m->layout = mpi_layout;
    m->all_reduce_sum = mpi_all_reduce_sum;
    m->all_gather = mpi_all_gather;
    m->error = mpi_error;
    m->comm_seconds = mpi_comm_seconds;
    if (timeout_s > 0 && pthread_create(&mm->wd, NULL, watchdog, mm) == 0) mm->wd_on = 1;
    return 0;
}

void mesh_mpi_abort(TrainMesh *m, int code, const char *msg) {
    fprintf(stderr, "dporun: rank %d of %d: %s\n", m->world_rank, m->world_size, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    _exit(code ? code : 1);
}

void mesh_mpi_finish(TrainMesh *m) {
    MpiMesh *mm = m->ctx;
    if (!mm) return;
    if (mm->wd_on) {
        atomic_store(&mm->stop, 1);
        pthread_join(mm->wd, NULL);
    }
    if (mm->have_comm) {
        MPI_Comm_free(&mm->comm[0]);
        MPI_Comm_free(&mm->comm[1]);
    }
    free(mm->scratch);
    free(mm->counts);
    free(mm);
    m->ctx = NULL;
    MPI_Finalize();
}
