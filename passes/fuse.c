/* fuse.c — the fusion pass: which values are computed inline inside which
 * kernel, and which are stored.
 *
 * Greedy, consumers in reverse id order absorb producers. The walk goes
 * from the highest live id down. A value that some kernel already reads
 * from memory, or that is a graph output, is *stored*: it becomes the root
 * of a kernel of its own. A value that every reader computes inline is
 * skipped (it is only a member). Because a value's readers all have higher
 * ids, every reader has decided before the walk reaches the value.
 *
 * Building a kernel is a depth-first walk from its root over inputs: each
 * input is absorbed (becomes a member, and its own inputs are considered)
 * or refused (it is stored; its kernel is built when the walk reaches it).
 * The rules, each refusal with the reason printed at DPOC_DEBUG=1:
 *   - only ops codegen can evaluate inline are members (ir_op_inlinable):
 *     a reduction, matmul, scatter or collective always ends a kernel;
 *     params and inputs are in memory anyway (no message);
 *   - a matmul reads stored operands (no prologue fusion): a matmul root,
 *     or a matmul member, absorbs nothing; a collective root absorbs nothing;
 *   - epilogue: an elementwise root absorbs a matmul that is one of its own
 *     inputs, of the same shape and dtype, read by it alone (one per
 *     kernel). Codegen runs the root's expression over each finished output
 *     tile of the GEMM, with the tile's values in place of the matmul (a
 *     bias, a residual add, a gradient sum), so the matmul's result is
 *     never stored and read back. Kernels run in root order, so only when
 *     nothing but params, inputs and free ops lies between the two ids
 *     (otherwise the matmul's operands would stay alive across other
 *     kernels: more memory, not less);
 *   - graph outputs are stored;
 *   - OPF_EXPENSIVE ops are never absorbed (never duplicated);
 *   - *free* ops (movement, const, iota, neg, stop_grad: index arithmetic or
 *     a sign flip) are absorbed even when several kernels read them: each
 *     reader recomputes them, which costs nothing and saves a buffer the size
 *     of the result (a broadcast is usually much bigger than its input);
 *   - *index expressions* are recomputed by every reader too: cheap
 *     elementwise ops (compare, select, add, cast, ...) over const, iota and
 *     broadcasts that read at least 8x fewer elements than they make (a
 *     column index compared with a row's target, a causal mask). Storing
 *     one would cost a buffer of its full size for a few ops per element;
 *   - *light expressions* are recomputed by each of up to 4 readers, each
 *     reading them element for element: cheap elementwise ops and sigmoid
 *     (one vector exp per element costs less than writing a buffer and
 *     reading it back; no bare exp, log, div) at most 4 deep over index
 *     expressions, small broadcasts and at most one *big* value that is
 *     stored anyway (a param, an input, a matmul, a reduction: anything no
 *     kernel computes inline, with more than 1/8 of the expression's
 *     elements). The scaled, causally masked scores that a softmax's row
 *     max and its exp both read are one, and the SwiGLU backward's
 *     sigmoid(gate) and gate * sigmoid(gate): each reader reads the
 *     matmul's buffer where it would have read the expression's, so
 *     recomputing costs a few ops per element and saves
 *     the expression's write and its buffer;
 *   - any other producer with several readers is stored: recomputing it
 *     would repeat real work or read more (two big inputs per reader instead
 *     of one stored value) and keep its inputs alive longer, while storing
 *     costs one write and one read per reader;
 *   - below a value recomputed in several kernels only free ops, index
 *     expressions and light expressions follow;
 *   - amplification: an input evaluated k times per element of its own
 *     (behind a broadcast, unpick, concat, or as gather's ids) is absorbed
 *     only when free, or cheap (add, mul, select, ...) with k <= 2;
 *     exp/log/div/sqrt are never recomputed;
 *   - gather_rows is absorbed only with one reader and no amplification;
 *   - a kernel holds at most FUSE_MAX_MEMBERS members (constants aside), so
 *     emitted functions stay small.
 * The result goes into the graph (IrGraph.kernels: every kernel, root and
 * members) where schedule.c reads it; the IR text lists it as `kernel`
 * lines. The pass changes no node, so it is idempotent; running it again
 * recomputes the same kernels.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

enum { FUSE_MAX_MEMBERS = 64, LIGHT_DEPTH = 4, LIGHT_MAX_READERS = 4 };

typedef struct Fuse {
    IrGraph *g;
    PassCtx *c;
    uint8_t *live, *isout, *stored;
    int32_t *ncons;    /* distinct live readers (+1 per output naming it) */
    int32_t *stamp;    /* == kernel number + 1 when a member of the kernel being built */
    int32_t kstamp;
    int32_t *mem;      /* members of the kernel being built */
    int32_t nmem, nreal; /* members, and members that are not const/iota */
    int32_t root;
    int32_t mm;        /* the matmul member of the kernel being built (epilogue), or -1 */
    int64_t refused;
} Fuse;

static int is_free(IrOp op) {
    switch (op) {
    case OP_CONST: case OP_IOTA: case OP_NEG: case OP_STOP_GRAD: case OP_BROADCAST: case OP_RESHAPE:
    case OP_PERMUTE: case OP_SLICE: case OP_PAD: case OP_CONCAT:
        return 1;
    default: return 0;
    }
}

static int is_cheap(IrOp op) {
    switch (op) {
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_MAX: case OP_MIN: case OP_SELECT: case OP_CMP_LT: case OP_CAST:
    case OP_ABS: case OP_PICK: case OP_UNPICK:
        return 1;
    default: return is_free(op);
    }
}

/* an index expression (see the header), looked at to a depth of 6 */
static int is_index_expr(const IrGraph *g, int32_t x, int depth) {
    const IrNode *n = ir_node(g, x);
    IrOp op = (IrOp)n->op;
    if (op == OP_CONST || op == OP_IOTA) return 1;
    if (op == OP_BROADCAST) return ir_numel(ir_node(g, n->in[0])) * 8 <= ir_numel(n);
    if (depth <= 0 || !is_cheap(op) || op == OP_PICK || op == OP_UNPICK || (ir_op_info[op].flags & OPF_LEAF))
        return 0;
    for (int i = 0; i < ir_op_info[op].nin; i++)
        if (!is_index_expr(g, n->in[i], depth - 1)) return 0;
    return 1;
}

/* Counts the leaves of a light expression (see the header) into *big and
 * returns 0 when x is not one. A leaf is a value some kernel stores anyway
 * (a param, an input, a matmul, a reduction, ...); it is big unless it has
 * at most 1/8 of x's elements (a row statistic behind a broadcast). */
static int light_walk(const IrGraph *g, int32_t x, int64_t numel, int depth, int32_t *big) {
    const IrNode *n = ir_node(g, x);
    IrOp op = (IrOp)n->op;
    if (is_index_expr(g, x, 6)) return 1;
    if (op == OP_PARAM || op == OP_INPUT || ir_op_is_matmul(op) || !ir_op_inlinable(op)) {
        if (ir_numel(n) * 8 > numel && *big != x) {
            if (*big >= 0) return 0; /* two big leaves: recomputing reads more than storing */
            *big = x;
        }
        return 1;
    }
    if (depth <= 0) return 0;
    if (op == OP_RESHAPE || op == OP_BROADCAST) return light_walk(g, n->in[0], numel, depth - 1, big);
    int light_op = (is_cheap(op) || op == OP_SIGMOID) && !is_free(op) && op != OP_PICK && op != OP_UNPICK;
    if (!light_op || ir_numel(n) != numel) return 0;
    for (int i = 0; i < ir_op_info[op].nin; i++)
        if (!light_walk(g, n->in[i], numel, depth - 1, big)) return 0;
    return 1;
}

static int is_light(const IrGraph *g, int32_t x) {
    int32_t big = -1;
    return light_walk(g, x, ir_numel(ir_node(g, x)), LIGHT_DEPTH, &big);
}

/* how many times input slot i of y is evaluated per element of its own */
static int64_t amp_of(const IrGraph *g, int32_t y, int i) {
    const IrNode *n = ir_node(g, y), *x = ir_node(g, n->in[i]);
    if (n->op == OP_REDUCE_SUM || n->op == OP_REDUCE_MAX) return 1;
    if (n->op == OP_SCATTER_ADD_ROWS || n->op == OP_SCATTER_ADD_INTO) return i == 1 ? n->shape[0] : 1;
    if (n->op == OP_PAD || n->op == OP_SLICE) return 1;
    int64_t a = ir_numel(n), b = ir_numel(x);
    if (b <= 0 || a <= b) return 1;
    return (a + b - 1) / b;
}

static void refuse(Fuse *f, int32_t y, int32_t x, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void refuse(Fuse *f, int32_t y, int32_t x, const char *fmt, ...) {
    f->refused++;
    if (f->c->debug < 1 || !f->c->log) return;
    const IrGraph *g = f->g;
    fprintf(f->c->log, "fuse: kernel %%%d: %%%d (%s) does not absorb %%%d (%s): ", f->root, y,
            ir_op_info[ir_node(g, y)->op].name, x, ir_op_info[ir_node(g, x)->op].name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f->c->log, fmt, ap);
    va_end(ap);
    fputc('\n', f->c->log);
}

/* NULL when matmul x may become the member of an epilogue kernel (the
 * header), read through y with amplification amp; otherwise the reason */
static const char *epilogue_verdict(Fuse *f, int32_t y, int32_t x, int64_t amp) {
    const IrGraph *g = f->g;
    const IrNode *r = ir_node(g, f->root), *m = ir_node(g, x);
    if (y != f->root || ir_op_info[r->op].cls != FC_ELEMWISE)
        return "matmul is the root of its own kernel unless an elementwise root reads it directly (epilogue)";
    if (f->mm >= 0) return "the kernel already has a matmul (one epilogue per kernel)";
    if (f->isout[x]) return "it is a graph output, so it is stored";
    if (f->ncons[x] > 1) return "the matmul has other readers, so it is stored once";
    if (amp != 1 || r->dtype != m->dtype || r->ndim != m->ndim ||
        memcmp(r->shape, m->shape, sizeof r->shape[0] * (size_t)r->ndim))
        return "the epilogue must read the matmul element for element (same shape and dtype)";
    /* kernels run in root order: the matmul moves to the root's place, so a
     * kernel in between would keep its operands alive longer (memory) */
    for (int32_t id = x + 1; id < f->root; id++) {
        IrOp op = (IrOp)ir_node(g, id)->op;
        if (f->live[id] && op != OP_PARAM && op != OP_INPUT && !is_free(op))
            return "a kernel between the matmul and this reader would keep the matmul's operands alive longer";
    }
    f->mm = x;
    return NULL;
}

/* NULL when x may become a member of the kernel being built, read through y
 * with amplification amp, below a recomputed value when dup; otherwise
 * the reason, written into buf */
static const char *verdict(Fuse *f, int32_t y, int32_t x, int64_t amp, int dup, char *buf, size_t len) {
    const IrGraph *g = f->g;
    IrOp op = (IrOp)ir_node(g, x)->op, rop = (IrOp)ir_node(g, f->root)->op;
    const IrOpInfo *info = &ir_op_info[op];
    if (op == OP_PARAM || op == OP_INPUT) return ""; /* in memory anyway: no message */
    if (ir_op_info[rop].flags & OPF_COLLECTIVE) return "a collective is a barrier: it reads stored values";
    if (info->flags & OPF_COLLECTIVE) return "a collective is a barrier: its result is stored";
    if (ir_op_is_matmul(ir_node(g, y)->op)) return "matmul reads its operands from memory (no prologue fusion)";
    if ((ir_node(g, y)->op == OP_ATTENTION || ir_node(g, y)->op == OP_ATTENTION_GRAD) && op != OP_CONST)
        return "attention reads its operands from memory (each element is read once per key or query)";
    if (op == OP_MATMUL_MASKED) return "a masked matmul zeroes its dead rows after the last K block: no epilogue";
    if (op == OP_MATMUL) return epilogue_verdict(f, y, x, amp);
    if (!ir_op_inlinable(op)) {
        snprintf(buf, len, "%s is not computed inline: it is the root of its own kernel", info->name);
        return buf;
    }
    if (f->isout[x]) return "it is a graph output, so it is stored";
    if (info->flags & OPF_EXPENSIVE) return "expensive ops are never duplicated";
    int free_op = is_free(op);
    if (!free_op && f->nreal >= FUSE_MAX_MEMBERS) {
        snprintf(buf, len, "the kernel is full (%d members)", FUSE_MAX_MEMBERS);
        return buf;
    }
    if (free_op) return NULL;
    if (f->ncons[x] > 1 || dup) {
        if (is_index_expr(g, x, 6)) return NULL;
        if (amp == 1 && f->ncons[x] <= LIGHT_MAX_READERS && is_light(g, x)) return NULL;
    }
    if (f->ncons[x] > 1) {
        snprintf(buf, len, "it has %d readers and is not free to recompute, so it is stored once", f->ncons[x]);
        return buf;
    }
    if (dup) return "it lies below a value recomputed in several kernels";
    if (op == OP_GATHER_ROWS && amp > 1) {
        snprintf(buf, len, "gather_rows would be evaluated %lldx per element", (long long)amp);
        return buf;
    }
    if (amp > 2 || (amp > 1 && !is_cheap(op))) {
        snprintf(buf, len, "it would be evaluated %lldx per element (behind a %s)", (long long)amp,
                 ir_op_info[ir_node(g, y)->op].name);
        return buf;
    }
    return NULL;
}

static void absorb(Fuse *f, int32_t y, int64_t amp, int dup) {
    const IrGraph *g = f->g;
    const IrNode *n = ir_node(g, y);
    int nin = ir_op_info[n->op].nin;
    for (int i = 0; i < nin; i++) {
        int32_t x = n->in[i];
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= n->in[j] == x;
        if (seen || f->stamp[x] == f->kstamp) continue;
        int64_t a = amp * amp_of(g, y, i);
        if (a > ((int64_t)1 << 40)) a = (int64_t)1 << 40;
        char buf[160];
        const char *why = verdict(f, y, x, a, dup, buf, sizeof buf);
        if (why) {
            f->stored[x] = 1;
            if (why[0]) refuse(f, y, x, "%s", why);
            continue;
        }
        IrOp op = (IrOp)ir_node(g, x)->op;
        f->stamp[x] = f->kstamp;
        f->mem[f->nmem++] = x;
        if (op != OP_CONST && op != OP_IOTA) f->nreal++;
        absorb(f, x, a, dup || f->ncons[x] > 1);
    }
}

int pass_fuse(IrGraph *g, PassCtx *c) {
    int32_t n = g->n;
    size_t nn = (size_t)(n ? n : 1);
    Fuse f = {.g = g, .c = c};
    f.live = calloc(nn, 1);
    f.isout = calloc(nn, 1);
    f.stored = calloc(nn, 1);
    f.ncons = calloc(nn, sizeof *f.ncons);
    f.stamp = calloc(nn, sizeof *f.stamp);
    f.mem = malloc(nn * sizeof *f.mem);
    int rc = PASS_ERROR;
    IrKernel *old = NULL;
    int32_t *oldm = NULL, nold = g->nkernels, noldm = g->nkmembers;
    if (!f.live || !f.isout || !f.stored || !f.ncons || !f.stamp || !f.mem) {
        snprintf(c->err, sizeof c->err, "out of memory");
        goto done;
    }
    /* the previous result, to tell whether anything changed */
    old = malloc(sizeof *old * (size_t)(nold ? nold : 1));
    oldm = malloc(sizeof *oldm * (size_t)(noldm ? noldm : 1));
    if (!old || !oldm) {
        snprintf(c->err, sizeof c->err, "out of memory");
        goto done;
    }
    if (nold) memcpy(old, g->kernels, sizeof *old * (size_t)nold);
    if (noldm) memcpy(oldm, g->kmembers, sizeof *oldm * (size_t)noldm);
    ir_kernels_clear(g);

    for (int32_t i = 0; i < g->nout; i++) {
        f.live[g->outs[i].id] = f.isout[g->outs[i].id] = f.stored[g->outs[i].id] = 1;
        f.ncons[g->outs[i].id]++;
    }
    for (int32_t id = n - 1; id >= 0; id--) {
        if (!f.live[id]) continue;
        const IrNode *x = ir_node(g, id);
        int nin = ir_op_info[x->op].nin;
        for (int i = 0; i < nin; i++) {
            int seen = 0;
            for (int j = 0; j < i; j++) seen |= x->in[j] == x->in[i];
            if (seen) continue;
            f.live[x->in[i]] = 1;
            f.ncons[x->in[i]]++;
        }
    }
    int32_t nk = 0, nmembers = 0;
    for (int32_t id = n - 1; id >= 0; id--) {
        if (!f.live[id]) continue;
        const IrNode *x = ir_node(g, id);
        if (x->op == OP_PARAM || x->op == OP_INPUT) continue;
        if (x->op == OP_RESHAPE) { /* an alias: stored means its input is stored */
            if (f.stored[id]) f.stored[x->in[0]] = 1;
            continue;
        }
        if (!f.stored[id]) continue; /* every reader computes it inline */
        f.root = id;
        f.kstamp = ++nk;
        f.nmem = f.nreal = 0;
        f.mm = -1;
        absorb(&f, id, 1, 0);
        if (ir_kernel_add(g, id, f.mem, f.nmem)) {
            snprintf(c->err, sizeof c->err, "%s", g->err);
            goto done;
        }
        nmembers += f.nmem;
    }
    /* kernels were found from the top down; the graph lists them by root */
    for (int32_t i = 0, j = g->nkernels - 1; i < j; i++, j--) {
        IrKernel t = g->kernels[i];
        g->kernels[i] = g->kernels[j];
        g->kernels[j] = t;
    }
    if (c->debug >= 1 && c->log)
        fprintf(c->log, "fuse: %d kernels, %d values computed inline, %lld refusals\n", (int)nk, (int)nmembers,
                (long long)f.refused);
    rc = PASS_UNCHANGED;
    if (nold != g->nkernels || noldm != g->nkmembers) rc = PASS_CHANGED;
    for (int32_t i = 0; i < nold && rc == PASS_UNCHANGED; i++) {
        const IrKernel *a = &old[i], *b = &g->kernels[i];
        if (a->root != b->root || a->n != b->n ||
            (a->n && memcmp(oldm + a->first, g->kmembers + b->first, sizeof *oldm * (size_t)a->n) != 0))
            rc = PASS_CHANGED;
    }
done:
    free(old);
    free(oldm);
    free(f.live);
    free(f.isout);
    free(f.stored);
    free(f.ncons);
    free(f.stamp);
    free(f.mem);
    return rc;
}
