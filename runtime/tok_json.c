/* tok_json.c — reading a Hugging Face tokenizer.json.
 *
 * Accepted: model BPE (type "BPE" or absent) with vocab, merges as "a b"
 * strings or ["a", "b"] pairs, ignore_merges; no dropout, no
 * continuing_subword_prefix / end_of_word_suffix, no byte_fallback (those
 * are not byte-level BPE). normalizer: null, NFC, or a Sequence of NFC.
 * pre_tokenizer: ByteLevel (use_regex true: the GPT-2 pattern; false: no
 * split; add_prefix_space honoured), or a Sequence of one Split (pattern
 * {"Regex": ...} or {"String": ...}, behavior "Isolated", not inverted)
 * followed by ByteLevel with use_regex false and no prefix space (Qwen2,
 * Llama-3). added_tokens with their special / lstrip / rstrip flags. The
 * decoder and post_processor are not read: decoding is the byte-level
 * inverse, and BOS/EOS come from the chat template, not the tokenizer.
 * Anything else is refused with a message naming the field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_load.h"

#define GET(o, k) cJSON_GetObjectItemCaseSensitive(o, k)

static int unsupported(const char *where, const char *what, const char *value, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: %s%s%.64s%s is not supported", where, what, value ? " '" : "", value ? value : "",
             value ? "'" : "");
    return -1;
}

static const char *type_of(const cJSON *o) {
    const cJSON *ty = GET(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

static int empty_or_null(const cJSON *v) {
    return !v || cJSON_IsNull(v) || (cJSON_IsString(v) && v->valuestring[0] == 0);
}

static int load_merges(Tokenizer *t, const cJSON *merges, const char *path, char *err, size_t errlen) {
    if (!cJSON_IsArray(merges)) {
        snprintf(err, errlen, "%s: model.merges must be an array", path);
        return -1;
    }
    size_t plen = strlen(path);
    char *where = malloc(plen + 40);
    if (!where) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int i = 0, rc = 0;
    for (const cJSON *m = merges->child; m && rc == 0; m = m->next, i++) {
        snprintf(where, plen + 40, "%s: merge %d", path, i);
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) {
                snprintf(err, errlen, "%s: expected two tokens separated by one space, got '%.64s'", where, s);
                rc = -1;
            } else {
                rc = tok_merge_add(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), where, err, errlen);
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            rc = tok_merge_add(t, a, strlen(a), b, strlen(b), where, err, errlen);
        } else {
            snprintf(err, errlen, "%s: expected \"a b\" or [\"a\", \"b\"]", where);
            rc = -1;
        }
    }
    free(where);
    return rc;
}

static int load_model(Tokenizer *t, const cJSON *model, const char *path, char *err, size_t errlen) {
    if (!cJSON_IsObject(model)) {
        snprintf(err, errlen, "%s: no \"model\" object", path);
        return -1;
    }
    const cJSON *ty = GET(model, "type");
    if (ty && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "BPE")))
        return unsupported(path, "model type", cJSON_IsString(ty) ? ty->valuestring : "?", err, errlen);
    const cJSON *dropout = GET(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout)) return unsupported(path, "BPE dropout", NULL, err, errlen);
    if (!empty_or_null(GET(model, "continuing_subword_prefix")))
        return unsupported(path, "continuing_subword_prefix", NULL, err, errlen);
    if (!empty_or_null(GET(model, "end_of_word_suffix")))
        return unsupported(path, "end_of_word_suffix", NULL, err, errlen);
    if (cJSON_IsTrue(GET(model, "byte_fallback"))) return unsupported(path, "byte_fallback", NULL, err, errlen);
    t->ignore_merges = cJSON_IsTrue(GET(model, "ignore_merges"));
    char where[4200];
    snprintf(where, sizeof where, "%s: model.vocab", path);
    if (tok_add_vocab_object(t, GET(model, "vocab"), where, err, errlen) != 0) return -1;
    return load_merges(t, GET(model, "merges"), path, err, errlen);
}

static int load_normalizer(Tokenizer *t, const cJSON *nz, const char *path, char *err, size_t errlen) {
    if (!nz || cJSON_IsNull(nz)) return 0;
    const char *ty = type_of(nz);
    if (!strcmp(ty, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = GET(nz, "normalizers");
        for (const cJSON *n = cJSON_IsArray(list) ? list->child : NULL; n; n = n->next)
            if (load_normalizer(t, n, path, err, errlen) != 0) return -1;
        return 0;
    }
    return unsupported(path, "normalizer", ty, err, errlen);
}

static int load_byte_level(Tokenizer *t, const cJSON *bl, int alone, const char *path, char *err, size_t errlen) {
    const cJSON *use_regex = GET(bl, "use_regex");
    int regex = !use_regex || cJSON_IsTrue(use_regex);
    int prefix = cJSON_IsTrue(GET(bl, "add_prefix_space"));
    if (!alone && (regex || prefix))
        return unsupported(path, "ByteLevel after Split with use_regex or add_prefix_space", NULL, err, errlen);
    t->prefix_space = prefix;
    if (alone && regex && tok_set_pattern(t, TOK_GPT2_PATTERN, 0) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

static int load_split(Tokenizer *t, const cJSON *sp, const char *path, char *err, size_t errlen) {
    const cJSON *pat = GET(sp, "pattern"), *behavior = GET(sp, "behavior");
    if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated"))
        return unsupported(path, "Split behavior", cJSON_IsString(behavior) ? behavior->valuestring : "?", err, errlen);
    if (cJSON_IsTrue(GET(sp, "invert"))) return unsupported(path, "Split with invert", NULL, err, errlen);
    const cJSON *re = GET(pat, "Regex"), *lit = GET(pat, "String");
    if (!cJSON_IsString(re) && !cJSON_IsString(lit)) {
        snprintf(err, errlen, "%s: Split needs a pattern {\"Regex\": ...} or {\"String\": ...}", path);
        return -1;
    }
    if (tok_set_pattern(t, cJSON_IsString(re) ? re->valuestring : lit->valuestring, !cJSON_IsString(re)) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

static int load_pre_tokenizer(Tokenizer *t, const cJSON *pt, const char *path, char *err, size_t errlen) {
    const char *ty = pt ? type_of(pt) : "";
    if (!strcmp(ty, "ByteLevel")) return load_byte_level(t, pt, 1, path, err, errlen);
    if (strcmp(ty, "Sequence")) {
        return pt && !cJSON_IsNull(pt) ? unsupported(path, "pre_tokenizer", ty, err, errlen)
                                        : unsupported(path, "a tokenizer without a ByteLevel pre_tokenizer", NULL,
                                                      err, errlen);
    }
    const cJSON *list = GET(pt, "pretokenizers");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    const cJSON *first = n ? list->child : NULL;
    if (n == 1 && !strcmp(type_of(first), "ByteLevel")) return load_byte_level(t, first, 1, path, err, errlen);
    if (n == 2 && !strcmp(type_of(first), "Split") && !strcmp(type_of(first->next), "ByteLevel")) {
        if (load_split(t, first, path, err, errlen) != 0) return -1;
        return load_byte_level(t, first->next, 0, path, err, errlen);
    }
    return unsupported(path, "pre_tokenizer Sequence (only [Split, ByteLevel] or [ByteLevel])", NULL, err, errlen);
}

int tok_load_json(Tokenizer *t, const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *root = tok_parse_json_file(path, err, errlen);
    if (!root) return -1;
    int rc = cJSON_IsObject(root) ? 0 : -1;
    if (rc) snprintf(err, errlen, "%s: expected a JSON object", path);
    if (rc == 0) rc = load_model(t, GET(root, "model"), path, err, errlen);
    if (rc == 0) rc = load_normalizer(t, GET(root, "normalizer"), path, err, errlen);
    if (rc == 0) rc = load_pre_tokenizer(t, GET(root, "pre_tokenizer"), path, err, errlen);
    const cJSON *added = GET(root, "added_tokens");
    if (rc == 0 && added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        snprintf(err, errlen, "%s: added_tokens must be an array", path);
        rc = -1;
    }
    char where[4200];
    int i = 0;
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a && rc == 0; a = a->next, i++) {
        snprintf(where, sizeof where, "%s: added_tokens[%d]", path, i);
        rc = tok_add_added_object(t, a, -1, where, err, errlen);
    }
    cJSON_Delete(root);
    return rc;
}
