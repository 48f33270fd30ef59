#!/usr/bin/env python3
"""Sharded checkpoints (issue 7 item 4), one case per ctest.

usage: test_ckptmesh.py CASE --mpirun BIN --work DIR --dporun BIN --dpoc BIN --mkrec BIN --yaml MPI_TINY.yaml

steps    (fixture) compiles tests/mpi/models/mpi_tiny.yaml for one process (2 pairs), tp=2 (2 pairs) and dp=2
         (1 pair per rank: the same global micro-batch).
runs     (fixture) the same 5-step tp=2 run twice, saving at step 5: once with the default full layout (the
         gathered checkpoint), once with --ckpt-layout sharded; checks the sharded directory: 2 shard files, the
         manifest, `latest` naming the manifest, and `dpoc ckpt info/verify` on it.
merge    `dpoc ckpt merge` of the sharded checkpoint is byte for byte the gathered full checkpoint file (same
         header, same tensors, same frames: every tensor equal bit for bit).
reshard  full -> `reshard --mesh dp=1,tp=2 --step tp2.so` -> merge is byte-identical to the full file; the
         reshard's shard files are byte-identical to the ones dporun wrote; reshard of the sharded one to tp=1
         gives the full file again.
resume   the sharded tp=2 checkpoint resumes at tp=2 (each rank reads its own shard), at tp=1 and at dp=2 with
         exactly the next-step metrics that the full checkpoint gives on the same mesh.
zero     dp=2 with --zero 1 (moments split over dp): the sharded checkpoint (moments gathered, one shard) merges
         to the full-layout file byte for byte; --keep-last 2 with --save-every 2 leaves the manifests and shard
         directories of steps 4 and 5 only.
damaged  a flipped byte in a shard, a missing shard and a shard whose size disagrees with the manifest are
         refused by verify, merge and dporun --resume, each message naming the shard file.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyutil"))
from dpoc_testlib import MPI_ENV as ENV, MPIRUN_ENV as MPI_ENV, QUIET as _QUIET, check, fail, skip  # noqa: E402

A = None
QUIET = _QUIET + ["--threads", "1"]
BASE = ["--lr", "3e-3", "--schedule", "constant", "--seed", "5"] + QUIET
STEPS = {"p2": (2, None), "tp2": (2, "dp=1,tp=2"), "dp2p1": (1, "dp=2,tp=1")}
CK = "step-00000005"



def work(*p):
    return os.path.join(A.work, *p)


def step(name):
    return work("step_%s.so" % name)


def run(args, expect=0, mpi=0):
    if mpi:
        args = [A.mpirun, "-np", str(mpi), "--oversubscribe"] + args
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=MPI_ENV if mpi else ENV,
                       timeout=200)
    if expect is not None and (p.returncode != 0) != (expect != 0):
        fail("%s: exit %d, want %s\nstdout:\n%s\nstderr:\n%s" % (" ".join(args), p.returncode,
                                                                  "0" if expect == 0 else "non-zero", p.stdout,
                                                                  p.stderr[-4000:]))
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def have():
    for n in STEPS:
        if not os.path.exists(step(n)):
            skip("step %s was not compiled (see the ckptmesh_steps output)" % n)


def case_steps():
    src = open(A.yaml).read()
    procs = []
    for name, (pairs, mesh) in STEPS.items():
        y = work("tiny_p%d.yaml" % pairs)
        with open(y, "w") as f:
            f.write(src.replace("pairs: 2", "pairs: %d" % pairs))
        if os.path.exists(step(name)):
            os.remove(step(name))
        procs.append([A.dpoc, "compile", y, "-o", step(name), "-q"] + (["--mesh", mesh] if mesh else []))
    running = []
    while procs or running:  # two compilers at a time
        while procs and len(running) < 2:
            a = procs.pop(0)
            running.append((a, subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        a, p = running.pop(0)
        _, err = p.communicate(timeout=280)
        check(p.returncode == 0, "%s failed:\n%s" % (" ".join(a), err))
    print("OK steps compiled")


def case_runs():
    have()
    tr = work("train.rec")
    run([A.mkrec, tr, "--pairs", "48", "--seed", "22"])
    for d in ("full", "sharded"):
        shutil.rmtree(work(d), ignore_errors=True)
        extra = ["--ckpt-layout", "sharded"] if d == "sharded" else []
        run([A.dporun, step("tp2"), "--data", tr, "--steps", "5", "--save", work(d)] + BASE + extra, mpi=2)
    names = sorted(os.listdir(work("sharded")))
    check(names == sorted([CK + ".mesh", CK + ".tp0", CK + ".tp1", "latest"]), "sharded dir holds %r" % names)
    check(read(work("sharded", "latest")) == (CK + ".mesh\n").encode(), "latest does not name the manifest")
    for r in (0, 1):
        check(os.path.exists(work("sharded", "%s.tp%d" % (CK, r), CK + ".ckpt")), "no shard file for tp rank %d" % r)
    man = json.load(open(work("sharded", CK + ".mesh")))
    check(man["mesh"] == {"dp": 1, "tp": 2} and man["step"] == 5 and len(man["shards"]) == 2, "manifest %r" % man)
    info = run([A.dpoc, "ckpt", "info", work("sharded")]).stdout
    check("dp=1 tp=2" in info and "@tp" in info, "info:\n" + info)
    # the embedding [256, 64] is vocabulary-parallel: one split dimension, full size shown
    v = run([A.dpoc, "ckpt", "verify", work("sharded")]).stdout
    check("OK" in v, "verify: " + v)
    # a shard file alone: its header says which piece it is
    one = run([A.dpoc, "ckpt", "info", work("sharded", CK + ".tp1")]).stdout
    check("dp=1 tp=2 rank=1" in one, "shard info:\n" + one)
    print("OK 2 shards + manifest; info and verify")


def case_merge():
    have()
    shutil.rmtree(work("merged"), ignore_errors=True)
    run([A.dpoc, "ckpt", "merge", work("sharded"), "-o", work("merged")])
    a, b = read(work("merged", CK + ".ckpt")), read(work("full", CK + ".ckpt"))
    check(a == b, "merged (%d bytes) differs from the gathered full checkpoint (%d bytes)" % (len(a), len(b)))
    print("OK merge == gathered full checkpoint, %d bytes" % len(a))


def case_reshard():
    have()
    for d in ("rs_tp2", "rs_merged", "rs_full"):
        shutil.rmtree(work(d), ignore_errors=True)
    full = work("full", CK + ".ckpt")
    # a full checkpoint has no shard specs: --step is required
    p = run([A.dpoc, "ckpt", "reshard", full, "--mesh", "dp=1,tp=2", "-o", work("rs_tp2")], expect=1)
    check("--step" in p.stderr, "reshard without --step: " + p.stderr)
    run([A.dpoc, "ckpt", "reshard", full, "--mesh", "dp=1,tp=2", "--step", step("tp2"), "-o", work("rs_tp2")])
    for r in (0, 1):
        rel = os.path.join("%s.tp%d" % (CK, r), CK + ".ckpt")
        check(read(work("rs_tp2", rel)) == read(work("sharded", rel)), "resharded shard %d differs from dporun's" % r)
    run([A.dpoc, "ckpt", "merge", work("rs_tp2"), "-o", work("rs_merged")])
    check(read(work("rs_merged", CK + ".ckpt")) == read(full), "full -> tp=2 -> merge is not the full file")
    run([A.dpoc, "ckpt", "reshard", work("sharded"), "--mesh", "dp=2,tp=1", "-o", work("rs_full")])
    check(read(work("rs_full", CK + ".ckpt")) == read(full), "sharded -> tp=1 is not the full file")
    print("OK reshard round trips byte-identical")


def next_metrics(np, so, ck, tag):
    m = work("next_%s.jsonl" % tag)
    if os.path.exists(m):
        os.remove(m)
    args = [A.dporun, so, "--data", work("train.rec"), "--steps", "6", "--resume", ck, "--metrics", m] + BASE
    p = run(args, mpi=np)
    rows = [json.loads(l) for l in open(m) if l.strip()]
    check(len(rows) == 1 and rows[0]["step"] == 6, "%s: metrics %r" % (tag, rows))
    return rows[0], p.stderr


def case_resume():
    have()
    for np, so, what in ((2, step("tp2"), "tp=2"), (0, step("p2"), "tp=1"), (2, step("dp2p1"), "dp=2")):
        want, _ = next_metrics(np, so, work("full"), "full_" + what)
        got, _ = next_metrics(np, so, work("sharded"), "sharded_" + what)
        for k in ("loss", "grad_norm", "logps/chosen", "logps/rejected"):
            check(got[k] == want[k], "%s: %s %r from the sharded checkpoint, %r from the full one" % (what, k, got[k],
                                                                                                   want[k]))
        print("OK resume at %s: step 6 loss %r" % (what, got["loss"]))


def case_zero():
    have()
    for d in ("z_full", "z_sharded", "z_merged"):
        shutil.rmtree(work(d), ignore_errors=True)
    args = [A.dporun, step("dp2p1"), "--data", work("train.rec"), "--steps", "5", "--zero", "1"] + BASE
    run(args + ["--save", work("z_full")], mpi=2)
    run(args + ["--save", work("z_sharded"), "--ckpt-layout", "sharded", "--save-every", "2", "--keep-last", "2"],
        mpi=2)
    names = sorted(os.listdir(work("z_sharded")))
    want = sorted(["latest", "step-00000004.mesh", "step-00000004.tp0", CK + ".mesh", CK + ".tp0"])
    check(names == want, "after --keep-last 2: %r, want %r" % (names, want))
    run([A.dpoc, "ckpt", "merge", work("z_sharded"), "-o", work("z_merged")])
    check(read(work("z_merged", CK + ".ckpt")) == read(work("z_full", CK + ".ckpt")),
          "--zero 1: merged sharded checkpoint differs from the full one")
    print("OK --zero 1 sharded == full; keep-last")


def corrupt_copy(name):
    d = work(name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(work("sharded"), d)
    return d, os.path.join(d, "%s.tp1" % CK, CK + ".ckpt")


def refused(d, shard, what):
    for args in ([A.dpoc, "ckpt", "verify", d], [A.dpoc, "ckpt", "merge", d, "-o", work("dmg_out")]):
        p = run(args, expect=1)
        check(shard in p.stderr, "%s: %s does not name %s:\n%s" % (what, args[2], shard, p.stderr))
    p = run([A.dporun, step("tp2"), "--data", work("train.rec"), "--steps", "6", "--resume", d] + BASE, expect=1,
            mpi=2)
    check(shard in p.stderr, "%s: dporun does not name %s:\n%s" % (what, shard, p.stderr[-3000:]))
    print("OK %s refused" % what)


def case_damaged():
    have()
    d, shard = corrupt_copy("dmg_flip")
    b = bytearray(read(shard))
    b[len(b) // 2] ^= 0x10
    open(shard, "wb").write(bytes(b))
    refused(d, shard, "a flipped byte")
    d, shard = corrupt_copy("dmg_missing")
    os.remove(shard)
    refused(d, shard, "a missing shard")
    d, shard = corrupt_copy("dmg_short")
    open(shard, "ab").write(b"\0")
    refused(d, shard, "a longer shard")


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    for o in ("mpirun", "work", "dporun", "dpoc", "mkrec", "yaml"):
        ap.add_argument("--" + o, required=True)
    A = ap.parse_args()
    globals()["case_" + A.case]()


if __name__ == "__main__":
    main()
