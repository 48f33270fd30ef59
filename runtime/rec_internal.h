/* rec_internal.h — what the .rec writer and reader share, and the entry
 * points tests and the fuzz target use (not part of the public rec.h).
 *
 * The byte layout constants below are those of docs/rec-format.md; every
 * multi-byte field is little-endian and read or written through the
 * rec_get_* / rec_put_* helpers, so the code is independent of the host's
 * byte order and alignment. A record is encoded by rec_record_encode and
 * checked against the header by rec_pair_check, the one place where the
 * rules of rec.h live (the writer checks a pair before encoding it, the
 * reader checks the pair it decoded).
 */
#ifndef DPOC_REC_INTERNAL_H
#define DPOC_REC_INTERNAL_H

#include "rec.h"

#include <stddef.h>
#include <stdint.h>

enum {
    REC_HEADER_SIZE = 112,           /* fixed header at offset 0 */
    REC_HEADER_CRC_AT = 108,         /* header_crc covers bytes [0, 108) */
    REC_INDEX_ENTRY_SIZE = 40,       /* one index entry per block */
    REC_RECORD_FIXED = 24,           /* flags, prompt_len, len[2], nspans[2] */
    REC_RECORD_MIN = 28,             /* fixed part + record crc */
    REC_FLAG_HAS_REF = 1,            /* header flags and record flags */
    REC_BLOCK_TARGET = 128 << 10,    /* raw bytes a writer collects per block */
    REC_MAX_BLOCK_RAW = 16 << 20,    /* raw bytes of one block, any writer */
    REC_ZSTD_LEVEL = 3,
};

/* rec_open_mem flags */
enum { REC_OPEN_NO_CHECKSUMS = 1 }; /* skip every CRC check (fuzzing past checksums) */

/* Opens a .rec image held in memory; data must outlive the reader. name is
 * used in messages. */
RecReader *rec_open_mem(const void *data, size_t len, const char *name, unsigned flags, char *err,
                        size_t errlen);
/* Sets the raw size at which the writer closes a block (tests use small
 * ones to get many blocks); 1 .. REC_MAX_BLOCK_RAW, before the first add. */
void rec_writer_set_block_target(RecWriter *w, size_t bytes);

/* CRC-32C (Castagnoli, reflected, init and final xor 0xffffffff): pass 0 to
 * start, the previous result to continue. rec_crc32c(0, "123456789", 9) is
 * 0xe3069283. */
uint32_t rec_crc32c(uint32_t crc, const void *data, size_t n);
/* Grows *buf (of *cap elements of elem bytes) by doubling to hold need
 * elements; 0, or -1 on overflow or out of memory (buf unchanged). */
int rec_grow(void **buf, size_t *cap, size_t need, size_t elem);

/* ---- little-endian fields ------------------------------------------------- */
static inline uint32_t rec_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rec_get64(const uint8_t *p) { return rec_get32(p) | (uint64_t)rec_get32(p + 4) << 32; }
static inline void rec_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static inline void rec_put64(uint8_t *p, uint64_t v) {
    rec_put32(p, (uint32_t)v);
    rec_put32(p + 4, (uint32_t)(v >> 32));
}

/* The header as stored (docs/rec-format.md, "Header"). */
typedef struct RecFileHeader {
    RecHeader h;
    uint32_t flags;
    uint64_t index_offset, nblocks;
    uint32_t index_crc, header_crc;
} RecFileHeader;

/* One index entry (docs/rec-format.md, "Index"). */
typedef struct RecBlock {
    uint64_t offset, first;
    uint32_t nrecords, csize, rsize, crc;
    uint64_t ntokens;
} RecBlock;

/* Serialises a header; computes header_crc from the other bytes (the
 * header_crc field of fh is ignored). */
void rec_header_encode(const RecFileHeader *fh, uint8_t out[REC_HEADER_SIZE]);
void rec_header_decode(const uint8_t in[REC_HEADER_SIZE], RecFileHeader *fh);
void rec_block_encode(const RecBlock *b, uint8_t out[REC_INDEX_ENTRY_SIZE]);
void rec_block_decode(const uint8_t in[REC_INDEX_ENTRY_SIZE], RecBlock *b);

/* Bytes a record with these counts takes, crc included. Counts must be
 * within the limits (prompt_len <= both lengths). */
size_t rec_record_size(uint32_t prompt_len, const uint32_t len[2], const uint32_t nspans[2], int has_ref);
/* Encodes a checked pair into out (rec_record_size bytes) and appends the crc. */
void rec_record_encode(const RecPair *p, uint8_t *out);
/* Checks p against the rules of rec.h for a file with header h (vocab_size
 * 0 skips the upper id bound). 0, or -1 with a message (no file or record
 * prefix) in msg. */
int rec_pair_check(const RecHeader *h, const RecPair *p, char *msg, size_t msglen);

#endif
