/* train_hash.h — the hashes dporun records: of a parameter set and of a config.
 *
 * The weights hash names the exact parameters a set of reference log-probs
 * was computed with; it is stored in a .rec header by `dporun --ref-logps`
 * and compared when training. It is FNV-1a (64-bit) over, for every tensor
 * of the role in the step's table order: the name (a `ref:` prefix dropped,
 * so a frozen copy hashes like the policy it was copied from) and a 0 byte,
 * the number of dimensions as a little-endian u32, each dimension as a
 * little-endian u64, then the tensor's bytes (f32 little-endian, as stored).
 * A result of 0 becomes 1: 0 means "no hash" in a .rec header.
 * The config hash is FNV-1a over the compact JSON text of the manifest's
 * "config" object (0 when there is none); checkpoints record it so that a
 * resume with another model or loss is refused.
 */
#ifndef DPOC_TRAIN_HASH_H
#define DPOC_TRAIN_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "step_load.h"

#define TRAIN_FNV_BASIS 0xcbf29ce484222325ull

uint64_t train_fnv1a(uint64_t h, const void *data, size_t n);
/* role: DPOC_ROLE_PARAM or DPOC_ROLE_REF_PARAM */
uint64_t train_weights_hash(const DpocStep *s, DpocRole role);
uint64_t train_config_hash(const DpocStep *s);

#endif
