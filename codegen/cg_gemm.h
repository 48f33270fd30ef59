/* cg_gemm.h — the packed, register-blocked f32 matmul kernel (cg_gemm*.c).
 *
 * cg_kernel.c sends every f32 OP_MATMUL root with non-empty M, N and K here
 * (f64 matmuls of the gradient-check builds keep the plain loop there).
 * The tile shape comes from the target's feature string (CgGemmCfg): the
 * micro-tile is MR rows x NR columns with NR = two vectors, held in
 * 2 x MR vector registers (AVX2: 6 x 16 floats in 12 ymm accumulators;
 * AVX-512: 14 x 32 in 28 zmm; SSE: 6 x 8). cg_gemm.c explains the loops,
 * cg_gemm_pack.c the packed layouts, cg_gemm_ukr.c the micro-kernel.
 *
 * The kernel's work is a list of tiles (batch, N block, M block); a range
 * [begin, end) of it is any run of tiles, and K is never split, so each
 * output element is the same chain of fmas over k = 0..K-1 starting from 0
 * whichever thread computes it and however the range is cut.
 *
 * Epilogues: cg_emit_gemm takes an optional CgGemmEpilogue. When given,
 * every finished output tile (after its last K block, while it is still in
 * cache) is rewritten element by element as C[i] = fn(k, ctx, C[i], flat
 * index of i): the fusion pass hands an elementwise root that reads the
 * matmul (a bias, a residual add, a gradient sum) to the matmul's kernel,
 * and cg_kernel.c evaluates it with cg_eval at that index, the tile's value
 * standing in for the matmul. With stored operands the kernel calls the
 * shared driver with a pointer to a per-kernel function that runs its
 * epilogue over one tile (cg_gemm.c). NULL: plain matmul.
 */
#ifndef DPOC_CG_GEMM_H
#define DPOC_CG_GEMM_H

#include "cg.h"

typedef struct CgGemmCfg {
    int vw;         /* f32 lanes per vector register */
    int mr, nr;     /* micro-tile rows and columns (nr = 2 * vw) */
    int kc;         /* K block: one B micro-panel kc x nr fits L1 */
    int mc_max;     /* rows of an M block (A rows stay in L2 across its N block) */
    int nc_max;     /* columns of an N block (packed B: kc x nc_max on the stack) */
    int nc_max_at;  /* ... when A is transposed (ta = 1): A^T is packed once per N block */
    int fma;        /* the target has fused multiply-add */
} CgGemmCfg;

/* the tiling of one matmul node */
typedef struct CgGemmDims {
    int64_t batch, M, N, K;
    int64_t mc, nc;   /* block sizes actually used (balanced, multiples of mr / nr) */
    int64_t mb, nb;   /* number of M and N blocks (the work units are strips of mr rows per N block) */
    int ta, tb;
} CgGemmDims;

/* tile shape for a target feature string ("+avx2,+fma,-avx512f,..."; NULL: SSE only) */
void cg_gemm_config(const char *features, CgGemmCfg *cfg);
/* 1 when DPOC_NO_GEMM (set and not "0") turns the micro-kernel paths off */
int cg_gemm_off(void);
/* 1 when the matmul at root goes through cg_emit_gemm */
int cg_gemm_applies(const IrGraph *g, int32_t root);
void cg_gemm_dims(const CgGemmCfg *cfg, const IrGraph *g, int32_t root, CgGemmDims *d);
/* the kernel's work units (tiles) */
int64_t cg_gemm_work(const Cg *c, const IrGraph *g, int32_t root);

/* an elementwise epilogue on finished output tiles (see above) */
typedef struct CgGemmEpilogue {
    LLVMValueRef (*fn)(CgKern *k, void *ctx, LLVMValueRef value, LLVMValueRef flat);
    void *ctx;
} CgGemmEpilogue;

/* the body of a kernel computing matmul node mm (the root, or the member an
 * epilogue reads) over tiles [begin, end); the result goes to k->out_ptr */
void cg_emit_gemm(CgKern *k, int32_t mm, LLVMValueRef begin, LLVMValueRef end, const CgGemmEpilogue *epi);

/* ceil(x / q) for x >= 0, q > 0 (i64 values; folds when both are constants) */
LLVMValueRef cg_gemm_ceil_div(Cg *c, LLVMValueRef x, LLVMValueRef q);

/* ---- pieces (cg_gemm_pack.c, cg_gemm_ukr.c) ---- */
/* the f32 micro-kernel function of this tile shape over the first rows
 * (1..mr) of the tile (emitted once per module and row count):
 * void ukr(ptr a, i64 rs_a, i64 cs_a, ptr b, i64 ldb, i64 kc, ptr c, i64 ldc, i32 accumulate)
 * c[i*ldc + j] (+)= sum_k a[i*rs_a + k*cs_a] * b[k*ldb + j], i < rows, j < nr */
LLVMValueRef cg_gemm_ukr(Cg *c, const CgGemmCfg *cfg, int rows, LLVMTypeRef *fty);

/* one matmul as the loops and the packing routines see it: dims as i64
 * values (constants in a kernel of its own, parameters in a shared driver)
 * and the operands' base pointers when they are stored (NULL: an element is
 * evaluated inline through cg_eval of the matmul's input) */
typedef struct CgGemmOps {
    CgKern *k;
    int32_t mm;         /* the matmul node (-1 in a shared driver) */
    const CgGemmCfg *cfg;
    LLVMValueRef M, N, K;
    int ta, tb;
    LLVMValueRef aptr, bptr, cptr;
    LLVMValueRef bat;   /* batch index of the current tile */
    LLVMValueRef epi_fn, epi_args; /* shared driver: the epilogue callback (may be null) and its argument */
    int mask_dim;       /* matmul_masked: 0 rows of C, 1 the contraction; -1 a plain matmul */
    LLVMValueRef mptr;  /* the mask when stored (a shared driver's); NULL: evaluated through cg_eval */
    LLVMValueRef kidx;  /* contraction mask: the current K block's live k (i64), read by the packs; else NULL */
} CgGemmOps;

/* packs B[p0 .. p0+kc) x [n0 .. n0+ncur) into dst: panel j (nr columns)
 * at dst + j*kc*nr, row k of it at + k*nr; columns >= N are zero */
void cg_gemm_pack_b(const CgGemmOps *o, LLVMValueRef dst, LLVMValueRef p0, LLVMValueRef kc, LLVMValueRef n0,
                    LLVMValueRef ncur);
/* packs A rows [r0 .. r0+rows) x [p0 .. p0+kc) into dst: panel i (mr rows)
 * at dst + i*kc*mr, column k of it at + k*mr; rows >= M are zero */
void cg_gemm_pack_a(const CgGemmOps *o, LLVMValueRef dst, LLVMValueRef r0, LLVMValueRef rows, LLVMValueRef p0,
                    LLVMValueRef kc);

#endif
