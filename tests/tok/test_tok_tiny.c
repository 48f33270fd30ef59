/* test_tok_tiny.c — the tokenizer on small vocabularies, with ids worked out by hand.
 *
 *   test_tok_tiny DATA_DIR WORK_DIR     (DATA_DIR = tests/data/tok)
 *
 * tests/data/tok/tiny has the 256 byte tokens (id = byte value) and 18
 * merges (tests/tok/make_vocabs.py); every expected id list below is
 * derived in the comment next to it from the GPT-2 pattern and the merge
 * ranks. Then: special-token policy, lstrip/rstrip, longest match,
 * decoding and its errors, NUL and invalid UTF-8, tokenizer.json variants
 * written into WORK_DIR (same tokenizer as JSON, ignore_merges,
 * add_prefix_space, a literal Split, NFC), memo on/off and four threads
 * giving identical ids, and 256 KiB inputs that are a single pre-token.
 */
#include <pthread.h>

#include "tok_test.h"

static const char *data_dir, *work_dir;

static Tokenizer *load(const char *dir) {
    char err[512];
    Tokenizer *t = tok_load(dir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "cannot load %s: %s\n", dir, err);
        exit(1);
    }
    return t;
}

#define S(lit) lit, sizeof(lit) - 1

static void test_hand_worked(const Tokenizer *t) {
    /* merge ranks: 0 l+l=256, 1 Ġ+t=257, 2 h+e=258, 3 Ġt+he=259, 4 a+a=260, 5 aa+aa=261, 6 ll+o=262,
     * 7 he+llo=263, 8 '+s=264, 9 e+l=265, 10 Ġ+w=266, 11 o+r=267, 12 Ġw+or=268, 13 l+d=269,
     * 14 Ġwor+ld=270, 15 ä+½=271, 16 ä½+ł=272 (你), 17 Ġ+Ġ=273 */
    /* h e l l o: l+l (0) before h+e (2) before e+l (9): h e ll o -> he ll o -> he llo (6) -> hello (7) */
    expect_ids(t, "hello", 0, IDS(263));
    /* Ġ t h e: Ġt (1), he (2), Ġthe (3) */
    expect_ids(t, " the", 0, IDS(259));
    /* "hello", " world": Ġ w o r l d -> Ġw (10), or (11), Ġwor (12), ld (13), Ġworld (14) */
    expect_ids(t, "hello world", 0, IDS(263, 270));
    /* a a a a a: a+a at 0 and 2 (leftmost first; the pair at 1 and 3 is gone), aa+aa: aaaa a */
    expect_ids(t, "aaaaa", 0, IDS(261, 97));
    expect_ids(t, "aaa", 0, IDS(260, 97));
    /* GPT-2 contractions are lower case only: "it", "'s"; but "IT", "'", "S" */
    expect_ids(t, "it's", 0, IDS(105, 116, 264));
    expect_ids(t, "IT'S", 0, IDS(73, 84, 39, 83));
    /* NUL is punctuation to the pattern: "a", "\0", "b" */
    expect_ids(t, "a\0b", 0, IDS(97, 0, 98));
    expect_ids(t, "\0", 0, IDS(0));
    /* 你你 = e4 bd a0 e4 bd a0, one \p{L}+ pre-token: ä½ twice (15), then ä½ł twice (16) */
    expect_ids(t, "\xe4\xbd\xa0\xe4\xbd\xa0", 0, IDS(272, 272));
    /* "  x": \s+(?!\S) takes one space, then " x": Ġ x (no merge) */
    expect_ids(t, "  x", 0, IDS(32, 32, 120));
    /* three spaces at the end: one pre-token, Ġ+Ġ (17) then Ġ */
    expect_ids(t, "   ", 0, IDS(273, 32));
    /* "\r\n" is one \s+ pre-token of two byte tokens */
    expect_ids(t, "\r\n", 0, IDS(13, 10));
    /* digits: " ?\p{N}+" keeps "123" together; no merges */
    expect_ids(t, "x 123", 0, IDS(120, 32, 49, 50, 51));
    expect_none(t, "", 0);
    expect_none(t, "", TOK_PARSE_SPECIAL);
    /* not UTF-8: every such byte is its own token; "a" before it is a normal run */
    expect_ids(t, "\xff", 0, IDS(255));
    expect_ids(t, "a\xe4\xbd", 0, IDS(97, 228, 189));
    expect_ids(t, "\xc0\xaf" "hello", 0, IDS(192, 175, 263));
    expect_ids(t, "\xed\xa0\x80", 0, IDS(237, 160, 128)); /* a UTF-16 surrogate */
}

static void test_added(const Tokenizer *t) {
    /* special text is plain text by default: "x", "<|", "endoftext", "|>", "y" (no merge applies) */
    expect_ids(t, "x<|endoftext|>y", 0,
               IDS(120, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62, 121));
    expect_ids(t, "x<|endoftext|>y", TOK_PARSE_SPECIAL, IDS(120, 300, 121));
    /* a non-special added token is always matched */
    expect_ids(t, "x<tool>y", 0, IDS(120, 301, 121));
    expect_ids(t, "x<tool>y", TOK_PARSE_SPECIAL, IDS(120, 301, 121));
    /* longest match: "<tool>s" (304) over "<tool>" (301) */
    expect_ids(t, "<tool>s", 0, IDS(304));
    expect_ids(t, "<tool>t", 0, IDS(301, 116));
    /* <mask> has lstrip: the two spaces before it go with it */
    expect_ids(t, "a  <mask>b", TOK_PARSE_SPECIAL, IDS(97, 302, 98));
    /* <|sep|> has rstrip: the spaces (and newline) after it go with it */
    expect_ids(t, "<|sep|> \n b", TOK_PARSE_SPECIAL, IDS(303, 98));
    /* back to back, and at both ends */
    expect_ids(t, "<|endoftext|><|endoftext|>", TOK_PARSE_SPECIAL, IDS(300, 300));
    expect_ids(t, "<|endoftext|", TOK_PARSE_SPECIAL, IDS(60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124));
    CHECK(tok_vocab_size(t) == 305, "vocab size %d", tok_vocab_size(t));
    CHECK(tok_token_id(t, "hello") == 263, "hello");
    CHECK(tok_token_id(t, "Ġworld") == 270, "Ġworld");
    CHECK(tok_token_id(t, "<tool>") == 301, "<tool>");
    CHECK(tok_token_id(t, "nope") == -1, "nope");
    CHECK(tok_token_str(t, 270) && !strcmp(tok_token_str(t, 270), "Ġworld"), "str 270");
    CHECK(tok_token_str(t, 0) && !strcmp(tok_token_str(t, 0), "Ā"), "str 0");
    CHECK(tok_token_str(t, 280) == NULL, "hole 280");
    CHECK(tok_token_str(t, 305) == NULL && tok_token_str(t, -1) == NULL, "out of range");
    CHECK(tok_is_special(t, 300) && tok_is_special(t, 302) && !tok_is_special(t, 301) && !tok_is_special(t, 263),
          "special flags");
}

static void expect_decode(const Tokenizer *t, const int32_t *ids, size_t n, const char *want, size_t wlen,
                          const char *want_err) {
    char *out = NULL, err[256] = "";
    size_t len = 0;
    int rc = tok_decode(t, ids, n, &out, &len, err, sizeof err);
    if (want_err) {
        CHECK(rc == -1 && !strcmp(err, want_err), "decode error '%s', want '%s'", err, want_err);
    } else {
        CHECK(rc == 0 && len == wlen && !memcmp(out, want, wlen) && out[len] == 0, "decode gave %d '%.*s'", rc,
              (int)len, out ? out : "");
    }
    free(out);
}

static void test_decode(const Tokenizer *t) {
    expect_decode(t, IDS(263, 270), S("hello world"), NULL);
    expect_decode(t, IDS(300, 301, 302), S("<|endoftext|><tool><mask>"), NULL);
    expect_decode(t, IDS(228), S("\xe4"), NULL); /* part of a character: as is */
    expect_decode(t, IDS(97, 0, 98), S("a\0b"), NULL);
    expect_decode(t, NULL, 0, S(""), NULL);
    expect_decode(t, IDS(97, 280), NULL, 0, "id 280 at position 1 is not in the vocabulary (305 tokens)");
    expect_decode(t, IDS(305), NULL, 0, "id 305 at position 0 is not in the vocabulary (305 tokens)");
    expect_decode(t, IDS(1, 2, -7), NULL, 0, "id -7 at position 2 is not in the vocabulary (305 tokens)");
}

/* ---- tokenizer.json variants ------------------------------------------------------------ */

static Tokenizer *load_json(const char *name, const char *json) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", work_dir, name);
    make_dir(dir);
    write_str(dir, "tokenizer.json", json);
    return load(dir);
}

static char json_buf[1 << 17];

/* A tokenizer.json with the byte vocabulary plus extra tokens and merges. */
static const char *tj(const char *extra_vocab, const char *merges, const char *pre, const char *normalizer,
                      const char *model_extra, const char *added) {
    snprintf(json_buf, sizeof json_buf,
             "{\"version\": \"1.0\", \"added_tokens\": [%s], \"normalizer\": %s, \"pre_tokenizer\": %s,\n"
             " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null%s,\n"
             "  \"vocab\": %s,\n  \"merges\": [%s]}}\n",
             added, normalizer, pre, model_extra, byte_vocab_json(extra_vocab, -1), merges);
    return json_buf;
}

#define BYTELEVEL "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}"

static void test_json_variants(const Tokenizer *tiny) {
    /* the tiny tokenizer as tokenizer.json (merges as strings and as pairs): same hash, same ids */
    const char *vocab_extra =
        ", \"ll\": 256, \"Ġt\": 257, \"he\": 258, \"Ġthe\": 259, \"aa\": 260, \"aaaa\": 261, \"llo\": 262, "
        "\"hello\": 263, \"'s\": 264, \"el\": 265, \"Ġw\": 266, \"or\": 267, \"Ġwor\": 268, \"ld\": 269, "
        "\"Ġworld\": 270, \"ä½\": 271, \"ä½ł\": 272, \"ĠĠ\": 273";
    const char *merges_str = "\"l l\", \"Ġ t\", \"h e\", \"Ġt he\", \"a a\", \"aa aa\", \"ll o\", \"he llo\", \"' s\", "
                             "\"e l\", \"Ġ w\", \"o r\", \"Ġw or\", \"l d\", \"Ġwor ld\", \"ä ½\", \"ä½ ł\", \"Ġ Ġ\"";
    const char *merges_pairs =
        "[\"l\", \"l\"], [\"Ġ\", \"t\"], [\"h\", \"e\"], [\"Ġt\", \"he\"], [\"a\", \"a\"], [\"aa\", \"aa\"], "
        "[\"ll\", \"o\"], [\"he\", \"llo\"], [\"'\", \"s\"], [\"e\", \"l\"], [\"Ġ\", \"w\"], [\"o\", \"r\"], "
        "[\"Ġw\", \"or\"], [\"l\", \"d\"], [\"Ġwor\", \"ld\"], [\"ä\", \"½\"], [\"ä½\", \"ł\"], [\"Ġ\", \"Ġ\"]";
    const char *added =
        "{\"id\": 300, \"content\": \"<|endoftext|>\", \"special\": true},"
        "{\"id\": 301, \"content\": \"<tool>\", \"special\": false},"
        "{\"id\": 302, \"content\": \"<mask>\", \"special\": true, \"lstrip\": true},"
        "{\"id\": 303, \"content\": \"<|sep|>\", \"special\": true, \"rstrip\": true},"
        "{\"id\": 304, \"content\": \"<tool>s\", \"special\": false}";
    for (int pairs = 0; pairs < 2; pairs++) {
        Tokenizer *t = load_json(pairs ? "tiny_pairs" : "tiny_strings",
                                 tj(vocab_extra, pairs ? merges_pairs : merges_str, BYTELEVEL, "null", "", added));
        CHECK(tok_hash(t) == tok_hash(tiny), "tokenizer.json (pairs=%d) hash %016llx, tiny dir %016llx", pairs,
              (unsigned long long)tok_hash(t), (unsigned long long)tok_hash(tiny));
        test_hand_worked(t);
        test_added(t);
        tok_free(t);
    }
    /* ignore_merges: "abc" is a token no merge builds; with the flag it is taken whole */
    const char *abc_vocab = ", \"bc\": 256, \"abc\": 257";
    Tokenizer *t = load_json("ignore_off", tj(abc_vocab, "\"b c\"", BYTELEVEL, "null", "", ""));
    expect_ids(t, "abc", 0, IDS(97, 256));
    uint64_t h_off = tok_hash(t);
    tok_free(t);
    t = load_json("ignore_on", tj(abc_vocab, "\"b c\"", BYTELEVEL, "null", ", \"ignore_merges\": true", ""));
    expect_ids(t, "abc", 0, IDS(257));
    expect_ids(t, "abc abcd", 0, IDS(257, 32, 97, 256, 100)); /* " abcd" is no token: BPE */
    CHECK(tok_hash(t) != h_off, "ignore_merges must change the hash");
    tok_free(t);
    /* add_prefix_space: "the" is encoded as " the"; a leading space is not doubled */
    t = load_json("prefix", tj(vocab_extra, merges_str,
                               "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}", "null", "",
                               added));
    expect_ids(t, "the", 0, IDS(259));
    expect_ids(t, " the", 0, IDS(259));
    expect_ids(t, "the<tool>the", 0, IDS(259, 301, 259)); /* per stretch between added tokens */
    tok_free(t);
    /* a literal Split ("-", Isolated) before ByteLevel without regex; merge a+- would apply without it */
    const char *dash_vocab = ", \"a-\": 256";
    t = load_json("nosplit",
                  tj(dash_vocab, "\"a -\"", "{\"type\": \"ByteLevel\", \"use_regex\": false}", "null", "", ""));
    expect_ids(t, "a-b a", 0, IDS(256, 98, 32, 97)); /* the whole text is one pre-token */
    tok_free(t);
    t = load_json("split_string",
                  tj(dash_vocab, "\"a -\"",
                     "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"String\": "
                     "\"-\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
                     "\"add_prefix_space\": false, \"use_regex\": false}]}",
                     "null", "", ""));
    expect_ids(t, "a-b a", 0, IDS(97, 45, 98, 32, 97)); /* "a", "-", "b a" */
    tok_free(t);
    /* NFC: e + U+0301 becomes é (c3 a9); without the normaliser the bytes stay */
    t = load_json("nfc", tj("", "", BYTELEVEL, "{\"type\": \"NFC\"}", "", ""));
    expect_ids(t, "e\xcc\x81", 0, IDS(0xc3, 0xa9));
    tok_free(t);
    t = load_json("nfc_seq", tj("", "", BYTELEVEL, "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}]}",
                                "", ""));
    expect_ids(t, "e\xcc\x81", 0, IDS(0xc3, 0xa9));
    tok_free(t);
    expect_ids(tiny, "e\xcc\x81", 0, IDS(101, 0xcc, 0x81));
}

/* ---- memo, threads, long inputs --------------------------------------------------------- */

static char *read_text(const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/text/%s", data_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

typedef struct {
    const Tokenizer *t;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
} Job;

static void *encode_job(void *arg) {
    Job *j = arg;
    size_t cap = 0;
    for (int rep = 0; rep < 3; rep++) { /* the memo fills on the first pass and is used after */
        free(j->ids);
        j->ids = NULL;
        j->n = cap = 0;
        if (tok_encode(j->t, j->text, j->len, 0, &j->ids, &j->n, &cap) != 0) j->n = (size_t)-1;
    }
    return NULL;
}

static void test_memo_threads(Tokenizer *t, const char *name) {
    size_t len;
    char *text = read_text(name, &len);
    Job cold = {t, text, len, NULL, 0};
    tok_set_memo(t, 0);
    encode_job(&cold);
    tok_set_memo(t, 1);
    Job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (Job){t, text, len, NULL, 0};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].n == cold.n && !memcmp(jobs[i].ids, cold.ids, cold.n * sizeof *cold.ids),
              "%s: thread %d with the memo differs from one thread without it", name, i);
        free(jobs[i].ids);
    }
    char *out, err[256];
    size_t olen;
    CHECK(tok_decode(t, cold.ids, cold.n, &out, &olen, err, sizeof err) == 0 && olen == len && !memcmp(out, text, len),
          "%s: decode(encode(text)) != text", name);
    free(out);
    free(cold.ids);
    free(text);
}

static void roundtrip_big(const Tokenizer *t, const char *what, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, olen = 0;
    char *out = NULL, err[256];
    CHECK(tok_encode(t, text, len, 0, &ids, &n, &cap) == 0, "%s: encode failed", what);
    CHECK(tok_decode(t, ids, n, &out, &olen, err, sizeof err) == 0 && olen == len && !memcmp(out, text, len),
          "%s: decode(encode(x)) != x", what);
    free(ids);
    free(out);
}

static void test_big(const Tokenizer *t, int nfc) {
    size_t len = 256 << 10;
    char *buf = malloc(len);
    memset(buf, ' ', len);
    roundtrip_big(t, "256 KiB of spaces", buf, len);
    buf[len - 1] = 'x';
    roundtrip_big(t, "256 KiB of spaces then x", buf, len);
    memset(buf, 'a', len);
    roundtrip_big(t, "a 256 KiB word", buf, len);
    memset(buf, '\n', len);
    roundtrip_big(t, "256 KiB of newlines", buf, len);
    uint64_t x = 7;
    for (size_t i = 0; i < len; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (char)(x >> 56);
        /* with NFC, keep to ASCII and bytes that start no UTF-8 sequence: nothing to normalise */
        if (nfc && (uint8_t)buf[i] >= 0xC0) buf[i] = (char)((uint8_t)buf[i] & 0xBF);
    }
    roundtrip_big(t, "256 KiB of random bytes", buf, len);
    for (size_t i = 0; i + 3 <= len; i += 3) memcpy(buf + i, "\xe4\xbd\xa0", 3);
    roundtrip_big(t, "a 256 KiB run of one CJK character", buf, len - len % 3);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_tok_tiny DATA_DIR WORK_DIR\n");
        return 2;
    }
    data_dir = argv[1];
    work_dir = argv[2];
    make_dir(work_dir);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny", data_dir);
    Tokenizer *tiny = load(dir);
    test_hand_worked(tiny);
    test_added(tiny);
    test_decode(tiny);
    test_json_variants(tiny);
    test_memo_threads(tiny, "en.txt");
    test_memo_threads(tiny, "zh.txt");
    test_big(tiny, 0);
    snprintf(dir, sizeof dir, "%s/bytes", data_dir);
    Tokenizer *bytes = load(dir);
    test_memo_threads(bytes, "en.txt");
    test_memo_threads(bytes, "zh.txt");
    test_big(bytes, 1);
    CHECK(tok_vocab_size(bytes) == 299, "bytes vocab size %d", tok_vocab_size(bytes));
    CHECK(tok_token_id(bytes, "<|im_start|>") == 297 && tok_token_id(bytes, "<|im_end|>") == 298 &&
              tok_token_id(bytes, "<|endoftext|>") == 296 && tok_is_special(bytes, 297),
          "bytes: ChatML tokens");
    /* Qwen2 pattern: single digits, case-insensitive contractions, NFC */
    expect_ids(bytes, "42", 0, IDS(52, 50));
    expect_ids(bytes, "'S", 0, IDS(39, 83)); /* one pre-token "'S"; no merge */
    expect_ids(bytes, "<|im_start|>user", TOK_PARSE_SPECIAL, IDS(297, 117, 115, 260));
    expect_ids(bytes, "e\xcc\x81", 0, IDS(0xc3, 0xa9));
    tok_free(bytes);
    tok_free(tiny);
    if (tt_failures) fprintf(stderr, "%d failures\n", tt_failures);
    else printf("test_tok_tiny: all passed\n");
    return tt_failures != 0;
}
