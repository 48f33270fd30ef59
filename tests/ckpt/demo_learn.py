"""demo_learn.py — the demo data is learnable by the demo model, checked
without dpoc's compiler or runtime.

Usage: demo_learn.py DPOC SOURCE_DIR WORKDIR [STEPS]

How it works: the pairs of models/demo/{train,eval}.jsonl are tokenized by
`dpoc data prepare` (tokenizer tests/data/tok/bytes, template none) and read
back with `dpoc data show --json`. A decoder of demo.yaml's shape is written
out here in PyTorch (float32, Qwen2 semantics: RMSNorm, grouped-query
attention with q/k/v bias and rotate-half RoPE, SwiGLU MLP, tied head),
initialised as dporun does (normal, std 0.02, for matrices; ones for norms;
zeros for biases) from a fixed torch seed, and trained with sigmoid DPO
(beta 0.1) against a frozen copy of its initial weights (the online
reference), AdamW lr 1e-3, 4 pairs per step. After STEPS steps (default 40)
the held-out reward accuracy must exceed 0.9 and the held-out margin must
have grown from its value halfway. Exit 77 (skip) without torch.
"""

import json
import math
import os
import subprocess
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("demo_learn: no torch; skipped")
    sys.exit(77)

dpoc, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 40
V, H, LAYERS, HEADS, KV, HD, INTER, T, B, BETA = 299, 64, 2, 4, 2, 16, 128, 32, 4, 0.1
os.makedirs(work, exist_ok=True)


def load(name):
    rec = os.path.join(work, name + ".rec")
    subprocess.run([dpoc, "data", "prepare", "--tokenizer", os.path.join(src, "tests/data/tok/bytes"),
                    "--template", "none", os.path.join(src, "models/demo", name + ".jsonl"), "-o", rec],
                   check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([dpoc, "data", "show", "--json", rec], check=True, capture_output=True, text=True).stdout
    return [(j["chosen"], j["rejected"]) for j in map(json.loads, out.splitlines())]


def batch(pairs):
    """tokens, targets, mask [2n, T]: chosen rows first; mask marks the
    positions whose next token is a label."""
    rows = [p[0] for p in pairs] + [p[1] for p in pairs]
    tok = torch.zeros(len(rows), T, dtype=torch.long)
    tgt = torch.zeros_like(tok)
    mask = torch.zeros(len(rows), T)
    for i, r in enumerate(rows):
        ids = r["ids"]
        assert len(ids) <= T, "sequence longer than seq_len"
        tok[i, :len(ids)] = torch.tensor(ids)
        for s, e in r["spans"]:
            for t in range(s, e):
                tgt[i, t - 1] = ids[t]
                mask[i, t - 1] = 1.0
    return tok, tgt, mask


def init_params():
    def mat(*shape):
        return (torch.randn(*shape) * 0.02).requires_grad_()

    def const(n, v):
        return torch.full((n,), v).requires_grad_()

    p = {"embed": mat(V, H), "norm": const(H, 1.0)}
    for l in range(LAYERS):
        p.update({f"{l}.ln1": const(H, 1.0), f"{l}.ln2": const(H, 1.0),
                  f"{l}.q": mat(HEADS * HD, H), f"{l}.k": mat(KV * HD, H), f"{l}.v": mat(KV * HD, H),
                  f"{l}.qb": const(HEADS * HD, 0.0), f"{l}.kb": const(KV * HD, 0.0), f"{l}.vb": const(KV * HD, 0.0),
                  f"{l}.o": mat(H, HEADS * HD), f"{l}.gate": mat(INTER, H), f"{l}.up": mat(INTER, H),
                  f"{l}.down": mat(H, INTER)})
    return p


inv_freq = 1.0 / (10000.0 ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None]
COS = torch.cat([angles.cos(), angles.cos()], -1).float()
SIN = torch.cat([angles.sin(), angles.sin()], -1).float()
CAUSAL = torch.full((T, T), float("-inf")).triu(1)


def rmsnorm(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def rope(x):
    a, b = x.chunk(2, -1)
    return x * COS + torch.cat([-b, a], -1) * SIN


def logps(p, tok, tgt, mask):
    n = tok.shape[0]
    x = p["embed"][tok]
    for l in range(LAYERS):
        h = rmsnorm(x, p[f"{l}.ln1"])
        q = (h @ p[f"{l}.q"].T + p[f"{l}.qb"]).view(n, T, HEADS, HD).transpose(1, 2)
        k = (h @ p[f"{l}.k"].T + p[f"{l}.kb"]).view(n, T, KV, HD).transpose(1, 2)
        v = (h @ p[f"{l}.v"].T + p[f"{l}.vb"]).view(n, T, KV, HD).transpose(1, 2)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(HEADS // KV, 1), v.repeat_interleave(HEADS // KV, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + CAUSAL, -1) @ v
        x = x + att.transpose(1, 2).reshape(n, T, HEADS * HD) @ p[f"{l}.o"].T
        h = rmsnorm(x, p[f"{l}.ln2"])
        x = x + (F.silu(h @ p[f"{l}.gate"].T) * (h @ p[f"{l}.up"].T)) @ p[f"{l}.down"].T
    logits = rmsnorm(x, p["norm"]) @ p["embed"].T
    lp = torch.log_softmax(logits, -1).gather(-1, tgt[..., None])[..., 0]
    return (lp * mask).sum(-1)


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(2)
    train, held = load("train"), load("eval")
    params = init_params()
    ref = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.AdamW(params.values(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    held_batch = batch(held)
    with torch.no_grad():
        ref_held = logps(ref, *held_batch)

    def evaluate():
        with torch.no_grad():
            lp = logps(params, *held_batch)
        n = len(held)
        chosen, rejected = BETA * (lp[:n] - ref_held[:n]), BETA * (lp[n:] - ref_held[n:])
        return (chosen > rejected).float().mean().item(), (chosen - rejected).mean().item()

    order = torch.randperm(len(train)).tolist()
    half = None
    for step in range(1, steps + 1):
        pairs = [train[i] for i in order[(step - 1) * B:step * B]]
        tok, tgt, mask = batch(pairs)
        with torch.no_grad():
            r = logps(ref, tok, tgt, mask)
        lp = logps(params, tok, tgt, mask)
        loss = -F.logsigmoid(BETA * ((lp[:B] - r[:B]) - (lp[B:] - r[B:]))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == steps // 2:
            half = evaluate()
    acc, margin = evaluate()
    print("demo_learn: after %d steps held-out accuracy %.3f, margin %.3f (at step %d: %.3f, %.3f)" %
          (steps, acc, margin, steps // 2, half[0], half[1]))
    ok = acc > 0.9 and margin > half[1]
    print("demo_learn: %s" % ("OK" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


main()
