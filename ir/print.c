/* print.c — writes a graph as IR text, one SSA line per node.
 *
 * A node line reads
 *   %ID: TYPE = OP OPERANDS {ATTRS} FLAGS @[SHARDING] partial(AXES)   # FILE:LINE:COL
 * where every part after OP is printed only when it is present: operands are
 * value ids (`%3, %4`), a quoted name (param, input) or a number (const);
 * attributes come from the schema below, in slot order; flags, sharding,
 * the pending partial sum and the source location only when set. After the
 * nodes comes one line per output: `output ROLE "NAME" = %ID`.
 *
 * Constants print in the shortest of %.15g/%.16g/%.17g that reads back to
 * the same double with strtod, so the text round-trips bit for bit (inf,
 * -inf and nan are spelled out). Strings escape '"', '\' and every byte
 * outside printable ASCII. docs/ir-format.md gives the full grammar; parse.c
 * reads exactly what this file writes. The printer never trusts the graph:
 * a corrupt node still prints (with '?' where a field is out of range), so a
 * verifier message can be read next to a dump.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#endif
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the attribute schema (shared with parse.c and verify.c) ------------- */

int ir_text_attrs(IrOp op, const char *names[IR_MAX_ATTR]) {
    switch (op) {
    case OP_PARAM: names[0] = "role"; return 1;
    case OP_INPUT: names[0] = "rows"; return 1;
    case OP_IOTA: case OP_CONCAT: case OP_REDUCE_SUM: case OP_REDUCE_MAX:
        names[0] = "axis"; return 1;
    case OP_SLICE: names[0] = "axis"; names[1] = "start"; names[2] = "stop"; return 3;
    case OP_PAD: names[0] = "axis"; names[1] = "lo"; names[2] = "hi"; return 3;
    case OP_PERMUTE: names[0] = "perm"; return 1;
    case OP_MATMUL: names[0] = "ta"; names[1] = "tb"; return 2;
    case OP_MATMUL_MASKED: names[0] = "ta"; names[1] = "tb"; names[2] = "dim"; return 3;
    case OP_SCATTER_ADD_ROWS: names[0] = "rows"; return 1;
    case OP_UNPICK: names[0] = "n"; return 1;
    case OP_ATTENTION: case OP_ATTENTION_GRAD: names[0] = "groups"; names[1] = "causal"; return 2;
    case OP_ALL_REDUCE: case OP_AXIS_INDEX: names[0] = "axis"; return 1;
    case OP_ALL_GATHER: names[0] = "axis"; names[1] = "dim"; names[2] = "ranks"; return 3;
    default: return 0;
    }
}

int ir_text_attr_slots(IrOp op, int ndim) {
    const char *names[IR_MAX_ATTR];
    return op == OP_PERMUTE ? ndim : ir_text_attrs(op, names);
}

const char *ir_text_mesh_name(int axis) {
    static const char *const names[IR_MESH_AXES] = {"dp", "tp"};
    return axis >= 0 && axis < IR_MESH_AXES ? names[axis] : NULL;
}

const char *ir_text_role_name(int role) {
    static const char *const names[IR_OUT_COUNT] = {"loss", "value", "grad"};
    return role >= 0 && role < IR_OUT_COUNT ? names[role] : NULL;
}

/* ---- pieces ------------------------------------------------------------- */

static void print_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p > 0x7e) fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A location's file prints bare when it is one token the parser can take
 * back (printable, no space, no quote); otherwise as a quoted string. */
static void print_loc_file(FILE *f, const char *s) {
    int bare = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && bare; p++)
        if (*p <= 0x20 || *p > 0x7e || *p == '"' || *p == '\\') bare = 0;
    if (bare) fputs(s, f);
    else print_string(f, s);
}

static void print_number(FILE *f, double v) {
    if (isnan(v)) { fputs(signbit(v) ? "-nan" : "nan", f); return; }
    if (isinf(v)) { fputs(v < 0 ? "-inf" : "inf", f); return; }
    char buf[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

static void print_type(FILE *f, const IrNode *n) {
    int nd = n->ndim <= IR_MAX_DIMS ? n->ndim : IR_MAX_DIMS;
    fprintf(f, "%s[", ir_dtype_name((IrDType)n->dtype));
    for (int d = 0; d < nd; d++) fprintf(f, d ? ",%lld" : "%lld", (long long)n->shape[d]);
    fputc(']', f);
}

static void print_attrs(FILE *f, const IrNode *n) {
    const char *names[IR_MAX_ATTR];
    int na = ir_text_attrs((IrOp)n->op, names);
    if (na == 0 || (n->op == OP_INPUT && n->attr[0] == IR_INPUT_SEQS)) return; /* rows=seqs is the default */
    fputs(" {", f);
    if (n->op == OP_INPUT) {
        if (n->attr[0] == IR_INPUT_PAIRS) fputs("rows=pairs", f);
        else fprintf(f, "rows=?%lld", (long long)n->attr[0]);
    } else if (n->op == OP_PARAM) {
        const char *r = n->attr[0] == IR_PARAM_TRAINABLE ? "trainable" : n->attr[0] == IR_PARAM_FROZEN ? "frozen" : NULL;
        if (r) fprintf(f, "role=%s", r);
        else fprintf(f, "role=?%lld", (long long)n->attr[0]);
    } else if (n->op == OP_PERMUTE) {
        int nd = n->ndim <= IR_MAX_DIMS ? n->ndim : IR_MAX_DIMS;
        fputs("perm=[", f);
        for (int d = 0; d < nd; d++) fprintf(f, d ? ",%lld" : "%lld", (long long)n->attr[d]);
        fputc(']', f);
    } else {
        for (int a = 0; a < na; a++) {
            const char *m = a == 0 && (ir_op_info[n->op].flags & OPF_COLLECTIVE) ? ir_text_mesh_name((int)n->attr[0]) : NULL;
            if (m) fprintf(f, "%s=%s", names[a], m); /* a mesh axis prints by name */
            else fprintf(f, "%s%s=%lld", a ? ", " : "", names[a], (long long)n->attr[a]);
        }
    }
    fputc('}', f);
}

static void print_sharding(FILE *f, const IrNode *n) {
    int nd = n->ndim <= IR_MAX_DIMS ? n->ndim : IR_MAX_DIMS, any = 0;
    for (int d = 0; d < nd; d++) any |= n->shard[d] != IR_SHARD_NONE;
    if (any) {
        fputs(" @[", f);
        for (int d = 0; d < nd; d++) {
            const char *m = ir_text_mesh_name(n->shard[d]);
            if (d) fputc(',', f);
            if (n->shard[d] == IR_SHARD_NONE) fputc('_', f);
            else if (m) fputs(m, f);
            else fprintf(f, "?%d", n->shard[d]);
        }
        fputc(']', f);
    }
    if (n->partial) {
        const char *sep = "";
        fputs(" partial(", f);
        for (int a = 0; a < 8; a++)
            if (n->partial & (1u << a)) {
                const char *m = ir_text_mesh_name(a);
                if (m) fprintf(f, "%s%s", sep, m);
                else fprintf(f, "%s?%d", sep, a);
                sep = ",";
            }
        fputc(')', f);
    }
}

static void print_node(const IrGraph *g, int32_t id, FILE *f) {
    const IrNode *n = ir_node(g, id);
    int known = n->op < OP_COUNT;
    fprintf(f, "%%%d: ", id);
    print_type(f, n);
    if (known) fprintf(f, " = %s", ir_op_info[n->op].name);
    else fprintf(f, " = ?op%u", (unsigned)n->op);
    if (n->op == OP_PARAM || n->op == OP_INPUT) {
        fputc(' ', f);
        print_string(f, ir_str_get(g, n->name));
    } else if (n->op == OP_CONST) {
        fputc(' ', f);
        print_number(f, n->fval);
    } else if (known) {
        for (int i = 0; i < ir_op_info[n->op].nin; i++) fprintf(f, "%s%%%d", i ? ", " : " ", n->in[i]);
    }
    if (known) print_attrs(f, n);
    if (n->flags & IR_F_NOGRAD) fputs(" nograd", f);
    if (n->flags & IR_F_SAVE) fputs(" save", f);
    if (n->flags & IR_F_REMAT) fputs(" remat", f);
    if (n->flags & IR_F_RECOMPUTED) fputs(" recomputed", f);
    if (n->flags & ~(uint32_t)IR_F_KNOWN) fprintf(f, " ?flags=%#x", (unsigned)n->flags);
    print_sharding(f, n);
    if (n->loc.file >= 0) {
        fputs("   # ", f);
        print_loc_file(f, ir_str_get(g, n->loc.file));
        fprintf(f, ":%d:%d", (int)n->loc.line, (int)n->loc.col);
    }
    fputc('\n', f);
}

int ir_print(const IrGraph *g, FILE *f) {
    for (int32_t id = 0; id < g->n; id++) print_node(g, id, f);
    for (int32_t i = 0; i < g->nout; i++) {
        const IrOutput *o = &g->outs[i];
        const char *role = ir_text_role_name(o->role);
        fprintf(f, "output %s ", role ? role : "?");
        print_string(f, ir_str_get(g, o->name));
        fprintf(f, " = %%%d\n", o->id);
    }
    ir_kernels_print(g, f);
    return ferror(f) ? -1 : 0;
}

char *ir_print_str(const IrGraph *g) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    int rc = ir_print(g, f);
    if (fclose(f) != 0 || rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
