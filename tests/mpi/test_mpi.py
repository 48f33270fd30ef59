#!/usr/bin/env python3
"""MPI tests (issue 7), one case per ctest.

usage: test_mpi.py CASE --mpirun BIN --coll BIN --work DIR [--dporun BIN --fakes-dir DIR --mkrec BIN]
                        [--dpoc BIN --models DIR]

coll_DxT   mesh_coll's collectives on a DxT mesh: every rank prints OK (exact sums in rank order, gathers).
hang       a rank that never joins a collective: the watchdog (DPOC_MPI_TIMEOUT=2) aborts every rank, non-zero
           exit within 10 s, the message names the waiting rank and collective.
kill       a rank SIGKILLed while its peers wait in a collective: every rank ends, non-zero, within 10 s.
fail       a rank that fails (mesh_mpi_abort): every rank ends, non-zero, within 10 s, message names rank and cause.
dporun_1x1 dporun under mpirun -np 1 writes the same metrics (bit for bit) and checkpoint as without mpirun.
bad_mesh   world size != dp*tp of the step: a clear message, exit 1 on every path.
steps      (fixture) compiles tests/mpi/models/mpi_tiny.yaml with 1, 2 and 4 pairs, for one process and for the
           meshes dp=2, tp=2, dp=2 x tp=2 (a mesh the compiler refuses is noted, and its cases skip).
eq_dp2, eq_tp2, eq_2x2   10 training steps on the mesh (2 pairs per dp rank) against one process with the same
           global micro-batch: loss, grad_norm and the reward metrics per step, and the final parameters and AdamW
           moments, within 1e-5 relative; eq_dp2 and eq_2x2 also with --zero 1 (parameters bitwise those without).
eq_dp2_chunks  eq_dp2 with the head in vocabulary chunks of 64 (--vocab-chunk 64) on both sides: each chunk's
           weight gradient is computed into its rows of the embedding gradient's arena buffer before the dp
           all-reduce (concat placement, passes/sched_concat.c).
eq_packed  the packed step (train.packed_len 24: each pair one row, its shared prompt once) against the unpacked
           one in one process (every metric, step-1 moments, 1e-5), then its dp=2 x tp=2 mesh against itself.
resume     a checkpoint saved at tp=2 resumes at tp=1 and at dp=2 (1 pair per rank) with the tp=2 run's next-step
           loss; a single-process (full) checkpoint resumes at tp=2; a --zero 1 checkpoint resumes without ZeRO.
ref_logps  --ref-logps on dp=2 (pairs cut over the ranks, gathered) and on tp=2 (weights hash over the full
           tensors) write the reference log-probs and the weights hash of one process (values within 1e-5).
kill_rank  SIGKILL to one dporun rank mid-run: mpirun and every rank end, non-zero, within 10 s.
Cases skip (exit 0 with a message) when a program or step they need was not built.
"""
import json
import re
import signal
import argparse
import os
import shutil
import subprocess
import sys
import time

A = None
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyutil"))
from dpoc_testlib import MPI_ENV as _BASE_ENV, MPIRUN_ENV, QUIET as _QUIET, check, fail, skip  # noqa: E402

# an ASan build: Open MPI's own allocations live until exit; lsan.supp covers the libraries that stay
# loaded, for the processes started without mpirun (those started by mpirun: dpoc_testlib.MPIRUN_ENV)
ENV = dict(_BASE_ENV, LSAN_OPTIONS="suppressions=%s:print_suppressions=0" % os.path.join(HERE, "lsan.supp"))
QUIET = _QUIET + ["--threads", "1"]
MPI_ENV = {"ASAN_OPTIONS": MPIRUN_ENV["ASAN_OPTIONS"]}


def mpirun(np, args, env=None, timeout=100):
    cmd = [A.mpirun, "-np", str(np), "--oversubscribe"] + args
    env = dict(MPI_ENV, **(env or {}))
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(ENV, **(env or {})),
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def run(args, expect=0):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, timeout=240)
    if expect is not None and p.returncode != expect:
        fail("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s" % (" ".join(args), p.returncode, expect, p.stdout,
                                                                  p.stderr))
    return p


def work(name):
    return os.path.join(A.work, name)


def coll(dp, tp):
    rc, out, err, _ = mpirun(dp * tp, [A.coll, "check", str(dp), str(tp)])
    check(rc == 0, "mesh_coll %dx%d: exit %d\n%s%s" % (dp, tp, rc, out, err))
    oks = sorted(l.split()[2] for l in out.splitlines() if l.startswith("OK rank"))
    check(oks == sorted(str(r) for r in range(dp * tp)), "OK lines %r\n%s" % (oks, err))


def fault(mode, want):
    rc, out, err, dt = mpirun(2, [A.coll, mode, "2", "1"], env={"DPOC_MPI_TIMEOUT": "2"}, timeout=60)
    print("%s: exit %d after %.1f s" % (mode, rc, dt))
    check(rc != 0, "%s: mpirun exited 0\n%s" % (mode, err))
    check(dt < 10, "%s: took %.1f s, want < 10" % (mode, dt))
    if want:
        check(want in err, "%s: message %r not in stderr:\n%s" % (mode, want, err))


def need_dporun():
    if not A.dporun or not A.dpoc:
        skip("dporun or dpoc not built")


def mkrec(name, pairs, seed, *extra):
    path = work(name)
    run([A.mkrec, path, "--pairs", str(pairs), "--seed", str(seed)] + list(extra))
    return path


def case_dporun_1x1():
    (so,) = have("p2")
    tr = mkrec("train.rec", 24, 3)
    base = ["--data", tr, "--steps", "5", "--lr", "1e-3"] + QUIET
    for d in ("plain", "mpi"):
        shutil.rmtree(work(d), ignore_errors=True)
    run([A.dporun, so, "--metrics", work("plain.jsonl"), "--save", work("plain")] + base)
    rc, out, err, _ = mpirun(1, [A.dporun, so, "--metrics", work("mpi.jsonl"), "--save", work("mpi")] + base)
    check(rc == 0, "dporun under mpirun -np 1: exit %d\n%s" % (rc, err))
    a, b = open(work("plain.jsonl")).read(), open(work("mpi.jsonl")).read()
    check(a == b and len(a.splitlines()) == 5, "metrics differ:\n%s\n%s" % (a, b))
    ca = open(os.path.join(work("plain"), "step-00000005.ckpt"), "rb").read()
    cb = open(os.path.join(work("mpi"), "step-00000005.ckpt"), "rb").read()
    check(ca == cb, "the checkpoints differ")
    print("OK metrics and checkpoint identical (%d lines)" % len(a.splitlines()))


# ---- steps of every mesh, compiled once (fixture) --------------------------------------

STEPS = {  # name: (pairs per dp rank, mesh, more compile options)
    "p2": (2, None, []), "p4": (4, None, []),
    "dp2": (2, "dp=2,tp=1", []), "tp2": (2, "dp=1,tp=2", []), "dp2tp2": (2, "dp=2,tp=2", []),
    "dp2p1": (1, "dp=2,tp=1", []),
    "p4c": (4, None, ["--vocab-chunk", "64"]), "dp2c": (2, "dp=2,tp=1", ["--vocab-chunk", "64"]),
    # packed (a name ending in "pk": train.packed_len 24, each pair in one row, its prompt once)
    "p4pk": (4, None, []), "dp2tp2pk": (2, "dp=2,tp=2", []),
}


def step_path(name):
    return work("step_%s.so" % name)


def case_steps():
    need_dporun()
    src = open(os.path.join(HERE, "models", "mpi_tiny.yaml")).read()
    notes = {}
    procs = []
    for name, (pairs, mesh, more) in STEPS.items():
        pk = name.endswith("pk")
        y = work("mpi_tiny_p%d%s.yaml" % (pairs, "pk" if pk else ""))
        with open(y, "w") as f:
            text = src.replace("pairs: 2", "pairs: %d" % pairs)
            f.write(text.replace("seq_len: 16", "seq_len: 16\n  packed_len: 24") if pk else text)
        out = step_path(name)
        if os.path.exists(out):
            os.remove(out)
        # no case here generates text: the steps leave out the prefill/decode entries (faster compile)
        args = [A.dpoc, "compile", y, "-o", out, "-q", "--no-generate"] + (["--mesh", mesh] if mesh else []) + more
        args += os.environ.get("DPOC_TEST_COMPILE_ARGS", "").split()  # e.g. "--attn-block=3" for a manual run
        procs.append((name, mesh, args))
    running, done = [], []
    while procs or running:  # two compilers at a time (the CI has 2 cores)
        while procs and len(running) < 2:
            name, mesh, args = procs.pop(0)
            running.append((name, mesh, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                         text=True)))
        name, mesh, pr = running.pop(0)
        out, err = pr.communicate(timeout=300)
        done.append((name, mesh, pr.returncode, err))
    for name, mesh, rc, err in done:
        p = argparse.Namespace(returncode=rc, stderr=err)
        if p.returncode != 0:
            check(mesh is not None, "compiling %s failed:\n%s" % (name, p.stderr))
            notes[name] = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "exit %d" % p.returncode
            print("note: %s (--mesh %s) does not compile: %s" % (name, mesh, notes[name]))
    with open(work("steps.json"), "w") as f:
        json.dump(notes, f)
    print("OK steps compiled")


def have(*names):
    need_dporun()
    for n in names:
        if not os.path.exists(step_path(n)):
            skip("step %s was not compiled (see the mpi_steps output)" % n)
    return [step_path(n) for n in names]


TRAIN = ["--steps", "10", "--lr", "3e-3", "--schedule", "constant", "--seed", "5"] + QUIET


def metrics(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def mesh_run(np, so, args, what):
    rc, out, err, _ = mpirun(np, [A.dporun, so] + args, timeout=200)
    if rc != 0 and "was compiled for a dp=1 x tp=1 mesh" in err:
        skip("%s: the compiler's --mesh step still declares a 1 x 1 mesh" % what)
    check(rc == 0, "%s: exit %d\n%s" % (what, rc, err[-3000:]))
    return err


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


KEYS = ["loss", "grad_norm", "logps/chosen", "logps/rejected", "nll_loss"]
# logits/* are means of logits_sum, a sum over the whole vocabulary of logits of both signs whose mean is near 0
# (cancellation), so their rounding error scales with the logits' size, not the mean's. At step 1, where both runs
# hold the same parameters, they must agree to 1e-6 relative (seen: 1e-8 to 1e-7) — which shows that the tp ranks'
# vocabulary halves are summed; later steps, whose parameters AdamW's normalised updates have moved apart by
# rounding, to 1e-4 of the largest |mean| of the run (a lower bound of the logits' size: a step whose mean comes
# close to 0, like eq_2x2's step 6 at -0.011 in a run reaching 0.072, differs by 4e-5 to 1e-4 of itself)
LOGITS = ["logits/chosen", "logits/rejected"]
# rewards are beta * (policy - reference) log-probs: a difference of two nearly equal sums, so their error is
# relative to the log-probs' scale (beta * |logps|), not to their own size
REWARDS = ["rewards/chosen", "rewards/rejected", "rewards/margins"]
BETA = 0.1


def same_metrics(ma, mb, rel, what, logits_steps=None):
    check(len(ma) == len(mb) and len(ma) > 0, "%s: %d vs %d metric lines" % (what, len(ma), len(mb)))
    worst = 0.0
    logits_scale = {k: max(abs(l[k]) for l in mb) for k in LOGITS}
    for la, lb in zip(ma, mb):
        check(la["step"] == lb["step"], "%s: steps %r vs %r" % (what, la["step"], lb["step"]))
        for k in KEYS:
            a, b = la[k], lb[k]
            scale = max(abs(a), abs(b))
            d = abs(a - b) / scale if scale > 0 else 0.0
            worst = max(worst, d)
            check(d <= rel, "%s: step %d %s: %r vs %r (relative %.3g > %g)" % (what, la["step"], k, a, b, d, rel))
        for k in LOGITS if logits_steps is None or la["step"] <= logits_steps else []:
            a, b = la[k], lb[k]
            if la["step"] == 1:
                check(close(a, b, 1e-6), "%s: step 1 %s: %r vs %r" % (what, k, a, b))
            else:
                check(abs(a - b) <= 1e-4 * max(abs(a), abs(b), logits_scale[k]),
                      "%s: step %d %s: %r vs %r (|a-b| %.3g > 1e-4 x %.3g)"
                      % (what, la["step"], k, a, b, abs(a - b), max(abs(a), abs(b), logits_scale[k])))
        scale = BETA * max(abs(lb["logps/chosen"]), abs(lb["logps/rejected"]))
        for k in REWARDS:
            a, b = la[k], lb[k]
            check(abs(a - b) <= rel * scale, "%s: step %d %s: %r vs %r (|a-b| %.3g > %g x beta x |logps| %.3g)"
                  % (what, la["step"], k, a, b, abs(a - b), rel, scale))
        check(la["rewards/accuracies"] == lb["rewards/accuracies"], "%s: step %d accuracies %r vs %r"
              % (what, la["step"], la["rewards/accuracies"], lb["rewards/accuracies"]))
    print("%s: %d steps, worst relative difference of the metrics %.3g" % (what, len(ma), worst))


def ckpt_same(a, b, rel, what, prefix=""):
    p = subprocess.run([A.cmp, a, b, str(rel), prefix], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(p.returncode == 0, "%s: %s%s" % (what, p.stdout, p.stderr))
    print("%s: %s" % (what, p.stdout.strip()))


def last_ckpt(d):
    return os.path.join(d, open(os.path.join(d, "latest")).read().strip())


def equivalence(mesh_name, single_name, np, zero, logits_steps=None):
    so, single = have(mesh_name, single_name)
    tr = mkrec("eq.rec", 64, 21, "--vocab", "256")  # ids in the whole vocabulary: both halves of a tp split
    for d in ("eq_single", "eq_mesh", "eq_zero"):
        shutil.rmtree(work(d), ignore_errors=True)
    save = ["--save-every", "1"]
    run([A.dporun, single, "--data", tr, "--metrics", work("eq_single.jsonl"), "--save", work("eq_single")] + save
        + TRAIN)
    mesh_run(np, so, ["--data", tr, "--metrics", work("eq_mesh.jsonl"), "--save", work("eq_mesh")] + save + TRAIN,
             mesh_name)
    # loss, grad_norm, log-probs and rewards of every step
    same_metrics(metrics(work("eq_mesh.jsonl")), metrics(work("eq_single.jsonl")), 1e-5, mesh_name + " vs 1 process",
                 logits_steps)
    # every parameter's gradient at step 1, in AdamW's first moment (m = 0.1 g after one step), full tensors
    # gathered from the shards; later gradients depend on parameters that AdamW's normalised update moves by up to
    # lr wherever a gradient is tiny, so they are compared through the loss and norm above
    step1 = "step-00000001.ckpt"
    ckpt_same(os.path.join(work("eq_mesh"), step1), os.path.join(work("eq_single"), step1), 1e-5,
              mesh_name + " step-1 gradients (adam_m)", "adam_m:")
    if zero:
        err = mesh_run(np, so, ["--data", tr, "--metrics", work("eq_zero.jsonl"), "--save", work("eq_zero"),
                                "--zero", "1"] + save + TRAIN, mesh_name + " --zero 1")
        check("ZeRO-1: each dp rank keeps AdamW moments of" in err, "no ZeRO-1 note:\n" + err)
        check(open(work("eq_zero.jsonl")).read() == open(work("eq_mesh.jsonl")).read(),
              "--zero 1 changed the metrics")
        ckpt_same(last_ckpt(work("eq_zero")), last_ckpt(work("eq_mesh")), 0, mesh_name + " --zero 1 vs without")
    print("OK")


def case_eq_dp2():
    equivalence("dp2", "p4", 2, True)


def case_eq_tp2():
    equivalence("tp2", "p2", 2, False)


def case_eq_dp2_chunks():
    equivalence("dp2c", "p4c", 2, False)


def case_eq_2x2():
    equivalence("dp2tp2", "p4", 4, True)


def case_eq_packed():
    """The packed one-process step trains like the unpacked one (every metric of every step, the step-1
    gradients), and its dp=2 x tp=2 mesh like itself in one process."""
    so, single = have("p4pk", "p4")
    tr = mkrec("eqpk.rec", 64, 23, "--vocab", "256")
    save = ["--save-every", "1"]
    for d in ("eqpk_flat", "eqpk_single"):
        shutil.rmtree(work(d), ignore_errors=True)
    run([A.dporun, single, "--data", tr, "--metrics", work("eqpk_flat.jsonl"), "--save", work("eqpk_flat")] + save
        + TRAIN)
    run([A.dporun, so, "--data", tr, "--metrics", work("eqpk_single.jsonl"), "--save", work("eqpk_single")] + save
        + TRAIN)
    same_metrics(metrics(work("eqpk_single.jsonl")), metrics(work("eqpk_flat.jsonl")), 1e-5, "packed vs unpacked")
    step1 = "step-00000001.ckpt"
    ckpt_same(os.path.join(work("eqpk_single"), step1), os.path.join(work("eqpk_flat"), step1), 1e-5,
              "packed vs unpacked step-1 gradients (adam_m)", "adam_m:")
    # the logits means only at step 1, where both runs hold the same parameters (5e-8 apart there): later
    # they drift apart by AdamW's normalised updates, and a mean near 0 of logits of both signs turns that
    # into relative differences that reach 4e-5 unpacked (eq_2x2's steps at step 6) and 1.1e-4 packed on
    # this data, while loss, log-probs and grad norm stay within 1e-5 at every step
    equivalence("dp2tp2pk", "p4pk", 4, False, logits_steps=1)


def case_resume():
    tp2, p2, dp2p1, dp2, p4 = have("tp2", "p2", "dp2p1", "dp2", "p4")
    tr = mkrec("resume.rec", 64, 22)
    base = ["--data", tr, "--lr", "3e-3", "--schedule", "constant", "--seed", "5"] + QUIET
    for d in ("r_tp2", "r_single", "r_zero"):
        shutil.rmtree(work(d), ignore_errors=True)
    # the uninterrupted tp=2 and single runs, 6 steps, saving every 5
    mesh_run(2, tp2, base + ["--steps", "6", "--save", work("r_tp2"), "--save-every", "5",
                             "--metrics", work("r_tp2.jsonl")], "tp2")
    run([A.dporun, p2] + base + ["--steps", "6", "--save", work("r_single"), "--save-every", "5",
                                 "--metrics", work("r_single.jsonl")])
    ck_tp2 = os.path.join(work("r_tp2"), "step-00000005.ckpt")
    ck_single = os.path.join(work("r_single"), "step-00000005.ckpt")
    want = metrics(work("r_tp2.jsonl"))[5]
    check(want["step"] == 6, "tp2 metrics: step %r" % want["step"])

    def next_loss(np, so, ck, what):
        m = work("r_next.jsonl")
        if os.path.exists(m):
            os.remove(m)
        if np:
            mesh_run(np, so, base + ["--resume", ck, "--metrics", m], what)
        else:
            run([A.dporun, so] + base + ["--resume", ck, "--metrics", m])
        ls = [l for l in metrics(m) if l["step"] == 6]
        check(len(ls) == 1, "%s: no step 6" % what)
        return ls[0]

    for np, so, ck, what, ref in ((0, p2, ck_tp2, "tp=2 checkpoint at tp=1", want),
                                   (2, dp2p1, ck_tp2, "tp=2 checkpoint at dp=2", want),
                                   (2, tp2, ck_single, "full checkpoint at tp=2", metrics(work("r_single.jsonl"))[5])):
        got = next_loss(np, so, ck, what)
        check(close(got["loss"], ref["loss"], 1e-5) and close(got["grad_norm"], ref["grad_norm"], 1e-5),
              "%s: step 6 loss %r grad_norm %r, want %r %r" % (what, got["loss"], got["grad_norm"], ref["loss"],
                                                                ref["grad_norm"]))
        print("%s: step 6 loss %r (want %r)" % (what, got["loss"], ref["loss"]))
    # ZeRO-1: its checkpoint holds the full moments and resumes in one process
    mesh_run(2, dp2, base + ["--steps", "6", "--save", work("r_zero"), "--save-every", "5", "--zero", "1",
                             "--metrics", work("r_zero.jsonl")], "dp2 --zero 1")
    got = next_loss(0, p4, os.path.join(work("r_zero"), "step-00000005.ckpt"), "--zero 1 checkpoint in 1 process")
    ref = metrics(work("r_zero.jsonl"))[5]
    check(close(got["loss"], ref["loss"], 1e-5), "zero resume: %r vs %r" % (got["loss"], ref["loss"]))
    print("OK")


def rec_refs(path):
    p = run([A.dpoc, "data", "show", path, "--json"])
    return [(r["ref_logps"]["chosen"], r["ref_logps"]["rejected"]) for r in map(json.loads, p.stdout.splitlines())]


def rec_hash(path):
    p = run([A.dpoc, "data", "stats", path])
    m = re.search(r"weights hash ([0-9a-f]{16})", p.stdout)
    check(m is not None, "no weights hash in dpoc data stats:\n" + p.stdout)
    return m.group(1)


def case_ref_logps():
    p4, dp2, tp2 = have("p4", "dp2", "tp2")
    tr = mkrec("refl.rec", 27, 24)  # 27 pairs: the last global micro-batch of the dp run is partial
    args = ["--data", tr, "--ref-logps", "--seed", "9", "--threads", "1"]
    run([A.dporun, p4, "-o", work("refl_single.rec")] + args)
    want, want_hash = rec_refs(work("refl_single.rec")), rec_hash(work("refl_single.rec"))
    for so, what in ((dp2, "dp=2"), (tp2, "tp=2")):
        out = work("refl_%s.rec" % what.replace("=", ""))
        mesh_run(2, so, ["-o", out] + args, what + " --ref-logps")
        got = rec_refs(out)
        check(len(got) == len(want) == 27, "%s: %d records, want 27" % (what, len(got)))
        for i, (a, b) in enumerate(zip(got, want)):
            check(close(a[0], b[0], 1e-5) and close(a[1], b[1], 1e-5), "%s: pair %d: %r vs %r" % (what, i, a, b))
        check(rec_hash(out) == want_hash, "%s: weights hash %s, one process %s" % (what, rec_hash(out), want_hash))
        print("%s: 27 pairs' reference log-probs and the weights hash match one process" % what)
    print("OK")


def case_kill_rank():
    (so,) = have("dp2")
    tr = mkrec("kill.rec", 64, 23)
    cmd = [A.mpirun, "-np", "2", "--oversubscribe", A.dporun, so, "--data", tr, "--steps", "100000"] + QUIET
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(ENV, **MPI_ENV))
    victim = None
    t_end = time.monotonic() + 30
    while victim is None and time.monotonic() < t_end:  # a dporun rank of this mpirun, once training runs
        time.sleep(0.5)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                st = open("/proc/%s/stat" % pid).read()
                env = open("/proc/%s/environ" % pid, "rb").read()
            except OSError:
                continue
            ppid = int(st.rsplit(")", 1)[1].split()[1])
            if ppid == p.pid and "dporun" in st and b"OMPI_COMM_WORLD_RANK=1\0" in env:
                victim = int(pid)
        if victim and time.monotonic() < t_end:
            time.sleep(2)  # mid-run
    if victim is None:
        p.kill()
        fail("no dporun rank 1 found under mpirun")
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("mpirun still runs 30 s after rank 1 was killed")
    dt = time.monotonic() - t0
    print("kill_rank: mpirun exit %d %.1f s after SIGKILL to rank 1" % (p.returncode, dt))
    check(p.returncode != 0, "mpirun exited 0")
    check(dt < 10, "took %.1f s, want < 10" % dt)
    print("OK")


def case_bad_mesh():
    (so,) = have("p2")
    tr = mkrec("bad.rec", 8, 4)
    rc, out, err, _ = mpirun(2, [A.dporun, so, "--data", tr, "--steps", "1"] + QUIET)
    want = "was compiled for a dp=1 x tp=1 mesh (1 processes) but mpirun started 2"
    check(rc != 0 and want in err, "1x1 step on 2 ranks: exit %d, stderr:\n%s" % (rc, err))
    fake = os.path.join(A.fakes_dir, "fake_mesh.so")
    rc, out, err, _ = mpirun(3, [A.dporun, fake, "--data", tr, "--steps", "1"] + QUIET)
    want = "was compiled for a dp=2 x tp=1 mesh (2 processes) but mpirun started 3; run it with mpirun -np 2"
    check(rc != 0 and want in err, "dp=2 step on 3 ranks: exit %d, stderr:\n%s" % (rc, err))
    p = run([A.dporun, fake, "--data", tr, "--steps", "1"] + QUIET, expect=1)
    want = "was compiled for a dp=2 x tp=1 mesh; this dporun runs a single process (dp=1, tp=1): start 2 processes " \
        "with mpirun -np 2"
    check(want in p.stderr, "dp=2 step without mpirun: stderr:\n%s" % p.stderr)
    print("OK mesh refusals")


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--coll", required=True)
    ap.add_argument("--cmp")
    ap.add_argument("--work", required=True)
    ap.add_argument("--dporun")
    ap.add_argument("--fakes-dir")
    ap.add_argument("--mkrec")
    ap.add_argument("--dpoc")
    ap.add_argument("--models")
    A = ap.parse_args()
    os.makedirs(A.work, exist_ok=True)
    c = A.case
    if c.startswith("coll_"):
        dp, tp = c[5:].split("x")
        coll(int(dp), int(tp))
        print("OK")
    elif c == "hang":
        fault("hang", "rank 0 of 2: all_reduce_sum over dp has not completed after 2 s")
    elif c == "kill":
        fault("kill", None)
    elif c == "fail":
        fault("fail", "rank 1 of 2: cannot read data.rec: record 7 is corrupt (test)")
    else:
        globals()["case_" + c]()


if __name__ == "__main__":
    main()
