/* cg_attention_tiled.c — f32 attention and attention_grad in tiles, through
 * the GEMM micro-kernel (cg_gemm_ukr.c).
 *
 * Used when the op is f32 and the head width D is a multiple of the vector
 * width (otherwise cg_attention.c's plain loops run). Operands are read
 * through the element evaluator, so they may be stored or computed inline;
 * each element is read once per copy into scratch. Query rows go in blocks
 * of Br, keys in tiles of Bc (both ~64, with Br mod nr = 0 and each mod mr
 * a micro-kernel row count, so micro-panels cover them exactly). Scratch is
 * on the stack (cg_stack_f32), never score-sized beyond one Bc x Br tile.
 *
 * The scores are computed transposed, S^T = K Q^T (keys down, queries
 * across): the A operand is the key tile's rows as they are and only the
 * query block is transposed, once per block; the softmax's per-query maxima
 * and sums then run across a row of S^T as vector lanes (one lane per
 * query, keys in order down the tile: no horizontal reduction), and every
 * later product reads S^T or dS^T in place with the micro-kernel's strides
 * (A transposed: rs 1, cs Br).
 *
 * Forward, one work unit per (batch entry, query block): per key tile (up
 * to the last key a causal block sees; a tile no query of the block may
 * see by segment is skipped, tile_hidden) the tile's k and v rows are copied
 * (zero past T), S^T = K Q^T, hidden scores become -inf, each query's tile
 * max joins its running max m, P = exp(s - m), l = l exp(m_old - m) + sum P,
 * the output accumulator's row is rescaled by the same factor and O += P V.
 * At the end o = O / l and column D = m + log l (0 and -inf for a row that
 * sees no key, as in the plain kernel).
 *
 * Backward, one work unit per batch entry (dk and dv of a key gather every
 * query's share): dk and dv accumulate in the output's own rows (zeroed
 * first), except a last tile that T cuts short, whose rows accumulate in
 * a tile scratch copied out at the end, so scratch does not grow with T. Per
 * query block: q and the output gradient's rows copied and transposed,
 * D_r = g_r . o_r, the log-sum-exp and its gradient read once; per key tile
 * (the same tiles as the forward's) S^T = K Q^T and dP^T = V G^T, P = exp(S - lse) on the visible keys (0
 * elsewhere), dS = P (dP - D_r + g_lse), then dV += P^T G, dK += dS^T Q
 * and dQ += dS K (block scratch, written after the block's last tile).
 *
 * Every element is computed by one unit in an order fixed by the tiling, so
 * results do not depend on how the runtime splits the work; they differ
 * from the plain kernels' by rounding only (the online rescaling and the
 * micro-kernel's fma chains), within test_codegen_attention's bound.
 */
#include <stdlib.h>
#include <string.h>

#include "cg_attention.h"
#include "cg_gemm.h"

/* the tiling of one attention node */
typedef struct AttnTiles {
    CgGemmCfg cfg;   /* micro-tile: mr rows, nr columns (over a block's queries) */
    CgGemmCfg cfg_d; /* the same with nr over the head width (2 vectors, or 1 when D needs it) */
    int64_t Br, Bc;  /* query rows per block, keys per tile */
    int64_t nblk;    /* query blocks per batch entry */
    int rem_r, rem_c; /* Br mod mr, Bc mod mr: the micro-panel of fewer rows closing a block or tile */
} AttnTiles;

/* from `from` (a multiple of nr) up in steps of nr until the remainder
 * below mr is 0 or a micro-kernel row count (1, 2, 4, 8) */
static int64_t tile_len(int64_t from, int nr, int mr) {
    for (int64_t x = from;; x += nr) {
        int64_t r = x % mr;
        if (r == 0 || r == 1 || r == 2 || r == 4 || r == 8) return x;
    }
}

static int tiles_of(Cg *c, const IrGraph *g, int32_t root, AttnTiles *t) {
    const IrNode *n = ir_node(g, root);
    if (n->dtype != DT_F32 || (n->op != OP_ATTENTION && n->op != OP_ATTENTION_GRAD) || cg_gemm_off()) return 0;
    AttnGeom a = cg_attn_geom_of(c, g, root);
    memset(t, 0, sizeof *t);
    cg_gemm_config(c->features, &t->cfg);
    int vw = t->cfg.vw, mr = t->cfg.mr, nr = t->cfg.nr;
    if (a.D % vw) return 0;
    t->cfg_d = t->cfg;
    t->cfg_d.nr = a.D % (2 * vw) == 0 ? 2 * vw : vw;
    t->Br = tile_len((64 + nr - 1) / nr * nr, nr, mr);
    t->Bc = tile_len(64, 1, mr);
    t->rem_r = (int)(t->Br % mr);
    t->rem_c = (int)(t->Bc % mr);
    t->nblk = (a.M + t->Br - 1) / t->Br;
    return 1;
}

int64_t cg_attention_work(Cg *c, const IrGraph *g, int32_t root) {
    const IrNode *n = ir_node(g, root);
    AttnGeom a = cg_attn_geom_of(c, g, root);
    AttnTiles t;
    if (n->op == OP_ATTENTION_GRAD) return a.batch;
    return tiles_of(c, g, root, &t) ? a.batch * t.nblk : a.batch * a.M;
}

/* ---- small builders ------------------------------------------------------ */
static LLVMValueRef iadd(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildNSWAdd(c->b, x, y, ""); }
static LLVMValueRef imul(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildNSWMul(c->b, x, y, ""); }
static LLVMValueRef ilt(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildICmp(c->b, LLVMIntSLT, x, y, ""); }
static LLVMValueRef at(Cg *c, LLVMValueRef base, LLVMValueRef idx) { return cg_gep(c, c->f32, base, idx); }
static LLVMValueRef ld(Cg *c, LLVMValueRef p) { return LLVMBuildLoad2(c->b, c->f32, p, ""); }
static void st(Cg *c, LLVMValueRef v, LLVMValueRef p) { LLVMBuildStore(c->b, v, p); }
static LLVMValueRef fconst(Cg *c, double v) { return LLVMConstReal(c->f32, v); }

typedef struct Ukr {
    LLVMValueRef fn;
    LLVMTypeRef ty;
    int64_t nr; /* its columns: the packed B rows' stride */
} Ukr;

static Ukr ukr_of(Cg *c, const CgGemmCfg *cfg, int rows) {
    Ukr u;
    u.fn = cg_gemm_ukr(c, cfg, rows, &u.ty);
    u.nr = cfg->nr;
    return u;
}

/* c[i*ldc + j] (+)= sum_k<kc a[i*rs + k*cs] * b[k*nr + j] over the micro-tile (b packed) */
static void ukr_call(Cg *c, Ukr u, LLVMValueRef a, LLVMValueRef rs, LLVMValueRef cs, LLVMValueRef bp, LLVMValueRef kc,
                     LLVMValueRef cp, int64_t ldc, int acc) {
    LLVMValueRef args[9] = {a, rs, cs, bp, cg_i64(c, u.nr), kc, cp, cg_i64(c, ldc), LLVMConstInt(c->i32, (unsigned long long)acc, 0)};
    LLVMBuildCall2(c->b, u.ty, u.fn, args, 9, "");
}

/* dst[r*ncols + d] = element src0 + r*src_ld + d of node src for r < nvalid, 0 for nvalid <= r < nrows */
static void copy_rows(CgKern *k, LLVMValueRef dst, int32_t src, LLVMValueRef src0, int64_t src_ld,
                      LLVMValueRef nvalid, int64_t nrows, int64_t ncols, int vw) {
    Cg *c = k->c;
    CgFor r, d;
    LLVMBasicBlockRef join;
    cg_for_begin(c, &r, cg_i64(c, 0), cg_i64(c, nrows), "cprow");
    LLVMValueRef drow = imul(c, r.iv, cg_i64(c, ncols));
    LLVMValueRef valid = ilt(c, r.iv, nvalid);
    LLVMValueRef srow = iadd(c, src0, imul(c, r.iv, cg_i64(c, src_ld)));
    cg_if_begin(c, valid, &join);
    cg_for_begin(c, &d, cg_i64(c, 0), cg_i64(c, ncols), "cpcol");
    st(c, cg_attn_read(k, src, iadd(c, srow, d.iv)), at(c, dst, iadd(c, drow, d.iv)));
    cg_for_end_vector(c, &d, vw);
    cg_if_end(c, join);
    cg_if_begin(c, LLVMBuildNot(c->b, valid, ""), &join);
    cg_for_begin(c, &d, cg_i64(c, 0), cg_i64(c, ncols), "cpzero");
    st(c, fconst(c, 0.0), at(c, dst, iadd(c, drow, d.iv)));
    cg_for_end_vector(c, &d, vw);
    cg_if_end(c, join);
    cg_for_end(c, &r);
}

/* row panels of nr columns: dst[p*nrows*nr + r*nr + j] = src[r*ncols + p*nr + j] (src: scratch, nrows x ncols) */
static void panel_rows(Cg *c, LLVMValueRef dst, LLVMValueRef src, int64_t nrows, int64_t ncols, int nr, int vw) {
    CgFor p, r, j;
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, ncols / nr), "pp");
    cg_for_begin(c, &r, cg_i64(c, 0), cg_i64(c, nrows), "pr");
    LLVMValueRef d0 = iadd(c, imul(c, p.iv, cg_i64(c, nrows * nr)), imul(c, r.iv, cg_i64(c, nr)));
    LLVMValueRef s0 = iadd(c, imul(c, r.iv, cg_i64(c, ncols)), imul(c, p.iv, cg_i64(c, nr)));
    cg_for_begin(c, &j, cg_i64(c, 0), cg_i64(c, nr), "pj");
    st(c, ld(c, at(c, src, iadd(c, s0, j.iv))), at(c, dst, iadd(c, d0, j.iv)));
    cg_for_end_vector(c, &j, vw);
    cg_for_end(c, &r);
    cg_for_end(c, &p);
}

/* Q^T panels: dst[p*ncols*nr + d*nr + j] = src[(p*nr + j)*ncols + d] (src: scratch, nrows x ncols) */
static void pack_t(Cg *c, LLVMValueRef dst, LLVMValueRef src, int64_t nrows, int64_t ncols, int nr) {
    CgFor p, j, d;
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, nrows / nr), "tp");
    cg_for_begin(c, &j, cg_i64(c, 0), cg_i64(c, nr), "tj");
    LLVMValueRef s0 = imul(c, iadd(c, imul(c, p.iv, cg_i64(c, nr)), j.iv), cg_i64(c, ncols));
    LLVMValueRef d0 = iadd(c, imul(c, p.iv, cg_i64(c, ncols * nr)), j.iv);
    cg_for_begin(c, &d, cg_i64(c, 0), cg_i64(c, ncols), "td");
    st(c, ld(c, at(c, src, iadd(c, s0, d.iv))), at(c, dst, iadd(c, d0, imul(c, d.iv, cg_i64(c, nr)))));
    cg_for_end(c, &d);
    cg_for_end(c, &j);
    cg_for_end(c, &p);
}

/* C (+)= A B over nrows rows of A in micro-panels of mr (the last of rem
 * rows, u_rem) and npan panels of B: row i of A at A + i*rs (its k-th
 * element at + k*cs), panel p of B at B + p*b_pan, row i of C at C + i*ldc */
static void ukr_grid(Cg *c, const AttnTiles *t, Ukr u, Ukr u_rem, int rem, int64_t nrows, LLVMValueRef A, int64_t rs,
                     int64_t cs, LLVMValueRef B, int64_t npan, int64_t b_pan, int64_t nr, LLVMValueRef kc, LLVMValueRef C,
                     int64_t ldc, int acc) {
    const int64_t mr = t->cfg.mr, nfull = nrows / mr;
    CgFor i, p;
    cg_for_begin(c, &i, cg_i64(c, 0), cg_i64(c, nfull), "mp");
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, npan), "np");
    LLVMValueRef ci = at(c, C, iadd(c, imul(c, i.iv, cg_i64(c, mr * ldc)), imul(c, p.iv, cg_i64(c, nr))));
    ukr_call(c, u, at(c, A, imul(c, i.iv, cg_i64(c, mr * rs))), cg_i64(c, rs), cg_i64(c, cs),
             at(c, B, imul(c, p.iv, cg_i64(c, b_pan))), kc, ci, ldc, acc);
    cg_for_end(c, &p);
    cg_for_end(c, &i);
    if (!rem) return;
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, npan), "npr");
    LLVMValueRef cr = at(c, C, iadd(c, cg_i64(c, nfull * mr * ldc), imul(c, p.iv, cg_i64(c, nr))));
    ukr_call(c, u_rem, at(c, A, cg_i64(c, nfull * mr * rs)), cg_i64(c, rs), cg_i64(c, cs),
             at(c, B, imul(c, p.iv, cg_i64(c, b_pan))), kc, cr, ldc, acc);
    cg_for_end(c, &p);
}

/* segk[kk] = the segment of key j0 + kk (0 past T) */
static void load_key_segments(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef segk, LLVMTypeRef sty,
                              LLVMValueRef seg_base, LLVMValueRef j0) {
    Cg *c = k->c;
    IrDType sdt = (IrDType)ir_node(k->g, a->seg)->dtype;
    CgFor kk;
    cg_for_begin(c, &kk, cg_i64(c, 0), cg_i64(c, t->Bc), "segk");
    LLVMValueRef j = iadd(c, j0, kk.iv);
    LLVMValueRef valid = ilt(c, j, cg_i64(c, a->T));
    LLVMValueRef v = cg_attn_read(k, a->seg, iadd(c, seg_base, cg_smin(c, j, cg_i64(c, a->T - 1))));
    LLVMBuildStore(c->b, LLVMBuildSelect(c->b, valid, v, cg_const(c, sdt, 0.0), ""), cg_gep(c, sty, segk, kk.iv));
    cg_for_end(c, &kk);
}

/* the keys a block of rows [r0, r0 + rows) may see: [0, hi) */
static LLVMValueRef block_key_hi(Cg *c, const AttnGeom *a, LLVMValueRef r0, LLVMValueRef rows) {
    if (!a->causal) return cg_i64(c, a->T);
    LLVMBuilderRef b = c->b;
    LLVMValueRef last = LLVMBuildNSWSub(b, iadd(c, r0, rows), cg_i64(c, 1), "");
    LLVMValueRef tq = cg_i64(c, a->Tq);
    LLVMValueRef same = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildUDiv(b, r0, tq, ""), LLVMBuildUDiv(b, last, tq, ""), "");
    LLVMValueRef hi = iadd(c, cg_i64(c, a->T - a->Tq + 1), LLVMBuildURem(b, last, tq, ""));
    return LLVMBuildSelect(b, same, hi, cg_i64(c, a->T), "keyhi");
}

/* per query q < Br of a block: lim[q], the keys below which it may look
 * (p + 1 causal, else T; 0 for a padding row q >= rows), and its segment */
static void query_limits(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef r0, LLVMValueRef rows,
                         LLVMValueRef seg_base, LLVMValueRef lim, LLVMValueRef segq, LLVMTypeRef sty) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    IrDType sdt = (IrDType)ir_node(k->g, a->seg)->dtype;
    CgFor q;
    cg_for_begin(c, &q, cg_i64(c, 0), cg_i64(c, t->Br), "qlim");
    LLVMValueRef valid = ilt(c, q.iv, rows);
    LLVMValueRef r = cg_smin(c, iadd(c, r0, q.iv), cg_i64(c, a->M - 1));
    LLVMValueRef pos = iadd(c, cg_i64(c, a->T - a->Tq), LLVMBuildURem(b, r, cg_i64(c, a->Tq), ""));
    LLVMValueRef l = a->causal ? iadd(c, pos, cg_i64(c, 1)) : cg_i64(c, a->T);
    LLVMBuildStore(b, LLVMBuildSelect(b, valid, l, cg_i64(c, 0), ""), cg_gep(c, c->i64, lim, q.iv));
    LLVMValueRef sq = cg_attn_read(k, a->seg, iadd(c, seg_base, pos));
    LLVMBuildStore(b, LLVMBuildSelect(b, valid, sq, cg_const(c, sdt, 0.0), ""), cg_gep(c, sty, segq, q.iv));
    cg_for_end(c, &q);
}

/* i1: key j0 + j (segment sk) is visible to query q of the block */
static LLVMValueRef visible(CgKern *k, const AttnGeom *a, LLVMValueRef jj, LLVMValueRef sk, LLVMValueRef lim,
                            LLVMValueRef segq, LLVMTypeRef sty, LLVMValueRef q) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    IrDType sdt = (IrDType)ir_node(k->g, a->seg)->dtype;
    LLVMValueRef lq = LLVMBuildLoad2(b, c->i64, cg_gep(c, c->i64, lim, q), "");
    LLVMValueRef sq = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segq, q), "");
    LLVMValueRef zero = cg_const(c, sdt, 0.0), same;
    if (ir_dtype_is_float(sdt))
        same = LLVMBuildOr(b, LLVMBuildFCmp(b, LLVMRealOEQ, sk, zero, ""), LLVMBuildFCmp(b, LLVMRealOEQ, sk, sq, ""), "");
    else
        same = LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntEQ, sk, zero, ""), LLVMBuildICmp(b, LLVMIntEQ, sk, sq, ""), "");
    return LLVMBuildAnd(b, ilt(c, jj, lq), same, "vis");
}

/* i1: no query of the block sees any key of the tile: the tile's keys all
 * have one segment s != 0 and no query row of the block has s (a packed
 * row's second response against the first's keys). Such a tile is skipped:
 * computing it would add nothing but zeros. */
static LLVMValueRef tile_hidden(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef segk, LLVMValueRef segq,
                                LLVMTypeRef sty, LLVMValueRef nvalid, LLVMValueRef rows) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    IrDType sdt = (IrDType)ir_node(k->g, a->seg)->dtype;
    int fl = ir_dtype_is_float(sdt);
    LLVMValueRef flag = cg_entry_alloca(k, c->i1);
    LLVMValueRef s0 = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segk, cg_i64(c, 0)), "");
    LLVMValueRef zero = cg_const(c, sdt, 0.0);
    /* flag: some key is 0 or differs from the first, or some query has its segment */
    LLVMBuildStore(b, fl ? LLVMBuildFCmp(b, LLVMRealOEQ, s0, zero, "") : LLVMBuildICmp(b, LLVMIntEQ, s0, zero, ""), flag);
    CgFor j, q;
    cg_for_begin(c, &j, cg_i64(c, 1), cg_smin(c, nvalid, cg_i64(c, t->Bc)), "tsk");
    LLVMValueRef sk = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segk, j.iv), "");
    LLVMValueRef ne = fl ? LLVMBuildFCmp(b, LLVMRealUNE, sk, s0, "") : LLVMBuildICmp(b, LLVMIntNE, sk, s0, "");
    LLVMBuildStore(b, LLVMBuildOr(b, LLVMBuildLoad2(b, c->i1, flag, ""), ne, ""), flag);
    cg_for_end(c, &j);
    cg_for_begin(c, &q, cg_i64(c, 0), rows, "tsq");
    LLVMValueRef sq = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segq, q.iv), "");
    LLVMValueRef eq = fl ? LLVMBuildFCmp(b, LLVMRealOEQ, sq, s0, "") : LLVMBuildICmp(b, LLVMIntEQ, sq, s0, "");
    LLVMBuildStore(b, LLVMBuildOr(b, LLVMBuildLoad2(b, c->i1, flag, ""), eq, ""), flag);
    cg_for_end(c, &q);
    return LLVMBuildNot(b, LLVMBuildLoad2(b, c->i1, flag, ""), "hidden");
}

static void fill(Cg *c, LLVMValueRef p, int64_t n, double v, int vw) {
    CgFor i;
    cg_for_begin(c, &i, cg_i64(c, 0), cg_i64(c, n), "fill");
    st(c, fconst(c, v), at(c, p, i.iv));
    cg_for_end_vector(c, &i, vw);
}

/* what a key tile's opening reads and writes (both kernels): the block's
 * transposed queries and limits, the tile's scratch */
typedef struct KeyTile {
    LLVMValueRef QT, segq, rows;    /* the block: Q^T panels, per-query segments, valid rows */
    LLVMValueRef Ks, Vs, segk, ST;  /* the tile: k and v rows, key segments, S^T */
    LLVMTypeRef sty;                /* the segments' type */
    LLVMValueRef kvrow0, seg_base;  /* the batch entry's first k/v row, its segments row */
} KeyTile;

/* Opens the loop over key tiles [0, ntile) and, inside it, the branch
 * taken unless tile_hidden: the tile's k and v rows copied (zero past T)
 * and S^T = K Q^T. Returns j0, the tile's first key; the caller closes
 * with cg_if_end(join) and cg_for_end(jt). */
static LLVMValueRef key_tile_begin(CgKern *k, const AttnGeom *a, const AttnTiles *t, const KeyTile *kt,
                                   LLVMValueRef ntile, CgFor *jt, LLVMBasicBlockRef *join, Ukr us, Ukr us_rem) {
    Cg *c = k->c;
    const int64_t D = a->D, Bc = t->Bc, Br = t->Br, nr = t->cfg.nr;
    cg_for_begin(c, jt, cg_i64(c, 0), ntile, "tile");
    LLVMValueRef j0 = imul(c, jt->iv, cg_i64(c, Bc));
    LLVMValueRef kv0 = imul(c, iadd(c, kt->kvrow0, j0), cg_i64(c, D));
    LLVMValueRef nvalid = LLVMBuildNSWSub(c->b, cg_i64(c, a->T), j0, "");
    load_key_segments(k, a, t, kt->segk, kt->sty, kt->seg_base, j0);
    LLVMValueRef hidden = tile_hidden(k, a, t, kt->segk, kt->segq, kt->sty, nvalid, kt->rows);
    cg_if_begin(c, LLVMBuildNot(c->b, hidden, ""), join);
    copy_rows(k, kt->Ks, a->k, kv0, D, nvalid, Bc, D, t->cfg.vw);
    copy_rows(k, kt->Vs, a->v, kv0, D, nvalid, Bc, D, t->cfg.vw);
    ukr_grid(c, t, us, us_rem, t->rem_c, Bc, kt->Ks, D, 1, kt->QT, Br / nr, D * nr, nr, cg_i64(c, D), kt->ST, Br, 0);
    return j0;
}

/* an i64 or segment-typed stack array of n elements */
static LLVMValueRef stack_array(CgKern *k, LLVMTypeRef t, int64_t n) { return cg_entry_alloca(k, LLVMArrayType2(t, (uint64_t)n)); }

/* ---- forward ------------------------------------------------------------- */
static void emit_forward(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const int64_t D = a->D, Br = t->Br, Bc = t->Bc, nr = t->cfg.nr, nrd = t->cfg_d.nr;
    const int vw = t->cfg.vw;
    LLVMTypeRef sty = cg_type(c, (IrDType)ir_node(k->g, a->seg)->dtype);
    LLVMValueRef Qs = cg_stack_f32(k, Br * D, "qs"), QT = cg_stack_f32(k, Br * D, "qt");
    LLVMValueRef Ks = cg_stack_f32(k, Bc * D, "ks"), Vs = cg_stack_f32(k, Bc * D, "vs");
    LLVMValueRef Vp = nrd == D ? Vs : cg_stack_f32(k, Bc * D, "vp");
    LLVMValueRef ST = cg_stack_f32(k, Bc * Br, "st"), O = cg_stack_f32(k, Br * D, "o");
    LLVMValueRef mx = cg_stack_f32(k, Br, "m"), lsum = cg_stack_f32(k, Br, "l");
    LLVMValueRef tmax = cg_stack_f32(k, Br, "tmax"), tsum = cg_stack_f32(k, Br, "tsum"), alpha = cg_stack_f32(k, Br, "alpha");
    LLVMValueRef lim = stack_array(k, c->i64, Br), segq = stack_array(k, sty, Br), segk = stack_array(k, sty, Bc);
    Ukr us = ukr_of(c, &t->cfg, t->cfg.mr), us_rem = t->rem_c ? ukr_of(c, &t->cfg, t->rem_c) : us;
    Ukr ud = ukr_of(c, &t->cfg_d, t->cfg.mr), ud_rem = t->rem_r ? ukr_of(c, &t->cfg_d, t->rem_r) : ud;
    LLVMValueRef neg_inf = fconst(c, -__builtin_inf()), zero = cg_i64(c, 0);
    CgFor w, jt, j, q, d;
    LLVMBasicBlockRef join;

    cg_for_begin(c, &w, begin, end, "blk");
    LLVMValueRef e = LLVMBuildUDiv(b, w.iv, cg_i64(c, t->nblk), "");
    LLVMValueRef r0 = imul(c, LLVMBuildURem(b, w.iv, cg_i64(c, t->nblk), ""), cg_i64(c, Br));
    LLVMValueRef rows = cg_smin(c, cg_i64(c, Br), LLVMBuildNSWSub(b, cg_i64(c, a->M), r0, ""));
    LLVMValueRef qrow0 = iadd(c, imul(c, e, cg_i64(c, a->M)), r0);
    LLVMValueRef kvrow0 = imul(c, e, cg_i64(c, a->T));
    LLVMValueRef seg_base = imul(c, LLVMBuildUDiv(b, e, cg_i64(c, a->per_seg_row), ""), cg_i64(c, a->T));
    copy_rows(k, Qs, a->q, imul(c, qrow0, cg_i64(c, D)), D, rows, Br, D, vw);
    pack_t(c, QT, Qs, Br, D, (int)nr);
    query_limits(k, a, t, r0, rows, seg_base, lim, segq, sty);
    fill(c, mx, Br, -__builtin_inf(), vw);
    fill(c, lsum, Br, 0.0, vw);
    fill(c, O, Br * D, 0.0, vw);
    LLVMValueRef ntile = cg_gemm_ceil_div(c, block_key_hi(c, a, r0, rows), cg_i64(c, Bc));

    KeyTile kt = {QT, segq, rows, Ks, Vs, segk, ST, sty, kvrow0, seg_base};
    LLVMValueRef j0 = key_tile_begin(k, a, t, &kt, ntile, &jt, &join, us, us_rem); /* ... S^T = K Q^T */
    if (nrd != D) panel_rows(c, Vp, Vs, Bc, D, (int)nrd, vw);
    /* hidden scores to -inf; each query's tile max */
    fill(c, tmax, Br, -__builtin_inf(), vw);
    cg_for_begin(c, &j, zero, cg_i64(c, Bc), "kmax");
    LLVMValueRef jj = iadd(c, j0, j.iv);
    LLVMValueRef sk = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segk, j.iv), "");
    LLVMValueRef srow = imul(c, j.iv, cg_i64(c, Br));
    cg_for_begin(c, &q, zero, cg_i64(c, Br), "qmax");
    LLVMValueRef sp = at(c, ST, iadd(c, srow, q.iv));
    LLVMValueRef s = LLVMBuildSelect(b, visible(k, a, jj, sk, lim, segq, sty, q.iv), ld(c, sp), neg_inf, "");
    st(c, s, sp);
    LLVMValueRef tp = at(c, tmax, q.iv);
    st(c, cg_call_intrinsic2(c, "llvm.maxnum", ld(c, tp), s), tp);
    cg_for_end_vector(c, &q, vw);
    cg_for_end(c, &j);
    /* the running max, the rescale factor; tmax becomes what P subtracts */
    cg_for_begin(c, &q, zero, cg_i64(c, Br), "qm");
    LLVMValueRef mp = at(c, mx, q.iv), tq = at(c, tmax, q.iv);
    LLVMValueRef mold = ld(c, mp), mnew = cg_call_intrinsic2(c, "llvm.maxnum", mold, ld(c, tq));
    LLVMValueRef sub = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, mnew, neg_inf, ""), fconst(c, 0.0), mnew, "");
    st(c, cg_unary(c, OP_EXP, DT_F32, LLVMBuildFSub(b, mold, sub, "")), at(c, alpha, q.iv));
    st(c, mnew, mp);
    st(c, sub, tq);
    st(c, fconst(c, 0.0), at(c, tsum, q.iv));
    cg_for_end_vector(c, &q, vw);
    /* P = exp(s - m), each query's sum over the tile's keys in order */
    cg_for_begin(c, &j, zero, cg_i64(c, Bc), "kexp");
    srow = imul(c, j.iv, cg_i64(c, Br));
    cg_for_begin(c, &q, zero, cg_i64(c, Br), "qexp");
    sp = at(c, ST, iadd(c, srow, q.iv));
    LLVMValueRef pv = cg_unary(c, OP_EXP, DT_F32, LLVMBuildFSub(b, ld(c, sp), ld(c, at(c, tmax, q.iv)), ""));
    st(c, pv, sp);
    LLVMValueRef sum_p = at(c, tsum, q.iv);
    st(c, LLVMBuildFAdd(b, ld(c, sum_p), pv, ""), sum_p);
    cg_for_end_vector(c, &q, vw);
    cg_for_end(c, &j);
    cg_for_begin(c, &q, zero, cg_i64(c, Br), "ql");
    LLVMValueRef lp = at(c, lsum, q.iv);
    st(c, LLVMBuildFAdd(b, LLVMBuildFMul(b, ld(c, lp), ld(c, at(c, alpha, q.iv)), ""), ld(c, at(c, tsum, q.iv)), ""), lp);
    cg_for_end_vector(c, &q, vw);
    cg_for_begin(c, &q, zero, cg_i64(c, Br), "qresc");
    LLVMValueRef al = ld(c, at(c, alpha, q.iv)), orow = imul(c, q.iv, cg_i64(c, D));
    cg_for_begin(c, &d, zero, cg_i64(c, D), "resc");
    LLVMValueRef op = at(c, O, iadd(c, orow, d.iv));
    st(c, LLVMBuildFMul(b, ld(c, op), al, ""), op);
    cg_for_end_vector(c, &d, vw);
    cg_for_end(c, &q);
    /* O += P V, P read from S^T transposed */
    ukr_grid(c, t, ud, ud_rem, t->rem_r, Br, ST, 1, Br, Vp, D / nrd, Bc * nrd, nrd, cg_i64(c, Bc), O, D, 1);
    cg_if_end(c, join);
    cg_for_end(c, &jt);

    /* o = O / l; column D: m + log l (-inf, and a zero row, when no key is visible) */
    cg_for_begin(c, &q, zero, rows, "out");
    LLVMValueRef l = ld(c, at(c, lsum, q.iv));
    LLVMValueRef any = LLVMBuildFCmp(b, LLVMRealOGT, l, fconst(c, 0.0), "");
    LLVMValueRef obase = imul(c, iadd(c, qrow0, q.iv), cg_i64(c, D + 1));
    LLVMValueRef orow2 = imul(c, q.iv, cg_i64(c, D));
    cg_for_begin(c, &d, zero, cg_i64(c, D), "od");
    LLVMValueRef quo = LLVMBuildFDiv(b, ld(c, at(c, O, iadd(c, orow2, d.iv))), l, "");
    cg_store(k, LLVMBuildSelect(b, any, quo, fconst(c, 0.0), ""), at(c, k->out_ptr, iadd(c, obase, d.iv)));
    cg_for_end_vector(c, &d, vw);
    LLVMValueRef lse = LLVMBuildFAdd(b, ld(c, at(c, mx, q.iv)), cg_unary(c, OP_LOG, DT_F32, l), "");
    cg_store(k, LLVMBuildSelect(b, any, lse, neg_inf, ""), at(c, k->out_ptr, iadd(c, obase, cg_i64(c, D))));
    cg_for_end(c, &q);
    cg_for_end(c, &w);
}

/* ---- backward ------------------------------------------------------------ */
static void emit_backward(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const IrNode *n = ir_node(k->g, k->root);
    const int32_t out = n->in[4], grad = n->in[5];
    const int64_t D = a->D, M = a->M, T = a->T, Br = t->Br, Bc = t->Bc, nr = t->cfg.nr, nrd = t->cfg_d.nr;
    const int64_t Tfull = T / Bc * Bc; /* keys in whole tiles */
    const int vw = t->cfg.vw;
    LLVMTypeRef sty = cg_type(c, (IrDType)ir_node(k->g, a->seg)->dtype);
    LLVMValueRef Qs = cg_stack_f32(k, Br * D, "qs"), Gs = cg_stack_f32(k, Br * D, "gs");
    LLVMValueRef QT = cg_stack_f32(k, Br * D, "qt"), GT = cg_stack_f32(k, Br * D, "gt");
    LLVMValueRef Qn = nrd == D ? Qs : cg_stack_f32(k, Br * D, "qn"), Gn = nrd == D ? Gs : cg_stack_f32(k, Br * D, "gn");
    LLVMValueRef Ks = cg_stack_f32(k, Bc * D, "ks"), Vs = cg_stack_f32(k, Bc * D, "vs");
    LLVMValueRef Kn = nrd == D ? Ks : cg_stack_f32(k, Bc * D, "kn");
    LLVMValueRef ST = cg_stack_f32(k, Bc * Br, "pt"), dST = cg_stack_f32(k, Bc * Br, "dst");
    LLVMValueRef dQs = cg_stack_f32(k, Br * D, "dq"), dKt = cg_stack_f32(k, Bc * D, "dkt"), dVt = cg_stack_f32(k, Bc * D, "dvt");
    LLVMValueRef rowD = cg_stack_f32(k, Br, "drow"), rowL = cg_stack_f32(k, Br, "lse"), rowG = cg_stack_f32(k, Br, "glse");
    LLVMValueRef lim = stack_array(k, c->i64, Br), segq = stack_array(k, sty, Br), segk = stack_array(k, sty, Bc);
    LLVMValueRef dot = cg_entry_alloca(k, c->f32);
    Ukr us = ukr_of(c, &t->cfg, t->cfg.mr), us_rem = t->rem_c ? ukr_of(c, &t->cfg, t->rem_c) : us;
    Ukr ud = ukr_of(c, &t->cfg_d, t->cfg.mr);
    Ukr ud_rem_c = t->rem_c ? ukr_of(c, &t->cfg_d, t->rem_c) : ud, ud_rem_r = t->rem_r ? ukr_of(c, &t->cfg_d, t->rem_r) : ud;
    LLVMValueRef zero = cg_i64(c, 0);
    CgFor e, ib, jt, j, q, d;
    LLVMBasicBlockRef join;

    cg_for_begin(c, &e, begin, end, "entry");
    LLVMValueRef kvrow0 = imul(c, e.iv, cg_i64(c, T));
    LLVMValueRef seg_base = imul(c, LLVMBuildUDiv(b, e.iv, cg_i64(c, a->per_seg_row), ""), cg_i64(c, T));
    LLVMValueRef block = imul(c, e.iv, cg_i64(c, (M + 2 * T) * D));
    LLVMValueRef dk_base = iadd(c, block, cg_i64(c, M * D)), dv_base = iadd(c, dk_base, cg_i64(c, T * D));
    cg_for_begin(c, &d, zero, cg_i64(c, 2 * T * D), "dkvzero");
    cg_store(k, fconst(c, 0.0), at(c, k->out_ptr, iadd(c, dk_base, d.iv)));
    cg_for_end(c, &d); /* LLVM makes it a memset (a vectorise hint would warn) */
    if (Tfull < T) {
        fill(c, dKt, Bc * D, 0.0, vw);
        fill(c, dVt, Bc * D, 0.0, vw);
    }

    cg_for_begin(c, &ib, zero, cg_i64(c, t->nblk), "qblk");
    LLVMValueRef r0 = imul(c, ib.iv, cg_i64(c, Br));
    LLVMValueRef rows = cg_smin(c, cg_i64(c, Br), LLVMBuildNSWSub(b, cg_i64(c, M), r0, ""));
    LLVMValueRef qrow0 = iadd(c, imul(c, e.iv, cg_i64(c, M)), r0);
    copy_rows(k, Qs, a->q, imul(c, qrow0, cg_i64(c, D)), D, rows, Br, D, vw);
    copy_rows(k, Gs, grad, imul(c, qrow0, cg_i64(c, D + 1)), D + 1, rows, Br, D, vw);
    pack_t(c, QT, Qs, Br, D, (int)nr);
    pack_t(c, GT, Gs, Br, D, (int)nr);
    if (nrd != D) {
        panel_rows(c, Qn, Qs, Br, D, (int)nrd, vw);
        panel_rows(c, Gn, Gs, Br, D, (int)nrd, vw);
    }
    query_limits(k, a, t, r0, rows, seg_base, lim, segq, sty);
    /* per query: D_r = g_r . o_r (in order over d), the log-sum-exp and its gradient (0 for padding rows) */
    fill(c, rowD, Br, 0.0, vw);
    fill(c, rowL, Br, 0.0, vw);
    fill(c, rowG, Br, 0.0, vw);
    cg_for_begin(c, &q, zero, rows, "rstat");
    LLVMValueRef obase = imul(c, iadd(c, qrow0, q.iv), cg_i64(c, D + 1));
    st(c, fconst(c, 0.0), dot);
    cg_for_begin(c, &d, zero, cg_i64(c, D), "dot");
    LLVMValueRef gv = ld(c, at(c, Gs, iadd(c, imul(c, q.iv, cg_i64(c, D)), d.iv)));
    st(c, cg_mul_add(c, ld(c, dot), gv, cg_attn_read(k, out, iadd(c, obase, d.iv))), dot);
    cg_for_end(c, &d);
    st(c, ld(c, dot), at(c, rowD, q.iv));
    st(c, cg_attn_read(k, out, iadd(c, obase, cg_i64(c, D))), at(c, rowL, q.iv));
    st(c, cg_attn_read(k, grad, iadd(c, obase, cg_i64(c, D))), at(c, rowG, q.iv));
    cg_for_end(c, &q);
    fill(c, dQs, Br * D, 0.0, vw);
    LLVMValueRef ntile = cg_gemm_ceil_div(c, block_key_hi(c, a, r0, rows), cg_i64(c, Bc));

    KeyTile kt = {QT, segq, rows, Ks, Vs, segk, ST, sty, kvrow0, seg_base};
    LLVMValueRef j0 = key_tile_begin(k, a, t, &kt, ntile, &jt, &join, us, us_rem); /* ... S^T = K Q^T */
    if (nrd != D) panel_rows(c, Kn, Ks, Bc, D, (int)nrd, vw);
    /* dP^T = V G^T */
    ukr_grid(c, t, us, us_rem, t->rem_c, Bc, Vs, D, 1, GT, Br / nr, D * nr, nr, cg_i64(c, D), dST, Br, 0);
    /* P and dS on the visible keys, 0 elsewhere */
    cg_for_begin(c, &j, zero, cg_i64(c, Bc), "pk");
    LLVMValueRef jj = iadd(c, j0, j.iv);
    LLVMValueRef sk = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segk, j.iv), "");
    LLVMValueRef srow = imul(c, j.iv, cg_i64(c, Br));
    cg_for_begin(c, &q, zero, cg_i64(c, Br), "pq");
    LLVMValueRef sp = at(c, ST, iadd(c, srow, q.iv)), dp = at(c, dST, iadd(c, srow, q.iv));
    LLVMValueRef P = cg_unary(c, OP_EXP, DT_F32, LLVMBuildFSub(b, ld(c, sp), ld(c, at(c, rowL, q.iv)), ""));
    P = LLVMBuildSelect(b, visible(k, a, jj, sk, lim, segq, sty, q.iv), P, fconst(c, 0.0), "");
    LLVMValueRef dS = LLVMBuildFAdd(b, LLVMBuildFSub(b, ld(c, dp), ld(c, at(c, rowD, q.iv)), ""),
                                    ld(c, at(c, rowG, q.iv)), "");
    st(c, P, sp);
    st(c, LLVMBuildFMul(b, P, dS, ""), dp);
    cg_for_end_vector(c, &q, vw);
    cg_for_end(c, &j);
    /* dV += P^T G, dK += dS^T Q (the tile's key rows), dQ += dS K */
    LLVMValueRef whole = ilt(c, j0, cg_i64(c, Tfull)), dkv = imul(c, j0, cg_i64(c, D));
    LLVMValueRef dVp = LLVMBuildSelect(b, whole, at(c, k->out_ptr, iadd(c, dv_base, dkv)), dVt, "");
    LLVMValueRef dKp = LLVMBuildSelect(b, whole, at(c, k->out_ptr, iadd(c, dk_base, dkv)), dKt, "");
    ukr_grid(c, t, ud, ud_rem_c, t->rem_c, Bc, ST, Br, 1, Gn, D / nrd, Br * nrd, nrd, cg_i64(c, Br), dVp, D, 1);
    ukr_grid(c, t, ud, ud_rem_c, t->rem_c, Bc, dST, Br, 1, Qn, D / nrd, Br * nrd, nrd, cg_i64(c, Br), dKp, D, 1);
    ukr_grid(c, t, ud, ud_rem_r, t->rem_r, Br, dST, 1, Br, Kn, D / nrd, Bc * nrd, nrd, cg_i64(c, Bc), dQs, D, 1);
    cg_if_end(c, join);
    cg_for_end(c, &jt);

    /* the block's dq rows (a copy: LLVM makes it a memcpy, so no vectorise hint) */
    cg_for_begin(c, &q, zero, rows, "dqout");
    LLVMValueRef dst = iadd(c, block, imul(c, iadd(c, r0, q.iv), cg_i64(c, D)));
    LLVMValueRef src = imul(c, q.iv, cg_i64(c, D));
    cg_for_begin(c, &d, zero, cg_i64(c, D), "dqd");
    cg_store(k, ld(c, at(c, dQs, iadd(c, src, d.iv))), at(c, k->out_ptr, iadd(c, dst, d.iv)));
    cg_for_end(c, &d);
    cg_for_end(c, &q);
    cg_for_end(c, &ib);

    /* the short last tile's dk and dv rows */
    if (Tfull < T) {
        cg_for_begin(c, &d, zero, cg_i64(c, (T - Tfull) * D), "dkvout");
        LLVMValueRef o = iadd(c, cg_i64(c, Tfull * D), d.iv);
        cg_store(k, ld(c, at(c, dKt, d.iv)), at(c, k->out_ptr, iadd(c, dk_base, o)));
        cg_store(k, ld(c, at(c, dVt, d.iv)), at(c, k->out_ptr, iadd(c, dv_base, o)));
        cg_for_end(c, &d); /* two memcpys for LLVM */
    }
    cg_for_end(c, &e);
}

int cg_emit_attention_tiled(CgKern *k, LLVMValueRef begin, LLVMValueRef end) {
    AttnTiles t;
    if (!tiles_of(k->c, k->g, k->root, &t)) return 0;
    AttnGeom a = cg_attn_geom(k);
    if (ir_node(k->g, k->root)->op == OP_ATTENTION) emit_forward(k, &a, &t, begin, end);
    else emit_backward(k, &a, &t, begin, end);
    return 1;
}
