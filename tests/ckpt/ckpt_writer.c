/* ckpt_writer.c — saves checkpoints in a loop, for the crash test and the
 * CLI test.
 *
 * Usage: ckpt_writer DIR FIRST_STEP COUNT KEEP_LAST [BIG [REPORT_FD]]
 * Saves steps FIRST_STEP, FIRST_STEP+1, ... (COUNT of them; 0: forever)
 * with the contents of ckpt_content.h (BIG 1 adds a 256 KiB tensor). After
 * each save it writes the step number (8 bytes, host order) to REPORT_FD,
 * so the crash test knows which saves completed before it sent SIGKILL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ckpt_content.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: ckpt_writer DIR FIRST_STEP COUNT KEEP_LAST [BIG [REPORT_FD]]\n");
        return 2;
    }
    uint64_t step = strtoull(argv[2], NULL, 10), count = strtoull(argv[3], NULL, 10);
    int keep = atoi(argv[4]), big = argc > 5 ? atoi(argv[5]) : 0, fd = argc > 6 ? atoi(argv[6]) : -1;
    for (uint64_t k = 0; count == 0 || k < count; k++, step++) {
        CkptContent c;
        char err[512];
        ckpt_content_make(&c, step, big);
        int rc = ckpt_save(argv[1], &c.st, c.t, c.n, keep, err, sizeof err);
        ckpt_content_free(&c);
        if (rc != 0) {
            fprintf(stderr, "ckpt_writer: %s\n", err);
            return 1;
        }
        if (fd >= 0 && write(fd, &step, sizeof step) != (ssize_t)sizeof step) return 1;
    }
    return 0;
}
