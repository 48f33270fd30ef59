/* kbench.h — run one compiled kernel call alone: random inputs, a check
 * against the reference interpreter, and a cache-cold timing.
 *
 * This is what `dporun STEP.so --bench [KERNEL]` does for every kernel call
 * of a step (a row of the manifest's "kernels" table). For a graph kernel
 * the row's "nodes" name the IR node of each argument (nodes[0] its root,
 * the value it writes) in the entry's final IR, which the manifest carries
 * as text ("ir"); kbench_open parses those graphs once.
 *
 * kbench_fill writes deterministic random values into every place the call
 * reads: floats uniform in [-1, 1), except values that end up used as row
 * or column ids (followed from gather_rows, pick, scatter_add_rows and
 * unpick back through movement ops and casts), which get whole numbers in
 * [0, bound) — valid ids; other i32 values get [1, 5) (never a zero
 * divisor). The output is filled with NaN bits, so an element the kernel
 * forgets to write is caught.
 *
 * kbench_check reads the stored inputs back from memory (so two arguments
 * that share bytes, a value and its reshape, agree), evaluates the nodes
 * the kernel computes with ir_interp_run_part (double precision, plain
 * loops), and compares every output element. The tolerance follows from
 * the op chain: an f32 result may differ by |err| <= 8 u L (|ref| + rms),
 * u = 2^-24 (2^-53 for f64), rms the root mean square of the reference
 * output, L = the number of ops the kernel computes plus, for each matmul
 * or reduction among them, the length it sums over (K); integers must be
 * equal; NaN must meet NaN and an infinity the same infinity.
 *
 * The AdamW kernel (no IR node) is checked against the update of
 * docs/step-abi.md computed in double. kbench_time runs the call through
 * the services' parallel_for `reps` times, each after writing a buffer of
 * twice the last-level cache (one instance's size from sysfs; at least
 * 8 MiB) so no operand is cached.
 */
#ifndef DPOC_KBENCH_H
#define DPOC_KBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "step_load.h"

typedef struct KBench KBench;

/* Parses the step's IR texts. NULL with err set on failure. */
KBench *kbench_open(DpocStep *s, char *err, size_t errlen);
void kbench_close(KBench *b);

/* The kernel call named `name` (a "kernels" row), or -1. */
int kbench_find(const DpocStep *s, const char *name);

/* Whether call k can be checked (graph kernel with nodes, or the AdamW
 * kernel). */
int kbench_checkable(const KBench *b, int k);

/* Fills every argument place of call k (see above). 0, or -1 with err. */
int kbench_fill(KBench *b, int k, uint64_t seed, char *err, size_t errlen);

typedef struct KBenchCheck {
    int64_t n;          /* output elements compared */
    int64_t nbad;       /* elements beyond the tolerance */
    int64_t first_bad;  /* index of the first, -1 when none */
    double got, want, tol; /* at first_bad */
    double worst;       /* largest |err| / tol over all elements (0: exact) */
} KBenchCheck;

/* Compares call k's output, as it is in memory now, with the reference
 * computed from its inputs as they are in memory now. 0 (see r->nbad), or
 * -1 with err when the reference cannot be computed. */
int kbench_check(KBench *b, int k, KBenchCheck *r, char *err, size_t errlen);

/* Runs call k once through svc (NULL: serially). */
void kbench_run_once(KBench *b, int k, const DpocServices *svc);

/* Sets the size of the buffer written before each timed run (0: no flush;
 * default: twice the last-level cache, at least 8 MiB). */
void kbench_set_flush(KBench *b, size_t bytes);

/* Times call k: reps runs, each after flushing the caches; best and median
 * seconds. 0, or -1 when out of memory. */
int kbench_time(KBench *b, int k, const DpocServices *svc, int reps, double *best, double *median);

typedef struct KBenchOptions {
    const char *only;      /* a kernel name, or NULL for every call */
    int reps;              /* timed runs per call */
    double check_max_flops; /* calls with more FLOPs are timed but not checked (0: no limit) */
    int threads;           /* for the report: calls with work < threads leave threads idle */
    uint64_t seed;
} KBenchOptions;

/* Fills, runs, checks and times every call (or the one named), printing one
 * line per call and a summary to out; mismatches are named on err_out.
 * Returns the number of calls whose output did not match, or -1 with err
 * (unknown kernel name, no memory, a reference that cannot be computed). */
int kbench_all(KBench *b, const DpocServices *svc, const KBenchOptions *o, FILE *out, FILE *err_out, char *err,
               size_t errlen);

#endif
