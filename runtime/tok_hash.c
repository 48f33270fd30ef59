/* tok_hash.c — a 64-bit fingerprint of everything that decides encoding.
 *
 * FNV-1a (64-bit) over a canonical serialisation, never over file bytes, so
 * the same tokenizer gives the same hash whichever layout it was loaded
 * from (tokenizer.json with merges as strings or pairs, vocab.json +
 * merges.txt with or without `#version`, LF or CRLF). Integers are written
 * as 4 little-endian bytes, strings as length + bytes:
 *   "dpoc-tok-1", nfc, prefix_space, ignore_merges, literal, pattern (or
 *   length 0xFFFFFFFF for none), n, then per id: flags (present, added,
 *   special, lstrip, rstrip) and spelling; then every merge still in force
 *   (a repeated merge counts once, at its later rank) as rank, left, right.
 */
#include <string.h>

#include "tok_internal.h"

typedef struct {
    uint64_t h;
} Fnv;

static void put_bytes(Fnv *f, const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = f->h;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    f->h = h;
}

static void put_u32(Fnv *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put_bytes(f, b, 4);
}

static void put_str(Fnv *f, const char *s, size_t n) {
    put_u32(f, (uint32_t)n);
    put_bytes(f, s, n);
}

uint64_t tok_hash_compute(const Tokenizer *t) {
    Fnv f = {0xcbf29ce484222325ull};
    put_str(&f, "dpoc-tok-1", 10);
    put_u32(&f, (uint32_t)t->nfc);
    put_u32(&f, (uint32_t)t->prefix_space);
    put_u32(&f, (uint32_t)t->ignore_merges);
    put_u32(&f, (uint32_t)t->literal);
    if (t->pattern)
        put_str(&f, t->pattern, strlen(t->pattern));
    else
        put_u32(&f, 0xFFFFFFFFu);
    put_u32(&f, (uint32_t)t->n);
    const uint32_t keep = TOKF_PRESENT | TOKF_ADDED | TOKF_SPECIAL | TOKF_LSTRIP | TOKF_RSTRIP;
    for (int32_t i = 0; i < t->n; i++) {
        const TokEntry *e = &t->tok[i];
        put_u32(&f, e->flags & keep);
        if (e->flags & TOKF_PRESENT) put_str(&f, t->arena + e->str_off, e->str_len);
    }
    for (int32_t r = 0; r < t->nmerges; r++) {
        const TokPairSlot *m = tok_pairmap_get(&t->merges, t->merge_list[r][0], t->merge_list[r][1]);
        if (!m || m->rank != r) continue; /* superseded by a later copy */
        put_u32(&f, (uint32_t)r);
        put_u32(&f, (uint32_t)t->merge_list[r][0]);
        put_u32(&f, (uint32_t)t->merge_list[r][1]);
    }
    return f.h;
}
