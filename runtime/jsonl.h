/* jsonl.h — a strict, bounded JSON Lines reader.
 *
 * One JSON value per line, read line by line with line numbers. Lines end
 * in LF or CRLF (the CR is dropped); the last line may lack its newline.
 * Blank lines (only spaces, tabs, CRs) are skipped. A UTF-8 byte-order mark
 * at the very start of line 1 is skipped (jsonl_bom() then says so); one
 * anywhere else is an error. Before cJSON sees a row, the raw line is
 * checked: its size against max_row_bytes, UTF-8 validity, control bytes
 * (raw ones are never allowed inside strings; "\u0000" is refused because
 * cJSON strings are NUL-terminated) and the nesting depth of [ and { against
 * max_depth, since cJSON recurses once per level.
 *
 * Errors name the place: "in.jsonl:17: ..." or, when a byte is at fault,
 * "in.jsonl:17:5: ..." (5 = 1-based byte column in the line). A bad row
 * (JSONL_BAD) does not stop the reader: the next call reads the next line.
 * Only I/O errors are fatal (JSONL_FATAL).
 */
#ifndef DPOC_JSONL_H
#define DPOC_JSONL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSONL_DEFAULT_MAX_ROW ((size_t)16 << 20) /* 16 MiB */
#define JSONL_DEFAULT_MAX_DEPTH 64

typedef struct JsonlOpts {
    size_t max_row_bytes; /* 0: JSONL_DEFAULT_MAX_ROW */
    int max_depth;        /* 0: JSONL_DEFAULT_MAX_DEPTH */
} JsonlOpts;

enum { JSONL_ROW = 1, JSONL_END = 0, JSONL_BAD = -1, JSONL_FATAL = -2 };

typedef struct JsonlReader JsonlReader;

/* Opens PATH. o may be NULL (defaults). NULL on error ("PATH: reason"). */
JsonlReader *jsonl_open(const char *path, const JsonlOpts *o, char *err, size_t errlen);
/* Reads from an open stream named NAME in messages; f is not closed. */
JsonlReader *jsonl_open_stream(FILE *f, const char *name, const JsonlOpts *o, char *err, size_t errlen);
void jsonl_close(JsonlReader *r);

/* The next row: JSONL_ROW (*row is a new cJSON tree, the caller deletes it),
 * JSONL_END, JSONL_BAD (err says why; call again for the next line) or
 * JSONL_FATAL. */
int jsonl_next(JsonlReader *r, cJSON **row, char *err, size_t errlen);

const char *jsonl_name(const JsonlReader *r);
long jsonl_line(const JsonlReader *r);          /* 1-based line of the row last returned */
uint64_t jsonl_row_index(const JsonlReader *r); /* 0-based index of that row among non-blank lines */
int jsonl_bom(const JsonlReader *r);            /* line 1 started with a UTF-8 BOM (skipped) */

/* Counts the rows (non-blank lines: the ones jsonl_next returns with the
 * same options, bad ones included) without parsing them. 0 ok, -1 on error. */
int jsonl_count_rows(const char *path, const JsonlOpts *o, uint64_t *n, char *err, size_t errlen);

/* Checks one line (no newline) and parses it: 0 ok, -1 with the message in
 * err and the 1-based byte column (0: the whole line) in *col. Used by
 * jsonl_next; exposed for tests and fuzzing. */
int jsonl_parse_line(const char *line, size_t len, int max_depth, cJSON **out, size_t *col, char *err,
                     size_t errlen);

#endif
