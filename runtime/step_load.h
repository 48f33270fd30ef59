/* step_load.h — open a compiled step.so and get it ready to run.
 *
 * dpoc_step_open dlopens the library (RTLD_NOW | RTLD_LOCAL), finds the
 * `dpoc_manifest` symbol, checks its magic and ABI version and the CPU
 * features it was compiled for, parses its JSON (cJSON) into a tensor and
 * kernel list, and allocates every region zeroed and DPOC_REGION_ALIGN
 * aligned. Tensors are found by name and role; the entry points run with
 * the caller's services table or a serial one. Nothing here links LLVM.
 */
#ifndef DPOC_STEP_LOAD_H
#define DPOC_STEP_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "dpoc_abi.h"

typedef enum DpocDType { DPOC_DT_F32, DPOC_DT_F64, DPOC_DT_I32, DPOC_DT_COUNT } DpocDType;

typedef enum DpocRole {
    DPOC_ROLE_PARAM,
    DPOC_ROLE_REF_PARAM,
    DPOC_ROLE_GRAD,
    DPOC_ROLE_INPUT,
    DPOC_ROLE_OUTPUT,
    DPOC_ROLE_ADAM_M, /* not in the JSON: a param's place in the ADAM_M region */
    DPOC_ROLE_ADAM_V,
    DPOC_ROLE_COUNT
} DpocRole;

enum { DPOC_MAX_DIMS = 8 };

typedef struct DpocTensorInfo {
    char *name;
    DpocDType dtype;
    int ndim;
    int64_t shape[DPOC_MAX_DIMS];
    int64_t numel, nbytes;
    DpocRegion region;
    int64_t offset;
    DpocRole role;
    int decay;
} DpocTensorInfo;

/* one kernel call of an entry point (a row of the JSON "kernels") */
typedef struct DpocKernelInfo {
    char *name, *entry, *op;
    int64_t work, flops, bytes;
    int fn;                  /* its function: index into JSON "functions" */
    int nargs;               /* p[i] = regions[arg_region[i]] + arg_offset[i] */
    DpocRegion *arg_region;
    int64_t *arg_offset;
} DpocKernelInfo;

typedef struct DpocStep {
    void *dl;
    const DpocManifest *manifest;
    struct cJSON *json;            /* the parsed manifest JSON */
    DpocTensorInfo *tensors;
    int ntensors;
    DpocKernelInfo *kernels;       /* one per call; manifest->kernels[i] is call i's function */
    int nkernels;
    int nfunctions;                /* distinct kernel functions */
    uint8_t *regions[DPOC_R_COUNT];
    int64_t region_size[DPOC_R_COUNT];
    DpocServices serial;           /* parallel_for = one call over [0, n) */
} DpocStep;

/* 0, or -1 with a message in err (the step is then closed). */
int dpoc_step_open(DpocStep *s, const char *path, char *err, size_t errlen);
void dpoc_step_close(DpocStep *s);

const char *dpoc_dtype_name(DpocDType t);
size_t dpoc_dtype_size(DpocDType t);
const char *dpoc_role_name(DpocRole r);

/* Fills *out with the tensor's info (name borrowed from the step); 0, or -1
 * when there is none. ADAM_M / ADAM_V answer with the param's entry placed
 * in that region. */
int dpoc_step_lookup(const DpocStep *s, const char *name, DpocRole role, DpocTensorInfo *out);
/* Pointer to the tensor's first element (and its info in *info when not
 * NULL), or NULL when there is none. */
void *dpoc_step_find(DpocStep *s, const char *name, DpocRole role, DpocTensorInfo *info);

/* Fills p[0..nargs) with kernel call k's argument addresses in this step's
 * regions (what its entry point passes it), so that
 * manifest->kernels[k](p, begin, end) runs that call alone. Returns nargs,
 * or -1 when k is out of range or cap is smaller than nargs. */
int dpoc_step_kernel_args(const DpocStep *s, int k, uint8_t **p, int cap);

/* Runs an entry point with svc (NULL: the serial services). Returns the
 * entry's status, or -1 with err set when the step.so has no such entry. */
int dpoc_step_run(DpocStep *s, DpocEntryFn fn, const DpocServices *svc);
int dpoc_step_train(DpocStep *s, const DpocServices *svc, char *err, size_t errlen);
int dpoc_step_logps(DpocStep *s, const DpocServices *svc, char *err, size_t errlen);
int dpoc_step_optimizer(DpocStep *s, const DpocServices *svc, char *err, size_t errlen);

/* Checks that every "+feature" of an LLVM feature string the loader knows
 * (x86 SIMD and bit-manipulation extensions) is present on this CPU.
 * Features it cannot check are skipped. 0, or -1 naming the missing ones. */
int dpoc_check_cpu_features(const char *features, char *err, size_t errlen);

#endif
