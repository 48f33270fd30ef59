/* ckpt.h — checkpoints: a directory of zstd-compressed tensor files.
 *
 * ckpt_save writes DIR/step-NNNNNNNN.ckpt: a header (magic, version, the
 * training state below), a tensor table (name, dtype, shape, sharding,
 * offset, sizes, checksums) and one zstd frame per tensor. It writes to a
 * temporary name (DIR/.step-NNNNNNNN.ckpt.tmp), fsyncs, renames, fsyncs the
 * directory, then replaces DIR/latest (a one-line file naming the
 * checkpoint) the same way, and finally removes checkpoints beyond keep_last
 * and stale temporary files of an earlier crash. A crash at any point leaves
 * `latest` naming a complete checkpoint. One writer per directory.
 * docs/ckpt-format.md has the byte layout.
 *
 * Reading validates every header and table field against the file size and
 * hard limits before allocating anything; tensor data is checked (sizes,
 * checksums of the compressed and of the raw bytes) as it is read. Error
 * messages name the file and the tensor or region:
 *   "ckpt/step-00000020.ckpt: tensor 'model.norm.weight': checksum mismatch ..."
 * A Ckpt is not thread-safe (one reader thread at a time).
 */
#ifndef DPOC_CKPT_H
#define DPOC_CKPT_H

#include <stddef.h>
#include <stdint.h>

enum { CKPT_F32 = 0, CKPT_F64 = 1, CKPT_I32 = 2, CKPT_BF16 = 3, CKPT_F16 = 4, CKPT_U8 = 5, CKPT_NDTYPES = 6 };

/* Sharding of one dimension: the mesh axis it is split over (the tensor in
 * the file is this rank's shard). Zero (NONE) for an unsharded dimension. */
enum { CKPT_SHARD_NONE = 0, CKPT_SHARD_DP = 1, CKPT_SHARD_TP = 2 };

enum {
    CKPT_MAX_DIMS = 6,
    CKPT_MAX_NAME = 159,   /* bytes, printable ASCII/UTF-8, no control characters */
    CKPT_MAX_EXTRA = 4095, /* bytes of extra_json */
    CKPT_MAX_TENSORS = 1 << 20,
};

typedef struct CkptTensor {
    char name[160];   /* unique within a checkpoint; 1..CKPT_MAX_NAME bytes */
    uint8_t dtype;    /* CKPT_* */
    uint8_t ndim;     /* 0..CKPT_MAX_DIMS (0: a scalar) */
    int64_t shape[6]; /* dims >= 0; entries past ndim are 0 */
    void *data;       /* save: source; read: NULL (see ckpt_read_tensor) */
    size_t nbytes;    /* = product(shape) * ckpt_dtype_size(dtype) */
    uint8_t shard[6]; /* per dimension CKPT_SHARD_*; all 0 when unsharded */
} CkptTensor;

typedef struct CkptState {
    uint64_t step;                  /* optimizer steps done */
    uint64_t epoch;                 /* data epoch */
    uint64_t data_pos;              /* next position in the epoch's order */
    uint64_t rng[4];                /* runtime RNG state */
    uint64_t config_hash;           /* hash of the step.so's model/loss config */
    int32_t mesh_dp, mesh_tp, rank; /* 1, 1, 0 for one process; >= 0, rank < dp*tp when both > 0 */
    char extra_json[4096];          /* free-form JSON object (optimizer settings, ...); NUL-terminated, may be "" */
} CkptState;

typedef struct Ckpt Ckpt;

/* Where a tensor's frame lies in the file and what it must hash to. */
typedef struct CkptStored {
    uint64_t offset;   /* of the zstd frame, from the start of the file */
    uint64_t csize;    /* compressed bytes (the whole frame) */
    uint64_t rsize;    /* raw bytes (= the tensor's nbytes) */
    uint64_t raw_sum;  /* XXH64 (seed 0) of the raw bytes */
    uint64_t comp_sum; /* XXH64 (seed 0) of the compressed bytes */
} CkptStored;

/* Saves t[0..n) with the state as DIR/step-<st->step>.ckpt (DIR created if
 * missing), updates DIR/latest, then keeps the keep_last newest checkpoints
 * (keep_last <= 0 keeps all). 0 ok; -1 with a message, and no new file left
 * behind (a failure after the rename leaves a complete checkpoint). */
int ckpt_save(const char *dir, const CkptState *st, const CkptTensor *t, int n, int keep_last, char *err,
              size_t errlen);

/* path: a checkpoint file, or a directory (the file its `latest` names).
 * Reads and checks header and table; tensor data is checked when read. */
Ckpt *ckpt_open(const char *path, char *err, size_t errlen);
const CkptState *ckpt_state(const Ckpt *c);
const char *ckpt_path(const Ckpt *c); /* the checkpoint file's path */
int ckpt_ntensors(const Ckpt *c);
const CkptTensor *ckpt_tensor(const Ckpt *c, int i); /* data NULL */
const CkptStored *ckpt_stored(const Ckpt *c, int i);
int ckpt_find(const Ckpt *c, const char *name); /* index or -1 */
/* Decompresses tensor i into dst (nbytes must match), verifying size and
 * checksums; errors name the file and the tensor. */
int ckpt_read_tensor(Ckpt *c, int i, void *dst, size_t nbytes, char *err, size_t errlen);
/* The same checks without a destination (memory use is bounded by zstd's
 * stream buffers, whatever the tensor's size). */
int ckpt_verify_tensor(Ckpt *c, int i, char *err, size_t errlen);
void ckpt_close(Ckpt *c);

size_t ckpt_dtype_size(int dtype);      /* 0 for an unknown dtype */
const char *ckpt_dtype_name(int dtype); /* "f32", "f64", "i32", "bf16", "f16", "u8"; "?" */

#endif
