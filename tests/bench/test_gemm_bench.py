#!/usr/bin/env python3
"""test_gemm_bench.py — `gemm_bench --shape OP:MxNxK` (bench/gemm_bench.c).

usage: test_gemm_bench.py --gemm-bench BIN

Runs two named shapes at one thread with a short timing budget and checks
that each gets one row naming its operation and dims, with both libraries'
GFLOP/s positive and the two results agreeing (the row's relative
difference, largest |dpoc - OpenBLAS| over largest |value|, below 1e-5:
K = 1024 f32 products of values in [-1, 1]), then the step total. A
malformed --shape is refused with a message naming the flag and what was
expected, exit status 2. Timings are printed, never asserted.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyutil"))
from dpoc_testlib import Checks  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--gemm-bench", required=True)
A = ap.parse_args()
check = Checks("test_gemm_bench")

base = [A.gemm_bench, "--threads", "1", "--min-time", "0.02", "--rounds", "1"]
p = subprocess.run(base + ["--shape", "ATB:32x64x1024", "--shape", "ABT:70x100x300"],
                   capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
check(p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}")
print(p.stdout)
want = [("ATB", 32, 64, 1024), ("ABT", 70, 100, 300)]
for op, m, n, k in want:
    row = re.search(rf"^shape\s+{op}\s+0\s+{m}\s+{n}\s+{k}\s+1\s+1\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$",
                    p.stdout, re.M)
    check(row is not None, f"a row for {op} {m}x{n}x{k}")
    if row:
        dpoc, blas, ratio, _, diff = (float(x) for x in row.groups())
        check(dpoc > 0 and blas > 0 and ratio > 0, f"{op}: GFLOP/s printed for both")
        check(diff < 1e-5, f"{op}: dpoc and OpenBLAS agree (relative difference {diff})")
check(re.search(r"^RESULT gemm_total threads=1 ", p.stdout, re.M) is not None, "the total line")

for bad in ["ATB:32x64", "XY:1x2x3", "AB:0x2x3", "AB:1x2x3x"]:
    p = subprocess.run(base + ["--shape", bad], capture_output=True, text=True)
    check(p.returncode == 2, f"--shape {bad}: exit {p.returncode}, expected 2")
    check(f"--shape {bad}: expected OP:MxNxK" in p.stderr, f"--shape {bad}: message names it: {p.stderr!r}")

check.done()
