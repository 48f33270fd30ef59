/* train_zero.h — ZeRO-1 for dporun (train_zero.c): AdamW's moments split
 * over the dp ranks, the parameters all-gathered after each update. */
#ifndef DPOC_TRAIN_ZERO_H
#define DPOC_TRAIN_ZERO_H

#include "train_internal.h"

/* The kernel call index of the step's AdamW kernel, or -1. */
int zero_find_kernel(const DpocStep *s);
/* Runs AdamW kernel call k over the parameter elements [lo, hi) with the
 * moments of that range at m[0..hi-lo), v[0..hi-lo) (adamw[7] set to lo
 * while it runs, then back to 0). */
int zero_adamw_range(DpocStep *s, ThreadPool *pool, int k, int64_t lo, int64_t hi, float *m, float *v, double *adamw,
                     char *err, size_t errlen);
/* With o->zero on a dp > 1 mesh and AdamW: keeps this rank's slice of the
 * moments only (after parameters and moments were loaded). */
int trainer_zero_setup(Trainer *t, char *err, size_t errlen);
/* One AdamW update of this rank's slice, then the parameters' all_gather. */
int trainer_zero_step(Trainer *t, char *err, size_t errlen);
/* The full moment regions (malloc'd, caller frees), gathered over dp. */
int trainer_zero_full_moments(Trainer *t, float **m, float **v, char *err, size_t errlen);

#endif
