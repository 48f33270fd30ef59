/* verify.c — checks every invariant of a graph; run after each pass.
 *
 * Node by node, in id order: the op code, dtype and rank are in range; the
 * op's inputs are lower ids and unused input slots are -1 (so leaves have
 * none); names sit exactly on params and inputs and point into the string
 * pool; unused attribute slots, the constant of a non-const and the shape
 * beyond the rank are zero; flags are known; sharding names each mesh axis
 * at most once and never on an axis that is also pending a partial sum;
 * locations point into the pool. Only then is ir_infer re-run on a copy of
 * the node, which must reproduce its dtype and shape (and accept its
 * attributes). Afterwards names are checked for uniqueness per op, and the
 * outputs: valid node and name, unique names, at most one loss (a float
 * scalar), and each grad named after a trainable param whose dtype and shape
 * it has. The first violation is reported as "%12 (matmul): ..." or
 * "output \"name\": ...".
 */
#include "text.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int vfail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int vfail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* a string id is valid when it is the start of a string in the pool */
static int str_ok(const IrGraph *g, int32_t s) {
    return s >= 0 && s < g->nstrs && (s == 0 || g->strs[s - 1] == '\0');
}

static void type_str(const IrNode *n, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "%s[", ir_dtype_name((IrDType)n->dtype));
    for (int d = 0; d < n->ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ",%lld" : "%lld", (long long)n->shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

#define NFAIL(fmt, ...) vfail(err, errlen, "%%%d (%s): " fmt, id, opname, __VA_ARGS__)

static int verify_node(const IrGraph *g, int32_t id, char *err, size_t errlen) {
    const IrNode *n = ir_node(g, id);
    if (n->op >= OP_COUNT) return vfail(err, errlen, "%%%d: unknown op code %u", id, (unsigned)n->op);
    const IrOpInfo *info = &ir_op_info[n->op];
    const char *opname = info->name;
    if (n->dtype >= DT_COUNT) return NFAIL("unknown dtype code %u", (unsigned)n->dtype);
    if (n->ndim > IR_MAX_DIMS) return NFAIL("rank %u exceeds %d", (unsigned)n->ndim, IR_MAX_DIMS);
    if ((info->flags & OPF_LEAF) && info->nin != 0) return NFAIL("leaf op has %d inputs in ops.def", info->nin);
    for (int i = 0; i < IR_MAX_IN; i++) {
        if (i >= info->nin) {
            if (n->in[i] != -1) return NFAIL("input slot %d is %d, expected -1 (the op takes %d)", i, n->in[i], info->nin);
        } else if (n->in[i] < 0 || n->in[i] >= id) {
            return NFAIL("input %d is %%%d, expected an id in [0, %d)", i, n->in[i], id);
        }
    }

    int named = n->op == OP_PARAM || n->op == OP_INPUT;
    if (named && !str_ok(g, n->name)) return NFAIL("name id %d is not a string of the pool", n->name);
    if (named && ir_str_get(g, n->name)[0] == '\0') return NFAIL("%s", "empty name");
    if (!named && n->name != -1) return NFAIL("only params and inputs have names, this one has name id %d", n->name);
    double zero = 0.0;
    if (n->op != OP_CONST && memcmp(&n->fval, &zero, sizeof zero) != 0) return NFAIL("constant value %g on a non-const", n->fval);

    int slots = ir_text_attr_slots((IrOp)n->op, n->ndim);
    for (int a = 0; a < IR_MAX_ATTR; a++) {
        if (a >= slots && n->attr[a] != 0) return NFAIL("unused attribute slot %d is %lld, expected 0", a, (long long)n->attr[a]);
        if (n->attr[a] > IR_TEXT_ATTR_MAX || n->attr[a] < -IR_TEXT_ATTR_MAX)
            return NFAIL("attribute %d = %lld is out of range", a, (long long)n->attr[a]);
    }
    if (n->flags & ~(uint32_t)IR_F_KNOWN) return NFAIL("unknown flag bits %#x", (unsigned)n->flags);

    int64_t numel = 1;
    for (int d = 0; d < IR_MAX_DIMS; d++) {
        if (d >= n->ndim) {
            if (n->shape[d] != 0) return NFAIL("shape[%d] = %lld beyond the rank %d, expected 0", d, (long long)n->shape[d], n->ndim);
            continue;
        }
        if (n->shape[d] <= 0) return NFAIL("dimension %d has size %lld, expected > 0", d, (long long)n->shape[d]);
        if (n->shape[d] > IR_TEXT_NUMEL_MAX / numel) return NFAIL("%s", "more than 2^62 elements");
        numel *= n->shape[d];
    }

    unsigned used = 0;
    for (int d = 0; d < IR_MAX_DIMS; d++) {
        int s = n->shard[d];
        if (d >= n->ndim) {
            if (s != IR_SHARD_NONE) return NFAIL("shard[%d] = %d beyond the rank %d", d, s, n->ndim);
            continue;
        }
        if (s == IR_SHARD_NONE) continue;
        if (s < 0 || s >= IR_MESH_AXES) return NFAIL("shard[%d] = %d is not a mesh axis", d, s);
        if (used & (1u << s)) return NFAIL("mesh axis %s shards two dimensions", ir_text_mesh_name(s));
        used |= 1u << s;
    }
    if (n->partial & ~((1u << IR_MESH_AXES) - 1)) return NFAIL("partial mask %#x names no mesh axis", (unsigned)n->partial);
    if (n->partial & used) return NFAIL("%s", "a mesh axis both shards a dimension and holds a partial sum");
    if (n->loc.file != -1 && !str_ok(g, n->loc.file)) return NFAIL("location file id %d is not a string of the pool", n->loc.file);

    IrNode tmp = *n;
    char msg[384];
    if (ir_infer(g, &tmp, msg, sizeof msg) != 0) return NFAIL("%s", msg);
    if (tmp.dtype != n->dtype || tmp.ndim != n->ndim || memcmp(tmp.shape, n->shape, (size_t)n->ndim * sizeof n->shape[0]) != 0) {
        char sn[128], si[128];
        type_str(n, sn, sizeof sn);
        type_str(&tmp, si, sizeof si);
        return NFAIL("type %s but inference gives %s", sn, si);
    }
    return 0;
}

typedef struct Named {
    int32_t id;
    uint16_t op;
    const char *name;
} Named;

static int cmp_named(const void *pa, const void *pb) {
    const Named *a = pa, *b = pb;
    if (a->op != b->op) return a->op < b->op ? -1 : 1;
    int c = strcmp(a->name, b->name);
    if (c) return c;
    return a->id < b->id ? -1 : 1;
}

static int verify_names(const IrGraph *g, char *err, size_t errlen) {
    int32_t cnt = 0;
    for (int32_t i = 0; i < g->n; i++) cnt += g->nodes[i].op == OP_PARAM || g->nodes[i].op == OP_INPUT;
    if (cnt < 2) return 0;
    Named *v = malloc((size_t)cnt * sizeof *v);
    if (!v) return vfail(err, errlen, "out of memory");
    cnt = 0;
    for (int32_t i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_PARAM || g->nodes[i].op == OP_INPUT)
            v[cnt++] = (Named){i, g->nodes[i].op, ir_str_get(g, g->nodes[i].name)};
    qsort(v, (size_t)cnt, sizeof *v, cmp_named);
    int rc = 0;
    for (int32_t k = 1; k < cnt && rc == 0; k++)
        if (v[k - 1].op == v[k].op && strcmp(v[k - 1].name, v[k].name) == 0)
            rc = vfail(err, errlen, "%%%d (%s): name \"%s\" is already used by %%%d", v[k].id, ir_op_info[v[k].op].name,
                       v[k].name, v[k - 1].id);
    free(v);
    return rc;
}

static int verify_outputs(const IrGraph *g, char *err, size_t errlen) {
    int32_t loss = -1;
    for (int32_t i = 0; i < g->nout; i++) {
        const IrOutput *o = &g->outs[i];
        if (!str_ok(g, o->name)) return vfail(err, errlen, "output %d: name id %d is not a string of the pool", i, o->name);
        const char *name = ir_str_get(g, o->name);
        if (o->role < 0 || o->role >= IR_OUT_COUNT) return vfail(err, errlen, "output \"%s\": unknown role %d", name, o->role);
        if (o->id < 0 || o->id >= g->n)
            return vfail(err, errlen, "output \"%s\": refers to %%%d, outside [0, %d)", name, o->id, g->n);
        for (int32_t j = 0; j < i; j++)
            if (strcmp(ir_str_get(g, g->outs[j].name), name) == 0) return vfail(err, errlen, "output \"%s\": name used twice", name);
        const IrNode *n = ir_node(g, o->id);
        if (o->role == IR_OUT_LOSS) {
            if (loss >= 0)
                return vfail(err, errlen, "output \"%s\": a second loss (the first is \"%s\")", name, ir_str_get(g, g->outs[loss].name));
            loss = i;
            if (n->ndim != 0 || !ir_dtype_is_float((IrDType)n->dtype)) {
                char t[128];
                type_str(n, t, sizeof t);
                return vfail(err, errlen, "output \"%s\": the loss must be a float scalar, %%%d is %s", name, o->id, t);
            }
        } else if (o->role == IR_OUT_GRAD) {
            int32_t p = ir_find_named(g, OP_PARAM, name);
            if (p < 0) return vfail(err, errlen, "output \"%s\": grad of no param of that name", name);
            const IrNode *pn = ir_node(g, p);
            if (pn->attr[0] != IR_PARAM_TRAINABLE) return vfail(err, errlen, "output \"%s\": grad of frozen param %%%d", name, p);
            if (pn->dtype != n->dtype || pn->ndim != n->ndim ||
                memcmp(pn->shape, n->shape, (size_t)n->ndim * sizeof n->shape[0]) != 0) {
                char tp[128], tg[128];
                type_str(pn, tp, sizeof tp);
                type_str(n, tg, sizeof tg);
                return vfail(err, errlen, "output \"%s\": grad %%%d is %s but the param %%%d is %s", name, o->id, tg, p, tp);
            }
        }
    }
    return 0;
}

int ir_verify(const IrGraph *g, char *err, size_t errlen) {
    if (errlen) err[0] = '\0';
    if (g->n < 0 || g->n > g->cap || (g->n > 0 && !g->nodes)) return vfail(err, errlen, "node array: n=%d cap=%d", g->n, g->cap);
    if (g->nout < 0 || g->nout > g->outcap || (g->nout > 0 && !g->outs))
        return vfail(err, errlen, "output array: nout=%d cap=%d", g->nout, g->outcap);
    if (g->nstrs < 0 || g->nstrs > g->strcap || (g->nstrs > 0 && g->strs[g->nstrs - 1] != '\0'))
        return vfail(err, errlen, "string pool is not NUL-terminated");
    for (int32_t id = 0; id < g->n; id++)
        if (verify_node(g, id, err, errlen)) return -1;
    if (verify_names(g, err, errlen)) return -1;
    if (verify_outputs(g, err, errlen)) return -1;
    return ir_kernels_verify(g, err, errlen);
}
