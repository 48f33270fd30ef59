/* dpoc_opt.c — `dpoc opt in.ir --passes=a,b`: run passes over IR text.
 *
 * Reads an IR text file (or '-' for stdin), parses and verifies it, runs the
 * comma-separated passes through the same pipeline runner as `dpoc compile`
 * (so --print-after, --dump-dir and --time-passes work the same), and prints
 * the resulting IR on stdout. With --schedule it also prints the kernel list
 * and arena size of the resulting graph, which is what the IR tests check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpoc_cli.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/file_read.h"


static int print_schedule(const IrGraph *g) {
    TensorTable tt = {0};
    SchedPlan plan;
    char err[512];
    IrGraph *gp[1] = {(IrGraph *)g};
    if (tensor_table_build(&tt, gp, 1, err, sizeof err) != 0 || sched_plan(g, &tt, &plan, err, sizeof err) != 0) {
        fprintf(stderr, "dpoc opt: schedule: %s\n", err);
        tensor_table_free(&tt);
        return -1;
    }
    printf("; schedule: %d kernels, arena %lld bytes\n", plan.nkernels, (long long)plan.arena_bytes);
    for (int k = 0; k < plan.nkernels; k++) {
        const SchedKernel *sk = &plan.kernels[k];
        printf("; kernel %d: %s %%%d", k, ir_op_info[g->nodes[sk->root].op].name, sk->root);
        if (sk->nmembers > 1) {
            printf(" {");
            for (int m = 0; m < sk->nmembers; m++) printf(m ? " %%%d" : "%%%d", plan.members[sk->first + m]);
            printf("}");
        }
        printf("\n");
    }
    sched_plan_free(&plan);
    tensor_table_free(&tt);
    return 0;
}

int dpoc_cmd_opt(int argc, char **argv) {
    const char *passes = "", *print_after = NULL, *dump_dir = NULL, *disabled[16], *mesh = NULL;
    int ndisabled = 0, time_passes = 0, schedule = 0;
    DpocOpt opts[] = {
        {"passes", 'p', OPT_STRING, &passes, NULL, 0, "comma-separated passes to run, in order"},
        {"print-after", 0, OPT_STRING, &print_after, NULL, 0, "print the IR after PASS (or 'all') to stderr"},
        {"dump-dir", 0, OPT_STRING, &dump_dir, NULL, 0, "write NN.after_<pass>.ir files into DIR"},
        {"disable-pass", 0, OPT_LIST, disabled, &ndisabled, 16, "skip pass NAME (repeatable)"},
        {"time-passes", 0, OPT_FLAG, NULL, &time_passes, 0, "print the time each pass took"},
        {"schedule", 0, OPT_FLAG, NULL, &schedule, 0, "also print the kernel schedule of the result"},
        {"mesh", 0, OPT_STRING, &mesh, NULL, 0, "the dp x tp mesh the shard pass splits for, e.g. dp=2,tp=2"},
    };
    const char *pos[1];
    int n = dpoc_opts_parse("opt", "IN.ir [--passes=a,b] [options]", opts, (int)(sizeof opts / sizeof opts[0]), argc,
                            argv, pos, 1);
    if (n == -2) return 0;
    if (n < 0) return 2;
    if (n != 1) {
        fprintf(stderr, "dpoc opt: expected one IR file ('-' for stdin)\n");
        return 2;
    }
    for (int i = 0; i < ndisabled; i++)
        if (!pass_find(disabled[i])) {
            fprintf(stderr, "dpoc opt: --disable-pass: unknown pass '%s'\n", disabled[i]);
            return 2;
        }
    int64_t mesh_dp = 1, mesh_tp = 1;
    if (mesh) {
        char merr[256];
        if (model_mesh_parse(mesh, &mesh_dp, &mesh_tp, merr, sizeof merr)) {
            fprintf(stderr, "dpoc opt: %s\n", merr);
            return 2;
        }
    }
    size_t len = 0;
    char *text = file_read_all(pos[0], &len);
    if (!text) {
        fprintf(stderr, "dpoc opt: cannot read '%s'\n", pos[0]);
        return 1;
    }
    IrGraph g;
    ir_init(&g);
    char err[1024];
    int status = 1;
    if (ir_parse(&g, text, pos[0], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto done;
    }
    if (ir_verify(&g, err, sizeof err) != 0) {
        fprintf(stderr, "%s: invalid IR: %s\n", pos[0], err);
        goto done;
    }
    PassCtx c = {0};
    c.log = stderr;
    const char *dbg = getenv("DPOC_DEBUG");
    c.debug = dbg ? atoi(dbg) : 0;
    c.print_after = print_after;
    c.dump_dir = dump_dir;
    c.time_passes = time_passes;
    c.ndisabled = ndisabled;
    for (int i = 0; i < ndisabled; i++) c.disabled[i] = disabled[i];
    c.dump_prefix = "opt";
    c.mesh[IR_MESH_DP] = (int)mesh_dp;
    c.mesh[IR_MESH_TP] = (int)mesh_tp;
    if (passes[0] && pass_pipeline_run(&g, &c, passes) != 0) {
        fprintf(stderr, "dpoc opt: %s\n", c.err);
        goto done;
    }
    ir_print(&g, stdout);
    if (schedule && print_schedule(&g) != 0) goto done;
    status = 0;
done:
    ir_free(&g);
    free(text);
    return status;
}
