/* dporun_main.c — the `dporun` program: train a compiled step, or precompute
 * reference log-probs.
 *
 * Parses the command line (dporun_opts.c), installs SIGINT/SIGTERM handlers
 * that ask the loop to finish its step, save and stop (a second signal ends
 * the process at once), and calls train_run or train_ref_logps. Exit status:
 * 0 done, 1 error, 2 bad command line, 130 stopped by a signal.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dporun_cli.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* the second signal takes the default action */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) return dporun_bench_main(argc, argv);
    TrainOptions o;
    DporunMode mode;
    int p = dporun_parse(argc, argv, &o, &mode, stderr);
    if (p) return p > 0 ? 0 : 2;
    install_handlers();
    o.stop = &stop_requested;
    char err[2048] = "";
    FILE *log = stderr; /* under mpirun: ranks other than 0 log nothing (dporun_mesh.c) */
    if (dporun_mesh_begin(&argc, &argv, &o, &log)) return 1;
    int rc = mode == DPORUN_REF_LOGPS ? train_ref_logps(&o, log, err, sizeof err)
             : mode == DPORUN_PREDICT ? dporun_predict(&o, stdin, stdout, stderr, err, sizeof err)
                                      : train_run(&o, log, err, sizeof err);
    dporun_mesh_end(rc, err, log);
    if (rc < 0) {
        fprintf(stderr, "dporun: %s\n", err);
        return 1;
    }
    return rc == 1 ? 130 : 0;
}
