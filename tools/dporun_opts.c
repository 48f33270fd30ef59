/* dporun_opts.c — parsing and checking dporun's options.
 *
 * A table maps each option to a handler; `--name value`, `--name=value`
 * and `-o value` forms are accepted, and the single positional argument is
 * the step.so. Cross-option rules (exclusive options, options that need
 * another) are checked after both passes. The presets hold the published
 * DPO configurations of XTuner and MindRLHF (docs/dporun.md cites them).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dporun_cli.h"

typedef struct Ctx {
    TrainOptions *o;
    DporunMode *mode;
    FILE *err;
    const char *opt; /* the option being handled, for messages */
    int given_steps, given_epochs, given_save_every, given_eval_every, given_keep_last;
} Ctx;

static int bad(Ctx *c, const char *what, const char *val) {
    fprintf(c->err, "dporun: %s: expected %s, got '%s'\n", c->opt, what, val);
    return -1;
}

static int parse_double(Ctx *c, const char *v, double lo, double hi, int lo_open, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    char what[96];
    snprintf(what, sizeof what, "a number %s %g%s", lo_open ? ">" : ">=", lo,
             isinf(hi) ? "" : (hi == 1.0 ? " and < 1" : ""));
    if (!*v || *end || errno || !isfinite(d) || d < lo || (lo_open && d <= lo) || (hi == 1.0 && d >= 1.0) ||
        (!isinf(hi) && hi != 1.0 && d > hi))
        return bad(c, what, v);
    *out = d;
    return 0;
}

static int parse_u64(Ctx *c, const char *v, uint64_t lo, uint64_t *out) {
    char *end;
    errno = 0;
    if (!*v || *v == '-' || *v == '+') return bad(c, "a whole number", v);
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || errno) return bad(c, "a whole number", v);
    if (x < lo) {
        char what[64];
        snprintf(what, sizeof what, "a whole number >= %llu", (unsigned long long)lo);
        return bad(c, what, v);
    }
    *out = x;
    return 0;
}

static int parse_int(Ctx *c, const char *v, uint64_t lo, uint64_t hi, int *out) {
    uint64_t x;
    if (parse_u64(c, v, lo, &x)) return -1;
    if (x > hi) {
        char what[64];
        snprintf(what, sizeof what, "a whole number <= %llu", (unsigned long long)hi);
        return bad(c, what, v);
    }
    *out = (int)x;
    return 0;
}

/* ---- presets ----------------------------------------------------------------- */

static int apply_preset(Ctx *c, const char *name) {
    TrainOptions *o = c->o;
    if (!strcmp(name, "xtuner")) {
        /* xtuner/configs/dpo/internlm/internlm2_chat_1_8b_dpo_full.py */
        o->optimizer = TRAIN_ADAMW;
        o->lr = 5e-7;
        o->beta1 = 0.9, o->beta2 = 0.999;
        o->eps = 1e-8;
        o->weight_decay = 0.0;
        o->max_grad_norm = 1.0;
        o->grad_accum = 16;
        o->schedule = OPT_SCHED_COSINE;
        o->warmup_steps = -1;
        o->warmup_ratio = 0.03;
        o->epochs = 3;
    } else if (!strcmp(name, "mindrlhf")) {
        /* mindrlhf model_configs/qwen_config/finetune_qwen2_7b_dpo.yaml */
        o->optimizer = TRAIN_ADAMW;
        o->lr = 5e-6;
        o->beta1 = 0.9, o->beta2 = 0.95;
        o->eps = 1e-8;
        o->weight_decay = 0.01;
        o->max_grad_norm = 1.0;
        o->grad_accum = 1;
        o->schedule = OPT_SCHED_COSINE;
        o->warmup_steps = -1;
        o->warmup_ratio = 0.1;
        o->epochs = 10;
        o->seed = 42;
    } else {
        return bad(c, "xtuner or mindrlhf", name);
    }
    o->set |= TRAIN_SET_OPTIMIZER | TRAIN_SET_LR | TRAIN_SET_BETAS | TRAIN_SET_EPS | TRAIN_SET_WD | TRAIN_SET_CLIP |
              TRAIN_SET_ACCUM | TRAIN_SET_SCHEDULE | TRAIN_SET_WARMUP;
    return 0;
}

/* ---- the table ----------------------------------------------------------------- */

typedef struct Opt {
    const char *name;
    int takes_value;
    const char *arg, *help;
    int (*fn)(Ctx *c, const char *v);
} Opt;

#define H(name) static int h_##name(Ctx *c, const char *v)
H(data) { return c->o->data_path = v, 0; }
H(steps) { return c->given_steps = 1, c->o->set |= TRAIN_SET_STEPS, parse_u64(c, v, 1, &c->o->steps); }
H(epochs) {
    c->given_epochs = 1;
    c->o->set |= TRAIN_SET_STEPS;
    return parse_double(c, v, 0, INFINITY, 1, &c->o->epochs);
}
H(metrics) { return c->o->metrics_path = v, 0; }
H(seed) { return c->o->set |= TRAIN_SET_SEED, parse_u64(c, v, 0, &c->o->seed); }
H(save) { return c->o->save_dir = v, 0; }
H(save_every) { return c->given_save_every = 1, parse_u64(c, v, 1, &c->o->save_every); }
H(keep_last) { return c->given_keep_last = 1, parse_int(c, v, 0, 1000000, &c->o->keep_last); }
H(resume) { return c->o->resume_path = v, 0; }
H(init) { return c->o->init_path = v, 0; }
H(init_hf) { return c->o->init_hf_path = v, 0; }
H(optimizer) {
    c->o->set |= TRAIN_SET_OPTIMIZER;
    if (!strcmp(v, "adamw")) return c->o->optimizer = TRAIN_ADAMW, 0;
    if (!strcmp(v, "sgd")) return c->o->optimizer = TRAIN_SGD, 0;
    return bad(c, "adamw or sgd", v);
}
H(lr) { return c->o->set |= TRAIN_SET_LR, parse_double(c, v, 0, INFINITY, 0, &c->o->lr); }
H(weight_decay) { return c->o->set |= TRAIN_SET_WD, parse_double(c, v, 0, INFINITY, 0, &c->o->weight_decay); }
H(betas) {
    c->o->set |= TRAIN_SET_BETAS;
    const char *comma = strchr(v, ',');
    if (!comma) return bad(c, "B1,B2 (two numbers in [0, 1) separated by a comma)", v);
    char b1[64];
    size_t n = (size_t)(comma - v);
    if (n >= sizeof b1) return bad(c, "B1,B2", v);
    memcpy(b1, v, n);
    b1[n] = 0;
    return parse_double(c, b1, 0, 1.0, 0, &c->o->beta1) || parse_double(c, comma + 1, 0, 1.0, 0, &c->o->beta2) ? -1 : 0;
}
H(eps) { return c->o->set |= TRAIN_SET_EPS, parse_double(c, v, 0, INFINITY, 1, &c->o->eps); }
H(schedule) {
    c->o->set |= TRAIN_SET_SCHEDULE;
    int s = opt_schedule_parse(v);
    if (s < 0) return bad(c, "constant, linear or cosine", v);
    c->o->schedule = (OptSchedule)s;
    return 0;
}
H(warmup_steps) {
    uint64_t x;
    c->o->set |= TRAIN_SET_WARMUP;
    if (parse_u64(c, v, 0, &x)) return -1;
    c->o->warmup_steps = (int64_t)x;
    return 0;
}
H(warmup_ratio) {
    c->o->set |= TRAIN_SET_WARMUP;
    c->o->warmup_steps = -1;
    return parse_double(c, v, 0, 1.0, 0, &c->o->warmup_ratio);
}
H(max_grad_norm) { return c->o->set |= TRAIN_SET_CLIP, parse_double(c, v, 0, INFINITY, 0, &c->o->max_grad_norm); }
H(grad_accum) { return c->o->set |= TRAIN_SET_ACCUM, parse_int(c, v, 1, 1 << 20, &c->o->grad_accum); }
H(threads) { return parse_int(c, v, 1, 4096, &c->o->threads); }
H(zero) { return parse_int(c, v, 0, 1, &c->o->zero); }
H(ckpt_layout) {
    if (strcmp(v, "full") && strcmp(v, "sharded")) return bad(c, "full or sharded", v);
    return c->o->ckpt_sharded = !strcmp(v, "sharded"), 0;
}
H(kernel_grain) { return parse_double(c, v, 0, INFINITY, 0, &c->o->kernel_grain); }
H(preset) { return (void)c, (void)v, 0; } /* applied in the first pass */
H(eval_data) { return c->o->eval_path = v, 0; }
H(eval_every) { return c->given_eval_every = 1, parse_u64(c, v, 1, &c->o->eval_every); }
H(eval_first) { return (void)v, c->o->eval_first = 1, 0; }
H(ref_logps) { return (void)v, *c->mode = DPORUN_REF_LOGPS, 0; }
H(out) { return c->o->out_path = v, 0; }
H(force_ref) { return (void)v, c->o->force_ref = 1, 0; }
H(deterministic_metrics) { return (void)v, c->o->deterministic_metrics = 1, 0; }
H(no_shuffle) { return (void)v, c->o->set |= TRAIN_SET_SHUFFLE, c->o->shuffle = 0, 0; }
H(peak_gflops) { return parse_double(c, v, 0, INFINITY, 1, &c->o->peak_gflops); }
H(log_every) { return parse_u64(c, v, 1, &c->o->log_every); }
H(progress) { return (void)v, c->o->progress = 1, 0; }
/* ---- prediction (docs/dporun.md "Prediction") ---- */
H(predict) { return *c->mode = DPORUN_PREDICT, c->o->gen.on = 1, c->o->gen.prompt = v, 0; }
H(interactive) { return (void)v, *c->mode = DPORUN_PREDICT, c->o->gen.on = 1, c->o->gen.interactive = 1, 0; }
H(prompt_ids) { return *c->mode = DPORUN_PREDICT, c->o->gen.on = 1, c->o->gen.prompt_ids = v, 0; }
H(ckpt) { return c->o->gen.ckpt_path = v, 0; }
H(tokenizer) { return c->o->gen.tokenizer_dir = v, 0; }
H(system) { return c->o->gen.system = v, 0; }
H(template) {
    ChatTemplate t;
    if (chat_template_parse(v, &t)) return bad(c, "chatml, internlm2, llama3 or none", v);
    return c->o->gen.template_name = v, 0;
}
H(max_new_tokens) {
    uint64_t x;
    if (parse_u64(c, v, 1, &x)) return -1;
    return c->o->gen.max_new_tokens = (int64_t)(x > INT64_MAX ? INT64_MAX : x), 0;
}
H(temperature) { return c->o->gen.sample = 1, parse_double(c, v, 0, INFINITY, 1, &c->o->gen.s.temperature); }
H(top_k) { return c->o->gen.sample = 1, parse_int(c, v, 1, 1 << 30, &c->o->gen.s.top_k); }
H(top_p) {
    c->o->gen.sample = 1;
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !(d > 0 && d <= 1)) return bad(c, "a number > 0 and <= 1", v);
    return c->o->gen.s.top_p = d, 0;
}
H(repetition_penalty) { return parse_double(c, v, 0, INFINITY, 1, &c->o->gen.s.repetition_penalty); }
H(no_progress) { return (void)v, c->o->progress = 0, 0; }
#undef H

static const Opt opts[] = {
    {"data", 1, "REC", "training pairs (.rec)", h_data},
    {"steps", 1, "N", "optimizer steps in all (default: one epoch)", h_steps},
    {"epochs", 1, "E", "passes over the data instead of --steps (may be fractional)", h_epochs},
    {"metrics", 1, "FILE", "JSON lines of metrics, one per step and per evaluation", h_metrics},
    {"seed", 1, "S", "initialisation and data-order seed (default 42)", h_seed},
    {"save", 1, "DIR", "write checkpoints into DIR (at the end, and every --save-every steps)", h_save},
    {"save-every", 1, "N", "save every N steps", h_save_every},
    {"keep-last", 1, "K", "keep the K newest checkpoints (0: all; default 0)", h_keep_last},
    {"resume", 1, "DIR|FILE", "continue a run from its checkpoint (DIR: the latest)", h_resume},
    {"init", 1, "CKPT", "start from the parameters of a checkpoint", h_init},
    {"init-hf", 1, "DIR", "start from a Hugging Face model (safetensors + config.json)", h_init_hf},
    {"optimizer", 1, "NAME", "adamw (default, the step's optimizer_step) or sgd", h_optimizer},
    {"lr", 1, "X", "peak learning rate (default 5e-5)", h_lr},
    {"weight-decay", 1, "X", "weight decay of matrices (default 0)", h_weight_decay},
    {"betas", 1, "B1,B2", "AdamW betas (default 0.9,0.999)", h_betas},
    {"eps", 1, "X", "AdamW epsilon (default 1e-8)", h_eps},
    {"schedule", 1, "NAME", "constant, linear (default) or cosine", h_schedule},
    {"warmup-steps", 1, "N", "linear warm-up steps (default 0)", h_warmup_steps},
    {"warmup-ratio", 1, "X", "warm-up as a fraction of the steps", h_warmup_ratio},
    {"max-grad-norm", 1, "X", "clip the global gradient norm (default 1; 0: off)", h_max_grad_norm},
    {"grad-accum", 1, "N", "micro-batches per optimizer step (default 1)", h_grad_accum},
    {"threads", 1, "N", "worker threads (default: every CPU available)", h_threads},
    {"zero", 1, "0|1", "under mpirun: 1 splits AdamW's moments over the dp ranks (ZeRO-1; docs/mpi.md)", h_zero},
    {"ckpt-layout", 1, "full|sharded", "mesh checkpoints: one full file (default) or one file per tp rank + manifest", h_ckpt_layout},
    {"kernel-grain", 1, "X", "kernel work (FLOPs + bytes) per thread below which a kernel is not split (0: split all)", h_kernel_grain},
    {"preset", 1, "NAME", "xtuner or mindrlhf: their DPO optimizer settings", h_preset},
    {"eval-data", 1, "REC", "held-out pairs, evaluated at the end (and every --eval-every steps)", h_eval_data},
    {"eval-every", 1, "N", "evaluate every N steps", h_eval_every},
    {"eval-first", 0, NULL, "also evaluate before the first step", h_eval_first},
    {"ref-logps", 0, NULL, "compute reference log-probs of --data into -o OUT.rec instead of training", h_ref_logps},
    {"o", 1, "OUT.rec", "output of --ref-logps", h_out},
    {"force-ref", 0, NULL, "train on reference log-probs made with other weights", h_force_ref},
    {"deterministic-metrics", 0, NULL, "leave the time-dependent tokens_per_second and mfu out", h_deterministic_metrics},
    {"no-shuffle", 0, NULL, "keep the data in file order", h_no_shuffle},
    {"peak-gflops", 1, "X", "peak GFLOP/s for mfu (default: estimated)", h_peak_gflops},
    {"log-every", 1, "N", "plain progress lines every N steps", h_log_every},
    {"progress", 0, NULL, "always show the live progress line", h_progress},
    {"no-progress", 0, NULL, "never show the live progress line", h_no_progress},
    {"predict", 1, "TEXT", "generate a reply to TEXT (chat template applied) and stream it", h_predict},
    {"interactive", 0, NULL, "chat: read user turns from stdin until EOF, an empty line or 'exit'", h_interactive},
    {"prompt-ids", 1, "I,J,..", "generate from these token ids (no template); print the new ids", h_prompt_ids},
    {"ckpt", 1, "DIR|FILE", "prediction: the weights (a checkpoint; or --init-hf DIR)", h_ckpt},
    {"tokenizer", 1, "DIR", "prediction: the tokenizer directory", h_tokenizer},
    {"system", 1, "TEXT", "prediction: the system message", h_system},
    {"template", 1, "NAME", "prediction: chatml, internlm2, llama3 or none (default: from the tokenizer)", h_template},
    {"max-new-tokens", 1, "N", "prediction: stop after N new tokens (default: an end token or a full context)", h_max_new_tokens},
    {"temperature", 1, "T", "prediction: sample from softmax(logits / T) (default: greedy)", h_temperature},
    {"top-k", 1, "K", "prediction: sample among the K most likely tokens", h_top_k},
    {"top-p", 1, "P", "prediction: sample from the smallest top set of probability >= P", h_top_p},
    {"repetition-penalty", 1, "X", "prediction: divide (multiply if negative) seen tokens' logits by X", h_repetition_penalty},
};
enum { NOPTS = sizeof opts / sizeof opts[0] };

void dporun_usage(FILE *out) {
    fprintf(out, "usage: dporun STEP.so --data REC [options]\n"
                 "       dporun STEP.so --data REC --ref-logps -o OUT.rec [--init CKPT | --seed S]\n"
                 "       dporun STEP.so --bench [KERNEL] [--threads N] [--reps N]   (dporun --bench --help)\n\noptions:\n");
    for (int i = 0; i < NOPTS; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s %s", opts[i].name[1] ? "--" : "-", opts[i].name,
                 opts[i].takes_value ? opts[i].arg : "");
        fprintf(out, "  %-26s %s\n", left, opts[i].help);
    }
    fprintf(out, "\ndocs/dporun.md describes every option, the metrics and the checkpoints.\n");
}

static const Opt *find_opt(const char *name, size_t len) {
    for (int i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) return &opts[i];
    return NULL;
}

/* One pass over argv; pass 0 applies only --preset, pass 1 everything else. */
static int walk(Ctx *c, int argc, char **argv, int pass, const char **step) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (pass == 1) {
                if (*step) {
                    fprintf(c->err, "dporun: unexpected argument '%s' (the step.so is '%s')\n", a, *step);
                    return -1;
                }
                *step = a;
            }
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1), *eq = a[1] == '-' ? strchr(name, '=') : NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const Opt *o = find_opt(name, len);
        if (!o || (a[1] != '-' && strcmp(o->name, "o")) || (a[1] == '-' && !strcmp(o->name, "o"))) {
            fprintf(c->err, "dporun: unknown option '%s' (dporun --help lists them)\n", a);
            return -1;
        }
        char flag[80];
        snprintf(flag, sizeof flag, "%s%s", o->name[1] ? "--" : "-", o->name);
        c->opt = flag;
        const char *v = NULL;
        if (o->takes_value) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                fprintf(c->err, "dporun: %s needs a value (%s)\n", flag, o->arg);
                return -1;
            }
        } else if (eq) {
            fprintf(c->err, "dporun: %s takes no value\n", flag);
            return -1;
        }
        int is_preset = o->fn == h_preset;
        if (pass == 0 && is_preset && apply_preset(c, v)) return -1;
        if (pass == 1 && !is_preset && o->fn(c, v)) return -1;
    }
    return 0;
}

static int need(Ctx *c, int cond, const char *msg) {
    if (!cond) fprintf(c->err, "dporun: %s\n", msg);
    return cond ? 0 : -1;
}

/* the rules of --predict / --interactive / --prompt-ids */
static int predict_checks(Ctx *c) {
    const TrainOptions *o = c->o;
    const GenOptions *g = &o->gen;
    int modes = (g->prompt != NULL) + g->interactive + (g->prompt_ids != NULL);
    int weights = (g->ckpt_path != NULL) + (o->init_path != NULL) + (o->init_hf_path != NULL);
    return need(c, modes == 1, "--predict, --interactive and --prompt-ids are exclusive: give one") ||
                   need(c, !o->data_path && !o->eval_path && !o->out_path && !o->save_dir && !o->resume_path &&
                               !o->metrics_path,
                        "--predict/--interactive do not train: leave out --data, --eval-data, -o, --save, --resume "
                        "and --metrics") ||
                   need(c, weights <= 1, "--ckpt, --init and --init-hf are exclusive: give one set of weights") ||
                   need(c, g->prompt_ids || g->tokenizer_dir, "--predict and --interactive need --tokenizer DIR")
               ? -1
               : 0;
}

int dporun_parse(int argc, char **argv, TrainOptions *o, DporunMode *mode, FILE *err) {
    train_options_default(o);
    *mode = DPORUN_TRAIN;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            dporun_usage(stdout);
            return 1;
        }
    Ctx c = {o, mode, err, "", 0, 0, 0, 0, 0};
    const char *step = NULL;
    if (walk(&c, argc, argv, 0, &step) || walk(&c, argc, argv, 1, &step)) return -1;
    o->step_path = step;
    if (need(&c, step != NULL, "no step.so given (usage: dporun STEP.so --data REC ...)")) return -1;
    if (*mode == DPORUN_PREDICT) return predict_checks(&c);
    if (need(&c, !o->gen.ckpt_path && !o->gen.tokenizer_dir && !o->gen.system && !o->gen.template_name &&
                     !o->gen.max_new_tokens && !o->gen.sample && !o->gen.s.repetition_penalty,
             "--ckpt, --tokenizer, --system, --template, --max-new-tokens and the sampling options go with "
             "--predict TEXT or --interactive") ||
        need(&c, o->data_path != NULL, "--data REC is required"))
        return -1;
    if (*mode == DPORUN_REF_LOGPS) {
        return need(&c, o->out_path != NULL, "--ref-logps needs -o OUT.rec") ||
                       need(&c, !o->resume_path, "--ref-logps takes --init CKPT, --init-hf DIR or --seed, not --resume")
                   ? -1
                   : 0;
    }
    if (need(&c, !o->out_path, "-o is the output of --ref-logps; training writes --metrics and --save") ||
        need(&c, !(c.given_steps && c.given_epochs), "--steps and --epochs are exclusive: give one") ||
        need(&c, !(o->resume_path && o->init_path), "--resume and --init are exclusive: --resume continues a run, --init starts one") ||
        need(&c, !(o->resume_path && o->init_hf_path), "--resume and --init-hf are exclusive: --resume continues a run, --init-hf starts one") ||
        need(&c, !(o->init_path && o->init_hf_path), "--init and --init-hf are exclusive: give one starting point") ||
        need(&c, !c.given_save_every || o->save_dir, "--save-every needs --save DIR") ||
        need(&c, !c.given_keep_last || o->save_dir, "--keep-last needs --save DIR") ||
        need(&c, !c.given_eval_every || o->eval_path, "--eval-every needs --eval-data REC") ||
        need(&c, !o->eval_first || o->eval_path, "--eval-first needs --eval-data REC"))
        return -1;
    return 0;
}
