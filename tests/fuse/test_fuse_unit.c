/* test_fuse_unit.c — the fuse pass and its kernel lines, piece by piece.
 *
 *  - refusal reasons: with debug 1 the pass writes one line per refusal
 *    (naming the kernel, the consumer and the producer) and a summary;
 *    with debug 0 it writes nothing;
 *  - idempotence: a second run reports PASS_UNCHANGED with the same
 *    kernels; --disable-pass-style runs without fuse have no kernel lines;
 *  - the schedule: members get no storage (region -1), the arena of the
 *    fused chain is one buffer smaller than unfused, kernels are listed
 *    with members then root;
 *  - ir_copy keeps the kernels (and they round-trip through text);
 *  - the verifier refuses bad kernel lines with a message naming the
 *    kernel (member above its root, a reduction as member, a param root,
 *    roots out of order), and the parser refuses an undefined value.
 */
#include "tests/passes/tpass.h"

static const char *CHAIN =
    "%0: f32[4,8] = input \"x\"\n"
    "%1: f32[4,8] = exp %0\n"
    "%2: f32[4,1] = reduce_sum %1 {axis=1}\n"
    "%3: f32[4,8] = broadcast %2\n"
    "%4: f32[4,8] = div %1, %3\n"
    "%5: f32[4,8] = neg %4\n"
    "%6: f32[4,8] = mul %5, %5\n"
    "output value \"y\" = %6\n";

static int parse(IrGraph *g, const char *text, char *err, size_t len) {
    ir_init(g);
    return ir_parse(g, text, "t.ir", err, len);
}

static void test_reasons(void) {
    IrGraph g;
    char err[512];
    CHECK_MSG(parse(&g, CHAIN, err, sizeof err) == 0, "%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&buf, &len);
    PassCtx c = {.debug = 1, .log = log};
    CHECK(pass_fuse(&g, &c) == PASS_CHANGED);
    fclose(log);
    CHECK_MSG(buf && strstr(buf, "fuse: kernel %2: %2 (reduce_sum) does not absorb %1 (exp): it has 2 readers"),
              "log: %s", buf ? buf : "");
    CHECK_MSG(buf && strstr(buf, "fuse: kernel %6: %3 (broadcast) does not absorb %2 (reduce_sum): reduce_sum is not computed inline"),
              "log: %s", buf ? buf : "");
    CHECK_MSG(buf && strstr(buf, "fuse: 3 kernels, 3 values computed inline, 3 refusals"), "log: %s", buf ? buf : "");
    free(buf);
    /* exp stored (2 readers), the sum, and one kernel for div, neg, mul with the broadcast inline */
    CHECK(g.nkernels == 3);
    char *text = ir_print_str(&g);
    CHECK_MSG(text && strstr(text, "kernel %1\nkernel %2\nkernel %6 = %3, %4, %5\n"), "%s", text ? text : "");
    free(text);
    /* quiet at debug 0 */
    buf = NULL;
    log = open_memstream(&buf, &len);
    PassCtx q = {.debug = 0, .log = log};
    CHECK(pass_fuse(&g, &q) == PASS_UNCHANGED); /* idempotent */
    fclose(log);
    CHECK(len == 0);
    free(buf);
    CHECK(g.nkernels == 3);
    /* ir_copy keeps the kernels */
    IrGraph h;
    CHECK(ir_copy(&h, &g) == 0);
    CHECK(h.nkernels == 3 && h.nkmembers == 3 && h.kernels[2].root == 6);
    CHECK(t_roundtrip(&h));
    /* a pass with nothing to do leaves them; one that rebuilds the graph drops them */
    PassCtx d = {0};
    CHECK(pass_dce(&h, &d) == PASS_UNCHANGED && h.nkernels == 3);
    CHECK(ir_add_output(&h, "q", 4, IR_OUT_VALUE) == 0);
    CHECK(pass_fuse(&h, &d) == PASS_CHANGED); /* the quotient is now an output: stored, 4 kernels */
    CHECK(h.nkernels == 4 && h.kernels[2].root == 4 && h.kernels[3].root == 6 && h.kernels[3].n == 1);
    ir_free(&h);
    ir_free(&g);
}

static int64_t arena(const IrGraph *g, SchedPlan *p) {
    IrGraph *gp[1] = {(IrGraph *)g};
    TensorTable tt;
    char err[512];
    if (tensor_table_build(&tt, gp, 1, err, sizeof err)) return -1;
    int rc = sched_plan(g, &tt, p, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    tensor_table_free(&tt);
    return rc ? -1 : p->arena_bytes;
}

static void test_schedule(void) {
    IrGraph g;
    char err[512];
    CHECK(parse(&g, CHAIN, err, sizeof err) == 0);
    SchedPlan a, b;
    int64_t before = arena(&g, &a);
    PassCtx c = {0};
    CHECK(pass_fuse(&g, &c) == PASS_CHANGED);
    int64_t after = arena(&g, &b);
    CHECK(a.nkernels == 6 && b.nkernels == 3);
    /* unfused: exp, sum, broadcast, div, neg in the arena (5 x 128 B at most live 4);
     * fused: exp (128) and the sum (64, rounded) only */
    CHECK_MSG(after == 192 && before > after, "arena %lld -> %lld", (long long)before, (long long)after);
    for (int id = 3; id <= 5; id++) CHECK(b.region[id] == -1);
    CHECK(b.region[1] == DPOC_R_ARENA && b.region[2] == DPOC_R_ARENA && b.region[6] == DPOC_R_OUTPUTS);
    const SchedKernel *k = &b.kernels[2];
    CHECK(k->root == 6 && k->nmembers == 4 && b.members[k->first] == 3 && b.members[k->first + 3] == 6);
    sched_plan_free(&a);
    sched_plan_free(&b);
    ir_free(&g);
}

static void expect_verify_error(const char *kernels, const char *msg) {
    char text[2048], err[512];
    snprintf(text, sizeof text, "%s%s", CHAIN, kernels);
    IrGraph g;
    int rc = parse(&g, text, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        rc = ir_verify(&g, err, sizeof err);
        CHECK_MSG(rc < 0 && strstr(err, msg), "kernels '%s': expected '%s', got '%s'", kernels, msg, rc ? err : "ok");
    }
    ir_free(&g);
}

static void test_verify(void) {
    expect_verify_error("kernel %4 = %5\n", "kernel %4: member %5 must be below the root");
    expect_verify_error("kernel %6 = %2\n", "kernel %6: member %2 is a reduce_sum, which is never computed inline");
    expect_verify_error("kernel %0\n", "kernel %0: a input is not computed by a kernel");
    expect_verify_error("kernel %6\nkernel %2\n", "kernel %2: roots must increase");
    char text[2048], err[512];
    snprintf(text, sizeof text, "%skernel %%6 = %%9\n", CHAIN);
    IrGraph g;
    CHECK(parse(&g, text, err, sizeof err) < 0 && strstr(err, "t.ir:9:") && strstr(err, "undefined value %9"));
    ir_free(&g);
    /* a schedule of kernels that leave a value unstored is refused */
    snprintf(text, sizeof text, "%skernel %%2\nkernel %%6 = %%3, %%4, %%5\n", CHAIN);
    CHECK(parse(&g, text, err, sizeof err) == 0 && ir_verify(&g, err, sizeof err) == 0);
    SchedPlan p;
    IrGraph *gp[1] = {&g};
    TensorTable tt;
    CHECK(tensor_table_build(&tt, gp, 1, err, sizeof err) == 0);
    CHECK(sched_plan(&g, &tt, &p, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "%1 (exp) is neither a kernel root nor a member of one"), "%s", err);
    tensor_table_free(&tt);
    ir_free(&g);
}

int main(void) {
    test_reasons();
    test_schedule();
    test_verify();
    return check_done("fuse_unit");
}
