/* train_mesh.h — what the trainer does differently on a dp x tp mesh.
 *
 * trainer_mesh_setup takes the step's mesh (DpocManifest.mesh_dp/mesh_tp):
 * without a TrainMesh it must be 1 x 1; with one, TrainMesh.layout forms
 * the communicators, the services table gets the ranks and collectives, and
 * the tensor table's "shard" / "full_shape" (docs/step-abi.md) are read
 * into Trainer.shard. The rest is used by train_loop.c / train_ckpt.c /
 * train_params.c, and is a no-op (or the single-process computation) on a
 * 1 x 1 mesh:
 *  - the data: every optimizer micro-batch takes the next dp_size * B pairs
 *    of the order; dp rank r packs the contiguous block [r*B, (r+1)*B)
 *    (so dp=D with B pairs per rank sees exactly the pairs, in the same
 *    places, of one process with D*B pairs); tp ranks of a group pack the
 *    same pairs. Evaluation cuts the held-out pairs the same way.
 *  - metrics: the per-pair sums of every dp rank are added (f64
 *    all_reduce over dp, fixed order); the loss is the step's, which is
 *    already the loss of the global micro-batch.
 *  - the gradient norm: squares of tp-sharded gradients summed over tp,
 *    replicated ones counted once; the same value on every rank.
 *  - full tensors <-> shards: tp rank r holds the block [r*n/T, (r+1)*n/T)
 *    of dimension k (n = full_shape[k]); checkpoints hold full tensors
 *    (gathered over tp before rank 0 writes; sliced when loaded), so a
 *    checkpoint of one mesh resumes on any other.
 */
#ifndef DPOC_TRAIN_MESH_H
#define DPOC_TRAIN_MESH_H

#include "train_internal.h"

int trainer_mesh_setup(Trainer *t, char *err, size_t errlen);
/* This rank's first slot in a global micro-batch of dp_size * B pairs. */
int64_t trainer_mesh_first(const Trainer *t);
/* Sets t->svc from the thread pool's services and, on a mesh, the ranks and
 * collectives (the table has one ctx: a TrainSvcCtx holding both). */
int trainer_mesh_services(Trainer *t, DpocServices pool);
/* Whether this process writes files (metrics, checkpoints): world rank 0. */
int trainer_writes(const Trainer *t);
/* Seconds this rank spent inside collectives so far (0 without a mesh). */
double trainer_mesh_comm(const Trainer *t, int64_t *calls);
/* The mesh's last communication error, or NULL. */
const char *trainer_mesh_error(const Trainer *t);
/* *flag := 1 on every rank when it is 1 on any (a signal seen by one rank
 * stops all of them after the same step). */
int trainer_mesh_agree(Trainer *t, int *flag, char *err, size_t errlen);
/* Adds the per-pair sums of every dp rank into acc (loss and micro-batch
 * count stay this rank's, which are the global ones). */
int trainer_mesh_metrics(Trainer *t, MetricsAcc *acc, char *err, size_t errlen);
/* The global gradient norm of the contract (sqrt of a double sum). */
int trainer_mesh_norm(Trainer *t, const float *grads, double *norm, char *err, size_t errlen);

/* The tensor's shard: its index in s->tensors (-1: none), the sharded
 * dimension (-1: replicated), and the full shape. */
const TrainShard *trainer_mesh_shard(const Trainer *t, const DpocTensorInfo *ti);
/* Copies this rank's block of a full tensor into local / the local block
 * into its place in full (both f32, shapes from the shard spec). */
void mesh_slice(const TrainShard *sh, int parts, int r, const float *full, float *local);
void mesh_unslice(const TrainShard *sh, int parts, int r, const float *local, float *full);
/* The full tensor of a tp-sharded local one, on every tp rank (all_gather
 * over tp); full holds full_numel floats. Replicated: a copy. */
int trainer_mesh_gather(Trainer *t, const TrainShard *sh, const float *local, float *full, char *err, size_t errlen);

/* Seeded initialisation (train_params.h) of this rank's blocks: the same
 * values as the full tensors of a single process, sliced. */
void trainer_mesh_init_params(Trainer *t, uint64_t seed);
/* train_load_role / train_load_init from a full checkpoint, sliced. */
int trainer_mesh_load_role(Trainer *t, Ckpt *c, DpocRole role, const char *prefix, char *err, size_t errlen);
int trainer_mesh_load_init(Trainer *t, char *err, size_t errlen);
/* train_weights_hash of the parameters as one process holds them (full
 * tensors, gathered over tp): the same value on every rank and mesh. */
int trainer_mesh_weights_hash(Trainer *t, uint64_t *hash, char *err, size_t errlen);

#endif
