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

typedef enum DporunMode { DPORUN_TRAIN, DPORUN_REF_LOGPS, DPORUN_PREDICT } DporunMode;

/* 0: run; 1: --help was printed (exit 0); -1: a usage error was printed (exit 2). */
int dporun_parse(int argc, char **argv, TrainOptions *o, DporunMode *mode, FILE *err);
void dporun_usage(FILE *out);

/* --predict / --interactive (tools/dporun_predict.c): generates from o->gen,
 * user turns read from in, text to out, notes to log. 0, or -1 + err. */
int dporun_predict(const TrainOptions *o, FILE *in, FILE *out, FILE *log, char *err, size_t errlen);
/* `dporun STEP.so --bench [KERNEL] ...` (dporun_bench.c); returns the exit status. */
int dporun_bench_main(int argc, char **argv);
/* Under mpirun (tools/dporun_mesh.c): joins the job, sets o->mesh and the
 * log of ranks > 0 (-1: could not, message printed); end: aborts the job on
 * an error (rc < 0), else leaves it. No-ops for a plain process. */
int dporun_mesh_begin(int *argc, char ***argv, TrainOptions *o, FILE **log);
void dporun_mesh_end(int rc, const char *err, FILE *log);

#endif
