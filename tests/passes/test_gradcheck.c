/* test_gradcheck.c — every differentiable op's gradient rule against central
 * differences, in double precision, through the reference interpreter.
 *
 * Each case builds y = op(params, inputs) in f64 and the harness appends
 * loss = sum(y * w) with a fixed random w (an input), so every element of
 * dL/dy is different and a rule that mixes up elements is caught. After
 * pass_autodiff the interpreter evaluates the gradient outputs; each element
 * is compared with (L(p + h) - L(p - h)) / 2h evaluated on the forward graph,
 * and must agree to 1e-6 relative (absolute below magnitude 1). Inputs are
 * drawn away from kinks (abs near 0, ties of max/min/reduce_max) and outside
 * the domains' edges (log, sqrt, rsqrt, div). The same gradients must come
 * out of the graph after pass_simplify (to 1e-12), every graph must pass
 * ir_verify, and its text must round-trip.
 */
#include <math.h>

#include "ir_interp.h"
#include "tpass.h"

enum { MAX_LEAVES = 8 };

typedef struct Leaf {
    char name[32];
    double *v;
    int64_t n;
    int trainable;
} Leaf;

typedef struct Case {
    IrGraph g;
    Leaf leaf[MAX_LEAVES];
    int nleaf;
    TRng rng;
} Case;

static Leaf *case_leaf(Case *c, const char *name, int nd, const int64_t *shape, int trainable) {
    Leaf *l = &c->leaf[c->nleaf++];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->n = 1;
    for (int d = 0; d < nd; d++) l->n *= shape[d];
    l->v = malloc(sizeof *l->v * (size_t)l->n);
    l->trainable = trainable;
    return l;
}

/* a trainable f64 param with values uniform in [lo, hi] */
static int32_t param(Case *c, const char *name, int nd, const int64_t *shape, double lo, double hi) {
    Leaf *l = case_leaf(c, name, nd, shape, 1);
    for (int64_t i = 0; i < l->n; i++) l->v[i] = t_uniform(&c->rng, lo, hi);
    return ir_param(&c->g, name, DT_F64, nd, shape, IR_PARAM_TRAINABLE);
}

/* a trainable param whose elements are at least `gap` away from zero */
static int32_t param_away0(Case *c, const char *name, int nd, const int64_t *shape, double gap) {
    Leaf *l = case_leaf(c, name, nd, shape, 1);
    for (int64_t i = 0; i < l->n; i++) {
        double m = t_uniform(&c->rng, gap, 2.0);
        l->v[i] = t_uniform(&c->rng, 0, 1) < 0.5 ? -m : m;
    }
    return ir_param(&c->g, name, DT_F64, nd, shape, IR_PARAM_TRAINABLE);
}

/* an input with given values (copied) */
static int32_t input(Case *c, const char *name, IrDType t, int nd, const int64_t *shape, const double *vals) {
    Leaf *l = case_leaf(c, name, nd, shape, 0);
    memcpy(l->v, vals, sizeof *l->v * (size_t)l->n);
    return ir_input(&c->g, name, t, nd, shape);
}

static Leaf *leaf_named(Case *c, const char *name) {
    for (int i = 0; i < c->nleaf; i++)
        if (strcmp(c->leaf[i].name, name) == 0) return &c->leaf[i];
    return NULL;
}

/* leaf values by node id for graph g (nodes found by name) */
static double **leaf_array(Case *c, const IrGraph *g) {
    double **a = calloc((size_t)g->n, sizeof *a);
    for (int32_t id = 0; id < g->n; id++) {
        const IrNode *n = ir_node(g, id);
        if (n->op != OP_PARAM && n->op != OP_INPUT) continue;
        Leaf *l = leaf_named(c, ir_str_get(g, n->name));
        if (l) a[id] = l->v;
    }
    return a;
}

static double eval_loss(Case *c, const IrGraph *g) {
    char err[256];
    double **leaf = leaf_array(c, g);
    double **v = ir_interp_run(g, leaf, 0, err, sizeof err);
    free(leaf);
    if (!v) {
        fprintf(stderr, "interp: %s\n", err);
        check_failures++;
        return NAN;
    }
    double L = ir_interp_output(g, v, "loss")[0];
    ir_interp_free(g, v);
    return L;
}

static double rel_err(double a, double b) {
    double m = fmax(1.0, fmax(fabs(a), fabs(b)));
    return fabs(a - b) / m;
}

static int ncases, nelems;

/* appends the loss to y, differentiates, and checks every gradient */
static void gradcheck(Case *c, int32_t y, const char *label) {
    IrGraph *g = &c->g;
    CHECK_MSG(y >= 0 && !g->err[0], "%s: building: %s", label, g->err);
    if (y < 0 || g->err[0]) return;
    IrNode yn = *ir_node(g, y);
    Leaf *wl = case_leaf(c, "w", yn.ndim, yn.shape, 0);
    for (int64_t i = 0; i < wl->n; i++) wl->v[i] = t_uniform(&c->rng, -1, 1);
    int32_t w = ir_input(g, "w", DT_F64, yn.ndim, yn.shape);
    int32_t loss = t_sum_all(g, ir_mul(g, y, w));
    CHECK_MSG(loss >= 0 && ir_add_output(g, "loss", loss, IR_OUT_LOSS) == 0, "%s: %s", label, g->err);
    if (loss < 0) return;

    IrGraph d, s;
    char err[512];
    CHECK(ir_copy(&d, g) == 0);
    PassCtx ctx = {0};
    int rc = pass_autodiff(&d, &ctx);
    CHECK_MSG(rc == PASS_CHANGED, "%s: autodiff: %s", label, ctx.err);
    CHECK_MSG(ir_verify(&d, err, sizeof err) == 0, "%s: verify after autodiff: %s", label, err);
    CHECK_MSG(t_roundtrip(&d), "%s: IR text does not round-trip", label);
    CHECK(ir_copy(&s, &d) == 0);
    rc = pass_simplify(&s, &ctx);
    CHECK_MSG(rc != PASS_ERROR, "%s: simplify: %s", label, ctx.err);
    CHECK_MSG(ir_verify(&s, err, sizeof err) == 0, "%s: verify after simplify: %s", label, err);

    double **ld = leaf_array(c, &d), **ls = leaf_array(c, &s);
    double **vd = ir_interp_run(&d, ld, 0, err, sizeof err);
    CHECK_MSG(vd, "%s: interp: %s", label, err);
    double **vs = ir_interp_run(&s, ls, 0, err, sizeof err);
    CHECK_MSG(vs, "%s: interp after simplify: %s", label, err);
    double worst = 0;
    const double h = 1e-5;
    for (int li = 0; vd && vs && li < c->nleaf; li++) {
        Leaf *l = &c->leaf[li];
        if (!l->trainable) continue;
        const double *gd = ir_interp_output(&d, vd, l->name);
        const double *gs = ir_interp_output(&s, vs, l->name);
        CHECK_MSG(gd && gs, "%s: no gradient output for %s", label, l->name);
        if (!gd || !gs) continue;
        for (int64_t e = 0; e < l->n; e++) {
            double x0 = l->v[e];
            l->v[e] = x0 + h;
            double lp = eval_loss(c, g);
            l->v[e] = x0 - h;
            double lm = eval_loss(c, g);
            l->v[e] = x0;
            double fd = (lp - lm) / (2 * h);
            double r = rel_err(gd[e], fd);
            if (r > worst) worst = r;
            CHECK_MSG(r <= 1e-6, "%s: d/d%s[%lld]: autodiff %.12g, central difference %.12g", label, l->name,
                      (long long)e, gd[e], fd);
            CHECK_MSG(rel_err(gd[e], gs[e]) <= 1e-12, "%s: d/d%s[%lld] after simplify %.17g vs %.17g", label,
                      l->name, (long long)e, gs[e], gd[e]);
            nelems++;
        }
    }
    printf("  %-28s max rel err %.2e  (%d -> %d nodes after simplify)\n", label, worst, (int)d.n, (int)s.n);
    ncases++;
    ir_interp_free(&d, vd);
    ir_interp_free(&s, vs);
    free(ld);
    free(ls);
    ir_free(&d);
    ir_free(&s);
}

static void case_begin(Case *c, uint64_t seed) {
    memset(c, 0, sizeof *c);
    ir_init(&c->g);
    c->rng.s = seed * 0x9e3779b97f4a7c15ull + 12345;
}

static void case_end(Case *c) {
    for (int i = 0; i < c->nleaf; i++) free(c->leaf[i].v);
    ir_free(&c->g);
}

/* ---- the cases -------------------------------------------------------- */

static const int64_t S34[2] = {3, 4};

static void unary_cases(void) {
    static const struct {
        IrOp op;
        double lo, hi;
    } u[] = {
        {OP_NEG, -2, 2},     {OP_EXP, -2, 2},      {OP_LOG, 0.3, 3},   {OP_LOG1P, -0.6, 2},
        {OP_SQRT, 0.3, 3},   {OP_RSQRT, 0.3, 3},   {OP_SIGMOID, -4, 4}, {OP_COS, -3, 3},
        {OP_SIN, -3, 3},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        Case c;
        case_begin(&c, 100 + i);
        int32_t x = param(&c, "x", 2, S34, u[i].lo, u[i].hi);
        gradcheck(&c, ir_unary(&c.g, u[i].op, x), ir_op_info[u[i].op].name);
        case_end(&c);
    }
    Case c;
    case_begin(&c, 120);
    int32_t x = param_away0(&c, "x", 2, S34, 0.2);
    gradcheck(&c, ir_unary(&c.g, OP_ABS, x), "abs");
    case_end(&c);
}

static void binary_cases(void) {
    static const IrOp ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        Case c;
        case_begin(&c, 200 + i);
        int32_t a = param(&c, "a", 2, S34, -2, 2);
        int32_t b = ops[i] == OP_DIV ? param_away0(&c, "b", 2, S34, 0.4) : param(&c, "b", 2, S34, -2, 2);
        gradcheck(&c, ir_binary(&c.g, ops[i], a, b), ir_op_info[ops[i]].name);
        case_end(&c);
    }
    /* max / min: operands differ by at least 0.2 in either direction */
    for (int k = 0; k < 2; k++) {
        IrOp op = k ? OP_MIN : OP_MAX;
        Case c;
        case_begin(&c, 210 + (uint64_t)k);
        int32_t a = param(&c, "a", 2, S34, -2, 2);
        Leaf *la = leaf_named(&c, "a");
        int32_t b = param_away0(&c, "b", 2, S34, 0.2);
        Leaf *lb = leaf_named(&c, "b");
        for (int64_t e = 0; e < lb->n; e++) lb->v[e] += la->v[e];
        gradcheck(&c, ir_binary(&c.g, op, a, b), ir_op_info[op].name);
        case_end(&c);
    }
    /* one value used twice: contributions accumulate */
    Case c;
    case_begin(&c, 220);
    int32_t x = param(&c, "x", 2, S34, -2, 2);
    gradcheck(&c, ir_mul(&c.g, x, x), "mul(x, x)");
    case_end(&c);
    case_begin(&c, 221);
    x = param_away0(&c, "x", 2, S34, 0.3);
    gradcheck(&c, ir_div(&c.g, ir_unary(&c.g, OP_EXP, x), x), "div(exp x, x)");
    case_end(&c);
}

static void select_case(void) {
    Case c;
    case_begin(&c, 300);
    double cv[12];
    for (int i = 0; i < 12; i++) cv[i] = (i * 7 % 5) < 2 ? 1.0 : 0.0;
    int32_t cond = input(&c, "c", DT_F64, 2, S34, cv);
    int32_t a = param(&c, "a", 2, S34, -2, 2);
    int32_t b = param(&c, "b", 2, S34, -2, 2);
    gradcheck(&c, ir_select(&c.g, cond, a, b), "select");
    case_end(&c);
}

static void movement_cases(void) {
    Case c;
    case_begin(&c, 400);
    int64_t s1[3] = {3, 1, 4}, s1o[3] = {3, 5, 4};
    int32_t x = param(&c, "x", 3, s1, -2, 2);
    gradcheck(&c, ir_broadcast(&c.g, x, 3, s1o), "broadcast [3,1,4]->[3,5,4]");
    case_end(&c);

    case_begin(&c, 401);
    int64_t s2[2] = {1, 1}, s2o[2] = {2, 3};
    x = param(&c, "x", 2, s2, -2, 2);
    gradcheck(&c, ir_broadcast(&c.g, x, 2, s2o), "broadcast [1,1]->[2,3]");
    case_end(&c);

    case_begin(&c, 402);
    int64_t r1[3] = {2, 3, 2};
    x = param(&c, "x", 2, S34, -2, 2);
    gradcheck(&c, ir_reshape(&c.g, x, 3, r1), "reshape [3,4]->[2,3,2]");
    case_end(&c);

    case_begin(&c, 403);
    int64_t p1[3] = {2, 3, 4};
    int perm[3] = {2, 0, 1};
    x = param(&c, "x", 3, p1, -2, 2);
    gradcheck(&c, ir_permute(&c.g, x, perm), "permute {2,0,1}");
    case_end(&c);

    case_begin(&c, 404);
    int64_t sl[2] = {4, 5};
    x = param(&c, "x", 2, sl, -2, 2);
    gradcheck(&c, ir_slice(&c.g, x, 1, 1, 4), "slice axis 1 [1,4)");
    case_end(&c);

    case_begin(&c, 405);
    x = param(&c, "x", 2, S34, -2, 2);
    gradcheck(&c, ir_pad(&c.g, x, 0, 1, 2), "pad axis 0 (1,2)");
    case_end(&c);

    case_begin(&c, 406);
    int64_t ca[2] = {3, 2};
    int32_t a = param(&c, "a", 2, ca, -2, 2);
    int32_t b = param(&c, "b", 2, S34, -2, 2);
    gradcheck(&c, ir_concat(&c.g, a, b, 1), "concat axis 1");
    case_end(&c);

    case_begin(&c, 407);
    x = param(&c, "x", 2, S34, -2, 2);
    gradcheck(&c, ir_concat(&c.g, x, ir_unary(&c.g, OP_SIN, x), 0), "concat(x, sin x) axis 0");
    case_end(&c);
}

static void reduce_cases(void) {
    int64_t s[3] = {3, 4, 5};
    for (int ax = 0; ax < 3; ax++) {
        Case c;
        case_begin(&c, 500 + (uint64_t)ax);
        int32_t x = param(&c, "x", 3, s, -2, 2);
        char label[64];
        snprintf(label, sizeof label, "reduce_sum axis %d", ax);
        gradcheck(&c, ir_reduce(&c.g, OP_REDUCE_SUM, x, ax), label);
        case_end(&c);
    }
    for (int ax = 0; ax < 3; ax++) {
        Case c;
        case_begin(&c, 510 + (uint64_t)ax);
        int32_t x = param(&c, "x", 3, s, 0, 1);
        /* distinct values, spaced by 1/60, so no ties and no near-ties */
        Leaf *l = leaf_named(&c, "x");
        for (int64_t i = 0; i < l->n; i++) l->v[i] = (double)((i * 37) % 60) / 60.0 - 0.5;
        char label[64];
        snprintf(label, sizeof label, "reduce_max axis %d", ax);
        gradcheck(&c, ir_reduce(&c.g, OP_REDUCE_MAX, x, ax), label);
        case_end(&c);
    }
}

static void matmul_cases(void) {
    const int64_t B = 2, M = 3, K = 4, N = 5;
    for (int batched = 0; batched < 2; batched++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                Case c;
                case_begin(&c, 600 + (uint64_t)(batched * 4 + ta * 2 + tb));
                int64_t sa[3], sb[3];
                int nd = batched ? 3 : 2, o = batched;
                sa[0] = sb[0] = B;
                sa[o] = ta ? K : M;
                sa[o + 1] = ta ? M : K;
                sb[o] = tb ? N : K;
                sb[o + 1] = tb ? K : N;
                int32_t a = param(&c, "a", nd, sa, -1, 1);
                int32_t b = param(&c, "b", nd, sb, -1, 1);
                char label[64];
                snprintf(label, sizeof label, "matmul%s ta=%d tb=%d", batched ? " batched" : "", ta, tb);
                gradcheck(&c, ir_matmul(&c.g, a, b, ta, tb), label);
                case_end(&c);
            }
    /* x^T x: both operands the same value */
    Case c;
    case_begin(&c, 610);
    int32_t x = param(&c, "x", 2, S34, -1, 1);
    gradcheck(&c, ir_matmul(&c.g, x, x, 1, 0), "matmul(x, x, 1, 0)");
    case_end(&c);
}

static void index_cases(void) {
    int64_t is[2] = {2, 3};
    double ids[6] = {1, 4, 1, 0, 5, 4}; /* repeats: contributions must add */
    Case c;
    case_begin(&c, 700);
    int64_t ts[2] = {6, 4};
    int32_t t = param(&c, "table", 2, ts, -1, 1);
    int32_t id = input(&c, "ids", DT_I32, 2, is, ids);
    gradcheck(&c, ir_gather_rows(&c.g, t, id), "gather_rows");
    case_end(&c);

    case_begin(&c, 701);
    int64_t vs[3] = {2, 3, 4};
    int32_t v = param(&c, "v", 3, vs, -1, 1);
    id = input(&c, "ids", DT_I32, 2, is, ids);
    gradcheck(&c, ir_scatter_add_rows(&c.g, v, id, 6), "scatter_add_rows");
    case_end(&c);

    double idx[6] = {0, 4, 2, 2, 1, 3};
    case_begin(&c, 702);
    int64_t xs[3] = {2, 3, 5};
    int32_t x = param(&c, "x", 3, xs, -1, 1);
    id = input(&c, "idx", DT_I32, 2, is, idx);
    gradcheck(&c, ir_pick(&c.g, x, id), "pick");
    case_end(&c);

    case_begin(&c, 703);
    x = param(&c, "x", 2, is, -1, 1);
    id = input(&c, "idx", DT_I32, 2, is, idx);
    gradcheck(&c, ir_unpick(&c.g, x, id, 5), "unpick");
    case_end(&c);
}

/* composites: log-softmax + pick (the log-prob path), a linear layer with
 * bias, an rmsnorm, and a sigmoid-DPO-like scalar */
static void composite_cases(void) {
    Case c;
    case_begin(&c, 800);
    int64_t xs[3] = {2, 3, 5}, is[2] = {2, 3};
    double idx[6] = {0, 4, 2, 2, 1, 3};
    IrGraph *g = &c.g;
    int32_t x = param(&c, "logits", 3, xs, -2, 2);
    int32_t id = input(&c, "idx", DT_I32, 2, is, idx);
    int32_t m = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, x, 2));
    int32_t sh = ir_sub(g, x, ir_broadcast(g, m, 3, xs));
    int32_t lse = ir_unary(g, OP_LOG, ir_reduce(g, OP_REDUCE_SUM, ir_unary(g, OP_EXP, sh), 2));
    int32_t logp = ir_sub(g, sh, ir_broadcast(g, lse, 3, xs));
    gradcheck(&c, ir_pick(g, logp, id), "log_softmax + pick");
    case_end(&c);

    case_begin(&c, 801);
    g = &c.g;
    int64_t xsh[3] = {2, 3, 4}, ws[2] = {5, 4}, bs[1] = {5}, wb[3] = {2, 5, 4};
    x = param(&c, "x", 3, xsh, -1, 1);
    int32_t w = param(&c, "W", 2, ws, -1, 1);
    int32_t b = param(&c, "bias", 1, bs, -1, 1);
    int32_t wbc = ir_broadcast(g, ir_reshape(g, w, 3, (int64_t[]){1, 5, 4}), 3, wb);
    int32_t y = ir_matmul(g, x, wbc, 0, 1);
    gradcheck(&c, ir_add(g, y, ir_bcast_to(g, b, y)), "linear (broadcast W, bias)");
    case_end(&c);

    case_begin(&c, 802);
    g = &c.g;
    int64_t hs[2] = {3, 6}, ns[1] = {6};
    x = param(&c, "h", 2, hs, -2, 2);
    int32_t nw = param(&c, "norm", 1, ns, 0.5, 1.5);
    int32_t ms = ir_scale(g, ir_reduce(g, OP_REDUCE_SUM, ir_mul(g, x, x), 1), 1.0 / 6);
    int32_t r = ir_unary(g, OP_RSQRT, ir_add(g, ms, ir_const_like(g, 1e-6, ms)));
    int32_t xn = ir_mul(g, x, ir_broadcast(g, r, 2, hs));
    gradcheck(&c, ir_mul(g, xn, ir_bcast_to(g, nw, xn)), "rmsnorm");
    case_end(&c);

    case_begin(&c, 803);
    g = &c.g;
    int64_t ps[1] = {4};
    int32_t pc = param(&c, "pc", 1, ps, -3, 3);
    int32_t pr = param(&c, "pr", 1, ps, -3, 3);
    int32_t z = ir_scale(g, ir_sub(g, pc, pr), 0.1);
    /* -logsigmoid(z) = log1p(exp(-|z|)) + max(-z, 0) */
    int32_t zero = ir_const_like(g, 0.0, z);
    int32_t l = ir_add(g, ir_unary(g, OP_LOG1P, ir_unary(g, OP_EXP, ir_unary(g, OP_NEG, ir_unary(g, OP_ABS, z)))),
                       ir_binary(g, OP_MAX, ir_unary(g, OP_NEG, z), zero));
    Leaf *lc = leaf_named(&c, "pc");
    Leaf *lr = leaf_named(&c, "pr");
    for (int i = 0; i < 4; i++) /* keep z away from 0 */
        if (fabs(lc->v[i] - lr->v[i]) < 0.5) lc->v[i] = lr->v[i] + (i % 2 ? 1.0 : -1.0);
    gradcheck(&c, l, "-logsigmoid (DPO-like)");
    case_end(&c);
}

/* attention: the op's rows (output and log-sum-exp column) against the same
 * attention composed of plain ops (matmul, a visibility mask worked out here
 * from the rule in ops.def, softmax, matmul), then its gradient rule (one
 * attention_grad sliced three ways) against central differences. Case 0:
 * causal, 2 query groups per kv row block, segments [prompt, response 1,
 * response 2]; case 1: not causal, the queries the last 2 of 5 positions. */
typedef struct AttnCase {
    int64_t S, H, G, Tq, T, D;
    int causal;
    double seg[2][5];
} AttnCase;

static int attn_case_visible(const AttnCase *a, int64_t s, int64_t r, int64_t j) {
    int64_t p = a->T - a->Tq + r % a->Tq;
    double sj = a->seg[s][j], sp = a->seg[s][p];
    return (!a->causal || j <= p) && (sj == 0 || sj == sp);
}

static void attention_cases(void) {
    static const AttnCase cases[2] = {
        {2, 2, 2, 4, 4, 3, 1, {{0, 0, 1, 2}, {0, 1, 1, 2}}},
        {2, 1, 2, 2, 5, 4, 0, {{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}},
    };
    for (int ci = 0; ci < 2; ci++) {
        const AttnCase *a = &cases[ci];
        int64_t M = a->G * a->Tq;
        int64_t sq[4] = {a->S, a->H, M, a->D}, sk[4] = {a->S, a->H, a->T, a->D}, ss[2] = {a->S, a->T};
        double segv[10];
        for (int64_t s = 0; s < a->S; s++)
            for (int64_t j = 0; j < a->T; j++) segv[s * a->T + j] = a->seg[s][j];
        Case c;
        case_begin(&c, 900 + (uint64_t)ci);
        IrGraph *g = &c.g;
        int32_t q = param(&c, "q", 4, sq, -1.5, 1.5), k = param(&c, "k", 4, sk, -1.5, 1.5);
        int32_t v = param(&c, "v", 4, sk, -1, 1);
        int32_t seg = input(&c, "seg", DT_I32, 2, ss, segv);
        int32_t att = ir_attention(g, q, k, v, seg, a->G, a->causal);

        /* the forward against plain ops: hidden scores to -inf, softmax, x v */
        int64_t sm[4] = {a->S, a->H, M, a->T};
        double *vis = malloc(sizeof *vis * (size_t)(a->S * a->H * M * a->T));
        for (int64_t s = 0; s < a->S; s++)
            for (int64_t h = 0; h < a->H; h++)
                for (int64_t r = 0; r < M; r++)
                    for (int64_t j = 0; j < a->T; j++)
                        vis[((s * a->H + h) * M + r) * a->T + j] = attn_case_visible(a, s, r, j) ? 0 : 1;
        int32_t hidden = input(&c, "hidden", DT_I32, 4, sm, vis);
        free(vis);
        int32_t sc = ir_matmul(g, q, k, 0, 1);
        sc = ir_select(g, hidden, ir_const_like(g, -INFINITY, sc), sc);
        int32_t mx = ir_reduce(g, OP_REDUCE_MAX, sc, 3);
        int32_t ex = ir_unary(g, OP_EXP, ir_sub(g, sc, ir_broadcast(g, mx, 4, sm)));
        int32_t z = ir_reduce(g, OP_REDUCE_SUM, ex, 3);
        int32_t o = ir_matmul(g, ir_div(g, ex, ir_broadcast(g, z, 4, sm)), v, 0, 0);
        int32_t lse = ir_add(g, mx, ir_unary(g, OP_LOG, z));
        CHECK_MSG(att >= 0 && lse >= 0 && !g->err[0], "attention case %d: %s", ci, g->err);
        ir_add_output(g, "att", att, IR_OUT_VALUE);
        ir_add_output(g, "ref_o", o, IR_OUT_VALUE);
        ir_add_output(g, "ref_lse", lse, IR_OUT_VALUE);
        char err[256];
        double **leaf = leaf_array(&c, g);
        double **vals = ir_interp_run(g, leaf, 0, err, sizeof err);
        free(leaf);
        CHECK_MSG(vals, "attention case %d: interp: %s", ci, err);
        if (vals) {
            const double *A = ir_interp_output(g, vals, "att"), *O = ir_interp_output(g, vals, "ref_o");
            const double *L = ir_interp_output(g, vals, "ref_lse");
            int64_t rows = a->S * a->H * M;
            for (int64_t r = 0; r < rows; r++) {
                for (int64_t d = 0; d < a->D; d++)
                    CHECK_MSG(fabs(A[r * (a->D + 1) + d] - O[r * a->D + d]) <= 1e-13,
                              "attention case %d row %lld col %lld: %.17g vs plain ops %.17g", ci, (long long)r,
                              (long long)d, A[r * (a->D + 1) + d], O[r * a->D + d]);
                CHECK_MSG(fabs(A[r * (a->D + 1) + a->D] - L[r]) <= 1e-13, "attention case %d row %lld lse: %.17g vs %.17g",
                          ci, (long long)r, A[r * (a->D + 1) + a->D], L[r]);
            }
            ir_interp_free(g, vals);
        }
        char label[48];
        snprintf(label, sizeof label, "attention %s G=%lld", a->causal ? "causal" : "full", (long long)a->G);
        gradcheck(&c, att, label);
        case_end(&c);
    }
}

int main(void) {
    unary_cases();
    binary_cases();
    select_case();
    movement_cases();
    reduce_cases();
    matmul_cases();
    index_cases();
    composite_cases();
    attention_cases();
    printf("%d cases, %d gradient elements checked\n", ncases, nelems);
    CHECK(ncases >= 40);
    return check_done("test_gradcheck");
}
