/* tok_maps.c — the tokenizer's two hash tables.
 *
 * Both are open addressing with linear probing over a power-of-two slot
 * array kept at most half full, so a lookup is a hash, a mask and usually
 * one or two slot reads. TokStrMap stores no strings itself: a slot holds
 * an (offset, length) into the tokenizer's arena, the string's 32-bit hash
 * (compared first) and the id. TokPairMap keys a merge by (left id << 32 |
 * right id) and holds its rank and the id of the merged token; the key is
 * mixed with a 64-bit multiply before masking. Nothing is ever deleted.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

uint32_t tok_str_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, folded to 32 bits */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ (h >> 32));
}

static size_t pow2_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    return cap;
}

int tok_strmap_init(TokStrMap *m, size_t expected) {
    size_t cap = pow2_for(expected);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].id = -1;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

void tok_strmap_free(TokStrMap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

int32_t tok_strmap_get(const TokStrMap *m, const char *arena, const char *s, size_t len) {
    if (!m->slots) return -1;
    uint32_t h = tok_str_hash(s, len);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const TokStrSlot *sl = &m->slots[i];
        if (sl->id < 0) return -1;
        if (sl->hash == h && sl->len == len && memcmp(arena + sl->off, s, len) == 0) return sl->id;
    }
}

static int strmap_grow(TokStrMap *m) {
    size_t cap = (m->mask + 1) * 2;
    TokStrSlot *slots = malloc(cap * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].id = -1;
    for (size_t j = 0; j <= m->mask; j++) {
        if (m->slots[j].id < 0) continue;
        size_t i = m->slots[j].hash & (cap - 1);
        while (slots[i].id >= 0) i = (i + 1) & (cap - 1);
        slots[i] = m->slots[j];
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

int tok_strmap_put(TokStrMap *m, const char *arena, uint32_t off, uint32_t len, int32_t id, int32_t *old) {
    if ((m->count + 1) * 2 > m->mask + 1 && strmap_grow(m) != 0) return -1;
    uint32_t h = tok_str_hash(arena + off, len);
    size_t i = h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        TokStrSlot *sl = &m->slots[i];
        if (sl->id < 0) break;
        if (sl->hash == h && sl->len == len && memcmp(arena + sl->off, arena + off, len) == 0) {
            *old = sl->id;
            return 1;
        }
    }
    m->slots[i] = (TokStrSlot){off, len, h, id};
    m->count++;
    return 0;
}

static inline uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static inline size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

int tok_pairmap_init(TokPairMap *m, size_t expected) {
    size_t cap = pow2_for(expected);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

void tok_pairmap_free(TokPairMap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

const TokPairSlot *tok_pairmap_get(const TokPairMap *m, int32_t left, int32_t right) {
    uint64_t key = pair_key(left, right);
    for (size_t i = pair_slot(key, m->mask);; i = (i + 1) & m->mask) {
        const TokPairSlot *sl = &m->slots[i];
        if (sl->key == key) return sl;
        if (sl->key == UINT64_MAX) return NULL;
    }
}

static int pairmap_grow(TokPairMap *m) {
    size_t cap = (m->mask + 1) * 2;
    TokPairSlot *slots = malloc(cap * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].key = UINT64_MAX;
    for (size_t j = 0; j <= m->mask; j++) {
        if (m->slots[j].key == UINT64_MAX) continue;
        size_t i = pair_slot(m->slots[j].key, cap - 1);
        while (slots[i].key != UINT64_MAX) i = (i + 1) & (cap - 1);
        slots[i] = m->slots[j];
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

int tok_pairmap_put(TokPairMap *m, int32_t left, int32_t right, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->mask + 1 && pairmap_grow(m) != 0) return -1;
    uint64_t key = pair_key(left, right);
    size_t i = pair_slot(key, m->mask);
    for (;; i = (i + 1) & m->mask) {
        TokPairSlot *sl = &m->slots[i];
        if (sl->key == key) {
            sl->rank = rank, sl->id = id;
            return 0;
        }
        if (sl->key == UINT64_MAX) break;
    }
    m->slots[i] = (TokPairSlot){key, rank, id};
    m->count++;
    return 0;
}
