/* rec_testlib.c — see rec_testlib.h.
 *
 * The random pairs exercise every shape the format allows: empty prompts
 * and responses, zero spans, empty spans, spans at position 0, several
 * spans per sequence, reference log-probs of any sign. The builder follows
 * the tables of docs/rec-format.md field by field; its CRC is the textbook
 * shift register (one input bit per step), unlike the library's table
 * method, so the two can check each other.
 */
#include "rec_testlib.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

int t_passed, t_failed;

void check(int ok, const char *fmt, ...) {
    if (ok) {
        t_passed++;
        return;
    }
    t_failed++;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

void check_msg(const char *err, const char *want, const char *what) {
    check(strcmp(err, want) == 0, "%s:\n   got  \"%s\"\n   want \"%s\"", what, err, want);
}

uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(rng_next(s) % n); }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void random_spans(RecSpan **out, uint32_t *n, uint64_t *rng, uint32_t len, uint32_t prompt, uint32_t max) {
    uint32_t want = max ? rng_below(rng, max + 1) : 0;
    RecSpan *sp = xmalloc(want * sizeof *sp);
    uint32_t k = 0, at = rng_below(rng, 4) == 0 ? 0 : prompt; /* sometimes from position 0 */
    while (k < want && at <= len) {
        uint32_t start = at + rng_below(rng, len - at + 1) / 2;
        uint32_t end = start + (rng_below(rng, 3) == 0 ? 0 : rng_below(rng, len - start + 1)); /* some empty */
        sp[k++] = (RecSpan){start, end};
        at = end;
    }
    *out = sp;
    *n = k;
}

void tpair_random(TPair *p, uint64_t *rng, const TPairOpts *o) {
    memset(p, 0, sizeof *p);
    p->prompt_len = rng_below(rng, o->max_prompt + 1);
    for (int s = 0; s < 2; s++) p->len[s] = p->prompt_len + rng_below(rng, o->max_resp + 1);
    for (int s = 0; s < 2; s++) p->ids[s] = xmalloc(p->len[s] * sizeof(int32_t));
    for (uint32_t t = 0; t < p->prompt_len; t++) p->ids[0][t] = p->ids[1][t] = (int32_t)rng_below(rng, (uint32_t)o->vocab);
    for (int s = 0; s < 2; s++) {
        for (uint32_t t = p->prompt_len; t < p->len[s]; t++) p->ids[s][t] = (int32_t)rng_below(rng, (uint32_t)o->vocab);
        random_spans(&p->spans[s], &p->nspans[s], rng, p->len[s], p->prompt_len, o->max_spans);
    }
    p->has_ref = o->has_ref;
    if (o->has_ref)
        for (int s = 0; s < 2; s++) p->ref[s] = -(float)(rng_next(rng) % 1000000) / 1024.0f + (float)(s ? 0.5 : 0);
}

void tpair_make(TPair *p, uint32_t prompt_len, const int32_t *prompt, uint32_t lc, const int32_t *tail_c, uint32_t lr,
                const int32_t *tail_r, uint32_t nsc, const RecSpan *sc, uint32_t nsr, const RecSpan *sr, int has_ref,
                float ref_c, float ref_r) {
    memset(p, 0, sizeof *p);
    p->prompt_len = prompt_len;
    p->len[0] = prompt_len + lc;
    p->len[1] = prompt_len + lr;
    const int32_t *tail[2] = {tail_c, tail_r};
    const RecSpan *sp[2] = {sc, sr};
    uint32_t ns[2] = {nsc, nsr};
    for (int s = 0; s < 2; s++) {
        p->ids[s] = xmalloc(p->len[s] * sizeof(int32_t));
        if (prompt_len) memcpy(p->ids[s], prompt, prompt_len * sizeof(int32_t));
        if (p->len[s] > prompt_len) memcpy(p->ids[s] + prompt_len, tail[s], (p->len[s] - prompt_len) * sizeof(int32_t));
        p->nspans[s] = ns[s];
        p->spans[s] = xmalloc(ns[s] * sizeof(RecSpan));
        if (ns[s]) memcpy(p->spans[s], sp[s], ns[s] * sizeof(RecSpan));
    }
    p->has_ref = has_ref;
    p->ref[0] = ref_c;
    p->ref[1] = ref_r;
}

RecPair tpair_view(const TPair *p) {
    RecPair r = {.prompt_len = p->prompt_len, .has_ref = p->has_ref};
    for (int s = 0; s < 2; s++) {
        r.len[s] = p->len[s];
        r.ids[s] = p->ids[s];
        r.nspans[s] = p->nspans[s];
        r.spans[s] = p->spans[s];
        r.ref_logps[s] = p->has_ref ? p->ref[s] : 0.0f;
    }
    return r;
}

void tpair_free(TPair *p) {
    for (int s = 0; s < 2; s++) {
        free(p->ids[s]);
        free(p->spans[s]);
    }
    memset(p, 0, sizeof *p);
}

int tpair_same(const RecPair *got, const TPair *exp, char *why, size_t n) {
    if (got->prompt_len != exp->prompt_len) return snprintf(why, n, "prompt_len %u != %u", got->prompt_len, exp->prompt_len), 0;
    if (!got->has_ref != !exp->has_ref) return snprintf(why, n, "has_ref differs"), 0;
    for (int s = 0; s < 2; s++) {
        if (got->len[s] != exp->len[s]) return snprintf(why, n, "len[%d] %u != %u", s, got->len[s], exp->len[s]), 0;
        if (got->len[s] && memcmp(got->ids[s], exp->ids[s], got->len[s] * sizeof(int32_t)))
            return snprintf(why, n, "ids[%d] differ", s), 0;
        if (got->nspans[s] != exp->nspans[s])
            return snprintf(why, n, "nspans[%d] %u != %u", s, got->nspans[s], exp->nspans[s]), 0;
        if (got->nspans[s] && memcmp(got->spans[s], exp->spans[s], got->nspans[s] * sizeof(RecSpan)))
            return snprintf(why, n, "spans[%d] differ", s), 0;
        float want = exp->has_ref ? exp->ref[s] : 0.0f;
        if (memcmp(&got->ref_logps[s], &want, sizeof want)) return snprintf(why, n, "ref_logps[%d] differs", s), 0;
    }
    return 1;
}

/* ---- scratch directory --------------------------------------------------- */

static char tdir[256];

void tdir_init(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tdir, sizeof tdir, "%s/test_rec.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tdir)) {
        perror("mkdtemp");
        exit(2);
    }
}

static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

void tdir_cleanup(void) {
    if (tdir[0]) rm_tree(tdir);
}

const char *tpath(const char *name) {
    static char buf[8][512];
    static int next;
    char *b = buf[next++ & 7];
    snprintf(b, 512, "%s/%s", tdir, name);
    return b;
}

uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    TBuf b = {0};
    uint8_t chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) tb_bytes(&b, chunk, k);
    fclose(f);
    *n = b.n;
    if (!b.p) b.p = xmalloc(1);
    return b.p;
}

int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) || k != n ? -1 : 0;
}

int path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- bytes ------------------------------------------------------------------ */

void tb_bytes(TBuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        uint8_t *p = realloc(b->p, c);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->p = p;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

void tb_u32(TBuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    tb_bytes(b, x, 4);
}

void tb_u64(TBuf *b, uint64_t v) {
    tb_u32(b, (uint32_t)v);
    tb_u32(b, (uint32_t)(v >> 32));
}

void tb_free(TBuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

uint32_t tle32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
uint64_t tle64(const uint8_t *p) { return tle32(p) | (uint64_t)tle32(p + 4) << 32; }
void tset32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
void tset64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t tcrc(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t r = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            uint32_t in = (p[i] >> bit) & 1; /* least significant bit first */
            uint32_t out = (r ^ in) & 1;
            r >>= 1;
            if (out) r ^= 0x82f63b78u;
        }
    return r ^ 0xffffffffu;
}

/* ---- the independent builder ----------------------------------------------- */

void tenc_record(TBuf *out, const TPair *p) {
    size_t start = out->n;
    tb_u32(out, p->has_ref ? 1 : 0);
    tb_u32(out, p->prompt_len);
    tb_u32(out, p->len[0]);
    tb_u32(out, p->len[1]);
    tb_u32(out, p->nspans[0]);
    tb_u32(out, p->nspans[1]);
    if (p->has_ref)
        for (int s = 0; s < 2; s++) {
            uint32_t bits;
            memcpy(&bits, &p->ref[s], 4);
            tb_u32(out, bits);
        }
    for (uint32_t t = 0; t < p->prompt_len; t++) tb_u32(out, (uint32_t)p->ids[0][t]);
    for (int s = 0; s < 2; s++)
        for (uint32_t t = p->prompt_len; t < p->len[s]; t++) tb_u32(out, (uint32_t)p->ids[s][t]);
    for (int s = 0; s < 2; s++)
        for (uint32_t k = 0; k < p->nspans[s]; k++) {
            tb_u32(out, p->spans[s][k].start);
            tb_u32(out, p->spans[s][k].end);
        }
    tb_u32(out, tcrc(out->p + start, out->n - start));
}

void tseal_record(uint8_t *rec, size_t size) { tset32(rec + size - 4, tcrc(rec, size - 4)); }

TBlock *tsplit(const TPair *p, size_t n, size_t target, size_t *nblocks) {
    TBlock *b = calloc(n + 1, sizeof *b);
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        TBuf one = {0};
        tenc_record(&one, &p[i]);
        if (b[nb].nrecords && b[nb].raw.n + one.n > target) nb++; /* does not fit: close the block first */
        tb_bytes(&b[nb].raw, one.p, one.n);
        b[nb].nrecords++;
        b[nb].ntokens += (uint64_t)p[i].len[0] + p[i].len[1];
        tb_free(&one);
        if (b[nb].raw.n >= target) nb++; /* full */
    }
    if (n && b[nb].nrecords) nb++;
    *nblocks = nb;
    return b;
}

void tblocks_free(TBlock *b, size_t nb) {
    for (size_t k = 0; k < nb; k++) tb_free(&b[k].raw);
    free(b);
}

TBuf tbuild(const THdr *h, const TBlock *b, size_t nb, int level) {
    TBuf f = {0}, idx = {0};
    uint8_t zero[112] = {0};
    tb_bytes(&f, zero, sizeof zero);
    uint64_t first = 0;
    for (size_t k = 0; k < nb; k++) {
        size_t cap = ZSTD_compressBound(b[k].raw.n);
        uint8_t *c = xmalloc(cap);
        size_t cs = ZSTD_compress(c, cap, b[k].raw.p, b[k].raw.n, level);
        if (ZSTD_isError(cs)) {
            fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(cs));
            exit(2);
        }
        tb_u64(&idx, f.n);
        tb_u64(&idx, first);
        tb_u32(&idx, b[k].nrecords);
        tb_u32(&idx, (uint32_t)cs);
        tb_u32(&idx, (uint32_t)b[k].raw.n);
        tb_u32(&idx, tcrc(c, cs));
        tb_u64(&idx, b[k].ntokens);
        tb_bytes(&f, c, cs);
        free(c);
        first += b[k].nrecords;
    }
    uint64_t index_offset = f.n;
    tb_bytes(&f, idx.p, idx.n);
    TBuf hd = {0};
    tb_bytes(&hd, "DPOCREC", 8);
    tb_u32(&hd, h->version);
    tb_u32(&hd, h->flags);
    tb_u64(&hd, h->tok_hash);
    tb_bytes(&hd, h->tmpl, 32);
    tb_u32(&hd, h->max_length);
    tb_u32(&hd, (uint32_t)h->vocab);
    tb_u64(&hd, h->npairs);
    tb_u64(&hd, h->ntokens);
    tb_u64(&hd, h->refhash);
    tb_u64(&hd, index_offset);
    tb_u64(&hd, nb);
    tb_u32(&hd, tcrc(idx.p, idx.n));
    tb_u32(&hd, tcrc(hd.p, hd.n));
    memcpy(f.p, hd.p, 112);
    tb_free(&hd);
    tb_free(&idx);
    return f;
}

void treseal(uint8_t *file, size_t n) {
    uint64_t io = tle64(file + 88), nb = tle64(file + 96);
    if (io <= n && nb <= (n - io) / 40) tset32(file + 104, tcrc(file + io, nb * 40));
    tset32(file + 108, tcrc(file, 108));
}
