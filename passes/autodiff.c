/* autodiff.c — reverse-mode differentiation of the IR_OUT_LOSS output.
 *
 * First a forward sweep marks which values need a gradient: a trainable
 * parameter does (unless flagged IR_F_NOGRAD), and so does any float value
 * computed from one through an op without OPF_NOGRAD by a node without
 * IR_F_NOGRAD. Frozen parameters, inputs, constants and everything downstream
 * of stop_grad/cast/cmp_lt never get a gradient.
 *
 * Then grad[] (one entry per forward node, -1 meaning "symbolic zero") is
 * seeded with a constant 1 of the loss's shape, and ids are walked downward.
 * Each node with a gradient applies its op's rule (one switch over every op
 * of ops.def), which calls the builder to append backward nodes and hands
 * each input's contribution to grad_acc(): the first contribution is stored,
 * later ones are added. Zero contributions are simply never made, so zeros
 * stay symbolic. New nodes always get higher ids (or hash-cons onto existing
 * ones), so appending keeps the graph topological and the forward nodes
 * that the walk still has to visit are untouched.
 *
 * Rematerialisation: a forward value flagged IR_F_REMAT is not kept for the
 * backward. Its remat region is the value itself plus every cheap forward
 * value computed from it (elementwise, broadcast and data-movement ops, not
 * reductions or matmuls). Where a rule needs the value of a region node
 * (never where it names the node a gradient flows to), val() rebuilds it
 * from its inputs at that point, once: an IR_F_REMAT node becomes a copy
 * flagged IR_F_RECOMPUTED (the flag keeps hash-consing and simplify from
 * merging it back into the forward node), the others copies over the
 * rebuilt inputs. The copies get the ids of the backward being built, so
 * the schedule computes them just before their readers and frees them
 * after, while the forward value dies with its last forward reader. The
 * values rebuilt are the same ops on the same inputs, so the gradient is
 * unchanged bit for bit; only memory and time move.
 *
 * Finally one IR_OUT_GRAD output per trainable parameter, named after it, is
 * added; a parameter the loss does not reach gets a constant 0 of its shape
 * (the only place a zero gradient is materialised). Backward nodes carry the
 * source location of the forward node whose rule made them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

typedef struct Ad {
    IrGraph *g;
    PassCtx *c;
    int32_t nfwd;      /* forward nodes: ids below this */
    int32_t *grad;     /* per forward node: gradient id or -1 */
    uint8_t *rg;       /* per forward node: requires grad */
    uint8_t *region;   /* per forward node: in an IR_F_REMAT node's region */
    int32_t *re;       /* per forward node: its rebuilt copy, or -1 */
} Ad;

static int ad_fail(Ad *a, int32_t id, const char *what) {
    const IrNode *n = ir_node(a->g, id);
    snprintf(a->c->err, sizeof a->c->err, "%s at %%%d (%s): %.400s", what, (int)id,
             ir_op_info[n->op].name, a->g->err[0] ? a->g->err : "builder failed");
    return -1;
}

/* adds contribution v (a node id) to the gradient of forward node `to` */
static int grad_acc(Ad *a, int32_t to, int32_t v) {
    if (v < 0) return -1;
    if (!a->rg[to]) return 0;
    if (a->grad[to] < 0) {
        a->grad[to] = v;
        return 0;
    }
    int32_t s = ir_add(a->g, a->grad[to], v);
    if (s < 0) return -1;
    a->grad[to] = s;
    return 0;
}

static int32_t zeros_like(Ad *a, int32_t like) { return ir_const_like(a->g, 0.0, like); }

/* node fields copied out, since builder calls may move the array */
typedef struct NodeView {
    IrOp op;
    int32_t in[IR_MAX_IN];
    int64_t attr[IR_MAX_ATTR];
    int ndim;
    int64_t shape[IR_MAX_DIMS];
} NodeView;

static void node_view(const IrGraph *g, int32_t id, NodeView *v) {
    const IrNode *n = ir_node(g, id);
    v->op = (IrOp)n->op;
    memcpy(v->in, n->in, sizeof v->in);
    memcpy(v->attr, n->attr, sizeof v->attr);
    v->ndim = n->ndim;
    memcpy(v->shape, n->shape, sizeof v->shape);
}

static int in_rg(Ad *a, int32_t x) { return x >= 0 && x < a->nfwd && a->rg[x]; }

/* forward sweep: the remat regions (see the header) */
static void mark_remat_regions(Ad *a) {
    const IrGraph *g = a->g;
    for (int32_t i = 0; i < a->nfwd; i++) {
        const IrNode *n = ir_node(g, i);
        const IrOpInfo *oi = &ir_op_info[n->op];
        uint8_t r = (n->flags & IR_F_REMAT) != 0;
        if (!r && !(oi->flags & OPF_LEAF) && oi->cls >= FC_ELEMWISE && oi->cls <= FC_INJECTIVE)
            for (int k = 0; k < oi->nin; k++)
                if (n->in[k] >= 0 && a->region[n->in[k]]) r = 1;
        a->region[i] = r;
    }
}

/* the value of forward node x as the backward reads it: x itself, or its
 * recomputation when x is in a remat region (-1 on a builder failure) */
static int32_t val(Ad *a, int32_t x) {
    if (x < 0 || x >= a->nfwd || !a->region[x]) return x;
    if (a->re[x] >= 0) return a->re[x];
    IrNode p = *ir_node(a->g, x);
    for (int k = 0; k < ir_op_info[p.op].nin; k++) {
        p.in[k] = val(a, p.in[k]);
        if (p.in[k] < 0) return -1;
    }
    if (p.flags & IR_F_REMAT) p.flags = (p.flags & ~(uint32_t)IR_F_REMAT) | IR_F_RECOMPUTED;
    return a->re[x] = ir_add_node(a->g, &p);
}

/* the gradients of a matmul C = op(A) op(B) given dC: dA (from B) and dB (from A) */
static int32_t matmul_dA(IrGraph *g, int32_t B, int32_t dy, int ta, int tb) {
    if (!ta) return tb ? ir_matmul(g, dy, B, 0, 0) : ir_matmul(g, dy, B, 0, 1);
    return tb ? ir_matmul(g, B, dy, 1, 1) : ir_matmul(g, B, dy, 0, 1);
}

static int32_t matmul_dB(IrGraph *g, int32_t A, int32_t dy, int ta, int tb) {
    if (!tb) return ta ? ir_matmul(g, A, dy, 0, 0) : ir_matmul(g, A, dy, 1, 0);
    return ta ? ir_matmul(g, dy, A, 1, 1) : ir_matmul(g, dy, A, 1, 0);
}

static int rule_matmul(Ad *a, const NodeView *v, int32_t dy) {
    IrGraph *g = a->g;
    int32_t A = val(a, v->in[0]), B = val(a, v->in[1]);
    if (A < 0 || B < 0) return -1;
    int ta = (int)v->attr[0], tb = (int)v->attr[1];
    if (in_rg(a, v->in[0]) && grad_acc(a, v->in[0], matmul_dA(g, B, dy, ta, tb)) < 0) return -1;
    if (in_rg(a, v->in[1]) && grad_acc(a, v->in[1], matmul_dB(g, A, dy, ta, tb)) < 0) return -1;
    return 0;
}

/* x [rows, cols] with the rows (along 0) or columns (along 1) whose mask is
 * <= 0 set to zero: select(0 < mask, x, 0), the mask broadcast */
static int32_t keep_live(Ad *a, int32_t x, int32_t mask, int along) {
    IrGraph *g = a->g;
    if (x < 0) return -1;
    const IrNode *n = ir_node(g, x);
    int64_t shape[2] = {n->shape[0], n->shape[1]}, ms[2] = {1, 1};
    ms[along] = shape[along];
    int32_t mb = ir_broadcast(g, ir_reshape(g, mask, 2, ms), 2, shape);
    int32_t zero = zeros_like(a, x);
    return ir_select(g, ir_binary(g, OP_CMP_LT, zero, mb), x, zero);
}

/* gradient of a masked matmul (ir.h): with a row mask, dA is the same
 * masked matmul of dy (ta = 0; dy's dead rows dropped otherwise) and dB a
 * contraction-masked one; with a contraction mask the plain gradients lose
 * the dead k (a select). The mask gets no gradient. */
static int rule_matmul_masked(Ad *a, const NodeView *v, int32_t dy) {
    IrGraph *g = a->g;
    int32_t A = val(a, v->in[0]), B = val(a, v->in[1]), mask = val(a, v->in[2]);
    if (A < 0 || B < 0 || mask < 0) return -1;
    int ta = (int)v->attr[0], tb = (int)v->attr[1];
    if (v->attr[2] == 0) {
        if (in_rg(a, v->in[0])) {
            int32_t dA = !ta ? ir_matmul_masked(g, dy, B, 0, !tb, mask, 0) : matmul_dA(g, B, keep_live(a, dy, mask, 0), 1, tb);
            if (grad_acc(a, v->in[0], dA) < 0) return -1;
        }
        if (in_rg(a, v->in[1])) {
            int32_t dB = !tb ? ir_matmul_masked(g, A, dy, !ta, 0, mask, 1) : ir_matmul_masked(g, dy, A, 1, ta, mask, 1);
            if (grad_acc(a, v->in[1], dB) < 0) return -1;
        }
        return 0;
    }
    if (in_rg(a, v->in[0]) && grad_acc(a, v->in[0], keep_live(a, matmul_dA(g, B, dy, ta, tb), mask, ta ? 0 : 1)) < 0)
        return -1;
    if (in_rg(a, v->in[1]) && grad_acc(a, v->in[1], keep_live(a, matmul_dB(g, A, dy, ta, tb), mask, tb ? 1 : 0)) < 0)
        return -1;
    return 0;
}

/* Applies the gradient rule of node id (output gradient dy). 0 ok, -1 error
 * (builder failure: message in g->err), -2 no rule for this op. */
static int rule_apply(Ad *a, int32_t id, int32_t dy) {
    IrGraph *g = a->g;
    NodeView v;
    node_view(g, id, &v);
    int32_t x = v.in[0], y2 = v.in[1];
    /* X, Y, ID: the values of x, y2 and this node (recomputed in a remat region) */
    int32_t X = val(a, x), Y = val(a, y2), ID = val(a, id);
    if ((x >= 0 && X < 0) || (y2 >= 0 && Y < 0) || ID < 0) return -1;
    int32_t t;
    switch (v.op) {
    /* leaves and no-gradient ops: nothing flows to inputs */
    case OP_PARAM:
    case OP_INPUT:
    case OP_CONST:
    case OP_IOTA:
    case OP_STOP_GRAD:
    case OP_CAST:
    case OP_CMP_LT:
        return 0;
    /* unary elementwise */
    case OP_NEG:
        return grad_acc(a, x, ir_unary(g, OP_NEG, dy));
    case OP_EXP: /* d exp(x) = exp(x) */
        return grad_acc(a, x, ir_mul(g, dy, ID));
    case OP_LOG:
        return grad_acc(a, x, ir_div(g, dy, X));
    case OP_LOG1P:
        return grad_acc(a, x, ir_div(g, dy, ir_add(g, X, ir_const_like(g, 1.0, x))));
    case OP_SQRT: /* 1 / (2 sqrt x) */
        return grad_acc(a, x, ir_div(g, ir_scale(g, dy, 0.5), ID));
    case OP_RSQRT: /* -1/2 x^(-3/2) = -1/2 y^3 */
        t = ir_mul(g, ir_mul(g, ID, ID), ID);
        return grad_acc(a, x, ir_mul(g, dy, ir_scale(g, t, -0.5)));
    case OP_SIGMOID: /* s (1 - s) */
        t = ir_sub(g, ir_const_like(g, 1.0, id), ID);
        return grad_acc(a, x, ir_mul(g, dy, ir_mul(g, ID, t)));
    case OP_ABS: { /* sign(x), with sign(0) = 0 */
        int32_t z = zeros_like(a, x);
        int32_t pos = ir_select(g, ir_binary(g, OP_CMP_LT, z, X), dy, zeros_like(a, dy));
        t = ir_select(g, ir_binary(g, OP_CMP_LT, X, z), ir_unary(g, OP_NEG, dy), pos);
        return grad_acc(a, x, t);
    }
    case OP_COS:
        return grad_acc(a, x, ir_unary(g, OP_NEG, ir_mul(g, dy, ir_unary(g, OP_SIN, X))));
    case OP_SIN:
        return grad_acc(a, x, ir_mul(g, dy, ir_unary(g, OP_COS, X)));
    /* binary elementwise */
    case OP_ADD:
        if (grad_acc(a, x, dy) < 0) return -1;
        return grad_acc(a, y2, dy);
    case OP_SUB:
        if (grad_acc(a, x, dy) < 0) return -1;
        return in_rg(a, y2) ? grad_acc(a, y2, ir_unary(g, OP_NEG, dy)) : 0;
    case OP_MUL:
        if (in_rg(a, x) && grad_acc(a, x, ir_mul(g, dy, Y)) < 0) return -1;
        if (in_rg(a, y2) && grad_acc(a, y2, ir_mul(g, dy, X)) < 0) return -1;
        return 0;
    case OP_DIV: /* d/da = 1/b; d/db = -a/b^2 = -(a/b)/b */
        if (in_rg(a, x) && grad_acc(a, x, ir_div(g, dy, Y)) < 0) return -1;
        if (in_rg(a, y2) &&
            grad_acc(a, y2, ir_unary(g, OP_NEG, ir_div(g, ir_mul(g, dy, ID), Y))) < 0)
            return -1;
        return 0;
    case OP_MAX:   /* the second operand wins only when a < b */
    case OP_MIN: { /* the second operand wins only when b < a */
        int32_t lt = v.op == OP_MAX ? ir_binary(g, OP_CMP_LT, X, Y) : ir_binary(g, OP_CMP_LT, Y, X);
        int32_t z = zeros_like(a, dy);
        if (in_rg(a, x) && grad_acc(a, x, ir_select(g, lt, z, dy)) < 0) return -1;
        if (in_rg(a, y2) && grad_acc(a, y2, ir_select(g, lt, dy, z)) < 0) return -1;
        return 0;
    }
    case OP_SELECT: {
        int32_t c = X, ta = v.in[1], fb = v.in[2];
        int32_t z = zeros_like(a, dy);
        if (in_rg(a, ta) && grad_acc(a, ta, ir_select(g, c, dy, z)) < 0) return -1;
        if (in_rg(a, fb) && grad_acc(a, fb, ir_select(g, c, z, dy)) < 0) return -1;
        return 0;
    }
    /* data movement */
    case OP_BROADCAST: { /* sum over every broadcast axis (dims stay, size 1) */
        const IrNode *in = ir_node(g, x);
        int64_t ishape[IR_MAX_DIMS];
        memcpy(ishape, in->shape, sizeof ishape);
        t = dy;
        for (int d = 0; d < v.ndim && t >= 0; d++)
            if (ishape[d] == 1 && v.shape[d] != 1) t = ir_reduce(g, OP_REDUCE_SUM, t, d);
        return grad_acc(a, x, t);
    }
    case OP_RESHAPE: {
        const IrNode *in = ir_node(g, x);
        int nd = in->ndim;
        int64_t ishape[IR_MAX_DIMS];
        memcpy(ishape, in->shape, sizeof ishape);
        return grad_acc(a, x, ir_reshape(g, dy, nd, ishape));
    }
    case OP_PERMUTE: {
        int inv[IR_MAX_DIMS];
        for (int i = 0; i < v.ndim; i++) inv[v.attr[i]] = i;
        return grad_acc(a, x, ir_permute(g, dy, inv));
    }
    case OP_SLICE: { /* pad back the cut-off parts with zeros */
        int axis = (int)v.attr[0];
        int64_t dim = ir_node(g, x)->shape[axis];
        return grad_acc(a, x, ir_pad(g, dy, axis, v.attr[1], dim - v.attr[2]));
    }
    case OP_PAD: {
        int axis = (int)v.attr[0];
        int64_t dim = ir_node(g, x)->shape[axis];
        return grad_acc(a, x, ir_slice(g, dy, axis, v.attr[1], v.attr[1] + dim));
    }
    case OP_CONCAT: {
        int axis = (int)v.attr[0];
        int64_t da = ir_node(g, x)->shape[axis], db = ir_node(g, y2)->shape[axis];
        if (in_rg(a, x) && grad_acc(a, x, ir_slice(g, dy, axis, 0, da)) < 0) return -1;
        if (in_rg(a, y2) && grad_acc(a, y2, ir_slice(g, dy, axis, da, da + db)) < 0) return -1;
        return 0;
    }
    /* reductions */
    case OP_REDUCE_SUM: {
        const IrNode *in = ir_node(g, x);
        int nd = in->ndim;
        int64_t ishape[IR_MAX_DIMS];
        memcpy(ishape, in->shape, sizeof ishape);
        return grad_acc(a, x, ir_broadcast(g, dy, nd, ishape));
    }
    case OP_REDUCE_MAX: { /* every element equal to the max gets the gradient */
        const IrNode *in = ir_node(g, x);
        int nd = in->ndim;
        int64_t ishape[IR_MAX_DIMS];
        memcpy(ishape, in->shape, sizeof ishape);
        int32_t mb = ir_broadcast(g, ID, nd, ishape);
        int32_t db = ir_broadcast(g, dy, nd, ishape);
        int32_t below = ir_binary(g, OP_CMP_LT, X, mb);
        return grad_acc(a, x, ir_select(g, below, zeros_like(a, db), db));
    }
    case OP_MATMUL:
        return rule_matmul(a, &v, dy);
    case OP_MATMUL_MASKED:
        return rule_matmul_masked(a, &v, dy);
    /* indexing */
    case OP_GATHER_ROWS: /* table[V,H], ids */
        return grad_acc(a, x, ir_scatter_add_rows(g, dy, Y, ir_node(g, x)->shape[0]));
    case OP_SCATTER_ADD_ROWS:
        return grad_acc(a, x, ir_gather_rows(g, dy, Y));
    case OP_SCATTER_ADD_INTO: /* vals, ids, base: base passes dy through */
        if (grad_acc(a, x, ir_gather_rows(g, dy, Y))) return -1;
        return grad_acc(a, v.in[2], dy);
    case OP_PICK: { /* x[..., V], idx */
        const IrNode *in = ir_node(g, x);
        return grad_acc(a, x, ir_unpick(g, dy, Y, in->shape[in->ndim - 1]));
    }
    case OP_UNPICK:
        return grad_acc(a, x, ir_pick(g, dy, Y));
    case OP_ATTENTION: { /* one backward op for q, k and v (it reads the result), sliced apart; seg has none */
        int r = v.ndim;
        int64_t M = v.shape[r - 2], T = ir_node(g, v.in[1])->shape[r - 2];
        int32_t all = ir_attention_grad(g, ID, dy);
        if (in_rg(a, v.in[0]) && grad_acc(a, v.in[0], ir_slice(g, all, r - 2, 0, M)) < 0) return -1;
        if (in_rg(a, v.in[1]) && grad_acc(a, v.in[1], ir_slice(g, all, r - 2, M, M + T)) < 0) return -1;
        if (in_rg(a, v.in[2]) && grad_acc(a, v.in[2], ir_slice(g, all, r - 2, M + T, M + 2 * T)) < 0) return -1;
        return all < 0 ? -1 : 0;
    }
    case OP_ATTENTION_GRAD: /* no second derivative */
    case OP_ALL_REDUCE: case OP_ALL_GATHER: case OP_AXIS_INDEX: /* the shard pass runs after autodiff */
    case OP_COUNT:
        break;
    }
    return -2;
}

/* forward sweep: which nodes need a gradient */
static void mark_requires_grad(Ad *a) {
    const IrGraph *g = a->g;
    for (int32_t i = 0; i < a->nfwd; i++) {
        const IrNode *n = ir_node(g, i);
        const IrOpInfo *oi = &ir_op_info[n->op];
        uint8_t r = 0;
        if ((n->flags & IR_F_NOGRAD) || !ir_dtype_is_float((IrDType)n->dtype)) r = 0;
        else if (n->op == OP_PARAM) r = n->attr[0] == IR_PARAM_TRAINABLE;
        else if (!(oi->flags & (OPF_NOGRAD | OPF_LEAF)))
            for (int k = 0; k < oi->nin; k++)
                if (n->in[k] >= 0 && a->rg[n->in[k]]) r = 1;
        a->rg[i] = r;
    }
}

int pass_autodiff(IrGraph *g, PassCtx *c) {
    int32_t loss_out = -1;
    for (int32_t i = 0; i < g->nout; i++) {
        if (g->outs[i].role == IR_OUT_GRAD) {
            snprintf(c->err, sizeof c->err, "graph already has gradient outputs (%s)",
                     ir_str_get(g, g->outs[i].name));
            return PASS_ERROR;
        }
        if (g->outs[i].role == IR_OUT_LOSS) {
            if (loss_out >= 0) {
                snprintf(c->err, sizeof c->err, "more than one loss output (%s and %s)",
                         ir_str_get(g, g->outs[loss_out].name), ir_str_get(g, g->outs[i].name));
                return PASS_ERROR;
            }
            loss_out = i;
        }
    }
    if (loss_out < 0) {
        snprintf(c->err, sizeof c->err, "no loss output to differentiate");
        return PASS_ERROR;
    }
    Ad a = {.g = g, .c = c, .nfwd = g->n};
    a.grad = malloc(sizeof *a.grad * (size_t)(g->n ? g->n : 1));
    a.rg = calloc((size_t)(g->n ? g->n : 1), 1);
    a.region = calloc((size_t)(g->n ? g->n : 1), 1);
    a.re = malloc(sizeof *a.re * (size_t)(g->n ? g->n : 1));
    if (!a.grad || !a.rg || !a.region || !a.re) {
        free(a.grad);
        free(a.rg);
        free(a.region);
        free(a.re);
        snprintf(c->err, sizeof c->err, "out of memory");
        return PASS_ERROR;
    }
    for (int32_t i = 0; i < g->n; i++) a.grad[i] = a.re[i] = -1;
    mark_requires_grad(&a);
    mark_remat_regions(&a);

    IrLoc saved_loc = g->cur_loc;
    int rc = PASS_CHANGED;
    int32_t loss = g->outs[loss_out].id;
    int nparams_rg = 0;
    if (a.rg[loss]) {
        g->cur_loc = ir_node(g, loss)->loc;
        a.grad[loss] = ir_const_like(g, 1.0, loss);
        if (a.grad[loss] < 0) {
            rc = ad_fail(&a, loss, "seeding the loss");
            goto done;
        }
    }
    for (int32_t id = loss; id >= 0; id--) {
        int32_t dy = a.grad[id];
        if (dy < 0 || !a.rg[id]) continue;
        g->cur_loc = ir_node(g, id)->loc;
        int r = rule_apply(&a, id, dy);
        if (r == -2) {
            snprintf(c->err, sizeof c->err, "no gradient rule for op '%s' (%%%d)",
                     ir_op_info[ir_node(g, id)->op].name, (int)id);
            rc = PASS_ERROR;
            goto done;
        }
        if (r < 0) {
            rc = ad_fail(&a, id, "gradient rule failed");
            goto done;
        }
    }
    g->cur_loc = saved_loc;
    for (int32_t id = 0; id < a.nfwd; id++) {
        const IrNode *n = ir_node(g, id);
        if (n->op != OP_PARAM || n->attr[0] != IR_PARAM_TRAINABLE) continue;
        int32_t gid = a.grad[id];
        int32_t name = n->name;
        if (gid < 0) {
            IrNode p = *n;
            gid = ir_const(g, 0.0, (IrDType)p.dtype, p.ndim, p.shape);
            if (gid < 0) {
                rc = ad_fail(&a, id, "zero gradient");
                goto done;
            }
        } else {
            nparams_rg++;
        }
        /* the name string may move when ir_add_output interns: copy it */
        char pname[256];
        snprintf(pname, sizeof pname, "%s", ir_str_get(g, name));
        if (ir_add_output(g, pname, gid, IR_OUT_GRAD) < 0) {
            snprintf(c->err, sizeof c->err, "adding gradient output %.200s: %.200s", pname, g->err);
            rc = PASS_ERROR;
            goto done;
        }
    }
    if (c->debug >= 2 && c->log)
        fprintf(c->log, "autodiff: %d forward nodes, %d backward nodes, %d params reached\n",
                (int)a.nfwd, (int)(g->n - a.nfwd), nparams_rg);
done:
    g->cur_loc = saved_loc;
    free(a.grad);
    free(a.rg);
    free(a.region);
    free(a.re);
    return rc;
}
