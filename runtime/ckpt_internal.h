/* ckpt_internal.h — what the checkpoint files share: layout constants,
 * little-endian byte access, the XXH64 checksum and the directory helpers.
 *
 * The layout constants mirror docs/ckpt-format.md (offsets inside the header
 * and inside one tensor-table entry). Put/get helpers read and write
 * integers byte by byte, so the format does not depend on the host's byte
 * order or alignment. XXH64 has a one-shot and a streaming form (the reader
 * and writer hash frames chunk by chunk).
 */
#ifndef DPOC_CKPT_INTERNAL_H
#define DPOC_CKPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"

#define CKPT_MAGIC "DPOCCKPT"
enum {
    CKPT_VERSION = 1,
    /* header: fixed fields, then extra_json (E bytes), then the checksum */
    CKPT_H_MAGIC = 0,
    CKPT_H_VERSION = 8,
    CKPT_H_EXTRA_LEN = 12,
    CKPT_H_STEP = 16,
    CKPT_H_EPOCH = 24,
    CKPT_H_DATA_POS = 32,
    CKPT_H_RNG = 40,
    CKPT_H_CONFIG_HASH = 72,
    CKPT_H_MESH_DP = 80,
    CKPT_H_MESH_TP = 84,
    CKPT_H_RANK = 88,
    CKPT_H_NTENSORS = 92,
    CKPT_H_TABLE_OFFSET = 96,
    CKPT_H_TABLE_SIZE = 104,
    CKPT_H_TABLE_SUM = 112,
    CKPT_H_RESERVED = 120,
    CKPT_H_EXTRA = 124,
    CKPT_H_FIXED = 132, /* header size without extra_json */
    /* one tensor-table entry: fixed fields, then the name (L bytes) */
    CKPT_E_NAME_LEN = 0,
    CKPT_E_DTYPE = 2,
    CKPT_E_NDIM = 3,
    CKPT_E_SHARD = 4,
    CKPT_E_RESERVED = 10,
    CKPT_E_SHAPE = 16,
    CKPT_E_OFFSET = 64,
    CKPT_E_CSIZE = 72,
    CKPT_E_RSIZE = 80,
    CKPT_E_RAW_SUM = 88,
    CKPT_E_COMP_SUM = 96,
    CKPT_E_FIXED = 104,
};
#define CKPT_MAX_DIM ((int64_t)1 << 40)
#define CKPT_MAX_RAW ((uint64_t)1 << 42)

static inline void ckpt_put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void ckpt_put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void ckpt_put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t ckpt_get16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ckpt_get32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t ckpt_get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* XXH64 (xxHash specification), one shot and streaming. */
typedef struct CkptXxh64 {
    uint64_t v[4];
    uint64_t total;
    uint64_t seed;
    unsigned char buf[32];
    size_t nbuf;
} CkptXxh64;

uint64_t ckpt_xxh64(const void *data, size_t len, uint64_t seed);
void ckpt_xxh64_init(CkptXxh64 *s, uint64_t seed);
void ckpt_xxh64_update(CkptXxh64 *s, const void *data, size_t len);
uint64_t ckpt_xxh64_digest(const CkptXxh64 *s);

/* An open checkpoint (ckpt_read.c opens it, ckpt_frame.c reads its data). */
struct Ckpt {
    char *path;
    int fd;
    uint64_t file_size;
    CkptState st;
    int n;
    uint64_t table_size, table_sum;
    CkptTensor *t;
    CkptStored *s;
    int *sorted;             /* tensor indices in name order */
    void *dctx;              /* ZSTD_DCtx, created on the first read */
    unsigned char *in, *out; /* read chunk and scratch output, allocated on first use */
    size_t incap, outcap;
};
void ckpt_frame_free(Ckpt *c);

/* Name checks shared by the writer and the reader: NULL if the name is
 * acceptable, else what is wrong with it. */
const char *ckpt_name_problem(const char *name, size_t len);

/* Directory helpers (ckpt_dir.c). */
int ckpt_mkdirs(const char *dir, char *err, size_t errlen);
int ckpt_fsync_dir(const char *dir, char *err, size_t errlen);
/* Writes `len` bytes to DIR/.NAME.tmp, fsyncs, renames to DIR/NAME, fsyncs DIR. */
int ckpt_write_small(const char *dir, const char *name, const void *data, size_t len, char *err, size_t errlen);
/* Reads DIR/latest into name (a plain file name). */
int ckpt_read_latest(const char *dir, char *name, size_t namelen, char *err, size_t errlen);
/* Removes step files beyond keep_last (never `keep`) and stale .tmp files. */
int ckpt_prune(const char *dir, int keep_last, const char *keep, char *err, size_t errlen);
/* 1 for the temporary files a killed save leaves (.latest.tmp, .step-N.ckpt.tmp,
 * .step-N.mesh.tmp). */
int ckpt_is_stale_tmp(const char *name);
/* Size and XXH64 of a whole file (ckpt_mesh.c). */
int ckpt_hash_file(const char *path, uint64_t *size, uint64_t *h, char *err, size_t errlen);
/* Parses "step-<digits>.ckpt"; 1 and *step if it matches, else 0. */
int ckpt_parse_step_name(const char *name, uint64_t *step);
/* Writes len bytes at offset (EINTR and short writes handled). */
int ckpt_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

#endif
