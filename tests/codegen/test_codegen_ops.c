/* test_codegen_ops.c — every op of ops.def, compiled, against C loops.
 *
 * Each group builds one small graph whose outputs are many ops applied to a
 * few inputs (f32 and f64, and i32 where the op takes integers), compiles it
 * to a step.so through the real path (tensor table, schedule, codegen,
 * loader) and compares every output with a plain C reference loop written
 * here. Elementwise, movement, indexing and reduction results must be
 * identical: the kernels do the same IEEE operations in the same order
 * (reductions accumulate r = 0..R-1 from 0 or -inf; the libm calls are the
 * same). Matmul may contract a*b+c into an fma, so it is checked against a
 * double-precision product with the rounding bound (K+2) * u * sum|a||b|.
 *
 * Every group is then run again with tcg_chunked (uneven chunks, last chunk
 * first) and the outputs region must be bitwise identical to the serial run.
 * A last group hand-fuses kernels in a schedule (several members per kernel)
 * and checks the fused step gives the same bits as the unfused one.
 */
#include <float.h>
#include <math.h>

#include "tcg.h"

enum { MAX_LEAVES = 64, MAX_OUTS = 128 };

typedef struct Leaf {
    int32_t id;
    double *v;
    int64_t n;
} Leaf;

typedef struct Out {
    char name[48];
    int32_t id;
    double *ref;
    double *bound; /* NULL: exact */
} Out;

typedef struct Case {
    IrGraph g;
    Leaf leaf[MAX_LEAVES];
    int nleaf;
    Out out[MAX_OUTS];
    int nout;
    TcgRng rng;
    const char *label;
} Case;

static void case_begin(Case *c, const char *label, uint64_t seed) {
    memset(c, 0, sizeof *c);
    ir_init(&c->g);
    c->label = label;
    c->rng.s = seed * 0x9e3779b97f4a7c15ull + 99;
}

static void case_end(Case *c) {
    for (int i = 0; i < c->nleaf; i++) free(c->leaf[i].v);
    for (int i = 0; i < c->nout; i++) {
        free(c->out[i].ref);
        free(c->out[i].bound);
    }
    ir_free(&c->g);
}

static const IrNode *N(Case *c, int32_t id) { return ir_node(&c->g, id); }
static int64_t numel_of(Case *c, int32_t id) { return ir_numel(N(c, id)); }

static double round_to(IrDType t, double v) {
    if (t == DT_F32) return (double)(float)v;
    if (t == DT_I32) return (double)(int32_t)v;
    return v;
}

/* an input with values uniform in [lo, hi] (integers: floor) */
static int32_t leaf_in(Case *c, const char *name, IrDType t, int nd, const int64_t *shape, double lo, double hi) {
    if (c->nleaf == MAX_LEAVES) {
        fprintf(stderr, "%s: too many leaves\n", c->label);
        exit(2);
    }
    Leaf *l = &c->leaf[c->nleaf++];
    l->id = ir_input(&c->g, name, t, nd, shape);
    l->n = tcg_numel(nd, shape);
    l->v = malloc(sizeof *l->v * (size_t)l->n);
    for (int64_t i = 0; i < l->n; i++) {
        double x = tcg_uniform(&c->rng, lo, hi);
        l->v[i] = t == DT_I32 ? floor(x) : round_to(t, x);
    }
    return l->id;
}

static double *vals(Case *c, int32_t id) {
    for (int i = 0; i < c->nleaf; i++)
        if (c->leaf[i].id == id) return c->leaf[i].v;
    fprintf(stderr, "%s: no leaf %d\n", c->label, id);
    exit(2);
}

/* declares output `name` = node id with reference values ref (taken over) */
static void expect(Case *c, const char *name, int32_t id, double *ref, double *bound) {
    CHECK_MSG(id >= 0, "%s: building %s: %s", c->label, name, c->g.err);
    if (id < 0) {
        free(ref);
        free(bound);
        return;
    }
    if (c->nout == MAX_OUTS) {
        fprintf(stderr, "%s: too many outputs\n", c->label);
        exit(2);
    }
    Out *o = &c->out[c->nout++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->id = id;
    o->ref = ref;
    o->bound = bound;
    CHECK(ir_add_output(&c->g, name, id, IR_OUT_VALUE) == 0);
}

static uint8_t covered[OP_COUNT]; /* ops some compiled group computed */

static double *alloc_d(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }

static void run_case(Case *c) {
    DpocStep s;
    char err[512];
    CHECK_MSG(ir_verify(&c->g, err, sizeof err) == 0, "%s: verify: %s", c->label, err);
    if (tcg_compile(&c->g, &s)) return;
    for (int32_t id = 0; id < c->g.n; id++) covered[N(c, id)->op] = 1;
    int64_t osz = s.region_size[DPOC_R_OUTPUTS];
    memset(s.regions[DPOC_R_OUTPUTS], 0xA5, (size_t)osz); /* every output element must be written */
    for (int i = 0; i < c->nleaf; i++)
        tcg_set(&s, ir_str_get(&c->g, N(c, c->leaf[i].id)->name), DPOC_ROLE_INPUT, c->leaf[i].v);
    tcg_run(&s, NULL);
    int bad = 0;
    for (int i = 0; i < c->nout; i++) {
        Out *o = &c->out[i];
        int64_t n = numel_of(c, o->id);
        double *got = alloc_d(n);
        if (tcg_get(&s, o->name, DPOC_ROLE_OUTPUT, got, n) == 0)
            for (int64_t e = 0; e < n; e++) {
                int ok = o->bound ? fabs(got[e] - o->ref[e]) <= o->bound[e] : tcg_same(got[e], o->ref[e]);
                if (!ok && bad++ < 12)
                    fprintf(stderr, "%s: %s[%lld] = %.17g, reference %.17g\n", c->label, o->name, (long long)e, got[e],
                            o->ref[e]);
                if (!ok) check_failures++;
            }
        free(got);
    }
    uint8_t *snap = malloc((size_t)(osz ? osz : 1));
    memcpy(snap, s.regions[DPOC_R_OUTPUTS], (size_t)osz);
    memset(s.regions[DPOC_R_OUTPUTS], 0xA5, (size_t)osz);
    for (int seed = 0; seed < 3; seed++) {
        tcg_chunk_seed = seed;
        tcg_run(&s, &tcg_chunked);
        CHECK_MSG(memcmp(snap, s.regions[DPOC_R_OUTPUTS], (size_t)osz) == 0, "%s: chunked run (seed %d) differs from serial",
                  c->label, seed);
    }
    free(snap);
    printf("  %-34s %3d outputs, %d kernels\n", c->label, c->nout, s.nkernels);
    dpoc_step_close(&s);
}

/* ---- references --------------------------------------------------------- */
static double ref_unary(IrOp op, IrDType t, double x) {
    if (t == DT_I32) {
        int32_t v = (int32_t)x;
        uint32_t neg = 0u - (uint32_t)v;
        if (op == OP_NEG) return (double)(int32_t)neg;
        if (op == OP_ABS) return v < 0 ? (double)(int32_t)neg : v;
        return NAN;
    }
    if (t == DT_F32) {
        float f = (float)x, r;
        switch (op) {
        case OP_NEG: r = -f; break;
        case OP_EXP: r = expf(f); break;
        case OP_LOG: r = logf(f); break;
        case OP_LOG1P: r = log1pf(f); break;
        case OP_SQRT: r = sqrtf(f); break;
        case OP_RSQRT: r = 1.0f / sqrtf(f); break;
        case OP_SIGMOID: {
            float e = expf(-fabsf(f)), d = 1.0f + e;
            r = f >= 0 ? 1.0f / d : e / d;
            break;
        }
        case OP_ABS: r = fabsf(f); break;
        case OP_COS: r = cosf(f); break;
        case OP_SIN: r = sinf(f); break;
        case OP_STOP_GRAD: r = f; break;
        default: r = NAN;
        }
        return r;
    }
    switch (op) {
    case OP_NEG: return -x;
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_LOG1P: return log1p(x);
    case OP_SQRT: return sqrt(x);
    case OP_RSQRT: return 1.0 / sqrt(x);
    case OP_SIGMOID: {
        double e = exp(-fabs(x)), d = 1.0 + e;
        return x >= 0 ? 1.0 / d : e / d;
    }
    case OP_ABS: return fabs(x);
    case OP_COS: return cos(x);
    case OP_SIN: return sin(x);
    case OP_STOP_GRAD: return x;
    default: return NAN;
    }
}

static double ref_binary(IrOp op, IrDType t, double a, double b) {
    if (t == DT_I32) {
        int32_t x = (int32_t)a, y = (int32_t)b;
        switch (op) {
        case OP_ADD: return (int32_t)((uint32_t)x + (uint32_t)y);
        case OP_SUB: return (int32_t)((uint32_t)x - (uint32_t)y);
        case OP_MUL: return (int32_t)((uint32_t)x * (uint32_t)y);
        case OP_DIV: return y == 0 ? 0 : (x == INT32_MIN && y == -1) ? INT32_MIN : x / y;
        case OP_MAX: return x > y ? x : y;
        case OP_MIN: return x < y ? x : y;
        case OP_CMP_LT: return x < y;
        default: return NAN;
        }
    }
    if (t == DT_F32) {
        float x = (float)a, y = (float)b, r;
        switch (op) {
        case OP_ADD: r = x + y; break;
        case OP_SUB: r = x - y; break;
        case OP_MUL: r = x * y; break;
        case OP_DIV: r = x / y; break;
        case OP_MAX: r = isnan(x) || isnan(y) ? NAN : fmaxf(x, y); break;
        case OP_MIN: r = isnan(x) || isnan(y) ? NAN : fminf(x, y); break;
        case OP_CMP_LT: r = x < y; break;
        default: r = NAN;
        }
        return r;
    }
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_MAX: return isnan(a) || isnan(b) ? NAN : fmax(a, b);
    case OP_MIN: return isnan(a) || isnan(b) ? NAN : fmin(a, b);
    case OP_CMP_LT: return a < b;
    default: return NAN;
    }
}

static double ref_cast(IrDType from, IrDType to, double x) {
    (void)from;
    if (to == DT_I32) {
        if (isnan(x)) return 0;
        if (x >= 2147483647.0) return INT32_MAX;
        if (x <= -2147483648.0) return INT32_MIN;
        return (double)(int32_t)x; /* truncation toward zero */
    }
    return round_to(to, x);
}

static const char *dt_name(IrDType t) { return ir_dtype_name(t); }

/* ---- groups -------------------------------------------------------------- */
static const int64_t SH0[1] = {1}, SH1[1] = {7}, SH2[2] = {3, 5}, SH3[3] = {2, 3, 17};
static const struct {
    int nd;
    const int64_t *s;
} SHAPES[] = {{0, SH0}, {1, SH1}, {2, SH2}, {3, SH3}};

static void group_unary(IrDType t) {
    static const struct {
        IrOp op;
        double lo, hi;
    } u[] = {
        {OP_NEG, -3, 3},   {OP_EXP, -5, 5},      {OP_LOG, 0.01, 9}, {OP_LOG1P, -0.9, 5}, {OP_SQRT, 0, 9},
        {OP_RSQRT, 0.01, 9}, {OP_SIGMOID, -9, 9}, {OP_ABS, -3, 3},  {OP_COS, -6, 6},     {OP_SIN, -6, 6},
        {OP_STOP_GRAD, -3, 3},
    };
    char label[64];
    snprintf(label, sizeof label, "unary %s", dt_name(t));
    Case c;
    case_begin(&c, label, 1 + (uint64_t)t);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
            char name[48];
            snprintf(name, sizeof name, "x_%s_%zu", ir_op_info[u[i].op].name, s);
            int32_t x = leaf_in(&c, name, t, SHAPES[s].nd, SHAPES[s].s, u[i].lo, u[i].hi);
            int32_t y = ir_unary(&c.g, u[i].op, x);
            int64_t n = numel_of(&c, x);
            double *ref = alloc_d(n);
            for (int64_t e = 0; e < n; e++) ref[e] = ref_unary(u[i].op, t, vals(&c, x)[e]);
            /* f32 exp, log, log1p, sigmoid are polynomials (codegen/cg_math.c), within
             * 1, 1, 2, 2 ulp of the C library (tests/fuse/test_fuse_math.c sweeps them) */
            int ulp = t != DT_F32 ? 0 : u[i].op == OP_EXP || u[i].op == OP_LOG ? 1
                    : u[i].op == OP_LOG1P || u[i].op == OP_SIGMOID ? 2 : 0;
            double *bound = NULL;
            if (ulp) {
                bound = alloc_d(n);
                for (int64_t e = 0; e < n; e++) {
                    float r = fabsf((float)ref[e]);
                    bound[e] = ulp * ((double)nextafterf(r, INFINITY) - (double)r);
                }
            }
            snprintf(name, sizeof name, "%s_%zu", ir_op_info[u[i].op].name, s);
            expect(&c, name, y, ref, bound);
        }
    run_case(&c);
    case_end(&c);
}

static void group_binary(IrDType t) {
    static const IrOp ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_CMP_LT};
    char label[64];
    snprintf(label, sizeof label, "binary+select %s", dt_name(t));
    Case c;
    case_begin(&c, label, 10 + (uint64_t)t);
    for (size_t s = 1; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        char name[48];
        double lo = t == DT_I32 ? -4 : -3, hi = t == DT_I32 ? 4 : 3;
        snprintf(name, sizeof name, "a%zu", s);
        int32_t a = leaf_in(&c, name, t, SHAPES[s].nd, SHAPES[s].s, lo, hi);
        snprintf(name, sizeof name, "b%zu", s);
        int32_t b = leaf_in(&c, name, t, SHAPES[s].nd, SHAPES[s].s, lo, hi);
        int64_t n = numel_of(&c, a);
        if (t != DT_I32) /* keep divisors away from zero; the integer case divides by 0 on purpose */
            for (int64_t e = 0; e < n; e++)
                if (fabs(vals(&c, b)[e]) < 0.1) vals(&c, b)[e] = 0.5;
        if (t == DT_I32) { /* the one overflowing quotient */
            vals(&c, a)[0] = INT32_MIN;
            vals(&c, b)[0] = -1;
        }
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            double *ref = alloc_d(n);
            for (int64_t e = 0; e < n; e++) ref[e] = ref_binary(ops[i], t, vals(&c, a)[e], vals(&c, b)[e]);
            snprintf(name, sizeof name, "%s_%zu", ir_op_info[ops[i]].name, s);
            expect(&c, name, ir_binary(&c.g, ops[i], a, b), ref, NULL);
        }
        /* select with a condition of another dtype (f32 0/1, i32 for floats) */
        IrDType ct = t == DT_I32 ? DT_F32 : DT_I32;
        snprintf(name, sizeof name, "c%zu", s);
        int32_t cnd = leaf_in(&c, name, ct, SHAPES[s].nd, SHAPES[s].s, 0, 2);
        double *ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) ref[e] = vals(&c, cnd)[e] != 0 ? vals(&c, a)[e] : vals(&c, b)[e];
        snprintf(name, sizeof name, "select_%zu", s);
        expect(&c, name, ir_select(&c.g, cnd, a, b), ref, NULL);
        if (t == DT_I32) {
            static const IrOp un[] = {OP_NEG, OP_ABS};
            for (int k = 0; k < 2; k++) {
                ref = alloc_d(n);
                for (int64_t e = 0; e < n; e++) ref[e] = ref_unary(un[k], t, vals(&c, a)[e]);
                snprintf(name, sizeof name, "%s_%zu", ir_op_info[un[k]].name, s);
                expect(&c, name, ir_unary(&c.g, un[k], a), ref, NULL);
            }
        }
    }
    run_case(&c);
    case_end(&c);
}

/* casts between all dtypes, const and iota of every dtype */
static void group_cast_leaves(void) {
    Case c;
    case_begin(&c, "cast, const, iota", 20);
    IrDType ts[3] = {DT_F32, DT_F64, DT_I32};
    for (int a = 0; a < 3; a++) {
        char name[48];
        snprintf(name, sizeof name, "x_%s", dt_name(ts[a]));
        int32_t x = leaf_in(&c, name, ts[a], 2, SH2, -40, 40);
        int64_t n = numel_of(&c, x);
        if (ts[a] != DT_I32) { /* saturation and NaN */
            vals(&c, x)[0] = 3e10;
            vals(&c, x)[1] = -3e10;
            vals(&c, x)[2] = NAN;
            vals(&c, x)[3] = 2.75;
            vals(&c, x)[4] = -2.75;
            for (int e = 0; e < 5; e++) vals(&c, x)[e] = round_to(ts[a], vals(&c, x)[e]);
        }
        for (int b = 0; b < 3; b++) {
            if (a == b) continue;
            double *ref = alloc_d(n);
            for (int64_t e = 0; e < n; e++) ref[e] = ref_cast(ts[a], ts[b], vals(&c, x)[e]);
            snprintf(name, sizeof name, "cast_%s_%s", dt_name(ts[a]), dt_name(ts[b]));
            expect(&c, name, ir_cast(&c.g, x, ts[b]), ref, NULL);
        }
        /* const: one scalar, one shaped; the value rounds to the dtype */
        double cv = ts[a] == DT_I32 ? -7 : 0.1;
        double *ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) ref[e] = round_to(ts[a], cv);
        snprintf(name, sizeof name, "const_%s", dt_name(ts[a]));
        expect(&c, name, ir_const(&c.g, cv, ts[a], 2, SH2), ref, NULL);
        ref = alloc_d(1);
        ref[0] = round_to(ts[a], 2.5 * (a + 1));
        snprintf(name, sizeof name, "scalar_%s", dt_name(ts[a]));
        expect(&c, name, ir_const(&c.g, 2.5 * (a + 1), ts[a], 0, NULL), ref, NULL);
        for (int ax = 0; ax < 3; ax++) {
            int64_t m = tcg_numel(3, SH3), idx[3];
            ref = alloc_d(m);
            for (int64_t e = 0; e < m; e++) {
                tcg_unravel(e, 3, SH3, idx);
                ref[e] = (double)idx[ax];
            }
            snprintf(name, sizeof name, "iota%d_%s", ax, dt_name(ts[a]));
            expect(&c, name, ir_iota(&c.g, ax, ts[a], 3, SH3), ref, NULL);
        }
    }
    run_case(&c);
    case_end(&c);
}

static void group_movement(IrDType t) {
    char label[64], name[48];
    snprintf(label, sizeof label, "movement %s", dt_name(t));
    Case c;
    case_begin(&c, label, 30 + (uint64_t)t);
    int64_t idx[IR_MAX_DIMS], src[IR_MAX_DIMS];
    /* broadcast */
    static const int64_t bi[][3] = {{3, 1, 4}, {1, 1, 1}, {1, 7, 1}, {5, 1, 1}, {1, 1, 9}};
    static const int64_t bo[][3] = {{3, 5, 4}, {2, 3, 5}, {4, 7, 3}, {5, 7, 3}, {3, 5, 9}};
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "bx%d", k);
        int32_t x = leaf_in(&c, name, t, 3, bi[k], -9, 9);
        int64_t n = tcg_numel(3, bo[k]);
        double *ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) {
            tcg_unravel(e, 3, bo[k], idx);
            for (int d = 0; d < 3; d++) src[d] = bi[k][d] == 1 ? 0 : idx[d];
            ref[e] = vals(&c, x)[tcg_ravel(3, bi[k], src)];
        }
        snprintf(name, sizeof name, "broadcast%d", k);
        expect(&c, name, ir_broadcast(&c.g, x, 3, bo[k]), ref, NULL);
    }
    /* permute, reshape (an alias: read through by a consumer kernel) */
    static const int64_t ps[4] = {2, 3, 5, 4};
    int32_t px = leaf_in(&c, "px", t, 4, ps, -9, 9);
    static const int perms[][4] = {{3, 1, 0, 2}, {1, 0, 2, 3}, {0, 1, 3, 2}, {2, 3, 0, 1}};
    for (int k = 0; k < 4; k++) {
        int64_t os[4];
        for (int d = 0; d < 4; d++) os[d] = ps[perms[k][d]];
        int64_t n = tcg_numel(4, os);
        double *ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) {
            tcg_unravel(e, 4, os, idx);
            for (int d = 0; d < 4; d++) src[perms[k][d]] = idx[d];
            ref[e] = vals(&c, px)[tcg_ravel(4, ps, src)];
        }
        snprintf(name, sizeof name, "permute%d", k);
        expect(&c, name, ir_permute(&c.g, px, perms[k]), ref, NULL);
    }
    int64_t rs[2] = {10, 12};
    int32_t r = ir_reshape(&c.g, px, 2, rs);
    int perm2[2] = {1, 0};
    double *ref = alloc_d(120);
    for (int64_t e = 0; e < 120; e++) ref[e] = vals(&c, px)[(e % 10) * 12 + e / 10];
    expect(&c, "reshape_permute", ir_permute(&c.g, r, perm2), ref, NULL);
    /* slice, pad over each axis */
    static const int64_t ss[3] = {4, 5, 6};
    int32_t sx = leaf_in(&c, "sx", t, 3, ss, -9, 9);
    for (int ax = 0; ax < 3; ax++) {
        int64_t st = 1, sp = ss[ax] - 1 - (ax == 2);
        int64_t os[3] = {ss[0], ss[1], ss[2]};
        os[ax] = sp - st;
        int64_t n = tcg_numel(3, os);
        ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) {
            tcg_unravel(e, 3, os, idx);
            memcpy(src, idx, sizeof src);
            src[ax] += st;
            ref[e] = vals(&c, sx)[tcg_ravel(3, ss, src)];
        }
        snprintf(name, sizeof name, "slice%d", ax);
        expect(&c, name, ir_slice(&c.g, sx, ax, st, sp), ref, NULL);

        int64_t lo = ax, hi = 2 - ax + (ax == 1);
        memcpy(os, ss, sizeof os);
        os[ax] += lo + hi;
        n = tcg_numel(3, os);
        ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) {
            tcg_unravel(e, 3, os, idx);
            memcpy(src, idx, sizeof src);
            src[ax] -= lo;
            ref[e] = src[ax] >= 0 && src[ax] < ss[ax] ? vals(&c, sx)[tcg_ravel(3, ss, src)] : 0.0;
        }
        snprintf(name, sizeof name, "pad%d", ax);
        expect(&c, name, ir_pad(&c.g, sx, ax, lo, hi), ref, NULL);

        /* concat with a second operand that differs along ax */
        int64_t bs[3] = {ss[0], ss[1], ss[2]};
        bs[ax] = 3;
        snprintf(name, sizeof name, "cb%d", ax);
        int32_t cb = leaf_in(&c, name, t, 3, bs, -9, 9);
        memcpy(os, ss, sizeof os);
        os[ax] += 3;
        n = tcg_numel(3, os);
        ref = alloc_d(n);
        for (int64_t e = 0; e < n; e++) {
            tcg_unravel(e, 3, os, idx);
            memcpy(src, idx, sizeof src);
            if (idx[ax] < ss[ax]) {
                ref[e] = vals(&c, sx)[tcg_ravel(3, ss, src)];
            } else {
                src[ax] -= ss[ax];
                ref[e] = vals(&c, cb)[tcg_ravel(3, bs, src)];
            }
        }
        snprintf(name, sizeof name, "concat%d", ax);
        expect(&c, name, ir_concat(&c.g, sx, cb, ax), ref, NULL);
    }
    run_case(&c);
    case_end(&c);
}

static void group_reduce(IrDType t) {
    char label[64], name[48];
    snprintf(label, sizeof label, "reductions %s", dt_name(t));
    Case c;
    case_begin(&c, label, 40 + (uint64_t)t);
    static const int64_t s3[3] = {4, 5, 6}, s2[2] = {3, 7}, s2b[2] = {1, 9}, s1[1] = {11};
    const struct {
        int nd;
        const int64_t *s;
    } shapes[] = {{3, s3}, {2, s2}, {2, s2b}, {1, s1}};
    int64_t idx[3], src[3];
    for (int si = 0; si < 4; si++) {
        snprintf(name, sizeof name, "rx%d", si);
        int nd = shapes[si].nd;
        const int64_t *s = shapes[si].s;
        int32_t x = leaf_in(&c, name, t, nd, s, -4, 4);
        for (int ax = 0; ax < nd; ax++)
            for (int k = 0; k < 2; k++) {
                IrOp op = k ? OP_REDUCE_MAX : OP_REDUCE_SUM;
                int64_t os[3];
                memcpy(os, s, sizeof(int64_t) * (size_t)nd);
                os[ax] = 1;
                int64_t n = tcg_numel(nd, os);
                double *ref = alloc_d(n);
                for (int64_t e = 0; e < n; e++) {
                    tcg_unravel(e, nd, os, idx);
                    memcpy(src, idx, sizeof src);
                    double acc = k ? -INFINITY : 0.0;
                    float accf = (float)acc;
                    for (int64_t r = 0; r < s[ax]; r++) {
                        src[ax] = r;
                        double v = vals(&c, x)[tcg_ravel(nd, s, src)];
                        if (k) acc = v > acc ? v : acc;
                        else if (t == DT_F32) accf = accf + (float)v;
                        else if (t == DT_I32) acc = (double)(int32_t)((uint32_t)(int32_t)acc + (uint32_t)(int32_t)v);
                        else acc = acc + v;
                    }
                    ref[e] = (!k && t == DT_F32) ? accf : acc;
                }
                snprintf(name, sizeof name, "%s%d_ax%d", ir_op_info[op].name, si, ax);
                expect(&c, name, ir_reduce(&c.g, op, x, ax), ref, NULL);
            }
    }
    run_case(&c);
    case_end(&c);
}

static void group_matmul(IrDType t) {
    char label[64], name[48];
    snprintf(label, sizeof label, "matmul %s", dt_name(t));
    Case c;
    case_begin(&c, label, 50 + (uint64_t)t);
    const int64_t B = 3, M = 5, K = 7, Nn = 9;
    double u = t == DT_F32 ? FLT_EPSILON / 2 : DBL_EPSILON / 2;
    for (int batched = 0; batched < 2; batched++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int nd = batched ? 3 : 2, o = batched;
                int64_t sa[3], sb[3];
                sa[0] = sb[0] = B;
                sa[o] = ta ? K : M;
                sa[o + 1] = ta ? M : K;
                sb[o] = tb ? Nn : K;
                sb[o + 1] = tb ? K : Nn;
                snprintf(name, sizeof name, "ma%d%d%d", batched, ta, tb);
                int32_t a = leaf_in(&c, name, t, nd, sa, -2, 2);
                snprintf(name, sizeof name, "mb%d%d%d", batched, ta, tb);
                int32_t b = leaf_in(&c, name, t, nd, sb, -2, 2);
                int64_t nb = batched ? B : 1;
                double *ref = alloc_d(nb * M * Nn), *bound = alloc_d(nb * M * Nn);
                const double *av = vals(&c, a), *bv = vals(&c, b);
                for (int64_t bi = 0; bi < nb; bi++)
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < Nn; j++) {
                            double s = 0, sabs = 0;
                            for (int64_t k = 0; k < K; k++) {
                                double x = av[bi * M * K + (ta ? k * M + i : i * K + k)];
                                double y = bv[bi * K * Nn + (tb ? j * K + k : k * Nn + j)];
                                s += x * y;
                                sabs += fabs(x * y);
                            }
                            ref[(bi * M + i) * Nn + j] = s;
                            bound[(bi * M + i) * Nn + j] = (double)(K + 2) * u * sabs;
                        }
                snprintf(name, sizeof name, "matmul_b%d_ta%d_tb%d", batched, ta, tb);
                expect(&c, name, ir_matmul(&c.g, a, b, ta, tb), ref, bound);
            }
    run_case(&c);
    case_end(&c);
}

/* mask pattern p over n positions: 0 every other block of 7 dead, 1 the
 * first 260 dead (a whole K block of 256, the first micro-panels), 2 all
 * dead, 3 none dead, 4 an iota (only position 0 dead: the mask is not
 * stored, the loops evaluate it); dead values are 0 or negative, live ones
 * positive */
static double mask_value(int p, int64_t i) {
    if (p == 4) return (double)i;
    int dead = p == 0 ? (i / 7) % 2 == 0 : p == 1 ? i < 260 : p == 2;
    if (dead) return i % 3 == 0 ? -0.5 : 0.0;
    return i % 2 ? 1.0 : 0.25;
}

/* matmul_masked against a double loop that drops the dead rows / k: shapes
 * with two M blocks, two K blocks, edge micro-tiles, all four (ta, tb) */
static void group_matmul_masked(IrDType t) {
    char label[64], name[64]; /* the longest name is 23 bytes; 64 holds any four ints */
    snprintf(label, sizeof label, "matmul_masked %s", dt_name(t));
    Case c;
    case_begin(&c, label, 70 + (uint64_t)t);
    const int64_t M = 100, K = 300, Nn = 37;
    double u = t == DT_F32 ? FLT_EPSILON / 2 : DBL_EPSILON / 2;
    for (int dim = 0; dim < 2; dim++)
        for (int p = 0; p < 5; p++)
            for (int tt = 0; tt < 4; tt++) {
                int ta = tt >> 1, tb = tt & 1;
                if (p != 0 && tt != (dim ? 2 : 1)) continue; /* the other patterns on the shapes the head uses */
                int64_t sa[2] = {ta ? K : M, ta ? M : K}, sb[2] = {tb ? Nn : K, tb ? K : Nn}, sm[1] = {dim ? K : M};
                snprintf(name, sizeof name, "xa%d%d%d", dim, p, tt);
                int32_t a = leaf_in(&c, name, t, 2, sa, -2, 2);
                snprintf(name, sizeof name, "xb%d%d%d", dim, p, tt);
                int32_t b = leaf_in(&c, name, t, 2, sb, -2, 2);
                snprintf(name, sizeof name, "xm%d%d%d", dim, p, tt);
                int32_t m = leaf_in(&c, name, t, 1, sm, 0, 1);
                double *mv = vals(&c, m);
                for (int64_t i = 0; i < sm[0]; i++) mv[i] = mask_value(p, i);
                if (p == 4) m = ir_iota(&c.g, 0, t, 1, sm);
                double *ref = alloc_d(M * Nn), *bound = alloc_d(M * Nn);
                const double *av = vals(&c, a), *bv = vals(&c, b);
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < Nn; j++) {
                        double sum = 0, sabs = 0;
                        for (int64_t k = 0; k < K; k++) {
                            if (!((dim ? mv[k] : mv[i]) > 0)) continue;
                            double x = av[ta ? k * M + i : i * K + k], y = bv[tb ? j * K + k : k * Nn + j];
                            sum += x * y;
                            sabs += fabs(x * y);
                        }
                        ref[i * Nn + j] = sum;
                        bound[i * Nn + j] = (double)(K + 2) * u * sabs;
                    }
                snprintf(name, sizeof name, "mm_masked_d%d_p%d_ta%d_tb%d", dim, p, ta, tb);
                expect(&c, name, ir_matmul_masked(&c.g, a, b, ta, tb, m, dim), ref, bound);
            }
    run_case(&c);
    case_end(&c);
}

/* the [V, H] rows of base (zeros when NULL) with the 8 source rows of src
 * added at their ids in increasing order (ids outside [0, V) dropped), in
 * f32 when t is: rounded after every add */
static double *scatter_ref(IrDType t, const double *src, const double *ids, const double *base, int64_t V, int64_t H) {
    double *ref = alloc_d(V * H);
    for (int64_t v = 0; v < V; v++)
        for (int64_t h = 0; h < H; h++) {
            double acc = base ? base[v * H + h] : 0;
            float accf = (float)acc;
            for (int64_t i = 0; i < 8; i++)
                if ((int64_t)ids[i] == v) {
                    acc += src[i * H + h];
                    accf += (float)src[i * H + h];
                }
            ref[v * H + h] = t == DT_F32 ? accf : acc;
        }
    return ref;
}

static void group_index(IrDType t) {
    char label[64];
    snprintf(label, sizeof label, "indexing %s", dt_name(t));
    Case c;
    case_begin(&c, label, 60 + (uint64_t)t);
    const int64_t V = 6, H = 5;
    int64_t ts[2] = {V, H}, is[2] = {2, 4};
    int32_t table = leaf_in(&c, "table", t, 2, ts, -3, 3);
    int32_t ids = leaf_in(&c, "ids", DT_I32, 2, is, 0, 1);
    /* repeats, out-of-range on both sides */
    static const double idv[8] = {1, 4, 1, -1, 5, 6, 0, 4};
    memcpy(vals(&c, ids), idv, sizeof idv);
    double *ref = alloc_d(8 * H);
    for (int64_t r = 0; r < 8; r++)
        for (int64_t h = 0; h < H; h++) {
            int64_t id = (int64_t)idv[r];
            ref[r * H + h] = id >= 0 && id < V ? vals(&c, table)[id * H + h] : 0.0;
        }
    expect(&c, "gather_rows", ir_gather_rows(&c.g, table, ids), ref, NULL);

    int64_t gs[3] = {2, 4, H};
    int32_t gv = leaf_in(&c, "gv", t, 3, gs, -3, 3);
    expect(&c, "scatter_add_rows", ir_scatter_add_rows(&c.g, gv, ids, V), scatter_ref(t, vals(&c, gv), idv, NULL, V, H),
           NULL);
    /* into a base: each row starts at the base's value and adds its
     * sources in increasing i (f32: rounded after every add) */
    int32_t base = leaf_in(&c, "base", t, 2, ts, -3, 3);
    ref = scatter_ref(t, vals(&c, gv), idv, vals(&c, base), V, H);
    expect(&c, "scatter_add_into", ir_scatter_add_into(&c.g, gv, ids, base), ref, NULL);

    int64_t xs[3] = {2, 4, V};
    int32_t x = leaf_in(&c, "px", t, 3, xs, -3, 3);
    ref = alloc_d(8);
    for (int64_t p = 0; p < 8; p++) {
        int64_t id = (int64_t)idv[p];
        ref[p] = id >= 0 && id < V ? vals(&c, x)[p * V + id] : 0.0;
    }
    expect(&c, "pick", ir_pick(&c.g, x, ids), ref, NULL);

    int32_t g = leaf_in(&c, "ug", t, 2, is, -3, 3);
    ref = alloc_d(8 * V);
    for (int64_t p = 0; p < 8; p++)
        for (int64_t j = 0; j < V; j++) ref[p * V + j] = (int64_t)idv[p] == j ? vals(&c, g)[p] : 0.0;
    expect(&c, "unpick", ir_unpick(&c.g, g, ids, V), ref, NULL);
    run_case(&c);
    case_end(&c);
}

/* outputs the schedule serves with copies and fills: an input returned as
 * is, one value under two names, reshapes of a constant and of iota, a
 * reshape of a value that already has an output slot */
static void group_copies(void) {
    Case c;
    case_begin(&c, "copies and fills", 70);
    int64_t xs[2] = {2, 3}, f6[1] = {6}, s32[2] = {3, 2};
    int32_t x = leaf_in(&c, "x", DT_F32, 2, xs, -2, 2);
    double *ref = alloc_d(6);
    memcpy(ref, vals(&c, x), 6 * sizeof *ref);
    expect(&c, "x_out", x, ref, NULL);
    int32_t y = ir_unary(&c.g, OP_EXP, x);
    for (int k = 0; k < 3; k++) {
        ref = alloc_d(6);
        for (int e = 0; e < 6; e++) ref[e] = expf((float)vals(&c, x)[e]);
        int32_t v = k < 2 ? y : ir_reshape(&c.g, y, 1, f6);
        expect(&c, k == 0 ? "y" : k == 1 ? "y_again" : "y_flat", v, ref, NULL);
    }
    ref = alloc_d(6);
    for (int e = 0; e < 6; e++) ref[e] = (double)(float)2.5;
    expect(&c, "const_reshaped", ir_reshape(&c.g, ir_const(&c.g, 2.5, DT_F32, 1, f6), 2, xs), ref, NULL);
    ref = alloc_d(6);
    for (int e = 0; e < 6; e++) ref[e] = e;
    expect(&c, "iota_reshaped", ir_reshape(&c.g, ir_iota(&c.g, 0, DT_I32, 1, f6), 2, s32), ref, NULL);
    /* and a constant read by a kernel through a reshape */
    ref = alloc_d(6);
    for (int e = 0; e < 6; e++) ref[e] = (float)vals(&c, x)[e] * (float)(e % 3);
    int64_t i13[2] = {1, 3};
    int32_t ramp = ir_broadcast(&c.g, ir_reshape(&c.g, ir_iota(&c.g, 0, DT_F32, 1, (int64_t[]){3}), 2, i13), 2, xs);
    expect(&c, "x_times_ramp", ir_mul(&c.g, x, ramp), ref, NULL);
    run_case(&c);
    case_end(&c);
}

/* ---- fused kernels: the evaluator computes several members inline --------- */
static void group_fused(void) {
    IrGraph g;
    ir_init(&g);
    int64_t xs[3] = {3, 1, 4}, zs[3] = {3, 5, 4}, ws[2] = {4, 5}, y2[2] = {15, 4};
    int perm[3] = {2, 0, 1};
    int32_t x = ir_input(&g, "x", DT_F32, 3, xs);
    int32_t z = ir_input(&g, "z", DT_F32, 3, zs);
    int32_t w = ir_input(&g, "w", DT_F32, 2, ws);
    int32_t bc = ir_broadcast(&g, x, 3, zs);
    int32_t e = ir_unary(&g, OP_EXP, bc);
    int32_t y = ir_add(&g, e, z);
    int32_t sn = ir_unary(&g, OP_SIN, y);
    int32_t pm = ir_permute(&g, sn, perm);
    int32_t p = ir_pad(&g, pm, 1, 1, 2);
    int32_t sq = ir_mul(&g, y, y);
    int32_t s = ir_reduce(&g, OP_REDUCE_SUM, sq, 1);
    int32_t ng = ir_unary(&g, OP_NEG, y);
    int32_t rs = ir_reshape(&g, ng, 2, y2);
    int32_t m = ir_matmul(&g, rs, w, 0, 0);
    /* reshapes between a consumer that works on coordinates (permute) and
     * an inline op: a kept last dim (4) and unit dims, and no dim kept */
    int64_t u3[3] = {1, 15, 4}, t2[2] = {3, 20};
    int perm3[3] = {2, 1, 0}, perm2[2] = {1, 0};
    int32_t ng2 = ir_unary(&g, OP_NEG, z);
    int32_t rs2 = ir_reshape(&g, ng2, 3, u3);
    int32_t q1 = ir_permute(&g, rs2, perm3);
    int32_t sn2 = ir_unary(&g, OP_SIN, z);
    int32_t rs3 = ir_reshape(&g, sn2, 2, t2);
    int32_t q2 = ir_permute(&g, rs3, perm2);
    CHECK(ir_add_output(&g, "q1", q1, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(&g, "q2", q2, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(&g, "p", p, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(&g, "s", s, IR_OUT_VALUE) == 0);
    CHECK(ir_add_output(&g, "m", m, IR_OUT_VALUE) == 0);
    CHECK_MSG(!g.err[0], "%s", g.err);

    char err[512];
    IrGraph *gp = &g;
    TensorTable tt;
    SchedPlan plan;
    CHECK(tensor_table_build(&tt, &gp, 1, err, sizeof err) == 0);
    CHECK_MSG(sched_plan(&g, &tt, &plan, err, sizeof err) == 0, "%s", err);
    DpocStep a, b;
    char path[400];
    snprintf(path, sizeof path, "%s/fused_a.so", tcg_tmpdir());
    CodegenEntry ent = {"train_step", &g, &plan};
    CodegenOptions o = {0};
    CHECK_MSG(codegen_build_so(&ent, 1, &tt, &o, path, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(dpoc_step_open(&a, path, err, sizeof err) == 0, "%s", err);
    unlink(path);
    /* the same schedule regrouped by hand into six kernels:
     * {broadcast, exp, add} {sin, permute, pad} {mul, reduce} {neg, reshape, matmul}
     * {neg, reshape, permute} {sin, reshape, permute} */
    int32_t mem[] = {bc, e, y, sn, pm, p, sq, s, ng, rs, m, ng2, rs2, q1, sn2, rs3, q2};
    SchedKernel ks[6] = {{y, 0, 3}, {p, 3, 3}, {s, 6, 2}, {m, 8, 3}, {q1, 11, 3}, {q2, 14, 3}};
    SchedPlan fp = plan;
    fp.kernels = ks;
    fp.nkernels = 6;
    fp.members = mem;
    fp.ncopies = 0;
    ent.plan = &fp;
    snprintf(path, sizeof path, "%s/fused_b.so", tcg_tmpdir());
    CHECK_MSG(codegen_build_so(&ent, 1, &tt, &o, path, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(dpoc_step_open(&b, path, err, sizeof err) == 0, "%s", err);
    unlink(path);
    CHECK(b.nkernels == 6);
    TcgRng rng = {7};
    DpocStep *st[2] = {&a, &b};
    double xv[12], zv[60], wv[20];
    for (int i = 0; i < 12; i++) xv[i] = tcg_uniform(&rng, -1, 1);
    for (int i = 0; i < 60; i++) zv[i] = tcg_uniform(&rng, -1, 1);
    for (int i = 0; i < 20; i++) wv[i] = tcg_uniform(&rng, -1, 1);
    for (int i = 0; i < 2; i++) {
        tcg_set(st[i], "x", DPOC_ROLE_INPUT, xv);
        tcg_set(st[i], "z", DPOC_ROLE_INPUT, zv);
        tcg_set(st[i], "w", DPOC_ROLE_INPUT, wv);
        tcg_run(st[i], i ? &tcg_chunked : NULL);
    }
    CHECK_MSG(memcmp(a.regions[DPOC_R_OUTPUTS], b.regions[DPOC_R_OUTPUTS], (size_t)a.region_size[DPOC_R_OUTPUTS]) == 0,
              "fused kernels give other bits than unfused ones");
    /* p = pad(permute(sin(y), {2,0,1}), axis 1, 1, 2) has shape [4, 6, 5]:
     * p[i4, i3 + 1, i5] = sin(y[i3, i5, i4]) and zero in the padding */
    double pv[120];
    tcg_get(&b, "p", DPOC_ROLE_OUTPUT, pv, 120);
    int bad = 0;
    for (int i4 = 0; i4 < 4; i4++)
        for (int j = 0; j < 6; j++)
            for (int i5 = 0; i5 < 5; i5++) {
                int i3 = j - 1;
                double want = 0.0;
                double got = pv[(i4 * 6 + j) * 5 + i5];
                if (i3 >= 0 && i3 < 3) { /* exp is within 1 ulp of expf (codegen/cg_math.c) */
                    float ev = expf((float)xv[i3 * 4 + i4]), zz = (float)zv[(i3 * 5 + i5) * 4 + i4];
                    want = sinf(ev + zz);
                    if (got == sinf(nextafterf(ev, -INFINITY) + zz) || got == sinf(nextafterf(ev, INFINITY) + zz))
                        want = got;
                }
                bad += got != want;
            }
    CHECK_MSG(bad == 0, "fused pad/permute/sin: %d wrong elements", bad);
    /* q1[i4, f, 0] = -z[f / 5, f % 5, i4] (f < 15); q2[j, i] = sin(z) at flat i * 20 + j */
    double q1v[60], q2v[60];
    tcg_get(&b, "q1", DPOC_ROLE_OUTPUT, q1v, 60);
    tcg_get(&b, "q2", DPOC_ROLE_OUTPUT, q2v, 60);
    bad = 0;
    for (int i4 = 0; i4 < 4; i4++)
        for (int f = 0; f < 15; f++) bad += q1v[i4 * 15 + f] != -(double)(float)zv[f * 4 + i4];
    for (int j = 0; j < 20; j++)
        for (int i = 0; i < 3; i++) bad += q2v[j * 3 + i] != (double)sinf((float)zv[i * 20 + j]);
    CHECK_MSG(bad == 0, "fused reshape/permute: %d wrong elements", bad);
    printf("  %-34s 6 fused kernels = unfused bits\n", "fused members");
    dpoc_step_close(&a);
    dpoc_step_close(&b);
    sched_plan_free(&plan);
    tensor_table_free(&tt);
    ir_free(&g);
}

/* ---- collectives: this process plays tp rank 1 of a 2-rank mesh whose
 * other rank holds half of every value (all_reduce_sum: x + x/2, exact in
 * f32 and f64) and the same blocks (all_gather: [x; x]) ---- */
static int coll_fail; /* non-zero: the collectives report this status */
static int fake_all_reduce(void *ctx, DpocAxis axis, void *buf, int64_t n, DpocCollType type) {
    (void)ctx;
    if (coll_fail || axis != DPOC_AXIS_TP) return coll_fail ? coll_fail : 9;
    for (int64_t i = 0; i < n; i++) {
        if (type == DPOC_COLL_F64) ((double *)buf)[i] = ((double *)buf)[i] * 0.5 + ((double *)buf)[i];
        else ((float *)buf)[i] = ((float *)buf)[i] * 0.5f + ((float *)buf)[i];
    }
    return 0;
}
static int fake_all_gather(void *ctx, DpocAxis axis, const void *send, void *recv, int64_t bytes) {
    (void)ctx;
    if (coll_fail || axis != DPOC_AXIS_TP) return coll_fail ? coll_fail : 9;
    memcpy(recv, send, (size_t)bytes);
    memcpy((uint8_t *)recv + bytes, send, (size_t)bytes);
    return 0;
}

static void group_collective(IrDType t) {
    char label[64];
    snprintf(label, sizeof label, "collectives %s", dt_name(t));
    Case c;
    case_begin(&c, label, 80 + (uint64_t)t);
    int64_t xs[2] = {3, 4}, rs[2] = {1, 12};
    int32_t x = leaf_in(&c, "x", t, 2, xs, -3, 3);
    double *xv = vals(&c, x);
    double *ref = alloc_d(12);
    for (int i = 0; i < 12; i++) ref[i] = round_to(t, round_to(t, xv[i] * 0.5) + xv[i]);
    expect(&c, "reduced", ir_all_reduce(&c.g, ir_mul(&c.g, x, ir_const_like(&c.g, 1.0, x)), IR_MESH_TP), ref, NULL);
    ref = alloc_d(24);
    for (int i = 0; i < 24; i++) ref[i] = xv[i % 12];
    expect(&c, "gathered", ir_all_gather(&c.g, ir_reshape(&c.g, ir_unary(&c.g, OP_NEG, ir_unary(&c.g, OP_NEG, x)), 2, rs), IR_MESH_TP, 0, 2), ref, NULL);
    ref = alloc_d(2);
    ref[0] = 1; /* tp rank */
    ref[1] = 0; /* dp rank */
    int64_t one[1] = {1};
    int32_t tpr = ir_reshape(&c.g, ir_add(&c.g, ir_axis_index(&c.g, IR_MESH_TP), ir_const(&c.g, 0, DT_I32, 0, NULL)), 1, one);
    int32_t dpr = ir_reshape(&c.g, ir_add(&c.g, ir_axis_index(&c.g, IR_MESH_DP), ir_const(&c.g, 0, DT_I32, 0, NULL)), 1, one);
    expect(&c, "ranks", ir_concat(&c.g, tpr, dpr, 0), ref, NULL);
    DpocStep s;
    char err[512];
    CHECK_MSG(ir_verify(&c.g, err, sizeof err) == 0, "%s: verify: %s", c.label, err);
    if (tcg_compile(&c.g, &s) == 0) {
        for (int32_t id = 0; id < c.g.n; id++) covered[N(&c, id)->op] = 1;
        DpocServices svc = s.serial;
        svc.tp_rank = 1;
        svc.tp_size = 2;
        svc.all_reduce_sum = fake_all_reduce;
        svc.all_gather = fake_all_gather;
        tcg_set(&s, "x", DPOC_ROLE_INPUT, xv);
        coll_fail = 0;
        CHECK_MSG(tcg_run(&s, &svc) == 0, "%s: the entry failed", c.label);
        for (int i = 0; i < c.nout; i++) {
            Out *o = &c.out[i];
            int64_t n = numel_of(&c, o->id);
            double *got = alloc_d(n);
            if (tcg_get(&s, o->name, DPOC_ROLE_OUTPUT, got, n) == 0)
                for (int64_t e = 0; e < n; e++)
                    CHECK_MSG(tcg_same(got[e], o->ref[e]), "%s: %s[%lld] = %.17g, reference %.17g", c.label, o->name,
                              (long long)e, got[e], o->ref[e]);
            free(got);
        }
        coll_fail = 7; /* a failed collective: the entry returns its status at once */
        CHECK_MSG(dpoc_step_run(&s, s.manifest->train_step ? s.manifest->train_step : s.manifest->logps, &svc) == 7,
                  "%s: a failing collective's status is not returned", c.label);
        printf("  %-34s %3d outputs, status of a failed collective returned\n", c.label, c.nout);
        dpoc_step_close(&s);
    }
    case_end(&c);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    IrDType fts[2] = {DT_F32, DT_F64};
    for (int i = 0; i < 2; i++) {
        if (!only || !strcmp(only, "unary")) group_unary(fts[i]);
        if (!only || !strcmp(only, "binary")) group_binary(fts[i]);
        if (!only || !strcmp(only, "movement")) group_movement(fts[i]);
        if (!only || !strcmp(only, "reduce")) group_reduce(fts[i]);
        if (!only || !strcmp(only, "matmul")) group_matmul(fts[i]);
        if (!only || !strcmp(only, "matmul")) group_matmul_masked(fts[i]);
        if (!only || !strcmp(only, "index")) group_index(fts[i]);
    }
    if (!only || !strcmp(only, "binary")) group_binary(DT_I32);
    if (!only || !strcmp(only, "movement")) group_movement(DT_I32);
    if (!only || !strcmp(only, "index")) group_index(DT_I32);
    if (!only || !strcmp(only, "leaves")) group_cast_leaves();
    if (!only || !strcmp(only, "reduce")) group_reduce(DT_I32);
    if (!only || !strcmp(only, "leaves")) group_copies();
    if (!only || !strcmp(only, "fused")) group_fused();
    if (!only || !strcmp(only, "collective")) {
        group_collective(DT_F32);
        group_collective(DT_F64);
    }
    if (!only) /* params are leaves read in place; every other op must have been compiled and checked */
        for (int op = 0; op < OP_COUNT; op++)
            CHECK_MSG(op == OP_PARAM || op == OP_ATTENTION || op == OP_ATTENTION_GRAD || covered[op], /* attention: test_codegen_attention */
                      "op %s has no forward test", ir_op_info[op].name);
    return check_done("codegen ops");
}
