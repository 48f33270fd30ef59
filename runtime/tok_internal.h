/* tok_internal.h — the Tokenizer structure and the pieces the tok_*.c files share.
 *
 * A Tokenizer owns one character arena holding every token's two spellings:
 * `str` (the form vocab.json uses: byte-level characters for model tokens,
 * the literal text for added tokens) and `raw` (the bytes the token stands
 * for). Two open-addressing hash tables index it: TokStrMap (spelling -> id)
 * and TokPairMap ((left id, right id) -> merge rank and merged id). Loading
 * goes through the builder calls below (tok_vocab_add, tok_merge_add,
 * tok_added_add, tok_finish) whichever file layout the tokenizer came in,
 * so both layouts end up in exactly the same structure (and the same hash).
 */
#ifndef DPOC_TOK_INTERNAL_H
#define DPOC_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* The pre-tokenizer patterns, exactly as Hugging Face spells them. */
#define TOK_GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define TOK_QWEN2_PATTERN                                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+" \
    "|\\s+(?!\\S)|\\s+"

enum {
    TOKF_PRESENT = 1, /* the id has a token (ids may have holes) */
    TOKF_ADDED = 2,   /* an added token: matched as a whole in the text */
    TOKF_SPECIAL = 4, /* ...and a special one (only with TOK_PARSE_SPECIAL) */
    TOKF_LSTRIP = 8,  /* swallows white space on its left */
    TOKF_RSTRIP = 16, /* swallows white space on its right */
};

typedef struct TokEntry {
    uint32_t str_off, str_len; /* spelling in the arena */
    uint32_t raw_off, raw_len; /* bytes in the arena */
    uint32_t flags;
} TokEntry;

typedef struct TokStrSlot {
    uint32_t off, len, hash;
    int32_t id; /* -1: empty */
} TokStrSlot;

typedef struct TokStrMap {
    TokStrSlot *slots;
    size_t mask, count; /* capacity is mask + 1, a power of two */
} TokStrMap;

typedef struct TokPairSlot {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, id;
} TokPairSlot;

typedef struct TokPairMap {
    TokPairSlot *slots;
    size_t mask, count;
} TokPairMap;

typedef struct TokBytePair {
    int32_t rank, id; /* rank -1: no merge */
} TokBytePair;

/* tok_cache.c — bounded memo of pre-token -> ids, thread-safe */
#define TOK_CACHE_MAX_BYTES 26
#define TOK_CACHE_MAX_IDS 8
typedef struct TokCache TokCache;
TokCache *tok_cache_new(void);
void tok_cache_free(TokCache *c);
/* Number of ids copied to ids[] (at most TOK_CACHE_MAX_IDS), or -1 on a miss. */
int tok_cache_get(TokCache *c, uint32_t hash, const uint8_t *p, size_t len, int32_t *ids);
void tok_cache_put(TokCache *c, uint32_t hash, const uint8_t *p, size_t len, const int32_t *ids, size_t n);

struct Tokenizer {
    int32_t n; /* ids 0..n-1 */
    TokEntry *tok;
    size_t tok_cap;
    char *arena;
    size_t arena_len, arena_cap;
    TokStrMap strs;     /* spelling -> id (model and added tokens) */
    TokStrMap raws;     /* raw bytes -> id, model tokens; only with ignore_merges */
    TokPairMap merges;  /* (left, right) -> rank, merged id */
    int32_t (*merge_list)[2]; /* by line: left, right (for the hash) */
    int32_t nmerges, merge_cap;
    int32_t byte_id[256]; /* the token of each single byte */
    TokBytePair *byte_pairs; /* [a * 256 + b]: the merge of bytes a, b (first BPE step) */
    TokCache *cache;
    int memo; /* use the cache */

    /* pre-tokenizer and normaliser */
    char *pattern;     /* NULL: no split (ByteLevel use_regex false) */
    int literal;       /* the pattern is a literal string (Split String) */
    int nfc;           /* NFC-normalise text before pre-tokenising */
    int prefix_space;  /* ByteLevel add_prefix_space */
    int ignore_merges; /* a pre-token that is itself a token is not split */
    pcre2_code *re;

    /* added tokens, ids sorted by first byte, then longest first */
    int32_t *added;
    size_t nadded;
    uint32_t added_first[257];      /* added[added_first[b] .. added_first[b+1]) start with byte b */
    uint8_t first_any[256];         /* some added token starts with this byte */
    uint8_t first_plain[256];       /* some non-special added token does */
    uint64_t hash;
};

/* tok_bytes.c — the byte-level alphabet and UTF-8 helpers */
uint32_t tok_byte_char(uint8_t b);             /* byte -> code point of its character */
int tok_char_byte(uint32_t cp);                /* code point -> byte, -1 if not in the alphabet */
size_t tok_utf8_put(uint32_t cp, char *out);   /* writes 1..4 bytes */
/* Length of the valid UTF-8 sequence at p (1..4; code point in *cp), or 0 if
 * the bytes there are not valid UTF-8 (overlong, surrogate, > U+10FFFF, cut). */
size_t tok_utf8_next(const uint8_t *p, size_t len, uint32_t *cp);
/* Length of the longest valid UTF-8 prefix of p. */
size_t tok_utf8_valid_prefix(const uint8_t *p, size_t len);
int tok_is_white_space(uint32_t cp); /* Unicode White_Space */

/* tok_maps.c — the hash tables */
uint32_t tok_str_hash(const char *s, size_t len);
int tok_strmap_init(TokStrMap *m, size_t expected);
void tok_strmap_free(TokStrMap *m);
/* id of the string, -1 if absent */
int32_t tok_strmap_get(const TokStrMap *m, const char *arena, const char *s, size_t len);
/* 0 inserted, 1 already present (*old set), -1 out of memory */
int tok_strmap_put(TokStrMap *m, const char *arena, uint32_t off, uint32_t len, int32_t id, int32_t *old);
int tok_pairmap_init(TokPairMap *m, size_t expected);
void tok_pairmap_free(TokPairMap *m);
const TokPairSlot *tok_pairmap_get(const TokPairMap *m, int32_t left, int32_t right);
int tok_pairmap_put(TokPairMap *m, int32_t left, int32_t right, int32_t rank, int32_t id); /* replaces */

/* tok_vocab.c — building a tokenizer (where = "file" or "file:line" for messages) */
Tokenizer *tok_new(void);
int tok_vocab_add(Tokenizer *t, const char *str, size_t len, int64_t id, const char *where, char *err, size_t errlen);
int tok_merge_add(Tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, const char *where, char *err,
                  size_t errlen);
int tok_added_add(Tokenizer *t, const char *content, size_t len, int64_t id, uint32_t flags, const char *where,
                  char *err, size_t errlen);
int tok_set_pattern(Tokenizer *t, const char *pattern, int literal);
/* Checks and indexes: byte tokens, added-token table, regex, hash. */
int tok_finish(Tokenizer *t, const char *where, char *err, size_t errlen);

/* tok_regex.c — compiling the pre-tokenizer pattern */
int tok_regex_compile(Tokenizer *t, const char *where, char *err, size_t errlen);

/* tok_hash.c */
uint64_t tok_hash_compute(const Tokenizer *t);

/* tok_bpe.c — BPE over one pre-token; scratch reused across calls */
typedef struct TokScratch {
    int32_t *sym;  /* per symbol: id, next, prev (3 per symbol) */
    size_t sym_cap;
    struct TokHeapItem *heap;
    size_t heap_cap;
    char *norm; /* NFC output (utf8proc works in 32-bit units) */
    size_t norm_cap;
    char *pre; /* prefix-space copy */
    size_t pre_cap;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
} TokScratch;
void tok_scratch_free(TokScratch *s);
/* Appends the ids of the pre-token p[0..len). 0 ok, -1 out of memory. */
int tok_bpe_word(const Tokenizer *t, TokScratch *s, const uint8_t *p, size_t len, int32_t **ids, size_t *n,
                 size_t *cap);
int tok_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id);

/* tok_pretok.c — one stretch of text without added tokens: NFC, regex, BPE */
int tok_encode_text(const Tokenizer *t, TokScratch *s, const uint8_t *p, size_t len, int32_t **ids, size_t *n,
                    size_t *cap);

#endif
