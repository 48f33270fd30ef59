/* cfg_model.c — a model YAML becomes a checked ModelCfg.
 *
 * The root mapping is read key by key in a fixed order (dimensions, then the
 * architecture, the training shape, the reference, and last the loss, whose
 * check needs the reference mode). The architecture is a list: `embedding`
 * first, any number of `repeat` blocks, an optional final `rmsnorm`, and
 * `lm_head` last. A block is a list of steps; a step is a `residual` group
 * of modules or one bare module. Each module's options are read against its
 * own key list, with the shape rules (heads divide hidden_size, kv_heads
 * divide heads, head_dim consistent and even) checked where the value was
 * written. Modules get their Hugging Face names here: attention is
 * self_attn, mlp is mlp, and an rmsnorm is named after the module right
 * after it (input_layernorm before attention, post_attention_layernorm
 * before mlp); the final norm is model.norm.
 */
#include <stdlib.h>
#include <string.h>

#include "fe_internal.h"

enum {
    MAX_VOCAB = 1 << 24,
    MAX_HIDDEN = 1 << 20,
    MAX_HEADS = 1 << 16,
    MAX_INTER = 1 << 22,
    MAX_REPEAT = 1 << 16,
    MAX_PAIRS = 1 << 16,
    MAX_SEQ = 1 << 20,
};
#define MAX_ELEMS ((double)(1LL << 40))

static const char *const kind_names[MOD_COUNT] = {"embedding", "rmsnorm", "attention", "mlp", "lm_head"};

const char *module_kind_name(ModuleKind k) { return (unsigned)k < MOD_COUNT ? kind_names[k] : "?"; }

const char *ref_mode_name(RefMode m) {
    switch (m) {
    case REF_PRECOMPUTED: return "precomputed";
    case REF_ONLINE: return "online";
    case REF_NONE: return "none";
    }
    return "?";
}

typedef struct Rd {
    YDoc *d;
    ModelCfg *cfg;
    char *err;
    size_t errlen;
} Rd;

/* ---- one module ----------------------------------------------------------- */

static int missing(Rd *r, SrcLoc at, const char *mod, const char *key) {
    return fe_error(r->err, r->errlen, at, "'%s' is missing the required key '%s'", mod, key);
}

static int read_rmsnorm(Rd *r, yaml_node_t *opts, ModuleCfg *m) {
    static const char *const keys[] = {"eps"};
    yaml_node_t *v[1];
    if (ymap_read(r->d, opts, "'rmsnorm'", keys, 1, v, NULL, r->err, r->errlen)) return -1;
    m->eps = 1e-6;
    if (v[0]) {
        if (yread_num(r->d, v[0], "'eps'", &m->eps, r->err, r->errlen)) return -1;
        if (!(m->eps > 0)) return fe_error(r->err, r->errlen, ydoc_loc(r->d, v[0]), "'eps' must be positive, got %s", yscalar(v[0]));
    }
    return 0;
}

static int read_attention(Rd *r, yaml_node_t *opts, ModuleCfg *m) {
    enum { HEADS, KV, HD, THETA, CAUSAL, QKVB, OB, NK };
    static const char *const keys[NK] = {"heads", "kv_heads", "head_dim", "rope_theta", "causal", "qkv_bias", "o_bias"};
    yaml_node_t *v[NK];
    YDoc *d = r->d;
    int64_t hidden = r->cfg->hidden_size;
    if (ymap_read(d, opts, "'attention'", keys, NK, v, NULL, r->err, r->errlen)) return -1;
    if (!v[HEADS]) return missing(r, m->loc, "attention", "heads");
    if (yread_pos_int(d, v[HEADS], "'heads'", MAX_HEADS, &m->heads, r->err, r->errlen)) return -1;
    if (hidden % m->heads)
        return fe_error(r->err, r->errlen, ydoc_loc(d, v[HEADS]), "heads (%lld) does not divide hidden_size (%lld)",
                        (long long)m->heads, (long long)hidden);
    m->kv_heads = m->heads;
    if (v[KV]) {
        if (yread_pos_int(d, v[KV], "'kv_heads'", MAX_HEADS, &m->kv_heads, r->err, r->errlen)) return -1;
        if (m->heads % m->kv_heads)
            return fe_error(r->err, r->errlen, ydoc_loc(d, v[KV]), "kv_heads (%lld) does not divide heads (%lld)",
                            (long long)m->kv_heads, (long long)m->heads);
    }
    m->head_dim = hidden / m->heads;
    if (v[HD]) {
        int64_t hd;
        if (yread_pos_int(d, v[HD], "'head_dim'", MAX_HIDDEN, &hd, r->err, r->errlen)) return -1;
        if (hd != m->head_dim)
            return fe_error(r->err, r->errlen, ydoc_loc(d, v[HD]),
                            "head_dim (%lld) times heads (%lld) is %lld, expected hidden_size (%lld)", (long long)hd,
                            (long long)m->heads, (long long)(hd * m->heads), (long long)hidden);
    }
    if (m->head_dim % 2)
        return fe_error(r->err, r->errlen, v[HD] ? ydoc_loc(d, v[HD]) : ydoc_loc(d, v[HEADS]),
                        "head_dim (%lld) must be even for rotate-half RoPE", (long long)m->head_dim);
    m->rope_theta = 10000.0;
    if (v[THETA]) {
        if (yread_num(d, v[THETA], "'rope_theta'", &m->rope_theta, r->err, r->errlen)) return -1;
        if (!(m->rope_theta > 1.0))
            return fe_error(r->err, r->errlen, ydoc_loc(d, v[THETA]), "'rope_theta' must be greater than 1, got %s",
                            yscalar(v[THETA]));
    }
    m->causal = 1;
    if (v[CAUSAL] && yread_bool(d, v[CAUSAL], "'causal'", &m->causal, r->err, r->errlen)) return -1;
    if (v[QKVB] && yread_bool(d, v[QKVB], "'qkv_bias'", &m->qkv_bias, r->err, r->errlen)) return -1;
    if (v[OB] && yread_bool(d, v[OB], "'o_bias'", &m->o_bias, r->err, r->errlen)) return -1;
    return 0;
}

static int read_mlp(Rd *r, yaml_node_t *opts, ModuleCfg *m) {
    static const char *const keys[] = {"intermediate_size", "bias"};
    yaml_node_t *v[2];
    if (ymap_read(r->d, opts, "'mlp'", keys, 2, v, NULL, r->err, r->errlen)) return -1;
    if (!v[0]) return missing(r, m->loc, "mlp", "intermediate_size");
    if (yread_pos_int(r->d, v[0], "'intermediate_size'", MAX_INTER, &m->intermediate_size, r->err, r->errlen)) return -1;
    if (v[1] && yread_bool(r->d, v[1], "'bias'", &m->mlp_bias, r->err, r->errlen)) return -1;
    return 0;
}

static int read_lm_head(Rd *r, yaml_node_t *opts, ModuleCfg *m) {
    static const char *const keys[] = {"tied"};
    yaml_node_t *v[1];
    if (ymap_read(r->d, opts, "'lm_head'", keys, 1, v, NULL, r->err, r->errlen)) return -1;
    if (!v[0]) return missing(r, m->loc, "lm_head", "tied");
    return yread_bool(r->d, v[0], "'tied'", &m->tied, r->err, r->errlen);
}

static int read_module(Rd *r, ModuleKind k, yaml_node_t *opts, SrcLoc loc, ModuleCfg *m) {
    memset(m, 0, sizeof *m);
    m->kind = k;
    m->loc = loc;
    switch (k) {
    case MOD_EMBEDDING: {
        yaml_node_t *none;
        return ymap_read(r->d, opts, "'embedding'", NULL, 0, &none, NULL, r->err, r->errlen);
    }
    case MOD_RMSNORM: return read_rmsnorm(r, opts, m);
    case MOD_ATTENTION: return read_attention(r, opts, m);
    case MOD_MLP: return read_mlp(r, opts, m);
    case MOD_LM_HEAD: return read_lm_head(r, opts, m);
    case MOD_COUNT: break;
    }
    return -1;
}

/* ---- list entries ----------------------------------------------------------- */

/* What a list entry of the architecture or a block names. */
typedef struct Entry {
    const char *kind;   /* module name, "repeat" or "residual" */
    yaml_node_t *opts;  /* its value (options, or a residual's list) */
    yaml_node_t *node;  /* the whole entry */
    SrcLoc loc;         /* the name's position */
} Entry;

static int read_entry(Rd *r, yaml_node_t *it, const char *where, Entry *e) {
    YDoc *d = r->d;
    memset(e, 0, sizeof *e);
    e->node = it;
    e->loc = ydoc_loc(d, it);
    if (it->type == YAML_SCALAR_NODE && !ynode_is_null(it)) {
        e->kind = yscalar(it);
        return 0;
    }
    if (it->type == YAML_MAPPING_NODE) {
        if (ymap_check(d, it, where, r->err, r->errlen)) return -1;
        yaml_node_pair_t *p = it->data.mapping.pairs.start;
        int np = (int)(it->data.mapping.pairs.top - p);
        for (int i = 0; i < np; i++)
            if (!strcmp(yscalar(ydoc_node(d, p[i].key)), "repeat")) {
                e->kind = "repeat";
                e->loc = ydoc_loc(d, ydoc_node(d, p[i].key));
                return 0;
            }
        if (np == 1) {
            yaml_node_t *k = ydoc_node(d, p->key);
            e->kind = yscalar(k);
            e->loc = ydoc_loc(d, k);
            e->opts = ydoc_node(d, p->value);
            return 0;
        }
        return fe_error(r->err, r->errlen, e->loc,
                        "expected one module per list entry in %s, got a mapping with %d keys (indent a module's options under its name)",
                        where, np);
    }
    char got[96];
    ynode_desc(it, got, sizeof got);
    return fe_error(r->err, r->errlen, e->loc, "expected a module (its name, or 'name: {options}') in %s, got %s", where, got);
}

static int kind_of(const char *s) {
    for (int k = 0; k < MOD_COUNT; k++)
        if (!strcmp(s, kind_names[k])) return k;
    return -1;
}

/* ---- blocks ---------------------------------------------------------------- */

static int add_module(GroupCfg *g, const ModuleCfg *m) {
    ModuleCfg *p = realloc(g->mods, (size_t)(g->nmods + 1) * sizeof *p);
    if (!p) return -1;
    g->mods = p;
    g->mods[g->nmods++] = *m;
    return 0;
}

static int read_block_module(Rd *r, const Entry *e, const char *where, ModuleCfg *m) {
    int k = kind_of(e->kind);
    if (k == MOD_RMSNORM || k == MOD_ATTENTION || k == MOD_MLP) return read_module(r, (ModuleKind)k, e->opts, e->loc, m);
    if (k == MOD_EMBEDDING || k == MOD_LM_HEAD || !strcmp(e->kind, "repeat"))
        return fe_error(r->err, r->errlen, e->loc, "'%s' cannot appear inside %s", e->kind, where);
    return fe_error(r->err, r->errlen, e->loc, "unknown module '%s' in %s; expected one of: rmsnorm, attention, mlp%s",
                    e->kind, where, strcmp(where, "a block") ? "" : ", residual");
}

static int read_group(Rd *r, const Entry *e, GroupCfg *g) {
    YDoc *d = r->d;
    memset(g, 0, sizeof *g);
    g->loc = e->loc;
    ModuleCfg m;
    if (strcmp(e->kind, "residual")) {
        if (read_block_module(r, e, "a block", &m)) return -1;
        if (add_module(g, &m)) return fe_error(r->err, r->errlen, e->loc, "out of memory");
        return 0;
    }
    g->residual = 1;
    yaml_node_t *list = e->opts;
    if (!list || list->type != YAML_SEQUENCE_NODE) {
        char got[96];
        ynode_desc(list, got, sizeof got);
        return fe_error(r->err, r->errlen, list && !ynode_is_null(list) ? ydoc_loc(d, list) : e->loc,
                        "expected a list of modules for 'residual', got %s", got);
    }
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
        Entry me;
        if (read_entry(r, ydoc_node(d, *it), "a residual group", &me)) return -1;
        if (!strcmp(me.kind, "residual"))
            return fe_error(r->err, r->errlen, me.loc, "residual groups cannot be nested");
        if (read_block_module(r, &me, "a residual group", &m)) return -1;
        if (add_module(g, &m)) return fe_error(r->err, r->errlen, me.loc, "out of memory");
    }
    if (!g->nmods) return fe_error(r->err, r->errlen, ydoc_loc(d, list), "a residual group needs at least one module");
    return 0;
}

/* Hugging Face names inside a layer; see the file comment. */
static int name_block(Rd *r, BlockCfg *b) {
    ModuleCfg *flat[64];
    int n = 0;
    for (int gi = 0; gi < b->ngroups; gi++)
        for (int mi = 0; mi < b->groups[gi].nmods; mi++) {
            if (n == 64) return fe_error(r->err, r->errlen, b->groups[gi].mods[mi].loc, "a block holds at most 64 modules");
            flat[n++] = &b->groups[gi].mods[mi];
        }
    /* attention and mlp first, so a second one is reported as itself */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            ModuleCfg *m = flat[i];
            if ((m->kind == MOD_RMSNORM) != pass) continue;
            if (m->kind == MOD_ATTENTION) strcpy(m->name, "self_attn");
            else if (m->kind == MOD_MLP) strcpy(m->name, "mlp");
            else if (i + 1 < n && flat[i + 1]->kind == MOD_ATTENTION) strcpy(m->name, "input_layernorm");
            else if (i + 1 < n && flat[i + 1]->kind == MOD_MLP) strcpy(m->name, "post_attention_layernorm");
            else
                return fe_error(r->err, r->errlen, m->loc,
                                "an rmsnorm in a block must come right before an 'attention' or an 'mlp' (its parameter is "
                                "named input_layernorm or post_attention_layernorm after it)");
            /* (rmsnorm names cannot collide once attention and mlp are unique) */
            for (int j = 0; j < i; j++)
                if (!strcmp(flat[j]->name, m->name))
                    return fe_error(r->err, r->errlen, m->loc,
                                    "a block holds one %s (parameters model.layers.N.%s.*); another one is at line %d",
                                    module_kind_name(m->kind), m->name, flat[j]->loc.line);
        }
    return 0;
}

static int read_repeat(Rd *r, const Entry *e, BlockCfg *b) {
    YDoc *d = r->d;
    static const char *const keys[] = {"repeat", "block"};
    yaml_node_t *v[2];
    memset(b, 0, sizeof *b);
    b->loc = e->loc;
    if (ymap_read(d, e->node, "a 'repeat' entry", keys, 2, v, NULL, r->err, r->errlen)) return -1;
    if (yread_pos_int(d, v[0], "'repeat'", MAX_REPEAT, &b->repeat, r->err, r->errlen)) return -1;
    if (!v[1]) return fe_error(r->err, r->errlen, e->loc, "'repeat' is missing the required key 'block'");
    if (v[1]->type != YAML_SEQUENCE_NODE) {
        char got[96];
        ynode_desc(v[1], got, sizeof got);
        return fe_error(r->err, r->errlen, ydoc_loc(d, v[1]), "expected a list of modules for 'block', got %s", got);
    }
    for (yaml_node_item_t *it = v[1]->data.sequence.items.start; it < v[1]->data.sequence.items.top; it++) {
        Entry ge;
        if (read_entry(r, ydoc_node(d, *it), "a block", &ge)) return -1;
        GroupCfg *p = realloc(b->groups, (size_t)(b->ngroups + 1) * sizeof *p);
        if (!p) return fe_error(r->err, r->errlen, ge.loc, "out of memory");
        b->groups = p;
        b->ngroups++;
        if (read_group(r, &ge, &b->groups[b->ngroups - 1])) return -1;
    }
    if (!b->ngroups) return fe_error(r->err, r->errlen, ydoc_loc(d, v[1]), "a block needs at least one module");
    return name_block(r, b);
}

/* ---- the architecture -------------------------------------------------------- */

static int read_architecture(Rd *r, yaml_node_t *n, SrcLoc kloc) {
    YDoc *d = r->d;
    ModelCfg *cfg = r->cfg;
    if (n->type != YAML_SEQUENCE_NODE) {
        char got[96];
        ynode_desc(n, got, sizeof got);
        return fe_error(r->err, r->errlen, ynode_is_null(n) ? kloc : ydoc_loc(d, n),
                        "expected a list of modules for 'architecture', got %s", got);
    }
    enum { WANT_EMBED, IN_BLOCKS, AFTER_NORM, DONE } state = WANT_EMBED;
    const char *where = "the architecture";
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        Entry e;
        if (read_entry(r, ydoc_node(d, *it), where, &e)) return -1;
        int k = kind_of(e.kind);
        if (state == DONE)
            return fe_error(r->err, r->errlen, e.loc, "'lm_head' must be the last entry of the architecture");
        if (state == WANT_EMBED && k != MOD_EMBEDDING)
            return fe_error(r->err, r->errlen, e.loc, "the architecture must start with 'embedding', got '%s'", e.kind);
        if (!strcmp(e.kind, "repeat")) {
            if (state == AFTER_NORM)
                return fe_error(r->err, r->errlen, e.loc, "a 'repeat' block after the final 'rmsnorm'; only 'lm_head' may follow it");
            BlockCfg *p = realloc(cfg->blocks, (size_t)(cfg->nblocks + 1) * sizeof *p);
            if (!p) return fe_error(r->err, r->errlen, e.loc, "out of memory");
            cfg->blocks = p;
            cfg->nblocks++;
            BlockCfg *b = &cfg->blocks[cfg->nblocks - 1];
            if (read_repeat(r, &e, b)) return -1;
            b->first_layer = cfg->num_layers;
            cfg->num_layers += b->repeat;
            if (cfg->num_layers > MAX_REPEAT)
                return fe_error(r->err, r->errlen, e.loc, "too many layers: %lld (at most %d)", (long long)cfg->num_layers, MAX_REPEAT);
            continue;
        }
        switch (k) {
        case MOD_EMBEDDING:
            if (state != WANT_EMBED) return fe_error(r->err, r->errlen, e.loc, "a second 'embedding'; it must come once, first");
            if (read_module(r, MOD_EMBEDDING, e.opts, e.loc, &cfg->embedding)) return -1;
            strcpy(cfg->embedding.name, "embed_tokens");
            state = IN_BLOCKS;
            break;
        case MOD_RMSNORM:
            if (state == AFTER_NORM) return fe_error(r->err, r->errlen, e.loc, "a second final 'rmsnorm'; only 'lm_head' may follow the first");
            if (read_module(r, MOD_RMSNORM, e.opts, e.loc, &cfg->final_norm)) return -1;
            strcpy(cfg->final_norm.name, "norm");
            cfg->has_final_norm = 1;
            state = AFTER_NORM;
            break;
        case MOD_LM_HEAD:
            if (read_module(r, MOD_LM_HEAD, e.opts, e.loc, &cfg->lm_head)) return -1;
            strcpy(cfg->lm_head.name, "lm_head");
            state = DONE;
            break;
        case MOD_ATTENTION:
        case MOD_MLP:
            return fe_error(r->err, r->errlen, e.loc, "'%s' cannot appear at the top of the architecture; put it in a 'repeat' block",
                            e.kind);
        default:
            if (!strcmp(e.kind, "residual"))
                return fe_error(r->err, r->errlen, e.loc, "'residual' cannot appear at the top of the architecture; put it in a 'repeat' block");
            return fe_error(r->err, r->errlen, e.loc,
                            "unknown module '%s' in the architecture; expected one of: embedding, repeat, rmsnorm, lm_head", e.kind);
        }
    }
    if (state == WANT_EMBED) return fe_error(r->err, r->errlen, ydoc_loc(d, n), "the architecture is empty; expected embedding, repeat blocks, rmsnorm, lm_head");
    if (state != DONE) return fe_error(r->err, r->errlen, kloc, "the architecture does not end with 'lm_head'");
    return 0;
}

/* ---- the training shape ------------------------------------------------------- */

static int read_train(Rd *r, yaml_node_t *n, SrcLoc kloc) {
    static const char *const keys[] = {"pairs", "seq_len", "packed_len"};
    yaml_node_t *v[3];
    if (ynode_is_null(n)) return fe_error(r->err, r->errlen, kloc, "expected a mapping with pairs and seq_len for 'train', got nothing");
    if (ymap_read(r->d, n, "'train'", keys, 3, v, NULL, r->err, r->errlen)) return -1;
    for (int i = 0; i < 2; i++)
        if (!v[i]) return fe_error(r->err, r->errlen, kloc, "'train' is missing the required key '%s'", keys[i]);
    if (yread_pos_int(r->d, v[0], "'pairs'", MAX_PAIRS, &r->cfg->pairs, r->err, r->errlen)) return -1;
    if (yread_pos_int(r->d, v[1], "'seq_len'", MAX_SEQ, &r->cfg->seq_len, r->err, r->errlen)) return -1;
    if (v[2]) {
        /* a pair needs at least one token of each response after the shared
         * prompt; past 2*seq_len nothing is shared that would not fit anyway */
        if (yread_pos_int(r->d, v[2], "'packed_len'", 2 * MAX_SEQ, &r->cfg->packed_len, r->err, r->errlen)) return -1;
        if (r->cfg->packed_len < 2 || r->cfg->packed_len > 2 * r->cfg->seq_len)
            return fe_error(r->err, r->errlen, ydoc_loc(r->d, v[2]),
                            "'packed_len' is %lld; expected 2 .. 2*seq_len = %lld (one row per pair: the shared prompt "
                            "once, then both responses)",
                            (long long)r->cfg->packed_len, (long long)(2 * r->cfg->seq_len));
    }
    return 0;
}

/* Rejects shapes whose activations could not be addressed. */
static int check_sizes(Rd *r, SrcLoc at) {
    const ModelCfg *c = r->cfg;
    double n = (double)model_rows(c) * (double)model_row_len(c);
    double worst = n * (double)c->vocab_size;
    const char *what = "the logits";
    if (n * (double)c->hidden_size > worst) {
        worst = n * (double)c->hidden_size;
        what = "the hidden states";
    }
    for (int b = 0; b < c->nblocks; b++)
        for (int gi = 0; gi < c->blocks[b].ngroups; gi++)
            for (int mi = 0; mi < c->blocks[b].groups[gi].nmods; mi++) {
                const ModuleCfg *m = &c->blocks[b].groups[gi].mods[mi];
                double e = m->kind == MOD_ATTENTION ? (double)model_rows(c) * (double)m->heads * (double)model_row_len(c) * (double)model_row_len(c)
                           : m->kind == MOD_MLP   ? n * (double)m->intermediate_size
                                                  : 0;
                if (e > worst) {
                    worst = e;
                    what = m->kind == MOD_ATTENTION ? "the attention scores" : "the mlp activations";
                }
            }
    if (worst > MAX_ELEMS)
        return fe_error(r->err, r->errlen, at, "the training shape is too large: %s would have %.3g elements (at most %.3g)", what,
                        worst, MAX_ELEMS);
    return 0;
}

/* ---- the root ------------------------------------------------------------------ */

int model_cfg_load_str(const char *text, size_t len, const char *fname, ModelCfg *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cfg->path = fe_strdup(fname ? fname : "<input>");
    if (!cfg->path) {
        snprintf(err, errlen, "%s: out of memory", fname ? fname : "<input>");
        return -1;
    }
    YDoc d;
    Rd r = {&d, cfg, err, errlen};
    if (ydoc_load(&d, text, len, cfg->path, err, errlen)) goto fail;

    enum { NAME, DTYPE, VOCAB, HIDDEN, ARCH, LOSS, REF, TRAIN, PARALLEL, NK };
    static const char *const keys[NK] = {"name", "dtype", "vocab_size", "hidden_size", "architecture", "loss", "reference", "train",
                                         "parallel"};
    yaml_node_t *v[NK];
    SrcLoc kl[NK];
    yaml_node_t *root = ydoc_root(&d);
    if (root->type != YAML_MAPPING_NODE) {
        char got[96];
        ynode_desc(root, got, sizeof got);
        fe_error(err, errlen, ydoc_loc(&d, root), "expected a mapping with the model definition (name, vocab_size, ...), got %s", got);
        goto fail;
    }
    if (ymap_read(&d, root, "the model definition", keys, NK, v, kl, err, errlen)) goto fail;
    static const int required[] = {NAME, VOCAB, HIDDEN, ARCH, LOSS, TRAIN};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!v[required[i]]) {
            fe_error(err, errlen, ydoc_loc(&d, root), "missing required key '%s' in the model definition", keys[required[i]]);
            goto fail;
        }

    const char *s;
    if (yread_str(&d, v[NAME], "'name'", &s, err, errlen)) goto fail;
    if (!(cfg->name = fe_strdup(s))) goto oom;
    cfg->dtype = DT_F32;
    if (v[DTYPE]) {
        if (yread_str(&d, v[DTYPE], "'dtype'", &s, err, errlen)) goto fail;
        if (strcmp(s, "f32")) {
            fe_error(err, errlen, ydoc_loc(&d, v[DTYPE]), "dtype '%s' is not supported; expected f32", s);
            goto fail;
        }
    }
    if (yread_pos_int(&d, v[VOCAB], "'vocab_size'", MAX_VOCAB, &cfg->vocab_size, err, errlen)) goto fail;
    if (yread_pos_int(&d, v[HIDDEN], "'hidden_size'", MAX_HIDDEN, &cfg->hidden_size, err, errlen)) goto fail;
    if (read_architecture(&r, v[ARCH], kl[ARCH])) goto fail;
    if (read_train(&r, v[TRAIN], kl[TRAIN])) goto fail;
    if (check_sizes(&r, kl[TRAIN])) goto fail;
    cfg->mesh_dp = cfg->mesh_tp = 1;
    cfg->parallel_loc = kl[TRAIN];
    if (v[PARALLEL] && mesh_cfg_read(&d, v[PARALLEL], kl[PARALLEL], cfg, err, errlen)) goto fail;

    int ref_given = v[REF] != NULL;
    cfg->reference = REF_PRECOMPUTED;
    cfg->reference_loc = kl[REF];
    if (ref_given) {
        cfg->reference_loc = ydoc_loc(&d, v[REF]);
        if (yread_str(&d, v[REF], "'reference'", &s, err, errlen)) goto fail;
        if (!strcmp(s, "precomputed")) cfg->reference = REF_PRECOMPUTED;
        else if (!strcmp(s, "online")) cfg->reference = REF_ONLINE;
        else if (!strcmp(s, "none")) cfg->reference = REF_NONE;
        else {
            fe_error(err, errlen, cfg->reference_loc, "unknown reference mode '%s'; expected precomputed, online or none", s);
            goto fail;
        }
    }
    if (loss_cfg_read(&d, v[LOSS], kl[LOSS], &cfg->loss, err, errlen)) goto fail;
    if (loss_check(&cfg->loss, cfg->reference != REF_NONE, err, errlen)) goto fail;
    /* without a `reference:` a loss that never reads ref_* needs none */
    if (!ref_given && !cfg->loss.uses_ref) cfg->reference = REF_NONE;
    ydoc_free(&d);
    return 0;
oom:
    fe_error(err, errlen, (SrcLoc){cfg->path, 1, 1}, "out of memory");
fail:
    ydoc_free(&d);
    model_cfg_free(cfg);
    return -1;
}

int model_cfg_load(const char *path, ModelCfg *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    size_t len;
    char *text = fe_read_file(path, &len, err, errlen);
    if (!text) return -1;
    int rc = model_cfg_load_str(text, len, path, cfg, err, errlen);
    free(text);
    return rc;
}

void model_cfg_free(ModelCfg *cfg) {
    for (int b = 0; b < cfg->nblocks; b++) {
        for (int gi = 0; gi < cfg->blocks[b].ngroups; gi++) free(cfg->blocks[b].groups[gi].mods);
        free(cfg->blocks[b].groups);
    }
    free(cfg->blocks);
    loss_cfg_free(&cfg->loss);
    free(cfg->name);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}
