/* cg_entry.c — an entry point: the scheduled kernels called in order.
 *
 * For one CodegenEntry this emits every SchedKernel as a kernel function
 * (`<entry>_k<N>_<op>`) and then `int dpoc_<entry>(regions, svc)`, which
 * calls svc->parallel_for(svc->ctx, kernel, regions, work) for each kernel
 * in schedule order and returns 0.
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
    LLVMValueRef fn;    /* kernel to run through parallel_for, or NULL */
    int64_t work;
    int src_region, dst_region; /* memcpy when fn is NULL */
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
    return st;
}

static int add_fill(EntryState *s, int32_t v, int region, int64_t offset, int after, int *nfill) {
    Cg *c = s->c;
    uint8_t *member = calloc((size_t)s->e->g->n, 1);
    if (!member) return cg_fail(c, "out of memory");
    member[v] = 1;
    char name[128];
    snprintf(name, sizeof name, "%s_f%d_fill", s->e->name, (*nfill)++);
    CgKernelRec *rec = NULL;
    LLVMValueRef fn = cg_emit_kernel(c, s->e->g, s->e->plan, v, member, region, offset, name, s->e->name, &rec);
    free(member);
    if (!fn) return -1;
    rec->op = "fill";
    Step *st = add_step(s);
    if (!st) return -1;
    st->key = 2 * after + 2;
    st->fn = fn;
    st->work = rec->work;
    return 0;
}

static int plan_steps(EntryState *s, LLVMValueRef *kfn, int64_t *kwork) {
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
        if (!kfn[k]) continue;
        Step *st = add_step(s);
        if (!st) return -1;
        st->key = 2 * k + 1;
        st->fn = kfn[k];
        st->work = kwork[k];
    }
    return 0;
}

static void emit_call(Cg *c, LLVMValueRef regions, LLVMValueRef ctx, LLVMValueRef pf, LLVMValueRef fn, int64_t work) {
    LLVMValueRef args[4] = {ctx, fn, regions, cg_i64(c, work)};
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

LLVMValueRef cg_emit_entry(Cg *c, const CodegenEntry *e) {
    const IrGraph *g = e->g;
    const SchedPlan *p = e->plan;
    if (p->nnodes != g->n) {
        cg_fail(c, "%s: the schedule covers %d nodes, the graph has %d", e->name, p->nnodes, g->n);
        return NULL;
    }
    EntryState s = {.c = c, .e = e};
    s.root_kernel = malloc((size_t)g->n * sizeof *s.root_kernel);
    LLVMValueRef *kfn = calloc((size_t)p->nkernels + 1, sizeof *kfn);
    int64_t *kwork = calloc((size_t)p->nkernels + 1, sizeof *kwork);
    uint8_t *member = calloc((size_t)g->n, 1);
    LLVMValueRef entry = NULL;
    if (!s.root_kernel || !kfn || !kwork || !member) {
        cg_fail(c, "out of memory");
        goto done;
    }
    for (int32_t v = 0; v < g->n; v++) s.root_kernel[v] = -1;
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
        memset(member, 0, (size_t)g->n);
        member[sk->root] = 1;
        for (int j = 0; j < sk->nmembers; j++) member[p->members[sk->first + j]] = 1;
        if ((n->op == OP_CONST || n->op == OP_IOTA) && p->region[sk->root] == DPOC_R_ARENA)
            continue; /* readers compute it inline; its arena buffer is never read */
        if (p->region[sk->root] < 0) {
            cg_fail(c, "%s: kernel %d (%s %%%d) has no place for its result", e->name, k, ir_op_info[n->op].name, sk->root);
            goto done;
        }
        char name[128];
        snprintf(name, sizeof name, "%s_k%d_%s", e->name, k, ir_op_info[n->op].name);
        CgKernelRec *rec = NULL;
        kfn[k] = cg_emit_kernel(c, g, p, sk->root, member, p->region[sk->root], p->offset[sk->root], name, e->name, &rec);
        if (!kfn[k]) goto done;
        kwork[k] = rec->work;
    }
    if (plan_steps(&s, kfn, kwork)) goto done;

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

    char fname[128];
    snprintf(fname, sizeof fname, "dpoc_%s", e->name);
    entry = LLVMAddFunction(c->mod, fname, c->entry_ty);
    LLVMSetLinkage(entry, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, entry, "entry"));
    LLVMValueRef regions = LLVMGetParam(entry, 0), svc = LLVMGetParam(entry, 1);
    LLVMTypeRef svc_ty = LLVMStructTypeInContext(c->ctx, (LLVMTypeRef[]){c->ptr, c->ptr}, 2, 0);
    LLVMValueRef ctx = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildStructGEP2(c->b, svc_ty, svc, 0, ""), "ctx");
    LLVMValueRef pf = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildStructGEP2(c->b, svc_ty, svc, 1, ""), "parallel_for");
    for (int i = 0; i < s.nsteps; i++) {
        const Step *st = &s.steps[i];
        if (st->fn) {
            emit_call(c, regions, ctx, pf, st->fn, st->work);
        } else {
            LLVMValueRef dst = cg_region_ptr(c, regions, st->dst_region, st->dst_off);
            LLVMValueRef src = cg_region_ptr(c, regions, st->src_region, st->src_off);
            LLVMBuildMemCpy(c->b, dst, 4, src, 4, cg_i64(c, st->bytes));
        }
    }
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, 0, 0));
done:
    free(s.root_kernel);
    free(s.steps);
    free(kfn);
    free(kwork);
    free(member);
    return c->failed ? NULL : entry;
}
