#!/usr/bin/env python3
"""compare.py — check a step_run dump against the float64 PyTorch reference.

usage: compare.py DUMPDIR [--tol 1e-5]

How it works: step_run wrote the step's manifest (with the model and loss
configuration under "config") and every parameter, input, output and
gradient as raw little-endian files listed in index.json. This script
rebuilds the decoder described by the configuration in tests/ref/dpo_ref.py
(checking on the way that a uniform model is exactly Hugging Face's
Qwen2/Llama layer stack and that the parameters are the Hugging Face names
and shapes), runs it in float64 on the dumped float32 parameters and inputs,
computes the loss (TRL's formula for a named loss, checked against the loss
file's own expression; the expression itself for an inline loss) and every
parameter gradient by autograd, and compares dpoc's float32 results:

    relative error = max|dpoc - ref| / max|ref|   (per tensor) <= tol

It prints one line per tensor, "OK name maxrel=..." or "FAIL ...", and exits
1 on any failure, any missing gradient or output, 0 otherwise. Without torch
it prints SKIP and exits 77 (ctest's skip code).
"""

import json
import os
import sys

try:
    import torch
except ImportError:
    print("SKIP: python3 cannot import torch (Debian: apt-get install python3-torch); "
          "the end-to-end PyTorch comparison did not run")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import dpo_ref  # noqa: E402

DTYPES = {"f32": torch.float32, "f64": torch.float64, "i32": torch.int32}


class Checker:
    def __init__(self, tol):
        self.tol = tol
        self.failures = 0
        self.worst = 0.0

    def fail(self, msg):
        print("FAIL " + msg)
        self.failures += 1

    def ok(self, msg):
        print("OK " + msg)

    def compare(self, label, got, want):
        if got is None:
            self.fail("%s: missing from the dump" % label)
            return
        got = got.to(torch.float64)
        want = want.to(torch.float64)
        if tuple(got.shape) != tuple(want.shape):
            self.fail("%s: shape %s, reference %s" % (label, list(got.shape), list(want.shape)))
            return
        if not torch.isfinite(got).all():
            self.fail("%s: dpoc's value has inf or nan" % label)
            return
        scale = want.abs().max().item() if want.numel() else 0.0
        diff = (got - want).abs().max().item() if want.numel() else 0.0
        if scale == 0.0:
            if diff == 0.0:
                self.ok("%s maxrel=0 (all zero)" % label)
            else:
                self.fail("%s: reference is all zero, dpoc's max |value| is %.3e" % (label, diff))
            return
        rel = diff / scale
        self.worst = max(self.worst, rel)
        line = "%s maxrel=%.3e (max|ref|=%.3e)" % (label, rel, scale)
        if rel <= self.tol:
            self.ok(line)
        else:
            self.fail(line + " > %.1e" % self.tol)


def load_dump(d):
    with open(os.path.join(d, "index.json")) as f:
        index = json.load(f)
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = {}
    for e in index["tensors"]:
        with open(os.path.join(d, e["file"]), "rb") as f:
            raw = bytearray(f.read())
        dt = DTYPES[e["dtype"]]
        shape = tuple(e["shape"])
        t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        tensors[(e["kind"], e["name"])] = t.reshape(shape).clone()
    return manifest, tensors


# ---- the configuration -> the reference's Arch ------------------------------

def module_from_json(m):
    kind = m["module"]
    if kind == "rmsnorm":
        return dpo_ref.RMSNorm(m["name"], m["eps"])
    if kind == "attention":
        return dpo_ref.Attention(m["name"], m["heads"], m["kv_heads"], m["head_dim"], m["rope_theta"],
                                 m.get("causal", True), m.get("qkv_bias", False), m.get("o_bias", False))
    if kind == "mlp":
        return dpo_ref.MLP(m["name"], m["intermediate_size"], m.get("bias", False))
    raise ValueError("unknown module %r in a block" % kind)


def arch_from_config(cfg):
    layers = []
    final_eps, tied, seen_embedding = None, None, False
    for item in cfg["architecture"]:
        if "repeat" in item:
            if item["first_layer"] != len(layers):
                raise ValueError("block starts at layer %d, expected %d" % (item["first_layer"], len(layers)))
            groups = [(bool(g["residual"]), [module_from_json(m) for m in g["modules"]]) for g in item["block"]]
            layers.extend([groups] * int(item["repeat"]))
        elif item["module"] == "embedding":
            seen_embedding = True
        elif item["module"] == "rmsnorm":
            final_eps = item["eps"]
        elif item["module"] == "lm_head":
            tied = bool(item["tied"])
        else:
            raise ValueError("unexpected top-level module %r" % item["module"])
    if not seen_embedding or tied is None:
        raise ValueError("the architecture needs an embedding and an lm_head")
    return dpo_ref.Arch(cfg["vocab_size"], cfg["hidden_size"], layers, final_eps, tied)


def hf_arch_from_config(cfg, arch):
    """HF's decoder for the config's HF-style keys, taking the bias flags from
    the first attention/mlp; None when the keys are absent."""
    keys = ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "rms_norm_eps")
    if not all(k in cfg for k in keys):
        return None
    att = next((m for layer in arch.layers for _, mods in layer for m in mods
                if isinstance(m, dpo_ref.Attention)), None)
    mlp = next((m for layer in arch.layers for _, mods in layer for m in mods
                if isinstance(m, dpo_ref.MLP)), None)
    mc = dpo_ref.ModelConfig(
        cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
        cfg["num_key_value_heads"], cfg["intermediate_size"], head_dim=cfg.get("head_dim"),
        rope_theta=cfg.get("rope_theta", 10000.0), rms_norm_eps=cfg["rms_norm_eps"],
        qkv_bias=att.qkv_bias if att else False, o_bias=att.o_bias if att else False,
        mlp_bias=mlp.bias if mlp else False, tie_word_embeddings=cfg.get("tie_word_embeddings", True))
    return dpo_ref.hf_decoder(mc)


def is_uniform(arch):
    return len({tuple((r, tuple(m.key() for m in mods)) for r, mods in layer) for layer in arch.layers}) <= 1


def check_batch(chk, mask):
    """The batch must exercise the masking: in every row one contiguous run of
    response positions after a prompt and before padding; chosen and rejected
    lengths differ within each pair; prompt lengths differ between pairs."""
    n, _ = mask.shape
    b = n // 2
    starts, lens, problems = [], [], []
    for i in range(n):
        on = [j for j, v in enumerate(mask[i].tolist()) if v != 0.0]
        if not on or on != list(range(on[0], on[-1] + 1)) or any(v not in (0.0, 1.0) for v in mask[i].tolist()):
            problems.append("row %d: mask is not one run of ones" % i)
            continue
        if on[0] == 0 or on[-1] == mask.shape[1] - 1:
            problems.append("row %d: no prompt or no padding" % i)
        starts.append(on[0])
        lens.append(len(on))
    if not problems:
        if any(lens[p] == lens[p + b] for p in range(b)):
            problems.append("a pair's chosen and rejected responses have the same length")
        if b > 1 and len(set(starts[:b])) == 1:
            problems.append("every pair has the same prompt length")
    if problems:
        chk.fail("batch does not exercise the masks: " + "; ".join(problems))
    else:
        chk.ok("batch: prompt lengths %s, chosen lengths %s, rejected lengths %s, padding at the end"
               % ([s + 1 for s in starts[:b]], lens[:b], lens[b:]))


# ---- main -------------------------------------------------------------------

def main(argv):
    args = [a for a in argv[1:]]
    tol = 1e-5
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        print("usage: compare.py DUMPDIR [--tol 1e-5]", file=sys.stderr)
        return 2
    manifest, t = load_dump(args[0])
    cfg = manifest.get("config")
    if not cfg:
        print("FAIL the manifest has no \"config\" (the model configuration)")
        return 1
    chk = Checker(tol)
    print("model %s: loss %s, reference %s, %d pairs x %d tokens"
          % (cfg.get("name"), cfg["loss"].get("name"), cfg["reference"], cfg["pairs"], cfg["seq_len"]))

    # 1. the architecture and the parameter names
    arch = arch_from_config(cfg)
    hf = hf_arch_from_config(cfg, arch)
    if hf is not None and is_uniform(arch):
        if hf.key() == arch.key():
            chk.ok("architecture is Hugging Face's Qwen2/Llama decoder (%d layers)" % len(arch.layers))
        else:
            chk.fail("architecture: a uniform model that is not HF's Qwen2/Llama layer stack for its HF keys")
    else:
        print("NOTE non-uniform layers: the reference composes the modules as the configuration lists them")
    want_shapes = dpo_ref.param_shapes(arch)
    params = {n: v for (k, n), v in t.items() if k == "param"}
    for n, shape in want_shapes.items():
        if n not in params:
            chk.fail("parameter %s %s missing from the step" % (n, list(shape)))
        elif tuple(params[n].shape) != tuple(shape):
            chk.fail("parameter %s has shape %s, Hugging Face's is %s" % (n, list(params[n].shape), list(shape)))
    for n in params:
        if n not in want_shapes:
            chk.fail("parameter %s is not a Hugging Face parameter of this model" % n)
    if chk.failures:
        return 1
    chk.ok("parameters: %d tensors with Hugging Face names and shapes" % len(params))

    # 2. inputs, reference
    tokens, targets, mask = t.get(("input", "tokens")), t.get(("input", "targets")), t.get(("input", "loss_mask"))
    if tokens is None or targets is None or mask is None:
        print("FAIL the dump lacks tokens, targets or loss_mask")
        return 1
    check_batch(chk, mask)
    reference = cfg["reference"]
    ref_logps_in, ref_params = None, None
    if reference == "precomputed":
        ref_logps_in = t.get(("input", "ref_logps"))
        if ref_logps_in is None:
            print("FAIL precomputed reference but no ref_logps input")
            return 1
    elif reference == "online":
        ref_params = {n[4:] if n.startswith("ref:") else n: v for (k, n), v in t.items() if k == "ref_param"}
        if set(ref_params) != set(params):
            chk.fail("online reference: frozen parameters %s do not mirror the policy's"
                     % sorted(set(ref_params) ^ set(params)))
            return 1

    # 3. the loss
    loss = cfg["loss"]
    name, hparams = loss.get("use") or loss.get("name"), loss.get("params", {})
    lets = list(loss.get("let", {}).items())
    expr = loss.get("expr")

    def expr_fn(q):
        return dpo_ref.eval_loss_expr(lets, expr, hparams, q)

    if loss.get("use") in dpo_ref.LOSSES:
        hp = dpo_ref.loss_hparams(name, hparams)

        def loss_fn(q):
            return dpo_ref.trl_loss(name, hp, q)
    elif expr:
        print("NOTE loss %r is not one of TRL's: the reference evaluates its expression" % name)
        loss_fn = expr_fn
    else:
        print("FAIL loss %r: neither a known TRL loss nor an expression" % name)
        return 1

    r = dpo_ref.run_step(arch, loss_fn, reference, params, tokens, targets, mask,
                         ref_logps=ref_logps_in, ref_params=ref_params)
    if loss_fn is not expr_fn and expr:
        # the loss file must say what TRL's formula says
        e = expr_fn(r["quantities"]).item()
        w = r["loss"].item()
        rel = abs(e - w) / max(abs(w), 1e-300)
        (chk.ok if rel <= 1e-12 else chk.fail)(
            "loss expression of %r equals TRL's formula (%.17g vs %.17g, rel %.1e)" % (name, e, w, rel))

    # 4. values
    chk.compare("loss", t.get(("train_output", "loss")), r["loss"])
    chk.compare("logps (train_step)", t.get(("train_output", "logps")), r["logps"])
    if ("train_output", "logits_sum") in t:
        chk.compare("logits_sum", t[("train_output", "logits_sum")], r["logits_sum"])
    if reference == "online":
        chk.compare("ref_logps (online)", t.get(("train_output", "ref_logps")), r["ref_logps"])
    chk.compare("logps (logps entry)", t.get(("logps_output", "logps")), r["logps"])
    chk.compare("logits (logps entry)", t.get(("logps_output", "logits")), r["logits"])
    known = {"loss", "logps", "logits_sum", "ref_logps", "logits"}
    for (k, n) in t:
        if k in ("train_output", "logps_output") and n not in known:
            print("NOTE output %s (%s) has no reference value" % (n, k))

    # 5. every gradient (and the reference's must not all be zero: that
    # would make the comparison say nothing)
    if all(g.abs().max().item() == 0.0 for g in r["grads"].values()):
        chk.fail("the reference gradient is zero everywhere: the test data saturate the loss")
    for n in want_shapes:
        chk.compare("grad " + n, t.get(("grad", n)), r["grads"][n])
    for (k, n) in t:
        if k == "grad" and n not in want_shapes:
            chk.fail("gradient %s of no parameter" % n)

    if chk.failures:
        print("%d check(s) FAILED (worst relative error %.3e, tolerance %.1e)" % (chk.failures, chk.worst, tol))
        return 1
    print("all checks passed: worst relative error %.3e (tolerance %.1e)" % (chk.worst, tol))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
