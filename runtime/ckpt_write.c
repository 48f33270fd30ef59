/* ckpt_write.c — ckpt_save: one checkpoint file, then `latest`, then pruning.
 *
 * Everything the caller passes is checked first (names, dtypes, shapes,
 * byte counts, the state), so a bad call writes nothing. The file is then
 * written to DIR/.step-N.ckpt.tmp: the tensors' zstd frames are streamed
 * (level 3, content size in the frame header) to their place after the
 * header and table, each hashed as it goes out; the table and the header,
 * whose checksums cover what follows them, are written last at offset 0.
 * After an fsync the file is renamed to DIR/step-N.ckpt and the directory
 * fsynced; `latest` is replaced the same way; pruning comes last. Any
 * failure before the rename removes the temporary file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "ckpt_internal.h"

static const size_t dtype_sizes[CKPT_NDTYPES] = {4, 8, 4, 2, 2, 1};
static const char *const dtype_names[CKPT_NDTYPES] = {"f32", "f64", "i32", "bf16", "f16", "u8"};

size_t ckpt_dtype_size(int dtype) { return dtype >= 0 && dtype < CKPT_NDTYPES ? dtype_sizes[dtype] : 0; }
const char *ckpt_dtype_name(int dtype) { return dtype >= 0 && dtype < CKPT_NDTYPES ? dtype_names[dtype] : "?"; }

const char *ckpt_name_problem(const char *name, size_t len) {
    if (len == 0) return "empty name";
    if (len > CKPT_MAX_NAME) return "name longer than 159 bytes";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f) return "control character in the name";
    }
    return NULL;
}

static int cmp_names(const void *a, const void *b) {
    const CkptTensor *x = *(const CkptTensor *const *)a, *y = *(const CkptTensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Checks one tensor of the caller; 0 ok. */
static int check_tensor(const CkptTensor *t, int i, char *err, size_t errlen) {
    size_t len = strnlen(t->name, sizeof t->name);
    const char *bad =
        len == sizeof t->name ? "name not NUL-terminated within 160 bytes" : ckpt_name_problem(t->name, len);
    if (bad) {
        snprintf(err, errlen, "ckpt_save: tensor %d: %s", i, bad);
        return -1;
    }
    size_t esize = ckpt_dtype_size(t->dtype);
    if (!esize) {
        snprintf(err, errlen, "ckpt_save: tensor '%s': unknown dtype %d", t->name, t->dtype);
        return -1;
    }
    if (t->ndim > CKPT_MAX_DIMS) {
        snprintf(err, errlen, "ckpt_save: tensor '%s': ndim %d exceeds %d", t->name, t->ndim, CKPT_MAX_DIMS);
        return -1;
    }
    uint64_t bytes = esize;
    for (int d = 0; d < CKPT_MAX_DIMS; d++) {
        int64_t dim = t->shape[d];
        int used = d < t->ndim;
        if (used ? dim < 0 || dim > CKPT_MAX_DIM : dim != 0) {
            snprintf(err, errlen, "ckpt_save: tensor '%s': shape[%d] = %" PRId64 " (%s)", t->name, d, dim,
                     used ? "dims are 0..2^40" : "must be 0 past ndim");
            return -1;
        }
        if (t->shard[d] > CKPT_SHARD_TP || (!used && t->shard[d])) {
            snprintf(err, errlen, "ckpt_save: tensor '%s': shard[%d] = %d is not valid", t->name, d, t->shard[d]);
            return -1;
        }
        if (used && __builtin_mul_overflow(bytes, (uint64_t)dim, &bytes)) bytes = UINT64_MAX;
    }
    if (bytes > CKPT_MAX_RAW) {
        snprintf(err, errlen, "ckpt_save: tensor '%s': %" PRIu64 " bytes exceeds the 2^42 limit", t->name, bytes);
        return -1;
    }
    if (bytes != t->nbytes) {
        snprintf(err, errlen, "ckpt_save: tensor '%s': nbytes is %zu but its shape and dtype make %" PRIu64, t->name,
                 t->nbytes, bytes);
        return -1;
    }
    if (!t->data && t->nbytes) {
        snprintf(err, errlen, "ckpt_save: tensor '%s': data is NULL", t->name);
        return -1;
    }
    return 0;
}

static int check_args(const CkptState *st, const CkptTensor *t, int n, char *err, size_t errlen) {
    if (n < 0 || n > CKPT_MAX_TENSORS || (n && !t)) {
        snprintf(err, errlen, "ckpt_save: %d tensors (0..%d expected)", n, CKPT_MAX_TENSORS);
        return -1;
    }
    if (strnlen(st->extra_json, sizeof st->extra_json) == sizeof st->extra_json) {
        snprintf(err, errlen, "ckpt_save: extra_json is not NUL-terminated within %zu bytes", sizeof st->extra_json);
        return -1;
    }
    if (st->mesh_dp < 0 || st->mesh_tp < 0 || st->rank < 0 ||
        (st->mesh_dp > 0 && st->mesh_tp > 0 && (int64_t)st->rank >= (int64_t)st->mesh_dp * st->mesh_tp)) {
        snprintf(err, errlen, "ckpt_save: mesh dp=%d tp=%d rank=%d is not valid", st->mesh_dp, st->mesh_tp, st->rank);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (check_tensor(&t[i], i, err, errlen) != 0) return -1;
    if (n < 2) return 0;
    const CkptTensor **order = malloc((size_t)n * sizeof *order);
    if (!order) {
        snprintf(err, errlen, "ckpt_save: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, cmp_names);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name)) {
            snprintf(err, errlen, "ckpt_save: tensor '%s' appears twice", order[i]->name);
            rc = -1;
        }
    free(order);
    return rc;
}

typedef struct Writer {
    int fd;
    const char *path;
    ZSTD_CCtx *cctx;
    unsigned char *out;
    size_t outcap;
} Writer;

/* Streams one tensor's frame to offset `off`; fills csize and comp_sum. */
static int write_frame(Writer *w, const CkptTensor *t, uint64_t off, uint64_t *csize, uint64_t *comp_sum, char *err,
                       size_t errlen) {
    static const unsigned char none = 0;
    size_t r = ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(w->cctx, t->nbytes);
    ZSTD_inBuffer in = {t->nbytes ? t->data : &none, t->nbytes, 0};
    CkptXxh64 h;
    ckpt_xxh64_init(&h, 0);
    *csize = 0;
    while (!ZSTD_isError(r)) {
        ZSTD_outBuffer out = {w->out, w->outcap, 0};
        r = ZSTD_compressStream2(w->cctx, &out, &in, ZSTD_e_end);
        if (ZSTD_isError(r)) break;
        if (ckpt_pwrite_all(w->fd, w->out, out.pos, off + *csize) != 0) {
            snprintf(err, errlen, "%s: write: %s", w->path, strerror(errno));
            return -1;
        }
        ckpt_xxh64_update(&h, w->out, out.pos);
        *csize += out.pos;
        if (r == 0) {
            *comp_sum = ckpt_xxh64_digest(&h);
            return 0;
        }
    }
    snprintf(err, errlen, "%s: tensor '%s': zstd: %s", w->path, t->name, ZSTD_getErrorName(r));
    return -1;
}

static void put_entry(unsigned char *e, const CkptTensor *t, const CkptStored *s) {
    size_t len = strlen(t->name);
    memset(e, 0, CKPT_E_FIXED);
    ckpt_put16(e + CKPT_E_NAME_LEN, (uint16_t)len);
    e[CKPT_E_DTYPE] = t->dtype;
    e[CKPT_E_NDIM] = t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        e[CKPT_E_SHARD + d] = t->shard[d];
        ckpt_put64(e + CKPT_E_SHAPE + 8 * d, (uint64_t)t->shape[d]);
    }
    ckpt_put64(e + CKPT_E_OFFSET, s->offset);
    ckpt_put64(e + CKPT_E_CSIZE, s->csize);
    ckpt_put64(e + CKPT_E_RSIZE, s->rsize);
    ckpt_put64(e + CKPT_E_RAW_SUM, s->raw_sum);
    ckpt_put64(e + CKPT_E_COMP_SUM, s->comp_sum);
    memcpy(e + CKPT_E_FIXED, t->name, len);
}

static void put_header(unsigned char *h, const CkptState *st, int n, uint64_t table_size, uint64_t table_sum) {
    size_t elen = strlen(st->extra_json);
    memset(h, 0, CKPT_H_FIXED + elen);
    memcpy(h + CKPT_H_MAGIC, CKPT_MAGIC, 8);
    ckpt_put32(h + CKPT_H_VERSION, CKPT_VERSION);
    ckpt_put32(h + CKPT_H_EXTRA_LEN, (uint32_t)elen);
    ckpt_put64(h + CKPT_H_STEP, st->step);
    ckpt_put64(h + CKPT_H_EPOCH, st->epoch);
    ckpt_put64(h + CKPT_H_DATA_POS, st->data_pos);
    for (int i = 0; i < 4; i++) ckpt_put64(h + CKPT_H_RNG + 8 * i, st->rng[i]);
    ckpt_put64(h + CKPT_H_CONFIG_HASH, st->config_hash);
    ckpt_put32(h + CKPT_H_MESH_DP, (uint32_t)st->mesh_dp);
    ckpt_put32(h + CKPT_H_MESH_TP, (uint32_t)st->mesh_tp);
    ckpt_put32(h + CKPT_H_RANK, (uint32_t)st->rank);
    ckpt_put32(h + CKPT_H_NTENSORS, (uint32_t)n);
    ckpt_put64(h + CKPT_H_TABLE_OFFSET, CKPT_H_FIXED + elen);
    ckpt_put64(h + CKPT_H_TABLE_SIZE, table_size);
    ckpt_put64(h + CKPT_H_TABLE_SUM, table_sum);
    memcpy(h + CKPT_H_EXTRA, st->extra_json, elen);
    ckpt_put64(h + CKPT_H_EXTRA + elen, ckpt_xxh64(h, CKPT_H_EXTRA + elen, 0));
}

/* Writes the whole file through fd; 0 ok. */
static int write_file(Writer *w, const CkptState *st, const CkptTensor *t, int n, char *err, size_t errlen) {
    size_t elen = strlen(st->extra_json), hsize = CKPT_H_FIXED + elen, tsize = 0;
    for (int i = 0; i < n; i++) tsize += CKPT_E_FIXED + strlen(t[i].name);
    unsigned char *buf = malloc(hsize + tsize);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory for the tensor table", w->path);
        return -1;
    }
    unsigned char *table = buf + hsize, *e = table;
    uint64_t off = hsize + tsize;
    for (int i = 0; i < n; i++) {
        CkptStored s = {.offset = off, .rsize = t[i].nbytes};
        if (write_frame(w, &t[i], off, &s.csize, &s.comp_sum, err, errlen) != 0) {
            free(buf);
            return -1;
        }
        s.raw_sum = ckpt_xxh64(t[i].data, t[i].nbytes, 0);
        put_entry(e, &t[i], &s);
        e += CKPT_E_FIXED + strlen(t[i].name);
        off += s.csize;
    }
    put_header(buf, st, n, tsize, ckpt_xxh64(table, tsize, 0));
    int rc = ckpt_pwrite_all(w->fd, buf, hsize + tsize, 0);
    free(buf);
    if (rc != 0 || fsync(w->fd) != 0) {
        snprintf(err, errlen, "%s: write: %s", w->path, strerror(errno));
        return -1;
    }
    return 0;
}

int ckpt_save(const char *dir, const CkptState *st, const CkptTensor *t, int n, int keep_last, char *err,
              size_t errlen) {
    if (!dir || !*dir || !st) {
        snprintf(err, errlen, "ckpt_save: no directory or state given");
        return -1;
    }
    if (check_args(st, t, n, err, errlen) != 0 || ckpt_mkdirs(dir, err, errlen) != 0) return -1;
    char name[64], tmp[4096], final[4096];
    snprintf(name, sizeof name, "step-%08" PRIu64 ".ckpt", st->step);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(final, sizeof final, "%s/%s", dir, name) >= sizeof final) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    /* a save killed between its rename and its pruning leaves one step file
     * too many; pruning before a save too keeps a crash loop from piling
     * them up: at most keep_last + 1 step files exist at any moment */
    char cur[256], ignored[16];
    if (keep_last > 0 && ckpt_read_latest(dir, cur, sizeof cur, ignored, sizeof ignored) == 0 &&
        ckpt_prune(dir, keep_last, cur, err, errlen) != 0)
        return -1;
    Writer w = {.path = tmp};
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    w.cctx = ZSTD_createCCtx();
    w.outcap = ZSTD_CStreamOutSize();
    w.out = malloc(w.outcap);
    int rc = -1;
    if (!w.cctx || !w.out)
        snprintf(err, errlen, "%s: out of memory for the compressor", tmp);
    else if (ZSTD_isError(ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_compressionLevel, 3)))
        snprintf(err, errlen, "%s: zstd refuses level 3", tmp);
    else
        rc = write_file(&w, st, t, n, err, errlen);
    ZSTD_freeCCtx(w.cctx);
    free(w.out);
    if (close(w.fd) != 0 && rc == 0) {
        snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, final) != 0) {
        snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
        return -1;
    }
    if (ckpt_fsync_dir(dir, err, errlen) != 0) return -1;
    char line[80];
    int len = snprintf(line, sizeof line, "%s\n", name);
    if (ckpt_write_small(dir, "latest", line, (size_t)len, err, errlen) != 0) return -1;
    return ckpt_prune(dir, keep_last, name, err, errlen);
}
