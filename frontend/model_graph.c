/* model_graph.c — a ModelCfg becomes the forward IR graph.
 *
 * The residual stream is kept as [N, H] with N = 2B*T rows (sequence-major),
 * so every Linear is one matmul against the [out, in] weight (transB), as in
 * Hugging Face. Modules, in the order the YAML composes them:
 *
 *   embedding  gather_rows(embed_tokens, tokens)
 *   rmsnorm    w * (x * rsqrt(sum(x*x)/H + eps))
 *   attention  q/k/v projections (+bias) -> [S, heads, T, d]; rotate-half
 *              RoPE; grouped-query attention without copying k/v: q is
 *              reshaped to [S, kv_heads, group*T, d] so each kv head meets
 *              its group of query heads in one batched matmul; scores scaled
 *              by d^-0.5, viewed as [S, kv, group, T, T] for the causal mask
 *              (select to -inf), softmax = exp(s - stop_grad(max)) / sum;
 *              probs x v, back to [N, heads*d], o_proj
 *   mlp        down(silu(gate x) * up x), silu(x) = x * sigmoid(x)
 *   lm_head    x E^T with E the embedding (tied) or lm_head.weight
 *
 * Log-probs: log-softmax over the vocabulary in stable form (logits minus a
 * stop_grad'ed row max, minus log-sum-exp), pick at `targets`, masked row
 * sums -> logps [2B].
 *
 * Chunked head (BuildOptions.vocab_chunk): the vocabulary is cut into
 * column chunks; each chunk's logits x W_c^T (W_c a row slice of the head
 * weight) give a row max, a sum of exp, the target's logit where the target
 * falls in the chunk (a select on the column index) and a row sum; the
 * chunks combine as lse = M + log sum_c e_c exp(m_c - M) with M the largest
 * m_c. W_c and the chunk's logits are flagged IR_F_REMAT, so autodiff
 * recomputes them chunk by chunk in the backward and no [rows, vocab] tensor
 * is ever alive (with BuildOptions.head_keep the logits are kept instead
 * and only their shift by the row max is flagged: the backward recomputes
 * the exps, elementwise, but not the chunk's matmul, for [rows, vocab] of
 * memory). Blocked attention (BuildOptions.attn_block) recomputes the same
 * way per block of query rows: each block meets only the keys up to its last
 * row (causal), its own rows of the softmax are complete, the blocks'
 * outputs are concatenated, and the scores and the key/value prefixes are
 * IR_F_REMAT (the scores not with BuildOptions.attn_keep: a small model
 * keeps them, and the backward does not redo the score matmuls and exps).
 * With BuildOptions.remat_activations the normalised x of every rmsnorm
 * and the sigmoid of every MLP are IR_F_REMAT too: the backward keeps only
 * the norm's input and the MLP's gate and up projections.
 *
 * RoPE tables: inv_freq_j = theta^(-2j/d), angles
 * t * inv_freq_j and their cos/sin are computed in double precision from
 * iota and rounded once to the working dtype (the IR has no pow; doing it
 * in f32 would cost ~T*2^-24 rad of angle error for long sequences).
 *
 * Masked head (default; BuildOptions.dense_head turns it off): the head's
 * logits are matmul_masked x W^T on the loss mask's rows, so a row outside
 * the loss (a prompt position) costs no head matmul in the forward, its
 * recomputation or the backward (whose dX is row-masked and dW skips those
 * rows as contraction terms). Its logits are 0; everything downstream is
 * finite on them and reaches the outputs only through a product with the
 * mask, so logps, logits_sum and the gradients are those of the dense head.
 * Off when the logits are themselves an output. The last layer is masked on
 * the same rows (forward's hrows): only the head reads its output, so its
 * query, output and MLP projections are matmul_masked there (not its keys
 * and values, which every live query reads).
 *
 * Packed rows (train.packed_len R, runtime/batch.h): S = pairs rows of R
 * tokens, each a pair's shared prompt once, then its chosen and its
 * rejected response. RoPE reads the `positions` input (the token's position
 * in its sequence; cos/sin from it in f64), attention also hides a key
 * whose `segments` value differs from the query's unless it is 0 (the
 * prompt), and the per-position log-probs are summed twice per row, under
 * the chosen's and the rejected's rows of loss_mask [2B, R], so logps
 * [2B] and everything after it are built as unpacked. The masked head
 * computes the rows either mask needs.
 *
 * The online reference runs the same forward over frozen `ref:` params and
 * stop_grads its log-probs. Every op is stamped with its module's YAML
 * position.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fe_internal.h"

/* Gb (the builder state) is declared in fe_internal.h: model_generate.c shares it. */

static void loc(Gb *b, SrcLoc l) { ir_set_loc(b->g, l.file, l.line, l.col); }

static int32_t param(Gb *b, const char *name, int ndim, int64_t d0, int64_t d1) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", b->prefix, name);
    int64_t shape[2] = {d0, d1};
    return ir_param(b->g, full, b->dt, ndim, shape, b->role);
}

static int32_t cnst(Gb *b, double v, int32_t like) { return ir_const_like(b->g, v, like); }

/* the same value flagged IR_F_REMAT: the backward recomputes it (passes/autodiff.c) */
static int32_t remat(IrGraph *g, int32_t id) {
    if (id < 0) return id;
    IrNode p = *ir_node(g, id);
    p.flags |= IR_F_REMAT;
    return ir_add_node(g, &p);
}

/* y = x W^T (+ bias), W [out, in] named `<base>.weight`; only the rows
 * b->live_rows marks when it is set (the others 0, + bias) */
static int32_t linear(Gb *b, int32_t x, const char *base, int64_t in, int64_t out, int bias) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", base);
    int32_t w = param(b, name, 2, out, in);
    int32_t y = b->live_rows >= 0 ? ir_matmul_masked(b->g, x, w, 0, 1, b->live_rows, 0) : ir_matmul(b->g, x, w, 0, 1);
    if (!bias) return y;
    snprintf(name, sizeof name, "%s.bias", base);
    return ir_add(b->g, y, ir_bcast_to(b->g, param(b, name, 1, out, 0), y));
}

static int32_t rmsnorm(Gb *b, int32_t x, const char *wname, double eps) {
    IrGraph *g = b->g;
    int32_t ss = ir_reduce(g, OP_REDUCE_SUM, ir_mul(g, x, x), 1);        /* [N,1] */
    int32_t ms = ir_div(g, ss, cnst(b, (double)b->H, ss));
    int32_t r = ir_unary(g, OP_RSQRT, ir_add(g, ms, cnst(b, eps, ms)));
    int32_t xn = b->remat_act ? remat(g, ir_mul(g, x, ir_bcast_to(g, r, x))) : ir_mul(g, x, ir_bcast_to(g, r, x));
    return ir_mul(g, ir_bcast_to(g, param(b, wname, 1, b->H, 0), x), xn);
}

/* cos and sin tables for rotate-half RoPE: [T, d] at positions 0..T-1, or
 * packed [S, 1, T, d] at the `positions` input (a response restarts where
 * the shared prompt ends). */
static void rope_tables(Gb *b, int64_t d, double theta, int32_t *cos_t, int32_t *sin_t) {
    IrGraph *g = b->g;
    int64_t half = d / 2;
    int64_t sj[2] = {1, half}, st[2] = {b->T, 1}, sa[2] = {b->T, half};
    /* inv_freq_j = exp(-(2j/d) * ln(theta)), in f64 */
    int32_t j = ir_iota(g, 1, DT_F64, 2, sj);
    int32_t e = ir_mul(g, j, ir_const_like(g, -2.0 * log(theta) / (double)d, j));
    int32_t inv = ir_unary(g, OP_EXP, e);
    int32_t emb;
    if (b->packed) {
        int64_t sp[3] = {b->S, b->T, 1}, si[3] = {1, 1, half}, s3[3] = {b->S, b->T, half};
        int32_t pos = ir_reshape(g, ir_cast(g, b->pos, DT_F64), 3, sp);
        int32_t ang = ir_mul(g, ir_broadcast(g, pos, 3, s3), ir_broadcast(g, ir_reshape(g, inv, 3, si), 3, s3));
        int64_t s4[4] = {b->S, 1, b->T, d};
        emb = ir_reshape(g, ir_concat(g, ang, ang, 2), 4, s4); /* [S, 1, T, d] */
    } else {
        int32_t pos = ir_iota(g, 0, DT_F64, 2, st);
        int32_t ang = ir_mul(g, ir_broadcast(g, pos, 2, sa), ir_broadcast(g, inv, 2, sa)); /* [T, d/2] */
        emb = ir_concat(g, ang, ang, 1);                                                    /* [T, d] */
    }
    *cos_t = ir_cast(g, ir_unary(g, OP_COS, emb), b->dt);
    *sin_t = ir_cast(g, ir_unary(g, OP_SIN, emb), b->dt);
}

/* x * cos + rotate_half(x) * sin over x [S, h, T, d] */
static int32_t rope(Gb *b, int32_t x, int64_t d, int32_t cos_t, int32_t sin_t) {
    IrGraph *g = b->g;
    int32_t x1 = ir_slice(g, x, 3, 0, d / 2), x2 = ir_slice(g, x, 3, d / 2, d);
    int32_t rot = ir_concat(g, ir_unary(g, OP_NEG, x2), x1, 3);
    return ir_add(g, ir_mul(g, x, ir_bcast_to(g, cos_t, x)), ir_mul(g, rot, ir_bcast_to(g, sin_t, x)));
}

/* [N, h*d] -> [S, h, T, d] */
static int32_t heads_first(Gb *b, int32_t x, int64_t h, int64_t d) {
    int64_t s4[4] = {b->S, b->T, h, d};
    static const int perm[4] = {0, 2, 1, 3};
    return ir_permute(b->g, ir_reshape(b->g, x, 4, s4), perm);
}

/* [S, nh, T, d] attention output -> o_proj(x) */
static int32_t attention_out(Gb *b, const ModuleCfg *m, int32_t o, const char *base) {
    IrGraph *g = b->g;
    int64_t nh = m->heads, d = m->head_dim;
    static const int perm[4] = {0, 2, 1, 3};
    o = ir_permute(g, o, perm); /* [S, T, nh, d] */
    int64_t sn[2] = {b->N, nh * d};
    o = ir_reshape(g, o, 2, sn);
    char name[160];
    snprintf(name, sizeof name, "%s.o_proj", base);
    return linear(b, o, name, nh * d, b->H, m->o_bias);
}

/* Packed rows: 1 where query row i (of i0..i1) is in a response and key j
 * (of 0..kl) in the other one or in padding, i.e. segments differ and the
 * key is not in the shared prompt (segment 0); [S, 1, 1, tq, kl]. */
static int32_t other_response(Gb *b, int64_t i0, int64_t i1, int64_t kl) {
    IrGraph *g = b->g;
    int64_t S = b->S, tq = i1 - i0;
    int32_t seg = ir_cast(g, b->seg, b->dt);
    int64_t sq[3] = {S, tq, 1}, sk[3] = {S, 1, kl}, s3[3] = {S, tq, kl}, s5[5] = {S, 1, 1, tq, kl};
    int32_t q = ir_broadcast(g, ir_reshape(g, ir_slice(g, seg, 1, i0, i1), 3, sq), 3, s3);
    int32_t k = ir_broadcast(g, ir_reshape(g, kl < b->T ? ir_slice(g, seg, 1, 0, kl) : seg, 3, sk), 3, s3);
    int32_t differ = ir_add(g, ir_binary(g, OP_CMP_LT, q, k), ir_binary(g, OP_CMP_LT, k, q));
    int32_t not_prompt = ir_binary(g, OP_CMP_LT, cnst(b, 0.0, k), k);
    return ir_reshape(g, ir_mul(g, differ, not_prompt), 5, s5);
}

/* Attention over blocks of query rows (see the header); the whole sequence
 * is one block when b->ablock is 0. q [S, nh, T, d], k/v [S, kv, T, d]. Query
 * head h = kv_head * G + g: a reshape groups them under their kv head, so
 * each kv head meets its group in one batched matmul. */
static int32_t attention_blocked(Gb *b, const ModuleCfg *m, int32_t q, int32_t k, int32_t v, const char *base) {
    IrGraph *g = b->g;
    int64_t nh = m->heads, kv = m->kv_heads, d = m->head_dim, G = nh / kv, S = b->S, T = b->T;
    int64_t block = b->ablock > 0 && b->ablock < T ? b->ablock : T;
    int32_t o = -1;
    for (int64_t i0 = 0; i0 < T; i0 += block) {
        int64_t i1 = i0 + block < T ? i0 + block : T, tq = i1 - i0, kl = m->causal ? i1 : T;
        int64_t sq[4] = {S, kv, G * tq, d};
        int32_t qg = ir_reshape(g, tq < T ? ir_slice(g, q, 2, i0, i1) : q, 4, sq);
        int32_t kb = kl < T ? remat(g, ir_slice(g, k, 2, 0, kl)) : k;
        int32_t vb = kl < T ? remat(g, ir_slice(g, v, 2, 0, kl)) : v;
        int32_t sc = ir_matmul(g, qg, kb, 0, 1); /* [S, kv, G*tq, kl] */
        if (tq < T && !b->attn_keep) sc = remat(g, sc);
        sc = ir_mul(g, sc, cnst(b, 1.0 / sqrt((double)d), sc));
        int64_t s5[5] = {S, kv, G, tq, kl};
        sc = ir_reshape(g, sc, 5, s5);
        if (m->causal) {
            int64_t tt[2] = {tq, kl};
            int32_t qpos = ir_iota(g, 0, b->dt, 2, tt), kpos = ir_iota(g, 1, b->dt, 2, tt);
            if (i0 > 0) qpos = ir_add(g, qpos, cnst(b, (double)i0, qpos));
            int32_t future = ir_binary(g, OP_CMP_LT, qpos, kpos); /* 1 where key > query */
            sc = ir_select(g, ir_bcast_to(g, future, sc), cnst(b, -INFINITY, sc), sc);
        }
        if (b->packed) sc = ir_select(g, ir_bcast_to(g, other_response(b, i0, i1, kl), sc), cnst(b, -INFINITY, sc), sc);
        int32_t mx = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, sc, 4));
        int32_t ex = ir_unary(g, OP_EXP, ir_sub(g, sc, ir_bcast_to(g, mx, sc)));
        int32_t z = ir_reduce(g, OP_REDUCE_SUM, ex, 4);
        int32_t p = ir_div(g, ex, ir_bcast_to(g, z, ex));
        int64_t sp[4] = {S, kv, G * tq, kl}, sh[4] = {S, nh, tq, d};
        int32_t ob = ir_reshape(g, ir_matmul(g, ir_reshape(g, p, 4, sp), vb, 0, 0), 4, sh); /* [S, nh, tq, d] */
        o = o < 0 ? ob : ir_concat(g, o, ob, 2);
    }
    return attention_out(b, m, o, base);
}

/* Attention as one op (BuildOptions.attn_fused): q scaled by d^-0.5 and
 * grouped under its kv head as in attention_blocked, the `segments` input
 * (packed) or zeros (every key in one segment) for the op's own hiding rule,
 * which is the packed rule above; the op's last column (the log-sum-exp,
 * read by its backward) is sliced off. */
static int32_t attention_fused(Gb *b, const ModuleCfg *m, int32_t q, int32_t k, int32_t v, const char *base) {
    IrGraph *g = b->g;
    int64_t kv = m->kv_heads, d = m->head_dim, S = b->S, T = b->T;
    int64_t sq[4] = {S, kv, (m->heads / kv) * T, d}, sh[4] = {S, m->heads, T, d}, ss[2] = {S, T};
    q = ir_reshape(g, ir_mul(g, q, cnst(b, 1.0 / sqrt((double)d), q)), 4, sq);
    int32_t seg = b->packed ? b->seg : ir_const(g, 0.0, DT_I32, 2, ss);
    int32_t o = ir_attention(g, q, k, v, seg, m->heads / kv, m->causal);
    o = ir_reshape(g, ir_slice(g, o, 3, 0, d), 4, sh);
    return attention_out(b, m, o, base);
}

static int32_t attention(Gb *b, const ModuleCfg *m, int32_t x, const char *base) {
    int64_t H = b->H, nh = m->heads, kv = m->kv_heads, d = m->head_dim;
    char name[160];
    snprintf(name, sizeof name, "%s.q_proj", base);
    int32_t q = linear(b, x, name, H, nh * d, m->qkv_bias);
    int32_t live = b->live_rows; /* every row's key and value: the live rows' queries read them */
    b->live_rows = -1;
    snprintf(name, sizeof name, "%s.k_proj", base);
    int32_t k = linear(b, x, name, H, kv * d, m->qkv_bias);
    snprintf(name, sizeof name, "%s.v_proj", base);
    int32_t v = linear(b, x, name, H, kv * d, m->qkv_bias);
    b->live_rows = live;
    q = heads_first(b, q, nh, d);
    k = heads_first(b, k, kv, d);
    v = heads_first(b, v, kv, d);

    int32_t cos_t, sin_t;
    rope_tables(b, d, m->rope_theta, &cos_t, &sin_t);
    q = rope(b, q, d, cos_t, sin_t);
    k = rope(b, k, d, cos_t, sin_t);

    return b->attn_fused ? attention_fused(b, m, q, k, v, base) : attention_blocked(b, m, q, k, v, base);
}

static int32_t mlp(Gb *b, const ModuleCfg *m, int32_t x, const char *base) {
    IrGraph *g = b->g;
    int64_t H = b->H, I = m->intermediate_size;
    char name[160];
    snprintf(name, sizeof name, "%s.gate_proj", base);
    int32_t gate = linear(b, x, name, H, I, m->mlp_bias);
    snprintf(name, sizeof name, "%s.up_proj", base);
    int32_t up = linear(b, x, name, H, I, m->mlp_bias);
    int32_t sig = ir_unary(g, OP_SIGMOID, gate);
    int32_t act = ir_mul(g, gate, b->remat_act ? remat(g, sig) : sig);
    snprintf(name, sizeof name, "%s.down_proj", base);
    return linear(b, ir_mul(g, act, up), name, I, H, m->mlp_bias);
}

static int32_t apply_module(Gb *b, const ModuleCfg *m, int32_t x, int64_t layer) {
    char base[128];
    snprintf(base, sizeof base, "model.layers.%lld.%s", (long long)layer, m->name);
    loc(b, m->loc);
    switch (m->kind) {
    case MOD_RMSNORM: {
        char w[160];
        snprintf(w, sizeof w, "%s.weight", base);
        return rmsnorm(b, x, w, m->eps);
    }
    case MOD_ATTENTION: return attention(b, m, x, base);
    case MOD_MLP: return mlp(b, m, x, base);
    default: return ir_set_error(b->g, "module '%s' cannot appear in a block", module_kind_name(m->kind));
    }
}

/* tokens -> the final hidden states [N, H]; *head = the head weight [V, H].
 * With hrows >= 0 (a masked head's rows, head_rows) only those rows of the
 * result are needed: the last layer computes its queries, attention
 * output projection and MLP on them alone (matmul_masked; every row's keys
 * and values still), its other rows are finite and unread. */
static int32_t forward(Gb *b, int32_t tokens, int32_t hrows, int32_t *head) {
    const ModelCfg *c = b->cfg;
    IrGraph *g = b->g;
    loc(b, c->embedding.loc);
    int32_t emb = param(b, "model.embed_tokens.weight", 2, b->V, b->H);
    int64_t sn[1] = {b->N};
    int32_t x = ir_gather_rows(g, emb, ir_reshape(g, tokens, 1, sn)); /* [N, H] */
    for (int bi = 0; bi < c->nblocks; bi++) {
        const BlockCfg *blk = &c->blocks[bi];
        for (int64_t r = 0; r < blk->repeat; r++) {
            int64_t layer = blk->first_layer + r;
            if (bi == c->nblocks - 1 && r == blk->repeat - 1) b->live_rows = hrows;
            for (int gi = 0; gi < blk->ngroups; gi++) {
                const GroupCfg *grp = &blk->groups[gi];
                int32_t y = x;
                for (int mi = 0; mi < grp->nmods; mi++) y = apply_module(b, &grp->mods[mi], y, layer);
                if (grp->residual) {
                    loc(b, grp->loc);
                    y = ir_add(g, x, y);
                }
                x = y;
            }
        }
    }
    b->live_rows = -1;
    if (c->has_final_norm) {
        loc(b, c->final_norm.loc);
        x = rmsnorm(b, x, "model.norm.weight", c->final_norm.eps);
    }
    loc(b, c->lm_head.loc);
    *head = c->lm_head.tied ? emb : param(b, "lm_head.weight", 2, b->V, b->H);
    return x;
}

/* A per-position value [N] (or [N, 1]) as rows of the sequences' masks
 * [2B, T]: itself, or packed the pairs' rows once for the chosen and once
 * for the rejected sequence (each masked by its own loss_mask rows). */
static int32_t per_seq_rows(Gb *b, int32_t x) {
    IrGraph *g = b->g;
    if (!b->packed) {
        int64_t sst[2] = {b->S, b->T};
        return ir_reshape(g, x, 2, sst);
    }
    int64_t s1[3] = {1, b->S, b->T}, s2[3] = {2, b->S, b->T}, sr[2] = {2 * b->S, b->T};
    return ir_reshape(g, ir_broadcast(g, ir_reshape(g, x, 3, s1), 3, s2), 2, sr);
}

/* per-row values [N] masked and summed per sequence -> [2B] */
static int32_t masked_seq_sum(Gb *b, int32_t tl, int32_t mask) {
    IrGraph *g = b->g;
    int64_t ss[1] = {b->cfg->pairs * 2};
    int32_t masked = ir_mul(g, per_seq_rows(b, tl), mask);
    return ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, masked, 1), 1, ss);
}

/* The rows the head must compute, [N]: the loss mask, or packed the sum of
 * a pair's chosen and rejected masks (> 0 where either needs the row). */
static int32_t head_rows(Gb *b, int32_t mask) {
    IrGraph *g = b->g;
    int64_t sn[1] = {b->N}, s3[3] = {2, b->S, b->T};
    if (!b->packed) return ir_reshape(g, mask, 1, sn);
    return ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, ir_reshape(g, mask, 3, s3), 0), 1, sn);
}

/* x W^T for the head: x [N, H], w [n, H]; with mask_head a matmul_masked
 * on the rows `hrows` [N] (head_rows) marks, whose dead rows are 0 (nothing
 * downstream reads them but through a product with the mask) */
static int32_t head_matmul(Gb *b, int32_t x, int32_t w, int32_t hrows) {
    if (!b->mask_head) return ir_matmul(b->g, x, w, 0, 1);
    return ir_matmul_masked(b->g, x, w, 0, 1, hrows, 0);
}

/* The chunked head (see the header): hidden x [N, H], head weight w [V, H],
 * the rows it computes hrows (head_rows; -1: all) -> summed log-probs [2B];
 * *rows = the logits' row sums [N, 1]. */
static int32_t seq_logps_chunked(Gb *b, int32_t x, int32_t w, int32_t hrows, int32_t targets, int32_t mask,
                                 int32_t *rows) {
    IrGraph *g = b->g;
    loc(b, b->cfg->lm_head.loc);
    int64_t N = b->N, V = b->V, n1[2] = {N, 1};
    int32_t tgt = ir_cast(g, ir_reshape(g, targets, 2, n1), b->dt); /* exact: V < 2^24 is checked */
    int32_t M = -1, tl = -1, rs = -1;
    int32_t mc[64], ec[64];
    int nc = 0;
    for (int64_t v0 = 0; v0 < V; v0 += b->vchunk, nc++) {
        int64_t v1 = v0 + b->vchunk < V ? v0 + b->vchunk : V, cs[2] = {N, v1 - v0};
        int32_t sc = head_matmul(b, x, remat(g, ir_slice(g, w, 0, v0, v1)), hrows); /* [N, n] */
        if (!b->head_keep) sc = remat(g, sc);
        mc[nc] = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, sc, 1));
        int32_t sh = ir_sub(g, sc, ir_bcast_to(g, mc[nc], sc));
        if (b->head_keep) sh = remat(g, sh); /* the logits are kept, their exps recomputed */
        ec[nc] = ir_reduce(g, OP_REDUCE_SUM, ir_unary(g, OP_EXP, sh), 1);
        M = M < 0 ? mc[nc] : ir_binary(g, OP_MAX, M, mc[nc]);
        int32_t col = ir_iota(g, 1, b->dt, 2, cs);
        col = ir_add(g, col, cnst(b, (double)v0, col));
        int32_t tb = ir_bcast_to(g, tgt, sc), zero = cnst(b, 0.0, sc);
        int32_t hit = ir_select(g, ir_binary(g, OP_CMP_LT, col, tb), zero,
                                ir_select(g, ir_binary(g, OP_CMP_LT, tb, col), zero, sc));
        int32_t t = ir_reduce(g, OP_REDUCE_SUM, hit, 1), r = ir_reduce(g, OP_REDUCE_SUM, sc, 1);
        tl = tl < 0 ? t : ir_add(g, tl, t);
        rs = rs < 0 ? r : ir_add(g, rs, r);
    }
    int32_t z = -1;
    for (int c = 0; c < nc; c++) {
        int32_t e = ir_mul(g, ec[c], ir_unary(g, OP_EXP, ir_sub(g, mc[c], M)));
        z = z < 0 ? e : ir_add(g, z, e);
    }
    int32_t lse = ir_add(g, M, ir_unary(g, OP_LOG, z));
    int64_t sn[1] = {N};
    *rows = rs;
    return masked_seq_sum(b, ir_reshape(g, ir_sub(g, tl, lse), 1, sn), mask);
}

/* summed log-probs of `targets` where loss_mask is 1: [N, V] -> [2B] */
static int32_t seq_logps(Gb *b, int32_t logits, int32_t targets, int32_t mask) {
    IrGraph *g = b->g;
    loc(b, b->cfg->lm_head.loc);
    int32_t mx = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, logits, 1));
    int32_t sh = ir_sub(g, logits, ir_bcast_to(g, mx, logits));
    int32_t lse = ir_unary(g, OP_LOG, ir_reduce(g, OP_REDUCE_SUM, ir_unary(g, OP_EXP, sh), 1)); /* [N,1] */
    int64_t sn[1] = {b->N};
    int32_t tl = ir_sub(g, ir_pick(g, sh, ir_reshape(g, targets, 1, sn)), ir_reshape(g, lse, 1, sn));
    return masked_seq_sum(b, tl, mask);
}

/* tokens -> summed log-probs [2B]; *rows = the logits' row sums [N, 1];
 * *logits = the [N, V] logits when the head is whole (-1 when chunked) */
static int32_t model_logps(Gb *b, int32_t tokens, int32_t targets, int32_t mask, int32_t *rows, int32_t *logits) {
    loc(b, b->cfg->lm_head.loc);
    int32_t w, hrows = b->mask_head ? head_rows(b, mask) : -1;
    int32_t x = forward(b, tokens, hrows, &w);
    if (b->vchunk > 0 && b->vchunk < b->V) {
        *logits = -1;
        return seq_logps_chunked(b, x, w, hrows, targets, mask, rows);
    }
    loc(b, b->cfg->lm_head.loc);
    *logits = head_matmul(b, x, w, hrows);
    *rows = ir_reduce(b->g, OP_REDUCE_SUM, *logits, 1);
    return seq_logps(b, *logits, targets, mask);
}

static int fail(IrGraph *g, const ModelCfg *cfg, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: cannot build the graph: %s", cfg->path ? cfg->path : "model",
             g->err[0] ? g->err : "unknown IR error");
    return -1;
}

static int build(const ModelCfg *cfg, BuildKind kind, const BuildOptions *opt, IrGraph *g, char *err, size_t errlen) {
    IrDType dt = opt ? opt->dtype : DT_F32;
    if (!ir_dtype_is_float(dt)) {
        snprintf(err, errlen, "%s: the build dtype must be f32 or f64", cfg->path ? cfg->path : "model");
        return -1;
    }
    if (!cfg->name || cfg->vocab_size <= 0 || cfg->pairs <= 0) {
        snprintf(err, errlen, "model_build_graph: the model configuration is not loaded");
        return -1;
    }
    int64_t S = model_rows(cfg), T = model_row_len(cfg);
    Gb b = {cfg, g, dt, S, T, S * T, cfg->hidden_size, cfg->vocab_size, "", IR_PARAM_TRAINABLE,
            opt ? opt->vocab_chunk : 0, opt ? opt->attn_block : 0, opt ? opt->remat_activations : 0,
            !(opt && opt->dense_head), opt ? opt->attn_keep : 0, cfg->packed_len > 0, -1, -1,
            opt ? opt->attn_fused : 0, opt ? opt->head_keep : 0, -1};
    if (kind == BUILD_LOGPS && opt && opt->expose_logits) {
        if (b.packed) {
            snprintf(err, errlen, "%s: the logits are not an output of a packed step (train.packed_len); drop "
                     "packed_len to expose them", cfg->path ? cfg->path : "model");
            return -1;
        }
        b.vchunk = 0, b.mask_head = 0; /* the logits are an output */
    }
    if (b.vchunk > 0 && b.vchunk < b.V && (b.V > (1 << 24) || (b.V + b.vchunk - 1) / b.vchunk > 64)) {
        snprintf(err, errlen, "%s: a vocabulary of %lld in chunks of %lld: at most 64 chunks (and 2^24 columns)",
                 cfg->path ? cfg->path : "model", (long long)b.V, (long long)b.vchunk);
        return -1;
    }
    /* rows [S, T] of tokens and targets; the loss mask per sequence [2B, T]
     * (packed: a pair's row once as its chosen, once as its rejected) */
    int64_t sst[2] = {b.S, b.T}, ss[1] = {2 * cfg->pairs}, smask[2] = {2 * cfg->pairs, b.T};
    SrcLoc top = {cfg->path, 1, 1};
    loc(&b, top);
    int row_kind = b.packed ? IR_INPUT_PAIRS : IR_INPUT_SEQS;
    int32_t tokens = ir_input_rows(g, "tokens", DT_I32, 2, sst, row_kind);
    int32_t targets = ir_input_rows(g, "targets", DT_I32, 2, sst, row_kind);
    int32_t mask = ir_input(g, "loss_mask", dt, 2, smask);
    if (b.packed) {
        b.pos = ir_input_rows(g, "positions", DT_I32, 2, sst, row_kind);
        b.seg = ir_input_rows(g, "segments", DT_I32, 2, sst, row_kind);
    }

    int32_t logits, rows;
    int32_t logps = model_logps(&b, tokens, targets, mask, &rows, &logits);
    if (logps < 0) return fail(g, cfg, err, errlen);

    if (kind == BUILD_LOGPS) {
        if (ir_add_output(g, "logps", logps, IR_OUT_VALUE)) return fail(g, cfg, err, errlen);
        if (opt && opt->expose_logits) {
            int64_t s3[3] = {b.S, b.T, b.V};
            int32_t l3 = ir_reshape(g, logits, 3, s3);
            if (l3 < 0 || ir_add_output(g, "logits", l3, IR_OUT_VALUE)) return fail(g, cfg, err, errlen);
        }
        return 0;
    }

    /* logits_sum: per sequence, the masked sum over positions of the vocabulary sum */
    loc(&b, cfg->lm_head.loc);
    int32_t logits_sum = masked_seq_sum(&b, rows, mask);

    loc(&b, cfg->loss.loc);
    LossLeaves lv = {logps, -1, -1};
    lv.lens = ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, mask, 1), 1, ss);
    int32_t ref_out = -1;
    if (cfg->reference == REF_PRECOMPUTED) {
        loc(&b, cfg->reference_loc);
        lv.ref_logps = ir_input(g, "ref_logps", dt, 1, ss);
    } else if (cfg->reference == REF_ONLINE) {
        Gb rb = b;
        rb.prefix = "ref:";
        rb.role = IR_PARAM_FROZEN;
        int32_t rrows, rlogits;
        int32_t rl = model_logps(&rb, tokens, targets, mask, &rrows, &rlogits);
        loc(&b, cfg->reference_loc);
        ref_out = lv.ref_logps = ir_unary(g, OP_STOP_GRAD, rl);
    }
    if (logits_sum < 0 || lv.lens < 0 || (cfg->reference != REF_NONE && lv.ref_logps < 0)) return fail(g, cfg, err, errlen);

    int32_t loss;
    if (loss_build_ir(g, &cfg->loss, &lv, &loss, err, errlen)) return -1;
    if (ir_add_output(g, "loss", loss, IR_OUT_LOSS) || ir_add_output(g, "logps", logps, IR_OUT_VALUE) ||
        ir_add_output(g, "logits_sum", logits_sum, IR_OUT_VALUE))
        return fail(g, cfg, err, errlen);
    if (ref_out >= 0 && ir_add_output(g, "ref_logps", ref_out, IR_OUT_VALUE)) return fail(g, cfg, err, errlen);
    return 0;
}

/* Passes that add nodes later must not inherit the last YAML position. */
int model_build_graph(const ModelCfg *cfg, BuildKind kind, const BuildOptions *opt, IrGraph *g, char *err, size_t errlen) {
    IrLoc saved = g->cur_loc;
    int rc = build(cfg, kind, opt, g, err, errlen);
    g->cur_loc = saved;
    return rc;
}

/* ---- the module builders, for model_generate.c (fe_internal.h) ---------- */
int32_t fe_param(Gb *b, const char *name, int ndim, int64_t d0, int64_t d1) { return param(b, name, ndim, d0, d1); }
int32_t fe_linear(Gb *b, int32_t x, const char *base, int64_t in, int64_t out, int bias) {
    return linear(b, x, base, in, out, bias);
}
int32_t fe_rmsnorm(Gb *b, int32_t x, const char *wname, double eps) { return rmsnorm(b, x, wname, eps); }
int32_t fe_rope(Gb *b, int32_t x, int64_t d, int32_t cos_t, int32_t sin_t) { return rope(b, x, d, cos_t, sin_t); }
int32_t fe_heads_first(Gb *b, int32_t x, int64_t h, int64_t d) { return heads_first(b, x, h, d); }
int32_t fe_apply_module(Gb *b, const ModuleCfg *m, int32_t x, int64_t layer) { return apply_module(b, m, x, layer); }

/* f32 bytes of one layer's attention scores in blocks of `block` query rows
 * (the whole sequence when 0), each against the keys it may see */
static int64_t attn_score_bytes(const ModelCfg *cfg, int64_t seqs, int64_t block) {
    int64_t T = model_row_len(cfg), total = 0, heads = 0;
    for (int bi = 0; bi < cfg->nblocks; bi++)
        for (int gi = 0; gi < cfg->blocks[bi].ngroups; gi++)
            for (int mi = 0; mi < cfg->blocks[bi].groups[gi].nmods; mi++) {
                const ModuleCfg *m = &cfg->blocks[bi].groups[gi].mods[mi];
                if (m->kind == MOD_ATTENTION && m->heads > heads) heads = m->heads;
            }
    if (block <= 0 || block > T) block = T;
    for (int64_t i0 = 0; i0 < T; i0 += block) {
        int64_t i1 = i0 + block < T ? i0 + block : T;
        total += (i1 - i0) * i1; /* causal: keys up to the block's last row */
    }
    return seqs * heads * total * 4;
}

void model_auto_chunks(const ModelCfg *cfg, int64_t rows, int64_t *vocab_chunk, int64_t *attn_block, int *attn_keep,
                       int *head_keep) {
    const int64_t whole_max = 64ll << 20, chunk_bytes = 32ll << 20; /* f32 logits */
    int64_t v = cfg->vocab_size, vc = 0;
    if (rows > 0 && rows * v * 4 > whole_max) {
        vc = chunk_bytes / (4 * rows) / 256 * 256;
        if (vc < 256) vc = 256;
        while ((v + vc - 1) / vc > 64) vc *= 2;
        if (vc >= v) vc = 0;
    }
    *vocab_chunk = vc;
    *attn_block = model_row_len(cfg) > 256 ? 256 : 0;
    /* the backward reads each layer's probabilities and exps (two score-sized
     * tensors): kept when all of them fit in 64 MiB, recomputed otherwise */
    int64_t layers = 0;
    for (int bi = 0; bi < cfg->nblocks; bi++) layers += cfg->blocks[bi].repeat;
    int64_t seqs = model_row_len(cfg) > 0 ? rows / model_row_len(cfg) : 0;
    *attn_keep = 2 * layers * attn_score_bytes(cfg, seqs, *attn_block) <= whole_max;
    /* the chunked head's logits, kept whole for the backward: at most half the
     * parameters' bytes (an eighth of parameters, gradients and two moments) */
    *head_keep = rows * v * 4 <= model_cfg_param_count(cfg) * 4 / 2;
}

int model_attn_fused_default(const ModelCfg *cfg) {
    int any = 0;
    for (int bi = 0; bi < cfg->nblocks; bi++)
        for (int gi = 0; gi < cfg->blocks[bi].ngroups; gi++)
            for (int mi = 0; mi < cfg->blocks[bi].groups[gi].nmods; mi++) {
                const ModuleCfg *m = &cfg->blocks[bi].groups[gi].mods[mi];
                if (m->kind != MOD_ATTENTION) continue;
                if (m->head_dim % 16) return 0;
                any = 1;
            }
    return any;
}
