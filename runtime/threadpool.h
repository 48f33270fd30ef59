/* threadpool.h — persistent worker threads that run a step's kernels.
 *
 * A pool of N threads is N-1 pthreads plus the calling thread, which takes
 * chunk 0 itself. tpool_for(pool, fn, arg, n) splits [0, n) into
 * min(N, n) contiguous chunks of near-equal size (the first n % k chunks one
 * longer), runs fn(arg, begin, end) on each, and returns when all are done.
 * The split depends only on n and N, so a computation whose result depends
 * on the split is still deterministic for a given thread count; the step's
 * kernels do not depend on it at all (docs/step-abi.md).
 *
 * With more than one thread, the threads are pinned to distinct CPUs of the
 * process's allowed set (thread i to the i-th), unless there are more
 * threads than allowed CPUs or DPOC_PIN=0; pinning changes no result.
 *
 * Workers wait for work by spinning briefly on an atomic generation counter,
 * then sleep on a condition variable, so the hundreds of small kernels of a
 * step do not each pay a full wake-up. tpool_services() gives the
 * DpocServices table the step.so calls. Given the kernels' cost estimates
 * (tpool_set_costs: FLOPs + bytes per unit of work, from the manifest), a
 * call over n units is split into at most n * cost / grain chunks, so the
 * many tiny kernels of a step run
 * on the calling thread without waking anyone; kernels are split-invariant,
 * so this changes no result, and the split still depends only on the kernel
 * and the thread count.
 */
#ifndef DPOC_THREADPOOL_H
#define DPOC_THREADPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "dpoc_abi.h"

typedef struct ThreadPool ThreadPool;

typedef void (*TpoolFn)(void *arg, int64_t begin, int64_t end);

/* nthreads >= 1 (1: no thread is created). NULL with err set on failure.
 * Calls tpool_stack_ensure first: the calling thread runs kernels too. */
ThreadPool *tpool_create(int nthreads, char *err, size_t errlen);

/* A compiled kernel keeps its matmul scratch (up to ~2.3 MiB) on the stack
 * of the thread that runs it. The pool's workers get TPOOL_STACK_BYTES; for
 * the calling thread (the process's main thread in dporun), a soft stack
 * limit (ulimit -s) below that is raised to it, or as far as the hard limit
 * allows. 0, or -1 with err set when the limit stays below
 * TPOOL_STACK_MIN_BYTES. */
enum { TPOOL_STACK_BYTES = 8 << 20, TPOOL_STACK_MIN_BYTES = 4 << 20 };
int tpool_stack_ensure(char *err, size_t errlen);
void tpool_destroy(ThreadPool *p);
int tpool_threads(const ThreadPool *p);

/* Runs fn over [0, n) in contiguous chunks, one per thread; returns when all
 * have finished. Not reentrant: one tpool_for at a time per pool. */
void tpool_for(ThreadPool *p, TpoolFn fn, void *arg, int64_t n);

/* The services table for a step.so (ctx = the pool). */
DpocServices tpool_services(ThreadPool *p);
/* Per-kernel costs for the services' parallel_for: a call of fns[i] over n
 * units runs in min(threads, max(1, n * unit_cost[i] / grain)) chunks (a
 * function listed twice keeps its larger cost; grain 0 splits every call
 * over every thread). Unknown kernels use every thread. 0, or -1 when out
 * of memory (the table is then not used). */
int tpool_set_costs(ThreadPool *p, const DpocKernelFn *fns, const double *unit_cost, int n, double grain);

/* The chunk [*b, *e) of [0, n) that thread i of k gets. */
void tpool_chunk(int64_t n, int k, int i, int64_t *b, int64_t *e);

/* The number of CPUs this process may run on (sched_getaffinity), >= 1. */
int tpool_cpu_count(void);
/* DPOC_THREADS when it is a whole number in [1, 4096], else tpool_cpu_count(). */
int tpool_default_threads(void);
/* The CPU thread i is pinned to, or -1 when the pool is not pinned. */
int tpool_pinned_cpu(const ThreadPool *p, int i);

#endif
