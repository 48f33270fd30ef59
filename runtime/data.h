/* data.h — preference data in: JSONL rows -> examples -> token pairs -> .rec
 * (docs/data.md).
 *
 * Four steps, one file each:
 *   data_format.c   the input formats: detection from a row's fields and
 *                   conversion of a row to a DataExample (a prompt as chat
 *                   messages and two responses, or three id lists);
 *   data_pair.c     a DataExample through a chat template and the tokenizer
 *                   to a DataPair: two token sequences sharing a prompt of
 *                   prompt_len tokens, label spans, truncation;
 *   data_prepare.c  the whole `dpoc data prepare`: JSONL in, one or two
 *                   .rec files out (seeded validation split), counts;
 *   data_show.c / data_stats.c   reading a .rec back for people.
 * Messages from conversion name the field ("field 'chosen' must be ...");
 * data_prepare prefixes the file and line.
 */
#ifndef DPOC_DATA_H
#define DPOC_DATA_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chat_template.h"
#include "jsonl.h"
#include "rec.h"
#include "tokenizer.h"

/* ---- input formats (data_format.c) -------------------------------------------- */

typedef enum {
    DATA_FMT_AUTO,
    DATA_FMT_TRL,     /* {prompt, chosen, rejected}: strings, or message lists (prompt optional) */
    DATA_FMT_XTUNER,  /* {prompt, chosen, rejected}: message lists */
    DATA_FMT_ORPO,    /* {chosen, rejected} full conversations; prompt = chosen[:-1] */
    DATA_FMT_CVALUES, /* {prompt, pos_resp, neg_resp, pos_type, neg_type} */
    DATA_FMT_IDS,     /* {prompt_ids, chosen_ids, rejected_ids} */
    DATA_FMT_COUNT
} DataFormat;

const char *data_format_name(DataFormat f);
int data_format_parse(const char *s, DataFormat *f); /* 0 ok, -1 unknown */
/* Picks the format of a row from its fields; -1 with a message when the row
 * fits none or several. */
int data_format_detect(const cJSON *row, DataFormat *f, char *err, size_t errlen);

typedef struct DataExample {
    int is_ids;
    const ChatMsg *prompt; /* text: the prompt messages (may be empty) */
    size_t nprompt;
    const ChatMsg *resp[2]; /* text: [0] chosen, [1] rejected response messages (non-empty) */
    size_t nresp[2];
    const int32_t *ids[3]; /* is_ids: prompt, chosen response, rejected response */
    size_t nids[3];
    ChatMsg *msgbuf; /* storage */
    size_t msgcap;
    int32_t *idbuf;
    size_t idcap;
} DataExample;

void data_example_init(DataExample *ex);
void data_example_free(DataExample *ex);
/* Converts a row of format f (not AUTO). Texts point into row, which must
 * outlive ex's use. vocab_size > 0 bounds the ids of DATA_FMT_IDS. 0 ok,
 * -1 with a message naming the field. */
int data_example_from_row(const cJSON *row, DataFormat f, int32_t vocab_size, DataExample *ex, char *err,
                          size_t errlen);

/* ---- tokenized pairs (data_pair.c) ------------------------------------------- */

typedef struct DataSeq {
    int32_t *ids;
    size_t n, cap;
    RecSpan *spans;
    size_t nspans, spancap;
} DataSeq;

typedef struct DataPair {
    uint32_t prompt_len;
    DataSeq seq[2]; /* chosen, rejected */
    int encoded_apart; /* the joint encoding did not keep a boundary: pieces were encoded separately */
    int truncated;     /* a sequence was cut at max_length */
} DataPair;

enum { DATA_PAIR_KEPT, DATA_PAIR_PROMPT_TOO_LONG, DATA_PAIR_NO_LABELS };

typedef struct DataBuilder DataBuilder;

/* tok may be NULL for id examples only. tok_flags: TOK_PARSE_SPECIAL to
 * parse special-token text inside data. max_length 0: unlimited. NULL with
 * a message when the tokenizer lacks one of the template's control tokens. */
DataBuilder *data_builder_new(const Tokenizer *tok, ChatTemplate tpl, unsigned tok_flags, uint32_t max_length,
                              char *err, size_t errlen);
void data_builder_free(DataBuilder *b);

void data_pair_init(DataPair *p);
void data_pair_free(DataPair *p);
/* Builds p from ex; *outcome is DATA_PAIR_KEPT or why it was dropped.
 * 0 ok, -1 on out of memory. */
int data_pair_build(DataBuilder *b, const DataExample *ex, DataPair *p, int *outcome, char *err, size_t errlen);
/* p as a RecPair (pointers into p). */
void data_pair_to_rec(const DataPair *p, RecPair *out);

/* ---- prepare (data_prepare.c) ----------------------------------------------------- */

typedef struct DataPrepareOpts {
    const char *input;      /* JSONL path */
    const char *output;     /* train .rec */
    const char *val_output; /* validation .rec (val_split > 0); NULL: derived from output */
    DataFormat format;      /* DATA_FMT_AUTO: from the first row */
    ChatTemplate tpl;
    int tpl_given;       /* tpl is set; text input needs it */
    uint32_t max_length; /* 0: unlimited */
    int parse_special;
    int skip_bad;
    double val_split; /* fraction of rows for validation, [0, 1) */
    uint64_t seed;
    JsonlOpts jsonl;
    int32_t vocab_size; /* for id input without a tokenizer; 0: the tokenizer's */
    int verbose;
    FILE *log; /* warnings and notes; NULL: none */
} DataPrepareOpts;

typedef struct DataPrepareStats {
    DataFormat format;
    int detected;
    long detected_line;
    int bom;
    uint64_t rows;       /* pairs read (non-blank lines) */
    uint64_t kept[2];    /* train, validation */
    uint64_t tokens[2];  /* train, validation */
    uint64_t bad;        /* skipped with skip_bad */
    uint64_t dropped_prompt, dropped_nolabels;
    uint64_t truncated;
    uint64_t encoded_apart;
    long first_encoded_apart;
    char val_path[4096];
} DataPrepareStats;

/* The validation path for output "X.rec" is "X.val.rec" (else OUTPUT.val.rec). */
void data_val_path(const char *output, char *out, size_t outlen);
/* Runs the whole preparation. Nothing is left at the output paths on error. */
int data_prepare(const DataPrepareOpts *o, const Tokenizer *tok, DataPrepareStats *st, char *err, size_t errlen);
void data_prepare_summary(FILE *f, const DataPrepareOpts *o, const DataPrepareStats *st);

/* ---- reading back (data_show.c, data_stats.c) --------------------------------------- */

/* Pair i as decoded text with ⟦prompt⟧ ⟦label⟧ ⟦masked⟧ markers (docs/data.md). */
int data_show_text(FILE *out, RecReader *r, const Tokenizer *tok, uint64_t i, char *err, size_t errlen);
/* Pair i as one line of JSON: ids, spans, reference log-probs. */
int data_show_json(FILE *out, RecReader *r, uint64_t i, char *err, size_t errlen);
/* Counts, length histogram, header fields. */
int data_stats(FILE *out, RecReader *r, const char *name, char *err, size_t errlen);

#endif
