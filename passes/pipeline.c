/* pipeline.c — the pass registry and the runner.
 *
 * pass_pipeline_run() splits a comma-separated list of pass names, looks each
 * one up in pass_registry (all of them first: an unknown name runs nothing),
 * skips the ones named in c->disabled, and runs the rest in order. After a pass that reports PASS_CHANGED the verifier runs
 * (a failure reads "verify after <pass>: ..."). On request each pass is timed
 * (--time-passes: one line per pass on c->log), the IR is printed after it
 * (print_after = its name or "all", with a "; IR after <pass> (<prefix>)"
 * header) and written to <dump_dir>/NN.<prefix>.after_<pass>.ir, where NN is
 * c->dump_seq, shared by every graph compiled in one run so the files sort in
 * the order they were made. Debug lines appear at c->debug >= 2.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "passes.h"

const PassInfo pass_registry[] = {
    {"autodiff", pass_autodiff},
    {"simplify", pass_simplify},
    {"dce", pass_dce},
    {"shard", pass_shard},
    {"fuse", pass_fuse},
};
const int pass_registry_count = (int)(sizeof pass_registry / sizeof pass_registry[0]);

const PassInfo *pass_find(const char *name) {
    for (int i = 0; i < pass_registry_count; i++)
        if (strcmp(pass_registry[i].name, name) == 0) return &pass_registry[i];
    return NULL;
}

static int pass_disabled(const PassCtx *c, const char *name) {
    for (int i = 0; i < c->ndisabled && i < 16; i++)
        if (c->disabled[i] && strcmp(c->disabled[i], name) == 0) return 1;
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *prefix_of(const PassCtx *c) {
    return c->dump_prefix && c->dump_prefix[0] ? c->dump_prefix : "graph";
}

static int dump_ir(IrGraph *g, PassCtx *c, const char *pass) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%02d.%s.after_%s.ir", c->dump_dir, c->dump_seq, prefix_of(c), pass);
    c->dump_seq++;
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(c->err, sizeof c->err, "cannot write %.300s: %.100s", path, strerror(errno));
        return -1;
    }
    int rc = ir_print(g, f);
    if (fclose(f) != 0 || rc < 0) {
        snprintf(c->err, sizeof c->err, "error writing %.400s", path);
        return -1;
    }
    if (c->debug >= 2 && c->log) fprintf(c->log, "pipeline: wrote %s\n", path);
    return 0;
}

/* runs one pass with verification, timing, printing and dumping */
int pass_run_one(IrGraph *g, PassCtx *c, const PassInfo *p) {
    int32_t n0 = g->n;
    c->err[0] = 0;
    double t0 = now_ms();
    int r = p->run(g, c);
    double ms = now_ms() - t0;
    if (r == PASS_ERROR) {
        char msg[sizeof c->err];
        snprintf(msg, sizeof msg, "%s", c->err[0] ? c->err : "failed");
        snprintf(c->err, sizeof c->err, "%s: %.440s", p->name, msg);
        return -1;
    }
    if (c->time_passes && c->log)
        fprintf(c->log, "time-passes: %-10s %10.3f ms  (%s)\n", p->name, ms, prefix_of(c));
    if (c->debug >= 2 && c->log)
        fprintf(c->log, "pipeline: %s %s, %d -> %d nodes\n", p->name,
                r == PASS_CHANGED ? "changed" : "unchanged", (int)n0, (int)g->n);
    if (r == PASS_CHANGED) {
        char verr[sizeof c->err];
        if (ir_verify(g, verr, sizeof verr) < 0) {
            snprintf(c->err, sizeof c->err, "verify after %s: %.440s", p->name, verr);
            return -1;
        }
    }
    if (c->print_after && c->log &&
        (strcmp(c->print_after, "all") == 0 || strcmp(c->print_after, p->name) == 0)) {
        fprintf(c->log, "; IR after %s (%s)\n", p->name, prefix_of(c));
        if (ir_print(g, c->log) < 0) {
            snprintf(c->err, sizeof c->err, "printing IR after %s failed", p->name);
            return -1;
        }
    }
    if (c->dump_dir && dump_ir(g, c, p->name) < 0) return -1;
    return 0;
}

/* Splits the list into names; checks every name before anything runs, so
 * a typo never leaves a half-transformed graph. */
static int next_name(const char **sp, char *name, size_t cap, PassCtx *c) {
    const char *s = *sp;
    while (*s == ',' || *s == ' ') s++;
    if (!*s) return 0;
    const char *e = s;
    while (*e && *e != ',') e++;
    size_t len = (size_t)(e - s);
    while (len > 0 && s[len - 1] == ' ') len--;
    *sp = e;
    if (len >= cap) {
        snprintf(c->err, sizeof c->err, "pass name too long: %.*s", (int)(len > 64 ? 64 : len), s);
        return -1;
    }
    memcpy(name, s, len);
    name[len] = 0;
    return 1;
}

int pass_pipeline_run(IrGraph *g, PassCtx *c, const char *passes) {
    char name[64];
    int r;
    for (const char *s = passes ? passes : ""; (r = next_name(&s, name, sizeof name, c)) != 0;) {
        if (r < 0) return -1;
        if (!pass_find(name)) {
            snprintf(c->err, sizeof c->err, "unknown pass '%s'", name);
            return -1;
        }
    }
    for (const char *s = passes ? passes : ""; next_name(&s, name, sizeof name, c) > 0;) {
        if (pass_disabled(c, name)) {
            if (c->debug >= 2 && c->log) fprintf(c->log, "pipeline: %s disabled\n", name);
            continue;
        }
        if (pass_run_one(g, c, pass_find(name)) < 0) return -1;
    }
    return 0;
}
