/* interp.c — the reference interpreter (see interp.h).
 *
 * One function per kind of op, each a plain loop over the output elements.
 * Index arithmetic for the movement ops goes through coords(): a linear
 * output index is unravelled into per-dimension coordinates, mapped to the
 * input's coordinates, and ravelled again. Nothing here is fast; everything
 * is meant to be obviously right.
 */
#include "interp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ifail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ifail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void coords(int64_t i, const IrNode *n, int64_t *c) {
    for (int d = n->ndim - 1; d >= 0; d--) {
        c[d] = i % n->shape[d];
        i /= n->shape[d];
    }
}

static int64_t ravel(const int64_t *c, const IrNode *n) {
    int64_t i = 0;
    for (int d = 0; d < n->ndim; d++) i = i * n->shape[d] + c[d];
    return i;
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double unary(IrOp op, double x) {
    switch (op) {
    case OP_NEG: return -x;
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_LOG1P: return log1p(x);
    case OP_SQRT: return sqrt(x);
    case OP_RSQRT: return 1.0 / sqrt(x);
    case OP_SIGMOID: return sigmoid(x);
    case OP_ABS: return fabs(x);
    case OP_COS: return cos(x);
    case OP_SIN: return sin(x);
    default: return x; /* stop_grad */
    }
}

static double binary(IrOp op, double a, double b, int is_int) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return is_int ? trunc(a / b) : a / b;
    case OP_MAX: return a < b ? b : a;
    case OP_MIN: return b < a ? b : a;
    default: return a < b ? 1.0 : 0.0; /* cmp_lt */
    }
}

static int check_id(double v, int64_t bound, const char *what, char *err, size_t errlen) {
    if (!(v >= 0 && v < (double)bound) || v != trunc(v))
        return ifail(err, errlen, "%s index %g outside [0, %lld)", what, v, (long long)bound);
    return 0;
}

/* attention's geometry (ops.def): per batch entry, M query rows in groups
 * of Tq against T keys of width D; visible() says whether query row r may
 * see key j */
typedef struct Attn {
    int64_t batch, per_b0, M, T, D, Tq;
    int causal;
    const double *seg; /* [B0, T] */
} Attn;

static Attn attn_geometry(const IrGraph *g, const IrNode *n) {
    const IrNode *q = ir_node(g, n->in[0]), *k = ir_node(g, n->in[1]);
    int r = q->ndim;
    Attn a = {.M = q->shape[r - 2], .D = q->shape[r - 1], .T = k->shape[r - 2], .causal = (int)n->attr[1]};
    a.batch = ir_numel(q) / (a.M * a.D);
    a.per_b0 = a.batch / q->shape[0];
    a.Tq = a.M / n->attr[0];
    return a;
}

static int attn_visible(const Attn *a, int64_t bi, int64_t r, int64_t j) {
    int64_t p = a->T - a->Tq + r % a->Tq;
    const double *s = a->seg + (bi / a->per_b0) * a->T;
    return (!a->causal || j <= p) && (s[j] == 0 || s[j] == s[p]);
}

static double dot(const double *x, const double *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* out [.., M, D + 1]: per row, two passes over the visible keys (max, then
 * the weights and the weighted sum of v), the log-sum-exp last */
static void interp_attention(const IrGraph *g, const IrNode *n, double *const *vals, double *out) {
    Attn a = attn_geometry(g, n);
    a.seg = vals[n->in[3]];
    const double *Q = vals[n->in[0]], *K = vals[n->in[1]], *V = vals[n->in[2]];
    for (int64_t bi = 0; bi < a.batch; bi++)
        for (int64_t r = 0; r < a.M; r++) {
            const double *q = Q + (bi * a.M + r) * a.D;
            double *o = out + (bi * a.M + r) * (a.D + 1), mx = -INFINITY, l = 0;
            for (int64_t j = 0; j < a.T; j++)
                if (attn_visible(&a, bi, r, j)) mx = fmax(mx, dot(q, K + (bi * a.T + j) * a.D, a.D));
            for (int64_t d = 0; d < a.D; d++) o[d] = 0;
            for (int64_t j = 0; j < a.T; j++) {
                if (!attn_visible(&a, bi, r, j)) continue;
                double w = exp(dot(q, K + (bi * a.T + j) * a.D, a.D) - mx);
                l += w;
                for (int64_t d = 0; d < a.D; d++) o[d] += w * V[(bi * a.T + j) * a.D + d];
            }
            for (int64_t d = 0; d < a.D && l > 0; d++) o[d] /= l;
            o[a.D] = l > 0 ? mx + log(l) : -INFINITY;
        }
}

/* out [.., M + 2T, D]: dq rows, then dk, then dv. With P = exp(s - lse),
 * dP = g.v, Dr = g.o and ds = P (dP - Dr + g_lse): dq = ds k, dk = ds^T q,
 * dv = P^T g. */
static void interp_attention_grad(const IrGraph *g, const IrNode *n, double *const *vals, double *out) {
    Attn a = attn_geometry(g, n);
    a.seg = vals[n->in[3]];
    const double *Q = vals[n->in[0]], *K = vals[n->in[1]], *V = vals[n->in[2]], *O = vals[n->in[4]], *G = vals[n->in[5]];
    int64_t rows = a.M + 2 * a.T;
    memset(out, 0, sizeof *out * (size_t)(a.batch * rows * a.D));
    for (int64_t bi = 0; bi < a.batch; bi++) {
        double *dq = out + bi * rows * a.D, *dk = dq + a.M * a.D, *dv = dk + a.T * a.D;
        for (int64_t r = 0; r < a.M; r++) {
            const double *q = Q + (bi * a.M + r) * a.D, *o = O + (bi * a.M + r) * (a.D + 1);
            const double *gr = G + (bi * a.M + r) * (a.D + 1);
            double Dr = dot(gr, o, a.D);
            for (int64_t j = 0; j < a.T; j++) {
                if (!attn_visible(&a, bi, r, j)) continue;
                const double *kj = K + (bi * a.T + j) * a.D, *vj = V + (bi * a.T + j) * a.D;
                double P = exp(dot(q, kj, a.D) - o[a.D]);
                double ds = P * (dot(gr, vj, a.D) - Dr + gr[a.D]);
                for (int64_t d = 0; d < a.D; d++) {
                    dq[r * a.D + d] += ds * kj[d];
                    dk[j * a.D + d] += ds * q[d];
                    dv[j * a.D + d] += P * gr[d];
                }
            }
        }
    }
}

/* computes node id into out (numel doubles); vals holds every lower id */
static int eval_node(const IrGraph *g, int32_t id, double *const *vals, double *const *leaf, double *out,
                     char *err, size_t errlen) {
    const IrNode *n = ir_node(g, id);
    const IrNode *na = ir_op_info[n->op].nin > 0 ? ir_node(g, n->in[0]) : NULL;
    const IrNode *nb = ir_op_info[n->op].nin > 1 ? ir_node(g, n->in[1]) : NULL;
    const double *a = na ? vals[n->in[0]] : NULL;
    const double *b = nb ? vals[n->in[1]] : NULL;
    int64_t numel = ir_numel(n);
    int64_t c[IR_MAX_DIMS], ci[IR_MAX_DIMS];
    switch ((IrOp)n->op) {
    case OP_PARAM:
    case OP_INPUT:
        if (!leaf[id]) return ifail(err, errlen, "no value given for %s '%s' (%%%d)", ir_op_info[n->op].name,
                                    ir_str_get(g, n->name), (int)id);
        memcpy(out, leaf[id], sizeof *out * (size_t)numel);
        return 0;
    case OP_CONST:
        for (int64_t i = 0; i < numel; i++) out[i] = n->fval;
        return 0;
    case OP_IOTA:
        for (int64_t i = 0; i < numel; i++) {
            coords(i, n, c);
            out[i] = (double)c[n->attr[0]];
        }
        return 0;
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_LOG1P: case OP_SQRT: case OP_RSQRT:
    case OP_SIGMOID: case OP_ABS: case OP_COS: case OP_SIN: case OP_STOP_GRAD:
        for (int64_t i = 0; i < numel; i++) out[i] = unary((IrOp)n->op, a[i]);
        return 0;
    case OP_CAST:
        for (int64_t i = 0; i < numel; i++) out[i] = n->dtype == DT_I32 ? trunc(a[i]) : a[i];
        return 0;
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_LT:
        for (int64_t i = 0; i < numel; i++) out[i] = binary((IrOp)n->op, a[i], b[i], n->dtype == DT_I32);
        return 0;
    case OP_SELECT: {
        const double *t = vals[n->in[1]], *f = vals[n->in[2]];
        for (int64_t i = 0; i < numel; i++) out[i] = a[i] != 0 ? t[i] : f[i];
        return 0;
    }
    case OP_BROADCAST:
        for (int64_t i = 0; i < numel; i++) {
            coords(i, n, c);
            for (int d = 0; d < n->ndim; d++) ci[d] = na->shape[d] == 1 ? 0 : c[d];
            out[i] = a[ravel(ci, na)];
        }
        return 0;
    case OP_RESHAPE:
        memcpy(out, a, sizeof *out * (size_t)numel);
        return 0;
    case OP_PERMUTE:
        for (int64_t i = 0; i < numel; i++) {
            coords(i, n, c);
            for (int d = 0; d < n->ndim; d++) ci[n->attr[d]] = c[d];
            out[i] = a[ravel(ci, na)];
        }
        return 0;
    case OP_SLICE:
        for (int64_t i = 0; i < numel; i++) {
            coords(i, n, c);
            c[n->attr[0]] += n->attr[1];
            out[i] = a[ravel(c, na)];
        }
        return 0;
    case OP_PAD: {
        int ax = (int)n->attr[0];
        for (int64_t i = 0; i < numel; i++) {
            coords(i, n, c);
            int64_t k = c[ax] - n->attr[1];
            if (k < 0 || k >= na->shape[ax]) {
                out[i] = 0;
                continue;
            }
            c[ax] = k;
            out[i] = a[ravel(c, na)];
        }
        return 0;
    }
    case OP_CONCAT: {
        int ax = (int)n->attr[0];
        for (int64_t i = 0; i < numel; i++) {
            coords(i, n, c);
            if (c[ax] < na->shape[ax]) {
                out[i] = a[ravel(c, na)];
            } else {
                c[ax] -= na->shape[ax];
                out[i] = b[ravel(c, nb)];
            }
        }
        return 0;
    }
    case OP_REDUCE_SUM:
    case OP_REDUCE_MAX: {
        int ax = (int)n->attr[0];
        for (int64_t i = 0; i < numel; i++) out[i] = n->op == OP_REDUCE_SUM ? 0.0 : -INFINITY;
        int64_t nin = ir_numel(na);
        for (int64_t i = 0; i < nin; i++) {
            coords(i, na, c);
            c[ax] = 0;
            int64_t o = ravel(c, n);
            if (n->op == OP_REDUCE_SUM) out[o] += a[i];
            else if (a[i] > out[o]) out[o] = a[i];
        }
        return 0;
    }
    case OP_MATMUL: case OP_MATMUL_MASKED: {
        int r = na->ndim;
        int ta = (int)n->attr[0], tb = (int)n->attr[1];
        int64_t M = n->shape[r - 2], N = n->shape[r - 1];
        int64_t K = ta ? na->shape[r - 2] : na->shape[r - 1];
        int64_t batch = numel / (M * N);
        /* a masked matmul: rows (dim 0) or contraction terms (dim 1) whose mask is <= 0 drop out */
        const double *rowmask = NULL, *kmask = NULL;
        if (n->op == OP_MATMUL_MASKED) *(n->attr[2] == 0 ? &rowmask : &kmask) = vals[n->in[2]];
        /* element strides of op(A)[m,k] and op(B)[k,j] */
        int64_t sam = ta ? 1 : K, sak = ta ? M : 1, sbk = tb ? 1 : N, sbj = tb ? K : 1;
        for (int64_t bi = 0; bi < batch; bi++) {
            const double *A = a + bi * M * K, *B = b + bi * K * N;
            for (int64_t m = 0; m < M; m++) {
                int64_t kend = !rowmask || rowmask[m] > 0 ? K : 0; /* a dead row sums nothing */
                for (int64_t j = 0; j < N; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < kend; k++)
                        if (!kmask || kmask[k] > 0) s += A[m * sam + k * sak] * B[k * sbk + j * sbj];
                    out[bi * M * N + m * N + j] = s;
                }
            }
        }
        return 0;
    }
    case OP_GATHER_ROWS: {
        int64_t V = na->shape[0], H = na->shape[1], I = ir_numel(nb);
        for (int64_t i = 0; i < I; i++) {
            if (check_id(b[i], V, "gather_rows", err, errlen) < 0) return -1;
            memcpy(out + i * H, a + (int64_t)b[i] * H, sizeof *out * (size_t)H);
        }
        return 0;
    }
    case OP_SCATTER_ADD_ROWS: {
        int64_t rows = n->shape[0], H = n->shape[1], I = ir_numel(nb);
        memset(out, 0, sizeof *out * (size_t)numel);
        for (int64_t i = 0; i < I; i++) {
            if (check_id(b[i], rows, "scatter_add_rows", err, errlen) < 0) return -1;
            for (int64_t h = 0; h < H; h++) out[(int64_t)b[i] * H + h] += a[i * H + h];
        }
        return 0;
    }
    case OP_SCATTER_ADD_INTO: {
        const double *base = vals[n->in[2]];
        int64_t rows = n->shape[0], H = n->shape[1], I = ir_numel(nb);
        memcpy(out, base, sizeof *out * (size_t)numel);
        for (int64_t i = 0; i < I; i++) {
            if (check_id(b[i], rows, "scatter_add_into", err, errlen) < 0) return -1;
            for (int64_t h = 0; h < H; h++) out[(int64_t)b[i] * H + h] += a[i * H + h];
        }
        return 0;
    }
    case OP_PICK: {
        int64_t V = na->shape[na->ndim - 1];
        for (int64_t i = 0; i < numel; i++) {
            if (check_id(b[i], V, "pick", err, errlen) < 0) return -1;
            out[i] = a[i * V + (int64_t)b[i]];
        }
        return 0;
    }
    case OP_UNPICK: {
        int64_t V = n->attr[0], I = ir_numel(na);
        memset(out, 0, sizeof *out * (size_t)numel);
        for (int64_t i = 0; i < I; i++) {
            if (check_id(b[i], V, "unpick", err, errlen) < 0) return -1;
            out[i * V + (int64_t)b[i]] = a[i];
        }
        return 0;
    }
    case OP_ATTENTION:
        interp_attention(g, n, vals, out);
        return 0;
    case OP_ATTENTION_GRAD:
        interp_attention_grad(g, n, vals, out);
        return 0;
    case OP_ALL_REDUCE: case OP_ALL_GATHER: case OP_AXIS_INDEX: /* need a mesh: tests/shard/sim_mesh.c */
    case OP_COUNT:
        break;
    }
    return ifail(err, errlen, "interpreter has no rule for op %u", (unsigned)n->op);
}

double **ir_interp_run(const IrGraph *g, double *const *leaf, unsigned flags, char *err, size_t errlen) {
    return ir_interp_run_part(g, NULL, leaf, flags, err, errlen);
}

/* need NULL: the whole graph, with given[] consulted for PARAM and INPUT only */
double **ir_interp_run_part(const IrGraph *g, const unsigned char *need, double *const *given, unsigned flags,
                            char *err, size_t errlen) {
    double **vals = calloc((size_t)(g->n ? g->n : 1), sizeof *vals);
    if (!vals) {
        ifail(err, errlen, "out of memory");
        return NULL;
    }
    for (int32_t id = 0; id < g->n; id++) {
        const IrNode *n = ir_node(g, id);
        int is_given = need && given[id];
        if (need && !need[id] && !is_given) continue;
        int64_t numel = ir_numel(n);
        vals[id] = malloc(sizeof **vals * (size_t)(numel ? numel : 1));
        if (!vals[id]) {
            ifail(err, errlen, "out of memory");
            goto fail;
        }
        if (is_given) {
            memcpy(vals[id], given[id], sizeof **vals * (size_t)numel);
            continue;
        }
        for (int i = 0; need && i < ir_op_info[n->op].nin; i++)
            if (!vals[n->in[i]]) {
                ifail(err, errlen, "%%%d (%s) needs %%%d, which is neither given nor computed", (int)id,
                      ir_op_info[n->op].name, (int)n->in[i]);
                goto fail;
            }
        if (eval_node(g, id, vals, given, vals[id], err, errlen) < 0) goto fail;
        if ((flags & IR_INTERP_ROUND_F32) && n->dtype == DT_F32)
            for (int64_t i = 0; i < numel; i++) vals[id][i] = (double)(float)vals[id][i];
    }
    return vals;
fail:
    ir_interp_free(g, vals);
    return NULL;
}

void ir_interp_free(const IrGraph *g, double **vals) {
    if (!vals) return;
    for (int32_t id = 0; id < g->n; id++) free(vals[id]);
    free(vals);
}

const double *ir_interp_output(const IrGraph *g, double *const *vals, const char *name) {
    int32_t i = ir_find_output(g, name);
    return i < 0 ? NULL : vals[g->outs[i].id];
}
