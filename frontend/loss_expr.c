/* loss_expr.c — the loss expression language, parsed straight into IR.
 *
 * A recursive-descent parser over one expression text:
 *
 *     expr    := term (('+' | '-') term)*
 *     term    := unary (('*' | '/') unary)*
 *     unary   := ('-' | '+') unary | primary
 *     primary := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'
 *
 * Every value is one of: a compile-time constant (numbers, parameters, and
 * anything computed only from them — folded in double precision, the way
 * Python evaluates TRL's `1 / (2 * beta)`), a per-pair tensor [B], or a
 * batch scalar [] (from mean() or nll_chosen_tokens). Mixed operands are
 * broadcast explicitly. Named per-pair values are built on first use from
 * the leaves (summed log-probs and lengths of the 2B sequences); hash-
 * consing makes a second use free. Composite functions are decomposed into
 * primitives in numerically stable form, e.g. logsigmoid(x) =
 * min(x,0) - log1p(exp(-|x|)). Each op is stamped with the position of the
 * token that produced it, so IR dumps point into the YAML.
 *
 * `let:` definitions are lowered first, in order, and may use the ones
 * above them. The loss itself is the batch mean of a per-pair result, or the
 * result when it is already a scalar.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe_internal.h"

/* ---- the names of the language ---------------------------------------------- */

enum {
    N_PI_C, N_PI_R, N_PI_C_AVG, N_PI_R_AVG, N_REF_C, N_REF_R, N_REF_C_AVG, N_REF_R_AVG,
    N_LEN_C, N_LEN_R, N_NLL_C, N_NLL_TOK, N_COUNT
};
static const char *const builtin_names[N_COUNT] = {
    "pi_chosen", "pi_rejected", "pi_chosen_avg", "pi_rejected_avg", "ref_chosen", "ref_rejected",
    "ref_chosen_avg", "ref_rejected_avg", "len_chosen", "len_rejected", "nll_chosen", "nll_chosen_tokens",
};

enum { F_LOG, F_EXP, F_LOG1P, F_LOGSIGMOID, F_SIGMOID, F_SOFTPLUS, F_RELU, F_SQUARE, F_ABS, F_MIN, F_MAX, F_MEAN, F_COUNT };
static const char *const fn_names[F_COUNT] = {"log", "exp", "log1p", "logsigmoid", "sigmoid", "softplus",
                                              "relu", "square", "abs", "min", "max", "mean"};

int loss_name_reserved(const char *s) {
    for (int i = 0; i < N_COUNT; i++)
        if (!strcmp(s, builtin_names[i])) return 1;
    for (int i = 0; i < F_COUNT; i++)
        if (!strcmp(s, fn_names[i])) return 1;
    return 0;
}

/* ---- values and the parser state ------------------------------------------- */

typedef struct Val {
    int32_t id;   /* tensor id, -1 for a constant */
    double c;     /* the constant */
} Val;

typedef enum Tok { T_END, T_NUM, T_NAME, T_LP, T_RP, T_COMMA, T_PLUS, T_MINUS, T_STAR, T_SLASH } Tok;

typedef struct Px {
    IrGraph *g;
    const LossCfg *loss;
    const LossLeaves *lv;
    IrDType dt;
    int64_t B;
    Val *lets;       /* values of the lets lowered so far */
    int nlets;
    int uses_ref;
    /* the text being parsed */
    const LossText *t;
    size_t pos;
    Tok tok;
    size_t ts, tl;   /* current token's start and length */
    double num;
    int depth;       /* nesting of parentheses, calls and unary signs */
    char *err;
    size_t errlen;
} Px;

enum { MAX_DEPTH = 200 };

static SrcLoc at(const Px *x, size_t off) { return x->t->map[off]; }

static int perr(Px *x, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(Px *x, size_t off, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fe_error(x->err, x->errlen, at(x, off), "%s", msg);
}

static void tok_desc(const Px *x, char *buf, size_t len) {
    if (x->tok == T_END) snprintf(buf, len, "the end of the expression");
    else snprintf(buf, len, "'%.*s'", (int)(x->tl > 40 ? 40 : x->tl), x->t->text + x->ts);
}

/* ---- the lexer ---------------------------------------------------------------- */

static int next(Px *x) {
    const char *s = x->t->text;
    while (s[x->pos] == ' ' || s[x->pos] == '\t' || s[x->pos] == '\n' || s[x->pos] == '\r') x->pos++;
    x->ts = x->pos;
    x->tl = 1;
    char c = s[x->pos];
    if (!c) {
        x->tok = T_END;
        x->tl = 0;
        return 0;
    }
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[x->pos + 1]))) {
        size_t p = x->pos;
        while (isdigit((unsigned char)s[p])) p++;
        if (s[p] == '.') {
            p++;
            while (isdigit((unsigned char)s[p])) p++;
        }
        if (s[p] == 'e' || s[p] == 'E') {
            size_t q = p + 1;
            if (s[q] == '+' || s[q] == '-') q++;
            if (!isdigit((unsigned char)s[q])) return perr(x, x->ts, "malformed number '%.*s'", (int)(q - x->ts), s + x->ts);
            while (isdigit((unsigned char)s[q])) q++;
            p = q;
        }
        if (isalpha((unsigned char)s[p]) || s[p] == '_' || s[p] == '.')
            return perr(x, x->ts, "malformed number '%.*s'", (int)(p + 1 - x->ts), s + x->ts);
        char buf[64];
        size_t n = p - x->ts;
        if (n >= sizeof buf) return perr(x, x->ts, "number too long");
        memcpy(buf, s + x->ts, n);
        buf[n] = 0;
        x->num = strtod(buf, NULL);
        if (!isfinite(x->num)) return perr(x, x->ts, "number out of range '%s'", buf);
        x->tok = T_NUM;
        x->tl = n;
        x->pos = p;
        return 0;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t p = x->pos;
        while (isalnum((unsigned char)s[p]) || s[p] == '_') p++;
        x->tok = T_NAME;
        x->tl = p - x->pos;
        x->pos = p;
        return 0;
    }
    x->pos++;
    switch (c) {
    case '(': x->tok = T_LP; return 0;
    case ')': x->tok = T_RP; return 0;
    case ',': x->tok = T_COMMA; return 0;
    case '+': x->tok = T_PLUS; return 0;
    case '-': x->tok = T_MINUS; return 0;
    case '/': x->tok = T_SLASH; return 0;
    case '*':
        if (s[x->pos] == '*') return perr(x, x->ts, "'**' is not supported; use square(x) for x*x");
        x->tok = T_STAR;
        return 0;
    case '^': return perr(x, x->ts, "'^' is not supported; use square(x) for x*x");
    default:
        if ((unsigned char)c >= 0x80) return perr(x, x->ts, "unexpected non-ASCII character in the loss expression");
        return perr(x, x->ts, "unexpected character '%c' in the loss expression", c);
    }
}

/* ---- building values ------------------------------------------------------------ */

static int is_const(Val v) { return v.id < 0; }
static Val cval(double c) { return (Val){-1, c}; }

static void stamp(Px *x, size_t off) {
    SrcLoc l = at(x, off);
    ir_set_loc(x->g, l.file, l.line, l.col);
}

static int graph_failed(Px *x, size_t off, int32_t id) {
    if (id >= 0) return 0;
    return perr(x, off, "cannot build the loss: %s", x->g->err[0] ? x->g->err : "unknown IR error");
}

static int ndim_of(Px *x, Val v) { return is_const(v) ? -1 : x->g->nodes[v.id].ndim; }

/* v as a tensor of rank nd (0: [], 1: [B]). */
static int32_t as_tensor(Px *x, Val v, int nd) {
    int64_t shape[1] = {x->B};
    if (is_const(v)) return ir_const(x->g, v.c, x->dt, nd, shape);
    if (x->g->nodes[v.id].ndim == nd) return v.id;
    int64_t one[1] = {1};
    return ir_broadcast(x->g, ir_reshape(x->g, v.id, 1, one), 1, shape);
}

static int check_const(Px *x, size_t off, double c, Val *out) {
    if (!isfinite(c)) return perr(x, off, "this constant evaluates to %s", isnan(c) ? "nan" : c > 0 ? "inf" : "-inf");
    *out = cval(c);
    return 0;
}

static int binary(Px *x, IrOp op, Val a, Val b, size_t off, Val *out) {
    if (is_const(a) && is_const(b)) {
        double c = op == OP_ADD ? a.c + b.c
                   : op == OP_SUB ? a.c - b.c
                   : op == OP_MUL ? a.c * b.c
                   : op == OP_DIV ? a.c / b.c
                   : op == OP_MIN ? fmin(a.c, b.c)
                                  : fmax(a.c, b.c);
        return check_const(x, off, c, out);
    }
    int nd = ndim_of(x, a) > ndim_of(x, b) ? ndim_of(x, a) : ndim_of(x, b);
    stamp(x, off);
    int32_t id = ir_binary(x->g, op, as_tensor(x, a, nd), as_tensor(x, b, nd));
    if (graph_failed(x, off, id)) return -1;
    *out = (Val){id, 0};
    return 0;
}

static double fold1(int f, double v) {
    switch (f) {
    case F_LOG: return log(v);
    case F_EXP: return exp(v);
    case F_LOG1P: return log1p(v);
    case F_LOGSIGMOID: return fmin(v, 0.0) - log1p(exp(-fabs(v)));
    case F_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case F_SOFTPLUS: return fmax(v, 0.0) + log1p(exp(-fabs(v)));
    case F_RELU: return fmax(v, 0.0);
    case F_SQUARE: return v * v;
    case F_ABS: return fabs(v);
    default: return v; /* mean of a constant */
    }
}

static int unary_fn(Px *x, int f, Val a, size_t off, Val *out) {
    if (is_const(a)) return check_const(x, off, fold1(f, a.c), out);
    IrGraph *g = x->g;
    int32_t v = a.id, r;
    stamp(x, off);
    switch (f) {
    case F_LOG: r = ir_unary(g, OP_LOG, v); break;
    case F_EXP: r = ir_unary(g, OP_EXP, v); break;
    case F_LOG1P: r = ir_unary(g, OP_LOG1P, v); break;
    case F_SIGMOID: r = ir_unary(g, OP_SIGMOID, v); break;
    case F_ABS: r = ir_unary(g, OP_ABS, v); break;
    case F_SQUARE: r = ir_mul(g, v, v); break;
    case F_RELU: r = ir_binary(g, OP_MAX, v, ir_const_like(g, 0.0, v)); break;
    case F_LOGSIGMOID: /* min(x,0) - log1p(exp(-|x|)) */
    case F_SOFTPLUS: { /* max(x,0) + log1p(exp(-|x|)) */
        int32_t zero = ir_const_like(g, 0.0, v);
        int32_t tail = ir_unary(g, OP_LOG1P, ir_unary(g, OP_EXP, ir_unary(g, OP_NEG, ir_unary(g, OP_ABS, v))));
        r = f == F_LOGSIGMOID ? ir_sub(g, ir_binary(g, OP_MIN, v, zero), tail) : ir_add(g, ir_binary(g, OP_MAX, v, zero), tail);
        break;
    }
    case F_MEAN:
        if (g->nodes[v].ndim == 0) {
            *out = a;
            return 0;
        }
        r = ir_reduce(g, OP_REDUCE_SUM, v, 0);
        r = ir_div(g, ir_reshape(g, r, 0, NULL), ir_const(g, (double)x->B, x->dt, 0, NULL));
        break;
    default: r = -1;
    }
    if (graph_failed(x, off, r)) return -1;
    *out = (Val){r, 0};
    return 0;
}

/* ---- named values ---------------------------------------------------------------- */

static int32_t half(Px *x, int32_t src, int which) { return ir_slice(x->g, src, 0, which * x->B, (which + 1) * x->B); }

static int32_t sum_batch(Px *x, int32_t v) { return ir_reshape(x->g, ir_reduce(x->g, OP_REDUCE_SUM, v, 0), 0, NULL); }

static int builtin(Px *x, int n, size_t off, Val *out) {
    IrGraph *g = x->g;
    const LossLeaves *lv = x->lv;
    int32_t src = lv->logps;
    if (n >= N_REF_C && n <= N_REF_R_AVG) {
        if (lv->ref_logps < 0)
            return perr(x, off, "'%s' needs a reference model, but the reference is 'none'", builtin_names[n]);
        x->uses_ref = 1;
        src = lv->ref_logps;
    }
    stamp(x, off);
    int32_t r;
    switch (n) {
    case N_PI_C: case N_REF_C: r = half(x, src, 0); break;
    case N_PI_R: case N_REF_R: r = half(x, src, 1); break;
    case N_PI_C_AVG: case N_REF_C_AVG: r = ir_div(g, half(x, src, 0), half(x, lv->lens, 0)); break;
    case N_PI_R_AVG: case N_REF_R_AVG: r = ir_div(g, half(x, src, 1), half(x, lv->lens, 1)); break;
    case N_LEN_C: r = half(x, lv->lens, 0); break;
    case N_LEN_R: r = half(x, lv->lens, 1); break;
    case N_NLL_C: r = ir_unary(g, OP_NEG, ir_div(g, half(x, src, 0), half(x, lv->lens, 0))); break;
    case N_NLL_TOK:
        r = ir_div(g, ir_unary(g, OP_NEG, sum_batch(x, half(x, src, 0))), sum_batch(x, half(x, lv->lens, 0)));
        break;
    default: r = -1;
    }
    if (graph_failed(x, off, r)) return -1;
    *out = (Val){r, 0};
    return 0;
}

/* Levenshtein distance, capped: for "did you mean" hints. */
static int edit_distance(const char *a, size_t la, const char *b) {
    size_t lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *closest(Px *x, const char *s, size_t len, int functions) {
    const char *best = NULL;
    int bd = 3;
    if (functions) {
        for (int i = 0; i < F_COUNT; i++) {
            int dd = edit_distance(s, len, fn_names[i]);
            if (dd < bd) bd = dd, best = fn_names[i];
        }
        return best;
    }
    for (int i = 0; i < N_COUNT; i++) {
        int dd = edit_distance(s, len, builtin_names[i]);
        if (dd < bd) bd = dd, best = builtin_names[i];
    }
    for (int i = 0; i < x->loss->nparams; i++) {
        int dd = edit_distance(s, len, x->loss->params[i].name);
        if (dd < bd) bd = dd, best = x->loss->params[i].name;
    }
    for (int i = 0; i < x->nlets; i++) {
        int dd = edit_distance(s, len, x->loss->lets[i].name);
        if (dd < bd) bd = dd, best = x->loss->lets[i].name;
    }
    return best;
}

static int name_is(const char *s, size_t len, const char *name) { return strlen(name) == len && !strncmp(s, name, len); }

static int lookup_name(Px *x, const char *s, size_t len, size_t off, Val *out) {
    for (int i = 0; i < x->nlets; i++)
        if (name_is(s, len, x->loss->lets[i].name)) {
            *out = x->lets[i];
            return 0;
        }
    for (int i = x->nlets; i < x->loss->nlets; i++)
        if (name_is(s, len, x->loss->lets[i].name))
            return perr(x, off, "'%.*s' is used before its definition (a let can use only the lets above it)", (int)len, s);
    for (int i = 0; i < x->loss->nparams; i++)
        if (name_is(s, len, x->loss->params[i].name)) {
            *out = cval(x->loss->params[i].value);
            return 0;
        }
    for (int i = 0; i < N_COUNT; i++)
        if (name_is(s, len, builtin_names[i])) return builtin(x, i, off, out);
    for (int i = 0; i < F_COUNT; i++)
        if (name_is(s, len, fn_names[i])) return perr(x, off, "'%s' is a function; call it as %s(...)", fn_names[i], fn_names[i]);
    const char *hint = closest(x, s, len, 0);
    if (hint) return perr(x, off, "unknown name '%.*s' in the loss expression (did you mean '%s'?)", (int)len, s, hint);
    return perr(x, off,
                "unknown name '%.*s' in the loss expression; expected a per-pair value (pi_chosen, pi_rejected, ref_chosen, "
                "ref_rejected, their _avg forms, len_chosen, len_rejected, nll_chosen, nll_chosen_tokens), a parameter or a let",
                (int)len, s);
}

/* ---- the grammar ------------------------------------------------------------------- */

static int p_expr(Px *x, Val *out);

static int expect(Px *x, Tok t, const char *what) {
    if (x->tok == t) return next(x);
    char got[64];
    tok_desc(x, got, sizeof got);
    return perr(x, x->ts, "expected %s, got %s", what, got);
}

static int p_call(Px *x, const char *s, size_t len, size_t off, Val *out) {
    int f = 0;
    while (f < F_COUNT && !name_is(s, len, fn_names[f])) f++;
    if (f == F_COUNT) {
        for (int i = 0; i < N_COUNT; i++)
            if (name_is(s, len, builtin_names[i])) return perr(x, off, "'%s' is not a function", builtin_names[i]);
        for (int i = 0; i < x->loss->nparams; i++)
            if (name_is(s, len, x->loss->params[i].name)) return perr(x, off, "'%.*s' is a parameter, not a function", (int)len, s);
        for (int i = 0; i < x->loss->nlets; i++)
            if (name_is(s, len, x->loss->lets[i].name)) return perr(x, off, "'%.*s' is a let, not a function", (int)len, s);
        const char *hint = closest(x, s, len, 1);
        if (hint) return perr(x, off, "unknown function '%.*s' (did you mean '%s'?)", (int)len, s, hint);
        return perr(x, off,
                    "unknown function '%.*s'; expected one of: log, exp, log1p, logsigmoid, sigmoid, softplus, relu, square, "
                    "abs, min, max, mean",
                    (int)len, s);
    }
    if (next(x)) return -1; /* past '(' */
    int want = (f == F_MIN || f == F_MAX) ? 2 : 1;
    Val args[2];
    int n = 0;
    for (;;) {
        if (x->tok == T_RP && n == 0) break;
        Val v;
        if (p_expr(x, &v)) return -1;
        if (n < 2) args[n] = v;
        n++;
        if (x->tok != T_COMMA) break;
        if (next(x)) return -1;
    }
    if (expect(x, T_RP, "',' or ')'")) return -1;
    if (n != want)
        return perr(x, off, "'%s' takes %d argument%s, got %d", fn_names[f], want, want == 1 ? "" : "s", n);
    if (want == 2) return binary(x, f == F_MIN ? OP_MIN : OP_MAX, args[0], args[1], off, out);
    return unary_fn(x, f, args[0], off, out);
}

static int p_primary(Px *x, Val *out) {
    size_t off = x->ts;
    switch (x->tok) {
    case T_NUM:
        *out = cval(x->num);
        return next(x);
    case T_LP:
        if (next(x) || p_expr(x, out)) return -1;
        return expect(x, T_RP, "')'");
    case T_NAME: {
        const char *s = x->t->text + x->ts;
        size_t len = x->tl;
        if (next(x)) return -1;
        if (x->tok == T_LP) return p_call(x, s, len, off, out);
        return lookup_name(x, s, len, off, out);
    }
    default: {
        char got[64];
        tok_desc(x, got, sizeof got);
        return perr(x, off, "expected a number, a name or '(', got %s", got);
    }
    }
}

static int p_unary(Px *x, Val *out) {
    if (x->tok == T_MINUS || x->tok == T_PLUS) {
        int neg = x->tok == T_MINUS;
        size_t off = x->ts;
        Val v;
        if (++x->depth > MAX_DEPTH) return perr(x, off, "the expression is nested too deeply (more than %d levels)", MAX_DEPTH);
        if (next(x) || p_unary(x, &v)) return -1;
        x->depth--;
        if (!neg) {
            *out = v;
            return 0;
        }
        if (is_const(v)) {
            *out = cval(-v.c);
            return 0;
        }
        stamp(x, off);
        int32_t r = ir_unary(x->g, OP_NEG, v.id);
        if (graph_failed(x, off, r)) return -1;
        *out = (Val){r, 0};
        return 0;
    }
    return p_primary(x, out);
}

static int p_term(Px *x, Val *out) {
    if (p_unary(x, out)) return -1;
    while (x->tok == T_STAR || x->tok == T_SLASH) {
        IrOp op = x->tok == T_STAR ? OP_MUL : OP_DIV;
        size_t off = x->ts;
        Val b;
        if (next(x) || p_unary(x, &b)) return -1;
        if (binary(x, op, *out, b, off, out)) return -1;
    }
    return 0;
}

static int p_expr(Px *x, Val *out) {
    if (++x->depth > MAX_DEPTH) return perr(x, x->ts, "the expression is nested too deeply (more than %d levels)", MAX_DEPTH);
    if (p_term(x, out)) return -1;
    while (x->tok == T_PLUS || x->tok == T_MINUS) {
        IrOp op = x->tok == T_PLUS ? OP_ADD : OP_SUB;
        size_t off = x->ts;
        Val b;
        if (next(x) || p_term(x, &b)) return -1;
        if (binary(x, op, *out, b, off, out)) return -1;
    }
    x->depth--;
    return 0;
}

/* Parses one whole text. */
static int p_text(Px *x, const LossText *t, Val *out) {
    x->t = t;
    x->pos = 0;
    if (next(x)) return -1;
    if (x->tok == T_END) return perr(x, 0, "the expression is empty");
    if (p_expr(x, out)) return -1;
    if (x->tok != T_END) {
        char got[64];
        tok_desc(x, got, sizeof got);
        return perr(x, x->ts, "expected an operator or the end of the expression, got %s", got);
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------------------- */

static int loss_lower(IrGraph *g, const LossCfg *loss, const LossLeaves *lv, int32_t *out, int *uses_ref, int *is_scalar,
                      char *err, size_t errlen) {
    Px x;
    memset(&x, 0, sizeof x);
    x.g = g;
    x.loss = loss;
    x.lv = lv;
    x.err = err;
    x.errlen = errlen;
    if (lv->logps < 0 || lv->lens < 0 || lv->logps >= g->n || lv->lens >= g->n) {
        snprintf(err, errlen, "%s: loss leaves are missing", loss->path ? loss->path : "loss");
        return -1;
    }
    const IrNode *lp = &g->nodes[lv->logps];
    if (lp->ndim != 1 || lp->shape[0] % 2 || !ir_dtype_is_float((IrDType)lp->dtype)) {
        snprintf(err, errlen, "%s: the loss needs log-probs of shape [2B]", loss->path ? loss->path : "loss");
        return -1;
    }
    x.dt = (IrDType)lp->dtype;
    x.B = lp->shape[0] / 2;
    if (loss->nlets) {
        x.lets = malloc((size_t)loss->nlets * sizeof *x.lets);
        if (!x.lets) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    int rc = -1;
    IrLoc saved = g->cur_loc; /* the caller's location comes back afterwards */
    for (; x.nlets < loss->nlets; x.nlets++)
        if (p_text(&x, &loss->lets[x.nlets].expr, &x.lets[x.nlets])) goto done;
    Val v;
    if (p_text(&x, &loss->expr, &v)) goto done;
    if (is_const(v)) {
        perr(&x, 0, "the loss expression is a constant; it must depend on the model's log-probs");
        goto done;
    }
    int32_t r = v.id;
    if (is_scalar) *is_scalar = g->nodes[r].ndim == 0;
    if (g->nodes[r].ndim == 1) {
        /* the step loss is the batch mean of the per-pair losses */
        ir_set_loc(g, loss->loc.file, loss->loc.line, loss->loc.col);
        r = ir_div(g, ir_reshape(g, ir_reduce(g, OP_REDUCE_SUM, r, 0), 0, NULL), ir_const(g, (double)x.B, x.dt, 0, NULL));
        if (graph_failed(&x, 0, r)) goto done;
    }
    *out = r;
    if (uses_ref) *uses_ref = x.uses_ref;
    rc = 0;
done:
    g->cur_loc = saved;
    free(x.lets);
    return rc;
}

int loss_build_ir(IrGraph *g, const LossCfg *loss, const LossLeaves *lv, int32_t *out, char *err, size_t errlen) {
    return loss_lower(g, loss, lv, out, NULL, NULL, err, errlen);
}

int loss_check(LossCfg *loss, int have_ref, char *err, size_t errlen) {
    IrGraph g;
    ir_init(&g);
    int64_t shape[1] = {4};
    LossLeaves lv;
    lv.logps = ir_input(&g, "logps", DT_F64, 1, shape);
    lv.lens = ir_input(&g, "lens", DT_F64, 1, shape);
    lv.ref_logps = have_ref ? ir_input(&g, "ref_logps", DT_F64, 1, shape) : -1;
    int32_t out;
    int rc = -1;
    if (lv.logps < 0 || lv.lens < 0 || (have_ref && lv.ref_logps < 0)) snprintf(err, errlen, "out of memory");
    else rc = loss_lower(&g, loss, &lv, &out, &loss->uses_ref, &loss->is_scalar, err, errlen);
    ir_free(&g);
    return rc;
}
