/* dporun_cli.h — dporun's command line: the option table and its parser.
 *
 * dporun_parse fills TrainOptions from argv in two passes: a --preset is
 * applied first, then every other option in order, so an explicit flag
 * always overrides a preset whatever their order. Each value is checked
 * (numbers parse completely and lie in range, names are known) and every
 * mistake is reported on `err` as "dporun: <option>: <what was expected>".
 */
#ifndef DPORUN_CLI_H
#define DPORUN_CLI_H

#include <stdio.h>

#include "runtime/train.h"

typedef enum DporunMode { DPORUN_TRAIN, DPORUN_REF_LOGPS } DporunMode;

/* 0: run; 1: --help was printed (exit 0); -1: a usage error was printed (exit 2). */
int dporun_parse(int argc, char **argv, TrainOptions *o, DporunMode *mode, FILE *err);
void dporun_usage(FILE *out);

#endif
