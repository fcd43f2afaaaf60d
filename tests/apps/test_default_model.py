"""The shipped default model (models/tiny) loads, and the README's main job
works on it: its tokenizer round-trips text, generate -p streams text, chat
renders its template and answers. (What the text says is not tested: a
trained model's output is no property to assert; its validation loss is in
models/tiny/train.out.)"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from appslib import check, run, summary  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
M = os.path.join(ROOT, "models", "tiny")


def main():
    r = run(["info", "-m", M])
    check("info loads models/tiny", r.returncode == 0 and "Lightning" in r.stdout, r.stderr)
    text = "And God said, Let there be light: and there was light."
    t = run(["tokenize", "--tokenizer", M, text])
    check("tokenize", t.returncode == 0, t.stderr)
    ids = t.stdout.strip().strip("[]").replace(" ", "")
    d = run(["detokenize", "--tokenizer", M, "--ids", ids])
    check("detokenize(tokenize(x)) == x", d.stdout.rstrip("\n") == text, repr(d.stdout))
    g = run(["generate", "-m", M, "-p", "And it came to pass", "-n", "24", "--seed", "1", "--ignore-eos"])
    check("generate -p writes text", g.returncode == 0 and len(g.stdout.strip()) > 20, g.stderr[-300:])
    c = run(["chat", "-m", M, "-n", "16", "--seed", "1", "--verbose-prompt"], stdin="Who made the light?\n")
    check("chat renders the Ring template and answers",
          c.returncode == 0 and "<role>HUMAN</role>Who made the light?<|role_end|><role>ASSISTANT</role>" in c.stderr,
          c.stderr[-400:])
    return summary()


if __name__ == "__main__":
    sys.exit(main())
