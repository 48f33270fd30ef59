#!/bin/sh
# compile_time.sh — CPU time of `dpoc compile` as the layer count grows.
#
# usage: bench/compile_time.sh [DPOC] [LAYERS...]     (default: build/tools/dpoc, 2 12 24)
#
# For each layer count it writes models/tiny.yaml with `repeat: N` into a
# temporary directory, compiles it (-q) and prints the user+system CPU
# seconds (wall time is meaningless on a shared machine), the kernel calls
# of the step (rows of the manifest's kernel table) and the distinct kernel
# functions (local symbols named fn<N>_*, or <entry>_k<N>_* / <entry>_f<N>_*
# when each call has its own function: DPOC_NO_KERNEL_DEDUP=1, or a dpoc
# from before kernel sharing). Results go in bench/RESULTS.md.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dpoc=${1:-$here/build/tools/dpoc}
[ $# -gt 0 ] && shift
layers=${*:-2 12 24}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-7s %10s %8s %10s\n' layers cpu_s calls functions
for n in $layers; do
    sed "s/^\(  - repeat:\) 2$/\1 $n/" "$here/models/tiny.yaml" > "$tmp/m$n.yaml"
    grep -q "repeat: $n\$" "$tmp/m$n.yaml" || { echo "models/tiny.yaml has no '- repeat: 2' line" >&2; exit 1; }
    /usr/bin/time -f '%U %S' -o "$tmp/time" "$dpoc" compile "$tmp/m$n.yaml" -o "$tmp/m$n.so" -q
    cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/time")
    calls=$(strings -n 16 "$tmp/m$n.so" | grep -o '"entry":"[a-z_]*","op"' | wc -l)
    funcs=$(nm "$tmp/m$n.so" | grep -cE ' t (fn[0-9]+_|(train_step|logps|optimizer_step)_[kf][0-9]+_)')
    printf '%-7s %10s %8s %10s\n' "$n" "$cpu" "$calls" "$funcs"
done
