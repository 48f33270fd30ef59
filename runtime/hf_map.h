/* hf_map.h — Hugging Face weights <-> a compiled step's parameters.
 *
 * dpoc's parameter names are those of Hugging Face's Qwen2 and Llama
 * (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...,
 * model.norm.weight, lm_head.weight), so for those two the mapping is the
 * identity. InternLM2 names its tensors model.tok_embeddings,
 * attention.wqkv / wo, feed_forward.w1 / w3 / w2 (gate / up / down),
 * attention_norm, ffn_norm, model.norm and output, and packs q, k and v in
 * one wqkv matrix grouped per KV head: for KV head h, the rows of its
 * g = heads / kv_heads query heads, then k_h, then v_h (head_dim rows each).
 * Import regroups those rows into q/k/v; export packs them again.
 *
 * hf_import fills every trainable parameter of the step (its PARAM region)
 * from a safetensors set, converting BF16/F16 to f32 exactly. Every shape is
 * checked against the step's tensor table; a missing tensor, a shape
 * mismatch or a tensor that has no place in the step (a deeper model, say)
 * is an error naming it. With tied embeddings (the step has no
 * lm_head.weight) an lm_head/output tensor in the files is ignored, as are
 * rotary inv_freq buffers.
 */
#ifndef DPOC_HF_MAP_H
#define DPOC_HF_MAP_H

#include <stddef.h>

#include "safetensors.h"
#include "step_load.h"

typedef enum HfArch { HF_ARCH_QWEN2, HF_ARCH_LLAMA, HF_ARCH_INTERNLM2 } HfArch;

const char *hf_arch_name(HfArch a); /* "qwen2", "llama", "internlm2" */
int hf_arch_parse(const char *name); /* the arch, or -1 */

/* Reads DIR/config.json's model_type (or architectures[0]); 0, or -1 with a
 * message when it is missing or not Qwen2, Llama or InternLM2. */
int hf_arch_from_config(const char *dir, HfArch *arch, char *err, size_t errlen);

/* The architecture an exported step most resembles: internlm2 when the
 * manifest's model name contains "internlm2", else qwen2 when its attention
 * has q/k/v biases, else llama. */
HfArch hf_arch_guess(const DpocStep *s);

/* Fills the step's parameters from st (see above). */
int hf_import(DpocStep *s, const StSet *st, HfArch arch, char *err, size_t errlen);

/* The step's parameters as Hugging Face tensors, in the step's order;
 * data points into the step or into buffers freed by hf_export_free. */
typedef struct HfExport {
    StWriteTensor *t;
    int n;
    float **owned;
    int nowned;
} HfExport;
int hf_export(DpocStep *s, HfArch arch, HfExport *out, char *err, size_t errlen);
void hf_export_free(HfExport *e);

/* Writes config.json for the step's model (from the manifest's config) to
 * path, via a temporary file and a rename. */
int hf_write_config(const DpocStep *s, HfArch arch, StDType dtype, const char *path, char *err, size_t errlen);

#endif
