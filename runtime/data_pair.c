/* data_pair.c — a DataExample through a chat template and the tokenizer.
 *
 * For each side (chosen, rejected) the conversation prompt + response is
 * rendered once (chat_template.c). Pieces are encoded chunk by chunk: a
 * control piece becomes its special token id, and each maximal run of text
 * and data pieces between two control pieces is one tok_encode call (so
 * template text and data merge exactly as in Hugging Face, where the
 * rendered string is split at special tokens only). Data is encoded with
 * TOK_PARSE_SPECIAL only under --parse-special.
 *
 * Boundaries. The prompt ends where the first response message's content
 * starts (its header is the generation prompt); each assistant message of
 * the response is a label span from its content start to its end-of-turn
 * token. The joint encoding of prompt + response is kept when the encoding
 * of the text before every boundary is a token prefix of it: then the
 * boundary falls between tokens and its position is that prefix's length.
 * When not (a merge across the boundary, e.g. a response starting with a
 * newline right after "assistant\n"), the pieces between boundaries are
 * encoded apart and concatenated, which is what MindRLHF and TRL do for
 * every pair, and the pair is counted as encoded apart (prepare warns).
 * Either way both sides share the prompt's tokens exactly.
 *
 * Truncation keeps the start: a sequence is cut to max_length tokens and
 * its spans clipped. A prompt that leaves no room for one response token
 * (prompt_len >= max_length) drops the pair, as does a side left without
 * any label token. A label span never starts at token 0 (nothing predicts
 * the first token).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

#define MAX_SPECIALS 8

struct DataBuilder {
    const Tokenizer *tok;
    ChatTemplate tpl;
    unsigned flags;
    uint32_t max_length;
    const char *special_str[MAX_SPECIALS];
    int32_t special_id[MAX_SPECIALS];
    int nspecials;
    ChatRender render;
    ChatMsg *conv;
    size_t convcap;
    char *buf; /* chunk bytes */
    size_t bufcap;
    int32_t *pre; /* encoding of the pieces before the prompt's last chunk */
    size_t npre, precap;
    int32_t *prompt; /* encoding of the prompt */
    size_t nprompt, promptcap;
    int32_t *tmp;
    size_t ntmp, tmpcap;
    size_t *marks;
    size_t *counts;
    size_t markcap, countcap;
};

static void fmt(char *err, size_t errlen, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
}

DataBuilder *data_builder_new(const Tokenizer *tok, ChatTemplate tpl, unsigned tok_flags, uint32_t max_length,
                              char *err, size_t errlen) {
    DataBuilder *b = calloc(1, sizeof *b);
    if (!b) {
        fmt(err, errlen, "out of memory");
        return NULL;
    }
    b->tok = tok;
    b->tpl = tpl;
    b->flags = tok_flags;
    b->max_length = max_length;
    chat_render_init(&b->render);
    if (tok) {
        for (const char *const *s = chat_template_specials(tpl); *s && b->nspecials < MAX_SPECIALS; s++) {
            int32_t id = tok_token_id(tok, *s);
            if (id < 0) {
                fmt(err, errlen, "template '%s' needs the control token '%s', which the tokenizer does not have",
                    chat_template_name(tpl), *s);
                data_builder_free(b);
                return NULL;
            }
            b->special_str[b->nspecials] = *s;
            b->special_id[b->nspecials++] = id;
        }
    }
    return b;
}

void data_builder_free(DataBuilder *b) {
    if (!b) return;
    chat_render_free(&b->render);
    free(b->conv);
    free(b->buf);
    free(b->pre);
    free(b->prompt);
    free(b->tmp);
    free(b->marks);
    free(b->counts);
    free(b);
}

void data_pair_init(DataPair *p) { memset(p, 0, sizeof *p); }

void data_pair_free(DataPair *p) {
    for (int k = 0; k < 2; k++) {
        free(p->seq[k].ids);
        free(p->seq[k].spans);
    }
    data_pair_init(p);
}

/* Grows the array whose pointer is at pp (any object pointer type) to hold
 * need elements of elem bytes. */
static int grow(void *pp, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p;
    memcpy(&p, pp, sizeof p);
    void *q = realloc(p, c * elem);
    if (!q) return -1;
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return 0;
}

static int push_ids(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t m) {
    if (grow(ids, cap, *n + m + 1, sizeof **ids)) return -1;
    if (m) memcpy(*ids + *n, src, m * sizeof *src);
    *n += m;
    return 0;
}

static int32_t special_id(const DataBuilder *b, const ChatPiece *p) {
    for (int i = 0; i < b->nspecials; i++)
        if (strlen(b->special_str[i]) == p->len && !memcmp(b->special_str[i], p->s, p->len)) return b->special_id[i];
    return -1;
}

/* Appends the encoding of pieces [from, to) to ids. */
static int encode_range(DataBuilder *b, size_t from, size_t to, int32_t **ids, size_t *n, size_t *cap) {
    const ChatRender *r = &b->render;
    size_t blen = 0;
    for (size_t i = from; i <= to; i++) {
        const ChatPiece *p = i < to ? &r->pieces[i] : NULL;
        if (!p || p->kind == CHAT_PIECE_SPECIAL) {
            if (blen && tok_encode(b->tok, b->buf, blen, b->flags, ids, n, cap)) return -1;
            blen = 0;
            if (!p) break;
            int32_t id = special_id(b, p);
            if (id < 0 || grow(ids, cap, *n + 1, sizeof **ids)) return -1;
            (*ids)[(*n)++] = id;
            continue;
        }
        if (grow(&b->buf, &b->bufcap, blen + p->len + 1, 1)) return -1;
        if (p->len) memcpy(b->buf + blen, p->s, p->len);
        blen += p->len;
    }
    return 0;
}

/* Index just past the last control piece before piece `before` (0 if none). */
static size_t chunk_start(const ChatRender *r, size_t before) {
    for (size_t i = before; i > 0; i--)
        if (r->pieces[i - 1].kind == CHAT_PIECE_SPECIAL) return i;
    return 0;
}

static int add_span(DataSeq *s, size_t start, size_t end) {
    if (start < 1) start = 1;
    if (start >= end) return 0;
    if (grow(&s->spans, &s->spancap, s->nspans + 1, sizeof *s->spans)) return -1;
    s->spans[s->nspans++] = (RecSpan){(uint32_t)start, (uint32_t)end};
    return 0;
}

/* The token count at each mark; marks[0] is the prompt end. Fills seq->ids. */
static int encode_side(DataBuilder *b, size_t nmarks, size_t end, size_t pre_end, DataSeq *seq, int *apart) {
    /* joint: pre ++ encode(pre_end .. end) */
    seq->n = 0;
    if (push_ids(&seq->ids, &seq->n, &seq->cap, b->pre, b->npre) ||
        encode_range(b, pre_end, end, &seq->ids, &seq->n, &seq->cap))
        return -1;
    int ok = 1;
    for (size_t i = 0; i < nmarks && ok; i++) {
        const int32_t *c;
        size_t nc;
        if (i == 0) {
            c = b->prompt;
            nc = b->nprompt;
        } else {
            b->ntmp = 0;
            if (push_ids(&b->tmp, &b->ntmp, &b->tmpcap, b->pre, b->npre) ||
                encode_range(b, pre_end, b->marks[i], &b->tmp, &b->ntmp, &b->tmpcap))
                return -1;
            c = b->tmp;
            nc = b->ntmp;
        }
        if (nc > seq->n || (nc && memcmp(c, seq->ids, nc * sizeof *c)))
            ok = 0;
        else
            b->counts[i] = nc;
    }
    if (ok) return 0;
    /* apart: encode each stretch between consecutive marks on its own */
    *apart = 1;
    seq->n = 0;
    if (push_ids(&seq->ids, &seq->n, &seq->cap, b->prompt, b->nprompt)) return -1;
    b->counts[0] = seq->n;
    for (size_t i = 1; i <= nmarks; i++) {
        size_t to = i < nmarks ? b->marks[i] : end;
        if (encode_range(b, b->marks[i - 1], to, &seq->ids, &seq->n, &seq->cap)) return -1;
        if (i < nmarks) b->counts[i] = seq->n;
    }
    return 0;
}

static int build_text(DataBuilder *b, const DataExample *ex, DataPair *p, int *outcome) {
    size_t pre_end = 0;
    for (int k = 0; k < 2; k++) {
        size_t nconv = ex->nprompt + ex->nresp[k];
        if (grow(&b->conv, &b->convcap, nconv, sizeof *b->conv)) return -1;
        if (ex->nprompt) memcpy(b->conv, ex->prompt, ex->nprompt * sizeof *b->conv);
        memcpy(b->conv + ex->nprompt, ex->resp[k], ex->nresp[k] * sizeof *b->conv);
        if (chat_render(b->tpl, b->conv, nconv, &b->render)) return -1;
        const ChatRender *r = &b->render;
        size_t pend = r->content_start[ex->nprompt];
        if (k == 0) { /* the prompt: the same pieces on both sides */
            pre_end = chunk_start(r, pend);
            b->npre = 0;
            if (encode_range(b, 0, pre_end, &b->pre, &b->npre, &b->precap)) return -1;
            b->nprompt = 0;
            if (push_ids(&b->prompt, &b->nprompt, &b->promptcap, b->pre, b->npre) ||
                encode_range(b, pre_end, pend, &b->prompt, &b->nprompt, &b->promptcap))
                return -1;
            p->prompt_len = (uint32_t)b->nprompt;
            if (b->max_length && p->prompt_len >= b->max_length) {
                *outcome = DATA_PAIR_PROMPT_TOO_LONG;
                return 0;
            }
        }
        /* marks: prompt end, then each assistant message's content start (but
         * the first, which is the prompt end) and turn end; the last turn end
         * is the sequence end */
        size_t nmarks = 0;
        if (grow(&b->marks, &b->markcap, 2 * ex->nresp[k] + 1, sizeof *b->marks)) return -1;
        if (grow(&b->counts, &b->countcap, 2 * ex->nresp[k] + 1, sizeof *b->counts)) return -1;
        b->marks[nmarks++] = pend;
        size_t last = nconv - 1;
        for (size_t i = ex->nprompt; i < nconv; i++) {
            if (b->conv[i].role != CHAT_ASSISTANT) continue;
            if (i > ex->nprompt) b->marks[nmarks++] = r->content_start[i];
            if (i < last) b->marks[nmarks++] = r->turn_end[i];
        }
        size_t end = r->turn_end[last];
        DataSeq *seq = &p->seq[k];
        if (encode_side(b, nmarks, end, pre_end, seq, &p->encoded_apart)) return -1;
        /* spans, from the counts at the marks */
        size_t mi = 1; /* marks[0] = prompt end = first content start */
        seq->nspans = 0;
        for (size_t i = ex->nprompt; i < nconv; i++) {
            if (b->conv[i].role != CHAT_ASSISTANT) continue;
            size_t s = i == ex->nprompt ? b->counts[0] : b->counts[mi++];
            size_t e = i < last ? b->counts[mi++] : seq->n;
            if (add_span(seq, s, e)) return -1;
        }
    }
    return 0;
}

static int build_ids(const DataExample *ex, DataPair *p, uint32_t max_length, int *outcome) {
    p->prompt_len = (uint32_t)ex->nids[0];
    if (max_length && p->prompt_len >= max_length) {
        *outcome = DATA_PAIR_PROMPT_TOO_LONG;
        return 0;
    }
    for (int k = 0; k < 2; k++) {
        DataSeq *s = &p->seq[k];
        s->n = 0;
        s->nspans = 0;
        if (push_ids(&s->ids, &s->n, &s->cap, ex->ids[0], ex->nids[0]) ||
            push_ids(&s->ids, &s->n, &s->cap, ex->ids[k + 1], ex->nids[k + 1]) || add_span(s, p->prompt_len, s->n))
            return -1;
    }
    return 0;
}

int data_pair_build(DataBuilder *b, const DataExample *ex, DataPair *p, int *outcome, char *err, size_t errlen) {
    *outcome = DATA_PAIR_KEPT;
    p->prompt_len = 0;
    p->encoded_apart = p->truncated = 0;
    for (int k = 0; k < 2; k++) p->seq[k].n = p->seq[k].nspans = 0;
    int rc;
    if (ex->is_ids)
        rc = build_ids(ex, p, b->max_length, outcome);
    else if (!b->tok) {
        fmt(err, errlen, "text input needs a tokenizer");
        return -1;
    } else
        rc = build_text(b, ex, p, outcome);
    if (rc) {
        fmt(err, errlen, "out of memory");
        return -1;
    }
    if (*outcome != DATA_PAIR_KEPT) return 0;
    for (int k = 0; k < 2; k++) {
        DataSeq *s = &p->seq[k];
        if (b->max_length && s->n > b->max_length) {
            s->n = b->max_length;
            p->truncated = 1;
            size_t j = 0;
            for (size_t i = 0; i < s->nspans; i++) {
                RecSpan sp = s->spans[i];
                if (sp.end > s->n) sp.end = (uint32_t)s->n;
                if (sp.start < sp.end) s->spans[j++] = sp;
            }
            s->nspans = j;
        }
        if (s->nspans == 0) *outcome = DATA_PAIR_NO_LABELS;
    }
    return 0;
}

void data_pair_to_rec(const DataPair *p, RecPair *out) {
    memset(out, 0, sizeof *out);
    out->prompt_len = p->prompt_len;
    for (int k = 0; k < 2; k++) {
        out->len[k] = (uint32_t)p->seq[k].n;
        out->ids[k] = p->seq[k].ids;
        out->nspans[k] = (uint32_t)p->seq[k].nspans;
        out->spans[k] = p->seq[k].spans;
    }
}
