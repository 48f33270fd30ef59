/* test_gen_unit.c — the sampler and the UTF-8 streamer against hand-computed values.
 *
 * Sampling: logits ln(1..4) make the softmax exactly (1, 2, 3, 4) / 10, so
 * every distribution below is a fraction written by hand: temperature 0.5
 * squares the weights (1, 4, 9, 16) / 30; top-k 2 keeps (3, 4) / 7 (and
 * ties with the k-th are kept); top-p 0.65 keeps the two largest (0.4 +
 * 0.3 reaches it), 0.75 the three largest; the repetition penalty divides
 * positive and multiplies negative logits of seen ids (Hugging Face). Same
 * seed, same draws; top-k 1 is greedy; 40000 draws land within 0.01 of the
 * distribution. UTF-8: a character split over two writes comes out whole
 * after the second, bad bytes become U+FFFD as Python's
 * bytes.decode("utf-8", "replace") makes them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/generate.h"

#include "tests/check.h"

static void check_probs(const char *what, const double *got, const double *want, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    CHECK_MSG(worst < 1e-12, "%s: probabilities off by %g", what, worst);
    if (worst < 1e-12) printf("OK   %s\n", what);
}

static GenSampler make(double T, int k, double p, double pen, uint64_t seed, int sample, int64_t V) {
    GenSampling s = {T, k, p, pen, seed};
    GenSampler sp;
    if (gen_sampler_init(&sp, &s, sample, V)) {
        printf("FAIL out of memory\n");
        exit(1);
    }
    return sp;
}

static void test_sampling(void) {
    const float l4[4] = {(float)log(1.0), (float)log(2.0), (float)log(3.0), (float)log(4.0)};
    double pr[4];
    GenSampler sp;

    sp = make(0, 0, 0, 0, 1, 0, 4);
    CHECK_MSG(gen_sample(&sp, l4, pr) == 3 && pr[3] == 1.0, "greedy picks the largest");
    gen_sampler_free(&sp);

    /* float logits ln(k) are rounded: compare with the softmax of the same floats */
    double e[4], z = 0;
    for (int i = 0; i < 4; i++) z += e[i] = exp((double)l4[i]);
    sp = make(1.0, 0, 0, 0, 1, 1, 4);
    gen_sample(&sp, l4, pr);
    double w1[4] = {e[0] / z, e[1] / z, e[2] / z, e[3] / z};
    check_probs("temperature 1: (1,2,3,4)/10", pr, w1, 4);
    double ref[4] = {0.1, 0.2, 0.3, 0.4};
    double dev = 0;
    for (int i = 0; i < 4; i++) dev = fmax(dev, fabs(pr[i] - ref[i]));
    CHECK_MSG(dev < 1e-7, "softmax of ln(1..4) is (1,2,3,4)/10 (off by %g)", dev);
    gen_sampler_free(&sp);

    sp = make(0.5, 0, 0, 0, 1, 1, 4);
    gen_sample(&sp, l4, pr);
    double z2 = 0, e2[4];
    for (int i = 0; i < 4; i++) z2 += e2[i] = exp(2.0 * (double)l4[i]);
    double w2[4] = {e2[0] / z2, e2[1] / z2, e2[2] / z2, e2[3] / z2};
    check_probs("temperature 0.5: (1,4,9,16)/30", pr, w2, 4);
    CHECK_MSG(fabs(pr[3] - 16.0 / 30) < 1e-7, "16/30");
    gen_sampler_free(&sp);

    sp = make(0, 2, 0, 0, 1, 1, 4);
    gen_sample(&sp, l4, pr);
    double w3[4] = {0, 0, e[2] / (e[2] + e[3]), e[3] / (e[2] + e[3])};
    check_probs("top-k 2: (0,0,3,4)/7", pr, w3, 4);
    gen_sampler_free(&sp);

    const float tie[4] = {0, 1, 1, 2};
    sp = make(0, 2, 0, 0, 1, 1, 4);
    gen_sample(&sp, tie, pr);
    double zt = 2 * exp(1.0) + exp(2.0);
    double w4[4] = {0, exp(1.0) / zt, exp(1.0) / zt, exp(2.0) / zt};
    check_probs("top-k 2 keeps ties with the 2nd", pr, w4, 4);
    gen_sampler_free(&sp);

    sp = make(0, 0, 0.65, 0, 1, 1, 4);
    gen_sample(&sp, l4, pr);
    check_probs("top-p 0.65: (0,0,3,4)/7", pr, w3, 4);
    gen_sampler_free(&sp);

    sp = make(0, 0, 0.75, 0, 1, 1, 4);
    gen_sample(&sp, l4, pr);
    double z5 = e[1] + e[2] + e[3];
    double w5[4] = {0, e[1] / z5, e[2] / z5, e[3] / z5};
    check_probs("top-p 0.75: (0,2,3,4)/9", pr, w5, 4);
    gen_sampler_free(&sp);

    /* repetition penalty 2, ids 2 and 3 seen: (1, 2, 3, -1) -> (1, 2, 1.5, -2) */
    const float rp[4] = {1, 2, 3, -1};
    int32_t seen[2] = {2, 3};
    sp = make(0, 0, 0, 2.0, 1, 0, 4);
    gen_sampler_seen(&sp, seen, 2);
    CHECK_MSG(gen_sample(&sp, rp, pr) == 1, "penalty: greedy moves from id 2 to id 1");
    gen_sampler_free(&sp);
    sp = make(1.0, 0, 0, 2.0, 1, 1, 4);
    gen_sampler_seen(&sp, seen, 2);
    gen_sample(&sp, rp, pr);
    double zr = exp(1.0) + exp(2.0) + exp(1.5) + exp(-2.0);
    double w6[4] = {exp(1.0) / zr, exp(2.0) / zr, exp(1.5) / zr, exp(-2.0) / zr};
    check_probs("repetition penalty 2: logits (1, 2, 1.5, -2)", pr, w6, 4);
    gen_sampler_free(&sp);

    /* determinism, top-k 1 == greedy, and the draws follow the distribution */
    enum { V = 50, N = 40000 };
    float lg[V];
    uint64_t st = 7;
    for (int i = 0; i < V; i++) lg[i] = (float)(4.0 * gen_uniform(&st));
    GenSampler a = make(0.8, 0, 0.9, 0, 123, 1, V), b = make(0.8, 0, 0.9, 0, 123, 1, V);
    GenSampler g = make(0, 0, 0, 0, 0, 0, V), k1 = make(1.3, 1, 0, 0, 99, 1, V);
    int same = 1;
    double *pd = malloc(V * sizeof *pd), cnt[V] = {0};
    for (int t = 0; t < N; t++) {
        int32_t x = gen_sample(&a, lg, t == 0 ? pd : NULL), y = gen_sample(&b, lg, NULL);
        same &= x == y;
        cnt[x] += 1.0 / N;
    }
    CHECK_MSG(same, "same seed, same tokens");
    double worst = 0;
    for (int i = 0; i < V; i++) worst = fmax(worst, fabs(cnt[i] - pd[i]));
    CHECK_MSG(worst < 0.01, "empirical frequencies within 0.01 of the distribution (%g)", worst);
    CHECK_MSG(gen_sample(&k1, lg, NULL) == gen_sample(&g, lg, NULL), "top-k 1 is greedy");
    printf("OK   same seed same draws; frequencies within %.4f; top-k 1 == greedy\n", worst);
    free(pd);
    gen_sampler_free(&a);
    gen_sampler_free(&b);
    gen_sampler_free(&g);
    gen_sampler_free(&k1);
}

/* writes the pieces through a GenUtf8 and compares the whole output; after
 * piece `check_after` the output so far must be `partial` */
static void utf8_case(const char *what, const char *const *pieces, int n, const char *want, int check_after,
                      const char *partial) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    GenUtf8 u = {{0}, 0};
    int ok = 1;
    for (int i = 0; i < n; i++) {
        gen_utf8_put(&u, pieces[i], strlen(pieces[i]), f);
        if (i == check_after) {
            fflush(f);
            ok &= len == strlen(partial) && !memcmp(buf, partial, len);
        }
    }
    gen_utf8_finish(&u, f);
    fclose(f);
    ok &= len == strlen(want) && !memcmp(buf, want, len);
    CHECK_MSG(ok, "utf8: %s", what);
    if (ok) printf("OK   utf8: %s\n", what);
    free(buf);
}

static void test_utf8(void) {
    const char *zh[] = {"a\xE4", "\xB8\xAD", "\xE6\x96", "\x87!"}; /* a中文! */
    utf8_case("a character split over two tokens is held back", zh, 4, "a\xE4\xB8\xAD\xE6\x96\x87!", 0, "a");
    const char *bad[] = {"\x80x"};
    utf8_case("a stray continuation byte", bad, 1, "\xEF\xBF\xBDx", -1, "");
    const char *cut[] = {"\xE4\xB8", "a"};
    utf8_case("a cut sequence then ASCII", cut, 2, "\xEF\xBF\xBD" "a", 0, "");
    const char *overlong[] = {"\xC0\xAF"};
    utf8_case("an overlong form", overlong, 1, "\xEF\xBF\xBD\xEF\xBF\xBD", -1, "");
    const char *end[] = {"ok\xF0\x9F"};
    utf8_case("an unfinished sequence at the end", end, 1, "ok\xEF\xBF\xBD", 0, "ok");
    const char *emoji[] = {"\xF0", "\x9F", "\x98", "\x80"};
    utf8_case("a 4-byte character one byte at a time", emoji, 4, "\xF0\x9F\x98\x80", 2, "");
    const char *sur[] = {"\xED\xA0\x80"};
    utf8_case("a surrogate", sur, 1, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", -1, "");
}

int main(void) {
    test_sampling();
    test_utf8();
    return check_done("test_gen_unit");
}
