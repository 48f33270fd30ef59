/* ckpt_xxh64.c — the XXH64 checksum of checkpoint headers, tables and frames.
 *
 * Written from the xxHash specification (XXH64, seed 0 in the format): four
 * 64-bit lanes each absorb one 8-byte word of every 32-byte stripe
 * (acc = rotl(acc + word * P2, 31) * P1); at the end the lanes are rotated,
 * summed and merged, or for inputs under 32 bytes the seed + P5 starts the
 * accumulator; the length is added, the tail is consumed 8, 4 and 1 bytes at
 * a time, and a final avalanche mixes the bits. The streaming form keeps the
 * lanes plus up to 31 pending bytes, so any split of the input gives the
 * one-shot value. zstd's frame checksum is the low 32 bits of this function,
 * which the tests use as an independent reference.
 */
#include <string.h>

#include "ckpt_internal.h"

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t lane_round(uint64_t acc, uint64_t word) {
    acc += word * P2;
    return rotl(acc, 31) * P1;
}

static inline uint64_t lane_merge(uint64_t acc, uint64_t lane) {
    acc ^= lane_round(0, lane);
    return acc * P1 + P4;
}

static void absorb_stripe(uint64_t v[4], const unsigned char *p) {
    for (int i = 0; i < 4; i++) v[i] = lane_round(v[i], ckpt_get64(p + 8 * i));
}

/* The part after the stripes: accumulator start, length, tail, avalanche. */
static uint64_t finish(const uint64_t v[4], int had_stripes, uint64_t seed, uint64_t total, const unsigned char *p,
                       size_t n) {
    uint64_t acc;
    if (had_stripes) {
        acc = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
        for (int i = 0; i < 4; i++) acc = lane_merge(acc, v[i]);
    } else {
        acc = seed + P5;
    }
    acc += total;
    for (; n >= 8; p += 8, n -= 8) {
        acc ^= lane_round(0, ckpt_get64(p));
        acc = rotl(acc, 27) * P1 + P4;
    }
    if (n >= 4) {
        acc ^= (uint64_t)ckpt_get32(p) * P1;
        acc = rotl(acc, 23) * P2 + P3;
        p += 4;
        n -= 4;
    }
    for (; n > 0; p++, n--) {
        acc ^= (uint64_t)*p * P5;
        acc = rotl(acc, 11) * P1;
    }
    acc ^= acc >> 33;
    acc *= P2;
    acc ^= acc >> 29;
    acc *= P3;
    acc ^= acc >> 32;
    return acc;
}

void ckpt_xxh64_init(CkptXxh64 *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void ckpt_xxh64_update(CkptXxh64 *s, const void *data, size_t len) {
    const unsigned char *p = data;
    if (!len) return; /* data may be NULL */
    s->total += len;
    if (s->nbuf) {
        size_t take = 32 - s->nbuf < len ? 32 - s->nbuf : len;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take;
        p += take;
        len -= take;
        if (s->nbuf < 32) return;
        absorb_stripe(s->v, s->buf);
        s->nbuf = 0;
    }
    for (; len >= 32; p += 32, len -= 32) absorb_stripe(s->v, p);
    if (len) memcpy(s->buf, p, len);
    s->nbuf = len;
}

uint64_t ckpt_xxh64_digest(const CkptXxh64 *s) {
    return finish(s->v, s->total >= 32, s->seed, s->total, s->buf, s->nbuf);
}

uint64_t ckpt_xxh64(const void *data, size_t len, uint64_t seed) {
    CkptXxh64 s;
    ckpt_xxh64_init(&s, seed);
    ckpt_xxh64_update(&s, data, len);
    return ckpt_xxh64_digest(&s);
}
