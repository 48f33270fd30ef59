/* dporun_predict.c — `dporun STEP.so --predict TEXT | --interactive | --prompt-ids I,J,..`.
 *
 * Opens the step for generation (runtime/gen_model.c), loads the weights
 * (--ckpt or --init: a dpoc checkpoint; --init-hf: a Hugging Face directory;
 * none: the seeded initialisation of training, with a warning), the
 * tokenizer and the chat template (--template, or the one the tokenizer's
 * control tokens imply), then:
 *  --predict TEXT   renders [system], user TEXT and the generation prompt,
 *                   streams the reply to `out` and ends it with a newline;
 *  --interactive    the same per line read from `in`, keeping the whole
 *                   conversation in the prompt (the cache is reused for the
 *                   part of the new prompt that matches it); stops at EOF,
 *                   an empty line or "exit"; a turn that would not fit the
 *                   context is refused with a note and dropped;
 *  --prompt-ids     feeds the ids as they are and prints the generated ids
 *                   (space separated) — what the tests compare with PyTorch.
 * Why generation stopped (max-new-tokens, a full context) goes to `log`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dporun_cli.h"
#include "runtime/train_params.h"

typedef struct Pred {
    const TrainOptions *o;
    GenModel m;
    GenSampler sp;
    Tokenizer *tok;
    ChatTemplate tpl;
    int32_t end_ids[8];
    int nend;
    FILE *log;
} Pred;

static int parse_ids(const char *s, int32_t **ids, size_t *n, char *err, size_t errlen) {
    size_t cap = 16;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids) return snprintf(err, errlen, "out of memory"), -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ' '))
            return snprintf(err, errlen, "--prompt-ids: expected token ids separated by commas, got '%s'", s), -1;
        if (*n == cap) {
            int32_t *q = realloc(*ids, 2 * cap * sizeof *q);
            if (!q) return snprintf(err, errlen, "out of memory"), -1;
            *ids = q;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!*n) return snprintf(err, errlen, "--prompt-ids: no token ids given"), -1;
    return 0;
}

static int load_weights(Pred *p, char *err, size_t errlen) {
    const TrainOptions *o = p->o;
    const char *ckpt = o->gen.ckpt_path ? o->gen.ckpt_path : o->init_path;
    if (ckpt || o->init_hf_path) return train_load_init(&p->m.step, ckpt, o->init_hf_path, err, errlen);
    fprintf(p->log, "dporun: warning: no --ckpt or --init-hf: generating with random weights from seed %llu\n",
            (unsigned long long)o->seed);
    train_init_params(&p->m.step, o->seed, p->m.pool);
    return 0;
}

static void note_stop(Pred *p, const GenReply *r) {
    if (r->stop == GEN_STOP_CONTEXT)
        fprintf(p->log, "dporun: stopped: the context of %lld tokens is full\n", (long long)p->m.M);
    else if (r->stop == GEN_STOP_MAX_NEW)
        fprintf(p->log, "dporun: stopped after --max-new-tokens %lld tokens\n", (long long)r->n);
}

static int run_ids(Pred *p, FILE *out, char *err, size_t errlen) {
    int32_t *ids;
    size_t n;
    if (parse_ids(p->o->gen.prompt_ids, &ids, &n, err, errlen)) {
        free(ids);
        return -1;
    }
    GenReply r = {0};
    int rc = gen_reply(&p->m, &p->sp, ids, n, p->end_ids, p->nend, p->o->gen.max_new_tokens, NULL, NULL, &r, err,
                       errlen);
    if (!rc) {
        for (size_t i = 0; i < r.n; i++) fprintf(out, "%s%d", i ? " " : "", r.ids[i]);
        fprintf(out, "\n");
        note_stop(p, &r);
    }
    gen_reply_free(&r);
    free(ids);
    return rc;
}

/* the conversation so far (message texts are owned here) */
typedef struct Conv {
    ChatMsg *msgs;
    size_t n, cap;
} Conv;

static int conv_add(Conv *c, ChatRole role, const char *text, size_t len) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 8;
        ChatMsg *q = realloc(c->msgs, nc * sizeof *q);
        if (!q) return -1;
        c->msgs = q;
        c->cap = nc;
    }
    char *t = malloc(len + 1);
    if (!t) return -1;
    if (len) memcpy(t, text, len);
    t[len] = 0;
    c->msgs[c->n++] = (ChatMsg){role, t, len};
    return 0;
}

static void conv_free(Conv *c) {
    for (size_t i = 0; i < c->n; i++) free((char *)c->msgs[i].text);
    free(c->msgs);
}

/* One user turn: the whole conversation as the prompt, generating after
 * what the cache already holds. 1: refused (too long), 0 done, -1 error. */
static int chat_turn(Pred *p, Conv *c, int32_t **cached, size_t *ncached, FILE *out, char *err, size_t errlen) {
    int32_t *ids;
    size_t n;
    if (gen_prompt_ids(p->tok, p->tpl, c->msgs, c->n, &ids, &n, err, errlen)) return -1;
    if ((int64_t)n >= p->m.M) {
        fprintf(p->log, "dporun: the conversation is %zu tokens, more than the step's context of %lld allows; "
                        "that turn is dropped (start a new conversation, or compile with a larger --max-context)\n",
                n, (long long)p->m.M);
        free(ids);
        return 1;
    }
    size_t keep = 0; /* reuse the cached positions the new prompt starts with, at least one token left to feed */
    while (keep < *ncached && keep + 1 < n && (*cached)[keep] == ids[keep]) keep++;
    p->m.n = (int64_t)keep;
    GenReply r = {0};
    int rc = gen_reply(&p->m, &p->sp, ids + keep, n - keep, p->end_ids, p->nend, p->o->gen.max_new_tokens, p->tok,
                       out, &r, err, errlen);
    if (!rc) {
        fprintf(out, "\n");
        fflush(out);
        note_stop(p, &r);
        char *text = NULL;
        size_t len = 0;
        /* the cache now holds prompt + reply (+ end token) */
        int32_t *q = realloc(*cached, ((size_t)p->m.n + 1) * sizeof *q);
        if (!q || tok_decode(p->tok, r.ids, r.n, &text, &len, err, errlen) || conv_add(c, CHAT_ASSISTANT, text, len)) {
            if (q) *cached = q;
            if (!err[0]) snprintf(err, errlen, "out of memory");
            rc = -1;
        } else {
            *cached = q;
            if (n) memcpy(q, ids, n * sizeof *ids);
            if (r.n) memcpy(q + n, r.ids, r.n * sizeof *r.ids); /* an empty reply has no ids array */
            *ncached = n + r.n;
            if ((int64_t)*ncached < p->m.n) q[(*ncached)++] = -1; /* the end token: never matches a prompt id */
        }
        free(text);
    }
    gen_reply_free(&r);
    free(ids);
    return rc;
}

static int run_chat(Pred *p, FILE *in, FILE *out, char *err, size_t errlen) {
    Conv c = {0};
    int32_t *cached = NULL;
    size_t ncached = 0;
    int rc = 0;
    const char *sys = p->o->gen.system;
    if (sys && conv_add(&c, CHAT_SYSTEM, sys, strlen(sys))) rc = -1;
    if (!rc && !p->o->gen.interactive) {
        const char *u = p->o->gen.prompt;
        rc = conv_add(&c, CHAT_USER, u, strlen(u)) ? -1 : chat_turn(p, &c, &cached, &ncached, out, err, errlen);
        if (rc == 1) {
            snprintf(err, errlen, "the prompt does not fit the step's context");
            rc = -1;
        }
    }
    char *line = NULL;
    size_t lcap = 0;
    int tty = isatty(fileno(in));
    while (!rc && p->o->gen.interactive) {
        if (tty) fprintf(p->log, "> "), fflush(p->log);
        ssize_t len = getline(&line, &lcap, in);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0 || !strcmp(line, "exit")) break;
        if (conv_add(&c, CHAT_USER, line, (size_t)len)) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        int t = chat_turn(p, &c, &cached, &ncached, out, err, errlen);
        if (t == 1) free((char *)c.msgs[--c.n].text);
        else rc = t;
    }
    free(line);
    free(cached);
    conv_free(&c);
    return rc;
}

int dporun_predict(const TrainOptions *o, FILE *in, FILE *out, FILE *log, char *err, size_t errlen) {
    Pred p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.log = log;
    int rc = -1;
    if (gen_model_open(&p.m, o->step_path, o->threads, err, errlen)) return -1;
    if (load_weights(&p, err, errlen)) goto done;
    GenSampling s = o->gen.s;
    s.seed = o->seed;
    if (gen_sampler_init(&p.sp, &s, o->gen.sample, p.m.V)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (o->gen.tokenizer_dir) {
        if (!(p.tok = tok_load(o->gen.tokenizer_dir, err, errlen))) goto done;
        if (tok_vocab_size(p.tok) > p.m.V) {
            snprintf(err, errlen, "the tokenizer in %s has %d tokens but the model's vocabulary is %lld",
                     o->gen.tokenizer_dir, tok_vocab_size(p.tok), (long long)p.m.V);
            goto done;
        }
        p.tpl = gen_template_for(p.tok);
        if (o->gen.template_name) chat_template_parse(o->gen.template_name, &p.tpl);
        p.nend = gen_end_tokens(p.tok, p.tpl, p.end_ids, 8);
    }
    rc = o->gen.prompt_ids ? run_ids(&p, out, err, errlen) : run_chat(&p, in, out, err, errlen);
done:
    tok_free(p.tok);
    gen_sampler_free(&p.sp);
    gen_model_close(&p.m);
    return rc;
}
