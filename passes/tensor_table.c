/* tensor_table.c — the layout of every tensor the runtime sees.
 *
 * Every entry point's graph (train_step, logps, ...) reads and writes the
 * same parameters, inputs and outputs, so their places are decided once,
 * from all graphs together, in four sweeps over the graphs (each in graph
 * order, then node or output order, so "first appearance" is well defined):
 *   1. trainable params -> region PARAMS (role TR_PARAM, decay = ndim >= 2,
 *      so norm weights and biases get no weight decay);
 *   2. frozen params    -> REF_PARAMS (TR_REF_PARAM);
 *   3. inputs           -> INPUTS (TR_INPUT);
 *   4. IR_OUT_LOSS / IR_OUT_VALUE outputs -> OUTPUTS (TR_OUTPUT), one slot per
 *      name even when several graphs produce it.
 * Then each trainable param gets an explicit TR_GRAD entry of the same name
 * in region GRADS at the same offset; ADAM_M and ADAM_V use that layout too
 * (region_size of GRADS, ADAM_M, ADAM_V equals that of PARAMS), so the
 * optimizer is one flat loop. IR_OUT_GRAD outputs are placed (by sched_plan)
 * at their param's TR_GRAD entry. Offsets are DPOC_REGION_ALIGN aligned, in
 * entry order, and every region size is rounded up to a multiple of that
 * alignment (the gaps are padding the optimizer may sweep). A name seen twice must agree in dtype and shape, and a param
 * may not be trainable in one graph and frozen in another.
 */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static int64_t align_up(int64_t x) { return (x + DPOC_REGION_ALIGN - 1) / DPOC_REGION_ALIGN * DPOC_REGION_ALIGN; }

const TensorEntry *tensor_table_find(const TensorTable *tt, const char *name, TensorRole role) {
    for (int32_t i = 0; i < tt->n; i++)
        if (tt->t[i].role == role && strcmp(tt->t[i].name, name) == 0) return &tt->t[i];
    return NULL;
}

void tensor_table_free(TensorTable *tt) {
    free(tt->t);
    memset(tt, 0, sizeof *tt);
}

static void shape_text(char *buf, size_t len, IrDType t, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, len, "%s[", ir_dtype_name(t));
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static const char *const role_names[] = {"param", "frozen param", "gradient", "input", "output"};

/* adds (or checks against an existing entry) one tensor; 0 ok, -1 + err */
static int table_put(TensorTable *tt, const char *name, TensorRole role, DpocRegion region, IrDType dtype,
                     int ndim, const int64_t *shape, const int8_t *shard, char *err, size_t errlen) {
    TensorEntry *e = (TensorEntry *)tensor_table_find(tt, name, role);
    if (e) {
        if (e->dtype != dtype || e->ndim != ndim || memcmp(e->shape, shape, (size_t)ndim * sizeof *shape) != 0) {
            char a[128], b[128];
            shape_text(a, sizeof a, e->dtype, e->ndim, e->shape);
            shape_text(b, sizeof b, dtype, ndim, shape);
            snprintf(err, errlen, "%s '%s' is %s in one graph and %s in another", role_names[role], name, a, b);
            return -1;
        }
        return 0;
    }
    if (strlen(name) >= sizeof e->name) {
        snprintf(err, errlen, "%s name too long (%zu bytes): %.60s...", role_names[role], strlen(name), name);
        return -1;
    }
    if (tt->n == tt->cap) {
        int32_t cap = tt->cap ? tt->cap * 2 : 64;
        TensorEntry *p = realloc(tt->t, (size_t)cap * sizeof *p);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        tt->t = p;
        tt->cap = cap;
    }
    e = &tt->t[tt->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->region = region;
    e->role = role;
    e->decay = role == TR_PARAM && ndim >= 2;
    for (int d = 0; d < IR_MAX_DIMS; d++) e->shard[d] = shard && d < ndim ? shard[d] : IR_SHARD_NONE;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    e->offset = align_up(tt->region_size[region]);
    tt->region_size[region] = e->offset + numel * (int64_t)ir_dtype_size(dtype);
    return 0;
}

static int sweep_params(TensorTable *tt, IrGraph *const *graphs, int ngraphs, int want_role, char *err,
                        size_t errlen) {
    for (int gi = 0; gi < ngraphs; gi++) {
        const IrGraph *g = graphs[gi];
        for (int32_t id = 0; id < g->n; id++) {
            const IrNode *n = ir_node(g, id);
            if (n->op != OP_PARAM || n->attr[0] != want_role) continue;
            const char *name = ir_str_get(g, n->name);
            int trainable = want_role == IR_PARAM_TRAINABLE;
            if (!trainable && tensor_table_find(tt, name, TR_PARAM)) {
                snprintf(err, errlen, "param '%s' is trainable in one graph and frozen in another", name);
                return -1;
            }
            if (table_put(tt, name, trainable ? TR_PARAM : TR_REF_PARAM,
                          trainable ? DPOC_R_PARAMS : DPOC_R_REF_PARAMS, (IrDType)n->dtype, n->ndim, n->shape,
                          n->shard, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

int tensor_table_build(TensorTable *tt, IrGraph *const *graphs, int ngraphs, char *err, size_t errlen) {
    memset(tt, 0, sizeof *tt);
    if (sweep_params(tt, graphs, ngraphs, IR_PARAM_TRAINABLE, err, errlen) < 0) goto fail;
    if (sweep_params(tt, graphs, ngraphs, IR_PARAM_FROZEN, err, errlen) < 0) goto fail;
    for (int gi = 0; gi < ngraphs; gi++) {
        const IrGraph *g = graphs[gi];
        for (int32_t id = 0; id < g->n; id++) {
            const IrNode *n = ir_node(g, id);
            if (n->op != OP_INPUT) continue;
            if (table_put(tt, ir_str_get(g, n->name), TR_INPUT, DPOC_R_INPUTS, (IrDType)n->dtype, n->ndim,
                          n->shape, n->shard, err, errlen) < 0)
                goto fail;
        }
    }
    for (int gi = 0; gi < ngraphs; gi++) {
        const IrGraph *g = graphs[gi];
        for (int32_t i = 0; i < g->nout; i++) {
            const IrOutput *o = &g->outs[i];
            const IrNode *n = ir_node(g, o->id);
            const char *name = ir_str_get(g, o->name);
            if (o->role == IR_OUT_GRAD) {
                const TensorEntry *pe = tensor_table_find(tt, name, TR_PARAM);
                if (!pe) {
                    snprintf(err, errlen, "gradient output '%s' names no trainable param", name);
                    goto fail;
                }
                if (pe->dtype != n->dtype || pe->ndim != n->ndim ||
                    memcmp(pe->shape, n->shape, (size_t)n->ndim * sizeof n->shape[0]) != 0) {
                    snprintf(err, errlen, "gradient output '%s' does not have its param's type", name);
                    goto fail;
                }
                continue;
            }
            if (table_put(tt, name, TR_OUTPUT, DPOC_R_OUTPUTS, (IrDType)n->dtype, n->ndim, n->shape, n->shard,
                          err, errlen) < 0)
                goto fail;
        }
    }
    /* gradients: one entry per trainable param, same offsets in GRADS */
    int32_t nentries = tt->n;
    for (int32_t i = 0; i < nentries; i++) {
        if (tt->t[i].role != TR_PARAM) continue;
        TensorEntry pe = tt->t[i];
        if (table_put(tt, pe.name, TR_GRAD, DPOC_R_GRADS, pe.dtype, pe.ndim, pe.shape, pe.shard, err, errlen) < 0) goto fail;
        TensorEntry *ge = &tt->t[tt->n - 1];
        ge->offset = pe.offset;
        ge->decay = pe.decay;
    }
    for (int r = 0; r < DPOC_R_COUNT; r++) tt->region_size[r] = align_up(tt->region_size[r]);
    tt->region_size[DPOC_R_GRADS] = tt->region_size[DPOC_R_PARAMS];
    tt->region_size[DPOC_R_ADAM_M] = tt->region_size[DPOC_R_PARAMS];
    tt->region_size[DPOC_R_ADAM_V] = tt->region_size[DPOC_R_PARAMS];
    tt->region_size[DPOC_R_ARENA] = 0;
    return 0;
fail:
    tensor_table_free(tt);
    return -1;
}
