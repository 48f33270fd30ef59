/* train_internal.h — the state train_*.c share while dporun trains.
 *
 * A Trainer is set up by trainer_open (the step, its checks, the thread
 * pool, the input layout, the parameter plan), trainer_open_data (a .rec
 * checked against the step and scanned for usable pairs) and torn down by
 * trainer_close. The effective settings (after a resumed checkpoint's) live
 * in Trainer.cfg; the options the user gave stay in Trainer.o.
 */
#ifndef DPOC_TRAIN_INTERNAL_H
#define DPOC_TRAIN_INTERNAL_H

#include "batch.h"
#include "ckpt.h"
#include "metrics.h"
#include "optim_sched.h"
#include "rec.h"
#include "step_load.h"
#include "threadpool.h"
#include "train.h"

/* FLOPs + bytes of kernel work per thread below which a kernel is not
 * split further (threadpool.h, tpool_set_costs). */
#define TRAIN_KERNEL_GRAIN 262144.0

typedef enum TrainRefMode { TRAIN_REF_NONE, TRAIN_REF_PRECOMPUTED, TRAIN_REF_ONLINE } TrainRefMode;

typedef struct TrainData {
    const char *path;
    RecReader *r;
    uint64_t npairs;
    uint64_t *usable; /* ascending record indices (owned until handed to a BatchOrder) */
    uint64_t nusable, ntruncated, nunfit; /* nunfit: longer than a packed step's row */
} TrainData;

/* The settings a run uses, recorded in checkpoints. */
typedef struct TrainConfig {
    TrainOptimizer optimizer;
    double lr, weight_decay, beta1, beta2, eps, max_grad_norm;
    OptSchedule schedule;
    uint64_t warmup, total;
    int grad_accum, shuffle;
    uint64_t seed;
} TrainConfig;

/* A tensor's place on the mesh (train_mesh.h): the dimension split over tp
 * (-1: replicated) and the unsharded shape. */
typedef struct TrainShard {
    int dim, ndim;
    int64_t full[DPOC_MAX_DIMS];
    int64_t full_numel;
} TrainShard;

typedef struct Trainer {
    const TrainOptions *o;
    FILE *log;
    DpocStep step;
    int step_open;
    ThreadPool *pool;
    DpocServices svc;
    BatchLayout L;
    OptPlan plan;
    TrainRefMode ref_mode;
    const float *out_loss, *out_logps, *out_logits, *out_ref;
    double *adamw;     /* the step's adamw input, or NULL */
    double beta;       /* loss parameter beta (1 when the loss has none) */
    const char *loss_name;
    float *acc;        /* gradient accumulator (grad_accum > 1) */
    BatchPairInfo *slot; /* per micro-batch slot */
    uint32_t *labels;  /* [2B] label tokens per row, for the metrics */
    uint64_t *idx;     /* [B] record indices of a micro-batch */
    TrainConfig cfg;
    uint64_t ref_hash; /* hash of the reference weights (precomputed mode) */
    uint64_t config_hash;
    double train_flops, opt_flops; /* per micro-batch / per update; train_flops without masked_flops */
    double masked_flops; /* train_step's matmul_masked kernels, counted dense (they run on the loss mask's rows) */
    int tty;           /* the live progress line is on */
    double saved_usable; /* usable pairs of a resumed run's data (-1: none) */
    struct TrainMesh *mesh; /* o->mesh: NULL for one process (svc has the ranks) */
    TrainShard *shard;      /* per s->tensors entry */
    struct TrainSvcCtx *svc_ctx; /* svc.ctx on a mesh: the pool's and the mesh's (train_mesh.c) */
    int zero;               /* ZeRO-1 on (train_zero.c): moments of [zero_lo, zero_hi) only */
    int64_t zero_lo, zero_hi, zero_chunk;
    int zero_kernel;        /* the optimizer_step kernel call */
} Trainer;

int trainer_open(Trainer *t, const TrainOptions *o, FILE *log, char *err, size_t errlen);
void trainer_close(Trainer *t);
/* Opens and scans a .rec; with a precomputed reference checks that it has
 * reference log-probs made with t->ref_hash (unless force). */
int trainer_open_data(Trainer *t, TrainData *d, const char *path, int need_ref, char *err, size_t errlen);
void trainer_close_data(TrainData *d);

/* Packs micro-batch slots from record indices (n <= B; the rest stay
 * empty); sums the real tokens into *tokens. */
int trainer_pack(Trainer *t, RecReader *r, const uint64_t *idx, int64_t n, int64_t *tokens, char *err,
                 size_t errlen);
/* Runs train_step and adds its outputs to acc (n real pairs). */
int trainer_forward(Trainer *t, MetricsAcc *acc, int64_t n, int64_t tokens, char *err, size_t errlen);

/* Checkpoints (train_ckpt.c). */
int trainer_save(Trainer *t, const char *dir, uint64_t step, const BatchOrder *order, char *err, size_t errlen);
/* Loads parameters (and reference parameters, moments) and the settings
 * from c into t->cfg, honouring o->set; fills the position. */
int trainer_resume(Trainer *t, Ckpt *c, uint64_t *step, uint64_t *epoch, uint64_t *pos, char *err, size_t errlen);

double trainer_now(void);

#endif
