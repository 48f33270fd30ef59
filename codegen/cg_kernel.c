/* cg_kernel.c — one kernel: the loops around the element evaluator.
 *
 * A kernel function is `void k(uint8_t *const *p, int64_t begin, int64_t end)`
 * and computes the part [begin, end) of its work; p[0] is where its result
 * goes and p[1..] are the stored values it reads (cg_dedup.c numbers them).
 * The shape of the loops depends on the op at the kernel's root:
 *
 *  - map (elementwise, movement, indexing, const, iota): work = output
 *    elements. Without movement the loop is flat over the range; with it,
 *    the range is walked row by row (rows of the last dim), the outer
 *    coordinates computed once per row, so the inner loop is affine in the
 *    last coordinate.
 *  - reduce_sum / reduce_max over an axis: input [outer, R, inner], work =
 *    outer * inner output positions. For inner > 1 every output element
 *    accumulates its R inputs in order r = 0..R-1 starting from 0 (sum) or
 *    -inf (max), the loop over r outside the loop over a run of inner
 *    positions, which vectorises without changing any element's order. For
 *    inner == 1 (the last axis) and R >= 16, eight lanes take r mod 8 and
 *    are combined by a fixed pairwise tree, then the last R mod 8 inputs
 *    follow in order: a fixed order that depends on R only. The lanes are
 *    an inner loop of 8 that the loop vectoriser widens (one copy of the
 *    input's expression, exp included, in vector form).
 *  - matmul, f32: cg_gemm.c (packed panels, register-blocked micro-kernel;
 *    work = output tiles). f64 (gradient-check builds), or with
 *    DPOC_NO_GEMM=1, this plain loop:
 *  - matmul: work = batch * M output rows. Row (b, m) starts at zero and adds
 *    A[m,k] * B[k,n] for k = 0..K-1 in order: i-k-j when B is not transposed
 *    (inner loop contiguous over n), a dot product over k per (m, n) when it
 *    is. Both give every element the same sequence of operations.
 *    matmul_masked: a dead row (mask <= 0) is stored as zeros, a dead k is
 *    skipped (its terms are never added).
 *  - epilogue kernel (an elementwise root with a matmul member, fuse.c):
 *    the matmul's loops as above, writing into the root's output, and the
 *    root evaluated over each finished tile (GEMM) or row (plain loop) with
 *    the computed value standing in for the matmul (CgKern.epi_val).
 *  - scatter_add_rows: work = destination rows. The range's rows start at
 *    zero; one pass over the ids adds every source row i whose id falls in
 *    the range to its row, so each row adds its sources in increasing i.
 *    scatter_add_into: the same, the rows starting at the base's (not
 *    copied when the base is the output's own bytes: only the ids' rows are
 *    touched).
 *  - attention and attention_grad: cg_attention.c and, tiled,
 *    cg_attention_tiled.c (work = query rows, or blocks of them when tiled,
 *    and whole batch entries for the gradient, whose dk and dv rows every
 *    query row of the entry adds to).
 *
 * So no result depends on how the runtime splits the range. cg_emit_kernel
 * handles one call: it builds the kernel's signature (which also checks
 * that the output does not overlap a stored input, what the alias scopes
 * promise LLVM), emits a function only when no earlier call had the same
 * key (or always, with dedup off), and records the call with its argument
 * places, work, flops and bytes (matmul 2*M*N*K*batch, elementwise one per
 * element, reductions one per input element, attention 4*batch*M*T*D and
 * its gradient 8*batch*M*T*D; bytes = stored inputs + output) for the manifest.
 */
#include "cg.h"
#include "cg_gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

LLVMValueRef cg_entry_alloca(CgKern *k, LLVMTypeRef t) {
    LLVMBasicBlockRef here = LLVMGetInsertBlock(k->c->b);
    LLVMPositionBuilderAtEnd(k->c->b, k->entry);
    LLVMValueRef a = LLVMBuildAlloca(k->c->b, t, "acc");
    LLVMPositionBuilderAtEnd(k->c->b, here);
    return a;
}

LLVMValueRef cg_stack_f32(CgKern *k, int64_t floats, const char *name) {
    Cg *c = k->c;
    LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, k->entry);
    LLVMValueRef a = LLVMBuildAlloca(c->b, LLVMArrayType2(c->f32, (uint64_t)floats), name);
    LLVMSetAlignment(a, 64);
    LLVMPositionBuilderAtEnd(c->b, here);
    return a;
}

static LLVMValueRef out_elem(CgKern *k, LLVMTypeRef t, LLVMValueRef flat) { return cg_gep(k->c, t, k->out_ptr, flat); }

/* ---- map kernels -------------------------------------------------------- */
static void emit_map(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    const IrNode *n = ir_node(k->g, k->root);
    LLVMTypeRef t = cg_type(c, (IrDType)n->dtype);
    CgFor l;
    if (n->ndim == 0 || !cg_needs_multi(k, k->root)) {
        cg_for_begin(c, &l, begin, end, "i");
        CgIndex ix = {.flat = l.iv};
        cg_store(k, cg_eval(k, k->root, &ix), out_elem(k, t, l.iv));
        cg_for_end(c, &l);
        return;
    }
    int nd = n->ndim;
    int64_t L = n->shape[nd - 1];
    LLVMValueRef Lc = cg_i64(c, L);
    LLVMValueRef rb = LLVMBuildSDiv(c->b, begin, Lc, "");
    LLVMValueRef re = LLVMBuildSDiv(c->b, LLVMBuildNSWAdd(c->b, end, cg_i64(c, L - 1), ""), Lc, "");
    CgFor rows;
    cg_for_begin(c, &rows, rb, re, "row");
    LLVMValueRef base = LLVMBuildNSWMul(c->b, rows.iv, Lc, "");
    LLVMValueRef j0 = cg_smax(c, LLVMBuildNSWSub(c->b, begin, base, ""), cg_i64(c, 0));
    LLVMValueRef j1 = cg_smin(c, LLVMBuildNSWSub(c->b, end, base, ""), Lc);
    LLVMValueRef outer[IR_MAX_DIMS];
    LLVMValueRef f = rows.iv;
    for (int d = nd - 2; d >= 0; d--) {
        if (n->shape[d] == 1) {
            outer[d] = cg_i64(c, 0);
        } else if (d == 0) {
            outer[d] = f;
        } else {
            outer[d] = LLVMBuildURem(c->b, f, cg_i64(c, n->shape[d]), "");
            f = LLVMBuildUDiv(c->b, f, cg_i64(c, n->shape[d]), "");
        }
    }
    cg_for_begin(c, &l, j0, j1, "j");
    CgIndex ix = {.multi = 1};
    memcpy(ix.d, outer, sizeof(LLVMValueRef) * (size_t)(nd - 1));
    ix.d[nd - 1] = l.iv;
    ix.flat = LLVMBuildNSWAdd(c->b, base, l.iv, "");
    cg_store(k, cg_eval(k, k->root, &ix), out_elem(k, t, ix.flat));
    cg_for_end(c, &l);
    cg_for_end(c, &rows);
}

/* ---- reductions --------------------------------------------------------- */
static LLVMValueRef reduce_init(Cg *c, IrOp op, IrDType t) {
    if (op == OP_REDUCE_SUM) return cg_const(c, t, 0.0);
    if (ir_dtype_is_float(t)) return LLVMConstReal(cg_type(c, t), -__builtin_inf());
    return LLVMConstInt(c->i32, 0x80000000u, 0);
}

static void emit_reduce(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    const IrNode *n = ir_node(k->g, k->root);
    const IrNode *x = ir_node(k->g, n->in[0]);
    IrDType t = (IrDType)n->dtype;
    LLVMTypeRef ty = cg_type(c, t);
    IrOp comb = n->op == OP_REDUCE_SUM ? OP_ADD : OP_MAX;
    int ax = (int)n->attr[0];
    int64_t R = x->shape[ax], inner = 1;
    for (int d = ax + 1; d < x->ndim; d++) inner *= x->shape[d];
    LLVMValueRef init = reduce_init(c, (IrOp)n->op, t);
    CgFor l, r;
    if (inner == 1) {
        /* one output per position; the accumulators live in stack slots
         * that LICM/SROA turn into registers. With R >= 2*RED_LANES the
         * first R8 inputs go to RED_LANES partial results (lane j takes r =
         * j mod RED_LANES, in increasing r), combined as a fixed pairwise
         * tree ((a0 a1)(a2 a3))((a4 a5)(a6 a7)); the remaining r < R go on
         * in order. Independent lanes let the loop run at vector width
         * instead of one dependent add per cycle, and the order is still a
         * function of R alone. (Eight unrolled copies left to the SLP
         * vectoriser were 4-5x slower when the input held an exp, which it
         * did not widen, and cost compile time.) */
        enum { RED_LANES = 8 };
        int64_t R8 = R >= 2 * RED_LANES ? R / RED_LANES * RED_LANES : 0;
        LLVMValueRef slot = cg_entry_alloca(k, ty);
        LLVMValueRef lanes = R8 ? cg_entry_alloca(k, LLVMArrayType2(ty, RED_LANES)) : NULL;
        cg_for_begin(c, &l, begin, end, "p");
        LLVMValueRef base = LLVMBuildNSWMul(c->b, l.iv, cg_i64(c, R), "");
        if (R8) {
            /* the lanes are the iterations of an inner loop of RED_LANES
             * (kept a loop and vectorised at that width): one copy of the
             * input's expression, widened by the loop vectoriser */
            CgFor rv, j;
            for (int q = 0; q < RED_LANES; q++) LLVMBuildStore(c->b, init, cg_gep(c, ty, lanes, cg_i64(c, q)));
            cg_for_begin(c, &rv, cg_i64(c, 0), cg_i64(c, R8 / RED_LANES), "rv");
            LLVMValueRef r0 = LLVMBuildNSWAdd(c->b, base, LLVMBuildNSWMul(c->b, rv.iv, cg_i64(c, RED_LANES), ""), "");
            cg_for_begin(c, &j, cg_i64(c, 0), cg_i64(c, RED_LANES), "lane");
            CgIndex ix = {.flat = LLVMBuildNSWAdd(c->b, r0, j.iv, "")};
            LLVMValueRef v = cg_eval(k, n->in[0], &ix);
            LLVMValueRef lp = cg_gep(c, ty, lanes, j.iv);
            LLVMBuildStore(c->b, cg_binary(c, comb, t, LLVMBuildLoad2(c->b, ty, lp, ""), v), lp);
            cg_for_end_vector(c, &j, RED_LANES);
            cg_for_end(c, &rv);
            LLVMValueRef acc[RED_LANES];
            for (int q = 0; q < RED_LANES; q++) acc[q] = LLVMBuildLoad2(c->b, ty, cg_gep(c, ty, lanes, cg_i64(c, q)), "");
            for (int w = RED_LANES; w > 1; w /= 2)
                for (int q = 0; q < w / 2; q++) acc[q] = cg_binary(c, comb, t, acc[2 * q], acc[2 * q + 1]);
            LLVMBuildStore(c->b, acc[0], slot);
        } else {
            LLVMBuildStore(c->b, init, slot);
        }
        cg_for_begin(c, &r, cg_i64(c, R8), cg_i64(c, R), "r");
        CgIndex ix = {.flat = LLVMBuildNSWAdd(c->b, base, r.iv, "")};
        LLVMValueRef v = cg_eval(k, n->in[0], &ix);
        LLVMBuildStore(c->b, cg_binary(c, comb, t, LLVMBuildLoad2(c->b, ty, slot, ""), v), slot);
        cg_for_end(c, &r);
        cg_store(k, LLVMBuildLoad2(c->b, ty, slot, ""), out_elem(k, ty, l.iv));
        cg_for_end(c, &l);
        return;
    }
    LLVMValueRef Ic = cg_i64(c, inner);
    LLVMValueRef ob = LLVMBuildSDiv(c->b, begin, Ic, "");
    LLVMValueRef oe = LLVMBuildSDiv(c->b, LLVMBuildNSWAdd(c->b, end, cg_i64(c, inner - 1), ""), Ic, "");
    CgFor o, i0, i1;
    cg_for_begin(c, &o, ob, oe, "o");
    LLVMValueRef obase = LLVMBuildNSWMul(c->b, o.iv, Ic, "");
    LLVMValueRef lo = cg_smax(c, LLVMBuildNSWSub(c->b, begin, obase, ""), cg_i64(c, 0));
    LLVMValueRef hi = cg_smin(c, LLVMBuildNSWSub(c->b, end, obase, ""), Ic);
    cg_for_begin(c, &i0, lo, hi, "i");
    cg_store(k, init, out_elem(k, ty, LLVMBuildNSWAdd(c->b, obase, i0.iv, "")));
    cg_for_end(c, &i0);
    cg_for_begin(c, &r, cg_i64(c, 0), cg_i64(c, R), "r");
    LLVMValueRef xbase = LLVMBuildNSWMul(c->b, LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, o.iv, cg_i64(c, R), ""), r.iv, ""), Ic, "");
    cg_for_begin(c, &i1, lo, hi, "i");
    LLVMValueRef q = out_elem(k, ty, LLVMBuildNSWAdd(c->b, obase, i1.iv, ""));
    LLVMValueRef cur = cg_load(k, ty, q, 1);
    CgIndex ix = {.flat = LLVMBuildNSWAdd(c->b, xbase, i1.iv, "")};
    cg_store(k, cg_binary(c, comb, t, cur, cg_eval(k, n->in[0], &ix)), q);
    cg_for_end(c, &i1);
    cg_for_end(c, &r);
    cg_for_end(c, &o);
}

/* ---- matmul ------------------------------------------------------------- */

static void emit_matmul(CgKern *k, int32_t mm, LLVMValueRef begin, LLVMValueRef end, const CgGemmEpilogue *epi) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const IrNode *n = ir_node(k->g, mm);
    const IrNode *A = ir_node(k->g, n->in[0]);
    IrDType t = (IrDType)n->dtype;
    LLVMTypeRef ty = cg_type(c, t);
    int r = n->ndim, ta = (int)n->attr[0], tb = (int)n->attr[1];
    int64_t M = n->shape[r - 2], N = n->shape[r - 1], K = ta ? A->shape[r - 2] : A->shape[r - 1];
    LLVMValueRef Mc = cg_i64(c, M), Nc = cg_i64(c, N), Kc = cg_i64(c, K);
    int mask_dim = n->op == OP_MATMUL_MASKED ? (int)n->attr[2] : -1;
    CgFor w, kk, j;
    cg_for_begin(c, &w, begin, end, "w");
    LLVMValueRef bat = LLVMBuildUDiv(b, w.iv, Mc, "");
    LLVMValueRef m = LLVMBuildURem(b, w.iv, Mc, "");
    LLVMValueRef orow = LLVMBuildNSWMul(b, w.iv, Nc, "");
    LLVMBasicBlockRef deadrow = NULL, rowdone = NULL;
    if (mask_dim == 0) { /* a dead row (mask <= 0) is zeros */
        LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(b));
        LLVMBasicBlockRef live = LLVMAppendBasicBlockInContext(c->ctx, fn, "liverow");
        deadrow = LLVMAppendBasicBlockInContext(c->ctx, fn, "deadrow");
        rowdone = LLVMAppendBasicBlockInContext(c->ctx, fn, "rowdone");
        LLVMBuildCondBr(b, cg_eval_positive(k, n->in[2], m), live, deadrow);
        LLVMPositionBuilderAtEnd(b, live);
    }
    LLVMBasicBlockRef kjoin = NULL;
    /* A(m, k) and B(k, n) as flat positions */
#define A_AT(kv) (ta ? LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, bat, Kc, ""), (kv), ""), Mc, ""), m, "") \
                     : LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, w.iv, Kc, ""), (kv), ""))
#define B_AT(kv, nv) (tb ? LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, bat, Nc, ""), (nv), ""), Kc, ""), (kv), "") \
                         : LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, bat, Kc, ""), (kv), ""), Nc, ""), (nv), ""))
    if (!tb) {
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "n");
        cg_store(k, cg_const(c, t, 0.0), out_elem(k, ty, LLVMBuildNSWAdd(b, orow, j.iv, "")));
        cg_for_end(c, &j);
        cg_for_begin(c, &kk, cg_i64(c, 0), Kc, "k");
        if (mask_dim == 1) cg_if_begin(c, cg_eval_positive(k, n->in[2], kk.iv), &kjoin); /* a dead k adds nothing */
        CgIndex ia = {.flat = A_AT(kk.iv)};
        LLVMValueRef av = cg_eval(k, n->in[0], &ia);
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "n");
        CgIndex ib = {.flat = B_AT(kk.iv, j.iv)};
        LLVMValueRef bv = cg_eval(k, n->in[1], &ib);
        LLVMValueRef q = out_elem(k, ty, LLVMBuildNSWAdd(b, orow, j.iv, ""));
        cg_store(k, cg_mul_add(c, cg_load(k, ty, q, 1), av, bv), q);
        cg_for_end(c, &j);
        if (kjoin) cg_if_end(c, kjoin);
        cg_for_end(c, &kk);
    } else {
        LLVMValueRef slot = cg_entry_alloca(k, ty);
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "n");
        LLVMBuildStore(b, cg_const(c, t, 0.0), slot);
        cg_for_begin(c, &kk, cg_i64(c, 0), Kc, "k");
        if (mask_dim == 1) cg_if_begin(c, cg_eval_positive(k, n->in[2], kk.iv), &kjoin);
        CgIndex ia = {.flat = A_AT(kk.iv)};
        CgIndex ib = {.flat = B_AT(kk.iv, j.iv)};
        LLVMValueRef av = cg_eval(k, n->in[0], &ia), bv = cg_eval(k, n->in[1], &ib);
        LLVMBuildStore(b, cg_mul_add(c, LLVMBuildLoad2(b, ty, slot, ""), av, bv), slot);
        if (kjoin) cg_if_end(c, kjoin);
        cg_for_end(c, &kk);
        cg_store(k, LLVMBuildLoad2(b, ty, slot, ""), out_elem(k, ty, LLVMBuildNSWAdd(b, orow, j.iv, "")));
        cg_for_end(c, &j);
    }
#undef A_AT
#undef B_AT
    if (epi) { /* the row is complete: the epilogue over it */
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "e");
        LLVMValueRef flat = LLVMBuildNSWAdd(b, orow, j.iv, "");
        LLVMValueRef q = out_elem(k, ty, flat);
        cg_store(k, epi->fn(k, epi->ctx, cg_load(k, ty, q, 1), flat), q);
        cg_for_end(c, &j);
    }
    if (deadrow) {
        LLVMBuildBr(b, rowdone);
        LLVMPositionBuilderAtEnd(b, deadrow);
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "z");
        cg_store(k, cg_const(c, t, 0.0), out_elem(k, ty, LLVMBuildNSWAdd(b, orow, j.iv, "")));
        cg_for_end(c, &j);
        LLVMBuildBr(b, rowdone);
        LLVMPositionBuilderAtEnd(b, rowdone);
    }
    cg_for_end(c, &w);
}

int32_t cg_kernel_matmul(const IrGraph *g, int32_t root, const uint8_t *member) {
    const IrNode *n = ir_node(g, root);
    if (ir_op_is_matmul(n->op)) return root;
    for (int i = 0; i < ir_op_info[n->op].nin; i++)
        if (member[n->in[i]] && ir_op_is_matmul(ir_node(g, n->in[i])->op)) return n->in[i];
    return -1;
}

/* the epilogue of a GEMM whose result the root reads: the root's value at
 * flat, with the tile's element v standing in for the matmul */
static LLVMValueRef epilogue_value(CgKern *k, void *ctx, LLVMValueRef v, LLVMValueRef flat) {
    (void)ctx;
    k->epi_val = v;
    CgIndex ix = {.flat = flat};
    LLVMValueRef r = cg_eval(k, k->root, &ix);
    k->epi_val = NULL;
    return r;
}

/* ---- scatter_add_rows, scatter_add_into ------------------------------------ */
static void emit_scatter(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const IrNode *n = ir_node(k->g, k->root);
    const IrNode *ids = ir_node(k->g, n->in[1]);
    IrDType t = (IrDType)n->dtype;
    LLVMTypeRef ty = cg_type(c, t);
    int64_t H = n->shape[1], nids = ir_numel(ids);
    LLVMValueRef Hc = cg_i64(c, H);
    CgFor z, h, i;
    /* rows [begin, end) start at zero, or at the base's rows unless the
     * base is the output's own bytes (an in-place call, cg_dedup.c) */
    int into = n->op == OP_SCATTER_ADD_INTO;
    if (!into || !k->c->sig.inplace) {
        cg_for_begin(c, &z, LLVMBuildNSWMul(b, begin, Hc, ""), LLVMBuildNSWMul(b, end, Hc, ""), "z");
        CgIndex iz = {.flat = z.iv};
        cg_store(k, into ? cg_eval(k, n->in[2], &iz) : cg_const(c, t, 0.0), out_elem(k, ty, z.iv));
        cg_for_end(c, &z);
    }
    /* one pass over the ids: a source row whose id falls in the range is
     * added to its destination row (each row's adds in increasing i) */
    cg_for_begin(c, &i, cg_i64(c, 0), cg_i64(c, nids), "i");
    CgIndex ii = {.flat = i.iv};
    LLVMValueRef id = LLVMBuildSExt(b, cg_eval(k, n->in[1], &ii), c->i64, "");
    LLVMValueRef mine = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGE, id, begin, ""),
                                     LLVMBuildICmp(b, LLVMIntSLT, id, end, ""), "");
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(b));
    LLVMBasicBlockRef add = LLVMAppendBasicBlockInContext(c->ctx, fn, "match");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    LLVMBuildCondBr(b, mine, add, next);
    LLVMPositionBuilderAtEnd(b, add);
    LLVMValueRef orow = LLVMBuildNSWMul(b, id, Hc, "");
    LLVMValueRef src = LLVMBuildNSWMul(b, i.iv, Hc, "");
    cg_for_begin(c, &h, cg_i64(c, 0), Hc, "h");
    LLVMValueRef q = out_elem(k, ty, LLVMBuildNSWAdd(b, orow, h.iv, ""));
    CgIndex ig = {.flat = LLVMBuildNSWAdd(b, src, h.iv, "")};
    cg_store(k, cg_binary(c, OP_ADD, t, cg_load(k, ty, q, 1), cg_eval(k, n->in[0], &ig)), q);
    cg_for_end(c, &h);
    LLVMBuildBr(b, next);
    LLVMPositionBuilderAtEnd(b, next);
    cg_for_end(c, &i);
}

static void make_scopes(CgKern *k, const char *name) {
    Cg *c = k->c;
    char buf[160];
    snprintf(buf, sizeof buf, "dpoc.%s", name);
    LLVMMetadataRef dname = LLVMMDStringInContext2(c->ctx, buf, strlen(buf));
    LLVMMetadataRef domain = LLVMMDNodeInContext2(c->ctx, &dname, 1);
    snprintf(buf, sizeof buf, "dpoc.%s.in", name);
    LLVMMetadataRef s_in[2] = {LLVMMDStringInContext2(c->ctx, buf, strlen(buf)), domain};
    k->scope_in = LLVMMDNodeInContext2(c->ctx, s_in, 2);
    snprintf(buf, sizeof buf, "dpoc.%s.out", name);
    LLVMMetadataRef s_out[2] = {LLVMMDStringInContext2(c->ctx, buf, strlen(buf)), domain};
    k->scope_out = LLVMMDNodeInContext2(c->ctx, s_out, 2);
    k->list_in = LLVMMDNodeInContext2(c->ctx, &k->scope_in, 1);
    k->list_out = LLVMMDNodeInContext2(c->ctx, &k->scope_out, 1);
}

/* the body of a new function for the kernel whose signature is c->sig */
static int emit_body(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member, int fi) {
    const IrNode *n = ir_node(g, root);
    LLVMValueRef fn = c->funcs[fi].fn;
    CgKern k = {.c = c, .g = g, .plan = p, .root = root, .member = member, .sig = &c->sig};
    k.ptr = calloc((size_t)c->sig.nargs, sizeof *k.ptr);
    if (!k.ptr) return cg_fail(c, "out of memory");
    k.entry = LLVMGetInsertBlock(c->b);
    k.args = LLVMGetParam(fn, 0);
    k.out_ptr = LLVMBuildLoad2(c->b, c->ptr, k.args, "out");
    if (!c->sig.inplace) make_scopes(&k, c->funcs[fi].name); /* no scopes: no alias claim */
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, start);
    LLVMValueRef begin = LLVMGetParam(fn, 1), end = LLVMGetParam(fn, 2);
    int32_t mm = cg_kernel_matmul(g, root, member);
    CgGemmEpilogue epi = {.fn = epilogue_value};
    if (mm >= 0) { /* a matmul, with the root as its epilogue when that is not the matmul */
        k.epi_mm = mm;
        const CgGemmEpilogue *e = mm == root ? NULL : &epi;
        if (cg_gemm_applies(g, mm)) cg_emit_gemm(&k, mm, begin, end, e); /* f32: packed tiles */
        else emit_matmul(&k, mm, begin, end, e);
    } else switch ((IrOp)n->op) {
    case OP_REDUCE_SUM: case OP_REDUCE_MAX: emit_reduce(&k, begin, end); break;
    case OP_SCATTER_ADD_ROWS: case OP_SCATTER_ADD_INTO: emit_scatter(&k, begin, end); break;
    case OP_ATTENTION: cg_emit_attention(&k, begin, end); break;
    case OP_ATTENTION_GRAD: cg_emit_attention_grad(&k, begin, end); break;
    default: emit_map(&k, begin, end); break;
    }
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, k.entry);
    LLVMBuildBr(c->b, start);
    free(k.ptr);
    return c->failed ? -1 : 0;
}

/* work and flops of one call (docs/step-abi.md) */
static void kernel_cost(const IrGraph *g, int32_t root, int64_t inline_flops, int64_t *work, int64_t *flops) {
    const IrNode *n = ir_node(g, root);
    const IrNode *x = ir_op_info[n->op].nin > 0 ? ir_node(g, n->in[0]) : NULL;
    switch ((IrOp)n->op) {
    case OP_REDUCE_SUM: case OP_REDUCE_MAX:
        *work = ir_numel(n);
        *flops = ir_numel(x);
        break;
    case OP_MATMUL: case OP_MATMUL_MASKED: { /* masked: the dense count, an upper bound */
        int r = n->ndim;
        int64_t K = n->attr[0] ? x->shape[r - 2] : x->shape[r - 1];
        *work = ir_numel(n) / n->shape[r - 1];
        *flops = 2 * ir_numel(n) * K;
        break;
    }
    case OP_SCATTER_ADD_ROWS: case OP_SCATTER_ADD_INTO:
        *work = n->shape[0];
        *flops = ir_numel(x);
        break;
    case OP_ATTENTION: case OP_ATTENTION_GRAD: { /* the dense count, an upper bound (masked keys are skipped) */
        int r = x->ndim;
        int64_t M = x->shape[r - 2], D = x->shape[r - 1], T = ir_node(g, n->in[1])->shape[r - 2];
        int64_t batch = ir_numel(x) / (M * D);
        *work = n->op == OP_ATTENTION ? batch * M : batch; /* query rows; whole batch entries */
        *flops = (n->op == OP_ATTENTION ? 4 : 8) * batch * M * T * D;
        break;
    }
    default:
        *work = ir_numel(n);
        *flops = inline_flops;
        break;
    }
}

int cg_emit_kernel(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member, int out_region,
                   int64_t out_offset, const char *name, const char *entry) {
    const IrNode *n = ir_node(g, root);
    const char *opname = ir_op_info[n->op].name;
    if (n->op == OP_PARAM || n->op == OP_INPUT) return cg_fail(c, "kernel %s: a %s cannot be computed", name, opname);
    if (cg_sig_build(c, g, p, root, member, out_region, out_offset)) return -1;
    const CgSig *s = &c->sig;
    /* an epilogue kernel counts as a matmul (its work units, its flops, its
     * line in a profile); its function is named fnN_matmul_<root op> */
    int32_t mm = cg_kernel_matmul(g, root, member);
    int epilogue = mm >= 0 && mm != root;
    if (epilogue) opname = ir_op_info[OP_MATMUL].name;
    int fi = c->no_dedup ? -1 : cg_func_find(c, s->key, s->len);
    if (fi < 0) {
        char fname[128];
        if (c->no_dedup) snprintf(fname, sizeof fname, "%s", name);
        else if (epilogue) snprintf(fname, sizeof fname, "fn%d_%s_%s", c->nfuncs, opname, ir_op_info[n->op].name);
        else snprintf(fname, sizeof fname, "fn%d_%s", c->nfuncs, opname);
        fi = cg_func_begin(c, fname, opname, c->no_dedup ? NULL : s->key, s->len, s->nargs);
        if (fi < 0 || emit_body(c, g, p, root, member, fi)) return -1;
    }
    int ci = cg_call_add(c, name, entry, opname, fi, s->nargs);
    if (ci < 0) return -1;
    CgKernelRec *rec = &c->kernels[ci];
    rec->arg_region[0] = (int8_t)out_region;
    rec->arg_offset[0] = out_offset;
    rec->arg_node[0] = root;
    for (int i = 1; i < s->nargs; i++) {
        rec->arg_region[i] = p->region[s->args[i]];
        rec->arg_offset[i] = p->offset[s->args[i]];
        rec->arg_node[i] = s->args[i];
    }
    kernel_cost(g, mm >= 0 ? mm : root, s->flops, &rec->work, &rec->flops);
    if (epilogue) rec->flops += s->flops; /* the root's elementwise work */
    if (mm >= 0 && cg_gemm_applies(g, mm)) rec->work = cg_gemm_work(c, g, mm); /* tiles */
    if (n->op == OP_ATTENTION || n->op == OP_ATTENTION_GRAD) rec->work = cg_attention_work(c, g, root);
    rec->bytes = s->in_bytes + ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype);
    return c->failed ? -1 : ci;
}
