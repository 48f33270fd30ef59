/* step_bench.c — time a compiled step.so's train_step on random data.
 *
 * usage: step_bench STEP.so [--threads N] [--steps N] [--warmup N] [--grain X] [--optimizer]
 *                   [--peak-gflops X | --ghz X --lanes N --fma-units N]
 *
 * The step is opened with the runtime's loader (runtime/step_load.h) and run
 * through the runtime's persistent thread pool (runtime/threadpool.h) with
 * the same per-kernel cost table dporun installs (FLOPs + bytes per unit of
 * work, grain 262144 = dporun's default). Parameters get a fixed xorshift
 * fill (matrices U(-sqrt(3/in), sqrt(3/in)), norm weights 1, other vectors
 * small); tokens and targets are uniform over the vocabulary, the loss mask
 * covers the second half of every row. A packed step (train.packed_len)
 * gets the same pairs as preference pairs through the runtime's batch_put:
 * a prompt of T/2 tokens both sequences share, responses of T/2 that part
 * at their first token, labels on the responses (the unpacked mask), so
 * its row holds 3T/2 + 1 tokens; tokens/s still counts 2 * pairs * seq_len
 * sequence positions, the work an unpacked step does. ref_logps, when the step takes it,
 * is the policy's own log-probs (logps entry) minus 1. After --warmup
 * untimed steps, --steps train_step calls are timed one by one
 * (CLOCK_MONOTONIC) and the median is reported, with tokens/s (every
 * position of the tokens input, 2 * pairs * seq_len, per step), GFLOP/s
 * from the work done by train_step's kernels (the manifest's "flops", with
 * the masked head's matmuls counted on the loss mask's rows only: they skip
 * the others; the dense count is printed too), MFU against a peak, and the
 * process's peak RSS (getrusage ru_maxrss).
 *
 * With --optimizer each timed step is a whole training step: train_step,
 * then the step's AdamW entry (optimizer_step, as dporun calls it; lr 1e-6,
 * betas 0.9/0.999, eps 1e-8, weight decay 0.01, t counting the calls). The
 * median is then over the sum, and the two parts' medians are printed too.
 * tokens/s, GFLOP/s and MFU stay those of the whole step (the optimizer's
 * flops are counted with it). A step built without optimizer_step is refused.
 *
 * The peak is --peak-gflops when given, else threads x GHz x lanes x 2 x
 * FMA units (runtime/cpu_peak.h): GHz from --ghz or /proc/cpuinfo's first
 * "cpu MHz" (the nominal clock: turbo is not counted), lanes the f32 lanes
 * of the widest vector unit unless --lanes, 2 flops per FMA, full-width
 * FMAs per cycle unless --fma-units (2, or 1 where the core runs its widest
 * FMA as two halves, as Zen 4 does AVX-512); the line "peak estimate"
 * names each factor.
 *
 * With DPOC_DEBUG=2 every train_step kernel call is also run alone, in
 * schedule order, through the same pool, best of --steps passes
 * (runtime/kprof.c, shared with dporun's DPOC_DEBUG=2): the 15 calls that
 * take longest (DPOC_DEBUG=3: every call) are printed with time, share,
 * GFLOP/s and GB/s (from the manifest's "flops" and "bytes"), and a total
 * per op.
 *
 * The last line is `RESULT key=value ...` for bench/run.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "runtime/batch.h"
#include "runtime/step_load.h"
#include "runtime/kprof.h"
#include "runtime/threadpool.h"
#include "runtime/cpu_peak.h"
#include "runtime/optim_sched.h"

#define BENCH_GRAIN 262144.0 /* dporun's default kernel grain (runtime/train_internal.h) */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

static void store(const DpocTensorInfo *t, void *p, int64_t i, double v) {
    if (t->dtype == DPOC_DT_F32) ((float *)p)[i] = (float)v;
    else if (t->dtype == DPOC_DT_F64) ((double *)p)[i] = v;
    else ((int32_t *)p)[i] = (int32_t)v;
}

static double load(const DpocTensorInfo *t, const void *p, int64_t i) {
    if (t->dtype == DPOC_DT_F32) return ((const float *)p)[i];
    if (t->dtype == DPOC_DT_F64) return ((const double *)p)[i];
    return ((const int32_t *)p)[i];
}

static void fill_params(DpocStep *s) {
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < s->ntensors; i++) {
        DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM && t->role != DPOC_ROLE_REF_PARAM) continue;
        void *p = s->regions[t->region] + t->offset;
        double a = t->ndim >= 2 ? sqrt(3.0 / (double)t->shape[t->ndim - 1]) : 0.02;
        int norm = t->ndim == 1 && strstr(t->name, "norm") != NULL;
        for (int64_t e = 0; e < t->numel; e++) store(t, p, e, norm ? 1.0 : a * (2.0 * rng_unit(&r) - 1.0));
    }
}

/* A packed step's rows: pairs of T-token sequences sharing a T/2 prompt
 * (see the header); returns the sequences' token positions, or -1. */
static int64_t fill_packed(DpocStep *s, int64_t *vocab) {
    BatchLayout L;
    char err[512];
    if (batch_layout_init(&L, s, err, sizeof err)) return fprintf(stderr, "step_bench: %s\n", err), -1;
    int64_t T = L.T, half = T / 2;
    int32_t *ids = malloc((size_t)(2 * T) * sizeof *ids);
    if (!ids) return -1;
    uint64_t r = 12345;
    batch_clear(&L);
    for (int64_t k = 0; k < L.B; k++) {
        for (int64_t t = 0; t < 2 * T; t++) ids[t] = (int32_t)(rng_next(&r) % (uint64_t)L.vocab);
        memcpy(ids + T, ids, (size_t)half * sizeof *ids);
        if (ids[T + half] == ids[half]) ids[T + half] = (ids[half] + 1) % (int32_t)L.vocab;
        RecSpan sp = {(uint32_t)half + 1, (uint32_t)T};
        RecPair p = {(uint32_t)half, {(uint32_t)T, (uint32_t)T}, {ids, ids + T}, {1, 1}, {&sp, &sp}, 0, {0, 0}};
        BatchPairInfo info;
        if (batch_put(&L, k, &p, (uint64_t)k, &info, err, sizeof err)) {
            fprintf(stderr, "step_bench: %s\n", err);
            free(ids);
            return -1;
        }
    }
    free(ids);
    *vocab = L.vocab;
    return 2 * L.B * T;
}

/* tokens/targets/loss_mask; returns the number of token positions, or -1 */
static int64_t fill_inputs(DpocStep *s, int64_t *vocab) {
    DpocTensorInfo ti, tt, tm, te;
    if (dpoc_step_lookup(s, "segments", DPOC_ROLE_INPUT, &ti) == 0) return fill_packed(s, vocab);
    int32_t *tok = dpoc_step_find(s, "tokens", DPOC_ROLE_INPUT, &ti);
    int32_t *tgt = dpoc_step_find(s, "targets", DPOC_ROLE_INPUT, &tt);
    void *mask = dpoc_step_find(s, "loss_mask", DPOC_ROLE_INPUT, &tm);
    if (!tok || !tgt || !mask || ti.ndim != 2 || ti.dtype != DPOC_DT_I32 || tt.dtype != DPOC_DT_I32 ||
        dpoc_step_lookup(s, "model.embed_tokens.weight", DPOC_ROLE_PARAM, &te))
        return -1;
    int64_t V = te.shape[0], T = ti.shape[1];
    uint64_t r = 12345;
    for (int64_t i = 0; i < ti.numel; i++) {
        tok[i] = (int32_t)(rng_next(&r) % (uint64_t)V);
        tgt[i] = (int32_t)(rng_next(&r) % (uint64_t)V);
        int64_t t = i % T;
        store(&tm, mask, i, t >= T / 2 && t + 1 < T ? 1.0 : 0.0);
    }
    *vocab = V;
    return ti.numel;
}

static int fill_ref(DpocStep *s, const DpocServices *svc, char *err, size_t errlen) {
    DpocTensorInfo ri, li;
    void *ref = dpoc_step_find(s, "ref_logps", DPOC_ROLE_INPUT, &ri);
    if (!ref) return 0;
    void *lp = dpoc_step_find(s, "logps", DPOC_ROLE_OUTPUT, &li);
    if (!s->manifest->logps || !lp || li.numel != ri.numel) return 0; /* leave zeros */
    if (dpoc_step_logps(s, svc, err, errlen)) return -1;
    for (int64_t i = 0; i < ri.numel; i++) store(&ri, ref, i, load(&li, lp, i) - 1.0);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the median of t[0..n), sorting it */
static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}


static void usage(void) {
    fprintf(stderr, "usage: step_bench STEP.so [--threads N] [--steps N] [--warmup N] [--grain X] [--optimizer]\n"
                    "                  [--peak-gflops X | --ghz X --lanes N --fma-units N]\n");
}

int main(int argc, char **argv) {
    const char *so = NULL;
    int threads = 1, steps = 5, warmup = 1, lanes = 0, fma_units = 0, optimizer = 0;
    double grain = BENCH_GRAIN, peak = 0, ghz = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && more) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--grain") && more) grain = atof(argv[++i]);
        else if (!strcmp(a, "--peak-gflops") && more) peak = atof(argv[++i]);
        else if (!strcmp(a, "--ghz") && more) ghz = atof(argv[++i]);
        else if (!strcmp(a, "--lanes") && more) lanes = atoi(argv[++i]);
        else if (!strcmp(a, "--fma-units") && more) fma_units = atoi(argv[++i]);
        else if (!strcmp(a, "--optimizer")) optimizer = 1;
        else if (a[0] != '-' && !so) so = a;
        else return usage(), 2;
    }
    if (!so || threads < 1 || steps < 1 || warmup < 0) return usage(), 2;

    char err[1024];
    DpocStep s;
    if (dpoc_step_open(&s, so, err, sizeof err)) {
        fprintf(stderr, "step_bench: %s\n", err);
        return 1;
    }
    int rc = 1;
    ThreadPool *pool = tpool_create(threads, err, sizeof err);
    double *times = calloc((size_t)steps * 3, sizeof *times), *fwd = times + steps, *opt = times + 2 * steps;
    if (!pool || !times) {
        fprintf(stderr, "step_bench: %s\n", pool ? "out of memory" : err);
        goto out;
    }
    if (tpool_use_step_costs(pool, &s, grain)) {
        fprintf(stderr, "step_bench: out of memory\n");
        goto out;
    }
    DpocServices svc = tpool_services(pool);
    fill_params(&s);
    int64_t vocab = 0, tokens = fill_inputs(&s, &vocab);
    if (tokens < 0) {
        fprintf(stderr, "step_bench: %s lacks i32 tokens/targets [2B,T], loss_mask or model.embed_tokens.weight\n",
                so);
        goto out;
    }
    if (fill_ref(&s, &svc, err, sizeof err)) {
        fprintf(stderr, "step_bench: %s\n", err);
        goto out;
    }
    DpocTensorInfo ai;
    double *adamw = dpoc_step_find(&s, "adamw", DPOC_ROLE_INPUT, &ai);
    if (optimizer && (!s.manifest->optimizer_step || !adamw || ai.dtype != DPOC_DT_F64 || ai.numel != 8)) {
        fprintf(stderr, "step_bench: %s was compiled without the AdamW optimizer_step entry (--optimizer)\n", so);
        goto out;
    }
    double live = kprof_live_share(&s), flops = kprof_entry_flops(&s, "train_step", live);
    double dense = kprof_entry_flops(&s, "train_step", 1.0);
    double opt_flops = optimizer ? kprof_entry_flops(&s, "optimizer_step", 1.0) : 0.0;
    flops += opt_flops, dense += opt_flops;
    int ncalls = 0;
    for (int k = 0; k < s.nkernels; k++) ncalls += !strcmp(s.kernels[k].entry, "train_step");
    for (int i = 0; i < warmup + steps; i++) {
        double t0 = now_s(), t1;
        if (dpoc_step_train(&s, &svc, err, sizeof err)) {
            fprintf(stderr, "step_bench: %s\n", err);
            goto out;
        }
        t1 = now_s();
        if (optimizer) {
            opt_adamw_hparams(adamw, 1e-6, 0.9, 0.999, 1e-8, 0.01, (uint64_t)i + 1);
            if (dpoc_step_optimizer(&s, &svc, err, sizeof err)) {
                fprintf(stderr, "step_bench: %s\n", err);
                goto out;
            }
        }
        if (i >= warmup) {
            double t2 = now_s();
            times[i - warmup] = t2 - t0, fwd[i - warmup] = t1 - t0, opt[i - warmup] = t2 - t1;
        }
    }
    double med = median(times, steps), med_fwd = median(fwd, steps), med_opt = median(opt, steps);
    if (peak <= 0) {
        CpuVector v = cpu_vector_detect();
        if (ghz <= 0) ghz = cpu_nominal_ghz();
        if (lanes > 0) v.lanes = lanes;
        if (fma_units > 0) v.fma_units = fma_units, v.why = "--fma-units";
        char how[384];
        peak = cpu_peak_gflops(threads, ghz, &v, how, sizeof how);
        printf("peak estimate: %s\n", how);
    }
    double gflops = flops / med * 1e-9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = (double)ru.ru_maxrss / 1024.0;
    double arena = 0;
    for (int r = 0; r < DPOC_R_COUNT; r++) arena += (double)s.region_size[r];
    printf("step %s: %d threads, %lld tokens/step (vocab %lld), %d train_step kernel calls, %.3f GFLOP/step\n", so,
           threads, (long long)tokens, (long long)vocab, ncalls, flops * 1e-9);
    if (flops != dense)
        printf("  (done: the head's matmul_masked on the loss mask's %.1f%% of rows; %.3f GFLOP/step counted dense)\n",
               100.0 * live, dense * 1e-9);
    printf("  median %.4f s/step (min %.4f, max %.4f, %d steps after %d warm-up)\n", med, times[0], times[steps - 1],
           steps, warmup);
    if (optimizer)
        printf("  of which train_step %.4f s, optimizer_step (AdamW) %.4f s (medians)\n", med_fwd, med_opt);
    printf("  %.1f tokens/s, %.2f GFLOP/s, MFU %.1f%% of %.1f GFLOP/s peak\n", (double)tokens / med, gflops,
           100.0 * gflops / peak, peak);
    printf("  peak RSS %.1f MiB (regions %.1f MiB)\n", rss_mib, arena / 1048576.0);
    const char *dbg = getenv("DPOC_DEBUG");
    if (dbg && atoi(dbg) >= 2 && kprof_print(&s, &svc, "train_step", steps, atoi(dbg) >= 3 ? 0 : 15, stdout)) {
        fprintf(stderr, "step_bench: out of memory\n");
        goto out;
    }
    printf("RESULT threads=%d tokens=%lld sec=%.6f tok_s=%.2f gflop=%.4f gflop_dense=%.4f gflops=%.3f peak=%.1f mfu=%.2f "
           "rss_mib=%.1f optimizer=%d sec_train=%.6f sec_opt=%.6f\n",
           threads, (long long)tokens, med, (double)tokens / med, flops * 1e-9, dense * 1e-9, gflops, peak,
           100.0 * gflops / peak, rss_mib, optimizer, med_fwd, med_opt);
    rc = 0;
out:
    free(times);
    tpool_destroy(pool);
    dpoc_step_close(&s);
    return rc;
}
