#!/usr/bin/env python3
"""ir_cases.py — run IR test files through `dpoc opt`, FileCheck style.

Each .ir file names its passes in a `# RUN: a,b` line; `dpoc opt FILE
--passes=a,b --schedule` must succeed, its output must contain every
`# CHECK:` line in order (and no `# CHECK-NOT:` text), have `# NODES: N`
node lines and `# KERNELS: K` kernels in the printed schedule. The output
must itself parse back and print identically (`dpoc opt -` with no passes).
"""
import pathlib, re, subprocess, sys

dpoc, cases = sys.argv[1], pathlib.Path(sys.argv[2])
failed = passed = 0
for f in sorted(cases.glob("*.ir")):
    text = f.read_text()
    run = re.search(r"^# RUN: *(\S*)", text, re.M)
    args = [dpoc, "opt", str(f), "--schedule"] + ([f"--passes={run.group(1)}"] if run and run.group(1) else [])
    p = subprocess.run(args, capture_output=True, text=True)
    errs = []
    if p.returncode != 0:
        errs.append(f"exit {p.returncode}: {p.stderr.strip()}")
    out = p.stdout
    pos = 0
    for want in re.findall(r"^# CHECK: (.*)$", text, re.M):
        i = out.find(want, pos)
        if i < 0:
            errs.append(f"missing (in order): {want}")
        else:
            pos = i + len(want)
    for bad in re.findall(r"^# CHECK-NOT: (.*)$", text, re.M):
        if bad in out:
            errs.append(f"present but must not be: {bad}")
    ir_lines = [l for l in out.splitlines() if l.startswith("%")]
    m = re.search(r"^# NODES: (\d+)", text, re.M)
    if m and int(m.group(1)) != len(ir_lines):
        errs.append(f"nodes: want {m.group(1)}, got {len(ir_lines)}")
    m = re.search(r"^# KERNELS: (\d+)", text, re.M)
    k = re.search(r"^; schedule: (\d+) kernels", out, re.M)
    if m and (not k or k.group(1) != m.group(1)):
        errs.append(f"kernels: want {m.group(1)}, got {k.group(1) if k else 'no schedule'}")
    ir_only = "\n".join(l for l in out.splitlines() if not l.startswith(";")) + "\n"
    back = subprocess.run([dpoc, "opt", "-"], input=ir_only, capture_output=True, text=True)
    if back.returncode != 0 or back.stdout != ir_only:
        errs.append("printed IR does not parse back identically: " + back.stderr.strip())
    if errs:
        failed += 1
        print(f"FAIL {f.name}:\n  " + "\n  ".join(errs))
    else:
        passed += 1
        print(f"ok   {f.name}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
