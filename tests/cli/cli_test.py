#!/usr/bin/env python3
"""cli_test.py — the options of `dpoc compile`, `dpoc ir` and `dpoc opt`.

One compile of models/tiny.yaml with --dump-dir, --time-passes and
--emit-llvm checks the dumps (one file per pass per graph, numbered in
order, each parsing back through `dpoc opt`), the pass timings, the LLVM IR
file and the memory plan (parameter count worked out by hand for tiny.yaml).
`dpoc ir` checks --print-after and --disable-pass; then usage errors: each
must exit with status 2 and a message naming the problem, writing nothing.
"""
import os, pathlib, re, shutil, subprocess, sys

dpoc, root, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
tiny = str(root / "models" / "tiny.yaml")
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
results = []


def check(name, cond, detail=""):
    results.append(cond)
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def run(*args, stdin=None):
    return subprocess.run([dpoc, *args], capture_output=True, text=True, input=stdin)


# tiny.yaml: vocab 256, hidden 64, 2 layers, 4 heads x 16, 2 kv heads, bias on q/k/v,
# mlp 128, tied head: embed 256*64 + per layer (2 norms 64+64, q 64*64+64, k 32*64+32,
# v 32*64+32, o 64*64, gate/up/down 3*128*64) + final norm 64
per_layer = 128 + (64 * 64 + 64) + 2 * (32 * 64 + 32) + 64 * 64 + 3 * 128 * 64
want_params = 256 * 64 + 2 * per_layer + 64

dump, ll, so = work / "dump", work / "tiny.ll", work / "tiny.so"
p = run("compile", tiny, "-o", str(so), "--dump-dir", str(dump), "--time-passes", "--emit-llvm", str(ll))
check("compile exits 0", p.returncode == 0, p.stderr)
m = re.search(r"memory plan \((\d+) trainable parameters\)", p.stdout)
check("memory plan names the parameter count", bool(m) and int(m.group(1)) == want_params,
      f"want {want_params}, got {m.group(1) if m else p.stdout!r}")
for what in ["parameters", "gradients", "optimizer state", "peak activations"]:
    check(f"memory plan lists {what}", re.search(rf"^\s+{what}\s+\d+ bytes", p.stdout, re.M) is not None, p.stdout)
m = re.search(r"^\s+parameters\s+(\d+) bytes", p.stdout, re.M)
check("parameter bytes >= 4 x count", bool(m) and int(m.group(1)) >= 4 * want_params, p.stdout)
check("step.so written", so.exists() and so.stat().st_size > 0)
check("--time-passes prints each pass", all(f"time-passes: {n}" in p.stderr for n in ["simplify", "autodiff"]), p.stderr)
check("--emit-llvm writes LLVM IR", ll.exists() and "define" in ll.read_text() and "dpoc_manifest" in ll.read_text())
dumps = sorted(d for d in os.listdir(dump) if ".train_step." in d or ".logps." in d) if dump.exists() else []
want = ["00.train_step.after_simplify.ir", "01.train_step.after_autodiff.ir", "02.train_step.after_simplify.ir",
        "03.train_step.after_fuse.ir", "04.logps.after_simplify.ir", "05.logps.after_fuse.ir"]
check("--dump-dir writes NN.<graph>.after_<pass>.ir in order", dumps == want, f"got {dumps}")
for d in dumps:
    back = run("opt", str(dump / d))
    check(f"dump {d} parses back identically", back.returncode == 0 and back.stdout == (dump / d).read_text(),
          back.stderr)
grads = re.findall(r'^output grad "', (dump / want[1]).read_text(), re.M) if dumps == want else []
# tensors: embedding, final norm, and per layer 2 norms + q,k,v (weight+bias) + o + gate/up/down
check("autodiff dump has one grad output per parameter tensor", len(grads) == 2 + 2 * (2 + 6 + 1 + 3),
      f"{len(grads)} grads")

p = run("ir", tiny, "--print-after=autodiff")
check("ir --print-after=autodiff prints to stderr", p.returncode == 0 and "; IR after autodiff (train_step)" in p.stderr,
      p.stderr[:200])
check("ir --print-after prints nothing else on stdout", p.stdout == "", p.stdout[:200])
p = run("ir", tiny)
check("ir prints both graphs", p.returncode == 0 and "; train_step" in p.stdout and "; logps" in p.stdout)
check("ir train graph has the loss and gradients",
      'output loss "loss"' in p.stdout and 'output grad "model.norm.weight"' in p.stdout)
p = run("ir", tiny, "--disable-pass", "autodiff")
check("--disable-pass autodiff leaves no gradients", p.returncode == 0 and 'output grad "' not in p.stdout, p.stderr)

# --plan-only: the same plan as a full compile, nothing written
p0 = run("compile", tiny, "-o", str(work / "plan.so"))
before = sorted(os.listdir(work))
p1 = run("compile", tiny, "--plan-only")
check("--plan-only exits 0 and prints the same memory plan as a compile",
      p0.returncode == 0 and p1.returncode == 0 and "memory plan" in p1.stdout and
      p0.stdout.split("wrote ")[0] == p1.stdout, f"{p1.returncode} {p1.stdout!r} vs {p0.stdout!r}")
check("--plan-only writes no file", "wrote" not in p1.stdout and sorted(os.listdir(work)) == before)

# --attn-keep: the blocks' scores kept for the backward (a bigger plan) or recomputed
pk = run("ir", tiny, "--attn-block=3", "--attn-keep=1")
pr = run("ir", tiny, "--attn-block=3", "--attn-keep=0")
check("--attn-keep=0 recomputes the blocks' scores in the backward, --attn-keep=1 keeps them",
      pk.returncode == 0 and pr.returncode == 0 and " recomputed" in pr.stdout and "matmul" in pr.stdout and
      not any(" recomputed" in l and "matmul" in l for l in pk.stdout.splitlines()),
      pk.stderr + pr.stderr)

# --head-keep: a chunked head's logits kept for the backward (only their exps recomputed) or recomputed there
# (tiny: vocabulary 256 in chunks of 100, 100, 56)
pk = run("ir", tiny, "--vocab-chunk=100", "--head-keep=1")
pr = run("ir", tiny, "--vocab-chunk=100", "--head-keep=0")
check("--head-keep=0 recomputes the head chunks' matmuls in the backward, --head-keep=1 keeps their logits",
      pk.returncode == 0 and pr.returncode == 0 and
      sum(" recomputed" in l and "matmul_masked" in l for l in pr.stdout.splitlines()) == 3 and
      not any(" recomputed" in l and "matmul" in l for l in pk.stdout.splitlines()) and
      any(" recomputed" in l and "= sub " in l for l in pk.stdout.splitlines()),
      pk.stderr + pr.stderr)

# the form of attention: one `attention` op by default (tiny's head_dim 16 is a multiple of 16), matmuls and a
# softmax with --attn-blocked or when blocks are asked for
pd = run("ir", tiny)
pb = run("ir", tiny, "--attn-blocked")
pa = run("ir", tiny, "--attn-block=3")
check("attention is one op by default, matmuls with --attn-blocked or --attn-block",
      pd.returncode == 0 and pb.returncode == 0 and pa.returncode == 0 and "= attention %" in pd.stdout and
      "= attention_grad %" in pd.stdout and "= attention" not in pb.stdout and "= attention" not in pa.stdout,
      pd.stderr + pb.stderr + pa.stderr)

# usage errors: status 2, a message, nothing written
bad = work / "bad.so"
for args, msg in [
    (["compile", tiny], "missing -o"),
    (["compile", "-o", str(bad)], "expected one model YAML file"),
    (["compile", tiny, "-o", str(bad), "--no-such-flag"], "unknown option '--no-such-flag'"),
    (["compile", tiny, "-o", str(bad), "--disable-pass", "nosuch"], "unknown pass 'nosuch'"),
    (["compile", tiny, "-o"], "needs a value"),
    (["compile", tiny, "-o", str(bad), "--plan-only"], "--plan-only writes nothing"),
    (["compile", tiny, "-o", str(bad), "--attn-keep", "2"], "--attn-keep '2': expected 0 (recompute) or 1 (keep)"),
    (["compile", tiny, "-o", str(bad), "--head-keep", "yes"], "--head-keep: expected a whole number"),
    (["compile", tiny, "-o", str(bad), "--head-keep", "2"], "--head-keep '2': expected 0 (recompute) or 1 (keep)"),
    (["compile", tiny, "-o", str(bad), "--attn-fused", "--attn-blocked"], "--attn-blocked: attention as one op"),
    (["compile", tiny, "-o", str(bad), "--attn-fused", "--attn-block", "4"], "--attn-block: attention as one op"),
    (["ir", tiny, "-o", str(bad)], "unknown option '-o'"),
    (["frobnicate"], "unknown command 'frobnicate'"),
]:
    p = run(*args)
    check(f"dpoc {' '.join(args[:1] + args[2:])} -> status 2, '{msg}'",
          p.returncode == 2 and msg in p.stderr and not bad.exists(), f"status {p.returncode}, {p.stderr!r}")
p = run("compile", str(work / "missing.yaml"), "-o", str(bad))
check("missing YAML: non-zero, names the file, no output",
      p.returncode != 0 and "missing.yaml" in p.stderr and not bad.exists(), p.stderr)
p = run("opt", "-", "--passes=nosuch", stdin="")
check("opt with an unknown pass fails", p.returncode != 0 and "nosuch" in p.stderr, p.stderr)
p = run("--help")
check("--help lists the commands", p.returncode == 0 and all(c in p.stdout for c in ["compile", "ir", "opt"]))

print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
