/* test_schedule.c — tensor_table_build and sched_plan.
 *
 * The tensor table: offsets, shared GRADS layout, decay flags, one output
 * slot per name across graphs, and the consistency errors. The schedule is
 * checked by brute force, independently of how it was computed:
 *   - every pair of arena buffers whose lifetimes (first write to last read,
 *     recomputed here from the kernel list, reshape aliases and copies)
 *     intersect occupies disjoint bytes; offsets are aligned; arena_bytes is
 *     the highest end of any buffer and at least the peak sum of live bytes;
 *     the same for buffers held in gradient slots before those are written
 *     (GRADS values that are not an output's root), which lie inside some
 *     gradient slot;
 *   - a byte-level simulation runs the plan: every kernel (and copy) first
 *     checks that the bytes of each value it reads still hold that value,
 *     then stamps its own bytes; at the end every output slot must hold its
 *     output's value. This catches any overlap or liveness mistake;
 *   - params and inputs sit at their table places, reshapes alias their
 *     input, outputs are in their slots or copied there, kernels are exactly
 *     the live non-leaf, non-reshape nodes in id order.
 */
#include "tpass.h"

static int64_t align64(int64_t x) { return (x + 63) / 64 * 64; }

static int64_t nbytes(const IrGraph *g, int32_t id) {
    const IrNode *n = ir_node(g, id);
    return ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype);
}

static int32_t root_of(const IrGraph *g, int32_t id) {
    while (ir_node(g, id)->op == OP_RESHAPE) id = ir_node(g, id)->in[0];
    return id;
}

typedef struct Sim {
    int32_t *tag[DPOC_R_COUNT];
    int64_t size[DPOC_R_COUNT];
} Sim;

static int sim_holds(Sim *s, const SchedPlan *p, const IrGraph *g, int32_t id) {
    int32_t r = root_of(g, id);
    int reg = p->region[r];
    if (reg < 0 || reg >= DPOC_R_COUNT) return 0;
    int64_t off = p->offset[r], n = nbytes(g, r);
    if (off < 0 || off + n > s->size[reg]) return 0;
    for (int64_t i = 0; i < n; i++)
        if (s->tag[reg][off + i] != r) return 0;
    return 1;
}

static void sim_stamp(Sim *s, int reg, int64_t off, int64_t n, int32_t tag) {
    if (off < 0 || off + n > s->size[reg]) {
        CHECK_MSG(0, "write outside region %d: [%lld, %lld) of %lld", reg, (long long)off, (long long)(off + n),
                  (long long)s->size[reg]);
        return;
    }
    for (int64_t i = 0; i < n; i++) s->tag[reg][off + i] = tag;
}

static void run_copies(Sim *s, const SchedPlan *p, const IrGraph *g, int32_t after) {
    for (int32_t i = 0; i < p->ncopies; i++) {
        const SchedCopy *c = &p->copies[i];
        if (c->after != after) continue;
        CHECK_MSG(sim_holds(s, p, g, c->node), "copy of %%%d reads overwritten bytes", (int)c->node);
        sim_stamp(s, c->region, c->offset, nbytes(g, c->node), root_of(g, c->node));
    }
}

/* checks everything about plan p for graph g and table tt */
static void check_plan(const IrGraph *g, const TensorTable *tt, const SchedPlan *p, const char *label) {
    int32_t n = g->n;
    CHECK(p->nnodes == n);
    /* liveness from outputs, independently */
    uint8_t *live = calloc((size_t)n, 1);
    for (int32_t i = 0; i < g->nout; i++) live[g->outs[i].id] = 1;
    for (int32_t id = n - 1; id >= 0; id--)
        if (live[id])
            for (int k = 0; k < ir_op_info[g->nodes[id].op].nin; k++) live[g->nodes[id].in[k]] = 1;
    /* kernels: every live non-leaf non-reshape node, in id order */
    int32_t *kstep = malloc(sizeof *kstep * (size_t)n);
    for (int32_t id = 0; id < n; id++) kstep[id] = -1;
    int32_t want = 0, prev = -1;
    for (int32_t id = 0; id < n; id++) {
        IrOp op = (IrOp)g->nodes[id].op;
        if (live[id] && op != OP_PARAM && op != OP_INPUT && op != OP_RESHAPE) want++;
        if (!live[id]) CHECK_MSG(p->region[id] == -1, "%s: dead %%%d has storage", label, (int)id);
    }
    CHECK_MSG(p->nkernels == want, "%s: %d kernels, want %d", label, (int)p->nkernels, (int)want);
    for (int32_t k = 0; k < p->nkernels; k++) {
        const SchedKernel *K = &p->kernels[k];
        CHECK(K->nmembers == 1 && p->members[K->first] == K->root);
        CHECK(K->root > prev);
        prev = K->root;
        kstep[K->root] = k;
    }
    /* leaves at their table places; reshapes alias */
    for (int32_t id = 0; id < n; id++) {
        if (!live[id]) continue;
        const IrNode *x = ir_node(g, id);
        if (x->op == OP_PARAM || x->op == OP_INPUT) {
            TensorRole role = x->op == OP_INPUT ? TR_INPUT : x->attr[0] == IR_PARAM_TRAINABLE ? TR_PARAM : TR_REF_PARAM;
            const TensorEntry *e = tensor_table_find(tt, ir_str_get(g, x->name), role);
            CHECK(e && p->region[id] == (int8_t)e->region && p->offset[id] == e->offset);
        } else if (x->op == OP_RESHAPE) {
            CHECK(p->region[id] == p->region[x->in[0]] && p->offset[id] == p->offset[x->in[0]]);
        } else {
            CHECK(p->region[id] >= 0);
        }
        CHECK(p->offset[id] % 64 == 0);
    }
    /* lifetimes of arena buffers: [write, last read] in kernel steps */
    int32_t *last = malloc(sizeof *last * (size_t)n);
    for (int32_t id = 0; id < n; id++) last[id] = kstep[id];
    for (int32_t k = 0; k < p->nkernels; k++) {
        const IrNode *x = ir_node(g, p->kernels[k].root);
        for (int j = 0; j < ir_op_info[x->op].nin; j++) {
            int32_t r = root_of(g, x->in[j]);
            if (last[r] < k) last[r] = k;
        }
    }
    for (int32_t i = 0; i < p->ncopies; i++) {
        int32_t r = root_of(g, p->copies[i].node);
        CHECK_MSG(p->copies[i].after == kstep[r], "%s: copy of %%%d runs after kernel %d, its value is made by %d",
                  label, (int)p->copies[i].node, (int)p->copies[i].after, (int)kstep[r]);
    }
    /* buffers in gradient slots: every GRADS value that is not an output's root */
    uint8_t *slot_root = calloc((size_t)n, 1);
    for (int32_t i = 0; i < g->nout; i++) slot_root[root_of(g, g->outs[i].id)] = 1;
    for (int32_t a = 0; a < n; a++) {
        if (!live[a] || p->region[a] != DPOC_R_GRADS || slot_root[a] || g->nodes[a].op == OP_RESHAPE) continue;
        int inside = 0;
        for (int32_t i = 0; i < g->nout && !inside; i++) {
            if (g->outs[i].role != IR_OUT_GRAD) continue;
            const TensorEntry *e = tensor_table_find(tt, ir_str_get(g, g->outs[i].name), TR_GRAD);
            inside = e && p->offset[a] >= e->offset && p->offset[a] < e->offset + nbytes(g, g->outs[i].id);
        }
        CHECK_MSG(inside, "%s: %%%d is in the grads region outside every gradient slot", label, (int)a);
        for (int32_t b = a + 1; b < n; b++) {
            if (!live[b] || p->region[b] != DPOC_R_GRADS || slot_root[b] || g->nodes[b].op == OP_RESHAPE) continue;
            int overlap_time = kstep[a] <= last[b] && kstep[b] <= last[a];
            int overlap_mem = p->offset[a] < p->offset[b] + nbytes(g, b) && p->offset[b] < p->offset[a] + nbytes(g, a);
            CHECK_MSG(!(overlap_time && overlap_mem), "%s: %%%d and %%%d overlap in GRADS while both live", label,
                      (int)a, (int)b);
        }
    }
    free(slot_root);
    int64_t top = 0, peak_live = 0;
    for (int32_t a = 0; a < n; a++) {
        if (!live[a] || p->region[a] != DPOC_R_ARENA || g->nodes[a].op == OP_RESHAPE) continue;
        int64_t ea = p->offset[a] + align64(nbytes(g, a));
        if (ea > top) top = ea;
        for (int32_t b = a + 1; b < n; b++) {
            if (!live[b] || p->region[b] != DPOC_R_ARENA || g->nodes[b].op == OP_RESHAPE) continue;
            int overlap_time = kstep[a] <= last[b] && kstep[b] <= last[a];
            int overlap_mem = p->offset[a] < p->offset[b] + nbytes(g, b) && p->offset[b] < p->offset[a] + nbytes(g, a);
            CHECK_MSG(!(overlap_time && overlap_mem), "%s: %%%d and %%%d overlap while both live", label, (int)a, (int)b);
        }
    }
    for (int32_t k = 0; k < p->nkernels; k++) {
        int64_t sum = 0;
        for (int32_t a = 0; a < n; a++)
            if (live[a] && p->region[a] == DPOC_R_ARENA && g->nodes[a].op != OP_RESHAPE && kstep[a] <= k && k <= last[a])
                sum += align64(nbytes(g, a));
        if (sum > peak_live) peak_live = sum;
    }
    CHECK_MSG(p->arena_bytes == top, "%s: arena_bytes %lld, highest buffer end %lld", label, (long long)p->arena_bytes,
              (long long)top);
    CHECK(p->arena_bytes >= peak_live);

    /* byte-level simulation */
    Sim s;
    memset(&s, 0, sizeof s);
    for (int r = 0; r < DPOC_R_COUNT; r++) {
        s.size[r] = r == DPOC_R_ARENA ? p->arena_bytes : tt->region_size[r];
        s.tag[r] = malloc(sizeof *s.tag[r] * (size_t)(s.size[r] + 1));
        for (int64_t i = 0; i < s.size[r]; i++) s.tag[r][i] = -1;
    }
    for (int32_t id = 0; id < n; id++)
        if (live[id] && (g->nodes[id].op == OP_PARAM || g->nodes[id].op == OP_INPUT))
            sim_stamp(&s, p->region[id], p->offset[id], nbytes(g, id), id);
    run_copies(&s, p, g, -1);
    for (int32_t k = 0; k < p->nkernels; k++) {
        int32_t id = p->kernels[k].root;
        const IrNode *x = ir_node(g, id);
        for (int j = 0; j < ir_op_info[x->op].nin; j++)
            CHECK_MSG(sim_holds(&s, p, g, x->in[j]), "%s: kernel %%%d reads %%%d, which was overwritten", label,
                      (int)id, (int)x->in[j]);
        sim_stamp(&s, p->region[id], p->offset[id], nbytes(g, id), id);
        run_copies(&s, p, g, k);
    }
    for (int32_t i = 0; i < g->nout; i++) {
        const IrOutput *o = &g->outs[i];
        const char *name = ir_str_get(g, o->name);
        const TensorEntry *e = tensor_table_find(tt, name, o->role == IR_OUT_GRAD ? TR_GRAD : TR_OUTPUT);
        CHECK_MSG(e, "%s: output %s has no slot", label, name);
        if (!e) continue;
        int32_t r = root_of(g, o->id);
        int ok = 1;
        for (int64_t b = 0; b < nbytes(g, o->id); b++) ok &= s.tag[e->region][e->offset + b] == r;
        CHECK_MSG(ok, "%s: output %s does not hold its value at the end", label, name);
    }
    for (int r = 0; r < DPOC_R_COUNT; r++) free(s.tag[r]);
    free(live);
    free(kstep);
    free(last);
}

/* a little model: embedding, a linear layer, a nonlinearity, two outputs */
static void build_model(IrGraph *g, int with_ref) {
    ir_init(g);
    int64_t ts[2] = {2, 3}, es[2] = {6, 4}, ws[2] = {5, 4}, bs[1] = {5}, hs[2] = {6, 4};
    int32_t tok = ir_input(g, "tokens", DT_I32, 2, ts);
    int32_t mask = ir_input(g, "mask", DT_F32, 2, ts);
    int32_t emb = ir_param(g, "emb", DT_F32, 2, es, IR_PARAM_TRAINABLE);
    int32_t w = ir_param(g, "w", DT_F32, 2, ws, IR_PARAM_TRAINABLE);
    int32_t b = ir_param(g, "b", DT_F32, 1, bs, IR_PARAM_TRAINABLE);
    int32_t h = ir_reshape(g, ir_gather_rows(g, emb, tok), 2, hs);
    int32_t y = ir_matmul(g, h, w, 0, 1);
    y = ir_unary(g, OP_SIGMOID, ir_add(g, y, ir_bcast_to(g, b, y)));
    int32_t seq = ir_reduce(g, OP_REDUCE_SUM, ir_reshape(g, y, 3, (int64_t[]){2, 3, 5}), 2); /* [2,3,1] */
    seq = ir_mul(g, ir_reshape(g, seq, 2, ts), mask);
    int32_t logps = ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, seq, 1), 1, (int64_t[]){2});
    if (with_ref) {
        int32_t rw = ir_param(g, "ref:w", DT_F32, 2, ws, IR_PARAM_FROZEN);
        int32_t ry = ir_unary(g, OP_SIGMOID, ir_matmul(g, h, rw, 0, 1));
        int32_t rl = ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, ir_reduce(g, OP_REDUCE_SUM, ir_reshape(g, ry, 3, (int64_t[]){2, 3, 5}), 2), 1), 1, (int64_t[]){2});
        logps = ir_sub(g, logps, rl);
    }
    int32_t loss = ir_unary(g, OP_NEG, t_sum_all(g, ir_unary(g, OP_LOG, ir_unary(g, OP_SIGMOID, logps))));
    CHECK_MSG(!g->err[0], "%s", g->err);
    CHECK(ir_add_output(g, "loss", loss, IR_OUT_LOSS) == 0);
    CHECK(ir_add_output(g, "logps", logps, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(g, "logps_again", logps, IR_OUT_VALUE) == 0); /* same node twice: one copy */
    CHECK(ir_add_output(g, "mask_out", mask, IR_OUT_VALUE) == 0);     /* an input: a copy */
}

static void test_model_plan(void) {
    for (int with_ref = 0; with_ref < 2; with_ref++) {
        IrGraph g;
        build_model(&g, with_ref);
        PassCtx c = {0};
        CHECK_MSG(pass_pipeline_run(&g, &c, "autodiff,simplify") == 0, "%s", c.err);
        IrGraph *gs[1] = {&g};
        TensorTable tt;
        char err[512];
        CHECK_MSG(tensor_table_build(&tt, gs, 1, err, sizeof err) == 0, "%s", err);
        SchedPlan p;
        CHECK_MSG(sched_plan(&g, &tt, &p, err, sizeof err) == 0, "%s", err);
        check_plan(&g, &tt, &p, with_ref ? "model+ref" : "model");
        CHECK(p.ncopies == 2); /* logps_again, mask_out */
        int nbefore = 0;
        for (int32_t i = 0; i < p.ncopies; i++) nbefore += p.copies[i].after == -1;
        CHECK(nbefore == 1); /* the input */
        /* the gradient of emb is a scatter_add_rows written straight into GRADS */
        const TensorEntry *ge = tensor_table_find(&tt, "emb", TR_GRAD);
        int32_t gid = g.outs[ir_find_output(&g, "emb")].id;
        int32_t r = root_of(&g, gid);
        CHECK(ge && p.region[r] == DPOC_R_GRADS && p.offset[r] == ge->offset);
        sched_plan_free(&p);
        tensor_table_free(&tt);
        ir_free(&g);
    }
}

/* builds g's tensor table and plan into *tt and *p and checks the plan */
static void plan_checked(IrGraph *g, TensorTable *tt, SchedPlan *p, const char *label) {
    IrGraph *gs[1] = {g};
    char err[512];
    CHECK_MSG(tensor_table_build(tt, gs, 1, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(sched_plan(g, tt, p, err, sizeof err) == 0, "%s", err);
    check_plan(g, tt, p, label);
}

/* first fit reuses a buffer once its last reader has run */
static void test_reuse_and_alias(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {16}, s2[2] = {4, 4}; /* 64 bytes each in f32 */
    int32_t x = ir_input(&g, "x", DT_F32, 1, s);
    int32_t a = ir_unary(&g, OP_EXP, x);
    int32_t b = ir_unary(&g, OP_SIN, a);
    int32_t c = ir_unary(&g, OP_COS, b);
    int32_t d = ir_unary(&g, OP_NEG, c);
    int32_t rd = ir_reshape(&g, d, 2, s2); /* output through an alias: d lands in the slot */
    int32_t e = ir_unary(&g, OP_ABS, c);
    int32_t f = ir_reshape(&g, e, 2, s2);
    int32_t h = ir_add(&g, ir_unary(&g, OP_EXP, f), f); /* f read after exp(f): e stays live */
    CHECK(ir_add_output(&g, "d", rd, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(&g, "h", h, IR_OUT_VALUE) == 0);
    TensorTable tt;
    SchedPlan p;
    plan_checked(&g, &tt, &p, "chain");
    CHECK(p.region[a] == DPOC_R_ARENA && p.region[b] == DPOC_R_ARENA && p.region[c] == DPOC_R_ARENA);
    CHECK(p.offset[a] == 0 && p.offset[b] == 64);
    CHECK(p.offset[c] == 0); /* a's last reader (sin) ran before cos */
    const TensorEntry *ed = tensor_table_find(&tt, "d", TR_OUTPUT);
    CHECK(ed && p.region[d] == DPOC_R_OUTPUTS && p.offset[d] == ed->offset);
    CHECK(p.region[rd] == DPOC_R_OUTPUTS && p.offset[rd] == ed->offset);
    CHECK(p.region[f] == p.region[e] && p.offset[f] == p.offset[e]);
    CHECK(p.ncopies == 0);
    CHECK(p.nkernels == 7); /* exp sin cos neg abs exp add */
    CHECK(p.arena_bytes == 128); /* a,c,exp f at 0; b,e at 64 */
    sched_plan_free(&p);
    tensor_table_free(&tt);
    ir_free(&g);
}

/* A gradient slot written late holds earlier temporaries: w's gradient is
 * the last kernel, so exp(x), read only by sin, lives in w's slot, then
 * abs(cos), read only by the mul before it; cos(sin) is read by the kernel
 * that writes the slot, and sin(exp) is written while exp(x) is still read,
 * so both stay in the arena. */
static void test_grads_scratch(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {16}; /* 64 bytes in f32 */
    int32_t x = ir_input(&g, "x", DT_F32, 1, s);
    int32_t w = ir_param(&g, "w", DT_F32, 1, s, IR_PARAM_TRAINABLE);
    int32_t a = ir_unary(&g, OP_EXP, x);
    int32_t b = ir_unary(&g, OP_SIN, a);
    int32_t c = ir_unary(&g, OP_COS, b);
    int32_t d = ir_unary(&g, OP_ABS, c);
    int32_t gw = ir_add(&g, ir_mul(&g, d, w), c); /* c is read by the slot's own kernel */
    CHECK(ir_add_output(&g, "loss", t_sum_all(&g, ir_mul(&g, w, x)), IR_OUT_LOSS) == 0);
    CHECK(ir_add_output(&g, "w", gw, IR_OUT_GRAD) == 0);
    TensorTable tt;
    SchedPlan p;
    plan_checked(&g, &tt, &p, "grads scratch");
    const TensorEntry *e = tensor_table_find(&tt, "w", TR_GRAD);
    CHECK(e && p.region[gw] == DPOC_R_GRADS && p.offset[gw] == e->offset);
    CHECK_MSG(p.region[a] == DPOC_R_GRADS && p.offset[a] == e->offset, "exp(x) in w's slot (region %d)", p.region[a]);
    CHECK(p.region[d] == DPOC_R_GRADS && p.offset[d] == e->offset);
    CHECK(p.region[b] == DPOC_R_ARENA && p.region[c] == DPOC_R_ARENA);
    CHECK(p.grads_scratch_bytes == 64);
    sched_plan_free(&p);
    tensor_table_free(&tt);
    ir_free(&g);
}

/* params as outputs, a zero gradient (const kernel), grads in GRADS */
static void test_param_outputs(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[2] = {3, 5};
    int32_t w = ir_param(&g, "w", DT_F32, 2, s, IR_PARAM_TRAINABLE);
    int32_t u = ir_param(&g, "u", DT_F32, 2, s, IR_PARAM_TRAINABLE);
    CHECK(ir_add_output(&g, "loss", t_sum_all(&g, ir_mul(&g, w, w)), IR_OUT_LOSS) == 0);
    CHECK(ir_add_output(&g, "u_value", u, IR_OUT_VALUE) == 0);
    PassCtx c = {0};
    CHECK_MSG(pass_pipeline_run(&g, &c, "autodiff,simplify") == 0, "%s", c.err);
    TensorTable tt;
    SchedPlan p;
    plan_checked(&g, &tt, &p, "params");
    int32_t gu = g.outs[ir_find_output(&g, "u")].id;
    CHECK(g.nodes[gu].op == OP_CONST && p.region[gu] == DPOC_R_GRADS);
    CHECK(p.ncopies == 1 && p.copies[0].after == -1 && p.copies[0].region == DPOC_R_OUTPUTS);
    sched_plan_free(&p);
    tensor_table_free(&tt);
    ir_free(&g);
}

static void test_table_layout(void) {
    IrGraph train, logps;
    build_model(&train, 1);
    PassCtx c = {0};
    CHECK_MSG(pass_pipeline_run(&train, &c, "autodiff,simplify") == 0, "%s", c.err);
    build_model(&logps, 0);
    /* the logps graph: forward only, one output */
    logps.nout = 0;
    int32_t lid = -1;
    for (int32_t i = 0; i < logps.n; i++)
        if (logps.nodes[i].op == OP_RESHAPE && logps.nodes[i].ndim == 1 && logps.nodes[i].shape[0] == 2) lid = i;
    CHECK(lid >= 0 && ir_add_output(&logps, "logps", lid, IR_OUT_VALUE) == 0);
    CHECK(pass_pipeline_run(&logps, &c, "simplify") == 0);
    IrGraph *gs[2] = {&train, &logps};
    TensorTable tt;
    char err[512];
    CHECK_MSG(tensor_table_build(&tt, gs, 2, err, sizeof err) == 0, "%s", err);
    /* first appearance order in train: emb, w, b */
    const TensorEntry *emb = tensor_table_find(&tt, "emb", TR_PARAM), *w = tensor_table_find(&tt, "w", TR_PARAM),
                      *b = tensor_table_find(&tt, "b", TR_PARAM);
    CHECK(emb && w && b);
    if (emb && w && b) {
        CHECK(emb->offset == 0 && w->offset == 128 && b->offset == 256); /* 96 and 80 bytes, aligned */
        CHECK(emb->decay == 1 && w->decay == 1 && b->decay == 0);
        CHECK(tt.region_size[DPOC_R_PARAMS] == 320);
        for (int r = DPOC_R_GRADS; r <= DPOC_R_ADAM_V; r++) CHECK(tt.region_size[r] == 320);
        const TensorEntry *gw = tensor_table_find(&tt, "w", TR_GRAD);
        CHECK(gw && gw->region == DPOC_R_GRADS && gw->offset == w->offset && gw->decay == 1);
    }
    const TensorEntry *rw = tensor_table_find(&tt, "ref:w", TR_REF_PARAM);
    CHECK(rw && rw->region == DPOC_R_REF_PARAMS && rw->offset == 0 && !tensor_table_find(&tt, "ref:w", TR_PARAM));
    CHECK(!tensor_table_find(&tt, "ref:w", TR_GRAD));
    const TensorEntry *tok = tensor_table_find(&tt, "tokens", TR_INPUT), *mask = tensor_table_find(&tt, "mask", TR_INPUT);
    CHECK(tok && mask && tok->region == DPOC_R_INPUTS && tok->dtype == DT_I32 && mask->offset == 64);
    int nlogps = 0;
    for (int32_t i = 0; i < tt.n; i++) nlogps += strcmp(tt.t[i].name, "logps") == 0;
    CHECK(nlogps == 1);
    /* both graphs schedule against the one table */
    for (int k = 0; k < 2; k++) {
        SchedPlan p;
        CHECK_MSG(sched_plan(gs[k], &tt, &p, err, sizeof err) == 0, "%s", err);
        check_plan(gs[k], &tt, &p, k ? "logps graph" : "train graph");
        sched_plan_free(&p);
    }
    tensor_table_free(&tt);

    /* errors: a param trainable in one graph and frozen in another; a shape clash */
    IrGraph a, bg;
    ir_init(&a);
    ir_init(&bg);
    int64_t s1[1] = {4}, s2[1] = {5};
    ir_param(&a, "p", DT_F32, 1, s1, IR_PARAM_TRAINABLE);
    ir_param(&bg, "p", DT_F32, 1, s1, IR_PARAM_FROZEN);
    IrGraph *ab[2] = {&a, &bg};
    CHECK(tensor_table_build(&tt, ab, 2, err, sizeof err) < 0 && strstr(err, "trainable in one graph and frozen"));
    ir_free(&bg);
    ir_init(&bg);
    ir_param(&bg, "p", DT_F32, 1, s2, IR_PARAM_TRAINABLE);
    CHECK(tensor_table_build(&tt, ab, 2, err, sizeof err) < 0 && strstr(err, "f32[4]") && strstr(err, "f32[5]"));
    ir_free(&a);
    ir_free(&bg);
    ir_free(&train);
    ir_free(&logps);
}

static void test_plan_errors(void) {
    IrGraph g, other;
    ir_init(&g);
    ir_init(&other);
    int64_t s[1] = {4};
    int32_t x = ir_input(&g, "x", DT_F32, 1, s);
    CHECK(ir_add_output(&g, "y", ir_unary(&g, OP_EXP, x), IR_OUT_VALUE) == 0);
    IrGraph *gs[1] = {&other};
    TensorTable tt;
    char err[256];
    CHECK(tensor_table_build(&tt, gs, 1, err, sizeof err) == 0);
    SchedPlan p;
    CHECK(sched_plan(&g, &tt, &p, err, sizeof err) < 0 && strstr(err, "no slot"));
    tensor_table_free(&tt);
    ir_free(&g);
    ir_free(&other);
}

int main(void) {
    test_model_plan();
    test_reuse_and_alias();
    test_param_outputs();
    test_grads_scratch();
    test_table_layout();
    test_plan_errors();
    return check_done("test_schedule");
}
