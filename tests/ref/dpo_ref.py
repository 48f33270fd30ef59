"""dpo_ref.py — an independent PyTorch (float64) reference for dpoc's DPO step.

How it works: the decoder is written out from the Hugging Face Qwen2/Llama
modelling semantics, not from dpoc's code. Token embedding; per layer an
RMSNorm, attention (q/k/v projections with optional bias, rotate-half RoPE,
grouped-query attention by repeating each key/value head, causal softmax,
output projection), a residual add, a second RMSNorm, a SwiGLU MLP and a
residual add; a final RMSNorm and the LM head (tied to the embedding or its
own `lm_head.weight`). Parameters are a dict keyed by Hugging Face names with
Hugging Face shapes (Linear weights are [out, in]). hf_decoder() gives the
standard Qwen2/Llama layer stack; an Arch can also list other compositions of
the same modules (different heads per layer, ...), as dpoc's YAML allows.

A micro-batch holds 2B sequences: rows 0..B-1 are the chosen responses and
rows B..2B-1 the rejected ones. `targets[i, t]` is the token whose log-prob is
read at position t and `loss_mask[i, t]` says whether it counts, so the
summed log-prob of a sequence is sum_t mask * log_softmax(logits)[target].

The DPO losses are written from TRL's documented formulas (DPOTrainer.dpo_loss,
CPOTrainer for SimPO, ORPOTrainer for ORPO; see trl_loss): the step loss is
the batch mean of the per-pair losses, plus a scalar token-mean NLL term for
ORPO, CPO-SimPO and the MindRLHF mix. eval_loss_expr evaluates a loss written
in dpoc's own loss language (for inline losses, and to check that a loss
file says the same as TRL's formula).

Everything runs in float64 so that it is an exact yardstick for dpoc's float32.
"""

import math

import torch
import torch.nn.functional as F

DT = torch.float64


class ModelConfig:
    """Architecture hyper-parameters of a uniform decoder (names follow HF's
    Qwen2Config / LlamaConfig)."""

    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                 num_key_value_heads, intermediate_size, head_dim=None, rope_theta=10000.0,
                 rms_norm_eps=1e-6, qkv_bias=True, o_bias=False, mlp_bias=False,
                 tie_word_embeddings=True):
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.num_key_value_heads = int(num_key_value_heads)
        self.intermediate_size = int(intermediate_size)
        self.head_dim = int(head_dim) if head_dim else self.hidden_size // self.num_attention_heads
        self.rope_theta = float(rope_theta)
        self.rms_norm_eps = float(rms_norm_eps)
        self.qkv_bias = bool(qkv_bias)
        self.o_bias = bool(o_bias)
        self.mlp_bias = bool(mlp_bias)
        self.tie_word_embeddings = bool(tie_word_embeddings)


# A decoder is an Arch: the embedding, then per layer a list of groups (a
# list of modules, with the group's input added back when residual), a final
# RMSNorm (eps, or None) and the LM head. The modules are plain records.

class RMSNorm:
    def __init__(self, name, eps):
        self.name, self.eps = name, float(eps)

    def key(self):
        return ("rmsnorm", self.name, self.eps)


class Attention:
    def __init__(self, name, heads, kv_heads, head_dim, rope_theta, causal=True, qkv_bias=False, o_bias=False):
        self.name = name
        self.heads, self.kv_heads, self.head_dim = int(heads), int(kv_heads), int(head_dim)
        self.rope_theta = float(rope_theta)
        self.causal, self.qkv_bias, self.o_bias = bool(causal), bool(qkv_bias), bool(o_bias)
        if self.heads % self.kv_heads:
            raise ValueError("kv_heads must divide heads")

    def key(self):
        return ("attention", self.name, self.heads, self.kv_heads, self.head_dim, self.rope_theta,
                self.causal, self.qkv_bias, self.o_bias)


class MLP:
    def __init__(self, name, intermediate_size, bias=False):
        self.name, self.intermediate_size, self.bias = name, int(intermediate_size), bool(bias)

    def key(self):
        return ("mlp", self.name, self.intermediate_size, self.bias)


class Arch:
    def __init__(self, vocab_size, hidden_size, layers, final_norm_eps, tied):
        self.vocab_size, self.hidden_size = int(vocab_size), int(hidden_size)
        self.layers = layers            # [[(residual, [module, ...]), ...] per layer]
        self.final_norm_eps = final_norm_eps
        self.tied = bool(tied)

    def key(self):
        return (self.vocab_size, self.hidden_size, self.final_norm_eps, self.tied,
                tuple(tuple((r, tuple(m.key() for m in mods)) for r, mods in layer) for layer in self.layers))


def hf_decoder(cfg):
    """The Arch of HF's Qwen2/Llama decoder layer stack for a ModelConfig:
    x += self_attn(input_layernorm(x)); x += mlp(post_attention_layernorm(x))."""
    layers = []
    for _ in range(cfg.num_hidden_layers):
        att = Attention("self_attn", cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                        cfg.rope_theta, True, cfg.qkv_bias, cfg.o_bias)
        layers.append([
            (True, [RMSNorm("input_layernorm", cfg.rms_norm_eps), att]),
            (True, [RMSNorm("post_attention_layernorm", cfg.rms_norm_eps),
                    MLP("mlp", cfg.intermediate_size, cfg.mlp_bias)]),
        ])
    return Arch(cfg.vocab_size, cfg.hidden_size, layers, cfg.rms_norm_eps, cfg.tie_word_embeddings)


def param_shapes(arch):
    """The trainable parameters, in HF naming, as {name: shape}."""
    h, v = arch.hidden_size, arch.vocab_size
    shapes = {"model.embed_tokens.weight": (v, h)}
    for layer, groups in enumerate(arch.layers):
        for _, mods in groups:
            for m in mods:
                p = "model.layers.%d.%s." % (layer, m.name)
                if isinstance(m, RMSNorm):
                    shapes[p + "weight"] = (h,)
                elif isinstance(m, Attention):
                    qd, kvd = m.heads * m.head_dim, m.kv_heads * m.head_dim
                    for proj, out_dim in (("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)):
                        shapes[p + proj + ".weight"] = (out_dim, h)
                        if m.qkv_bias:
                            shapes[p + proj + ".bias"] = (out_dim,)
                    shapes[p + "o_proj.weight"] = (h, qd)
                    if m.o_bias:
                        shapes[p + "o_proj.bias"] = (h,)
                else:
                    i = m.intermediate_size
                    for proj, shape in (("gate_proj", (i, h)), ("up_proj", (i, h)), ("down_proj", (h, i))):
                        shapes[p + proj + ".weight"] = shape
                        if m.bias:
                            shapes[p + proj + ".bias"] = (shape[0],)
    if arch.final_norm_eps is not None:
        shapes["model.norm.weight"] = (h,)
    if not arch.tied:
        shapes["lm_head.weight"] = (v, h)
    return shapes


# ---- the decoder ------------------------------------------------------------

def rms_norm(x, weight, eps):
    # HF Qwen2RMSNorm: x * rsqrt(mean(x^2, -1) + eps), then times the weight.
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def linear(x, params, name):
    y = x @ params[name + ".weight"].t()
    bias = params.get(name + ".bias")
    return y if bias is None else y + bias


def rope_cos_sin(head_dim, theta, seq_len):
    # HF rotary embedding: inv_freq = 1 / theta^(arange(0, d, 2) / d);
    # angles of positions 0..T-1, duplicated as cat(freqs, freqs).
    d = head_dim
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=DT) / d))
    pos = torch.arange(seq_len, dtype=DT)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


def repeat_kv(x, n_rep):
    # [N, kv_heads, T, d] -> [N, kv_heads * n_rep, T, d]; query head h reads
    # key/value head h // n_rep, as HF's repeat_kv does.
    if n_rep == 1:
        return x
    n, kvh, t, d = x.shape
    return x[:, :, None, :, :].expand(n, kvh, n_rep, t, d).reshape(n, kvh * n_rep, t, d)


def attention(m, params, prefix, x):
    n, t, _ = x.shape
    nh, kvh, d = m.heads, m.kv_heads, m.head_dim
    q = linear(x, params, prefix + "q_proj").view(n, t, nh, d).transpose(1, 2)
    k = linear(x, params, prefix + "k_proj").view(n, t, kvh, d).transpose(1, 2)
    v = linear(x, params, prefix + "v_proj").view(n, t, kvh, d).transpose(1, 2)
    cos, sin = rope_cos_sin(d, m.rope_theta, t)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    k = repeat_kv(k, nh // kvh)
    v = repeat_kv(v, nh // kvh)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    if m.causal:
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(n, t, nh * d)
    return linear(out, params, prefix + "o_proj")


def mlp(params, prefix, x):
    # SwiGLU: down(silu(gate(x)) * up(x))
    gate = linear(x, params, prefix + "gate_proj")
    up = linear(x, params, prefix + "up_proj")
    return linear(F.silu(gate) * up, params, prefix + "down_proj")


def apply_module(m, params, prefix, x):
    if isinstance(m, RMSNorm):
        return rms_norm(x, params[prefix + "weight"], m.eps)
    if isinstance(m, Attention):
        return attention(m, params, prefix, x)
    return mlp(params, prefix, x)


def forward_logits(arch, params, tokens):
    """tokens: int64 [N, T] -> logits float64 [N, T, V]."""
    h = params["model.embed_tokens.weight"][tokens]
    for layer, groups in enumerate(arch.layers):
        for residual, mods in groups:
            y = h
            for m in mods:
                y = apply_module(m, params, "model.layers.%d.%s." % (layer, m.name), y)
            h = h + y if residual else y
    if arch.final_norm_eps is not None:
        h = rms_norm(h, params["model.norm.weight"], arch.final_norm_eps)
    head = params["model.embed_tokens.weight"] if arch.tied else params["lm_head.weight"]
    return h @ head.t()


def sequence_logps(logits, targets, loss_mask):
    """Summed log-probs of `targets` where `loss_mask` is 1: [N, T, V] -> [N]."""
    logp = torch.log_softmax(logits, dim=-1)
    picked = torch.gather(logp, 2, targets.unsqueeze(-1)).squeeze(-1)
    return (picked * loss_mask).sum(-1)


# ---- the DPO losses ---------------------------------------------------------

# Per loss: its default hyper-parameters (TRL's defaults where it has them).
LOSSES = {
    "sigmoid": {"beta": 0.1, "label_smoothing": 0.0},
    "robust": {"beta": 0.1, "label_smoothing": 0.0},
    "hinge": {"beta": 0.1},
    "ipo": {"beta": 0.1},
    "sppo_hard": {"beta": 0.1},
    "nca_pair": {"beta": 0.1},
    "simpo": {"beta": 2.0, "gamma": 0.5, "label_smoothing": 0.0, "cpo_alpha": 0.0},
    "orpo": {"beta": 0.1},
    "mix": {"beta": 0.1, "label_smoothing": 0.0, "alpha": 1.0},
}

_ALIASES = {"simpo_gamma": "gamma", "rpo_alpha": "alpha"}


def loss_hparams(name, given):
    """The loss's hyper-parameters: defaults overridden by `given`."""
    if name not in LOSSES:
        raise ValueError("unknown loss %r (known: %s)" % (name, ", ".join(sorted(LOSSES))))
    hp = dict(LOSSES[name])
    for k, v in (given or {}).items():
        hp[_ALIASES.get(k, k)] = float(v)
    return hp


def pair_quantities(logps, ref_logps, loss_mask):
    """The named per-pair quantities of dpoc's loss language, as tensors [B]
    (nll_chosen_tokens is a scalar)."""
    n = logps.shape[0]
    b = n // 2
    lens = loss_mask.sum(-1)
    q = {
        "pi_chosen": logps[:b], "pi_rejected": logps[b:],
        "len_chosen": lens[:b], "len_rejected": lens[b:],
    }
    q["pi_chosen_avg"] = q["pi_chosen"] / q["len_chosen"]
    q["pi_rejected_avg"] = q["pi_rejected"] / q["len_rejected"]
    if ref_logps is None:  # reference-free: TRL's reference_free sets ref log-ratios to 0
        ref_logps = torch.zeros_like(logps)
    q["ref_chosen"], q["ref_rejected"] = ref_logps[:b], ref_logps[b:]
    q["ref_chosen_avg"] = q["ref_chosen"] / q["len_chosen"]
    q["ref_rejected_avg"] = q["ref_rejected"] / q["len_rejected"]
    q["nll_chosen"] = -q["pi_chosen_avg"]
    # TRL's NLL of chosen: cross-entropy averaged over every chosen response token
    q["nll_chosen_tokens"] = -q["pi_chosen"].sum() / q["len_chosen"].sum()
    return q


def _smoothed_sigmoid(x, ls):
    # cDPO (TRL DPOTrainer.dpo_loss, loss_type "sigmoid"):
    #   -logsigmoid(beta*logits)*(1-ls) - logsigmoid(-beta*logits)*ls
    return -F.logsigmoid(x) * (1.0 - ls) - F.logsigmoid(-x) * ls


def trl_loss(name, hp, q):
    """The scalar step loss of the loss `name`, from TRL's formulas.

    Sources (TRL, trl/trainer/dpo_trainer.py DPOTrainer.dpo_loss unless
    noted; the docs' "Loss functions" table lists the same):
      logits = (pi_c - pi_r) - (ref_c - ref_r)
      sigmoid:   -logsig(b*logits)(1-ls) - logsig(-b*logits) ls
      robust:    (-logsig(b*logits)(1-ls) + logsig(-b*logits) ls) / (1-2ls)
      hinge:     relu(1 - b*logits)
      ipo:       (logits - 1/(2b))^2, log-probs divided by the completion
                 length first (concatenated_forward, loss_type == "ipo")
      sppo_hard: (a - 0.5/b)^2 + (r + 0.5/b)^2, a = pi_c - ref_c, r = pi_r - ref_r
      nca_pair:  -logsig(rc) - 0.5 logsig(-rc) - 0.5 logsig(-rr), rc/rr = b(pi - ref)
      simpo:     CPOTrainer.cpo_loss, loss_type "simpo": length-averaged,
                 logits = (avg_c - avg_r) - gamma/b, cDPO smoothing of b*logits,
                 plus cpo_alpha * NLL(chosen) (get_batch_loss_metrics)
      orpo:      ORPOTrainer.odds_ratio_loss, length-averaged:
                 log_odds = (c - r) - (log1p(-e^c) - log1p(-e^r)),
                 loss = nll(chosen) - mean(b * logsig(log_odds))
      mix:       sigmoid + alpha * NLL(chosen) (MindRLHF's DPO + SFT mix; TRL's
                 rpo_alpha term has the same form)
    NLL(chosen) is TRL's cross-entropy over the chosen response tokens: a
    token mean over the whole batch.
    """
    beta = hp["beta"]
    logits = (q["pi_chosen"] - q["pi_rejected"]) - (q["ref_chosen"] - q["ref_rejected"])
    extra = 0.0
    if name == "sigmoid":
        losses = _smoothed_sigmoid(beta * logits, hp["label_smoothing"])
    elif name == "robust":
        ls = hp["label_smoothing"]
        losses = (-F.logsigmoid(beta * logits) * (1 - ls)
                  + F.logsigmoid(-beta * logits) * ls) / (1 - 2 * ls)
    elif name == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif name == "ipo":
        avg = (q["pi_chosen_avg"] - q["pi_rejected_avg"]) - (q["ref_chosen_avg"] - q["ref_rejected_avg"])
        losses = (avg - 1 / (2 * beta)) ** 2
    elif name == "sppo_hard":
        a = q["pi_chosen"] - q["ref_chosen"]
        b = q["pi_rejected"] - q["ref_rejected"]
        losses = (a - 0.5 / beta) ** 2 + (b + 0.5 / beta) ** 2
    elif name == "nca_pair":
        rc = beta * (q["pi_chosen"] - q["ref_chosen"])
        rr = beta * (q["pi_rejected"] - q["ref_rejected"])
        losses = -F.logsigmoid(rc) - 0.5 * F.logsigmoid(-rc) - 0.5 * F.logsigmoid(-rr)
    elif name == "simpo":
        simpo_logits = (q["pi_chosen_avg"] - q["pi_rejected_avg"]) - hp["gamma"] / beta
        losses = _smoothed_sigmoid(beta * simpo_logits, hp["label_smoothing"])
        extra = hp["cpo_alpha"] * q["nll_chosen_tokens"]
    elif name == "orpo":
        c, r = q["pi_chosen_avg"], q["pi_rejected_avg"]
        log_odds = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
        losses = -beta * F.logsigmoid(log_odds)
        extra = q["nll_chosen_tokens"]
    elif name == "mix":
        losses = _smoothed_sigmoid(beta * logits, hp["label_smoothing"])
        extra = hp["alpha"] * q["nll_chosen_tokens"]
    else:
        raise ValueError("unknown loss %r" % name)
    return losses.mean() + extra


# ---- loss expressions (dpoc's loss language, evaluated with Python's ast) ---

def _fn_min(a, b):
    return torch.minimum(torch.as_tensor(a, dtype=DT), torch.as_tensor(b, dtype=DT))


def _fn_max(a, b):
    return torch.maximum(torch.as_tensor(a, dtype=DT), torch.as_tensor(b, dtype=DT))


def _t(x):
    return torch.as_tensor(x, dtype=DT)


_FUNCS = {
    "log": lambda x: torch.log(_t(x)), "exp": lambda x: torch.exp(_t(x)),
    "log1p": lambda x: torch.log1p(_t(x)), "logsigmoid": lambda x: F.logsigmoid(_t(x)),
    "sigmoid": lambda x: torch.sigmoid(_t(x)), "softplus": lambda x: F.softplus(_t(x)),
    "relu": lambda x: torch.relu(_t(x)), "square": lambda x: _t(x) ** 2,
    "abs": lambda x: torch.abs(_t(x)), "min": _fn_min, "max": _fn_max,
    "mean": lambda x: _t(x).mean(),
}


def eval_loss_expr(lets, expr, params, q):
    """Evaluates a loss written in dpoc's language (+ - * /, unary minus,
    parentheses, numbers, names, function calls: a subset of Python's
    expression syntax) over the quantities q. lets: [(name, text)] in
    order. Returns the scalar loss: the batch mean of a per-pair result, or
    the result itself when it is a scalar."""
    import ast

    env = dict(q)
    env.update({k: float(v) for k, v in params.items()})

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise ValueError("unknown name %r in a loss expression" % node.id)
            return env[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            return a / b
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            return _FUNCS[node.func.id](*[ev(a) for a in node.args])
        raise ValueError("unsupported syntax in a loss expression: %s" % ast.dump(node))

    def parse(text):
        return ast.parse("(" + " ".join(text.split()) + ")", mode="eval")

    for name, text in lets:
        env[name] = ev(parse(text))
    out = _t(ev(parse(expr)))
    return out if out.dim() == 0 else out.mean()


# ---- one whole step ---------------------------------------------------------

def run_step(arch, loss_fn, reference, params, tokens, targets, loss_mask,
             ref_logps=None, ref_params=None):
    """Forward of the policy (and online reference), the loss, and autograd.

    params: {HF name: tensor}; copies in float64 become the leaves that
    require grad. loss_fn(q) maps the pair quantities to the scalar loss.
    reference: "precomputed" (ref_logps given), "online" (ref_params given,
    run without grad) or "none". Returns a dict with logits, logps,
    ref_logps (or None), logits_sum, loss, quantities and grads ({name:
    tensor}, zeros for a parameter the loss does not reach).
    """
    leaves = {k: v.detach().clone().to(DT).requires_grad_(True) for k, v in params.items()}
    tokens = tokens.long()
    targets = targets.long()
    mask = loss_mask.to(DT)
    logits = forward_logits(arch, leaves, tokens)
    logps = sequence_logps(logits, targets, mask)
    if reference == "precomputed":
        ref = ref_logps.to(DT)
    elif reference == "online":
        with torch.no_grad():
            frozen = {k: v.detach().to(DT) for k, v in ref_params.items()}
            ref = sequence_logps(forward_logits(arch, frozen, tokens), targets, mask)
    elif reference == "none":
        ref = None
    else:
        raise ValueError("unknown reference %r" % reference)
    q = pair_quantities(logps, ref, mask)
    loss = loss_fn(q)
    names = list(leaves)
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    out_grads = {}
    for k, g in zip(names, grads):
        out_grads[k] = torch.zeros_like(leaves[k]) if g is None else g.detach()
    logits_sum = (logits.detach().sum(-1) * mask).sum(-1)
    return {
        "logits": logits.detach(),
        "logps": logps.detach(),
        "ref_logps": None if ref is None else ref.detach(),
        "logits_sum": logits_sum,
        "loss": loss.detach(),
        "quantities": {k: v.detach() for k, v in q.items()},
        "grads": out_grads,
    }
