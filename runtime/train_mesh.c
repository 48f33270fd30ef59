/* train_mesh.c — the trainer on a dp x tp mesh (see train_mesh.h).
 *
 * Setup reads the step's mesh from the manifest's mesh_dp / mesh_tp (the
 * JSON "mesh" only when those are 0), asks the TrainMesh for the
 * layout and copies ranks and collectives into the services table the
 * entry points get. Each row of the JSON tensor table may carry "shard"
 * ({"axis": "tp", "dim": k} or null) and "full_shape"; they are checked
 * against the local shape (full_shape[k] = shape[k] * tp, other dimensions
 * equal) and kept per tensor.
 *
 * The collectives used here (metrics, norm, gathers) go through the same
 * TrainMesh functions as the step's, in the same order on every rank, so
 * they are deterministic too. A failed collective is an error naming it.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh.h"
#include "train_mesh.h"
#include "train_params.h"
#include "train_hash.h"

static int coll_fail(Trainer *t, const char *what, char *err, size_t errlen) {
    return snprintf(err, errlen, "%s: %s", what, t->mesh ? t->mesh->error(t->mesh->ctx) : "no mesh"), -1;
}

static int read_shards(Trainer *t, char *err, size_t errlen) {
    DpocStep *s = &t->step;
    int T = t->svc.tp_size;
    if (!(t->shard = calloc((size_t)(s->ntensors ? s->ntensors : 1), sizeof *t->shard)))
        return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < s->ntensors; i++) {
        TrainShard *sh = &t->shard[i];
        const DpocTensorInfo *ti = &s->tensors[i];
        sh->dim = -1;
        sh->ndim = ti->ndim;
        for (int d = 0; d < ti->ndim; d++) sh->full[d] = ti->shape[d];
        sh->full_numel = ti->numel;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s->json, "tensors");
    const cJSON *row;
    cJSON_ArrayForEach(row, arr) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(row, "name");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(row, "role");
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(row, "shard");
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(row, "full_shape");
        if (!cJSON_IsString(name) || !cJSON_IsString(role)) continue;
        int i = 0;
        while (i < s->ntensors && (strcmp(s->tensors[i].name, name->valuestring) ||
                                   strcmp(dpoc_role_name(s->tensors[i].role), role->valuestring)))
            i++;
        if (i == s->ntensors) continue;
        const DpocTensorInfo *ti = &s->tensors[i];
        TrainShard *sh = &t->shard[i];
        int sdim = -1, mult = 1; /* the split dimension (tp: kept in sh->dim; dp: inputs' batch) */
        if (cJSON_IsObject(spec)) {
            const cJSON *ax = cJSON_GetObjectItemCaseSensitive(spec, "axis");
            const cJSON *dim = cJSON_GetObjectItemCaseSensitive(spec, "dim");
            int tp_axis = cJSON_IsString(ax) && !strcmp(ax->valuestring, "tp");
            int dp_axis = cJSON_IsString(ax) && !strcmp(ax->valuestring, "dp");
            if ((!tp_axis && !dp_axis) || !cJSON_IsNumber(dim) || dim->valueint < 0 || dim->valueint >= ti->ndim)
                return snprintf(err, errlen, "%s: tensor %s: shard must be {\"axis\": \"tp\" or \"dp\", \"dim\": 0..%d}",
                                t->o->step_path, ti->name, ti->ndim - 1),
                       -1;
            if (tp_axis && ti->role != DPOC_ROLE_PARAM && ti->role != DPOC_ROLE_REF_PARAM && ti->role != DPOC_ROLE_GRAD)
                return snprintf(err, errlen, "%s: tensor %s (%s) is split over tp; dporun splits only parameters",
                                t->o->step_path, ti->name, dpoc_role_name(ti->role)),
                       -1;
            if (dp_axis && (ti->role == DPOC_ROLE_PARAM || ti->role == DPOC_ROLE_REF_PARAM || ti->role == DPOC_ROLE_GRAD))
                return snprintf(err, errlen, "%s: parameter %s is split over dp; ZeRO is the runtime's (--zero 1)",
                                t->o->step_path, ti->name),
                       -1;
            sdim = dim->valueint;
            mult = tp_axis ? T : t->svc.dp_size;
            if (tp_axis) sh->dim = sdim;
        }
        if (full) {
            if (!cJSON_IsArray(full) || cJSON_GetArraySize(full) != ti->ndim)
                return snprintf(err, errlen, "%s: tensor %s: full_shape must list %d dimensions", t->o->step_path,
                                ti->name, ti->ndim),
                       -1;
            sh->full_numel = 1;
            for (int d = 0; d < ti->ndim; d++) {
                const cJSON *x = cJSON_GetArrayItem(full, d);
                int64_t want = ti->shape[d] * (d == sdim ? mult : 1);
                if (!cJSON_IsNumber(x) || (int64_t)x->valuedouble != want)
                    return snprintf(err, errlen,
                                    "%s: tensor %s: full_shape[%d] should be %lld (local %lld%s)", t->o->step_path,
                                    ti->name, d, (long long)want, (long long)ti->shape[d],
                                    d == sdim ? " x mesh axis" : ""),
                           -1;
                sh->full[d] = want;
                sh->full_numel *= want;
            }
        } else if (sh->dim >= 0) {
            sh->full[sh->dim] *= T;
            sh->full_numel *= T;
        }
    }
    return 0;
}

int trainer_mesh_setup(Trainer *t, char *err, size_t errlen) {
    DpocStep *s = &t->step;
    int dp = s->manifest->mesh_dp, tp = s->manifest->mesh_tp;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(s->json, "mesh");
    const cJSON *jdp = m ? cJSON_GetObjectItemCaseSensitive(m, "dp") : NULL;
    const cJSON *jtp = m ? cJSON_GetObjectItemCaseSensitive(m, "tp") : NULL;
    if (dp <= 0 && cJSON_IsNumber(jdp)) dp = (int)jdp->valuedouble;
    if (tp <= 0 && cJSON_IsNumber(jtp)) tp = (int)jtp->valuedouble;
    if (dp < 1 || tp < 1) return snprintf(err, errlen, "%s: mesh dp=%d x tp=%d is not valid", t->o->step_path, dp, tp), -1;
    t->mesh = t->o->mesh;
    t->svc.dp_rank = t->svc.tp_rank = 0;
    t->svc.dp_size = t->svc.tp_size = 1;
    if (!t->mesh) {
        if (dp != 1 || tp != 1)
            return snprintf(err, errlen,
                            "%s was compiled for a dp=%d x tp=%d mesh; this dporun runs a single process (dp=1, "
                            "tp=1): start %d processes with mpirun -np %d (docs/mpi.md)",
                            t->o->step_path, dp, tp, dp * tp, dp * tp),
                   -1;
    } else {
        char sub[512];
        if (t->mesh->layout(t->mesh, dp, tp, sub, sizeof sub))
            return snprintf(err, errlen, "%s %s", t->o->step_path, sub), -1;
        t->svc.dp_rank = t->mesh->dp_rank;
        t->svc.dp_size = t->mesh->dp_size;
        t->svc.tp_rank = t->mesh->tp_rank;
        t->svc.tp_size = t->mesh->tp_size;
    }
    return read_shards(t, err, errlen);
}

/* The services' one ctx, for a table whose parallel_for is the pool's and
 * whose collectives are the mesh's. */
typedef struct TrainSvcCtx {
    DpocServices pool;
    TrainMesh *mesh;
} TrainSvcCtx;

static void svc_parallel_for(void *ctx, DpocKernelFn fn, uint8_t *const *args, int64_t n) {
    TrainSvcCtx *c = ctx;
    c->pool.parallel_for(c->pool.ctx, fn, args, n);
}

static int svc_all_reduce_sum(void *ctx, DpocAxis axis, void *buf, int64_t n, DpocCollType type) {
    TrainSvcCtx *c = ctx;
    return c->mesh->all_reduce_sum(c->mesh->ctx, axis, buf, n, type);
}

static int svc_all_gather(void *ctx, DpocAxis axis, const void *send, void *recv, int64_t bytes) {
    TrainSvcCtx *c = ctx;
    return c->mesh->all_gather(c->mesh->ctx, axis, send, recv, bytes);
}

int trainer_mesh_services(Trainer *t, DpocServices pool) {
    DpocServices ranks = t->svc;
    t->svc = pool;
    t->svc.dp_rank = ranks.dp_rank;
    t->svc.dp_size = ranks.dp_size;
    t->svc.tp_rank = ranks.tp_rank;
    t->svc.tp_size = ranks.tp_size;
    if (!t->mesh) return 0;
    if (!(t->svc_ctx = calloc(1, sizeof *t->svc_ctx))) return -1;
    t->svc_ctx->pool = pool;
    t->svc_ctx->mesh = t->mesh;
    t->svc.ctx = t->svc_ctx;
    t->svc.parallel_for = svc_parallel_for;
    t->svc.all_reduce_sum = svc_all_reduce_sum;
    t->svc.all_gather = svc_all_gather;
    return 0;
}

int64_t trainer_mesh_first(const Trainer *t) { return (int64_t)t->svc.dp_rank * t->L.B; }

double trainer_mesh_comm(const Trainer *t, int64_t *calls) {
    if (calls) *calls = 0;
    return t->mesh ? t->mesh->comm_seconds(t->mesh->ctx, calls) : 0.0;
}

int trainer_writes(const Trainer *t) { return !t->mesh || t->mesh->world_rank == 0; }

int trainer_mesh_agree(Trainer *t, int *flag, char *err, size_t errlen) {
    double f = *flag;
    if (t->svc.dp_size > 1 && t->mesh->all_reduce_sum(t->mesh->ctx, DPOC_AXIS_DP, &f, 1, DPOC_COLL_F64))
        return coll_fail(t, "agreeing to stop", err, errlen);
    if (t->svc.tp_size > 1 && t->mesh->all_reduce_sum(t->mesh->ctx, DPOC_AXIS_TP, &f, 1, DPOC_COLL_F64))
        return coll_fail(t, "agreeing to stop", err, errlen);
    *flag = f > 0;
    return 0;
}

const char *trainer_mesh_error(const Trainer *t) {
    return t->mesh && t->mesh->error(t->mesh->ctx)[0] ? t->mesh->error(t->mesh->ctx) : NULL;
}

int trainer_mesh_metrics(Trainer *t, MetricsAcc *a, char *err, size_t errlen) {
    if (t->svc.dp_size == 1) return 0;
    double v[12] = {(double)a->npairs, (double)a->ncorrect, a->rc, a->rr, a->margin, a->lpc, a->lpr,
                    a->logits_c, a->logits_r, a->lab_c, a->lab_r, (double)a->tokens};
    if (t->mesh->all_reduce_sum(t->mesh->ctx, DPOC_AXIS_DP, v, 12, DPOC_COLL_F64))
        return coll_fail(t, "reducing the metrics over dp", err, errlen);
    a->npairs = (int64_t)v[0];
    a->ncorrect = (int64_t)v[1];
    a->rc = v[2];
    a->rr = v[3];
    a->margin = v[4];
    a->lpc = v[5];
    a->lpr = v[6];
    a->logits_c = v[7];
    a->logits_r = v[8];
    a->lab_c = v[9];
    a->lab_r = v[10];
    a->tokens = (int64_t)v[11];
    return 0;
}

int trainer_mesh_norm(Trainer *t, const float *grads, double *norm, char *err, size_t errlen) {
    const OptPlan *p = &t->plan;
    double total = opt_global_norm(p, t->pool, grads);
    if (t->svc.tp_size == 1) {
        *norm = total;
        return 0;
    }
    /* p->partial[b] now holds block b's sum of squares; split them by the
     * sharding of the tensor the block lies in (blocks follow the table) */
    const DpocStep *s = &t->step;
    double sum[2] = {0, 0}; /* replicated, sharded */
    int i = 0;
    for (int64_t b = 0; b < p->nblocks; b++) {
        int64_t at = p->blocks[b].begin * 4;
        while (i < s->ntensors && !(s->tensors[i].role == DPOC_ROLE_PARAM && at >= s->tensors[i].offset &&
                                    at < s->tensors[i].offset + s->tensors[i].nbytes))
            i++;
        if (i == s->ntensors) return snprintf(err, errlen, "gradient block %lld lies in no parameter", (long long)b), -1;
        sum[t->shard[i].dim >= 0] += p->partial[b];
    }
    if (t->mesh->all_reduce_sum(t->mesh->ctx, DPOC_AXIS_TP, &sum[1], 1, DPOC_COLL_F64))
        return coll_fail(t, "reducing the gradient norm over tp", err, errlen);
    *norm = sqrt(sum[0] + sum[1]);
    return 0;
}

const TrainShard *trainer_mesh_shard(const Trainer *t, const DpocTensorInfo *ti) {
    const DpocStep *s = &t->step;
    for (int i = 0; i < s->ntensors; i++)
        if (s->tensors[i].offset == ti->offset && s->tensors[i].region == ti->region && !strcmp(s->tensors[i].name, ti->name))
            return &t->shard[i];
    /* ADAM_M / ADAM_V views: the parameter's entry */
    for (int i = 0; i < s->ntensors; i++)
        if (s->tensors[i].role == DPOC_ROLE_PARAM && s->tensors[i].offset == ti->offset && !strcmp(s->tensors[i].name, ti->name))
            return &t->shard[i];
    return NULL;
}

static void geometry(const TrainShard *sh, int parts, int64_t *outer, int64_t *n, int64_t *inner, int64_t *b) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < sh->dim; d++) *outer *= sh->full[d];
    for (int d = sh->dim + 1; d < sh->ndim; d++) *inner *= sh->full[d];
    *n = sh->full[sh->dim];
    *b = *n / parts;
}

void mesh_slice(const TrainShard *sh, int parts, int r, const float *full, float *local) {
    if (sh->dim < 0 || parts == 1) {
        memcpy(local, full, (size_t)sh->full_numel * sizeof *full);
        return;
    }
    int64_t outer, n, inner, b;
    geometry(sh, parts, &outer, &n, &inner, &b);
    for (int64_t o = 0; o < outer; o++)
        memcpy(local + o * b * inner, full + (o * n + r * b) * inner, (size_t)(b * inner) * sizeof *full);
}

void mesh_unslice(const TrainShard *sh, int parts, int r, const float *local, float *full) {
    if (sh->dim < 0 || parts == 1) {
        memcpy(full, local, (size_t)sh->full_numel * sizeof *full);
        return;
    }
    int64_t outer, n, inner, b;
    geometry(sh, parts, &outer, &n, &inner, &b);
    for (int64_t o = 0; o < outer; o++)
        memcpy(full + (o * n + r * b) * inner, local + o * b * inner, (size_t)(b * inner) * sizeof *full);
}

int trainer_mesh_gather(Trainer *t, const TrainShard *sh, const float *local, float *full, char *err, size_t errlen) {
    int T = t->svc.tp_size;
    if (sh->dim < 0 || T == 1) {
        memcpy(full, local, (size_t)sh->full_numel * sizeof *full);
        return 0;
    }
    int64_t numel = sh->full_numel / T;
    float *tmp = malloc((size_t)sh->full_numel * sizeof *tmp);
    if (!tmp) return snprintf(err, errlen, "out of memory"), -1;
    if (t->mesh->all_gather(t->mesh->ctx, DPOC_AXIS_TP, local, tmp, numel * (int64_t)sizeof *tmp)) {
        free(tmp);
        return coll_fail(t, "gathering a tensor over tp", err, errlen);
    }
    for (int r = 0; r < T; r++) mesh_unslice(sh, T, r, tmp + (int64_t)r * numel, full);
    free(tmp);
    return 0;
}

/* ---- parameters of a tp-sharded step: seeded, from full checkpoints ----------- */

void trainer_mesh_init_params(Trainer *t, uint64_t seed) {
    DpocStep *s = &t->step;
    if (t->svc.tp_size == 1) {
        train_init_params(s, seed, t->pool);
        return;
    }
    /* element values depend on the index in the full tensor: make the full
     * tensor's values of this rank's block directly */
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *ti = &s->tensors[i];
        if (ti->role != DPOC_ROLE_PARAM || ti->dtype != DPOC_DT_F32) continue;
        const TrainShard *sh = &t->shard[i];
        float *dst = (float *)(s->regions[ti->region] + ti->offset);
        if (sh->dim < 0) {
            for (int64_t k = 0; k < ti->numel; k++) dst[k] = train_init_value(seed, ti->name, ti->ndim, k);
            continue;
        }
        int64_t outer, n, inner, b;
        geometry(sh, t->svc.tp_size, &outer, &n, &inner, &b);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < b * inner; k++)
                dst[o * b * inner + k] =
                    train_init_value(seed, ti->name, ti->ndim, (o * n + (int64_t)t->svc.tp_rank * b) * inner + k);
    }
}

int trainer_mesh_load_role(Trainer *t, Ckpt *c, DpocRole role, const char *prefix, char *err, size_t errlen) {
    DpocStep *s = &t->step;
    if (t->svc.tp_size == 1) return train_load_role(s, c, role, prefix, err, errlen);
    DpocRole table_role = (role == DPOC_ROLE_ADAM_M || role == DPOC_ROLE_ADAM_V) ? DPOC_ROLE_PARAM : role;
    DpocRegion region = role == DPOC_ROLE_ADAM_M ? DPOC_R_ADAM_M : role == DPOC_ROLE_ADAM_V ? DPOC_R_ADAM_V : DPOC_R_COUNT;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *ti = &s->tensors[i];
        const TrainShard *sh = &t->shard[i];
        if (ti->role != table_role) continue;
        char name[sizeof ((CkptTensor *)0)->name];
        if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, ti->name) >= sizeof name)
            return snprintf(err, errlen, "tensor name %s%s is too long for a checkpoint", prefix, ti->name), -1;
        int k = ckpt_find(c, name);
        if (k < 0) return snprintf(err, errlen, "%s: has no tensor %s", ckpt_path(c), name), -1;
        const CkptTensor *ct = ckpt_tensor(c, k);
        int same = ct->dtype == CKPT_F32 && ti->dtype == DPOC_DT_F32 && ct->ndim == sh->ndim;
        /* this rank's own block (a sharded checkpoint of the same tp, ckpt_mesh.h) */
        int local = same && sh->dim >= 0 && ct->shard[sh->dim] == CKPT_SHARD_TP;
        for (int d = 0; same && d < sh->ndim; d++) same = ct->shape[d] == (local ? ti->shape[d] : sh->full[d]);
        if (!same)
            return snprintf(err, errlen, "%s: tensor %s does not have the %s f32 shape the step expects",
                            ckpt_path(c), name, local ? "local (tp-sharded)" : "full (unsharded)"),
                   -1;
        uint8_t *dst = s->regions[region == DPOC_R_COUNT ? ti->region : region] + ti->offset;
        if (sh->dim < 0 || local) {
            if (ckpt_read_tensor(c, k, dst, (size_t)ti->nbytes, err, errlen)) return -1;
            continue;
        }
        float *full = malloc((size_t)sh->full_numel * sizeof *full);
        if (!full) return snprintf(err, errlen, "out of memory"), -1;
        int rc = ckpt_read_tensor(c, k, full, (size_t)sh->full_numel * sizeof *full, err, errlen);
        if (!rc) mesh_slice(sh, t->svc.tp_size, t->svc.tp_rank, full, (float *)dst);
        free(full);
        if (rc) return -1;
    }
    return 0;
}

int trainer_mesh_load_init(Trainer *t, char *err, size_t errlen) {
    if (t->svc.tp_size == 1) return train_load_init(&t->step, t->o->init_path, t->o->init_hf_path, err, errlen);
    if (!t->o->init_path)
        return snprintf(err, errlen, "--init-hf is not supported with tensor parallelism yet; convert with "
                                     "`dpoc ckpt import-hf` and pass --init"),
               -1;
    Ckpt *c = ckpt_open(t->o->init_path, err, errlen);
    if (!c) return -1;
    int rc = trainer_mesh_load_role(t, c, DPOC_ROLE_PARAM, "", err, errlen);
    ckpt_close(c);
    return rc;
}

static uint64_t hash_le(uint64_t h, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    return train_fnv1a(h, b, (size_t)bytes);
}

int trainer_mesh_weights_hash(Trainer *t, uint64_t *hash, char *err, size_t errlen) {
    DpocStep *s = &t->step;
    if (t->svc.tp_size == 1) {
        *hash = train_weights_hash(s, DPOC_ROLE_PARAM);
        return 0;
    }
    /* train_hash.h's byte stream over the full tensors (gathered over tp) */
    uint64_t h = TRAIN_FNV_BASIS;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *ti = &s->tensors[i];
        const TrainShard *sh = &t->shard[i];
        if (ti->role != DPOC_ROLE_PARAM) continue;
        h = train_fnv1a(h, ti->name, strlen(ti->name) + 1);
        h = hash_le(h, (uint64_t)sh->ndim, 4);
        for (int d = 0; d < sh->ndim; d++) h = hash_le(h, (uint64_t)sh->full[d], 8);
        if (sh->dim < 0) {
            h = train_fnv1a(h, s->regions[ti->region] + ti->offset, (size_t)ti->nbytes);
            continue;
        }
        float *full = malloc((size_t)sh->full_numel * sizeof *full);
        if (!full) return snprintf(err, errlen, "out of memory"), -1;
        if (trainer_mesh_gather(t, sh, (const float *)(s->regions[ti->region] + ti->offset), full, err, errlen)) {
            free(full);
            return -1;
        }
        h = train_fnv1a(h, full, (size_t)sh->full_numel * sizeof *full);
        free(full);
    }
    *hash = h ? h : 1;
    return 0;
}
