/* test_rec.c — tests of the .rec writer and reader (runtime/rec.h).
 *
 * Usage: test_rec GROUP, GROUP one of the names in the table at the end;
 * `test_rec corpus DIR` writes the fuzz seed corpus instead. Each group
 * counts its checks and prints "N passed, M failed"; the exit status is
 * non-zero on any failure. Files go to a fresh directory under $TMPDIR
 * (or /tmp), removed at the end.
 *
 * This file: round trips, random access, determinism, the writer's checks
 * and the temporary-file behaviour. test_rec_bytes.c: CRC vectors, the
 * byte layout against hand-written bytes and an independent builder,
 * corruption of every byte and every truncation, hand-made bad files.
 * test_rec_corpus.c: the fuzz seeds (`test_rec seeds DIR` checks that every
 * .rec seed in DIR reads back and that every seed is below 4 KiB).
 */
#include "rec_testlib.h"
#include "runtime/rec_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

void group_crc(void);
void group_header(void);
void group_build(void);
void group_corrupt(void);
void group_craft(void);
int corpus_write(const char *dir);

static const RecHeader hdr_base = {.tok_hash = 0x1122334455667788ull, .template_name = "chatml", .vocab_size = 1000};

/* Writes n pairs to path; returns 0 or -1 (message printed as a failure). */
static int write_pairs(const char *path, const RecHeader *h, const TPair *p, size_t n, size_t target) {
    char err[512];
    RecWriter *w = rec_writer_open(path, h, err, sizeof err);
    check(w != NULL, "rec_writer_open %s: %s", path, w ? "" : err);
    if (!w) return -1;
    if (target) rec_writer_set_block_target(w, target);
    for (size_t i = 0; i < n; i++) {
        RecPair v = tpair_view(&p[i]);
        if (rec_writer_add(w, &v, err, sizeof err)) {
            check(0, "rec_writer_add %zu: %s", i, err);
            rec_writer_abort(w);
            return -1;
        }
    }
    int rc = rec_writer_close(w, err, sizeof err);
    check(rc == 0, "rec_writer_close: %s", rc ? err : "");
    return rc;
}

/* Reads every record of path in order and compares. */
static void read_back(const char *path, const RecHeader *h, const TPair *p, size_t n, const char *what) {
    char err[512], why[128];
    RecReader *r = rec_open(path, err, sizeof err);
    check(r != NULL, "%s: rec_open: %s", what, r ? "" : err);
    if (!r) return;
    const RecHeader *g = rec_header(r);
    uint64_t ntok = 0;
    for (size_t i = 0; i < n; i++) ntok += (uint64_t)p[i].len[0] + p[i].len[1];
    check(g->version == REC_VERSION && g->npairs == n && g->ntokens == ntok, "%s: version/npairs/ntokens", what);
    check(g->tok_hash == h->tok_hash && !strcmp(g->template_name, h->template_name) &&
              g->max_length == h->max_length && g->has_ref == !!h->has_ref &&
              g->ref_weights_hash == (h->has_ref ? h->ref_weights_hash : 0),
          "%s: header fields", what);
    if (h->vocab_size) check(g->vocab_size == h->vocab_size, "%s: vocab_size %d", what, g->vocab_size);
    int bad = 0;
    for (size_t i = 0; i < n && bad < 5; i++) {
        RecPair got;
        if (rec_get(r, i, &got, err, sizeof err)) {
            check(0, "%s: rec_get %zu: %s", what, i, err);
            bad++;
        } else if (!tpair_same(&got, &p[i], why, sizeof why)) {
            check(0, "%s: pair %zu: %s", what, i, why);
            bad++;
        }
    }
    check(bad == 0, "%s: every pair reads back", what);
    RecPair got;
    char want[600];
    snprintf(want, sizeof want, "%s: record %zu out of range (%zu records)", path, n, n);
    check(rec_get(r, n, &got, err, sizeof err) == -1, "%s: past the end refused", what);
    check_msg(err, want, "out of range message");
    rec_close(r);
}

static TPair *random_pairs(size_t n, uint64_t seed, const TPairOpts *o) {
    TPair *p = calloc(n + 1, sizeof *p);
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) tpair_random(&p[i], &rng, o);
    return p;
}

static void free_pairs(TPair *p, size_t n) {
    for (size_t i = 0; i < n; i++) tpair_free(&p[i]);
    free(p);
}

static void group_roundtrip(void) {
    struct {
        const char *name;
        size_t n, target;
        TPairOpts o;
    } cases[] = {
        {"zero pairs", 0, 0, {8, 8, 1000, 0, 2}},
        {"single pair", 1, 0, {8, 8, 1000, 0, 2}},
        {"500 pairs, default blocks", 500, 0, {200, 300, 1000, 0, 3}},
        {"2000 pairs with ref, 1 KiB blocks", 2000, 1024, {40, 60, 1000, 1, 3}},
        {"tiny pairs, 28-byte blocks", 300, 28, {2, 2, 3, 0, 1}},
        {"no spans at all", 100, 0, {20, 20, 1000, 1, 0}},
        {"long sequences", 6, 0, {100000, 200000, 151646, 1, 4}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        TPair *p = random_pairs(cases[c].n, 100 + c, &cases[c].o);
        RecHeader h = hdr_base;
        h.has_ref = cases[c].o.has_ref;
        h.ref_weights_hash = h.has_ref ? 0xabcdef0123456789ull : 0;
        h.vocab_size = cases[c].o.vocab;
        const char *path = tpath("rt.rec");
        if (write_pairs(path, &h, p, cases[c].n, cases[c].target) == 0) {
            read_back(path, &h, p, cases[c].n, cases[c].name);
            check(!path_exists(tpath("rt.rec.tmp")), "%s: no temporary left", cases[c].name);
        }
        free_pairs(p, cases[c].n);
    }

    /* sequences at the hard limit, and one over it */
    TPair big;
    memset(&big, 0, sizeof big);
    big.len[0] = big.len[1] = REC_MAX_LEN;
    big.prompt_len = 3;
    for (int s = 0; s < 2; s++) {
        big.ids[s] = malloc(REC_MAX_LEN * sizeof(int32_t));
        for (uint32_t t = 0; t < REC_MAX_LEN; t++) big.ids[s][t] = (int32_t)((t * 2654435761u + (t < 3 ? 0 : s)) % 50000);
        big.nspans[s] = 1;
        big.spans[s] = malloc(sizeof(RecSpan));
        big.spans[s][0] = (RecSpan){3, REC_MAX_LEN};
    }
    RecHeader h = hdr_base;
    h.vocab_size = 50000;
    h.max_length = REC_MAX_LEN;
    const char *path = tpath("big.rec");
    if (write_pairs(path, &h, &big, 1, 0) == 0) read_back(path, &h, &big, 1, "a pair of 2^20-token sequences");
    char err[512];
    RecWriter *w = rec_writer_open(tpath("over.rec"), &hdr_base, err, sizeof err);
    RecPair v = tpair_view(&big);
    v.len[1] = REC_MAX_LEN + 1;
    check(w && rec_writer_add(w, &v, err, sizeof err) == -1, "2^20 + 1 tokens refused");
    char want[600];
    snprintf(want, sizeof want, "%s: pair 0: rejected length 1048577 over the limit 1048576", tpath("over.rec"));
    check_msg(err, want, "over the limit");
    rec_writer_abort(w);
    tpair_free(&big);

    /* vocab_size 0: the writer stores max id + 1 (1 without ids) */
    TPairOpts o = {10, 10, 777, 0, 1};
    TPair *p = random_pairs(50, 7, &o);
    int32_t maxid = -1;
    for (int i = 0; i < 50; i++)
        for (int s = 0; s < 2; s++)
            for (uint32_t t = 0; t < p[i].len[s]; t++) maxid = p[i].ids[s][t] > maxid ? p[i].ids[s][t] : maxid;
    h = hdr_base;
    h.vocab_size = 0;
    path = tpath("auto.rec");
    if (write_pairs(path, &h, p, 50, 0) == 0) {
        read_back(path, &h, p, 50, "vocab_size 0");
        RecReader *r = rec_open(path, err, sizeof err);
        check(r && rec_header(r)->vocab_size == maxid + 1, "vocab_size 0 stores max id + 1 = %d", maxid + 1);
        rec_close(r);
    }
    if (write_pairs(path, &h, p, 0, 0) == 0) {
        RecReader *r = rec_open(path, err, sizeof err);
        check(r && rec_header(r)->vocab_size == 1, "vocab_size 0 without ids stores 1");
        rec_close(r);
    }
    free_pairs(p, 50);
}

static void group_random(void) {
    TPairOpts o = {30, 50, 5000, 1, 2};
    size_t n = 3000;
    TPair *p = random_pairs(n, 42, &o);
    RecHeader h = hdr_base;
    h.vocab_size = 5000;
    h.has_ref = 1;
    h.ref_weights_hash = 99;
    const char *path = tpath("random.rec");
    if (write_pairs(path, &h, p, n, 2048) == 0) {
        char err[512], why[128];
        RecReader *r = rec_open(path, err, sizeof err);
        check(r != NULL, "open: %s", r ? "" : err);
        size_t *order = malloc(3 * n * sizeof *order);
        uint64_t rng = 5;
        for (size_t i = 0; i < n; i++) order[i] = i;
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = rng_below(&rng, (uint32_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t i = 0; i < n; i++) order[n + i] = n - 1 - i;         /* backwards */
        for (size_t i = 0; i < n; i++) order[2 * n + i] = (i * 7) % 10; /* the same few again and again */
        int bad = 0;
        for (size_t k = 0; r && k < 3 * n && bad < 5; k++) {
            RecPair got;
            size_t i = order[k];
            if (rec_get(r, i, &got, err, sizeof err) || !tpair_same(&got, &p[i], why, sizeof why)) {
                check(0, "random access %zu (step %zu): %s", i, k, err);
                bad++;
            }
        }
        check(bad == 0, "shuffled, backward and repeated reads all match");
        /* pointers stay valid until the next rec_get: read two, compare the first after the second */
        RecPair a, b;
        if (r && !rec_get(r, 10, &a, err, sizeof err)) {
            int ok = tpair_same(&a, &p[10], why, sizeof why);
            check(ok, "record 10 before another read");
            rec_get(r, 2999, &b, err, sizeof err);
        }
        free(order);
        rec_close(r);
    }
    free_pairs(p, n);
}

static void group_determinism(void) {
    TPairOpts o = {50, 80, 30000, 1, 3};
    size_t n = 400;
    TPair *p = random_pairs(n, 3, &o);
    RecHeader h = hdr_base;
    h.vocab_size = 30000;
    h.has_ref = 1;
    h.ref_weights_hash = 12345;
    size_t na = 0, nb = 0, nc = 0;
    uint8_t *a = NULL, *b = NULL, *c = NULL;
    if (!write_pairs(tpath("d1.rec"), &h, p, n, 0)) a = read_file(tpath("d1.rec"), &na);
    if (!write_pairs(tpath("d2.rec"), &h, p, n, 0)) b = read_file(tpath("d2.rec"), &nb);
    if (!write_pairs(tpath("d1.rec"), &h, p, n, 0)) c = read_file(tpath("d1.rec"), &nc);
    check(a && b && c && na == nb && na == nc && !memcmp(a, b, na) && !memcmp(a, c, na),
          "the same pairs give the same bytes (%zu, %zu, %zu)", na, nb, nc);
    /* garbage after the template's NUL in the caller's header does not leak into the file */
    RecHeader h2 = h;
    memset(h2.template_name, 'x', sizeof h2.template_name);
    memcpy(h2.template_name, "chatml", 7);
    size_t nd = 0;
    uint8_t *d = NULL;
    if (!write_pairs(tpath("d3.rec"), &h2, p, n, 0)) d = read_file(tpath("d3.rec"), &nd);
    check(a && d && nd == na && !memcmp(a, d, na), "template padding is canonical");
    free(a);
    free(b);
    free(c);
    free(d);
    free_pairs(p, n);
}

/* ---- the writer's checks -------------------------------------------------- */

static void group_writer(void) {
    char err[512], want[700];
    const char *path = tpath("w.rec");
    RecHeader h = hdr_base;
    h.vocab_size = 100;
    h.max_length = 8;

    /* header checks */
    RecHeader bad = h;
    memset(bad.template_name, 'a', REC_TEMPLATE_MAX);
    check(!rec_writer_open(path, &bad, err, sizeof err), "32-byte template refused");
    snprintf(want, sizeof want, "%s: template name longer than 31 bytes", path);
    check_msg(err, want, "long template");
    bad = h;
    strcpy(bad.template_name, "chat\nml");
    check(!rec_writer_open(path, &bad, err, sizeof err), "control byte in template refused");
    snprintf(want, sizeof want, "%s: template name has a byte that is not printable ASCII", path);
    check_msg(err, want, "template byte");
    bad = h;
    bad.max_length = REC_MAX_LEN + 1;
    check(!rec_writer_open(path, &bad, err, sizeof err), "max_length over the limit refused");
    snprintf(want, sizeof want, "%s: max_length 1048577 over the limit 1048576", path);
    check_msg(err, want, "max_length");
    bad = h;
    bad.vocab_size = -5;
    check(!rec_writer_open(path, &bad, err, sizeof err), "negative vocab refused");
    snprintf(want, sizeof want, "%s: vocab_size -5 is negative", path);
    check_msg(err, want, "vocab");
    check(!path_exists(tpath("w.rec.tmp")), "a refused header leaves no temporary");

    /* pair checks: each refused with its message, the writer stays usable */
    RecWriter *w = rec_writer_open(path, &h, err, sizeof err);
    check(w != NULL, "open: %s", w ? "" : err);
    if (!w) return;
    int32_t pr[2] = {1, 2}, tc[3] = {3, 4, 5}, tr[2] = {6, 7};
    RecSpan sc[1] = {{2, 5}}, sr[1] = {{2, 4}};
    TPair good;
    tpair_make(&good, 2, pr, 3, tc, 2, tr, 1, sc, 1, sr, 0, 0, 0);
    RecPair g = tpair_view(&good);
    check(rec_writer_add(w, &g, err, sizeof err) == 0, "a good pair: %s", err);
    struct {
        const char *what, *msg;
        RecPair p;
    } cases[16];
    int nc = 0;
    RecPair q;
#define CASE(WHAT, MSG, EDIT)                                   \
    do {                                                        \
        q = g;                                                  \
        EDIT;                                                   \
        cases[nc].what = WHAT, cases[nc].msg = MSG, cases[nc].p = q; \
        nc++;                                                   \
    } while (0)
    int32_t ids_big[5] = {1, 2, 3, 100, 5}, ids_neg[4] = {1, 2, -1, 7}, ids_other[5] = {1, 9, 3, 4, 5};
    RecSpan sp_rev[1] = {{4, 3}}, sp_long[1] = {{2, 6}}, sp_ovl[2] = {{2, 4}, {3, 5}}, sp_empty[2] = {{2, 2}, {2, 5}};
    RecSpan sp_unsorted[2] = {{4, 5}, {2, 3}};
    CASE("id = vocab", "pair 1: chosen id 100 at position 3 outside [0, 100)", q.ids[0] = ids_big);
    CASE("negative id", "pair 1: rejected id -1 at position 2 outside [0, 100)", q.ids[1] = ids_neg);
    CASE("prompt differs", "pair 1: chosen and rejected differ at position 1 inside the prompt (prompt_len 2): "
                           "the prompt must be a shared prefix",
         q.ids[0] = ids_other);
    CASE("prompt too long", "pair 1: prompt_len 5 over the rejected length 4", q.prompt_len = 5);
    CASE("over max_length", "pair 1: chosen length 9 over max_length 8", q.len[0] = 9);
    CASE("reversed span", "pair 1: chosen span 0 [4, 3) not inside [0, 5) or reversed", q.spans[0] = sp_rev);
    CASE("span past the end", "pair 1: rejected span 0 [2, 6) not inside [0, 4) or reversed", q.spans[1] = sp_long);
    CASE("overlapping spans", "pair 1: chosen span 1 [3, 5) overlaps or precedes span 0 [2, 4)",
         (q.spans[0] = sp_ovl, q.nspans[0] = 2));
    CASE("unsorted spans", "pair 1: chosen span 1 [2, 3) overlaps or precedes span 0 [4, 5)",
         (q.spans[0] = sp_unsorted, q.nspans[0] = 2));
    CASE("too many spans", "pair 1: rejected has 65537 spans (limit 65536)", q.nspans[1] = REC_MAX_SPANS + 1);
    CASE("has_ref without the header's", "pair 1: has reference log-probs but the file has none", q.has_ref = 1);
    CASE("NULL ids", "pair 1: rejected ids missing (NULL with length 4)", q.ids[1] = NULL);
    CASE("NULL spans", "pair 1: chosen spans missing (NULL with 1 spans)", q.spans[0] = NULL);
    for (int k = 0; k < nc; k++) {
        check(rec_writer_add(w, &cases[k].p, err, sizeof err) == -1, "%s refused", cases[k].what);
        snprintf(want, sizeof want, "%s: %s", path, cases[k].msg);
        check_msg(err, want, cases[k].what);
    }
    q = g;
    q.spans[0] = sp_empty;
    q.nspans[0] = 2;
    check(rec_writer_add(w, &q, err, sizeof err) == 0, "an empty span before a span is accepted: %s", err);
    check(rec_writer_add(w, &g, err, sizeof err) == 0, "the writer is still usable after refusals: %s", err);
    check(rec_writer_close(w, err, sizeof err) == 0, "close: %s", err);
    RecReader *r = rec_open(path, err, sizeof err);
    check(r && rec_header(r)->npairs == 3, "only the accepted pairs are in the file");
    RecPair got;
    char why[128];
    TPair with_empty;
    tpair_make(&with_empty, 2, pr, 3, tc, 2, tr, 2, sp_empty, 1, sr, 0, 0, 0);
    check(r && !rec_get(r, 0, &got, err, sizeof err) && tpair_same(&got, &good, why, sizeof why), "pair 0");
    check(r && !rec_get(r, 1, &got, err, sizeof err) && tpair_same(&got, &with_empty, why, sizeof why), "pair 1");
    check(r && !rec_get(r, 2, &got, err, sizeof err) && tpair_same(&got, &good, why, sizeof why), "pair 2");
    rec_close(r);

    /* with reference log-probs: they must be there and finite */
    h.has_ref = 1;
    h.ref_weights_hash = 7;
    w = rec_writer_open(path, &h, err, sizeof err);
    q = g;
    check(w && rec_writer_add(w, &q, err, sizeof err) == -1, "a pair without ref refused");
    snprintf(want, sizeof want, "%s: pair 0: has no reference log-probs but the file has them", path);
    check_msg(err, want, "missing ref");
    q.has_ref = 1;
    q.ref_logps[0] = -3.5f;
    q.ref_logps[1] = 1.0f / 0.0f;
    check(w && rec_writer_add(w, &q, err, sizeof err) == -1, "an infinite ref refused");
    snprintf(want, sizeof want, "%s: pair 0: rejected reference log-prob inf is not finite", path);
    check_msg(err, want, "infinite ref");
    q.ref_logps[1] = -0.0f;
    check(w && rec_writer_add(w, &q, err, sizeof err) == 0, "finite refs accepted: %s", err);
    check(w && rec_writer_close(w, err, sizeof err) == 0, "close: %s", err);
    r = rec_open(path, err, sizeof err);
    check(r && !rec_get(r, 0, &got, err, sizeof err) && got.has_ref && got.ref_logps[0] == -3.5f &&
              got.ref_logps[1] == 0.0f && signbit(got.ref_logps[1]),
          "ref log-probs read back bit for bit (-0.0 included)");
    rec_close(r);
    tpair_free(&good);
    tpair_free(&with_empty);
}

/* ---- temporary files ------------------------------------------------------ */

static void put_pairs(RecWriter *w, const TPair *p, size_t n) {
    char err[512];
    for (size_t i = 0; i < n; i++) {
        RecPair v = tpair_view(&p[i]);
        if (rec_writer_add(w, &v, err, sizeof err)) {
            check(0, "add: %s", err);
            return;
        }
    }
}

static void group_tempfile(void) {
    char err[512];
    TPairOpts o = {30, 60, 1000, 0, 2};
    size_t n = 300;
    TPair *p = random_pairs(n, 11, &o);
    RecHeader h = hdr_base;
    const char *path = tpath("t.rec"), *tmp = tpath("t.rec.tmp");

    /* while writing, PATH does not exist yet; abort leaves nothing */
    RecWriter *w = rec_writer_open(path, &h, err, sizeof err);
    put_pairs(w, p, n);
    check(path_exists(tmp) && !path_exists(path), "while writing only PATH.tmp exists");
    rec_writer_abort(w);
    check(!path_exists(tmp) && !path_exists(path), "abort leaves neither PATH nor PATH.tmp");
    rec_writer_abort(NULL);

    /* an existing PATH survives an abort, byte for byte */
    write_pairs(path, &h, p, 10, 0);
    size_t n0, n1;
    uint8_t *before = read_file(path, &n0), *after;
    w = rec_writer_open(path, &h, err, sizeof err);
    put_pairs(w, p, n);
    rec_writer_abort(w);
    after = read_file(path, &n1);
    check(before && after && n0 == n1 && !memcmp(before, after, n0) && !path_exists(tmp),
          "abort leaves the old PATH untouched");
    free(after);

    /* a write that fails in close (file size limit) leaves the old PATH and no temporary */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    w = rec_writer_open(path, &h, err, sizeof err);
    put_pairs(w, p, 20); /* stays in the first block: nothing written but the placeholder */
    struct rlimit lim = old;
    lim.rlim_cur = 200;
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = rec_writer_close(w, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    char want[700];
    snprintf(want, sizeof want, "%s: write failed: %s", tmp, strerror(EFBIG));
    check(rc == -1, "close past the file size limit fails");
    check_msg(err, want, "failed close");
    after = read_file(path, &n1);
    check(after && n0 == n1 && !memcmp(before, after, n0), "failed close leaves the old PATH untouched");
    check(!path_exists(tmp), "failed close removes PATH.tmp");
    free(after);

    /* a write that fails in add: every later call fails, close cleans up */
    w = rec_writer_open(path, &h, err, sizeof err);
    rec_writer_set_block_target(w, 256);
    lim.rlim_cur = 1000;
    setrlimit(RLIMIT_FSIZE, &lim);
    int failed_at = -1;
    for (size_t i = 0; i < n && failed_at < 0; i++) {
        RecPair v = tpair_view(&p[i]);
        if (rec_writer_add(w, &v, err, sizeof err)) failed_at = (int)i;
    }
    setrlimit(RLIMIT_FSIZE, &old);
    check(failed_at > 0, "add fails once the limit is reached (at pair %d)", failed_at);
    check_msg(err, want, "failed add");
    RecPair v = tpair_view(&p[0]);
    check(rec_writer_add(w, &v, err, sizeof err) == -1, "add after a failure fails too");
    check_msg(err, want, "add after failure repeats the first error");
    check(rec_writer_close(w, err, sizeof err) == -1, "close after a failure fails");
    check_msg(err, want, "close after failure repeats the first error");
    after = read_file(path, &n1);
    check(after && n0 == n1 && !memcmp(before, after, n0) && !path_exists(tmp), "failed add: old PATH untouched, no tmp");
    free(after);
    signal(SIGXFSZ, oldsig);

    /* rename fails: PATH is a non-empty directory */
    const char *dirpath = tpath("d.rec");
    mkdir(dirpath, 0755);
    write_file(tpath("d.rec/x"), "x", 1);
    w = rec_writer_open(dirpath, &h, err, sizeof err);
    put_pairs(w, p, 5);
    check(rec_writer_close(w, err, sizeof err) == -1, "close onto a directory fails");
    snprintf(want, sizeof want, "%s: rename from %s.tmp failed: %s", dirpath, dirpath, strerror(EISDIR));
    check_msg(err, want, "rename failure");
    check(!path_exists(tpath("d.rec.tmp")) && path_exists(tpath("d.rec/x")), "rename failure: no tmp, directory kept");

    /* the temporary cannot be created */
    const char *nodir = tpath("missing/x.rec");
    check(!rec_writer_open(nodir, &h, err, sizeof err), "open in a missing directory fails");
    snprintf(want, sizeof want, "%s.tmp: cannot create: %s", nodir, strerror(ENOENT));
    check_msg(err, want, "cannot create");

    /* a stale PATH.tmp from a crash is replaced */
    write_file(tmp, "stale stale stale", 17);
    write_pairs(path, &h, p, n, 0);
    check(!path_exists(tmp), "stale PATH.tmp gone after a good write");
    read_back(path, &h, p, n, "written over a stale tmp");

    /* rec_open: missing file, directory, empty file */
    check(!rec_open(tpath("nope.rec"), err, sizeof err), "missing file");
    snprintf(want, sizeof want, "%s: cannot open: %s", tpath("nope.rec"), strerror(ENOENT));
    check_msg(err, want, "missing file");
    check(!rec_open(dirpath, err, sizeof err), "directory");
    snprintf(want, sizeof want, "%s: not a regular file", dirpath);
    check_msg(err, want, "directory");
    write_file(tpath("empty.rec"), "", 0);
    check(!rec_open(tpath("empty.rec"), err, sizeof err), "empty file");
    snprintf(want, sizeof want, "%s: truncated header (0 bytes, need 112)", tpath("empty.rec"));
    check_msg(err, want, "empty file");
    free(before);
    free_pairs(p, n);
}

static const struct {
    const char *name;
    void (*fn)(void);
} groups[] = {
    {"crc", group_crc},         {"roundtrip", group_roundtrip},     {"random", group_random},
    {"determinism", group_determinism}, {"writer", group_writer},   {"tempfile", group_tempfile},
    {"header", group_header},   {"build", group_build},             {"corrupt", group_corrupt},
    {"craft", group_craft},
};

/* every DIR/ *.rec reads back fully, and every seed is below 4 KiB */
static int seeds_check(const char *dir) {
    DIR *d = opendir(dir);
    check(d != NULL, "open %s", dir);
    struct dirent *e;
    int nrec = 0;
    char path[1024], err[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        check(stat(path, &st) == 0 && st.st_size < 4096, "%s is below 4 KiB", e->d_name);
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".rec")) continue;
        nrec++;
        RecReader *r = rec_open(path, err, sizeof err);
        check(r != NULL, "%s", r ? "" : err);
        for (uint64_t i = 0; r && i < rec_header(r)->npairs; i++) {
            RecPair p;
            check(rec_get(r, i, &p, err, sizeof err) == 0, "%s record %llu: %s", e->d_name, (unsigned long long)i, err);
        }
        rec_close(r);
    }
    if (d) closedir(d);
    check(nrec >= 3, "at least 3 .rec seeds (%d)", nrec);
    printf("seeds: %d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "corpus")) return corpus_write(argv[2]) ? 1 : 0;
    if (argc == 3 && !strcmp(argv[1], "seeds")) return seeds_check(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: test_rec GROUP | test_rec corpus DIR\n");
        return 2;
    }
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        if (!strcmp(argv[1], groups[g].name)) {
            tdir_init();
            groups[g].fn();
            tdir_cleanup();
            printf("%s: %d passed, %d failed\n", argv[1], t_passed, t_failed);
            return t_failed ? 1 : 0;
        }
    fprintf(stderr, "test_rec: unknown group %s\n", argv[1]);
    return 2;
}
