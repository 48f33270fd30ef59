/* tok_load.c — tok_load: pick the layout of a tokenizer directory, read it, finish.
 *
 * tokenizer.json wins when present (it is what Hugging Face's fast
 * tokenizers read); otherwise vocab.json and merges.txt are both required.
 * This file also holds the helpers both loaders use: reading a file whole,
 * parsing JSON with a line:column error, the vocabulary object and an
 * added-token object.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_read.h"
#include "tok_load.h"

int tok_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

cJSON *tok_parse_json_file(const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = file_read_all(path, &len);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read (%s)", path, strerror(errno));
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t line, col;
        text_line_col(text, len, end, &line, &col);
        snprintf(err, errlen, "%s:%zu:%zu: invalid JSON", path, line, col);
    }
    free(text);
    return j;
}

static int as_id(const cJSON *v, long long *id) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d != floor(d) || d < -1e15 || d > 1e15) return -1;
    *id = (long long)d;
    return 0;
}

int tok_add_vocab_object(Tokenizer *t, const cJSON *obj, const char *where, char *err, size_t errlen) {
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s: the vocabulary must be a JSON object {\"token\": id, ...}", where);
        return -1;
    }
    for (const cJSON *it = obj->child; it; it = it->next) {
        long long id;
        if (as_id(it, &id) != 0) {
            snprintf(err, errlen, "%s: token '%.48s' has no integer id", where, it->string);
            return -1;
        }
        if (tok_vocab_add(t, it->string, strlen(it->string), id, where, err, errlen) != 0) return -1;
    }
    return 0;
}

static int flag(const cJSON *o, const char *name) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name)); }

int tok_add_added_object(Tokenizer *t, const cJSON *o, long long id, const char *where, char *err, size_t errlen) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    if (!cJSON_IsObject(o) || !cJSON_IsString(content)) {
        snprintf(err, errlen, "%s: an added token needs a string \"content\"", where);
        return -1;
    }
    if (id < 0 && as_id(cJSON_GetObjectItemCaseSensitive(o, "id"), &id) != 0) {
        snprintf(err, errlen, "%s: added token '%.48s' has no integer \"id\"", where, content->valuestring);
        return -1;
    }
    if (flag(o, "single_word")) {
        snprintf(err, errlen, "%s: added token '%.48s': single_word is not supported", where, content->valuestring);
        return -1;
    }
    uint32_t f = (flag(o, "special") ? TOKF_SPECIAL : 0) | (flag(o, "lstrip") ? TOKF_LSTRIP : 0) |
                 (flag(o, "rstrip") ? TOKF_RSTRIP : 0);
    return tok_added_add(t, content->valuestring, strlen(content->valuestring), id, f, where, err, errlen);
}

Tokenizer *tok_load(const char *dir, char *err, size_t errlen) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        return NULL;
    }
    size_t dl = strlen(dir);
    if (dl > 3800) {
        snprintf(err, errlen, "%.64s...: path too long", dir);
        return NULL;
    }
    char *path = malloc(dl + 32);
    Tokenizer *t = tok_new();
    if (!path || !t) {
        snprintf(err, errlen, "%s: out of memory", dir);
        free(path);
        tok_free(t);
        return NULL;
    }
    snprintf(path, dl + 32, "%s/tokenizer.json", dir);
    int rc;
    if (tok_file_exists(path)) {
        rc = tok_load_json(t, dir, err, errlen);
    } else {
        snprintf(path, dl + 32, "%s/vocab.json", dir);
        if (tok_file_exists(path)) {
            rc = tok_load_files(t, dir, err, errlen);
        } else {
            snprintf(err, errlen, "%s: no tokenizer.json, and no vocab.json + merges.txt", dir);
            rc = -1;
        }
    }
    if (rc == 0) rc = tok_finish(t, path, err, errlen);
    free(path);
    if (rc != 0) {
        tok_free(t);
        return NULL;
    }
    return t;
}
