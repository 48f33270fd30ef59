/* test_codegen_grad.c — every differentiable op's gradient, as compiled code,
 * against central differences, in double precision.
 *
 * A group collects several cases into one graph: each case builds
 * y = op(params..., inputs...) in f64 and contributes sum(y * w) with its
 * own random input w, so every element of dL/dy differs and a rule that
 * mixes up elements is caught; the loss is the sum of the contributions.
 * pass_autodiff and pass_simplify run on the graph, the result is compiled
 * (tensor table, schedule, codegen) into a step.so, and train_step is run:
 * every gradient output is compared with (L(p + h) - L(p - h)) / 2h where L
 * is the loss computed by the same compiled train_step with the parameter
 * element moved by h = 1e-6 in its region. The relative error
 * |g - fd| / max(1, |g|, |fd|) must be <= 1e-6. Inputs are drawn away from
 * kinks (abs near 0, ties of max/min/reduce_max) and from the edges of the
 * ops' domains. The gradients of a run with uneven, out-of-order chunks
 * must be bitwise those of the serial run.
 *
 * Every op of ops.def that is neither a leaf nor OPF_NOGRAD must be the
 * main op of some case: the test fails when one is missing.
 */
#include <math.h>

#include "tcg.h"

enum { MAX_LEAVES = 64, MAX_TERMS = 32 };

typedef struct Leaf {
    char name[48];
    double *v;
    int64_t n;
    int trainable;
} Leaf;

typedef struct Group {
    IrGraph g;
    Leaf leaf[MAX_LEAVES];
    int nleaf;
    int32_t terms[MAX_TERMS];
    char labels[MAX_TERMS][64];
    int nterm;
    TcgRng rng;
    const char *label;
    char prefix[16]; /* "c<N>." names the current case's leaves */
} Group;

static uint8_t covered[OP_COUNT];

static void group_begin(Group *G, const char *label, uint64_t seed) {
    memset(G, 0, sizeof *G);
    ir_init(&G->g);
    G->label = label;
    G->rng.s = seed * 0x9e3779b97f4a7c15ull + 4242;
}

static void group_end(Group *G) {
    for (int i = 0; i < G->nleaf; i++) free(G->leaf[i].v);
    ir_free(&G->g);
}

static Leaf *new_leaf(Group *G, const char *name, int nd, const int64_t *shape, int trainable) {
    if (G->nleaf == MAX_LEAVES) {
        fprintf(stderr, "%s: too many leaves\n", G->label);
        exit(2);
    }
    Leaf *l = &G->leaf[G->nleaf++];
    snprintf(l->name, sizeof l->name, "%s%s", G->prefix, name);
    l->n = tcg_numel(nd, shape);
    l->v = malloc(sizeof *l->v * (size_t)l->n);
    l->trainable = trainable;
    return l;
}

static int32_t param(Group *G, const char *name, int nd, const int64_t *shape, double lo, double hi) {
    Leaf *l = new_leaf(G, name, nd, shape, 1);
    for (int64_t i = 0; i < l->n; i++) l->v[i] = tcg_uniform(&G->rng, lo, hi);
    return ir_param(&G->g, l->name, DT_F64, nd, shape, IR_PARAM_TRAINABLE);
}

/* elements at least `gap` away from zero, magnitudes up to 2 */
static int32_t param_away0(Group *G, const char *name, int nd, const int64_t *shape, double gap) {
    Leaf *l = new_leaf(G, name, nd, shape, 1);
    for (int64_t i = 0; i < l->n; i++) {
        double m = tcg_uniform(&G->rng, gap, 2.0);
        l->v[i] = tcg_uniform(&G->rng, 0, 1) < 0.5 ? -m : m;
    }
    return ir_param(&G->g, l->name, DT_F64, nd, shape, IR_PARAM_TRAINABLE);
}

static Leaf *leaf_named(Group *G, const char *name) {
    char full[64];
    snprintf(full, sizeof full, "%s%s", G->prefix, name);
    for (int i = 0; i < G->nleaf; i++)
        if (strcmp(G->leaf[i].name, full) == 0) return &G->leaf[i];
    return NULL;
}

static int32_t input(Group *G, const char *name, IrDType t, int nd, const int64_t *shape, const double *v) {
    Leaf *l = new_leaf(G, name, nd, shape, 0);
    memcpy(l->v, v, sizeof *v * (size_t)l->n);
    return ir_input(&G->g, l->name, t, nd, shape);
}

/* starts case `label` whose main op is op */
static void case_begin(Group *G, IrOp op) {
    covered[op] = 1;
    snprintf(G->prefix, sizeof G->prefix, "c%d.", G->nterm);
}

/* adds sum(y * w) to the loss */
static void case_end(Group *G, int32_t y, const char *label) {
    IrGraph *g = &G->g;
    CHECK_MSG(y >= 0 && !g->err[0], "%s: building %s: %s", G->label, label, g->err);
    if (y < 0 || G->nterm == MAX_TERMS) return;
    IrNode yn = *ir_node(g, y);
    Leaf *wl = new_leaf(G, "w", yn.ndim, yn.shape, 0);
    for (int64_t i = 0; i < wl->n; i++) wl->v[i] = tcg_uniform(&G->rng, -1, 1);
    int32_t w = ir_input(g, wl->name, DT_F64, yn.ndim, yn.shape);
    snprintf(G->labels[G->nterm], sizeof G->labels[0], "%s", label);
    G->terms[G->nterm++] = tcg_sum_all(g, ir_mul(g, y, w));
}

static double rel_err(double a, double b) { return fabs(a - b) / fmax(1.0, fmax(fabs(a), fabs(b))); }

static double run_loss(DpocStep *s) {
    double L = NAN;
    tcg_run(s, NULL);
    tcg_get(s, "loss", DPOC_ROLE_OUTPUT, &L, 1);
    return L;
}

static void group_run(Group *G) {
    IrGraph *g = &G->g;
    int32_t loss = -1;
    for (int i = 0; i < G->nterm; i++) loss = loss < 0 ? G->terms[i] : ir_add(g, loss, G->terms[i]);
    CHECK_MSG(loss >= 0 && ir_add_output(g, "loss", loss, IR_OUT_LOSS) == 0, "%s: %s", G->label, g->err);
    if (loss < 0) return;
    IrGraph d;
    CHECK(ir_copy(&d, g) == 0);
    PassCtx ctx;
    memset(&ctx, 0, sizeof ctx);
    CHECK_MSG(pass_autodiff(&d, &ctx) == PASS_CHANGED, "%s: autodiff: %s", G->label, ctx.err);
    CHECK_MSG(pass_simplify(&d, &ctx) != PASS_ERROR, "%s: simplify: %s", G->label, ctx.err);
    char err[512];
    CHECK_MSG(ir_verify(&d, err, sizeof err) == 0, "%s: verify: %s", G->label, err);
    DpocStep s;
    if (tcg_compile(&d, &s)) {
        ir_free(&d);
        return;
    }
    for (int i = 0; i < G->nleaf; i++)
        tcg_set(&s, G->leaf[i].name, G->leaf[i].trainable ? DPOC_ROLE_PARAM : DPOC_ROLE_INPUT, G->leaf[i].v);
    int64_t gsz = s.region_size[DPOC_R_GRADS];
    memset(s.regions[DPOC_R_GRADS], 0x5A, (size_t)gsz); /* every gradient element must be written */
    double L0 = run_loss(&s);
    CHECK_MSG(isfinite(L0), "%s: loss %g", G->label, L0);
    uint8_t *snap = malloc((size_t)(gsz ? gsz : 1));
    memcpy(snap, s.regions[DPOC_R_GRADS], (size_t)gsz);
    memset(s.regions[DPOC_R_GRADS], 0x5A, (size_t)gsz);
    tcg_chunk_seed = 1;
    tcg_run(&s, &tcg_chunked);
    CHECK_MSG(memcmp(snap, s.regions[DPOC_R_GRADS], (size_t)gsz) == 0, "%s: chunked gradients differ from serial", G->label);
    free(snap);

    /* every gradient is read before any parameter moves */
    double *grads[MAX_LEAVES] = {0};
    for (int li = 0; li < G->nleaf; li++) {
        Leaf *l = &G->leaf[li];
        if (!l->trainable) continue;
        grads[li] = malloc(sizeof(double) * (size_t)l->n);
        if (tcg_get(&s, l->name, DPOC_ROLE_GRAD, grads[li], l->n)) {
            free(grads[li]);
            grads[li] = NULL;
        }
    }
    const double h = 1e-6;
    double worst = 0;
    int nel = 0;
    for (int li = 0; li < G->nleaf; li++) {
        Leaf *l = &G->leaf[li];
        if (!grads[li]) continue;
        DpocTensorInfo ti;
        double *p = dpoc_step_find(&s, l->name, DPOC_ROLE_PARAM, &ti);
        CHECK_MSG(p && ti.dtype == DPOC_DT_F64, "%s: param %s missing", G->label, l->name);
        if (!p) continue;
        int term = atoi(l->name + 1);
        for (int64_t e = 0; e < l->n; e++) {
            double x0 = p[e];
            p[e] = x0 + h;
            double lp = run_loss(&s);
            p[e] = x0 - h;
            double lm = run_loss(&s);
            p[e] = x0;
            double fd = (lp - lm) / (2 * h);
            double r = rel_err(grads[li][e], fd);
            if (r > worst) worst = r;
            CHECK_MSG(r <= 1e-6, "%s / %s: d/d%s[%lld]: compiled %.12g, central difference %.12g", G->label,
                      G->labels[term], l->name, (long long)e, grads[li][e], fd);
            nel++;
        }
    }
    for (int li = 0; li < G->nleaf; li++) free(grads[li]);
    printf("  %-24s %2d cases, %4d elements, %3d kernels, max rel err %.2e\n", G->label, G->nterm, nel, s.nkernels,
           worst);
    dpoc_step_close(&s);
    ir_free(&d);
}

/* ---- the groups ------------------------------------------------------------- */
static const int64_t S34[2] = {3, 4};

static void unary_group(void) {
    static const struct {
        IrOp op;
        double lo, hi;
    } u[] = {
        {OP_NEG, -2, 2}, {OP_EXP, -2, 2},   {OP_LOG, 0.3, 3},    {OP_LOG1P, -0.6, 2}, {OP_SQRT, 0.3, 3},
        {OP_RSQRT, 0.3, 3}, {OP_SIGMOID, -4, 4}, {OP_COS, -3, 3}, {OP_SIN, -3, 3},
    };
    Group G;
    group_begin(&G, "unary", 1);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        case_begin(&G, u[i].op);
        int32_t x = param(&G, "x", 2, S34, u[i].lo, u[i].hi);
        case_end(&G, ir_unary(&G.g, u[i].op, x), ir_op_info[u[i].op].name);
    }
    case_begin(&G, OP_ABS);
    int32_t x = param_away0(&G, "x", 2, S34, 0.2);
    /* a param the loss never reaches (only a value output reads it): its
     * gradient output is a constant 0 placed in the gradient slot */
    int32_t unused = param(&G, "unused", 2, S34, -1, 1);
    CHECK(ir_add_output(&G.g, "unused_sin", ir_unary(&G.g, OP_SIN, unused), IR_OUT_VALUE) == 0);
    case_end(&G, ir_unary(&G.g, OP_ABS, x), "abs");
    group_run(&G);
    group_end(&G);
}

static void binary_group(void) {
    static const IrOp ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
    Group G;
    group_begin(&G, "binary, select", 2);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        case_begin(&G, ops[i]);
        int32_t a = param(&G, "a", 2, S34, -2, 2);
        int32_t b = ops[i] == OP_DIV ? param_away0(&G, "b", 2, S34, 0.4) : param(&G, "b", 2, S34, -2, 2);
        case_end(&G, ir_binary(&G.g, ops[i], a, b), ir_op_info[ops[i]].name);
    }
    for (int k = 0; k < 2; k++) { /* operands at least 0.2 apart */
        IrOp op = k ? OP_MIN : OP_MAX;
        case_begin(&G, op);
        int32_t a = param(&G, "a", 2, S34, -2, 2);
        int32_t b = param_away0(&G, "b", 2, S34, 0.2);
        Leaf *la = leaf_named(&G, "a"), *lb = leaf_named(&G, "b");
        for (int64_t e = 0; e < lb->n; e++) lb->v[e] += la->v[e];
        case_end(&G, ir_binary(&G.g, op, a, b), ir_op_info[op].name);
    }
    case_begin(&G, OP_SELECT);
    double cv[12];
    for (int i = 0; i < 12; i++) cv[i] = (i * 7 % 5) < 2;
    int32_t cnd = input(&G, "c", DT_F64, 2, S34, cv);
    int32_t a = param(&G, "a", 2, S34, -2, 2);
    int32_t b = param(&G, "b", 2, S34, -2, 2);
    case_end(&G, ir_select(&G.g, cnd, a, b), "select");
    case_begin(&G, OP_MUL);
    int32_t x = param(&G, "x", 2, S34, -2, 2);
    case_end(&G, ir_mul(&G.g, x, x), "mul(x, x)");
    group_run(&G);
    group_end(&G);
}

static void movement_group(void) {
    Group G;
    group_begin(&G, "movement", 3);
    int64_t s1[3] = {3, 1, 4}, s1o[3] = {3, 5, 4};
    case_begin(&G, OP_BROADCAST);
    int32_t x = param(&G, "x", 3, s1, -2, 2);
    case_end(&G, ir_broadcast(&G.g, x, 3, s1o), "broadcast [3,1,4]->[3,5,4]");
    int64_t s2[2] = {1, 1}, s2o[2] = {2, 3};
    case_begin(&G, OP_BROADCAST);
    x = param(&G, "x", 2, s2, -2, 2);
    case_end(&G, ir_broadcast(&G.g, x, 2, s2o), "broadcast [1,1]->[2,3]");
    int64_t r1[3] = {2, 3, 2};
    case_begin(&G, OP_RESHAPE);
    x = param(&G, "x", 2, S34, -2, 2);
    case_end(&G, ir_unary(&G.g, OP_SIN, ir_reshape(&G.g, x, 3, r1)), "sin(reshape [3,4]->[2,3,2])");
    int64_t p1[3] = {2, 3, 4};
    int perm[3] = {2, 0, 1};
    case_begin(&G, OP_PERMUTE);
    x = param(&G, "x", 3, p1, -2, 2);
    case_end(&G, ir_permute(&G.g, x, perm), "permute {2,0,1}");
    int64_t sl[2] = {4, 5};
    case_begin(&G, OP_SLICE);
    x = param(&G, "x", 2, sl, -2, 2);
    case_end(&G, ir_slice(&G.g, x, 1, 1, 4), "slice axis 1 [1,4)");
    case_begin(&G, OP_PAD);
    x = param(&G, "x", 2, S34, -2, 2);
    case_end(&G, ir_pad(&G.g, x, 0, 1, 2), "pad axis 0 (1,2)");
    int64_t ca[2] = {3, 2};
    case_begin(&G, OP_CONCAT);
    int32_t a = param(&G, "a", 2, ca, -2, 2);
    int32_t b = param(&G, "b", 2, S34, -2, 2);
    case_end(&G, ir_concat(&G.g, a, b, 1), "concat axis 1");
    case_begin(&G, OP_CONCAT);
    x = param(&G, "x", 2, S34, -2, 2);
    case_end(&G, ir_concat(&G.g, x, ir_unary(&G.g, OP_SIN, x), 0), "concat(x, sin x) axis 0");
    group_run(&G);
    group_end(&G);
}

static void reduce_group(void) {
    Group G;
    group_begin(&G, "reductions", 4);
    int64_t s[3] = {3, 4, 5};
    char label[64];
    for (int ax = 0; ax < 3; ax++) {
        case_begin(&G, OP_REDUCE_SUM);
        int32_t x = param(&G, "x", 3, s, -2, 2);
        snprintf(label, sizeof label, "reduce_sum axis %d", ax);
        case_end(&G, ir_reduce(&G.g, OP_REDUCE_SUM, x, ax), label);
    }
    for (int ax = 0; ax < 3; ax++) {
        case_begin(&G, OP_REDUCE_MAX);
        int32_t x = param(&G, "x", 3, s, 0, 1);
        Leaf *l = leaf_named(&G, "x"); /* distinct values 1/60 apart: no ties */
        for (int64_t i = 0; i < l->n; i++) l->v[i] = (double)((i * 37) % 60) / 60.0 - 0.5;
        snprintf(label, sizeof label, "reduce_max axis %d", ax);
        case_end(&G, ir_reduce(&G.g, OP_REDUCE_MAX, x, ax), label);
    }
    group_run(&G);
    group_end(&G);
}

static void matmul_group(void) {
    Group G;
    group_begin(&G, "matmul", 5);
    const int64_t B = 2, M = 3, K = 4, Nn = 5;
    char label[64];
    for (int batched = 0; batched < 2; batched++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t sa[3], sb[3];
                int nd = batched ? 3 : 2, o = batched;
                sa[0] = sb[0] = B;
                sa[o] = ta ? K : M;
                sa[o + 1] = ta ? M : K;
                sb[o] = tb ? Nn : K;
                sb[o + 1] = tb ? K : Nn;
                case_begin(&G, OP_MATMUL);
                int32_t a = param(&G, "a", nd, sa, -1, 1);
                int32_t b = param(&G, "b", nd, sb, -1, 1);
                snprintf(label, sizeof label, "matmul%s ta=%d tb=%d", batched ? " batched" : "", ta, tb);
                case_end(&G, ir_matmul(&G.g, a, b, ta, tb), label);
            }
    case_begin(&G, OP_MATMUL);
    int32_t x = param(&G, "x", 2, S34, -1, 1);
    case_end(&G, ir_matmul(&G.g, x, x, 1, 0), "matmul(x, x, 1, 0)");
    /* masked: dead rows (dim 0) or dead k (dim 1) must get no gradient
     * through the dropped terms; values <= 0 are dead */
    static const double rowmask[3] = {1, 0, 0.5}, kmask[4] = {0, 1, -1, 2};
    for (int dim = 0; dim < 2; dim++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t sa[2] = {ta ? K : M, ta ? M : K}, sb[2] = {tb ? Nn : K, tb ? K : Nn}, sm[1] = {dim ? K : M};
                case_begin(&G, OP_MATMUL_MASKED);
                int32_t a = param(&G, "a", 2, sa, -1, 1);
                int32_t b = param(&G, "b", 2, sb, -1, 1);
                int32_t m = input(&G, "mask", DT_F64, 1, sm, dim ? kmask : rowmask);
                snprintf(label, sizeof label, "matmul_masked dim=%d ta=%d tb=%d", dim, ta, tb);
                case_end(&G, ir_matmul_masked(&G.g, a, b, ta, tb, m, dim), label);
            }
    group_run(&G);
    group_end(&G);
}

static void index_group(void) {
    Group G;
    group_begin(&G, "indexing", 6);
    int64_t is[2] = {2, 3};
    static const double ids[6] = {1, 4, 1, 0, 5, 4}; /* repeats: contributions add */
    static const double idx[6] = {0, 4, 2, 2, 1, 3};
    int64_t ts[2] = {6, 4};
    case_begin(&G, OP_GATHER_ROWS);
    int32_t t = param(&G, "table", 2, ts, -1, 1);
    int32_t id = input(&G, "ids", DT_I32, 2, is, ids);
    case_end(&G, ir_gather_rows(&G.g, t, id), "gather_rows");
    int64_t vs[3] = {2, 3, 4};
    case_begin(&G, OP_SCATTER_ADD_ROWS);
    int32_t v = param(&G, "v", 3, vs, -1, 1);
    id = input(&G, "ids", DT_I32, 2, is, ids);
    case_end(&G, ir_scatter_add_rows(&G.g, v, id, 6), "scatter_add_rows");
    case_begin(&G, OP_SCATTER_ADD_INTO);
    v = param(&G, "v", 3, vs, -1, 1);
    id = input(&G, "ids", DT_I32, 2, is, ids);
    int32_t base = param(&G, "base", 2, ts, -1, 1);
    case_end(&G, ir_scatter_add_into(&G.g, v, id, base), "scatter_add_into");
    int64_t xs[3] = {2, 3, 5};
    case_begin(&G, OP_PICK);
    int32_t x = param(&G, "x", 3, xs, -1, 1);
    id = input(&G, "idx", DT_I32, 2, is, idx);
    case_end(&G, ir_pick(&G.g, x, id), "pick");
    case_begin(&G, OP_UNPICK);
    x = param(&G, "x", 2, is, -1, 1);
    id = input(&G, "idx", DT_I32, 2, is, idx);
    case_end(&G, ir_unpick(&G.g, x, id, 5), "unpick");
    group_run(&G);
    group_end(&G);
}

/* the shapes of a model: log-softmax + pick, a linear layer with bias, RMSNorm */
static void composite_group(void) {
    Group G;
    group_begin(&G, "composites", 7);
    IrGraph *g = &G.g;
    int64_t ls[3] = {2, 3, 5}, is[2] = {2, 3};
    static const double tgt[6] = {4, 0, 2, 1, 3, 3};
    case_begin(&G, OP_PICK);
    int32_t x = param(&G, "logits", 3, ls, -2, 2);
    int32_t mx = ir_reduce(g, OP_REDUCE_MAX, x, 2);
    int32_t sh = ir_sub(g, x, ir_broadcast(g, mx, 3, ls));
    int32_t lse = ir_unary(g, OP_LOG, ir_reduce(g, OP_REDUCE_SUM, ir_unary(g, OP_EXP, sh), 2));
    int32_t lp = ir_sub(g, sh, ir_broadcast(g, lse, 3, ls));
    int32_t id = input(&G, "targets", DT_I32, 2, is, tgt);
    case_end(&G, ir_pick(g, lp, id), "log_softmax + pick");

    int64_t xs[2] = {3, 4}, ws[2] = {5, 4}, bs[1] = {5}, os[2] = {3, 5}, b2[2] = {1, 5};
    case_begin(&G, OP_MATMUL);
    x = param(&G, "x", 2, xs, -1, 1);
    int32_t w = param(&G, "weight", 2, ws, -1, 1);
    int32_t b = param(&G, "bias", 1, bs, -1, 1);
    int32_t y = ir_add(g, ir_matmul(g, x, w, 0, 1), ir_broadcast(g, ir_reshape(g, b, 2, b2), 2, os));
    case_end(&G, y, "linear with bias");

    int64_t hs[2] = {3, 6}, h1[2] = {3, 1}, gs[1] = {6}, g2[2] = {1, 6};
    case_begin(&G, OP_RSQRT);
    x = param(&G, "h", 2, hs, -2, 2);
    int32_t gw = param(&G, "gamma", 1, gs, 0.5, 1.5);
    int32_t ms = ir_scale(g, ir_reduce(g, OP_REDUCE_SUM, ir_mul(g, x, x), 1), 1.0 / 6);
    int32_t r = ir_unary(g, OP_RSQRT, ir_add(g, ms, ir_const(g, 1e-6, DT_F64, 2, h1)));
    int32_t nrm = ir_mul(g, ir_mul(g, x, ir_broadcast(g, r, 2, hs)), ir_broadcast(g, ir_reshape(g, gw, 2, g2), 2, hs));
    case_end(&G, nrm, "rmsnorm");
    group_run(&G);
    group_end(&G);
}

int main(void) {
    unary_group();
    binary_group();
    movement_group();
    reduce_group();
    matmul_group();
    index_group();
    composite_group();
    for (int op = 0; op < OP_COUNT; op++) {
        unsigned f = ir_op_info[op].flags;
        if (f & (OPF_LEAF | OPF_NOGRAD | OPF_COLLECTIVE)) continue; /* collectives: the shard pass runs after autodiff */
        /* attention: its compiled gradient (attention_grad) against central differences of the compiled
         * forward is test_codegen_attention's; attention_grad has no gradient rule (autodiff refuses it) */
        if (op == OP_ATTENTION || op == OP_ATTENTION_GRAD) continue;
        CHECK_MSG(covered[op], "differentiable op %s has no compiled gradient check", ir_op_info[op].name);
    }
    return check_done("codegen gradients");
}
