#!/usr/bin/python3
"""torch_step.py — the same DPO step as a compiled step.so, in PyTorch on the CPU.

usage: /usr/bin/python3 bench/torch_step.py STEP.so [--threads N] [--steps N] [--warmup N] [--optimizer]

How it works: the step.so's manifest (the exported `dpoc_manifest`, read with
ctypes; its JSON is described in docs/step-abi.md) gives the model and loss
configuration and the batch shape (pairs, seq_len). The decoder is rebuilt
from that configuration with the independent reference of the test suite
(tests/ref/dpo_ref.py, through tests/e2e/compare.py's arch_from_config, both
loaded by path), switched to float32. One step is what dpoc's train_step
does: the policy forward over 2 * pairs sequences, summed masked log-probs,
the DPO loss of the configuration (TRL's formula) against precomputed
reference log-probs, and the backward to every parameter
(torch.autograd.grad). Parameters, tokens and mask are a fixed-seed random
fill (mask: the second half of every row, as bench/step_bench.c does);
ref_logps is the policy's own log-probs minus 1. torch.set_num_threads sets
the threads. After --warmup untimed steps, --steps steps are timed one by
one and the median is reported with tokens/s (2 * pairs * seq_len per step)
and the peak RSS of the process (ru_maxrss; it includes the ~0.3 GiB that
importing torch costs, printed separately). The last line is
`RESULT key=value ...` for bench/run.sh.

With --optimizer a step is a whole training step, as a PyTorch training
loop writes it: zero_grad(set_to_none=True), the forward, loss.backward()
into the parameters' .grad, and torch.optim.AdamW's step with its defaults
(the for-loop implementation of this torch; lr 1e-6, weight decay 0.01 on
every tensor) — the counterpart of step_bench --optimizer. The moments are
allocated by the first (warm-up) step, so the peak RSS holds them, as a
training run's does. The two parts' medians are printed too.
"""

import argparse
import ctypes
import json
import os
import resource
import statistics
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))

import torch  # noqa: E402

import compare  # noqa: E402
import dpo_ref  # noqa: E402


class Manifest(ctypes.Structure):
    # the leading fields of DpocManifest (runtime/dpoc_abi.h)
    _fields_ = [("magic", ctypes.c_uint32), ("abi_version", ctypes.c_uint32),
                ("target_cpu", ctypes.c_char_p), ("target_features", ctypes.c_char_p),
                ("mesh_dp", ctypes.c_int32), ("mesh_tp", ctypes.c_int32), ("json", ctypes.c_char_p)]


def read_manifest(path):
    lib = ctypes.CDLL(os.path.abspath(path))
    m = Manifest.in_dll(lib, "dpoc_manifest")
    if m.magic != 0x434F5044:
        raise SystemExit("torch_step: %s: no dpoc manifest" % path)
    return json.loads(m.json.decode())


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--optimizer", action="store_true")
    a = ap.parse_args()
    rss_import = rss_mib()
    torch.set_num_threads(a.threads)
    cfg = read_manifest(a.step)["config"]
    if cfg["reference"] != "precomputed":
        raise SystemExit("torch_step: only `reference: precomputed` steps are benchmarked")
    dpo_ref.DT = torch.float32  # the reference is float64 for the tests; the bench runs dpoc's dtype
    arch = compare.arch_from_config(cfg)
    loss = cfg["loss"]
    name = loss.get("use") or loss.get("name")
    if name not in dpo_ref.LOSSES:
        raise SystemExit("torch_step: loss %r is not one of TRL's" % name)
    hp = dpo_ref.loss_hparams(name, loss.get("params", {}))
    pairs, T = int(cfg["pairs"]), int(cfg["seq_len"])
    n = 2 * pairs
    g = torch.Generator().manual_seed(1)
    params = {}
    for pname, shape in dpo_ref.param_shapes(arch).items():
        if len(shape) == 1 and "norm" in pname:
            t = torch.ones(shape)
        else:
            bound = (3.0 / shape[-1]) ** 0.5 if len(shape) >= 2 else 0.02
            t = (torch.rand(shape, generator=g) * 2 - 1) * bound
        params[pname] = t.requires_grad_(True)
    V = arch.vocab_size
    tokens = torch.randint(0, V, (n, T), generator=g)
    targets = torch.randint(0, V, (n, T), generator=g)
    mask = torch.zeros(n, T)
    mask[:, T // 2:T - 1] = 1.0
    with torch.no_grad():
        ref = dpo_ref.sequence_logps(dpo_ref.forward_logits(arch, params, tokens), targets, mask) - 1.0
    names = list(params)
    leaves = [params[k] for k in names]

    def loss_value():
        logits = dpo_ref.forward_logits(arch, params, tokens)
        logps = dpo_ref.sequence_logps(logits, targets, mask)
        q = dpo_ref.pair_quantities(logps, ref, mask)
        return dpo_ref.trl_loss(name, hp, q)

    opt = torch.optim.AdamW(leaves, lr=1e-6, weight_decay=0.01) if a.optimizer else None

    def step():
        """one step; returns the seconds its optimizer update took"""
        if opt is None:
            torch.autograd.grad(loss_value(), leaves, allow_unused=True)
            return 0.0
        opt.zero_grad(set_to_none=True)
        loss_value().backward()
        t = time.perf_counter()
        opt.step()
        return time.perf_counter() - t

    for _ in range(a.warmup):
        step()
    times, opt_times = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        opt_times.append(step())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    med_opt = statistics.median(opt_times)
    tokens_per_step = n * T
    peak = rss_mib()
    nparams = sum(p.numel() for p in leaves)
    print("torch %s (%s): %d threads, %d params, %d tokens/step, torch %s"
          % (cfg.get("name"), a.step, a.threads, nparams, tokens_per_step, torch.__version__))
    print("  median %.4f s/step (min %.4f, max %.4f, %d steps after %d warm-up)"
          % (med, min(times), max(times), a.steps, a.warmup))
    if opt is not None:
        print("  of which forward + backward %.4f s, AdamW step %.4f s (medians)"
              % (statistics.median(t - o for t, o in zip(times, opt_times)), med_opt))
    print("  %.1f tokens/s, peak RSS %.1f MiB (%.1f MiB after importing torch)"
          % (tokens_per_step / med, peak, rss_import))
    print("RESULT threads=%d tokens=%d sec=%.6f tok_s=%.2f rss_mib=%.1f rss_import_mib=%.1f optimizer=%d sec_opt=%.6f"
          % (a.threads, tokens_per_step, med, tokens_per_step / med, peak, rss_import, opt is not None, med_opt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
