/* hf_map.c — name and shape mapping between Hugging Face and dpoc parameters.
 *
 * hf_source gives, for one dpoc parameter name, the Hugging Face tensor that
 * holds it and, for InternLM2's q/k/v projections, which part of the packed
 * wqkv (0 q, 1 k, 2 v). Row r of dpoc's q (head qh = r / d, e = r % d) is
 * wqkv row ((qh / g) * (g + 2) + qh % g) * d + e; k head h is row
 * (h * (g + 2) + g) * d + e and v head h row (h * (g + 2) + g + 1) * d + e,
 * g = heads / kv_heads, d = head_dim (the same for a packed bias, a
 * one-column matrix). Import walks the step's PARAM tensors, finds each
 * source, checks its shape and converts it; a final pass refuses files'
 * tensors that no parameter used. Export walks the same list the other way.
 * The model geometry comes from the manifest's config.
 */
#include "hf_map.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *hf_arch_name(HfArch a) {
    return a == HF_ARCH_QWEN2 ? "qwen2" : a == HF_ARCH_LLAMA ? "llama" : a == HF_ARCH_INTERNLM2 ? "internlm2" : "?";
}

int hf_arch_parse(const char *name) {
    if (!strcmp(name, "qwen2")) return HF_ARCH_QWEN2;
    if (!strcmp(name, "llama")) return HF_ARCH_LLAMA;
    if (!strcmp(name, "internlm2")) return HF_ARCH_INTERNLM2;
    return -1;
}

int hf_arch_from_config(const char *dir, HfArch *arch, char *err, size_t errlen) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
        return snprintf(err, errlen, "%s: path too long", dir), -1;
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: cannot open: %m", path), -1;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return snprintf(err, errlen, "out of memory"), -1;
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    const cJSON *mt = root ? cJSON_GetObjectItemCaseSensitive(root, "model_type") : NULL;
    const cJSON *ar = root ? cJSON_GetObjectItemCaseSensitive(root, "architectures") : NULL;
    const char *name = cJSON_IsString(mt) ? mt->valuestring : NULL;
    const char *an = cJSON_IsArray(ar) && cJSON_IsString(ar->child) ? ar->child->valuestring : NULL;
    int a = name ? hf_arch_parse(name) : -1;
    if (a < 0 && an) {
        if (!strncmp(an, "Qwen2", 5)) a = HF_ARCH_QWEN2;
        else if (!strncmp(an, "Llama", 5)) a = HF_ARCH_LLAMA;
        else if (!strncmp(an, "InternLM2", 9)) a = HF_ARCH_INTERNLM2;
    }
    if (a < 0) {
        snprintf(err, errlen, "%s: %s model_type '%s' is not qwen2, llama or internlm2 (pass --arch)", path,
                 root ? "its" : "not valid JSON;", name ? name : an ? an : "(none)");
        cJSON_Delete(root);
        return -1;
    }
    cJSON_Delete(root);
    *arch = (HfArch)a;
    return 0;
}

HfArch hf_arch_guess(const DpocStep *s) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s->json, "config");
    const cJSON *nm = c ? cJSON_GetObjectItemCaseSensitive(c, "name") : NULL;
    if (cJSON_IsString(nm) && strstr(nm->valuestring, "internlm2")) return HF_ARCH_INTERNLM2;
    DpocTensorInfo ti;
    if (!dpoc_step_lookup(s, "model.layers.0.self_attn.q_proj.bias", DPOC_ROLE_PARAM, &ti)) return HF_ARCH_QWEN2;
    return HF_ARCH_LLAMA;
}

typedef struct Geom {
    int64_t heads, kv_heads, head_dim;
} Geom;

static int geom_of(const DpocStep *s, Geom *g, char *err, size_t errlen) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s->json, "config");
    const char *keys[] = {"num_attention_heads", "num_key_value_heads", "head_dim"};
    int64_t v[3];
    for (int i = 0; i < 3; i++) {
        const cJSON *x = c ? cJSON_GetObjectItemCaseSensitive(c, keys[i]) : NULL;
        if (!cJSON_IsNumber(x) || x->valuedouble < 1)
            return snprintf(err, errlen, "the step's manifest config has no %s", keys[i]), -1;
        v[i] = (int64_t)x->valuedouble;
    }
    if (v[0] % v[1]) return snprintf(err, errlen, "the step's heads (%lld) are not a multiple of its kv heads (%lld)",
                                     (long long)v[0], (long long)v[1]), -1;
    g->heads = v[0], g->kv_heads = v[1], g->head_dim = v[2];
    return 0;
}

/* dpoc name -> Hugging Face name; *part -1 (whole tensor) or 0/1/2 (q/k/v of wqkv) */
static int hf_source(HfArch a, const char *name, char *out, size_t cap, int *part) {
    *part = -1;
    if (a != HF_ARCH_INTERNLM2) return (size_t)snprintf(out, cap, "%s", name) < cap ? 0 : -1;
    static const char *top[][2] = {{"model.embed_tokens.weight", "model.tok_embeddings.weight"},
                                   {"model.norm.weight", "model.norm.weight"},
                                   {"lm_head.weight", "output.weight"}};
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(name, top[i][0])) return snprintf(out, cap, "%s", top[i][1]), 0;
    static const char *layer[][3] = {
        {"input_layernorm.weight", "attention_norm.weight", ""},
        {"post_attention_layernorm.weight", "ffn_norm.weight", ""},
        {"self_attn.q_proj.weight", "attention.wqkv.weight", "0"},
        {"self_attn.k_proj.weight", "attention.wqkv.weight", "1"},
        {"self_attn.v_proj.weight", "attention.wqkv.weight", "2"},
        {"self_attn.q_proj.bias", "attention.wqkv.bias", "0"},
        {"self_attn.k_proj.bias", "attention.wqkv.bias", "1"},
        {"self_attn.v_proj.bias", "attention.wqkv.bias", "2"},
        {"self_attn.o_proj.weight", "attention.wo.weight", ""},
        {"self_attn.o_proj.bias", "attention.wo.bias", ""},
        {"mlp.gate_proj.weight", "feed_forward.w1.weight", ""},
        {"mlp.up_proj.weight", "feed_forward.w3.weight", ""},
        {"mlp.down_proj.weight", "feed_forward.w2.weight", ""},
    };
    int li, used = 0;
    if (sscanf(name, "model.layers.%d.%n", &li, &used) == 1 && used > 0) {
        const char *rest = name + used;
        for (size_t i = 0; i < sizeof layer / sizeof *layer; i++)
            if (!strcmp(rest, layer[i][0])) {
                if (layer[i][2][0]) *part = layer[i][2][0] - '0';
                return (size_t)snprintf(out, cap, "model.layers.%d.%s", li, layer[i][1]) < cap ? 0 : -1;
            }
    }
    return (size_t)snprintf(out, cap, "%s", name) < cap ? 0 : -1;
}

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* the wqkv row of row r of part p (see the file comment) */
static int64_t packed_row(const Geom *g, int p, int64_t r) {
    int64_t d = g->head_dim, grp = g->heads / g->kv_heads, head = r / d, e = r % d;
    if (p == 0) return ((head / grp) * (grp + 2) + head % grp) * d + e;
    return (head * (grp + 2) + grp + (p == 2)) * d + e;
}

static int64_t part_rows(const Geom *g, int p) { return (p == 0 ? g->heads : g->kv_heads) * g->head_dim; }

int hf_import(DpocStep *s, const StSet *st, HfArch arch, char *err, size_t errlen) {
    Geom g = {0, 0, 0};
    if (arch == HF_ARCH_INTERNLM2 && geom_of(s, &g, err, errlen)) return -1;
    int nst = st_count(st);
    char *used = calloc((size_t)(nst ? nst : 1), 1);
    if (!used) return snprintf(err, errlen, "out of memory"), -1;
    int rc = -1, tied = dpoc_step_lookup(s, "lm_head.weight", DPOC_ROLE_PARAM, &(DpocTensorInfo){0}) != 0;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM) continue;
        if (t->dtype != DPOC_DT_F32) {
            snprintf(err, errlen, "the step's parameter '%s' is %s; import handles f32 parameters", t->name,
                     dpoc_dtype_name(t->dtype));
            goto out;
        }
        char hn[512];
        int part;
        if (hf_source(arch, t->name, hn, sizeof hn, &part)) {
            snprintf(err, errlen, "parameter name '%s' is too long", t->name);
            goto out;
        }
        int k = st_find(st, hn);
        if (k < 0) {
            snprintf(err, errlen, "%s: missing tensor '%s' (for the step's parameter '%s')",
                     base_name(st_shard_path(st, 0)), hn, t->name);
            goto out;
        }
        used[k] = 1;
        const StTensor *x = st_tensor(st, k);
        const char *file = base_name(st_shard_path(st, x->shard));
        float *dst = (float *)(s->regions[t->region] + t->offset);
        if (part < 0) {
            int same = x->ndim == t->ndim;
            for (int d = 0; same && d < t->ndim; d++) same = x->shape[d] == t->shape[d];
            if (!same) {
                char a[128], b[128];
                shape_str(a, sizeof a, x->ndim, x->shape);
                shape_str(b, sizeof b, t->ndim, t->shape);
                snprintf(err, errlen, "%s: tensor '%s': shape %s, but the step's '%s' is %s", file, hn, a, t->name, b);
                goto out;
            }
            st_to_f32(x, dst);
            continue;
        }
        int64_t rows = (g.heads + 2 * g.kv_heads) * g.head_dim, cols = t->ndim == 2 ? t->shape[1] : 1;
        int ok = x->ndim == t->ndim && t->ndim >= 1 && t->ndim <= 2 && x->shape[0] == rows &&
                 t->shape[0] == part_rows(&g, part) && (t->ndim == 1 || x->shape[1] == cols);
        if (!ok) {
            char a[128], b[128];
            shape_str(a, sizeof a, x->ndim, x->shape);
            int64_t want[2] = {rows, cols};
            shape_str(b, sizeof b, t->ndim, want);
            snprintf(err, errlen,
                     "%s: tensor '%s': shape %s, but the step (%lld heads, %lld kv heads, head_dim %lld) packs q/k/v "
                     "as %s",
                     file, hn, a, (long long)g.heads, (long long)g.kv_heads, (long long)g.head_dim, b);
            goto out;
        }
        size_t esz = st_dtype_size(x->dtype);
        for (int64_t r = 0; r < t->shape[0]; r++) {
            StTensor row = *x;
            row.numel = cols;
            row.data = x->data + (size_t)(packed_row(&g, part, r) * cols) * esz;
            st_to_f32(&row, dst + r * cols);
        }
    }
    for (int k = 0; k < nst; k++) {
        const StTensor *x = st_tensor(st, k);
        if (used[k] || strstr(x->name, "rotary_emb.inv_freq")) continue;
        if (tied && (!strcmp(x->name, "lm_head.weight") || !strcmp(x->name, "output.weight"))) continue;
        snprintf(err, errlen, "%s: tensor '%s' has no place in the step's %s model (a different depth or layout?)",
                 base_name(st_shard_path(st, x->shard)), x->name, hf_arch_name(arch));
        goto out;
    }
    rc = 0;
out:
    free(used);
    return rc;
}

void hf_export_free(HfExport *e) {
    for (int i = 0; i < e->nowned; i++) free(e->owned[i]);
    free(e->owned);
    free(e->t);
    memset(e, 0, sizeof *e);
}

int hf_export(DpocStep *s, HfArch arch, HfExport *e, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    Geom g = {0, 0, 0};
    if (arch == HF_ARCH_INTERNLM2 && geom_of(s, &g, err, errlen)) return -1;
    e->t = calloc((size_t)(s->ntensors ? s->ntensors : 1), sizeof *e->t);
    e->owned = calloc((size_t)(s->ntensors ? s->ntensors : 1), sizeof *e->owned);
    if (!e->t || !e->owned) return hf_export_free(e), snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < s->ntensors; i++) {
        const DpocTensorInfo *t = &s->tensors[i];
        if (t->role != DPOC_ROLE_PARAM) continue;
        char hn[512];
        int part;
        hf_source(arch, t->name, hn, sizeof hn, &part);
        if (part > 0) continue; /* packed with q */
        StWriteTensor *w = &e->t[e->n];
        size_t nl = strlen(hn) + 1;
        char *nm = malloc(nl);
        if (!nm) return hf_export_free(e), snprintf(err, errlen, "out of memory"), -1;
        memcpy(nm, hn, nl);
        e->owned[e->nowned++] = (float *)(void *)nm;
        w->name = nm;
        w->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) w->shape[d] = t->shape[d];
        if (part < 0) {
            w->data = (const float *)(s->regions[t->region] + t->offset);
            e->n++;
            continue;
        }
        /* InternLM2: pack q (this tensor), k and v of the same layer */
        const float *src[3];
        const char *q = strstr(t->name, "q_proj.");
        int plen = q ? (int)(q - t->name) : 0;
        for (int p = 0; p < 3; p++) {
            static const char *nm3[] = {"q_proj", "k_proj", "v_proj"};
            char pn[512];
            snprintf(pn, sizeof pn, "%.*s%s.%s", plen, t->name, nm3[p], t->ndim == 1 ? "bias" : "weight");
            DpocTensorInfo pi;
            src[p] = dpoc_step_find(s, pn, DPOC_ROLE_PARAM, &pi);
            if (!q || !src[p] || pi.ndim != t->ndim || pi.shape[0] != part_rows(&g, p) ||
                (t->ndim == 2 && pi.shape[1] != t->shape[1]))
                return hf_export_free(e),
                       snprintf(err, errlen, "the step's '%s' is missing or not of the shape its heads imply", pn), -1;
        }
        int64_t rows = (g.heads + 2 * g.kv_heads) * g.head_dim, cols = t->ndim == 2 ? t->shape[1] : 1;
        float *buf = malloc((size_t)(rows * cols) * sizeof *buf);
        if (!buf) return hf_export_free(e), snprintf(err, errlen, "out of memory"), -1;
        e->owned[e->nowned++] = buf;
        for (int p = 0; p < 3; p++)
            for (int64_t r = 0; r < part_rows(&g, p); r++)
                memcpy(buf + packed_row(&g, p, r) * cols, src[p] + r * cols, (size_t)cols * sizeof *buf);
        w->shape[0] = rows;
        w->data = buf;
        e->n++;
    }
    return 0;
}

static const cJSON *cfg_item(const cJSON *c, const char *k) { return cJSON_GetObjectItemCaseSensitive(c, k); }

int hf_write_config(const DpocStep *s, HfArch arch, StDType dtype, const char *path, char *err, size_t errlen) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s->json, "config");
    if (!c) return snprintf(err, errlen, "the step's manifest has no config"), -1;
    cJSON *o = cJSON_CreateObject();
    static const char *arch_cls[] = {"Qwen2ForCausalLM", "LlamaForCausalLM", "InternLM2ForCausalLM"};
    cJSON *ar = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(ar, cJSON_CreateString(arch_cls[arch]));
    cJSON_AddStringToObject(o, "model_type", hf_arch_name(arch));
    static const char *copy[] = {"vocab_size",          "hidden_size",         "intermediate_size",
                                 "num_hidden_layers",   "num_attention_heads", "num_key_value_heads",
                                 "head_dim",            "rms_norm_eps",        "rope_theta",
                                 "tie_word_embeddings", "max_position_embeddings"};
    for (size_t i = 0; i < sizeof copy / sizeof *copy; i++) {
        const cJSON *x = cfg_item(c, copy[i]);
        if (x) cJSON_AddItemToObject(o, copy[i], cJSON_Duplicate(x, 1));
    }
    if (!cfg_item(c, "max_position_embeddings") && cJSON_IsNumber(cfg_item(c, "seq_len")))
        cJSON_AddNumberToObject(o, "max_position_embeddings", cfg_item(c, "seq_len")->valuedouble);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    DpocTensorInfo ti;
    int bias = !dpoc_step_lookup(s, "model.layers.0.self_attn.q_proj.bias", DPOC_ROLE_PARAM, &ti);
    if (arch == HF_ARCH_LLAMA) {
        cJSON_AddBoolToObject(o, "attention_bias", bias);
        cJSON_AddBoolToObject(o, "mlp_bias", 0);
    }
    if (arch == HF_ARCH_INTERNLM2) cJSON_AddBoolToObject(o, "bias", bias);
    cJSON_AddStringToObject(o, "torch_dtype", dtype == ST_F32 ? "float32" : dtype == ST_BF16 ? "bfloat16" : "float16");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return snprintf(err, errlen, "out of memory"), -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int bad = !f || fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) || fsync(fileno(f));
    if (f && fclose(f)) bad = 1;
    free(text);
    if (bad || rename(tmp, path)) {
        unlink(tmp);
        return snprintf(err, errlen, "%s: cannot write: %m", path), -1;
    }
    return 0;
}
