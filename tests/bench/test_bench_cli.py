#!/usr/bin/env python3
"""test_bench_cli.py — `dporun STEP.so --bench [KERNEL]` and `DPOC_DEBUG=2 dporun`.

usage: test_bench_cli.py --dporun BIN --mkrec BIN --work DIR   (DIR holds tiny.so and dr_online.so)

Checks that --bench runs, checks and times every kernel row of the manifest
(one listing line each, every check "ok"), that naming one kernel runs just
it, that DPOC_THREADS sets the thread count and DPOC_PIN=0 turns pinning off, that an unknown kernel or option is refused with a message and a non-zero
status, and that a training run with DPOC_DEBUG=2 ends with the per-kernel
table (kernel rows of train_step with time, GFLOP/s and GB/s).
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyutil"))
from dpoc_testlib import Checks  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dporun", required=True)
ap.add_argument("--mkrec", required=True)
ap.add_argument("--work", required=True)
A = ap.parse_args()
check = Checks("bench_cli")


def run(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([A.dporun] + args, capture_output=True, text=True, env=e)




tiny = os.path.join(A.work, "tiny.so")
p = run([tiny, "--bench", "--reps", "1", "--flush-mib", "8", "--threads", "2"])
check(p.returncode == 0, f"--bench exit {p.returncode}: {p.stderr[-2000:]}")
head = re.search(r"^bench .*: (\d+) kernel calls, (\d+) functions, 2 threads", p.stdout, re.M)
check(head is not None, "--bench prints its header")
rows = [l for l in p.stdout.splitlines() if re.match(r"^[a-z_]+_[kf]\d+_\S+ ", l)]
if head:
    n = int(head.group(1))
    check(len(rows) == n, f"one line per kernel call: {len(rows)} of {n}")
for l in rows:
    f = l.split()
    check(len(f) >= 8 and f[7] == "ok", f"kernel checked ok: {l}")
    check(float(f[3]) > 0 and float(f[5]) >= 0 and float(f[6]) >= 0, f"time, GFLOP/s, GB/s printed: {l}")
check(re.search(r"^bench: \d+ calls, (\d+) checked, 0 not checked, 0 mismatched", p.stdout, re.M) is not None,
      "summary: all checked, none mismatched")

# one kernel by name
if rows:
    name = next(l.split()[0] for l in rows if "matmul" in l)
    p = run([tiny, "--bench", name, "--reps", "1"])
    one = [l for l in p.stdout.splitlines() if l.startswith(name + " ")]
    check(p.returncode == 0 and len(one) == 1 and one[0].split()[7] == "ok", f"--bench {name}: {p.stdout} {p.stderr}")
    check(re.search(r"^bench: 1 calls, 1 checked", p.stdout, re.M) is not None, "one call benched")

# DPOC_THREADS sets the default thread count; --threads overrides it
if rows:
    p = run([tiny, "--bench", name, "--reps", "1"], {"DPOC_THREADS": "1"})
    check(p.returncode == 0 and re.search(r"functions, 1 threads\n", p.stdout) is not None, "DPOC_THREADS=1 gives 1 thread")
    p = run([tiny, "--bench", name, "--reps", "1", "--threads", "2"], {"DPOC_THREADS": "1", "DPOC_PIN": "0"})
    check(p.returncode == 0 and re.search(r"functions, 2 threads\n", p.stdout) is not None, "--threads over DPOC_THREADS, DPOC_PIN=0: not pinned")

p = run([tiny, "--bench", "no_such_kernel"])
check(p.returncode == 1 and "no kernel named 'no_such_kernel'" in p.stderr, f"unknown kernel refused: {p.stderr}")
p = run([tiny, "--bench", "--reps", "zero"])
check(p.returncode == 2 and "--reps: expected a number" in p.stderr, f"bad --reps refused: {p.stderr}")
p = run([tiny, "--bench", "--frobnicate"])
check(p.returncode == 2 and "unknown option '--frobnicate'" in p.stderr, f"unknown option refused: {p.stderr}")
p = run([os.path.join(A.work, "missing.so"), "--bench"])
check(p.returncode == 1 and "missing.so" in p.stderr, f"missing step refused: {p.stderr}")

# DPOC_DEBUG=2: the per-kernel table after training
rec = os.path.join(A.work, "train.rec")
subprocess.run([A.mkrec, rec, "--pairs", "8", "--seed", "3", "--vocab", "64"], check=True)
online = os.path.join(A.work, "dr_online.so")
p = run([online, "--data", rec, "--steps", "2", "--threads", "2", "--no-progress"], {"DPOC_DEBUG": "2"})
check(p.returncode == 0, f"DPOC_DEBUG=2 training exit {p.returncode}: {p.stderr[-2000:]}")
m = re.search(r"^per-kernel \(train_step, (\d+) calls, each alone, best of 3\): sum ([\d.]+) ms", p.stderr, re.M)
check(m is not None and int(m.group(1)) > 0, "the per-kernel table is printed")
trows = [l for l in p.stderr.splitlines() if re.match(r"^\s+train_step_k\d+_\S+\s+\S+\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", l)]
check(len(trows) >= 10, f"kernel rows with ms, %, GFLOP/s, GB/s: {len(trows)}")
check(re.search(r"^\s+by op: .*matmul \d+ calls", p.stderr, re.M) is not None, "a total per op")
p = run([online, "--data", rec, "--steps", "1", "--no-progress"])
check(p.returncode == 0 and "per-kernel" not in p.stderr, "no table without DPOC_DEBUG")

check.done()
