/* fuzz_rec.c — libFuzzer target for the .rec reader (runtime/rec_read.c).
 *
 * Each input is opened in memory twice (rec_open_mem): once as a reader
 * would see it, and once with every CRC check off, so that mutations get
 * past the checksums into the header, index and record checks (the way
 * libpng's fuzzer ignores CRCs). Records are read forwards, then a few
 * backwards to move the block cache around. A failure must come with a
 * message starting with the file name; a success must return a pair that
 * obeys every rule of rec.h (checked here independently), else abort().
 *
 * An input starting with "RECRAWB1" is instead the raw (decompressed)
 * contents of one block, which the target wraps into a file with valid
 * checksums and one zstd frame:
 *   "RECRAWB1" u32 header flags, i32 vocab_size, u32 max_length,
 *   u32 nrecords, u64 ntokens, then the block's bytes (at most 1 MiB).
 * Seeds of both kinds are in corpus/rec/ (written by `test_rec corpus DIR`).
 */
#include "runtime/rec_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static void check_pair(const RecHeader *h, const RecPair *p) {
    if (!p->has_ref != !h->has_ref) abort();
    for (int s = 0; s < 2; s++) {
        if (p->prompt_len > p->len[s] || p->len[s] > REC_MAX_LEN) abort();
        if (h->max_length && p->len[s] > h->max_length) abort();
        if (p->nspans[s] > REC_MAX_SPANS || !p->ids[s] || !p->spans[s]) abort();
        for (uint32_t t = 0; t < p->len[s]; t++) {
            if (p->ids[s][t] < 0 || p->ids[s][t] >= h->vocab_size) abort();
            if (t < p->prompt_len && p->ids[s][t] != p->ids[1 - s][t]) abort();
        }
        uint32_t prev_end = 0;
        for (uint32_t k = 0; k < p->nspans[s]; k++) {
            RecSpan sp = p->spans[s][k];
            if (sp.start < prev_end || sp.start > sp.end || sp.end > p->len[s]) abort();
            prev_end = sp.end;
        }
    }
}

static void get_one(RecReader *r, uint64_t i) {
    char err[512] = "";
    RecPair p;
    if (rec_get(r, i, &p, err, sizeof err)) {
        if (strncmp(err, "fuzz.rec: ", 10) != 0) abort();
    } else {
        check_pair(rec_header(r), &p);
    }
}

static void read_all(const uint8_t *d, size_t n, unsigned flags) {
    char err[512] = "";
    RecReader *r = rec_open_mem(d, n, "fuzz.rec", flags, err, sizeof err);
    if (!r) {
        if (strncmp(err, "fuzz.rec: ", 10) != 0) abort();
        return;
    }
    const RecHeader *h = rec_header(r);
    if (h->version != REC_VERSION || h->vocab_size < 1) abort();
    uint64_t n_read = h->npairs < 2000 ? h->npairs : 2000;
    for (uint64_t i = 0; i < n_read; i++) get_one(r, i);
    for (uint64_t k = 0; k < 8 && k < h->npairs; k++) get_one(r, h->npairs - 1 - k * 37 % h->npairs);
    get_one(r, h->npairs); /* out of range */
    rec_close(r);
}

static void wrap_raw(const uint8_t *d, size_t n) {
    if (n < 36) return;
    size_t rn = n - 36;
    if (rn > (1 << 20)) return;
    const uint8_t *raw = d + 36;
    size_t cap = ZSTD_compressBound(rn);
    uint8_t *file = malloc(REC_HEADER_SIZE + cap + REC_INDEX_ENTRY_SIZE);
    if (!file) return;
    size_t cs = ZSTD_compress(file + REC_HEADER_SIZE, cap, raw, rn, 1);
    if (ZSTD_isError(cs)) {
        free(file);
        return;
    }
    RecBlock b = {.offset = REC_HEADER_SIZE, .first = 0, .nrecords = rec_get32(d + 20), .csize = (uint32_t)cs,
                  .rsize = (uint32_t)rn, .crc = rec_crc32c(0, file + REC_HEADER_SIZE, cs), .ntokens = rec_get64(d + 24)};
    uint8_t *idx = file + REC_HEADER_SIZE + cs;
    rec_block_encode(&b, idx);
    RecFileHeader fh = {.flags = rec_get32(d + 8), .index_offset = REC_HEADER_SIZE + cs, .nblocks = 1,
                        .index_crc = rec_crc32c(0, idx, REC_INDEX_ENTRY_SIZE)};
    fh.h.version = REC_VERSION;
    memcpy(fh.h.template_name, "chatml", 7);
    fh.h.vocab_size = (int32_t)rec_get32(d + 12);
    fh.h.max_length = rec_get32(d + 16);
    fh.h.npairs = b.nrecords;
    fh.h.ntokens = b.ntokens;
    fh.h.ref_weights_hash = (fh.flags & REC_FLAG_HAS_REF) ? 42 : 0;
    rec_header_encode(&fh, file);
    read_all(file, REC_HEADER_SIZE + cs + REC_INDEX_ENTRY_SIZE, 0);
    free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n >= 8 && memcmp(d, "RECRAWB1", 8) == 0) {
        wrap_raw(d, n);
        return 0;
    }
    read_all(d, n, 0);
    read_all(d, n, REC_OPEN_NO_CHECKSUMS);
    return 0;
}
