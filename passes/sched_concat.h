/* sched_concat.h — internal to passes/: concat placement for schedule.c.
 *
 * After the output slots are chosen, sched_place_concats() decides which
 * values are *hosted*: computed straight into a block of another value's
 * storage (host[x], at byte hoff[x] of it) instead of a buffer of their own
 * (sched_concat.c says which). Hosted concat members leave their kernel's
 * member list and get that kernel's step (they are read there, like a stored
 * value); a kernel whose root is a fully hosted concat is dropped; step[] and
 * the plan's copies are renumbered to match. host[x] is -1 for everything
 * else. schedule.c then keeps hosted values out of the arena, starts each
 * host's buffer at its first hosted kernel, and gives every hosted value its
 * host's region and offset + hoff[x] (hosts have higher ids: a chain
 * resolves in one pass from the top).
 */
#ifndef DPOC_PASSES_SCHED_CONCAT_H
#define DPOC_PASSES_SCHED_CONCAT_H

#include "passes.h"

/* host[] must arrive all -1 and hoff[] all 0. 0, or -1 (out of memory;
 * message in err) */
int sched_place_concats(const IrGraph *g, SchedPlan *p, const uint8_t *live, int32_t *step, const uint8_t *placed,
                        int32_t *host, int64_t *hoff, char *err, size_t errlen);

#endif
