/* infer.c — shape and dtype rules, one case per op of ops.def.
 *
 * ir_infer reads a prototype node whose inputs already live in the graph and
 * fills in its result type. Ops whose result shape is not a function of the
 * inputs (leaves, reshape, broadcast) carry the shape in the prototype, and
 * the rule checks it instead. Every message says what was expected, with the
 * shapes involved, so a front end can report it next to the source line.
 */
#include "ir.h"

#include <stdarg.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void shape_str(const IrNode *n, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "%s[", ir_dtype_name((IrDType)n->dtype));
    for (int d = 0; d < n->ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ",%lld" : "%lld", (long long)n->shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static void copy_type(IrNode *n, const IrNode *a) {
    n->dtype = a->dtype;
    n->ndim = a->ndim;
    memcpy(n->shape, a->shape, sizeof n->shape);
}

static int same_shape(const IrNode *a, const IrNode *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0;
}

static int check_declared(const IrNode *n, char *err, size_t errlen) {
    if ((unsigned)n->dtype >= DT_COUNT) return fail(err, errlen, "unknown dtype %u", (unsigned)n->dtype);
    if (n->ndim > IR_MAX_DIMS) return fail(err, errlen, "rank %d exceeds %d", n->ndim, IR_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < n->ndim; d++) {
        if (n->shape[d] <= 0) return fail(err, errlen, "dimension %d has size %lld, expected > 0", d, (long long)n->shape[d]);
        if (n->shape[d] > IR_MAX_ELEMS / numel) return fail(err, errlen, "more than 2^48 elements");
        numel *= n->shape[d];
    }
    return 0;
}

static int check_axis(int64_t axis, int ndim, char *err, size_t errlen) {
    if (axis < 0 || axis >= ndim) return fail(err, errlen, "axis %lld out of range for rank %d", (long long)axis, ndim);
    return 0;
}

static int infer_rule(const IrGraph *g, IrNode *n, char *err, size_t errlen);

int ir_infer(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (infer_rule(g, n, err, errlen) != 0) return -1;
    return check_declared(n, err, errlen); /* every result: sizes > 0, at most 2^48 elements */
}

/* attention and attention_grad: q [..., M, D], k and v [..., T, D] with the
 * same batch dims, seg [B0, T] (B0 = q's first dim), M = groups x Tq with
 * Tq <= T; attention_grad also out and g [..., M, D + 1], q's dtype */
static int infer_attention(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    const IrNode *q = &g->nodes[n->in[0]], *k = &g->nodes[n->in[1]], *v = &g->nodes[n->in[2]];
    const IrNode *seg = &g->nodes[n->in[3]];
    char sq[96], sk[96], sv[96]; /* filled only for a message */
    int r = q->ndim;
    if (r < 3 || !ir_dtype_is_float((IrDType)q->dtype)) {
        shape_str(q, sq, sizeof sq);
        return fail(err, errlen, "q must be float [batch..., rows, D], got %s", sq);
    }
    int64_t M = q->shape[r - 2], D = q->shape[r - 1], T = k->shape[r - 2];
    if (!same_shape(k, v) || k->ndim != r || k->dtype != q->dtype || v->dtype != q->dtype ||
        memcmp(k->shape, q->shape, (size_t)(r - 2) * sizeof q->shape[0]) != 0 || k->shape[r - 1] != D) {
        shape_str(q, sq, sizeof sq);
        shape_str(k, sk, sizeof sk);
        shape_str(v, sv, sizeof sv);
        return fail(err, errlen, "k and v must be q's batch dims, [T, %lld] and q's dtype: q %s, k %s, v %s",
                    (long long)D, sq, sk, sv);
    }
    if (n->attr[1] != 0 && n->attr[1] != 1) return fail(err, errlen, "causal must be 0 or 1, got %lld", (long long)n->attr[1]);
    if (n->attr[0] < 1 || M % n->attr[0] != 0 || M / n->attr[0] > T)
        return fail(err, errlen, "groups %lld must divide q's %lld rows into blocks of at most T = %lld",
                    (long long)n->attr[0], (long long)M, (long long)T);
    if (seg->ndim != 2 || seg->shape[0] != q->shape[0] || seg->shape[1] != T) {
        shape_str(seg, sv, sizeof sv);
        return fail(err, errlen, "segments must be [%lld, %lld], got %s", (long long)q->shape[0], (long long)T, sv);
    }
    copy_type(n, q);
    if (n->op == OP_ATTENTION) {
        n->shape[r - 1] = D + 1;
        return 0;
    }
    for (int i = 4; i < 6; i++) {
        const IrNode *x = &g->nodes[n->in[i]];
        int ok = x->ndim == r && x->dtype == q->dtype && memcmp(x->shape, q->shape, (size_t)(r - 1) * sizeof q->shape[0]) == 0 &&
                 x->shape[r - 1] == D + 1;
        if (!ok) {
            shape_str(x, sv, sizeof sv);
            return fail(err, errlen, "%s must be q's shape with D + 1 = %lld columns, got %s",
                        i == 4 ? "the attention's result" : "its gradient", (long long)(D + 1), sv);
        }
    }
    n->shape[r - 2] = M + 2 * T;
    return 0;
}

static int infer_rule(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (n->op >= OP_COUNT) return fail(err, errlen, "unknown op code %u", (unsigned)n->op);
    for (int i = 0; i < ir_op_info[n->op].nin; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n) return fail(err, errlen, "input %d refers to undefined %%%d", i, n->in[i]);
    const IrNode *a = ir_op_info[n->op].nin > 0 ? &g->nodes[n->in[0]] : NULL;
    const IrNode *b = ir_op_info[n->op].nin > 1 ? &g->nodes[n->in[1]] : NULL;
    const IrNode *c = ir_op_info[n->op].nin > 2 ? &g->nodes[n->in[2]] : NULL;
    char sa[96], sb[96];

    switch ((IrOp)n->op) {
    case OP_PARAM:
        if (n->name < 0) return fail(err, errlen, "a param needs a name");
        if (n->attr[0] != IR_PARAM_TRAINABLE && n->attr[0] != IR_PARAM_FROZEN)
            return fail(err, errlen, "param role %lld is neither trainable nor frozen", (long long)n->attr[0]);
        if (check_declared(n, err, errlen)) return -1;
        if (!ir_dtype_is_float((IrDType)n->dtype)) return fail(err, errlen, "a param must have a float dtype");
        return 0;
    case OP_INPUT:
        if (n->name < 0) return fail(err, errlen, "an input needs a name");
        if (n->attr[0] != IR_INPUT_SEQS && n->attr[0] != IR_INPUT_PAIRS)
            return fail(err, errlen, "input rows %lld are neither seqs nor pairs", (long long)n->attr[0]);
        return check_declared(n, err, errlen);
    case OP_CONST:
        return check_declared(n, err, errlen);
    case OP_IOTA:
        if (check_declared(n, err, errlen)) return -1;
        return check_axis(n->attr[0], n->ndim, err, errlen);

    case OP_NEG: case OP_EXP: case OP_LOG: case OP_LOG1P: case OP_SQRT: case OP_RSQRT:
    case OP_SIGMOID: case OP_ABS: case OP_COS: case OP_SIN:
        if (!ir_dtype_is_float((IrDType)a->dtype) && n->op != OP_NEG && n->op != OP_ABS)
            return fail(err, errlen, "expected a float operand, got %s", ir_dtype_name((IrDType)a->dtype));
        copy_type(n, a);
        return 0;
    case OP_STOP_GRAD:
        copy_type(n, a);
        return 0;
    case OP_CAST: {
        IrDType to = (IrDType)n->dtype;
        if ((unsigned)to >= DT_COUNT) return fail(err, errlen, "unknown target dtype");
        copy_type(n, a);
        n->dtype = (uint8_t)to;
        return 0;
    }
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_LT:
        if (a->dtype != b->dtype || !same_shape(a, b)) {
            shape_str(a, sa, sizeof sa);
            shape_str(b, sb, sizeof sb);
            return fail(err, errlen, "operands differ: %s vs %s (broadcast explicitly)", sa, sb);
        }
        copy_type(n, a);
        return 0;
    case OP_SELECT:
        if (!same_shape(a, b) || !same_shape(b, c) || b->dtype != c->dtype) {
            shape_str(b, sa, sizeof sa);
            shape_str(c, sb, sizeof sb);
            return fail(err, errlen, "select needs condition and branches of one shape, branches %s vs %s", sa, sb);
        }
        copy_type(n, b);
        return 0;

    case OP_BROADCAST:
        if (check_declared(n, err, errlen)) return -1;
        if (n->ndim != a->ndim) return fail(err, errlen, "broadcast keeps the rank: input rank %d, result rank %d", a->ndim, n->ndim);
        for (int d = 0; d < n->ndim; d++)
            if (a->shape[d] != 1 && a->shape[d] != n->shape[d]) {
                shape_str(a, sa, sizeof sa);
                return fail(err, errlen, "cannot broadcast %s: dim %d is %lld, result wants %lld", sa, d,
                            (long long)a->shape[d], (long long)n->shape[d]);
            }
        n->dtype = a->dtype;
        return 0;
    case OP_RESHAPE:
        if (check_declared(n, err, errlen)) return -1;
        n->dtype = a->dtype;
        if (ir_numel(n) != ir_numel(a)) {
            shape_str(a, sa, sizeof sa);
            return fail(err, errlen, "reshape of %s to %lld elements changes the element count", sa, (long long)ir_numel(n));
        }
        return 0;
    case OP_PERMUTE: {
        int seen[IR_MAX_DIMS] = {0};
        copy_type(n, a);
        for (int d = 0; d < a->ndim; d++) {
            int64_t p = n->attr[d];
            if (p < 0 || p >= a->ndim || seen[p]) return fail(err, errlen, "perm is not a permutation of 0..%d", a->ndim - 1);
            seen[p] = 1;
            n->shape[d] = a->shape[p];
        }
        for (int d = a->ndim; d < IR_MAX_ATTR; d++)
            if (n->attr[d] != 0) return fail(err, errlen, "perm has more entries than the rank %d", a->ndim);
        return 0;
    }
    case OP_SLICE:
        if (check_axis(n->attr[0], a->ndim, err, errlen)) return -1;
        if (n->attr[1] < 0 || n->attr[2] <= n->attr[1] || n->attr[2] > a->shape[n->attr[0]])
            return fail(err, errlen, "slice [%lld, %lld) outside dim %lld of size %lld", (long long)n->attr[1],
                        (long long)n->attr[2], (long long)n->attr[0], (long long)a->shape[n->attr[0]]);
        copy_type(n, a);
        n->shape[n->attr[0]] = n->attr[2] - n->attr[1];
        return 0;
    case OP_PAD:
        if (check_axis(n->attr[0], a->ndim, err, errlen)) return -1;
        if (n->attr[1] < 0 || n->attr[2] < 0 || n->attr[1] > IR_MAX_ELEMS || n->attr[2] > IR_MAX_ELEMS)
            return fail(err, errlen, "pad amounts must be in 0..2^48");
        copy_type(n, a);
        n->shape[n->attr[0]] += n->attr[1] + n->attr[2];
        return 0;
    case OP_CONCAT:
        if (check_axis(n->attr[0], a->ndim, err, errlen)) return -1;
        if (a->ndim != b->ndim || a->dtype != b->dtype) return fail(err, errlen, "concat operands differ in rank or dtype");
        for (int d = 0; d < a->ndim; d++)
            if (d != n->attr[0] && a->shape[d] != b->shape[d]) {
                shape_str(a, sa, sizeof sa);
                shape_str(b, sb, sizeof sb);
                return fail(err, errlen, "concat of %s and %s: dim %d differs", sa, sb, d);
            }
        copy_type(n, a);
        n->shape[n->attr[0]] += b->shape[n->attr[0]];
        return 0;

    case OP_REDUCE_SUM: case OP_REDUCE_MAX:
        if (check_axis(n->attr[0], a->ndim, err, errlen)) return -1;
        copy_type(n, a);
        n->shape[n->attr[0]] = 1;
        return 0;

    case OP_MATMUL: case OP_MATMUL_MASKED: {
        if (a->ndim < 2 || a->ndim != b->ndim) return fail(err, errlen, "matmul needs operands of one rank >= 2, got %d and %d", a->ndim, b->ndim);
        if (a->dtype != b->dtype || !ir_dtype_is_float((IrDType)a->dtype)) return fail(err, errlen, "matmul needs float operands of one dtype");
        if ((n->attr[0] | n->attr[1]) & ~1LL) return fail(err, errlen, "ta and tb must be 0 or 1");
        int r = a->ndim;
        for (int d = 0; d < r - 2; d++)
            if (a->shape[d] != b->shape[d]) {
                shape_str(a, sa, sizeof sa);
                shape_str(b, sb, sizeof sb);
                return fail(err, errlen, "batch dims differ: %s vs %s", sa, sb);
            }
        int64_t m = n->attr[0] ? a->shape[r - 1] : a->shape[r - 2];
        int64_t ka = n->attr[0] ? a->shape[r - 2] : a->shape[r - 1];
        int64_t kb = n->attr[1] ? b->shape[r - 1] : b->shape[r - 2];
        int64_t nn = n->attr[1] ? b->shape[r - 2] : b->shape[r - 1];
        if (ka != kb) {
            shape_str(a, sa, sizeof sa);
            shape_str(b, sb, sizeof sb);
            return fail(err, errlen, "contracted dims differ: %s (ta=%lld) vs %s (tb=%lld)", sa, (long long)n->attr[0], sb,
                        (long long)n->attr[1]);
        }
        if (n->op == OP_MATMUL_MASKED) {
            const IrNode *mk = c;
            if (r != 2) return fail(err, errlen, "matmul_masked needs rank-2 operands, got rank %d", r);
            if (n->attr[2] != 0 && n->attr[2] != 1) return fail(err, errlen, "dim must be 0 (rows) or 1 (contraction)");
            int64_t want = n->attr[2] == 0 ? m : ka;
            if (mk->ndim != 1 || mk->shape[0] != want || mk->dtype != a->dtype) {
                shape_str(mk, sa, sizeof sa);
                return fail(err, errlen, "the mask must be [%lld] of the operands' dtype (the %s), got %s",
                            (long long)want, n->attr[2] == 0 ? "rows of the result" : "contraction", sa);
            }
        }
        copy_type(n, a);
        n->shape[r - 2] = m;
        n->shape[r - 1] = nn;
        return 0;
    }
    case OP_ATTENTION: case OP_ATTENTION_GRAD:
        return infer_attention(g, n, err, errlen);
    case OP_GATHER_ROWS:
        if (a->ndim != 2) return fail(err, errlen, "gather_rows needs a table of rank 2");
        if (b->dtype != DT_I32) return fail(err, errlen, "gather_rows needs i32 ids");
        if (b->ndim + 1 > IR_MAX_DIMS) return fail(err, errlen, "ids rank too large");
        n->dtype = a->dtype;
        n->ndim = (uint8_t)(b->ndim + 1);
        memcpy(n->shape, b->shape, (size_t)b->ndim * sizeof n->shape[0]);
        n->shape[b->ndim] = a->shape[1];
        return 0;
    case OP_SCATTER_ADD_ROWS:
        if (n->attr[0] > IR_MAX_ELEMS) return fail(err, errlen, "scatter_add_rows: too many rows");
        if (b->dtype != DT_I32) return fail(err, errlen, "scatter_add_rows needs i32 ids");
        if (a->ndim != b->ndim + 1 || memcmp(a->shape, b->shape, (size_t)b->ndim * sizeof a->shape[0]) != 0)
            return fail(err, errlen, "scatter_add_rows: values must be ids' shape plus one trailing dim");
        if (n->attr[0] <= 0) return fail(err, errlen, "scatter_add_rows needs rows > 0");
        n->dtype = a->dtype;
        n->ndim = 2;
        n->shape[0] = n->attr[0];
        n->shape[1] = a->shape[a->ndim - 1];
        return 0;
    case OP_SCATTER_ADD_INTO:
        if (b->dtype != DT_I32) return fail(err, errlen, "scatter_add_into needs i32 ids");
        if (a->ndim != b->ndim + 1 || memcmp(a->shape, b->shape, (size_t)b->ndim * sizeof a->shape[0]) != 0)
            return fail(err, errlen, "scatter_add_into: values must be ids' shape plus one trailing dim");
        if (c->ndim != 2 || c->dtype != a->dtype || c->shape[1] != a->shape[a->ndim - 1])
            return fail(err, errlen, "scatter_add_into: base must be [rows, H] of the values' dtype and H");
        copy_type(n, c);
        return 0;
    case OP_PICK:
        if (b->dtype != DT_I32) return fail(err, errlen, "pick needs i32 indices");
        if (a->ndim != b->ndim + 1 || memcmp(a->shape, b->shape, (size_t)b->ndim * sizeof a->shape[0]) != 0)
            return fail(err, errlen, "pick: x must be idx's shape plus one trailing dim");
        copy_type(n, b);
        n->dtype = a->dtype;
        return 0;
    case OP_UNPICK:
        if (b->dtype != DT_I32) return fail(err, errlen, "unpick needs i32 indices");
        if (!same_shape(a, b)) return fail(err, errlen, "unpick: values and indices differ in shape");
        if (n->attr[0] <= 0 || n->attr[0] > IR_MAX_ELEMS || a->ndim + 1 > IR_MAX_DIMS) return fail(err, errlen, "unpick needs n > 0 and rank < %d", IR_MAX_DIMS);
        copy_type(n, a);
        n->ndim = (uint8_t)(a->ndim + 1);
        n->shape[a->ndim] = n->attr[0];
        return 0;
    case OP_ALL_REDUCE:
        if (n->attr[0] < 0 || n->attr[0] >= IR_MESH_AXES) return fail(err, errlen, "all_reduce: axis %lld is not a mesh axis", (long long)n->attr[0]);
        if (!ir_dtype_is_float((IrDType)a->dtype)) return fail(err, errlen, "all_reduce needs a float operand");
        copy_type(n, a);
        return 0;
    case OP_ALL_GATHER:
        if (n->attr[0] < 0 || n->attr[0] >= IR_MESH_AXES) return fail(err, errlen, "all_gather: axis %lld is not a mesh axis", (long long)n->attr[0]);
        if (check_axis(n->attr[1], a->ndim, err, errlen)) return -1;
        if (n->attr[2] < 1 || n->attr[2] > 65536) return fail(err, errlen, "all_gather: ranks %lld not in 1..65536", (long long)n->attr[2]);
        copy_type(n, a);
        n->shape[n->attr[1]] *= n->attr[2];
        return 0;
    case OP_AXIS_INDEX:
        if (n->attr[0] < 0 || n->attr[0] >= IR_MESH_AXES) return fail(err, errlen, "axis_index: axis %lld is not a mesh axis", (long long)n->attr[0]);
        if (n->dtype != DT_I32 || n->ndim != 0) return fail(err, errlen, "axis_index is an i32 scalar");
        return 0;
    case OP_COUNT:
        break;
    }
    return fail(err, errlen, "no shape rule for op %u", (unsigned)n->op);
}
