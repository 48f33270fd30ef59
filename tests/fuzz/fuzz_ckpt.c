/* fuzz_ckpt.c — libFuzzer target for the checkpoint reader (runtime/ckpt_read.c,
 * runtime/ckpt_frame.c).
 *
 * Each input is written to a temporary file and read as a checkpoint twice:
 * once as it is, and once "resealed" — every compressed checksum whose frame
 * lies inside the input, the table checksum and the header checksum are
 * recomputed first — so that mutations get past the checksums into the
 * field checks, the table walk and the zstd decoder. Every tensor is
 * verified (ckpt_verify_tensor) and, when it is at most 4 MiB, read into a
 * buffer. A failure must come with a message starting with the file's path;
 * an accepted checkpoint must obey the format's rules (checked here
 * independently), else abort(). Seeds in corpus/ckpt/ are small valid
 * checkpoints written by `test_ckpt corpus DIR`.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/ckpt_internal.h"

static char path[64];

static void remove_file(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/fuzz_ckpt_%d.ckpt", (int)getpid());
    atexit(remove_file);
    return 0;
}

static void put_file(const uint8_t *d, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd < 0 || ckpt_pwrite_all(fd, d, n, 0) != 0 || ftruncate(fd, (off_t)n) != 0) abort();
    close(fd);
}

static void check_error(const char *err) {
    size_t len = strlen(path);
    if (strncmp(err, path, len) != 0 || err[len] != ':') abort();
}

/* The rules an accepted checkpoint must obey. */
static void check_accepted(const Ckpt *c, size_t n) {
    const CkptState *st = ckpt_state(c);
    if (strlen(st->extra_json) > CKPT_MAX_EXTRA) abort();
    uint64_t end = 0;
    for (int i = 0; i < ckpt_ntensors(c); i++) {
        const CkptTensor *t = ckpt_tensor(c, i);
        const CkptStored *s = ckpt_stored(c, i);
        size_t len = strlen(t->name);
        if (len == 0 || len > CKPT_MAX_NAME || t->ndim > CKPT_MAX_DIMS || !ckpt_dtype_size(t->dtype)) abort();
        uint64_t bytes = ckpt_dtype_size(t->dtype);
        for (int d = 0; d < CKPT_MAX_DIMS; d++) {
            if (d >= t->ndim && (t->shape[d] || t->shard[d])) abort();
            if (d < t->ndim) {
                if (t->shape[d] < 0 || t->shard[d] > CKPT_SHARD_TP) abort();
                if (__builtin_mul_overflow(bytes, (uint64_t)t->shape[d], &bytes)) abort();
            }
        }
        if (bytes != t->nbytes || bytes != s->rsize || s->csize == 0) abort();
        if (i > 0 && s->offset != end) abort();
        end = s->offset + s->csize;
        if (end > n) abort();
        if (ckpt_find(c, t->name) != i) abort();
    }
    if (ckpt_ntensors(c) && end != n) abort();
}

static void read_all(const uint8_t *d, size_t n) {
    put_file(d, n);
    char err[1024] = "";
    Ckpt *c = ckpt_open(path, err, sizeof err);
    if (!c) {
        check_error(err);
        return;
    }
    check_accepted(c, n);
    for (int i = 0; i < ckpt_ntensors(c); i++) {
        const CkptTensor *t = ckpt_tensor(c, i);
        int ok = ckpt_verify_tensor(c, i, err, sizeof err) == 0;
        if (!ok) check_error(err);
        if (t->nbytes <= ((size_t)4 << 20)) {
            void *buf = malloc(t->nbytes ? t->nbytes : 1);
            int ok2 = ckpt_read_tensor(c, i, buf, t->nbytes, err, sizeof err) == 0;
            if (!ok2) check_error(err);
            if (ok != ok2) abort(); /* both paths check the same things */
            free(buf);
        }
    }
    ckpt_close(c);
}

/* Recomputes the checksums that can be recomputed from inside the input. */
static void reseal(uint8_t *d, size_t n) {
    if (n < CKPT_H_FIXED) return;
    uint32_t elen = ckpt_get32(d + CKPT_H_EXTRA_LEN);
    if (elen > CKPT_MAX_EXTRA || CKPT_H_FIXED + elen > n) return;
    size_t hsize = CKPT_H_FIXED + elen;
    uint64_t tsize = ckpt_get64(d + CKPT_H_TABLE_SIZE);
    if (tsize <= n - hsize) {
        uint8_t *table = d + hsize;
        for (uint64_t pos = 0; pos <= tsize && tsize - pos >= CKPT_E_FIXED;) {
            uint8_t *e = table + pos;
            uint64_t off = ckpt_get64(e + CKPT_E_OFFSET), cs = ckpt_get64(e + CKPT_E_CSIZE);
            if (off <= n && cs <= n - off) ckpt_put64(e + CKPT_E_COMP_SUM, ckpt_xxh64(d + off, (size_t)cs, 0));
            pos += CKPT_E_FIXED + ckpt_get16(e + CKPT_E_NAME_LEN);
        }
        ckpt_put64(d + CKPT_H_TABLE_SUM, ckpt_xxh64(table, (size_t)tsize, 0));
    }
    ckpt_put64(d + hsize - 8, ckpt_xxh64(d, hsize - 8, 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    read_all(data, size);
    if (!size) return 0;
    uint8_t *copy = malloc(size);
    memcpy(copy, data, size);
    reseal(copy, size);
    if (memcmp(copy, data, size)) read_all(copy, size);
    free(copy);
    return 0;
}
