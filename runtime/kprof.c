/* kprof.c — the per-kernel profile (see kprof.h).
 *
 * Calls are timed with CLOCK_MONOTONIC around one parallel_for each; the
 * argument array comes from dpoc_step_kernel_args. The op summary adds the
 * best times of the calls whose root has the same op. Flops are the work
 * done (kprof_kernel_flops with the loss mask's live share).
 */
#include "kprof.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct KTime {
    int k;
    double t;
} KTime;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_ktime(const void *a, const void *b) {
    double x = ((const KTime *)a)->t, y = ((const KTime *)b)->t;
    return x > y ? -1 : x < y;
}

static int mask_on(const DpocTensorInfo *t, const void *m, int64_t i) {
    return t->dtype == DPOC_DT_F32 ? ((const float *)m)[i] > 0 : ((const double *)m)[i] > 0;
}

double kprof_live_share(DpocStep *s) {
    DpocTensorInfo ti, tsg;
    const void *m = dpoc_step_find(s, "loss_mask", DPOC_ROLE_INPUT, &ti);
    if (!m || ti.numel <= 0 || (ti.dtype != DPOC_DT_F32 && ti.dtype != DPOC_DT_F64)) return 1.0;
    /* a packed step's mask is [2B, R] over B rows: a row position is live
     * when either of its pair's two mask rows is */
    int packed = dpoc_step_lookup(s, "segments", DPOC_ROLE_INPUT, &tsg) == 0;
    int64_t n = packed ? ti.numel / 2 : ti.numel, live = 0;
    for (int64_t i = 0; i < n; i++) live += mask_on(&ti, m, i) || (packed && mask_on(&ti, m, i + n));
    return (double)live / (double)n;
}

double kprof_kernel_flops(const DpocStep *s, int k, double live) {
    const DpocKernelInfo *ki = &s->kernels[k];
    return strcmp(ki->op, "matmul_masked") ? (double)ki->flops : (double)ki->flops * live;
}

double kprof_entry_flops(const DpocStep *s, const char *entry, double live) {
    double f = 0;
    for (int k = 0; k < s->nkernels; k++)
        if (!strcmp(s->kernels[k].entry, entry)) f += kprof_kernel_flops(s, k, live);
    return f;
}

static int print_ops(const DpocStep *s, const KTime *kt, int n, double total, double live, FILE *out) {
    const char **ops = malloc((size_t)(n ? n : 1) * sizeof *ops);
    double *t = calloc((size_t)(n ? n : 1), sizeof *t), *fl = calloc((size_t)(n ? n : 1), sizeof *fl);
    int *cnt = calloc((size_t)(n ? n : 1), sizeof *cnt), nops = 0;
    if (!ops || !t || !fl || !cnt) return free(ops), free(t), free(fl), free(cnt), -1;
    for (int i = 0; i < n; i++) {
        const DpocKernelInfo *ki = &s->kernels[kt[i].k];
        int j = 0;
        while (j < nops && strcmp(ops[j], ki->op)) j++;
        if (j == nops) ops[nops++] = ki->op;
        t[j] += kt[i].t, fl[j] += kprof_kernel_flops(s, kt[i].k, live), cnt[j]++;
    }
    fprintf(out, "  by op: ");
    for (int j = 0; j < nops; j++)
        fprintf(out, "%s%s %d calls %.3f ms (%.1f%%, %.2f GFLOP/s)", j ? "; " : "", ops[j], cnt[j], t[j] * 1e3,
                total > 0 ? 100.0 * t[j] / total : 0, t[j] > 0 ? fl[j] / t[j] * 1e-9 : 0);
    fprintf(out, "\n");
    free(ops), free(t), free(fl), free(cnt);
    return 0;
}

int kprof_print(DpocStep *s, const DpocServices *svc, const char *entry, int passes, int top, FILE *out) {
    KTime *kt = calloc((size_t)(s->nkernels ? s->nkernels : 1), sizeof *kt);
    int cap = 1, n = 0;
    for (int k = 0; k < s->nkernels; k++)
        if (s->kernels[k].nargs > cap) cap = s->kernels[k].nargs;
    uint8_t **args = malloc((size_t)cap * sizeof *args);
    if (!kt || !args) return free(kt), free(args), -1;
    if (passes < 1) passes = 1;
    for (int k = 0; k < s->nkernels; k++)
        if (!strcmp(s->kernels[k].entry, entry)) kt[n++] = (KTime){k, INFINITY};
    for (int pass = 0; pass < passes; pass++)
        for (int i = 0; i < n; i++) {
            int k = kt[i].k;
            if (dpoc_step_kernel_args(s, k, args, cap) < 0) continue;
            double t0 = now_s();
            svc->parallel_for(svc->ctx, s->manifest->kernels[k], args, s->kernels[k].work);
            double dt = now_s() - t0;
            if (dt < kt[i].t) kt[i].t = dt;
        }
    double total = 0, flops = 0, dense = 0, bytes = 0, live = kprof_live_share(s);
    for (int i = 0; i < n; i++) {
        total += kt[i].t, flops += kprof_kernel_flops(s, kt[i].k, live), dense += (double)s->kernels[kt[i].k].flops;
        bytes += (double)s->kernels[kt[i].k].bytes;
    }
    qsort(kt, (size_t)n, sizeof *kt, cmp_ktime);
    fprintf(out, "per-kernel (%s, %d calls, each alone, best of %d): sum %.3f ms, %.2f GFLOP/s, %.2f GB/s\n", entry, n,
            passes, total * 1e3, total > 0 ? flops / total * 1e-9 : 0, total > 0 ? bytes / total * 1e-9 : 0);
    if (flops != dense)
        fprintf(out, "  (matmul_masked on %.1f%% of the loss mask's rows: %.3f GFLOP done of %.3f counted dense)\n",
                100.0 * live, flops * 1e-9, dense * 1e-9);
    fprintf(out, "  %-40s %-16s %10s %10s %6s %9s %9s\n", "kernel", "op", "work", "ms", "%", "GFLOP/s", "GB/s");
    for (int i = 0; i < n && (top <= 0 || i < top); i++) {
        const DpocKernelInfo *ki = &s->kernels[kt[i].k];
        double t = kt[i].t > 0 ? kt[i].t : 1e-9;
        fprintf(out, "  %-40s %-16s %10lld %10.3f %6.1f %9.2f %9.2f\n", ki->name, ki->op, (long long)ki->work,
                kt[i].t * 1e3, total > 0 ? 100.0 * kt[i].t / total : 0, kprof_kernel_flops(s, kt[i].k, live) / t * 1e-9,
                (double)ki->bytes / t * 1e-9);
    }
    int rc = print_ops(s, kt, n, total, live, out);
    free(kt);
    free(args);
    return rc;
}

int tpool_use_step_costs(ThreadPool *p, const DpocStep *s, double grain) {
    double *costs = malloc((size_t)(s->nkernels ? s->nkernels : 1) * sizeof *costs);
    if (!costs) return -1;
    for (int k = 0; k < s->nkernels; k++) {
        const DpocKernelInfo *ki = &s->kernels[k];
        costs[k] = ((double)ki->flops + (double)ki->bytes) / (double)(ki->work > 0 ? ki->work : 1);
    }
    int rc = tpool_set_costs(p, s->manifest->kernels, costs, s->nkernels, grain);
    free(costs);
    return rc;
}
