#!/usr/bin/env python3
"""zoo_test.py — the model zoo, list-models, copy-model and import-config.

Parameter counts are computed here by hand from the config.json numbers of
tests/zoo/configs/ (copies of the published Hugging Face files):
  embedding V*H (+ V*H again when the head is untied) + final norm H
  + per layer: 2 norms 2H, q H*h*d, k and v 2*H*kv*d, o h*d*H,
    q/k/v bias h*d + 2*kv*d (Qwen2, Llama attention_bias, InternLM2 bias),
    o bias H (Llama attention_bias / InternLM2 bias), SwiGLU 3*H*I
    (+ 2I + H with Llama mlp_bias)
and compared with the count `dpoc compile` prints in its memory plan, for
the shipped zoo YAMLs and for the YAMLs import-config writes (round trip:
both must agree). Qwen2-0.5B must also be exactly 494,032,768.
"""
import json, pathlib, re, shutil, subprocess, sys

dpoc, root, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
configs = root / "tests" / "zoo" / "configs"
results = []

ZOO = ["qwen2-0.5b", "qwen2-1.5b", "qwen2-7b", "internlm2-chat-1.8b", "llama-3-8b"]
FAMILY = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama", "InternLM2ForCausalLM": "internlm2"}


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def run(*args):
    return subprocess.run([dpoc, *map(str, args)], capture_output=True, text=True)


def hand_count(c):
    V, H, L, h = c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    kv, I = c.get("num_key_value_heads", h), c["intermediate_size"]
    d = H // h
    arch = c["architectures"][0]
    qkv_bias = arch == "Qwen2ForCausalLM" or c.get("attention_bias", False) or c.get("bias", False)
    o_bias = arch != "Qwen2ForCausalLM" and (c.get("attention_bias", False) or c.get("bias", False))
    mlp_bias = c.get("mlp_bias", False)
    layer = 2 * H + H * h * d + 2 * H * kv * d + h * d * H + 3 * H * I
    layer += (h * d + 2 * kv * d) * qkv_bias + H * o_bias + (2 * I + H) * mlp_bias
    return V * H * (1 if c.get("tie_word_embeddings", False) else 2) + L * layer + H


def compiled_count(yaml, tag, plan_only=False, generate=True):
    """The parameter count of the memory plan; a full compile unless plan_only
    (the same front end and passes, no code generation); without the
    generation entries unless generate."""
    so = work / (tag + ".so")
    more = [] if generate else ["--no-generate"]
    p = run("compile", yaml, "--plan-only") if plan_only else run("compile", yaml, "-o", so, *more)
    m = re.search(r"memory plan \((\d+) trainable parameters\)", p.stdout)
    plan = all(k in p.stdout for k in ("parameters", "gradients", "optimizer state", "peak activations", "total"))
    so.unlink(missing_ok=True)
    if p.returncode != 0 or not m or not plan:
        print(p.stdout, p.stderr)
        return None
    return int(m.group(1))


cfg = {n: json.loads((configs / (n + ".json")).read_text()) for n in ZOO}

# 1. the zoo: planned counts equal the hand formula. Qwen2-0.5B goes through code
#    generation too; the others differ from it only in sizes and flags that the tiny
#    models of cli_models_compile cover, and a full compile of each costs CI minutes
#    under ASan.
FULL = ("qwen2-0.5b",)
zoo_counts = {}
for n in ZOO:
    got = compiled_count(root / "models" / "zoo" / (n + ".yaml"), "zoo-" + n, plan_only=n not in FULL)
    zoo_counts[n] = got
    how = "compiles" if n in FULL else "plans"
    check(f"zoo {n}: {how}, prints its memory plan, {hand_count(cfg[n]):,} parameters", got == hand_count(cfg[n]),
          f"compile printed {got}")
check("Qwen2-0.5B has exactly 494,032,768 parameters", zoo_counts["qwen2-0.5b"] == 494032768 == hand_count(cfg["qwen2-0.5b"]))

# 2. list-models
p = run("list-models")
check("list-models exits 0", p.returncode == 0, p.stderr)
rows = {}
for line in p.stdout.splitlines()[1:]:
    f = line.split(None, 3)
    if len(f) >= 3:
        rows[f[0]] = f
for n in ZOO:
    r = rows.get(n)
    want_fam = FAMILY[cfg[n]["architectures"][0]]
    check(f"list-models: {n} ({want_fam}, {hand_count(cfg[n]):,})",
          r and r[1] == want_fam and int(r[2].replace(",", "")) == hand_count(cfg[n]) and len(r) == 4, r)
shipped = sorted(q.stem for q in list((root / "models").glob("*.yaml")) + list((root / "models").glob("*/*.yaml"))
                 if q.parent.name != "losses")
check("list-models lists every shipped model and no loss", sorted(rows) == shipped, f"{sorted(rows)} vs {shipped}")

# 3. copy-model
dest = work / "copied"
dest.mkdir()
p = run("copy-model", "qwen2-0.5b", dest)
out = dest / "qwen2-0.5b.yaml"
check("copy-model writes the exact shipped bytes", p.returncode == 0 and out.read_bytes() ==
      (root / "models/zoo/qwen2-0.5b.yaml").read_bytes(), p.stderr)
check("copy-model writes the loss the model uses, exact bytes", (dest / "losses/sigmoid.yaml").read_bytes() ==
      (root / "models/losses/sigmoid.yaml").read_bytes())
out.write_text("# changed\n")
p = run("copy-model", "qwen2-0.5b", dest)
check("copy-model refuses to overwrite", p.returncode != 0 and "already exists" in p.stderr and "--force" in p.stderr
      and out.read_text() == "# changed\n", p.stderr)
p = run("copy-model", "--force", "qwen2-0.5b", dest)
check("copy-model --force overwrites", p.returncode == 0 and out.read_bytes() ==
      (root / "models/zoo/qwen2-0.5b.yaml").read_bytes(), p.stderr)
p = run("copy-model", "qwen3-72b", dest)
check("copy-model: unknown name is refused, listing the known ones", p.returncode != 0 and "unknown model 'qwen3-72b'" in p.stderr
      and all(n in p.stderr for n in ZOO + ["tiny"]), p.stderr)
p = run("copy-model", "tiny", work / "no-such-dir")
check("copy-model: a missing directory is refused", p.returncode != 0 and "not a directory" in p.stderr, p.stderr)
p = run("copy-model")
check("copy-model: a missing name is a usage error", p.returncode == 2, p.returncode)
# the copy loads from its own directory: tiny + losses/sigmoid.yaml
p = run("copy-model", "tiny", dest)
check("copy-model tiny", p.returncode == 0, p.stderr)
check("the copied tiny model compiles", compiled_count(dest / "tiny.yaml", "copied-tiny") is not None)
# ...and the loss it loads is the copied file, not the one in the source tree
(dest / "losses/sigmoid.yaml").write_text("name: sigmoid\nparams: {beta: 0.1, label_smoothing: 0.0}\nexpr: nonsense_name\n")
p = run("compile", dest / "tiny.yaml", "-o", work / "x.so")
check("the copy uses DIR/losses/ first (a broken copy of the loss breaks it)", p.returncode != 0 and "nonsense_name" in p.stderr,
      p.stderr)
p = run("copy-model", "tiny", dest, "--force")
check("copy-model --force restores the loss file", p.returncode == 0 and (dest / "losses/sigmoid.yaml").read_bytes() ==
      (root / "models/losses/sigmoid.yaml").read_bytes(), p.stderr)

# 4. import-config: the zoo configs round trip to the zoo counts
for n in ZOO:
    y = work / ("imported-" + n + ".yaml")
    p = run("import-config", configs / (n + ".json"), "--name", n)
    y.write_text(p.stdout)
    got = compiled_count(y, "imp-" + n, plan_only=True) if p.returncode == 0 else None
    check(f"import-config {n}: {hand_count(cfg[n]):,} parameters, as the shipped zoo YAML",
          got == hand_count(cfg[n]) == zoo_counts[n], f"{p.stderr} got {got}")
    check(f"import-config {n}: the training shape is 1 x 512", "train: {pairs: 1, seq_len: 512}" in p.stdout)

# tiny configs of the three families; every shipped loss (inlined) on one of them. A loss
# changes train_step only, so these compile without the generation entries (each family's
# are compiled by cli_models_compile and run by the predict tests): ~1.5 s less per compile.
all_losses = sorted(q.stem for q in (root / "models/losses").glob("*.yaml"))
for t in ["tiny-qwen2", "tiny-llama", "tiny-internlm2"]:
    c = json.loads((configs / (t + ".json")).read_text())
    for loss in all_losses if t == "tiny-qwen2" else ["sigmoid"]:
        p = run("import-config", configs / (t + ".json"), "--loss", loss, "--pairs", 2, "--seq-len", 8, "--name", t)
        y = work / f"{t}-{loss}.yaml"
        y.write_text(p.stdout)
        got = compiled_count(y, f"{t}-{loss}", generate=False) if p.returncode == 0 else None
        check(f"import-config {t} --loss {loss}: compiles with {hand_count(c):,} parameters", got == hand_count(c),
              f"{p.stderr} got {got}")
p = run("import-config", configs / "tiny-llama.json", "--reference", "online", "--pairs", 3, "--seq-len", 5)
check("import-config --reference/--pairs/--seq-len reach the YAML", p.returncode == 0 and "reference: online" in p.stdout
      and "train: {pairs: 3, seq_len: 5}" in p.stdout, p.stderr)
p = run("import-config", configs / "tiny-internlm2.json")
check("import-config notes an unmodelled rope_scaling", p.returncode == 0 and "rope_scaling" in p.stderr
      and "# Not modelled: rope_scaling" in p.stdout, p.stderr)


# 5. import-config errors: each names the field, exits non-zero, prints no YAML
def bad(name, edit, want):
    c = json.loads((configs / "tiny-qwen2.json").read_text())
    edit(c)
    f = work / "bad.json"
    f.write_text(json.dumps(c))
    p = run("import-config", f)
    check(f"import-config refuses {name}", p.returncode != 0 and want in p.stderr and p.stdout == "", p.stderr)


bad("an unknown architecture", lambda c: c.update(architectures=["GPT2LMHeadModel"]), "unsupported architecture 'GPT2LMHeadModel'")
bad("a missing architectures", lambda c: c.pop("architectures"), "'architectures'")
for k in ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "rms_norm_eps"]:
    bad(f"a missing {k}", lambda c, k=k: c.pop(k), f"missing field '{k}'")
bad("a string where a number belongs", lambda c: c.update(hidden_size="64"), "field 'hidden_size' must be a positive integer")
bad("a fractional layer count", lambda c: c.update(num_hidden_layers=2.5), "'num_hidden_layers' must be a positive integer")
bad("kv heads not dividing heads", lambda c: c.update(num_key_value_heads=3), "'num_key_value_heads' (3) does not divide")
bad("heads not dividing hidden", lambda c: c.update(num_attention_heads=5), "'num_attention_heads' (5) does not divide")
bad("another activation", lambda c: c.update(hidden_act="gelu"), "'hidden_act'")
bad("sliding-window attention", lambda c: c.update(use_sliding_window=True), "'use_sliding_window'")
bad("a head_dim other than hidden/heads", lambda c: c.update(head_dim=32), "'head_dim' (32)")
bad("a non-boolean tie_word_embeddings", lambda c: c.update(tie_word_embeddings=1), "'tie_word_embeddings' must be true or false")
(work / "broken.json").write_text('{"architectures": ["Qwen2ForCausalLM"], ')
p = run("import-config", work / "broken.json")
check("import-config refuses broken JSON", p.returncode != 0 and "not valid JSON" in p.stderr and p.stdout == "", p.stderr)
p = run("import-config", work / "missing.json")
check("import-config: a missing file is named", p.returncode != 0 and "missing.json" in p.stderr, p.stderr)
p = run("import-config", configs / "tiny-qwen2.json", "--loss", "nope")
check("import-config: unknown loss lists the shipped ones", p.returncode == 2 and "unknown loss 'nope'" in p.stderr
      and "sigmoid" in p.stderr and "orpo" in p.stderr, p.stderr)
p = run("import-config", configs / "tiny-qwen2.json", "--reference", "sometimes")
check("import-config: bad --reference", p.returncode == 2 and "--reference" in p.stderr, p.stderr)
p = run("import-config", configs / "tiny-qwen2.json", "--pairs", "0")
check("import-config: bad --pairs", p.returncode == 2 and "--pairs" in p.stderr, p.stderr)

print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) and results else 1)
