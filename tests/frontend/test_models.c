/* test_models.c — every model YAML loads and builds verified graphs.
 *
 * For each YAML in the directories given (models/ and the real-shape files of
 * tests/frontend/shapes/): load; both graphs (train, logps with logits) in f32
 * and f64 pass ir_verify, print -> parse -> print round-trips, have exactly
 * the inputs, outputs, roles and shapes of the brief, Hugging Face parameter
 * names whose element count matches model_cfg_param_count (and, for the
 * online reference, the same set frozen under `ref:`), and every node carries
 * a YAML location. The manifest JSON parses and agrees.
 *
 * Parameter counts are checked against numbers worked out by hand below:
 * tiny.yaml from its dimensions, and the real shapes against the published
 * sizes of Qwen2-0.5B, Llama-3.2-1B and InternLM2-1.8B.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"
#include "frontend/frontend.h"

static int64_t numel_of(const IrNode *n) {
    int64_t e = 1;
    for (int d = 0; d < n->ndim; d++) e *= n->shape[d];
    return e;
}

static int shape_is(const IrNode *n, int ndim, int64_t a, int64_t b, int64_t c) {
    int64_t s[3] = {a, b, c};
    if (n->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (n->shape[d] != s[d]) return 0;
    return 1;
}

static const IrNode *output(const IrGraph *g, const char *name, int role) {
    int32_t k = ir_find_output(g, name);
    if (k < 0 || g->outs[k].role != role) return NULL;
    return &g->nodes[g->outs[k].id];
}

/* A parameter name of the Hugging Face Qwen2/Llama layout. */
static int hf_name_ok(const char *s) {
    static const char *const fixed[] = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
    static const char *const layer[] = {
        "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
        "self_attn.v_proj.bias", "self_attn.o_proj.bias", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight", "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(s, fixed[i])) return 1;
    if (strncmp(s, "model.layers.", 13)) return 0;
    const char *p = s + 13;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    if (*p++ != '.') return 0;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
        if (!strcmp(p, layer[i])) return 1;
    return 0;
}

static void check_graph(const char *file, const ModelCfg *cfg, const IrGraph *g, BuildKind kind, IrDType dt) {
    char err[1024];
    const char *what = kind == BUILD_TRAIN ? "train" : "logps";
    int64_t S = 2 * cfg->pairs, T = cfg->seq_len, V = cfg->vocab_size;
    CHECK(ir_verify(g, err, sizeof err) == 0, "%s %s: ir_verify: %s", file, what, err);

    /* inputs */
    int32_t id = ir_find_named(g, OP_INPUT, "tokens");
    CHECK(id >= 0 && g->nodes[id].dtype == DT_I32 && shape_is(&g->nodes[id], 2, S, T, 0), "%s %s: tokens", file, what);
    id = ir_find_named(g, OP_INPUT, "targets");
    CHECK(id >= 0 && g->nodes[id].dtype == DT_I32 && shape_is(&g->nodes[id], 2, S, T, 0), "%s %s: targets", file, what);
    id = ir_find_named(g, OP_INPUT, "loss_mask");
    CHECK(id >= 0 && g->nodes[id].dtype == dt && shape_is(&g->nodes[id], 2, S, T, 0), "%s %s: loss_mask", file, what);
    id = ir_find_named(g, OP_INPUT, "ref_logps");
    int want_ref_in = kind == BUILD_TRAIN && cfg->reference == REF_PRECOMPUTED;
    CHECK((id >= 0) == want_ref_in, "%s %s: ref_logps input present=%d, want %d", file, what, id >= 0, want_ref_in);
    if (id >= 0) CHECK(shape_is(&g->nodes[id], 1, S, 0, 0), "%s: ref_logps shape", file);

    /* outputs */
    const IrNode *o;
    if (kind == BUILD_TRAIN) {
        int want = 3 + (cfg->reference == REF_ONLINE);
        CHECK(g->nout == want, "%s train: %d outputs, want %d", file, g->nout, want);
        o = output(g, "loss", IR_OUT_LOSS);
        CHECK(o && o->ndim == 0 && o->dtype == dt, "%s train: loss output", file);
        o = output(g, "logps", IR_OUT_VALUE);
        CHECK(o && shape_is(o, 1, S, 0, 0), "%s train: logps output", file);
        o = output(g, "logits_sum", IR_OUT_VALUE);
        CHECK(o && shape_is(o, 1, S, 0, 0), "%s train: logits_sum output", file);
        if (cfg->reference == REF_ONLINE) {
            o = output(g, "ref_logps", IR_OUT_VALUE);
            CHECK(o && shape_is(o, 1, S, 0, 0) && o->op == OP_STOP_GRAD, "%s train: ref_logps output (stop_grad)", file);
        }
    } else {
        CHECK(g->nout == 2, "%s logps: %d outputs, want 2", file, g->nout);
        o = output(g, "logps", IR_OUT_VALUE);
        CHECK(o && shape_is(o, 1, S, 0, 0), "%s logps: logps output", file);
        o = output(g, "logits", IR_OUT_VALUE);
        CHECK(o && shape_is(o, 3, S, T, V), "%s logps: logits output", file);
    }

    /* parameters: HF names, count, frozen reference copies */
    int64_t trainable = 0, frozen = 0;
    int ntrain = 0, nfrozen = 0;
    for (int32_t i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        CHECK(n->loc.file >= 0 && n->loc.line >= 1 && n->loc.col >= 1, "%s %s: node %%%d has no source location", file, what, i);
        if (n->op != OP_PARAM) continue;
        const char *name = ir_str_get(g, n->name);
        CHECK(n->dtype == dt, "%s: param %s dtype", file, name);
        if (n->attr[0] == IR_PARAM_TRAINABLE) {
            CHECK(hf_name_ok(name), "%s: '%s' is not a Hugging Face parameter name", file, name);
            trainable += numel_of(n);
            ntrain++;
        } else {
            CHECK(!strncmp(name, "ref:", 4) && hf_name_ok(name + 4), "%s: frozen param '%s'", file, name);
            int32_t twin = ir_find_named(g, OP_PARAM, name + 4);
            CHECK(twin >= 0 && numel_of(&g->nodes[twin]) == numel_of(n), "%s: frozen '%s' has no trainable twin", file, name);
            frozen += numel_of(n);
            nfrozen++;
        }
    }
    CHECK(trainable == model_cfg_param_count(cfg), "%s %s: params in graph %lld, model_cfg_param_count %lld", file, what,
          (long long)trainable, (long long)model_cfg_param_count(cfg));
    int want_frozen = kind == BUILD_TRAIN && cfg->reference == REF_ONLINE;
    CHECK(want_frozen ? (nfrozen == ntrain && frozen == trainable) : nfrozen == 0, "%s %s: %d frozen params", file, what, nfrozen);

    /* text round trip */
    char *t1 = ir_print_str(g);
    IrGraph g2;
    ir_init(&g2);
    CHECK(t1 && ir_parse(&g2, t1, file, err, sizeof err) == 0, "%s %s: parse of printed IR: %s", file, what, err);
    char *t2 = ir_print_str(&g2);
    CHECK(t1 && t2 && !strcmp(t1, t2), "%s %s: print -> parse -> print differs", file, what);
    free(t1);
    free(t2);
    ir_free(&g2);
}

static void check_json(const char *file, const ModelCfg *cfg) {
    char *js = model_cfg_to_json(cfg);
    CHECK(js != NULL, "%s: no JSON", file);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    CHECK(o != NULL, "%s: JSON does not parse", file);
    if (o) {
        cJSON *pc = cJSON_GetObjectItem(o, "param_count"), *nm = cJSON_GetObjectItem(o, "name");
        cJSON *ref = cJSON_GetObjectItem(o, "reference"), *loss = cJSON_GetObjectItem(o, "loss");
        CHECK(cJSON_IsNumber(pc) && pc->valuedouble == (double)model_cfg_param_count(cfg), "%s: JSON param_count", file);
        CHECK(cJSON_IsString(nm) && !strcmp(nm->valuestring, cfg->name), "%s: JSON name", file);
        CHECK(cJSON_IsString(ref) && !strcmp(ref->valuestring, ref_mode_name(cfg->reference)), "%s: JSON reference", file);
        cJSON *expr = loss ? cJSON_GetObjectItem(loss, "expr") : NULL;
        CHECK(cJSON_IsString(expr) && !strcmp(expr->valuestring, cfg->loss.expr.text), "%s: JSON loss expr", file);
        cJSON *params = loss ? cJSON_GetObjectItem(loss, "params") : NULL;
        CHECK(cJSON_GetArraySize(params) == cfg->loss.nparams, "%s: JSON loss params", file);
        cJSON *arch = cJSON_GetObjectItem(o, "architecture");
        CHECK(cJSON_GetArraySize(arch) == 2 + cfg->nblocks + cfg->has_final_norm, "%s: JSON architecture", file);
        cJSON_Delete(o);
    }
    free(js);
}

static void check_model(const char *dir, const char *name) {
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ModelCfg cfg;
    if (model_cfg_load(path, &cfg, err, sizeof err)) {
        CHECK(0, "%s: %s", name, err);
        return;
    }
    check_json(name, &cfg);
    for (int dti = 0; dti < 2; dti++)
        for (int k = 0; k < 2; k++) {
            IrGraph g;
            ir_init(&g);
            BuildOptions bo = {.dtype = dti ? DT_F64 : DT_F32, .expose_logits = 1};
            int rc = model_build_graph(&cfg, k ? BUILD_LOGPS : BUILD_TRAIN, &bo, &g, err, sizeof err);
            CHECK(rc == 0, "%s: build: %s", name, err);
            if (!rc) check_graph(name, &cfg, &g, k ? BUILD_LOGPS : BUILD_TRAIN, bo.dtype);
            ir_free(&g);
        }
    model_cfg_free(&cfg);
}

/* ---- tiny.yaml, by hand ------------------------------------------------------ */

/* Line and column (1-based) of the first occurrence of needle in path. */
static void find_in_file(const char *path, const char *needle, int *line, int *col) {
    char *t = fe_slurp(path, NULL);
    *line = *col = 0;
    const char *p = t ? strstr(t, needle) : NULL;
    if (p) {
        *line = 1;
        const char *ls = t;
        for (const char *q = t; q < p; q++)
            if (*q == '\n') (*line)++, ls = q + 1;
        *col = (int)(p - ls) + 1;
    }
    free(t);
}

static void check_tiny(const char *dir) {
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/tiny.yaml", dir);
    ModelCfg cfg;
    if (model_cfg_load(path, &cfg, err, sizeof err)) {
        CHECK(0, "tiny.yaml: %s", err);
        return;
    }
    /* tiny: V=256, H=64, 2 layers, 4 heads of 16 over 2 kv heads, q/k/v bias,
     * I=128, tied embeddings. Per layer: 2 norms 2*64; q 64*64 + 64;
     * k, v 64*32 + 32 each; o 64*64; mlp 3*64*128. */
    int64_t per_layer = 2 * 64 + (64 * 64 + 64) + 2 * (64 * 32 + 32) + 64 * 64 + 3 * 64 * 128;
    int64_t want = 256 * 64 + 2 * per_layer + 64;
    CHECK(per_layer == 37120 && want == 90688, "hand arithmetic");
    CHECK(model_cfg_param_count(&cfg) == want, "tiny param count %lld, want %lld", (long long)model_cfg_param_count(&cfg),
          (long long)want);
    CHECK(cfg.num_layers == 2 && cfg.pairs == 2 && cfg.seq_len == 16 && cfg.vocab_size == 256 && cfg.hidden_size == 64,
          "tiny dims");
    CHECK(cfg.reference == REF_PRECOMPUTED && cfg.lm_head.tied && cfg.has_final_norm, "tiny reference/tied/norm");
    CHECK(!strcmp(cfg.loss.name, "sigmoid") && cfg.loss.uses_ref && !cfg.loss.is_scalar, "tiny loss");

    IrGraph g;
    ir_init(&g);
    BuildOptions bo = {.dtype = DT_F32};
    CHECK(model_build_graph(&cfg, BUILD_TRAIN, &bo, &g, err, sizeof err) == 0, "tiny build: %s", err);
    static const char *const names[] = {
        "model.embed_tokens.weight", "model.norm.weight",
        "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
        "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.bias",
        "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.k_proj.bias",
        "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.v_proj.bias",
        "model.layers.1.self_attn.o_proj.weight", "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight"};
    static const int64_t shapes[][2] = {{256, 64}, {64, 0}, {64, 0}, {64, 0}, {64, 64}, {64, 0}, {32, 64},
                                        {32, 0},   {32, 64}, {32, 0}, {64, 64}, {128, 64}, {128, 64}, {64, 128}};
    int nparams = 0;
    for (int32_t i = 0; i < g.n; i++) nparams += g.nodes[i].op == OP_PARAM;
    CHECK(nparams == 1 + 1 + 2 * 12, "tiny has %d params, want 26", nparams);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int32_t id = ir_find_named(&g, OP_PARAM, names[i]);
        CHECK(id >= 0, "tiny: no param %s", names[i]);
        if (id < 0) continue;
        const IrNode *n = &g.nodes[id];
        int nd = shapes[i][1] ? 2 : 1;
        CHECK(n->ndim == nd && n->shape[0] == shapes[i][0] && (nd == 1 || n->shape[1] == shapes[i][1]), "tiny: shape of %s",
              names[i]);
    }
    CHECK(ir_find_named(&g, OP_PARAM, "lm_head.weight") < 0, "tiny is tied: no lm_head.weight");
    CHECK(ir_find_named(&g, OP_PARAM, "model.layers.1.self_attn.o_proj.bias") < 0, "tiny: no o_proj bias");

    /* the q projection is stamped with the attention entry of tiny.yaml */
    int line, col;
    find_in_file(path, "attention:", &line, &col);
    int32_t wq = ir_find_named(&g, OP_PARAM, "model.layers.0.self_attn.q_proj.weight");
    int found = 0;
    for (int32_t i = 0; wq >= 0 && i < g.n; i++)
        if (g.nodes[i].op == OP_MATMUL && g.nodes[i].in[1] == wq) {
            found = 1;
            CHECK(g.nodes[i].loc.line == line && g.nodes[i].loc.col == col &&
                      strstr(ir_str_get(&g, g.nodes[i].loc.file), "tiny.yaml"),
                  "q_proj matmul at %s:%d:%d, want tiny.yaml:%d:%d", ir_str_get(&g, g.nodes[i].loc.file), g.nodes[i].loc.line,
                  g.nodes[i].loc.col, line, col);
        }
    CHECK(found, "tiny: no q_proj matmul");
    /* GQA without copies: one score matmul per layer over [S, kv, group*T, T] */
    int scores = 0;
    for (int32_t i = 0; i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        if (n->op == OP_MATMUL && n->ndim == 4 && n->attr[1] == 1) {
            scores++;
            CHECK(n->shape[0] == 4 && n->shape[1] == 2 && n->shape[2] == 2 * 16 && n->shape[3] == 16, "tiny: score shape");
        }
    }
    CHECK(scores == 2, "tiny: %d score matmuls, want 2", scores);
    ir_free(&g);
    model_cfg_free(&cfg);
}

/* Published sizes of real checkpoints, worked out from their HF configs:
 *  Qwen2-0.5B: V=151936 H=896 L=24 heads 14/2 d=64 I=4864, qkv bias, tied:
 *    151936*896 + 24*(896*896+896 + 2*(896*128+128) + 896*896 + 3*896*4864 + 2*896) + 896
 *  Llama-3.2-1B: V=128256 H=2048 L=16 heads 32/8 d=64 I=8192, no bias, tied:
 *    128256*2048 + 16*(2048*2048 + 2*2048*512 + 2048*2048 + 3*2048*8192 + 2*2048) + 2048
 *  InternLM2-1.8B: V=92544 H=2048 L=24 heads 16/8 d=128 I=8192, no bias, untied:
 *    2*92544*2048 + 24*(2048*2048 + 2*2048*1024 + 2048*2048 + 3*2048*8192 + 2*2048) + 2048 */
static void check_shapes(const char *dir) {
    static const struct {
        const char *file;
        int64_t params;
    } known[] = {
        {"qwen2_0_5b.yaml", 151936LL * 896 + 24LL * (896 * 896 + 896 + 2 * (896 * 128 + 128) + 896 * 896 + 3 * 896 * 4864 + 2 * 896) + 896},
        {"llama3_2_1b.yaml", 128256LL * 2048 + 16LL * (2048 * 2048 + 2 * 2048 * 512 + 2048 * 2048 + 3 * 2048 * 8192 + 2 * 2048) + 2048},
        {"internlm2_1_8b.yaml", 2LL * 92544 * 2048 + 24LL * (2048 * 2048 + 2 * 2048 * 1024 + 2048 * 2048 + 3 * 2048 * 8192 + 2 * 2048) + 2048},
    };
    CHECK(known[0].params == 494032768LL && known[1].params == 1235814400LL && known[2].params == 1889110016LL,
          "hand arithmetic of the published sizes");
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char path[1024], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, known[i].file);
        ModelCfg cfg;
        if (model_cfg_load(path, &cfg, err, sizeof err)) {
            CHECK(0, "%s: %s", known[i].file, err);
            continue;
        }
        CHECK(model_cfg_param_count(&cfg) == known[i].params, "%s: %lld params, want %lld", known[i].file,
              (long long)model_cfg_param_count(&cfg), (long long)known[i].params);
        model_cfg_free(&cfg);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_frontend_models MODELS_DIR [SHAPES_DIR]\n");
        return 2;
    }
    int total = 0;
    for (int a = 1; a < argc; a++) {
        int n;
        char **names = fe_list_dir(argv[a], ".yaml", &n);
        CHECK(n > 0, "no YAML files in %s", argv[a]);
        for (int i = 0; i < n; i++) check_model(argv[a], names[i]);
        total += n;
        fe_free_list(names, n);
    }
    check_tiny(argv[1]);
    if (argc > 2) check_shapes(argv[2]);
    if (!fe_failures) printf("OK %d model YAMLs load and build verified graphs\n", total);
    return fe_failures != 0;
}
