/* collective.c — builders of the collective ops (ops.def: all_reduce,
 * all_gather, axis_index). Only the shard pass (passes/shard.c) makes them;
 * the builders exist so that tests and tools can too. Like every builder
 * they hash-cons and check through ir_add_node / ir_infer.
 */
#include "ir.h"

int32_t ir_all_reduce(IrGraph *g, int32_t a, int axis) {
    return ir_add_op(g, OP_ALL_REDUCE, 1, &a, 1, (int64_t[]){axis});
}

int32_t ir_all_gather(IrGraph *g, int32_t a, int axis, int dim, int64_t ranks) {
    return ir_add_op(g, OP_ALL_GATHER, 1, &a, 3, (int64_t[]){axis, dim, ranks});
}

int32_t ir_axis_index(IrGraph *g, int axis) {
    IrNode n;
    ir_node_proto(&n, OP_AXIS_INDEX);
    n.dtype = DT_I32;
    n.attr[0] = axis;
    return ir_add_node(g, &n);
}
