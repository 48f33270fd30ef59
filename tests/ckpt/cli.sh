#!/bin/sh
# cli.sh — `dpoc ckpt info` and `dpoc ckpt verify` on checkpoints written by
# ckpt_writer (contents in ckpt_content.c: step 8 has an f64 tensor of
# [8 % 7 + 1, 100], a u8 mask of 4000 + 8 bytes, ...): the printed state and
# table, the exit status of a good, a corrupted and a truncated checkpoint
# (messages naming the tensor), and usage errors.
# Usage: cli.sh DPOC CKPT_WRITER WORKDIR
set -u
dpoc=$1 writer=$2 work=$3
rm -rf "$work" && mkdir -p "$work" || exit 1
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_rc WANT CMD...: runs CMD with stdout/stderr in $work/out, $work/err
expect_rc() {
  want=$1; shift
  "$@" >"$work/out" 2>"$work/err"; rc=$?
  if [ "$rc" -eq "$want" ]; then ok; else bad "exit $rc (want $want): $*"; cat "$work/err"; fi
}
has() { # has FILE TEXT: FILE holds the line fragment TEXT
  if grep -qF -- "$2" "$1"; then ok; else bad "$1 lacks: $2"; sed 's/^/    | /' "$1"; fi
}

dir=$work/ckpt
"$writer" "$dir" 7 2 0 0 || { echo "FAIL: ckpt_writer"; exit 1; }
file=$dir/step-00000008.ckpt

expect_rc 0 "$dpoc" ckpt info "$dir"
has "$work/out" "file         $file"
has "$work/out" "format       dpoc checkpoint, version 1"
has "$work/out" "step         8"
has "$work/out" "epoch        0"
has "$work/out" "data_pos     24"
has "$work/out" "config_hash  0xc0ffee0012345678"
has "$work/out" "mesh         dp=1 tp=1 rank=0"
has "$work/out" 'extra_json   {"step": 8, "lr": 0.001}'
# raw bytes: 96*64*4 + 2*100*8 + 1000*4 + 64*2 + 4008 + 2 + 0
has "$work/out" "tensors      7: 34314 bytes raw,"
for t in "model.embed_tokens.weight  f32    [96,64] 24576" "optimizer.adam_m           f64    [2,100] 1600" \
         "data.order                 i32    [1000] 4000" "model.norm.weight          bf16   [64] 128" \
         "mask                       u8     [4008] 4008" "step_scalar                f16    [] 2" \
         "empty                      f32    [0,5] 0"; do
  # compare with runs of spaces squeezed after the dtype column
  pat=$(echo "$t" | sed 's/\] /] +/; s/\[/\\[/g; s/\]/\\]/g')
  if grep -Eq -- "^  $pat " "$work/out"; then ok; else bad "info lacks tensor line: $t"; fi
done

expect_rc 0 "$dpoc" ckpt info "$dir/step-00000007.ckpt"
has "$work/out" "step         7"
has "$work/out" "optimizer.adam_m           f64    [1,100]"

expect_rc 0 "$dpoc" ckpt verify "$dir"
has "$work/out" "$file: OK (step 8, 7 tensors, 34314 bytes checked)"

# flip one byte inside data.order's frame
"$dpoc" ckpt info "$dir" >"$work/info"
off=$(awk '$1 == "data.order" { print $6 }' "$work/info")
[ -n "$off" ] || { bad "no offset for data.order"; off=0; }
pos=$((off + 10))
byte=$(od -An -tu1 -j "$pos" -N1 "$file" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$file" bs=1 seek="$pos" conv=notrunc 2>/dev/null
expect_rc 1 "$dpoc" ckpt verify "$dir"
has "$work/err" "dpoc ckpt verify: $file: tensor 'data.order': checksum mismatch in the compressed bytes (stored 0x"
has "$work/out" "$file: 1 of 7 tensors are damaged"
expect_rc 0 "$dpoc" ckpt info "$dir"   # info reads no tensor data
expect_rc 0 "$dpoc" ckpt verify "$dir/step-00000007.ckpt"

# a header byte, then a truncated file
cp "$dir/step-00000007.ckpt" "$work/h.ckpt"
printf 'X' | dd of="$work/h.ckpt" bs=1 seek=20 conv=notrunc 2>/dev/null
expect_rc 1 "$dpoc" ckpt info "$work/h.ckpt"
has "$work/err" "dpoc ckpt info: $work/h.ckpt: header: checksum mismatch (stored 0x"
size=$(wc -c <"$dir/step-00000007.ckpt")
head -c $((size - 1)) "$dir/step-00000007.ckpt" >"$work/t.ckpt"
expect_rc 1 "$dpoc" ckpt verify "$work/t.ckpt"
has "$work/err" "dpoc ckpt verify: $work/t.ckpt: truncated: tensor 'empty' needs bytes"
has "$work/err" ", file has $((size - 1))"

# usage
expect_rc 2 "$dpoc" ckpt
expect_rc 2 "$dpoc" ckpt frobnicate "$dir"
has "$work/err" "dpoc ckpt: unknown command 'frobnicate'"
expect_rc 2 "$dpoc" ckpt info
has "$work/err" "dpoc ckpt info: expected a checkpoint file or directory"
expect_rc 2 "$dpoc" ckpt verify "$dir" "$dir"
expect_rc 2 "$dpoc" ckpt verify --fast "$dir"
has "$work/err" "dpoc ckpt verify: unknown option '--fast'"
expect_rc 0 "$dpoc" ckpt info --help
has "$work/out" "usage: dpoc ckpt info CKPT|DIR"
expect_rc 1 "$dpoc" ckpt info "$work/nothing"
has "$work/err" "dpoc ckpt info: $work/nothing: No such file or directory"
mkdir -p "$work/emptydir"
expect_rc 1 "$dpoc" ckpt verify "$work/emptydir"
has "$work/err" "$work/emptydir: no checkpoint here (no 'latest' file)"

echo "ckpt cli: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
