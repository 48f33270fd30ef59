/* dpoc_abi.h — the contract between a compiled step.so and the runtime.
 *
 * A step.so exports one symbol, `dpoc_manifest` (DpocManifest). Everything
 * the runtime needs to know about the step is in it: the ABI version, the
 * target CPU and features it was compiled for, the mesh, and a JSON document
 * (`json`) describing the tensor table, region sizes, kernel table (name,
 * flops, bytes), the model and loss configuration and the final IR text.
 * docs/step-abi.md documents the JSON keys.
 *
 * Memory is passed as an array of region base pointers (DpocRegion). Every
 * tensor lives at a fixed byte offset inside one region, known at compile
 * time: parameters, gradients and AdamW moments are each one contiguous
 * block with the same layout (so the optimizer is one flat loop), inputs
 * and outputs are blocks the runtime fills and reads, and the arena holds
 * every intermediate at offsets chosen by the schedule pass. Each region
 * base must be aligned to DPOC_REGION_ALIGN bytes.
 *
 * Entry points take the regions and a services table. The .so never creates
 * threads or links MPI: work is split through svc->parallel_for, which calls
 * a kernel on [begin, end) sub-ranges of its work count and returns when all
 * are done. A kernel's result does not depend on how the range is split.
 */
#ifndef DPOC_ABI_H
#define DPOC_ABI_H

#include <stdint.h>

#define DPOC_ABI_MAGIC 0x434f5044u /* "DPOC" little-endian */
#define DPOC_ABI_VERSION 2u /* 2: kernels take an argument array, not the regions */
#define DPOC_REGION_ALIGN 64

typedef enum DpocRegion {
    DPOC_R_PARAMS,     /* trainable parameters, f32 */
    DPOC_R_GRADS,      /* gradients, same layout as params */
    DPOC_R_ADAM_M,     /* AdamW first moment, same layout */
    DPOC_R_ADAM_V,     /* AdamW second moment, same layout */
    DPOC_R_REF_PARAMS, /* frozen reference parameters (online reference) */
    DPOC_R_INPUTS,     /* per-step inputs (tokens, masks, hyper-params) */
    DPOC_R_OUTPUTS,    /* per-step outputs (loss, per-pair quantities) */
    DPOC_R_ARENA,      /* intermediates */
    DPOC_R_COUNT
} DpocRegion;

/* A kernel computes the part [begin, end) of its work. p is its argument
 * array: p[0] the output's address, p[1..] its inputs' (the entry points
 * build it; the JSON kernel row's "args" lists the places). */
typedef void (*DpocKernelFn)(uint8_t *const *p, int64_t begin, int64_t end);

typedef struct DpocServices {
    void *ctx;
    /* Runs fn(args, b, e) over [0, n) split into sub-ranges; returns when
     * every call has finished. A serial implementation calls fn(args, 0, n). */
    void (*parallel_for)(void *ctx, DpocKernelFn fn, uint8_t *const *args, int64_t n);
} DpocServices;

/* returns 0 on success */
typedef int (*DpocEntryFn)(uint8_t *const *regions, const DpocServices *svc);

typedef struct DpocManifest {
    uint32_t magic;          /* DPOC_ABI_MAGIC */
    uint32_t abi_version;    /* DPOC_ABI_VERSION */
    const char *target_cpu;  /* LLVM CPU name, e.g. "znver3" */
    const char *target_features; /* LLVM feature string "+avx2,+fma,..." */
    int32_t mesh_dp, mesh_tp;
    const char *json;        /* full description, see docs/step-abi.md */
    DpocEntryFn train_step;     /* forward + backward + loss + metrics */
    DpocEntryFn logps;          /* forward only: per-sequence log-probs */
    DpocEntryFn optimizer_step; /* AdamW over all parameters */
    int32_t nkernels;
    const DpocKernelFn *kernels; /* one per json "kernels" row (a call; rows share functions) */
} DpocManifest;

#endif
