/* train_ckpt_mesh.c — dporun's sharded checkpoints (train_ckpt_mesh.h).
 *
 * The shard of tp rank r is written by world rank r (dp rank 0 of the
 * group); other dp ranks hold the same tensors (ZeRO-1's moments were
 * gathered before) and only take part in the agreement that acts as the
 * barrier before rank 0 writes the manifest. A second agreement makes a
 * failure to write the manifest an error on every rank. Rank 0 prunes what
 * killed saves left (ckpt_mesh_prune) before the shards are written, and
 * again after the manifest.
 */
#include <stdio.h>
#include <string.h>

#include "ckpt_mesh.h"
#include "train_ckpt_mesh.h"
#include "train_mesh.h"

void trainer_mark_shards(Trainer *t, CkptTensor *ts, const DpocTensorInfo **tis, int n) {
    for (int k = 0; k < n; k++) {
        const TrainShard *sh = trainer_mesh_shard(t, tis[k]);
        if (sh && sh->dim >= 0 && sh->dim < CKPT_MAX_DIMS) ts[k].shard[sh->dim] = CKPT_SHARD_TP;
    }
}

int trainer_save_shards(Trainer *t, const char *dir, const CkptState *st0, const CkptTensor *ts, int n, char *err,
                        size_t errlen) {
    CkptState st = *st0;
    st.mesh_dp = t->svc.dp_size;
    st.mesh_tp = t->svc.tp_size;
    st.rank = t->svc.tp_rank;
    char e[1024] = "";
    /* rank 0 clears what killed saves left before this one adds a step
     * (never this step's directories, which other ranks are writing) */
    int failed = trainer_writes(t) && t->o->keep_last > 0 && ckpt_mesh_prune(dir, st.step, t->o->keep_last, e, sizeof e);
    failed = failed || (t->svc.dp_rank == 0 && ckpt_mesh_save_shard(dir, &st, t->svc.tp_rank, ts, n, e, sizeof e));
    int any = failed;
    if (trainer_mesh_agree(t, &any, err, errlen)) return -1;
    if (failed) return snprintf(err, errlen, "%s", e), -1;
    if (any) return snprintf(err, errlen, "%s: another rank could not write its checkpoint shard", dir), -1;
    failed = trainer_writes(t) &&
             ckpt_mesh_save_manifest(dir, st.step, t->svc.dp_size, t->svc.tp_size, t->o->keep_last, e, sizeof e);
    any = failed;
    if (trainer_mesh_agree(t, &any, err, errlen)) return -1;
    if (failed) return snprintf(err, errlen, "%s", e), -1;
    if (any) return snprintf(err, errlen, "%s: rank 0 could not write the checkpoint manifest", dir), -1;
    return 0;
}

Ckpt *trainer_open_ckpt(Trainer *t, const char *path, char *err, size_t errlen) {
    char mp[4096];
    int r = ckpt_mesh_detect(path, mp, sizeof mp, err, errlen);
    if (r <= 0) return ckpt_open(path, err, errlen); /* a plain one, or ckpt_open's own error */
    int dp, tp;
    if (ckpt_mesh_read_mesh(mp, &dp, &tp, err, errlen)) return NULL;
    if (tp == t->svc.tp_size) return ckpt_mesh_open_shard(mp, tp, t->svc.tp_rank, err, errlen);
    return ckpt_mesh_open_merged(mp, err, errlen);
}

int trainer_own_shard(const Trainer *t, const CkptState *st) {
    return st->mesh_tp == t->svc.tp_size && st->rank == t->svc.tp_rank;
}
