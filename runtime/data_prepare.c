/* data_prepare.c — `dpoc data prepare`: JSONL rows in, .rec files out.
 *
 * One pass over the rows: parse (jsonl.c), pick the format from the first
 * good row unless given, convert (data_format.c), tokenize through the
 * template (data_pair.c), append to the train or validation writer. The
 * writers are opened once the format is known (the header names the
 * template) and write to temporary names that only rec_writer_close renames
 * into place, so any error (a bad row without --skip-bad, I/O, no pair
 * kept) leaves nothing at the output paths.
 *
 * The validation split is exact and streaming: the rows are counted first
 * (non-blank lines, without parsing), k = ceil(F * rows) of them are
 * validation rows, chosen by selection sampling (Knuth's algorithm S) with
 * a splitmix64 stream seeded by --seed: row i goes to validation with
 * probability (k - picked) / (rows - i). Every row draws one number in
 * order, bad or not, so a row's side depends only on (seed, rows, its
 * index). Rows later dropped leave their side one pair short.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

#define SHOW_BAD_ROWS 10

static void fmt(char *err, size_t errlen, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
}

void data_val_path(const char *output, char *out, size_t outlen) {
    size_t n = strlen(output);
    if (n > 4 && !strcmp(output + n - 4, ".rec"))
        snprintf(out, outlen, "%.*s.val.rec", (int)(n - 4), output);
    else
        snprintf(out, outlen, "%s.val.rec", output);
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct Prep {
    const DataPrepareOpts *o;
    const Tokenizer *tok;
    DataPrepareStats *st;
    JsonlReader *rd;
    DataBuilder *b;
    RecWriter *w[2];
    DataExample ex;
    DataPair pair;
    DataFormat format;
    int32_t vocab;
    uint64_t nrows, nval, picked, rng;
    char *err;
    size_t errlen;
} Prep;

/* Called once the format is known: checks what it needs, opens the writers. */
static int start(Prep *p) {
    const DataPrepareOpts *o = p->o;
    int ids = p->format == DATA_FMT_IDS;
    if (!ids && !p->tok) {
        fmt(p->err, p->errlen, "%s: format %s needs --tokenizer", o->input, data_format_name(p->format));
        return -1;
    }
    if (!ids && !o->tpl_given) {
        fmt(p->err, p->errlen, "%s: format %s needs --template (chatml, internlm2, llama3 or none)", o->input,
            data_format_name(p->format));
        return -1;
    }
    p->vocab = o->vocab_size > 0 ? o->vocab_size : p->tok ? tok_vocab_size(p->tok) : 0;
    /* ids without a vocabulary size: the writer records max id + 1 */
    ChatTemplate tpl = ids ? CHAT_TPL_NONE : o->tpl;
    p->b = data_builder_new(ids ? NULL : p->tok, tpl, o->parse_special ? TOK_PARSE_SPECIAL : 0, o->max_length,
                            p->err, p->errlen);
    if (!p->b) return -1;
    RecHeader h;
    memset(&h, 0, sizeof h);
    h.tok_hash = p->tok ? tok_hash(p->tok) : 0;
    snprintf(h.template_name, sizeof h.template_name, "%s", chat_template_name(tpl));
    h.max_length = o->max_length;
    h.vocab_size = p->vocab;
    p->w[0] = rec_writer_open(o->output, &h, p->err, p->errlen);
    if (!p->w[0]) return -1;
    if (o->val_split > 0) {
        p->w[1] = rec_writer_open(p->st->val_path, &h, p->err, p->errlen);
        if (!p->w[1]) return -1;
    }
    return 0;
}

/* A bad row: fatal unless skip_bad. */
static int bad_row(Prep *p, const char *msg) {
    if (!p->o->skip_bad) {
        fmt(p->err, p->errlen, "%s", msg);
        return -1;
    }
    if (p->o->log && p->st->bad < SHOW_BAD_ROWS)
        fprintf(p->o->log, "warning: skipped %s%s\n", msg,
                p->st->bad + 1 == SHOW_BAD_ROWS ? " (further bad rows are counted, not shown)" : "");
    p->st->bad++;
    return 0;
}

/* Which side row i goes to: 1 validation, 0 train. */
static int pick_side(Prep *p, uint64_t i) {
    if (p->nval == 0 || i >= p->nrows) return 0;
    uint64_t r = splitmix64(&p->rng) % (p->nrows - i);
    if (r < p->nval - p->picked) {
        p->picked++;
        return 1;
    }
    return 0;
}

static int one_row(Prep *p, cJSON *row, int side) {
    const DataPrepareOpts *o = p->o;
    DataPrepareStats *st = p->st;
    long line = jsonl_line(p->rd);
    char msg[512], full[1024];
    if (p->format == DATA_FMT_AUTO) {
        if (data_format_detect(row, &p->format, msg, sizeof msg)) {
            fmt(p->err, p->errlen, "%s:%ld: %s", o->input, line, msg);
            return -1;
        }
        st->detected = 1;
        st->detected_line = line;
    }
    st->format = p->format;
    if (!p->b && start(p)) return -1;
    if (data_example_from_row(row, p->format, p->vocab, &p->ex, msg, sizeof msg)) {
        snprintf(full, sizeof full, "%s:%ld: %s", o->input, line, msg);
        return bad_row(p, full);
    }
    int outcome;
    if (data_pair_build(p->b, &p->ex, &p->pair, &outcome, msg, sizeof msg)) {
        fmt(p->err, p->errlen, "%s:%ld: %s", o->input, line, msg);
        return -1;
    }
    if (outcome == DATA_PAIR_PROMPT_TOO_LONG) {
        st->dropped_prompt++;
        return 0;
    }
    if (outcome == DATA_PAIR_NO_LABELS) {
        st->dropped_nolabels++;
        return 0;
    }
    if (p->pair.encoded_apart && st->encoded_apart++ == 0) st->first_encoded_apart = line;
    st->truncated += (uint64_t)p->pair.truncated;
    RecPair rp;
    data_pair_to_rec(&p->pair, &rp);
    if (rec_writer_add(p->w[side], &rp, msg, sizeof msg)) {
        fmt(p->err, p->errlen, "%s:%ld: %s", o->input, line, msg);
        return -1;
    }
    st->kept[side]++;
    st->tokens[side] += rp.len[0] + rp.len[1];
    return 0;
}

static int run(Prep *p) {
    const DataPrepareOpts *o = p->o;
    DataPrepareStats *st = p->st;
    char msg[1024];
    if (o->val_split > 0) {
        struct stat sb;
        if (stat(o->input, &sb) == 0 && !S_ISREG(sb.st_mode)) {
            fmt(p->err, p->errlen, "%s: --val-split needs a regular file (its rows are counted first)", o->input);
            return -1;
        }
        if (jsonl_count_rows(o->input, &o->jsonl, &p->nrows, p->err, p->errlen)) return -1;
        p->nval = (uint64_t)ceil(o->val_split * (double)p->nrows);
        if (p->nval > p->nrows) p->nval = p->nrows;
        if (p->nrows && p->nval == p->nrows) {
            fmt(p->err, p->errlen, "%s: --val-split %g of %llu rows leaves no training row", o->input, o->val_split,
                (unsigned long long)p->nrows);
            return -1;
        }
        p->rng = o->seed;
    }
    p->rd = jsonl_open(o->input, &o->jsonl, p->err, p->errlen);
    if (!p->rd) return -1;
    for (;;) {
        cJSON *row;
        int rc = jsonl_next(p->rd, &row, msg, sizeof msg);
        if (rc == JSONL_END) break;
        if (rc == JSONL_FATAL) {
            fmt(p->err, p->errlen, "%s", msg);
            return -1;
        }
        st->rows++;
        int side = pick_side(p, jsonl_row_index(p->rd));
        if (rc == JSONL_BAD) {
            if (bad_row(p, msg)) return -1;
            continue;
        }
        rc = one_row(p, row, side);
        cJSON_Delete(row);
        if (rc) return -1;
    }
    st->bom = jsonl_bom(p->rd);
    if (o->verbose && o->log && st->bom)
        fprintf(o->log, "%s: skipped the UTF-8 byte-order mark at the start of line 1\n", o->input);
    if (st->kept[0] == 0) {
        fmt(p->err, p->errlen,
            "%s: no pair kept (%llu rows read, %llu bad, %llu with a prompt too long, %llu without label "
            "tokens%s)",
            o->input, (unsigned long long)st->rows, (unsigned long long)st->bad,
            (unsigned long long)st->dropped_prompt, (unsigned long long)st->dropped_nolabels,
            st->kept[1] ? ", the rest went to validation" : "");
        return -1;
    }
    if (st->encoded_apart && o->log)
        fprintf(o->log,
                "warning: %llu pair%s: the prompt's tokens are not a prefix of the prompt + response tokens; "
                "prompt and response were encoded apart (first at %s:%ld)\n",
                (unsigned long long)st->encoded_apart, st->encoded_apart == 1 ? "" : "s", o->input,
                st->first_encoded_apart);
    RecWriter *w0 = p->w[0], *w1 = p->w[1];
    p->w[0] = p->w[1] = NULL;
    if (rec_writer_close(w0, p->err, p->errlen)) {
        if (w1) rec_writer_abort(w1);
        return -1;
    }
    if (w1 && rec_writer_close(w1, p->err, p->errlen)) {
        unlink(o->output); /* all or nothing */
        return -1;
    }
    return 0;
}

int data_prepare(const DataPrepareOpts *o, const Tokenizer *tok, DataPrepareStats *st, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    if (errlen) err[0] = 0;
    st->format = o->format;
    if (!(o->val_split >= 0 && o->val_split < 1)) {
        fmt(err, errlen, "--val-split must be in [0, 1), got %g", o->val_split);
        return -1;
    }
    if (o->val_split > 0) {
        if (o->val_output)
            snprintf(st->val_path, sizeof st->val_path, "%s", o->val_output);
        else
            data_val_path(o->output, st->val_path, sizeof st->val_path);
        if (!strcmp(st->val_path, o->output)) {
            fmt(err, errlen, "the validation output %s is the training output", st->val_path);
            return -1;
        }
    }
    Prep p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.tok = tok;
    p.st = st;
    p.format = o->format;
    p.err = err;
    p.errlen = errlen;
    data_example_init(&p.ex);
    data_pair_init(&p.pair);
    int rc = run(&p);
    if (rc && err[0] == 0) fmt(err, errlen, "%s: failed", o->input);
    for (int k = 0; k < 2; k++)
        if (p.w[k]) rec_writer_abort(p.w[k]);
    jsonl_close(p.rd);
    data_builder_free(p.b);
    data_example_free(&p.ex);
    data_pair_free(&p.pair);
    return rc;
}

static const char *plural(uint64_t n) { return n == 1 ? "" : "s"; }

void data_prepare_summary(FILE *f, const DataPrepareOpts *o, const DataPrepareStats *st) {
    unsigned long long kept = st->kept[0] + st->kept[1];
    unsigned long long dropped = st->bad + st->dropped_prompt + st->dropped_nolabels;
    if (st->detected)
        fprintf(f, "pairs read   %llu (%s, format %s detected from line %ld)\n", (unsigned long long)st->rows,
                o->input, data_format_name(st->format), st->detected_line);
    else
        fprintf(f, "pairs read   %llu (%s, format %s)\n", (unsigned long long)st->rows, o->input,
                data_format_name(st->format));
    fprintf(f, "kept         %llu\n", kept);
    fprintf(f, "  train      %llu pair%s, %llu tokens -> %s\n", (unsigned long long)st->kept[0], plural(st->kept[0]),
            (unsigned long long)st->tokens[0], o->output);
    if (o->val_split > 0)
        fprintf(f, "  validation %llu pair%s, %llu tokens -> %s\n", (unsigned long long)st->kept[1],
                plural(st->kept[1]), (unsigned long long)st->tokens[1], st->val_path);
    fprintf(f, "dropped      %llu (prompt too long %llu, no label tokens %llu, bad rows %llu)\n", dropped,
            (unsigned long long)st->dropped_prompt, (unsigned long long)st->dropped_nolabels,
            (unsigned long long)st->bad);
    fprintf(f, "truncated    %llu\n", (unsigned long long)st->truncated);
}
