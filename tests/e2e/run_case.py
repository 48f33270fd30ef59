#!/usr/bin/env python3
"""run_case.py — one end-to-end exactness case: compile, run, compare.

usage: run_case.py --dpoc DPOC --step-run STEP_RUN --model MODEL.yaml --work DIR [--seed N]

The ctest driver of tests/e2e. It first makes sure torch can be imported
(if not it prints why and exits 77, which ctest reports as skipped), then
runs `dpoc compile MODEL.yaml -o DIR/step.so --expose-logits`, then
`step_run DIR/step.so DIR/dump --seed N`, then compare.py on the dump. Any
failing stage fails the case with that stage's output.
"""

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean


def run(what, cmd):
    print("+ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        print("FAIL %s exited with status %d" % (what, p.returncode))
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dpoc", required=True)
    ap.add_argument("--step-run", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--compile-arg", action="append", default=[],
                    help="one more `dpoc compile` argument (repeatable), e.g. --vocab-chunk=48")
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP: python3 cannot import torch (Debian: apt-get install python3-torch); "
              "the end-to-end comparison with PyTorch did not run")
        return 77
    if os.path.isdir(a.work):
        shutil.rmtree(a.work)
    os.makedirs(a.work)
    so = os.path.join(a.work, "step.so")
    dump = os.path.join(a.work, "dump")
    run("dpoc compile", [a.dpoc, "compile", a.model, "-o", so, "--expose-logits", "-q"] + a.compile_arg)
    run("step_run", [a.step_run, so, dump, "--seed", a.seed])
    sys.path.insert(0, HERE)
    import compare
    return compare.main(["compare.py", dump])


if __name__ == "__main__":
    sys.exit(main())
