/* sim_mesh.c — a dp x tp mesh simulated in one process, to prove the
 * compiler's sharding without MPI.
 *
 *   sim_mesh REF.so MESH.so
 *
 * REF.so is the 1x1 step of a model compiled with the GLOBAL micro-batch
 * (pairs = dp x the per-rank pairs); MESH.so is the same model compiled with
 * --mesh dp=D,tp=T. The program fills REF's parameters, reference parameters
 * and inputs with seeded values and runs train_step and logps once. Then it
 * opens MESH.so once per rank (each with its own regions), gives every rank
 * its block of each parameter — by the manifest's "full_shape"/"shard" rows
 * (tp rank r holds [r*n/T, (r+1)*n/T) of dim k) — and its dp rank's pairs
 * (rank d: chosen pairs [d*P, (d+1)*P) and the same rejected pairs), and runs
 * every rank's entry on a thread of its own. The collectives are a shared
 * slot table per axis group plus a barrier: all_reduce_sum adds the group's
 * buffers in rank order (the same bits on every rank, run to run), and
 * all_gather concatenates the blocks in rank order.
 *
 * Checked, each to <= 1e-5 relative (max |a - b| over max |b| per tensor):
 * the loss on every rank; per-pair outputs (logps, logits_sum, ref_logps),
 * placed back at their global rows; every gradient re-assembled from the tp
 * shards, and identical bits on every dp rank; replicated gradients
 * identical on every tp rank; logps from the logps entry. Prints "OK" with
 * the largest relative difference, exits 1 naming the first mismatch.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/step_load.h"

enum { MAX_RANKS = 16, MAX_TENSORS = 512 };

typedef struct Group {
    pthread_barrier_t bar;
    int size;
    const void *slot[MAX_RANKS];
} Group;

typedef struct Rank {
    DpocStep st;
    DpocServices svc;
    int dp, tp, world;
    Group *g[2]; /* the dp group (same tp rank) and the tp group (same dp rank) */
    int entry;   /* 0 train_step, 1 logps */
    int rc;
} Rank;

typedef struct Mesh {
    int D, T;
    Rank r[MAX_RANKS];
    Group dpg[MAX_RANKS], tpg[MAX_RANKS];
} Mesh;

static int member_of(const Rank *r, DpocAxis axis) { return axis == DPOC_AXIS_DP ? r->dp : r->tp; }

static int sim_all_reduce(void *ctx, DpocAxis axis, void *buf, int64_t n, DpocCollType type) {
    Rank *r = ctx;
    Group *g = r->g[axis];
    int me = member_of(r, axis);
    size_t esz = type == DPOC_COLL_F64 ? 8 : 4;
    void *tmp = malloc((size_t)n * esz + 1);
    if (!tmp) return 1;
    g->slot[me] = buf;
    pthread_barrier_wait(&g->bar);
    for (int64_t i = 0; i < n; i++) {
        if (type == DPOC_COLL_F64) {
            double a = 0;
            for (int k = 0; k < g->size; k++) a += ((const double *)g->slot[k])[i];
            ((double *)tmp)[i] = a;
        } else {
            float a = 0;
            for (int k = 0; k < g->size; k++) a += ((const float *)g->slot[k])[i];
            ((float *)tmp)[i] = a;
        }
    }
    pthread_barrier_wait(&g->bar);
    memcpy(buf, tmp, (size_t)n * esz);
    free(tmp);
    return 0;
}

static int sim_all_gather(void *ctx, DpocAxis axis, const void *send, void *recv, int64_t bytes) {
    Rank *r = ctx;
    Group *g = r->g[axis];
    g->slot[member_of(r, axis)] = send;
    pthread_barrier_wait(&g->bar);
    for (int k = 0; k < g->size; k++) memcpy((uint8_t *)recv + (size_t)k * (size_t)bytes, g->slot[k], (size_t)bytes);
    pthread_barrier_wait(&g->bar);
    return 0;
}

static void *rank_main(void *arg) {
    Rank *r = arg;
    char err[256];
    r->rc = r->entry == 0 ? dpoc_step_train(&r->st, &r->svc, err, sizeof err) : dpoc_step_logps(&r->st, &r->svc, err, sizeof err);
    return NULL;
}

/* ---- data ------------------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* splitmix64 -> [0, 1) */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static void fill(DpocStep *s, int64_t vocab) {
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        uint8_t *p = s->regions[t->region] + t->offset;
        if (t->role == DPOC_ROLE_PARAM || t->role == DPOC_ROLE_REF_PARAM) {
            int norm = t->ndim == 1 && strstr(t->name, "norm");
            for (int64_t k = 0; k < t->numel; k++) ((float *)p)[k] = (float)(norm ? 1.0 + 0.2 * (urand() - 0.5) : 0.3 * (urand() - 0.5));
        } else if (t->role == DPOC_ROLE_INPUT && strcmp(t->name, "adamw") != 0) {
            for (int64_t k = 0; k < t->numel; k++) {
                if (t->dtype == DPOC_DT_I32) ((int32_t *)p)[k] = (int32_t)(urand() * (double)vocab);
                else if (!strcmp(t->name, "loss_mask")) ((float *)p)[k] = (float)((k % t->shape[t->ndim - 1]) >= 3);
                else ((float *)p)[k] = (float)(-40.0 * urand() - 10.0);
            }
        }
    }
}

/* the "full_shape"/"shard" of a tensor row of the mesh step's JSON */
static int shard_of(const DpocStep *s, const char *name, const char *role, int64_t *full, int *axis, int *dim) {
    cJSON *rows = cJSON_GetObjectItem(s->json, "tensors"), *x;
    cJSON_ArrayForEach(x, rows) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), name) != 0 ||
            strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "role")), role) != 0)
            continue;
        cJSON *fs = cJSON_GetObjectItem(x, "full_shape"), *sh = cJSON_GetObjectItem(x, "shard"), *d;
        if (!fs) return -1;
        int k = 0;
        cJSON_ArrayForEach(d, fs) full[k++] = (int64_t)d->valuedouble;
        *axis = -1;
        *dim = -1;
        if (sh && cJSON_IsObject(sh)) {
            *axis = strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(sh, "axis")), "dp") == 0 ? 0 : 1;
            *dim = (int)cJSON_GetObjectItem(sh, "dim")->valuedouble;
        }
        return 0;
    }
    return -1;
}

/* element index in the full tensor of local element i of rank block `rank` of `ranks` along dim */
static int64_t full_index(const DpocTensorInfo *t, const int64_t *full, int dim, int rank, int64_t i) {
    if (dim < 0) return i;
    int64_t idx = 0, rest = i;
    int64_t coord[DPOC_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        coord[d] = rest % t->shape[d];
        rest /= t->shape[d];
    }
    coord[dim] += (int64_t)rank * t->shape[dim];
    for (int d = 0; d < t->ndim; d++) idx = idx * full[d] + coord[d];
    return idx;
}

/* global row of local sequence row i of dp rank d (P pairs per rank, D ranks) */
static int64_t global_row(int64_t i, int d, int64_t P, int D) {
    return i < P ? (int64_t)d * P + i : (int64_t)D * P + (int64_t)d * P + (i - P);
}

static double maxrel = 0;
static int failures = 0;

static void compare(const char *what, const float *got, const float *want, int64_t n) {
    double md = 0, mw = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs((double)want[i]) > mw) mw = fabs((double)want[i]);
    }
    double rel = md / (mw > 1e-30 ? mw : 1e-30);
    if (rel > maxrel) maxrel = rel;
    if (!(rel <= 1e-5)) {
        fprintf(stderr, "MISMATCH %s: max |diff| %.3g, max |ref| %.3g, relative %.3g > 1e-5\n", what, md, mw, rel);
        failures++;
    }
}

static int run_mesh(Mesh *m, int entry) {
    pthread_t th[MAX_RANKS];
    int n = m->D * m->T;
    for (int w = 0; w < n; w++) {
        m->r[w].entry = entry;
        if (pthread_create(&th[w], NULL, rank_main, &m->r[w]) != 0) return -1;
    }
    for (int w = 0; w < n; w++) pthread_join(th[w], NULL);
    for (int w = 0; w < n; w++)
        if (m->r[w].rc != 0) {
            fprintf(stderr, "rank %d: entry %d returned %d\n", w, entry, m->r[w].rc);
            return -1;
        }
    return 0;
}

/* copies the global values of every param and input into each rank's block */
static int scatter_to_ranks(Mesh *m, DpocStep *ref) {
    int64_t P = 0;
    for (int w = 0; w < m->D * m->T; w++) {
        Rank *r = &m->r[w];
        DpocStep *s = &r->st;
        for (int i = 0; i < s->ntensors; i++) {
            const DpocTensorInfo *t = &s->tensors[i];
            if (t->role != DPOC_ROLE_PARAM && t->role != DPOC_ROLE_REF_PARAM && t->role != DPOC_ROLE_INPUT) continue;
            DpocTensorInfo rt;
            const uint8_t *src = dpoc_step_find(ref, t->name, t->role, &rt);
            if (!src) {
                if (!strcmp(t->name, "adamw")) continue;
                fprintf(stderr, "%s: not in the 1x1 step\n", t->name);
                return -1;
            }
            uint8_t *dst = s->regions[t->region] + t->offset;
            size_t esz = dpoc_dtype_size(t->dtype);
            if (t->role == DPOC_ROLE_INPUT) {
                if (t->ndim == 0 || !strcmp(t->name, "adamw")) continue;
                P = t->shape[0] / 2;
                int64_t row = t->numel / t->shape[0];
                for (int64_t i2 = 0; i2 < t->shape[0]; i2++)
                    memcpy(dst + (size_t)(i2 * row) * esz, src + (size_t)(global_row(i2, r->dp, P, m->D) * row) * esz,
                           (size_t)row * esz);
                continue;
            }
            int64_t full[DPOC_MAX_DIMS];
            int axis, dim;
            if (shard_of(s, t->name, t->role == DPOC_ROLE_PARAM ? "param" : "ref_param", full, &axis, &dim)) {
                fprintf(stderr, "%s: no full_shape in the mesh step's tensor table\n", t->name);
                return -1;
            }
            for (int64_t k = 0; k < t->numel; k++)
                memcpy(dst + (size_t)k * esz, src + (size_t)full_index(t, full, dim, axis == 0 ? r->dp : r->tp, k) * esz, esz);
        }
    }
    (void)P;
    return 0;
}

static int check_outputs(Mesh *m, DpocStep *ref, int entry) {
    int n = m->D * m->T;
    DpocStep *s0 = &m->r[0].st;
    char what[256];
    for (int i = 0; i < s0->ntensors; i++) {
        const DpocTensorInfo *t = &s0->tensors[i];
        if (t->role != DPOC_ROLE_OUTPUT && !(t->role == DPOC_ROLE_GRAD && entry == 0)) continue;
        DpocTensorInfo rt;
        const float *want = dpoc_step_find(ref, t->name, t->role, &rt);
        if (!want) {
            fprintf(stderr, "%s: not in the 1x1 step\n", t->name);
            return -1;
        }
        float *got = calloc((size_t)rt.numel, sizeof *got);
        if (!got) return -1;
        if (t->role == DPOC_ROLE_OUTPUT && t->ndim == 0) { /* the loss: on every rank */
            for (int w = 0; w < n; w++) {
                got[0] = *(const float *)dpoc_step_find(&m->r[w].st, t->name, t->role, NULL);
                snprintf(what, sizeof what, "%s (entry %d) on rank %d", t->name, entry, w);
                compare(what, got, want, 1);
            }
        } else if (t->role == DPOC_ROLE_OUTPUT) { /* per-pair: each dp rank's rows */
            int64_t P = t->shape[0] / 2, row = t->numel / t->shape[0];
            for (int w = 0; w < n; w++) {
                const float *v = dpoc_step_find(&m->r[w].st, t->name, t->role, NULL);
                for (int64_t r2 = 0; r2 < t->shape[0]; r2++)
                    memcpy(got + global_row(r2, m->r[w].dp, P, m->D) * row, v + r2 * row, sizeof *got * (size_t)row);
                if (m->r[w].tp == m->T - 1) {
                    snprintf(what, sizeof what, "%s (entry %d) up to dp rank %d", t->name, entry, m->r[w].dp);
                    if (m->r[w].dp == m->D - 1) compare(what, got, want, rt.numel);
                }
            }
        } else { /* a gradient: assembled from the tp shards; equal bits on every dp rank */
            int64_t full[DPOC_MAX_DIMS];
            int axis, dim;
            if (shard_of(s0, t->name, "grad", full, &axis, &dim)) {
                fprintf(stderr, "%s: no full_shape for the grad\n", t->name);
                free(got);
                return -1;
            }
            for (int w = 0; w < n; w++) {
                const Rank *r = &m->r[w];
                DpocTensorInfo lt;
                const float *v = dpoc_step_find((DpocStep *)&r->st, t->name, t->role, &lt);
                const float *v0 = dpoc_step_find(&m->r[r->tp].st, t->name, t->role, NULL); /* dp rank 0, same tp rank */
                if (memcmp(v, v0, (size_t)lt.nbytes) != 0) {
                    fprintf(stderr, "MISMATCH grad %s: dp rank %d differs from dp rank 0\n", t->name, r->dp);
                    failures++;
                }
                if (dim < 0) {
                    const float *vt = dpoc_step_find(&m->r[r->dp * m->T].st, t->name, t->role, NULL);
                    if (memcmp(v, vt, (size_t)lt.nbytes) != 0) {
                        fprintf(stderr, "MISMATCH replicated grad %s: tp rank %d differs from tp rank 0\n", t->name, r->tp);
                        failures++;
                    }
                }
                if (r->dp == 0)
                    for (int64_t k = 0; k < lt.numel; k++) got[full_index(&lt, full, dim, r->tp, k)] = v[k];
            }
            snprintf(what, sizeof what, "grad %s", t->name);
            compare(what, got, want, rt.numel);
        }
        free(got);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: sim_mesh REF.so MESH.so\n");
        return 2;
    }
    char err[512];
    static DpocStep ref;
    static Mesh m;
    if (dpoc_step_open(&ref, argv[1], err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cJSON *cfg = cJSON_GetObjectItem(ref.json, "config");
    cJSON *vs = cfg ? cJSON_GetObjectItem(cfg, "vocab_size") : NULL;
    int64_t vocab = vs ? (int64_t)vs->valuedouble : 256;
    fill(&ref, vocab);
    if (dpoc_step_train(&ref, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "1x1 train_step: %s\n", err);
        return 1;
    }
    int status = 1, opened = 0;
    DpocStep probe;
    if (dpoc_step_open(&probe, argv[2], err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    m.D = probe.manifest->mesh_dp;
    m.T = probe.manifest->mesh_tp;
    dpoc_step_close(&probe);
    if (m.D < 1 || m.T < 1 || m.D * m.T > MAX_RANKS) {
        fprintf(stderr, "mesh %dx%d is not simulated here\n", m.D, m.T);
        goto out;
    }
    for (int i = 0; i < MAX_RANKS; i++) {
        pthread_barrier_init(&m.dpg[i].bar, NULL, (unsigned)m.D);
        m.dpg[i].size = m.D;
        pthread_barrier_init(&m.tpg[i].bar, NULL, (unsigned)m.T);
        m.tpg[i].size = m.T;
    }
    for (int w = 0; w < m.D * m.T; w++, opened++) {
        Rank *r = &m.r[w];
        if (dpoc_step_open(&r->st, argv[2], err, sizeof err)) {
            fprintf(stderr, "rank %d: %s\n", w, err);
            goto out;
        }
        r->world = w;
        r->dp = w / m.T;
        r->tp = w % m.T;
        r->g[DPOC_AXIS_DP] = &m.dpg[r->tp];
        r->g[DPOC_AXIS_TP] = &m.tpg[r->dp];
        r->svc = r->st.serial;
        r->svc.ctx = r;
        r->svc.parallel_for = r->st.serial.parallel_for;
        r->svc.dp_rank = r->dp;
        r->svc.dp_size = m.D;
        r->svc.tp_rank = r->tp;
        r->svc.tp_size = m.T;
        r->svc.all_reduce_sum = sim_all_reduce;
        r->svc.all_gather = sim_all_gather;
    }
    if (scatter_to_ranks(&m, &ref) || run_mesh(&m, 0) || check_outputs(&m, &ref, 0)) goto out;
    if (dpoc_step_logps(&ref, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "1x1 logps: %s\n", err);
        goto out;
    }
    if (run_mesh(&m, 1) || check_outputs(&m, &ref, 1)) goto out;
    if (failures == 0) {
        printf("OK mesh dp=%d tp=%d: loss, per-pair outputs, gradients and logps match the 1x1 step (max relative difference %.3g)\n",
               m.D, m.T, maxrel);
        status = 0;
    }
out:
    for (int w = 0; w < opened; w++) dpoc_step_close(&m.r[w].st);
    if (m.D >= 1 && m.T >= 1)
        for (int i = 0; i < MAX_RANKS; i++) {
            pthread_barrier_destroy(&m.dpg[i].bar);
            pthread_barrier_destroy(&m.tpg[i].bar);
        }
    dpoc_step_close(&ref);
    return status;
}
