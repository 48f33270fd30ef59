/* data_show.c — one pair of a .rec file, for people (`dpoc data show`).
 *
 * Text: a header line per pair and per sequence, then the sequence decoded
 * with every token in one of three classes, each run of a class decoded in
 * one piece and wrapped in markers:
 *   ⟦prompt⟧…⟦/prompt⟧   tokens before prompt_len (not labels)
 *   ⟦label⟧…⟦/label⟧     tokens inside a label span
 *   ⟦masked⟧…⟦/masked⟧   any other token (e.g. a user turn inside a
 *                        multi-turn response)
 * A token in a label span is a label even inside the prompt (never the
 * case for prepared data). Control tokens print as their text. JSON: one
 * line per pair with the ids, spans and reference log-probs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

enum { CLS_PROMPT, CLS_LABEL, CLS_MASKED };
static const char *const open_mark[] = {"⟦prompt⟧", "⟦label⟧", "⟦masked⟧"};
static const char *const close_mark[] = {"⟦/prompt⟧", "⟦/label⟧", "⟦/masked⟧"};

static int token_class(const RecPair *p, int k, uint32_t t, uint32_t *si) {
    const RecSpan *s = p->spans[k];
    while (*si < p->nspans[k] && s[*si].end <= t) (*si)++;
    if (*si < p->nspans[k] && s[*si].start <= t && t < s[*si].end) return CLS_LABEL;
    return t < p->prompt_len ? CLS_PROMPT : CLS_MASKED;
}

int data_show_text(FILE *out, RecReader *r, const Tokenizer *tok, uint64_t i, char *err, size_t errlen) {
    RecPair p;
    if (rec_get(r, i, &p, err, errlen)) return -1;
    fprintf(out, "pair %llu: prompt %u tokens\n", (unsigned long long)i, p.prompt_len);
    for (int k = 0; k < 2; k++) {
        fprintf(out, "%s: %u tokens, labels", k ? "rejected" : "chosen", p.len[k]);
        for (uint32_t j = 0; j < p.nspans[k]; j++) fprintf(out, " [%u, %u)", p.spans[k][j].start, p.spans[k][j].end);
        fprintf(out, "%s\n", p.nspans[k] ? "" : " none");
        uint32_t si = 0, t = 0;
        while (t < p.len[k]) {
            int c = token_class(&p, k, t, &si);
            uint32_t e = t + 1, sj = si;
            while (e < p.len[k] && token_class(&p, k, e, &sj) == c) e++;
            char *text;
            size_t len;
            if (tok_decode(tok, p.ids[k] + t, e - t, &text, &len, err, errlen)) return -1;
            fputs(open_mark[c], out);
            fwrite(text, 1, len, out);
            fputs(close_mark[c], out);
            free(text);
            t = e;
        }
        fputc('\n', out);
    }
    if (p.has_ref)
        fprintf(out, "reference log-probs: chosen %.9g, rejected %.9g\n", (double)p.ref_logps[0],
                (double)p.ref_logps[1]);
    return 0;
}

static void json_float(FILE *out, float v) {
    if (isfinite(v))
        fprintf(out, "%.9g", (double)v);
    else
        fputs("null", out);
}

int data_show_json(FILE *out, RecReader *r, uint64_t i, char *err, size_t errlen) {
    RecPair p;
    if (rec_get(r, i, &p, err, errlen)) return -1;
    fprintf(out, "{\"pair\":%llu,\"prompt_len\":%u", (unsigned long long)i, p.prompt_len);
    for (int k = 0; k < 2; k++) {
        fprintf(out, ",\"%s\":{\"len\":%u,\"ids\":[", k ? "rejected" : "chosen", p.len[k]);
        for (uint32_t j = 0; j < p.len[k]; j++) fprintf(out, "%s%d", j ? "," : "", (int)p.ids[k][j]);
        fputs("],\"spans\":[", out);
        for (uint32_t j = 0; j < p.nspans[k]; j++)
            fprintf(out, "%s[%u,%u]", j ? "," : "", p.spans[k][j].start, p.spans[k][j].end);
        fputs("]}", out);
    }
    fputs(",\"ref_logps\":", out);
    if (p.has_ref) {
        fputs("{\"chosen\":", out);
        json_float(out, p.ref_logps[0]);
        fputs(",\"rejected\":", out);
        json_float(out, p.ref_logps[1]);
        fputs("}", out);
    } else
        fputs("null", out);
    fputs("}\n", out);
    return 0;
}
