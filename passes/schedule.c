/* schedule.c — where every value lives, and which kernels run in what order.
 *
 * Only values some output depends on are scheduled; the rest get no storage
 * (region -1) and no kernel. For the live ones, in this order:
 *   1. Storage roots. A RESHAPE is an alias: it has its input's bytes, so
 *      root(x) follows reshape chains down to the value that owns storage.
 *   2. Output slots, output by output. LOSS/VALUE outputs go to their
 *      TR_OUTPUT entry, GRAD outputs to their param's TR_GRAD entry. The
 *      value's root is placed directly in the slot when it is computed by a
 *      kernel and not placed yet (first output wins; an output that is a
 *      reshape of such a value thus costs nothing either). Otherwise (a param
 *      or input, or a root already in another slot) the output becomes a
 *      SchedCopy, run right after the kernel producing the root (or before
 *      the first kernel when the root is a param or input).
 *   3. Params and inputs take their tensor-table place; reshapes copy their
 *      input's place; without fusion every other node (CONST and IOTA
 *      included: they are filled by a kernel) is one kernel, in id order.
 *      After the fuse pass (IrGraph.kernels set) the graph's kernels are the
 *      kernels, in root order, with their members; a member that is no
 *      kernel's root has no storage at all (sched_fused_kernels).
 *   4. Arena: each kernel value not in an output slot is a buffer, live from
 *      its kernel to the last kernel that reads it (directly or through
 *      reshapes; a copy reads it right after its own kernel; with fusion a
 *      kernel reads what it reaches through its members: sched_fused_reads). Buffers are
 *      placed in kernel order at the lowest DPOC_REGION_ALIGN-aligned offset
 *      that overlaps no buffer still live (first fit); sizes are rounded up
 *      to the alignment; arena_bytes is the highest end reached (the peak).
 *   5. The gradients' bytes before they are written. A graph with gradient
 *      outputs (train_step) writes each gradient slot at a known step: the
 *      kernel placed in the slot (the earliest of the values a concat hosts
 *      there), or the copy into it. Until then the slot's bytes hold nothing
 *      anyone reads, so a buffer whose last read comes before that step may
 *      live there: each buffer is first offered the lowest aligned place,
 *      within a run of adjacent slots all written after its last read, that
 *      overlaps no other buffer still live there; only if there is none does
 *      it go to the arena. Bytes between slots (alignment) are never used.
 *      The backward frees a layer's activations as it writes that layer's
 *      gradients, so what the forward keeps for the backward mostly fits in
 *      the slots of the layers the backward reaches later, and the arena
 *      holds the rest. Constants and iotas (computed inline by their readers)
 *      and collectives stay in the arena. grads_scratch_bytes is the peak of
 *      the bytes held there this way; the grads region holds the gradients
 *      once the entry returns, and scratch before (docs/step-abi.md).
 * A buffer is never reused by the kernel that last reads it, so a kernel's
 * output never overlaps its inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "sched_concat.h"

static int64_t align_up(int64_t x) { return (x + DPOC_REGION_ALIGN - 1) / DPOC_REGION_ALIGN * DPOC_REGION_ALIGN; }

void sched_plan_free(SchedPlan *p) {
    free(p->region);
    free(p->offset);
    free(p->kernels);
    free(p->members);
    free(p->copies);
    memset(p, 0, sizeof *p);
}

static int64_t value_bytes(const IrNode *n) { return ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype); }

static int needs_kernel(const IrNode *n) {
    return n->op != OP_PARAM && n->op != OP_INPUT && n->op != OP_RESHAPE;
}

typedef struct Live {
    int64_t off, size;
    int32_t last; /* last kernel step reading it */
} Live;

/* A gradient slot: bytes [off, off + size) of the grads region, first
 * written at step `from` (-1: before the first kernel). */
typedef struct Claim {
    int64_t off, size;
    int32_t from;
} Claim;

/* Drops from live[0..*n) (sorted by offset) the buffers read for the last
 * time before step t. */
static void release(Live *live, int32_t *n, int32_t t) {
    int32_t k = 0;
    for (int32_t i = 0; i < *n; i++)
        if (live[i].last >= t) live[k++] = live[i];
    *n = k;
}

/* The lowest offset >= lo at which size bytes overlap none of live[0..n)
 * (sorted by offset), and its insertion position in *pos; -1 when that
 * place would end past hi. */
static int64_t first_gap(const Live *live, int32_t n, int64_t lo, int64_t hi, int64_t size, int32_t *pos) {
    int64_t off = lo;
    int32_t i = 0;
    for (; i < n; i++) {
        int64_t end = live[i].off + live[i].size;
        if (end <= off) continue;
        if (off + size <= live[i].off) break;
        off = end;
    }
    *pos = i;
    return off + size <= hi ? off : -1;
}

/* A place in the gradient slots for size bytes last read at step last: the
 * lowest one inside a run of adjacent slots (sorted by offset) all written
 * after it; -1 when none. */
static int64_t grads_place(const Claim *cl, int32_t ncl, const Live *live, int32_t n, int64_t size, int32_t last,
                           int32_t *pos) {
    for (int32_t i = 0; i < ncl;) {
        if (cl[i].from <= last) {
            i++;
            continue;
        }
        int32_t j = i + 1;
        while (j < ncl && cl[j].from > last && cl[j].off == cl[j - 1].off + cl[j - 1].size) j++;
        int64_t lo = align_up(cl[i].off), hi = cl[j - 1].off + cl[j - 1].size;
        if (hi - lo >= size) {
            int64_t off = first_gap(live, n, lo, hi, size, pos);
            if (off >= 0) return off;
        }
        i = j;
    }
    return -1;
}

static void insert_live(Live *live, int32_t *n, int32_t pos, Live x) {
    memmove(&live[pos + 1], &live[pos], sizeof *live * (size_t)(*n - pos));
    live[pos] = x;
    (*n)++;
}

/* first-fit allocation over the arena buffers, in order of their first
 * write (start[]: the buffer's kernel, or a hosted value's if earlier);
 * those that may (see the header) go to the gradient slots cl[0..ncl)
 * (sorted by offset) when they fit there */
static int arena_alloc(SchedPlan *p, const IrGraph *g, const int32_t *buf_nodes, int32_t nbuf,
                       const int32_t *start, const int32_t *last, const Claim *cl, int32_t ncl, char *err,
                       size_t errlen) {
    Live *act = malloc(sizeof *act * (size_t)(nbuf ? nbuf : 1));
    Live *gl = malloc(sizeof *gl * (size_t)(nbuf ? nbuf : 1));
    if (!act || !gl) {
        free(act);
        free(gl);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int32_t nact = 0, ngl = 0; /* each sorted by offset */
    int64_t peak = 0, held = 0, held_peak = 0;
    for (int32_t b = 0; b < nbuf; b++) {
        int32_t id = buf_nodes[b];
        int32_t t = start[id];
        release(act, &nact, t);
        for (int32_t i = 0; i < ngl; i++)
            if (gl[i].last < t) held -= gl[i].size;
        release(gl, &ngl, t);
        const IrNode *x = ir_node(g, id);
        int64_t size = align_up(value_bytes(x));
        if (size == 0) size = DPOC_REGION_ALIGN;
        int32_t pos = 0;
        int movable = x->op != OP_CONST && x->op != OP_IOTA && !(ir_op_info[x->op].flags & OPF_COLLECTIVE);
        int64_t off = movable && ncl ? grads_place(cl, ncl, gl, ngl, size, last[id], &pos) : -1;
        if (off >= 0) {
            insert_live(gl, &ngl, pos, (Live){off, size, last[id]});
            p->region[id] = DPOC_R_GRADS;
            p->offset[id] = off;
            held += size;
            if (held > held_peak) held_peak = held;
            continue;
        }
        off = first_gap(act, nact, 0, INT64_MAX, size, &pos);
        insert_live(act, &nact, pos, (Live){off, size, last[id]});
        p->region[id] = DPOC_R_ARENA;
        p->offset[id] = off;
        if (off + size > peak) peak = off + size;
    }
    free(act);
    free(gl);
    p->arena_bytes = peak;
    p->grads_scratch_bytes = held_peak;
    return 0;
}

/* Orders the arena buffers by first write, ties by id (stable insertion
 * sort: starts only move earlier for hosts, so the ids are nearly sorted). */
static void sort_by_start(int32_t *bufs, int32_t nbuf, const int32_t *start) {
    for (int32_t i = 1; i < nbuf; i++) {
        int32_t b = bufs[i], j = i;
        for (; j > 0 && (start[bufs[j - 1]] > start[b] || (start[bufs[j - 1]] == start[b] && bufs[j - 1] > b)); j--)
            bufs[j] = bufs[j - 1];
        bufs[j] = b;
    }
}

/* the tensor-table slot of output i; NULL + err when it has none or differs */
static const TensorEntry *output_slot(const IrGraph *g, const TensorTable *tt, int32_t i, char *err, size_t errlen) {
    const IrOutput *o = &g->outs[i];
    const char *name = ir_str_get(g, o->name);
    const TensorEntry *e = tensor_table_find(tt, name, o->role == IR_OUT_GRAD ? TR_GRAD : TR_OUTPUT);
    if (!e) {
        snprintf(err, errlen, "output '%s' has no slot in the tensor table", name);
        return NULL;
    }
    const IrNode *n = ir_node(g, o->id);
    if (e->dtype != n->dtype || e->ndim != n->ndim || memcmp(e->shape, n->shape, (size_t)n->ndim * sizeof n->shape[0]) != 0) {
        snprintf(err, errlen, "output '%s' does not match its tensor-table slot's type", name);
        return NULL;
    }
    return e;
}

/* Fused graphs (IrGraph.kernels set by passes/fuse.c): one SchedKernel per
 * live kernel root, in root order (a kernel reads only lower ids, so this is
 * a valid order), its members and then the root as SchedKernel members.
 * Sets step[] of every root (-1 elsewhere); every live value that needs
 * computing must be a root or a member of some kernel. */
static int sched_fused_kernels(const IrGraph *g, SchedPlan *p, const uint8_t *live, int32_t *step, char *err,
                               size_t errlen) {
    int32_t n = g->n, nm = 0;
    uint8_t *covered = calloc((size_t)(n ? n : 1), 1);
    if (!covered) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int32_t id = 0; id < n; id++) step[id] = -1;
    if (g->nkernels > n || g->nkmembers > g->kmembercap) {
        snprintf(err, errlen, "%d kernels for %d values: the graph's kernel list is not verified", g->nkernels, n);
        free(covered);
        return -1;
    }
    for (int32_t i = 0; i < g->nkernels; i++) {
        const IrKernel *k = &g->kernels[i];
        int bad = k->root < 0 || k->root >= n || k->first < 0 || k->n < 0 || k->first + k->n > g->nkmembers;
        for (int32_t j = 0; j < k->n && !bad; j++) bad = g->kmembers[k->first + j] < 0 || g->kmembers[k->first + j] >= n;
        if (bad) {
            snprintf(err, errlen, "kernel %d names values outside the graph", (int)i);
            free(covered);
            return -1;
        }
        if (!live[k->root]) continue;
        SchedKernel *sk = &p->kernels[p->nkernels];
        sk->root = k->root;
        sk->first = nm;
        sk->nmembers = k->n + 1;
        for (int32_t j = 0; j < k->n; j++) covered[p->members[nm++] = g->kmembers[k->first + j]] = 1;
        p->members[nm++] = k->root;
        covered[k->root] = 1;
        step[k->root] = p->nkernels++;
    }
    for (int32_t id = 0; id < n; id++)
        if (live[id] && needs_kernel(ir_node(g, id)) && !covered[id]) {
            snprintf(err, errlen, "%%%d (%s) is neither a kernel root nor a member of one", id,
                     ir_op_info[ir_node(g, id)->op].name);
            free(covered);
            return -1;
        }
    free(covered);
    return 0;
}

/* Liveness of a fused graph: a kernel reads, at its step, every value it
 * reaches from its root through members (and constants, iota and reshapes
 * of them, which codegen always computes inline) that is not one of them;
 * such a value must have storage (a param, an input, a kernel root, or a
 * reshape of one). */
static int sched_fused_reads(const IrGraph *g, const SchedPlan *p, const int32_t *root, const int32_t *step,
                             int32_t *last, char *err, size_t errlen) {
    int32_t n = g->n;
    int32_t *mark = calloc((size_t)(n ? n : 1), sizeof *mark);
    int32_t *stack = malloc(sizeof *stack * (size_t)(n ? n : 1));
    int rc = 0;
    if (!mark || !stack) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (int32_t k = 0; k < p->nkernels && rc == 0; k++) {
        const SchedKernel *sk = &p->kernels[k];
        int32_t member = 2 * k + 1, seen = 2 * k + 2, sp = 0;
        for (int32_t j = 0; j < sk->nmembers; j++) mark[p->members[sk->first + j]] = member;
        stack[sp++] = sk->root;
        mark[sk->root] = seen;
        while (sp > 0 && rc == 0) {
            const IrNode *y = ir_node(g, stack[--sp]);
            for (int i = 0; i < ir_op_info[y->op].nin; i++) {
                int32_t x = y->in[i];
                if (mark[x] == seen) continue;
                const IrNode *base = ir_node(g, root[x]);
                if (mark[x] == member || base->op == OP_CONST || base->op == OP_IOTA) {
                    mark[x] = seen;
                    stack[sp++] = x;
                    continue;
                }
                mark[x] = seen;
                int32_t r = root[x];
                if (base->op != OP_PARAM && base->op != OP_INPUT && step[r] < 0) {
                    snprintf(err, errlen, "kernel %%%d reads %%%d (%s), which is neither stored nor one of its members",
                             sk->root, x, ir_op_info[ir_node(g, x)->op].name);
                    rc = -1;
                    break;
                }
                if (last[r] < k) last[r] = k;
            }
        }
    }
    free(mark);
    free(stack);
    return rc;
}

/* The gradient slots and when each is first written (header, 5.), sorted
 * by offset, into cl[]; returns their number. The outputs' slots were
 * checked by output_slot already. */
static int32_t grad_claims(const IrGraph *g, const TensorTable *tt, const SchedPlan *p, const int32_t *root,
                           const int32_t *start, Claim *cl) {
    int32_t ncl = 0;
    for (int32_t i = 0; i < g->nout; i++) {
        if (g->outs[i].role != IR_OUT_GRAD) continue;
        const TensorEntry *e = tensor_table_find(tt, ir_str_get(g, g->outs[i].name), TR_GRAD);
        if (!e || e->region != DPOC_R_GRADS) continue;
        const IrNode *n = ir_node(g, g->outs[i].id);
        Claim c = {e->offset, ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype), -1};
        int32_t r = root[g->outs[i].id];
        if (p->region[r] == DPOC_R_GRADS && p->offset[r] == e->offset) {
            c.from = start[r];
        } else {
            for (int32_t k = 0; k < p->ncopies; k++)
                if (p->copies[k].region == DPOC_R_GRADS && p->copies[k].offset == e->offset) c.from = p->copies[k].after;
        }
        if (c.from < 0) continue; /* written before the first kernel: never free */
        int32_t j = ncl++;
        for (; j > 0 && cl[j - 1].off > c.off; j--) cl[j] = cl[j - 1];
        cl[j] = c;
    }
    return ncl;
}

int sched_plan(const IrGraph *g, const TensorTable *tt, SchedPlan *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int32_t n = g->n;
    size_t nn = (size_t)(n ? n : 1);
    p->nnodes = n;
    p->region = malloc(nn);
    p->offset = calloc(nn, sizeof *p->offset);
    const int fused = g->nkernels > 0; /* the fuse pass ran: kernels come from the graph (fuse.c) */
    p->kernels = malloc(nn * sizeof *p->kernels);
    p->members = malloc(((size_t)g->nkmembers + nn) * sizeof *p->members);
    p->copies = malloc(sizeof *p->copies * (size_t)(g->nout ? g->nout : 1));
    uint8_t *live = calloc(nn, 1);
    int32_t *root = malloc(nn * sizeof *root);
    int32_t *step = malloc(nn * sizeof *step);
    int32_t *last = malloc(nn * sizeof *last);
    int32_t *bufs = malloc(nn * sizeof *bufs);
    uint8_t *placed = calloc(nn, 1);
    int32_t *host = malloc(nn * sizeof *host), *start = malloc(nn * sizeof *start);
    int64_t *hoff = calloc(nn, sizeof *hoff);
    Claim *cl = malloc(sizeof *cl * (size_t)(g->nout ? g->nout : 1));
    int32_t nbuf = 0, ncl = 0;
    if (!p->region || !p->offset || !p->kernels || !p->members || !p->copies || !live || !root || !step || !last ||
        !bufs || !placed || !host || !start || !hoff || !cl) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memset(p->region, -1, nn);

    for (int32_t i = 0; i < g->nout; i++) live[g->outs[i].id] = 1;
    for (int32_t id = n - 1; id >= 0; id--) {
        if (!live[id]) continue;
        const IrNode *x = ir_node(g, id);
        for (int k = 0; k < ir_op_info[x->op].nin; k++) live[x->in[k]] = 1;
    }
    /* 1. storage roots and kernel steps */
    if (fused && sched_fused_kernels(g, p, live, step, err, errlen)) goto fail;
    for (int32_t id = 0; id < n; id++) {
        const IrNode *x = ir_node(g, id);
        root[id] = x->op == OP_RESHAPE ? root[x->in[0]] : id;
        if (!fused) step[id] = -1;
        if (!fused && live[id] && needs_kernel(x)) {
            SchedKernel *k = &p->kernels[p->nkernels];
            k->root = id;
            k->first = p->nkernels;
            k->nmembers = 1;
            p->members[p->nkernels] = id;
            step[id] = p->nkernels++;
        }
    }
    /* 2. output slots */
    for (int32_t i = 0; i < g->nout; i++) {
        const TensorEntry *e = output_slot(g, tt, i, err, errlen);
        if (!e) goto fail;
        int32_t r = root[g->outs[i].id];
        if (fused && step[r] < 0 && needs_kernel(ir_node(g, r))) {
            snprintf(err, errlen, "output '%s' (%%%d) is computed inline by kernels but never stored",
                     ir_str_get(g, g->outs[i].name), g->outs[i].id);
            goto fail;
        }
        if (step[r] >= 0 && !placed[r]) {
            placed[r] = 1;
            p->region[r] = (int8_t)e->region;
            p->offset[r] = e->offset;
        } else {
            p->copies[p->ncopies++] = (SchedCopy){g->outs[i].id, e->region, e->offset, step[r]};
        }
    }
    /* concat placement (sched_concat.c): hosted values, dropped kernels;
     * then liveness starts at each value's (renumbered) kernel */
    for (int32_t id = 0; id < n; id++) host[id] = -1;
    if (fused && sched_place_concats(g, p, live, step, placed, host, hoff, err, errlen)) goto fail;
    for (int32_t id = 0; id < n; id++) last[id] = start[id] = step[id];
    /* 3. leaves, aliases, arena buffers; 4. liveness */
    for (int32_t id = 0; id < n; id++) {
        if (!live[id]) continue;
        const IrNode *x = ir_node(g, id);
        if (x->op == OP_PARAM || x->op == OP_INPUT) {
            const char *name = ir_str_get(g, x->name);
            TensorRole role = x->op == OP_INPUT ? TR_INPUT : x->attr[0] == IR_PARAM_TRAINABLE ? TR_PARAM : TR_REF_PARAM;
            const TensorEntry *e = tensor_table_find(tt, name, role);
            if (!e) {
                snprintf(err, errlen, "%s '%s' has no place in the tensor table", ir_op_info[x->op].name, name);
                goto fail;
            }
            if (e->dtype != x->dtype || e->ndim != x->ndim ||
                memcmp(e->shape, x->shape, (size_t)x->ndim * sizeof x->shape[0]) != 0) {
                snprintf(err, errlen, "%s '%s' does not match its tensor-table entry's type", ir_op_info[x->op].name, name);
                goto fail;
            }
            p->region[id] = (int8_t)e->region;
            p->offset[id] = e->offset;
            continue;
        }
        if (x->op == OP_RESHAPE) continue; /* placed below, once the root has its place */
        if (fused && step[id] < 0) continue; /* computed inline only: no storage */
        if (host[id] >= 0) { /* in its host's bytes, which must be there from its kernel on */
            if (start[host[id]] > start[id]) start[host[id]] = start[id];
            continue;
        }
        if (!placed[id]) bufs[nbuf++] = id;
        for (int k = 0; k < ir_op_info[x->op].nin && !fused; k++) {
            int32_t r = root[x->in[k]];
            if (last[r] < step[id]) last[r] = step[id];
        }
    }
    if (fused && sched_fused_reads(g, p, root, step, last, err, errlen)) goto fail;
    sort_by_start(bufs, nbuf, start);
    ncl = grad_claims(g, tt, p, root, start, cl);
    if (arena_alloc(p, g, bufs, nbuf, start, last, cl, ncl, err, errlen) < 0) goto fail;
    for (int32_t id = n - 1; id >= 0; id--) { /* hosts have higher ids than what they host */
        if (host[id] < 0) continue;
        p->region[id] = p->region[host[id]];
        p->offset[id] = p->offset[host[id]] + hoff[id];
    }
    for (int32_t id = 0; id < n; id++) {
        if (!live[id] || ir_node(g, id)->op != OP_RESHAPE) continue;
        p->region[id] = p->region[root[id]];
        p->offset[id] = p->offset[root[id]];
    }
    free(live);
    free(root);
    free(step);
    free(last);
    free(bufs);
    free(placed);
    free(host);
    free(start);
    free(hoff);
    free(cl);
    return 0;
fail:
    free(live);
    free(root);
    free(step);
    free(last);
    free(bufs);
    free(placed);
    free(host);
    free(start);
    free(hoff);
    free(cl);
    sched_plan_free(p);
    return -1;
}
