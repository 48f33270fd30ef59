/* tok_files.c — reading vocab.json + merges.txt and the slow tokenizers' config files.
 *
 * merges.txt: one merge "a b" per line, rank = position among the merges;
 * an optional first line starting with "#version" is skipped, blank lines
 * are skipped, line ends may be LF or CRLF, and spaces or tabs around a line
 * are ignored (a byte-level token never holds a raw space or tab).
 *
 * tokenizer_config.json (optional): tokenizer_class picks the pre-tokenizer
 * — absent or GPT2Tokenizer[Fast]: the GPT-2 pattern; Qwen2Tokenizer[Fast]:
 * the Qwen2 pattern and NFC; anything else is refused rather than guessed.
 * add_prefix_space is honoured; added_tokens_decoder {"id": {content,
 * special, lstrip, rstrip}} declares added tokens.
 * added_tokens.json (optional) {"text": id} declares added tokens that are
 * not special by themselves.
 * The tokens named by bos/eos/unk/sep/pad/cls/mask_token and
 * additional_special_tokens in tokenizer_config.json and
 * special_tokens_map.json (a string or {"content": ...}) are special; a
 * named token that is neither added nor in vocab.json is an error. As in
 * GPT2Tokenizer, whose default bos/eos/unk it is, "<|endoftext|>" in
 * vocab.json is a special token unless it is declared as an added token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_read.h"
#include "tok_load.h"

#define GET(o, k) cJSON_GetObjectItemCaseSensitive(o, k)

static int load_merges_txt(Tokenizer *t, const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = file_read_all(path, &len);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read (%s)", path, strerror(errno));
        return -1;
    }
    size_t plen = strlen(path);
    char *where = malloc(plen + 32);
    int rc = where ? 0 : -1;
    if (!where) snprintf(err, errlen, "%s: out of memory", path);
    size_t lineno = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        size_t next = e + 1;
        lineno++;
        size_t a = i;
        while (a < e && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (e > a && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r')) e--;
        i = next;
        if (e == a) continue;
        if (lineno == 1 && e - a >= 8 && !memcmp(text + a, "#version", 8)) continue;
        snprintf(where, plen + 32, "%s:%zu", path, lineno);
        const char *sp = memchr(text + a, ' ', e - a);
        if (!sp || sp == text + a || memchr(sp + 1, ' ', (size_t)(text + e - sp - 1)) || sp + 1 == text + e) {
            snprintf(err, errlen, "%s: expected two tokens separated by one space", where);
            rc = -1;
            break;
        }
        rc = tok_merge_add(t, text + a, (size_t)(sp - (text + a)), sp + 1, (size_t)(text + e - sp - 1), where, err,
                           errlen);
    }
    free(where);
    free(text);
    return rc;
}

/* Optional JSON file: 1 absent, 0 parsed (*out), -1 error. */
static int optional_json(const char *dir, const char *name, cJSON **out, char *path, size_t pathcap, char *err,
                         size_t errlen) {
    snprintf(path, pathcap, "%s/%s", dir, name);
    *out = NULL;
    if (!tok_file_exists(path)) return 1;
    *out = tok_parse_json_file(path, err, errlen);
    if (!*out) return -1;
    if (!cJSON_IsObject(*out)) {
        snprintf(err, errlen, "%s: expected a JSON object", path);
        return -1;
    }
    return 0;
}

static int config_style(Tokenizer *t, const cJSON *cfg, const char *path, char *err, size_t errlen) {
    const cJSON *cls = GET(cfg, "tokenizer_class");
    const char *name = cJSON_IsString(cls) ? cls->valuestring : "GPT2Tokenizer";
    const char *pattern;
    if (!strcmp(name, "GPT2Tokenizer") || !strcmp(name, "GPT2TokenizerFast")) {
        pattern = TOK_GPT2_PATTERN;
    } else if (!strcmp(name, "Qwen2Tokenizer") || !strcmp(name, "Qwen2TokenizerFast")) {
        pattern = TOK_QWEN2_PATTERN;
        t->nfc = 1;
    } else {
        snprintf(err, errlen,
                 "%s: tokenizer_class '%.64s' is not supported with vocab.json + merges.txt "
                 "(GPT2Tokenizer, Qwen2Tokenizer; or give a tokenizer.json)",
                 path, name);
        return -1;
    }
    t->prefix_space = cJSON_IsTrue(GET(cfg, "add_prefix_space"));
    if (tok_set_pattern(t, pattern, 0) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

static int added_decoder(Tokenizer *t, const cJSON *cfg, const char *path, char *err, size_t errlen) {
    const cJSON *dec = GET(cfg, "added_tokens_decoder");
    if (!dec || cJSON_IsNull(dec)) return 0;
    if (!cJSON_IsObject(dec)) {
        snprintf(err, errlen, "%s: added_tokens_decoder must be an object", path);
        return -1;
    }
    char where[4200];
    for (const cJSON *it = dec->child; it; it = it->next) {
        char *end;
        errno = 0;
        long long id = strtoll(it->string, &end, 10);
        snprintf(where, sizeof where, "%s: added_tokens_decoder \"%.32s\"", path, it->string);
        if (errno || end == it->string || *end || id < 0) {
            snprintf(err, errlen, "%s: the key must be a token id", where);
            return -1;
        }
        if (tok_add_added_object(t, it, id, where, err, errlen) != 0) return -1;
    }
    return 0;
}

static int added_json(Tokenizer *t, const cJSON *obj, const char *path, char *err, size_t errlen) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || d != (double)(long long)d) {
            snprintf(err, errlen, "%s: token '%.48s' has no integer id", path, it->string);
            return -1;
        }
        if (tok_added_add(t, it->string, strlen(it->string), (long long)d, 0, path, err, errlen) != 0) return -1;
    }
    return 0;
}

static int mark_special(Tokenizer *t, const char *s, const char *path, char *err, size_t errlen) {
    int32_t id = tok_token_id(t, s);
    if (id < 0) {
        snprintf(err, errlen, "%s: special token '%.48s' is neither in vocab.json nor an added token", path, s);
        return -1;
    }
    return tok_added_add(t, s, strlen(s), id, TOKF_SPECIAL, path, err, errlen);
}

static const char *content_of(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_IsObject(v) ? GET(v, "content") : NULL;
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int named_specials(Tokenizer *t, const cJSON *map, const char *path, char *err, size_t errlen) {
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *s = content_of(GET(map, keys[k]));
        if (s && *s && mark_special(t, s, path, err, errlen) != 0) return -1;
    }
    const cJSON *extra = GET(map, "additional_special_tokens");
    for (const cJSON *it = cJSON_IsArray(extra) ? extra->child : NULL; it; it = it->next) {
        const char *s = content_of(it);
        if (s && *s && mark_special(t, s, path, err, errlen) != 0) return -1;
    }
    return 0;
}

int tok_load_files(Tokenizer *t, const char *dir, char *err, size_t errlen) {
    char path[4096];
    cJSON *cfg = NULL, *added = NULL, *map = NULL;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (!tok_file_exists(path)) {
        snprintf(err, errlen, "%s: missing (vocab.json needs merges.txt beside it)", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    cJSON *vocab = tok_parse_json_file(path, err, errlen);
    if (!vocab) return -1;
    int rc = tok_add_vocab_object(t, vocab, path, err, errlen);
    cJSON_Delete(vocab);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        rc = load_merges_txt(t, path, err, errlen);
    }
    char cpath[4096], apath[4096], mpath[4096];
    int has_cfg = rc ? 1 : optional_json(dir, "tokenizer_config.json", &cfg, cpath, sizeof cpath, err, errlen);
    if (has_cfg < 0) rc = -1;
    if (rc == 0) rc = config_style(t, cfg, cpath, err, errlen);
    int has_added = rc ? 1 : optional_json(dir, "added_tokens.json", &added, apath, sizeof apath, err, errlen);
    if (has_added < 0) rc = -1;
    if (rc == 0 && added) rc = added_json(t, added, apath, err, errlen);
    if (rc == 0 && cfg) rc = added_decoder(t, cfg, cpath, err, errlen);
    int has_map = rc ? 1 : optional_json(dir, "special_tokens_map.json", &map, mpath, sizeof mpath, err, errlen);
    if (has_map < 0) rc = -1;
    if (rc == 0 && cfg) rc = named_specials(t, cfg, cpath, err, errlen);
    if (rc == 0 && map) rc = named_specials(t, map, mpath, err, errlen);
    if (rc == 0) {
        int32_t eot = tok_token_id(t, "<|endoftext|>");
        if (eot >= 0 && !(t->tok[eot].flags & TOKF_ADDED))
            rc = tok_added_add(t, "<|endoftext|>", 13, eot, TOKF_SPECIAL, path, err, errlen);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(added);
    cJSON_Delete(map);
    return rc;
}
