/* cg_attention.c — the attention and attention_grad kernels (ops.def):
 * the geometry both kernel forms share (cg_attention.h), and the plain
 * loops, used for f64 (gradient checks) and head widths that are not a
 * multiple of the vector width; f32 otherwise runs in tiles through the
 * GEMM micro-kernel (cg_attention_tiled.c).
 *
 * The plain kernels are loops around the element evaluator: every operand (q, k,
 * v, the segments, and for the gradient the attention's result and its
 * gradient) is read with cg_eval, so it may be stored or computed inline.
 * The operations and their order are those of the reference interpreter
 * (ir/interp.c), and every output element is computed by exactly one work
 * unit in a fixed sequence, so no bit depends on how the range is split.
 *
 *  - attention: work = batch * M query rows. Row (bi, r) sits at position
 *    p = T - Tq + r mod Tq and sees key j when j <= p (causal: the key loop
 *    stops after p) and the key's segment is 0 or the query's (segments row
 *    b0 = bi / (batch / q's first dim)). Pass 1 takes the max of the visible
 *    scores s = q_r.k_j (a dot product over d = 0..D-1 in order); pass 2
 *    adds w = exp(s - max) to l and w * v_j to the output row, zeroed
 *    first. The row is then divided by l and column D gets max + log(l); a
 *    row that sees no key stays zeros with -inf in column D.
 *  - attention_grad: work = batch entries, one unit being a whole entry, so
 *    the dk and dv rows that every query row adds to accumulate inside one
 *    unit in query order. The entry's [M + 2T, D] block is zeroed; then for
 *    r = 0..M-1, Dr = g_r.o_r and for each visible key j: P = exp(s -
 *    lse_r), ds = P * (g_r.v_j - Dr + g_r[D]), and one contiguous loop over
 *    d adds ds k_j to dq_r, ds q_r to dk_j and P g_r to dv_j.
 *
 * exp and log are the ones every kernel uses (cg_unary: polynomial code in
 * f32, libm in f64). Dot products and accumulations carry `contract`, as
 * matmul's do, so they may become fused multiply-adds; the loops over d
 * that update an output row are contiguous and left to the vectoriser.
 */
#include "cg_attention.h"

LLVMValueRef cg_attn_read(CgKern *k, int32_t id, LLVMValueRef flat) {
    CgIndex ix = {.flat = flat};
    return cg_eval(k, id, &ix);
}

AttnGeom cg_attn_geom_of(Cg *c, const IrGraph *g, int32_t root) {
    const IrNode *n = ir_node(g, root);
    const IrNode *q = ir_node(g, n->in[0]), *key = ir_node(g, n->in[1]);
    int rank = q->ndim;
    AttnGeom a = {.q = n->in[0], .k = n->in[1], .v = n->in[2], .seg = n->in[3]};
    a.M = q->shape[rank - 2];
    a.D = q->shape[rank - 1];
    a.T = key->shape[rank - 2];
    a.Tq = a.M / n->attr[0];
    a.batch = ir_numel(q) / (a.M * a.D);
    a.per_seg_row = a.batch / q->shape[0];
    a.causal = n->attr[1] != 0;
    a.t = (IrDType)q->dtype;
    a.ty = cg_type(c, a.t);
    return a;
}

AttnGeom cg_attn_geom(const CgKern *k) { return cg_attn_geom_of(k->c, k->g, k->root); }

/* query row r of batch entry bi */
AttnRow cg_attn_row(CgKern *k, const AttnGeom *a, LLVMValueRef bi, LLVMValueRef r) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    LLVMValueRef pos = LLVMBuildNSWAdd(b, cg_i64(c, a->T - a->Tq), LLVMBuildURem(b, r, cg_i64(c, a->Tq), ""), "pos");
    AttnRow row;
    row.seg_base = LLVMBuildNSWMul(b, LLVMBuildUDiv(b, bi, cg_i64(c, a->per_seg_row), ""), cg_i64(c, a->T), "");
    row.seg_query = cg_attn_read(k, a->seg, LLVMBuildNSWAdd(b, row.seg_base, pos, ""));
    row.key_end = a->causal ? LLVMBuildNSWAdd(b, pos, cg_i64(c, 1), "") : cg_i64(c, a->T);
    return row;
}

/* i1: key j (below row->key_end) is visible to the row: its segment is 0 or the query's */
LLVMValueRef cg_attn_key_visible(CgKern *k, const AttnGeom *a, const AttnRow *row, LLVMValueRef j) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    IrDType st = (IrDType)ir_node(k->g, a->seg)->dtype;
    LLVMValueRef seg_key = cg_attn_read(k, a->seg, LLVMBuildNSWAdd(b, row->seg_base, j, ""));
    LLVMValueRef zero = cg_const(c, st, 0.0);
    if (ir_dtype_is_float(st))
        return LLVMBuildOr(b, LLVMBuildFCmp(b, LLVMRealOEQ, seg_key, zero, ""),
                           LLVMBuildFCmp(b, LLVMRealOEQ, seg_key, row->seg_query, ""), "visible");
    return LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntEQ, seg_key, zero, ""),
                       LLVMBuildICmp(b, LLVMIntEQ, seg_key, row->seg_query, ""), "visible");
}

/* sum over d = 0..D-1, in order from 0, of x[xbase + d] * y[ybase + d] */
static LLVMValueRef emit_dot(CgKern *k, const AttnGeom *a, int32_t x, LLVMValueRef xbase, int32_t y, LLVMValueRef ybase) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    LLVMValueRef acc = cg_entry_alloca(k, a->ty);
    LLVMBuildStore(b, cg_const(c, a->t, 0.0), acc);
    CgFor d;
    cg_for_begin(c, &d, cg_i64(c, 0), cg_i64(c, a->D), "dot");
    LLVMValueRef xv = cg_attn_read(k, x, LLVMBuildNSWAdd(b, xbase, d.iv, ""));
    LLVMValueRef yv = cg_attn_read(k, y, LLVMBuildNSWAdd(b, ybase, d.iv, ""));
    LLVMBuildStore(b, cg_mul_add(c, LLVMBuildLoad2(b, a->ty, acc, ""), xv, yv), acc);
    cg_for_end(c, &d);
    return LLVMBuildLoad2(b, a->ty, acc, "dot");
}

static LLVMValueRef out_at(CgKern *k, const AttnGeom *a, LLVMValueRef flat) {
    return cg_gep(k->c, a->ty, k->out_ptr, flat);
}

/* out[flat] += x * y */
static void add_to_out(CgKern *k, const AttnGeom *a, LLVMValueRef flat, LLVMValueRef x, LLVMValueRef y) {
    LLVMValueRef p = out_at(k, a, flat);
    cg_store(k, cg_mul_add(k->c, cg_load(k, a->ty, p, 1), x, y), p);
}

/* out[lo .. hi) = 0 */
static void zero_out(CgKern *k, const AttnGeom *a, LLVMValueRef lo, LLVMValueRef hi) {
    CgFor z;
    cg_for_begin(k->c, &z, lo, hi, "zero");
    cg_store(k, cg_const(k->c, a->t, 0.0), out_at(k, a, z.iv));
    cg_for_end(k->c, &z);
}

void cg_emit_attention(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    if (cg_emit_attention_tiled(k, begin, end)) return;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    AttnGeom a = cg_attn_geom(k);
    LLVMValueRef Dc = cg_i64(c, a.D), zero = cg_i64(c, 0);
    LLVMValueRef max_slot = cg_entry_alloca(k, a.ty), sum_slot = cg_entry_alloca(k, a.ty);
    LLVMValueRef neg_inf = LLVMConstReal(a.ty, -__builtin_inf());
    LLVMBasicBlockRef join;
    CgFor w, j, d;
    cg_for_begin(c, &w, begin, end, "row");
    LLVMValueRef bi = LLVMBuildUDiv(b, w.iv, cg_i64(c, a.M), "");
    AttnRow row = cg_attn_row(k, &a, bi, LLVMBuildURem(b, w.iv, cg_i64(c, a.M), ""));
    LLVMValueRef q_row = LLVMBuildNSWMul(b, w.iv, Dc, "");
    LLVMValueRef o_row = LLVMBuildNSWMul(b, w.iv, cg_i64(c, a.D + 1), "");
    LLVMValueRef kv_base = LLVMBuildNSWMul(b, bi, cg_i64(c, a.T * a.D), "");

    /* pass 1: the max of the visible scores */
    LLVMBuildStore(b, neg_inf, max_slot);
    cg_for_begin(c, &j, zero, row.key_end, "key");
    cg_if_begin(c, cg_attn_key_visible(k, &a, &row, j.iv), &join);
    LLVMValueRef s = emit_dot(k, &a, a.q, q_row, a.k, LLVMBuildNSWAdd(b, kv_base, LLVMBuildNSWMul(b, j.iv, Dc, ""), ""));
    LLVMBuildStore(b, cg_call_intrinsic2(c, "llvm.maxnum", LLVMBuildLoad2(b, a.ty, max_slot, ""), s), max_slot);
    cg_if_end(c, join);
    cg_for_end(c, &j);
    LLVMValueRef mx = LLVMBuildLoad2(b, a.ty, max_slot, "max");

    /* pass 2: l = sum of w = exp(s - max), the row = sum of w v_j */
    zero_out(k, &a, o_row, LLVMBuildNSWAdd(b, o_row, Dc, ""));
    LLVMBuildStore(b, cg_const(c, a.t, 0.0), sum_slot);
    cg_for_begin(c, &j, zero, row.key_end, "key");
    cg_if_begin(c, cg_attn_key_visible(k, &a, &row, j.iv), &join);
    LLVMValueRef kv_row = LLVMBuildNSWAdd(b, kv_base, LLVMBuildNSWMul(b, j.iv, Dc, ""), "");
    s = emit_dot(k, &a, a.q, q_row, a.k, kv_row);
    LLVMValueRef weight = cg_unary(c, OP_EXP, a.t, LLVMBuildFSub(b, s, mx, ""));
    LLVMBuildStore(b, LLVMBuildFAdd(b, LLVMBuildLoad2(b, a.ty, sum_slot, ""), weight, ""), sum_slot);
    cg_for_begin(c, &d, zero, Dc, "d");
    add_to_out(k, &a, LLVMBuildNSWAdd(b, o_row, d.iv, ""), weight, cg_attn_read(k, a.v, LLVMBuildNSWAdd(b, kv_row, d.iv, "")));
    cg_for_end(c, &d);
    cg_if_end(c, join);
    cg_for_end(c, &j);

    /* normalise; column D is the log-sum-exp, -inf when no key is visible */
    LLVMValueRef l = LLVMBuildLoad2(b, a.ty, sum_slot, "l");
    LLVMValueRef any = LLVMBuildFCmp(b, LLVMRealOGT, l, cg_const(c, a.t, 0.0), "");
    cg_if_begin(c, any, &join);
    cg_for_begin(c, &d, zero, Dc, "d");
    LLVMValueRef p = out_at(k, &a, LLVMBuildNSWAdd(b, o_row, d.iv, ""));
    cg_store(k, LLVMBuildFDiv(b, cg_load(k, a.ty, p, 1), l, ""), p);
    cg_for_end(c, &d);
    cg_if_end(c, join);
    LLVMValueRef lse = LLVMBuildFAdd(b, mx, cg_unary(c, OP_LOG, a.t, l), "");
    cg_store(k, LLVMBuildSelect(b, any, lse, neg_inf, ""), out_at(k, &a, LLVMBuildNSWAdd(b, o_row, Dc, "")));
    cg_for_end(c, &w);
}

void cg_emit_attention_grad(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    if (cg_emit_attention_tiled(k, begin, end)) return;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    AttnGeom a = cg_attn_geom(k);
    const IrNode *n = ir_node(k->g, k->root);
    int32_t out = n->in[4], grad = n->in[5];
    LLVMValueRef Dc = cg_i64(c, a.D), zero = cg_i64(c, 0);
    LLVMBasicBlockRef join;
    CgFor e, r, j, d;
    cg_for_begin(c, &e, begin, end, "entry");
    LLVMValueRef block = LLVMBuildNSWMul(b, e.iv, cg_i64(c, (a.M + 2 * a.T) * a.D), "");
    zero_out(k, &a, block, LLVMBuildNSWAdd(b, block, cg_i64(c, (a.M + 2 * a.T) * a.D), ""));
    LLVMValueRef dk_base = LLVMBuildNSWAdd(b, block, cg_i64(c, a.M * a.D), "");
    LLVMValueRef dv_base = LLVMBuildNSWAdd(b, block, cg_i64(c, (a.M + a.T) * a.D), "");
    LLVMValueRef kv_base = LLVMBuildNSWMul(b, e.iv, cg_i64(c, a.T * a.D), "");

    cg_for_begin(c, &r, zero, cg_i64(c, a.M), "qrow");
    AttnRow row = cg_attn_row(k, &a, e.iv, r.iv);
    LLVMValueRef w = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, e.iv, cg_i64(c, a.M), ""), r.iv, "");
    LLVMValueRef q_row = LLVMBuildNSWMul(b, w, Dc, "");
    LLVMValueRef o_row = LLVMBuildNSWMul(b, w, cg_i64(c, a.D + 1), ""); /* the result's and its gradient's row */
    LLVMValueRef dq_row = LLVMBuildNSWAdd(b, block, LLVMBuildNSWMul(b, r.iv, Dc, ""), "");
    LLVMValueRef Dr = emit_dot(k, &a, grad, o_row, out, o_row);
    LLVMValueRef o_end = LLVMBuildNSWAdd(b, o_row, Dc, "");
    LLVMValueRef lse = cg_attn_read(k, out, o_end), g_lse = cg_attn_read(k, grad, o_end);

    cg_for_begin(c, &j, zero, row.key_end, "key");
    cg_if_begin(c, cg_attn_key_visible(k, &a, &row, j.iv), &join);
    LLVMValueRef j_off = LLVMBuildNSWMul(b, j.iv, Dc, "");
    LLVMValueRef kv_row = LLVMBuildNSWAdd(b, kv_base, j_off, "");
    LLVMValueRef s = emit_dot(k, &a, a.q, q_row, a.k, kv_row);
    LLVMValueRef P = cg_unary(c, OP_EXP, a.t, LLVMBuildFSub(b, s, lse, ""));
    LLVMValueRef dP = emit_dot(k, &a, grad, o_row, a.v, kv_row);
    LLVMValueRef ds = LLVMBuildFMul(b, P, LLVMBuildFAdd(b, LLVMBuildFSub(b, dP, Dr, ""), g_lse, ""), "ds");
    LLVMValueRef dk_row = LLVMBuildNSWAdd(b, dk_base, j_off, ""), dv_row = LLVMBuildNSWAdd(b, dv_base, j_off, "");
    cg_for_begin(c, &d, zero, Dc, "d");
    add_to_out(k, &a, LLVMBuildNSWAdd(b, dq_row, d.iv, ""), ds, cg_attn_read(k, a.k, LLVMBuildNSWAdd(b, kv_row, d.iv, "")));
    add_to_out(k, &a, LLVMBuildNSWAdd(b, dk_row, d.iv, ""), ds, cg_attn_read(k, a.q, LLVMBuildNSWAdd(b, q_row, d.iv, "")));
    add_to_out(k, &a, LLVMBuildNSWAdd(b, dv_row, d.iv, ""), P, cg_attn_read(k, grad, LLVMBuildNSWAdd(b, o_row, d.iv, "")));
    cg_for_end(c, &d);
    cg_if_end(c, join);
    cg_for_end(c, &j);
    cg_for_end(c, &r);
    cg_for_end(c, &e);
}
