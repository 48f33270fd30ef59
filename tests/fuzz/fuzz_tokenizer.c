/* fuzz_tokenizer.c — libFuzzer target: encode and decode arbitrary bytes.
 *
 * Loads tests/data/tok/bytes (Qwen2 pattern, NFC, ChatML special tokens)
 * and tests/data/tok/tiny (GPT-2 pattern, no NFC, lstrip/rstrip tokens) once
 * — found from this file's own path, so it works from any build directory,
 * or from DPOC_TOK_DATA if defined. Every input is encoded with and without
 * TOK_PARSE_SPECIAL and decoded. Checked: every id is inside the vocabulary;
 * encoding twice gives the same ids (the second time through the word memo);
 * with the bytes tokenizer, decode(encode(x)) == NFC(x) when x is valid
 * UTF-8 (NFC from utf8proc), and == x when x cannot change under NFC (no
 * byte >= 0xCC, so no code point >= U+0300); with the tiny tokenizer and
 * special text as plain text, decode(encode(x)) == x always.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "runtime/tokenizer.h"

static Tokenizer *bytes_tok, *tiny_tok;

static void fail(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: %s\n", what);
    abort();
}

static Tokenizer *load(const char *name) {
    char dir[4096], err[1024];
#ifdef DPOC_TOK_DATA
    snprintf(dir, sizeof dir, "%s/%s", DPOC_TOK_DATA, name);
#else
    const char *self = __FILE__, *slash = strrchr(self, '/');
    int keep = slash ? (int)(slash - self) : 1;
    snprintf(dir, sizeof dir, "%.*s/../data/tok/%s", keep, slash ? self : ".", name);
#endif
    Tokenizer *t = tok_load(dir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err);
        abort();
    }
    return t;
}

static int valid_utf8(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Encodes, checks the ids, encodes again, decodes; returns the decoded bytes. */
static char *round_trip(const Tokenizer *t, const uint8_t *data, size_t size, unsigned flags, size_t *olen) {
    int32_t *ids = NULL, *again = NULL;
    size_t n = 0, cap = 0, n2 = 0, cap2 = 0;
    if (tok_encode(t, (const char *)data, size, flags, &ids, &n, &cap) != 0) fail("encode failed");
    if (tok_encode(t, (const char *)data, size, flags, &again, &n2, &cap2) != 0) fail("second encode failed");
    if (n != n2 || (n && memcmp(ids, again, n * sizeof *ids))) fail("encoding twice gave different ids");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok_vocab_size(t) || !tok_token_str(t, ids[i])) fail("id outside the vocabulary");
    char *out = NULL, err[256];
    if (tok_decode(t, ids, n, &out, olen, err, sizeof err) != 0) fail(err);
    free(ids);
    free(again);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!bytes_tok) {
        bytes_tok = load("bytes");
        tiny_tok = load("tiny");
    }
    int valid = valid_utf8(data, size), stable = 1;
    for (size_t i = 0; i < size; i++)
        if (data[i] >= 0xCC) stable = 0;
    uint8_t *nfc = NULL;
    utf8proc_ssize_t nfc_len = 0;
    if (valid) {
        nfc_len = utf8proc_map(data, (utf8proc_ssize_t)size, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nfc_len < 0) fail("utf8proc_map refused valid UTF-8");
    }
    for (unsigned flags = 0; flags <= TOK_PARSE_SPECIAL; flags += TOK_PARSE_SPECIAL) {
        size_t olen;
        char *out = round_trip(bytes_tok, data, size, flags, &olen);
        if (valid && (olen != (size_t)nfc_len || memcmp(out, nfc, olen))) fail("bytes: decode(encode(x)) != NFC(x)");
        if (stable && (olen != size || memcmp(out, data, size))) fail("bytes: decode(encode(x)) != x");
        free(out);
        out = round_trip(tiny_tok, data, size, flags, &olen);
        if (!flags && (olen != size || memcmp(out, data, size))) fail("tiny: decode(encode(x)) != x");
        free(out);
    }
    free(nfc);
    return 0;
}
