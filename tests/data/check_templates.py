#!/usr/bin/env python3
"""check_templates.py — dpoc's chat templates against the official Jinja ones.

usage: check_templates.py DPOC TPL_TOK FIXTURE.jsonl [QWEN2_TOKENIZER_CONFIG]

Prepares FIXTURE (prompt/chosen/rejected message lists) with each template
and the tiny tokenizer of tpl_tok/, reads the pairs back with `dpoc data
show --json`, decodes the ids here (an id below 256 is that byte, 256 is
"\\n\\n", then the control tokens in gen.py's order) and compares with the
official templates rendered by jinja2 (python3-jinja2), the way Hugging Face
renders them (trim_blocks, lstrip_blocks):
  - ids[:prompt_len] decodes to template(prompt, add_generation_prompt=True);
  - all ids decode to template(prompt + response) without the separator the
    template puts after the last end-of-turn token ("\\n" for chatml and
    internlm2, nothing for llama3): dpoc ends a sequence at that token;
  - each label span decodes to an assistant message's content (trimmed for
    llama3) followed by the end-of-turn token.
The Qwen2 template is read from the shipped tokenizer_config.json when given;
the InternLM2 and Llama-3 templates are those of internlm/internlm2-chat-7b
and meta-llama/Meta-Llama-3-8B-Instruct. Exit 77 (skip) without jinja2.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import jinja2
except ImportError:
    print("jinja2 not installed (python3-jinja2): skipped")
    sys.exit(77)

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
         "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
INTERNLM2 = ("{{ bos_token }}{% for message in messages %}"
             "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
             "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
          "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "<|begin_of_text|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def decode(ids):
    out = b""
    for i in ids:
        if i < 256:
            out += bytes([i])
        elif i == 256:
            out += b"\n\n"
        else:
            out += SPECIALS[i - 257].encode()
    return out.decode("utf-8")


def main():
    dpoc, tpl_tok, fixture = sys.argv[1:4]
    qwen2 = QWEN2
    if len(sys.argv) > 4 and os.path.exists(sys.argv[4]):
        with open(sys.argv[4], encoding="utf-8") as f:
            qwen2 = json.load(f)["chat_template"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    templates = {
        "chatml": (env.from_string(qwen2), {}, "<|im_end|>", "\n", False),
        "internlm2": (env.from_string(INTERNLM2), {"bos_token": "<s>"}, "<|im_end|>", "\n", False),
        "llama3": (env.from_string(LLAMA3), {"bos_token": "<|begin_of_text|>"}, "<|eot_id|>", "", True),
    }
    with open(fixture, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    failures = checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (tpl, extra, eot, sep, trims) in templates.items():
            rec = os.path.join(tmp, name + ".rec")
            subprocess.run([dpoc, "data", "prepare", "--tokenizer", tpl_tok, "--template", name, "--format", "xtuner",
                            fixture, "-o", rec], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shown = subprocess.run([dpoc, "data", "show", "--json", rec], check=True, capture_output=True, text=True)
            pairs = [json.loads(line) for line in shown.stdout.splitlines()]
            if len(pairs) != len(rows):
                print(f"FAIL {name}: {len(pairs)} pairs for {len(rows)} rows")
                failures += 1
                continue
            for i, (row, pair) in enumerate(zip(rows, pairs)):
                want_prompt = tpl.render(messages=row["prompt"], add_generation_prompt=True, **extra)
                for side in ("chosen", "rejected"):
                    seq = pair[side]
                    conv = row["prompt"] + row[side]
                    want_full = tpl.render(messages=conv, add_generation_prompt=False, **extra)
                    got_prompt = decode(seq["ids"][:pair["prompt_len"]])
                    got_full = decode(seq["ids"]) + sep
                    assistant = [m["content"] for m in row[side] if m["role"] == "assistant"]
                    want_spans = [(c.strip() if trims else c) + eot for c in assistant]
                    got_spans = [decode(seq["ids"][s:e]) for s, e in seq["spans"]]
                    for what, got, want in (("prompt", got_prompt, want_prompt), ("sequence", got_full, want_full),
                                            ("labels", got_spans, want_spans)):
                        checks += 1
                        if got != want:
                            failures += 1
                            print(f"FAIL {name} row {i + 1} {side} {what}:\n  got:  {got!r}\n  want: {want!r}")
    if failures:
        print(f"{failures} of {checks} checks failed")
        return 1
    print(f"OK {checks} checks against the official templates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
