/* cfg_json.c — the loaded model as JSON for the step.so manifest, and its
 * parameter count.
 *
 * The JSON mirrors the YAML after defaults and naming were applied: the
 * dimensions, the architecture (each module with its Hugging Face name and
 * options), the loss (name, the file it came from, params with their final
 * values, lets and expression), the reference mode, the training shape and
 * the trainable parameter count. For the common case of uniform layers it
 * also carries the Hugging Face config names (num_attention_heads, ...)
 * taken from the first attention and mlp, so a runtime can export a config.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "fe_internal.h"

static int64_t module_params(const ModelCfg *c, const ModuleCfg *m) {
    int64_t H = c->hidden_size;
    switch (m->kind) {
    case MOD_RMSNORM: return H;
    case MOD_ATTENTION: {
        int64_t q = m->heads * m->head_dim, kv = m->kv_heads * m->head_dim;
        int64_t n = H * q + 2 * H * kv + q * H;
        if (m->qkv_bias) n += q + 2 * kv;
        if (m->o_bias) n += H;
        return n;
    }
    case MOD_MLP: {
        int64_t I = m->intermediate_size;
        return 3 * H * I + (m->mlp_bias ? 2 * I + H : 0);
    }
    default: return 0;
    }
}

int64_t model_cfg_param_count(const ModelCfg *c) {
    int64_t n = c->vocab_size * c->hidden_size;
    for (int b = 0; b < c->nblocks; b++) {
        int64_t per = 0;
        for (int gi = 0; gi < c->blocks[b].ngroups; gi++)
            for (int mi = 0; mi < c->blocks[b].groups[gi].nmods; mi++) per += module_params(c, &c->blocks[b].groups[gi].mods[mi]);
        n += per * c->blocks[b].repeat;
    }
    if (c->has_final_norm) n += c->hidden_size;
    if (!c->lm_head.tied) n += c->vocab_size * c->hidden_size;
    return n;
}

static cJSON *module_json(const ModuleCfg *m) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "module", module_kind_name(m->kind));
    cJSON_AddStringToObject(o, "name", m->name);
    switch (m->kind) {
    case MOD_RMSNORM: cJSON_AddNumberToObject(o, "eps", m->eps); break;
    case MOD_ATTENTION:
        cJSON_AddNumberToObject(o, "heads", (double)m->heads);
        cJSON_AddNumberToObject(o, "kv_heads", (double)m->kv_heads);
        cJSON_AddNumberToObject(o, "head_dim", (double)m->head_dim);
        cJSON_AddNumberToObject(o, "rope_theta", m->rope_theta);
        cJSON_AddBoolToObject(o, "causal", m->causal);
        cJSON_AddBoolToObject(o, "qkv_bias", m->qkv_bias);
        cJSON_AddBoolToObject(o, "o_bias", m->o_bias);
        break;
    case MOD_MLP:
        cJSON_AddNumberToObject(o, "intermediate_size", (double)m->intermediate_size);
        cJSON_AddBoolToObject(o, "bias", m->mlp_bias);
        break;
    case MOD_LM_HEAD: cJSON_AddBoolToObject(o, "tied", m->tied); break;
    default: break;
    }
    return o;
}

static const ModuleCfg *first_of(const ModelCfg *c, ModuleKind k) {
    for (int b = 0; b < c->nblocks; b++)
        for (int gi = 0; gi < c->blocks[b].ngroups; gi++)
            for (int mi = 0; mi < c->blocks[b].groups[gi].nmods; mi++)
                if (c->blocks[b].groups[gi].mods[mi].kind == k) return &c->blocks[b].groups[gi].mods[mi];
    return NULL;
}

static cJSON *loss_json(const LossCfg *l) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", l->name ? l->name : "");
    if (l->use) cJSON_AddStringToObject(o, "use", l->use);
    cJSON *p = cJSON_AddObjectToObject(o, "params");
    for (int i = 0; p && i < l->nparams; i++) cJSON_AddNumberToObject(p, l->params[i].name, l->params[i].value);
    cJSON *lets = cJSON_AddObjectToObject(o, "let");
    for (int i = 0; lets && i < l->nlets; i++) cJSON_AddStringToObject(lets, l->lets[i].name, l->lets[i].expr.text);
    cJSON_AddStringToObject(o, "expr", l->expr.text ? l->expr.text : "");
    cJSON_AddBoolToObject(o, "uses_reference", l->uses_ref);
    return o;
}

char *model_cfg_to_json(const ModelCfg *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", c->name ? c->name : "");
    cJSON_AddStringToObject(o, "dtype", ir_dtype_name(c->dtype));
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)c->num_layers);
    const ModuleCfg *att = first_of(c, MOD_ATTENTION), *mlp = first_of(c, MOD_MLP), *norm = first_of(c, MOD_RMSNORM);
    if (att) {
        cJSON_AddNumberToObject(o, "num_attention_heads", (double)att->heads);
        cJSON_AddNumberToObject(o, "num_key_value_heads", (double)att->kv_heads);
        cJSON_AddNumberToObject(o, "head_dim", (double)att->head_dim);
        cJSON_AddNumberToObject(o, "rope_theta", att->rope_theta);
    }
    if (mlp) cJSON_AddNumberToObject(o, "intermediate_size", (double)mlp->intermediate_size);
    if (norm || c->has_final_norm) cJSON_AddNumberToObject(o, "rms_norm_eps", norm ? norm->eps : c->final_norm.eps);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->lm_head.tied);

    cJSON *arch = cJSON_AddArrayToObject(o, "architecture");
    if (arch) {
        cJSON_AddItemToArray(arch, module_json(&c->embedding));
        for (int b = 0; b < c->nblocks; b++) {
            cJSON *rb = cJSON_CreateObject();
            if (!rb) continue;
            cJSON_AddNumberToObject(rb, "repeat", (double)c->blocks[b].repeat);
            cJSON_AddNumberToObject(rb, "first_layer", (double)c->blocks[b].first_layer);
            cJSON *blk = cJSON_AddArrayToObject(rb, "block");
            for (int gi = 0; blk && gi < c->blocks[b].ngroups; gi++) {
                const GroupCfg *g = &c->blocks[b].groups[gi];
                cJSON *go = cJSON_CreateObject();
                if (!go) continue;
                cJSON_AddBoolToObject(go, "residual", g->residual);
                cJSON *mods = cJSON_AddArrayToObject(go, "modules");
                for (int mi = 0; mods && mi < g->nmods; mi++) cJSON_AddItemToArray(mods, module_json(&g->mods[mi]));
                cJSON_AddItemToArray(blk, go);
            }
            cJSON_AddItemToArray(arch, rb);
        }
        if (c->has_final_norm) cJSON_AddItemToArray(arch, module_json(&c->final_norm));
        cJSON_AddItemToArray(arch, module_json(&c->lm_head));
    }
    cJSON_AddItemToObject(o, "loss", loss_json(&c->loss));
    cJSON_AddStringToObject(o, "reference", ref_mode_name(c->reference));
    cJSON_AddNumberToObject(o, "pairs", (double)c->pairs);
    cJSON_AddNumberToObject(o, "seq_len", (double)c->seq_len);
    if (c->packed_len > 0) cJSON_AddNumberToObject(o, "packed_len", (double)c->packed_len);
    cJSON_AddNumberToObject(o, "param_count", (double)model_cfg_param_count(c));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
