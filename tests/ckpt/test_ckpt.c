/* test_ckpt.c — tests of the checkpoint library (runtime/ckpt.h).
 *
 * Usage: test_ckpt GROUP WORKDIR. Each group counts its checks, prints
 * "N passed, M failed" and exits non-zero on any failure.
 *
 * - xxh64: the checksum against published XXH64 vectors and, for many
 *   lengths and random splits, against the checksum zstd itself stores in a
 *   frame (the low 32 bits of XXH64 of the content): an independent
 *   implementation.
 * - roundtrip: every dtype, a scalar, an empty tensor, sharded dimensions,
 *   MB-sized random and compressible tensors, empty and maximal extra_json,
 *   no tensors at all: state, metadata and bytes read back exactly, through
 *   the file and through the directory; saving twice gives identical bytes.
 * - layout: a tiny checkpoint's header and table against bytes written out
 *   here from docs/ckpt-format.md; its frame decoded with libzstd directly.
 * - flip: every byte of a small checkpoint flipped (two ways): refused, and
 *   the message names the header, the table, or the tensor whose data holds
 *   the byte; sampled flips in a larger one.
 * - truncate: every shorter length refused with "truncated: ..." naming the
 *   header, the table or the tensor cut, with the exact byte ranges.
 * - fields: checksums kept valid (resealed) while one field is wrong: each
 *   is refused with its exact message; replaced frames that decode to the
 *   wrong size, carry trailing data or are not zstd at all.
 * - corpus (not a test): writes the seed corpus of tests/fuzz/fuzz_ckpt.c
 *   into WORKDIR (tests/fuzz/corpus/ckpt/).
 * - dir: keep_last pruning (oldest first, never the latest), `latest` always
 *   naming the newest loadable checkpoint, stale .tmp files ignored and then
 *   removed, bad `latest` files, bad save arguments writing nothing.
 * - meshprune: ckpt_mesh_prune on a sharded directory as killed saves leave
 *   it (a manifest too many, shard directories without a manifest, stale
 *   temporary files): the kept steps, the step being written and files
 *   dpoc did not write survive; everything else goes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "ckpt_content.h"
#include "ckpt_check.h"
#include "runtime/ckpt_internal.h"
#include "runtime/ckpt_mesh.h"


/* ---- helpers ---------------------------------------------------------------- */

static const char *work;

static const char *wpath(const char *name) {
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 4096, "%s/%s", work, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* Writes b to path in place (no truncation to zero first: on ext4 that
 * makes close() wait for the data to reach the disk, slowing the loops that
 * rewrite one file thousands of times). */
static void spit(const char *path, const void *b, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || ckpt_pwrite_all(fd, b, len, 0) != 0 || ftruncate(fd, (off_t)len) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    close(fd);
}

static void rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Opens path and reads every tensor; 0 ok, else -1 with the first error. */
static int load_all(const char *path, char *err, size_t errlen) {
    Ckpt *c = ckpt_open(path, err, errlen);
    if (!c) return -1;
    int rc = 0;
    for (int i = 0; i < ckpt_ntensors(c) && rc == 0; i++) {
        const CkptTensor *t = ckpt_tensor(c, i);
        void *buf = malloc(t->nbytes ? t->nbytes : 1);
        rc = ckpt_read_tensor(c, i, buf, t->nbytes, err, errlen);
        free(buf);
    }
    ckpt_close(c);
    return rc;
}

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* Checks that c holds exactly the content (state, metadata, bytes). */
static void check_content(Ckpt *c, const CkptContent *want, const char *what) {
    const CkptState *s = ckpt_state(c);
    check(s->step == want->st.step && s->epoch == want->st.epoch && s->data_pos == want->st.data_pos &&
              !memcmp(s->rng, want->st.rng, sizeof s->rng) && s->config_hash == want->st.config_hash &&
              s->mesh_dp == want->st.mesh_dp && s->mesh_tp == want->st.mesh_tp && s->rank == want->st.rank &&
              !strcmp(s->extra_json, want->st.extra_json),
          "%s: state differs (step %" PRIu64 " vs %" PRIu64 ")", what, s->step, want->st.step);
    if (!check(ckpt_ntensors(c) == want->n, "%s: %d tensors, wrote %d", what, ckpt_ntensors(c), want->n)) return;
    for (int i = 0; i < want->n; i++) {
        const CkptTensor *w = &want->t[i], *t = ckpt_tensor(c, i);
        check(!strcmp(t->name, w->name) && t->dtype == w->dtype && t->ndim == w->ndim &&
                  !memcmp(t->shape, w->shape, sizeof t->shape) && !memcmp(t->shard, w->shard, sizeof t->shard) &&
                  t->nbytes == w->nbytes && t->data == NULL,
              "%s: tensor %d metadata differs", what, i);
        check(ckpt_find(c, w->name) == i, "%s: ckpt_find('%s') = %d, want %d", what, w->name, ckpt_find(c, w->name), i);
        unsigned char *buf = malloc(w->nbytes + 1);
        char err[512];
        int rc = ckpt_read_tensor(c, i, buf, w->nbytes, err, sizeof err);
        check(rc == 0, "%s: read '%s': %s", what, w->name, rc ? err : "");
        check(rc != 0 || w->nbytes == 0 || !memcmp(buf, w->data, w->nbytes), "%s: '%s' bytes differ", what, w->name);
        rc = ckpt_verify_tensor(c, i, err, sizeof err);
        check(rc == 0, "%s: verify '%s': %s", what, w->name, rc ? err : "");
        free(buf);
    }
    check(ckpt_find(c, "no.such.tensor") == -1, "%s: ckpt_find of a missing name", what);
}

/* ---- xxh64 ------------------------------------------------------------------ */

static void group_xxh64(void) {
    /* published values (xxHash test suites of other projects) */
    static const struct {
        const char *s;
        uint64_t seed, want;
    } vec[] = {
        {"", 0, 0xEF46DB3751D8E999ull},     {"a", 0, 0xD24EC4F1A98C6E5Bull},
        {"ab", 0, 0x65F708CA92D04A61ull},   {"abc", 0, 0x44BC2CF5AD770999ull},
        {"ABC", 0, 0xE66AE7354FCFEE98ull},  {"xxhash", 0, 0x32DD38952C4BC720ull},
        {"foo", 0, 3728699739546630719ull}, {"", 0x1234567890abcdefull, 0xA2F5C44D0F46C872ull},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        uint64_t got = ckpt_xxh64(vec[i].s, strlen(vec[i].s), vec[i].seed);
        check(got == vec[i].want, "xxh64('%s', seed %" PRIx64 ") = %016" PRIx64 ", want %016" PRIx64, vec[i].s,
              vec[i].seed, got, vec[i].want);
    }
    /* zstd's frame checksum: low 32 bits of XXH64(content, 0), stored last */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t maxlen = 3 << 20;
    unsigned char *src = malloc(maxlen), *dst = malloc(ZSTD_compressBound(maxlen));
    uint64_t r = 42;
    for (size_t i = 0; i < maxlen; i++) src[i] = (unsigned char)ckpt_content_rand(&r);
    size_t lens[80];
    int nl = 0;
    for (size_t l = 0; l <= 70; l++) lens[nl++] = l;
    lens[nl++] = 1000, lens[nl++] = 4096 + 13, lens[nl++] = 65536 + 31, lens[nl++] = 1 << 20, lens[nl++] = maxlen - 5;
    for (int k = 0; k < nl; k++) {
        size_t len = lens[k];
        size_t csz = ZSTD_compress2(cc, dst, ZSTD_compressBound(maxlen), src, len);
        if (!check(!ZSTD_isError(csz) && csz >= 4, "zstd compress %zu", len)) continue;
        uint32_t zsum = ckpt_get32(dst + csz - 4);
        uint64_t mine = ckpt_xxh64(src, len, 0);
        check((uint32_t)mine == zsum, "xxh64 of %zu bytes: low 32 bits %08x, zstd's frame checksum %08x", len,
              (unsigned)(uint32_t)mine, (unsigned)zsum);
        /* streaming: random splits give the one-shot value */
        CkptXxh64 s;
        ckpt_xxh64_init(&s, 0);
        for (size_t pos = 0; pos < len;) {
            size_t step = 1 + ckpt_content_rand(&r) % (len < 100 ? 7 : 70000);
            if (step > len - pos) step = len - pos;
            ckpt_xxh64_update(&s, src + pos, step);
            pos += step;
        }
        check(ckpt_xxh64_digest(&s) == mine, "streaming xxh64 of %zu bytes differs from one-shot", len);
    }
    ZSTD_freeCCtx(cc);
    free(src);
    free(dst);
}

/* ---- roundtrip -------------------------------------------------------------- */

static void group_roundtrip(void) {
    char err[512];
    CkptContent c;
    ckpt_content_make(&c, 12, 1);
    c.t[0].shard[1] = CKPT_SHARD_TP; /* a tp-split dimension */
    c.st.mesh_tp = 2;
    c.st.rank = 1;
    /* a large, very compressible tensor next to the random one */
    CkptTensor *z = &c.t[c.n++];
    memset(z, 0, sizeof *z);
    strcpy(z->name, "optimizer.adam_v.model.layers.0.mlp.up_proj.weight");
    z->dtype = CKPT_F32;
    z->ndim = 3;
    z->shape[0] = 16, z->shape[1] = 256, z->shape[2] = 256;
    z->nbytes = 16 * 256 * 256 * 4;
    z->data = malloc(z->nbytes);
    for (size_t i = 0; i < z->nbytes / 4; i++) ((float *)z->data)[i] = (float)(i % 17);
    check(ckpt_save(wpath("rt"), &c.st, c.t, c.n, 0, err, sizeof err) == 0, "save: %s", err);

    Ckpt *k = ckpt_open(wpath("rt/step-00000012.ckpt"), err, sizeof err);
    if (check(k != NULL, "open file: %s", err)) {
        check(!strcmp(ckpt_path(k), wpath("rt/step-00000012.ckpt")), "path %s", ckpt_path(k));
        check_content(k, &c, "file");
        const CkptStored *s = ckpt_stored(k, c.n - 1);
        check(s->csize * 50 < s->rsize, "compressible tensor: %" PRIu64 " -> %" PRIu64 " bytes", s->rsize, s->csize);
        ckpt_close(k);
    }
    k = ckpt_open(wpath("rt"), err, sizeof err);
    if (check(k != NULL, "open dir: %s", err)) {
        check(!strcmp(ckpt_path(k), wpath("rt/step-00000012.ckpt")), "dir path %s", ckpt_path(k));
        check_content(k, &c, "dir");
        char small[4];
        check(ckpt_read_tensor(k, 0, small, sizeof small, err, sizeof err) != 0 &&
                  has(err, "rt/step-00000012.ckpt: tensor 'model.embed_tokens.weight': destination holds 4 bytes, "
                           "the tensor has 24576"),
              "wrong destination size: %s", err);
        check(ckpt_read_tensor(k, 99, small, 4, err, sizeof err) != 0 && has(err, "no tensor 99"), "index 99: %s", err);
        ckpt_close(k);
    }

    /* the same call twice gives the same bytes */
    check(ckpt_save(wpath("rt2"), &c.st, c.t, c.n, 0, err, sizeof err) == 0, "save 2: %s", err);
    size_t la = 0, lb = 0;
    unsigned char *a = slurp(wpath("rt/step-00000012.ckpt"), &la), *b = slurp(wpath("rt2/step-00000012.ckpt"), &lb);
    check(a && b && la == lb && !memcmp(a, b, la), "two saves of the same content differ");
    free(a);
    free(b);

    /* empty and maximal extra_json; no tensors at all */
    c.st.extra_json[0] = 0;
    check(ckpt_save(wpath("rt3"), &c.st, c.t, 3, 0, err, sizeof err) == 0, "save empty extra: %s", err);
    CkptContent three = c;
    three.n = 3;
    if ((k = ckpt_open(wpath("rt3"), err, sizeof err))) {
        check_content(k, &three, "empty extra_json");
        ckpt_close(k);
    } else
        check(0, "open empty extra: %s", err);
    memset(c.st.extra_json, 'x', CKPT_MAX_EXTRA);
    c.st.extra_json[0] = '"', c.st.extra_json[CKPT_MAX_EXTRA - 1] = '"', c.st.extra_json[CKPT_MAX_EXTRA] = 0;
    c.st.step = 13;
    check(ckpt_save(wpath("rt3"), &c.st, c.t, 0, 0, err, sizeof err) == 0, "save no tensors: %s", err);
    three.st = c.st;
    three.n = 0;
    if ((k = ckpt_open(wpath("rt3"), err, sizeof err))) {
        check_content(k, &three, "no tensors, 4095-byte extra_json");
        ckpt_close(k);
    } else
        check(0, "open no tensors: %s", err);
    ckpt_content_free(&c);
}

/* ---- layout ----------------------------------------------------------------- */

static void group_layout(void) {
    char err[512];
    CkptState st = {.step = 5,
                    .epoch = 1,
                    .data_pos = 7,
                    .rng = {1, 2, 3, 4},
                    .config_hash = 0x1122334455667788ull,
                    .mesh_dp = 2,
                    .mesh_tp = 1,
                    .rank = 1};
    strcpy(st.extra_json, "{\"lr\":0.001}");
    float w[2] = {1.0f, -2.0f};
    CkptTensor t = {.name = "w", .dtype = CKPT_F32, .ndim = 1, .shape = {2}, .data = w, .nbytes = 8};
    t.shard[0] = CKPT_SHARD_DP;
    if (!check(ckpt_save(wpath("lay"), &st, &t, 1, 0, err, sizeof err) == 0, "save: %s", err)) return;
    size_t len = 0;
    unsigned char *f = slurp(wpath("lay/step-00000005.ckpt"), &len);
    /* the header (144 bytes) and the table entry (105 bytes), field by field
     * from docs/ckpt-format.md; checksums are patched in below */
    static const unsigned char want_header[144] = {
        'D',  'P',  'O',  'C',  'C',  'K',  'P',  'T', /* magic */
        1,    0,    0,    0,                           /* version */
        12,   0,    0,    0,                           /* extra_json length */
        5,    0,    0,    0,    0,    0,    0,    0,   /* step */
        1,    0,    0,    0,    0,    0,    0,    0,   /* epoch */
        7,    0,    0,    0,    0,    0,    0,    0,   /* data_pos */
        1,    0,    0,    0,    0,    0,    0,    0,    2,   0,   0,   0,   0, 0, 0, 0,
        3,    0,    0,    0,    0,    0,    0,    0,    4,   0,   0,   0,   0, 0, 0, 0, /* rng */
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,                                 /* config_hash */
        2,    0,    0,    0,                                                            /* mesh_dp */
        1,    0,    0,    0,                                                            /* mesh_tp */
        1,    0,    0,    0,                                                            /* rank */
        1,    0,    0,    0,                                                            /* tensors */
        144,  0,    0,    0,    0,    0,    0,    0,                                    /* table offset */
        105,  0,    0,    0,    0,    0,    0,    0,                                    /* table size */
        0,    0,    0,    0,    0,    0,    0,    0,                                    /* table checksum (patched) */
        0,    0,    0,    0,                                                            /* reserved */
        '{',  '"',  'l',  'r',  '"',  ':',  '0',  '.',  '0', '0', '1', '}',             /* extra_json */
        0,    0,    0,    0,    0,    0,    0,    0,                                    /* header checksum (patched) */
    };
    static const unsigned char want_entry[105] = {
        1,   0,                                                                   /* name length */
        0,                                                                        /* dtype f32 */
        1,                                                                        /* ndim */
        1,   0, 0, 0, 0, 0,                                                       /* sharding: dim 0 over dp */
        0,   0, 0, 0, 0, 0,                                                       /* reserved */
        2,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* shape */
        0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        249, 0, 0, 0, 0, 0, 0, 0, /* data offset = 144 + 105 */
        0,   0, 0, 0, 0, 0, 0, 0, /* compressed size (patched) */
        8,   0, 0, 0, 0, 0, 0, 0, /* raw size */
        0,   0, 0, 0, 0, 0, 0, 0, /* raw checksum (patched) */
        0,   0, 0, 0, 0, 0, 0, 0, /* compressed checksum (patched) */
        'w',
    };
    if (!check(len > 249, "file is %zu bytes", len)) {
        free(f);
        return;
    }
    unsigned char want[249];
    memcpy(want, want_header, 144);
    memcpy(want + 144, want_entry, 105);
    const unsigned char raw[8] = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0}; /* 1.0f, -2.0f */
    uint64_t csize = len - 249;
    ckpt_put64(want + 144 + 72, csize);
    ckpt_put64(want + 144 + 88, ckpt_xxh64(raw, 8, 0));
    ckpt_put64(want + 144 + 96, ckpt_xxh64(f + 249, csize, 0));
    ckpt_put64(want + 112, ckpt_xxh64(want + 144, 105, 0));
    ckpt_put64(want + 136, ckpt_xxh64(want, 136, 0));
    for (int i = 0; i < 249; i++)
        if (!check(f[i] == want[i], "byte %d: 0x%02x, want 0x%02x", i, f[i], want[i])) break;
    /* the frame, through libzstd directly */
    unsigned char out[16];
    check(ZSTD_findFrameCompressedSize(f + 249, csize) == csize, "the data is not exactly one zstd frame");
    check(ZSTD_getFrameContentSize(f + 249, csize) == 8, "frame content size is not in the header");
    size_t got = ZSTD_decompress(out, sizeof out, f + 249, csize);
    check(got == 8 && !memcmp(out, raw, 8), "frame decodes to %zu bytes", got);
    size_t ll;
    char *latest = (char *)slurp(wpath("lay/latest"), &ll);
    check(latest && ll == 19 && !memcmp(latest, "step-00000005.ckpt\n", 19), "latest file content");
    free(latest);
    free(f);
}

/* ---- a small checkpoint for the corruption groups ------------------------- */

static const char *small_names[3] = {"model.a", "model.b", "model.c"};

/* Writes the small checkpoint to dir; returns its file path and layout. */
static const char *make_small(const char *dir, uint64_t *hsize, uint64_t *tsize, CkptStored st[3]) {
    static float a[10];
    static int32_t b[24];
    static unsigned char c[40];
    for (int i = 0; i < 10; i++) a[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 24; i++) b[i] = i * i - 7;
    for (int i = 0; i < 40; i++) c[i] = (unsigned char)(i * 37 + 11);
    CkptTensor t[3] = {
        {.dtype = CKPT_F32, .ndim = 1, .shape = {10}, .data = a, .nbytes = sizeof a},
        {.dtype = CKPT_I32, .ndim = 2, .shape = {4, 6}, .data = b, .nbytes = sizeof b},
        {.dtype = CKPT_U8, .ndim = 3, .shape = {2, 4, 5}, .data = c, .nbytes = sizeof c},
    };
    for (int i = 0; i < 3; i++) strcpy(t[i].name, small_names[i]);
    CkptState s = {.step = 20, .mesh_dp = 1, .mesh_tp = 1};
    strcpy(s.extra_json, "{\"opt\":\"adamw\"}");
    char err[512];
    if (ckpt_save(dir, &s, t, 3, 0, err, sizeof err) != 0) {
        fprintf(stderr, "make_small: %s\n", err);
        exit(1);
    }
    static char path[4096];
    snprintf(path, sizeof path, "%s/step-00000020.ckpt", dir);
    Ckpt *k = ckpt_open(path, err, sizeof err);
    if (!k) {
        fprintf(stderr, "make_small: %s\n", err);
        exit(1);
    }
    *hsize = 132 + strlen(s.extra_json);
    *tsize = 0;
    for (int i = 0; i < 3; i++) {
        st[i] = *ckpt_stored(k, i);
        *tsize += 104 + strlen(small_names[i]);
    }
    ckpt_close(k);
    return path;
}

/* ---- flip ------------------------------------------------------------------- */

static void flip_one(const char *path, unsigned char *f, size_t len, size_t pos, unsigned char mask,
                     const char *want_sub) {
    char err[512];
    f[pos] ^= mask;
    spit(path, f, len);
    f[pos] ^= mask;
    int rc = load_all(path, err, sizeof err);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s: ", path);
    check(rc != 0 && !strncmp(err, prefix, strlen(prefix)) && has(err, want_sub),
          "byte %zu ^ 0x%02x: %s (want a message with \"%s\")", pos, mask, rc ? err : "accepted", want_sub);
}

static void group_flip(void) {
    uint64_t hsize, tsize;
    CkptStored st[3];
    const char *path = make_small(wpath("flip"), &hsize, &tsize, st);
    size_t len = 0;
    unsigned char *f = slurp(path, &len);
    check(len == st[2].offset + st[2].csize, "layout: %zu bytes", len);
    int n_before = failed;
    for (size_t pos = 0; pos < len; pos++) {
        char want[64];
        if (pos < hsize)
            strcpy(want, "header");
        else if (pos < hsize + tsize)
            strcpy(want, "tensor table");
        else {
            int k = pos < st[1].offset ? 0 : pos < st[2].offset ? 1 : 2;
            snprintf(want, sizeof want, "tensor '%s'", small_names[k]);
        }
        flip_one(path, f, len, pos, 0x01, want);
        flip_one(path, f, len, pos, 0x80, want);
        if (failed - n_before > 10) break;
    }
    /* exact messages for one byte of each region */
    char err[512];
    f[hsize - 1] ^= 1;
    spit(path, f, len);
    f[hsize - 1] ^= 1;
    check(load_all(path, err, sizeof err) != 0 && has(err, "step-00000020.ckpt: header: checksum mismatch (stored 0x"),
          "header checksum: %s", err);
    f[hsize + 3] ^= 1;
    spit(path, f, len);
    f[hsize + 3] ^= 1;
    check(load_all(path, err, sizeof err) != 0 &&
              has(err, "step-00000020.ckpt: tensor table: checksum mismatch (stored 0x"),
          "table checksum: %s", err);
    f[st[1].offset + 5] ^= 1;
    spit(path, f, len);
    f[st[1].offset + 5] ^= 1;
    check(load_all(path, err, sizeof err) != 0 &&
              has(err, "step-00000020.ckpt: tensor 'model.b': checksum mismatch in the compressed bytes (stored 0x"),
          "data checksum: %s", err);
    f[0] = 'X';
    spit(path, f, len);
    check(load_all(path, err, sizeof err) != 0 &&
              has(err, "step-00000020.ckpt: header: bad magic (not a dpoc checkpoint)"),
          "magic: %s", err);
    free(f);

    /* sampled flips in a larger checkpoint with more tensors */
    CkptContent c;
    ckpt_content_make(&c, 33, 0);
    char e2[512];
    check(ckpt_save(wpath("flip2"), &c.st, c.t, c.n, 0, e2, sizeof e2) == 0, "save: %s", e2);
    const char *p2 = wpath("flip2/step-00000033.ckpt");
    f = slurp(p2, &len);
    Ckpt *k = ckpt_open(p2, e2, sizeof e2);
    uint64_t data0 = ckpt_stored(k, 0)->offset;
    uint64_t r = 7;
    for (int s = 0; s < 300; s++) {
        size_t pos = (size_t)(ckpt_content_rand(&r) % len);
        char want[200];
        if (pos < data0)
            strcpy(want, pos < 132 + strlen(c.st.extra_json) ? "header" : "tensor table");
        else {
            int i = 0;
            while (i + 1 < c.n && pos >= ckpt_stored(k, i + 1)->offset) i++;
            snprintf(want, sizeof want, "tensor '%s'", c.t[i].name);
        }
        flip_one(p2, f, len, pos, (unsigned char)(1u << (s % 8)), want);
    }
    ckpt_close(k);
    free(f);
    ckpt_content_free(&c);
}

/* ---- truncate --------------------------------------------------------------- */

static void group_truncate(void) {
    uint64_t hsize, tsize;
    CkptStored st[3];
    const char *path = make_small(wpath("trunc"), &hsize, &tsize, st);
    size_t len = 0;
    unsigned char *f = slurp(path, &len);
    char err[512], want[600];
    for (size_t l = 0; l < len; l++) {
        spit(path, f, l);
        int rc = load_all(path, err, sizeof err);
        if (l < 132)
            snprintf(want, sizeof want, "%s: truncated: header needs bytes 0..132, file has %zu", path, l);
        else if (l < hsize)
            snprintf(want, sizeof want, "%s: truncated: header needs bytes 0..%" PRIu64 ", file has %zu", path, hsize,
                     l);
        else if (l < hsize + tsize)
            snprintf(want, sizeof want,
                     "%s: truncated: tensor table needs bytes %" PRIu64 "..%" PRIu64 ", file has %zu", path, hsize,
                     hsize + tsize, l);
        else {
            int k = l < st[1].offset ? 0 : l < st[2].offset ? 1 : 2;
            if (l < st[k].offset + st[k].csize && l >= st[k].offset)
                snprintf(want, sizeof want,
                         "%s: truncated: tensor '%s' needs bytes %" PRIu64 "..%" PRIu64 ", file has %zu", path,
                         small_names[k], st[k].offset, st[k].offset + st[k].csize, l);
            else /* l == the start of tensor k's data: the tensor before it is whole, k is cut */
                snprintf(want, sizeof want, "?");
        }
        if (!check(rc != 0 && !strcmp(err, want), "length %zu: %s\n      want %s", l, rc ? err : "accepted", want))
            break;
    }
    /* one byte too many */
    unsigned char *g = malloc(len + 1);
    memcpy(g, f, len);
    g[len] = 0;
    spit(path, g, len + 1);
    snprintf(want, sizeof want, "%s: 1 byte(s) after the end of the last tensor's data", path);
    check(load_all(path, err, sizeof err) != 0 && !strcmp(err, want), "trailing byte: %s", err);
    free(g);
    free(f);

    /* a larger checkpoint cut at sampled lengths */
    CkptContent c;
    ckpt_content_make(&c, 34, 1);
    check(ckpt_save(wpath("trunc2"), &c.st, c.t, c.n, 0, err, sizeof err) == 0, "save: %s", err);
    const char *p2 = wpath("trunc2/step-00000034.ckpt");
    f = slurp(p2, &len);
    uint64_t r = 9;
    for (int s = 0; s < 60; s++) {
        size_t l = s < 20 ? (size_t)s * 37 : (size_t)(ckpt_content_rand(&r) % len);
        spit(p2, f, l);
        check(load_all(p2, err, sizeof err) != 0 && has(err, ": truncated: "), "length %zu of %zu: %s", l, len, err);
    }
    free(f);
    ckpt_content_free(&c);
}

/* ---- fields ----------------------------------------------------------------- */

/* Recomputes the table and header checksums after an edit. */
static void reseal(unsigned char *f) {
    uint32_t elen = ckpt_get32(f + CKPT_H_EXTRA_LEN);
    uint64_t hsize = 132 + elen, tsize = ckpt_get64(f + CKPT_H_TABLE_SIZE);
    ckpt_put64(f + CKPT_H_TABLE_SUM, ckpt_xxh64(f + hsize, tsize, 0));
    ckpt_put64(f + hsize - 8, ckpt_xxh64(f, hsize - 8, 0));
}

typedef struct Edit {
    const char *what;
    void (*apply)(unsigned char *f, uint64_t hsize);
    const char *want; /* the message after "PATH: " */
    int at_read;      /* the error comes from reading the data, not ckpt_open */
} Edit;

#define ENTRY(f, h, k) ((f) + (h) + (k) * (104 + 7)) /* the small checkpoint's names are 7 bytes */
static void e_dtype(unsigned char *f, uint64_t h) { ENTRY(f, h, 1)[CKPT_E_DTYPE] = 9; }
static void e_ndim(unsigned char *f, uint64_t h) { ENTRY(f, h, 1)[CKPT_E_NDIM] = 7; }
static void e_pastdim(unsigned char *f, uint64_t h) { ckpt_put64(ENTRY(f, h, 0) + CKPT_E_SHAPE + 8, 3); }
static void e_negdim(unsigned char *f, uint64_t h) { ckpt_put64(ENTRY(f, h, 1) + CKPT_E_SHAPE, (uint64_t)-4); }
static void e_hugedim(unsigned char *f, uint64_t h) { ckpt_put64(ENTRY(f, h, 2) + CKPT_E_SHAPE, 1ull << 40); }
static void e_shard(unsigned char *f, uint64_t h) { ENTRY(f, h, 2)[CKPT_E_SHARD + 1] = 3; }
static void e_shardpast(unsigned char *f, uint64_t h) { ENTRY(f, h, 0)[CKPT_E_SHARD + 4] = 1; }
static void e_ereserved(unsigned char *f, uint64_t h) { ENTRY(f, h, 0)[CKPT_E_RESERVED + 2] = 1; }
static void e_rsize(unsigned char *f, uint64_t h) { ckpt_put64(ENTRY(f, h, 1) + CKPT_E_RSIZE, 100); }
static void e_dup(unsigned char *f, uint64_t h) { ENTRY(f, h, 2)[CKPT_E_FIXED + 6] = 'a'; }
static void e_ctrl(unsigned char *f, uint64_t h) { ENTRY(f, h, 1)[CKPT_E_FIXED + 5] = '\n'; }
static void e_namelen0(unsigned char *f, uint64_t h) { ckpt_put16(ENTRY(f, h, 0), 0); }
static void e_namelong(unsigned char *f, uint64_t h) { ckpt_put16(ENTRY(f, h, 1), 160); }
static void e_offset(unsigned char *f, uint64_t h) {
    unsigned char *e = ENTRY(f, h, 1);
    ckpt_put64(e + CKPT_E_OFFSET, ckpt_get64(e + CKPT_E_OFFSET) + 1);
}
static void e_csize0(unsigned char *f, uint64_t h) { ckpt_put64(ENTRY(f, h, 0) + CKPT_E_CSIZE, 0); }
static void e_csizehuge(unsigned char *f, uint64_t h) { ckpt_put64(ENTRY(f, h, 2) + CKPT_E_CSIZE, UINT64_MAX - 5); }
static void e_rawsum(unsigned char *f, uint64_t h) {
    unsigned char *e = ENTRY(f, h, 1);
    ckpt_put64(e + CKPT_E_RAW_SUM, ckpt_get64(e + CKPT_E_RAW_SUM) ^ 1);
}
static void e_hreserved(unsigned char *f, uint64_t h) { (void)h, f[CKPT_H_RESERVED + 1] = 1; }
static void e_rank(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_RANK, 1); }
static void e_negmesh(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_MESH_TP, (uint32_t)-1); }
static void e_ntensors(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_NTENSORS, (1u << 20) + 1); }
static void e_nmore(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_NTENSORS, 4); }
static void e_tsize(unsigned char *f, uint64_t h) { (void)h, ckpt_put64(f + CKPT_H_TABLE_SIZE, 3 * 111 - 1); }
static void e_nfewer(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_NTENSORS, 2); }
static void e_toff(unsigned char *f, uint64_t h) { (void)h, ckpt_put64(f + CKPT_H_TABLE_OFFSET, 140); }
static void e_extranul(unsigned char *f, uint64_t h) { (void)h, f[CKPT_H_EXTRA + 3] = 0; }
static void e_version(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_VERSION, 2); }
static void e_extralen(unsigned char *f, uint64_t h) { (void)h, ckpt_put32(f + CKPT_H_EXTRA_LEN, 5000); }

static const Edit edits[] = {
    {"dtype", e_dtype, "tensor 'model.b': dtype 9 is not a known dtype", 0},
    {"ndim", e_ndim, "tensor 'model.b': ndim 7 exceeds 6", 0},
    {"dim past ndim", e_pastdim, "tensor 'model.a': shape[1] = 3 (must be 0 past ndim)", 0},
    {"negative dim", e_negdim, "tensor 'model.b': shape[0] = -4 (dims are 0..2^40)", 0},
    {"huge tensor", e_hugedim, "tensor 'model.c': 21990232555520 bytes exceeds the 2^42 limit", 0},
    {"bad sharding", e_shard, "tensor 'model.c': sharding 3 of dimension 1 is not valid", 0},
    {"sharding past ndim", e_shardpast, "tensor 'model.a': sharding 1 of dimension 4 is not valid", 0},
    {"entry reserved", e_ereserved, "tensor 'model.a': reserved byte 2 is not 0", 0},
    {"raw size", e_rsize, "tensor 'model.b': raw size 100, but its shape and dtype make 96", 0},
    {"duplicate", e_dup, "tensor 'model.a': appears twice in the table", 0},
    {"control char", e_ctrl, "tensor table: entry 1: control character in the name", 0},
    {"empty name", e_namelen0, "tensor table: entry 0: empty name", 0},
    {"long name", e_namelong, "tensor table: entry 1: name length 160 does not fit", 0},
    {"offset gap", e_offset, NULL, 0},
    {"compressed size 0", e_csize0, "tensor 'model.a': compressed size 0", 0},
    {"compressed size huge", e_csizehuge, NULL, 0},
    {"raw checksum", e_rawsum, "tensor 'model.b': checksum mismatch in the raw bytes (stored 0x", 1},
    {"header reserved", e_hreserved, "header: reserved field is not 0", 0},
    {"rank", e_rank, "header: mesh dp=1 tp=1 rank=1 is not valid", 0},
    {"negative mesh", e_negmesh, "header: mesh dp=1 tp=-1 rank=0 is not valid", 0},
    {"too many tensors", e_ntensors, "header: 1048577 tensors exceeds the limit of 1048576", 0},
    {"one more tensor", e_nmore, "header: table size 333 does not fit 4 entries (416..1052 bytes)", 0},
    {"table size", e_tsize, "tensor 'model.a': data offset 480, expected 479 (where the previous data ends)", 0},
    {"one tensor fewer", e_nfewer, "tensor table: 111 bytes left after the last entry", 0},
    {"table offset", e_toff, "header: table offset 140, expected 147 (right after the header)", 0},
    {"NUL in extra_json", e_extranul, "header: NUL byte inside extra_json", 0},
    {"version", e_version, "header: format version 2 (this dpoc reads version 1)", 0},
    {"extra length", e_extralen, "header: extra_json length 5000 exceeds 4095", 0},
};

/* Replaces the last tensor's frame with `frame` (keeping checksums valid). */
static unsigned char *with_frame(const unsigned char *f, size_t len, const CkptStored *last, const void *frame,
                                 size_t flen, uint64_t hsize, size_t *newlen) {
    *newlen = (size_t)last->offset + flen;
    unsigned char *g = malloc(*newlen);
    memcpy(g, f, (size_t)last->offset);
    memcpy(g + last->offset, frame, flen);
    unsigned char *e = ENTRY(g, hsize, 2);
    ckpt_put64(e + CKPT_E_CSIZE, flen);
    ckpt_put64(e + CKPT_E_COMP_SUM, ckpt_xxh64(frame, flen, 0));
    reseal(g);
    (void)len;
    return g;
}

static void group_fields(void) {
    uint64_t hsize, tsize;
    CkptStored st[3];
    const char *path = make_small(wpath("fields"), &hsize, &tsize, st);
    size_t len = 0;
    unsigned char *f = slurp(path, &len), *g = malloc(len);
    char err[512], want[800];
    check(hsize == 147 && tsize == 333, "small layout %" PRIu64 " + %" PRIu64, hsize, tsize);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const Edit *e = &edits[i];
        memcpy(g, f, len);
        e->apply(g, hsize);
        if (strcmp(e->what, "version") && strcmp(e->what, "extra length")) reseal(g);
        spit(path, g, len);
        if (!strcmp(e->what, "offset gap"))
            snprintf(want, sizeof want,
                     "%s: tensor 'model.b': data offset %" PRIu64 ", expected %" PRIu64
                     " (where the previous data ends)",
                     path, st[1].offset + 1, st[1].offset);
        else if (!strcmp(e->what, "compressed size huge"))
            snprintf(want, sizeof want,
                     "%s: truncated: tensor 'model.c' needs bytes %" PRIu64 "..%" PRIu64 ", file has %zu", path,
                     st[2].offset, UINT64_MAX, len);
        else
            snprintf(want, sizeof want, "%s: %s", path, e->want);
        Ckpt *c = ckpt_open(path, err, sizeof err);
        if (e->at_read) {
            check(c != NULL, "%s: open: %s", e->what, err);
            if (c) ckpt_close(c);
            int rc = load_all(path, err, sizeof err);
            check(rc != 0 && !strncmp(err, want, strlen(want)), "%s: %s\n      want %s", e->what, rc ? err : "accepted",
                  want);
        } else {
            check(c == NULL && !strcmp(err, want), "%s: %s\n      want %s", e->what, c ? "accepted" : err, want);
            ckpt_close(c);
        }
    }

    /* frames that are valid zstd but wrong for the table, or not zstd */
    const unsigned char *orig = f + st[2].offset;
    unsigned char raw[64], frame[256], frame2[512];
    size_t rlen = 40;
    check(ZSTD_decompress(raw, sizeof raw, orig, (size_t)st[2].csize) == rlen, "decode the last frame");
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    struct {
        const char *what, *want;
        size_t content; /* bytes the frame holds */
        int size_flag;  /* content size in the frame header */
        int twice;      /* two frames back to back */
        int cut;        /* only the first half of the frame */
        int garbage;    /* not zstd at all */
    } cases[] = {
        {"declared content size", "the zstd frame header's content size differs from the raw size", 44, 1, 0, 0, 0},
        {"more content", "the zstd frame holds more bytes than the raw size", 44, 0, 0, 0, 0},
        {"less content", "the zstd frame holds 30 bytes, the raw size is 40", 30, 0, 0, 0, 0},
        {"two frames", "data continues after the end of the zstd frame", 40, 1, 1, 0, 0},
        {"half a frame", "the zstd frame is incomplete", 40, 1, 0, 1, 0},
        {"not zstd", "zstd: ", 40, 1, 0, 0, 1},
    };
    unsigned char content[64];
    for (int i = 0; i < 64; i++) content[i] = i < 40 ? raw[i] : (unsigned char)i;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, cases[k].size_flag);
        size_t fl;
        if (cases[k].size_flag) {
            fl = ZSTD_compress2(cc, frame, sizeof frame, content, cases[k].content);
        } else { /* streaming without a pledged size leaves the content size out */
            ZSTD_inBuffer in = {content, cases[k].content, 0};
            ZSTD_outBuffer out = {frame, sizeof frame, 0};
            size_t r = ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end);
            check(r == 0, "stream compress");
            fl = out.pos;
        }
        check(!ZSTD_isError(fl), "compress case %zu", k);
        if (cases[k].twice) {
            memcpy(frame2, frame, fl);
            memcpy(frame2 + fl, frame, fl);
            fl *= 2;
        } else {
            memcpy(frame2, frame, fl);
        }
        if (cases[k].cut) fl /= 2;
        if (cases[k].garbage)
            for (size_t j = 0; j < fl; j++) frame2[j] = (unsigned char)(j * 13 + 1);
        size_t nl;
        unsigned char *h = with_frame(f, len, &st[2], frame2, fl, hsize, &nl);
        spit(path, h, nl);
        free(h);
        snprintf(want, sizeof want, "%s: tensor 'model.c': %s", path, cases[k].want);
        int rc = load_all(path, err, sizeof err);
        check(rc != 0 && !strncmp(err, want, strlen(want)), "%s: %s\n      want %s", cases[k].what,
              rc ? err : "accepted", want);
        Ckpt *c = ckpt_open(path, err, sizeof err);
        rc = c ? ckpt_verify_tensor(c, 2, err, sizeof err) : -1;
        check(rc != 0 && !strncmp(err, want, strlen(want)), "verify %s: %s", cases[k].what, rc ? err : "accepted");
        ckpt_close(c);
    }
    /* the original frame through the same path is accepted (the helper is sound) */
    size_t nl;
    unsigned char *h = with_frame(f, len, &st[2], orig, (size_t)st[2].csize, hsize, &nl);
    spit(path, h, nl);
    check(nl == len && !memcmp(h, f, len) && load_all(path, err, sizeof err) == 0, "resealed original: %s", err);
    free(h);
    ZSTD_freeCCtx(cc);
    free(f);
    free(g);
}

/* ---- dir -------------------------------------------------------------------- */

/* The step numbers of the step-*.ckpt files in dir, sorted, as "1,2,3". */
static void list_steps(const char *dir, char *out, size_t outlen, int *ntmp) {
    uint64_t steps[64];
    int n = 0;
    *ntmp = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        uint64_t s;
        if (ckpt_parse_step_name(e->d_name, &s) && n < 64) steps[n++] = s;
        if (strstr(e->d_name, ".tmp")) (*ntmp)++;
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (steps[j] < steps[i]) {
                uint64_t t = steps[i];
                steps[i] = steps[j];
                steps[j] = t;
            }
    out[0] = 0;
    for (int i = 0; i < n; i++) snprintf(out + strlen(out), outlen - strlen(out), "%s%" PRIu64, i ? "," : "", steps[i]);
}

static void save_step(const char *dir, uint64_t step, int keep) {
    CkptContent c;
    char err[512];
    ckpt_content_make(&c, step, 0);
    check(ckpt_save(dir, &c.st, c.t, c.n, keep, err, sizeof err) == 0, "save step %" PRIu64 ": %s", step, err);
    Ckpt *k = ckpt_open(dir, err, sizeof err);
    if (check(k != NULL, "latest after step %" PRIu64 ": %s", step, err)) {
        check_content(k, &c, "latest");
        ckpt_close(k);
    }
    ckpt_content_free(&c);
}

static void group_dir(void) {
    char err[512], steps[256], want[8600];
    int ntmp;
    const char *dir = wpath("d/nested/ckpt"); /* created with its parents */
    for (uint64_t s = 1; s <= 7; s++) save_step(dir, s * 10, 3);
    list_steps(dir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "50,60,70") && ntmp == 0, "keep_last 3 after 7 saves: %s (%d tmp)", steps, ntmp);
    /* an older step becomes latest: it stays, the oldest others go */
    save_step(dir, 55, 3);
    list_steps(dir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "55,60,70"), "keep_last 3 after saving step 55: %s", steps);
    save_step(dir, 5, 2);
    list_steps(dir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "5,70"), "keep_last 2 after saving step 5: %s", steps);
    save_step(dir, 80, 0);
    save_step(dir, 90, -1);
    list_steps(dir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "5,70,80,90"), "keep_last <= 0 keeps all: %s", steps);
    save_step(dir, 90, 1); /* the same step again: replaced, the rest pruned */
    list_steps(dir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "90"), "keep_last 1: %s", steps);

    /* stale temporary files: ignored by readers, removed by the next save */
    char p[4200];
    snprintf(p, sizeof p, "%s/.step-00000100.ckpt.tmp", dir);
    spit(p, "garbage", 7);
    snprintf(p, sizeof p, "%s/.latest.tmp", dir);
    spit(p, "step-00000100.ckpt\n", 19);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    spit(p, "mine", 4);
    check(load_all(dir, err, sizeof err) == 0, "open with stale .tmp files: %s", err);
    save_step(dir, 100, 2);
    list_steps(dir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "90,100") && ntmp == 0, "stale .tmp removed: %s (%d tmp left)", steps, ntmp);
    check(access(p, F_OK) == 0, "an unrelated file was removed");

    /* bad `latest` files */
    snprintf(p, sizeof p, "%s/latest", dir);
    struct {
        const char *content, *want;
    } bad[] = {
        {"step-00000100.ckpt", "expected one line naming a checkpoint file"},
        {"../step-00000100.ckpt\n", "byte 2: a checkpoint file name has no '/', newline or control character"},
        {"\n", "'' is not a checkpoint file name"},
        {".step-00000100.ckpt.tmp\n", "'.step-00000100.ckpt.tmp' is not a checkpoint file name"},
        {"step-00000100.ckpt\nstep-00000090.ckpt\n", "byte 18: a checkpoint file name has no"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spit(p, bad[i].content, strlen(bad[i].content));
        snprintf(want, sizeof want, "%s: %s", p, bad[i].want);
        Ckpt *c = ckpt_open(dir, err, sizeof err);
        check(!c && !strncmp(err, want, strlen(want)), "latest '%s': %s\n      want %s", bad[i].content,
              c ? "accepted" : err, want);
        ckpt_close(c);
    }
    spit(p, "step-00000077.ckpt\n", 19);
    snprintf(want, sizeof want, "%s/latest names 'step-00000077.ckpt', which does not exist", dir);
    Ckpt *c = ckpt_open(dir, err, sizeof err);
    check(!c && !strcmp(err, want), "missing file: %s", c ? "accepted" : err);
    unlink(p);
    snprintf(want, sizeof want, "%s: no checkpoint here (no 'latest' file)", dir);
    c = ckpt_open(dir, err, sizeof err);
    check(!c && !strcmp(err, want), "no latest: %s", c ? "accepted" : err);
    c = ckpt_open(wpath("d/none"), err, sizeof err);
    check(!c && has(err, "d/none: No such file or directory"), "missing path: %s", c ? "accepted" : err);

    /* bad save arguments: refused, nothing written */
    const char *sdir = wpath("saves");
    CkptContent k;
    ckpt_content_make(&k, 1, 0);
    check(ckpt_save(sdir, &k.st, k.t, k.n, 0, err, sizeof err) == 0, "first save: %s", err);
    struct {
        const char *what, *want;
        void (*edit)(CkptContent *);
    } const cases[] = {
        {"empty name", "ckpt_save: tensor 2: empty name", NULL},
        {"control char", "ckpt_save: tensor 2: control character in the name", NULL},
        {"unterminated name", "ckpt_save: tensor 2: name not NUL-terminated within 160 bytes", NULL},
        {"duplicate", "ckpt_save: tensor 'mask' appears twice", NULL},
        {"dtype", "ckpt_save: tensor 'data.order': unknown dtype 6", NULL},
        {"ndim", "ckpt_save: tensor 'data.order': ndim 7 exceeds 6", NULL},
        {"past ndim", "ckpt_save: tensor 'data.order': shape[3] = 2 (must be 0 past ndim)", NULL},
        {"negative", "ckpt_save: tensor 'data.order': shape[0] = -1 (dims are 0..2^40)", NULL},
        {"nbytes", "ckpt_save: tensor 'data.order': nbytes is 3999 but its shape and dtype make 4000", NULL},
        {"shard", "ckpt_save: tensor 'data.order': shard[0] = 5 is not valid", NULL},
        {"null data", "ckpt_save: tensor 'data.order': data is NULL", NULL},
        {"extra", "ckpt_save: extra_json is not NUL-terminated within 4096 bytes", NULL},
        {"mesh", "ckpt_save: mesh dp=2 tp=2 rank=4 is not valid", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CkptContent m = k;
        CkptTensor *t = &m.t[2];
        switch (i) {
        case 0:
            t->name[0] = 0;
            break;
        case 1:
            t->name[3] = '\t';
            break;
        case 2:
            memset(t->name, 'a', sizeof t->name);
            break;
        case 3:
            strcpy(t->name, "mask");
            break;
        case 4:
            t->dtype = 6;
            break;
        case 5:
            t->ndim = 7;
            break;
        case 6:
            t->shape[3] = 2;
            break;
        case 7:
            t->shape[0] = -1;
            break;
        case 8:
            t->nbytes--;
            break;
        case 9:
            t->shard[0] = 5;
            break;
        case 10:
            t->data = NULL;
            break;
        case 11:
            memset(m.st.extra_json, '{', sizeof m.st.extra_json);
            break;
        case 12:
            m.st.mesh_dp = 2, m.st.mesh_tp = 2, m.st.rank = 4;
            break;
        }
        m.st.step = 2;
        int rc = ckpt_save(sdir, &m.st, m.t, m.n, 0, err, sizeof err);
        check(rc != 0 && !strcmp(err, cases[i].want), "save with %s: %s\n      want %s", cases[i].what,
              rc ? err : "accepted", cases[i].want);
    }
    list_steps(sdir, steps, sizeof steps, &ntmp);
    check(!strcmp(steps, "1") && ntmp == 0, "refused saves left files: %s (%d tmp)", steps, ntmp);
    ckpt_content_free(&k);
    /* a file where the directory should be */
    spit(wpath("afile"), "x", 1);
    snprintf(want, sizeof want, "%s: not a directory", wpath("afile"));
    CkptState s0 = {.step = 1};
    check(ckpt_save(wpath("afile"), &s0, NULL, 0, 0, err, sizeof err) != 0 && !strcmp(err, want), "dir is a file: %s",
          err);
}

/* ---- corpus: seeds for tests/fuzz/fuzz_ckpt.c -------------------------------- */

static void copy_seed(const char *from, const char *name) {
    size_t len = 0;
    unsigned char *b = slurp(from, &len);
    if (!b || len >= 4096) {
        fprintf(stderr, "corpus: %s: %zu bytes\n", from, b ? len : 0);
        exit(1);
    }
    spit(wpath(name), b, len);
    free(b);
    printf("%s: %zu bytes\n", wpath(name), len);
}

static void group_corpus(void) {
    uint64_t hsize, tsize;
    CkptStored st[3];
    copy_seed(make_small(wpath("tmp/small"), &hsize, &tsize, st), "small.ckpt");
    char err[512];
    CkptState s = {.step = 3, .epoch = 1, .mesh_dp = 2, .mesh_tp = 2, .rank = 3};
    if (ckpt_save(wpath("tmp/none"), &s, NULL, 0, 0, err, sizeof err)) exit(1);
    copy_seed(wpath("tmp/none/step-00000003.ckpt"), "no_tensors.ckpt");
    /* every dtype, a scalar, an empty tensor, sharded dimensions */
    static unsigned char bytes[6][48];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 48; j++) bytes[i][j] = (unsigned char)(i * 40 + j * (i + 1));
    CkptTensor t[8] = {
        {.name = "f32", .dtype = CKPT_F32, .ndim = 2, .shape = {3, 4}, .data = bytes[0], .nbytes = 48, .shard = {1, 0}},
        {.name = "f64", .dtype = CKPT_F64, .ndim = 1, .shape = {6}, .data = bytes[1], .nbytes = 48},
        {.name = "i32",
         .dtype = CKPT_I32,
         .ndim = 3,
         .shape = {2, 2, 3},
         .data = bytes[2],
         .nbytes = 48,
         .shard = {0, 2, 0}},
        {.name = "bf16", .dtype = CKPT_BF16, .ndim = 1, .shape = {24}, .data = bytes[3], .nbytes = 48},
        {.name = "f16", .dtype = CKPT_F16, .ndim = 0, .data = bytes[4], .nbytes = 2},
        {.name = "u8", .dtype = CKPT_U8, .ndim = 6, .shape = {1, 2, 1, 2, 3, 2}, .data = bytes[5], .nbytes = 24},
        {.name = "empty", .dtype = CKPT_F32, .ndim = 2, .shape = {0, 7}},
        {.name = "zeros", .dtype = CKPT_F32, .ndim = 1, .shape = {256}, .nbytes = 1024},
    };
    static float zeros[256];
    t[7].data = zeros;
    s = (CkptState){.step = 123456789, .data_pos = 77, .rng = {1, 2, 3, 4}, .mesh_dp = 1, .mesh_tp = 2, .rank = 1};
    strcpy(s.extra_json, "{\"writer\":\"corpus\",\"lr\":0.0001}");
    if (ckpt_save(wpath("tmp/dtypes"), &s, t, 8, 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    copy_seed(wpath("tmp/dtypes/step-123456789.ckpt"), "dtypes.ckpt");
    rm_rf(wpath("tmp"));
}

/* ---- meshprune ---------------------------------------------------------------- */

/* the names in dir, sorted, comma-separated (".", ".." left out) */
static void list_names(const char *dir, char *out, size_t outlen) {
    char names[64][256];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n < 64) snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    out[0] = 0;
    for (int i = 0; i < n; i++) snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i ? "," : "", names[i]);
}

static void put(const char *rel) {
    char p[4096];
    snprintf(p, sizeof p, "%s", wpath(rel));
    for (char *q = p + strlen(work) + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(p, 0755);
            *q = '/';
        }
    spit(p, rel, strlen(rel));
}

/* a complete sharded step N (tp 2): manifest and both shard directories */
static void put_step(int n) {
    char r[128];
    snprintf(r, sizeof r, "m/step-%08d.mesh", n);
    put(r);
    for (int t = 0; t < 2; t++) {
        snprintf(r, sizeof r, "m/step-%08d.tp%d/step-%08d.ckpt", n, t, n);
        put(r);
        snprintf(r, sizeof r, "m/step-%08d.tp%d/latest", n, t);
        put(r);
    }
}

static void group_meshprune(void) {
    char err[512], got[4096];
    check(ckpt_mesh_prune(wpath("none"), 5, 2, err, sizeof err) == 0, "missing directory: %s", err);
    mkdir(wpath("empty"), 0755); /* nothing to sort (the first save of a run) */
    check(ckpt_mesh_prune(wpath("empty"), 5, 2, err, sizeof err) == 0, "empty directory: %s", err);
    /* steps 10..40 complete; 40 also left by a save killed between `latest`
     * and pruning (so 4 manifests at keep_last 2 + 1) */
    for (int s = 10; s <= 40; s += 10) put_step(s);
    put("m/step-00000020.tp1/.step-00000020.ckpt.tmp");
    put("m/latest");
    /* killed before the manifest: step 25 (tp0 only) and 60 (newer than
     * the step being saved, from a run resumed at an older step) */
    put("m/step-00000025.tp0/step-00000025.ckpt");
    put("m/step-00000025.tp0/.step-00000025.ckpt.tmp");
    put("m/step-00000060.tp1/step-00000060.ckpt");
    /* step 50 being written by the other ranks right now */
    put("m/step-00000050.tp0/.step-00000050.ckpt.tmp");
    put("m/step-00000050.tp1/step-00000050.ckpt");
    /* temporary files of killed manifest / latest writes */
    put("m/.step-00000045.mesh.tmp");
    put("m/.latest.tmp");
    /* not dpoc's: kept, and a shard directory holding one is left in place */
    put("m/notes.txt");
    put("m/step-x.mesh");
    put("m/step-00000030.tpz/data");
    put("m/step-00000010.tp1/mine.txt");

    check(ckpt_mesh_prune(wpath("m"), 50, 2, err, sizeof err) == 0, "prune before saving step 50: %s", err);
    list_names(wpath("m"), got, sizeof got);
    const char *want1 = "latest,notes.txt,step-00000010.tp1,step-00000030.mesh,step-00000030.tp0,step-00000030.tp1,"
                        "step-00000030.tpz,step-00000040.mesh,step-00000040.tp0,step-00000040.tp1,"
                        "step-00000050.tp0,step-00000050.tp1,step-x.mesh";
    check(!strcmp(got, want1), "before saving step 50 (keep 2):\n  got  %s\n  want %s", got, want1);
    list_names(wpath("m/step-00000010.tp1"), got, sizeof got);
    check(!strcmp(got, "mine.txt"), "a removed step's directory holding a foreign file: %s", got);
    list_names(wpath("m/step-00000050.tp0"), got, sizeof got);
    check(!strcmp(got, ".step-00000050.ckpt.tmp"), "the step being written was touched: %s", got);

    /* the manifest of 50 is written; keep_last 2 keeps 50 and 40 */
    put("m/step-00000050.mesh");
    check(ckpt_mesh_prune(wpath("m"), 50, 1, err, sizeof err) == 0, "prune after saving step 50: %s", err);
    list_names(wpath("m"), got, sizeof got);
    const char *want2 = "latest,notes.txt,step-00000010.tp1,step-00000030.tpz,step-00000040.mesh,step-00000040.tp0,"
                        "step-00000040.tp1,step-00000050.mesh,step-00000050.tp0,step-00000050.tp1,step-x.mesh";
    check(!strcmp(got, want2), "after saving step 50 (keep 1):\n  got  %s\n  want %s", got, want2);
    list_names(wpath("m/step-00000040.tp0"), got, sizeof got);
    check(!strcmp(got, "latest,step-00000040.ckpt"), "a kept step lost files: %s", got);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_ckpt GROUP WORKDIR\n");
        return 2;
    }
    work = argv[2];
    rm_rf(work);
    mkdir(work, 0755);
    static const struct {
        const char *name;
        void (*run)(void);
    } groups[] = {{"xxh64", group_xxh64}, {"roundtrip", group_roundtrip}, {"layout", group_layout},
                  {"flip", group_flip},   {"truncate", group_truncate},   {"fields", group_fields},
                  {"dir", group_dir},     {"meshprune", group_meshprune}, {"corpus", group_corpus}};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (!strcmp(argv[1], groups[i].name)) {
            groups[i].run();
            printf("%s: %d passed, %d failed\n", argv[1], passed, failed);
            return failed != 0;
        }
    fprintf(stderr, "test_ckpt: unknown group '%s'\n", argv[1]);
    return 2;
}
