/* tok_test.h — small helpers shared by the tokenizer tests (header-only).
 *
 * CHECK counts failures and keeps going; expect_ids encodes a byte string
 * and compares with the expected ids, printing both on a mismatch;
 * write_file / make_dir build tokenizer directories in the test's work
 * folder; byte_vocab_json writes a vocab.json of the 256 byte tokens (id =
 * byte value) plus extra tokens, the smallest valid byte-level vocabulary.
 */
#ifndef DPOC_TOK_TEST_H
#define DPOC_TOK_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/tokenizer.h"

static int tt_failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            tt_failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

static inline void print_ids(FILE *f, const int32_t *ids, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", ids[i]);
    fputc(']', f);
}

/* expect_ids(t, "text", flags, IDS(id0, id1, ...)) */
static inline int expect_ids_(const char *file, int line, const Tokenizer *t, const char *text, size_t len,
                              unsigned flags, const int32_t *want, size_t nwant) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int ok = tok_encode(t, text, len, flags, &ids, &n, &cap) == 0 && n == nwant;
    for (size_t i = 0; ok && i < n; i++) ok = ids[i] == want[i]; /* want is NULL when nwant == 0 */
    if (!ok) {
        tt_failures++;
        fprintf(stderr, "%s:%d: encode(\"%.*s\", flags %u) = ", file, line, (int)(len < 60 ? len : 60), text, flags);
        print_ids(stderr, ids, n);
        fprintf(stderr, ", want ");
        print_ids(stderr, want, nwant);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}
#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))
/* text is a string literal (NUL bytes inside count) */
#define expect_ids(t, lit, flags, ...) expect_ids_(__FILE__, __LINE__, t, lit, sizeof(lit) - 1, flags, __VA_ARGS__)
#define expect_none(t, lit, flags) expect_ids_(__FILE__, __LINE__, t, lit, sizeof(lit) - 1, flags, NULL, 0)

static inline void make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static inline void write_file(const char *dir, const char *name, const char *content, size_t len) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(content, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}
#define write_str(dir, name, s) write_file(dir, name, s, strlen(s))

static inline void remove_file(const char *dir, const char *name) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    remove(path);
}

/* GPT-2's byte alphabet: the character spelling byte b, as UTF-8. */
static inline const char *byte_spelling(int b, char *out) {
    unsigned cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) cp = (unsigned)b;
    else if (b <= 0x20) cp = 256u + (unsigned)b;
    else if (b >= 0x7F && b <= 0xA0) cp = 256u + 33 + (unsigned)(b - 0x7F);
    else cp = 256u + 67;
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
    return out;
}

/* JSON text of {"<byte 0>": 0, ..., "<byte 255>": 255, extra...}; extra is
 * appended verbatim inside the object (e.g. ", \"ab\": 256"). skip_byte >= 0
 * leaves that byte out. Returns a static buffer. */
static inline const char *byte_vocab_json(const char *extra, int skip_byte) {
    static char buf[1 << 16];
    size_t k = 0;
    k += (size_t)snprintf(buf + k, sizeof buf - k, "{");
    int first = 1;
    for (int b = 0; b < 256; b++) {
        if (b == skip_byte) continue;
        char s[4];
        byte_spelling(b, s);
        const char *q = (!strcmp(s, "\"") || !strcmp(s, "\\")) ? "\\" : "";
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s\"%s%s\": %d", first ? "" : ", ", q, s, b);
        first = 0;
    }
    k += (size_t)snprintf(buf + k, sizeof buf - k, "%s}", extra ? extra : "");
    return buf;
}

#endif
