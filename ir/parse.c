/* parse.c — reads IR text (the format print.c writes) into an empty graph.
 *
 * The text is read line by line with a tiny hand-written scanner: a pointer
 * into the current line, whose column is its distance from the line start.
 * A node line is split into its parts (id, declared type, op, operands,
 * attributes, flags, sharding, location comment), then turned into a
 * prototype node (location included) and handed to the public builder
 * (ir_add_node), so hash-consing and shape inference apply exactly as for a
 * front end. Before
 * the builder runs, ir_infer is tried on a copy so that a shape error, or a
 * declared type that disagrees with the inferred one, is reported at the
 * right column. Ids in the text only have to increase; a sorted map turns
 * them into graph ids (two equal lines map to one node).
 *
 * Every error is "<fname>:<line>:<col>: <message>" and the first one stops
 * the parse. Nothing here trusts the input: numbers are range-checked (dims
 * and attributes are bounded so shape arithmetic cannot overflow), strings
 * are length-limited, and the scanner never reads past the terminating NUL.
 */
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_STRING = 1023, MAX_ID = INT32_MAX };

typedef struct Parser {
    IrGraph *g;
    const char *fname;
    const char *p;     /* current position */
    const char *line;  /* start of the current line */
    int lineno;
    char *err;
    size_t errlen;
    int64_t *tid;      /* text ids, increasing */
    int32_t *gid;      /* graph id of each text id */
    int32_t nmap, capmap;
    int32_t files[64]; /* string ids of location files by hash, -1 none */
} Parser;

static int perr(Parser *P, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(Parser *P, const char *at, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(P->err, P->errlen, "%s:%d:%d: %s", P->fname, P->lineno, (int)(at - P->line) + 1, msg);
    return -1;
}

/* ---- scanner ------------------------------------------------------------- */

static void skip_ws(Parser *P) {
    while (*P->p == ' ' || *P->p == '\t' || *P->p == '\r') P->p++;
}

static int at_eol(const Parser *P) { return *P->p == '\n' || *P->p == '\0'; }

static int is_ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static int is_ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Reads an identifier into buf (truncating very long ones, which then match
 * nothing); returns its length, 0 when there is none. */
static int scan_ident(Parser *P, char *buf, size_t len) {
    size_t n = 0;
    if (!is_ident_start(*P->p)) return 0;
    while (is_ident_char(*P->p)) {
        if (n + 1 < len) buf[n] = *P->p;
        n++;
        P->p++;
    }
    buf[n + 1 < len ? n : len - 1] = '\0';
    return (int)n;
}

/* Describes what sits at the cursor, for "expected X, found Y" messages. */
static const char *found(const Parser *P, char *buf, size_t len) {
    if (at_eol(P)) return "end of line";
    unsigned char c = (unsigned char)*P->p;
    if (c >= 0x21 && c <= 0x7e) snprintf(buf, len, "'%c'", c);
    else snprintf(buf, len, "byte 0x%02x", c);
    return buf;
}

static int expect_char(Parser *P, char c, const char *what) {
    skip_ws(P);
    if (*P->p != c) {
        char fb[16];
        return perr(P, P->p, "expected %s, found %s", what, found(P, fb, sizeof fb));
    }
    P->p++;
    return 0;
}

/* -?[0-9]+ within [lo, hi] */
static int scan_int(Parser *P, int64_t lo, int64_t hi, const char *what, int64_t *out) {
    const char *start = P->p;
    int neg = 0;
    if (*P->p == '-') { neg = 1; P->p++; }
    if (!isdigit((unsigned char)*P->p)) {
        char fb[16];
        P->p = start;
        return perr(P, start, "expected %s, found %s", what, found(P, fb, sizeof fb));
    }
    int64_t v = 0;
    int big = 0;
    while (isdigit((unsigned char)*P->p)) {
        if (v > (INT64_MAX - 9) / 10) big = 1;
        else v = v * 10 + (*P->p - '0');
        P->p++;
    }
    if (neg) v = -v;
    if (big || v < lo || v > hi)
        return perr(P, start, "%s %.*s out of range [%lld, %lld]", what, (int)(P->p - start), start, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

/* number: -?(D+(.D*)?|.D+)([eE][+-]?D+)? | -?inf | -?nan */
static int scan_number(Parser *P, double *out) {
    const char *s = P->p, *q = s;
    char fb[16];
    if (*q == '-') q++;
    if (strncmp(q, "inf", 3) == 0 && !is_ident_char(q[3])) {
        P->p = q + 3;
        *out = *s == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (strncmp(q, "nan", 3) == 0 && !is_ident_char(q[3])) {
        P->p = q + 3;
        *out = *s == '-' ? -NAN : NAN;
        return 0;
    }
    int digits = 0;
    while (isdigit((unsigned char)*q)) { q++; digits++; }
    if (*q == '.') {
        q++;
        while (isdigit((unsigned char)*q)) { q++; digits++; }
    }
    if (!digits) return perr(P, s, "expected a number, found %s", found(P, fb, sizeof fb));
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1;
        if (*e == '+' || *e == '-') e++;
        if (!isdigit((unsigned char)*e)) return perr(P, s, "malformed number '%.*s'", (int)(e - s), s);
        while (isdigit((unsigned char)*e)) e++;
        q = e;
    }
    if (is_ident_char(*q) || *q == '.') return perr(P, s, "malformed number '%.*s'", (int)(q - s) + 1, s);
    char buf[128];
    if ((size_t)(q - s) >= sizeof buf) return perr(P, s, "number too long");
    memcpy(buf, s, (size_t)(q - s));
    buf[q - s] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    if (errno == ERANGE && isinf(v)) return perr(P, s, "number %s out of range for a double", buf);
    *out = v;
    P->p = q;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "..." with escapes \" \\ \n \t \xHH; buf gets MAX_STRING + 1 bytes */
static int scan_string(Parser *P, char *buf) {
    char fb[16];
    const char *start = P->p;
    if (*P->p != '"') return perr(P, P->p, "expected a quoted string, found %s", found(P, fb, sizeof fb));
    P->p++;
    size_t n = 0;
    for (;;) {
        const char *c = P->p;
        unsigned char ch = (unsigned char)*c;
        if (ch == '"') break;
        if (ch == '\n' || ch == '\0') return perr(P, start, "unterminated string");
        if (ch < 0x20 || ch == 0x7f) return perr(P, c, "control byte 0x%02x in string (write \\x%02x)", ch, ch);
        if (n == MAX_STRING) return perr(P, start, "string longer than %d bytes", MAX_STRING);
        if (ch != '\\') {
            buf[n++] = (char)ch;
            P->p++;
            continue;
        }
        switch (c[1]) {
        case '"': case '\\': buf[n++] = c[1]; P->p += 2; break;
        case 'n': buf[n++] = '\n'; P->p += 2; break;
        case 't': buf[n++] = '\t'; P->p += 2; break;
        case 'x': {
            int hi = hexval(c[2]), lo = hi < 0 ? -1 : hexval(c[3]);
            if (hi < 0 || lo < 0) return perr(P, c, "expected two hex digits after \\x");
            if (hi == 0 && lo == 0) return perr(P, c, "NUL byte in string");
            buf[n++] = (char)(hi * 16 + lo);
            P->p += 4;
            break;
        }
        default:
            return perr(P, c, "unknown escape in string (use \\\" \\\\ \\n \\t or \\xHH)");
        }
    }
    P->p++;
    buf[n] = '\0';
    return 0;
}

/* ---- the text-id -> graph-id map ------------------------------------------ */

static int32_t map_find(const Parser *P, int64_t tid) {
    int32_t lo = 0, hi = P->nmap - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (P->tid[mid] == tid) return P->gid[mid];
        if (P->tid[mid] < tid) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int map_add(Parser *P, int64_t tid, int32_t gid) {
    if (P->nmap == P->capmap) {
        int32_t cap = P->capmap ? P->capmap * 2 : 256;
        int64_t *t = realloc(P->tid, (size_t)cap * sizeof *t);
        if (!t) return -1;
        P->tid = t;
        int32_t *g = realloc(P->gid, (size_t)cap * sizeof *g);
        if (!g) return -1;
        P->gid = g;
        P->capmap = cap;
    }
    P->tid[P->nmap] = tid;
    P->gid[P->nmap++] = gid;
    return 0;
}

/* %N referring to an earlier line; returns the graph id */
static int scan_ref(Parser *P, int32_t *out) {
    char fb[16];
    skip_ws(P);
    const char *at = P->p;
    if (*P->p != '%') return perr(P, at, "expected a value like %%3, found %s", found(P, fb, sizeof fb));
    P->p++;
    int64_t tid;
    if (scan_int(P, 0, MAX_ID, "value id", &tid)) return -1;
    int32_t id = map_find(P, tid);
    if (id < 0) return perr(P, at, "undefined value %%%lld", (long long)tid);
    *out = id;
    return 0;
}

/* ---- pieces of a node line ------------------------------------------------ */

typedef struct Line {
    IrNode n;           /* the prototype, with the declared type */
    const char *type_at, *op_at;
    char name[MAX_STRING + 1];
    char file[MAX_STRING + 1];
    int has_loc;
    int line, col;
} Line;

static void type_str(const IrNode *n, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "%s[", ir_dtype_name((IrDType)n->dtype));
    for (int d = 0; d < n->ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ",%lld" : "%lld", (long long)n->shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static int parse_type(Parser *P, IrNode *n) {
    char id[16], fb[16];
    skip_ws(P);
    const char *at = P->p;
    if (!scan_ident(P, id, sizeof id)) return perr(P, at, "expected a dtype (f32, f64 or i32), found %s", found(P, fb, sizeof fb));
    int t = 0;
    while (t < DT_COUNT && strcmp(id, ir_dtype_name((IrDType)t)) != 0) t++;
    if (t == DT_COUNT) return perr(P, at, "unknown dtype '%s' (expected f32, f64 or i32)", id);
    n->dtype = (uint8_t)t;
    if (*P->p != '[') return perr(P, P->p, "expected '[' after the dtype, found %s", found(P, fb, sizeof fb));
    P->p++;
    skip_ws(P);
    int64_t numel = 1;
    if (*P->p == ']') {
        P->p++;
        return 0;
    }
    for (;;) {
        skip_ws(P);
        const char *dat = P->p;
        int64_t v;
        if (scan_int(P, INT64_MIN + 1, IR_TEXT_NUMEL_MAX, "dimension", &v)) return -1;
        if (v < 1) return perr(P, dat, "dimension %lld must be >= 1", (long long)v);
        if (n->ndim == IR_MAX_DIMS) return perr(P, dat, "more than %d dimensions", IR_MAX_DIMS);
        if (v > IR_TEXT_NUMEL_MAX / numel) return perr(P, dat, "type has more than 2^62 elements");
        numel *= v;
        n->shape[n->ndim++] = v;
        skip_ws(P);
        if (*P->p == ']') {
            P->p++;
            return 0;
        }
        if (*P->p != ',') return perr(P, P->p, "expected ',' or ']' in the shape, found %s", found(P, fb, sizeof fb));
        P->p++;
    }
}

static int parse_operands(Parser *P, Line *L) {
    IrNode *n = &L->n;
    const IrOpInfo *info = &ir_op_info[n->op];
    skip_ws(P);
    if (n->op == OP_PARAM || n->op == OP_INPUT) {
        if (scan_string(P, L->name)) return -1;
        if (L->name[0] == '\0') return perr(P, P->p - 2, "%s name is empty", info->name);
        int32_t s = ir_str(P->g, L->name);
        if (s < 0) return perr(P, L->op_at, "%s", P->g->err);
        n->name = s;
        return 0;
    }
    if (n->op == OP_CONST) return scan_number(P, &n->fval);
    int count = 0;
    const char *first = P->p;
    if (*P->p == '%') {
        for (;;) {
            int32_t id;
            if (scan_ref(P, &id)) return -1;
            if (count < IR_MAX_IN) n->in[count] = id;
            count++;
            skip_ws(P);
            if (*P->p != ',') break;
            P->p++;
        }
    }
    if (count != info->nin)
        return perr(P, count ? first : L->op_at, "%s takes %d operand%s, got %d", info->name, info->nin,
                    info->nin == 1 ? "" : "s", count);
    return 0;
}

_Static_assert(IR_INPUT_SEQS == 0 && IR_INPUT_PAIRS == 1 && IR_PARAM_TRAINABLE == 0 && IR_PARAM_FROZEN == 1,
               "scan_keyword2 stores the first keyword as 0, the second as 1");

/* one of two keywords, stored as 0 or 1 in *out */
static int scan_keyword2(Parser *P, const char *k0, const char *k1, const char *attr, int64_t *out) {
    char w[16] = "";
    const char *at = P->p;
    scan_ident(P, w, sizeof w);
    if (strcmp(w, k0) == 0 || strcmp(w, k1) == 0) {
        *out = strcmp(w, k1) == 0;
        return 0;
    }
    return perr(P, at, "expected '%s' or '%s' for %s", k0, k1, attr);
}

static int parse_attr_value(Parser *P, Line *L, int slot, const char *name) {
    IrNode *n = &L->n;
    char fb[16];
    skip_ws(P);
    /* IR_INPUT_SEQS / IR_INPUT_PAIRS and IR_PARAM_TRAINABLE / IR_PARAM_FROZEN are 0 / 1 */
    if (n->op == OP_INPUT) return scan_keyword2(P, "seqs", "pairs", "rows", &n->attr[0]);
    if (n->op == OP_PARAM) return scan_keyword2(P, "trainable", "frozen", "role", &n->attr[0]);
    if (n->op == OP_PERMUTE) {
        if (*P->p != '[') return perr(P, P->p, "expected '[' to start perm, found %s", found(P, fb, sizeof fb));
        P->p++;
        int k = 0;
        for (;;) {
            skip_ws(P);
            const char *at = P->p;
            int64_t v;
            if (scan_int(P, -IR_TEXT_ATTR_MAX, IR_TEXT_ATTR_MAX, "perm entry", &v)) return -1;
            if (k == IR_MAX_DIMS) return perr(P, at, "perm has more than %d entries", IR_MAX_DIMS);
            n->attr[k++] = v;
            skip_ws(P);
            if (*P->p == ']') break;
            if (*P->p != ',') return perr(P, P->p, "expected ',' or ']' in perm, found %s", found(P, fb, sizeof fb));
            P->p++;
        }
        P->p++;
        int rank = P->g->nodes[n->in[0]].ndim;
        if (k != rank) return perr(P, L->op_at, "perm has %d entries, the operand has rank %d", k, rank);
        return 0;
    }
    if (slot == 0 && (ir_op_info[n->op].flags & OPF_COLLECTIVE)) { /* a mesh axis, by name */
        char w[16] = "";
        const char *at = P->p;
        scan_ident(P, w, sizeof w);
        for (int ax = 0; ax < IR_MESH_AXES; ax++)
            if (strcmp(w, ir_text_mesh_name(ax)) == 0) {
                n->attr[0] = ax;
                return 0;
            }
        return perr(P, at, "expected a mesh axis (dp or tp) for %s", name);
    }
    return scan_int(P, -IR_TEXT_ATTR_MAX, IR_TEXT_ATTR_MAX, name, &n->attr[slot]);
}

static int parse_attrs(Parser *P, Line *L) {
    const char *names[IR_MAX_ATTR];
    const char *opname = ir_op_info[L->n.op].name;
    int na = ir_text_attrs((IrOp)L->n.op, names), seen[IR_MAX_ATTR] = {0};
    char fb[16];
    skip_ws(P);
    if (*P->p != '{') {
        if (na == 0 || L->n.op == OP_INPUT) return 0; /* an input's rows default to seqs */
        char list[64] = "";
        for (int a = 0; a < na; a++) {
            strcat(list, a ? ", " : "");
            strcat(list, names[a]);
        }
        return perr(P, P->p, "%s needs attributes {%s}", opname, list);
    }
    if (na == 0) return perr(P, P->p, "%s takes no attributes", opname);
    P->p++;
    for (;;) {
        char key[32];
        skip_ws(P);
        const char *at = P->p;
        if (!scan_ident(P, key, sizeof key)) return perr(P, at, "expected an attribute name, found %s", found(P, fb, sizeof fb));
        int a = 0;
        while (a < na && strcmp(key, names[a]) != 0) a++;
        if (a == na) return perr(P, at, "unknown attribute '%s' for %s", key, opname);
        if (seen[a]) return perr(P, at, "duplicate attribute '%s'", key);
        seen[a] = 1;
        if (expect_char(P, '=', "'=' after the attribute name")) return -1;
        if (parse_attr_value(P, L, a, key)) return -1;
        skip_ws(P);
        if (*P->p == '}') break;
        if (*P->p != ',') return perr(P, P->p, "expected ',' or '}' in attributes, found %s", found(P, fb, sizeof fb));
        P->p++;
    }
    for (int a = 0; a < na; a++)
        if (!seen[a]) return perr(P, P->p, "missing attribute '%s' for %s", names[a], opname);
    P->p++;
    return 0;
}

/* mesh axis name, or '_' (returned as IR_SHARD_NONE) when allow_none */
static int scan_axis(Parser *P, int allow_none, int *out) {
    char w[16], fb[16];
    skip_ws(P);
    const char *at = P->p;
    if (!scan_ident(P, w, sizeof w)) return perr(P, at, "expected a mesh axis, found %s", found(P, fb, sizeof fb));
    if (allow_none && strcmp(w, "_") == 0) {
        *out = IR_SHARD_NONE;
        return 0;
    }
    for (int a = 0; a < IR_MESH_AXES; a++)
        if (strcmp(w, ir_text_mesh_name(a)) == 0) {
            *out = a;
            return 0;
        }
    return perr(P, at, "unknown mesh axis '%s' (expected dp, tp%s)", w, allow_none ? " or _" : "");
}

static int parse_sharding(Parser *P, Line *L) {
    IrNode *n = &L->n;
    char fb[16];
    skip_ws(P);
    if (*P->p == '@') {
        const char *at = P->p++;
        if (*P->p != '[') return perr(P, P->p, "expected '[' after '@', found %s", found(P, fb, sizeof fb));
        P->p++;
        int k = 0;
        skip_ws(P);
        if (*P->p != ']')
            for (;;) {
                int ax;
                const char *eat = P->p;
                if (scan_axis(P, 1, &ax)) return -1;
                if (k == n->ndim) return perr(P, eat, "sharding has more entries than the rank %d", n->ndim);
                n->shard[k++] = (int8_t)ax;
                skip_ws(P);
                if (*P->p == ']') break;
                if (*P->p != ',') return perr(P, P->p, "expected ',' or ']' in sharding, found %s", found(P, fb, sizeof fb));
                P->p++;
                skip_ws(P);
            }
        P->p++;
        if (k != n->ndim) return perr(P, at, "sharding has %d entr%s, the value has rank %d", k, k == 1 ? "y" : "ies", n->ndim);
    }
    skip_ws(P);
    if (strncmp(P->p, "partial", 7) == 0 && !is_ident_char(P->p[7])) {
        P->p += 7;
        if (expect_char(P, '(', "'(' after partial")) return -1;
        for (;;) {
            int ax;
            const char *at;
            skip_ws(P);
            at = P->p;
            if (scan_axis(P, 0, &ax)) return -1;
            if (n->partial & (1u << ax)) return perr(P, at, "duplicate axis '%s' in partial", ir_text_mesh_name(ax));
            n->partial |= (uint8_t)(1u << ax);
            skip_ws(P);
            if (*P->p == ')') break;
            if (*P->p != ',') return perr(P, P->p, "expected ',' or ')' in partial, found %s", found(P, fb, sizeof fb));
            P->p++;
        }
        P->p++;
    }
    return 0;
}

static int parse_flags(Parser *P, Line *L) {
    for (;;) {
        char w[32];
        skip_ws(P);
        const char *at = P->p;
        if (!is_ident_start(*P->p) || (strncmp(P->p, "partial", 7) == 0 && !is_ident_char(P->p[7]))) return 0;
        scan_ident(P, w, sizeof w);
        uint32_t f = strcmp(w, "nograd") == 0       ? IR_F_NOGRAD
                     : strcmp(w, "save") == 0       ? IR_F_SAVE
                     : strcmp(w, "remat") == 0      ? IR_F_REMAT
                     : strcmp(w, "recomputed") == 0 ? IR_F_RECOMPUTED
                                                    : 0;
        if (!f)
            return perr(P, at, "unknown flag '%s' (expected nograd, save, remat, recomputed, @[...] or partial(...))", w);
        if (L->n.flags & f) return perr(P, at, "duplicate flag '%s'", w);
        L->n.flags |= f;
    }
}

/* A trailing "# FILE:LINE:COL" (FILE bare or quoted) is the node's
 * location; any other comment is ignored. Leaves the cursor at the end of
 * the line either way. */
static void parse_comment(Parser *P, Line *L) {
    const char *end = P->p;
    while (*end != '\n' && *end != '\0') end++;
    const char *q = P->p + 1;
    while (*q == ' ' || *q == '\t') q++;
    const char *e = end;
    while (e > q && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    /* col and line, scanned from the right */
    int64_t nums[2];
    for (int k = 0; k < 2; k++) {
        const char *d = e;
        while (d > q && isdigit((unsigned char)d[-1])) d--;
        if (d == e || e - d > 9) goto plain;
        nums[k] = 0;
        for (const char *c = d; c < e; c++) nums[k] = nums[k] * 10 + (*c - '0');
        if (d > q && d[-1] == '-') { d--; nums[k] = -nums[k]; }
        if (d == q || d[-1] != ':') goto plain;
        e = d - 1;
    }
    if (e == q) goto plain;
    if (*q == '"') {
        Parser sub = *P;
        char tmp[256];
        sub.err = tmp;
        sub.errlen = sizeof tmp;
        sub.p = q;
        if (scan_string(&sub, L->file) || sub.p != e) goto plain;
    } else {
        if ((size_t)(e - q) > MAX_STRING) goto plain;
        for (const char *c = q; c < e; c++)
            if ((unsigned char)*c <= 0x20 || (unsigned char)*c > 0x7e || *c == '"' || *c == '\\') goto plain;
        memcpy(L->file, q, (size_t)(e - q));
        L->file[e - q] = '\0';
    }
    L->has_loc = 1;
    L->line = (int)nums[1];
    L->col = (int)nums[0];
plain:
    P->p = end;
}

static int end_of_line(Parser *P, Line *L) {
    char fb[16];
    skip_ws(P);
    if (*P->p == '#') {
        if (L) parse_comment(P, L);
        else while (!at_eol(P)) P->p++;
    }
    if (!at_eol(P)) return perr(P, P->p, "expected end of line, found %s", found(P, fb, sizeof fb));
    return 0;
}

/* Types whose shape the prototype carries: the declared one is passed in. */
static int type_from_proto(IrOp op) {
    return (ir_op_info[op].flags & OPF_LEAF) || op == OP_RESHAPE || op == OP_BROADCAST || op == OP_CAST;
}

static int parse_node(Parser *P) {
    Line L;
    memset(&L, 0, sizeof L);
    const char *id_at = P->p;
    char fb[16];
    P->p++; /* '%' */
    int64_t tid;
    if (scan_int(P, 0, MAX_ID, "value id", &tid)) return -1;
    if (P->nmap > 0 && tid <= P->tid[P->nmap - 1]) {
        if (map_find(P, tid) >= 0) return perr(P, id_at, "duplicate id %%%lld", (long long)tid);
        return perr(P, id_at, "id %%%lld does not follow %%%lld (ids must increase)", (long long)tid,
                    (long long)P->tid[P->nmap - 1]);
    }
    if (expect_char(P, ':', "':' after the value id")) return -1;

    IrNode decl;
    ir_node_proto(&decl, OP_CONST);
    skip_ws(P);
    L.type_at = P->p;
    if (parse_type(P, &decl)) return -1;
    if (expect_char(P, '=', "'=' after the type")) return -1;

    char opname[32];
    skip_ws(P);
    L.op_at = P->p;
    if (!scan_ident(P, opname, sizeof opname)) return perr(P, L.op_at, "expected an op name, found %s", found(P, fb, sizeof fb));
    int op = 0;
    while (op < OP_COUNT && strcmp(opname, ir_op_info[op].name) != 0) op++;
    if (op == OP_COUNT) return perr(P, L.op_at, "unknown op '%s'", opname);

    ir_node_proto(&L.n, (IrOp)op);
    if (type_from_proto((IrOp)op)) {
        L.n.dtype = decl.dtype;
        memcpy(L.n.shape, decl.shape, sizeof L.n.shape);
    }
    L.n.ndim = decl.ndim; /* also what the sharding list is checked against */
    if (parse_operands(P, &L) || parse_attrs(P, &L) || parse_flags(P, &L) || parse_sharding(P, &L)) return -1;
    if (end_of_line(P, &L)) return -1;
    if (!type_from_proto((IrOp)op)) L.n.ndim = 0;

    IrNode tmp = L.n;
    char msg[384];
    if (ir_infer(P->g, &tmp, msg, sizeof msg) != 0) return perr(P, L.op_at, "%s: %s", opname, msg);
    if (tmp.dtype != decl.dtype || tmp.ndim != decl.ndim ||
        memcmp(tmp.shape, decl.shape, (size_t)decl.ndim * sizeof decl.shape[0]) != 0) {
        char sd[128], si[128];
        type_str(&decl, sd, sizeof sd);
        type_str(&tmp, si, sizeof si);
        return perr(P, L.type_at, "declared type %s but %s gives %s", sd, opname, si);
    }
    if (L.has_loc) {
        /* interning scans the pool, so location files are cached by hash */
        uint32_t h = 2166136261u;
        for (const char *c = L.file; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
        int32_t *slot = &P->files[h & 63];
        if (*slot < 0 || strcmp(ir_str_get(P->g, *slot), L.file) != 0) *slot = ir_str(P->g, L.file);
        if (*slot < 0) return perr(P, L.op_at, "%s", P->g->err);
        L.n.loc = (IrLoc){*slot, L.line, L.col};
    }
    int32_t prev = L.n.name >= 0 ? ir_find_named(P->g, (IrOp)op, L.name) : -1;
    int32_t id = ir_add_node(P->g, &L.n);
    if (id < 0) return perr(P, L.op_at, "%s", P->g->err[0] ? P->g->err : "the builder refused this node");
    if (prev >= 0 && id != prev) {
        int64_t ptid = 0;
        for (int32_t k = 0; k < P->nmap; k++)
            if (P->gid[k] == prev) ptid = P->tid[k];
        return perr(P, id_at, "%s \"%s\" is already declared by %%%lld with another type or attribute", opname, L.name,
                    (long long)ptid);
    }
    if (map_add(P, tid, id)) return perr(P, id_at, "out of memory");
    return 0;
}

static int parse_output(Parser *P) {
    char w[16], fb[16], name[MAX_STRING + 1];
    skip_ws(P);
    const char *at = P->p;
    if (!scan_ident(P, w, sizeof w)) return perr(P, at, "expected an output role (loss, value or grad), found %s", found(P, fb, sizeof fb));
    int role = 0;
    while (role < IR_OUT_COUNT && strcmp(w, ir_text_role_name(role)) != 0) role++;
    if (role == IR_OUT_COUNT) return perr(P, at, "unknown output role '%s' (expected loss, value or grad)", w);
    skip_ws(P);
    const char *name_at = P->p;
    if (scan_string(P, name)) return -1;
    if (ir_find_output(P->g, name) >= 0) return perr(P, name_at, "duplicate output \"%s\"", name);
    if (expect_char(P, '=', "'=' after the output name")) return -1;
    int32_t id;
    if (scan_ref(P, &id)) return -1;
    if (end_of_line(P, NULL)) return -1;
    if (ir_add_output(P->g, name, id, (IrOutRole)role)) return perr(P, at, "%s", P->g->err);
    return 0;
}

/* `kernel %ROOT [= %M, ...]` (the fusion result, ir/kernels.c) */
static int parse_kernel(Parser *P) {
    const char *at = P->p;
    int32_t root, m[256];
    int n = 0;
    if (scan_ref(P, &root)) return -1;
    skip_ws(P);
    if (*P->p == '=') {
        do {
            P->p++;
            if (n == (int)(sizeof m / sizeof m[0])) return perr(P, P->p, "more than %d members in one kernel", n);
            if (scan_ref(P, &m[n++])) return -1;
            skip_ws(P);
        } while (*P->p == ',');
    }
    if (end_of_line(P, NULL)) return -1;
    if (ir_kernel_add(P->g, root, m, n)) return perr(P, at, "%s", P->g->err);
    return 0;
}

int ir_parse(IrGraph *g, const char *text, const char *fname, char *err, size_t errlen) {
    Parser P = {.g = g, .fname = fname ? fname : "<ir>", .p = text, .line = text, .lineno = 1, .err = err, .errlen = errlen};
    for (int k = 0; k < 64; k++) P.files[k] = -1;
    char fb[16];
    int rc = 0;
    if (errlen) err[0] = '\0';
    if (g->n != 0 || g->nout != 0) return perr(&P, P.p, "ir_parse needs an empty graph");
    ir_set_loc(g, NULL, 0, 0); /* nodes without a location comment get none */
    while (rc == 0 && *P.p) {
        skip_ws(&P);
        if (*P.p == '%') rc = parse_node(&P);
        else if (strncmp(P.p, "output", 6) == 0 && !is_ident_char(P.p[6])) {
            P.p += 6;
            rc = parse_output(&P);
        } else if (strncmp(P.p, "kernel", 6) == 0 && !is_ident_char(P.p[6])) {
            P.p += 6;
            rc = parse_kernel(&P);
        } else if (*P.p == '#' || at_eol(&P)) {
            while (!at_eol(&P)) P.p++;
        } else {
            rc = perr(&P, P.p, "expected a node line (%%N: ...) or an output line, found %s", found(&P, fb, sizeof fb));
        }
        if (rc == 0 && *P.p == '\n') {
            P.p++;
            P.line = P.p;
            P.lineno++;
        }
    }
    ir_set_loc(g, NULL, 0, 0);
    free(P.tid);
    free(P.gid);
    return rc;
}
