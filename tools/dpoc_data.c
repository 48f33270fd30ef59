/* dpoc_data.c — `dpoc data prepare|show|stats`: preference data to .rec and back.
 *
 * Only flag parsing and exit statuses live here; the work is in
 * runtime/data_*.c. Exit status: 0 done, 1 bad data or I/O (the message
 * names the file and line), 2 bad command line. Warnings (skipped rows,
 * pairs encoded apart) go to stderr, the prepare summary to stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpoc_cli.h"
#include "runtime/data.h"

static int parse_u64(const char *cmd, const char *opt, const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = s && *s && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || *end || errno || v > max) {
        fprintf(stderr, "dpoc %s: %s must be an integer in [0, %llu], got '%s'\n", cmd, opt, (unsigned long long)max,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

static Tokenizer *load_tok(const char *dir) {
    char err[1024];
    Tokenizer *t = tok_load(dir, err, sizeof err);
    if (!t) fprintf(stderr, "%s\n", err);
    return t;
}

static int cmd_prepare(int argc, char **argv) {
    const char *cmd = "data prepare";
    const char *tokdir = NULL, *tpl = NULL, *format = NULL, *maxlen = NULL, *out = NULL, *valsplit = NULL,
               *seed = NULL, *valout = NULL, *maxrow = NULL, *vocab = NULL;
    int parse_special = 0, skip_bad = 0, verbose = 0;
    DpocOpt opts[] = {
        {"tokenizer", 0, OPT_STRING, &tokdir, NULL, 0, "tokenizer directory (vocab.json + merges.txt or tokenizer.json)"},
        {"template", 0, OPT_STRING, &tpl, NULL, 0, "chat template: chatml, internlm2, llama3, none"},
        {"format", 0, OPT_STRING, &format, NULL, 0, "auto (default), trl, xtuner, orpo, cvalues, ids"},
        {"max-length", 0, OPT_STRING, &maxlen, NULL, 0, "tokens per sequence, prompt included (0: unlimited)"},
        {"output", 'o', OPT_STRING, &out, NULL, 0, "the .rec file to write"},
        {"val-split", 0, OPT_STRING, &valsplit, NULL, 0, "fraction of rows for a validation file (default 0)"},
        {"seed", 0, OPT_STRING, &seed, NULL, 0, "seed of the validation split (default 0)"},
        {"val-out", 0, OPT_STRING, &valout, NULL, 0, "validation .rec (default: OUT with .val.rec)"},
        {"parse-special", 0, OPT_FLAG, NULL, &parse_special, 0, "special-token text in data becomes special tokens"},
        {"skip-bad", 0, OPT_FLAG, NULL, &skip_bad, 0, "skip and count bad rows instead of failing"},
        {"max-row-bytes", 0, OPT_STRING, &maxrow, NULL, 0, "longest accepted row (default 16777216)"},
        {"vocab-size", 0, OPT_STRING, &vocab, NULL, 0, "vocabulary size for --format ids without --tokenizer"},
        {"verbose", 'v', OPT_FLAG, NULL, &verbose, 0, "notes on what was detected and skipped"},
    };
    const char *pos[2];
    int npos = dpoc_opts_parse(cmd, "--tokenizer DIR --template NAME [options] IN.jsonl -o OUT.rec", opts,
                               (int)(sizeof opts / sizeof opts[0]), argc, argv, pos, 2);
    if (npos == -2) return 0;
    if (npos < 0) return 2;
    if (npos != 1 || !out) {
        fprintf(stderr, "dpoc %s: need one input file and -o OUT.rec (see 'dpoc %s --help')\n", cmd, cmd);
        return 2;
    }
    DataPrepareOpts o;
    memset(&o, 0, sizeof o);
    o.input = pos[0];
    o.output = out;
    o.val_output = valout;
    o.parse_special = parse_special;
    o.skip_bad = skip_bad;
    o.verbose = verbose;
    o.log = stderr;
    if (format && data_format_parse(format, &o.format)) {
        fprintf(stderr, "dpoc %s: unknown --format '%s' (auto, trl, xtuner, orpo, cvalues, ids)\n", cmd, format);
        return 2;
    }
    if (o.format != DATA_FMT_IDS && o.format != DATA_FMT_AUTO && !tpl) {
        fprintf(stderr, "dpoc %s: --template is required (chatml, internlm2, llama3 or none)\n", cmd);
        return 2;
    }
    if (tpl && chat_template_parse(tpl, &o.tpl)) {
        fprintf(stderr, "dpoc %s: unknown --template '%s' (chatml, internlm2, llama3, none)\n", cmd, tpl);
        return 2;
    }
    o.tpl_given = tpl != NULL;
    uint64_t v;
    if (maxlen) {
        if (parse_u64(cmd, "--max-length", maxlen, UINT32_MAX, &v)) return 2;
        o.max_length = (uint32_t)v;
    }
    if (maxrow) {
        if (parse_u64(cmd, "--max-row-bytes", maxrow, (uint64_t)1 << 40, &v)) return 2;
        if (v == 0) {
            fprintf(stderr, "dpoc %s: --max-row-bytes must be at least 1\n", cmd);
            return 2;
        }
        o.jsonl.max_row_bytes = (size_t)v;
    }
    if (vocab) {
        if (parse_u64(cmd, "--vocab-size", vocab, INT32_MAX, &v)) return 2;
        o.vocab_size = (int32_t)v;
    }
    if (seed && parse_u64(cmd, "--seed", seed, UINT64_MAX, &o.seed)) return 2;
    if (valsplit) {
        char *end;
        o.val_split = strtod(valsplit, &end);
        if (!*valsplit || *end || !(o.val_split >= 0 && o.val_split < 1)) {
            fprintf(stderr, "dpoc %s: --val-split must be a number in [0, 1), got '%s'\n", cmd, valsplit);
            return 2;
        }
    }
    if (valout && o.val_split == 0) {
        fprintf(stderr, "dpoc %s: --val-out needs --val-split\n", cmd);
        return 2;
    }
    Tokenizer *tok = NULL;
    if (tokdir && !(tok = load_tok(tokdir))) return 1;
    DataPrepareStats st;
    char err[2048];
    int rc = data_prepare(&o, tok, &st, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    else
        data_prepare_summary(stdout, &o, &st);
    tok_free(tok);
    return rc ? 1 : 0;
}

static int cmd_show(int argc, char **argv) {
    const char *cmd = "data show";
    const char *tokdir = NULL;
    int json = 0;
    DpocOpt opts[] = {
        {"tokenizer", 0, OPT_STRING, &tokdir, NULL, 0, "tokenizer directory, to decode the ids"},
        {"json", 0, OPT_FLAG, NULL, &json, 0, "ids, spans and reference log-probs as JSON (one line per pair)"},
    };
    const char *pos[64];
    int npos = dpoc_opts_parse(cmd, "[--tokenizer DIR | --json] FILE.rec [N...]", opts, 2, argc, argv, pos, 64);
    if (npos == -2) return 0;
    if (npos < 0) return 2;
    if (npos < 1) {
        fprintf(stderr, "dpoc %s: need a .rec file (see 'dpoc %s --help')\n", cmd, cmd);
        return 2;
    }
    if (!json && !tokdir) {
        fprintf(stderr, "dpoc %s: --tokenizer DIR is needed to decode the ids (or use --json)\n", cmd);
        return 2;
    }
    uint64_t idx[63];
    for (int i = 1; i < npos; i++)
        if (parse_u64(cmd, "a pair index", pos[i], UINT64_MAX, &idx[i - 1])) return 2;
    char err[1024];
    RecReader *r = rec_open(pos[0], err, sizeof err);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const RecHeader *h = rec_header(r);
    Tokenizer *tok = NULL;
    int rc = 0;
    if (!json) {
        tok = load_tok(tokdir);
        if (!tok) rc = 1;
        else if (h->tok_hash && tok_hash(tok) != h->tok_hash) {
            fprintf(stderr, "%s: prepared with tokenizer hash %016llx, but %s has hash %016llx\n", pos[0],
                    (unsigned long long)h->tok_hash, tokdir, (unsigned long long)tok_hash(tok));
            rc = 1;
        }
    }
    uint64_t n = npos > 1 ? (uint64_t)(npos - 1) : h->npairs;
    for (uint64_t k = 0; k < n && !rc; k++) {
        uint64_t i = npos > 1 ? idx[k] : k;
        if (i >= h->npairs) {
            fprintf(stderr, "%s: no pair %llu (the file has %llu)\n", pos[0], (unsigned long long)i,
                    (unsigned long long)h->npairs);
            rc = 1;
            break;
        }
        if (!json && k) fputc('\n', stdout);
        if (json ? data_show_json(stdout, r, i, err, sizeof err) : data_show_text(stdout, r, tok, i, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            rc = 1;
        }
    }
    tok_free(tok);
    rec_close(r);
    return rc;
}

static int cmd_stats(int argc, char **argv) {
    const char *cmd = "data stats";
    const char *pos[1];
    int npos = dpoc_opts_parse(cmd, "FILE.rec", NULL, 0, argc, argv, pos, 1);
    if (npos == -2) return 0;
    if (npos < 0) return 2;
    if (npos != 1) {
        fprintf(stderr, "dpoc %s: need one .rec file\n", cmd);
        return 2;
    }
    char err[1024];
    RecReader *r = rec_open(pos[0], err, sizeof err);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = data_stats(stdout, r, pos[0], err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    rec_close(r);
    return rc ? 1 : 0;
}

int dpoc_cmd_data(int argc, char **argv) {
    static const DpocCommand subs[] = {
        {"prepare", "JSONL preference data -> tokenized .rec file(s)", cmd_prepare},
        {"show", "print pairs of a .rec file, decoded with their boundaries", cmd_show},
        {"stats", "counts, lengths and header of a .rec file", cmd_stats},
    };
    if (argc >= 1)
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
            if (!strcmp(argv[0], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
    int help = argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"));
    FILE *f = help ? stdout : stderr;
    if (argc >= 1 && !help) fprintf(stderr, "dpoc data: unknown subcommand '%s'\n", argv[0]);
    fprintf(f, "usage: dpoc data <subcommand> [options]\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].help);
    return help ? 0 : 2;
}
