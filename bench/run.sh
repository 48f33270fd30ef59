#!/usr/bin/env bash
# run.sh — issue 6's benchmarks in one run: GEMM vs OpenBLAS, the DPO step vs
# PyTorch, peak RSS, compile time.
#
# usage: bench/run.sh [--full] [BUILD_DIR] [OUT_DIR]     (defaults: build-bench, /tmp/dpoc-bench)
#
# Configures BUILD_DIR as a Release build and builds dpoc, step_bench and
# (when OpenBLAS is found) gemm_bench. Models, each one pair of 512 tokens:
#   tiny   bench/models/tiny.yaml    (V1024 H64 L2)
#   small  bench/models/small.yaml   (V8192 H512 L8, 26.75M parameters)
#   0.5b   models/zoo/qwen2-0.5b.yaml (the Qwen2-0.5B architecture) — only with
#          --full: its PyTorch step takes ~47 s and ~14 GiB, dpoc's its plan
#          (check `free -g` first: nothing else big should run).
# For each model: (d) the wall time of `dpoc compile` and its memory plan;
# (b) for each thread count, bench/step_bench (dpoc's train_step on the
# runtime's pinned pool) and bench/torch_step.py (the same step in PyTorch,
# /usr/bin/python3, torch.set_num_threads and OMP/OPENBLAS_NUM_THREADS set
# to the count): median s/step, tokens/s, GFLOP/s, MFU and the ratio;
# (c) the peak RSS of both, and dpoc's RSS over its printed plan. Each model
# is also compiled packed (NAME+pk: train.packed_len = 3T/2 + 1, step_bench's
# pairs sharing a prompt of T/2 tokens, held once per row) and timed against
# the same PyTorch step, which runs both sequences whole. A step is a whole
# training step by default: forward, backward and the AdamW update on both
# sides (step_bench --optimizer: train_step then the step's optimizer_step;
# torch_step.py --optimizer: backward into .grad, then torch.optim.AdamW),
# so both hold the moments and their peak RSS compares like for like;
# OPTIMIZER=0 times forward + backward only (no moments on PyTorch's side). (a)
# gemm_bench --model: every distinct matmul shape of the model's train_step
# against cblas_sgemm at each thread count (OPENBLAS_NUM_THREADS set). The
# 2-thread dpoc runs also print the per-kernel profile (DPOC_DEBUG=2).
# Full logs go to OUT_DIR; the summary tables are printed at the end.
# Environment: STEPS_TINY (default 5), STEPS_SMALL (2), STEPS_FULL (1),
# WARMUP (1), THREADS ("1 2"), GEMM_MIN_TIME (0.2), OPTIMIZER (1),
# PEAK_GFLOPS_PER_THREAD (unset: step_bench's estimate).
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
if [ "${1:-}" = --full ]; then full=1; shift; fi
build=${1:-build-bench}
out=${2:-/tmp/dpoc-bench}
steps_tiny=${STEPS_TINY:-5}
steps_small=${STEPS_SMALL:-2}
steps_full=${STEPS_FULL:-1}
warmup=${WARMUP:-1}
threads=${THREADS:-"1 2"}
gemm_min_time=${GEMM_MIN_TIME:-0.2}
opt=()
[ "${OPTIMIZER:-1}" = 1 ] && opt=(--optimizer)
mkdir -p "$out"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log"
cmake --build "$build" -j"$(nproc)" --target dpoc step_bench >>"$out/cmake.log"
have_gemm=0
if cmake --build "$build" -j"$(nproc)" --target gemm_bench >>"$out/cmake.log" 2>&1; then have_gemm=1; fi

models=(bench/models/tiny.yaml bench/models/small.yaml)
[ "$full" = 1 ] && models+=(models/zoo/qwen2-0.5b.yaml)
summary="$out/summary.txt"
: >"$summary"
# compile_step NAME YAML: compiles, prints NAME's compile time and memory plan
compile_step() {
  local t0 t1 plan
  t0=$(date +%s.%N)
  "$build/tools/dpoc" compile "$2" -o "$out/$1.so" >"$out/$1.compile.log"
  t1=$(date +%s.%N)
  plan=$(awk '/^  total /{print $2}' "$out/$1.compile.log")
  printf '%s compile_s=%.2f plan_mib=%.1f\n' "$1" "$(awk "BEGIN{print $t1 - $t0}")" \
    "$(awk "BEGIN{print ${plan:-0} / 1048576}")" | tee -a "$summary"
}
# the model with train.packed_len = 3T/2 + 1: step_bench's pairs (a prompt of
# half the sequence, shared) in one row each, the prompt run once
packed_yaml() {
  awk 'match($0, /seq_len: [0-9]+/) {
         n = substr($0, RSTART + 9, RLENGTH - 9) + 0; pk = int(3 * n / 2) + 1
         if ($0 ~ /[{]/) { sub(/seq_len: [0-9]+/, "seq_len: " n ", packed_len: " pk); print; next }
         print; match($0, /^ */); print substr($0, 1, RLENGTH) "packed_len: " pk; next }
       { print }' "$1"
}
for model in "${models[@]}"; do
  m=$(basename "$model" .yaml)
  case $m in tiny) steps=$steps_tiny ;; small) steps=$steps_small ;; *) m=0.5b; steps=$steps_full ;; esac
  so="$out/$m.so"
  compile_step "$m" "$model"
  packed_yaml "$model" >"$out/$m+pk.yaml"
  compile_step "$m+pk" "$out/$m+pk.yaml"
  for th in $threads; do
    peak=()
    [ -n "${PEAK_GFLOPS_PER_THREAD:-}" ] && peak=(--peak-gflops "$(awk "BEGIN{print $PEAK_GFLOPS_PER_THREAD * $th}")")
    dbg=0
    [ "$th" = 2 ] && dbg=2
    DPOC_DEBUG=$dbg "$build/bench/step_bench" "$so" --threads "$th" --steps "$steps" --warmup "$warmup" \
      "${opt[@]}" "${peak[@]}" | tee "$out/$m.dpoc.t$th.log"
    "$build/bench/step_bench" "$out/$m+pk.so" --threads "$th" --steps "$steps" --warmup "$warmup" \
      "${opt[@]}" "${peak[@]}" | tee "$out/$m+pk.dpoc.t$th.log"
    OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th /usr/bin/python3 bench/torch_step.py "$so" --threads "$th" \
      --steps "$steps" --warmup "$warmup" "${opt[@]}" | tee "$out/$m.torch.t$th.log"
    p=$(grep '^RESULT' "$out/$m.torch.t$th.log")
    for v in "$m" "$m+pk"; do
      d=$(grep '^RESULT' "$out/$v.dpoc.t$th.log")
      echo "$v threads=$th dpoc: ${d#RESULT } | torch: ${p#RESULT }" >>"$summary"
    done
  done
  if [ "$have_gemm" = 1 ]; then
    OPENBLAS_NUM_THREADS=$(echo "$threads" | tr ' ' '\n' | sort -n | tail -1) "$build/bench/gemm_bench" --model "$model" \
      --threads "$(echo "$threads" | tr ' ' ',')" --min-time "$gemm_min_time" | tee "$out/$m.gemm.log"
  else
    echo "gemm_bench not built (no OpenBLAS: apt-get install libopenblas-dev)" | tee -a "$summary"
  fi
done

kv() { echo "$1" | tr ' ' '\n' | grep "^$2=" | head -1 | cut -d= -f2; }
echo
if [ ${#opt[@]} -gt 0 ]; then what="training step: forward, backward, AdamW"; else what="forward + backward"; fi
echo "== step ($what): dpoc vs PyTorch (median s/step, tokens/s, MFU, peak RSS; speedup = dpoc/torch tokens/s) =="
printf '%-8s %3s %9s %10s %8s %6s %9s %7s %9s %10s %9s %7s %6s\n' model thr dpoc_s dpoc_tok/s GFLOP/s MFU% dpoc_MiB \
  RSS/plan torch_s torch_tok/s torch_MiB speedup RSSx
grep ' threads=' "$summary" | while read -r line; do
  m=${line%% *}
  d=${line#*dpoc: }; d=${d%% |*}; p=${line#*torch: }
  plan=$(kv "$(grep "^$m compile_s=" "$summary")" plan_mib)
  printf '%-8s %3s %9s %10s %8s %6s %9s %7.2f %9s %10s %9s %7.2f %6.2f\n' "$m" "$(kv "$d" threads)" "$(kv "$d" sec)" \
    "$(kv "$d" tok_s)" "$(kv "$d" gflops)" "$(kv "$d" mfu)" "$(kv "$d" rss_mib)" \
    "$(awk "BEGIN{print $(kv "$d" rss_mib) / $plan}")" "$(kv "$p" sec)" "$(kv "$p" tok_s)" "$(kv "$p" rss_mib)" \
    "$(awk "BEGIN{print $(kv "$d" tok_s) / $(kv "$p" tok_s)}")" "$(awk "BEGIN{print $(kv "$d" rss_mib) / $(kv "$p" rss_mib)}")"
done
echo
echo "== compile: wall seconds of dpoc compile, memory plan total =="
grep compile_s= "$summary" || true
if [ "$have_gemm" = 1 ]; then
  echo
  echo "== GEMM: dpoc matmul kernel vs OpenBLAS sgemm (GFLOP/s; ratio = dpoc / OpenBLAS; count = calls per step) =="
  printf '%-5s %-10s %-4s %4s %6s %6s %6s %4s %3s %9s %9s %7s\n' model gemm op bat M N K cnt thr dpoc BLAS ratio
  for model in "${models[@]}"; do
    m=$(basename "$model" .yaml); [ "$m" = qwen2-0.5b ] && m=0.5b
    grep '^RESULT gemm=' "$out/$m.gemm.log" 2>/dev/null | while read -r _ rest; do
      printf '%-5s %-10s %-4s %4s %6s %6s %6s %4s %3s %9s %9s %7s\n' "$m" "$(kv "$rest" gemm)" "$(kv "$rest" op)" \
        "$(kv "$rest" batch)" "$(kv "$rest" M)" "$(kv "$rest" N)" "$(kv "$rest" K)" "$(kv "$rest" count)" \
        "$(kv "$rest" threads)" "$(kv "$rest" dpoc_gflops)" "$(kv "$rest" blas_gflops)" "$(kv "$rest" ratio)"
    done
    grep '^RESULT gemm_total' "$out/$m.gemm.log" 2>/dev/null | sed "s/^RESULT /$m /" || true
  done
fi
