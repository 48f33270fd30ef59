/* test_autodiff.c — structural properties of pass_autodiff.
 *
 * What gets a gradient and what does not: frozen params, inputs, values
 * flagged IR_F_NOGRAD, stop_grad/cast/cmp_lt paths; a trainable param the
 * loss does not reach gets a constant 0 of its shape; grad outputs are named
 * after the params, in id order; backward nodes keep the graph topological
 * and carry the location of the forward node they came from; accumulation
 * adds contributions; errors (no loss, two losses, running twice). Graphs come
 * from the builder and from IR text (ir_parse). Values are checked with the
 * reference interpreter against gradients worked out by hand.
 */
#include <math.h>

#include "ir_interp.h"
#include "tpass.h"

static int32_t grad_of(const IrGraph *g, const char *name) {
    int32_t i = ir_find_output(g, name);
    if (i < 0 || g->outs[i].role != IR_OUT_GRAD) return -1;
    return g->outs[i].id;
}

static int count_role(const IrGraph *g, IrOutRole role) {
    int k = 0;
    for (int32_t i = 0; i < g->nout; i++) k += g->outs[i].role == (int32_t)role;
    return k;
}

static int is_zero_const_like(const IrGraph *g, int32_t id, int32_t like) {
    if (id < 0) return 0;
    const IrNode *n = ir_node(g, id), *l = ir_node(g, like);
    return n->op == OP_CONST && n->fval == 0.0 && n->dtype == l->dtype && n->ndim == l->ndim &&
           memcmp(n->shape, l->shape, sizeof n->shape[0] * (size_t)n->ndim) == 0;
}

static int run_autodiff(IrGraph *g, PassCtx *c) {
    memset(c, 0, sizeof *c);
    int rc = pass_autodiff(g, c);
    char err[512];
    if (rc == PASS_CHANGED) CHECK_MSG(ir_verify(g, err, sizeof err) == 0, "verify: %s", err);
    return rc;
}

/* frozen params, inputs and consts get no gradient; unreached params get 0 */
static void test_what_gets_gradients(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[2] = {2, 3};
    int32_t w = ir_param(&g, "w", DT_F32, 2, s, IR_PARAM_TRAINABLE);
    int32_t r = ir_param(&g, "ref:w", DT_F32, 2, s, IR_PARAM_FROZEN);
    int32_t u = ir_param(&g, "unused", DT_F32, 2, s, IR_PARAM_TRAINABLE);
    int32_t sg = ir_param(&g, "stopped", DT_F32, 2, s, IR_PARAM_TRAINABLE);
    int32_t x = ir_input(&g, "x", DT_F32, 2, s);
    int32_t y = ir_add(&g, ir_mul(&g, w, x), ir_mul(&g, r, x));
    y = ir_add(&g, y, ir_unary(&g, OP_STOP_GRAD, sg));
    int32_t loss = t_sum_all(&g, y);
    CHECK(ir_add_output(&g, "loss", loss, IR_OUT_LOSS) == 0);
    CHECK(ir_add_output(&g, "u_value", u, IR_OUT_VALUE) == 0);
    int32_t nfwd = g.n;
    PassCtx c;
    CHECK_MSG(run_autodiff(&g, &c) == PASS_CHANGED, "%s", c.err);
    CHECK(count_role(&g, IR_OUT_GRAD) == 3); /* w, unused, stopped; never ref:w */
    CHECK(ir_find_output(&g, "ref:w") < 0);
    /* grad outputs follow param id order */
    CHECK(strcmp(ir_str_get(&g, g.outs[2].name), "w") == 0);
    CHECK(strcmp(ir_str_get(&g, g.outs[3].name), "unused") == 0);
    CHECK(strcmp(ir_str_get(&g, g.outs[4].name), "stopped") == 0);
    CHECK(is_zero_const_like(&g, grad_of(&g, "unused"), u));
    CHECK(is_zero_const_like(&g, grad_of(&g, "stopped"), sg));
    /* dL/dw = x exactly: the backward graph of a sum of w*x is the input */
    int32_t gw = grad_of(&g, "w");
    CHECK(gw >= nfwd || gw == x);
    /* nothing in the backward part reads the frozen param */
    for (int32_t i = nfwd; i < g.n; i++)
        for (int k = 0; k < IR_MAX_IN; k++) CHECK(g.nodes[i].in[k] != r);
    /* evaluate: dL/dw == x */
    double xv[6] = {1, -2, 3, 0.5, 4, -1}, wv[6] = {0}, rv[6] = {0}, uv[6] = {0}, sv[6] = {0};
    double *leaf[64] = {0};
    leaf[w] = wv, leaf[r] = rv, leaf[u] = uv, leaf[sg] = sv, leaf[x] = xv;
    char err[256];
    double **v = ir_interp_run(&g, leaf, 0, err, sizeof err);
    CHECK_MSG(v, "%s", err);
    if (v) {
        for (int i = 0; i < 6; i++) CHECK(v[gw][i] == xv[i]);
        ir_interp_free(&g, v);
    }
    CHECK(g.n < 64);
    ir_free(&g);
}

/* a value flagged IR_F_NOGRAD blocks the gradient; cast and cmp_lt too */
static void test_nograd_flag(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {4};
    int32_t w = ir_param(&g, "w", DT_F64, 1, s, IR_PARAM_TRAINABLE);
    IrNode p;
    ir_node_proto(&p, OP_EXP);
    p.in[0] = w;
    p.flags = IR_F_NOGRAD;
    int32_t blocked = ir_add_node(&g, &p);       /* exp(w), no gradient */
    int32_t sq = ir_mul(&g, w, w);               /* w^2 */
    int32_t lt = ir_binary(&g, OP_CMP_LT, w, sq); /* no gradient */
    int32_t c32 = ir_cast(&g, ir_cast(&g, w, DT_F32), DT_F64);
    int32_t y = ir_add(&g, ir_add(&g, ir_mul(&g, blocked, sq), lt), c32);
    int32_t loss = t_sum_all(&g, y);
    CHECK(ir_add_output(&g, "loss", loss, IR_OUT_LOSS) == 0);
    PassCtx c;
    CHECK_MSG(run_autodiff(&g, &c) == PASS_CHANGED, "%s", c.err);
    /* dL/dw = exp(w) * 2w, the exp treated as a constant */
    double wv[4] = {0.5, -1, 2, 0.25};
    double *leaf[128] = {0};
    leaf[w] = wv;
    char err[256];
    CHECK(g.n < 128);
    double **v = ir_interp_run(&g, leaf, 0, err, sizeof err);
    CHECK_MSG(v, "%s", err);
    if (v) {
        const double *gw = ir_interp_output(&g, v, "w");
        for (int i = 0; i < 4; i++) CHECK_MSG(fabs(gw[i] - exp(wv[i]) * 2 * wv[i]) <= 1e-14 * fabs(gw[i]),
                                              "%g vs %g", gw[i], exp(wv[i]) * 2 * wv[i]);
        ir_interp_free(&g, v);
    }
    ir_free(&g);
}

/* backward nodes carry the location of the forward node whose rule made them */
static void test_locations(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {3};
    ir_set_loc(&g, "model.yaml", 1, 1);
    int32_t w = ir_param(&g, "w", DT_F32, 1, s, IR_PARAM_TRAINABLE);
    ir_set_loc(&g, "model.yaml", 7, 3);
    int32_t e = ir_unary(&g, OP_SIN, w);
    ir_set_loc(&g, "model.yaml", 9, 5);
    int32_t loss = t_sum_all(&g, e);
    CHECK(ir_add_output(&g, "loss", loss, IR_OUT_LOSS) == 0);
    PassCtx c;
    CHECK_MSG(run_autodiff(&g, &c) == PASS_CHANGED, "%s", c.err);
    int32_t cosn = -1;
    for (int32_t i = 0; i < g.n; i++)
        if (g.nodes[i].op == OP_COS) cosn = i;
    CHECK(cosn >= 0);
    if (cosn >= 0) {
        CHECK(g.nodes[cosn].loc.line == 7 && g.nodes[cosn].loc.col == 3);
        CHECK(strcmp(ir_str_get(&g, g.nodes[cosn].loc.file), "model.yaml") == 0);
    }
    ir_free(&g);
}

static void test_errors(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {3};
    int32_t w = ir_param(&g, "w", DT_F32, 1, s, IR_PARAM_TRAINABLE);
    int32_t l = t_sum_all(&g, w);
    PassCtx c;
    CHECK(run_autodiff(&g, &c) == PASS_ERROR);
    CHECK(strstr(c.err, "no loss output") != NULL);
    CHECK(ir_add_output(&g, "loss", l, IR_OUT_LOSS) == 0);
    CHECK(run_autodiff(&g, &c) == PASS_CHANGED);
    CHECK(run_autodiff(&g, &c) == PASS_ERROR);
    CHECK(strstr(c.err, "already has gradient outputs") != NULL);
    ir_free(&g);

    ir_init(&g);
    w = ir_param(&g, "w", DT_F32, 1, s, IR_PARAM_TRAINABLE);
    l = t_sum_all(&g, w);
    int32_t l2 = t_sum_all(&g, ir_unary(&g, OP_EXP, w));
    CHECK(ir_add_output(&g, "a", l, IR_OUT_LOSS) == 0);
    CHECK(ir_add_output(&g, "b", l2, IR_OUT_LOSS) == 0);
    CHECK(run_autodiff(&g, &c) == PASS_ERROR);
    CHECK(strstr(c.err, "more than one loss") != NULL);
    ir_free(&g);
}

/* a graph given as IR text: a linear layer, the weight used twice */
static const char *linear_ir =
    "%0: f32[4,3] = input \"x\"\n"
    "%1: f32[5,3] = param \"w\" {role=trainable}\n"
    "%2: f32[5] = param \"b\" {role=trainable}\n"
    "%3: f32[5,3] = param \"ref:w\" {role=frozen}\n"
    "%4: f32[4,5] = matmul %0, %1 {ta=0, tb=1}\n"
    "%5: f32[1,5] = reshape %2\n"
    "%6: f32[4,5] = broadcast %5\n"
    "%7: f32[4,5] = add %4, %6\n"
    "%8: f32[4,5] = matmul %0, %3 {ta=0, tb=1}\n"
    "%9: f32[4,5] = sub %7, %8\n"
    "%10: f32[5,5] = matmul %1, %1 {ta=0, tb=1}\n"
    "%11: f32[4,1] = reduce_sum %9 {axis=1}\n"
    "%12: f32[1,1] = reduce_sum %11 {axis=0}\n"
    "%13: f32[5,1] = reduce_sum %10 {axis=1}\n"
    "%14: f32[1,1] = reduce_sum %13 {axis=0}\n"
    "%15: f32[1,1] = add %12, %14\n"
    "%16: f32[] = reshape %15\n"
    "output loss \"loss\" = %16\n";

static void test_from_text(void) {
    IrGraph g;
    ir_init(&g);
    char err[512];
    CHECK_MSG(ir_parse(&g, linear_ir, "linear.ir", err, sizeof err) == 0, "%s", err);
    int32_t nfwd = g.n;
    int nmm = t_count_op(&g, OP_MATMUL);
    PassCtx c;
    CHECK_MSG(run_autodiff(&g, &c) == PASS_CHANGED, "%s", c.err);
    CHECK(count_role(&g, IR_OUT_GRAD) == 2);
    CHECK(grad_of(&g, "w") >= nfwd);
    CHECK(grad_of(&g, "b") >= nfwd);
    CHECK(ir_find_output(&g, "ref:w") < 0);
    /* w gets one matmul from %4 (dW = dY^T x) and two from %10 (w w^T);
     * nothing is needed for x or ref:w */
    CHECK_MSG(t_count_op(&g, OP_MATMUL) - nmm == 3, "%d backward matmuls", t_count_op(&g, OP_MATMUL) - nmm);
    /* the bias gradient sums the broadcast rows: a reduce_sum over axis 0 */
    const IrNode *gb = ir_node(&g, grad_of(&g, "b"));
    CHECK(gb->op == OP_RESHAPE && ir_node(&g, gb->in[0])->op == OP_REDUCE_SUM &&
          ir_node(&g, gb->in[0])->attr[0] == 0);
    CHECK(t_roundtrip(&g));

    /* numbers: dL/db = 4 (rows); dL/dw = 1^T x (each row = column sums of x) + 2 * (ones w) */
    double xv[12], wv[15], rv[15] = {0}, bv[5] = {0};
    for (int i = 0; i < 12; i++) xv[i] = 0.25 * i - 1;
    for (int i = 0; i < 15; i++) wv[i] = 0.1 * i - 0.7;
    double *leaf[256] = {0};
    CHECK(g.n < 256);
    leaf[0] = xv, leaf[1] = wv, leaf[2] = bv, leaf[3] = rv;
    double **v = ir_interp_run(&g, leaf, 0, err, sizeof err);
    CHECK_MSG(v, "%s", err);
    if (v) {
        const double *gbv = ir_interp_output(&g, v, "b"), *gwv = ir_interp_output(&g, v, "w");
        for (int j = 0; j < 5; j++) CHECK(gbv[j] == 4.0);
        /* sum_{i,j} (w w^T)_{ij} = |sum_i w_i|^2, gradient 2 * sum_i w_i for each row */
        double colw[3] = {0}, colx[3] = {0};
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 3; k++) colw[k] += wv[i * 3 + k];
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 3; k++) colx[k] += xv[i * 3 + k];
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 3; k++) {
                double want = colx[k] + 2 * colw[k];
                CHECK_MSG(fabs(gwv[j * 3 + k] - want) <= 1e-12, "dw[%d,%d] = %g, want %g", j, k, gwv[j * 3 + k], want);
            }
        ir_interp_free(&g, v);
    }
    ir_free(&g);
}

/* a loss that reaches no param: every trainable param gets a constant 0 */
static void test_constant_loss(void) {
    IrGraph g;
    ir_init(&g);
    char err[512];
    const char *txt = "%0: f64[2] = param \"a\" {role=trainable}\n"
                      "%1: f64[2] = input \"x\"\n"
                      "%2: f64[1] = reduce_sum %1 {axis=0}\n"
                      "%3: f64[] = reshape %2\n"
                      "output loss \"loss\" = %3\n"
                      "output value \"a_out\" = %0\n";
    CHECK_MSG(ir_parse(&g, txt, "const.ir", err, sizeof err) == 0, "%s", err);
    PassCtx c;
    CHECK_MSG(run_autodiff(&g, &c) == PASS_CHANGED, "%s", c.err);
    CHECK(is_zero_const_like(&g, grad_of(&g, "a"), 0));
    ir_free(&g);
}

/* contributions add up: y = x + x + x gives 3 for every element */
static void test_accumulate(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {3};
    int32_t x = ir_param(&g, "x", DT_F64, 1, s, IR_PARAM_TRAINABLE);
    int32_t y = ir_add(&g, ir_add(&g, x, x), ir_unary(&g, OP_NEG, ir_unary(&g, OP_NEG, x)));
    CHECK(ir_add_output(&g, "loss", t_sum_all(&g, y), IR_OUT_LOSS) == 0);
    PassCtx c;
    CHECK_MSG(run_autodiff(&g, &c) == PASS_CHANGED, "%s", c.err);
    double xv[3] = {1, 2, 3};
    double *leaf[64] = {0};
    leaf[x] = xv;
    char err[256];
    CHECK(g.n < 64);
    double **v = ir_interp_run(&g, leaf, 0, err, sizeof err);
    CHECK_MSG(v, "%s", err);
    if (v) {
        const double *gx = ir_interp_output(&g, v, "x");
        for (int i = 0; i < 3; i++) CHECK(gx[i] == 3.0);
        ir_interp_free(&g, v);
    }
    ir_free(&g);
}

/* a trainable param the loss does not reach keeps its slot through the whole
 * pipeline: simplify's dead-code sweep must not drop it from under its zero
 * gradient (the verifier would refuse a grad output naming no param) */
static void test_unreached_param_survives_pipeline(void) {
    IrGraph g;
    ir_init(&g);
    int64_t s[1] = {4};
    int32_t w = ir_param(&g, "w", DT_F32, 1, s, IR_PARAM_TRAINABLE);
    ir_param(&g, "lonely", DT_F32, 1, s, IR_PARAM_TRAINABLE);
    int32_t x = ir_input(&g, "x", DT_F32, 1, s);
    CHECK(ir_add_output(&g, "loss", t_sum_all(&g, ir_mul(&g, w, x)), IR_OUT_LOSS) == 0);
    PassCtx c;
    memset(&c, 0, sizeof c);
    CHECK_MSG(pass_pipeline_run(&g, &c, "autodiff,simplify,dce") == 0, "%s", c.err);
    int32_t p = ir_find_named(&g, OP_PARAM, "lonely");
    CHECK(p >= 0);
    if (p >= 0) CHECK(is_zero_const_like(&g, grad_of(&g, "lonely"), p));
    char err[256];
    CHECK_MSG(ir_verify(&g, err, sizeof err) == 0, "%s", err);
    ir_free(&g);
}

int main(void) {
    test_unreached_param_survives_pipeline();
    test_what_gets_gradients();
    test_nograd_flag();
    test_locations();
    test_errors();
    test_from_text();
    test_constant_loss();
    test_accumulate();
    return check_done("test_autodiff");
}
