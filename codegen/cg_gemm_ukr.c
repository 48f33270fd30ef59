/* cg_gemm_ukr.c — the f32 micro-kernel: an mr x nr tile of C in registers.
 *
 * One internal function per module and tile shape, called by every matmul
 * kernel (cg_gemm.c):
 *
 *   void ukr(ptr a, i64 rs_a, i64 cs_a, ptr b, i64 ldb, i64 kc, ptr c, i64 ldc, i32 acc)
 *
 * and one per smaller row count r < mr (1, 2, 4, 8) for partial last
 * micro-panels (the same loop over r rows: a partial panel of M = 128 on
 * AVX-512's 14-row tile has 2 rows, and computing 14 would waste most of
 * it; powers of two keep the module at a few micro-kernels).
 *
 * The tile lives in 2 x mr vectors <vw x float> (the accumulators are phi
 * values of the k loop, so the register allocator keeps them in vector
 * registers: 12 of the 16 ymm on AVX2, with 2 for the B row and 1 for the
 * broadcast A element). They start at zero, or (acc != 0, a later K block)
 * at the current C tile. Each k step loads the B row b[k*ldb .. k*ldb+nr)
 * (two vectors: ldb = nr in a packed panel, B's row length when a
 * row-major B is read in place) and for each row i broadcasts
 * a[i*rs_a + k*cs_a] and does acc[i][v] = fma(a, b[v], acc[i][v]). A may be
 * packed (rs_a = 1, cs_a = mr) or read in place from a row-major matrix
 * (rs_a = lda, cs_a = 1): the A operand is only ever broadcast one element
 * at a time, so its layout costs nothing. Every acc element is thus one
 * fma chain over k in order; with acc it continues the chain from the
 * rounded value that C holds, which is exactly the value the register held
 * (f32 both), so splitting K into blocks changes no bit.
 *
 * Before the loop the rows of the next micro-tile down (C + mr * ldc, the
 * tile the driver's M loop hands over next) are prefetched into L2
 * (llvm.prefetch, read, locality 2: prefetcht1): a tile is loaded at its
 * start in later K blocks and stored at its end, and between K blocks a
 * run's whole C panel has passed through the cache, so its rows come from
 * L3 or memory. Fetching the tile's own rows there, right before the loads,
 * hid nothing; fetching the next tile's gives them a whole k loop (kc
 * steps) to arrive. Into L2, not L1 (a prefetch for writing, prefetchw,
 * lands in L1): when C's rows are a multiple of 4 KiB apart (the 8,192-
 * column head chunk) a tile's 2 mr lines share two L1 sets, so lines
 * fetched into L1 a k loop early were evicted before use; L2 keeps them
 * (bench/RESULTS.md session 15: 1024x896x4864 A.B 0.92-0.93x -> 1.00-1.02x
 * OpenBLAS at 1 thread). The last tile of a block prefetches rows it does
 * not own (prefetches never fault).
 * Without FMA in the target the product and sum are two rounded operations
 * (still one fixed order).
 */
#include "cg_gemm.h"

#include <stdio.h>
#include <string.h>

static void add_noalias(Cg *c, LLVMValueRef fn, unsigned idx) {
    unsigned kind = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

LLVMValueRef cg_gemm_ukr(Cg *c, const CgGemmCfg *cfg, int rows, LLVMTypeRef *fty) {
    LLVMTypeRef params[9] = {c->ptr, c->i64, c->i64, c->ptr, c->i64, c->i64, c->ptr, c->i64, c->i32};
    *fty = LLVMFunctionType(c->voidt, params, 9, 0);
    char name[64];
    snprintf(name, sizeof name, "dpoc_gemm_ukr_f32_%dx%d", rows, cfg->nr);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (fn) return fn;
    enum { MAXR = 16, MAXV = 2 };
    int mr = rows, nv = cfg->nr / cfg->vw;
    if (mr < 1 || mr > cfg->mr || mr > MAXR || nv > MAXV) {
        cg_fail(c, "internal error: gemm micro-tile %dx%d too large", cfg->mr, cfg->nr);
        return NULL;
    }
    fn = LLVMAddFunction(c->mod, name, *fty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_noalias(c, fn, 1);
    add_noalias(c, fn, 4);
    add_noalias(c, fn, 7);
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMBuilderRef b = c->b;
    LLVMValueRef A = LLVMGetParam(fn, 0), rs = LLVMGetParam(fn, 1), cs = LLVMGetParam(fn, 2);
    LLVMValueRef B = LLVMGetParam(fn, 3), ldb = LLVMGetParam(fn, 4), kc = LLVMGetParam(fn, 5);
    LLVMValueRef C = LLVMGetParam(fn, 6), ldc = LLVMGetParam(fn, 7), acc_in = LLVMGetParam(fn, 8);
    LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)cfg->vw);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef ldblk = LLVMAppendBasicBlockInContext(c->ctx, fn, "loadc");
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, fn, "pre");
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c->ctx, fn, "k");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "store");

    /* entry: row pointers of C and A, prefetch of the next tile, zero start */
    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef crow[MAXR], arow[MAXR];
    LLVMTypeRef pty;
    LLVMValueRef pf = cg_intrinsic(c, "llvm.prefetch", &c->ptr, 1, &pty);
    for (int i = 0; i < mr; i++) {
        crow[i] = cg_gep(c, c->f32, C, LLVMBuildNSWMul(b, ldc, cg_i64(c, i), ""));
        arow[i] = cg_gep(c, c->f32, A, LLVMBuildNSWMul(b, rs, cg_i64(c, i), ""));
        /* the next micro-tile down (rows mr + i): the driver's next call
         * (for an edge tile of r < mr rows: rows r + i, harmless).
         * Plain (not inbounds) GEPs: past the last tile the address may lie
         * outside C, which a prefetch may name but an inbounds GEP may not */
        LLVMValueRef off = LLVMBuildNSWMul(b, ldc, cg_i64(c, mr + i), "");
        LLVMValueRef nrow = LLVMBuildGEP2(b, c->f32, C, &off, 1, "");
        LLVMValueRef pa[4] = {nrow, LLVMConstInt(c->i32, 0, 0), LLVMConstInt(c->i32, 2, 0), LLVMConstInt(c->i32, 1, 0)};
        LLVMBuildCall2(b, pty, pf, pa, 4, "");
        LLVMValueRef last = cg_i64(c, cfg->nr - 1);
        pa[0] = LLVMBuildGEP2(b, c->f32, nrow, &last, 1, "");
        LLVMBuildCall2(b, pty, pf, pa, 4, "");
    }
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntNE, acc_in, LLVMConstInt(c->i32, 0, 0), ""), ldblk, head);

    LLVMPositionBuilderAtEnd(b, ldblk);
    LLVMValueRef cin[MAXR][MAXV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            cin[i][v] = LLVMBuildLoad2(b, vt, cg_gep(c, c->f32, crow[i], cg_i64(c, v * cfg->vw)), "");
            LLVMSetAlignment(cin[i][v], 4);
        }
    LLVMBuildBr(b, head);

    /* pre: the starting tile (zero or C) */
    LLVMPositionBuilderAtEnd(b, head);
    LLVMValueRef start[MAXR][MAXV];
    LLVMValueRef zero = LLVMConstNull(vt);
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            start[i][v] = LLVMBuildPhi(b, vt, "");
            LLVMValueRef inc[2] = {zero, cin[i][v]};
            LLVMBasicBlockRef from[2] = {entry, ldblk};
            LLVMAddIncoming(start[i][v], inc, from, 2);
        }
    LLVMBuildBr(b, loop);

    /* k loop (kc >= 1) */
    LLVMPositionBuilderAtEnd(b, loop);
    LLVMValueRef kv = LLVMBuildPhi(b, c->i64, "k");
    LLVMValueRef acc[MAXR][MAXV], nxt[MAXR][MAXV], bv[MAXV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = LLVMBuildPhi(b, vt, "acc");
    LLVMValueRef brow = cg_gep(c, c->f32, B, LLVMBuildNSWMul(b, kv, ldb, ""));
    for (int v = 0; v < nv; v++) {
        bv[v] = LLVMBuildLoad2(b, vt, cg_gep(c, c->f32, brow, cg_i64(c, v * cfg->vw)), "b");
        LLVMSetAlignment(bv[v], 4);
    }
    LLVMValueRef koff = LLVMBuildNSWMul(b, kv, cs, "");
    LLVMTypeRef fmaty;
    LLVMValueRef fmaf = cfg->fma ? cg_intrinsic(c, "llvm.fma", &vt, 1, &fmaty) : NULL;
    LLVMValueRef mask = LLVMConstNull(LLVMVectorType(c->i32, (unsigned)cfg->vw));
    for (int i = 0; i < mr; i++) {
        LLVMValueRef s = LLVMBuildLoad2(b, c->f32, cg_gep(c, c->f32, arow[i], koff), "a");
        LLVMValueRef one = LLVMBuildInsertElement(b, LLVMGetUndef(vt), s, LLVMConstInt(c->i32, 0, 0), "");
        LLVMValueRef av = LLVMBuildShuffleVector(b, one, LLVMGetUndef(vt), mask, "");
        for (int v = 0; v < nv; v++) {
            if (fmaf) {
                LLVMValueRef args[3] = {av, bv[v], acc[i][v]};
                nxt[i][v] = LLVMBuildCall2(b, fmaty, fmaf, args, 3, "");
            } else {
                nxt[i][v] = LLVMBuildFAdd(b, acc[i][v], LLVMBuildFMul(b, av, bv[v], ""), "");
            }
        }
    }
    LLVMValueRef k1 = LLVMBuildNSWAdd(b, kv, cg_i64(c, 1), "");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, k1, kc, ""), loop, done);
    LLVMValueRef k0 = cg_i64(c, 0);
    LLVMAddIncoming(kv, (LLVMValueRef[]){k0, k1}, (LLVMBasicBlockRef[]){head, loop}, 2);
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++)
            LLVMAddIncoming(acc[i][v], (LLVMValueRef[]){start[i][v], nxt[i][v]}, (LLVMBasicBlockRef[]){head, loop}, 2);

    /* store the tile */
    LLVMPositionBuilderAtEnd(b, done);
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            LLVMValueRef st = LLVMBuildStore(b, nxt[i][v], cg_gep(c, c->f32, crow[i], cg_i64(c, v * cfg->vw)));
            LLVMSetAlignment(st, 4);
        }
    LLVMBuildRetVoid(b);
    if (saved) LLVMPositionBuilderAtEnd(b, saved);
    return fn;
}
