/* tmodel.h — what the whole-model exactness tests share (header-only).
 *
 * test_model_gradcheck and test_packed_exact load each bundled model YAML
 * and build it two ways that must agree: whole (f64, a dense head) and in
 * pieces (f64, the vocabulary in three chunks, attention in blocks of about
 * a third of the rows, activations recomputed). t_model_load reports a
 * YAML error as a failed check; t_build_whole / t_build_pieces give the
 * two option sets for rows of `rows` tokens; t_model_leaves fills every
 * param and input of a graph from a value function.
 */
#ifndef DPOC_TESTS_TMODEL_H
#define DPOC_TESTS_TMODEL_H

#include "frontend/frontend.h"
#include "tpass.h"

/* 0 with *cfg loaded; -1 (a failed check, nothing to free) otherwise */
static inline int t_model_load(const char *path, ModelCfg *cfg) {
    char err[1024];
    if (model_cfg_load(path, cfg, err, sizeof err) == 0) return 0;
    CHECK_MSG(0, "%s", err);
    model_cfg_free(cfg);
    return -1;
}

/* leaf values by node id for graph g: every param and input, element i of
 * the one named `name` is value(ctx, n, name, i), asked in id then element
 * order (a value drawn from an rng is reproducible) */
typedef double (*TLeafValue)(void *ctx, const IrNode *n, const char *name, int64_t i);

static inline double **t_model_leaves(const IrGraph *g, TLeafValue value, void *ctx) {
    double **leaf = calloc((size_t)g->n, sizeof *leaf);
    for (int32_t id = 0; leaf && id < g->n; id++) {
        const IrNode *n = ir_node(g, id);
        if (n->op != OP_PARAM && n->op != OP_INPUT) continue;
        int64_t numel = ir_numel(n);
        double *v = malloc(sizeof *v * (size_t)numel);
        const char *name = ir_str_get(g, n->name);
        for (int64_t i = 0; v && i < numel; i++) v[i] = value(ctx, n, name, i);
        leaf[id] = v;
    }
    return leaf;
}

static inline BuildOptions t_build_whole(void) { return (BuildOptions){.dtype = DT_F64, .dense_head = 1}; }

static inline BuildOptions t_build_pieces(const ModelCfg *cfg, int64_t rows) {
    return (BuildOptions){.dtype = DT_F64,
                          .vocab_chunk = cfg->vocab_size / 3 + 1,
                          .attn_block = rows / 3 + 1,
                          .remat_activations = 1};
}

#endif
