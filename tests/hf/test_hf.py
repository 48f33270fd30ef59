#!/usr/bin/env python3
"""test_hf.py — Hugging Face import/export against PyTorch.

usage: test_hf.py CASE --dpoc DPOC --dporun DPORUN --hf-logits HF_LOGITS
                  --mkrec MKREC --models DIR --work DIR

CASE is one of:
  logits_qwen2, logits_llama, logits_internlm2  random tiny HF models written
      here as safetensors (this file writes the bytes: 8-byte length, JSON
      header, data) + config.json; `dpoc ckpt import`; hf_logits runs the
      compiled `logps` entry (--expose-logits) with those weights, and its
      logits must match an independent float64 forward of the *HF* weights
      to <= 1e-5 relative (max|dpoc - ref| / max|ref|, as tests/e2e/compare.py
      measures). InternLM2's forward splits the packed wqkv the way
      modeling_internlm2.py does (view [.., kv_heads, g + 2, head_dim]), so a
      wrong regrouping in dpoc shows. Then export-hf -> the tensor bytes
      equal the originals (f32 here; the llama case also bf16 and f16 inputs,
      exported in the same dtype; the qwen2 case also with shards + index
      json, re-imported).
  trained   dporun trains tiny_simpo a few SGD steps from an imported model;
      its checkpoint is exported and tests/ref/dpo_ref.py's forward of the
      exported safetensors (built from the exported config.json) gives the
      same logits as the step.
  bad       broken safetensors (truncated, lying offsets, overlap, wrong
      dtype, missing tensor, shape mismatch, bad wqkv shape, extra tensor,
      bad index json) are each refused by `dpoc ckpt import` with exit
      status 1 and a message naming the tensor; never a signal.
Exits 77 (skipped) when torch cannot be imported.
"""

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True

try:
    import torch
except ImportError:
    print("SKIP: python3 cannot import torch; the Hugging Face tests did not run")
    sys.exit(77)

sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import dpo_ref  # noqa: E402

DT = torch.float64
TOL = 1e-5

# The tiny models of models/*.yaml, as Hugging Face configs. pairs/seq_len
# give the [2B, T] token input of the compiled step.
MODELS = {
    "qwen2": dict(yaml="tiny.yaml", model_type="qwen2", vocab_size=256, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
                  rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True, bias=True, pairs=2, seq_len=16),
    "llama": dict(yaml="tiny_llama.yaml", model_type="llama", vocab_size=256, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=16, intermediate_size=160,
                  rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False, bias=False, pairs=2,
                  seq_len=12),
    "internlm2": dict(yaml="tiny_internlm2.yaml", model_type="internlm2", vocab_size=200, hidden_size=64,
                      num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2, head_dim=8,
                      intermediate_size=96, rms_norm_eps=1e-5, rope_theta=1e6, tie_word_embeddings=False,
                      bias=False, pairs=3, seq_len=10),
}

ST_DTYPES = {torch.float32: ("F32", 4), torch.bfloat16: ("BF16", 2), torch.float16: ("F16", 2)}

FAILS = []


def check(ok, msg):
    print(("OK   " if ok else "FAIL ") + msg, flush=True)
    if not ok:
        FAILS.append(msg)


def run(cmd, expect=0):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if expect is not None and p.returncode != expect:
        print("+ " + " ".join(cmd))
        print(p.stdout + p.stderr)
        raise SystemExit("FAIL: %s exited with %d" % (cmd[0], p.returncode))
    return p


# ---- safetensors, written and read by hand ---------------------------------------

def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.numpy().tobytes()
    return t.view(torch.int16).numpy().tobytes()


def st_bytes(tensors, header_override=None):
    """tensors: list of (name, tensor). HF writes the header keys sorted."""
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, t in sorted(tensors, key=lambda x: x[0]):
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    if header_override:
        header_override(header)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_read(path):
    """name -> (dtype, shape, bytes); follows an index json for a directory."""
    if os.path.isdir(path):
        idx = os.path.join(path, "model.safetensors.index.json")
        files = (sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx)
                 else ["model.safetensors"])
        out = {}
        for f in files:
            out.update(st_read(os.path.join(path, f)))
        return out
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], raw[8 + n + b:8 + n + e])
    return out


def st_tensor(entry):
    dt, shape, b = entry
    if dt == "F32":
        t = torch.frombuffer(bytearray(b), dtype=torch.float32)
    else:
        t = torch.frombuffer(bytearray(b), dtype=torch.int16).view(
            torch.bfloat16 if dt == "BF16" else torch.float16)
    return t.reshape(shape).to(DT)


# ---- tiny random HF models -------------------------------------------------------

def hf_weights(cfg, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, kvh, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def mat(o, i):
        return (torch.randn(o, i, generator=g, dtype=torch.float64) / math.sqrt(i)).to(dtype)

    def norm(n):
        return (1 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype)

    def bias(n):
        return (0.1 * torch.randn(n, generator=g, dtype=torch.float64)).to(dtype)

    w = []
    il = cfg["model_type"] == "internlm2"
    w.append(("model.tok_embeddings.weight" if il else "model.embed_tokens.weight", mat(V, H) * 4))
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        if il:
            w.append((p + "attention_norm.weight", norm(H)))
            # [kv_heads, g + 2, head_dim] rows: q heads of the group, then k, then v
            w.append((p + "attention.wqkv.weight", mat((nh + 2 * kvh) * d, H)))
            w.append((p + "attention.wo.weight", mat(H, nh * d)))
            w.append((p + "ffn_norm.weight", norm(H)))
            w.append((p + "feed_forward.w1.weight", mat(I, H)))
            w.append((p + "feed_forward.w3.weight", mat(I, H)))
            w.append((p + "feed_forward.w2.weight", mat(H, I)))
            continue
        w.append((p + "input_layernorm.weight", norm(H)))
        for n_, o in (("q", nh * d), ("k", kvh * d), ("v", kvh * d)):
            w.append((p + "self_attn.%s_proj.weight" % n_, mat(o, H)))
            if cfg["bias"]:
                w.append((p + "self_attn.%s_proj.bias" % n_, bias(o)))
        w.append((p + "self_attn.o_proj.weight", mat(H, nh * d)))
        w.append((p + "post_attention_layernorm.weight", norm(H)))
        w.append((p + "mlp.gate_proj.weight", mat(I, H)))
        w.append((p + "mlp.up_proj.weight", mat(I, H)))
        w.append((p + "mlp.down_proj.weight", mat(H, I)))
    w.append(("model.norm.weight", norm(H)))
    if not cfg["tie_word_embeddings"]:
        w.append(("output.weight" if il else "lm_head.weight", mat(V, H)))
    return w


def hf_config(cfg):
    keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "head_dim", "intermediate_size", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "model_type"]
    c = {k: cfg[k] for k in keys}
    c["architectures"] = [{"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM",
                           "internlm2": "InternLM2ForCausalLM"}[cfg["model_type"]]]
    return c


def write_hf(dirname, cfg, weights, split=None):
    os.makedirs(dirname, exist_ok=True)
    json.dump(hf_config(cfg), open(os.path.join(dirname, "config.json"), "w"))
    if not split:
        open(os.path.join(dirname, "model.safetensors"), "wb").write(st_bytes(weights))
        return
    parts = [weights[:split], weights[split:]]
    wm = {}
    for i, part in enumerate(parts):
        f = "model-%05d-of-00002.safetensors" % (i + 1)
        open(os.path.join(dirname, f), "wb").write(st_bytes(part))
        wm.update({n: f for n, _ in part})
    json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(dirname, "model.safetensors.index.json"), "w"))


# ---- an independent forward of HF-layout weights (float64) ------------------------

def hf_forward(cfg, w, tokens):
    w = {k: v.to(DT) for k, v in w.items()}
    il = cfg["model_type"] == "internlm2"
    nh, kvh, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    grp = nh // kvh
    eps = cfg["rms_norm_eps"]
    h = w["model.tok_embeddings.weight" if il else "model.embed_tokens.weight"][tokens]
    n, t, _ = h.shape
    cos, sin = dpo_ref.rope_cos_sin(d, cfg["rope_theta"], t)

    def lin(x, name):
        y = x @ w[name + ".weight"].t()
        return y + w[name + ".bias"] if name + ".bias" in w else y

    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        x = dpo_ref.rms_norm(h, w[p + ("attention_norm.weight" if il else "input_layernorm.weight")], eps)
        if il:
            qkv = lin(x, p + "attention.wqkv").view(n, t, kvh, grp + 2, d)
            q = qkv[..., :grp, :].reshape(n, t, nh, d)
            k, v = qkv[..., -2, :], qkv[..., -1, :]
        else:
            q = lin(x, p + "self_attn.q_proj").view(n, t, nh, d)
            k = lin(x, p + "self_attn.k_proj").view(n, t, kvh, d)
            v = lin(x, p + "self_attn.v_proj").view(n, t, kvh, d)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = dpo_ref.apply_rope(q, cos, sin), dpo_ref.apply_rope(k, cos, sin)
        k, v = dpo_ref.repeat_kv(k, grp), dpo_ref.repeat_kv(v, grp)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(n, t, nh * d)
        h = h + lin(o, p + ("attention.wo" if il else "self_attn.o_proj"))
        x = dpo_ref.rms_norm(h, w[p + ("ffn_norm.weight" if il else "post_attention_layernorm.weight")], eps)
        if il:
            m = lin(torch.nn.functional.silu(lin(x, p + "feed_forward.w1")) * lin(x, p + "feed_forward.w3"),
                    p + "feed_forward.w2")
        else:
            m = lin(torch.nn.functional.silu(lin(x, p + "mlp.gate_proj")) * lin(x, p + "mlp.up_proj"),
                    p + "mlp.down_proj")
        h = h + m
    h = dpo_ref.rms_norm(h, w["model.norm.weight"], eps)
    if cfg["tie_word_embeddings"]:
        head = w["model.embed_tokens.weight"]
    else:
        head = w["output.weight" if il else "lm_head.weight"]
    return h @ head.t()


# ---- helpers around the tools ------------------------------------------------------

_compiled = set()


def compile_step(a, yaml, so):
    """Compiles once per run: a step.so left by an earlier run may come from an older dpoc."""
    os.makedirs(os.path.dirname(so), exist_ok=True)
    if so not in _compiled:
        run([a.dpoc, "compile", yaml, "-o", so, "--expose-logits", "-q"])
        _compiled.add(so)


def tokens_for(cfg, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randint(0, cfg["vocab_size"], (2 * cfg["pairs"], cfg["seq_len"]), generator=g)


def dpoc_logits(a, so, ckpt, tokens, work):
    tf, of = os.path.join(work, "tokens.bin"), os.path.join(work, "logits.bin")
    open(tf, "wb").write(tokens.to(torch.int32).numpy().tobytes())
    run([a.hf_logits, so, ckpt, tf, of])
    n, t = tokens.shape
    return torch.frombuffer(bytearray(open(of, "rb").read()), dtype=torch.float32).reshape(n, t, -1).to(DT)


def maxrel(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def same_bytes(label, a_dir, b_dir):
    x, y = st_read(a_dir), st_read(b_dir)
    check(sorted(x) == sorted(y), "%s: the same tensor names (%d)" % (label, len(x)))
    diff = [k for k in x if k in y and x[k] != y[k]]
    check(not diff, "%s: byte-identical dtype, shape and data%s" % (label, (" (differ: %s)" % diff[:3]) if diff else ""))


# ---- cases -----------------------------------------------------------------------------

def case_logits(a, arch):
    cfg = MODELS[arch]
    work = os.path.join(a.work, arch)
    so = os.path.join(work, "step.so")
    compile_step(a, os.path.join(a.models, cfg["yaml"]), so)
    tokens = tokens_for(cfg, 1)
    dtypes = [torch.float32] + ([torch.bfloat16, torch.float16] if arch == "llama" else [])
    for dtype in dtypes:
        dn = ST_DTYPES[dtype][0].lower()
        w = hf_weights(cfg, {"qwen2": 1, "llama": 2, "internlm2": 3}[arch], dtype)
        hf = os.path.join(work, "hf_" + dn)
        write_hf(hf, cfg, w)
        ck = os.path.join(work, "ckpt_" + dn)
        run([a.dpoc, "ckpt", "import", "--hf", hf, "--step", so, "-o", ck])
        want = hf_forward(cfg, dict(w), tokens)
        got = dpoc_logits(a, so, ck, tokens, work)
        r = maxrel(got, want)
        check(r <= TOL, "%s %s: logits maxrel=%.3e (max|ref|=%.3e) <= %g" % (arch, dn, r, want.abs().max(), TOL))
        out = os.path.join(work, "export_" + dn)
        run([a.dpoc, "ckpt", "export-hf", ck, out, "--step", so, "--dtype", dn])
        same_bytes("%s %s: import -> export-hf" % (arch, dn), hf, out)
        c = json.load(open(os.path.join(out, "config.json")))
        check(c["model_type"] == arch and c["num_key_value_heads"] == cfg["num_key_value_heads"] and
              c["tie_word_embeddings"] == cfg["tie_word_embeddings"], "%s: exported config.json describes the model" % arch)
    if arch == "qwen2":
        # shards: a 2-file input with an index, exported in shards of 60 KB
        w = hf_weights(cfg, 1, torch.float32)
        hf = os.path.join(work, "hf_sharded")
        write_hf(hf, cfg, w, split=len(w) // 2)
        ck = os.path.join(work, "ckpt_sharded")
        run([a.dpoc, "ckpt", "import", "--hf", hf, "--step", so, "-o", ck])
        out = os.path.join(work, "export_sharded")
        run([a.dpoc, "ckpt", "export-hf", ck, out, "--step", so, "--max-shard-size", "60KB"])
        idx = json.load(open(os.path.join(out, "model.safetensors.index.json")))
        files = sorted(set(idx["weight_map"].values()))
        sizes_ok = all(os.path.getsize(os.path.join(out, f)) <= 60000 + 4096 or
                       len([k for k, v in idx["weight_map"].items() if v == f]) == 1 for f in files)
        check(len(files) > 2 and sizes_ok, "qwen2: --max-shard-size 60KB gives %d shards and an index" % len(files))
        same_bytes("qwen2 sharded: import -> export-hf", hf, out)
        ck2 = os.path.join(work, "ckpt_resharded")
        run([a.dpoc, "ckpt", "import", "--hf", out, "--step", so, "-o", ck2])
        got = dpoc_logits(a, so, ck2, tokens, work)
        want = hf_forward(cfg, dict(w), tokens)
        r = maxrel(got, want)
        check(r <= TOL, "qwen2 re-imported shards: logits maxrel=%.3e <= %g" % (r, TOL))


def case_trained(a):
    cfg = dict(MODELS["qwen2"], yaml="tiny_simpo.yaml", head_dim=16)
    work = os.path.join(a.work, "trained")
    so = os.path.join(work, "step.so")
    compile_step(a, os.path.join(a.models, cfg["yaml"]), so)
    w = hf_weights(cfg, 7, torch.float32)
    hf = os.path.join(work, "hf")
    write_hf(hf, cfg, w)
    ck0 = os.path.join(work, "ckpt0")
    run([a.dpoc, "ckpt", "import", "--hf", hf, "--step", so, "-o", ck0])
    rec = os.path.join(work, "train.rec")
    run([a.mkrec, rec, "--pairs", "8", "--vocab", "256"])
    ck = os.path.join(work, "ckpt")
    run([a.dporun, so, "--data", rec, "--steps", "3", "--init", ck0, "--save", ck, "--optimizer", "sgd",
         "--lr", "0.5", "--threads", "2"])
    out = os.path.join(work, "export")
    run([a.dpoc, "ckpt", "export-hf", ck, out, "--step", so])
    c = json.load(open(os.path.join(out, "config.json")))
    mc = dpo_ref.ModelConfig(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                             c["num_key_value_heads"], c["intermediate_size"], c.get("head_dim"), c["rope_theta"],
                             c["rms_norm_eps"], qkv_bias=True, tie_word_embeddings=c["tie_word_embeddings"])
    params = {k: st_tensor(v) for k, v in st_read(out).items()}
    moved = max((params[k] - w_.to(DT)).abs().max().item() for k, w_ in w if k in params)
    check(moved > 1e-4, "trained: the weights moved from the imported ones (max change %.3e)" % moved)
    tokens = tokens_for(cfg, 5)
    want = dpo_ref.forward_logits(dpo_ref.hf_decoder(mc), params, tokens)
    got = dpoc_logits(a, so, ck, tokens, work)
    r = maxrel(got, want)
    check(r <= TOL, "trained + exported: dpo_ref logits maxrel=%.3e <= %g" % (r, TOL))


def case_init_hf(a):
    """dporun --init-hf DIR starts from exactly the weights that dpoc ckpt import + --init give: the
    reference log-probs written by both routes are the same file, byte for byte (the .rec header holds
    the hash of the weights, the records the log-probs); and they differ from a seeded start."""
    cfg = dict(MODELS["qwen2"], head_dim=16)
    work = os.path.join(a.work, "init_hf")
    so = os.path.join(work, "step.so")
    compile_step(a, os.path.join(a.models, cfg["yaml"]), so)
    hf = os.path.join(work, "hf")
    write_hf(hf, cfg, hf_weights(cfg, 11, torch.float32))
    ck0 = os.path.join(work, "ckpt0")
    run([a.dpoc, "ckpt", "import", "--hf", hf, "--step", so, "-o", ck0])
    rec = os.path.join(work, "data.rec")
    run([a.mkrec, rec, "--pairs", "8", "--vocab", "256"])
    outs = {}
    for name, start in (("hf", ["--init-hf", hf]), ("ckpt", ["--init", ck0]), ("seed", ["--seed", "3"])):
        outs[name] = os.path.join(work, name + ".rec")
        run([a.dporun, so, "--data", rec, "--ref-logps", "-o", outs[name]] + start)
    data = {k: open(v, "rb").read() for k, v in outs.items()}
    check(data["hf"] == data["ckpt"], "init-hf: --init-hf and import + --init give byte-identical reference log-probs")
    check(data["hf"] != data["seed"], "init-hf: and they differ from a seeded start")
    p = subprocess.run([a.dporun, so, "--data", rec, "--init-hf", os.path.join(work, "nowhere")],
                       capture_output=True, text=True)
    check(p.returncode != 0 and "nowhere" in p.stderr, "init-hf: a missing directory is refused naming it (%r)"
          % p.stderr.strip())
    p = subprocess.run([a.dporun, so, "--data", rec, "--init-hf", hf, "--init", ck0], capture_output=True, text=True)
    check(p.returncode == 2 and "exclusive" in p.stderr, "init-hf: --init-hf with --init is a usage error")


def case_bad(a):
    cfg = MODELS["internlm2"]
    work = os.path.join(a.work, "bad")
    so = os.path.join(work, "step.so")
    compile_step(a, os.path.join(a.models, cfg["yaml"]), so)
    w = hf_weights(cfg, 3, torch.float32)
    good = st_bytes(w)
    norm = "model.norm.weight"

    def edit(fn):
        return lambda h: fn(h)

    def lie(h):
        h[norm]["data_offsets"][1] += 4096

    def overlap(h):
        e = h["model.layers.0.attention_norm.weight"]
        e["data_offsets"] = [0, e["data_offsets"][1] - e["data_offsets"][0]]

    def wrong_dtype(h):
        h[norm]["dtype"] = "I64"

    def size_lie(h):
        h[norm]["shape"] = [cfg["hidden_size"] * 2]

    cases = [
        ("truncated", good[:len(good) - 100], None, "output.weight"),  # the last tensor in the data area
        ("offsets lie", st_bytes(w, edit(lie)), None, norm),
        ("overlapping offsets", st_bytes(w, edit(overlap)), None, "model.layers.0.attention_norm.weight"),
        ("wrong dtype", st_bytes(w, edit(wrong_dtype)), None, norm),
        ("size and shape disagree", st_bytes(w, edit(size_lie)), None, norm),
        ("missing tensor", st_bytes([x for x in w if x[0] != norm]), None, norm),
        ("shape mismatch", st_bytes([(n, t[:32] if n == norm else t) for n, t in w]), None, norm),
        ("bad wqkv shape", st_bytes([(n, t[:-8] if n.endswith("0.attention.wqkv.weight") else t) for n, t in w]),
         None, "model.layers.0.attention.wqkv.weight"),
        ("extra tensor", st_bytes(w + [("model.layers.3.ffn_norm.weight", w[-2][1])]), None,
         "model.layers.3.ffn_norm.weight"),
        ("index names a wrong shard", None, {"model.norm.weight": "model-00001-of-00002.safetensors"}, norm),
    ]
    for label, data, index, name in cases:
        d = os.path.join(work, label.replace(" ", "_"))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        json.dump(hf_config(cfg), open(os.path.join(d, "config.json"), "w"))
        if index is None:
            open(os.path.join(d, "model.safetensors"), "wb").write(data)
        else:
            rest = [x for x in w if x[0] != norm]
            open(os.path.join(d, "model-00001-of-00002.safetensors"), "wb").write(st_bytes(rest))
            open(os.path.join(d, "model-00002-of-00002.safetensors"), "wb").write(st_bytes([x for x in w if x[0] == norm]))
            wm = {n: "model-00001-of-00002.safetensors" for n, _ in rest}
            wm.update(index)
            json.dump({"weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
        ck = os.path.join(d, "ckpt")
        p = run([a.dpoc, "ckpt", "import", "--hf", d, "--step", so, "-o", ck], expect=None)
        msg = p.stderr.strip()
        ok = p.returncode == 1 and ("'%s'" % name) in msg and not os.path.exists(ck)
        check(ok, "bad safetensors, %s: exit %d, %s" % (label, p.returncode, msg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    for k in ("dpoc", "dporun", "hf-logits", "mkrec", "models", "work"):
        ap.add_argument("--" + k, required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if a.case.startswith("logits_"):
        case_logits(a, a.case[len("logits_"):])
    elif a.case == "trained":
        case_trained(a)
    elif a.case == "bad":
        case_bad(a)
    elif a.case == "init_hf":
        case_init_hf(a)
    else:
        raise SystemExit("unknown case " + a.case)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
