/* tok_regex.c — compiling the pre-tokenizer pattern with PCRE2 (UTF + UCP, JIT).
 *
 * The pattern is taken as written in tokenizer.json (or the built-in GPT-2 /
 * Qwen2 pattern) with one translation: `\s` and `\S` are spelled out as the
 * Unicode White_Space set. With PCRE2_UCP, PCRE2 10.42's `\s` is \p{Z} plus
 * \h and \v, which also holds U+180E (MONGOLIAN VOWEL SEPARATOR, no longer
 * white space since Unicode 6.3); Oniguruma (Hugging Face tokenizers) and
 * Python's `regex` use White_Space. Outside a character class `\s` becomes
 * `[set]` and `\S` `[^set]`; inside one `\s` becomes the bare ranges (a
 * `\S` inside a class is left to PCRE2). `\Q...\E` quoting, escapes and a
 * leading `]` or `^` in a class are tracked so nothing else changes. The
 * original is compiled first so that a broken pattern is reported at its own
 * offsets. JIT compilation is attempted; without it PCRE2 interprets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static const char WS_RANGES[] =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

static char *rewrite_space(const char *pat) {
    size_t len = strlen(pat), cap = len * (sizeof WS_RANGES + 3) + 1;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < len;) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char d = pat[i + 1];
            if (d == 'Q') { /* \Q...\E: copy verbatim */
                const char *end = strstr(pat + i + 2, "\\E");
                size_t stop = end ? (size_t)(end - pat) + 2 : len;
                memcpy(o, pat + i, stop - i);
                o += stop - i;
                i = stop;
                continue;
            }
            if (d == 's') {
                o += sprintf(o, in_class ? "%s" : "[%s]", WS_RANGES);
            } else if (d == 'S' && !in_class) {
                o += sprintf(o, "[^%s]", WS_RANGES);
            } else {
                *o++ = c;
                *o++ = d;
            }
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            *o++ = pat[i++];
            if (i < len && pat[i] == '^') *o++ = pat[i++];
            if (i < len && pat[i] == ']') *o++ = pat[i++]; /* a literal ] first in the class */
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') { /* [:posix:] */
            const char *end = strstr(pat + i + 2, ":]");
            size_t stop = end ? (size_t)(end - pat) + 2 : i + 1;
            memcpy(o, pat + i, stop - i);
            o += stop - i;
            i = stop;
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        *o++ = pat[i++];
    }
    *o = 0;
    return out;
}

int tok_regex_compile(Tokenizer *t, const char *where, char *err, size_t errlen) {
    if (!t->pattern) return 0;
    uint32_t opts = PCRE2_UTF | (t->literal ? PCRE2_LITERAL : PCRE2_UCP);
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)t->pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "%s: the pre-tokenizer pattern does not compile (at offset %zu: %s)", where,
                 (size_t)off, (const char *)msg);
        return -1;
    }
    if (!t->literal) {
        char *wide = rewrite_space(t->pattern);
        pcre2_code_free(re);
        re = wide ? pcre2_compile((PCRE2_SPTR)wide, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL) : NULL;
        free(wide);
        if (!re) {
            snprintf(err, errlen, "%s: the pre-tokenizer pattern does not compile once \\s is spelled out", where);
            return -1;
        }
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: without it pcre2_match interprets */
    t->re = re;
    return 0;
}
