/* passes.h — graph passes, the pipeline that runs them, and the schedule.
 *
 * A pass is `int pass_x(IrGraph *g, PassCtx *c)` returning PASS_CHANGED,
 * PASS_UNCHANGED or PASS_ERROR (message in c->err). Passes that rewrite the
 * graph build a new graph from the old one (hash-consing merges what became
 * equal) and swap it in, so ids are only stable between passes. The pipeline
 * runner verifies the graph after every pass that changed it, times each
 * pass, and prints or dumps the IR on request.
 *
 * The schedule is not a graph rewrite: it assigns every value a place
 * (region + byte offset) and groups nodes into kernels. Tensors that the
 * runtime sees (parameters, inputs, outputs, gradients) get the same place
 * in every entry point's graph; that shared layout is the tensor table.
 */
#ifndef DPOC_PASSES_H
#define DPOC_PASSES_H

#include <stdint.h>
#include <stdio.h>

#include "../ir/ir.h"
#include "../runtime/dpoc_abi.h"

enum { PASS_ERROR = -1, PASS_UNCHANGED = 0, PASS_CHANGED = 1 };

typedef struct PassCtx {
    char err[512];
    int debug;            /* DPOC_DEBUG level; 0 quiet */
    FILE *log;            /* where debug lines, pass timings and prints go */
    /* pipeline options */
    const char *print_after;   /* pass name, "all", or NULL */
    const char *dump_dir;      /* write NN.after_<pass>.ir there, or NULL */
    const char *disabled[16];  /* pass names not to run */
    int ndisabled;
    int time_passes;
    const char *dump_prefix;   /* e.g. "train_step" so two graphs do not collide */
    int dump_seq;              /* NN counter, shared across graphs */
    int mesh[IR_MESH_AXES];    /* ranks per mesh axis (dp, tp) for the shard pass; 0 or 1: not split */
} PassCtx;

typedef int (*PassFn)(IrGraph *g, PassCtx *c);

typedef struct PassInfo {
    const char *name;
    PassFn run;
} PassInfo;

/* All registered passes, in default pipeline order. */
extern const PassInfo pass_registry[];
extern const int pass_registry_count;
const PassInfo *pass_find(const char *name);

/* Runs the named passes (comma separated, e.g. "autodiff,simplify") in order;
 * returns 0 or -1 with c->err set (prefixed with the pass name). */
int pass_pipeline_run(IrGraph *g, PassCtx *c, const char *passes);
/* Runs one pass, registered or not, exactly as the pipeline does (disabled
 * check aside): verify after a change, timing, print-after, dump. 0 or -1. */
int pass_run_one(IrGraph *g, PassCtx *c, const PassInfo *p);

/* reverse-mode autodiff: for the IR_OUT_LOSS output, appends IR_OUT_GRAD
 * outputs named after every trainable parameter that the loss depends on.
 * Parameters the loss does not reach get a zero gradient output. */
int pass_autodiff(IrGraph *g, PassCtx *c);
/* constant folding, algebraic identities, CSE, dead-code elimination */
int pass_simplify(IrGraph *g, PassCtx *c);
/* removes nodes no output depends on */
int pass_dce(IrGraph *g, PassCtx *c);
/* groups values into kernels (IrGraph.kernels): passes/fuse.c */
int pass_fuse(IrGraph *g, PassCtx *c);
/* splits the graph over the dp x tp mesh in c->mesh (passes/shard.c,
 * docs/passes.md): global shapes in, one rank's local program out */
int pass_shard(IrGraph *g, PassCtx *c);

/* ---- the tensor table (shared layout) ----------------------------------- */
typedef enum TensorRole { TR_PARAM, TR_REF_PARAM, TR_GRAD, TR_INPUT, TR_OUTPUT } TensorRole;

typedef struct TensorEntry {
    char name[160];
    IrDType dtype;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    DpocRegion region;
    int64_t offset;  /* bytes into region, DPOC_REGION_ALIGN aligned */
    TensorRole role;
    int decay;       /* params: AdamW weight decay applies */
    int8_t shard[IR_MAX_DIMS]; /* the value's sharding (mesh axis per dim or IR_SHARD_NONE); shape is local */
} TensorEntry;

typedef struct TensorTable {
    TensorEntry *t;
    int32_t n, cap;
    int64_t region_size[DPOC_R_COUNT]; /* arena left 0 here */
} TensorTable;

/* Builds the layout from every entry point's graph: trainable params (in
 * first-appearance order) in PARAMS with the same offsets in GRADS, ADAM_M,
 * ADAM_V; frozen params in REF_PARAMS; inputs in INPUTS; IR_OUT_LOSS and
 * IR_OUT_VALUE outputs in OUTPUTS (one slot per name). 0 ok, -1 + err. */
int tensor_table_build(TensorTable *tt, IrGraph *const *graphs, int ngraphs, char *err, size_t errlen);
const TensorEntry *tensor_table_find(const TensorTable *tt, const char *name, TensorRole role);
void tensor_table_free(TensorTable *tt);

/* ---- the schedule --------------------------------------------------------- */
typedef struct SchedKernel {
    int32_t root;       /* node whose value the kernel produces */
    int32_t first;      /* index into SchedPlan.members */
    int32_t nmembers;   /* nodes computed inside the kernel, in id order */
} SchedKernel;

typedef struct SchedCopy {
    int32_t node;       /* value to copy once computed */
    DpocRegion region;  /* destination */
    int64_t offset;
    int32_t after;      /* index of the kernel after which the copy runs (the
                           one producing the value's storage); -1: before the
                           first kernel (the value is a param or an input) */
} SchedCopy;

typedef struct SchedPlan {
    int32_t nnodes;
    int8_t *region;      /* per node: DpocRegion, or -1 when it needs no storage */
    int64_t *offset;     /* per node: bytes into its region */
    SchedKernel *kernels; /* in execution order */
    int32_t nkernels;
    int32_t *members;
    SchedCopy *copies;   /* extra output slots a value must also be written to, */
    int32_t ncopies;     /* done right after the kernel that produces it */
    int64_t arena_bytes; /* peak arena use of this graph */
    int64_t grads_scratch_bytes; /* peak bytes of its buffers held in gradient slots
                                    not yet written (schedule.c, 5.) */
} SchedPlan;

/* Places every node: leaves and outputs where the tensor table says, reshape
 * results alias their input, every other value in the arena with buffers
 * reused once their last reader has run (first fit, DPOC_REGION_ALIGN). Each
 * non-leaf, non-alias node is one kernel, unless the fuse pass grouped them
 * (IrGraph.kernels): then its kernels, and members get no storage. */
int sched_plan(const IrGraph *g, const TensorTable *tt, SchedPlan *p, char *err, size_t errlen);
void sched_plan_free(SchedPlan *p);

#endif
