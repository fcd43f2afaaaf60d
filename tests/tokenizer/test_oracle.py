#!/usr/bin/env python3
"""ringlm's tokenizer against Hugging Face `tokenizers` (the Rust crate, via
its Node binding @anush008/tokenizers in tests/oracle): ids, decoded text and
streaming decode, for every tokenizer.json in ../shared/data/tokenizers, a
Ring-style byte-level BPE (the SPEC section 4 Split regex, ByteLevel, special
tokens such as <|role_end|>) and variants that exercise every supported
normalizer, pre-tokenizer, split behavior, post-processor and decoder.

Needs: RINGLM (the binary), node + `npm ci` in tests/oracle."""
import copy
import json
import os
import random
import subprocess
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RINGLM = os.environ.get("RINGLM", os.path.join(ROOT, "build", "ringlm"))
TMP = os.environ.get("RL_TEST_TMP", "/tmp/rl_tok_test")
DATA = os.environ.get("RL_TOKENIZER_DATA", os.path.join(ROOT, "..", "shared", "data", "tokenizers"))
ORACLE = os.path.join(ROOT, "tests", "oracle", "tok_oracle.js")
os.makedirs(TMP, exist_ok=True)

passed = failed = 0
fail_lines = []
fail_kinds = {}


def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        kind = ":".join(msg.split(":")[:2]).split(" ")[:2]
        kind = " ".join(kind)
        fail_kinds[kind] = fail_kinds.get(kind, 0) + 1
        if fail_kinds[kind] <= 3 and len(fail_lines) < 200:
            fail_lines.append(msg)
            print("FAIL:", msg, file=sys.stderr)


RING_REGEX = (r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]|\s+(?!\S)|\s+")


# ---------------------------------------------------------------- corpus
def category_samples(rng):
    by_cat = {}
    for cp in range(0x20000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat == "Cn":
            continue
        by_cat.setdefault(cat, []).append(c)
    out = []
    for cat in sorted(by_cat):
        chars = by_cat[cat]
        pick = chars[:12] + rng.sample(chars, min(24, len(chars)))
        out.append("".join(pick))
        out.append(" ".join(pick))
        out.append("x" + "y ".join(pick[:8]) + "z")
    return out


def hard_corpus(specials):
    rng = random.Random(1234)
    c = [
        "", " ", "  ", "\n", "\t", "a", "Hello world", "Hello world, 123 héllo\n\n  x",
        "I'm don't you'll we've they're it's I'D WE'LL THEY'RE 'S", "can't'nt''s",
        "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 🇯🇵🇺🇸 ❤️ 🧑🏿‍🚀", "🤖🤖🤖", "a😀b",
        "日本語のテキストです。中文字符，还有标点！한국어 텍스트", "漢字カタカナひらがな",
        "e\u0301 é ñ n\u0303 Å A\u030a ﬁ ﬀ ① ² ½ Ⅻ ｆｕｌｌ", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
        "مرحبا بالعالم 123 שלום עולם \u200f\u200e mixed עב English", "\u202eRTL override\u202c",
        "\x00\x01\x02\x1f\x7f \x85 \u200b\u200c\u200d \u2028\u2029 \ufeff \u00a0 \u3000 \u1680",
        "\r\n\r\n", "a\rb\r\nc\nd", " " * 100, "\n" * 50, "\t" * 20, " \n \n \n ", "  \n\n  \t ",
        "0123456789" * 20, "1" * 300, "3.14159 1,000,000 -42 +7 1e10 0x1F", "٣٤٥ ۱۲۳ १२३ ௧௨ ①②③ ⅠⅡⅢ",
        "a" * 1000, "ab" * 300, "x" + " " * 40 + "y", "x" + " " * 23 + "y" + " " * 2 + "z",
        "def f(x):\n    return x**2  # comment\n\n\tif x: pass\n", "https://example.com/a?b=c&d=e#f",
        "<html><body class=\"x\">Hi</body></html>", "{\"key\": [1, 2.5, null, true]}",
        "ALL CAPS TEXT AND MiXeD cAsE", "İstanbul ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ straße ǅ", "Ǆemal ﬀ ß ẞ",
        "tab\tsep\tvalues\t\t", "trailing spaces   ", "   leading spaces", "▁meta▁space ▁",
        "<0x41> <unk> <s> </s>", "....!!!???---___***", "$%^&*()[]{}|\\/`~@#", "a-b_c.d,e;f:g",
        "\u0600\u0601 \u06dd \U000110bd", "a\na b\nb", "ab\nab a\nb\n", "a\nb ca1F deadbeef\r\nab", "\U0001F600\U0001F64F\U0001F680", "\U00020000\U0002A6D6",
    ]
    for s in specials:
        c += [s, "a" + s + "b", " " + s + " ", s + s, "x " + s + "y", s + "\n" + s, "  " + s + "  z",
              "word" + s + "word", s[: max(1, len(s) // 2)], s[:-1] + " " + s[-1:] if len(s) > 1 else s]
    c += category_samples(rng)
    pool = [chr(x) for x in list(range(0x20, 0x7f)) * 4] + list("\n\t  éüßçñøå日本語中文한국어ع ب ש ॐ😀👍🏽\u0301\u200d①٣") + specials[:20]
    for _ in range(60):
        c.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 80))))
    return c


def random_utf8(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            cp = rng.randint(0x20, 0x7e)
        elif r < 0.6:
            cp = rng.choice([9, 10, 13, 32, 32, 0x85, 0xa0, 0x3000])
        elif r < 0.8:
            cp = rng.randint(0x80, 0x7ff)
        elif r < 0.95:
            cp = rng.randint(0x800, 0xffff)
        else:
            cp = rng.randint(0x10000, 0x10ffff)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(chr(cp)) == "Cn":
            cp = 0x41  # unassigned in Python's Unicode: the oracle's tables may be newer than PCRE2's
        out.append(chr(cp))
    return "".join(out)


# ---------------------------------------------------------------- tokenizers
def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def train_bytelevel_bpe(text, n_merges):
    """A small GPT-2 style byte-level BPE (vocab + merges), trained here."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    b2u = {b: chr(c) for b, c in zip(bs, cs)}
    vocab = {b2u[b]: i for i, b in enumerate(range(256))}
    words = {}
    for w in text.replace("\n", " \n ").split(" "):
        w = " " + w
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, f in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + f
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = best[0] + best[1]
        if new not in vocab:
            vocab[new] = len(vocab)
        nw = {}
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + f
        words = nw
    return vocab, merges


TRAIN_TEXT = """The quick brown fox jumps over the lazy dog. It's a test of the tokenizer, isn't it?
Numbers 123 4567 and words: hello world, hello there, the the the. Ring linear attention models
use lightning attention and mixture of experts. 你好世界，这是一个测试。日本語のテキスト。
def main():\n    print("hello")\n    return 0\n\n<role>HUMAN</role>question<|role_end|>""" * 3


def added(i, content, special=True, **kw):
    d = {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": not special, "special": special}
    d.update(kw)
    return d


def ring_like():
    vocab, merges = train_bytelevel_bpe(TRAIN_TEXT, 400)
    n = len(vocab)
    toks = ["<|startoftext|>", "<|endoftext|>", "[CLS]", "[gMASK]", "<|role_end|>", "<role>", "</role>"]
    at = [added(n + i, t) for i, t in enumerate(toks)]
    at.append(added(n + len(toks), "<think>", special=False, normalized=False))
    at.append(added(n + len(toks) + 1, "</think>", special=False, normalized=False))
    at.append(added(n + len(toks) + 2, "<|lstrip|>", lstrip=True))
    at.append(added(n + len(toks) + 3, "<|rstrip|>", rstrip=True))
    at.append(added(n + len(toks) + 4, "word", special=False, single_word=True, normalized=True))
    at.append(added(n + len(toks) + 5, "<tool_call>", special=False, normalized=True))
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": at,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": RING_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }


def variants(base_ring, gpt2, mistral):
    v = {}
    bl_noregex = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    for beh in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        for inv in [False, True]:
            for kind, pat in [("re", {"Regex": r" ?\p{L}+|\s+|\d"}), ("str", {"String": " "}), ("empty", {"Regex": r"x*"})]:
                t = copy.deepcopy(base_ring)
                t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": pat, "behavior": beh, "invert": inv}, bl_noregex]}
                v[f"split-{beh}-{'inv' if inv else 'fwd'}-{kind}"] = t
    t = copy.deepcopy(base_ring)
    t["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
        {"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "Prepend", "prepend": "^"}]}
    v["norm-nfkc-lower-replace-strip-prepend"] = t
    for nf in ["NFC", "NFD", "NFKD"]:
        t = copy.deepcopy(base_ring)
        t["normalizer"] = {"type": nf}
        v["norm-" + nf] = t
    t = copy.deepcopy(base_ring)
    t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"},
                                                            {"type": "Strip", "strip_left": True, "strip_right": False}]}
    v["norm-stripaccents"] = t
    t = copy.deepcopy(base_ring)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Punctuation", "behavior": "Isolated"}, {"type": "Digits", "individual_digits": False},
        {"type": "WhitespaceSplit"},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
    t["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {
                               "<|startoftext|>": {"id": "<|startoftext|>", "ids": [base_ring["added_tokens"][0]["id"]], "tokens": ["<|startoftext|>"]},
                               "<|endoftext|>": {"id": "<|endoftext|>", "ids": [base_ring["added_tokens"][1]["id"]], "tokens": ["<|endoftext|>"]}}}
    v["pre-punct-digits-wssplit-template"] = t
    t = copy.deepcopy(base_ring)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Digits", "individual_digits": True},
                                                                {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True, "trim_offsets": True}]}
    v["pre-whitespace-digits"] = t
    # Oniguruma syntax as the crate compiles it: ^/$ are line anchors, (?m) is dot-all,
    # \h is a hex digit, \s includes U+0085, \w is Unicode's word class (plus Latin-1's
    # superscripts and fractions). Not here: \w inside a class, where onig matches
    # single UTF-8 bytes of U+0080..U+00FF (ringlm matches whole characters).
    for i, pat in enumerate([r"^a", r"b$", r"a.b", r"(?m)a.b", r"\h+", r"\Aa", r"(?i)A+", r"\w+", r"\s",
                             r"[^\s]+", r"\d+", r"\p{Lu}\p{Ll}+", r"\W+", r"\S+\s*"]):
        t = copy.deepcopy(gpt2)
        t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pat}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        v[f"regex-syntax-{i}"] = t
    t = copy.deepcopy(gpt2)
    t["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True}
    v["gpt2-prefix-space"] = t
    t = copy.deepcopy(gpt2)
    t["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    v["gpt2-noregex"] = t
    t = copy.deepcopy(gpt2)
    t["model"]["ignore_merges"] = True
    v["gpt2-ignore-merges"] = t
    for scheme in ["first", "always", "never"]:
        for split in [False, True]:
            t = copy.deepcopy(mistral)
            t["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
            t["decoder"] = {"type": "Sequence", "decoders": [
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split},
                {"type": "ByteFallback"}, {"type": "Fuse"}]}
            v[f"metaspace-{scheme}-{'split' if split else 'nosplit'}"] = t
    t = copy.deepcopy(mistral)  # Llama-2 style: normalizer Prepend + Replace, no pre-tokenizer
    t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    t["pre_tokenizer"] = None
    t["decoder"] = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"},
                                                     {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    v["llama2-style"] = t
    return v


# ---------------------------------------------------------------- drivers
def run_oracle(job):
    p = subprocess.run(["node", ORACLE], input=json.dumps(job).encode(), capture_output=True,
                       cwd=os.path.dirname(ORACLE))
    if p.returncode != 0:
        raise RuntimeError("oracle failed: " + p.stderr.decode()[-2000:])
    return json.loads(p.stdout)


def run_ringlm(path, jobs):
    inp = "".join(json.dumps(j) + "\n" for j in jobs).encode()
    p = subprocess.run([RINGLM, "tokenize", "--tokenizer", path, "--batch"], input=inp, capture_output=True)
    if p.returncode != 0:
        return [{"error": "ringlm: " + p.stderr.decode()[-500:]}] * len(jobs)
    lines = p.stdout.decode().split("\n")[:-1]
    if len(lines) != len(jobs):
        return [{"error": f"ringlm answered {len(lines)} lines for {len(jobs)} jobs: " + p.stderr.decode()[-500:]}] * len(jobs)
    return [json.loads(x) for x in lines]


ROUND_TRIP = {"gpt2", "ring-like"}  # lossless: every byte in the vocabulary, nothing removed


def byte_level(tj):
    d = tj.get("decoder") or {}
    return d.get("type") == "ByteLevel" and tj.get("normalizer") is None


def main():
    names = {}
    for d in sorted(os.listdir(DATA)):
        p = os.path.join(DATA, d, "tokenizer.json")
        if os.path.isfile(p):
            names[d] = p
    if not names:
        print(f"no tokenizers under {DATA}")
        print("0 passed, 1 failed")
        return 1
    ring = ring_like()
    jsons = {n: load(p) for n, p in names.items()}
    jsons["ring-like"] = ring
    jsons.update(variants(ring, jsons["gpt2"], jsons["mistral-7b-v0.3"]))
    paths = {}
    for n, tj in jsons.items():
        if n in names:
            paths[n] = names[n]
        else:
            paths[n] = os.path.join(TMP, n + ".json")
            with open(paths[n], "w", encoding="utf-8") as f:
                json.dump(tj, f, ensure_ascii=False)

    rng = random.Random(7)
    plan = {}
    job = {"tokenizers": {n: {"file": p} for n, p in paths.items()}, "encode": [], "decode": []}
    for n, tj in jsons.items():
        specials = [a["content"] for a in tj.get("added_tokens", [])][:40]
        corpus = hard_corpus(specials) if (n in names or n == "ring-like") else hard_corpus(specials)[:120]
        rt = [random_utf8(rng, rng.randint(1, 60)) for _ in range(40)] if byte_level(tj) else []
        vocab_n = max(list(tj["model"]["vocab"].values()) + [a["id"] for a in tj.get("added_tokens", [])]) + 1
        rand_ids = [[rng.randrange(vocab_n + 3) for _ in range(rng.randint(0, 30))] for _ in range(40)]
        if n == "mistral-7b-v0.3" or n.startswith("metaspace") or n == "llama2-style":  # byte tokens <0x..>
            for _ in range(20):
                rand_ids.append([rng.choice([3 + rng.randrange(256), rng.randrange(vocab_n)]) for _ in range(rng.randint(1, 12))])
        plan[n] = (corpus, rt, rand_ids)
        for text in corpus + rt:
            job["encode"].append([n, text, True])
            job["encode"].append([n, text, False])
        for ids in rand_ids:
            job["decode"].append([n, ids, False])
            job["decode"].append([n, ids, True])
    oracle = run_oracle(job)
    version = oracle["version"]
    print("oracle:", version)
    for n, e in oracle["load_errors"].items():
        check(False, f"oracle could not load {n}: {e}")
    ei = di = 0
    for n in jsons:
        corpus, rt, rand_ids = plan[n]
        texts = corpus + rt
        jobs = []
        for text in texts:
            jobs.append({"encode": text, "add_special": True})
            jobs.append({"encode": text, "add_special": False})
        for ids in rand_ids:
            jobs.append({"decode": ids, "skip_special": False})
            jobs.append({"decode": ids, "skip_special": True})
            jobs.append({"stream": ids, "skip_special": False})
        ours = run_ringlm(paths[n], jobs)
        oi = 0
        ids_of_text = {}
        bad_n = 0
        for text in texts:
            for sp in (True, False):
                want, got = oracle["encode"][ei], ours[oi]
                ei += 1
                oi += 1
                ok = isinstance(want, list) and got.get("ids") == want
                if not ok and bad_n < 5:
                    bad_n += 1
                check(ok, f"{n}: encode {text[:60]!r} special={sp}: oracle {str(want)[:200]} ringlm {str(got)[:200]}")
                if sp is False and isinstance(want, list):
                    ids_of_text[text] = want
        for ids in rand_ids:
            for sk in (False, True):
                want, got = oracle["decode"][di], ours[oi]
                di += 1
                oi += 1
                check(isinstance(want, str) and got.get("text") == want,
                      f"{n}: decode {ids} skip={sk}: oracle {want!r} ringlm {got!r}")
                if not sk:
                    full = want
            st = ours[oi]
            oi += 1
            ch = st.get("chunks")
            check(ch is not None and len(ch) == len(ids) + 1 and "".join(ch) == full,
                  f"{n}: stream {ids}: chunks {ch!r} vs full {full!r}")
        # decode of the oracle's own ids, and the round trip for byte-level tokenizers
        djobs = [{"decode": ids_of_text[t], "skip_special": False} for t in texts if t in ids_of_text]
        dtexts = [t for t in texts if t in ids_of_text]
        dj = {"tokenizers": {n: {"file": paths[n]}}, "encode": [], "decode": [[n, j["decode"], False] for j in djobs]}
        o2 = run_oracle(dj)["decode"]
        ours2 = run_ringlm(paths[n], djobs)
        for t, w, g in zip(dtexts, o2, ours2):
            check(g.get("text") == w, f"{n}: decode(encode({t[:50]!r})): oracle {w!r} ringlm {g!r}")
            if (n in ROUND_TRIP or (n.startswith("split-") and "Removed" not in n)) and t in rt:
                check(g.get("text") == t, f"{n}: round trip {t!r} -> {g!r}")
    for k, c in sorted(fail_kinds.items()):
        print(f"  failures: {k}: {c}")
    print(f"tokenizers: {len(jsons)}; oracle {version}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
