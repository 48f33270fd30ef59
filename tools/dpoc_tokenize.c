/* dpoc_tokenize.c — `dpoc tokenize` and `dpoc detokenize`: check what text becomes.
 *
 *   dpoc tokenize --tokenizer DIR [--special] < text    -> [id, id, ...]
 *   dpoc detokenize --tokenizer DIR < '[id, ...]'        -> the text's bytes
 *
 * tokenize reads all of stdin as one string (bytes, NUL included) and prints
 * the ids as a JSON array on one line. Special-token text is plain text
 * unless --special is given (the policy of docs/tokenizer.md). Bytes that
 * are not UTF-8 are encoded one token per byte, with a warning naming the
 * first offset. detokenize reads a JSON array of integer ids and writes the
 * decoded bytes exactly, with no newline added. Errors name what was wrong
 * (invalid JSON with line:column, a non-integer element or an unknown id with
 * its position) and exit with status 1; bad options exit with 2.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpoc_cli.h"
#include "runtime/file_read.h"
#include "runtime/tokenizer.h"


/* Offset of the first byte that is not UTF-8, or len. */
static size_t utf8_bad_offset(const unsigned char *p, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i], need, min, v;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 1, min = 0x80, v = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, min = 0x800, v = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, min = 0x10000, v = c & 0x07;
        else return i;
        if (len - i <= need) return i;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            v = v << 6 | (p[i + k] & 0x3F);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return i;
        i += need + 1;
    }
    return len;
}

static Tokenizer *open_tokenizer(const char *cmd, int argc, char **argv, int *special, int *status) {
    const char *dir = NULL;
    int sp = 0;
    DpocOpt opts[] = {
        {"tokenizer", 't', OPT_STRING, &dir, NULL, 0,
         "tokenizer directory (tokenizer.json, or vocab.json + merges.txt)"},
        {"special", 0, OPT_FLAG, NULL, &sp, 0, "parse special-token text (e.g. <|im_end|>) as special tokens"},
    };
    int nopts = special ? 2 : 1;
    const char *synopsis = special ? "--tokenizer DIR [--special] < text" : "--tokenizer DIR < ids.json";
    int n = dpoc_opts_parse(cmd, synopsis, opts, nopts, argc, argv, NULL, 0);
    *status = n == -2 ? 0 : 2;
    if (n < 0) return NULL;
    if (!dir) {
        fprintf(stderr, "dpoc %s: --tokenizer DIR is required\n", cmd);
        return NULL;
    }
    char err[1024];
    Tokenizer *t = tok_load(dir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "dpoc %s: %s\n", cmd, err);
        *status = 1;
        return NULL;
    }
    if (special) *special = sp;
    return t;
}

int dpoc_cmd_tokenize(int argc, char **argv) {
    int special = 0, status;
    Tokenizer *t = open_tokenizer("tokenize", argc, argv, &special, &status);
    if (!t) return status;
    size_t len = 0;
    char *text = file_read_stream(stdin, &len);
    if (!text) {
        fprintf(stderr, "dpoc tokenize: cannot read stdin: %s\n", strerror(errno));
        tok_free(t);
        return 1;
    }
    size_t bad = utf8_bad_offset((const unsigned char *)text, len);
    if (bad < len)
        fprintf(stderr, "dpoc tokenize: warning: stdin is not UTF-8 at byte %zu; such bytes become one token each\n",
                bad);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    status = 0;
    if (tok_encode(t, text, len, special ? TOK_PARSE_SPECIAL : 0, &ids, &n, &cap) != 0) {
        fprintf(stderr, "dpoc tokenize: out of memory\n");
        status = 1;
    } else {
        putchar('[');
        for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
        if (fflush(stdout) != 0) {
            fprintf(stderr, "dpoc tokenize: cannot write stdout: %s\n", strerror(errno));
            status = 1;
        }
    }
    free(ids);
    free(text);
    tok_free(t);
    return status;
}

/* The ids of a JSON array; -1 with a message. */
static int parse_ids(const char *text, size_t len, int32_t **ids, size_t *n) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t line, col;
        text_line_col(text, len, end, &line, &col);
        fprintf(stderr, "dpoc detokenize: stdin:%zu:%zu: invalid JSON\n", line, col);
        return -1;
    }
    int rc = 0;
    if (!cJSON_IsArray(j)) {
        fprintf(stderr, "dpoc detokenize: stdin: expected a JSON array of token ids\n");
        rc = -1;
    }
    size_t k = 0, count = rc ? 0 : (size_t)cJSON_GetArraySize(j);
    *ids = malloc((count ? count : 1) * sizeof **ids);
    if (!*ids) rc = -1;
    for (const cJSON *e = rc ? NULL : j->child; e; e = e->next, k++) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d == floor(d) && d >= -2147483648.0 && d <= 2147483647.0)) {
            fprintf(stderr, "dpoc detokenize: stdin: element %zu is not an integer token id\n", k);
            rc = -1;
            break;
        }
        (*ids)[k] = (int32_t)d;
    }
    *n = k;
    cJSON_Delete(j);
    return rc;
}

int dpoc_cmd_detokenize(int argc, char **argv) {
    int status;
    Tokenizer *t = open_tokenizer("detokenize", argc, argv, NULL, &status);
    if (!t) return status;
    size_t len = 0, n = 0, olen = 0;
    char *text = file_read_stream(stdin, &len), *out = NULL, err[512];
    int32_t *ids = NULL;
    status = 1;
    if (!text) {
        fprintf(stderr, "dpoc detokenize: cannot read stdin: %s\n", strerror(errno));
    } else if (parse_ids(text, len, &ids, &n) == 0) {
        if (tok_decode(t, ids, n, &out, &olen, err, sizeof err) != 0) {
            fprintf(stderr, "dpoc detokenize: stdin: %s\n", err);
        } else if (fwrite(out, 1, olen, stdout) != olen || fflush(stdout) != 0) {
            fprintf(stderr, "dpoc detokenize: cannot write stdout: %s\n", strerror(errno));
        } else {
            status = 0;
        }
    }
    free(out);
    free(ids);
    free(text);
    tok_free(t);
    return status;
}
