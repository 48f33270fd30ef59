/* test_kbench.c — the kernel bench's check, and the thread pool's pinning
 * and determinism, on a compiled step.
 *
 * usage: test_kbench STEP.so [INPLACE_STEP.so]
 *
 * 1. Every kernel call of the step, filled with random inputs and run,
 *    matches the reference interpreter (ir/interp.c, double precision,
 *    independent of codegen); the AdamW call matches the update written out
 *    in C. 2. Wrong outputs are caught: one element of a matmul, of a
 *    reduction and of an elementwise call nudged by 1e-3 relative, an
 *    output left unwritten (NaN), one AdamW parameter changed. 3. Index
 *    inputs are valid ids: every gather_rows call's ids lie in the table.
 *    4. A pinned pool runs chunk i on CPU i of the allowed set. 5. train_step
 *    through pools of 1, 2 (pinned and DPOC_PIN=0) and 3 threads gives
 *    bitwise identical outputs and gradients. 6. With a second step that
 *    has a call run in place (an input on its output's bytes: a tied head in
 *    vocabulary chunks, passes/sched_concat.c), every call of it checks too,
 *    and a nudged element of the in-place call's output is caught (the check
 *    reads the input as filled, not the bytes the call overwrote). 7. The
 *    work counted for GFLOP/s and mfu (kprof.h): with 3 of every 8
 *    loss-mask positions set, the live share is 3/8 and every matmul_masked
 *    call of train_step counts 3/8 of its dense flops, every other call its
 *    manifest flops, and the entry's total is their sum; an all-zero mask
 *    counts none of the masked work.
 */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/kbench.h"
#include "runtime/kprof.h"
#include "runtime/step_load.h"
#include "runtime/threadpool.h"
#include "tests/check.h"

static char err[2048];

static int first_of_op(const DpocStep *s, const char *op, const char *entry) {
    for (int k = 0; k < s->nkernels; k++)
        if (!strcmp(s->kernels[k].op, op) && !strcmp(s->kernels[k].entry, entry)) return k;
    return -1;
}

static void check_all(DpocStep *s, KBench *b) {
    int nchecked = 0, nadam = 0;
    for (int k = 0; k < s->nkernels; k++) {
        if (!kbench_checkable(b, k)) continue;
        CHECK_MSG(kbench_fill(b, k, 7, err, sizeof err) == 0, "%s", err);
        kbench_run_once(b, k, NULL);
        KBenchCheck r;
        CHECK_MSG(kbench_check(b, k, &r, err, sizeof err) == 0, "%s", err);
        CHECK_MSG(r.nbad == 0 && r.n > 0, "%s (%s): %lld of %lld elements differ, first %lld: got %.9g want %.9g tol %.3g",
                  s->kernels[k].name, s->kernels[k].op, (long long)r.nbad, (long long)r.n, (long long)r.first_bad,
                  r.got, r.want, r.tol);
        nchecked++;
        nadam += !strcmp(s->kernels[k].op, "adamw");
    }
    printf("checked %d of %d kernel calls (%d AdamW)\n", nchecked, s->nkernels, nadam);
    CHECK(nchecked == s->nkernels); /* every call has a reference */
}

/* output element of call k as a float pointer (f32 outputs only) */
static float *out_f32(DpocStep *s, int k) {
    return (float *)(s->regions[s->kernels[k].arg_region[0]] + s->kernels[k].arg_offset[0]);
}

static void check_caught(DpocStep *s, KBench *b, const char *op, int64_t at) {
    int k = first_of_op(s, op, "train_step");
    CHECK_MSG(k >= 0, "no train_step %s kernel", op);
    if (k < 0) return;
    CHECK(kbench_fill(b, k, 3, err, sizeof err) == 0);
    kbench_run_once(b, k, NULL);
    KBenchCheck r;
    CHECK(kbench_check(b, k, &r, err, sizeof err) == 0 && r.nbad == 0);
    float *o = out_f32(s, k);
    float v = o[at];
    o[at] = v == 0 ? 1e-3f : v * 1.001f;
    CHECK(kbench_check(b, k, &r, err, sizeof err) == 0);
    CHECK_MSG(r.nbad == 1 && r.first_bad == at, "%s: corrupted element %lld: nbad %lld first %lld", op, (long long)at,
              (long long)r.nbad, (long long)r.first_bad);
    o[at] = v;
    CHECK(kbench_check(b, k, &r, err, sizeof err) == 0 && r.nbad == 0);
    /* filled but never run: the output is all NaN */
    CHECK(kbench_fill(b, k, 4, err, sizeof err) == 0);
    CHECK(kbench_check(b, k, &r, err, sizeof err) == 0 && r.nbad == r.n);
}

static void check_adamw_caught(DpocStep *s, KBench *b) {
    int k = first_of_op(s, "adamw", "optimizer_step");
    if (k < 0) return;
    CHECK(kbench_fill(b, k, 5, err, sizeof err) == 0);
    kbench_run_once(b, k, NULL);
    float *p = (float *)s->regions[DPOC_R_PARAMS];
    p[3] += 1e-4f;
    KBenchCheck r;
    CHECK(kbench_check(b, k, &r, err, sizeof err) == 0 && r.nbad == 1 && r.first_bad == 3);
}

static void check_ids(DpocStep *s, KBench *b) {
    int n = 0;
    for (int k = 0; k < s->nkernels; k++) {
        if (strcmp(s->kernels[k].op, "gather_rows") || s->kernels[k].nargs < 3) continue;
        CHECK(kbench_fill(b, k, 9, err, sizeof err) == 0);
        DpocTensorInfo te, ti;
        CHECK(dpoc_step_lookup(s, "model.embed_tokens.weight", DPOC_ROLE_PARAM, &te) == 0);
        const int32_t *ids = dpoc_step_find(s, "tokens", DPOC_ROLE_INPUT, &ti);
        CHECK(ids != NULL);
        for (int64_t i = 0; ids && i < ti.numel; i++) CHECK(ids[i] >= 0 && ids[i] < te.shape[0]);
        n++;
    }
    CHECK(n > 0);
}

static void record_cpu(void *arg, int64_t b, int64_t e) {
    int *cpu = arg;
    for (int64_t i = b; i < e; i++) cpu[i] = sched_getcpu();
}

static void check_pinning(void) {
    int n = tpool_cpu_count();
    if (n < 2) {
        printf("pinning: one CPU, not checked\n");
        return;
    }
    ThreadPool *p = tpool_create(n, err, sizeof err);
    CHECK(p != NULL);
    if (!p) return;
    for (int i = 0; i < n; i++) CHECK(tpool_pinned_cpu(p, i) >= 0);
    for (int i = 1; i < n; i++) CHECK(tpool_pinned_cpu(p, i) != tpool_pinned_cpu(p, i - 1));
    int cpu[64];
    int m = n < 64 ? n : 64;
    for (int rep = 0; rep < 20; rep++) {
        tpool_for(p, record_cpu, cpu, m);
        for (int i = 0; i < m; i++) CHECK_MSG(cpu[i] == tpool_pinned_cpu(p, i), "chunk %d ran on cpu %d, pinned to %d", i, cpu[i], tpool_pinned_cpu(p, i));
    }
    tpool_destroy(p);
    setenv("DPOC_PIN", "0", 1);
    p = tpool_create(n, err, sizeof err);
    CHECK(p && tpool_pinned_cpu(p, 0) == -1);
    tpool_destroy(p);
    unsetenv("DPOC_PIN");
    p = tpool_create(n + 1, err, sizeof err); /* more threads than CPUs: not pinned */
    CHECK(p && tpool_pinned_cpu(p, 0) == -1);
    tpool_destroy(p);
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == n); /* the caller's mask is back */
}

/* train_step's outputs and gradients after a run with `threads` threads */
static uint8_t *run_step(DpocStep *s, int threads, int pin, size_t *len) {
    if (!pin) setenv("DPOC_PIN", "0", 1);
    ThreadPool *p = tpool_create(threads, err, sizeof err);
    unsetenv("DPOC_PIN");
    if (!p) return NULL;
    CHECK(tpool_use_step_costs(p, s, 0) == 0); /* grain 0: split every call over every thread */
    DpocServices svc = tpool_services(p);
    memset(s->regions[DPOC_R_ARENA], 0, (size_t)s->region_size[DPOC_R_ARENA]);
    CHECK(dpoc_step_train(s, &svc, err, sizeof err) == 0);
    tpool_destroy(p);
    size_t a = (size_t)s->region_size[DPOC_R_OUTPUTS], g = (size_t)s->region_size[DPOC_R_GRADS];
    uint8_t *buf = malloc(a + g);
    if (!buf) return NULL;
    memcpy(buf, s->regions[DPOC_R_OUTPUTS], a);
    memcpy(buf + a, s->regions[DPOC_R_GRADS], g);
    *len = a + g;
    return buf;
}

static void check_bitwise(DpocStep *s) {
    /* a sane state: small parameters, valid token ids, a mask */
    uint64_t r = 99;
    for (int t = 0; t < s->ntensors; t++) {
        DpocTensorInfo *ti = &s->tensors[t];
        uint8_t *base = s->regions[ti->region] + ti->offset;
        for (int64_t i = 0; i < ti->numel; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(r >> 11) / 9007199254740992.0;
            if (ti->role == DPOC_ROLE_PARAM || ti->role == DPOC_ROLE_REF_PARAM) {
                if (ti->dtype == DPOC_DT_F32) ((float *)base)[i] = (float)(0.1 * (2 * u - 1));
            } else if (ti->role == DPOC_ROLE_INPUT) {
                if (ti->dtype == DPOC_DT_I32) ((int32_t *)base)[i] = (int32_t)(u * 64);
                else if (ti->dtype == DPOC_DT_F32) ((float *)base)[i] = strstr(ti->name, "ref") ? (float)(-5 * u) : (float)(u < 0.7);
            }
        }
    }
    size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
    uint8_t *a = run_step(s, 1, 1, &n1), *b = run_step(s, 2, 1, &n2), *c = run_step(s, 2, 0, &n3), *d = run_step(s, 3, 1, &n4);
    CHECK(a && b && c && d && n1 == n2 && n1 == n3 && n1 == n4);
    if (a && b && c && d) {
        CHECK_MSG(!memcmp(a, b, n1), "2 pinned threads differ from 1 thread");
        CHECK_MSG(!memcmp(a, c, n1), "2 unpinned threads differ from 1 thread");
        CHECK_MSG(!memcmp(a, d, n1), "3 threads differ from 1 thread");
    }
    free(a), free(b), free(c), free(d);
}

/* the first call whose output overlaps one of its inputs, or -1 */
static int first_inplace(const DpocStep *s) {
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        for (int a = 1; a < ki->nargs; a++)
            if (ki->arg_region[a] == ki->arg_region[0] && ki->arg_offset[a] == ki->arg_offset[0]) return k;
    }
    return -1;
}

static void check_inplace(const char *path) {
    DpocStep s;
    if (dpoc_step_open(&s, path, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    KBench *b = kbench_open(&s, err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    int k = first_inplace(&s);
    CHECK_MSG(k >= 0, "%s: no call runs in place", path);
    if (b && k >= 0) {
        check_all(&s, b);
        CHECK(kbench_fill(b, k, 3, err, sizeof err) == 0);
        kbench_run_once(b, k, NULL);
        KBenchCheck r;
        CHECK(kbench_check(b, k, &r, err, sizeof err) == 0 && r.nbad == 0);
        float *o = out_f32(&s, k);
        o[7] = o[7] == 0 ? 1e-3f : o[7] * 1.001f;
        CHECK(kbench_check(b, k, &r, err, sizeof err) == 0);
        CHECK_MSG(r.nbad == 1 && r.first_bad == 7, "in place %s: nbad %lld first %lld", s.kernels[k].name,
                  (long long)r.nbad, (long long)r.first_bad);
        printf("in place: %s checked, a nudged element caught\n", s.kernels[k].name);
    }
    kbench_close(b);
    dpoc_step_close(&s);
}

static void check_masked_flops(DpocStep *s) {
    DpocTensorInfo ti;
    float *m = dpoc_step_find(s, "loss_mask", DPOC_ROLE_INPUT, &ti);
    CHECK(m != NULL && ti.dtype == DPOC_DT_F32 && ti.numel % 8 == 0);
    if (!m) return;
    for (int64_t i = 0; i < ti.numel; i++) m[i] = i % 8 < 3 ? 1.0f : 0.0f;
    double live = kprof_live_share(s);
    CHECK_MSG(live == 3.0 / 8.0, "live share %.17g, want 0.375", live);
    int nmasked = 0;
    double sum = 0;
    for (int k = 0; k < s->nkernels; k++) {
        if (strcmp(s->kernels[k].entry, "train_step")) continue;
        double f = (double)s->kernels[k].flops, want = f;
        if (!strcmp(s->kernels[k].op, "matmul_masked")) want = f * 3.0 / 8.0, nmasked++;
        CHECK_MSG(kprof_kernel_flops(s, k, live) == want, "%s: %.17g flops counted, want %.17g", s->kernels[k].name,
                  kprof_kernel_flops(s, k, live), want);
        sum += want;
    }
    CHECK_MSG(kprof_entry_flops(s, "train_step", live) == sum, "entry total %.17g, want %.17g",
              kprof_entry_flops(s, "train_step", live), sum);
    printf("%d matmul_masked calls of train_step count 3/8 of their dense flops\n", nmasked);
    CHECK(nmasked >= 3); /* the head: forward, dX, dW */
    memset(m, 0, (size_t)ti.numel * sizeof *m);
    CHECK(kprof_live_share(s) == 0.0);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: test_kbench STEP.so [INPLACE_STEP.so]\n");
        return 2;
    }
    DpocStep s;
    if (dpoc_step_open(&s, argv[1], err, sizeof err)) {
        fprintf(stderr, "test_kbench: %s\n", err);
        return 1;
    }
    KBench *b = kbench_open(&s, err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    if (b) {
        check_all(&s, b);
        check_caught(&s, b, "matmul", 5);
        check_caught(&s, b, "reduce_sum", 0);
        check_caught(&s, b, "mul", 17);
        check_adamw_caught(&s, b);
        check_ids(&s, b);
        CHECK(kbench_find(&s, s.kernels[0].name) == 0 && kbench_find(&s, "no_such_kernel") == -1);
    }
    kbench_close(b);
    check_pinning();
    check_bitwise(&s);
    check_masked_flops(&s);
    dpoc_step_close(&s);
    if (argc == 3) check_inplace(argv[2]);
    return check_done("kbench");
}
