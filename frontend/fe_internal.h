/* fe_internal.h — internal to frontend/: YAML document access and errors.
 *
 * A YDoc is one parsed YAML file (libyaml's document API) plus its source
 * text, kept so that positions can be turned into 1-based line:col and the
 * bytes of a scalar (a loss expression) can be mapped back to their columns.
 * The y* helpers read typed scalars and walk mappings; each one reports a
 * mistake as "file:line:col: message" in the caller's err buffer and returns
 * -1, so parsing code reads as a list of checks.
 */
#ifndef DPOC_FE_INTERNAL_H
#define DPOC_FE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "frontend.h"

typedef struct YDoc {
    const char *file;      /* name used in messages (owned by the caller) */
    const char *text;
    size_t len;
    size_t *lines;         /* byte offset of each line's start */
    int nlines;
    yaml_document_t doc;
    int loaded;
} YDoc;

/* Parses text; on a syntax error or an empty document returns -1 + err. */
int ydoc_load(YDoc *d, const char *text, size_t len, const char *file, char *err, size_t errlen);
void ydoc_free(YDoc *d);
yaml_node_t *ydoc_root(YDoc *d);
yaml_node_t *ydoc_node(YDoc *d, int id);
SrcLoc ydoc_loc(const YDoc *d, const yaml_node_t *n);

int fe_error(char *err, size_t errlen, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "a mapping", "a list", "nothing" or the scalar's text in quotes. */
void ynode_desc(const yaml_node_t *n, char *buf, size_t len);
int ynode_is_null(const yaml_node_t *n);
const char *yscalar(const yaml_node_t *n); /* the text of a scalar, NULL otherwise */

/* Typed scalar readers; `what` names the value in messages ("'heads'"). */
int yread_int(YDoc *d, yaml_node_t *n, const char *what, int64_t *out, char *err, size_t errlen);
int yread_pos_int(YDoc *d, yaml_node_t *n, const char *what, int64_t max, int64_t *out, char *err, size_t errlen);
int yread_num(YDoc *d, yaml_node_t *n, const char *what, double *out, char *err, size_t errlen);
int yread_bool(YDoc *d, yaml_node_t *n, const char *what, int *out, char *err, size_t errlen);
int yread_str(YDoc *d, yaml_node_t *n, const char *what, const char **out, char *err, size_t errlen);

/* Checks that n is a mapping of known, unique, plain keys. vals[i] receives
 * the value of keys[i] (NULL when absent) and klocs[i] its key's position.
 * `what` names the mapping in messages ("the model definition"). A null
 * node (an empty value) counts as an empty mapping. */
int ymap_read(YDoc *d, yaml_node_t *n, const char *what, const char *const *keys, int nkeys, yaml_node_t **vals,
              SrcLoc *klocs, char *err, size_t errlen);
/* Checks that n is a mapping with unique plain-scalar keys (any names). */
int ymap_check(YDoc *d, yaml_node_t *n, const char *what, char *err, size_t errlen);

/* Copies a scalar's text and maps each byte back to its source position. */
int ytext_map(YDoc *d, yaml_node_t *n, LossText *out, char *err, size_t errlen);
void loss_text_free(LossText *t);

/* Reads a whole file; NULL + err (without position) when it cannot. */
char *fe_read_file(const char *path, size_t *len, char *err, size_t errlen);
char *fe_strdup(const char *s);

/* ---- loss (cfg_loss.c, loss_expr.c) --------------------------------------- */

/* Parses the model's `loss:` value (node in d) into cfg->loss, loading a
 * `use:` file relative to the model's directory. */
int loss_cfg_read(YDoc *d, yaml_node_t *n, SrcLoc at, LossCfg *loss, char *err, size_t errlen);
void loss_cfg_free(LossCfg *loss);
/* Parses and lowers the expression over a scratch graph to check names,
 * functions and syntax; sets loss->uses_ref and loss->is_scalar. With
 * have_ref == 0 a ref_* name is an error at its position. */
int loss_check(LossCfg *loss, int have_ref, char *err, size_t errlen);
/* 1 when s is a built-in per-pair name or function of the loss language. */
int loss_name_reserved(const char *s);
/* reads `parallel: {dp: D, tp: T}` into cfg->mesh_dp/mesh_tp (cfg_mesh.c) */
int mesh_cfg_read(YDoc *d, yaml_node_t *n, SrcLoc at, ModelCfg *cfg, char *err, size_t errlen);

/* ---- graph building (model_graph.c), shared with model_generate.c -------- */

/* Builder state: the residual stream is [N, H], N = S*T rows of S sequences. */
typedef struct Gb {
    const ModelCfg *cfg;
    IrGraph *g;
    IrDType dt;
    int64_t S, T, N, H, V;
    const char *prefix; /* "" for the policy, "ref:" for the online reference */
    int role;           /* IR_PARAM_TRAINABLE or IR_PARAM_FROZEN */
    int64_t vchunk;     /* vocabulary columns per head chunk; 0: the whole head at once */
    int64_t ablock;     /* query rows per attention block; 0: the whole sequence at once */
    int remat_act;      /* the backward recomputes rmsnorm outputs and SiLU from their inputs */
    int mask_head;      /* the head's matmuls skip the rows whose loss_mask is 0 (matmul_masked) */
    int attn_keep;      /* blocked attention keeps its scores for the backward (not IR_F_REMAT) */
    int packed;         /* train.packed_len: S = pairs rows of T = packed_len tokens, each the shared
                           prompt then the chosen and the rejected response; pos and seg are read */
    int32_t pos, seg;   /* packed: the inputs `positions` and `segments` [S, T] (i32) */
    int attn_fused;     /* attention as one `attention` op per layer (BuildOptions.attn_fused) */
    int head_keep;      /* the chunked head keeps each chunk's logits; only the exps are recomputed */
    int32_t live_rows;  /* while the last layer is built under a masked head: the rows the head reads
                           ([N], head_rows), on which its row-local projections are matmul_masked;
                           -1 otherwise */
} Gb;

/* The module builders of model_graph.c, stamped with the current location:
 * a parameter (prefixed), y = x W^T (+ bias), rmsnorm, rotate-half RoPE of
 * x [S, h, T, d] with cos/sin tables [T, d], [N, h*d] -> [S, h, T, d], and
 * one module of a block (rmsnorm, attention over the whole sequence, mlp). */
int32_t fe_param(Gb *b, const char *name, int ndim, int64_t d0, int64_t d1);
int32_t fe_linear(Gb *b, int32_t x, const char *base, int64_t in, int64_t out, int bias);
int32_t fe_rmsnorm(Gb *b, int32_t x, const char *wname, double eps);
int32_t fe_rope(Gb *b, int32_t x, int64_t d, int32_t cos_t, int32_t sin_t);
int32_t fe_heads_first(Gb *b, int32_t x, int64_t h, int64_t d);
int32_t fe_apply_module(Gb *b, const ModuleCfg *m, int32_t x, int64_t layer);

#endif
