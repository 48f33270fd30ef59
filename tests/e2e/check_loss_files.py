#!/usr/bin/env python3
"""check_loss_files.py — every models/losses/*.yaml says what TRL's formula says.

usage: check_loss_files.py LOSSDIR

For each loss file this evaluates its `let:` and `expr:` (dpoc's loss
language, with tests/ref/dpo_ref.eval_loss_expr) and the same loss written
from TRL's formulas (dpo_ref.trl_loss) on random batches of per-pair
quantities and random hyper-parameter values (so that e.g. the label
smoothing term is exercised even though the files default it to 0), and
requires agreement to 1e-12 relative in float64. It also requires a file
for each loss the issue names. The compiled end-to-end cases then check
dpoc's lowering of these expressions. Exit 77 (skip) without torch/yaml.
"""

import os
import random
import sys

try:
    import torch
    import yaml
except ImportError as e:
    print("SKIP: python3 cannot import %s (Debian: python3-torch, python3-yaml)" % e.name)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import dpo_ref  # noqa: E402

REQUIRED = ["sigmoid", "robust", "hinge", "ipo", "sppo_hard", "nca_pair", "simpo", "orpo", "mix"]

# ranges to draw each hyper-parameter from
RANGES = {"beta": (0.05, 2.0), "label_smoothing": (0.0, 0.4), "gamma": (0.0, 1.5),
          "alpha": (0.0, 2.0), "cpo_alpha": (0.0, 1.0)}


def random_quantities(rng, pairs, with_ref):
    lens = [rng.randint(1, 30) for _ in range(2 * pairs)]
    t = max(lens)
    mask = torch.zeros(2 * pairs, t, dtype=torch.float64)
    for i, n in enumerate(lens):
        mask[i, :n] = 1
    # log-probs of about -0.1 .. -4 nats per token
    logps = torch.tensor([-n * rng.uniform(0.1, 4.0) for n in lens], dtype=torch.float64)
    ref = torch.tensor([lp + rng.uniform(-5, 5) for lp in logps.tolist()], dtype=torch.float64) if with_ref else None
    return dpo_ref.pair_quantities(logps, ref, mask)


def main(argv):
    if len(argv) != 2:
        print("usage: check_loss_files.py LOSSDIR", file=sys.stderr)
        return 2
    d = argv[1]
    files = sorted(f for f in os.listdir(d) if f.endswith(".yaml"))
    failures = 0
    seen = set()
    rng = random.Random(12345)
    for f in files:
        with open(os.path.join(d, f)) as fh:
            doc = yaml.safe_load(fh)
        name = doc.get("name", f[:-5])
        seen.add(name)
        if name not in dpo_ref.LOSSES:
            print("NOTE %s: loss %r has no TRL formula in the reference; not checked" % (f, name))
            continue
        lets = list((doc.get("let") or {}).items())
        expr = doc["expr"]
        params = doc.get("params") or {}
        unknown = [p for p in params if p not in RANGES]
        if unknown:
            print("FAIL %s: hyper-parameter(s) %s have no TRL meaning known to the check" % (f, unknown))
            failures += 1
            continue
        worst = 0.0
        for trial in range(25):
            hp = {p: (float(v) if trial == 0 else rng.uniform(*RANGES[p])) for p, v in params.items()}
            q = random_quantities(rng, rng.randint(1, 4), True)
            got = dpo_ref.eval_loss_expr(lets, expr, hp, q).item()
            want = dpo_ref.trl_loss(name, dpo_ref.loss_hparams(name, hp), q).item()
            rel = abs(got - want) / max(abs(want), 1e-300)
            worst = max(worst, rel)
            if rel > 1e-12:
                print("FAIL %s: expression gives %.17g, TRL's formula %.17g (params %s)" % (f, got, want, hp))
                failures += 1
                break
        else:
            print("OK %s matches TRL's %s formula (25 random batches, max rel %.1e)" % (f, name, worst))
    for name in REQUIRED:
        if name not in seen:
            print("FAIL no loss file for %r in %s" % (name, d))
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
