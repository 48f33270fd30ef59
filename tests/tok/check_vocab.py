"""check_vocab.py — dpoc's tokenizer against the Python reference and published ids, on one vocabulary.

How it works: the strings are the hard cases of tests/data/tok/hard_strings.jsonl
plus long generated ones (long words, digit, space and newline runs, a long
CJK run). Each is encoded by dpoc (through the tok_dump helper, hex in, ids
and hex of the decoding out) and by tests/tok/bpe_ref.py, both with special
tokens as plain text and with --special; the ids must be identical, and
decode(encode(x)) must give x back (NFC(x) for an NFC tokenizer). The
published vectors (text -> ids, see tests/data/tok/vectors/README.md) must
come out of both dpoc and the reference. Finally the same tokenizer is
rewritten in other layouts — tokenizer.json with merges as "a b" strings,
tokenizer.json with ["a", "b"] pairs, merges.txt with CRLF line ends,
merges.txt without its #version line — and each must load with the same
tok_hash and give the same ids on every string.

usage: check_vocab.py --tool TOK_DUMP --dir VOCAB_DIR --strings FILE --work DIR [--vectors FILE]...
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import bpe_ref  # noqa: E402  (needs the `regex` module: Debian's python3-regex)
except ImportError as e:
    print("skipped: %s (install python3-regex)" % e)
    sys.exit(77)


def long_strings():
    return [
        "a" * 1000,
        "ab" * 500,
        "supercalifragilisticexpialidocious" * 30,
        "1234567890" * 100,
        " " * 1000,
        " " * 500 + "x",
        "\n" * 500,
        "\r\n" * 300,
        "\u4f60\u597d\u4e16\u754c\u4eca\u5929\u5929\u6c14\u5f88\u597d" * 50,
        "\U0001F600" * 200,
        "word " * 200,
        "e\u0301" * 300,
    ]


def run_dump(tool, directory, jobs):
    """jobs: [(text, special)] -> ("vocab N hash H", [(ids, decoded bytes)])."""
    data = "".join(("s" if special else "p") + text.encode("utf-8").hex() + "\n" for text, special in jobs)
    res = subprocess.run([tool, directory], input=data, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit("tok_dump failed on %s: %s" % (directory, res.stderr))
    lines = res.stdout.split("\n")
    out = []
    for line in lines[1: len(jobs) + 1]:
        ids, dec = line.split("\t")
        out.append(([int(x) for x in ids.split()], bytes.fromhex(dec)))
    if len(out) != len(jobs):
        raise SystemExit("tok_dump gave %d lines for %d strings" % (len(out), len(jobs)))
    return lines[0], out


def write_variants(src, ref, work):
    """Other layouts of the tokenizer in src: name -> directory."""
    with open(os.path.join(src, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(src, "merges.txt"), encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    merges = [ln.rstrip("\r") for i, ln in enumerate(lines)
              if ln.strip() and not (i == 0 and ln.startswith("#version"))]
    configs = [n for n in ("tokenizer_config.json", "added_tokens.json", "special_tokens_map.json")
               if os.path.exists(os.path.join(src, n))]
    out = {}
    if ref.nfc:
        normalizer = {"type": "NFC"}
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": bpe_ref.QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    else:
        normalizer = None
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": s} for c, (i, s) in sorted(ref.added.items(), key=lambda kv: kv[1][0])]
    for name, as_pairs in (("json_strings", False), ("json_pairs", True)):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                 "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                 "merges": [m.split(" ") for m in merges] if as_pairs else merges}
        doc = {"version": "1.0", "added_tokens": added, "normalizer": normalizer, "pre_tokenizer": pre,
               "post_processor": None, "decoder": {"type": "ByteLevel"}, "model": model}
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, ensure_ascii=False))
        out[name] = d
    for name, header, eol in (("merges_crlf", "#version: 0.2", "\r\n"), ("merges_noheader", None, "\n")):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(src, "vocab.json"), d)
        for c in configs:
            shutil.copy(os.path.join(src, c), d)
        with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8", newline="") as f:
            f.write("".join(ln + eol for ln in ([header] if header else []) + merges))
        out[name] = d
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--strings", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--vectors", action="append", default=[])
    a = ap.parse_args()

    ref = bpe_ref.RefTokenizer(a.dir)
    with open(a.strings, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    texts = [c["text"] for c in cases] + long_strings()
    names = [c["name"] for c in cases] + ["long %d" % i for i in range(len(long_strings()))]
    failures = []

    vectors = []
    for path in a.vectors:
        with open(path, encoding="utf-8") as f:
            vectors += [json.loads(line) for line in f if line.strip()]
    jobs = [(t, False) for t in texts] + [(t, True) for t in texts] + [(v["text"], False) for v in vectors]
    base_info, got = run_dump(a.tool, a.dir, jobs)
    for (text, special), name, (ids, dec) in zip(jobs, names + names, got):
        want = ref.encode(text, special)
        if ids != want:
            failures.append("%s (special=%s): dpoc %s\n    reference %s" % (name, special, ids[:40], want[:40]))
        back = (unicodedata.normalize("NFC", text) if ref.nfc else text).encode("utf-8")
        if dec != back:
            failures.append("%s (special=%s): decode(encode(x)) = %r, want %r" % (name, special, dec[:80], back[:80]))
    for v, (ids, _) in zip(vectors, got[2 * len(texts):]):
        if ids != v["ids"]:
            failures.append("vector %r: dpoc %s\n    published %s" % (v["text"][:50], ids[:40], v["ids"][:40]))
        want = ref.encode(v["text"])
        if want != v["ids"]:
            failures.append("vector %r: reference %s\n    published %s" % (v["text"][:50], want[:40], v["ids"][:40]))

    os.makedirs(a.work, exist_ok=True)
    plain = [(t, False) for t in texts]
    for name, d in write_variants(a.dir, ref, a.work).items():
        vi, other = run_dump(a.tool, d, plain)
        if vi != base_info:
            failures.append("layout %s: %s, but the original gives %s" % (name, vi, base_info))
        for n, (x, _), (y, _) in zip(names, other, got):
            if x != y:
                failures.append("layout %s, %s: %s, original %s" % (name, n, x[:40], y[:40]))

    for f in failures:
        print("FAIL " + f)
    print("%s: %d strings x 2 modes, %d published vectors, 4 layouts (%s): %s" % (
        a.dir, len(texts), len(vectors), base_info, "FAILED" if failures else "all agree"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
