/* jsonl.c — a strict, bounded JSON Lines reader (see jsonl.h).
 *
 * Lines are cut from a 64 KiB read buffer with memchr and copied into a
 * line buffer that never grows past max_row_bytes + 1: the rest of an
 * oversize line is read and dropped, so a 2 GB line costs no memory and the
 * reader carries on with the next line. A line is then vetted in two
 * passes before cJSON sees it: UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF), then a small JSON-aware scan that tracks strings and escapes
 * to refuse raw control bytes, "\u0000" and nesting deeper than max_depth.
 * The scan also catches a line that ends inside a string or with brackets
 * open (cJSON's own error position is only approximate). cJSON gets the
 * line with its NUL terminator counted so that it rejects trailing garbage.
 */
#include "jsonl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 65536

struct JsonlReader {
    FILE *f;
    int own;
    char *name;
    size_t max_row;
    int max_depth;
    char *rbuf; /* read buffer */
    size_t rpos, rlen;
    int eof;
    char *line; /* current line, NUL-terminated */
    size_t len, cap;
    int oversize;
    long lineno;   /* lines read so far */
    uint64_t rows; /* non-blank lines so far */
    long row_line;
    uint64_t row_index;
    int bom;
};

static void fmt(char *err, size_t errlen, const char *f, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
}

JsonlReader *jsonl_open_stream(FILE *f, const char *name, const JsonlOpts *o, char *err, size_t errlen) {
    JsonlReader *r = calloc(1, sizeof *r);
    if (!r) {
        fmt(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    r->f = f;
    r->name = strdup(name);
    r->max_row = o && o->max_row_bytes ? o->max_row_bytes : JSONL_DEFAULT_MAX_ROW;
    r->max_depth = o && o->max_depth > 0 ? o->max_depth : JSONL_DEFAULT_MAX_DEPTH;
    r->rbuf = malloc(READ_CHUNK);
    r->cap = 256;
    r->line = malloc(r->cap);
    if (!r->name || !r->rbuf || !r->line) {
        fmt(err, errlen, "%s: out of memory", name);
        jsonl_close(r);
        return NULL;
    }
    return r;
}

JsonlReader *jsonl_open(const char *path, const JsonlOpts *o, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fmt(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    JsonlReader *r = jsonl_open_stream(f, path, o, err, errlen);
    if (!r) {
        fclose(f);
        return NULL;
    }
    r->own = 1;
    return r;
}

void jsonl_close(JsonlReader *r) {
    if (!r) return;
    if (r->own && r->f) fclose(r->f);
    free(r->name);
    free(r->rbuf);
    free(r->line);
    free(r);
}

const char *jsonl_name(const JsonlReader *r) { return r->name; }
long jsonl_line(const JsonlReader *r) { return r->row_line; }
uint64_t jsonl_row_index(const JsonlReader *r) { return r->row_index; }
int jsonl_bom(const JsonlReader *r) { return r->bom; }

/* Appends n bytes to the line unless that passes the limit (max_row + 1, for
 * a CR that will be dropped), in which case the line is marked oversize. */
static int line_append(JsonlReader *r, const char *p, size_t n) {
    if (r->oversize) return 0;
    if (r->len + n > r->max_row + 1) {
        r->oversize = 1;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap;
        while (cap < r->len + n + 1) cap *= 2;
        char *nl = realloc(r->line, cap);
        if (!nl) return -1;
        r->line = nl;
        r->cap = cap;
    }
    memcpy(r->line + r->len, p, n);
    r->len += n;
    return 0;
}

/* Reads one raw line. 1 a line, 0 end of input, -1 I/O error or no memory. */
static int read_line(JsonlReader *r, char *err, size_t errlen) {
    r->len = 0;
    r->oversize = 0;
    int got = 0;
    for (;;) {
        if (r->rpos == r->rlen) {
            if (r->eof) break;
            r->rlen = fread(r->rbuf, 1, READ_CHUNK, r->f);
            r->rpos = 0;
            if (r->rlen == 0) {
                if (ferror(r->f)) {
                    fmt(err, errlen, "%s:%ld: read error: %s", r->name, r->lineno + 1, strerror(errno));
                    return -1;
                }
                r->eof = 1;
                break;
            }
        }
        got = 1;
        const char *start = r->rbuf + r->rpos;
        size_t avail = r->rlen - r->rpos;
        const char *nl = memchr(start, '\n', avail);
        size_t n = nl ? (size_t)(nl - start) : avail;
        if (line_append(r, start, n) < 0) {
            fmt(err, errlen, "%s:%ld: out of memory", r->name, r->lineno + 1);
            return -1;
        }
        r->rpos += nl ? n + 1 : n;
        if (nl) break;
    }
    if (!got) return 0;
    r->lineno++;
    if (!r->oversize && r->len && r->line[r->len - 1] == '\r') r->len--;
    if (!r->oversize && r->len > r->max_row) r->oversize = 1;
    r->line[r->oversize ? 0 : r->len] = 0;
    return 1;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* The next non-blank line: 1 (r->line/len set, or r->oversize), 0 end, -1 error. */
static int next_row_line(JsonlReader *r, char *err, size_t errlen) {
    for (;;) {
        int rc = read_line(r, err, errlen);
        if (rc <= 0) return rc;
        if (r->lineno == 1 && !r->oversize && r->len >= 3 && !memcmp(r->line, "\xEF\xBB\xBF", 3)) {
            r->bom = 1;
            memmove(r->line, r->line + 3, r->len - 3 + 1);
            r->len -= 3;
        }
        if (!r->oversize && is_blank(r->line, r->len)) continue;
        r->row_line = r->lineno;
        r->row_index = r->rows++;
        return 1;
    }
}

int jsonl_next(JsonlReader *r, cJSON **row, char *err, size_t errlen) {
    *row = NULL;
    int rc = next_row_line(r, err, errlen);
    if (rc < 0) return JSONL_FATAL;
    if (rc == 0) return JSONL_END;
    if (r->oversize) {
        fmt(err, errlen, "%s:%ld: row longer than %zu bytes (the --max-row-bytes limit)", r->name, r->row_line,
            r->max_row);
        return JSONL_BAD;
    }
    char msg[256];
    size_t col = 0;
    if (jsonl_parse_line(r->line, r->len, r->max_depth, row, &col, msg, sizeof msg) < 0) {
        if (col)
            fmt(err, errlen, "%s:%ld:%zu: %s", r->name, r->row_line, col + (r->row_line == 1 && r->bom ? 3 : 0),
                msg);
        else
            fmt(err, errlen, "%s:%ld: %s", r->name, r->row_line, msg);
        return JSONL_BAD;
    }
    return JSONL_ROW;
}

int jsonl_count_rows(const char *path, const JsonlOpts *o, uint64_t *n, char *err, size_t errlen) {
    *n = 0;
    JsonlReader *r = jsonl_open(path, o, err, errlen);
    if (!r) return -1;
    int rc;
    while ((rc = next_row_line(r, err, errlen)) > 0) (*n)++;
    jsonl_close(r);
    return rc < 0 ? -1 : 0;
}

/* ---- line vetting ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
        if (c == 0xED) hi = 0x9F;      /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;      /* at most U+10FFFF */
    } else
        return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

int jsonl_parse_line(const char *line, size_t len, int max_depth, cJSON **out, size_t *col, char *err,
                     size_t errlen) {
    const unsigned char *s = (const unsigned char *)line;
    *out = NULL;
    *col = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(s + i, len - i);
        if (!k) {
            *col = i + 1;
            fmt(err, errlen, "invalid UTF-8 (byte 0x%02x)", s[i]);
            return -1;
        }
        i += k;
    }
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        *col = 1;
        fmt(err, errlen, "byte-order mark (U+FEFF) at the start of a line other than the first");
        return -1;
    }
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (in_str) {
            if (c == '"')
                in_str = 0;
            else if (c == '\\') {
                if (i + 5 < len && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) {
                    *col = i + 1;
                    fmt(err, errlen, "\\u0000 (NUL) inside a string is not supported");
                    return -1;
                }
                if (i + 1 < len && s[i + 1] < 0x20) {
                    *col = i + 2;
                    fmt(err, errlen, "invalid JSON: control byte 0x%02x inside a string", s[i + 1]);
                    return -1;
                }
                i++; /* the escaped byte */
            } else if (c < 0x20) {
                *col = i + 1;
                fmt(err, errlen, "invalid JSON: control byte 0x%02x inside a string", c);
                return -1;
            }
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                *col = i + 1;
                fmt(err, errlen, "JSON nested deeper than %d levels", max_depth);
                return -1;
            }
        } else if (c == ']' || c == '}')
            depth--;
        else if (c < 0x20 && c != '\t' && c != '\r') {
            *col = i + 1;
            fmt(err, errlen, "invalid JSON: control byte 0x%02x", c);
            return -1;
        }
    }
    if (in_str) {
        fmt(err, errlen, "invalid JSON: the line ends inside a string");
        return -1;
    }
    if (depth > 0) {
        fmt(err, errlen, "invalid JSON: %d unclosed bracket%s at the end of the line", depth, depth == 1 ? "" : "s");
        return -1;
    }
    /* cJSON wants the terminator inside the length to reject trailing text. */
    char *copy = NULL;
    const char *text = line;
    if (line[len] != 0) {
        copy = malloc(len + 1);
        if (!copy) {
            fmt(err, errlen, "out of memory");
            return -1;
        }
        memcpy(copy, line, len);
        copy[len] = 0;
        text = copy;
    }
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!v) {
        /* cJSON's error position can be one past the offending byte */
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
        free(copy);
        if (len == 0) {
            fmt(err, errlen, "invalid JSON: empty");
            return -1;
        }
        *col = (pos < len ? pos : len - 1) + 1;
        fmt(err, errlen, "invalid JSON");
        return -1;
    }
    free(copy);
    *out = v;
    return 0;
}
