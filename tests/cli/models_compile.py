#!/usr/bin/env python3
"""models_compile.py — every model YAML shipped in models/ compiles.

Finds models/*.yaml and models/*/*.yaml (loss files under models/losses/
are not models) and runs `dpoc compile` on each; each must exit 0, print
its memory plan and leave a step.so whose manifest magic is present. The
zoo's full-size models (models/zoo/) are compiled by tests/zoo, which also
checks their parameter counts, so they are not compiled twice here.
"""
import pathlib, subprocess, sys

dpoc, models, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
work.mkdir(parents=True, exist_ok=True)
yamls = sorted(p for p in list(models.glob("*.yaml")) + list(models.glob("*/*.yaml")) if p.parent.name not in ("losses", "zoo"))
failed = passed = 0
for y in yamls:
    out = work / (y.stem + ".so")
    out.unlink(missing_ok=True)
    p = subprocess.run([dpoc, "compile", str(y), "-o", str(out)], capture_output=True, text=True)
    ok = p.returncode == 0 and "memory plan" in p.stdout and out.exists() and b"dpoc_manifest" in out.read_bytes()
    if ok:
        passed += 1
        print(f"ok   {y.relative_to(models)}")
    else:
        failed += 1
        print(f"FAIL {y.relative_to(models)}: exit {p.returncode}\n{p.stderr}")
    out.unlink(missing_ok=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
