/* simplify.c — constant folding, algebraic identities, CSE, then DCE.
 *
 * One round rebuilds the graph (rebuild.h): each old node, with its inputs
 * already mapped into the new graph, is offered to rewrite(), which may
 *   - fold it: every input it depends on is a constant (constants are
 *     uniform: one value for every element), so the result is one value too,
 *     computed here in double, rounded to the result dtype, and emitted as a
 *     constant of the result's shape (never when it is not finite);
 *   - replace it by an existing value (x+0, x*1, neg(neg x), reshape or
 *     broadcast to the same shape, identity permute, reduction over a size-1
 *     axis, full slice, zero pad, select on a constant condition, ...);
 *   - replace it by a new, simpler node (0-x -> neg x, x*-1 -> neg x,
 *     reshape(reshape x) -> reshape x, broadcast(broadcast x), permute of a
 *     permute -> one permute, stop_grad(stop_grad x), add(x, scatter) of
 *     a scatter read nowhere else -> scatter_add_into), or by two
 *     (add(pad a, pad b) of adjacent blocks -> pad(concat(a, b))).
 * Otherwise the node is copied. Because the new graph hash-conses, values
 * that became identical merge, which is CSE. Rounds repeat until one changes
 * nothing (each rewrite makes the graph strictly simpler, and the count is
 * capped anyway), then pass_dce drops what no output needs.
 *
 * A value flagged IR_F_NOGRAD is never replaced by one that could carry a
 * gradient, so simplify before autodiff cannot open a path the front end
 * closed. Replacements keep the type of the value they replace (checked).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "rebuild.h"

enum { RW_NONE, RW_EXISTING, RW_NEW };

typedef struct Simp {
    Rebuild r;
    int nfold, nident;
} Simp;

static int const_of(const IrGraph *g, int32_t id, double *v) {
    const IrNode *n = ir_node(g, id);
    if (n->op != OP_CONST) return 0;
    *v = n->dtype == DT_F32 ? (double)(float)n->fval : n->fval;
    return 1;
}

static int is_const(const IrGraph *g, int32_t id, double v) {
    double x;
    return const_of(g, id, &x) && x == v;
}

/* Rounds a folded value to dtype t; 0 when it is not representable. A
 * non-finite value is kept only when it was copied from an input constant
 * (movement ops, select, max, neg...): folding never creates inf or nan. */
static int round_to(IrDType t, double v, int copied, double *out) {
    if (!isfinite(v) && (!copied || t == DT_I32)) return 0;
    switch (t) {
    case DT_F32:
        if (isfinite(v) && fabs(v) > FLT_MAX) return 0;
        *out = (double)(float)v;
        return 1;
    case DT_F64:
        *out = v;
        return 1;
    case DT_I32:
        if (v != trunc(v) || v < INT32_MIN || v > INT32_MAX) return 0;
        *out = v;
        return 1;
    case DT_COUNT:
        break;
    }
    return 0;
}

/* The uniform value of node p (inputs in g) when it can be folded: 0 no,
 * 1 computed, 2 an input constant's value passed through unchanged (up to
 * sign). */
static int fold_value(const IrGraph *g, const IrNode *p, double *v) {
    double a = 0, b = 0, k = 0;
    int nin = ir_op_info[p->op].nin;
    int ca = nin > 0 && const_of(g, p->in[0], &a);
    int cb = nin > 1 && const_of(g, p->in[1], &b);
    int isf = ir_dtype_is_float((IrDType)p->dtype);
    switch ((IrOp)p->op) {
    case OP_PARAM: case OP_INPUT: case OP_CONST:
        return 0;
    case OP_IOTA:
        if (p->shape[p->attr[0]] != 1) return 0;
        *v = 0;
        return 1;
    case OP_GATHER_ROWS: case OP_PICK: /* every element is some element of a */
        if (!ca) return 0;
        *v = a;
        return 2;
    case OP_SCATTER_ADD_ROWS: case OP_UNPICK:
        if (!ca || a != 0) return 0;
        *v = 0;
        return 1;
    case OP_PAD: /* pads with zeros */
        if (!ca || a != 0) return 0;
        *v = 0;
        return 1;
    case OP_SELECT: /* a constant condition and a constant chosen branch */
        if (!const_of(g, p->in[0], &k)) return 0;
        return const_of(g, k != 0 ? p->in[1] : p->in[2], v) ? 2 : 0;
    default:
        break;
    }
    if (!ca || (nin > 1 && !cb)) return 0;
    const IrNode *in0 = ir_node(g, p->in[0]);
    switch ((IrOp)p->op) {
    case OP_NEG: *v = -a; return 2;
    case OP_EXP: *v = exp(a); return 1;
    case OP_LOG: *v = log(a); return 1;
    case OP_LOG1P: *v = log1p(a); return 1;
    case OP_SQRT: *v = sqrt(a); return 1;
    case OP_RSQRT: *v = 1.0 / sqrt(a); return 1;
    case OP_SIGMOID: *v = 1.0 / (1.0 + exp(-a)); return 1;
    case OP_ABS: *v = fabs(a); return 2;
    case OP_COS: *v = cos(a); return 1;
    case OP_SIN: *v = sin(a); return 1;
    case OP_STOP_GRAD: *v = a; return 2;
    case OP_CAST: *v = p->dtype == DT_I32 ? trunc(a) : a; return 2;
    case OP_ADD: *v = a + b; return 1;
    case OP_SUB: *v = a - b; return 1;
    case OP_MUL: *v = a * b; return 1;
    case OP_DIV:
        if (!isf) return 0; /* integer division semantics are codegen's */
        *v = a / b;
        return 1;
    case OP_MAX: *v = a < b ? b : a; return 2;
    case OP_MIN: *v = b < a ? b : a; return 2;
    case OP_CMP_LT: *v = a < b ? 1 : 0; return 1;
    case OP_BROADCAST: case OP_RESHAPE: case OP_PERMUTE: case OP_SLICE: case OP_REDUCE_MAX:
        *v = a;
        return 2;
    case OP_CONCAT:
        if (memcmp(&a, &b, sizeof a) != 0) return 0;
        *v = a;
        return 2;
    case OP_REDUCE_SUM:
        *v = a * (double)in0->shape[p->attr[0]];
        return 1;
    case OP_MATMUL: {
        int r = in0->ndim;
        int64_t kdim = p->attr[0] ? in0->shape[r - 2] : in0->shape[r - 1];
        *v = a * b * (double)kdim;
        return 1;
    }
    default:
        return 0;
    }
}

static int same_type(const IrNode *a, const IrNode *b) {
    return a->dtype == b->dtype && a->ndim == b->ndim &&
           memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0;
}

/* Can old-node q (type inferred) be replaced by existing new-graph value x? */
static int may_replace(const IrGraph *g, const IrNode *q, int32_t x) {
    const IrNode *n = ir_node(g, x);
    if (!same_type(q, n)) return 0;
    if ((q->flags & IR_F_NOGRAD) && !(n->flags & IR_F_NOGRAD) && !(ir_op_info[n->op].flags & OPF_NOGRAD))
        return 0;
    return 1;
}

static void proto_from(IrNode *o, const IrNode *q, IrOp op) {
    ir_node_proto(o, op);
    o->flags = q->flags;
    o->dtype = q->dtype;
    o->ndim = q->ndim;
    memcpy(o->shape, q->shape, sizeof o->shape);
    memcpy(o->shard, q->shard, sizeof o->shard);
    o->partial = q->partial;
}

/* Identities. q is the node with mapped inputs and inferred type. Returns
 * RW_EXISTING with *rep, RW_NEW with *o, or RW_NONE. */
static int identity(const IrGraph *g, const IrNode *q, int32_t *rep, IrNode *o) {
    int32_t A = q->in[0], B = q->in[1];
    const IrNode *na = ir_op_info[q->op].nin > 0 ? ir_node(g, A) : NULL;
    *rep = -1;
    switch ((IrOp)q->op) {
    case OP_ADD:
        if (is_const(g, B, 0)) *rep = A;
        else if (is_const(g, A, 0)) *rep = B;
        break;
    case OP_SUB:
        if (is_const(g, B, 0)) *rep = A;
        else if (is_const(g, A, 0) && ir_dtype_is_float((IrDType)q->dtype)) {
            proto_from(o, q, OP_NEG);
            o->in[0] = B;
            return RW_NEW;
        }
        break;
    case OP_MUL:
    case OP_DIV: {
        int32_t x = A, k = B;
        if (q->op == OP_MUL && ir_node(g, A)->op == OP_CONST) x = B, k = A;
        if (is_const(g, k, 1)) *rep = x;
        else if (is_const(g, k, -1) && ir_dtype_is_float((IrDType)q->dtype)) {
            proto_from(o, q, OP_NEG);
            o->in[0] = x;
            return RW_NEW;
        } else if (is_const(g, k, 0) && q->op == OP_MUL) {
            proto_from(o, q, OP_CONST);
            o->flags = 0;
            o->partial = 0;
            o->fval = 0;
            return RW_NEW;
        } else if (q->op == OP_DIV && is_const(g, A, 0) && ir_dtype_is_float((IrDType)q->dtype)) {
            proto_from(o, q, OP_CONST);
            o->flags = 0;
            o->partial = 0;
            o->fval = 0;
            return RW_NEW;
        }
        break;
    }
    case OP_MAX:
    case OP_MIN:
        if (A == B) *rep = A;
        break;
    case OP_NEG:
        if (na->op == OP_NEG) *rep = na->in[0];
        break;
    case OP_STOP_GRAD:
        if (na->op == OP_STOP_GRAD) *rep = A;
        break;
    case OP_CAST:
        if (na->dtype == q->dtype) *rep = A;
        break;
    case OP_SELECT: {
        double c;
        if (q->in[1] == q->in[2]) *rep = q->in[1];
        else if (const_of(g, A, &c)) *rep = c != 0 ? q->in[1] : q->in[2];
        break;
    }
    case OP_RESHAPE:
    case OP_BROADCAST:
        if (same_type(q, na)) *rep = A;
        else if (na->op == q->op) { /* reshape(reshape x), broadcast(broadcast x) */
            proto_from(o, q, (IrOp)q->op);
            o->in[0] = na->in[0];
            return RW_NEW;
        }
        break;
    case OP_PERMUTE: {
        int ident = 1;
        for (int d = 0; d < q->ndim; d++) ident &= q->attr[d] == d;
        if (ident) *rep = A;
        else if (na->op == OP_PERMUTE) { /* out d = mid perm[d] = in inner[perm[d]] */
            proto_from(o, q, OP_PERMUTE);
            o->in[0] = na->in[0];
            for (int d = 0; d < q->ndim; d++) o->attr[d] = na->attr[q->attr[d]];
            return RW_NEW;
        }
        break;
    }
    case OP_REDUCE_SUM:
    case OP_REDUCE_MAX:
        if (na->shape[q->attr[0]] == 1) *rep = A;
        break;
    case OP_SLICE:
        if (q->attr[1] == 0 && q->attr[2] == na->shape[q->attr[0]]) *rep = A;
        break;
    case OP_PAD:
        if (q->attr[1] == 0 && q->attr[2] == 0) *rep = A;
        break;
    default:
        break;
    }
    return *rep >= 0 ? RW_EXISTING : RW_NONE;
}

/* add(pad(a), pad(b)) along one axis where b's block starts right where a's
 * ends (or the other way round) is pad(concat(a, b)): every element is one
 * operand's value plus a padding zero (signed zeros aside, as x+0 -> x). The
 * weight gradient of a head in vocabulary chunks is such a sum of one pad
 * per chunk; as a concat, schedule.c can place each chunk's gradient in its
 * rows of the result instead of keeping them all until the sum. Adds the
 * concat to the new graph and returns RW_NEW with the pad in *o, or RW_NONE
 * (-1 after an error, message in c->err). */
static int pad_sum_to_concat(Rebuild *r, int32_t id, const IrNode *q, IrNode *o, PassCtx *c) {
    const IrGraph *g = &r->nw;
    if (q->op != OP_ADD) return RW_NONE;
    const IrNode *lo = ir_node(g, q->in[0]), *hi = ir_node(g, q->in[1]);
    if (lo->op != OP_PAD || hi->op != OP_PAD || lo->attr[0] != hi->attr[0] || !same_type(lo, q) || !same_type(hi, q))
        return RW_NONE;
    if (lo->attr[1] > hi->attr[1]) {
        const IrNode *t = lo;
        lo = hi, hi = t;
    }
    int ax = (int)lo->attr[0];
    if (lo->attr[1] + ir_node(g, lo->in[0])->shape[ax] != hi->attr[1]) return RW_NONE;
    IrNode cat;
    char msg[256];
    proto_from(&cat, q, OP_CONCAT);
    cat.attr[0] = ax;
    cat.in[0] = lo->in[0];
    cat.in[1] = hi->in[0];
    int64_t pad_lo = lo->attr[1], pad_hi = hi->attr[2];
    if (ir_infer(&r->nw, &cat, msg, sizeof msg) < 0) {
        snprintf(c->err, sizeof c->err, "%%%d (concat of padded sums): %.200s", (int)id, msg);
        return -1;
    }
    int32_t cid = rebuild_add(r, id, &cat);
    if (cid < 0) {
        snprintf(c->err, sizeof c->err, "rebuilding %%%d: %.400s", (int)id, r->nw.err);
        return -1;
    }
    proto_from(o, q, OP_PAD);
    o->in[0] = cid;
    o->attr[0] = ax;
    o->attr[1] = pad_lo;
    o->attr[2] = pad_hi;
    return RW_NEW;
}

/* add(x, scatter_add_rows(v, ids)) (either order), the scatter read by
 * that add alone (nread: readers in the old graph, outputs counted), is
 * scatter_add_into(v, ids, x): the [rows, H] scatter is never stored (a
 * tied embedding's gradient: the head's gradient plus the gathered rows'). */
static int scatter_into(const IrGraph *old, const int32_t *nread, int32_t id, const IrGraph *g, const IrNode *q,
                        IrNode *o) {
    if (q->op != OP_ADD) return RW_NONE;
    const IrNode *p = ir_node(old, id);
    for (int k = 0; k < 2; k++) {
        const IrNode *s = ir_node(g, q->in[k]);
        if (s->op != OP_SCATTER_ADD_ROWS || ir_node(old, p->in[k])->op != OP_SCATTER_ADD_ROWS ||
            nread[p->in[k]] != 1 || !same_type(s, q))
            continue;
        proto_from(o, q, OP_SCATTER_ADD_INTO);
        o->in[0] = s->in[0];
        o->in[1] = s->in[1];
        o->in[2] = q->in[1 - k];
        return RW_NEW;
    }
    return RW_NONE;
}

/* one rebuild round with rewrites; PASS_CHANGED / PASS_UNCHANGED / PASS_ERROR */
static int simplify_round(IrGraph *g, PassCtx *c, Simp *s) {
    Rebuild *r = &s->r;
    int32_t *nread = calloc((size_t)(g->n ? g->n : 1), sizeof *nread);
    if (!nread) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return PASS_ERROR;
    }
    for (int32_t id = 0; id < g->n; id++) {
        const IrNode *n = ir_node(g, id);
        for (int k = 0; k < ir_op_info[n->op].nin; k++) nread[n->in[k]]++;
    }
    for (int32_t i = 0; i < g->nout; i++) nread[g->outs[i].id]++;
    if (rebuild_begin(r, g, c->err, sizeof c->err) < 0) {
        free(nread);
        return PASS_ERROR;
    }
    for (int32_t id = 0; id < g->n; id++) {
        IrNode p, q, o;
        char msg[256];
        if (rebuild_proto(r, id, &p) < 0) {
            snprintf(c->err, sizeof c->err, "%%%d: an input was lost", (int)id);
            goto fail;
        }
        q = p;
        int32_t nid = -1;
        if (!(ir_op_info[p.op].flags & OPF_LEAF) || p.op == OP_IOTA) {
            if (ir_infer(&r->nw, &q, msg, sizeof msg) < 0) {
                snprintf(c->err, sizeof c->err, "%%%d (%s): %.200s", (int)id, ir_op_info[p.op].name, msg);
                goto fail;
            }
            double v;
            int32_t rep;
            int fk = fold_value(&r->nw, &q, &v);
            if (fk && round_to((IrDType)q.dtype, v, fk == 2, &v)) {
                proto_from(&o, &q, OP_CONST);
                o.flags = 0;
                o.partial = 0;
                o.fval = v;
                nid = rebuild_add(r, id, &o);
                s->nfold++;
            } else {
                int k = identity(&r->nw, &q, &rep, &o);
                if (k == RW_NONE && (k = pad_sum_to_concat(r, id, &q, &o, c)) < 0) goto fail;
                if (k == RW_NONE) k = scatter_into(g, nread, id, &r->nw, &q, &o);
                if (k == RW_EXISTING && may_replace(&r->nw, &q, rep)) {
                    nid = r->map[id] = rep;
                    s->nident++;
                } else if (k == RW_NEW) {
                    nid = rebuild_add(r, id, &o);
                    s->nident++;
                }
            }
        }
        if (nid < 0) nid = rebuild_add(r, id, &p);
        if (nid < 0) {
            snprintf(c->err, sizeof c->err, "rebuilding %%%d: %.400s", (int)id, r->nw.err);
            goto fail;
        }
    }
    if (rebuild_outputs(r, c->err, sizeof c->err) < 0) goto fail;
    free(nread);
    return rebuild_finish(r, g);
fail:
    free(nread);
    rebuild_abort(r);
    return PASS_ERROR;
}

int pass_simplify(IrGraph *g, PassCtx *c) {
    Simp s = {0};
    int changed = 0;
    for (int round = 0; round < 16; round++) {
        int rc = simplify_round(g, c, &s);
        if (rc == PASS_ERROR) return PASS_ERROR;
        if (rc == PASS_UNCHANGED) break;
        changed = 1;
    }
    int rc = pass_dce(g, c);
    if (rc == PASS_ERROR) return PASS_ERROR;
    if (c->debug >= 2 && c->log)
        fprintf(c->log, "simplify: %d folds, %d identities, %d nodes\n", s.nfold, s.nident, (int)g->n);
    return changed || rc == PASS_CHANGED ? PASS_CHANGED : PASS_UNCHANGED;
}
