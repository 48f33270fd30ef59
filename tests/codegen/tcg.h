/* tcg.h — helpers shared by the codegen tests (header-only).
 *
 * A test builds an IR graph, and tcg_compile runs the real path on it:
 * tensor_table_build, sched_plan, codegen_build_so into a private temporary
 * directory, then dpoc_step_open (runtime/step_load.c). Values go in and out
 * by tensor name as doubles (converted to the tensor's dtype), so reference
 * loops in the tests are written once, in double, with explicit rounding
 * where the dtype is f32.
 *
 * tcg_chunked is a DpocServices whose parallel_for cuts [0, n) into uneven
 * chunks (sizes 1, 2, 3, 5, 8, ... cycling) and runs them last chunk first:
 * a kernel that depends on how its range is split, or that reads another
 * chunk's results, gives different bits than the serial run.
 *
 * CHECK counts failures and carries on; main returns check_done().
 */
#ifndef DPOC_TESTS_TCG_H
#define DPOC_TESTS_TCG_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/step_load.h"
#include "tests/check.h"

static char tcg_dir[256];
static int tcg_seq;

/* at exit: removes whatever a failed check left in the test's own directory */
static inline void tcg_rmdir(void) {
    if (!tcg_dir[0]) return;
    DIR *d = opendir(tcg_dir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", tcg_dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(tcg_dir);
}

static inline const char *tcg_tmpdir(void) {
    if (!tcg_dir[0]) {
        snprintf(tcg_dir, sizeof tcg_dir, "/tmp/dpoc-cgtest-XXXXXX");
        if (!mkdtemp(tcg_dir)) {
            perror("mkdtemp");
            exit(2);
        }
        atexit(tcg_rmdir);
    }
    return tcg_dir;
}

/* ---- random numbers (fixed seed xorshift) ---- */
typedef struct TcgRng {
    uint64_t s;
} TcgRng;

static inline double tcg_uniform(TcgRng *r, double lo, double hi) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return lo + (hi - lo) * (double)(r->s >> 11) / 9007199254740992.0;
}

/* ---- compile and load ---- */
typedef struct TcgGraphs {
    IrGraph *g[2];      /* train_step, logps (NULL when absent) */
    int with_optimizer;
    const char *config_json;
    const char *emit_llvm;
    int no_kernel_dedup;  /* CodegenOptions.no_kernel_dedup */
} TcgGraphs;

/* Compiles the graphs and opens the step; 0 or -1 (message printed). */
static inline int tcg_compile_ex(const TcgGraphs *gs, DpocStep *step, char *err, size_t errlen) {
    IrGraph *graphs[2];
    const char *names[2] = {"train_step", "logps"};
    int ng = 0;
    int idx[2];
    for (int i = 0; i < 2; i++)
        if (gs->g[i]) {
            idx[ng] = i;
            graphs[ng++] = gs->g[i];
        }
    TensorTable tt;
    if (tensor_table_build(&tt, graphs, ng, err, errlen)) return -1;
    SchedPlan plans[2];
    CodegenEntry e[2];
    int np = 0, rc = -1;
    for (int i = 0; i < ng; i++) {
        if (sched_plan(graphs[i], &tt, &plans[i], err, errlen)) goto out;
        np++;
        e[i] = (CodegenEntry){names[idx[i]], graphs[i], &plans[i]};
    }
    char path[400];
    snprintf(path, sizeof path, "%s/step%d.so", tcg_tmpdir(), tcg_seq++);
    CodegenOptions o = {.with_optimizer = gs->with_optimizer,
                        .config_json = gs->config_json,
                        .emit_llvm_path = gs->emit_llvm,
                        .no_kernel_dedup = gs->no_kernel_dedup};
    if (codegen_build_so(e, ng, &tt, &o, path, err, errlen)) goto out;
    rc = dpoc_step_open(step, path, err, errlen);
    unlink(path);
out:
    for (int i = 0; i < np; i++) sched_plan_free(&plans[i]);
    tensor_table_free(&tt);
    return rc;
}

static inline int tcg_compile(IrGraph *g, DpocStep *step) {
    char err[1024];
    TcgGraphs gs = {{g, NULL}, 0, NULL, NULL, 0};
    if (tcg_compile_ex(&gs, step, err, sizeof err)) {
        fprintf(stderr, "compile: %s\n", err);
        check_failures++;
        return -1;
    }
    return 0;
}

/* ---- values by name ---- */
static inline double tcg_round(DpocDType t, double v) {
    if (t == DPOC_DT_F32) return (double)(float)v;
    if (t == DPOC_DT_I32) return (double)(int32_t)v;
    return v;
}

static inline int tcg_set(DpocStep *s, const char *name, DpocRole role, const double *v) {
    DpocTensorInfo ti;
    void *p = dpoc_step_find(s, name, role, &ti);
    if (!p) {
        fprintf(stderr, "no %s tensor '%s' in the step\n", dpoc_role_name(role), name);
        check_failures++;
        return -1;
    }
    for (int64_t i = 0; i < ti.numel; i++) {
        if (ti.dtype == DPOC_DT_F32) ((float *)p)[i] = (float)v[i];
        else if (ti.dtype == DPOC_DT_F64) ((double *)p)[i] = v[i];
        else ((int32_t *)p)[i] = (int32_t)v[i];
    }
    return 0;
}

static inline int tcg_get(DpocStep *s, const char *name, DpocRole role, double *v, int64_t n) {
    DpocTensorInfo ti;
    void *p = dpoc_step_find(s, name, role, &ti);
    if (!p || ti.numel != n) {
        fprintf(stderr, "no %s tensor '%s' with %lld elements in the step\n", dpoc_role_name(role), name, (long long)n);
        check_failures++;
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        if (ti.dtype == DPOC_DT_F32) v[i] = ((float *)p)[i];
        else if (ti.dtype == DPOC_DT_F64) v[i] = ((double *)p)[i];
        else v[i] = ((int32_t *)p)[i];
    }
    return 0;
}

/* ---- an uneven, out-of-order parallel_for ---- */
static void tcg_chunked_for(void *ctx, DpocKernelFn fn, uint8_t *const *regions, int64_t n) {
    static const int64_t sizes[] = {1, 2, 3, 5, 8, 13, 4, 7};
    int64_t cuts[4096];
    int nc = 0;
    int64_t at = 0;
    int k = ctx ? (int)(*(int *)ctx) : 0;
    cuts[nc++] = 0;
    while (at < n && nc < 4094) {
        at += sizes[k++ % 8];
        if (at > n) at = n;
        cuts[nc++] = at;
    }
    if (at < n) cuts[nc++] = n;
    for (int i = nc - 1; i > 0; i--) fn(regions, cuts[i - 1], cuts[i]);
}

static int tcg_chunk_seed;
static const DpocServices tcg_chunked = {
    .ctx = &tcg_chunk_seed, .parallel_for = tcg_chunked_for, .dp_size = 1, .tp_size = 1};

/* runs the train_step entry; 0 ok */
static inline int tcg_run(DpocStep *s, const DpocServices *svc) {
    char err[256];
    int rc = dpoc_step_train(s, svc, err, sizeof err);
    if (rc) {
        fprintf(stderr, "run: %s\n", err);
        check_failures++;
    }
    return rc;
}

/* ---- shapes ---- */
static inline int64_t tcg_numel(int nd, const int64_t *s) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= s[d];
    return n;
}

static inline void tcg_unravel(int64_t f, int nd, const int64_t *s, int64_t *idx) {
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = f % s[d];
        f /= s[d];
    }
}

static inline int64_t tcg_ravel(int nd, const int64_t *s, const int64_t *idx) {
    int64_t f = 0;
    for (int d = 0; d < nd; d++) f = f * s[d] + idx[d];
    return f;
}

/* sum of every element, as a scalar (rank 0) */
static inline int32_t tcg_sum_all(IrGraph *g, int32_t x) {
    if (x < 0) return -1;
    int nd = g->nodes[x].ndim;
    for (int d = 0; d < nd; d++) x = ir_reduce(g, OP_REDUCE_SUM, x, d);
    return ir_reshape(g, x, 0, NULL);
}

/* 1 when a and b are the same value (NaN equals NaN) */
static inline int tcg_same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

#endif
