/* optim_sched.c — schedules and the runtime's element-wise parameter passes.
 *
 * Every pass over parameter-shaped memory goes through the plan's block
 * list with tpool_for, one contiguous run of blocks per thread. Element-wise
 * passes (accumulate, scale, SGD) give the same bits for any split; the
 * norm keeps one double per block and adds them in block order afterwards,
 * so it too is independent of the thread count. Arithmetic is plain f32
 * (ISO C mode: no contraction into fused multiply-adds) so hand-computed
 * values can be compared exactly.
 */
#include "optim_sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sched_names[OPT_SCHED_COUNT] = {"constant", "linear", "cosine"};

const char *opt_schedule_name(OptSchedule s) { return (unsigned)s < OPT_SCHED_COUNT ? sched_names[s] : "?"; }

int opt_schedule_parse(const char *name) {
    for (int i = 0; i < OPT_SCHED_COUNT; i++)
        if (name && strcmp(name, sched_names[i]) == 0) return i;
    return -1;
}

double opt_schedule_lr(OptSchedule s, double lr, uint64_t warmup, uint64_t total, uint64_t k) {
    if (warmup > 0 && k <= warmup) return lr * ((double)k / (double)warmup);
    if (s == OPT_SCHED_CONSTANT) return lr;
    double p = total > warmup ? (double)(k - warmup - 1) / (double)(total - warmup) : 1.0;
    if (p < 0) p = 0;
    if (p > 1) p = 1;
    if (s == OPT_SCHED_LINEAR) return lr * (1.0 - p);
    return lr * 0.5 * (1.0 + cos(M_PI * p));
}

int opt_plan_init(OptPlan *p, const DpocStep *s, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int64_t nb = 0;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM) continue;
        if (t->dtype != DPOC_DT_F32 || t->offset % 4)
            return snprintf(err, errlen, "parameter %s is %s; the runtime trains f32 parameters only", t->name,
                            dpoc_dtype_name(t->dtype)),
                   -1;
        nb += (t->numel + OPT_BLOCK - 1) / OPT_BLOCK;
    }
    p->blocks = calloc((size_t)(nb ? nb : 1), sizeof *p->blocks);
    p->partial = calloc((size_t)(nb ? nb : 1), sizeof *p->partial);
    if (!p->blocks || !p->partial) {
        opt_plan_free(p);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM) continue;
        int64_t base = t->offset / 4;
        for (int64_t b = 0; b < t->numel; b += OPT_BLOCK) {
            OptBlock *k = &p->blocks[p->nblocks++];
            k->begin = base + b;
            k->end = base + (b + OPT_BLOCK < t->numel ? b + OPT_BLOCK : t->numel);
            k->decay = t->decay;
        }
        p->nelems += t->numel;
    }
    p->nfloats = s->region_size[DPOC_R_PARAMS] / 4;
    return 0;
}

void opt_plan_free(OptPlan *p) {
    free(p->blocks);
    free(p->partial);
    memset(p, 0, sizeof *p);
}

/* ---- passes ---------------------------------------------------------------- */

typedef struct Pass {
    const OptPlan *plan;
    float *x;
    const float *g;
    float a, b;
    int first;
} Pass;

static void run(const OptPlan *p, ThreadPool *pool, TpoolFn fn, Pass *ps) {
    if (pool)
        tpool_for(pool, fn, ps, p->nblocks);
    else
        fn(ps, 0, p->nblocks);
}

static void accumulate_blocks(void *arg, int64_t b0, int64_t b1) {
    const Pass *ps = arg;
    for (int64_t b = b0; b < b1; b++) {
        const OptBlock *k = &ps->plan->blocks[b];
        if (ps->first)
            memcpy(ps->x + k->begin, ps->g + k->begin, (size_t)(k->end - k->begin) * sizeof(float));
        else
            for (int64_t i = k->begin; i < k->end; i++) ps->x[i] += ps->g[i];
    }
}

void opt_accumulate(const OptPlan *p, ThreadPool *pool, float *acc, const float *g, int first) {
    Pass ps = {p, acc, g, 0, 0, first};
    run(p, pool, accumulate_blocks, &ps);
}

static void divide_blocks(void *arg, int64_t b0, int64_t b1) {
    const Pass *ps = arg;
    for (int64_t b = b0; b < b1; b++) {
        const OptBlock *k = &ps->plan->blocks[b];
        for (int64_t i = k->begin; i < k->end; i++) ps->x[i] = ps->g[i] / ps->a;
    }
}

void opt_divide(const OptPlan *p, ThreadPool *pool, float *dst, const float *src, int n) {
    Pass ps = {p, dst, src, (float)n, 0, 0};
    run(p, pool, divide_blocks, &ps);
}

static void scale_blocks(void *arg, int64_t b0, int64_t b1) {
    const Pass *ps = arg;
    for (int64_t b = b0; b < b1; b++) {
        const OptBlock *k = &ps->plan->blocks[b];
        for (int64_t i = k->begin; i < k->end; i++) ps->x[i] *= ps->a;
    }
}

void opt_scale(const OptPlan *p, ThreadPool *pool, float *x, double c) {
    Pass ps = {p, x, NULL, (float)c, 0, 0};
    run(p, pool, scale_blocks, &ps);
}

typedef struct NormPass {
    const OptPlan *plan;
    const float *g;
} NormPass;

static void norm_blocks(void *arg, int64_t b0, int64_t b1) {
    const NormPass *ps = arg;
    for (int64_t b = b0; b < b1; b++) {
        const OptBlock *k = &ps->plan->blocks[b];
        double s = 0;
        for (int64_t i = k->begin; i < k->end; i++) s += (double)ps->g[i] * (double)ps->g[i];
        ps->plan->partial[b] = s;
    }
}

double opt_global_norm(const OptPlan *p, ThreadPool *pool, const float *g) {
    NormPass ps = {p, g};
    if (pool)
        tpool_for(pool, norm_blocks, &ps, p->nblocks);
    else
        norm_blocks(&ps, 0, p->nblocks);
    double s = 0;
    for (int64_t b = 0; b < p->nblocks; b++) s += p->partial[b];
    return sqrt(s);
}

double opt_clip_coef(double norm, double max_norm) {
    if (!(max_norm > 0)) return 1.0;
    double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

static void sgd_blocks(void *arg, int64_t b0, int64_t b1) {
    const Pass *ps = arg;
    for (int64_t b = b0; b < b1; b++) {
        const OptBlock *k = &ps->plan->blocks[b];
        float lr = ps->a, wd = k->decay ? ps->b : 0.0f;
        for (int64_t i = k->begin; i < k->end; i++) {
            float g = ps->g[i];
            if (wd != 0.0f) {
                float d = wd * ps->x[i];
                g = g + d;
            }
            float step = lr * g;
            ps->x[i] = ps->x[i] - step;
        }
    }
}

void opt_sgd(const OptPlan *p, ThreadPool *pool, float *params, const float *g, double lr, double wd) {
    Pass ps = {p, params, g, (float)lr, (float)wd, 0};
    run(p, pool, sgd_blocks, &ps);
}

void opt_adamw_hparams(double out[8], double lr, double beta1, double beta2, double eps, double wd, uint64_t t) {
    out[0] = lr;
    out[1] = beta1;
    out[2] = beta2;
    out[3] = eps;
    out[4] = wd;
    out[5] = 1.0 - pow(beta1, (double)t);
    out[6] = 1.0 - pow(beta2, (double)t);
    out[7] = 0.0;
}
