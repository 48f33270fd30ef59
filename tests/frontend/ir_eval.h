/* ir_eval.h — a plain double-precision interpreter of IR graphs, for tests.
 *
 * Every value, whatever its dtype, is computed in double (i32 ids are exact
 * in a double), one node at a time in array order, with straightforward
 * index arithmetic: no fusion, no blocking, fixed reduction order. It is the
 * yardstick the front-end tests use to check loss expressions and model
 * graphs numerically, independent of the code generator.
 */
#ifndef DPOC_TEST_IR_EVAL_H
#define DPOC_TEST_IR_EVAL_H

#include "ir/ir.h"

/* Returns the data of a named param or input (numel doubles), or NULL. */
typedef const double *(*EvalLookup)(void *ctx, const char *name, IrOp op, int64_t numel);

typedef struct EvalResult {
    double **vals; /* vals[id]: the node's elements, row-major */
    int32_t n;
} EvalResult;

/* 0 ok; -1 with a message in err (unknown op, missing data, bad index). */
int ir_eval(const IrGraph *g, EvalLookup lookup, void *ctx, EvalResult *res, char *err, size_t errlen);
void ir_eval_free(EvalResult *res);
/* The values of a named output, or NULL. */
const double *ir_eval_output(const IrGraph *g, const EvalResult *res, const char *name, int64_t *numel);

#endif
