/* rec_read.c — the .rec reader: checks on open, random access by record.
 *
 * rec_open (a file, read with pread) and rec_open_mem (an image in memory)
 * share one path. Open checks, in order of trust: the magic, the version
 * (a newer one is named as such), the header size and CRC, each header
 * field, that the file size is exactly the end of the index, the index CRC,
 * and every index entry (blocks back to back from the header to the index,
 * record numbers contiguous, sizes within the hard limits, counts that add
 * up to the header's). After that, nothing a block claims can make the
 * reader read outside the file or allocate more than REC_MAX_BLOCK_RAW.
 *
 * rec_get finds the block by binary search on the first record numbers,
 * loads it unless it is the cached one (CRC of the compressed bytes, one
 * zstd frame that must decompress to exactly the raw size, then a walk over
 * the record headers that must tile the block exactly), then checks the
 * record's own CRC, decodes it into the reader's arrays (the prompt is
 * stored once and copied in front of both responses) and checks the pair
 * with rec_pair_check. When a block's CRC fails, the reader still tries to
 * decompress it and find the record whose CRC fails, so the message can name
 * the record. Every message starts with the file name.
 */
#include "rec_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

struct RecReader {
    char *name;
    int fd;                 /* -1 for an image in memory */
    const uint8_t *mem;
    uint64_t size;
    unsigned flags;
    RecHeader h;
    uint64_t index_offset, nblocks;
    RecBlock *blocks;
    ZSTD_DCtx *dctx;
    uint8_t *cbuf;          /* compressed bytes (file mode) */
    size_t ccap;
    uint8_t *raw;           /* the cached block, decompressed */
    size_t rcap;
    int64_t cached;         /* block in raw, -1 if none */
    uint32_t *roff;         /* offsets of the cached block's records, nrecords + 1 */
    size_t roff_cap;
    int32_t *seq[2];
    size_t seq_cap[2];
    RecSpan *sp[2];
    size_t sp_cap[2];
};

static int rerr(const RecReader *r, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rerr(const RecReader *r, char *err, size_t errlen, const char *fmt, ...) {
    int n = snprintf(err, errlen, "%s: ", r->name);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* n bytes at off (inside the file: the caller checked) into *out: a pointer
 * into the image, or into *buf (grown as needed) for a file. */
static int fetch(RecReader *r, uint64_t off, size_t n, uint8_t **buf, size_t *cap, const uint8_t **out, char *err,
                 size_t errlen) {
    if (r->mem) {
        *out = r->mem + off;
        return 0;
    }
    if (rec_grow((void **)buf, cap, n ? n : 1, 1)) return rerr(r, err, errlen, "out of memory");
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(r->fd, *buf + done, n - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return rerr(r, err, errlen, "read at offset %llu failed: %s", (unsigned long long)(off + done),
                        strerror(errno));
        if (k == 0)
            return rerr(r, err, errlen, "unexpected end of file at offset %llu (the file shrank while open)",
                        (unsigned long long)(off + done));
        done += (size_t)k;
    }
    *out = *buf;
    return 0;
}

/* ---- open ------------------------------------------------------------------ */

static int check_header(RecReader *r, const uint8_t *hb, size_t have, RecFileHeader *fh, char *err, size_t errlen) {
    static const uint8_t magic[8] = {'D', 'P', 'O', 'C', 'R', 'E', 'C', 0};
    if (memcmp(hb, magic, have < 8 ? have : 8) != 0) return rerr(r, err, errlen, "not a .rec file (bad magic)");
    if (have < 12) return rerr(r, err, errlen, "truncated header (%zu bytes, need %d)", have, REC_HEADER_SIZE);
    uint32_t version = rec_get32(hb + 8);
    if (version > REC_VERSION)
        return rerr(r, err, errlen, ".rec version %u is newer than this reader (version %d): update dpoc", version,
                    REC_VERSION);
    if (version == 0) return rerr(r, err, errlen, ".rec version 0 is not valid (corrupt header)");
    if (have < REC_HEADER_SIZE)
        return rerr(r, err, errlen, "truncated header (%zu bytes, need %d)", have, REC_HEADER_SIZE);
    rec_header_decode(hb, fh);
    if (!(r->flags & REC_OPEN_NO_CHECKSUMS) && rec_crc32c(0, hb, REC_HEADER_CRC_AT) != fh->header_crc)
        return rerr(r, err, errlen, "header checksum mismatch (the header is corrupt)");
    const RecHeader *h = &fh->h;
    if (fh->flags & ~(uint32_t)REC_FLAG_HAS_REF)
        return rerr(r, err, errlen, "header: unknown flags 0x%x", fh->flags & ~(uint32_t)REC_FLAG_HAS_REF);
    size_t tl = strnlen(h->template_name, REC_TEMPLATE_MAX);
    if (tl == REC_TEMPLATE_MAX) return rerr(r, err, errlen, "header: template name is not NUL-terminated");
    for (size_t i = 0; i < REC_TEMPLATE_MAX; i++) {
        unsigned char c = (unsigned char)h->template_name[i];
        if (i < tl && (c < 0x20 || c > 0x7e))
            return rerr(r, err, errlen, "header: template name has a byte that is not printable ASCII");
        if (i > tl && c) return rerr(r, err, errlen, "header: template name padding is not zero");
    }
    if (h->max_length > REC_MAX_LEN)
        return rerr(r, err, errlen, "header: max_length %u over the limit %d", h->max_length, REC_MAX_LEN);
    if (h->vocab_size < 1) return rerr(r, err, errlen, "header: vocab_size %d (must be at least 1)", h->vocab_size);
    if (!h->has_ref && h->ref_weights_hash)
        return rerr(r, err, errlen, "header: reference weights hash set without reference log-probs");
    if (fh->index_offset < REC_HEADER_SIZE)
        return rerr(r, err, errlen, "header: index offset %llu inside the header",
                    (unsigned long long)fh->index_offset);
    if (fh->index_offset > r->size ||
        fh->nblocks > (r->size - fh->index_offset) / REC_INDEX_ENTRY_SIZE ||
        r->size - fh->index_offset != fh->nblocks * REC_INDEX_ENTRY_SIZE)
        return rerr(r, err, errlen,
                    "file size %llu does not match the header (an index of %llu blocks at offset %llu): "
                    "truncated or extended",
                    (unsigned long long)r->size, (unsigned long long)fh->nblocks,
                    (unsigned long long)fh->index_offset);
    return 0;
}

static int check_index(RecReader *r, const uint8_t *ib, const RecFileHeader *fh, char *err, size_t errlen) {
    if (!(r->flags & REC_OPEN_NO_CHECKSUMS) &&
        rec_crc32c(0, ib, (size_t)fh->nblocks * REC_INDEX_ENTRY_SIZE) != fh->index_crc)
        return rerr(r, err, errlen, "index checksum mismatch (the index is corrupt)");
    uint64_t off = REC_HEADER_SIZE, first = 0, ntok = 0;
    for (uint64_t k = 0; k < fh->nblocks; k++) {
        RecBlock *b = &r->blocks[k];
        rec_block_decode(ib + k * REC_INDEX_ENTRY_SIZE, b);
        unsigned long long K = (unsigned long long)k;
        if (b->offset != off)
            return rerr(r, err, errlen, "index: block %llu at offset %llu, expected %llu", K,
                        (unsigned long long)b->offset, (unsigned long long)off);
        uint64_t cmax = fh->index_offset - off; /* up to the index, and no more than any frame of a block */
        if (cmax > ZSTD_COMPRESSBOUND(REC_MAX_BLOCK_RAW)) cmax = ZSTD_COMPRESSBOUND(REC_MAX_BLOCK_RAW);
        if (b->csize == 0 || b->csize > cmax)
            return rerr(r, err, errlen, "index: block %llu (offset %llu) has compressed size %u, outside [1, %llu]", K,
                        (unsigned long long)off, b->csize, (unsigned long long)cmax);
        if (b->rsize < REC_RECORD_MIN || b->rsize > REC_MAX_BLOCK_RAW)
            return rerr(r, err, errlen, "index: block %llu has raw size %u, outside [%d, %d]", K, b->rsize,
                        REC_RECORD_MIN, REC_MAX_BLOCK_RAW);
        if (b->nrecords == 0 || b->nrecords > b->rsize / REC_RECORD_MIN)
            return rerr(r, err, errlen, "index: block %llu claims %u records in %u bytes", K, b->nrecords, b->rsize);
        if (b->first != first)
            return rerr(r, err, errlen, "index: block %llu starts at record %llu, expected %llu", K,
                        (unsigned long long)b->first, (unsigned long long)first);
        if (b->ntokens > b->rsize / 2)
            return rerr(r, err, errlen, "index: block %llu claims %llu tokens in %u bytes", K,
                        (unsigned long long)b->ntokens, b->rsize);
        off += b->csize;
        first += b->nrecords;
        ntok += b->ntokens;
    }
    if (off != fh->index_offset)
        return rerr(r, err, errlen, "index: the blocks end at offset %llu but the index starts at %llu",
                    (unsigned long long)off, (unsigned long long)fh->index_offset);
    if (first != fh->h.npairs)
        return rerr(r, err, errlen, "header says %llu pairs, the index holds %llu", (unsigned long long)fh->h.npairs,
                    (unsigned long long)first);
    if (ntok != fh->h.ntokens)
        return rerr(r, err, errlen, "header says %llu tokens, the index holds %llu", (unsigned long long)fh->h.ntokens,
                    (unsigned long long)ntok);
    return 0;
}

static RecReader *open_common(RecReader *r, char *err, size_t errlen) {
    uint8_t hb[REC_HEADER_SIZE];
    size_t have = r->size < REC_HEADER_SIZE ? (size_t)r->size : REC_HEADER_SIZE;
    const uint8_t *p;
    RecFileHeader fh;
    uint8_t *ibuf = NULL;
    size_t icap = 0;
    if (fetch(r, 0, have, &r->cbuf, &r->ccap, &p, err, errlen)) goto bad;
    memcpy(hb, p, have);
    if (check_header(r, hb, have, &fh, err, errlen)) goto bad;
    r->h = fh.h;
    r->index_offset = fh.index_offset;
    r->nblocks = fh.nblocks;
    size_t isz = (size_t)fh.nblocks * REC_INDEX_ENTRY_SIZE;
    r->blocks = malloc(fh.nblocks ? (size_t)fh.nblocks * sizeof *r->blocks : 1);
    r->dctx = ZSTD_createDCtx();
    if (!r->blocks || !r->dctx) {
        rerr(r, err, errlen, "out of memory");
        goto bad;
    }
    if (fetch(r, fh.index_offset, isz, &ibuf, &icap, &p, err, errlen)) goto bad;
    if (check_index(r, p, &fh, err, errlen)) goto bad;
    free(ibuf);
    return r;
bad:
    free(ibuf);
    rec_close(r);
    return NULL;
}

static RecReader *reader_new(const char *name, char *err, size_t errlen) {
    RecReader *r = calloc(1, sizeof *r);
    if (r) r->name = strdup(name);
    if (!r || !r->name) {
        snprintf(err, errlen, "%s: out of memory", name);
        free(r);
        return NULL;
    }
    r->fd = -1;
    r->cached = -1;
    return r;
}

RecReader *rec_open(const char *path, char *err, size_t errlen) {
    RecReader *r = reader_new(path, err, errlen);
    if (!r) return NULL;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (r->fd < 0) {
        rerr(r, err, errlen, "cannot open: %s", strerror(errno));
    } else if (fstat(r->fd, &st)) {
        rerr(r, err, errlen, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rerr(r, err, errlen, "not a regular file");
    } else {
        r->size = (uint64_t)st.st_size;
        return open_common(r, err, errlen);
    }
    rec_close(r);
    return NULL;
}

RecReader *rec_open_mem(const void *data, size_t len, const char *name, unsigned flags, char *err, size_t errlen) {
    RecReader *r = reader_new(name, err, errlen);
    if (!r) return NULL;
    static const uint8_t empty[1];
    r->mem = data ? data : empty;
    r->size = len;
    r->flags = flags;
    return open_common(r, err, errlen);
}

const RecHeader *rec_header(const RecReader *r) { return &r->h; }

void rec_close(RecReader *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->blocks);
    free(r->cbuf);
    free(r->raw);
    free(r->roff);
    for (int s = 0; s < 2; s++) {
        free(r->seq[s]);
        free(r->sp[s]);
    }
    free(r->name);
    free(r);
}

/* ---- blocks ---------------------------------------------------------------- */

/* Walks the record headers of the decompressed block k (rsize bytes in
 * r->raw): each must be inside the limits and the records must tile the
 * block. Fills r->roff. On failure *bad_rec is the record at fault (or
 * UINT64_MAX for a block-level problem) and msg says what is wrong; the
 * offsets of the records before it (and where it starts) are set. */
static int walk_block(RecReader *r, uint64_t k, uint64_t *bad_rec, char *msg, size_t msglen) {
    const RecBlock *b = &r->blocks[k];
    static const char *const nm[2] = {"chosen", "rejected"};
    size_t pos = 0;
    uint64_t ntok = 0;
    *bad_rec = UINT64_MAX;
    if (rec_grow((void **)&r->roff, &r->roff_cap, (size_t)b->nrecords + 1, sizeof *r->roff)) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    for (uint32_t j = 0; j < b->nrecords; j++) {
        *bad_rec = b->first + j;
        r->roff[j] = (uint32_t)pos; /* record j - 1 ends here even if record j is bad */
        if (b->rsize - pos < REC_RECORD_MIN) {
            snprintf(msg, msglen, "runs past the end of its block");
            return -1;
        }
        const uint8_t *q = r->raw + pos;
        uint32_t flags = rec_get32(q), prompt_len = rec_get32(q + 4);
        uint32_t len[2] = {rec_get32(q + 8), rec_get32(q + 12)}, nspans[2] = {rec_get32(q + 16), rec_get32(q + 20)};
        if (flags & ~(uint32_t)REC_FLAG_HAS_REF) {
            snprintf(msg, msglen, "unknown flags 0x%x", flags & ~(uint32_t)REC_FLAG_HAS_REF);
            return -1;
        }
        for (int s = 0; s < 2; s++) {
            if (len[s] > REC_MAX_LEN) {
                snprintf(msg, msglen, "%s length %u over the limit %d", nm[s], len[s], REC_MAX_LEN);
                return -1;
            }
            if (prompt_len > len[s]) {
                snprintf(msg, msglen, "prompt_len %u over the %s length %u", prompt_len, nm[s], len[s]);
                return -1;
            }
            if (nspans[s] > REC_MAX_SPANS) {
                snprintf(msg, msglen, "%s has %u spans (limit %d)", nm[s], nspans[s], REC_MAX_SPANS);
                return -1;
            }
        }
        size_t size = rec_record_size(prompt_len, len, nspans, flags & REC_FLAG_HAS_REF);
        if (size > b->rsize - pos) {
            snprintf(msg, msglen, "runs past the end of its block (%zu bytes at %zu of %u)", size, pos, b->rsize);
            return -1;
        }
        pos += size;
        ntok += (uint64_t)len[0] + len[1];
    }
    r->roff[b->nrecords] = (uint32_t)pos;
    *bad_rec = UINT64_MAX;
    if (pos != b->rsize) {
        snprintf(msg, msglen, "%zu bytes after the last record", b->rsize - pos);
        return -1;
    }
    if (ntok != b->ntokens) {
        snprintf(msg, msglen, "holds %llu tokens, the index says %llu", (unsigned long long)ntok,
                 (unsigned long long)b->ntokens);
        return -1;
    }
    return 0;
}

static int record_crc_ok(const RecReader *r, uint32_t j) {
    const uint8_t *q = r->raw + r->roff[j];
    size_t n = r->roff[j + 1] - r->roff[j] - 4;
    return rec_crc32c(0, q, n) == rec_get32(q + n);
}

/* Decompresses block k into r->raw. 0, or -1 with a zstd message in msg. */
static int inflate_block(RecReader *r, const RecBlock *b, const uint8_t *src, char *msg, size_t msglen) {
    if (rec_grow((void **)&r->raw, &r->rcap, b->rsize, 1)) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    size_t n = ZSTD_decompressDCtx(r->dctx, r->raw, b->rsize, src, b->csize);
    if (ZSTD_isError(n)) {
        snprintf(msg, msglen, "zstd: %s", ZSTD_getErrorName(n));
        return -1;
    }
    if (n != b->rsize) {
        snprintf(msg, msglen, "decompressed to %zu bytes, the index says %u", n, b->rsize);
        return -1;
    }
    return 0;
}

static int load_block(RecReader *r, uint64_t k, char *err, size_t errlen) {
    const RecBlock *b = &r->blocks[k];
    unsigned long long K = (unsigned long long)k, O = (unsigned long long)b->offset;
    unsigned long long R0 = (unsigned long long)b->first, R1 = R0 + b->nrecords - 1;
    const uint8_t *src;
    char msg[200];
    uint64_t bad;
    r->cached = -1;
    if (fetch(r, b->offset, b->csize, &r->cbuf, &r->ccap, &src, err, errlen)) return -1;
    if (!(r->flags & REC_OPEN_NO_CHECKSUMS) && rec_crc32c(0, src, b->csize) != b->crc) {
        /* name the record if the damaged frame still decodes */
        if (inflate_block(r, b, src, msg, sizeof msg) == 0 && (walk_block(r, k, &bad, msg, sizeof msg) == 0 ||
                                                               r->roff_cap > b->nrecords)) {
            /* the records the walk got through: the first with a bad CRC; else the one it stopped at */
            uint64_t upto = bad == UINT64_MAX ? b->nrecords : bad - b->first;
            for (uint32_t j = 0; j < upto; j++)
                if (!record_crc_ok(r, j))
                    return rerr(r, err, errlen, "record %llu: checksum mismatch (block %llu at offset %llu)",
                                R0 + j, K, O);
            if (bad != UINT64_MAX)
                return rerr(r, err, errlen, "record %llu: checksum mismatch (block %llu at offset %llu)",
                            (unsigned long long)bad, K, O);
        }
        return rerr(r, err, errlen, "block %llu at offset %llu (records %llu..%llu): checksum mismatch", K, O, R0, R1);
    }
    if (inflate_block(r, b, src, msg, sizeof msg))
        return rerr(r, err, errlen, "block %llu at offset %llu (records %llu..%llu): %s", K, O, R0, R1, msg);
    if (walk_block(r, k, &bad, msg, sizeof msg)) {
        if (bad != UINT64_MAX)
            return rerr(r, err, errlen, "record %llu: %s (block %llu at offset %llu)", (unsigned long long)bad, msg, K,
                        O);
        return rerr(r, err, errlen, "block %llu at offset %llu (records %llu..%llu): %s", K, O, R0, R1, msg);
    }
    r->cached = (int64_t)k;
    return 0;
}

/* ---- records --------------------------------------------------------------- */

int rec_get(RecReader *r, uint64_t i, RecPair *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (i >= r->h.npairs)
        return rerr(r, err, errlen, "record %llu out of range (%llu records)", (unsigned long long)i,
                    (unsigned long long)r->h.npairs);
    uint64_t lo = 0, hi = r->nblocks - 1; /* the last block whose first record is <= i */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (r->blocks[mid].first <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (r->cached != (int64_t)lo && load_block(r, lo, err, errlen)) return -1;
    const RecBlock *b = &r->blocks[lo];
    unsigned long long I = (unsigned long long)i, K = (unsigned long long)lo, O = (unsigned long long)b->offset;
    uint32_t j = (uint32_t)(i - b->first);
    if (!(r->flags & REC_OPEN_NO_CHECKSUMS) && !record_crc_ok(r, j))
        return rerr(r, err, errlen, "record %llu: checksum mismatch (block %llu at offset %llu)", I, K, O);
    const uint8_t *q = r->raw + r->roff[j];
    p->has_ref = (rec_get32(q) & REC_FLAG_HAS_REF) != 0;
    p->prompt_len = rec_get32(q + 4);
    for (int s = 0; s < 2; s++) {
        p->len[s] = rec_get32(q + 8 + 4 * s);
        p->nspans[s] = rec_get32(q + 16 + 4 * s);
    }
    q += REC_RECORD_FIXED;
    if (p->has_ref)
        for (int s = 0; s < 2; s++, q += 4) {
            uint32_t bits = rec_get32(q);
            memcpy(&p->ref_logps[s], &bits, 4);
        }
    for (int s = 0; s < 2; s++)
        if (rec_grow((void **)&r->seq[s], &r->seq_cap[s], p->len[s] ? p->len[s] : 1, sizeof(int32_t)) ||
            rec_grow((void **)&r->sp[s], &r->sp_cap[s], p->nspans[s] ? p->nspans[s] : 1, sizeof(RecSpan)))
            return rerr(r, err, errlen, "out of memory");
    for (uint32_t t = 0; t < p->prompt_len; t++, q += 4) r->seq[0][t] = r->seq[1][t] = (int32_t)rec_get32(q);
    for (int s = 0; s < 2; s++)
        for (uint32_t t = p->prompt_len; t < p->len[s]; t++, q += 4) r->seq[s][t] = (int32_t)rec_get32(q);
    for (int s = 0; s < 2; s++)
        for (uint32_t k = 0; k < p->nspans[s]; k++, q += 8) {
            r->sp[s][k].start = rec_get32(q);
            r->sp[s][k].end = rec_get32(q + 4);
        }
    for (int s = 0; s < 2; s++) {
        p->ids[s] = r->seq[s];
        p->spans[s] = r->sp[s];
    }
    char msg[200];
    if (rec_pair_check(&r->h, p, msg, sizeof msg))
        return rerr(r, err, errlen, "record %llu: %s (block %llu at offset %llu)", I, msg, K, O);
    return 0;
}
