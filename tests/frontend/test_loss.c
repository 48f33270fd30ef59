/* test_loss.c — loss expressions: values, structure and locations.
 *
 * Each shipped loss file is lowered over graph inputs (logps, ref_logps,
 * lens of 2B sequences) and the IR is interpreted in double precision
 * (ir_eval.c). The results are compared with the TRL / XTuner formulas
 * written out here in C directly from the trainers' code (with a
 * differently-arranged stable logsigmoid), for several input vectors,
 * parameter settings, and margins large enough that a naive
 * log(sigmoid(x)) would give -inf. Inline expressions check the language
 * itself: precedence, associativity, unary minus, constant folding in
 * double, scalars from mean() and nll_chosen_tokens, every function, and
 * the default reference mode. Structural checks: composites are decomposed
 * (no log(sigmoid)), and ops carry the position of their token in the loss
 * file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"
#include "frontend/frontend.h"
#include "ir_eval.h"

enum { B = 3 };

static const char *losses_dir;

/* ---- building and evaluating ---------------------------------------------------- */

static int load_model(const char *loss_yaml, const char *reference, ModelCfg *cfg, char *err, size_t errlen) {
    char text[4096], fname[1024];
    snprintf(text, sizeof text,
             "name: t\nvocab_size: 16\nhidden_size: 8\narchitecture: [embedding, {lm_head: {tied: true}}]\n"
             "train: {pairs: %d, seq_len: 4}\n%s%s%sloss:\n%s\n",
             B, reference ? "reference: " : "", reference ? reference : "", reference ? "\n" : "", loss_yaml);
    /* a model "next to" losses/, so `use:` finds the shipped files */
    snprintf(fname, sizeof fname, "%s/../virtual_model.yaml", losses_dir);
    return model_cfg_load_str(text, strlen(text), fname, cfg, err, errlen);
}

typedef struct Feed {
    double logps[2 * B], ref[2 * B], lens[2 * B];
} Feed;

static const double *lookup(void *ctx, const char *name, IrOp op, int64_t numel) {
    Feed *f = ctx;
    if (op != OP_INPUT || numel != 2 * B) return NULL;
    if (!strcmp(name, "logps")) return f->logps;
    if (!strcmp(name, "ref_logps")) return f->ref;
    if (!strcmp(name, "lens")) return f->lens;
    return NULL;
}

/* Lowers cfg's loss over fresh inputs into g; returns the loss id or -1. */
static int32_t build(const ModelCfg *cfg, IrGraph *g, int with_ref) {
    char err[1024];
    int64_t s[1] = {2 * B};
    LossLeaves lv;
    lv.logps = ir_input(g, "logps", DT_F64, 1, s);
    lv.ref_logps = with_ref ? ir_input(g, "ref_logps", DT_F64, 1, s) : -1;
    lv.lens = ir_input(g, "lens", DT_F64, 1, s);
    int32_t out = -1;
    if (loss_build_ir(g, &cfg->loss, &lv, &out, err, sizeof err)) {
        CHECK(0, "loss_build_ir: %s", err);
        return -1;
    }
    CHECK(g->nodes[out].ndim == 0, "the loss is not a scalar");
    CHECK(ir_add_output(g, "loss", out, IR_OUT_LOSS) == 0, "add output");
    CHECK(ir_verify(g, err, sizeof err) == 0, "ir_verify: %s", err);
    return out;
}

static double eval_loss(const IrGraph *g, int32_t out, Feed *f) {
    char err[512];
    EvalResult r;
    double v = NAN;
    if (ir_eval(g, lookup, f, &r, err, sizeof err) == 0) v = r.vals[out][0];
    else CHECK(0, "%s", err);
    ir_eval_free(&r);
    return v;
}

static int close_to(double got, double want) { return fabs(got - want) <= 1e-12 * (1.0 + fabs(want)); }

/* ---- the reference formulas (TRL DPOTrainer / CPOTrainer / ORPOTrainer) --------- */

/* log(sigmoid(x)), arranged differently from the front end's min(x,0) - log1p(exp(-|x|)) */
static double logsig(double x) { return x < 0 ? x - log1p(exp(x)) : -log1p(exp(-x)); }

typedef struct P {
    double beta, ls, gamma, alpha, cpo_alpha;
} P;

static double ref_loss(const char *name, const P *p, const Feed *f) {
    double sum = 0, sum_pc = 0, sum_lc = 0;
    for (int i = 0; i < B; i++) {
        sum_pc += f->logps[i];
        sum_lc += f->lens[i];
    }
    double nll_tok = -sum_pc / sum_lc;
    for (int i = 0; i < B; i++) {
        double pc = f->logps[i], pr = f->logps[B + i], rc = f->ref[i], rr = f->ref[B + i];
        double lc = f->lens[i], lr = f->lens[B + i];
        double logits = (pc - pr) - (rc - rr), b = p->beta, l;
        if (!strcmp(name, "sigmoid") || !strcmp(name, "mix")) {
            l = -logsig(b * logits) * (1 - p->ls) - logsig(-b * logits) * p->ls;
            if (!strcmp(name, "mix")) l += p->alpha * nll_tok;
        } else if (!strcmp(name, "robust")) {
            l = (-logsig(b * logits) * (1 - p->ls) + logsig(-b * logits) * p->ls) / (1 - 2 * p->ls);
        } else if (!strcmp(name, "hinge")) {
            l = fmax(0.0, 1 - b * logits);
        } else if (!strcmp(name, "ipo")) {
            double la = (pc / lc - pr / lr) - (rc / lc - rr / lr);
            l = (la - 1 / (2 * b)) * (la - 1 / (2 * b));
        } else if (!strcmp(name, "sppo_hard")) {
            double a = pc - rc, bb = pr - rr;
            l = (a - 0.5 / b) * (a - 0.5 / b) + (bb + 0.5 / b) * (bb + 0.5 / b);
        } else if (!strcmp(name, "nca_pair")) {
            double cr = (pc - rc) * b, rjr = (pr - rr) * b;
            l = -logsig(cr) - 0.5 * logsig(-cr) - 0.5 * logsig(-rjr);
        } else if (!strcmp(name, "simpo")) {
            double x = b * (pc / lc - pr / lr) - p->gamma;
            l = -logsig(x) * (1 - p->ls) - logsig(-x) * p->ls + p->cpo_alpha * nll_tok;
        } else if (!strcmp(name, "orpo")) {
            double ac = pc / lc, ar = pr / lr;
            double log_odds = (ac - ar) - (log1p(-exp(ac)) - log1p(-exp(ar)));
            l = nll_tok - b * logsig(log_odds);
        } else {
            return NAN;
        }
        sum += l;
    }
    return sum / B;
}

/* ---- shipped losses ------------------------------------------------------------- */

static const Feed feeds[] = {
    /* ordinary log-probs and lengths */
    {{-12.5, -30.25, -7.0, -14.0, -22.75, -9.5}, {-13.0, -28.0, -8.25, -13.5, -25.0, -9.0}, {5, 11, 3, 6, 9, 4}},
    /* the policy prefers the rejected responses */
    {{-40.0, -10.0, -15.5, -20.0, -5.0, -12.0}, {-35.0, -12.0, -15.0, -26.0, -4.0, -11.0}, {8, 4, 7, 9, 2, 6}},
    /* margins of thousands of nats: a naive log(sigmoid(x)) overflows */
    {{-1.0, -30000.0, -2.0, -25000.0, -3.0, -40000.0}, {-2.0, -1.0, -3.0, -2.0, -1.0, -4.0}, {20, 20, 20, 20, 20, 20}},
    {{-25000.0, -1.0, -30000.0, -2.0, -2.0, -3.0}, {-1.0, -2.0, -2.0, -1.0, -3.0, -3.0}, {20, 20, 20, 20, 20, 20}},
};

static void check_shipped(const char *name, const char *params_yaml, const P *p, int uses_ref) {
    char loss[512], err[1024];
    snprintf(loss, sizeof loss, "  use: %s\n  params: %s", name, params_yaml);
    ModelCfg cfg;
    if (load_model(loss, uses_ref ? "precomputed" : "none", &cfg, err, sizeof err)) {
        CHECK(0, "%s: %s", name, err);
        return;
    }
    CHECK(!strcmp(cfg.loss.name, name), "%s: loss name '%s'", name, cfg.loss.name);
    CHECK(cfg.loss.uses_ref == uses_ref, "%s: uses_ref %d", name, cfg.loss.uses_ref);
    IrGraph g;
    ir_init(&g);
    int32_t out = build(&cfg, &g, uses_ref);
    for (size_t k = 0; out >= 0 && k < sizeof feeds / sizeof feeds[0]; k++) {
        Feed f = feeds[k];
        if (!strcmp(name, "orpo")) /* average log-probs must be below 0: keep them small */
            for (int i = 0; i < 2 * B; i++) f.lens[i] = fabs(f.logps[i]) * (1.5 + 0.25 * i);
        double got = eval_loss(&g, out, &f), want = ref_loss(name, p, &f);
        CHECK(isfinite(got) && close_to(got, want), "%s %s, input %zu: got %.17g, want %.17g", name, params_yaml, k, got, want);
    }
    /* composites are decomposed: no log(sigmoid(x)) anywhere */
    for (int32_t i = 0; i < g.n; i++)
        if (g.nodes[i].op == OP_LOG) CHECK(g.nodes[g.nodes[i].in[0]].op != OP_SIGMOID, "%s: log(sigmoid) in the graph", name);
    ir_free(&g);
    model_cfg_free(&cfg);
}

static void check_all_shipped(void) {
    P p = {0.1, 0.0, 0.5, 1.0, 0.0};
    check_shipped("sigmoid", "{beta: 0.1}", &p, 1);
    p.ls = 0.2;
    check_shipped("sigmoid", "{beta: 0.1, label_smoothing: 0.2}", &p, 1);
    p.ls = 0.1, p.beta = 0.05;
    check_shipped("robust", "{beta: 0.05, label_smoothing: 0.1}", &p, 1);
    p.ls = 0, p.beta = 0.2;
    check_shipped("hinge", "{beta: 0.2}", &p, 1);
    p.beta = 0.1;
    check_shipped("ipo", "{}", &p, 1);
    p.beta = 0.5;
    check_shipped("sppo_hard", "{beta: 0.5}", &p, 1);
    check_shipped("nca_pair", "{beta: 0.5}", &p, 1);
    p.beta = 2.0, p.gamma = 0.5;
    check_shipped("simpo", "{}", &p, 0);
    p.beta = 2.5, p.gamma = 1.25, p.ls = 0.1, p.cpo_alpha = 0.3;
    check_shipped("simpo", "{beta: 2.5, gamma: 1.25, label_smoothing: 0.1, cpo_alpha: 0.3}", &p, 0);
    p.beta = 0.1, p.ls = 0, p.cpo_alpha = 0;
    check_shipped("orpo", "{beta: 0.1}", &p, 0);
    p.alpha = 0.7;
    check_shipped("mix", "{beta: 0.1, alpha: 0.7}", &p, 1);
}

/* ---- structure and locations ------------------------------------------------------ */

static void check_locations(void) {
    char err[1024], path[1024];
    ModelCfg cfg;
    if (load_model("  use: sigmoid", "precomputed", &cfg, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    /* where the expression's first logsigmoid is in the shipped file */
    snprintf(path, sizeof path, "%s/sigmoid.yaml", losses_dir);
    char *text = fe_slurp(path, NULL);
    const char *expr = text ? strstr(text, "\nexpr: ") : NULL;
    int line = 1, col = 0;
    if (expr) {
        for (const char *q = text; q <= expr; q++) line += *q == '\n';
        col = (int)strlen("expr: -") + 1;
    }
    CHECK(expr && !strncmp(expr + strlen("\nexpr: -"), "logsigmoid(", 11), "sigmoid.yaml has no 'expr: -logsigmoid('");
    free(text);

    IrGraph g;
    ir_init(&g);
    build(&cfg, &g, 1);
    int nmin = 0, nsig = 0;
    for (int32_t i = 0; i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        nsig += n->op == OP_SIGMOID;
        if (n->op != OP_MIN || nmin++) continue;
        const char *f = ir_str_get(&g, n->loc.file);
        size_t fl = strlen(f);
        CHECK(fl >= 19 && !strcmp(f + fl - 19, "losses/sigmoid.yaml") && n->loc.line == line && n->loc.col == col,
              "logsigmoid's min is stamped %s:%d:%d, want .../losses/sigmoid.yaml:%d:%d", f, n->loc.line, n->loc.col, line, col);
    }
    CHECK(nmin == 2 && nsig == 0, "sigmoid loss: %d min nodes (want 2: one per logsigmoid), %d sigmoid nodes", nmin, nsig);
    ir_free(&g);

    /* a ref-using loss lowered without a reference reports the name */
    ir_init(&g);
    int64_t s[1] = {2 * B};
    LossLeaves lv = {ir_input(&g, "logps", DT_F64, 1, s), -1, ir_input(&g, "lens", DT_F64, 1, s)};
    int32_t out;
    CHECK(loss_build_ir(&g, &cfg.loss, &lv, &out, err, sizeof err) == -1 &&
              strstr(err, "losses/sigmoid.yaml:") && strstr(err, "'ref_chosen' needs a reference model"),
          "lowering without a reference: %s", err);
    ir_free(&g);
    model_cfg_free(&cfg);
}

/* ---- the language ---------------------------------------------------------------- */

static void check_expr(const char *expr, const char *params, int want_scalar, double want) {
    char loss[1024], err[1024];
    snprintf(loss, sizeof loss, "  name: t\n  params: %s\n  expr: \"%s\"", params, expr);
    ModelCfg cfg;
    if (load_model(loss, "precomputed", &cfg, err, sizeof err)) {
        CHECK(0, "'%s': %s", expr, err);
        return;
    }
    CHECK(cfg.loss.is_scalar == want_scalar, "'%s': is_scalar %d", expr, cfg.loss.is_scalar);
    IrGraph g;
    ir_init(&g);
    int32_t out = build(&cfg, &g, 1);
    Feed f = feeds[0];
    double got = out >= 0 ? eval_loss(&g, out, &f) : NAN;
    CHECK(close_to(got, want), "'%s': got %.17g, want %.17g", expr, got, want);
    ir_free(&g);
    model_cfg_free(&cfg);
}

static void check_language(void) {
    const Feed *f = &feeds[0];
    const double *lp = f->logps, *rf = f->ref, *ln = f->lens;
    double sp = 0, sl = 0;
#define MEAN3(e) ((e(0) + e(1) + e(2)) / 3.0)
    for (int i = 0; i < B; i++) sp += lp[i], sl += ln[i];

    /* precedence and left associativity */
#define E1(i) (1.0 + 2.0 * lp[i] - 3.0 / 2.0)
    check_expr("1 + 2 * pi_chosen - 3 / 2", "{}", 0, MEAN3(E1));
#define E2(i) ((1.0 - 2.0) - ((3.0 * lp[i]) / 4.0) / 5.0)
    check_expr("1 - 2 - 3 * pi_chosen / 4 / 5", "{}", 0, MEAN3(E2));
    /* unary minus binds to its operand; unary plus; numbers */
#define E3(i) (-(lp[i] - rf[i]) * -2.0 + 0.5 + 0.1)
    check_expr("-(pi_chosen - ref_chosen) * -2 + +.5 + 1e-1", "{}", 0, MEAN3(E3));
    /* parameters and constant folding in double */
#define E4(i) (lp[B + i] * (2.0 * 0.3 + log(4.0)))
    check_expr("pi_rejected * (2 * beta + log(4))", "{beta: 0.3}", 0, MEAN3(E4));
    /* scalars: mean() and nll_chosen_tokens make the loss itself */
    check_expr("mean(pi_chosen) - nll_chosen_tokens", "{}", 1, sp / 3.0 + sp / sl);
    check_expr("mean(mean(len_rejected)) * 2", "{}", 1, (ln[3] + ln[4] + ln[5]) / 3.0 * 2.0);
    /* a scalar broadcast against per-pair values, then the batch mean */
#define E5(i) (lp[i] / ln[i] - (-sp / sl))
    check_expr("pi_chosen_avg - nll_chosen_tokens", "{}", 0, MEAN3(E5));
    /* every function and name */
#define E6(i)                                                                                                        \
    (fmin(lp[i], lp[B + i]) + fmax(ln[i], ln[B + i]) + fabs(lp[i] / ln[i]) + exp(lp[i] / ln[i]) + log(ln[B + i]) + \
     log1p(ln[i]) + 1.0 / (1.0 + exp(-lp[i] / ln[i])) + (lp[B + i] / ln[B + i] > 0 ? lp[B + i] / ln[B + i] : 0) +   \
     log1p(exp(-fabs(lp[B + i] / ln[B + i]))) + fmax(lp[i] - lp[B + i], 0.0) +                                       \
     (rf[i] / ln[i] - rf[B + i] / ln[B + i]) * (rf[i] / ln[i] - rf[B + i] / ln[B + i]) + (-lp[i] / ln[i]) + rf[B + i])
    check_expr("min(pi_chosen, pi_rejected) + max(len_chosen, len_rejected) + abs(pi_chosen_avg) + exp(pi_chosen_avg)"
               " + log(len_rejected) + log1p(len_chosen) + sigmoid(pi_chosen_avg) + softplus(pi_rejected_avg)"
               " + relu(pi_chosen - pi_rejected) + square(ref_chosen_avg - ref_rejected_avg) + nll_chosen + ref_rejected",
               "{}", 0, MEAN3(E6));
    /* stable softplus / logsigmoid far out: naive forms would give inf / -inf */
#define E7(i) (-1000.0 * lp[i])
    check_expr("softplus(-1000 * pi_chosen)", "{}", 0, MEAN3(E7));
#define E8(i) (1000.0 * lp[i])
    check_expr("logsigmoid(1000 * pi_chosen)", "{}", 0, MEAN3(E8));
}

/* ---- forms of `loss:` and the default reference ------------------------------------- */

static void check_forms(void) {
    char err[1024];
    ModelCfg cfg;
    /* `loss: NAME` alone, no `reference:`: a ref-using loss defaults to precomputed */
    CHECK(load_model("  hinge", NULL, &cfg, err, sizeof err) == 0, "loss: hinge: %s", err);
    CHECK(cfg.reference == REF_PRECOMPUTED && cfg.loss.nparams == 1 && cfg.loss.params[0].value == 0.1, "loss: hinge defaults");
    model_cfg_free(&cfg);
    /* a reference-free loss without `reference:` needs none */
    CHECK(load_model("  orpo", NULL, &cfg, err, sizeof err) == 0, "loss: orpo: %s", err);
    CHECK(cfg.reference == REF_NONE && !cfg.loss.uses_ref, "loss: orpo defaults to reference none");
    model_cfg_free(&cfg);
    /* `use:` a path relative to the model */
    CHECK(load_model("  use: losses/ipo.yaml\n  params: {beta: 0.25}", "online", &cfg, err, sizeof err) == 0, "use path: %s", err);
    CHECK(!strcmp(cfg.loss.name, "ipo") && cfg.loss.params[0].value == 0.25 && cfg.reference == REF_ONLINE, "use path values");
    model_cfg_free(&cfg);
    /* inline with lets, a folded multi-line expression */
    CHECK(load_model("  name: two\n  params: {k: 3}\n  let:\n    d: pi_chosen - pi_rejected\n    e: k * d\n"
                     "  expr: >-\n    relu(e)\n    + square(d)",
                     "none", &cfg, err, sizeof err) == 0,
          "inline lets: %s", err);
    CHECK(cfg.loss.nlets == 2 && !strcmp(cfg.loss.expr.text, "relu(e) + square(d)") && !cfg.loss.uses_ref, "inline lets parsed");
    if (cfg.loss.nlets == 2) {
        IrGraph g;
        ir_init(&g);
        int32_t out = build(&cfg, &g, 0);
        Feed f = feeds[1];
        double want = 0;
        for (int i = 0; i < B; i++) {
            double d = f.logps[i] - f.logps[B + i];
            want += fmax(3 * d, 0) + d * d;
        }
        double got = out >= 0 ? eval_loss(&g, out, &f) : NAN;
        CHECK(close_to(got, want / B), "inline lets value %.17g, want %.17g", got, want / B);
        /* the second line of the folded scalar keeps its own position */
        for (int32_t i = 0; i < g.n; i++)
            if (g.nodes[i].op == OP_MUL && g.nodes[i].in[0] == g.nodes[i].in[1] && g.nodes[i].ndim == 1)
                CHECK(g.nodes[i].loc.line == 15 && g.nodes[i].loc.col == 7, "square on line 2 of the folded expr stamped %d:%d",
                      g.nodes[i].loc.line, g.nodes[i].loc.col);
        ir_free(&g);
    }
    model_cfg_free(&cfg);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_frontend_loss MODELS/LOSSES_DIR\n");
        return 2;
    }
    losses_dir = argv[1];
    int n;
    char **names = fe_list_dir(losses_dir, ".yaml", &n);
    CHECK(n == 9, "expected the 9 shipped losses, found %d", n);
    fe_free_list(names, n);
    check_all_shipped();
    check_locations();
    check_language();
    check_forms();
    if (!fe_failures) printf("OK loss expressions match the TRL formulas\n");
    return fe_failures != 0;
}
