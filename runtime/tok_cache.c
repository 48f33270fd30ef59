/* tok_cache.c — a bounded memo of pre-token -> ids, shared by the threads of a Tokenizer.
 *
 * BPE is a pure function of the pre-token's bytes, and text repeats its
 * words, so tok_bpe_word asks here first. The memo is direct-mapped: 16384
 * slots of one cache line each (the word's hash, up to 26 bytes of word and
 * up to 8 ids), so its size is fixed (1 MiB) and a new word simply replaces
 * whatever shared its slot. Longer words and longer results are not kept.
 * Slots are grouped in 64 shards, each with its own mutex, so threads
 * encoding with the same Tokenizer rarely wait on each other. What is in the
 * memo never changes a result, only how fast it comes: encoding stays
 * deterministic whatever the order or number of threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define SHARDS 64
#define SLOTS_PER_SHARD 256

typedef struct {
    uint32_t hash;
    uint8_t len, nids; /* len 0: empty */
    uint8_t bytes[TOK_CACHE_MAX_BYTES];
    int32_t ids[TOK_CACHE_MAX_IDS];
} Slot;

struct TokCache {
    pthread_mutex_t lock[SHARDS];
    Slot slots[SHARDS * SLOTS_PER_SHARD];
};

_Static_assert(sizeof(Slot) == 64, "a cache slot is one cache line");

TokCache *tok_cache_new(void) {
    TokCache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&c->lock[i], NULL);
    return c;
}

void tok_cache_free(TokCache *c) {
    if (!c) return;
    for (int i = 0; i < SHARDS; i++) pthread_mutex_destroy(&c->lock[i]);
    free(c);
}

static inline size_t slot_of(uint32_t hash) { return hash & (SHARDS * SLOTS_PER_SHARD - 1); }
static inline size_t shard_of(size_t slot) { return slot / SLOTS_PER_SHARD; }

int tok_cache_get(TokCache *c, uint32_t hash, const uint8_t *p, size_t len, int32_t *ids) {
    size_t i = slot_of(hash);
    pthread_mutex_t *m = &c->lock[shard_of(i)];
    pthread_mutex_lock(m);
    const Slot *s = &c->slots[i];
    int n = -1;
    if (s->hash == hash && s->len == len && memcmp(s->bytes, p, len) == 0) {
        n = s->nids;
        memcpy(ids, s->ids, (size_t)n * sizeof *ids);
    }
    pthread_mutex_unlock(m);
    return n;
}

void tok_cache_put(TokCache *c, uint32_t hash, const uint8_t *p, size_t len, const int32_t *ids, size_t n) {
    size_t i = slot_of(hash);
    pthread_mutex_t *m = &c->lock[shard_of(i)];
    pthread_mutex_lock(m);
    Slot *s = &c->slots[i];
    s->hash = hash;
    s->len = (uint8_t)len;
    s->nids = (uint8_t)n;
    memcpy(s->bytes, p, len);
    memcpy(s->ids, ids, n * sizeof *ids);
    pthread_mutex_unlock(m);
}
