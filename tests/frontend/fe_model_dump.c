/* fe_model_dump.c — interpret a model's graphs in double precision and dump
 * everything as JSON, for check_vs_torch.py.
 *
 * usage: fe_model_dump MODEL.yaml OUT.json
 *
 * Builds the train graph and the logps graph (with logits) in f64, fills
 * every parameter (trainable and, for the online reference, the frozen
 * `ref:` copies, drawn independently) and input from a fixed-seed generator,
 * interprets both graphs with ir_eval, and writes the config, the
 * parameters with their shapes, the inputs and every output. Masks have a
 * prompt, a response and padding at the end, of different lengths per
 * sequence.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir_eval.h"

typedef struct Blob {
    char *name;
    int64_t n;
    double *v;
} Blob;

typedef struct Data {
    Blob *b;
    int nb;
    uint64_t rng;
} Data;

static double uniform(Data *d) { /* [-1, 1) */
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return (double)(d->rng >> 11) / (double)(1ULL << 52) - 1.0;
}

static Blob *find(Data *d, const char *name) {
    for (int i = 0; i < d->nb; i++)
        if (!strcmp(d->b[i].name, name)) return &d->b[i];
    return NULL;
}

/* Adds a named array; the returned data stays put when more are added. */
static double *add(Data *d, const char *name, int64_t n) {
    d->b = realloc(d->b, (size_t)(d->nb + 1) * sizeof *d->b);
    Blob *b = &d->b[d->nb++];
    b->name = strdup(name);
    b->n = n;
    b->v = calloc((size_t)n, sizeof *b->v);
    return b->v;
}

static int ends_with(const char *s, const char *t) {
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

static void fill_param(Data *d, const IrNode *n, const char *s, double *v) {
    int64_t ne = ir_numel(n);
    if (ends_with(s, "norm.weight")) {
        for (int64_t i = 0; i < ne; i++) v[i] = 1.0 + 0.2 * uniform(d);
    } else if (ends_with(s, ".bias")) {
        for (int64_t i = 0; i < ne; i++) v[i] = 0.1 * uniform(d);
    } else {
        double scale = ends_with(s, "embed_tokens.weight") ? 1.0 : 1.7 / sqrt((double)n->shape[1]);
        for (int64_t i = 0; i < ne; i++) v[i] = scale * uniform(d);
    }
}

static const double *lookup(void *ctx, const char *name, IrOp op, int64_t numel) {
    (void)op;
    Blob *b = find(ctx, name);
    return b && b->n == numel ? b->v : NULL;
}

static cJSON *array(const double *v, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fe_model_dump MODEL.yaml OUT.json\n");
        return 2;
    }
    char err[1024];
    ModelCfg cfg;
    if (model_cfg_load(argv[1], &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    IrGraph g[2];
    BuildOptions bo = {.dtype = DT_F64, .expose_logits = 1};
    for (int k = 0; k < 2; k++) {
        ir_init(&g[k]);
        if (model_build_graph(&cfg, k ? BUILD_LOGPS : BUILD_TRAIN, &bo, &g[k], err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    Data d = {NULL, 0, 0x9E3779B97F4A7C15ULL};
    int64_t S = 2 * cfg.pairs, T = cfg.seq_len, V = cfg.vocab_size;
    double *tok = add(&d, "tokens", S * T), *tgt = add(&d, "targets", S * T), *mask = add(&d, "loss_mask", S * T);
    for (int64_t i = 0; i < S * T; i++) tok[i] = (double)((int64_t)((uniform(&d) + 1.0) * 0.5 * (double)V) % V);
    for (int64_t s = 0; s < S; s++) {
        int64_t prompt = 1 + s % 3, resp = T - prompt - (s * 5) % (T / 2 > 0 ? T / 2 : 1);
        if (resp < 1) resp = 1;
        for (int64_t t = 0; t < T; t++) {
            int64_t i = s * T + t;
            tgt[i] = t + 1 < T ? tok[i + 1] : (double)((s * 7 + 3) % V);
            mask[i] = (t >= prompt - 1 && t < prompt - 1 + resp) ? 1.0 : 0.0;
        }
    }
    if (ir_find_named(&g[0], OP_INPUT, "ref_logps") >= 0) {
        double *r = add(&d, "ref_logps", S);
        for (int64_t i = 0; i < S; i++) r[i] = -22.0 + 15.0 * uniform(&d);
    }
    for (int32_t i = 0; i < g[0].n; i++) {
        const IrNode *n = &g[0].nodes[i];
        if (n->op != OP_PARAM) continue;
        const char *name = ir_str_get(&g[0], n->name);
        fill_param(&d, n, name, add(&d, name, ir_numel(n)));
    }

    EvalResult r[2];
    for (int k = 0; k < 2; k++)
        if (ir_eval(&g[k], lookup, &d, &r[k], err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", argv[1], err);
            return 1;
        }

    cJSON *root = cJSON_CreateObject();
    char *cj = model_cfg_to_json(&cfg);
    cJSON_AddItemToObject(root, "config", cJSON_Parse(cj));
    free(cj);
    cJSON *params = cJSON_AddObjectToObject(root, "params"), *inputs = cJSON_AddObjectToObject(root, "inputs");
    for (int i = 0; i < d.nb; i++) {
        int32_t pid = ir_find_named(&g[0], OP_PARAM, d.b[i].name);
        if (pid < 0) {
            cJSON_AddItemToObject(inputs, d.b[i].name, array(d.b[i].v, d.b[i].n));
            continue;
        }
        const IrNode *n = &g[0].nodes[pid];
        cJSON *p = cJSON_CreateObject();
        double shape[IR_MAX_DIMS];
        for (int k = 0; k < n->ndim; k++) shape[k] = (double)n->shape[k];
        cJSON_AddItemToObject(p, "shape", array(shape, n->ndim));
        cJSON_AddItemToObject(p, "data", array(d.b[i].v, d.b[i].n));
        cJSON_AddItemToObject(params, d.b[i].name, p);
    }
    cJSON *outs = cJSON_AddObjectToObject(root, "outputs");
    for (int k = 0; k < 2; k++)
        for (int32_t o = 0; o < g[k].nout; o++) {
            char key[64];
            snprintf(key, sizeof key, "%s%s", k ? "logps_graph." : "", ir_str_get(&g[k], g[k].outs[o].name));
            int32_t id = g[k].outs[o].id;
            cJSON_AddItemToObject(outs, key, array(r[k].vals[id], ir_numel(&g[k].nodes[id])));
        }
    char *text = cJSON_PrintUnformatted(root);
    FILE *f = fopen(argv[2], "w");
    int ok = f && text && fputs(text, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    free(text);
    cJSON_Delete(root);
    for (int k = 0; k < 2; k++) {
        ir_eval_free(&r[k]);
        ir_free(&g[k]);
    }
    for (int i = 0; i < d.nb; i++) {
        free(d.b[i].name);
        free(d.b[i].v);
    }
    free(d.b);
    model_cfg_free(&cfg);
    if (!ok) fprintf(stderr, "cannot write %s\n", argv[2]);
    return ok ? 0 : 1;
}
