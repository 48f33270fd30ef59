/* ir_interp.h — the reference interpreter now lives in the IR library
 * (ir/interp.c, so that dporun --bench can link it); this header keeps the
 * tests' old include working. */
#ifndef DPOC_TESTS_IR_INTERP_H
#define DPOC_TESTS_IR_INTERP_H
#include "ir/interp.h"
#endif
