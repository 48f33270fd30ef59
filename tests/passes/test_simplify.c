/* test_simplify.c — pass_simplify and pass_dce.
 *
 * Each algebraic identity is built next to a parameter, simplified, and the
 * output must then be exactly the expected value (the param itself, a neg of
 * it, a single reshape, a constant of the right shape...). Constant folding
 * is checked for value, dtype and shape (with f32 rounding and the refusal to
 * fold non-finite results); CSE by counting nodes that became identical; DCE
 * by counting what remains; the pass reports PASS_UNCHANGED when there is
 * nothing to do and keeps source locations. Every result must pass
 * ir_verify.
 */
#include <math.h>

#include "ir_interp.h"
#include "tpass.h"

static const int64_t S[2] = {3, 4};

typedef struct T {
    IrGraph g;
    int32_t x, y; /* trainable f32[3,4] params */
} T;

static void t_begin(T *t) {
    ir_init(&t->g);
    t->x = ir_param(&t->g, "x", DT_F32, 2, S, IR_PARAM_TRAINABLE);
    t->y = ir_param(&t->g, "y", DT_F32, 2, S, IR_PARAM_TRAINABLE);
}

/* marks v as the output "out", simplifies, returns the output's new id */
static int32_t t_simplify(T *t, int32_t v, int *rc) {
    CHECK_MSG(v >= 0 && !t->g.err[0], "building: %s", t->g.err);
    if (v < 0) return -1;
    CHECK(ir_add_output(&t->g, "out", v, IR_OUT_VALUE) == 0);
    PassCtx c = {0};
    *rc = pass_simplify(&t->g, &c);
    CHECK_MSG(*rc != PASS_ERROR, "%s", c.err);
    char err[512];
    CHECK_MSG(ir_verify(&t->g, err, sizeof err) == 0, "verify: %s", err);
    return t->g.outs[ir_find_output(&t->g, "out")].id;
}

static const IrNode *out_node(T *t, int32_t id) { return id >= 0 ? ir_node(&t->g, id) : NULL; }

static int is_param(T *t, int32_t id, const char *name) {
    const IrNode *n = out_node(t, id);
    return n && n->op == OP_PARAM && strcmp(ir_str_get(&t->g, n->name), name) == 0;
}

static int is_const(T *t, int32_t id, double v, IrDType dt, int ndim, const int64_t *shape) {
    const IrNode *n = out_node(t, id);
    return n && n->op == OP_CONST && n->fval == v && n->dtype == dt && n->ndim == ndim &&
           memcmp(n->shape, shape, sizeof *shape * (size_t)ndim) == 0;
}

typedef int32_t (*Build)(T *t);

/* identities whose result is the param x itself */
static int32_t b_add0(T *t) { return ir_add(&t->g, t->x, ir_const_like(&t->g, 0, t->x)); }
static int32_t b_0add(T *t) { return ir_add(&t->g, ir_const_like(&t->g, 0, t->x), t->x); }
static int32_t b_sub0(T *t) { return ir_sub(&t->g, t->x, ir_const_like(&t->g, 0, t->x)); }
static int32_t b_mul1(T *t) { return ir_mul(&t->g, t->x, ir_const_like(&t->g, 1, t->x)); }
static int32_t b_1mul(T *t) { return ir_mul(&t->g, ir_const_like(&t->g, 1, t->x), t->x); }
static int32_t b_div1(T *t) { return ir_div(&t->g, t->x, ir_const_like(&t->g, 1, t->x)); }
static int32_t b_negneg(T *t) { return ir_unary(&t->g, OP_NEG, ir_unary(&t->g, OP_NEG, t->x)); }
static int32_t b_reshape_same(T *t) { return ir_reshape(&t->g, t->x, 2, S); }
static int32_t b_reshape_back(T *t) {
    int64_t s[3] = {2, 2, 3};
    return ir_reshape(&t->g, ir_reshape(&t->g, t->x, 3, s), 2, S);
}
static int32_t b_bcast_same(T *t) { return ir_broadcast(&t->g, t->x, 2, S); }
static int32_t b_perm_id(T *t) {
    int p[2] = {0, 1};
    return ir_permute(&t->g, t->x, p);
}
static int32_t b_perm_perm(T *t) {
    int p[2] = {1, 0};
    return ir_permute(&t->g, ir_permute(&t->g, t->x, p), p);
}
static int32_t b_sum1(T *t) {
    int64_t s[3] = {3, 1, 4};
    return ir_reshape(&t->g, ir_reduce(&t->g, OP_REDUCE_SUM, ir_reshape(&t->g, t->x, 3, s), 1), 2, S);
}
static int32_t b_max1(T *t) {
    int64_t s[3] = {3, 4, 1};
    return ir_reshape(&t->g, ir_reduce(&t->g, OP_REDUCE_MAX, ir_reshape(&t->g, t->x, 3, s), 2), 2, S);
}
static int32_t b_slice_full(T *t) { return ir_slice(&t->g, t->x, 1, 0, 4); }
static int32_t b_pad0(T *t) { return ir_pad(&t->g, t->x, 0, 0, 0); }
static int32_t b_select1(T *t) { return ir_select(&t->g, ir_const_like(&t->g, 1, t->x), t->x, t->y); }
static int32_t b_select0(T *t) { return ir_select(&t->g, ir_const_like(&t->g, 0, t->x), t->y, t->x); }
static int32_t b_select_same(T *t) { return ir_select(&t->g, t->y, t->x, t->x); }
static int32_t b_maxxx(T *t) { return ir_binary(&t->g, OP_MAX, t->x, t->x); }
static int32_t b_minxx(T *t) { return ir_binary(&t->g, OP_MIN, t->x, t->x); }
static int32_t b_cast_same(T *t) {
    IrNode p;
    ir_node_proto(&p, OP_CAST);
    p.in[0] = t->x;
    p.dtype = DT_F32;
    return ir_add_node(&t->g, &p);
}

static void test_identities_to_x(void) {
    static const struct {
        const char *name;
        Build b;
    } cases[] = {
        {"x+0", b_add0},           {"0+x", b_0add},           {"x-0", b_sub0},
        {"x*1", b_mul1},           {"1*x", b_1mul},           {"x/1", b_div1},
        {"neg neg x", b_negneg},   {"reshape same", b_reshape_same}, {"reshape back", b_reshape_back},
        {"broadcast same", b_bcast_same}, {"permute id", b_perm_id}, {"permute twice", b_perm_perm},
        {"sum size-1 axis", b_sum1}, {"max size-1 axis", b_max1}, {"full slice", b_slice_full},
        {"pad 0", b_pad0},         {"select 1", b_select1},   {"select 0", b_select0},
        {"select same", b_select_same}, {"max(x,x)", b_maxxx}, {"min(x,x)", b_minxx},
        {"cast same", b_cast_same},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        T t;
        t_begin(&t);
        int rc;
        int32_t o = t_simplify(&t, cases[i].b(&t), &rc);
        CHECK_MSG(rc == PASS_CHANGED, "%s: not changed", cases[i].name);
        CHECK_MSG(is_param(&t, o, "x"), "%s: output is %s, not x", cases[i].name,
                  o >= 0 ? ir_op_info[ir_node(&t.g, o)->op].name : "?");
        /* everything else is dead: x, plus y where it was an operand */
        CHECK_MSG(t.g.n <= 2, "%s: %d nodes left", cases[i].name, (int)t.g.n);
        ir_free(&t.g);
    }
}

static void test_identities_to_other(void) {
    T t;
    int rc;
    int32_t o;
    /* 0 - x, x * -1, x / -1 -> neg x */
    t_begin(&t);
    o = t_simplify(&t, ir_sub(&t.g, ir_const_like(&t.g, 0, t.x), t.x), &rc);
    CHECK(out_node(&t, o)->op == OP_NEG && is_param(&t, out_node(&t, o)->in[0], "x") && t.g.n == 2);
    ir_free(&t.g);
    t_begin(&t);
    o = t_simplify(&t, ir_scale(&t.g, t.x, -1), &rc);
    CHECK(out_node(&t, o)->op == OP_NEG && is_param(&t, out_node(&t, o)->in[0], "x") && t.g.n == 2);
    ir_free(&t.g);
    t_begin(&t);
    o = t_simplify(&t, ir_div(&t.g, t.x, ir_const_like(&t.g, -1, t.x)), &rc);
    CHECK(out_node(&t, o)->op == OP_NEG && is_param(&t, out_node(&t, o)->in[0], "x") && t.g.n == 2);
    ir_free(&t.g);
    /* x * 0 and 0 / x -> const 0 of x's shape */
    t_begin(&t);
    o = t_simplify(&t, ir_scale(&t.g, t.x, 0), &rc);
    CHECK(is_const(&t, o, 0, DT_F32, 2, S) && t.g.n == 1);
    ir_free(&t.g);
    t_begin(&t);
    o = t_simplify(&t, ir_div(&t.g, ir_const_like(&t.g, 0, t.x), t.x), &rc);
    CHECK(is_const(&t, o, 0, DT_F32, 2, S) && t.g.n == 1);
    ir_free(&t.g);
    /* reshape(reshape x) -> one reshape */
    t_begin(&t);
    int64_t s3[3] = {2, 2, 3}, s1[1] = {12};
    o = t_simplify(&t, ir_reshape(&t.g, ir_reshape(&t.g, t.x, 3, s3), 1, s1), &rc);
    CHECK(out_node(&t, o)->op == OP_RESHAPE && is_param(&t, out_node(&t, o)->in[0], "x") && t.g.n == 2);
    ir_free(&t.g);
    /* broadcast(broadcast x) -> one broadcast */
    t_begin(&t);
    int64_t b0[3] = {1, 1, 4}, b1[3] = {1, 5, 4}, b2[3] = {6, 5, 4};
    int32_t p = ir_param(&t.g, "p", DT_F32, 3, b0, IR_PARAM_TRAINABLE);
    o = t_simplify(&t, ir_broadcast(&t.g, ir_broadcast(&t.g, p, 3, b1), 3, b2), &rc);
    CHECK(out_node(&t, o)->op == OP_BROADCAST && is_param(&t, out_node(&t, o)->in[0], "p") &&
          out_node(&t, o)->shape[0] == 6 && t.g.n == 2);
    ir_free(&t.g);
    /* permute(permute x) composes: {1,2,0} after {2,0,1}... checked by value */
    t_begin(&t);
    int64_t ps[3] = {2, 3, 4};
    int pa[3] = {2, 0, 1}, pb[3] = {0, 2, 1};
    p = ir_param(&t.g, "p", DT_F64, 3, ps, IR_PARAM_TRAINABLE);
    int32_t two = ir_permute(&t.g, ir_permute(&t.g, p, pa), pb);
    IrGraph before;
    CHECK(ir_add_output(&t.g, "ref", two, IR_OUT_VALUE) == 0);
    CHECK(ir_copy(&before, &t.g) == 0);
    o = t_simplify(&t, two, &rc);
    CHECK(out_node(&t, o)->op == OP_PERMUTE && is_param(&t, out_node(&t, o)->in[0], "p") && t.g.n == 2);
    double pv[24];
    for (int i = 0; i < 24; i++) pv[i] = i;
    double *l1[16] = {0}, *l2[16] = {0};
    l1[p] = pv;
    l1[t.x] = l1[t.y] = pv; /* unused by the output, but the interpreter evaluates every node */
    l2[ir_find_named(&t.g, OP_PARAM, "p")] = pv;
    char err[256];
    double **v1 = ir_interp_run(&before, l1, 0, err, sizeof err), **v2 = ir_interp_run(&t.g, l2, 0, err, sizeof err);
    CHECK_MSG(v1 && v2, "%s", err);
    if (v1 && v2) {
        const double *a = ir_interp_output(&before, v1, "ref"), *b = ir_interp_output(&t.g, v2, "out");
        for (int i = 0; i < 24; i++) CHECK(a[i] == b[i]);
    }
    ir_interp_free(&before, v1);
    ir_interp_free(&t.g, v2);
    ir_free(&before);
    ir_free(&t.g);
    /* stop_grad(stop_grad x) -> stop_grad x */
    t_begin(&t);
    o = t_simplify(&t, ir_unary(&t.g, OP_STOP_GRAD, ir_unary(&t.g, OP_STOP_GRAD, t.x)), &rc);
    CHECK(out_node(&t, o)->op == OP_STOP_GRAD && is_param(&t, out_node(&t, o)->in[0], "x") && t.g.n == 2);
    ir_free(&t.g);
}

static void test_folding(void) {
    T t;
    int rc;
    int32_t o;
    int64_t s34[2] = {3, 4}, s31[2] = {3, 1}, s35[2] = {3, 5}, s45[2] = {4, 5};
    ir_init(&t.g);
    o = t_simplify(&t, ir_add(&t.g, ir_const(&t.g, 2, DT_F64, 2, s34), ir_const(&t.g, 3, DT_F64, 2, s34)), &rc);
    CHECK(is_const(&t, o, 5, DT_F64, 2, s34) && t.g.n == 1);
    ir_free(&t.g);

    ir_init(&t.g);
    o = t_simplify(&t, ir_unary(&t.g, OP_EXP, ir_const(&t.g, 0, DT_F64, 2, s34)), &rc);
    CHECK(is_const(&t, o, 1, DT_F64, 2, s34));
    ir_free(&t.g);

    ir_init(&t.g);
    o = t_simplify(&t, ir_reduce(&t.g, OP_REDUCE_SUM, ir_const(&t.g, 2, DT_F64, 2, s34), 1), &rc);
    CHECK(is_const(&t, o, 8, DT_F64, 2, s31));
    ir_free(&t.g);

    ir_init(&t.g);
    o = t_simplify(&t, ir_matmul(&t.g, ir_const(&t.g, 2, DT_F64, 2, s34), ir_const(&t.g, 0.5, DT_F64, 2, s45), 0, 0),
                   &rc);
    CHECK(is_const(&t, o, 4, DT_F64, 2, s35));
    ir_free(&t.g);

    ir_init(&t.g);
    o = t_simplify(&t, ir_broadcast(&t.g, ir_const(&t.g, 7, DT_F32, 2, s31), 2, s34), &rc);
    CHECK(is_const(&t, o, 7, DT_F32, 2, s34) && t.g.n == 1);
    ir_free(&t.g);

    /* f32: computed on the f32 values, rounded to f32 */
    ir_init(&t.g);
    o = t_simplify(&t, ir_add(&t.g, ir_const(&t.g, 0.1, DT_F32, 2, s34), ir_const(&t.g, 0.2, DT_F32, 2, s34)), &rc);
    CHECK(is_const(&t, o, (double)(float)((double)0.1f + (double)0.2f), DT_F32, 2, s34));
    ir_free(&t.g);

    /* cast to i32 truncates; cmp_lt gives 1/0 */
    ir_init(&t.g);
    o = t_simplify(&t, ir_cast(&t.g, ir_const(&t.g, -2.75, DT_F64, 2, s34), DT_I32), &rc);
    CHECK(is_const(&t, o, -2, DT_I32, 2, s34));
    ir_free(&t.g);
    ir_init(&t.g);
    o = t_simplify(&t, ir_binary(&t.g, OP_CMP_LT, ir_const(&t.g, 1, DT_F32, 2, s34), ir_const(&t.g, 2, DT_F32, 2, s34)),
                   &rc);
    CHECK(is_const(&t, o, 1, DT_F32, 2, s34));
    ir_free(&t.g);

    /* iota over a size-1 axis is all zeros; gather of a constant table too */
    ir_init(&t.g);
    o = t_simplify(&t, ir_iota(&t.g, 1, DT_F32, 2, s31), &rc);
    CHECK(is_const(&t, o, 0, DT_F32, 2, s31));
    ir_free(&t.g);
    ir_init(&t.g);
    int64_t is[1] = {3}, ts[2] = {6, 4};
    int32_t ids = ir_input(&t.g, "ids", DT_I32, 1, is);
    o = t_simplify(&t, ir_gather_rows(&t.g, ir_const(&t.g, 1.5, DT_F32, 2, ts), ids), &rc);
    CHECK(is_const(&t, o, 1.5, DT_F32, 2, s34) && t.g.n == 1);
    ir_free(&t.g);

    /* not folded: log(0) = -inf stays a log */
    ir_init(&t.g);
    o = t_simplify(&t, ir_unary(&t.g, OP_LOG, ir_const(&t.g, 0, DT_F64, 2, s34)), &rc);
    CHECK(out_node(&t, o)->op == OP_LOG && rc == PASS_UNCHANGED);
    ir_free(&t.g);

    /* ...but an infinity already in a constant moves through unchanged */
    ir_init(&t.g);
    o = t_simplify(&t, ir_broadcast(&t.g, ir_const(&t.g, -INFINITY, DT_F32, 2, s31), 2, s34), &rc);
    CHECK(is_const(&t, o, -INFINITY, DT_F32, 2, s34) && t.g.n == 1);
    ir_free(&t.g);

    /* chains fold all the way: sigmoid(0) * 4 - 1 = 1 */
    ir_init(&t.g);
    int32_t z = ir_const(&t.g, 0, DT_F64, 2, s34);
    int32_t e = ir_sub(&t.g, ir_scale(&t.g, ir_unary(&t.g, OP_SIGMOID, z), 4), ir_const_like(&t.g, 1, z));
    o = t_simplify(&t, e, &rc);
    CHECK(is_const(&t, o, 1, DT_F64, 2, s34) && t.g.n == 1);
    ir_free(&t.g);
}

/* values that become identical merge (CSE); dead code goes (DCE) */
static void test_cse_dce(void) {
    T t;
    int rc;
    t_begin(&t);
    IrGraph *g = &t.g;
    int32_t a = ir_mul(g, ir_add(g, t.x, ir_const_like(g, 0, t.x)), t.y); /* (x+0)*y */
    int32_t b = ir_mul(g, t.x, t.y);                                      /* x*y */
    int32_t dead = ir_unary(g, OP_EXP, ir_mul(g, t.x, t.x));
    int32_t unused = ir_param(g, "unused", DT_F32, 2, S, IR_PARAM_TRAINABLE);
    (void)dead;
    (void)unused;
    CHECK(ir_add_output(g, "a", a, IR_OUT_VALUE) == 0);
    int32_t o = t_simplify(&t, b, &rc);
    CHECK(rc == PASS_CHANGED);
    CHECK(t_count_op(g, OP_MUL) == 1);
    CHECK(t.g.outs[ir_find_output(g, "a")].id == o);
    CHECK(g->n == 3); /* x, y, x*y */
    CHECK(ir_find_named(g, OP_PARAM, "unused") < 0);
    CHECK(t_count_op(g, OP_EXP) == 0);
    /* idempotent */
    PassCtx c = {0};
    CHECK(pass_simplify(g, &c) == PASS_UNCHANGED);
    CHECK(pass_dce(g, &c) == PASS_UNCHANGED);
    ir_free(g);

    /* dce alone: only removes */
    t_begin(&t);
    g = &t.g;
    int32_t keep = ir_add(g, t.x, ir_const_like(g, 0, t.x));
    ir_unary(g, OP_SIN, t.y);
    CHECK(ir_add_output(g, "k", keep, IR_OUT_VALUE) == 0);
    int32_t n0 = g->n;
    CHECK(pass_dce(g, &c) == PASS_CHANGED);
    CHECK(g->n == n0 - 2); /* y and sin y */
    CHECK(t_count_op(g, OP_ADD) == 1);
    ir_free(g);
}

/* a value flagged IR_F_NOGRAD is not replaced by one that carries gradients */
static void test_nograd_kept(void) {
    T t;
    int rc;
    t_begin(&t);
    IrNode p;
    ir_node_proto(&p, OP_MUL);
    p.in[0] = t.x;
    p.in[1] = ir_const_like(&t.g, 1, t.x);
    p.flags = IR_F_NOGRAD;
    int32_t m = ir_add_node(&t.g, &p);
    int32_t o = t_simplify(&t, m, &rc);
    CHECK(out_node(&t, o)->op == OP_MUL && (out_node(&t, o)->flags & IR_F_NOGRAD));
    ir_free(&t.g);
}

static void test_locations_kept(void) {
    T t;
    int rc;
    ir_init(&t.g);
    ir_set_loc(&t.g, "a.yaml", 3, 4);
    t.x = ir_param(&t.g, "x", DT_F32, 2, S, IR_PARAM_TRAINABLE);
    ir_set_loc(&t.g, "b.yaml", 10, 2);
    int32_t e = ir_unary(&t.g, OP_EXP, ir_add(&t.g, t.x, ir_const_like(&t.g, 0, t.x)));
    int32_t o = t_simplify(&t, e, &rc);
    const IrNode *n = out_node(&t, o);
    CHECK(n->op == OP_EXP && n->loc.line == 10 && n->loc.col == 2 && strcmp(ir_str_get(&t.g, n->loc.file), "b.yaml") == 0);
    const IrNode *x = ir_node(&t.g, n->in[0]);
    CHECK(x->op == OP_PARAM && x->loc.line == 3 && strcmp(ir_str_get(&t.g, x->loc.file), "a.yaml") == 0);
    ir_free(&t.g);
}

int main(void) {
    test_identities_to_x();
    test_identities_to_other();
    test_folding();
    test_cse_dce();
    test_nograd_kept();
    test_locations_kept();
    return check_done("test_simplify");
}
