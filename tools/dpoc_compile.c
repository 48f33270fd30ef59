/* dpoc_compile.c — `dpoc compile` and `dpoc ir`: YAML -> IR -> passes -> step.so.
 *
 * The driver builds four graphs from one model definition: the training step
 * (forward, loss, then autodiff adds the gradients), the forward-only
 * log-prob step, and the generation entries prefill (a chunk of
 * --prefill-chunk tokens) and decode (one token) over a KV cache of
 * --max-context positions (frontend/model_generate.c). Each runs through the pass pipeline with the user's
 * print/dump/disable options, then both share one tensor table, each gets a
 * schedule, the memory plan is printed, and codegen writes the step.so
 * (through a temporary file, so a failure leaves no output behind).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/codegen.h"
#include "dpoc_cli.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#define TRAIN_PASSES "simplify,autodiff,simplify,fuse"
#define LOGPS_PASSES "simplify,fuse"
#define TRAIN_PASSES_MESH "simplify,autodiff,simplify,shard,fuse"
#define LOGPS_PASSES_MESH "simplify,shard,fuse"

typedef struct CompileArgs {
    const char *yaml, *out, *print_after, *dump_dir, *emit_llvm, *target_cpu, *target_features;
    const char *disabled[16];
    int ndisabled, time_passes, expose_logits, quiet;
    const char *max_context_s, *prefill_chunk_s; /* generation: cache positions, prefill chunk */
    int64_t max_context, prefill_chunk;
    int no_generate;                             /* --no-generate: train_step and logps only */
    int plan_only;                               /* --plan-only: print the memory plan, write nothing */
    const char *mesh_s, *bucket_mb_s; /* --mesh dp=D,tp=T; --bucket-mb N */
    int64_t mesh_dp, mesh_tp, bucket_mb;
    const char *vocab_chunk_s, *attn_block_s; /* --vocab-chunk N, --attn-block N (0: off; default: auto) */
    int64_t vocab_chunk, attn_block;
    int no_remat; /* --no-remat: keep the norm and SiLU activations for the backward */
    int dense_head; /* --dense-head: head logits for every row, not only the loss-masked ones */
    int attn_fused;   /* --attn-fused: each layer's attention one op with its own backward */
    int attn_blocked; /* --attn-blocked: attention as matmuls and a softmax in the graph */
    const char *attn_keep_s; /* --attn-keep 0|1 (default: auto) */
    int64_t attn_keep;
    const char *head_keep_s; /* --head-keep 0|1 (default: auto) */
    int64_t head_keep;
} CompileArgs;

enum { NGRAPHS = 4, NSHARED = 14 };
static const char *const graph_names[NGRAPHS] = {"train_step", "logps", "prefill", "decode"};

/* a whole number in [lo, 1<<24] (lo is 0 or 1; 0 means off); 0 or -1 after a message */
static int parse_whole(const char *cmd, const char *opt, const char *v, int lo, int64_t *out) {
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > (1 << 24)) {
        fprintf(stderr, "dpoc %s: --%s: expected a whole number from %s to %d, got '%s'\n", cmd, opt,
                lo ? "1" : "0 (off)", 1 << 24, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(const char *cmd, const char *synopsis, int argc, char **argv, CompileArgs *a, int need_out) {
    memset(a, 0, sizeof *a);
    /* the first NSHARED options are shared with `dpoc ir`; the rest are compile's */
    DpocOpt opts[] = {
        {"print-after", 0, OPT_STRING, &a->print_after, NULL, 0, "print the IR after PASS (or 'all') to stderr"},
        {"dump-dir", 0, OPT_STRING, &a->dump_dir, NULL, 0, "write NN.<graph>.after_<pass>.ir files into DIR"},
        {"disable-pass", 0, OPT_LIST, a->disabled, &a->ndisabled, 16, "skip pass NAME (repeatable)"},
        {"time-passes", 0, OPT_FLAG, NULL, &a->time_passes, 0, "print the time each pass took"},
        {"expose-logits", 0, OPT_FLAG, NULL, &a->expose_logits, 0, "also output the logits from the logps entry"},
        {"mesh", 0, OPT_STRING, &a->mesh_s, NULL, 0, "compile one rank of a dp x tp mesh, e.g. dp=2,tp=2 (default: YAML parallel:)"},
        {"vocab-chunk", 0, OPT_STRING, &a->vocab_chunk_s, NULL, 0, "head log-softmax in chunks of N vocabulary columns, recomputed by the backward (0: whole; default: auto)"},
        {"no-remat", 0, OPT_FLAG, NULL, &a->no_remat, 0, "keep rmsnorm and SiLU activations instead of recomputing them in the backward"},
        {"attn-block", 0, OPT_STRING, &a->attn_block_s, NULL, 0, "attention in blocks of N query rows, each against the keys it may see (0: whole; default: auto)"},
        {"dense-head", 0, OPT_FLAG, NULL, &a->dense_head, 0, "compute the head for every position, not only where loss_mask is 1"},
        {"attn-fused", 0, OPT_FLAG, NULL, &a->attn_fused, 0, "each layer's attention one op whose backward reads its output: no scores stored (default when every head_dim is a multiple of 16)"},
        {"attn-blocked", 0, OPT_FLAG, NULL, &a->attn_blocked, 0, "attention as matmuls and a softmax in the graph, in query blocks (--attn-block, --attn-keep imply it)"},
        {"attn-keep", 0, OPT_STRING, &a->attn_keep_s, NULL, 0, "1: keep the attention blocks' scores for the backward; 0: recompute them there (default: auto, kept when they total <= 64 MiB)"},
        {"head-keep", 0, OPT_STRING, &a->head_keep_s, NULL, 0, "1: keep the chunked head's logits for the backward; 0: recompute each chunk's matmul there (default: auto, kept when [rows, vocab] f32 is at most half the parameters' bytes)"},
        {"output", 'o', OPT_STRING, &a->out, NULL, 0, "write the step.so here"},
        {"emit-llvm", 0, OPT_STRING, &a->emit_llvm, NULL, 0, "write the LLVM IR (before optimisation) to FILE"},
        {"target-cpu", 0, OPT_STRING, &a->target_cpu, NULL, 0, "LLVM CPU name (default: this machine's)"},
        {"target-features", 0, OPT_STRING, &a->target_features, NULL, 0, "LLVM feature string (default: this machine's)"},
        {"quiet", 'q', OPT_FLAG, NULL, &a->quiet, 0, "do not print the memory plan"},
        {"max-context", 0, OPT_STRING, &a->max_context_s, NULL, 0, "generation: KV cache positions (default: seq_len)"},
        {"prefill-chunk", 0, OPT_STRING, &a->prefill_chunk_s, NULL, 0, "generation: prompt tokens per prefill call (default 32)"},
        {"no-generate", 0, OPT_FLAG, NULL, &a->no_generate, 0, "leave out the prefill/decode entries (faster compile)"},
        {"bucket-mb", 0, OPT_STRING, &a->bucket_mb_s, NULL, 0, "mesh: MiB per merged dp gradient all-reduce (default 16)"},
        {"plan-only", 0, OPT_FLAG, NULL, &a->plan_only, 0, "print the memory plan and stop before code generation (no -o)"},
    };
    int nopts = need_out ? (int)(sizeof opts / sizeof opts[0]) : NSHARED;
    const char *pos[1];
    int n = dpoc_opts_parse(cmd, synopsis, opts, nopts, argc, argv, pos, 1);
    if (n == -2) return 1;
    if (n < 0) return 2;
    if (n != 1) {
        fprintf(stderr, "dpoc %s: expected one model YAML file (usage: dpoc %s %s)\n", cmd, cmd, synopsis);
        return 2;
    }
    a->yaml = pos[0];
    if ((a->max_context_s && parse_whole(cmd, "max-context", a->max_context_s, 1, &a->max_context)) ||
        (a->prefill_chunk_s && parse_whole(cmd, "prefill-chunk", a->prefill_chunk_s, 1, &a->prefill_chunk)) ||
        (a->bucket_mb_s && parse_whole(cmd, "bucket-mb", a->bucket_mb_s, 1, &a->bucket_mb)) ||
        (a->vocab_chunk_s && parse_whole(cmd, "vocab-chunk", a->vocab_chunk_s, 0, &a->vocab_chunk)) ||
        (a->attn_block_s && parse_whole(cmd, "attn-block", a->attn_block_s, 0, &a->attn_block)) ||
        (a->attn_keep_s && parse_whole(cmd, "attn-keep", a->attn_keep_s, 0, &a->attn_keep)) ||
        (a->head_keep_s && parse_whole(cmd, "head-keep", a->head_keep_s, 0, &a->head_keep)))
        return 2;
    const struct {
        const char *opt, *text;
        int64_t value;
    } keeps[2] = {{"attn-keep", a->attn_keep_s, a->attn_keep}, {"head-keep", a->head_keep_s, a->head_keep}};
    for (int i = 0; i < 2; i++)
        if (keeps[i].text && keeps[i].value > 1) {
            fprintf(stderr, "dpoc %s: --%s '%s': expected 0 (recompute) or 1 (keep)\n", cmd, keeps[i].opt, keeps[i].text);
            return 2;
        }
    if (a->mesh_s) {
        char merr[256];
        if (model_mesh_parse(a->mesh_s, &a->mesh_dp, &a->mesh_tp, merr, sizeof merr)) {
            fprintf(stderr, "dpoc %s: %s\n", cmd, merr);
            return 2;
        }
    }
    if (a->plan_only && (a->out || a->quiet || a->emit_llvm)) {
        fprintf(stderr, "dpoc %s: --plan-only writes nothing and prints the plan: it takes no -o, -q or --emit-llvm\n", cmd);
        return 2;
    }
    if (need_out && !a->out && !a->plan_only) {
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
static int build_one(const ModelCfg *cfg, int which, const CompileArgs *a, PassCtx *c, IrGraph *g) {
    BuildKind kind = which == 0 ? BUILD_TRAIN : BUILD_LOGPS;
    const char *prefix = graph_names[which];
    char err[1024];
    BuildOptions bo = {.dtype = DT_F32, .expose_logits = a->expose_logits, .vocab_chunk = a->vocab_chunk,
                       .attn_block = a->attn_block, .remat_activations = !a->no_remat, .dense_head = a->dense_head,
                       .attn_keep = (int)a->attn_keep, .attn_fused = a->attn_fused,
                       .head_keep = (int)a->head_keep};
    GenBuildOptions go = {prefix, which == 3 ? 1 : a->prefill_chunk, a->max_context, DT_F32};
    ir_init(g);
    if ((which < 2 ? model_build_graph(cfg, kind, &bo, g, err, sizeof err)
                   : model_build_generate(cfg, &go, g, err, sizeof err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    ctx_init(c, a, prefix);
    c->mesh[IR_MESH_DP] = (int)a->mesh_dp;
    c->mesh[IR_MESH_TP] = (int)a->mesh_tp;
    int split = a->mesh_dp * a->mesh_tp > 1; /* the shard pass runs only for a mesh */
    if (pass_pipeline_run(g, c, kind == BUILD_TRAIN ? (split ? TRAIN_PASSES_MESH : TRAIN_PASSES)
                                                    : (split ? LOGPS_PASSES_MESH : LOGPS_PASSES)) != 0) {
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
    for (int i = 0; i < nplans; i++) {
        fprintf(f, "    %s: %lld bytes in %d kernels", graph_names[i], (long long)plans[i].arena_bytes,
                plans[i].nkernels);
        if (plans[i].grads_scratch_bytes)
            fprintf(f, " (and up to %lld in gradient slots not yet written)", (long long)plans[i].grads_scratch_bytes);
        fputc('\n', f);
    }
    int64_t total = arena;
    for (int r = 0; r < DPOC_R_COUNT; r++)
        if (r != DPOC_R_ARENA) total += tt->region_size[r];
    print_bytes(f, "total", total);
}

/* the model's JSON plus "generate": {"max_context", "prefill_chunk"}; frees cfg_json */
static char *with_generate_json(char *cfg_json, const CompileArgs *a) {
    cJSON *root = cfg_json ? cJSON_Parse(cfg_json) : NULL;
    free(cfg_json);
    if (!root) return NULL;
    cJSON *gen = cJSON_AddObjectToObject(root, "generate");
    cJSON_AddNumberToObject(gen, "max_context", (double)a->max_context);
    cJSON_AddNumberToObject(gen, "prefill_chunk", (double)a->prefill_chunk);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
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
    IrGraph graphs[NGRAPHS];
    int built = 0;
    TensorTable tt = {0};
    SchedPlan plans[NGRAPHS];
    int planned = 0;
    char *config_json = NULL;
    PassCtx ctx = {0};

    if (!a.mesh_s) a.mesh_dp = cfg.mesh_dp, a.mesh_tp = cfg.mesh_tp; /* the flag wins over parallel: */
    int split = a.mesh_dp * a.mesh_tp > 1;
    int ng = split || a.no_generate ? 2 : NGRAPHS; /* a mesh step has no generation entries (yet) */
    if (split) {
        for (int i = 0; i < a.ndisabled; i++)
            if (strcmp(a.disabled[i], "shard") == 0) {
                fprintf(stderr, "dpoc %s: --disable-pass shard: a step for mesh dp=%lld,tp=%lld needs the shard pass\n", cmd,
                        (long long)a.mesh_dp, (long long)a.mesh_tp);
                model_cfg_free(&cfg);
                return 2;
            }
        if (model_mesh_check(&cfg, a.mesh_dp, a.mesh_tp, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            model_cfg_free(&cfg);
            return 1;
        }
    }
    if (!a.max_context) a.max_context = cfg.seq_len;
    if (!a.prefill_chunk) a.prefill_chunk = a.max_context < 32 ? a.max_context : 32;
    int64_t auto_vc, auto_ab;
    int auto_keep, auto_head_keep;
    model_auto_chunks(&cfg, model_rows(&cfg) * model_row_len(&cfg), &auto_vc, &auto_ab, &auto_keep, &auto_head_keep);
    if (!a.attn_keep_s) a.attn_keep = auto_keep;
    if (!a.head_keep_s) a.head_keep = auto_head_keep;
    if (!a.vocab_chunk_s) a.vocab_chunk = a.mesh_tp > 1 ? 0 : auto_vc; /* a tp-split head stays whole */
    if (a.mesh_tp > 1 && a.vocab_chunk > 0) {
        fprintf(stderr, "dpoc %s: --vocab-chunk %lld: the head is split over %lld tp ranks, and a chunked head needs "
                        "tp=1 (use --vocab-chunk 0)\n", cmd, (long long)a.vocab_chunk, (long long)a.mesh_tp);
        model_cfg_free(&cfg);
        return 2;
    }
    if (!a.attn_block_s) a.attn_block = auto_ab;
    if (a.attn_fused && (a.attn_blocked || a.attn_block_s || a.attn_keep_s)) {
        fprintf(stderr, "dpoc %s: --%s: attention as one op (--attn-fused) has no blocks or kept scores to choose\n",
                cmd, a.attn_blocked ? "attn-blocked" : a.attn_block_s ? "attn-block" : "attn-keep");
        model_cfg_free(&cfg);
        return 2;
    }
    if (!a.attn_fused && !a.attn_blocked && !a.attn_block_s && !a.attn_keep_s) a.attn_fused = model_attn_fused_default(&cfg);
    int64_t rank_pairs = cfg.pairs;
    cfg.pairs *= a.mesh_dp; /* the global micro-batch; the shard pass cuts out one rank's */
    for (; built < ng; built++)
        if (build_one(&cfg, built, &a, &ctx, &graphs[built]) != 0) {
            ir_free(&graphs[built]);
            cfg.pairs = rank_pairs;
            goto done;
        }
    cfg.pairs = rank_pairs;
    if (!compile) {
        if (!a.print_after) {
            for (int i = 0; i < ng; i++) {
                printf("; %s\n", graph_names[i]);
                ir_print(&graphs[i], stdout);
            }
        }
        status = 0;
        goto done;
    }
    IrGraph *gp[NGRAPHS] = {&graphs[0], &graphs[1], &graphs[2], &graphs[3]};
    if (tensor_table_build(&tt, gp, ng, err, sizeof err) != 0) {
        fprintf(stderr, "dpoc: tensor table: %s\n", err);
        goto done;
    }
    for (; planned < ng; planned++)
        if (sched_plan(&graphs[planned], &tt, &plans[planned], err, sizeof err) != 0) {
            fprintf(stderr, "dpoc: schedule: %s\n", err);
            goto done;
        }
    if (!a.quiet) print_memory_plan(stdout, &tt, plans, ng);
    if (a.plan_only) {
        status = 0;
        goto done;
    }
    config_json = ng == NGRAPHS ? with_generate_json(model_cfg_to_json(&cfg), &a) : model_cfg_to_json(&cfg);
    if (!config_json) {
        fprintf(stderr, "dpoc: out of memory\n");
        goto done;
    }
    CodegenEntry entries[NGRAPHS];
    for (int i = 0; i < ng; i++) entries[i] = (CodegenEntry){graph_names[i], &graphs[i], &plans[i]};
    CodegenOptions co = {.target_cpu = a.target_cpu,
                         .target_features = a.target_features,
                         .emit_llvm_path = a.emit_llvm,
                         .config_json = config_json,
                         .with_optimizer = 1,
                         .mesh_dp = (int)a.mesh_dp,
                         .mesh_tp = (int)a.mesh_tp,
                         .bucket_bytes = (a.bucket_mb ? a.bucket_mb : 16) << 20};
    if (codegen_build_so(entries, ng, &tt, &co, a.out, err, sizeof err) != 0) {
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
