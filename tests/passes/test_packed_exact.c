/* test_packed_exact.c — a packed step computes what the unpacked one does.
 *
 * With train.packed_len a pair is one row: the shared prompt once, then the
 * chosen and the rejected response, each token at its sequence position,
 * attention kept inside the prompt and the token's own response (see
 * runtime/batch.h and frontend/model_graph.c). That must change the work,
 * not the numbers: for every model YAML given on the command line, the same
 * preference pairs go through the runtime's batch_put into an unpacked
 * layout ([2B, T] rows) and a packed one ([B, R] rows), the front end
 * builds both train graphs in f64, autodiff + simplify add the gradients,
 * and the reference interpreter evaluates both with the same parameters.
 * The loss, the per-sequence log-probs, the logits sums, an online
 * reference's log-probs and every parameter's gradient must agree to 1e-11
 * relative (f64 sums grouped differently; the unpacked graph's gradients
 * are themselves checked against central differences by
 * test_model_gradcheck). The packed graph is built three times: whole; with
 * the head in vocabulary chunks, attention in blocks of query rows, the
 * activations recomputed and the head masked to the loss rows; and so but
 * with each layer's attention one `attention` op (BuildOptions.attn_fused,
 * its hiding rule reading `segments`). The unpacked graph with the
 * attention op is checked against the same reference too.
 *
 * The pairs cover the layout's cases: a prompt shared and responses of
 * different lengths; sequences that differ from their first token (nothing
 * shared); a chosen sequence cut at T with a label span inside the shared
 * prompt (a position that counts for both sequences); and a short pair
 * that leaves padding at the end of its row.
 */
#include <math.h>

#include "frontend/frontend.h"
#include "ir_interp.h"
#include "runtime/batch.h"
#include "tmodel.h"

enum { B = 4, T = 16, R = 24 };

/* a parameter element's value from its name and index: the same in every graph */
static double param_value(const char *name, int64_t i) {
    uint64_t h = 1469598103934665603ull;
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    double u = (double)(batch_mix64(h + (uint64_t)i) >> 11) / 9007199254740992.0;
    return strstr(name, "norm") ? 0.8 + 0.4 * u : -0.2 + 0.4 * u;
}

typedef struct Pairs {
    int32_t ids[4][2][24];
    RecSpan spans[4][2][2];
    RecPair p[4];
} Pairs;

static void make_pairs(Pairs *q, int32_t vocab) {
    TRng rng = {0x5eedu};
    memset(q, 0, sizeof *q);
    /* lengths (chosen, rejected), shared prefix */
    static const uint32_t len[4][2] = {{12, 16}, {6, 5}, {20, 16}, {9, 9}}, shared[4] = {7, 0, 10, 4};
    for (int k = 0; k < 4; k++) {
        for (int h = 0; h < 2; h++) {
            for (uint32_t t = 0; t < len[k][h]; t++)
                q->ids[k][h][t] = h == 1 && t < shared[k] ? q->ids[k][0][t] : (int32_t)floor(t_uniform(&rng, 0, vocab));
            if (shared[k] < len[k][0] && shared[k] < len[k][1] && h == 1 &&
                q->ids[k][1][shared[k]] == q->ids[k][0][shared[k]])
                q->ids[k][1][shared[k]] = (q->ids[k][0][shared[k]] + 1) % vocab; /* they part at `shared` */
            q->spans[k][h][0] = (RecSpan){shared[k] > 0 ? shared[k] : 1, len[k][h]};
            q->p[k].nspans[h] = 1;
        }
        if (k == 2) { /* an earlier labelled turn inside the shared prompt */
            for (int h = 0; h < 2; h++) {
                q->spans[k][h][1] = q->spans[k][h][0];
                q->spans[k][h][0] = (RecSpan){3, 6};
                q->p[k].nspans[h] = 2;
            }
        }
        q->p[k].prompt_len = shared[k];
        for (int h = 0; h < 2; h++) {
            q->p[k].len[h] = len[k][h];
            q->p[k].ids[h] = q->ids[k][h];
            q->p[k].spans[h] = q->spans[k][h];
        }
        q->p[k].has_ref = 1;
        q->p[k].ref_logps[0] = (float)(-20.0 - k);
        q->p[k].ref_logps[1] = (float)(-22.5 + k);
    }
}

/* One layout's input arrays, filled by the runtime's batch_put. */
typedef struct Inputs {
    int32_t tokens[2 * B * T], targets[2 * B * T], positions[B * R], segments[B * R];
    float mask[2 * B * R], ref[2 * B];
    BatchLayout L;
} Inputs;

static void fill(Inputs *in, const Pairs *q, int packed, int64_t vocab) {
    memset(in, 0, sizeof *in);
    in->L = (BatchLayout){B, T, vocab, in->tokens, in->targets, in->mask, in->ref, packed ? R : T,
                          packed ? in->positions : NULL, packed ? in->segments : NULL};
    batch_clear(&in->L);
    char err[256];
    for (int k = 0; k < 4; k++) {
        BatchPairInfo info;
        CHECK_MSG(batch_put(&in->L, k, &q->p[k], (uint64_t)k, &info, err, sizeof err) == 0, "pair %d: %s", k, err);
    }
}

/* a leaf's element (t_model_leaves): params from param_value, inputs from the layout */
static double leaf_value(void *ctx, const IrNode *n, const char *name, int64_t i) {
    const Inputs *in = ctx;
    if (n->op == OP_PARAM) return param_value(name, i);
    if (!strcmp(name, "tokens")) return in->tokens[i];
    if (!strcmp(name, "targets")) return in->targets[i];
    if (!strcmp(name, "positions")) return in->positions[i];
    if (!strcmp(name, "segments")) return in->segments[i];
    if (!strcmp(name, "loss_mask")) return in->mask[i];
    if (!strcmp(name, "ref_logps")) return in->ref[i];
    CHECK_MSG(0, "unexpected input %s", name);
    return NAN;
}

typedef struct Run {
    IrGraph g;
    double **leaf, **vals;
} Run;

static int run_build(Run *r, const ModelCfg *cfg, const BuildOptions *bo, const Inputs *in) {
    char err[1024];
    ir_init(&r->g);
    if (model_build_graph(cfg, BUILD_TRAIN, bo, &r->g, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return -1;
    }
    PassCtx c = {0};
    if (pass_pipeline_run(&r->g, &c, "autodiff,simplify")) {
        CHECK_MSG(0, "%s: %s", cfg->path, c.err);
        return -1;
    }
    r->leaf = t_model_leaves(&r->g, leaf_value, (void *)in);
    r->vals = ir_interp_run(&r->g, r->leaf, 0, err, sizeof err);
    CHECK_MSG(r->vals, "%s: %s", cfg->path, err);
    return r->vals ? 0 : -1;
}

static void run_free(Run *r) {
    if (r->vals) ir_interp_free(&r->g, r->vals);
    for (int32_t id = 0; r->leaf && id < r->g.n; id++) free(r->leaf[id]);
    free(r->leaf);
    ir_free(&r->g);
}

/* output `name` of both runs agrees to `tol` relative to its largest element */
static double compare(const Run *a, const Run *b, const char *name, int64_t n, double tol, const char *path,
                      const char *label) {
    const double *x = ir_interp_output(&a->g, a->vals, name), *y = ir_interp_output(&b->g, b->vals, name);
    CHECK_MSG(x && y, "%s (%s): no output %s", path, label, name);
    if (!x || !y) return INFINITY;
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        CHECK_MSG(isfinite(x[i]) && isfinite(y[i]), "%s (%s): %s[%lld] is %g unpacked, %g packed", path, label, name,
                  (long long)i, x[i], y[i]);
        if (!isfinite(x[i]) || !isfinite(y[i])) return INFINITY;
        scale = fmax(scale, fabs(x[i]));
    }
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - y[i]) / fmax(scale, 1e-300));
    CHECK_MSG(worst <= tol, "%s (%s): %s differs by %.3g relative", path, label, name, worst);
    return worst;
}

static void check_model(const char *path) {
    ModelCfg cfg;
    if (t_model_load(path, &cfg)) return;
    cfg.pairs = B;
    cfg.seq_len = T;
    Pairs q;
    make_pairs(&q, (int32_t)cfg.vocab_size);
    static Inputs flat, packed;
    fill(&flat, &q, 0, cfg.vocab_size);
    fill(&packed, &q, 1, cfg.vocab_size);

    BuildOptions whole = t_build_whole(), pieces = t_build_pieces(&cfg, R), fused = pieces;
    fused.attn_fused = 1;
    Run ref = {0};
    cfg.packed_len = 0;
    if (run_build(&ref, &cfg, &whole, &flat)) goto out;
    /* packed: whole, in pieces, in pieces with the attention op; unpacked with the attention op */
    static const char *const labels[4] = {"whole", "pieces", "fused", "fused unpacked"};
    const BuildOptions *opts[4] = {&whole, &pieces, &fused, &fused};
    for (int v = 0; v < 4; v++) {
        const char *label = labels[v];
        Run pk = {0};
        cfg.packed_len = v < 3 ? R : 0;
        if (run_build(&pk, &cfg, opts[v], v < 3 ? &packed : &flat)) {
            run_free(&pk);
            continue;
        }
        double worst = compare(&ref, &pk, "loss", 1, 1e-11, path, label);
        worst = fmax(worst, compare(&ref, &pk, "logps", 2 * B, 1e-11, path, label));
        worst = fmax(worst, compare(&ref, &pk, "logits_sum", 2 * B, 1e-11, path, label));
        if (cfg.reference == REF_ONLINE) worst = fmax(worst, compare(&ref, &pk, "ref_logps", 2 * B, 1e-11, path, label));
        int ngrads = 0;
        for (int32_t i = 0; i < ref.g.nout; i++) {
            if (ref.g.outs[i].role != IR_OUT_GRAD) continue;
            const IrNode *n = ir_node(&ref.g, ref.g.outs[i].id);
            worst = fmax(worst, compare(&ref, &pk, ir_str_get(&ref.g, ref.g.outs[i].name), ir_numel(n), 1e-11, path, label));
            ngrads++;
        }
        CHECK_MSG(ngrads > 0, "%s: no gradients", path);
        printf("  %-32s %-14s loss %.9f, %d gradients, max rel diff %.2e\n", path, label,
               ir_interp_output(&pk.g, pk.vals, "loss")[0], ngrads, worst);
        run_free(&pk);
    }
out:
    run_free(&ref);
    model_cfg_free(&cfg);
}

/* The packed row itself, by hand: pair 0 of make_pairs shares 7 tokens, so
 * 6 positions are held once and the row is 6 + 6 + 10 = 22 tokens. */
static void check_row(void) {
    Pairs q;
    make_pairs(&q, 256);
    static Inputs in;
    fill(&in, &q, 1, 256);
    const int32_t *c = q.ids[0][0], *r = q.ids[0][1];
    int ok = 1;
    for (int i = 0; i < R; i++) {
        int t = i < 12 ? i : i < 22 ? i - 12 + 6 : -1; /* sequence position; -1 padding */
        int seg = i < 6 ? 0 : i < 12 ? 1 : i < 22 ? 2 : 3;
        const int32_t *ids = i < 12 ? c : r;
        int len = i < 12 ? 12 : 16;
        int want_tok = t < 0 ? 0 : ids[t], want_tgt = t < 0 || t + 1 >= len ? 0 : ids[t + 1];
        float want_c = seg <= 1 && t + 1 >= 7 && t + 1 < 12 ? 1.0f : 0.0f;
        float want_r = (seg == 0 || seg == 2) && t + 1 >= 7 && t + 1 < 16 ? 1.0f : 0.0f;
        ok &= in.tokens[i] == want_tok && in.targets[i] == want_tgt && in.segments[i] == seg &&
              in.positions[i] == (t < 0 ? 0 : t) && in.mask[i] == want_c && in.mask[B * R + i] == want_r;
    }
    CHECK_MSG(ok, "pair 0's packed row (tokens, targets, positions, segments, masks)");
    CHECK(in.ref[0] == -20.0f && in.ref[B] == -22.5f);
    /* the row of pair 2 holds 9 shared positions and both cut sequences:
     * 16 + 16 - 9 = 23; the labelled prompt turn (positions 3..5) is on both masks */
    BatchPairInfo info;
    batch_pair_info(&q.p[2], T, &info);
    CHECK_MSG(info.packed == 23 && info.truncated, "pair 2: packed %u truncated %d", info.packed, info.truncated);
    CHECK(in.mask[2 * R + 2] == 1.0f && in.mask[(B + 2) * R + 2] == 1.0f && in.mask[2 * R + 5] == 0.0f);
    /* a row too short for the pair is refused, naming the record */
    char err[256];
    Inputs *small = calloc(1, sizeof *small);
    small->L = (BatchLayout){B, T, 256, small->tokens, small->targets, small->mask, NULL, 22, small->positions,
                             small->segments};
    CHECK(batch_put(&small->L, 0, &q.p[2], 41, &info, err, sizeof err) == -1 && strstr(err, "record 41") &&
          strstr(err, "23 tokens") && strstr(err, "packed_len is 22"));
    free(small);
}

int main(int argc, char **argv) {
    check_row();
    for (int i = 1; i < argc; i++) check_model(argv[i]);
    CHECK(argc > 1);
    return check_done("test_packed_exact");
}
