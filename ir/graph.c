/* graph.c — IR graph storage: the node array, the string pool, hash-consing.
 *
 * Nodes live in one growable array; a node's inputs are lower ids. Adding a
 * node goes through ir_add_node: it checks the inputs exist, runs shape
 * inference (infer.c), then looks the finished node up in an open-addressing
 * hash table keyed on everything that defines its value (op, dtype, shape,
 * inputs, attributes, constant, flags, name, sharding). A hit returns the old
 * id; a miss appends. Source locations are not part of the key: the first
 * occurrence keeps its location.
 *
 * Strings (names, file paths) are interned in one pool and referred to by
 * their byte offset, so nodes stay plain data that can be copied and hashed.
 */
#include "ir.h"
#include "text.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const IrOpInfo ir_op_info[OP_COUNT] = {
#define OP(NAME, text, nin, cls, flags) [OP_##NAME] = {text, nin, cls, flags},
#include "ops.def"
#undef OP
};

static const char *const dtype_names[DT_COUNT] = {"f32", "f64", "i32"};
static const size_t dtype_sizes[DT_COUNT] = {4, 8, 4};

const char *ir_dtype_name(IrDType t) { return (unsigned)t < DT_COUNT ? dtype_names[t] : "?"; }
size_t ir_dtype_size(IrDType t) { return (unsigned)t < DT_COUNT ? dtype_sizes[t] : 0; }
int ir_dtype_is_float(IrDType t) { return t == DT_F32 || t == DT_F64; }

void ir_init(IrGraph *g) {
    memset(g, 0, sizeof *g);
    g->cur_loc.file = -1;
}

void ir_free(IrGraph *g) {
    free(g->nodes);
    free(g->hash);
    free(g->strs);
    free(g->outs);
    free(g->strhash);
    ir_kernels_clear(g);
    ir_init(g);
}

int ir_copy(IrGraph *dst, const IrGraph *src) {
    ir_init(dst);
    if (src->cap) {
        dst->nodes = malloc((size_t)src->cap * sizeof *dst->nodes);
        if (!dst->nodes) goto oom;
        memcpy(dst->nodes, src->nodes, (size_t)src->n * sizeof *dst->nodes);
    }
    if (src->hcap) {
        dst->hash = malloc((size_t)src->hcap * sizeof *dst->hash);
        if (!dst->hash) goto oom;
        memcpy(dst->hash, src->hash, (size_t)src->hcap * sizeof *dst->hash);
    }
    if (src->strcap) {
        dst->strs = malloc((size_t)src->strcap);
        if (!dst->strs) goto oom;
        memcpy(dst->strs, src->strs, (size_t)src->nstrs);
    }
    if (src->strhcap) {
        dst->strhash = malloc((size_t)src->strhcap * sizeof *dst->strhash);
        if (!dst->strhash) goto oom;
        memcpy(dst->strhash, src->strhash, (size_t)src->strhcap * sizeof *dst->strhash);
    }
    if (src->outcap) {
        dst->outs = malloc((size_t)src->outcap * sizeof *dst->outs);
        if (!dst->outs) goto oom;
        memcpy(dst->outs, src->outs, (size_t)src->nout * sizeof *dst->outs);
    }
    dst->n = src->n;
    dst->cap = src->cap;
    dst->hcap = src->hcap;
    dst->nstrs = src->nstrs;
    dst->strcap = src->strcap;
    dst->strhcap = src->strhcap;
    dst->nstrids = src->nstrids;
    dst->nout = src->nout;
    dst->outcap = src->outcap;
    dst->cur_loc = src->cur_loc;
    memcpy(dst->err, src->err, sizeof dst->err);
    if (ir_kernels_copy(dst, src)) goto oom;
    return 0;
oom:
    ir_free(dst);
    return -1;
}

int ir_set_error(IrGraph *g, const char *fmt, ...) {
    if (g->err[0]) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- strings ------------------------------------------------------------ */

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void strhash_insert(int32_t *t, int32_t cap, const char *pool, int32_t id) {
    int32_t s = (int32_t)(str_hash(pool + id) & (uint64_t)(cap - 1));
    while (t[s] >= 0) s = (s + 1) & (cap - 1);
    t[s] = id;
}

static int strhash_grow(IrGraph *g) {
    int32_t cap = g->strhcap ? g->strhcap * 2 : 256;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return -1;
    for (int32_t i = 0; i < cap; i++) t[i] = -1;
    for (int32_t off = 0; off < g->nstrs; off += (int32_t)strlen(g->strs + off) + 1) strhash_insert(t, cap, g->strs, off);
    free(g->strhash);
    g->strhash = t;
    g->strhcap = cap;
    return 0;
}

int32_t ir_find_str(const IrGraph *g, const char *s) {
    if (!g->strhcap) return -1;
    int32_t i = (int32_t)(str_hash(s) & (uint64_t)(g->strhcap - 1));
    for (; g->strhash[i] >= 0; i = (i + 1) & (g->strhcap - 1))
        if (strcmp(g->strs + g->strhash[i], s) == 0) return g->strhash[i];
    return -1;
}

int32_t ir_str(IrGraph *g, const char *s) {
    int32_t found = ir_find_str(g, s);
    if (found >= 0) return found;
    size_t len = strlen(s) + 1;
    if ((size_t)g->nstrs + len > (size_t)g->strcap) {
        size_t cap = g->strcap ? (size_t)g->strcap : 256;
        while (cap < (size_t)g->nstrs + len) cap *= 2;
        if (cap > INT32_MAX) return ir_set_error(g, "string pool overflow");
        char *p = realloc(g->strs, cap);
        if (!p) return ir_set_error(g, "out of memory");
        g->strs = p;
        g->strcap = (int32_t)cap;
    }
    if ((int64_t)(g->nstrids + 1) * 2 > g->strhcap && strhash_grow(g) != 0) return ir_set_error(g, "out of memory");
    int32_t off = g->nstrs;
    memcpy(g->strs + off, s, len);
    g->nstrs += (int32_t)len;
    g->nstrids++;
    strhash_insert(g->strhash, g->strhcap, g->strs, off);
    return off;
}

const char *ir_str_get(const IrGraph *g, int32_t id) {
    if (id < 0 || id >= g->nstrs) return "";
    return g->strs + id;
}

void ir_set_loc(IrGraph *g, const char *file, int line, int col) {
    g->cur_loc.file = file ? ir_str(g, file) : -1;
    g->cur_loc.line = line;
    g->cur_loc.col = col;
}

/* ---- outputs -------------------------------------------------------------- */

int ir_add_output(IrGraph *g, const char *name, int32_t id, IrOutRole role) {
    if (id < 0 || id >= g->n) return ir_set_error(g, "output '%s' refers to no value", name);
    if (ir_find_output(g, name) >= 0) return ir_set_error(g, "duplicate output '%s'", name);
    if (g->nout == g->outcap) {
        int32_t cap = g->outcap ? g->outcap * 2 : 16;
        IrOutput *p = realloc(g->outs, (size_t)cap * sizeof *p);
        if (!p) return ir_set_error(g, "out of memory");
        g->outs = p;
        g->outcap = cap;
    }
    int32_t sid = ir_str(g, name);
    if (sid < 0) return -1;
    g->outs[g->nout++] = (IrOutput){sid, id, (int32_t)role};
    return 0;
}

int32_t ir_find_output(const IrGraph *g, const char *name) {
    for (int32_t i = 0; i < g->nout; i++)
        if (strcmp(ir_str_get(g, g->outs[i].name), name) == 0) return i;
    return -1;
}

int32_t ir_find_named(const IrGraph *g, IrOp op, const char *name) {
    int32_t sid = ir_find_str(g, name);
    if (sid < 0) return -1;
    for (int32_t i = 0; i < g->n; i++)
        if (g->nodes[i].op == op && g->nodes[i].name == sid) return i;
    return -1;
}

int64_t ir_numel(const IrNode *n) {
    int64_t e = 1;
    for (int d = 0; d < n->ndim; d++) e *= n->shape[d];
    return e;
}

/* ---- hash-consing --------------------------------------------------------- */

void ir_node_proto(IrNode *n, IrOp op) {
    memset(n, 0, sizeof *n);
    n->op = (uint16_t)op;
    for (int i = 0; i < IR_MAX_IN; i++) n->in[i] = -1;
    for (int d = 0; d < IR_MAX_DIMS; d++) n->shard[d] = IR_SHARD_NONE;
    n->name = -1;
    n->loc.file = -1;
}

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t node_hash(const IrNode *n) {
    uint64_t h = mix(0, n->op);
    h = mix(h, n->dtype);
    h = mix(h, n->ndim);
    h = mix(h, n->flags);
    h = mix(h, (uint64_t)(int64_t)n->name);
    h = mix(h, n->partial);
    for (int i = 0; i < IR_MAX_IN; i++) h = mix(h, (uint64_t)(int64_t)n->in[i]);
    for (int d = 0; d < n->ndim; d++) h = mix(h, (uint64_t)n->shape[d]);
    for (int d = 0; d < n->ndim; d++) h = mix(h, (uint64_t)(int64_t)n->shard[d]);
    for (int a = 0; a < IR_MAX_ATTR; a++) h = mix(h, (uint64_t)n->attr[a]);
    uint64_t bits;
    memcpy(&bits, &n->fval, sizeof bits);
    return mix(h, bits);
}

/* Two nodes compute the same value when everything but the location agrees.
 * Constants compare by bit pattern so that -0.0 and 0.0 (and NaNs) stay apart. */
static int node_same(const IrNode *a, const IrNode *b) {
    if (a->op != b->op || a->dtype != b->dtype || a->ndim != b->ndim || a->flags != b->flags ||
        a->name != b->name || a->partial != b->partial)
        return 0;
    if (memcmp(a->in, b->in, sizeof a->in) != 0) return 0;
    if (memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) != 0) return 0;
    if (memcmp(a->shard, b->shard, (size_t)a->ndim) != 0) return 0;
    if (memcmp(a->attr, b->attr, sizeof a->attr) != 0) return 0;
    return memcmp(&a->fval, &b->fval, sizeof a->fval) == 0;
}

static int hash_grow(IrGraph *g) {
    int32_t cap = g->hcap ? g->hcap * 2 : 1024;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return -1;
    for (int32_t i = 0; i < cap; i++) t[i] = -1;
    for (int32_t id = 0; id < g->n; id++) {
        uint64_t h = node_hash(&g->nodes[id]);
        int32_t s = (int32_t)(h & (uint64_t)(cap - 1));
        while (t[s] >= 0) s = (s + 1) & (cap - 1);
        t[s] = id;
    }
    free(g->hash);
    g->hash = t;
    g->hcap = cap;
    return 0;
}

int32_t ir_add_node(IrGraph *g, const IrNode *proto) {
    if (proto->op >= OP_COUNT) return ir_set_error(g, "unknown op code %u", (unsigned)proto->op);
    const IrOpInfo *info = &ir_op_info[proto->op];
    for (int i = 0; i < info->nin; i++) {
        if (proto->in[i] < 0) /* an earlier builder failed; its message stands */
            return g->err[0] ? -1 : ir_set_error(g, "%s: input %d is missing", info->name, i);
        if (proto->in[i] >= g->n) return ir_set_error(g, "%s: input %d refers to undefined %%%d", info->name, i, proto->in[i]);
    }
    for (int i = info->nin; i < IR_MAX_IN; i++)
        if (proto->in[i] != -1) return ir_set_error(g, "%s takes %d inputs", info->name, info->nin);

    IrNode n = *proto;
    char msg[384];
    if (ir_infer(g, &n, msg, sizeof msg) != 0) return ir_set_error(g, "%s: %s", info->name, msg);
    for (int d = n.ndim; d < IR_MAX_DIMS; d++) {
        n.shape[d] = 0;
        n.shard[d] = IR_SHARD_NONE;
    }
    if (n.loc.file < 0 && n.loc.line == 0) n.loc = g->cur_loc;

    if ((int64_t)(g->n + 1) * 2 > g->hcap && hash_grow(g) != 0) return ir_set_error(g, "out of memory");
    uint64_t h = node_hash(&n);
    int32_t s = (int32_t)(h & (uint64_t)(g->hcap - 1));
    for (; g->hash[s] >= 0; s = (s + 1) & (g->hcap - 1))
        if (node_same(&g->nodes[g->hash[s]], &n)) return g->hash[s];

    if (g->n == g->cap) {
        int32_t cap = g->cap ? g->cap * 2 : 256;
        IrNode *p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) return ir_set_error(g, "out of memory");
        g->nodes = p;
        g->cap = cap;
    }
    int32_t id = g->n++;
    g->nodes[id] = n;
    g->hash[s] = id;
    return id;
}
