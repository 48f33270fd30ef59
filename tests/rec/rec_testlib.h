/* rec_testlib.h — helpers of the .rec tests: checks, a seeded generator of
 * random pairs, a scratch directory, and an independent .rec builder.
 *
 * The builder (tenc_record, tsplit, tbuild) is written from
 * docs/rec-format.md alone, with its own bit-at-a-time CRC-32C (tcrc), and
 * shares no code with runtime/rec_*.c except libzstd: the tests compare its
 * files with the writer's byte for byte, and use it to make files that are
 * wrong in one precise way but carry valid checksums.
 */
#ifndef DPOC_REC_TESTLIB_H
#define DPOC_REC_TESTLIB_H

#include "runtime/rec.h"

#include <stddef.h>
#include <stdint.h>

extern int t_passed, t_failed;
void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* check that err is exactly want */
void check_msg(const char *err, const char *want, const char *what);

uint64_t rng_next(uint64_t *s);
uint32_t rng_below(uint64_t *s, uint32_t n); /* [0, n), n >= 1 */

/* A pair that owns its arrays. */
typedef struct TPair {
    uint32_t prompt_len, len[2], nspans[2];
    int32_t *ids[2];
    RecSpan *spans[2];
    int has_ref;
    float ref[2];
} TPair;

typedef struct TPairOpts {
    uint32_t max_prompt, max_resp; /* lengths drawn in [0, max] */
    int32_t vocab;
    int has_ref;
    uint32_t max_spans;            /* spans per sequence drawn in [0, max] */
} TPairOpts;

void tpair_random(TPair *p, uint64_t *rng, const TPairOpts *o);
/* prompt ids, then each sequence's tail; spans given as (start,end) lists */
void tpair_make(TPair *p, uint32_t prompt_len, const int32_t *prompt, uint32_t lc, const int32_t *tail_c, uint32_t lr,
                const int32_t *tail_r, uint32_t nsc, const RecSpan *sc, uint32_t nsr, const RecSpan *sr, int has_ref,
                float ref_c, float ref_r);
RecPair tpair_view(const TPair *p);
void tpair_free(TPair *p);
/* 1 if got equals exp field by field (ref log-probs bit for bit); else 0 with why */
int tpair_same(const RecPair *got, const TPair *exp, char *why, size_t n);

/* scratch directory, removed by tdir_cleanup */
void tdir_init(void);
void tdir_cleanup(void);
const char *tpath(const char *name); /* a path inside it (static buffer rotated over 8) */
uint8_t *read_file(const char *path, size_t *n);
int write_file(const char *path, const void *data, size_t n);
int path_exists(const char *path);

/* growable byte buffer */
typedef struct TBuf {
    uint8_t *p;
    size_t n, cap;
} TBuf;
void tb_bytes(TBuf *b, const void *d, size_t n);
void tb_u32(TBuf *b, uint32_t v);
void tb_u64(TBuf *b, uint64_t v);
void tb_free(TBuf *b);
uint32_t tle32(const uint8_t *p);
uint64_t tle64(const uint8_t *p);
void tset32(uint8_t *p, uint32_t v);
void tset64(uint8_t *p, uint64_t v);

uint32_t tcrc(const void *data, size_t n); /* CRC-32C, one bit at a time */

/* Appends the record of p to out (docs/rec-format.md "Records"). */
void tenc_record(TBuf *out, const TPair *p);
/* Recomputes the trailing CRC of a record of size bytes. */
void tseal_record(uint8_t *rec, size_t size);

typedef struct THdr {
    uint32_t version, flags;
    uint64_t tok_hash;
    char tmpl[32];
    uint32_t max_length;
    int32_t vocab;
    uint64_t npairs, ntokens, refhash;
} THdr;

typedef struct TBlock {
    TBuf raw;
    uint32_t nrecords;
    uint64_t ntokens;
} TBlock;

/* Groups records into blocks by the documented rule for a block target. */
TBlock *tsplit(const TPair *p, size_t n, size_t target, size_t *nblocks);
void tblocks_free(TBlock *b, size_t nb);
/* A whole file: header, each block compressed with zstd at level, index. */
TBuf tbuild(const THdr *h, const TBlock *b, size_t nb, int level);
/* Recomputes index_crc and header_crc of a file image after a patch. */
void treseal(uint8_t *file, size_t n);

#endif
