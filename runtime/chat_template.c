/* chat_template.c — the chatml, internlm2, llama3 and none templates.
 *
 * Each template is a short function appending pieces for one message; the
 * shapes follow the official Jinja templates (quoted in docs/data.md):
 *
 *   chatml     <|im_start|>ROLE\nCONTENT<|im_end|>\n, preceded when the
 *              first message is not a system message by Qwen2's default
 *              <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
 *   internlm2  <s> then <|im_start|>ROLE\nCONTENT<|im_end|>\n (no default)
 *   llama3     <|begin_of_text|> then
 *              <|start_header_id|>ROLE<|end_header_id|>\n\nTRIM(CONTENT)<|eot_id|>
 *   none       CONTENT, nothing else
 *
 * The generation prompt of every template is the header of an assistant
 * message, so rendering prompt + response once gives the prompt (with its
 * generation prompt) as a prefix of pieces. Pieces point at static strings
 * or into the messages: nothing is copied until chat_render_text.
 */
#include "chat_template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {"system", "user", "assistant"};
static const char *const role_headers_nl[] = {"system\n", "user\n", "assistant\n"};
static const char *const tpl_names[CHAT_TPL_COUNT] = {"chatml", "internlm2", "llama3", "none"};

static const char *const chatml_specials[] = {"<|im_start|>", "<|im_end|>", NULL};
static const char *const internlm2_specials[] = {"<s>", "<|im_start|>", "<|im_end|>", NULL};
static const char *const llama3_specials[] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                              "<|eot_id|>", NULL};
static const char *const no_specials[] = {NULL};

#define QWEN2_DEFAULT_SYSTEM "You are a helpful assistant."

const char *chat_role_name(ChatRole r) { return (unsigned)r < 3 ? role_names[r] : "?"; }

int chat_role_parse(const char *s, ChatRole *r) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, role_names[i])) {
            *r = (ChatRole)i;
            return 0;
        }
    return -1;
}

const char *chat_template_name(ChatTemplate t) { return (unsigned)t < CHAT_TPL_COUNT ? tpl_names[t] : "?"; }

int chat_template_parse(const char *s, ChatTemplate *t) {
    for (int i = 0; i < CHAT_TPL_COUNT; i++)
        if (!strcmp(s, tpl_names[i])) {
            *t = (ChatTemplate)i;
            return 0;
        }
    return -1;
}

const char *const *chat_template_specials(ChatTemplate t) {
    switch (t) {
    case CHAT_TPL_CHATML: return chatml_specials;
    case CHAT_TPL_INTERNLM2: return internlm2_specials;
    case CHAT_TPL_LLAMA3: return llama3_specials;
    default: return no_specials;
    }
}

const char *chat_template_default_system(ChatTemplate t) {
    return t == CHAT_TPL_CHATML ? QWEN2_DEFAULT_SYSTEM : NULL;
}

void chat_render_init(ChatRender *r) { memset(r, 0, sizeof *r); }

void chat_render_free(ChatRender *r) {
    free(r->pieces);
    free(r->content_start);
    free(r->turn_end);
    chat_render_init(r);
}

static int put(ChatRender *r, ChatPieceKind k, const char *s, size_t len) {
    if (r->npieces == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        ChatPiece *p = realloc(r->pieces, cap * sizeof *p);
        if (!p) return -1;
        r->pieces = p;
        r->cap = cap;
    }
    r->pieces[r->npieces++] = (ChatPiece){k, s, len};
    return 0;
}

static int put_str(ChatRender *r, ChatPieceKind k, const char *s) { return put(r, k, s, strlen(s)); }

/* ---- Unicode whitespace for llama3's `trim` ------------------------------- */

/* Python's str.isspace(): bidirectional class WS, B or S, or category Zs. */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Decodes the code point at s (n bytes left) into *c; returns its length
 * (1 for a byte that does not start a valid sequence, *c = 0xFFFD). */
static size_t utf8_dec(const unsigned char *s, size_t n, uint32_t *c) {
    unsigned b = s[0];
    size_t len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    if (len == 1) {
        *c = b;
        return 1;
    }
    if (!len || len > n) {
        *c = 0xFFFD;
        return 1;
    }
    uint32_t v = b & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *c = 0xFFFD;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    *c = v;
    return len;
}

const char *chat_trim(const char *s, size_t *len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = *len, a = 0;
    while (a < n) {
        uint32_t c;
        size_t k = utf8_dec(p + a, n - a, &c);
        if (!py_space(c)) break;
        a += k;
    }
    size_t b = n;
    while (b > a) {
        size_t start = b - 1; /* find the start of the last code point */
        while (start > a && (p[start] & 0xC0) == 0x80 && b - start < 4) start--;
        uint32_t c;
        size_t k = utf8_dec(p + start, b - start, &c);
        if (start + k != b) { /* not one whole sequence: a lone byte */
            c = p[b - 1];
            start = b - 1;
        }
        if (!py_space(c)) break;
        b = start;
    }
    *len = b - a;
    return s + a;
}

/* ---- templates --------------------------------------------------------------- */

static int grow_marks(ChatRender *r, size_t n) {
    if (n <= r->msgcap) return 0;
    size_t *a = realloc(r->content_start, n * sizeof *a);
    if (!a) return -1;
    r->content_start = a;
    size_t *b = realloc(r->turn_end, n * sizeof *b);
    if (!b) return -1;
    r->turn_end = b;
    r->msgcap = n;
    return 0;
}

static int chatml_msg(ChatRender *r, const ChatMsg *m, size_t i) {
    if (put_str(r, CHAT_PIECE_SPECIAL, "<|im_start|>") || put_str(r, CHAT_PIECE_TEXT, role_headers_nl[m->role]))
        return -1;
    r->content_start[i] = r->npieces;
    if (put(r, CHAT_PIECE_DATA, m->text, m->len) || put_str(r, CHAT_PIECE_SPECIAL, "<|im_end|>")) return -1;
    r->turn_end[i] = r->npieces;
    return put_str(r, CHAT_PIECE_TEXT, "\n");
}

static int llama3_msg(ChatRender *r, const ChatMsg *m, size_t i) {
    if (put_str(r, CHAT_PIECE_SPECIAL, "<|start_header_id|>") || put_str(r, CHAT_PIECE_TEXT, role_names[m->role]) ||
        put_str(r, CHAT_PIECE_SPECIAL, "<|end_header_id|>") || put_str(r, CHAT_PIECE_TEXT, "\n\n"))
        return -1;
    size_t len = m->len;
    const char *s = chat_trim(m->text, &len);
    r->content_start[i] = r->npieces;
    if (put(r, CHAT_PIECE_DATA, s, len) || put_str(r, CHAT_PIECE_SPECIAL, "<|eot_id|>")) return -1;
    r->turn_end[i] = r->npieces;
    return 0;
}

int chat_render(ChatTemplate t, const ChatMsg *msgs, size_t n, ChatRender *r) {
    r->npieces = 0;
    r->nmsgs = 0;
    if (grow_marks(r, n ? n : 1)) return -1;
    switch (t) {
    case CHAT_TPL_CHATML:
        if (n && msgs[0].role != CHAT_SYSTEM) {
            if (put_str(r, CHAT_PIECE_SPECIAL, "<|im_start|>") ||
                put_str(r, CHAT_PIECE_TEXT, "system\n" QWEN2_DEFAULT_SYSTEM) ||
                put_str(r, CHAT_PIECE_SPECIAL, "<|im_end|>") || put_str(r, CHAT_PIECE_TEXT, "\n"))
                return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (chatml_msg(r, &msgs[i], i)) return -1;
        break;
    case CHAT_TPL_INTERNLM2:
        if (put_str(r, CHAT_PIECE_SPECIAL, "<s>")) return -1;
        for (size_t i = 0; i < n; i++)
            if (chatml_msg(r, &msgs[i], i)) return -1;
        break;
    case CHAT_TPL_LLAMA3:
        if (put_str(r, CHAT_PIECE_SPECIAL, "<|begin_of_text|>")) return -1;
        for (size_t i = 0; i < n; i++)
            if (llama3_msg(r, &msgs[i], i)) return -1;
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            r->content_start[i] = r->npieces;
            if (put(r, CHAT_PIECE_DATA, msgs[i].text, msgs[i].len)) return -1;
            r->turn_end[i] = r->npieces;
        }
        break;
    }
    r->nmsgs = n;
    return 0;
}

char *chat_render_text(const ChatRender *r, size_t from, size_t to, size_t *len) {
    size_t n = 0;
    for (size_t i = from; i < to && i < r->npieces; i++) n += r->pieces[i].len;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = from; i < to && i < r->npieces; i++) {
        if (r->pieces[i].len) memcpy(out + k, r->pieces[i].s, r->pieces[i].len);
        k += r->pieces[i].len;
    }
    out[k] = 0;
    if (len) *len = k;
    return out;
}
