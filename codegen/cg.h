/* cg.h — internal state shared by the codegen files.
 *
 * Cg holds the LLVM context, module and builder, the handful of types every
 * file uses, the kernel functions emitted so far (CgFunc, one per distinct
 * kernel structure, found again by their canonical key: cg_dedup.c), the
 * kernel call table being built (CgKernelRec, one record per call, in the
 * order the manifest lists them, each naming its function and its argument
 * places) and the first error. Emitting functions return 0/-1 or NULL and
 * record the message with cg_fail, so a caller checks once per kernel.
 *
 * A graph kernel function does not know where its operands live: it is
 * called as fn(p, begin, end) with p[0] the output's address and p[1..] the
 * addresses of the stored values it reads, in the order of its key (first
 * use in a depth-first walk from the root). The entry function builds p from
 * the call's (region, offset) pairs. So kernels that differ only in where
 * their operands live are one function.
 *
 * CgKern is the per-kernel state of the element evaluator (cg_eval.c): which
 * nodes are computed inside the kernel, which argument slot each stored
 * value has, and the pointers to those values, loaded once in the kernel's
 * entry block.
 */
#ifndef DPOC_CG_H
#define DPOC_CG_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdint.h>

#include "codegen.h"

/* one kernel call of an entry point (a row of the manifest's kernel table) */
typedef struct CgKernelRec {
    char name[128];
    const char *entry;  /* entry point name */
    const char *op;     /* IR mnemonic of the root, or "adamw", "fill" */
    int64_t work, flops, bytes;
    int fn;             /* index into Cg.funcs */
    int nargs;          /* p[i] = regions[arg_region[i]] + arg_offset[i] */
    int8_t *arg_region;
    int64_t *arg_offset;
    int32_t *arg_node;  /* IR node id of each argument (0: the root); -1 for the optimizer */
} CgKernelRec;

/* one emitted kernel function, shared by every call with its key */
typedef struct CgFunc {
    char name[128];     /* LLVM symbol */
    const char *op;     /* IR mnemonic of the root, or "adamw" */
    char *key;          /* canonical structure (NULL: never shared) */
    size_t keylen;
    uint64_t hash;
    int nargs, ncalls;
    LLVMValueRef fn;
} CgFunc;

/* scratch of the signature walk (cg_dedup.c), sized to the largest graph */
typedef struct CgSig {
    int32_t cap;         /* nodes the arrays hold */
    uint32_t *stamp;     /* per node: == epoch when visited in this walk */
    int32_t *local;      /* per node: inline index, or argument slot of a stored value */
    uint32_t epoch;
    int32_t *args;       /* node id per argument slot (slot 0: the root, the output) */
    int nargs, acap, ninline;
    char *key;           /* the canonical key text */
    size_t len, kcap;
    int64_t in_bytes, flops;
    int inplace;         /* an input is the output's own bytes (cg_dedup.c): no alias claim */
} CgSig;

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i1, i8, i32, i64, f32, f64, ptr, voidt;
    LLVMTypeRef kernel_ty;  /* void (ptr args, i64 begin, i64 end) */
    LLVMTypeRef entry_ty;   /* i32 (ptr regions, ptr svc) */
    LLVMTypeRef pfor_ty;    /* void (ptr ctx, ptr fn, ptr args, i64 n) */
    unsigned md_scope, md_noalias;
    const char *features;   /* target feature string (cg_target_prepare; NULL before) */
    CgKernelRec *kernels;   /* calls */
    int nkernels, kcap;
    CgFunc *funcs;          /* distinct functions */
    int nfuncs, fcap;
    int32_t *fhash;         /* open addressing index of funcs by key, -1 empty */
    int32_t fhcap;
    int no_dedup;           /* every call gets a function of its own */
    int64_t bucket_bytes;   /* most bytes one merged dp gradient all-reduce covers (cg_entry.c) */
    int mesh_dp, mesh_tp;   /* the mesh written into the manifest (>= 1) */
    CgSig sig;
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
/* acc + x * y, both marked contractible (LLVM may fuse them into an fma) */
LLVMValueRef cg_mul_add(Cg *c, LLVMValueRef acc, LLVMValueRef x, LLVMValueRef y);

/* a counted loop: for (iv = lo; iv < hi; iv++) */
typedef struct CgFor {
    LLVMBasicBlockRef pre, head, body, exit;
    LLVMValueRef iv;
} CgFor;
void cg_for_begin(Cg *c, CgFor *l, LLVMValueRef lo, LLVMValueRef hi, const char *name);
void cg_for_end(Cg *c, CgFor *l);
/* ends a loop whose iterations are independent lanes (a short constant trip
 * count): never unrolled, vectorised at `width` (llvm.loop metadata), so
 * the loop vectoriser widens its body once instead of the SLP vectoriser
 * searching across `width` unrolled copies */
void cg_for_end_vector(Cg *c, CgFor *l, int width);
/* if (cond) { ... }: cg_if_begin branches into the body, cg_if_end(c, join)
 * closes it and continues after */
void cg_if_begin(Cg *c, LLVMValueRef cond, LLVMBasicBlockRef *join);
void cg_if_end(Cg *c, LLVMBasicBlockRef join);

/* creates an internal kernel function `name` (void (ptr, i64, i64)),
 * appends it to c->funcs (key NULL: it is never shared; otherwise the key is
 * copied) and leaves the builder at its entry block. Returns its index or -1. */
int cg_func_begin(Cg *c, const char *name, const char *op, const char *key, size_t keylen, int nargs);
/* the function with this key, or -1 */
int cg_func_find(Cg *c, const char *key, size_t keylen);
/* appends a call record of function fn with nargs argument places (to be
 * filled in); returns its index in c->kernels or -1 */
int cg_call_add(Cg *c, const char *name, const char *entry, const char *op, int fn, int nargs);

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
    const CgSig *sig;        /* argument slot of every stored value */
    LLVMValueRef args;       /* the kernel's argument array p */
    LLVMValueRef *ptr;       /* per slot: base pointer of a stored value, lazily */
    LLVMBasicBlockRef entry; /* where the pointers are loaded */
    LLVMValueRef out_ptr;    /* where the root is written */
    LLVMMetadataRef scope_in, scope_out, list_in, list_out;
    int32_t epi_mm;          /* epilogue kernel: the matmul member whose value ... */
    LLVMValueRef epi_val;    /* ... cg_eval returns as this (set per element), else NULL */
} CgKern;

/* the matmul a kernel computes: its root, or the member that its
 * elementwise root reads (an epilogue kernel, passes/fuse.c), else -1 */
int32_t cg_kernel_matmul(const IrGraph *g, int32_t root, const uint8_t *member);
/* 1 when node id is read from memory by the kernel (not computed inline) */
int cg_is_stored(const CgKern *k, int32_t id);
LLVMValueRef cg_node_ptr(CgKern *k, int32_t id);
LLVMValueRef cg_load(CgKern *k, LLVMTypeRef t, LLVMValueRef p, int out);
void cg_store(CgKern *k, LLVMValueRef v, LLVMValueRef p);
LLVMValueRef cg_index_flat(CgKern *k, CgIndex *ix, const IrNode *n);
void cg_index_multi(CgKern *k, CgIndex *ix, const IrNode *n);
/* the value of node id at index ix (in its own shape) */
LLVMValueRef cg_eval(CgKern *k, int32_t id, CgIndex *ix);
/* i1: node id's element at flat is > 0 (a live row or k of a matmul_masked's mask) */
LLVMValueRef cg_eval_positive(CgKern *k, int32_t id, LLVMValueRef flat);
/* whether evaluating id needs coordinates (movement ops) rather than the flat position */
int cg_needs_multi(const CgKern *k, int32_t id);

/* ---- kernel signatures and the function table (cg_dedup.c) ---- */
/* Walks the kernel computing root (members per node) depth-first from the
 * root: numbers the inline nodes and the stored values it reads (argument
 * slots 1.., in first-use order; slot 0 is the output), writes the canonical
 * key of everything that shapes the emitted code into c->sig.key, sums the
 * stored bytes and the elementwise flops, and refuses (cg_fail) a stored
 * input that overlaps the output place. 0 or -1. */
int cg_sig_build(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member, int out_region,
                 int64_t out_offset);
/* argument slot of stored node id in the last walk, or -1 when not visited */
int cg_sig_slot(const CgSig *s, int32_t id);
void cg_sig_free(CgSig *s);

/* ---- kernels (cg_kernel.c) ---- */
/* One call of the kernel computing `root` (members given per node) into
 * region/offset: finds or emits its function and records the call (work,
 * flops, bytes, argument places). Returns the call's index in c->kernels,
 * or -1. */
int cg_emit_kernel(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member, int out_region,
                   int64_t out_offset, const char *name, const char *entry);
/* a stack slot of type t, allocated in the kernel's entry block */
LLVMValueRef cg_entry_alloca(CgKern *k, LLVMTypeRef t);
/* a 64-byte aligned stack array of `floats` f32 there: kernel scratch (the
 * runtime's threads have 8 MiB stacks and a kernel is a leaf) */
LLVMValueRef cg_stack_f32(CgKern *k, int64_t floats, const char *name);

/* ---- attention kernels (cg_attention.c): the part [begin, end) of the
 * work of the attention (query rows) or attention_grad (batch entries) at
 * k's root ---- */
void cg_emit_attention(CgKern *k, LLVMValueRef begin, LLVMValueRef end);
void cg_emit_attention_grad(CgKern *k, LLVMValueRef begin, LLVMValueRef end);
/* cg_attention_tiled.c: the f32 kernels through the GEMM micro-kernel when
 * they apply (1; 0: nothing emitted, the plain loops run), and the work
 * units of a call (tiled forward: query blocks; else query rows, or batch
 * entries for the gradient) */
int cg_emit_attention_tiled(CgKern *k, LLVMValueRef begin, LLVMValueRef end);
int64_t cg_attention_work(Cg *c, const IrGraph *g, int32_t root);

/* ---- entry points, optimizer, manifest, emission ---- */
LLVMValueRef cg_emit_entry(Cg *c, const CodegenEntry *e);
/* In an entry function: fills argbuf (an alloca of at least the call's
 * nargs pointers) from regions and the call's places, then calls
 * pf(ctx, fn, argbuf, work). */
void cg_emit_pfor(Cg *c, LLVMValueRef regions, LLVMValueRef argbuf, LLVMValueRef ctx, LLVMValueRef pf, int call);
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
