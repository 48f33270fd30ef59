/* gemm_bench.c — dpoc's compiled matmul kernels against OpenBLAS sgemm.
 *
 * usage: gemm_bench --model MODEL.yaml [--threads 1,2] [--min-time S] [--rounds R] [--peak-gflops P] [--clock wall|cpu]
 *        gemm_bench --tokens M --hidden H --q QD --kv KVD --inter I --vocab V [...]
 *        gemm_bench --shape OP:MxNxK [--shape ...] [...]
 *
 * With --model, the shapes are every distinct f32 matmul of the model's
 * train_step graph as the compiler produces it by default (frontend with
 * dpoc compile's automatic choices, then the passes simplify, autodiff,
 * simplify), the head dense: the forward A.B^T of each linear layer, its
 * input gradient A.B and weight gradient A^T.B, the head's per vocabulary
 * chunk, and the batched attention products (scores, weighted values and
 * their gradients) only where attention is blocked (a head_dim that is not
 * a multiple of 16): attention as one op runs its own tiled kernels, timed
 * with the step. Each shape comes with the number of times one step
 * computes it. With --shape OP:MxNxK (repeatable; OP AB, ABT, ATB or
 * ATBT: which operands are transposed), just those shapes, once each.
 * With the --tokens flags,
 * the linear layers only: for each projection x[M,in] -> y[M,out] (q, k/v,
 * o, gate/up, down, the LM head) the forward y = x.W^T, dx = dy.W and
 * dW = dy^T.x.
 *
 * Each shape is built as a one-matmul IR graph (two f32 inputs, one output,
 * batched when the model's is), scheduled and compiled with
 * codegen_build_so into a temporary step.so, opened with the runtime
 * loader and run through its train_step entry on the runtime thread pool,
 * exactly as a step runs its matmul kernels. OpenBLAS's cblas_sgemm
 * (row-major, same transposes; one call per batch entry, as PyTorch's CPU
 * bmm does) runs the same product with openblas_set_num_threads(threads);
 * set OPENBLAS_NUM_THREADS too, or its threads spin during dpoc's runs.
 * Each is run once to warm up; then the two take turns --rounds times
 * (default 3), each running repeatedly in a round until its share of
 * --min-time seconds (default 0.3 in all) has passed, at least three times
 * over the rounds; the best time counts. Taking turns spreads a slow
 * phase of a shared machine over both instead of letting it fall on one.
 * GFLOP/s is 2.B.M.N.K / time; "ratio" is dpoc / OpenBLAS (> 1: dpoc
 * faster); "%peak" is dpoc's GFLOP/s over threads x the per-thread peak
 * (--peak-gflops, default: /proc/cpuinfo's MHz x SIMD lanes x 2 x FMAs
 * per cycle, runtime/cpu_peak.h). --clock cpu times with the process's CPU time / threads instead
 * of the wall clock (for a machine shared with other jobs). The two results are compared (largest |difference| over the
 * largest |value|) as a sanity check. At the end, the GEMM time of one
 * step (sum over shapes of calls x best time) for both.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/step_load.h"
#include "runtime/threadpool.h"
#include "runtime/cpu_peak.h"

typedef struct Shape {
    char what[24];
    int64_t batch, M, N, K; /* batch 0: plain 2-d matmul */
    int ta, tb;
    int count;              /* calls per step */
} Shape;

typedef struct Totals {
    double dpoc[8], blas[8]; /* per thread-count entry: sum of count x best time */
} Totals;

/* --clock cpu: the process's CPU time divided by the thread count, an
 * estimate of the wall time on an idle machine that a busy one cannot
 * stretch (time slices lost to other processes are not counted; every
 * thread of both libraries is busy or spinning during a timed call) */
static int use_cpu_clock;
static int clock_threads = 1;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(use_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return use_cpu_clock ? t / clock_threads : t;
}

static int64_t nbatch(const Shape *s) { return s->batch ? s->batch : 1; }

/* compiles c = matmul(a, b, ta, tb) into path and opens it */
static int build_matmul(const Shape *sh, const char *path, DpocStep *step, char *err, size_t errlen) {
    IrGraph g;
    ir_init(&g);
    int o = sh->batch ? 1 : 0, nd = 2 + o;
    int64_t sa[3] = {sh->batch}, sb[3] = {sh->batch};
    sa[o] = sh->ta ? sh->K : sh->M;
    sa[o + 1] = sh->ta ? sh->M : sh->K;
    sb[o] = sh->tb ? sh->N : sh->K;
    sb[o + 1] = sh->tb ? sh->K : sh->N;
    int32_t a = ir_input(&g, "a", DT_F32, nd, sa);
    int32_t b = ir_input(&g, "b", DT_F32, nd, sb);
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
    CodegenOptions o2 = {0};
    if (codegen_build_so(&e, 1, &tt, &o2, path, err, errlen) == 0) rc = dpoc_step_open(step, path, err, errlen);
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
    for (int64_t i = 0; i < nbatch(s); i++)
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, (int)s->M,
                    (int)s->N, (int)s->K, 1.0f, t->a + i * s->M * s->K, s->ta ? (int)s->M : (int)s->K,
                    t->b + i * s->K * s->N, s->tb ? (int)s->K : (int)s->N, 0.0f, t->c + i * s->M * s->N, (int)s->N);
}

/* the best of at least min_runs timed calls lasting min_time in all,
 * after one untimed warm-up call when warm is set */
static double best_time(void (*fn)(const Timed *), const Timed *t, double min_time, int min_runs, int warm) {
    if (warm) fn(t);
    double best = INFINITY, start = now_s();
    for (int i = 0; i < min_runs || now_s() - start < min_time; i++) {
        double t0 = now_s();
        fn(t);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static const char *op_name(const Shape *s) { return s->ta ? (s->tb ? "ATBT" : "ATB") : s->tb ? "ABT" : "AB"; }

static int bench_shape(const Shape *sh, const int *threads, int nthreads, double min_time, int rounds, double peak1,
                       const char *dir, Totals *tot) {
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
    int64_t nc = nbatch(sh) * sh->M * sh->N;
    float *cb = malloc((size_t)nc * sizeof *cb);
    if (!a || !b || !c || !cb) {
        fprintf(stderr, "gemm_bench: the matmul step lacks a, b or c (or out of memory)\n");
        free(cb);
        dpoc_step_close(&step);
        return -1;
    }
    fill(a, nbatch(sh) * sh->M * sh->K, 1);
    fill(b, nbatch(sh) * sh->K * sh->N, 2);
    double gflop = 2.0 * (double)nbatch(sh) * (double)sh->M * (double)sh->N * (double)sh->K * 1e-9;
    for (int ti = 0; ti < nthreads; ti++) {
        /* the turns (see the header) */
        double td = INFINITY, tb = INFINITY;
        int failed = 0, runs = (3 + rounds - 1) / rounds;
        for (int r = 0; r < rounds; r++) {
            ThreadPool *pool = tpool_create(threads[ti], err, sizeof err);
            if (!pool) {
                fprintf(stderr, "gemm_bench: %s\n", err);
                failed = 1;
                break;
            }
            DpocServices svc = tpool_services(pool);
            Timed t = {&step, &svc, sh, a, b, cb};
            clock_threads = threads[ti];
            double x = best_time(run_dpoc, &t, min_time / rounds, runs, r == 0);
            if (x < td) td = x;
            tpool_destroy(pool);
            openblas_set_num_threads(threads[ti]);
            x = best_time(run_blas, &t, min_time / rounds, runs, r == 0);
            if (x < tb) tb = x;
        }
        if (failed) break;
        double diff = 0, mag = 0;
        for (int64_t i = 0; i < nc; i++) {
            double d = fabs((double)c[i] - (double)cb[i]);
            if (d > diff) diff = d;
            if (fabs((double)cb[i]) > mag) mag = fabs((double)cb[i]);
        }
        tot->dpoc[ti] += sh->count * td;
        tot->blas[ti] += sh->count * tb;
        double pk = 100.0 * gflop / td / (peak1 * threads[ti]);
        printf("%-10s %-4s %4lld %6lld %6lld %6lld %3d %3d %9.2f %9.2f %6.3f %6.1f %9.1e\n", sh->what, op_name(sh),
               (long long)sh->batch, (long long)sh->M, (long long)sh->N, (long long)sh->K, sh->count, threads[ti],
               gflop / td, gflop / tb, tb / td, pk, mag > 0 ? diff / mag : diff);
        printf("RESULT gemm=%s op=%s batch=%lld M=%lld N=%lld K=%lld count=%d threads=%d dpoc_gflops=%.3f "
               "blas_gflops=%.3f ratio=%.4f peak_pct=%.1f\n",
               sh->what, op_name(sh), (long long)sh->batch, (long long)sh->M, (long long)sh->N, (long long)sh->K,
               sh->count, threads[ti], gflop / td, gflop / tb, tb / td, pk);
        fflush(stdout);
    }
    free(cb);
    dpoc_step_close(&step);
    return 0;
}

/* every distinct f32 matmul of the model's train_step graph, with counts */
static int model_shapes(const char *path, Shape **out, int *nout) {
    char err[1024];
    ModelCfg cfg;
    if (model_cfg_load(path, &cfg, err, sizeof err)) {
        fprintf(stderr, "gemm_bench: %s\n", err);
        return -1;
    }
    IrGraph g;
    ir_init(&g);
    /* the step's defaults (as dpoc compile chooses them), but the head's
     * GEMMs at their dense shapes: attention as one op where the model
     * allows it (its products are the op's own tiled kernels, not matmuls),
     * the head in its vocabulary chunks */
    int64_t vchunk, ablock;
    int akeep, hkeep, fused = model_attn_fused_default(&cfg);
    model_auto_chunks(&cfg, model_rows(&cfg) * model_row_len(&cfg), &vchunk, &ablock, &akeep, &hkeep);
    BuildOptions bo = {.dtype = DT_F32, .dense_head = 1, .vocab_chunk = vchunk, .attn_block = ablock,
                       .attn_keep = akeep, .attn_fused = fused, .head_keep = hkeep, .remat_activations = 1};
    PassCtx pc;
    memset(&pc, 0, sizeof pc);
    pc.log = stderr;
    int rc = -1;
    if (model_build_graph(&cfg, BUILD_TRAIN, &bo, &g, err, sizeof err)) {
        fprintf(stderr, "gemm_bench: %s\n", err);
        goto out;
    }
    if (pass_pipeline_run(&g, &pc, "simplify,autodiff,simplify")) {
        fprintf(stderr, "gemm_bench: %s\n", pc.err);
        goto out;
    }
    Shape *sh = NULL;
    int n = 0, cap = 0;
    for (int32_t id = 0; id < g.n; id++) {
        const IrNode *x = ir_node(&g, id);
        if (x->op != OP_MATMUL || x->dtype != DT_F32) continue;
        const IrNode *a = ir_node(&g, x->in[0]);
        int r = x->ndim;
        Shape s = {.ta = (int)x->attr[0], .tb = (int)x->attr[1], .M = x->shape[r - 2], .N = x->shape[r - 1], .count = 1};
        s.K = s.ta ? a->shape[r - 2] : a->shape[r - 1];
        for (int d = 0; d < r - 2; d++) s.batch = (s.batch ? s.batch : 1) * x->shape[d];
        snprintf(s.what, sizeof s.what, "%s", s.batch ? "attention" : "linear");
        int i = 0;
        for (; i < n; i++)
            if (sh[i].batch == s.batch && sh[i].M == s.M && sh[i].N == s.N && sh[i].K == s.K && sh[i].ta == s.ta &&
                sh[i].tb == s.tb)
                break;
        if (i < n) {
            sh[i].count++;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            Shape *ns = realloc(sh, (size_t)cap * sizeof *sh);
            if (!ns) {
                free(sh);
                goto out;
            }
            sh = ns;
        }
        sh[n++] = s;
    }
    *out = sh;
    *nout = n;
    rc = 0;
out:
    ir_free(&g);
    model_cfg_free(&cfg);
    return rc;
}

static double default_peak(void) {
    CpuVector v = cpu_vector_detect();
    return cpu_peak_gflops(1, cpu_nominal_ghz(), &v, NULL, 0);
}

static void usage(void) {
    fprintf(stderr, "usage: gemm_bench --model MODEL.yaml [--threads 1,2] [--min-time S] [--rounds R] [--peak-gflops P] [--clock wall|cpu]\n"
                    "       gemm_bench --tokens M --hidden H --q QD --kv KVD --inter I --vocab V\n"
                    "                  [--threads 1,2] [--min-time S] [--rounds R] [--peak-gflops P] [--clock wall|cpu]\n"
                    "       gemm_bench --shape OP:MxNxK [--shape ...] [--threads 1,2] [...]   (OP: AB, ABT, ATB, ATBT)\n");
}

/* "OP:MxNxK" (OP one of AB, ABT, ATB, ATBT) into sh; 0 on success */
static int parse_shape(const char *v, Shape *sh) {
    static const char *const ops[4] = {"AB", "ABT", "ATB", "ATBT"};
    const char *colon = strchr(v, ':');
    if (!colon) return -1;
    memset(sh, 0, sizeof *sh);
    int op = -1;
    for (int i = 0; i < 4; i++)
        if ((size_t)(colon - v) == strlen(ops[i]) && !strncmp(v, ops[i], strlen(ops[i]))) op = i;
    if (op < 0) return -1;
    char *end;
    int64_t d[3];
    const char *p = colon + 1;
    for (int i = 0; i < 3; i++) {
        d[i] = strtoll(p, &end, 10);
        if (end == p || d[i] <= 0 || *end != (i < 2 ? 'x' : '\0')) return -1;
        p = end + 1;
    }
    snprintf(sh->what, sizeof sh->what, "shape");
    sh->M = d[0];
    sh->N = d[1];
    sh->K = d[2];
    sh->ta = op >= 2;
    sh->tb = op == 1 || op == 3;
    sh->count = 1;
    return 0;
}

int main(int argc, char **argv) {
    int64_t M = 0, H = 0, QD = 0, KVD = 0, IM = 0, V = 0;
    int threads[8] = {1, 2}, nthreads = 2;
    double min_time = 0.3, peak1 = 0;
    int rounds = 3;
    const char *model = NULL;
    Shape given[32];
    int ngiven = 0;
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
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--shape")) {
            if (ngiven == 32 || parse_shape(v, &given[ngiven])) {
                fprintf(stderr, "gemm_bench: --shape %s: expected OP:MxNxK (OP AB, ABT, ATB or ATBT; at most 32)\n", v);
                return 2;
            }
            ngiven++;
        }
        else if (!strcmp(a, "--min-time")) min_time = atof(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else if (!strcmp(a, "--peak-gflops")) peak1 = atof(v);
        else if (!strcmp(a, "--clock") && (!strcmp(v, "cpu") || !strcmp(v, "wall"))) use_cpu_clock = !strcmp(v, "cpu");
        else if (!strcmp(a, "--threads")) {
            nthreads = 0;
            for (char *s = (char *)v; *s && nthreads < 8;) {
                threads[nthreads++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
                else if (*s) return usage(), 2;
            }
        } else return usage(), 2;
    }
    if (nthreads < 1 || rounds < 1) return usage(), 2;
    for (int i = 0; i < nthreads; i++)
        if (threads[i] < 1) return usage(), 2;
    if (peak1 <= 0) peak1 = default_peak();
    Shape *shapes = NULL;
    int nshapes = 0;
    if (model) {
        if (model_shapes(model, &shapes, &nshapes)) return 1;
    } else if (ngiven) {
        shapes = malloc((size_t)ngiven * sizeof *shapes);
        if (!shapes) return 1;
        memcpy(shapes, given, (size_t)ngiven * sizeof *shapes);
        nshapes = ngiven;
    } else {
        if (M <= 0 || H <= 0 || QD <= 0 || KVD <= 0 || IM <= 0 || V <= 0) return usage(), 2;
        struct {
            const char *name;
            int64_t in, out;
        } lin[] = {{"q_proj", H, QD}, {"kv_proj", H, KVD}, {"o_proj", QD, H},
                   {"gate_up", H, IM}, {"down_proj", IM, H}, {"lm_head", H, V}};
        nshapes = 3 * (int)(sizeof lin / sizeof lin[0]);
        shapes = calloc((size_t)nshapes, sizeof *shapes);
        if (!shapes) return 1;
        for (int l = 0; l < nshapes / 3; l++) {
            Shape s[3] = {
                {"", 0, M, lin[l].out, lin[l].in, 0, 1, 1}, /* y = x W^T */
                {"", 0, M, lin[l].in, lin[l].out, 0, 0, 1}, /* dx = dy W */
                {"", 0, lin[l].out, lin[l].in, M, 1, 0, 1}, /* dW = dy^T x */
            };
            for (int k = 0; k < 3; k++) {
                snprintf(s[k].what, sizeof s[k].what, "%s", lin[l].name);
                shapes[3 * l + k] = s[k];
            }
        }
    }
    char dir[] = "/tmp/dpoc-gemm-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("gemm_bench: mkdtemp");
        free(shapes);
        return 1;
    }
    printf("peak per thread %.1f GFLOP/s\n", peak1);
    printf("%-10s %-4s %4s %6s %6s %6s %3s %3s %9s %9s %6s %6s %9s\n", "gemm", "op", "bat", "M", "N", "K", "cnt",
           "thr", "dpoc GF/s", "BLAS GF/s", "ratio", "%peak", "rel.diff");
    Totals tot;
    memset(&tot, 0, sizeof tot);
    int rc = 0;
    for (int i = 0; i < nshapes; i++)
        if (bench_shape(&shapes[i], threads, nthreads, min_time, rounds, peak1, dir, &tot)) rc = 1;
    for (int ti = 0; ti < nthreads; ti++) {
        printf("GEMM time of one step, %d thread(s): dpoc %.4f s, OpenBLAS %.4f s, ratio %.3f\n", threads[ti],
               tot.dpoc[ti], tot.blas[ti], tot.blas[ti] / tot.dpoc[ti]);
        printf("RESULT gemm_total threads=%d dpoc_s=%.6f blas_s=%.6f ratio=%.4f\n", threads[ti], tot.dpoc[ti],
               tot.blas[ti], tot.blas[ti] / tot.dpoc[ti]);
    }
    rmdir(dir);
    free(shapes);
    return rc;
}
