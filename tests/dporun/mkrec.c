/* mkrec.c — write a synthetic .rec of preference pairs for the dporun tests.
 *
 * usage: mkrec OUT.rec --pairs N [--seed S] [--vocab V] [--long K]
 *              [--no-label K] [--ref HEXHASH]
 *
 * Each pair has a prompt of 2..5 ids and two responses of 2..6 ids; every
 * id is drawn from splitmix64 seeded by (seed, pair). The learnable rule:
 * chosen responses use only even ids in [2, V), rejected ones only odd ids,
 * so a model that raises the probability of even ids wins every pair.
 * Labels are the responses (one span [prompt_len, len) per sequence).
 * --long K makes the first K pairs' responses 30 ids long (past a 16-token
 * step); --no-label K gives the last K pairs a 20-id prompt (no label within
 * 16 tokens). --ref HASH stores reference log-probs -(3 + pair % 5) and
 * -(4 + pair % 7) with that weights hash. It uses rec_writer directly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rec.h"

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct Rng {
    uint64_t s;
} Rng;

static uint32_t below(Rng *r, uint32_t n) { return (uint32_t)((r->s = mix(r->s)) % n); }

int main(int argc, char **argv) {
    const char *out = NULL;
    uint64_t npairs = 0, seed = 1, ref_hash = 0;
    int vocab = 64, nlong = 0, nnolabel = 0, with_ref = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pairs") && v) npairs = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--seed") && v) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--vocab") && v) vocab = atoi(v), i++;
        else if (!strcmp(a, "--long") && v) nlong = atoi(v), i++;
        else if (!strcmp(a, "--no-label") && v) nnolabel = atoi(v), i++;
        else if (!strcmp(a, "--ref") && v) ref_hash = strtoull(v, NULL, 16), with_ref = 1, i++;
        else if (!out && a[0] != '-') out = a;
        else {
            fprintf(stderr, "mkrec: bad argument '%s'\n", a);
            return 2;
        }
    }
    if (!out || !npairs || vocab < 8) {
        fprintf(stderr, "usage: mkrec OUT.rec --pairs N [--seed S] [--vocab V] [--long K] [--no-label K] [--ref HASH]\n");
        return 2;
    }
    RecHeader h;
    memset(&h, 0, sizeof h);
    snprintf(h.template_name, sizeof h.template_name, "none");
    h.vocab_size = vocab;
    h.has_ref = with_ref;
    h.ref_weights_hash = ref_hash;
    char err[512];
    RecWriter *w = rec_writer_open(out, &h, err, sizeof err);
    if (!w) {
        fprintf(stderr, "mkrec: %s\n", err);
        return 1;
    }
    int32_t ids[2][64];
    RecSpan spans[2][1];
    for (uint64_t i = 0; i < npairs; i++) {
        Rng r = {mix(seed * 1000003u + i)};
        uint32_t P = 2 + below(&r, 4);
        if (i + (uint64_t)nnolabel >= npairs) P = 20;
        for (uint32_t t = 0; t < P; t++) ids[0][t] = ids[1][t] = (int32_t)(1 + below(&r, (uint32_t)vocab - 1));
        RecPair p;
        memset(&p, 0, sizeof p);
        p.prompt_len = P;
        for (int s = 0; s < 2; s++) {
            uint32_t L = i < (uint64_t)nlong ? 30 : 2 + below(&r, 5);
            for (uint32_t t = 0; t < L; t++) {
                uint32_t half = (uint32_t)(vocab - 2) / 2; /* ids 2..V-1 split into even and odd */
                ids[s][P + t] = (int32_t)(2 + 2 * below(&r, half) + (s ? 1 : 0));
            }
            p.len[s] = P + L;
            p.ids[s] = ids[s];
            spans[s][0].start = P;
            spans[s][0].end = P + L;
            p.nspans[s] = 1;
            p.spans[s] = spans[s];
        }
        if (with_ref) {
            p.has_ref = 1;
            p.ref_logps[0] = -(float)(3 + i % 5);
            p.ref_logps[1] = -(float)(4 + i % 7);
        }
        if (rec_writer_add(w, &p, err, sizeof err)) {
            fprintf(stderr, "mkrec: pair %" PRIu64 ": %s\n", i, err);
            rec_writer_abort(w);
            return 1;
        }
    }
    if (rec_writer_close(w, err, sizeof err)) {
        fprintf(stderr, "mkrec: %s\n", err);
        return 1;
    }
    return 0;
}
