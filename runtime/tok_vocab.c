/* tok_vocab.c — building a Tokenizer from vocabulary, merges and added tokens.
 *
 * The loaders (tok_load.c, tok_json.c, tok_files.c) call, in this order:
 * tok_vocab_add for every model token, tok_merge_add for every merge (its
 * rank is its position among the merges; a merge given twice keeps the later
 * rank, as Hugging Face's dictionaries do), tok_added_add for every added
 * token, then tok_finish. Each token's spelling is stored NUL-terminated in
 * the arena (tok_token_str hands it out) followed by its raw bytes: for a
 * model token every byte-level character maps back to its byte (a character
 * outside the alphabet stands for its own UTF-8 bytes); an added token's raw
 * bytes are its text. tok_finish checks that every byte has a token, builds
 * the dense table of byte-pair merges, the word memo and the added-token
 * table (sorted by first byte, longest first, for the leftmost-longest scan
 * in tok_encode.c), compiles the pre-tokenizer pattern and computes the hash.
 * Errors name `where` (a file, or file:line).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define TOK_MAX_ID (1 << 24) /* ids beyond this are refused (no vocabulary is that big) */

Tokenizer *tok_new(void) {
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (tok_strmap_init(&t->strs, 1024) != 0 || tok_pairmap_init(&t->merges, 1024) != 0) {
        tok_free(t);
        return NULL;
    }
    return t;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    free(t->tok);
    free(t->arena);
    tok_strmap_free(&t->strs);
    tok_strmap_free(&t->raws);
    tok_pairmap_free(&t->merges);
    free(t->merge_list);
    free(t->pattern);
    pcre2_code_free(t->re);
    free(t->added);
    free(t->byte_pairs);
    tok_cache_free(t->cache);
    free(t);
}

/* A token for messages: at most 48 bytes, in quotes. */
static const char *shown(const char *s, size_t len, char *buf, size_t cap) {
    size_t k = len < 48 ? len : 48;
    snprintf(buf, cap, "'%.*s'%s", (int)k, s, len > k ? "..." : "");
    return buf;
}

static int oom(const char *where, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: out of memory", where);
    return -1;
}

static int arena_put(Tokenizer *t, const char *s, size_t len, int nul, uint32_t *off) {
    size_t need = t->arena_len + len + (nul ? 1 : 0);
    if (need > UINT32_MAX) return -1;
    if (need > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 1 << 16;
        while (cap < need) cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a) return -1;
        t->arena = a;
        t->arena_cap = cap;
    }
    *off = (uint32_t)t->arena_len;
    if (len) memcpy(t->arena + t->arena_len, s, len);
    if (nul) t->arena[t->arena_len + len] = 0;
    t->arena_len = need;
    return 0;
}

static int check_id(Tokenizer *t, int64_t id, const char *where, char *err, size_t errlen) {
    if (id < 0 || id >= TOK_MAX_ID) {
        snprintf(err, errlen, "%s: id %lld is out of range (0..%d)", where, (long long)id, TOK_MAX_ID - 1);
        return -1;
    }
    if ((size_t)id >= t->tok_cap) {
        size_t cap = t->tok_cap ? t->tok_cap : 1024;
        while (cap <= (size_t)id) cap *= 2;
        TokEntry *e = realloc(t->tok, cap * sizeof *e);
        if (!e) return oom(where, err, errlen);
        memset(e + t->tok_cap, 0, (cap - t->tok_cap) * sizeof *e);
        t->tok = e;
        t->tok_cap = cap;
    }
    if (id >= t->n) t->n = (int32_t)id + 1;
    return 0;
}

/* Raw bytes of a byte-level spelling, appended to the arena. */
static int put_raw(Tokenizer *t, uint32_t str_off, uint32_t str_len, uint32_t *off, uint32_t *len) {
    char buf[256];
    char *tmp = str_len <= sizeof buf ? buf : malloc(str_len);
    if (!tmp) return -1;
    size_t k = 0;
    const uint8_t *p = (const uint8_t *)t->arena + str_off;
    for (size_t i = 0; i < str_len;) {
        uint32_t cp;
        size_t w = tok_utf8_next(p + i, str_len - i, &cp);
        int b = w ? tok_char_byte(cp) : -1;
        if (b >= 0) {
            tmp[k++] = (char)b;
        } else {
            if (!w) w = 1;
            memcpy(tmp + k, p + i, w);
            k += w;
        }
        i += w;
    }
    int rc = arena_put(t, tmp, k, 0, off);
    *len = (uint32_t)k;
    if (tmp != buf) free(tmp);
    return rc;
}

int tok_vocab_add(Tokenizer *t, const char *str, size_t len, int64_t id, const char *where, char *err,
                  size_t errlen) {
    char b1[64], b2[64];
    if (check_id(t, id, where, err, errlen) != 0) return -1;
    TokEntry *e = &t->tok[id];
    if (e->flags & TOKF_PRESENT) {
        snprintf(err, errlen, "%s: id %lld is given to both %s and %s", where, (long long)id,
                 shown(t->arena + e->str_off, e->str_len, b1, sizeof b1), shown(str, len, b2, sizeof b2));
        return -1;
    }
    if (len == 0) {
        snprintf(err, errlen, "%s: empty token for id %lld", where, (long long)id);
        return -1;
    }
    uint32_t off;
    if (arena_put(t, str, len, 1, &off) != 0) return oom(where, err, errlen);
    int32_t old;
    int rc = tok_strmap_put(&t->strs, t->arena, off, (uint32_t)len, (int32_t)id, &old);
    if (rc < 0) return oom(where, err, errlen);
    if (rc == 1) {
        snprintf(err, errlen, "%s: token %s appears twice (ids %d and %lld)", where, shown(str, len, b1, sizeof b1),
                 old, (long long)id);
        return -1;
    }
    e = &t->tok[id];
    e->str_off = off;
    e->str_len = (uint32_t)len;
    if (put_raw(t, off, (uint32_t)len, &e->raw_off, &e->raw_len) != 0) return oom(where, err, errlen);
    e->flags = TOKF_PRESENT;
    return 0;
}

int tok_merge_add(Tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, const char *where, char *err,
                  size_t errlen) {
    char b1[64];
    int32_t left = tok_strmap_get(&t->strs, t->arena, a, alen);
    if (left < 0) {
        snprintf(err, errlen, "%s: token %s is not in the vocabulary", where, shown(a, alen, b1, sizeof b1));
        return -1;
    }
    int32_t right = tok_strmap_get(&t->strs, t->arena, b, blen);
    if (right < 0) {
        snprintf(err, errlen, "%s: token %s is not in the vocabulary", where, shown(b, blen, b1, sizeof b1));
        return -1;
    }
    char buf[256];
    char *cat = alen + blen <= sizeof buf ? buf : malloc(alen + blen);
    if (!cat) return oom(where, err, errlen);
    memcpy(cat, a, alen);
    memcpy(cat + alen, b, blen);
    int32_t id = tok_strmap_get(&t->strs, t->arena, cat, alen + blen);
    if (id < 0) snprintf(err, errlen, "%s: merged token %s is not in the vocabulary", where,
                         shown(cat, alen + blen, b1, sizeof b1));
    if (cat != buf) free(cat);
    if (id < 0) return -1;
    if (t->nmerges == t->merge_cap) {
        int32_t cap = t->merge_cap ? t->merge_cap * 2 : 1024;
        void *p = realloc(t->merge_list, (size_t)cap * sizeof *t->merge_list);
        if (!p) return oom(where, err, errlen);
        t->merge_list = p;
        t->merge_cap = cap;
    }
    t->merge_list[t->nmerges][0] = left;
    t->merge_list[t->nmerges][1] = right;
    if (tok_pairmap_put(&t->merges, left, right, t->nmerges, id) != 0) return oom(where, err, errlen);
    t->nmerges++;
    return 0;
}

int tok_added_add(Tokenizer *t, const char *content, size_t len, int64_t id, uint32_t flags, const char *where,
                  char *err, size_t errlen) {
    char b1[64], b2[64];
    if (len == 0) {
        snprintf(err, errlen, "%s: added token %lld has empty content", where, (long long)id);
        return -1;
    }
    if (check_id(t, id, where, err, errlen) != 0) return -1;
    int32_t known = tok_strmap_get(&t->strs, t->arena, content, len);
    if (known >= 0 && known != id) {
        snprintf(err, errlen, "%s: added token %s has id %lld but is already token %d", where,
                 shown(content, len, b1, sizeof b1), (long long)id, known);
        return -1;
    }
    TokEntry *e = &t->tok[id];
    if ((e->flags & TOKF_ADDED) && known != id) {
        snprintf(err, errlen, "%s: id %lld is given to both added tokens %s and %s", where, (long long)id,
                 shown(t->arena + e->str_off, e->str_len, b1, sizeof b1), shown(content, len, b2, sizeof b2));
        return -1;
    }
    flags &= TOKF_SPECIAL | TOKF_LSTRIP | TOKF_RSTRIP;
    if (known == id && (e->flags & TOKF_ADDED)) { /* the same token declared again: merge the flags */
        e->flags |= flags;
        return 0;
    }
    uint32_t off;
    if (arena_put(t, content, len, 1, &off) != 0) return oom(where, err, errlen);
    if (known < 0) {
        int32_t old;
        if (tok_strmap_put(&t->strs, t->arena, off, (uint32_t)len, (int32_t)id, &old) < 0)
            return oom(where, err, errlen);
    }
    e = &t->tok[id];
    e->str_off = e->raw_off = off;
    e->str_len = e->raw_len = (uint32_t)len;
    e->flags = TOKF_PRESENT | TOKF_ADDED | flags;
    return 0;
}

int tok_set_pattern(Tokenizer *t, const char *pattern, int literal) {
    free(t->pattern);
    t->pattern = NULL;
    t->literal = literal;
    if (!pattern) return 0;
    t->pattern = strdup(pattern);
    return t->pattern ? 0 : -1;
}

static int cmp_added(const void *pa, const void *pb, void *ctx) {
    const Tokenizer *t = ctx;
    const TokEntry *a = &t->tok[*(const int32_t *)pa], *b = &t->tok[*(const int32_t *)pb];
    uint8_t fa = (uint8_t)t->arena[a->raw_off], fb = (uint8_t)t->arena[b->raw_off];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->raw_len != b->raw_len) return a->raw_len > b->raw_len ? -1 : 1;
    return memcmp(t->arena + a->raw_off, t->arena + b->raw_off, a->raw_len);
}

static int build_added(Tokenizer *t) {
    size_t k = 0;
    for (int32_t i = 0; i < t->n; i++) k += (t->tok[i].flags & TOKF_ADDED) != 0;
    t->added = malloc((k ? k : 1) * sizeof *t->added);
    if (!t->added) return -1;
    t->nadded = 0;
    for (int32_t i = 0; i < t->n; i++)
        if (t->tok[i].flags & TOKF_ADDED) t->added[t->nadded++] = i;
    qsort_r(t->added, t->nadded, sizeof *t->added, cmp_added, t);
    memset(t->added_first, 0, sizeof t->added_first);
    for (size_t i = 0; i < t->nadded; i++) {
        const TokEntry *e = &t->tok[t->added[i]];
        uint8_t b = (uint8_t)t->arena[e->raw_off];
        t->added_first[b + 1]++;
        t->first_any[b] = 1;
        if (!(e->flags & TOKF_SPECIAL)) t->first_plain[b] = 1;
    }
    for (int b = 0; b < 256; b++) t->added_first[b + 1] += t->added_first[b];
    return 0;
}

static int build_raws(Tokenizer *t) {
    if (tok_strmap_init(&t->raws, (size_t)t->n) != 0) return -1;
    for (int32_t i = 0; i < t->n; i++) {
        const TokEntry *e = &t->tok[i];
        if (!(e->flags & TOKF_PRESENT) || (e->flags & TOKF_ADDED)) continue;
        int32_t old;
        if (tok_strmap_put(&t->raws, t->arena, e->raw_off, e->raw_len, i, &old) < 0) return -1;
    }
    return 0;
}

int tok_finish(Tokenizer *t, const char *where, char *err, size_t errlen) {
    if (t->n == 0) {
        snprintf(err, errlen, "%s: the vocabulary is empty", where);
        return -1;
    }
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t k = tok_utf8_put(tok_byte_char((uint8_t)b), s);
        int32_t id = tok_strmap_get(&t->strs, t->arena, s, k);
        if (id < 0 || (t->tok[id].flags & TOKF_ADDED)) {
            snprintf(err, errlen, "%s: the vocabulary has no token for byte 0x%02X ('%.*s'); not a byte-level BPE",
                     where, b, (int)k, s);
            return -1;
        }
        t->byte_id[b] = id;
    }
    t->byte_pairs = malloc(256 * 256 * sizeof *t->byte_pairs);
    if (!t->byte_pairs || !(t->cache = tok_cache_new())) return oom(where, err, errlen);
    t->memo = 1;
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            const TokPairSlot *m = tok_pairmap_get(&t->merges, t->byte_id[a], t->byte_id[b]);
            t->byte_pairs[a * 256 + b] = m ? (TokBytePair){m->rank, m->id} : (TokBytePair){-1, -1};
        }
    if (build_added(t) != 0 || (t->ignore_merges && build_raws(t) != 0)) return oom(where, err, errlen);
    if (tok_regex_compile(t, where, err, errlen) != 0) return -1;
    t->hash = tok_hash_compute(t);
    return 0;
}

int32_t tok_vocab_size(const Tokenizer *t) { return t->n; }

int32_t tok_token_id(const Tokenizer *t, const char *s) {
    return s ? tok_strmap_get(&t->strs, t->arena, s, strlen(s)) : -1;
}

const char *tok_token_str(const Tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n || !(t->tok[id].flags & TOKF_PRESENT)) return NULL;
    return t->arena + t->tok[id].str_off;
}

int tok_is_special(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n && (t->tok[id].flags & TOKF_SPECIAL) != 0;
}

uint64_t tok_hash(const Tokenizer *t) { return t->hash; }

void tok_set_memo(Tokenizer *t, int on) { t->memo = on != 0; }
