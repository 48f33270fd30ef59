/* test_rec_corpus.c — `test_rec corpus DIR`: the seed corpus of
 * tests/fuzz/fuzz_rec.c, written with the real writer.
 *
 * Whole .rec files (no pairs; one pair; pairs with reference log-probs in
 * several blocks; pairs with empty, zero and position-0 spans; a file with
 * max_length and a computed vocab_size), and "RECRAWB1" seeds holding the
 * raw block of some of them (see fuzz_rec.c for that layout). Every seed is
 * below 4 KiB. The output is deterministic: rerunning it rewrites the same
 * bytes, so the committed corpus can be checked against it.
 */
#include "rec_testlib.h"
#include "runtime/rec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static int write_rec(const char *path, const RecHeader *h, size_t target, const TPair *p, size_t n) {
    char err[512];
    RecWriter *w = rec_writer_open(path, h, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (target) rec_writer_set_block_target(w, target);
    for (size_t i = 0; i < n; i++) {
        RecPair v = tpair_view(&p[i]);
        if (rec_writer_add(w, &v, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            rec_writer_abort(w);
            return -1;
        }
    }
    if (rec_writer_close(w, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

/* A RECRAWB1 seed from the first block of the .rec at src. */
static int write_raw(const char *src, const char *dst) {
    size_t n = 0;
    uint8_t *f = read_file(src, &n);
    if (!f || n < 112 + 40 || tle64(f + 96) == 0) {
        free(f);
        return -1;
    }
    const uint8_t *e = f + tle64(f + 88);
    uint32_t cs = tle32(e + 20), rs = tle32(e + 24);
    TBuf out = {0};
    tb_bytes(&out, "RECRAWB1", 8);
    tb_u32(&out, tle32(f + 12));  /* flags */
    tb_u32(&out, tle32(f + 60));  /* vocab_size */
    tb_u32(&out, tle32(f + 56));  /* max_length */
    tb_u32(&out, tle32(e + 16));  /* nrecords */
    tb_u64(&out, tle64(e + 32));  /* ntokens */
    uint8_t *raw = malloc(rs);
    size_t dn = ZSTD_decompress(raw, rs, f + tle64(e), cs);
    int rc = -1;
    if (!ZSTD_isError(dn) && dn == rs) {
        tb_bytes(&out, raw, rs);
        rc = write_file(dst, out.p, out.n);
    }
    free(raw);
    tb_free(&out);
    free(f);
    return rc;
}

static char *join(const char *dir, const char *name) {
    static char buf[4][1024];
    static int next;
    char *b = buf[next++ & 3];
    snprintf(b, 1024, "%s/%s", dir, name);
    return b;
}

int corpus_write(const char *dir) {
    int rc = 0;
    RecHeader h = {.tok_hash = 0x5eed, .template_name = "chatml", .vocab_size = 64};
    TPair p[8];
    uint64_t rng = 2024;

    rc |= write_rec(join(dir, "empty.rec"), &h, 0, NULL, 0);

    TPairOpts o1 = {6, 6, 64, 0, 1};
    tpair_random(&p[0], &rng, &o1);
    rc |= write_rec(join(dir, "one.rec"), &h, 0, p, 1);
    rc |= write_raw(join(dir, "one.rec"), join(dir, "raw_one.bin"));
    tpair_free(&p[0]);

    RecHeader hr = h;
    hr.has_ref = 1;
    hr.ref_weights_hash = 0xabc;
    strcpy(hr.template_name, "internlm2");
    TPairOpts o2 = {5, 8, 64, 1, 2};
    for (int i = 0; i < 6; i++) tpair_random(&p[i], &rng, &o2);
    rc |= write_rec(join(dir, "ref_blocks.rec"), &hr, 120, p, 6);
    rc |= write_raw(join(dir, "ref_blocks.rec"), join(dir, "raw_ref.bin"));
    for (int i = 0; i < 6; i++) tpair_free(&p[i]);

    int32_t pr[3] = {1, 2, 3}, tc[4] = {4, 5, 6, 7}, tr[2] = {8, 9};
    RecSpan sc[3] = {{0, 1}, {3, 3}, {4, 7}}, sr[1] = {{3, 5}};
    tpair_make(&p[0], 3, pr, 4, tc, 2, tr, 3, sc, 1, sr, 0, 0, 0);
    tpair_make(&p[1], 0, NULL, 0, NULL, 3, tr, 0, NULL, 1, (RecSpan[]){{0, 2}}, 0, 0, 0);
    tpair_make(&p[2], 3, pr, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    RecHeader hs = h;
    strcpy(hs.template_name, "none");
    hs.vocab_size = 10;
    rc |= write_rec(join(dir, "spans.rec"), &hs, 0, p, 3);
    rc |= write_raw(join(dir, "spans.rec"), join(dir, "raw_spans.bin"));
    for (int i = 0; i < 3; i++) tpair_free(&p[i]);

    RecHeader hm = h;
    strcpy(hm.template_name, "llama3");
    hm.max_length = 12;
    hm.vocab_size = 0;
    TPairOpts o3 = {4, 8, 1000, 0, 1};
    for (int i = 0; i < 4; i++) tpair_random(&p[i], &rng, &o3);
    rc |= write_rec(join(dir, "maxlen.rec"), &hm, 60, p, 4);
    for (int i = 0; i < 4; i++) tpair_free(&p[i]);
    if (rc) fprintf(stderr, "test_rec corpus: failed\n");
    return rc;
}
