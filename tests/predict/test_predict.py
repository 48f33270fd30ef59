#!/usr/bin/env python3
"""test_predict.py — generation with the KV cache against PyTorch, and dporun's prediction mode.

usage: test_predict.py CASE --dpoc DPOC --dporun DPORUN --gen-logits GEN_LOGITS --steps DIR
                       --models DIR --qwen2-tok DIR --bytes-tok DIR [--old-step SO] --work DIR

The steps are compiled once by the predict_compile_* fixtures
(tests/predict/CMakeLists.txt) into --steps: qwen2.so, llama.so, internlm2.so
(models/tiny*.yaml, --max-context 48 --prefill-chunk 8), bytes.so
(models/predict_bytes.yaml, 256 / 16) and zh.so (models/predict_zh.yaml, 96 / 32).

CASE is one of:
  greedy_qwen2, greedy_llama, greedy_internlm2  a tiny random Hugging Face
      model (tests/hf's writer and float64 forward; InternLM2's packed wqkv is
      regrouped by the import, then it is the same graph); `dporun --init-hf --prompt-ids` generates
      32 greedy tokens, which must equal a greedy loop over the float64
      forward token for token. The seed of the weights is one where every
      step's top-2 logit gap in the reference is far above float32 noise
      (asserted: gap >= 1e-3 * max|logit|), so the comparison means
      something.
  chunks_qwen2, chunks_llama  gen_logits feeds 45 prompt ids to the
      prefill/decode entries (compiled with --prefill-chunk 8
      --max-context 48) all at once (5 whole chunks, a partial one, a last
      decode), token by token, and in uneven pieces; every position's logits
      must equal the full causal forward to <= 1e-5 relative.
  sampling    same --seed -> same tokens; --top-k 1 == greedy; temperature
      with top-p and a repetition penalty runs and is deterministic too.
  stop        a model built to always answer <|im_end|> after two tokens
      stops there (chatml, the bytes tokenizer); --max-new-tokens stops;
      a context-filling run stops at --max-context and says so;
      --interactive keeps the conversation and stops at an empty line.
  flags       bad flags and a step without generation entries: exact messages.
  stream_zh   a Chinese prompt through the real Qwen2 tokenizer and a
      151936-token random model: stdout is valid UTF-8 and holds the reply.
Exits 77 (skipped) when torch cannot be imported.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True

try:
    import torch
except ImportError:
    print("SKIP: python3 cannot import torch; the prediction tests did not run")
    sys.exit(77)

sys.path.insert(0, os.path.join(HERE, "..", "hf"))
import test_hf  # noqa: E402  (tiny HF models: writer and float64 forward)

TOL = 1e-5
FAILS = []


def check(ok, msg):
    print(("OK   " if ok else "FAIL ") + msg, flush=True)
    if not ok:
        FAILS.append(msg)


def run(cmd, expect=0, stdin=None):
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if expect is not None and p.returncode != expect:
        print("+ " + " ".join(cmd))
        print(p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))
        raise SystemExit("FAIL: %s exited with %d" % (cmd[0], p.returncode))
    return p


def tiny_model(a, arch, seed, work):
    """a tiny random HF model (weights + config) and its step (context 48, chunks of 8)"""
    cfg = test_hf.MODELS[arch]
    w = test_hf.hf_weights(cfg, seed, torch.float32)
    hf = os.path.join(work, "hf")
    test_hf.write_hf(hf, cfg, w)
    return cfg, dict(w), hf, os.path.join(a.steps, arch + ".so")


def ref_logits(cfg, w, ids):
    return test_hf.hf_forward(cfg, w, torch.tensor([ids]))[0]


def prompt_ids(cfg, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (n,), generator=g).tolist()


def dporun_ids(a, so, hf, ids, *extra, expect=0):
    p = run([a.dporun, so, "--init-hf", hf, "--prompt-ids", ",".join(map(str, ids))] + list(extra), expect=expect)
    return [int(x) for x in p.stdout.split()], p


# ---- cases -----------------------------------------------------------------------------

GREEDY_SEEDS = {"qwen2": 11, "llama": 12, "internlm2": 13}


def case_greedy(a, arch):
    work = os.path.join(a.work, arch)
    cfg, w, hf, so = tiny_model(a, arch, GREEDY_SEEDS[arch], work)
    ids = prompt_ids(cfg, 6, 5)
    seq, want, gaps = list(ids), [], []
    for _ in range(32):
        lg = ref_logits(cfg, w, seq)[-1]
        top = torch.topk(lg, 2).values
        gaps.append(((top[0] - top[1]) / lg.abs().max()).item())
        nxt = int(torch.argmax(lg))
        want.append(nxt)
        seq.append(nxt)
    check(min(gaps) >= 1e-3, "%s: reference top-2 gaps >= 1e-3 of max|logit| at every step (min %.3e)"
          % (arch, min(gaps)))
    got, _ = dporun_ids(a, so, hf, ids, "--max-new-tokens", "32")
    check(got == want, "%s: 32 greedy tokens equal the PyTorch float64 greedy loop%s"
          % (arch, "" if got == want else " (got %s, want %s)" % (got, want)))


def case_chunks(a, arch):
    work = os.path.join(a.work, arch)
    cfg, w, hf, so = tiny_model(a, arch, {"qwen2": 21, "llama": 22}[arch], work)
    ids = prompt_ids(cfg, 45, 9)
    want = ref_logits(cfg, w, ids)
    f = os.path.join(work, "ids.bin")
    open(f, "wb").write(torch.tensor(ids, dtype=torch.int32).numpy().tobytes())
    for label, splits in (("all at once (chunks of 8, a partial chunk, decode)", "45"),
                          ("token by token (decode)", ",".join(["1"] * 45)),
                          ("uneven pieces 3,1,9,2,17,13", "3,1,9,2,17,13")):
        out = os.path.join(work, "logits.bin")
        run([a.gen_logits, so, hf, f, out, splits])
        got = torch.frombuffer(bytearray(open(out, "rb").read()), dtype=torch.float32).reshape(45, -1).double()
        r = test_hf.maxrel(got, want)
        check(r <= TOL, "%s: %s: logits at all 45 positions maxrel=%.3e <= %g" % (arch, label, r, TOL))


def case_sampling(a):
    work = os.path.join(a.work, "qwen2")
    cfg, w, hf, so = tiny_model(a, "qwen2", 31, work)
    ids = prompt_ids(cfg, 5, 3)
    opts = ["--max-new-tokens", "24"]
    s1, _ = dporun_ids(a, so, hf, ids, "--temperature", "1.5", "--seed", "7", *opts)
    s2, _ = dporun_ids(a, so, hf, ids, "--temperature", "1.5", "--seed", "7", *opts)
    check(len(s1) == 24 and s1 == s2, "temperature 1.5: the same seed gives the same 24 tokens")
    s3, _ = dporun_ids(a, so, hf, ids, "--temperature", "1.5", "--seed", "8", *opts)
    check(s3 != s1, "temperature 1.5: another seed gives other tokens (the draws are used)")
    greedy, _ = dporun_ids(a, so, hf, ids, *opts)
    k1, _ = dporun_ids(a, so, hf, ids, "--top-k", "1", "--temperature", "0.7", "--seed", "3", *opts)
    check(k1 == greedy, "--top-k 1 equals greedy")
    # greedy with a repetition penalty against the reference loop with HF's rule
    pen = 1.3
    seq, want = list(ids), []
    for _ in range(24):
        lg = ref_logits(cfg, w, seq)[-1].clone()
        for t in set(seq):
            lg[t] = lg[t] / pen if lg[t] > 0 else lg[t] * pen
        nxt = int(torch.argmax(lg))
        want.append(nxt)
        seq.append(nxt)
    got, _ = dporun_ids(a, so, hf, ids, "--repetition-penalty", str(pen), *opts)
    check(got == want, "greedy with --repetition-penalty 1.3 equals the reference loop with HF's penalty%s"
          % ("" if got == want else " (got %s, want %s)" % (got, want)))
    t1, _ = dporun_ids(a, so, hf, ids, "--top-p", "0.9", "--top-k", "20", "--temperature", "0.8", *opts)
    t2, _ = dporun_ids(a, so, hf, ids, "--top-p", "0.9", "--top-k", "20", "--temperature", "0.8", *opts)
    check(t1 == t2 and len(t1) == 24, "top-p 0.9 + top-k 20 + temperature 0.8: deterministic (default seed)")


def bytes_model(a, work, answer):
    """A llama-shaped model over the bytes tokenizer (299 ids) that always
    answers `answer`: hidden dim 0 is 10 for every token (the embedding's
    column 0) and attention and mlp leave it alone (o_proj and down_proj row
    0 zero), the final norm keeps only dim 0, and the head scores `answer` at
    100 * h0 / rms(h) > 0 and every other token at 0."""
    cfg = dict(test_hf.MODELS["llama"])
    cfg.update(vocab_size=299)
    w = dict(test_hf.hf_weights(cfg, 41, torch.float32))
    emb = w["model.embed_tokens.weight"]
    emb[:, 0] = 10.0
    for l in range(cfg["num_hidden_layers"]):
        w["model.layers.%d.self_attn.o_proj.weight" % l][0, :] = 0
        w["model.layers.%d.mlp.down_proj.weight" % l][0, :] = 0
    w["model.norm.weight"][:] = 0
    w["model.norm.weight"][0] = 1.0
    head = torch.zeros(299, cfg["hidden_size"])
    head[answer, 0] = 100.0
    w["lm_head.weight"] = head
    hf = os.path.join(work, "hf")
    test_hf.write_hf(hf, cfg, sorted(w.items()))
    return hf, os.path.join(a.steps, "bytes.so")


def case_stop(a):
    work = os.path.join(a.work, "stop")
    os.makedirs(work, exist_ok=True)
    IM_END = 298
    hf, so = bytes_model(a, work, IM_END)
    base = [a.dporun, so, "--init-hf", hf, "--tokenizer", a.bytes_tok]
    p = run(base + ["--predict", "hi"])
    check(p.stdout == b"\n", "the model's first token is <|im_end|>: an empty reply, stopped at the end token (%r)"
          % p.stdout)
    # answer 'A' (65) forever: --max-new-tokens stops, and says so
    hfa, soa = bytes_model(a, os.path.join(work, "a"), 65)
    p = run([a.dporun, soa, "--init-hf", hfa, "--tokenizer", a.bytes_tok, "--predict", "hi", "--max-new-tokens", "5"])
    check(p.stdout == b"AAAAA\n", "--max-new-tokens 5: five tokens (%r)" % p.stdout)
    check(b"stopped after --max-new-tokens 5 tokens" in p.stderr, "--max-new-tokens: the reason is printed")
    p = run([a.dporun, soa, "--init-hf", hfa, "--tokenizer", a.bytes_tok, "--template", "none", "--predict", "hi"])
    n = len(p.stdout) - 1
    check(n > 200 and p.stdout == b"A" * n + b"\n", "no end token: stops when the 256-token context is full (%d)" % n)
    check(b"stopped: the context of 256 tokens is full" in p.stderr, "a full context is reported")
    # --prompt-ids without a tokenizer has no end token: the same position limit
    got, _ = dporun_ids(a, soa, hfa, [1, 2, 3])
    check(got == [65] * 253, "--prompt-ids: 3 + 253 tokens fill the context (%d tokens)" % len(got))
    # interactive: two turns then an empty line; the conversation is kept
    p = run([a.dporun, soa, "--init-hf", hfa, "--tokenizer", a.bytes_tok, "--interactive", "--max-new-tokens", "3"],
            stdin=b"hello\nagain\n\nnot read\n")
    check(p.stdout == b"AAA\nAAA\n", "--interactive: one reply per line until an empty line (%r)" % p.stdout)
    long_turn = b"x" * 300 + b"\n"
    p = run([a.dporun, soa, "--init-hf", hfa, "--tokenizer", a.bytes_tok, "--interactive", "--max-new-tokens", "2"],
            stdin=b"hi\n" + long_turn + b"ok\nexit\nnot read\n")
    check(p.stdout == b"AA\nAA\n", "--interactive: a turn beyond the context is dropped, the chat goes on (%r)"
          % p.stdout)
    check(b"more than the step's context of 256 allows" in p.stderr, "the refusal names the context")


def case_flags(a):
    work = os.path.join(a.work, "flags")
    cfg, w, hf, so = tiny_model(a, "qwen2", 51, work)
    cases = [
        (["--predict", "hi", "--top-p", "1.5", "--tokenizer", "x"],
         "dporun: --top-p: expected a number > 0 and <= 1, got '1.5'\n"),
        (["--predict", "hi"], "dporun: --predict and --interactive need --tokenizer DIR\n"),
        (["--predict", "hi", "--interactive", "--tokenizer", "x"],
         "dporun: --predict, --interactive and --prompt-ids are exclusive: give one\n"),
        (["--prompt-ids", "1,2", "--temperature", "0"], "dporun: --temperature: expected a number > 0, got '0'\n"),
        (["--prompt-ids", "1,2", "--top-k", "0"], "dporun: --top-k: expected a whole number >= 1, got '0'\n"),
        (["--prompt-ids", "1,2", "--max-new-tokens", "-3"], "dporun: --max-new-tokens: expected a whole number, got '-3'\n"),
        (["--prompt-ids", "1,2", "--template", "vicuna"],
         "dporun: --template: expected chatml, internlm2, llama3 or none, got 'vicuna'\n"),
        (["--prompt-ids", "1,2", "--data", "x.rec"],
         "dporun: --predict/--interactive do not train: leave out --data, --eval-data, -o, --save, --resume and --metrics\n"),
        (["--prompt-ids", "1,2", "--ckpt", "c", "--init-hf", "h"],
         "dporun: --ckpt, --init and --init-hf are exclusive: give one set of weights\n"),
        (["--data", "x.rec", "--temperature", "0.5"],
         "dporun: --ckpt, --tokenizer, --system, --template, --max-new-tokens and the sampling options go with "
         "--predict TEXT or --interactive\n"),
    ]
    for args, msg in cases:
        p = run([a.dporun, so] + args, expect=2)
        check(p.stderr.decode() == msg, "%s -> %r (got %r)" % (" ".join(args), msg, p.stderr.decode()))
    p = run([a.dporun, so, "--init-hf", hf, "--prompt-ids", "1,x"], expect=1)
    check(p.stderr.decode() == "dporun: --prompt-ids: expected token ids separated by commas, got '1,x'\n",
          "bad --prompt-ids (%r)" % p.stderr.decode())
    p = run([a.dporun, so, "--init-hf", hf, "--prompt-ids", "1,256"], expect=1)
    check(p.stderr.decode() == "dporun: token id 256 is outside the model's vocabulary [0, 256)\n",
          "an id outside the vocabulary (%r)" % p.stderr.decode())
    p = run([a.dporun, so, "--init-hf", hf, "--prompt-ids", ",".join(["1"] * 49)], expect=1)
    check(p.stderr.decode() == "dporun: 49 tokens after 0 do not fit the step's context of 48 tokens\n",
          "a prompt longer than the context (%r)" % p.stderr.decode())
    if a.old_step:
        p = run([a.dporun, a.old_step, "--prompt-ids", "1"], expect=1)
        want = ("dporun: %s has no prefill/decode entries (it was compiled by an older dpoc): "
                "recompile it with this dpoc\n" % a.old_step)
        check(p.stderr.decode() == want, "a step.so without generation entries (%r)" % p.stderr.decode())
    p = run([a.dpoc, "compile", os.path.join(a.models, "tiny.yaml"), "-o", os.path.join(work, "x.so"),
             "--max-context", "0"], expect=2)
    check(p.stderr.decode() == "dpoc compile: --max-context: expected a whole number from 1 to 16777216, got '0'\n",
          "dpoc compile --max-context 0 (%r)" % p.stderr.decode())


def case_stream_zh(a):
    so = os.path.join(a.steps, "zh.so")
    prompt = "帮助我制定一份去上海的旅游攻略"
    p = run([a.dporun, so, "--tokenizer", a.qwen2_tok, "--predict", prompt, "--system", "你是一个助手。",
             "--max-new-tokens", "40", "--temperature", "1.0", "--seed", "3"])
    try:
        text = p.stdout.decode("utf-8")
        ok = True
    except UnicodeDecodeError as e:
        text, ok = "", False
        print(e)
    check(ok, "the streamed reply is valid UTF-8 (%d bytes)" % len(p.stdout))
    check(text.endswith("\n") and len(text) > 1, "a reply was streamed and ended with a newline")
    check(b"random weights from seed 3" in p.stderr, "no weights given: the seeded initialisation is announced")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    for o in ("dpoc", "dporun", "gen-logits", "steps", "models", "qwen2-tok", "bytes-tok", "work"):
        ap.add_argument("--" + o, required=True)
    ap.add_argument("--old-step")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    c = a.case
    if c.startswith("greedy_"):
        case_greedy(a, c[7:])
    elif c.startswith("chunks_"):
        case_chunks(a, c[7:])
    elif c in ("sampling", "stop", "flags", "stream_zh"):
        globals()["case_" + c](a)
    else:
        raise SystemExit("unknown case " + c)
    if FAILS:
        print("%d checks failed" % len(FAILS))
        sys.exit(1)
    print("all OK")


if __name__ == "__main__":
    main()
