#!/usr/bin/env python3
"""test_step_bench.py — the step benchmarks run and say what they timed.

usage: test_step_bench.py --step-bench BIN --torch-step PY --work DIR   (DIR holds tiny.so)

bench/step_bench and bench/torch_step.py are what bench/run.sh compares; no
timing is asserted here (performance lives in bench/RESULTS.md). What is
checked: step_bench times train_step alone (RESULT optimizer=0, sec_opt=0)
and, with --optimizer, train_step then optimizer_step (optimizer=1, both
parts' medians positive, the "of which" line printed, the whole step's
flops including the optimizer's); the step's parameters are the same fixed
fill either way, so the tokens per step agree. A bad option exits 2 with the
usage line. torch_step.py (when /usr/bin/python3 imports torch) runs the
same step with torch.optim.AdamW (optimizer=1, a positive AdamW time, the
"of which" line) and without (optimizer=0), and says the same tokens per
step.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyutil"))
from dpoc_testlib import Checks  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--step-bench", required=True)
ap.add_argument("--torch-step", required=True)
ap.add_argument("--work", required=True)
A = ap.parse_args()
check = Checks("test_step_bench")
tiny = A.work + "/tiny.so"


def result(out):
    """the key=value pairs of the RESULT line"""
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if len(lines) != 1:
        return {}
    return dict(kv.split("=", 1) for kv in lines[0].split()[1:])


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    print("$", " ".join(cmd), "->", p.returncode)
    print(p.stdout + p.stderr)
    return p


plain = run([A.step_bench, tiny, "--steps", "3", "--warmup", "1"])
r0 = result(plain.stdout)
check(plain.returncode == 0 and r0, "step_bench runs tiny.so")
check(r0.get("optimizer") == "0" and float(r0.get("sec_opt", -1)) == 0.0, "without --optimizer nothing else is timed")
check("of which" not in plain.stdout, "without --optimizer no split is printed")

opt = run([A.step_bench, tiny, "--steps", "3", "--warmup", "1", "--optimizer"])
r1 = result(opt.stdout)
check(opt.returncode == 0 and r1, "step_bench --optimizer runs tiny.so")
check(r1.get("optimizer") == "1", "--optimizer is reported")
check(float(r1.get("sec_train", 0)) > 0 and float(r1.get("sec_opt", 0)) > 0, "both parts are timed")
check(re.search(r"of which train_step [0-9.]+ s, optimizer_step \(AdamW\) [0-9.]+ s", opt.stdout) is not None,
      "the split is printed")
check(r1.get("tokens") == r0.get("tokens"), "same tokens per step")
check(float(r1.get("gflop", 0)) > float(r0.get("gflop", 0)), "the optimizer's flops are counted with the step")

bad = run([A.step_bench, tiny, "--optimiser"])
check(bad.returncode == 2 and "usage: step_bench" in bad.stderr, "an unknown option exits 2 with the usage")

has_torch = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0
if not has_torch:
    print("/usr/bin/python3 cannot import torch: torch_step.py not checked")
else:
    tp = run(["/usr/bin/python3", A.torch_step, tiny, "--steps", "2", "--warmup", "1", "--optimizer"])
    t1 = result(tp.stdout)
    check(tp.returncode == 0 and t1, "torch_step.py --optimizer runs tiny.so")
    check(t1.get("optimizer") == "1" and float(t1.get("sec_opt", 0)) > 0, "torch_step times AdamW's step")
    check("AdamW step" in tp.stdout, "torch_step prints the split")
    check(t1.get("tokens") == r0.get("tokens"), "torch_step counts the same tokens per step")
    tq = run(["/usr/bin/python3", A.torch_step, tiny, "--steps", "2", "--warmup", "0"])
    t0 = result(tq.stdout)
    check(tq.returncode == 0 and t0.get("optimizer") == "0", "torch_step without --optimizer")

check.done()
