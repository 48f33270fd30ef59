/* data_format.c — the input formats: detection and row -> DataExample.
 *
 * Every format reduces to the same thing: prompt messages shared by both
 * sequences and one list of response messages per side (or, for id input,
 * three id lists). Strings become one message: the prompt a user message,
 * a response an assistant message. A response list must start and end with
 * an assistant message and its last message must not be empty.
 *
 *   trl      prompt/chosen/rejected as strings, or as message lists with
 *            the prompt optional: without it the prompt is the longest
 *            common prefix of the chosen and rejected conversations (TRL's
 *            implicit prompt)
 *   xtuner   prompt/chosen/rejected as message lists, prompt required
 *   orpo     chosen/rejected whole conversations of equal length sharing
 *            all but their last message: prompt = chosen[:-1] (XTuner's
 *            orpo_dpo_mix_40k_map_fn); other fields are ignored
 *   cvalues  prompt, pos_resp (chosen), neg_resp (rejected); pos_type and
 *            neg_type are ignored
 *   ids      prompt_ids, chosen_ids, rejected_ids: integer lists, the
 *            responses without the prompt
 *
 * Field lookups are case-sensitive and a key given twice is an error (cJSON
 * would silently take the first, Python the last). Messages name the field
 * with its path: "field 'chosen[1].role' must be ...".
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

static const char *const fmt_names[DATA_FMT_COUNT] = {"auto", "trl", "xtuner", "orpo", "cvalues", "ids"};

const char *data_format_name(DataFormat f) { return (unsigned)f < DATA_FMT_COUNT ? fmt_names[f] : "?"; }

int data_format_parse(const char *s, DataFormat *f) {
    for (int i = 0; i < DATA_FMT_COUNT; i++)
        if (!strcmp(s, fmt_names[i])) {
            *f = (DataFormat)i;
            return 0;
        }
    return -1;
}

static void fmt(char *err, size_t errlen, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
}

static const char *jtype(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "list";
    if (cJSON_IsObject(v)) return "object";
    return "invalid";
}

/* The member NAME of object o (NULL when absent); -1 when given twice. */
static int member(const cJSON *o, const char *name, const char *path, const cJSON **out, char *err, size_t errlen) {
    *out = NULL;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!c->string || strcmp(c->string, name)) continue;
        if (*out) {
            fmt(err, errlen, "duplicate field '%s'", path);
            return -1;
        }
        *out = c;
    }
    return 0;
}

/* ---- detection --------------------------------------------------------------------- */

static int has(const cJSON *o, const char *name) { return cJSON_GetObjectItemCaseSensitive(o, name) != NULL; }

int data_format_detect(const cJSON *row, DataFormat *f, char *err, size_t errlen) {
    if (!cJSON_IsObject(row)) {
        fmt(err, errlen, "a row must be a JSON object, got %s", jtype(row));
        return -1;
    }
    int ids = has(row, "prompt_ids") || has(row, "chosen_ids") || has(row, "rejected_ids");
    int cval = has(row, "pos_resp") || has(row, "neg_resp");
    int pref = has(row, "chosen") || has(row, "rejected");
    if (ids + cval + pref > 1) {
        fmt(err, errlen, "cannot tell the format: the row has fields of several formats (%s%s%s); use --format",
            pref ? "chosen/rejected" : "", pref && (cval || ids) ? " and " : "",
            cval && ids ? "pos_resp/neg_resp and prompt_ids/chosen_ids/rejected_ids"
            : cval      ? "pos_resp/neg_resp"
                        : "prompt_ids/chosen_ids/rejected_ids");
        return -1;
    }
    if (ids) {
        *f = DATA_FMT_IDS;
        return 0;
    }
    if (cval) {
        *f = DATA_FMT_CVALUES;
        return 0;
    }
    if (pref) {
        const cJSON *chosen = cJSON_GetObjectItemCaseSensitive(row, "chosen");
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(row, "prompt");
        *f = cJSON_IsArray(chosen) && cJSON_IsString(prompt) ? DATA_FMT_ORPO : DATA_FMT_TRL;
        return 0;
    }
    char keys[200] = "";
    size_t k = 0;
    int n = 0;
    for (const cJSON *c = row->child; c && k < sizeof keys - 1; c = c->next, n++)
        k += (size_t)snprintf(keys + k, sizeof keys - k, "%s'%s'", n ? ", " : "", c->string ? c->string : "");
    if (k >= sizeof keys - 1) strcpy(keys + sizeof keys - 5, "...");
    fmt(err, errlen,
        "cannot tell the format from the fields %s%s%s: expected chosen/rejected (trl, xtuner, orpo), "
        "pos_resp/neg_resp (cvalues) or prompt_ids/chosen_ids/rejected_ids (ids); use --format",
        n ? "(" : "(none", keys, ")");
    return -1;
}

/* ---- conversion --------------------------------------------------------------------- */

void data_example_init(DataExample *ex) { memset(ex, 0, sizeof *ex); }

void data_example_free(DataExample *ex) {
    free(ex->msgbuf);
    free(ex->idbuf);
    data_example_init(ex);
}

/* Conversion state: messages are appended to ex->msgbuf; the prompt and
 * responses are recorded as offsets until the end (realloc moves the buffer). */
typedef struct Conv {
    DataExample *ex;
    size_t nmsg;
    char *err;
    size_t errlen;
} Conv;

static ChatMsg *conv_push(Conv *c) {
    DataExample *ex = c->ex;
    if (c->nmsg == ex->msgcap) {
        size_t cap = ex->msgcap ? ex->msgcap * 2 : 16;
        ChatMsg *m = realloc(ex->msgbuf, cap * sizeof *m);
        if (!m) {
            fmt(c->err, c->errlen, "out of memory");
            return NULL;
        }
        ex->msgbuf = m;
        ex->msgcap = cap;
    }
    return &ex->msgbuf[c->nmsg++];
}

static int text_msg(Conv *c, const cJSON *s, ChatRole role) {
    ChatMsg *m = conv_push(c);
    if (!m) return -1;
    m->role = role;
    m->text = s->valuestring;
    m->len = strlen(s->valuestring);
    return 0;
}

/* Field NAME of row as a string: required; non-empty when nonempty. */
static int get_string(const cJSON *row, const char *name, int nonempty, const cJSON **out, char *err,
                      size_t errlen) {
    if (member(row, name, name, out, err, errlen)) return -1;
    if (!*out) {
        fmt(err, errlen, "missing field '%s'", name);
        return -1;
    }
    if (!cJSON_IsString(*out)) {
        fmt(err, errlen, "field '%s' must be a string, got %s", name, jtype(*out));
        return -1;
    }
    if (nonempty && !(*out)->valuestring[0]) {
        fmt(err, errlen, "field '%s' is empty", name);
        return -1;
    }
    return 0;
}

/* Appends the messages of list v (field NAME) from index `from`. */
static int messages(Conv *c, const cJSON *v, const char *name, int from) {
    int i = 0;
    for (const cJSON *m = v->child; m; m = m->next, i++) {
        if (i < from) continue;
        char path[96];
        snprintf(path, sizeof path, "%s[%d]", name, i);
        if (!cJSON_IsObject(m)) {
            fmt(c->err, c->errlen, "field '%s' must be a message object, got %s", path, jtype(m));
            return -1;
        }
        char rp[112], cp[112];
        snprintf(rp, sizeof rp, "%s.role", path);
        snprintf(cp, sizeof cp, "%s.content", path);
        const cJSON *role, *content;
        if (member(m, "role", rp, &role, c->err, c->errlen) || member(m, "content", cp, &content, c->err, c->errlen))
            return -1;
        if (!role) {
            fmt(c->err, c->errlen, "missing field '%s'", rp);
            return -1;
        }
        if (!cJSON_IsString(role)) {
            fmt(c->err, c->errlen, "field '%s' must be a string, got %s", rp, jtype(role));
            return -1;
        }
        ChatRole r;
        if (chat_role_parse(role->valuestring, &r)) {
            fmt(c->err, c->errlen, "field '%s' must be 'system', 'user' or 'assistant', got '%.40s'", rp,
                role->valuestring);
            return -1;
        }
        if (!content) {
            fmt(c->err, c->errlen, "missing field '%s'", cp);
            return -1;
        }
        if (!cJSON_IsString(content)) {
            fmt(c->err, c->errlen, "field '%s' must be a string, got %s", cp, jtype(content));
            return -1;
        }
        if (text_msg(c, content, r)) return -1;
    }
    return 0;
}

/* Checks response messages [first, c->nmsg) of field NAME (list indices
 * starting at index0): assistant first and last, last one not empty. */
static int check_response(Conv *c, size_t first, const char *name, int index0) {
    size_t n = c->nmsg - first;
    const ChatMsg *m = c->ex->msgbuf + first;
    if (n == 0) {
        fmt(c->err, c->errlen, "field '%s' has no response message", name);
        return -1;
    }
    if (m[0].role != CHAT_ASSISTANT) {
        fmt(c->err, c->errlen, "field '%s[%d].role' must be 'assistant' (a response starts with the assistant), got '%s'",
            name, index0, chat_role_name(m[0].role));
        return -1;
    }
    if (m[n - 1].role != CHAT_ASSISTANT) {
        fmt(c->err, c->errlen, "field '%s[%d].role' must be 'assistant' (a response ends with the assistant), got '%s'",
            name, index0 + (int)n - 1, chat_role_name(m[n - 1].role));
        return -1;
    }
    if (m[n - 1].len == 0) {
        fmt(c->err, c->errlen, "field '%s[%d].content' is empty", name, index0 + (int)n - 1);
        return -1;
    }
    return 0;
}

static int list_len(const cJSON *v) { return cJSON_GetArraySize(v); }

static int msg_equal(const cJSON *a, const cJSON *b) {
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(a, "role"), *rb = cJSON_GetObjectItemCaseSensitive(b, "role");
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(a, "content"),
                *cb = cJSON_GetObjectItemCaseSensitive(b, "content");
    return cJSON_IsString(ra) && cJSON_IsString(rb) && cJSON_IsString(ca) && cJSON_IsString(cb) &&
           !strcmp(ra->valuestring, rb->valuestring) && !strcmp(ca->valuestring, cb->valuestring);
}

/* Fills the example's views from offsets into msgbuf. */
static void finish(DataExample *ex, size_t p0, size_t np, size_t c0, size_t nc, size_t r0, size_t nr) {
    ex->prompt = ex->msgbuf + p0;
    ex->nprompt = np;
    ex->resp[0] = ex->msgbuf + c0;
    ex->nresp[0] = nc;
    ex->resp[1] = ex->msgbuf + r0;
    ex->nresp[1] = nr;
}

static int lists_or_strings(const cJSON *row, Conv *c, int lists_only) {
    const cJSON *chosen, *rejected, *prompt;
    if (member(row, "chosen", "chosen", &chosen, c->err, c->errlen) ||
        member(row, "rejected", "rejected", &rejected, c->err, c->errlen) ||
        member(row, "prompt", "prompt", &prompt, c->err, c->errlen))
        return -1;
    if (!chosen || !rejected) {
        fmt(c->err, c->errlen, "missing field '%s'", chosen ? "rejected" : "chosen");
        return -1;
    }
    const char *what = lists_only ? "a list of messages" : "a string or a list of messages";
    if (!cJSON_IsArray(chosen) && (lists_only || !cJSON_IsString(chosen))) {
        fmt(c->err, c->errlen, "field 'chosen' must be %s, got %s", what, jtype(chosen));
        return -1;
    }
    if (cJSON_IsString(chosen)) { /* TRL standard: three strings */
        if (!cJSON_IsString(rejected)) {
            fmt(c->err, c->errlen, "field 'rejected' must be a string like 'chosen', got %s", jtype(rejected));
            return -1;
        }
        if (!prompt) {
            fmt(c->err, c->errlen, "missing field 'prompt' (an implicit prompt needs message lists)");
            return -1;
        }
        if (!cJSON_IsString(prompt)) {
            fmt(c->err, c->errlen, "field 'prompt' must be a string like 'chosen', got %s", jtype(prompt));
            return -1;
        }
        if (!chosen->valuestring[0] || !rejected->valuestring[0]) {
            fmt(c->err, c->errlen, "field '%s' is empty", chosen->valuestring[0] ? "rejected" : "chosen");
            return -1;
        }
        if (text_msg(c, prompt, CHAT_USER) || text_msg(c, chosen, CHAT_ASSISTANT) ||
            text_msg(c, rejected, CHAT_ASSISTANT))
            return -1;
        finish(c->ex, 0, 1, 1, 1, 2, 1);
        return 0;
    }
    if (!cJSON_IsArray(rejected)) {
        fmt(c->err, c->errlen, "field 'rejected' must be a list of messages like 'chosen', got %s", jtype(rejected));
        return -1;
    }
    if (prompt && !cJSON_IsArray(prompt)) {
        fmt(c->err, c->errlen, "field 'prompt' must be a list of messages like 'chosen', got %s%s", jtype(prompt),
            cJSON_IsString(prompt) && !lists_only ? " (for orpo-dpo-mix-40k rows, use --format orpo)" : "");
        return -1;
    }
    if (!prompt && lists_only) {
        fmt(c->err, c->errlen, "missing field 'prompt'");
        return -1;
    }
    int skip = 0; /* implicit prompt: messages shared by chosen and rejected */
    if (!prompt) {
        const cJSON *a = chosen->child, *b = rejected->child;
        while (a && b && msg_equal(a, b)) {
            a = a->next;
            b = b->next;
            skip++;
        }
        if (!a || !b) {
            if (!a && !b)
                fmt(c->err, c->errlen,
                    "fields 'chosen' and 'rejected' are the same conversation: no response after their shared prefix");
            else
                fmt(c->err, c->errlen, "field '%s' has no message after the prefix it shares with '%s'",
                    !a ? "chosen" : "rejected", !a ? "rejected" : "chosen");
            return -1;
        }
        if (messages(c, chosen, "chosen", 0)) return -1;
        c->nmsg -= (size_t)(list_len(chosen) - skip); /* keep only the shared prefix */
    } else if (messages(c, prompt, "prompt", 0))
        return -1;
    size_t np = c->nmsg;
    if (messages(c, chosen, "chosen", skip) || check_response(c, np, "chosen", skip)) return -1;
    size_t r0 = c->nmsg;
    if (messages(c, rejected, "rejected", skip) || check_response(c, r0, "rejected", skip)) return -1;
    finish(c->ex, 0, np, np, r0 - np, r0, c->nmsg - r0);
    return 0;
}

static int orpo(const cJSON *row, Conv *c) {
    const cJSON *chosen, *rejected;
    if (member(row, "chosen", "chosen", &chosen, c->err, c->errlen) ||
        member(row, "rejected", "rejected", &rejected, c->err, c->errlen))
        return -1;
    if (!chosen || !rejected) {
        fmt(c->err, c->errlen, "missing field '%s'", chosen ? "rejected" : "chosen");
        return -1;
    }
    if (!cJSON_IsArray(chosen) || !cJSON_IsArray(rejected)) {
        const cJSON *bad = cJSON_IsArray(chosen) ? rejected : chosen;
        fmt(c->err, c->errlen, "field '%s' must be a list of messages, got %s", bad == chosen ? "chosen" : "rejected",
            jtype(bad));
        return -1;
    }
    int n = list_len(chosen), m = list_len(rejected);
    if (n == 0 || m == 0) {
        fmt(c->err, c->errlen, "field '%s' is an empty list", n == 0 ? "chosen" : "rejected");
        return -1;
    }
    if (n != m) {
        fmt(c->err, c->errlen, "fields 'chosen' and 'rejected' must have the same number of messages, got %d and %d",
            n, m);
        return -1;
    }
    if (messages(c, chosen, "chosen", 0)) return -1;
    size_t np = (size_t)n - 1;
    if (messages(c, rejected, "rejected", 0)) return -1;
    /* rejected[:-1] must be chosen[:-1] */
    const ChatMsg *a = c->ex->msgbuf, *b = c->ex->msgbuf + n;
    for (size_t i = 0; i < np; i++)
        if (a[i].role != b[i].role || a[i].len != b[i].len || memcmp(a[i].text, b[i].text, a[i].len)) {
            fmt(c->err, c->errlen,
                "field 'rejected[%zu]' differs from 'chosen[%zu]': the two conversations must share all but their "
                "last message",
                i, i);
            return -1;
        }
    /* layout: chosen[0..n) rejected[0..n): prompt = chosen[:-1], responses = the last ones */
    Conv cc = *c;
    cc.nmsg = (size_t)n; /* check_response looks at [first, nmsg) */
    if (check_response(&cc, np, "chosen", (int)np)) return -1;
    cc.nmsg = 2 * (size_t)n;
    if (check_response(&cc, (size_t)n + np, "rejected", (int)np)) return -1;
    finish(c->ex, 0, np, np, 1, (size_t)n + np, 1);
    return 0;
}

static int cvalues(const cJSON *row, Conv *c) {
    const cJSON *prompt, *pos, *neg;
    if (get_string(row, "prompt", 0, &prompt, c->err, c->errlen) ||
        get_string(row, "pos_resp", 1, &pos, c->err, c->errlen) ||
        get_string(row, "neg_resp", 1, &neg, c->err, c->errlen))
        return -1;
    if (text_msg(c, prompt, CHAT_USER) || text_msg(c, pos, CHAT_ASSISTANT) || text_msg(c, neg, CHAT_ASSISTANT))
        return -1;
    finish(c->ex, 0, 1, 1, 1, 2, 1);
    return 0;
}

static int id_list(const cJSON *row, const char *name, int nonempty, int32_t vocab, DataExample *ex, size_t *off,
                   size_t *n, char *err, size_t errlen) {
    const cJSON *v;
    if (member(row, name, name, &v, err, errlen)) return -1;
    if (!v) {
        fmt(err, errlen, "missing field '%s'", name);
        return -1;
    }
    if (!cJSON_IsArray(v)) {
        fmt(err, errlen, "field '%s' must be a list of token ids, got %s", name, jtype(v));
        return -1;
    }
    *off = *n;
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e)) {
            fmt(err, errlen, "field '%s[%d]' must be an integer token id, got %s", name, i, jtype(e));
            return -1;
        }
        double d = e->valuedouble;
        if (!(d == floor(d)) || d < 0 || d > 2147483647.0 || (vocab > 0 && d >= vocab)) {
            if (d == floor(d) && d >= 0 && vocab > 0)
                fmt(err, errlen, "field '%s[%d]' is %.0f, outside the vocabulary (size %d)", name, i, d, (int)vocab);
            else
                fmt(err, errlen, "field '%s[%d]' must be a token id (an integer >= 0), got %.17g", name, i, d);
            return -1;
        }
        if (*n == ex->idcap) {
            size_t cap = ex->idcap ? ex->idcap * 2 : 256;
            int32_t *p = realloc(ex->idbuf, cap * sizeof *p);
            if (!p) {
                fmt(err, errlen, "out of memory");
                return -1;
            }
            ex->idbuf = p;
            ex->idcap = cap;
        }
        ex->idbuf[(*n)++] = (int32_t)d;
    }
    if (nonempty && i == 0) {
        fmt(err, errlen, "field '%s' is empty", name);
        return -1;
    }
    return 0;
}

static int ids(const cJSON *row, int32_t vocab, DataExample *ex, char *err, size_t errlen) {
    static const char *const names[3] = {"prompt_ids", "chosen_ids", "rejected_ids"};
    size_t off[3], n = 0;
    for (int k = 0; k < 3; k++) {
        size_t before = n;
        if (id_list(row, names[k], k > 0, vocab, ex, &off[k], &n, err, errlen)) return -1;
        ex->nids[k] = n - before;
    }
    for (int k = 0; k < 3; k++) ex->ids[k] = ex->idbuf + off[k];
    ex->is_ids = 1;
    return 0;
}

int data_example_from_row(const cJSON *row, DataFormat f, int32_t vocab_size, DataExample *ex, char *err,
                          size_t errlen) {
    ex->is_ids = 0;
    ex->nprompt = ex->nresp[0] = ex->nresp[1] = 0;
    ex->nids[0] = ex->nids[1] = ex->nids[2] = 0;
    if (!cJSON_IsObject(row)) {
        fmt(err, errlen, "a row must be a JSON object, got %s", jtype(row));
        return -1;
    }
    Conv c = {ex, 0, err, errlen};
    switch (f) {
    case DATA_FMT_TRL: return lists_or_strings(row, &c, 0);
    case DATA_FMT_XTUNER: return lists_or_strings(row, &c, 1);
    case DATA_FMT_ORPO: return orpo(row, &c);
    case DATA_FMT_CVALUES: return cvalues(row, &c);
    case DATA_FMT_IDS: return ids(row, vocab_size, ex, err, errlen);
    default: fmt(err, errlen, "no format given"); return -1;
    }
}
