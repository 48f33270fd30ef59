/* test_rec_bytes.c — the .rec bytes: CRC vectors, the layout written by
 * hand, the writer against an independent builder, corruption of every
 * byte and every truncation, and hand-made files that are wrong in one way
 * each (with valid checksums, so the check behind the checksums is the one
 * that fires), every one with its exact message.
 *
 * Expected bytes come from docs/rec-format.md: the header of the tiny files
 * below is spelled out byte by byte; only CRCs (from tcrc, itself checked
 * against the published RFC 3720 vectors) and the zstd frame (from libzstd,
 * decompressed and compared with hand-written record bytes) are computed.
 */
#include "rec_testlib.h"
#include "runtime/rec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

void group_crc(void);
void group_header(void);
void group_build(void);
void group_corrupt(void);
void group_craft(void);

/* ---- crc ---------------------------------------------------------------------- */

void group_crc(void) {
    uint8_t zeros[32] = {0}, ones[32], inc[32], dec[32];
    for (int i = 0; i < 32; i++) ones[i] = 0xff, inc[i] = (uint8_t)i, dec[i] = (uint8_t)(31 - i);
    struct {
        const void *d;
        size_t n;
        uint32_t want;
        const char *what;
    } v[] = {
        {"123456789", 9, 0xe3069283u, "\"123456789\""},
        {zeros, 32, 0x8a9136aau, "32 zero bytes (RFC 3720 B.4)"},
        {ones, 32, 0x62a8ab43u, "32 0xff bytes (RFC 3720 B.4)"},
        {inc, 32, 0x46dd794eu, "0x00..0x1f (RFC 3720 B.4)"},
        {dec, 32, 0x113fdb5cu, "0x1f..0x00 (RFC 3720 B.4)"},
        {"", 0, 0, "no bytes"},
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        check(rec_crc32c(0, v[k].d, v[k].n) == v[k].want, "rec_crc32c of %s: %08x", v[k].what,
              rec_crc32c(0, v[k].d, v[k].n));
        check(tcrc(v[k].d, v[k].n) == v[k].want, "tcrc of %s: %08x", v[k].what, tcrc(v[k].d, v[k].n));
    }
    /* the table method equals the bit method at every length and alignment, and chains */
    uint8_t buf[520];
    uint64_t rng = 1;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rng_next(&rng);
    int bad = 0;
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 512; n++) {
            uint32_t want = tcrc(buf + off, n);
            size_t cut = n / 3;
            if (rec_crc32c(0, buf + off, n) != want ||
                rec_crc32c(rec_crc32c(0, buf + off, cut), buf + off + cut, n - cut) != want)
                bad++;
        }
    check(bad == 0, "rec_crc32c = bitwise CRC at 8 alignments x 513 lengths, chained too (%d bad)", bad);
}

/* ---- hand-written layout ------------------------------------------------------- */

static void group_header_empty(void) {
    /* zero pairs, with has_ref: the header alone */
    uint8_t want[112] = {
        0x44, 0x50, 0x4f, 0x43, 0x52, 0x45, 0x43, 0x00, /* magic */
        0x01, 0x00, 0x00, 0x00,                         /* version 1 */
        0x01, 0x00, 0x00, 0x00,                         /* flags: has_ref */
        0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, /* tok_hash 0x0123456789abcdef */
        'c', 'h', 'a', 't', 'm', 'l', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* template, 32 bytes */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x04, 0x00, 0x00,                         /* max_length 1024 */
        0x3e, 0x50, 0x02, 0x00,                         /* vocab_size 151614 = 0x2503e */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* npairs 0 */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* ntokens 0 */
        0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, /* ref_weights_hash */
        0x70, 0, 0, 0, 0, 0, 0, 0,                      /* index_offset 112 */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* nblocks 0 */
        0, 0, 0, 0,                                     /* index_crc: CRC of no bytes */
        0, 0, 0, 0,                                     /* header_crc, set below */
    };
    tset32(want + 108, tcrc(want, 108));
    RecHeader h = {.tok_hash = 0x0123456789abcdefull, .template_name = "chatml", .max_length = 1024,
                   .vocab_size = 151614, .has_ref = 1, .ref_weights_hash = 0xfedcba9876543210ull};
    char err[512];
    const char *path = tpath("empty.rec");
    RecWriter *w = rec_writer_open(path, &h, err, sizeof err);
    check(w && rec_writer_close(w, err, sizeof err) == 0, "write an empty file: %s", err);
    size_t n = 0;
    uint8_t *got = read_file(path, &n);
    check(got && n == 112 && !memcmp(got, want, 112), "zero-pair file = the 112 hand-written bytes (%zu bytes)", n);
    RecReader *r = rec_open(path, err, sizeof err);
    check(r && rec_header(r)->npairs == 0 && rec_header(r)->vocab_size == 151614 && rec_header(r)->has_ref,
          "zero-pair file opens: %s", r ? "" : err);
    rec_close(r);
    free(got);
}

static void group_header_one(int has_ref) {
    /* one pair: prompt [1 2], chosen [1 2 | 3], rejected [1 2 | 4 5], spans [2,3) and [2,4) */
    uint8_t raw[72] = {
        0, 0, 0, 0,             /* flags (has_ref patched below) */
        2, 0, 0, 0,             /* prompt_len */
        3, 0, 0, 0,             /* len chosen */
        4, 0, 0, 0,             /* len rejected */
        1, 0, 0, 0,             /* nspans chosen */
        1, 0, 0, 0,             /* nspans rejected */
    };
    size_t at = 24;
    if (has_ref) {
        raw[0] = 1;
        uint8_t ref[8] = {0x00, 0x00, 0xc0, 0xbf, 0x00, 0x00, 0x80, 0xbe}; /* -1.5f, -0.25f */
        memcpy(raw + at, ref, 8);
        at += 8;
    }
    uint8_t rest[36] = {1, 0, 0, 0, 2, 0, 0, 0, /* prompt ids */
                        3, 0, 0, 0,             /* chosen tail */
                        4, 0, 0, 0, 5, 0, 0, 0, /* rejected tail */
                        2, 0, 0, 0, 3, 0, 0, 0, /* chosen span [2,3) */
                        2, 0, 0, 0, 4, 0, 0, 0}; /* rejected span [2,4) */
    memcpy(raw + at, rest, 36);
    at += 36;
    tset32(raw + at, tcrc(raw, at));
    size_t rsize = at + 4; /* 64, or 72 with ref */

    int32_t pr[2] = {1, 2}, tc[1] = {3}, tr[2] = {4, 5};
    RecSpan sc[1] = {{2, 3}}, sr[1] = {{2, 4}};
    TPair p;
    tpair_make(&p, 2, pr, 1, tc, 2, tr, 1, sc, 1, sr, has_ref, -1.5f, -0.25f);
    RecHeader h = {.template_name = "none", .vocab_size = 6, .has_ref = has_ref, .ref_weights_hash = has_ref ? 77 : 0};
    char err[512];
    const char *path = tpath("one.rec");
    RecWriter *w = rec_writer_open(path, &h, err, sizeof err);
    RecPair v = tpair_view(&p);
    check(w && !rec_writer_add(w, &v, err, sizeof err) && !rec_writer_close(w, err, sizeof err), "write: %s", err);
    size_t n = 0;
    uint8_t *f = read_file(path, &n);
    if (!f || n < 112 + 40) {
        check(0, "one-pair file too short (%zu)", n);
        free(f);
        tpair_free(&p);
        return;
    }
    uint64_t io = tle64(f + 88);
    size_t cs = (size_t)io - 112;
    check(io > 112 && io + 40 == n, "index_offset %llu and size %zu: one block then one entry", (unsigned long long)io, n);
    /* the frame decompresses to the hand-written record, and is what libzstd makes at level 3 */
    uint8_t out[128];
    size_t dn = ZSTD_decompress(out, sizeof out, f + 112, cs);
    check(!ZSTD_isError(dn) && dn == rsize && !memcmp(out, raw, rsize), "the block holds the hand-written record");
    uint8_t cbuf[256];
    size_t cn = ZSTD_compress(cbuf, sizeof cbuf, raw, rsize, 3);
    check(cn == cs && !memcmp(cbuf, f + 112, cs), "the frame is libzstd's level-3 frame of the record");
    /* the rest of the file by hand */
    TBuf want = {0};
    uint8_t head[24] = {0x44, 0x50, 0x4f, 0x43, 0x52, 0x45, 0x43, 0x00, 1, 0, 0, 0, (uint8_t)has_ref, 0, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0}; /* magic, version, flags, tok_hash 0 */
    tb_bytes(&want, head, 24);
    uint8_t tmpl[32] = {'n', 'o', 'n', 'e'};
    tb_bytes(&want, tmpl, 32);
    uint8_t mid[32] = {0, 0, 0, 0,                /* max_length 0 */
                       6, 0, 0, 0,                /* vocab_size 6 */
                       1, 0, 0, 0, 0, 0, 0, 0,    /* npairs 1 */
                       7, 0, 0, 0, 0, 0, 0, 0,    /* ntokens 3 + 4 */
                       (uint8_t)(has_ref ? 77 : 0), 0, 0, 0, 0, 0, 0, 0}; /* ref_weights_hash */
    tb_bytes(&want, mid, 32);
    tb_u64(&want, 112 + cs); /* index_offset */
    uint8_t nb[8] = {1};
    tb_bytes(&want, nb, 8);
    uint8_t idx[40] = {0x70, 0, 0, 0, 0, 0, 0, 0, /* offset 112 */
                       0, 0, 0, 0, 0, 0, 0, 0,    /* first record 0 */
                       1, 0, 0, 0,                /* nrecords */
                       0, 0, 0, 0,                /* csize, below */
                       (uint8_t)rsize, 0, 0, 0,   /* rsize */
                       0, 0, 0, 0,                /* crc, below */
                       7, 0, 0, 0, 0, 0, 0, 0};   /* ntokens */
    tset32(idx + 20, (uint32_t)cs);
    tset32(idx + 28, tcrc(f + 112, cs));
    tb_u32(&want, tcrc(idx, 40));      /* index_crc */
    tb_u32(&want, tcrc(want.p, 108)); /* header_crc */
    tb_bytes(&want, f + 112, cs);
    tb_bytes(&want, idx, 40);
    check(want.n == n && !memcmp(want.p, f, n), "one-pair file%s = hand-written header and index",
          has_ref ? " with ref" : "");
    RecReader *r = rec_open(path, err, sizeof err);
    RecPair got;
    char why[128] = "";
    check(r && !rec_get(r, 0, &got, err, sizeof err) && tpair_same(&got, &p, why, sizeof why), "reads back: %s %s",
          err, why);
    rec_close(r);
    tb_free(&want);
    free(f);
    tpair_free(&p);
}

void group_header(void) {
    group_header_empty();
    group_header_one(0);
    group_header_one(1);
}

/* ---- the writer against the independent builder -------------------------------- */

void group_build(void) {
    struct {
        size_t n, target;
        TPairOpts o;
    } cases[] = {
        {0, 0, {4, 4, 10, 0, 1}},          {1, 0, {4, 4, 10, 0, 1}},         {700, 0, {100, 200, 5000, 1, 3}},
        {500, 1000, {30, 40, 300, 0, 2}}, {200, 28, {3, 3, 7, 1, 2}},        {300, 5000, {0, 50, 100000, 1, 4}},
        {4, 0, {60000, 40000, 65536, 0, 2}},      {10, 80, {0, 0, 9, 0, 0}}, /* 28-byte records */
        {10, 84, {0, 0, 9, 0, 0}},
    };
    char err[512];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = cases[c].n, target = cases[c].target ? cases[c].target : 131072;
        TPair *p = calloc(n + 1, sizeof *p);
        uint64_t rng = 1000 + c;
        for (size_t i = 0; i < n; i++) tpair_random(&p[i], &rng, &cases[c].o);
        RecHeader h = {.tok_hash = rng_next(&rng), .template_name = "internlm2", .max_length = 0,
                       .vocab_size = cases[c].o.vocab, .has_ref = cases[c].o.has_ref,
                       .ref_weights_hash = cases[c].o.has_ref ? rng_next(&rng) : 0};
        const char *path = tpath("b.rec");
        RecWriter *w = rec_writer_open(path, &h, err, sizeof err);
        if (cases[c].target) rec_writer_set_block_target(w, cases[c].target);
        int ok = w != NULL;
        uint64_t ntok = 0;
        for (size_t i = 0; ok && i < n; i++) {
            RecPair v = tpair_view(&p[i]);
            ok = rec_writer_add(w, &v, err, sizeof err) == 0;
            ntok += (uint64_t)p[i].len[0] + p[i].len[1];
        }
        ok = ok && rec_writer_close(w, err, sizeof err) == 0;
        check(ok, "case %zu: write: %s", c, err);
        size_t nb = 0, fn = 0;
        TBlock *blocks = tsplit(p, n, target, &nb);
        THdr th = {.version = 1, .flags = (uint32_t)h.has_ref, .tok_hash = h.tok_hash, .tmpl = "internlm2",
                   .vocab = h.vocab_size, .npairs = n, .ntokens = ntok, .refhash = h.ref_weights_hash};
        TBuf want = tbuild(&th, blocks, nb, 3);
        uint8_t *got = read_file(path, &fn);
        check(got && fn == want.n && !memcmp(got, want.p, fn),
              "case %zu (%zu pairs, %zu blocks, target %zu): writer = independent builder (%zu vs %zu bytes)", c, n,
              nb, target, fn, want.n);
        free(got);
        tb_free(&want);
        tblocks_free(blocks, nb);
        for (size_t i = 0; i < n; i++) tpair_free(&p[i]);
        free(p);
    }
}

/* ---- every byte, every length ------------------------------------------------- */

/* opens an image and reads every record; 0 if all fine, else -1 with err */
static int read_image(const uint8_t *d, size_t n, unsigned flags, char *err, size_t errlen) {
    RecReader *r = rec_open_mem(d, n, "t.rec", flags, err, errlen);
    if (!r) return -1;
    int rc = 0;
    for (uint64_t i = 0; i < rec_header(r)->npairs && rc == 0; i++) {
        RecPair p;
        rc = rec_get(r, i, &p, err, errlen);
    }
    rec_close(r);
    return rc;
}

static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

void group_corrupt(void) {
    TPairOpts o = {4, 5, 40, 1, 2};
    size_t np = 7;
    TPair p[7];
    uint64_t rng = 77;
    for (size_t i = 0; i < np; i++) tpair_random(&p[i], &rng, &o);
    RecHeader h = {.tok_hash = 5, .template_name = "llama3", .max_length = 64, .vocab_size = 40, .has_ref = 1,
                   .ref_weights_hash = 6};
    char err[512];
    const char *path = tpath("c.rec");
    RecWriter *w = rec_writer_open(path, &h, err, sizeof err);
    rec_writer_set_block_target(w, 150);
    for (size_t i = 0; i < np; i++) {
        RecPair v = tpair_view(&p[i]);
        rec_writer_add(w, &v, err, sizeof err);
    }
    check(rec_writer_close(w, err, sizeof err) == 0, "write: %s", err);
    size_t n = 0;
    uint8_t *f = read_file(path, &n);
    if (!f) return;
    uint64_t io = tle64(f + 88), nb = tle64(f + 96);
    check(nb >= 3 && n < 4096, "a small file of several blocks (%zu bytes, %llu blocks)", n, (unsigned long long)nb);
    check(read_image(f, n, 0, err, sizeof err) == 0, "the intact file reads: %s", err);

    uint8_t *g = malloc(n + 64);
    static const uint8_t masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff, 0x5a};
    int missed = 0, wrong_msg = 0, named_record = 0, block_flips = 0, unchecked_ok = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < sizeof masks; m++) {
            memcpy(g, f, n);
            g[i] ^= masks[m];
            err[0] = 0;
            if (read_image(g, n, 0, err, sizeof err) == 0) {
                if (missed++ < 5) check(0, "flip of byte %zu by 0x%02x not detected", i, masks[m]);
                continue;
            }
            int ok;
            if (i < 8)
                ok = !strcmp(err, "t.rec: not a .rec file (bad magic)");
            else if (i < 12)
                ok = starts(err, "t.rec: .rec version ");
            else if (i < 112)
                ok = !strcmp(err, "t.rec: header checksum mismatch (the header is corrupt)");
            else if (i < io) {
                block_flips++;
                ok = strstr(err, "checksum mismatch") && (starts(err, "t.rec: record ") || starts(err, "t.rec: block "));
                named_record += starts(err, "t.rec: record ");
            } else
                ok = !strcmp(err, "t.rec: index checksum mismatch (the index is corrupt)");
            if (!ok && wrong_msg++ < 5) check(0, "flip of byte %zu by 0x%02x: unexpected message \"%s\"", i, masks[m], err);
            /* the same damage with checksums off: no crash, and any failure has a message */
            err[0] = 0;
            if (read_image(g, n, REC_OPEN_NO_CHECKSUMS, err, sizeof err) == 0)
                unchecked_ok++;
            else if (!starts(err, "t.rec: ") && wrong_msg++ < 5)
                check(0, "unchecked flip of byte %zu: message \"%s\"", i, err);
        }
    check(missed == 0, "every flip of every byte (%zu bytes x %zu masks) is detected", n, sizeof masks);
    check(wrong_msg == 0, "every flip gets the message of its region");
    check(named_record > 0, "flips inside blocks name the record when the frame still decodes (%d of %d)",
          named_record, block_flips);
    printf("corrupt: %d of %d block flips named a record; %d flips read without checksums\n", named_record,
           block_flips, unchecked_ok);

    /* some of them through a real file too */
    int file_missed = 0;
    for (size_t i = 0; i < n; i += 13) {
        memcpy(g, f, n);
        g[i] ^= 0x20;
        write_file(path, g, n);
        RecReader *r = rec_open(path, err, sizeof err);
        int rc = r ? 0 : -1;
        for (uint64_t k = 0; r && rc == 0 && k < rec_header(r)->npairs; k++) {
            RecPair q;
            rc = rec_get(r, k, &q, err, sizeof err);
        }
        rec_close(r);
        file_missed += rc == 0;
    }
    check(file_missed == 0, "flips in a file on disk are detected through rec_open");

    /* every truncation, and anything appended */
    int trunc_bad = 0;
    char want[512];
    for (size_t len = 0; len < n; len++) {
        if (len < 112)
            snprintf(want, sizeof want, "t.rec: truncated header (%zu bytes, need 112)", len);
        else
            snprintf(want, sizeof want,
                     "t.rec: file size %zu does not match the header (an index of %llu blocks at offset %llu): "
                     "truncated or extended",
                     len, (unsigned long long)nb, (unsigned long long)io);
        int rc = read_image(f, len, 0, err, sizeof err);
        if ((rc == 0 || strcmp(err, want)) && trunc_bad++ < 5)
            check(0, "truncation to %zu: \"%s\", want \"%s\"", len, rc ? err : "(read fine)", want);
        rc = read_image(f, len, REC_OPEN_NO_CHECKSUMS, err, sizeof err);
        if (rc == 0 && trunc_bad++ < 5) check(0, "truncation to %zu read without checksums", len);
    }
    check(trunc_bad == 0, "every truncation (0..%zu bytes) is refused with its message", n - 1);
    memcpy(g, f, n);
    memset(g + n, 0, 64);
    for (size_t extra = 1; extra <= 64; extra++) {
        snprintf(want, sizeof want,
                 "t.rec: file size %zu does not match the header (an index of %llu blocks at offset %llu): "
                 "truncated or extended",
                 n + extra, (unsigned long long)nb, (unsigned long long)io);
        int rc = read_image(g, n + extra, 0, err, sizeof err);
        if (rc == 0 || strcmp(err, want)) check(0, "%zu bytes appended: \"%s\"", extra, rc ? err : "(read fine)");
    }
    free(g);
    free(f);
    for (size_t i = 0; i < np; i++) tpair_free(&p[i]);
}

/* ---- files wrong in one way, with valid checksums ------------------------------ */

static THdr base_hdr(void) {
    THdr h = {.version = 1, .vocab = 6, .npairs = 1, .ntokens = 7, .tmpl = "none"};
    return h;
}

/* the one pair of group_header: record bytes (64, or 72 with ref) */
static TBuf base_raw(int has_ref, float ref_c) {
    int32_t pr[2] = {1, 2}, tc[1] = {3}, tr[2] = {4, 5};
    RecSpan sc[1] = {{2, 3}}, sr[1] = {{2, 4}};
    TPair p;
    tpair_make(&p, 2, pr, 1, tc, 2, tr, 1, sc, 1, sr, has_ref, ref_c, -1.0f);
    TBuf b = {0};
    tenc_record(&b, &p);
    tpair_free(&p);
    return b;
}

static TBuf file1(const THdr *h, TBuf raw, uint32_t nrec, uint64_t ntok) {
    TBlock b = {.raw = raw, .nrecords = nrec, .ntokens = ntok};
    TBuf f = tbuild(h, &b, 1, 3);
    tb_free(&raw);
    return f;
}

/* a patched record field, resealed */
static TBuf raw_with(size_t off, uint32_t v) {
    TBuf r = base_raw(0, 0);
    tset32(r.p + off, v);
    tseal_record(r.p, r.n);
    return r;
}

/* opens f as "t.rec", reads record rec; the first error must be want
 * (want ending in '*': a prefix). Frees f. */
static void expect(TBuf *f, uint64_t rec, const char *want, const char *what) {
    char err[512] = "";
    RecReader *r = rec_open_mem(f->p, f->n, "t.rec", 0, err, sizeof err);
    if (r) {
        RecPair p;
        if (rec_get(r, rec, &p, err, sizeof err) == 0) snprintf(err, sizeof err, "(no error)");
        rec_close(r);
    }
    size_t wl = strlen(want);
    if (wl && want[wl - 1] == '*')
        check(strncmp(err, want, wl - 1) == 0, "%s:\n   got  \"%s\"\n   want \"%s\"", what, err, want);
    else
        check_msg(err, want, what);
    tb_free(f);
}

static void patch_hdr32(TBuf *f, size_t off, uint32_t v) {
    tset32(f->p + off, v);
    treseal(f->p, f->n);
}

static void patch_idx32(TBuf *f, int k, size_t off, uint32_t v) {
    tset32(f->p + tle64(f->p + 88) + 40 * (size_t)k + off, v);
    treseal(f->p, f->n);
}

static void patch_idx64(TBuf *f, int k, size_t off, uint64_t v) {
    tset64(f->p + tle64(f->p + 88) + 40 * (size_t)k + off, v);
    treseal(f->p, f->n);
}

void group_craft(void) {
    THdr h = base_hdr();
    TBuf f, r;
    char want[512];
    f = file1(&h, base_raw(0, 0), 1, 7);
    expect(&f, 0, "(no error)", "the base file is valid");

    /* record contents (offsets into the 64-byte record: flags 0, P 4, Lc 8, Lr 12, Sc 16, Sr 20,
     * ids 24..43, chosen span 44, rejected span 52, crc 60) */
    f = file1(&h, raw_with(32, 6), 1, 7);
    expect(&f, 0, "t.rec: record 0: chosen id 6 at position 2 outside [0, 6) (block 0 at offset 112)", "id = vocab");
    f = file1(&h, raw_with(24, 0xffffffffu), 1, 7);
    expect(&f, 0, "t.rec: record 0: chosen id -1 at position 0 outside [0, 6) (block 0 at offset 112)", "negative id");
    f = file1(&h, raw_with(48, 4), 1, 7);
    expect(&f, 0, "t.rec: record 0: chosen span 0 [2, 4) not inside [0, 3) or reversed (block 0 at offset 112)",
           "span past the end");
    r = raw_with(52, 3);
    tset32(r.p + 56, 2);
    tseal_record(r.p, r.n);
    f = file1(&h, r, 1, 7);
    expect(&f, 0, "t.rec: record 0: rejected span 0 [3, 2) not inside [0, 4) or reversed (block 0 at offset 112)",
           "reversed span");
    f = file1(&h, raw_with(0, 2), 1, 7);
    expect(&f, 0, "t.rec: record 0: unknown flags 0x2 (block 0 at offset 112)", "unknown record flags");
    f = file1(&h, base_raw(1, -2.0f), 1, 7);
    expect(&f, 0, "t.rec: record 0: has reference log-probs but the file has none (block 0 at offset 112)",
           "ref in a file without");
    THdr hr = h;
    hr.flags = 1;
    hr.refhash = 3;
    f = file1(&hr, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: record 0: has no reference log-probs but the file has them (block 0 at offset 112)",
           "no ref in a file with");
    f = file1(&hr, base_raw(1, 1.0f / 0.0f), 1, 7);
    expect(&f, 0, "t.rec: record 0: chosen reference log-prob inf is not finite (block 0 at offset 112)", "inf ref");
    f = file1(&hr, base_raw(1, -7.25f), 1, 7);
    expect(&f, 0, "(no error)", "a file with ref is valid");
    THdr hm = h;
    hm.max_length = 3;
    f = file1(&hm, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: record 0: rejected length 4 over max_length 3 (block 0 at offset 112)", "over max_length");
    f = file1(&h, raw_with(8, 2000000), 1, 7);
    expect(&f, 0, "t.rec: record 0: chosen length 2000000 over the limit 1048576 (block 0 at offset 112)",
           "length over the limit");
    f = file1(&h, raw_with(4, 5), 1, 7);
    expect(&f, 0, "t.rec: record 0: prompt_len 5 over the chosen length 3 (block 0 at offset 112)", "prompt too long");
    f = file1(&h, raw_with(16, 70000), 1, 7);
    expect(&f, 0, "t.rec: record 0: chosen has 70000 spans (limit 65536) (block 0 at offset 112)", "too many spans");
    f = file1(&h, raw_with(12, 5), 1, 7);
    expect(&f, 0,
           "t.rec: record 0: runs past the end of its block (68 bytes at 0 of 64) (block 0 at offset 112)",
           "record longer than its block");
    r = base_raw(0, 0);
    tb_u32(&r, 0);
    f = file1(&h, r, 1, 7);
    expect(&f, 0, "t.rec: block 0 at offset 112 (records 0..0): 4 bytes after the last record", "bytes after the records");
    THdr h8 = h;
    h8.ntokens = 8;
    f = file1(&h8, base_raw(0, 0), 1, 8);
    expect(&f, 0, "t.rec: block 0 at offset 112 (records 0..0): holds 7 tokens, the index says 8", "block token count");
    THdr h2 = h;
    h2.npairs = 2;
    f = file1(&h2, base_raw(0, 0), 2, 7);
    expect(&f, 0, "t.rec: record 1: runs past the end of its block (block 0 at offset 112)", "one record too many");

    /* checksums: record, block, and the block CRC failing with the record found */
    r = base_raw(0, 0);
    r.p[60] ^= 1;
    f = file1(&h, r, 1, 7);
    expect(&f, 0, "t.rec: record 0: checksum mismatch (block 0 at offset 112)", "record crc");
    f = file1(&h, base_raw(0, 0), 1, 7);
    patch_idx32(&f, 0, 28, tle32(f.p + tle64(f.p + 88) + 28) ^ 0x100);
    expect(&f, 0, "t.rec: block 0 at offset 112 (records 0..0): checksum mismatch", "block crc");
    r = base_raw(0, 0);
    TBuf r2 = base_raw(0, 0);
    r2.p[40] ^= 0x10; /* a rejected id: the record's CRC no longer matches */
    tb_bytes(&r, r2.p, r2.n);
    tb_free(&r2);
    h2.ntokens = 14;
    f = file1(&h2, r, 2, 14);
    patch_idx32(&f, 0, 28, tle32(f.p + tle64(f.p + 88) + 28) ^ 0x100);
    expect(&f, 0, "t.rec: record 1: checksum mismatch (block 0 at offset 112)", "block crc, record 1 damaged");

    /* a damaged length in record 0 derails the walk at record 1: the CRC names record 0 */
    r = base_raw(0, 0);
    for (int k = 0; k < 2; k++) {
        TBuf more = base_raw(0, 0);
        tb_bytes(&r, more.p, more.n);
        tb_free(&more);
    }
    tset32(r.p + 12, 5);
    THdr h3 = h;
    h3.npairs = 3;
    h3.ntokens = 21;
    f = file1(&h3, r, 3, 21);
    patch_idx32(&f, 0, 28, tle32(f.p + tle64(f.p + 88) + 28) ^ 0x100);
    expect(&f, 2, "t.rec: record 0: checksum mismatch (block 0 at offset 112)", "block crc, record 0 length damaged");
    r = base_raw(0, 0);
    for (int k = 0; k < 2; k++) {
        TBuf more = base_raw(0, 0);
        tb_bytes(&r, more.p, more.n);
        tb_free(&more);
    }
    tset32(r.p + 12, 5);
    f = file1(&h3, r, 3, 21);
    expect(&f, 2, "t.rec: record 1: unknown flags 0x2 (block 0 at offset 112)", "record 0 length damaged, block crc valid");

    /* the frame itself */
    f = file1(&h, base_raw(0, 0), 1, 7);
    memcpy(f.p + 112, "XXXX", 4);
    patch_idx32(&f, 0, 28, tcrc(f.p + 112, tle64(f.p + 88) - 112));
    expect(&f, 0, "t.rec: block 0 at offset 112 (records 0..0): zstd: *", "not a zstd frame");
    f = file1(&h, base_raw(0, 0), 1, 7);
    patch_idx32(&f, 0, 24, 65);
    expect(&f, 0, "t.rec: block 0 at offset 112 (records 0..0): decompressed to 64 bytes, the index says 65",
           "raw size one more");
    f = file1(&h, base_raw(0, 0), 1, 7);
    patch_idx32(&f, 0, 24, 63);
    expect(&f, 0, "t.rec: block 0 at offset 112 (records 0..0): zstd: *", "raw size one less");

    /* header */
    f = file1(&h, base_raw(0, 0), 1, 7);
    f.p[0] = 'X';
    expect(&f, 0, "t.rec: not a .rec file (bad magic)", "bad magic");
    f = file1(&h, base_raw(0, 0), 1, 7);
    patch_hdr32(&f, 8, 2);
    expect(&f, 0, "t.rec: .rec version 2 is newer than this reader (version 1): update dpoc", "newer version");
    f = file1(&h, base_raw(0, 0), 1, 7);
    patch_hdr32(&f, 8, 0);
    expect(&f, 0, "t.rec: .rec version 0 is not valid (corrupt header)", "version 0");
    f = file1(&h, base_raw(0, 0), 1, 7);
    f.p[50] ^= 1;
    expect(&f, 0, "t.rec: header checksum mismatch (the header is corrupt)", "header crc");
    f = file1(&h, base_raw(0, 0), 1, 7);
    patch_hdr32(&f, 12, 3);
    expect(&f, 0, "t.rec: header: unknown flags 0x2", "unknown header flags");
    THdr ht = h;
    memset(ht.tmpl, 'a', 32);
    f = file1(&ht, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: template name is not NUL-terminated", "template without NUL");
    memset(ht.tmpl, 0, 32);
    memcpy(ht.tmpl, "a\x01", 2);
    f = file1(&ht, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: template name has a byte that is not printable ASCII", "template byte");
    memcpy(ht.tmpl, "ab\0c", 4);
    f = file1(&ht, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: template name padding is not zero", "template padding");
    hm.max_length = REC_MAX_LEN + 1;
    f = file1(&hm, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: max_length 1048577 over the limit 1048576", "max_length over the limit");
    THdr hv = h;
    hv.vocab = 0;
    f = file1(&hv, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: vocab_size 0 (must be at least 1)", "vocab 0");
    hv.vocab = -3;
    f = file1(&hv, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: vocab_size -3 (must be at least 1)", "vocab negative");
    THdr hh = h;
    hh.refhash = 9;
    f = file1(&hh, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header: reference weights hash set without reference log-probs", "hash without ref");
    f = file1(&h2, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header says 2 pairs, the index holds 1", "npairs");
    f = file1(&h8, base_raw(0, 0), 1, 7);
    expect(&f, 0, "t.rec: header says 8 tokens, the index holds 7", "ntokens");
    f = file1(&h, base_raw(0, 0), 1, 7);
    uint64_t io = tle64(f.p + 88);
    size_t n = f.n;
    tset64(f.p + 88, io + 1);
    treseal(f.p, f.n);
    snprintf(want, sizeof want,
             "t.rec: file size %zu does not match the header (an index of 1 blocks at offset %llu): "
             "truncated or extended",
             n, (unsigned long long)io + 1);
    expect(&f, 0, want, "index offset moved");
    f = file1(&h, base_raw(0, 0), 1, 7);
    tset64(f.p + 96, (uint64_t)1 << 62);
    treseal(f.p, f.n);
    snprintf(want, sizeof want,
             "t.rec: file size %zu does not match the header (an index of 4611686018427387904 blocks at offset "
             "%llu): truncated or extended",
             n, (unsigned long long)io);
    expect(&f, 0, want, "huge block count");
    f = file1(&h, base_raw(0, 0), 1, 7);
    tset64(f.p + 88, 50);
    tset64(f.p + 96, (n - 50) / 40);
    treseal(f.p, f.n);
    snprintf(want, sizeof want, "t.rec: header: index offset 50 inside the header");
    expect(&f, 0, want, "index inside the header");

    /* index entries */
    TBlock two[2] = {{.raw = base_raw(0, 0), .nrecords = 1, .ntokens = 7},
                     {.raw = base_raw(0, 0), .nrecords = 1, .ntokens = 7}};
    THdr hb = h;
    hb.npairs = 2;
    hb.ntokens = 14;
    f = tbuild(&hb, two, 2, 3);
    expect(&f, 1, "(no error)", "a two-block file is valid");
    f = tbuild(&hb, two, 2, 3);
    uint64_t off1 = tle64(f.p + tle64(f.p + 88) + 40);
    patch_idx64(&f, 1, 0, off1 + 1);
    snprintf(want, sizeof want, "t.rec: index: block 1 at offset %llu, expected %llu", (unsigned long long)off1 + 1,
             (unsigned long long)off1);
    expect(&f, 1, want, "block offset");
    f = tbuild(&hb, two, 2, 3);
    patch_idx64(&f, 1, 8, 2);
    expect(&f, 1, "t.rec: index: block 1 starts at record 2, expected 1", "block first record");
    f = tbuild(&hb, two, 2, 3);
    io = tle64(f.p + 88);
    patch_idx32(&f, 1, 20, (uint32_t)(io - off1 - 1));
    snprintf(want, sizeof want, "t.rec: index: the blocks end at offset %llu but the index starts at %llu",
             (unsigned long long)io - 1, (unsigned long long)io);
    expect(&f, 1, want, "blocks short of the index");
    f = tbuild(&hb, two, 2, 3);
    patch_idx32(&f, 1, 20, (uint32_t)(io - off1 + 1));
    snprintf(want, sizeof want, "t.rec: index: block 1 (offset %llu) has compressed size %llu, outside [1, %llu]",
             (unsigned long long)off1, (unsigned long long)(io - off1 + 1), (unsigned long long)(io - off1));
    expect(&f, 1, want, "block over the index");
    f = tbuild(&hb, two, 2, 3);
    patch_idx32(&f, 0, 20, 0);
    snprintf(want, sizeof want, "t.rec: index: block 0 (offset 112) has compressed size 0, outside [1, %llu]",
             (unsigned long long)(io - 112));
    expect(&f, 1, want, "compressed size 0");
    f = tbuild(&hb, two, 2, 3);
    patch_idx32(&f, 0, 24, 20);
    expect(&f, 1, "t.rec: index: block 0 has raw size 20, outside [28, 16777216]", "raw size too small");
    f = tbuild(&hb, two, 2, 3);
    patch_idx32(&f, 0, 24, 16777217);
    expect(&f, 1, "t.rec: index: block 0 has raw size 16777217, outside [28, 16777216]", "raw size too large");
    f = tbuild(&hb, two, 2, 3);
    patch_idx32(&f, 0, 16, 0);
    expect(&f, 1, "t.rec: index: block 0 claims 0 records in 64 bytes", "no records");
    f = tbuild(&hb, two, 2, 3);
    patch_idx32(&f, 0, 16, 3);
    expect(&f, 1, "t.rec: index: block 0 claims 3 records in 64 bytes", "too many records for the size");
    f = tbuild(&hb, two, 2, 3);
    patch_idx64(&f, 0, 32, 33);
    expect(&f, 1, "t.rec: index: block 0 claims 33 tokens in 64 bytes", "too many tokens for the size");
    f = tbuild(&hb, two, 2, 3);
    f.p[tle64(f.p + 88) + 5] ^= 1;
    expect(&f, 1, "t.rec: index checksum mismatch (the index is corrupt)", "index crc");
    tb_free(&two[0].raw);
    tb_free(&two[1].raw);
}
