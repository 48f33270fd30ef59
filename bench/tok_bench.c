/* tok_bench.c — tokenizer encoding throughput, single thread, in MB/s.
 *
 *   tok_bench [--mb N] [--reps R] TEXT_DIR TOKENIZER_DIR...
 *
 * TEXT_DIR holds en.txt and zh.txt (tests/data/tok/text: English and
 * Chinese prose). Their paragraphs are drawn in a fixed pseudo-random order
 * (a 64-bit LCG, seed 1) until each corpus holds N MB (default 1), so runs are
 * comparable and the text is not one paragraph repeated back to back. Each
 * paragraph is one tok_encode call (as data preparation encodes one prompt
 * or response at a time), so per-call costs are included. Every corpus is
 * encoded R times (default 5) with every tokenizer; the best time is
 * reported with tokens per MB. Results go to bench/RESULTS.md by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/file_read.h"
#include "runtime/tokenizer.h"

typedef struct {
    char *buf;
    size_t len;
    size_t *start; /* paragraph boundaries: start[i]..start[i+1] */
    size_t npara;
} Corpus;


static int build_corpus(const char *path, size_t target, Corpus *c) {
    size_t len;
    char *src = file_read_all(path, &len);
    if (!src) return -1;
    /* paragraphs end at a blank line; the blank line stays with the paragraph */
    size_t np = 0, *ps = malloc((len + 2) * sizeof *ps);
    ps[np++] = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (src[i] == '\n' && src[i + 1] == '\n') ps[np++] = i + 2;
    if (ps[np - 1] != len) ps[np++] = len;
    size_t nsrc = np - 1;
    c->buf = malloc(target + len);
    c->start = malloc((target / 16 + nsrc + 2) * sizeof *c->start);
    c->len = c->npara = 0;
    uint64_t x = 1;
    while (c->len < target) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t k = (size_t)(x >> 33) % nsrc;
        size_t plen = ps[k + 1] - ps[k];
        c->start[c->npara++] = c->len;
        memcpy(c->buf + c->len, src + ps[k], plen);
        c->len += plen;
    }
    c->start[c->npara] = c->len;
    free(ps);
    free(src);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    double mb = 1;
    int reps = 5, a = 1;
    for (; a < argc && argv[a][0] == '-'; a += 2) {
        if (a + 1 >= argc) break;
        if (!strcmp(argv[a], "--mb")) mb = atof(argv[a + 1]);
        else if (!strcmp(argv[a], "--reps")) reps = atoi(argv[a + 1]);
        else break;
    }
    if (argc - a < 2 || mb <= 0 || reps < 1) {
        fprintf(stderr, "usage: tok_bench [--mb N] [--reps R] TEXT_DIR TOKENIZER_DIR...\n");
        return 2;
    }
    const char *names[2] = {"en", "zh"};
    Corpus corp[2];
    for (int k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.txt", argv[a], names[k]);
        if (build_corpus(path, (size_t)(mb * 1e6), &corp[k]) != 0) {
            fprintf(stderr, "tok_bench: cannot read %s\n", path);
            return 1;
        }
    }
    printf("%-40s %-4s %-4s %8s %10s %9s %8s %10s\n", "tokenizer", "text", "memo", "MB", "tokens", "tok/MB", "cpu s",
           "MB/s");
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (int d = a + 1; d < argc; d++) {
        char err[512];
        Tokenizer *t = tok_load(argv[d], err, sizeof err);
        if (!t) {
            fprintf(stderr, "tok_bench: %s\n", err);
            return 1;
        }
        for (int k = 0; k < 4; k++) {
            const Corpus *c = &corp[k / 2];
            tok_set_memo(t, k % 2 == 0);
            double best = 1e30;
            size_t ntok = 0;
            for (int r = 0; r < reps; r++) {
                ntok = 0;
                double t0 = now();
                for (size_t p = 0; p < c->npara; p++) {
                    n = 0;
                    if (tok_encode(t, c->buf + c->start[p], c->start[p + 1] - c->start[p], 0, &ids, &n, &cap) != 0) {
                        fprintf(stderr, "tok_bench: encode failed\n");
                        return 1;
                    }
                    ntok += n;
                }
                double dt = now() - t0;
                if (dt < best) best = dt;
            }
            double m = (double)c->len / 1e6;
            printf("%-40s %-4s %-4s %8.2f %10zu %9.0f %8.3f %10.2f\n", argv[d], names[k / 2], k % 2 ? "off" : "on", m,
                   ntok, (double)ntok / m, best, m / best);
        }
        tok_free(t);
    }
    free(ids);
    for (int k = 0; k < 2; k++) {
        free(corp[k].buf);
        free(corp[k].start);
    }
    return 0;
}
