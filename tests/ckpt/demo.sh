#!/bin/sh
# demo.sh — the demo assets of models/demo/: the shipped JSONL equals what
# `dpoc demo-data` generates (so it is reproducible), every pair follows the
# documented rules (check_demo_data.py), demo.yaml compiles, and the data
# prepared with the demo tokenizer (tests/data/tok/bytes, template none)
# fits demo.yaml: the same vocabulary size, every sequence within seq_len.
# Usage: demo.sh DPOC PYTHON SOURCE_DIR WORKDIR
set -u
dpoc=$1 py=$2 src=$3 work=$4
demo=$src/models/demo
rm -rf "$work" && mkdir -p "$work" || exit 1
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$dpoc" demo-data -o "$work/gen" >/dev/null || bad "dpoc demo-data failed"
for f in train.jsonl eval.jsonl; do
  cmp -s "$work/gen/$f" "$demo/$f" || bad "models/demo/$f differs from 'dpoc demo-data' output"
done
"$py" "$src/tests/ckpt/check_demo_data.py" "$demo" || bad "check_demo_data.py"

"$dpoc" compile "$demo/demo.yaml" -o "$work/demo.so" -q || bad "demo.yaml does not compile"

vocab=$(sed -n 's/^vocab_size: *\([0-9]*\).*/\1/p' "$demo/demo.yaml")
seq=$(sed -n 's/^ *seq_len: *\([0-9]*\).*/\1/p' "$demo/demo.yaml")
for f in train eval; do
  "$dpoc" data prepare --tokenizer "$src/tests/data/tok/bytes" --template none "$demo/$f.jsonl" \
    -o "$work/$f.rec" >/dev/null || { bad "prepare $f.jsonl"; continue; }
  "$dpoc" data stats "$work/$f.rec" >"$work/$f.stats" || bad "stats $f.rec"
  v=$(sed -n 's/^vocab size *\([0-9]*\)/\1/p' "$work/$f.stats")
  [ "$v" = "$vocab" ] || bad "$f.rec: vocabulary of $v tokens, demo.yaml has vocab_size $vocab"
  for side in chosen rejected; do
    m=$(sed -n "s/^$side length .*max \([0-9]*\)/\1/p" "$work/$f.stats")
    [ -n "$m" ] && [ "$m" -le "$seq" ] || bad "$f.rec: $side sequences up to ${m:-?} tokens, seq_len is $seq"
  done
done
[ "$fails" -eq 0 ] && echo "demo assets: OK"
[ "$fails" -eq 0 ]
