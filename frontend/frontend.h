/* frontend.h — the model definition language: YAML model + loss -> IR graphs.
 *
 * A model YAML (docs/model-yaml.md) names the dimensions, composes the
 * architecture from modules (embedding, rmsnorm, attention, mlp, lm_head)
 * with `repeat` blocks of residual groups, gives the loss as an expression
 * (inline, or `use:` a file of models/losses/), the reference mode and the
 * training shape. model_cfg_load parses and checks all of it, including the
 * loss expression, so every mistake is reported before any graph is built,
 * as "file:line:col: message" with 1-based positions.
 *
 * model_build_graph turns a loaded ModelCfg into a forward IR graph with the
 * input, parameter and output names fixed in the brief (Hugging Face
 * parameter names; inputs tokens/targets/loss_mask[/ref_logps]); every op
 * carries the YAML location of the module (or loss sub-expression) that
 * produced it. Gradients are added later by the autodiff pass.
 */
#ifndef DPOC_FRONTEND_H
#define DPOC_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "../ir/ir.h"

/* A position in a YAML file; file points at a string owned by the ModelCfg
 * (its path or its loss file's path). line and col are 1-based. */
typedef struct SrcLoc {
    const char *file;
    int line, col;
} SrcLoc;

typedef enum ModuleKind {
    MOD_EMBEDDING, /* model.embed_tokens */
    MOD_RMSNORM,   /* x * rsqrt(mean(x^2) + eps) * weight */
    MOD_ATTENTION, /* GQA self-attention with rotate-half RoPE */
    MOD_MLP,       /* SwiGLU: down(silu(gate x) * up x) */
    MOD_LM_HEAD,   /* logits = x W^T, W tied to the embedding or lm_head.weight */
    MOD_COUNT
} ModuleKind;

typedef struct ModuleCfg {
    ModuleKind kind;
    SrcLoc loc;     /* the module's entry in the YAML */
    char name[40];  /* Hugging Face sub-module name: "input_layernorm", "self_attn", "mlp", ... */
    /* rmsnorm */
    double eps;
    /* attention */
    int64_t heads, kv_heads, head_dim;
    double rope_theta;
    int causal, qkv_bias, o_bias;
    /* mlp */
    int64_t intermediate_size;
    int mlp_bias;
    /* lm_head */
    int tied;
} ModuleCfg;

/* A step of a block: a list of modules applied in order, with the input
 * added back to the result when residual is set (a bare module is a group
 * of one without a residual). */
typedef struct GroupCfg {
    int residual;
    SrcLoc loc;
    int nmods;
    ModuleCfg *mods;
} GroupCfg;

/* `repeat` copies of a block; layers first_layer .. first_layer+repeat-1. */
typedef struct BlockCfg {
    int64_t repeat;
    int64_t first_layer;
    SrcLoc loc;
    int ngroups;
    GroupCfg *groups;
} BlockCfg;

/* Text of one loss expression with the source position of every byte
 * (map[i] for text[i]; map[len] is the position just past the end). */
typedef struct LossText {
    char *text;
    SrcLoc *map;
} LossText;

typedef struct LossParam {
    char *name;
    double value;
    SrcLoc loc;    /* where the value was set (the model's params: or the loss file) */
} LossParam;

typedef struct LossLet {
    char *name;
    SrcLoc loc;    /* the key */
    LossText expr;
} LossLet;

typedef struct LossCfg {
    char *name;       /* "sigmoid", or the inline loss's name */
    char *path;       /* the file the expression came from (loss file or model YAML) */
    char *use;        /* the `use:` value, NULL for an inline loss */
    SrcLoc loc;       /* the model's `loss:` entry */
    int nparams;
    LossParam *params;
    int nlets;
    LossLet *lets;    /* named sub-expressions, in order */
    LossText expr;
    int uses_ref;     /* the expression reads a ref_* value */
    int is_scalar;    /* the expression is already a scalar (no batch mean) */
} LossCfg;

typedef enum RefMode { REF_PRECOMPUTED, REF_ONLINE, REF_NONE } RefMode;

typedef struct ModelCfg {
    char *path;           /* the YAML file as given */
    char *name;
    IrDType dtype;        /* only DT_F32 is accepted from YAML for now */
    int64_t vocab_size, hidden_size;
    ModuleCfg embedding;
    int nblocks;
    BlockCfg *blocks;
    int64_t num_layers;   /* sum of the blocks' repeats */
    int has_final_norm;
    ModuleCfg final_norm;
    ModuleCfg lm_head;
    LossCfg loss;
    RefMode reference;
    SrcLoc reference_loc;
    int64_t pairs;        /* preference pairs per micro-batch (2*pairs sequences) */
    int64_t seq_len;      /* tokens of one sequence (prompt + response) */
    int64_t packed_len;   /* 0, or train.packed_len: one row of this many tokens per pair, the
                             shared prompt once, then the chosen and the rejected response */
    int64_t mesh_dp, mesh_tp; /* `parallel: {dp, tp}` (1 when absent); pairs is per dp rank */
    SrcLoc parallel_loc;
} ModelCfg;

/* The training rows: 2*pairs rows of seq_len tokens, or with packed_len one
 * row of packed_len tokens per pair. */
static inline int64_t model_row_len(const ModelCfg *c) { return c->packed_len > 0 ? c->packed_len : c->seq_len; }
static inline int64_t model_rows(const ModelCfg *c) { return (c->packed_len > 0 ? 1 : 2) * c->pairs; }

/* Load and check a model YAML. 0 ok; -1 with "file:line:col: message" in err
 * (cfg is then left empty; model_cfg_free is still safe to call). */
int model_cfg_load(const char *path, ModelCfg *cfg, char *err, size_t errlen);
/* The same over text in memory; fname names it in messages and locates
 * `use:` loss files (looked up in <dir of fname>/losses/). */
int model_cfg_load_str(const char *text, size_t len, const char *fname, ModelCfg *cfg, char *err, size_t errlen);
void model_cfg_free(ModelCfg *cfg);
/* Parses a --mesh value "dp=D,tp=T" (either part may be left out: 1).
 * 0 ok, -1 with a message naming the text in err. (frontend/cfg_mesh.c) */
int model_mesh_parse(const char *text, int64_t *dp, int64_t *tp, char *err, size_t errlen);
/* Checks that the model can be split dp x tp: every dim the sharding pass
 * splits over tp (heads, kv_heads, intermediate_size, vocab_size) is
 * divisible by tp. 0 ok, -1 with "file:line:col: message" in err. */
int model_mesh_check(const ModelCfg *cfg, int64_t dp, int64_t tp, char *err, size_t errlen);

const char *ref_mode_name(RefMode m);
const char *module_kind_name(ModuleKind k);

/* Number of trainable parameters (policy only). */
int64_t model_cfg_param_count(const ModelCfg *cfg);

/* malloc'd JSON for the step.so manifest: dims, modules, loss
 * (name, expression, lets, params), reference, shape, param count. NULL on
 * out of memory. */
char *model_cfg_to_json(const ModelCfg *cfg);

typedef enum BuildKind { BUILD_TRAIN, BUILD_LOGPS } BuildKind;

typedef struct BuildOptions {
    IrDType dtype;      /* DT_F32 (models) or DT_F64 (gradient checks) */
    int expose_logits;  /* BUILD_LOGPS: also output `logits` [2B,T,V] */
    int64_t vocab_chunk; /* > 0: the head's log-softmax in chunks of this many vocabulary columns,
                            each recomputed by the backward (the logits are never whole); 0: off */
    int64_t attn_block;  /* > 0: attention in blocks of this many query rows, each against the
                            keys it may see, scores recomputed by the backward; 0: off */
    int remat_activations; /* flag each rmsnorm's normalised x and each MLP's sigmoid IR_F_REMAT: the
                              backward recomputes them (and what is elementwise on them) from the
                              values it keeps anyway, instead of keeping them */
    int attn_keep;       /* with attn_block: keep the blocks' scores for the backward instead of
                            flagging them IR_F_REMAT (recomputed there) */
    int dense_head;      /* compute the head's logits for every row; by default (0) the head's
                            matmuls are matmul_masked on loss_mask, so rows outside the loss (the
                            prompt) cost no head work in the forward or the backward */
    int attn_fused;      /* each layer's attention one `attention` op (ir/ops.def) whose backward
                            (`attention_grad`) reads its output and log-sum-exp: no score tensor is
                            ever stored (attn_block and attn_keep do not apply) */
    int head_keep;       /* with vocab_chunk: keep each chunk's logits for the backward, which then
                            recomputes only their exps (elementwise), not the chunk's matmul */
} BuildOptions;

/* The chunk sizes `dpoc compile` picks when not told (docs/passes.md
 * "Rematerialisation"): the vocabulary in chunks of ~32 MiB of f32 logits when
 * the whole [rows, vocab] would exceed 64 MiB, attention in blocks of 256
 * query rows when the sequence is longer than 256, the blocks' scores kept
 * for the backward (*attn_keep = 1) when two score-sized tensors per layer
 * total at most 64 MiB; a chunked head's logits kept for the backward
 * (*head_keep = 1; a whole head keeps them anyway) when the f32 [rows,
 * vocab] is at most half the f32 parameters (an eighth of what the
 * parameters, their gradients and the two AdamW moments hold). `rows` is
 * one rank's. */
void model_auto_chunks(const ModelCfg *cfg, int64_t rows, int64_t *vocab_chunk, int64_t *attn_block, int *attn_keep,
                       int *head_keep);

/* 1 when `dpoc compile` builds attention as the `attention` op by default:
 * every attention module's head_dim is a multiple of 16, so the op's f32
 * kernels run in tiles on every x86 vector width (codegen/cg_attention_tiled.c;
 * other widths would get its plain loops, slower than blocked attention) */
int model_attn_fused_default(const ModelCfg *cfg);

/* Builds the forward graph into g (initialised by the caller, normally
 * empty). BUILD_TRAIN outputs: loss (IR_OUT_LOSS), logps, logits_sum and,
 * for the online reference, ref_logps. BUILD_LOGPS outputs: logps and
 * optionally logits. 0 ok, -1 with a message in err. */
int model_build_graph(const ModelCfg *cfg, BuildKind kind, const BuildOptions *opt, IrGraph *g, char *err, size_t errlen);

/* Generation graphs (frontend/model_generate.c, docs/step-abi.md
 * "Generation"): a chunk of `chunk` tokens at positions pos..pos+chunk-1
 * attends to a KV cache of max_context positions (cache slots < pos) and to
 * itself causally. Inputs <entry>_tokens i32[chunk], gen_pos i32[1],
 * kv_cache.<layer> [2, kv_heads, max_context, head_dim] (k then v, read
 * only); outputs <entry>_logits [chunk, V] and <entry>_kv.<layer>
 * [2, kv_heads, chunk, head_dim] (the chunk's rotated keys and its values,
 * which the runtime copies into the cache). entry is "prefill" or "decode". */
typedef struct GenBuildOptions {
    const char *entry;     /* names the tokens/logits/kv outputs */
    int64_t chunk;         /* tokens per call (1 for decode) */
    int64_t max_context;   /* cache positions */
    IrDType dtype;         /* DT_F32 or DT_F64 */
} GenBuildOptions;

int model_build_generate(const ModelCfg *cfg, const GenBuildOptions *opt, IrGraph *g, char *err, size_t errlen);

/* The per-sequence values a loss expression reads, as ids in g, each of
 * shape [2B] (rows 0..B-1 chosen, B..2B-1 rejected) and one float dtype. */
typedef struct LossLeaves {
    int32_t logps;      /* policy summed log-probs */
    int32_t ref_logps;  /* reference summed log-probs, -1 when there is none */
    int32_t lens;       /* response token counts */
} LossLeaves;

/* Lowers the loss to IR over the leaves: *out is the scalar loss (the batch
 * mean of a per-pair expression, or the scalar expression itself). Errors
 * name the position in the expression. 0 ok, -1 + err. */
int loss_build_ir(IrGraph *g, const LossCfg *loss, const LossLeaves *lv, int32_t *out, char *err, size_t errlen);

#endif
