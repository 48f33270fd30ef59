/* tpass.h — tiny helpers shared by the pass tests (header-only).
 *
 * CHECK counts failures instead of aborting, so one run reports every broken
 * case; each test's main returns check_done() so ctest sees the result. The
 * random numbers come from a fixed-seed xorshift generator, so every run
 * checks the same values.
 */
#ifndef DPOC_TESTS_TPASS_H
#define DPOC_TESTS_TPASS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "passes/passes.h"
#include "tests/check.h"

typedef struct TRng {
    uint64_t s;
} TRng;

static inline double t_uniform(TRng *r, double lo, double hi) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return lo + (hi - lo) * (double)(r->s >> 11) / 9007199254740992.0;
}

/* number of nodes of op `op` in g */
static inline int t_count_op(const IrGraph *g, IrOp op) {
    int k = 0;
    for (int32_t i = 0; i < g->n; i++) k += g->nodes[i].op == op;
    return k;
}

/* print -> parse -> print must give the same text */
static inline int t_roundtrip(const IrGraph *g) {
    char *a = ir_print_str(g);
    if (!a) return 0;
    IrGraph h;
    ir_init(&h);
    char err[512];
    int ok = ir_parse(&h, a, "roundtrip.ir", err, sizeof err) == 0;
    if (!ok) fprintf(stderr, "roundtrip parse: %s\n", err);
    char *b = ok ? ir_print_str(&h) : NULL;
    ok = ok && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    ir_free(&h);
    return ok;
}

/* sum of every element, as a scalar (rank 0) */
static inline int32_t t_sum_all(IrGraph *g, int32_t x) {
    if (x < 0) return -1;
    int nd = g->nodes[x].ndim;
    for (int d = 0; d < nd; d++) x = ir_reduce(g, OP_REDUCE_SUM, x, d);
    return ir_reshape(g, x, 0, NULL);
}

#endif
