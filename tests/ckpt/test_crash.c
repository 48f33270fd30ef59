/* test_crash.c — kill -9 while checkpoints are being written.
 *
 * Usage: test_ckpt_crash WRITER WORKDIR KILLS SEED
 *
 * Starts WRITER (ckpt_writer) saving checkpoints in a loop into one
 * directory, continuing from the step `latest` names, and kills it with
 * SIGKILL at a random moment (seeded): every third time within 0-3 ms of
 * starting it (often inside its first save), otherwise 0-20 ms after its
 * first save completed. The writer reports each completed save through a
 * pipe. After each kill: ckpt_open(DIR) must succeed; `latest` must name a
 * step no older than the last save the writer reported and at most one
 * newer; every checkpoint file present must read back with valid checksums
 * and hold exactly the contents that step wrote (recomputed from the step
 * number); at most keep_last + 1 step files may exist (the kill may land
 * between the rename and the pruning). It also counts the kills that left a
 * temporary file behind, i.e. that landed inside a save, and requires some.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_content.h"
#include "ckpt_check.h"
#include "runtime/ckpt_internal.h"

#define KEEP 3


/* Opens path, and checks it holds exactly what `step` wrote; returns the
 * step found (or UINT64_MAX if it could not be opened). */
static uint64_t check_file(const char *path, const char *what) {
    char err[512];
    Ckpt *c = ckpt_open(path, err, sizeof err);
    if (!check(c != NULL, "%s: open: %s", what, err)) return UINT64_MAX;
    uint64_t step = ckpt_state(c)->step;
    CkptContent want;
    ckpt_content_make(&want, step, 1);
    const CkptState *s = ckpt_state(c);
    check(s->epoch == want.st.epoch && s->data_pos == want.st.data_pos && !memcmp(s->rng, want.st.rng, sizeof s->rng) &&
              s->config_hash == want.st.config_hash && !strcmp(s->extra_json, want.st.extra_json),
          "%s: state of step %" PRIu64 " differs", what, step);
    if (check(ckpt_ntensors(c) == want.n, "%s: %d tensors", what, ckpt_ntensors(c))) {
        for (int i = 0; i < want.n; i++) {
            const CkptTensor *t = ckpt_tensor(c, i), *w = &want.t[i];
            if (!check(!strcmp(t->name, w->name) && t->nbytes == w->nbytes &&
                           !memcmp(t->shape, w->shape, sizeof t->shape) && t->dtype == w->dtype,
                       "%s: tensor %d metadata", what, i))
                continue;
            unsigned char *buf = malloc(w->nbytes ? w->nbytes : 1);
            int rc = ckpt_read_tensor(c, i, buf, w->nbytes, err, sizeof err);
            check(rc == 0, "%s: %s", what, err);
            check(rc != 0 || !w->nbytes || !memcmp(buf, w->data, w->nbytes),
                  "%s: tensor '%s' of step %" PRIu64 " differs from what that step wrote", what, w->name, step);
            free(buf);
        }
    }
    ckpt_content_free(&want);
    ckpt_close(c);
    return step;
}

/* Checks every step file in dir; returns how many there are and whether a
 * .tmp file exists. */
static int check_all_files(const char *dir, int *tmp) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    *tmp = 0;
    while (d && (e = readdir(d))) {
        uint64_t step;
        if (strstr(e->d_name, ".tmp")) *tmp = 1;
        if (!ckpt_parse_step_name(e->d_name, &step)) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint64_t got = check_file(path, path);
        check(got == step || got == UINT64_MAX, "%s holds step %" PRIu64, path, got);
        n++;
    }
    if (d) closedir(d);
    return n;
}

/* Starts the writer at step `first` for `count` saves (0: forever). */
static pid_t spawn(const char *writer, const char *dir, uint64_t first, const char *count, int *rfd) {
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(p[0]);
        char a1[32], a5[16];
        snprintf(a1, sizeof a1, "%" PRIu64, first);
        snprintf(a5, sizeof a5, "%d", p[1]);
        execl(writer, writer, dir, a1, count, "3", "1", a5, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *rfd = p[0];
    return pid;
}

/* Reads reports until EOF; returns the last step reported, or `none`. */
static uint64_t drain(int fd, uint64_t none) {
    uint64_t last = none, v;
    for (;;) {
        ssize_t r = read(fd, &v, sizeof v);
        if (r == (ssize_t)sizeof v) {
            last = v;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        break;
    }
    return last;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: test_ckpt_crash WRITER WORKDIR KILLS SEED\n");
        return 2;
    }
    const char *writer = argv[1];
    int kills = atoi(argv[3]);
    uint64_t rng = strtoull(argv[4], NULL, 10);
    char dir[4096], cmd[4200];
    snprintf(dir, sizeof dir, "%s/ckpt", argv[2]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", argv[2]);
    if (system(cmd) != 0) return 1;
    char err[512];
    if (ckpt_mkdirs(argv[2], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    /* a first checkpoint, written without interference */
    int rfd;
    pid_t pid = spawn(writer, dir, 0, "1", &rfd);
    int status;
    waitpid(pid, &status, 0);
    close(rfd);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first save failed (status %d)", status);
    uint64_t prev = UINT64_MAX;
    Ckpt *c0 = ckpt_open(dir, err, sizeof err);
    if (c0) {
        prev = ckpt_state(c0)->step;
        ckpt_close(c0);
    }
    check(prev != UINT64_MAX, "no first checkpoint: %s", err);
    if (prev == UINT64_MAX) return 1;

    int mid_write = 0, reported_total = 0;
    for (int it = 0; it < kills; it++) {
        int early = it % 3 == 0;
        pid = spawn(writer, dir, prev + 1, "0", &rfd);
        uint64_t confirmed = prev;
        if (!early) { /* wait until a save of this writer completed */
            struct pollfd pf = {rfd, POLLIN, 0};
            uint64_t v;
            if (poll(&pf, 1, 20000) == 1 && read(rfd, &v, sizeof v) == (ssize_t)sizeof v) {
                confirmed = v;
                reported_total++;
            } else {
                check(0, "kill %d: the writer reported no save within 20 s", it);
            }
        }
        long us = early ? (long)(ckpt_content_rand(&rng) % 3000) : (long)(ckpt_content_rand(&rng) % 20001);
        sleep_us(us);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill %d: the writer ended by itself (status %d)", it,
              status);
        confirmed = drain(rfd, confirmed);
        close(rfd);

        int tmp;
        int nfiles = check_all_files(dir, &tmp);
        mid_write += tmp;
        check(nfiles >= 1 && nfiles <= KEEP + 1, "kill %d: %d step files (keep_last %d)", it, nfiles, KEEP);
        char what[64];
        snprintf(what, sizeof what, "kill %d: latest", it);
        uint64_t got = check_file(dir, what);
        if (got == UINT64_MAX) break;
        check(got >= confirmed && got <= confirmed + 1,
              "kill %d: latest is step %" PRIu64 ", the writer had completed step %" PRIu64, it, got, confirmed);
        prev = got;
    }
    /* a clean save removes what the crashes left */
    pid = spawn(writer, dir, prev + 1, "1", &rfd);
    waitpid(pid, &status, 0);
    close(rfd);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the final save failed (status %d)", status);
    int tmp, nfiles = check_all_files(dir, &tmp);
    check(!tmp && nfiles == KEEP, "after a clean save: %d step files (keep_last %d), %s", nfiles, KEEP,
          tmp ? "a .tmp file left" : "no .tmp file");
    check(check_file(dir, "final latest") == prev + 1, "the final save is not latest");
    check(mid_write >= 1, "no kill landed inside a save (%d kills): the test did not test anything", kills);
    printf("crash: %d kills (%d inside a save, %d after a reported save), reached step %" PRIu64 "\n", kills, mid_write,
           reported_total, prev);
    printf("crash: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
