#!/bin/sh
# run_sim.sh DPOC SIM_MESH MODEL.yaml WORKDIR LOSSES_DIR MESH...
# The model's `pairs` P is the per-dp-rank micro-batch of a dp=2 mesh; the
# 1x1 reference step is compiled once with the global micro-batch 2P, and
# each mesh (dp 1 or 2) with pairs 2P/dp, so every mesh step computes the
# same global batch. sim_mesh compares each with the reference.
# DPOC_SIM_FLAGS: extra `dpoc compile` options for every step (e.g. --attn-fused).
set -eu
flags=${DPOC_SIM_FLAGS:-}
dpoc=$1 sim=$2 yaml=$3 work=$4 losses=$5
shift 5
rm -rf "$work" && mkdir -p "$work"
cp -r "$losses" "$work/losses"
pairs=$(sed -n 's/^ *pairs: *\([0-9]*\).*/\1/p' "$yaml")
with_pairs() { sed "s/^\( *pairs: *\)[0-9]*/\1$1/" "$yaml" > "$2"; }
with_pairs $((2 * pairs)) "$work/ref.yaml"
"$dpoc" compile "$work/ref.yaml" -o "$work/ref.so" -q $flags
for mesh in "$@"; do
    dp=$(echo "$mesh" | sed -n 's/.*dp=\([0-9]*\).*/\1/p')
    [ -n "$dp" ] || dp=1
    [ $((2 * pairs % dp)) -eq 0 ] || { echo "run_sim.sh: dp=$dp does not divide $((2 * pairs)) pairs" >&2; exit 2; }
    tag=$(echo "$mesh" | tr '=,' '__')
    with_pairs $((2 * pairs / dp)) "$work/$tag.yaml"
    "$dpoc" compile "$work/$tag.yaml" --mesh "$mesh" -o "$work/$tag.so" -q $flags
    "$sim" "$work/ref.so" "$work/$tag.so"
done
