/* gemm_bench.c — dpoc's compiled matmul kernel against OpenBLAS sgemm.
 *
 * usage: gemm_bench --tokens M --hidden H --q QD --kv KVD --inter I --vocab V
 *                   [--threads 1,2] [--min-time S]
 *
 * The shapes are those of a decoder's linear layers at M token positions:
 * for each projection x[M,in] -> y[M,out] (q, k/v, o, gate/up, down, the
 * LM head) the forward y = x·Wᵀ (A·Bᵀ), the input gradient dx = dy·W (A·B)
 * and the weight gradient dW = dyᵀ·x (Aᵀ·B). Batched attention matmuls are
 * not included. Each shape is built as a one-matmul IR graph (ir/ir.h:
 * two f32 inputs, one output), scheduled and compiled with codegen_build_so
 * into a temporary step.so, opened with the runtime loader and run through
 * its train_step entry on the runtime thread pool, exactly as a step runs
 * its matmul kernels. OpenBLAS's cblas_sgemm (row-major, same transposes)
 * runs the same product with openblas_set_num_threads(threads). Each is
 * run once to warm up, then repeatedly until --min-time seconds (default
 * 0.3) have passed, at least twice; the best time counts. GFLOP/s is
 * 2·M·N·K / time; "ratio" is dpoc / OpenBLAS. The two results are compared
 * (largest |difference| over the largest |value|) as a sanity check.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/step_load.h"
#include "runtime/threadpool.h"

typedef struct Shape {
    const char *what;
    int64_t M, N, K;
    int ta, tb;
} Shape;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* compiles c = matmul(a, b, ta, tb) into path and opens it */
static int build_matmul(const Shape *sh, const char *path, DpocStep *step, char *err, size_t errlen) {
    IrGraph g;
    ir_init(&g);
    int64_t sa[2] = {sh->ta ? sh->K : sh->M, sh->ta ? sh->M : sh->K};
    int64_t sb[2] = {sh->tb ? sh->N : sh->K, sh->tb ? sh->K : sh->N};
    int32_t a = ir_input(&g, "a", DT_F32, 2, sa);
    int32_t b = ir_input(&g, "b", DT_F32, 2, sb);
    int32_t c = a >= 0 && b >= 0 ? ir_matmul(&g, a, b, sh->ta, sh->tb) : -1;
    if (c < 0 || ir_add_output(&g, "c", c, IR_OUT_VALUE)) {
        snprintf(err, errlen, "building the graph: %s", g.err);
        ir_free(&g);
        return -1;
    }
    IrGraph *graphs[1] = {&g};
    TensorTable tt;
    SchedPlan plan;
    int rc = -1;
    if (tensor_table_build(&tt, graphs, 1, err, errlen)) goto out_g;
    if (sched_plan(&g, &tt, &plan, err, errlen)) goto out_tt;
    CodegenEntry e = {"train_step", &g, &plan};
    CodegenOptions o = {0};
    if (codegen_build_so(&e, 1, &tt, &o, path, err, errlen) == 0) rc = dpoc_step_open(step, path, err, errlen);
    unlink(path);
    sched_plan_free(&plan);
out_tt:
    tensor_table_free(&tt);
out_g:
    ir_free(&g);
    return rc;
}

static void fill(float *p, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        p[i] = (float)((double)(seed >> 11) / 9007199254740992.0 - 0.5);
    }
}

typedef struct Timed {
    DpocStep *step;
    const DpocServices *svc;
    const Shape *sh;
    const float *a, *b;
    float *c;
} Timed;

static void run_dpoc(const Timed *t) {
    char err[256];
    dpoc_step_train(t->step, t->svc, err, sizeof err);
}

static void run_blas(const Timed *t) {
    const Shape *s = t->sh;
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, (int)s->M,
                (int)s->N, (int)s->K, 1.0f, t->a, s->ta ? (int)s->M : (int)s->K, t->b, s->tb ? (int)s->K : (int)s->N,
                0.0f, t->c, (int)s->N);
}

static double best_time(void (*fn)(const Timed *), const Timed *t, double min_time) {
    fn(t);
    double best = INFINITY, start = now_s();
    for (int i = 0; i < 2 || now_s() - start < min_time; i++) {
        double t0 = now_s();
        fn(t);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static int bench_shape(const Shape *sh, const int *threads, int nthreads, double min_time, const char *dir) {
    char err[1024], path[512];
    snprintf(path, sizeof path, "%s/mm.so", dir);
    DpocStep step;
    if (build_matmul(sh, path, &step, err, sizeof err)) {
        fprintf(stderr, "gemm_bench: %s %lldx%lldx%lld: %s\n", sh->what, (long long)sh->M, (long long)sh->N,
                (long long)sh->K, err);
        return -1;
    }
    float *a = dpoc_step_find(&step, "a", DPOC_ROLE_INPUT, NULL);
    float *b = dpoc_step_find(&step, "b", DPOC_ROLE_INPUT, NULL);
    float *c = dpoc_step_find(&step, "c", DPOC_ROLE_OUTPUT, NULL);
    float *cb = malloc((size_t)(sh->M * sh->N) * sizeof *cb);
    if (!a || !b || !c || !cb) {
        fprintf(stderr, "gemm_bench: the matmul step lacks a, b or c (or out of memory)\n");
        free(cb);
        dpoc_step_close(&step);
        return -1;
    }
    fill(a, sh->M * sh->K, 1);
    fill(b, sh->K * sh->N, 2);
    double gflop = 2.0 * (double)sh->M * (double)sh->N * (double)sh->K * 1e-9;
    for (int ti = 0; ti < nthreads; ti++) {
        ThreadPool *pool = tpool_create(threads[ti], err, sizeof err);
        if (!pool) {
            fprintf(stderr, "gemm_bench: %s\n", err);
            break;
        }
        DpocServices svc = tpool_services(pool);
        Timed t = {&step, &svc, sh, a, b, cb};
        double td = best_time(run_dpoc, &t, min_time);
        tpool_destroy(pool);
        openblas_set_num_threads(threads[ti]);
        double tb = best_time(run_blas, &t, min_time);
        double diff = 0, mag = 0;
        for (int64_t i = 0; i < sh->M * sh->N; i++) {
            double d = fabs((double)c[i] - (double)cb[i]);
            if (d > diff) diff = d;
            if (fabs((double)cb[i]) > mag) mag = fabs((double)cb[i]);
        }
        printf("%-14s %-5s %6lld %6lld %6lld %3d %10.2f %10.2f %7.3f %9.1e\n", sh->what,
               sh->ta ? "AT.B" : sh->tb ? "A.BT" : "A.B", (long long)sh->M, (long long)sh->N, (long long)sh->K,
               threads[ti], gflop / td, gflop / tb, tb / td, mag > 0 ? diff / mag : diff);
        printf("RESULT gemm=%s op=%s M=%lld N=%lld K=%lld threads=%d dpoc_gflops=%.3f blas_gflops=%.3f ratio=%.4f\n",
               sh->what, sh->ta ? "ATB" : sh->tb ? "ABT" : "AB", (long long)sh->M, (long long)sh->N,
               (long long)sh->K, threads[ti], gflop / td, gflop / tb, tb / td);
        fflush(stdout);
    }
    free(cb);
    dpoc_step_close(&step);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: gemm_bench --tokens M --hidden H --q QD --kv KVD --inter I --vocab V\n"
                    "                  [--threads 1,2] [--min-time S]\n");
}

int main(int argc, char **argv) {
    int64_t M = 0, H = 0, QD = 0, KVD = 0, IM = 0, V = 0;
    int threads[8] = {1, 2}, nthreads = 2;
    double min_time = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage(), 2;
        const char *v = argv[++i];
        if (!strcmp(a, "--tokens")) M = atoll(v);
        else if (!strcmp(a, "--hidden")) H = atoll(v);
        else if (!strcmp(a, "--q")) QD = atoll(v);
        else if (!strcmp(a, "--kv")) KVD = atoll(v);
        else if (!strcmp(a, "--inter")) IM = atoll(v);
        else if (!strcmp(a, "--vocab")) V = atoll(v);
        else if (!strcmp(a, "--min-time")) min_time = atof(v);
        else if (!strcmp(a, "--threads")) {
            nthreads = 0;
            for (char *s = (char *)v; *s && nthreads < 8;) {
                threads[nthreads++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
                else if (*s) return usage(), 2;
            }
        } else return usage(), 2;
    }
    if (M <= 0 || H <= 0 || QD <= 0 || KVD <= 0 || IM <= 0 || V <= 0 || nthreads < 1) return usage(), 2;
    for (int i = 0; i < nthreads; i++)
        if (threads[i] < 1) return usage(), 2;
    struct {
        const char *name;
        int64_t in, out;
    } lin[] = {{"q_proj", H, QD}, {"kv_proj", H, KVD}, {"o_proj", QD, H},
               {"gate_up", H, IM}, {"down_proj", IM, H}, {"lm_head", H, V}};
    char dir[] = "/tmp/dpoc-gemm-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("gemm_bench: mkdtemp");
        return 1;
    }
    printf("%-14s %-5s %6s %6s %6s %3s %10s %10s %7s %9s\n", "linear", "op", "M", "N", "K", "thr", "dpoc GF/s",
           "BLAS GF/s", "ratio", "rel.diff");
    int rc = 0;
    for (size_t l = 0; l < sizeof lin / sizeof lin[0]; l++) {
        Shape s[3] = {
            {lin[l].name, M, lin[l].out, lin[l].in, 0, 1},  /* y = x W^T */
            {lin[l].name, M, lin[l].in, lin[l].out, 0, 0},  /* dx = dy W */
            {lin[l].name, lin[l].out, lin[l].in, M, 1, 0},  /* dW = dy^T x */
        };
        for (int k = 0; k < 3; k++)
            if (bench_shape(&s[k], threads, nthreads, min_time, dir)) rc = 1;
    }
    rmdir(dir);
    return rc;
}
