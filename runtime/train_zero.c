/* train_zero.c — ZeRO-1: AdamW's moments split over the dp ranks.
 *
 * The parameter region (N f32 elements, alignment gaps included) is cut
 * into dp_size chunks of c = ceil(N / dp_size) elements; dp rank r keeps
 * the moments of [r*c, min(N, (r+1)*c)) only: trainer_zero_setup copies
 * that slice out of the full ADAM_M / ADAM_V regions (zero, or a resumed
 * checkpoint's) and replaces the regions by the slices, so the memory of
 * the moments shrinks by dp_size. An optimizer step then runs the step's
 * AdamW kernel on the rank's range with the moment offset adamw[7] = lo
 * (docs/step-abi.md) and all-gathers the updated parameters over dp, so
 * every dp rank again holds the same full (local-to-tp) parameters. The
 * gradients are full on every rank (the step all-reduces them over dp) and
 * the clipping coefficient is computed from all of them before, so each
 * element gets exactly the update a rank without ZeRO would give it: the
 * parameters are bitwise the same as without --zero.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh.h"
#include "train_zero.h"

static float *alloc_floats(int64_t n) {
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + DPOC_REGION_ALIGN - 1) / DPOC_REGION_ALIGN * DPOC_REGION_ALIGN;
    float *p = aligned_alloc(DPOC_REGION_ALIGN, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int zero_find_kernel(const DpocStep *s) {
    for (int k = 0; k < s->nkernels; k++)
        if (!strcmp(s->kernels[k].entry, "optimizer_step") && !strcmp(s->kernels[k].op, "adamw")) return k;
    return -1;
}

typedef struct RangeJob {
    DpocKernelFn fn;
    uint8_t *p[8];
    int64_t lo;
} RangeJob;

static void range_run(void *arg, int64_t b, int64_t e) {
    RangeJob *j = arg;
    j->fn(j->p, j->lo + b, j->lo + e);
}

int zero_adamw_range(DpocStep *s, ThreadPool *pool, int k, int64_t lo, int64_t hi, float *m, float *v, double *adamw,
                     char *err, size_t errlen) {
    RangeJob j;
    memset(&j, 0, sizeof j);
    int n = dpoc_step_kernel_args(s, k, j.p, 8);
    if (n != 5) return snprintf(err, errlen, "the optimizer kernel takes %d arguments, expected 5", n), -1;
    j.fn = s->manifest->kernels[k];
    j.p[2] = (uint8_t *)m;
    j.p[3] = (uint8_t *)v;
    j.lo = lo;
    adamw[7] = (double)lo;
    if (hi > lo) {
        if (pool)
            tpool_for(pool, range_run, &j, hi - lo);
        else
            range_run(&j, 0, hi - lo);
    }
    adamw[7] = 0.0;
    return 0;
}

int trainer_zero_setup(Trainer *t, char *err, size_t errlen) {
    if (!t->o->zero) return 0;
    DpocStep *s = &t->step;
    if (t->cfg.optimizer != TRAIN_ADAMW) {
        fprintf(t->log, "dporun: note: --zero 1 splits AdamW's moments; SGD has none\n");
        return 0;
    }
    if (!t->mesh || t->svc.dp_size == 1) {
        fprintf(t->log, "dporun: note: --zero 1 has no effect on a mesh with dp=1\n");
        return 0;
    }
    if ((t->zero_kernel = zero_find_kernel(s)) < 0)
        return snprintf(err, errlen, "%s: no optimizer_step adamw kernel for ZeRO-1", t->o->step_path), -1;
    int64_t N = s->region_size[DPOC_R_PARAMS] / (int64_t)sizeof(float), D = t->svc.dp_size;
    t->zero_chunk = (N + D - 1) / D;
    t->zero_lo = t->zero_chunk * t->svc.dp_rank;
    if (t->zero_lo > N) t->zero_lo = N;
    t->zero_hi = t->zero_lo + t->zero_chunk < N ? t->zero_lo + t->zero_chunk : N;
    int64_t n = t->zero_hi - t->zero_lo;
    for (int r = DPOC_R_ADAM_M; r <= DPOC_R_ADAM_V; r++) {
        float *slice = alloc_floats(n);
        if (!slice) return snprintf(err, errlen, "out of memory"), -1;
        memcpy(slice, (float *)s->regions[r] + t->zero_lo, (size_t)n * sizeof *slice);
        free(s->regions[r]);
        s->regions[r] = (uint8_t *)slice;
        s->region_size[r] = n * (int64_t)sizeof *slice;
    }
    t->zero = 1;
    fprintf(t->log, "dporun: ZeRO-1: each dp rank keeps AdamW moments of %" PRId64 " of %" PRId64
                    " elements (%.2f MiB instead of %.2f MiB)\n",
            n, N, 2.0 * (double)n * 4 / 1048576.0, 2.0 * (double)N * 4 / 1048576.0);
    return 0;
}

/* full[0..N) on every dp rank from the ranks' chunks; the own chunk is at
 * full[lo..hi) on entry (or in `own` when not NULL) */
static int gather_chunks(Trainer *t, float *full, const float *own, char *err, size_t errlen) {
    int64_t N = t->step.region_size[DPOC_R_PARAMS] / (int64_t)sizeof(float), c = t->zero_chunk, D = t->svc.dp_size;
    int64_t bytes = c * (int64_t)sizeof(float);
    int rc;
    if (c * D == N && !own) {
        rc = t->mesh->all_gather(t->mesh->ctx, DPOC_AXIS_DP, full + t->zero_lo, full, bytes);
    } else {
        float *tmp = alloc_floats(c * D);
        if (!tmp) return snprintf(err, errlen, "out of memory"), -1;
        memcpy(tmp + c * t->svc.dp_rank, own ? own : full + t->zero_lo,
               (size_t)(t->zero_hi - t->zero_lo) * sizeof(float));
        rc = t->mesh->all_gather(t->mesh->ctx, DPOC_AXIS_DP, tmp + c * t->svc.dp_rank, tmp, bytes);
        if (!rc) memcpy(full, tmp, (size_t)N * sizeof(float));
        free(tmp);
    }
    if (rc) return snprintf(err, errlen, "ZeRO-1 all_gather over dp: %s", t->mesh->error(t->mesh->ctx)), -1;
    return 0;
}

int trainer_zero_step(Trainer *t, char *err, size_t errlen) {
    DpocStep *s = &t->step;
    if (zero_adamw_range(s, t->pool, t->zero_kernel, t->zero_lo, t->zero_hi, (float *)s->regions[DPOC_R_ADAM_M],
                         (float *)s->regions[DPOC_R_ADAM_V], t->adamw, err, errlen))
        return -1;
    return gather_chunks(t, (float *)s->regions[DPOC_R_PARAMS], NULL, err, errlen);
}

int trainer_zero_full_moments(Trainer *t, float **m, float **v, char *err, size_t errlen) {
    int64_t N = t->step.region_size[DPOC_R_PARAMS] / (int64_t)sizeof(float);
    *m = alloc_floats(N);
    *v = alloc_floats(N);
    if (!*m || !*v) return snprintf(err, errlen, "out of memory"), -1;
    if (gather_chunks(t, *m, (const float *)t->step.regions[DPOC_R_ADAM_M], err, errlen) ||
        gather_chunks(t, *v, (const float *)t->step.regions[DPOC_R_ADAM_V], err, errlen))
        return -1;
    return 0;
}
