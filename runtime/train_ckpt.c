/* train_ckpt.c — a training run's state into a checkpoint and back.
 *
 * A checkpoint (ckpt.h, docs/ckpt-format.md) of dporun holds the trainable
 * parameters under their names, AdamW's moments as `adam_m:NAME` and
 * `adam_v:NAME` (AdamW runs only), and the online reference's frozen
 * parameters under their `ref:NAME` names. The header carries the optimizer
 * steps done, the data position (epoch and position in that epoch's order),
 * rng[0] = the data seed (the order is recomputed from it, nothing else is
 * random), the step's config hash, and in extra_json every setting the
 * update depends on (optimizer, hyper-parameters, schedule, warm-up, total
 * steps, clipping, accumulation, shuffling) plus the reference weights'
 * hash. Resuming restores all of it, so the run continues bit for bit; an
 * option given again on the command line that differs from the
 * checkpoint's wins, with a warning that the resume is then not exact.
 * On a mesh (train_mesh.h) the checkpoint is still one full file: tensors
 * split over tp are gathered over tp, ZeRO-1's moments over dp, and world
 * rank 0 writes; loading cuts each rank's block out of the full tensors.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"
#include "train_mesh.h"
#include "train_ckpt_mesh.h"
#include "train_zero.h"
#include "train_params.h"

static int add_tensor(CkptTensor *ct, const char *prefix, const DpocTensorInfo *ti, void *data, char *err,
                      size_t errlen) {
    memset(ct, 0, sizeof *ct);
    if ((size_t)snprintf(ct->name, sizeof ct->name, "%s%s", prefix, ti->name) >= sizeof ct->name)
        return snprintf(err, errlen, "tensor name %s%s is too long for a checkpoint", prefix, ti->name), -1;
    if (ti->ndim > 6) return snprintf(err, errlen, "tensor %s has more than 6 dimensions", ti->name), -1;
    ct->dtype = CKPT_F32;
    ct->ndim = (uint8_t)ti->ndim;
    for (int d = 0; d < ti->ndim; d++) ct->shape[d] = ti->shape[d];
    ct->data = data;
    ct->nbytes = (size_t)ti->nbytes;
    return 0;
}

static char *settings_json(const Trainer *t, const BatchOrder *order) {
    const TrainConfig *c = &t->cfg;
    cJSON *j = cJSON_CreateObject();
    char hex[32];
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "writer", "dporun");
    cJSON_AddStringToObject(j, "optimizer", c->optimizer == TRAIN_SGD ? "sgd" : "adamw");
    cJSON_AddNumberToObject(j, "lr", c->lr);
    cJSON_AddNumberToObject(j, "beta1", c->beta1);
    cJSON_AddNumberToObject(j, "beta2", c->beta2);
    cJSON_AddNumberToObject(j, "eps", c->eps);
    cJSON_AddNumberToObject(j, "weight_decay", c->weight_decay);
    cJSON_AddStringToObject(j, "schedule", opt_schedule_name(c->schedule));
    cJSON_AddNumberToObject(j, "warmup_steps", (double)c->warmup);
    cJSON_AddNumberToObject(j, "total_steps", (double)c->total);
    cJSON_AddNumberToObject(j, "max_grad_norm", c->max_grad_norm);
    cJSON_AddNumberToObject(j, "grad_accum", c->grad_accum);
    cJSON_AddBoolToObject(j, "shuffle", c->shuffle);
    snprintf(hex, sizeof hex, "%016" PRIx64, t->ref_hash);
    cJSON_AddStringToObject(j, "ref_weights_hash", hex);
    cJSON_AddNumberToObject(j, "usable_pairs", (double)order->n);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* On a tp-sharded mesh: replaces the entries' local data by full tensors
 * gathered over tp (every rank takes part; bufs[k] to free). */
static int gather_full(Trainer *t, CkptTensor *ts, const DpocTensorInfo **tis, int n, float **bufs, char *err,
                       size_t errlen) {
    for (int k = 0; k < n; k++) {
        const TrainShard *sh = trainer_mesh_shard(t, tis[k]);
        if (!sh) return snprintf(err, errlen, "tensor %s has no shard entry", tis[k]->name), -1;
        if (sh->dim < 0) continue;
        if (!(bufs[k] = malloc((size_t)sh->full_numel * sizeof(float)))) return snprintf(err, errlen, "out of memory"), -1;
        if (trainer_mesh_gather(t, sh, ts[k].data, bufs[k], err, errlen)) return -1;
        ts[k].data = bufs[k];
        ts[k].nbytes = (size_t)sh->full_numel * sizeof(float);
        for (int d = 0; d < sh->ndim; d++) ts[k].shape[d] = sh->full[d];
    }
    return 0;
}

int trainer_save(Trainer *t, const char *dir, uint64_t step, const BatchOrder *order, char *err, size_t errlen) {
    DpocStep *s = &t->step;
    /* a mesh writes one full checkpoint from world rank 0 (train_mesh.h),
     * or with --ckpt-layout sharded one file per tp rank (train_ckpt_mesh.h) */
    int sharded = t->o->ckpt_sharded && t->mesh && (t->svc.tp_size > 1 || t->svc.dp_size > 1);
    if (!sharded && !trainer_writes(t) && t->svc.tp_size == 1 && !t->zero) return 0;
    int cap = 3 * s->ntensors + 1, n = 0, rc = -1;
    CkptTensor *ts = calloc((size_t)cap, sizeof *ts);
    const DpocTensorInfo **tis = calloc((size_t)cap, sizeof *tis);
    float **bufs = calloc((size_t)cap, sizeof *bufs);
    CkptState *st = calloc(1, sizeof *st);
    char *extra = NULL;
    float *zm = NULL, *zv = NULL; /* ZeRO-1: the full moments, gathered over dp */
    uint8_t *mreg = s->regions[DPOC_R_ADAM_M], *vreg = s->regions[DPOC_R_ADAM_V];
    if (t->zero) {
        if (trainer_zero_full_moments(t, &zm, &zv, err, errlen)) goto out;
        mreg = (uint8_t *)zm;
        vreg = (uint8_t *)zv;
    }
    if (!ts || !tis || !bufs || !st) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int moments = t->cfg.optimizer == TRAIN_ADAMW;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *ti = &s->tensors[i];
        if (ti->role == DPOC_ROLE_PARAM) {
            tis[n] = ti;
            if (add_tensor(&ts[n++], "", ti, s->regions[ti->region] + ti->offset, err, errlen)) goto out;
            tis[n] = tis[n + 1] = ti;
            if (moments && (add_tensor(&ts[n++], "adam_m:", ti, mreg + ti->offset, err, errlen) ||
                            add_tensor(&ts[n++], "adam_v:", ti, vreg + ti->offset, err, errlen)))
                goto out;
        } else if (ti->role == DPOC_ROLE_REF_PARAM) {
            tis[n] = ti;
            if (add_tensor(&ts[n++], "", ti, s->regions[ti->region] + ti->offset, err, errlen)) goto out;
        }
    }
    if (sharded)
        trainer_mark_shards(t, ts, tis, n);
    else if (t->svc.tp_size > 1 && gather_full(t, ts, tis, n, bufs, err, errlen))
        goto out;
    if (!sharded && !trainer_writes(t)) {
        rc = 0;
        goto out;
    }
    st->step = step;
    st->epoch = order->epoch;
    st->data_pos = order->pos;
    st->rng[0] = t->cfg.seed;
    st->config_hash = t->config_hash;
    st->mesh_dp = 1;
    st->mesh_tp = 1;
    st->rank = 0;
    if (!(extra = settings_json(t, order)) || strlen(extra) >= sizeof st->extra_json) {
        snprintf(err, errlen, "cannot encode the training settings for the checkpoint");
        goto out;
    }
    memcpy(st->extra_json, extra, strlen(extra) + 1);
    if (sharded)
        rc = trainer_save_shards(t, dir, st, ts, n, err, errlen);
    else
        rc = ckpt_save(dir, st, ts, n, t->o->keep_last, err, errlen);
out:
    free(extra);
    for (int k = 0; bufs && k < n; k++) free(bufs[k]);
    free(bufs);
    free(tis);
    free(zm);
    free(zv);
    free(ts);
    free(st);
    return rc;
}

/* ---- resume -------------------------------------------------------------------- */

static int json_num(const cJSON *j, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    return 0;
}

/* Takes the checkpoint's value unless the option was given; warns when a
 * given one differs. */
static void pick(Trainer *t, unsigned bit, const char *flag, double *cur, double saved) {
    if (!(t->o->set & bit)) {
        *cur = saved;
    } else if (*cur != saved && !(isnan(*cur) && isnan(saved))) {
        fprintf(t->log, "dporun: warning: %s %.9g overrides the checkpoint's %.9g; the resumed run will not match an "
                        "uninterrupted one\n",
                flag, *cur, saved);
    }
}

int trainer_resume(Trainer *t, Ckpt *c, uint64_t *step, uint64_t *epoch, uint64_t *pos, char *err, size_t errlen) {
    const CkptState *st = ckpt_state(c);
    const char *path = ckpt_path(c);
    if (st->config_hash != t->config_hash)
        return snprintf(err, errlen,
                        "%s was written by a step with another model or loss (config hash %016" PRIx64
                        "; %s has %016" PRIx64 ")",
                        path, st->config_hash, t->o->step_path, t->config_hash),
               -1;
    if ((st->mesh_dp != 1 || st->mesh_tp != 1) && !trainer_own_shard(t, st))
        return snprintf(err, errlen, "%s is one rank's shard of a dp=%d x tp=%d checkpoint; resume from a full "
                                     "checkpoint (dporun writes full ones on any mesh)", path,
                        st->mesh_dp, st->mesh_tp),
               -1;
    cJSON *j = cJSON_Parse(st->extra_json);
    const cJSON *opt = j ? cJSON_GetObjectItemCaseSensitive(j, "optimizer") : NULL;
    const cJSON *sched = j ? cJSON_GetObjectItemCaseSensitive(j, "schedule") : NULL;
    const cJSON *rh = j ? cJSON_GetObjectItemCaseSensitive(j, "ref_weights_hash") : NULL;
    const cJSON *shuf = j ? cJSON_GetObjectItemCaseSensitive(j, "shuffle") : NULL;
    double lr, b1, b2, eps, wd, clip, warm, total, accum;
    int sched_i = cJSON_IsString(sched) ? opt_schedule_parse(sched->valuestring) : -1;
    if (!j || !cJSON_IsString(opt) || sched_i < 0 || !cJSON_IsString(rh) || !cJSON_IsBool(shuf) ||
        json_num(j, "lr", &lr) || json_num(j, "beta1", &b1) || json_num(j, "beta2", &b2) || json_num(j, "eps", &eps) ||
        json_num(j, "weight_decay", &wd) || json_num(j, "max_grad_norm", &clip) ||
        json_num(j, "warmup_steps", &warm) || json_num(j, "total_steps", &total) ||
        json_num(j, "grad_accum", &accum) || accum < 1 || total < 0 || warm < 0) {
        cJSON_Delete(j);
        return snprintf(err, errlen, "%s: its training settings (extra_json) are not dporun's", path), -1;
    }
    TrainConfig *cfg = &t->cfg;
    TrainOptimizer saved_opt = strcmp(opt->valuestring, "sgd") == 0 ? TRAIN_SGD : TRAIN_ADAMW;
    if (!(t->o->set & TRAIN_SET_OPTIMIZER))
        cfg->optimizer = saved_opt;
    else if (cfg->optimizer != saved_opt)
        fprintf(t->log, "dporun: warning: --optimizer %s overrides the checkpoint's %s\n",
                cfg->optimizer == TRAIN_SGD ? "sgd" : "adamw", opt->valuestring);
    pick(t, TRAIN_SET_LR, "--lr", &cfg->lr, lr);
    pick(t, TRAIN_SET_BETAS, "--betas (beta1)", &cfg->beta1, b1);
    pick(t, TRAIN_SET_BETAS, "--betas (beta2)", &cfg->beta2, b2);
    pick(t, TRAIN_SET_EPS, "--eps", &cfg->eps, eps);
    pick(t, TRAIN_SET_WD, "--weight-decay", &cfg->weight_decay, wd);
    pick(t, TRAIN_SET_CLIP, "--max-grad-norm", &cfg->max_grad_norm, clip);
    double a = cfg->grad_accum, sh = cfg->shuffle;
    pick(t, TRAIN_SET_ACCUM, "--grad-accum", &a, accum);
    pick(t, TRAIN_SET_SHUFFLE, "--no-shuffle", &sh, cJSON_IsTrue(shuf));
    cfg->grad_accum = (int)a;
    cfg->shuffle = sh != 0;
    if (!(t->o->set & TRAIN_SET_SEED))
        cfg->seed = st->rng[0];
    else if (cfg->seed != st->rng[0])
        fprintf(t->log, "dporun: warning: --seed %" PRIu64 " overrides the checkpoint's %" PRIu64 "\n", cfg->seed, (uint64_t)st->rng[0]);
    if (!(t->o->set & TRAIN_SET_SCHEDULE)) cfg->schedule = (OptSchedule)sched_i;
    if (!(t->o->set & TRAIN_SET_WARMUP)) cfg->warmup = (uint64_t)warm;
    if (!(t->o->set & TRAIN_SET_STEPS)) cfg->total = (uint64_t)total;
    t->ref_hash = strtoull(rh->valuestring, NULL, 16);
    if (json_num(j, "usable_pairs", &t->saved_usable)) t->saved_usable = -1;
    cJSON_Delete(j);

    DpocStep *s = &t->step;
    if (trainer_mesh_load_role(t, c, DPOC_ROLE_PARAM, "", err, errlen)) return -1;
    for (int i = 0; i < s->ntensors; i++)
        if (s->tensors[i].role == DPOC_ROLE_REF_PARAM) {
            if (trainer_mesh_load_role(t, c, DPOC_ROLE_REF_PARAM, "", err, errlen)) return -1;
            break;
        }
    if (cfg->optimizer == TRAIN_ADAMW) {
        if (saved_opt == TRAIN_ADAMW) {
            if (trainer_mesh_load_role(t, c, DPOC_ROLE_ADAM_M, "adam_m:", err, errlen) ||
                trainer_mesh_load_role(t, c, DPOC_ROLE_ADAM_V, "adam_v:", err, errlen))
                return -1;
        } else {
            fprintf(t->log, "dporun: warning: %s holds no AdamW moments (an SGD run); they start at zero\n", path);
        }
    }
    *step = st->step;
    *epoch = st->epoch;
    *pos = st->data_pos;
    return 0;
}
