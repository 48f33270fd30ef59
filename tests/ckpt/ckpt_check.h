/* ckpt_check.h — the counting check() the checkpoint tests share.
 *
 * check(ok, fmt, ...) counts a pass or prints "FAIL: <message>" and counts a
 * failure, then returns ok, so a test carries on and reports every broken
 * case; each main prints the two counters and returns failed != 0.
 */
#ifndef DPOC_TESTS_CKPT_CHECK_H
#define DPOC_TESTS_CKPT_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int passed, failed;

static int check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int check(int ok, const char *fmt, ...) {
    if (ok) {
        passed++;
        return 1;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    return 0;
}

#endif
