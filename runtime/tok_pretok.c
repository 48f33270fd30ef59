/* tok_pretok.c — one stretch of text (no added tokens in it) to ids.
 *
 * Steps, in Hugging Face's order: ByteLevel's add_prefix_space (a space in
 * front unless the text starts with one), then the text is cut into runs
 * of valid UTF-8; every byte outside them is encoded as its own byte token
 * (the HF libraries never see such bytes: this is dpoc's rule, and it makes
 * encoding total). A valid run is NFC-normalised when the tokenizer asks for
 * it (utf8proc; a run whose code points are all below U+0300 is already NFC
 * and skipped), then split with the pre-tokenizer pattern: every match is a
 * pre-token and so is any text between matches (Split's "Isolated"
 * behaviour; an empty match consumes nothing). Each pre-token goes to BPE.
 * The match data is created once per call and reused for every match; if
 * the JIT's default stack (32 KiB) is not enough for a match, a larger one is
 * attached and the match retried.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int needs_nfc(const uint8_t *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] >= 0xCC) return 1; /* a lead byte of a code point >= U+0300 */
    return 0;
}

/* NFC of a valid UTF-8 run into s->norm; *out and *outlen point at the result. */
static int normalize(TokScratch *s, const uint8_t *p, size_t len, const uint8_t **out, size_t *outlen) {
    const utf8proc_option_t opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    size_t units = len + 16;
    for (;;) {
        if (grow(&s->norm, &s->norm_cap, units * sizeof(utf8proc_int32_t)) != 0) return -1;
        utf8proc_ssize_t got = utf8proc_decompose(p, (utf8proc_ssize_t)len, (utf8proc_int32_t *)(void *)s->norm,
                                                  (utf8proc_ssize_t)units, opts);
        if (got < 0) return -1; /* cannot happen on valid UTF-8 */
        if ((size_t)got <= units) {
            utf8proc_ssize_t bytes = utf8proc_reencode((utf8proc_int32_t *)(void *)s->norm, got, opts);
            if (bytes < 0) return -1;
            *out = (const uint8_t *)s->norm;
            *outlen = (size_t)bytes;
            return 0;
        }
        units = (size_t)got;
    }
}

static int split_run(const Tokenizer *t, TokScratch *s, const uint8_t *p, size_t len, int32_t **ids, size_t *n,
                     size_t *cap) {
    if (!t->re) return tok_bpe_word(t, s, p, len, ids, n, cap);
    if (!s->md && !(s->md = pcre2_match_data_create_from_pattern(t->re, NULL))) return -1;
    size_t off = 0, gap = 0;
    while (off < len) {
        int rc = pcre2_match(t->re, p, len, off, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !s->jit) {
            if (!s->mctx && !(s->mctx = pcre2_match_context_create(NULL))) return -1;
            if (!(s->jit = pcre2_jit_stack_create(32 * 1024, 512 * 1024 * 1024, NULL))) return -1;
            pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return -1;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t a = ov[0], b = ov[1];
        if (b == a) { /* empty match: step over one character, it stays in the gap */
            uint32_t cp;
            size_t w = tok_utf8_next(p + a, len - a, &cp);
            off = a + (w ? w : 1);
            continue;
        }
        if (a > gap && tok_bpe_word(t, s, p + gap, a - gap, ids, n, cap) != 0) return -1;
        if (tok_bpe_word(t, s, p + a, b - a, ids, n, cap) != 0) return -1;
        off = gap = b;
    }
    if (gap < len) return tok_bpe_word(t, s, p + gap, len - gap, ids, n, cap);
    return 0;
}

int tok_encode_text(const Tokenizer *t, TokScratch *s, const uint8_t *p, size_t len, int32_t **ids, size_t *n,
                    size_t *cap) {
    if (t->prefix_space && len > 0 && p[0] != ' ') {
        if (grow(&s->pre, &s->pre_cap, len + 1) != 0) return -1;
        s->pre[0] = ' ';
        memcpy(s->pre + 1, p, len);
        p = (const uint8_t *)s->pre;
        len++;
    }
    size_t i = 0;
    while (i < len) {
        size_t run = tok_utf8_valid_prefix(p + i, len - i);
        if (run) {
            const uint8_t *q = p + i;
            size_t qlen = run;
            if (t->nfc && needs_nfc(q, qlen) && normalize(s, q, qlen, &q, &qlen) != 0) return -1;
            if (split_run(t, s, q, qlen, ids, n, cap) != 0) return -1;
            i += run;
        }
        if (i < len) { /* a byte that is not valid UTF-8 here */
            if (tok_ids_push(ids, n, cap, t->byte_id[p[i]]) != 0) return -1;
            i++;
        }
    }
    return 0;
}
