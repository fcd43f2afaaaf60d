"""The byte-level tokenizer that `mkmodel --byte-tokenizer` writes is a valid
tokenizer.json for Hugging Face's tokenizers crate (the oracle in
tests/oracle) and ringlm and the oracle agree on it; its chat template renders
the Ring format (SPEC §4)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from appslib import RINGLM, check, summary  # noqa: E402

TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_bytetok")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


TEXTS = ["", "Hello, world!", "  two  spaces\n\nand lines\t", "naïve café — 東京 🚀👩‍👩‍👧",
         "<|role_end|>inside<role>HUMAN</role>text<|endoftext|>", "\x00\x01 control \x7f", "1234567890"]


def main():
    os.makedirs(TMP, exist_ok=True)
    d = os.path.join(TMP, "m")
    shutil.rmtree(d, ignore_errors=True)
    r = subprocess.run([RINGLM, "mkmodel", "--preset", "test", "--byte-tokenizer", "-o", d], capture_output=True, text=True)
    check("mkmodel --byte-tokenizer", r.returncode == 0, r.stderr)
    tj = os.path.join(d, "tokenizer.json")
    job = {"tokenizers": {"t": {"file": tj}}, "encode": [["t", t, True] for t in TEXTS], "decode": []}
    o = subprocess.run(["node", os.path.join(ROOT, "tests", "oracle", "tok_oracle.js")], input=json.dumps(job),
                       capture_output=True, text=True)
    check("the oracle loads it", o.returncode == 0, o.stderr[-400:])
    want = json.loads(o.stdout)["encode"] if o.returncode == 0 else [None] * len(TEXTS)
    for i, (t, w) in enumerate(zip(TEXTS, want)):
        tf = os.path.join(TMP, "text%d.txt" % i)
        with open(tf, "w", encoding="utf-8", newline="") as f:
            f.write(t)
        g = subprocess.run([RINGLM, "tokenize", "--tokenizer", tj, "--text-file", tf], capture_output=True, text=True)
        ids = json.loads(g.stdout) if g.returncode == 0 else g.stderr
        check("ids of %r" % t[:20], ids == w, "%s vs oracle %s" % (ids, w))
        if isinstance(ids, list) and ids:
            dd = subprocess.run([RINGLM, "detokenize", "--tokenizer", tj, "--ids", ",".join(map(str, ids))],
                                capture_output=True, text=True)
            check("round trip of %r" % t[:20], dd.stdout.rstrip("\n") == t.rstrip("\n") or dd.stdout == t,
                  repr(dd.stdout))
    cfg = json.load(open(os.path.join(d, "config.json")))
    check("config eos is <|endoftext|>", cfg.get("eos_token_id") == 257, str(cfg.get("eos_token_id")))
    msgs = os.path.join(TMP, "msgs.json")
    json.dump([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
               {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}], open(msgs, "w"))
    t = subprocess.run([RINGLM, "template", "--tokenizer-config", os.path.join(d, "tokenizer_config.json"),
                        "--messages", msgs, "--add-generation-prompt"], capture_output=True, text=True)
    want_t = ("<role>SYSTEM</role>S<|role_end|><role>HUMAN</role>U<|role_end|><role>ASSISTANT</role>A"
              "<|role_end|><role>HUMAN</role>V<|role_end|><role>ASSISTANT</role>")
    check("chat template renders the Ring format", t.stdout == want_t, repr(t.stdout) + t.stderr)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
