/* cg_attention.h — what the attention kernels share (cg_attention.c: the
 * plain loops and the geometry; cg_attention_tiled.c: the f32 kernels
 * through the GEMM micro-kernel).
 *
 * An attention node's operands are q [..., M, D], k and v [..., T, D] and
 * the segments [B0, T]; AttnGeom holds those sizes and ids. A query row r
 * of a batch entry sits at position T - Tq + r mod Tq (Tq = M / groups) and
 * sees key j when j <= that position (causal) and the key's segment is 0 or
 * the query's. cg_attn_row and cg_attn_key_visible emit those tests.
 */
#ifndef DPOC_CG_ATTENTION_H
#define DPOC_CG_ATTENTION_H

#include "cg.h"

/* the shapes and operands of an attention or attention_grad kernel */
typedef struct AttnGeom {
    int32_t q, k, v, seg;  /* operand node ids */
    int64_t M, T, D;       /* query rows, keys, head width */
    int64_t Tq;            /* query rows per group: M / groups */
    int64_t batch;         /* batch entries: numel(q) / (M * D) */
    int64_t per_seg_row;   /* batch entries per row of the segments */
    int causal;
    IrDType t;
    LLVMTypeRef ty;
} AttnGeom;

/* what one query row needs to test its keys */
typedef struct AttnRow {
    LLVMValueRef seg_base;  /* first element of its batch entry's segments row */
    LLVMValueRef seg_query; /* the query position's segment */
    LLVMValueRef key_end;   /* keys [0, key_end) may be visible: p + 1 when causal, else T */
} AttnRow;

AttnGeom cg_attn_geom_of(Cg *c, const IrGraph *g, int32_t root);
AttnGeom cg_attn_geom(const CgKern *k);
/* element `flat` of node id (stored or computed inline) */
LLVMValueRef cg_attn_read(CgKern *k, int32_t id, LLVMValueRef flat);
/* query row r of batch entry bi */
AttnRow cg_attn_row(CgKern *k, const AttnGeom *a, LLVMValueRef bi, LLVMValueRef r);
/* i1: key j (below row->key_end) is visible to the row: its segment is 0 or the query's */
LLVMValueRef cg_attn_key_visible(CgKern *k, const AttnGeom *a, const AttnRow *row, LLVMValueRef j);

#endif
