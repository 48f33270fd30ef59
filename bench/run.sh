#!/usr/bin/env bash
# run.sh — the step and GEMM benchmarks of issue 6, in one run.
#
# usage: bench/run.sh [BUILD_DIR] [OUT_DIR]     (defaults: build-bench, /tmp/dpoc-bench)
#
# Configures BUILD_DIR as a Release build, builds dpoc, step_bench and (when
# OpenBLAS is found) gemm_bench, compiles models/tiny.yaml (at its own shape:
# 2 pairs x 16 tokens) and bench/models/small.yaml (1 pair x 512 tokens),
# then for each model and 1 and 2 threads runs bench/step_bench (dpoc) and
# bench/torch_step.py (PyTorch, /usr/bin/python3), and gemm_bench over the
# model's linear-layer shapes with OPENBLAS_NUM_THREADS set to the thread
# count. Full logs go to OUT_DIR; a summary table is printed at the end.
# The 2-thread dpoc runs also print the per-kernel profile (DPOC_DEBUG=2).
# Environment: STEPS_TINY (default 5), STEPS_SMALL (2), WARMUP (1),
# THREADS ("1 2"), PEAK_GFLOPS_PER_THREAD (unset: step_bench's estimate).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
out=${2:-/tmp/dpoc-bench}
steps_tiny=${STEPS_TINY:-5}
steps_small=${STEPS_SMALL:-2}
warmup=${WARMUP:-1}
threads=${THREADS:-"1 2"}
mkdir -p "$out"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log"
cmake --build "$build" -j"$(nproc)" --target dpoc step_bench >>"$out/cmake.log"
have_gemm=0
if cmake --build "$build" -j"$(nproc)" --target gemm_bench >>"$out/cmake.log" 2>&1; then have_gemm=1; fi

summary="$out/summary.txt"
: >"$summary"
for model in models/tiny.yaml bench/models/small.yaml; do
  m=$(basename "$model" .yaml)
  so="$out/$m.so"
  t0=$(date +%s.%N)
  "$build/tools/dpoc" compile "$model" -o "$so" -q
  t1=$(date +%s.%N)
  printf '%s compile %.2f s\n' "$m" "$(awk "BEGIN{print $t1 - $t0}")" | tee -a "$summary"
  steps=$steps_tiny
  [ "$m" = small ] && steps=$steps_small
  for th in $threads; do
    peak=()
    [ -n "${PEAK_GFLOPS_PER_THREAD:-}" ] && peak=(--peak-gflops "$(awk "BEGIN{print $PEAK_GFLOPS_PER_THREAD * $th}")")
    dbg=0
    [ "$th" = 2 ] && dbg=2
    DPOC_DEBUG=$dbg "$build/bench/step_bench" "$so" --threads "$th" --steps "$steps" --warmup "$warmup" \
      "${peak[@]}" | tee "$out/$m.dpoc.t$th.log"
    OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th /usr/bin/python3 bench/torch_step.py "$so" --threads "$th" --steps "$steps" \
      --warmup "$warmup" | tee "$out/$m.torch.t$th.log"
    d=$(grep '^RESULT' "$out/$m.dpoc.t$th.log")
    p=$(grep '^RESULT' "$out/$m.torch.t$th.log")
    echo "$m threads=$th dpoc: ${d#RESULT } | torch: ${p#RESULT }" >>"$summary"
  done
  if [ "$have_gemm" = 1 ]; then
    if [ "$m" = tiny ]; then args=(--tokens 64 --hidden 64 --q 64 --kv 32 --inter 128 --vocab 256)
    else args=(--tokens 1024 --hidden 512 --q 512 --kv 128 --inter 1408 --vocab 8192); fi
    for th in $threads; do
      OPENBLAS_NUM_THREADS=$th "$build/bench/gemm_bench" "${args[@]}" --threads "$th" --min-time 0.2 \
        | tee "$out/$m.gemm.t$th.log"
    done
  else
    echo "gemm_bench not built (no OpenBLAS: apt-get install libopenblas-dev)" | tee -a "$summary"
  fi
done

echo
echo "== step: dpoc vs PyTorch (median s/step, tokens/s, MFU, peak RSS) =="
printf '%-6s %3s %10s %10s %10s %7s %9s %10s %10s %9s %7s %7s\n' model thr dpoc_s dpoc_tok/s GFLOP/s MFU% dpoc_MiB \
  torch_s torch_tok/s torch_MiB speedup RSSx
grep ' threads=' "$summary" | while read -r line; do
  m=${line%% *}
  kv() { echo "$1" | tr ' ' '\n' | grep "^$2=" | head -1 | cut -d= -f2; }
  d=${line#*dpoc: }; d=${d%% |*}; p=${line#*torch: }
  printf '%-6s %3s %10s %10s %10s %7s %9s %10s %10s %9s %7.2f %7.2f\n' "$m" "$(kv "$d" threads)" "$(kv "$d" sec)" \
    "$(kv "$d" tok_s)" "$(kv "$d" gflops)" "$(kv "$d" mfu)" "$(kv "$d" rss_mib)" "$(kv "$p" sec)" "$(kv "$p" tok_s)" \
    "$(kv "$p" rss_mib)" "$(awk "BEGIN{print $(kv "$d" tok_s) / $(kv "$p" tok_s)}")" \
    "$(awk "BEGIN{print $(kv "$d" rss_mib) / $(kv "$p" rss_mib)}")"
done
grep compile "$summary" || true
if [ "$have_gemm" = 1 ]; then
  echo
  echo "== GEMM: dpoc matmul kernel vs OpenBLAS sgemm (GFLOP/s; ratio = dpoc / OpenBLAS) =="
  printf '%-6s %-10s %-4s %6s %6s %6s %3s %9s %9s %7s\n' model linear op M N K thr dpoc BLAS ratio
  for f in "$out"/*.gemm.t*.log; do
    m=$(basename "$f"); m=${m%%.*}
    grep '^RESULT' "$f" | while read -r _ rest; do
      kv() { echo "$rest" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
      printf '%-6s %-10s %-4s %6s %6s %6s %3s %9s %9s %7s\n' "$m" "$(kv gemm)" "$(kv op)" "$(kv M)" "$(kv N)" \
        "$(kv K)" "$(kv threads)" "$(kv dpoc_gflops)" "$(kv blas_gflops)" "$(kv ratio)"
    done
  done
fi
