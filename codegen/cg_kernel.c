/* cg_kernel.c — one kernel function: the loops around the element evaluator.
 *
 * A kernel is `void k(uint8_t *const *regions, int64_t begin, int64_t end)`
 * and computes the part [begin, end) of its work; the shape of the loops
 * depends on the op at the kernel's root:
 *
 *  - map (elementwise, movement, indexing, const, iota): work = output
 *    elements. Without movement the loop is flat over the range; with it,
 *    the range is walked row by row (rows of the last dim), the outer
 *    coordinates computed once per row, so the inner loop is affine in the
 *    last coordinate.
 *  - reduce_sum / reduce_max over an axis: input [outer, R, inner], work =
 *    outer * inner output positions. Every output element accumulates its R
 *    inputs in order r = 0..R-1 starting from 0 (sum) or -inf (max); for
 *    inner > 1 the loop over r is outside the loop over a run of inner
 *    positions, which vectorises without changing any element's order.
 *  - matmul: work = batch * M output rows. Row (b, m) starts at zero and adds
 *    A[m,k] * B[k,n] for k = 0..K-1 in order: i-k-j when B is not transposed
 *    (inner loop contiguous over n), a dot product over k per (m, n) when it
 *    is. Both give every element the same sequence of operations.
 *  - scatter_add_rows: work = destination rows. Row v starts at zero and adds
 *    every source row i with ids[i] == v, in increasing i.
 *
 * So no result depends on how the runtime splits the range. The kernel's
 * flops and bytes (matmul 2*M*N*K*batch, elementwise one per element,
 * reductions one per input element; bytes = stored inputs + output) go into
 * the manifest. The output must not overlap any stored input (checked here
 * from the schedule's offsets), which is what the alias scopes promise LLVM.
 */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Walk {
    uint8_t *seen;
    int64_t in_bytes, flops;
} Walk;

static int64_t node_bytes(const IrNode *n) { return ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype); }

/* visits the nodes the kernel computes inline and the stored values it reads */
static void walk(CgKern *k, int32_t id, Walk *w, int out_region, int64_t out_offset, int64_t out_bytes) {
    if (w->seen[id]) return;
    w->seen[id] = 1;
    const IrNode *n = ir_node(k->g, id);
    if (cg_is_stored(k, id)) {
        int64_t nb = node_bytes(n), off = k->plan->offset[id];
        w->in_bytes += nb;
        if (k->plan->region[id] == out_region && off < out_offset + out_bytes && out_offset < off + nb)
            cg_fail(k->c, "schedule places the output of kernel %%%d (bytes %lld..%lld of region %d) over its input %%%d",
                    k->root, (long long)out_offset, (long long)(out_offset + out_bytes), out_region, id);
        return;
    }
    const IrOpInfo *info = &ir_op_info[n->op];
    if (info->cls == FC_ELEMWISE && n->op != OP_STOP_GRAD && n->op != OP_CAST) w->flops += ir_numel(n);
    for (int i = 0; i < info->nin; i++) walk(k, n->in[i], w, out_region, out_offset, out_bytes);
}

static LLVMValueRef entry_alloca(CgKern *k, LLVMTypeRef t) {
    LLVMBasicBlockRef here = LLVMGetInsertBlock(k->c->b);
    LLVMPositionBuilderAtEnd(k->c->b, k->entry);
    LLVMValueRef a = LLVMBuildAlloca(k->c->b, t, "acc");
    LLVMPositionBuilderAtEnd(k->c->b, here);
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
        /* one output per position; the accumulator lives in a stack slot
         * that SROA turns into a register */
        LLVMValueRef slot = entry_alloca(k, ty);
        cg_for_begin(c, &l, begin, end, "p");
        LLVMValueRef base = LLVMBuildNSWMul(c->b, l.iv, cg_i64(c, R), "");
        LLVMBuildStore(c->b, init, slot);
        cg_for_begin(c, &r, cg_i64(c, 0), cg_i64(c, R), "r");
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
static void emit_matmul(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const IrNode *n = ir_node(k->g, k->root);
    const IrNode *A = ir_node(k->g, n->in[0]);
    IrDType t = (IrDType)n->dtype;
    LLVMTypeRef ty = cg_type(c, t);
    int r = n->ndim, ta = (int)n->attr[0], tb = (int)n->attr[1];
    int64_t M = n->shape[r - 2], N = n->shape[r - 1], K = ta ? A->shape[r - 2] : A->shape[r - 1];
    LLVMValueRef Mc = cg_i64(c, M), Nc = cg_i64(c, N), Kc = cg_i64(c, K);
    CgFor w, kk, j;
    cg_for_begin(c, &w, begin, end, "w");
    LLVMValueRef bat = LLVMBuildUDiv(b, w.iv, Mc, "");
    LLVMValueRef m = LLVMBuildURem(b, w.iv, Mc, "");
    LLVMValueRef orow = LLVMBuildNSWMul(b, w.iv, Nc, "");
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
        CgIndex ia = {.flat = A_AT(kk.iv)};
        LLVMValueRef av = cg_eval(k, n->in[0], &ia);
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "n");
        CgIndex ib = {.flat = B_AT(kk.iv, j.iv)};
        LLVMValueRef bv = cg_eval(k, n->in[1], &ib);
        LLVMValueRef q = out_elem(k, ty, LLVMBuildNSWAdd(b, orow, j.iv, ""));
        LLVMValueRef prod = LLVMBuildFMul(b, av, bv, "");
        cg_fmf(prod);
        LLVMValueRef sum = LLVMBuildFAdd(b, cg_load(k, ty, q, 1), prod, "");
        cg_fmf(sum);
        cg_store(k, sum, q);
        cg_for_end(c, &j);
        cg_for_end(c, &kk);
    } else {
        LLVMValueRef slot = entry_alloca(k, ty);
        cg_for_begin(c, &j, cg_i64(c, 0), Nc, "n");
        LLVMBuildStore(b, cg_const(c, t, 0.0), slot);
        cg_for_begin(c, &kk, cg_i64(c, 0), Kc, "k");
        CgIndex ia = {.flat = A_AT(kk.iv)};
        CgIndex ib = {.flat = B_AT(kk.iv, j.iv)};
        LLVMValueRef prod = LLVMBuildFMul(b, cg_eval(k, n->in[0], &ia), cg_eval(k, n->in[1], &ib), "");
        cg_fmf(prod);
        LLVMValueRef sum = LLVMBuildFAdd(b, LLVMBuildLoad2(b, ty, slot, ""), prod, "");
        cg_fmf(sum);
        LLVMBuildStore(b, sum, slot);
        cg_for_end(c, &kk);
        cg_store(k, LLVMBuildLoad2(b, ty, slot, ""), out_elem(k, ty, LLVMBuildNSWAdd(b, orow, j.iv, "")));
        cg_for_end(c, &j);
    }
#undef A_AT
#undef B_AT
    cg_for_end(c, &w);
}

/* ---- scatter_add_rows --------------------------------------------------- */
static void emit_scatter(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const IrNode *n = ir_node(k->g, k->root);
    const IrNode *ids = ir_node(k->g, n->in[1]);
    IrDType t = (IrDType)n->dtype;
    LLVMTypeRef ty = cg_type(c, t);
    int64_t H = n->shape[1], nids = ir_numel(ids);
    LLVMValueRef Hc = cg_i64(c, H);
    CgFor v, h, i;
    cg_for_begin(c, &v, begin, end, "v");
    LLVMValueRef orow = LLVMBuildNSWMul(b, v.iv, Hc, "");
    cg_for_begin(c, &h, cg_i64(c, 0), Hc, "h");
    cg_store(k, cg_const(c, t, 0.0), out_elem(k, ty, LLVMBuildNSWAdd(b, orow, h.iv, "")));
    cg_for_end(c, &h);
    cg_for_begin(c, &i, cg_i64(c, 0), cg_i64(c, nids), "i");
    CgIndex ii = {.flat = i.iv};
    LLVMValueRef id = LLVMBuildSExt(b, cg_eval(k, n->in[1], &ii), c->i64, "");
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(b));
    LLVMBasicBlockRef add = LLVMAppendBasicBlockInContext(c->ctx, fn, "match");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, id, v.iv, ""), add, next);
    LLVMPositionBuilderAtEnd(b, add);
    LLVMValueRef src = LLVMBuildNSWMul(b, i.iv, Hc, "");
    cg_for_begin(c, &h, cg_i64(c, 0), Hc, "h");
    LLVMValueRef q = out_elem(k, ty, LLVMBuildNSWAdd(b, orow, h.iv, ""));
    CgIndex ig = {.flat = LLVMBuildNSWAdd(b, src, h.iv, "")};
    cg_store(k, cg_binary(c, OP_ADD, t, cg_load(k, ty, q, 1), cg_eval(k, n->in[0], &ig)), q);
    cg_for_end(c, &h);
    LLVMBuildBr(b, next);
    LLVMPositionBuilderAtEnd(b, next);
    cg_for_end(c, &i);
    cg_for_end(c, &v);
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

LLVMValueRef cg_emit_kernel(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member,
                            int out_region, int64_t out_offset, const char *name, const char *entry,
                            CgKernelRec **recp) {
    const IrNode *n = ir_node(g, root);
    const char *opname = ir_op_info[n->op].name;
    if (n->op == OP_PARAM || n->op == OP_INPUT) {
        cg_fail(c, "kernel %s: a %s cannot be computed", name, opname);
        return NULL;
    }
    LLVMValueRef fn = cg_kernel_begin(c, name, entry, opname);
    if (!fn) return NULL;
    CgKernelRec *rec = &c->kernels[c->nkernels - 1];
    CgKern k = {.c = c, .g = g, .plan = p, .root = root, .member = member};
    k.ptr = calloc((size_t)g->n, sizeof *k.ptr);
    Walk w = {.seen = calloc((size_t)g->n, 1)};
    if (!k.ptr || !w.seen) {
        free(k.ptr);
        free(w.seen);
        cg_fail(c, "out of memory");
        return NULL;
    }
    k.entry = LLVMGetInsertBlock(c->b);
    k.regions = LLVMGetParam(fn, 0);
    k.out_ptr = cg_region_ptr(c, k.regions, out_region, out_offset);
    int64_t out_bytes = node_bytes(n);
    walk(&k, root, &w, out_region, out_offset, out_bytes);
    make_scopes(&k, name);
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, start);
    LLVMValueRef begin = LLVMGetParam(fn, 1), end = LLVMGetParam(fn, 2);
    const IrNode *x = ir_op_info[n->op].nin > 0 ? ir_node(g, n->in[0]) : NULL;
    switch ((IrOp)n->op) {
    case OP_REDUCE_SUM: case OP_REDUCE_MAX:
        rec->work = ir_numel(n);
        rec->flops = ir_numel(x);
        emit_reduce(&k, begin, end);
        break;
    case OP_MATMUL: {
        int r = n->ndim;
        int64_t K = n->attr[0] ? x->shape[r - 2] : x->shape[r - 1];
        rec->work = ir_numel(n) / n->shape[r - 1];
        rec->flops = 2 * ir_numel(n) * K;
        emit_matmul(&k, begin, end);
        break;
    }
    case OP_SCATTER_ADD_ROWS:
        rec->work = n->shape[0];
        rec->flops = ir_numel(x);
        emit_scatter(&k, begin, end);
        break;
    default:
        rec->work = ir_numel(n);
        rec->flops = w.flops;
        emit_map(&k, begin, end);
        break;
    }
    rec->bytes = w.in_bytes + out_bytes;
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, k.entry);
    LLVMBuildBr(c->b, start);
    free(k.ptr);
    free(w.seen);
    if (recp) *recp = rec;
    return c->failed ? NULL : fn;
}
