/* fe_yaml.c — YAML documents for the front end: load, locate, read scalars.
 *
 * libyaml's document API parses the whole file into nodes with 0-based
 * start marks; ydoc_loc turns a mark into the 1-based line:col printed in
 * every message. Scalars are typed here, not by libyaml: a plain scalar is
 * an integer if it is all decimal digits, a number if strtod consumes it
 * whole, a boolean if it is true/false; a quoted scalar is always a string.
 * Mappings are checked for duplicate and unknown keys (libyaml accepts both).
 *
 * ytext_map recovers where each byte of a scalar's value sits in the file:
 * it walks the source from the scalar's start and matches the value's bytes
 * in order, skipping what folding or quoting removed (indentation, line
 * breaks, quotes, a block header). Escapes that change the text make the
 * rest of the map fall back to the scalar's start, which is still a valid
 * position.
 */
#include "fe_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fe_error(char *err, size_t errlen, SrcLoc loc, const char *fmt, ...) {
    if (!err || !errlen) return -1;
    int o = snprintf(err, errlen, "%s:%d:%d: ", loc.file ? loc.file : "<input>", loc.line, loc.col);
    if (o < 0 || (size_t)o >= errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + o, errlen - (size_t)o, fmt, ap);
    va_end(ap);
    return -1;
}

char *fe_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *fe_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- documents ------------------------------------------------------------- */

int ydoc_load(YDoc *d, const char *text, size_t len, const char *file, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    d->file = file;
    d->text = text;
    d->len = len;
    SrcLoc start = {file, 1, 1};

    int nl = 1;
    for (size_t i = 0; i < len; i++) nl += text[i] == '\n';
    d->lines = malloc((size_t)nl * sizeof *d->lines);
    if (!d->lines) return fe_error(err, errlen, start, "out of memory");
    d->lines[0] = 0;
    d->nlines = 1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') d->lines[d->nlines++] = i + 1;

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return fe_error(err, errlen, start, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d->doc)) {
        SrcLoc at = {file, (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1};
        if (p.error == YAML_MEMORY_ERROR || !p.problem) fe_error(err, errlen, at, "out of memory while reading YAML");
        else if (p.context && (p.context_mark.line != p.problem_mark.line || p.context_mark.column != p.problem_mark.column))
            fe_error(err, errlen, at, "invalid YAML: %s (%s that starts at line %d, column %d)", p.problem, p.context,
                     (int)p.context_mark.line + 1, (int)p.context_mark.column + 1);
        else if (p.context)
            fe_error(err, errlen, at, "invalid YAML: %s (%s)", p.problem, p.context);
        else
            fe_error(err, errlen, at, "invalid YAML: %s", p.problem);
        yaml_parser_delete(&p);
        return -1;
    }
    d->loaded = 1;
    if (!yaml_document_get_root_node(&d->doc)) {
        yaml_parser_delete(&p);
        return fe_error(err, errlen, start, "the file is empty; expected a YAML mapping");
    }
    /* exactly one document: a second one would silently be ignored */
    yaml_document_t extra;
    if (!yaml_parser_load(&p, &extra)) {
        SrcLoc at = {file, (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1};
        fe_error(err, errlen, at, "invalid YAML: %s", p.problem ? p.problem : "read error");
        yaml_parser_delete(&p);
        return -1;
    }
    yaml_node_t *r2 = yaml_document_get_root_node(&extra);
    SrcLoc at2 = r2 ? (SrcLoc){file, (int)r2->start_mark.line + 1, (int)r2->start_mark.column + 1} : start;
    yaml_document_delete(&extra);
    yaml_parser_delete(&p);
    if (r2) return fe_error(err, errlen, at2, "a second YAML document; expected exactly one");
    return 0;
}

void ydoc_free(YDoc *d) {
    if (d->loaded) yaml_document_delete(&d->doc);
    free(d->lines);
    memset(d, 0, sizeof *d);
}

yaml_node_t *ydoc_root(YDoc *d) { return yaml_document_get_root_node(&d->doc); }
yaml_node_t *ydoc_node(YDoc *d, int id) { return yaml_document_get_node(&d->doc, id); }

SrcLoc ydoc_loc(const YDoc *d, const yaml_node_t *n) {
    return (SrcLoc){d->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

/* ---- scalars --------------------------------------------------------------- */

const char *yscalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int is_plain(const yaml_node_t *n) { return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE; }

int ynode_is_null(const yaml_node_t *n) {
    if (!n) return 1;
    if (n->type != YAML_SCALAR_NODE || !is_plain(n)) return 0;
    const char *s = yscalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

void ynode_desc(const yaml_node_t *n, char *buf, size_t len) {
    if (!n || ynode_is_null(n)) snprintf(buf, len, "nothing");
    else if (n->type == YAML_MAPPING_NODE) snprintf(buf, len, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE) snprintf(buf, len, "a list");
    else if (!is_plain(n)) snprintf(buf, len, "the string \"%.60s\"", yscalar(n));
    else snprintf(buf, len, "'%.60s'", yscalar(n));
}

static int wrong(YDoc *d, yaml_node_t *n, const char *expected, const char *what, char *err, size_t errlen) {
    char got[96];
    ynode_desc(n, got, sizeof got);
    return fe_error(err, errlen, ydoc_loc(d, n), "expected %s for %s, got %s", expected, what, got);
}

int yread_int(YDoc *d, yaml_node_t *n, const char *what, int64_t *out, char *err, size_t errlen) {
    const char *s = yscalar(n);
    if (!s || !is_plain(n) || !*s) return wrong(d, n, "an integer", what, err, errlen);
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p) return wrong(d, n, "an integer", what, err, errlen);
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return wrong(d, n, "an integer", what, err, errlen);
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return fe_error(err, errlen, ydoc_loc(d, n), "%s is out of range: %s", what, s);
    *out = v;
    return 0;
}

int yread_pos_int(YDoc *d, yaml_node_t *n, const char *what, int64_t max, int64_t *out, char *err, size_t errlen) {
    if (yread_int(d, n, what, out, err, errlen)) return -1;
    if (*out <= 0)
        return fe_error(err, errlen, ydoc_loc(d, n), "%s must be a positive integer, got %lld", what, (long long)*out);
    if (*out > max)
        return fe_error(err, errlen, ydoc_loc(d, n), "%s is too large: %lld (at most %lld)", what, (long long)*out,
                        (long long)max);
    return 0;
}

int yread_num(YDoc *d, yaml_node_t *n, const char *what, double *out, char *err, size_t errlen) {
    const char *s = yscalar(n);
    if (!s || !is_plain(n) || !*s) return wrong(d, n, "a number", what, err, errlen);
    /* decimal only: no hex floats, no inf/nan spellings */
    const char *p = s + (*s == '-' || *s == '+');
    if (!((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9')))
        return wrong(d, n, "a number", what, err, errlen);
    for (const char *q = p; *q; q++)
        if (*q == 'x' || *q == 'X') return wrong(d, n, "a number", what, err, errlen);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end) return wrong(d, n, "a number", what, err, errlen);
    if (errno == ERANGE || !isfinite(v)) return fe_error(err, errlen, ydoc_loc(d, n), "%s is out of range: %s", what, s);
    *out = v;
    return 0;
}

int yread_bool(YDoc *d, yaml_node_t *n, const char *what, int *out, char *err, size_t errlen) {
    const char *s = yscalar(n);
    if (s && is_plain(n)) {
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
            *out = 1;
            return 0;
        }
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
            *out = 0;
            return 0;
        }
    }
    return wrong(d, n, "true or false", what, err, errlen);
}

int yread_str(YDoc *d, yaml_node_t *n, const char *what, const char **out, char *err, size_t errlen) {
    const char *s = yscalar(n);
    if (!s || ynode_is_null(n)) return wrong(d, n, "a string", what, err, errlen);
    *out = s;
    return 0;
}

/* ---- mappings -------------------------------------------------------------- */

static int check_pairs(YDoc *d, yaml_node_t *n, const char *what, char *err, size_t errlen) {
    yaml_node_pair_t *b = n->data.mapping.pairs.start, *e = n->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = b; p < e; p++) {
        yaml_node_t *k = ydoc_node(d, p->key);
        const char *ks = yscalar(k);
        if (!ks || ynode_is_null(k)) {
            char got[96];
            ynode_desc(k, got, sizeof got);
            return fe_error(err, errlen, ydoc_loc(d, k), "expected a plain name as a key in %s, got %s", what, got);
        }
        for (yaml_node_pair_t *q = b; q < p; q++) {
            yaml_node_t *k2 = ydoc_node(d, q->key);
            if (!strcmp(yscalar(k2), ks))
                return fe_error(err, errlen, ydoc_loc(d, k), "duplicate key '%s' in %s (first given at line %d, column %d)", ks,
                                what, (int)k2->start_mark.line + 1, (int)k2->start_mark.column + 1);
        }
    }
    return 0;
}

int ymap_check(YDoc *d, yaml_node_t *n, const char *what, char *err, size_t errlen) {
    if (n->type != YAML_MAPPING_NODE) return wrong(d, n, "a mapping", what, err, errlen);
    return check_pairs(d, n, what, err, errlen);
}

int ymap_read(YDoc *d, yaml_node_t *n, const char *what, const char *const *keys, int nkeys, yaml_node_t **vals,
              SrcLoc *klocs, char *err, size_t errlen) {
    for (int i = 0; i < nkeys; i++) {
        vals[i] = NULL;
        if (klocs) klocs[i] = n ? ydoc_loc(d, n) : (SrcLoc){d->file, 1, 1};
    }
    if (ynode_is_null(n)) return 0;
    if (ymap_check(d, n, what, err, errlen)) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(d, p->key);
        const char *ks = yscalar(k);
        int i = 0;
        while (i < nkeys && strcmp(keys[i], ks)) i++;
        if (i == nkeys) {
            char list[512];
            size_t o = 0;
            list[0] = 0;
            for (int j = 0; j < nkeys && o < sizeof list; j++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", keys[j]);
            if (nkeys == 0)
                return fe_error(err, errlen, ydoc_loc(d, k), "unknown key '%s' in %s; it takes no options", ks, what);
            return fe_error(err, errlen, ydoc_loc(d, k), "unknown key '%s' in %s; expected one of: %s", ks, what, list);
        }
        vals[i] = ydoc_node(d, p->value);
        if (klocs) klocs[i] = ydoc_loc(d, k);
    }
    return 0;
}

/* ---- scalar text maps ------------------------------------------------------ */

static size_t mark_offset(const YDoc *d, yaml_mark_t m) {
    if ((int)m.line >= d->nlines) return d->len;
    size_t o = d->lines[m.line];
    /* columns count characters; step over UTF-8 continuation bytes */
    for (size_t c = 0; c < m.column && o < d->len && d->text[o] != '\n'; c++) {
        o++;
        while (o < d->len && ((unsigned char)d->text[o] & 0xC0) == 0x80) o++;
    }
    return o;
}

int ytext_map(YDoc *d, yaml_node_t *n, LossText *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *v = yscalar(n);
    size_t vlen = n->data.scalar.length;
    if (strlen(v) != vlen) return fe_error(err, errlen, ydoc_loc(d, n), "the text contains a NUL character");
    out->text = malloc(vlen + 1);
    out->map = malloc((vlen + 1) * sizeof *out->map);
    if (!out->text || !out->map) {
        loss_text_free(out);
        return fe_error(err, errlen, ydoc_loc(d, n), "out of memory");
    }
    memcpy(out->text, v, vlen + 1);

    SrcLoc start = ydoc_loc(d, n);
    size_t p = mark_offset(d, n->start_mark), end = mark_offset(d, n->end_mark);
    int line = start.line, col = start.col;
    if (n->data.scalar.style == YAML_LITERAL_SCALAR_STYLE || n->data.scalar.style == YAML_FOLDED_SCALAR_STYLE) {
        while (p < end && d->text[p] != '\n') p++; /* the block header */
    }
    int lost = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (!lost) {
            size_t q = p;
            int ql = line, qc = col;
            while (q < end && d->text[q] != v[i]) {
                if (d->text[q] == '\n') {
                    ql++;
                    qc = 1;
                } else if (((unsigned char)d->text[q] & 0xC0) != 0x80)
                    qc++;
                q++;
            }
            if (q < end) {
                p = q;
                line = ql;
                col = qc;
            } else
                lost = 1;
        }
        out->map[i] = lost ? start : (SrcLoc){d->file, line, col};
        if (!lost) {
            /* step past the matched byte */
            if (d->text[p] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)d->text[p] & 0xC0) != 0x80)
                col++;
            p++;
        }
    }
    out->map[vlen] = lost ? start : (SrcLoc){d->file, line, col};
    return 0;
}

void loss_text_free(LossText *t) {
    free(t->text);
    free(t->map);
    t->text = NULL;
    t->map = NULL;
}
