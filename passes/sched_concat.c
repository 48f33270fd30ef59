/* sched_concat.c — concat placement: a concat's operands computed straight
 * into their blocks of the concat's bytes (see sched_concat.h).
 *
 * The weight gradient of a head in vocabulary chunks is, after simplify,
 * concat(dW_0, concat(dW_1, ...)) (or that plus the tied embedding's
 * scatter). Stored as it comes, every chunk's dW_c would stay alive from its
 * matmul until the one kernel that concatenates them (for Qwen2-0.5B, 19
 * chunks of 28 MiB held through the whole backward). Instead each operand
 * whose kernel writes nothing else is *hosted*: it gets no buffer of its own,
 * its bytes are its block of the storage that receives the concat, and the
 * concat becomes an alias of those bytes with no work left to do.
 *
 * A kernel K whose root R owns storage hosts:
 *   - R itself, when R is a concat: R's operands go into R's bytes, and K,
 *     whose every element would be copied onto itself, is dropped;
 *   - an input C of R that R may read in place (ir_op_reads_in_place: any
 *     input of an elementwise R; the base of a scatter_add_into, a tied
 *     embedding's gradient, to which K then only adds the ids' rows), when
 *     K has no matmul (a GEMM accumulates in its output before the epilogue
 *     reads its inputs), C is a concat member of K alone, of R's type, read
 *     by R alone: C's operands go into R's bytes and C stops being a member
 *     of K. K then reads each element of C where it writes the same element
 *     of R (codegen drops its no-alias claim for such a kernel, cg_dedup.c).
 * A concat's operands are hosted all or none. Each must be a kernel root (or
 * a nested concat of K alone, hosted the same way) that nothing else reads,
 * not an output, of the concat's dtype, with its block starting at a
 * DPOC_REGION_ALIGN multiple; and every dim before the concat's axis must
 * have size 1, so that each block is contiguous. Kernels are looked at from
 * the last to the first, so a root hosted by a later kernel can in turn host
 * its own operands (schedule.c resolves the chain).
 */
#include "sched_concat.h"

#include <stdlib.h>
#include <string.h>

typedef struct Place {
    const IrGraph *g;
    const int32_t *step;
    const uint8_t *placed; /* roots already in an output slot */
    const int32_t *nread;  /* reader slots + outputs naming the value */
    const int32_t *kof;    /* the kernel a value is a member of (not its root); -2 if several */
    int32_t *host;
    int64_t *hoff;
    uint8_t *drop;         /* a hosted concat member: no longer computed by its kernel */
    int32_t *undo;         /* values hosted by the attempt under way */
    int32_t nundo;
} Place;

static int same_type(const IrNode *a, const IrNode *b) {
    return a->dtype == b->dtype && a->ndim == b->ndim &&
           memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0;
}

static void host_at(Place *pl, int32_t x, int32_t h, int64_t off, int member) {
    pl->host[x] = h;
    pl->hoff[x] = off;
    pl->drop[x] = (uint8_t)member;
    pl->undo[pl->nundo++] = x;
}

/* Hosts the operands of concat c (a member of kernel k, or its root) at byte
 * off of h's storage; 0 when one of them cannot be (the caller undoes). */
static int place_concat(Place *pl, int32_t c, int32_t h, int64_t off, int32_t k) {
    const IrNode *n = ir_node(pl->g, c);
    int ax = (int)n->attr[0];
    int64_t outer = 1, row = ir_dtype_size((IrDType)n->dtype);
    for (int d = 0; d < ax; d++) outer *= n->shape[d];
    for (int d = ax + 1; d < n->ndim; d++) row *= n->shape[d];
    if (outer != 1) return 0;
    for (int i = 0; i < 2; i++) {
        int32_t y = n->in[i];
        const IrNode *v = ir_node(pl->g, y);
        int64_t at = off + (i ? ir_node(pl->g, n->in[0])->shape[ax] * row : 0);
        if (pl->nread[y] != 1 || pl->host[y] >= 0 || v->dtype != n->dtype) return 0;
        if (v->op == OP_CONCAT && pl->kof[y] == k) {
            host_at(pl, y, h, at, 1);
            if (!place_concat(pl, y, h, at, k)) return 0;
        } else if (v->op != OP_RESHAPE && pl->step[y] >= 0 && pl->kof[y] == -1 && !pl->placed[y] &&
                   at % DPOC_REGION_ALIGN == 0) {
            host_at(pl, y, h, at, 0);
        } else {
            return 0;
        }
    }
    return 1;
}

/* one attempt: concat c into h's bytes; undone unless every operand is hosted */
static int try_concat(Place *pl, int32_t c, int32_t h, int32_t k) {
    pl->nundo = 0;
    if (place_concat(pl, c, h, 0, k)) return 1;
    for (int32_t i = 0; i < pl->nundo; i++) {
        pl->host[pl->undo[i]] = -1;
        pl->hoff[pl->undo[i]] = 0;
        pl->drop[pl->undo[i]] = 0;
    }
    return 0;
}

static int kernel_has_matmul(const IrGraph *g, const SchedPlan *p, int32_t k) {
    const SchedKernel *sk = &p->kernels[k];
    for (int32_t j = 0; j < sk->nmembers; j++)
        if (ir_op_is_matmul((IrOp)ir_node(g, p->members[sk->first + j])->op)) return 1;
    return 0;
}

/* Drops the kernels marked in kill and the members marked in drop, and
 * renumbers step[] and the copies: a dropped kernel's value is complete
 * after the last kernel kept before it (its operands all ran earlier). */
static void renumber(const IrGraph *g, SchedPlan *p, int32_t *step, const uint8_t *kill, const uint8_t *drop,
                     int32_t *newk) {
    int32_t nk = 0, nm = 0;
    for (int32_t k = 0; k < p->nkernels; k++) {
        SchedKernel sk = p->kernels[k];
        newk[k] = kill[k] ? nk - 1 : nk;
        if (kill[k]) continue;
        int32_t first = nm;
        for (int32_t j = 0; j < sk.nmembers; j++) {
            int32_t m = p->members[sk.first + j];
            if (!drop[m]) p->members[nm++] = m;
        }
        p->kernels[nk++] = (SchedKernel){sk.root, first, nm - first};
    }
    for (int32_t id = 0; id < g->n; id++)
        if (step[id] >= 0) step[id] = newk[step[id]];
    for (int32_t i = 0; i < p->ncopies; i++)
        if (p->copies[i].after >= 0) p->copies[i].after = newk[p->copies[i].after];
    p->nkernels = nk;
}

int sched_place_concats(const IrGraph *g, SchedPlan *p, const uint8_t *live, int32_t *step, const uint8_t *placed,
                        int32_t *host, int64_t *hoff, char *err, size_t errlen) {
    int32_t n = g->n;
    size_t nn = (size_t)(n ? n : 1), nk = (size_t)(p->nkernels ? p->nkernels : 1);
    int32_t *nread = calloc(nn, sizeof *nread), *kof = malloc(nn * sizeof *kof), *undo = malloc(nn * sizeof *undo);
    int32_t *newk = malloc(nk * sizeof *newk);
    uint8_t *drop = calloc(nn, 1), *kill = calloc(nk, 1);
    int rc = -1;
    if (!nread || !kof || !undo || !newk || !drop || !kill) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int32_t id = 0; id < n; id++) {
        kof[id] = -1;
        if (!live[id]) continue;
        const IrNode *x = ir_node(g, id);
        for (int i = 0; i < ir_op_info[x->op].nin; i++) nread[x->in[i]]++;
    }
    for (int32_t i = 0; i < g->nout; i++) nread[g->outs[i].id]++;
    for (int32_t k = 0; k < p->nkernels; k++) {
        const SchedKernel *sk = &p->kernels[k];
        for (int32_t j = 0; j < sk->nmembers; j++) {
            int32_t m = p->members[sk->first + j];
            if (m != sk->root) kof[m] = kof[m] == -1 ? k : -2;
        }
    }
    Place pl = {g, step, placed, nread, kof, host, hoff, drop, undo, 0};
    int any = 0;
    for (int32_t k = p->nkernels - 1; k >= 0; k--) {
        int32_t r = p->kernels[k].root;
        const IrNode *R = ir_node(g, r);
        if (R->op == OP_CONCAT) {
            if (try_concat(&pl, r, r, k)) kill[k] = 1, any = 1;
            continue;
        }
        int has_mm = -1; /* asked once, for a root that may read an input in place */
        for (int i = 0; i < ir_op_info[R->op].nin; i++) {
            if (!ir_op_reads_in_place((IrOp)R->op, i)) continue;
            if (has_mm < 0) has_mm = kernel_has_matmul(g, p, k);
            if (has_mm) break;
            int32_t c = R->in[i];
            const IrNode *C = ir_node(g, c);
            if (C->op != OP_CONCAT || kof[c] != k || nread[c] != 1 || host[c] >= 0 || !same_type(C, R)) continue;
            if (try_concat(&pl, c, r, k)) {
                host[c] = r, hoff[c] = 0, drop[c] = 1, any = 1;
                break;
            }
        }
    }
    if (any) {
        /* a hosted member is read, not computed, by its kernel: give it that
         * kernel's step; a dropped concat root keeps the step of its own */
        for (int32_t k = 0; k < p->nkernels; k++) {
            const SchedKernel *sk = &p->kernels[k];
            for (int32_t j = 0; j < sk->nmembers; j++) {
                int32_t m = p->members[sk->first + j];
                if (drop[m]) step[m] = kill[k] ? step[sk->root] : k;
            }
        }
        renumber(g, p, step, kill, drop, newk);
    }
    rc = 0;
out:
    free(nread);
    free(kof);
    free(undo);
    free(newk);
    free(drop);
    free(kill);
    return rc;
}
