/* cg.h — internal state shared by the codegen files.
 *
 * Cg holds the LLVM context, module and builder, the handful of types every
 * file uses, the kernel table being built (one record per emitted kernel,
 * in the order the manifest lists them) and the first error. Emitting
 * functions return 0/-1 or NULL and record the message with cg_fail, so a
 * caller checks once per kernel.
 *
 * CgKern is the per-kernel state of the element evaluator (cg_eval.c): which
 * nodes are computed inside the kernel, where every stored value lives, and
 * the pointers to those values, computed once in the kernel's entry block.
 */
#ifndef DPOC_CG_H
#define DPOC_CG_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdint.h>

#include "codegen.h"

typedef struct CgKernelRec {
    char name[128];
    const char *entry;  /* entry point name */
    const char *op;     /* IR mnemonic of the root, or "adamw", "fill" */
    int64_t work, flops, bytes;
    LLVMValueRef fn;
} CgKernelRec;

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i1, i8, i32, i64, f32, f64, ptr, voidt;
    LLVMTypeRef kernel_ty;  /* void (ptr regions, i64 begin, i64 end) */
    LLVMTypeRef entry_ty;   /* i32 (ptr regions, ptr svc) */
    LLVMTypeRef pfor_ty;    /* void (ptr ctx, ptr fn, ptr regions, i64 n) */
    unsigned md_scope, md_noalias;
    CgKernelRec *kernels;
    int nkernels, kcap;
    char err[512];
    int failed;
} Cg;

int cg_fail(Cg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cg_init(Cg *c, const char *module_name);
void cg_dispose(Cg *c);

/* ---- small builders (cg_util.c) ---- */
LLVMTypeRef cg_type(Cg *c, IrDType t);
LLVMValueRef cg_i64(Cg *c, int64_t v);
LLVMValueRef cg_const(Cg *c, IrDType t, double v);
LLVMValueRef cg_intrinsic(Cg *c, const char *name, LLVMTypeRef *types, int ntypes, LLVMTypeRef *fty);
LLVMValueRef cg_call_intrinsic1(Cg *c, const char *name, LLVMValueRef x);
LLVMValueRef cg_call_intrinsic2(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y);
LLVMValueRef cg_smin(Cg *c, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_smax(Cg *c, LLVMValueRef a, LLVMValueRef b);
/* pointer to byte `offset` of region `region` (loads regions[region]) */
LLVMValueRef cg_region_ptr(Cg *c, LLVMValueRef regions, int region, int64_t offset);
LLVMValueRef cg_gep(Cg *c, LLVMTypeRef elt, LLVMValueRef base, LLVMValueRef idx);
void cg_fmf(LLVMValueRef inst); /* contract only, on float instructions */

/* a counted loop: for (iv = lo; iv < hi; iv++) */
typedef struct CgFor {
    LLVMBasicBlockRef pre, head, body, exit;
    LLVMValueRef iv;
} CgFor;
void cg_for_begin(Cg *c, CgFor *l, LLVMValueRef lo, LLVMValueRef hi, const char *name);
void cg_for_end(Cg *c, CgFor *l);

/* creates an internal kernel function and records it; builder at its entry */
LLVMValueRef cg_kernel_begin(Cg *c, const char *name, const char *entry, const char *op);

/* ---- scalar operations (cg_math.c) ---- */
LLVMValueRef cg_unary(Cg *c, IrOp op, IrDType t, LLVMValueRef x);
LLVMValueRef cg_binary(Cg *c, IrOp op, IrDType t, LLVMValueRef x, LLVMValueRef y);
LLVMValueRef cg_cast(Cg *c, IrDType from, IrDType to, LLVMValueRef x);
LLVMValueRef cg_nonzero(Cg *c, IrDType t, LLVMValueRef x); /* i1 */

/* ---- the element evaluator (cg_eval.c) ---- */
typedef struct CgIndex {
    LLVMValueRef flat;              /* row-major position in the node's shape, or NULL */
    LLVMValueRef d[IR_MAX_DIMS];    /* coordinates, valid when multi */
    int multi;
} CgIndex;

typedef struct CgKern {
    Cg *c;
    const IrGraph *g;
    const SchedPlan *plan;
    int32_t root;
    const uint8_t *member;   /* per node: computed inside this kernel */
    LLVMValueRef regions;    /* the kernel's regions argument */
    LLVMValueRef *ptr;       /* per node: base pointer of a stored value, lazily */
    LLVMBasicBlockRef entry; /* where the pointers are computed */
    LLVMValueRef out_ptr;    /* where the root is written */
    LLVMMetadataRef scope_in, scope_out, list_in, list_out;
} CgKern;

/* 1 when node id is read from memory by the kernel (not computed inline) */
int cg_is_stored(const CgKern *k, int32_t id);
LLVMValueRef cg_node_ptr(CgKern *k, int32_t id);
LLVMValueRef cg_load(CgKern *k, LLVMTypeRef t, LLVMValueRef p, int out);
void cg_store(CgKern *k, LLVMValueRef v, LLVMValueRef p);
LLVMValueRef cg_index_flat(CgKern *k, CgIndex *ix, const IrNode *n);
void cg_index_multi(CgKern *k, CgIndex *ix, const IrNode *n);
/* the value of node id at index ix (in its own shape) */
LLVMValueRef cg_eval(CgKern *k, int32_t id, CgIndex *ix);
/* whether evaluating id needs coordinates (movement ops) rather than the flat position */
int cg_needs_multi(const CgKern *k, int32_t id);

/* ---- kernels (cg_kernel.c) ---- */
/* Emits the kernel computing `root` (members given per node) into
 * region/offset; fills rec->work/flops/bytes. Returns the function or NULL. */
LLVMValueRef cg_emit_kernel(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member,
                            int out_region, int64_t out_offset, const char *name, const char *entry,
                            CgKernelRec **rec);

/* ---- entry points, optimizer, manifest, emission ---- */
LLVMValueRef cg_emit_entry(Cg *c, const CodegenEntry *e);
LLVMValueRef cg_emit_optimizer(Cg *c, const TensorTable *tt, const TensorEntry *adamw);
LLVMValueRef cg_emit_empty_entry(Cg *c, const char *name);

typedef struct CgTarget {
    char *cpu, *features, *triple; /* malloc'd */
    LLVMTargetMachineRef tm;
} CgTarget;

char *cg_manifest_json(Cg *c, const CodegenEntry *entries, int nentries, const TensorTable *tt,
                       const CodegenOptions *o, const CgTarget *t);
void cg_emit_manifest(Cg *c, const char *json, const CgTarget *t, LLVMValueRef train, LLVMValueRef logps,
                      LLVMValueRef optim);
/* host (or requested) CPU and features, the target machine, the module's
 * triple and data layout */
int cg_target_prepare(Cg *c, const CodegenOptions *o, CgTarget *t);
/* verifies, optionally writes the .ll, runs default<O3>, writes the object */
int cg_emit_object(Cg *c, const CodegenOptions *o, CgTarget *t, const char *obj_path);
void cg_target_free(CgTarget *t);
int cg_link_shared(const char *obj, const char *out, char *err, size_t errlen);

#endif
