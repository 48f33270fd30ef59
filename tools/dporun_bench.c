/* dporun_bench.c — `dporun STEP.so --bench [KERNEL]`: every compiled kernel
 * call (or the one named) on random inputs, checked and timed.
 *
 * dporun's main hands the command line here when it holds `--bench`. The
 * first word that is not an option is the step.so, a second one the kernel
 * (a row name of the manifest's "kernels" table, as the listing prints
 * them). The step is opened with the runtime's loader, the thread pool gets
 * dporun's cost table and grain, and runtime/kbench.c does the work: fill,
 * one run, check against the IR interpreter, then --reps cache-cold timed
 * runs. Exit status: 0 all checked calls match, 1 a mismatch (named on
 * stderr) or an error, 2 a bad command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dporun_cli.h"
#include "runtime/kbench.h"
#include "runtime/kprof.h"
#include "runtime/step_load.h"
#include "runtime/threadpool.h"

#define BENCH_GRAIN 262144.0 /* dporun's default kernel grain (runtime/train_internal.h) */

static void bench_usage(FILE *out) {
    fprintf(out,
            "usage: dporun STEP.so --bench [KERNEL] [--threads N] [--reps N] [--seed S] [--check-max-gflop X]\n"
            "                                      [--kernel-grain X] [--flush-mib X]\n\n"
            "Runs every kernel call of the step (or KERNEL, a name from the listing) on random inputs, checks\n"
            "its output against the reference interpreter and times it with the caches flushed.\n\n"
            "  --threads N          worker threads (default: DPOC_THREADS, else every CPU available)\n"
            "  --reps N             timed runs per call, each after a cache flush (default 5)\n"
            "  --seed S             seed of the random inputs (default 1)\n"
            "  --check-max-gflop X  time but do not check calls above X GFLOP (default 20; 0: check all)\n"
            "  --kernel-grain X     as in training (default 262144)\n"
            "  --flush-mib X        bytes written between timed runs to empty the caches (default: twice the\n"
            "                       last-level cache, at least 8 MiB; 0: no flush)\n");
}

static int num_arg(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || errno || !(d >= lo && d <= hi)) {
        fprintf(stderr, "dporun: %s: expected a number in [%g, %g], got '%s'\n", opt, lo, hi, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

int dporun_bench_main(int argc, char **argv) {
    const char *step = NULL, *kernel = NULL;
    double threads = 0, reps = 5, seed = 1, check_max = 20, grain = BENCH_GRAIN, flush_mib = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double *slot = NULL, lo = 0, hi = 1e18;
        if (!strcmp(a, "--bench")) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return bench_usage(stdout), 0;
        if (!strcmp(a, "--threads")) slot = &threads, lo = 1, hi = 4096;
        else if (!strcmp(a, "--reps")) slot = &reps, lo = 1, hi = 1e6;
        else if (!strcmp(a, "--seed")) slot = &seed;
        else if (!strcmp(a, "--check-max-gflop")) slot = &check_max;
        else if (!strcmp(a, "--kernel-grain")) slot = &grain;
        else if (!strcmp(a, "--flush-mib")) slot = &flush_mib, hi = 65536;
        if (slot) {
            if (num_arg(a, v, lo, hi, slot)) return 2;
            i++;
            continue;
        }
        if (a[0] == '-') {
            fprintf(stderr, "dporun: --bench: unknown option '%s' (dporun --bench --help lists them)\n", a);
            return 2;
        }
        if (!step) step = a;
        else if (!kernel) kernel = a;
        else {
            fprintf(stderr, "dporun: --bench: unexpected argument '%s' (step '%s', kernel '%s')\n", a, step, kernel);
            return 2;
        }
    }
    if (!step) {
        fprintf(stderr, "dporun: --bench: no step.so given (usage: dporun STEP.so --bench [KERNEL])\n");
        return 2;
    }
    char err[2048] = "", local[4096];
    if (!strchr(step, '/') && (size_t)snprintf(local, sizeof local, "./%s", step) < sizeof local) step = local;
    DpocStep s;
    if (dpoc_step_open(&s, step, err, sizeof err)) {
        fprintf(stderr, "dporun: %s\n", err);
        return 1;
    }
    int nthreads = threads > 0 ? (int)threads : tpool_default_threads();
    ThreadPool *pool = tpool_create(nthreads, err, sizeof err);
    KBench *b = pool ? kbench_open(&s, err, sizeof err) : NULL;
    int rc = 1;
    if (!b) goto out;
    if (tpool_use_step_costs(pool, &s, grain)) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    if (flush_mib >= 0) kbench_set_flush(b, (size_t)(flush_mib * 1048576.0));
    DpocServices svc = tpool_services(pool);
    printf("bench %s: %d kernel calls, %d functions, %d threads%s\n", step, s.nkernels, s.nfunctions, nthreads,
           tpool_pinned_cpu(pool, 0) >= 0 ? " (pinned)" : "");
    KBenchOptions o = {kernel, (int)reps, check_max * 1e9, nthreads, (uint64_t)seed};
    int nbad = kbench_all(b, &svc, &o, stdout, stderr, err, sizeof err);
    fflush(stdout);
    if (nbad < 0) goto out;
    rc = nbad > 0;
    if (nbad) fprintf(stderr, "dporun: --bench: %d kernel call%s did not match the reference\n", nbad, nbad > 1 ? "s" : "");
out:
    if (rc == 1 && err[0]) fprintf(stderr, "dporun: %s\n", err); /* err is left empty by a mismatch */
    kbench_close(b);
    tpool_destroy(pool);
    dpoc_step_close(&s);
    return rc;
}
