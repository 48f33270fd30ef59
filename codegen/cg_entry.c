/* cg_entry.c — an entry point: the scheduled kernels called in order.
 *
 * For one CodegenEntry this emits every SchedKernel as a kernel call
 * (`<entry>_k<N>_<op>`, its function shared with every other call of the
 * same structure: cg_dedup.c) and then `int dpoc_<entry>(regions, svc)`.
 *
 * The entry function is a loop over two constant tables, so its size (and
 * LLVM's time on it) does not grow with the model: `dpoc_<entry>_steps`
 * holds per step {fn, work, first, nargs} and `dpoc_<entry>_places` the
 * (region, offset) pairs of every step's arguments. For each step in
 * schedule order the loop fills an argument array on its stack with
 * regions[region] + offset for the step's places, then calls
 * svc->parallel_for(svc->ctx, fn, args, work), or, for a copy step (fn
 * NULL, places {dst, src}, work = bytes), memcpy(args[0], args[1], work).
 * One stack array, as long as the longest argument list, serves every
 * step: parallel_for returns only when the kernel is done.
 *
 * Besides the kernels the entry does what the schedule leaves implicit:
 *  - a constant or iota kernel whose result the schedule keeps in the arena
 *    is dropped: every reader computes the value inline (cg_eval.c);
 *  - a constant or iota that the schedule places outside the arena (an
 *    output, a zero gradient) without a kernel computing it gets a fill
 *    kernel (`<entry>_f<N>_fill`) run first (inside kernels, constants and
 *    iota are always computed inline, never loaded);
 *  - each SchedCopy is a memcpy from the value's place to the extra slot,
 *    right after the kernel the schedule names (copy.after; -1: at the
 *    start). A copy of a value with no place of its own (a constant, or an
 *    expression the schedule left inline) becomes a fill kernel instead;
 *  - a collective (passes/shard.c) is a step of its own, not a kernel: an
 *    all_reduce copies its input into its place and calls
 *    svc->all_reduce_sum there; an all_gather calls svc->all_gather from its
 *    input's place into its own (the gathered dim must be the outermost one
 *    with more than one element, so each rank's block is contiguous); an
 *    axis_index stores svc->dp_rank or svc->tp_rank. A non-zero status from
 *    a collective is returned by the entry at once. Consecutive dp
 *    all-reduces into the grads region whose places follow each other (up
 *    to the alignment padding) are merged: their copies first, then one
 *    all_reduce_sum per bucket of at most Cg.bucket_bytes.
 * Step rows are {fn, work, first, nargs, kind, aux, count}: kind 0 a kernel
 * (fn set) or memcpy (fn NULL); 1 all_reduce (aux = axis | type << 8,
 * count elements, work = bytes to copy first, 0: none); 2 all_gather (work
 * = bytes per rank); 3 axis_index (aux = axis).
 */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STEP_KERNEL = 0, STEP_ALL_REDUCE = 1, STEP_ALL_GATHER = 2, STEP_AXIS_INDEX = 3 };

typedef struct Step {
    int key;            /* order: kernel k is 2k+1, what runs after it 2k+2, the start 0 */
    int call;           /* kernel call (index into Cg.kernels), or -1 */
    int kind;           /* STEP_*: a collective when not STEP_KERNEL */
    int axis, ctype;    /* collectives: mesh axis, DpocCollType */
    int64_t count;      /* all_reduce: elements */
    int src_region, dst_region; /* memcpy when call is -1 */
    int64_t src_off, dst_off, bytes;
} Step;

typedef struct EntryState {
    Cg *c;
    const CodegenEntry *e;
    int32_t *root_kernel;
    Step *steps;
    int nsteps, cap;
} EntryState;

static Step *add_step(EntryState *s) {
    if (s->nsteps == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        Step *n = realloc(s->steps, (size_t)cap * sizeof *n);
        if (!n) {
            cg_fail(s->c, "out of memory");
            return NULL;
        }
        s->steps = n;
        s->cap = cap;
    }
    Step *st = &s->steps[s->nsteps++];
    memset(st, 0, sizeof *st);
    st->call = -1;
    return st;
}

static int add_fill(EntryState *s, int32_t v, int region, int64_t offset, int after, int *nfill) {
    Cg *c = s->c;
    uint8_t *member = calloc((size_t)s->e->g->n, 1);
    if (!member) return cg_fail(c, "out of memory");
    member[v] = 1;
    char name[128];
    snprintf(name, sizeof name, "%s_f%d_fill", s->e->name, (*nfill)++);
    int ci = cg_emit_kernel(c, s->e->g, s->e->plan, v, member, region, offset, name, s->e->name);
    free(member);
    if (ci < 0) return -1;
    c->kernels[ci].op = "fill";
    Step *st = add_step(s);
    if (!st) return -1;
    st->key = 2 * after + 2;
    st->call = ci;
    return 0;
}

/* the step of collective kernel k (root node v) */
static int add_collective(EntryState *s, int k, int32_t v) {
    Cg *c = s->c;
    const IrGraph *g = s->e->g;
    const SchedPlan *p = s->e->plan;
    const IrNode *n = ir_node(g, v);
    Step *st = add_step(s);
    if (!st) return -1;
    st->key = 2 * k + 1;
    st->axis = (int)n->attr[0];
    st->dst_region = p->region[v];
    st->dst_off = p->offset[v];
    if (n->op == OP_AXIS_INDEX) {
        st->kind = STEP_AXIS_INDEX;
        return 0;
    }
    int32_t in = n->in[0];
    const IrNode *a = ir_node(g, in);
    if (p->region[in] < 0) return cg_fail(c, "%s: %s %%%d reads %%%d, which has no place", s->e->name, ir_op_info[n->op].name, v, in);
    st->src_region = p->region[in];
    st->src_off = p->offset[in];
    int64_t bytes = ir_numel(a) * (int64_t)ir_dtype_size((IrDType)a->dtype);
    if (n->op == OP_ALL_REDUCE) {
        st->kind = STEP_ALL_REDUCE;
        st->ctype = a->dtype == DT_F64 ? DPOC_COLL_F64 : DPOC_COLL_F32;
        st->count = ir_numel(a);
        st->bytes = st->src_region == st->dst_region && st->src_off == st->dst_off ? 0 : bytes;
        return 0;
    }
    for (int d = 0; d < n->attr[1]; d++)
        if (a->shape[d] != 1)
            return cg_fail(c, "%s: all_gather %%%d along dim %lld: the dims before it must have size 1", s->e->name, v,
                           (long long)n->attr[1]);
    st->kind = STEP_ALL_GATHER;
    st->bytes = bytes;
    return 0;
}

static int plan_steps(EntryState *s, const int *kcall) {
    Cg *c = s->c;
    const IrGraph *g = s->e->g;
    const SchedPlan *p = s->e->plan;
    int nfill = 0;
    for (int32_t v = 0; v < g->n; v++) {
        const IrNode *n = ir_node(g, v);
        if ((n->op == OP_CONST || n->op == OP_IOTA) && p->region[v] >= 0 && p->region[v] != DPOC_R_ARENA &&
            s->root_kernel[v] < 0)
            if (add_fill(s, v, p->region[v], p->offset[v], -1, &nfill)) return -1;
    }
    for (int i = 0; i < p->ncopies; i++) {
        const SchedCopy *cp = &p->copies[i];
        int32_t v = cp->node;
        if (v < 0 || v >= g->n) return cg_fail(c, "%s: copy of node %d out of range", s->e->name, v);
        const IrNode *n = ir_node(g, v), *base = n;
        while (base->op == OP_RESHAPE) base = ir_node(g, base->in[0]);
        int after = cp->after;
        if (after < -1 || after >= p->nkernels) return cg_fail(c, "%s: copy of %%%d runs after kernel %d of %d", s->e->name, v, after, p->nkernels);
        if (base->op == OP_CONST || base->op == OP_IOTA || p->region[v] < 0) {
            if (add_fill(s, v, cp->region, cp->offset, after, &nfill)) return -1;
            continue;
        }
        Step *st = add_step(s);
        if (!st) return -1;
        st->key = 2 * after + 2;
        st->src_region = p->region[v];
        st->src_off = p->offset[v];
        st->dst_region = cp->region;
        st->dst_off = cp->offset;
        st->bytes = ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype);
    }
    for (int k = 0; k < p->nkernels; k++) {
        int32_t root = p->kernels[k].root;
        if (kcall[k] < 0 && (ir_op_info[ir_node(g, root)->op].flags & OPF_COLLECTIVE)) {
            if (add_collective(s, k, root)) return -1;
            continue;
        }
        if (kcall[k] < 0) continue;
        Step *st = add_step(s);
        if (!st) return -1;
        st->key = 2 * k + 1;
        st->call = kcall[k];
    }
    return 0;
}

/* merges runs of dp all-reduces over consecutive grads places (see the top) */
static int merge_buckets(EntryState *s) {
    Cg *c = s->c;
    int alloc = 2 * s->nsteps + 1;
    Step *out = malloc(sizeof *out * (size_t)alloc);
    if (!out) return cg_fail(c, "out of memory");
    int n = 0;
    for (int i = 0; i < s->nsteps;) {
        const Step *a = &s->steps[i];
        int j = i + 1;
        if (a->kind == STEP_ALL_REDUCE && a->axis == DPOC_AXIS_DP && a->dst_region == DPOC_R_GRADS) {
            int64_t esz = a->ctype == DPOC_COLL_F64 ? 8 : 4, end = a->dst_off + a->count * esz;
            while (j < s->nsteps) {
                const Step *b = &s->steps[j];
                if (b->kind != STEP_ALL_REDUCE || b->axis != a->axis || b->ctype != a->ctype || b->dst_region != a->dst_region ||
                    b->dst_off < end || b->dst_off - end >= DPOC_REGION_ALIGN)
                    break;
                end = b->dst_off + b->count * esz;
                j++;
            }
        }
        if (j == i + 1) {
            out[n++] = *a;
            i++;
            continue;
        }
        for (int t = i; t < j; t++) /* the copies into the places */
            if (s->steps[t].bytes > 0) {
                out[n] = s->steps[t];
                out[n].kind = STEP_KERNEL;
                out[n].call = -1;
                n++;
            }
        int esz = a->ctype == DPOC_COLL_F64 ? 8 : 4;
        for (int t = i; t < j;) { /* then one reduce per bucket */
            int64_t start = s->steps[t].dst_off, stop = start + s->steps[t].count * esz;
            int u = t + 1;
            while (u < j && s->steps[u].dst_off + s->steps[u].count * esz - start <= c->bucket_bytes) {
                stop = s->steps[u].dst_off + s->steps[u].count * esz;
                u++;
            }
            out[n] = s->steps[t];
            out[n].src_region = out[n].dst_region;
            out[n].src_off = out[n].dst_off = start;
            out[n].bytes = 0;
            out[n].count = (stop - start) / esz;
            n++;
            t = u;
        }
        i = j;
    }
    free(s->steps);
    s->steps = out;
    s->nsteps = n;
    s->cap = alloc;
    return 0;
}

void cg_emit_pfor(Cg *c, LLVMValueRef regions, LLVMValueRef argbuf, LLVMValueRef ctx, LLVMValueRef pf, int call) {
    const CgKernelRec *r = &c->kernels[call];
    for (int i = 0; i < r->nargs; i++)
        LLVMBuildStore(c->b, cg_region_ptr(c, regions, r->arg_region[i], r->arg_offset[i]),
                       cg_gep(c, c->ptr, argbuf, cg_i64(c, i)));
    LLVMValueRef args[4] = {ctx, c->funcs[r->fn].fn, argbuf, cg_i64(c, r->work)};
    LLVMBuildCall2(c->b, c->pfor_ty, pf, args, 4, "");
}

LLVMValueRef cg_emit_empty_entry(Cg *c, const char *name) {
    char fname[128];
    snprintf(fname, sizeof fname, "dpoc_%s", name);
    LLVMValueRef fn = LLVMAddFunction(c->mod, fname, c->entry_ty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, 0, 0));
    return fn;
}

static LLVMValueRef const_global(Cg *c, LLVMTypeRef elt, LLVMValueRef *vals, int n, const char *name) {
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMArrayType2(elt, (uint64_t)n), name);
    LLVMSetInitializer(gv, LLVMConstArray2(elt, vals, (uint64_t)n));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

/* `int dpoc_<name>(regions, svc)`: a loop over the step table (see the top
 * of the file); NULL after cg_fail */
static LLVMValueRef emit_entry_fn(Cg *c, const char *name, const Step *steps, int nsteps) {
    LLVMBuilderRef b = c->b;
    LLVMTypeRef step_ty =
        LLVMStructTypeInContext(c->ctx, (LLVMTypeRef[]){c->ptr, c->i64, c->i64, c->i64, c->i64, c->i64, c->i64}, 7, 0);
    LLVMTypeRef place_ty = LLVMArrayType2(c->i64, 2);
    int nplaces = 0, maxargs = 2;
    for (int i = 0; i < nsteps; i++) {
        int n = steps[i].call >= 0 ? c->kernels[steps[i].call].nargs : steps[i].kind == STEP_AXIS_INDEX ? 1 : 2;
        nplaces += n;
        if (n > maxargs) maxargs = n;
    }
    LLVMValueRef *rows = calloc((size_t)nsteps + 1, sizeof *rows);
    LLVMValueRef *places = calloc((size_t)nplaces + 1, sizeof *places);
    if (!rows || !places) {
        free(rows);
        free(places);
        cg_fail(c, "out of memory");
        return NULL;
    }
    int at = 0;
    for (int i = 0; i < nsteps; i++) {
        const Step *st = &steps[i];
        LLVMValueRef f[7];
        int first = at;
        if (st->call >= 0) {
            const CgKernelRec *r = &c->kernels[st->call];
            for (int a = 0; a < r->nargs; a++) {
                LLVMValueRef pl[2] = {cg_i64(c, r->arg_region[a]), cg_i64(c, r->arg_offset[a])};
                places[at++] = LLVMConstArray2(c->i64, pl, 2);
            }
            f[0] = c->funcs[r->fn].fn;
            f[1] = cg_i64(c, r->work);
        } else {
            LLVMValueRef dst[2] = {cg_i64(c, st->dst_region), cg_i64(c, st->dst_off)};
            LLVMValueRef src[2] = {cg_i64(c, st->src_region), cg_i64(c, st->src_off)};
            places[at++] = LLVMConstArray2(c->i64, dst, 2);
            if (st->kind != STEP_AXIS_INDEX) places[at++] = LLVMConstArray2(c->i64, src, 2);
            f[0] = LLVMConstPointerNull(c->ptr);
            f[1] = cg_i64(c, st->bytes);
        }
        f[2] = cg_i64(c, first);
        f[3] = cg_i64(c, at - first);
        f[4] = cg_i64(c, st->call >= 0 ? STEP_KERNEL : st->kind);
        f[5] = cg_i64(c, st->axis | st->ctype << 8);
        f[6] = cg_i64(c, st->count);
        rows[i] = LLVMConstStructInContext(c->ctx, f, 7, 0);
    }
    char gname[160];
    snprintf(gname, sizeof gname, "dpoc_%s_steps", name);
    LLVMValueRef step_tab = const_global(c, step_ty, rows, nsteps, gname);
    snprintf(gname, sizeof gname, "dpoc_%s_places", name);
    LLVMValueRef place_tab = const_global(c, place_ty, places, nplaces, gname);
    free(rows);
    free(places);

    snprintf(gname, sizeof gname, "dpoc_%s", name);
    LLVMValueRef entry = LLVMAddFunction(c->mod, gname, c->entry_ty);
    LLVMSetLinkage(entry, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->ctx, entry, "entry"));
    LLVMValueRef regions = LLVMGetParam(entry, 0), svc = LLVMGetParam(entry, 1);
    /* DpocServices: ctx, parallel_for, dp_rank, dp_size, tp_rank, tp_size, all_reduce_sum, all_gather */
    LLVMTypeRef svc_ty = LLVMStructTypeInContext(
        c->ctx, (LLVMTypeRef[]){c->ptr, c->ptr, c->i32, c->i32, c->i32, c->i32, c->ptr, c->ptr}, 8, 0);
    LLVMValueRef ctx = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, svc_ty, svc, 0, ""), "ctx");
    LLVMValueRef pf = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, svc_ty, svc, 1, ""), "parallel_for");
    LLVMValueRef argbuf = LLVMBuildAlloca(b, LLVMArrayType2(c->ptr, (uint64_t)maxargs), "args");
    CgFor sl, al;
    cg_for_begin(c, &sl, cg_i64(c, 0), cg_i64(c, nsteps), "step");
    LLVMValueRef row = LLVMBuildInBoundsGEP2(b, step_ty, step_tab, &sl.iv, 1, "");
    LLVMValueRef fn = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, step_ty, row, 0, ""), "fn");
    LLVMValueRef work = LLVMBuildLoad2(b, c->i64, LLVMBuildStructGEP2(b, step_ty, row, 1, ""), "work");
    LLVMValueRef first = LLVMBuildLoad2(b, c->i64, LLVMBuildStructGEP2(b, step_ty, row, 2, ""), "first");
    LLVMValueRef nargs = LLVMBuildLoad2(b, c->i64, LLVMBuildStructGEP2(b, step_ty, row, 3, ""), "nargs");
    cg_for_begin(c, &al, cg_i64(c, 0), nargs, "arg");
    LLVMValueRef pl = LLVMBuildInBoundsGEP2(b, place_ty, place_tab, (LLVMValueRef[]){LLVMBuildNSWAdd(b, first, al.iv, "")}, 1, "");
    LLVMValueRef reg = LLVMBuildLoad2(b, c->i64, cg_gep(c, c->i64, pl, cg_i64(c, 0)), "region");
    LLVMValueRef off = LLVMBuildLoad2(b, c->i64, cg_gep(c, c->i64, pl, cg_i64(c, 1)), "offset");
    LLVMValueRef base = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, regions, reg), "base");
    LLVMBuildStore(b, cg_gep(c, c->i8, base, off), cg_gep(c, c->ptr, argbuf, al.iv));
    cg_for_end(c, &al);
    LLVMValueRef kind = LLVMBuildLoad2(b, c->i64, LLVMBuildStructGEP2(b, step_ty, row, 4, ""), "kind");
    LLVMValueRef aux = LLVMBuildLoad2(b, c->i64, LLVMBuildStructGEP2(b, step_ty, row, 5, ""), "aux");
    LLVMValueRef count = LLVMBuildLoad2(b, c->i64, LLVMBuildStructGEP2(b, step_ty, row, 6, ""), "count");
    LLVMBasicBlockRef kern = LLVMAppendBasicBlockInContext(c->ctx, entry, "kernel");
    LLVMBasicBlockRef copy = LLVMAppendBasicBlockInContext(c->ctx, entry, "copy");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, entry, "next");
    LLVMBasicBlockRef local = LLVMAppendBasicBlockInContext(c->ctx, entry, "local");
    LLVMBasicBlockRef ar = LLVMAppendBasicBlockInContext(c->ctx, entry, "all_reduce");
    LLVMBasicBlockRef ag = LLVMAppendBasicBlockInContext(c->ctx, entry, "all_gather");
    LLVMBasicBlockRef ai = LLVMAppendBasicBlockInContext(c->ctx, entry, "axis_index");
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(c->ctx, entry, "comm_failed");
    LLVMValueRef sw = LLVMBuildSwitch(b, kind, local, 3);
    LLVMAddCase(sw, cg_i64(c, STEP_ALL_REDUCE), ar);
    LLVMAddCase(sw, cg_i64(c, STEP_ALL_GATHER), ag);
    LLVMAddCase(sw, cg_i64(c, STEP_AXIS_INDEX), ai);
    LLVMPositionBuilderAtEnd(b, ar);
    {
        LLVMValueRef ax = LLVMBuildTrunc(b, LLVMBuildAnd(b, aux, cg_i64(c, 255), ""), c->i32, "");
        LLVMValueRef ty = LLVMBuildTrunc(b, LLVMBuildLShr(b, aux, cg_i64(c, 8), ""), c->i32, "");
        LLVMValueRef dst = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 0)), "dst");
        LLVMValueRef src = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 1)), "src");
        LLVMBuildMemCpy(b, dst, 1, src, 1, work); /* work is 0 when the sum is already in place */
        LLVMTypeRef fty = LLVMFunctionType(c->i32, (LLVMTypeRef[]){c->ptr, c->i32, c->ptr, c->i64, c->i32}, 5, 0);
        LLVMValueRef f = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, svc_ty, svc, 6, ""), "all_reduce_sum");
        LLVMValueRef rc = LLVMBuildCall2(b, fty, f, (LLVMValueRef[]){ctx, ax, dst, count, ty}, 5, "rc");
        LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, entry, "all_reduce_ok");
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, rc, LLVMConstInt(c->i32, 0, 0), ""), ok, fail);
        LLVMPositionBuilderAtEnd(b, ok);
        LLVMBuildBr(b, next);
        LLVMPositionBuilderAtEnd(b, fail);
        LLVMValueRef phi_rc = LLVMBuildPhi(b, c->i32, "status");
        LLVMAddIncoming(phi_rc, &rc, &ar, 1);
        LLVMBuildRet(b, phi_rc);
        LLVMPositionBuilderAtEnd(b, ag);
        LLVMValueRef ax2 = LLVMBuildTrunc(b, LLVMBuildAnd(b, aux, cg_i64(c, 255), ""), c->i32, "");
        LLVMValueRef dst2 = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 0)), "recv");
        LLVMValueRef src2 = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 1)), "send");
        LLVMTypeRef gty = LLVMFunctionType(c->i32, (LLVMTypeRef[]){c->ptr, c->i32, c->ptr, c->ptr, c->i64}, 5, 0);
        LLVMValueRef gf = LLVMBuildLoad2(b, c->ptr, LLVMBuildStructGEP2(b, svc_ty, svc, 7, ""), "all_gather");
        LLVMValueRef rc2 = LLVMBuildCall2(b, gty, gf, (LLVMValueRef[]){ctx, ax2, src2, dst2, work}, 5, "rc");
        LLVMBasicBlockRef ok2 = LLVMAppendBasicBlockInContext(c->ctx, entry, "all_gather_ok");
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, rc2, LLVMConstInt(c->i32, 0, 0), ""), ok2, fail);
        LLVMAddIncoming(phi_rc, &rc2, &ag, 1);
        LLVMPositionBuilderAtEnd(b, ok2);
        LLVMBuildBr(b, next);
        LLVMPositionBuilderAtEnd(b, ai);
        LLVMValueRef isdp = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildAnd(b, aux, cg_i64(c, 255), ""), cg_i64(c, DPOC_AXIS_DP), "");
        LLVMValueRef dpr = LLVMBuildLoad2(b, c->i32, LLVMBuildStructGEP2(b, svc_ty, svc, 2, ""), "dp_rank");
        LLVMValueRef tpr = LLVMBuildLoad2(b, c->i32, LLVMBuildStructGEP2(b, svc_ty, svc, 4, ""), "tp_rank");
        LLVMValueRef dst3 = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 0)), "dst");
        LLVMBuildStore(b, LLVMBuildSelect(b, isdp, dpr, tpr, ""), dst3);
        LLVMBuildBr(b, next);
    }
    LLVMPositionBuilderAtEnd(b, local);
    LLVMBuildCondBr(b, LLVMBuildIsNull(b, fn, ""), copy, kern);
    LLVMPositionBuilderAtEnd(b, kern);
    LLVMBuildCall2(b, c->pfor_ty, pf, (LLVMValueRef[]){ctx, fn, argbuf, work}, 4, "");
    LLVMBuildBr(b, next);
    LLVMPositionBuilderAtEnd(b, copy);
    LLVMValueRef dst = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 0)), "dst");
    LLVMValueRef src = LLVMBuildLoad2(b, c->ptr, cg_gep(c, c->ptr, argbuf, cg_i64(c, 1)), "src");
    LLVMBuildMemCpy(b, dst, 1, src, 1, work);
    LLVMBuildBr(b, next);
    LLVMPositionBuilderAtEnd(b, next);
    cg_for_end(c, &sl);
    LLVMBuildRet(b, LLVMConstInt(c->i32, 0, 0));
    return c->failed ? NULL : entry;
}

LLVMValueRef cg_emit_entry(Cg *c, const CodegenEntry *e) {
    const IrGraph *g = e->g;
    const SchedPlan *p = e->plan;
    if (p->nnodes != g->n) {
        cg_fail(c, "%s: the schedule covers %d nodes, the graph has %d", e->name, p->nnodes, g->n);
        return NULL;
    }
    EntryState s = {.c = c, .e = e};
    s.root_kernel = malloc((size_t)g->n * sizeof *s.root_kernel);
    int *kcall = malloc(((size_t)p->nkernels + 1) * sizeof *kcall);
    uint8_t *member = calloc((size_t)g->n, 1);
    LLVMValueRef entry = NULL;
    if (!s.root_kernel || !kcall || !member) {
        cg_fail(c, "out of memory");
        goto done;
    }
    for (int32_t v = 0; v < g->n; v++) s.root_kernel[v] = -1;
    for (int k = 0; k < p->nkernels; k++) kcall[k] = -1;
    for (int k = 0; k < p->nkernels; k++) {
        const SchedKernel *sk = &p->kernels[k];
        if (sk->root < 0 || sk->root >= g->n) {
            cg_fail(c, "%s: kernel %d has root %d out of range", e->name, k, sk->root);
            goto done;
        }
        s.root_kernel[sk->root] = k;
    }
    for (int k = 0; k < p->nkernels && !c->failed; k++) {
        const SchedKernel *sk = &p->kernels[k];
        const IrNode *n = ir_node(g, sk->root);
        if ((n->op == OP_CONST || n->op == OP_IOTA) && p->region[sk->root] == DPOC_R_ARENA)
            continue; /* readers compute it inline; its arena buffer is never read */
        if (p->region[sk->root] < 0) {
            cg_fail(c, "%s: kernel %d (%s %%%d) has no place for its result", e->name, k, ir_op_info[n->op].name, sk->root);
            goto done;
        }
        if (ir_op_info[n->op].flags & OPF_COLLECTIVE) continue; /* a step of its own (plan_steps) */
        member[sk->root] = 1;
        for (int j = 0; j < sk->nmembers; j++) member[p->members[sk->first + j]] = 1;
        char name[128];
        int32_t mm = cg_kernel_matmul(g, sk->root, member);
        if (mm >= 0 && mm != sk->root) /* an epilogue kernel: train_step_k12_matmul_add */
            snprintf(name, sizeof name, "%s_k%d_matmul_%s", e->name, k, ir_op_info[n->op].name);
        else
            snprintf(name, sizeof name, "%s_k%d_%s", e->name, k, ir_op_info[n->op].name);
        kcall[k] = cg_emit_kernel(c, g, p, sk->root, member, p->region[sk->root], p->offset[sk->root], name, e->name);
        member[sk->root] = 0; /* cleared member by member: a walk costs the kernel, not the graph */
        for (int j = 0; j < sk->nmembers; j++) member[p->members[sk->first + j]] = 0;
        if (kcall[k] < 0) goto done;
    }
    if (plan_steps(&s, kcall)) goto done;

    /* stable order: fills and start copies, then each kernel followed by its copies */
    for (int i = 1; i < s.nsteps; i++) {
        Step t = s.steps[i];
        int j = i - 1;
        while (j >= 0 && s.steps[j].key > t.key) {
            s.steps[j + 1] = s.steps[j];
            j--;
        }
        s.steps[j + 1] = t;
    }

    if (merge_buckets(&s)) goto done;
    entry = emit_entry_fn(c, e->name, s.steps, s.nsteps);
done:
    free(s.root_kernel);
    free(s.steps);
    free(kcall);
    free(member);
    return c->failed ? NULL : entry;
}
