/* ckpt_frame.c — reading and checking one tensor's zstd frame.
 *
 * The frame is read in chunks (at most 1 MiB) with pread. Every chunk is
 * hashed for the compressed checksum and fed to a zstd stream decoder whose
 * output goes either straight into the caller's buffer (ckpt_read_tensor)
 * or into a small scratch buffer that is hashed and reused
 * (ckpt_verify_tensor), so verifying never needs the tensor's full size in
 * memory. The decoder must end its single frame exactly at the end of the
 * data and produce exactly the raw size; the raw bytes are hashed as they
 * come out. When several things are wrong, the compressed checksum is
 * reported first (it says the file was damaged), then a zstd error, then
 * sizes, then the raw checksum.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "ckpt_internal.h"

#define CHUNK ((size_t)1 << 20)

typedef struct Decode {
    Ckpt *c;
    int i;
    unsigned char *dst; /* NULL: verify into the scratch buffer */
    uint64_t produced;  /* raw bytes out so far */
    CkptXxh64 raw, comp;
    int done;            /* the frame has ended */
    const char *problem; /* first decoding problem */
    char zmsg[160];
} Decode;

static int tensor_fail(Ckpt *c, int i, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int tensor_fail(Ckpt *c, int i, char *err, size_t errlen, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: tensor '%s': %s", c->path, c->t[i].name, msg);
    return -1;
}

static int ensure_buffers(Ckpt *c, uint64_t csize, int scratch) {
    if (!c->dctx && !(c->dctx = ZSTD_createDCtx())) return -1;
    size_t want = csize < CHUNK ? (size_t)csize : CHUNK;
    if (c->incap < want) {
        free(c->in);
        c->incap = 0;
        if (!(c->in = malloc(want))) return -1;
        c->incap = want;
    }
    if (scratch && !c->out) {
        c->outcap = ZSTD_DStreamOutSize();
        if (!(c->out = malloc(c->outcap))) return -1;
    }
    return 0;
}

/* Feeds one chunk to the decoder. Stops at the first problem. */
static void feed(Decode *d, const unsigned char *p, size_t len) {
    Ckpt *c = d->c;
    uint64_t rsize = c->s[d->i].rsize;
    ZSTD_inBuffer in = {p, len, 0};
    while (in.pos < in.size && !d->problem) {
        if (d->done) {
            d->problem = "data continues after the end of the zstd frame";
            return;
        }
        ZSTD_outBuffer out;
        if (d->dst)
            out = (ZSTD_outBuffer){d->dst, (size_t)rsize, (size_t)d->produced};
        else
            out = (ZSTD_outBuffer){c->out, c->outcap, 0};
        size_t before_in = in.pos, before_out = out.pos;
        size_t r = ZSTD_decompressStream(c->dctx, &out, &in);
        if (ZSTD_isError(r)) {
            snprintf(d->zmsg, sizeof d->zmsg, "zstd: %s", ZSTD_getErrorName(r));
            d->problem = d->zmsg;
            return;
        }
        size_t made = out.pos - before_out;
        ckpt_xxh64_update(&d->raw, (unsigned char *)out.dst + before_out, made);
        d->produced += made;
        if (d->produced > rsize) {
            d->problem = "the zstd frame holds more bytes than the raw size";
            return;
        }
        if (r == 0) d->done = 1;
        if (!d->done && in.pos == before_in && made == 0) {
            d->problem = "the zstd frame holds more bytes than the raw size";
            return;
        }
    }
}

static int decode(Ckpt *c, int i, void *dst, char *err, size_t errlen) {
    const CkptStored *s = &c->s[i];
    if (ensure_buffers(c, s->csize, dst == NULL) != 0) return tensor_fail(c, i, err, errlen, "out of memory");
    if (ZSTD_isError(ZSTD_DCtx_reset(c->dctx, ZSTD_reset_session_only)))
        return tensor_fail(c, i, err, errlen, "zstd: cannot reset the decoder");
    Decode d = {.c = c, .i = i, .dst = dst};
    ckpt_xxh64_init(&d.raw, 0);
    ckpt_xxh64_init(&d.comp, 0);
    for (uint64_t done = 0; done < s->csize;) {
        size_t len = s->csize - done < c->incap ? (size_t)(s->csize - done) : c->incap;
        ssize_t r = pread(c->fd, c->in, len, (off_t)(s->offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return tensor_fail(c, i, err, errlen, "read at byte %" PRIu64 ": %s", s->offset + done,
                               r < 0 ? strerror(errno) : "unexpected end of file");
        if (done == 0) {
            unsigned long long fcs = ZSTD_getFrameContentSize(c->in, (size_t)r);
            if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != ZSTD_CONTENTSIZE_ERROR && fcs != s->rsize)
                d.problem = "the zstd frame header's content size differs from the raw size";
        }
        ckpt_xxh64_update(&d.comp, c->in, (size_t)r);
        if (!d.problem) feed(&d, c->in, (size_t)r);
        done += (uint64_t)r;
    }
    uint64_t comp = ckpt_xxh64_digest(&d.comp);
    if (comp != s->comp_sum)
        return tensor_fail(c, i, err, errlen,
                           "checksum mismatch in the compressed bytes (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64
                           ")",
                           s->comp_sum, comp);
    if (d.problem) return tensor_fail(c, i, err, errlen, "%s", d.problem);
    if (!d.done) return tensor_fail(c, i, err, errlen, "the zstd frame is incomplete");
    if (d.produced != s->rsize)
        return tensor_fail(c, i, err, errlen, "the zstd frame holds %" PRIu64 " bytes, the raw size is %" PRIu64,
                           d.produced, s->rsize);
    uint64_t raw = ckpt_xxh64_digest(&d.raw);
    if (raw != s->raw_sum)
        return tensor_fail(c, i, err, errlen,
                           "checksum mismatch in the raw bytes (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")",
                           s->raw_sum, raw);
    return 0;
}

int ckpt_read_tensor(Ckpt *c, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    if (i < 0 || i >= c->n) {
        snprintf(err, errlen, "%s: no tensor %d (it has %d)", c->path, i, c->n);
        return -1;
    }
    if (nbytes != c->t[i].nbytes)
        return tensor_fail(c, i, err, errlen, "destination holds %zu bytes, the tensor has %zu", nbytes,
                           c->t[i].nbytes);
    static unsigned char none;
    return decode(c, i, nbytes ? dst : &none, err, errlen);
}

int ckpt_verify_tensor(Ckpt *c, int i, char *err, size_t errlen) {
    if (i < 0 || i >= c->n) {
        snprintf(err, errlen, "%s: no tensor %d (it has %d)", c->path, i, c->n);
        return -1;
    }
    return decode(c, i, NULL, err, errlen);
}

void ckpt_frame_free(Ckpt *c) {
    ZSTD_freeDCtx(c->dctx);
    free(c->in);
    free(c->out);
}
