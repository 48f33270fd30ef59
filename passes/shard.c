/* shard.c — the sharding pass: one global graph in, one rank's program out.
 *
 * The front end builds the graph with GLOBAL shapes (the whole dp x tp
 * micro-batch, unsplit parameters). This pass walks it in id order and
 * rebuilds every value as the block one rank holds, recording per value a
 * sharding Sh: for each dim the mesh axis splitting it (or none) and a group
 * count k (the dim reads as [k, ranks, n/(k*ranks)] with the rank index in
 * the middle: the sequences of a micro-batch are [chosen; rejected], so a dp
 * rank's sequences are two blocks, k = 2), plus a mask of axes with a pending
 * partial sum. Seeds: parameters by their role in the model (q/k/v, gate/up
 * and their biases split on dim 0 — column parallel; o/down on dim 1 — row
 * parallel; embedding and LM head on the vocabulary, dim 0; the rest
 * replicated), inputs on dim 0 over dp (k = 2, but k = 1 for an input
 * whose rows are pairs, {rows=pairs}: a packed step's tokens, targets,
 * positions and segments). Rules, per op (docs/passes.md):
 *  - elementwise ops take the union of their operands' shardings; a
 *    replicated operand that is cheap to rebuild (constant, iota, broadcast,
 *    elementwise of those, scatter/unpick) is re-emitted as its local block;
 *  - broadcast, reshape (the rank coordinate is followed through the flat
 *    index), permute, slice/pad/concat at whole groups move the sharding;
 *  - a sum over a split dim, and a matmul contracting a split dim, leave a
 *    partial value; linear ops carry partial sums, anything else first
 *    materialises them with an all_reduce over the axis;
 *  - a max over a split dim: local max, all_gather of the maxima, max;
 *  - attention and its gradient keep every operand's rows and columns whole
 *    and follow the batch dims (dp: sequences, tp: kv heads);
 *  - gather_rows, pick, scatter_add_rows and unpick over a split vocabulary
 *    work on the rank's rows with a mask (id in this rank's range) and leave
 *    a partial sum, so the full logits are never gathered.
 * Outputs: gradients take their parameter's sharding and are all-reduced
 * (tp first, then every dp reduction at the end, in output order, so that
 * codegen can bucket them); losses and values are all-reduced and must not
 * be split over tp. A final dce drops the replicated forms no one used.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "rebuild.h"

typedef struct Sh {
    int8_t ax[IR_MAX_DIMS];
    int32_t k[IR_MAX_DIMS];
    uint8_t partial;
} Sh;

typedef struct St {
    Rebuild r;
    const IrGraph *old;
    PassCtx *c;
    int D[IR_MESH_AXES];
    Sh *sh;
    int32_t *mat;
    int32_t cur;
} St;

static const char *axis_name(int a) { return a == IR_MESH_DP ? "dp" : "tp"; }

static int sfail(St *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sfail(St *s, const char *fmt, ...) {
    if (s->c->err[0]) return -1;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const IrNode *n = ir_node(s->old, s->cur);
    if (n->loc.file >= 0)
        snprintf(s->c->err, sizeof s->c->err, "%%%d (%s) at %s:%d:%d: %s", s->cur, ir_op_info[n->op].name,
                 ir_str_get(s->old, n->loc.file), n->loc.line, n->loc.col, msg);
    else
        snprintf(s->c->err, sizeof s->c->err, "%%%d (%s): %s", s->cur, ir_op_info[n->op].name, msg);
    return -1;
}

static void sh_none(Sh *h) {
    for (int d = 0; d < IR_MAX_DIMS; d++) h->ax[d] = IR_SHARD_NONE, h->k[d] = 1;
    h->partial = 0;
}

static int same_dims(const Sh *a, const Sh *b, int nd) {
    for (int d = 0; d < nd; d++)
        if (a->ax[d] != b->ax[d] || (a->ax[d] >= 0 && a->k[d] != b->k[d])) return 0;
    return 1;
}

/* local size of dim d of old node n under h */
static int64_t ldim(const St *s, const IrNode *n, const Sh *h, int d) {
    return h->ax[d] >= 0 ? n->shape[d] / s->D[h->ax[d]] : n->shape[d];
}

/* adds proto p to the new graph with h's sharding; -1 + err on failure */
static int32_t put(St *s, IrNode *p, const Sh *h) {
    for (int d = 0; d < IR_MAX_DIMS; d++) p->shard[d] = IR_SHARD_NONE;
    IrNode tmp = *p;
    char msg[256];
    if (ir_infer(&s->r.nw, &tmp, msg, sizeof msg) == 0)
        for (int d = 0; d < tmp.ndim; d++) p->shard[d] = h->ax[d];
    p->partial = h->partial;
    int32_t id = ir_add_node(&s->r.nw, p);
    if (id < 0) sfail(s, "%s", s->r.nw.err);
    return id;
}

static int32_t put2(St *s, IrOp op, int32_t a, int32_t b, const Sh *h) {
    IrNode p;
    ir_node_proto(&p, op);
    p.in[0] = a;
    p.in[1] = b;
    return put(s, &p, h);
}

static int32_t put_select(St *s, int32_t c, int32_t a, int32_t b, const Sh *h) {
    IrNode p;
    ir_node_proto(&p, OP_SELECT);
    p.in[0] = c;
    p.in[1] = a;
    p.in[2] = b;
    return put(s, &p, h);
}

/* a constant shaped like new node `like` */
static int32_t put_const_like(St *s, double v, IrDType t, int32_t like, const Sh *h) {
    if (like < 0) return -1;
    const IrNode *l = ir_node(&s->r.nw, like);
    IrNode p;
    ir_node_proto(&p, OP_CONST);
    p.dtype = (uint8_t)t;
    p.ndim = l->ndim;
    memcpy(p.shape, l->shape, sizeof p.shape);
    p.fval = v;
    Sh hh = *h;
    hh.partial = 0;
    return put(s, &p, &hh);
}

static int32_t put_reshape(St *s, int32_t a, int ndim, const int64_t *shape, const Sh *h) {
    IrNode p;
    ir_node_proto(&p, OP_RESHAPE);
    p.in[0] = a;
    p.ndim = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) p.shape[d] = shape[d];
    return put(s, &p, h);
}

static int32_t put_broadcast(St *s, int32_t a, int ndim, const int64_t *shape, const Sh *h) {
    IrNode p;
    ir_node_proto(&p, OP_BROADCAST);
    p.in[0] = a;
    p.ndim = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) p.shape[d] = shape[d];
    return put(s, &p, h);
}

/* new id with the partial sums over `axes` reduced (all_reduce per axis) */
static int32_t reduce_axes(St *s, int32_t nid, Sh *h, unsigned axes) {
    for (int a = 0; a < IR_MESH_AXES && nid >= 0; a++) {
        if (!(h->partial & axes & (1u << a))) continue;
        h->partial &= (uint8_t)~(1u << a);
        IrNode p;
        ir_node_proto(&p, OP_ALL_REDUCE);
        p.in[0] = nid;
        p.attr[0] = a;
        nid = put(s, &p, h);
    }
    return nid;
}

static unsigned axes_of(const Sh *h, int nd) {
    unsigned m = 0;
    for (int d = 0; d < nd; d++)
        if (h->ax[d] >= 0) m |= 1u << h->ax[d];
    return m;
}

static int32_t emit(St *s, int32_t old, const Sh *want, Sh *out);

/* map[old] with exactly want's dims; keep_partial 0 reduces pending sums.
 * h receives the result's sharding. */
static int32_t conform(St *s, int32_t old, const Sh *want, Sh *h, int keep_partial) {
    const IrNode *n = ir_node(s->old, old);
    int32_t id;
    if (same_dims(&s->sh[old], want, n->ndim)) {
        *h = s->sh[old];
        if (!keep_partial && h->partial) {
            if (s->mat[old] < 0) s->mat[old] = reduce_axes(s, s->r.map[old], h, 0xffu);
            h->partial = 0;
            return s->mat[old];
        }
        return s->r.map[old];
    }
    int32_t save = s->cur;
    s->cur = old;
    id = emit(s, old, want, h);
    s->cur = save;
    if (id >= 0 && !keep_partial) id = reduce_axes(s, id, h, 0xffu);
    return id;
}

/* map[old] in its own sharding, pending sums reduced */
static int32_t full(St *s, int32_t old, Sh *h) { return conform(s, old, &s->sh[old], h, 0); }

/* checks that no axis splits two dims or both splits a dim and is partial */
static int check_axes(St *s, const Sh *h, int nd) {
    unsigned used = 0;
    for (int d = 0; d < nd; d++) {
        if (h->ax[d] < 0) continue;
        if (used & (1u << h->ax[d])) return sfail(s, "mesh axis %s would split two dims", axis_name(h->ax[d]));
        used |= 1u << h->ax[d];
    }
    if (used & h->partial) return sfail(s, "mesh axis would both split a dim and hold a partial sum");
    return 0;
}

/* union of operand dims into t (dims 0..nd-1 of each operand, same rank) */
static int unite(St *s, Sh *t, const Sh *h, int nd) {
    for (int d = 0; d < nd; d++) {
        if (h->ax[d] < 0) continue;
        if (t->ax[d] < 0) {
            t->ax[d] = h->ax[d];
            t->k[d] = h->k[d];
        } else if (t->ax[d] != h->ax[d] || t->k[d] != h->k[d]) {
            return sfail(s, "operands are split differently along dim %d", d);
        }
    }
    return 0;
}

/* ---- this rank's range of a split vocabulary ------------------------------
 * ids (new id, i32, sharding hi) against rows [r*vl, (r+1)*vl): *in = 1
 * where the id is local, *cl = the local row (0 elsewhere). */
static int vocab_local(St *s, int axis, int64_t vl, int32_t ids, const Sh *hi, int32_t *in, int32_t *cl) {
    const IrNode *idn = ir_node(&s->r.nw, ids);
    int nd = idn->ndim;
    Sh none;
    sh_none(&none);
    IrNode p;
    ir_node_proto(&p, OP_AXIS_INDEX);
    p.dtype = DT_I32;
    p.attr[0] = axis;
    int32_t rk = put(s, &p, &none);
    int32_t vlc = put_const_like(s, (double)vl, DT_I32, rk, &none);
    int32_t off = put2(s, OP_MUL, rk, vlc, &none);
    int64_t ones[IR_MAX_DIMS], shp[IR_MAX_DIMS];
    for (int d = 0; d < nd; d++) ones[d] = 1, shp[d] = idn->shape[d];
    int32_t offr = put_reshape(s, off, nd, ones, &none);
    Sh hd = *hi;
    hd.partial = 0;
    int32_t offb = put_broadcast(s, offr, nd, shp, &hd);
    int32_t li = put2(s, OP_SUB, ids, offb, &hd);
    int32_t zero = put_const_like(s, 0, DT_I32, li, &hd);
    int32_t lt0 = put2(s, OP_CMP_LT, li, zero, &hd);
    int32_t ltv = put2(s, OP_CMP_LT, li, put_const_like(s, (double)vl, DT_I32, li, &hd), &hd);
    *in = put_select(s, lt0, zero, ltv, &hd);
    *cl = put_select(s, *in, li, zero, &hd);
    return *in < 0 || *cl < 0 ? -1 : 0;
}

/* mask (i32, ids' shape) broadcast over a trailing dim of size h */
static int32_t mask_rows(St *s, int32_t in, int64_t hsz, const Sh *hv) {
    const IrNode *m = ir_node(&s->r.nw, in);
    int64_t sh1[IR_MAX_DIMS], shb[IR_MAX_DIMS];
    int nd = m->ndim;
    for (int d = 0; d < nd; d++) sh1[d] = shb[d] = m->shape[d];
    sh1[nd] = 1;
    shb[nd] = hsz;
    Sh h1 = *hv;
    h1.partial = 0;
    h1.ax[nd] = IR_SHARD_NONE;
    int32_t r = put_reshape(s, in, nd + 1, sh1, &h1);
    h1.ax[nd] = hv->ax[nd];
    h1.k[nd] = hv->k[nd];
    return put_broadcast(s, r, nd + 1, shb, &h1);
}

/* ---- the rules -------------------------------------------------------------- */

static int is_zero_const(const IrNode *n) { return n->op == OP_CONST && n->fval == 0.0; }

static int32_t rule_elementwise(St *s, const IrNode *n, const Sh *want, Sh *out) {
    int nin = ir_op_info[n->op].nin, nd = n->ndim;
    Sh t;
    sh_none(&t);
    if (want) {
        t = *want;
        t.partial = 0;
    } else {
        for (int i = 0; i < nin; i++)
            if (unite(s, &t, &s->sh[n->in[i]], nd)) return -1;
    }
    if (check_axes(s, &t, nd)) return -1;
    int32_t x[IR_MAX_IN] = {0}; /* nin >= 2 for the binary ops below; GCC -O3 cannot see it */
    Sh h[IR_MAX_IN];
    for (int i = 0; i < nin; i++) {
        x[i] = conform(s, n->in[i], &t, &h[i], 1);
        if (x[i] < 0) return -1;
        x[i] = reduce_axes(s, x[i], &h[i], axes_of(&t, nd)); /* an axis cannot both split and sum */
    }
    uint8_t part = 0;
    switch ((IrOp)n->op) {
    case OP_NEG: case OP_STOP_GRAD:
        part = h[0].partial;
        break;
    case OP_ADD: case OP_SUB: case OP_SELECT: {
        int first = n->op == OP_SELECT ? 1 : 0;
        if (first) x[0] = reduce_axes(s, x[0], &h[0], 0xffu);
        unsigned common = 0xffu;
        for (int i = first; i < nin; i++)
            if (!(n->op == OP_SELECT && is_zero_const(ir_node(s->old, n->in[i])))) common &= h[i].partial;
        for (int i = first; i < nin; i++) x[i] = reduce_axes(s, x[i], &h[i], ~common);
        unsigned any = 0;
        for (int i = first; i < nin; i++) any |= h[i].partial;
        part = (uint8_t)(common & any);
        break;
    }
    case OP_MUL:
        if (h[0].partial && h[1].partial) x[1] = reduce_axes(s, x[1], &h[1], 0xffu);
        part = h[0].partial | h[1].partial;
        break;
    case OP_DIV:
        x[1] = reduce_axes(s, x[1], &h[1], 0xffu);
        part = h[0].partial;
        break;
    default:
        for (int i = 0; i < nin; i++) x[i] = reduce_axes(s, x[i], &h[i], 0xffu);
        break;
    }
    for (int i = 0; i < nin; i++)
        if (x[i] < 0) return -1;
    IrNode p;
    ir_node_proto(&p, (IrOp)n->op);
    p.dtype = n->dtype;
    p.flags = n->flags;
    for (int i = 0; i < nin; i++) p.in[i] = x[i];
    *out = t;
    out->partial = part;
    return put(s, &p, out);
}

static int32_t rule_leaf(St *s, int32_t old, const IrNode *n, const Sh *want, Sh *out) {
    Sh t;
    sh_none(&t);
    if (want) t = *want, t.partial = 0;
    if (n->op == OP_PARAM || n->op == OP_INPUT) {
        if (want && !same_dims(want, &s->sh[old], n->ndim))
            return sfail(s, "%s '%s' is needed split in a way its annotation does not give", ir_op_info[n->op].name,
                         ir_str_get(s->old, n->name));
        t = s->sh[old];
    }
    if (n->op == OP_IOTA && t.ax[n->attr[0]] >= 0) return sfail(s, "an iota along a split dim has no rule");
    if (n->op == OP_AXIS_INDEX) return sfail(s, "the graph is already sharded");
    IrNode p;
    if (rebuild_proto(&s->r, old, &p) < 0) return sfail(s, "an input was lost");
    p.loc.file = -1;
    p.loc.line = p.loc.col = 0;
    for (int d = 0; d < n->ndim; d++) p.shape[d] = ldim(s, n, &t, d);
    *out = t;
    return put(s, &p, out);
}

static int32_t rule_broadcast(St *s, const IrNode *n, const Sh *want, Sh *out) {
    const IrNode *a = ir_node(s->old, n->in[0]);
    const Sh *ha = &s->sh[n->in[0]];
    Sh t, ti;
    sh_none(&t);
    if (want) t = *want;
    else
        for (int d = 0; d < n->ndim; d++)
            if (a->shape[d] == n->shape[d]) t.ax[d] = ha->ax[d], t.k[d] = ha->k[d];
    ti = t;
    for (int d = 0; d < n->ndim; d++)
        if (a->shape[d] == 1 && n->shape[d] != 1) ti.ax[d] = IR_SHARD_NONE, ti.k[d] = 1;
    Sh hx;
    int32_t x = conform(s, n->in[0], &ti, &hx, 1);
    if (x < 0) return -1;
    x = reduce_axes(s, x, &hx, axes_of(&t, n->ndim));
    int64_t shp[IR_MAX_DIMS];
    for (int d = 0; d < n->ndim; d++) shp[d] = ldim(s, n, &t, d);
    *out = t;
    out->partial = hx.partial;
    return put_broadcast(s, x, n->ndim, shp, out);
}

static int64_t prod(const int64_t *v, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= v[i];
    return p;
}

static int32_t rule_reshape(St *s, const IrNode *n, Sh *out) {
    const IrNode *a = ir_node(s->old, n->in[0]);
    const Sh *ha = &s->sh[n->in[0]];
    Sh t;
    sh_none(&t);
    for (int d = 0; d < a->ndim; d++) {
        int ax = ha->ax[d];
        if (ax < 0) continue;
        int64_t D = s->D[ax], m = a->shape[d] / (ha->k[d] * D);
        int64_t K = prod(a->shape, 0, d) * ha->k[d], B = m * prod(a->shape, d + 1, a->ndim);
        int found = -1;
        for (int j = 0; j < n->ndim && found < 0; j++) {
            int64_t bj = prod(n->shape, 0, j), aj = prod(n->shape, j + 1, n->ndim);
            if (n->shape[j] == 1 || K % bj != 0 || B % aj != 0) continue;
            if (n->shape[j] != (K / bj) * D * (B / aj)) continue;
            if (t.ax[j] >= 0) return sfail(s, "two mesh axes would split one dim of the reshape");
            t.ax[j] = (int8_t)ax;
            t.k[j] = (int32_t)(K / bj);
            found = j;
        }
        if (found < 0) return sfail(s, "no dim of the reshape result keeps dim %d split over %s", d, axis_name(ax));
    }
    int32_t x = s->r.map[n->in[0]];
    int64_t shp[IR_MAX_DIMS];
    for (int d = 0; d < n->ndim; d++) shp[d] = ldim(s, n, &t, d);
    *out = t;
    out->partial = ha->partial;
    return put_reshape(s, x, n->ndim, shp, out);
}

/* slice/pad/concat along dim ax of a split dim: whole groups only */
static int group_of(St *s, const IrNode *a, const Sh *h, int d, int64_t *G, int64_t *m) {
    int64_t D = s->D[h->ax[d]];
    *m = a->shape[d] / (h->k[d] * D);
    *G = D * *m;
    return 0;
}

static int32_t rule_movement(St *s, const IrNode *n, const Sh *want, Sh *out) {
    const IrNode *a = ir_node(s->old, n->in[0]);
    const Sh *ha = &s->sh[n->in[0]];
    IrNode p;
    ir_node_proto(&p, (IrOp)n->op);
    memcpy(p.attr, n->attr, sizeof p.attr);
    Sh t = *ha;
    int d = (int)n->attr[0];
    if (want && n->op != OP_PERMUTE && n->op != OP_CONCAT) {
        /* the moved dim keeps its own sharding; the others may be asked for */
        Sh ti = *want;
        ti.ax[d] = ha->ax[d];
        ti.k[d] = ha->k[d];
        Sh hx;
        int32_t x = conform(s, n->in[0], &ti, &hx, 1);
        if (x < 0) return -1;
        t = hx;
        p.in[0] = x;
    } else if (want) {
        return sfail(s, "no rule to split this %s differently", ir_op_info[n->op].name);
    } else {
        p.in[0] = s->r.map[n->in[0]];
    }
    switch ((IrOp)n->op) {
    case OP_PERMUTE:
        for (int i = 0; i < n->ndim; i++) t.ax[i] = ha->ax[n->attr[i]], t.k[i] = ha->k[n->attr[i]];
        break;
    case OP_SLICE: case OP_PAD:
        if (t.ax[d] >= 0) {
            int64_t G, m;
            group_of(s, a, &t, d, &G, &m);
            if (n->attr[1] % G || n->attr[2] % G)
                return sfail(s, "%s [%lld, %lld) of dim %d cuts across the %s blocks (of %lld)", ir_op_info[n->op].name,
                             (long long)n->attr[1], (long long)n->attr[2], d, axis_name(t.ax[d]), (long long)G);
            p.attr[1] = n->attr[1] / G * m;
            p.attr[2] = n->attr[2] / G * m;
            t.k[d] = n->op == OP_SLICE ? (int32_t)((n->attr[2] - n->attr[1]) / G)
                                       : (int32_t)(t.k[d] + n->attr[1] / G + n->attr[2] / G);
        }
        break;
    case OP_CONCAT: {
        const IrNode *b = ir_node(s->old, n->in[1]);
        Sh tb = s->sh[n->in[1]];
        Sh u = *ha;
        u.ax[d] = IR_SHARD_NONE;
        tb.ax[d] = IR_SHARD_NONE;
        if (unite(s, &u, &tb, n->ndim)) return -1;
        Sh wa = u, wb = u;
        wa.ax[d] = ha->ax[d], wa.k[d] = ha->k[d];
        wb.ax[d] = s->sh[n->in[1]].ax[d], wb.k[d] = s->sh[n->in[1]].k[d];
        Sh h0, h1;
        int32_t x0 = conform(s, n->in[0], &wa, &h0, 1), x1 = conform(s, n->in[1], &wb, &h1, 1);
        if (x0 < 0 || x1 < 0) return -1;
        unsigned common = h0.partial & h1.partial;
        x0 = reduce_axes(s, x0, &h0, ~common);
        x1 = reduce_axes(s, x1, &h1, ~common);
        t = u;
        t.partial = (uint8_t)common;
        if (wa.ax[d] != wb.ax[d]) return sfail(s, "concat of a split and an unsplit dim %d", d);
        if (wa.ax[d] >= 0) {
            int64_t Ga, ma, Gb, mb;
            group_of(s, a, &wa, d, &Ga, &ma);
            group_of(s, b, &wb, d, &Gb, &mb);
            if (ma != mb) return sfail(s, "concat of blocks of different sizes along dim %d", d);
            t.ax[d] = wa.ax[d];
            t.k[d] = wa.k[d] + wb.k[d];
        }
        p.in[0] = x0;
        p.in[1] = x1;
        *out = t;
        return put(s, &p, out);
    }
    default:
        break;
    }
    *out = t;
    return put(s, &p, out);
}

static int32_t rule_reduce(St *s, const IrNode *n, const Sh *want, Sh *out) {
    int r = (int)n->attr[0];
    const Sh *ha = &s->sh[n->in[0]];
    Sh ti = want ? *want : *ha;
    ti.ax[r] = ha->ax[r];
    ti.k[r] = ha->k[r];
    Sh hx;
    int32_t x = conform(s, n->in[0], &ti, &hx, n->op == OP_REDUCE_SUM);
    if (x < 0) return -1;
    int ax = hx.ax[r];
    Sh t = hx;
    t.ax[r] = IR_SHARD_NONE;
    t.k[r] = 1;
    IrNode p;
    ir_node_proto(&p, (IrOp)n->op);
    p.in[0] = x;
    p.attr[0] = r;
    if (n->op == OP_REDUCE_SUM) {
        if (ax >= 0) t.partial |= (uint8_t)(1u << ax);
        *out = t;
        return put(s, &p, out);
    }
    *out = t;
    if (ax < 0) return put(s, &p, out);
    /* max over a split dim: local max, gather every rank's maxima, max */
    int32_t m = put(s, &p, out);
    if (m < 0) return -1;
    const IrNode *mn = ir_node(&s->r.nw, m);
    int nd = mn->ndim;
    int64_t loc[IR_MAX_DIMS], flat[2] = {1, ir_numel(mn)};
    memcpy(loc, mn->shape, sizeof loc);
    Sh none;
    sh_none(&none);
    int32_t f = put_reshape(s, m, 2, flat, &none);
    IrNode gp;
    ir_node_proto(&gp, OP_ALL_GATHER);
    gp.in[0] = f;
    gp.attr[0] = ax;
    gp.attr[1] = 0;
    gp.attr[2] = s->D[ax];
    int32_t gat = put(s, &gp, &none);
    IrNode rp;
    ir_node_proto(&rp, OP_REDUCE_MAX);
    rp.in[0] = gat;
    rp.attr[0] = 0;
    int32_t mx = put(s, &rp, &none);
    return put_reshape(s, mx, nd, loc, out);
}

static int32_t rule_matmul(St *s, const IrNode *n, Sh *out) {
    int r = n->ndim, ta = (int)n->attr[0], tb = (int)n->attr[1];
    int am = ta ? r - 1 : r - 2, ak = ta ? r - 2 : r - 1, bk = tb ? r - 1 : r - 2, bn = tb ? r - 2 : r - 1;
    Sh tA = s->sh[n->in[0]], tB = s->sh[n->in[1]];
    for (int d = 0; d < r - 2; d++) {
        if (tA.ax[d] < 0) tA.ax[d] = tB.ax[d], tA.k[d] = tB.k[d];
        else if (tB.ax[d] < 0) tB.ax[d] = tA.ax[d], tB.k[d] = tA.k[d];
        else if (tA.ax[d] != tB.ax[d] || tA.k[d] != tB.k[d]) return sfail(s, "batch dim %d is split differently", d);
    }
    if (tA.ax[ak] < 0) tA.ax[ak] = tB.ax[bk], tA.k[ak] = tB.k[bk];
    else if (tB.ax[bk] < 0) tB.ax[bk] = tA.ax[ak], tB.k[bk] = tA.k[ak];
    else if (tA.ax[ak] != tB.ax[bk] || tA.k[ak] != tB.k[bk]) return sfail(s, "the contracted dim is split differently");
    if (check_axes(s, &tA, r) || check_axes(s, &tB, r)) return -1;
    Sh hA, hB;
    int32_t xa = conform(s, n->in[0], &tA, &hA, 1), xb = conform(s, n->in[1], &tB, &hB, 1);
    if (xa < 0 || xb < 0) return -1;
    if (hA.partial && hB.partial) xb = reduce_axes(s, xb, &hB, 0xffu);
    Sh t;
    sh_none(&t);
    for (int d = 0; d < r - 2; d++) t.ax[d] = tA.ax[d], t.k[d] = tA.k[d];
    t.ax[r - 2] = tA.ax[am], t.k[r - 2] = tA.k[am];
    t.ax[r - 1] = tB.ax[bn], t.k[r - 1] = tB.k[bn];
    unsigned split = axes_of(&t, r) | (tA.ax[ak] >= 0 ? 1u << tA.ax[ak] : 0);
    xa = reduce_axes(s, xa, &hA, split); /* an axis cannot both split and sum */
    xb = reduce_axes(s, xb, &hB, split);
    t.partial = hA.partial | hB.partial;
    if (tA.ax[ak] >= 0) t.partial |= (uint8_t)(1u << tA.ax[ak]);
    if (check_axes(s, &t, r)) return -1;
    IrNode p;
    ir_node_proto(&p, (IrOp)n->op);
    p.in[0] = xa;
    p.in[1] = xb;
    p.attr[0] = ta;
    p.attr[1] = tb;
    if (n->op == OP_MATMUL_MASKED) { /* the mask follows the dim it masks: A's rows or the contraction */
        int md = n->attr[2] == 0 ? am : ak;
        Sh wm, hm;
        sh_none(&wm);
        wm.ax[0] = tA.ax[md];
        wm.k[0] = tA.k[md];
        p.in[2] = conform(s, n->in[2], &wm, &hm, 0);
        p.attr[2] = n->attr[2];
        if (p.in[2] < 0) return -1;
    }
    *out = t;
    return put(s, &p, out);
}

/* attention, attention_grad: the batch dims of q, k, v (and out, g) united,
 * every operand's rows and columns whole (each query sees every key of its
 * sequence), segments split as q's first dim; the result is split as the
 * batch dims, with no partial sums (a softmax is not linear) */
static int32_t rule_attention(St *s, const IrNode *n, const Sh *want, Sh *out) {
    int r = n->ndim, nin = ir_op_info[n->op].nin;
    if (want) return sfail(s, "no rule to split an attention result differently");
    Sh w;
    sh_none(&w);
    for (int i = 0; i < nin; i++)
        if (i != 3 && unite(s, &w, &s->sh[n->in[i]], r - 2)) return -1;
    if (check_axes(s, &w, r)) return -1;
    Sh wseg, h;
    sh_none(&wseg);
    wseg.ax[0] = w.ax[0];
    wseg.k[0] = w.k[0];
    IrNode p;
    ir_node_proto(&p, (IrOp)n->op);
    for (int i = 0; i < nin; i++)
        if ((p.in[i] = conform(s, n->in[i], i == 3 ? &wseg : &w, &h, 0)) < 0) return -1;
    p.attr[0] = n->attr[0];
    p.attr[1] = n->attr[1];
    *out = w;
    return put(s, &p, out);
}

/* the leading dims of x (rank nd+1) and of ids (rank nd) united and conformed */
static int lead_pair(St *s, int32_t xo, int32_t io, int nd, int32_t *x, Sh *hx, int32_t *ids, Sh *hi, const Sh *want_last) {
    Sh u = s->sh[io];
    if (unite(s, &u, &s->sh[xo], nd)) return -1;
    Sh wx = u;
    wx.ax[nd] = want_last ? want_last->ax[nd] : s->sh[xo].ax[nd];
    wx.k[nd] = want_last ? want_last->k[nd] : s->sh[xo].k[nd];
    if (check_axes(s, &wx, nd + 1)) return -1;
    *x = conform(s, xo, &wx, hx, 1);
    *ids = conform(s, io, &u, hi, 0);
    return *x < 0 || *ids < 0 ? -1 : 0;
}


static int32_t rule_index(St *s, const IrNode *n, const Sh *want, Sh *out) {
    int32_t x, ids, in, cl;
    Sh hx, hi, t;
    switch ((IrOp)n->op) {
    case OP_GATHER_ROWS: { /* table [V,H], ids [...] -> [..., H] */
        const IrNode *ti = ir_node(s->old, n->in[1]);
        if (want) return sfail(s, "no rule to split a gather_rows result differently");
        x = s->r.map[n->in[0]]; /* a gather is linear in the table: its partial sums carry over */
        hx = s->sh[n->in[0]];
        ids = conform(s, n->in[1], &s->sh[n->in[1]], &hi, 0);
        if (x < 0 || ids < 0) return -1;
        t = hi;
        t.ax[ti->ndim] = hx.ax[1];
        t.k[ti->ndim] = hx.k[1];
        t.partial = hx.partial;
        if (check_axes(s, &t, n->ndim)) return -1;
        IrNode p;
        ir_node_proto(&p, OP_GATHER_ROWS);
        if (hx.ax[0] < 0) {
            p.in[0] = x;
            p.in[1] = ids;
            *out = t;
            return put(s, &p, out);
        }
        const IrNode *tn = ir_node(&s->r.nw, x);
        if (vocab_local(s, hx.ax[0], tn->shape[0], ids, &hi, &in, &cl)) return -1;
        p.in[0] = x;
        p.in[1] = cl;
        int32_t gr = put(s, &p, &t);
        int32_t mb = mask_rows(s, in, tn->shape[1], &t);
        t.partial |= (uint8_t)(1u << hx.ax[0]);
        *out = t;
        int32_t sel = put_select(s, mb, gr, put_const_like(s, 0, (IrDType)n->dtype, gr, &t), out);
        /* an embedding's rows feed several non-linear readers: sum them once, here */
        return reduce_axes(s, sel, out, 1u << hx.ax[0]);
    }
    case OP_SCATTER_ADD_ROWS: { /* vals [..., H], ids [...] -> [rows, H] */
        int nd = ir_node(s->old, n->in[1])->ndim;
        if (want && want->ax[1] != s->sh[n->in[0]].ax[nd]) return sfail(s, "no rule to split scatter_add_rows' columns");
        if (lead_pair(s, n->in[0], n->in[1], nd, &x, &hx, &ids, &hi, NULL)) return -1;
        sh_none(&t);
        t.ax[1] = hx.ax[nd];
        t.k[1] = hx.k[nd];
        t.partial = (uint8_t)(hx.partial | axes_of(&hi, nd));
        int ax = want ? want->ax[0] : IR_SHARD_NONE;
        IrNode p;
        ir_node_proto(&p, OP_SCATTER_ADD_ROWS);
        p.attr[0] = n->attr[0];
        if (ax < 0) {
            p.in[0] = x;
            p.in[1] = ids;
            *out = t;
            if (check_axes(s, out, 2)) return -1;
            return put(s, &p, out);
        }
        int64_t vl = n->attr[0] / s->D[ax];
        x = reduce_axes(s, x, &hx, 1u << ax);
        t.partial = (uint8_t)(hx.partial | axes_of(&hi, nd));
        if (vocab_local(s, ax, vl, ids, &hi, &in, &cl)) return -1;
        const IrNode *xn = ir_node(&s->r.nw, x);
        int32_t mb = mask_rows(s, in, xn->shape[xn->ndim - 1], &hx);
        Sh hm = hx;
        int32_t xm = put_select(s, mb, x, put_const_like(s, 0, (IrDType)n->dtype, x, &hx), &hm);
        p.in[0] = xm;
        p.in[1] = cl;
        p.attr[0] = vl;
        t.ax[0] = (int8_t)ax;
        t.k[0] = want->k[0];
        *out = t;
        if (check_axes(s, out, 2)) return -1;
        return put(s, &p, out);
    }
    case OP_PICK: { /* x [..., V], idx [...] -> [...] */
        int nd = n->ndim;
        if (want) return sfail(s, "no rule to split a pick result differently");
        if (lead_pair(s, n->in[0], n->in[1], nd, &x, &hx, &ids, &hi, NULL)) return -1;
        t = hi;
        t.partial = hx.partial;
        IrNode p;
        ir_node_proto(&p, OP_PICK);
        if (hx.ax[nd] < 0) {
            p.in[0] = x;
            p.in[1] = ids;
            *out = t;
            return put(s, &p, out);
        }
        const IrNode *xn = ir_node(&s->r.nw, x);
        if (vocab_local(s, hx.ax[nd], xn->shape[nd], ids, &hi, &in, &cl)) return -1;
        p.in[0] = x;
        p.in[1] = cl;
        int32_t pk = put(s, &p, &t);
        t.partial |= (uint8_t)(1u << hx.ax[nd]);
        *out = t;
        if (check_axes(s, out, nd)) return -1;
        return put_select(s, in, pk, put_const_like(s, 0, (IrDType)n->dtype, pk, &t), out);
    }
    case OP_UNPICK: { /* g [...], idx [...] -> [..., n] */
        int nd = ir_node(s->old, n->in[0])->ndim;
        Sh u = s->sh[n->in[1]];
        if (unite(s, &u, &s->sh[n->in[0]], nd)) return -1;
        if (want) {
            for (int d = 0; d < nd; d++)
                if (want->ax[d] != u.ax[d] && u.ax[d] >= 0) return sfail(s, "no rule to split unpick's rows differently");
            for (int d = 0; d < nd; d++) u.ax[d] = want->ax[d], u.k[d] = want->k[d];
        }
        x = conform(s, n->in[0], &u, &hx, 1);
        ids = conform(s, n->in[1], &u, &hi, 0);
        if (x < 0 || ids < 0) return -1;
        t = u;
        t.ax[nd] = IR_SHARD_NONE;
        t.k[nd] = 1;
        t.partial = hx.partial;
        int ax = want ? want->ax[nd] : IR_SHARD_NONE;
        IrNode p;
        ir_node_proto(&p, OP_UNPICK);
        p.attr[0] = n->attr[0];
        if (ax < 0) {
            p.in[0] = x;
            p.in[1] = ids;
            *out = t;
            return put(s, &p, out);
        }
        int64_t vl = n->attr[0] / s->D[ax];
        x = reduce_axes(s, x, &hx, 1u << ax);
        t.partial = hx.partial;
        if (vocab_local(s, ax, vl, ids, &hi, &in, &cl)) return -1;
        Sh hm = hx;
        int32_t xm = put_select(s, in, x, put_const_like(s, 0, (IrDType)n->dtype, x, &hx), &hm);
        p.in[0] = xm;
        p.in[1] = cl;
        p.attr[0] = vl;
        t.ax[nd] = (int8_t)ax;
        t.k[nd] = want->k[nd];
        *out = t;
        if (check_axes(s, out, nd + 1)) return -1;
        return put(s, &p, out);
    }
    default:
        return sfail(s, "not an indexing op");
    }
}

/* scatter_add_into(vals, ids, base) under a mesh, as add(base, scatter):
 * the result split as asked, else as the base (its rows: a vocabulary
 * split by tp) with the columns of the values; the scatter by its own rule
 * (rule_index) in that split, the base conformed to it, and the two added
 * as rule_elementwise adds (a pending sum common to both stays pending).
 * The local graph keeps the add: each rank's scatter is its block of rows. */
static int32_t rule_scatter_into(St *s, const IrNode *n, const Sh *want, Sh *out) {
    IrNode sc = *n;
    sc.op = OP_SCATTER_ADD_ROWS;
    sc.attr[0] = n->shape[0];
    Sh hs, hb, w;
    if (want) {
        w = *want;
    } else {
        const Sh *hv = &s->sh[n->in[0]];
        int nd = ir_node(s->old, n->in[1])->ndim;
        w = s->sh[n->in[2]];
        w.ax[1] = hv->ax[nd];
        w.k[1] = hv->k[nd];
    }
    w.partial = 0;
    int32_t xs = rule_index(s, &sc, &w, &hs);
    if (xs < 0) return -1;
    Sh t = hs;
    t.partial = 0;
    int32_t xb = conform(s, n->in[2], &t, &hb, 1);
    if (xb < 0) return -1;
    xb = reduce_axes(s, xb, &hb, axes_of(&t, 2));
    unsigned common = hb.partial & hs.partial;
    xb = reduce_axes(s, xb, &hb, ~common);
    xs = reduce_axes(s, xs, &hs, ~common);
    if (xb < 0 || xs < 0) return -1;
    IrNode p;
    ir_node_proto(&p, OP_ADD);
    p.dtype = n->dtype;
    p.flags = n->flags;
    p.in[0] = xb;
    p.in[1] = xs;
    *out = t;
    out->partial = (uint8_t)(common & (hb.partial | hs.partial));
    return put(s, &p, out);
}

/* the op's local form with sharding want (NULL: the natural one) */
static int32_t emit(St *s, int32_t old, const Sh *want, Sh *out) {
    const IrNode *n = ir_node(s->old, old);
    IrNode lp;
    if (rebuild_proto(&s->r, old, &lp) < 0) return sfail(s, "an input was lost");
    IrLoc saved = s->r.nw.cur_loc;
    s->r.nw.cur_loc = lp.loc;
    int32_t id;
    switch ((IrOp)n->op) {
    case OP_PARAM: case OP_INPUT: case OP_CONST: case OP_IOTA: case OP_AXIS_INDEX:
        id = rule_leaf(s, old, n, want, out);
        break;
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_LOG1P: case OP_SQRT: case OP_RSQRT: case OP_SIGMOID:
    case OP_ABS: case OP_COS: case OP_SIN: case OP_STOP_GRAD: case OP_CAST:
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_LT: case OP_SELECT:
        id = rule_elementwise(s, n, want, out);
        break;
    case OP_BROADCAST:
        id = rule_broadcast(s, n, want, out);
        break;
    case OP_RESHAPE:
        id = want ? sfail(s, "no rule to split a reshape result differently") : rule_reshape(s, n, out);
        break;
    case OP_PERMUTE: case OP_SLICE: case OP_PAD: case OP_CONCAT:
        id = rule_movement(s, n, want, out);
        break;
    case OP_REDUCE_SUM: case OP_REDUCE_MAX:
        id = rule_reduce(s, n, want, out);
        break;
    case OP_MATMUL: case OP_MATMUL_MASKED:
        id = want ? sfail(s, "no rule to split a matmul result differently") : rule_matmul(s, n, out);
        break;
    case OP_GATHER_ROWS: case OP_SCATTER_ADD_ROWS: case OP_PICK: case OP_UNPICK:
        id = rule_index(s, n, want, out);
        break;
    case OP_SCATTER_ADD_INTO:
        id = rule_scatter_into(s, n, want, out);
        break;
    case OP_ATTENTION: case OP_ATTENTION_GRAD:
        id = rule_attention(s, n, want, out);
        break;
    case OP_ALL_REDUCE: case OP_ALL_GATHER:
        id = sfail(s, "the graph is already sharded");
        break;
    default:
        id = sfail(s, "no sharding rule for this op");
        break;
    }
    s->r.nw.cur_loc = saved;
    if (id >= 0 && want && !same_dims(out, want, n->ndim)) return sfail(s, "the rule did not give the asked sharding");
    return id;
}

/* ---- seeds -------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* the tp-split dim of a parameter (by the front end's names), or -1 */
static int param_tp_dim(const char *name) {
    if (strncmp(name, "ref:", 4) == 0) name += 4;
    static const char *const col[] = {".q_proj.weight", ".k_proj.weight", ".v_proj.weight", ".gate_proj.weight",
                                      ".up_proj.weight", ".q_proj.bias", ".k_proj.bias", ".v_proj.bias",
                                      ".gate_proj.bias", ".up_proj.bias"};
    for (size_t i = 0; i < sizeof col / sizeof col[0]; i++)
        if (ends_with(name, col[i])) return 0;
    if (ends_with(name, ".o_proj.weight") || ends_with(name, ".down_proj.weight")) return 1;
    if (strcmp(name, "model.embed_tokens.weight") == 0 || strcmp(name, "lm_head.weight") == 0) return 0;
    return -1;
}

static int seed(St *s, int32_t id) {
    const IrNode *n = ir_node(s->old, id);
    Sh *h = &s->sh[id];
    sh_none(h);
    const char *name = ir_str_get(s->old, n->name);
    if (n->op == OP_PARAM && s->D[IR_MESH_TP] > 1) {
        int d = param_tp_dim(name);
        if (d >= 0 && d < n->ndim) {
            if (n->shape[d] % s->D[IR_MESH_TP] != 0)
                return sfail(s, "parameter '%s' dim %d has size %lld, which tp=%d does not divide", name, d,
                             (long long)n->shape[d], s->D[IR_MESH_TP]);
            h->ax[d] = IR_MESH_TP;
        }
    }
    if (n->op == OP_INPUT && s->D[IR_MESH_DP] > 1 && n->ndim >= 1) {
        /* sequences [chosen pairs; rejected pairs]: each dp rank holds its
         * pairs of both halves; rows of pairs (a packed step's): one block */
        int k = n->attr[0] == IR_INPUT_PAIRS ? 1 : 2;
        if (n->shape[0] % (k * s->D[IR_MESH_DP]) != 0)
            return sfail(s, "input '%s' dim 0 has size %lld, not %spairs x dp=%d", name, (long long)n->shape[0],
                         k == 2 ? "2 x " : "", s->D[IR_MESH_DP]);
        h->ax[0] = IR_MESH_DP;
        h->k[0] = k;
    }
    return 0;
}

/* ---- the pass ------------------------------------------------------------------- */

int pass_shard(IrGraph *g, PassCtx *c) {
    St s;
    memset(&s, 0, sizeof s);
    s.old = g;
    s.c = c;
    int any = 0;
    for (int a = 0; a < IR_MESH_AXES; a++) {
        s.D[a] = c->mesh[a] > 1 ? c->mesh[a] : 1;
        any |= s.D[a] > 1;
    }
    if (!any) return PASS_UNCHANGED;
    for (int32_t id = 0; id < g->n; id++) {
        const IrNode *n = ir_node(g, id);
        if (ir_op_info[n->op].flags & OPF_COLLECTIVE) {
            snprintf(c->err, sizeof c->err, "%%%d (%s): the graph is already sharded", id, ir_op_info[n->op].name);
            return PASS_ERROR;
        }
        for (int d = 0; d < n->ndim; d++)
            if (n->shard[d] != IR_SHARD_NONE || n->partial) {
                snprintf(c->err, sizeof c->err, "%%%d (%s): the graph is already sharded", id, ir_op_info[n->op].name);
                return PASS_ERROR;
            }
    }
    if (rebuild_begin(&s.r, g, c->err, sizeof c->err) < 0) return PASS_ERROR;
    size_t nn = (size_t)(g->n ? g->n : 1);
    s.sh = malloc(nn * sizeof *s.sh);
    s.mat = malloc(nn * sizeof *s.mat);
    int32_t *outv = malloc(sizeof *outv * (size_t)(g->nout ? g->nout : 1));
    Sh *outh = malloc(sizeof *outh * (size_t)(g->nout ? g->nout : 1));
    if (!s.sh || !s.mat || !outv || !outh) {
        snprintf(c->err, sizeof c->err, "out of memory");
        goto fail;
    }
    for (int32_t id = 0; id < g->n; id++) {
        s.cur = id;
        s.mat[id] = -1;
        const IrNode *n = ir_node(g, id);
        if ((n->op == OP_PARAM || n->op == OP_INPUT) && seed(&s, id)) goto fail;
        Sh h;
        int32_t nid = emit(&s, id, NULL, &h);
        if (nid < 0) goto fail;
        for (int d = n->ndim; d < IR_MAX_DIMS; d++) h.ax[d] = IR_SHARD_NONE, h.k[d] = 1;
        s.r.map[id] = nid;
        s.sh[id] = h;
    }
    /* outputs: grads in their param's sharding, tp sums first, then all dp sums */
    for (int32_t i = 0; i < g->nout; i++) {
        const IrOutput *o = &g->outs[i];
        const char *name = ir_str_get(g, o->name);
        s.cur = o->id;
        if (o->role == IR_OUT_GRAD) {
            int32_t p = ir_find_named(g, OP_PARAM, name);
            if (p < 0) {
                snprintf(c->err, sizeof c->err, "output \"%s\": grad of no param", name);
                goto fail;
            }
            outv[i] = conform(&s, o->id, &s.sh[p], &outh[i], 1);
            if (outv[i] >= 0) outv[i] = reduce_axes(&s, outv[i], &outh[i], 1u << IR_MESH_TP);
        } else {
            outv[i] = full(&s, o->id, &outh[i]);
            const IrNode *n = ir_node(g, o->id);
            for (int d = 0; d < n->ndim && outv[i] >= 0; d++)
                if (outh[i].ax[d] == IR_MESH_TP) {
                    sfail(&s, "output \"%s\" is split over tp along dim %d (only dp-split outputs are supported)", name, d);
                    goto fail;
                }
        }
        if (outv[i] < 0) goto fail;
    }
    for (int32_t i = 0; i < g->nout; i++) {
        s.cur = g->outs[i].id;
        outv[i] = reduce_axes(&s, outv[i], &outh[i], 0xffu);
        if (outv[i] < 0) goto fail;
        if (ir_add_output(&s.r.nw, ir_str_get(g, g->outs[i].name), outv[i], (IrOutRole)g->outs[i].role) < 0) {
            snprintf(c->err, sizeof c->err, "%s", s.r.nw.err);
            goto fail;
        }
    }
    free(s.sh);
    free(s.mat);
    free(outv);
    free(outh);
    rebuild_finish(&s.r, g);
    if (pass_dce(g, c) == PASS_ERROR) return PASS_ERROR;
    return PASS_CHANGED;
fail:
    if (!c->err[0]) snprintf(c->err, sizeof c->err, "%s", s.r.nw.err[0] ? s.r.nw.err : "failed");
    free(s.sh);
    free(s.mat);
    free(outv);
    free(outh);
    rebuild_abort(&s.r);
    return PASS_ERROR;
}
