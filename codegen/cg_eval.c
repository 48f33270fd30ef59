/* cg_eval.c — the value of one IR node at one position, as LLVM code.
 *
 * Every kernel reads its operands through cg_eval(node, index). A node that
 * lives in memory (it has a place in the schedule and is not computed by
 * this kernel) is loaded; anything else is computed on the spot from its
 * own inputs: constants and iota (and reshapes of them) are never loaded, so
 * their kernels can be dropped when nothing outside the arena needs them
 * (cg_entry.c); elementwise ops evaluate
 * their inputs at the same position, and movement ops (broadcast, reshape,
 * permute, slice, pad, concat) and indexing ops (pick, unpick, gather_rows)
 * map the position to their input's position by index arithmetic. So a
 * kernel of one op and a fused kernel of many are emitted by the same code.
 *
 * A position (CgIndex) is kept both as the row-major flat index and as
 * coordinates; whichever is missing is derived when first needed (div/mod
 * by the dims, or the Horner sum), and cached, so elementwise chains run on
 * the flat index alone and stay vectorisable. A reshape passes coordinates
 * through where its shapes end alike (reshape_coords), so an iota or a
 * broadcast behind one does not re-derive them by div/mod per element. The evaluator only emits
 * straight-line code (selects, no branches): pad and concat clamp the
 * position they read so every load stays in bounds, and pick, unpick and
 * gather give 0 for an index outside the row.
 *
 * A stored value is read through its argument slot: its base pointer is
 * p[slot] (cg_dedup.c numbers the slots), loaded once in the entry block.
 *
 * Loads and stores carry alias-scope metadata: inputs and the kernel's
 * output are in different scopes, which the signature walk guarantees for
 * every call by checking the schedule's offsets (cg_dedup.c). Nothing is
 * claimed between two inputs.
 */
#include "cg.h"

#include <stdint.h>
#include <string.h>

LLVMValueRef cg_eval_positive(CgKern *k, int32_t id, LLVMValueRef flat) {
    CgIndex ix = {.flat = flat};
    LLVMValueRef v = cg_eval(k, id, &ix);
    return LLVMBuildFCmp(k->c->b, LLVMRealOGT, v, cg_const(k->c, (IrDType)ir_node(k->g, id)->dtype, 0.0), "live");
}

int cg_is_stored(const CgKern *k, int32_t id) {
    const IrNode *n = ir_node(k->g, id);
    const IrNode *base = n;
    while (base->op == OP_RESHAPE) base = ir_node(k->g, base->in[0]); /* an alias reads its base's bytes */
    if (base->op == OP_CONST || base->op == OP_IOTA) return 0;
    if (k->member[id]) return 0;
    return k->plan->region[id] >= 0;
}

LLVMValueRef cg_node_ptr(CgKern *k, int32_t id) {
    Cg *c = k->c;
    int slot = cg_sig_slot(k->sig, id);
    if (slot < 1) {
        cg_fail(c, "internal error: kernel %%%d reads %%%d, which its signature walk did not reach", k->root, id);
        return LLVMConstPointerNull(c->ptr);
    }
    if (k->ptr[slot]) return k->ptr[slot];
    LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, k->entry);
    k->ptr[slot] = LLVMBuildLoad2(c->b, c->ptr, cg_gep(c, c->ptr, k->args, cg_i64(c, slot)), "arg");
    LLVMPositionBuilderAtEnd(c->b, here);
    return k->ptr[slot];
}

static void set_scope(CgKern *k, LLVMValueRef inst, int out) {
    Cg *c = k->c;
    if (!k->list_in) return;
    LLVMSetMetadata(inst, c->md_scope, LLVMMetadataAsValue(c->ctx, out ? k->list_out : k->list_in));
    LLVMSetMetadata(inst, c->md_noalias, LLVMMetadataAsValue(c->ctx, out ? k->list_in : k->list_out));
}

LLVMValueRef cg_load(CgKern *k, LLVMTypeRef t, LLVMValueRef p, int out) {
    LLVMValueRef v = LLVMBuildLoad2(k->c->b, t, p, "");
    LLVMSetAlignment(v, t == k->c->f64 ? 8 : 4);
    set_scope(k, v, out);
    return v;
}

void cg_store(CgKern *k, LLVMValueRef v, LLVMValueRef p) {
    LLVMValueRef s = LLVMBuildStore(k->c->b, v, p);
    LLVMSetAlignment(s, LLVMTypeOf(v) == k->c->f64 ? 8 : 4);
    set_scope(k, s, 1);
}

LLVMValueRef cg_index_flat(CgKern *k, CgIndex *ix, const IrNode *n) {
    if (ix->flat) return ix->flat;
    Cg *c = k->c;
    LLVMValueRef f = cg_i64(c, 0);
    for (int d = 0; d < n->ndim; d++) {
        if (d) f = LLVMBuildNSWMul(c->b, f, cg_i64(c, n->shape[d]), "");
        f = LLVMBuildNSWAdd(c->b, f, ix->d[d], "");
    }
    ix->flat = f;
    return f;
}

/* flat index f within dims shape[0..nd) -> coordinates d[0..nd) */
static void unravel(Cg *c, LLVMValueRef f, const int64_t *shape, int nd, LLVMValueRef *d) {
    for (int i = nd - 1; i >= 0; i--) {
        if (shape[i] == 1) {
            d[i] = cg_i64(c, 0);
        } else if (i == 0) {
            d[i] = f;
        } else {
            LLVMValueRef s = cg_i64(c, shape[i]);
            d[i] = LLVMBuildURem(c->b, f, s, "");
            f = LLVMBuildUDiv(c->b, f, s, "");
        }
    }
}

void cg_index_multi(CgKern *k, CgIndex *ix, const IrNode *n) {
    if (ix->multi) return;
    unravel(k->c, ix->flat, n->shape, n->ndim, ix->d);
    ix->multi = 1;
}

int cg_needs_multi(const CgKern *k, int32_t id) {
    if (cg_is_stored(k, id)) return 0;
    const IrNode *n = ir_node(k->g, id);
    switch ((IrOp)n->op) {
    case OP_BROADCAST: case OP_PERMUTE: case OP_SLICE: case OP_PAD: case OP_CONCAT: case OP_IOTA:
    case OP_UNPICK: case OP_GATHER_ROWS:
        return 1;
    default: break;
    }
    for (int i = 0; i < ir_op_info[n->op].nin; i++)
        if (cg_needs_multi(k, n->in[i])) return 1;
    return 0;
}

static LLVMValueRef zero_of(Cg *c, IrDType t) { return cg_const(c, t, 0.0); }

/* idx value (i32) -> i64, and whether 0 <= idx < limit */
static LLVMValueRef index_in_range(Cg *c, LLVMValueRef i32v, int64_t limit, LLVMValueRef *valid) {
    LLVMValueRef v = LLVMBuildSExt(c->b, i32v, c->i64, "");
    *valid = LLVMBuildICmp(c->b, LLVMIntULT, v, cg_i64(c, limit), "");
    return LLVMBuildSelect(c->b, *valid, v, cg_i64(c, 0), "");
}

/* position of a [..., L] node split into the prefix position (shape [...])
 * and the last coordinate */
static void split_last(CgKern *k, CgIndex *ix, const IrNode *n, CgIndex *pre, LLVMValueRef *last) {
    Cg *c = k->c;
    int64_t L = n->shape[n->ndim - 1];
    memset(pre, 0, sizeof *pre);
    if (ix->multi) {
        *last = ix->d[n->ndim - 1];
        pre->multi = 1;
        memcpy(pre->d, ix->d, sizeof pre->d);
        if (ix->flat) pre->flat = LLVMBuildUDiv(c->b, ix->flat, cg_i64(c, L), "");
    } else {
        *last = LLVMBuildURem(c->b, ix->flat, cg_i64(c, L), "");
        pre->flat = LLVMBuildUDiv(c->b, ix->flat, cg_i64(c, L), "");
    }
}

/* The coordinates of a reshape's input from its output's: the dims the two
 * shapes end with are the same coordinates; only the leading rest goes
 * through a flat index (nothing when it is unit dims), so an iota read
 * through [T, L] -> [1, 1, T, L] keeps its row and column without a div/mod
 * per element. */
static void reshape_coords(CgKern *k, const CgIndex *ix, const IrNode *n, const IrNode *a, CgIndex *sub) {
    Cg *c = k->c;
    int i = n->ndim, j = a->ndim;
    for (; i > 0 && j > 0 && n->shape[i - 1] == a->shape[j - 1]; i--, j--) sub->d[j - 1] = ix->d[i - 1];
    LLVMValueRef f = cg_i64(c, 0);
    for (int d = 0; d < i; d++)
        if (n->shape[d] != 1) f = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, f, cg_i64(c, n->shape[d]), ""), ix->d[d], "");
    unravel(c, f, a->shape, j, sub->d);
    sub->multi = 1;
}

LLVMValueRef cg_eval(CgKern *k, int32_t id, CgIndex *ix) {
    Cg *c = k->c;
    const IrNode *n = ir_node(k->g, id);
    IrDType t = (IrDType)n->dtype;
    LLVMTypeRef ty = cg_type(c, t);
    LLVMBuilderRef b = c->b;
    if (c->failed) return LLVMGetUndef(ty);
    if (k->epi_val && id == k->epi_mm) return k->epi_val; /* the finished GEMM tile's element */
    if (cg_is_stored(k, id)) {
        LLVMValueRef f = cg_index_flat(k, ix, n);
        return cg_load(k, ty, cg_gep(c, ty, cg_node_ptr(k, id), f), 0);
    }
    const IrNode *a = ir_op_info[n->op].nin > 0 ? ir_node(k->g, n->in[0]) : NULL;
    CgIndex sub, sub2;
    memset(&sub, 0, sizeof sub);
    memset(&sub2, 0, sizeof sub2);
    switch ((IrOp)n->op) {
    case OP_CONST:
        return cg_const(c, t, n->fval);
    case OP_IOTA: {
        cg_index_multi(k, ix, n);
        LLVMValueRef v = ix->d[n->attr[0]];
        /* a coordinate below the extent: through i32 when that holds it,
         * since i32 -> float is one vector instruction on x86 and i64 ->
         * float (before AVX-512DQ) a long sequence; the value is the same */
        if (!ir_dtype_is_float(t) || n->shape[n->attr[0]] <= INT32_MAX) v = LLVMBuildTrunc(b, v, c->i32, "");
        return ir_dtype_is_float(t) ? LLVMBuildSIToFP(b, v, ty, "") : v;
    }
    case OP_PARAM: case OP_INPUT:
        cg_fail(c, "%s %%%d ('%s') has no place in the schedule", ir_op_info[n->op].name, id, ir_str_get(k->g, n->name));
        return LLVMGetUndef(ty);
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_LOG1P: case OP_SQRT: case OP_RSQRT: case OP_SIGMOID:
    case OP_ABS: case OP_COS: case OP_SIN: case OP_STOP_GRAD:
        return cg_unary(c, (IrOp)n->op, t, cg_eval(k, n->in[0], ix));
    case OP_CAST:
        return cg_cast(c, (IrDType)a->dtype, t, cg_eval(k, n->in[0], ix));
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_LT: {
        LLVMValueRef x = cg_eval(k, n->in[0], ix);
        LLVMValueRef y = cg_eval(k, n->in[1], ix);
        return cg_binary(c, (IrOp)n->op, (IrDType)a->dtype, x, y);
    }
    case OP_SELECT: {
        LLVMValueRef cond = cg_nonzero(c, (IrDType)a->dtype, cg_eval(k, n->in[0], ix));
        LLVMValueRef x = cg_eval(k, n->in[1], ix);
        LLVMValueRef y = cg_eval(k, n->in[2], ix);
        return LLVMBuildSelect(b, cond, x, y, "");
    }
    case OP_BROADCAST: {
        if (ir_numel(a) == ir_numel(n)) return cg_eval(k, n->in[0], ix);
        cg_index_multi(k, ix, n);
        sub.multi = 1;
        for (int d = 0; d < n->ndim; d++) sub.d[d] = a->shape[d] == 1 ? cg_i64(c, 0) : ix->d[d];
        return cg_eval(k, n->in[0], &sub);
    }
    case OP_RESHAPE:
        sub.flat = ix->flat; /* the same bytes: the same flat position */
        if (ix->multi) reshape_coords(k, ix, n, a, &sub);
        else sub.flat = cg_index_flat(k, ix, n);
        return cg_eval(k, n->in[0], &sub);
    case OP_PERMUTE:
        cg_index_multi(k, ix, n);
        sub.multi = 1;
        for (int d = 0; d < n->ndim; d++) sub.d[n->attr[d]] = ix->d[d];
        return cg_eval(k, n->in[0], &sub);
    case OP_SLICE: {
        int ax = (int)n->attr[0];
        cg_index_multi(k, ix, n);
        sub.multi = 1;
        memcpy(sub.d, ix->d, sizeof sub.d);
        if (n->attr[1]) sub.d[ax] = LLVMBuildNSWAdd(b, ix->d[ax], cg_i64(c, n->attr[1]), "");
        return cg_eval(k, n->in[0], &sub);
    }
    case OP_PAD: {
        int ax = (int)n->attr[0];
        int64_t len = a->shape[ax];
        cg_index_multi(k, ix, n);
        LLVMValueRef p = LLVMBuildNSWSub(b, ix->d[ax], cg_i64(c, n->attr[1]), "");
        LLVMValueRef valid = LLVMBuildICmp(b, LLVMIntULT, p, cg_i64(c, len), "");
        sub.multi = 1;
        memcpy(sub.d, ix->d, sizeof sub.d);
        sub.d[ax] = cg_smin(c, cg_smax(c, p, cg_i64(c, 0)), cg_i64(c, len - 1));
        LLVMValueRef v = cg_eval(k, n->in[0], &sub);
        return LLVMBuildSelect(b, valid, v, zero_of(c, t), "");
    }
    case OP_CONCAT: {
        int ax = (int)n->attr[0];
        int64_t la = a->shape[ax];
        cg_index_multi(k, ix, n);
        LLVMValueRef p = ix->d[ax];
        LLVMValueRef in_a = LLVMBuildICmp(b, LLVMIntSLT, p, cg_i64(c, la), "");
        sub.multi = sub2.multi = 1;
        memcpy(sub.d, ix->d, sizeof sub.d);
        memcpy(sub2.d, ix->d, sizeof sub2.d);
        sub.d[ax] = cg_smin(c, p, cg_i64(c, la - 1));
        sub2.d[ax] = cg_smax(c, LLVMBuildNSWSub(b, p, cg_i64(c, la), ""), cg_i64(c, 0));
        LLVMValueRef va = cg_eval(k, n->in[0], &sub);
        LLVMValueRef vb = cg_eval(k, n->in[1], &sub2);
        return LLVMBuildSelect(b, in_a, va, vb, "");
    }
    case OP_PICK: {
        int64_t V = a->shape[a->ndim - 1];
        LLVMValueRef valid;
        LLVMValueRef i = index_in_range(c, cg_eval(k, n->in[1], ix), V, &valid);
        if (ix->multi) {
            sub.multi = 1;
            memcpy(sub.d, ix->d, sizeof sub.d);
            sub.d[a->ndim - 1] = i;
        }
        if (ix->flat || !ix->multi)
            sub.flat = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, cg_index_flat(k, ix, n), cg_i64(c, V), ""), i, "");
        LLVMValueRef v = cg_eval(k, n->in[0], &sub);
        return LLVMBuildSelect(b, valid, v, zero_of(c, t), "");
    }
    case OP_UNPICK: {
        LLVMValueRef j, valid;
        split_last(k, ix, n, &sub, &j);
        LLVMValueRef i = index_in_range(c, cg_eval(k, n->in[1], &sub), n->shape[n->ndim - 1], &valid);
        LLVMValueRef g = cg_eval(k, n->in[0], &sub);
        LLVMValueRef hit = LLVMBuildAnd(b, valid, LLVMBuildICmp(b, LLVMIntEQ, i, j, ""), "");
        return LLVMBuildSelect(b, hit, g, zero_of(c, t), "");
    }
    case OP_GATHER_ROWS: {
        LLVMValueRef h, valid;
        int64_t V = a->shape[0], H = a->shape[1];
        split_last(k, ix, n, &sub, &h);
        LLVMValueRef row = index_in_range(c, cg_eval(k, n->in[1], &sub), V, &valid);
        sub2.multi = 1;
        sub2.d[0] = row;
        sub2.d[1] = h;
        sub2.flat = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, row, cg_i64(c, H), ""), h, "");
        LLVMValueRef v = cg_eval(k, n->in[0], &sub2);
        return LLVMBuildSelect(b, valid, v, zero_of(c, t), "");
    }
    case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_MATMUL: case OP_MATMUL_MASKED: case OP_SCATTER_ADD_ROWS:
    case OP_SCATTER_ADD_INTO: case OP_ATTENTION: case OP_ATTENTION_GRAD:
    case OP_COUNT:
    case OP_ALL_REDUCE: case OP_ALL_GATHER: case OP_AXIS_INDEX: /* entry steps of their own (cg_entry.c) */
        break;
    }
    cg_fail(c, "%s %%%d is read by a kernel but has no place in the schedule and cannot be computed inline",
            ir_op_info[n->op].name, id);
    return LLVMGetUndef(ty);
}
