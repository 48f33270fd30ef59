/* build.c — typed builders over ir_add_node.
 *
 * Each builder fills a prototype node (op, inputs, attributes, and for ops
 * whose result shape is an argument, that shape) and hands it to
 * ir_add_node, which infers, checks and hash-conses. A -1 input propagates
 * as -1 without a new message, so callers can compose builders freely and
 * test for failure once. The conveniences at the end (numpy-style
 * broadcasting and its inverse, scaling, squeezing) are compositions of the
 * primitives, never new ops.
 */
#include "ir.h"

#include <string.h>

static int set_shape(IrGraph *g, IrNode *n, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > IR_MAX_DIMS) return ir_set_error(g, "rank %d is outside 0..%d", ndim, IR_MAX_DIMS);
    n->ndim = (uint8_t)ndim;
    if (ndim) memcpy(n->shape, shape, (size_t)ndim * sizeof *shape);
    return 0;
}

static int32_t add_named_leaf(IrGraph *g, IrOp op, const char *name, IrDType t, int ndim, const int64_t *shape, int role) {
    IrNode n;
    ir_node_proto(&n, op);
    n.dtype = (uint8_t)t;
    n.attr[0] = role;
    if (set_shape(g, &n, ndim, shape)) return -1;
    n.name = ir_str(g, name);
    if (n.name < 0) return -1;
    int32_t existing = ir_find_named(g, op, name);
    if (existing >= 0) {
        IrNode e = g->nodes[existing];
        if (e.dtype != n.dtype || e.ndim != n.ndim || e.attr[0] != n.attr[0] ||
            memcmp(e.shape, n.shape, (size_t)n.ndim * sizeof n.shape[0]) != 0)
            return ir_set_error(g, "%s '%s' declared twice with different types", ir_op_info[op].name, name);
    }
    return ir_add_node(g, &n);
}

int32_t ir_param(IrGraph *g, const char *name, IrDType t, int ndim, const int64_t *shape, int role) {
    return add_named_leaf(g, OP_PARAM, name, t, ndim, shape, role);
}

int32_t ir_input(IrGraph *g, const char *name, IrDType t, int ndim, const int64_t *shape) {
    return add_named_leaf(g, OP_INPUT, name, t, ndim, shape, IR_INPUT_SEQS);
}

int32_t ir_input_rows(IrGraph *g, const char *name, IrDType t, int ndim, const int64_t *shape, int rows) {
    return add_named_leaf(g, OP_INPUT, name, t, ndim, shape, rows);
}

int32_t ir_const(IrGraph *g, double v, IrDType t, int ndim, const int64_t *shape) {
    IrNode n;
    ir_node_proto(&n, OP_CONST);
    n.dtype = (uint8_t)t;
    n.fval = v;
    if (set_shape(g, &n, ndim, shape)) return -1;
    return ir_add_node(g, &n);
}

/* an id a builder may read directly: valid, or -1 after recording why */
static int valid(IrGraph *g, int32_t id) {
    if (id >= 0 && id < g->n) return 1;
    if (id >= g->n) ir_set_error(g, "reference to undefined %%%d", id);
    else if (!g->err[0]) ir_set_error(g, "a builder was given a missing value");
    return 0;
}

int32_t ir_const_like(IrGraph *g, double v, int32_t like) {
    if (!valid(g, like)) return -1;
    IrNode l = g->nodes[like];
    return ir_const(g, v, (IrDType)l.dtype, l.ndim, l.shape);
}

int32_t ir_iota(IrGraph *g, int axis, IrDType t, int ndim, const int64_t *shape) {
    IrNode n;
    ir_node_proto(&n, OP_IOTA);
    n.dtype = (uint8_t)t;
    n.attr[0] = axis;
    if (set_shape(g, &n, ndim, shape)) return -1;
    return ir_add_node(g, &n);
}

static int32_t add1(IrGraph *g, IrOp op, int32_t a) {
    IrNode n;
    ir_node_proto(&n, op);
    n.in[0] = a;
    return ir_add_node(g, &n);
}

int32_t ir_unary(IrGraph *g, IrOp op, int32_t a) {
    if (ir_op_info[op].nin != 1 || ir_op_info[op].cls != FC_ELEMWISE || op == OP_CAST)
        return ir_set_error(g, "%s is not a unary elementwise op", ir_op_info[op].name);
    return add1(g, op, a);
}

int32_t ir_binary(IrGraph *g, IrOp op, int32_t a, int32_t b) {
    if (ir_op_info[op].nin != 2 || ir_op_info[op].cls != FC_ELEMWISE)
        return ir_set_error(g, "%s is not a binary elementwise op", ir_op_info[op].name);
    IrNode n;
    ir_node_proto(&n, op);
    n.in[0] = a;
    n.in[1] = b;
    return ir_add_node(g, &n);
}

int32_t ir_select(IrGraph *g, int32_t c, int32_t a, int32_t b) {
    return ir_add_op(g, OP_SELECT, 3, (int32_t[]){c, a, b}, 0, NULL);
}

int32_t ir_cast(IrGraph *g, int32_t a, IrDType t) {
    if (!valid(g, a)) return -1;
    if (g->nodes[a].dtype == t) return a;
    IrNode n;
    ir_node_proto(&n, OP_CAST);
    n.in[0] = a;
    n.dtype = (uint8_t)t;
    return ir_add_node(g, &n);
}

static int32_t add_shaped(IrGraph *g, IrOp op, int32_t a, int ndim, const int64_t *shape) {
    IrNode n;
    ir_node_proto(&n, op);
    n.in[0] = a;
    if (set_shape(g, &n, ndim, shape)) return -1;
    return ir_add_node(g, &n);
}

int32_t ir_broadcast(IrGraph *g, int32_t a, int ndim, const int64_t *shape) {
    return add_shaped(g, OP_BROADCAST, a, ndim, shape);
}

int32_t ir_reshape(IrGraph *g, int32_t a, int ndim, const int64_t *shape) {
    return add_shaped(g, OP_RESHAPE, a, ndim, shape);
}

int32_t ir_permute(IrGraph *g, int32_t a, const int *perm) {
    if (!valid(g, a)) return -1;
    IrNode n;
    ir_node_proto(&n, OP_PERMUTE);
    n.in[0] = a;
    for (int d = 0; d < g->nodes[a].ndim; d++) n.attr[d] = perm[d];
    return ir_add_node(g, &n);
}

int32_t ir_add_op(IrGraph *g, IrOp op, int nin, const int32_t *in, int nattr, const int64_t *attr) {
    IrNode n;
    ir_node_proto(&n, op);
    for (int i = 0; i < nin; i++) n.in[i] = in[i];
    for (int i = 0; i < nattr; i++) n.attr[i] = attr[i];
    return ir_add_node(g, &n);
}

static int32_t add_axis3(IrGraph *g, IrOp op, int32_t a, int64_t x, int64_t y, int64_t z) {
    return ir_add_op(g, op, 1, &a, 3, (int64_t[]){x, y, z});
}

int32_t ir_slice(IrGraph *g, int32_t a, int axis, int64_t start, int64_t stop) {
    return add_axis3(g, OP_SLICE, a, axis, start, stop);
}

int32_t ir_pad(IrGraph *g, int32_t a, int axis, int64_t lo, int64_t hi) {
    return add_axis3(g, OP_PAD, a, axis, lo, hi);
}

int32_t ir_concat(IrGraph *g, int32_t a, int32_t b, int axis) {
    return ir_add_op(g, OP_CONCAT, 2, (int32_t[]){a, b}, 1, (int64_t[]){axis});
}

int32_t ir_reduce(IrGraph *g, IrOp op, int32_t a, int axis) {
    if (op != OP_REDUCE_SUM && op != OP_REDUCE_MAX) return ir_set_error(g, "%s is not a reduction", ir_op_info[op].name);
    return ir_add_op(g, op, 1, &a, 1, (int64_t[]){axis});
}

static int32_t add2a(IrGraph *g, IrOp op, int32_t a, int32_t b, int64_t x, int64_t y) {
    return ir_add_op(g, op, 2, (int32_t[]){a, b}, 2, (int64_t[]){x, y});
}

int32_t ir_matmul(IrGraph *g, int32_t a, int32_t b, int ta, int tb) { return add2a(g, OP_MATMUL, a, b, ta, tb); }
int32_t ir_matmul_masked(IrGraph *g, int32_t a, int32_t b, int ta, int tb, int32_t mask, int dim) {
    return ir_add_op(g, OP_MATMUL_MASKED, 3, (int32_t[]){a, b, mask}, 3, (int64_t[]){ta, tb, dim});
}
int32_t ir_gather_rows(IrGraph *g, int32_t table, int32_t ids) { return add2a(g, OP_GATHER_ROWS, table, ids, 0, 0); }
int32_t ir_scatter_add_rows(IrGraph *g, int32_t grad, int32_t ids, int64_t rows) {
    return add2a(g, OP_SCATTER_ADD_ROWS, grad, ids, rows, 0);
}
int32_t ir_scatter_add_into(IrGraph *g, int32_t grad, int32_t ids, int32_t base) {
    return ir_add_op(g, OP_SCATTER_ADD_INTO, 3, (int32_t[]){grad, ids, base}, 0, NULL);
}
int32_t ir_attention(IrGraph *g, int32_t q, int32_t k, int32_t v, int32_t seg, int64_t groups, int causal) {
    return ir_add_op(g, OP_ATTENTION, 4, (int32_t[]){q, k, v, seg}, 2, (int64_t[]){groups, causal});
}
int32_t ir_attention_grad(IrGraph *g, int32_t out, int32_t grad) {
    if (!valid(g, out) || !valid(g, grad)) return -1;
    const IrNode a = g->nodes[out];
    if (a.op != OP_ATTENTION) return ir_set_error(g, "attention_grad needs an attention's result, got %s", ir_op_info[a.op].name);
    return ir_add_op(g, OP_ATTENTION_GRAD, 6, (int32_t[]){a.in[0], a.in[1], a.in[2], a.in[3], out, grad}, 2,
                     (int64_t[]){a.attr[0], a.attr[1]});
}
int32_t ir_pick(IrGraph *g, int32_t x, int32_t idx) { return add2a(g, OP_PICK, x, idx, 0, 0); }
int32_t ir_unpick(IrGraph *g, int32_t grad, int32_t idx, int64_t n) { return add2a(g, OP_UNPICK, grad, idx, n, 0); }

/* ---- conveniences ---------------------------------------------------------- */

int32_t ir_add(IrGraph *g, int32_t a, int32_t b) { return ir_binary(g, OP_ADD, a, b); }
int32_t ir_sub(IrGraph *g, int32_t a, int32_t b) { return ir_binary(g, OP_SUB, a, b); }
int32_t ir_mul(IrGraph *g, int32_t a, int32_t b) { return ir_binary(g, OP_MUL, a, b); }
int32_t ir_div(IrGraph *g, int32_t a, int32_t b) { return ir_binary(g, OP_DIV, a, b); }

int32_t ir_scale(IrGraph *g, int32_t a, double s) { return ir_mul(g, a, ir_const_like(g, s, a)); }

/* Right-aligned numpy broadcasting of a to like's shape: missing leading dims
 * are added by a reshape, then size-1 dims are expanded. */
int32_t ir_bcast_to(IrGraph *g, int32_t a, int32_t like) {
    if (!valid(g, a) || !valid(g, like)) return -1;
    IrNode na = g->nodes[a], nl = g->nodes[like];
    if (na.ndim > nl.ndim) return ir_set_error(g, "cannot broadcast rank %d to rank %d", na.ndim, nl.ndim);
    int64_t shape[IR_MAX_DIMS];
    int lead = nl.ndim - na.ndim;
    for (int d = 0; d < nl.ndim; d++) shape[d] = d < lead ? 1 : na.shape[d - lead];
    int32_t r = lead ? ir_reshape(g, a, nl.ndim, shape) : a;
    if (memcmp(shape, nl.shape, (size_t)nl.ndim * sizeof shape[0]) == 0) return r;
    return ir_broadcast(g, r, nl.ndim, nl.shape);
}

/* Sums a (shaped like a broadcast of `like`) back to like's shape. */
int32_t ir_sum_to(IrGraph *g, int32_t a, int32_t like) {
    if (!valid(g, a) || !valid(g, like)) return -1;
    IrNode na = g->nodes[a], nl = g->nodes[like];
    if (nl.ndim > na.ndim) return ir_set_error(g, "cannot sum rank %d to rank %d", na.ndim, nl.ndim);
    int lead = na.ndim - nl.ndim;
    int32_t r = a;
    for (int d = 0; d < na.ndim; d++) {
        int64_t want = d < lead ? 1 : nl.shape[d - lead];
        if (want == 1 && na.shape[d] != 1) r = ir_reduce(g, OP_REDUCE_SUM, r, d);
        else if (want != na.shape[d]) return ir_set_error(g, "cannot sum dim %d of size %lld to %lld", d, (long long)na.shape[d], (long long)want);
    }
    if (r < 0) return -1;
    if (lead || g->nodes[r].ndim != nl.ndim) return ir_reshape(g, r, nl.ndim, nl.shape);
    return r;
}

int32_t ir_squeeze(IrGraph *g, int32_t a, int axis) {
    if (!valid(g, a)) return -1;
    IrNode na = g->nodes[a];
    if (axis < 0 || axis >= na.ndim || na.shape[axis] != 1) return ir_set_error(g, "squeeze: dim %d is not of size 1", axis);
    int64_t shape[IR_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < na.ndim; d++)
        if (d != axis) shape[k++] = na.shape[d];
    return ir_reshape(g, a, k, shape);
}
