#!/usr/bin/env python3
"""test_dporun.py — end-to-end cases for the dporun program (one case per ctest).

usage: test_dporun.py CASE --dporun BIN --mkrec BIN --steps-dir DIR --fakes-dir DIR --work DIR

The step.so files dr_pre.so (precomputed reference), dr_online.so (online
reference, 2 pairs per micro-batch) and dr_online1.so (online, 1 pair) are
compiled once by the dporun_compile_* fixtures; the data are synthetic .rec
files written by mkrec (chosen responses use even ids, rejected ones odd ids:
a rule a model can learn in a few dozen steps). Each case states what it
proves in its docstring. Standard library only.
"""
import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyutil"))
from dpoc_testlib import QUIET, check, fail  # noqa: E402

A = None  # the parsed arguments


def step(name):
    return os.path.join(A.steps_dir, name + ".so")


def work(name):
    return os.path.join(A.work, name)


def run(args, expect=0, timeout=240):
    """Runs dporun with args; returns stderr. Fails unless the exit status is expect."""
    p = subprocess.run([A.dporun] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != expect:
        fail("dporun %s: exit %d, expected %d\nstderr:\n%s" % (" ".join(map(str, args)), p.returncode, expect, p.stderr))
    return p.stderr


def mkrec(name, pairs, seed, *extra):
    path = work(name)
    subprocess.run([A.mkrec, path, "--pairs", str(pairs), "--seed", str(seed)] + list(extra), check=True)
    return path


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f]


def raw_lines(path):
    with open(path) as f:
        return f.read().splitlines()


def train_lines(path):
    return [l for l in lines(path) if "loss" in l]


def eval_lines(path):
    return [l for l in lines(path) if "eval/loss" in l]


def same_file(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def close(x, y, rel):
    return abs(x - y) <= rel * (1 + abs(y))



# ---- cases ----------------------------------------------------------------------------


def case_learn():
    """Training lowers the held-out loss and raises reward accuracy and margin on the learnable rule;
    before the first step the policy equals the online reference, so the loss is ln 2 and rewards are 0."""
    tr, ev = mkrec("train.rec", 200, 1), mkrec("eval.rec", 64, 2)
    m = work("m.jsonl")
    run([step("dr_online"), "--data", tr, "--eval-data", ev, "--eval-first", "--eval-every", "40", "--steps", "80",
         "--lr", "3e-3", "--schedule", "constant", "--threads", "1", "--metrics", m] + QUIET)
    evs = eval_lines(m)
    check([e["step"] for e in evs] == [0, 40, 80], "eval steps %s" % [e["step"] for e in evs])
    e0, e1, e2 = evs
    check(abs(e0["eval/loss"] - math.log(2)) < 1e-6, "initial eval loss %r, want ln 2" % e0["eval/loss"])
    check(e0["eval/rewards/margins"] == 0 and e0["eval/rewards/chosen"] == 0, "initial rewards not 0: %r" % e0)
    check(e2["eval/loss"] < 0.6, "final eval loss %r, want < 0.6" % e2["eval/loss"])
    check(e2["eval/rewards/accuracies"] >= 0.9, "final eval accuracy %r, want >= 0.9" % e2["eval/rewards/accuracies"])
    check(0 < e1["eval/rewards/margins"] < e2["eval/rewards/margins"],
          "margins do not grow: %r, %r" % (e1["eval/rewards/margins"], e2["eval/rewards/margins"]))
    tl = train_lines(m)
    check(len(tl) == 80 and tl[0]["step"] == 1 and tl[-1]["step"] == 80, "80 training lines")
    first = sum(l["loss"] for l in tl[:10]) / 10
    last = sum(l["loss"] for l in tl[-10:]) / 10
    check(last < first - 0.05, "training loss did not fall: %r -> %r" % (first, last))
    check(all("tokens_per_second" not in l and "mfu" not in l for l in tl), "--deterministic-metrics left timing in")


def case_accum():
    """One micro-batch of 2 pairs equals two accumulated micro-batches of 1 pair (the same pairs, same
    order): the same loss and metrics at every step, up to f32 summation order (the kernels sum the
    2-pair batch's gradient rows in one pass; the runtime adds two 1-pair gradients and divides by 2,
    so each value differs by a few f32 roundings: relative 1e-5 over 10 steps is ~100 ulps)."""
    tr = mkrec("train.rec", 100, 3)
    a, b = work("a.jsonl"), work("b.jsonl")
    common = ["--data", tr, "--steps", "10", "--lr", "1e-3", "--threads", "1", "--seed", "5"] + QUIET
    run([step("dr_online")] + common + ["--metrics", a])
    run([step("dr_online1")] + common + ["--grad-accum", "2", "--metrics", b])
    la, lb = lines(a), lines(b)
    check(len(la) == len(lb) == 10, "10 lines each")
    for x, y in zip(la, lb):
        check(x["epoch"] == y["epoch"], "epoch differs at step %d" % x["step"])
        for k in ("loss", "logps/chosen", "logps/rejected", "nll_loss", "grad_norm", "learning_rate",
                  "logits/chosen", "logits/rejected", "rewards/chosen", "rewards/rejected", "rewards/margins"):
            check(close(x[k], y[k], 1e-5), "step %d %s: %r (2x1) vs %r (1x2)" % (x["step"], k, x[k], y[k]))
    # a different split of the same 4 pairs per step (2 x 2 vs 1 x 4) on the same step.so is exact up to
    # the same roundings; and the same split twice is bitwise identical
    c, d = work("c.jsonl"), work("d.jsonl")
    run([step("dr_online1")] + common + ["--grad-accum", "2", "--metrics", c])
    check(raw_lines(b) == raw_lines(c), "two identical runs differ")
    run([step("dr_online")] + common + ["--grad-accum", "2", "--metrics", d])
    run([step("dr_online1")] + common + ["--grad-accum", "4", "--metrics", c])
    for x, y in zip(lines(d), lines(c)):
        check(close(x["loss"], y["loss"], 1e-5), "2x2 vs 1x4 loss at step %d: %r vs %r" % (x["step"], x["loss"], y["loss"]))


def case_threads():
    """1, 2 and 3 threads with every kernel split (--kernel-grain 0) give bitwise-identical metric lines
    and checkpoints, with gradient accumulation and clipping active."""
    tr = mkrec("train.rec", 40, 4)
    outs = []
    for th in (1, 2, 3):
        m, ck = work("m%d.jsonl" % th), work("ck%d" % th)
        run([step("dr_online1"), "--data", tr, "--steps", "4", "--grad-accum", "2", "--lr", "1e-2",
             "--max-grad-norm", "0.05", "--threads", th, "--kernel-grain", "0", "--metrics", m, "--save", ck] + QUIET)
        outs.append((m, os.path.join(ck, "step-00000004.ckpt")))
    norms = [l["grad_norm"] for l in lines(outs[0][0])]
    check(all(n > 0.05 for n in norms), "clipping not exercised (norms %r)" % norms)
    for m, ck in outs[1:]:
        check(raw_lines(m) == raw_lines(outs[0][0]), "%s differs from 1 thread" % m)
        check(same_file(ck, outs[0][1]), "%s differs from 1 thread" % ck)


def case_resume():
    """40 steps straight vs 20 + resume + 20 (cosine with warm-up, gradient accumulation, evaluation
    every 10 steps): identical metric lines, bit for bit, and identical final checkpoints; a metrics
    file with lines past the resumed step is cut back to it and continues into the same file."""
    tr, ev = mkrec("train.rec", 50, 5), mkrec("eval.rec", 8, 6)
    common = ["--data", tr, "--eval-data", ev, "--eval-every", "10", "--lr", "2e-3", "--schedule", "cosine",
              "--warmup-steps", "5", "--grad-accum", "2", "--threads", "2"] + QUIET
    a, ck = work("a.jsonl"), work("ck")
    run([step("dr_online")] + common + ["--steps", "40", "--metrics", a, "--save", ck, "--save-every", "20"])
    check(os.path.exists(os.path.join(ck, "step-00000020.ckpt")), "no step-20 checkpoint")
    # the run crosses an epoch boundary (50 pairs, 4 per step)
    check(lines(a)[-1]["epoch"] > 1, "the run should pass into epoch 2")
    b, ck2 = work("b.jsonl"), work("ck2")
    log = run([step("dr_online"), "--data", tr, "--eval-data", ev, "--eval-every", "10", "--threads", "2",
               "--resume", os.path.join(ck, "step-00000020.ckpt"), "--metrics", b, "--save", ck2] + QUIET)
    check("resuming" in log and "at step 20" in log, "no resume message:\n" + log)
    check(raw_lines(b) == raw_lines(a)[len([l for l in lines(a) if l["step"] <= 20]):],
          "metric lines after the resume differ from the uninterrupted run")
    check(same_file(os.path.join(ck, "step-00000040.ckpt"), os.path.join(ck2, "step-00000040.ckpt")),
          "final checkpoints differ")
    c = work("c.jsonl")
    shutil.copy(a, c)
    run([step("dr_online"), "--data", tr, "--eval-data", ev, "--eval-every", "10", "--threads", "1",
         "--resume", os.path.join(ck, "step-00000020.ckpt"), "--metrics", c] + QUIET)
    check(raw_lines(c) == raw_lines(a), "resuming into the same metrics file does not reproduce it")
    # a checkpoint of another model is refused
    out = run([step("dr_online1"), "--data", tr, "--resume", ck], expect=1)
    check("another model or loss" in out, "resume across models: " + out)


def case_interrupt():
    """SIGINT finishes the current step, saves a checkpoint and exits with 130; the metrics file ends at
    that step; the run resumes from the directory's latest checkpoint."""
    tr = mkrec("train.rec", 30, 7)
    m, ck = work("m.jsonl"), work("ck")
    p = subprocess.Popen([A.dporun, step("dr_online"), "--data", tr, "--steps", "1000000", "--threads", "1",
                          "--metrics", m, "--save", ck] + QUIET, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 60:
        if os.path.exists(m) and len(raw_lines(m)) >= 5:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, errtext = p.communicate(timeout=60)
    check(p.returncode == 130, "exit %d after SIGINT, want 130\n%s" % (p.returncode, errtext))
    last = lines(m)[-1]["step"]
    check("stopped after step %d" % last in errtext, "stop message:\n" + errtext)
    with open(os.path.join(ck, "latest")) as f:
        check(f.read().strip() == "step-%08d.ckpt" % last, "latest does not name step %d" % last)
    run([step("dr_online"), "--data", tr, "--resume", ck, "--steps", str(last + 3), "--metrics", m,
         "--threads", "1"] + QUIET)
    steps = [l["step"] for l in lines(m)]
    check(steps == list(range(1, last + 4)), "metrics after the resume: steps %r" % steps[-5:])


def case_ref_logps():
    """--ref-logps writes the log-probs of the starting weights: training dr_pre (precomputed reference)
    on them follows the same trajectory as dr_online (online reference) from the same seed."""
    tr = mkrec("train.rec", 60, 8)
    ref = work("train_ref.rec")
    log = run([step("dr_pre"), "--data", tr, "--ref-logps", "-o", ref, "--seed", "11", "--threads", "1"])
    check("wrote %s: 60 pairs" % ref in log, log)
    a, b = work("pre.jsonl"), work("online.jsonl")
    common = ["--steps", "15", "--lr", "2e-3", "--seed", "11", "--threads", "1"] + QUIET
    run([step("dr_pre"), "--data", ref] + common + ["--metrics", a])
    run([step("dr_online"), "--data", tr] + common + ["--metrics", b])
    for x, y in zip(lines(a), lines(b)):
        for k, v in x.items():
            check(close(v, y[k], 1e-6), "step %d %s: precomputed %r, online %r" % (x["step"], k, v, y[k]))
    check(lines(a)[0]["rewards/margins"] == 0, "at step 1 the policy is the reference: margins must be 0")
    out = run([step("dr_pre"), "--data", tr, "--ref-logps", "-o", tr], expect=1)
    check("would overwrite the input" in out, out)


def case_ref_hash():
    """Reference log-probs made with other weights are refused, naming both hashes, unless --force-ref;
    data without reference log-probs is refused for a precomputed-reference step."""
    tr = mkrec("train.rec", 20, 9)
    ref = work("ref.rec")
    log = run([step("dr_pre"), "--data", tr, "--ref-logps", "-o", ref, "--seed", "1", "--threads", "1"])
    made = log.split("weights ")[1].split()[0]
    other = run([step("dr_pre"), "--data", tr, "--ref-logps", "-o", work("ref2.rec"), "--seed", "2"])
    mine = other.split("weights ")[1].split()[0]
    check(made != mine, "seeds 1 and 2 give the same weights hash")
    out = run([step("dr_pre"), "--data", ref, "--seed", "2", "--steps", "1"], expect=1)
    check(made in out and mine in out and "--force-ref" in out, "refusal does not name both hashes:\n" + out)
    out = run([step("dr_pre"), "--data", ref, "--seed", "2", "--steps", "1", "--force-ref"] + QUIET)
    check("used anyway" in out, out)
    out = run([step("dr_pre"), "--data", tr, "--steps", "1"], expect=1)
    check("has no reference log-probs" in out and "--ref-logps" in out, out)


def case_init():
    """--init CKPT starts from a checkpoint's parameters: reference log-probs made with --init carry that
    checkpoint's weights hash, and training with --init accepts them while a seeded start refuses them."""
    tr = mkrec("train.rec", 20, 10)
    ck = work("ck")
    run([step("dr_online"), "--data", tr, "--steps", "3", "--lr", "1e-2", "--save", ck] + QUIET)
    ref = work("ref.rec")
    log = run([step("dr_pre"), "--data", tr, "--ref-logps", "-o", ref, "--init", ck])
    seeded = run([step("dr_pre"), "--data", tr, "--ref-logps", "-o", work("ref_seed.rec")])
    check(log.split("weights ")[1].split()[0] != seeded.split("weights ")[1].split()[0],
          "--init did not change the weights")
    run([step("dr_pre"), "--data", ref, "--init", ck, "--steps", "2"] + QUIET)
    run([step("dr_pre"), "--data", ref, "--steps", "2"], expect=1)
    out = run([step("dr_pre"), "--data", ref, "--init", work("nowhere"), "--steps", "2"], expect=1)
    check("nowhere" in out, out)


def case_metrics():
    """Metric definitions on a known batch (file order, B = 2, precomputed reference values from mkrec:
    chosen -(3 + i % 5), rejected -(4 + i % 7)): rewards = beta (0.1) x (policy - reference) means,
    margins = chosen - rejected rewards, the warm-up learning rate, and the JSON keys TRL uses."""
    tr = mkrec("train.rec", 10, 11, "--ref", "1234")
    m = work("m.jsonl")
    run([step("dr_pre"), "--data", tr, "--force-ref", "--no-shuffle", "--steps", "3", "--lr", "0.003",
         "--warmup-steps", "3", "--threads", "1", "--metrics", m] + QUIET)
    ls = lines(m)
    keys = ["step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
            "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "nll_loss", "grad_norm",
            "learning_rate"]
    check(list(ls[0].keys()) == keys, "keys %r" % list(ls[0].keys()))
    for l, pairs in zip(ls, ((0, 1), (2, 3), (4, 5))):
        rc = sum(-(3 + i % 5) for i in pairs) / 2
        rr = sum(-(4 + i % 7) for i in pairs) / 2
        check(close(l["rewards/chosen"], 0.1 * (l["logps/chosen"] - rc), 1e-12), "rewards/chosen at %d" % l["step"])
        check(close(l["rewards/rejected"], 0.1 * (l["logps/rejected"] - rr), 1e-12), "rewards/rejected")
        check(close(l["rewards/margins"], l["rewards/chosen"] - l["rewards/rejected"], 1e-12), "margins")
        check(l["rewards/accuracies"] in (0, 0.5, 1), "accuracy of 2 pairs")
        check(l["nll_loss"] > 0 and l["logps/chosen"] < 0, "nll and logps signs")
        check(abs(l["epoch"] - l["step"] * 2 / 10) < 1e-15, "epoch %r at step %d" % (l["epoch"], l["step"]))
    lrs = [l["learning_rate"] for l in ls]
    check(all(close(x, y, 1e-15) for x, y in zip(lrs, [0.001, 0.002, 0.003])) and lrs[2] == 0.003,
          "warm-up lr %r, want 0.003 x 1/3, 2/3, 3/3" % lrs)


def case_truncation():
    """Pairs that lose label tokens past the step's 16 tokens are counted (the 3 long pairs and the 2
    pairs whose 20-token prompt leaves no label at all); the latter are skipped; both are reported."""
    tr = mkrec("train.rec", 20, 12, "--long", "3", "--no-label", "2")
    log = run([step("dr_online"), "--data", tr, "--steps", "2"] + QUIET)
    check("5 of 20 pairs are longer than the step's 16 tokens" in log, log)
    check("2 pairs have no label token within 16 tokens" in log, log)
    check("18 usable pairs" in log, log)


def case_keep_last():
    """--save-every 5 --keep-last 2 over 20 steps leaves the two newest checkpoints; latest names the last."""
    tr = mkrec("train.rec", 20, 13)
    ck = work("ck")
    run([step("dr_online"), "--data", tr, "--steps", "20", "--save", ck, "--save-every", "5", "--keep-last", "2"]
        + QUIET)
    files = sorted(f for f in os.listdir(ck) if f.endswith(".ckpt"))
    check(files == ["step-00000015.ckpt", "step-00000020.ckpt"], "checkpoints %r" % files)
    with open(os.path.join(ck, "latest")) as f:
        check(f.read().strip() == "step-00000020.ckpt", "latest")


def case_presets():
    """--preset xtuner / mindrlhf set the published optimizer settings; an explicit flag overrides a
    preset whatever the order."""
    tr = mkrec("train.rec", 20, 14)
    log = run([step("dr_online"), "--data", tr, "--preset", "xtuner", "--steps", "2"] + QUIET)
    check("adamw lr 5e-07 betas (0.9, 0.999) eps 1e-08 weight decay 0, cosine schedule" in log, log)
    check("2 steps of 16 x 2 pairs" in log and "clipping on at 1" in log, log)
    log = run([step("dr_online"), "--data", tr, "--lr", "1e-3", "--preset", "mindrlhf", "--steps", "2"] + QUIET)
    check("adamw lr 0.001 betas (0.9, 0.95) eps 1e-08 weight decay 0.01, cosine schedule" in log, log)
    check("2 steps of 1 x 2 pairs" in log, log)


def case_cli():
    """Bad command lines exit with status 2 and a message naming the option and what it expects."""
    tr = mkrec("train.rec", 4, 15)
    s = step("dr_online")
    bad = [
        ([s], "--data REC is required"),
        (["--data", tr], "no step.so given"),
        ([s, "--data", tr, "--lr", "abc"], "--lr: expected a number >= 0, got 'abc'"),
        ([s, "--data", tr, "--lr", "-1"], "--lr: expected a number >= 0, got '-1'"),
        ([s, "--data", tr, "--steps", "0"], "--steps: expected a whole number >= 1, got '0'"),
        ([s, "--data", tr, "--steps", "1.5"], "--steps: expected a whole number, got '1.5'"),
        ([s, "--data", tr, "--schedule", "exp"], "--schedule: expected constant, linear or cosine, got 'exp'"),
        ([s, "--data", tr, "--optimizer", "adam"], "--optimizer: expected adamw or sgd, got 'adam'"),
        ([s, "--data", tr, "--betas", "0.9"], "--betas: expected B1,B2"),
        ([s, "--data", tr, "--betas", "0.9,1.5"], "--betas: expected a number >= 0 and < 1, got '1.5'"),
        ([s, "--data", tr, "--eps", "0"], "--eps: expected a number > 0, got '0'"),
        ([s, "--data", tr, "--preset", "trl"], "--preset: expected xtuner or mindrlhf, got 'trl'"),
        ([s, "--data", tr, "--threads", "0"], "--threads: expected a whole number >= 1, got '0'"),
        ([s, "--data", tr, "--steps", "3", "--epochs", "1"], "--steps and --epochs are exclusive"),
        ([s, "--data", tr, "--save-every", "5"], "--save-every needs --save DIR"),
        ([s, "--data", tr, "--eval-every", "5"], "--eval-every needs --eval-data REC"),
        ([s, "--data", tr, "--resume", "x", "--init", "y"], "--resume and --init are exclusive"),
        ([s, "--data", tr, "--ref-logps"], "--ref-logps needs -o OUT.rec"),
        ([s, "--data", tr, "-o", "x.rec"], "-o is the output of --ref-logps"),
        ([s, "--data", tr, "--frobnicate"], "unknown option '--frobnicate'"),
        ([s, "--data", tr, "--lr"], "--lr needs a value (X)"),
        ([s, s, "--data", tr], "unexpected argument"),
    ]
    for args, msg in bad:
        out = run(args, expect=2)
        check(msg in out, "dporun %s: message %r lacks %r" % (" ".join(args), out, msg))
    p = subprocess.run([A.dporun, "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "--grad-accum" in p.stdout, "--help")


def case_bad_steps():
    """step.so files that do not fit are refused with what differs, never a crash."""
    tr = mkrec("train.rec", 4, 16)
    fake = lambda n: os.path.join(A.fakes_dir, "fake_%s.so" % n)
    cases = [
        (fake("abi"), "was built for step ABI version 99 but this runtime implements version"),
        (fake("cpu"), "this CPU lacks features the step was compiled for: xop fma4"),
        (fake("mesh"), "was compiled for a dp=2 x tp=1 mesh; this dporun runs a single process (dp=1, tp=1)"),
        (fake("empty"), "the step has no input 'tokens'"),
        (work("missing.so"), "cannot load"),
        (tr, "cannot load"),
    ]
    for so, msg in cases:
        out = run([so, "--data", tr, "--steps", "1"], expect=1)
        check(msg in out, "%s: %r lacks %r" % (so, out, msg))


def case_bad_data():
    """Bad data is refused naming the file: not a .rec, an evaluation set smaller than one micro-batch,
    ids outside the model's vocabulary."""
    junk = work("junk.rec")
    with open(junk, "wb") as f:
        f.write(b"not a rec file at all" * 10)
    out = run([step("dr_online"), "--data", junk], expect=1)
    check(junk in out, out)
    tr, tiny = mkrec("train.rec", 4, 17), mkrec("one.rec", 1, 18)
    out = run([step("dr_online"), "--data", tr, "--eval-data", tiny], expect=1)
    check("1 usable pairs, fewer than one micro-batch of 2" in out, out)
    big = mkrec("big.rec", 4, 19, "--vocab", "100")
    out = run([step("dr_online"), "--data", big], expect=1)
    check("vocabulary of 100 but the model's has 64" in out, out)


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    for o in ("--dporun", "--mkrec", "--steps-dir", "--fakes-dir", "--work"):
        ap.add_argument(o, required=True)
    A = ap.parse_args()
    if os.path.isdir(A.work):
        shutil.rmtree(A.work)
    os.makedirs(A.work)
    fn = globals().get("case_" + A.case)
    if not fn:
        fail("no case %s" % A.case)
    fn()
    print("dporun %s: OK" % A.case)


if __name__ == "__main__":
    main()
