/* cg_util.c — the small LLVM helpers every codegen file uses.
 *
 * Context and module set-up, the IR dtype -> LLVM type map, constants,
 * intrinsic declarations, region pointers (regions[r] + byte offset) and
 * the counted loop used by every kernel (kernel functions and the call
 * table are created in cg_dedup.c). Loops are emitted in the plain "header
 * tests iv < hi" form; the O3 pipeline rotates and vectorises them.
 */
#include "cg.h"

#include <llvm-c/DebugInfo.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cg_fail(Cg *c, const char *fmt, ...) {
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
        c->failed = 1;
    }
    return -1;
}

int cg_init(Cg *c, const char *module_name) {
    memset(c, 0, sizeof *c);
    c->ctx = LLVMContextCreate();
    c->mod = LLVMModuleCreateWithNameInContext(module_name, c->ctx);
    c->b = LLVMCreateBuilderInContext(c->ctx);
    c->i1 = LLVMInt1TypeInContext(c->ctx);
    c->i8 = LLVMInt8TypeInContext(c->ctx);
    c->i32 = LLVMInt32TypeInContext(c->ctx);
    c->i64 = LLVMInt64TypeInContext(c->ctx);
    c->f32 = LLVMFloatTypeInContext(c->ctx);
    c->f64 = LLVMDoubleTypeInContext(c->ctx);
    c->ptr = LLVMPointerTypeInContext(c->ctx, 0);
    c->voidt = LLVMVoidTypeInContext(c->ctx);
    LLVMTypeRef kargs[3] = {c->ptr, c->i64, c->i64};
    c->kernel_ty = LLVMFunctionType(c->voidt, kargs, 3, 0);
    LLVMTypeRef eargs[2] = {c->ptr, c->ptr};
    c->entry_ty = LLVMFunctionType(c->i32, eargs, 2, 0);
    LLVMTypeRef pargs[4] = {c->ptr, c->ptr, c->ptr, c->i64};
    c->pfor_ty = LLVMFunctionType(c->voidt, pargs, 4, 0);
    c->md_scope = LLVMGetMDKindIDInContext(c->ctx, "alias.scope", 11);
    c->md_noalias = LLVMGetMDKindIDInContext(c->ctx, "noalias", 7);
    return 0;
}

void cg_dispose(Cg *c) {
    if (c->b) LLVMDisposeBuilder(c->b);
    if (c->mod) LLVMDisposeModule(c->mod);
    if (c->ctx) LLVMContextDispose(c->ctx);
    for (int i = 0; i < c->nkernels; i++) {
        free(c->kernels[i].arg_region);
        free(c->kernels[i].arg_offset);
        free(c->kernels[i].arg_node);
    }
    free(c->kernels);
    for (int i = 0; i < c->nfuncs; i++) free(c->funcs[i].key);
    free(c->funcs);
    free(c->fhash);
    cg_sig_free(&c->sig);
    c->b = NULL;
    c->mod = NULL;
    c->ctx = NULL;
    c->kernels = NULL;
    c->funcs = NULL;
    c->fhash = NULL;
    c->nkernels = c->nfuncs = 0;
}

LLVMTypeRef cg_type(Cg *c, IrDType t) {
    switch (t) {
    case DT_F32: return c->f32;
    case DT_F64: return c->f64;
    case DT_I32: return c->i32;
    default: return c->i32;
    }
}

LLVMValueRef cg_i64(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }

LLVMValueRef cg_const(Cg *c, IrDType t, double v) {
    if (ir_dtype_is_float(t)) return LLVMConstReal(cg_type(c, t), v);
    return LLVMConstInt(c->i32, (unsigned long long)(int64_t)(int32_t)v, 1);
}

LLVMValueRef cg_intrinsic(Cg *c, const char *name, LLVMTypeRef *types, int ntypes, LLVMTypeRef *fty) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) {
        cg_fail(c, "unknown LLVM intrinsic %s", name);
        return NULL;
    }
    *fty = LLVMIntrinsicGetType(c->ctx, id, types, (size_t)ntypes);
    return LLVMGetIntrinsicDeclaration(c->mod, id, types, (size_t)ntypes);
}

LLVMValueRef cg_call_intrinsic1(Cg *c, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x), fty;
    LLVMValueRef f = cg_intrinsic(c, name, &t, 1, &fty);
    if (!f) return LLVMGetUndef(t);
    return LLVMBuildCall2(c->b, fty, f, &x, 1, "");
}

LLVMValueRef cg_call_intrinsic2(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y) {
    LLVMTypeRef t = LLVMTypeOf(x), fty;
    LLVMValueRef f = cg_intrinsic(c, name, &t, 1, &fty);
    if (!f) return LLVMGetUndef(t);
    LLVMValueRef args[2] = {x, y};
    return LLVMBuildCall2(c->b, fty, f, args, 2, "");
}

LLVMValueRef cg_smin(Cg *c, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");
}

LLVMValueRef cg_smax(Cg *c, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b, "");
}

LLVMValueRef cg_gep(Cg *c, LLVMTypeRef elt, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(c->b, elt, base, &idx, 1, "");
}

LLVMValueRef cg_region_ptr(Cg *c, LLVMValueRef regions, int region, int64_t offset) {
    LLVMValueRef slot = cg_gep(c, c->ptr, regions, cg_i64(c, region));
    LLVMValueRef base = LLVMBuildLoad2(c->b, c->ptr, slot, "region");
    if (!offset) return base;
    return cg_gep(c, c->i8, base, cg_i64(c, offset));
}

void cg_fmf(LLVMValueRef inst) {
    if (LLVMIsAInstruction(inst) && LLVMCanValueUseFastMathFlags(inst)) LLVMSetFastMathFlags(inst, LLVMFastMathAllowContract);
}

LLVMValueRef cg_mul_add(Cg *c, LLVMValueRef acc, LLVMValueRef x, LLVMValueRef y) {
    LLVMValueRef prod = LLVMBuildFMul(c->b, x, y, "");
    cg_fmf(prod);
    LLVMValueRef sum = LLVMBuildFAdd(c->b, acc, prod, "");
    cg_fmf(sum);
    return sum;
}

void cg_for_begin(Cg *c, CgFor *l, LLVMValueRef lo, LLVMValueRef hi, const char *name) {
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    l->pre = LLVMGetInsertBlock(c->b);
    l->head = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    l->body = LLVMAppendBasicBlockInContext(c->ctx, fn, "body");
    l->exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "exit");
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->head);
    l->iv = LLVMBuildPhi(c->b, LLVMTypeOf(lo), name);
    LLVMValueRef cond = LLVMBuildICmp(c->b, LLVMIntSLT, l->iv, hi, "");
    LLVMBuildCondBr(c->b, cond, l->body, l->exit);
    LLVMPositionBuilderAtEnd(c->b, l->body);
    LLVMAddIncoming(l->iv, &lo, &l->pre, 1);
}

static LLVMValueRef for_latch(Cg *c, CgFor *l) {
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->iv, LLVMConstInt(LLVMTypeOf(l->iv), 1, 0), "");
    LLVMValueRef br = LLVMBuildBr(c->b, l->head);
    LLVMAddIncoming(l->iv, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(c->b, l->exit);
    return br;
}

void cg_for_end(Cg *c, CgFor *l) { for_latch(c, l); }

void cg_if_begin(Cg *c, LLVMValueRef cond, LLVMBasicBlockRef *join) {
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(c->b));
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, fn, "then");
    *join = LLVMAppendBasicBlockInContext(c->ctx, fn, "join");
    LLVMBuildCondBr(c->b, cond, then, *join);
    LLVMPositionBuilderAtEnd(c->b, then);
}

void cg_if_end(Cg *c, LLVMBasicBlockRef join) {
    LLVMBuildBr(c->b, join);
    LLVMPositionBuilderAtEnd(c->b, join);
}

/* !{!"name"} or !{!"name", i1/i32 value} */
static LLVMMetadataRef loop_hint(Cg *c, const char *name, LLVMValueRef v) {
    LLVMMetadataRef ops[2] = {LLVMMDStringInContext2(c->ctx, name, strlen(name)), v ? LLVMValueAsMetadata(v) : NULL};
    return LLVMMDNodeInContext2(c->ctx, ops, v ? 2 : 1);
}

void cg_for_end_vector(Cg *c, CgFor *l, int width) {
    LLVMValueRef br = for_latch(c, l);
    /* the loop id is self-referential: built around a temporary node */
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    LLVMMetadataRef ops[4] = {
        tmp,
        loop_hint(c, "llvm.loop.unroll.disable", NULL),
        loop_hint(c, "llvm.loop.vectorize.enable", LLVMConstInt(c->i1, 1, 0)),
        loop_hint(c, "llvm.loop.vectorize.width", LLVMConstInt(c->i32, (unsigned long long)width, 0)),
    };
    LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, 4);
    LLVMMetadataReplaceAllUsesWith(tmp, id);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9), LLVMMetadataAsValue(c->ctx, id));
}
