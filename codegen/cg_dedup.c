/* cg_dedup.c — kernel signatures, and the table of kernel functions and calls.
 *
 * Models repeat the same layer many times, so most scheduled kernels differ
 * only in where their operands live. A kernel function therefore takes its
 * operands' addresses in an argument array (p[0] the output, p[1..] the
 * stored values it reads) and every call with the same structure shares one
 * function.
 *
 * The structure is a canonical text, the key, built by a depth-first walk
 * from the kernel's root that visits inputs in order. Inline nodes (computed
 * by the kernel: members, constants, iota, reshapes of them, values with no
 * place) are numbered in post-order and written with everything the emitter
 * reads from them: op, dtype, shape, all attributes, the constant's bits,
 * sharding, and their inputs as local references (`n<i>` an inline node,
 * `s<j>` argument slot j). A stored value gets the next argument slot the
 * first time it is reached, and is written with its dtype and shape (the
 * emitter indexes it in its own shape). The same node reached twice is the
 * same reference, so `x*x` and `x*y` have different keys. Two calls whose
 * keys are equal emit the same instructions, with their pointers taken from
 * p by the same slots.
 *
 * Aliasing: a kernel's loads and stores claim only that the output does not
 * overlap any input (alias scopes, cg_eval.c); nothing is claimed between
 * inputs, which may be the same bytes in one call (a value and a reshape of
 * it) and different bytes in another. The walk checks the claim for every
 * call against the schedule's places, so it holds for every call of a
 * shared function. One overlap is allowed: a root without a matmul member
 * reads a direct input of its own type from exactly its output's bytes
 * where ir_op_reads_in_place says it may (an *in-place map*: an elementwise
 * root, each element read where it is then written; scatter_add_into's
 * base, to which the kernel only adds the ids' rows), as when the schedule
 * hosted a concat there (passes/sched_concat.c).
 * Such a kernel makes no claim (CgSig.inplace) and its key says so, so it
 * never shares a function with one that does.
 *
 * The walk's per-node scratch is stamped with an epoch instead of cleared,
 * so a walk costs the size of the kernel, not of the graph. Functions are
 * found by their key through an open-addressing table (FNV-1a hash, full
 * compare).
 */
#include "cg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the key text ---------------------------------------------------------- */
static int key_printf(Cg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int key_printf(Cg *c, const char *fmt, ...) {
    CgSig *s = &c->sig;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = s->key ? vsnprintf(s->key + s->len, s->kcap - s->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && s->len + (size_t)n < s->kcap) {
            s->len += (size_t)n;
            return 0;
        }
        size_t cap = s->kcap ? 2 * s->kcap : 1024;
        if (n >= 0 && cap < s->len + (size_t)n + 1) cap = s->len + (size_t)n + 1;
        char *k = realloc(s->key, cap);
        if (!k) return cg_fail(c, "out of memory");
        s->key = k;
        s->kcap = cap;
    }
}

static int key_shape(Cg *c, const IrNode *n) {
    int rc = key_printf(c, "%s[", ir_dtype_name((IrDType)n->dtype));
    for (int d = 0; d < n->ndim && !rc; d++) rc = key_printf(c, d ? ",%lld" : "%lld", (long long)n->shape[d]);
    return rc ? rc : key_printf(c, "]");
}

/* ---- the walk -------------------------------------------------------------- */
static int sig_reserve(Cg *c, int32_t nnodes) {
    CgSig *s = &c->sig;
    if (nnodes > s->cap) {
        uint32_t *st = realloc(s->stamp, (size_t)nnodes * sizeof *st);
        if (st) s->stamp = st;
        int32_t *lo = realloc(s->local, (size_t)nnodes * sizeof *lo);
        if (lo) s->local = lo;
        if (!st || !lo) return cg_fail(c, "out of memory");
        memset(s->stamp + s->cap, 0, (size_t)(nnodes - s->cap) * sizeof *st);
        s->cap = nnodes;
    }
    if (++s->epoch == 0) { /* wrapped: forget every stamp */
        memset(s->stamp, 0, (size_t)s->cap * sizeof *s->stamp);
        s->epoch = 1;
    }
    s->nargs = s->ninline = s->inplace = 0;
    s->len = 0;
    s->in_bytes = s->flops = 0;
    return 0;
}

static int sig_add_arg(Cg *c, int32_t id) {
    CgSig *s = &c->sig;
    if (s->nargs == s->acap) {
        int cap = s->acap ? 2 * s->acap : 16;
        int32_t *a = realloc(s->args, (size_t)cap * sizeof *a);
        if (!a) return cg_fail(c, "out of memory");
        s->args = a;
        s->acap = cap;
    }
    s->args[s->nargs] = id;
    return s->nargs++;
}

typedef struct SigWalk {
    CgKern k;            /* g, plan, member: what cg_is_stored needs */
    int out_region;
    int64_t out_offset, out_bytes;
    int no_matmul;       /* no member is a matmul (an in-place input is allowed) */
} SigWalk;

/* may stored input id overlap the output (an in-place map, see the header)? */
static int inplace_input(const SigWalk *w, int32_t id, int64_t off, int64_t nb) {
    const IrNode *r = ir_node(w->k.g, w->k.root), *n = ir_node(w->k.g, id);
    if (!w->no_matmul || off != w->out_offset || nb != w->out_bytes || n->dtype != r->dtype || n->ndim != r->ndim ||
        memcmp(n->shape, r->shape, (size_t)n->ndim * sizeof n->shape[0]) != 0)
        return 0;
    for (int i = 0; i < ir_op_info[r->op].nin; i++)
        if (r->in[i] == id && ir_op_reads_in_place((IrOp)r->op, i)) return 1;
    return 0;
}

static int64_t node_bytes(const IrNode *n) { return ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype); }

/* writes a reference to visited node id into the key */
static int sig_ref(Cg *c, int32_t id) {
    int32_t l = c->sig.local[id];
    return l >= 0 ? key_printf(c, "s%d", l) : key_printf(c, "n%d", -1 - l);
}

static int sig_visit(Cg *c, SigWalk *w, int32_t id) {
    CgSig *s = &c->sig;
    const IrGraph *g = w->k.g;
    const IrNode *n = ir_node(g, id);
    s->stamp[id] = s->epoch;
    if (cg_is_stored(&w->k, id)) {
        int slot = sig_add_arg(c, id);
        if (slot < 0) return -1;
        s->local[id] = slot;
        int64_t nb = node_bytes(n), off = w->k.plan->offset[id];
        s->in_bytes += nb;
        if (w->k.plan->region[id] == w->out_region && off < w->out_offset + w->out_bytes && w->out_offset < off + nb) {
            if (inplace_input(w, id, off, nb)) {
                s->inplace = 1;
                return key_printf(c, "s%d=inplace ", slot) || key_shape(c, n) || key_printf(c, ";");
            }
            return cg_fail(c, "schedule places the output of kernel %%%d (bytes %lld..%lld of region %d) over its input %%%d",
                           w->k.root, (long long)w->out_offset, (long long)(w->out_offset + w->out_bytes), w->out_region,
                           id);
        }
        return key_printf(c, "s%d=", slot) || key_shape(c, n) || key_printf(c, ";");
    }
    const IrOpInfo *info = &ir_op_info[n->op];
    if (info->cls == FC_ELEMWISE && n->op != OP_STOP_GRAD && n->op != OP_CAST) s->flops += ir_numel(n);
    /* inputs first (post-order); their references are written again below */
    for (int i = 0; i < info->nin; i++)
        if (s->stamp[n->in[i]] != s->epoch && sig_visit(c, w, n->in[i])) return -1;
    s->local[id] = -1 - s->ninline;
    uint64_t bits;
    memcpy(&bits, &n->fval, sizeof bits);
    if (key_printf(c, "n%d=%s ", s->ninline++, info->name) || key_shape(c, n)) return -1;
    for (int a = 0; a < IR_MAX_ATTR; a++)
        if (key_printf(c, "%c%lld", a ? ',' : ' ', (long long)n->attr[a])) return -1;
    if (key_printf(c, " v%016llx d", (unsigned long long)bits)) return -1;
    for (int d = 0; d < n->ndim; d++)
        if (key_printf(c, "%d.", n->shard[d])) return -1;
    if (key_printf(c, "p%u (", (unsigned)n->partial)) return -1;
    for (int i = 0; i < info->nin; i++)
        if ((i && key_printf(c, ",")) || sig_ref(c, n->in[i])) return -1;
    return key_printf(c, ");");
}

int cg_sig_build(Cg *c, const IrGraph *g, const SchedPlan *p, int32_t root, const uint8_t *member, int out_region,
                 int64_t out_offset) {
    if (sig_reserve(c, g->n)) return -1;
    SigWalk w = {.k = {.c = c, .g = g, .plan = p, .root = root, .member = member},
                 .out_region = out_region,
                 .out_offset = out_offset,
                 .out_bytes = node_bytes(ir_node(g, root)),
                 .no_matmul = cg_kernel_matmul(g, root, member) < 0};
    if (sig_add_arg(c, root) != 0) return -1; /* slot 0: the output */
    if (key_printf(c, "out=") || key_shape(c, ir_node(g, root)) || key_printf(c, ";")) return -1;
    if (sig_visit(c, &w, root)) return -1;
    return c->failed ? -1 : 0;
}

int cg_sig_slot(const CgSig *s, int32_t id) {
    if (id < 0 || id >= s->cap || s->stamp[id] != s->epoch || s->local[id] < 1) return -1;
    return s->local[id];
}

void cg_sig_free(CgSig *s) {
    free(s->stamp);
    free(s->local);
    free(s->args);
    free(s->key);
    memset(s, 0, sizeof *s);
}

/* ---- functions and calls ------------------------------------------------- */
static uint64_t fnv1a(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void fhash_insert(Cg *c, int32_t fi) {
    uint32_t mask = (uint32_t)c->fhcap - 1;
    uint32_t i = (uint32_t)c->funcs[fi].hash & mask;
    while (c->fhash[i] >= 0) i = (i + 1) & mask;
    c->fhash[i] = fi;
}

/* keeps the table at most half full */
static int fhash_grow(Cg *c) {
    if (2 * (c->nfuncs + 1) <= c->fhcap) return 0;
    int32_t cap = c->fhcap ? 2 * c->fhcap : 256;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return cg_fail(c, "out of memory");
    for (int32_t i = 0; i < cap; i++) t[i] = -1;
    free(c->fhash);
    c->fhash = t;
    c->fhcap = cap;
    for (int i = 0; i < c->nfuncs; i++)
        if (c->funcs[i].key) fhash_insert(c, i);
    return 0;
}

int cg_func_find(Cg *c, const char *key, size_t keylen) {
    if (!c->fhcap) return -1;
    uint64_t h = fnv1a(key, keylen);
    uint32_t mask = (uint32_t)c->fhcap - 1;
    for (uint32_t i = (uint32_t)h & mask; c->fhash[i] >= 0; i = (i + 1) & mask) {
        const CgFunc *f = &c->funcs[c->fhash[i]];
        if (f->hash == h && f->keylen == keylen && memcmp(f->key, key, keylen) == 0) return c->fhash[i];
    }
    return -1;
}

static void add_fn_attr(Cg *c, LLVMValueRef fn, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

int cg_func_begin(Cg *c, const char *name, const char *op, const char *key, size_t keylen, int nargs) {
    if (fhash_grow(c)) return -1;
    if (c->nfuncs == c->fcap) {
        int cap = c->fcap ? 2 * c->fcap : 64;
        CgFunc *f = realloc(c->funcs, (size_t)cap * sizeof *f);
        if (!f) return cg_fail(c, "out of memory");
        c->funcs = f;
        c->fcap = cap;
    }
    CgFunc *f = &c->funcs[c->nfuncs];
    memset(f, 0, sizeof *f);
    if (key) {
        f->key = malloc(keylen ? keylen : 1);
        if (!f->key) return cg_fail(c, "out of memory");
        memcpy(f->key, key, keylen);
        f->keylen = keylen;
        f->hash = fnv1a(key, keylen);
    }
    int fi = c->nfuncs++;
    if (key) fhash_insert(c, fi);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->op = op;
    f->nargs = nargs;
    f->fn = LLVMAddFunction(c->mod, f->name, c->kernel_ty);
    LLVMSetLinkage(f->fn, LLVMInternalLinkage);
    add_fn_attr(c, f->fn, "nounwind");
    LLVMSetValueName2(LLVMGetParam(f->fn, 0), "p", 1);
    LLVMSetValueName2(LLVMGetParam(f->fn, 1), "begin", 5);
    LLVMSetValueName2(LLVMGetParam(f->fn, 2), "end", 3);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f->fn, "entry"));
    return fi;
}

int cg_call_add(Cg *c, const char *name, const char *entry, const char *op, int fn, int nargs) {
    if (c->nkernels == c->kcap) {
        int cap = c->kcap ? 2 * c->kcap : 64;
        CgKernelRec *k = realloc(c->kernels, (size_t)cap * sizeof *k);
        if (!k) return cg_fail(c, "out of memory");
        c->kernels = k;
        c->kcap = cap;
    }
    CgKernelRec *r = &c->kernels[c->nkernels];
    memset(r, 0, sizeof *r);
    r->arg_region = calloc((size_t)(nargs ? nargs : 1), sizeof *r->arg_region);
    r->arg_offset = calloc((size_t)(nargs ? nargs : 1), sizeof *r->arg_offset);
    r->arg_node = malloc((size_t)(nargs ? nargs : 1) * sizeof *r->arg_node);
    if (!r->arg_region || !r->arg_offset || !r->arg_node) {
        free(r->arg_region);
        free(r->arg_offset);
        free(r->arg_node);
        return cg_fail(c, "out of memory");
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    r->entry = entry;
    r->op = op;
    r->fn = fn;
    r->nargs = nargs;
    for (int i = 0; i < nargs; i++) r->arg_node[i] = -1;
    c->funcs[fn].ncalls++;
    return c->nkernels++;
}
