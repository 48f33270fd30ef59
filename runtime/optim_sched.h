/* optim_sched.h — learning-rate schedules, gradient accumulation, clipping, SGD.
 *
 * Schedules (k = 1..total is the optimizer step about to run, W the warm-up
 * steps, lr the peak rate):
 *   warm-up, k <= W:  lr * k / W
 *   after, p = (k - W - 1) / (total - W):
 *     constant  lr
 *     linear    lr * (1 - p)
 *     cosine    lr * 0.5 * (1 + cos(pi * p))
 * which is Hugging Face's get_{constant,linear,cosine}_schedule_with_warmup
 * (lambda evaluated at k - 1) except that warm-up counts the current step,
 * so the first update does not run at lr 0. p is clamped to [0, 1] (a step
 * past `total` runs at the final rate: 0 for linear and cosine).
 *
 * The parameter-shaped buffers (grads, accumulator, params) are walked as a
 * list of segments (one per trainable tensor, in table order) cut into
 * blocks of OPT_BLOCK elements; the block list does not depend on the
 * thread count, so the global norm — each block summed in double in order,
 * then the block sums added in order — is the same for every --threads.
 */
#ifndef DPOC_OPTIM_SCHED_H
#define DPOC_OPTIM_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "step_load.h"
#include "threadpool.h"

typedef enum OptSchedule { OPT_SCHED_CONSTANT, OPT_SCHED_LINEAR, OPT_SCHED_COSINE, OPT_SCHED_COUNT } OptSchedule;

const char *opt_schedule_name(OptSchedule s);
/* -1 when name is not a schedule */
int opt_schedule_parse(const char *name);
double opt_schedule_lr(OptSchedule s, double lr, uint64_t warmup, uint64_t total, uint64_t k);

enum { OPT_BLOCK = 16384 };

typedef struct OptBlock {
    int64_t begin, end; /* element range in a parameter-shaped region (f32 elements) */
    int decay;
} OptBlock;

typedef struct OptPlan {
    OptBlock *blocks;
    int64_t nblocks;
    int64_t nelems;   /* trainable elements */
    int64_t nfloats;  /* region size in f32 elements (gaps included) */
    double *partial;  /* one per block, for the norm */
} OptPlan;

/* From the step's trainable parameters (all must be f32). */
int opt_plan_init(OptPlan *p, const DpocStep *s, char *err, size_t errlen);
void opt_plan_free(OptPlan *p);

/* acc = g (first micro-batch) or acc += g, over the plan's elements. */
void opt_accumulate(const OptPlan *p, ThreadPool *pool, float *acc, const float *g, int first);
/* dst = src / n (an f32 division per element) over the plan's elements. */
void opt_divide(const OptPlan *p, ThreadPool *pool, float *dst, const float *src, int n);
/* x *= c (c rounded to f32 once) over the plan's elements. */
void opt_scale(const OptPlan *p, ThreadPool *pool, float *x, double c);
/* sqrt(sum of squares) over the plan's elements, in double, fixed order. */
double opt_global_norm(const OptPlan *p, ThreadPool *pool, const float *g);
/* The factor torch.nn.utils.clip_grad_norm_ applies: max_norm / (norm + 1e-6)
 * when that is below 1, else 1 (max_norm <= 0: 1, clipping off). */
double opt_clip_coef(double norm, double max_norm);
/* Plain SGD, torch.optim.SGD without momentum: g' = g + wd * p for tensors
 * with decay (L2), p = p - lr * g', in f32 with lr and wd rounded once. */
void opt_sgd(const OptPlan *p, ThreadPool *pool, float *params, const float *g, double lr, double wd);
/* Writes the step's `adamw` input (docs/step-abi.md) for optimizer step t >= 1. */
void opt_adamw_hparams(double out[8], double lr, double beta1, double beta2, double eps, double wd, uint64_t t);

#endif
