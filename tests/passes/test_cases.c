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
 *   # PLACED: %a in %b at n   in that plan, value a's bytes start n bytes
 *                       into value b's (same region: concat placement)
 *   # NOT-PLACED: %a in %b    value a's first byte is not among b's
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

/* the schedule of g; 0, or -1 with the message in err */
static int plan_of(const IrGraph *g, SchedPlan *p, char *err, size_t errlen) {
    IrGraph *gp[1] = {(IrGraph *)g};
    TensorTable tt;
    if (tensor_table_build(&tt, gp, 1, err, errlen) != 0) return -1;
    int rc = sched_plan(g, &tt, p, err, errlen);
    tensor_table_free(&tt);
    return rc;
}

static int kernels_of(const IrGraph *g) {
    SchedPlan p;
    char err[512];
    if (plan_of(g, &p, err, sizeof err)) return -1;
    int k = p.nkernels;
    sched_plan_free(&p);
    return k;
}

/* "%a in %b at n": a's place is n bytes into b's; with want_in 0, "%a in
 * %b": a's first byte is not among b's */
static void check_placed(const IrGraph *g, const char *path, const char *spec, int want_in) {
    int a, b;
    long long at = 0;
    SchedPlan p;
    char err[512];
    int nf = sscanf(spec, "%%%d in %%%d at %lld", &a, &b, &at);
    if (nf != (want_in ? 3 : 2) || a < 0 || b < 0 || a >= g->n || b >= g->n) {
        CHECK_MSG(0, "%s: PLACED wants '%%a in %%b at n', NOT-PLACED '%%a in %%b', got '%s'", path, spec);
        return;
    }
    if (plan_of(g, &p, err, sizeof err)) {
        CHECK_MSG(0, "%s: schedule: %s", path, err);
        return;
    }
    const IrNode *nb = ir_node(g, b);
    int64_t bytes = ir_numel(nb) * (int64_t)ir_dtype_size((IrDType)nb->dtype);
    int same = p.region[a] >= 0 && p.region[a] == p.region[b];
    if (want_in)
        CHECK_MSG(same && p.offset[a] == p.offset[b] + at,
                  "%s: %%%d is at region %d + %lld, %%%d at region %d + %lld: not %lld bytes into it", path, a,
                  p.region[a], (long long)p.offset[a], b, p.region[b], (long long)p.offset[b], at);
    else
        CHECK_MSG(!(same && p.offset[a] >= p.offset[b] && p.offset[a] < p.offset[b] + bytes),
                  "%s: %%%d (region %d + %lld) lies in %%%d (region %d + %lld)", path, a, p.region[a],
                  (long long)p.offset[a], b, p.region[b], (long long)p.offset[b]);
    sched_plan_free(&p);
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
        } else if (directive(l, "PLACED", buf, sizeof buf)) {
            ndirectives++;
            check_placed(&g, path, buf, 1);
        } else if (directive(l, "NOT-PLACED", buf, sizeof buf)) {
            ndirectives++;
            check_placed(&g, path, buf, 0);
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
