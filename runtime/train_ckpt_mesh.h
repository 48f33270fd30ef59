/* train_ckpt_mesh.h — dporun's sharded checkpoints (--ckpt-layout sharded).
 *
 * Saving: the tensors of trainer_save keep their local (tp-sharded) shapes,
 * marked CKPT_SHARD_TP on the split dimension; ZeRO-1's moments are first
 * gathered over dp, so the ranks of dp group 0 hold everything: each writes
 * its tp rank's shard (ckpt_mesh_save_shard), every rank waits for all
 * (trainer_mesh_agree, which also tells every rank when one failed), and
 * world rank 0 writes the manifest and `latest` last.
 * Resuming (trainer_open_ckpt): a plain checkpoint is opened as it is; a
 * sharded one of the same tp gives each rank only its own shard (its size
 * and hash checked against the manifest), and one of another tp is merged
 * into a temporary full checkpoint, which then loads as a full one does.
 */
#ifndef DPOC_TRAIN_CKPT_MESH_H
#define DPOC_TRAIN_CKPT_MESH_H

#include "train_internal.h"

void trainer_mark_shards(Trainer *t, CkptTensor *ts, const DpocTensorInfo **tis, int n);
int trainer_save_shards(Trainer *t, const char *dir, const CkptState *st, const CkptTensor *ts, int n, char *err,
                        size_t errlen);
Ckpt *trainer_open_ckpt(Trainer *t, const char *path, char *err, size_t errlen);
/* Whether a checkpoint with this state is this rank's own shard. */
int trainer_own_shard(const Trainer *t, const CkptState *st);

#endif
