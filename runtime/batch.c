/* batch.c — packing pairs into the step's inputs; the shuffled epoch order.
 *
 * batch_put writes one pair's two rows: it walks each sequence once,
 * marking label positions from the sorted spans, and copies tokens and
 * next-token targets up to T. The order keeps the ascending list of usable
 * record indices; each epoch's permutation is that list shuffled afresh by
 * batch_shuffle(seed, epoch), so a position (epoch, pos) is all it takes to
 * resume the stream exactly.
 *
 * The generator is splitmix64: state_0 = mix64(seed + G * (epoch + 1)),
 * state_{k+1} = state_k + G, output mix64(state_{k+1}), with G =
 * 0x9e3779b97f4a7c15 and mix64 the splitmix64 finaliser. A bounded draw in
 * [0, m) rejects outputs below 2^64 mod m and returns x mod m (no bias).
 * Fisher-Yates runs i = n-1 down to 1, swapping v[i] with v[draw(i+1)].
 */
#include "batch.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9e3779b97f4a7c15ull

uint64_t batch_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int find_input(DpocStep *s, const char *name, DpocDType dt, int ndim, DpocTensorInfo *t, void **p, char *err,
                      size_t errlen) {
    *p = dpoc_step_find(s, name, DPOC_ROLE_INPUT, t);
    if (!*p) return snprintf(err, errlen, "the step has no input '%s'", name), -1;
    if (t->dtype != dt || t->ndim != ndim)
        return snprintf(err, errlen, "the step's input '%s' is %s with %d dimensions; expected %s with %d", name,
                        dpoc_dtype_name(t->dtype), t->ndim, dpoc_dtype_name(dt), ndim),
               -1;
    return 0;
}

int batch_layout_init(BatchLayout *L, DpocStep *s, char *err, size_t errlen) {
    memset(L, 0, sizeof *L);
    DpocTensorInfo ti, tt, tm, tr, tp, tsg;
    void *pt, *pg, *pm, *pr, *pp, *ps;
    if (find_input(s, "tokens", DPOC_DT_I32, 2, &ti, &pt, err, errlen) ||
        find_input(s, "targets", DPOC_DT_I32, 2, &tt, &pg, err, errlen) ||
        find_input(s, "loss_mask", DPOC_DT_F32, 2, &tm, &pm, err, errlen))
        return -1;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s->json, "config");
    int packed = dpoc_step_lookup(s, "segments", DPOC_ROLE_INPUT, &tsg) == 0;
    if (packed) {
        const cJSON *sl = c ? cJSON_GetObjectItemCaseSensitive(c, "seq_len") : NULL;
        if (find_input(s, "positions", DPOC_DT_I32, 2, &tp, &pp, err, errlen) ||
            find_input(s, "segments", DPOC_DT_I32, 2, &tsg, &ps, err, errlen))
            return -1;
        if (tt.shape[0] != ti.shape[0] || tp.shape[0] != ti.shape[0] || tsg.shape[0] != ti.shape[0] ||
            tm.shape[0] != 2 * ti.shape[0] || tt.shape[1] != ti.shape[1] || tm.shape[1] != ti.shape[1] ||
            tp.shape[1] != ti.shape[1] || tsg.shape[1] != ti.shape[1])
            return snprintf(err, errlen,
                            "the packed step's inputs tokens [%lld,%lld], targets, positions, segments and loss_mask "
                            "[%lld,%lld] are not [B,R], [B,R], [B,R], [B,R] and [2B,R]",
                            (long long)ti.shape[0], (long long)ti.shape[1], (long long)tm.shape[0],
                            (long long)tm.shape[1]),
                   -1;
        if (!cJSON_IsNumber(sl) || sl->valuedouble < 1)
            return snprintf(err, errlen, "the packed step's config has no seq_len"), -1;
        L->B = ti.shape[0];
        L->T = (int64_t)sl->valuedouble;
        L->positions = pp;
        L->segments = ps;
    } else {
        if (ti.shape[0] % 2 || tt.shape[0] != ti.shape[0] || tt.shape[1] != ti.shape[1] ||
            tm.shape[0] != ti.shape[0] || tm.shape[1] != ti.shape[1])
            return snprintf(err, errlen,
                            "the step's inputs tokens [%lld,%lld], targets [%lld,%lld], loss_mask [%lld,%lld] do not "
                            "share one shape [2B,T]",
                            (long long)ti.shape[0], (long long)ti.shape[1], (long long)tt.shape[0],
                            (long long)tt.shape[1], (long long)tm.shape[0], (long long)tm.shape[1]),
                   -1;
        L->B = ti.shape[0] / 2;
        L->T = ti.shape[1];
    }
    L->row = ti.shape[1];
    L->tokens = pt;
    L->targets = pg;
    L->mask = pm;
    if (dpoc_step_lookup(s, "ref_logps", DPOC_ROLE_INPUT, &tr) == 0) {
        if (find_input(s, "ref_logps", DPOC_DT_F32, 1, &tr, &pr, err, errlen)) return -1;
        if (tr.shape[0] != 2 * L->B)
            return snprintf(err, errlen, "the step's input ref_logps has %lld entries; expected 2B = %lld",
                            (long long)tr.shape[0], (long long)(2 * L->B)),
                   -1;
        L->ref_logps = pr;
    }
    /* the config's vocab_size first: on a tp mesh the embedding holds a
     * vocabulary-parallel block of the rows only */
    DpocTensorInfo emb;
    const cJSON *v = c ? cJSON_GetObjectItemCaseSensitive(c, "vocab_size") : NULL;
    if (cJSON_IsNumber(v) && v->valuedouble >= 1) {
        L->vocab = (int64_t)v->valuedouble;
    } else if (dpoc_step_lookup(s, "model.embed_tokens.weight", DPOC_ROLE_PARAM, &emb) == 0 && emb.ndim == 2) {
        L->vocab = emb.shape[0];
    } else {
        if (!cJSON_IsNumber(v) || v->valuedouble < 1)
            return snprintf(err, errlen, "cannot tell the step's vocabulary size (no model.embed_tokens.weight "
                                         "and no config vocab_size)"),
                   -1;
        L->vocab = (int64_t)v->valuedouble;
    }
    return 0;
}

void batch_clear(const BatchLayout *L) {
    size_t n = (size_t)(2 * L->B * L->row), nrow = L->positions ? n / 2 : n;
    memset(L->tokens, 0, nrow * sizeof *L->tokens);
    memset(L->targets, 0, nrow * sizeof *L->targets);
    memset(L->mask, 0, n * sizeof *L->mask);
    if (L->positions) {
        memset(L->positions, 0, nrow * sizeof *L->positions);
        for (size_t i = 0; i < nrow; i++) L->segments[i] = 3; /* padding */
    }
    if (L->ref_logps) memset(L->ref_logps, 0, (size_t)(2 * L->B) * sizeof *L->ref_logps);
}

/* Label tokens of one sequence at positions 1..min(len-1, T) and whether one
 * lies beyond T. */
static uint32_t count_labels(const RecSpan *sp, uint32_t nsp, uint32_t len, int64_t T, int *cut) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < nsp; k++) {
        uint32_t a = sp[k].start < 1 ? 1 : sp[k].start, b = sp[k].end < len ? sp[k].end : len;
        for (uint32_t q = a; q < b; q++) {
            if ((int64_t)q <= T)
                n++;
            else
                *cut = 1;
        }
    }
    return n;
}

/* Positions the packed row holds once: one short of the common prefix of
 * the fed tokens (batch.h). */
static uint32_t shared_positions(const RecPair *p, const uint32_t fed[2]) {
    uint32_t n = fed[0] < fed[1] ? fed[0] : fed[1], k = 0;
    while (k < n && p->ids[0][k] == p->ids[1][k]) k++;
    return k ? k - 1 : 0;
}

void batch_pair_info(const RecPair *p, int64_t T, BatchPairInfo *info) {
    memset(info, 0, sizeof *info);
    for (int h = 0; h < 2; h++) {
        info->labels[h] = count_labels(p->spans[h], p->nspans[h], p->len[h], T, &info->truncated);
        info->tokens[h] = (uint32_t)((int64_t)p->len[h] < T ? (int64_t)p->len[h] : T);
    }
    info->packed = info->tokens[0] + info->tokens[1] - shared_positions(p, info->tokens);
}

/* Whether position q of a sequence is a label (inside a span; q >= 1). */
static int is_label(const RecSpan *sp, uint32_t nsp, int64_t q) {
    if (q < 1) return 0;
    for (uint32_t k = 0; k < nsp; k++)
        if (q >= sp[k].start && q < sp[k].end) return 1;
    return 0;
}

static int check_ids(const BatchLayout *L, const RecPair *p, uint64_t rec_index, char *err, size_t errlen) {
    for (int h = 0; h < 2; h++)
        for (int64_t t = 0; t < p->len[h] && t <= L->T; t++)
            if (p->ids[h][t] < 0 || p->ids[h][t] >= L->vocab)
                return snprintf(err, errlen, "record %llu: %s token %lld is id %d, outside the model's vocabulary [0, %lld)",
                                (unsigned long long)rec_index, h ? "rejected" : "chosen", (long long)t, p->ids[h][t],
                                (long long)L->vocab),
                       -1;
    return 0;
}

/* A packed step's row for pair p (batch.h); info already filled. */
static int put_packed(const BatchLayout *L, int64_t slot, const RecPair *p, uint64_t rec_index,
                      const BatchPairInfo *info, char *err, size_t errlen) {
    int64_t R = L->row;
    if ((int64_t)info->packed > R)
        return snprintf(err, errlen,
                        "record %llu: the pair needs %u tokens in one packed row; the step's packed_len is %lld",
                        (unsigned long long)rec_index, info->packed, (long long)R),
               -1;
    int32_t *tok = L->tokens + slot * R, *tgt = L->targets + slot * R;
    int32_t *pos = L->positions + slot * R, *seg = L->segments + slot * R;
    float *m[2] = {L->mask + slot * R, L->mask + (slot + L->B) * R};
    memset(tok, 0, (size_t)R * sizeof *tok);
    memset(tgt, 0, (size_t)R * sizeof *tgt);
    memset(pos, 0, (size_t)R * sizeof *pos);
    for (int64_t i = 0; i < R; i++) seg[i] = 3;
    memset(m[0], 0, (size_t)R * sizeof *m[0]);
    memset(m[1], 0, (size_t)R * sizeof *m[1]);
    uint32_t P = shared_positions(p, info->tokens), at = 0;
    for (int h = 0; h < 2; h++) {
        const int32_t *ids = p->ids[h];
        int64_t len = p->len[h];
        /* the shared positions once (from the chosen), then each response */
        for (uint32_t t = h == 0 ? 0 : P; t < info->tokens[h]; t++, at++) {
            int shared = t < P;
            tok[at] = ids[t];
            pos[at] = (int32_t)t;
            seg[at] = shared ? 0 : 1 + h;
            if (t + 1 < len) tgt[at] = ids[t + 1];
            if (t + 1 < len && is_label(p->spans[h], p->nspans[h], t + 1)) m[h][at] = 1.0f;
            if (shared && is_label(p->spans[1], p->nspans[1], t + 1)) m[1][at] = 1.0f;
        }
    }
    if (L->ref_logps)
        for (int h = 0; h < 2; h++) L->ref_logps[slot + h * L->B] = p->has_ref ? p->ref_logps[h] : 0.0f;
    return 0;
}

int batch_put(const BatchLayout *L, int64_t slot, const RecPair *p, uint64_t rec_index, BatchPairInfo *info,
              char *err, size_t errlen) {
    int64_t T = L->T;
    batch_pair_info(p, T, info);
    if (check_ids(L, p, rec_index, err, errlen)) return -1;
    if (L->positions) return put_packed(L, slot, p, rec_index, info, err, errlen);
    for (int h = 0; h < 2; h++) {
        int64_t row = slot + h * L->B, len = p->len[h];
        int32_t *tok = L->tokens + row * T, *tgt = L->targets + row * T;
        float *m = L->mask + row * T;
        memset(tok, 0, (size_t)T * sizeof *tok);
        memset(tgt, 0, (size_t)T * sizeof *tgt);
        memset(m, 0, (size_t)T * sizeof *m);
        const int32_t *ids = p->ids[h];
        for (int64_t t = 0; t < len && t <= T; t++) {
            if (t < T) tok[t] = ids[t];
            if (t >= 1) tgt[t - 1] = ids[t];
        }
        for (uint32_t k = 0; k < p->nspans[h]; k++) {
            const RecSpan *sp = &p->spans[h][k];
            for (int64_t q = sp->start < 1 ? 1 : sp->start; q < sp->end && q < len && q <= T; q++) m[q - 1] = 1.0f;
        }
        if (L->ref_logps) L->ref_logps[row] = p->has_ref ? p->ref_logps[h] : 0.0f;
    }
    return 0;
}

/* ---- the order ------------------------------------------------------------ */

typedef struct SplitMix {
    uint64_t s;
} SplitMix;

static uint64_t sm_next(SplitMix *r) { return batch_mix64(r->s += GOLDEN); }

static uint64_t sm_below(SplitMix *r, uint64_t m) {
    uint64_t reject = (0 - m) % m, x;
    do x = sm_next(r);
    while (x < reject);
    return x % m;
}

void batch_shuffle(uint64_t *v, uint64_t n, uint64_t seed, uint64_t epoch) {
    SplitMix r = {batch_mix64(seed + GOLDEN * (epoch + 1))};
    for (uint64_t i = n; i-- > 1;) {
        uint64_t j = sm_below(&r, i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static void make_perm(BatchOrder *o) {
    memcpy(o->perm, o->usable, o->n * sizeof *o->perm);
    if (o->shuffle) batch_shuffle(o->perm, o->n, o->seed, o->epoch);
}

int batch_order_init(BatchOrder *o, uint64_t *usable, uint64_t n, uint64_t seed, int shuffle, char *err,
                     size_t errlen) {
    memset(o, 0, sizeof *o);
    o->usable = usable;
    if (n == 0) return snprintf(err, errlen, "no usable pairs"), -1;
    o->n = n;
    o->seed = seed;
    o->shuffle = shuffle;
    o->perm = malloc(n * sizeof *o->perm);
    if (!o->perm) return snprintf(err, errlen, "out of memory"), -1;
    make_perm(o);
    return 0;
}

void batch_order_seek(BatchOrder *o, uint64_t epoch, uint64_t pos) {
    if (pos >= o->n) epoch++, pos = 0;
    if (epoch != o->epoch) {
        o->epoch = epoch;
        make_perm(o);
    }
    o->pos = pos;
}

uint64_t batch_order_next(BatchOrder *o) {
    if (o->pos >= o->n) batch_order_seek(o, o->epoch + 1, 0);
    return o->perm[o->pos++];
}

void batch_order_free(BatchOrder *o) {
    free(o->usable);
    free(o->perm);
    memset(o, 0, sizeof *o);
}
