"""`ringlm tokenizer-train` writes a byte-level BPE tokenizer.json that ringlm
and the Hugging Face oracle (tests/oracle) both load and agree on, id for id;
decode(encode(x)) == x; merges follow pair frequency with deterministic ties;
the same input gives the same file byte for byte."""
import glob
import json
import os
import subprocess
import sys

RINGLM = os.environ.get("RINGLM", "build/ringlm")
TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_test_tokenizer_train")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ORACLE = os.path.join(ROOT, "tests", "oracle", "tok_oracle.js")
SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|role_end|>", "<role>", "</role>"]
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)[:600]))


TRICKY = ["", "Hello, world!", "  two  spaces\n\nand lines\t\r\n", "naïve café — 東京 🚀👩‍👩‍👧",
          "I'll DON'T we've they're it's", "1234567890 3.14159 1,000,000", "\x00\x01 control \x7f",
          "<|role_end|>inside<role>HUMAN</role>text<|endoftext|>", "tabs\t\tand\u00a0nbsp\u2003em space",
          "ÀÉÎÕÜ ß Ω ж ش ह 한국어", "   leading and trailing   ", "\n\n\n", "a" * 300,
          "mixedCASE snake_case kebab-case CONSTANT_CASE", "e\u0301 combining", "x=1;y=2 // code {}[]()"]


def corpus():
    parts = []
    for pat in ["README.md", "docs/*.md", "src/*/*.c", "src/*/*.h"]:
        for f in sorted(glob.glob(os.path.join(ROOT, pat))):
            with open(f, encoding="utf-8", errors="replace") as fh:
                parts.append(fh.read())
    parts.append("\n".join(TRICKY) * 3)
    return "\n".join(parts)


def run(args, **kw):
    return subprocess.run([RINGLM] + args, capture_output=True, **kw)


def train(inp, out, vocab, extra=()):
    return run(["tokenizer-train", "--input"] + inp + ["--vocab-size", str(vocab), "--special"] + SPECIALS +
               list(extra) + ["-o", out], text=True)


def oracle(job):
    o = subprocess.run(["node", ORACLE], input=json.dumps(job), capture_output=True, text=True)
    return json.loads(o.stdout) if o.returncode == 0 else {"error": o.stderr[-500:]}


def ringlm_batch(tj, reqs):
    inp = "".join(json.dumps(r) + "\n" for r in reqs)
    o = run(["tokenize", "--tokenizer", tj, "--batch"], input=inp, text=True)
    return [json.loads(l) for l in o.stdout.splitlines()] if o.returncode == 0 else None


def main():
    os.makedirs(TMP, exist_ok=True)
    text = corpus()
    cf = os.path.join(TMP, "corpus.txt")
    with open(cf, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    tj = os.path.join(TMP, "tokenizer.json")
    V = 2000
    r = train([cf], tj, V)
    check("tokenizer-train runs", r.returncode == 0, r.stderr)
    if r.returncode:
        print("%d passed, %d failed" % (sum(RESULTS), len(RESULTS) - sum(RESULTS)))
        return 1
    d = json.load(open(tj, encoding="utf-8"))
    nv = len(d["model"]["vocab"]) + len(d["added_tokens"])
    check("vocabulary size is --vocab-size", nv == V, nv)
    check("special tokens follow the vocabulary in order",
          [(a["id"], a["content"]) for a in d["added_tokens"]] ==
          [(V - len(SPECIALS) + i, s) for i, s in enumerate(SPECIALS)], d["added_tokens"])
    check("the Ring pre-tokenizer regex is written",
          d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].startswith("'(?i:[sdmt]|ll|ve|re)|"))
    tj2 = os.path.join(TMP, "tokenizer2.json")
    train([cf], tj2, V)
    check("deterministic: same input, same file", open(tj, "rb").read() == open(tj2, "rb").read())

    # agreement with the oracle on lines, paragraphs and tricky strings
    lines = [l for l in text.split("\n") if l][:3000:3]
    paras = [p for p in text.split("\n\n") if p][:400:2]
    texts = TRICKY + lines + paras + [text[:20000]]
    job = {"tokenizers": {"t": {"file": tj}},
           "encode": [["t", t, False] for t in texts] + [["t", t, True] for t in TRICKY],
           "decode": []}
    want = oracle(job)
    check("the oracle loads it", "error" not in want and not want.get("load_errors"), want.get("error"))
    reqs = [{"encode": t, "add_special": False} for t in texts] + \
           [{"encode": t, "add_special": True} for t in TRICKY]
    got = ringlm_batch(tj, reqs)
    check("ringlm loads it", got is not None)
    if got and "encode" in want:
        gids = [g.get("ids", g) for g in got]
        bad = [i for i, (a, b) in enumerate(zip(gids, want["encode"])) if a != b]
        check("ringlm ids == oracle ids on %d texts" % len(texts + TRICKY), not bad,
              bad[:3] and (texts + TRICKY)[bad[0]][:80] + " %s vs %s" % (gids[bad[0]], want["encode"][bad[0]]))
        n_tok = sum(len(g) for g in gids[:len(texts)] if isinstance(g, list))
        n_bytes = sum(len(t.encode()) for t in texts)
        check("compresses (%.2f bytes/token)" % (n_bytes / max(n_tok, 1)), n_bytes / max(n_tok, 1) > 2.0)
        dec = ringlm_batch(tj, [{"decode": g, "skip_special": False} for g in gids[:len(texts)]])
        bad = [i for i, (dd, t) in enumerate(zip(dec or [], texts)) if dd.get("text") != t]
        check("decode(encode(x)) == x (ringlm)", dec and not bad, bad[:3])
        job2 = {"tokenizers": {"t": {"file": tj}}, "encode": [],
                "decode": [["t", g, False] for g in gids[:len(texts)]]}
        w2 = oracle(job2)
        bad = [i for i, (dd, t) in enumerate(zip(w2.get("decode", []), texts)) if dd != t]
        check("decode(encode(x)) == x (oracle)", "decode" in w2 and not bad, bad[:3])
        sp = ringlm_batch(tj, [{"encode": "a<|endoftext|>b<role>", "add_special": False}])
        check("special tokens encode to their ids", sp and V - 4 in sp[0]["ids"] and V - 2 in sp[0]["ids"], sp)

    # merge order: frequency, then the smaller (left id, right id)
    small = os.path.join(TMP, "small.txt")
    with open(small, "w") as f:
        f.write("abababab xy zw")
    ts = os.path.join(TMP, "small.json")
    r = run(["tokenizer-train", "--input", small, "--vocab-size", "261", "--min-frequency", "1",
             "-o", ts], text=True)
    m = json.load(open(ts))["model"]["merges"] if r.returncode == 0 else r.stderr
    # "abababab": (a,b) x4 then (ab,ab) x3; then every pair occurs once and
    # the smaller left id wins: Ġ (32) twice, then abab (257) before Ġx (258)
    check("merge order by count, ties to the smaller ids", m == [["a", "b"], ["ab", "ab"], ["Ġ", "x"],
                                                                  ["Ġ", "z"], ["abab", "abab"]], m)
    r = run(["tokenizer-train", "--input", small, "--vocab-size", "300", "-o", ts], text=True)
    m = json.load(open(ts))["model"]["merges"] if r.returncode == 0 else r.stderr
    check("--min-frequency 2 stops early", m == [["a", "b"], ["ab", "ab"]], m)
    # errors
    bad = os.path.join(TMP, "bad.txt")
    with open(bad, "wb") as f:
        f.write(b"ok\xff\xfe")
    r = run(["tokenizer-train", "--input", bad, "--vocab-size", "300", "-o", ts], text=True)
    check("invalid UTF-8 refused with its offset", r.returncode != 0 and "offset 2" in r.stderr, r.stderr)
    r = run(["tokenizer-train", "--input", small, "--vocab-size", "100", "-o", ts], text=True)
    check("too small a vocabulary refused", r.returncode != 0 and "256" in r.stderr, r.stderr)
    print("%d passed, %d failed" % (sum(RESULTS), len(RESULTS) - sum(RESULTS)))
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
