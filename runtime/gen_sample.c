/* gen_sample.c — choosing the next token from logits.
 *
 * In the order Hugging Face's generate() applies its logits processors:
 *  1. repetition penalty p (when set and != 1): every token id seen so far
 *     (prompt and reply, each id once) has its logit divided by p when
 *     positive, multiplied by p when negative;
 *  2. greedy: the largest adjusted logit (the lowest id among equal ones);
 *  otherwise, in double precision:
 *  3. temperature T: logits / T;
 *  4. top-k: logits below the k-th largest are removed (ties with it kept);
 *  5. probabilities softmax over what is left; top-p: tokens taken in
 *     decreasing probability (lower id first among equal ones) while the
 *     probability before them is < p, so the kept set is the smallest top
 *     set reaching p (at least one token); renormalised;
 *  6. a draw u in [0, 1) from splitmix64 (53 bits), the first token in
 *     decreasing-probability order whose cumulative probability exceeds u.
 * Everything depends only on the logits, the seen set and the seed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"

struct GenRank {
    double v;
    int32_t id;
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double gen_uniform(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

int gen_sampler_init(GenSampler *sp, const GenSampling *s, int sample, int64_t V) {
    memset(sp, 0, sizeof *sp);
    sp->s = *s;
    sp->sample = sample;
    sp->rng = s->seed;
    sp->V = V;
    sp->work = malloc((size_t)V * sizeof *sp->work);
    sp->rank = malloc((size_t)V * sizeof *sp->rank);
    sp->seen = calloc((size_t)V, 1);
    if (!sp->work || !sp->rank || !sp->seen) {
        gen_sampler_free(sp);
        return -1;
    }
    return 0;
}

void gen_sampler_free(GenSampler *sp) {
    free(sp->work);
    free(sp->rank);
    free(sp->seen);
    memset(sp, 0, sizeof *sp);
}

void gen_sampler_seen(GenSampler *sp, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < sp->V) sp->seen[ids[i]] = 1;
}

void gen_sampler_forget(GenSampler *sp) { memset(sp->seen, 0, (size_t)sp->V); }

/* decreasing value, then increasing id */
static int by_value(const void *a, const void *b) {
    const struct GenRank *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t gen_sample(GenSampler *sp, const float *logits, double *probs) {
    int64_t V = sp->V;
    double *w = sp->work;
    double pen = sp->s.repetition_penalty;
    for (int64_t i = 0; i < V; i++) {
        double l = logits[i];
        if (pen > 0 && pen != 1.0 && sp->seen[i]) l = l > 0 ? l / pen : l * pen;
        w[i] = l;
    }
    if (!sp->sample) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (w[i] > w[best] || (isnan(w[best]) && !isnan(w[i]))) best = i;
        if (probs) {
            memset(probs, 0, (size_t)V * sizeof *probs);
            probs[best] = 1.0;
        }
        return (int32_t)best;
    }
    double T = sp->s.temperature > 0 ? sp->s.temperature : 1.0;
    for (int64_t i = 0; i < V; i++) w[i] = isnan(w[i]) ? -INFINITY : w[i] / T;
    struct GenRank *rk = sp->rank;
    for (int64_t i = 0; i < V; i++) rk[i] = (struct GenRank){w[i], (int32_t)i};
    qsort(rk, (size_t)V, sizeof *rk, by_value);
    int64_t keep = V;
    if (sp->s.top_k > 0 && sp->s.top_k < V) {
        double kth = rk[sp->s.top_k - 1].v;
        keep = sp->s.top_k;
        while (keep < V && rk[keep].v >= kth) keep++;
    }
    /* softmax over the kept tokens (the first is the largest) */
    double mx = rk[0].v, z = 0;
    for (int64_t r = 0; r < keep; r++) z += exp(rk[r].v - mx);
    double p = sp->s.top_p;
    if (p > 0 && p < 1) {
        double cum = 0;
        int64_t r = 0;
        while (r < keep && cum < p) cum += exp(rk[r++].v - mx) / z;
        keep = r > 0 ? r : 1;
        z = 0;
        for (int64_t q = 0; q < keep; q++) z += exp(rk[q].v - mx);
    }
    /* w becomes the probabilities of the kept tokens, 0 elsewhere */
    for (int64_t r = 0; r < keep; r++) w[rk[r].id] = exp(rk[r].v - mx) / z;
    for (int64_t r = keep; r < V; r++) w[rk[r].id] = 0;
    double u = gen_uniform(&sp->rng), cum = 0;
    int32_t pick = rk[keep - 1].id;
    for (int64_t r = 0; r < keep; r++) {
        cum += w[rk[r].id];
        if (u < cum) {
            pick = rk[r].id;
            break;
        }
    }
    if (probs) memcpy(probs, w, (size_t)V * sizeof *probs);
    return pick;
}
