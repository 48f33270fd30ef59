/* cg_attention_tiled.c — f32 attention and attention_grad in tiles, through
 * the GEMM micro-kernel (cg_gemm_ukr.c).
 *
 * Used when the op is f32 and the head width D is a multiple of the vector
 * width (otherwise cg_attention.c's plain loops run). Operands are read
 * through the element evaluator, so they may be stored or computed inline;
 * each is read once per copy into scratch. Query
 * rows go in blocks of Br (a multiple of the micro-tile's mr rows), keys in
 * tiles of Bc (a multiple of its nr columns, with Bc mod mr a micro-kernel
 * row count so key micro-panels cover a tile exactly). Scratch is on the
 * stack (cg_stack_f32), never score-sized beyond one Br x Bc tile.
 *
 * Forward, one work unit per (batch entry, query block): the block's q rows
 * are copied (zero rows past M); per key tile the keys are packed as K^T
 * panels and V as row panels, S = Q K^T by micro-kernel calls, then per row
 * the hidden scores become -inf, the tile's max m' joins the running max,
 * P = exp(s - m), l = l exp(m_old - m) + sum P and the output accumulator is
 * rescaled by the same factor before O += P V (micro-kernel, accumulating).
 * At the end o = O / l and column D = m + log l (0 and -inf for a row that
 * sees no key, as in the plain kernel). Causal blocks stop at the last key
 * any of their rows sees. Maxima and sums over a tile's keys go through vw
 * lane slots (the loop over lanes is vectorised) folded in lane order.
 *
 * Backward, one work unit per batch entry (dk and dv of a key gather every
 * query row's share, so one unit owns the whole entry): dk and dv accumulate
 * in an entry scratch [Tp, D]. Per query block: q and the output gradient's
 * rows are copied and packed, D_r = g_r . o_r, the log-sum-exp and its
 * gradient read once; per key tile S = Q K^T and dP = G V^T (micro-kernel),
 * P = exp(S - lse) on the visible keys (0 elsewhere), dS = P (dP - D_r +
 * g_lse), then dV += P^T G, dK += dS^T Q (A read transposed in place: rs 1,
 * cs Bc) and dQ += dS K (block scratch, written after the block's last tile).
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

enum { ATTN_STACK_MAX = 4 << 20 }; /* bytes of the gradient's entry scratch */

/* the tiling of one attention node */
typedef struct AttnTiles {
    CgGemmCfg cfg;   /* micro-tile: mr rows, nr columns over keys */
    CgGemmCfg cfg_d; /* the same with nr over the head width (2 vectors, or 1 when D needs it) */
    int64_t Br, Bc;  /* query rows per block, keys per tile */
    int64_t nblk;    /* query blocks per batch entry */
    int rem_rows;    /* Bc mod mr: the key micro-panel of fewer rows closing a tile (0: none) */
} AttnTiles;

static int tiles_of(Cg *c, const IrGraph *g, int32_t root, AttnTiles *t) {
    const IrNode *n = ir_node(g, root);
    if (n->dtype != DT_F32 || (n->op != OP_ATTENTION && n->op != OP_ATTENTION_GRAD)) return 0;
    const char *off = getenv("DPOC_NO_GEMM");
    if (off && *off && strcmp(off, "0") != 0) return 0;
    AttnGeom a = cg_attn_geom_of(c, g, root);
    memset(t, 0, sizeof *t);
    cg_gemm_config(c->features, &t->cfg);
    int vw = t->cfg.vw, mr = t->cfg.mr;
    if (a.D % vw) return 0;
    t->cfg_d = t->cfg;
    t->cfg_d.nr = a.D % (2 * vw) == 0 ? 2 * vw : vw;
    t->Br = (48 + mr - 1) / mr * mr;
    /* keys per tile: from 64 up in steps of nr until the remainder below mr
     * is 0 or a micro-kernel row count (1, 2, 4, 8) */
    for (t->Bc = 64;; t->Bc += t->cfg.nr) {
        int64_t r = t->Bc % mr;
        if (t->Bc % t->cfg.nr == 0 && (r == 0 || r == 1 || r == 2 || r == 4 || r == 8)) break;
    }
    t->rem_rows = (int)(t->Bc % mr);
    t->nblk = (a.M + t->Br - 1) / t->Br;
    if (n->op == OP_ATTENTION_GRAD) {
        int64_t Tp = (a.T + t->Bc - 1) / t->Bc * t->Bc;
        if (2 * Tp * a.D * 4 > ATTN_STACK_MAX) return 0;
    }
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
} Ukr;

static Ukr ukr_of(Cg *c, const CgGemmCfg *cfg, int rows) {
    Ukr u;
    u.fn = cg_gemm_ukr(c, cfg, rows, &u.ty);
    return u;
}

/* c[i*ldc + j] (+)= sum_k<kc a[i*rs + k*cs] * b[k*nr + j] over the micro-tile */
static void ukr_call(Cg *c, Ukr u, LLVMValueRef a, LLVMValueRef rs, LLVMValueRef cs, LLVMValueRef bp, LLVMValueRef kc,
                     LLVMValueRef cp, int64_t ldc, int acc) {
    LLVMValueRef args[8] = {a, rs, cs, bp, kc, cp, cg_i64(c, ldc), LLVMConstInt(c->i32, (unsigned long long)acc, 0)};
    LLVMBuildCall2(c->b, u.ty, u.fn, args, 8, "");
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

/* K^T panels of one key tile: dst[p*D*nr + d*nr + jj] = key (j0 + p*nr + jj)'s element d, 0 past T */
static void pack_keys_t(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef dst, int32_t src,
                        LLVMValueRef row0, LLVMValueRef j0) {
    Cg *c = k->c;
    int nr = t->cfg.nr;
    CgFor kk, d;
    LLVMBasicBlockRef join;
    cg_for_begin(c, &kk, cg_i64(c, 0), cg_i64(c, t->Bc), "ktkey");
    LLVMValueRef p = LLVMBuildUDiv(c->b, kk.iv, cg_i64(c, nr), ""), jj = LLVMBuildURem(c->b, kk.iv, cg_i64(c, nr), "");
    LLVMValueRef d0 = iadd(c, imul(c, p, cg_i64(c, a->D * nr)), jj);
    LLVMValueRef valid = ilt(c, iadd(c, j0, kk.iv), cg_i64(c, a->T));
    LLVMValueRef s0 = imul(c, iadd(c, row0, iadd(c, j0, kk.iv)), cg_i64(c, a->D));
    cg_if_begin(c, valid, &join);
    cg_for_begin(c, &d, cg_i64(c, 0), cg_i64(c, a->D), "ktd");
    st(c, cg_attn_read(k, src, iadd(c, s0, d.iv)), at(c, dst, iadd(c, d0, imul(c, d.iv, cg_i64(c, nr)))));
    cg_for_end(c, &d);
    cg_if_end(c, join);
    cg_if_begin(c, LLVMBuildNot(c->b, valid, ""), &join);
    cg_for_begin(c, &d, cg_i64(c, 0), cg_i64(c, a->D), "ktz");
    st(c, fconst(c, 0.0), at(c, dst, iadd(c, d0, imul(c, d.iv, cg_i64(c, nr)))));
    cg_for_end(c, &d);
    cg_if_end(c, join);
    cg_for_end(c, &kk);
}

/* a key tile's rows (zero past T) as row panels over the head width: tmp is Bc x D scratch */
static void pack_keys_rows(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef dst, LLVMValueRef tmp,
                           int32_t src, LLVMValueRef row0, LLVMValueRef j0) {
    Cg *c = k->c;
    LLVMValueRef nvalid = LLVMBuildNSWSub(c->b, cg_i64(c, a->T), j0, "");
    LLVMValueRef base = imul(c, iadd(c, row0, j0), cg_i64(c, a->D));
    if (t->cfg_d.nr == a->D) { /* one panel: the rows themselves */
        copy_rows(k, dst, src, base, a->D, nvalid, t->Bc, a->D, t->cfg.vw);
        return;
    }
    copy_rows(k, tmp, src, base, a->D, nvalid, t->Bc, a->D, t->cfg.vw);
    panel_rows(c, dst, tmp, t->Bc, a->D, t->cfg_d.nr, t->cfg.vw);
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

/* i1: key j0 + kk is visible to a query at limit lim (keys below it) with segment segq */
static LLVMValueRef tile_visible(CgKern *k, const AttnGeom *a, LLVMValueRef segk, LLVMTypeRef sty, LLVMValueRef kk,
                                 LLVMValueRef j0, LLVMValueRef lim, LLVMValueRef segq) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    IrDType sdt = (IrDType)ir_node(k->g, a->seg)->dtype;
    LLVMValueRef sk = LLVMBuildLoad2(b, sty, cg_gep(c, sty, segk, kk), "");
    LLVMValueRef zero = cg_const(c, sdt, 0.0), same;
    if (ir_dtype_is_float(sdt))
        same = LLVMBuildOr(b, LLVMBuildFCmp(b, LLVMRealOEQ, sk, zero, ""), LLVMBuildFCmp(b, LLVMRealOEQ, sk, segq, ""), "");
    else
        same = LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntEQ, sk, zero, ""), LLVMBuildICmp(b, LLVMIntEQ, sk, segq, ""), "");
    return LLVMBuildAnd(b, ilt(c, iadd(c, j0, kk), lim), same, "vis");
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

/* a row's visibility: keys below lim, its segment */
static void row_limits(CgKern *k, const AttnGeom *a, LLVMValueRef row, LLVMValueRef seg_base, LLVMValueRef *lim,
                       LLVMValueRef *segq) {
    Cg *c = k->c;
    LLVMValueRef pos = iadd(c, cg_i64(c, a->T - a->Tq), LLVMBuildURem(c->b, row, cg_i64(c, a->Tq), ""));
    *lim = a->causal ? iadd(c, pos, cg_i64(c, 1)) : cg_i64(c, a->T);
    *segq = cg_attn_read(k, a->seg, iadd(c, seg_base, pos));
}

/* fold vw lane slots in lane order with op (a maxnum or an add) */
static LLVMValueRef fold_lanes(Cg *c, LLVMValueRef lanes, int vw, int is_max) {
    LLVMValueRef v = ld(c, at(c, lanes, cg_i64(c, 0)));
    for (int i = 1; i < vw; i++) {
        LLVMValueRef x = ld(c, at(c, lanes, cg_i64(c, i)));
        v = is_max ? cg_call_intrinsic2(c, "llvm.maxnum", v, x) : LLVMBuildFAdd(c->b, v, x, "");
    }
    return v;
}

static void fill(Cg *c, LLVMValueRef p, int64_t n, double v, int vw) {
    CgFor i;
    cg_for_begin(c, &i, cg_i64(c, 0), cg_i64(c, n), "fill");
    st(c, fconst(c, v), at(c, p, i.iv));
    cg_for_end_vector(c, &i, vw);
}

/* for i < nmp micro-panels of mr rows and p < npan panels: C = A B (or +=) */
static void ukr_panels(Cg *c, Ukr u, LLVMValueRef nmp, int64_t mr, int64_t npan, LLVMValueRef a, int64_t a_rs,
                       LLVMValueRef bp, int64_t b_pan, LLVMValueRef kc, LLVMValueRef cp, int64_t ldc, int64_t nr,
                       int acc) {
    CgFor i, p;
    cg_for_begin(c, &i, cg_i64(c, 0), nmp, "mp");
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, npan), "np");
    LLVMValueRef ai = at(c, a, imul(c, i.iv, cg_i64(c, mr * a_rs)));
    LLVMValueRef ci = at(c, cp, iadd(c, imul(c, i.iv, cg_i64(c, mr * ldc)), imul(c, p.iv, cg_i64(c, nr))));
    ukr_call(c, u, ai, cg_i64(c, a_rs), cg_i64(c, 1), at(c, bp, imul(c, p.iv, cg_i64(c, b_pan))), kc, ci, ldc, acc);
    cg_for_end(c, &p);
    cg_for_end(c, &i);
}

/* ---- forward ------------------------------------------------------------- */
static void emit_forward(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const int64_t D = a->D, Br = t->Br, Bc = t->Bc, mr = t->cfg.mr, nrs = t->cfg.nr, nrd = t->cfg_d.nr;
    const int vw = t->cfg.vw;
    LLVMTypeRef sty = cg_type(c, (IrDType)ir_node(k->g, a->seg)->dtype);
    LLVMValueRef Qs = cg_stack_f32(k, Br * D, "qs"), KT = cg_stack_f32(k, Bc * D, "kt");
    LLVMValueRef Vp = cg_stack_f32(k, Bc * D, "vp"), Vt = cg_stack_f32(k, Bc * D, "vtmp");
    LLVMValueRef S = cg_stack_f32(k, Br * Bc, "s"), O = cg_stack_f32(k, Br * D, "o");
    LLVMValueRef mx = cg_stack_f32(k, Br, "m"), lsum = cg_stack_f32(k, Br, "l"), lanes = cg_stack_f32(k, vw, "lanes");
    LLVMValueRef segk = cg_entry_alloca(k, LLVMArrayType2(sty, (uint64_t)Bc));
    const int32_t qp = a->q, kp = a->k, vp = a->v;
    Ukr us = ukr_of(c, &t->cfg, (int)mr), ud = ukr_of(c, &t->cfg_d, (int)mr);
    LLVMValueRef neg_inf = fconst(c, -__builtin_inf()), zero = cg_i64(c, 0);
    CgFor w, jt, r, ch, ln, d;

    cg_for_begin(c, &w, begin, end, "blk");
    LLVMValueRef e = LLVMBuildUDiv(b, w.iv, cg_i64(c, t->nblk), "");
    LLVMValueRef r0 = imul(c, LLVMBuildURem(b, w.iv, cg_i64(c, t->nblk), ""), cg_i64(c, Br));
    LLVMValueRef rows = cg_smin(c, cg_i64(c, Br), LLVMBuildNSWSub(b, cg_i64(c, a->M), r0, ""));
    LLVMValueRef qrow0 = iadd(c, imul(c, e, cg_i64(c, a->M)), r0);
    LLVMValueRef kvrow0 = imul(c, e, cg_i64(c, a->T));
    LLVMValueRef seg_base = imul(c, LLVMBuildUDiv(b, e, cg_i64(c, a->per_seg_row), ""), cg_i64(c, a->T));
    LLVMValueRef nmp = cg_gemm_ceil_div(c, rows, cg_i64(c, mr));
    copy_rows(k, Qs, qp, imul(c, qrow0, cg_i64(c, D)), D, rows, Br, D, vw);
    fill(c, mx, Br, -__builtin_inf(), vw);
    fill(c, lsum, Br, 0.0, vw);
    fill(c, O, Br * D, 0.0, vw);
    LLVMValueRef ntile = cg_gemm_ceil_div(c, block_key_hi(c, a, r0, rows), cg_i64(c, Bc));

    cg_for_begin(c, &jt, zero, ntile, "tile");
    LLVMValueRef j0 = imul(c, jt.iv, cg_i64(c, Bc));
    pack_keys_t(k, a, t, KT, kp, kvrow0, j0);
    pack_keys_rows(k, a, t, Vp, Vt, vp, kvrow0, j0);
    load_key_segments(k, a, t, segk, sty, seg_base, j0);
    ukr_panels(c, us, nmp, mr, Bc / nrs, Qs, D, KT, D * nrs, cg_i64(c, D), S, Bc, nrs, 0);

    cg_for_begin(c, &r, zero, rows, "row");
    LLVMValueRef lim, segq;
    row_limits(k, a, iadd(c, r0, r.iv), seg_base, &lim, &segq);
    LLVMValueRef srow = imul(c, r.iv, cg_i64(c, Bc));
    /* hidden keys to -inf, lane maxima */
    fill(c, lanes, vw, -__builtin_inf(), vw);
    cg_for_begin(c, &ch, zero, cg_i64(c, Bc / vw), "ch");
    cg_for_begin(c, &ln, zero, cg_i64(c, vw), "ln");
    LLVMValueRef kk = iadd(c, imul(c, ch.iv, cg_i64(c, vw)), ln.iv);
    LLVMValueRef sp = at(c, S, iadd(c, srow, kk));
    LLVMValueRef s = LLVMBuildSelect(b, tile_visible(k, a, segk, sty, kk, j0, lim, segq), ld(c, sp), neg_inf, "");
    st(c, s, sp);
    LLVMValueRef lp = at(c, lanes, ln.iv);
    st(c, cg_call_intrinsic2(c, "llvm.maxnum", ld(c, lp), s), lp);
    cg_for_end_vector(c, &ln, vw);
    cg_for_end(c, &ch);
    LLVMValueRef mold = ld(c, at(c, mx, r.iv));
    LLVMValueRef mnew = cg_call_intrinsic2(c, "llvm.maxnum", mold, fold_lanes(c, lanes, vw, 1));
    LLVMValueRef dead = LLVMBuildFCmp(b, LLVMRealOEQ, mnew, neg_inf, "");
    LLVMValueRef sub = LLVMBuildSelect(b, dead, fconst(c, 0.0), mnew, "");
    LLVMValueRef alpha = cg_unary(c, OP_EXP, DT_F32, LLVMBuildFSub(b, mold, sub, ""));
    /* P = exp(s - m), lane sums */
    fill(c, lanes, vw, 0.0, vw);
    cg_for_begin(c, &ch, zero, cg_i64(c, Bc / vw), "ch");
    cg_for_begin(c, &ln, zero, cg_i64(c, vw), "ln");
    kk = iadd(c, imul(c, ch.iv, cg_i64(c, vw)), ln.iv);
    sp = at(c, S, iadd(c, srow, kk));
    LLVMValueRef pv = cg_unary(c, OP_EXP, DT_F32, LLVMBuildFSub(b, ld(c, sp), sub, ""));
    st(c, pv, sp);
    lp = at(c, lanes, ln.iv);
    st(c, LLVMBuildFAdd(b, ld(c, lp), pv, ""), lp);
    cg_for_end_vector(c, &ln, vw);
    cg_for_end(c, &ch);
    LLVMValueRef lrp = at(c, lsum, r.iv);
    st(c, LLVMBuildFAdd(b, LLVMBuildFMul(b, ld(c, lrp), alpha, ""), fold_lanes(c, lanes, vw, 0), ""), lrp);
    st(c, mnew, at(c, mx, r.iv));
    LLVMValueRef orow = imul(c, r.iv, cg_i64(c, D));
    cg_for_begin(c, &d, zero, cg_i64(c, D), "resc");
    LLVMValueRef op = at(c, O, iadd(c, orow, d.iv));
    st(c, LLVMBuildFMul(b, ld(c, op), alpha, ""), op);
    cg_for_end_vector(c, &d, vw);
    cg_for_end(c, &r);

    ukr_panels(c, ud, nmp, mr, D / nrd, S, Bc, Vp, Bc * nrd, cg_i64(c, Bc), O, D, nrd, 1);
    cg_for_end(c, &jt);

    /* o = O / l; column D: m + log l (-inf, and a zero row, when no key is visible) */
    cg_for_begin(c, &r, zero, rows, "out");
    LLVMValueRef l = ld(c, at(c, lsum, r.iv));
    LLVMValueRef any = LLVMBuildFCmp(b, LLVMRealOGT, l, fconst(c, 0.0), "");
    LLVMValueRef obase = imul(c, iadd(c, qrow0, r.iv), cg_i64(c, D + 1));
    LLVMValueRef orow2 = imul(c, r.iv, cg_i64(c, D));
    cg_for_begin(c, &d, zero, cg_i64(c, D), "od");
    LLVMValueRef q = LLVMBuildFDiv(b, ld(c, at(c, O, iadd(c, orow2, d.iv))), l, "");
    cg_store(k, LLVMBuildSelect(b, any, q, fconst(c, 0.0), ""), at(c, k->out_ptr, iadd(c, obase, d.iv)));
    cg_for_end_vector(c, &d, vw);
    LLVMValueRef lse = LLVMBuildFAdd(b, ld(c, at(c, mx, r.iv)), cg_unary(c, OP_LOG, DT_F32, l), "");
    cg_store(k, LLVMBuildSelect(b, any, lse, neg_inf, ""), at(c, k->out_ptr, iadd(c, obase, cg_i64(c, D))));
    cg_for_end(c, &r);
    cg_for_end(c, &w);
}

/* ---- backward ------------------------------------------------------------ */
/* for key micro-panels of one tile (mr keys each, the last rem_rows):
 * C[key rows] += A^T B with A a Br x Bc tile read transposed (rs 1, cs Bc) */
static void ukr_keys(Cg *c, const AttnTiles *t, Ukr u, Ukr urem, LLVMValueRef A, LLVMValueRef Bp, LLVMValueRef kc,
                     LLVMValueRef C, int64_t D) {
    const int64_t mr = t->cfg.mr, nrd = t->cfg_d.nr, nfull = t->Bc / mr;
    CgFor i, p;
    cg_for_begin(c, &i, cg_i64(c, 0), cg_i64(c, nfull), "kp");
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, D / nrd), "kpn");
    LLVMValueRef ai = at(c, A, imul(c, i.iv, cg_i64(c, mr)));
    LLVMValueRef ci = at(c, C, iadd(c, imul(c, i.iv, cg_i64(c, mr * D)), imul(c, p.iv, cg_i64(c, nrd))));
    ukr_call(c, u, ai, cg_i64(c, 1), cg_i64(c, t->Bc), at(c, Bp, imul(c, p.iv, cg_i64(c, t->Br * nrd))), kc, ci, D, 1);
    cg_for_end(c, &p);
    cg_for_end(c, &i);
    if (!t->rem_rows) return;
    cg_for_begin(c, &p, cg_i64(c, 0), cg_i64(c, D / nrd), "kpr");
    LLVMValueRef cr = at(c, C, iadd(c, cg_i64(c, nfull * mr * D), imul(c, p.iv, cg_i64(c, nrd))));
    ukr_call(c, urem, at(c, A, cg_i64(c, nfull * mr)), cg_i64(c, 1), cg_i64(c, t->Bc),
             at(c, Bp, imul(c, p.iv, cg_i64(c, t->Br * nrd))), kc, cr, D, 1);
    cg_for_end(c, &p);
}

static void emit_backward(CgKern *k, const AttnGeom *a, const AttnTiles *t, LLVMValueRef begin, LLVMValueRef end) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const IrNode *n = ir_node(k->g, k->root);
    const int64_t D = a->D, M = a->M, T = a->T, Br = t->Br, Bc = t->Bc, mr = t->cfg.mr, nrs = t->cfg.nr,
                  nrd = t->cfg_d.nr;
    const int64_t Tp = (T + Bc - 1) / Bc * Bc;
    const int vw = t->cfg.vw;
    LLVMTypeRef sty = cg_type(c, (IrDType)ir_node(k->g, a->seg)->dtype);
    LLVMValueRef Qs = cg_stack_f32(k, Br * D, "qs"), Gs = cg_stack_f32(k, Br * D, "gs");
    LLVMValueRef Qn = nrd == D ? Qs : cg_stack_f32(k, Br * D, "qn"), Gn = nrd == D ? Gs : cg_stack_f32(k, Br * D, "gn");
    LLVMValueRef KT = cg_stack_f32(k, Bc * D, "kt"), VT = cg_stack_f32(k, Bc * D, "vt");
    LLVMValueRef Kn = cg_stack_f32(k, Bc * D, "kn"), Kt = cg_stack_f32(k, Bc * D, "ktmp");
    LLVMValueRef Ss = cg_stack_f32(k, Br * Bc, "p"), dPs = cg_stack_f32(k, Br * Bc, "ds");
    LLVMValueRef dQs = cg_stack_f32(k, Br * D, "dq"), dK = cg_stack_f32(k, Tp * D, "dk"), dV = cg_stack_f32(k, Tp * D, "dv");
    LLVMValueRef rowD = cg_stack_f32(k, Br, "drow"), rowL = cg_stack_f32(k, Br, "lse"), rowG = cg_stack_f32(k, Br, "glse");
    LLVMValueRef segk = cg_entry_alloca(k, LLVMArrayType2(sty, (uint64_t)Bc));
    const int32_t qp = a->q, kp = a->k, vp = a->v, outp = n->in[4], gp = n->in[5];
    Ukr us = ukr_of(c, &t->cfg, (int)mr), ud = ukr_of(c, &t->cfg_d, (int)mr);
    Ukr urem = t->rem_rows ? ukr_of(c, &t->cfg_d, t->rem_rows) : ud;
    LLVMValueRef zero = cg_i64(c, 0);
    CgFor e, ib, jt, r, kk, d;

    cg_for_begin(c, &e, begin, end, "entry");
    LLVMValueRef kvrow0 = imul(c, e.iv, cg_i64(c, T));
    LLVMValueRef seg_base = imul(c, LLVMBuildUDiv(b, e.iv, cg_i64(c, a->per_seg_row), ""), cg_i64(c, T));
    LLVMValueRef block = imul(c, e.iv, cg_i64(c, (M + 2 * T) * D));
    fill(c, dK, Tp * D, 0.0, vw);
    fill(c, dV, Tp * D, 0.0, vw);

    cg_for_begin(c, &ib, zero, cg_i64(c, t->nblk), "qblk");
    LLVMValueRef r0 = imul(c, ib.iv, cg_i64(c, Br));
    LLVMValueRef rows = cg_smin(c, cg_i64(c, Br), LLVMBuildNSWSub(b, cg_i64(c, M), r0, ""));
    LLVMValueRef qrow0 = iadd(c, imul(c, e.iv, cg_i64(c, M)), r0);
    LLVMValueRef nmp = cg_gemm_ceil_div(c, rows, cg_i64(c, mr));
    copy_rows(k, Qs, qp, imul(c, qrow0, cg_i64(c, D)), D, rows, Br, D, vw);
    copy_rows(k, Gs, gp, imul(c, qrow0, cg_i64(c, D + 1)), D + 1, rows, Br, D, vw);
    if (nrd != D) {
        panel_rows(c, Qn, Qs, Br, D, (int)nrd, vw);
        panel_rows(c, Gn, Gs, Br, D, (int)nrd, vw);
    }
    fill(c, dQs, Br * D, 0.0, vw);
    /* per row: D_r = g_r . o_r (in order over d), the log-sum-exp and its gradient */
    cg_for_begin(c, &r, zero, rows, "rstat");
    LLVMValueRef obase = imul(c, iadd(c, qrow0, r.iv), cg_i64(c, D + 1));
    LLVMValueRef acc = cg_entry_alloca(k, c->f32);
    st(c, fconst(c, 0.0), acc);
    cg_for_begin(c, &d, zero, cg_i64(c, D), "dot");
    LLVMValueRef gv = ld(c, at(c, Gs, iadd(c, imul(c, r.iv, cg_i64(c, D)), d.iv)));
    LLVMValueRef ov = cg_attn_read(k, outp, iadd(c, obase, d.iv));
    st(c, cg_mul_add(c, ld(c, acc), gv, ov), acc);
    cg_for_end(c, &d);
    st(c, ld(c, acc), at(c, rowD, r.iv));
    st(c, cg_attn_read(k, outp, iadd(c, obase, cg_i64(c, D))), at(c, rowL, r.iv));
    st(c, cg_attn_read(k, gp, iadd(c, obase, cg_i64(c, D))), at(c, rowG, r.iv));
    cg_for_end(c, &r);
    LLVMValueRef ntile = cg_gemm_ceil_div(c, block_key_hi(c, a, r0, rows), cg_i64(c, Bc));

    cg_for_begin(c, &jt, zero, ntile, "tile");
    LLVMValueRef j0 = imul(c, jt.iv, cg_i64(c, Bc));
    pack_keys_t(k, a, t, KT, kp, kvrow0, j0);
    pack_keys_t(k, a, t, VT, vp, kvrow0, j0);
    pack_keys_rows(k, a, t, Kn, Kt, kp, kvrow0, j0);
    load_key_segments(k, a, t, segk, sty, seg_base, j0);
    ukr_panels(c, us, nmp, mr, Bc / nrs, Qs, D, KT, D * nrs, cg_i64(c, D), Ss, Bc, nrs, 0);
    ukr_panels(c, us, nmp, mr, Bc / nrs, Gs, D, VT, D * nrs, cg_i64(c, D), dPs, Bc, nrs, 0);
    /* P and dS on the visible keys, 0 elsewhere */
    cg_for_begin(c, &r, zero, rows, "prow");
    LLVMValueRef lim, segq;
    row_limits(k, a, iadd(c, r0, r.iv), seg_base, &lim, &segq);
    LLVMValueRef lse = ld(c, at(c, rowL, r.iv)), Dr = ld(c, at(c, rowD, r.iv)), gl = ld(c, at(c, rowG, r.iv));
    LLVMValueRef srow = imul(c, r.iv, cg_i64(c, Bc));
    cg_for_begin(c, &kk, zero, cg_i64(c, Bc), "pk");
    LLVMValueRef sp = at(c, Ss, iadd(c, srow, kk.iv)), dp = at(c, dPs, iadd(c, srow, kk.iv));
    LLVMValueRef P = cg_unary(c, OP_EXP, DT_F32, LLVMBuildFSub(b, ld(c, sp), lse, ""));
    P = LLVMBuildSelect(b, tile_visible(k, a, segk, sty, kk.iv, j0, lim, segq), P, fconst(c, 0.0), "");
    LLVMValueRef dS = LLVMBuildFMul(b, P, LLVMBuildFAdd(b, LLVMBuildFSub(b, ld(c, dp), Dr, ""), gl, ""), "");
    st(c, P, sp);
    st(c, dS, dp);
    cg_for_end_vector(c, &kk, vw);
    cg_for_end(c, &r);
    LLVMValueRef dkv = imul(c, j0, cg_i64(c, D));
    ukr_keys(c, t, ud, urem, Ss, Gn, rows, at(c, dV, dkv), D);
    ukr_keys(c, t, ud, urem, dPs, Qn, rows, at(c, dK, dkv), D);
    ukr_panels(c, ud, nmp, mr, D / nrd, dPs, Bc, Kn, Bc * nrd, cg_i64(c, Bc), dQs, D, nrd, 1);
    cg_for_end(c, &jt);

    /* the block's dq rows */
    cg_for_begin(c, &r, zero, rows, "dqout");
    LLVMValueRef dst = iadd(c, block, imul(c, iadd(c, r0, r.iv), cg_i64(c, D)));
    LLVMValueRef src = imul(c, r.iv, cg_i64(c, D));
    cg_for_begin(c, &d, zero, cg_i64(c, D), "dqd");
    cg_store(k, ld(c, at(c, dQs, iadd(c, src, d.iv))), at(c, k->out_ptr, iadd(c, dst, d.iv)));
    cg_for_end(c, &d); /* a copy: LLVM makes it a memcpy (a vectorise hint would warn) */
    cg_for_end(c, &r);
    cg_for_end(c, &ib);

    /* dk and dv rows */
    LLVMValueRef dk_base = iadd(c, block, cg_i64(c, M * D));
    cg_for_begin(c, &d, zero, cg_i64(c, T * D), "dkvout");
    cg_store(k, ld(c, at(c, dK, d.iv)), at(c, k->out_ptr, iadd(c, dk_base, d.iv)));
    cg_store(k, ld(c, at(c, dV, d.iv)), at(c, k->out_ptr, iadd(c, iadd(c, dk_base, cg_i64(c, T * D)), d.iv)));
    cg_for_end_vector(c, &d, vw);
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
