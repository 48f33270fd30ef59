/* tok_dump.c — test helper: encode and decode lines with dpoc's tokenizer.
 *
 *   tok_dump DIR < lines
 *
 * prints "vocab N hash H" first. Each input line is 'p' (special-token text
 * is plain text) or 's' (TOK_PARSE_SPECIAL) followed by a hex-encoded byte
 * string (so NUL, CR and invalid UTF-8 survive); each output line is the
 * ids, space-separated, a tab, and the hex of decode(ids).
 *
 * check_vocab.py drives it and compares with the Python reference.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tokenizer.h"

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tok_dump DIR < lines\n");
        return 2;
    }
    char err[512];
    Tokenizer *t = tok_load(argv[1], err, sizeof err);
    if (!t) {
        fprintf(stderr, "tok_dump: %s\n", err);
        return 1;
    }
    printf("vocab %d hash %016" PRIx64 "\n", tok_vocab_size(t), tok_hash(t));
    char *line = NULL;
    size_t linecap = 0;
    ssize_t got;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    while ((got = getline(&line, &linecap, stdin)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) got--;
        if (got < 1 || (line[0] != 'p' && line[0] != 's')) {
            fprintf(stderr, "tok_dump: each line must start with 'p' or 's'\n");
            rc = 1;
            break;
        }
        unsigned flags = line[0] == 's' ? TOK_PARSE_SPECIAL : 0;
        size_t len = (size_t)(got - 1) / 2;
        char *text = malloc(len + 1);
        const char *hex = line + 1;
        for (size_t i = 0; i < len; i++) text[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
        n = 0;
        if (tok_encode(t, text, len, flags, &ids, &n, &cap) != 0) {
            fprintf(stderr, "tok_dump: encode failed\n");
            rc = 1;
        }
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        char *out;
        size_t olen;
        if (tok_decode(t, ids, n, &out, &olen, err, sizeof err) != 0) {
            fprintf(stderr, "tok_dump: %s\n", err);
            rc = 1;
            out = NULL, olen = 0;
        }
        putchar('\t');
        for (size_t i = 0; i < olen; i++) printf("%02x", (unsigned char)out[i]);
        putchar('\n');
        free(out);
        free(text);
    }
    free(line);
    free(ids);
    tok_free(t);
    return rc;
}
