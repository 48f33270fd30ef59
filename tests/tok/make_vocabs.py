"""make_vocabs.py — writes the two small byte-level vocabularies of tests/data/tok/.

How it works: both start with the 256 byte tokens, id = byte value, spelled
in GPT-2's byte alphabet (bpe_ref.bytes_to_unicode); then one token per
merge, in merge order, with ids from 256 on; then the added tokens.

tiny/  — GPT-2 style (tokenizer_class GPT2Tokenizer, no NFC). Merges chosen so
         that rank order, repeated pairs, multi-byte characters and white-space
         runs can be worked out by hand (tests/tok/test_tok_tiny.c does); ids
         274..299 are left unused (holes); added tokens 300..304 exercise
         special / non-special, lstrip, rstrip and the longest match.
bytes/ — Qwen2 style (tokenizer_class Qwen2Tokenizer: Qwen2 pattern, NFC) with
         40 common English merges and the ChatML tokens <|endoftext|>,
         <|im_start|>, <|im_end|>: the tokenizer of dpoc's demo model and of
         the tokenizer fuzz target.

The files are checked in; run this again only to change them:
  python3 tests/tok/make_vocabs.py tests/data/tok
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_ref import bytes_to_unicode  # noqa: E402

TINY_MERGES = [
    ("l", "l"), ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("a", "a"), ("aa", "aa"), ("ll", "o"), ("he", "llo"),
    ("'", "s"), ("e", "l"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"),
    ("ä", "½"), ("ä½", "ł"), ("Ġ", "Ġ"),
]
TINY_ADDED = [  # id, content, special, lstrip, rstrip
    (300, "<|endoftext|>", True, False, False),
    (301, "<tool>", False, False, False),
    (302, "<mask>", True, True, False),
    (303, "<|sep|>", True, False, True),
    (304, "<tool>s", False, False, False),
]

BYTES_MERGES = [
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("a", "n"), ("o", "n"), ("r", "e"),
    ("Ġ", "a"), ("e", "n"), ("Ġ", "s"), ("Ġ", "w"), ("a", "t"), ("o", "u"), ("i", "s"), ("Ġ", "o"),
    ("Ġ", "b"), ("Ġ", "c"), ("e", "s"), ("o", "r"), ("n", "d"), ("Ġa", "nd"), ("Ġ", "i"), ("i", "t"),
    ("Ġ", "m"), ("e", "d"), ("in", "g"), ("Ġ", "f"), ("Ġ", "h"), ("Ġ", "p"), ("l", "l"), ("Ċ", "Ċ"),
    ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ġo", "f"), ("Ġt", "o"), ("Ġi", "s"), ("Ġ", "y"), ("Ġy", "ou"), ("Ġ", "I"),
]
BYTES_ADDED = [
    (296, "<|endoftext|>", True, False, False),
    (297, "<|im_start|>", True, False, False),
    (298, "<|im_end|>", True, False, False),
]


def build(merges):
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    for a, b in merges:
        assert a in vocab and b in vocab and a + b not in vocab, (a, b)
        vocab[a + b] = len(vocab)
    return vocab


def decoder(added):
    return {str(i): {"content": c, "lstrip": ls, "normalized": False, "rstrip": rs, "single_word": False,
                     "special": sp} for i, c, sp, ls, rs in added}


def write(directory, merges, config):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(build(merges), f, ensure_ascii=False, indent=0)
        f.write("\n")
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write("%s %s\n" % (a, b))
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")


def main(out):
    write(os.path.join(out, "tiny"), TINY_MERGES, {
        "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False,
        "added_tokens_decoder": decoder(TINY_ADDED), "eos_token": "<|endoftext|>"})
    write(os.path.join(out, "bytes"), BYTES_MERGES, {
        "tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False,
        "added_tokens_decoder": decoder(BYTES_ADDED), "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tok")
