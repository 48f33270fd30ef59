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
 * A matmul_masked kernel needs only the rows its mask keeps (the head on
 * the loss mask's rows; it skips every micro-panel or K block with none)
 * while the manifest counts its flops dense, as if every row were live. kprof_live_share reads the step's `loss_mask` input
 * as it stands (the last batch) and gives the share of positions > 0;
 * kprof_kernel_flops scales a matmul_masked kernel's flops by it, so
 * GFLOP/s and MFU count the work done. The profile prints both when they
 * differ.
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

/* The share of the step's loss_mask positions that are > 0 (1 when the step
 * has no f32/f64 loss_mask input, or it is empty). */
double kprof_live_share(DpocStep *s);

/* Kernel k's flops as done with `live` of the masked rows: the manifest's
 * flops, times `live` for a matmul_masked kernel. */
double kprof_kernel_flops(const DpocStep *s, int k, double live);

/* The flops of every kernel call of `entry`, as done with `live` of the
 * masked rows (kprof_kernel_flops summed; live 1: the manifest's count). */
double kprof_entry_flops(const DpocStep *s, const char *entry, double live);

/* 0, or -1 when out of memory. */
int tpool_use_step_costs(ThreadPool *p, const DpocStep *s, double grain);

#endif
