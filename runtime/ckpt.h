/* ckpt.h — checkpoints: a directory of zstd-compressed tensor files.
 *
 * ckpt_save writes DIR/step-NNNNNNNN.ckpt: a header (magic, version, the
 * training state below), a tensor table (name, dtype, shape, offset,
 * compressed size, checksum) and one zstd frame per tensor. It writes to a
 * temporary name, fsyncs, renames, fsyncs the directory, then replaces
 * DIR/latest (a one-line file naming the checkpoint) the same way, and
 * finally removes checkpoints beyond keep_last. A crash at any point leaves
 * `latest` naming a complete checkpoint. docs/ckpt-format.md has the layout.
 */
#ifndef DPOC_CKPT_H
#define DPOC_CKPT_H

#include <stddef.h>
#include <stdint.h>

enum { CKPT_F32 = 0, CKPT_F64 = 1, CKPT_I32 = 2, CKPT_BF16 = 3, CKPT_F16 = 4, CKPT_U8 = 5 };

typedef struct CkptTensor {
    char name[160];
    uint8_t dtype;           /* CKPT_* */
    uint8_t ndim;
    int64_t shape[6];
    void *data;              /* save: source; read: filled by ckpt_read_tensor */
    size_t nbytes;
} CkptTensor;

typedef struct CkptState {
    uint64_t step;           /* optimizer steps done */
    uint64_t epoch;          /* data epoch */
    uint64_t data_pos;       /* next position in the epoch's order */
    uint64_t rng[4];         /* runtime RNG state */
    uint64_t config_hash;    /* hash of the step.so's model/loss config */
    int32_t mesh_dp, mesh_tp, rank;
    char extra_json[4096];   /* free-form JSON object (optimizer settings, ...) */
} CkptState;

typedef struct Ckpt Ckpt;

int ckpt_save(const char *dir, const CkptState *st, const CkptTensor *t, int n, int keep_last, char *err, size_t errlen);
/* path: a checkpoint file, or a directory (its `latest`). Reads and checks
 * header and table; tensor data is checked when read. */
Ckpt *ckpt_open(const char *path, char *err, size_t errlen);
const CkptState *ckpt_state(const Ckpt *c);
const char *ckpt_path(const Ckpt *c);
int ckpt_ntensors(const Ckpt *c);
const CkptTensor *ckpt_tensor(const Ckpt *c, int i); /* data NULL */
int ckpt_find(const Ckpt *c, const char *name);      /* index or -1 */
/* Decompresses tensor i into dst (nbytes must match), verifying size and
 * checksum; errors name the file and the tensor. */
int ckpt_read_tensor(Ckpt *c, int i, void *dst, size_t nbytes, char *err, size_t errlen);
void ckpt_close(Ckpt *c);

#endif
