/* test_pipeline.c — the pass runner: lookup, order, disabling, verification
 * after a change, error prefixes, --time-passes, print-after, dump files and
 * debug lines. Log output is captured with open_memstream and searched.
 */
#include <dirent.h>
#include <unistd.h>

#include "tpass.h"

static void build(IrGraph *g) {
    ir_init(g);
    int64_t s[2] = {2, 3};
    int32_t w = ir_param(g, "w", DT_F32, 2, s, IR_PARAM_TRAINABLE);
    int32_t x = ir_input(g, "x", DT_F32, 2, s);
    int32_t y = ir_mul(g, ir_unary(g, OP_EXP, ir_add(g, w, ir_const_like(g, 0, w))), x);
    CHECK(ir_add_output(g, "loss", t_sum_all(g, y), IR_OUT_LOSS) == 0);
}

typedef struct Log {
    char *buf;
    size_t len;
    FILE *f;
} Log;

static void log_open(Log *l, PassCtx *c) {
    l->buf = NULL;
    l->len = 0;
    l->f = open_memstream(&l->buf, &l->len);
    c->log = l->f;
}

static void log_close(Log *l) {
    fclose(l->f);
    free(l->buf);
}

static const char *log_text(Log *l) {
    fflush(l->f);
    return l->buf ? l->buf : "";
}

static int count_str(const char *hay, const char *needle) {
    int k = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) k++;
    return k;
}

static void test_registry(void) {
    CHECK(pass_registry_count >= 3);
    CHECK(pass_find("autodiff") && pass_find("autodiff")->run == pass_autodiff);
    CHECK(pass_find("simplify") && pass_find("dce"));
    CHECK(pass_find("nonsense") == NULL);
}

static void test_errors(void) {
    IrGraph g;
    build(&g);
    PassCtx c = {0};
    CHECK(pass_pipeline_run(&g, &c, "autodiff,frobnicate") < 0);
    CHECK_MSG(strcmp(c.err, "unknown pass 'frobnicate'") == 0, "%s", c.err);
    /* every name is checked before anything runs */
    CHECK(ir_find_output(&g, "w") < 0);
    CHECK(pass_pipeline_run(&g, &c, "autodiff") == 0);
    /* a pass error is prefixed with the pass name */
    CHECK(pass_pipeline_run(&g, &c, "autodiff") < 0);
    CHECK_MSG(strstr(c.err, "autodiff: graph already has gradient outputs") == c.err, "%s", c.err);
    ir_free(&g);
}

static int bad_pass(IrGraph *g, PassCtx *c) {
    (void)c;
    g->nodes[0].in[0] = 5; /* a param with an input: invalid */
    return PASS_CHANGED;
}

static int bad_unchanged(IrGraph *g, PassCtx *c) {
    (void)g;
    (void)c;
    return PASS_UNCHANGED;
}

static int failing_pass(IrGraph *g, PassCtx *c) {
    (void)g;
    snprintf(c->err, sizeof c->err, "it broke");
    return PASS_ERROR;
}

static void test_verify_after_change(void) {
    IrGraph g;
    build(&g);
    PassCtx c = {0};
    PassInfo ok = {"quiet", bad_unchanged};
    CHECK(pass_run_one(&g, &c, &ok) == 0);
    PassInfo fail = {"failing", failing_pass};
    CHECK(pass_run_one(&g, &c, &fail) < 0 && strcmp(c.err, "failing: it broke") == 0);
    PassInfo bad = {"breaker", bad_pass};
    CHECK(pass_run_one(&g, &c, &bad) < 0);
    CHECK_MSG(strncmp(c.err, "verify after breaker: ", 22) == 0, "%s", c.err);
    ir_free(&g);
}

static void test_disable_print_time(void) {
    IrGraph g;
    build(&g);
    PassCtx c = {0};
    Log l;
    log_open(&l, &c);
    c.disabled[0] = "simplify";
    c.ndisabled = 1;
    c.print_after = "all";
    c.time_passes = 1;
    c.debug = 2;
    c.dump_prefix = "train_step";
    int32_t n0 = g.n;
    CHECK_MSG(pass_pipeline_run(&g, &c, "autodiff, simplify,dce") == 0, "%s", c.err);
    const char *t = log_text(&l);
    CHECK(count_str(t, "; IR after autodiff (train_step)\n") == 1);
    CHECK(count_str(t, "; IR after dce (train_step)\n") == 1);
    CHECK(count_str(t, "; IR after simplify") == 0);
    CHECK(count_str(t, "time-passes: autodiff") == 1 && count_str(t, "time-passes: dce") == 1);
    CHECK(count_str(t, "time-passes: simplify") == 0);
    CHECK(count_str(t, "pipeline: simplify disabled") == 1);
    CHECK(count_str(t, "pipeline: autodiff changed") == 1);
    CHECK(count_str(t, "output grad \"w\"") >= 2); /* printed after autodiff and after dce */
    CHECK(g.n > n0);
    CHECK(t_count_op(&g, OP_ADD) >= 1); /* w + 0 survived: simplify never ran */
    log_close(&l);

    /* print after one pass only, quiet otherwise */
    PassCtx c2 = {0};
    log_open(&l, &c2);
    c2.print_after = "simplify";
    CHECK(pass_pipeline_run(&g, &c2, "simplify,dce") == 0);
    t = log_text(&l);
    CHECK(count_str(t, "; IR after simplify (graph)\n") == 1);
    CHECK(count_str(t, "; IR after") == 1);
    CHECK(count_str(t, "time-passes") == 0 && count_str(t, "pipeline:") == 0);
    log_close(&l);
    ir_free(&g);
}

static void test_dump_dir(void) {
    char dir[] = "/tmp/dpoc-dump-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    IrGraph g;
    build(&g);
    PassCtx c = {0};
    c.dump_dir = dir;
    c.dump_prefix = "train_step";
    c.dump_seq = 7;
    CHECK_MSG(pass_pipeline_run(&g, &c, "autodiff,simplify") == 0, "%s", c.err);
    CHECK(c.dump_seq == 9);
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/07.train_step.after_autodiff.ir", dir);
    snprintf(p2, sizeof p2, "%s/08.train_step.after_simplify.ir", dir);
    FILE *f = fopen(p2, "r");
    CHECK(f != NULL);
    if (f) {
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        char *now = ir_print_str(&g);
        CHECK(now && strcmp(now, buf) == 0);
        free(now);
    }
    CHECK(access(p1, R_OK) == 0);
    /* an unwritable dump dir is an error */
    PassCtx c2 = {0};
    c2.dump_dir = "/nonexistent/dir";
    CHECK(pass_pipeline_run(&g, &c2, "dce") < 0 && strstr(c2.err, "cannot write /nonexistent/dir/00.graph.after_dce.ir"));
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    ir_free(&g);
}

int main(void) {
    test_registry();
    test_errors();
    test_verify_after_change();
    test_disable_print_time();
    test_dump_dir();
    return check_done("test_pipeline");
}
