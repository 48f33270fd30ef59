/* generate.h — text generation with a compiled step's prefill/decode entries.
 *
 * Three layers, each usable alone (docs/dporun.md "Prediction"):
 *
 *  GenModel (gen_model.c): the step.so opened for generation. It owns the
 *    KV cache (the step's kv_cache.<layer> inputs) and the number of cached
 *    positions; gen_model_feed runs tokens through it — whole chunks with
 *    `prefill`, a last single token with `decode` — copies each call's new
 *    keys/values into the cache and returns the logits. Rewinding is setting
 *    the cached count lower: slots past it are masked in the graph.
 *  GenSampler (gen_sample.c): picks the next token from logits with Hugging
 *    Face's semantics and order — repetition penalty over every token seen
 *    (prompt included), then temperature, top-k, top-p — greedy when no
 *    sampling option is set; draws come from a seeded splitmix64 stream, so
 *    the same seed gives the same tokens.
 *  GenUtf8 (gen_stream.c): streams decoded bytes as valid UTF-8 only: a
 *    sequence cut between two tokens is held back until it completes; bytes
 *    that can never form a character become U+FFFD.
 *
 * gen_prompt_ids (generate.c) renders a conversation with a chat template
 * and its generation prompt; gen_reply generates one reply.
 */
#ifndef DPOC_GENERATE_H
#define DPOC_GENERATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chat_template.h"
#include "step_load.h"
#include "threadpool.h"
#include "tokenizer.h"

/* Sampling settings; all-zero means greedy decoding. */
typedef struct GenSampling {
    double temperature;        /* > 0: sample from softmax(logits / T); 0: off (T = 1 when sampling) */
    int top_k;                 /* > 0: keep the logits >= the k-th largest (ties kept) */
    double top_p;              /* in (0, 1): keep the smallest top set with probability >= p; 0 or 1: off */
    double repetition_penalty; /* > 0 and != 1: seen tokens' logits / p when positive, * p when negative */
    uint64_t seed;
} GenSampling;

/* What `dporun --predict` / `--interactive` does (dporun_opts.c fills it). */
typedef struct GenOptions {
    int on;                   /* --predict or --interactive given */
    const char *prompt;       /* --predict TEXT */
    int interactive;
    const char *prompt_ids;   /* --prompt-ids "1,2,3": raw ids, no template; prints ids */
    const char *ckpt_path;    /* --ckpt FILE|DIR */
    const char *tokenizer_dir;
    const char *system;       /* --system TEXT */
    const char *template_name;/* --template NAME (default: from the tokenizer's control tokens) */
    int64_t max_new_tokens;   /* 0: until an end token or the context is full */
    GenSampling s;
    int sample;               /* a sampling option was given */
} GenOptions;

/* ---- the model ------------------------------------------------------------- */

typedef struct GenLayer {
    float *cache;             /* [2, kv, M, d] */
    const float *new_prefill; /* [2, kv, C, d] */
    const float *new_decode;  /* [2, kv, 1, d] */
    int64_t kv, d;
} GenLayer;

typedef struct GenModel {
    DpocStep step;
    int open;
    ThreadPool *pool;
    DpocServices svc;
    int64_t V, M, C;          /* vocabulary, cache positions, prefill chunk */
    int nlayers;
    GenLayer *layers;
    int32_t *prefill_tokens, *decode_tokens, *pos;
    const float *prefill_logits, *decode_logits;
    int64_t n;                /* positions in the cache */
} GenModel;

/* Opens step_path for generation: refuses a step.so without prefill/decode
 * ("recompile it with this dpoc"). threads <= 0: every CPU. 0 or -1 + err. */
int gen_model_open(GenModel *m, const char *step_path, int threads, char *err, size_t errlen);
void gen_model_close(GenModel *m);
/* Runs ids[0..n) at positions m->n.. . logits_all (NULL or [n, V]) gets
 * every position's logits, last (NULL or [V]) the last one's. Refuses, with
 * nothing changed, when m->n + n exceeds the context. 0 or -1 + err. */
int gen_model_feed(GenModel *m, const int32_t *ids, int64_t n, float *logits_all, float *last, char *err,
                   size_t errlen);

/* ---- sampling ---------------------------------------------------------------- */

typedef struct GenSampler {
    GenSampling s;
    int sample;               /* 0: greedy */
    uint64_t rng;             /* splitmix64 state */
    int64_t V;
    double *work;             /* [V] adjusted logits, then probabilities */
    struct GenRank *rank;     /* [V] (value, id), sorted */
    uint8_t *seen;            /* [V] */
} GenSampler;

/* 0, or -1 (out of memory). sample == 0: greedy (after the penalty). */
int gen_sampler_init(GenSampler *sp, const GenSampling *s, int sample, int64_t V);
void gen_sampler_free(GenSampler *sp);
/* Marks ids as seen (for the repetition penalty); ids outside [0, V) are ignored. */
void gen_sampler_seen(GenSampler *sp, const int32_t *ids, size_t n);
void gen_sampler_forget(GenSampler *sp); /* no token seen */
/* The next token. probs (NULL or [V]) receives the distribution it was
 * drawn from (greedy: 1 at the pick). */
int32_t gen_sample(GenSampler *sp, const float *logits, double *probs);
/* A uniform double in [0, 1) from the sampler's stream (53 bits). */
double gen_uniform(uint64_t *state);

/* ---- streaming UTF-8 ------------------------------------------------------------ */

typedef struct GenUtf8 {
    unsigned char pend[4];
    int npend;
} GenUtf8;

/* Writes the valid UTF-8 of bytes (with what was pending) to out, keeping
 * an incomplete trailing sequence; invalid bytes become U+FFFD. */
void gen_utf8_put(GenUtf8 *u, const char *bytes, size_t n, FILE *out);
/* Writes a pending incomplete sequence as U+FFFD. */
void gen_utf8_finish(GenUtf8 *u, FILE *out);

/* ---- prompts and replies ------------------------------------------------------------ */

/* The template to use for a tokenizer: chatml when it has <|im_start|>,
 * llama3 when it has <|start_header_id|>, else none. */
ChatTemplate gen_template_for(const Tokenizer *tok);
/* End-of-reply token ids of template t that the tokenizer has (at most cap). */
int gen_end_tokens(const Tokenizer *tok, ChatTemplate t, int32_t *ids, int cap);
/* Renders msgs[0..n) followed by the assistant's generation prompt and
 * encodes it (control tokens as their ids). *ids malloc'd. 0 or -1 + err. */
int gen_prompt_ids(const Tokenizer *tok, ChatTemplate t, const ChatMsg *msgs, size_t n, int32_t **ids, size_t *nids,
                   char *err, size_t errlen);

typedef struct GenReply {
    int32_t *ids;             /* generated tokens, the end token excluded */
    size_t n, cap;
    int stop;                 /* GEN_STOP_* */
} GenReply;

enum { GEN_STOP_END = 0, GEN_STOP_MAX_NEW = 1, GEN_STOP_CONTEXT = 2 };

/* Feeds prompt[0..n) after the m->n positions already cached (the caller
 * rewinds m->n first when the prompt does not continue them), then samples
 * until an end token, max_new tokens (0: no limit) or a full context. With
 * tok and out set, streams the text of every token to out. The cache then
 * holds prompt + reply (+ the end token). 0 or -1 + err. */
int gen_reply(GenModel *m, GenSampler *sp, const int32_t *prompt, size_t n, const int32_t *end_ids, int nend,
              int64_t max_new, const Tokenizer *tok, FILE *out, GenReply *r, char *err, size_t errlen);
void gen_reply_free(GenReply *r);

#endif
