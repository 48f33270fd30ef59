/* cg_math.c — one scalar operation of the op table, as LLVM instructions.
 *
 * Every op rounds its own result: elementwise float instructions carry no
 * fast-math flags at all, so a value is the same whether its op runs in a
 * kernel of its own or fused into another, and equals the C expression of
 * the same operations. (Only matmul's multiply-add carries `contract`, in
 * cg_kernel.c; nothing is ever reassociated.) sqrt and fabs are LLVM
 * intrinsics (single instructions). max/min are llvm.maximum/llvm.minimum
 * (NaN propagates). sigmoid uses the stable split: with e = exp(-|x|),
 * x >= 0 gives 1/(1+e), x < 0 gives e/(1+e). Integer operations wrap;
 * integer division by zero gives 0 and INT_MIN / -1 gives INT_MIN, so no
 * input can reach undefined behaviour. Float-to-int casts saturate
 * (llvm.fptosi.sat; NaN gives 0).
 *
 * f32 exp, log and log1p (and so sigmoid) are emitted as straight-line
 * polynomial code, no call, so the loop vectoriser widens the loops that use
 * them (a libm call blocks it); plain multiplies and adds, no fma, so the
 * bits do not depend on the target. Bounds, checked against libm over dense
 * sweeps and the edge cases by tests/fuse/test_fuse_math.c:
 *  - exp: n = round(x*log2(e)) by the 1.5*2^23 trick, r = x - n*ln2 in two
 *    parts (Cody-Waite: n*C1 is exact), exp(r) = 1 + r + r^2*P(r) with P a
 *    degree-4 Chebyshev fit of (e^r-1-r)/r^2 on [-ln2/2, ln2/2] (fit error
 *    6.5e-8 absolute, 8e-9 relative in the result), scaled by 2^n as two
 *    exact power-of-two factors so denormal results round once. x is clamped
 *    to at most 88.8 first (beyond it the result is inf anyway); below -104
 *    (where the result rounds to 0) the lane computes exp(0) and 0 is
 *    selected, so no denormal arithmetic (slow on x86) is done for it; NaN
 *    passes through. Within 1 ulp of libm's expf.
 *  - log: x = 2^k * m with m in [sqrt(1/2), sqrt(2)) (denormals scaled by
 *    2^23 first), f = m - 1 (exact), s = f/(2+f), log(1+f) = f - hf + s*(hf +
 *    R) with hf = f*f/2 and R = z*(2/3 + 2/5 z + 2/7 z^2 + 2/9 z^3), z = s^2
 *    (the atanh series; |s| < 0.172, the next term is below 1e-9), plus k*ln2
 *    in two parts. 0 -> -inf, negative -> NaN, inf -> inf. Within 1 ulp.
 *  - log1p: u = 1 + x; x when u == 1, else log(u) * (x / (u - 1)) — the
 *    quotient corrects the rounding of 1 + x. inf -> inf. Within 2 ulp.
 * f64 keeps the C library (llvm.exp/llvm.log lower to exp/log; log1p is a
 * call): f64 runs in the gradient checks, where accuracy to the last bit
 * matters more than speed. sin and cos (RoPE tables, computed once per step)
 * stay intrinsics in both types.
 */
#include "cg.h"

#include <string.h>

static LLVMValueRef libm1(Cg *c, const char *name, LLVMTypeRef t, LLVMValueRef x) {
    LLVMTypeRef fty = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) f = LLVMAddFunction(c->mod, name, fty);
    return LLVMBuildCall2(c->b, fty, f, &x, 1, "");
}

/* ---- f32 polynomial math ------------------------------------------------ */
static LLVMValueRef f32c(Cg *c, double v) { return LLVMConstReal(c->f32, v); }
static LLVMValueRef i32c(Cg *c, long long v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }
static LLVMValueRef fmul(Cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->b, a, b, ""); }
static LLVMValueRef fadd(Cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(c->b, a, b, ""); }
static LLVMValueRef fsub(Cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->b, a, b, ""); }
static LLVMValueRef fsel(Cg *c, LLVMValueRef cond, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(c->b, cond, a, b, "");
}
static LLVMValueRef fcmp(Cg *c, LLVMRealPredicate p, LLVMValueRef a, double v) {
    return LLVMBuildFCmp(c->b, p, a, f32c(c, v), "");
}

/* 2^n for n in [-126, 127], as a float */
static LLVMValueRef pow2_f32(Cg *c, LLVMValueRef n) {
    LLVMValueRef bits = LLVMBuildShl(c->b, LLVMBuildAdd(c->b, n, i32c(c, 127), ""), i32c(c, 23), "");
    return LLVMBuildBitCast(c->b, bits, c->f32, "");
}

static LLVMValueRef exp_f32(Cg *c, LLVMValueRef x) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, x, x, "");
    LLVMValueRef xc = fsel(c, nan, f32c(c, 0.0), x);
    xc = fsel(c, fcmp(c, LLVMRealOGT, xc, 88.8), f32c(c, 88.8), xc);
    /* below -104 the result rounds to 0: selected at the end, with the lane
     * computing exp(0) meanwhile; computing it would underflow through a
     * denormal, which costs a microcode assist per vector on x86 (the masked
     * -inf half of every causal softmax) */
    LLVMValueRef zero = fcmp(c, LLVMRealOLT, xc, -104.0);
    xc = fsel(c, zero, f32c(c, 0.0), xc);
    /* n = round(x / ln2): adding 1.5*2^23 leaves the rounded integer in the low mantissa bits */
    LLVMValueRef t = fadd(c, fmul(c, xc, f32c(c, 1.44269504088896341)), f32c(c, 12582912.0));
    LLVMValueRef nf = fsub(c, t, f32c(c, 12582912.0));
    LLVMValueRef ni = LLVMBuildSub(b, LLVMBuildBitCast(b, t, c->i32, ""), i32c(c, 0x4B400000), "");
    LLVMValueRef r = fsub(c, xc, fmul(c, nf, f32c(c, 0.693359375)));
    r = fsub(c, r, fmul(c, nf, f32c(c, -2.12194440e-4)));
    static const double P[5] = {0.00139261759, 0.00836317334, 0.0416665561, 0.166665778, 0.5};
    LLVMValueRef p = f32c(c, P[0]);
    for (int i = 1; i < 5; i++) p = fadd(c, fmul(c, p, r), f32c(c, P[i]));
    LLVMValueRef e = fadd(c, f32c(c, 1.0), fadd(c, r, fmul(c, fmul(c, r, r), p)));
    LLVMValueRef n1 = LLVMBuildAShr(b, ni, i32c(c, 1), "");
    LLVMValueRef n2 = LLVMBuildSub(b, ni, n1, "");
    LLVMValueRef y = fmul(c, fmul(c, e, pow2_f32(c, n1)), pow2_f32(c, n2));
    y = fsel(c, zero, f32c(c, 0.0), y);
    return fsel(c, nan, fadd(c, x, x), y);
}

static LLVMValueRef log_f32(Cg *c, LLVMValueRef x) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef sub = fcmp(c, LLVMRealOLT, x, 1.17549435e-38); /* denormal (or <= 0: fixed below) */
    LLVMValueRef xs = fsel(c, sub, fmul(c, x, f32c(c, 8388608.0)), x);
    LLVMValueRef kadj = LLVMBuildSelect(b, sub, i32c(c, -23), i32c(c, 0), "");
    LLVMValueRef ix = LLVMBuildAdd(b, LLVMBuildBitCast(b, xs, c->i32, ""), i32c(c, 0x3f800000 - 0x3f3504f3), "");
    LLVMValueRef k = LLVMBuildAdd(b, LLVMBuildSub(b, LLVMBuildAShr(b, ix, i32c(c, 23), ""), i32c(c, 127), ""), kadj, "");
    LLVMValueRef mi = LLVMBuildAdd(b, LLVMBuildAnd(b, ix, i32c(c, 0x007fffff), ""), i32c(c, 0x3f3504f3), "");
    LLVMValueRef f = fsub(c, LLVMBuildBitCast(b, mi, c->f32, ""), f32c(c, 1.0));
    LLVMValueRef s = LLVMBuildFDiv(b, f, fadd(c, f32c(c, 2.0), f), "");
    LLVMValueRef z = fmul(c, s, s);
    LLVMValueRef R = f32c(c, 2.0 / 9.0);
    R = fadd(c, fmul(c, R, z), f32c(c, 2.0 / 7.0));
    R = fadd(c, fmul(c, R, z), f32c(c, 2.0 / 5.0));
    R = fadd(c, fmul(c, R, z), f32c(c, 2.0 / 3.0));
    R = fmul(c, R, z);
    LLVMValueRef hf = fmul(c, fmul(c, f32c(c, 0.5), f), f);
    LLVMValueRef kf = LLVMBuildSIToFP(b, k, c->f32, "");
    /* k*ln2_hi - ((hf - (s*(hf + R) + k*ln2_lo)) - f) */
    LLVMValueRef inner = fadd(c, fmul(c, s, fadd(c, hf, R)), fmul(c, kf, f32c(c, 1.42860682e-06)));
    LLVMValueRef y = fsub(c, fmul(c, kf, f32c(c, 0.693145751953125)), fsub(c, fsub(c, hf, inner), f));
    y = fsel(c, fcmp(c, LLVMRealOEQ, x, __builtin_inff()), x, y);
    y = fsel(c, fcmp(c, LLVMRealOEQ, x, 0.0), f32c(c, -__builtin_inff()), y);
    y = fsel(c, fcmp(c, LLVMRealOLT, x, 0.0), f32c(c, __builtin_nanf("")), y);
    return fsel(c, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), fadd(c, x, x), y);
}

static LLVMValueRef log1p_f32(Cg *c, LLVMValueRef x) {
    LLVMValueRef u = fadd(c, f32c(c, 1.0), x);
    LLVMValueRef y = fmul(c, log_f32(c, u), LLVMBuildFDiv(c->b, x, fsub(c, u, f32c(c, 1.0)), ""));
    y = fsel(c, fcmp(c, LLVMRealOEQ, u, 1.0), x, y);
    return fsel(c, fcmp(c, LLVMRealOEQ, x, __builtin_inff()), x, y);
}

static LLVMValueRef exp_any(Cg *c, IrDType t, LLVMValueRef x) {
    return t == DT_F32 ? exp_f32(c, x) : cg_call_intrinsic1(c, "llvm.exp", x);
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
    case OP_EXP: return exp_any(c, t, x);
    case OP_LOG: return t == DT_F32 ? log_f32(c, x) : cg_call_intrinsic1(c, "llvm.log", x);
    case OP_LOG1P: return t == DT_F32 ? log1p_f32(c, x) : libm1(c, "log1p", ty, x);
    case OP_SQRT: return cg_call_intrinsic1(c, "llvm.sqrt", x);
    case OP_RSQRT: return LLVMBuildFDiv(b, one, cg_call_intrinsic1(c, "llvm.sqrt", x), "");
    case OP_ABS: return cg_call_intrinsic1(c, "llvm.fabs", x);
    case OP_COS: return cg_call_intrinsic1(c, "llvm.cos", x);
    case OP_SIN: return cg_call_intrinsic1(c, "llvm.sin", x);
    case OP_SIGMOID: {
        LLVMValueRef e = exp_any(c, t, LLVMBuildFNeg(b, cg_call_intrinsic1(c, "llvm.fabs", x), ""));
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
