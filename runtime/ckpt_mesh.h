/* ckpt_mesh.h — sharded checkpoints: one file per tp rank plus a manifest.
 *
 * A sharded checkpoint of step S in DIR is
 *   DIR/step-SSSSSSSS.tpR/step-SSSSSSSS.ckpt   one ordinary checkpoint file
 *       per tp rank R (ckpt.h format; header mesh_dp, mesh_tp, rank = the
 *       world rank of the writer; a tensor split over tp has the local shape
 *       and sharding byte CKPT_SHARD_TP on the split dimension, so its full
 *       shape is the local one times mesh_tp there)
 *   DIR/step-SSSSSSSS.mesh   the manifest (JSON): step, mesh, and per shard
 *       its relative file name, ranks, byte size and XXH64 of the whole file
 *   DIR/latest               "step-SSSSSSSS.mesh\n"
 * The shards are written first (each atomically, by ckpt_save into its own
 * sub-directory); the manifest and then `latest` last, each to a temporary
 * name, fsynced and renamed, so `latest` always names a complete checkpoint.
 * Opening checks the manifest, every shard file's size and hash and every
 * header against it, before any tensor is read; errors name the file.
 * Full tensors are assembled block by block from the shards (no step.so
 * needed): tp rank r's block is [r*n/T, (r+1)*n/T) of the split dimension.
 * docs/ckpt-format.md ("Sharded checkpoints") has the details.
 */
#ifndef DPOC_CKPT_MESH_H
#define DPOC_CKPT_MESH_H

#include "ckpt.h"

typedef struct CkptMesh CkptMesh;

/* 1 when path is a manifest, or a directory whose `latest` names one (the
 * manifest's path then in out); 0 for a plain checkpoint; -1 error. */
int ckpt_mesh_detect(const char *path, char *out, size_t outlen, char *err, size_t errlen);

CkptMesh *ckpt_mesh_open(const char *path, char *err, size_t errlen);
void ckpt_mesh_close(CkptMesh *m);
const char *ckpt_mesh_path(const CkptMesh *m); /* the manifest */
int ckpt_mesh_dp(const CkptMesh *m);
int ckpt_mesh_tp(const CkptMesh *m);
int ckpt_mesh_nshards(const CkptMesh *m);
/* Shard i (ordered by tp rank) and its tp rank. */
Ckpt *ckpt_mesh_shard(const CkptMesh *m, int i);
int ckpt_mesh_shard_tp(const CkptMesh *m, int i);
/* The state as one process would have it (mesh 1 x 1, rank 0). */
const CkptState *ckpt_mesh_state(const CkptMesh *m);
/* Tensors as one process holds them: full shape, no sharding, data NULL. */
int ckpt_mesh_ntensors(const CkptMesh *m);
const CkptTensor *ckpt_mesh_tensor(const CkptMesh *m, int i);
int ckpt_mesh_find(const CkptMesh *m, const char *name);
/* Reads tensor i's full data (nbytes = its full size) from every shard. */
int ckpt_mesh_read_full(CkptMesh *m, int i, void *dst, size_t nbytes, char *err, size_t errlen);
/* Verifies every frame of every shard; returns the number of damaged
 * tensors (each reported on out when out is not NULL), -1 on other errors. */
int ckpt_mesh_verify(CkptMesh *m, void *out_file, char *err, size_t errlen);

/* Resuming: only tp rank tp_rank's shard (its size and hash checked
 * against the manifest; an error unless the checkpoint has tp shards), or
 * all shards merged into one full checkpoint (a temporary file in $TMPDIR
 * or /tmp, removed at once: the returned Ckpt keeps it open). */
int ckpt_mesh_read_mesh(const char *path, int *dp, int *tp, char *err, size_t errlen); /* manifest only */
Ckpt *ckpt_mesh_open_shard(const char *path, int tp, int tp_rank, char *err, size_t errlen);
Ckpt *ckpt_mesh_open_merged(const char *path, char *err, size_t errlen);

/* Copies a block between a full tensor and a local one (es bytes per
 * element): the local block starts at off[d] in every dimension. */
void ckpt_mesh_block(int ndim, const int64_t *full, const int64_t *local, const int64_t *off, size_t es, void *fullp,
                     void *localp, int to_full);

/* Writing. The shard of tp rank `tp_rank` (st's mesh/rank filled, tensors
 * local with their sharding bytes), then, after every shard is on disk, the
 * manifest (reads back each shard file to hash it) and `latest`; keep_last
 * prunes older sharded steps (<= 0 keeps all). */
int ckpt_mesh_save_shard(const char *dir, const CkptState *st, int tp_rank, const CkptTensor *t, int n, char *err,
                         size_t errlen);
int ckpt_mesh_save_manifest(const char *dir, uint64_t step, int dp, int tp, int keep_last, char *err, size_t errlen);
/* Keeps step `cur` and the `keep` newest complete steps (with a manifest)
 * besides it; removes every other manifest, shard directory and stale
 * temporary file in dir (a missing dir is nothing to prune). The trainer
 * calls it with keep_last before writing a step's shards; the manifest
 * writer with keep_last - 1 after `latest`. */
int ckpt_mesh_prune(const char *dir, uint64_t cur, int keep, char *err, size_t errlen);

#endif
