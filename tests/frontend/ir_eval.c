/* ir_eval.c — see ir_eval.h. The front-end tests name their leaf values
 * through a lookup callback; this adapter asks it for every param and input
 * node, then evaluates the graph with the shared reference interpreter
 * (tests/passes/ir_interp.c), so all tests measure against one oracle. */
#include "ir_eval.h"

#include <stdio.h>
#include <stdlib.h>

#include "../passes/ir_interp.h"

int ir_eval(const IrGraph *g, EvalLookup lookup, void *ctx, EvalResult *res, char *err, size_t errlen) {
    res->vals = NULL;
    res->n = 0;
    double **leaf = calloc((size_t)(g->n ? g->n : 1), sizeof *leaf);
    if (!leaf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int32_t id = 0; id < g->n; id++) {
        const IrNode *n = &g->nodes[id];
        if (n->op != OP_PARAM && n->op != OP_INPUT) continue;
        const char *name = ir_str_get(g, n->name);
        leaf[id] = (double *)lookup(ctx, name, (IrOp)n->op, ir_numel(n));
        if (!leaf[id]) {
            snprintf(err, errlen, "no data for %s '%s'", ir_op_info[n->op].name, name);
            free(leaf);
            return -1;
        }
    }
    res->vals = ir_interp_run(g, leaf, 0, err, errlen);
    free(leaf);
    if (!res->vals) return -1;
    res->n = g->n;
    return 0;
}

void ir_eval_free(EvalResult *res) {
    if (res->vals) {
        for (int32_t i = 0; i < res->n; i++) free(res->vals[i]);
        free(res->vals);
    }
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
