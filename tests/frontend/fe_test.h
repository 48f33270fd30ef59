/* fe_test.h — tiny check helpers shared by the front-end tests.
 *
 * CHECK(cond, fmt, ...) prints a failure with its file:line and counts it;
 * a test's main returns fe_failures != 0. Listing files of a directory
 * (sorted, by suffix) lets a test walk every YAML it is given.
 */
#ifndef DPOC_TEST_FE_TEST_H
#define DPOC_TEST_FE_TEST_H

#include <stdio.h>

extern int fe_failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fe_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

/* Sorted names of the regular files in dir ending in suffix; *n set. The
 * list and its strings are malloc'd; free with fe_free_list. */
char **fe_list_dir(const char *dir, const char *suffix, int *n);
void fe_free_list(char **names, int n);
/* Whole file as a NUL-terminated string, or NULL. */
char *fe_slurp(const char *path, size_t *len);

#endif
