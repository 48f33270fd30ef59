/* step_run.c — run a compiled step.so on seeded data and dump every tensor.
 *
 * usage: step_run STEP.so OUTDIR [--seed N]
 *
 * The end-to-end test's native half. It opens the step with the runtime's
 * loader, fills every trainable parameter from a splitmix64 stream seeded
 * by (seed, parameter name) through Box-Muller normals: matrices N(0, 1/in),
 * norm weights 1 + 0.1 N, biases 0.1 N, so no gradient is trivially zero.
 * Online-reference parameters (`ref:` + name) get the policy's values
 * times 1 + 0.05 N: a nearby model, so that a reference forward that read
 * the policy's parameters would show.
 * Inputs are a micro-batch of B pairs: each pair shares a prompt whose
 * length differs from pair to pair, chosen and rejected responses of
 * different lengths, padding at the end; loss_mask is 1 exactly on the
 * positions whose target is a response token, and masked targets and
 * padding tokens are random (valid) ids, so a masking error shows. With a
 * precomputed reference, `logps` runs first and ref_logps is set to the
 * policy's log-probs plus uniform noise in [-6, 6], which keeps every loss
 * away from its saturated regions.
 *
 * It runs `logps` then `train_step` with the serial services, then
 * train_step again with a parallel_for that splits every range into uneven
 * pieces run in reverse order, with the gradients, arena and outputs
 * poisoned with NaN first; the two runs must agree bit for bit (kernels must
 * not depend on the split or on stale memory), and parameters and inputs
 * must be left as they were. Then it writes OUTDIR/manifest.json (the step's
 * JSON), one raw little-endian file per tensor and OUTDIR/index.json listing
 * each one's name, kind (param, ref_param, input, grad, train_output,
 * logps_output), dtype, shape and file. tests/e2e/compare.py reads them.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/step_load.h"

/* ---- deterministic random numbers ------------------------------------------ */

typedef struct Rng {
    uint64_t s;
} Rng;

static uint64_t rng_next(Rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1): 53 random bits, never exactly 0 */
static double rng_uniform(Rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int64_t rng_below(Rng *r, int64_t n) { return n > 0 ? (int64_t)(rng_next(r) % (uint64_t)n) : 0; }

/* FNV-1a of the name, mixed with the seed: each tensor has its own stream */
static Rng rng_for(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    Rng r = {h ^ (seed * 0x9e3779b97f4a7c15ull)};
    rng_next(&r);
    return r;
}

/* ---- small helpers ---------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void store(const DpocTensorInfo *t, void *p, int64_t i, double v) {
    if (t->dtype == DPOC_DT_F64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

static double load(const DpocTensorInfo *t, const void *p, int64_t i) {
    return t->dtype == DPOC_DT_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

static int is_float(DpocDType t) { return t == DPOC_DT_F32 || t == DPOC_DT_F64; }

/* ---- parameters ------------------------------------------------------------- */

static int init_params(DpocStep *s, uint64_t seed) {
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM) continue;
        if (!is_float(t->dtype)) {
            fprintf(stderr, "step_run: parameter %s has dtype %s\n", t->name, dpoc_dtype_name(t->dtype));
            return -1;
        }
        void *p = s->regions[t->region] + t->offset;
        Rng r = rng_for(seed, t->name);
        double scale, shift = 0.0;
        if (t->ndim >= 2) {
            scale = 1.0 / sqrt((double)t->shape[t->ndim - 1]);
        } else if (ends_with(t->name, ".bias")) {
            scale = 0.1;
        } else { /* a norm weight */
            scale = 0.1;
            shift = 1.0;
        }
        for (int64_t k = 0; k < t->numel; k++) store(t, p, k, shift + scale * rng_normal(&r));
    }
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_REF_PARAM) continue;
        const char *base = strncmp(t->name, "ref:", 4) == 0 ? t->name + 4 : t->name;
        DpocTensorInfo src;
        void *from = dpoc_step_find(s, base, DPOC_ROLE_PARAM, &src);
        if (!from || src.nbytes != t->nbytes || src.dtype != t->dtype) {
            fprintf(stderr, "step_run: reference parameter %s has no matching parameter %s\n", t->name, base);
            return -1;
        }
        /* a nearby model, not an identical one: reading the policy's
         * parameters in the reference forward must show */
        void *to = s->regions[t->region] + t->offset;
        Rng r = rng_for(seed, t->name);
        for (int64_t k = 0; k < t->numel; k++) store(t, to, k, load(&src, from, k) * (1.0 + 0.05 * rng_normal(&r)));
    }
    return 0;
}

/* ---- inputs ----------------------------------------------------------------- */

typedef struct Batch {
    int64_t S, T, V;   /* sequences (2B), length, vocabulary */
    int32_t *tokens, *targets;
    const DpocTensorInfo *mask_info;
    void *mask;
} Batch;

/* Prompt lengths differ between pairs, response lengths between the chosen
 * and rejected rows of a pair; every row ends in at least one pad position. */
static int fill_batch(const Batch *b, Rng *r) {
    int64_t B = b->S / 2, T = b->T;
    if (b->S % 2 || T < 5) {
        fprintf(stderr, "step_run: need an even number of sequences and seq_len >= 5 (got %lld x %lld)\n",
                (long long)b->S, (long long)T);
        return -1;
    }
    for (int64_t i = 0; i < b->S * T; i++) {
        b->tokens[i] = (int32_t)rng_below(r, b->V);
        b->targets[i] = (int32_t)rng_below(r, b->V);
        store(b->mask_info, b->mask, i, 0.0);
    }
    int64_t maxp = T / 3 > 1 ? T / 3 : 1, p0 = rng_below(r, maxp);
    for (int64_t p = 0; p < B; p++) {
        int64_t P = 2 + (p + p0) % maxp;                    /* prompt tokens: distinct while p < maxp */
        int64_t room = T - P - 1;                           /* response tokens fit, one pad left */
        int64_t Lc = 1 + rng_below(r, room), Lr = 1 + rng_below(r, room);
        if (Lr == Lc) Lr = Lc > 1 ? Lc - 1 : Lc + 1;
        if (Lr > room) Lr = 1;
        for (int half = 0; half < 2; half++) {
            int64_t row = p + half * B, L = half ? Lr : Lc;
            int32_t *tok = b->tokens + row * T, *tgt = b->targets + row * T;
            if (half) memcpy(tok, b->tokens + p * T, (size_t)P * sizeof *tok); /* same prompt */
            for (int64_t t = 0; t + 1 < P + L; t++) tgt[t] = tok[t + 1];  /* next token */
            for (int64_t t = P - 1; t < P + L - 1; t++) store(b->mask_info, b->mask, row * T + t, 1.0);
        }
    }
    return 0;
}

static int init_inputs(DpocStep *s, uint64_t seed, int *has_ref_input) {
    DpocTensorInfo ti, tt, tm;
    int32_t *tokens = dpoc_step_find(s, "tokens", DPOC_ROLE_INPUT, &ti);
    int32_t *targets = dpoc_step_find(s, "targets", DPOC_ROLE_INPUT, &tt);
    void *mask = dpoc_step_find(s, "loss_mask", DPOC_ROLE_INPUT, &tm);
    if (!tokens || !targets || !mask) {
        fprintf(stderr, "step_run: the step lacks one of the inputs tokens, targets, loss_mask\n");
        return -1;
    }
    if (ti.dtype != DPOC_DT_I32 || tt.dtype != DPOC_DT_I32 || !is_float(tm.dtype) || ti.ndim != 2 ||
        tt.ndim != 2 || tm.ndim != 2 || ti.numel != tt.numel || ti.numel != tm.numel) {
        fprintf(stderr, "step_run: tokens/targets must be i32 [2B,T] and loss_mask float [2B,T]\n");
        return -1;
    }
    DpocTensorInfo emb;
    if (dpoc_step_lookup(s, "model.embed_tokens.weight", DPOC_ROLE_PARAM, &emb) || emb.ndim != 2) {
        fprintf(stderr, "step_run: no model.embed_tokens.weight parameter to take the vocabulary size from\n");
        return -1;
    }
    Batch b = {ti.shape[0], ti.shape[1], emb.shape[0], tokens, targets, &tm, mask};
    Rng r = rng_for(seed, "batch");
    if (fill_batch(&b, &r)) return -1;
    *has_ref_input = 0;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_INPUT) continue;
        if (!strcmp(t->name, "tokens") || !strcmp(t->name, "targets") || !strcmp(t->name, "loss_mask")) continue;
        if (!strcmp(t->name, "ref_logps")) {
            *has_ref_input = 1;
            continue;
        }
        if (!strcmp(t->name, "adamw")) continue; /* optimizer hyper-parameters: not used here */
        if (!strcmp(t->name, "prefill_tokens") || !strcmp(t->name, "decode_tokens") || !strcmp(t->name, "gen_pos") ||
            !strncmp(t->name, "kv_cache.", 9))
            continue; /* inputs of the generation entries (docs/step-abi.md), not run here */
        fprintf(stderr, "step_run: unknown input %s; teach tests/e2e/step_run.c how to fill it\n", t->name);
        return -1;
    }
    return 0;
}

/* ref_logps = the policy's log-probs (from the logps entry) + U(-6, 6) */
static int init_ref_logps(DpocStep *s, uint64_t seed) {
    DpocTensorInfo ri, li;
    void *ref = dpoc_step_find(s, "ref_logps", DPOC_ROLE_INPUT, &ri);
    void *lp = dpoc_step_find(s, "logps", DPOC_ROLE_OUTPUT, &li);
    if (!ref || !lp || li.numel != ri.numel || !is_float(ri.dtype) || !is_float(li.dtype)) {
        fprintf(stderr, "step_run: need input ref_logps and output logps of the same size\n");
        return -1;
    }
    Rng r = rng_for(seed, "ref_logps");
    for (int64_t i = 0; i < ri.numel; i++) {
        double v = load(&li, lp, i) + 12.0 * rng_uniform(&r) - 6.0;
        store(&ri, ref, i, v < -0.5 ? v : -0.5);
    }
    return 0;
}

/* ---- a parallel_for that splits unevenly and runs pieces backwards ---------- */

static void split_for(void *ctx, DpocKernelFn fn, uint8_t *const *regions, int64_t n) {
    (void)ctx;
    if (n <= 0) return;
    int64_t cuts[5] = {0, n / 7, n / 3, (2 * n) / 3 + 1, n};
    if (cuts[3] > n) cuts[3] = n;
    for (int i = 3; i >= 0; i--)
        if (cuts[i + 1] > cuts[i]) fn(regions, cuts[i], cuts[i + 1]);
}

/* ---- dumping ---------------------------------------------------------------- */

typedef struct Snapshot {
    int n;
    void **data;
} Snapshot;

enum { K_PARAM, K_REF_PARAM, K_INPUT, K_GRAD, K_TRAIN_OUT, K_LOGPS_OUT, K_COUNT };
static const char *const kind_names[K_COUNT] = {"param", "ref_param", "input", "grad", "train_output", "logps_output"};

/* the dump kind of a tensor role; -1 for roles not dumped */
static int kind_of(DpocRole role) {
    switch (role) {
    case DPOC_ROLE_PARAM: return K_PARAM;
    case DPOC_ROLE_REF_PARAM: return K_REF_PARAM;
    case DPOC_ROLE_INPUT: return K_INPUT;
    case DPOC_ROLE_GRAD: return K_GRAD;
    case DPOC_ROLE_OUTPUT: return K_TRAIN_OUT;
    default: return -1;
    }
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "step_run: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    if (fclose(f) != 0 || w != n) {
        fprintf(stderr, "step_run: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void sanitise(const char *in, char *out, size_t cap) {
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++) {
        char c = in[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                 c == '_';
        out[i] = ok ? c : '_';
    }
    out[i] = 0;
}

static int dump_tensor(cJSON *list, const char *dir, const DpocTensorInfo *t, int kind, const void *data) {
    char clean[256], file[300], path[1200];
    sanitise(t->name, clean, sizeof clean);
    snprintf(file, sizeof file, "%s.%s.bin", kind_names[kind], clean);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (write_file(path, data, (size_t)t->nbytes)) return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON *shape = cJSON_CreateArray();
    if (!o || !shape) {
        cJSON_Delete(o);
        cJSON_Delete(shape);
        return -1;
    }
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "kind", kind_names[kind]);
    cJSON_AddStringToObject(o, "dtype", dpoc_dtype_name(t->dtype));
    cJSON_AddItemToObject(o, "shape", shape);
    cJSON_AddStringToObject(o, "file", file);
    cJSON_AddItemToArray(list, o);
    return 0;
}

/* Copies of every output (and, for train, every gradient) after a run. */
static int snapshot(DpocStep *s, int with_grads, Snapshot *snap) {
    snap->n = s->ntensors;
    snap->data = calloc((size_t)s->ntensors, sizeof *snap->data);
    if (!snap->data) return -1;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_OUTPUT && !(with_grads && t->role == DPOC_ROLE_GRAD)) continue;
        if (!(snap->data[i] = malloc(t->nbytes ? (size_t)t->nbytes : 1))) return -1;
        memcpy(snap->data[i], s->regions[t->region] + t->offset, (size_t)t->nbytes);
    }
    return 0;
}

static void snapshot_free(Snapshot *snap) {
    for (int i = 0; snap->data && i < snap->n; i++) free(snap->data[i]);
    free(snap->data);
    snap->data = NULL;
}

/* 0 when the two snapshots are bitwise identical */
static int snapshot_diff(const DpocStep *s, const Snapshot *a, const Snapshot *b) {
    int bad = 0;
    for (int i = 0; i < s->ntensors; i++) {
        if (!a->data[i] || !b->data[i]) continue;
        if (memcmp(a->data[i], b->data[i], (size_t)s->tensors[i].nbytes)) {
            fprintf(stderr, "step_run: %s %s differs between a serial run and a split run over poisoned memory\n",
                    dpoc_role_name(s->tensors[i].role), s->tensors[i].name);
            bad = 1;
        }
    }
    return bad;
}

/* all-ones bytes: NaN in f32 and f64, so a value read before it is written
 * or an element never written shows */
static void poison(DpocStep *s, DpocRegion r) {
    if (s->regions[r]) memset(s->regions[r], 0xff, (size_t)s->region_size[r]);
}

/* The regions an entry point must only read: parameters, reference
 * parameters, inputs. */
static const DpocRegion read_only[3] = {DPOC_R_PARAMS, DPOC_R_REF_PARAMS, DPOC_R_INPUTS};

static int save_read_only(const DpocStep *s, uint8_t **copy) {
    for (int k = 0; k < 3; k++) {
        size_t n = (size_t)s->region_size[read_only[k]];
        if (!(copy[k] = malloc(n ? n : 1))) return -1;
        if (n) memcpy(copy[k], s->regions[read_only[k]], n);
    }
    return 0;
}

static int check_read_only(const DpocStep *s, uint8_t *const *copy) {
    static const char *const names[3] = {"parameters", "reference parameters", "inputs"};
    for (int k = 0; k < 3; k++) {
        size_t n = (size_t)s->region_size[read_only[k]];
        if (n && memcmp(copy[k], s->regions[read_only[k]], n)) {
            fprintf(stderr, "step_run: an entry point wrote into the %s region\n", names[k]);
            return -1;
        }
    }
    return 0;
}

static int write_dump(DpocStep *s, const char *dir, const Snapshot *logps_out, const Snapshot *train_out,
                      uint64_t seed) {
    cJSON *root = cJSON_CreateObject(), *list = cJSON_CreateArray();
    if (!root || !list) {
        cJSON_Delete(root);
        cJSON_Delete(list);
        return -1;
    }
    cJSON_AddNumberToObject(root, "seed", (double)seed);
    cJSON_AddItemToObject(root, "tensors", list);
    int rc = 0;
    for (int i = 0; i < s->ntensors && !rc; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        int kind = kind_of(t->role);
        if (kind < 0) continue;
        if (kind == K_TRAIN_OUT) {
            if (logps_out && logps_out->data[i]) rc = dump_tensor(list, dir, t, K_LOGPS_OUT, logps_out->data[i]);
            if (!rc && train_out->data[i]) rc = dump_tensor(list, dir, t, K_TRAIN_OUT, train_out->data[i]);
        } else if (kind == K_GRAD) {
            rc = dump_tensor(list, dir, t, kind, train_out->data[i]);
        } else {
            rc = dump_tensor(list, dir, t, kind, s->regions[t->region] + t->offset);
        }
    }
    char path[1200];
    if (!rc) {
        char *text = cJSON_Print(root);
        snprintf(path, sizeof path, "%s/index.json", dir);
        rc = text ? write_file(path, text, strlen(text)) : -1;
        free(text);
    }
    if (!rc) {
        const char *mj = s->manifest->json ? s->manifest->json : "{}";
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        rc = write_file(path, mj, strlen(mj));
    }
    cJSON_Delete(root);
    return rc;
}

/* Whether the IR text of an entry has an output line naming `name`
 * (`output <role> "<name>" = %id`). */
static int ir_has_output(const char *ir, const char *name) {
    size_t n = strlen(name);
    for (const char *line = ir; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "output ", 7)) continue;
        const char *q = strchr(line, '"');
        const char *eol = strchr(line, '\n');
        if (q && (!eol || q < eol) && !strncmp(q + 1, name, n) && q[1 + n] == '"') return 1;
    }
    return 0;
}

/* Keeps only the outputs an entry writes (its IR's output lines): `loss` is
 * not the logps entry's, `logits` not train_step's. */
static int keep_entry_outputs(DpocStep *s, const char *entry, Snapshot *snap) {
    cJSON *ir = cJSON_GetObjectItemCaseSensitive(s->json, "ir");
    cJSON *text = ir ? cJSON_GetObjectItemCaseSensitive(ir, entry) : NULL;
    if (!cJSON_IsString(text)) {
        fprintf(stderr, "step_run: the manifest has no IR text for the %s entry\n", entry);
        return -1;
    }
    for (int i = 0; i < s->ntensors; i++) {
        if (!snap->data[i] || s->tensors[i].role != DPOC_ROLE_OUTPUT) continue;
        if (ir_has_output(text->valuestring, s->tensors[i].name)) continue;
        free(snap->data[i]);
        snap->data[i] = NULL;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *so = NULL, *dir = NULL;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!so)
            so = argv[i];
        else if (!dir)
            dir = argv[i];
        else
            so = NULL, i = argc;
    }
    if (!so || !dir) {
        fprintf(stderr, "usage: step_run STEP.so OUTDIR [--seed N]\n");
        return 2;
    }
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "step_run: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char err[1024];
    DpocStep s;
    if (dpoc_step_open(&s, so, err, sizeof err)) {
        fprintf(stderr, "step_run: %s\n", err);
        return 1;
    }
    int rc = 1, has_ref = 0, has_logps = s.manifest->logps != NULL;
    Snapshot lsnap = {0, NULL}, tsnap = {0, NULL}, tsnap2 = {0, NULL};
    uint8_t *saved[3] = {NULL, NULL, NULL};
    if (init_params(&s, seed) || init_inputs(&s, seed, &has_ref)) goto out;
    if (has_logps) {
        poison(&s, DPOC_R_OUTPUTS);
        poison(&s, DPOC_R_ARENA);
        if (dpoc_step_logps(&s, NULL, err, sizeof err)) {
            fprintf(stderr, "step_run: logps: %s\n", err);
            goto out;
        }
        if (snapshot(&s, 0, &lsnap)) goto oom;
        if (keep_entry_outputs(&s, "logps", &lsnap)) goto out;
    }
    if (has_ref) {
        if (!has_logps) {
            fprintf(stderr, "step_run: a precomputed reference needs the logps entry\n");
            goto out;
        }
        if (init_ref_logps(&s, seed)) goto out;
    }
    if (save_read_only(&s, saved)) goto oom;
    poison(&s, DPOC_R_OUTPUTS);
    if (dpoc_step_train(&s, NULL, err, sizeof err)) {
        fprintf(stderr, "step_run: train_step: %s\n", err);
        goto out;
    }
    if (snapshot(&s, 1, &tsnap)) goto oom;
    if (keep_entry_outputs(&s, "train_step", &tsnap)) goto out;
    /* the same step again: split ranges, poisoned gradients, arena, outputs */
    poison(&s, DPOC_R_GRADS);
    poison(&s, DPOC_R_ARENA);
    poison(&s, DPOC_R_OUTPUTS);
    DpocServices split = {.parallel_for = split_for, .dp_size = 1, .tp_size = 1};
    if (dpoc_step_train(&s, &split, err, sizeof err)) {
        fprintf(stderr, "step_run: train_step (split): %s\n", err);
        goto out;
    }
    if (snapshot(&s, 1, &tsnap2)) goto oom;
    if (keep_entry_outputs(&s, "train_step", &tsnap2)) goto out;
    if (snapshot_diff(&s, &tsnap, &tsnap2) || check_read_only(&s, saved)) goto out;
    if (write_dump(&s, dir, has_logps ? &lsnap : NULL, &tsnap, seed)) goto out;
    printf("step_run: dumped %s into %s (seed %llu)\n", so, dir, (unsigned long long)seed);
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "step_run: out of memory\n");
out:
    snapshot_free(&lsnap);
    snapshot_free(&tsnap);
    snapshot_free(&tsnap2);
    for (int k = 0; k < 3; k++) free(saved[k]);
    dpoc_step_close(&s);
    return rc;
}
