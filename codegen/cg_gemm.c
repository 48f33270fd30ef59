/* cg_gemm.c — an f32 matmul kernel: blocked loops around packed panels.
 *
 * C[b] = op(A[b]) . op(B[b]) with C [M, N], contraction K, op = transpose
 * or not per operand (ta, tb), batch b over the leading dims (the IR makes
 * them equal: broadcasting is an explicit op before the matmul). N is cut
 * into ceil(N / nc_max) blocks (nc_max_at when ta = 1, below) of whole
 * micro-panels (nr columns) whose
 * panel counts differ by at most one (block i: panels [i np / nb,
 * (i+1) np / nb) of np): 4864 columns are 2 blocks of 16 panels and 8 of
 * 15, not 9 of 16 and a short one of 8, which left one of two threads 5%
 * more columns. The work of a call is a list of row strips u = (b, N block,
 * micro-panel of mr rows), micro-panel fastest, so a thread's share of the
 * units is a share of the flops to within a strip and a panel per block
 * (with M blocks as units, a 1024-row matmul had 11 and two threads split
 * them 6:5). A thread that
 * takes part of a run packs that run's B block itself, so when M is short
 * (at most half the N block) and there are fewer than GEMM_MIN_RUNS runs,
 * the N block is halved, in micro-tiles, until there are or it cannot be
 * cut: threads then mostly take whole runs, and the extra A packing (M x K
 * per block) costs less than the B packing saved. The tiling changes no
 * result (below). For a range [begin, end) of strips:
 *
 *   for each run of strips with the same (b, N block n0..n0+nc), rows r0..r1:
 *     for each group of G K blocks (K cut into equal blocks, multiples of 8, <= KC):
 *       pack B[p0.., n0..] of each of the group's blocks into Bp  (cg_gemm_pack.c)
 *       for each M block m0..m0+mc of the rows r0..r1 (mc balanced as N's):
 *         for each K block p0..p0+kc of the group:
 *           A: read in place when A is row-major and stored (rows of a full
 *              micro-panel are mr pointers, stride K) unless K is a multiple
 *              of 1024 (rows 4 KiB apart share cache sets and evict each
 *              other); otherwise, or for the last partial micro-panel, packed
 *              into Ap / Ae (zero rows)
 *           for each nr-wide panel j of Bp, each mr-high panel i of the block:
 *             micro-kernel on C[m0+i.., n0+j..], accumulating when p0 > 0
 *
 * G is 1 (one K block at a time, the classic order) unless A is row-major
 * and read in place, where G = K_GROUP_BLOCKS and the M block is
 * K_GROUP_MC_PANELS micro-panels: the M block's C tiles (112 x 512 floats on
 * AVX-512) then stay in L2 across the group's K blocks instead of the
 * run's whole C panel (1,024 rows: 2 MiB) passing through the cache once
 * per K block and coming back from L3 or memory — on the 0.5B shapes with
 * K = 896 that traffic cost 4-7% (bench/RESULTS.md, session 16). Packing is
 * unchanged (each B block once per run, each A block once per M block and
 * K block); only the order of the tiles' K blocks moves, which changes no
 * bit (below). A^T (ta = 1) is packed once per N block, all of it: its N
 * blocks are up to nc_max_at (twice nc_max) columns, which halves that
 * packing (4.5% of the time of the 896 x 4864 x 1024 weight gradient), and
 * the wider C panel runs in groups of K_GROUP_AT_BLOCKS, so the packed B
 * of a group stays 2 MiB (session 17).
 *
 * Packing pays when many panels of the other operand reuse a packed one.
 * When few do (plan_in_place), a stored operand is read where it lies: a
 * row-major B (tb = 0) whose M has at most IN_PLACE_B_PANELS micro-panels
 * (its k rows are nr consecutive floats, stride N: only a partial last
 * panel is packed), and A^T (ta = 1) when an N block has at most
 * IN_PLACE_A_PANELS panels (a micro-panel's column k is mr consecutive
 * floats, stride M).
 * Those are the small weight gradients of narrow models: A^T.B with M = 32
 * and N = 64 spent longer packing both operands than multiplying them.
 *
 * A micro-tile of all nr columns whose rows are mr, or exactly 1, 2, 4 or
 * 8 (< mr), runs on C itself with the micro-kernel of that many rows
 * (cg_gemm_ukr.c), and a partial micro-panel of A that is read in place
 * stays in place (no Ae copy): it touches no row past the last (M = 32 on
 * 14-row tiles is 14 + 14 + 4). Any other micro-tile that
 * sticks out of C (last rows or columns) runs on a small stack tile Ct: C's
 * valid part is copied in (p0 > 0), the micro-kernel of the fewest rows
 * that cover the valid ones (1, 2, 4, 8 below mr, else mr) runs with
 * ldc = nr, and the valid part is copied back. Every
 * output element therefore sees the same fma chain over k = 0..K-1 in every
 * path, whichever tile, K block or thread computes it: results are bitwise
 * independent of how the runtime splits the tiles, and K is never split
 * between threads.
 *
 * Scratch is on the stack of the calling thread (allocas in the entry
 * block of the kernel or shared driver, 64-byte aligned): Bp G x kc x
 * nc_max (512 KiB per K block on AVX2 and AVX-512, 1 MiB when ta = 1: 2 MiB
 * for a group), Ap
 * mc_max x kc only when A must be packed, Ar mc_max x (kc + 16) only when
 * A's rows are copied, Ae mr x kc, Ct mr x nr: at most ~2.3 MiB. The
 * runtime's pool threads are made with an 8 MiB stack, the calling
 * thread's stack limit is raised to 8 MiB where it is lower
 * (tpool_stack_ensure, runtime/threadpool.c), and a kernel is a leaf
 * (nothing else is on the stack above it), so this is safe; it needs no
 * arena slot, no per-thread state in the ABI and nothing from the schedule.
 * The B block is the big one on purpose: the cost of packing A (when it is
 * packed) is O(1 / nc) per flop, the cost of packing B O(1 / M).
 *
 * Shared drivers: when both operands are stored (plain memory), these loops
 * are not emitted in the matmul's kernel: the kernel calls
 * dpoc_gemm_f32_<ta><tb>[_rowcopy][_ain][_bin](A, B, C, M, N, K, mc, nb,
 * begin, end, epi, p) (_ain, _bin: A^T, B read in place), emitted once per
 * module and variant with the shape as
 * parameters (noinline), so the module holds a handful of GEMM loops
 * however many shapes the model has. An epilogue kernel passes epi, a small
 * function of its own (<kernel fn>_epi) that runs the epilogue over one
 * finished tile, and its argument array p; the driver calls it after each
 * tile's last K block (NULL: none). A matmul with an operand computed
 * inline keeps the loops in its own kernel with the shape as constants;
 * both go through emit_loops, whose dims are LLVM values either way.
 *
 * Tile shape (cg_gemm_config): vector width from the feature string (+avx512f:
 * 16 lanes and 32 registers; +avx: 8 lanes, 16 registers; else 4 lanes),
 * nr = 2 vectors, mr = (registers - 3) / 2 (the accumulators plus two B
 * vectors and one broadcast): 6 x 16 on AVX2, 14 x 32 on AVX-512.
 *
 * matmul_masked: with a row mask the driver skips each micro-panel whose
 * rows are all dead (mask <= 0) and, after a tile's last K block, sets the
 * tile's dead rows to 0; with a contraction mask each K block first lists
 * its live k (kidx), the packs gather those rows of B and columns of A, the
 * micro-kernel runs over that many, a block without any is skipped (the
 * first block that has some starts the tiles at zero) and a run without
 * any live k is zeroed. Live elements see the dense GEMM's fma chain minus
 * the dead terms. Masked variants of the shared drivers
 * (..._maskrows, ..._maskk) take the mask as a 13th argument; A is never
 * read in place under a contraction mask. They never have an epilogue.
 *
 * DPOC_NO_GEMM=1 in the compiler's environment (cg_gemm_off) sends f32
 * matmuls back to the plain loop of cg_kernel.c and attention back to
 * cg_attention.c's plain loops (a debugging and benchmarking switch).
 */
#include "cg_gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_feature(const char *fs, const char *name) {
    size_t n = strlen(name);
    for (const char *p = fs; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n + 1 && p[0] == '+' && memcmp(p + 1, name, n) == 0) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

void cg_gemm_config(const char *features, CgGemmCfg *cfg) {
    int regs = 16;
    cfg->vw = 4;
    if (has_feature(features, "avx512f")) {
        cfg->vw = 16;
        regs = 32;
    } else if (has_feature(features, "avx") || has_feature(features, "avx2")) {
        cfg->vw = 8;
    }
    cfg->fma = has_feature(features, "fma") || has_feature(features, "avx512f");
    cfg->nr = 2 * cfg->vw;
    cfg->mr = (regs - 3) / 2;
    cfg->kc = 256;
    cfg->mc_max = cfg->mr * 16;
    cfg->nc_max = (512 * 1024 / 4 / cfg->kc) / cfg->nr * cfg->nr;
    cfg->nc_max_at = 2 * cfg->nc_max;
}

int cg_gemm_off(void) {
    const char *off = getenv("DPOC_NO_GEMM");
    return off && *off && strcmp(off, "0") != 0;
}

int cg_gemm_applies(const IrGraph *g, int32_t root) {
    const IrNode *n = ir_node(g, root);
    if (!ir_op_is_matmul(n->op) || n->dtype != DT_F32 || cg_gemm_off()) return 0;
    const IrNode *a = ir_node(g, n->in[0]);
    int r = n->ndim;
    int64_t K = n->attr[0] ? a->shape[r - 2] : a->shape[r - 1];
    return n->shape[r - 2] > 0 && n->shape[r - 1] > 0 && K > 0;
}

enum { GEMM_MIN_RUNS = 4 }; /* (batch, N block) runs wanted when M is short (cg_gemm_dims) */

static void balance(int64_t len, int64_t max, int64_t unit, int64_t *size, int64_t *count) {
    int64_t k = (len + max - 1) / max;
    int64_t s = (len + k - 1) / k;
    s = (s + unit - 1) / unit * unit;
    *size = s;
    *count = (len + s - 1) / s;
}

void cg_gemm_dims(const CgGemmCfg *cfg, const IrGraph *g, int32_t root, CgGemmDims *d) {
    const IrNode *n = ir_node(g, root);
    const IrNode *a = ir_node(g, n->in[0]);
    int r = n->ndim;
    memset(d, 0, sizeof *d);
    d->ta = (int)n->attr[0];
    d->tb = (int)n->attr[1];
    d->M = n->shape[r - 2];
    d->N = n->shape[r - 1];
    d->K = d->ta ? a->shape[r - 2] : a->shape[r - 1];
    d->batch = 1;
    for (int i = 0; i < r - 2; i++) d->batch *= n->shape[i];
    balance(d->M, cfg->mc_max, cfg->mr, &d->mc, &d->mb);
    int64_t np = (d->N + cfg->nr - 1) / cfg->nr, most = (d->ta ? cfg->nc_max_at : cfg->nc_max) / cfg->nr;
    d->nb = (np + most - 1) / most;
    /* Few (batch, N block) runs and a short M: threads splitting a run
     * along M would each pack the run's whole B block (K x nc), so the N
     * block is halved, in micro-tiles, while there are fewer than
     * GEMM_MIN_RUNS runs and an extra block's A packing (K x M) costs at
     * most half the B packing it saves. */
    while (d->batch * d->nb < GEMM_MIN_RUNS) {
        int64_t widest = (np + d->nb - 1) / d->nb;
        if (widest < 2 || 2 * d->M > widest * cfg->nr) break;
        d->nb = (np + (widest + 1) / 2 - 1) / ((widest + 1) / 2);
    }
    d->nc = (np + d->nb - 1) / d->nb * cfg->nr;
}

int64_t cg_gemm_work(const Cg *c, const IrGraph *g, int32_t root) {
    CgGemmCfg cfg;
    CgGemmDims d;
    cg_gemm_config(c->features, &cfg);
    cg_gemm_dims(&cfg, g, root, &d);
    return d.batch * d.nb * ((d.M + cfg.mr - 1) / cfg.mr);
}

LLVMValueRef cg_gemm_ceil_div(Cg *c, LLVMValueRef x, LLVMValueRef q) {
    LLVMBuilderRef b = c->b;
    return LLVMBuildSDiv(b, LLVMBuildNSWAdd(b, x, LLVMBuildNSWSub(b, q, cg_i64(c, 1), ""), ""), q, "");
}

/* flat index of A(row, p0) in the current batch: A stored [M, K] (ta = 0)
 * or [K, M] (ta = 1) */
static LLVMValueRef a_flat_direct(const CgGemmOps *o, LLVMValueRef row, LLVMValueRef p0) {
    LLVMBuilderRef b = o->k->c->b;
    LLVMValueRef base = LLVMBuildNSWMul(b, o->bat, LLVMBuildNSWMul(b, o->M, o->K, ""), "");
    LLVMValueRef in = o->ta ? LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, p0, o->M, ""), row, "")
                            : LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, row, o->K, ""), p0, "");
    return LLVMBuildNSWAdd(b, base, in, "");
}

/* flat index of B(p0, col) in the current batch, B stored [K, N] (tb = 0) */
static LLVMValueRef b_flat_direct(const CgGemmOps *o, LLVMValueRef p0, LLVMValueRef col) {
    LLVMBuilderRef b = o->k->c->b;
    LLVMValueRef base = LLVMBuildNSWMul(b, o->bat, LLVMBuildNSWMul(b, o->K, o->N, ""), "");
    return LLVMBuildNSWAdd(b, base, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, p0, o->N, ""), col, ""), "");
}

/* A rows [m0, m0 + rows) x [p0, p0 + kc) to dst (row stride ldr), by vectors */
static void copy_rows(const CgGemmOps *o, LLVMValueRef dst, int64_t ldr, LLVMValueRef m0, LLVMValueRef rows,
                      LLVMValueRef p0, LLVMValueRef kc) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    int vw = o->cfg->vw;
    LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)vw);
    CgFor i, q;
    cg_for_begin(c, &i, cg_i64(c, 0), rows, "ri");
    LLVMValueRef src = cg_gep(c, c->f32, o->aptr, a_flat_direct(o, LLVMBuildNSWAdd(b, m0, i.iv, ""), p0));
    LLVMValueRef drow = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, i.iv, cg_i64(c, ldr), ""));
    cg_for_begin(c, &q, cg_i64(c, 0), LLVMBuildSDiv(b, kc, cg_i64(c, vw), ""), "rq");
    LLVMValueRef off = LLVMBuildNSWMul(b, q.iv, cg_i64(c, vw), "");
    LLVMValueRef x = cg_load(k, vt, cg_gep(c, c->f32, src, off), 0);
    LLVMValueRef st = LLVMBuildStore(b, x, cg_gep(c, c->f32, drow, off));
    LLVMSetAlignment(st, 4);
    cg_for_end(c, &q);
    CgFor r; /* the last kc % vw columns */
    cg_for_begin(c, &r, LLVMBuildNSWMul(b, LLVMBuildSDiv(b, kc, cg_i64(c, vw), ""), cg_i64(c, vw), ""), kc, "rr");
    LLVMBuildStore(b, cg_load(k, c->f32, cg_gep(c, c->f32, src, r.iv), 0), cg_gep(c, c->f32, drow, r.iv));
    cg_for_end(c, &r);
    cg_for_end(c, &i);
}

/* rows x cols floats between C (row stride ldc) and the edge tile (stride nr) */
static void copy_tile(CgKern *k, LLVMValueRef dst, LLVMValueRef ldd, LLVMValueRef src, LLVMValueRef lds,
                      LLVMValueRef rows, LLVMValueRef cols, int to_c) {
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    CgFor i, j;
    cg_for_begin(c, &i, cg_i64(c, 0), rows, "ci");
    LLVMValueRef drow = cg_gep(c, c->f32, dst, LLVMBuildNSWMul(b, i.iv, ldd, ""));
    LLVMValueRef srow = cg_gep(c, c->f32, src, LLVMBuildNSWMul(b, i.iv, lds, ""));
    cg_for_begin(c, &j, cg_i64(c, 0), cols, "cj");
    LLVMValueRef v;
    if (to_c) {
        v = LLVMBuildLoad2(b, c->f32, cg_gep(c, c->f32, srow, j.iv), "");
        cg_store(k, v, cg_gep(c, c->f32, drow, j.iv));
    } else {
        v = cg_load(k, c->f32, cg_gep(c, c->f32, srow, j.iv), 1);
        LLVMBuildStore(b, v, cg_gep(c, c->f32, drow, j.iv));
    }
    cg_for_end(c, &j);
    cg_for_end(c, &i);
}

/* the epilogue over a finished tile: rows m0..m0+mcur, columns n0..n0+ncur */
static void emit_epilogue(const CgGemmOps *o, const CgGemmEpilogue *epi, LLVMValueRef cbase, LLVMValueRef m0,
                          LLVMValueRef mcur, LLVMValueRef n0, LLVMValueRef ncur) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    CgFor i, j;
    cg_for_begin(c, &i, cg_i64(c, 0), mcur, "ei");
    LLVMValueRef row = LLVMBuildNSWAdd(b, cbase, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, m0, i.iv, ""), o->N, ""), "");
    cg_for_begin(c, &j, cg_i64(c, 0), ncur, "ej");
    LLVMValueRef flat = LLVMBuildNSWAdd(b, row, LLVMBuildNSWAdd(b, n0, j.iv, ""), "");
    LLVMValueRef p = cg_gep(c, c->f32, o->cptr, flat);
    cg_store(k, epi->fn(k, epi->ctx, cg_load(k, c->f32, p, 1), flat), p);
    cg_for_end(c, &j);
    cg_for_end(c, &i);
}

/* void epi(ptr p, i64 cbase, i64 m0, i64 mcur, i64 n0, i64 ncur): the
 * epilogue of one kernel over one finished tile, called by a shared driver
 * with the kernel's argument array p */
static LLVMTypeRef epilogue_fn_type(Cg *c) {
    LLVMTypeRef params[6] = {c->ptr, c->i64, c->i64, c->i64, c->i64, c->i64};
    return LLVMFunctionType(c->voidt, params, 6, 0);
}

/* the epilogue function of kernel k (a matmul of N columns): its own entry
 * block and lazily loaded argument pointers, the same element evaluator */
static LLVMValueRef epilogue_function(CgKern *k, const CgGemmEpilogue *epi, LLVMValueRef N) {
    Cg *c = k->c;
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMValueRef kfn = LLVMGetBasicBlockParent(saved);
    char name[160];
    snprintf(name, sizeof name, "%s_epi", LLVMGetValueName(kfn));
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, epilogue_fn_type(c));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    CgKern e = *k;
    e.ptr = calloc((size_t)k->sig->nargs, sizeof *e.ptr);
    if (!e.ptr) {
        cg_fail(c, "out of memory");
        return NULL;
    }
    e.entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    e.args = LLVMGetParam(fn, 0);
    LLVMPositionBuilderAtEnd(c->b, e.entry);
    e.out_ptr = LLVMBuildLoad2(c->b, c->ptr, e.args, "out");
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, start);
    CgGemmOps o = {.k = &e, .mm = k->epi_mm, .N = N, .cptr = e.out_ptr};
    emit_epilogue(&o, epi, LLVMGetParam(fn, 1), LLVMGetParam(fn, 2), LLVMGetParam(fn, 3), LLVMGetParam(fn, 4),
                  LLVMGetParam(fn, 5));
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, e.entry);
    LLVMBuildBr(c->b, start);
    free(e.ptr);
    LLVMPositionBuilderAtEnd(c->b, saved);
    return fn;
}

/* i1: the mask element at idx is > 0 (a live row or k of a masked matmul) */
static LLVMValueRef mask_live(const CgGemmOps *o, LLVMValueRef idx) {
    CgKern *k = o->k;
    Cg *c = k->c;
    if (!o->mptr) return cg_eval_positive(k, ir_node(k->g, o->mm)->in[2], idx);
    LLVMValueRef v = cg_load(k, c->f32, cg_gep(c, c->f32, o->mptr, idx), 0);
    return LLVMBuildFCmp(c->b, LLVMRealOGT, v, LLVMConstReal(c->f32, 0.0), "live");
}

/* rows [r0, r0 + rows) x columns [n0, n0 + ncur) of C set to 0 where the
 * row mask is not live (all of them when all is set) */
static void zero_dead_rows(const CgGemmOps *o, LLVMValueRef cbase, LLVMValueRef r0, LLVMValueRef rows,
                           LLVMValueRef n0, LLVMValueRef ncur, int all) {
    Cg *c = o->k->c;
    LLVMBuilderRef b = c->b;
    CgFor i, j;
    LLVMBasicBlockRef join = NULL;
    cg_for_begin(c, &i, cg_i64(c, 0), rows, "zi");
    LLVMValueRef row = LLVMBuildNSWAdd(b, r0, i.iv, "");
    if (!all) cg_if_begin(c, LLVMBuildNot(b, mask_live(o, row), ""), &join);
    LLVMValueRef at = LLVMBuildNSWAdd(b, cbase, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, row, o->N, ""), n0, ""), "");
    LLVMValueRef p = cg_gep(c, c->f32, o->cptr, at);
    cg_for_begin(c, &j, cg_i64(c, 0), ncur, "zj");
    cg_store(o->k, LLVMConstReal(c->f32, 0.0), cg_gep(c, c->f32, p, j.iv));
    cg_for_end(c, &j);
    if (!all) cg_if_end(c, join);
    cg_for_end(c, &i);
}

/* i1: some row of the micro-panel [row, row + mrc) is live (mrc <= mr) */
static LLVMValueRef panel_live(const CgGemmOps *o, LLVMValueRef row, LLVMValueRef mrc) {
    Cg *c = o->k->c;
    LLVMBuilderRef b = c->b;
    LLVMValueRef any = LLVMConstInt(c->i1, 0, 0);
    LLVMValueRef last = LLVMBuildNSWSub(b, o->M, cg_i64(c, 1), "");
    for (int i = 0; i < o->cfg->mr; i++) {
        LLVMValueRef valid = LLVMBuildICmp(b, LLVMIntSLT, cg_i64(c, i), mrc, "");
        LLVMValueRef at = cg_smin(c, LLVMBuildNSWAdd(b, row, cg_i64(c, i), ""), last);
        any = LLVMBuildOr(b, any, LLVMBuildAnd(b, valid, mask_live(o, at), ""), "");
    }
    return any;
}

/* i1: a partial micro-panel of `rows` rows (0 < rows < mr) that a smaller
 * micro-kernel covers exactly (1, 2, 4, 8 rows): it reads A and writes C
 * in place, since it touches no row past the last */
static LLVMValueRef exact_rows(Cg *c, LLVMValueRef rows) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef pow2 = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildAnd(b, rows, LLVMBuildNSWSub(b, rows, cg_i64(c, 1), ""), ""),
                                      cg_i64(c, 0), "");
    return LLVMBuildAnd(b, pow2, LLVMBuildICmp(b, LLVMIntSLT, rows, cg_i64(c, 32), ""), "");
}

/* Calls the micro-kernel for a micro-panel of mrc rows, then branches to
 * after: exact, mrc is mr or one of the smaller kernels' row counts (1, 2,
 * 4, 8 below mr) and that kernel runs; otherwise the kernel of the fewest
 * rows, a power of two below mr, that covers mrc (else mr's), whose rows
 * past mrc land in the stack tile and are dropped. */
static void call_by_rows(Cg *c, int mr, LLVMTypeRef ukty, LLVMValueRef ukr, const LLVMValueRef *ukr_rows,
                         LLVMValueRef mrc, LLVMValueRef *args, int exact, LLVMBasicBlockRef after) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(b));
    LLVMBasicBlockRef bmr = LLVMAppendBasicBlockInContext(c->ctx, fn, "mrrows");
    LLVMValueRef sw = LLVMBuildSwitch(b, mrc, bmr, (unsigned)mr);
    for (int r = 1; r < mr && r < 32; r *= 2) {
        LLVMBasicBlockRef br = LLVMAppendBasicBlockInContext(c->ctx, fn, "fewrows");
        for (int q = exact ? r : r / 2 + 1; q <= r; q++) LLVMAddCase(sw, cg_i64(c, q), br);
        LLVMPositionBuilderAtEnd(b, br);
        LLVMBuildCall2(b, ukty, ukr_rows[r], args, 9, "");
        LLVMBuildBr(b, after);
    }
    LLVMPositionBuilderAtEnd(b, bmr);
    LLVMBuildCall2(b, ukty, ukr, args, 9, "");
    LLVMBuildBr(b, after);
}

/* scratch sizes (floats) and how A is read: what the loops need to know at
 * compile time */
typedef struct GemmPlan {
    int a_direct;   /* A stored: full micro-panels read in place (plan_in_place) */
    int a_copy;     /* ... through a padded copy of the M block's rows (ta = 0) */
    int b_direct;   /* B stored [K, N]: full nr-column panels read in place */
    int kgroup;     /* K blocks packed together, their tiles run per M block */
    int64_t kcmax, ncmax, mcmax;
} GemmPlan;

/* The loops of one emit_loops call that every K block's tiles share */
typedef struct TileCtx {
    CgGemmOps *o;
    const GemmPlan *pl;
    LLVMValueRef Ap, Ae, Ar, Ct, plive, cbase, n0, ncur, nbfull;
    int64_t ldr;
    LLVMTypeRef ukty;
    LLVMValueRef ukr, ukr_rows[32];
} TileCtx;

/* One K block [p0, p0 + kc) of the M block [m0, m0 + mcur): A packed (or
 * read in place), then the micro-kernel over every nr x mr tile, its B
 * panels in Bq; kk the rows the packs and micro-kernel see (the live k
 * under a contraction mask), accum whether the tiles continue C */
static void emit_block_tiles(const TileCtx *x, LLVMValueRef Bq, LLVMValueRef m0, LLVMValueRef mcur, LLVMValueRef p0,
                             LLVMValueRef kc, LLVMValueRef kk, LLVMValueRef accum) {
    CgGemmOps *o = x->o;
    const GemmPlan *pl = x->pl;
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    int mr = o->cfg->mr, nr = o->cfg->nr;
    LLVMValueRef Ap = x->Ap, Ae = x->Ae, Ar = x->Ar, Ct = x->Ct, plive = x->plive, cbase = x->cbase;
    LLVMValueRef n0 = x->n0, ncur = x->ncur, nbfull = x->nbfull, ukr = x->ukr;
    const LLVMValueRef *ukr_rows = x->ukr_rows;
    LLVMTypeRef ukty = x->ukty;
    int64_t ldr = x->ldr;
    LLVMValueRef i64z = cg_i64(c, 0);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(b));
    LLVMValueRef mfull = LLVMBuildNSWMul(b, LLVMBuildSDiv(b, mcur, cg_i64(c, mr), ""), cg_i64(c, mr), "");
    CgFor jr, ir;
    LLVMBasicBlockRef join;
    if (pl->a_direct) {
        /* only a partial last micro-panel is packed (zero rows) */
        LLVMValueRef part = LLVMBuildNSWSub(b, mcur, mfull, "");
        LLVMValueRef packed = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGT, part, i64z, ""),
                                           LLVMBuildNot(b, exact_rows(c, part), ""), "");
        cg_if_begin(c, packed, &join);
        cg_gemm_pack_a(o, Ae, LLVMBuildNSWAdd(b, m0, mfull, ""), part, p0, kc);
        cg_if_end(c, join);
        if (pl->a_copy) copy_rows(o, Ar, ldr, m0, mcur, p0, kc);
    } else {
        cg_gemm_pack_a(o, Ap, m0, mcur, p0, kk);
    }
    LLVMValueRef npan = cg_gemm_ceil_div(c, ncur, cg_i64(c, nr));
    LLVMValueRef mpan = cg_gemm_ceil_div(c, mcur, cg_i64(c, mr));
    cg_for_begin(c, &jr, i64z, npan, "jr");
    LLVMValueRef j0 = LLVMBuildNSWMul(b, jr.iv, cg_i64(c, nr), "");
    LLVMValueRef nrc = cg_smin(c, cg_i64(c, nr), LLVMBuildNSWSub(b, ncur, j0, ""));
    LLVMValueRef bpan, ldb = cg_i64(c, nr);
    if (pl->b_direct) {
        LLVMValueRef whole = LLVMBuildICmp(b, LLVMIntSLT, j0, nbfull, "");
        LLVMValueRef inplace = cg_gep(c, c->f32, o->bptr, b_flat_direct(o, p0, LLVMBuildNSWAdd(b, n0, j0, "")));
        bpan = LLVMBuildSelect(b, whole, inplace, Bq, "");
        ldb = LLVMBuildSelect(b, whole, o->N, ldb, "");
    } else {
        bpan = cg_gep(c, c->f32, Bq, LLVMBuildNSWMul(b, jr.iv, LLVMBuildNSWMul(b, kk, cg_i64(c, nr), ""), ""));
    }
    cg_for_begin(c, &ir, i64z, mpan, "ir");
    LLVMValueRef i0 = LLVMBuildNSWMul(b, ir.iv, cg_i64(c, mr), "");
    LLVMValueRef mrc = cg_smin(c, cg_i64(c, mr), LLVMBuildNSWSub(b, mcur, i0, ""));
    LLVMValueRef row = LLVMBuildNSWAdd(b, m0, i0, "");
    /* mr rows, or a row count some micro-kernel covers exactly: A read in
     * place stays in place, and with all nr columns the tile runs on C */
    LLVMValueRef rows_fit = LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntEQ, mrc, cg_i64(c, mr), ""), exact_rows(c, mrc), "");
    /* A operand of this micro-panel */
    LLVMValueRef ap, rs, cs;
    if (pl->a_direct) {
        LLVMValueRef fullrows = rows_fit;
        LLVMValueRef inplace = pl->a_copy ? cg_gep(c, c->f32, Ar, LLVMBuildNSWMul(b, i0, cg_i64(c, ldr), ""))
                                          : cg_gep(c, c->f32, o->aptr, a_flat_direct(o, row, p0));
        ap = LLVMBuildSelect(b, fullrows, inplace, Ae, "");
        if (o->ta) { /* A stored [K, M]: row i of the panel at +i, column k at +k M */
            rs = cg_i64(c, 1);
            cs = LLVMBuildSelect(b, fullrows, o->M, cg_i64(c, mr), "");
        } else {
            rs = LLVMBuildSelect(b, fullrows, pl->a_copy ? cg_i64(c, ldr) : o->K, cg_i64(c, 1), "");
            cs = LLVMBuildSelect(b, fullrows, cg_i64(c, 1), cg_i64(c, mr), "");
        }
    } else {
        ap = cg_gep(c, c->f32, Ap, LLVMBuildNSWMul(b, ir.iv, LLVMBuildNSWMul(b, kk, cg_i64(c, mr), ""), ""));
        rs = cg_i64(c, 1);
        cs = cg_i64(c, mr);
    }
    LLVMValueRef cflat = LLVMBuildNSWAdd(b, cbase, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, row, o->N, ""),
                                                                  LLVMBuildNSWAdd(b, n0, j0, ""), ""), "");
    LLVMValueRef cp = cg_gep(c, c->f32, o->cptr, cflat);
    LLVMValueRef full = LLVMBuildAnd(b, rows_fit, LLVMBuildICmp(b, LLVMIntEQ, nrc, cg_i64(c, nr), ""), "");
    LLVMBasicBlockRef bfull = LLVMAppendBasicBlockInContext(c->ctx, fn, "full");
    LLVMBasicBlockRef bedge = LLVMAppendBasicBlockInContext(c->ctx, fn, "edge");
    LLVMBasicBlockRef bnext = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    if (plive) { /* a micro-panel of dead rows is skipped (zeroed after the last K block) */
        LLVMBasicBlockRef blive = LLVMAppendBasicBlockInContext(c->ctx, fn, "livepanel");
        LLVMValueRef any = LLVMBuildLoad2(b, c->i1, LLVMBuildGEP2(b, c->i1, plive, &ir.iv, 1, ""), "");
        LLVMBuildCondBr(b, any, blive, bnext);
        LLVMPositionBuilderAtEnd(b, blive);
    }
    LLVMBuildCondBr(b, full, bfull, bedge);
    LLVMPositionBuilderAtEnd(b, bfull);
    LLVMValueRef args[9] = {ap, rs, cs, bpan, ldb, kk, cp, o->N, accum};
    call_by_rows(c, mr, ukty, ukr, ukr_rows, mrc, args, 1, bnext);
    LLVMPositionBuilderAtEnd(b, bedge);
    cg_if_begin(c, LLVMBuildICmp(b, LLVMIntNE, accum, LLVMConstInt(c->i32, 0, 0), ""), &join);
    copy_tile(k, Ct, cg_i64(c, nr), cp, o->N, mrc, nrc, 0);
    cg_if_end(c, join);
    LLVMValueRef eargs[9] = {ap, rs, cs, bpan, ldb, kk, Ct, cg_i64(c, nr), accum};
    LLVMBasicBlockRef bdone = LLVMAppendBasicBlockInContext(c->ctx, fn, "edgedone");
    call_by_rows(c, mr, ukty, ukr, ukr_rows, mrc, eargs, 0, bdone);
    LLVMPositionBuilderAtEnd(b, bdone);
    copy_tile(k, cp, o->N, Ct, cg_i64(c, nr), mrc, nrc, 1);
    LLVMBuildBr(b, bnext);
    LLVMPositionBuilderAtEnd(b, bnext);
    cg_for_end(c, &ir);
    cg_for_end(c, &jr);
}

/* The blocked loops over tiles [begin, end) (file comment), for the dims
 * and operands in o, mc the M block size, nb the number of N blocks */
static void emit_loops(CgGemmOps *o, const GemmPlan *pl, LLVMValueRef mc, LLVMValueRef nb, LLVMValueRef begin,
                       LLVMValueRef end, const CgGemmEpilogue *epi) {
    CgKern *k = o->k;
    Cg *c = k->c;
    LLVMBuilderRef b = c->b;
    const CgGemmCfg *cfg = o->cfg;
    int mr = cfg->mr, nr = cfg->nr;
    LLVMValueRef Bp = cg_stack_f32(k, (pl->kgroup > 1 ? pl->kgroup : 1) * pl->kcmax * (pl->b_direct ? nr : pl->ncmax), "bpack");
    LLVMValueRef Ap = pl->a_direct ? NULL : cg_stack_f32(k, pl->mcmax * pl->kcmax + 2 * mr, "apack"); /* slack: cg_gemm_pack_a */
    LLVMValueRef Ae = pl->a_direct ? cg_stack_f32(k, mr * pl->kcmax + 2 * mr, "aedge") : NULL;
    int64_t ldr = pl->kcmax + 16;
    LLVMValueRef Ar = pl->a_copy ? cg_stack_f32(k, pl->mcmax * ldr, "arows") : NULL;
    LLVMValueRef Ct = cg_stack_f32(k, (int64_t)mr * nr, "ctile");
    /* contraction mask: the K block's live k, a count, and whether a block
     * of the run had any; row mask: per micro-panel of the M block, whether
     * any of its rows is live */
    LLVMValueRef kidx = NULL, klive = NULL, kdone = NULL, plive = NULL;
    if (o->mask_dim >= 0) {
        LLVMBasicBlockRef here = LLVMGetInsertBlock(b);
        LLVMPositionBuilderAtEnd(b, k->entry);
        if (o->mask_dim == 1) {
            kidx = LLVMBuildAlloca(b, LLVMArrayType2(c->i64, (uint64_t)pl->kcmax), "kidx");
            klive = LLVMBuildAlloca(b, c->i64, "klive");
            kdone = LLVMBuildAlloca(b, c->i32, "kdone");
        } else {
            plive = LLVMBuildAlloca(b, LLVMArrayType2(c->i1, (uint64_t)((pl->mcmax + mr - 1) / mr)), "plive");
        }
        LLVMPositionBuilderAtEnd(b, here);
    }
    LLVMBuildMemSet(b, Ct, LLVMConstInt(c->i8, 0, 0), cg_i64(c, (int64_t)mr * nr * 4), 64);
    LLVMTypeRef ukty;
    LLVMValueRef ukr = cg_gemm_ukr(c, cfg, mr, &ukty);
    if (!ukr) return;
    /* the micro-kernels of fewer rows, for a partial last micro-panel */
    LLVMValueRef ukr_rows[32] = {0};
    for (int r = 1; r < mr && r < 32; r *= 2)
        if (!(ukr_rows[r] = cg_gemm_ukr(c, cfg, r, &ukty))) return;
    LLVMValueRef i64z = cg_i64(c, 0);
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(b));
    LLVMValueRef mrv = cg_i64(c, mr);
    LLVMValueRef mp = cg_gemm_ceil_div(c, o->M, mrv), np = cg_gemm_ceil_div(c, o->N, cg_i64(c, nr));

    /* while (t < end): one run of row strips sharing (batch, N block) */
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, fn, "run");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "runbody");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "runexit");
    LLVMBuildBr(b, head);
    LLVMPositionBuilderAtEnd(b, head);
    LLVMValueRef t = LLVMBuildPhi(b, c->i64, "t");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, t, end, ""), body, exit);
    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef per_batch = LLVMBuildNSWMul(b, nb, mp, "");
    o->bat = LLVMBuildSDiv(b, t, per_batch, "bat");
    LLVMValueRef rem = LLVMBuildSRem(b, t, per_batch, "");
    LLVMValueRef nbi = LLVMBuildSDiv(b, rem, mp, "nb");
    LLVMValueRef mp0 = LLVMBuildSRem(b, rem, mp, "mp0");
    LLVMValueRef tend = cg_smin(c, end, LLVMBuildNSWAdd(b, LLVMBuildNSWSub(b, t, mp0, ""), mp, ""));
    /* the run's rows [r0, r1), cut into M blocks of up to mc rows */
    LLVMValueRef r0 = LLVMBuildNSWMul(b, mp0, mrv, "r0");
    LLVMValueRef r1 = cg_smin(c, o->M, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, mp0, LLVMBuildNSWSub(b, tend, t, ""), ""), mrv, ""));
    LLVMValueRef nblk = cg_gemm_ceil_div(c, LLVMBuildNSWSub(b, r1, r0, ""), mc);
    /* N block nbi: micro-panels [nbi * np / nb, (nbi + 1) * np / nb) */
    LLVMValueRef n0 = LLVMBuildNSWMul(b, LLVMBuildSDiv(b, LLVMBuildNSWMul(b, nbi, np, ""), nb, ""), cg_i64(c, nr), "n0");
    LLVMValueRef nbi1 = LLVMBuildNSWAdd(b, nbi, cg_i64(c, 1), "");
    LLVMValueRef n1 = LLVMBuildNSWMul(b, LLVMBuildSDiv(b, LLVMBuildNSWMul(b, nbi1, np, ""), nb, ""), cg_i64(c, nr), "");
    LLVMValueRef ncur = LLVMBuildNSWSub(b, cg_smin(c, n1, o->N), n0, "ncur");
    LLVMValueRef cbase = LLVMBuildNSWMul(b, o->bat, LLVMBuildNSWMul(b, o->M, o->N, ""), "");

    CgFor pb, tt, kl;
    LLVMBasicBlockRef kjoin = NULL;
    if (kdone) LLVMBuildStore(b, LLVMConstInt(c->i32, 0, 0), kdone);
    /* K blocks of equal size (a multiple of 8, at most kc): K = 896 is
     * 4 x 224 rather than 3 x 256 + 128, whose short block pays a whole
     * block's C traffic for half the work */
    LLVMValueRef nkb = cg_gemm_ceil_div(c, o->K, cg_i64(c, cfg->kc));
    LLVMValueRef kcb = LLVMBuildNSWMul(b, cg_gemm_ceil_div(c, cg_gemm_ceil_div(c, o->K, nkb), cg_i64(c, 8)), cg_i64(c, 8), "kcb");
    kcb = cg_smin(c, kcb, cg_i64(c, cfg->kc));
    /* groups of pl->kgroup K blocks: all of a group's B blocks are packed,
     * then each M block runs the group's K blocks while its C block is in
     * cache (kgroup 1: the K block loop, packing each block once) */
    int G = pl->kgroup > 1 ? pl->kgroup : 1;
    LLVMValueRef nkbv = cg_gemm_ceil_div(c, o->K, kcb);
    cg_for_begin(c, &pb, i64z, cg_gemm_ceil_div(c, nkbv, cg_i64(c, G)), "kg");
    LLVMValueRef q0 = LLVMBuildNSWMul(b, pb.iv, cg_i64(c, G), "q0");
    LLVMValueRef nq = cg_smin(c, cg_i64(c, G), LLVMBuildNSWSub(b, nkbv, q0, ""));
    LLVMValueRef p0 = LLVMBuildNSWMul(b, q0, kcb, "p0");
    LLVMValueRef kc = cg_smin(c, kcb, LLVMBuildNSWSub(b, o->K, p0, ""));
    /* the group's last row of K is K's: the tiles are complete after it */
    LLVMValueRef glast = LLVMBuildICmp(b, LLVMIntEQ, nkbv, LLVMBuildNSWAdd(b, q0, nq, ""), "glast");
    int64_t bstride = pl->kcmax * (pl->b_direct ? nr : pl->ncmax);
    /* kk: the rows of this K block the packs and the micro-kernel see (a
     * contraction mask gathers A, so it never has groups: G = 1 here) */
    LLVMValueRef kk = kc, accum;
    if (kdone) {
        /* list the block's live k; a block without any is skipped, and the
         * first block that has some starts the tiles at zero */
        LLVMBuildStore(b, i64z, klive);
        cg_for_begin(c, &kl, i64z, kc, "kl");
        LLVMValueRef kg = LLVMBuildNSWAdd(b, p0, kl.iv, "");
        LLVMBasicBlockRef ljoin;
        cg_if_begin(c, mask_live(o, kg), &ljoin);
        LLVMValueRef nl = LLVMBuildLoad2(b, c->i64, klive, "");
        LLVMBuildStore(b, kg, LLVMBuildGEP2(b, c->i64, kidx, &nl, 1, ""));
        LLVMBuildStore(b, LLVMBuildNSWAdd(b, nl, cg_i64(c, 1), ""), klive);
        cg_if_end(c, ljoin);
        cg_for_end(c, &kl);
        kk = LLVMBuildLoad2(b, c->i64, klive, "kk");
        cg_if_begin(c, LLVMBuildICmp(b, LLVMIntSGT, kk, i64z, ""), &kjoin);
        accum = LLVMBuildLoad2(b, c->i32, kdone, "accum");
        LLVMBuildStore(b, LLVMConstInt(c->i32, 1, 0), kdone);
        o->kidx = kidx;
    } else {
        accum = LLVMBuildZExt(b, LLVMBuildICmp(b, LLVMIntSGT, p0, i64z, ""), c->i32, "");
    }
    LLVMValueRef nbfull = NULL; /* B read in place: the block's columns in whole panels */
    if (pl->b_direct) nbfull = LLVMBuildNSWMul(b, LLVMBuildSDiv(b, ncur, cg_i64(c, nr), ""), cg_i64(c, nr), "nbfull");
    /* the group's K blocks q: block q0 + q starts at pq(q); its rows are
     * kk and accum above when there is one block (G = 1, also the masked
     * case), else min(kcb, K - pq) and pq > 0 */
    CgFor qp;
    cg_for_begin(c, &qp, i64z, nq, "qpack");
    LLVMValueRef pq = LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, q0, qp.iv, ""), kcb, "");
    LLVMValueRef kq = G > 1 ? cg_smin(c, kcb, LLVMBuildNSWSub(b, o->K, pq, "")) : kk;
    LLVMValueRef Bq = cg_gep(c, c->f32, Bp, LLVMBuildNSWMul(b, qp.iv, cg_i64(c, bstride), ""));
    if (pl->b_direct) { /* only a partial last panel is packed (zero columns) */
        LLVMBasicBlockRef bjoin;
        cg_if_begin(c, LLVMBuildICmp(b, LLVMIntSLT, nbfull, ncur, ""), &bjoin);
        cg_gemm_pack_b(o, Bq, pq, kq, LLVMBuildNSWAdd(b, n0, nbfull, ""), LLVMBuildNSWSub(b, ncur, nbfull, ""));
        cg_if_end(c, bjoin);
    } else {
        cg_gemm_pack_b(o, Bq, pq, kq, n0, ncur);
    }
    cg_for_end(c, &qp);

    TileCtx x = {.o = o, .pl = pl, .Ap = Ap, .Ae = Ae, .Ar = Ar, .Ct = Ct, .plive = plive, .cbase = cbase,
                 .n0 = n0, .ncur = ncur, .nbfull = nbfull, .ldr = ldr, .ukty = ukty, .ukr = ukr};
    memcpy(x.ukr_rows, ukr_rows, sizeof x.ukr_rows);
    cg_for_begin(c, &tt, i64z, nblk, "tile");
    LLVMValueRef m0 = LLVMBuildNSWAdd(b, r0, LLVMBuildNSWMul(b, tt.iv, mc, ""), "m0");
    LLVMValueRef mcur = cg_smin(c, mc, LLVMBuildNSWSub(b, r1, m0, ""));
    LLVMBasicBlockRef join;
    if (plive) { /* once per tile, for every N panel */
        LLVMValueRef mpan = cg_gemm_ceil_div(c, mcur, cg_i64(c, mr));
        CgFor lp;
        cg_for_begin(c, &lp, i64z, mpan, "lp");
        LLVMValueRef i0 = LLVMBuildNSWMul(b, lp.iv, cg_i64(c, mr), "");
        LLVMValueRef mrc = cg_smin(c, cg_i64(c, mr), LLVMBuildNSWSub(b, mcur, i0, ""));
        LLVMBuildStore(b, panel_live(o, LLVMBuildNSWAdd(b, m0, i0, ""), mrc), LLVMBuildGEP2(b, c->i1, plive, &lp.iv, 1, ""));
        cg_for_end(c, &lp);
    }
    CgFor qt;
    cg_for_begin(c, &qt, i64z, nq, "qtile");
    LLVMValueRef pt = LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, q0, qt.iv, ""), kcb, "");
    LLVMValueRef kt = G > 1 ? cg_smin(c, kcb, LLVMBuildNSWSub(b, o->K, pt, "")) : kc;
    LLVMValueRef at = G > 1 ? LLVMBuildZExt(b, LLVMBuildICmp(b, LLVMIntSGT, pt, i64z, ""), c->i32, "") : accum;
    emit_block_tiles(&x, cg_gep(c, c->f32, Bp, LLVMBuildNSWMul(b, qt.iv, cg_i64(c, bstride), "")), m0, mcur, pt, kt,
                     G > 1 ? kt : kk, at);
    cg_for_end(c, &qt);
    if (plive) { /* the tile is complete: its dead rows become 0 */
        cg_if_begin(c, glast, &join);
        zero_dead_rows(o, cbase, m0, mcur, n0, ncur, 0);
        cg_if_end(c, join);
    }
    if (epi && epi->fn) {
        cg_if_begin(c, glast, &join);
        emit_epilogue(o, epi, cbase, m0, mcur, n0, ncur);
        cg_if_end(c, join);
    } else if (o->epi_fn) { /* a shared driver: the kernel's epilogue function, if it passed one */
        LLVMValueRef given = LLVMBuildICmp(b, LLVMIntNE, o->epi_fn, LLVMConstNull(c->ptr), "");
        cg_if_begin(c, LLVMBuildAnd(b, glast, given, ""), &join);
        LLVMTypeRef ety = epilogue_fn_type(c);
        LLVMValueRef eargs[6] = {o->epi_args, cbase, m0, mcur, n0, ncur};
        LLVMBuildCall2(b, ety, o->epi_fn, eargs, 6, "");
        cg_if_end(c, join);
    }
    cg_for_end(c, &tt);
    if (kjoin) cg_if_end(c, kjoin);
    cg_for_end(c, &pb);
    if (kdone) { /* no live k at all: the run's tiles are 0 */
        LLVMBasicBlockRef zjoin;
        cg_if_begin(c, LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildLoad2(b, c->i32, kdone, ""), LLVMConstInt(c->i32, 0, 0), ""),
                 &zjoin);
        zero_dead_rows(o, cbase, r0, LLVMBuildNSWSub(b, r1, r0, ""), n0, ncur, 1);
        cg_if_end(c, zjoin);
    }

    LLVMBasicBlockRef latch = LLVMGetInsertBlock(b);
    LLVMBuildBr(b, head);
    LLVMAddIncoming(t, (LLVMValueRef[]){begin, tend}, (LLVMBasicBlockRef[]){pre, latch}, 2);
    LLVMPositionBuilderAtEnd(b, exit);
}

/* A row-major and stored: its rows are copied to a padded buffer when they
 * are 4 KiB apart (or a multiple: they fall into the same cache sets and the
 * mr rows of a micro-panel and the M block would evict each other), and
 * when they are long (K > 2048: the M block would not stay in L2) */
static int a_needs_copy(int64_t K) { return K % 1024 == 0 || K > 2048; }

/* How few panels of the other operand make packing not pay: a stored A^T
 * is read in place when an N block has at most IN_PLACE_A_PANELS panels of
 * nr columns, a stored row-major B when M has at most IN_PLACE_B_PANELS
 * micro-panels of mr rows (bench/RESULTS.md, session 15: tiny's weight
 * gradients, M = 32..128 and N = 64..128, gain most at these limits). */
enum { IN_PLACE_A_PANELS = 8, IN_PLACE_B_PANELS = 12 };

/* K blocks run per M block when A is read in place (file comment): 4 of
 * 256 cover the 0.5B model's K = 896 and 1,024 in one group; an M block of
 * 8 micro-panels keeps its C tiles, the K block of packed B being read and
 * A's rows within L2 (16 panels, 224 rows on AVX-512: the 0.5B GEMM total
 * 0.991 / 0.994x OpenBLAS against 1.019 / 1.004x with 8, same run). A^T
 * packed runs groups of 2 over N blocks twice as wide (nc_max_at), the
 * same 2 MiB of packed B (bench/RESULTS.md, session 17) */
enum { K_GROUP_BLOCKS = 4, K_GROUP_AT_BLOCKS = 2, K_GROUP_MC_PANELS = 8 };

/* Which operands the loops read in place: A row-major and stored always
 * (rows copied when a_needs_copy), A^T stored and B row-major stored when
 * few panels of the other operand would reuse their packing; never under a
 * contraction mask, which gathers the live k. And whether K blocks run in
 * groups: A row-major read in place, or A^T packed, without that mask. */
static void plan_in_place(const CgGemmCfg *cfg, const CgGemmDims *d, int a_stored, int b_stored, int mask_dim,
                          GemmPlan *pl) {
    memset(pl, 0, sizeof *pl);
    int gather = mask_dim == 1;
    /* A^T's columns k lie M floats apart: at M a multiple of 1024 (4 KiB)
     * a micro-panel's k all fall into one cache set (as a_needs_copy) */
    int at_ok = d->nc / cfg->nr <= IN_PLACE_A_PANELS && d->M % 1024 != 0;
    pl->a_direct = a_stored && !gather && (!d->ta || at_ok);
    pl->a_copy = pl->a_direct && !d->ta && a_needs_copy(d->K);
    int64_t mpan = (d->M + cfg->mr - 1) / cfg->mr;
    pl->b_direct = b_stored && !gather && !d->tb && mpan <= IN_PLACE_B_PANELS;
    if (pl->a_direct && !d->ta) pl->kgroup = K_GROUP_BLOCKS;
    else if (d->ta && !pl->a_direct && !gather) pl->kgroup = K_GROUP_AT_BLOCKS;
    else pl->kgroup = 1;
}

/* The shared driver of one variant (ta, tb, the plan's in-place choices, the
 * mask), emitted once per module: void drv(ptr A, ptr B, ptr C, i64 M, i64 N, i64 K, i64 mc, i64 nb,
 * i64 begin, i64 end), both operands stored. noinline: every matmul kernel
 * with stored operands calls it, so the module holds one copy of the loops
 * per variant rather than one per shape. */
static LLVMValueRef shared_driver(Cg *c, const CgGemmCfg *cfg, int ta, int tb, const GemmPlan *want, int mask_dim,
                                  LLVMTypeRef *fty) {
    LLVMTypeRef params[13] = {c->ptr, c->ptr, c->ptr, c->i64, c->i64, c->i64,
                              c->i64, c->i64, c->i64, c->i64, c->ptr, c->ptr, c->ptr};
    *fty = LLVMFunctionType(c->voidt, params, mask_dim >= 0 ? 13 : 12, 0);
    char name[64];
    snprintf(name, sizeof name, "dpoc_gemm_f32_%c%c%s%s%s%s", ta ? 't' : 'n', tb ? 't' : 'n',
             want->a_copy ? "_rowcopy" : "", ta && want->a_direct ? "_ain" : "", want->b_direct ? "_bin" : "",
             mask_dim == 0 ? "_maskrows" : mask_dim == 1 ? "_maskk" : "");
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (fn) return fn;
    fn = LLVMAddFunction(c->mod, name, *fty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (unsigned i = 1; i <= 3; i++) LLVMAddAttributeAtIndex(fn, i, LLVMCreateEnumAttribute(c->ctx, noalias, 0));
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, noinline, 0));
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    CgKern k = {.c = c};
    k.entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, start);
    CgGemmOps o = {.k = &k, .mm = -1, .cfg = cfg, .ta = ta, .tb = tb, .mask_dim = mask_dim};
    if (mask_dim >= 0) o.mptr = LLVMGetParam(fn, 12);
    o.aptr = LLVMGetParam(fn, 0);
    o.bptr = LLVMGetParam(fn, 1);
    o.cptr = k.out_ptr = LLVMGetParam(fn, 2);
    o.M = LLVMGetParam(fn, 3);
    o.N = LLVMGetParam(fn, 4);
    o.K = LLVMGetParam(fn, 5);
    o.epi_fn = LLVMGetParam(fn, 10);
    o.epi_args = LLVMGetParam(fn, 11);
    GemmPlan pl = *want;
    pl.kcmax = cfg->kc;
    pl.ncmax = ta ? cfg->nc_max_at : cfg->nc_max;
    pl.mcmax = cfg->mc_max;
    emit_loops(&o, &pl, LLVMGetParam(fn, 6), LLVMGetParam(fn, 7), LLVMGetParam(fn, 8), LLVMGetParam(fn, 9), NULL);
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, k.entry);
    LLVMBuildBr(c->b, start);
    if (saved) LLVMPositionBuilderAtEnd(c->b, saved);
    return fn;
}

void cg_emit_gemm(CgKern *k, int32_t mm, LLVMValueRef begin, LLVMValueRef end, const CgGemmEpilogue *epi) {
    Cg *c = k->c;
    CgGemmCfg cfg;
    CgGemmDims d;
    cg_gemm_config(c->features, &cfg);
    cg_gemm_dims(&cfg, k->g, mm, &d);
    const IrNode *root = ir_node(k->g, mm);
    int a_stored = cg_is_stored(k, root->in[0]), b_stored = cg_is_stored(k, root->in[1]);
    CgGemmOps o = {.k = k, .mm = mm, .cfg = &cfg, .ta = d.ta, .tb = d.tb, .cptr = k->out_ptr, .mask_dim = -1};
    o.M = cg_i64(c, d.M);
    o.N = cg_i64(c, d.N);
    o.K = cg_i64(c, d.K);
    o.aptr = a_stored ? cg_node_ptr(k, root->in[0]) : NULL;
    o.bptr = b_stored ? cg_node_ptr(k, root->in[1]) : NULL;
    int m_stored = 1;
    if (root->op == OP_MATMUL_MASKED) {
        if (epi && epi->fn) {
            cg_fail(c, "matmul_masked %%%d: an epilogue kernel (fuse never makes one)", mm);
            return;
        }
        o.mask_dim = (int)root->attr[2];
        m_stored = cg_is_stored(k, root->in[2]);
    }
    GemmPlan pl;
    plan_in_place(&cfg, &d, a_stored, b_stored, o.mask_dim, &pl);
    if (pl.kgroup > 1) balance(d.M, (int64_t)cfg.mr * K_GROUP_MC_PANELS, cfg.mr, &d.mc, &d.mb);
    if (a_stored && b_stored && m_stored) {
        LLVMTypeRef fty;
        LLVMValueRef drv = shared_driver(c, &cfg, d.ta, d.tb, &pl, o.mask_dim, &fty);
        LLVMValueRef efn = epi && epi->fn ? epilogue_function(k, epi, o.N) : LLVMConstNull(c->ptr);
        if (!efn) return;
        LLVMValueRef args[13] = {o.aptr, o.bptr, o.cptr, o.M, o.N, o.K, cg_i64(c, d.mc), cg_i64(c, d.nb), begin, end,
                                 efn, k->args, o.mask_dim >= 0 ? cg_node_ptr(k, root->in[2]) : NULL};
        LLVMBuildCall2(c->b, fty, drv, args, o.mask_dim >= 0 ? 13 : 12, "");
        return;
    }
    /* an operand computed inline: the loops in this kernel, with the shape
     * as constants (and the epilogue, if any, inline) */
    pl.kcmax = d.K < cfg.kc ? d.K : cfg.kc;
    int64_t nkb = (d.K + cfg.kc - 1) / cfg.kc;
    if (pl.kgroup > nkb) pl.kgroup = (int)nkb;
    pl.ncmax = d.nc;
    pl.mcmax = d.mc;
    emit_loops(&o, &pl, cg_i64(c, d.mc), cg_i64(c, d.nb), begin, end, epi);
}
