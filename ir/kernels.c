/* kernels.c — the fusion result carried by a graph: kernels and their members.
 *
 * The fuse pass (passes/fuse.c) groups values into kernels. A kernel is a
 * root, the value it writes to memory, plus members: values of lower id
 * that it computes inline, element by element, and never stores. The graph
 * keeps them in two flat arrays (IrGraph.kernels, by increasing root, and
 * IrGraph.kmembers, each kernel's members by increasing id) so a copy is two
 * memcpys and the schedule reads them without a second data structure. A
 * graph with no kernels has not been fused: the schedule then makes every
 * value a kernel of its own.
 *
 * In the text every kernel is one line after the outputs,
 * `kernel %ROOT = %M1, %M2` (or `kernel %ROOT` without members); parse.c
 * reads it back through ir_kernel_add, so print -> parse -> print holds for
 * fused graphs too. The verifier checks what the schedule and codegen rely
 * on: roots increase and compute something (not a param, input or reshape,
 * which are storage or aliases), members are below their root, strictly
 * increasing, and of an op that codegen can evaluate inline
 * (ir_op_inlinable: elementwise, movement, pick/unpick, gather_rows, const,
 * iota — never a reduction, scatter or collective). The one exception is
 * an epilogue kernel: an elementwise root may have a matmul member that is
 * one of its own inputs, of its shape and dtype (at most one per kernel),
 * whose operands are not members (codegen runs the root over the finished
 * GEMM tiles). A value may be a member of several kernels (cheap movement
 * recomputed where it is read).
 */
#include "text.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int ir_op_reads_in_place(IrOp op, int slot) {
    if (op >= OP_COUNT || slot < 0 || slot >= ir_op_info[op].nin) return 0;
    return ir_op_info[op].cls == FC_ELEMWISE || (op == OP_SCATTER_ADD_INTO && slot == 2);
}

int ir_op_inlinable(IrOp op) {
    if (op >= OP_COUNT) return 0;
    const IrOpInfo *info = &ir_op_info[op];
    if (info->flags & OPF_COLLECTIVE) return 0;
    if (op == OP_CONST || op == OP_IOTA || op == OP_GATHER_ROWS) return 1;
    return info->cls == FC_ELEMWISE || info->cls == FC_BROADCAST || info->cls == FC_INJECTIVE;
}

void ir_kernels_clear(IrGraph *g) {
    free(g->kernels);
    free(g->kmembers);
    g->kernels = NULL;
    g->kmembers = NULL;
    g->nkernels = g->kernelcap = g->nkmembers = g->kmembercap = 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int ir_kernel_add(IrGraph *g, int32_t root, const int32_t *members, int32_t n) {
    if (n < 0) return ir_set_error(g, "kernel %%%d: negative member count", root);
    if (g->nkernels == g->kernelcap) {
        int32_t cap = g->kernelcap ? 2 * g->kernelcap : 64;
        IrKernel *k = realloc(g->kernels, (size_t)cap * sizeof *k);
        if (!k) return ir_set_error(g, "out of memory");
        g->kernels = k;
        g->kernelcap = cap;
    }
    if (g->nkmembers + n > g->kmembercap) {
        int32_t cap = g->kmembercap ? g->kmembercap : 256;
        while (cap < g->nkmembers + n) cap *= 2;
        int32_t *m = realloc(g->kmembers, (size_t)cap * sizeof *m);
        if (!m) return ir_set_error(g, "out of memory");
        g->kmembers = m;
        g->kmembercap = cap;
    }
    IrKernel *k = &g->kernels[g->nkernels++];
    k->root = root;
    k->first = g->nkmembers;
    k->n = n;
    if (n) {
        memcpy(g->kmembers + k->first, members, (size_t)n * sizeof *members);
        qsort(g->kmembers + k->first, (size_t)n, sizeof *members, cmp_i32);
    }
    g->nkmembers += n;
    return 0;
}

int ir_kernels_copy(IrGraph *dst, const IrGraph *src) {
    for (int32_t i = 0; i < src->nkernels; i++) {
        const IrKernel *k = &src->kernels[i];
        if (ir_kernel_add(dst, k->root, src->kmembers + k->first, k->n)) return -1;
    }
    return 0;
}

void ir_kernels_print(const IrGraph *g, FILE *f) {
    for (int32_t i = 0; i < g->nkernels; i++) {
        const IrKernel *k = &g->kernels[i];
        fprintf(f, "kernel %%%d", k->root);
        for (int32_t j = 0; j < k->n; j++) fprintf(f, j ? ", %%%d" : " = %%%d", g->kmembers[k->first + j]);
        fputc('\n', f);
    }
}

static int kfail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int kfail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_member(const IrGraph *g, const IrKernel *k, int32_t id) {
    for (int32_t j = 0; j < k->n; j++)
        if (g->kmembers[k->first + j] == id) return 1;
    return 0;
}

/* NULL when matmul member m of kernel k is a valid epilogue operand (the
 * header); *nmm remembers the first matmul member (+1) to refuse a second */
static const char *epilogue_problem(const IrGraph *g, const IrKernel *k, int32_t m, int *nmm) {
    const IrNode *r = ir_node(g, k->root), *x = ir_node(g, m);
    int direct = 0;
    for (int i = 0; i < ir_op_info[r->op].nin; i++) direct |= r->in[i] == m;
    if (ir_op_info[r->op].cls != FC_ELEMWISE || !direct) return "only an elementwise root may read a matmul member";
    if (r->dtype != x->dtype || r->ndim != x->ndim || memcmp(r->shape, x->shape, sizeof r->shape[0] * (size_t)r->ndim))
        return "it must have the root's shape and dtype";
    if (is_member(g, k, x->in[0]) || is_member(g, k, x->in[1])) return "its operands must be stored";
    if (*nmm > 0 && *nmm != m + 1) return "a kernel has at most one matmul member";
    *nmm = m + 1;
    return NULL;
}

int ir_kernels_verify(const IrGraph *g, char *err, size_t errlen) {
    if (g->nkernels < 0 || g->nkernels > g->kernelcap || (g->nkernels && !g->kernels) || g->nkmembers < 0 ||
        g->nkmembers > g->kmembercap || (g->nkmembers && !g->kmembers))
        return kfail(err, errlen, "kernel arrays: %d kernels, %d members", g->nkernels, g->nkmembers);
    int32_t prev = -1;
    for (int32_t i = 0; i < g->nkernels; i++) {
        const IrKernel *k = &g->kernels[i];
        if (k->root <= prev || k->root >= g->n)
            return kfail(err, errlen, "kernel %%%d: roots must increase and name values (previous %%%d, %d values)",
                         k->root, prev, g->n);
        prev = k->root;
        IrOp op = (IrOp)ir_node(g, k->root)->op;
        if (op == OP_PARAM || op == OP_INPUT || op == OP_RESHAPE)
            return kfail(err, errlen, "kernel %%%d: a %s is not computed by a kernel", k->root, ir_op_info[op].name);
        if (k->n < 0 || k->first < 0 || k->first + k->n > g->nkmembers)
            return kfail(err, errlen, "kernel %%%d: member range out of bounds", k->root);
        int32_t mprev = -1;
        int nmm = 0;
        for (int32_t j = 0; j < k->n; j++) {
            int32_t m = g->kmembers[k->first + j];
            if (m <= mprev || m >= k->root)
                return kfail(err, errlen, "kernel %%%d: member %%%d must be below the root and after %%%d", k->root, m,
                             mprev);
            mprev = m;
            IrOp mop = (IrOp)ir_node(g, m)->op;
            if (mop == OP_MATMUL) {
                const char *why = epilogue_problem(g, k, m, &nmm);
                if (why) return kfail(err, errlen, "kernel %%%d: matmul member %%%d: %s", k->root, m, why);
                continue;
            }
            if (!ir_op_inlinable(mop))
                return kfail(err, errlen, "kernel %%%d: member %%%d is a %s, which is never computed inline", k->root,
                             m, ir_op_info[mop].name);
        }
    }
    return 0;
}
