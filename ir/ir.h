/* ir.h — the dpoc tensor IR: plain nodes in one array, in topological order.
 *
 * A graph is an array of IrNode. A node refers to its inputs by integer id,
 * and only to lower ids, so array order is a valid schedule and reverse-mode
 * autodiff is a plain downward loop. Never keep an IrNode pointer across a
 * builder call: the array may move. Builders hash-cons: adding a node equal to
 * an existing one (same op, dtype, shape, inputs, attributes, value, flags)
 * returns the existing id, which gives common-subexpression elimination for
 * free. Parameters and inputs are keyed by name.
 *
 * Errors: a builder that cannot add a node (bad shapes, bad attribute) returns
 * -1 and records the first message in g->err; builders given a -1 input
 * return -1 without a new message, so a front end can build a whole
 * expression and check once at the end.
 */
#ifndef DPOC_IR_H
#define DPOC_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { IR_MAX_DIMS = 6, IR_MAX_IN = 6, IR_MAX_ATTR = 6 };
#define IR_MAX_ELEMS (1LL << 48) /* per tensor; keeps every size computation in int64 */

typedef enum IrOp {
#define OP(NAME, text, nin, cls, flags) OP_##NAME,
#include "ops.def"
#undef OP
    OP_COUNT
} IrOp;

typedef enum IrFusionClass {
    FC_LEAF, FC_ELEMWISE, FC_BROADCAST, FC_INJECTIVE, FC_REDUCE, FC_MATMUL, FC_OPAQUE
} IrFusionClass;

enum {
    OPF_LEAF = 1u << 0,
    OPF_NOGRAD = 1u << 1,
    OPF_LINEAR = 1u << 2,
    OPF_EXPENSIVE = 1u << 3,
    OPF_COLLECTIVE = 1u << 4,
};

typedef struct IrOpInfo {
    const char *name;   /* IR text mnemonic */
    int nin;
    IrFusionClass cls;
    unsigned flags;
} IrOpInfo;

extern const IrOpInfo ir_op_info[OP_COUNT];

typedef enum IrDType { DT_F32, DT_F64, DT_I32, DT_COUNT } IrDType;

const char *ir_dtype_name(IrDType t);
size_t ir_dtype_size(IrDType t);
int ir_dtype_is_float(IrDType t);

/* param roles (attr[0] of OP_PARAM) */
enum { IR_PARAM_TRAINABLE = 0, IR_PARAM_FROZEN = 1 };

/* what dim 0 of an input counts (attr[0] of OP_INPUT), for the shard pass:
 * sequences, 2B of them (the chosen of every pair, then the rejected), or
 * pairs (B rows, a packed step's): data parallelism gives each rank its
 * pairs, so a sequence input splits in two halves' blocks, a pair input in
 * one */
enum { IR_INPUT_SEQS = 0, IR_INPUT_PAIRS = 1 };

/* value flags (IrNode.flags) */
enum {
    IR_F_NOGRAD = 1u << 0, /* never differentiated (e.g. the reference model) */
    IR_F_SAVE = 1u << 1,   /* kept from forward for backward (set by schedule) */
    IR_F_REMAT = 1u << 2,  /* forward value the backward recomputes instead of keeping (autodiff.c) */
    IR_F_RECOMPUTED = 1u << 3, /* the backward's recomputation of an IR_F_REMAT value */
    IR_F_KNOWN = IR_F_NOGRAD | IR_F_SAVE | IR_F_REMAT | IR_F_RECOMPUTED,
};

/* sharding: shard[d] is a mesh axis id or IR_SHARD_NONE; partial is a mask */
enum { IR_SHARD_NONE = -1, IR_MESH_DP = 0, IR_MESH_TP = 1, IR_MESH_AXES = 2 };

typedef struct IrLoc {
    int32_t file; /* string id, -1 when unknown */
    int32_t line, col;
} IrLoc;

typedef struct IrNode {
    uint16_t op;      /* IrOp */
    uint8_t dtype;    /* IrDType */
    uint8_t ndim;
    uint32_t flags;   /* IR_F_* */
    int32_t in[IR_MAX_IN];
    int64_t shape[IR_MAX_DIMS];
    int64_t attr[IR_MAX_ATTR];
    double fval;      /* OP_CONST value */
    int32_t name;     /* string id (param/input name), -1 none */
    int8_t shard[IR_MAX_DIMS];
    uint8_t partial;  /* mask of mesh axes with a pending partial sum */
    IrLoc loc;
} IrNode;

/* roles of named graph outputs */
typedef enum IrOutRole {
    IR_OUT_LOSS,   /* the scalar loss that autodiff seeds */
    IR_OUT_VALUE,  /* a value the runtime reads (metrics, log-probs) */
    IR_OUT_GRAD,   /* gradient of a parameter; name is the parameter's */
    IR_OUT_COUNT
} IrOutRole;

typedef struct IrOutput {
    int32_t name; /* string id */
    int32_t id;   /* node id */
    int32_t role; /* IrOutRole */
} IrOutput;

/* a kernel decided by the fuse pass: `root` is the value it stores, the
 * members (kmembers[first .. first+n-1], increasing ids, root excluded) are
 * computed inline inside it. See ir/kernels.c. */
typedef struct IrKernel {
    int32_t root, first, n;
} IrKernel;

typedef struct IrGraph {
    IrNode *nodes;
    int32_t n, cap;
    int32_t *hash;      /* open addressing table of node ids, -1 empty */
    int32_t hcap;
    char *strs;         /* string pool: NUL-terminated strings back to back */
    int32_t nstrs, strcap;
    int32_t *strhash;   /* open addressing table of string ids, -1 empty */
    int32_t strhcap, nstrids;
    IrOutput *outs;
    int32_t nout, outcap;
    IrLoc cur_loc;      /* stamped on nodes added while set */
    char err[512];      /* first error, "" when none */
    IrKernel *kernels;  /* fusion result, by increasing root; none (0) before fuse */
    int32_t nkernels, kernelcap;
    int32_t *kmembers;
    int32_t nkmembers, kmembercap;
} IrGraph;

/* ---- graph lifetime, strings, outputs ------------------------------------ */
void ir_init(IrGraph *g);
void ir_free(IrGraph *g);
int ir_copy(IrGraph *dst, const IrGraph *src);  /* 0 ok, -1 out of memory */
int32_t ir_str(IrGraph *g, const char *s);      /* intern; returns string id */
const char *ir_str_get(const IrGraph *g, int32_t id); /* "" for -1 */
int32_t ir_find_str(const IrGraph *g, const char *s); /* -1 when absent */
void ir_set_loc(IrGraph *g, const char *file, int line, int col);
int ir_set_error(IrGraph *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))); /* keeps the first; returns -1 */
int ir_add_output(IrGraph *g, const char *name, int32_t id, IrOutRole role);
int32_t ir_find_output(const IrGraph *g, const char *name); /* index or -1 */
int32_t ir_find_named(const IrGraph *g, IrOp op, const char *name); /* id */

static inline const IrNode *ir_node(const IrGraph *g, int32_t id) { return &g->nodes[id]; }
int64_t ir_numel(const IrNode *n);

/* ---- generic add --------------------------------------------------------
 * proto gives op, in[], attr[], fval, flags, name, and for leaves, reshape,
 * broadcast and cast the dtype/ndim/shape of the result. Shape inference
 * fills or checks the rest; the node is hash-consed and appended. */
int32_t ir_add_node(IrGraph *g, const IrNode *proto);
void ir_node_proto(IrNode *n, IrOp op); /* zeroes, in[]=-1, name=-1, shard none */
/* a node of op with inputs in[0..nin) and attributes attr[0..nattr) (ir_add_node) */
int32_t ir_add_op(IrGraph *g, IrOp op, int nin, const int32_t *in, int nattr, const int64_t *attr);

/* shape/dtype inference for a prototype whose inputs live in g (checked:
 * op code and input ids are validated first). Returns 0
 * and fills n->dtype/ndim/shape, or -1 with a message in err. */
int ir_infer(const IrGraph *g, IrNode *n, char *err, size_t errlen);

/* ---- typed builders ------------------------------------------------------ */
int32_t ir_param(IrGraph *g, const char *name, IrDType t, int ndim, const int64_t *shape, int role);
int32_t ir_input(IrGraph *g, const char *name, IrDType t, int ndim, const int64_t *shape);
/* an input whose dim 0 counts `rows` (IR_INPUT_SEQS / IR_INPUT_PAIRS) */
int32_t ir_input_rows(IrGraph *g, const char *name, IrDType t, int ndim, const int64_t *shape, int rows);
int32_t ir_const(IrGraph *g, double v, IrDType t, int ndim, const int64_t *shape);
int32_t ir_const_like(IrGraph *g, double v, int32_t like);
int32_t ir_iota(IrGraph *g, int axis, IrDType t, int ndim, const int64_t *shape);
int32_t ir_unary(IrGraph *g, IrOp op, int32_t a);
int32_t ir_binary(IrGraph *g, IrOp op, int32_t a, int32_t b);
int32_t ir_select(IrGraph *g, int32_t c, int32_t a, int32_t b);
int32_t ir_cast(IrGraph *g, int32_t a, IrDType t);
int32_t ir_broadcast(IrGraph *g, int32_t a, int ndim, const int64_t *shape);
int32_t ir_reshape(IrGraph *g, int32_t a, int ndim, const int64_t *shape);
int32_t ir_permute(IrGraph *g, int32_t a, const int *perm);
int32_t ir_slice(IrGraph *g, int32_t a, int axis, int64_t start, int64_t stop);
int32_t ir_pad(IrGraph *g, int32_t a, int axis, int64_t lo, int64_t hi);
int32_t ir_concat(IrGraph *g, int32_t a, int32_t b, int axis);
int32_t ir_reduce(IrGraph *g, IrOp op, int32_t a, int axis);
int32_t ir_matmul(IrGraph *g, int32_t a, int32_t b, int ta, int tb);
/* matmul of rank-2 operands with a row mask (dim 0: result rows whose mask
 * is <= 0 are zero) or a contraction mask (dim 1: the k whose mask is <= 0
 * are skipped); mask [M] or [K], the operands' dtype */
int32_t ir_matmul_masked(IrGraph *g, int32_t a, int32_t b, int ta, int tb, int32_t mask, int dim);
/* matmul or matmul_masked */
static inline int ir_op_is_matmul(int op) { return op == OP_MATMUL || op == OP_MATMUL_MASKED; }
int32_t ir_gather_rows(IrGraph *g, int32_t table, int32_t ids);
/* softmax(q.k^T) v over the keys each query row may see, with the row's
 * log-sum-exp as an extra last column (ops.def: attention); groups query
 * rows per kv row block, causal 0/1 */
int32_t ir_attention(IrGraph *g, int32_t q, int32_t k, int32_t v, int32_t seg, int64_t groups, int causal);
/* the gradients of q, k, v stacked along dim -2, from the attention's result
 * `out` and its gradient `grad` (ops.def: attention_grad) */
int32_t ir_attention_grad(IrGraph *g, int32_t out, int32_t grad);
int32_t ir_scatter_add_rows(IrGraph *g, int32_t grad, int32_t ids, int64_t rows);
/* base plus scatter_add_rows(grad, ids) over base's rows (ops.def) */
int32_t ir_scatter_add_into(IrGraph *g, int32_t grad, int32_t ids, int32_t base);
int32_t ir_pick(IrGraph *g, int32_t x, int32_t idx);
int32_t ir_unpick(IrGraph *g, int32_t grad, int32_t idx, int64_t n);
/* collectives over mesh axis IR_MESH_DP | IR_MESH_TP (ir/collective.c) */
int32_t ir_all_reduce(IrGraph *g, int32_t a, int axis);
int32_t ir_all_gather(IrGraph *g, int32_t a, int axis, int dim, int64_t ranks);
int32_t ir_axis_index(IrGraph *g, int axis); /* i32 scalar: this rank's index */

/* conveniences built from the primitives */
int32_t ir_add(IrGraph *g, int32_t a, int32_t b);
int32_t ir_sub(IrGraph *g, int32_t a, int32_t b);
int32_t ir_mul(IrGraph *g, int32_t a, int32_t b);
int32_t ir_div(IrGraph *g, int32_t a, int32_t b);
int32_t ir_scale(IrGraph *g, int32_t a, double s);          /* a * s */
int32_t ir_bcast_to(IrGraph *g, int32_t a, int32_t like);   /* numpy-style, right-aligned */
int32_t ir_sum_to(IrGraph *g, int32_t a, int32_t like);     /* undo ir_bcast_to */
int32_t ir_squeeze(IrGraph *g, int32_t a, int axis);        /* drop a size-1 dim */

/* ---- kernels (fusion result, ir/kernels.c) --------------------------------
 * Appends a kernel (roots in increasing order; members sorted here).
 * 0, or -1 with g->err set. ir_kernels_clear drops them all. */
int ir_kernel_add(IrGraph *g, int32_t root, const int32_t *members, int32_t n);
void ir_kernels_clear(IrGraph *g);
/* 1 when op can be computed inline inside another op's kernel */
int ir_op_inlinable(IrOp op);
/* 1 when a kernel whose root is op (and that has no matmul member) may read
 * its input slot `slot` from the root's own bytes: each element is read
 * where, or before, it is written. Any input of an elementwise op (an
 * in-place map); scatter_add_into's base (only the ids' rows are added) */
int ir_op_reads_in_place(IrOp op, int slot);

/* ---- text, checks -------------------------------------------------------- */
/* One SSA line per node, then one line per output. print -> parse -> print
 * is identical. */
int ir_print(const IrGraph *g, FILE *f);
char *ir_print_str(const IrGraph *g); /* malloc'd, NULL on out of memory */
/* Parses text into an empty graph; on error returns -1 with
 * "<fname>:<line>:<col>: message" in err. */
int ir_parse(IrGraph *g, const char *text, const char *fname, char *err, size_t errlen);
/* Checks every invariant: ids in range and topological, arities, shapes and
 * dtypes re-inferred, flags and names, outputs, sharding. 0 ok, -1 + err. */
int ir_verify(const IrGraph *g, char *err, size_t errlen);

#endif
