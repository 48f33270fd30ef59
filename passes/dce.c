/* dce.c — dead-code elimination.
 *
 * A value is live when some output depends on it. One downward sweep over
 * the ids marks liveness (outputs first, then the inputs of every live node;
 * inputs have lower ids, so one pass suffices). The graph is then rebuilt
 * with only the live nodes. Parameters and inputs are ordinary nodes here:
 * they stay when an output needs them and vanish from this graph otherwise
 * (the tensor table is built from the graphs after the passes, so a name no
 * graph uses gets no slot) — except that a trainable parameter with a
 * gradient output stays, even when its gradient is a constant zero that does
 * not read it: the gradient needs the parameter's slot in the layout.
 */
#include <stdlib.h>

#include "passes.h"
#include "rebuild.h"

int pass_dce(IrGraph *g, PassCtx *c) {
    uint8_t *live = calloc((size_t)(g->n ? g->n : 1), 1);
    if (!live) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return PASS_ERROR;
    }
    for (int32_t i = 0; i < g->nout; i++) {
        live[g->outs[i].id] = 1;
        if (g->outs[i].role != IR_OUT_GRAD) continue;
        int32_t p = ir_find_named(g, OP_PARAM, ir_str_get(g, g->outs[i].name));
        if (p >= 0) live[p] = 1;
    }
    int32_t nlive = 0;
    for (int32_t id = g->n - 1; id >= 0; id--) {
        if (!live[id]) continue;
        nlive++;
        const IrNode *n = ir_node(g, id);
        for (int k = 0; k < ir_op_info[n->op].nin; k++) live[n->in[k]] = 1;
    }
    if (nlive == g->n) {
        free(live);
        return PASS_UNCHANGED;
    }
    Rebuild r;
    if (rebuild_begin(&r, g, c->err, sizeof c->err) < 0) {
        free(live);
        return PASS_ERROR;
    }
    for (int32_t id = 0; id < g->n; id++) {
        if (!live[id]) continue;
        IrNode p;
        if (rebuild_proto(&r, id, &p) < 0 || rebuild_add(&r, id, &p) < 0) {
            snprintf(c->err, sizeof c->err, "rebuilding %%%d: %.400s", (int)id, r.nw.err);
            goto fail;
        }
    }
    if (rebuild_outputs(&r, c->err, sizeof c->err) < 0) goto fail;
    free(live);
    if (c->debug >= 2 && c->log)
        fprintf(c->log, "dce: removed %d of %d nodes\n", (int)(g->n - nlive), (int)g->n);
    return rebuild_finish(&r, g);
fail:
    free(live);
    rebuild_abort(&r);
    return PASS_ERROR;
}
