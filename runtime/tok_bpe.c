/* tok_bpe.c — byte-pair merging of one pre-token.
 *
 * The pre-token's bytes start as their byte tokens in a doubly linked list
 * (arrays id/next/prev in the scratch, no allocation per word once they are
 * big enough). Every adjacent pair that has a merge goes into a binary
 * min-heap keyed by (rank, position of the left symbol). The top is popped;
 * if both symbols are still there with the ids it was made from, they merge
 * (the left symbol takes the merged id, the right one leaves the list) and
 * the two pairs the new symbol forms with its neighbours are pushed. Stale
 * entries are skipped. Lowest rank first, leftmost first among equal ranks:
 * this is Hugging Face's merge order, and for any vocabulary whose merges
 * only build on tokens made by earlier merges it gives the same result as
 * the slow tokenizer's "merge every occurrence of the best pair" loop (the
 * Python reference in tests/tok/bpe_ref.py uses that loop). O(n log n) in
 * the pre-token's length, so one long word (a Chinese sentence is a single
 * \p{L}+ pre-token for Qwen2) costs no more than it should.
 *
 * The first pairs are all byte pairs and come from a dense 256 x 256 table;
 * later ones from the merge hash table. Short pre-tokens are looked up in
 * the word memo (tok_cache.c) first and stored there after merging.
 *
 * With ignore_merges (tokenizer.json's flag, Llama-3) a pre-token that is a
 * token as a whole is emitted as is.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct TokHeapItem {
    uint64_t key; /* rank << 32 | position of the left symbol */
    int32_t left, right, merged;
} TokHeapItem;

int tok_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) return -1;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

void tok_scratch_free(TokScratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->norm);
    free(s->pre);
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    memset(s, 0, sizeof *s);
}

static void heap_push(TokHeapItem *h, size_t *nh, TokHeapItem it) {
    size_t i = (*nh)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (h[up].key <= it.key) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = it;
}

static TokHeapItem heap_pop(TokHeapItem *h, size_t *nh) {
    TokHeapItem top = h[0], last = h[--(*nh)];
    size_t i = 0, n = *nh;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1].key < h[c].key) c++;
        if (last.key <= h[c].key) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static inline void try_pair(const Tokenizer *t, TokHeapItem *h, size_t *nh, int32_t pos, int32_t left, int32_t right) {
    const TokPairSlot *m = tok_pairmap_get(&t->merges, left, right);
    if (m) heap_push(h, nh, (TokHeapItem){(uint64_t)(uint32_t)m->rank << 32 | (uint32_t)pos, left, right, m->id});
}

int tok_bpe_word(const Tokenizer *t, TokScratch *s, const uint8_t *p, size_t len, int32_t **ids, size_t *n,
                 size_t *cap) {
    if (len == 0) return 0;
    if (len == 1) return tok_ids_push(ids, n, cap, t->byte_id[p[0]]);
    if (t->ignore_merges) {
        int32_t whole = tok_strmap_get(&t->raws, t->arena, (const char *)p, len);
        if (whole >= 0) return tok_ids_push(ids, n, cap, whole);
    }
    uint32_t hash = 0;
    int cacheable = t->memo && len <= TOK_CACHE_MAX_BYTES;
    if (cacheable) {
        int32_t hit[TOK_CACHE_MAX_IDS];
        hash = tok_str_hash((const char *)p, len);
        int k = tok_cache_get(t->cache, hash, p, len, hit);
        for (int i = 0; i < k; i++)
            if (tok_ids_push(ids, n, cap, hit[i]) != 0) return -1;
        if (k >= 0) return 0;
    }
    if (len > INT32_MAX / 4) return -1;
    if (3 * len > s->sym_cap) {
        size_t c = 3 * len < 1024 ? 1024 : 3 * len;
        int32_t *sym = realloc(s->sym, c * sizeof *sym);
        TokHeapItem *heap = sym ? realloc(s->heap, c * sizeof *heap) : NULL;
        if (sym) s->sym = sym;
        if (heap) s->heap = heap;
        if (!sym || !heap) return -1;
        s->sym_cap = s->heap_cap = c;
    }
    int32_t *id = s->sym, *next = s->sym + len, *prev = s->sym + 2 * len;
    TokHeapItem *h = s->heap;
    size_t nh = 0;
    int32_t nsym = (int32_t)len;
    for (int32_t i = 0; i < nsym; i++) {
        id[i] = t->byte_id[p[i]];
        next[i] = i + 1 < nsym ? i + 1 : -1;
        prev[i] = i - 1;
    }
    for (int32_t i = 0; i + 1 < nsym; i++) { /* byte pairs: the dense table */
        TokBytePair bp = t->byte_pairs[p[i] * 256 + p[i + 1]];
        if (bp.rank >= 0)
            heap_push(h, &nh, (TokHeapItem){(uint64_t)(uint32_t)bp.rank << 32 | (uint32_t)i, id[i], id[i + 1], bp.id});
    }
    while (nh) {
        TokHeapItem top = heap_pop(h, &nh);
        int32_t pos = (int32_t)(top.key & 0xFFFFFFFFu), r = next[pos];
        if (id[pos] != top.left || r < 0 || id[r] != top.right) continue; /* stale */
        id[pos] = top.merged;
        id[r] = -1;
        next[pos] = next[r];
        if (next[r] >= 0) prev[next[r]] = pos;
        if (prev[pos] >= 0) try_pair(t, h, &nh, prev[pos], id[prev[pos]], top.merged);
        if (next[pos] >= 0) try_pair(t, h, &nh, pos, top.merged, id[next[pos]]);
    }
    size_t first = *n;
    for (int32_t i = 0; i >= 0; i = next[i])
        if (tok_ids_push(ids, n, cap, id[i]) != 0) return -1;
    if (cacheable && *n - first <= TOK_CACHE_MAX_IDS) tok_cache_put(t->cache, hash, p, len, *ids + first, *n - first);
    return 0;
}
