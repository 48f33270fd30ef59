/* kprof.h — per-kernel time, GFLOP/s and GB/s of one entry point.
 *
 * kprof_print runs every kernel call of an entry (the manifest's "kernels"
 * rows of that entry) alone, in schedule order, through the services'
 * parallel_for, `passes` times, keeps each call's best time, and prints the
 * `top` slowest (0: all) with their share of the sum, GFLOP/s and GB/s from
 * the manifest's "flops" and "bytes", then one line per op with its total.
 * The entry's copy steps are not run. It runs the calls on whatever the
 * regions hold (it is meant for after a run: `DPOC_DEBUG=2` in dporun and
 * bench/step_bench), and overwrites the arena, outputs and gradients.
 *
 * tpool_use_step_costs installs the cost table dporun uses on a pool:
 * (FLOPs + bytes) per unit of work of every call (threadpool.h).
 */
#ifndef DPOC_KPROF_H
#define DPOC_KPROF_H

#include <stdio.h>

#include "step_load.h"
#include "threadpool.h"

/* 0, or -1 when out of memory. */
int kprof_print(DpocStep *s, const DpocServices *svc, const char *entry, int passes, int top, FILE *out);

/* 0, or -1 when out of memory. */
int tpool_use_step_costs(ThreadPool *p, const DpocStep *s, double grain);

#endif
