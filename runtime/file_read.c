/* file_read.c — see file_read.h. Reads in a loop into a buffer doubled as
 * needed (64 KiB first), one spare byte for the terminating NUL. */
#include "file_read.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *file_read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *p = cap > ((size_t)-1 - 1) / 2 ? NULL : realloc(buf, cap * 2 + 1);
        if (!p) {
            free(buf);
            errno = ENOMEM;
            return NULL;
        }
        buf = p;
        cap *= 2;
    }
    if (!buf) {
        errno = ENOMEM;
        return NULL;
    }
    if (ferror(f)) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *file_read_all(const char *path, size_t *len) {
    if (!strcmp(path, "-")) return file_read_stream(stdin, len);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = file_read_stream(f, len);
    int e = errno;
    fclose(f);
    errno = e;
    return buf;
}

void text_line_col(const char *text, size_t len, const char *at, size_t *line, size_t *col) {
    size_t end = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
    *line = 1, *col = 1;
    for (size_t i = 0; i < end; i++) {
        if (text[i] == '\n') ++*line, *col = 1;
        else ++*col;
    }
}
