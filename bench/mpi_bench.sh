#!/bin/sh
# mpi_bench.sh — dporun on several processes against one (issue 7), on bench/models/small.yaml.
#
# usage: bench/mpi_bench.sh BUILD_DIR [STEPS] [WORK_DIR]
#   BUILD_DIR holds tools/dporun and tests/dporun/dporun_mkrec (a Release build); DPOC=path/to/dpoc
#   overrides BUILD_DIR/tools/dpoc (the compiler's build type does not change the step).
# Compiles three steps of the same global micro-batch (2 pairs x 512 tokens): one process (pairs 2),
# dp=2 (1 pair per rank) and tp=2 (pairs 2), and trains STEPS (default 12) steps of each on synthetic
# pairs (reference log-probs made up by mkrec, --force-ref): one process with 2 threads, and the two meshes
# with 1 thread per rank under mpirun. Prints per configuration the loop time per step, sequence
# positions per second (2 x pairs x 512 per step: the step computes every position whatever the pairs'
# lengths), and the time rank 0 spent inside collectives per step (dporun's own count).
set -eu
B=$(cd "$1" && pwd)
N=${2:-12}
W=${3:-/tmp/dpoc-mpi-bench}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DPOC=${DPOC:-$B/tools/dpoc}
mkdir -p "$W"
cd "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
sed 's/pairs: 1/pairs: 2/' "$SRC/bench/models/small.yaml" > small_p2.yaml
[ -f s1.so ] || "$DPOC" compile small_p2.yaml -o s1.so -q
[ -f sdp2.so ] || "$DPOC" compile "$SRC/bench/models/small.yaml" --mesh dp=2,tp=1 -o sdp2.so -q
[ -f stp2.so ] || "$DPOC" compile small_p2.yaml --mesh dp=1,tp=2 -o stp2.so -q
"$B/tests/dporun/dporun_mkrec" pairs.rec --pairs 256 --seed 1 --vocab 8192 --ref 1234 > /dev/null
COMMON="--data pairs.rec --force-ref --steps $N --lr 1e-4 --no-progress --log-every 1000000"
run() { # id, label, command...
    id=$1
    name=$2
    shift 2
    "$@" $COMMON --metrics "$id.jsonl" > "$id.log" 2>&1
    loop=$(sed -n 's/.*done: [0-9]* steps in \([0-9.]*\) s.*/\1/p' "$id.log")
    comm=$(sed -n 's/.*spent \([0-9.]*\) s in.*/\1/p' "$id.log")
    awk -v n="$N" -v loop="$loop" -v comm="${comm:-0}" -v name="$name" 'BEGIN {
        printf "%-28s %8.1f ms/step %9.0f positions/s %8.1f ms/step in collectives\n",
            name, 1000 * loop / n, 2 * 2 * 512 * n / loop, 1000 * comm / n }'
}
run one "1 rank x 2 threads" "$B/tools/dporun" s1.so --threads 2
run dp2 "dp=2 x 1 thread" mpirun -np 2 --oversubscribe "$B/tools/dporun" sdp2.so --threads 1
run tp2 "tp=2 x 1 thread" mpirun -np 2 --oversubscribe "$B/tools/dporun" stp2.so --threads 1
