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
 *    expression the schedule left inline) becomes a fill kernel instead.
 */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Step {
    int key;            /* order: kernel k is 2k+1, what runs after it 2k+2, the start 0 */
    int call;           /* kernel call (index into Cg.kernels), or -1 */
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
        if (kcall[k] < 0) continue;
        Step *st = add_step(s);
        if (!st) return -1;
        st->key = 2 * k + 1;
        st->call = kcall[k];
    }
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
    LLVMTypeRef step_ty = LLVMStructTypeInContext(c->ctx, (LLVMTypeRef[]){c->ptr, c->i64, c->i64, c->i64}, 4, 0);
    LLVMTypeRef place_ty = LLVMArrayType2(c->i64, 2);
    int nplaces = 0, maxargs = 2;
    for (int i = 0; i < nsteps; i++) {
        int n = steps[i].call >= 0 ? c->kernels[steps[i].call].nargs : 2;
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
        LLVMValueRef f[4];
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
            places[at++] = LLVMConstArray2(c->i64, src, 2);
            f[0] = LLVMConstPointerNull(c->ptr);
            f[1] = cg_i64(c, st->bytes);
        }
        f[2] = cg_i64(c, first);
        f[3] = cg_i64(c, at - first);
        rows[i] = LLVMConstStructInContext(c->ctx, f, 4, 0);
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
    LLVMTypeRef svc_ty = LLVMStructTypeInContext(c->ctx, (LLVMTypeRef[]){c->ptr, c->ptr}, 2, 0);
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
    LLVMBasicBlockRef kern = LLVMAppendBasicBlockInContext(c->ctx, entry, "kernel");
    LLVMBasicBlockRef copy = LLVMAppendBasicBlockInContext(c->ctx, entry, "copy");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, entry, "next");
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
        member[sk->root] = 1;
        for (int j = 0; j < sk->nmembers; j++) member[p->members[sk->first + j]] = 1;
        char name[128];
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

    entry = emit_entry_fn(c, e->name, s.steps, s.nsteps);
done:
    free(s.root_kernel);
    free(s.steps);
    free(kcall);
    free(member);
    return c->failed ? NULL : entry;
}
