#!/bin/sh
# bad_cli.sh — `dpoc compile` on every bad YAML: non-zero exit, exactly the
# expected `file:line:col: message` on stderr, and no output file.
#
# usage: bad_cli.sh DPOC BAD_DIR
# Runs from inside BAD_DIR so that files are named as in their
# `# expect:` lines.
set -u
dpoc=$1
dir=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
count=0
cd "$dir" || exit 1
for f in *.yaml; do
    count=$((count + 1))
    want=$(head -n 1 "$f" | sed 's/^# expect: //')
    "$dpoc" compile "$f" -o "$out/step.so" >"$out/stdout" 2>"$out/stderr"
    rc=$?
    got=$(cat "$out/stderr")
    if [ "$rc" -eq 0 ]; then
        echo "FAIL $f: dpoc compile exited 0"; fail=1
    elif [ "$rc" -ge 128 ]; then
        echo "FAIL $f: dpoc compile crashed (status $rc)"; fail=1
    fi
    if [ "$got" != "$want" ]; then
        printf 'FAIL %s:\n  got:  %s\n  want: %s\n' "$f" "$got" "$want"; fail=1
    fi
    if [ -e "$out/step.so" ]; then
        echo "FAIL $f: dpoc compile left $out/step.so behind"; fail=1
        rm -f "$out/step.so"
    fi
done
[ "$fail" -eq 0 ] && echo "OK $count bad YAML files rejected by dpoc compile"
exit $fail
