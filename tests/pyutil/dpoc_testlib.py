"""dpoc_testlib.py — what the Python test drivers of dporun and the MPI tests share.

A driver puts tests/pyutil on sys.path and imports this module. fail(), check()
and skip() print one line ("FAIL: ...", "SKIP: ...") that ctest shows with
--output-on-failure and exit with 1 or 0; Checks is a check() that records
each failure and goes on, for drivers that report every failed check. MPI_ENV is the environment every
process of these tests runs with: Open MPI allowed to run as root (CI runs in
a container as root), no single-copy mechanism (containers forbid ptrace-based
CMA) and oversubscription allowed (the 2-core CI machine runs 4-rank meshes).
MPIRUN_ENV adds what processes started by mpirun need under an ASan build:
Open MPI's components are dlopened and unloaded at MPI_Finalize, so their
allocations that live until exit can be neither attributed nor suppressed;
leak checking is turned off for them (memory errors and undefined behaviour
are still reported and fail the run). QUIET is the dporun flags that keep a
test's log to what it checks. Standard library only.
"""
import os
import sys

MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")
MPIRUN_ENV = dict(MPI_ENV, ASAN_OPTIONS=":".join(
    x for x in (os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0") if x))
QUIET = ["--no-progress", "--log-every", "1000000", "--deterministic-metrics"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(0)


class Checks:
    """check(cond, what) that records a failure and goes on (every check of a
    driver runs); done() prints the verdict and exits 1 if any failed."""

    def __init__(self, name):
        self.name = name
        self.fails = []

    def __call__(self, cond, what):
        if not cond:
            self.fails.append(what)
            print("FAIL: " + what, file=sys.stderr)

    def done(self):
        print(f"{self.name}: " + ("OK" if not self.fails else f"{len(self.fails)} check(s) failed"))
        sys.exit(1 if self.fails else 0)
