#!/usr/bin/env bash
# demo.sh — the README's first command: install what is missing, build, and
# show DPO working end to end on the bundled demo (models/demo/): prepare
# the synthetic preference data with the bundled byte-level tokenizer,
# compile the demo model into a step.so, train it with dporun while
# evaluating on held-out pairs, and verify the checkpoint it wrote.
# Everything lands in out/demo/. Extra arguments go to dporun.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"

bin=$root/build/tools
out=$root/out/demo
tok=$root/tests/data/tok/bytes
rm -rf "$out"
mkdir -p "$out"
echo "== preparing data"
"$bin/dpoc" data prepare --tokenizer "$tok" --template none "$root/models/demo/train.jsonl" -o "$out/train.rec"
"$bin/dpoc" data prepare --tokenizer "$tok" --template none "$root/models/demo/eval.jsonl" -o "$out/eval.rec"
echo "== compiling models/demo/demo.yaml"
"$bin/dpoc" compile "$root/models/demo/demo.yaml" -o "$out/demo.so"
echo "== training (held-out metrics every 25 steps)"
"$bin/dporun" "$out/demo.so" --data "$out/train.rec" --eval-data "$out/eval.rec" \
    --eval-first --eval-every 25 --steps 100 --lr 1e-3 \
    --metrics "$out/metrics.jsonl" --save "$out/ckpt" "$@"
"$bin/dpoc" ckpt verify "$out/ckpt"
echo "== held-out metrics (out/demo/metrics.jsonl):"
grep '"eval/loss"' "$out/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*"eval\/rewards\/accuracies":([^,]+).*"eval\/rewards\/margins":([^,}]+).*/  step \1: rewards\/accuracies \2  rewards\/margins \3/'
