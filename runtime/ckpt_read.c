/* ckpt_read.c — ckpt_open and the header/table checks.
 *
 * Opening resolves a directory through its `latest` file, then reads the
 * fixed header and checks it in the order docs/ckpt-format.md lists: magic,
 * version, extra_json length, that the file holds the header, the header
 * checksum, then each field. Only then is the table (whose size is bounded
 * by the file size) read, its checksum checked and each entry parsed and
 * checked: name, dtype, shape, sizes, and that the frames follow each other
 * exactly up to the end of the file. Nothing is allocated from a size the
 * file has not been shown to hold. Names are indexed in sorted order for
 * ckpt_find and the duplicate check. Tensor data is read in ckpt_frame.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"

static int read_at(int fd, void *buf, size_t len, uint64_t off) {
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) errno = EIO; /* the file shrank since fstat */
        if (r <= 0) return -1;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int fail(Ckpt *c, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(Ckpt *c, char *err, size_t errlen, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", c->path, msg);
    return -1;
}

static int check_header(Ckpt *c, const unsigned char *h, size_t hsize, char *err, size_t errlen) {
    uint64_t stored = ckpt_get64(h + hsize - 8), computed = ckpt_xxh64(h, hsize - 8, 0);
    if (stored != computed)
        return fail(c, err, errlen, "header: checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")",
                    stored, computed);
    if (ckpt_get32(h + CKPT_H_RESERVED) != 0) return fail(c, err, errlen, "header: reserved field is not 0");
    size_t elen = hsize - CKPT_H_FIXED;
    if (memchr(h + CKPT_H_EXTRA, 0, elen)) return fail(c, err, errlen, "header: NUL byte inside extra_json");
    CkptState *st = &c->st;
    st->step = ckpt_get64(h + CKPT_H_STEP);
    st->epoch = ckpt_get64(h + CKPT_H_EPOCH);
    st->data_pos = ckpt_get64(h + CKPT_H_DATA_POS);
    for (int i = 0; i < 4; i++) st->rng[i] = ckpt_get64(h + CKPT_H_RNG + 8 * i);
    st->config_hash = ckpt_get64(h + CKPT_H_CONFIG_HASH);
    st->mesh_dp = (int32_t)ckpt_get32(h + CKPT_H_MESH_DP);
    st->mesh_tp = (int32_t)ckpt_get32(h + CKPT_H_MESH_TP);
    st->rank = (int32_t)ckpt_get32(h + CKPT_H_RANK);
    memcpy(st->extra_json, h + CKPT_H_EXTRA, elen);
    st->extra_json[elen] = 0;
    if (st->mesh_dp < 0 || st->mesh_tp < 0 || st->rank < 0 ||
        (st->mesh_dp > 0 && st->mesh_tp > 0 && (int64_t)st->rank >= (int64_t)st->mesh_dp * st->mesh_tp))
        return fail(c, err, errlen, "header: mesh dp=%d tp=%d rank=%d is not valid", st->mesh_dp, st->mesh_tp,
                    st->rank);
    uint32_t n = ckpt_get32(h + CKPT_H_NTENSORS);
    if (n > CKPT_MAX_TENSORS)
        return fail(c, err, errlen, "header: %" PRIu32 " tensors exceeds the limit of %d", n, CKPT_MAX_TENSORS);
    c->n = (int)n;
    uint64_t toff = ckpt_get64(h + CKPT_H_TABLE_OFFSET), tsize = ckpt_get64(h + CKPT_H_TABLE_SIZE);
    if (toff != hsize)
        return fail(c, err, errlen, "header: table offset %" PRIu64 ", expected %zu (right after the header)", toff,
                    hsize);
    uint64_t lo = (uint64_t)n * CKPT_E_FIXED, hi = (uint64_t)n * (CKPT_E_FIXED + CKPT_MAX_NAME);
    if (tsize < lo || tsize > hi)
        return fail(c, err, errlen,
                    "header: table size %" PRIu64 " does not fit %" PRIu32 " entries (%" PRIu64 "..%" PRIu64 " bytes)",
                    tsize, n, lo, hi);
    c->table_size = tsize;
    c->table_sum = ckpt_get64(h + CKPT_H_TABLE_SUM);
    return 0;
}

static int cmp_index(const void *a, const void *b, void *ctx) {
    const CkptTensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

/* Parses and checks the table entries (already checksummed). */
static int parse_table(Ckpt *c, const unsigned char *table, uint64_t data_start, char *err, size_t errlen) {
    uint64_t pos = 0, expect = data_start;
    for (int i = 0; i < c->n; i++) {
        CkptTensor *t = &c->t[i];
        CkptStored *s = &c->s[i];
        if (c->table_size - pos < CKPT_E_FIXED)
            return fail(c, err, errlen, "tensor table: entry %d runs past the end of the table", i);
        const unsigned char *e = table + pos;
        size_t len = ckpt_get16(e + CKPT_E_NAME_LEN);
        if (len > CKPT_MAX_NAME || c->table_size - pos - CKPT_E_FIXED < len)
            return fail(c, err, errlen, "tensor table: entry %d: name length %zu does not fit", i, len);
        const char *bad = ckpt_name_problem((const char *)e + CKPT_E_FIXED, len);
        if (bad) return fail(c, err, errlen, "tensor table: entry %d: %s", i, bad);
        memcpy(t->name, e + CKPT_E_FIXED, len);
        t->name[len] = 0;
        t->dtype = e[CKPT_E_DTYPE];
        t->ndim = e[CKPT_E_NDIM];
        size_t esize = ckpt_dtype_size(t->dtype);
        if (!esize) return fail(c, err, errlen, "tensor '%s': dtype %d is not a known dtype", t->name, t->dtype);
        if (t->ndim > CKPT_MAX_DIMS)
            return fail(c, err, errlen, "tensor '%s': ndim %d exceeds %d", t->name, t->ndim, CKPT_MAX_DIMS);
        for (int k = 0; k < 6; k++)
            if (e[CKPT_E_RESERVED + k])
                return fail(c, err, errlen, "tensor '%s': reserved byte %d is not 0", t->name, k);
        uint64_t bytes = esize;
        for (int d = 0; d < CKPT_MAX_DIMS; d++) {
            int64_t dim = (int64_t)ckpt_get64(e + CKPT_E_SHAPE + 8 * d);
            uint8_t sh = e[CKPT_E_SHARD + d];
            int used = d < t->ndim;
            if (used ? dim < 0 || dim > CKPT_MAX_DIM : dim != 0)
                return fail(c, err, errlen, "tensor '%s': shape[%d] = %" PRId64 " (%s)", t->name, d, dim,
                            used ? "dims are 0..2^40" : "must be 0 past ndim");
            if (sh > CKPT_SHARD_TP || (!used && sh))
                return fail(c, err, errlen, "tensor '%s': sharding %d of dimension %d is not valid", t->name, sh, d);
            t->shape[d] = dim;
            t->shard[d] = sh;
            if (used && __builtin_mul_overflow(bytes, (uint64_t)dim, &bytes)) bytes = UINT64_MAX;
        }
        s->offset = ckpt_get64(e + CKPT_E_OFFSET);
        s->csize = ckpt_get64(e + CKPT_E_CSIZE);
        s->rsize = ckpt_get64(e + CKPT_E_RSIZE);
        s->raw_sum = ckpt_get64(e + CKPT_E_RAW_SUM);
        s->comp_sum = ckpt_get64(e + CKPT_E_COMP_SUM);
        if (bytes > CKPT_MAX_RAW || bytes > SIZE_MAX)
            return fail(c, err, errlen, "tensor '%s': %" PRIu64 " bytes exceeds the 2^42 limit", t->name, bytes);
        if (s->rsize != bytes)
            return fail(c, err, errlen, "tensor '%s': raw size %" PRIu64 ", but its shape and dtype make %" PRIu64,
                        t->name, s->rsize, bytes);
        t->nbytes = (size_t)bytes;
        t->data = NULL;
        if (s->csize == 0) return fail(c, err, errlen, "tensor '%s': compressed size 0", t->name);
        if (s->offset != expect)
            return fail(c, err, errlen,
                        "tensor '%s': data offset %" PRIu64 ", expected %" PRIu64 " (where the previous data ends)",
                        t->name, s->offset, expect);
        if (s->csize > c->file_size - s->offset)
            return fail(c, err, errlen,
                        "truncated: tensor '%s' needs bytes %" PRIu64 "..%" PRIu64 ", file has %" PRIu64, t->name,
                        s->offset, s->csize <= UINT64_MAX - s->offset ? s->offset + s->csize : UINT64_MAX,
                        c->file_size);
        expect = s->offset + s->csize;
        pos += CKPT_E_FIXED + len;
    }
    if (pos != c->table_size)
        return fail(c, err, errlen, "tensor table: %" PRIu64 " bytes left after the last entry", c->table_size - pos);
    if (expect != c->file_size)
        return fail(c, err, errlen, "%" PRIu64 " byte(s) after the end of the last tensor's data",
                    c->file_size - expect);
    for (int i = 0; i < c->n; i++) c->sorted[i] = i;
    qsort_r(c->sorted, (size_t)c->n, sizeof *c->sorted, cmp_index, c->t);
    for (int i = 1; i < c->n; i++)
        if (!strcmp(c->t[c->sorted[i - 1]].name, c->t[c->sorted[i]].name))
            return fail(c, err, errlen, "tensor '%s': appears twice in the table", c->t[c->sorted[i]].name);
    return 0;
}

static int load(Ckpt *c, char *err, size_t errlen) {
    unsigned char h[CKPT_H_FIXED + CKPT_MAX_EXTRA];
    size_t got = c->file_size < CKPT_H_FIXED ? (size_t)c->file_size : CKPT_H_FIXED;
    if (read_at(c->fd, h, got, 0) != 0) return fail(c, err, errlen, "read: %s", strerror(errno));
    if (got >= 8 && memcmp(h, CKPT_MAGIC, 8) != 0)
        return fail(c, err, errlen, "header: bad magic (not a dpoc checkpoint)");
    if (got < CKPT_H_FIXED)
        return fail(c, err, errlen, "truncated: header needs bytes 0..%d, file has %" PRIu64, CKPT_H_FIXED,
                    c->file_size);
    uint32_t version = ckpt_get32(h + CKPT_H_VERSION), elen = ckpt_get32(h + CKPT_H_EXTRA_LEN);
    if (version != CKPT_VERSION)
        return fail(c, err, errlen, "header: format version %" PRIu32 " (this dpoc reads version %d)", version,
                    CKPT_VERSION);
    if (elen > CKPT_MAX_EXTRA)
        return fail(c, err, errlen, "header: extra_json length %" PRIu32 " exceeds %d", elen, CKPT_MAX_EXTRA);
    size_t hsize = CKPT_H_FIXED + elen;
    if (c->file_size < hsize)
        return fail(c, err, errlen, "truncated: header needs bytes 0..%zu, file has %" PRIu64, hsize, c->file_size);
    if (read_at(c->fd, h + CKPT_H_FIXED, elen, CKPT_H_FIXED) != 0)
        return fail(c, err, errlen, "read: %s", strerror(errno));
    if (check_header(c, h, hsize, err, errlen) != 0) return -1;
    if (c->table_size > c->file_size - hsize)
        return fail(c, err, errlen, "truncated: tensor table needs bytes %zu..%" PRIu64 ", file has %" PRIu64, hsize,
                    hsize + c->table_size, c->file_size);
    unsigned char *table = malloc(c->table_size ? (size_t)c->table_size : 1);
    c->t = calloc(c->n ? (size_t)c->n : 1, sizeof *c->t);
    c->s = calloc(c->n ? (size_t)c->n : 1, sizeof *c->s);
    c->sorted = calloc(c->n ? (size_t)c->n : 1, sizeof *c->sorted);
    int rc = -1;
    if (!table || !c->t || !c->s || !c->sorted)
        fail(c, err, errlen, "out of memory for %d tensors", c->n);
    else if (read_at(c->fd, table, (size_t)c->table_size, hsize) != 0)
        fail(c, err, errlen, "read: %s", strerror(errno));
    else if (ckpt_xxh64(table, (size_t)c->table_size, 0) != c->table_sum)
        fail(c, err, errlen, "tensor table: checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")",
             c->table_sum, ckpt_xxh64(table, (size_t)c->table_size, 0));
    else
        rc = parse_table(c, table, hsize + c->table_size, err, errlen);
    free(table);
    return rc;
}

Ckpt *ckpt_open(const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char file[4096];
    if (S_ISDIR(sb.st_mode)) {
        char name[256];
        if (ckpt_read_latest(path, name, sizeof name, err, errlen) != 0) return NULL;
        if ((size_t)snprintf(file, sizeof file, "%s/%s", path, name) >= sizeof file) {
            snprintf(err, errlen, "%s: path too long", path);
            return NULL;
        }
    } else if ((size_t)snprintf(file, sizeof file, "%s", path) >= sizeof file) {
        snprintf(err, errlen, "%.200s...: path too long", path);
        return NULL;
    }
    Ckpt *c = calloc(1, sizeof *c);
    if (c) c->fd = -1;
    if (!c || !(c->path = strdup(file))) {
        snprintf(err, errlen, "%s: out of memory", file);
        free(c);
        return NULL;
    }
    c->fd = open(file, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        if (errno == ENOENT && S_ISDIR(sb.st_mode))
            snprintf(err, errlen, "%s/latest names '%s', which does not exist", path, file + strlen(path) + 1);
        else
            snprintf(err, errlen, "%s: %s", file, strerror(errno));
        ckpt_close(c);
        return NULL;
    }
    if (fstat(c->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", file);
        ckpt_close(c);
        return NULL;
    }
    c->file_size = (uint64_t)sb.st_size;
    if (load(c, err, errlen) != 0) {
        ckpt_close(c);
        return NULL;
    }
    return c;
}

const CkptState *ckpt_state(const Ckpt *c) { return &c->st; }
const char *ckpt_path(const Ckpt *c) { return c->path; }
int ckpt_ntensors(const Ckpt *c) { return c->n; }
const CkptTensor *ckpt_tensor(const Ckpt *c, int i) { return i >= 0 && i < c->n ? &c->t[i] : NULL; }
const CkptStored *ckpt_stored(const Ckpt *c, int i) { return i >= 0 && i < c->n ? &c->s[i] : NULL; }

int ckpt_find(const Ckpt *c, const char *name) {
    int lo = 0, hi = c->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, k = c->sorted[mid];
        int r = strcmp(c->t[k].name, name);
        if (r == 0) return k;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void ckpt_close(Ckpt *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    ckpt_frame_free(c);
    free(c->t);
    free(c->s);
    free(c->sorted);
    free(c->path);
    free(c);
}
