/* test_model_gradcheck.c — autodiff on whole model graphs, in f64.
 *
 * For each model YAML given on the command line, the front end builds the
 * train graph in f64; autodiff + simplify add the gradients. Leaf values are
 * drawn at random (params small, tokens/targets in the vocabulary, a loss
 * mask covering a response span of each row, reference log-probs when the
 * graph has them). The reference interpreter evaluates the gradient outputs,
 * and for a random element of every trainable parameter the gradient must
 * match the fourth-order central difference (h = 1e-3, error O(h^4)) of the
 * loss of the forward graph to 1e-6 relative (denominator floored at 1e-4;
 * the differencing noise is about 1e-13 / h).
 * This exercises every rule as the models compose them: attention with RoPE
 * and the causal mask, RMSNorm, SwiGLU, tied embeddings, log-softmax + pick,
 * the loss expression.
 *
 * Each model is checked twice: whole (and with a dense head), and with the
 * head's log-softmax in vocabulary chunks, attention in blocks of query rows
 * (both uneven, so a short last piece is covered), the norm/SiLU
 * activations flagged for recomputation and the head masked to the
 * loss-masked rows (matmul_masked). The second build must give the first one's loss (to
 * round-off: its sums are grouped differently), pass the same differencing,
 * and give bit for bit the gradients of the same graph with every
 * IR_F_REMAT flag removed: recomputing a value instead of keeping it must
 * change nothing but memory. A third build is the second with the head's
 * logits kept (BuildOptions.head_keep): the same checks, the second build's
 * loss to the last bit, and exactly one recomputed matmul per vocabulary
 * chunk fewer than the second build (only the exps are recomputed).
 *
 * The masked head also masks the last layer: only the rows the head reads
 * are needed there, so its query, attention output and MLP projections are
 * matmul_masked (its keys and values are not). The second build's forward
 * must have exactly one matmul_masked per vocabulary chunk plus two per
 * attention and three per MLP of the last layer (twice with an online
 * reference model); the whole build (dense head) none. The differencing above covers their gradients.
 */
#include <math.h>

#include "frontend/frontend.h"
#include "ir_interp.h"
#include "tmodel.h"

enum { SAMPLES_PER_PARAM = 1 };

typedef struct LeafCtx {
    const ModelCfg *cfg;
    TRng *rng;
} LeafCtx;

/* a leaf's element for the forward graph (t_model_leaves) */
static double leaf_value(void *ctx, const IrNode *n, const char *name, int64_t i) {
    const LeafCtx *x = ctx;
    int64_t T = x->cfg->seq_len;
    if (n->op == OP_PARAM) /* norm weights near 1, everything else small */
        return strstr(name, "norm") ? t_uniform(x->rng, 0.8, 1.2) : t_uniform(x->rng, -0.2, 0.2);
    if (!strcmp(name, "tokens") || !strcmp(name, "targets")) return floor(t_uniform(x->rng, 0, (double)x->cfg->vocab_size));
    if (!strcmp(name, "loss_mask")) {
        int64_t r = i / T, t = i % T;
        int64_t start = 2 + r % 3, stop = T - r % 2; /* response span, some padding */
        return t >= start && t < stop ? 1.0 : 0.0;
    }
    return t_uniform(x->rng, -30, -10); /* ref_logps */
}

static double loss_of(const IrGraph *g, double **leaf) {
    char err[256];
    double **v = ir_interp_run(g, leaf, 0, err, sizeof err);
    CHECK_MSG(v, "%s", err);
    if (!v) return NAN;
    double L = ir_interp_output(g, v, "loss")[0];
    ir_interp_free(g, v);
    return L;
}

/* evaluates graph g (autodiff + simplify already run) with the leaves of
 * fwd given by name; NULL + message on failure */
static double **eval_by_name(const IrGraph *g, const IrGraph *fwd, double *const *leaf, char *err, size_t errlen) {
    double **gl = calloc((size_t)g->n, sizeof *gl);
    for (int32_t id = 0; id < g->n; id++) {
        const IrNode *n = ir_node(g, id);
        if (n->op != OP_PARAM && n->op != OP_INPUT) continue;
        int32_t f = ir_find_named(fwd, (IrOp)n->op, ir_str_get(g, n->name));
        if (f >= 0) gl[id] = leaf[f];
    }
    double **vals = ir_interp_run(g, gl, 0, err, errlen);
    free(gl);
    return vals;
}

/* the train graph full (forward + gradients) with every IR_F_REMAT flag
 * cleared, differentiated into *plain; returns how many flags were cleared */
static int strip_remat(const IrGraph *full, IrGraph *plain, const char *path) {
    int n = 0;
    CHECK(ir_copy(plain, full) == 0);
    for (int32_t id = 0; id < plain->n; id++)
        if (plain->nodes[id].flags & IR_F_REMAT) { /* clearing may leave duplicate nodes: harmless */
            plain->nodes[id].flags &= ~(uint32_t)IR_F_REMAT;
            n++;
        }
    PassCtx c = {0};
    CHECK_MSG(pass_pipeline_run(plain, &c, "autodiff,simplify") == 0, "%s: %s", path, c.err);
    return n;
}

/* one build of the model: its loss at the seeded leaves; *nrec_mm = the
 * backward's recomputed matmuls */
static double check_build(const char *path, const ModelCfg *cfg, const BuildOptions *bo, const char *label,
                          int *nrec_mm) {
    char err[1024];
    IrGraph fwd, g, plain;
    ir_init(&fwd);
    CHECK_MSG(model_build_graph(cfg, BUILD_TRAIN, bo, &fwd, err, sizeof err) == 0, "%s", err);
    CHECK(ir_copy(&g, &fwd) == 0);
    int nremat = strip_remat(&fwd, &plain, path);
    PassCtx c = {0};
    CHECK_MSG(pass_pipeline_run(&g, &c, "autodiff,simplify") == 0, "%s: %s", path, c.err);
    /* the forward graph for differencing: the loss only */
    PassCtx c2 = {0};
    for (int32_t i = 0; i < fwd.nout; i++)
        if (fwd.outs[i].role != IR_OUT_LOSS) fwd.outs[i--] = fwd.outs[--fwd.nout];
    CHECK(pass_dce(&fwd, &c2) != PASS_ERROR);

    TRng rng = {0x1234567u};
    LeafCtx lc = {cfg, &rng};
    double **leaf = t_model_leaves(&fwd, leaf_value, &lc);
    double **vals = eval_by_name(&g, &fwd, leaf, err, sizeof err);
    CHECK_MSG(vals, "%s: %s", path, err);
    double **pvals = eval_by_name(&plain, &fwd, leaf, err, sizeof err);
    CHECK_MSG(pvals, "%s: %s", path, err);
    int nrecomputed = 0;
    *nrec_mm = 0;
    for (int32_t id = 0; id < g.n; id++) {
        int rec = (ir_node(&g, id)->flags & IR_F_RECOMPUTED) != 0;
        nrecomputed += rec;
        *nrec_mm += rec && ir_op_is_matmul(ir_node(&g, id)->op);
    }
    if (bo->remat_activations || bo->vocab_chunk > 0 || bo->attn_block > 0)
        CHECK_MSG(nremat > 0 && nrecomputed > 0, "%s (%s): %d remat flags, %d recomputed values", path, label, nremat,
                  nrecomputed);
    double L0 = loss_of(&fwd, leaf);
    CHECK_MSG(vals && fabs(ir_interp_output(&g, vals, "loss")[0] - L0) <= 1e-12 * fmax(1, fabs(L0)),
              "%s: loss differs between the graphs", path);
    int nchecked = 0, nparams = 0;
    double worst = 0;
    const double h = 1e-3;
    for (int32_t id = 0; vals && id < fwd.n; id++) {
        const IrNode *n = ir_node(&fwd, id);
        if (n->op != OP_PARAM || n->attr[0] != IR_PARAM_TRAINABLE) continue;
        const char *name = ir_str_get(&fwd, n->name);
        const double *gr = ir_interp_output(&g, vals, name);
        const double *pg = pvals ? ir_interp_output(&plain, pvals, name) : NULL;
        CHECK_MSG(gr && pg, "%s: no gradient for %s", path, name);
        if (!gr || !pg) continue;
        CHECK_MSG(memcmp(gr, pg, sizeof *gr * (size_t)ir_numel(n)) == 0,
                  "%s (%s): d loss / d %s differs when nothing is recomputed", path, label, name);
        nparams++;
        int64_t numel = ir_numel(n);
        for (int s = 0; s < SAMPLES_PER_PARAM; s++) {
            int64_t e = (int64_t)floor(t_uniform(&rng, 0, (double)numel));
            double x0 = leaf[id][e], l[4];
            static const double steps[4] = {-2, -1, 1, 2};
            for (int k = 0; k < 4; k++) {
                leaf[id][e] = x0 + steps[k] * h;
                l[k] = loss_of(&fwd, leaf);
            }
            leaf[id][e] = x0;
            /* fourth-order central difference: error O(h^4) */
            double fd = (8 * (l[2] - l[1]) - (l[3] - l[0])) / (12 * h);
            double r = fabs(gr[e] - fd) / fmax(1e-4, fmax(fabs(gr[e]), fabs(fd)));
            if (r > worst) worst = r;
            CHECK_MSG(r <= 1e-6, "%s: d loss / d %s[%lld]: autodiff %.12g, central difference %.12g", path, name,
                      (long long)e, gr[e], fd);
            nchecked++;
        }
    }
    int ngrads = 0;
    for (int32_t i = 0; i < g.nout; i++) ngrads += g.outs[i].role == IR_OUT_GRAD;
    CHECK(nparams > 0 && ngrads == nparams);
    printf("  %-32s %-8s loss %.6f, %d params, %d elements, max rel err %.2e, %d recomputed values (%d matmuls)\n",
           path, label, L0, nparams, nchecked, worst, nrecomputed, *nrec_mm);
    ir_interp_free(&g, vals);
    ir_interp_free(&plain, pvals);
    for (int32_t id = 0; id < fwd.n; id++) free(leaf[id]);
    free(leaf);
    ir_free(&fwd);
    ir_free(&g);
    ir_free(&plain);
    return L0;
}

/* matmul_masked nodes in the forward graph of a build (its live nodes: the
 * front end leaves the unflagged original of each remat copy behind) */
static int masked_matmuls(const ModelCfg *cfg, const BuildOptions *bo) {
    char err[1024];
    IrGraph g;
    ir_init(&g);
    int n = -1;
    PassCtx c = {0};
    if (model_build_graph(cfg, BUILD_TRAIN, bo, &g, err, sizeof err) == 0 && pass_dce(&g, &c) != PASS_ERROR) {
        n = 0;
        for (int32_t id = 0; id < g.n; id++) n += ir_node(&g, id)->op == OP_MATMUL_MASKED;
    }
    CHECK_MSG(n >= 0, "%s", err);
    ir_free(&g);
    return n;
}

/* what the last layer of the model masks: two projections per attention
 * (q, o), three per MLP */
static int last_layer_masked(const ModelCfg *cfg) {
    const BlockCfg *blk = &cfg->blocks[cfg->nblocks - 1];
    int n = 0;
    for (int gi = 0; gi < blk->ngroups; gi++)
        for (int mi = 0; mi < blk->groups[gi].nmods; mi++) {
            int k = blk->groups[gi].mods[mi].kind;
            n += k == MOD_ATTENTION ? 2 : k == MOD_MLP ? 3 : 0;
        }
    return n;
}

static void check_model(const char *path) {
    ModelCfg cfg;
    if (t_model_load(path, &cfg)) return;
    BuildOptions whole = t_build_whole(), pieces = t_build_pieces(&cfg, cfg.seq_len), kept = pieces;
    kept.head_keep = 1;
    int mm0, mm1, mm2;
    double l0 = check_build(path, &cfg, &whole, "whole", &mm0);
    double l1 = check_build(path, &cfg, &pieces, "pieces", &mm1);
    double l2 = check_build(path, &cfg, &kept, "kept", &mm2);
    CHECK_MSG(fabs(l0 - l1) <= 1e-12 * fmax(1, fabs(l0)), "%s: loss %.17g whole, %.17g in pieces", path, l0, l1);
    CHECK_MSG(l1 == l2, "%s: loss %.17g in pieces, %.17g with the head's logits kept", path, l1, l2);
    int64_t chunks = (cfg.vocab_size + pieces.vocab_chunk - 1) / pieces.vocab_chunk;
    CHECK_MSG(mm1 - mm2 == chunks, "%s: %d recomputed matmuls in pieces, %d with the head's logits kept: expected %lld "
              "fewer", path, mm1, mm2, (long long)chunks);
    int mw = masked_matmuls(&cfg, &whole), mp = masked_matmuls(&cfg, &pieces), ml = last_layer_masked(&cfg);
    int copies = cfg.reference == REF_ONLINE ? 2 : 1; /* an online reference model is built alike */
    CHECK_MSG(mw == 0 && mp == copies * (chunks + ml), "%s: %d matmul_masked whole (expected 0), %d in pieces (expected "
              "%d x (%lld head chunks + %d in the last layer))", path, mw, mp, copies, (long long)chunks, ml);
    model_cfg_free(&cfg);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) check_model(argv[i]);
    CHECK(argc > 1);
    return check_done("test_model_gradcheck");
}
