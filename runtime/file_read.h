/* file_read.h — read a whole file (or standard input) into memory.
 *
 * One helper for every place that needs a file's bytes at once: the
 * tokenizer's JSON and merges files, the CLI's IR text, config.json, text on
 * stdin. The buffer grows by doubling, gets a NUL after the last byte (not
 * counted in *len, so binary data with NULs is fine), and errno tells why a
 * NULL came back (ENOENT..., ENOMEM, EIO). text_line_col turns a parser's
 * stop position in such text into the line:column a message names.
 */
#ifndef DPOC_FILE_READ_H
#define DPOC_FILE_READ_H

#include <stddef.h>
#include <stdio.h>

/* path "-" reads standard input. malloc'd; NULL with errno set on failure. */
char *file_read_all(const char *path, size_t *len);
/* Reads f to its end (does not close it). */
char *file_read_stream(FILE *f, size_t *len);
/* The 1-based line and column of position `at` in text[0, len) (a parser's
 * stop pointer, e.g. cJSON's parse end); the start when at is NULL or outside. */
void text_line_col(const char *text, size_t len, const char *at, size_t *line, size_t *col);

#endif
