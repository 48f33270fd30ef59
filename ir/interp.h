/* interp.h — a plain double-precision reference interpreter for the IR.
 *
 * Evaluates every node of a graph in id order with straightforward C loops,
 * in double, independent of codegen: the oracle for gradient checks and for
 * comparing compiled kernels. Values are row-major arrays of ir_numel()
 * doubles; i32 values are whole numbers. Semantics follow ops.def / ir.h
 * (binary ops on identical shapes, reductions keep the reduced dim, select
 * picks where the condition is non-zero, cmp_lt yields 1 or 0 in the operand
 * dtype, cast to i32 truncates toward zero, gather/scatter/pick/unpick index
 * with i32 ids; an out-of-range id is an error).
 *
 * It is the oracle of the gradient-check and front-end tests, and of
 * `dporun --bench`, which checks one compiled kernel call at a time: there
 * ir_interp_run_part evaluates only the nodes a kernel computes, from the
 * values of the stored nodes it reads.
 *
 * Usage:
 *   double **leaf = calloc(g->n, sizeof *leaf);   // one slot per node id
 *   leaf[x_id] = x_values; ...                    // every PARAM and INPUT
 *   double **v = ir_interp_run(g, leaf, 0, err, sizeof err);
 *   const double *loss = ir_interp_output(g, v, "loss");
 *   ir_interp_free(g, v);
 */
#ifndef DPOC_IR_INTERP_H
#define DPOC_IR_INTERP_H

#include <stddef.h>

#include "ir/ir.h"

enum {
    /* round every f32 result to float after each op (what f32 kernels see,
     * up to their own rounding order); i32 results are always whole */
    IR_INTERP_ROUND_F32 = 1u << 0,
};

/* leaf[id] gives the numel(id) values of every PARAM and INPUT node (other
 * entries are ignored and may be NULL). Returns a malloc'd array of g->n
 * arrays (one per node, malloc'd, numel doubles each), or NULL with a
 * message in err (a missing leaf, a bad index, out of memory). */
double **ir_interp_run(const IrGraph *g, double *const *leaf, unsigned flags, char *err, size_t errlen);
void ir_interp_free(const IrGraph *g, double **vals);

/* Evaluates part of a graph: every node with need[id] set, in id order.
 * A node with given[id] non-NULL takes those numel values (whatever its op);
 * any other needed node is computed, and each of its inputs must be needed
 * or given. Returns a g->n array whose entries are NULL except for needed
 * and given nodes (given arrays are copied, not borrowed), or NULL with a
 * message in err. Free with ir_interp_free. */
double **ir_interp_run_part(const IrGraph *g, const unsigned char *need, double *const *given, unsigned flags,
                            char *err, size_t errlen);

/* The values of the output named `name`, or NULL when there is none. */
const double *ir_interp_output(const IrGraph *g, double *const *vals, const char *name);

#endif
