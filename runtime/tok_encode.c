/* tok_encode.c — tok_encode (added tokens first, then the text between them) and tok_decode.
 *
 * Added tokens are found by one left-to-right scan: at each byte that some
 * eligible added token starts with (a 256-entry table), the candidates
 * starting with that byte are tried longest first, so the first hit is the
 * leftmost-longest match (what Hugging Face's Aho-Corasick search returns).
 * Eligible: non-special added tokens always (Hugging Face matches them even
 * with split_special_tokens), special ones only with TOK_PARSE_SPECIAL — by
 * default special-token text in data is plain text, so data cannot inject
 * control tokens. An lstrip / rstrip token also swallows the white space
 * next to it. The stretches between matches go to tok_encode_text.
 *
 * Decoding concatenates each token's raw bytes (an added token's are its
 * text). Nothing is validated as UTF-8: a token may hold part of a
 * character and the next token the rest.
 *
 * tok_encode allocates its scratch per call and frees it on return, so a
 * Tokenizer is read-only after loading and may be shared by threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* The white-space character ending just before p[i] (0 if none). */
static size_t space_before(const uint8_t *p, size_t i, size_t lo) {
    for (size_t w = 1; w <= 4 && w <= i - lo; w++) {
        uint32_t cp;
        if ((p[i - w] & 0xC0) == 0x80) continue;
        return tok_utf8_next(p + i - w, w, &cp) == w && tok_is_white_space(cp) ? w : 0;
    }
    return 0;
}

static size_t space_after(const uint8_t *p, size_t i, size_t len) {
    uint32_t cp;
    size_t w = tok_utf8_next(p + i, len - i, &cp);
    return w && tok_is_white_space(cp) ? w : 0;
}

/* The added token at p[i], or -1; *end gets where it ends. */
static int32_t added_at(const Tokenizer *t, const uint8_t *p, size_t i, size_t len, int special) {
    uint8_t b = p[i];
    for (uint32_t k = t->added_first[b]; k < t->added_first[b + 1]; k++) {
        int32_t id = t->added[k];
        const TokEntry *e = &t->tok[id];
        if (!special && (e->flags & TOKF_SPECIAL)) continue;
        if (e->raw_len <= len - i && memcmp(t->arena + e->raw_off, p + i, e->raw_len) == 0) return id;
    }
    return -1;
}

int tok_encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n,
               size_t *cap) {
    const uint8_t *p = (const uint8_t *)text;
    int special = (flags & TOK_PARSE_SPECIAL) != 0;
    const uint8_t *first = special ? t->first_any : t->first_plain;
    TokScratch s;
    memset(&s, 0, sizeof s);
    int rc = 0;
    size_t seg = 0; /* start of the text not yet encoded */
    for (size_t i = 0; i < len && t->nadded && rc == 0; i++) {
        if (!first[p[i]]) continue;
        int32_t id = added_at(t, p, i, len, special);
        if (id < 0) continue;
        const TokEntry *e = &t->tok[id];
        size_t a = i, b = i + e->raw_len, w;
        if (e->flags & TOKF_LSTRIP)
            while (a > seg && (w = space_before(p, a, seg)) > 0) a -= w;
        if (e->flags & TOKF_RSTRIP)
            while (b < len && (w = space_after(p, b, len)) > 0) b += w;
        if (a > seg) rc = tok_encode_text(t, &s, p + seg, a - seg, ids, n, cap);
        if (rc == 0) rc = tok_ids_push(ids, n, cap, id);
        seg = b;
        i = b - 1;
    }
    if (rc == 0 && seg < len) rc = tok_encode_text(t, &s, p + seg, len - seg, ids, n, cap);
    tok_scratch_free(&s);
    return rc;
}

int tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *len, char *err, size_t errlen) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n || !(t->tok[id].flags & TOKF_PRESENT)) {
            snprintf(err, errlen, "id %d at position %zu is not in the vocabulary (%d tokens)", id, i, t->n);
            return -1;
        }
        total += t->tok[id].raw_len;
    }
    char *buf = malloc(total + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory decoding %zu ids", n);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const TokEntry *e = &t->tok[ids[i]];
        memcpy(buf + k, t->arena + e->raw_off, e->raw_len);
        k += e->raw_len;
    }
    buf[k] = 0;
    *out = buf;
    *len = k;
    return 0;
}
