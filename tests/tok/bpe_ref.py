"""bpe_ref.py — an independent Python reference for dpoc's byte-level BPE tokenizer.

How it works: this follows the documented behaviour of Hugging Face's slow
GPT2Tokenizer / Qwen2Tokenizer, written from their description, not from
dpoc's C code (which uses a different merge algorithm, a heap, and PCRE2).
Every byte maps to a printable character (bytes_to_unicode: the printable
Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards in byte
order). Text is optionally NFC-normalised (unicodedata), split into
pre-tokens with the GPT-2 or Qwen2 pattern (the `regex` module, which knows
\\p{L} and \\p{N}), each pre-token's UTF-8 bytes become a string in that
alphabet, and BPE repeatedly takes the adjacent pair with the lowest merge
rank and merges every occurrence of it, left to right, until no pair has a
rank. Ids come from vocab.json.

Added tokens (added_tokens.json, tokenizer_config.json added_tokens_decoder,
special flags from special_tokens_map.json and the *_token fields) are split
out of the text first, longest first: non-special ones always, special ones
only with parse_special=True (dpoc's policy; see docs/tokenizer.md).

Only the vocab.json + merges.txt layout is read: the tests compare dpoc's
tokenizer.json loading against dpoc's own vocab.json loading.

Usage as a script:
  bpe_ref.py encode DIR [--special] < hex-lines   one hex-encoded UTF-8 string per
                                                  line in, space-separated ids out
  bpe_ref.py vectors DIR FILE.jsonl               check {"text", "ids"} vectors
"""

import json
import os
import sys
import unicodedata

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                 r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def bytes_to_unicode():
    """byte value -> one printable character (GPT-2's reversible byte alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _content(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


class RefTokenizer:
    def __init__(self, directory):
        with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        self.ranks = {}
        with open(os.path.join(directory, "merges.txt"), encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        rank = 0
        for i, line in enumerate(lines):
            line = line.rstrip("\r")
            if i == 0 and line.startswith("#version"):
                continue
            if not line:
                continue
            a, b = line.split(" ")
            self.ranks[(a, b)] = rank  # a repeated merge keeps its later rank
            rank += 1
        config = {}
        cpath = os.path.join(directory, "tokenizer_config.json")
        if os.path.exists(cpath):
            with open(cpath, encoding="utf-8") as f:
                config = json.load(f)
        cls = config.get("tokenizer_class") or "GPT2Tokenizer"
        if cls.startswith("Qwen2Tokenizer"):
            self.pattern, self.nfc = regex.compile(QWEN2_PATTERN), True
        elif cls.startswith("GPT2Tokenizer"):
            self.pattern, self.nfc = regex.compile(GPT2_PATTERN), False
        else:
            raise ValueError("unsupported tokenizer_class " + cls)
        # added tokens: content -> (id, special)
        self.added = {}
        apath = os.path.join(directory, "added_tokens.json")
        if os.path.exists(apath):
            with open(apath, encoding="utf-8") as f:
                for content, i in json.load(f).items():
                    self.added[content] = [i, False]
        for i, entry in config.get("added_tokens_decoder", {}).items():
            self.added[entry["content"]] = [int(i), bool(entry.get("special", False))]
        specials = set()
        spath = os.path.join(directory, "special_tokens_map.json")
        maps = [config]
        if os.path.exists(spath):
            with open(spath, encoding="utf-8") as f:
                maps.append(json.load(f))
        for m in maps:
            for k in SPECIAL_KEYS:
                if _content(m.get(k)):
                    specials.add(_content(m[k]))
            for v in m.get("additional_special_tokens", []) or []:
                specials.add(_content(v))
        if "<|endoftext|>" in self.encoder and "<|endoftext|>" not in self.added:
            specials.add("<|endoftext|>")  # GPT2Tokenizer's default bos/eos/unk
        for s in specials:
            if s in self.added:
                self.added[s][1] = True
            elif s in self.encoder:
                self.added[s] = [self.encoder[s], True]
            else:
                raise ValueError("special token %r has no id" % s)
        self.byte_char = bytes_to_unicode()
        self.char_byte = {c: b for b, c in self.byte_char.items()}
        self.decoder = {i: s for s, i in self.encoder.items()}

    def bpe(self, token):
        word = list(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def _split_added(self, text, parse_special):
        names = [c for c, (_, special) in self.added.items() if parse_special or not special]
        if not names:
            return [(text, None)]
        names.sort(key=len, reverse=True)
        alt = regex.compile("|".join(regex.escape(n) for n in names))
        out = []
        pos = 0
        for m in alt.finditer(text):
            if m.start() > pos:
                out.append((text[pos:m.start()], None))
            out.append((None, self.added[m.group(0)][0]))
            pos = m.end()
        if pos < len(text):
            out.append((text[pos:], None))
        return out

    def encode(self, text, parse_special=False):
        ids = []
        for piece, added_id in self._split_added(text, parse_special):
            if added_id is not None:
                ids.append(added_id)
                continue
            if self.nfc:
                piece = unicodedata.normalize("NFC", piece)
            for word in self.pattern.findall(piece):
                mapped = "".join(self.byte_char[b] for b in word.encode("utf-8"))
                ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids

    def decode(self, ids):
        added_by_id = {i: c for c, (i, _) in self.added.items()}
        out = bytearray()
        for i in ids:
            if i in added_by_id:
                out += added_by_id[i].encode("utf-8")
            else:
                out += bytes(self.char_byte[c] for c in self.decoder[i])
        return bytes(out)


def main(argv):
    if len(argv) >= 3 and argv[1] == "encode":
        tok = RefTokenizer(argv[2])
        special = "--special" in argv[3:]
        for line in sys.stdin:
            text = bytes.fromhex(line.strip()).decode("utf-8")
            print(" ".join(str(i) for i in tok.encode(text, special)))
        return 0
    if len(argv) == 4 and argv[1] == "vectors":
        tok = RefTokenizer(argv[2])
        bad = 0
        n = 0
        with open(argv[3], encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                v = json.loads(line)
                n += 1
                got = tok.encode(v["text"])
                if got != v["ids"]:
                    bad += 1
                    print("MISMATCH %r\n  want %s\n  got  %s" % (v["text"], v["ids"], got))
        print("%d/%d vectors match" % (n - bad, n))
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
