/* dpoc_compile.c — `dpoc compile` and `dpoc ir`: YAML -> IR -> passes -> step.so.
 *
 * The driver builds two graphs from one model definition: the training step
 * (forward, loss, then autodiff adds the gradients) and the forward-only
 * log-prob step. Each runs through the pass pipeline with the user's
 * print/dump/disable options, then both share one tensor table, each gets a
 * schedule, the memory plan is printed, and codegen writes the step.so
 * (through a temporary file, so a failure leaves no output behind).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/codegen.h"
#include "dpoc_cli.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#define TRAIN_PASSES "simplify,autodiff,simplify"
#define LOGPS_PASSES "simplify"

typedef struct CompileArgs {
    const char *yaml, *out, *print_after, *dump_dir, *emit_llvm, *target_cpu, *target_features;
    const char *disabled[16];
    int ndisabled, time_passes, expose_logits, quiet;
} CompileArgs;

static int parse_args(const char *cmd, const char *synopsis, int argc, char **argv, CompileArgs *a, int need_out) {
    memset(a, 0, sizeof *a);
    /* the first five options are shared with `dpoc ir`; the rest are compile's */
    DpocOpt opts[] = {
        {"print-after", 0, OPT_STRING, &a->print_after, NULL, 0, "print the IR after PASS (or 'all') to stderr"},
        {"dump-dir", 0, OPT_STRING, &a->dump_dir, NULL, 0, "write NN.<graph>.after_<pass>.ir files into DIR"},
        {"disable-pass", 0, OPT_LIST, a->disabled, &a->ndisabled, 16, "skip pass NAME (repeatable)"},
        {"time-passes", 0, OPT_FLAG, NULL, &a->time_passes, 0, "print the time each pass took"},
        {"expose-logits", 0, OPT_FLAG, NULL, &a->expose_logits, 0, "also output the logits from the logps entry"},
        {"output", 'o', OPT_STRING, &a->out, NULL, 0, "write the step.so here"},
        {"emit-llvm", 0, OPT_STRING, &a->emit_llvm, NULL, 0, "write the LLVM IR (before optimisation) to FILE"},
        {"target-cpu", 0, OPT_STRING, &a->target_cpu, NULL, 0, "LLVM CPU name (default: this machine's)"},
        {"target-features", 0, OPT_STRING, &a->target_features, NULL, 0, "LLVM feature string (default: this machine's)"},
        {"quiet", 'q', OPT_FLAG, NULL, &a->quiet, 0, "do not print the memory plan"},
    };
    int nopts = need_out ? (int)(sizeof opts / sizeof opts[0]) : 5;
    const char *pos[1];
    int n = dpoc_opts_parse(cmd, synopsis, opts, nopts, argc, argv, pos, 1);
    if (n == -2) return 1;
    if (n < 0) return 2;
    if (n != 1) {
        fprintf(stderr, "dpoc %s: expected one model YAML file (usage: dpoc %s %s)\n", cmd, cmd, synopsis);
        return 2;
    }
    a->yaml = pos[0];
    if (need_out && !a->out) {
        fprintf(stderr, "dpoc %s: missing -o FILE.so\n", cmd);
        return 2;
    }
    for (int i = 0; i < a->ndisabled; i++)
        if (!pass_find(a->disabled[i])) {
            fprintf(stderr, "dpoc %s: --disable-pass: unknown pass '%s' (passes:", cmd, a->disabled[i]);
            for (int p = 0; p < pass_registry_count; p++) fprintf(stderr, " %s", pass_registry[p].name);
            fprintf(stderr, ")\n");
            return 2;
        }
    if (a->dump_dir && mkdir(a->dump_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dpoc %s: cannot create dump directory '%s': %s\n", cmd, a->dump_dir, strerror(errno));
        return 2;
    }
    return 0;
}

static void ctx_init(PassCtx *c, const CompileArgs *a, const char *prefix) {
    int seq = c->dump_seq;
    memset(c, 0, sizeof *c);
    c->dump_seq = seq;
    c->log = stderr;
    const char *dbg = getenv("DPOC_DEBUG");
    c->debug = dbg ? atoi(dbg) : 0;
    c->print_after = a->print_after;
    c->dump_dir = a->dump_dir;
    c->time_passes = a->time_passes;
    c->ndisabled = a->ndisabled;
    for (int i = 0; i < a->ndisabled; i++) c->disabled[i] = a->disabled[i];
    c->dump_prefix = prefix;
}

/* Builds and optimises one graph. Returns 0, or -1 after printing the error. */
static int build_one(const ModelCfg *cfg, BuildKind kind, const CompileArgs *a, PassCtx *c, IrGraph *g) {
    const char *prefix = kind == BUILD_TRAIN ? "train_step" : "logps";
    char err[1024];
    BuildOptions bo = {.dtype = DT_F32, .expose_logits = a->expose_logits};
    ir_init(g);
    if (model_build_graph(cfg, kind, &bo, g, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    ctx_init(c, a, prefix);
    if (pass_pipeline_run(g, c, kind == BUILD_TRAIN ? TRAIN_PASSES : LOGPS_PASSES) != 0) {
        fprintf(stderr, "dpoc: %s: %s\n", prefix, c->err);
        return -1;
    }
    return 0;
}

static void print_bytes(FILE *f, const char *what, int64_t b) {
    fprintf(f, "  %-22s %14lld bytes  (%.2f MiB)\n", what, (long long)b, (double)b / (1024.0 * 1024.0));
}

static void print_memory_plan(FILE *f, const TensorTable *tt, const SchedPlan *plans, int nplans) {
    int64_t nparam = 0;
    for (int i = 0; i < tt->n; i++)
        if (tt->t[i].role == TR_PARAM) {
            int64_t e = 1;
            for (int d = 0; d < tt->t[i].ndim; d++) e *= tt->t[i].shape[d];
            nparam += e;
        }
    int64_t arena = 0;
    for (int i = 0; i < nplans; i++)
        if (plans[i].arena_bytes > arena) arena = plans[i].arena_bytes;
    fprintf(f, "memory plan (%lld trainable parameters):\n", (long long)nparam);
    print_bytes(f, "parameters", tt->region_size[DPOC_R_PARAMS]);
    print_bytes(f, "gradients", tt->region_size[DPOC_R_GRADS]);
    print_bytes(f, "optimizer state", tt->region_size[DPOC_R_ADAM_M] + tt->region_size[DPOC_R_ADAM_V]);
    if (tt->region_size[DPOC_R_REF_PARAMS]) print_bytes(f, "reference parameters", tt->region_size[DPOC_R_REF_PARAMS]);
    print_bytes(f, "inputs", tt->region_size[DPOC_R_INPUTS]);
    print_bytes(f, "outputs", tt->region_size[DPOC_R_OUTPUTS]);
    print_bytes(f, "peak activations", arena);
    for (int i = 0; i < nplans; i++) fprintf(f, "    %s: %lld bytes in %d kernels\n", i == 0 ? "train_step" : "logps",
                                            (long long)plans[i].arena_bytes, plans[i].nkernels);
    int64_t total = arena;
    for (int r = 0; r < DPOC_R_COUNT; r++)
        if (r != DPOC_R_ARENA) total += tt->region_size[r];
    print_bytes(f, "total", total);
}

static int compile_or_print(int argc, char **argv, int compile) {
    CompileArgs a;
    const char *cmd = compile ? "compile" : "ir";
    int rc = parse_args(cmd, compile ? "MODEL.yaml -o STEP.so [options]" : "MODEL.yaml [options]", argc, argv, &a, compile);
    if (rc) return rc == 1 ? 0 : rc;

    char err[1024];
    ModelCfg cfg;
    if (model_cfg_load(a.yaml, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int status = 1;
    IrGraph graphs[2];
    int built = 0;
    TensorTable tt = {0};
    SchedPlan plans[2];
    int planned = 0;
    char *config_json = NULL;
    PassCtx ctx = {0};

    for (; built < 2; built++)
        if (build_one(&cfg, built == 0 ? BUILD_TRAIN : BUILD_LOGPS, &a, &ctx, &graphs[built]) != 0) {
            ir_free(&graphs[built]);
            goto done;
        }
    if (!compile) {
        if (!a.print_after) {
            printf("; train_step\n");
            ir_print(&graphs[0], stdout);
            printf("; logps\n");
            ir_print(&graphs[1], stdout);
        }
        status = 0;
        goto done;
    }
    IrGraph *gp[2] = {&graphs[0], &graphs[1]};
    if (tensor_table_build(&tt, gp, 2, err, sizeof err) != 0) {
        fprintf(stderr, "dpoc: tensor table: %s\n", err);
        goto done;
    }
    for (; planned < 2; planned++)
        if (sched_plan(&graphs[planned], &tt, &plans[planned], err, sizeof err) != 0) {
            fprintf(stderr, "dpoc: schedule: %s\n", err);
            goto done;
        }
    if (!a.quiet) print_memory_plan(stdout, &tt, plans, 2);
    config_json = model_cfg_to_json(&cfg);
    if (!config_json) {
        fprintf(stderr, "dpoc: out of memory\n");
        goto done;
    }
    CodegenEntry entries[2] = {{"train_step", &graphs[0], &plans[0]}, {"logps", &graphs[1], &plans[1]}};
    CodegenOptions co = {.target_cpu = a.target_cpu,
                         .target_features = a.target_features,
                         .emit_llvm_path = a.emit_llvm,
                         .config_json = config_json,
                         .with_optimizer = 1};
    if (codegen_build_so(entries, 2, &tt, &co, a.out, err, sizeof err) != 0) {
        fprintf(stderr, "dpoc: codegen: %s\n", err);
        goto done;
    }
    if (!a.quiet) printf("wrote %s\n", a.out);
    status = 0;
done:
    free(config_json);
    for (int i = 0; i < planned; i++) sched_plan_free(&plans[i]);
    tensor_table_free(&tt);
    for (int i = 0; i < built; i++) ir_free(&graphs[i]);
    model_cfg_free(&cfg);
    return status;
}

int dpoc_cmd_compile(int argc, char **argv) { return compile_or_print(argc, argv, 1); }
int dpoc_cmd_ir(int argc, char **argv) { return compile_or_print(argc, argv, 0); }
