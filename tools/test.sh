#!/usr/bin/env bash
# test.sh — the whole test suite: a normal build and an ASan+UBSan build.
#
# Runs setup.sh (installs what is missing, builds), then ctest in build/;
# then the same suite built with -DDPOC_SANITIZE=ON in build-asan/; then the
# libFuzzer targets (clang-19) in build-fuzz/, each for a bounded time over
# its seed corpus. Exits non-zero when any test fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

"$root/tools/setup.sh"
ctest --test-dir "$root/build" --output-on-failure -j"$jobs"

DPOC_BUILD="$root/build-asan" "$root/tools/setup.sh" -DDPOC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j"$jobs"

# fuzz targets: only the fuzz_* executables are built with clang
fuzz_targets=$(cd "$root/tests/fuzz" && ls fuzz_*.c 2>/dev/null | sed 's/\.c$//' || true)
if [ -n "$fuzz_targets" ]; then
  CC=clang-19 cmake -S "$root" -B "$root/build-fuzz" -DDPOC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  for t in $fuzz_targets; do cmake --build "$root/build-fuzz" -j"$jobs" --target "$t" >/dev/null; done
  ctest --test-dir "$root/build-fuzz" -L fuzz --output-on-failure -j"$jobs"
fi
