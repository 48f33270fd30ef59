"""check_demo_data.py — checks the demo's preference data against its rules.

Usage: check_demo_data.py DIR (holding train.jsonl and eval.jsonl)

Written independently of tools/dpoc_demo_data.c, from the rules its header
documents: each line is a TRL standard pair {prompt, chosen, rejected}; the
prompt is one of "Uppercase: w\n", "Lowercase: W\n", "Vowels: w\n",
"Spell: w\n" (w a word of 3..7 letters alternating consonants and vowels)
or "Count to N:\n" (N in 2..9); the chosen response follows the instruction
and the rejected one breaks it in the documented way; chosen differs from
rejected; no evaluation prompt is a training prompt (Count excepted); every
task has a fair share of both files. Exit status 1 on the first violation.
"""

import json
import re
import sys
from collections import Counter

VOWELS = set("aeiou")
CONSONANTS = set("bcdfghjklmnprstvwz")


def word_ok(w):
    low = w.lower()
    if not 3 <= len(w) <= 7 or not all(c in VOWELS | CONSONANTS for c in low):
        return False
    kinds = [c in VOWELS for c in low]
    return all(kinds[i] != kinds[i + 1] for i in range(len(kinds) - 1))


def expected(prompt):
    """(task, chosen, rejected) the rules give for a prompt, or None."""
    m = re.fullmatch(r"Count to ([2-9]):\n", prompt)
    if m:
        n = int(m.group(1))
        up = [str(i) for i in range(1, n + 1)]
        return "Count", " ".join(up), " ".join(reversed(up))
    m = re.fullmatch(r"(Uppercase|Lowercase|Vowels|Spell): ([A-Za-z]+)\n", prompt)
    if not m:
        return None
    task, w = m.groups()
    if not word_ok(w) or (w != w.upper() if task == "Lowercase" else w != w.lower()):
        return None
    if task == "Uppercase":
        return task, w.upper(), w
    if task == "Lowercase":
        return task, w.lower(), w
    if task == "Spell":
        return task, " ".join(w), w
    return task, "".join(c for c in w if c in VOWELS), "".join(c for c in w if c not in VOWELS)


def load(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            row = json.loads(line)
            where = "%s:%d" % (path, lineno)
            if set(row) != {"prompt", "chosen", "rejected"} or not all(isinstance(v, str) for v in row.values()):
                sys.exit("%s: not a {prompt, chosen, rejected} string row" % where)
            want = expected(row["prompt"])
            if want is None:
                sys.exit("%s: prompt %r follows no documented task" % (where, row["prompt"]))
            task, chosen, rejected = want
            if (row["chosen"], row["rejected"]) != (chosen, rejected):
                sys.exit("%s: %s pair is (%r, %r), the rules give (%r, %r)" %
                         (where, task, row["chosen"], row["rejected"], chosen, rejected))
            if chosen == rejected:
                sys.exit("%s: chosen equals rejected" % where)
            pairs.append((task, row["prompt"]))
    return pairs


def main():
    d = sys.argv[1]
    train, ev = load(d + "/train.jsonl"), load(d + "/eval.jsonl")
    if len(train) != 2000 or len(ev) != 200:
        sys.exit("expected 2000 training and 200 evaluation pairs, found %d and %d" % (len(train), len(ev)))
    seen = {p for t, p in train if t != "Count"}
    leaked = [p for t, p in ev if p in seen]
    if leaked:
        sys.exit("evaluation prompt %r is also a training prompt" % leaked[0])
    for name, pairs in (("train", train), ("eval", ev)):
        share = Counter(t for t, _ in pairs)
        if set(share) != {"Uppercase", "Lowercase", "Vowels", "Spell", "Count"} or \
                min(share.values()) < 0.1 * len(pairs):
            sys.exit("%s: unbalanced tasks %s" % (name, dict(share)))
        print("%s: %d pairs, %s" % (name, len(pairs), dict(sorted(share.items()))))
    print("demo data: OK")


main()
