#!/bin/sh
# cli.sh — `dpoc tokenize` / `dpoc detokenize` on the tiny vocabulary.
#
#   cli.sh DPOC DATA_DIR WORK_DIR      (DATA_DIR = tests/data/tok)
#
# Each check runs the command with a given stdin and compares stdout (byte
# for byte), stderr and the exit status with what is expected; the ids are
# the hand-worked ones of test_tok_tiny.c. The English and Chinese texts
# also go through tokenize | detokenize with the bytes vocabulary and must
# come back unchanged.
set -u
dpoc=$1
data=$2
work=$3
tiny=$data/tiny
mkdir -p "$work"
fails=0

# check NAME WANT_STATUS WANT_STDOUT WANT_STDERR -- ARGS... (stdin from $work/in)
check() {
    name=$1 want_rc=$2 want_out=$3 want_err=$4
    shift 5
    "$dpoc" "$@" <"$work/in" >"$work/out" 2>"$work/err"
    rc=$?
    printf "$want_out" >"$work/want_out"
    if [ "$rc" != "$want_rc" ] || ! cmp -s "$work/out" "$work/want_out" || [ "$(cat "$work/err")" != "$want_err" ]; then
        echo "FAIL $name: status $rc (want $want_rc)"
        echo "  stdout: $(od -c "$work/out" | head -3)"
        echo "  want:   $(od -c "$work/want_out" | head -3)"
        echo "  stderr: $(cat "$work/err")"
        echo "  want:   $want_err"
        fails=$((fails + 1))
    fi
}

input() { printf "$1" >"$work/in"; }

input 'hello world'
check tokenize 0 '[263, 270]
' '' -- tokenize --tokenizer "$tiny"
input 'x<|endoftext|>y'
check plain_special 0 '[120, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62, 121]
' '' -- tokenize --tokenizer "$tiny"
check parse_special 0 '[120, 300, 121]
' '' -- tokenize --tokenizer="$tiny" --special
input 'a\000b'
check nul 0 '[97, 0, 98]
' '' -- tokenize -t "$tiny"
input ''
check empty 0 '[]
' '' -- tokenize --tokenizer "$tiny"
input 'a\377'
check not_utf8 0 '[97, 255]
' 'dpoc tokenize: warning: stdin is not UTF-8 at byte 1; such bytes become one token each' -- tokenize --tokenizer "$tiny"
check no_tokenizer 2 '' 'dpoc tokenize: --tokenizer DIR is required' -- tokenize
check positional 2 '' "dpoc tokenize: unexpected argument 'x'" -- tokenize --tokenizer "$tiny" x
check bad_option 2 '' "dpoc detokenize: unknown option '--special' (see 'dpoc detokenize --help')" -- detokenize --tokenizer "$tiny" --special
check missing_dir 1 '' "dpoc tokenize: $work/nope: No such file or directory" -- tokenize --tokenizer "$work/nope"

input '[263, 270]'
check detokenize 0 'hello world' '' -- detokenize --tokenizer "$tiny"
input ' [97, 0, 98, 300]\n'
check detok_nul 0 'a\000b<|endoftext|>' '' -- detokenize --tokenizer "$tiny"
input '[228, 189]'
check detok_partial_char 0 '\344\275' '' -- detokenize --tokenizer "$tiny"
input '[]'
check detok_empty 0 '' '' -- detokenize --tokenizer "$tiny"
input '[1, 2'
check detok_bad_json 1 '' 'dpoc detokenize: stdin:1:5: invalid JSON' -- detokenize --tokenizer "$tiny"
input '[1,\n 2,,3]'
check detok_bad_json_line 1 '' 'dpoc detokenize: stdin:2:4: invalid JSON' -- detokenize --tokenizer "$tiny"
input '{"ids": [1]}'
check detok_not_array 1 '' 'dpoc detokenize: stdin: expected a JSON array of token ids' -- detokenize --tokenizer "$tiny"
input '[1, "2"]'
check detok_string 1 '' 'dpoc detokenize: stdin: element 1 is not an integer token id' -- detokenize --tokenizer "$tiny"
input '[1, 2, 3.5]'
check detok_float 1 '' 'dpoc detokenize: stdin: element 2 is not an integer token id' -- detokenize --tokenizer "$tiny"
input '[1, 280]'
check detok_hole 1 '' 'dpoc detokenize: stdin: id 280 at position 1 is not in the vocabulary (305 tokens)' -- detokenize --tokenizer "$tiny"
input '[99999]'
check detok_range 1 '' 'dpoc detokenize: stdin: id 99999 at position 0 is not in the vocabulary (305 tokens)' -- detokenize --tokenizer "$tiny"
input '[4294967296]'
check detok_huge 1 '' 'dpoc detokenize: stdin: element 0 is not an integer token id' -- detokenize --tokenizer "$tiny"

for f in en zh; do
    "$dpoc" tokenize --tokenizer "$data/bytes" <"$data/text/$f.txt" >"$work/$f.ids" &&
        "$dpoc" detokenize --tokenizer "$data/bytes" <"$work/$f.ids" >"$work/$f.back" &&
        cmp -s "$data/text/$f.txt" "$work/$f.back" || {
        echo "FAIL round trip of $f.txt through tokenize | detokenize"
        fails=$((fails + 1))
    }
done

if [ "$fails" -ne 0 ]; then
    echo "$fails failures"
    exit 1
fi
echo "cli.sh: all passed"
