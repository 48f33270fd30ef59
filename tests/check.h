/* check.h — the non-fatal CHECK macros the C tests share.
 *
 * CHECK counts a failure and carries on, so one run reports every broken
 * case; CHECK_MSG adds a printf-style explanation. A test's main returns
 * check_done(name): 0 when nothing failed (and it prints "name: OK"), 1
 * otherwise.
 */
#ifndef DPOC_TESTS_CHECK_H
#define DPOC_TESTS_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

static inline int check_done(const char *name) {
    if (check_failures) fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    else printf("%s: OK\n", name);
    return check_failures ? 1 : 0;
}

#endif
