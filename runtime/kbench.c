/* kbench.c — one kernel call alone: fill, check, time (see kbench.h).
 *
 * kbench_open parses each entry's IR text from the manifest and, per graph,
 * an id bound for every node whose value ends up used as an index: a
 * backward sweep (consumers have higher ids) gives gather_rows' ids the
 * table's row count, pick's the last dim, scatter_add_rows' and unpick's
 * their size attribute, and hands a bound on from a movement op or cast to
 * its operands. Each kernel row's "nodes" is read once. The AdamW call
 * keeps a copy of the state it was filled with, since it updates in place;
 * so does a call the schedule runs in place (an input on its own output's
 * bytes): its check reads that input from the copy, every other input from
 * its place.
 */
#include "kbench.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ir/interp.h"
#include "ir/ir.h"

typedef struct KGraph {
    char *entry;
    IrGraph g;
    int64_t *bound; /* per node: values must lie in [0, bound); 0 none */
} KGraph;

struct KBench {
    DpocStep *s;
    KGraph *graphs;
    int ngraphs;
    int *kgraph;       /* per call: its graph, or -1 */
    int32_t **knodes;  /* per call: node of each argument, or NULL */
    uint8_t *flush;
    size_t flush_bytes;
    int flush_set;     /* flush_bytes chosen by kbench_set_flush */
    unsigned flush_gen;
    uint8_t **args;    /* a call's argument array (the largest call's size) */
    float *adam_prev;  /* params, grads, m, v as filled (AdamW check) */
    int64_t adam_n;
    uint8_t *snap;     /* the inputs on the output's bytes of the call last */
    size_t snap_cap;   /* filled, as filled: input a at snap_at[a] (-1: not */
    int64_t *snap_at;  /* copied, read from its place) */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

static int is_movement(IrOp op) {
    return op == OP_RESHAPE || op == OP_BROADCAST || op == OP_PERMUTE || op == OP_SLICE || op == OP_PAD ||
           op == OP_CONCAT || op == OP_CAST || op == OP_STOP_GRAD;
}

static void set_bound(int64_t *bound, int32_t v, int64_t b) {
    if (b > 0 && (bound[v] == 0 || b < bound[v])) bound[v] = b;
}

static void compute_bounds(const IrGraph *g, int64_t *bound) {
    for (int32_t id = g->n - 1; id >= 0; id--) {
        const IrNode *n = ir_node(g, id);
        switch ((IrOp)n->op) {
        case OP_GATHER_ROWS: set_bound(bound, n->in[1], ir_node(g, n->in[0])->shape[0]); break;
        case OP_PICK: {
            const IrNode *x = ir_node(g, n->in[0]);
            set_bound(bound, n->in[1], x->shape[x->ndim - 1]);
            break;
        }
        case OP_SCATTER_ADD_ROWS:
        case OP_UNPICK: set_bound(bound, n->in[1], n->attr[0]); break;
        case OP_SCATTER_ADD_INTO: set_bound(bound, n->in[1], n->shape[0]); break;
        default:
            if (bound[id] && is_movement((IrOp)n->op))
                for (int i = 0; i < ir_op_info[n->op].nin; i++) set_bound(bound, n->in[i], bound[id]);
            break;
        }
    }
}

int kbench_find(const DpocStep *s, const char *name) {
    for (int k = 0; k < s->nkernels; k++)
        if (!strcmp(s->kernels[k].name, name)) return k;
    return -1;
}

void kbench_close(KBench *b) {
    if (!b) return;
    for (int i = 0; i < b->ngraphs; i++) {
        free(b->graphs[i].entry);
        ir_free(&b->graphs[i].g);
        free(b->graphs[i].bound);
    }
    for (int k = 0; b->knodes && k < b->s->nkernels; k++) free(b->knodes[k]);
    free(b->graphs);
    free(b->kgraph);
    free(b->knodes);
    free(b->flush);
    free(b->adam_prev);
    free(b->snap);
    free(b->snap_at);
    free(b->args);
    free(b);
}

static int read_nodes(KBench *b, int k, const cJSON *row, char *err, size_t errlen) {
    const DpocKernelInfo *ki = &b->s->kernels[k];
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(row, "nodes");
    if (!nodes) return 0;
    int gi = -1;
    for (int i = 0; i < b->ngraphs; i++)
        if (!strcmp(b->graphs[i].entry, ki->entry)) gi = i;
    if (gi < 0 || !cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) != ki->nargs)
        return snprintf(err, errlen, "kernel %s: its \"nodes\" do not match its %d arguments or entry '%s' has no IR",
                        ki->name, ki->nargs, ki->entry),
               -1;
    const IrGraph *g = &b->graphs[gi].g;
    if (!(b->knodes[k] = malloc((size_t)ki->nargs * sizeof **b->knodes))) return snprintf(err, errlen, "out of memory"), -1;
    for (int a = 0; a < ki->nargs; a++) {
        const cJSON *x = cJSON_GetArrayItem(nodes, a);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= g->n || x->valuedouble != (int32_t)x->valuedouble)
            return snprintf(err, errlen, "kernel %s: argument %d names node %g, outside its IR (%d nodes)", ki->name, a,
                            cJSON_IsNumber(x) ? x->valuedouble : -1.0, (int)g->n),
                   -1;
        b->knodes[k][a] = (int32_t)x->valuedouble;
        const IrNode *n = ir_node(g, b->knodes[k][a]);
        int64_t end = ki->arg_offset[a] + ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype);
        if (end > b->s->region_size[ki->arg_region[a]])
            return snprintf(err, errlen, "kernel %s: argument %d (%%%d) runs past the end of its region", ki->name, a,
                            (int)b->knodes[k][a]),
                   -1;
    }
    b->kgraph[k] = gi;
    return 0;
}

KBench *kbench_open(DpocStep *s, char *err, size_t errlen) {
    KBench *b = calloc(1, sizeof *b);
    if (!b) return snprintf(err, errlen, "out of memory"), NULL;
    b->s = s;
    const cJSON *ir = cJSON_GetObjectItemCaseSensitive(s->json, "ir");
    int n = cJSON_IsObject(ir) ? cJSON_GetArraySize(ir) : 0;
    b->graphs = calloc((size_t)(n ? n : 1), sizeof *b->graphs);
    b->kgraph = malloc((size_t)(s->nkernels ? s->nkernels : 1) * sizeof *b->kgraph);
    b->knodes = calloc((size_t)(s->nkernels ? s->nkernels : 1), sizeof *b->knodes);
    int cap = 1;
    for (int k = 0; k < s->nkernels; k++)
        if (s->kernels[k].nargs > cap) cap = s->kernels[k].nargs;
    b->args = malloc((size_t)cap * sizeof *b->args);
    b->snap_at = malloc((size_t)cap * sizeof *b->snap_at);
    if (!b->graphs || !b->kgraph || !b->knodes || !b->args || !b->snap_at) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, ir) {
        KGraph *kg = &b->graphs[b->ngraphs];
        ir_init(&kg->g);
        b->ngraphs++;
        if (!cJSON_IsString(it) || !(kg->entry = strdup(it->string))) {
            snprintf(err, errlen, "manifest \"ir\" entry is not IR text");
            goto fail;
        }
        char sub[600];
        if (ir_parse(&kg->g, it->valuestring, kg->entry, sub, sizeof sub)) {
            snprintf(err, errlen, "the IR of entry %s does not parse: %s", kg->entry, sub);
            goto fail;
        }
        if (!(kg->bound = calloc((size_t)(kg->g.n ? kg->g.n : 1), sizeof *kg->bound))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        compute_bounds(&kg->g, kg->bound);
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(s->json, "kernels");
    for (int k = 0; k < s->nkernels; k++) {
        b->kgraph[k] = -1;
        if (read_nodes(b, k, cJSON_GetArrayItem(rows, k), err, errlen)) goto fail;
    }
    return b;
fail:
    kbench_close(b);
    return NULL;
}

static int is_adamw(const KBench *b, int k) { return !strcmp(b->s->kernels[k].op, "adamw"); }

int kbench_checkable(const KBench *b, int k) { return b->kgraph[k] >= 0 || is_adamw(b, k); }

static uint8_t *arg_ptr(const KBench *b, int k, int a) {
    const DpocKernelInfo *ki = &b->s->kernels[k];
    return b->s->regions[ki->arg_region[a]] + ki->arg_offset[a];
}

static void put(IrDType t, uint8_t *p, int64_t i, double v) {
    if (t == DT_F32) ((float *)p)[i] = (float)v;
    else if (t == DT_F64) ((double *)p)[i] = v;
    else ((int32_t *)p)[i] = (int32_t)v;
}

static double get(IrDType t, const uint8_t *p, int64_t i) {
    if (t == DT_F32) return ((const float *)p)[i];
    if (t == DT_F64) return ((const double *)p)[i];
    return ((const int32_t *)p)[i];
}

/* ---- AdamW ---------------------------------------------------------------------- */

static int adamw_fill(KBench *b, int k, uint64_t seed, char *err, size_t errlen) {
    DpocStep *s = b->s;
    int64_t n = s->region_size[DPOC_R_PARAMS] / 4;
    free(b->adam_prev);
    if (!(b->adam_prev = malloc((size_t)(n > 0 ? 4 * n : 1) * sizeof(float)))) return snprintf(err, errlen, "out of memory"), -1;
    b->adam_n = n;
    uint64_t r = seed;
    for (int reg = 0; reg < 4; reg++) {
        float *p = (float *)arg_ptr(b, k, reg);
        for (int64_t i = 0; i < n; i++) {
            double u = 2.0 * rng_unit(&r) - 1.0;
            p[i] = (float)(reg == 3 ? 0.01 * fabs(u) : reg == 2 ? 0.1 * u : u);
            b->adam_prev[reg * n + i] = p[i];
        }
    }
    double *h = (double *)arg_ptr(b, k, 4);
    double hp[8] = {1e-3, 0.9, 0.999, 1e-8, 0.01, 1.0 - pow(0.9, 3), 1.0 - pow(0.999, 3), 0};
    memcpy(h, hp, sizeof hp);
    return 0;
}

static float lerp_f(float a, float b, float w) {
    float d = b - a;
    return fabsf(w) < 0.5f ? a + w * d : b - d * (1.0f - w);
}

/* PyTorch's single-tensor AdamW in f32 (docs/step-abi.md), per element */
static int adamw_check(KBench *b, int k, KBenchCheck *r) {
    DpocStep *s = b->s;
    const double *h = (const double *)arg_ptr(b, k, 4);
    const float *p = (const float *)arg_ptr(b, k, 0);
    int64_t n = b->adam_n;
    float step = (float)(h[0] / h[5]), bc2s = (float)sqrt(h[6]);
    float b1w = (float)(1.0 - h[1]), b2 = (float)h[2], b2w = (float)(1.0 - h[2]), eps = (float)h[3];
    float decay = (float)(1.0 - h[0] * h[4]);
    double ss = 0;
    int64_t cnt = 0;
    memset(r, 0, sizeof *r);
    r->first_bad = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < s->ntensors; t++) {
            const DpocTensorInfo *ti = &s->tensors[t];
            if (ti->role != DPOC_ROLE_PARAM) continue;
            int64_t e0 = ti->offset / 4;
            for (int64_t i = e0; i < e0 + ti->numel && i < n; i++) {
                float p0 = b->adam_prev[i], g = b->adam_prev[n + i], m = b->adam_prev[2 * n + i], v = b->adam_prev[3 * n + i];
                if (ti->decay) p0 = p0 * decay;
                m = lerp_f(m, g, b1w);
                v = v * b2 + b2w * g * g;
                float denom = sqrtf(v) / bc2s + eps;
                double want = (double)(p0 + (-step * m) / denom);
                if (pass == 0) {
                    ss += want * want, cnt++;
                    continue;
                }
                double rms = cnt ? sqrt(ss / (double)cnt) : 0;
                double tol = 8.0 * 10.0 * ldexp(1.0, -24) * (fabs(want) + rms), e = fabs((double)p[i] - want);
                r->n++;
                if (tol > 0 && e / tol > r->worst) r->worst = e / tol;
                if (!(e <= tol)) {
                    if (r->nbad++ == 0) r->first_bad = i, r->got = p[i], r->want = want, r->tol = tol;
                }
            }
        }
    return 0;
}

/* ---- graph kernels --------------------------------------------------------------- */

static int64_t arg_bytes(const KBench *b, int k, int a) {
    const IrNode *n = ir_node(&b->graphs[b->kgraph[k]].g, b->knodes[k][a]);
    return ir_numel(n) * (int64_t)ir_dtype_size((IrDType)n->dtype);
}

/* copies those of call k's inputs that overlap its output (in place), as
 * just filled, into b->snap */
static int snapshot_inputs(KBench *b, int k, char *err, size_t errlen) {
    const DpocKernelInfo *ki = &b->s->kernels[k];
    size_t total = 0;
    int64_t o0 = ki->arg_offset[0], o1 = o0 + arg_bytes(b, k, 0);
    for (int a = 1; a < ki->nargs; a++) {
        int64_t lo = ki->arg_offset[a], hi = lo + arg_bytes(b, k, a);
        int over = ki->arg_region[a] == ki->arg_region[0] && lo < o1 && o0 < hi;
        b->snap_at[a] = over ? (int64_t)total : -1;
        if (over) total += (size_t)(hi - lo);
    }
    if (total > b->snap_cap) {
        uint8_t *p = realloc(b->snap, total);
        if (!p) return snprintf(err, errlen, "out of memory"), -1;
        b->snap = p;
        b->snap_cap = total;
    }
    for (int a = 1; a < ki->nargs; a++)
        if (b->snap_at[a] >= 0) memcpy(b->snap + b->snap_at[a], arg_ptr(b, k, a), (size_t)arg_bytes(b, k, a));
    return 0;
}

int kbench_fill(KBench *b, int k, uint64_t seed, char *err, size_t errlen) {
    if (is_adamw(b, k)) return adamw_fill(b, k, seed, err, errlen);
    if (b->kgraph[k] < 0) return snprintf(err, errlen, "kernel %s has no IR nodes to fill", b->s->kernels[k].name), -1;
    const KGraph *kg = &b->graphs[b->kgraph[k]];
    const DpocKernelInfo *ki = &b->s->kernels[k];
    uint64_t r = seed ^ ((uint64_t)k * 0x2545f4914f6cdd1dull);
    /* the output first: an in-place kernel's input is the output's bytes */
    const IrNode *root = ir_node(&kg->g, b->knodes[k][0]);
    memset(arg_ptr(b, k, 0), 0xff, (size_t)(ir_numel(root) * (int64_t)ir_dtype_size((IrDType)root->dtype)));
    for (int a = 1; a < ki->nargs; a++) {
        const IrNode *n = ir_node(&kg->g, b->knodes[k][a]);
        int64_t bound = kg->bound[b->knodes[k][a]], numel = ir_numel(n);
        uint8_t *p = arg_ptr(b, k, a);
        for (int64_t i = 0; i < numel; i++) {
            double v = bound > 0 ? (double)(rng_next(&r) % (uint64_t)bound)
                       : n->dtype == DT_I32 ? (double)(1 + rng_next(&r) % 4)
                                            : 2.0 * rng_unit(&r) - 1.0;
            put((IrDType)n->dtype, p, i, v);
        }
    }
    return snapshot_inputs(b, k, err, errlen);
}

/* the nodes call k computes, and L (ops + summed lengths) for its tolerance */
static int64_t mark_needed(const IrGraph *g, const int32_t *nodes, int nargs, unsigned char *need, unsigned char *given) {
    for (int a = 1; a < nargs; a++) given[nodes[a]] = 1;
    int32_t *stack = malloc((size_t)(g->n ? g->n : 1) * sizeof *stack);
    if (!stack) return -1;
    int64_t L = 0;
    int sp = 0;
    stack[sp++] = nodes[0];
    need[nodes[0]] = 1;
    while (sp > 0) {
        const IrNode *n = ir_node(g, stack[--sp]);
        L++;
        if (ir_op_is_matmul(n->op)) {
            const IrNode *x = ir_node(g, n->in[0]);
            L += n->attr[0] ? x->shape[x->ndim - 2] : x->shape[x->ndim - 1];
        } else if (n->op == OP_REDUCE_SUM || n->op == OP_REDUCE_MAX) {
            L += ir_node(g, n->in[0])->shape[n->attr[0]];
        } else if (n->op == OP_SCATTER_ADD_ROWS || n->op == OP_SCATTER_ADD_INTO) {
            L += ir_numel(ir_node(g, n->in[1]));
        } else if (n->op == OP_ATTENTION || n->op == OP_ATTENTION_GRAD) {
            /* a score and the backward's dP and D_r are dots over D; an output row sums T keys, a dk/dv row
             * M query rows */
            const IrNode *q = ir_node(g, n->in[0]), *kk = ir_node(g, n->in[1]);
            L += 2 * q->shape[q->ndim - 1] + kk->shape[kk->ndim - 2] + q->shape[q->ndim - 2];
        }
        for (int i = 0; i < ir_op_info[n->op].nin; i++) {
            int32_t v = n->in[i];
            if (given[v] || need[v]) continue;
            need[v] = 1;
            stack[sp++] = v;
        }
    }
    free(stack);
    return L;
}

static int graph_check(KBench *b, int k, KBenchCheck *r, char *err, size_t errlen) {
    const KGraph *kg = &b->graphs[b->kgraph[k]];
    const IrGraph *g = &kg->g;
    const DpocKernelInfo *ki = &b->s->kernels[k];
    const int32_t *nodes = b->knodes[k];
    unsigned char *need = calloc((size_t)g->n, 1), *given_mask = calloc((size_t)g->n, 1);
    double **given = calloc((size_t)g->n, sizeof *given);
    double **vals = NULL;
    int rc = -1;
    if (!need || !given_mask || !given) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int64_t L = mark_needed(g, nodes, ki->nargs, need, given_mask);
    if (L < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int a = 1; a < ki->nargs; a++) {
        int32_t v = nodes[a];
        if (given[v]) continue;
        const IrNode *n = ir_node(g, v);
        int64_t numel = ir_numel(n);
        if (!(given[v] = malloc((size_t)(numel ? numel : 1) * sizeof **given))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        const uint8_t *src = b->snap_at[a] >= 0 ? b->snap + b->snap_at[a] : arg_ptr(b, k, a);
        for (int64_t i = 0; i < numel; i++) given[v][i] = get((IrDType)n->dtype, src, i);
    }
    char sub[512];
    if (!(vals = ir_interp_run_part(g, need, given, 0, sub, sizeof sub))) {
        snprintf(err, errlen, "kernel %s: the reference interpreter failed: %s", ki->name, sub);
        goto out;
    }
    const IrNode *root = ir_node(g, nodes[0]);
    const double *want = vals[nodes[0]];
    const uint8_t *got = arg_ptr(b, k, 0);
    int64_t numel = ir_numel(root);
    double ss = 0;
    int64_t nfin = 0;
    for (int64_t i = 0; i < numel; i++)
        if (isfinite(want[i])) ss += want[i] * want[i], nfin++;
    double rms = nfin ? sqrt(ss / (double)nfin) : 0;
    double u = root->dtype == DT_F64 ? ldexp(1.0, -53) : ldexp(1.0, -24);
    memset(r, 0, sizeof *r);
    r->first_bad = -1;
    r->n = numel;
    for (int64_t i = 0; i < numel; i++) {
        double x = get((IrDType)root->dtype, got, i), w = want[i], tol = 0;
        int ok;
        if (root->dtype == DT_I32) {
            ok = x == w;
        } else if (isnan(w) || isinf(w)) {
            ok = isnan(w) ? isnan(x) : x == w;
        } else {
            tol = 8.0 * u * (double)L * (fabs(w) + rms);
            double e = fabs(x - w);
            ok = e <= tol;
            if (ok && tol > 0 && e / tol > r->worst) r->worst = e / tol;
        }
        if (!ok && r->nbad++ == 0) r->first_bad = i, r->got = x, r->want = w, r->tol = tol;
    }
    rc = 0;
out:
    ir_interp_free(g, vals);
    for (int32_t v = 0; given && v < g->n; v++) free(given[v]);
    free(given);
    free(need);
    free(given_mask);
    return rc;
}

int kbench_check(KBench *b, int k, KBenchCheck *r, char *err, size_t errlen) {
    if (is_adamw(b, k)) {
        if (!b->adam_prev) return snprintf(err, errlen, "kernel %s was not filled by kbench_fill", b->s->kernels[k].name), -1;
        return adamw_check(b, k, r);
    }
    if (b->kgraph[k] < 0) return snprintf(err, errlen, "kernel %s has no reference", b->s->kernels[k].name), -1;
    return graph_check(b, k, r, err, errlen);
}

/* ---- timing ------------------------------------------------------------------------- */

static void args_of(const KBench *b, int k, uint8_t **p) {
    const DpocKernelInfo *ki = &b->s->kernels[k];
    for (int a = 0; a < ki->nargs; a++) p[a] = b->s->regions[ki->arg_region[a]] + ki->arg_offset[a];
}

void kbench_run_once(KBench *b, int k, const DpocServices *svc) {
    const DpocKernelInfo *ki = &b->s->kernels[k];
    args_of(b, k, b->args);
    if (!svc) svc = &b->s->serial;
    svc->parallel_for(svc->ctx, b->s->manifest->kernels[k], b->args, ki->work);
}

/* the last-level cache one core sees: sysfs gives the size of one cache
 * instance (sysconf may give the whole socket's, 8x more on an EPYC) */
static size_t llc_bytes(void) {
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], buf[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            char *end;
            unsigned long long v = strtoull(buf, &end, 10);
            size_t bytes = (size_t)v * (*end == 'K' ? 1024u : *end == 'M' ? 1048576u : 1u);
            if (bytes > best) best = bytes;
        }
        fclose(f);
    }
    if (!best) {
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        best = l3 > 0 ? (size_t)l3 : (size_t)32 << 20;
    }
    return best;
}

void kbench_set_flush(KBench *b, size_t bytes) {
    free(b->flush);
    b->flush = NULL;
    b->flush_bytes = bytes;
    b->flush_set = 1;
}

static int flush_init(KBench *b) {
    if (b->flush || (b->flush_set && !b->flush_bytes)) return 0;
    if (!b->flush_set) {
        size_t llc = llc_bytes();
        b->flush_bytes = 2 * llc < ((size_t)8 << 20) ? (size_t)8 << 20 : 2 * llc;
    }
    return (b->flush = malloc(b->flush_bytes)) ? 0 : -1;
}

static void flush_caches(KBench *b) {
    if (!b->flush) return;
    memset(b->flush, (int)(++b->flush_gen & 0xff), b->flush_bytes);
    __asm__ volatile("" : : "r"(b->flush) : "memory"); /* the writes are not dead */
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return a < c ? -1 : a > c;
}

int kbench_time(KBench *b, int k, const DpocServices *svc, int reps, double *best, double *median) {
    if (reps < 1) reps = 1;
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t || flush_init(b)) return free(t), -1;
    for (int i = 0; i < reps; i++) {
        flush_caches(b);
        double t0 = now_s();
        kbench_run_once(b, k, svc);
        t[i] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *best = t[0];
    *median = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    free(t);
    return 0;
}

/* ---- the whole report --------------------------------------------------------------- */

int kbench_all(KBench *b, const DpocServices *svc, const KBenchOptions *o, FILE *out, FILE *err_out, char *err,
               size_t errlen) {
    DpocStep *s = b->s;
    int only = -1;
    if (o->only && (only = kbench_find(s, o->only)) < 0)
        return snprintf(err, errlen, "no kernel named '%s' (the manifest's \"kernels\" rows: e.g. %s)", o->only,
                        s->nkernels ? s->kernels[0].name : "none"),
               -1;
    int nbad = 0, nchecked = 0, nskipped = 0, nidle = 0;
    double total = 0, tflops = 0, tbytes = 0;
    fprintf(out, "%-36s %-16s %10s %10s %10s %9s %8s  %s\n", "kernel", "op", "work", "best ms", "median ms", "GFLOP/s",
            "GB/s", "check (max |err|/tol)");
    for (int k = 0; k < s->nkernels; k++) {
        if (only >= 0 && k != only) continue;
        const DpocKernelInfo *ki = &s->kernels[k];
        int can = kbench_checkable(b, k);
        if (can && kbench_fill(b, k, o->seed, err, errlen)) return -1;
        kbench_run_once(b, k, svc);
        char status[160];
        if (!can) {
            snprintf(status, sizeof status, "no reference");
            nskipped++;
        } else if (o->check_max_flops > 0 && (double)ki->flops > o->check_max_flops) {
            snprintf(status, sizeof status, "not checked (%.3g FLOP > limit)", (double)ki->flops);
            nskipped++;
        } else {
            KBenchCheck r;
            if (kbench_check(b, k, &r, err, errlen)) return -1;
            nchecked++;
            if (r.nbad) {
                nbad++;
                snprintf(status, sizeof status, "MISMATCH %lld/%lld", (long long)r.nbad, (long long)r.n);
                fprintf(err_out,
                        "dporun: --bench: kernel %s (%s) differs from the reference in %lld of %lld elements; first at "
                        "element %lld: got %.9g, expected %.9g (tolerance %.3g)\n",
                        ki->name, ki->op, (long long)r.nbad, (long long)r.n, (long long)r.first_bad, r.got, r.want, r.tol);
            } else {
                snprintf(status, sizeof status, "ok (%.2g)", r.worst);
            }
        }
        double best, med;
        if (kbench_time(b, k, svc, o->reps, &best, &med)) return snprintf(err, errlen, "out of memory"), -1;
        if (best <= 0) best = 1e-9;
        total += best, tflops += (double)ki->flops, tbytes += (double)ki->bytes;
        if (o->threads > 1 && ki->work < o->threads) nidle++;
        fprintf(out, "%-36s %-16s %10lld %10.4f %10.4f %9.2f %8.2f  %s\n", ki->name, ki->op, (long long)ki->work,
                best * 1e3, med * 1e3, (double)ki->flops / best * 1e-9, (double)ki->bytes / best * 1e-9, status);
    }
    fprintf(out, "bench: %d calls, %d checked, %d not checked, %d mismatched; sum of best times %.3f ms (%.2f GFLOP/s, %.2f GB/s)\n",
            only >= 0 ? 1 : s->nkernels, nchecked, nskipped, nbad, total * 1e3, total > 0 ? tflops / total * 1e-9 : 0,
            total > 0 ? tbytes / total * 1e-9 : 0);
    if (nidle)
        fprintf(out, "bench: %d calls have less work than the %d threads (work < threads: some threads idle)\n", nidle,
                o->threads);
    return nbad;
}
