/* codegen.h — LLVM code generation: scheduled IR graphs become a step.so.
 *
 * codegen_build_so takes one or more entry points (each an IR graph with its
 * schedule), the shared tensor table, and writes a shared object that
 * follows runtime/dpoc_abi.h: one LLVM function per distinct kernel
 * structure (kernels that differ only in where their operands live share
 * it: each call passes its operands' addresses in an argument array), one
 * entry function per graph that runs the kernel calls in order through the
 * runtime's parallel_for, an optional fused AdamW `optimizer_step`, and the
 * exported `dpoc_manifest` with its JSON description (docs/step-abi.md).
 * Sharing is switched off (one function per call, named after the call)
 * by CodegenOptions.no_kernel_dedup or the environment variable
 * DPOC_NO_KERNEL_DEDUP=1: a debugging switch; the results are the same.
 *
 * The module is optimised with the new pass manager ("default<O3>", loop and
 * SLP vectorisation on), compiled for the host CPU (or the given CPU and
 * features) as position-independent code, emitted as an object file and
 * linked with `cc -shared` (the compiler driver is taken from $DPOC_CC when
 * set). The result is written under a temporary name and renamed into
 * place, so a failure never leaves a partial out_so behind.
 *
 * AdamW hyper-parameters: with with_optimizer set, codegen adds an input
 * tensor named "adamw", f64[8] = {lr, beta1, beta2, eps, weight_decay,
 * bias_correction1, bias_correction2, 0}, at the end of the inputs region
 * (the runtime writes it before each optimizer_step). f64 so that the
 * derived scalars (1 - beta1, lr / bias_correction1, ...) are computed from
 * the same doubles PyTorch uses.
 */
#ifndef DPOC_CODEGEN_H
#define DPOC_CODEGEN_H

#include <stddef.h>

#include "../ir/ir.h"
#include "../passes/passes.h"

typedef struct CodegenEntry {
    const char *name;       /* "train_step" | "logps" */
    const IrGraph *g;       /* final graph of this entry point */
    const SchedPlan *plan;  /* its schedule (sched_plan on g and the table) */
} CodegenEntry;

typedef struct CodegenOptions {
    const char *target_cpu;      /* LLVM CPU name; NULL: the host's */
    const char *target_features; /* "+avx2,+fma,..."; NULL: the host's */
    const char *emit_llvm_path;  /* write the unoptimised module text here, or NULL */
    const char *config_json;     /* JSON text embedded under "config", or NULL */
    int with_optimizer;          /* emit optimizer_step (AdamW) */
    int no_kernel_dedup;         /* one function per kernel call (debugging) */
    int mesh_dp, mesh_tp;        /* the mesh the entries were sharded for (0: 1) */
    int64_t bucket_bytes;        /* most bytes one merged dp gradient all-reduce covers (0: 16 MiB) */
} CodegenOptions;

/* Name of the AdamW hyper-parameter input and its element count. */
#define CODEGEN_ADAMW_INPUT "adamw"
enum { CODEGEN_ADAMW_N = 8 };

/* Builds out_so. Returns 0, or -1 with a message in err. */
int codegen_build_so(const CodegenEntry *entries, int nentries, const TensorTable *tt, const CodegenOptions *o,
                     const char *out_so, char *err, size_t errlen);

#endif
