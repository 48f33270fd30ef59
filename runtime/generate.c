/* generate.c — prompts from a chat template, and one reply token by token.
 *
 * gen_prompt_ids renders the conversation plus an empty assistant message
 * (chat_template.c) and keeps the pieces before that message's content: the
 * conversation followed by the generation prompt (the assistant header).
 * Text and data pieces between two control pieces are encoded in one
 * tok_encode call; a control piece becomes its token id.
 *
 * gen_reply feeds the prompt (the part after what the cache already holds),
 * then loops: sample from the last logits, stop at an end token, else
 * stream the token's bytes (gen_stream.c) and feed it back through decode.
 * It stops before the context overflows: a reply that would need position
 * M stops with GEN_STOP_CONTEXT. The end token, when reached, is fed too, so
 * a following turn continues from a cache that holds it.
 */
#include <stdlib.h>
#include <string.h>

#include "generate.h"

ChatTemplate gen_template_for(const Tokenizer *tok) {
    if (tok_token_id(tok, "<|im_start|>") >= 0) return CHAT_TPL_CHATML;
    if (tok_token_id(tok, "<|start_header_id|>") >= 0) return CHAT_TPL_LLAMA3;
    return CHAT_TPL_NONE;
}

int gen_end_tokens(const Tokenizer *tok, ChatTemplate t, int32_t *ids, int cap) {
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const internlm2[] = {"<|im_end|>", "</s>", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "<|end_of_text|>", NULL};
    static const char *const none[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<|eot_id|>", NULL};
    const char *const *names = t == CHAT_TPL_CHATML      ? chatml
                               : t == CHAT_TPL_INTERNLM2 ? internlm2
                               : t == CHAT_TPL_LLAMA3    ? llama3
                                                         : none;
    int n = 0;
    for (; *names && n < cap; names++) {
        int32_t id = tok_token_id(tok, *names);
        if (id >= 0) ids[n++] = id;
    }
    return n;
}

int gen_prompt_ids(const Tokenizer *tok, ChatTemplate t, const ChatMsg *msgs, size_t n, int32_t **ids, size_t *nids,
                   char *err, size_t errlen) {
    *ids = NULL;
    *nids = 0;
    ChatMsg *all = malloc((n + 1) * sizeof *all);
    if (!all) return snprintf(err, errlen, "out of memory"), -1;
    if (n) memcpy(all, msgs, n * sizeof *msgs);
    all[n] = (ChatMsg){CHAT_ASSISTANT, "", 0};
    ChatRender r;
    chat_render_init(&r);
    size_t cap = 0, blen = 0, bcap = 0;
    char *buf = NULL;
    int rc = -1;
    if (chat_render(t, all, n + 1, &r)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    size_t end = r.content_start[n];
    for (size_t i = 0; i <= end; i++) {
        const ChatPiece *p = i < end ? &r.pieces[i] : NULL;
        if (!p || p->kind == CHAT_PIECE_SPECIAL) {
            if (blen && tok_encode(tok, buf, blen, 0, ids, nids, &cap)) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            blen = 0;
            if (!p) break;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)p->len, p->s);
            int32_t id = tok_token_id(tok, name);
            if (id < 0) {
                snprintf(err, errlen, "template '%s' needs the control token '%s', which the tokenizer does not have",
                         chat_template_name(t), name);
                goto done;
            }
            if (*nids == cap) {
                size_t nc = cap ? 2 * cap : 64;
                int32_t *q = realloc(*ids, nc * sizeof *q);
                if (!q) {
                    snprintf(err, errlen, "out of memory");
                    goto done;
                }
                *ids = q;
                cap = nc;
            }
            (*ids)[(*nids)++] = id;
            continue;
        }
        if (blen + p->len + 1 > bcap) {
            size_t nc = bcap ? bcap : 256;
            while (nc < blen + p->len + 1) nc *= 2;
            char *q = realloc(buf, nc);
            if (!q) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            buf = q;
            bcap = nc;
        }
        if (p->len) memcpy(buf + blen, p->s, p->len);
        blen += p->len;
    }
    rc = 0;
done:
    if (rc) {
        free(*ids);
        *ids = NULL;
        *nids = 0;
    }
    free(buf);
    free(all);
    chat_render_free(&r);
    return rc;
}

static int reply_push(GenReply *r, int32_t id) {
    if (r->n == r->cap) {
        size_t nc = r->cap ? 2 * r->cap : 64;
        int32_t *q = realloc(r->ids, nc * sizeof *q);
        if (!q) return -1;
        r->ids = q;
        r->cap = nc;
    }
    r->ids[r->n++] = id;
    return 0;
}

void gen_reply_free(GenReply *r) {
    free(r->ids);
    memset(r, 0, sizeof *r);
}

static int is_end(int32_t id, const int32_t *end_ids, int nend) {
    for (int i = 0; i < nend; i++)
        if (end_ids[i] == id) return 1;
    return 0;
}

int gen_reply(GenModel *m, GenSampler *sp, const int32_t *prompt, size_t n, const int32_t *end_ids, int nend,
              int64_t max_new, const Tokenizer *tok, FILE *out, GenReply *r, char *err, size_t errlen) {
    r->n = 0;
    r->stop = GEN_STOP_END;
    float *logits = malloc((size_t)m->V * sizeof *logits);
    if (!logits) return snprintf(err, errlen, "out of memory"), -1;
    int rc = -1;
    GenUtf8 u = {{0}, 0};
    if (!n) { /* the logits of the cache's last position are not kept: it must be fed again */
        snprintf(err, errlen, "gen_reply needs at least one prompt token after the cached ones");
        goto done;
    }
    gen_sampler_seen(sp, prompt, n);
    if (gen_model_feed(m, prompt, (int64_t)n, NULL, logits, err, errlen)) goto done;
    for (;;) {
        if (max_new > 0 && (int64_t)r->n >= max_new) {
            r->stop = GEN_STOP_MAX_NEW;
            break;
        }
        int32_t id = gen_sample(sp, logits, NULL);
        int end = is_end(id, end_ids, nend);
        if (m->n >= m->M) {
            r->stop = end ? GEN_STOP_END : GEN_STOP_CONTEXT;
            break;
        }
        if (!end) {
            if (reply_push(r, id)) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            gen_sampler_seen(sp, &id, 1);
            if (tok && out) {
                char *bytes;
                size_t len;
                if (tok_decode(tok, &id, 1, &bytes, &len, err, errlen)) goto done;
                gen_utf8_put(&u, bytes, len, out);
                free(bytes);
            }
        }
        if (gen_model_feed(m, &id, 1, NULL, logits, err, errlen)) goto done;
        if (end) break;
    }
    rc = 0;
done:
    if (tok && out) gen_utf8_finish(&u, out);
    free(logits);
    return rc;
}
