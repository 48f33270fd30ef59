/* train.h — dporun's jobs as library calls: train, and compute reference log-probs.
 *
 * train_run opens the step, checks it against this machine and the data,
 * initialises or loads the parameters, and runs optimizer steps of
 * grad_accum micro-batches each, writing one JSON line of metrics per step
 * (and per evaluation) and saving checkpoints; train_ref_logps runs the
 * step's `logps` entry over every pair of a .rec and writes a copy that
 * carries the log-probs and the weights' hash. docs/dporun.md describes
 * every option and definition. Messages go to `log`; errors come back in
 * err (the caller prints them and exits).
 */
#ifndef DPOC_TRAIN_H
#define DPOC_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "generate.h"
#include "optim_sched.h"

typedef enum TrainOptimizer { TRAIN_ADAMW, TRAIN_SGD } TrainOptimizer;

/* bits of TrainOptions.set: options given on the command line (or by a
 * preset), which take precedence over a resumed checkpoint's settings */
enum {
    TRAIN_SET_OPTIMIZER = 1u << 0,
    TRAIN_SET_LR = 1u << 1,
    TRAIN_SET_WD = 1u << 2,
    TRAIN_SET_BETAS = 1u << 3,
    TRAIN_SET_EPS = 1u << 4,
    TRAIN_SET_SCHEDULE = 1u << 5,
    TRAIN_SET_WARMUP = 1u << 6,
    TRAIN_SET_CLIP = 1u << 7,
    TRAIN_SET_ACCUM = 1u << 8,
    TRAIN_SET_SEED = 1u << 9,
    TRAIN_SET_STEPS = 1u << 10, /* --steps or --epochs */
    TRAIN_SET_SHUFFLE = 1u << 11,
};

typedef struct TrainOptions {
    const char *step_path, *data_path;
    const char *eval_path, *metrics_path, *save_dir, *resume_path, *init_path, *out_path;
    const char *init_hf_path; /* Hugging Face model directory (safetensors + config.json) */
    uint64_t steps;    /* total optimizer steps; 0: from epochs */
    double epochs;     /* used when steps is 0; 0 means 1 */
    uint64_t seed;
    uint64_t save_every;  /* 0: save at the end only */
    int keep_last;        /* <= 0: keep all */
    uint64_t eval_every;  /* 0: evaluate at the end only */
    int eval_first;       /* also evaluate before the first step */
    TrainOptimizer optimizer;
    double lr, weight_decay, beta1, beta2, eps;
    OptSchedule schedule;
    int64_t warmup_steps; /* < 0: warmup_ratio x total steps */
    double warmup_ratio;
    double max_grad_norm; /* 0: no clipping */
    int grad_accum;
    int threads;          /* 0: every CPU this process may use */
    double kernel_grain;  /* < 0: TRAIN_KERNEL_GRAIN; 0: split every kernel over every thread */
    double peak_gflops;   /* 0: estimate */
    int force_ref;
    int deterministic_metrics; /* leave out tokens_per_second and mfu */
    int shuffle;
    uint64_t log_every;   /* plain progress lines every N steps (0: about 20 per run) */
    int progress;         /* -1: a live line when log is a terminal; 0: plain lines; 1: live line */
    unsigned set;         /* TRAIN_SET_* */
    const volatile sig_atomic_t *stop; /* when non-zero: finish the step, save, return 1 */
    struct TrainMesh *mesh; /* the processes of an mpirun job (mesh.h); NULL: one process */
    int zero;               /* 1: ZeRO-1, AdamW moments split over the dp ranks */
    int ckpt_sharded;       /* 1: --ckpt-layout sharded: one file per tp rank + manifest (ckpt_mesh.h) */
    GenOptions gen;       /* dporun --predict / --interactive (runtime/generate.h) */
} TrainOptions;

/* Defaults: AdamW lr 1e-4 betas (0.9, 0.999) eps 1e-8 wd 0, constant
 * schedule, no warm-up, clipping at 1.0, no accumulation, seed 42,
 * shuffling on, one epoch. */
void train_options_default(TrainOptions *o);

/* 0: done; 1: stopped early by *stop (after saving); -1: error in err. */
int train_run(const TrainOptions *o, FILE *log, char *err, size_t errlen);
/* Uses step_path, data_path, out_path, init_path, seed, threads. */
int train_ref_logps(const TrainOptions *o, FILE *log, char *err, size_t errlen);

#endif
