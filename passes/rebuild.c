/* rebuild.c — the old-graph-to-new-graph copier shared by rewriting passes.
 *
 * See rebuild.h. Node names and location file names are string offsets into
 * a graph's own pool, so rebuild_proto re-interns them in the new graph.
 * "Changed" is decided by comparing the two graphs value by value (op,
 * type, inputs, attributes, constant bits, flags, name text, sharding;
 * locations do not count) and output by output.
 */
#include "rebuild.h"

#include <stdlib.h>
#include <string.h>

int rebuild_begin(Rebuild *r, const IrGraph *old, char *err, size_t errlen) {
    r->old = old;
    ir_init(&r->nw);
    r->nw.cur_loc.file = -1;
    r->map = malloc(sizeof *r->map * (size_t)(old->n ? old->n : 1));
    r->strmap = malloc(sizeof *r->strmap * (size_t)(old->nstrs ? old->nstrs : 1));
    if (!r->map || !r->strmap) {
        free(r->map);
        free(r->strmap);
        r->map = r->strmap = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int32_t i = 0; i < old->n; i++) r->map[i] = -1;
    for (int32_t i = 0; i < old->nstrs; i++) r->strmap[i] = -1;
    return 0;
}

/* interning scans the pool, so each old string is interned once */
static int32_t str_in_new(Rebuild *r, int32_t old_sid) {
    if (old_sid < 0 || old_sid >= r->old->nstrs) return -1;
    if (r->strmap[old_sid] < 0) r->strmap[old_sid] = ir_str(&r->nw, ir_str_get(r->old, old_sid));
    return r->strmap[old_sid];
}

int rebuild_proto(Rebuild *r, int32_t id, IrNode *p) {
    *p = *ir_node(r->old, id);
    int nin = ir_op_info[p->op].nin;
    for (int k = 0; k < nin; k++) {
        p->in[k] = r->map[p->in[k]];
        if (p->in[k] < 0) return -1;
    }
    if (p->name >= 0) p->name = str_in_new(r, p->name);
    if (p->loc.file >= 0) p->loc.file = str_in_new(r, p->loc.file);
    return 0;
}

int32_t rebuild_add(Rebuild *r, int32_t id, const IrNode *p) {
    IrNode q = *p;
    const IrNode *o = ir_node(r->old, id);
    /* the location of the old node this value stands for */
    q.loc = o->loc;
    q.loc.file = str_in_new(r, o->loc.file);
    r->nw.cur_loc = q.loc;
    int32_t nid = ir_add_node(&r->nw, &q);
    r->map[id] = nid;
    return nid;
}

int rebuild_outputs(Rebuild *r, char *err, size_t errlen) {
    for (int32_t i = 0; i < r->old->nout; i++) {
        const IrOutput *o = &r->old->outs[i];
        const char *name = ir_str_get(r->old, o->name);
        int32_t nid = r->map[o->id];
        if (nid < 0) {
            snprintf(err, errlen, "output '%s' lost its value", name);
            return -1;
        }
        if (ir_add_output(&r->nw, name, nid, (IrOutRole)o->role) < 0) {
            snprintf(err, errlen, "%s", r->nw.err);
            return -1;
        }
    }
    return 0;
}

static int node_equal(const IrGraph *ga, const IrNode *a, const IrGraph *gb, const IrNode *b) {
    if (a->op != b->op || a->dtype != b->dtype || a->ndim != b->ndim || a->flags != b->flags ||
        a->partial != b->partial)
        return 0;
    if (memcmp(a->in, b->in, sizeof a->in) != 0) return 0;
    if (memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) != 0) return 0;
    if (memcmp(a->shard, b->shard, (size_t)a->ndim) != 0) return 0;
    if (memcmp(a->attr, b->attr, sizeof a->attr) != 0) return 0;
    if (memcmp(&a->fval, &b->fval, sizeof a->fval) != 0) return 0;
    if ((a->name < 0) != (b->name < 0)) return 0;
    if (a->name >= 0 && strcmp(ir_str_get(ga, a->name), ir_str_get(gb, b->name)) != 0) return 0;
    return 1;
}

static int graphs_equal(const IrGraph *a, const IrGraph *b) {
    if (a->n != b->n || a->nout != b->nout) return 0;
    for (int32_t i = 0; i < a->n; i++)
        if (!node_equal(a, ir_node(a, i), b, ir_node(b, i))) return 0;
    for (int32_t i = 0; i < a->nout; i++) {
        const IrOutput *x = &a->outs[i], *y = &b->outs[i];
        if (x->id != y->id || x->role != y->role) return 0;
        if (strcmp(ir_str_get(a, x->name), ir_str_get(b, y->name)) != 0) return 0;
    }
    return 1;
}

int rebuild_finish(Rebuild *r, IrGraph *g) {
    int changed = !graphs_equal(r->old, &r->nw);
    free(r->map);
    free(r->strmap);
    r->map = r->strmap = NULL;
    if (!changed) {
        ir_free(&r->nw);
        return PASS_UNCHANGED;
    }
    r->nw.cur_loc = (IrLoc){-1, 0, 0}; /* the old pool's offsets mean nothing here */
    ir_free(g);
    *g = r->nw;
    ir_init(&r->nw);
    return PASS_CHANGED;
}

void rebuild_abort(Rebuild *r) {
    free(r->map);
    free(r->strmap);
    r->map = r->strmap = NULL;
    ir_free(&r->nw);
}
