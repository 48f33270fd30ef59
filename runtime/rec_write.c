/* rec_write.c — the streaming .rec writer.
 *
 * rec_writer_open creates PATH.tmp and writes a header-sized placeholder of
 * zeros. rec_writer_add checks a pair (rec_pair_check), encodes it at the end
 * of an in-memory block and, once the block holds REC_BLOCK_TARGET raw bytes,
 * compresses it into one zstd frame (level 3), appends the frame to the file
 * and remembers its index entry. A record never straddles two blocks: if it
 * does not fit in the current block, that block is written first; a record
 * larger than the target gets a block of its own. rec_writer_close writes
 * the last block, then the index, then the real header over the
 * placeholder, fsyncs, closes, renames PATH.tmp to PATH and fsyncs the
 * directory, so PATH is either the old file or the complete new one. Every
 * failure path (and rec_writer_abort) unlinks PATH.tmp. With the same libzstd
 * and the same pairs the output is the same, byte for byte.
 */
#include "rec_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

struct RecWriter {
    char *path, *tmp;
    int fd;
    RecHeader h;
    int auto_vocab;          /* vocab_size was 0: store max id + 1 */
    int32_t max_id;
    size_t target;
    ZSTD_CCtx *cctx;
    uint8_t *blk;            /* raw bytes of the block being filled */
    size_t blk_len, blk_cap;
    uint32_t blk_nrec;
    uint64_t blk_ntok;
    uint8_t *cbuf;           /* compressed frame */
    size_t ccap;
    RecBlock *idx;
    size_t nidx, idx_cap;
    uint64_t off;            /* where the next block goes */
    int failed;              /* an I/O or memory error happened */
    char failmsg[256];
};

/* Records the first I/O or memory failure; later calls report it. */
static int fail(RecWriter *w, char *err, size_t errlen, const char *what) {
    if (!w->failed) {
        snprintf(w->failmsg, sizeof w->failmsg, "%s", what);
        w->failed = 1;
    }
    snprintf(err, errlen, "%s", w->failmsg);
    return -1;
}

static int fail_errno(RecWriter *w, char *err, size_t errlen, const char *file, const char *op) {
    char m[256];
    snprintf(m, sizeof m, "%s: %s failed: %s", file, op, strerror(errno));
    return fail(w, err, errlen, m);
}

static int fail_oom(RecWriter *w, char *err, size_t errlen) {
    char m[256];
    snprintf(m, sizeof m, "%s: out of memory", w->path);
    return fail(w, err, errlen, m);
}

static int write_at(RecWriter *w, uint64_t off, const void *buf, size_t n, char *err, size_t errlen) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = pwrite(w->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return fail_errno(w, err, errlen, w->tmp, "write");
        }
        p += k, n -= (size_t)k, off += (uint64_t)k;
    }
    return 0;
}

static int flush_block(RecWriter *w, char *err, size_t errlen) {
    if (!w->blk_nrec) return 0;
    size_t bound = ZSTD_compressBound(w->blk_len);
    if (rec_grow((void **)&w->cbuf, &w->ccap, bound, 1)) return fail_oom(w, err, errlen);
    size_t cs = ZSTD_compress2(w->cctx, w->cbuf, w->ccap, w->blk, w->blk_len);
    if (ZSTD_isError(cs)) {
        char m[256];
        snprintf(m, sizeof m, "%s: zstd: %s", w->path, ZSTD_getErrorName(cs));
        return fail(w, err, errlen, m);
    }
    if (rec_grow((void **)&w->idx, &w->idx_cap, w->nidx + 1, sizeof *w->idx)) return fail_oom(w, err, errlen);
    RecBlock *b = &w->idx[w->nidx];
    b->offset = w->off;
    b->first = w->h.npairs - w->blk_nrec;
    b->nrecords = w->blk_nrec;
    b->csize = (uint32_t)cs;
    b->rsize = (uint32_t)w->blk_len;
    b->crc = rec_crc32c(0, w->cbuf, cs);
    b->ntokens = w->blk_ntok;
    if (write_at(w, w->off, w->cbuf, cs, err, errlen)) return -1;
    w->nidx++;
    w->off += cs;
    w->blk_len = 0;
    w->blk_nrec = 0;
    w->blk_ntok = 0;
    return 0;
}

static void writer_free(RecWriter *w) {
    if (w->fd >= 0) close(w->fd);
    ZSTD_freeCCtx(w->cctx);
    free(w->blk);
    free(w->cbuf);
    free(w->idx);
    free(w->path);
    free(w->tmp);
    free(w);
}

RecWriter *rec_writer_open(const char *path, const RecHeader *h, char *err, size_t errlen) {
    size_t tl = strnlen(h->template_name, REC_TEMPLATE_MAX);
    if (tl == REC_TEMPLATE_MAX) {
        snprintf(err, errlen, "%s: template name longer than %d bytes", path, REC_TEMPLATE_MAX - 1);
        return NULL;
    }
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)h->template_name[i] < 0x20 || (unsigned char)h->template_name[i] > 0x7e) {
            snprintf(err, errlen, "%s: template name has a byte that is not printable ASCII", path);
            return NULL;
        }
    if (h->max_length > REC_MAX_LEN) {
        snprintf(err, errlen, "%s: max_length %u over the limit %d", path, h->max_length, REC_MAX_LEN);
        return NULL;
    }
    if (h->vocab_size < 0) {
        snprintf(err, errlen, "%s: vocab_size %d is negative", path, h->vocab_size);
        return NULL;
    }
    RecWriter *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    w->fd = -1;
    w->h = *h;
    memset(w->h.template_name, 0, REC_TEMPLATE_MAX); /* canonical zero padding */
    memcpy(w->h.template_name, h->template_name, tl);
    w->h.version = REC_VERSION;
    w->h.npairs = w->h.ntokens = 0;
    w->h.has_ref = !!h->has_ref;
    if (!w->h.has_ref) w->h.ref_weights_hash = 0;
    w->auto_vocab = h->vocab_size == 0;
    w->max_id = -1;
    w->target = REC_BLOCK_TARGET;
    w->off = REC_HEADER_SIZE;
    size_t pl = strlen(path);
    w->path = malloc(pl + 1);
    w->tmp = malloc(pl + 5);
    w->cctx = ZSTD_createCCtx();
    if (!w->path || !w->tmp || !w->cctx ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, REC_ZSTD_LEVEL))) {
        snprintf(err, errlen, "%s: out of memory", path);
        writer_free(w);
        return NULL;
    }
    memcpy(w->path, path, pl + 1);
    memcpy(w->tmp, path, pl);
    memcpy(w->tmp + pl, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", w->tmp, strerror(errno));
        writer_free(w);
        return NULL;
    }
    uint8_t zero[REC_HEADER_SIZE] = {0};
    if (write_at(w, 0, zero, sizeof zero, err, errlen)) {
        rec_writer_abort(w);
        return NULL;
    }
    return w;
}

void rec_writer_set_block_target(RecWriter *w, size_t bytes) {
    if (bytes >= 1 && bytes <= REC_MAX_BLOCK_RAW) w->target = bytes;
}

int rec_writer_add(RecWriter *w, const RecPair *p, char *err, size_t errlen) {
    if (w->failed) return fail(w, err, errlen, NULL);
    char msg[256];
    RecPair q = *p;
    q.has_ref = !!p->has_ref;
    if (rec_pair_check(&w->h, &q, msg, sizeof msg)) {
        snprintf(err, errlen, "%s: pair %llu: %s", w->path, (unsigned long long)w->h.npairs, msg);
        return -1;
    }
    size_t size = rec_record_size(q.prompt_len, q.len, q.nspans, q.has_ref);
    if (w->blk_len && w->blk_len + size > w->target && flush_block(w, err, errlen)) return -1;
    if (rec_grow((void **)&w->blk, &w->blk_cap, w->blk_len + size, 1)) return fail_oom(w, err, errlen);
    rec_record_encode(&q, w->blk + w->blk_len);
    for (int s = 0; s < 2; s++)
        for (uint32_t t = 0; t < q.len[s]; t++)
            if (q.ids[s][t] > w->max_id) w->max_id = q.ids[s][t];
    w->blk_len += size;
    w->blk_nrec++;
    w->blk_ntok += (uint64_t)q.len[0] + q.len[1];
    w->h.npairs++;
    w->h.ntokens += (uint64_t)q.len[0] + q.len[1];
    if (w->blk_len >= w->target) return flush_block(w, err, errlen);
    return 0;
}

/* fsync of the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc && errno == EINVAL) rc = 0; /* a file system that cannot sync directories */
    close(fd);
    return rc;
}

int rec_writer_close(RecWriter *w, char *err, size_t errlen) {
    if (w->failed) {
        fail(w, err, errlen, NULL);
        rec_writer_abort(w);
        return -1;
    }
    if (flush_block(w, err, errlen)) goto bad;
    if (w->auto_vocab) w->h.vocab_size = w->max_id + 1 > 0 ? w->max_id + 1 : 1;
    size_t isz = w->nidx * REC_INDEX_ENTRY_SIZE;
    uint8_t *ibuf = malloc(isz ? isz : 1);
    if (!ibuf) {
        fail_oom(w, err, errlen);
        goto bad;
    }
    for (size_t k = 0; k < w->nidx; k++) rec_block_encode(&w->idx[k], ibuf + k * REC_INDEX_ENTRY_SIZE);
    RecFileHeader fh = {.h = w->h, .flags = w->h.has_ref ? REC_FLAG_HAS_REF : 0,
                        .index_offset = w->off, .nblocks = w->nidx, .index_crc = rec_crc32c(0, ibuf, isz)};
    int rc = write_at(w, w->off, ibuf, isz, err, errlen);
    free(ibuf);
    if (rc) goto bad;
    uint8_t hb[REC_HEADER_SIZE];
    rec_header_encode(&fh, hb);
    if (write_at(w, 0, hb, sizeof hb, err, errlen)) goto bad;
    if (fsync(w->fd)) {
        fail_errno(w, err, errlen, w->tmp, "fsync");
        goto bad;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd)) {
        fail_errno(w, err, errlen, w->tmp, "close");
        goto bad;
    }
    if (rename(w->tmp, w->path)) {
        snprintf(err, errlen, "%s: rename from %s failed: %s", w->path, w->tmp, strerror(errno));
        goto bad;
    }
    if (sync_dir(w->path)) {
        /* the new file is in place; only its durability is in doubt */
        snprintf(err, errlen, "%s: fsync of its directory failed: %s", w->path, strerror(errno));
        writer_free(w);
        return -1;
    }
    writer_free(w);
    return 0;
bad:
    rec_writer_abort(w);
    return -1;
}

void rec_writer_abort(RecWriter *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    unlink(w->tmp);
    writer_free(w);
}
