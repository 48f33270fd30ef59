/* dpoc_import_config.c — `dpoc import-config config.json > model.yaml`.
 *
 * Reads a Hugging Face config.json (cJSON) of a Qwen2ForCausalLM,
 * LlamaForCausalLM or InternLM2ForCausalLM model and prints the equivalent
 * model YAML (docs/model-yaml.md): dimensions, layer count, heads, kv heads,
 * SwiGLU width, rope_theta, rms_norm_eps, tied embeddings and the biases each
 * family has (Qwen2: q/k/v always; Llama: attention_bias on q/k/v/o and
 * mlp_bias; InternLM2: `bias` on wqkv and wo). Fields the model needs are
 * required, so a missing or mistyped one is an error naming it;
 * num_key_value_heads defaults to the heads, rope_theta to 10000 and
 * tie_word_embeddings to false, as in the transformers config classes.
 * Settings dpoc does not model (sliding-window attention, another activation,
 * head_dim other than hidden/heads) are refused; rope_scaling is noted in a
 * comment and on stderr.
 *
 * The loss (--loss, default sigmoid) is a shipped one, copied inline from the
 * loss file built into the binary (dpoc_models.h) so that the YAML stands
 * alone wherever it is written. The YAML is built in memory and printed only
 * when everything checked out.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpoc_cli.h"
#include "runtime/file_read.h"
#include "dpoc_models.h"

typedef enum { FAM_QWEN2, FAM_LLAMA, FAM_INTERNLM2 } Family;

typedef struct HfCfg {
    Family fam;
    const char *arch;
    long long vocab, hidden, layers, heads, kv_heads, inter;
    double theta, eps;
    int tied, qkv_bias, o_bias, mlp_bias;
    char rope_scaling[200]; /* non-empty when config.json has one */
} HfCfg;

/* Growing output buffer. */
typedef struct Buf {
    char *p;
    size_t n, cap;
    int oom;
} Buf;

static void bprintf(Buf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Shortest %g that reads back as v. */
static void fmt_double(double v, char *buf, size_t len) {
    if (v == floor(v) && v < 1e15) {
        snprintf(buf, len, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
}

static int get_int(const char *file, const cJSON *j, const char *key, int required, long long def, long long *out, char *err,
                   size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) {
            snprintf(err, errlen, "%s: missing field '%s' (a positive integer)", file, key);
            return -1;
        }
        *out = def;
        return 0;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < 1 || d > 1e12) {
        snprintf(err, errlen, "%s: field '%s' must be a positive integer", file, key);
        return -1;
    }
    *out = (long long)d;
    return 0;
}

static int get_double(const char *file, const cJSON *j, const char *key, int required, double def, double *out, char *err,
                      size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) {
            snprintf(err, errlen, "%s: missing field '%s' (a positive number)", file, key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble)) {
        snprintf(err, errlen, "%s: field '%s' must be a positive number", file, key);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const char *file, const cJSON *j, const char *key, int def, int *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "%s: field '%s' must be true or false", file, key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_hf(const char *file, const cJSON *j, HfCfg *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "%s: expected a JSON object", file);
        return -1;
    }
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0)) {
        snprintf(err, errlen, "%s: missing field 'architectures' (a list whose first entry names the model class)", file);
        return -1;
    }
    c->arch = a0->valuestring;
    if (!strcmp(c->arch, "Qwen2ForCausalLM")) c->fam = FAM_QWEN2;
    else if (!strcmp(c->arch, "LlamaForCausalLM")) c->fam = FAM_LLAMA;
    else if (!strcmp(c->arch, "InternLM2ForCausalLM")) c->fam = FAM_INTERNLM2;
    else {
        snprintf(err, errlen,
                 "%s: field 'architectures': unsupported architecture '%s' (supported: Qwen2ForCausalLM, LlamaForCausalLM, "
                 "InternLM2ForCausalLM)",
                 file, c->arch);
        return -1;
    }
    if (get_int(file, j, "vocab_size", 1, 0, &c->vocab, err, errlen) ||
        get_int(file, j, "hidden_size", 1, 0, &c->hidden, err, errlen) ||
        get_int(file, j, "num_hidden_layers", 1, 0, &c->layers, err, errlen) ||
        get_int(file, j, "num_attention_heads", 1, 0, &c->heads, err, errlen) ||
        get_int(file, j, "num_key_value_heads", 0, c->heads, &c->kv_heads, err, errlen) ||
        get_int(file, j, "intermediate_size", 1, 0, &c->inter, err, errlen) ||
        get_double(file, j, "rms_norm_eps", 1, 0, &c->eps, err, errlen) ||
        get_double(file, j, "rope_theta", 0, 10000.0, &c->theta, err, errlen) ||
        get_bool(file, j, "tie_word_embeddings", 0, &c->tied, err, errlen))
        return -1;
    if (c->hidden % c->heads) {
        snprintf(err, errlen, "%s: field 'num_attention_heads' (%lld) does not divide hidden_size (%lld)", file, c->heads, c->hidden);
        return -1;
    }
    if (c->heads % c->kv_heads) {
        snprintf(err, errlen, "%s: field 'num_key_value_heads' (%lld) does not divide num_attention_heads (%lld)", file, c->kv_heads,
                 c->heads);
        return -1;
    }
    if ((c->hidden / c->heads) % 2) {
        snprintf(err, errlen, "%s: hidden_size / num_attention_heads = %lld is odd; RoPE needs an even head size", file,
                 c->hidden / c->heads);
        return -1;
    }
    if (!(c->theta > 1)) {
        snprintf(err, errlen, "%s: field 'rope_theta' must be greater than 1", file);
        return -1;
    }
    long long hd;
    if (get_int(file, j, "head_dim", 0, c->hidden / c->heads, &hd, err, errlen)) return -1;
    if (hd != c->hidden / c->heads) {
        snprintf(err, errlen, "%s: field 'head_dim' (%lld) differs from hidden_size / num_attention_heads (%lld); not supported", file,
                 hd, c->hidden / c->heads);
        return -1;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
        snprintf(err, errlen, "%s: field 'hidden_act' must be \"silu\" (dpoc's MLP is SwiGLU)", file);
        return -1;
    }
    int sliding = 0;
    if (get_bool(file, j, "use_sliding_window", 0, &sliding, err, errlen)) return -1;
    if (sliding) {
        snprintf(err, errlen, "%s: field 'use_sliding_window' is true; sliding-window attention is not supported", file);
        return -1;
    }
    switch (c->fam) {
    case FAM_QWEN2:
        c->qkv_bias = 1;
        break;
    case FAM_LLAMA:
        if (get_bool(file, j, "attention_bias", 0, &c->qkv_bias, err, errlen) ||
            get_bool(file, j, "mlp_bias", 0, &c->mlp_bias, err, errlen))
            return -1;
        c->o_bias = c->qkv_bias;
        break;
    case FAM_INTERNLM2:
        if (get_bool(file, j, "bias", 0, &c->qkv_bias, err, errlen)) return -1;
        c->o_bias = c->qkv_bias;
        break;
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        char *t = cJSON_PrintUnformatted(rs);
        snprintf(c->rope_scaling, sizeof c->rope_scaling, "%s", t ? t : "?");
        free(t);
    }
    return 0;
}

/* The model's name: letters, digits, '.', '_' and '-' of s, lower-cased. */
static void clean_name(const char *s, char *buf, size_t len) {
    const char *b = strrchr(s, '/');
    if (b && b[1]) s = b + 1;
    size_t o = 0;
    for (; *s && o + 1 < len; s++) {
        char ch = *s;
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        buf[o++] = ok ? ch : '-';
    }
    buf[o] = 0;
    if (!o) snprintf(buf, len, "model");
}

static void default_name(const char *file, const cJSON *j, char *buf, size_t len) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "_name_or_path");
    if (cJSON_IsString(n) && n->valuestring[0]) {
        clean_name(n->valuestring, buf, len);
        return;
    }
    /* the directory holding config.json */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", file);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    else snprintf(dir, sizeof dir, "model");
    clean_name(dir, buf, len);
}

static void print_losses(FILE *f) {
    int first = 1;
    for (size_t i = 0; i < dpoc_embedded_count; i++) {
        const char *p = dpoc_embedded_files[i].path;
        if (strncmp(p, "losses/", 7)) continue;
        fprintf(f, "%s%.*s", first ? "" : ", ", (int)(strlen(p) - 12), p + 7);
        first = 0;
    }
}

static int parse_count(const char *opt, const char *s, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 1000000) {
        fprintf(stderr, "dpoc import-config: %s expects a positive integer, got '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static char *read_all(const char *path, size_t *len, char *err, size_t errlen) {
    char *text = file_read_all(path, len);
    if (!text) snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    return text;
}

static void emit_yaml(Buf *b, const char *file, const HfCfg *c, const char *name, const DpocEmbeddedFile *loss, const char *ref,
                      long long pairs, long long seq) {
    char eps[40], theta[40];
    fmt_double(c->eps, eps, sizeof eps);
    fmt_double(c->theta, theta, sizeof theta);
    bprintf(b, "# %s — imported by `dpoc import-config` from %s (%s).\n", name, file, c->arch);
    bprintf(b, "# vocab_size %lld, hidden_size %lld, num_hidden_layers %lld, num_attention_heads %lld,\n", c->vocab, c->hidden,
            c->layers, c->heads);
    bprintf(b, "# num_key_value_heads %lld, intermediate_size %lld, rope_theta %s, rms_norm_eps %s,\n", c->kv_heads, c->inter,
            theta, eps);
    bprintf(b, "# tie_word_embeddings %s.\n", c->tied ? "true" : "false");
    if (c->rope_scaling[0]) bprintf(b, "# Not modelled: rope_scaling %s.\n", c->rope_scaling);
    bprintf(b, "name: \"%s\"\nvocab_size: %lld\nhidden_size: %lld\n\narchitecture:\n  - embedding\n", name, c->vocab, c->hidden);
    bprintf(b, "  - repeat: %lld\n    block:\n      - residual:\n          - rmsnorm: &norm {eps: %s}\n", c->layers, eps);
    bprintf(b, "          - attention: {heads: %lld, kv_heads: %lld, rope_theta: %s%s%s}\n", c->heads, c->kv_heads, theta,
            c->qkv_bias ? ", qkv_bias: true" : "", c->o_bias ? ", o_bias: true" : "");
    bprintf(b, "      - residual:\n          - rmsnorm: *norm\n          - mlp: {intermediate_size: %lld%s}\n", c->inter,
            c->mlp_bias ? ", bias: true" : "");
    bprintf(b, "  - rmsnorm: *norm\n  - lm_head: {tied: %s}\n\n", c->tied ? "true" : "false");
    bprintf(b, "loss:\n  # models/%s, copied inline so that this file stands alone\n", loss->path);
    const char *t = (const char *)loss->data, *end = t + loss->len;
    while (t < end) {
        const char *nl = memchr(t, '\n', (size_t)(end - t));
        size_t n = nl ? (size_t)(nl - t) : (size_t)(end - t);
        if (n) bprintf(b, "  %.*s\n", (int)n, t);
        else bprintf(b, "\n");
        t = nl ? nl + 1 : end;
    }
    bprintf(b, "\n");
    if (ref) bprintf(b, "reference: %s\n", ref);
    bprintf(b, "train: {pairs: %lld, seq_len: %lld}\n", pairs, seq);
}

int dpoc_cmd_import_config(int argc, char **argv) {
    const char *loss_name = "sigmoid", *pairs_s = NULL, *seq_s = NULL, *ref = NULL, *name_opt = NULL;
    DpocOpt opts[] = {
        {"loss", 0, OPT_STRING, &loss_name, NULL, 0, "a shipped loss (models/losses/NAME.yaml), copied inline (default sigmoid)"},
        {"pairs", 0, OPT_STRING, &pairs_s, NULL, 0, "preference pairs per micro-batch (default 1)"},
        {"seq-len", 0, OPT_STRING, &seq_s, NULL, 0, "tokens per sequence (default 512)"},
        {"reference", 0, OPT_STRING, &ref, NULL, 0, "precomputed, online or none (default: from the loss)"},
        {"name", 0, OPT_STRING, &name_opt, NULL, 0, "the model's name (default: from _name_or_path or the directory)"},
    };
    const char *pos[1];
    int n = dpoc_opts_parse("import-config", "DIR/config.json [options] > model.yaml", opts, 5, argc, argv, pos, 1);
    if (n == -2) return 0;
    if (n < 0) return 2;
    if (n != 1) {
        fprintf(stderr, "dpoc import-config: expected one config.json (usage: dpoc import-config DIR/config.json [options] > model.yaml)\n");
        return 2;
    }
    long long pairs = 1, seq = 512;
    if ((pairs_s && parse_count("--pairs", pairs_s, &pairs)) || (seq_s && parse_count("--seq-len", seq_s, &seq))) return 2;
    if (ref && strcmp(ref, "precomputed") && strcmp(ref, "online") && strcmp(ref, "none")) {
        fprintf(stderr, "dpoc import-config: --reference must be precomputed, online or none, got '%s'\n", ref);
        return 2;
    }
    char lpath[300];
    snprintf(lpath, sizeof lpath, "losses/%s.yaml", loss_name);
    const DpocEmbeddedFile *loss = strchr(loss_name, '/') ? NULL : dpoc_embedded_find(lpath);
    if (!loss) {
        fprintf(stderr, "dpoc import-config: unknown loss '%s'; shipped losses: ", loss_name);
        print_losses(stderr);
        fprintf(stderr, "\n");
        return 2;
    }

    const char *file = pos[0];
    char err[1024];
    size_t len;
    char *text = read_all(file, &len, err, sizeof err);
    if (!text) {
        fprintf(stderr, "dpoc import-config: %s\n", err);
        return 1;
    }
    const char *jend = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &jend, 0);
    if (!j) {
        size_t off = jend && jend >= text ? (size_t)(jend - text) : 0;
        fprintf(stderr, "dpoc import-config: %s: not valid JSON (near byte %zu)\n", file, off);
        free(text);
        return 1;
    }
    HfCfg c;
    int status = 1;
    Buf b = {0};
    if (parse_hf(file, j, &c, err, sizeof err)) {
        fprintf(stderr, "dpoc import-config: %s\n", err);
        goto done;
    }
    char name[128];
    if (name_opt) clean_name(name_opt, name, sizeof name);
    else default_name(file, j, name, sizeof name);
    emit_yaml(&b, file, &c, name, loss, ref, pairs, seq);
    if (b.oom) {
        fprintf(stderr, "dpoc import-config: out of memory\n");
        goto done;
    }
    if (c.rope_scaling[0]) fprintf(stderr, "dpoc import-config: note: rope_scaling %s is not modelled\n", c.rope_scaling);
    if (fwrite(b.p, 1, b.n, stdout) != b.n || fflush(stdout) != 0) {
        fprintf(stderr, "dpoc import-config: cannot write the YAML: %s\n", strerror(errno));
        goto done;
    }
    status = 0;
done:
    free(b.p);
    cJSON_Delete(j);
    free(text);
    return status;
}
