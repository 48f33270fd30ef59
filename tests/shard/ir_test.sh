#!/bin/sh
# ir_test.sh DPOC SHARD_DIR WORKDIR — the shard pass seen through IR dumps.
# The expected counts are worked out by hand from models/tiny.yaml (2
# layers, tied embedding, q/k/v biases, 26 trainable tensors):
#  - logps at tp=2: all_reduce over tp after the embedding gather (1), after
#    each row-parallel o_proj and down_proj (2 x 2), for the log-sum-exp over
#    the split vocabulary (1) and the picked target logit (1) = 7; one
#    all_gather of the row maxima; nothing over dp.
#  - train_step at dp=2: one all_reduce over dp for the loss and one per
#    gradient = 27; nothing over tp; logps at dp=2: no collective at all.
#  - 1x1 (no mesh, or dp=1,tp=1): the same IR as without --mesh.
set -u
dpoc=$1 dir=$2 work=$3
m=$dir/../../models/tiny.yaml
rm -rf "$work" && mkdir -p "$work"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
graph() { awk -v g="; $2" '$0 == g {f = 1; next} /^; / {f = 0} f' "$1"; }
count() { grep -c -- "$1" | tr -d ' '; }
check_count() { # FILE GRAPH PATTERN WANT
    got=$(graph "$1" "$2" | count "$3")
    [ "$got" = "$4" ] || fail "$1 $2: $4 lines with '$3' expected, found $got"
}
"$dpoc" ir "$m" --mesh tp=2 > "$work/tp2.ir" || fail "dpoc ir --mesh tp=2"
"$dpoc" ir "$m" --mesh dp=2 > "$work/dp2.ir" || fail "dpoc ir --mesh dp=2"
"$dpoc" ir "$m" --mesh dp=2,tp=2 > "$work/dp2tp2.ir" || fail "dpoc ir --mesh dp=2,tp=2"
check_count "$work/tp2.ir" logps "= all_reduce .* {axis=tp}" 7
check_count "$work/tp2.ir" logps "= all_gather .* {axis=tp, dim=0, ranks=2}" 1
check_count "$work/tp2.ir" logps "axis=dp" 0
check_count "$work/dp2.ir" train_step "= all_reduce .* {axis=dp}" 27
check_count "$work/dp2.ir" train_step "axis=tp" 0
check_count "$work/dp2.ir" train_step "= all_gather" 0
check_count "$work/dp2.ir" logps "= all_reduce\|= all_gather\|= axis_index" 0

# shardings and local shapes in the dump (dp=2,tp=2, 2 pairs per dp rank)
tr=$work/dp2tp2.train.ir
graph "$work/dp2tp2.ir" train_step > "$tr"
has() { grep -q -- "$1" "$tr" || fail "dp=2,tp=2 train_step has no line matching: $1"; }
has '^%[0-9]*: i32\[4,16\] = input "tokens" @\[dp,_\]'
has '^%[0-9]*: f32\[128,64\] = param "model.embed_tokens.weight" {role=trainable} @\[tp,_\]'
has '^%[0-9]*: f32\[32,64\] = param "model.layers.0.self_attn.q_proj.weight" {role=trainable} @\[tp,_\]'
has '^%[0-9]*: f32\[32\] = param "model.layers.0.self_attn.q_proj.bias" {role=trainable} @\[tp\]'
has '^%[0-9]*: f32\[64,32\] = param "model.layers.0.self_attn.o_proj.weight" {role=trainable} @\[_,tp\]'
has '^%[0-9]*: f32\[64,64\] = param "model.layers.1.mlp.down_proj.weight" {role=trainable} @\[_,tp\]'
has '^%[0-9]*: f32\[64\] = param "model.norm.weight" {role=trainable}   #'
has '^%[0-9]*: f32\[64,64\] = matmul %[0-9]*, %[0-9]* {ta=0, tb=1} @\[dp,_\] partial(tp)'
has '^%[0-9]*: i32\[\] = axis_index {axis=tp}'
has '^output grad "model.layers.0.self_attn.o_proj.weight" = %'

# the sharded IR parses back and prints the same (dce finds nothing to drop)
"$dpoc" opt "$tr" --passes=dce > "$work/rt.ir" || fail "dpoc opt on the sharded IR"
cmp -s "$tr" "$work/rt.ir" || fail "the sharded IR does not round-trip (diff $tr $work/rt.ir)"

# no mesh = 1x1
"$dpoc" ir "$m" > "$work/plain.ir" && "$dpoc" ir "$m" --mesh dp=1,tp=1 > "$work/one.ir" || fail "dpoc ir 1x1"
cmp -s "$work/plain.ir" "$work/one.ir" || fail "--mesh dp=1,tp=1 changes the IR"
[ "$(count '= all_reduce\|= all_gather\|= axis_index\|@\[' < "$work/plain.ir")" = 0 ] || fail "the 1x1 IR has collectives or shardings"

# the pass run from text (dpoc opt) on the 1x1 train_step gives the same
# IR as dpoc ir --mesh (fusion off in both), and names what tp=3 cannot split
"$dpoc" ir "$m" --disable-pass fuse > "$work/plain_nofuse.ir" || fail "dpoc ir --disable-pass fuse"
graph "$work/plain_nofuse.ir" train_step > "$work/global.ir"
"$dpoc" ir "$m" --mesh tp=2 --disable-pass fuse > "$work/tp2_nofuse.ir" || fail "dpoc ir --mesh tp=2 --disable-pass fuse"
graph "$work/tp2_nofuse.ir" train_step > "$work/tp2_nofuse.train.ir"
"$dpoc" opt "$work/global.ir" --passes=shard --mesh tp=2 > "$work/opt_tp2.ir" || fail "dpoc opt --passes=shard --mesh tp=2"
cmp -s "$work/opt_tp2.ir" "$work/tp2_nofuse.train.ir" || fail "dpoc opt --passes=shard differs from dpoc ir --mesh tp=2"
got=$("$dpoc" opt "$work/global.ir" --passes=shard --mesh tp=3 2>&1 >/dev/null)
want="dpoc opt: shard: %4 (param) at $m:11:5: parameter 'model.embed_tokens.weight' dim 0 has size 256, which tp=3 does not divide"
[ "$got" = "$want" ] || fail "dpoc opt --mesh tp=3 said: $got (expected: $want)"
"$dpoc" opt "$work/opt_tp2.ir" --passes=shard --mesh tp=2 > /dev/null 2> "$work/twice.err" && fail "sharding twice was accepted"
grep -q "the graph is already sharded" "$work/twice.err" || fail "sharding twice: $(cat "$work/twice.err")"

[ "$fails" -eq 0 ] && echo "OK shard IR"
[ "$fails" -eq 0 ]
