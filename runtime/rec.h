/* rec.h — the .rec file of tokenized preference pairs (docs/rec-format.md).
 *
 * A .rec file holds a header (magic, version, tokenizer hash, template,
 * max length, counts, optional reference-weights hash), zstd-compressed
 * blocks of records, an index of block offsets for random access, and a
 * checksum per record. Each record is one preference pair: the chosen and
 * the rejected sequence (prompt + response token ids, the prompt being a
 * shared prefix of prompt_len tokens), the spans of each sequence whose
 * tokens are labels (the model predicts ids[t] from ids[0..t-1] for every t
 * inside a span), and optionally the summed reference log-probs of both
 * sequences. A writer writes to PATH.tmp and renames on close, so a failure
 * never leaves a partial .rec behind.
 *
 * The rules a pair must follow (rec_writer_add refuses a pair that breaks
 * one, and rec_get refuses a record that breaks one):
 *   - len[s] <= REC_MAX_LEN, and len[s] <= max_length when max_length != 0;
 *   - prompt_len <= len[0] and prompt_len <= len[1], and the first
 *     prompt_len ids of both sequences are equal (stored once);
 *   - every id is in [0, vocab_size);
 *   - nspans[s] <= REC_MAX_SPANS; each span has start <= end <= len[s]
 *     (start == end is an empty span: allowed, marks nothing); spans are
 *     sorted and do not overlap (spans[k].end <= spans[k+1].start). Spans
 *     normally lie inside [prompt_len, len); position 0 can be in a span but
 *     can never be predicted (trainers ignore it);
 *   - has_ref equals the header's has_ref, and when set both ref_logps are
 *     finite.
 * A reader is not thread-safe (it caches one decompressed block); use one
 * reader per thread.
 */
#ifndef DPOC_REC_H
#define DPOC_REC_H

#include <stddef.h>
#include <stdint.h>

enum {
    REC_VERSION = 1,            /* the format version this code writes and reads */
    REC_MAX_LEN = 1 << 20,      /* tokens in one sequence */
    REC_MAX_SPANS = 1 << 16,    /* label spans in one sequence */
    REC_TEMPLATE_MAX = 32,      /* bytes of template_name, NUL included */
};

typedef struct RecSpan {
    uint32_t start, end; /* [start, end) token positions */
} RecSpan;

typedef struct RecPair {
    uint32_t prompt_len;     /* tokens both sequences share before the responses */
    uint32_t len[2];         /* [0] chosen, [1] rejected: whole-sequence lengths */
    const int32_t *ids[2];   /* whole sequences, prompt included */
    uint32_t nspans[2];
    const RecSpan *spans[2]; /* label spans, sorted, inside [prompt_len, len) normally */
    int has_ref;             /* ref_logps valid (0 or 1; must equal the header's has_ref) */
    float ref_logps[2];      /* summed reference log-probs of the labels, chosen and rejected */
} RecPair;

typedef struct RecHeader {
    uint32_t version;         /* REC_VERSION; filled in by the writer */
    uint64_t tok_hash;        /* tok_hash() of the tokenizer used; 0 for pre-tokenized input */
    char template_name[REC_TEMPLATE_MAX]; /* "chatml", "internlm2", "llama3", "none";
                                 printable ASCII, NUL-terminated; may be "" */
    uint32_t max_length;      /* 0: unlimited; else every sequence has len <= max_length
                                 (at most REC_MAX_LEN) */
    uint64_t npairs;          /* filled in by the writer */
    uint64_t ntokens;         /* sum of both sequences' lengths over all pairs; filled in by the writer */
    int has_ref;              /* every record carries reference log-probs (0 or 1) */
    uint64_t ref_weights_hash; /* hash of the weights that produced them (has_ref); the
                                  writer stores 0 when has_ref is 0 */
    int32_t vocab_size;       /* ids are < vocab_size; always >= 1 in a file. Given 0 to
                                 rec_writer_open, the writer stores max id + 1 (1 when
                                 there is no id), for pre-tokenized input of unknown vocab */
} RecHeader;

typedef struct RecWriter RecWriter;
typedef struct RecReader RecReader;

/* Creates PATH.tmp (truncating a stale one). h: version/npairs/ntokens are
 * filled in by the writer; the other fields are checked (message in err). */
RecWriter *rec_writer_open(const char *path, const RecHeader *h, char *err, size_t errlen);
/* Appends one pair (copied; p may be reused at once). A pair that breaks a
 * rule above is refused with "PATH: pair N: ..." and not written; the writer
 * stays usable. After an I/O error (disk full, ...) every later call fails;
 * rec_writer_close then reports it and removes PATH.tmp. */
int rec_writer_add(RecWriter *w, const RecPair *p, char *err, size_t errlen);
/* Finishes, fsyncs and renames into place; frees w whatever happens. On any
 * failure before the rename PATH.tmp is removed and an existing PATH is left
 * as it was (a failed fsync of the directory after the rename is reported
 * too; the new PATH is then in place but its durability is not certain). */
int rec_writer_close(RecWriter *w, char *err, size_t errlen);
/* Drops the temporary file; frees w. NULL is allowed. */
void rec_writer_abort(RecWriter *w);

/* Checks the header and index (checksums, counts, every block inside the
 * file); records are checked (checksum, bounds) when read. Errors name the
 * file: "train.rec: not a .rec file (bad magic)". */
RecReader *rec_open(const char *path, char *err, size_t errlen);
const RecHeader *rec_header(const RecReader *r);
/* Reads pair i (0-based). The pointers in *p stay valid until the next
 * rec_get or rec_close. Errors name the file and record:
 * "train.rec: record 17: checksum mismatch (block 2 at offset 81234)". */
int rec_get(RecReader *r, uint64_t i, RecPair *p, char *err, size_t errlen);
void rec_close(RecReader *r); /* NULL is allowed */

#endif
