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
 */
#ifndef DPOC_REC_H
#define DPOC_REC_H

#include <stddef.h>
#include <stdint.h>

typedef struct RecSpan {
    uint32_t start, end; /* [start, end) token positions */
} RecSpan;

typedef struct RecPair {
    uint32_t prompt_len;     /* tokens both sequences share before the responses */
    uint32_t len[2];         /* [0] chosen, [1] rejected: whole-sequence lengths */
    const int32_t *ids[2];   /* whole sequences, prompt included */
    uint32_t nspans[2];
    const RecSpan *spans[2]; /* label spans, sorted, inside [prompt_len, len) normally */
    int has_ref;             /* ref_logps valid */
    float ref_logps[2];      /* summed reference log-probs of the labels, chosen and rejected */
} RecPair;

typedef struct RecHeader {
    uint32_t version;
    uint64_t tok_hash;        /* tok_hash() of the tokenizer used; 0 for pre-tokenized input */
    char template_name[32];   /* "chatml", "internlm2", "llama3", "none" */
    uint32_t max_length;      /* 0: unlimited */
    uint64_t npairs;
    uint64_t ntokens;         /* sum of both sequences' lengths over all pairs */
    int has_ref;              /* every record carries reference log-probs */
    uint64_t ref_weights_hash; /* hash of the weights that produced them (has_ref) */
    int32_t vocab_size;       /* ids are < vocab_size */
} RecHeader;

typedef struct RecWriter RecWriter;
typedef struct RecReader RecReader;

/* h: version/npairs/ntokens are filled in by the writer. */
RecWriter *rec_writer_open(const char *path, const RecHeader *h, char *err, size_t errlen);
int rec_writer_add(RecWriter *w, const RecPair *p, char *err, size_t errlen);
/* Finishes, fsyncs and renames into place; frees w whatever happens. */
int rec_writer_close(RecWriter *w, char *err, size_t errlen);
/* Drops the temporary file; frees w. */
void rec_writer_abort(RecWriter *w);

/* Checks the header and index; records are checked (checksum, bounds) when read. */
RecReader *rec_open(const char *path, char *err, size_t errlen);
const RecHeader *rec_header(const RecReader *r);
/* Reads pair i (0-based). The pointers in *p stay valid until the next
 * rec_get or rec_close. Errors name the file and record. */
int rec_get(RecReader *r, uint64_t i, RecPair *p, char *err, size_t errlen);
void rec_close(RecReader *r);

#endif
