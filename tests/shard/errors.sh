#!/bin/sh
# errors.sh DPOC SHARD_DIR WORKDIR — bad meshes, each with its exact message
# and exit status, and `parallel:` in the YAML (the --mesh flag wins).
set -u
dpoc=$1 dir=$2 work=$3
models=$dir/../../models
rm -rf "$work" && mkdir -p "$work"
fails=0
expect() { # expect STATUS "MESSAGE" ARGS...
    want_rc=$1 want=$2
    shift 2
    got=$("$dpoc" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" != "$want_rc" ] || [ "$got" != "$want" ]; then
        echo "FAIL: dpoc $*"
        echo "  expected status $want_rc: $want"
        echo "  got      status $rc: $got"
        fails=$((fails + 1))
    fi
}
m=$models/tiny.yaml
expect 2 "dpoc ir: --mesh 'dp=2,tp=': expected dp=D,tp=T (positive integers, e.g. dp=2,tp=2)" ir "$m" --mesh dp=2,tp=
expect 2 "dpoc ir: --mesh 'pp=2': expected dp=D,tp=T (positive integers, e.g. dp=2,tp=2)" ir "$m" --mesh pp=2
expect 2 "dpoc ir: --mesh 'tp=0': tp must be in 1..4096" ir "$m" --mesh tp=0
expect 2 "dpoc ir: --mesh 'dp=2,dp=2': dp given twice" ir "$m" --mesh dp=2,dp=2
expect 1 "$m:11:5: vocab_size is 256, which tp=3 does not divide" ir "$m" --mesh tp=3
expect 1 "$models/tiny_llama.yaml:14:13: attention kv_heads is 1, which tp=2 does not divide" ir "$models/tiny_llama.yaml" --mesh tp=2
expect 2 "dpoc compile: --disable-pass shard: a step for mesh dp=1,tp=2 needs the shard pass" \
    compile "$m" --mesh tp=2 --disable-pass shard -o "$work/x.so"
expect 2 "dpoc compile: --bucket-mb: expected a whole number from 1 to 16777216, got '0'" \
    compile "$m" --mesh tp=2 --bucket-mb 0 -o "$work/x.so"
[ ! -e "$work/x.so" ] || { echo "FAIL: a refused compile wrote its output"; fails=$((fails + 1)); }

# parallel: in the YAML splits like --mesh; the flag wins; bad values are named
mkdir -p "$work/m" && cp -r "$models/losses" "$work/m/losses"
sed 's/^train:/parallel: {tp: 2}\ntrain:/' "$m" > "$work/m/par.yaml"
strip() { sed 's/   # .*//'; } # locations name the YAML file
"$dpoc" ir "$work/m/par.yaml" | strip > "$work/par.ir" && "$dpoc" ir "$m" --mesh tp=2 | strip > "$work/flag.ir" ||
    { echo "FAIL: dpoc ir with parallel:"; fails=$((fails + 1)); }
cmp -s "$work/par.ir" "$work/flag.ir" || { echo "FAIL: parallel: {tp: 2} differs from --mesh tp=2"; fails=$((fails + 1)); }
"$dpoc" ir "$work/m/par.yaml" --mesh dp=1,tp=1 | strip > "$work/flag1.ir" && "$dpoc" ir "$m" | strip > "$work/plain.ir"
cmp -s "$work/flag1.ir" "$work/plain.ir" || { echo "FAIL: --mesh dp=1,tp=1 does not override parallel:"; fails=$((fails + 1)); }
sed 's/^train:/parallel: {tp: 0}\ntrain:/' "$m" > "$work/m/bad.yaml"
line=$(grep -n '^parallel:' "$work/m/bad.yaml" | cut -d: -f1)
expect 1 "$work/m/bad.yaml:$line:16: 'tp' must be a positive integer, got 0" ir "$work/m/bad.yaml"
sed 's/^train:/parallel: {pp: 2}\ntrain:/' "$m" > "$work/m/bad2.yaml"
expect 1 "$work/m/bad2.yaml:$line:12: unknown key 'pp' in 'parallel'; expected one of: dp, tp" ir "$work/m/bad2.yaml"

[ "$fails" -eq 0 ] && echo "OK shard errors"
[ "$fails" -eq 0 ]
