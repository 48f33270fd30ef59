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
 * A step compiled for a dp x tp mesh communicates only through the
 * services' collectives, which the runtime implements over MPI.
 */
#ifndef DPOC_ABI_H
#define DPOC_ABI_H

#include <stdint.h>

#define DPOC_ABI_MAGIC 0x434f5044u /* "DPOC" little-endian */
#define DPOC_ABI_VERSION 3u /* 2: kernels take an argument array; 3: collectives, mesh ranks, decode/prefill */
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

/* Mesh axes of a dp x tp layout (collectives name one). */
typedef enum DpocAxis { DPOC_AXIS_DP = 0, DPOC_AXIS_TP = 1 } DpocAxis;

/* Element types of a collective's buffer. */
typedef enum DpocCollType { DPOC_COLL_F32 = 0, DPOC_COLL_F64 = 1 } DpocCollType;

typedef struct DpocServices {
    void *ctx;
    /* Runs fn(args, b, e) over [0, n) split into sub-ranges; returns when
     * every call has finished. A serial implementation calls fn(args, 0, n). */
    void (*parallel_for)(void *ctx, DpocKernelFn fn, uint8_t *const *args, int64_t n);
    /* This process's place in the mesh the step was compiled for
     * (0 <= rank < size on each axis; 1x1 for a single process). */
    int32_t dp_rank, dp_size, tp_rank, tp_size;
    /* Collectives over the ranks of one mesh axis. Every rank of the axis
     * calls them in the same order with the same n. They return 0, or
     * non-zero when the communication failed (the entry point then returns
     * that value at once). They may be NULL only when dp_size == tp_size == 1.
     *  all_reduce_sum: buf[0..n) := sum over the axis ranks, in place, the
     *      same bits on every rank (a fixed reduction order).
     *  all_gather: recv = the axis ranks' `send` blocks of `bytes` bytes
     *      each, concatenated in rank order (recv holds size * bytes). */
    int (*all_reduce_sum)(void *ctx, DpocAxis axis, void *buf, int64_t n, DpocCollType type);
    int (*all_gather)(void *ctx, DpocAxis axis, const void *send, void *recv, int64_t bytes);
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
    DpocEntryFn prefill;        /* generation: a chunk of prompt tokens into the KV cache (docs/step-abi.md) */
    DpocEntryFn decode;         /* generation: one token -> next-token logits, KV cache updated */
    int32_t nkernels;
    const DpocKernelFn *kernels; /* one per json "kernels" row (a call; rows share functions) */
} DpocManifest;

#endif
