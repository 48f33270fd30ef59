#!/bin/sh
# data_cli.sh — `dpoc data prepare|show|stats` end to end.
#
# usage: data_cli.sh DPOC DATA_DIR [QWEN2_DIR]
#
# Every expected file under expected/ was written by hand from the template
# definitions (docs/data.md) and, for tpl_tok/ (one token per byte, "\n\n"
# merged, control tokens one each), token counts worked out by hand. What
# is checked:
#   - the same two pairs in every input format prepare into byte-identical
#     .rec files whose `data show` output is expected/formats.chatml.txt;
#     each template's output; id input; `data stats`;
#   - CValues-style and orpo-style fixtures with the real Qwen2 vocabulary
#     (QWEN2_DIR) show exactly the chatml rendering (the count lines are
#     checked for consistency only: Qwen2 BPE counts are not hand-made); so
#     do the format pairs with tok/bytes (a small byte-level BPE);
#   - truncation and dropping counts; the validation split (exact sizes,
#     same seed same files, train + validation = everything);
#   - BOM, CRLF and blank lines are accepted and change nothing;
#   - every bad/ file fails with exactly its .err message, status 1 and no
#     output file, and with --skip-bad is skipped and counted (fatal_*
#     files fail the same way even then); command-line mistakes exit 2.
set -u
dpoc=$1
dir=$(cd "$2" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tpl=$dir/tpl_tok
bytes=$dir/tok/bytes
qwen=${3:-$dir/tok/qwen2}
fail=0
checks=0

bad() {
    echo "FAIL $*"
    fail=1
}
# same NAME GOT WANT: files equal
same() {
    checks=$((checks + 1))
    if ! cmp -s "$2" "$3"; then
        bad "$1: $2 differs from $3"
        diff "$3" "$2" | head -n 20
    fi
}
# is NAME GOT WANT: strings equal
is() {
    checks=$((checks + 1))
    if [ "$2" != "$3" ]; then
        printf 'FAIL %s:\n  got:  %s\n  want: %s\n' "$1" "$2" "$3"
        fail=1
    fi
}
prep() { "$dpoc" data prepare "$@" >"$out/stdout" 2>"$out/stderr"; }
show() { "$dpoc" data show "$@" 2>"$out/stderr"; }
absent() {
    for path in "$@"; do
        checks=$((checks + 1))
        [ -e "$path" ] && bad "$path was left behind"
        [ -e "$path.tmp" ] && bad "$path.tmp was left behind"
    done
}

# ---- every format, the same pairs -------------------------------------------------------
cd "$dir/formats" || exit 1
for f in trl:trl trl_conv:trl trl_implicit:trl orpo:orpo cvalues:cvalues; do
    name=${f%%:*}
    fmt=${f#*:}
    prep --tokenizer "$tpl" --template chatml "pair.$name.jsonl" -o "$out/$name.rec" || bad "prepare pair.$name.jsonl: $(cat "$out/stderr")"
    is "detect pair.$name.jsonl" "$(head -n 1 "$out/stdout")" "pairs read   2 (pair.$name.jsonl, format $fmt detected from line 1)"
    show --tokenizer "$tpl" "$out/$name.rec" >"$out/show.txt"
    same "show pair.$name.jsonl" "$out/show.txt" "$dir/expected/formats.chatml.txt"
    [ "$name" = trl ] || same "rec of pair.$name.jsonl" "$out/$name.rec" "$out/trl.rec"
done
prep --tokenizer "$tpl" --template chatml --format xtuner pair.trl_conv.jsonl -o "$out/xtuner.rec"
is "format xtuner" "$(head -n 1 "$out/stdout")" "pairs read   2 (pair.trl_conv.jsonl, format xtuner)"
same "rec of --format xtuner" "$out/xtuner.rec" "$out/trl.rec"
for t in internlm2 llama3 none; do
    prep --tokenizer "$tpl" --template $t pair.trl.jsonl -o "$out/$t.rec" || bad "prepare --template $t: $(cat "$out/stderr")"
    show --tokenizer "$tpl" "$out/$t.rec" >"$out/show.txt"
    same "show --template $t" "$out/show.txt" "$dir/expected/formats.$t.txt"
done
show --json "$out/none.rec" >"$out/show.json"
same "show --json --template none" "$out/show.json" "$dir/expected/formats.none.json"
# ids, hand-written from the UTF-8 bytes: no tokenizer needed
prep --vocab-size 265 pair.ids.jsonl -o "$out/ids.rec" || bad "prepare pair.ids.jsonl: $(cat "$out/stderr")"
is "detect ids" "$(head -n 1 "$out/stdout")" "pairs read   2 (pair.ids.jsonl, format ids detected from line 1)"
show --json "$out/ids.rec" >"$out/show.json"
same "show --json of ids" "$out/show.json" "$dir/expected/formats.none.json"
show --tokenizer "$tpl" "$out/ids.rec" >"$out/show.txt"
same "show of ids" "$out/show.txt" "$dir/expected/formats.none.txt"
prep pair.ids.jsonl -o "$out/ids2.rec"
is "ids without a vocabulary: max id + 1" "$("$dpoc" data stats "$out/ids2.rec" | grep '^vocab size')" "vocab size       240"
cp "$out/trl.rec" "$out/f.rec"
# packed length by hand: the pairs are (prompt 59, chosen 66, rejected 68) and
# (63, 73, 67); both sequences of a pair start with its prompt and part right
# after it, so a packed row holds chosen + rejected - (prompt - 1) tokens:
# 66 + 68 - 58 = 76 and 73 + 67 - 62 = 78, 154 of 274 tokens (56%)
"$dpoc" data stats "$out/f.rec" | sed -e "s|$out|OUT|" -e 's/^\(tokenizer hash   \)[0-9a-f]*$/\1HASH/' >"$out/stats.txt"
same "stats" "$out/stats.txt" "$dir/expected/stats.chatml.txt"

# ---- truncation ---------------------------------------------------------------------------
cd "$dir/fixtures" || exit 1
prep --tokenizer "$tpl" --template chatml --max-length 64 trunc.jsonl -o "$out/t.rec" || bad "prepare trunc.jsonl"
sed "s|$out|OUT|" "$out/stdout" >"$out/summary.txt"
same "truncation summary" "$out/summary.txt" "$dir/expected/trunc.summary.txt"
is "truncated sequences at max length" "$("$dpoc" data stats "$out/t.rec" | grep '^at max length')" \
    "at max length    6 sequences"

# ---- validation split ------------------------------------------------------------------------
prep --tokenizer "$tpl" --template none split.jsonl -o "$out/all.rec"
prep --tokenizer "$tpl" --template none --val-split 0.3 --seed 7 split.jsonl -o "$out/s1.rec"
is "split train" "$(sed -n 3p "$out/stdout")" "  train      7 pairs, 56 tokens -> $out/s1.rec"
is "split validation" "$(sed -n 4p "$out/stdout")" "  validation 3 pairs, 24 tokens -> $out/s1.val.rec"
prep --tokenizer "$tpl" --template none --val-split 0.3 --seed 7 split.jsonl -o "$out/s2.rec"
same "split determinism (train)" "$out/s2.rec" "$out/s1.rec"
same "split determinism (validation)" "$out/s2.val.rec" "$out/s1.val.rec"
prep --tokenizer "$tpl" --template none --val-split 0.3 --seed 8 --val-out "$out/v3.rec" split.jsonl -o "$out/s3.rec"
checks=$((checks + 1))
[ -e "$out/v3.rec" ] && [ ! -e "$out/s3.val.rec" ] || bad "--val-out not honoured"
checks=$((checks + 1))
cmp -s "$out/v3.rec" "$out/s1.val.rec" && bad "seeds 7 and 8 picked the same validation rows"
strip() { sed 's/^{"pair":[0-9]*,//' | sort; }
show --json "$out/all.rec" | strip >"$out/all.json"
{ show --json "$out/s1.rec"; show --json "$out/s1.val.rec"; } | strip >"$out/parts.json"
same "train + validation = all" "$out/parts.json" "$out/all.json"
{ show --json "$out/s3.rec"; show --json "$out/v3.rec"; } | strip >"$out/parts.json"
same "train + validation = all (seed 8)" "$out/parts.json" "$out/all.json"

# ---- the Qwen2 vocabulary: CValues-style and orpo-style fixtures --------------------------------
# the count lines are checked for consistency: one span [prompt, len) per sequence
counts_ok() {
    awk '/^pair [0-9]+: prompt [0-9]+ tokens$/ { p = $4; next }
         /^(chosen|rejected): [0-9]+ tokens, labels \[[0-9]+, [0-9]+\)$/ {
             n = $2; s = $5; e = $6; gsub(/[^0-9]/, "", s); gsub(/[^0-9]/, "", e)
             if (s != p || e != n) bad = 1; seqs++; next }
         END { exit !(bad == 0 && seqs == want) }' want="$2" "$1"
}
strip_counts() {
    sed -E '/^pair [0-9]+: prompt [0-9]+ tokens$/d; /^(chosen|rejected): [0-9]+ tokens, labels( \[[0-9]+, [0-9]+\))+$/d' "$1"
}
prep --tokenizer "$bytes" --template chatml "$dir/formats/pair.trl.jsonl" -o "$out/bytes.rec" ||
    bad "prepare with tok/bytes: $(cat "$out/stderr")"
show --tokenizer "$bytes" "$out/bytes.rec" >"$out/show.txt"
checks=$((checks + 1))
counts_ok "$out/show.txt" 4 || bad "tok/bytes: count lines inconsistent"
strip_counts "$out/show.txt" >"$out/text.txt"
strip_counts "$dir/expected/formats.chatml.txt" >"$out/want.txt"
same "pair.trl.jsonl with tok/bytes + chatml" "$out/text.txt" "$out/want.txt"
checks=$((checks + 1))
"$dpoc" data show --tokenizer "$bytes" "$out/trl.rec" 0 >/dev/null 2>"$out/stderr" && bad "show with another tokenizer"
grep -q "^$out/trl.rec: prepared with tokenizer hash [0-9a-f]*, but $bytes has hash [0-9a-f]*\$" "$out/stderr" ||
    bad "tokenizer hash mismatch message: $(cat "$out/stderr")"
if [ -d "$qwen" ]; then
    prep --tokenizer "$qwen" --template chatml --format cvalues --max-length 1024 cvalues.jsonl -o "$out/cv.rec" ||
        bad "prepare cvalues.jsonl: $(cat "$out/stderr")"
    is "cvalues: no warning" "$(cat "$out/stderr")" ""
    show --tokenizer "$qwen" "$out/cv.rec" >"$out/show.txt"
    checks=$((checks + 1))
    counts_ok "$out/show.txt" 6 || bad "cvalues.jsonl: count lines inconsistent"
    strip_counts "$out/show.txt" >"$out/text.txt"
    same "cvalues.jsonl with qwen2 + chatml" "$out/text.txt" "$dir/expected/cvalues.chatml.txt"
    prep --tokenizer "$qwen" --template chatml orpo.jsonl -o "$out/orpo.rec" || bad "prepare orpo.jsonl: $(cat "$out/stderr")"
    is "detect orpo" "$(head -n 1 "$out/stdout")" "pairs read   2 (orpo.jsonl, format orpo detected from line 1)"
    show --tokenizer "$qwen" "$out/orpo.rec" >"$out/show.txt"
    checks=$((checks + 1))
    counts_ok "$out/show.txt" 4 || bad "orpo.jsonl: count lines inconsistent"
    strip_counts "$out/show.txt" >"$out/text.txt"
    same "orpo.jsonl with qwen2 + chatml" "$out/text.txt" "$dir/expected/orpo.chatml.txt"
else
    echo "note: $qwen not found, Qwen2 fixtures skipped"
fi

# ---- accepted oddities: BOM, CRLF, blank lines ---------------------------------------------------
cd "$dir/accept" || exit 1
prep --tokenizer "$tpl" --template chatml plain.jsonl -o "$out/plain.rec"
for f in bom crlf blank_lines; do
    prep --tokenizer "$tpl" --template chatml -v $f.jsonl -o "$out/$f.rec" || bad "prepare $f.jsonl: $(cat "$out/stderr")"
    same "$f.jsonl" "$out/$f.rec" "$out/plain.rec"
done
prep --tokenizer "$tpl" --template chatml -v bom.jsonl -o "$out/bom.rec"
is "BOM note" "$(cat "$out/stderr")" "bom.jsonl: skipped the UTF-8 byte-order mark at the start of line 1"

# ---- bad input ----------------------------------------------------------------------------------
cd "$dir/bad" || exit 1
nbad=0
for f in *.jsonl; do
    name=${f%.jsonl}
    args=""
    if [ -e "$name.args" ]; then
        args=$(sed "s|BYTES|$bytes|" "$name.args")
    fi
    want=$(cat "$name.err")
    nbad=$((nbad + 1))
    # shellcheck disable=SC2086
    prep --tokenizer "$tpl" --template chatml $args "$f" -o "$out/bad.rec"
    rc=$?
    is "$f: status" "$rc" 1
    is "$f: message" "$(cat "$out/stderr")" "$want"
    absent "$out/bad.rec"
    # shellcheck disable=SC2086
    prep --tokenizer "$tpl" --template chatml --skip-bad $args "$f" -o "$out/bad.rec"
    rc=$?
    case $name in
    fatal_*)
        is "$f --skip-bad: status" "$rc" 1
        is "$f --skip-bad: message" "$(cat "$out/stderr")" "$want"
        absent "$out/bad.rec"
        ;;
    *)
        is "$f --skip-bad: status" "$rc" 0
        is "$f --skip-bad: warning" "$(cat "$out/stderr")" "warning: skipped $want"
        is "$f --skip-bad: kept" "$(sed -n 2p "$out/stdout")" "kept         2"
        is "$f --skip-bad: dropped" "$(sed -n 4p "$out/stdout")" \
            "dropped      1 (prompt too long 0, no label tokens 0, bad rows 1)"
        rm -f "$out/bad.rec"
        ;;
    esac
done
checks=$((checks + 1))
[ "$nbad" -ge 29 ] || bad "only $nbad bad files"
# a failure with a validation split leaves neither file
prep --tokenizer "$tpl" --template chatml --val-split 0.5 wrong_type.jsonl -o "$out/bad.rec"
is "split + bad row: status" "$?" 1
absent "$out/bad.rec" "$out/bad.val.rec"
# the default row limit, 16 MiB
{
    echo '{"prompt":"Hi","chosen":"Hello!","rejected":"Go away."}'
    head -c 16777300 /dev/zero | tr '\0' 'a'
    echo
} >"$out/big.jsonl"
prep --tokenizer "$tpl" --template chatml "$out/big.jsonl" -o "$out/bad.rec"
is "16 MiB row: status" "$?" 1
is "16 MiB row" "$(cat "$out/stderr")" "$out/big.jsonl:2: row longer than 16777216 bytes (the --max-row-bytes limit)"
absent "$out/bad.rec"
prep --tokenizer "$tpl" --template chatml nope.jsonl -o "$out/bad.rec"
is "missing input" "$(cat "$out/stderr")" "nope.jsonl: cannot open: No such file or directory"

# ---- command-line mistakes: status 2 ---------------------------------------------------------------
usage() {
    want=$1
    shift
    "$dpoc" data "$@" >/dev/null 2>"$out/stderr"
    rc=$?
    is "dpoc data $*: status" "$rc" 2
    is "dpoc data $*: message" "$(head -n 1 "$out/stderr")" "$want"
}
usage "dpoc data prepare: unknown --format 'foo' (auto, trl, xtuner, orpo, cvalues, ids)" \
    prepare --tokenizer "$tpl" --template chatml --format foo x.jsonl -o "$out/x.rec"
usage "dpoc data prepare: unknown --template 'qwen' (chatml, internlm2, llama3, none)" \
    prepare --tokenizer "$tpl" --template qwen x.jsonl -o "$out/x.rec"
usage "dpoc data prepare: --template is required (chatml, internlm2, llama3 or none)" \
    prepare --tokenizer "$tpl" --format trl x.jsonl -o "$out/x.rec"
prep --tokenizer "$tpl" "$dir/formats/pair.trl.jsonl" -o "$out/x.rec"
is "auto-detected text format without --template" "$(cat "$out/stderr")" \
    "$dir/formats/pair.trl.jsonl: format trl needs --template (chatml, internlm2, llama3 or none)"
absent "$out/x.rec"
usage "dpoc data prepare: --val-split must be a number in [0, 1), got '1'" \
    prepare --tokenizer "$tpl" --template none --val-split 1 x.jsonl -o "$out/x.rec"
usage "dpoc data prepare: --max-length must be an integer in [0, 4294967295], got '-5'" \
    prepare --tokenizer "$tpl" --template none --max-length -5 x.jsonl -o "$out/x.rec"
usage "dpoc data prepare: need one input file and -o OUT.rec (see 'dpoc data prepare --help')" \
    prepare --tokenizer "$tpl" --template none x.jsonl
usage "dpoc data prepare: unknown option '--max-len' (see 'dpoc data prepare --help')" \
    prepare --max-len 5 x.jsonl -o "$out/x.rec"
usage "dpoc data show: --tokenizer DIR is needed to decode the ids (or use --json)" show "$out/trl.rec"
usage "dpoc data show: a pair index must be an integer in [0, 18446744073709551615], got 'x'" \
    show --json "$out/trl.rec" x
usage "dpoc data: unknown subcommand 'frob'" frob
"$dpoc" data show --json "$out/trl.rec" 5 >/dev/null 2>"$out/stderr"
is "show out of range: status" "$?" 1
is "show out of range" "$(cat "$out/stderr")" "$out/trl.rec: no pair 5 (the file has 2)"

[ "$fail" -eq 0 ] && echo "OK $checks checks ($nbad bad files)"
exit $fail
