"""check_vs_torch.py — the front end's graphs, interpreted in float64, against
a plain PyTorch implementation of the same network and losses.

usage: check_vs_torch.py FE_MODEL_DUMP MODEL.yaml...

For each model: fe_model_dump builds the train and logps graphs, fills the
parameters and inputs from a fixed seed, interprets both graphs in double
precision and writes everything to JSON. This script recomputes the network
in torch, written from the Hugging Face Qwen2/Llama semantics (RMSNorm,
rotate-half RoPE, GQA by repeating kv heads, causal softmax, SwiGLU, tied or
untied head), following the architecture the JSON reports layer by layer
(so heterogeneous blocks are covered), and the losses from TRL's formulas.
It compares logits, per-sequence log-probs, logits_sum, the online
reference's log-probs and the loss. Both sides are float64, so they must
agree to round-off (1e-10 relative). Exits 77 (skipped) without torch.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch not available: skipped")
    sys.exit(77)

DT = torch.float64
TOL = 1e-10


# ---- the network ---------------------------------------------------------------

def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def linear(p, name, x):
    y = x @ p[name + ".weight"].t()
    return y + p[name + ".bias"] if name + ".bias" in p else y


def rope(x, theta):
    t, d = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=DT) / d))
    ang = torch.arange(t, dtype=DT)[:, None] * inv_freq[None, :]
    ang = torch.cat((ang, ang), dim=-1)
    rotated = torch.cat((-x[..., d // 2:], x[..., : d // 2]), dim=-1)
    return x * ang.cos() + rotated * ang.sin()


def attention(p, base, m, x):
    s, t, _ = x.shape
    nh, kv, d = int(m["heads"]), int(m["kv_heads"]), int(m["head_dim"])
    q = linear(p, base + "q_proj", x).view(s, t, nh, d).transpose(1, 2)
    k = linear(p, base + "k_proj", x).view(s, t, kv, d).transpose(1, 2)
    v = linear(p, base + "v_proj", x).view(s, t, kv, d).transpose(1, 2)
    q, k = rope(q, m["rope_theta"]), rope(k, m["rope_theta"])
    k = k.repeat_interleave(nh // kv, dim=1)  # query head h reads kv head h // group
    v = v.repeat_interleave(nh // kv, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if m["causal"]:
        scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(s, t, nh * d)
    return linear(p, base + "o_proj", out)


def mlp(p, base, x):
    return linear(p, base + "down_proj", F.silu(linear(p, base + "gate_proj", x)) * linear(p, base + "up_proj", x))


def forward(cfg, p, tokens):
    """logits [S, T, V] of the architecture described by the dumped config."""
    h = p["model.embed_tokens.weight"][tokens]
    for item in cfg["architecture"]:
        if "repeat" in item:
            for r in range(int(item["repeat"])):
                layer = "model.layers.%d." % (int(item["first_layer"]) + r)
                for group in item["block"]:
                    y = h
                    for m in group["modules"]:
                        base = layer + m["name"] + "."
                        if m["module"] == "rmsnorm":
                            y = rms_norm(y, p[base + "weight"], m["eps"])
                        elif m["module"] == "attention":
                            y = attention(p, base, m, y)
                        elif m["module"] == "mlp":
                            y = mlp(p, base, y)
                        else:
                            raise ValueError(m["module"])
                    h = h + y if group["residual"] else y
        elif item["module"] == "rmsnorm":
            h = rms_norm(h, p["model.norm.weight"], item["eps"])
        elif item["module"] == "lm_head":
            h = h @ (p["model.embed_tokens.weight"] if item["tied"] else p["lm_head.weight"]).t()
    return h


def seq_logps(logits, targets, mask):
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
    return (picked * mask).sum(-1)


# ---- the losses (TRL DPOTrainer / CPOTrainer / ORPOTrainer) --------------------------

def loss_value(name, hp, logps, ref, lens):
    b = logps.shape[0] // 2
    pc, pr, lc, lr = logps[:b], logps[b:], lens[:b], lens[b:]
    rc, rr = (ref[:b], ref[b:]) if ref is not None else (None, None)
    nll_tokens = -pc.sum() / lc.sum()
    beta = hp.get("beta")
    if name in ("sigmoid", "robust", "hinge", "mix", "hinge_nll"):
        logits = (pc - pr) - (rc - rr)
    if name in ("sigmoid", "mix"):
        ls = hp["label_smoothing"]
        losses = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
        if name == "mix":
            losses = losses + hp["alpha"] * nll_tokens
    elif name == "robust":
        ls = hp["label_smoothing"]
        losses = (-F.logsigmoid(beta * logits) * (1 - ls) + F.logsigmoid(-beta * logits) * ls) / (1 - 2 * ls)
    elif name == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif name == "ipo":
        la = (pc / lc - pr / lr) - (rc / lc - rr / lr)
        losses = (la - 1 / (2 * beta)) ** 2
    elif name == "sppo_hard":
        losses = (pc - rc - 0.5 / beta) ** 2 + (pr - rr + 0.5 / beta) ** 2
    elif name == "nca_pair":
        cr, rjr = (pc - rc) * beta, (pr - rr) * beta
        losses = -F.logsigmoid(cr) - 0.5 * F.logsigmoid(-cr) - 0.5 * F.logsigmoid(-rjr)
    elif name == "simpo":
        x = beta * (pc / lc - pr / lr) - hp["gamma"]
        ls = hp["label_smoothing"]
        losses = -F.logsigmoid(x) * (1 - ls) - F.logsigmoid(-x) * ls + hp["cpo_alpha"] * nll_tokens
    elif name == "orpo":
        ac, ar = pc / lc, pr / lr
        log_odds = (ac - ar) - (torch.log1p(-torch.exp(ac)) - torch.log1p(-torch.exp(ar)))
        losses = nll_tokens - beta * F.logsigmoid(log_odds)
    elif name == "hinge_nll":  # the inline loss of models/tiny_inline.yaml
        losses = torch.relu(1 - beta * logits) + hp["alpha"] * (-pc / lc)
    else:
        raise ValueError("no reference formula for the loss %r" % name)
    return losses.mean()


# ---- driver ---------------------------------------------------------------------------

def compare(what, got, want):
    got = torch.as_tensor(got, dtype=DT).reshape(-1)
    want = want.detach().to(DT).reshape(-1)
    if got.shape != want.shape:
        return "%s: %d values, want %d" % (what, got.numel(), want.numel())
    scale = max(1.0, float(want.abs().max()))
    err = float((got - want).abs().max()) / scale
    if not err <= TOL:
        return "%s: max relative difference %.3g" % (what, err)
    return None


def check(exe, yaml_path):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "dump.json")
        subprocess.run([exe, yaml_path, out], check=True)
        with open(out) as f:
            d = json.load(f)
    cfg = d["config"]
    params = {k: torch.tensor(v["data"], dtype=DT).reshape([int(s) for s in v["shape"]]) for k, v in d["params"].items()}
    policy = {k: v for k, v in params.items() if not k.startswith("ref:")}
    frozen = {k[4:]: v for k, v in params.items() if k.startswith("ref:")}
    s, t = 2 * int(cfg["pairs"]), int(cfg["seq_len"])
    tokens = torch.tensor(d["inputs"]["tokens"], dtype=DT).reshape(s, t).long()
    targets = torch.tensor(d["inputs"]["targets"], dtype=DT).reshape(s, t).long()
    mask = torch.tensor(d["inputs"]["loss_mask"], dtype=DT).reshape(s, t)
    outs = d["outputs"]

    logits = forward(cfg, policy, tokens)
    logps = seq_logps(logits, targets, mask)
    ref = None
    if cfg["reference"] == "precomputed":
        ref = torch.tensor(d["inputs"]["ref_logps"], dtype=DT)
    elif cfg["reference"] == "online":
        ref = seq_logps(forward(cfg, frozen, tokens), targets, mask)
    loss_cfg = cfg["loss"]
    loss = loss_value(loss_cfg["name"], loss_cfg["params"], logps, ref, mask.sum(-1))

    problems = [
        compare("logits", outs["logps_graph.logits"], logits),
        compare("logps (logps graph)", outs["logps_graph.logps"], logps),
        compare("logps (train graph)", outs["logps"], logps),
        compare("logits_sum", outs["logits_sum"], (logits.sum(-1) * mask).sum(-1)),
        compare("loss", outs["loss"], loss.reshape(1)),
    ]
    if cfg["reference"] == "online":
        problems.append(compare("ref_logps", outs["ref_logps"], ref))
    problems = [p for p in problems if p]
    name = os.path.basename(yaml_path)
    if problems:
        print("FAIL %s: %s" % (name, "; ".join(problems)))
        return False
    print("OK %s (%s loss %.6f, reference %s)" % (name, loss_cfg["name"], float(loss), cfg["reference"]))
    return True


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    exe, yamls = sys.argv[1], sys.argv[2:]
    ok = all([check(exe, y) for y in yamls])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
