#!/usr/bin/env python3
"""gen.py — writes the tiny byte-level tokenizer the data tests use.

Every byte is its own token (id = byte value, spelled with GPT-2's
byte-to-unicode table), plus one merge, "\\n\\n" (id 256), so that a
response starting with a newline right after a template's "\\n" merges
across the prompt/response boundary. The control tokens of every chat
template follow as added special tokens. With one merge, token counts can
be worked out by hand: a text chunk has one token per byte, minus one per
pair of adjacent newlines merged (left to right inside a run of newlines).

Run from this folder: python3 gen.py
"""
import json


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


b2u = bytes_to_unicode()
vocab = {b2u[b]: b for b in range(256)}
nl = b2u[ord("\n")]
vocab[nl + nl] = 256
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "<|begin_of_text|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
added = {s: 257 + i for i, s in enumerate(specials)}

with open("vocab.json", "w") as f:
    json.dump(vocab, f, ensure_ascii=False, indent=0, sort_keys=True)
    f.write("\n")
with open("merges.txt", "w") as f:
    f.write("#version: 0.2\n%s %s\n" % (nl, nl))
with open("added_tokens.json", "w") as f:
    json.dump(added, f, indent=2)
    f.write("\n")
with open("tokenizer_config.json", "w") as f:
    json.dump({"tokenizer_class": "Qwen2Tokenizer", "additional_special_tokens": specials,
               "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, f, indent=2)
    f.write("\n")
