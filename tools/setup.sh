#!/usr/bin/env bash
# setup.sh — install what is missing (Debian packages) and build dpoc.
#
# Checks each needed Debian package with dpkg and installs only the missing
# ones (apt-get update first, once), then configures and builds with CMake
# into build/ (or $DPOC_BUILD). Extra arguments are passed to cmake's
# configure step, e.g. -DDPOC_SANITIZE=ON. Safe to run again: it does nothing
# that is already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DPOC_BUILD:-$root/build}

pkgs=(build-essential cmake pkg-config llvm-19-dev libyaml-dev libcjson-dev libzstd-dev
      libopenmpi-dev openmpi-bin python3-torch python3-numpy clang-19 libclang-rt-19-dev
      libpcre2-dev libutf8proc-dev python3-regex python3-jinja2 libopenblas-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
