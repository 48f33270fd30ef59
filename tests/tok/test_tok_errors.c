/* test_tok_errors.c — tokenizer loading: every error with its exact message, and layouts that must load alike.
 *
 *   test_tok_errors WORK_DIR
 *
 * Each case writes a few files into WORK_DIR/<case>/ and calls tok_load;
 * the message must equal the expected one, with "@" standing for the case's
 * directory. The accepted cases (CRLF merges, merges without #version,
 * blank lines and stray spaces, the same tokenizer as tokenizer.json) must
 * give the same tok_hash as the plain LF vocab.json + merges.txt.
 */
#include "tok_test.h"

static const char *work;

typedef struct {
    const char *name;
    const char *files[6][2]; /* file name, content ("$V" = the byte vocabulary + "ab") */
    const char *want;         /* expected message, "@" = the directory */
} Case;

#define V "$V"
#define TJ_HEAD "{\"model\": {\"type\": \"BPE\", \"vocab\": " V ", \"merges\": [\"a b\"]"
#define TJ(model_extra, rest) TJ_HEAD model_extra "}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}" rest "}"
#define TJ_PRE(pre) TJ_HEAD "}, \"pre_tokenizer\": " pre "}"

static const Case cases[] = {
    {"empty", {{NULL, NULL}}, "@: no tokenizer.json, and no vocab.json + merges.txt"},
    {"no_merges", {{"vocab.json", V}}, "@/merges.txt: missing (vocab.json needs merges.txt beside it)"},
    {"vocab_bad_json", {{"vocab.json", "{\"a\": 1,\n  \"b\": }"}, {"merges.txt", ""}},
     "@/vocab.json:2:8: invalid JSON"},
    {"vocab_empty_file", {{"vocab.json", ""}, {"merges.txt", ""}}, "@/vocab.json:1:1: invalid JSON"},
    {"vocab_array", {{"vocab.json", "[1, 2]"}, {"merges.txt", ""}},
     "@/vocab.json: the vocabulary must be a JSON object {\"token\": id, ...}"},
    {"vocab_float_id", {{"vocab.json", "{\"a\": 1.5}"}, {"merges.txt", ""}},
     "@/vocab.json: token 'a' has no integer id"},
    {"vocab_string_id", {{"vocab.json", "{\"a\": \"1\"}"}, {"merges.txt", ""}},
     "@/vocab.json: token 'a' has no integer id"},
    {"vocab_negative_id", {{"vocab.json", "{\"a\": -1}"}, {"merges.txt", ""}},
     "@/vocab.json: id -1 is out of range (0..16777215)"},
    {"vocab_huge_id", {{"vocab.json", "{\"a\": 4294967296}"}, {"merges.txt", ""}},
     "@/vocab.json: id 4294967296 is out of range (0..16777215)"},
    {"vocab_same_id", {{"vocab.json", "{\"a\": 5, \"b\": 5}"}, {"merges.txt", ""}},
     "@/vocab.json: id 5 is given to both 'a' and 'b'"},
    {"vocab_empty_token", {{"vocab.json", "{\"\": 0}"}, {"merges.txt", ""}}, "@/vocab.json: empty token for id 0"},
    {"vocab_missing_byte", {{"vocab.json", "$A"}, {"merges.txt", ""}},
     "@/vocab.json: the vocabulary has no token for byte 0x41 ('A'); not a byte-level BPE"},
    {"vocab_no_tokens", {{"vocab.json", "{}"}, {"merges.txt", ""}}, "@/vocab.json: the vocabulary is empty"},
    {"merges_unknown_left", {{"vocab.json", V}, {"merges.txt", "#version: 0.2\na b\nzz b\n"}},
     "@/merges.txt:3: token 'zz' is not in the vocabulary"},
    {"merges_unknown_right", {{"vocab.json", V}, {"merges.txt", "a b\r\na zz\r\n"}},
     "@/merges.txt:2: token 'zz' is not in the vocabulary"},
    {"merges_result_missing", {{"vocab.json", V}, {"merges.txt", "#version: 0.2\na c\n"}},
     "@/merges.txt:2: merged token 'ac' is not in the vocabulary"},
    {"merges_three_parts", {{"vocab.json", V}, {"merges.txt", "a b\na b c\n"}},
     "@/merges.txt:2: expected two tokens separated by one space"},
    {"merges_one_part", {{"vocab.json", V}, {"merges.txt", "ab\n"}},
     "@/merges.txt:1: expected two tokens separated by one space"},
    {"merges_two_spaces", {{"vocab.json", V}, {"merges.txt", "a  b\n"}},
     "@/merges.txt:1: expected two tokens separated by one space"},
    {"merges_late_version", {{"vocab.json", V}, {"merges.txt", "a b\n#version: 0.2\n"}},
     "@/merges.txt:2: token '#version:' is not in the vocabulary"},
    {"config_bad_json", {{"vocab.json", V}, {"merges.txt", "a b\n"}, {"tokenizer_config.json", "{\"x\": tru}"}},
     "@/tokenizer_config.json:1:7: invalid JSON"},
    {"config_not_object", {{"vocab.json", V}, {"merges.txt", "a b\n"}, {"tokenizer_config.json", "3"}},
     "@/tokenizer_config.json: expected a JSON object"},
    {"config_class",
     {{"vocab.json", V},
      {"merges.txt", "a b\n"},
      {"tokenizer_config.json", "{\"tokenizer_class\": \"LlamaTokenizer\"}"}},
     "@/tokenizer_config.json: tokenizer_class 'LlamaTokenizer' is not supported with vocab.json + merges.txt "
     "(GPT2Tokenizer, Qwen2Tokenizer; or give a tokenizer.json)"},
    {"config_decoder_key", {{"vocab.json", V}, {"merges.txt", "a b\n"},
                            {"tokenizer_config.json", "{\"added_tokens_decoder\": {\"x\": {\"content\": \"<x>\"}}}"}},
     "@/tokenizer_config.json: added_tokens_decoder \"x\": the key must be a token id"},
    {"config_decoder_content", {{"vocab.json", V}, {"merges.txt", "a b\n"},
                                {"tokenizer_config.json",
                                 "{\"added_tokens_decoder\": {\"300\": {\"special\": true}}}"}},
     "@/tokenizer_config.json: added_tokens_decoder \"300\": an added token needs a string \"content\""},
    {"config_single_word", {{"vocab.json", V}, {"merges.txt", "a b\n"},
                            {"tokenizer_config.json",
                             "{\"added_tokens_decoder\": {\"300\": {\"content\": \"<x>\", \"single_word\": true}}}"}},
     "@/tokenizer_config.json: added_tokens_decoder \"300\": added token '<x>': single_word is not supported"},
    {"config_two_contents", {{"vocab.json", V}, {"merges.txt", "a b\n"},
                             {"tokenizer_config.json", "{\"added_tokens_decoder\": {\"300\": {\"content\": \"<x>\"}}}"},
                             {"added_tokens.json", "{\"<y>\": 300}"}},
     "@/tokenizer_config.json: added_tokens_decoder \"300\": id 300 is given to both added tokens '<y>' and '<x>'"},
    {"added_known", {{"vocab.json", V}, {"merges.txt", "a b\n"}, {"added_tokens.json", "{\"ab\": 300}"}},
     "@/added_tokens.json: added token 'ab' has id 300 but is already token 256"},
    {"added_empty", {{"vocab.json", V}, {"merges.txt", "a b\n"}, {"added_tokens.json", "{\"\": 300}"}},
     "@/added_tokens.json: added token 300 has empty content"},
    {"added_not_int", {{"vocab.json", V}, {"merges.txt", "a b\n"}, {"added_tokens.json", "{\"<x>\": null}"}},
     "@/added_tokens.json: token '<x>' has no integer id"},
    {"special_unknown",
     {{"vocab.json", V}, {"merges.txt", "a b\n"}, {"special_tokens_map.json", "{\"eos_token\": \"<eos>\"}"}},
     "@/special_tokens_map.json: special token '<eos>' is neither in vocab.json nor an added token"},
    {"special_unknown_dict", {{"vocab.json", V}, {"merges.txt", "a b\n"},
                              {"tokenizer_config.json", "{\"additional_special_tokens\": [{\"content\": \"<s>\"}]}"}},
     "@/tokenizer_config.json: special token '<s>' is neither in vocab.json nor an added token"},
    {"json_empty", {{"tokenizer.json", ""}}, "@/tokenizer.json:1:1: invalid JSON"},
    {"json_truncated", {{"tokenizer.json", "{\"model\": {\n\"type\": \"BPE\",\n"}},
     "@/tokenizer.json:2:15: invalid JSON"},
    {"json_array", {{"tokenizer.json", "[]"}}, "@/tokenizer.json: expected a JSON object"},
    {"json_no_model", {{"tokenizer.json", "{\"version\": \"1.0\"}"}}, "@/tokenizer.json: no \"model\" object"},
    {"json_wordpiece", {{"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\"}}"}},
     "@/tokenizer.json: model type 'WordPiece' is not supported"},
    {"json_dropout", {{"tokenizer.json", TJ(", \"dropout\": 0.1", "")}},
     "@/tokenizer.json: BPE dropout is not supported"},
    {"json_prefix", {{"tokenizer.json", TJ(", \"continuing_subword_prefix\": \"##\"", "")}},
     "@/tokenizer.json: continuing_subword_prefix is not supported"},
    {"json_suffix", {{"tokenizer.json", TJ(", \"end_of_word_suffix\": \"</w>\"", "")}},
     "@/tokenizer.json: end_of_word_suffix is not supported"},
    {"json_byte_fallback", {{"tokenizer.json", TJ(", \"byte_fallback\": true", "")}},
     "@/tokenizer.json: byte_fallback is not supported"},
    {"json_vocab_missing", {{"tokenizer.json", "{\"model\": {\"merges\": []}}"}},
     "@/tokenizer.json: model.vocab: the vocabulary must be a JSON object {\"token\": id, ...}"},
    {"json_merges_missing", {{"tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0}}}"}},
     "@/tokenizer.json: model.merges must be an array"},
    {"json_merge_number", {{"tokenizer.json", "{\"model\": {\"vocab\": " V ", \"merges\": [\"a b\", 7]}}"}},
     "@/tokenizer.json: merge 1: expected \"a b\" or [\"a\", \"b\"]"},
    {"json_merge_triple", {{"tokenizer.json", "{\"model\": {\"vocab\": " V ", \"merges\": [[\"a\", \"b\", \"c\"]]}}"}},
     "@/tokenizer.json: merge 0: expected \"a b\" or [\"a\", \"b\"]"},
    {"json_merge_nospace", {{"tokenizer.json", "{\"model\": {\"vocab\": " V ", \"merges\": [\"ab\"]}}"}},
     "@/tokenizer.json: merge 0: expected two tokens separated by one space, got 'ab'"},
    {"json_merge_unknown", {{"tokenizer.json", "{\"model\": {\"vocab\": " V ", \"merges\": [[\"a\", \"zz\"]]}}"}},
     "@/tokenizer.json: merge 0: token 'zz' is not in the vocabulary"},
    {"json_normalizer", {{"tokenizer.json", TJ("", ", \"normalizer\": {\"type\": \"Lowercase\"}")}},
     "@/tokenizer.json: normalizer 'Lowercase' is not supported"},
    {"json_no_pre", {{"tokenizer.json", TJ_PRE("null")}},
     "@/tokenizer.json: a tokenizer without a ByteLevel pre_tokenizer is not supported"},
    {"json_whitespace", {{"tokenizer.json", TJ_PRE("{\"type\": \"Whitespace\"}")}},
     "@/tokenizer.json: pre_tokenizer 'Whitespace' is not supported"},
    {"json_split_removed",
     {{"tokenizer.json", TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                                "{\"Regex\": \"a\"}, \"behavior\": \"Removed\"}, {\"type\": \"ByteLevel\", "
                                "\"use_regex\": false}]}")}},
     "@/tokenizer.json: Split behavior 'Removed' is not supported"},
    {"json_split_invert",
     {{"tokenizer.json", TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                                "{\"Regex\": \"a\"}, \"behavior\": \"Isolated\", \"invert\": true}, {\"type\": "
                                "\"ByteLevel\", \"use_regex\": false}]}")}},
     "@/tokenizer.json: Split with invert is not supported"},
    {"json_split_no_pattern",
     {{"tokenizer.json", TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"behavior\": "
                                "\"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}")}},
     "@/tokenizer.json: Split needs a pattern {\"Regex\": ...} or {\"String\": ...}"},
    {"json_split_then_regex",
     {{"tokenizer.json", TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                                "{\"Regex\": \"a\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]}")}},
     "@/tokenizer.json: ByteLevel after Split with use_regex or add_prefix_space is not supported"},
    {"json_sequence_other",
     {{"tokenizer.json", TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\"}, "
                                "{\"type\": \"ByteLevel\"}]}")}},
     "@/tokenizer.json: pre_tokenizer Sequence (only [Split, ByteLevel] or [ByteLevel]) is not supported"},
    {"json_bad_regex",
     {{"tokenizer.json", TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                                "{\"Regex\": \"(ab\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", "
                                "\"use_regex\": false}]}")}},
     "@/tokenizer.json: the pre-tokenizer pattern does not compile (at offset 3: missing closing parenthesis)"},
    {"json_added_not_array", {{"tokenizer.json", TJ("", ", \"added_tokens\": {}")}},
     "@/tokenizer.json: added_tokens must be an array"},
    {"json_added_no_content", {{"tokenizer.json", TJ("", ", \"added_tokens\": [{\"id\": 300}]")}},
     "@/tokenizer.json: added_tokens[0]: an added token needs a string \"content\""},
    {"json_added_no_id", {{"tokenizer.json", TJ("", ", \"added_tokens\": [{\"content\": \"<x>\"}]")}},
     "@/tokenizer.json: added_tokens[0]: added token '<x>' has no integer \"id\""},
    {"json_added_clash",
     {{"tokenizer.json", TJ("", ", \"added_tokens\": [{\"id\": 300, \"content\": \"<x>\"}, {\"id\": 301, "
                                "\"content\": \"<x>\"}]")}},
     "@/tokenizer.json: added_tokens[1]: added token '<x>' has id 301 but is already token 300"},
};

/* Replaces "$V" with the byte vocabulary + "ab": 256 and "$A" with it minus byte 'A'. */
static void write_case_file(const char *dir, const char *name, const char *content) {
    char vocab_ab[1 << 16];
    static char buf[1 << 17];
    snprintf(vocab_ab, sizeof vocab_ab, "%s", byte_vocab_json(", \"ab\": 256", -1));
    if (!strcmp(content, "$A")) {
        write_str(dir, name, byte_vocab_json(NULL, 'A'));
        return;
    }
    size_t k = 0;
    for (const char *p = content; *p;) {
        if (p[0] == '$' && p[1] == 'V') {
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s", vocab_ab);
            p += 2;
        } else {
            buf[k++] = *p++;
        }
    }
    write_file(dir, name, buf, k);
}

static void expect_message(const char *dir, const char *want_template) {
    char want[8192], err[8192] = "";
    size_t k = 0;
    for (const char *p = want_template; *p && k + 4200 < sizeof want; p++) {
        if (*p == '@') k += (size_t)snprintf(want + k, sizeof want - k, "%s", dir);
        else want[k++] = *p;
    }
    want[k] = 0;
    Tokenizer *t = tok_load(dir, err, sizeof err);
    CHECK(t == NULL, "%s: loaded, want the error \"%s\"", dir, want);
    CHECK(t != NULL || !strcmp(err, want), "\n    got  \"%s\"\n    want \"%s\"", err, want);
    tok_free(t);
}

static uint64_t hash_of(const char *dir) {
    char err[1024];
    Tokenizer *t = tok_load(dir, err, sizeof err);
    CHECK(t != NULL, "%s: %s", dir, err);
    uint64_t h = t ? tok_hash(t) : 0;
    tok_free(t);
    return h;
}

/* The hash of the tokenizer written in WORK/name as merges.txt (+ vocab) or as tokenizer.json. */
static uint64_t layout(const char *name, const char *merges, const char *tokenizer_json) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", work, name);
    make_dir(dir);
    if (tokenizer_json) {
        write_case_file(dir, "tokenizer.json", tokenizer_json);
    } else {
        write_case_file(dir, "vocab.json", V);
        write_str(dir, "merges.txt", merges);
    }
    return hash_of(dir);
}

static void same_layout(const char *name, const char *merges, const char *tokenizer_json, uint64_t want) {
    uint64_t h = layout(name, merges, tokenizer_json);
    CHECK(h == want, "layout %s: hash %016llx, want %016llx", name, (unsigned long long)h, (unsigned long long)want);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_tok_errors WORK_DIR\n");
        return 2;
    }
    work = argv[1];
    make_dir(work);
    char dir[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        snprintf(dir, sizeof dir, "%s/%s", work, c->name);
        make_dir(dir);
        static const char *const all[] = {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                                          "added_tokens.json", "special_tokens_map.json"};
        for (size_t f = 0; f < sizeof all / sizeof all[0]; f++) remove_file(dir, all[f]);
        for (int f = 0; f < 6 && c->files[f][0]; f++) write_case_file(dir, c->files[f][0], c->files[f][1]);
        expect_message(dir, c->want);
    }
    /* not a directory, and no such path */
    snprintf(dir, sizeof dir, "%s/no_merges/vocab.json", work);
    expect_message(dir, "@: not a directory");
    snprintf(dir, sizeof dir, "%s/does_not_exist", work);
    expect_message(dir, "@: No such file or directory");

    /* layouts that must give the same tokenizer as "#version" + LF */
    snprintf(dir, sizeof dir, "%s/lf", work);
    make_dir(dir);
    write_case_file(dir, "vocab.json", V);
    write_str(dir, "merges.txt", "#version: 0.2\na b\n");
    uint64_t base = hash_of(dir);
    same_layout("crlf", "#version: 0.2\r\na b\r\n", NULL, base);
    same_layout("no_header", "a b\n", NULL, base);
    same_layout("no_final_newline", "a b", NULL, base);
    same_layout("blank_lines_spaces", "#version: 0.2\n\n  a b \t\r\n\n", NULL, base);
    same_layout("json_strings", NULL, TJ("", ""), base);
    same_layout("json_pairs", NULL, "{\"model\": {\"vocab\": " V ", \"merges\": [[\"a\", \"b\"]]}, \"pre_tokenizer\": "
                               "{\"type\": \"ByteLevel\", \"use_regex\": true}, \"normalizer\": null}", base);
    /* and some that must not */
    char other[4096];
    snprintf(other, sizeof other, "%s/other_merge", work);
    make_dir(other);
    write_str(other, "vocab.json", byte_vocab_json(", \"ab\": 256, \"bc\": 257", -1));
    write_str(other, "merges.txt", "b c\na b\n");
    CHECK(hash_of(other) != base, "an extra merge must change the hash");
    write_str(other, "merges.txt", "a b\n");
    CHECK(hash_of(other) != base, "an extra token must change the hash");
    CHECK(layout("split_json", NULL,
                 TJ_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                        "{\"Regex\": \"\\\\s+\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", "
                        "\"use_regex\": false}]}")) != base,
          "another pattern must change the hash");
    CHECK(layout("nfc_json", NULL, TJ("", ", \"normalizer\": {\"type\": \"NFC\"}")) != base,
          "NFC must change the hash");
    if (tt_failures) fprintf(stderr, "%d failures\n", tt_failures);
    else printf("test_tok_errors: %zu error cases, all passed\n", sizeof cases / sizeof cases[0] + 2);
    return tt_failures != 0;
}
