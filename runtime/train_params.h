/* train_params.h — initial parameters: from a seed, or from a checkpoint.
 *
 * The seeded scheme (docs/dporun.md): every element of a trainable tensor
 * is a function of (seed, the tensor's name, the element's index) alone,
 * so the result does not depend on the table order, the thread count or
 * the other tensors:
 *   tensors of 2 or more dimensions  N(0, 0.02^2) (Hugging Face's
 *                                     initializer_range default)
 *   1-D tensors named *.bias          0
 *   other 1-D tensors (norm weights)  1
 * The normal is Box-Muller (cosine branch) over two uniforms
 * u = (mix64(key + 2i + {0,1}) >> 11 + 0.5) / 2^53, key =
 * mix64(FNV-1a(name) ^ mix64(seed)), mix64 being splitmix64's finaliser;
 * the double result is rounded once to f32.
 * The online reference (`ref:` tensors) starts as a copy of the policy.
 * Checkpoint tensors are matched by name, dtype and shape; the messages
 * name the tensor and both shapes.
 */
#ifndef DPOC_TRAIN_PARAMS_H
#define DPOC_TRAIN_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "step_load.h"
#include "threadpool.h"

#define TRAIN_INIT_STD 0.02

void train_init_params(DpocStep *s, uint64_t seed, ThreadPool *pool);
/* The seeded value of element i of tensor `name` (ndim dimensions). */
float train_init_value(uint64_t seed, const char *name, int ndim, int64_t i);
/* ref:NAME = NAME for every reference parameter. */
int train_copy_ref(DpocStep *s, char *err, size_t errlen);
/* Loads every tensor of `role` (PARAM, REF_PARAM, ADAM_M or ADAM_V) from c,
 * under its name with `prefix` prepended. */
int train_load_role(DpocStep *s, Ckpt *c, DpocRole role, const char *prefix, char *err, size_t errlen);
/* Loads the starting parameters: from a Hugging Face directory (hf_path:
 * its config.json names the architecture) or a dpoc checkpoint (ckpt_path);
 * one of them non-NULL. 0, or -1 with a message naming the file. */
int train_load_init(DpocStep *s, const char *ckpt_path, const char *hf_path, char *err, size_t errlen);

#endif
