/* ckpt_content.h — deterministic checkpoint contents for the tests.
 *
 * ckpt_content_make(step) builds a state and a set of tensors (every dtype,
 * a scalar, an empty tensor, random and compressible data, sizes that vary
 * with the step) whose every byte is a function of the step number, so a
 * test can recompute what any step wrote: the crash test checks that the
 * checkpoint it finds after a kill is exactly one that some step saved.
 */
#ifndef DPOC_TEST_CKPT_CONTENT_H
#define DPOC_TEST_CKPT_CONTENT_H

#include <stdint.h>

#include "runtime/ckpt.h"

typedef struct CkptContent {
    CkptState st;
    int n;
    CkptTensor t[12]; /* ckpt_content_make fills at most 8 */
} CkptContent;

/* big: add a 256 KiB random tensor (the crash test's saves take a while) */
void ckpt_content_make(CkptContent *c, uint64_t step, int big);
void ckpt_content_free(CkptContent *c);
uint64_t ckpt_content_rand(uint64_t *state); /* splitmix64 */

#endif
