/* cg_optim.c — optimizer_step: AdamW over every trainable parameter as one
 * kernel over the flat parameter region.
 *
 * Parameters, gradients and both moments share one layout, so the update is
 * one elementwise loop over the PARAMS region; its work is the region's
 * element count. A constant table in the module lists each parameter's
 * element range and whether weight decay applies; the kernel clips each
 * segment to its [begin, end) and skips the alignment gaps between them.
 * Like every kernel it takes an argument array, here p = {params, grads,
 * adam_m, adam_v, &adamw}, which its entry function builds from the
 * regions; its function is never shared.
 *
 * Hyper-parameters come from the `adamw` input, f64[8] = {lr, beta1, beta2,
 * eps, weight_decay, bias_correction1, bias_correction2, moment offset}.
 * The moment offset (0 for the whole region) lets a runtime keep AdamW's
 * moments for a slice [lo, hi) of the elements only (ZeRO-1): element e's
 * moments are then adam_m[e - offset] and adam_v[e - offset], and the
 * runtime calls the kernel on [lo, hi) with offset = lo. The scalars are
 * derived in double and rounded once to the parameter dtype, and the update
 * follows PyTorch's single-tensor AdamW step by step:
 *   p = p * (1 - lr*wd)                 (only where decay applies)
 *   m = lerp(m, g, 1 - beta1)
 *   v = v * beta2 + (1 - beta2) * g * g
 *   denom = sqrt(v) / sqrt(bias_correction2) + eps
 *   p = p + (-(lr / bias_correction1) * m) / denom
 */
#include "cg.h"

#include <stdlib.h>
#include <string.h>

static LLVMValueRef to_t(Cg *c, LLVMValueRef d, LLVMTypeRef t) { return t == c->f64 ? d : LLVMBuildFPTrunc(c->b, d, t, ""); }


LLVMValueRef cg_emit_optimizer(Cg *c, const TensorTable *tt, const TensorEntry *adamw) {
    int nseg = 0;
    IrDType dt = DT_F32;
    for (int i = 0; i < tt->n; i++) {
        const TensorEntry *te = &tt->t[i];
        if (te->role != TR_PARAM) continue;
        if (nseg && te->dtype != dt) {
            cg_fail(c, "optimizer_step: parameters mix dtypes (%s is %s, others %s)", te->name, ir_dtype_name(te->dtype),
                    ir_dtype_name(dt));
            return NULL;
        }
        dt = te->dtype;
        nseg++;
    }
    if (!nseg) return cg_emit_empty_entry(c, "optimizer_step");
    int64_t esz = (int64_t)ir_dtype_size(dt);
    LLVMTypeRef seg_ty = LLVMArrayType2(c->i64, 3);
    LLVMValueRef *rows = calloc((size_t)nseg, sizeof *rows);
    if (!rows) {
        cg_fail(c, "out of memory");
        return NULL;
    }
    int s = 0;
    int64_t flops = 0;
    for (int i = 0; i < tt->n; i++) {
        const TensorEntry *te = &tt->t[i];
        if (te->role != TR_PARAM) continue;
        int64_t numel = 1;
        for (int d = 0; d < te->ndim; d++) numel *= te->shape[d];
        if (te->offset % esz) {
            free(rows);
            cg_fail(c, "optimizer_step: %s is not aligned to its element size", te->name);
            return NULL;
        }
        LLVMValueRef f[3] = {cg_i64(c, te->offset / esz), cg_i64(c, te->offset / esz + numel), cg_i64(c, te->decay != 0)};
        rows[s++] = LLVMConstArray2(c->i64, f, 3);
        flops += 16 * numel;
    }
    LLVMValueRef table = LLVMAddGlobal(c->mod, LLVMArrayType2(seg_ty, (uint64_t)nseg), "adamw_segments");
    LLVMSetInitializer(table, LLVMConstArray2(seg_ty, rows, (uint64_t)nseg));
    LLVMSetGlobalConstant(table, 1);
    LLVMSetLinkage(table, LLVMPrivateLinkage);
    free(rows);

    enum { NARGS = 5 };
    const int arg_region[NARGS] = {DPOC_R_PARAMS, DPOC_R_GRADS, DPOC_R_ADAM_M, DPOC_R_ADAM_V, adamw->region};
    const int64_t arg_offset[NARGS] = {0, 0, 0, 0, adamw->offset};
    const char *name = "optimizer_step_k0_adamw";
    char fname[128];
    if (c->no_dedup) snprintf(fname, sizeof fname, "%s", name);
    else snprintf(fname, sizeof fname, "fn%d_adamw", c->nfuncs);
    int fi = cg_func_begin(c, fname, "adamw", NULL, 0, NARGS);
    if (fi < 0) return NULL;
    LLVMValueRef fn = c->funcs[fi].fn;
    int ci = cg_call_add(c, name, "optimizer_step", "adamw", fi, NARGS);
    if (ci < 0) return NULL;
    CgKernelRec *rec = &c->kernels[ci];
    for (int i = 0; i < NARGS; i++) {
        rec->arg_region[i] = (int8_t)arg_region[i];
        rec->arg_offset[i] = arg_offset[i];
    }
    rec->work = tt->region_size[DPOC_R_PARAMS] / esz;
    rec->flops = flops;
    rec->bytes = 7 * tt->region_size[DPOC_R_PARAMS];
    LLVMBuilderRef b = c->b;
    LLVMTypeRef T = cg_type(c, dt);
    LLVMValueRef pa = LLVMGetParam(fn, 0), begin = LLVMGetParam(fn, 1), end = LLVMGetParam(fn, 2);
    LLVMValueRef P = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, pa, cg_i64(c, 0)), "params");
    LLVMValueRef G = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, pa, cg_i64(c, 1)), "grads");
    LLVMValueRef Mm = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, pa, cg_i64(c, 2)), "adam_m");
    LLVMValueRef Vv = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, pa, cg_i64(c, 3)), "adam_v");
    LLVMValueRef H = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, pa, cg_i64(c, 4)), "adamw");
    LLVMValueRef h[CODEGEN_ADAMW_N];
    for (int i = 0; i < CODEGEN_ADAMW_N; i++) h[i] = LLVMBuildLoad2(b, c->f64, cg_gep(c, c->f64, H, cg_i64(c, i)), "");
    LLVMValueRef one = LLVMConstReal(c->f64, 1.0);
    LLVMValueRef lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], wd = h[4], bc1 = h[5], bc2 = h[6];
    LLVMValueRef mv_off = LLVMBuildFPToSI(b, h[7], c->i64, "mv_off"); /* ZeRO-1: moments of a slice */
    LLVMValueRef w1 = to_t(c, LLVMBuildFSub(b, one, b1, ""), T);          /* lerp weight */
    LLVMValueRef b2t = to_t(c, b2, T);
    LLVMValueRef w2 = to_t(c, LLVMBuildFSub(b, one, b2, ""), T);
    LLVMValueRef neg_step = to_t(c, LLVMBuildFNeg(b, LLVMBuildFDiv(b, lr, bc1, ""), ""), T);
    LLVMValueRef bc2s = to_t(c, cg_call_intrinsic1(c, "llvm.sqrt", bc2), T);
    LLVMValueRef epst = to_t(c, eps, T);
    LLVMValueRef dmul = to_t(c, LLVMBuildFSub(b, one, LLVMBuildFMul(b, lr, wd, ""), ""), T);
    LLVMValueRef onet = LLVMConstReal(T, 1.0);
    LLVMValueRef w1c = LLVMBuildFSub(b, onet, w1, "");                   /* 1 - weight, in T */
    LLVMValueRef small_w = LLVMBuildFCmp(b, LLVMRealOLT, cg_call_intrinsic1(c, "llvm.fabs", w1), LLVMConstReal(T, 0.5), "");

    CgFor sl, el;
    cg_for_begin(c, &sl, cg_i64(c, 0), cg_i64(c, nseg), "seg");
    LLVMValueRef row = LLVMBuildInBoundsGEP2(b, seg_ty, table, &sl.iv, 1, "");
    LLVMValueRef f0 = LLVMBuildLoad2(b, c->i64, cg_gep(c, c->i64, row, cg_i64(c, 0)), "");
    LLVMValueRef f1 = LLVMBuildLoad2(b, c->i64, cg_gep(c, c->i64, row, cg_i64(c, 1)), "");
    LLVMValueRef f2 = LLVMBuildLoad2(b, c->i64, cg_gep(c, c->i64, row, cg_i64(c, 2)), "");
    LLVMValueRef lo = cg_smax(c, f0, begin), hi = cg_smin(c, f1, end);
    LLVMValueRef mult = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntNE, f2, cg_i64(c, 0), ""), dmul, onet, "");
    cg_for_begin(c, &el, lo, hi, "e");
    LLVMValueRef pp = cg_gep(c, T, P, el.iv), gp = cg_gep(c, T, G, el.iv);
    LLVMValueRef mi = LLVMBuildSub(b, el.iv, mv_off, "");
    LLVMValueRef mp = cg_gep(c, T, Mm, mi), vp = cg_gep(c, T, Vv, mi);
    LLVMValueRef p = LLVMBuildLoad2(b, T, pp, ""), g = LLVMBuildLoad2(b, T, gp, "");
    LLVMValueRef m = LLVMBuildLoad2(b, T, mp, ""), v = LLVMBuildLoad2(b, T, vp, "");
    p = LLVMBuildFMul(b, p, mult, "");
    LLVMValueRef diff = LLVMBuildFSub(b, g, m, "");
    LLVMValueRef m_lo = LLVMBuildFAdd(b, m, LLVMBuildFMul(b, w1, diff, ""), "");
    LLVMValueRef m_hi = LLVMBuildFSub(b, g, LLVMBuildFMul(b, diff, w1c, ""), "");
    m = LLVMBuildSelect(b, small_w, m_lo, m_hi, "");
    v = LLVMBuildFAdd(b, LLVMBuildFMul(b, v, b2t, ""), LLVMBuildFMul(b, LLVMBuildFMul(b, w2, g, ""), g, ""), "");
    LLVMValueRef denom = LLVMBuildFAdd(b, LLVMBuildFDiv(b, cg_call_intrinsic1(c, "llvm.sqrt", v), bc2s, ""), epst, "");
    p = LLVMBuildFAdd(b, p, LLVMBuildFDiv(b, LLVMBuildFMul(b, neg_step, m, ""), denom, ""), "");
    LLVMBuildStore(b, p, pp);
    LLVMBuildStore(b, m, mp);
    LLVMBuildStore(b, v, vp);
    cg_for_end(c, &el);
    cg_for_end(c, &sl);
    LLVMBuildRetVoid(b);

    LLVMValueRef entry = LLVMAddFunction(c->mod, "dpoc_optimizer_step", c->entry_ty);
    LLVMSetLinkage(entry, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->ctx, entry, "entry"));
    LLVMValueRef svc = LLVMGetParam(entry, 1);
    LLVMTypeRef svc_ty = LLVMStructTypeInContext(c->ctx, (LLVMTypeRef[]){c->ptr, c->ptr}, 2, 0);
    LLVMValueRef ctx = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, svc_ty, svc, 0, ""), "ctx");
    LLVMValueRef pf = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, svc_ty, svc, 1, ""), "parallel_for");
    LLVMValueRef argbuf = LLVMBuildAlloca(b, LLVMArrayType2(c->ptr, NARGS), "args");
    cg_emit_pfor(c, LLVMGetParam(entry, 0), argbuf, ctx, pf, ci);
    LLVMBuildRet(b, LLVMConstInt(c->i32, 0, 0));
    return c->failed ? NULL : entry;
}
