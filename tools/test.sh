#!/usr/bin/env bash
# test.sh — the whole test suite: a normal build and an ASan+UBSan build.
#
# Runs setup.sh (installs what is missing, builds), then ctest in build/;
# then the same suite built with -DDPOC_SANITIZE=ON in build-asan/. Exits
# non-zero when any test fails in either build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

"$root/tools/setup.sh"
ctest --test-dir "$root/build" --output-on-failure -j"$jobs"

DPOC_BUILD="$root/build-asan" "$root/tools/setup.sh" -DDPOC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j"$jobs"
