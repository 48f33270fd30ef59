/* ir_eval.c — see ir_eval.h. One case per op; movement ops map each output
 * coordinate back to an input coordinate, reductions and matmul loop in the
 * natural order. */
#include "ir_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unravel(int64_t i, const IrNode *n, int64_t *c) {
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

static double un(IrOp op, double x) {
    switch (op) {
    case OP_NEG: return -x;
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_LOG1P: return log1p(x);
    case OP_SQRT: return sqrt(x);
    case OP_RSQRT: return 1.0 / sqrt(x);
    case OP_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case OP_ABS: return fabs(x);
    case OP_COS: return cos(x);
    case OP_SIN: return sin(x);
    default: return x; /* stop_grad, cast */
    }
}

static double bin(IrOp op, double a, double b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_MAX: return a > b ? a : b;
    case OP_MIN: return a < b ? a : b;
    case OP_CMP_LT: return a < b ? 1.0 : 0.0;
    default: return NAN;
    }
}

static int fail(char *err, size_t errlen, int32_t id, const char *what) {
    snprintf(err, errlen, "ir_eval: %%%d: %s", id, what);
    return -1;
}

static int eval_node(const IrGraph *g, int32_t id, double **v, EvalLookup lookup, void *ctx, char *err, size_t errlen) {
    const IrNode *n = &g->nodes[id];
    int64_t ne = ir_numel(n);
    double *o = v[id];
    const IrNode *a = n->in[0] >= 0 ? &g->nodes[n->in[0]] : NULL;
    const IrNode *b = n->in[1] >= 0 ? &g->nodes[n->in[1]] : NULL;
    const double *x = n->in[0] >= 0 ? v[n->in[0]] : NULL;
    const double *y = n->in[1] >= 0 ? v[n->in[1]] : NULL;
    int64_t c[IR_MAX_DIMS], ci[IR_MAX_DIMS];
    switch ((IrOp)n->op) {
    case OP_PARAM:
    case OP_INPUT: {
        const double *src = lookup(ctx, ir_str_get(g, n->name), (IrOp)n->op, ne);
        if (!src) return fail(err, errlen, id, ir_str_get(g, n->name));
        memcpy(o, src, (size_t)ne * sizeof *o);
        return 0;
    }
    case OP_CONST:
        for (int64_t i = 0; i < ne; i++) o[i] = n->fval;
        return 0;
    case OP_IOTA:
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            o[i] = (double)c[n->attr[0]];
        }
        return 0;
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_LOG1P: case OP_SQRT: case OP_RSQRT: case OP_SIGMOID:
    case OP_ABS: case OP_COS: case OP_SIN: case OP_STOP_GRAD: case OP_CAST:
        for (int64_t i = 0; i < ne; i++) o[i] = un((IrOp)n->op, x[i]);
        return 0;
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_LT:
        for (int64_t i = 0; i < ne; i++) o[i] = bin((IrOp)n->op, x[i], y[i]);
        return 0;
    case OP_SELECT: {
        const double *z = v[n->in[2]];
        for (int64_t i = 0; i < ne; i++) o[i] = x[i] != 0 ? y[i] : z[i];
        return 0;
    }
    case OP_BROADCAST:
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            for (int d = 0; d < n->ndim; d++) ci[d] = a->shape[d] == 1 ? 0 : c[d];
            o[i] = x[ravel(ci, a)];
        }
        return 0;
    case OP_RESHAPE:
        memcpy(o, x, (size_t)ne * sizeof *o);
        return 0;
    case OP_PERMUTE:
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            for (int d = 0; d < n->ndim; d++) ci[n->attr[d]] = c[d];
            o[i] = x[ravel(ci, a)];
        }
        return 0;
    case OP_SLICE:
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            c[n->attr[0]] += n->attr[1];
            o[i] = x[ravel(c, a)];
        }
        return 0;
    case OP_PAD:
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            int64_t k = c[n->attr[0]] - n->attr[1];
            if (k < 0 || k >= a->shape[n->attr[0]]) o[i] = 0;
            else {
                c[n->attr[0]] = k;
                o[i] = x[ravel(c, a)];
            }
        }
        return 0;
    case OP_CONCAT: {
        int ax = (int)n->attr[0];
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            if (c[ax] < a->shape[ax]) o[i] = x[ravel(c, a)];
            else {
                c[ax] -= a->shape[ax];
                o[i] = y[ravel(c, b)];
            }
        }
        return 0;
    }
    case OP_REDUCE_SUM:
    case OP_REDUCE_MAX: {
        int ax = (int)n->attr[0];
        for (int64_t i = 0; i < ne; i++) {
            unravel(i, n, c);
            double acc = n->op == OP_REDUCE_SUM ? 0.0 : -INFINITY;
            for (int64_t k = 0; k < a->shape[ax]; k++) {
                c[ax] = k;
                double e = x[ravel(c, a)];
                acc = n->op == OP_REDUCE_SUM ? acc + e : (e > acc ? e : acc);
            }
            o[i] = acc;
        }
        return 0;
    }
    case OP_MATMUL: {
        int r = n->ndim;
        int64_t M = n->shape[r - 2], N = n->shape[r - 1];
        int64_t K = n->attr[0] ? a->shape[r - 2] : a->shape[r - 1];
        int64_t batch = ne / (M * N);
        for (int64_t bt = 0; bt < batch; bt++) {
            const double *A = x + bt * M * K, *B = y + bt * K * N;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++)
                        s += (n->attr[0] ? A[k * M + i] : A[i * K + k]) * (n->attr[1] ? B[j * K + k] : B[k * N + j]);
                    o[bt * M * N + i * N + j] = s;
                }
        }
        return 0;
    }
    case OP_GATHER_ROWS: {
        int64_t rows = a->shape[0], w = a->shape[1], nid = ir_numel(b);
        for (int64_t i = 0; i < nid; i++) {
            int64_t r = (int64_t)y[i];
            if (r < 0 || r >= rows) return fail(err, errlen, id, "gather_rows index out of range");
            memcpy(o + i * w, x + r * w, (size_t)w * sizeof *o);
        }
        return 0;
    }
    case OP_SCATTER_ADD_ROWS: {
        int64_t w = n->shape[1], nid = ir_numel(b);
        memset(o, 0, (size_t)ne * sizeof *o);
        for (int64_t i = 0; i < nid; i++) {
            int64_t r = (int64_t)y[i];
            if (r < 0 || r >= n->shape[0]) return fail(err, errlen, id, "scatter_add_rows index out of range");
            for (int64_t j = 0; j < w; j++) o[r * w + j] += x[i * w + j];
        }
        return 0;
    }
    case OP_PICK: {
        int64_t V = a->shape[a->ndim - 1];
        for (int64_t i = 0; i < ne; i++) {
            int64_t k = (int64_t)y[i];
            if (k < 0 || k >= V) return fail(err, errlen, id, "pick index out of range");
            o[i] = x[i * V + k];
        }
        return 0;
    }
    case OP_UNPICK: {
        int64_t V = n->attr[0], nx = ir_numel(a);
        memset(o, 0, (size_t)ne * sizeof *o);
        for (int64_t i = 0; i < nx; i++) {
            int64_t k = (int64_t)y[i];
            if (k < 0 || k >= V) return fail(err, errlen, id, "unpick index out of range");
            o[i * V + k] = x[i];
        }
        return 0;
    }
    case OP_COUNT: break;
    }
    return fail(err, errlen, id, "op not supported by the test interpreter");
}

int ir_eval(const IrGraph *g, EvalLookup lookup, void *ctx, EvalResult *res, char *err, size_t errlen) {
    res->n = g->n;
    res->vals = calloc((size_t)g->n + 1, sizeof *res->vals);
    if (!res->vals) return fail(err, errlen, 0, "out of memory");
    for (int32_t id = 0; id < g->n; id++) {
        int64_t ne = ir_numel(&g->nodes[id]);
        res->vals[id] = malloc((size_t)(ne ? ne : 1) * sizeof(double));
        if (!res->vals[id]) return fail(err, errlen, id, "out of memory");
        if (eval_node(g, id, res->vals, lookup, ctx, err, errlen)) return -1;
    }
    return 0;
}

void ir_eval_free(EvalResult *res) {
    for (int32_t i = 0; res->vals && i < res->n; i++) free(res->vals[i]);
    free(res->vals);
    res->vals = NULL;
    res->n = 0;
}

const double *ir_eval_output(const IrGraph *g, const EvalResult *res, const char *name, int64_t *numel) {
    int32_t k = ir_find_output(g, name);
    if (k < 0) return NULL;
    int32_t id = g->outs[k].id;
    if (numel) *numel = ir_numel(&g->nodes[id]);
    return res->vals[id];
}
