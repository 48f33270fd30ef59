/* test_ir.c — tests of the IR text format, the parser's errors and the
 * verifier.
 *
 * Usage: test_ir GROUP [CASES_DIR], GROUP one of roundtrip, hashcons,
 * errors, verify, fuzz, cases. Each group builds graphs through the public
 * builder API (or parses text), checks real properties and counts every
 * check; the program prints "N passed, M failed" and exits non-zero on any
 * failure.
 *
 * - roundtrip: a small MLP, an attention-like block and every op of ops.def
 *   in f32, f64 and i32 where inference allows it (and rejected where it does
 *   not) pass ir_verify, and print -> parse -> print is byte-identical with
 *   the same nodes; special doubles, escaped names and odd location files
 *   survive bit for bit.
 * - hashcons: identical nodes merge (in the builder and through the parser),
 *   nodes that differ in a defining field do not.
 * - errors: a table of malformed texts, each with its exact message.
 * - verify: hand-corrupted copies of a valid graph, each with its message.
 * - fuzz: truncations and deterministic byte mutations of a valid text either
 *   fail with a located message or parse into a graph whose printout is a
 *   print/parse fixed point (run it under ASan/UBSan too).
 * - cases: every CASES_DIR/ *.ir parses, verifies and is a print fixed point;
 *   canonical.ir must equal its own printout.
 */
#include "ir/ir.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

/* ---- helpers ---------------------------------------------------------------- */

static int64_t shape_buf[8][IR_MAX_DIMS];
static int shape_next;
/* SH(2, 4, 8) -> a pointer to {4, 8} that stays valid for a few calls */
static const int64_t *shp(int nd, ...) {
    int64_t *s = shape_buf[shape_next++ & 7];
    va_list ap;
    va_start(ap, nd);
    for (int d = 0; d < nd; d++) s[d] = va_arg(ap, int);
    va_end(ap);
    return s;
}
#define SH(...) shp(__VA_ARGS__)

static int nodes_equal(const IrGraph *g, const IrNode *a, const IrGraph *h, const IrNode *b) {
    return a->op == b->op && a->dtype == b->dtype && a->ndim == b->ndim && a->flags == b->flags && a->partial == b->partial &&
           memcmp(a->in, b->in, sizeof a->in) == 0 && memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
           memcmp(a->attr, b->attr, sizeof a->attr) == 0 && memcmp(a->shard, b->shard, sizeof a->shard) == 0 &&
           memcmp(&a->fval, &b->fval, sizeof a->fval) == 0 && (a->name < 0) == (b->name < 0) &&
           strcmp(ir_str_get(g, a->name), ir_str_get(h, b->name)) == 0 && (a->loc.file < 0) == (b->loc.file < 0) &&
           (a->loc.file < 0 || (strcmp(ir_str_get(g, a->loc.file), ir_str_get(h, b->loc.file)) == 0 &&
                                a->loc.line == b->loc.line && a->loc.col == b->loc.col));
}

/* verify g; print, parse, verify, print again: same text, same nodes. */
static void check_roundtrip(const IrGraph *g, const char *label) {
    char err[512];
    check(g->err[0] == '\0', "%s: builder error: %s", label, g->err);
    check(ir_verify(g, err, sizeof err) == 0, "%s: verify: %s", label, err);
    char *t1 = ir_print_str(g);
    check(t1 != NULL, "%s: print", label);
    if (!t1) return;
    IrGraph h;
    ir_init(&h);
    int rc = ir_parse(&h, t1, label, err, sizeof err);
    check(rc == 0, "%s: parse of printed text: %s", label, err);
    if (rc == 0) {
        check(ir_verify(&h, err, sizeof err) == 0, "%s: verify after parse: %s", label, err);
        check(h.n == g->n && h.nout == g->nout, "%s: node/output counts %d/%d vs %d/%d", label, h.n, h.nout, g->n, g->nout);
        char *t2 = ir_print_str(&h);
        check(t2 && strcmp(t1, t2) == 0, "%s: print->parse->print differs:\n--- first\n%s--- second\n%s", label, t1,
              t2 ? t2 : "(null)");
        for (int32_t i = 0; i < g->n && i < h.n; i++)
            check(nodes_equal(g, ir_node(g, i), &h, ir_node(&h, i)), "%s: node %%%d differs after parse", label, i);
        for (int32_t i = 0; i < g->nout && i < h.nout; i++)
            check(g->outs[i].id == h.outs[i].id && g->outs[i].role == h.outs[i].role &&
                      strcmp(ir_str_get(g, g->outs[i].name), ir_str_get(&h, h.outs[i].name)) == 0,
                  "%s: output %d differs after parse", label, i);
        free(t2);
    }
    ir_free(&h);
    free(t1);
}

/* re-adds node `id` with other flags / sharding through the generic builder */
static int32_t add_variant(IrGraph *g, int32_t id, uint32_t flags, const int8_t *shard, uint8_t partial) {
    if (id < 0) return -1;
    IrNode n = *ir_node(g, id);
    n.flags = flags;
    if (shard) memcpy(n.shard, shard, (size_t)n.ndim);
    n.partial = partial;
    n.loc.file = -1;
    n.loc.line = 0;
    n.loc.col = 0;
    return ir_add_node(g, &n);
}

/* ---- graphs ----------------------------------------------------------------- */

/* Two-layer MLP with a log-softmax cross-entropy loss and stand-in grads. */
static void build_mlp(IrGraph *g, IrDType t) {
    ir_set_loc(g, "models/mlp.yaml", 3, 5);
    int32_t x = ir_input(g, "x", t, 2, SH(2, 4, 8));
    int32_t tg = ir_input(g, "targets", DT_I32, 1, SH(1, 4));
    int32_t w1 = ir_param(g, "fc1.weight", t, 2, SH(2, 16, 8), IR_PARAM_TRAINABLE);
    int32_t b1 = ir_param(g, "fc1.bias", t, 1, SH(1, 16), IR_PARAM_TRAINABLE);
    int32_t w2 = ir_param(g, "fc2.weight", t, 2, SH(2, 3, 16), IR_PARAM_TRAINABLE);
    int32_t wr = ir_param(g, "ref:fc2.weight", t, 2, SH(2, 3, 16), IR_PARAM_FROZEN);
    ir_set_loc(g, "models/mlp.yaml", 7, 9);
    int32_t mm = ir_matmul(g, x, w1, 0, 1);
    int32_t h = ir_add(g, mm, ir_bcast_to(g, b1, mm));
    h = ir_binary(g, OP_MAX, h, ir_const_like(g, 0.0, h));
    ir_set_loc(g, NULL, 0, 0);
    int32_t logits = ir_matmul(g, h, w2, 0, 1);
    int32_t ref = add_variant(g, ir_matmul(g, h, wr, 0, 1), IR_F_NOGRAD, NULL, 0);
    int32_t m = ir_reduce(g, OP_REDUCE_MAX, logits, 1);
    int32_t z = ir_sub(g, logits, ir_broadcast(g, m, 2, SH(2, 4, 3)));
    int32_t lse = ir_unary(g, OP_LOG, ir_reduce(g, OP_REDUCE_SUM, ir_unary(g, OP_EXP, z), 1));
    int32_t lp = add_variant(g, ir_sub(g, z, ir_broadcast(g, lse, 2, SH(2, 4, 3))), IR_F_SAVE, NULL, 0);
    int32_t picked = ir_pick(g, lp, tg);
    int32_t tot = ir_reduce(g, OP_REDUCE_SUM, picked, 0);
    int32_t loss = ir_scale(g, ir_unary(g, OP_NEG, ir_reshape(g, tot, 0, NULL)), 0.25);
    ir_add_output(g, "loss", loss, IR_OUT_LOSS);
    ir_add_output(g, "logps", picked, IR_OUT_VALUE);
    ir_add_output(g, "ref_logits", ref, IR_OUT_VALUE);
    ir_add_output(g, "fc1.weight", ir_scale(g, w1, 2.0), IR_OUT_GRAD);
    ir_add_output(g, "fc1.bias", ir_sum_to(g, ir_bcast_to(g, b1, h), b1), IR_OUT_GRAD);
    ir_add_output(g, "fc2.weight", ir_matmul(g, ir_unpick(g, picked, tg, 3), h, 1, 0), IR_OUT_GRAD);
}

/* x[B,T,H] @ w^T with w[H,H] shared across the batch */
static int32_t proj(IrGraph *g, int32_t x, int32_t w) {
    int32_t w3 = ir_broadcast(g, ir_reshape(g, w, 3, SH(3, 1, 8, 8)), 3, SH(3, 2, 8, 8));
    return ir_matmul(g, x, w3, 0, 1);
}

/* [2,4,8] -> heads [2,2,4,4] with rotary embedding */
static int32_t heads(IrGraph *g, int32_t y, IrDType t, int rope) {
    int32_t q = ir_permute(g, ir_reshape(g, y, 4, SH(4, 2, 4, 2, 4)), (const int[]){0, 2, 1, 3});
    if (!rope) return q;
    int32_t pos = ir_iota(g, 2, t, 4, SH(4, 2, 2, 4, 4));
    int32_t ang = ir_scale(g, pos, 0.5);
    int32_t q1 = ir_slice(g, q, 3, 0, 2), q2 = ir_slice(g, q, 3, 2, 4);
    int32_t rot = ir_concat(g, ir_unary(g, OP_NEG, q2), q1, 3);
    return ir_add(g, ir_mul(g, q, ir_unary(g, OP_COS, ang)), ir_mul(g, rot, ir_unary(g, OP_SIN, ang)));
}

/* One causal self-attention block with a residual, a padded shift and a
 * scalar loss; sharding annotations on a few values. */
static void build_attention(IrGraph *g, IrDType t) {
    ir_set_loc(g, "models/attn.yaml", 12, 3);
    int32_t x = ir_input(g, "hidden", t, 3, SH(3, 2, 4, 8));
    int32_t wq = ir_param(g, "q_proj.weight", t, 2, SH(2, 8, 8), IR_PARAM_TRAINABLE);
    int32_t wk = ir_param(g, "k_proj.weight", t, 2, SH(2, 8, 8), IR_PARAM_TRAINABLE);
    int32_t wv = ir_param(g, "v_proj.weight", t, 2, SH(2, 8, 8), IR_PARAM_TRAINABLE);
    int32_t wo = ir_param(g, "o_proj.weight", t, 2, SH(2, 8, 8), IR_PARAM_TRAINABLE);
    ir_set_loc(g, "models/attn.yaml", 20, 7);
    int32_t q = heads(g, proj(g, x, wq), t, 1), k = heads(g, proj(g, x, wk), t, 1), v = heads(g, proj(g, x, wv), t, 0);
    int32_t sc = ir_matmul(g, q, k, 0, 1);
    sc = ir_mul(g, sc, ir_unary(g, OP_RSQRT, ir_const_like(g, 4.0, sc)));
    int32_t row = ir_iota(g, 2, DT_I32, 4, SH(4, 2, 2, 4, 4)), col = ir_iota(g, 3, DT_I32, 4, SH(4, 2, 2, 4, 4));
    int32_t masked = ir_select(g, ir_binary(g, OP_CMP_LT, row, col), ir_const_like(g, -INFINITY, sc), sc);
    ir_set_loc(g, "models/attn.yaml", 31, 5);
    int32_t m = ir_broadcast(g, ir_reduce(g, OP_REDUCE_MAX, masked, 3), 4, SH(4, 2, 2, 4, 4));
    int32_t e = ir_unary(g, OP_EXP, ir_sub(g, masked, ir_unary(g, OP_STOP_GRAD, m)));
    int32_t p = ir_div(g, e, ir_broadcast(g, ir_reduce(g, OP_REDUCE_SUM, e, 3), 4, SH(4, 2, 2, 4, 4)));
    int32_t o = ir_reshape(g, ir_permute(g, ir_matmul(g, p, v, 0, 0), (const int[]){0, 2, 1, 3}), 3, SH(3, 2, 4, 8));
    ir_set_loc(g, NULL, 0, 0);
    int32_t out = proj(g, o, wo);
    out = add_variant(g, out, 0, (const int8_t[]){IR_MESH_DP, IR_SHARD_NONE, IR_SHARD_NONE}, 1u << IR_MESH_TP);
    int32_t shifted = ir_slice(g, ir_pad(g, out, 1, 1, 0), 1, 0, 4);
    int32_t res = ir_add(g, x, shifted);
    res = add_variant(g, res, IR_F_SAVE, (const int8_t[]){IR_MESH_DP, IR_SHARD_NONE, IR_MESH_TP}, 0);
    int32_t act = ir_mul(g, ir_unary(g, OP_SIGMOID, res),
                         ir_unary(g, OP_LOG1P, ir_unary(g, OP_SQRT, ir_unary(g, OP_ABS, res))));
    act = ir_binary(g, OP_MIN, act, ir_const_like(g, 1e30, act));
    int32_t s = ir_reduce(g, OP_REDUCE_SUM, ir_reduce(g, OP_REDUCE_SUM, ir_reduce(g, OP_REDUCE_SUM, act, 2), 1), 0);
    int32_t loss = ir_cast(g, ir_cast(g, ir_reshape(g, s, 0, NULL), t == DT_F32 ? DT_F64 : DT_F32), t);
    ir_add_output(g, "loss", loss, IR_OUT_LOSS);
    ir_add_output(g, "attn_out", o, IR_OUT_VALUE);
    ir_add_output(g, "q_proj.weight", ir_scale(g, wq, 0.5), IR_OUT_GRAD);
}

/* Every op of ops.def once per dtype where inference allows it; where it
 * does not, the builder must refuse with a message. */
static void build_all_ops(IrGraph *g, int covered[OP_COUNT]) {
    static const IrDType dts[3] = {DT_F32, DT_F64, DT_I32};
    for (int k = 0; k < 3; k++) {
        IrDType t = dts[k];
        char nm[32];
        const char *tn = ir_dtype_name(t);
        snprintf(nm, sizeof nm, "a_%s", tn);
        int32_t a = ir_input(g, nm, t, 2, SH(2, 2, 3));
        snprintf(nm, sizeof nm, "b_%s", tn);
        int32_t b = ir_input(g, nm, t, 2, SH(2, 2, 3));
        snprintf(nm, sizeof nm, "v_%s", tn);
        int32_t v = ir_input(g, nm, t, 1, SH(1, 2));
        snprintf(nm, sizeof nm, "m_%s", tn);
        int32_t sq = ir_input(g, nm, t, 3, SH(3, 2, 3, 3));
        int32_t ids = ir_input(g, "ids", DT_I32, 1, SH(1, 2));
        int32_t cond = ir_input(g, "cond", DT_I32, 2, SH(2, 2, 3));
        for (int op = 0; op < OP_COUNT; op++) {
            int legal = 1;
            int32_t r = -1;
            switch ((IrOp)op) {
            case OP_PARAM:
                snprintf(nm, sizeof nm, "p_%s", tn);
                legal = t != DT_I32;
                r = ir_param(g, nm, t, 2, SH(2, 3, 3), k == 1 ? IR_PARAM_FROZEN : IR_PARAM_TRAINABLE);
                break;
            case OP_INPUT: r = a; break;
            case OP_CONST: r = ir_const(g, k == 2 ? 7.0 : 0.1, t, 0, NULL); break;
            case OP_IOTA: r = ir_iota(g, 1, t, 2, SH(2, 2, 3)); break;
            case OP_EXP: case OP_LOG: case OP_LOG1P: case OP_SQRT: case OP_RSQRT: case OP_SIGMOID: case OP_COS: case OP_SIN:
                legal = t != DT_I32;
                r = ir_unary(g, (IrOp)op, a);
                break;
            case OP_NEG: case OP_ABS: case OP_STOP_GRAD: r = ir_unary(g, (IrOp)op, a); break;
            case OP_CAST: r = ir_cast(g, a, dts[(k + 1) % 3]); break;
            case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_LT:
                r = ir_binary(g, (IrOp)op, a, b);
                break;
            case OP_SELECT: r = ir_select(g, cond, a, b); break;
            case OP_BROADCAST: r = ir_broadcast(g, ir_reduce(g, OP_REDUCE_SUM, a, 0), 2, SH(2, 2, 3)); break;
            case OP_RESHAPE: r = ir_reshape(g, a, 3, SH(3, 3, 1, 2)); break;
            case OP_PERMUTE: r = ir_permute(g, sq, (const int[]){2, 0, 1}); break;
            case OP_SLICE: r = ir_slice(g, a, 1, 1, 3); break;
            case OP_PAD: r = ir_pad(g, a, 0, 2, 1); break;
            case OP_CONCAT: r = ir_concat(g, a, b, 1); break;
            case OP_REDUCE_SUM: case OP_REDUCE_MAX: r = ir_reduce(g, (IrOp)op, a, 1); break;
            case OP_MATMUL:
                legal = t != DT_I32;
                r = ir_matmul(g, a, b, 1, 0);
                break;
            case OP_MATMUL_MASKED: /* a row mask on f64, a contraction mask otherwise; v is [2] */
                legal = t != DT_I32;
                r = k == 1 ? ir_matmul_masked(g, a, b, 0, 1, v, 0) : ir_matmul_masked(g, a, b, 1, 0, v, 1);
                break;
            case OP_GATHER_ROWS: r = ir_gather_rows(g, a, ids); break;
            case OP_SCATTER_ADD_ROWS: r = ir_scatter_add_rows(g, a, ids, 5); break;
            case OP_SCATTER_ADD_INTO: r = ir_scatter_add_into(g, a, ids, b); break;
            case OP_PICK: r = ir_pick(g, a, ids); break;
            case OP_UNPICK: r = ir_unpick(g, v, ids, 4); break;
            case OP_ATTENTION: case OP_ATTENTION_GRAD: { /* sq as q, k and v: [2, 3, 3], segments [2, 3] */
                legal = t != DT_I32;
                r = ir_attention(g, sq, sq, sq, ir_input(g, "seg", DT_I32, 2, SH(2, 2, 3)), 1, 1);
                if (op == OP_ATTENTION_GRAD && r >= 0) r = ir_attention_grad(g, r, ir_const(g, 0.5, t, 3, SH(3, 2, 3, 4)));
                break;
            }
            case OP_ALL_REDUCE:
                legal = t != DT_I32;
                r = ir_all_reduce(g, a, IR_MESH_TP);
                break;
            case OP_ALL_GATHER: r = ir_all_gather(g, a, IR_MESH_DP, 1, 2); break;
            case OP_AXIS_INDEX: r = ir_axis_index(g, k == 0 ? IR_MESH_DP : IR_MESH_TP); break;
            case OP_COUNT: break;
            }
            if (legal) {
                check(r >= 0 && g->nodes[r].op == op, "all-ops: %s on %s failed: %s", ir_op_info[op].name, tn, g->err);
                if (r >= 0 && g->nodes[r].op == op) covered[op]++;
            } else {
                check(r < 0 && g->err[0] != '\0', "all-ops: %s on %s should be refused", ir_op_info[op].name, tn);
                g->err[0] = '\0';
            }
        }
    }
}

/* consts with every kind of double, names and files that need escaping */
static void build_specials(IrGraph *g) {
    static const double vals[] = {0.0, 1.0, 0.1, 1.0 / 3.0, -2.5e-7, 1e300, 4.9406564584124654e-324, 2.2250738585072014e-308,
                                  1.7976931348623157e308, 123456789.0, 16777217.0};
    int32_t acc = -1;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int32_t c = ir_const(g, vals[i], DT_F64, 1, SH(1, 2));
        int32_t c2 = ir_const(g, -vals[i], DT_F64, 1, SH(1, 2));
        acc = acc < 0 ? ir_add(g, c, c2) : ir_add(g, acc, ir_add(g, c, c2));
    }
    ir_const(g, INFINITY, DT_F32, 0, NULL);
    ir_const(g, -INFINITY, DT_F32, 0, NULL);
    ir_const(g, NAN, DT_F32, 0, NULL);
    ir_const(g, -NAN, DT_F32, 0, NULL);
    ir_const(g, -3.0, DT_I32, 2, SH(2, 1, 1));
    ir_set_loc(g, "my dir/model file.yaml", 1, 2);
    int32_t w = ir_param(g, "we\"ird\\na\nme\t\x01\xc3\xa9", DT_F32, 1, SH(1, 2), IR_PARAM_TRAINABLE);
    ir_set_loc(g, "C:\\models\\x.yaml", 3, 4);
    ir_input(g, "#not a comment", DT_I32, 6, SH(6, 1, 2, 1, 2, 1, 2));
    ir_input_rows(g, "pair rows", DT_I32, 2, SH(2, 3, 4), IR_INPUT_PAIRS);
    ir_set_loc(g, "a:b#c.yaml", 5, 6);
    ir_unary(g, OP_EXP, w);
    ir_set_loc(g, "", 7, 8);
    ir_unary(g, OP_LOG, w);
    ir_set_loc(g, NULL, 0, 0);
    ir_add_output(g, "sum \"all\"", acc, IR_OUT_VALUE);
    ir_add_output(g, "we\"ird\\na\nme\t\x01\xc3\xa9", ir_unary(g, OP_SIN, w), IR_OUT_GRAD);
}

static void group_roundtrip(void) {
    static const IrDType fl[2] = {DT_F32, DT_F64};
    for (int k = 0; k < 2; k++) {
        char label[64];
        IrGraph g;
        ir_init(&g);
        build_mlp(&g, fl[k]);
        snprintf(label, sizeof label, "mlp-%s", ir_dtype_name(fl[k]));
        check_roundtrip(&g, label);
        ir_free(&g);
        ir_init(&g);
        build_attention(&g, fl[k]);
        snprintf(label, sizeof label, "attention-%s", ir_dtype_name(fl[k]));
        check_roundtrip(&g, label);
        ir_free(&g);
    }
    int covered[OP_COUNT] = {0};
    IrGraph g;
    ir_init(&g);
    build_all_ops(&g, covered);
    check_roundtrip(&g, "all-ops");
    for (int op = 0; op < OP_COUNT; op++) check(covered[op] > 0, "all-ops: %s never built", ir_op_info[op].name);
    ir_free(&g);

    ir_init(&g);
    build_specials(&g);
    check_roundtrip(&g, "specials");
    char *t = ir_print_str(&g);
    check(t && strstr(t, "= const -nan") && strstr(t, "= const inf") && strstr(t, "= const 0.1\n") &&
              strstr(t, "= const -0\n") && strstr(t, "# \"my dir/model file.yaml\":1:2\n") &&
              strstr(t, "param \"we\\\"ird\\\\na\\nme\\t\\x01\\xc3\\xa9\" {role=trainable}") &&
              strstr(t, "# a:b#c.yaml:5:6\n") && strstr(t, "# \"\":7:8\n") && strstr(t, "= const -3\n") &&
              strstr(t, "= input \"pair rows\" {rows=pairs}") && strstr(t, "= input \"#not a comment\"   #"),
          "specials: unexpected spelling:\n%s", t ? t : "(null)");
    free(t);
    ir_free(&g);

    /* the spelling of one line of each kind, as documented */
    ir_init(&g);
    ir_set_loc(&g, "models/tiny.yaml", 31, 5);
    int32_t a = ir_input(&g, "a", DT_F32, 3, SH(3, 2, 16, 8));
    int32_t b = ir_param(&g, "b", DT_F32, 3, SH(3, 2, 64, 8), IR_PARAM_FROZEN);
    int32_t mm = ir_matmul(&g, a, b, 0, 1);
    ir_set_loc(&g, NULL, 0, 0);
    int32_t sh = add_variant(&g, mm, IR_F_NOGRAD | IR_F_SAVE, (const int8_t[]){IR_MESH_DP, IR_SHARD_NONE, IR_MESH_TP}, 0);
    add_variant(&g, sh, 0, NULL, (1u << IR_MESH_DP) | (1u << IR_MESH_TP));
    ir_iota(&g, 1, DT_I32, 2, SH(2, 16, 16));
    ir_const(&g, 0.5, DT_F32, 1, SH(1, 4));
    ir_add_output(&g, "mm", mm, IR_OUT_VALUE);
    t = ir_print_str(&g);
    const char *want =
        "%0: f32[2,16,8] = input \"a\"   # models/tiny.yaml:31:5\n"
        "%1: f32[2,64,8] = param \"b\" {role=frozen}   # models/tiny.yaml:31:5\n"
        "%2: f32[2,16,64] = matmul %0, %1 {ta=0, tb=1}   # models/tiny.yaml:31:5\n"
        "%3: f32[2,16,64] = matmul %0, %1 {ta=0, tb=1} nograd save @[dp,_,tp]\n"
        "%4: f32[2,16,64] = matmul %0, %1 {ta=0, tb=1} @[dp,_,tp] partial(dp,tp)\n"
        "%5: i32[16,16] = iota {axis=1}\n"
        "%6: f32[4] = const 0.5\n"
        "output value \"mm\" = %2\n";
    check(t && strcmp(t, want) == 0, "spelling: got\n%s", t ? t : "(null)");
    /* verify rejects %4 (dp both shards and is partial) but the text still round-trips */
    char err[512];
    check(ir_verify(&g, err, sizeof err) == -1 &&
              strcmp(err, "%4 (matmul): a mesh axis both shards a dimension and holds a partial sum") == 0,
          "spelling: verify: %s", err);
    free(t);
    ir_free(&g);
}

/* ---- hash-consing ------------------------------------------------------------ */

static void group_hashcons(void) {
    IrGraph g;
    ir_init(&g);
    int32_t a = ir_input(&g, "a", DT_F32, 2, SH(2, 3, 4));
    int32_t b = ir_input(&g, "b", DT_F32, 2, SH(2, 3, 4));
    check(ir_input(&g, "a", DT_F32, 2, SH(2, 3, 4)) == a, "same input merges");
    int32_t s1 = ir_add(&g, a, b);
    int32_t n = g.n;
    check(ir_add(&g, a, b) == s1 && g.n == n, "identical add merges");
    check(ir_add(&g, b, a) != s1, "add with swapped operands is another node");
    check(ir_slice(&g, a, 1, 0, 2) == ir_slice(&g, a, 1, 0, 2), "identical slices merge");
    check(ir_slice(&g, a, 1, 0, 2) != ir_slice(&g, a, 1, 1, 3), "slices with other attributes differ");
    check(ir_const(&g, 1.0, DT_F32, 0, NULL) == ir_const(&g, 1.0, DT_F32, 0, NULL), "equal consts merge");
    check(ir_const(&g, 0.0, DT_F32, 0, NULL) != ir_const(&g, -0.0, DT_F32, 0, NULL), "0.0 and -0.0 stay apart");
    check(ir_const(&g, 1.0, DT_F32, 0, NULL) != ir_const(&g, 1.0, DT_F64, 0, NULL), "consts of other dtypes differ");
    ir_set_loc(&g, "first.yaml", 1, 1);
    int32_t e1 = ir_unary(&g, OP_EXP, a);
    ir_set_loc(&g, "second.yaml", 2, 2);
    int32_t e2 = ir_unary(&g, OP_EXP, a);
    ir_set_loc(&g, NULL, 0, 0);
    check(e1 == e2 && strcmp(ir_str_get(&g, g.nodes[e1].loc.file), "first.yaml") == 0, "location is not part of the key");
    check(add_variant(&g, e1, IR_F_SAVE, NULL, 0) != e1, "flags are part of the key");
    check(add_variant(&g, e1, 0, (const int8_t[]){IR_MESH_DP, IR_SHARD_NONE}, 0) != e1, "sharding is part of the key");
    check(add_variant(&g, e1, 0, NULL, 1) != e1, "partial is part of the key");
    ir_free(&g);

    /* through the parser: equal lines map to one node, and later refs follow */
    const char *text =
        "# duplicate lines merge\n"
        "%10: f32[2] = input \"x\"\n"
        "%20: f32[2] = exp %10\n"
        "%25: f32[2] = exp %10   # other.yaml:4:4\n"
        "%30: f32[2] = add %20, %25\n"
        "output value \"y\" = %30\n";
    const char *want =
        "%0: f32[2] = input \"x\"\n"
        "%1: f32[2] = exp %0\n"
        "%2: f32[2] = add %1, %1\n"
        "output value \"y\" = %2\n";
    char err[512];
    ir_init(&g);
    int rc = ir_parse(&g, text, "dup.ir", err, sizeof err);
    check(rc == 0, "dup.ir: %s", err);
    char *t = ir_print_str(&g);
    check(rc == 0 && g.n == 3 && t && strcmp(t, want) == 0, "dup.ir: merged text is\n%s", t ? t : "(null)");
    free(t);
    ir_free(&g);
}

/* ---- malformed texts ------------------------------------------------------------ */

static const char *const HDR = "%0: f32[2,3] = input \"a\"\n%1: f32[3,4] = input \"b\"\n";

typedef struct BadCase {
    const char *body; /* appended to HDR when with_hdr */
    int with_hdr;
    const char *want;
} BadCase;

static const BadCase bad_cases[] = {
    {"%2: f32[2] = frob %0\n", 1, "t.ir:3:14: unknown op 'frob'"},
    {"%2: f32[2,3] = add %0\n", 1, "t.ir:3:20: add takes 2 operands, got 1"},
    {"%2: f32[2,3] = exp\n", 1, "t.ir:3:16: exp takes 1 operand, got 0"},
    {"%2: f32[2,3] = add %0, %7\n", 1, "t.ir:3:24: undefined value %7"},
    {"%2: f32[2,5] = matmul %0, %1 {ta=0, tb=0}\n", 1, "t.ir:3:5: declared type f32[2,5] but matmul gives f32[2,4]"},
    {"%2: f32[2,4] = matmul %0, %1 {ta=0, tb=1}\n", 1,
     "t.ir:3:16: matmul: contracted dims differ: f32[2,3] (ta=0) vs f32[3,4] (tb=1)"},
    /* attention's shape rules (ir/infer.c infer_attention) */
    {"%0: f32[2,4,3] = input \"q\"\n%1: i32[2,4] = input \"s\"\n%2: f32[2,4,4] = attention %0, %0, %0, %1 {groups=3, causal=1}\n", 0,
     "t.ir:3:18: attention: groups 3 must divide q's 4 rows into blocks of at most T = 4"},
    {"%0: f32[2,4,3] = input \"q\"\n%1: i32[2,5] = input \"s\"\n%2: f32[2,4,4] = attention %0, %0, %0, %1 {groups=1, causal=1}\n", 0,
     "t.ir:3:18: attention: segments must be [2, 4], got i32[2,5]"},
    {"%0: f32[2,4,3] = input \"q\"\n%1: f32[2,4,2] = input \"k\"\n%2: i32[2,4] = input \"s\"\n"
     "%3: f32[2,4,4] = attention %0, %1, %1, %2 {groups=1, causal=0}\n", 0,
     "t.ir:4:18: attention: k and v must be q's batch dims, [T, 3] and q's dtype: q f32[2,4,3], k f32[2,4,2], v f32[2,4,2]"},
    {"%0: f32[2,4,3] = input \"q\"\n%1: i32[2,4] = input \"s\"\n%2: f32[2,4,4] = attention %0, %0, %0, %1 {groups=1, causal=2}\n", 0,
     "t.ir:3:18: attention: causal must be 0 or 1, got 2"},
    {"%0: f32[2,4,3] = input \"q\"\n%1: i32[2,4] = input \"s\"\n%2: f32[2,4,4] = attention %0, %0, %0, %1 {groups=1, causal=1}\n"
     "%3: f32[2,12,3] = attention_grad %0, %0, %0, %1, %2, %0 {groups=1, causal=1}\n", 0,
     "t.ir:4:19: attention_grad: its gradient must be q's shape with D + 1 = 4 columns, got f32[2,4,3]"},
    {"%2: f32[2,1] = reduce_sum %0 {axes=1}\n", 1, "t.ir:3:31: unknown attribute 'axes' for reduce_sum"},
    {"%2: f32[2,1] = reduce_sum %0 {axis=1, axis=1}\n", 1, "t.ir:3:39: duplicate attribute 'axis'"},
    {"%2: f32[2,2] = slice %0 {axis=1, start=0}\n", 1, "t.ir:3:41: missing attribute 'stop' for slice"},
    {"%2: f32[2,3] = slice %0\n", 1, "t.ir:3:24: slice needs attributes {axis, start, stop}"},
    {"%2: f32[2,3] = exp %0 {axis=1}\n", 1, "t.ir:3:23: exp takes no attributes"},
    {"%2: f32[2,1] = reduce_sum %0 {axis=x}\n", 1, "t.ir:3:36: expected axis, found 'x'"},
    {"%2: f32[2,1] = reduce_sum %0 {axis=3}\n", 1, "t.ir:3:16: reduce_sum: axis 3 out of range for rank 2"},
    {"%0: f32[2] = input \"c\"\n", 1, "t.ir:3:1: duplicate id %0"},
    {"%1: f32[2] = input \"x\"\n", 1, "t.ir:3:1: duplicate id %1"},
    {"%5: f32[2] = input \"x\"\n%3: f32[2] = input \"y\"\n", 0, "t.ir:2:1: id %3 does not follow %5 (ids must increase)"},
    {"%0: f16[2] = input \"x\"\n", 0, "t.ir:1:5: unknown dtype 'f16' (expected f32, f64 or i32)"},
    {"%0: f32[2,0] = input \"x\"\n", 0, "t.ir:1:11: dimension 0 must be >= 1"},
    {"%0: f32[1,1,1,1,1,1,1] = input \"x\"\n", 0, "t.ir:1:21: more than 6 dimensions"},
    {"%0: f32[2 = input \"x\"\n", 0, "t.ir:1:11: expected ',' or ']' in the shape, found '='"},
    {"%0 f32[2] = input \"x\"\n", 0, "t.ir:1:4: expected ':' after the value id, found 'f'"},
    {"%0: f32[2] input \"x\"\n", 0, "t.ir:1:12: expected '=' after the type, found 'i'"},
    {"%0: f32[2] = input \"x\n", 0, "t.ir:1:20: unterminated string"},
    {"%0: f32[2] = input \"x\\q\"\n", 0, "t.ir:1:22: unknown escape in string (use \\\" \\\\ \\n \\t or \\xHH)"},
    {"%0: f32[2] = input \"x\\x00\"\n", 0, "t.ir:1:22: NUL byte in string"},
    {"%0: f32[2] = input x\n", 0, "t.ir:1:20: expected a quoted string, found 'x'"},
    {"%0: f32[2] = input \"\"\n", 0, "t.ir:1:20: input name is empty"},
    {"%0: i32[2] = param \"w\" {role=trainable}\n", 0, "t.ir:1:14: param: a param must have a float dtype"},
    {"%0: f32[2] = param \"w\" {role=learned}\n", 0, "t.ir:1:30: expected 'trainable' or 'frozen' for role"},
    {"%0: f32[2] = param \"w\" {role=5}\n", 0, "t.ir:1:30: expected 'trainable' or 'frozen' for role"},
    {"%0: f32[2] = param \"w\" {role=}\n", 0, "t.ir:1:30: expected 'trainable' or 'frozen' for role"},
    {"%0: f32[2] = param \"w\"\n", 0, "t.ir:1:23: param needs attributes {role}"},
    {"%0: i32[2] = input \"x\" {rows=batch}\n", 0, "t.ir:1:30: expected 'seqs' or 'pairs' for rows"},
    {"%0: i32[2] = input \"x\" {role=frozen}\n", 0, "t.ir:1:25: unknown attribute 'role' for input"},
    {"%0: i32[2] = input \"x\" {rows=pairs}\n%1: i32[2] = input \"x\"\n", 0,
     "t.ir:2:1: input \"x\" is already declared by %0 with another type or attribute"},
    {"%0: f32[2] = param \"w\" {role=frozen}\n%1: f32[3] = param \"w\" {role=frozen}\n", 0,
     "t.ir:2:1: param \"w\" is already declared by %0 with another type or attribute"},
    {"%0: i32[2] = input \"x\"\n%1: i32[2] = exp %0\n", 0, "t.ir:2:14: exp: expected a float operand, got i32"},
    {"%0: f32[] = const 1.5x\n", 0, "t.ir:1:19: malformed number '1.5x'"},
    {"%0: f32[] = const 1e\n", 0, "t.ir:1:19: malformed number '1e'"},
    {"%0: f32[] = const 1e999\n", 0, "t.ir:1:19: number 1e999 out of range for a double"},
    {"%0: f32[] = const infinity\n", 0, "t.ir:1:19: expected a number, found 'i'"},
    {"%0: f32[] = const 1 2\n", 0, "t.ir:1:21: expected end of line, found '2'"},
    {"%0: f32[2,3] = input \"x\" keep\n", 0, "t.ir:1:26: unknown flag 'keep' (expected nograd, save, remat, recomputed, @[...] or partial(...))"},
    {"%0: f32[2,3] = input \"x\" save save\n", 0, "t.ir:1:31: duplicate flag 'save'"},
    {"%0: f32[2,3] = input \"x\" @[dp]\n", 0, "t.ir:1:26: sharding has 1 entry, the value has rank 2"},
    {"%0: f32[2,3] = input \"x\" @[dp,pp]\n", 0, "t.ir:1:31: unknown mesh axis 'pp' (expected dp, tp or _)"},
    {"%0: f32[2,3] = input \"x\" partial(tp,tp)\n", 0, "t.ir:1:37: duplicate axis 'tp' in partial"},
    {"%0: f32[2,3] = input \"x\" partial()\n", 0, "t.ir:1:34: expected a mesh axis, found ')'"},
    {"%0: f32[2,3,4] = input \"x\"\n%1: f32[4,2,3] = permute %0 {perm=[2,0]}\n", 0,
     "t.ir:2:18: perm has 2 entries, the operand has rank 3"},
    {"%0: f32[2,3] = input \"x\"\n%1: f32[3,2] = permute %0 {perm=[1,1]}\n", 0,
     "t.ir:2:16: permute: perm is not a permutation of 0..1"},
    {"%0: f32[2,3] = input \"x\"\n%1: f32[3,2] = reshape %0\n%2: f32[6] = reshape %0\n%3: f32[7] = reshape %0\n", 0,
     "t.ir:4:14: reshape: reshape of f32[2,3] to 7 elements changes the element count"},
    {"%0: f32[2] = input \"x\"\n%1: f64[2] = reshape %0\n", 0, "t.ir:2:5: declared type f64[2] but reshape gives f32[2]"},
    {"%0: f32[] = const 1\noutput lost \"l\" = %0\n", 0, "t.ir:2:8: unknown output role 'lost' (expected loss, value or grad)"},
    {"%0: f32[] = const 1\noutput loss \"l\" = %0\noutput value \"l\" = %0\n", 0, "t.ir:3:14: duplicate output \"l\""},
    {"%0: f32[] = const 1\noutput loss \"l\" = %1\n", 0, "t.ir:2:19: undefined value %1"},
    {"%0: f32[] = const 1\noutput loss \"l\" %0\n", 0, "t.ir:2:17: expected '=' after the output name, found '%'"},
    {"hello\n", 0, "t.ir:1:1: expected a node line (%N: ...) or an output line, found 'h'"},
    {"  \n# just a comment\n\n%x: f32[] = const 1\n", 0, "t.ir:4:2: expected value id, found 'x'"},
    {"%99999999999: f32[] = const 1\n", 0, "t.ir:1:2: value id 99999999999 out of range [0, 2147483647]"},
    {"%0: f32[2] = input \"\x80\x01\"\n", 0, "t.ir:1:22: control byte 0x01 in string (write \\x01)"},
    {"%0: f32[4611686018427387904,2] = input \"x\"\n", 0, "t.ir:1:29: type has more than 2^62 elements"},
    {"%0: f32[3] = input \"x\"\n%1: f32[3] = pad %0 {axis=0, lo=1152921504606846977, hi=0}\n", 0,
     "t.ir:2:33: lo 1152921504606846977 out of range [-1152921504606846976, 1152921504606846976]"},
};

static void group_errors(void) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const BadCase *c = &bad_cases[i];
        char text[1024], err[512] = "";
        snprintf(text, sizeof text, "%s%s", c->with_hdr ? HDR : "", c->body);
        IrGraph g;
        ir_init(&g);
        int rc = ir_parse(&g, text, "t.ir", err, sizeof err);
        check(rc == -1 && strcmp(err, c->want) == 0, "error case %zu:\n  text: %s  want: %s\n  got:  %s (rc %d)", i, text,
              c->want, err, rc);
        ir_free(&g);
    }
    /* the header alone is fine, and the parser refuses a non-empty graph */
    IrGraph g;
    char err[512];
    ir_init(&g);
    check(ir_parse(&g, HDR, "t.ir", err, sizeof err) == 0 && g.n == 2, "header parses: %s", err);
    check(ir_parse(&g, HDR, "t.ir", err, sizeof err) == -1 && strcmp(err, "t.ir:1:1: ir_parse needs an empty graph") == 0,
          "non-empty graph refused: %s", err);
    ir_free(&g);
    /* a comment that is not a location is ignored; CRLF line ends work */
    ir_init(&g);
    int rc = ir_parse(&g, "%0: f32[] = const 2   # just a note\r\n%1: f32[] = exp %0 # f.yaml:x:3\r\n", "t.ir", err, sizeof err);
    check(rc == 0 && g.n == 2 && g.nodes[0].loc.file == -1 && g.nodes[1].loc.file == -1, "plain comments: %s", err);
    ir_free(&g);
}

/* ---- the verifier ---------------------------------------------------------------- */

static const char *const BASE =
    "%0: f32[4,8] = input \"x\"\n"
    "%1: f32[16,8] = param \"w\" {role=trainable}\n"
    "%2: f32[3,8] = param \"r\" {role=frozen}\n"
    "%3: f32[4,16] = matmul %0, %1 {ta=0, tb=1}\n"
    "%4: f32[1,16] = reduce_sum %3 {axis=0}\n"
    "%5: f32[1,1] = reduce_sum %4 {axis=1}\n"
    "%6: f32[] = reshape %5\n"
    "%7: f32[16,8] = exp %1\n"
    "output loss \"loss\" = %6\n"
    "output value \"h\" = %3\n"
    "output grad \"w\" = %7\n";

static void corrupt_case(const IrGraph *base, int which, char *want, size_t wantlen, IrGraph *g) {
    ir_copy(g, base);
    IrNode *N = g->nodes;
    IrOutput *O = g->outs;
    switch (which) {
    case 0: N[3].in[1] = 5; snprintf(want, wantlen, "%%3 (matmul): input 1 is %%5, expected an id in [0, 3)"); break;
    case 1: N[3].shape[1] = 15; snprintf(want, wantlen, "%%3 (matmul): type f32[4,15] but inference gives f32[4,16]"); break;
    case 2: N[6].dtype = DT_F64; snprintf(want, wantlen, "%%6 (reshape): type f64[] but inference gives f32[]"); break;
    case 3: O[0].id = 99; snprintf(want, wantlen, "output \"loss\": refers to %%99, outside [0, 8)"); break;
    case 4: O[1].role = IR_OUT_LOSS; snprintf(want, wantlen, "output \"h\": a second loss (the first is \"loss\")"); break;
    case 5: O[0].id = 3; snprintf(want, wantlen, "output \"loss\": the loss must be a float scalar, %%3 is f32[4,16]"); break;
    case 6: O[2].name = ir_str(g, "r"); snprintf(want, wantlen, "output \"r\": grad of frozen param %%2"); break;
    case 7: O[2].name = ir_str(g, "nope"); snprintf(want, wantlen, "output \"nope\": grad of no param of that name"); break;
    case 8: O[2].id = 3; snprintf(want, wantlen, "output \"w\": grad %%3 is f32[4,16] but the param %%1 is f32[16,8]"); break;
    case 9: N[4].attr[1] = 7; snprintf(want, wantlen, "%%4 (reduce_sum): unused attribute slot 1 is 7, expected 0"); break;
    case 10: N[0].flags = 0x10; snprintf(want, wantlen, "%%0 (input): unknown flag bits 0x10"); break;
    case 11: N[3].shard[0] = N[3].shard[1] = IR_MESH_TP; snprintf(want, wantlen, "%%3 (matmul): mesh axis tp shards two dimensions"); break;
    case 12:
        N[3].shard[0] = IR_MESH_DP;
        N[3].partial = 1u << IR_MESH_DP;
        snprintf(want, wantlen, "%%3 (matmul): a mesh axis both shards a dimension and holds a partial sum");
        break;
    case 13:
        N[7].name = N[1].name;
        snprintf(want, wantlen, "%%7 (exp): only params and inputs have names, this one has name id %d", N[1].name);
        break;
    case 14: N[2].name = N[1].name; snprintf(want, wantlen, "%%2 (param): name \"w\" is already used by %%1"); break;
    case 15: N[5].op = OP_COUNT; snprintf(want, wantlen, "%%5: unknown op code %d", OP_COUNT); break;
    case 16: N[0].in[0] = 0; snprintf(want, wantlen, "%%0 (input): input slot 0 is 0, expected -1 (the op takes 0)"); break;
    case 17: { /* storage order broken: %3 and %4 swapped */
        IrNode tmp = N[3];
        N[3] = N[4];
        N[4] = tmp;
        snprintf(want, wantlen, "%%3 (reduce_sum): input 0 is %%3, expected an id in [0, 3)");
        break;
    }
    case 18: N[0].name = -1; snprintf(want, wantlen, "%%0 (input): name id -1 is not a string of the pool"); break;
    case 19: N[0].shard[0] = 5; snprintf(want, wantlen, "%%0 (input): shard[0] = 5 is not a mesh axis"); break;
    case 20: N[6].shape[0] = 1; snprintf(want, wantlen, "%%6 (reshape): shape[0] = 1 beyond the rank 0, expected 0"); break;
    case 21: N[1].attr[0] = 2; snprintf(want, wantlen, "%%1 (param): param role 2 is neither trainable nor frozen"); break;
    case 22: N[3].fval = 1.5; snprintf(want, wantlen, "%%3 (matmul): constant value 1.5 on a non-const"); break;
    case 23: O[1].name = O[0].name; O[1].role = IR_OUT_VALUE; snprintf(want, wantlen, "output \"loss\": name used twice"); break;
    case 24: N[4].in[0] = -1; snprintf(want, wantlen, "%%4 (reduce_sum): input 0 is %%-1, expected an id in [0, 4)"); break;
    case 25: N[4].ndim = 7; snprintf(want, wantlen, "%%4 (reduce_sum): rank 7 exceeds 6"); break;
    case 26: N[0].dtype = 9; snprintf(want, wantlen, "%%0 (input): unknown dtype code 9"); break;
    case 27: N[0].shape[1] = -8; snprintf(want, wantlen, "%%0 (input): dimension 1 has size -8, expected > 0"); break;
    case 28: N[3].attr[0] = 2; snprintf(want, wantlen, "%%3 (matmul): ta and tb must be 0 or 1"); break;
    case 29: N[7].loc.file = 100000; snprintf(want, wantlen, "%%7 (exp): location file id 100000 is not a string of the pool"); break;
    case 30: O[2].role = 7; snprintf(want, wantlen, "output \"w\": unknown role 7"); break;
    case 31: N[0].attr[0] = 2; snprintf(want, wantlen, "%%0 (input): input rows 2 are neither seqs nor pairs"); break;
    default: want[0] = '\0'; break;
    }
}

static void group_verify(void) {
    IrGraph base;
    char err[512];
    ir_init(&base);
    int rc = ir_parse(&base, BASE, "base.ir", err, sizeof err);
    check(rc == 0, "base parses: %s", err);
    check(rc == 0 && ir_verify(&base, err, sizeof err) == 0, "base verifies: %s", err);
    for (int which = 0;; which++) {
        char want[256];
        IrGraph g;
        corrupt_case(&base, which, want, sizeof want, &g);
        if (!want[0]) {
            ir_free(&g);
            check(which >= 31, "ran only %d corruptions", which);
            break;
        }
        err[0] = '\0';
        int v = ir_verify(&g, err, sizeof err);
        check(v == -1 && strcmp(err, want) == 0, "corruption %d:\n  want: %s\n  got:  %s (rc %d)", which, want, err, v);
        ir_free(&g);
    }
    ir_free(&base);
    /* an empty graph verifies */
    IrGraph e;
    ir_init(&e);
    check(ir_verify(&e, err, sizeof err) == 0, "empty graph verifies: %s", err);
    ir_free(&e);
}

/* ---- fuzz --------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* text either fails with "f.ir:L:C: ..." or its printout is a fixed point */
static void fuzz_one(const char *text, const char *what, size_t k) {
    IrGraph g;
    char err[512] = "";
    ir_init(&g);
    if (ir_parse(&g, text, "f.ir", err, sizeof err) != 0) {
        int line, col;
        check(sscanf(err, "f.ir:%d:%d: ", &line, &col) == 2 && line >= 1 && col >= 1 && strlen(err) > 12,
              "fuzz %s %zu: bad message '%s'", what, k, err);
    } else {
        char *t1 = ir_print_str(&g);
        IrGraph h;
        ir_init(&h);
        int rc = t1 ? ir_parse(&h, t1, "f2.ir", err, sizeof err) : -1;
        char *t2 = rc == 0 ? ir_print_str(&h) : NULL;
        check(t1 && t2 && strcmp(t1, t2) == 0, "fuzz %s %zu: not a fixed point (%s)\n%s", what, k, err, text);
        free(t1);
        free(t2);
        ir_free(&h);
    }
    ir_free(&g);
}

static void group_fuzz(void) {
    IrGraph g;
    ir_init(&g);
    build_attention(&g, DT_F32);
    build_specials(&g);
    char *text = ir_print_str(&g);
    ir_free(&g);
    if (!text) {
        check(0, "fuzz: print");
        return;
    }
    size_t len = strlen(text);
    char *buf = malloc(len + 8);
    for (size_t cut = 0; cut < len; cut += 3) {
        memcpy(buf, text, cut);
        buf[cut] = '\0';
        fuzz_one(buf, "cut", cut);
    }
    static const char alphabet[] = "%:=[],{}@#\"\\-0123456789 \nabefinptx_.\x01\x80\xff";
    for (size_t k = 0; k < 3000; k++) {
        memcpy(buf, text, len + 1);
        int edits = 1 + (int)(next_rand() % 3);
        for (int e = 0; e < edits; e++) {
            size_t pos = next_rand() % len;
            char c = alphabet[next_rand() % (sizeof alphabet - 1)];
            switch (next_rand() % 3) {
            case 0: buf[pos] = c; break;
            case 1: memmove(buf + pos, buf + pos + 1, len - pos); break; /* delete, keeps the NUL */
            default: break;
            }
        }
        fuzz_one(buf, "mutation", k);
    }
    free(buf);
    free(text);
}

/* ---- cases/ *.ir ------------------------------------------------------------------------ */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t r;
    while (s && (r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *p = realloc(s, cap *= 2);
            if (!p) free(s);
            s = p;
        }
    }
    fclose(f);
    if (s) s[n] = '\0';
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void group_cases(const char *dir) {
    DIR *d = dir ? opendir(dir) : NULL;
    check(d != NULL, "cases: cannot open directory %s", dir ? dir : "(none)");
    if (!d) return;
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && nn < 256) {
        size_t l = strlen(de->d_name);
        if (l > 3 && strcmp(de->d_name + l - 3, ".ir") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof names[0], cmp_str);
    check(nn >= 3, "cases: only %d .ir files in %s", nn, dir);
    int saw_canonical = 0;
    for (int i = 0; i < nn; i++) {
        char path[1024], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = read_file(path);
        check(text != NULL, "cases: cannot read %s", path);
        if (text) {
            IrGraph g;
            ir_init(&g);
            int rc = ir_parse(&g, text, names[i], err, sizeof err);
            check(rc == 0, "cases: %s", err);
            if (rc == 0) {
                check_roundtrip(&g, names[i]);
                if (strcmp(names[i], "canonical.ir") == 0) {
                    saw_canonical = 1;
                    char *t = ir_print_str(&g);
                    check(t && strcmp(t, text) == 0, "cases: canonical.ir is not its own printout:\n%s", t ? t : "");
                    free(t);
                }
            }
            ir_free(&g);
            free(text);
        }
        free(names[i]);
    }
    check(saw_canonical, "cases: canonical.ir missing");
}

int main(int argc, char **argv) {
    const char *group = argc > 1 ? argv[1] : "all";
    int all = strcmp(group, "all") == 0, known = all;
    if (all || strcmp(group, "roundtrip") == 0) { group_roundtrip(); known = 1; }
    if (all || strcmp(group, "hashcons") == 0) { group_hashcons(); known = 1; }
    if (all || strcmp(group, "errors") == 0) { group_errors(); known = 1; }
    if (all || strcmp(group, "verify") == 0) { group_verify(); known = 1; }
    if (all || strcmp(group, "fuzz") == 0) { group_fuzz(); known = 1; }
    if ((all && argc > 2) || strcmp(group, "cases") == 0) { group_cases(argc > 2 ? argv[2] : NULL); known = 1; }
    if (!known) {
        fprintf(stderr, "usage: test_ir {all|roundtrip|hashcons|errors|verify|fuzz|cases} [CASES_DIR]\n");
        return 2;
    }
    printf("test_ir %s: %d passed, %d failed\n", group, passed, failed);
    return failed ? 1 : 0;
}
