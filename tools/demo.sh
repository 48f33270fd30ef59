#!/usr/bin/env bash
# demo.sh — the README's first command: install, build, and run the main job
# on the bundled tiny model. For now the main job is compiling it into a
# step.so and printing its memory plan; training lands with dporun.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
mkdir -p "$root/out"
"$root/build/tools/dpoc" compile "$root/models/tiny.yaml" -o "$root/out/tiny.so"
