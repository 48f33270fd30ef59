/* model_generate.c — the generation graphs: a chunk of tokens against a KV cache.
 *
 * The same modules as the training forward (model_graph.c's builders, with
 * one sequence: S = 1, T = chunk, N = chunk rows), except attention, which
 * here reads earlier positions from the cache instead of recomputing them:
 *
 *   q, k, v    projections of the chunk, [1, h, C, d]; RoPE angles
 *              (pos + i) * inv_freq_j in f64 (pos the input gen_pos), cos and
 *              sin rounded once, as model_graph.c's rope_tables does for
 *              position t, so a token gets the same rotation in both graphs
 *   kv out     concat(k, v) on axis 0 -> `<entry>_kv.<layer>` [2, kv, C, d]
 *   keys       concat(cache k [1, kv, M, d], chunk k) on the position axis,
 *              values likewise: [1, kv, M + C, d]
 *   scores     q grouped under its kv head, x keys^T, scaled by d^-0.5:
 *              [1, kv, G, C, M + C]. Column j < M is cache slot j, visible
 *              when j < pos; column M + c is chunk token c, visible to chunk
 *              token i when c <= i. Hidden scores are selected to -inf (a
 *              select, never a product, so stale cache slots cannot leak a
 *              NaN into them); exp of them is exactly 0.
 *   softmax    as in training (exp(s - max) / sum), x values, o_proj
 *
 * Token i of a chunk thus sees exactly positions 0..pos+i, as in the causal
 * training forward; padded tokens after the valid ones of a partial chunk
 * only add rows nobody reads (the runtime copies only the valid kv rows).
 * The logits of every chunk row are an output (<entry>_logits [C, V]).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fe_internal.h"

typedef struct GenCtx {
    Gb b;
    const GenBuildOptions *o;
    int32_t pos;      /* gen_pos, i32[1] */
    int32_t posd;     /* pos as f64 [1, 1] */
} GenCtx;

static void at(Gb *b, SrcLoc l) { ir_set_loc(b->g, l.file, l.line, l.col); }

/* cos and sin [C, d] of the angles (pos + i) * inv_freq_j, in f64 */
static void gen_rope_tables(GenCtx *x, int64_t d, double theta, int32_t *cos_t, int32_t *sin_t) {
    IrGraph *g = x->b.g;
    int64_t C = x->o->chunk, half = d / 2;
    int64_t sj[2] = {1, half}, sa[2] = {C, half};
    int32_t j = ir_iota(g, 1, DT_F64, 2, sj);
    int32_t inv = ir_unary(g, OP_EXP, ir_mul(g, j, ir_const_like(g, -2.0 * log(theta) / (double)d, j)));
    int32_t t = ir_add(g, ir_iota(g, 0, DT_F64, 2, sa), ir_broadcast(g, x->posd, 2, sa));
    int32_t ang = ir_mul(g, t, ir_broadcast(g, inv, 2, sa));
    int32_t emb = ir_concat(g, ang, ang, 1);
    *cos_t = ir_cast(g, ir_unary(g, OP_COS, emb), x->b.dt);
    *sin_t = ir_cast(g, ir_unary(g, OP_SIN, emb), x->b.dt);
}

/* 1 where chunk row i may not see column j of [C, M + C] (as a select mask) */
static int32_t hidden_mask(GenCtx *x, int32_t like5) {
    IrGraph *g = x->b.g;
    int64_t C = x->o->chunk, M = x->o->max_context;
    int64_t sh[2] = {C, M + C};
    int32_t i = ir_iota(g, 0, DT_F64, 2, sh), j = ir_iota(g, 1, DT_F64, 2, sh);
    int32_t in_cache = ir_binary(g, OP_CMP_LT, j, ir_const_like(g, (double)M, j));
    int32_t cache_seen = ir_binary(g, OP_CMP_LT, j, ir_broadcast(g, x->posd, 2, sh));
    int32_t future = ir_binary(g, OP_CMP_LT, ir_add(g, i, ir_const_like(g, (double)M, i)), j);
    int32_t one = ir_const_like(g, 1.0, j), zero = ir_const_like(g, 0.0, j);
    int32_t hidden = ir_select(g, in_cache, ir_select(g, cache_seen, zero, one), future);
    return ir_bcast_to(g, ir_cast(g, hidden, x->b.dt), like5);
}

static int32_t gen_attention(GenCtx *x, const ModuleCfg *m, int32_t h, int64_t layer) {
    Gb *b = &x->b;
    IrGraph *g = b->g;
    int64_t H = b->H, nh = m->heads, kv = m->kv_heads, d = m->head_dim, G = nh / kv, C = x->o->chunk,
            M = x->o->max_context;
    char base[128], name[160];
    snprintf(base, sizeof base, "model.layers.%lld.%s", (long long)layer, m->name);
    snprintf(name, sizeof name, "%s.q_proj", base);
    int32_t q = fe_heads_first(b, fe_linear(b, h, name, H, nh * d, m->qkv_bias), nh, d);
    snprintf(name, sizeof name, "%s.k_proj", base);
    int32_t k = fe_heads_first(b, fe_linear(b, h, name, H, kv * d, m->qkv_bias), kv, d);
    snprintf(name, sizeof name, "%s.v_proj", base);
    int32_t v = fe_heads_first(b, fe_linear(b, h, name, H, kv * d, m->qkv_bias), kv, d);
    int32_t cos_t, sin_t;
    gen_rope_tables(x, d, m->rope_theta, &cos_t, &sin_t);
    q = fe_rope(b, q, d, cos_t, sin_t);
    k = fe_rope(b, k, d, cos_t, sin_t); /* [1, kv, C, d] */

    snprintf(name, sizeof name, "%s_kv.%lld", x->o->entry, (long long)layer);
    if (ir_add_output(g, name, ir_concat(g, k, v, 0), IR_OUT_VALUE)) return -1;
    snprintf(name, sizeof name, "kv_cache.%lld", (long long)layer);
    int64_t sc4[4] = {2, kv, M, d};
    int32_t cache = ir_input(g, name, b->dt, 4, sc4);
    int32_t keys = ir_concat(g, ir_slice(g, cache, 0, 0, 1), k, 2); /* [1, kv, M + C, d] */
    int32_t vals = ir_concat(g, ir_slice(g, cache, 0, 1, 2), v, 2);

    int64_t sq[4] = {1, kv, G * C, d};
    int32_t sc = ir_matmul(g, ir_reshape(g, q, 4, sq), keys, 0, 1); /* [1, kv, G*C, M+C] */
    sc = ir_mul(g, sc, ir_const_like(g, 1.0 / sqrt((double)d), sc));
    int64_t s5[5] = {1, kv, G, C, M + C};
    sc = ir_reshape(g, sc, 5, s5);
    sc = ir_select(g, hidden_mask(x, sc), ir_const_like(g, -INFINITY, sc), sc);
    int32_t mx = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, sc, 4));
    int32_t ex = ir_unary(g, OP_EXP, ir_sub(g, sc, ir_bcast_to(g, mx, sc)));
    int32_t p = ir_div(g, ex, ir_bcast_to(g, ir_reduce(g, OP_REDUCE_SUM, ex, 4), ex));
    int64_t sp[4] = {1, kv, G * C, M + C};
    int32_t o = ir_matmul(g, ir_reshape(g, p, 4, sp), vals, 0, 0); /* [1, kv, G*C, d] */
    int64_t sh[4] = {1, nh, C, d}, sn[2] = {C, nh * d};
    static const int perm[4] = {0, 2, 1, 3};
    o = ir_reshape(g, ir_permute(g, ir_reshape(g, o, 4, sh), perm), 2, sn);
    snprintf(name, sizeof name, "%s.o_proj", base);
    return fe_linear(b, o, name, nh * d, H, m->o_bias);
}

static int gen_fail(IrGraph *g, const ModelCfg *cfg, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: cannot build the generation graph: %s", cfg->path ? cfg->path : "model",
             g->err[0] ? g->err : "unknown IR error");
    return -1;
}

static int build(const ModelCfg *cfg, const GenBuildOptions *o, IrGraph *g, char *err, size_t errlen) {
    if (!cfg->name || cfg->vocab_size <= 0) {
        snprintf(err, errlen, "model_build_generate: the model configuration is not loaded");
        return -1;
    }
    if (!o || !o->entry || o->chunk < 1 || o->max_context < 1 || !ir_dtype_is_float(o->dtype)) {
        snprintf(err, errlen, "%s: generation graph: bad options (chunk and max context >= 1, a float dtype)",
                 cfg->path ? cfg->path : "model");
        return -1;
    }
    GenCtx x = {{cfg, g, o->dtype, 1, o->chunk, o->chunk, cfg->hidden_size, cfg->vocab_size, "", IR_PARAM_TRAINABLE, 0, 0, 0, 0, 0, 0, -1, -1, 0, 0, -1},
                o, -1, -1};
    Gb *b = &x.b;
    SrcLoc top = {cfg->path, 1, 1};
    at(b, top);
    char name[160];
    int64_t sc[1] = {o->chunk}, s1[1] = {1}, s11[2] = {1, 1};
    snprintf(name, sizeof name, "%s_tokens", o->entry);
    int32_t tokens = ir_input(g, name, DT_I32, 1, sc);
    x.pos = ir_input(g, "gen_pos", DT_I32, 1, s1);
    x.posd = ir_reshape(g, ir_cast(g, x.pos, DT_F64), 2, s11);

    at(b, cfg->embedding.loc);
    int32_t emb = fe_param(b, "model.embed_tokens.weight", 2, b->V, b->H);
    int32_t h = ir_gather_rows(g, emb, tokens); /* [C, H] */
    for (int bi = 0; bi < cfg->nblocks; bi++) {
        const BlockCfg *blk = &cfg->blocks[bi];
        for (int64_t r = 0; r < blk->repeat; r++) {
            int64_t layer = blk->first_layer + r;
            for (int gi = 0; gi < blk->ngroups; gi++) {
                const GroupCfg *grp = &blk->groups[gi];
                int32_t y = h;
                for (int mi = 0; mi < grp->nmods && y >= 0; mi++) {
                    const ModuleCfg *m = &grp->mods[mi];
                    if (m->kind == MOD_ATTENTION) {
                        at(b, m->loc);
                        if (!m->causal) {
                            snprintf(err, errlen, "%s:%d:%d: generation needs causal attention", m->loc.file,
                                     m->loc.line, m->loc.col);
                            return -1;
                        }
                        y = gen_attention(&x, m, y, layer);
                    } else {
                        y = fe_apply_module(b, m, y, layer);
                    }
                }
                if (grp->residual && y >= 0) {
                    at(b, grp->loc);
                    y = ir_add(g, h, y);
                }
                if (y < 0) return gen_fail(g, cfg, err, errlen);
                h = y;
            }
        }
    }
    if (cfg->has_final_norm) {
        at(b, cfg->final_norm.loc);
        h = fe_rmsnorm(b, h, "model.norm.weight", cfg->final_norm.eps);
    }
    at(b, cfg->lm_head.loc);
    int32_t w = cfg->lm_head.tied ? emb : fe_param(b, "lm_head.weight", 2, b->V, b->H);
    int32_t logits = ir_matmul(g, h, w, 0, 1);
    snprintf(name, sizeof name, "%s_logits", o->entry);
    if (logits < 0 || ir_add_output(g, name, logits, IR_OUT_VALUE)) return gen_fail(g, cfg, err, errlen);
    return 0;
}

int model_build_generate(const ModelCfg *cfg, const GenBuildOptions *opt, IrGraph *g, char *err, size_t errlen) {
    IrLoc saved = g->cur_loc;
    int rc = build(cfg, opt, g, err, errlen);
    g->cur_loc = saved;
    return rc;
}
