/* cg_gemm_pack.c — copying A and B blocks into the micro-kernel's layouts.
 *
 * Packed B (kc x ncur, from rows p0.. and columns n0..): panels of nr
 * columns, one after another; inside a panel row k is nr consecutive
 * floats, so the micro-kernel reads B with two aligned vector loads per k
 * and one panel (kc x nr: 16 KiB on AVX2 at kc = 256) stays in L1 while it
 * sweeps the M block. Columns past N are written as zeros: the edge
 * micro-tile computes them and they are never stored.
 *
 * Packed A (rows r0.., columns p0..): panels of mr rows; inside a panel
 * column k is mr consecutive floats (the broadcast operand of the
 * micro-kernel, read with rs_a = 1, cs_a = mr). Rows past M are zeros.
 *
 * Operand elements of a stored operand are loaded from its base pointer;
 * others are read through the element evaluator (cg_eval at the
 * operand's flat index), so a matmul whose operand is computed inline (a
 * fused prologue, a constant) packs just as a stored one does. The one
 * paths that matter for speed get direct vector loads: B not transposed
 * and stored, whose panel rows are contiguous in memory (two vector loads
 * and stores per row); B transposed and stored (the forward x.W^T of every
 * linear layer) on 8- and 16-lane targets, read as 8 x 8 blocks (8 k of 8
 * columns, contiguous along k) and transposed with shuffles; A^T stored
 * (see cg_gemm_pack_a). B is packed once per K block and N block and reused
 * by all the M blocks of a run of tiles, so it costs O(K N) against
 * O(M N K) flops.
 * Edge reads are clamped into the operand and replaced by zero with a
 * select (straight-line code, every load in bounds).
 *
 * Under a contraction mask (matmul_masked, dim 1) a block's rows k are not
 * p0.. but the block's live k, listed by the loops in CgGemmOps.kidx: both
 * packs gather them (row k of B, column k of A), so the micro-kernel sees
 * only live k, in increasing order; the 8 x 8 transposing path, which reads
 * 8 consecutive k, is then not taken.
 */
#include "cg_gemm.h"

/* flat index of element (i, j) of a rows x cols operand of the current
 * batch, stored transposed (j-major) when trans */
static LLVMValueRef op_flat(const CgGemmOps *o, LLVMValueRef rows, LLVMValueRef cols, int trans, LLVMValueRef i,
                            LLVMValueRef j) {
    LLVMBuilderRef b = o->k->c->b;
    LLVMValueRef base = LLVMBuildNSWMul(b, o->bat, LLVMBuildNSWMul(b, rows, cols, ""), "");
    LLVMValueRef in = trans ? LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, j, rows, ""), i, "")
                            : LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, i, cols, ""), j, "");
    return LLVMBuildNSWAdd(b, base, in, "");
}

/* the k of row kk of the block starting at p0: p0 + kk, or the kk-th live k
 * of the block under a contraction mask */
static LLVMValueRef k_of(const CgGemmOps *o, LLVMValueRef p0, LLVMValueRef kk) {
    Cg *c = o->k->c;
    if (!o->kidx) return LLVMBuildNSWAdd(c->b, p0, kk, "");
    return LLVMBuildLoad2(c->b, c->i64, LLVMBuildGEP2(c->b, c->i64, o->kidx, &kk, 1, ""), "k");
}

/* flat index of A(m, k) / B(k, n) in the current batch */
static LLVMValueRef a_flat(const CgGemmOps *o, LLVMValueRef m, LLVMValueRef kk) {
    return op_flat(o, o->M, o->K, o->ta, m, kk);
}

static LLVMValueRef b_flat(const CgGemmOps *o, LLVMValueRef kk, LLVMValueRef n) {
    return op_flat(o, o->K, o->N, o->tb, kk, n);
}

/* operand value at flat index, or 0 where !valid (index clamped by the caller) */
static LLVMValueRef operand_at(const CgGemmOps *o, int which, LLVMValueRef flat, LLVMValueRef valid) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMValueRef base = which ? o->bptr : o->aptr, v;
    if (base) {
        v = cg_load(k, c->f32, cg_gep(c, c->f32, base, flat), 0);
    } else {
        CgIndex ix = {.flat = flat};
        v = cg_eval(k, ir_node(k->g, o->mm)->in[which], &ix);
    }
    if (!valid) return v;
    return LLVMBuildSelect(k->c->b, valid, v, LLVMConstReal(k->c->f32, 0.0), "");
}

/* panels [jp_lo, jp_hi), rows k in [k_lo, kc): element by element, columns
 * past N clamped and zeroed */
static void pack_b_elems(const CgGemmOps *o, LLVMValueRef dst, LLVMValueRef p0, LLVMValueRef kc, LLVMValueRef n0,
                         LLVMValueRef jp_lo, LLVMValueRef jp_hi, LLVMValueRef k_lo) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    int nr = o->cfg->nr, vw = o->cfg->vw;
    LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)vw);
    CgFor jp, kk;
    cg_for_begin(c, &jp, jp_lo, jp_hi, "bq");
    LLVMValueRef col0 = LLVMBuildNSWAdd(b, n0, LLVMBuildNSWMul(b, jp.iv, cg_i64(c, nr), ""), "");
    LLVMValueRef pdst = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, jp.iv, LLVMBuildNSWMul(b, kc, cg_i64(c, nr), ""), ""));
    LLVMValueRef cols[64], valid[64];
    for (int j = 0; j < nr; j++) {
        LLVMValueRef n = LLVMBuildNSWAdd(b, col0, cg_i64(c, j), "");
        valid[j] = LLVMBuildICmp(b, LLVMIntSLT, n, o->N, "");
        cols[j] = cg_smin(c, n, LLVMBuildNSWSub(b, o->N, cg_i64(c, 1), ""));
    }
    cg_for_begin(c, &kk, k_lo, kc, "bk");
    LLVMValueRef kg = k_of(o, p0, kk.iv);
    LLVMValueRef row = cg_gep(c, c->f32, pdst, LLVMBuildNSWMul(b, kk.iv, cg_i64(c, nr), ""));
    for (int v = 0; v < nr / vw; v++) {
        LLVMValueRef x = LLVMGetUndef(vt);
        for (int l = 0; l < vw; l++) {
            int j = v * vw + l;
            LLVMValueRef e = operand_at(o, 1, b_flat(o, kg, cols[j]), valid[j]);
            x = LLVMBuildInsertElement(b, x, e, LLVMConstInt(c->i32, (unsigned long long)l, 0), "");
        }
        LLVMValueRef st = LLVMBuildStore(b, x, cg_gep(c, c->f32, row, cg_i64(c, v * vw)));
        LLVMSetAlignment(st, 4);
    }
    cg_for_end(c, &kk);
    cg_for_end(c, &jp);
}

static LLVMValueRef shuffle(Cg *c, LLVMValueRef x, LLVMValueRef y, const int *m) {
    LLVMValueRef mask[8];
    for (int i = 0; i < 8; i++) mask[i] = LLVMConstInt(c->i32, (unsigned long long)m[i], 0);
    return LLVMBuildShuffleVector(c->b, x, y, LLVMConstVector(mask, 8), "");
}

/* 8 x 8 transpose of <8 x float> rows r[j] (lane k): out[k] lane j = r[j][k].
 * Three rounds of two-source shuffles (unpack, pairs, 128-bit halves):
 * 24 shuffles per 64 floats */
static void transpose8(Cg *c, const LLVMValueRef *r, LLVMValueRef *out) {
    static const int lo[8] = {0, 8, 1, 9, 4, 12, 5, 13}, hi[8] = {2, 10, 3, 11, 6, 14, 7, 15};
    static const int plo[8] = {0, 1, 8, 9, 4, 5, 12, 13}, phi[8] = {2, 3, 10, 11, 6, 7, 14, 15};
    static const int hlo[8] = {0, 1, 2, 3, 8, 9, 10, 11}, hhi[8] = {4, 5, 6, 7, 12, 13, 14, 15};
    LLVMValueRef t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = shuffle(c, r[2 * i], r[2 * i + 1], lo);
        t[2 * i + 1] = shuffle(c, r[2 * i], r[2 * i + 1], hi);
    }
    for (int h = 0; h < 2; h++) { /* rows 0-3, rows 4-7 */
        LLVMValueRef *tt = t + 4 * h, *uu = u + 4 * h;
        uu[0] = shuffle(c, tt[0], tt[2], plo);
        uu[1] = shuffle(c, tt[0], tt[2], phi);
        uu[2] = shuffle(c, tt[1], tt[3], plo);
        uu[3] = shuffle(c, tt[1], tt[3], phi);
    }
    for (int q = 0; q < 4; q++) {
        out[q] = shuffle(c, u[q], u[4 + q], hlo);
        out[q + 4] = shuffle(c, u[q], u[4 + q], hhi);
    }
}

void cg_gemm_pack_b(const CgGemmOps *o, LLVMValueRef dst, LLVMValueRef p0, LLVMValueRef kc, LLVMValueRef n0,
                    LLVMValueRef ncur) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const CgGemmCfg *cfg = o->cfg;
    int nr = cfg->nr, vw = cfg->vw;
    LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)vw);
    int stored = o->bptr != NULL;
    int direct = !o->tb && stored;
    int tdirect = o->tb && stored && vw >= 8 && nr % 8 == 0 && !o->kidx; /* 8 consecutive k */
    LLVMTypeRef vt8 = LLVMVectorType(c->f32, 8);
    LLVMValueRef npan = cg_gemm_ceil_div(c, ncur, cg_i64(c, nr));
    LLVMValueRef nfull = direct || tdirect ? LLVMBuildSDiv(b, ncur, cg_i64(c, nr), "") : cg_i64(c, 0);
    CgFor jp, kk;
    LLVMValueRef src0 = o->bptr;
    if (direct) {
        /* full panels: row k of the panel is B[p0+k, n0+jp*nr ..+nr), contiguous */
        cg_for_begin(c, &jp, cg_i64(c, 0), nfull, "bp");
        LLVMValueRef col = LLVMBuildNSWAdd(b, n0, LLVMBuildNSWMul(b, jp.iv, cg_i64(c, nr), ""), "");
        LLVMValueRef pdst = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, jp.iv, LLVMBuildNSWMul(b, kc, cg_i64(c, nr), ""), ""));
        cg_for_begin(c, &kk, cg_i64(c, 0), kc, "bk");
        LLVMValueRef src = cg_gep(c, c->f32, src0, b_flat(o, k_of(o, p0, kk.iv), col));
        LLVMValueRef row = cg_gep(c, c->f32, pdst, LLVMBuildNSWMul(b, kk.iv, cg_i64(c, nr), ""));
        for (int v = 0; v < nr / vw; v++) {
            LLVMValueRef x = cg_load(k, vt, cg_gep(c, c->f32, src, cg_i64(c, v * vw)), 0);
            LLVMValueRef st = LLVMBuildStore(b, x, cg_gep(c, c->f32, row, cg_i64(c, v * vw)));
            LLVMSetAlignment(st, 4);
        }
        cg_for_end(c, &kk);
        cg_for_end(c, &jp);
    }
    if (tdirect) {
        /* B^T stored [N, K]: for full panels, 8 k at a time, load 8 k of each
         * of the panel's columns (contiguous) and transpose 8 x 8 blocks
         * (<8 x float> whatever the target's width: nr / 8 blocks per k);
         * the k past the last multiple of 8 go element by element */
        LLVMValueRef kc8 = LLVMBuildSDiv(b, kc, cg_i64(c, 8), "");
        cg_for_begin(c, &jp, cg_i64(c, 0), nfull, "bt");
        LLVMValueRef col = LLVMBuildNSWAdd(b, n0, LLVMBuildNSWMul(b, jp.iv, cg_i64(c, nr), ""), "");
        LLVMValueRef pdst = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, jp.iv, LLVMBuildNSWMul(b, kc, cg_i64(c, nr), ""), ""));
        cg_for_begin(c, &kk, cg_i64(c, 0), kc8, "bk8");
        LLVMValueRef kb = LLVMBuildNSWMul(b, kk.iv, cg_i64(c, 8), "");
        LLVMValueRef kg = LLVMBuildNSWAdd(b, p0, kb, "");
        for (int h = 0; h < nr / 8; h++) {
            LLVMValueRef r[8], out[8];
            for (int j = 0; j < 8; j++) {
                LLVMValueRef n = LLVMBuildNSWAdd(b, col, cg_i64(c, h * 8 + j), "");
                r[j] = cg_load(k, vt8, cg_gep(c, c->f32, src0, b_flat(o, kg, n)), 0);
            }
            transpose8(c, r, out);
            for (int q = 0; q < 8; q++) {
                LLVMValueRef at = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, kb, cg_i64(c, q), ""), cg_i64(c, nr), ""),
                                                  cg_i64(c, h * 8), "");
                LLVMValueRef st = LLVMBuildStore(b, out[q], cg_gep(c, c->f32, pdst, at));
                LLVMSetAlignment(st, 4);
            }
        }
        cg_for_end(c, &kk);
        cg_for_end(c, &jp);
        pack_b_elems(o, dst, p0, kc, n0, cg_i64(c, 0), nfull, LLVMBuildNSWMul(b, kc8, cg_i64(c, 8), ""));
    }
    /* the remaining panels (all of them unless direct): element by element */
    pack_b_elems(o, dst, p0, kc, n0, nfull, npan, cg_i64(c, 0));
}

void cg_gemm_pack_a(const CgGemmOps *o, LLVMValueRef dst, LLVMValueRef r0, LLVMValueRef rows, LLVMValueRef p0,
                    LLVMValueRef kc) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const CgGemmCfg *cfg = o->cfg;
    int mr = cfg->mr;
    LLVMValueRef npan = cg_gemm_ceil_div(c, rows, cg_i64(c, mr));
    CgFor ip, kk;
    LLVMValueRef p_first = cg_i64(c, 0);
    int vl = 1;
    while (vl < mr) vl *= 2;
    if (o->ta && o->aptr) {
        /* A^T stored: the mr values of panel column k are contiguous. k
         * outer, panels inner: row k of A^T is read along its length (one
         * sequential stream per k) instead of down a column of rows that are
         * M floats apart, which for M a multiple of 1024 all share a few
         * cache sets and evict each other before the next panel reuses the
         * line. One vl-wide load (vl >= mr; the panel's rows up to vl must
         * exist) and one vl-wide store per (k, panel) for k < kc - 1: the
         * store runs vl - mr floats into the slot of column k + 1, which the
         * next k's store then overwrites. The last column is stored mr wide
         * (its spill would land in the next panel's column 0, already
         * written). */
        LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)vl);
        LLVMValueRef first[64];
        for (int i = 0; i < mr; i++) first[i] = LLVMConstInt(c->i32, (unsigned long long)i, 0);
        LLVMValueRef take = LLVMConstVector(first, (unsigned)mr);
        LLVMValueRef src0 = o->aptr;
        /* panels [0, nvec) have rows r0 + ip*mr + vl <= M */
        LLVMValueRef room = LLVMBuildNSWSub(b, LLVMBuildNSWSub(b, o->M, cg_i64(c, vl), ""), r0, "");
        LLVMValueRef nvec = cg_smax(c, cg_i64(c, 0), LLVMBuildSDiv(b, LLVMBuildNSWAdd(b, room, cg_i64(c, mr), ""), cg_i64(c, mr), ""));
        nvec = cg_smin(c, nvec, LLVMBuildSDiv(b, rows, cg_i64(c, mr), ""));
        nvec = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, room, cg_i64(c, 0), ""), cg_i64(c, 0), nvec, "");
        /* columns [0, kl) vl wide, [kl, kc) (the last one) mr wide */
        LLVMValueRef kl = cg_smax(c, LLVMBuildNSWSub(b, kc, cg_i64(c, 1), ""), cg_i64(c, 0));
        for (int narrow = 0; narrow < 2; narrow++) {
            cg_for_begin(c, &kk, narrow ? kl : cg_i64(c, 0), narrow ? kc : kl, narrow ? "akl" : "ak");
            LLVMValueRef kg = k_of(o, p0, kk.iv);
            LLVMValueRef dcol = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, kk.iv, cg_i64(c, mr), ""));
            cg_for_begin(c, &ip, cg_i64(c, 0), nvec, "av");
            LLVMValueRef row0 = LLVMBuildNSWAdd(b, r0, LLVMBuildNSWMul(b, ip.iv, cg_i64(c, mr), ""), "");
            LLVMValueRef x = cg_load(k, vt, cg_gep(c, c->f32, src0, a_flat(o, row0, kg)), 0);
            if (narrow) x = LLVMBuildShuffleVector(b, x, LLVMGetUndef(vt), take, "");
            LLVMValueRef at = cg_gep(c, c->f32, dcol, LLVMBuildNSWMul(b, ip.iv, LLVMBuildNSWMul(b, kc, cg_i64(c, mr), ""), ""));
            LLVMValueRef st = LLVMBuildStore(b, x, at);
            LLVMSetAlignment(st, 4);
            cg_for_end(c, &ip);
            cg_for_end(c, &kk);
        }
        p_first = nvec;
    }
    cg_for_begin(c, &ip, p_first, npan, "ap");
    LLVMValueRef row0 = LLVMBuildNSWAdd(b, r0, LLVMBuildNSWMul(b, ip.iv, cg_i64(c, mr), ""), "");
    LLVMValueRef pdst = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, ip.iv, LLVMBuildNSWMul(b, kc, cg_i64(c, mr), ""), ""));
    LLVMValueRef ms[64], valid[64];
    for (int i = 0; i < mr; i++) {
        LLVMValueRef m = LLVMBuildNSWAdd(b, row0, cg_i64(c, i), "");
        valid[i] = LLVMBuildICmp(b, LLVMIntSLT, m, o->M, "");
        ms[i] = cg_smin(c, m, LLVMBuildNSWSub(b, o->M, cg_i64(c, 1), ""));
    }
    cg_for_begin(c, &kk, cg_i64(c, 0), kc, "ak");
    LLVMValueRef kg = k_of(o, p0, kk.iv);
    LLVMValueRef col = cg_gep(c, c->f32, pdst, LLVMBuildNSWMul(b, kk.iv, cg_i64(c, mr), ""));
    for (int i = 0; i < mr; i++) {
        LLVMValueRef e = operand_at(o, 0, a_flat(o, ms[i], kg), valid[i]);
        LLVMBuildStore(b, e, cg_gep(c, c->f32, col, cg_i64(c, i)));
    }
    cg_for_end(c, &kk);
    cg_for_end(c, &ip);
}
