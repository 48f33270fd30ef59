/* rebuild.h — internal to passes/: rebuilding a graph into a fresh one.
 *
 * Rewriting passes (simplify, dce) never edit nodes in place. They walk the
 * old graph in id order and add each kept node to a new graph through the
 * hash-consing builder, mapping old ids to new ids (map[]), so whatever
 * became identical merges (CSE). Strings (names, source files) are interned
 * again in the new graph; locations are kept. At the end the outputs are
 * carried over through map[] and rebuild_finish() swaps the new graph in,
 * telling whether anything actually changed.
 */
#ifndef DPOC_PASSES_REBUILD_H
#define DPOC_PASSES_REBUILD_H

#include "passes.h"

typedef struct Rebuild {
    const IrGraph *old;
    IrGraph nw;        /* the graph being built */
    int32_t *map;      /* old id -> new id, -1 dropped / not yet added */
    int32_t *strmap;   /* old string offset -> new one, -1 not yet interned */
} Rebuild;

/* 0 ok, -1 out of memory (message in err) */
int rebuild_begin(Rebuild *r, const IrGraph *old, char *err, size_t errlen);
/* Copies old node id into *p, with inputs mapped into the new graph and its
 * name and location strings interned there. -1 when an input was dropped. */
int rebuild_proto(Rebuild *r, int32_t id, IrNode *p);
/* Adds a prototype to the new graph (stamped with old node id's location)
 * and records map[id]. Returns the new id or -1 (message in r->nw.err). */
int32_t rebuild_add(Rebuild *r, int32_t id, const IrNode *p);
/* Copies the outputs through map[]. 0 ok, -1 (an output's value was dropped). */
int rebuild_outputs(Rebuild *r, char *err, size_t errlen);
/* Swaps the new graph into *g when it differs from the old one (node count,
 * any node, any output), freeing the loser. Returns PASS_CHANGED or
 * PASS_UNCHANGED. *g must be r->old. */
int rebuild_finish(Rebuild *r, IrGraph *g);
/* Frees everything (after an error). */
void rebuild_abort(Rebuild *r);

#endif
