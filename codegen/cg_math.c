/* cg_math.c — one scalar operation of the op table, as LLVM instructions.
 *
 * Every op rounds its own result: elementwise float instructions carry no
 * fast-math flags at all, so a value is the same whether its op runs in a
 * kernel of its own or fused into another, and equals the C expression of
 * the same operations. (Only matmul's multiply-add carries `contract`, in
 * cg_kernel.c; nothing is ever reassociated.) exp, log,
 * sqrt, sin, cos and fabs are LLVM intrinsics; log1p calls the C library.
 * max/min are llvm.maximum/llvm.minimum (NaN propagates). sigmoid uses the
 * stable split: with e = exp(-|x|), x >= 0 gives 1/(1+e), x < 0 gives
 * e/(1+e). Integer operations wrap; integer division by zero gives 0 and
 * INT_MIN / -1 gives INT_MIN, so no input can reach undefined behaviour.
 * Float-to-int casts saturate (llvm.fptosi.sat; NaN gives 0).
 */
#include "cg.h"

#include <string.h>

static LLVMValueRef libm1(Cg *c, const char *name, LLVMTypeRef t, LLVMValueRef x) {
    LLVMTypeRef fty = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) f = LLVMAddFunction(c->mod, name, fty);
    return LLVMBuildCall2(c->b, fty, f, &x, 1, "");
}

LLVMValueRef cg_unary(Cg *c, IrOp op, IrDType t, LLVMValueRef x) {
    LLVMBuilderRef b = c->b;
    if (op == OP_STOP_GRAD) return x;
    if (!ir_dtype_is_float(t)) {
        LLVMValueRef zero = LLVMConstInt(c->i32, 0, 0);
        switch (op) {
        case OP_NEG: return LLVMBuildSub(b, zero, x, "");
        case OP_ABS: return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x, zero, ""), LLVMBuildSub(b, zero, x, ""), x, "");
        default: cg_fail(c, "%s has no integer form", ir_op_info[op].name); return x;
        }
    }
    LLVMTypeRef ty = cg_type(c, t);
    LLVMValueRef one = LLVMConstReal(ty, 1.0);
    switch (op) {
    case OP_NEG: return LLVMBuildFNeg(b, x, "");
    case OP_EXP: return cg_call_intrinsic1(c, "llvm.exp", x);
    case OP_LOG: return cg_call_intrinsic1(c, "llvm.log", x);
    case OP_LOG1P: return libm1(c, t == DT_F32 ? "log1pf" : "log1p", ty, x);
    case OP_SQRT: return cg_call_intrinsic1(c, "llvm.sqrt", x);
    case OP_RSQRT: return LLVMBuildFDiv(b, one, cg_call_intrinsic1(c, "llvm.sqrt", x), "");
    case OP_ABS: return cg_call_intrinsic1(c, "llvm.fabs", x);
    case OP_COS: return cg_call_intrinsic1(c, "llvm.cos", x);
    case OP_SIN: return cg_call_intrinsic1(c, "llvm.sin", x);
    case OP_SIGMOID: {
        LLVMValueRef e = cg_call_intrinsic1(c, "llvm.exp", LLVMBuildFNeg(b, cg_call_intrinsic1(c, "llvm.fabs", x), ""));
        LLVMValueRef den = LLVMBuildFAdd(b, one, e, "");
        LLVMValueRef pos = LLVMBuildFDiv(b, one, den, "");
        LLVMValueRef neg = LLVMBuildFDiv(b, e, den, "");
        LLVMValueRef ge = LLVMBuildFCmp(b, LLVMRealOGE, x, LLVMConstReal(ty, 0.0), "");
        return LLVMBuildSelect(b, ge, pos, neg, "sigmoid");
    }
    default: cg_fail(c, "%s is not a unary elementwise op", ir_op_info[op].name); return x;
    }
}

LLVMValueRef cg_binary(Cg *c, IrOp op, IrDType t, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = c->b;
    if (!ir_dtype_is_float(t)) {
        LLVMValueRef zero = LLVMConstInt(c->i32, 0, 0);
        switch (op) {
        case OP_ADD: return LLVMBuildAdd(b, x, y, "");
        case OP_SUB: return LLVMBuildSub(b, x, y, "");
        case OP_MUL: return LLVMBuildMul(b, x, y, "");
        case OP_DIV: {
            /* divisor 0 -> result 0; INT_MIN / -1 -> INT_MIN: divide by 1 instead */
            LLVMValueRef yz = LLVMBuildICmp(b, LLVMIntEQ, y, zero, "");
            LLVMValueRef ov = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntEQ, y, LLVMConstInt(c->i32, (unsigned long long)-1, 1), ""),
                                           LLVMBuildICmp(b, LLVMIntEQ, x, LLVMConstInt(c->i32, 0x80000000u, 0), ""), "");
            LLVMValueRef safe = LLVMBuildSelect(b, LLVMBuildOr(b, yz, ov, ""), LLVMConstInt(c->i32, 1, 0), y, "");
            LLVMValueRef q = LLVMBuildSDiv(b, x, safe, "");
            return LLVMBuildSelect(b, yz, zero, q, "");
        }
        case OP_MAX: return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, x, y, ""), x, y, "");
        case OP_MIN: return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x, y, ""), x, y, "");
        case OP_CMP_LT: return LLVMBuildZExt(b, LLVMBuildICmp(b, LLVMIntSLT, x, y, ""), c->i32, "");
        default: cg_fail(c, "%s is not a binary elementwise op", ir_op_info[op].name); return x;
        }
    }
    switch (op) {
    case OP_ADD: return LLVMBuildFAdd(b, x, y, "");
    case OP_SUB: return LLVMBuildFSub(b, x, y, "");
    case OP_MUL: return LLVMBuildFMul(b, x, y, "");
    case OP_DIV: return LLVMBuildFDiv(b, x, y, "");
    case OP_MAX: return cg_call_intrinsic2(c, "llvm.maximum", x, y);
    case OP_MIN: return cg_call_intrinsic2(c, "llvm.minimum", x, y);
    case OP_CMP_LT: return LLVMBuildUIToFP(b, LLVMBuildFCmp(b, LLVMRealOLT, x, y, ""), cg_type(c, t), "");
    default: cg_fail(c, "%s is not a binary elementwise op", ir_op_info[op].name); return x;
    }
}

LLVMValueRef cg_cast(Cg *c, IrDType from, IrDType to, LLVMValueRef x) {
    if (from == to) return x;
    LLVMTypeRef tt = cg_type(c, to);
    if (from == DT_I32) return LLVMBuildSIToFP(c->b, x, tt, "");
    if (to == DT_I32) {
        LLVMTypeRef types[2] = {c->i32, cg_type(c, from)}, fty;
        LLVMValueRef f = cg_intrinsic(c, "llvm.fptosi.sat", types, 2, &fty);
        if (!f) return LLVMGetUndef(c->i32);
        return LLVMBuildCall2(c->b, fty, f, &x, 1, "");
    }
    if (from == DT_F32) return LLVMBuildFPExt(c->b, x, tt, "");
    return LLVMBuildFPTrunc(c->b, x, tt, "");
}

LLVMValueRef cg_nonzero(Cg *c, IrDType t, LLVMValueRef x) {
    if (ir_dtype_is_float(t)) return LLVMBuildFCmp(c->b, LLVMRealUNE, x, LLVMConstReal(cg_type(c, t), 0.0), "");
    return LLVMBuildICmp(c->b, LLVMIntNE, x, LLVMConstInt(c->i32, 0, 0), "");
}
