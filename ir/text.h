/* text.h — internal to ir/: the attribute schema shared by the printer,
 * the parser and the verifier.
 *
 * Each op's attributes (IrNode.attr[]) have a name in the IR text, listed
 * here once in slot order. Two attributes are special: param's `role`
 * (printed as the word trainable or frozen) and permute's `perm` (one list
 * that fills attr[0..ndim-1]). Everything else is a plain integer.
 */
#ifndef DPOC_IR_TEXT_H
#define DPOC_IR_TEXT_H

#include "ir.h"

/* Integers in attributes stay within +-IR_TEXT_ATTR_MAX, and a value's
 * element count within IR_TEXT_NUMEL_MAX, so shape arithmetic on parsed or
 * verified graphs cannot overflow int64. */
#define IR_TEXT_ATTR_MAX ((int64_t)1 << 60)
#define IR_TEXT_NUMEL_MAX ((int64_t)1 << 62)

/* Names of op's attributes in slot order; returns how many (0..3). For
 * OP_PERMUTE it returns 1 ("perm"), which covers ndim slots. */
int ir_text_attrs(IrOp op, const char *names[IR_MAX_ATTR]);

/* How many attr[] slots op uses for a result of rank ndim. */
int ir_text_attr_slots(IrOp op, int ndim);

/* Mesh axis names ("dp", "tp"), NULL when out of range. */
const char *ir_text_mesh_name(int axis);

/* Output role names ("loss", "value", "grad"), NULL when out of range. */
const char *ir_text_role_name(int role);

/* kernels.c: the fusion result's copy, text and checks */
int ir_kernels_copy(IrGraph *dst, const IrGraph *src);
void ir_kernels_print(const IrGraph *g, FILE *f);
int ir_kernels_verify(const IrGraph *g, char *err, size_t errlen);

#endif
