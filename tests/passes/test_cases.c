/* test_cases.c — IR-text tests for the passes, `dpoc opt` style.
 *
 * Every *.ir file in the directory given as argv[1] is a graph plus
 * directives in comments:
 *   # RUN: a,b          passes to run (through pass_pipeline_run)
 *   # CHECK: text       must occur in the printed result, each CHECK on a
 *                       line after the previous CHECK's line
 *   # CHECK-NOT: text   must occur nowhere in the printed result
 *   # NODES: n          the result has n nodes
 *   # KERNELS: n        sched_plan of the result has n kernels
 * The file is parsed and verified, the passes run, the result is verified
 * again and must round-trip through text, then the directives are checked.
 */
#include <dirent.h>

#include "runtime/file_read.h"
#include "tpass.h"


/* the value of directive `key` on line `line` (after "# key:"), or NULL */
static const char *directive(const char *line, const char *key, char *buf, size_t len) {
    char pre[32];
    snprintf(pre, sizeof pre, "# %s:", key);
    if (strncmp(line, pre, strlen(pre)) != 0) return NULL;
    const char *s = line + strlen(pre);
    while (*s == ' ') s++;
    size_t n = strcspn(s, "\n");
    while (n > 0 && s[n - 1] == ' ') n--;
    if (n >= len) n = len - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return buf;
}

static int kernels_of(const IrGraph *g) {
    IrGraph *gp[1] = {(IrGraph *)g};
    TensorTable tt;
    SchedPlan p;
    char err[512];
    if (tensor_table_build(&tt, gp, 1, err, sizeof err) != 0) return -1;
    int k = -1;
    if (sched_plan(g, &tt, &p, err, sizeof err) == 0) {
        k = p.nkernels;
        sched_plan_free(&p);
    }
    tensor_table_free(&tt);
    return k;
}

static void run_case(const char *path) {
    size_t len;
    char *text = file_read_all(path, &len);
    CHECK_MSG(text, "cannot read %s", path);
    if (!text) return;
    IrGraph g;
    ir_init(&g);
    char err[512];
    int ok = ir_parse(&g, text, path, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    ok = ok && ir_verify(&g, err, sizeof err) == 0;
    CHECK_MSG(ok || g.n == 0, "%s: %s", path, err);
    char passes[256] = "", buf[512];
    int ndirectives = 0;
    for (const char *l = text; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        if (directive(l, "RUN", buf, sizeof buf)) snprintf(passes, sizeof passes, "%.200s", buf);
    PassCtx c = {0};
    if (ok) {
        ok = pass_pipeline_run(&g, &c, passes) == 0;
        CHECK_MSG(ok, "%s: %s", path, c.err);
    }
    if (ok) {
        CHECK_MSG(ir_verify(&g, err, sizeof err) == 0, "%s: result: %s", path, err);
        CHECK_MSG(t_roundtrip(&g), "%s: result does not round-trip", path);
    }
    char *out = ok ? ir_print_str(&g) : NULL;
    const char *cursor = out;
    for (const char *l = text; out && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (directive(l, "CHECK", buf, sizeof buf)) {
            ndirectives++;
            const char *hit = strstr(cursor, buf);
            CHECK_MSG(hit, "%s: CHECK not found (in order): %s\n--- output ---\n%s", path, buf, out);
            if (hit) cursor = strchr(hit, '\n') ? strchr(hit, '\n') + 1 : hit + strlen(hit);
        } else if (directive(l, "CHECK-NOT", buf, sizeof buf)) {
            ndirectives++;
            CHECK_MSG(!strstr(out, buf), "%s: CHECK-NOT found: %s\n--- output ---\n%s", path, buf, out);
        } else if (directive(l, "NODES", buf, sizeof buf)) {
            ndirectives++;
            CHECK_MSG(g.n == atoi(buf), "%s: %d nodes, want %s", path, (int)g.n, buf);
        } else if (directive(l, "KERNELS", buf, sizeof buf)) {
            ndirectives++;
            int k = kernels_of(&g);
            CHECK_MSG(k == atoi(buf), "%s: %d kernels, want %s", path, k, buf);
        }
    }
    CHECK_MSG(!ok || ndirectives > 0, "%s: no directives", path);
    printf("  %-40s %d checks\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path, ndirectives);
    free(out);
    free(text);
    ir_free(&g);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_passes_cases DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    CHECK_MSG(d, "cannot open %s", argv[1]);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".ir") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        run_case(path);
        n++;
    }
    if (d) closedir(d);
    CHECK(n >= 4);
    return check_done("test_cases");
}
